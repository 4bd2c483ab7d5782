//! Forwarding to the upstream resolvers: one question at a time, over UDP from a
//! fresh socket (a random port from the kernel and a random ID, so an off-path
//! attacker has 32 bits to guess), over TCP when the answer comes back truncated.
//!
//! Upstreams are tried in turn starting with the last one that answered; a timeout,
//! a refused connection, a malformed answer or a SERVFAIL/REFUSED moves on to the
//! next. When all fail the caller answers SERVFAIL at once: a dead upstream on the
//! same host refuses the datagram and costs nothing, a silent one costs the timeout.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::message::{
    self, Answer, RCODE_FORMERR, RCODE_NOTIMP, RCODE_REFUSED, RCODE_SERVFAIL, Rejected,
};

/// The UDP payload size we advertise upstream (DNS Flag Day 2020).
pub(crate) const UPSTREAM_UDP_SIZE: u16 = 1232;

#[derive(Debug)]
pub(crate) struct Upstreams {
    addrs: Vec<SocketAddr>,
    timeout: Duration,
    /// Index of the upstream that answered last.
    preferred: AtomicUsize,
    /// Query IDs: SipHash of a counter under a random key.
    ids: RandomState,
    counter: AtomicU64,
}

/// Why no upstream answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No upstream answered in time (or at all).
    Unreachable,
    /// Every upstream that answered failed (SERVFAIL, REFUSED, malformed).
    Failed,
}

impl Upstreams {
    pub fn new(addrs: Vec<SocketAddr>, timeout: Duration) -> Upstreams {
        Upstreams {
            addrs,
            timeout,
            preferred: AtomicUsize::new(0),
            ids: RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }

    fn next_id(&self) -> u16 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.ids.hash_one(n) as u16
    }

    /// Resolves `qname` (lowercase wire) / `qtype` through the upstreams.
    pub async fn resolve(
        &self,
        qname: &[u8],
        qtype: u16,
        dnssec_ok: bool,
        cd: bool,
    ) -> Result<Answer, Failure> {
        let n = self.addrs.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut failure = Failure::Unreachable;
        for i in 0..n {
            let index = (first + i) % n;
            let Some(&addr) = self.addrs.get(index) else {
                continue;
            };
            let id = self.next_id();
            let query = message::build_query(id, qname, qtype, cd, dnssec_ok, UPSTREAM_UDP_SIZE);
            let deadline = Instant::now() + self.timeout;
            let result = match udp_exchange(addr, &query, id, qname, qtype, deadline).await {
                // A fresh deadline for the TCP retry: the UDP answer came, the
                // upstream is alive.
                Ok(a) if a.truncated => {
                    let deadline = Instant::now() + self.timeout;
                    tcp_exchange(addr, &query, id, qname, qtype, deadline).await
                }
                other => other,
            };
            match result {
                Ok(a)
                    if matches!(
                        a.rcode,
                        RCODE_SERVFAIL | RCODE_REFUSED | RCODE_NOTIMP | RCODE_FORMERR
                    ) =>
                {
                    tracing::debug!(upstream = %addr, rcode = a.rcode, "upstream failed");
                    failure = Failure::Failed;
                }
                Ok(a) => {
                    if index != first {
                        self.preferred.store(index, Ordering::Relaxed);
                    }
                    return Ok(a);
                }
                Err(Exchange::Malformed) => failure = Failure::Failed,
                Err(Exchange::Unreachable) => {}
            }
        }
        Err(failure)
    }
}

#[derive(Debug)]
enum Exchange {
    Unreachable,
    Malformed,
}

fn unspecified_for(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

async fn udp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    qname: &[u8],
    qtype: u16,
    deadline: Instant,
) -> Result<Answer, Exchange> {
    let socket = UdpSocket::bind(unspecified_for(addr))
        .await
        .map_err(|_| Exchange::Unreachable)?;
    socket
        .connect(addr)
        .await
        .map_err(|_| Exchange::Unreachable)?;
    socket
        .send(query)
        .await
        .map_err(|_| Exchange::Unreachable)?;
    let mut buf = vec![0u8; 65_535];
    // Datagrams that are not the answer (late answers to other queries cannot reach
    // this fresh socket, but forgeries can) are skipped until the deadline.
    for _ in 0..64 {
        let len = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Ok(Ok(len)) => len,
            Ok(Err(_)) | Err(_) => return Err(Exchange::Unreachable),
        };
        match message::parse_answer(buf.get(..len).unwrap_or_default(), id, qname, qtype) {
            Ok(a) => return Ok(a),
            Err(Rejected::NotOurs) => continue,
            Err(Rejected::Malformed) => return Err(Exchange::Malformed),
        }
    }
    Err(Exchange::Unreachable)
}

async fn tcp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    qname: &[u8],
    qtype: u16,
    deadline: Instant,
) -> Result<Answer, Exchange> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|_| Exchange::Unreachable)?;
        let len = u16::try_from(query.len()).map_err(|_| Exchange::Malformed)?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        stream
            .write_all(&framed)
            .await
            .map_err(|_| Exchange::Unreachable)?;
        let mut len = [0u8; 2];
        stream
            .read_exact(&mut len)
            .await
            .map_err(|_| Exchange::Unreachable)?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream
            .read_exact(&mut buf)
            .await
            .map_err(|_| Exchange::Unreachable)?;
        match message::parse_answer(&buf, id, qname, qtype) {
            Ok(a) => Ok(a),
            Err(_) => Err(Exchange::Malformed),
        }
    };
    tokio::time::timeout_at(deadline, exchange)
        .await
        .unwrap_or(Err(Exchange::Unreachable))
}
