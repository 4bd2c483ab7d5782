//! `sharedefend verify FILE SIGFILE --pubkey KEY`: checks a file fetched from a hub
//! against its minisign signature, as `minisign -Vm FILE -x SIGFILE -P KEY` would.
//!
//! Exit 0 and one line with the trusted comment (feed, serial, format, time) when the
//! signature holds; exit 1 when it does not (the file or the comment was altered, or
//! another key signed it); exit 2 when an input cannot be read or is not a key or a
//! signature, with the file named.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// Check a file against its minisign signature (`.minisig`) and the hub's public key.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file as fetched (uncompressed).
    file: PathBuf,
    /// Its signature file (`FEED.FORMAT.minisig`).
    sigfile: PathBuf,
    /// The hub's public key: a minisign `.pub` file or its base64 key line.
    #[arg(long, value_name = "KEY")]
    pubkey: String,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let key_path = Path::new(&args.pubkey);
    let key = if key_path.is_file() {
        let text = std::fs::read_to_string(key_path)
            .with_context(|| format!("cannot read {}", key_path.display()))?;
        sign::PublicKey::parse(&text).with_context(|| key_path.display().to_string())?
    } else {
        sign::PublicKey::parse(&args.pubkey).map_err(|e| {
            anyhow::anyhow!("--pubkey: neither a readable file nor a minisign public key ({e})")
        })?
    };
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let sig_text = std::fs::read_to_string(&args.sigfile)
        .with_context(|| format!("cannot read {}", args.sigfile.display()))?;
    let signature =
        sign::Signature::parse(&sig_text).with_context(|| args.sigfile.display().to_string())?;
    match sign::verify(&key, &body, &signature) {
        Ok(()) => {
            println!(
                "{}: signature verified; trusted comment: {}",
                args.file.display(),
                signature.trusted_comment
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("sharedefend: {}: {e}", args.file.display());
            Ok(ExitCode::from(1))
        }
    }
}
