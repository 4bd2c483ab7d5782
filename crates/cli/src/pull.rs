//! `sharedefend pull NAME --config FILE`: run one configured feed source once, now.
//!
//! For the operator who cannot wait for the schedule (a feed fixed upstream, a
//! check at 3 a.m.): the same pull as `hub serve` runs — conditional GET, the same
//! import path, the source's status saved in the store, where a running `hub serve`
//! picks it up (validators included). `--force` fetches and imports whatever comes.
//! Exit 0 when the pull did not fail (imported, held for review, not modified,
//! unchanged), 2 when it failed (the previous data stays).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use hub::pull::{Outcome, PullOptions, PullStatus, SourceStatus};

use crate::EXIT_ERROR;
use crate::hubcli::StoreArgs;

/// Pull one `[[feed_source]]` of the hub's config now, and import it.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// The `name` of a `[[feed_source]]` in the config.
    name: String,
    /// The hub's TOML (the one `hub serve --config` reads).
    #[arg(long, env = "SHAREDEFEND_CONFIG", value_name = "FILE")]
    config: PathBuf,
    /// Ignore ETag, Last-Modified and the last body's digest: fetch and import.
    #[arg(long)]
    force: bool,
    /// Print the source's status as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config =
        hub::ServeConfig::parse(&text).with_context(|| args.config.display().to_string())?;
    let Some(source) = config.feed_sources.iter().find(|s| s.name == args.name) else {
        let names: Vec<&str> = config
            .feed_sources
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        anyhow::bail!(
            "{}: no [[feed_source]] named {:?} (configured: {})",
            args.config.display(),
            args.name,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    let hub = Arc::new(Mutex::new(args.store.open_hub()?));
    let client = hub::pull::client(source).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let status = PullStatus::default();
    let options = PullOptions {
        force: args.force,
        who: &args.store.operator,
    };
    let st = runtime.block_on(hub::pull::pull_source(
        &hub, &status, source, &client, options,
    ));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&st)?)?;
    } else {
        write_human(&mut out, &st)?;
    }
    out.flush()?;
    Ok(match st.last_outcome {
        Some(Outcome::Failed) | None => {
            eprintln!(
                "sharedefend: pull {}: {}",
                st.name,
                st.last_error.as_deref().unwrap_or("failed")
            );
            ExitCode::from(EXIT_ERROR)
        }
        Some(_) => ExitCode::SUCCESS,
    })
}

fn write_human(out: &mut impl Write, st: &SourceStatus) -> anyhow::Result<()> {
    let outcome = st.last_outcome.map_or("unknown", Outcome::as_str);
    writeln!(out, "{}: {outcome} ({})", st.name, st.url)?;
    if let Some(code) = st.http_status {
        let bytes = st
            .body_bytes
            .map_or(String::new(), |b| format!(", {b} bytes"));
        writeln!(
            out,
            "  http         {code}{bytes}, {} ms",
            st.duration_ms.unwrap_or(0)
        )?;
    }
    match st.last_outcome {
        Some(Outcome::Failed) => {
            writeln!(
                out,
                "  error        {}",
                st.last_error.as_deref().unwrap_or("")
            )?;
            writeln!(
                out,
                "  failures     {} in a row; the previous data stays",
                st.consecutive_failures
            )?;
        }
        Some(Outcome::Imported | Outcome::Held) => {
            if let Some(c) = &st.counts {
                writeln!(
                    out,
                    "  records      {} ({}), {} indicators, {} rejected",
                    c.records, c.format, c.indicators, c.rejected
                )?;
                if st.snapshot {
                    writeln!(out, "  unlisted     {} (snapshot)", c.unlisted)?;
                }
            }
            if !st.held.is_empty() {
                writeln!(
                    out,
                    "  HELD         batch {} held for review:",
                    st.last_batch.unwrap_or_default()
                )?;
                for reason in &st.held {
                    writeln!(out, "    {reason}")?;
                }
                writeln!(
                    out,
                    "    (sharedefend review approve|reject {})",
                    st.last_batch.unwrap_or_default()
                )?;
            }
            for e in &st.effect {
                writeln!(
                    out,
                    "    {:<10} +{} -{} → serial {}",
                    e.feed, e.added, e.removed, e.serial
                )?;
            }
        }
        _ => {}
    }
    if let Some(etag) = &st.etag {
        writeln!(out, "  etag         {etag}")?;
    }
    Ok(())
}
