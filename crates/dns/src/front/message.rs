//! The filter's own small DNS wire codec: the query's header and question, the
//! upstream answer's records, and the few answers the filter writes itself.
//!
//! The hot path must cost next to nothing for a name that is not listed, so a query
//! is not decoded as a whole message: only the header, the one question and an OPT
//! record are read, by hand, with every offset checked (fuzzed in `fuzz/`). An
//! upstream answer is walked once when it arrives, and what the query path needs
//! later is kept beside its bytes (where the TTLs are, the CNAME chain, the answer
//! addresses), so a cached answer is served by copying it and patching the ID, the
//! question's case and the TTLs. `domain` is not used here: it decodes and
//! re-encodes whole messages, which is the cost this module exists to avoid.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) const HEADER_LEN: usize = 12;
pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_NS: u16 = 2;
pub(crate) const TYPE_CNAME: u16 = 5;
pub(crate) const TYPE_SOA: u16 = 6;
pub(crate) const TYPE_PTR: u16 = 12;
pub(crate) const TYPE_MX: u16 = 15;
#[cfg(test)]
pub(crate) const TYPE_TXT: u16 = 16;
pub(crate) const TYPE_AAAA: u16 = 28;
pub(crate) const TYPE_SRV: u16 = 33;
pub(crate) const TYPE_DNAME: u16 = 39;
pub(crate) const TYPE_OPT: u16 = 41;
pub(crate) const TYPE_IXFR: u16 = 251;
pub(crate) const TYPE_AXFR: u16 = 252;
pub(crate) const TYPE_ANY: u16 = 255;
pub(crate) const CLASS_IN: u16 = 1;

pub(crate) const RCODE_NOERROR: u8 = 0;
pub(crate) const RCODE_FORMERR: u8 = 1;
pub(crate) const RCODE_SERVFAIL: u8 = 2;
pub(crate) const RCODE_NXDOMAIN: u8 = 3;
pub(crate) const RCODE_NOTIMP: u8 = 4;
pub(crate) const RCODE_REFUSED: u8 = 5;
/// Extended RCODE 16 (RFC 6891): the upper 8 bits go in the OPT record.
pub(crate) const RCODE_BADVERS: u16 = 16;

/// Header flag bits (second 16-bit word).
pub(crate) const FLAG_QR: u16 = 0x8000;
pub(crate) const FLAG_TC: u16 = 0x0200;
pub(crate) const FLAG_RD: u16 = 0x0100;
pub(crate) const FLAG_RA: u16 = 0x0080;
pub(crate) const FLAG_AD: u16 = 0x0020;
pub(crate) const FLAG_CD: u16 = 0x0010;

/// The DO bit in the OPT record's TTL field.
const EDNS_DO: u32 = 0x8000;
/// Extended DNS Errors (RFC 8914): the option code.
const OPTION_EDE: u16 = 15;

/// A name on the wire is at most 255 octets.
pub(crate) const MAX_NAME: usize = 255;
/// How many compression pointers one name may follow.
const MAX_POINTERS: usize = 64;

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    let mut w = [0u8; 4];
    w.copy_from_slice(b);
    Some(u32::from_be_bytes(w))
}

/// Overwrites two bytes; a no-op past the end (callers write inside what they built).
pub(crate) fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    if let Some(b) = buf.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

pub(crate) fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    if let Some(b) = buf.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

pub(crate) fn flags_of(buf: &[u8]) -> u16 {
    u16_at(buf, 2).unwrap_or(0)
}

/// What a client's OPT record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A query, read as far as the filter needs: header, the one question, EDNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pub id: u16,
    pub flags: u16,
    /// The question's name as sent: bytes `HEADER_LEN..HEADER_LEN + qname_len`.
    pub qname_len: usize,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

impl Query {
    /// End of the question section.
    pub fn question_end(&self) -> usize {
        HEADER_LEN + self.qname_len + 4
    }

    pub fn cd(&self) -> bool {
        self.flags & FLAG_CD != 0
    }

    pub fn dnssec_ok(&self) -> bool {
        self.edns.is_some_and(|e| e.dnssec_ok)
    }
}

/// Why a query was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Not a query at all (too short, or a response): no answer.
    Ignore,
    /// Answer with this RCODE, header only (FORMERR, NOTIMP).
    Answer(u8),
}

/// Reads a query's header, its question and its OPT record.
pub(crate) fn parse_query(buf: &[u8]) -> Result<Query, Unreadable> {
    if buf.len() < HEADER_LEN {
        return Err(Unreadable::Ignore);
    }
    let id = u16_at(buf, 0).ok_or(Unreadable::Ignore)?;
    let flags = flags_of(buf);
    if flags & FLAG_QR != 0 {
        return Err(Unreadable::Ignore);
    }
    if (flags >> 11) & 0xF != 0 {
        return Err(Unreadable::Answer(RCODE_NOTIMP));
    }
    let count = |at| u16_at(buf, at).unwrap_or(0);
    let formerr = Unreadable::Answer(RCODE_FORMERR);
    if count(4) != 1 {
        return Err(formerr);
    }
    let qname_end = plain_name_end(buf, HEADER_LEN).ok_or(formerr)?;
    let qtype = u16_at(buf, qname_end).ok_or(formerr)?;
    let qclass = u16_at(buf, qname_end + 2).ok_or(formerr)?;
    let mut at = qname_end + 4;
    for _ in 0..u32::from(count(6)) + u32::from(count(8)) {
        at = skip_record(buf, at).ok_or(formerr)?.end;
    }
    let mut edns = None;
    for _ in 0..count(10) {
        let rr = skip_record(buf, at).ok_or(formerr)?;
        if rr.rtype == TYPE_OPT {
            // Once, owned by the root (RFC 6891 §6.1.1).
            if edns.is_some() || buf.get(at) != Some(&0) {
                return Err(formerr);
            }
            let ttl = u32_at(buf, rr.ttl_at).ok_or(formerr)?;
            edns = Some(Edns {
                udp_size: rr.class,
                version: ((ttl >> 16) & 0xFF) as u8,
                dnssec_ok: ttl & EDNS_DO != 0,
            });
        }
        at = rr.end;
    }
    Ok(Query {
        id,
        flags,
        qname_len: qname_end - HEADER_LEN,
        qtype,
        qclass,
        edns,
    })
}

/// The end of an uncompressed name starting at `at`; `None` if it is compressed,
/// uses label types other than plain labels, runs past the buffer or is too long.
fn plain_name_end(buf: &[u8], mut at: usize) -> Option<usize> {
    let start = at;
    loop {
        let len = usize::from(*buf.get(at)?);
        if len & 0xC0 != 0 {
            return None;
        }
        at += 1 + len;
        if at - start > MAX_NAME {
            return None;
        }
        if len == 0 {
            return Some(at);
        }
    }
}

/// The end of a possibly compressed name starting at `at` (in the record it is in,
/// not following pointers).
fn skip_name(buf: &[u8], mut at: usize) -> Option<usize> {
    let start = at;
    loop {
        let len = *buf.get(at)?;
        match len & 0xC0 {
            0xC0 => {
                buf.get(at + 1)?;
                return Some(at + 2);
            }
            0 => {
                at += 1 + usize::from(len);
                if at - start > MAX_NAME {
                    return None;
                }
                if len == 0 {
                    return Some(at);
                }
            }
            _ => return None,
        }
    }
}

/// Reads a possibly compressed name at `at` into `out` as lowercase wire format.
/// Returns where the name ends in the record. Pointers must point backwards, at
/// most [`MAX_POINTERS`] of them, and the name must fit in 255 octets.
pub(crate) fn read_name(buf: &[u8], at: usize, out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    let mut pos = at;
    let mut end = None;
    let mut hops = 0;
    loop {
        let len = *buf.get(pos)?;
        match len & 0xC0 {
            0xC0 => {
                let target = usize::from(u16_at(buf, pos)? & 0x3FFF);
                if target >= pos || hops >= MAX_POINTERS {
                    return None;
                }
                hops += 1;
                end.get_or_insert(pos + 2);
                pos = target;
            }
            0 => {
                let label = buf.get(pos..pos + 1 + usize::from(len))?;
                if out.len() + label.len() > MAX_NAME {
                    return None;
                }
                out.extend(label.iter().map(u8::to_ascii_lowercase));
                pos += label.len();
                if len == 0 {
                    return Some(end.unwrap_or(pos));
                }
            }
            _ => return None,
        }
    }
}

/// The fixed fields of one resource record and where it ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordAt {
    pub rtype: u16,
    pub class: u16,
    pub ttl_at: usize,
    pub rdata: usize,
    pub end: usize,
}

/// Skips the record at `at`, returning its fields.
pub(crate) fn skip_record(buf: &[u8], at: usize) -> Option<RecordAt> {
    let name_end = skip_name(buf, at)?;
    let rtype = u16_at(buf, name_end)?;
    let class = u16_at(buf, name_end + 2)?;
    let rdlen = usize::from(u16_at(buf, name_end + 8)?);
    let rdata = name_end + 10;
    let end = rdata + rdlen;
    if end > buf.len() {
        return None;
    }
    Some(RecordAt {
        rtype,
        class,
        ttl_at: name_end + 4,
        rdata,
        end,
    })
}

/// Writes a wire name as presentation text: lowercase (the wire given is), labels
/// joined by `.`, no trailing dot, the root as `""`. Bytes other than letters,
/// digits, `-`, `_` and `*` are written `\DDD`, so a label holding a dot can never
/// pass for two labels.
pub(crate) fn name_text(wire: &[u8], out: &mut String) {
    out.clear();
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        if len == 0 || len & 0xC0 != 0 {
            break;
        }
        let Some(label) = wire.get(at + 1..at + 1 + usize::from(len)) else {
            break;
        };
        if at > 0 {
            out.push('.');
        }
        for &b in label {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*' {
                out.push(char::from(b.to_ascii_lowercase()));
            } else {
                out.push('\\');
                out.push(char::from(b'0' + b / 100));
                out.push(char::from(b'0' + b / 10 % 10));
                out.push(char::from(b'0' + b % 10));
            }
        }
        at += 1 + usize::from(len);
    }
}

/// Parses presentation text (`a.b.example`, trailing dot optional, `\DDD` and `\X`
/// escapes, `""` or `.` for the root) into lowercase wire format.
pub(crate) fn text_wire(text: &str) -> Result<Vec<u8>, String> {
    let body = text.strip_suffix('.').unwrap_or(text);
    let mut out = Vec::with_capacity(body.len() + 2);
    if body.is_empty() {
        out.push(0);
        return Ok(out);
    }
    let bytes = body.as_bytes();
    let mut label: Vec<u8> = Vec::with_capacity(63);
    let mut i = 0;
    let flush = |label: &mut Vec<u8>, out: &mut Vec<u8>| -> Result<(), String> {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "name {text:?}: empty label or label over 63 octets"
            ));
        }
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
        label.clear();
        Ok(())
    };
    while let Some(&b) = bytes.get(i) {
        match b {
            b'.' => {
                flush(&mut label, &mut out)?;
                i += 1;
            }
            b'\\' => {
                let digits = bytes.get(i + 1..i + 4);
                match digits {
                    Some(d) if d.iter().all(u8::is_ascii_digit) => {
                        let v = d
                            .iter()
                            .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'));
                        label.push(
                            u8::try_from(v).map_err(|_| format!("name {text:?}: bad escape"))?,
                        );
                        i += 4;
                    }
                    _ => {
                        let c = bytes
                            .get(i + 1)
                            .ok_or_else(|| format!("name {text:?}: trailing backslash"))?;
                        label.push(*c);
                        i += 2;
                    }
                }
            }
            _ => {
                label.push(b);
                i += 1;
            }
        }
    }
    flush(&mut label, &mut out)?;
    out.push(0);
    if out.len() > MAX_NAME {
        return Err(format!("name {text:?} is over 255 octets"));
    }
    Ok(out)
}

/// An upstream answer, walked once: what the cache keeps beside the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The message without its OPT record (and anything after it), ARCOUNT adjusted.
    pub wire: Vec<u8>,
    pub rcode: u8,
    pub truncated: bool,
    /// Offsets of every TTL field, with the TTL as received.
    pub ttls: Vec<(u16, u32)>,
    /// The CNAME chain from the query name: each target in lowercase wire format
    /// with the TTL of the CNAME record that leads to it.
    pub chain: Vec<(Vec<u8>, u32)>,
    /// A and AAAA addresses owned by the last name of the chain (or the query name).
    pub addrs: Vec<IpAddr>,
    /// How long the answer may be cached (0: not at all).
    pub ttl: u32,
}

/// Longest chain of CNAMEs followed in an answer.
pub(crate) const MAX_CHAIN: usize = 16;
/// Longest time a positive answer is cached.
pub(crate) const MAX_TTL: u32 = 86_400;
/// Longest time a negative answer is cached (RFC 2308 §5 suggests one to three hours).
pub(crate) const MAX_NEGATIVE_TTL: u32 = 10_800;

/// Why an upstream message was not taken as the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Not an answer to this question (wrong ID, question or shape): keep waiting.
    NotOurs,
    /// An answer to this question that does not parse.
    Malformed,
}

/// Reads an upstream message that should answer `id` / `qname` (lowercase wire) /
/// `qtype`, class IN.
pub(crate) fn parse_answer(
    buf: &[u8],
    id: u16,
    qname: &[u8],
    qtype: u16,
) -> Result<Answer, Rejected> {
    use Rejected::{Malformed, NotOurs};
    let flags = flags_of(buf);
    if buf.len() < HEADER_LEN || u16_at(buf, 0) != Some(id) || flags & FLAG_QR == 0 {
        return Err(NotOurs);
    }
    if (flags >> 11) & 0xF != 0 || u16_at(buf, 4) != Some(1) {
        return Err(NotOurs);
    }
    let mut scratch = Vec::with_capacity(MAX_NAME);
    let qname_end = read_name(buf, HEADER_LEN, &mut scratch).ok_or(NotOurs)?;
    if scratch != qname
        || u16_at(buf, qname_end) != Some(qtype)
        || u16_at(buf, qname_end + 2) != Some(CLASS_IN)
        || qname_end != HEADER_LEN + qname.len()
    {
        return Err(NotOurs);
    }
    let rcode = (flags & 0xF) as u8;
    let truncated = flags & FLAG_TC != 0;
    let counts = [
        u16_at(buf, 6).unwrap_or(0),
        u16_at(buf, 8).unwrap_or(0),
        u16_at(buf, 10).unwrap_or(0),
    ];
    let mut at = qname_end + 4;
    let mut ttls = Vec::new();
    let mut cnames: Vec<(Vec<u8>, Vec<u8>, u32)> = Vec::new();
    let mut owned: Vec<(Vec<u8>, u16, IpAddr)> = Vec::new();
    let mut soa_min: Option<u32> = None;
    let mut min_ttl = u32::MAX;
    let mut cut = None;
    let mut kept_additional = 0u16;
    for (section, &n) in counts.iter().enumerate() {
        for _ in 0..n {
            let rr = skip_record(buf, at).ok_or(Malformed)?;
            // Every owner must decompress: the bytes are passed on to clients.
            read_name(buf, at, &mut scratch).ok_or(Malformed)?;
            if section == 2 && rr.rtype == TYPE_OPT {
                cut = Some(at);
                break;
            }
            let ttl = u32_at(buf, rr.ttl_at).ok_or(Malformed)?;
            // RFC 2181 §8: a TTL with the top bit set is taken as zero.
            let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
            min_ttl = min_ttl.min(ttl);
            ttls.push((u16::try_from(rr.ttl_at).map_err(|_| Malformed)?, ttl));
            if section == 2 {
                kept_additional += 1;
            }
            if section == 0 && rr.class == CLASS_IN {
                match rr.rtype {
                    TYPE_CNAME => {
                        let mut owner = Vec::new();
                        read_name(buf, at, &mut owner).ok_or(Malformed)?;
                        let mut target = Vec::new();
                        let end = read_name(buf, rr.rdata, &mut target).ok_or(Malformed)?;
                        if end != rr.end {
                            return Err(Malformed);
                        }
                        cnames.push((owner, target, ttl));
                    }
                    TYPE_A | TYPE_AAAA => {
                        let mut owner = Vec::new();
                        read_name(buf, at, &mut owner).ok_or(Malformed)?;
                        let data = buf.get(rr.rdata..rr.end).ok_or(Malformed)?;
                        let addr = match (rr.rtype, data.len()) {
                            (TYPE_A, 4) => {
                                let mut o = [0u8; 4];
                                o.copy_from_slice(data);
                                IpAddr::V4(Ipv4Addr::from(o))
                            }
                            (TYPE_AAAA, 16) => {
                                let mut o = [0u8; 16];
                                o.copy_from_slice(data);
                                IpAddr::V6(Ipv6Addr::from(o))
                            }
                            _ => return Err(Malformed),
                        };
                        owned.push((owner, rr.rtype, addr));
                    }
                    _ => {}
                }
            }
            if section == 1 && rr.rtype == TYPE_SOA {
                // MINIMUM is the last field of the SOA data.
                let min = rr
                    .end
                    .checked_sub(4)
                    .and_then(|m| u32_at(buf, m))
                    .ok_or(Malformed)?;
                soa_min = Some(min.min(ttl));
            }
            at = rr.end;
        }
    }
    // Follow the chain from the query name.
    let mut chain: Vec<(Vec<u8>, u32)> = Vec::new();
    let mut current: &[u8] = qname;
    for _ in 0..MAX_CHAIN {
        let Some((_, target, ttl)) = cnames.iter().find(|(o, _, _)| o.as_slice() == current) else {
            break;
        };
        chain.push((target.clone(), *ttl));
        current = target;
    }
    let addrs: Vec<IpAddr> = owned
        .iter()
        .filter(|(o, _, _)| o.as_slice() == current)
        .map(|(_, _, a)| *a)
        .collect();
    let has_data = qtype == TYPE_CNAME
        || qtype == TYPE_ANY
        || owned
            .iter()
            .any(|(o, t, _)| o.as_slice() == current && *t == qtype)
        || answer_has(buf, counts[0], qname_end + 4, current, qtype);
    let ttl = match rcode {
        RCODE_NOERROR if has_data => min_ttl.min(MAX_TTL),
        RCODE_NOERROR | RCODE_NXDOMAIN => match soa_min {
            // RFC 2308 §5: the lesser of the SOA's TTL and MINIMUM; no SOA, no caching.
            Some(min) => min.min(min_ttl).min(MAX_NEGATIVE_TTL),
            None => 0,
        },
        _ => 0,
    };
    let ttl = if truncated { 0 } else { ttl };
    let mut wire = buf.get(..cut.unwrap_or(at)).ok_or(Malformed)?.to_vec();
    put_u16(&mut wire, 10, kept_additional);
    Ok(Answer {
        wire,
        rcode,
        truncated,
        ttls,
        chain,
        addrs,
        ttl,
    })
}

/// True when the answer section has a record of `rtype` owned by `owner`.
fn answer_has(buf: &[u8], count: u16, mut at: usize, owner: &[u8], rtype: u16) -> bool {
    let mut name = Vec::with_capacity(MAX_NAME);
    for _ in 0..count {
        let Some(rr) = skip_record(buf, at) else {
            return false;
        };
        if rr.rtype == rtype && read_name(buf, at, &mut name).is_some() && name == owner {
            return true;
        }
        at = rr.end;
    }
    false
}

/// Writes the records of an answer section into `out` with every name in owner and
/// data spelled out (no compression pointers), so they can be placed in another
/// message. Types whose data holds names (CNAME, NS, PTR, DNAME, MX, SRV, SOA) are
/// decompressed; others are copied as they are (RFC 3597 §4: newer types never
/// compress). Returns how many records were written.
pub(crate) fn copy_answer_records(buf: &[u8], out: &mut Vec<u8>) -> Option<u16> {
    let mut name = Vec::with_capacity(MAX_NAME);
    let qname_end = read_name(buf, HEADER_LEN, &mut name)?;
    let mut at = qname_end + 4;
    let count = u16_at(buf, 6)?;
    for _ in 0..count {
        let rr = skip_record(buf, at)?;
        read_name(buf, at, &mut name)?;
        out.extend_from_slice(&name);
        out.extend_from_slice(buf.get(rr.ttl_at - 4..rr.ttl_at + 4)?);
        let len_at = out.len();
        out.extend_from_slice(&[0, 0]);
        let rdata = buf.get(rr.rdata..rr.end)?;
        let prefix = match rr.rtype {
            TYPE_CNAME | TYPE_NS | TYPE_PTR | TYPE_DNAME => Some((0, 1)),
            TYPE_MX => Some((2, 1)),
            TYPE_SRV => Some((6, 1)),
            TYPE_SOA => Some((0, 2)),
            _ => None,
        };
        match prefix {
            None => out.extend_from_slice(rdata),
            Some((fixed, names)) => {
                out.extend_from_slice(buf.get(rr.rdata..rr.rdata + fixed)?);
                let mut p = rr.rdata + fixed;
                for _ in 0..names {
                    p = read_name(buf, p, &mut name)?;
                    out.extend_from_slice(&name);
                }
                out.extend_from_slice(buf.get(p..rr.end)?);
            }
        }
        let rdlen = u16::try_from(out.len() - len_at - 2).ok()?;
        put_u16(out, len_at, rdlen);
        at = rr.end;
    }
    Some(count)
}

/// A response being written: the header from the query, the question copied.
#[derive(Debug)]
pub(crate) struct Writer<'o> {
    pub out: &'o mut Vec<u8>,
    answers: u16,
    additional: u16,
}

/// Which section a record goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Answer,
    Additional,
}

impl<'o> Writer<'o> {
    /// Starts a response to `query` (read from `buf`) with `rcode`: ID, RD and CD
    /// copied, QR and RA set, the question copied as sent.
    pub fn start(out: &'o mut Vec<u8>, buf: &[u8], query: &Query, rcode: u8) -> Writer<'o> {
        out.clear();
        let flags =
            FLAG_QR | FLAG_RA | (query.flags & (FLAG_RD | FLAG_CD)) | u16::from(rcode & 0xF);
        out.extend_from_slice(&query.id.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(
            buf.get(HEADER_LEN..query.question_end())
                .unwrap_or_default(),
        );
        Writer {
            out,
            answers: 0,
            additional: 0,
        }
    }

    /// A header-only response (FORMERR, NOTIMP) to a message that could not be read.
    pub fn header_only(out: &mut Vec<u8>, buf: &[u8], rcode: u8) {
        out.clear();
        let id = u16_at(buf, 0).unwrap_or(0);
        let flags = FLAG_QR | FLAG_RA | (flags_of(buf) & (FLAG_RD | 0x7800)) | u16::from(rcode);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0; 8]);
    }

    pub fn set_flag(&mut self, flag: u16) {
        let f = flags_of(self.out) | flag;
        put_u16(self.out, 2, f);
    }

    /// A record with an owner in wire format (or a pointer to the question name
    /// when `owner` is `None`).
    pub fn record(
        &mut self,
        section: Section,
        owner: Option<&[u8]>,
        rtype: u16,
        ttl: u32,
        rdata: &[u8],
    ) {
        match owner {
            Some(o) => self.out.extend_from_slice(o),
            None => self.out.extend_from_slice(&[0xC0, HEADER_LEN as u8]),
        }
        self.out.extend_from_slice(&rtype.to_be_bytes());
        self.out.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.out.extend_from_slice(&ttl.to_be_bytes());
        let len = u16::try_from(rdata.len()).unwrap_or(u16::MAX);
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out
            .extend_from_slice(rdata.get(..usize::from(len)).unwrap_or_default());
        self.count(section, 1);
    }

    /// Bytes of complete records already encoded (counted into `section`).
    pub fn raw_records(&mut self, section: Section, bytes: &[u8], n: u16) {
        self.out.extend_from_slice(bytes);
        self.count(section, n);
    }

    fn count(&mut self, section: Section, n: u16) {
        let c = match section {
            Section::Answer => &mut self.answers,
            Section::Additional => &mut self.additional,
        };
        *c = c.saturating_add(n);
    }

    /// The OPT record (RFC 6891) with our UDP size, the client's DO bit echoed, an
    /// extended RCODE and an Extended DNS Error (RFC 8914).
    pub fn opt(
        &mut self,
        udp_size: u16,
        dnssec_ok: bool,
        ext_rcode: u16,
        ede: Option<(u16, &str)>,
    ) {
        write_opt(self.out, udp_size, dnssec_ok, ext_rcode, ede);
        self.count(Section::Additional, 1);
    }

    pub fn finish(self) {
        put_u16(self.out, 6, self.answers);
        put_u16(self.out, 8, 0);
        put_u16(self.out, 10, self.additional);
    }
}

/// Appends an OPT record.
pub(crate) fn write_opt(
    out: &mut Vec<u8>,
    udp_size: u16,
    dnssec_ok: bool,
    ext_rcode: u16,
    ede: Option<(u16, &str)>,
) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&udp_size.to_be_bytes());
    let ttl = (u32::from(ext_rcode >> 4) << 24) | if dnssec_ok { EDNS_DO } else { 0 };
    out.extend_from_slice(&ttl.to_be_bytes());
    match ede {
        None => out.extend_from_slice(&[0, 0]),
        Some((code, text)) => {
            // Keep the whole option well inside one message.
            let text = text.get(..text.len().min(400)).unwrap_or_default();
            let opt_len = 2 + text.len() as u16;
            out.extend_from_slice(&(4 + opt_len).to_be_bytes());
            out.extend_from_slice(&OPTION_EDE.to_be_bytes());
            out.extend_from_slice(&opt_len.to_be_bytes());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// Builds a query for `qname` (wire) / `qtype` with `id`, RD set, CD as given, and
/// an OPT record with `udp_size` and the DO bit as given.
pub(crate) fn build_query(
    id: u16,
    qname: &[u8],
    qtype: u16,
    cd: bool,
    dnssec_ok: bool,
    udp_size: u16,
) -> Vec<u8> {
    let mut q = Vec::with_capacity(HEADER_LEN + qname.len() + 16);
    let flags = FLAG_RD | if cd { FLAG_CD } else { 0 };
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&flags.to_be_bytes());
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    q.extend_from_slice(qname);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    write_opt(&mut q, udp_size, dnssec_ok, 0, None);
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(text: &str) -> Vec<u8> {
        text_wire(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn names_round_trip_with_escapes() {
        let mut s = String::new();
        for (text, shown) in [
            ("", ""),
            (".", ""),
            ("Evil.Example.", "evil.example"),
            ("*.x.example", "*.x.example"),
            ("a\\.b.example", "a\\046b.example"),
            ("sp\\032ace.example", "sp\\032ace.example"),
        ] {
            name_text(&wire(text), &mut s);
            assert_eq!(s, shown, "{text}");
            assert_eq!(wire(&s), wire(text));
        }
        assert!(text_wire("a..b").is_err());
        assert!(text_wire(&"a".repeat(64)).is_err());
        assert!(text_wire(&vec!["abcdefgh"; 40].join(".")).is_err());
    }

    #[test]
    fn query_with_edns_is_read() {
        let mixed = b"\x03WWW\x07Example\x03com\x00";
        let mut q = build_query(0x1234, mixed, TYPE_AAAA, true, true, 4096);
        q[2] &= !0x01; // RD off
        let parsed = parse_query(&q).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(parsed.id, 0x1234);
        assert_eq!(parsed.qtype, TYPE_AAAA);
        assert_eq!(parsed.qclass, CLASS_IN);
        assert!(parsed.cd() && parsed.flags & FLAG_RD == 0);
        assert_eq!(
            parsed.edns,
            Some(Edns {
                udp_size: 4096,
                version: 0,
                dnssec_ok: true
            })
        );
        assert_eq!(&q[HEADER_LEN..HEADER_LEN + parsed.qname_len], mixed);
    }

    #[test]
    fn unreadable_queries() {
        let good = build_query(1, &wire("a.example"), TYPE_A, false, false, 1232);
        assert_eq!(parse_query(&good[..11]), Err(Unreadable::Ignore));
        let mut response = good.clone();
        response[2] |= 0x80;
        assert_eq!(parse_query(&response), Err(Unreadable::Ignore));
        let mut notify = good.clone();
        notify[2] |= 4 << 3;
        assert_eq!(parse_query(&notify), Err(Unreadable::Answer(RCODE_NOTIMP)));
        let mut two = good.clone();
        two[5] = 2;
        assert_eq!(parse_query(&two), Err(Unreadable::Answer(RCODE_FORMERR)));
        // A compression pointer in the question.
        let mut ptr = good[..HEADER_LEN].to_vec();
        ptr.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
        ptr[11] = 0;
        assert_eq!(parse_query(&ptr), Err(Unreadable::Answer(RCODE_FORMERR)));
        // Cut inside the OPT record.
        assert_eq!(
            parse_query(&good[..good.len() - 3]),
            Err(Unreadable::Answer(RCODE_FORMERR))
        );
        // Two OPT records.
        let mut twice = good.clone();
        twice.extend_from_slice(&good[good.len() - 11..]);
        twice[11] = 2;
        assert_eq!(parse_query(&twice), Err(Unreadable::Answer(RCODE_FORMERR)));
    }

    /// An upstream answer: `alias CNAME mid`, `mid CNAME www` (compressed), two A.
    fn chained_answer(id: u16) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&(FLAG_QR | FLAG_RD | FLAG_RA).to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 1]);
        m.extend_from_slice(b"\x05alias\x02up\x04test\x00\x00\x01\x00\x01");
        // alias CNAME mid.up.test (pointer to up.test at 18)
        m.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 1, 44, 0, 6]);
        m.extend_from_slice(b"\x03mid\xC0\x12");
        let mid = 31 + 12;
        m.extend_from_slice(&[0xC0, mid as u8, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
        m.extend_from_slice(b"\x03WWW\xC0\x12");
        let www = mid + 12 + 6;
        for last in [10u8, 11] {
            m.extend_from_slice(&[
                0xC0, www as u8, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, last,
            ]);
        }
        write_opt(&mut m, 1232, false, 0, None);
        m
    }

    #[test]
    fn upstream_answer_chain_addresses_and_ttl() {
        let m = chained_answer(7);
        let a =
            parse_answer(&m, 7, &wire("alias.up.test"), TYPE_A).unwrap_or_else(|e| panic!("{e:?}"));
        let mut s = String::new();
        let chain: Vec<String> = a
            .chain
            .iter()
            .map(|(w, t)| {
                name_text(w, &mut s);
                format!("{s}/{t}")
            })
            .collect();
        assert_eq!(chain, ["mid.up.test/300", "www.up.test/60"]);
        assert_eq!(
            a.addrs,
            [
                "192.0.2.10"
                    .parse::<IpAddr>()
                    .unwrap_or_else(|e| panic!("{e}")),
                "192.0.2.11".parse().unwrap_or_else(|e| panic!("{e}"))
            ]
        );
        assert_eq!(a.ttl, 30);
        assert_eq!(a.ttls.len(), 4);
        // The OPT record is gone and ARCOUNT says so.
        assert_eq!(a.wire.len(), m.len() - 11);
        assert_eq!(u16_at(&a.wire, 10), Some(0));
        assert_eq!(
            parse_answer(&m, 8, &wire("alias.up.test"), TYPE_A),
            Err(Rejected::NotOurs)
        );
        assert_eq!(
            parse_answer(&m, 7, &wire("other.up.test"), TYPE_A),
            Err(Rejected::NotOurs)
        );
        assert_eq!(
            parse_answer(&m[..m.len() - 20], 7, &wire("alias.up.test"), TYPE_A),
            Err(Rejected::Malformed)
        );
        // Records copied out carry no pointers.
        let mut out = Vec::new();
        assert_eq!(copy_answer_records(&m, &mut out), Some(4));
        assert!(out.starts_with(b"\x05alias\x02up\x04test\x00"));
    }

    #[test]
    fn pointer_loops_are_rejected() {
        let mut m = chained_answer(7);
        // Make the first CNAME's data point at itself.
        let at = 31 + 12 + 4;
        m[at] = 0xC0;
        m[at + 1] = at as u8;
        assert_eq!(
            parse_answer(&m, 7, &wire("alias.up.test"), TYPE_A),
            Err(Rejected::Malformed)
        );
    }

    #[test]
    fn negative_answers_cache_for_the_soa_minimum() {
        let mut m = Vec::new();
        m.extend_from_slice(&[0, 9]);
        m.extend_from_slice(&(FLAG_QR | u16::from(RCODE_NXDOMAIN)).to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0]);
        m.extend_from_slice(b"\x04gone\x02up\x04test\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xC0, 17, 0, 6, 0, 1, 0, 0, 0, 120, 0, 22]);
        m.extend_from_slice(&[
            0xC0, 17, 0xC0, 17, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 45,
        ]);
        // rdlen: 2 + 2 + 20 = 24
        let rdlen_at = m.len() - 24 - 2;
        put_u16(&mut m, rdlen_at, 24);
        let a =
            parse_answer(&m, 9, &wire("gone.up.test"), TYPE_A).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((a.rcode, a.ttl), (RCODE_NXDOMAIN, 45));
        // Without the SOA: not cached.
        let mut bare = m[..HEADER_LEN + 18].to_vec();
        put_u16(&mut bare, 8, 0);
        let a = parse_answer(&bare, 9, &wire("gone.up.test"), TYPE_A)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(a.ttl, 0);
    }
}
