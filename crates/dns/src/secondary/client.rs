//! The secondary's requests on the wire: SOA query, AXFR and IXFR over TCP, signed
//! and checked with TSIG.
//!
//! Each request opens its own TCP connection (a transfer every few minutes does not
//! need connection reuse, and a fresh connection cannot carry a stale answer). Every
//! wait is bounded: the connection by [`Limits::connect`], each message by
//! [`Limits::message`]; the size of a transfer by [`Limits::max_records`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use domain::base::iana::{Class, Rcode};
use domain::base::{Message, Rtype, Serial, Ttl};
use domain::rdata::tsig::Time48;
use domain::tsig::{ClientSequence, ClientTransaction, Key};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::parse::{Kind, Parsed, TransferParser, parse_soa, relative_owner};
use super::{FullZoneSink, Outcome, SecondaryZone, Soa, XfrError, serial_newer};
use crate::wire::{Dname, parse_name};

/// Bounds on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// To establish the TCP connection.
    pub connect: Duration,
    /// For each message (and for the request to be written).
    pub message: Duration,
    /// Records in one transfer, SOA records included.
    pub max_records: u64,
}

/// Connection: 10 s. Per message: 30 s (a primary reading a large zone from its
/// store may pause before the first message). Up to 50 million records.
impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connect: Duration::from_secs(10),
            message: Duration::from_secs(30),
            max_records: 50_000_000,
        }
    }
}

/// Requests for one zone to its primary.
#[derive(Debug, Clone)]
pub struct Client {
    apex: Dname,
    apex_text: String,
    primary: SocketAddr,
    key: Option<Arc<Key>>,
    limits: Limits,
}

/// How the answers of one request are checked.
enum Signer {
    None,
    One(ClientTransaction<Arc<Key>>),
    Sequence(ClientSequence<Arc<Key>>),
}

impl Client {
    pub fn new(zone: &SecondaryZone, limits: Limits) -> Result<Client, String> {
        let apex_text = zone.apex.trim_end_matches('.').to_ascii_lowercase();
        let key = match &zone.tsig {
            Some(t) => Some(Arc::new(crate::server::make_key(t)?)),
            None => None,
        };
        Ok(Client {
            apex: parse_name(&apex_text)?,
            apex_text,
            primary: zone.primary,
            key,
            limits,
        })
    }

    /// The zone's apex, lowercase, without the trailing dot.
    pub fn apex(&self) -> &str {
        &self.apex_text
    }

    pub fn primary(&self) -> SocketAddr {
        self.primary
    }

    /// Asks the primary for the zone's SOA (over TCP, signed when a key is set).
    pub async fn query_soa(&self) -> Result<Soa, XfrError> {
        let id = crate::notify::random_id();
        let (bytes, signer) = self.request(id, Rtype::SOA, None)?;
        let mut stream = self.connect().await?;
        self.send(&mut stream, &bytes).await?;
        let bytes = self
            .receive(&mut stream)
            .await?
            .ok_or_else(|| XfrError::Truncated("no answer to the SOA query".into()))?;
        let mut msg = Message::from_octets(bytes)
            .map_err(|_| XfrError::Malformed("a message shorter than its header".into()))?;
        if let Signer::One(t) = &signer {
            t.answer(&mut msg, Time48::now())
                .map_err(|e| tsig_error(&msg, &e))?;
        }
        let h = msg.header();
        if !h.qr() || h.id() != id {
            return Err(XfrError::Malformed("not an answer to our SOA query".into()));
        }
        if h.rcode() != Rcode::NOERROR {
            return Err(XfrError::Rcode(h.rcode().to_string()));
        }
        let answer = msg
            .answer()
            .map_err(|e| XfrError::Malformed(format!("answer section: {e}")))?;
        for rr in answer {
            let rr = rr.map_err(|e| XfrError::Malformed(format!("record: {e}")))?;
            if rr.rtype() == Rtype::SOA
                && rr.class() == Class::IN
                && relative_owner(&rr.owner(), &self.apex).as_deref() == Some("@")
            {
                return parse_soa(&rr);
            }
        }
        Err(XfrError::Malformed(format!(
            "no SOA for {} in the answer",
            self.apex_text
        )))
    }

    /// Transfers the whole zone into `sink`. With `current` (the serial we hold), a
    /// zone older than it is refused.
    pub async fn axfr(
        &self,
        current: Option<u32>,
        sink: &mut (dyn FullZoneSink + Send),
    ) -> Result<Outcome, XfrError> {
        match self.transfer(Kind::Axfr, None, sink).await? {
            Parsed::Outcome(Outcome::Full { soa, records }) => {
                if let Some(ours) = current
                    && serial_newer(ours, soa.serial)
                {
                    return Err(XfrError::SerialBackwards {
                        ours,
                        theirs: soa.serial,
                    });
                }
                Ok(Outcome::Full { soa, records })
            }
            Parsed::Outcome(other) => Err(XfrError::Malformed(format!(
                "an AXFR answered as {}",
                match other {
                    Outcome::Incremental { .. } => "differences",
                    _ => "something else",
                }
            ))),
            Parsed::OnlySoa(_) => Err(XfrError::Malformed("an AXFR with one SOA".into())),
        }
    }

    /// Asks for the changes since `current`. The primary may answer with the
    /// differences, the whole zone (into `sink`), or the SOA alone; a lone SOA newer
    /// than ours means the primary cannot send differences, and the zone is then
    /// transferred by AXFR.
    pub async fn ixfr(
        &self,
        current: &Soa,
        sink: &mut (dyn FullZoneSink + Send),
    ) -> Result<Outcome, XfrError> {
        let kind = Kind::Ixfr {
            current: current.serial,
        };
        match self.transfer(kind, Some(current), sink).await? {
            Parsed::Outcome(o) => Ok(o),
            Parsed::OnlySoa(soa) if soa.serial == current.serial => Ok(Outcome::UpToDate(soa)),
            Parsed::OnlySoa(soa) if serial_newer(soa.serial, current.serial) => {
                self.axfr(Some(current.serial), sink).await
            }
            Parsed::OnlySoa(soa) => Err(XfrError::SerialBackwards {
                ours: current.serial,
                theirs: soa.serial,
            }),
        }
    }

    async fn transfer(
        &self,
        kind: Kind,
        current: Option<&Soa>,
        sink: &mut (dyn FullZoneSink + Send),
    ) -> Result<Parsed, XfrError> {
        let id = crate::notify::random_id();
        let qtype = match kind {
            Kind::Axfr => Rtype::AXFR,
            Kind::Ixfr { .. } => Rtype::IXFR,
        };
        let (bytes, mut signer) = self.request(id, qtype, current)?;
        let mut stream = self.connect().await?;
        self.send(&mut stream, &bytes).await?;
        let mut parser = TransferParser::new(
            self.apex.clone(),
            kind,
            Some(id),
            sink,
            self.limits.max_records,
        );
        while let Some(bytes) = self.receive(&mut stream).await? {
            let mut msg = Message::from_octets(bytes)
                .map_err(|_| XfrError::Malformed("a message shorter than its header".into()))?;
            if let Signer::Sequence(seq) = &mut signer {
                seq.answer(&mut msg, Time48::now())
                    .map_err(|e| tsig_error(&msg, &e))?;
            }
            if parser.message(&msg)? {
                break;
            }
        }
        if parser.done()
            && let Signer::Sequence(seq) = signer
        {
            seq.done()
                .map_err(|e| XfrError::Tsig(format!("the last message: {e}")))?;
        }
        parser.finish()
    }

    /// A query for `qtype` at the apex; an IXFR carries our SOA in its authority
    /// section (RFC 1995 §3). Signed when a key is set.
    fn request(
        &self,
        id: u16,
        qtype: Rtype,
        current: Option<&Soa>,
    ) -> Result<(Vec<u8>, Signer), XfrError> {
        let built = |e: domain::base::message_builder::PushError| {
            XfrError::Malformed(format!("building the request: {e}"))
        };
        let mut b = crate::wire::builder();
        b.header_mut().set_id(id);
        let mut q = b.question();
        q.push((&self.apex, qtype, Class::IN)).map_err(built)?;
        let mut auth = q.authority();
        if let Some(soa) = current {
            let name = |text: &str| parse_name(text).or_else(|_| parse_name("."));
            let (Ok(mname), Ok(rname)) = (name(&soa.mname), name(&soa.rname)) else {
                return Err(XfrError::Malformed("the root name does not parse".into()));
            };
            auth.push((
                &self.apex,
                Class::IN,
                Ttl::from_secs(soa.ttl),
                domain::rdata::Soa::new(
                    mname,
                    rname,
                    Serial(soa.serial),
                    Ttl::from_secs(soa.refresh),
                    Ttl::from_secs(soa.retry),
                    Ttl::from_secs(soa.expire),
                    Ttl::from_secs(soa.minimum),
                ),
            ))
            .map_err(built)?;
        }
        let mut add = auth.additional();
        let signer = match (&self.key, qtype) {
            (None, _) => Signer::None,
            (Some(key), Rtype::SOA) => Signer::One(
                ClientTransaction::request(key.clone(), &mut add, Time48::now()).map_err(built)?,
            ),
            (Some(key), _) => Signer::Sequence(
                ClientSequence::request(key.clone(), &mut add, Time48::now()).map_err(built)?,
            ),
        };
        Ok((add.finish().into_target(), signer))
    }

    async fn connect(&self) -> Result<TcpStream, XfrError> {
        match tokio::time::timeout(self.limits.connect, TcpStream::connect(self.primary)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(XfrError::Io(format!("connecting to {}: {e}", self.primary))),
            Err(_) => Err(XfrError::Timeout(format!("connecting to {}", self.primary))),
        }
    }

    async fn send(&self, stream: &mut TcpStream, msg: &[u8]) -> Result<(), XfrError> {
        let len = u16::try_from(msg.len())
            .map_err(|_| XfrError::Malformed("request over 64 KiB".into()))?;
        let mut framed = Vec::with_capacity(msg.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(msg);
        match tokio::time::timeout(self.limits.message, stream.write_all(&framed)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(XfrError::Io(format!("sending to {}: {e}", self.primary))),
            Err(_) => Err(XfrError::Timeout(format!("sending to {}", self.primary))),
        }
    }

    /// The next framed message; `None` when the primary closed the connection
    /// between messages.
    async fn receive(&self, stream: &mut TcpStream) -> Result<Option<Vec<u8>>, XfrError> {
        let wait = self.limits.message;
        let mut len = [0u8; 2];
        let first = match tokio::time::timeout(wait, stream.read(&mut len)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(XfrError::Io(format!("reading: {e}"))),
            Err(_) => return Err(XfrError::Timeout(format!("waiting {wait:?} for a message"))),
        };
        match first {
            0 => return Ok(None),
            1 => {
                let rest = len.get_mut(1..).unwrap_or_default();
                read_exact(stream, rest, wait).await?;
            }
            _ => {}
        }
        let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(len))];
        read_exact(stream, &mut bytes, wait).await?;
        Ok(Some(bytes))
    }
}

async fn read_exact(
    stream: &mut TcpStream,
    buf: &mut [u8],
    wait: Duration,
) -> Result<(), XfrError> {
    match tokio::time::timeout(wait, stream.read_exact(buf)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(XfrError::Truncated(
            "the connection closed in the middle of a message".into(),
        )),
        Ok(Err(e)) => Err(XfrError::Io(format!("reading: {e}"))),
        Err(_) => Err(XfrError::Timeout(format!("waiting {wait:?} for a message"))),
    }
}

/// A TSIG failure, with the rcode the (unverified) answer carried.
fn tsig_error(msg: &Message<Vec<u8>>, e: &domain::tsig::ValidationError) -> XfrError {
    let rcode = msg.header().rcode();
    if rcode == Rcode::NOERROR {
        XfrError::Tsig(e.to_string())
    } else {
        XfrError::Tsig(format!("{e} (the primary answered {rcode})"))
    }
}
