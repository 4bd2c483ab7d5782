//! `sharedefend check`: read feeds and report what is in them, changing nothing.
//!
//! The first thing an analyst does with a new feed is look at it: which format, how
//! many indicators of each kind, what was rejected and why, which lines are broken.
//! `--json` gives the same as one object per file for scripts (schema in
//! `docs/cli.md`).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use formats::{Format, Location, Parsed, ReadOptions, Summary};
use indicator::Kind;
use serde_json::{Value, json};

use crate::EXIT_ERROR;
use crate::input::read_input;

/// How many diagnostics and rejections are listed per file.
const LISTED: usize = 20;

/// Read feed files and summarise them: format, indicators by kind, rejects, problems.
///
/// Exit 0 when every file was read (even with rejected records), 2 when any file could
/// not be read at all.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to read (`-` for standard input; `.gz` is read transparently; a MISP feed
    /// directory or its manifest.json reads the feed's events).
    #[arg(required = true)]
    files: Vec<String>,
    /// Read as this format instead of detecting it.
    #[arg(long, value_parser = clap::value_parser!(Format))]
    format: Option<Format>,
    /// Column mapping for `--format csv`, e.g. `value=url,category=threat` (names or
    /// 1-based positions).
    #[arg(long)]
    csv_columns: Option<String>,
    /// One JSON object per file on standard output.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let options = ReadOptions {
        format: args.format,
        csv_columns: args.csv_columns.clone(),
    };
    let progress = progress_bar(&args.files);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    for file in &args.files {
        if let Some(bar) = &progress {
            bar.set_message(file.clone());
        }
        match read_input(file, &options) {
            Ok(parsed) => {
                let summary = formats::summarise(&parsed);
                if args.json {
                    writeln!(out, "{}", summary_json(file, &parsed, &summary))?;
                } else {
                    write_human(&mut out, file, &parsed, &summary)?;
                }
            }
            Err(e) => {
                failed = true;
                if args.json {
                    writeln!(out, "{}", json!({ "file": file, "error": e.to_string() }))?;
                }
                eprintln!("sharedefend: {file}: {e}");
            }
        }
        if let Some(bar) = &progress {
            bar.inc(1);
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    out.flush().context("writing output")?;
    Ok(if failed {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// Inputs at least this large get a progress display even alone.
const BIG_INPUT: u64 = 8 << 20;

/// On a terminal: a bar over the files, ticking while each is read, when there is
/// more than one file or a big one; nothing otherwise (scripts see clean output).
fn progress_bar(files: &[String]) -> Option<indicatif::ProgressBar> {
    let big = files
        .iter()
        .any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() >= BIG_INPUT));
    if (files.len() < 2 && !big) || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} {wide_msg}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

fn location_json(at: &Location) -> (Value, Value) {
    match at {
        Location::Line(n) => (json!(n), Value::Null),
        Location::Path(p) => (Value::Null, json!(p)),
        Location::File => (Value::Null, Value::Null),
    }
}

fn summary_json(file: &str, parsed: &Parsed, s: &Summary) -> Value {
    let indicators: serde_json::Map<String, Value> = Kind::ALL
        .iter()
        .map(|k| {
            (
                k.as_str().to_owned(),
                json!(s.unique.get(k).copied().unwrap_or(0)),
            )
        })
        .collect();
    let reasons: serde_json::Map<String, Value> = s
        .reject_reasons
        .iter()
        .map(|(code, n)| (code.as_str().to_owned(), json!(n)))
        .collect();
    let rejects: Vec<Value> = s
        .first_rejects
        .iter()
        .map(|(at, r)| {
            let (line, path) = location_json(at);
            json!({ "line": line, "path": path, "reason": r.code.as_str(), "message": r.detail })
        })
        .collect();
    let diagnostics: Vec<Value> = parsed
        .diagnostics
        .iter()
        .take(LISTED)
        .map(|d| {
            let (line, path) = location_json(&d.at);
            json!({ "line": line, "path": path, "message": d.message })
        })
        .collect();
    json!({
        "file": file,
        "format": parsed.format.name(),
        "records": s.records,
        "indicators": indicators,
        "allow": s.allow,
        "pdns": s.pdns,
        "rejected": s.rejected,
        "reject_reasons": reasons,
        "rejects": rejects,
        "diagnostics": diagnostics,
        "diagnostics_total": parsed.diagnostics.len(),
    })
}

fn write_human(
    out: &mut impl Write,
    file: &str,
    parsed: &Parsed,
    s: &Summary,
) -> anyhow::Result<()> {
    writeln!(out, "{file}: {}", parsed.format)?;
    writeln!(out, "  records      {}", s.records)?;
    let kinds: Vec<String> = Kind::ALL
        .iter()
        .map(|k| format!("{} {}", k.as_str(), s.unique.get(k).copied().unwrap_or(0)))
        .collect();
    writeln!(out, "  unique       {}", kinds.join(", "))?;
    if s.allow > 0 {
        writeln!(
            out,
            "  allow        {} (exceptions or allowlist entries)",
            s.allow
        )?;
    }
    if s.pdns > 0 {
        writeln!(out, "  pdns         {}", s.pdns)?;
    }
    if s.rejected > 0 {
        let reasons: Vec<String> = s
            .reject_reasons
            .iter()
            .map(|(c, n)| format!("{} {n}", c.as_str()))
            .collect();
        writeln!(
            out,
            "  rejected     {} ({})",
            s.rejected,
            reasons.join(", ")
        )?;
        for (at, r) in &s.first_rejects {
            writeln!(out, "    {at}: {r}")?;
        }
        if s.rejected > s.first_rejects.len() {
            writeln!(out, "    … and {} more", s.rejected - s.first_rejects.len())?;
        }
    }
    if !parsed.diagnostics.is_empty() {
        writeln!(out, "  diagnostics  {}", parsed.diagnostics.len())?;
        for d in parsed.diagnostics.iter().take(LISTED) {
            writeln!(out, "    {d}")?;
        }
        if parsed.diagnostics.len() > LISTED {
            writeln!(out, "    … and {} more", parsed.diagnostics.len() - LISTED)?;
        }
    }
    Ok(())
}
