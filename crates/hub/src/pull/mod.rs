//! Scheduled feed pulls: the hub fetches the feeds named in its config
//! (`[[feed_source]]`, see [`FeedSource`]) on their intervals and imports them through
//! the same path as `sharedefend import`.
//!
//! One pull ([`pull_source`]) is: read the source's last state (memory, or the store
//! when another process pulled it since); a conditional GET (`If-None-Match`,
//! `If-Modified-Since`) where a 304 means nothing to do; a body identical by SHA-256
//! to the last one imported is also nothing to do; otherwise the body is read
//! (gunzipped, format configured or sniffed) and imported in one transaction on a
//! blocking thread, under the circuit breaker, with the journal entries it causes.
//! A source marked `snapshot` withdraws its own observation of whatever it stopped
//! listing. Every `refresh` (default a day) the body is imported even if unchanged,
//! since a re-listing is a new sighting and unrefreshed evidence decays.
//!
//! A pull that fails — no connection, a timeout, an HTTP error, a body too large,
//! not a feed, a store error — changes no data: the previous observations stay and
//! keep being published. It shows in the source's [`SourceStatus`] (last error,
//! consecutive failures) and the [`Scheduler`] tries again after an exponential
//! backoff with jitter, from `backoff_min` doubling up to the interval.
//!
//! The [`Scheduler`] runs one tokio task per source inside `hub serve`; `apply`
//! starts, restarts (changed config) and stops (removed) them as the config is
//! reloaded. Its [`PullStatus`] is shared (`Arc`) with whatever reports status.

mod config;
mod fetch;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use formats::Parsed;
use indicator::Timestamp;
use store::{NewSource, SourceKind};

pub use config::{
    DEFAULT_BACKOFF_MIN, DEFAULT_INTERVAL, DEFAULT_MAX_BODY, DEFAULT_REFRESH, DEFAULT_TIMEOUT,
    DEFAULT_TRUST, FeedSource, MIN_INTERVAL, parse_duration, parse_size, redacted_url, validate,
};
pub use fetch::{FetchError, Fetched, USER_AGENT, client, fetch, read_body};
pub use status::{FeedEffect, ImportCounts, Outcome, PullStatus, SourceStatus};

use crate::{Hub, ImportDefaults, ImportJob, ImportReport};

/// The hub a puller imports into, shared with whoever else imports in this process.
pub type SharedHub = Arc<Mutex<Hub>>;

/// How to run one pull.
#[derive(Debug, Clone, Copy)]
pub struct PullOptions<'a> {
    /// Ignore validators, digest and refresh: fetch and import whatever comes.
    pub force: bool,
    /// Who imports, for the audit log.
    pub who: &'a str,
}

/// Runs one pull of `source` with `client` (see the module doc) and returns the
/// source's new status, also put in `status` and in the store.
pub async fn pull_source(
    hub: &SharedHub,
    status: &PullStatus,
    source: &FeedSource,
    client: &reqwest::Client,
    options: PullOptions<'_>,
) -> SourceStatus {
    use tracing::Instrument;
    let span = tracing::info_span!("pull", source = %source.name);
    pull_inner(hub, status, source, client, options)
        .instrument(span)
        .await
}

async fn pull_inner(
    hub: &SharedHub,
    status: &PullStatus,
    source: &FeedSource,
    client: &reqwest::Client,
    options: PullOptions<'_>,
) -> SourceStatus {
    let prev = last_status(hub, status, source).await;
    let mut st = SourceStatus {
        name: source.name.clone(),
        url: source.display_url(),
        snapshot: source.snapshot,
        interval_ms: millis(source.interval),
        ..prev.clone()
    };
    if prev.url != st.url {
        // Validators and digest belong to the URL they came from.
        st.etag = None;
        st.last_modified = None;
        st.digest = None;
    }
    let now = Timestamp::now();
    st.last_attempt = Some(now);
    st.attempts += 1;
    st.next_attempt = None;
    st.retry_in_ms = None;
    let refresh_due = st
        .last_import
        .is_none_or(|t| now.duration_since(t).unsigned_abs() >= source.refresh);
    let conditional = !options.force && !refresh_due;
    let started = Instant::now();
    let fetched = if conditional {
        fetch(
            client,
            source,
            st.etag.as_deref(),
            st.last_modified.as_deref(),
        )
        .await
    } else {
        fetch(client, source, None, None).await
    };
    match fetched {
        Err(e) => {
            st.http_status = e.status;
            fail(&mut st, format!("fetch: {}", e.message));
        }
        Ok(Fetched::NotModified) => {
            st.http_status = Some(304);
            st.not_modified += 1;
            succeed(&mut st, now, Outcome::NotModified);
            tracing::debug!("not modified");
        }
        Ok(Fetched::Body {
            bytes,
            etag,
            last_modified,
        }) => {
            st.http_status = Some(200);
            st.body_bytes = Some(bytes.len() as u64);
            let digest = sha256_hex(&bytes);
            if conditional && st.digest.as_deref() == Some(digest.as_str()) {
                st.etag = etag;
                st.last_modified = last_modified;
                succeed(&mut st, now, Outcome::Unchanged);
                tracing::debug!("body unchanged");
            } else {
                match import_body(hub, source, bytes, options.who).await {
                    Ok((parsed_format, report)) => {
                        st.etag = etag;
                        st.last_modified = last_modified;
                        st.digest = Some(digest);
                        st.last_import = Some(now);
                        st.imports += 1;
                        record_import(&mut st, parsed_format, &report);
                        let outcome = if report.held.is_some() {
                            Outcome::Held
                        } else {
                            Outcome::Imported
                        };
                        succeed(&mut st, now, outcome);
                        log_import(&st, &report);
                    }
                    Err(message) => fail(&mut st, message),
                }
            }
        }
    }
    st.duration_ms = Some(millis(started.elapsed()));
    if st.last_outcome == Some(Outcome::Failed) {
        tracing::warn!(
            error = st.last_error.as_deref().unwrap_or(""),
            consecutive_failures = st.consecutive_failures,
            "pull failed; the previous data stays"
        );
    }
    save(hub, &st).await;
    status.put(st.clone());
    st
}

fn succeed(st: &mut SourceStatus, now: Timestamp, outcome: Outcome) {
    st.last_outcome = Some(outcome);
    st.last_success = Some(now);
    st.last_error = None;
    st.consecutive_failures = 0;
}

fn fail(st: &mut SourceStatus, message: String) {
    st.last_outcome = Some(Outcome::Failed);
    st.last_error = Some(message);
    st.consecutive_failures += 1;
    st.failures += 1;
}

fn record_import(st: &mut SourceStatus, format: formats::Format, report: &ImportReport) {
    st.last_batch = report.batch_id;
    st.held = report.held.clone().unwrap_or_default();
    st.counts = Some(ImportCounts {
        format: format.name().to_owned(),
        records: report.records,
        indicators: report.indicators,
        rejected: report.rejected,
        unlisted: report.unlisted,
    });
    st.effect = report
        .applied
        .feeds
        .iter()
        .map(|(feed, (c, serial))| FeedEffect {
            feed: feed.clone(),
            added: c.added.len(),
            removed: c.removed.len(),
            serial: *serial,
        })
        .collect();
}

fn log_import(st: &SourceStatus, report: &ImportReport) {
    let serials: Vec<String> = st
        .effect
        .iter()
        .map(|e| format!("{}:+{}-{}@{}", e.feed, e.added, e.removed, e.serial))
        .collect();
    match &report.held {
        Some(reasons) => tracing::warn!(
            batch = report.batch_id,
            reasons = %reasons.join("; "),
            "pull imported but the breaker held the batch for review"
        ),
        None => tracing::info!(
            records = report.records,
            indicators = report.indicators,
            unlisted = report.unlisted,
            added = report.applied.rules_added(),
            removed = report.applied.rules_removed(),
            feeds = %serials.join(" "),
            "pull imported"
        ),
    }
}

/// Reads and imports `bytes` on a blocking thread: parsing outside the hub's lock,
/// the import (one transaction) inside it.
async fn import_body(
    hub: &SharedHub,
    source: &FeedSource,
    bytes: Vec<u8>,
    who: &str,
) -> Result<(formats::Format, ImportReport), String> {
    let hub = hub.clone();
    let source = source.clone();
    let who = who.to_owned();
    tokio::task::spawn_blocking(move || {
        let parsed: Parsed =
            read_body(&bytes, &source).map_err(|e| format!("unreadable body: {e}"))?;
        drop(bytes);
        let new_source = NewSource {
            name: source.name.clone(),
            kind: SourceKind::Feed,
            trust: source.trust,
            group: source.group.clone(),
        };
        let defaults = ImportDefaults {
            category: source.category,
            tlp: source.tlp,
        };
        let origin = source.display_url();
        let job = ImportJob {
            source: &new_source,
            origin: &origin,
            defaults: &defaults,
        };
        let mut hub = hub
            .lock()
            .map_err(|_| "the hub's lock is poisoned".to_owned())?;
        hub.refresh_lists()
            .map_err(|e| format!("reading the allowlists: {e}"))?;
        let now = Timestamp::now();
        let report = if source.snapshot {
            hub.import_snapshot(&job, &parsed, now, &who)
        } else {
            hub.import(&job, &parsed, now, &who)
        }
        .map_err(|e| format!("import failed, nothing was changed: {e}"))?;
        Ok((parsed.format, report))
    })
    .await
    .map_err(|e| format!("import task: {e}"))?
}

/// The source's last status: the store's copy if it is newer than memory's (a
/// `sharedefend pull` from the command line ran since), else memory's.
async fn last_status(hub: &SharedHub, status: &PullStatus, source: &FeedSource) -> SourceStatus {
    let memory = status.get(&source.name);
    let hub = hub.clone();
    let name = source.name.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let mut hub = hub.lock().ok()?;
        let text = hub.store.read(|tx| tx.pull_state(&name)).ok()??;
        serde_json::from_str::<SourceStatus>(&text).ok()
    })
    .await
    .ok()
    .flatten();
    match (memory, stored) {
        (Some(m), Some(s)) if s.last_attempt > m.last_attempt => s,
        (Some(m), _) => m,
        (None, Some(s)) => s,
        (None, None) => SourceStatus::default(),
    }
}

/// Writes the status to the store (a failure is logged: the status stays in memory).
async fn save(hub: &SharedHub, st: &SourceStatus) {
    let Ok(text) = serde_json::to_string(st) else {
        return;
    };
    let hub = hub.clone();
    let name = st.name.clone();
    let at = st.last_attempt.unwrap_or_else(Timestamp::now);
    let result = tokio::task::spawn_blocking(move || {
        let mut hub = hub
            .lock()
            .map_err(|_| "the hub's lock is poisoned".to_owned())?;
        hub.store
            .write(|tx| tx.pull_state_put(&name, &text, at))
            .map_err(|e| e.to_string())
    })
    .await;
    if let Ok(Err(e)) | Err(e) = result.map_err(|e| e.to_string()) {
        tracing::warn!(error = %e, "saving the pull status failed");
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The wait before retrying after `failures` failed pulls in a row: `backoff_min`
/// doubled per further failure, capped at the interval, then "equal jitter" (half
/// fixed, half random), so waits grow and sources that failed together spread out.
pub fn backoff(source: &FeedSource, failures: u32, random: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let base = source
        .backoff_min
        .saturating_mul(1 << exp)
        .min(source.interval);
    let half = base / 2;
    let jitter = half.mul_f64(f64::from(random) / f64::from(u32::MAX));
    half + jitter
}

fn random_u32() -> u32 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u32::from_le_bytes(b)
}

/// When the next pull is due after `st`: the interval after the last attempt, or
/// the backoff after a failure.
fn next_wait(source: &FeedSource, st: &SourceStatus) -> Duration {
    if st.last_outcome == Some(Outcome::Failed) {
        backoff(source, st.consecutive_failures, random_u32())
    } else {
        source.interval
    }
}

/// The running task of each source, with the config it runs.
type Tasks = HashMap<String, (FeedSource, tokio::task::JoinHandle<()>)>;

/// Pulls each configured source on its schedule, one task per source.
#[derive(Debug, Clone)]
pub struct Scheduler {
    hub: SharedHub,
    status: Arc<PullStatus>,
    who: String,
    tasks: Arc<Mutex<Tasks>>,
}

impl Scheduler {
    /// A scheduler importing into `hub`, reporting into `status`, auditing as `who`.
    pub fn new(hub: Hub, status: Arc<PullStatus>, who: &str) -> Scheduler {
        Scheduler {
            hub: Arc::new(Mutex::new(hub)),
            status,
            who: who.to_owned(),
            tasks: Arc::default(),
        }
    }

    pub fn status(&self) -> &Arc<PullStatus> {
        &self.status
    }

    /// Makes the running tasks match `sources`: starts new ones, restarts changed
    /// ones, stops removed ones (a pull in progress finishes its transaction). Must
    /// run inside the tokio runtime.
    pub fn apply(&self, sources: &[FeedSource]) {
        let mut tasks = match self.tasks.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        tasks.retain(|name, (running, handle)| {
            let keep = sources.iter().any(|s| s == running);
            if !keep {
                handle.abort();
                tracing::info!(source = %name, "feed source stopped");
            }
            keep
        });
        for source in sources {
            if tasks.contains_key(&source.name) {
                continue;
            }
            tracing::info!(
                source = %source.name,
                url = %source.display_url(),
                interval_s = source.interval.as_secs_f64(),
                snapshot = source.snapshot,
                "feed source scheduled"
            );
            let handle = tokio::spawn(run_source(
                self.hub.clone(),
                self.status.clone(),
                source.clone(),
                self.who.clone(),
            ));
            tasks.insert(source.name.clone(), (source.clone(), handle));
        }
        self.status
            .retain(&|name| sources.iter().any(|s| s.name == name));
    }

    /// Stops every task.
    pub fn stop(&self) {
        self.apply(&[]);
    }
}

/// One source's loop: wait until due, pull, wait for the interval or the backoff.
async fn run_source(hub: SharedHub, status: Arc<PullStatus>, source: FeedSource, who: String) {
    let client = match client(&source) {
        Ok(c) => c,
        Err(e) => {
            let mut st = status.get(&source.name).unwrap_or_default();
            st.name = source.name.clone();
            st.url = source.display_url();
            fail(&mut st, e.message);
            status.put(st);
            return;
        }
    };
    // Carry on from the last pull (a restart does not re-fetch every feed at once),
    // unless it was of another URL.
    let last = last_status(&hub, &status, &source).await;
    let mut wait = match last.last_attempt {
        Some(at) if last.url == source.display_url() => {
            let since = Timestamp::now().duration_since(at).unsigned_abs();
            next_wait(&source, &last).saturating_sub(since)
        }
        _ => Duration::ZERO,
    };
    loop {
        if !wait.is_zero() {
            let mut st = status.get(&source.name).unwrap_or_else(|| last.clone());
            st.name = source.name.clone();
            st.next_attempt = Timestamp::now().checked_add(wait).ok();
            status.put(st);
            tokio::time::sleep(wait).await;
        }
        let options = PullOptions {
            force: false,
            who: &who,
        };
        let mut st = pull_source(&hub, &status, &source, &client, options).await;
        wait = next_wait(&source, &st);
        if st.last_outcome == Some(Outcome::Failed) {
            st.retry_in_ms = Some(millis(wait));
        }
        st.next_attempt = Timestamp::now().checked_add(wait).ok();
        status.put(st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_interval() {
        let mut s = FeedSource::new(
            "t",
            reqwest::Url::parse("https://feeds.example/x").unwrap_or_else(|e| panic!("{e}")),
        );
        s.backoff_min = Duration::from_secs(30);
        s.interval = Duration::from_secs(600);
        let waits: Vec<(u64, u64)> = (1..=7)
            .map(|n| {
                (
                    backoff(&s, n, 0).as_secs(),
                    backoff(&s, n, u32::MAX).as_secs(),
                )
            })
            .collect();
        assert_eq!(
            waits,
            [
                (15, 30),
                (30, 60),
                (60, 120),
                (120, 240),
                (240, 480),
                (300, 600),
                (300, 600)
            ]
        );
    }
}
