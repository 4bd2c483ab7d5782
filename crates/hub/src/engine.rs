//! The hub's engine: evidence in, decisions and journal entries out, in one
//! transaction.
//!
//! Every path that can change what is published — an import, the decay sweep, an
//! allowlist load, a review approval, a delisting — ends in [`recompute`]: re-decide
//! the affected indicators from all their evidence, adjust the reference-counted rules
//! of each feed, and append one journal entry per feed that changed. It runs inside
//! the same store transaction as the data that caused it, so the journal can never
//! disagree with the evidence, and a crash leaves either both or neither.

use std::collections::{BTreeMap, HashMap, HashSet};

use analysis::{Context, Decision, decide};
use indicator::{Indicator, Timestamp};
use store::{DecisionRow, ObservationRow, RuleChanges, RuleDelta, RuleDeltas, SourceRow, Tx};

use crate::evidence::{decision_row, evidence_by_indicator, evidence_of_row, indicator_of};

/// What a recompute changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Per feed: the rules that appeared and disappeared, and the new serial.
    pub feeds: BTreeMap<String, (RuleChanges, u32)>,
    /// Decision states after, counted (`publish`, `url-only`, …).
    pub states: BTreeMap<String, u64>,
    /// Indicators whose state changed to or from `publish`.
    pub newly_published: u64,
    pub withdrawn: u64,
}

impl Applied {
    pub fn rules_added(&self) -> usize {
        self.feeds.values().map(|(c, _)| c.added.len()).sum()
    }
    pub fn rules_removed(&self) -> usize {
        self.feeds.values().map(|(c, _)| c.removed.len()).sum()
    }
}

/// An indicator this transaction has just created (see
/// [`store::Tx::indicator_ids_created`]) with its only observation, as stored
/// (times in whole seconds, see [`store::stored_time`]), and that observation's
/// source.
#[derive(Debug)]
pub struct Fresh<'a> {
    pub id: i64,
    pub indicator: &'a Indicator,
    pub observation: &'a ObservationRow,
    pub source: &'a SourceRow,
}

/// Re-decides `ids` from their stored evidence and publishes the difference.
///
/// `batch_id` is recorded on the journal entries.
pub fn recompute(
    tx: &mut dyn Tx,
    ids: &[i64],
    cx: &Context<'_>,
    now: Timestamp,
    batch_id: Option<i64>,
) -> store::Result<Applied> {
    recompute_with_fresh(tx, ids, &[], cx, now, batch_id)
}

/// [`recompute`] of `ids` and of `fresh` indicators, whose evidence the caller gives
/// rather than the store looking it up: created by this transaction, they have no
/// decision and no observation but the one given. `ids` must not repeat them.
///
/// The outcome is the same as [`recompute`] of all of them; an import of new names
/// (the bulk of a large feed) just saves three lookups per name.
pub fn recompute_with_fresh(
    tx: &mut dyn Tx,
    ids: &[i64],
    fresh: &[Fresh<'_>],
    cx: &Context<'_>,
    now: Timestamp,
    batch_id: Option<i64>,
) -> store::Result<Applied> {
    let mut run = Run {
        applied: Applied::default(),
        new_rows: Vec::with_capacity(ids.len() + fresh.len()),
        changed: Vec::with_capacity(ids.len() + fresh.len()),
        deltas: BTreeMap::new(),
    };
    if ids.is_empty() && fresh.is_empty() {
        return Ok(run.applied);
    }
    if !ids.is_empty() {
        let indicators = tx.indicators_by_id(ids)?;
        let evidence = evidence_by_indicator(&tx.observations_of(ids)?);
        let mut old: HashMap<i64, DecisionRow> = tx
            .decisions_of(ids)?
            .into_iter()
            .map(|d| (d.indicator_id, d))
            .collect();
        let empty = analysis::Evidence::default();
        for row in &indicators {
            let Some(indicator) = indicator_of(&row.value, &row.kind) else {
                continue;
            };
            let evidence = evidence.get(&row.id).unwrap_or(&empty);
            run.decide(row.id, &indicator, evidence, old.remove(&row.id), cx, now);
        }
    }
    for f in fresh {
        let evidence = evidence_of_row(f.observation, f.source);
        run.decide(f.id, f.indicator, &evidence, None, cx, now);
    }
    let Run {
        mut applied,
        new_rows,
        changed,
        mut deltas,
    } = run;
    tx.decisions_put(&new_rows)?;
    // A million names make lists of millions of deltas: sized once, not grown.
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for (row, _) in new_rows.iter().zip(&changed).filter(|(_, c)| **c) {
        for feed in counted_feeds(&row.feeds) {
            *sizes.entry(feed).or_default() += row.rules.len();
        }
    }
    for (feed, n) in sizes {
        if let Some(list) = feed_list(&mut deltas, feed) {
            list.reserve(n);
        }
    }
    // Written: the new rules can now move into the deltas rather than be copied.
    for (row, changed) in new_rows.into_iter().zip(changed) {
        if changed {
            count_rules(&mut deltas, row, 1);
        }
    }
    apply_deltas(tx, deltas, now, batch_id, &mut applied)?;
    Ok(applied)
}

/// Feed → changes of rule reference counts, in any order, a rule possibly repeated.
pub type Deltas = RuleDeltas;

/// The feed of every published rule: the store's union feed, so that a rule is
/// stored once, in its category's feed, and `all` follows (see
/// [`store::Tx::feed_declare_union`]).
pub const ALL_FEED: &str = "all";

/// The state of a recompute while it decides indicator after indicator.
struct Run {
    applied: Applied,
    new_rows: Vec<DecisionRow>,
    /// For each of `new_rows`: whether its rules or state changed, so its rules
    /// count anew.
    changed: Vec<bool>,
    deltas: Deltas,
}

impl Run {
    /// Decides one indicator, given its previous decision, and records the outcome.
    fn decide(
        &mut self,
        id: i64,
        indicator: &Indicator,
        evidence: &analysis::Evidence,
        previous: Option<DecisionRow>,
        cx: &Context<'_>,
        now: Timestamp,
    ) {
        let was_published = previous
            .as_ref()
            .is_some_and(|d| d.state == store::STATE_PUBLISH);
        let decision: Decision = decide(indicator, evidence, cx, was_published, now);
        let new_row = decision_row(id, &decision, now);
        match self.applied.states.get_mut(new_row.state.as_str()) {
            Some(n) => *n += 1,
            None => {
                self.applied.states.insert(new_row.state.clone(), 1);
            }
        }
        let unchanged = previous.as_ref().is_some_and(|p| {
            p.state == new_row.state && p.rules == new_row.rules && p.feeds == new_row.feeds
        });
        if let Some(p) = previous {
            if p.state == store::STATE_PUBLISH && new_row.state != store::STATE_PUBLISH {
                self.applied.withdrawn += 1;
            }
            if !unchanged {
                count_rules(&mut self.deltas, p, -1);
            }
        }
        if new_row.state == store::STATE_PUBLISH && !was_published {
            self.applied.newly_published += 1;
        }
        // Keep the score and reasons fresh even when the outcome did not change.
        self.new_rows.push(new_row);
        self.changed.push(!unchanged);
    }
}

/// Adds `by` to the count of each `(feed, rule)` pair of `row`, moving its rules
/// into the last feed's list: this runs for every indicator of an import. A rule
/// that is in a category feed is in [`ALL_FEED`] through it, the union, and is not
/// counted there again; only a rule in no other feed is counted in `all` itself.
fn count_rules(deltas: &mut Deltas, row: DecisionRow, by: i64) {
    let DecisionRow { rules, feeds, .. } = row;
    if rules.is_empty() {
        return;
    }
    let n = counted_feeds(&feeds).count();
    let mut rules = Some(rules);
    for (i, feed) in counted_feeds(&feeds).enumerate() {
        let Some(list) = feed_list(deltas, feed) else {
            continue;
        };
        if i + 1 < n {
            list.extend(rules.iter().flatten().map(|rule| RuleDelta {
                rule: rule.clone(),
                delta: by,
            }));
        } else if let Some(rules) = rules.take() {
            list.extend(rules.into_iter().map(|rule| RuleDelta { rule, delta: by }));
        }
    }
}

/// The feeds whose own reference counts a decision's rules count in: every feed it
/// names but [`ALL_FEED`], which has them through the others, unless it is the only
/// one.
fn counted_feeds(feeds: &[String]) -> impl Iterator<Item = &str> {
    let only_all = feeds.iter().all(|f| f == ALL_FEED);
    feeds
        .iter()
        .map(String::as_str)
        .filter(move |f| only_all || *f != ALL_FEED)
}

/// `feed`'s list in `deltas` (always there), allocating its name only the first time.
fn feed_list<'d>(deltas: &'d mut Deltas, feed: &str) -> Option<&'d mut Vec<RuleDelta>> {
    if !deltas.contains_key(feed) {
        deltas.insert(feed.to_owned(), Vec::new());
    }
    deltas.get_mut(feed)
}

/// Adjusts feed rules by `deltas` and journals each feed that changed, the union
/// feed [`ALL_FEED`] included.
pub fn apply_deltas(
    tx: &mut dyn Tx,
    mut deltas: Deltas,
    now: Timestamp,
    batch_id: Option<i64>,
    applied: &mut Applied,
) -> store::Result<()> {
    for list in deltas.values_mut() {
        // Sorted, then each rule's changes summed: one delta per rule, none zero.
        // (Equal rules are summed, so their order does not matter: unstable is fine.)
        list.sort_unstable_by(|a, b| a.rule.cmp(&b.rule));
        list.dedup_by(|next, kept| {
            let same = next.rule == kept.rule;
            if same {
                kept.delta += next.delta;
            }
            same
        });
        list.retain(|d| d.delta != 0);
    }
    deltas.retain(|_, list| !list.is_empty());
    if deltas.is_empty() {
        return Ok(());
    }
    tx.feed_declare_union(ALL_FEED)?;
    for (feed, changes) in tx.rules_adjust(&deltas)? {
        if changes.is_empty() {
            continue;
        }
        let serial = tx.journal_append(&feed, &changes, now, batch_id)?;
        applied.feeds.insert(feed, (changes, serial));
    }
    Ok(())
}

/// Indicator ids in `rows`, de-duplicated, in first-seen order.
pub fn unique_ids(ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}
