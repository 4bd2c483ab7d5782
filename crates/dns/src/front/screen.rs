//! The interface between the query path and the policy: [`Screen`] and its
//! [`Verdict`].
//!
//! The query path knows DNS; the policy knows rules. The filter hands the front a
//! `Screen` and the front asks it twice per query: about the query name before the
//! cache and the upstreams are consulted, and about the CNAME chain and the
//! addresses of the answer on the way out. The front never sees a rule set, and the
//! policy never sees a DNS message; the data a rewritten answer needs (the zone's
//! SOA, local records, a redirect target) is encoded once, when the rules are
//! loaded, into the opaque types of this module.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use super::message::{self, TYPE_SOA};

/// What the query path asks the policy. Implementations must be cheap when nothing
/// matches: both methods run for every query.
pub trait Screen: Send + Sync + 'static {
    /// The verdict for a query name (lowercase presentation form, no trailing dot;
    /// odd bytes as `\DDD`), from QNAME and client-address triggers.
    /// Checked before the cache and the upstreams. `client` may be matched against
    /// RPZ-CLIENT-IP triggers and must not be logged or stored.
    fn qname(&self, qname: &str, client: IpAddr) -> Option<Verdict>;

    /// The verdict for an upstream answer: `names` are the targets of the CNAME
    /// chain from the query name, in order (the query name itself was checked by
    /// [`Screen::qname`]); `addrs` are the A/AAAA addresses of the chain's last name.
    /// Returns the verdict and how many names of the chain the rewritten answer keeps
    /// before the name it rewrites: 0 rewrites at the query name, `k` at `names[k-1]`
    /// (a match on an address rewrites at the name that owns it: `names.len()`).
    fn answer(&self, names: &[Box<str>], addrs: &[IpAddr]) -> Option<(usize, Verdict)>;
}

/// A matched rule: what to do, and where it came from (for EDE text and counts).
#[derive(Debug, Clone)]
pub struct Verdict {
    pub action: Policy,
    pub zone: Arc<PolicyZone>,
    /// The rule's owner relative to the zone (`evil.example`, `*.evil.example`,
    /// `32.1.2.0.192.rpz-ip`).
    pub rule: Arc<str>,
    /// Log-only: counted, the answer left as it is.
    pub shadow: bool,
}

/// The RPZ actions.
#[derive(Debug, Clone)]
pub enum Policy {
    Nxdomain,
    Nodata,
    /// Not rewritten, and no later check applies to this answer.
    Passthru,
    /// No answer at all.
    Drop,
    /// Over UDP an empty truncated answer (the client retries over TCP); over TCP
    /// the ordinary answer.
    TcpOnly,
    /// A CNAME to another name (walled garden, block page), resolved as usual.
    Redirect(Arc<Redirect>),
    /// Records answered from the policy instead.
    Local(Arc<LocalData>),
}

impl Policy {
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Nxdomain => "nxdomain",
            Policy::Nodata => "nodata",
            Policy::Passthru => "passthru",
            Policy::Drop => "drop",
            Policy::TcpOnly => "tcp-only",
            Policy::Redirect(_) => "redirect",
            Policy::Local(_) => "local-data",
        }
    }
}

/// The SOA data of a policy zone (names absolute, without the trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySoa {
    pub ttl: u32,
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// A policy zone as rewritten answers show it: its name and its SOA record, which
/// goes in the additional section (as BIND does: with the TTL `min(TTL, MINIMUM)`).
pub struct PolicyZone {
    name: String,
    soa: PolicySoa,
    /// The SOA resource record, encoded once.
    soa_record: Box<[u8]>,
}

impl PolicyZone {
    /// `name` is the zone's apex (trailing dot optional).
    pub fn new(name: &str, soa: PolicySoa) -> Result<PolicyZone, String> {
        let owner = message::text_wire(name)?;
        let mut rdata = message::text_wire(&soa.mname)?;
        rdata.extend_from_slice(&message::text_wire(&soa.rname)?);
        for v in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        let mut rr = owner;
        rr.extend_from_slice(&TYPE_SOA.to_be_bytes());
        rr.extend_from_slice(&message::CLASS_IN.to_be_bytes());
        rr.extend_from_slice(&soa.ttl.min(soa.minimum).to_be_bytes());
        rr.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        rr.extend_from_slice(&rdata);
        let mut shown = String::new();
        message::name_text(&message::text_wire(name)?, &mut shown);
        Ok(PolicyZone {
            name: shown,
            soa,
            soa_record: rr.into_boxed_slice(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn soa(&self) -> &PolicySoa {
        &self.soa
    }

    pub(crate) fn soa_record(&self) -> &[u8] {
        &self.soa_record
    }
}

impl fmt::Debug for PolicyZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyZone")
            .field("name", &self.name)
            .field("serial", &self.soa.serial)
            .finish_non_exhaustive()
    }
}

/// A redirect target: `CNAME name`, or `CNAME *.name` which puts the query name in
/// front of `name` (RPZ's wildcard redirect).
pub struct Redirect {
    target: Box<[u8]>,
    prefix_qname: bool,
    shown: String,
}

impl Redirect {
    pub fn new(target: &str) -> Result<Redirect, String> {
        let (prefix_qname, rest) = match target.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, target),
        };
        Ok(Redirect {
            target: message::text_wire(rest)?.into_boxed_slice(),
            prefix_qname,
            shown: target.trim_end_matches('.').to_ascii_lowercase(),
        })
    }

    pub fn target(&self) -> &str {
        &self.shown
    }

    /// The target in wire format for a query for `qname` (wire); `None` when the
    /// name would be too long.
    pub(crate) fn target_for(&self, qname: &[u8]) -> Option<Vec<u8>> {
        if !self.prefix_qname {
            return Some(self.target.to_vec());
        }
        let head = qname.get(..qname.len().checked_sub(1)?)?;
        let mut t = Vec::with_capacity(head.len() + self.target.len());
        t.extend_from_slice(head);
        t.extend_from_slice(&self.target);
        (t.len() <= message::MAX_NAME).then_some(t)
    }
}

impl fmt::Debug for Redirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redirect({})", self.shown)
    }
}

/// Local data: records answered in place of the real ones, encoded once.
pub struct LocalData {
    /// (type, record data in wire format).
    records: Vec<(u16, Box<[u8]>)>,
    shown: Vec<String>,
}

impl LocalData {
    /// Records in presentation form, `(type, data)`: `("A", "192.0.2.1")`,
    /// `("TXT", "\"blocked\"")`, `("MX", "10 mail.example.")`.
    pub fn new(records: &[(String, String)]) -> Result<LocalData, String> {
        let mut out = LocalData {
            records: Vec::with_capacity(records.len()),
            shown: Vec::with_capacity(records.len()),
        };
        for (rtype, data) in records {
            let (code, wire) = crate::wire::encode_rdata(rtype, data)?;
            out.records.push((code, wire.into_boxed_slice()));
            out.shown.push(format!("{rtype} {data}"));
        }
        Ok(out)
    }

    /// The records of `rtype` (all of them for ANY).
    pub(crate) fn of_type(&self, rtype: u16) -> impl Iterator<Item = (u16, &[u8])> {
        self.records
            .iter()
            .filter(move |(t, _)| *t == rtype || rtype == message::TYPE_ANY)
            .map(|(t, d)| (*t, &**d))
    }
}

impl fmt::Debug for LocalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.shown).finish()
    }
}
