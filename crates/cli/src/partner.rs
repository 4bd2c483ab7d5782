//! `sharedefend partner add|list|rotate-tsig`: the partners in the `hub serve`
//! configuration file, edited in place (comments kept, atomic writes; `hub::partners`).
//!
//! `add` and `rotate-tsig` print the new TSIG key once, on standard output, as a BIND
//! `key` statement the partner pastes into `named.conf`; nothing else ever shows it
//! (`list` shows key names and algorithms only). A running `hub serve` applies the
//! change within 200 ms.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hub::partners::{self, NewPartner, PartnerError};

/// Manage the partners allowed to transfer the feed zones.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: PartnerCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PartnerCommand {
    /// Add a partner with a new TSIG key (printed once, as a BIND key statement).
    Add(AddArgs),
    /// List the partners (no secrets).
    List(ListArgs),
    /// Replace a partner's TSIG secret (the new key is printed once).
    RotateTsig(RotateArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Algorithm {
    #[value(name = "hmac-sha256")]
    HmacSha256,
    #[value(name = "hmac-sha512")]
    HmacSha512,
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The `hub serve` configuration file (created if missing, mode 0600).
    #[arg(long, env = "SHAREDEFEND_CONFIG", value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    /// The partner's name (letters, digits, '-', '_').
    name: String,
    #[command(flatten)]
    config: ConfigArg,
    /// Feeds it may transfer, comma-separated: phishing, malware, c2, scam, all, or *.
    #[arg(long, value_delimiter = ',', required = true)]
    feeds: Vec<String>,
    /// A server to NOTIFY when its feeds change (repeatable).
    #[arg(long, value_name = "ADDR:PORT")]
    notify: Vec<SocketAddr>,
    /// An address allowed to transfer WITHOUT a signature (repeatable; logged).
    #[arg(long = "allow-ip", value_name = "IP")]
    allow_ip: Vec<IpAddr>,
    #[arg(long, value_enum, default_value = "hmac-sha256")]
    tsig_algorithm: Algorithm,
    /// The key's name [default: sharedefend-NAME].
    #[arg(long, value_name = "NAME")]
    tsig_name: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// JSON output: one object per partner.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct RotateArgs {
    name: String,
    #[command(flatten)]
    config: ConfigArg,
}

/// The command-line spelling of an error's field.
fn flagged(e: PartnerError) -> anyhow::Error {
    match e {
        PartnerError::Field { field, message } => {
            let flag = match field {
                "name" => "NAME".to_owned(),
                f => format!("--{f}"),
            };
            anyhow::anyhow!("{flag}: {message}")
        }
        other => anyhow::Error::new(other),
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        PartnerCommand::Add(a) => {
            let new = NewPartner {
                name: a.name.clone(),
                feeds: a.feeds.iter().map(|f| f.trim().to_owned()).collect(),
                notify: a.notify.clone(),
                allow_ips: a.allow_ip.clone(),
                algorithm: match a.tsig_algorithm {
                    Algorithm::HmacSha256 => dns::KeyAlgorithm::HmacSha256,
                    Algorithm::HmacSha512 => dns::KeyAlgorithm::HmacSha512,
                },
                key_name: a.tsig_name.clone(),
            };
            let key = partners::add(&a.config.config, &new).map_err(flagged)?;
            eprintln!(
                "partner {:?} added to {} (feeds {}); its TSIG key follows, shown this once:",
                a.name,
                a.config.config.display(),
                new.feeds.join(", ")
            );
            print!("{}", key.bind_stanza());
        }
        PartnerCommand::RotateTsig(a) => {
            let key = partners::rotate_tsig(&a.config.config, &a.name).map_err(flagged)?;
            eprintln!(
                "partner {:?}: new secret for key {:?} in {}; the old one stops working when \
                 the hub reloads (within a second); the new key follows, shown this once:",
                a.name,
                key.key_name,
                a.config.config.display()
            );
            print!("{}", key.bind_stanza());
        }
        PartnerCommand::List(a) => {
            let list =
                partners::list(&a.config.config).with_context(|| "listing partners".to_owned())?;
            if a.json {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "name": p.name,
                            "feeds": p.feeds,
                            "tsig": p.tsig.as_ref().map(|t| serde_json::json!({
                                "name": t.name,
                                "algorithm": t.algorithm.name(),
                            })),
                            "notify": p.notify.iter().map(ToString::to_string).collect::<Vec<_>>(),
                            "allow_ips": p.allow_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for p in &list {
                    let list_or_dash = |v: Vec<String>| {
                        if v.is_empty() {
                            "-".to_owned()
                        } else {
                            v.join(",")
                        }
                    };
                    let key = p.tsig.as_ref().map_or("-".to_owned(), |t| {
                        format!("{} ({})", t.name, t.algorithm.name())
                    });
                    println!(
                        "{}\tfeeds={}\ttsig={}\tnotify={}\tallow_ips={}",
                        p.name,
                        p.feeds.join(","),
                        key,
                        list_or_dash(p.notify.iter().map(ToString::to_string).collect()),
                        list_or_dash(p.allow_ips.iter().map(ToString::to_string).collect()),
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
