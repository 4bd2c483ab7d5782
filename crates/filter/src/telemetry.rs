//! The filter's telemetry without personal data: what was asked and what was
//! blocked, counted, never who asked.
//!
//! [`Telemetry`] is the query path's [`Observer`]. It keeps
//! - queries by type and result and the upstreams' latency in per-thread shards of
//!   atomics (each thread picks a shard once; no cache line is shared on the query
//!   path, a scrape sums the shards);
//! - rule matches per (hour, zone, rule, action, log-only) in per-thread shards of
//!   small maps behind mutexes that only their thread and the flusher take (blocks
//!   are rare — about 0.05% of queries at national scale — and a repeat hit
//!   allocates nothing);
//! - each policy zone's serial, age and expiry, set by whoever loads the zone
//!   ([`Telemetry::set_zone`]: file zones at load, followed zones from the zone
//!   manager's status at each scrape), and the NOTIFYs the manager refused.
//!
//! Match counts are flushed to `STATE/counts/YYYY-MM-DDTHH.jsonl`, one file per UTC
//! hour, one JSON object per (zone, rule, action, log-only) line with its count; a
//! flush adds the new counts to the hour's file and replaces it atomically (temp
//! file, fsync, rename), so counts survive restarts and are summed per hour. Files
//! older than the retention are removed. `/metrics` (Prometheus text, an explicit
//! `prometheus-client` registry, names `sharedefend_filter_*`) is rendered from the
//! same counters at scrape time. The observer is never given a client address or a
//! query name, so neither can end up here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// foldhash (hashbrown's default): counting a match hashes the zone and the rule
// on the query path, where SipHash measured a few per cent of a blocked query.
use hashbrown::HashMap;

use dns::front::{Front, Observer, Policy, QueryResult, Verdict};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// How often match counts are written to the state dir by default.
pub const DEFAULT_FLUSH: Duration = Duration::from_secs(60);
/// Hours of match counts kept in the state dir.
pub const RETENTION_HOURS: i64 = 24 * 31;
/// Shards of counters; threads beyond this share.
const SHARDS: usize = 16;

/// Query types counted by name; the rest count as `other`.
const QTYPES: [(u16, &str); 14] = [
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (15, "MX"),
    (16, "TXT"),
    (28, "AAAA"),
    (33, "SRV"),
    (43, "DS"),
    (48, "DNSKEY"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (255, "ANY"),
];
/// `other`, then `unreadable` (the query could not be read that far).
const QTYPE_SLOTS: usize = QTYPES.len() + 2;
const RESULTS: [&str; 10] = [
    "noerror",
    "formerr",
    "servfail",
    "nxdomain",
    "notimp",
    "refused",
    "other-rcode",
    "blocked",
    "passthru",
    "dropped",
];
/// Upper bounds of the upstream latency buckets, in seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Every RPZ action by the name counts use.
const ACTIONS: [&str; 7] = [
    "nxdomain",
    "nodata",
    "passthru",
    "drop",
    "tcp-only",
    "redirect",
    "local-data",
];
/// Per (action, log-only).
const SLOTS: usize = ACTIONS.len() * 2;

fn qtype_slot(qtype: Option<u16>) -> usize {
    match qtype {
        None => QTYPES.len() + 1,
        Some(t) => QTYPES
            .iter()
            .position(|(code, _)| *code == t)
            .unwrap_or(QTYPES.len()),
    }
}

fn qtype_name(slot: usize) -> &'static str {
    match QTYPES.get(slot) {
        Some((_, name)) => name,
        None if slot == QTYPES.len() => "other",
        None => "unreadable",
    }
}

fn result_slot(result: QueryResult) -> usize {
    match result {
        QueryResult::Rcode(r @ 0..=5) => usize::from(r),
        QueryResult::Rcode(_) => 6,
        QueryResult::Blocked => 7,
        QueryResult::Passthru => 8,
        QueryResult::Dropped => 9,
    }
}

fn action_index(action: &Policy) -> usize {
    match action {
        Policy::Nxdomain => 0,
        Policy::Nodata => 1,
        Policy::Passthru => 2,
        Policy::Drop => 3,
        Policy::TcpOnly => 4,
        Policy::Redirect(_) => 5,
        Policy::Local(_) => 6,
    }
}

fn slot(action: usize, shadow: bool) -> usize {
    action * 2 + usize::from(shadow)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shard this thread writes to, picked once per thread.
fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// One thread's atomics, on cache lines of their own.
#[repr(align(128))]
struct Shard {
    queries: [[AtomicU64; RESULTS.len()]; QTYPE_SLOTS],
    /// Per latency bucket (not cumulative), the last one is +Inf.
    latency: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_micros: AtomicU64,
    upstream_failures: AtomicU64,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard {
            queries: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_micros: AtomicU64::new(0),
            upstream_failures: AtomicU64::new(0),
        }
    }
}

/// One zone's matches in one thread's shard.
#[derive(Default)]
struct ZoneHits {
    /// Since start, for `/metrics`.
    totals: [u64; SLOTS],
    /// Not yet flushed: hour (since the epoch) → rule owner → counts.
    hours: BTreeMap<i64, HashMap<Arc<str>, [u64; SLOTS]>>,
}

/// A zone's state as the metrics show it.
#[derive(Debug, Clone, Copy)]
struct ZoneInfo {
    serial: Option<u32>,
    /// When the copy held was last known current (file: its mtime; secondary: the
    /// primary's last confirmation).
    current_at: SystemTime,
    expired: bool,
}

/// One line of an hour's counts file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CountLine {
    /// The hour's start, RFC 3339 UTC.
    pub hour: String,
    pub zone: String,
    /// The rule's owner relative to the zone.
    pub rule: String,
    pub action: String,
    /// Matched in a log-only zone: counted, the answer left alone.
    pub log_only: bool,
    pub count: u64,
}

type HourCounts = BTreeMap<(String, String, usize), u64>;

/// The filter's counters. One per filter, shared by the query path (as its
/// [`Observer`]), the metrics endpoint and the flusher.
pub struct Telemetry {
    shards: Box<[Shard]>,
    hits: Box<[Mutex<HashMap<String, ZoneHits>>]>,
    zones: Mutex<BTreeMap<String, ZoneInfo>>,
    /// Counts a flush could not write, tried again at the next one.
    unflushed: Mutex<BTreeMap<i64, HourCounts>>,
    /// NOTIFY messages refused (the zone manager's count).
    notifies_refused: AtomicU64,
    state: Option<PathBuf>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn hour_of(t: SystemTime) -> i64 {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    secs / 3600
}

/// `2026-12-05T13:00:00Z`.
fn hour_text(hour: i64) -> String {
    jiff::Timestamp::from_second(hour.saturating_mul(3600))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| hour.to_string())
}

/// `2026-12-05T13` (the file's stem).
fn hour_file(hour: i64) -> String {
    let text = hour_text(hour);
    text.get(..13).unwrap_or(&text).to_owned()
}

fn parse_hour(text: &str) -> Option<i64> {
    let t: jiff::Timestamp = text.parse().ok()?;
    let s = t.as_second();
    (s % 3600 == 0).then_some(s / 3600)
}

impl Telemetry {
    /// Counters that flush to `state/counts/` (none: counted in memory only).
    pub fn new(state: Option<PathBuf>) -> Telemetry {
        Telemetry {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hits: (0..SHARDS).map(|_| Mutex::default()).collect(),
            zones: Mutex::default(),
            unflushed: Mutex::default(),
            notifies_refused: AtomicU64::new(0),
            state,
        }
    }

    /// Where the counts files go.
    pub fn counts_dir(&self) -> Option<PathBuf> {
        self.state.as_ref().map(|s| s.join("counts"))
    }

    /// Records a policy zone's serial and how old the copy is (`age`: since its
    /// file changed, or since its primary last confirmed it). Call again on every
    /// change; the age keeps growing from there until the next call.
    pub fn set_zone(&self, name: &str, serial: Option<u32>, age: Duration) {
        let now = SystemTime::now();
        let current_at = now.checked_sub(age).unwrap_or(UNIX_EPOCH);
        let mut zones = lock(&self.zones);
        let expired = zones.get(name).is_some_and(|z| z.expired);
        zones.insert(
            name.to_owned(),
            ZoneInfo {
                serial,
                current_at,
                expired,
            },
        );
    }

    /// Marks a zone as past its SOA expire (or no longer).
    pub fn set_zone_expired(&self, name: &str, expired: bool) {
        let mut zones = lock(&self.zones);
        let z = zones.entry(name.to_owned()).or_insert(ZoneInfo {
            serial: None,
            current_at: UNIX_EPOCH,
            expired,
        });
        z.expired = expired;
    }

    /// Records the NOTIFY messages refused so far.
    pub fn set_notifies_refused(&self, count: u64) {
        self.notifies_refused.store(count, Ordering::Relaxed);
    }

    /// Forgets a zone no longer configured.
    pub fn remove_zone(&self, name: &str) {
        lock(&self.zones).remove(name);
    }

    fn record_match(&self, verdict: &Verdict, now: SystemTime) {
        let i = slot(action_index(&verdict.action), verdict.shadow);
        let hour = hour_of(now);
        let mut hits = lock(&self.hits[my_shard() % self.hits.len()]);
        let zone = match hits.get_mut(verdict.zone.name()) {
            Some(z) => z,
            None => hits.entry(verdict.zone.name().to_owned()).or_default(),
        };
        zone.totals[i] += 1;
        let rules = zone.hours.entry(hour).or_default();
        match rules.get_mut(&*verdict.rule) {
            Some(c) => c[i] += 1,
            None => {
                let mut c = [0; SLOTS];
                c[i] = 1;
                rules.insert(verdict.rule.clone(), c);
            }
        }
    }

    /// Takes every count not yet flushed: hour → (zone, rule, slot) → count.
    fn take_pending(&self) -> BTreeMap<i64, HourCounts> {
        let mut out = std::mem::take(&mut *lock(&self.unflushed));
        for shard in &*self.hits {
            let mut hits = lock(shard);
            for (zone, z) in hits.iter_mut() {
                for (hour, rules) in std::mem::take(&mut z.hours) {
                    let into = out.entry(hour).or_default();
                    for (rule, counts) in rules {
                        for (i, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
                            *into.entry((zone.clone(), rule.to_string(), i)).or_default() += n;
                        }
                    }
                }
            }
        }
        out
    }

    /// Adds the counts gathered since the last flush to their hours' files in the
    /// state dir, and removes files past the retention. Without a state dir, does
    /// nothing (the counts stay in memory for `/metrics`). Returns the files written.
    pub fn flush(&self) -> std::io::Result<usize> {
        let Some(dir) = self.counts_dir() else {
            return Ok(0);
        };
        let pending = self.take_pending();
        std::fs::create_dir_all(&dir)?;
        let mut written = 0;
        let mut first_error = None;
        let mut failed = BTreeMap::new();
        for (hour, counts) in pending {
            match merge_hour(&dir, hour, &counts) {
                Ok(()) => written += 1,
                Err(e) => {
                    failed.insert(hour, counts);
                    first_error.get_or_insert(e);
                }
            }
        }
        if !failed.is_empty() {
            let mut unflushed = lock(&self.unflushed);
            for (hour, counts) in failed {
                let into = unflushed.entry(hour).or_default();
                for (k, n) in counts {
                    *into.entry(k).or_default() += n;
                }
            }
        }
        remove_old(&dir, hour_of(SystemTime::now()) - RETENTION_HOURS);
        match first_error {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    /// The registry `/metrics` renders: this telemetry and `front`'s own counters.
    pub fn registry(self: &Arc<Self>, front: Front) -> Registry {
        let mut registry = Registry::with_prefix("sharedefend_filter");
        registry.register_collector(Box::new(Metrics {
            telemetry: self.clone(),
            front,
        }));
        registry
    }

    /// The Prometheus text (format 0.0.4) of `registry`.
    pub fn render(registry: &Registry) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
            let _ = writeln!(text, "# encoding failed: {e}");
        }
        text
    }
}

impl Observer for Telemetry {
    fn answered(&self, qtype: Option<u16>, result: QueryResult) {
        let shard = &self.shards[my_shard() % self.shards.len()];
        shard.queries[qtype_slot(qtype)][result_slot(result)].fetch_add(1, Ordering::Relaxed);
    }

    fn matched(&self, verdict: &Verdict) {
        self.record_match(verdict, SystemTime::now());
    }

    fn upstream(&self, elapsed: Duration, ok: bool) {
        let shard = &self.shards[my_shard() % self.shards.len()];
        if !ok {
            shard.upstream_failures.fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        shard.latency[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        shard.latency_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Reads an hour's file (if any), adds `counts`, writes it back atomically.
fn merge_hour(dir: &Path, hour: i64, counts: &HourCounts) -> std::io::Result<()> {
    let path = dir.join(format!("{}.jsonl", hour_file(hour)));
    let mut all = counts.clone();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let parsed = serde_json::from_str::<CountLine>(line)
                    .map_err(|e| e.to_string())
                    .and_then(|l| {
                        let a = ACTIONS
                            .iter()
                            .position(|a| *a == l.action)
                            .ok_or_else(|| format!("unknown action {:?}", l.action))?;
                        if parse_hour(&l.hour) != Some(hour) {
                            return Err(format!("hour {:?} is not the file's", l.hour));
                        }
                        Ok(((l.zone, l.rule, slot(a, l.log_only)), l.count))
                    });
                match parsed {
                    Ok((k, c)) => {
                        let e = all.entry(k).or_default();
                        *e = e.saturating_add(c);
                    }
                    // Never lose the new counts over an old bad line; say where it was.
                    Err(e) => tracing::warn!(
                        file = %path.display(),
                        line = n + 1,
                        "skipping an unreadable counts line: {e}"
                    ),
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let hour_shown = hour_text(hour);
    let mut body = Vec::with_capacity(all.len() * 96);
    for ((zone, rule, i), count) in all {
        let line = CountLine {
            hour: hour_shown.clone(),
            zone,
            rule,
            action: ACTIONS.get(i / 2).copied().unwrap_or("unknown").to_owned(),
            log_only: i % 2 == 1,
            count,
        };
        serde_json::to_writer(&mut body, &line).map_err(std::io::Error::other)?;
        body.push(b'\n');
    }
    write_atomic(&path, &body)
}

/// Temp file in the same directory, fsync, rename, fsync the directory.
fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes hour files older than `before` (an hour since the epoch).
fn remove_old(dir: &Path, before: i64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")) else {
            continue;
        };
        if let Some(hour) = parse_hour(&format!("{stem}:00:00Z"))
            && hour < before
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Sums every hour file of a counts dir per (zone, rule, action, log-only): the
/// totals since the oldest hour kept. Errors name the file and line.
pub fn read_counts(dir: &Path) -> Result<Vec<CountLine>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            let l: CountLine = serde_json::from_str(line)
                .map_err(|e| format!("{}: line {}: {e}", f.display(), n + 1))?;
            out.push(l);
        }
    }
    Ok(out)
}

/// The `/metrics` collector: reads the counters at scrape time.
struct Metrics {
    telemetry: Arc<Telemetry>,
    front: Front,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let t = &*self.telemetry;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        // Queries by type and result.
        let mut queries = [[0u64; RESULTS.len()]; QTYPE_SLOTS];
        let mut latency = [0u64; LATENCY_BOUNDS.len() + 1];
        let (mut micros, mut failures) = (0u64, 0u64);
        for s in &*t.shards {
            for (q, row) in queries.iter_mut().zip(&s.queries) {
                for (v, a) in q.iter_mut().zip(row) {
                    *v += load(a);
                }
            }
            for (v, a) in latency.iter_mut().zip(&s.latency) {
                *v += load(a);
            }
            micros += load(&s.latency_micros);
            failures += load(&s.upstream_failures);
        }
        {
            let mut m = encoder.encode_descriptor(
                "queries",
                "Queries answered, by query type and result (an RCODE, or blocked, passthru, dropped by a policy rule).",
                None,
                MetricType::Counter,
            )?;
            for (q, row) in queries.iter().enumerate() {
                for (r, v) in row.iter().enumerate().filter(|(_, v)| **v > 0) {
                    let labels = [("qtype", qtype_name(q)), ("result", RESULTS[r])];
                    ConstCounter::new(*v).encode(m.encode_family(&labels)?)?;
                }
            }
        }

        // Matches by zone and action, enforced and log-only.
        let mut per_zone: BTreeMap<String, [u64; SLOTS]> = BTreeMap::new();
        for shard in &*t.hits {
            for (zone, z) in lock(shard).iter() {
                let into = per_zone.entry(zone.clone()).or_insert([0; SLOTS]);
                for (v, n) in into.iter_mut().zip(z.totals) {
                    *v += n;
                }
            }
        }
        for (name, help, shadow) in [
            (
                "blocks",
                "Answers a policy rule decided, by zone and action (passthru included).",
                false,
            ),
            (
                "log_only_matches",
                "Matches of log-only zones (answers left alone), by zone and action.",
                true,
            ),
        ] {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (zone, counts) in &per_zone {
                for (a, action) in ACTIONS.iter().enumerate() {
                    let v = counts[slot(a, shadow)];
                    if v > 0 {
                        let labels = [("zone", zone.as_str()), ("action", action)];
                        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
                    }
                }
            }
        }

        let stats = self.front.stats();
        counter(
            &mut encoder,
            "cache_hits",
            "Queries answered from the answer cache.",
            load(&stats.cache_hits),
        )?;
        counter(
            &mut encoder,
            "cache_misses",
            "Answers the cache did not hold (asked upstream).",
            load(&stats.cache_misses),
        )?;
        let (entries, bytes) = self.front.cache_usage();
        gauge(
            &mut encoder,
            "cache_entries",
            "Answers in the cache.",
            i64::try_from(entries).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut encoder,
            "cache_bytes",
            "Bytes the cached answers take.",
            i64::try_from(bytes).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut encoder,
            "upstream_failures",
            "Resolutions no upstream answered (SERVFAIL sent).",
            failures,
        )?;
        {
            let m = encoder.encode_descriptor(
                "upstream_latency_seconds",
                "Time to an upstream answer, every upstream tried in turn included.",
                None,
                MetricType::Histogram,
            )?;
            // Per bucket, not cumulative: the encoder sums them; the last is +Inf.
            let buckets: Vec<(f64, u64)> = latency
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let bound = LATENCY_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY);
                    (bound, *n)
                })
                .collect();
            let mut m = m;
            m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                micros as f64 / 1e6,
                latency.iter().sum(),
                &buckets,
                None,
            )?;
        }

        let zones = lock(&t.zones).clone();
        let now = SystemTime::now();
        {
            let mut m = encoder.encode_descriptor(
                "zone_serial",
                "SOA serial of each policy zone's copy in force.",
                None,
                MetricType::Gauge,
            )?;
            for (name, z) in &zones {
                if let Some(serial) = z.serial {
                    ConstGauge::new(i64::from(serial))
                        .encode(m.encode_family(&[("zone", name.as_str())])?)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "zone_age_seconds",
                "Seconds since each policy zone was last known current (file: modified; secondary: confirmed by its primary).",
                None,
                MetricType::Gauge,
            )?;
            for (name, z) in &zones {
                let age = now.duration_since(z.current_at).unwrap_or_default();
                ConstGauge::new(i64::try_from(age.as_secs()).unwrap_or(i64::MAX))
                    .encode(m.encode_family(&[("zone", name.as_str())])?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "zone_expired",
                "1 when a policy zone is past its SOA expire without a word from its primary.",
                None,
                MetricType::Gauge,
            )?;
            for (name, z) in &zones {
                ConstGauge::new(i64::from(z.expired))
                    .encode(m.encode_family(&[("zone", name.as_str())])?)?;
            }
        }
        gauge(
            &mut encoder,
            "zones_expired",
            "Policy zones past their SOA expire without a word from their primary.",
            i64::try_from(zones.values().filter(|z| z.expired).count()).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut encoder,
            "notifies_refused",
            "NOTIFY messages refused (not a followed zone, not from its primary, or a bad TSIG).",
            load(&t.notifies_refused),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dns::front::{PolicySoa, PolicyZone};

    fn verdict(zone: &str, rule: &str, action: Policy, shadow: bool) -> Verdict {
        let soa = PolicySoa {
            ttl: 60,
            mname: "ns.example".into(),
            rname: "admin.example".into(),
            serial: 7,
            refresh: 60,
            retry: 60,
            expire: 600,
            minimum: 60,
        };
        Verdict {
            action,
            zone: Arc::new(PolicyZone::new(zone, soa).unwrap_or_else(|e| panic!("{e}"))),
            rule: rule.into(),
            shadow,
        }
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sd-telemetry-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn counts_are_summed_per_hour_across_flushes_and_instances() {
        let state = dir("sum");
        let hour = hour_of(SystemTime::now());
        let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(hour * 3600 + 10).unwrap_or(0));
        let earlier = at - Duration::from_secs(3600);
        let nx = verdict("bad.rpz", "evil.example", Policy::Nxdomain, false);
        let shadow = verdict("watch.rpz", "*.odd.example", Policy::Nxdomain, true);

        let t = Telemetry::new(Some(state.clone()));
        t.record_match(&nx, at);
        t.record_match(&nx, at);
        t.record_match(&shadow, at);
        t.record_match(&nx, earlier);
        assert_eq!(t.flush().unwrap_or_else(|e| panic!("{e}")), 2);
        // Nothing new: nothing written.
        assert_eq!(t.flush().unwrap_or_else(|e| panic!("{e}")), 0);

        // A second instance (a restart) adds to the same hour.
        let t = Telemetry::new(Some(state.clone()));
        t.record_match(&nx, at);
        t.flush().unwrap_or_else(|e| panic!("{e}"));

        let file = state
            .join("counts")
            .join(format!("{}.jsonl", hour_file(hour)));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
        let lines: Vec<CountLine> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let find = |zone: &str| lines.iter().find(|l| l.zone == zone).cloned();
        let l = find("bad.rpz").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            (l.rule.as_str(), l.action.as_str(), l.log_only, l.count),
            ("evil.example", "nxdomain", false, 3)
        );
        assert_eq!(l.hour, hour_text(hour));
        let l = find("watch.rpz").unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            (l.rule.as_str(), l.log_only, l.count),
            ("*.odd.example", true, 1)
        );
        let all = read_counts(&state.join("counts")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.iter().map(|l| l.count).sum::<u64>(), 5);
        let _ = std::fs::remove_dir_all(&state);
    }

    #[test]
    fn old_hours_are_removed_and_bad_lines_skipped() {
        let state = dir("old");
        let counts = state.join("counts");
        std::fs::create_dir_all(&counts).unwrap_or_else(|e| panic!("{e}"));
        let old = hour_of(SystemTime::now()) - RETENTION_HOURS - 2;
        let old_file = counts.join(format!("{}.jsonl", hour_file(old)));
        std::fs::write(&old_file, "").unwrap_or_else(|e| panic!("{e}"));
        let now = SystemTime::now();
        let hour = hour_of(now);
        let file = counts.join(format!("{}.jsonl", hour_file(hour)));
        std::fs::write(&file, "not json\n").unwrap_or_else(|e| panic!("{e}"));
        let t = Telemetry::new(Some(state.clone()));
        t.record_match(&verdict("bad.rpz", "x.example", Policy::Drop, false), now);
        t.flush().unwrap_or_else(|e| panic!("{e}"));
        assert!(!old_file.exists());
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("\"action\":\"drop\""), "{text}");
        let _ = std::fs::remove_dir_all(&state);
    }

    /// Regression: the buckets were passed cumulated to an encoder that cumulates
    /// them again, with an extra `le="1.79…e308"` bucket before `+Inf`.
    #[test]
    fn latency_histogram_is_cumulative_once_and_ends_at_inf() {
        let t = Arc::new(Telemetry::new(None));
        for ms in [0, 3, 3, 40, 10_000] {
            t.upstream(Duration::from_millis(ms), ms < 10_000);
        }
        let screen = Arc::new(crate::ReferenceScreen::new(
            Vec::new(),
            crate::Allowlist::default(),
        ));
        let front = Front::new(screen, dns::front::FrontConfig::default());
        let text = Telemetry::render(&t.registry(front));
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("sharedefend_filter_upstream_latency_seconds_bucket"))
            .collect();
        expect_test::expect![[r#"
            sharedefend_filter_upstream_latency_seconds_bucket{le="0.001"} 1
            sharedefend_filter_upstream_latency_seconds_bucket{le="0.0025"} 1
            sharedefend_filter_upstream_latency_seconds_bucket{le="0.005"} 3
            sharedefend_filter_upstream_latency_seconds_bucket{le="0.01"} 3
            sharedefend_filter_upstream_latency_seconds_bucket{le="0.025"} 3
            sharedefend_filter_upstream_latency_seconds_bucket{le="0.05"} 4
            sharedefend_filter_upstream_latency_seconds_bucket{le="0.1"} 4
            sharedefend_filter_upstream_latency_seconds_bucket{le="0.25"} 4
            sharedefend_filter_upstream_latency_seconds_bucket{le="0.5"} 4
            sharedefend_filter_upstream_latency_seconds_bucket{le="1"} 4
            sharedefend_filter_upstream_latency_seconds_bucket{le="2.5"} 4
            sharedefend_filter_upstream_latency_seconds_bucket{le="5"} 4
            sharedefend_filter_upstream_latency_seconds_bucket{le="+Inf"} 5"#]]
        .assert_eq(&buckets.join("\n"));
        assert!(
            text.contains("sharedefend_filter_upstream_latency_seconds_count 5\n"),
            "{text}"
        );
        assert!(
            text.contains("sharedefend_filter_upstream_failures_total 1\n"),
            "{text}"
        );
    }

    #[test]
    fn slots_name_every_value() {
        assert_eq!(qtype_name(qtype_slot(Some(28))), "AAAA");
        assert_eq!(qtype_name(qtype_slot(Some(999))), "other");
        assert_eq!(qtype_name(qtype_slot(None)), "unreadable");
        assert_eq!(RESULTS[result_slot(QueryResult::Rcode(3))], "nxdomain");
        assert_eq!(RESULTS[result_slot(QueryResult::Rcode(9))], "other-rcode");
        assert_eq!(RESULTS[result_slot(QueryResult::Dropped)], "dropped");
        assert_eq!(parse_hour(&hour_text(493_000)), Some(493_000));
        assert_eq!(hour_file(0), "1970-01-01T00");
    }
}
