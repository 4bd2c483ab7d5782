//! Opening inputs named on the command line: files, `-` for standard input,
//! gzip files, and MISP feed directories (a `manifest.json` with event files).

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use formats::{Format, Parsed, ReadError, ReadOptions};

/// Why an input could not be read: I/O or format. Both name the input.
#[derive(Debug)]
pub enum InputError {
    Io(anyhow::Error),
    Format(ReadError),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Io(e) => write!(f, "{e:#}"),
            InputError::Format(e) => e.fmt(f),
        }
    }
}

/// The raw bytes of a file or of standard input.
pub fn slurp(name: &str) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if name == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
    } else {
        bytes = std::fs::read(name).with_context(|| format!("cannot read {name}"))?;
    }
    Ok(bytes)
}

/// Reads and parses one input. A directory, or a file sniffed as a MISP feed
/// manifest, is read as a MISP feed with its event files.
pub fn read_input(name: &str, options: &ReadOptions) -> Result<Parsed, InputError> {
    let path = Path::new(name);
    if name != "-" && path.is_dir() {
        let manifest = path.join("manifest.json");
        let bytes = slurp(&manifest.to_string_lossy()).map_err(InputError::Io)?;
        return read_misp_dir(path, &bytes);
    }
    let bytes = slurp(name).map_err(InputError::Io)?;
    let text = formats::decode(&bytes).map_err(InputError::Format)?;
    let format = options.format.or_else(|| formats::sniff(&text));
    if format == Some(Format::MispFeed) {
        let dir = path.parent().unwrap_or(Path::new("."));
        return read_misp_dir(dir, &bytes);
    }
    let options = ReadOptions {
        format,
        ..options.clone()
    };
    formats::read_text(&text, &options).map_err(InputError::Format)
}

fn read_misp_dir(dir: &Path, manifest: &[u8]) -> Result<Parsed, InputError> {
    let mut load = |uuid: &str| -> Result<Vec<u8>, String> {
        let file = dir.join(format!("{uuid}.json"));
        std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))
    };
    formats::read_misp_feed(manifest, &mut load).map_err(InputError::Format)
}
