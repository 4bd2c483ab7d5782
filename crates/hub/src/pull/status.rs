//! What each pulled source last did: the state an operator (and `GET /api/status`,
//! `/metrics`) reads to see that a feed is failing while the hub keeps its data.
//!
//! [`SourceStatus`] is one source's record: times of the last attempt, success and
//! import; the last error and how many attempts in a row failed; the validators
//! (`ETag`, `Last-Modified`) and body digest the next pull sends or compares; what
//! the last import changed (batch, rules added and removed per feed, serials). It is
//! kept in memory in a shared [`PullStatus`] and, as JSON, in the store
//! (`pull_state`), so a restarted hub, or `sharedefend pull` from the command line,
//! carries on where the last pull left off.

use std::collections::BTreeMap;
use std::sync::RwLock;

use indicator::Timestamp;
use serde::{Deserialize, Serialize};

/// How a pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The body was imported and its changes published.
    Imported,
    /// The body was imported but the circuit breaker held the batch for review.
    Held,
    /// The server answered 304: nothing to do.
    NotModified,
    /// A body identical (by SHA-256) to the last one imported: nothing to do.
    Unchanged,
    /// The fetch failed or the body could not be read or imported; the previous
    /// data stays.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Imported => "imported",
            Outcome::Held => "held",
            Outcome::NotModified => "not-modified",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
        }
    }

    /// True unless the pull failed.
    pub fn is_success(self) -> bool {
        self != Outcome::Failed
    }
}

/// What an import did to one feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEffect {
    pub feed: String,
    pub added: usize,
    pub removed: usize,
    /// The feed's serial after the import.
    pub serial: u32,
}

/// Counts from the last import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    pub format: String,
    pub records: usize,
    pub indicators: usize,
    pub rejected: usize,
    /// Snapshot sources: indicators no longer listed (their observation withdrawn).
    pub unlisted: usize,
}

/// One source's pull record. Times are RFC 3339 in JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceStatus {
    pub name: String,
    /// The URL without user, password or query (see `redacted_url`).
    pub url: String,
    pub snapshot: bool,
    pub interval_ms: u64,
    #[serde(with = "ts_opt")]
    pub last_attempt: Option<Timestamp>,
    /// The last pull that did not fail (imported, held, not modified, unchanged).
    #[serde(with = "ts_opt")]
    pub last_success: Option<Timestamp>,
    /// The last pull that imported a body (published or held).
    #[serde(with = "ts_opt")]
    pub last_import: Option<Timestamp>,
    pub last_outcome: Option<Outcome>,
    /// Why the last failed pull failed (kept until the next success).
    pub last_error: Option<String>,
    /// Failed pulls in a row; 0 after a success.
    pub consecutive_failures: u32,
    /// Counters since the source was first pulled.
    pub attempts: u64,
    pub failures: u64,
    pub not_modified: u64,
    pub imports: u64,
    /// HTTP status of the last answer, if there was one.
    pub http_status: Option<u16>,
    /// Bytes of the last body received (as sent: compressed if gzip).
    pub body_bytes: Option<u64>,
    pub duration_ms: Option<u64>,
    /// Validators sent with the next conditional GET.
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// SHA-256 (hex) of the last body imported.
    pub digest: Option<String>,
    pub last_batch: Option<i64>,
    /// Why the circuit breaker held the last batch, if it did.
    pub held: Vec<String>,
    pub counts: Option<ImportCounts>,
    /// The last import's effect: rules added and removed per feed, and the serials.
    pub effect: Vec<FeedEffect>,
    /// When the scheduler will try next (absent for a one-off `sharedefend pull`).
    #[serde(with = "ts_opt")]
    pub next_attempt: Option<Timestamp>,
    /// The wait chosen after the last failure (backoff with jitter).
    pub retry_in_ms: Option<u64>,
}

/// Every configured source's status, shared by the scheduler (writer) and whoever
/// reports it (`hub serve`'s status API and metrics). Cheap to read: one lock, a
/// copy.
#[derive(Debug, Default)]
pub struct PullStatus {
    sources: RwLock<BTreeMap<String, SourceStatus>>,
}

impl PullStatus {
    /// A copy of every source's status, by name.
    pub fn sources(&self) -> Vec<SourceStatus> {
        match self.sources.read() {
            Ok(s) => s.values().cloned().collect(),
            Err(p) => p.into_inner().values().cloned().collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<SourceStatus> {
        match self.sources.read() {
            Ok(s) => s.get(name).cloned(),
            Err(p) => p.into_inner().get(name).cloned(),
        }
    }

    pub(crate) fn put(&self, status: SourceStatus) {
        let mut map = match self.sources.write() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        map.insert(status.name.clone(), status);
    }

    /// Forgets the sources not in `keep` (removed from the config).
    pub(crate) fn retain(&self, keep: &dyn Fn(&str) -> bool) {
        let mut map = match self.sources.write() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        map.retain(|name, _| keep(name));
    }
}

/// `Option<Timestamp>` as an RFC 3339 string or null.
mod ts_opt {
    use indicator::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let s = SourceStatus {
            name: "urlhaus".into(),
            last_attempt: "2026-12-01T10:00:00Z".parse().ok(),
            last_outcome: Some(Outcome::NotModified),
            etag: Some("\"v1\"".into()),
            effect: vec![FeedEffect {
                feed: "all".into(),
                added: 3,
                removed: 1,
                serial: 7,
            }],
            ..SourceStatus::default()
        };
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert!(
            json.contains("\"last_attempt\":\"2026-12-01T10:00:00Z\""),
            "{json}"
        );
        assert!(json.contains("\"last_outcome\":\"not-modified\""), "{json}");
        let back: SourceStatus = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, s);
        // Fields added later read as their defaults from an older record.
        let old: SourceStatus =
            serde_json::from_str("{\"name\":\"x\",\"attempts\":4}").unwrap_or_default();
        assert_eq!((old.name.as_str(), old.attempts), ("x", 4));
    }
}
