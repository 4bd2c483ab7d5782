//! The production store: PostgreSQL through the synchronous `postgres` client.
//!
//! Same schema, same semantics as the SQLite store, so the hub never knows which one
//! it has. What differs is cost: every statement is a network round trip, so bulk
//! operations send whole columns as array parameters and let the server `UNNEST`
//! them (a few statements per 20,000 rows instead of one per row), and statements are
//! prepared once per connection and cached, with generic plans (see `connect`).
//! Per-row foreign-key triggers are too slow for bulk writes, so the bulk tables
//! have none: their statements check references set-wise and `integrity_check`
//! looks for orphans (see the schema).
//!
//! Writers take a transaction-scoped advisory lock first, so writes are serialised
//! as they are in SQLite (`BEGIN IMMEDIATE`): the read-then-write steps (reference
//! counts, serials) need no retry logic, and two hubs on one database cannot
//! interleave their journals. Reads run in `REPEATABLE READ, READ ONLY`
//! transactions: one snapshot, no writes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, NoTls, Row, Statement, Transaction};

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

/// Rows per bulk statement: large enough that round trips do not matter, small
/// enough to keep each message a few megabytes.
const CHUNK: usize = 20_000;

/// Advisory lock keys (per database): one writer at a time; one migration at a time.
const WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock(5368617265001)";
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(5368617265002)";

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// A connection to a PostgreSQL store.
pub struct PgStore {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("closed", &self.client.is_closed())
            .field("prepared_statements", &self.statements.len())
            .finish()
    }
}

impl PgStore {
    /// Connects (`host=… port=… user=… dbname=…` or a `postgres://` URL) and migrates
    /// the database to the latest schema.
    pub fn connect(params: &str) -> Result<PgStore> {
        PgStore::connect_at_version(params, schema::LATEST)
    }

    /// Connects, migrating only up to `version` (tests of upgrades from old stores).
    pub(crate) fn connect_at_version(params: &str, version: i64) -> Result<PgStore> {
        let mut client = Client::connect(params, NoTls)?;
        migrate(&mut client, version)?;
        // Every parameterised statement here is driven by keys: a few values or an
        // array of them. A generic plan assumes a small input and probes indexes;
        // a custom plan sized for a 20,000-element array can pick a hash or merge
        // join over a whole table, which on freshly loaded (unanalysed) tables went
        // parallel and sorted on disk: ten times slower.
        client.batch_execute("SET plan_cache_mode = force_generic_plan")?;
        Ok(PgStore {
            client,
            statements: HashMap::new(),
        })
    }

    pub(crate) fn write<R>(&mut self, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> Result<R> {
        let mut tx = self.client.transaction()?;
        tx.batch_execute(WRITE_LOCK)?;
        let mut pg = PgTx {
            tx,
            statements: &mut self.statements,
        };
        let result = f(&mut pg);
        let PgTx { tx, .. } = pg;
        match result {
            Ok(value) => {
                tx.commit()?;
                Ok(value)
            }
            Err(e) => {
                // The caller's error is the one to report; an uncommitted transaction
                // leaves nothing behind even if the rollback itself fails.
                let _ = tx.rollback();
                Err(e)
            }
        }
    }

    pub(crate) fn read<R>(&mut self, f: impl FnOnce(&mut dyn Tx) -> Result<R>) -> Result<R> {
        let tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let mut pg = PgTx {
            tx,
            statements: &mut self.statements,
        };
        let result = f(&mut pg);
        let PgTx { tx, .. } = pg;
        let end = tx.rollback();
        let value = result?;
        end?;
        Ok(value)
    }
}

fn migrate(client: &mut Client, target: i64) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.batch_execute(MIGRATION_LOCK)?;
    tx.batch_execute(schema::SCHEMA_VERSION_TABLE)?;
    let found = tx.query_one(schema::CURRENT_VERSION, &[])?.int(0)?;
    let now = Timestamp::now().as_second();
    for step in schema::pending(found, target)? {
        tx.batch_execute(step.postgres)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at, description) VALUES ($1, $2, $3)",
            &[&step.version, &now, &step.description],
        )?;
    }
    tx.commit()?;
    Ok(())
}

impl Columns for Row {
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.try_get(i)?)
    }
    fn int_opt(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn real(&self, i: usize) -> Result<f64> {
        Ok(self.try_get(i)?)
    }
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.try_get(i)?)
    }
    fn text_opt(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
}

/// One transaction on the store.
struct PgTx<'c> {
    tx: Transaction<'c>,
    statements: &'c mut HashMap<&'static str, Statement>,
}

impl PgTx<'_> {
    /// `sql` prepared on this connection, once.
    fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64> {
        let statement = self.statement(sql)?;
        Ok(self.tx.execute(&statement, params)?)
    }

    fn rows<T>(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        f: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Vec<T>> {
        let statement = self.statement(sql)?;
        self.tx
            .query(&statement, params)?
            .iter()
            .map(|r| f(r))
            .collect()
    }

    fn row<T>(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        f: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<Option<T>> {
        let statement = self.statement(sql)?;
        self.tx
            .query_opt(&statement, params)?
            .as_ref()
            .map(|r| f(r))
            .transpose()
    }

    fn one<T>(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        f: impl Fn(&dyn Columns) -> Result<T>,
    ) -> Result<T> {
        self.row(sql, params, f)?
            .ok_or_else(|| StoreError::Invalid(format!("no row from {sql}")))
    }

    /// The union feed, if the store has one.
    fn union_feed(&mut self) -> Result<Option<FeedRow>> {
        self.row(
            concat!("SELECT ", feed_cols!(), " FROM feeds WHERE kind = 'union'"),
            &[],
            schema::feed,
        )
    }

    fn is_union(&mut self, feed: &str) -> Result<bool> {
        Ok(self.union_feed()?.is_some_and(|u| u.name == feed))
    }

    /// Observations through `sql` (an insert of the rows whose indicator and source
    /// exist); an error if some were not written because they do not.
    fn observations_put(
        &mut self,
        sql: &'static str,
        batch_id: Option<i64>,
        rows: &[ObservationRow],
    ) -> Result<()> {
        let mut written = 0;
        for chunk in rows.chunks(CHUNK) {
            let c = ObservationColumns::of(chunk)?;
            written += match batch_id {
                Some(batch_id) => self.execute(
                    sql,
                    &[
                        &c.indicator_id,
                        &c.source_id,
                        &c.category,
                        &c.confidence,
                        &c.tlp,
                        &c.tags,
                        &c.first_seen,
                        &c.last_seen,
                        &c.valid_until,
                        &c.count,
                        &c.reference,
                        &batch_id,
                    ],
                )?,
                None => self.execute(
                    sql,
                    &[
                        &c.indicator_id,
                        &c.source_id,
                        &c.category,
                        &c.confidence,
                        &c.tlp,
                        &c.tags,
                        &c.first_seen,
                        &c.last_seen,
                        &c.valid_until,
                        &c.count,
                        &c.reference,
                    ],
                )?,
            };
        }
        if written != rows.len() as u64 {
            return Err(StoreError::Invalid(format!(
                "{} of {} observations refer to a missing indicator or source",
                rows.len() as u64 - written,
                rows.len()
            )));
        }
        Ok(())
    }
}

/// Observations as one array per column.
struct ObservationColumns<'a> {
    indicator_id: Vec<i64>,
    source_id: Vec<i64>,
    category: Vec<&'a str>,
    confidence: Vec<Option<i64>>,
    tlp: Vec<&'a str>,
    tags: Vec<String>,
    first_seen: Vec<i64>,
    last_seen: Vec<i64>,
    valid_until: Vec<Option<i64>>,
    count: Vec<i64>,
    reference: Vec<Option<&'a str>>,
}

impl<'a> ObservationColumns<'a> {
    fn of(rows: &'a [ObservationRow]) -> Result<ObservationColumns<'a>> {
        Ok(ObservationColumns {
            indicator_id: rows.iter().map(|o| o.indicator_id).collect(),
            source_id: rows.iter().map(|o| o.source_id).collect(),
            category: rows.iter().map(|o| o.category.as_str()).collect(),
            confidence: rows.iter().map(|o| o.confidence.map(i64::from)).collect(),
            tlp: rows.iter().map(|o| o.tlp.as_str()).collect(),
            tags: rows
                .iter()
                .map(|o| schema::json_list(&o.tags))
                .collect::<Result<_>>()?,
            first_seen: rows.iter().map(|o| schema::secs(o.first_seen)).collect(),
            last_seen: rows.iter().map(|o| schema::secs(o.last_seen)).collect(),
            valid_until: rows
                .iter()
                .map(|o| o.valid_until.map(schema::secs))
                .collect(),
            count: rows.iter().map(|o| i64::from(o.count)).collect(),
            reference: rows.iter().map(|o| o.reference.as_deref()).collect(),
        })
    }
}

const OBSERVATION_UPSERT: &str = concat!(
    "INSERT INTO observations (",
    observation_cols!(),
    ") SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::text[],
        $6::text[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::text[])
        AS k(indicator_id, source_id)
    WHERE EXISTS (SELECT 1 FROM indicators i WHERE i.id = k.indicator_id)
      AND EXISTS (SELECT 1 FROM sources s WHERE s.id = k.source_id)
    ON CONFLICT (indicator_id, source_id) DO UPDATE SET
        ",
    observation_merge!("LEAST", "GREATEST")
);

const HELD_INSERT: &str = concat!(
    "INSERT INTO held_observations (batch_id, ",
    observation_cols!(),
    ") SELECT $12::int8, ",
    observation_cols!(),
    " FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::text[],
        $6::text[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::text[])
        WITH ORDINALITY AS k(",
    observation_cols!(),
    ", ord)
    WHERE EXISTS (SELECT 1 FROM indicators i WHERE i.id = k.indicator_id)
      AND EXISTS (SELECT 1 FROM sources s WHERE s.id = k.source_id)
    ORDER BY ord"
);

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Tx for PgTx<'_> {
    fn schema_version(&mut self) -> Result<i64> {
        self.one(schema::CURRENT_VERSION, &[], |r| r.int(0))
    }

    fn integrity_check(&mut self) -> Result<()> {
        // PostgreSQL enforces its own constraints at every statement; what is left to
        // check are the store's invariants.
        let mut problems = Vec::new();
        for query in schema::INVARIANTS.iter().chain(schema::PG_REFERENCES) {
            problems.extend(self.rows(query, &[], |r| r.text(0))?);
        }
        schema::integrity_result(problems)
    }

    fn source_upsert(&mut self, source: &NewSource) -> Result<SourceRow> {
        schema::check_source(source)?;
        self.one(
            concat!(
                "INSERT INTO sources (name, kind, trust, grp) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET
                     kind = excluded.kind, trust = excluded.trust, grp = excluded.grp
                 RETURNING ",
                source_cols!()
            ),
            &[
                &source.name,
                &source.kind.as_str(),
                &source.trust,
                &source.group,
            ],
            schema::source,
        )
    }

    fn source_by_name(&mut self, name: &str) -> Result<Option<SourceRow>> {
        self.row(
            concat!("SELECT ", source_cols!(), " FROM sources WHERE name = $1"),
            &[&name],
            schema::source,
        )
    }

    fn sources(&mut self) -> Result<Vec<SourceRow>> {
        self.rows(
            concat!("SELECT ", source_cols!(), " FROM sources ORDER BY name"),
            &[],
            schema::source,
        )
    }

    fn indicator_ids(&mut self, keys: &[IndicatorKey]) -> Result<Vec<i64>> {
        self.indicator_ids_created(keys).map(|(ids, _)| ids)
    }

    fn indicator_ids_created(&mut self, keys: &[IndicatorKey]) -> Result<(Vec<i64>, Vec<bool>)> {
        let mut ids = Vec::with_capacity(keys.len());
        let mut new = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            // Look up first (a re-import finds them all), then insert what is missing.
            let values: Vec<&str> = chunk.iter().map(|k| k.value.as_str()).collect();
            let mut found: Vec<Option<i64>> = self.rows(
                "SELECT (SELECT i.id FROM indicators i WHERE i.value = k.key)
                 FROM UNNEST($1::text[]) WITH ORDINALITY AS k(key, ord) ORDER BY k.ord",
                &[&values],
                |r| r.int_opt(0),
            )?;
            let before = found.clone();
            let missing: Vec<&IndicatorKey> = chunk
                .iter()
                .zip(&found)
                .filter(|(_, id)| id.is_none())
                .map(|(k, _)| k)
                .collect();
            if !missing.is_empty() {
                let values: Vec<&str> = missing.iter().map(|k| k.value.as_str()).collect();
                let kinds: Vec<&str> = missing.iter().map(|k| k.kind.as_str()).collect();
                let hosts: Vec<Option<&str>> = missing.iter().map(|k| k.host.as_deref()).collect();
                let created: HashMap<String, i64> = self
                    .rows(
                        "INSERT INTO indicators (value, kind, host)
                         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
                         ON CONFLICT (value) DO NOTHING
                         RETURNING value, id",
                        &[&values, &kinds, &hosts],
                        |r| Ok((r.text(0)?, r.int(1)?)),
                    )?
                    .into_iter()
                    .collect();
                for (key, id) in chunk.iter().zip(found.iter_mut()) {
                    if id.is_none() {
                        *id = created.get(&key.value).copied();
                    }
                }
                // Created here: missing before, and returned by the insert (a key
                // repeated in `keys` is created by its first occurrence only).
                let mut seen = std::collections::HashSet::new();
                for (key, was) in chunk.iter().zip(&before) {
                    new.push(
                        was.is_none()
                            && created.contains_key(&key.value)
                            && seen.insert(key.value.as_str()),
                    );
                }
            } else {
                new.extend(std::iter::repeat_n(false, chunk.len()));
            }
            for (key, id) in chunk.iter().zip(found) {
                ids.push(id.ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "indicator {:?}: no id after inserting it",
                        key.value
                    ))
                })?);
            }
        }
        Ok((ids, new))
    }

    fn indicator_by_value(&mut self, value: &str) -> Result<Option<IndicatorRow>> {
        self.row(
            concat!(
                "SELECT ",
                indicator_cols!(),
                " FROM indicators WHERE value = $1"
            ),
            &[&value],
            |r| schema::indicator(r, 0),
        )
    }

    fn indicators_by_id(&mut self, ids: &[i64]) -> Result<Vec<IndicatorRow>> {
        let ids = schema::unique_ids(ids);
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            out.extend(self.rows(
                "SELECT i.id, i.value, i.kind, i.host
                 FROM UNNEST($1::int8[]) WITH ORDINALITY AS k(key, ord)
                 JOIN indicators i ON i.id = k.key ORDER BY k.ord",
                &[&chunk],
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
                " FROM indicators WHERE host = $1 ORDER BY id"
            ),
            &[&host],
            |r| schema::indicator(r, 0),
        )
    }

    fn observations_merge(&mut self, rows: &[ObservationRow]) -> Result<()> {
        // One statement may not upsert a row twice: merge repeats here first, by the
        // same rule the statement applies.
        let rows = schema::merge_duplicates(rows);
        self.observations_put(OBSERVATION_UPSERT, None, &rows)
    }

    fn observations_of(&mut self, indicator_ids: &[i64]) -> Result<Vec<ObservationWithSource>> {
        let ids = schema::unique_ids(indicator_ids);
        let mut out = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            out.extend(self.rows(
                concat!(
                    "SELECT ",
                    observation_cols!(),
                    ", s.name, s.trust, s.grp
                     FROM UNNEST($1::int8[]) WITH ORDINALITY AS k(key, ord)
                     JOIN observations ON indicator_id = k.key
                     JOIN sources s ON s.id = source_id
                     ORDER BY k.ord, source_id"
                ),
                &[&chunk],
                schema::observation_with_source,
            )?);
        }
        Ok(out)
    }

    fn observations_delete(&mut self, source_id: i64, indicator_ids: &[i64]) -> Result<usize> {
        let ids = schema::unique_ids(indicator_ids);
        let mut deleted = 0;
        for chunk in ids.chunks(CHUNK) {
            deleted += self.execute(
                "DELETE FROM observations o USING UNNEST($2::int8[]) AS k(key)
                 WHERE o.source_id = $1 AND o.indicator_id = k.key",
                &[&source_id, &chunk],
            )?;
        }
        usize::try_from(deleted).map_err(|_| StoreError::Invalid(format!("{deleted} rows deleted")))
    }

    fn indicators_of_source(&mut self, source_id: i64) -> Result<Vec<i64>> {
        self.rows(
            "SELECT indicator_id FROM observations WHERE source_id = $1 ORDER BY indicator_id",
            &[&source_id],
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
            &[],
            |r| r.int(0),
        )
    }

    fn batch_create(&mut self, batch: &NewBatch) -> Result<i64> {
        self.one(
            "INSERT INTO batches (source_id, origin, status, created_at, note)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &batch.source_id,
                &batch.origin,
                &batch.status.as_str(),
                &schema::secs(batch.created_at),
                &batch.note,
            ],
            |r| r.int(0),
        )
    }

    fn batch_set_status(&mut self, id: i64, status: BatchStatus, note: &str) -> Result<()> {
        let changed = self.execute(
            "UPDATE batches SET status = $2, note = $3 WHERE id = $1",
            &[&id, &status.as_str(), &note],
        )?;
        if changed == 0 {
            return Err(StoreError::Invalid(format!("no batch {id}")));
        }
        Ok(())
    }

    fn batch(&mut self, id: i64) -> Result<Option<BatchRow>> {
        self.row(
            concat!("SELECT ", batch_cols!(), " FROM batches b WHERE b.id = $1"),
            &[&id],
            schema::batch,
        )
    }

    fn batches(&mut self, status: Option<BatchStatus>) -> Result<Vec<BatchRow>> {
        match status {
            Some(status) => self.rows(
                concat!(
                    "SELECT ",
                    batch_cols!(),
                    " FROM batches b WHERE b.status = $1 ORDER BY b.id"
                ),
                &[&status.as_str()],
                schema::batch,
            ),
            None => self.rows(
                concat!("SELECT ", batch_cols!(), " FROM batches b ORDER BY b.id"),
                &[],
                schema::batch,
            ),
        }
    }

    fn held_insert(&mut self, batch_id: i64, rows: &[ObservationRow]) -> Result<()> {
        if self
            .row("SELECT id FROM batches WHERE id = $1", &[&batch_id], |r| {
                r.int(0)
            })?
            .is_none()
        {
            return Err(StoreError::Invalid(format!("no batch {batch_id}")));
        }
        self.observations_put(HELD_INSERT, Some(batch_id), rows)
    }

    fn held_take(&mut self, batch_id: i64) -> Result<Vec<ObservationRow>> {
        self.rows(
            concat!(
                "WITH taken AS (DELETE FROM held_observations WHERE batch_id = $1 RETURNING id, ",
                observation_cols!(),
                ") SELECT ",
                observation_cols!(),
                " FROM taken ORDER BY id"
            ),
            &[&batch_id],
            schema::observation,
        )
    }

    fn batch_mark_snapshot(&mut self, batch_id: i64) -> Result<()> {
        self.execute(
            "INSERT INTO snapshot_batches (batch_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&batch_id],
        )?;
        Ok(())
    }

    fn batch_is_snapshot(&mut self, batch_id: i64) -> Result<bool> {
        Ok(self
            .row(
                "SELECT 1::int8 FROM snapshot_batches WHERE batch_id = $1",
                &[&batch_id],
                |r| r.int(0),
            )?
            .is_some())
    }

    fn decisions_of(&mut self, indicator_ids: &[i64]) -> Result<Vec<DecisionRow>> {
        let ids = schema::unique_ids(indicator_ids);
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            out.extend(self.rows(
                concat!(
                    "SELECT ",
                    decision_cols!(),
                    " FROM UNNEST($1::int8[]) WITH ORDINALITY AS k(key, ord)
                     JOIN decisions ON indicator_id = k.key ORDER BY k.ord"
                ),
                &[&chunk],
                |r| schema::decision(r, 0),
            )?);
        }
        Ok(out)
    }

    fn decisions_put(&mut self, rows: &[DecisionRow]) -> Result<()> {
        let rows = schema::last_per_key(rows, |d| d.indicator_id);
        for chunk in rows.chunks(CHUNK) {
            let ids: Vec<i64> = chunk.iter().map(|d| d.indicator_id).collect();
            let states: Vec<&str> = chunk.iter().map(|d| d.state.as_str()).collect();
            let scores: Vec<f64> = chunk.iter().map(|d| d.score).collect();
            let categories: Vec<&str> = chunk.iter().map(|d| d.category.as_str()).collect();
            let reasons = chunk
                .iter()
                .map(|d| schema::json_list(&d.reasons))
                .collect::<Result<Vec<_>>>()?;
            let rules = chunk
                .iter()
                .map(|d| schema::json_rules(&d.rules))
                .collect::<Result<Vec<_>>>()?;
            let feeds = chunk
                .iter()
                .map(|d| schema::json_list(&d.feeds))
                .collect::<Result<Vec<_>>>()?;
            let decided: Vec<i64> = chunk.iter().map(|d| schema::secs(d.decided_at)).collect();
            let written = self.execute(
                concat!(
                    "INSERT INTO decisions (",
                    decision_cols!(),
                    ") SELECT * FROM UNNEST($1::int8[], $2::text[], $3::float8[], $4::text[],
                        $5::text[], $6::text[], $7::text[], $8::int8[]) AS k(indicator_id)
                    WHERE EXISTS (SELECT 1 FROM indicators i WHERE i.id = k.indicator_id)
                    ON CONFLICT (indicator_id) DO UPDATE SET
                        state = excluded.state, score = excluded.score,
                        category = excluded.category, reasons = excluded.reasons,
                        rules = excluded.rules, feeds = excluded.feeds,
                        decided_at = excluded.decided_at"
                ),
                &[
                    &ids,
                    &states,
                    &scores,
                    &categories,
                    &reasons,
                    &rules,
                    &feeds,
                    &decided,
                ],
            )?;
            if written != chunk.len() as u64 {
                return Err(StoreError::Invalid(format!(
                    "{} decisions are about missing indicators",
                    chunk.len() as u64 - written
                )));
            }
        }
        Ok(())
    }

    fn decision_counts(&mut self) -> Result<Vec<(String, u64)>> {
        self.rows(
            "SELECT state, COUNT(*) FROM decisions GROUP BY state ORDER BY state",
            &[],
            |r| Ok((r.text(0)?, count(r.int(1)?))),
        )
    }

    fn decisions_in_state(&mut self, state: &str) -> Result<Vec<(IndicatorRow, DecisionRow)>> {
        self.rows(
            "SELECT i.id, i.value, i.kind, i.host, d.indicator_id, d.state, d.score, d.category,
                    d.reasons, d.rules, d.feeds, d.decided_at
             FROM decisions d JOIN indicators i ON i.id = d.indicator_id
             WHERE d.state = $1 ORDER BY d.indicator_id",
            &[&state],
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
        let rules: Vec<&RuleText> = adjustment.rules().collect();
        let mut ops = Vec::new();
        let mut stored = Vec::new();
        let mut done = 0;
        for chunk in rules.chunks(CHUNK) {
            let triggers: Vec<&str> = chunk.iter().map(|r| r.trigger.as_str()).collect();
            let actions: Vec<&str> = chunk.iter().map(|r| r.action.as_str()).collect();
            // Every feed's row of each rule, by the rule's position in the chunk.
            let rows = self.rows(
                "SELECT k.ord, r.feed, r.refcount, r.union_serial
                 FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS k(trigger, action, ord)
                 JOIN feed_rules r ON r.trigger = k.trigger AND r.action = k.action
                 ORDER BY k.ord",
                &[&triggers, &actions],
                |r| Ok((r.int(0)?, r.text(1)?, r.int(2)?, r.int(3)?)),
            )?;
            let mut rows = rows.into_iter().peekable();
            let (mut insert, mut update, mut delete) = (
                RuleColumns::default(),
                RuleColumns::default(),
                RuleColumns::default(),
            );
            for (ord, rule) in (1_i64..).zip(chunk) {
                stored.clear();
                while let Some((_, feed, refcount, union_serial)) = rows.next_if(|r| r.0 == ord) {
                    stored.push(Stored {
                        slot: adjustment.slot_of(&feed),
                        refcount,
                        union_serial,
                    });
                }
                adjustment.plan(done, &stored, &mut ops)?;
                done += 1;
                for op in &ops {
                    match *op {
                        RowOp::Insert {
                            slot,
                            refcount,
                            union_serial,
                        } => insert.push(rule, slot, refcount, union_serial),
                        RowOp::Update { slot, refcount } => update.push(rule, slot, refcount, 0),
                        RowOp::Delete { slot } => delete.push(rule, slot, 0, 0),
                    }
                }
            }
            let feeds = |c: &RuleColumns<'_>| -> Vec<String> {
                c.slots
                    .iter()
                    .map(|&s| adjustment.slots[s].name.clone())
                    .collect()
            };
            if !delete.is_empty() {
                self.execute(
                    "DELETE FROM feed_rules r
                     USING UNNEST($1::text[], $2::text[], $3::text[]) AS k(trigger, action, feed)
                     WHERE r.trigger = k.trigger AND r.action = k.action AND r.feed = k.feed",
                    &[&delete.triggers, &delete.actions, &feeds(&delete)],
                )?;
            }
            if !update.is_empty() {
                self.execute(
                    "UPDATE feed_rules r SET refcount = k.refcount
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[])
                         AS k(trigger, action, feed, refcount)
                     WHERE r.trigger = k.trigger AND r.action = k.action AND r.feed = k.feed",
                    &[
                        &update.triggers,
                        &update.actions,
                        &feeds(&update),
                        &update.counts,
                    ],
                )?;
            }
            if !insert.is_empty() {
                let serials: Vec<i64> = insert
                    .slots
                    .iter()
                    .map(|&s| adjustment.slots[s].publishing)
                    .collect();
                self.execute(
                    "INSERT INTO feed_rules (trigger, action, feed, refcount, serial_added, union_serial)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[],
                         $5::int8[], $6::int8[])",
                    &[
                        &insert.triggers,
                        &insert.actions,
                        &feeds(&insert),
                        &insert.counts,
                        &serials,
                        &insert.union_serials,
                    ],
                )?;
            }
        }
        for s in adjustment.slots.iter().filter(|s| s.count != 0) {
            self.execute(
                "UPDATE feeds SET rules = rules + $2 WHERE name = $1",
                &[&s.name, &s.count],
            )?;
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
            self.rows(
                "SELECT trigger, action FROM feed_rules GROUP BY trigger, action
                 ORDER BY trigger, action",
                &[],
                rule,
            )
        } else {
            self.rows(
                "SELECT trigger, action FROM feed_rules WHERE feed = $1 ORDER BY trigger, action",
                &[&feed],
                rule,
            )
        }
    }

    fn feeds(&mut self) -> Result<Vec<FeedRow>> {
        self.rows(
            concat!("SELECT ", feed_cols!(), " FROM feeds ORDER BY name"),
            &[],
            schema::feed,
        )
    }

    fn feed_ensure(&mut self, feed: &str) -> Result<FeedRow> {
        self.execute(
            "INSERT INTO feeds (name, serial) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
            &[&feed],
        )?;
        self.one(
            concat!("SELECT ", feed_cols!(), " FROM feeds WHERE name = $1"),
            &[&feed],
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
        let others = self.one(
            "SELECT COUNT(*) FROM (SELECT 1 FROM feed_rules WHERE feed <> $1 LIMIT 1) o",
            &[&feed],
            |r| r.int(0),
        )? > 0;
        if others {
            return Err(schema::union_over_rules(feed));
        }
        self.feed_ensure(feed)?;
        self.execute("UPDATE feeds SET kind = 'union' WHERE name = $1", &[&feed])?;
        self.execute(
            "UPDATE feed_rules SET union_serial = serial_added WHERE feed = $1",
            &[&feed],
        )?;
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
        self.execute(
            "UPDATE feeds SET serial = $2, updated_at = $3 WHERE name = $1",
            &[&feed, &serial, &at],
        )?;
        self.execute(
            "INSERT INTO journal (feed, serial, at, batch_id) VALUES ($1, $2, $3, $4)",
            &[&feed, &serial, &at, &batch_id],
        )?;
        // A few megabytes per statement.
        for part in chunks.chunks(64) {
            let seqs: Vec<i64> = part.iter().map(|c| c.seq).collect();
            let ops: Vec<&str> = part.iter().map(|c| c.op).collect();
            let actions: Vec<&str> = part.iter().map(|c| c.action).collect();
            let triggers: Vec<&str> = part.iter().map(|c| c.triggers.as_str()).collect();
            self.execute(
                "INSERT INTO journal_chunks (feed, serial, seq, op, action, triggers)
                 SELECT $1, $2, k.seq, k.op, k.action, k.triggers
                 FROM UNNEST($3::int8[], $4::text[], $5::text[], $6::text[])
                     AS k(seq, op, action, triggers)",
                &[&feed, &serial, &seqs, &ops, &actions, &triggers],
            )?;
        }
        schema::serial_of(serial)
    }

    fn journal_since(&mut self, feed: &str, after: u32) -> Result<Vec<JournalEntry>> {
        let after = i64::from(after);
        let entries = self.rows(
            "SELECT serial, at, batch_id FROM journal WHERE feed = $1 AND serial > $2 ORDER BY serial",
            &[&feed, &after],
            |r| Ok((r.int(0)?, r.int(1)?, r.int_opt(2)?)),
        )?;
        let chunks = self.rows(
            "SELECT serial, op, action, triggers FROM journal_chunks
             WHERE feed = $1 AND serial > $2 ORDER BY serial, seq",
            &[&feed, &after],
            |r| Ok((r.int(0)?, r.text(1)?, r.text(2)?, r.text(3)?)),
        )?;
        schema::assemble_journal(feed, entries, chunks)
    }

    fn rule_serials(&mut self, feed: &str, trigger: &str) -> Result<Vec<(String, u32)>> {
        let rows = if self.is_union(feed)? {
            self.rows(
                "SELECT action, MAX(union_serial) FROM feed_rules WHERE trigger = $1
                 GROUP BY action ORDER BY action",
                &[&trigger],
                |r| Ok((r.text(0)?, r.int(1)?)),
            )?
        } else {
            self.rows(
                "SELECT action, serial_added FROM feed_rules WHERE trigger = $1 AND feed = $2
                 ORDER BY action",
                &[&trigger, &feed],
                |r| Ok((r.text(0)?, r.int(1)?)),
            )?
        };
        rows.into_iter()
            .map(|(action, serial)| Ok((action, schema::serial_of(serial)?)))
            .collect()
    }

    fn allow_replace_list(&mut self, list: &str, entries: &[AllowRow]) -> Result<()> {
        schema::check_list(list, entries)?;
        self.execute("DELETE FROM allowlist WHERE list = $1", &[&list])?;
        self.allow_add(entries)
    }

    fn allow_add(&mut self, entries: &[AllowRow]) -> Result<()> {
        let entries = schema::last_per_key(entries, |e| {
            (
                e.list.clone(),
                e.role.clone(),
                e.extent.clone(),
                e.value.clone(),
            )
        });
        for chunk in entries.chunks(CHUNK) {
            let lists: Vec<&str> = chunk.iter().map(|e| e.list.as_str()).collect();
            let roles: Vec<&str> = chunk.iter().map(|e| e.role.as_str()).collect();
            let extents: Vec<&str> = chunk.iter().map(|e| e.extent.as_str()).collect();
            let values: Vec<&str> = chunk.iter().map(|e| e.value.as_str()).collect();
            let ranks: Vec<Option<i64>> = chunk.iter().map(|e| e.rank.map(i64::from)).collect();
            self.execute(
                concat!(
                    "INSERT INTO allowlist (",
                    allow_cols!(),
                    ") SELECT k.list, k.role, k.extent, k.value, k.rank
                    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[])
                        WITH ORDINALITY AS k(list, role, extent, value, rank, ord)
                    ORDER BY k.ord
                    ON CONFLICT (list, role, extent, value) DO UPDATE SET rank = excluded.rank"
                ),
                &[&lists, &roles, &extents, &values, &ranks],
            )?;
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
            &[],
            schema::allow,
        )
    }

    fn audit(&mut self, entry: &AuditEntry) -> Result<()> {
        self.execute(
            concat!(
                "INSERT INTO audit (",
                audit_cols!(),
                ") VALUES ($1, $2, $3, $4, $5)"
            ),
            &[
                &schema::secs(entry.at),
                &entry.who,
                &entry.action,
                &entry.target,
                &entry.reason,
            ],
        )?;
        Ok(())
    }

    fn audit_for(&mut self, target: &str) -> Result<Vec<AuditEntry>> {
        self.rows(
            concat!(
                "SELECT ",
                audit_cols!(),
                " FROM audit WHERE target = $1 ORDER BY id"
            ),
            &[&target],
            schema::audit,
        )
    }

    fn pull_state_put(&mut self, source: &str, state: &str, at: Timestamp) -> Result<()> {
        self.execute(
            "INSERT INTO pull_state (source, state, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (source) DO UPDATE SET state = excluded.state,
                 updated_at = excluded.updated_at",
            &[&source, &state, &schema::secs(at)],
        )?;
        Ok(())
    }

    fn pull_state(&mut self, source: &str) -> Result<Option<String>> {
        self.row(
            "SELECT state FROM pull_state WHERE source = $1",
            &[&source],
            |r| r.text(0),
        )
    }

    fn pull_states(&mut self) -> Result<Vec<(String, String)>> {
        self.rows(
            "SELECT source, state FROM pull_state ORDER BY source",
            &[],
            |r| Ok((r.text(0)?, r.text(1)?)),
        )
    }
}

/// Rule rows as one array per column (feeds as slots of the adjustment).
#[derive(Default)]
struct RuleColumns<'a> {
    triggers: Vec<&'a str>,
    actions: Vec<&'a str>,
    slots: Vec<usize>,
    counts: Vec<i64>,
    union_serials: Vec<i64>,
}

impl<'a> RuleColumns<'a> {
    fn push(&mut self, rule: &'a RuleText, slot: usize, count: i64, union_serial: i64) {
        self.triggers.push(&rule.trigger);
        self.actions.push(&rule.action);
        self.slots.push(slot);
        self.counts.push(count);
        self.union_serials.push(union_serial);
    }
    fn is_empty(&self) -> bool {
        self.triggers.is_empty()
    }
}
