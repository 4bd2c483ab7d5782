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

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Params, Row, TransactionBehavior, params,
};

use crate::schema::{
    self, Columns, allow_cols, audit_cols, batch_cols, decision_cols, feed_cols, indicator_cols,
    observation_cols, observation_merge, published_states, report_cols, source_cols,
};
use crate::{
    AllowRow, AuditEntry, BatchRow, BatchStatus, DecisionRow, FeedRow, IndicatorKey, IndicatorRow,
    JournalEntry, NewBatch, NewReport, NewSource, ObservationRow, ObservationWithSource, ReportRow,
    ReportStatus, Result, RuleChanges, RuleDelta, RuleText, SearchHit, SourceActivity, SourceRow,
    StoreError, Timestamp, Tx,
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

    fn feed_rules_adjust(&mut self, feed: &str, deltas: &[RuleDelta]) -> Result<RuleChanges> {
        let current = self.feed_ensure(feed)?;
        // A rule that appears is published by the journal entry that follows in this
        // transaction; `integrity_check` verifies no rule is ahead of its feed.
        let publishing = schema::next_serial(feed, i64::from(current.serial))?;
        // A rule gaining references is inserted, or, if it is there already, its
        // count raised. (An upsert with `RETURNING` was measured slower: SQLite
        // probes the key twice and spools the returned row.)
        let mut insert = self.c.prepare_cached(
            "INSERT INTO feed_rules (feed, trigger, action, refcount, serial_added)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (feed, trigger, action) DO NOTHING",
        )?;
        let mut raise = self.c.prepare_cached(
            "UPDATE feed_rules SET refcount = refcount + ?4
             WHERE feed = ?1 AND trigger = ?2 AND action = ?3",
        )?;
        // A rule losing references needs its old count first: the count may not go
        // below one in the table (`CHECK`), so 0 is a delete.
        let mut select = self.c.prepare_cached(
            "SELECT refcount FROM feed_rules WHERE feed = ?1 AND trigger = ?2 AND action = ?3",
        )?;
        let mut update = self.c.prepare_cached(
            "UPDATE feed_rules SET refcount = ?4 WHERE feed = ?1 AND trigger = ?2 AND action = ?3",
        )?;
        let mut delete = self.c.prepare_cached(
            "DELETE FROM feed_rules WHERE feed = ?1 AND trigger = ?2 AND action = ?3",
        )?;
        // The feed and serial are bound once: a bound text is copied on every bind,
        // and these statements run once per rule.
        insert.raw_bind_parameter(1, feed)?;
        insert.raw_bind_parameter(5, publishing)?;
        raise.raw_bind_parameter(1, feed)?;
        let net = schema::net_deltas(deltas);
        let mut changes = RuleChanges {
            added: Vec::with_capacity(net.iter().filter(|(_, d)| *d > 0).count()),
            removed: Vec::new(),
        };
        for (rule, delta) in net {
            if delta > 0 {
                insert.raw_bind_parameter(2, &rule.trigger)?;
                insert.raw_bind_parameter(3, &rule.action)?;
                insert.raw_bind_parameter(4, delta)?;
                if insert.raw_execute()? == 1 {
                    changes.added.push(rule.clone());
                } else {
                    raise.raw_bind_parameter(2, &rule.trigger)?;
                    raise.raw_bind_parameter(3, &rule.action)?;
                    raise.raw_bind_parameter(4, delta)?;
                    raise.raw_execute()?;
                }
                continue;
            }
            let old: i64 = select
                .query_row(params![feed, rule.trigger, rule.action], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            let new = schema::adjusted(feed, rule, old, delta)?;
            if new == 0 {
                delete.execute(params![feed, rule.trigger, rule.action])?;
                changes.removed.push(rule.clone());
            } else {
                update.execute(params![feed, rule.trigger, rule.action, new])?;
            }
        }
        Ok(changes)
    }

    fn feed_rules(&mut self, feed: &str) -> Result<Vec<RuleText>> {
        self.rows(
            "SELECT trigger, action FROM feed_rules WHERE feed = ?1 ORDER BY trigger, action",
            [feed],
            |r| {
                Ok(RuleText {
                    trigger: r.text(0)?,
                    action: r.text(1)?,
                })
            },
        )
    }

    fn feed_rule_count(&mut self, feed: &str) -> Result<u64> {
        let n = self.one(
            "SELECT COUNT(*) FROM feed_rules WHERE feed = ?1",
            [feed],
            |r| r.int(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
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

    fn journal_append(
        &mut self,
        feed: &str,
        changes: &RuleChanges,
        at: Timestamp,
        batch_id: Option<i64>,
    ) -> Result<u32> {
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
            "INSERT INTO journal_changes (feed, serial, seq, op, trigger, action) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        // Feed and serial bound once (see `feed_rules_adjust`).
        insert.raw_bind_parameter(1, feed)?;
        insert.raw_bind_parameter(2, serial)?;
        for (seq, (op, rule)) in
            (0_i64..).zip(schema::journal_ops(&changes.added, &changes.removed))
        {
            insert.raw_bind_parameter(3, seq)?;
            insert.raw_bind_parameter(4, op)?;
            insert.raw_bind_parameter(5, &rule.trigger)?;
            insert.raw_bind_parameter(6, &rule.action)?;
            insert.raw_execute()?;
        }
        schema::serial_of(serial)
    }

    fn journal_since(&mut self, feed: &str, after: u32) -> Result<Vec<JournalEntry>> {
        let entries = self.rows(
            "SELECT serial, at, batch_id FROM journal WHERE feed = ?1 AND serial > ?2 ORDER BY serial",
            params![feed, after],
            |r| Ok((r.int(0)?, r.int(1)?, r.int_opt(2)?)),
        )?;
        let changes = self.rows(
            "SELECT serial, op, trigger, action FROM journal_changes
             WHERE feed = ?1 AND serial > ?2 ORDER BY serial, seq",
            params![feed, after],
            |r| {
                let rule = RuleText {
                    trigger: r.text(2)?,
                    action: r.text(3)?,
                };
                Ok((r.int(0)?, r.text(1)?, rule))
            },
        )?;
        schema::assemble_journal(feed, entries, changes)
    }

    fn rule_published_serial(&mut self, feed: &str, trigger: &str) -> Result<Option<u32>> {
        let serial = self.one(
            "SELECT MAX(serial_added) FROM feed_rules WHERE feed = ?1 AND trigger = ?2",
            [feed, trigger],
            |r| r.int_opt(0),
        )?;
        serial.map(schema::serial_of).transpose()
    }

    fn allow_replace_list(&mut self, list: &str, entries: &[AllowRow]) -> Result<()> {
        schema::check_list(list, entries)?;
        self.c
            .prepare_cached("DELETE FROM allowlist WHERE list = ?1")?
            .execute([list])?;
        self.allow_add(entries)
    }

    fn allow_add(&mut self, entries: &[AllowRow]) -> Result<()> {
        self.c.prepare_cached(schema::ALLOW_BUMP)?.execute([])?;
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

    fn allow_version(&mut self) -> Result<i64> {
        self.one(schema::ALLOW_VERSION, [], |r| r.int(0))
    }

    fn indicators_search(
        &mut self,
        q: &str,
        state: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<SearchHit>> {
        self.rows(
            "SELECT i.id, i.value, i.kind, i.host, d.indicator_id, d.state, d.score, d.category,
                    d.reasons, d.rules, d.feeds, d.decided_at
             FROM indicators i LEFT JOIN decisions d ON d.indicator_id = i.id
             WHERE i.id > ?1 AND (?2 = '' OR instr(i.value, ?2) > 0)
               AND (?3 IS NULL OR d.state = ?3)
             ORDER BY i.id LIMIT ?4",
            params![after, q, state, i64::from(limit)],
            |r| {
                let decision = match r.int_opt(4)? {
                    Some(_) => Some(schema::decision(r, 4)?),
                    None => None,
                };
                Ok((schema::indicator(r, 0)?, decision))
            },
        )
    }

    fn report_create(&mut self, report: &NewReport) -> Result<i64> {
        schema::check_report(report)?;
        self.one(
            "INSERT INTO reports (created_at, kind, target, feed, message, contact, status, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', '') RETURNING id",
            params![
                schema::secs(report.created_at),
                report.kind,
                report.target,
                report.feed,
                report.message,
                report.contact
            ],
            |r| r.int(0),
        )
    }

    fn report(&mut self, id: i64) -> Result<Option<ReportRow>> {
        self.row(
            concat!("SELECT ", report_cols!(), " FROM reports WHERE id = ?1"),
            [id],
            schema::report,
        )
    }

    fn reports(&mut self, status: Option<ReportStatus>) -> Result<Vec<ReportRow>> {
        self.rows(
            concat!(
                "SELECT ",
                report_cols!(),
                " FROM reports WHERE ?1 IS NULL OR status = ?1 ORDER BY id"
            ),
            [status.map(ReportStatus::as_str)],
            schema::report,
        )
    }

    fn report_resolve(
        &mut self,
        id: i64,
        status: ReportStatus,
        at: Timestamp,
        who: &str,
        note: &str,
    ) -> Result<()> {
        let changed = self
            .c
            .prepare_cached(
                "UPDATE reports SET status = ?2, resolved_at = ?3, resolved_by = ?4, note = ?5
                 WHERE id = ?1 AND status = 'open'",
            )?
            .execute(params![id, status.as_str(), schema::secs(at), who, note])?;
        if changed == 0 {
            return Err(StoreError::Invalid(match self.report(id)? {
                Some(r) => format!("report {id} is {}, not open", r.status.as_str()),
                None => format!("no report {id}"),
            }));
        }
        Ok(())
    }

    fn batch_counts(&mut self) -> Result<Vec<(String, u64)>> {
        self.rows(schema::BATCH_COUNTS, [], |r| {
            Ok((r.text(0)?, u64::try_from(r.int(1)?).unwrap_or(0)))
        })
    }

    fn source_activity(&mut self) -> Result<Vec<SourceActivity>> {
        self.rows(schema::SOURCE_ACTIVITY, [], schema::source_activity)
    }
}
