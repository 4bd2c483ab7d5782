//! From evidence to a decision, through the guard rails, in a fixed order.
//!
//! (a) never a public suffix (ICANN or PRIVATE section); (b) never an allowlisted,
//! protected or popular name; then the score must clear the threshold; then
//! (c) blast radius: the whole registrable domain (exact + wildcard) only when the
//! report is about the registered domain itself; the exact host when it is about a
//! host; a URL on shared infrastructure (shortener, link-in-bio, dynamic DNS, free
//! hosting, a private-suffix tenant, a popular or compromised site) stays URL-only.
//! The batch-level circuit breaker (d) is in `breaker`. Every outcome carries its
//! reasons, which `explain` shows.

use std::fmt;

use indicator::{Domain, Host, Indicator, SuffixList};
use jiff::Timestamp;
use policy::{Rule, Trigger};

use crate::lists::{Role, is_private_tenant};
use crate::score::{Score, Sighting, score};
use crate::{Config, Lists};

/// Everything known about one indicator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub sightings: Vec<Sighting>,
    /// A source or reviewer marked the host as a compromised legitimate site.
    pub compromised: bool,
}

/// What analysis concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Publish these DNS rules.
    Publish(Vec<Rule>),
    /// Keep for URL-capable exports; never a DNS rule.
    UrlOnly,
    /// Keep for address-capable exports; not a query-name rule.
    AddressOnly,
    /// Held for review with its batch (circuit breaker).
    Hold,
    /// Not published.
    Ignore,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Publish(_) => "publish",
            Outcome::UrlOnly => "url-only",
            Outcome::AddressOnly => "address-only",
            Outcome::Hold => "hold",
            Outcome::Ignore => "ignore",
        }
    }

    pub fn rules(&self) -> &[Rule] {
        match self {
            Outcome::Publish(r) => r,
            _ => &[],
        }
    }
}

/// Stable reason codes (shown by `explain`, counted in metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    PublicSuffix,
    Allowlisted,
    Protected,
    Popular,
    SharedInfrastructure,
    PrivateSuffixTenant,
    Compromised,
    IpHost,
    BelowThreshold,
    Expired,
    Score,
    WholeDomain,
    ExactHost,
    HostOfUrl,
    WildcardNarrowed,
    Address,
    Held,
}

impl ReasonCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::PublicSuffix => "public-suffix",
            ReasonCode::Allowlisted => "allowlisted",
            ReasonCode::Protected => "protected",
            ReasonCode::Popular => "popular",
            ReasonCode::SharedInfrastructure => "shared-infrastructure",
            ReasonCode::PrivateSuffixTenant => "private-suffix-tenant",
            ReasonCode::Compromised => "compromised",
            ReasonCode::IpHost => "ip-host",
            ReasonCode::BelowThreshold => "below-threshold",
            ReasonCode::Expired => "expired",
            ReasonCode::Score => "score",
            ReasonCode::WholeDomain => "whole-domain",
            ReasonCode::ExactHost => "exact-host",
            ReasonCode::HostOfUrl => "host-of-url",
            ReasonCode::WildcardNarrowed => "wildcard-narrowed",
            ReasonCode::Address => "address",
            ReasonCode::Held => "held",
        }
    }
}

/// One reason, with the specifics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: ReasonCode,
    pub detail: String,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

fn reason(code: ReasonCode, detail: impl Into<String>) -> Reason {
    Reason {
        code,
        detail: detail.into(),
    }
}

/// The decision for one indicator.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub outcome: Outcome,
    pub score: Score,
    pub reasons: Vec<Reason>,
}

/// What analysis reads besides the evidence.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub psl: &'a SuffixList,
    pub lists: &'a Lists,
    pub config: &'a Config,
}

/// Guard rails (a) and (b) for a name that would become a DNS rule.
fn name_guard(name: &Domain, cx: &Context<'_>) -> Option<Reason> {
    if cx.psl.is_public_suffix(name) {
        let (_, section) = cx.psl.suffix_of(name);
        return Some(reason(
            ReasonCode::PublicSuffix,
            format!(
                "{name} is a public suffix ({section:?} section): blocking it would block every site registered under it"
            ),
        ));
    }
    cx.lists.protecting(name, cx.psl).map(|hit| {
        let code = match hit.role {
            Role::Allow => ReasonCode::Allowlisted,
            Role::Protected => ReasonCode::Protected,
            Role::Popular => ReasonCode::Popular,
            Role::Shared => ReasonCode::SharedInfrastructure,
        };
        reason(code, format!("{name} is on the {hit}"))
    })
}

/// Decides for one indicator. `was_published` selects the withdraw threshold
/// (hysteresis) instead of the publish threshold.
pub fn decide(
    indicator: &Indicator,
    evidence: &Evidence,
    cx: &Context<'_>,
    was_published: bool,
    now: Timestamp,
) -> Decision {
    let score = score(&evidence.sightings, now, cx.config);
    let mut reasons = Vec::new();
    let outcome = decide_outcome(indicator, evidence, &score, cx, was_published, &mut reasons);
    Decision {
        outcome,
        score,
        reasons,
    }
}

fn decide_outcome(
    indicator: &Indicator,
    evidence: &Evidence,
    score: &Score,
    cx: &Context<'_>,
    was_published: bool,
    reasons: &mut Vec<Reason>,
) -> Outcome {
    let threshold = if was_published {
        cx.config.withdraw_threshold
    } else {
        cx.config.publish_threshold
    };
    // Returns false (and says why) when `value` does not clear the threshold.
    let clears = |value: f64, reasons: &mut Vec<Reason>| -> bool {
        if value >= threshold {
            reasons.push(reason(
                ReasonCode::Score,
                format!(
                    "score {value:.2} ≥ {threshold:.2} (base {:.2} × decay {:.2})",
                    score.base, score.decay
                ),
            ));
            return true;
        }
        if score.base > 0.0 && score.decay == 0.0
            || score.expired_sightings > 0 && score.base == 0.0
        {
            reasons.push(reason(
                ReasonCode::Expired,
                format!("evidence expired ({} since last seen)", fmt_age(score)),
            ));
        } else {
            reasons.push(reason(
                ReasonCode::BelowThreshold,
                format!("score {value:.2} < {threshold:.2}"),
            ));
        }
        false
    };
    match indicator {
        Indicator::Domain(d) => {
            if let Some(r) = name_guard(d, cx) {
                reasons.push(r);
                return Outcome::Ignore;
            }
            if !clears(score.value, reasons) {
                return Outcome::Ignore;
            }
            Outcome::Publish(domain_rules(d, cx, reasons))
        }
        Indicator::Wildcard(d) => {
            if let Some(r) = name_guard(d, cx) {
                reasons.push(r);
                return Outcome::Ignore;
            }
            if let Some(hit) = cx.lists.shared(d) {
                reasons.push(reason(
                    ReasonCode::SharedInfrastructure,
                    format!("*.{d} would block every tenant of the shared service on the {hit}"),
                ));
                return Outcome::Ignore;
            }
            if let Some(hit) = cx.lists.protected_below(d, cx.psl) {
                reasons.push(reason(
                    ReasonCode::WildcardNarrowed,
                    format!("*.{d} would block {}, which is on the {hit}", hit.entry),
                ));
                return Outcome::Ignore;
            }
            if !clears(score.value, reasons) {
                return Outcome::Ignore;
            }
            Outcome::Publish(vec![Rule::block(Trigger::Wildcard(d.clone()))])
        }
        Indicator::Url(u) => {
            let host = match u.host() {
                Host::Ip(ip) => {
                    reasons.push(reason(
                        ReasonCode::IpHost,
                        format!("host is the address {ip}: no name to block"),
                    ));
                    return if clears(score.value, reasons) {
                        Outcome::UrlOnly
                    } else {
                        Outcome::Ignore
                    };
                }
                Host::Domain(h) => h,
            };
            let shared = name_guard(host, cx)
                .or_else(|| {
                    cx.lists.shared(host).map(|hit| {
                        reason(ReasonCode::SharedInfrastructure, format!("{host} is shared infrastructure: {hit}"))
                    })
                })
                .or_else(|| {
                    is_private_tenant(host, cx.psl).then(|| {
                        let (suffix, _) = cx.psl.suffix_of(host);
                        reason(
                            ReasonCode::PrivateSuffixTenant,
                            format!("{host} is a tenant of {suffix} (private suffix): the URL is blocked, not the host"),
                        )
                    })
                })
                .or_else(|| {
                    cx.lists
                        .popularity(host, cx.psl)
                        .filter(|hit| hit.rank.is_some_and(|r| r <= cx.config.popular_top))
                        .map(|hit| reason(ReasonCode::Popular, format!("{host} is popular: {hit}")))
                })
                .or_else(|| {
                    evidence.compromised.then(|| {
                        reason(ReasonCode::Compromised, format!("{host} is a compromised legitimate site"))
                    })
                });
            if let Some(r) = shared {
                reasons.push(r);
                return if clears(score.value, reasons) {
                    Outcome::UrlOnly
                } else {
                    Outcome::Ignore
                };
            }
            let weight = if u.is_host_only() {
                1.0
            } else {
                cx.config.url_host_weight
            };
            if !clears(score.value * weight, reasons) {
                return Outcome::Ignore;
            }
            reasons.push(reason(
                ReasonCode::HostOfUrl,
                format!(
                    "the reported URL's host {host} is blocked exactly (not its parent domain)"
                ),
            ));
            Outcome::Publish(vec![Rule::block(Trigger::Exact(host.clone()))])
        }
        Indicator::Ip(ip) => {
            if let Some(hit) = cx.lists.protecting_ip(*ip) {
                reasons.push(reason(
                    ReasonCode::Allowlisted,
                    format!("{ip} is on the {hit}"),
                ));
                return Outcome::Ignore;
            }
            reasons.push(reason(
                ReasonCode::Address,
                "an address: kept for address-capable exports",
            ));
            if clears(score.value, reasons) {
                Outcome::AddressOnly
            } else {
                Outcome::Ignore
            }
        }
        Indicator::Cidr(net) => {
            if let Some(hit) = cx.lists.protecting_ip(net.network()) {
                reasons.push(reason(
                    ReasonCode::Allowlisted,
                    format!("{net} is on the {hit}"),
                ));
                return Outcome::Ignore;
            }
            reasons.push(reason(
                ReasonCode::Address,
                "a prefix: kept for address-capable exports",
            ));
            if clears(score.value, reasons) {
                Outcome::AddressOnly
            } else {
                Outcome::Ignore
            }
        }
    }
}

/// Blast radius (c) for a name reported as malicious.
fn domain_rules(d: &Domain, cx: &Context<'_>, reasons: &mut Vec<Reason>) -> Vec<Rule> {
    let exact = Rule::block(Trigger::Exact(d.clone()));
    if let Some(hit) = cx.lists.shared(d) {
        reasons.push(reason(
            ReasonCode::SharedInfrastructure,
            format!("{d} is a tenant of a shared service ({hit}): the exact host only"),
        ));
        return vec![exact];
    }
    if is_private_tenant(d, cx.psl) {
        let (suffix, _) = cx.psl.suffix_of(d);
        reasons.push(reason(
            ReasonCode::PrivateSuffixTenant,
            format!("{d} is a tenant of {suffix} (private suffix): the exact host only"),
        ));
        return vec![exact];
    }
    let registrable = cx.psl.registrable_domain(d);
    if registrable.as_ref() != Some(d) {
        reasons.push(reason(
            ReasonCode::ExactHost,
            format!("{d} is a host, not a registered domain: the exact host only"),
        ));
        return vec![exact];
    }
    if let Some(hit) = cx.lists.protected_below(d, cx.psl) {
        reasons.push(reason(
            ReasonCode::WildcardNarrowed,
            format!(
                "no wildcard: *.{d} would block {}, which is on the {hit}",
                hit.entry
            ),
        ));
        return vec![exact];
    }
    reasons.push(reason(
        ReasonCode::WholeDomain,
        format!("{d} is the registered domain itself: it and every name below it"),
    ));
    vec![exact, Rule::block(Trigger::Wildcard(d.clone()))]
}

fn fmt_age(score: &Score) -> String {
    let hours = score.age.as_secs() / 3600;
    if hours >= 48 {
        format!("{} days", hours / 24)
    } else {
        format!("{hours} hours")
    }
}
