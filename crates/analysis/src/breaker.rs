//! Guard rail (d): the circuit breaker over a whole import.
//!
//! A feed that suddenly doubles, empties itself, or starts naming the world's most
//! popular sites is broken or poisoned, and publishing it would hurt millions at once.
//! Such a batch is held for review as a whole instead of published, and an operator
//! approves or rejects it.

use indicator::{Domain, SuffixList};

use crate::lists::Hit;
use crate::{Config, Lists};

/// How one feed's rule set would change if the batch were published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedChange {
    pub feed: String,
    /// Rules the feed has now.
    pub current: usize,
    pub added: usize,
    pub removed: usize,
}

/// Why a batch was held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    pub reasons: Vec<String>,
}

/// The names of a batch that are in the popularity top `config.popular_top`
/// (the name or its registrable domain).
pub fn popular_names<'a>(
    names: impl IntoIterator<Item = &'a Domain>,
    lists: &Lists,
    psl: &SuffixList,
    config: &Config,
) -> Vec<(Domain, Hit)> {
    names
        .into_iter()
        .filter_map(|n| {
            lists
                .popularity(n, psl)
                .filter(|h| h.rank.is_some_and(|r| r <= config.popular_top))
                .map(|h| (n.clone(), h))
        })
        .collect()
}

/// Checks a batch; `Some` means hold it.
pub fn check(changes: &[FeedChange], popular: &[(Domain, Hit)], config: &Config) -> Option<Trip> {
    let mut reasons = Vec::new();
    for c in changes {
        if c.current < config.breaker_min_rules {
            continue;
        }
        let current = c.current as f64;
        if c.added as f64 > config.breaker_add_ratio * current {
            reasons.push(format!(
                "feed {}: would add {} rules to {} (more than {:.0}%)",
                c.feed,
                c.added,
                c.current,
                config.breaker_add_ratio * 100.0
            ));
        }
        if c.removed as f64 > config.breaker_remove_ratio * current {
            reasons.push(format!(
                "feed {}: would remove {} of {} rules (more than {:.0}%)",
                c.feed,
                c.removed,
                c.current,
                config.breaker_remove_ratio * 100.0
            ));
        }
    }
    if !popular.is_empty() {
        let examples: Vec<String> = popular
            .iter()
            .take(5)
            .map(|(d, h)| format!("{d} ({h})"))
            .collect();
        reasons.push(format!(
            "names {} popular site(s) from the top {}: {}",
            popular.len(),
            config.popular_top,
            examples.join(", ")
        ));
    }
    (!reasons.is_empty()).then_some(Trip { reasons })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(current: usize, added: usize, removed: usize) -> FeedChange {
        FeedChange {
            feed: "phishing".into(),
            current,
            added,
            removed,
        }
    }

    #[test]
    fn ratios() {
        let c = Config::default();
        assert_eq!(check(&[change(1000, 200, 100)], &[], &c), None);
        assert!(check(&[change(1000, 201, 0)], &[], &c).is_some());
        assert!(check(&[change(1000, 0, 101)], &[], &c).is_some());
        // A young feed grows freely.
        assert_eq!(check(&[change(10, 5000, 0)], &[], &c), None);
    }
}
