//! `sharedefend import` and `sharedefend sweep`: evidence into the hub.
//!
//! Each file is read (the same readers as `check`), normalised and stored in one
//! transaction with the decisions and journal entries it causes. A file that cannot
//! be read changes nothing and makes the exit code 2; the other files still import.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use formats::{Format, ReadOptions};
use hub::{ImportDefaults, ImportReport};
use indicator::{Category, Tlp};
use serde_json::{Value, json};
use store::{NewSource, SourceKind};

use crate::EXIT_ERROR;
use crate::hubcli::StoreArgs;
use crate::input::read_input;

/// Import feed files as observations of one source, publish what analysis accepts.
///
/// Prints what `check` prints plus what changed: rules added and withdrawn per feed,
/// and whether the circuit breaker held the batch for review.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// The source these files come from (created on first use).
    #[arg(long)]
    source: String,
    /// Trust in the source, 0–1 (kept from earlier imports when not given).
    #[arg(long)]
    trust: Option<f64>,
    /// Independence group: sources that re-publish each other share one and count once.
    #[arg(long)]
    group: Option<String>,
    /// `feed` or `partner`.
    #[arg(long, default_value = "feed")]
    kind: String,
    /// Category for records whose feed does not say (phishing, malware, c2, scam, spam, botnet, unknown).
    #[arg(long, default_value = "unknown")]
    category: Category,
    /// TLP for records whose feed does not say.
    #[arg(long, default_value = "clear")]
    tlp: Tlp,
    /// Read as this format instead of detecting it.
    #[arg(long, value_parser = clap::value_parser!(Format))]
    format: Option<Format>,
    /// Column mapping for `--format csv`.
    #[arg(long)]
    csv_columns: Option<String>,
    /// One JSON object per file.
    #[arg(long)]
    json: bool,
    #[arg(required = true)]
    files: Vec<String>,
}

/// Default trust of a new source.
pub const DEFAULT_TRUST: f64 = 0.8;

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let kind = SourceKind::parse(&args.kind)
        .with_context(|| format!("--kind: expected feed or partner, got {:?}", args.kind))?;
    if let Some(t) = args.trust
        && !(0.0..=1.0).contains(&t)
    {
        anyhow::bail!("--trust: expected a number from 0 to 1, got {t}");
    }
    let mut hub = args.store.open_hub()?;
    let existing = hub.store.read(|tx| tx.source_by_name(&args.source))?;
    let source = NewSource {
        name: args.source.clone(),
        kind,
        trust: args
            .trust
            .or(existing.as_ref().map(|s| s.trust))
            .unwrap_or(DEFAULT_TRUST),
        group: args.group.clone().or(existing.and_then(|s| s.group)),
    };
    let defaults = ImportDefaults {
        category: args.category,
        tlp: args.tlp,
    };
    let options = ReadOptions {
        format: args.format,
        csv_columns: args.csv_columns.clone(),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    for file in &args.files {
        let parsed = match read_input(file, &options) {
            Ok(p) => p,
            Err(e) => {
                failed = true;
                eprintln!("sharedefend: {file}: {e}");
                if args.json {
                    writeln!(out, "{}", json!({"file": file, "error": e.to_string()}))?;
                }
                continue;
            }
        };
        let now = args.store.now();
        let job = hub::ImportJob {
            source: &source,
            origin: file,
            defaults: &defaults,
        };
        let spinner = spinner(file, parsed.records.len());
        let report = hub.import(&job, &parsed, now, &args.store.operator);
        if let Some(s) = spinner {
            s.finish_and_clear();
        }
        let report =
            report.with_context(|| format!("{file}: import failed, nothing was changed"))?;
        if args.json {
            writeln!(out, "{}", report_json(file, parsed.format, &report))?;
        } else {
            write_human(&mut out, file, parsed.format, &report)?;
        }
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// A spinner on a terminal while a file is stored and analysed; nothing otherwise.
fn spinner(file: &str, records: usize) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("{file}: storing and analysing {records} records"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

fn report_json(file: &str, format: Format, r: &ImportReport) -> Value {
    let feeds: serde_json::Map<String, Value> = r
        .applied
        .feeds
        .iter()
        .map(|(f, (c, serial))| {
            (
                f.clone(),
                json!({"added": c.added.len(), "removed": c.removed.len(), "serial": serial}),
            )
        })
        .collect();
    let reasons: serde_json::Map<String, Value> = r
        .reject_reasons
        .iter()
        .map(|(c, n)| (c.as_str().to_owned(), json!(n)))
        .collect();
    json!({
        "file": file,
        "format": format.name(),
        "records": r.records,
        "indicators": r.indicators,
        "rejected": r.rejected,
        "reject_reasons": reasons,
        "allow_skipped": r.allow_skipped,
        "revoked": r.revoked,
        "batch": r.batch_id,
        "held": r.held,
        "added": r.applied.rules_added(),
        "withdrawn": r.applied.rules_removed(),
        "states": r.applied.states,
        "feeds": feeds,
    })
}

fn write_human(
    out: &mut impl Write,
    file: &str,
    format: Format,
    r: &ImportReport,
) -> anyhow::Result<()> {
    writeln!(out, "{file}: {format}")?;
    writeln!(out, "  records      {}", r.records)?;
    writeln!(out, "  indicators   {} unique", r.indicators)?;
    if r.rejected > 0 {
        let reasons: Vec<String> = r
            .reject_reasons
            .iter()
            .map(|(c, n)| format!("{} {n}", c.as_str()))
            .collect();
        writeln!(
            out,
            "  rejected     {} ({})",
            r.rejected,
            reasons.join(", ")
        )?;
    }
    if r.allow_skipped > 0 {
        writeln!(
            out,
            "  skipped      {} allow entries (load them with `allowlist load`)",
            r.allow_skipped
        )?;
    }
    if let Some(reasons) = &r.held {
        writeln!(
            out,
            "  HELD         batch {} held for review:",
            r.batch_id.unwrap_or_default()
        )?;
        for reason in reasons {
            writeln!(out, "    {reason}")?;
        }
        writeln!(
            out,
            "    (sharedefend review approve|reject {})",
            r.batch_id.unwrap_or_default()
        )?;
        return Ok(());
    }
    let states: Vec<String> = r
        .applied
        .states
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    writeln!(out, "  decisions    {}", states.join(", "))?;
    writeln!(
        out,
        "  rules        {} added, {} withdrawn",
        r.applied.rules_added(),
        r.applied.rules_removed()
    )?;
    for (feed, (c, serial)) in &r.applied.feeds {
        writeln!(
            out,
            "    {feed:<10} +{} -{} → serial {serial}",
            c.added.len(),
            c.removed.len()
        )?;
    }
    Ok(())
}

/// Withdraw what has decayed or expired (the hub also does this on a timer).
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[arg(long)]
    json: bool,
}

pub fn sweep(args: &SweepArgs) -> anyhow::Result<ExitCode> {
    let mut hub = args.store.open_hub()?;
    let report = hub.sweep(args.store.now(), &args.store.operator)?;
    if args.json {
        println!(
            "{}",
            json!({"examined": report.examined, "withdrawn": report.applied.rules_removed(), "added": report.applied.rules_added()})
        );
    } else {
        println!(
            "examined {} indicators: {} rules withdrawn, {} added",
            report.examined,
            report.applied.rules_removed(),
            report.applied.rules_added()
        );
    }
    Ok(ExitCode::SUCCESS)
}
