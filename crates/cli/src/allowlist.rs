//! `sharedefend allowlist load`: the names the hub must never block.

use std::process::ExitCode;

use analysis::Role;
use formats::{Format, ReadOptions};

use crate::EXIT_ERROR;
use crate::hubcli::StoreArgs;
use crate::input::read_input;

/// Allowlists: MISP warninglists, Tranco-style popularity lists, plain lists.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Load (replace) lists from files; published rules they now cover are withdrawn.
    Load {
        /// List name (default: the warninglist's name, else the format).
        #[arg(long)]
        name: Option<String>,
        /// allow, protected, popular or shared (default: by the list's kind).
        #[arg(long)]
        role: Option<String>,
        /// Plain-list entries cover their subdomains too.
        #[arg(long)]
        subdomains: bool,
        /// For popularity lists: keep the top N.
        #[arg(long)]
        top: Option<u32>,
        #[arg(long, value_parser = clap::value_parser!(Format))]
        format: Option<Format>,
        #[arg(required = true)]
        files: Vec<String>,
    },
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let Action::Load {
        name,
        role,
        subdomains,
        top,
        format,
        files,
    } = &args.action;
    let role = match role {
        Some(r) => Some(Role::parse(r).ok_or_else(|| {
            anyhow::anyhow!("--role: expected allow, protected, popular or shared, got {r:?}")
        })?),
        None => None,
    };
    if name.is_some() && files.len() > 1 {
        anyhow::bail!("--name names one list: give one file with it");
    }
    let mut hub = args.store.open_hub()?;
    let mut failed = false;
    for file in files {
        let options = ReadOptions {
            format: *format,
            csv_columns: None,
        };
        let parsed = match read_input(file, &options) {
            Ok(p) => p,
            Err(e) => {
                failed = true;
                eprintln!("sharedefend: {file}: {e}");
                continue;
            }
        };
        let options = hub::AllowlistOptions {
            list: name.as_deref(),
            role,
            subdomains: *subdomains,
            popular_top: *top,
        };
        let report =
            hub.load_allowlist(&options, &parsed, args.store.now(), &args.store.operator)?;
        println!(
            "{file}: list {:?} ({}): {} entries, {} skipped; {} published rules withdrawn",
            report.list,
            report.role,
            report.entries,
            report.skipped,
            report.applied.rules_removed()
        );
    }
    Ok(if failed {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}
