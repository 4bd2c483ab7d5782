//! The zone manager against a primary that misbehaves on purpose: a tiny fake
//! primary in this test, speaking DNS over TCP with hand-built messages, that cuts
//! its IXFR answer in the middle of a message, sends an IXFR whose differences do not
//! chain or name a record outside the zone, or refuses AXFR. In every case the zone
//! held before stays exactly as it was (the saved copy byte for byte, no event), and
//! a malformed IXFR is followed by an AXFR that, when the primary serves one,
//! recovers. No real primary can be made to do these things on demand.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use filter::{OnExpire, Refreshed, ZoneEvent};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const APEX: &str = "rpz.test";
const SOA: u16 = 6;
const CNAME: u16 = 5;
const AXFR: u16 = 252;
const IXFR: u16 = 251;

/// How the fake primary answers IXFR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ixfr {
    /// Correct differences from `serial - 1`.
    Good,
    /// The answer cut in the middle of its one message, then the connection closed.
    CutShort,
    /// Differences that start at a serial the client does not hold.
    BrokenChain,
    /// A record outside the zone.
    Outside,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Script {
    serial: u32,
    ixfr: Ixfr,
    axfr_refused: bool,
}

fn name(out: &mut Vec<u8>, text: &str) {
    for label in text.split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).unwrap_or(63));
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

fn record(owner: &str, rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    name(&mut out, owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&60u32.to_be_bytes());
    out.extend_from_slice(&u16::try_from(rdata.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

fn soa(serial: u32) -> Vec<u8> {
    let mut rdata = Vec::new();
    name(&mut rdata, "ns.rpz.test");
    name(&mut rdata, "root.rpz.test");
    for n in [serial, 3600, 600, 86400, 60] {
        rdata.extend_from_slice(&n.to_be_bytes());
    }
    record(APEX, SOA, &rdata)
}

/// `name.rpz.test CNAME .` (NXDOMAIN).
fn block(owner: &str) -> Vec<u8> {
    record(&format!("{owner}.{APEX}"), CNAME, &[0])
}

fn message(id: u16, qtype: u16, rcode: u8, answers: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.push(0x84); // QR, AA
    out.push(rcode);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::try_from(answers.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    name(&mut out, APEX);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    for a in answers {
        out.extend_from_slice(a);
    }
    out
}

/// The zone at `serial`: its NS, and one name blocked per serial, `n1` …
/// `n<serial>`.
fn zone_records(serial: u32) -> Vec<Vec<u8>> {
    let mut ns = Vec::new();
    name(&mut ns, "localhost");
    let mut records = vec![record(APEX, 2, &ns)];
    records.extend((1..=serial).map(|i| block(&format!("n{i}"))));
    records
}

/// The answer to one request, and whether to cut it short.
fn answer(script: Script, id: u16, qtype: u16) -> (Vec<u8>, bool) {
    let s = script.serial;
    match qtype {
        SOA => (message(id, qtype, 0, &[soa(s)]), false),
        AXFR if script.axfr_refused => (message(id, qtype, 5, &[]), false),
        AXFR => {
            let mut answers = vec![soa(s)];
            answers.extend(zone_records(s));
            answers.push(soa(s));
            (message(id, qtype, 0, &answers), false)
        }
        IXFR => {
            let (from, added) = match script.ixfr {
                Ixfr::BrokenChain => (s.saturating_sub(5), block("x")),
                Ixfr::Outside => (s - 1, record("n9.other.test", CNAME, &[0])),
                Ixfr::Good | Ixfr::CutShort => (s - 1, block(&format!("n{s}"))),
            };
            let answers = vec![soa(s), soa(from), soa(s), added, soa(s)];
            (
                message(id, qtype, 0, &answers),
                script.ixfr == Ixfr::CutShort,
            )
        }
        _ => (message(id, qtype, 4, &[]), false),
    }
}

/// Serves `script` (changeable while running) on a loopback port.
async fn fake_primary(script: Arc<Mutex<Script>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        for _ in 0..200 {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let script = *script.lock().unwrap_or_else(|p| p.into_inner());
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                if conn.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut request = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if conn.read_exact(&mut request).await.is_err() {
                    return;
                }
                let id = u16::from_be_bytes([request[0], request[1]]);
                // The question's name ends at the first zero byte after the header.
                let end = request[12..].iter().position(|&b| b == 0).unwrap_or(0) + 13;
                let qtype = u16::from_be_bytes([request[end], request[end + 1]]);
                let (msg, cut) = answer(script, id, qtype);
                let mut framed = u16::try_from(msg.len()).unwrap_or(0).to_be_bytes().to_vec();
                framed.extend_from_slice(&msg);
                if cut {
                    framed.truncate(framed.len() - 20);
                }
                let _ = conn.write_all(&framed).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_transfers_leave_the_zone_as_it_was() {
    let dir = workdir("faults");
    let state = dir.join("state");
    let script = Arc::new(Mutex::new(Script {
        serial: 3,
        ixfr: Ixfr::Good,
        axfr_refused: false,
    }));
    let set = |serial, ixfr, axfr_refused| {
        *script.lock().unwrap_or_else(|p| p.into_inner()) = Script {
            serial,
            ixfr,
            axfr_refused,
        }
    };
    let primary = fake_primary(script.clone()).await;
    let events = Events::default();
    let m = manager(
        vec![zone(APEX, primary, None)],
        &state,
        OnExpire::Keep,
        &events,
    );
    let file = state.join("rpz.test.zone");

    assert_eq!(
        m.refresh(APEX).await,
        Ok(Refreshed::Full {
            serial: 3,
            records: 4
        })
    );
    set(4, Ixfr::Good, true);
    assert_eq!(
        m.refresh(APEX).await,
        Ok(Refreshed::Incremental {
            from: 3,
            serial: 4,
            owners: 1
        })
    );
    checkzone(APEX, &file);
    let saved = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));
    let events_before = events.all().len();

    // Each broken answer (and no AXFR to fall back on): an error, nothing changed.
    for (ixfr, expect) in [
        (Ixfr::CutShort, "truncated"),
        (Ixfr::BrokenChain, "REFUSED"),
        (Ixfr::Outside, "REFUSED"),
    ] {
        set(5, ixfr, true);
        let e = m.refresh(APEX).await.err().unwrap_or_default();
        assert!(e.contains(expect), "{ixfr:?}: {e}");
        assert_eq!(std::fs::read(&file).unwrap_or_default(), saved, "{ixfr:?}");
        assert_eq!(events.all().len(), events_before, "{ixfr:?}");
        let st = &m.status()[0];
        assert_eq!(st.serial, Some(4));
        assert!(st.applied && st.last_error.is_some(), "{st:?}");
    }
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&state)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // A malformed IXFR from a primary that does serve AXFR: recovered by AXFR.
    set(5, Ixfr::BrokenChain, false);
    assert_eq!(
        m.refresh(APEX).await,
        Ok(Refreshed::Full {
            serial: 5,
            records: 6
        })
    );
    assert!(matches!(
        events.all().last(),
        Some(ZoneEvent::Full { serial: 5, .. })
    ));
    checkzone(APEX, &file);
    assert_eq!(rules(&file).len(), 5);

    // NOTIFY, as the filter's front hands it over: from the primary's address for
    // the zone, acknowledged; for a zone not followed, refused and counted.
    let notify = |zone: &str| {
        let mut msg = vec![0x12, 0x34, 0x20, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        name(&mut msg, zone);
        msg.extend_from_slice(&SOA.to_be_bytes());
        msg.extend_from_slice(&1u16.to_be_bytes());
        msg
    };
    let from = SocketAddr::from(([127, 0, 0, 1], 5353));
    let ack = m.notify(&notify(APEX), from).unwrap_or_default();
    assert_eq!(
        (ack.get(..2), ack.get(3).map(|b| b & 0x0f)),
        (Some(&[0x12, 0x34][..]), Some(0))
    );
    assert_eq!(m.status()[0].notifies, 1);
    let refused = m.notify(&notify("other.test"), from).unwrap_or_default();
    assert_eq!(refused.get(3).map(|b| b & 0x0f), Some(9), "NOTAUTH");
    let stranger = SocketAddr::from(([127, 0, 0, 2], 5353));
    let refused = m.notify(&notify(APEX), stranger).unwrap_or_default();
    assert_eq!(refused.get(3).map(|b| b & 0x0f), Some(5), "REFUSED");
    assert_eq!((m.notifies_refused(), m.status()[0].notifies), (2, 1));

    // A zone never held, and its AXFR refused: no file at all.
    let events = Events::default();
    let empty_state = dir.join("state-empty");
    set(5, Ixfr::Good, true);
    let fresh = manager(
        vec![zone(APEX, primary, None)],
        &empty_state,
        OnExpire::Keep,
        &events,
    );
    assert!(fresh.refresh(APEX).await.is_err());
    assert_eq!(
        std::fs::read_dir(&empty_state)
            .unwrap_or_else(|e| panic!("{e}"))
            .count(),
        0
    );
    assert!(events.all().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
