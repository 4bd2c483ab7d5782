//! The `sharedefend` binary: a thin command-line front over the library crates.
//!
//! Only this crate knows flags, `anyhow` and exit codes. Exit codes: 0 success,
//! 1 a finding (reserved for commands that judge), 2 an error (unreadable input,
//! bad flags, failed operation).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod allowlist;
mod check;
mod demo;
mod explain;
mod export;
mod filter;
mod hubcli;
mod import;
mod input;
mod partner;
mod pull;
mod review;
mod serve;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// The allocator. An import of a million names allocates and frees tens of millions
/// of small strings; glibc's malloc spent over a quarter of the import's time on
/// them (mostly merging freed chunks), mimalloc a fraction of that. Built without
/// transparent huge pages (`no_thp`): with them the filter's resident memory after
/// loading 1M rules was 64 MiB (huge pages counted whole), without 48 MiB, for
/// about 3% fewer blocked queries per CPU-second (more TLB misses in the matcher;
/// `docs/performance.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Share harmful domains and URLs; defend with DNS.
///
/// sharedefend collects indicators of compromise from feeds and partners, decides
/// what is safe to block, and publishes it to DNS filters as Response Policy Zones.
#[derive(Debug, Parser)]
#[command(name = "sharedefend", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Check(check::Args),
    Import(import::Args),
    Allowlist(allowlist::Args),
    Explain(explain::Args),
    Export(export::Args),
    Review(review::ReviewArgs),
    Delist(review::DelistArgs),
    Sweep(import::SweepArgs),
    Hub(serve::HubArgs),
    Partner(partner::Args),
    Pull(pull::Args),
    Verify(verify::Args),
    Filter(filter::FilterArgs),
    Demo(demo::Args),
}

/// Exit code for errors (bad input, unreadable file).
pub const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    // The matches are kept: `filter serve` reads the order of its repeated flags.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Allowlist(args) => allowlist::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Review(args) => review::review(&args),
        Command::Delist(args) => review::delist(&args),
        Command::Sweep(args) => import::sweep(&args),
        Command::Hub(args) => serve::run(&args),
        Command::Partner(args) => partner::run(&args),
        Command::Pull(args) => pull::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Filter(args) => filter::run(
            &args,
            matches
                .subcommand_matches("filter")
                .and_then(|m| m.subcommand_matches("serve")),
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sharedefend: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
