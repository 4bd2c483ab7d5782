//! `sharedefend review` and `sharedefend delist`: people overrule the machine.
//!
//! A batch the circuit breaker held waits here for a person to approve or reject it;
//! a name wrongly blocked is delisted at once (withdrawn, allowlisted, audited).

use std::process::ExitCode;

use serde_json::json;
use store::BatchStatus;

use crate::hubcli::StoreArgs;

/// Batches held by the circuit breaker: list, approve, reject.
#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    action: ReviewAction,
}

#[derive(Debug, clap::Subcommand)]
enum ReviewAction {
    /// List held batches.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Publish a held batch (bypasses the breaker: you looked).
    Approve {
        batch: i64,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Discard a held batch's observations.
    Reject {
        batch: i64,
        #[arg(long, default_value = "")]
        note: String,
    },
}

pub fn review(args: &ReviewArgs) -> anyhow::Result<ExitCode> {
    let mut hub = args.store.open_hub()?;
    let now = args.store.now();
    let who = &args.store.operator;
    match &args.action {
        ReviewAction::List { json } => {
            let batches = hub.store.read(|tx| tx.batches(Some(BatchStatus::Held)))?;
            for b in &batches {
                if *json {
                    println!(
                        "{}",
                        json!({"batch": b.id, "origin": b.origin, "created_at": b.created_at.to_string(), "held": b.held, "reasons": b.note})
                    );
                } else {
                    println!(
                        "batch {} from {} at {}: {} observations held",
                        b.id, b.origin, b.created_at, b.held
                    );
                    for r in b.note.split("; ") {
                        println!("  {r}");
                    }
                }
            }
            if batches.is_empty() && !json {
                println!("no batches held");
            }
        }
        ReviewAction::Approve { batch, note } => {
            let applied = hub.approve(*batch, note, now, who)?;
            println!(
                "batch {batch} approved: {} rules added, {} withdrawn",
                applied.rules_added(),
                applied.rules_removed()
            );
        }
        ReviewAction::Reject { batch, note } => {
            let dropped = hub.reject(*batch, note, now, who)?;
            println!("batch {batch} rejected: {dropped} observations discarded");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Withdraw a name now: remove its rules, allowlist it, record why.
#[derive(Debug, clap::Args)]
pub struct DelistArgs {
    #[command(flatten)]
    store: StoreArgs,
    name: String,
    /// Why (kept in the audit log).
    #[arg(long)]
    reason: String,
}

pub fn delist(args: &DelistArgs) -> anyhow::Result<ExitCode> {
    let mut hub = args.store.open_hub()?;
    let applied = hub.delist(
        &args.name,
        &args.reason,
        args.store.now(),
        &args.store.operator,
    )?;
    println!(
        "{} delisted: {} rules withdrawn",
        args.name,
        applied.rules_removed()
    );
    for (feed, (c, serial)) in &applied.feeds {
        println!("  {feed}: -{} → serial {serial}", c.removed.len());
    }
    Ok(ExitCode::SUCCESS)
}
