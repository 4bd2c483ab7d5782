//! The embedded store: one SQLite file, `DIR/sharedefend.db`, in WAL mode.
//!
//! SQLite is the default so a hub runs with nothing but its own binary. Writers are
//! serialised by `BEGIN IMMEDIATE` (the lock is taken at the start, so a write never
//! fails half-way on a lock upgrade); readers get a deferred transaction on a second,
//! read-only connection, which in WAL mode is a snapshot that never blocks the
//! writer and cannot write, as in PostgreSQL's read-only transactions. Bulk operations
//! are loops over cached prepared statements inside the one transaction: in-process
//! SQLite has no round trips to save, and a loop is as fast as any multi-row form.
//!
//! Durability: `synchronous=FULL`. Under WAL, `NORMAL` already survives a crash of
//! the process (`kill -9`) without loss or corruption, because a commit is in the
//! WAL file once `COMMIT` returns; what it can lose is the last commits on a power
//! cut or kernel crash. For this store that would mean a feed serial going back
//! after the secondaries have already transferred it, and then the same serial
//! being reused for different content — a silent divergence IXFR cannot detect. FULL
//! costs one fsync of the WAL per commit, and the hub commits per imported batch,
//! not per row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Params, Row, TransactionBehavior, params};

use crate::schema::{
    self, Columns, allow_cols, audit_cols, batch_cols, decision_cols, feed_cols, indicator_cols,
    observation_cols, observation_merge, published_states, source_cols,
};
use crate::schema::{Adjustment, RowOp, Stored};
use crate::{
    AllowRow, AuditEntry, BatchRow, BatchStatus, DecisionRow, FeedRow, IndicatorKey, IndicatorRow,
    JournalEntry, NewBatch, NewSource, ObservationRow, ObservationWithSource, Result, RuleChanges,
    RuleDeltas, RuleText, SourceRow, StoreError, Timestamp, Tx,
};

/// The store's file name inside its directory.
pub(crate) const FILE_NAME: &str = "sharedefend.db";

/// How long a writer waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Distinct statements the store prepares; all of them stay cached.
const STATEMENT_CACHE: usize = 96;

/// An open SQLite store: one connection writes, a second, read-only, reads.
///
/// Reads get their own connection so that "a read cannot write" is enforced by
/// SQLite itself without toggling `PRAGMA query_only`, which would expire every
/// cached statement on each read.
#[derive(Debug)]
pub struct SqliteStore {
    // Field order is drop order: the read-only connection must close first, so that
    // the writer is the last connection and checkpoints and removes the WAL on close
    // (a read-only last connection cannot, and would leave the whole WAL behind).
    reader: Connection,
    writer: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/sharedefend.db` and migrates it to the latest
    /// schema.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        SqliteStore::open_at_version(dir, schema::LATEST)
    }

    /// Opens, migrating only up to `version` (tests of upgrades from old stores).
    pub(crate) fn open_at_version(dir: &Path, version: i64) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Invalid(format!("creating store directory {}: {e}", dir.display()))
        })?;
        let path = dir.join(FILE_NAME);
        let mut writer = connect(&path, OpenFlags::default())?;
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Invalid(format!(
                "{}: cannot use WAL mode (got {mode:?})",
                path.display()
            )));
        }
        writer.pragma_update(None, "synchronous", "FULL")?;
        // After a checkpoint, shrink the WAL back to this size: a million-row import
        // must not leave a gigabyte of WAL for every later open to map.
        writer.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        writer.pragma_update(None, "foreign_keys", true)?;
        migrate(&mut writer, version)?;
        let reader = connect(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(SqliteStore {
            writer,
            reader,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn write<R>(&mut self, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> Result<R> {
        let tx = self
            .writer
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let result = f(&mut SqliteTx { c: &tx });
        match result {
            Ok(value) => {
                tx.commit()?;
                Ok(value)
            }
            Err(e) => {
                // The caller's error is the one to report; a failed rollback leaves
                // nothing behind either (the transaction is never committed).
                let _ = tx.rollback();
                Err(e)
            }
        }
    }

    pub(crate) fn read<R>(&mut self, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> Result<R> {
        let tx = self
            .reader
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let result = f(&mut SqliteTx { c: &tx });
        let end = tx.rollback();
        let value = result?;
        end?;
        Ok(value)
    }
}

/// A connection with the settings both kinds share. The query planner stability
/// guarantee keeps plans independent of bound values: without it this SQLite
/// (built with STAT4) re-prepares the join in `observations_of` on every new
/// binding, which made it ten times slower (measured on 200,000 ids).
/// Page cache per connection, in KiB (SQLite allocates it as pages are used).
const CACHE_KIB: i64 = 256 * 1024;

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // A hub store is hundreds of megabytes per million indicators; SQLite's default
    // 2 MiB page cache turns every B-tree probe of an import into a system call.
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, target: i64) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(schema::SCHEMA_VERSION_TABLE)?;
    let found: i64 = tx.query_row(schema::CURRENT_VERSION, [], |r| r.get(0))?;
    let now = Timestamp::now().as_second();
    for step in schema::pending(found, target)? {
        tx.execute_batch(step.sqlite)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at, description) VALUES (?1, ?2, ?3)",
            params![step.version, now, step.description],
        )?;
    }
    tx.commit()?;
    Ok(())
}

impl Columns for Row<'_> {
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.get(i)?)
    }
    fn int_opt(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.get(i)?)
    }
    fn real(&self, i: usize) -> Result<f64> {
        Ok(self.get(i)?)
    }
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.get(i)?)
    }
    fn text_opt(&self, i: usize) -> Result<Option<String>> {
        Ok(self.get(i)?)
    }
}

/// One transaction on the store.
struct SqliteTx<'c> {
    c: &'c Connection,
}

impl SqliteTx<'_> {
    /// Every row of `sql`, decoded by `f`.
    fn rows<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.c.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(f(row)?);
        }
        Ok(out)
    }

    /// The first row of `sql`, if any, decoded by `f`.
    fn row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = self.c.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        match rows.next()? {
            Some(row) => Ok(Some(f(row)?)),
            None => Ok(None),
        }
    }

    fn one<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<T> {
        self.row(sql, params, f)?
            .ok_or_else(|| StoreError::Invalid(format!("no row from {sql}")))
    }

    /// The union feed, if the store has one.
    fn union_feed(&self) -> Result<Option<FeedRow>> {
        self.row(
            concat!("SELECT ", feed_cols!(), " FROM feeds WHERE kind = 'union'"),
            [],
            schema::feed,
        )
    }

    fn is_union(&self, feed: &str) -> Result<bool> {
        Ok(self.union_feed()?.is_some_and(|u| u.name == feed))
    }
}

const OBSERVATION_UPSERT: &str = concat!(
    "INSERT INTO observations (",
    observation_cols!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
    ON CONFLICT (indicator_id, source_id) DO UPDATE SET
        ",
    observation_merge!("min", "max")
);

const HELD_INSERT: &str = concat!(
    "INSERT INTO held_observations (batch_id, ",
    observation_cols!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
);

impl Tx for SqliteTx<'_> {
    fn schema_version(&mut self) -> Result<i64> {
        self.one(schema::CURRENT_VERSION, [], |r| r.int(0))
    }

    fn integrity_check(&mut self) -> Result<()> {
        let mut problems = Vec::new();
        let report = self.rows("PRAGMA integrity_check", [], |r| r.text(0))?;
        if report != ["ok"] {
            problems.extend(report.into_iter().map(|m| format!("sqlite: {m}")));
        }
        problems.extend(self.rows("PRAGMA foreign_key_check", [], |r| {
            Ok(format!(
                "table {} row {} refers to a missing {} row",
                r.text(0)?,
                r.int_opt(1)?
                    .map_or_else(|| "?".to_owned(), |id| id.to_string()),
                r.text(2)?
            ))
        })?);
        for query in schema::INVARIANTS {
            problems.extend(self.rows(query, [], |r| r.text(0))?);
        }
        schema::integrity_result(problems)
    }

    fn source_upsert(&mut self, source: &NewSource) -> Result<SourceRow> {
        schema::check_source(source)?;
        self.one(
            concat!(
                "INSERT INTO sources (name, kind, trust, grp) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET
                     kind = excluded.kind, trust = excluded.trust, grp = excluded.grp
                 RETURNING ",
                source_cols!()
            ),
            params![
                source.name,
                source.kind.as_str(),
                source.trust,
                source.group
            ],
            schema::source,
        )
    }

    fn source_by_name(&mut self, name: &str) -> Result<Option<SourceRow>> {
        self.row(
            concat!("SELECT ", source_cols!(), " FROM sources WHERE name = ?1"),
            [name],
            schema::source,
        )
    }

    fn sources(&mut self) -> Result<Vec<SourceRow>> {
        self.rows(
            concat!("SELECT ", source_cols!(), " FROM sources ORDER BY name"),
            [],
            schema::source,
        )
    }

    fn indicator_ids(&mut self, keys: &[IndicatorKey]) -> Result<Vec<i64>> {
        self.indicator_ids_created(keys).map(|(ids, _)| ids)
    }

    fn indicator_ids_created(&mut self, keys: &[IndicatorKey]) -> Result<(Vec<i64>, Vec<bool>)> {
        // Insert first: a new indicator then costs one probe of the value index, not
        // two (a lookup that misses, then the insert); a known one costs the failed
        // insert and the lookup.
        let mut insert = self.c.prepare_cached(
            "INSERT INTO indicators (value, kind, host) VALUES (?1, ?2, ?3)
             ON CONFLICT (value) DO NOTHING",
        )?;
        let mut select = self
            .c
            .prepare_cached("SELECT id FROM indicators WHERE value = ?1")?;
        let mut ids = Vec::with_capacity(keys.len());
        let mut created = Vec::with_capacity(keys.len());
        for key in keys {
            let new = insert.execute(params![key.value, key.kind, key.host])? == 1;
            ids.push(if new {
                self.c.last_insert_rowid()
            } else {
                select.query_row([&key.value], |r| r.get(0))?
            });
            created.push(new);
        }
        Ok((ids, created))
    }

    fn indicator_by_value(&mut self, value: &str) -> Result<Option<IndicatorRow>> {
        self.row(
            concat!(
                "SELECT ",
                indicator_cols!(),
                " FROM indicators WHERE value = ?1"
            ),
            [value],
            |r| schema::indicator(r, 0),
        )
    }

    fn indicators_by_id(&mut self, ids: &[i64]) -> Result<Vec<IndicatorRow>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in schema::unique_ids(ids) {
            out.extend(self.row(
                concat!(
                    "SELECT ",
                    indicator_cols!(),
                    " FROM indicators WHERE id = ?1"
                ),
                [id],
                |r| schema::indicator(r, 0),
            )?);
        }
        Ok(out)
    }

    fn indicators_by_host(&mut self, host: &str) -> Result<Vec<IndicatorRow>> {
        self.rows(
            concat!(
                "SELECT ",
                indicator_cols!(),
                " FROM indicators WHERE host = ?1 ORDER BY id"
            ),
            [host],
            |r| schema::indicator(r, 0),
        )
    }

    fn observations_merge(&mut self, rows: &[ObservationRow]) -> Result<()> {
        let mut upsert = self.c.prepare_cached(OBSERVATION_UPSERT)?;
        for o in rows {
            upsert.execute(params![
                o.indicator_id,
                o.source_id,
                o.category,
                o.confidence,
                o.tlp,
                schema::json_list(&o.tags)?,
                schema::secs(o.first_seen),
                schema::secs(o.last_seen),
                o.valid_until.map(schema::secs),
                o.count,
                o.reference,
            ])?;
        }
        Ok(())
    }

    fn observations_of(&mut self, indicator_ids: &[i64]) -> Result<Vec<ObservationWithSource>> {
        let mut out = Vec::new();
        for id in schema::unique_ids(indicator_ids) {
            out.extend(self.rows(
                concat!(
                    "SELECT ",
                    observation_cols!(),
                    ", s.name, s.trust, s.grp
                     FROM observations JOIN sources s ON s.id = source_id
                     WHERE indicator_id = ?1 ORDER BY source_id"
                ),
                [id],
                schema::observation_with_source,
            )?);
        }
        Ok(out)
    }

    fn observations_delete(&mut self, source_id: i64, indicator_ids: &[i64]) -> Result<usize> {
        let mut delete = self.c.prepare_cached(
            "DELETE FROM observations WHERE indicator_id = ?1 AND source_id = ?2",
        )?;
        let mut deleted = 0;
        for id in schema::unique_ids(indicator_ids) {
            deleted += delete.execute([id, source_id])?;
        }
        Ok(deleted)
    }

    fn indicators_of_source(&mut self, source_id: i64) -> Result<Vec<i64>> {
        self.rows(
            "SELECT indicator_id FROM observations WHERE source_id = ?1 ORDER BY indicator_id",
            [source_id],
            |r| r.int(0),
        )
    }

    fn published_indicator_ids(&mut self) -> Result<Vec<i64>> {
        self.rows(
            concat!(
                "SELECT indicator_id FROM decisions WHERE state IN ",
                published_states!(),
                " ORDER BY indicator_id"
            ),
            [],
            |r| r.int(0),
        )
    }

    fn batch_create(&mut self, batch: &NewBatch) -> Result<i64> {
        self.one(
            "INSERT INTO batches (source_id, origin, status, created_at, note)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            params![
                batch.source_id,
                batch.origin,
                batch.status.as_str(),
                schema::secs(batch.created_at),
                batch.note
            ],
            |r| r.int(0),
        )
    }

    fn batch_set_status(&mut self, id: i64, status: BatchStatus, note: &str) -> Result<()> {
        let changed = self
            .c
            .prepare_cached("UPDATE batches SET status = ?2, note = ?3 WHERE id = ?1")?
            .execute(params![id, status.as_str(), note])?;
        if changed == 0 {
            return Err(StoreError::Invalid(format!("no batch {id}")));
        }
        Ok(())
    }

    fn batch(&mut self, id: i64) -> Result<Option<BatchRow>> {
        self.row(
            concat!("SELECT ", batch_cols!(), " FROM batches b WHERE b.id = ?1"),
            [id],
            schema::batch,
        )
    }

    fn batches(&mut self, status: Option<BatchStatus>) -> Result<Vec<BatchRow>> {
        match status {
            Some(status) => self.rows(
                concat!(
                    "SELECT ",
                    batch_cols!(),
                    " FROM batches b WHERE b.status = ?1 ORDER BY b.id"
                ),
                [status.as_str()],
                schema::batch,
            ),
            None => self.rows(
                concat!("SELECT ", batch_cols!(), " FROM batches b ORDER BY b.id"),
                [],
                schema::batch,
            ),
        }
    }

    fn held_insert(&mut self, batch_id: i64, rows: &[ObservationRow]) -> Result<()> {
        let mut insert = self.c.prepare_cached(HELD_INSERT)?;
        for o in rows {
            insert.execute(params![
                batch_id,
                o.indicator_id,
                o.source_id,
                o.category,
                o.confidence,
                o.tlp,
                schema::json_list(&o.tags)?,
                schema::secs(o.first_seen),
                schema::secs(o.last_seen),
                o.valid_until.map(schema::secs),
                o.count,
                o.reference,
            ])?;
        }
        Ok(())
    }

    fn held_take(&mut self, batch_id: i64) -> Result<Vec<ObservationRow>> {
        let rows = self.rows(
            concat!(
                "SELECT ",
                observation_cols!(),
                " FROM held_observations WHERE batch_id = ?1 ORDER BY id"
            ),
            [batch_id],
            schema::observation,
        )?;
        self.c
            .prepare_cached("DELETE FROM held_observations WHERE batch_id = ?1")?
            .execute([batch_id])?;
        Ok(rows)
    }

    fn batch_mark_snapshot(&mut self, batch_id: i64) -> Result<()> {
        self.c
            .prepare_cached("INSERT OR IGNORE INTO snapshot_batches (batch_id) VALUES (?1)")?
            .execute([batch_id])?;
        Ok(())
    }

    fn batch_is_snapshot(&mut self, batch_id: i64) -> Result<bool> {
        Ok(self
            .row(
                "SELECT 1 FROM snapshot_batches WHERE batch_id = ?1",
                [batch_id],
                |r| r.int(0),
            )?
            .is_some())
    }

    fn decisions_of(&mut self, indicator_ids: &[i64]) -> Result<Vec<DecisionRow>> {
        let mut out = Vec::with_capacity(indicator_ids.len());
        for id in schema::unique_ids(indicator_ids) {
            out.extend(self.row(
                concat!(
                    "SELECT ",
                    decision_cols!(),
                    " FROM decisions WHERE indicator_id = ?1"
                ),
                [id],
                |r| schema::decision(r, 0),
            )?);
        }
        Ok(out)
    }

    fn decisions_put(&mut self, rows: &[DecisionRow]) -> Result<()> {
        let mut upsert = self.c.prepare_cached(concat!(
            "INSERT INTO decisions (",
            decision_cols!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
            ON CONFLICT (indicator_id) DO UPDATE SET
                state = excluded.state, score = excluded.score, category = excluded.category,
                reasons = excluded.reasons, rules = excluded.rules, feeds = excluded.feeds,
                decided_at = excluded.decided_at"
        ))?;
        for d in rows {
            upsert.execute(params![
                d.indicator_id,
                d.state,
                d.score,
                d.category,
                schema::json_list(&d.reasons)?,
                schema::json_rules(&d.rules)?,
                schema::json_list(&d.feeds)?,
                schema::secs(d.decided_at),
            ])?;
        }
        Ok(())
    }

    fn decision_counts(&mut self) -> Result<Vec<(String, u64)>> {
        self.rows(
            "SELECT state, COUNT(*) FROM decisions GROUP BY state ORDER BY state",
            [],
            |r| Ok((r.text(0)?, u64::try_from(r.int(1)?).unwrap_or(0))),
        )
    }

    fn decisions_in_state(&mut self, state: &str) -> Result<Vec<(IndicatorRow, DecisionRow)>> {
        self.rows(
            "SELECT i.id, i.value, i.kind, i.host, d.indicator_id, d.state, d.score, d.category,
                    d.reasons, d.rules, d.feeds, d.decided_at
             FROM decisions d JOIN indicators i ON i.id = d.indicator_id
             WHERE d.state = ?1 ORDER BY d.indicator_id",
            [state],
            |r| Ok((schema::indicator(r, 0)?, schema::decision(r, 4)?)),
        )
    }

    fn rules_adjust(&mut self, deltas: &RuleDeltas) -> Result<BTreeMap<String, RuleChanges>> {
        let union = self.union_feed()?;
        let mut adjustment = Adjustment::new(deltas, union.as_ref().map(|u| u.name.as_str()));
        for slot in 0..adjustment.slots.len() {
            let name = adjustment.slots[slot].name.clone();
            let feed = self.feed_ensure(&name)?;
            adjustment.set_serial(slot, i64::from(feed.serial))?;
        }
        // One probe finds a rule's rows in every feed (they share the key prefix);
        // then each feed's row is written. (An upsert with `RETURNING` was measured
        // slower: SQLite probes the key twice and spools the returned row.)
        let mut select = self.c.prepare_cached(
            "SELECT feed, refcount, union_serial FROM feed_rules WHERE trigger = ?1 AND action = ?2",
        )?;
        let mut insert = self.c.prepare_cached(
            "INSERT INTO feed_rules (trigger, action, feed, refcount, serial_added, union_serial)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut update = self.c.prepare_cached(
            "UPDATE feed_rules SET refcount = ?4 WHERE trigger = ?1 AND action = ?2 AND feed = ?3",
        )?;
        let mut delete = self.c.prepare_cached(
            "DELETE FROM feed_rules WHERE trigger = ?1 AND action = ?2 AND feed = ?3",
        )?;
        let rules: Vec<&RuleText> = adjustment.rules().collect();
        let mut stored = Vec::new();
        let mut ops = Vec::new();
        for (i, rule) in rules.into_iter().enumerate() {
            select.raw_bind_parameter(1, &rule.trigger)?;
            select.raw_bind_parameter(2, &rule.action)?;
            stored.clear();
            let mut rows = select.raw_query();
            while let Some(row) = rows.next()? {
                let feed = row
                    .get_ref(0)?
                    .as_str()
                    .map_err(|e| StoreError::Invalid(format!("stored feed name: {e}")))?;
                stored.push(Stored {
                    slot: adjustment.slot_of(feed),
                    refcount: row.get(1)?,
                    union_serial: row.get(2)?,
                });
            }
            drop(rows);
            adjustment.plan(i, &stored, &mut ops)?;
            for op in &ops {
                match *op {
                    RowOp::Insert {
                        slot,
                        refcount,
                        union_serial,
                    } => {
                        let s = &adjustment.slots[slot];
                        insert.execute(params![
                            rule.trigger,
                            rule.action,
                            s.name,
                            refcount,
                            s.publishing,
                            union_serial
                        ])?;
                    }
                    RowOp::Update { slot, refcount } => {
                        let s = &adjustment.slots[slot];
                        update.execute(params![rule.trigger, rule.action, s.name, refcount])?;
                    }
                    RowOp::Delete { slot } => {
                        let s = &adjustment.slots[slot];
                        delete.execute(params![rule.trigger, rule.action, s.name])?;
                    }
                }
            }
        }
        let mut count = self
            .c
            .prepare_cached("UPDATE feeds SET rules = rules + ?2 WHERE name = ?1")?;
        for s in adjustment.slots.iter().filter(|s| s.count != 0) {
            count.execute(params![s.name, s.count])?;
        }
        Ok(adjustment.into_changes())
    }

    fn feed_rules(&mut self, feed: &str) -> Result<Vec<RuleText>> {
        let rule = |r: &dyn Columns| {
            Ok(RuleText {
                trigger: r.text(0)?,
                action: r.text(1)?,
            })
        };
        if self.is_union(feed)? {
            // The key order groups a rule's rows: no sort, no temporary table.
            self.rows(
                "SELECT trigger, action FROM feed_rules GROUP BY trigger, action
                 ORDER BY trigger, action",
                [],
                rule,
            )
        } else {
            self.rows(
                "SELECT trigger, action FROM feed_rules WHERE feed = ?1 ORDER BY trigger, action",
                [feed],
                rule,
            )
        }
    }

    fn feeds(&mut self) -> Result<Vec<FeedRow>> {
        self.rows(
            concat!("SELECT ", feed_cols!(), " FROM feeds ORDER BY name"),
            [],
            schema::feed,
        )
    }

    fn feed_ensure(&mut self, feed: &str) -> Result<FeedRow> {
        self.c
            .prepare_cached(
                "INSERT INTO feeds (name, serial) VALUES (?1, 0) ON CONFLICT (name) DO NOTHING",
            )?
            .execute([feed])?;
        self.one(
            concat!("SELECT ", feed_cols!(), " FROM feeds WHERE name = ?1"),
            [feed],
            schema::feed,
        )
    }

    fn feed_declare_union(&mut self, feed: &str) -> Result<FeedRow> {
        if let Some(union) = self.union_feed()? {
            return if union.name == feed {
                Ok(union)
            } else {
                Err(schema::other_union(feed, &union.name))
            };
        }
        let others: bool = self.one(
            "SELECT EXISTS (SELECT 1 FROM feed_rules WHERE feed <> ?1)",
            [feed],
            |r| Ok(r.int(0)? != 0),
        )?;
        if others {
            return Err(schema::union_over_rules(feed));
        }
        self.feed_ensure(feed)?;
        self.c
            .prepare_cached("UPDATE feeds SET kind = 'union' WHERE name = ?1")?
            .execute([feed])?;
        self.c
            .prepare_cached("UPDATE feed_rules SET union_serial = serial_added WHERE feed = ?1")?
            .execute([feed])?;
        self.feed_ensure(feed)
    }

    fn journal_append(
        &mut self,
        feed: &str,
        changes: &RuleChanges,
        at: Timestamp,
        batch_id: Option<i64>,
    ) -> Result<u32> {
        let chunks = schema::journal_chunks(feed, &changes.added, &changes.removed)?;
        let current = self.feed_ensure(feed)?;
        let serial = schema::next_serial(feed, i64::from(current.serial))?;
        let at = schema::secs(at);
        self.c
            .prepare_cached("UPDATE feeds SET serial = ?2, updated_at = ?3 WHERE name = ?1")?
            .execute(params![feed, serial, at])?;
        self.c
            .prepare_cached(
                "INSERT INTO journal (feed, serial, at, batch_id) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![feed, serial, at, batch_id])?;
        let mut insert = self.c.prepare_cached(
            "INSERT INTO journal_chunks (feed, serial, seq, op, action, triggers)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for c in &chunks {
            insert.execute(params![feed, serial, c.seq, c.op, c.action, c.triggers])?;
        }
        schema::serial_of(serial)
    }

    fn journal_since(&mut self, feed: &str, after: u32) -> Result<Vec<JournalEntry>> {
        let entries = self.rows(
            "SELECT serial, at, batch_id FROM journal WHERE feed = ?1 AND serial > ?2 ORDER BY serial",
            params![feed, after],
            |r| Ok((r.int(0)?, r.int(1)?, r.int_opt(2)?)),
        )?;
        let chunks = self.rows(
            "SELECT serial, op, action, triggers FROM journal_chunks
             WHERE feed = ?1 AND serial > ?2 ORDER BY serial, seq",
            params![feed, after],
            |r| Ok((r.int(0)?, r.text(1)?, r.text(2)?, r.text(3)?)),
        )?;
        schema::assemble_journal(feed, entries, chunks)
    }

    fn rule_serials(&mut self, feed: &str, trigger: &str) -> Result<Vec<(String, u32)>> {
        let rows = if self.is_union(feed)? {
            self.rows(
                "SELECT action, MAX(union_serial) FROM feed_rules WHERE trigger = ?1
                 GROUP BY action ORDER BY action",
                [trigger],
                |r| Ok((r.text(0)?, r.int(1)?)),
            )?
        } else {
            self.rows(
                "SELECT action, serial_added FROM feed_rules WHERE trigger = ?1 AND feed = ?2
                 ORDER BY action",
                [trigger, feed],
                |r| Ok((r.text(0)?, r.int(1)?)),
            )?
        };
        rows.into_iter()
            .map(|(action, serial)| Ok((action, schema::serial_of(serial)?)))
            .collect()
    }

    fn allow_replace_list(&mut self, list: &str, entries: &[AllowRow]) -> Result<()> {
        schema::check_list(list, entries)?;
        self.c
            .prepare_cached("DELETE FROM allowlist WHERE list = ?1")?
            .execute([list])?;
        self.allow_add(entries)
    }

    fn allow_add(&mut self, entries: &[AllowRow]) -> Result<()> {
        let mut upsert = self.c.prepare_cached(concat!(
            "INSERT INTO allowlist (",
            allow_cols!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5)
            ON CONFLICT (list, role, extent, value) DO UPDATE SET rank = excluded.rank"
        ))?;
        for e in entries {
            upsert.execute(params![e.list, e.role, e.extent, e.value, e.rank])?;
        }
        Ok(())
    }

    fn allow_all(&mut self) -> Result<Vec<AllowRow>> {
        self.rows(
            concat!(
                "SELECT ",
                allow_cols!(),
                " FROM allowlist ORDER BY list, id"
            ),
            [],
            schema::allow,
        )
    }

    fn audit(&mut self, entry: &AuditEntry) -> Result<()> {
        self.c
            .prepare_cached(concat!(
                "INSERT INTO audit (",
                audit_cols!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5)"
            ))?
            .execute(params![
                schema::secs(entry.at),
                entry.who,
                entry.action,
                entry.target,
                entry.reason
            ])?;
        Ok(())
    }

    fn audit_for(&mut self, target: &str) -> Result<Vec<AuditEntry>> {
        self.rows(
            concat!(
                "SELECT ",
                audit_cols!(),
                " FROM audit WHERE target = ?1 ORDER BY id"
            ),
            [target],
            schema::audit,
        )
    }

    fn pull_state_put(&mut self, source: &str, state: &str, at: Timestamp) -> Result<()> {
        self.c
            .prepare_cached(
                "INSERT INTO pull_state (source, state, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source) DO UPDATE SET state = excluded.state,
                     updated_at = excluded.updated_at",
            )?
            .execute(params![source, state, schema::secs(at)])?;
        Ok(())
    }

    fn pull_state(&mut self, source: &str) -> Result<Option<String>> {
        self.row(
            "SELECT state FROM pull_state WHERE source = ?1",
            [source],
            |r| r.text(0),
        )
    }

    fn pull_states(&mut self) -> Result<Vec<(String, String)>> {
        self.rows(
            "SELECT source, state FROM pull_state ORDER BY source",
            [],
            |r| Ok((r.text(0)?, r.text(1)?)),
        )
    }
}
