//! Several policy zones in order, and the local allowlist above them: which rule, if
//! any, rewrites a response.
//!
//! The precedence is BIND's (ARM, "Response Policy Zone (RPZ) Rewriting"): the first
//! zone in the configured order that matches wins; within a zone CLIENT-IP beats
//! QNAME beats IP (NSDNAME and NSIP are not applied); among IP triggers the longest
//! prefix wins, then the smallest address. A zone may override its rules' responses
//! (`policy given|nxdomain|nodata|passthru|drop|tcp-only|cname …`) or run log-only
//! (BIND's `disabled`): its matches are reported and the next zones decide. The
//! local allowlist is a zone before all others whose every rule answers PASSTHRU: a
//! name or address on it is never rewritten.
//!
//! Evaluation comes in two steps because IP triggers need the answer: `check_query`
//! before resolution (allowlist, client address, query name), `check_answer` after
//! (answer addresses, only in zones before the one that already matched).
//! `needs_answer` tells the filter whether resolving first can change the outcome.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use indicator::IpNet;

use crate::{AddressMatch, QueryName, Response, RuleSet};

/// BIND's limit, and the width of [`Verdict::logged`].
pub const MAX_ZONES: usize = 64;

static PASSTHRU: Response = Response::Passthru;

/// How a zone's matches are used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneOptions {
    /// Replaces every rule's response (`None`: the zone's own, BIND's `given`).
    pub policy: Option<Response>,
    /// Matches are reported, never applied (BIND's `disabled`; a shadow zone).
    pub log_only: bool,
}

/// One policy zone of a [`Policy`].
#[derive(Debug, Clone)]
pub struct Zone {
    /// The zone's name, for logs and counters (`phishing.rpz.sharedefend`).
    pub name: Arc<str>,
    pub options: ZoneOptions,
    pub rules: Arc<RuleSet>,
}

impl Zone {
    pub fn new(name: &str, options: ZoneOptions, rules: RuleSet) -> Zone {
        Zone {
            name: name.into(),
            options,
            rules: Arc::new(rules),
        }
    }
}

/// Why a policy cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{0} policy zones: at most 64")]
    TooManyZones(usize),
    #[error("no policy zone number {0}")]
    NoSuchZone(usize),
}

/// The ordered zones and the allowlist: an immutable snapshot.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    zones: Vec<Zone>,
    allowlist: Arc<RuleSet>,
}

/// What matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched<'a> {
    Qname {
        /// The trigger's name, without `*.`.
        name: &'a str,
        wildcard: bool,
    },
    ClientIp(IpNet),
    ResponseIp {
        net: IpNet,
        /// The answer's address that the prefix holds.
        address: IpAddr,
    },
}

/// A rule that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    /// Index of the zone in the policy; `None` for the local allowlist.
    pub zone: Option<usize>,
    pub trigger: Matched<'a>,
    /// The rule's own response.
    pub rule_response: &'a Response,
    /// What to do: the zone's override if it has one, else the rule's response.
    pub response: &'a Response,
}

/// The outcome of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdict<'a> {
    /// The rule that decides; `None`: answer as resolved.
    pub hit: Option<Hit<'a>>,
    /// Bit `i`: log-only zone `i` matched before the deciding zone.
    pub logged: u64,
}

impl<'a> Verdict<'a> {
    /// True when the response is to be rewritten (a hit that is not PASSTHRU).
    pub fn rewrites(&self) -> bool {
        self.hit.is_some_and(|h| !h.response.is_passthru())
    }
}

/// One slot of the evaluation order: the allowlist, then the zones.
struct Slot<'a> {
    zone: Option<usize>,
    rules: &'a RuleSet,
    policy: Option<&'a Response>,
    log_only: bool,
}

impl Policy {
    pub fn new(zones: Vec<Zone>, allowlist: RuleSet) -> Result<Policy, PolicyError> {
        if zones.len() > MAX_ZONES {
            return Err(PolicyError::TooManyZones(zones.len()));
        }
        Ok(Policy {
            zones,
            allowlist: Arc::new(allowlist),
        })
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    pub fn allowlist(&self) -> &RuleSet {
        &self.allowlist
    }

    /// A copy with zone `index`'s rules replaced (the copy shares everything else).
    pub fn with_zone_rules(&self, index: usize, rules: RuleSet) -> Result<Policy, PolicyError> {
        let mut next = self.clone();
        let zone = next
            .zones
            .get_mut(index)
            .ok_or(PolicyError::NoSuchZone(index))?;
        zone.rules = Arc::new(rules);
        Ok(next)
    }

    /// A copy with another allowlist.
    pub fn with_allowlist(&self, allowlist: RuleSet) -> Policy {
        Policy {
            zones: self.zones.clone(),
            allowlist: Arc::new(allowlist),
        }
    }

    fn slots(&self) -> impl Iterator<Item = Slot<'_>> {
        let allow = Slot {
            zone: None,
            rules: &self.allowlist,
            policy: Some(&PASSTHRU),
            log_only: false,
        };
        let zones = self.zones.iter().enumerate().map(|(i, z)| Slot {
            zone: Some(i),
            rules: &z.rules,
            policy: z.options.policy.as_ref(),
            log_only: z.options.log_only,
        });
        std::iter::once(allow).chain(zones)
    }

    /// Before resolution: the allowlist, then each zone's CLIENT-IP and QNAME rules.
    /// `client` is `None` when the filter does not evaluate client addresses.
    pub fn check_query(&self, client: Option<IpAddr>, qname: &QueryName) -> Verdict<'_> {
        let mut logged = 0u64;
        for slot in self.slots() {
            let found = client
                .and_then(|c| slot.rules.lookup_client_ip(c))
                .map(|m| (Matched::ClientIp(m.net), m.response))
                .or_else(|| {
                    slot.rules.lookup_qname(qname).map(|m| {
                        let trigger = Matched::Qname {
                            name: m.name,
                            wildcard: m.wildcard,
                        };
                        (trigger, m.response)
                    })
                });
            if let Some((trigger, rule_response)) = found
                && let Some(hit) = decide(&slot, trigger, rule_response, &mut logged)
            {
                return Verdict {
                    hit: Some(hit),
                    logged,
                };
            }
        }
        Verdict { hit: None, logged }
    }

    /// True when some zone before the one that decided `verdict` has RPZ-IP rules:
    /// the answer must be resolved and checked before the verdict is final (BIND's
    /// `qname-wait-recurse yes`).
    pub fn needs_answer(&self, verdict: &Verdict<'_>) -> bool {
        let limit = match verdict.hit.map(|h| h.zone) {
            Some(None) => return false,
            Some(Some(i)) => i,
            None => self.zones.len(),
        };
        self.allowlist.has_response_ip_rules()
            || self
                .zones
                .iter()
                .take(limit)
                .any(|z| z.rules.has_response_ip_rules())
    }

    /// After resolution: the RPZ-IP rules of the zones before the one that decided
    /// `before`, over every address in the answer. Returns the final verdict.
    pub fn check_answer<'a>(&'a self, before: Verdict<'a>, answer: &[IpAddr]) -> Verdict<'a> {
        let limit = match before.hit.map(|h| h.zone) {
            Some(None) => return before,
            Some(Some(i)) => i,
            None => self.zones.len(),
        };
        let mut logged = before.logged;
        for slot in self.slots() {
            if slot.zone.is_some_and(|i| i >= limit) {
                break;
            }
            let best = Policy::best_response_ip(slot.rules, answer);
            if let Some((address, m)) = best {
                let trigger = Matched::ResponseIp {
                    net: m.net,
                    address,
                };
                if let Some(hit) = decide(&slot, trigger, m.response, &mut logged) {
                    return Verdict {
                        hit: Some(hit),
                        logged,
                    };
                }
            }
        }
        Verdict {
            hit: before.hit,
            logged,
        }
    }
}

impl Policy {
    /// The RPZ-IP rule of one zone that an answer's addresses trigger: the longest
    /// prefix first; on a tie the smallest address (BIND compares IPv4 as
    /// IPv4-mapped IPv6, so a /24 counts as a /120).
    pub fn best_response_ip<'r>(
        rules: &'r RuleSet,
        answer: &[IpAddr],
    ) -> Option<(IpAddr, AddressMatch<'r>)> {
        answer
            .iter()
            .filter_map(|&a| rules.lookup_response_ip(a).map(|m| (a, m)))
            .max_by(|(a, x), (b, y)| {
                let key = |addr: IpAddr, net: IpNet| {
                    let len = match addr {
                        IpAddr::V4(_) => u16::from(net.prefix_len()) + 96,
                        IpAddr::V6(_) => u16::from(net.prefix_len()),
                    };
                    (len, std::cmp::Reverse(mapped(addr)))
                };
                key(*a, x.net).cmp(&key(*b, y.net))
            })
    }
}

fn mapped(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// A match in `slot`: the hit, or `None` (and a log bit) when the zone is log-only.
fn decide<'a>(
    slot: &Slot<'a>,
    trigger: Matched<'a>,
    rule_response: &'a Response,
    logged: &mut u64,
) -> Option<Hit<'a>> {
    if slot.log_only {
        if let Some(i) = slot.zone {
            *logged |= 1u64 << (i % MAX_ZONES);
        }
        return None;
    }
    Some(Hit {
        zone: slot.zone,
        trigger,
        rule_response,
        response: slot.policy.unwrap_or(rule_response),
    })
}
