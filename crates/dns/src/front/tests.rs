//! The query path with upstream answers placed in the cache (no network): every
//! policy action, chain rewrites, case and ID patching, truncation. Answers are
//! decoded with `domain`, an independent reader of what we wrote.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use domain::base::opt::exterr::ExtendedError;
use domain::base::{Message, ParsedName};
use domain::rdata::AllRecordData;
use expect_test::{Expect, expect};

use super::message::{
    self, FLAG_QR, FLAG_RA, FLAG_RD, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_SOA, TYPE_TXT,
};
use super::*;

/// A screen over two maps: query names and chain names, and addresses.
#[derive(Default)]
struct TestScreen {
    names: HashMap<String, Verdict>,
    addrs: HashMap<IpAddr, Verdict>,
}

impl Screen for TestScreen {
    fn qname(&self, qname: &str, _client: IpAddr) -> Option<Verdict> {
        self.names.get(qname).cloned()
    }

    fn answer(&self, names: &[Box<str>], addrs: &[IpAddr]) -> Option<(usize, Verdict)> {
        for (i, n) in names.iter().enumerate() {
            if let Some(v) = self.names.get(&**n) {
                return Some((i + 1, v.clone()));
            }
        }
        addrs
            .iter()
            .find_map(|a| self.addrs.get(a).map(|v| (names.len(), v.clone())))
    }
}

fn zone() -> Arc<PolicyZone> {
    let soa = PolicySoa {
        ttl: 60,
        mname: "localhost".into(),
        rname: "hostmaster.one.rpz".into(),
        serial: 7,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: 30,
    };
    Arc::new(PolicyZone::new("one.rpz", soa).unwrap_or_else(|e| panic!("{e}")))
}

fn verdict(rule: &str, action: Policy) -> Verdict {
    Verdict {
        action,
        zone: zone(),
        rule: rule.into(),
        shadow: false,
    }
}

fn front(screen: TestScreen) -> Front {
    Front::new(Arc::new(screen), FrontConfig::default())
}

fn wire(name: &str) -> Vec<u8> {
    message::text_wire(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Puts an upstream answer for `name`/`qtype` in the cache: records given as
/// (owner, type, ttl, data), names uncompressed.
fn cache(front: &Front, name: &str, qtype: u16, rcode: u8, records: &[(&str, u16, u32, Vec<u8>)]) {
    let qname = wire(name);
    let mut m = Vec::new();
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&(FLAG_QR | FLAG_RD | FLAG_RA | u16::from(rcode)).to_be_bytes());
    let answers = records.iter().filter(|r| r.1 != TYPE_SOA).count() as u16;
    let authority = records.len() as u16 - answers;
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&answers.to_be_bytes());
    m.extend_from_slice(&authority.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&qname);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    let mut ordered: Vec<_> = records.iter().filter(|r| r.1 != TYPE_SOA).collect();
    ordered.extend(records.iter().filter(|r| r.1 == TYPE_SOA));
    for (owner, rtype, ttl, data) in ordered {
        // As servers do: the question name as a pointer, others spelled out.
        if *owner == name {
            m.extend_from_slice(&[0xC0, 12]);
        } else {
            m.extend_from_slice(&wire(owner));
        }
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(data);
    }
    let answer = message::parse_answer(&m, 1, &qname, qtype).unwrap_or_else(|e| panic!("{e:?}"));
    let key = Key::new(&qname, qtype, false, false);
    front
        .inner
        .cache
        .insert(&key, Entry::new(&key, answer, Instant::now()));
}

fn a(addr: [u8; 4]) -> Vec<u8> {
    addr.to_vec()
}

/// A query as a client sends it (name spelled as given), with or without EDNS.
fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut labels = Vec::new();
    for l in name.split('.') {
        labels.push(l.len() as u8);
        labels.extend_from_slice(l.as_bytes());
    }
    labels.push(0);
    let mut q = message::build_query(0xABCD, &labels, qtype, false, false, 4096);
    if !edns {
        q.truncate(q.len() - 11);
        q[11] = 0;
    }
    q
}

/// The answer as `domain` reads it: rcode and flags, then records, then EDE.
fn show(out: &[u8]) -> String {
    let msg = Message::from_octets(out.to_vec()).unwrap_or_else(|e| panic!("{e}"));
    let h = msg.header();
    let mut s = format!(
        "{} id={:x}{}{}{}\n",
        h.rcode(),
        h.id(),
        if h.tc() { " tc" } else { "" },
        if h.aa() { " aa" } else { "" },
        if h.ra() { " ra" } else { "" },
    );
    if let Ok(q) = msg.sole_question() {
        s.push_str(&format!("q {} {}\n", q.qname(), q.qtype()));
    }
    let sections = [
        ("an", msg.answer().unwrap_or_else(|e| panic!("{e}"))),
        ("ns", msg.authority().unwrap_or_else(|e| panic!("{e}"))),
        ("ar", msg.additional().unwrap_or_else(|e| panic!("{e}"))),
    ];
    for (label, section) in sections {
        for rr in section.limit_to::<AllRecordData<_, ParsedName<_>>>() {
            let rr = rr.unwrap_or_else(|e| panic!("{e}"));
            if rr.rtype() == domain::base::Rtype::OPT {
                continue;
            }
            s.push_str(&format!(
                "{label} {} {} {} {}\n",
                rr.owner(),
                rr.ttl().as_secs(),
                rr.rtype(),
                rr.data()
            ));
        }
    }
    if let Some(opt) = msg.opt() {
        s.push_str(&format!("opt udp={}", opt.udp_payload_size()));
        for e in opt.opt().iter::<ExtendedError<_>>() {
            let e = e.unwrap_or_else(|e| panic!("{e}"));
            s.push_str(&format!(" ede={e}"));
        }
        s.push('\n');
    }
    s
}

#[track_caller]
fn check(front: &Front, q: &[u8], tcp: bool, expect: Expect) {
    let mut out = Vec::new();
    let shown = match front.answer_now(
        q,
        "192.0.2.200".parse().unwrap_or_else(|e| panic!("{e}")),
        tcp,
        &mut out,
    ) {
        Outcome::Reply => show(&out),
        other => format!("{other:?}\n"),
    };
    expect.assert_eq(&shown);
}

/// The test zone: `alias -> mid -> www (A 192.0.2.10)`, `ip` with a listed address.
fn populated(screen: TestScreen) -> Front {
    let f = front(screen);
    cache(
        &f,
        "www.up.test",
        TYPE_A,
        0,
        &[("www.up.test", TYPE_A, 300, a([192, 0, 2, 10]))],
    );
    cache(
        &f,
        "alias.up.test",
        TYPE_A,
        0,
        &[
            ("alias.up.test", TYPE_CNAME, 300, wire("mid.up.test")),
            ("mid.up.test", TYPE_CNAME, 120, wire("www.up.test")),
            ("www.up.test", TYPE_A, 300, a([192, 0, 2, 10])),
        ],
    );
    cache(
        &f,
        "ip.up.test",
        TYPE_A,
        0,
        &[("ip.up.test", TYPE_A, 300, a([198, 51, 100, 7]))],
    );
    f
}

#[test]
fn unlisted_cached_name_keeps_the_clients_case_and_id() {
    let f = populated(TestScreen::default());
    check(
        &f,
        &query("WwW.Up.TEST", TYPE_A, true),
        false,
        expect![[r#"
            NOERROR id=abcd ra
            q WwW.Up.TEST A
            an WwW.Up.TEST 300 A 192.0.2.10
            opt udp=1232
        "#]],
    );
    // Without EDNS, no OPT record comes back.
    check(
        &f,
        &query("www.up.test", TYPE_A, false),
        false,
        expect![[r#"
            NOERROR id=abcd ra
            q www.up.test A
            an www.up.test 300 A 192.0.2.10
        "#]],
    );
    assert_eq!(f.stats().cache_hits.load(Ordering::Relaxed), 2);
    check(
        &f,
        &query("other.up.test", TYPE_A, true),
        false,
        expect![[r#"
        Upstream
    "#]],
    );
}

#[test]
fn qname_rules_answer_without_upstream() {
    let mut s = TestScreen::default();
    s.names.insert(
        "blocked.up.test".into(),
        verdict("blocked.up.test", Policy::Nxdomain),
    );
    s.names.insert(
        "nodata.up.test".into(),
        verdict("*.up.test", Policy::Nodata),
    );
    s.names
        .insert("drop.up.test".into(), verdict("drop.up.test", Policy::Drop));
    s.names.insert(
        "tcp.up.test".into(),
        verdict("tcp.up.test", Policy::TcpOnly),
    );
    let local = LocalData::new(&[
        ("A".into(), "10.1.2.3".into()),
        ("TXT".into(), "\"local data\"".into()),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    s.names.insert(
        "local.up.test".into(),
        verdict("local.up.test", Policy::Local(Arc::new(local))),
    );
    let f = populated(s);
    check(
        &f,
        &query("Blocked.up.test", TYPE_A, true),
        false,
        expect![[r#"
            NXDOMAIN id=abcd ra
            q Blocked.up.test A
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
            opt udp=1232 ede=Filtered zone one.rpz rule blocked.up.test
        "#]],
    );
    check(
        &f,
        &query("blocked.up.test", TYPE_A, false),
        false,
        expect![[r#"
            NXDOMAIN id=abcd ra
            q blocked.up.test A
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
        "#]],
    );
    check(
        &f,
        &query("nodata.up.test", TYPE_AAAA, true),
        false,
        expect![[r#"
            NOERROR id=abcd ra
            q nodata.up.test AAAA
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
            opt udp=1232 ede=Filtered zone one.rpz rule *.up.test
        "#]],
    );
    check(
        &f,
        &query("drop.up.test", TYPE_A, true),
        false,
        expect![[r#"
        Drop
    "#]],
    );
    check(
        &f,
        &query("tcp.up.test", TYPE_A, true),
        false,
        expect![[r#"
            NOERROR id=abcd tc ra
            q tcp.up.test A
            opt udp=1232
        "#]],
    );
    // Over TCP the answer is the ordinary one (here: not cached, so upstream).
    check(
        &f,
        &query("tcp.up.test", TYPE_A, true),
        true,
        expect![[r#"
        Upstream
    "#]],
    );
    check(
        &f,
        &query("local.up.test", TYPE_A, true),
        false,
        expect![[r#"
            NOERROR id=abcd ra
            q local.up.test A
            an local.up.test 5 A 10.1.2.3
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
            opt udp=1232 ede=Filtered zone one.rpz rule local.up.test
        "#]],
    );
    check(
        &f,
        &query("local.up.test", TYPE_TXT, true),
        false,
        expect![[r#"
            NOERROR id=abcd ra
            q local.up.test TXT
            an local.up.test 5 TXT "local data"
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
            opt udp=1232 ede=Filtered zone one.rpz rule local.up.test
        "#]],
    );
    check(
        &f,
        &query("local.up.test", TYPE_AAAA, false),
        false,
        expect![[r#"
            NOERROR id=abcd ra
            q local.up.test AAAA
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
        "#]],
    );
}

#[test]
fn chain_and_address_rules_rewrite_where_they_match() {
    let mut s = TestScreen::default();
    s.names.insert(
        "mid.up.test".into(),
        verdict("mid.up.test", Policy::Nxdomain),
    );
    s.addrs.insert(
        [198, 51, 100, 7].into(),
        verdict("32.7.100.51.198.rpz-ip", Policy::Nxdomain),
    );
    let f = populated(s);
    check(
        &f,
        &query("alias.up.test", TYPE_A, true),
        false,
        expect![[r#"
            NXDOMAIN id=abcd ra
            q alias.up.test A
            an alias.up.test 300 CNAME mid.up.test.
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
            opt udp=1232 ede=Filtered zone one.rpz rule mid.up.test
        "#]],
    );
    check(
        &f,
        &query("ip.up.test", TYPE_A, true),
        false,
        expect![[r#"
            NXDOMAIN id=abcd ra
            q ip.up.test A
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
            opt udp=1232 ede=Filtered zone one.rpz rule 32.7.100.51.198.rpz-ip
        "#]],
    );
    // The chain's last name matched: both CNAMEs kept.
    let mut s = TestScreen::default();
    s.names
        .insert("www.up.test".into(), verdict("www.up.test", Policy::Nodata));
    let f = populated(s);
    check(
        &f,
        &query("alias.up.test", TYPE_A, true),
        false,
        expect![[r#"
            NOERROR id=abcd ra
            q alias.up.test A
            an alias.up.test 300 CNAME mid.up.test.
            an mid.up.test 120 CNAME www.up.test.
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
            opt udp=1232 ede=Filtered zone one.rpz rule www.up.test
        "#]],
    );
}

#[test]
fn a_name_cached_before_its_rule_is_blocked_once_listed() {
    // The cache holds the true answer; the policy is applied on the way out.
    let f = populated(TestScreen::default());
    let mut out = Vec::new();
    let client: IpAddr = [192, 0, 2, 1].into();
    assert_eq!(
        f.answer_now(&query("www.up.test", TYPE_A, true), client, false, &mut out),
        Outcome::Reply
    );
    let mut s = TestScreen::default();
    s.names.insert(
        "www.up.test".into(),
        verdict("www.up.test", Policy::Nxdomain),
    );
    let blocked = Front {
        inner: Arc::new(Inner {
            screen: Arc::new(s),
            cache: std::mem::replace(
                &mut Arc::into_inner(f.inner)
                    .unwrap_or_else(|| panic!("shared"))
                    .cache,
                Cache::new(0),
            ),
            upstreams: Upstreams::new(Vec::new(), DEFAULT_UPSTREAM_TIMEOUT),
            config: FrontConfig::default(),
            stats: FrontStats::default(),
            notify: std::sync::OnceLock::new(),
            observer: Arc::new(NoObserver),
        }),
    };
    check(
        &blocked,
        &query("www.up.test", TYPE_A, true),
        false,
        expect![[r#"
            NXDOMAIN id=abcd ra
            q www.up.test A
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
            opt udp=1232 ede=Filtered zone one.rpz rule www.up.test
        "#]],
    );
    // The alias to it is rewritten too, though the alias itself is not listed.
    check(
        &blocked,
        &query("alias.up.test", TYPE_A, true),
        false,
        expect![[r#"
            NXDOMAIN id=abcd ra
            q alias.up.test A
            an alias.up.test 300 CNAME mid.up.test.
            an mid.up.test 120 CNAME www.up.test.
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
            opt udp=1232 ede=Filtered zone one.rpz rule www.up.test
        "#]],
    );
}

#[test]
fn passthru_shadow_and_redirect() {
    let mut s = TestScreen::default();
    // PASSTHRU on the query name: the chain is not checked any further (as BIND).
    s.names.insert(
        "alias.up.test".into(),
        verdict("alias.up.test", Policy::Passthru),
    );
    s.names.insert(
        "www.up.test".into(),
        verdict("www.up.test", Policy::Nxdomain),
    );
    let mut shadow = verdict("ip.up.test", Policy::Nxdomain);
    shadow.shadow = true;
    s.names.insert("ip.up.test".into(), shadow);
    let garden = Redirect::new("www.up.test.").unwrap_or_else(|e| panic!("{e}"));
    s.names.insert(
        "redir.up.test".into(),
        verdict("redir.up.test", Policy::Redirect(Arc::new(garden))),
    );
    let f = populated(s);
    check(
        &f,
        &query("alias.up.test", TYPE_A, false),
        false,
        expect![[r#"
            NOERROR id=abcd ra
            q alias.up.test A
            an alias.up.test 120 CNAME mid.up.test.
            an mid.up.test 120 CNAME www.up.test.
            an www.up.test 120 A 192.0.2.10
        "#]],
    );
    check(
        &f,
        &query("ip.up.test", TYPE_A, false),
        false,
        expect![[r#"
            NOERROR id=abcd ra
            q ip.up.test A
            an ip.up.test 300 A 198.51.100.7
        "#]],
    );
    assert_eq!(f.stats().shadow.load(Ordering::Relaxed), 1);
    // The redirect target is resolved like any name (here from the cache).
    check(
        &f,
        &query("redir.up.test", TYPE_A, true),
        false,
        expect![[r#"
            NOERROR id=abcd ra
            q redir.up.test A
            an redir.up.test 5 CNAME www.up.test.
            an www.up.test 300 A 192.0.2.10
            ar one.rpz 30 SOA localhost. hostmaster.one.rpz. 7 3600 600 86400 30
            opt udp=1232 ede=Filtered zone one.rpz rule redir.up.test
        "#]],
    );
}

#[test]
fn large_answers_are_truncated_for_udp_clients() {
    let f = front(TestScreen::default());
    let records: Vec<(&str, u16, u32, Vec<u8>)> = (0..40u8)
        .map(|i| {
            (
                "big.up.test",
                TYPE_AAAA,
                60,
                vec![0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i],
            )
        })
        .collect();
    cache(&f, "big.up.test", TYPE_AAAA, 0, &records);
    check(
        &f,
        &query("big.up.test", TYPE_AAAA, false),
        false,
        expect![[r#"
            NOERROR id=abcd tc ra
            q big.up.test AAAA
        "#]],
    );
    let mut out = Vec::new();
    let client: IpAddr = [192, 0, 2, 1].into();
    assert_eq!(
        f.answer_now(
            &query("big.up.test", TYPE_AAAA, true),
            client,
            false,
            &mut out
        ),
        Outcome::Reply
    );
    assert_eq!(out.len(), 12 + 17 + 40 * 28 + 11);
    assert_eq!(
        f.answer_now(
            &query("big.up.test", TYPE_AAAA, false),
            client,
            true,
            &mut out
        ),
        Outcome::Reply
    );
    assert_eq!(out.len(), 12 + 17 + 40 * 28);
}

#[test]
fn bad_queries_get_formerr_notimp_refused() {
    let f = front(TestScreen::default());
    let mut q = query("x.up.test", TYPE_A, true);
    q[5] = 2;
    check(
        &f,
        &q,
        false,
        expect![[r#"
        FORMERR id=abcd ra
    "#]],
    );
    let mut out = Vec::new();
    let client: IpAddr = [192, 0, 2, 1].into();
    assert_eq!(
        f.answer_now(&q[..5], client, false, &mut out),
        Outcome::Drop
    );
    let mut chaos = query("version.bind", 16, false);
    let n = chaos.len();
    chaos[n - 1] = 3;
    check(
        &f,
        &chaos,
        false,
        expect![[r#"
        REFUSED id=abcd ra
        q version.bind TXT
    "#]],
    );
    check(
        &f,
        &query("up.test", 252, false),
        false,
        expect![[r#"
        NOTIMP id=abcd ra
        q up.test AXFR
    "#]],
    );
}

#[test]
fn fuzz_entry_point_checks_hold_for_plain_cases() {
    let mut s = TestScreen::default();
    s.names.insert(
        "blocked.up.test".into(),
        verdict("blocked.up.test", Policy::Nxdomain),
    );
    let garden = Redirect::new("www.up.test").unwrap_or_else(|e| panic!("{e}"));
    s.names.insert(
        "redir.up.test".into(),
        verdict("redir.up.test", Policy::Redirect(Arc::new(garden))),
    );
    let f = front(s);
    // An upstream answer for www.up.test A, as a server writes it.
    let mut up = message::build_query(0x4242, &wire("www.up.test"), TYPE_A, false, false, 1232);
    up.truncate(up.len() - 11);
    up[2] |= 0x80;
    up[7] = 1;
    up[11] = 0;
    up.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 10]);
    // The upstream answer does not answer other.up.test: no answer for it.
    for (name, n) in [
        ("www.up.test", 2),
        ("blocked.up.test", 2),
        ("redir.up.test", 2),
        ("other.up.test", 0),
    ] {
        let q = query(name, TYPE_A, true);
        let answers = fuzzing::drive(&f, &q, &up);
        assert_eq!(answers.len(), n, "{name}");
        for (tcp, a) in &answers {
            fuzzing::check_answer(&q, a, *tcp);
        }
    }
    // Garbage in: no panic, and whatever comes out is well framed.
    for junk in [&b""[..], b"\x00", &[0xFF; 40], &query("x", 1, true)[..20]] {
        for (tcp, a) in fuzzing::drive(&f, junk, junk) {
            fuzzing::check_answer(junk, &a, tcp);
        }
    }
}

/// Found by the `front_query` fuzz target: an upstream answer whose additional
/// record's owner is a bad compression pointer was passed on to the client. Every
/// owner of an upstream answer is now decompressed before it is accepted.
#[test]
fn regression_bad_pointer_in_an_additional_owner_is_not_passed_on() {
    let mut s = TestScreen::default();
    s.names.insert("d".into(), verdict("d", Policy::TcpOnly));
    let f = front(s);
    let input: &[u8] = &[
        0x00, 0x1e, 0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01,
        0x64, 0x00, 0x02, 0x10, 0x00, 0x01, 0x00, 0x80, 0x29, 0x04, 0xd0, 0x40, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x85, 0x85, 0xff, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01,
        0x64, 0x00, 0x02, 0x10, 0x00, 0x01, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0x7f, 0x00, 0x00, 0x00, 0x20, 0x12, 0x33, 0x01, 0x00,
    ];
    let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
    let (query, upstream) = input[2..].split_at(len);
    for (tcp, a) in fuzzing::drive(&f, query, upstream) {
        fuzzing::check_answer(query, &a, tcp);
    }
}

/// Records the NOTIFY messages handed over, and answers each with `ack`.
#[derive(Default)]
struct Notified(std::sync::Mutex<Vec<(Vec<u8>, SocketAddr)>>);

impl super::NotifyHandler for Notified {
    fn notify(&self, message: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((message.to_vec(), src));
        Some(b"ack".to_vec())
    }
}

#[test]
fn notify_messages_go_to_the_handler_and_queries_do_not() {
    let f = Front::new(Arc::new(TestScreen::default()), FrontConfig::default());
    let src: SocketAddr = "127.0.0.1:5300".parse().unwrap_or_else(|e| panic!("{e}"));
    let mut notify = query("z.rpz", TYPE_A, false);
    notify[2] = 4 << 3;
    let mut out = Vec::new();
    // No handler: answered as any other message.
    assert_eq!(f.notify(&notify, src, &mut out), None);
    let handler = Arc::new(Notified::default());
    assert!(f.set_notify_handler(handler.clone()).is_ok());
    assert!(f.set_notify_handler(handler.clone()).is_err());
    assert_eq!(f.notify(&notify, src, &mut out), Some(Outcome::Reply));
    assert_eq!(out, b"ack");
    let q = query("www.up.test", TYPE_A, true);
    assert_eq!(f.notify(&q, src, &mut out), None);
    assert_eq!(f.notify(&[0, 1], src, &mut out), None);
    let seen = handler
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert_eq!(seen, [(notify, src)]);
}

/// Every UDP loop over real loopback sockets: bursts from several clients (so
/// that the batched loop's batches fill), each burst blocked names, cached names
/// and names the upstream (the stub) must answer; every query answered once, with
/// its own ID, to the client that asked. An oversized datagram in the middle is
/// dropped and the loop goes on.
#[test]
fn udp_loops_answer_bursts_from_many_clients() {
    const CLIENTS: usize = 4;
    const PER_CLIENT: u16 = 120;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    for io in [Io::Threads, Io::Batch, Io::Tokio] {
        let stub = runtime
            .block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))
            .unwrap_or_else(|e| panic!("{e}"));
        let upstream = stub.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (stop_stub, stub_stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(crate::serve_stub(stub, async move {
            let _ = stub_stopped.await;
        }));
        let mut screen = TestScreen::default();
        screen
            .names
            .insert("bad.test".into(), verdict("bad.test", Policy::Nxdomain));
        let f = Front::new(
            Arc::new(screen),
            FrontConfig {
                upstreams: vec![upstream],
                udp_sockets: 1,
                io,
                ..FrontConfig::default()
            },
        );
        cache(
            &f,
            "www.up.test",
            TYPE_A,
            0,
            &[("www.up.test", TYPE_A, 300, a([192, 0, 2, 10]))],
        );
        let listeners = f
            .bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listeners.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = runtime.spawn(f.serve(listeners, async move {
            let _ = stopped.await;
        }));

        let clients: Vec<std::net::UdpSocket> = (0..CLIENTS)
            .map(|_| {
                let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
                c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap_or_else(|e| panic!("{e}"));
                c.connect(addr).unwrap_or_else(|e| panic!("{e}"));
                c
            })
            .collect();
        let stray = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        // Which rcode each (client, id) must get: 3 for the listed name, 0 else.
        let mut expected = HashMap::new();
        for id in 0..PER_CLIENT {
            for (c, client) in clients.iter().enumerate() {
                let name = match id % 3 {
                    0 => "bad.test".to_owned(),
                    1 => "www.up.test".to_owned(),
                    _ => format!("n{id}-{c}.example"),
                };
                let mut q = query(&name, TYPE_A, true);
                q[..2].copy_from_slice(&id.to_be_bytes());
                client.send(&q).unwrap_or_else(|e| panic!("{e}"));
                expected.insert((c, id), if id % 3 == 0 { 3u8 } else { 0 });
            }
            if id == PER_CLIENT / 2 {
                // Larger than a batch slot (the batched loop drops it, the others
                // answer FORMERR), from a socket nobody reads.
                let _ = stray.send_to(&[0u8; 9_000], addr);
            }
        }
        let mut buf = [0u8; 4_096];
        for (c, client) in clients.iter().enumerate() {
            for _ in 0..PER_CLIENT {
                let n = client
                    .recv(&mut buf)
                    .unwrap_or_else(|e| panic!("{io:?}: client {c} waiting: {e}"));
                assert!(n >= 12, "{io:?}: short answer");
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                let rcode = buf[3] & 0x0F;
                let want = expected
                    .remove(&(c, id))
                    .unwrap_or_else(|| panic!("{io:?}: client {c} got id {id} twice or unasked"));
                assert_eq!(rcode, want, "{io:?}: client {c} id {id}");
            }
        }
        assert!(expected.is_empty(), "{io:?}: unanswered {expected:?}");
        let _ = stop.send(());
        let _ = stop_stub.send(());
        runtime
            .block_on(served)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
