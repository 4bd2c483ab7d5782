//! The server's decisions on the wire, with a zone source in memory: TSIG errors
//! that `dig` cannot provoke (a stale clock: BADTIME), who may transfer what
//! (feeds granted per partner, the `allow_ips` opt-in), IXFR's three answers, and
//! a large zone streamed in many messages, and the NOTIFY sent at start-up. The
//! real-client interop tests are in `crates/cli/tests/dns_interop.rs` and
//! `crates/cli/tests/resolver_interop.rs`.

mod common;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use dns::{
    Config, Delta, KeyAlgorithm, PartnerConfig, Secret, Server, Snapshot, SourceError, TsigConfig,
    ZoneInfo, ZoneRule, ZoneSource,
};
use domain::base::iana::{Class, Opcode, Rcode, TsigRcode};
use domain::base::{Message, MessageBuilder, Name, ParsedName, Rtype, Serial, Ttl};
use domain::rdata::tsig::Time48;
use domain::rdata::{Soa, Tsig};
use domain::tsig::{Algorithm, ClientTransaction, Key, KeyName, ServerTransaction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "c6fbQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";

/// One feed, `phishing`, at serial 3, with `rules` rules; the journal keeps serials
/// 2 and 3 (a client at 1 or older gets the full zone).
struct Memory {
    rules: usize,
}

fn info(serial: u32) -> ZoneInfo {
    common::info("phishing.rpz.sharedefend", serial)
}

fn rule(i: usize) -> ZoneRule {
    ZoneRule {
        owner: format!("host-{i}.example"),
        action: policy::Action::Nxdomain,
    }
}

impl ZoneSource for Memory {
    fn zones(&self) -> Result<Vec<ZoneInfo>, SourceError> {
        Ok(vec![info(3)])
    }
    fn snapshot(&self, feed: &str) -> Result<Option<Snapshot>, SourceError> {
        Ok((feed == "phishing").then(|| Snapshot {
            info: info(3),
            rules: (0..self.rules).map(rule).collect(),
        }))
    }
    fn delta(&self, feed: &str, from: u32) -> Result<Option<Delta>, SourceError> {
        Ok((feed == "phishing" && from >= 2).then(|| Delta {
            info: info(3),
            from,
            removed: if from < 3 {
                vec![rule(1_000_000)]
            } else {
                vec![]
            },
            added: if from < 3 { vec![rule(0)] } else { vec![] },
        }))
    }
}

fn partner(name: &str, feeds: &[&str], key: Option<&str>, allow: &[&str]) -> PartnerConfig {
    PartnerConfig {
        name: name.into(),
        feeds: feeds.iter().map(|f| (*f).to_owned()).collect(),
        tsig: key.map(|k| TsigConfig {
            name: k.into(),
            algorithm: KeyAlgorithm::HmacSha256,
            secret: Secret::new(SECRET),
        }),
        notify: vec![],
        allow_ips: allow
            .iter()
            .map(|a| a.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect(),
    }
}

fn key(name: &str) -> Arc<Key> {
    let secret: Vec<u8> = domain::utils::base64::decode(SECRET).unwrap_or_else(|e| panic!("{e}"));
    let name = KeyName::from_str(name).unwrap_or_else(|e| panic!("{e}"));
    Arc::new(
        Key::new(Algorithm::Sha256, &secret, name, None, None).unwrap_or_else(|e| panic!("{e}")),
    )
}

async fn start(config: Config, rules: usize) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let server = Server::new(Arc::new(Memory { rules }), &config).unwrap_or_else(|e| panic!("{e}"));
    common::serve(server)
}

/// A query for the zone apex; signed with `key` at `time` when given; an IXFR
/// carries `serial` in its authority section.
fn query(qtype: Rtype, serial: Option<u32>, key: Option<(Arc<Key>, Time48)>) -> Vec<u8> {
    let apex =
        Name::<Vec<u8>>::from_str("phishing.rpz.sharedefend.").unwrap_or_else(|e| panic!("{e}"));
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(4242);
    let mut q = b.question();
    q.push((&apex, qtype, Class::IN))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut auth = q.authority();
    if let Some(s) = serial {
        let n = |t: &str| Name::<Vec<u8>>::from_str(t).unwrap_or_else(|e| panic!("{e}"));
        let soa = Soa::new(
            n("a."),
            n("b."),
            Serial(s),
            Ttl::ZERO,
            Ttl::ZERO,
            Ttl::ZERO,
            Ttl::ZERO,
        );
        auth.push((&apex, Class::IN, 0, soa))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut add = auth.additional();
    if let Some((k, t)) = key {
        ClientTransaction::request(k, &mut add, t).unwrap_or_else(|e| panic!("{e}"));
    }
    add.finish()
}

async fn udp(addr: SocketAddr, q: Vec<u8>) -> Message<Vec<u8>> {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.send_to(&q, addr).await.unwrap_or_else(|e| panic!("{e}"));
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(std::time::Duration::from_secs(5), s.recv_from(&mut buf))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    buf.truncate(n);
    Message::from_octets(buf).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends `q` over TCP; reads messages until `end_soas` SOA records have come (a
/// transfer's end) or an error rcode.
async fn tcp(addr: SocketAddr, q: Vec<u8>, end_soas: usize) -> Vec<Message<Vec<u8>>> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let len = u16::try_from(q.len()).unwrap_or_else(|e| panic!("{e}"));
    s.write_all(&len.to_be_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(&q).await.unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let mut soas = 0;
    for _ in 0..100_000 {
        let mut l = [0u8; 2];
        s.read_exact(&mut l).await.unwrap_or_else(|e| panic!("{e}"));
        let mut m = vec![0u8; usize::from(u16::from_be_bytes(l))];
        s.read_exact(&mut m).await.unwrap_or_else(|e| panic!("{e}"));
        let msg = Message::from_octets(m).unwrap_or_else(|e| panic!("{e}"));
        soas += serials(std::slice::from_ref(&msg)).len();
        let error = msg.header().rcode() != Rcode::NOERROR;
        out.push(msg);
        if error || soas >= end_soas {
            return out;
        }
    }
    panic!("transfer did not end")
}

fn serials(msgs: &[Message<Vec<u8>>]) -> Vec<u32> {
    msgs.iter()
        .flat_map(|m| {
            m.answer()
                .into_iter()
                .flat_map(|a| a.limit_to::<Soa<ParsedName<&[u8]>>>())
                .flatten()
                .map(|r| r.data().serial().into_int())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn records(msgs: &[Message<Vec<u8>>]) -> usize {
    msgs.iter()
        .map(|m| usize::from(m.header_counts().ancount()))
        .sum()
}

fn tsig_error(msg: &Message<Vec<u8>>) -> Option<TsigRcode> {
    let add = msg.additional().ok()?;
    let rr = add
        .limit_to::<Tsig<&[u8], ParsedName<&[u8]>>>()
        .last()?
        .ok()?;
    Some(rr.data().error())
}

fn config() -> Config {
    Config {
        listen: None,
        partners: vec![
            partner("isp", &["phishing"], Some("hub-key."), &[]),
            partner("other", &["malware"], Some("other-key."), &[]),
            partner("unbound", &["phishing"], None, &["127.0.0.1"]),
        ],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_clock_is_badtime_and_signed() {
    let (addr, _stop) = start(config(), 10).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let old = Time48::from_u64(now - 3600);
    let r = udp(addr, query(Rtype::SOA, None, Some((key("hub-key."), old)))).await;
    assert_eq!(r.header().rcode(), Rcode::NOTAUTH);
    assert_eq!(tsig_error(&r), Some(TsigRcode::BADTIME));
    // A good clock: the SOA, signed.
    let r = udp(
        addr,
        query(Rtype::SOA, None, Some((key("hub-key."), Time48::now()))),
    )
    .await;
    assert_eq!(r.header().rcode(), Rcode::NOERROR);
    assert_eq!(tsig_error(&r), Some(TsigRcode::NOERROR));
    assert_eq!(serials(&[r]), [3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_need_a_partner_granted_the_feed() {
    // Only the allow_ips partner covers 127.0.0.1 unsigned: drop it first.
    let mut c = config();
    c.partners.pop();
    let (addr, _stop) = start(c, 10).await;
    let r = tcp(addr, query(Rtype::AXFR, None, None), 2).await;
    assert_eq!(r.first().map(|m| m.header().rcode()), Some(Rcode::REFUSED));
    // Signed by a partner that was not granted `phishing`.
    let r = tcp(
        addr,
        query(Rtype::AXFR, None, Some((key("other-key."), Time48::now()))),
        2,
    )
    .await;
    assert_eq!(r.first().map(|m| m.header().rcode()), Some(Rcode::REFUSED));
    let r = tcp(
        addr,
        query(Rtype::AXFR, None, Some((key("hub-key."), Time48::now()))),
        2,
    )
    .await;
    assert_eq!(r.first().map(|m| m.header().rcode()), Some(Rcode::NOERROR));
    assert_eq!(records(&r), 2 + 1 + 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_ips_admits_an_unsigned_transfer() {
    let (addr, _stop) = start(config(), 10).await;
    let r = tcp(addr, query(Rtype::AXFR, None, None), 2).await;
    assert_eq!(r.first().map(|m| m.header().rcode()), Some(Rcode::NOERROR));
    assert_eq!(records(&r), 13);
    assert_eq!(tsig_error(&r[0]), None);
}

/// At start-up the server NOTIFYs each partner's targets once per zone the partner
/// may take, signed with the partner's key, and stops once answered. The partner
/// granted only `malware` (a feed with no zone here) gets nothing.
#[tokio::test(flavor = "multi_thread")]
async fn start_up_notifies_each_partner_target_once_per_zone() {
    let secondary = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let target = secondary.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let mut c = config();
    for p in &mut c.partners {
        if p.name != "unbound" {
            p.notify = vec![target];
        }
    }
    let (_addr, _stop) = start(c, 10).await;

    let mut buf = vec![0u8; 4096];
    let wait = std::time::Duration::from_secs(5);
    let (n, from) = tokio::time::timeout(wait, secondary.recv_from(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no NOTIFY within {wait:?} of start-up"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut notify = Message::from_octets(buf.get(..n).unwrap_or_default().to_vec())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(notify.header().opcode(), Opcode::NOTIFY);
    assert!(notify.header().aa());
    let question = notify.sole_question().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(question.qname().to_string(), "phishing.rpz.sharedefend");
    assert_eq!(question.qtype(), Rtype::SOA);
    assert_eq!(serials(std::slice::from_ref(&notify)), [3]);
    let hub_key = key("hub-key.");
    let tran = ServerTransaction::request(&hub_key, &mut notify, Time48::now())
        .unwrap_or_else(|_| panic!("the NOTIFY's TSIG does not verify"))
        .unwrap_or_else(|| panic!("the NOTIFY is not signed"));

    // Answer it (signed); no retry and no other NOTIFY follows.
    let mut add = MessageBuilder::new_vec()
        .start_answer(&notify, Rcode::NOERROR)
        .unwrap_or_else(|e| panic!("{e}"))
        .additional();
    tran.answer(&mut add, Time48::now())
        .unwrap_or_else(|e| panic!("{e}"));
    secondary
        .send_to(&add.finish(), from)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The first retry would come 1 s after the first send.
    let quiet = std::time::Duration::from_millis(2500);
    let more = tokio::time::timeout(quiet, secondary.recv_from(&mut buf)).await;
    assert!(more.is_err(), "a second NOTIFY came: {more:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ixfr_answers_current_delta_or_full() {
    let (addr, _stop) = start(config(), 10).await;
    let k = || Some((key("hub-key."), Time48::now()));
    let current = tcp(addr, query(Rtype::IXFR, Some(3), k()), 1).await;
    assert_eq!(serials(&current), [3]);
    assert_eq!(records(&current), 1);
    let delta = tcp(addr, query(Rtype::IXFR, Some(2), k()), 4).await;
    assert_eq!(serials(&delta), [3, 2, 3, 3]);
    assert_eq!(records(&delta), 4 + 2);
    // Older than the journal: the full zone, AXFR-style.
    let full = tcp(addr, query(Rtype::IXFR, Some(1), k()), 2).await;
    assert_eq!(serials(&full), [3, 3]);
    assert_eq!(records(&full), 13);
    // IXFR over UDP: the SOA alone.
    let r = udp(addr, query(Rtype::IXFR, Some(1), k())).await;
    assert_eq!(serials(&[r]), [3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_zone_streams_in_many_signed_messages() {
    let (addr, _stop) = start(config(), 100_000).await;
    let r = tcp(
        addr,
        query(Rtype::AXFR, None, Some((key("hub-key."), Time48::now()))),
        2,
    )
    .await;
    assert_eq!(records(&r), 100_003);
    assert!(r.len() > 100, "{} messages", r.len());
    assert!(r.iter().all(|m| tsig_error(m) == Some(TsigRcode::NOERROR)));
}

#[test]
fn config_rejects_unknown_fields_and_hides_secrets() {
    let bad = "[[partner]]\nname = \"x\"\nfeeds = [\"*\"]\nalow_ips = [\"127.0.0.1\"]\n";
    let e = toml::from_str::<Config>(bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("alow_ips"), "{e}");
    let good = format!(
        "[[partner]]\nname = \"x\"\nfeeds = [\"*\"]\ntsig = {{ name = \"k\", algorithm = \"hmac-sha512\", secret = \"{SECRET}\" }}\n"
    );
    let c: Config = toml::from_str(&good).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.validate().is_ok());
    assert!(!format!("{c:?}").contains(SECRET));
    let no_means = "[[partner]]\nname = \"x\"\nfeeds = [\"*\"]\n";
    let c: Config = toml::from_str(no_means).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.validate().is_err());
}

/// Panics anywhere in the process (a spawned task included), counted by a hook.
static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A cheap deterministic generator (xorshift), so a failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A valid message, mutated: bit flips, overwritten bytes, truncation, growth.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
            1 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] = rng.next() as u8;
            }
            2 => m.truncate(rng.below(m.len() + 1)),
            3 => m.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
            _ => m = (0..rng.below(600)).map(|_| rng.next() as u8).collect(),
        }
    }
    m
}

/// Network-facing robustness: thousands of malformed and mutated messages over UDP and
/// TCP (bounded, loopback only), after which the server still answers correctly and
/// nothing panicked, not even in a spawned task.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_never_panic_or_stop_the_server() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        previous(info);
    }));
    let (addr, _stop) = start(config(), 50).await;
    let seeds = [
        query(Rtype::SOA, None, None),
        query(Rtype::IXFR, Some(1), None),
        query(Rtype::AXFR, None, Some((key("hub-key."), Time48::now()))),
        query(Rtype::IXFR, Some(2), Some((key("hub-key."), Time48::now()))),
    ];
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    let sender = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..4000 {
        let m = mutate(&seeds[i % seeds.len()], &mut rng);
        let _ = sender.send_to(&m, addr).await;
        if i % 200 == 0 {
            tokio::task::yield_now().await;
        }
    }
    for i in 0..200 {
        let m = mutate(&seeds[i % seeds.len()], &mut rng);
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            // A length prefix that may lie, then the bytes, then hang up.
            let claimed = if rng.below(2) == 0 {
                m.len()
            } else {
                rng.below(70_000)
            };
            let len = u16::try_from(claimed.min(65_535)).unwrap_or(0);
            let _ = s.write_all(&len.to_be_bytes()).await;
            let _ = s.write_all(&m).await;
            let _ = s.shutdown().await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Still serving: the SOA over UDP, a full signed transfer over TCP.
    let r = udp(addr, query(Rtype::SOA, None, None)).await;
    assert_eq!(r.header().rcode(), Rcode::NOERROR);
    assert_eq!(serials(&[r]), [3]);
    let msgs = tcp(
        addr,
        query(Rtype::AXFR, None, Some((key("hub-key."), Time48::now()))),
        2,
    )
    .await;
    assert_eq!(records(&msgs), 50 + 3, "{} messages", msgs.len());
    assert_eq!(
        PANICS.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a malformed message made the server panic"
    );
}

/// A source whose one zone's serial the test moves, as the hub's API moves it.
struct Moving {
    serial: Arc<std::sync::atomic::AtomicU32>,
}

impl ZoneSource for Moving {
    fn zones(&self) -> Result<Vec<ZoneInfo>, SourceError> {
        Ok(vec![info(
            self.serial.load(std::sync::atomic::Ordering::SeqCst),
        )])
    }
    fn snapshot(&self, _feed: &str) -> Result<Option<Snapshot>, SourceError> {
        Ok(None)
    }
    fn delta(&self, _feed: &str, _from: u32) -> Result<Option<Delta>, SourceError> {
        Ok(None)
    }
}

/// `publish_now` after a change: when it returns, SOA answers carry the new serial
/// (no waiting for the poll) and the NOTIFY of the new serial is on its way.
#[tokio::test(flavor = "multi_thread")]
async fn publish_now_serves_the_new_serial_and_notifies() {
    let secondary = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let target = secondary.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let mut p = partner("isp", &["phishing"], None, &["127.0.0.1"]);
    p.notify = vec![target];
    let serial = Arc::new(std::sync::atomic::AtomicU32::new(3));
    let server = Server::new(
        Arc::new(Moving {
            serial: serial.clone(),
        }),
        &Config {
            listen: None,
            partners: vec![p],
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (addr, stop) = common::serve(server.clone());

    // The start-up NOTIFY, answered so that it is not retried.
    let first = next_notify(&secondary).await;
    assert_eq!(serials(std::slice::from_ref(&first)), [3]);

    for next in [4u32, 5, 9] {
        serial.store(next, std::sync::atomic::Ordering::SeqCst);
        assert!(server.publish_now().await, "publish_now timed out");
        let soa = udp(addr, query(Rtype::SOA, None, None)).await;
        assert_eq!(serials(std::slice::from_ref(&soa)), [next]);
        let notify = next_notify(&secondary).await;
        assert_eq!(notify.header().opcode(), Opcode::NOTIFY);
        assert_eq!(serials(std::slice::from_ref(&notify)), [next]);
    }
    let _ = stop.send(());
}

/// The next NOTIFY `secondary` receives (within 5 s), answered NOERROR so that it is
/// not retried.
async fn next_notify(secondary: &tokio::net::UdpSocket) -> Message<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let wait = std::time::Duration::from_secs(5);
    let (n, from) = tokio::time::timeout(wait, secondary.recv_from(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no NOTIFY within {wait:?}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let msg = Message::from_octets(buf.get(..n).unwrap_or_default().to_vec())
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = MessageBuilder::new_vec()
        .start_answer(&msg, Rcode::NOERROR)
        .unwrap_or_else(|e| panic!("{e}"))
        .finish();
    secondary
        .send_to(&answer, from)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    msg
}
