//! Conversions between the store's rows and the core model: indicators to keys,
//! observation rows to analysis sightings, decisions to rows, allow rows to lists.
//!
//! The store keeps plain text and numbers; analysis wants typed values. Converting in
//! one place keeps both sides ignorant of each other.

use std::collections::HashMap;

use analysis::{Decision, Entry, Evidence, Extent, Lists, Outcome, Role, Sighting};
use indicator::{Category, Domain, Host, Indicator, IpNet, Timestamp};
use store::{
    AllowRow, DecisionRow, IndicatorKey, ObservationRow, ObservationWithSource, RuleText, SourceRow,
};

/// The store key of an indicator.
pub fn key(indicator: &Indicator) -> IndicatorKey {
    let host = match indicator {
        Indicator::Domain(d) | Indicator::Wildcard(d) => Some(d.to_string()),
        Indicator::Url(u) => match u.host() {
            Host::Domain(d) => Some(d.to_string()),
            Host::Ip(ip) => Some(ip.to_string()),
        },
        Indicator::Ip(_) | Indicator::Cidr(_) => None,
    };
    IndicatorKey {
        value: indicator.to_string(),
        kind: indicator.kind().as_str().to_owned(),
        host,
    }
}

/// Parses a stored indicator value back (it was written canonical, so it re-parses
/// to itself).
pub fn indicator_of(value: &str, kind: &str) -> Option<Indicator> {
    let hint = match kind {
        "url" => indicator::Hint::Url,
        "ip" => indicator::Hint::Ip,
        "cidr" => indicator::Hint::Cidr,
        _ => indicator::Hint::Any,
    };
    Indicator::parse(value, hint).ok()
}

/// The evidence for each indicator id, from stored observations.
pub fn evidence_by_indicator(rows: &[ObservationWithSource]) -> HashMap<i64, Evidence> {
    let mut map: HashMap<i64, Evidence> = HashMap::new();
    for r in rows {
        add_observation(map.entry(r.observation.indicator_id).or_default(), r);
    }
    map
}

/// The evidence of one indicator, from its stored observations.
pub fn evidence_of<'a>(rows: impl IntoIterator<Item = &'a ObservationWithSource>) -> Evidence {
    let mut e = Evidence::default();
    for r in rows {
        add_observation(&mut e, r);
    }
    e
}

/// The evidence of one indicator with one observation, from `source`.
pub fn evidence_of_row(o: &ObservationRow, source: &SourceRow) -> Evidence {
    let mut e = Evidence::default();
    add_sighting(&mut e, o, &source.name, source.trust, source.group.as_ref());
    e
}

fn add_observation(e: &mut Evidence, r: &ObservationWithSource) {
    add_sighting(e, &r.observation, &r.source, r.trust, r.group.as_ref());
}

fn add_sighting(
    e: &mut Evidence,
    o: &ObservationRow,
    source: &str,
    trust: f64,
    group: Option<&String>,
) {
    e.sightings.push(Sighting {
        source: source.to_owned(),
        trust,
        group: group.cloned(),
        category: o.category.parse().unwrap_or(Category::Unknown),
        confidence: o.confidence,
        last_seen: o.last_seen,
        valid_until: o.valid_until,
    });
    if o.tags.iter().any(|t| t == "compromised") {
        e.compromised = true;
    }
}

/// The feeds a decision's rules go to.
pub fn feeds_for(category: Category) -> Vec<String> {
    let mut feeds: Vec<String> = analysis::feed_for(category)
        .into_iter()
        .map(str::to_owned)
        .collect();
    feeds.push(crate::engine::ALL_FEED.to_owned());
    feeds
}

/// The stored form of a decision.
pub fn decision_row(indicator_id: i64, d: &Decision, now: Timestamp) -> DecisionRow {
    let rules: Vec<RuleText> = d
        .outcome
        .rules()
        .iter()
        .map(|r| RuleText {
            trigger: r.trigger.owner(),
            action: r.action.as_str().to_owned(),
        })
        .collect();
    let feeds = if rules.is_empty() {
        Vec::new()
    } else {
        feeds_for(d.score.category)
    };
    DecisionRow {
        indicator_id,
        state: state_of(&d.outcome).to_owned(),
        score: d.score.value,
        category: d.score.category.as_str().to_owned(),
        reasons: d.reasons.iter().map(ToString::to_string).collect(),
        rules,
        feeds,
        decided_at: now,
    }
}

pub fn state_of(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Publish(_) => store::STATE_PUBLISH,
        Outcome::UrlOnly => store::STATE_URL_ONLY,
        Outcome::AddressOnly => store::STATE_ADDRESS_ONLY,
        Outcome::Hold => store::STATE_HOLD,
        Outcome::Ignore => store::STATE_IGNORE,
    }
}

/// Builds the analysis view of the stored allowlists.
pub fn lists_from_rows(rows: &[AllowRow], popular_allow_top: u32) -> Lists {
    let mut lists = Lists::new();
    lists.popular_allow_top = popular_allow_top;
    for r in rows {
        let Some(role) = Role::parse(&r.role) else {
            continue;
        };
        match r.extent.as_str() {
            "exact" | "subtree" => {
                if let Ok(d) = Domain::parse(&r.value) {
                    let extent = if r.extent == "exact" {
                        Extent::Exact
                    } else {
                        Extent::Subtree
                    };
                    lists.add_name(
                        &d,
                        Entry {
                            list: r.list.clone(),
                            role,
                            extent,
                            rank: r.rank,
                        },
                    );
                }
            }
            "cidr" => {
                let net = r
                    .value
                    .parse::<IpNet>()
                    .ok()
                    .or_else(|| r.value.parse::<std::net::IpAddr>().ok().map(IpNet::from));
                if let Some(net) = net {
                    lists.add_cidr(net, &r.list, role);
                }
            }
            "substring" => lists.add_substring(&r.value, &r.list, role),
            _ => {}
        }
    }
    lists
}
