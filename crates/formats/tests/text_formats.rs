//! The resolver-config readers and the text writers against real feeds and each other.
//!
//! urlhaus-filter publishes one list in a dozen flavours from the same snapshot, which
//! makes it a natural cross-check: every flavour read with its own reader (the format
//! found by sniffing, as `sharedefend check` does) must give the same names. The
//! writers are checked by round trip: write, read back with the same format, compare
//! the sets of indicators.
//!
//! Counts come from SOURCES.md (non-comment lines) and were checked independently
//! with grep: `-domains.txt` and `-agh.txt` hold 2689 names and 23079 IPv4 addresses
//! (`grep -cE '^[0-9.]+$'`), and the name-only flavours hold exactly those 2689 names
//! (`sort | cmp` of the stripped values), because a hosts, dnsmasq, Unbound or BIND
//! rule names a host and cannot carry an address.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use formats::{Format, Parsed, Polarity, ReadOptions, summarise, write};
use indicator::{Domain, Hint, Indicator, Kind, Url};
use proptest::prelude::*;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/feeds/urlhaus-filter")
}

fn bytes(name: &str) -> Vec<u8> {
    let path = data_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a real file with sniffing, checking the sniffer picked `want`.
#[track_caller]
fn read_sniffed(name: &str, want: Format) -> Parsed {
    let parsed = formats::read(&bytes(name), &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(parsed.format, want, "{name} sniffed as {}", parsed.format);
    parsed
}

#[track_caller]
fn read_as(name: &str, format: Format) -> Parsed {
    let options = ReadOptions {
        format: Some(format),
        ..ReadOptions::default()
    };
    formats::read(&bytes(name), &options).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (records, unique names, unique addresses, unique URLs, rejected, diagnostics, allow)
fn counts(parsed: &Parsed) -> (usize, usize, usize, usize, usize, usize, usize) {
    let s = summarise(parsed);
    let unique = |k: Kind| s.unique.get(&k).copied().unwrap_or(0);
    (
        s.records,
        unique(Kind::Domain),
        unique(Kind::Ip),
        unique(Kind::Url),
        s.rejected,
        parsed.diagnostics.len(),
        s.allow,
    )
}

fn indicators(parsed: &Parsed) -> BTreeSet<Indicator> {
    parsed
        .records
        .iter()
        .filter_map(|r| r.normalise().ok())
        .collect()
}

#[test]
fn agh_list() {
    let parsed = read_sniffed("urlhaus-filter-agh.txt", Format::Adblock);
    assert_eq!(counts(&parsed), (25768, 2689, 23079, 0, 0, 0, 0));
}

#[test]
fn dnsmasq_list() {
    let parsed = read_sniffed("urlhaus-filter-dnsmasq.conf", Format::Dnsmasq);
    assert_eq!(counts(&parsed), (2689, 2689, 0, 0, 0, 0, 0));
}

#[test]
fn unbound_list() {
    let parsed = read_sniffed("urlhaus-filter-unbound.conf", Format::Unbound);
    assert_eq!(counts(&parsed), (2689, 2689, 0, 0, 0, 0, 0));
}

#[test]
fn bind_list() {
    let parsed = read_sniffed("urlhaus-filter-bind.conf", Format::BindZones);
    assert_eq!(counts(&parsed), (2689, 2689, 0, 0, 0, 0, 0));
}

/// The uBlock Origin flavour: the 25768 bare names and addresses of `-domains.txt`
/// plus 6054 distinct `||…^$all` rules (`grep '^||' | sort -u | wc -l`). Of those,
/// 3 have no path (`||bedoueroom.top^$all`): names, not in `-domains.txt`, hence
/// 2692 names. 23 carry another URL in their path
/// (`||web.archive.org/web/2024…if_/http://…^$all`, `grep -c '://'`): the reader
/// gives them as `host/path` with [`Hint::Url`] and they normalise to
/// `http://web.archive.org/…` URLs. 6054 − 3 = 6051 URLs. The sniffer calls this file
/// plain (its first 64 KiB are bare names); the plain reader hands the `||` rules
/// further down to the Adblock rule reader, so both readings agree.
#[test]
fn ublock_list() {
    let parsed = read_as("urlhaus-filter.txt", Format::Adblock);
    assert_eq!(counts(&parsed), (31822, 2692, 23079, 6051, 0, 0, 0));
    let sniffed = read_as("urlhaus-filter.txt", Format::Plain);
    assert_eq!(counts(&sniffed), (31822, 2692, 23079, 6051, 0, 0, 0));
}

/// Every flavour lists the same snapshot: the name-only flavours hold exactly the
/// names of `-domains.txt`, and `-agh.txt` holds all of it, addresses included.
#[test]
fn flavours_agree() {
    let all = indicators(&read_sniffed("urlhaus-filter-domains.txt", Format::Plain));
    let names: BTreeSet<Indicator> = all
        .iter()
        .filter(|i| i.kind() == Kind::Domain)
        .cloned()
        .collect();
    let addresses = all.iter().filter(|i| i.kind() == Kind::Ip).count();
    assert_eq!((names.len(), addresses, all.len()), (2689, 23079, 25768));

    assert_eq!(
        indicators(&read_sniffed("urlhaus-filter-agh.txt", Format::Adblock)),
        all
    );
    for (file, format) in [
        ("urlhaus-filter-hosts.txt", Format::Hosts),
        ("urlhaus-filter-dnsmasq.conf", Format::Dnsmasq),
        ("urlhaus-filter-unbound.conf", Format::Unbound),
        ("urlhaus-filter-bind.conf", Format::BindZones),
        ("urlhaus-filter-dnscrypt-blocked-names.txt", Format::Plain),
    ] {
        assert_eq!(indicators(&read_sniffed(file, format)), names, "{file}");
    }
}

// Round trips through the writers.

type Writer = fn(&mut dyn std::io::Write, &[Indicator]) -> std::io::Result<()>;
/// Which indicators a writer's format can express.
type Expresses = fn(&Indicator) -> bool;

/// Each writer, the format that reads it, and which indicators it can express.
const WRITERS: [(Writer, Format, Expresses); 5] = [
    (write::text::plain, Format::Plain, |_| true),
    (write::text::hosts, Format::Hosts, is_name),
    (write::text::adblock, Format::Adblock, |i| {
        matches!(
            i,
            Indicator::Domain(_) | Indicator::Ip(_) | Indicator::Url(_)
        )
    }),
    (write::text::dnsmasq, Format::Dnsmasq, is_name),
    (write::text::unbound, Format::Unbound, is_name),
];

fn is_name(i: &Indicator) -> bool {
    matches!(i, Indicator::Domain(_))
}

/// Writes `items`, reads them back as `format`; returns the text and what was read.
fn round_trip(write: Writer, format: Format, items: &[Indicator]) -> (String, Parsed) {
    let mut out = Vec::new();
    write(&mut out, items).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8(out).unwrap_or_else(|e| panic!("{e}"));
    let options = ReadOptions {
        format: Some(format),
        ..ReadOptions::default()
    };
    let parsed = formats::read(text.as_bytes(), &options)
        .unwrap_or_else(|e| panic!("{format}: {e}\n{text}"));
    (text, parsed)
}

/// Two to four labels of `[a-z0-9]{1,10}`, kept when they make a valid name (an
/// all-digit last label does not).
fn domain() -> impl Strategy<Value = Domain> {
    prop::collection::vec("[a-z0-9]{1,10}", 2..=4).prop_filter_map("not a host name", |labels| {
        Domain::parse(&labels.join(".")).ok()
    })
}

fn indicator() -> impl Strategy<Value = Indicator> {
    prop_oneof![
        4 => domain().prop_map(Indicator::Domain),
        1 => domain().prop_map(Indicator::Wildcard),
        1 => any::<[u8; 4]>().prop_map(|o| Indicator::Ip(IpAddr::V4(Ipv4Addr::from(o)))),
        1 => any::<[u16; 8]>().prop_map(|s| Indicator::Ip(IpAddr::V6(Ipv6Addr::from(s)))),
        1 => (any::<[u8; 4]>(), 1u8..32).prop_filter_map("not a prefix", |(o, len)| {
            Indicator::parse(&format!("{}/{len}", Ipv4Addr::from(o)), Hint::Cidr).ok()
        }),
        1 => (domain(), "[a-zA-Z0-9._~-]{0,12}", "[a-z0-9=&]{0,8}").prop_filter_map(
            "not a URL",
            |(d, path, query)| {
                let text = if query.is_empty() {
                    format!("https://{d}/{path}")
                } else {
                    format!("https://{d}/{path}?{query}")
                };
                Url::parse(&text).ok().map(Indicator::Url)
            }
        ),
    ]
}

proptest! {
    /// Names written by every writer read back as the same names, and the output is
    /// recognised as its format by the sniffer.
    #[test]
    fn names_round_trip(names in prop::collection::vec(domain(), 0..40)) {
        let items: Vec<Indicator> = names.into_iter().map(Indicator::Domain).collect();
        let want: BTreeSet<Indicator> = items.iter().cloned().collect();
        for (write, format, _) in WRITERS {
            let (text, parsed) = round_trip(write, format, &items);
            prop_assert!(parsed.diagnostics.is_empty(), "{format}: {:?}", parsed.diagnostics);
            prop_assert!(parsed.records.iter().all(|r| r.polarity == Polarity::Block));
            let got: Result<BTreeSet<Indicator>, _> =
                parsed.records.iter().map(|r| r.normalise()).collect();
            prop_assert_eq!(got.as_ref().ok(), Some(&want), "{}\n{}", format, text);
            if !items.is_empty() {
                prop_assert_eq!(formats::sniff(&text), Some(format), "{}", text);
            }
        }
    }

    /// With every kind mixed in, each writer keeps exactly what its format expresses.
    #[test]
    fn mixed_kinds_round_trip(items in prop::collection::vec(indicator(), 0..40)) {
        for (write, format, expresses) in WRITERS {
            let want: BTreeSet<Indicator> = items.iter().filter(|i| expresses(i)).cloned().collect();
            let (text, parsed) = round_trip(write, format, &items);
            prop_assert!(parsed.diagnostics.is_empty(), "{format}: {:?}", parsed.diagnostics);
            let got: Result<BTreeSet<Indicator>, _> =
                parsed.records.iter().map(|r| r.normalise()).collect();
            prop_assert_eq!(got.as_ref().ok(), Some(&want), "{}\n{}", format, text);
        }
    }
}

/// Fragments of each syntax, so that random input reaches deep into the readers.
const PIECES: &[&str] = &[
    "||",
    "|",
    "^",
    "$",
    "@@",
    "*",
    "#",
    "##",
    "!",
    "/",
    "//",
    "/*",
    "*/",
    "\"",
    "'",
    "{",
    "}",
    ";",
    ":",
    "=",
    ",",
    "~",
    "[",
    "]",
    " ",
    "\t",
    "\n",
    "\r\n",
    "address",
    "server",
    "local",
    "local-zone",
    "local-data",
    "zone",
    "view",
    "type",
    "master",
    "always_null",
    "transparent",
    "0.0.0.0",
    "::",
    "a.example",
    "localhost",
    "http://",
    "dnstype=A",
    "important",
    "badfilter",
    "é",
    "\u{feff}",
];

proptest! {
    /// No input makes a reader panic; each returns records, diagnostics or an error.
    #[test]
    fn readers_never_panic(parts in prop::collection::vec(prop::sample::select(PIECES), 0..60)) {
        let text = parts.concat();
        for format in [Format::Adblock, Format::Dnsmasq, Format::Unbound, Format::BindZones] {
            let _ = formats::readers::parse(format, &text, &ReadOptions::default());
        }
    }

    #[test]
    fn readers_never_panic_on_any_text(text in any::<String>()) {
        for format in [Format::Adblock, Format::Dnsmasq, Format::Unbound, Format::BindZones] {
            let _ = formats::readers::parse(format, &text, &ReadOptions::default());
        }
    }
}
