//! How fast are the store's bulk operations? The hub must import at least 50,000
//! indicators a second end to end, so each bulk step on its own must run far faster.
//!
//! Times every bulk operation of an import on 200,000 rows (override with the first
//! argument), each in its own write transaction including the commit, on a fresh
//! SQLite store and on a fresh database of a throwaway PostgreSQL server (started as
//! the tests start it, so with `fsync=off`: commit latency is not measured, the
//! statements are), and prints rows per second.
//!
//! `cargo run --release -p store --example store_speed [ROWS [POSTGRES-PARAMS]]`
//! (with connection parameters, an existing PostgreSQL database is used instead).
#![allow(clippy::print_stdout)] // an example that reports on stdout

#[path = "../tests/support/mod.rs"]
mod support;

use std::error::Error;
use std::time::Instant;

use store::{
    DecisionRow, IndicatorKey, NewSource, ObservationRow, RuleChanges, RuleDelta, RuleText,
    SourceKind, Store, Timestamp,
};

fn main() -> Result<(), Box<dyn Error>> {
    let rows: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200_000,
    };
    let dir = support::TempDir::new("sharedefend-speed");
    println!("{rows} rows per operation; rows/s per operation, commit included");
    run(&mut Store::open_sqlite(dir.path())?, rows)?;
    let params = match std::env::args().nth(2) {
        Some(params) => params,
        None => support::pg_database(),
    };
    run(&mut Store::open_postgres(&params)?, rows)?;
    Ok(())
}

fn run(store: &mut Store, n: usize) -> Result<(), Box<dyn Error>> {
    println!("\n{}:", store.backend());
    let now = Timestamp::from_second(1_700_000_000)?;
    let source = store
        .write(|tx| {
            tx.source_upsert(&NewSource {
                name: "speed".into(),
                kind: SourceKind::Feed,
                trust: 0.8,
                group: None,
            })
        })?
        .id;
    let keys: Vec<IndicatorKey> = (0..n)
        .map(|i| {
            let name = format!("host-{i}.speed-test.example");
            IndicatorKey {
                value: name.clone(),
                kind: "domain".into(),
                host: Some(name),
            }
        })
        .collect();

    let ids = timed(n, "indicator_ids (new)", || {
        store.write(|tx| tx.indicator_ids(&keys))
    })?;
    timed(n, "indicator_ids (existing)", || {
        store.write(|tx| tx.indicator_ids(&keys))
    })?;
    let observations: Vec<ObservationRow> = ids
        .iter()
        .map(|&id| ObservationRow {
            indicator_id: id,
            source_id: source,
            category: "phishing".into(),
            confidence: Some(80),
            tlp: "clear".into(),
            tags: vec!["speed".into()],
            first_seen: now,
            last_seen: now,
            valid_until: None,
            count: 1,
            reference: None,
        })
        .collect();
    timed(n, "observations_merge (new)", || {
        store.write(|tx| tx.observations_merge(&observations))
    })?;
    timed(n, "observations_merge (merging)", || {
        store.write(|tx| tx.observations_merge(&observations))
    })?;
    let decisions: Vec<DecisionRow> = keys
        .iter()
        .zip(&ids)
        .map(|(key, &id)| DecisionRow {
            indicator_id: id,
            state: store::STATE_PUBLISH.into(),
            score: 0.9,
            category: "phishing".into(),
            reasons: vec!["sources: 1".into()],
            rules: vec![rule(&key.value)],
            feeds: vec!["sd-speed".into()],
            decided_at: now,
        })
        .collect();
    timed(n, "decisions_put", || {
        store.write(|tx| tx.decisions_put(&decisions))
    })?;
    let up: Vec<RuleDelta> = keys
        .iter()
        .map(|k| RuleDelta {
            rule: rule(&k.value),
            delta: 1,
        })
        .collect();
    let changes = timed(n, "feed_rules_adjust (0 → 1)", || {
        store.write(|tx| tx.feed_rules_adjust("sd-speed", &up))
    })?;
    timed(n, "journal_append", || {
        store.write(|tx| tx.journal_append("sd-speed", &changes, now, None))
    })?;
    timed(n, "feed_rules_adjust (1 → 2)", || {
        store.write(|tx| tx.feed_rules_adjust("sd-speed", &up))
    })?;
    timed(n, "journal_since (one entry)", || {
        store.read(|tx| tx.journal_since("sd-speed", 0))
    })?;
    timed(n, "observations_of", || {
        store.read(|tx| tx.observations_of(&ids))
    })?;
    timed(n, "integrity_check", || {
        store.read(|tx| tx.integrity_check())
    })?;

    // An import as the hub does it: everything above, one transaction, new rows.
    let fresh: Vec<IndicatorKey> = keys
        .iter()
        .map(|k| IndicatorKey {
            value: format!("new-{}", k.value),
            ..k.clone()
        })
        .collect();
    timed(n, "whole import, one transaction", || {
        store.write(|tx| {
            let ids = tx.indicator_ids(&fresh)?;
            let rows: Vec<ObservationRow> = observations
                .iter()
                .zip(&ids)
                .map(|(o, &id)| ObservationRow {
                    indicator_id: id,
                    ..o.clone()
                })
                .collect();
            tx.observations_merge(&rows)?;
            let decided: Vec<DecisionRow> = decisions
                .iter()
                .zip(&ids)
                .map(|(d, &id)| DecisionRow {
                    indicator_id: id,
                    rules: vec![rule(&format!(
                        "new-{}",
                        d.rules.first().map_or("", |r| r.trigger.as_str())
                    ))],
                    ..d.clone()
                })
                .collect();
            tx.decisions_put(&decided)?;
            let deltas: Vec<RuleDelta> = decided
                .iter()
                .flat_map(|d| &d.rules)
                .map(|r| RuleDelta {
                    rule: r.clone(),
                    delta: 1,
                })
                .collect();
            let changes: RuleChanges = tx.feed_rules_adjust("sd-speed", &deltas)?;
            tx.journal_append("sd-speed", &changes, now, None)
        })
    })?;
    Ok(())
}

fn rule(trigger: &str) -> RuleText {
    RuleText {
        trigger: trigger.into(),
        action: "nxdomain".into(),
    }
}

fn timed<T>(n: usize, what: &str, f: impl FnOnce() -> store::Result<T>) -> store::Result<T> {
    let start = Instant::now();
    let value = f()?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "  {what:32} {seconds:7.3} s  {:>10.0} rows/s",
        n as f64 / seconds.max(1e-9)
    );
    Ok(value)
}
