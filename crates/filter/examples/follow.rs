//! Follows one zone with the filter's zone manager and prints what each refresh
//! cost: the measuring tool behind `scripts/bench-secondary` (time of the AXFR and
//! of each IXFR, the process's resident and peak memory), until the filter's own
//! command line exists.
//!
//! Usage: `follow ZONE PRIMARY[:PORT] STATE_DIR [NAME:ALG:SECRET]`; then one command
//! per line on standard input: `refresh` (refresh now and report) or `quit`. The first
//! refresh happens at start. Output: one line of `key=value` per refresh.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dns::secondary::{Limits, SecondaryZone, parse_tsig_spec};
use filter::{OnExpire, ZoneEvent, ZoneManager, ZonesConfig};

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [zone, primary, state, rest @ ..] = args.as_slice() else {
        eprintln!("usage: follow ZONE PRIMARY:PORT STATE_DIR [NAME:ALG:SECRET]");
        std::process::exit(2);
    };
    let primary: SocketAddr = match primary.parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("follow: {primary}: {e}");
            std::process::exit(2);
        }
    };
    let tsig = match rest.first().map(|s| parse_tsig_spec(s)) {
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            eprintln!("follow: {e}");
            std::process::exit(2);
        }
        None => None,
    };
    let events = Arc::new(AtomicU64::new(0));
    let owners = Arc::new(AtomicU64::new(0));
    let sink = {
        let (events, owners) = (events.clone(), owners.clone());
        Arc::new(move |e: &ZoneEvent| {
            events.fetch_add(1, Ordering::Relaxed);
            if let ZoneEvent::Delta { delta, .. } = e {
                owners.fetch_add(
                    (delta.removed.len() + delta.added.len()) as u64,
                    Ordering::Relaxed,
                );
            }
            Ok(())
        })
    };
    let manager = match ZoneManager::new(
        ZonesConfig {
            zones: vec![SecondaryZone {
                apex: zone.clone(),
                primary,
                tsig,
            }],
            state_dir: PathBuf::from(state),
            on_expire: OnExpire::Keep,
            limits: Limits::default(),
        },
        sink,
    ) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("follow: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("follow: {e}");
            std::process::exit(2);
        }
    };
    let (rss, hwm) = memory();
    println!("start rss_kib={rss} hwm_kib={hwm}");
    let started = Instant::now();
    let loaded = manager.load_saved();
    println!(
        "load_saved zones={loaded} ms={}",
        started.elapsed().as_millis()
    );
    let refresh = |what: &str| {
        let started = Instant::now();
        let outcome = runtime.block_on(manager.refresh(zone));
        let ms = started.elapsed().as_millis();
        let (rss, hwm) = memory();
        println!(
            "{what} outcome={outcome:?} ms={ms} rss_kib={rss} hwm_kib={hwm} events={} owners={}",
            events.load(Ordering::Relaxed),
            owners.load(Ordering::Relaxed)
        );
    };
    refresh("refresh");
    for line in std::io::stdin().lock().lines() {
        match line.as_deref().map(str::trim) {
            Ok("refresh") => refresh("refresh"),
            Ok("quit") | Err(_) => break,
            Ok(other) => eprintln!("follow: unknown command {other:?}"),
        }
    }
}
