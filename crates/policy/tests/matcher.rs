//! The matcher against the obvious: a naive scan over every rule.
//!
//! The fast structures (sharded arenas, overlays after deltas, compaction, the label
//! range skip, the zone order with overrides, log-only zones and the allowlist) must
//! answer exactly what scanning a plain list of rules answers, on random rule sets
//! and random queries drawn from a small alphabet so that names collide often: deep
//! subdomains, wildcards at several levels, exact and wildcard on one name, several
//! zones. Deltas applied one after another (with compaction steps in between) must
//! agree with a set built from scratch from the final rules, and readers on other
//! threads must only ever see whole deltas.

use std::collections::BTreeMap;
use std::net::IpAddr;

use indicator::{Domain, IpNet};
use policy::{
    Delta, Hit, LivePolicy, LocalRecord, Matched, Policy, QueryName, Redirect, Response, RuleSet,
    RuleSetBuilder, Trigger, Verdict, Zone, ZoneOptions, ZoneTrigger,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------
// The naive model.

type Rules = BTreeMap<ZoneTrigger, Response>;

#[derive(Debug, Clone)]
struct NaiveZone {
    rules: Rules,
    options: ZoneOptions,
}

/// What matched, owned, comparable: (zone, trigger text, rule response, response).
type Outcome = Option<(Option<usize>, String, Response, Response)>;

fn naive_qname(rules: &Rules, qname: &str) -> Option<(String, Response)> {
    if let Some(r) = rules.iter().find_map(|(t, r)| match t {
        ZoneTrigger::Qname(Trigger::Exact(d)) if d.as_str() == qname => Some(r),
        _ => None,
    }) {
        return Some((qname.to_owned(), r.clone()));
    }
    rules
        .iter()
        .filter_map(|(t, r)| match t {
            ZoneTrigger::Qname(Trigger::Wildcard(d))
                if qname.len() > d.as_str().len()
                    && qname.ends_with(&format!(".{}", d.as_str())) =>
            {
                Some((d, r))
            }
            _ => None,
        })
        .max_by_key(|(d, _)| d.label_count())
        .map(|(d, r)| (format!("*.{d}"), r.clone()))
}

fn naive_ip(rules: &Rules, client: bool, addr: IpAddr) -> Option<(IpNet, Response)> {
    rules
        .iter()
        .filter_map(|(t, r)| match (t, client) {
            (ZoneTrigger::ClientIp(n), true) | (ZoneTrigger::ResponseIp(n), false)
                if n.contains(&addr) =>
            {
                Some((*n, r.clone()))
            }
            _ => None,
        })
        .max_by_key(|(n, _)| n.prefix_len())
}

/// The allowlist and the zones in evaluation order: (zone, rules, override, log-only).
fn naive_slots<'a>(
    zones: &'a [NaiveZone],
    allow: &'a Rules,
) -> Vec<(Option<usize>, &'a Rules, Option<Response>, bool)> {
    let mut slots = vec![(None, allow, Some(Response::Passthru), false)];
    for (i, z) in zones.iter().enumerate() {
        slots.push((
            Some(i),
            &z.rules,
            z.options.policy.clone(),
            z.options.log_only,
        ));
    }
    slots
}

fn naive_query(
    zones: &[NaiveZone],
    allow: &Rules,
    client: Option<IpAddr>,
    qname: &str,
) -> (Outcome, u64) {
    let mut logged = 0;
    for (zone, rules, policy, log_only) in naive_slots(zones, allow) {
        let found = client
            .and_then(|c| naive_ip(rules, true, c))
            .map(|(n, r)| (format!("client {n}"), r))
            .or_else(|| naive_qname(rules, qname));
        if let Some((trigger, response)) = found {
            if log_only {
                logged |= 1 << zone.unwrap_or(0);
                continue;
            }
            let applied = policy.unwrap_or_else(|| response.clone());
            return (Some((zone, trigger, response, applied)), logged);
        }
    }
    (None, logged)
}

fn naive_answer(
    zones: &[NaiveZone],
    allow: &Rules,
    before: (Outcome, u64),
    answer: &[IpAddr],
) -> (Outcome, u64) {
    let (outcome, mut logged) = before;
    let limit = match &outcome {
        Some((None, ..)) => return (outcome, logged),
        Some((Some(i), ..)) => *i,
        None => zones.len(),
    };
    for (zone, rules, policy, log_only) in naive_slots(zones, allow) {
        if zone.is_some_and(|i| i >= limit) {
            break;
        }
        // Longest prefix (IPv4 counted as mapped IPv6), then the smallest address.
        let best = answer
            .iter()
            .filter_map(|&a| naive_ip(rules, false, a).map(|m| (a, m)))
            .min_by_key(|(a, (n, _))| {
                let (len, mapped) = match a {
                    IpAddr::V4(v4) => (u16::from(n.prefix_len()) + 96, v4.to_ipv6_mapped()),
                    IpAddr::V6(v6) => (u16::from(n.prefix_len()), *v6),
                };
                (std::cmp::Reverse(len), mapped)
            });
        if let Some((address, (net, response))) = best {
            if log_only {
                logged |= 1 << zone.unwrap_or(0);
                continue;
            }
            let applied = policy.unwrap_or_else(|| response.clone());
            let trigger = format!("ip {net} {address}");
            return (Some((zone, trigger, response, applied)), logged);
        }
    }
    (outcome, logged)
}

fn outcome(verdict: &Verdict<'_>) -> (Outcome, u64) {
    let hit = verdict.hit.map(|h: Hit<'_>| {
        let trigger = match h.trigger {
            Matched::Qname { name, wildcard } => {
                let star = if wildcard { "*." } else { "" };
                format!("{star}{name}")
            }
            Matched::ClientIp(n) => format!("client {n}"),
            Matched::ResponseIp { net, address } => format!("ip {net} {address}"),
        };
        (h.zone, trigger, h.rule_response.clone(), h.response.clone())
    });
    (hit, verdict.logged)
}

fn build(rules: &Rules, shards: usize) -> RuleSet {
    let mut b = RuleSetBuilder::with_shards(shards);
    for (t, r) in rules {
        b.insert(t.clone(), r.clone());
    }
    b.build()
}

fn sorted_rules(set: &RuleSet) -> Vec<(ZoneTrigger, Response)> {
    let mut rules: Vec<_> = set.rules().collect();
    rules.sort();
    rules
}

// ---------------------------------------------------------------------------------
// Strategies: a small alphabet, so rules and queries overlap.

const LABELS: [&str; 6] = ["a", "b", "c", "dd", "e-f", "_g"];

fn name(max_labels: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&LABELS[..]), 1..=max_labels)
        .prop_map(|labels| labels.join("."))
}

fn domain(text: &str) -> Domain {
    Domain::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        4 => Just(Response::Nxdomain),
        1 => Just(Response::Nodata),
        2 => Just(Response::Passthru),
        1 => Just(Response::Drop),
        1 => Just(Response::TcpOnly),
        1 => any::<bool>().prop_map(|prepend_qname| Response::Redirect(Redirect {
            target: domain("garden.example"),
            prepend_qname,
        })),
        1 => (0u8..3).prop_map(|i| Response::LocalData(
            vec![LocalRecord::new("A", &format!("192.0.2.{i}"))].into()
        )),
    ]
}

fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, 0u8..4).prop_map(|(c, d)| IpAddr::from([10, 0, c, d])),
        (0u16..4).prop_map(|d| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, d])),
    ]
}

fn net() -> impl Strategy<Value = IpNet> {
    (address(), 0usize..4).prop_map(|(a, i)| {
        let len = match a {
            IpAddr::V4(_) => [8, 16, 30, 32][i],
            IpAddr::V6(_) => [32, 64, 126, 128][i],
        };
        IpNet::new(a, len).unwrap_or_else(|e| panic!("{e}")).trunc()
    })
}

fn trigger() -> impl Strategy<Value = ZoneTrigger> {
    prop_oneof![
        8 => name(4).prop_map(|n| ZoneTrigger::Qname(Trigger::Exact(domain(&n)))),
        6 => name(3).prop_map(|n| ZoneTrigger::Qname(Trigger::Wildcard(domain(&n)))),
        1 => net().prop_map(ZoneTrigger::ResponseIp),
        1 => net().prop_map(ZoneTrigger::ClientIp),
    ]
}

fn rules(max: usize) -> impl Strategy<Value = Rules> {
    prop::collection::vec((trigger(), response()), 0..max)
        .prop_map(|pairs| pairs.into_iter().collect())
}

fn options() -> impl Strategy<Value = ZoneOptions> {
    let policy = prop_oneof![
        6 => Just(None),
        1 => Just(Some(Response::Nxdomain)),
        1 => Just(Some(Response::Passthru)),
        1 => Just(Some(Response::Redirect(Redirect {
            target: domain("block.example"),
            prepend_qname: false,
        }))),
    ];
    (policy, prop::bool::weighted(0.2))
        .prop_map(|(policy, log_only)| ZoneOptions { policy, log_only })
}

fn zone() -> impl Strategy<Value = NaiveZone> {
    (rules(40), options()).prop_map(|(rules, options)| NaiveZone { rules, options })
}

#[derive(Debug, Clone)]
struct Query {
    name: String,
    client: Option<IpAddr>,
    answer: Vec<IpAddr>,
}

fn query() -> impl Strategy<Value = Query> {
    (
        name(7),
        prop::option::weighted(0.3, address()),
        prop::collection::vec(address(), 0..3),
    )
        .prop_map(|(name, client, answer)| Query {
            name,
            client,
            answer,
        })
}

fn check_policy(
    policy: &Policy,
    zones: &[NaiveZone],
    allow: &Rules,
    queries: &[Query],
) -> Result<(), TestCaseError> {
    for q in queries {
        let qname =
            QueryName::from_text(q.name.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", q.name));
        let before = policy.check_query(q.client, &qname);
        let naive_before = naive_query(zones, allow, q.client, &q.name);
        prop_assert_eq!(outcome(&before), naive_before.clone(), "query {:?}", q);
        let after = policy.check_answer(before, &q.answer);
        let naive_after = naive_answer(zones, allow, naive_before, &q.answer);
        prop_assert_eq!(outcome(&after), naive_after, "answer {:?}", q);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// One zone, every lookup, against the scan; and the rules come back as given.
    #[test]
    fn one_zone_agrees_with_a_scan(
        rules in rules(60),
        shards in 1usize..9,
        queries in prop::collection::vec(query(), 1..40),
    ) {
        let set = build(&rules, shards);
        prop_assert_eq!(set.len(), rules.len());
        let given: Vec<_> = rules.clone().into_iter().collect();
        prop_assert_eq!(sorted_rules(&set), given);
        for (trigger, response) in &rules {
            let got = set.get(trigger);
            prop_assert_eq!(got.as_ref(), Some(response));
        }
        for q in &queries {
            let qname = QueryName::from_text(q.name.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            let got = set.lookup_qname(&qname).map(|m| {
                let star = if m.wildcard { "*." } else { "" };
                (format!("{star}{}", m.name), m.response.clone())
            });
            prop_assert_eq!(got, naive_qname(&rules, &q.name), "{}", q.name);
        }
    }

    /// Several zones in order, overrides, log-only zones, the allowlist, client and
    /// answer addresses.
    #[test]
    fn policy_agrees_with_a_scan(
        zones in prop::collection::vec(zone(), 1..5),
        allow in prop::collection::vec((any::<bool>(), name(3)), 0..4),
        allow_clients in prop::collection::vec(net(), 0..2),
        shards in 1usize..5,
        queries in prop::collection::vec(query(), 1..40),
    ) {
        let mut allow_rules = Rules::new();
        for (wildcard, n) in allow {
            let d = domain(&n);
            let t = if wildcard { Trigger::Wildcard(d) } else { Trigger::Exact(d) };
            allow_rules.insert(ZoneTrigger::Qname(t), Response::Passthru);
        }
        for n in allow_clients {
            allow_rules.insert(ZoneTrigger::ClientIp(n), Response::Passthru);
        }
        let policy_zones = zones
            .iter()
            .enumerate()
            .map(|(i, z)| Zone::new(&format!("z{i}"), z.options.clone(), build(&z.rules, shards)))
            .collect();
        let policy = Policy::new(policy_zones, build(&allow_rules, 1))
            .unwrap_or_else(|e| panic!("{e}"));
        check_policy(&policy, &zones, &allow_rules, &queries)?;
    }

    /// Deltas one after another, with compaction steps between, agree with the naive
    /// model and with a set built from scratch from the final rules.
    #[test]
    fn deltas_agree_with_a_rebuild(
        initial in rules(60),
        shards in 1usize..9,
        deltas in prop::collection::vec(
            (any::<u64>(), prop::collection::vec((trigger(), response()), 0..20), 0usize..4),
            1..6,
        ),
        queries in prop::collection::vec(query(), 1..30),
    ) {
        let mut model = initial.clone();
        let zone_options = ZoneOptions::default();
        let policy = Policy::new(
            vec![Zone::new("z", zone_options.clone(), build(&initial, shards))],
            RuleSet::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let live = LivePolicy::new(policy);
        for (seed, adds, compactions) in deltas {
            // Remove about a third of the rules, then add candidates not present.
            let removed: Vec<ZoneTrigger> = model
                .keys()
                .enumerate()
                .filter(|(i, _)| (seed.rotate_left(*i as u32 % 64) ^ *i as u64).is_multiple_of(3))
                .map(|(_, t)| t.clone())
                .collect();
            for t in &removed {
                model.remove(t);
            }
            let mut added = Vec::new();
            for (t, r) in adds {
                if !model.contains_key(&t) {
                    model.insert(t.clone(), r.clone());
                    added.push((t, r));
                }
            }
            let delta = Delta { removed, added };
            live.apply_delta(0, &delta).unwrap_or_else(|e| panic!("{e}"));
            for _ in 0..compactions {
                live.compact_step();
            }
            let snapshot = live.snapshot();
            let zones = vec![NaiveZone { rules: model.clone(), options: zone_options.clone() }];
            check_policy(&snapshot, &zones, &Rules::new(), &queries)?;
            let set = &snapshot.zones()[0].rules;
            prop_assert_eq!(set.len(), model.len());
            prop_assert_eq!(sorted_rules(set), model.clone().into_iter().collect::<Vec<_>>());
        }
        // Compacted fully: still the same rules, no overlay left, and the same
        // answers as a fresh build.
        while live.compact_step() {}
        let snapshot = live.snapshot();
        let set = &snapshot.zones()[0].rules;
        prop_assert_eq!(set.overlaid_shards(), 0);
        let fresh = build(&model, shards);
        for q in &queries {
            let qname = QueryName::from_text(q.name.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(set.lookup_qname(&qname), fresh.lookup_qname(&qname));
        }
        prop_assert_eq!(sorted_rules(set), sorted_rules(&fresh));
    }
}

/// A delta that does not apply changes nothing.
#[test]
fn a_bad_delta_is_not_half_applied() {
    let d = |s: &str| ZoneTrigger::Qname(Trigger::parse(s).unwrap_or_else(|e| panic!("{e}")));
    let mut rules = Rules::new();
    rules.insert(d("a.example"), Response::Nxdomain);
    let policy = Policy::new(
        vec![Zone::new("z", ZoneOptions::default(), build(&rules, 4))],
        RuleSet::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let live = LivePolicy::new(policy);
    let before = sorted_rules(&live.snapshot().zones()[0].rules);
    let delta = Delta {
        removed: vec![d("a.example")],
        added: vec![
            (d("b.example"), Response::Nxdomain),
            (d("b.example"), Response::Drop),
        ],
    };
    let err = live.apply_delta(0, &delta).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("zone \"z\": delta adds b.example, which the zone already holds")
    );
    assert_eq!(sorted_rules(&live.snapshot().zones()[0].rules), before);
    assert_eq!(
        live.apply_delta(3, &Delta::default())
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("no policy zone number 3")
    );
}

/// Readers on other threads never see half a delta: each delta moves one token rule
/// (`t{k}` removed, `t{k+1}` added) and one background rule, compaction steps run in
/// between, and every snapshot a reader loads holds exactly one token. Bounded:
/// 60 deltas, each reader a fixed number of loads.
#[test]
fn readers_see_whole_deltas_only() {
    let name = |s: String| ZoneTrigger::Qname(Trigger::Exact(domain(&s)));
    let mut initial = Rules::new();
    for i in 0..5_000 {
        initial.insert(name(format!("bg{i}.example")), Response::Nxdomain);
    }
    initial.insert(name("t0.example".to_owned()), Response::Nxdomain);
    let policy = Policy::new(
        vec![Zone::new("z", ZoneOptions::default(), build(&initial, 8))],
        RuleSet::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let live = LivePolicy::new(policy);
    const DELTAS: usize = 60;
    let tokens: Vec<QueryName> = (0..=DELTAS)
        .map(|k| QueryName::from_text(format!("t{k}.example").as_bytes()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    for _ in 0..3_000 {
                        let snapshot = live.load();
                        let rules = &snapshot.zones()[0].rules;
                        let present = tokens
                            .iter()
                            .filter(|q| rules.lookup_qname(q).is_some())
                            .count();
                        assert_eq!(present, 1, "a snapshot with {present} tokens");
                    }
                })
            })
            .collect();
        for k in 0..DELTAS {
            let delta = Delta {
                removed: vec![
                    name(format!("t{k}.example")),
                    name(format!("bg{k}.example")),
                ],
                added: vec![
                    (name(format!("t{}.example", k + 1)), Response::Nxdomain),
                    (name(format!("new{k}.example")), Response::Drop),
                ],
            };
            live.apply_delta(0, &delta)
                .unwrap_or_else(|e| panic!("{e}"));
            live.compact_step();
        }
        for r in readers {
            r.join().unwrap_or_else(|_| panic!("a reader failed"));
        }
    });
    while live.compact_step() {}
    let snapshot = live.snapshot();
    let rules = &snapshot.zones()[0].rules;
    assert_eq!(rules.overlaid_shards(), 0);
    assert_eq!(rules.len(), 5_001);
    assert!(rules.lookup_qname(&tokens[DELTAS]).is_some());
}
