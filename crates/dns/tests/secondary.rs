//! The secondary client against our own primary on loopback: SOA query, AXFR of a
//! zone in many signed messages, IXFR in its three answers, TSIG refusals, a serial
//! that goes backwards, and a relay that cuts the primary's stream in the middle of
//! a transfer. The filter's zone manager is tested against BIND and `hub serve` in
//! its own crates.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dns::secondary::{
    Client, CollectSink, Limits, Outcome, SecondaryZone, Soa, XfrError, parse_tsig_spec,
};
use dns::{
    Config, Delta, PartnerConfig, Server, Snapshot, SourceError, ZoneInfo, ZoneRule, ZoneSource,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "c6fbQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";
const WRONG: &str = "AAAAQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";
const APEX: &str = "phishing.rpz.sharedefend";

/// One feed at `serial` with rules 0..`rules`; the journal reaches back to serial
/// `serial - 1` only (one rule added per serial).
struct Memory {
    state: Mutex<(u32, usize)>,
}

fn info(serial: u32) -> ZoneInfo {
    common::info(APEX, serial)
}

fn rule(i: usize) -> ZoneRule {
    ZoneRule {
        owner: format!("host-{i}.bad.example"),
        action: if i.is_multiple_of(7) {
            policy::Action::Drop
        } else {
            policy::Action::Nxdomain
        },
    }
}

impl Memory {
    fn get(&self) -> (u32, usize) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ZoneSource for Memory {
    fn zones(&self) -> Result<Vec<ZoneInfo>, SourceError> {
        Ok(vec![info(self.get().0)])
    }
    fn snapshot(&self, feed: &str) -> Result<Option<Snapshot>, SourceError> {
        let (serial, rules) = self.get();
        Ok((feed == "phishing").then(|| Snapshot {
            info: info(serial),
            rules: (0..rules).map(rule).collect(),
        }))
    }
    fn delta(&self, feed: &str, from: u32) -> Result<Option<Delta>, SourceError> {
        let (serial, rules) = self.get();
        if feed != "phishing" || from + 1 < serial {
            return Ok(None);
        }
        let added = if from < serial {
            vec![rule(rules - 1)]
        } else {
            vec![]
        };
        Ok(Some(Delta {
            info: info(serial),
            from,
            removed: vec![],
            added,
        }))
    }
}

fn partner_config() -> Config {
    Config {
        listen: None,
        partners: vec![PartnerConfig {
            name: "filter".into(),
            feeds: vec!["*".into()],
            tsig: Some(
                parse_tsig_spec(&format!("filter-key:hmac-sha256:{SECRET}"))
                    .unwrap_or_else(|e| panic!("{e}")),
            ),
            notify: vec![],
            allow_ips: vec![],
        }],
    }
}

async fn start(source: Arc<Memory>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let server = Server::new(source, &partner_config()).unwrap_or_else(|e| panic!("{e}"));
    common::serve(server)
}

fn client(primary: SocketAddr, secret: Option<&str>) -> Client {
    let zone = SecondaryZone {
        apex: APEX.into(),
        primary,
        tsig: secret.map(|s| {
            parse_tsig_spec(&format!("filter-key:hmac-sha256:{s}"))
                .unwrap_or_else(|e| panic!("{e}"))
        }),
    };
    let limits = Limits {
        connect: Duration::from_secs(5),
        message: Duration::from_secs(5),
        max_records: 10_000_000,
    };
    Client::new(&zone, limits).unwrap_or_else(|e| panic!("{e}"))
}

fn soa(serial: u32) -> Soa {
    Soa {
        ttl: 300,
        mname: "localhost.".into(),
        rname: "root.localhost.".into(),
        serial,
        refresh: 3600,
        retry: 600,
        expire: 864000,
        minimum: 300,
    }
}

#[tokio::test]
async fn axfr_then_ixfr_from_our_primary_with_tsig() {
    let source = Arc::new(Memory {
        state: Mutex::new((10, 30_000)),
    });
    let (addr, _stop) = start(source.clone()).await;
    let c = client(addr, Some(SECRET));

    let got = c.query_soa().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, soa(10));

    // AXFR: 30,000 rules in many messages, each one signed and verified.
    let mut sink = CollectSink::default();
    let out = c
        .axfr(None, &mut sink)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out,
        Outcome::Full {
            soa: soa(10),
            records: 30_001
        }
    );
    assert_eq!(sink.records.len(), 30_001);
    assert_eq!(sink.records[0].owner, "@");
    assert_eq!(sink.records[0].rtype, "NS");
    assert_eq!(
        (
            sink.records[1].owner.as_str(),
            sink.records[1].data.as_str()
        ),
        ("host-0.bad.example", "rpz-drop.")
    );
    assert_eq!(
        (
            sink.records[2].owner.as_str(),
            sink.records[2].data.as_str()
        ),
        ("host-1.bad.example", ".")
    );

    // One rule more: IXFR brings the difference.
    *source.state.lock().unwrap_or_else(|p| p.into_inner()) = (11, 30_001);
    let mut sink = CollectSink::default();
    let out = c
        .ixfr(&soa(10), &mut sink)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Outcome::Incremental { soa: new, diffs } = out else {
        panic!("{out:?}")
    };
    assert_eq!(new.serial, 11);
    assert_eq!(diffs.len(), 1);
    assert_eq!((diffs[0].from, diffs[0].to), (10, 11));
    assert_eq!(diffs[0].removed, vec![]);
    assert_eq!(diffs[0].added.len(), 1);
    assert_eq!(diffs[0].added[0].owner, "host-30000.bad.example");
    assert!(sink.soa.is_none());

    // Current: the SOA alone.
    let out = c
        .ixfr(&soa(11), &mut sink)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out, Outcome::UpToDate(soa(11)));

    // The journal does not reach back to 5: the whole zone inside the IXFR.
    let out = c
        .ixfr(&soa(5), &mut sink)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(
            out,
            Outcome::Full {
                records: 30_002,
                ..
            }
        ),
        "{out:?}"
    );

    // We hold a newer serial than the primary: refused, in both transfers.
    let e = c.ixfr(&soa(20), &mut sink).await;
    assert_eq!(
        e,
        Err(XfrError::SerialBackwards {
            ours: 20,
            theirs: 11
        })
    );
    let e = c.axfr(Some(20), &mut CollectSink::default()).await;
    assert_eq!(
        e,
        Err(XfrError::SerialBackwards {
            ours: 20,
            theirs: 11
        })
    );
}

#[tokio::test]
async fn wrong_or_missing_key_is_refused() {
    let source = Arc::new(Memory {
        state: Mutex::new((3, 10)),
    });
    let (addr, _stop) = start(source).await;

    let e = client(addr, Some(WRONG))
        .axfr(None, &mut CollectSink::default())
        .await;
    let Err(XfrError::Tsig(text)) = &e else {
        panic!("{e:?}")
    };
    assert!(text.contains("NOTAUTH"), "{text}");
    let e = client(addr, Some(WRONG)).query_soa().await;
    assert!(matches!(e, Err(XfrError::Tsig(_))), "{e:?}");

    let e = client(addr, None)
        .axfr(None, &mut CollectSink::default())
        .await;
    assert_eq!(e, Err(XfrError::Rcode("REFUSED".into())));
}

/// Where a relay cuts the primary's answer.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// After this many bytes.
    Bytes(usize),
    /// After this many whole messages.
    Messages(usize),
}

/// A primary in front of ours that passes on the start of each answer up to `cut`,
/// then closes the connection.
async fn cutting_relay(upstream: SocketAddr, cut: Cut) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let mut request = vec![0u8; 4096];
                let Ok(n) = client.read(&mut request).await else {
                    return;
                };
                if server.write_all(&request[..n]).await.is_err() {
                    return;
                }
                let mut answer = Vec::new();
                let mut sent = 0;
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = server.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    answer.extend_from_slice(&buf[..n]);
                    // Forward what may go: up to the cut, or (cutting by messages)
                    // whole messages only.
                    let (may, stop) = match cut {
                        Cut::Bytes(limit) => (answer.len().min(limit), answer.len() >= limit),
                        Cut::Messages(count) => match message_boundary(&answer, count) {
                            Some(end) => (end, true),
                            None => (whole_messages(&answer), false),
                        },
                    };
                    if may > sent && client.write_all(&answer[sent..may]).await.is_err() {
                        break;
                    }
                    sent = sent.max(may);
                    if stop {
                        break;
                    }
                }
                let _ = client.shutdown().await;
            });
        }
    });
    addr
}

/// The end of the last whole length-prefixed message in `bytes`.
fn whole_messages(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some(len) = bytes.get(at..at + 2) {
        let end = at + 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
        if end > bytes.len() {
            break;
        }
        at = end;
    }
    at
}

/// The end of the first `n` length-prefixed messages in `bytes`, once they are all
/// there.
fn message_boundary(bytes: &[u8], n: usize) -> Option<usize> {
    let mut at = 0;
    for _ in 0..n {
        let len = bytes.get(at..at + 2)?;
        at += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
    }
    (bytes.len() >= at).then_some(at)
}

#[tokio::test]
async fn a_stream_cut_short_is_truncated_never_a_zone() {
    let source = Arc::new(Memory {
        state: Mutex::new((4, 20_000)),
    });
    let (addr, _stop) = start(source).await;
    // Inside a message (the first, or a later one), and exactly between messages
    // (the framing intact, the zone not).
    for cut in [
        Cut::Bytes(102),
        Cut::Bytes(100_000),
        Cut::Messages(1),
        Cut::Messages(5),
    ] {
        let relay = cutting_relay(addr, cut).await;
        let mut sink = CollectSink::default();
        let e = client(relay, Some(SECRET)).axfr(None, &mut sink).await;
        assert!(matches!(e, Err(XfrError::Truncated(_))), "{cut:?}: {e:?}");
    }
    // The relay itself is faithful: uncut, the transfer succeeds through it.
    let relay = cutting_relay(addr, Cut::Messages(1_000_000)).await;
    let out = client(relay, Some(SECRET))
        .axfr(None, &mut CollectSink::default())
        .await;
    assert!(
        matches!(
            out,
            Ok(Outcome::Full {
                records: 20_001,
                ..
            })
        ),
        "{out:?}"
    );
}
