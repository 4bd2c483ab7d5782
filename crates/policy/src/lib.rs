//! The DNS policy model: what a published rule is.
//!
//! The hub decides; resolvers enforce. Between them sits the rule: a trigger (which
//! query names it catches) and an action (what the resolver answers). This crate is the
//! one definition both sides share — analysis produces rules, the store keeps them,
//! publication writes them as RPZ, the filter matches them. It is RPZ's model
//! (draft-ietf-dnsop-dns-rpz): QNAME triggers exact or wildcard, and the RPZ actions.
//!
//! It also holds what a filter needs to enforce rules: [`Response`] and
//! [`ZoneTrigger`] (every RPZ action and trigger a filter applies), the matcher
//! ([`RuleSet`]: one zone's rules, compact, immutable, updated by IXFR-style
//! [`Delta`]s), [`Policy`] (zones in order with BIND's precedence, per-zone
//! overrides and log-only zones, a local allowlist above them), [`LivePolicy`]
//! (lock-free reads, atomic swaps), and the conversion from a parsed RPZ zone
//! ([`rpz::load_rpz`]). No I/O.

mod ip;
mod live;
mod name;
mod response;
mod ruleset;
mod zones;

pub mod rpz;

use std::fmt;

use indicator::Domain;

pub use live::{LivePolicy, UpdateError};
pub use name::{MAX_LABELS, MAX_TEXT_LEN, NameError, QueryName};
pub use response::{LocalRecord, Redirect, Response, ZoneTrigger};
pub use ruleset::{AddressMatch, Delta, DeltaError, NameMatch, RuleSet, RuleSetBuilder};
pub use zones::{Hit, MAX_ZONES, Matched, Policy, PolicyError, Verdict, Zone, ZoneOptions};

/// Which query names a rule catches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Trigger {
    /// Exactly this name.
    Exact(Domain),
    /// Every name strictly below this one (`*.name` in RPZ; not the name itself).
    Wildcard(Domain),
}

impl Trigger {
    pub fn domain(&self) -> &Domain {
        match self {
            Trigger::Exact(d) | Trigger::Wildcard(d) => d,
        }
    }

    /// True when a query for `qname` is caught by this trigger.
    pub fn matches(&self, qname: &Domain) -> bool {
        match self {
            Trigger::Exact(d) => d == qname,
            Trigger::Wildcard(d) => qname != d && qname.is_within(d),
        }
    }

    /// The owner name relative to a policy zone: `name` or `*.name`.
    pub fn owner(&self) -> String {
        match self {
            Trigger::Exact(d) => d.to_string(),
            Trigger::Wildcard(d) => format!("*.{d}"),
        }
    }

    /// Parses `name` or `*.name`.
    pub fn parse(text: &str) -> Result<Trigger, indicator::DomainError> {
        match text.strip_prefix("*.") {
            Some(rest) => Domain::parse(rest).map(Trigger::Wildcard),
            None => Domain::parse(text).map(Trigger::Exact),
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.owner())
    }
}

/// What the resolver answers when a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Action {
    /// The name does not exist (`CNAME .`). The hub's default: browsers show an error
    /// and nothing loads.
    #[default]
    Nxdomain,
    /// The name exists but has no data of the type asked (`CNAME *.`).
    Nodata,
    /// Explicitly not blocked (`CNAME rpz-passthru.`): an exception in a later zone.
    Passthru,
    /// No answer at all (`CNAME rpz-drop.`).
    Drop,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Nxdomain => "nxdomain",
            Action::Nodata => "nodata",
            Action::Passthru => "passthru",
            Action::Drop => "drop",
        }
    }

    /// The CNAME target that encodes the action in an RPZ zone.
    pub fn rpz_target(self) -> &'static str {
        match self {
            Action::Nxdomain => ".",
            Action::Nodata => "*.",
            Action::Passthru => "rpz-passthru.",
            Action::Drop => "rpz-drop.",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        [
            Action::Nxdomain,
            Action::Nodata,
            Action::Passthru,
            Action::Drop,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A published DNS policy entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub trigger: Trigger,
    pub action: Action,
}

impl Rule {
    pub fn block(trigger: Trigger) -> Rule {
        Rule {
            trigger,
            action: Action::Nxdomain,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.trigger, self.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Domain {
        Domain::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn wildcard_excludes_apex() {
        let w = Trigger::Wildcard(d("evil.example"));
        assert!(w.matches(&d("a.evil.example")));
        assert!(w.matches(&d("b.a.evil.example")));
        assert!(!w.matches(&d("evil.example")));
        assert!(!w.matches(&d("notevil.example")));
        let e = Trigger::Exact(d("evil.example"));
        assert!(e.matches(&d("evil.example")));
        assert!(!e.matches(&d("a.evil.example")));
    }

    #[test]
    fn owners_round_trip() {
        for t in ["evil.example", "*.evil.example"] {
            let trig = Trigger::parse(t).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(trig.owner(), t);
        }
        for a in [
            Action::Nxdomain,
            Action::Nodata,
            Action::Passthru,
            Action::Drop,
        ] {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
    }
}
