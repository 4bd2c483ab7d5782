//! A stand-in upstream resolver for `sharedefend demo`: it answers every A query with
//! 192.0.2.1 and every AAAA query with 2001:db8::1 (documentation addresses, RFC 5737
//! and RFC 3849), anything else with an empty NOERROR, so the filter can be shown on a
//! machine with no network. It lives here because only `dns` knows the DNS library;
//! it is no resolver and serves loopback demos and tests only.

use std::net::{Ipv4Addr, Ipv6Addr};

use domain::base::iana::{Class, Rcode};
use domain::base::{Message, Rtype, ToName};
use domain::rdata::{A, Aaaa};
use tokio::net::UdpSocket;

use crate::wire;

/// The A answer of every name.
pub const STUB_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The AAAA answer of every name.
pub const STUB_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// The answer to one request, or `None` for what is no query.
pub fn stub_answer(bytes: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::from_octets(bytes.to_vec()).ok()?;
    if msg.header().qr() {
        return None;
    }
    let question = msg.first_question()?;
    let owner = question.qname().to_name::<Vec<u8>>();
    let qtype = question.qtype();
    let out = wire::answer(&msg, Rcode::NOERROR, None, |answer| {
        if question.qclass() != Class::IN {
            return Ok(());
        }
        if qtype == Rtype::A {
            answer.push((&owner, Class::IN, 60, A::new(STUB_V4)))?;
        } else if qtype == Rtype::AAAA {
            answer.push((&owner, Class::IN, 60, Aaaa::new(STUB_V6)))?;
        }
        Ok(())
    })
    .ok()?;
    let mut out = out;
    // Not authoritative, recursion available: what a resolver answers.
    if out.len() > 3 {
        out[2] &= !0x04;
        out[3] |= 0x80;
    }
    Some(out)
}

/// Answers on `socket` until `stop` completes.
pub async fn serve_stub(socket: UdpSocket, stop: impl std::future::Future<Output = ()>) {
    let mut buf = vec![0u8; 4096];
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            r = socket.recv_from(&mut buf) => {
                let Ok((n, src)) = r else { continue };
                if let Some(reply) = buf.get(..n).and_then(stub_answer) {
                    let _ = socket.send_to(&reply, src).await;
                }
            }
        }
    }
}

/// The RCODE (`"NOERROR"`, `"NXDOMAIN"`, …) `server` answers to an A query for
/// `name` over UDP within a second, or `None` (no answer, or `name` is no name).
/// For `sharedefend demo` to see that its filter blocks before it says so.
pub async fn probe_rcode(server: std::net::SocketAddr, name: &str) -> Option<String> {
    let qname: domain::base::Name<Vec<u8>> = name.parse().ok()?;
    let mut q = domain::base::MessageBuilder::new_vec().question();
    q.header_mut().set_rd(true);
    q.header_mut().set_id(std::process::id() as u16 ^ 0x5d3a);
    q.push((qname, Rtype::A)).ok()?;
    let query = q.finish();
    let socket = UdpSocket::bind(("127.0.0.1", 0)).await.ok()?;
    socket.send_to(&query, server).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(1), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    let msg = Message::from_octets(buf).ok()?;
    Some(msg.header().rcode().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::base::{MessageBuilder, Name};

    fn query(name: &str, qtype: Rtype) -> Vec<u8> {
        let mut q = MessageBuilder::new_vec().question();
        q.header_mut().set_rd(true);
        let name: Name<Vec<u8>> = name.parse().unwrap_or_else(|e| panic!("{e:?}"));
        q.push((name, qtype)).unwrap_or_else(|e| panic!("{e}"));
        q.finish()
    }

    #[test]
    fn answers_a_and_aaaa_with_documentation_addresses() {
        let a = stub_answer(&query("www.example.org", Rtype::A)).unwrap_or_default();
        let msg = Message::from_octets(a).unwrap_or_else(|e| panic!("{e}"));
        assert!(msg.header().qr() && msg.header().ra() && !msg.header().aa());
        let rr = msg
            .answer()
            .unwrap_or_else(|e| panic!("{e}"))
            .limit_to::<A>()
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("no A"));
        assert_eq!(rr.data().addr(), STUB_V4);
        let aaaa = stub_answer(&query("x.test", Rtype::AAAA)).unwrap_or_default();
        let msg = Message::from_octets(aaaa).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(msg.header_counts().ancount(), 1);
        let mx = stub_answer(&query("x.test", Rtype::MX)).unwrap_or_default();
        let msg = Message::from_octets(mx).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (msg.header().rcode(), msg.header_counts().ancount()),
            (Rcode::NOERROR, 0)
        );
        assert!(stub_answer(b"\x00\x01junk").is_none());
    }
}
