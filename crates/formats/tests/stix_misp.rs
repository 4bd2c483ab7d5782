//! The STIX and MISP readers against real published files and against the metadata
//! they must carry over.
//!
//! Real files are read in place from `../shared/data` (never copied into the repo).
//! Expected counts were established independently of the readers with `jq` (the
//! commands are in the comments), so a reader change that drops or invents records
//! shows up as a count mismatch.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use expect_test::{Expect, expect};
use formats::readers::{misp, stix};
use formats::{Format, Location, Parsed, ReadError, summarise};
use indicator::Kind;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

fn data(relative: &str) -> String {
    let path = data_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Records, diagnostics and unique indicators by kind (domain, url, ip, cidr).
fn counts(parsed: &Parsed) -> (usize, usize, [usize; 4]) {
    let summary = summarise(parsed);
    let unique = Kind::ALL.map(|k| summary.unique.get(&k).copied().unwrap_or(0));
    assert_eq!(summary.rejected, 0, "{:?}", summary.first_rejects);
    (parsed.records.len(), parsed.diagnostics.len(), unique)
}

/// Each record's value, hint and every metadata field that is set.
fn describe(parsed: &Parsed) -> String {
    let mut out = String::new();
    for r in &parsed.records {
        let _ = write!(out, "{} {:?} @{}", r.value, r.hint, r.at);
        if let Some(m) = &r.meta {
            if let Some(c) = m.category {
                let _ = write!(out, " category={c}");
            }
            if let Some(t) = m.tlp {
                let _ = write!(out, " tlp={t}");
            }
            if let Some(c) = m.confidence {
                let _ = write!(out, " confidence={c}");
            }
            if !m.tags.is_empty() {
                let _ = write!(out, " tags={}", m.tags.join(","));
            }
            if let Some(t) = m.first_seen {
                let _ = write!(out, " first_seen={t}");
            }
            if let Some(t) = m.last_seen {
                let _ = write!(out, " last_seen={t}");
            }
            if let Some(t) = m.valid_until {
                let _ = write!(out, " valid_until={t}");
            }
            if let Some(r) = &m.reference {
                let _ = write!(out, " ref={r}");
            }
            if let Some(r) = &m.reporter {
                let _ = write!(out, " reporter={r}");
            }
            if let Some(d) = &m.description {
                let _ = write!(out, " description={d:?}");
            }
            if m.revoked {
                out.push_str(" revoked");
            }
            if let Some(t) = m.to_ids {
                let _ = write!(out, " to_ids={t}");
            }
        }
        out.push('\n');
    }
    for d in &parsed.diagnostics {
        let _ = writeln!(out, "diag {d}");
    }
    out
}

#[track_caller]
fn check_stix_meta(input: &str, expect: Expect) {
    match stix::parse(input) {
        Ok(parsed) => expect.assert_eq(&describe(&parsed)),
        Err(e) => panic!("{e}"),
    }
}

#[track_caller]
fn check_misp_meta(input: &str, expect: Expect) {
    match misp::parse(input) {
        Ok(parsed) => expect.assert_eq(&describe(&parsed)),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn stix_meta_from_markings_identities_and_labels() {
    check_stix_meta(
        r#"{"type":"bundle","id":"bundle--1","objects":[
            {"type":"identity","spec_version":"2.1","id":"identity--a","name":"Example CERT"},
            {"type":"marking-definition","spec_version":"2.1","id":"marking-definition--tlp2-amber",
             "extensions":{"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d":
                {"extension_type":"property-extension","tlp_2_0":"amber+strict"}}},
            {"type":"marking-definition","id":"marking-definition--tlp1-green",
             "definition_type":"tlp","definition":{"tlp":"green"}},
            {"type":"marking-definition","id":"marking-definition--statement",
             "definition_type":"statement","definition":{"statement":"Copyright"}},
            {"type":"indicator","spec_version":"2.1","id":"indicator--1",
             "created_by_ref":"identity--a","name":"evil.example","description":"phishing kit host",
             "indicator_types":["malicious-activity"],"labels":["phishing","kit"],
             "pattern":"[domain-name:value = 'evil.example']","pattern_type":"stix",
             "valid_from":"2026-08-16T01:04:58.000Z","valid_until":"2026-09-16T00:00:00Z",
             "confidence":85,"revoked":true,
             "object_marking_refs":["marking-definition--tlp2-amber","marking-definition--statement"]},
            {"type":"indicator","id":"indicator--2","name":"only a name",
             "created_by_ref":"identity--unknown","labels":["misp:to_ids=\"True\"","TLP:GREEN","c2"],
             "pattern":"[url:value = 'http://evil.example/gate.php']",
             "object_marking_refs":["marking-definition--tlp1-green"]},
            {"type":"indicator","id":"indicator--3","confidence":1000,
             "pattern":"[ipv4-addr:value = '192.0.2.1']",
             "object_marking_refs":["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
                                    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"]}
        ]}"#,
        expect![[r#"
            evil.example Domain @$.objects[4].pattern category=phishing tlp=amber+strict confidence=85 tags=phishing,kit,malicious-activity first_seen=2026-08-16T01:04:58Z valid_until=2026-09-16T00:00:00Z ref=indicator--1 reporter=Example CERT description="phishing kit host" revoked
            http://evil.example/gate.php Url @$.objects[5].pattern category=c2 tlp=green tags=misp:to_ids="True",c2 ref=indicator--2 description="only a name" to_ids=true
            192.0.2.1 Ip @$.objects[6].pattern tlp=red confidence=100 ref=indicator--3
        "#]],
    );
}

#[test]
fn stix_real_tweetfeed_meta() {
    // The first indicator of the TweetFeed bundle (objects[2]): identity "TweetFeed",
    // TLP:CLEAR through the TLP 2.0 marking, label "phishing".
    let parsed = stix::parse(&data("stix/tweetfeed/tweetfeed_week_2026-08-22.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut first = parsed.clone();
    first.records.truncate(1);
    first.diagnostics.clear();
    expect![[r#"
        hndjsy.com Domain @$.objects[2].pattern category=phishing tlp=clear tags=phishing,malicious-activity first_seen=2026-08-16T01:04:58Z ref=indicator--19dbf62a-d916-56f7-8d00-f8737075f7d1 reporter=TweetFeed description="IOC reported by @masaomi346 on Twitter/X."
    "#]]
    .assert_eq(&describe(&first));
}

/// STIX files: (path, records, diagnostics, unique [domain, url, ip, cidr]).
///
/// Records are the indicators whose whole pattern is one supported comparison; every
/// other indicator in these files is one "unsupported pattern" diagnostic. Checked with
/// `jq '[.objects[]|select(.type=="indicator")|.pattern]' FILE`, counting the patterns
/// that match `^\[((domain-name|url|ipv4-addr|ipv6-addr):value = '[^']*'|network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '[^']*')\]$`
/// (records) and the rest (diagnostics), against SOURCES.md's indicator totals
/// (Talos 42, 422, 350; TweetFeed 1536; apt1 12). Unique counts are from
/// `jq -r '…pattern' | sort -u` per object type; TweetFeed's 683 URLs are 682 once
/// normalised (`http://jokermav.online` with and without `#ThreatIntel`).
const STIX_FILES: &[(&str, usize, usize, [usize; 4])] = &[
    // 39 domain-name + 3 network-traffic addresses.
    ("stix/talos/US-Toll-Road-SMS.json", 42, 0, [39, 0, 3, 0]),
    // 387 domain-name + 27 url + 4 network-traffic; 4 file:hashes.SHA256.
    (
        "stix/talos/dissecting-the-jwr-phishing-framework.json",
        418,
        4,
        [387, 27, 4, 0],
    ),
    // 128 domain-name + 135 url + 24 network-traffic; 63 file:hashes.SHA256.
    (
        "stix/talos/timbrestealer-campaign-targets-mexican-users.json",
        287,
        63,
        [128, 135, 24, 0],
    ),
    // 575 domain-name + 683 url + 162 ipv4-addr; 88 SHA-256 + 28 MD5 file hashes.
    (
        "stix/tweetfeed/tweetfeed_week_2026-08-22.json",
        1420,
        116,
        [575, 682, 162, 0],
    ),
    // 3 domain-name + 4 ipv4-addr /15 prefixes; 3 file:hashes.md5 + 2 x509 ANDs.
    ("stix/oasis-examples/apt1.json", 7, 5, [3, 0, 0, 4]),
    (
        "stix/oasis-examples/indicator-for-malicious-url.json",
        1,
        0,
        [0, 1, 0, 0],
    ),
    // Its only indicator is a file hash.
    (
        "stix/oasis-examples/malware-indicator-for-file-hash.json",
        0,
        1,
        [0, 0, 0, 0],
    ),
    (
        "stix/oasis-examples/sighting-of-an-indicator.json",
        1,
        0,
        [0, 1, 0, 0],
    ),
    (
        "stix/oasis-examples/using-marking-definitions.json",
        1,
        0,
        [0, 0, 1, 0],
    ),
];

#[test]
fn stix_real_files() {
    for &(file, records, diagnostics, unique) in STIX_FILES {
        let text = data(file);
        assert_eq!(formats::sniff(&text), Some(Format::Stix), "{file}");
        let parsed = stix::parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            counts(&parsed),
            (records, diagnostics, unique),
            "{file}: {:#?}",
            parsed.diagnostics.first()
        );
        for d in &parsed.diagnostics {
            assert!(
                matches!(&d.at, Location::Path(p) if p.ends_with(".pattern"))
                    && d.message.starts_with("unsupported pattern: "),
                "{file}: {d}"
            );
        }
    }
}

#[test]
fn stix_real_marking_definition_resolved() {
    // The indicator refers to the TLP:AMBER marking by id (defined in the bundle too)
    // and to a copyright statement, which is not a TLP.
    let parsed = stix::parse(&data("stix/oasis-examples/using-marking-definitions.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    expect![[r#"
        10.0.0.0 Ip @$.objects[1].pattern category=malware tlp=amber tags=malicious-activity first_seen=2017-04-14T13:07:49.812Z ref=indicator--33fe3b22-0201-47cf-85d0-97c02164528d reporter=Stark Industries description="Detected malicious activity from this address"
    "#]]
    .assert_eq(&describe(&parsed));
}

/// MISP event files: (path, records, unique [domain, url, ip, cidr]). Each has exactly
/// one diagnostic: the summary of attributes of other types.
///
/// Records are the non-deleted attributes of types domain, hostname, url, ip-dst and
/// ip-src (plus `…|port`), plus two per `domain|ip`, in `Attribute[]` and in
/// `Object[].Attribute[]`, counted with
/// `jq '[(if .response then .response[].Event else .Event end) | (.Attribute[]?, (.Object[]? | select(.deleted != true) | .Attribute[]?)) | select(.deleted != true) | .type]'`
/// and grouped by type. The attribute totals match SOURCES.md (9, 370, 13, 321, 101,
/// 191, 111, 100, 144, 59, 141, 299, 294, 465, 172).
const MISP_FILES: &[(&str, usize, [usize; 4])] = &[
    // 9 attributes, none a name, URL or address.
    (
        "misp/circl-osint/57c4445b-c548-4654-af0b-4be3950d210f.json",
        0,
        [0, 0, 0, 0],
    ),
    // 3 domain + 21 hostname + 14 url + 9 ip-dst.
    (
        "misp/circl-osint/asert-2016-03_long_event.json",
        47,
        [24, 14, 9, 0],
    ),
    // 1 hostname + 5 url.
    ("misp/circl-osint/cerber_HTML_event.json", 6, [1, 5, 0, 0]),
    // 270 domain + 40 ip-dst + 4 domain|ip (2 records each).
    ("misp/eset/glupteba.misp-event.json", 318, [272, 0, 44, 0]),
    // 20 domain + 49 url.
    (
        "misp/eset/misp-dukes-operation-ghost-event.json",
        69,
        [20, 49, 0, 0],
    ),
    // 67 domain + 1 ip-dst.
    ("misp/eset/misp-kryptocibule.json", 68, [67, 0, 1, 0]),
    // 62 domain + 22 ip-dst + 3 domain|ip (their domains repeat domain attributes).
    ("misp/eset/oceanlotus.misp.event.json", 90, [62, 0, 25, 0]),
    // All 100 attributes are inside objects: 41 domain + 3 url + 29 ip-dst.
    ("misp/eset/swc-candiru_misp.json", 73, [41, 3, 29, 0]),
    // TweetFeed daily events: domain + url + ip-dst (hashes skipped).
    (
        "misp/tweetfeed-feed/06159a36-6012-5d68-bff5-7fac1110a2a6.json",
        112,
        [32, 55, 25, 0],
    ),
    (
        "misp/tweetfeed-feed/67317f07-5461-555f-9491-d7685196f614.json",
        58,
        [28, 29, 1, 0],
    ),
    (
        "misp/tweetfeed-feed/b34e0bcb-0adc-500b-a611-1e801c6d0698.json",
        132,
        [51, 61, 20, 0],
    ),
    // 130 distinct url values, but `http://jokermav.online` and
    // `http://jokermav.online#ThreatIntel` are one URL once the fragment is dropped.
    (
        "misp/tweetfeed-feed/ba5bae2f-de28-5149-a1c6-2b89b55c9b51.json",
        280,
        [87, 129, 63, 0],
    ),
    (
        "misp/tweetfeed-feed/c4a04a92-3722-5f53-8c25-9b3742fc79c4.json",
        279,
        [134, 135, 10, 0],
    ),
    (
        "misp/tweetfeed-feed/cbaa3579-deb7-524b-accb-765151c0ce58.json",
        443,
        [204, 216, 23, 0],
    ),
    (
        "misp/tweetfeed-feed/ec185261-dda2-5256-bf1a-f93d913192fa.json",
        154,
        [56, 73, 25, 0],
    ),
];

#[test]
fn misp_real_files() {
    for &(file, records, unique) in MISP_FILES {
        let text = data(file);
        assert_eq!(formats::sniff(&text), Some(Format::Misp), "{file}");
        let parsed = misp::parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            counts(&parsed),
            (records, 1, unique),
            "{file}: {:#?}",
            parsed.diagnostics
        );
        assert!(
            parsed.diagnostics[0]
                .message
                .contains(" of other types skipped (types: "),
            "{file}: {}",
            parsed.diagnostics[0]
        );
    }
}

#[test]
fn misp_real_meta() {
    // swc-candiru: an attribute inside an object, event by ESET with no TLP tag.
    let parsed =
        misp::parse(&data("misp/eset/swc-candiru_misp.json")).unwrap_or_else(|e| panic!("{e}"));
    let mut first = parsed.clone();
    first.records.truncate(1);
    first.diagnostics.clear();
    expect![[r#"
        91.219.239.191 Ip @$.response[0].Event.Object[0].Attribute[0].value tags=ESET,osint:source-type="blog-post" first_seen=2021-11-16T01:03:15Z ref=2c8ccce9-c69e-47e8-b0a9-baa9e537c0c2 reporter=ESET description="Strategic web compromised in the Middle East with a pinch of Candiru" to_ids=false
    "#]]
    .assert_eq(&describe(&first));
}

#[test]
fn misp_meta_from_tags_and_times() {
    check_misp_meta(
        r#"{"Event":{"info":"Phishing wave","Orgc":{"name":"Example CSIRT"},"Org":{"name":"Local"},
            "Tag":[{"name":"tlp:amber"},{"name":"misp-galaxy:threat-actor=\"X\""},
                   {"name":"circl:incident-classification=\"phishing\""}],
            "Attribute":[
              {"type":"domain","value":"a.example","uuid":"u-1","to_ids":true,
               "timestamp":"1787187115","first_seen":"2026-08-01T10:00:00.000000+00:00",
               "last_seen":"2026-08-02T10:00:00+02:00",
               "Tag":[{"name":"TLP:RED"},{"name":"botnet_cc"}]},
              {"type":"url","value":"http://b.example/","to_ids":"0","timestamp":1787187115,
               "Tag":[{"name":"tlp:ex:chr"}]},
              {"type":"ip-dst","value":"192.0.2.7","first_seen":null,"timestamp":""}
            ]}}"#,
        expect![[r#"
            a.example Domain @$.Event.Attribute[0].value category=c2 tlp=red tags=botnet_cc,misp-galaxy:threat-actor="X",circl:incident-classification="phishing" first_seen=2026-08-01T10:00:00Z last_seen=2026-08-02T08:00:00Z ref=u-1 reporter=Example CSIRT description="Phishing wave" to_ids=true
            http://b.example/ Url @$.Event.Attribute[1].value category=phishing tlp=amber tags=tlp:ex:chr,misp-galaxy:threat-actor="X",circl:incident-classification="phishing" first_seen=2026-08-20T00:51:55Z reporter=Example CSIRT description="Phishing wave" to_ids=false
            192.0.2.7 Ip @$.Event.Attribute[2].value category=phishing tlp=amber tags=misp-galaxy:threat-actor="X",circl:incident-classification="phishing" reporter=Example CSIRT description="Phishing wave"
        "#]],
    );
}

#[test]
fn misp_real_feed() {
    // manifest.json lists 365 events (`jq 'keys|length'`); 7 event files are present,
    // so 358 "missing" diagnostics, plus one "other types" summary per loaded event.
    // Records: the sum of the 7 event files above (112+58+132+280+279+443+154).
    let dir = data_dir().join("misp/tweetfeed-feed");
    let manifest = data("misp/tweetfeed-feed/manifest.json");
    assert_eq!(formats::sniff(&manifest), Some(Format::MispFeed));
    let mut loaded = 0;
    let mut load = |uuid: &str| {
        let file = dir.join(format!("{uuid}.json"));
        let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        loaded += 1;
        Ok(bytes)
    };
    let parsed = misp::parse_feed(&manifest, &mut load).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded, 7);
    assert_eq!(parsed.format, Format::MispFeed);
    assert_eq!(counts(&parsed), (1458, 365, [575, 682, 162, 0]));
    let missing = parsed
        .diagnostics
        .iter()
        .filter(|d| d.message.contains(": missing ("))
        .count();
    assert_eq!(missing, 358);
    // Records name their event file.
    assert!(matches!(
        &parsed.records[0].at,
        Location::Path(p) if p.ends_with(".json:$.Event.Attribute[0].value")
    ));
}

#[test]
fn misp_feed_problems_are_diagnostics() {
    const GOOD: &str = "11111111-1111-1111-1111-111111111111";
    const MISSING: &str = "22222222-2222-2222-2222-222222222222";
    const BROKEN: &str = "33333333-3333-3333-3333-333333333333";
    const GZIPPED: &str = "44444444-4444-4444-4444-444444444444";
    const WRONG: &str = "55555555-5555-5555-5555-555555555555";
    let manifest = format!(
        r#"{{"{GOOD}":{{"info":"a"}},"{MISSING}":{{}},"{BROKEN}":{{}},"{GZIPPED}":{{}},
            "{WRONG}":{{}},"../../etc/passwd":{{}}}}"#
    );
    let gzipped = {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let event = br#"{"Event":{"Attribute":[{"type":"hostname","value":"gz.example"}]}}"#;
        enc.write_all(event).unwrap_or_else(|e| panic!("{e}"));
        enc.finish().unwrap_or_else(|e| panic!("{e}"))
    };
    let mut asked = Vec::new();
    let mut load = |uuid: &str| -> Result<Vec<u8>, String> {
        asked.push(uuid.to_owned());
        match uuid {
            GOOD => Ok(
                br#"{"Event":{"Attribute":[{"type":"domain","value":"good.example"}]}}"#.to_vec(),
            ),
            BROKEN => Ok(b"{\"Event\":{\"Attribute\":[\n{".to_vec()),
            GZIPPED => Ok(gzipped.clone()),
            WRONG => Ok(br#"{"type":"bundle","objects":[]}"#.to_vec()),
            _ => Err("no such file".to_owned()),
        }
    };
    let parsed = misp::parse_feed(&manifest, &mut load).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.format, Format::MispFeed);
    expect![[r#"
        good.example Domain @11111111-1111-1111-1111-111111111111.json:$.Event.Attribute[0].value
        gz.example Domain @44444444-4444-4444-4444-444444444444.json:$.Event.Attribute[0].value
        diag $: event key "../../etc/passwd" is not a UUID, not loaded
        diag $['22222222-2222-2222-2222-222222222222']: event 22222222-2222-2222-2222-222222222222: missing (no such file)
        diag $['33333333-3333-3333-3333-333333333333']: event 33333333-3333-3333-3333-333333333333: line 2: column 1: invalid JSON: EOF while parsing an object
        diag $['55555555-5555-5555-5555-555555555555']: event 55555555-5555-5555-5555-555555555555: file: not a MISP event: expected {"Event":{…}} or {"response":[{"Event":{…}}, …]}
    "#]]
    .assert_eq(&describe(&parsed));
    // The non-UUID key was never handed to the loader.
    assert_eq!(asked, [GOOD, MISSING, BROKEN, GZIPPED, WRONG]);
}

#[track_caller]
fn assert_error_at_line(result: Result<Parsed, ReadError>) {
    match result {
        Err(ReadError {
            at: Some(Location::Line(n)),
            message,
        }) => assert!(
            n > 1 && message.contains("invalid JSON"),
            "line {n}: {message}"
        ),
        other => panic!("expected an error with a line, got {other:?}"),
    }
}

#[test]
fn truncated_real_files_are_errors_with_a_line() {
    // Pretty-printed files, so the error is past line 1 (TweetFeed and Talos bundles
    // are one line each).
    let stix_text = data("stix/oasis-examples/apt1.json");
    let misp_text = data("misp/eset/glupteba.misp-event.json");
    let manifest = data("misp/tweetfeed-feed/manifest.json");
    let half = |s: &str| {
        let mut end = s.len() / 2;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    };
    assert_error_at_line(stix::parse(&half(&stix_text)));
    assert_error_at_line(misp::parse(&half(&misp_text)));
    // The manifest is one line: the error is on line 1.
    assert!(matches!(
        misp::parse_feed(&half(&manifest), &mut |_| Err(String::new())),
        Err(ReadError {
            at: Some(Location::Line(1)),
            ..
        })
    ));
}

#[test]
fn valid_json_of_the_wrong_shape_is_an_error() {
    let wrong = [
        r#"{"foo":1}"#,
        "42",
        "null",
        r#""bundle""#,
        r#"{"type":"bundle","objects":7}"#,
    ];
    for text in wrong {
        assert!(stix::parse(text).is_err(), "stix {text}");
        assert!(misp::parse(text).is_err(), "misp {text}");
    }
    // A MISP event is not STIX, and a STIX bundle is not MISP.
    let event = data("misp/circl-osint/cerber_HTML_event.json");
    let bundle = data("stix/oasis-examples/apt1.json");
    assert!(stix::parse(&event).is_err());
    assert!(misp::parse(&bundle).is_err());
    for manifest in [r#"{"foo":1}"#, "[]", r#"{"Event":{}}"#, "7"] {
        assert!(
            misp::parse_feed(manifest, &mut |_| Err(String::new())).is_err(),
            "{manifest}"
        );
    }
    // An empty manifest is an empty feed.
    let empty = misp::parse_feed("{}", &mut |_| Err(String::new()));
    assert!(matches!(empty, Ok(p) if p.records.is_empty() && p.diagnostics.is_empty()));
}
