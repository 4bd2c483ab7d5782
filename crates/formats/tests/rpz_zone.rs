//! RPZ zones end to end: the reader on real published zones, the writer checked by
//! BIND's own `named-checkzone`, and write → read round trips.
//!
//! The RPZ output is what resolvers load, so "our reader accepts it" is not enough:
//! BIND must accept it too, and what BIND makes of it must read back to the same
//! rules. `named-checkzone` comes from `bind9-utils`, which `scripts/test` installs;
//! the test fails (it is not skipped) when the tool is missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use formats::write::rpz::{ZoneHeader, zone};
use formats::{Parsed, Polarity, RpzAction, RpzTrigger, readers, summarise};
use indicator::{Domain, Hint, Indicator, IpNet, Kind};
use proptest::prelude::*;

fn data(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn read(text: &str) -> Parsed {
    readers::rpz::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// Every record's normalised indicator, trigger and action, in order.
fn policies(parsed: &Parsed) -> Vec<(Indicator, RpzTrigger, RpzAction)> {
    parsed
        .records
        .iter()
        .map(|r| {
            let indicator = r.normalise().unwrap_or_else(|e| panic!("{}: {e}", r.at));
            let policy = r
                .meta
                .as_ref()
                .and_then(|m| m.rpz.clone())
                .unwrap_or_else(|| panic!("{}: no policy", r.at));
            (indicator, policy.trigger, policy.action)
        })
        .collect()
}

fn unique(parsed: &Parsed, kind: Kind) -> usize {
    summarise(parsed).unique.get(&kind).copied().unwrap_or(0)
}

/// `feeds/rpz-misc/ubuntu-rpz_db.rpz` has no `$ORIGIN` and its SOA owner is `@`, so
/// the file does not name its zone; its owners are absolute (`tiktok.com.rpz.`), so
/// the zone can only be `rpz` (`named-checkzone rpz <file>` loads it; any other
/// origin fails with "out of zone data"). The reader infers that origin from the
/// owners. 332 `CNAME .` lines (`grep -c CNAME`) name 310 distinct owners (`awk
/// '{print tolower($1)}' | sort -u`; 22 lines repeat an owner with the same CNAME and
/// merge silently, as BIND merges them), 154 of them wildcards.
#[test]
fn ubuntu_rpz_hand_written_zone() {
    let parsed = read(&data("feeds/rpz-misc/ubuntu-rpz_db.rpz"));
    assert_eq!(parsed.diagnostics, Vec::new());
    assert_eq!(parsed.records.len(), 310);
    let rules = policies(&parsed);
    assert!(
        rules
            .iter()
            .all(|(_, t, a)| *t == RpzTrigger::Qname && *a == RpzAction::Nxdomain)
    );
    let wildcards = rules
        .iter()
        .filter(|(i, _, _)| matches!(i, Indicator::Wildcard(_)))
        .count();
    assert_eq!(wildcards, 154);
    assert_eq!(unique(&parsed, Kind::Domain), 310);
    assert_eq!(
        rules.first().map(|(i, _, _)| i.to_string()),
        Some("tiktok.com".to_owned())
    );
}

/// `feeds/urlhaus-filter/urlhaus-filter-rpz.conf`: 2692 non-comment lines (SOURCES.md)
/// are `$TTL`, the SOA, a blank-owner NS and 2689 `name CNAME .` rules with relative
/// owners and no `$ORIGIN` (`grep -c 'CNAME \.$'` = 2689, all distinct; BIND's
/// `named-checkzone -D` dump of the zone has 2689 CNAMEs).
#[test]
fn urlhaus_filter_rpz() {
    let parsed = read(&data("feeds/urlhaus-filter/urlhaus-filter-rpz.conf"));
    assert_eq!(parsed.diagnostics, Vec::new());
    assert_eq!(parsed.records.len(), 2689);
    let summary = summarise(&parsed);
    assert_eq!(summary.rejected, 0, "{:?}", summary.first_rejects);
    assert_eq!(unique(&parsed, Kind::Domain), 2689);
    assert!(
        policies(&parsed)
            .iter()
            .all(|(_, t, a)| *t == RpzTrigger::Qname && *a == RpzAction::Nxdomain)
    );
}

fn domain(text: &str) -> Domain {
    Domain::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn indicator(text: &str) -> Indicator {
    Indicator::parse(text, Hint::Any).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// One rule per action and per trigger shape.
fn every_kind_of_rule() -> Vec<(Indicator, RpzAction)> {
    vec![
        (indicator("nx.example"), RpzAction::Nxdomain),
        (indicator("*.nx.example"), RpzAction::Nxdomain),
        (indicator("nodata.example"), RpzAction::Nodata),
        (indicator("ok.example"), RpzAction::Passthru),
        (indicator("drop.example"), RpzAction::Drop),
        (indicator("tcp.example"), RpzAction::TcpOnly),
        (
            indicator("garden.example"),
            RpzAction::Redirect("walled.garden.invalid".to_owned()),
        ),
        (
            indicator("*.garden.example"),
            RpzAction::Redirect("*.walled.garden.invalid".to_owned()),
        ),
        (
            indicator("local.example"),
            RpzAction::LocalData(vec![
                ("A".to_owned(), "192.0.2.1".to_owned()),
                ("AAAA".to_owned(), "2001:db8::1".to_owned()),
                (
                    "TXT".to_owned(),
                    "\"blocked by policy; see https://hub.example/\"".to_owned(),
                ),
            ]),
        ),
        (indicator("192.0.2.66"), RpzAction::Nxdomain),
        (indicator("198.51.100.0/24"), RpzAction::Drop),
        (indicator("2001:db8::66"), RpzAction::Nodata),
        (indicator("2001:db8:1::/48"), RpzAction::Passthru),
        (indicator("2001:db8:0:1:1:1:1:1"), RpzAction::Nxdomain),
        (indicator("http://nx.example/path"), RpzAction::Nxdomain),
    ]
}

/// BIND lists an owner's records by type: local data compares as a set.
fn sorted(action: RpzAction) -> RpzAction {
    match action {
        RpzAction::LocalData(mut rrs) => {
            rrs.sort();
            RpzAction::LocalData(rrs)
        }
        other => other,
    }
}

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("sharedefend-rpz-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

fn named_checkzone(args: &[&str]) -> std::process::Output {
    Command::new("named-checkzone")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run named-checkzone ({e}): it comes from bind9-utils; run scripts/test, \
                 which installs it, or `apt-get install -y bind9-utils`"
            )
        })
}

/// BIND loads what the writer writes, and what BIND makes of it (its canonical dump,
/// absolute owners with TTL and class) reads back to the same rules.
#[test]
fn bind_accepts_the_written_zone() {
    let header = ZoneHeader::new(domain("rpz.sharedefend.example"), 2026072401);
    let rules = every_kind_of_rule();
    let mut out = Vec::new();
    zone(&mut out, &header, &rules).unwrap_or_else(|e| panic!("{e}"));
    let path = temp_file("check.zone", &out);
    let file = path.to_string_lossy().into_owned();

    let check = named_checkzone(&["-i", "local", "rpz.sharedefend.example", &file]);
    let dump = named_checkzone(&["-D", "-o", "-", "rpz.sharedefend.example", &file]);
    let _ = std::fs::remove_file(&path);
    assert!(
        check.status.success(),
        "named-checkzone rejected the zone:\n{}{}\n--- zone ---\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr),
        String::from_utf8_lossy(&out),
    );
    assert!(dump.status.success());

    let expected: BTreeSet<_> = rules
        .iter()
        .filter(|(i, _)| !matches!(i, Indicator::Url(_)))
        .map(|(i, a)| {
            let trigger = match i {
                Indicator::Ip(a) => RpzTrigger::ResponseIp(IpNet::from(*a)),
                Indicator::Cidr(n) => RpzTrigger::ResponseIp(*n),
                _ => RpzTrigger::Qname,
            };
            format!("{i} {trigger:?} {:?}", sorted(a.clone()))
        })
        .collect();
    for text in [out.as_slice(), dump.stdout.as_slice()] {
        let parsed = read(&String::from_utf8_lossy(text));
        assert_eq!(parsed.diagnostics, Vec::new());
        let got: BTreeSet<_> = policies(&parsed)
            .into_iter()
            .map(|(i, t, a)| format!("{i} {t:?} {:?}", sorted(a)))
            .collect();
        assert_eq!(got, expected);
        let allowed = parsed
            .records
            .iter()
            .filter(|r| r.polarity == Polarity::Allow)
            .count();
        assert_eq!(allowed, 2);
    }
}

// ---------------------------------------------------------------------------------
// Round trip: random rules → write → read → the same rules.

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,6}"
}

fn name() -> impl Strategy<Value = Domain> {
    (prop::collection::vec(label(), 1..4), "[a-z]{2,5}")
        .prop_map(|(labels, tld)| domain(&format!("{}.{tld}", labels.join("."))))
}

/// IPv6 words with many zeros, so that `zz` runs of every length and position occur.
fn ipv6() -> impl Strategy<Value = std::net::Ipv6Addr> {
    prop::array::uniform8(prop_oneof![3 => Just(0u16), 1 => any::<u16>()])
        .prop_map(std::net::Ipv6Addr::from)
}

fn trigger() -> impl Strategy<Value = Indicator> {
    prop_oneof![
        name().prop_map(Indicator::Domain),
        name().prop_map(Indicator::Wildcard),
        (any::<u32>(), 1u8..=32).prop_map(|(a, p)| {
            let net = IpNet::new(std::net::Ipv4Addr::from(a).into(), p)
                .unwrap_or_else(|e| panic!("{e}"))
                .trunc();
            indicator(&net.to_string())
        }),
        (ipv6(), 1u8..=128).prop_map(|(a, p)| {
            let net = IpNet::new(a.into(), p)
                .unwrap_or_else(|e| panic!("{e}"))
                .trunc();
            indicator(&net.to_string())
        }),
    ]
}

fn action() -> impl Strategy<Value = RpzAction> {
    let local = prop::collection::vec(
        prop_oneof![
            any::<u32>().prop_map(|a| ("A".to_owned(), std::net::Ipv4Addr::from(a).to_string())),
            ipv6().prop_map(|a| ("AAAA".to_owned(), a.to_string())),
            "[a-z ;()]{1,20}".prop_map(|t| ("TXT".to_owned(), format!("\"{t}\""))),
        ],
        1..4,
    )
    .prop_map(|rrs| {
        // The reader keeps one copy of a repeated record, as DNS does.
        let mut unique: Vec<(String, String)> = Vec::new();
        for rr in rrs {
            if !unique.contains(&rr) {
                unique.push(rr);
            }
        }
        RpzAction::LocalData(unique)
    });
    prop_oneof![
        Just(RpzAction::Nxdomain),
        Just(RpzAction::Nodata),
        Just(RpzAction::Passthru),
        Just(RpzAction::Drop),
        Just(RpzAction::TcpOnly),
        // Targets under `.invalid` never equal a trigger (that would be the legacy
        // PASSTHRU spelling).
        (any::<bool>(), label()).prop_map(|(wild, l)| {
            let star = if wild { "*." } else { "" };
            RpzAction::Redirect(format!("{star}{l}.garden.invalid"))
        }),
        local,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn write_then_read_gives_the_same_rules(
        input in prop::collection::btree_map(trigger(), action(), 0..40),
        serial in any::<u32>(),
    ) {
        let input: Vec<(Indicator, RpzAction)> = input.into_iter().collect();
        let header = ZoneHeader::new(domain("rpz.example"), serial);
        let mut out = Vec::new();
        zone(&mut out, &header, &input).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&out);
        let parsed = read(&text);
        prop_assert_eq!(&parsed.diagnostics, &Vec::new(), "{}", text);
        let got = policies(&parsed);
        let want: Vec<_> = input
            .iter()
            .map(|(i, a)| {
                let trigger = match i {
                    Indicator::Ip(a) => RpzTrigger::ResponseIp(IpNet::from(*a)),
                    Indicator::Cidr(n) => RpzTrigger::ResponseIp(*n),
                    _ => RpzTrigger::Qname,
                };
                (i.clone(), trigger, a.clone())
            })
            .collect();
        prop_assert_eq!(got, want, "{}", text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any text made of zone-file syntax (and some non-ASCII) reads without a panic.
    #[test]
    fn never_panics(text in "([a-z0-9*@$.;()\"\\\\ \t\r\n-]|IN|CNAME|SOA|A|TXT|rpz-ip|zz|é){0,80}") {
        let _ = readers::rpz::parse(&text);
    }
}
