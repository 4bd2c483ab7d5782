//! Every RPZ action a filter must carry out, and every trigger it evaluates.
//!
//! [`Action`](crate::Action) is what the hub publishes (four actions, all `Copy`); a
//! filter also loads partner and commercial zones, which use the rest of RPZ: TCP-only,
//! CNAME redirects to a walled garden, and local data. [`Response`] is that full set,
//! [`ZoneTrigger`] adds the address triggers (RPZ-IP, RPZ-CLIENT-IP) to the name
//! triggers of [`Trigger`].

use std::fmt;

use indicator::{Domain, IpNet};

use crate::{Action, Trigger};

/// What the resolver does when a rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Response {
    /// `CNAME .`: the name does not exist.
    Nxdomain,
    /// `CNAME *.`: the name exists, with no data of the type asked.
    Nodata,
    /// `CNAME rpz-passthru.`: answer as resolved; later zones are not consulted.
    Passthru,
    /// `CNAME rpz-drop.`: no answer at all.
    Drop,
    /// `CNAME rpz-tcp-only.`: over UDP, a truncated answer (the client retries over
    /// TCP); over TCP, answer as resolved.
    TcpOnly,
    /// `CNAME target`: answer as if the name were an alias of the target (a walled
    /// garden or block page).
    Redirect(Redirect),
    /// Records answered instead (`A 192.0.2.1`, `TXT "…"`); a query for a type not
    /// among them gets NODATA.
    LocalData(Box<[LocalRecord]>),
}

impl Response {
    pub const fn is_passthru(&self) -> bool {
        matches!(self, Response::Passthru)
    }
}

impl From<Action> for Response {
    fn from(action: Action) -> Response {
        match action {
            Action::Nxdomain => Response::Nxdomain,
            Action::Nodata => Response::Nodata,
            Action::Passthru => Response::Passthru,
            Action::Drop => Response::Drop,
        }
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Nxdomain => f.write_str("nxdomain"),
            Response::Nodata => f.write_str("nodata"),
            Response::Passthru => f.write_str("passthru"),
            Response::Drop => f.write_str("drop"),
            Response::TcpOnly => f.write_str("tcp-only"),
            Response::Redirect(r) => write!(f, "cname {r}"),
            Response::LocalData(rrs) => {
                f.write_str("local")?;
                for rr in rrs.iter() {
                    write!(f, " [{} {}]", rr.rtype, rr.rdata)?;
                }
                Ok(())
            }
        }
    }
}

/// The target of a CNAME redirect.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Redirect {
    pub target: Domain,
    /// `CNAME *.garden.example.`: the query name is put in front of the target
    /// (`evil.example` → `evil.example.garden.example`), so the garden can log it.
    pub prepend_qname: bool,
}

impl fmt::Display for Redirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let star = if self.prepend_qname { "*." } else { "" };
        write!(f, "{star}{}", self.target)
    }
}

/// One record of local data, in presentation form (the filter turns it into wire
/// form; this crate does not know the DNS library).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalRecord {
    /// Upper case: `A`, `AAAA`, `TXT`, `MX`, …
    pub rtype: Box<str>,
    pub rdata: Box<str>,
}

impl LocalRecord {
    pub fn new(rtype: &str, rdata: &str) -> LocalRecord {
        LocalRecord {
            rtype: rtype.to_ascii_uppercase().into(),
            rdata: rdata.into(),
        }
    }
}

/// Which queries a rule of a policy zone catches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ZoneTrigger {
    /// The query name (exact or wildcard).
    Qname(Trigger),
    /// `rpz-ip`: an address in the answer lies in the prefix.
    ResponseIp(IpNet),
    /// `rpz-client-ip`: the client's address lies in the prefix.
    ClientIp(IpNet),
}

impl fmt::Display for ZoneTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZoneTrigger::Qname(t) => write!(f, "{t}"),
            ZoneTrigger::ResponseIp(n) => write!(f, "rpz-ip {n}"),
            ZoneTrigger::ClientIp(n) => write!(f, "rpz-client-ip {n}"),
        }
    }
}

impl From<Trigger> for ZoneTrigger {
    fn from(t: Trigger) -> ZoneTrigger {
        ZoneTrigger::Qname(t)
    }
}
