//! What `sharedefend check` reports about one input.
//!
//! Normalises every record, counts unique indicators by kind and the rejected ones by
//! reason, so an operator can see at a glance whether a feed is what it claims to be
//! before the hub trusts it.

use std::collections::{BTreeMap, HashSet};

use indicator::{Indicator, Kind, Reject, RejectCode};

use crate::{Format, Location, Parsed, Polarity};

/// Counts for one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub format: Format,
    /// Records the reader produced (before normalisation and de-duplication).
    pub records: usize,
    /// Unique normalised indicators, by kind.
    pub unique: BTreeMap<Kind, usize>,
    /// How many accepted records are allow entries (exceptions, allowlists).
    pub allow: usize,
    /// Records whose value could not be normalised.
    pub rejected: usize,
    /// Rejections by reason code, most frequent first.
    pub reject_reasons: Vec<(RejectCode, usize)>,
    /// The first rejections, with where they were.
    pub first_rejects: Vec<(Location, Reject)>,
    /// Passive DNS records read (COF).
    pub pdns: usize,
}

/// How many rejections are kept with their location.
pub const KEPT_REJECTS: usize = 20;

pub fn summarise(parsed: &Parsed) -> Summary {
    let mut seen: HashSet<Indicator> = HashSet::with_capacity(parsed.records.len());
    let mut unique: BTreeMap<Kind, usize> = Kind::ALL.iter().map(|&k| (k, 0)).collect();
    let mut reasons: BTreeMap<RejectCode, usize> = BTreeMap::new();
    let mut first_rejects = Vec::new();
    let (mut allow, mut rejected) = (0, 0);
    for record in &parsed.records {
        match record.normalise() {
            Ok(indicator) => {
                if record.polarity == Polarity::Allow {
                    allow += 1;
                }
                let kind = indicator.kind();
                if seen.insert(indicator) {
                    *unique.entry(kind).or_default() += 1;
                }
            }
            Err(reject) => {
                rejected += 1;
                *reasons.entry(reject.code).or_default() += 1;
                if first_rejects.len() < KEPT_REJECTS {
                    first_rejects.push((record.at.clone(), reject));
                }
            }
        }
    }
    let mut reject_reasons: Vec<_> = reasons.into_iter().collect();
    reject_reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Summary {
        format: parsed.format,
        records: parsed.records.len(),
        unique,
        allow,
        rejected,
        reject_reasons,
        first_rejects,
        pdns: parsed.pdns.len(),
    }
}

impl Summary {
    pub fn unique_total(&self) -> usize {
        self.unique.values().sum()
    }
}
