//! The hub's memory: one interface, two real backends.
//!
//! Everything the hub knows lives here: sources and their trust, every observation
//! with its provenance, the decision for each indicator, the rules each feed publishes
//! (reference-counted, because several indicators can support one rule; one feed may
//! be the union of all the others, stored once), the journal of every published
//! change under a serial that only grows, allowlists, batches held for review, and
//! the audit log. SQLite (bundled, WAL) is the embedded default;
//! PostgreSQL is the production store. Both run the same schema and migrations, and
//! the same test suite (`tests/suite.rs`) runs against both.
//!
//! Writes happen inside [`Store::write`], one transaction: the data that causes a
//! change and the journal entry that publishes it commit together or not at all, so
//! a crash (`kill -9`) never leaves a half-applied import or a serial that went back.

mod model;
mod postgres;
mod schema;
mod sqlite;

pub use model::*;

use std::collections::BTreeMap;
use std::path::Path;

/// `t` as the store keeps it: whole seconds. What a caller reads back of a time it
/// wrote, so it can build the stored form of a row it has just written without
/// reading it.
pub fn stored_time(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// A store error, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("store schema version {found} is newer than this build understands ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("integrity check failed: {0}")]
    Integrity(String),
    #[error("{0}")]
    Invalid(String),
    /// Returned by a caller's closure to roll a transaction back on purpose (e.g. an
    /// import held by the circuit breaker).
    #[error("aborted: {0}")]
    Aborted(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An open store of either kind.
#[derive(Debug)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens (creating if needed) the SQLite store `DIR/sharedefend.db`, applying
    /// migrations.
    pub fn open_sqlite(dir: &Path) -> Result<Store> {
        sqlite::SqliteStore::open(dir).map(Store::Sqlite)
    }

    /// Connects to PostgreSQL (`host=… port=… user=… dbname=…` or a `postgres://` URL),
    /// applying migrations.
    pub fn open_postgres(params: &str) -> Result<Store> {
        postgres::PgStore::connect(params).map(Store::Postgres)
    }

    /// Opens the SQLite store migrated only up to schema `version`, to test upgrades
    /// from stores an older build created. Not for use: this build's operations
    /// assume the latest schema.
    #[doc(hidden)]
    pub fn open_sqlite_at_version(dir: &Path, version: i64) -> Result<Store> {
        sqlite::SqliteStore::open_at_version(dir, version).map(Store::Sqlite)
    }

    /// [`Store::open_sqlite_at_version`] for PostgreSQL.
    #[doc(hidden)]
    pub fn open_postgres_at_version(params: &str, version: i64) -> Result<Store> {
        postgres::PgStore::connect_at_version(params, version).map(Store::Postgres)
    }

    /// Runs `f` in one transaction; commits if it returns `Ok`, rolls back otherwise.
    pub fn write<R>(&mut self, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> Result<R> {
        match self {
            Store::Sqlite(s) => s.write(f),
            Store::Postgres(s) => s.write(f),
        }
    }

    /// Runs `f` in a read-only snapshot.
    pub fn read<R>(&mut self, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> Result<R> {
        match self {
            Store::Sqlite(s) => s.read(f),
            Store::Postgres(s) => s.read(f),
        }
    }

    /// Schema version in force.
    pub fn schema_version(&mut self) -> Result<i64> {
        self.read(|tx| tx.schema_version())
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }
}

/// Every operation on the store, inside one transaction. Bulk operations take slices
/// so an import of a million indicators is a few round trips per thousand, not a
/// million.
pub trait Tx {
    fn schema_version(&mut self) -> Result<i64>;
    /// Checks the database's own integrity (SQLite `PRAGMA integrity_check`, foreign
    /// keys) and the store's invariants (every feed's serial equals its newest
    /// journal entry; rule reference counts are positive).
    fn integrity_check(&mut self) -> Result<()>;

    // --- sources
    /// Creates or updates a source by name; returns it with its id.
    fn source_upsert(&mut self, source: &NewSource) -> Result<SourceRow>;
    fn source_by_name(&mut self, name: &str) -> Result<Option<SourceRow>>;
    fn sources(&mut self) -> Result<Vec<SourceRow>>;

    // --- indicators
    /// Ids of these indicators, creating the missing ones; same order as `keys`.
    fn indicator_ids(&mut self, keys: &[IndicatorKey]) -> Result<Vec<i64>>;
    /// [`Tx::indicator_ids`], also saying of each id whether this call created it.
    /// An indicator created here has no observation, decision or rule yet: a bulk
    /// import uses this to skip looking those up for it.
    fn indicator_ids_created(&mut self, keys: &[IndicatorKey]) -> Result<(Vec<i64>, Vec<bool>)>;
    fn indicator_by_value(&mut self, value: &str) -> Result<Option<IndicatorRow>>;
    fn indicators_by_id(&mut self, ids: &[i64]) -> Result<Vec<IndicatorRow>>;
    /// Indicators whose host (a domain indicator's name, a URL's host) is `host`.
    fn indicators_by_host(&mut self, host: &str) -> Result<Vec<IndicatorRow>>;

    // --- observations (one row per indicator × source; a new sighting merges)
    /// Inserts or merges: first_seen = min, last_seen = max, count += 1, other
    /// fields take the newer values.
    fn observations_merge(&mut self, rows: &[ObservationRow]) -> Result<()>;
    /// All observations of these indicators, with their sources' trust and group.
    fn observations_of(&mut self, indicator_ids: &[i64]) -> Result<Vec<ObservationWithSource>>;
    /// Deletes the observations of `source_id` on these indicators (a snapshot feed
    /// that dropped them; a rejected batch).
    fn observations_delete(&mut self, source_id: i64, indicator_ids: &[i64]) -> Result<usize>;
    /// Ids of indicators observed by `source_id`.
    fn indicators_of_source(&mut self, source_id: i64) -> Result<Vec<i64>>;
    /// Ids of indicators with any observation last seen at or before `before`
    /// (candidates for the decay sweep) and a published decision.
    fn published_indicator_ids(&mut self) -> Result<Vec<i64>>;

    // --- held batches
    fn batch_create(&mut self, batch: &NewBatch) -> Result<i64>;
    fn batch_set_status(&mut self, id: i64, status: BatchStatus, note: &str) -> Result<()>;
    fn batch(&mut self, id: i64) -> Result<Option<BatchRow>>;
    fn batches(&mut self, status: Option<BatchStatus>) -> Result<Vec<BatchRow>>;
    /// Parks observations of a held batch outside the evidence.
    fn held_insert(&mut self, batch_id: i64, rows: &[ObservationRow]) -> Result<()>;
    /// Returns and removes a held batch's observations.
    fn held_take(&mut self, batch_id: i64) -> Result<Vec<ObservationRow>>;
    /// Marks a batch as a full snapshot of its source (see `hub::pull`).
    fn batch_mark_snapshot(&mut self, batch_id: i64) -> Result<()>;
    fn batch_is_snapshot(&mut self, batch_id: i64) -> Result<bool>;

    // --- decisions
    fn decisions_of(&mut self, indicator_ids: &[i64]) -> Result<Vec<DecisionRow>>;
    fn decisions_put(&mut self, rows: &[DecisionRow]) -> Result<()>;
    /// Counts of decisions by state.
    fn decision_counts(&mut self) -> Result<Vec<(String, u64)>>;
    /// Decisions in a state (e.g. `url-only` for URL exports), with their indicators.
    fn decisions_in_state(&mut self, state: &str) -> Result<Vec<(IndicatorRow, DecisionRow)>>;

    // --- feed rules (reference-counted) and the journal
    /// Adjusts reference counts of `(trigger, action)` rules in several feeds by the
    /// given deltas (in any order, a rule possibly repeated: they are summed), and
    /// returns, for each feed named in `deltas` and for the union feed if there is
    /// one, the rules that appeared (0 → n) and disappeared (n → 0), in order of
    /// first appearance in `deltas`. Fails, changing nothing the caller can commit,
    /// if a count would go below zero.
    ///
    /// With a union feed (see [`Tx::feed_declare_union`]), a rule is in the union
    /// while any feed has it; the union's changes are those of that set, so a rule
    /// moving from one feed to another in one call neither leaves nor re-enters it.
    /// Deltas given for the union feed itself count rules only it carries. Every
    /// change returned must be journaled (`journal_append`) in the same transaction.
    fn rules_adjust(&mut self, deltas: &RuleDeltas) -> Result<BTreeMap<String, RuleChanges>>;
    /// [`Tx::rules_adjust`] of one feed, returning that feed's changes. Fails if it
    /// would change the union feed's rules, whose changes it could not return.
    fn feed_rules_adjust(&mut self, feed: &str, deltas: &[RuleDelta]) -> Result<RuleChanges> {
        let mut all = RuleDeltas::new();
        all.insert(feed.to_owned(), deltas.to_vec());
        let mut changes = self.rules_adjust(&all)?;
        if let Some((union, _)) = changes.iter().find(|(f, c)| *f != feed && !c.is_empty()) {
            return Err(StoreError::Invalid(format!(
                "adjusting feed {feed:?} changes the union feed {union:?}: use rules_adjust"
            )));
        }
        Ok(changes.remove(feed).unwrap_or_default())
    }
    /// The feed's current rules, sorted by trigger (for the union feed: the rules
    /// of every feed, each once).
    fn feed_rules(&mut self, feed: &str) -> Result<Vec<RuleText>>;
    fn feed_rule_count(&mut self, feed: &str) -> Result<u64> {
        Ok(self
            .feeds()?
            .into_iter()
            .find(|f| f.name == feed)
            .map_or(0, |f| f.rules))
    }
    /// All feeds with their current serials (created on first use with serial 0).
    fn feeds(&mut self) -> Result<Vec<FeedRow>>;
    fn feed_ensure(&mut self, feed: &str) -> Result<FeedRow>;
    /// Makes `feed` the store's union feed (creating it if needed): from then on
    /// its rules are the rules of every feed, kept without storing them twice. A
    /// no-op if it is already. Fails if another feed is the union, or if any other
    /// feed has rules already (they would join the union without a journal entry).
    fn feed_declare_union(&mut self, feed: &str) -> Result<FeedRow>;
    /// Appends a journal entry: serial = current + 1 (never reused, never lower);
    /// updates the feed's serial; returns the new serial. Triggers and actions may
    /// not contain line breaks.
    fn journal_append(
        &mut self,
        feed: &str,
        changes: &RuleChanges,
        at: Timestamp,
        batch_id: Option<i64>,
    ) -> Result<u32>;
    /// Journal entries of `feed` with serial > `after`, oldest first.
    fn journal_since(&mut self, feed: &str, after: u32) -> Result<Vec<JournalEntry>>;
    /// The rules of `feed` with this trigger (one per action), each with the serial
    /// at which it last appeared in the feed, by action.
    fn rule_serials(&mut self, feed: &str, trigger: &str) -> Result<Vec<(String, u32)>>;
    /// The serial at which `rule` last appeared in `feed`, if it is there now (the
    /// latest of its actions).
    fn rule_published_serial(&mut self, feed: &str, trigger: &str) -> Result<Option<u32>> {
        Ok(self
            .rule_serials(feed, trigger)?
            .into_iter()
            .map(|(_, s)| s)
            .max())
    }

    // --- allowlists
    fn allow_replace_list(&mut self, list: &str, entries: &[AllowRow]) -> Result<()>;
    fn allow_add(&mut self, entries: &[AllowRow]) -> Result<()>;
    fn allow_all(&mut self) -> Result<Vec<AllowRow>>;

    // --- audit
    fn audit(&mut self, entry: &AuditEntry) -> Result<()>;
    fn audit_for(&mut self, target: &str) -> Result<Vec<AuditEntry>>;

    // --- scheduled pulls: the hub's per-source state, opaque text to the store
    /// Creates or replaces the pull state of `source`.
    fn pull_state_put(&mut self, source: &str, state: &str, at: Timestamp) -> Result<()>;
    fn pull_state(&mut self, source: &str) -> Result<Option<String>>;
    /// Every source's pull state, by source name.
    fn pull_states(&mut self) -> Result<Vec<(String, String)>>;
}
