//! The other end of zone transfer: following a policy zone as a secondary.
//!
//! The filter loads its policy the way every resolver does, by zone transfer from a
//! primary (the hub, BIND, Knot, PowerDNS): an SOA query to see whether the serial
//! moved, then IXFR (RFC 1995) from the serial it holds — answered with the
//! differences, with the whole zone in AXFR form, or with the SOA alone when it is
//! current — or AXFR (RFC 5936) when it holds nothing. Every message of a transfer is
//! checked against the TSIG key when one is configured (RFC 8945: every signed
//! message verified, at most 99 unsigned ones in between, the last one signed). A
//! NOTIFY (RFC 1996) from the primary is validated and acknowledged here so the
//! filter's DNS front can hand such messages over unparsed.
//!
//! What comes out is policy-neutral and DNS-library-neutral: records with owners
//! relative to the apex, a type mnemonic and the data in presentation form
//! ([`ZoneRecord`]), exactly as a zone file would state them, so every RPZ action
//! (`CNAME .`, `*.`, `rpz-passthru.`, `rpz-drop.`, `rpz-tcp-only.`, redirects, local
//! data) survives and the `formats` RPZ reader gives them meaning. A transfer is all
//! or nothing: [`Client::ixfr`] returns the differences only when the whole answer
//! was read and checked, and a full zone goes to a [`FullZoneSink`] that the caller
//! discards unless the transfer ends well.

mod client;
mod notify;
mod parse;

use std::net::SocketAddr;

pub use client::{Client, Limits};
pub use notify::{NotifyAcceptor, NotifyOutcome};
pub use parse::parse_transfer;

use crate::{KeyAlgorithm, Secret, TsigConfig};

/// One zone to follow: its apex, its primary, and the TSIG key of the transfers.
#[derive(Debug, Clone)]
pub struct SecondaryZone {
    /// The zone's apex, without the trailing dot (`phishing.rpz.sharedefend`).
    pub apex: String,
    pub primary: SocketAddr,
    pub tsig: Option<TsigConfig>,
}

/// Parses a key given on the command line as `NAME:ALG:SECRET` (the secret in
/// base64; `ALG` is `hmac-sha256` or `hmac-sha512`). dig's order, `ALG:NAME:SECRET`,
/// is accepted too. The secret is checked to be base64.
pub fn parse_tsig_spec(spec: &str) -> Result<TsigConfig, String> {
    let mut parts = spec.splitn(3, ':');
    let (Some(a), Some(b), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a TSIG key is NAME:ALG:SECRET".to_owned());
    };
    let algorithm = |text: &str| match text.to_ascii_lowercase().as_str() {
        "hmac-sha256" => Some(KeyAlgorithm::HmacSha256),
        "hmac-sha512" => Some(KeyAlgorithm::HmacSha512),
        _ => None,
    };
    let (name, algorithm) = match (algorithm(b), algorithm(a)) {
        (Some(alg), _) => (a, alg),
        (None, Some(alg)) => (b, alg),
        (None, None) => {
            return Err(format!(
                "TSIG key {a:?}: algorithm {b:?} is not hmac-sha256 or hmac-sha512"
            ));
        }
    };
    if name.is_empty() {
        return Err("TSIG key: empty name".to_owned());
    }
    let config = TsigConfig {
        name: name.to_owned(),
        algorithm,
        secret: Secret::new(secret),
    };
    crate::server::make_key(&config)?;
    Ok(config)
}

/// A zone's SOA record; names in presentation form with the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    pub ttl: u32,
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

impl Soa {
    /// The record data in presentation form (`mname. rname. serial refresh retry
    /// expire minimum`).
    pub fn rdata(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}",
            self.mname,
            self.rname,
            self.serial,
            self.refresh,
            self.retry,
            self.expire,
            self.minimum
        )
    }

    /// Reads [`Soa::rdata`]'s form back (plain numbers only).
    pub fn from_rdata(ttl: u32, rdata: &str) -> Option<Soa> {
        let fields: Vec<&str> = rdata.split_ascii_whitespace().collect();
        let [mname, rname, serial, refresh, retry, expire, minimum] = fields.as_slice() else {
            return None;
        };
        let n = |t: &str| t.parse::<u32>().ok();
        Some(Soa {
            ttl,
            mname: (*mname).to_owned(),
            rname: (*rname).to_owned(),
            serial: n(serial)?,
            refresh: n(refresh)?,
            retry: n(retry)?,
            expire: n(expire)?,
            minimum: n(minimum)?,
        })
    }
}

/// True when serial `a` is newer than `b` in RFC 1982 arithmetic. Two serials
/// exactly 2^31 apart are neither newer nor older: not newer.
pub fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

/// One record of a transferred zone, as a zone file would state it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneRecord {
    /// Relative to the apex, lowercase, in presentation form (bytes other than
    /// letters, digits, `-`, `_` and `*` escaped as `\DDD`); `@` for the apex.
    pub owner: String,
    pub ttl: u32,
    /// The type mnemonic (`CNAME`, `A`, `TXT`, `TYPE65280`).
    pub rtype: String,
    /// The data in presentation form on one line (names absolute, with the trailing
    /// dot; a CNAME target lowercase; what has no safe text form as RFC 3597 `\# n
    /// hex`).
    pub data: String,
}

impl ZoneRecord {
    /// Two records are the same record when owner, type and data agree; the TTL is
    /// an attribute (RFC 2181 §5.2).
    pub fn same_record(&self, other: &ZoneRecord) -> bool {
        self.owner == other.owner && self.rtype == other.rtype && self.data == other.data
    }
}

/// One difference sequence of an IXFR: the zone at serial `from` becomes the zone at
/// serial `to` by deleting `removed` and adding `added`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub from: u32,
    pub to: u32,
    pub removed: Vec<ZoneRecord>,
    pub added: Vec<ZoneRecord>,
}

/// What a transfer brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The primary's serial is not newer than ours: nothing to do.
    UpToDate(Soa),
    /// The whole zone at `soa.serial`; its records went to the [`FullZoneSink`].
    Full { soa: Soa, records: u64 },
    /// The differences from our serial to `soa.serial`, in order.
    Incremental { soa: Soa, diffs: Vec<Diff> },
}

/// Where a full zone's records go while it is transferred (a temporary file, a
/// builder). The caller keeps them only if the transfer returns
/// [`Outcome::Full`]; on an error they are to be thrown away.
pub trait FullZoneSink {
    /// The zone starts; `soa` is its SOA (the one the zone ends with).
    fn begin(&mut self, soa: &Soa) -> Result<(), String>;
    /// One record, the apex NS records included, the SOA not.
    fn record(&mut self, record: ZoneRecord) -> Result<(), String>;
}

/// Collects a full zone in memory (tests, small zones).
#[derive(Debug, Default)]
pub struct CollectSink {
    pub soa: Option<Soa>,
    pub records: Vec<ZoneRecord>,
}

impl FullZoneSink for CollectSink {
    fn begin(&mut self, soa: &Soa) -> Result<(), String> {
        self.soa = Some(soa.clone());
        self.records.clear();
        Ok(())
    }

    fn record(&mut self, record: ZoneRecord) -> Result<(), String> {
        self.records.push(record);
        Ok(())
    }
}

/// Why a transfer or SOA query failed. In every case the zone the caller holds is
/// left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XfrError {
    /// Could not connect, or the connection failed.
    #[error("{0}")]
    Io(String),
    #[error("timed out: {0}")]
    Timeout(String),
    /// The stream ended before the transfer did.
    #[error("truncated: the primary closed the connection before the final SOA ({0})")]
    Truncated(String),
    /// The primary answered with an error rcode.
    #[error("the primary answered {0}")]
    Rcode(String),
    /// A TSIG check failed: unsigned answer to a signed request, bad MAC, bad time,
    /// or a last message unsigned.
    #[error("tsig: {0}")]
    Tsig(String),
    /// The answer is not a well-formed transfer of the zone.
    #[error("malformed transfer: {0}")]
    Malformed(String),
    /// The primary's serial is older than ours (RFC 1982): refused.
    #[error("the primary's serial {theirs} is older than ours ({ours}): refused")]
    SerialBackwards { ours: u32, theirs: u32 },
    /// More records or messages than [`Limits`] allow.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The sink refused a record (disk full, …).
    #[error("storing the zone failed: {0}")]
    Sink(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsig_specs() {
        let secret = "c6fbQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";
        let k = parse_tsig_spec(&format!("hub-key:hmac-sha256:{secret}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (k.name.as_str(), k.algorithm),
            ("hub-key", KeyAlgorithm::HmacSha256)
        );
        let k = parse_tsig_spec(&format!("hmac-sha512:other:{secret}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (k.name.as_str(), k.algorithm),
            ("other", KeyAlgorithm::HmacSha512)
        );
        for bad in [
            "hub-key:hmac-md5:c2VjcmV0",
            "hub-key",
            "hub-key:hmac-sha256:not base64!",
            ":hmac-sha256:c2VjcmV0",
        ] {
            assert!(parse_tsig_spec(bad).is_err(), "{bad}");
        }
        // The secret never shows in Debug.
        assert!(!format!("{k:?}").contains(secret));
    }

    #[test]
    fn serial_arithmetic() {
        assert!(serial_newer(2, 1));
        assert!(!serial_newer(1, 2));
        assert!(!serial_newer(5, 5));
        assert!(serial_newer(1, u32::MAX));
        assert!(!serial_newer(u32::MAX, 1));
        assert!(!serial_newer(0x8000_0000, 0));
        assert!(!serial_newer(0, 0x8000_0000));
        assert!(serial_newer(0x7fff_ffff, 0));
    }

    #[test]
    fn soa_text_round_trips() {
        let soa = Soa {
            ttl: 300,
            mname: "localhost.".into(),
            rname: "root.localhost.".into(),
            serial: 7,
            refresh: 3600,
            retry: 600,
            expire: 864000,
            minimum: 300,
        };
        assert_eq!(
            soa.rdata(),
            "localhost. root.localhost. 7 3600 600 864000 300"
        );
        assert_eq!(Soa::from_rdata(300, &soa.rdata()), Some(soa));
        assert_eq!(Soa::from_rdata(1, "a. b. 1 2 3 4"), None);
    }
}
