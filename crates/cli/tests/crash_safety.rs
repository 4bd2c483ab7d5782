//! Crash safety: `kill -9` during large imports, twenty times.
//!
//! After every kill the store must pass its integrity check, the killed file must be
//! wholly in or wholly out (never some of its observations), and no feed serial may
//! have gone backwards. The kills land at spread-out points of an import whose length
//! is measured first, so they hit reading, analysis and the commit alike.

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use store::Store;

const RUNS: usize = 20;
const NAMES_PER_FILE: usize = 40_000;
/// The store is seeded first so that each killed file is a normal-sized change
/// (under the circuit breaker's 20%), which publishes rather than being held.
const SEED_NAMES: usize = 400_000;

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sharedefend-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn write_feed(dir: &Path, run: usize) -> PathBuf {
    write_names(dir, run, NAMES_PER_FILE)
}

fn write_names(dir: &Path, run: usize, names: usize) -> PathBuf {
    let path = dir.join(format!("feed-{run}.txt"));
    let mut text = String::with_capacity(names * 32);
    for i in 0..names {
        text.push_str(&format!("crash{run}-host{i}.phish-{}.example\n", i % 997));
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn import(data: &Path, run: usize, file: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sharedefend"));
    cmd.args(["import", "--category", "phishing", "--source"])
        .arg(format!("crash-{run}"))
        .arg("--data")
        .arg(data)
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// (observations of source `crash-{run}`, serial of each feed).
fn state(data: &Path, run: usize) -> (usize, Vec<(String, u32)>) {
    let mut store = Store::open_sqlite(data).unwrap_or_else(|e| panic!("reopen after kill: {e}"));
    store
        .read(|tx| {
            tx.integrity_check()?;
            let n = match tx.source_by_name(&format!("crash-{run}"))? {
                Some(s) => tx.indicators_of_source(s.id)?.len(),
                None => 0,
            };
            let serials = tx
                .feeds()?
                .into_iter()
                .map(|f| (f.name, f.serial))
                .collect();
            Ok((n, serials))
        })
        .unwrap_or_else(|e| panic!("after run {run}: {e}"))
}

#[test]
fn kill_9_during_imports_leaves_files_wholly_in_or_out() {
    let dir = temp_dir();
    let data = dir.join("store");
    let seed = write_names(&dir, 999, SEED_NAMES);
    assert!(
        import(&data, 999, &seed)
            .status()
            .unwrap_or_else(|e| panic!("{e}"))
            .success()
    );
    // Calibrate: one import to completion, timed.
    let first = write_feed(&dir, 0);
    let started = Instant::now();
    let status = import(&data, 0, &first)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    let full = started.elapsed();
    let (n, mut serials) = state(&data, 0);
    assert_eq!(n, NAMES_PER_FILE);
    let mut outs = 0;
    let mut ins = 0;
    for run in 1..=RUNS {
        let file = write_feed(&dir, run);
        // Spread the kills from 5% to 95% of a full import.
        let fraction = 0.05 + 0.9 * (run as f64 - 1.0) / (RUNS as f64 - 1.0);
        let delay = full.mul_f64(fraction);
        let mut child = import(&data, run, &file)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let (n, now) = state(&data, run);
        assert!(
            n == 0 || n == NAMES_PER_FILE,
            "run {run}: {n} of {NAMES_PER_FILE} observations: half a file"
        );
        if n == 0 {
            outs += 1
        } else {
            ins += 1
        }
        for (feed, serial) in &now {
            let before = serials
                .iter()
                .find(|(f, _)| f == feed)
                .map_or(0, |(_, s)| *s);
            assert!(
                *serial >= before,
                "run {run}: feed {feed} serial went back from {before} to {serial}"
            );
            if n == NAMES_PER_FILE && (feed == "phishing" || feed == "all") {
                assert!(
                    *serial > before,
                    "run {run}: file in but {feed} serial did not advance"
                );
            }
        }
        serials = now;
    }
    eprintln!("{RUNS} kills: {outs} files out, {ins} in (full import {full:?})");
    assert!(
        outs > 0,
        "no kill landed before a commit ({ins} files in; full import took {full:?})"
    );
    // A normal import after all that still works and advances the serials.
    let last = write_feed(&dir, RUNS + 1);
    assert!(
        import(&data, RUNS + 1, &last)
            .status()
            .unwrap_or_else(|e| panic!("{e}"))
            .success()
    );
    let (n, _) = state(&data, RUNS + 1);
    assert_eq!(n, NAMES_PER_FILE);
    let mut store = Store::open_sqlite(&data).unwrap_or_else(|e| panic!("{e}"));
    let held = store
        .read(|tx| tx.batches(Some(store::BatchStatus::Held)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        held.is_empty(),
        "a batch was held, so the test did not exercise publishing"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
