//! `sharedefend partner add|list|rotate-tsig|token`: the partners in the `hub serve`
//! configuration file, edited in place (comments kept, atomic writes; `hub::partners`).
//!
//! `add` and `rotate-tsig` print the new TSIG key once, on standard output, as a BIND
//! `key` statement the partner pastes into `named.conf`; `token` prints a new API
//! token once (the file keeps its SHA-256 only); nothing else ever shows them (`list`
//! shows key names, roles and token counts only). A running `hub serve` applies the
//! change within 200 ms.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hub::access::Role;
use hub::partners::{self, NewPartner, PartnerError};

/// Manage the partners: zone transfers (TSIG keys) and the API (roles, tokens).
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
    /// Issue an API token to a partner with roles (printed once; the config keeps
    /// its SHA-256).
    Token(TokenArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    name: String,
    #[command(flatten)]
    config: ConfigArg,
    /// Revoke the partner's other tokens (default: they keep working, for a
    /// rotation without downtime).
    #[arg(long)]
    replace: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Contributor,
    Consumer,
    Reviewer,
    Admin,
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
    /// Feeds it may transfer, comma-separated: phishing, malware, c2, scam, all, or *
    /// (required unless --no-tsig).
    #[arg(long, value_delimiter = ',', required_unless_present = "no_tsig")]
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
    /// Make no TSIG key (an API-only partner, or one that transfers by --allow-ip).
    #[arg(long)]
    no_tsig: bool,
    /// API roles, comma-separated: contributor (submits), consumer (reads),
    /// reviewer (review queue, delist, status), admin (all).
    #[arg(long, value_enum, value_delimiter = ',')]
    roles: Vec<RoleArg>,
    /// Source trust of what it submits, 0 to 1 [default: 0.5].
    #[arg(long)]
    trust: Option<f64>,
    /// TLP clearance: the most restricted marking it may receive (clear, green,
    /// amber, amber+strict, red) [default: green].
    #[arg(long, value_name = "TLP")]
    tlp: Option<String>,
    /// Independence group of what it submits [default: its own].
    #[arg(long)]
    group: Option<String>,
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
                no_tsig: a.no_tsig,
                roles: a
                    .roles
                    .iter()
                    .map(|r| match r {
                        RoleArg::Contributor => Role::Contributor,
                        RoleArg::Consumer => Role::Consumer,
                        RoleArg::Reviewer => Role::Reviewer,
                        RoleArg::Admin => Role::Admin,
                    })
                    .collect(),
                trust: a.trust,
                tlp: a.tlp.clone(),
                group: a.group.clone(),
            };
            match partners::add(&a.config.config, &new).map_err(flagged)? {
                Some(key) => {
                    eprintln!(
                        "partner {:?} added to {} (feeds {}); its TSIG key follows, shown this once:",
                        a.name,
                        a.config.config.display(),
                        new.feeds.join(", ")
                    );
                    print!("{}", key.bind_stanza());
                }
                None => eprintln!(
                    "partner {:?} added to {} (no TSIG key); give it an API token with `sharedefend partner token {}`",
                    a.name,
                    a.config.config.display(),
                    a.name
                ),
            }
        }
        PartnerCommand::Token(a) => {
            let issued =
                partners::issue_token(&a.config.config, &a.name, a.replace).map_err(flagged)?;
            eprintln!(
                "partner {:?}: new API token in {} ({}); it works when the hub reloads (within a second) and follows, shown this once:",
                a.name,
                a.config.config.display(),
                match issued.others_kept {
                    0 => "no other token".to_owned(),
                    n => format!("its {n} other token(s) still work; --replace revokes them"),
                }
            );
            println!("{}", issued.token());
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
                            "roles": p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                            "trust": p.api_partner().trust,
                            "tlp": p.clearance().as_str(),
                            "tokens": p.tokens.len(),
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
                        "{}\tfeeds={}\ttsig={}\tnotify={}\tallow_ips={}\troles={}\ttlp={}\ttokens={}",
                        p.name,
                        list_or_dash(p.feeds.clone()),
                        key,
                        list_or_dash(p.notify.iter().map(ToString::to_string).collect()),
                        list_or_dash(p.allow_ips.iter().map(ToString::to_string).collect()),
                        list_or_dash(p.roles.iter().map(|r| r.as_str().to_owned()).collect()),
                        p.clearance().as_str(),
                        p.tokens.len(),
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
