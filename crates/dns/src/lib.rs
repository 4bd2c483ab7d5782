//! The hub as an authoritative primary for its RPZ zones: the one crate that speaks
//! DNS on the wire.
//!
//! Resolvers (BIND, Knot, PowerDNS, Unbound) load Response Policy Zones by zone
//! transfer, so the hub serves each feed as a zone `<feed>.rpz.sharedefend.`: SOA and
//! NS at the apex over UDP and TCP, AXFR (RFC 5936) streamed in many messages, IXFR
//! (RFC 1995) from the journal's deltas, every transfer authorised by a partner's TSIG
//! key (RFC 8945) or, as a logged opt-in for servers that cannot sign, by source
//! address, and NOTIFY (RFC 1996) to each partner's servers when a serial changes
//! and once at start-up.
//!
//! The same crate is the filter's query path ([`front`]): client queries over UDP and
//! TCP, forwarding, the answer cache, and RPZ rewrites decided by a [`front::Screen`]
//! the filter implements.
//!
//! The other direction lives in [`secondary`]: the filter following policy zones
//! from a primary (SOA query, AXFR, IXFR, TSIG, NOTIFY received), with records handed
//! out in a policy-neutral form.
//!
//! The crate knows nothing of the store: it reads zones through [`ZoneSource`], which
//! the hub implements over its journal. Only this crate knows the `domain` library
//! (wire format, name compression, TSIG); see `docs/ARCHITECTURE.md` for why `domain`
//! and not hickory.

mod bind;
mod config;
pub mod front;
mod notify;
pub mod secondary;
mod server;
mod stub;
mod wire;

pub use bind::{bind_pair, bind_udp_tcp};
pub use config::{Config, ConfigError, KeyAlgorithm, PartnerConfig, Secret, TsigConfig};
pub use server::{POLL_INTERVAL, PUBLISH_WAIT, Server, Stats};
pub use stub::{STUB_V4, STUB_V6, probe_rcode, serve_stub, stub_answer};

/// A zone the source publishes, with its apex data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneInfo {
    /// The feed the zone publishes (partners are granted feeds).
    pub feed: String,
    /// The zone's apex, without the trailing dot (`phishing.rpz.sharedefend`).
    pub apex: String,
    /// The current serial: the feed's journal serial.
    pub serial: u32,
    pub soa: SoaFields,
}

/// The SOA and NS data of a zone apex (names without the trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoaFields {
    /// TTL of every record of the zone.
    pub ttl: u32,
    pub mname: String,
    pub rname: String,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
    pub ns: Vec<String>,
}

/// One policy record: the owner relative to the apex (`name`, `*.name`) and the
/// action, written as RPZ's CNAME.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneRule {
    pub owner: String,
    pub action: policy::Action,
}

/// A zone's full content at one serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The zone at the snapshot's serial.
    pub info: ZoneInfo,
    pub rules: Vec<ZoneRule>,
}

/// The condensed difference between serial `from` and `info.serial`: what to remove
/// and what to add, each rule at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub info: ZoneInfo,
    pub from: u32,
    pub removed: Vec<ZoneRule>,
    pub added: Vec<ZoneRule>,
}

/// A failure to read the zones (the store is down, …); the request is answered
/// SERVFAIL and the failure logged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Where the zones come from. Calls block (a store read transaction each); the
/// server calls them off the async threads.
pub trait ZoneSource: Send + Sync + 'static {
    /// Every zone with its current serial.
    fn zones(&self) -> Result<Vec<ZoneInfo>, SourceError>;
    /// The full content of `feed`'s zone at its current serial; `None` if no such feed.
    fn snapshot(&self, feed: &str) -> Result<Option<Snapshot>, SourceError>;
    /// The condensed changes from serial `from` to the current one; `None` when the
    /// retained journal does not reach back to `from` (the client then gets the full
    /// zone) or there is no such feed.
    fn delta(&self, feed: &str, from: u32) -> Result<Option<Delta>, SourceError>;
}
