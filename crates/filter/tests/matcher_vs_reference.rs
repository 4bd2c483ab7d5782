//! The compact matcher against the reference screen: random policy zones (every
//! action, wildcards, RPZ-IP and RPZ-CLIENT-IP, overrides, log-only zones, an
//! allowlist) written as zone files and loaded by both loaders, then random queries
//! and CNAME chains with addresses; every verdict must be the same (zone, rule,
//! action, log-only, and where in the chain it rewrites).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use dns::front::{Screen, Verdict};
use filter::{Engine, FilterConfig, LiveScreen, Settings, ZoneFile, ZonePolicy, ZoneSource};
use proptest::prelude::*;

const LABELS: &[&str] = &["a", "b", "evil", "x-1", "mail"];
const ACTIONS: &[&str] = &[
    "CNAME .",
    "CNAME *.",
    "CNAME rpz-passthru.",
    "CNAME rpz-drop.",
    "CNAME rpz-tcp-only.",
    "CNAME garden.example.",
    "CNAME *.walled.example.",
    "A 192.0.2.80",
    "TXT \"blocked\"",
];
const NETS: &[&str] = &[
    "24.0.2.0.192",
    "32.1.2.0.192",
    "16.0.0.51.198",
    "32.7.100.51.198",
    "24.0.100.51.198",
    "48.zz.db8.2001",
    "128.1.zz.db8.2001",
];
const ADDRS: &[&str] = &[
    "192.0.2.1",
    "192.0.2.9",
    "198.51.100.7",
    "198.51.100.8",
    "203.0.113.5",
    "2001:db8::1",
    "2001:db8:1::2",
];

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(LABELS), 1..4)
        .prop_map(|labels| format!("{}.example", labels.join(".")))
}

#[derive(Debug, Clone)]
enum Owner {
    Name(String),
    Wild(String),
    Ip(&'static str),
    Client(&'static str),
}

fn rule() -> impl Strategy<Value = (Owner, &'static str)> {
    let owner = prop_oneof![
        5 => name().prop_map(Owner::Name),
        3 => name().prop_map(Owner::Wild),
        1 => prop::sample::select(NETS).prop_map(Owner::Ip),
        1 => prop::sample::select(NETS).prop_map(Owner::Client),
    ];
    (owner, prop::sample::select(ACTIONS))
}

fn zone_policy() -> impl Strategy<Value = ZonePolicy> {
    prop_oneof![
        6 => Just(ZonePolicy::Given),
        2 => Just(ZonePolicy::LogOnly),
        1 => Just(ZonePolicy::Nxdomain),
        1 => Just(ZonePolicy::Passthru),
        1 => Just(ZonePolicy::Cname("garden.example".into())),
    ]
}

fn zone_text(index: usize, rules: &[(Owner, &str)]) -> String {
    let origin = format!("z{index}.rpz");
    let mut text = format!(
        "$TTL 300\n$ORIGIN {origin}.\n@ SOA ns.{origin}. admin.{origin}. {} 3600 600 86400 60\n@ NS ns.{origin}.\n",
        index + 1
    );
    for (owner, action) in rules {
        let owner = match owner {
            Owner::Name(n) => n.clone(),
            Owner::Wild(n) => format!("*.{n}"),
            Owner::Ip(n) => format!("{n}.rpz-ip"),
            Owner::Client(n) => format!("{n}.rpz-client-ip"),
        };
        text.push_str(&format!("{owner} {action}\n"));
    }
    text
}

static CASE: AtomicUsize = AtomicUsize::new(0);

fn settings(zones: &[(Vec<(Owner, &str)>, ZonePolicy)], allow: &[String]) -> Settings {
    let dir = std::env::temp_dir().join(format!(
        "sharedefend-matcher-vs-reference-{}-{}",
        std::process::id(),
        CASE.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let config = FilterConfig {
        upstreams: vec!["127.0.0.1:53".parse().unwrap_or_else(|e| panic!("{e}"))],
        ..FilterConfig::default()
    };
    let mut s = config.settings().unwrap_or_else(|e| panic!("{e}"));
    s.allow = allow.to_vec();
    for (i, (rules, policy)) in zones.iter().enumerate() {
        let path: PathBuf = dir.join(format!("z{i}.rpz"));
        std::fs::write(&path, zone_text(i, rules)).unwrap_or_else(|e| panic!("{e}"));
        s.zones.push(ZoneSource::File(ZoneFile {
            path,
            name: None,
            policy: policy.clone(),
        }));
    }
    s
}

fn show(v: Option<Verdict>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) => {
            let detail = match &v.action {
                dns::front::Policy::Redirect(r) => format!(" {}", r.target()),
                dns::front::Policy::Local(l) => format!(" {l:?}"),
                _ => String::new(),
            };
            format!(
                "{} {} {}{detail}{}",
                v.zone.name(),
                v.rule,
                v.action.name(),
                if v.shadow { " (log-only)" } else { "" }
            )
        }
    }
}

fn load(s: &Settings, engine: Engine) -> LiveScreen {
    let mut s = s.clone();
    s.engine = engine;
    LiveScreen::load(&s).unwrap_or_else(|e| panic!("{e}")).0
}

type Query = (String, &'static str, Vec<String>, Vec<&'static str>);

fn query() -> impl Strategy<Value = Query> {
    (
        name(),
        prop::sample::select(ADDRS),
        prop::collection::vec(name(), 0..4),
        prop::collection::vec(prop::sample::select(ADDRS), 0..3),
    )
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn same_verdicts(
        zones in prop::collection::vec(
            (prop::collection::vec(rule(), 0..24), zone_policy()),
            1..4,
        ),
        allow in prop::collection::vec(name(), 0..2),
        queries in prop::collection::vec(query(), 1..48),
    ) {
        let s = settings(&zones, &allow);
        let matcher = load(&s, Engine::Matcher);
        let reference = load(&s, Engine::Reference);
        for (qname, client, chain, addrs) in &queries {
            let client = addr(client);
            prop_assert_eq!(
                show(matcher.qname(qname, client)),
                show(reference.qname(qname, client)),
                "query {}", qname
            );
            let chain: Vec<Box<str>> = chain.iter().map(|n| n.as_str().into()).collect();
            let addrs: Vec<IpAddr> = addrs.iter().map(|a| addr(a)).collect();
            let at = |r: Option<(usize, Verdict)>| match r {
                None => "-".to_owned(),
                Some((d, v)) => format!("{d} {}", show(Some(v))),
            };
            prop_assert_eq!(
                at(matcher.answer(&chain, &addrs)),
                at(reference.answer(&chain, &addrs)),
                "chain {:?} addrs {:?}", chain, addrs
            );
        }
        if let Some(dir) = s.zone_files().next().and_then(|(_, z)| z.path.parent()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
