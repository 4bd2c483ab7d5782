//! Import: a parsed feed becomes observations, decisions and journal entries.
//!
//! One file is one transaction: either every observation it carries is stored and
//! the resulting changes are published, or nothing is (a file that fails to read never
//! gets here; a store error rolls everything back). Before publishing, the circuit
//! breaker looks at the exact changes the batch would make; if it trips, the
//! transaction is rolled back and the batch's observations are parked, held for
//! review, outside the evidence.
//!
//! A source that publishes full snapshots (a scheduled pull with `snapshot = true`)
//! imports with [`import_snapshot`]: whatever it listed before and no longer lists
//! loses *this source's* observation in the same transaction (other sources'
//! evidence stays), and the recompute decides what that withdraws. The breaker judges
//! those removals like any other, so a snapshot that suddenly comes back empty is
//! held, not published.

use std::collections::{BTreeMap, HashMap, HashSet};

use analysis::{Context, FeedChange};
use formats::{Parsed, Polarity, Record};
use indicator::{Category, Confidence, Domain, Host, Indicator, RejectCode, Timestamp, Tlp};
use store::{AuditEntry, BatchStatus, NewBatch, NewSource, ObservationRow, StoreError, Tx};

use crate::engine::{Applied, Fresh, recompute_with_fresh, unique_ids};
use crate::evidence::key;

/// Defaults for what a feed does not say.
#[derive(Debug, Clone)]
pub struct ImportDefaults {
    pub category: Category,
    pub tlp: Tlp,
}

impl Default for ImportDefaults {
    fn default() -> ImportDefaults {
        ImportDefaults {
            category: Category::Unknown,
            tlp: Tlp::Clear,
        }
    }
}

/// What is imported, from whom.
#[derive(Debug, Clone, Copy)]
pub struct ImportJob<'a> {
    pub source: &'a NewSource,
    /// What was imported (file name, URL, `api`), for the batch and the audit log.
    pub origin: &'a str,
    pub defaults: &'a ImportDefaults,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub records: usize,
    pub rejected: usize,
    pub reject_reasons: BTreeMap<RejectCode, usize>,
    /// Allow-polarity records in a feed (exceptions): not evidence, not imported.
    pub allow_skipped: usize,
    /// Records the producer revoked: this source's observation is withdrawn.
    pub revoked: usize,
    /// Snapshot imports: indicators this source listed before and no longer lists,
    /// whose observation by it was withdrawn (or would be, when the batch is held).
    pub unlisted: usize,
    /// Unique indicators observed.
    pub indicators: usize,
    pub batch_id: Option<i64>,
    /// Why the batch was held, if it was.
    pub held: Option<Vec<String>>,
    pub applied: Applied,
}

/// One indicator's merged observation from this file.
#[derive(Debug)]
struct Draft {
    category: Option<Category>,
    confidence: Option<Confidence>,
    tlp: Option<Tlp>,
    tags: Vec<String>,
    first_seen: Option<Timestamp>,
    last_seen: Option<Timestamp>,
    valid_until: Option<Timestamp>,
    reference: Option<String>,
}

impl Draft {
    fn from_record(r: &Record) -> Draft {
        let m = r.meta.as_deref();
        Draft {
            category: m.and_then(|m| m.category),
            confidence: m.and_then(|m| m.confidence),
            tlp: m.and_then(|m| m.tlp),
            tags: m.map(|m| m.tags.clone()).unwrap_or_default(),
            first_seen: m.and_then(|m| m.first_seen),
            last_seen: m.and_then(|m| m.last_seen.or(m.first_seen)),
            valid_until: m.and_then(|m| m.valid_until),
            reference: m.and_then(|m| m.reference.clone()),
        }
    }

    fn merge(&mut self, other: Draft) {
        self.category = self.category.or(other.category);
        self.confidence = self.confidence.max(other.confidence);
        self.tlp = self.tlp.max(other.tlp);
        for t in other.tags {
            if !self.tags.contains(&t) {
                self.tags.push(t);
            }
        }
        self.first_seen = min_opt(self.first_seen, other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.valid_until = self.valid_until.max(other.valid_until);
        self.reference = self.reference.take().or(other.reference);
    }
}

fn min_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Normalised, de-duplicated content of a parsed file.
#[derive(Debug)]
pub struct Batch {
    items: Vec<(Indicator, Draft)>,
    revoked: Vec<Indicator>,
    pub report: ImportReport,
}

/// Normalises and de-duplicates the records of `parsed`.
pub fn prepare(parsed: &Parsed) -> Batch {
    let mut report = ImportReport {
        records: parsed.records.len(),
        ..Default::default()
    };
    let mut index: HashMap<Indicator, usize> = HashMap::with_capacity(parsed.records.len());
    let mut items: Vec<(Indicator, Draft)> = Vec::with_capacity(parsed.records.len());
    let mut revoked = Vec::new();
    for record in &parsed.records {
        if record.polarity == Polarity::Allow {
            report.allow_skipped += 1;
            continue;
        }
        let indicator = match record.normalise() {
            Ok(i) => i,
            Err(e) => {
                report.rejected += 1;
                *report.reject_reasons.entry(e.code).or_default() += 1;
                continue;
            }
        };
        if record.meta.as_deref().is_some_and(|m| m.revoked) {
            report.revoked += 1;
            revoked.push(indicator);
            continue;
        }
        let draft = Draft::from_record(record);
        match index.get(&indicator) {
            Some(&i) => items[i].1.merge(draft),
            None => {
                index.insert(indicator.clone(), items.len());
                items.push((indicator, draft));
            }
        }
    }
    report.indicators = items.len();
    Batch {
        items,
        revoked,
        report,
    }
}

/// Names a batch mentions: domains, wildcard bases, URL hosts.
fn names(items: &[(Indicator, Draft)]) -> Vec<Domain> {
    items
        .iter()
        .filter_map(|(i, _)| match i {
            Indicator::Domain(d) | Indicator::Wildcard(d) => Some(d.clone()),
            Indicator::Url(u) => match u.host() {
                Host::Domain(d) => Some(d.clone()),
                Host::Ip(_) => None,
            },
            _ => None,
        })
        .collect()
}

fn observation_rows(
    items: &[(Indicator, Draft)],
    ids: &[i64],
    source_id: i64,
    defaults: &ImportDefaults,
    now: Timestamp,
) -> Vec<ObservationRow> {
    // Times as the store keeps them (whole seconds), so that a row is what
    // `Tx::observations_of` would read back after writing it.
    let now = store::stored_time(now);
    items
        .iter()
        .zip(ids)
        .map(|((_, d), &id)| {
            let first_seen = store::stored_time(d.first_seen.unwrap_or(now).min(now));
            // A feed re-listing an indicator is a new sighting now, whatever date it
            // first gave: that is what re-arms the decay.
            let last_seen = now;
            ObservationRow {
                indicator_id: id,
                source_id,
                category: d.category.unwrap_or(defaults.category).as_str().to_owned(),
                confidence: d.confidence.map(Confidence::get),
                tlp: d.tlp.unwrap_or(defaults.tlp).as_str().to_owned(),
                tags: d.tags.clone(),
                first_seen,
                last_seen,
                valid_until: d.valid_until.map(store::stored_time),
                count: 1,
                reference: d.reference.clone(),
            }
        })
        .collect()
}

/// Imports a prepared batch from `source` in one transaction (two when held).
pub fn import(
    store: &mut store::Store,
    job: &ImportJob<'_>,
    batch: Batch,
    cx: &Context<'_>,
    now: Timestamp,
    who: &str,
) -> store::Result<ImportReport> {
    import_as(store, job, batch, cx, now, who, false)
}

/// [`import`] of a full snapshot of `source`: what the source observed before and
/// this batch does not list loses the source's observation, in the same
/// transaction, under the same breaker.
pub fn import_snapshot(
    store: &mut store::Store,
    job: &ImportJob<'_>,
    batch: Batch,
    cx: &Context<'_>,
    now: Timestamp,
    who: &str,
) -> store::Result<ImportReport> {
    import_as(store, job, batch, cx, now, who, true)
}

fn import_as(
    store: &mut store::Store,
    job: &ImportJob<'_>,
    batch: Batch,
    cx: &Context<'_>,
    now: Timestamp,
    who: &str,
    snapshot: bool,
) -> store::Result<ImportReport> {
    let ImportJob {
        source,
        origin,
        defaults,
    } = *job;
    let Batch {
        items,
        revoked,
        mut report,
    } = batch;
    let popular = analysis::popular_names(names(&items).iter(), cx.lists, cx.psl, cx.config);
    // Set inside the transaction; also reported when the breaker holds the batch.
    let mut report_unlisted = 0;
    let result = store.write(|tx| {
        let src = tx.source_upsert(source)?;
        let keys: Vec<_> = items.iter().map(|(i, _)| key(i)).collect();
        let (ids, created) = tx.indicator_ids_created(&keys)?;
        drop(keys);
        let rows = observation_rows(&items, &ids, src.id, defaults, now);
        tx.observations_merge(&rows)?;
        let mut rids = Vec::new();
        if !revoked.is_empty() {
            let rkeys: Vec<_> = revoked.iter().map(key).collect();
            rids = tx.indicator_ids(&rkeys)?;
            tx.observations_delete(src.id, &rids)?;
        }
        let mut unlisted = Vec::new();
        if snapshot {
            unlisted = unlisted_by(tx, src.id, &ids)?;
            tx.observations_delete(src.id, &unlisted)?;
        }
        // An indicator this import created has one observation, the row just
        // written, and no decision: it is decided from that row, unread. (Unless
        // the file also revoked it, which deleted the row again.)
        let revoked_ids: HashSet<i64> = rids.iter().copied().collect();
        let mut fresh = Vec::with_capacity(items.len());
        let mut affected = Vec::with_capacity(ids.len() + rids.len());
        for (((indicator, _), row), new) in items.iter().zip(&rows).zip(created) {
            if new && !revoked_ids.contains(&row.indicator_id) {
                fresh.push(Fresh {
                    id: row.indicator_id,
                    indicator,
                    observation: row,
                    source: &src,
                });
            } else {
                affected.push(row.indicator_id);
            }
        }
        affected.extend(rids);
        let unlisted_count = unlisted.len();
        report_unlisted = unlisted_count;
        affected.extend(unlisted);
        let affected = unique_ids(affected);
        let counts_before = feed_counts(tx)?;
        let batch_id = tx.batch_create(&NewBatch {
            source_id: src.id,
            origin: origin.to_owned(),
            status: BatchStatus::Published,
            created_at: now,
            note: String::new(),
        })?;
        if snapshot {
            tx.batch_mark_snapshot(batch_id)?;
        }
        let applied = recompute_with_fresh(tx, &affected, &fresh, cx, now, Some(batch_id))?;
        let changes: Vec<FeedChange> = applied
            .feeds
            .iter()
            .map(|(feed, (c, _))| FeedChange {
                feed: feed.clone(),
                current: counts_before.get(feed).copied().unwrap_or(0),
                added: c.added.len(),
                removed: c.removed.len(),
            })
            .collect();
        if let Some(trip) = analysis::check_batch(&changes, &popular, cx.config) {
            return Err(StoreError::Aborted(trip.reasons.join("; ")));
        }
        tx.audit(&AuditEntry {
            at: now,
            who: who.to_owned(),
            action: "import".to_owned(),
            target: format!("batch {batch_id}"),
            reason: format!(
                "{origin}: {} indicators from {}{}, {} rules added, {} removed",
                items.len(),
                source.name,
                if snapshot {
                    format!(" (snapshot: {unlisted_count} no longer listed)")
                } else {
                    String::new()
                },
                applied.rules_added(),
                applied.rules_removed()
            ),
        })?;
        Ok((batch_id, applied))
    });
    report.unlisted = report_unlisted;
    match result {
        Ok((batch_id, applied)) => {
            report.batch_id = Some(batch_id);
            report.applied = applied;
            Ok(report)
        }
        Err(StoreError::Aborted(why)) => {
            let batch_id = hold(
                store, source, origin, &items, defaults, now, who, &why, snapshot,
            )?;
            report.batch_id = Some(batch_id);
            report.held = Some(why.split("; ").map(str::to_owned).collect());
            Ok(report)
        }
        Err(e) => Err(e),
    }
}

/// Indicators `source_id` observes that are not among `listed` (a snapshot's ids).
pub(crate) fn unlisted_by(
    tx: &mut dyn Tx,
    source_id: i64,
    listed: &[i64],
) -> store::Result<Vec<i64>> {
    let listed: HashSet<i64> = listed.iter().copied().collect();
    Ok(tx
        .indicators_of_source(source_id)?
        .into_iter()
        .filter(|id| !listed.contains(id))
        .collect())
}

/// Parks a tripped batch's observations for review.
#[allow(clippy::too_many_arguments)]
fn hold(
    store: &mut store::Store,
    source: &NewSource,
    origin: &str,
    items: &[(Indicator, Draft)],
    defaults: &ImportDefaults,
    now: Timestamp,
    who: &str,
    why: &str,
    snapshot: bool,
) -> store::Result<i64> {
    store.write(|tx| {
        let src = tx.source_upsert(source)?;
        let keys: Vec<_> = items.iter().map(|(i, _)| key(i)).collect();
        let ids = tx.indicator_ids(&keys)?;
        let rows = observation_rows(items, &ids, src.id, defaults, now);
        let batch_id = tx.batch_create(&NewBatch {
            source_id: src.id,
            origin: origin.to_owned(),
            status: BatchStatus::Held,
            created_at: now,
            note: why.to_owned(),
        })?;
        tx.held_insert(batch_id, &rows)?;
        if snapshot {
            tx.batch_mark_snapshot(batch_id)?;
        }
        tx.audit(&AuditEntry {
            at: now,
            who: who.to_owned(),
            action: "hold".to_owned(),
            target: format!("batch {batch_id}"),
            reason: why.to_owned(),
        })?;
        Ok(batch_id)
    })
}

fn feed_counts(tx: &mut dyn Tx) -> store::Result<HashMap<String, usize>> {
    Ok(tx
        .feeds()?
        .into_iter()
        .map(|f| (f.name, usize::try_from(f.rules).unwrap_or(usize::MAX)))
        .collect())
}
