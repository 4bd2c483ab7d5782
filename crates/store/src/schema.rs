//! The schema both backends share, its migrations, and how rows map to columns.
//!
//! A store outlives the build that created it, so the schema is a numbered list of
//! migrations, never edited once shipped: a store opens by applying, in one
//! transaction, every step newer than the version recorded in `schema_version`. A
//! store newer than this build refuses to open ([`StoreError::TooNew`]) rather than
//! be written by code that does not know its shape. Each step is written once per SQL
//! dialect; the logical schema is the same. The rest of this file is what both
//! backends need to agree on: column lists, the encodings of times and lists, the
//! store's invariants as queries, and the in-memory merge rules bulk statements rely
//! on.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use crate::{
    AllowRow, AuditEntry, BatchRow, BatchStatus, DecisionRow, FeedRow, IndicatorRow, JournalEntry,
    NewSource, ObservationRow, ObservationWithSource, Result, RuleChanges, RuleDeltas, RuleText,
    SourceKind, SourceRow, StoreError, Timestamp,
};

/// One schema step.
#[derive(Debug)]
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

/// The version this build writes.
pub(crate) const LATEST: i64 = 4;

/// Every step, oldest first. Append only: a shipped step is never edited.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "base schema",
        sqlite: V1_SQLITE,
        postgres: V1_POSTGRES,
    },
    Migration {
        version: 2,
        description: "indexes for per-source, per-state and per-target lookups",
        sqlite: V2,
        postgres: V2,
    },
    Migration {
        version: 3,
        description: "union feed: `all` derived from the other feeds; feed rules keyed by rule; \
                      rule counts kept per feed; journal changes in chunks",
        sqlite: V3_SQLITE,
        postgres: V3_POSTGRES,
    },
    Migration {
        version: 4,
        description: "scheduled feed pulls: per-source pull state, snapshot batches",
        sqlite: V4_SQLITE,
        postgres: V4_POSTGRES,
    },
];

/// Created before any step runs; one row per applied step.
pub(crate) const SCHEMA_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT PRIMARY KEY,
    applied_at BIGINT NOT NULL,
    description TEXT NOT NULL
)";

pub(crate) const CURRENT_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_version";

/// The steps to apply to a store at `found` to bring it to `target`, or `TooNew`.
pub(crate) fn pending(found: i64, target: i64) -> Result<impl Iterator<Item = &'static Migration>> {
    if found > LATEST {
        return Err(StoreError::TooNew {
            found,
            known: LATEST,
        });
    }
    if !(0..=LATEST).contains(&target) {
        return Err(StoreError::Invalid(format!(
            "schema version {target} does not exist (this build knows 1 to {LATEST})"
        )));
    }
    Ok(MIGRATIONS
        .iter()
        .filter(move |m| m.version > found && m.version <= target))
}

// References. SQLite checks a foreign key per row at almost no cost, so it declares
// them all. PostgreSQL checks one with a trigger and a query per row, which made a
// plain bulk insert of 200,000 rows 3.4 times slower (1.22 s against 0.36 s), so it
// declares them only on the small tables (batches, journal); the bulk statements
// check references set-wise (a join: 0.49 s) or get them from the same method, and
// `integrity_check` looks for orphans (`PG_REFERENCES`). Both reject the same writes.
//
// SQLite: `INTEGER PRIMARY KEY` is the rowid; tables keyed by several columns are
// `WITHOUT ROWID`, so an upsert on them touches one b-tree, not a table and an index.
// PostgreSQL: text is `COLLATE "C"` (byte order, as SQLite's BINARY), so `ORDER BY`
// gives the same order on both whatever the cluster's locale, and key comparisons
// are memcmp. The tables a re-import updates row by row leave 30% of each page free,
// so that updates of unindexed columns stay on the page (HOT) and skip the indexes.
const V1_SQLITE: &str = "
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('feed', 'partner')),
    trust REAL NOT NULL,
    grp TEXT
);
CREATE TABLE indicators (
    id INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    host TEXT
);
CREATE INDEX indicators_host ON indicators (host);
CREATE TABLE observations (
    indicator_id INTEGER NOT NULL REFERENCES indicators (id),
    source_id INTEGER NOT NULL REFERENCES sources (id),
    category TEXT NOT NULL,
    confidence INTEGER,
    tlp TEXT NOT NULL,
    tags TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    valid_until INTEGER,
    count INTEGER NOT NULL,
    reference TEXT,
    PRIMARY KEY (indicator_id, source_id)
) WITHOUT ROWID;
CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    source_id INTEGER NOT NULL REFERENCES sources (id),
    origin TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('published', 'held', 'approved', 'rejected')),
    created_at INTEGER NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE held_observations (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches (id),
    indicator_id INTEGER NOT NULL REFERENCES indicators (id),
    source_id INTEGER NOT NULL REFERENCES sources (id),
    category TEXT NOT NULL,
    confidence INTEGER,
    tlp TEXT NOT NULL,
    tags TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    valid_until INTEGER,
    count INTEGER NOT NULL,
    reference TEXT
);
CREATE INDEX held_observations_batch ON held_observations (batch_id);
CREATE TABLE decisions (
    indicator_id INTEGER PRIMARY KEY REFERENCES indicators (id),
    state TEXT NOT NULL,
    score REAL NOT NULL,
    category TEXT NOT NULL,
    reasons TEXT NOT NULL,
    rules TEXT NOT NULL,
    feeds TEXT NOT NULL,
    decided_at INTEGER NOT NULL
);
CREATE TABLE feeds (
    name TEXT PRIMARY KEY,
    serial INTEGER NOT NULL CHECK (serial >= 0),
    updated_at INTEGER
);
CREATE TABLE feed_rules (
    feed TEXT NOT NULL REFERENCES feeds (name),
    trigger TEXT NOT NULL,
    action TEXT NOT NULL,
    refcount INTEGER NOT NULL CHECK (refcount > 0),
    serial_added INTEGER NOT NULL,
    PRIMARY KEY (feed, trigger, action)
) WITHOUT ROWID;
CREATE TABLE journal (
    feed TEXT NOT NULL REFERENCES feeds (name),
    serial INTEGER NOT NULL CHECK (serial > 0),
    at INTEGER NOT NULL,
    batch_id INTEGER REFERENCES batches (id),
    PRIMARY KEY (feed, serial)
) WITHOUT ROWID;
CREATE TABLE journal_changes (
    feed TEXT NOT NULL,
    serial INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('+', '-')),
    trigger TEXT NOT NULL,
    action TEXT NOT NULL,
    PRIMARY KEY (feed, serial, seq),
    FOREIGN KEY (feed, serial) REFERENCES journal (feed, serial)
) WITHOUT ROWID;
CREATE TABLE allowlist (
    id INTEGER PRIMARY KEY,
    list TEXT NOT NULL,
    role TEXT NOT NULL,
    extent TEXT NOT NULL,
    value TEXT NOT NULL,
    rank INTEGER,
    UNIQUE (list, role, extent, value)
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL
);
";

const V1_POSTGRES: &str = "
CREATE TABLE sources (
    id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE \"C\" NOT NULL UNIQUE,
    kind TEXT COLLATE \"C\" NOT NULL CHECK (kind IN ('feed', 'partner')),
    trust DOUBLE PRECISION NOT NULL,
    grp TEXT COLLATE \"C\"
);
CREATE TABLE indicators (
    id BIGSERIAL PRIMARY KEY,
    value TEXT COLLATE \"C\" NOT NULL UNIQUE,
    kind TEXT COLLATE \"C\" NOT NULL,
    host TEXT COLLATE \"C\"
);
CREATE INDEX indicators_host ON indicators (host);
CREATE TABLE observations (
    indicator_id BIGINT NOT NULL,
    source_id BIGINT NOT NULL,
    category TEXT COLLATE \"C\" NOT NULL,
    confidence BIGINT,
    tlp TEXT COLLATE \"C\" NOT NULL,
    tags TEXT COLLATE \"C\" NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    valid_until BIGINT,
    count BIGINT NOT NULL,
    reference TEXT COLLATE \"C\",
    PRIMARY KEY (indicator_id, source_id)
) WITH (fillfactor = 70);
CREATE TABLE batches (
    id BIGSERIAL PRIMARY KEY,
    source_id BIGINT NOT NULL REFERENCES sources (id),
    origin TEXT COLLATE \"C\" NOT NULL,
    status TEXT COLLATE \"C\" NOT NULL CHECK (status IN ('published', 'held', 'approved', 'rejected')),
    created_at BIGINT NOT NULL,
    note TEXT COLLATE \"C\" NOT NULL
);
CREATE TABLE held_observations (
    id BIGSERIAL PRIMARY KEY,
    batch_id BIGINT NOT NULL,
    indicator_id BIGINT NOT NULL,
    source_id BIGINT NOT NULL,
    category TEXT COLLATE \"C\" NOT NULL,
    confidence BIGINT,
    tlp TEXT COLLATE \"C\" NOT NULL,
    tags TEXT COLLATE \"C\" NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    valid_until BIGINT,
    count BIGINT NOT NULL,
    reference TEXT COLLATE \"C\"
);
CREATE INDEX held_observations_batch ON held_observations (batch_id);
CREATE TABLE decisions (
    indicator_id BIGINT PRIMARY KEY,
    state TEXT COLLATE \"C\" NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    category TEXT COLLATE \"C\" NOT NULL,
    reasons TEXT COLLATE \"C\" NOT NULL,
    rules TEXT COLLATE \"C\" NOT NULL,
    feeds TEXT COLLATE \"C\" NOT NULL,
    decided_at BIGINT NOT NULL
) WITH (fillfactor = 70);
CREATE TABLE feeds (
    name TEXT COLLATE \"C\" PRIMARY KEY,
    serial BIGINT NOT NULL CHECK (serial >= 0),
    updated_at BIGINT
);
CREATE TABLE feed_rules (
    feed TEXT COLLATE \"C\" NOT NULL,
    trigger TEXT COLLATE \"C\" NOT NULL,
    action TEXT COLLATE \"C\" NOT NULL,
    refcount BIGINT NOT NULL CHECK (refcount > 0),
    serial_added BIGINT NOT NULL,
    PRIMARY KEY (feed, trigger, action)
) WITH (fillfactor = 70);
CREATE TABLE journal (
    feed TEXT COLLATE \"C\" NOT NULL REFERENCES feeds (name),
    serial BIGINT NOT NULL CHECK (serial > 0),
    at BIGINT NOT NULL,
    batch_id BIGINT REFERENCES batches (id),
    PRIMARY KEY (feed, serial)
);
CREATE TABLE journal_changes (
    feed TEXT COLLATE \"C\" NOT NULL,
    serial BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    op TEXT COLLATE \"C\" NOT NULL CHECK (op IN ('+', '-')),
    trigger TEXT COLLATE \"C\" NOT NULL,
    action TEXT COLLATE \"C\" NOT NULL,
    PRIMARY KEY (feed, serial, seq)
);
CREATE TABLE allowlist (
    id BIGSERIAL PRIMARY KEY,
    list TEXT COLLATE \"C\" NOT NULL,
    role TEXT COLLATE \"C\" NOT NULL,
    extent TEXT COLLATE \"C\" NOT NULL,
    value TEXT COLLATE \"C\" NOT NULL,
    rank BIGINT,
    UNIQUE (list, role, extent, value)
);
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    who TEXT COLLATE \"C\" NOT NULL,
    action TEXT COLLATE \"C\" NOT NULL,
    target TEXT COLLATE \"C\" NOT NULL,
    reason TEXT COLLATE \"C\" NOT NULL
);
";

/// `indicators_of_source` and `observations_delete` (snapshot feeds, rejected
/// batches), `decisions_in_state` (exports) and `audit_for` scanned whole tables in v1.
const V2: &str = "
CREATE INDEX observations_source ON observations (source_id);
CREATE INDEX decisions_state ON decisions (state);
CREATE INDEX audit_target ON audit (target);
";

// v3 (measured on an import of 1,000,000 registered domains in one category, which
// wrote 4,000,000 rule rows and 4,000,000 journal rows in v2):
//
// - The union feed. In v2 every published rule was stored twice, in its category
//   feed and again in `all`, with its own reference count and its own journal rows.
//   Now a feed may be the union (`kind = 'union'`; the hub makes `all` one): its
//   rules are those of every feed, read from the other feeds' rows, and it stores
//   rows only for rules no other feed carries (refcount = its own references). Its
//   serial and journal stay its own, written by the caller from the union's exact
//   changes (`Tx::rules_adjust`), so AXFR, IXFR and exports of `all` are what they
//   were. `union_serial` on each row is the union's serial at which the rule last
//   entered it (what `explain` shows for `all`); all rows of a rule carry the same.
// - Feed rules keyed `(trigger, action, feed)`: the rows of one rule in every feed
//   sit together, so one probe tells whether the union has the rule. A feed's own
//   rules are read by a scan of the table (an export, a transfer: a few hundred
//   milliseconds per million rules), and its rule count is kept in `feeds.rules`
//   rather than counted at each import.
// - Journal changes in chunks: a run of changes with the same op and action is one
//   row, its triggers separated by line breaks (a trigger never holds one), up to
//   about 64 KiB. The journal is only ever read whole from a serial on.
//
// The migration turns a v2 `all` feed (written by the hub: every rule of every
// feed, counted once per indicator) into the union: its rows keep only the
// references the other feeds do not explain, and their `union_serial` is the serial
// at which the v2 `all` row appeared. Changes are chunked as `journal_append` would
// chunk them (runs of the same op and action, at most 4096 triggers each).
const V3_SQLITE: &str = "
ALTER TABLE feeds ADD COLUMN rules INTEGER NOT NULL DEFAULT 0 CHECK (rules >= 0);
ALTER TABLE feeds ADD COLUMN kind TEXT NOT NULL DEFAULT 'plain' CHECK (kind IN ('plain', 'union'));
UPDATE feeds SET kind = 'union' WHERE name = 'all';
CREATE TABLE feed_rules_v3 (
    trigger TEXT NOT NULL,
    action TEXT NOT NULL,
    feed TEXT NOT NULL REFERENCES feeds (name),
    refcount INTEGER NOT NULL CHECK (refcount > 0),
    serial_added INTEGER NOT NULL,
    union_serial INTEGER NOT NULL,
    PRIMARY KEY (trigger, action, feed)
) WITHOUT ROWID;
INSERT INTO feed_rules_v3 (trigger, action, feed, refcount, serial_added, union_serial)
SELECT r.trigger, r.action, r.feed, r.refcount, r.serial_added,
       COALESCE((SELECT a.serial_added FROM feed_rules a
                 WHERE a.feed = 'all' AND a.trigger = r.trigger AND a.action = r.action), 0)
FROM feed_rules r WHERE r.feed <> 'all';
INSERT INTO feed_rules_v3 (trigger, action, feed, refcount, serial_added, union_serial)
SELECT trigger, action, 'all', own, serial_added, serial_added FROM (
    SELECT a.trigger, a.action, a.serial_added,
           a.refcount - COALESCE((SELECT SUM(n.refcount) FROM feed_rules_v3 n
                                  WHERE n.trigger = a.trigger AND n.action = a.action), 0) AS own
    FROM feed_rules a WHERE a.feed = 'all'
) WHERE own > 0;
DROP TABLE feed_rules;
ALTER TABLE feed_rules_v3 RENAME TO feed_rules;
UPDATE feeds SET rules = (SELECT COUNT(*) FROM feed_rules r WHERE r.feed = feeds.name)
WHERE kind = 'plain';
UPDATE feeds SET rules = (SELECT COUNT(*) FROM (SELECT DISTINCT trigger, action FROM feed_rules))
WHERE kind = 'union';
CREATE TABLE journal_chunks (
    feed TEXT NOT NULL,
    serial INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('+', '-')),
    action TEXT NOT NULL,
    triggers TEXT NOT NULL,
    PRIMARY KEY (feed, serial, seq),
    FOREIGN KEY (feed, serial) REFERENCES journal (feed, serial)
);
INSERT INTO journal_chunks (feed, serial, seq, op, action, triggers)
SELECT feed, serial, MIN(seq), op, action, group_concat(trigger, char(10) ORDER BY seq)
FROM (
    SELECT feed, serial, seq, op, action, trigger,
           seq - ROW_NUMBER() OVER (PARTITION BY feed, serial, op, action ORDER BY seq) AS run,
           ROW_NUMBER() OVER (PARTITION BY feed, serial, op, action ORDER BY seq) / 4096 AS part
    FROM journal_changes
)
GROUP BY feed, serial, op, action, run, part;
DROP TABLE journal_changes;
";

const V3_POSTGRES: &str = "
ALTER TABLE feeds ADD COLUMN rules BIGINT NOT NULL DEFAULT 0 CHECK (rules >= 0);
ALTER TABLE feeds ADD COLUMN kind TEXT COLLATE \"C\" NOT NULL DEFAULT 'plain'
    CHECK (kind IN ('plain', 'union'));
UPDATE feeds SET kind = 'union' WHERE name = 'all';
CREATE TABLE feed_rules_v3 (
    trigger TEXT COLLATE \"C\" NOT NULL,
    action TEXT COLLATE \"C\" NOT NULL,
    feed TEXT COLLATE \"C\" NOT NULL,
    refcount BIGINT NOT NULL CHECK (refcount > 0),
    serial_added BIGINT NOT NULL,
    union_serial BIGINT NOT NULL,
    CONSTRAINT feed_rules_v3_pkey PRIMARY KEY (trigger, action, feed)
) WITH (fillfactor = 70);
INSERT INTO feed_rules_v3 (trigger, action, feed, refcount, serial_added, union_serial)
SELECT r.trigger, r.action, r.feed, r.refcount, r.serial_added, COALESCE(a.serial_added, 0)
FROM feed_rules r
LEFT JOIN feed_rules a ON a.feed = 'all' AND a.trigger = r.trigger AND a.action = r.action
WHERE r.feed <> 'all';
INSERT INTO feed_rules_v3 (trigger, action, feed, refcount, serial_added, union_serial)
SELECT trigger, action, 'all', own, serial_added, serial_added FROM (
    SELECT a.trigger, a.action, a.serial_added, a.refcount - COALESCE(SUM(n.refcount), 0) AS own
    FROM feed_rules a
    LEFT JOIN feed_rules_v3 n ON n.trigger = a.trigger AND n.action = a.action
    WHERE a.feed = 'all'
    GROUP BY a.trigger, a.action, a.serial_added, a.refcount
) o WHERE own > 0;
DROP TABLE feed_rules;
ALTER TABLE feed_rules_v3 RENAME TO feed_rules;
ALTER TABLE feed_rules RENAME CONSTRAINT feed_rules_v3_pkey TO feed_rules_pkey;
UPDATE feeds SET rules = (SELECT COUNT(*) FROM feed_rules r WHERE r.feed = feeds.name)
WHERE kind = 'plain';
UPDATE feeds SET rules = (SELECT COUNT(*) FROM (SELECT DISTINCT trigger, action FROM feed_rules) d)
WHERE kind = 'union';
CREATE TABLE journal_chunks (
    feed TEXT COLLATE \"C\" NOT NULL,
    serial BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    op TEXT COLLATE \"C\" NOT NULL CHECK (op IN ('+', '-')),
    action TEXT COLLATE \"C\" NOT NULL,
    triggers TEXT COLLATE \"C\" NOT NULL,
    PRIMARY KEY (feed, serial, seq),
    FOREIGN KEY (feed, serial) REFERENCES journal (feed, serial)
);
INSERT INTO journal_chunks (feed, serial, seq, op, action, triggers)
SELECT feed, serial, MIN(seq), op, action, string_agg(trigger, E'\\n' ORDER BY seq)
FROM (
    SELECT feed, serial, seq, op, action, trigger,
           seq - ROW_NUMBER() OVER (PARTITION BY feed, serial, op, action ORDER BY seq) AS run,
           ROW_NUMBER() OVER (PARTITION BY feed, serial, op, action ORDER BY seq) / 4096 AS part
    FROM journal_changes
) c
GROUP BY feed, serial, op, action, run, part;
DROP TABLE journal_changes;
";

/// Scheduled feed pulls (`hub::pull`). `pull_state` keeps each configured source's
/// last fetch (validators, times, error, failure count, effect) as the hub's own JSON,
/// so a restarted hub or a `sharedefend pull` from the command line carries on from
/// it; the store does not read it. `snapshot_batches` marks the batches of sources
/// that publish full snapshots: approving a held one also withdraws what the
/// snapshot no longer lists.
const V4_SQLITE: &str = "
CREATE TABLE pull_state (
    source TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE snapshot_batches (
    batch_id INTEGER PRIMARY KEY REFERENCES batches (id)
);
";

const V4_POSTGRES: &str = "
CREATE TABLE pull_state (
    source TEXT COLLATE \"C\" PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE snapshot_batches (
    batch_id BIGINT PRIMARY KEY REFERENCES batches (id)
);
";

/// The store's invariants, each a query listing its violations as text (both
/// dialects accept `||` between text and integers).
pub(crate) const INVARIANTS: &[&str] = &[
    "SELECT 'feed ' || f.name || ': serial ' || f.serial || ' but newest journal entry '
         || COALESCE(MAX(j.serial), 0)
     FROM feeds f LEFT JOIN journal j ON j.feed = f.name
     GROUP BY f.name, f.serial
     HAVING f.serial <> COALESCE(MAX(j.serial), 0)
     ORDER BY f.name LIMIT 10",
    "SELECT 'feed ' || feed || ': rule ' || trigger || ' ' || action || ' has reference count '
         || refcount
     FROM feed_rules WHERE refcount <= 0
     ORDER BY feed, trigger LIMIT 10",
    "SELECT 'feed ' || r.feed || ': rule ' || r.trigger || ' ' || r.action || ' added at serial '
         || r.serial_added || ' after the feed serial ' || f.serial
     FROM feed_rules r JOIN feeds f ON f.name = r.feed
     WHERE r.serial_added > f.serial
     ORDER BY r.feed, r.trigger LIMIT 10",
    "SELECT 'feed ' || f.name || ': rule ' || r.trigger || ' ' || r.action
         || ' entered the union at serial ' || r.union_serial || ' after the feed serial '
         || f.serial
     FROM feed_rules r JOIN feeds f ON f.kind = 'union'
     WHERE r.union_serial > f.serial
     ORDER BY r.trigger, r.action LIMIT 10",
    "SELECT 'feed ' || f.name || ': ' || f.rules || ' rules counted but '
         || COALESCE(c.n, 0) || ' stored'
     FROM feeds f LEFT JOIN (SELECT feed, COUNT(*) AS n FROM feed_rules GROUP BY feed) c
         ON c.feed = f.name
     WHERE f.kind = 'plain' AND f.rules <> COALESCE(c.n, 0)
     ORDER BY f.name LIMIT 10",
    "SELECT 'feed ' || f.name || ': ' || f.rules || ' rules counted but the union has '
         || (SELECT COUNT(*) FROM (SELECT DISTINCT trigger, action FROM feed_rules) d)
     FROM feeds f
     WHERE f.kind = 'union'
       AND f.rules <> (SELECT COUNT(*) FROM (SELECT DISTINCT trigger, action FROM feed_rules) d)",
    "SELECT 'feeds ' || MIN(name) || ' and ' || MAX(name) || ' are both the union'
     FROM feeds WHERE kind = 'union' HAVING COUNT(*) > 1",
];

/// PostgreSQL's references that are not foreign keys (see the schema), each a query
/// listing the rows whose referenced row is missing.
pub(crate) const PG_REFERENCES: &[&str] = &[
    "SELECT 'table observations: indicator ' || o.indicator_id || ' source ' || o.source_id
         || ' refers to a missing indicator or source'
     FROM observations o
     WHERE NOT EXISTS (SELECT 1 FROM indicators i WHERE i.id = o.indicator_id)
        OR NOT EXISTS (SELECT 1 FROM sources s WHERE s.id = o.source_id)
     LIMIT 10",
    "SELECT 'table held_observations: row ' || h.id || ' refers to a missing batch, indicator or source'
     FROM held_observations h
     WHERE NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = h.batch_id)
        OR NOT EXISTS (SELECT 1 FROM indicators i WHERE i.id = h.indicator_id)
        OR NOT EXISTS (SELECT 1 FROM sources s WHERE s.id = h.source_id)
     LIMIT 10",
    "SELECT 'table decisions: indicator ' || d.indicator_id || ' is missing'
     FROM decisions d
     WHERE NOT EXISTS (SELECT 1 FROM indicators i WHERE i.id = d.indicator_id)
     LIMIT 10",
    "SELECT 'table feed_rules: feed ' || r.feed || ' is missing'
     FROM (SELECT DISTINCT feed FROM feed_rules) r
     WHERE NOT EXISTS (SELECT 1 FROM feeds f WHERE f.name = r.feed)
     LIMIT 10",
    "SELECT 'table journal_chunks: feed ' || c.feed || ' serial ' || c.serial || ' has no journal entry'
     FROM (SELECT DISTINCT feed, serial FROM journal_chunks) c
     WHERE NOT EXISTS (SELECT 1 FROM journal j WHERE j.feed = c.feed AND j.serial = c.serial)
     LIMIT 10",
];

/// Turns collected invariant violations into the result of an integrity check.
pub(crate) fn integrity_result(problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Integrity(problems.join("; ")))
    }
}

// --- column lists (the decoders below read them in this order); macros so that
// statements can be built with `concat!` and stay `&'static str`

macro_rules! source_cols {
    () => {
        "id, name, kind, trust, grp"
    };
}
macro_rules! indicator_cols {
    () => {
        "id, value, kind, host"
    };
}
macro_rules! observation_cols {
    () => {
        "indicator_id, source_id, category, confidence, tlp, tags, first_seen, last_seen, \
         valid_until, count, reference"
    };
}
macro_rules! batch_cols {
    () => {
        "b.id, b.source_id, b.origin, b.status, b.created_at, b.note, \
         (SELECT COUNT(*) FROM held_observations h WHERE h.batch_id = b.id)"
    };
}
macro_rules! decision_cols {
    () => {
        "indicator_id, state, score, category, reasons, rules, feeds, decided_at"
    };
}
macro_rules! allow_cols {
    () => {
        "list, role, extent, value, rank"
    };
}
macro_rules! audit_cols {
    () => {
        "at, who, action, target, reason"
    };
}
macro_rules! feed_cols {
    () => {
        "name, serial, updated_at, rules, kind"
    };
}
/// Decision states whose rules are in feeds (what the decay sweep revisits), as an
/// SQL list.
macro_rules! published_states {
    () => {
        "('publish', 'url-only', 'address-only')"
    };
}
/// How a new sighting merges into an observation row (`ON CONFLICT … DO UPDATE SET`):
/// the fields of the later sighting win, first/last seen widen, counts add up (capped
/// at `u32::MAX`). One rule for both backends; they differ only in the names of the
/// two-argument minimum and maximum (`min`/`max` in SQLite, `LEAST`/`GREATEST`).
macro_rules! observation_merge {
    ($min:literal, $max:literal) => {
        concat!(
            "category = CASE WHEN excluded.last_seen >= observations.last_seen
            THEN excluded.category ELSE observations.category END,
        confidence = CASE WHEN excluded.last_seen >= observations.last_seen
            THEN excluded.confidence ELSE observations.confidence END,
        tlp = CASE WHEN excluded.last_seen >= observations.last_seen
            THEN excluded.tlp ELSE observations.tlp END,
        tags = CASE WHEN excluded.last_seen >= observations.last_seen
            THEN excluded.tags ELSE observations.tags END,
        valid_until = CASE WHEN excluded.last_seen >= observations.last_seen
            THEN excluded.valid_until ELSE observations.valid_until END,
        reference = CASE WHEN excluded.last_seen >= observations.last_seen
            THEN excluded.reference ELSE observations.reference END,
        first_seen = ",
            $min,
            "(observations.first_seen, excluded.first_seen),
        last_seen = ",
            $max,
            "(observations.last_seen, excluded.last_seen),
        count = ",
            $min,
            "(observations.count + excluded.count, 4294967295)"
        )
    };
}
pub(crate) use {
    allow_cols, audit_cols, batch_cols, decision_cols, feed_cols, indicator_cols, observation_cols,
    observation_merge, published_states, source_cols,
};

/// A result row, read by column position; each backend implements it for its row type.
pub(crate) trait Columns {
    fn int(&self, i: usize) -> Result<i64>;
    fn int_opt(&self, i: usize) -> Result<Option<i64>>;
    fn real(&self, i: usize) -> Result<f64>;
    fn text(&self, i: usize) -> Result<String>;
    fn text_opt(&self, i: usize) -> Result<Option<String>>;
}

fn invalid(what: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(what.to_string())
}

pub(crate) fn secs(t: Timestamp) -> i64 {
    t.as_second()
}

pub(crate) fn time(s: i64) -> Result<Timestamp> {
    Timestamp::from_second(s).map_err(|e| invalid(format!("stored time {s}: {e}")))
}

fn time_opt(s: Option<i64>) -> Result<Option<Timestamp>> {
    s.map(time).transpose()
}

fn u32_of(what: &str, n: i64) -> Result<u32> {
    u32::try_from(n).map_err(|_| invalid(format!("stored {what} {n} out of range")))
}

pub(crate) fn serial_of(n: i64) -> Result<u32> {
    u32_of("serial", n)
}

pub(crate) fn json_list(items: &[String]) -> Result<String> {
    serde_json::to_string(items).map_err(|e| invalid(format!("encoding a list: {e}")))
}

fn list_of(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| invalid(format!("stored list {text:?}: {e}")))
}

/// Rules as `[["trigger","action"],…]`.
pub(crate) fn json_rules(rules: &[RuleText]) -> Result<String> {
    let pairs: Vec<[&str; 2]> = rules
        .iter()
        .map(|r| [r.trigger.as_str(), r.action.as_str()])
        .collect();
    serde_json::to_string(&pairs).map_err(|e| invalid(format!("encoding rules: {e}")))
}

fn rules_of(text: &str) -> Result<Vec<RuleText>> {
    let pairs: Vec<(String, String)> =
        serde_json::from_str(text).map_err(|e| invalid(format!("stored rules {text:?}: {e}")))?;
    Ok(pairs
        .into_iter()
        .map(|(trigger, action)| RuleText { trigger, action })
        .collect())
}

pub(crate) fn source(r: &dyn Columns) -> Result<SourceRow> {
    let kind = r.text(2)?;
    Ok(SourceRow {
        id: r.int(0)?,
        name: r.text(1)?,
        kind: SourceKind::parse(&kind)
            .ok_or_else(|| invalid(format!("stored source kind {kind:?}")))?,
        trust: r.real(3)?,
        group: r.text_opt(4)?,
    })
}

/// An indicator from `INDICATOR_COLS` starting at column `at`.
pub(crate) fn indicator(r: &dyn Columns, at: usize) -> Result<IndicatorRow> {
    Ok(IndicatorRow {
        id: r.int(at)?,
        value: r.text(at + 1)?,
        kind: r.text(at + 2)?,
        host: r.text_opt(at + 3)?,
    })
}

/// An observation from `OBSERVATION_COLS` starting at column 0.
pub(crate) fn observation(r: &dyn Columns) -> Result<ObservationRow> {
    let confidence = r
        .int_opt(3)?
        .map(|c| {
            u8::try_from(c).map_err(|_| invalid(format!("stored confidence {c} out of range")))
        })
        .transpose()?;
    Ok(ObservationRow {
        indicator_id: r.int(0)?,
        source_id: r.int(1)?,
        category: r.text(2)?,
        confidence,
        tlp: r.text(4)?,
        tags: list_of(&r.text(5)?)?,
        first_seen: time(r.int(6)?)?,
        last_seen: time(r.int(7)?)?,
        valid_until: time_opt(r.int_opt(8)?)?,
        count: u32_of("count", r.int(9)?)?,
        reference: r.text_opt(10)?,
    })
}

/// An observation followed by its source's name, trust and group.
pub(crate) fn observation_with_source(r: &dyn Columns) -> Result<ObservationWithSource> {
    Ok(ObservationWithSource {
        observation: observation(r)?,
        source: r.text(11)?,
        trust: r.real(12)?,
        group: r.text_opt(13)?,
    })
}

pub(crate) fn batch(r: &dyn Columns) -> Result<BatchRow> {
    let status = r.text(3)?;
    Ok(BatchRow {
        id: r.int(0)?,
        source_id: r.int(1)?,
        origin: r.text(2)?,
        status: BatchStatus::parse(&status)
            .ok_or_else(|| invalid(format!("stored batch status {status:?}")))?,
        created_at: time(r.int(4)?)?,
        note: r.text(5)?,
        held: u64::try_from(r.int(6)?).unwrap_or(0),
    })
}

/// A decision from `DECISION_COLS` starting at column `at`.
pub(crate) fn decision(r: &dyn Columns, at: usize) -> Result<DecisionRow> {
    Ok(DecisionRow {
        indicator_id: r.int(at)?,
        state: r.text(at + 1)?,
        score: r.real(at + 2)?,
        category: r.text(at + 3)?,
        reasons: list_of(&r.text(at + 4)?)?,
        rules: rules_of(&r.text(at + 5)?)?,
        feeds: list_of(&r.text(at + 6)?)?,
        decided_at: time(r.int(at + 7)?)?,
    })
}

pub(crate) fn feed(r: &dyn Columns) -> Result<FeedRow> {
    let kind = r.text(4)?;
    Ok(FeedRow {
        name: r.text(0)?,
        serial: serial_of(r.int(1)?)?,
        updated_at: time_opt(r.int_opt(2)?)?,
        rules: u64::try_from(r.int(3)?).unwrap_or(0),
        union: match kind.as_str() {
            FEED_UNION => true,
            FEED_PLAIN => false,
            _ => return Err(invalid(format!("stored feed kind {kind:?}"))),
        },
    })
}

/// Why `feed` cannot become the union: `other` is.
pub(crate) fn other_union(feed: &str, other: &str) -> StoreError {
    invalid(format!(
        "feed {feed:?} cannot be the union feed: {other:?} is already"
    ))
}

/// Why `feed` cannot become the union: other feeds have rules, which would join the
/// union without a journal entry publishing them.
pub(crate) fn union_over_rules(feed: &str) -> StoreError {
    invalid(format!(
        "feed {feed:?} cannot become the union feed: other feeds already have rules"
    ))
}

/// Feed kinds as stored.
pub(crate) const FEED_PLAIN: &str = "plain";
pub(crate) const FEED_UNION: &str = "union";

pub(crate) fn allow(r: &dyn Columns) -> Result<AllowRow> {
    Ok(AllowRow {
        list: r.text(0)?,
        role: r.text(1)?,
        extent: r.text(2)?,
        value: r.text(3)?,
        rank: r.int_opt(4)?.map(|n| u32_of("rank", n)).transpose()?,
    })
}

pub(crate) fn audit(r: &dyn Columns) -> Result<AuditEntry> {
    Ok(AuditEntry {
        at: time(r.int(0)?)?,
        who: r.text(1)?,
        action: r.text(2)?,
        target: r.text(3)?,
        reason: r.text(4)?,
    })
}

/// Journal change ops as stored.
pub(crate) const OP_ADD: &str = "+";
pub(crate) const OP_REMOVE: &str = "-";

// --- rules the bulk statements rely on

/// `first` merged with the later sighting `next`, as `observations_merge` does in SQL:
/// first seen is the minimum, last seen the maximum, counts add up (saturating), and
/// the other fields come from whichever has the later (or equal) last-seen time.
pub(crate) fn merge_observation(first: &mut ObservationRow, next: &ObservationRow) {
    let next_wins = next.last_seen >= first.last_seen;
    let first_seen = first.first_seen.min(next.first_seen);
    let last_seen = first.last_seen.max(next.last_seen);
    let count = first.count.saturating_add(next.count);
    if next_wins {
        *first = next.clone();
    }
    first.first_seen = first_seen;
    first.last_seen = last_seen;
    first.count = count;
}

/// Rows merged per `(indicator, source)`, in order of first appearance (a bulk
/// upsert may not touch one row twice).
pub(crate) fn merge_duplicates(rows: &[ObservationRow]) -> Vec<ObservationRow> {
    let mut at: HashMap<(i64, i64), usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<ObservationRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match at.entry((row.indicator_id, row.source_id)) {
            Entry::Occupied(e) => {
                if let Some(acc) = out.get_mut(*e.get()) {
                    merge_observation(acc, row);
                }
            }
            Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(row.clone());
            }
        }
    }
    out
}

/// The new reference count of `rule`, or an error if it would drop below zero.
pub(crate) fn adjusted(feed: &str, rule: &RuleText, old: i64, delta: i64) -> Result<i64> {
    let new = old.saturating_add(delta);
    if new < 0 {
        return Err(invalid(format!(
            "feed {feed:?}: rule {} {} would have reference count {new} ({old} {delta:+})",
            rule.trigger, rule.action
        )));
    }
    Ok(new)
}

/// Ids without repeats, first occurrence first.
pub(crate) fn unique_ids(ids: &[i64]) -> Vec<i64> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.iter().copied().filter(|id| seen.insert(*id)).collect()
}

/// Keeps the last of rows sharing a key, in order of first appearance.
pub(crate) fn last_per_key<T: Clone, K: std::hash::Hash + Eq>(
    rows: &[T],
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let mut at: HashMap<K, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<T> = Vec::with_capacity(rows.len());
    for row in rows {
        match at.entry(key(row)) {
            Entry::Occupied(e) => {
                if let Some(slot) = out.get_mut(*e.get()) {
                    *slot = row.clone();
                }
            }
            Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(row.clone());
            }
        }
    }
    out
}

/// The next serial of a feed at `serial`; serials are `u32` (as in DNS) and never wrap.
pub(crate) fn next_serial(feed: &str, serial: i64) -> Result<i64> {
    let next = serial.saturating_add(1);
    if next > i64::from(u32::MAX) {
        return Err(invalid(format!(
            "feed {feed:?}: serial {serial} cannot grow further"
        )));
    }
    Ok(next)
}

/// Checks what a source row must satisfy before it is written.
pub(crate) fn check_source(source: &NewSource) -> Result<()> {
    if (0.0..=1.0).contains(&source.trust) {
        Ok(())
    } else {
        Err(invalid(format!(
            "source {:?}: trust {} is not within 0 and 1",
            source.name, source.trust
        )))
    }
}

/// Checks that every allowlist entry belongs to `list`.
pub(crate) fn check_list(list: &str, entries: &[AllowRow]) -> Result<()> {
    match entries.iter().find(|e| e.list != list) {
        Some(e) => Err(invalid(format!(
            "allowlist {list:?}: entry {:?} belongs to list {:?}",
            e.value, e.list
        ))),
        None => Ok(()),
    }
}

/// Most bytes of triggers one journal chunk holds (a run of changes longer than this
/// is split). Large enough that a million changes are a few hundred rows.
const CHUNK_BYTES: usize = 64 * 1024;

/// A run of changes of one journal entry with the same op and action, as stored.
#[derive(Debug)]
pub(crate) struct JournalChunk<'a> {
    /// Position of the run's first change in the entry (additions first).
    pub(crate) seq: i64,
    pub(crate) op: &'static str,
    pub(crate) action: &'a str,
    /// The triggers, separated by line breaks.
    pub(crate) triggers: String,
}

/// A journal entry's changes as chunks: additions first, then removals, each in the
/// order given.
pub(crate) fn journal_chunks<'a>(
    feed: &str,
    added: &'a [RuleText],
    removed: &'a [RuleText],
) -> Result<Vec<JournalChunk<'a>>> {
    let mut chunks: Vec<JournalChunk<'a>> = Vec::new();
    let ops = added
        .iter()
        .map(|r| (OP_ADD, r))
        .chain(removed.iter().map(|r| (OP_REMOVE, r)));
    for (seq, (op, rule)) in (0_i64..).zip(ops) {
        let line_break = |t: &str| t.bytes().any(|b| b == b'\n' || b == b'\r');
        if line_break(&rule.trigger) || line_break(&rule.action) {
            return Err(invalid(format!(
                "feed {feed:?}: rule {:?} {:?} contains a line break",
                rule.trigger, rule.action
            )));
        }
        match chunks.last_mut() {
            Some(c)
                if c.op == op
                    && c.action == rule.action
                    && c.triggers.len() + rule.trigger.len() < CHUNK_BYTES =>
            {
                c.triggers.push('\n');
                c.triggers.push_str(&rule.trigger);
            }
            _ => chunks.push(JournalChunk {
                seq,
                op,
                action: &rule.action,
                triggers: rule.trigger.clone(),
            }),
        }
    }
    Ok(chunks)
}

/// Journal entries (`serial, at, batch_id`) and their chunks (`serial, op, action,
/// triggers`), both sorted by serial (chunks then by position), as entries.
pub(crate) fn assemble_journal(
    feed: &str,
    entries: Vec<(i64, i64, Option<i64>)>,
    chunks: Vec<(i64, String, String, String)>,
) -> Result<Vec<JournalEntry>> {
    let mut out = Vec::with_capacity(entries.len());
    let mut chunks = chunks.into_iter().peekable();
    for (serial, at, batch_id) in entries {
        let mut entry = JournalEntry {
            feed: feed.to_owned(),
            serial: serial_of(serial)?,
            at: time(at)?,
            batch_id,
            added: Vec::new(),
            removed: Vec::new(),
        };
        // Chunks without an entry cannot exist (foreign key); skip them all the same.
        while chunks.next_if(|c| c.0 < serial).is_some() {}
        while let Some((_, op, action, triggers)) = chunks.next_if(|c| c.0 == serial) {
            let list = match op.as_str() {
                OP_ADD => &mut entry.added,
                OP_REMOVE => &mut entry.removed,
                _ => {
                    return Err(invalid(format!(
                        "feed {feed:?} serial {serial}: stored change op {op:?}"
                    )));
                }
            };
            list.extend(triggers.split('\n').map(|t| RuleText {
                trigger: t.to_owned(),
                action: action.clone(),
            }));
        }
        out.push(entry);
    }
    Ok(out)
}

// --- reference counts across feeds (`Tx::rules_adjust`)

/// A feed taking part in one `rules_adjust`.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) name: String,
    /// The serial the journal entry that follows this adjustment gives the feed:
    /// a rule that appears now was published at it.
    pub(crate) publishing: i64,
    /// What changed in the feed's rule set (for the union: in the union).
    pub(crate) changes: RuleChanges,
    /// Net change of the feed's rule count.
    pub(crate) count: i64,
}

/// One stored row of the rule being adjusted: its feed (as a slot, or `None` for a
/// feed this adjustment does not touch), reference count and union serial.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    pub(crate) slot: Option<usize>,
    pub(crate) refcount: i64,
    pub(crate) union_serial: i64,
}

/// A write to one row of the rule being adjusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowOp {
    Insert {
        slot: usize,
        refcount: i64,
        union_serial: i64,
    },
    Update {
        slot: usize,
        refcount: i64,
    },
    Delete {
        slot: usize,
    },
}

/// An adjustment of rule reference counts in several feeds: the rules in order of
/// first appearance, each with its summed, non-zero delta per feed.
#[derive(Debug)]
pub(crate) struct Adjustment<'a> {
    pub(crate) slots: Vec<Slot>,
    /// The union feed's slot, if the store has a union feed.
    union: Option<usize>,
    /// Each rule with the range of its deltas in `deltas`.
    rules: Vec<(&'a RuleText, usize, usize)>,
    /// `(slot, delta)`, grouped by rule.
    deltas: Vec<(usize, i64)>,
}

impl<'a> Adjustment<'a> {
    /// Groups `deltas` by rule. The feeds become slots in the map's order (the
    /// caller fills in their serials with [`Adjustment::set_serial`]); then the
    /// union feed, if it is not among them.
    pub(crate) fn new(deltas: &'a RuleDeltas, union: Option<&str>) -> Adjustment<'a> {
        let mut slots: Vec<Slot> = deltas
            .keys()
            .map(|name| Slot {
                name: name.clone(),
                publishing: 0,
                changes: RuleChanges::default(),
                count: 0,
            })
            .collect();
        let union = union.map(|u| match slots.iter().position(|s| s.name == u) {
            Some(i) => i,
            None => {
                slots.push(Slot {
                    name: u.to_owned(),
                    publishing: 0,
                    changes: RuleChanges::default(),
                    count: 0,
                });
                slots.len() - 1
            }
        });
        let mut adjustment = Adjustment {
            slots,
            union,
            rules: Vec::new(),
            deltas: Vec::new(),
        };
        // The hub passes one feed, each rule once, sorted: nothing to group, and no
        // need to hash a million rules to find that out.
        if let [(_, list)] = deltas.iter().collect::<Vec<_>>()[..]
            && list.is_sorted_by(|a, b| a.rule < b.rule)
        {
            adjustment.rules.reserve(list.len());
            adjustment.deltas.reserve(list.len());
            // Sized once: an import of new names adds every rule, to the feed and
            // to the union.
            for slot in &mut adjustment.slots {
                slot.changes.added.reserve(list.len());
            }
            for d in list.iter().filter(|d| d.delta != 0) {
                let at = adjustment.deltas.len();
                adjustment.deltas.push((0, d.delta));
                adjustment.rules.push((&d.rule, at, at + 1));
            }
            return adjustment;
        }
        let mut index: HashMap<&RuleText, usize> = HashMap::new();
        let mut rules: Vec<&RuleText> = Vec::new();
        // (rule, slot, delta) in order of appearance.
        let mut all: Vec<(usize, usize, i64)> = Vec::new();
        for (slot, list) in deltas.values().enumerate() {
            for d in list {
                let rule = *index.entry(&d.rule).or_insert_with(|| {
                    rules.push(&d.rule);
                    rules.len() - 1
                });
                all.push((rule, slot, d.delta));
            }
        }
        // Summed per rule and feed; rules stay in order of first appearance.
        all.sort_by_key(|&(rule, slot, _)| (rule, slot));
        let mut at = 0;
        while at < all.len() {
            let (rule, _, _) = all[at];
            let start = adjustment.deltas.len();
            while at < all.len() && all[at].0 == rule {
                let (_, slot, mut delta) = all[at];
                at += 1;
                while at < all.len() && all[at].0 == rule && all[at].1 == slot {
                    delta = delta.saturating_add(all[at].2);
                    at += 1;
                }
                if delta != 0 {
                    adjustment.deltas.push((slot, delta));
                }
            }
            if adjustment.deltas.len() > start {
                adjustment
                    .rules
                    .push((rules[rule], start, adjustment.deltas.len()));
            }
        }
        adjustment
    }

    /// Records the current serial of a slot's feed.
    pub(crate) fn set_serial(&mut self, slot: usize, serial: i64) -> Result<()> {
        if let Some(s) = self.slots.get_mut(slot) {
            s.publishing = next_serial(&s.name, serial)?;
        }
        Ok(())
    }

    /// The slot of a feed, if this adjustment involves it.
    pub(crate) fn slot_of(&self, feed: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.name == feed)
    }

    /// The rules to adjust, in order.
    pub(crate) fn rules(&self) -> impl ExactSizeIterator<Item = &'a RuleText> + '_ {
        self.rules.iter().map(|(rule, _, _)| *rule)
    }

    /// Plans the `i`th rule given its stored rows: fills `ops` with the writes to make
    /// and records the changes of each feed and of the union.
    pub(crate) fn plan(&mut self, i: usize, stored: &[Stored], ops: &mut Vec<RowOp>) -> Result<()> {
        ops.clear();
        let Some(&(rule, start, end)) = self.rules.get(i) else {
            return Ok(());
        };
        let before = stored.len();
        let mut after = before;
        for k in start..end {
            let Some(&(slot, delta)) = self.deltas.get(k) else {
                break;
            };
            let old = stored
                .iter()
                .find(|s| s.slot == Some(slot))
                .map_or(0, |s| s.refcount);
            let name = self.slots.get(slot).map_or("?", |s| s.name.as_str());
            let new = adjusted(name, rule, old, delta)?;
            if old == 0 && new > 0 {
                ops.push(RowOp::Insert {
                    slot,
                    refcount: new,
                    union_serial: 0,
                });
                after += 1;
                self.feed_change(slot, rule, true);
            } else if old > 0 && new == 0 {
                ops.push(RowOp::Delete { slot });
                after -= 1;
                self.feed_change(slot, rule, false);
            } else if old != new {
                ops.push(RowOp::Update {
                    slot,
                    refcount: new,
                });
            }
        }
        let union_serial = match self.union.and_then(|u| self.slots.get_mut(u)) {
            None => 0,
            Some(union) if before == 0 && after > 0 => {
                union.changes.added.push(rule.clone());
                union.count += 1;
                union.publishing
            }
            Some(union) if before > 0 && after == 0 => {
                union.changes.removed.push(rule.clone());
                union.count -= 1;
                0
            }
            // Still in the union (perhaps through other feeds now): it keeps the
            // serial at which it entered.
            Some(_) => stored.first().map_or(0, |s| s.union_serial),
        };
        for op in ops.iter_mut() {
            if let RowOp::Insert {
                union_serial: u, ..
            } = op
            {
                *u = union_serial;
            }
        }
        Ok(())
    }

    /// A rule appeared in or left a feed's own rows. For the union feed that is not
    /// a change of its rules: those follow the union of all rows.
    fn feed_change(&mut self, slot: usize, rule: &RuleText, added: bool) {
        if Some(slot) == self.union {
            return;
        }
        if let Some(s) = self.slots.get_mut(slot) {
            if added {
                s.changes.added.push(rule.clone());
                s.count += 1;
            } else {
                s.changes.removed.push(rule.clone());
                s.count -= 1;
            }
        }
    }

    /// Every slot's changes, by feed name.
    pub(crate) fn into_changes(self) -> BTreeMap<String, RuleChanges> {
        self.slots
            .into_iter()
            .map(|s| (s.name, s.changes))
            .collect()
    }
}
