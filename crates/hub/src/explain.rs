//! `explain`: everything the hub knows about a name, and why it is (not) blocked.
//!
//! An analyst answering "why is my site blocked?" at 3 a.m. needs the whole story in
//! one place: the decision and its score breakdown, every observation with its source
//! and time, the guard rails that fired, the rules and feeds the name is in with the
//! serial that published them, the rules that catch it from above (a wildcard on its
//! parent), other indicators on the same host, and the audit trail.

use analysis::{Score, decide};
use indicator::{Hint, Indicator, Timestamp};
use store::{AuditEntry, DecisionRow, IndicatorRow};

use crate::Hub;
use crate::evidence::{evidence_by_indicator, indicator_of};

#[derive(Debug, Clone)]
pub struct ObservationView {
    pub source: String,
    pub trust: f64,
    pub group: Option<String>,
    pub category: String,
    pub confidence: Option<u8>,
    pub tlp: String,
    pub tags: Vec<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub valid_until: Option<Timestamp>,
    pub count: u32,
    pub reference: Option<String>,
}

/// A rule in a feed, with the serial that published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleView {
    pub feed: String,
    pub trigger: String,
    pub action: String,
    pub serial: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Explanation {
    /// The query as normalised.
    pub query: String,
    pub indicator: Option<IndicatorRow>,
    pub decision: Option<DecisionRow>,
    /// The score as of now, with its breakdown by independence group.
    pub score: Option<Score>,
    pub observations: Vec<ObservationView>,
    /// Rules this indicator put in feeds.
    pub rules: Vec<RuleView>,
    /// Published rules that catch the name (its own, or a wildcard above it).
    pub matched_by: Vec<RuleView>,
    /// Allowlist entry protecting the name, if any.
    pub protected_by: Option<String>,
    /// Other indicators on the same host, with their states.
    pub related: Vec<(String, String)>,
    pub audit: Vec<AuditEntry>,
}

impl Hub {
    /// Explains `text` (a name, URL or address, defanged or not).
    pub fn explain(&mut self, text: &str, now: Timestamp) -> store::Result<Explanation> {
        let parsed = Indicator::parse(text, Hint::Any).ok();
        let query = parsed
            .as_ref()
            .map_or_else(|| text.trim().to_owned(), ToString::to_string);
        let name = match &parsed {
            Some(Indicator::Domain(d) | Indicator::Wildcard(d)) => Some(d.clone()),
            Some(Indicator::Url(u)) => u.domain().cloned(),
            _ => None,
        };
        let protected_by = name
            .as_ref()
            .and_then(|d| self.lists().protecting(d, &self.psl).map(|h| h.to_string()));
        let (psl, lists, config) = (&self.psl, &self.lists, &self.config);
        self.store.read(|tx| {
            let indicator = tx.indicator_by_value(&query)?;
            let mut observations = Vec::new();
            let mut decision = None;
            let mut score = None;
            let mut rules = Vec::new();
            if let Some(row) = &indicator {
                let obs = tx.observations_of(&[row.id])?;
                if let Some(i) = indicator_of(&row.value, &row.kind) {
                    let evidence = evidence_by_indicator(&obs)
                        .remove(&row.id)
                        .unwrap_or_default();
                    let cx = analysis::Context { psl, lists, config };
                    score = Some(decide(&i, &evidence, &cx, false, now).score);
                }
                observations = obs
                    .into_iter()
                    .map(|o| ObservationView {
                        source: o.source,
                        trust: o.trust,
                        group: o.group,
                        category: o.observation.category,
                        confidence: o.observation.confidence,
                        tlp: o.observation.tlp,
                        tags: o.observation.tags,
                        first_seen: o.observation.first_seen,
                        last_seen: o.observation.last_seen,
                        valid_until: o.observation.valid_until,
                        count: o.observation.count,
                        reference: o.observation.reference,
                    })
                    .collect();
                decision = tx.decisions_of(&[row.id])?.into_iter().next();
                if let Some(d) = &decision {
                    for feed in &d.feeds {
                        for r in &d.rules {
                            let serial = tx
                                .rule_serials(feed, &r.trigger)?
                                .into_iter()
                                .find(|(action, _)| *action == r.action)
                                .map(|(_, serial)| serial);
                            rules.push(RuleView {
                                feed: feed.clone(),
                                trigger: r.trigger.clone(),
                                action: r.action.clone(),
                                serial,
                            });
                        }
                    }
                }
            }
            let mut matched_by = Vec::new();
            let mut related = Vec::new();
            if let Some(d) = &name {
                let feeds = tx.feeds()?;
                let mut triggers = vec![d.to_string()];
                triggers.extend(d.suffixes().skip(1).map(|a| format!("*.{a}")));
                // The exact name's own wildcard does not catch it, but `*.name`
                // matters to someone asking about the name: show what blocks below.
                for feed in &feeds {
                    for t in &triggers {
                        for (action, serial) in tx.rule_serials(&feed.name, t)? {
                            matched_by.push(RuleView {
                                feed: feed.name.clone(),
                                trigger: t.clone(),
                                action,
                                serial: Some(serial),
                            });
                        }
                    }
                }
                let others = tx.indicators_by_host(d.as_str())?;
                let ids: Vec<i64> = others.iter().map(|i| i.id).collect();
                let states: std::collections::HashMap<i64, String> = tx
                    .decisions_of(&ids)?
                    .into_iter()
                    .map(|d| (d.indicator_id, d.state))
                    .collect();
                for o in others {
                    if Some(o.id) != indicator.as_ref().map(|i| i.id) {
                        let state = states.get(&o.id).cloned().unwrap_or_default();
                        related.push((o.value, state));
                    }
                }
                related.sort();
            }
            let audit = tx.audit_for(&query)?;
            Ok(Explanation {
                query,
                indicator,
                decision,
                score,
                observations,
                rules,
                matched_by,
                protected_by,
                related,
                audit,
            })
        })
    }
}
