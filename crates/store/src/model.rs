//! Row types: what the store keeps, in plain data.
//!
//! These are the store's own types, not the core model's: values are canonical text
//! (an `Indicator` printed), times are `Timestamp`s (stored as Unix seconds), lists
//! are small JSON arrays. Converting to and from the core types is the caller's job,
//! so a schema change never ripples into `indicator` or `analysis`.

use std::collections::BTreeMap;

pub use jiff::Timestamp;

/// Kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Feed,
    Partner,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Feed => "feed",
            SourceKind::Partner => "partner",
        }
    }
    pub fn parse(s: &str) -> Option<SourceKind> {
        match s {
            "feed" => Some(SourceKind::Feed),
            "partner" => Some(SourceKind::Partner),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewSource {
    pub name: String,
    pub kind: SourceKind,
    /// 0–1.
    pub trust: f64,
    /// Independence group; `None` = the source is its own group.
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub id: i64,
    pub name: String,
    pub kind: SourceKind,
    pub trust: f64,
    pub group: Option<String>,
}

/// An indicator as the store keys it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndicatorKey {
    /// Canonical text (`Indicator` printed: `evil.example`, `*.evil.example`,
    /// `http://…`, `192.0.2.1`, `10.0.0.0/8`).
    pub value: String,
    /// `domain`, `url`, `ip`, `cidr`.
    pub kind: String,
    /// For domains and URLs: the host name (for wildcards, the name below the `*.`).
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndicatorRow {
    pub id: i64,
    pub value: String,
    pub kind: String,
    pub host: Option<String>,
}

/// One source's report of one indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRow {
    pub indicator_id: i64,
    pub source_id: i64,
    /// `Category::as_str`.
    pub category: String,
    /// 0–100, `None` when the source gave none.
    pub confidence: Option<u8>,
    /// `Tlp::as_str`.
    pub tlp: String,
    pub tags: Vec<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub valid_until: Option<Timestamp>,
    /// How many times this source reported it (merges add up).
    pub count: u32,
    /// A link or id at the source.
    pub reference: Option<String>,
}

/// An observation with what analysis needs from its source.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationWithSource {
    pub observation: ObservationRow,
    pub source: String,
    pub trust: f64,
    pub group: Option<String>,
}

/// Decision states, as stored.
pub const STATE_PUBLISH: &str = "publish";
pub const STATE_URL_ONLY: &str = "url-only";
pub const STATE_ADDRESS_ONLY: &str = "address-only";
pub const STATE_IGNORE: &str = "ignore";
pub const STATE_HOLD: &str = "hold";
pub const STATE_DELISTED: &str = "delisted";

#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    pub indicator_id: i64,
    /// One of the `STATE_*` constants.
    pub state: String,
    pub score: f64,
    /// `Category::as_str` of the deciding evidence.
    pub category: String,
    /// Human-readable reasons, `code: detail` each.
    pub reasons: Vec<String>,
    /// Published rules as `(trigger, action)`, e.g. `("*.evil.example", "nxdomain")`.
    pub rules: Vec<RuleText>,
    /// Feeds the rules are in.
    pub feeds: Vec<String>,
    pub decided_at: Timestamp,
}

/// A rule in text form: trigger (`name` or `*.name`) and action (`nxdomain` …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleText {
    pub trigger: String,
    pub action: String,
}

/// A change of a rule's reference count in a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDelta {
    pub rule: RuleText,
    pub delta: i64,
}

/// Changes of rule reference counts, per feed: what [`crate::Tx::rules_adjust`] takes.
pub type RuleDeltas = BTreeMap<String, Vec<RuleDelta>>;

/// Rules that appeared in or disappeared from a feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleChanges {
    pub added: Vec<RuleText>,
    pub removed: Vec<RuleText>,
}

impl RuleChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRow {
    pub name: String,
    pub serial: u32,
    pub updated_at: Option<Timestamp>,
    /// How many rules the feed has now (kept with every change, not counted).
    pub rules: u64,
    /// Whether this is the union feed (see [`crate::Tx::feed_declare_union`]): its
    /// rules are every rule of every feed, and its own rows only those it alone
    /// carries.
    pub union: bool,
}

/// One published change of one feed: serial N-1 → N.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub feed: String,
    pub serial: u32,
    pub at: Timestamp,
    pub batch_id: Option<i64>,
    pub added: Vec<RuleText>,
    pub removed: Vec<RuleText>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchStatus {
    Published,
    Held,
    Approved,
    Rejected,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Published => "published",
            BatchStatus::Held => "held",
            BatchStatus::Approved => "approved",
            BatchStatus::Rejected => "rejected",
        }
    }
    pub fn parse(s: &str) -> Option<BatchStatus> {
        [
            BatchStatus::Published,
            BatchStatus::Held,
            BatchStatus::Approved,
            BatchStatus::Rejected,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewBatch {
    pub source_id: i64,
    /// What was imported (file name, URL, "api").
    pub origin: String,
    pub status: BatchStatus,
    pub created_at: Timestamp,
    /// Why it was held, or a summary.
    pub note: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    pub id: i64,
    pub source_id: i64,
    pub origin: String,
    pub status: BatchStatus,
    pub created_at: Timestamp,
    pub note: String,
    /// Observations parked while held.
    pub held: u64,
}

/// An allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRow {
    pub list: String,
    /// `allow`, `protected`, `popular`, `shared`.
    pub role: String,
    /// `exact`, `subtree`, `cidr`, `substring`.
    pub extent: String,
    pub value: String,
    pub rank: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: Timestamp,
    /// Who: an operator (`cli:root`), a partner name, `system`.
    pub who: String,
    /// What: `import`, `delist`, `approve`, `reject`, `allowlist-load` …
    pub action: String,
    /// What it was done to: an indicator value, a batch id, a list name.
    pub target: String,
    pub reason: String,
}
