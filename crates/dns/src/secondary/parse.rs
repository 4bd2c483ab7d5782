//! Reading a transfer's answer messages into records, without I/O.
//!
//! Kept apart from the socket code so that exactly what runs on the wire runs in the
//! fuzz target and in tests fed with the messages our own primary builds. A transfer
//! is a sequence of answer records that starts and ends with the zone's SOA: AXFR is
//! SOA, the zone, SOA; IXFR (RFC 1995 §4) is either the SOA alone (the client is
//! current), or the same as AXFR, or SOA(new) followed by difference sequences
//! `SOA(from) removed… SOA(to) added…` chained from our serial to the new one, and
//! SOA(new). Anything else — a record outside the zone, a class other than IN, a
//! chain that does not start at our serial or does not move forward, records after
//! the final SOA, a stream that stops before it — is an error, and nothing of the
//! transfer is kept.

use std::fmt::Write as _;

use domain::base::iana::{Class, Opcode, Rcode};
use domain::base::name::ToLabelIter;
use domain::base::zonefile_fmt::{DisplayKind, ZonefileFmt};
use domain::base::{Message, ParsedName, ParsedRecord, Rtype, ToName};
use domain::rdata::{AllRecordData, Cname, Dname as DnameData, Mx, Ns, Ptr};

use super::{Diff, FullZoneSink, Outcome, Soa, XfrError, ZoneRecord, serial_newer};
use crate::wire::{Dname, parse_name};

/// Which transfer was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Axfr,
    /// IXFR from the serial we hold.
    Ixfr {
        current: u32,
    },
}

#[derive(Debug)]
enum State {
    /// Waiting for the first SOA.
    Start,
    /// IXFR: after the first SOA, the form is not known yet.
    AfterFirst,
    /// A full zone: records until the SOA again.
    Full,
    Removing(Diff),
    Adding(Diff),
    Done,
    /// IXFR: the first message ended after the first SOA.
    OnlySoa,
}

/// What a complete answer was.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// An IXFR answered with one SOA: current (or ahead, or behind: the caller
    /// decides).
    OnlySoa(Soa),
    Outcome(Outcome),
}

/// Reads one transfer's messages in order.
#[derive(Debug)]
pub(crate) struct TransferParser<'s, S: FullZoneSink + ?Sized> {
    apex: Dname,
    kind: Kind,
    id: Option<u16>,
    state: State,
    sink: &'s mut S,
    /// The first SOA: the zone's new SOA.
    soa: Option<Soa>,
    diffs: Vec<Diff>,
    records: u64,
    full_records: u64,
    max_records: u64,
    messages: u64,
}

impl<'s, S: FullZoneSink + ?Sized> TransferParser<'s, S> {
    /// A parser for answers to a request with `id` (`None`: take the first
    /// message's).
    pub fn new(
        apex: Dname,
        kind: Kind,
        id: Option<u16>,
        sink: &'s mut S,
        max_records: u64,
    ) -> Self {
        TransferParser {
            apex,
            kind,
            id,
            state: State::Start,
            sink,
            soa: None,
            diffs: Vec::new(),
            records: 0,
            full_records: 0,
            max_records,
            messages: 0,
        }
    }

    /// True once the answer is complete: the final SOA read, or an IXFR's lone SOA.
    pub fn done(&self) -> bool {
        matches!(self.state, State::Done | State::OnlySoa)
    }

    /// Reads one answer message (its TSIG record already checked and removed).
    /// Returns whether the transfer is complete.
    pub fn message(&mut self, msg: &Message<Vec<u8>>) -> Result<bool, XfrError> {
        let h = msg.header();
        if !h.qr() || h.opcode() != Opcode::QUERY {
            return Err(XfrError::Malformed(
                "a message that is not an answer".into(),
            ));
        }
        let id = *self.id.get_or_insert(h.id());
        if h.id() != id {
            return Err(XfrError::Malformed(format!(
                "message id {} in an answer to id {id}",
                h.id()
            )));
        }
        if h.rcode() != Rcode::NOERROR {
            return Err(XfrError::Rcode(h.rcode().to_string()));
        }
        if h.tc() {
            return Err(XfrError::Malformed("a truncated (TC) message".into()));
        }
        if self.messages == 0 {
            let expected = match self.kind {
                Kind::Axfr => Rtype::AXFR,
                Kind::Ixfr { .. } => Rtype::IXFR,
            };
            for q in msg.question() {
                let q = q.map_err(|e| XfrError::Malformed(format!("question: {e}")))?;
                if q.qname().to_name::<Vec<u8>>() != self.apex || q.qtype() != expected {
                    return Err(XfrError::Malformed(format!(
                        "answer to another question ({} {})",
                        q.qname(),
                        q.qtype()
                    )));
                }
            }
        }
        self.messages += 1;
        let answer = msg
            .answer()
            .map_err(|e| XfrError::Malformed(format!("answer section: {e}")))?;
        for rr in answer {
            let rr = rr.map_err(|e| XfrError::Malformed(format!("record: {e}")))?;
            self.record(&rr)?;
        }
        if matches!(self.state, State::AfterFirst) {
            // An IXFR answer whose first message holds the SOA alone is that SOA
            // alone (RFC 1995 §4: the client is current, or must use AXFR); the
            // primary keeps the connection open, so do not wait for more.
            self.state = State::OnlySoa;
        }
        Ok(self.done())
    }

    fn record(&mut self, rr: &ParsedRecord<'_, Vec<u8>>) -> Result<(), XfrError> {
        if self.done() {
            return Err(XfrError::Malformed("records after the final SOA".into()));
        }
        self.records += 1;
        if self.records > self.max_records {
            return Err(XfrError::TooLarge(format!(
                "more than {} records",
                self.max_records
            )));
        }
        if rr.class() != Class::IN {
            return Err(XfrError::Malformed(format!(
                "record {} of class {}",
                rr.owner(),
                rr.class()
            )));
        }
        let owner = relative_owner(&rr.owner(), &self.apex).ok_or_else(|| {
            XfrError::Malformed(format!("record {} is outside the zone", rr.owner()))
        })?;
        let soa = if rr.rtype() == Rtype::SOA && owner == "@" {
            Some(parse_soa(rr)?)
        } else {
            None
        };
        let new_serial = self.soa.as_ref().map(|s| s.serial);
        let state = std::mem::replace(&mut self.state, State::Done);
        self.state = match (state, soa, new_serial) {
            (State::Start, Some(soa), _) => {
                let next = match self.kind {
                    Kind::Axfr => {
                        self.sink.begin(&soa).map_err(XfrError::Sink)?;
                        State::Full
                    }
                    Kind::Ixfr { .. } => State::AfterFirst,
                };
                self.soa = Some(soa);
                next
            }
            (State::Start, None, _) | (_, _, None) => {
                return Err(XfrError::Malformed(
                    "the answer does not start with the zone's SOA".into(),
                ));
            }
            (State::AfterFirst, second, Some(new)) => {
                let Kind::Ixfr { current } = self.kind else {
                    return Err(XfrError::Malformed("IXFR state in an AXFR".into()));
                };
                if !serial_newer(new, current) {
                    return Err(if new == current {
                        XfrError::Malformed("records after an up-to-date SOA".into())
                    } else {
                        XfrError::SerialBackwards {
                            ours: current,
                            theirs: new,
                        }
                    });
                }
                let soa = self.soa.clone().unwrap_or_else(|| unreachable_soa(new));
                match second {
                    Some(second) if second.serial == current => State::Removing(Diff {
                        from: current,
                        to: current,
                        removed: Vec::new(),
                        added: Vec::new(),
                    }),
                    Some(second) if second.serial == new => {
                        // The whole zone in AXFR form, and it is empty.
                        self.sink.begin(&soa).map_err(XfrError::Sink)?;
                        State::Done
                    }
                    Some(second) => {
                        return Err(XfrError::Malformed(format!(
                            "the differences start at serial {}, we hold {current}",
                            second.serial
                        )));
                    }
                    None => {
                        self.sink.begin(&soa).map_err(XfrError::Sink)?;
                        self.full_record(rr, owner)?;
                        State::Full
                    }
                }
            }
            (State::Full, Some(last), Some(new)) => {
                if last.serial != new {
                    return Err(XfrError::Malformed(format!(
                        "the zone ends with serial {}, it began with {new}",
                        last.serial
                    )));
                }
                State::Done
            }
            (State::Full, None, _) => {
                self.full_record(rr, owner)?;
                State::Full
            }
            (State::Removing(mut diff), Some(soa), _) => {
                if !serial_newer(soa.serial, diff.from) {
                    return Err(XfrError::Malformed(format!(
                        "a difference from serial {} to {} does not move forward",
                        diff.from, soa.serial
                    )));
                }
                diff.to = soa.serial;
                State::Adding(diff)
            }
            (State::Removing(mut diff), None, _) => {
                diff.removed.push(zone_record(rr, owner)?);
                State::Removing(diff)
            }
            (State::Adding(diff), Some(soa), Some(new)) => {
                if diff.to == new && soa.serial == new {
                    self.diffs.push(diff);
                    State::Done
                } else if soa.serial == diff.to {
                    let from = diff.to;
                    self.diffs.push(diff);
                    State::Removing(Diff {
                        from,
                        to: from,
                        removed: Vec::new(),
                        added: Vec::new(),
                    })
                } else {
                    return Err(XfrError::Malformed(format!(
                        "a difference starts at serial {}, the previous one ended at {}",
                        soa.serial, diff.to
                    )));
                }
            }
            (State::Adding(mut diff), None, _) => {
                diff.added.push(zone_record(rr, owner)?);
                State::Adding(diff)
            }
            (State::Done | State::OnlySoa, _, _) => {
                return Err(XfrError::Malformed("records after the final SOA".into()));
            }
        };
        Ok(())
    }

    fn full_record(
        &mut self,
        rr: &ParsedRecord<'_, Vec<u8>>,
        owner: String,
    ) -> Result<(), XfrError> {
        let record = zone_record(rr, owner)?;
        self.full_records += 1;
        self.sink.record(record).map_err(XfrError::Sink)
    }

    /// The result once the stream has ended.
    pub fn finish(self) -> Result<Parsed, XfrError> {
        let soa = self.soa;
        match (self.state, soa) {
            (State::Done, Some(soa)) => {
                if self.diffs.is_empty() {
                    Ok(Parsed::Outcome(Outcome::Full {
                        soa,
                        records: self.full_records,
                    }))
                } else {
                    Ok(Parsed::Outcome(Outcome::Incremental {
                        soa,
                        diffs: self.diffs,
                    }))
                }
            }
            (State::OnlySoa, Some(soa)) => Ok(Parsed::OnlySoa(soa)),
            (State::Start, _) => Err(XfrError::Truncated("no record at all".into())),
            (_, _) => Err(XfrError::Truncated(format!(
                "after {} records in {} messages",
                self.records, self.messages
            ))),
        }
    }
}

/// Never used: the state machine sets the SOA before leaving `Start`.
fn unreachable_soa(serial: u32) -> Soa {
    Soa {
        ttl: 0,
        mname: ".".into(),
        rname: ".".into(),
        serial,
        refresh: 0,
        retry: 0,
        expire: 0,
        minimum: 0,
    }
}

/// Reads a whole transfer answer from `messages` (the zone `apex`; `ixfr_from` our
/// serial for an IXFR, `None` for AXFR). The entry point of the fuzz target and of
/// tests that feed messages built elsewhere; [`Client`](super::Client) runs the same
/// code on the wire. An IXFR answered with the SOA alone is
/// [`Outcome::UpToDate`] whatever its serial.
pub fn parse_transfer(
    apex: &str,
    ixfr_from: Option<u32>,
    messages: impl IntoIterator<Item = Vec<u8>>,
    sink: &mut dyn FullZoneSink,
    max_records: u64,
) -> Result<Outcome, XfrError> {
    let apex = parse_name(apex).map_err(XfrError::Malformed)?;
    let kind = match ixfr_from {
        Some(current) => Kind::Ixfr { current },
        None => Kind::Axfr,
    };
    let mut parser = TransferParser::new(apex, kind, None, sink, max_records);
    for bytes in messages {
        let msg = Message::from_octets(bytes)
            .map_err(|_| XfrError::Malformed("a message shorter than its header".into()))?;
        if parser.message(&msg)? {
            break;
        }
    }
    match parser.finish()? {
        Parsed::OnlySoa(soa) => Ok(Outcome::UpToDate(soa)),
        Parsed::Outcome(o) => Ok(o),
    }
}

/// The zone's SOA from an SOA record.
pub(crate) fn parse_soa(rr: &ParsedRecord<'_, Vec<u8>>) -> Result<Soa, XfrError> {
    let record = rr
        .to_record::<domain::rdata::Soa<ParsedName<&[u8]>>>()
        .map_err(|e| XfrError::Malformed(format!("SOA: {e}")))?
        .ok_or_else(|| XfrError::Malformed("SOA record expected".into()))?;
    let d = record.data();
    Ok(Soa {
        ttl: rr.ttl().as_secs(),
        mname: absolute_name(d.mname()),
        rname: absolute_name(d.rname()),
        serial: d.serial().into_int(),
        refresh: d.refresh().as_secs(),
        retry: d.retry().as_secs(),
        expire: d.expire().as_secs(),
        minimum: d.minimum().as_secs(),
    })
}

/// A record in the policy-neutral form.
fn zone_record(rr: &ParsedRecord<'_, Vec<u8>>, owner: String) -> Result<ZoneRecord, XfrError> {
    let rtype = rr.rtype();
    let bad = |e: &dyn std::fmt::Display| XfrError::Malformed(format!("{owner} {rtype}: {e}"));
    let data = match rtype {
        Rtype::CNAME => one_name(rr.to_record::<Cname<ParsedName<&[u8]>>>(), |d| {
            absolute_name(d.cname())
        }),
        Rtype::NS => one_name(rr.to_record::<Ns<ParsedName<&[u8]>>>(), |d| {
            absolute_name(d.nsdname())
        }),
        Rtype::PTR => one_name(rr.to_record::<Ptr<ParsedName<&[u8]>>>(), |d| {
            absolute_name(d.ptrdname())
        }),
        Rtype::DNAME => one_name(rr.to_record::<DnameData<ParsedName<&[u8]>>>(), |d| {
            absolute_name(d.dname())
        }),
        Rtype::MX => one_name(rr.to_record::<Mx<ParsedName<&[u8]>>>(), |d| {
            format!("{} {}", d.preference(), absolute_name(d.exchange()))
        }),
        _ => {
            let record = rr
                .to_any_record::<AllRecordData<&[u8], ParsedName<&[u8]>>>()
                .map_err(|e| bad(&e))?;
            let text = record
                .data()
                .display_zonefile(DisplayKind::Simple)
                .to_string();
            if one_line(&text) {
                Ok(text)
            } else {
                generic(rr)
            }
        }
    }
    .map_err(|e| bad(&e))?;
    Ok(ZoneRecord {
        owner,
        ttl: rr.ttl().as_secs(),
        rtype: rtype.to_string(),
        data,
    })
}

type NameRecord<'a, D> = Option<domain::base::Record<ParsedName<&'a [u8]>, D>>;

fn one_name<D>(
    parsed: Result<NameRecord<'_, D>, domain::base::wire::ParseError>,
    text: impl FnOnce(&D) -> String,
) -> Result<String, String> {
    match parsed {
        Ok(Some(record)) => Ok(text(record.data())),
        Ok(None) => Err("record data of another type".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// RFC 3597's generic form of the record data: `\# length hex` (names written out
/// uncompressed, as the form requires).
fn generic(rr: &ParsedRecord<'_, Vec<u8>>) -> Result<String, String> {
    use domain::base::rdata::ComposeRecordData;
    let record = rr
        .to_any_record::<AllRecordData<&[u8], ParsedName<&[u8]>>>()
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    record
        .data()
        .compose_rdata(&mut bytes)
        .map_err(|_| "record data does not compose".to_owned())?;
    let mut text = format!("\\# {}", bytes.len());
    for b in &bytes {
        let _ = write!(text, " {b:02x}");
    }
    Ok(text)
}

/// Record data that a zone file holds on one line and gives back exactly: printable
/// ASCII, quotes balanced and each quoted string a whole field, fields separated by
/// one space (no empty field, as an empty CAA tag would print), no comment or
/// parenthesis outside quotes, no dangling escape.
pub(crate) fn one_line(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut quoted = false;
    let mut escaped = false;
    let mut prev: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if !(0x20..0x7f).contains(&b) {
            return false;
        }
        if escaped {
            escaped = false;
            prev = Some(b'x');
            continue;
        }
        if quoted {
            match b {
                b'\\' => escaped = true,
                b'"' => {
                    quoted = false;
                    if bytes.get(i + 1).is_some_and(|&n| n != b' ') {
                        return false;
                    }
                }
                _ => {}
            }
        } else {
            match b {
                b'\\' => escaped = true,
                b'"' if prev.is_some_and(|p| p != b' ') => return false,
                b'"' => quoted = true,
                b' ' if prev.is_none_or(|p| p == b' ') => return false,
                b';' | b'(' | b')' => return false,
                _ => {}
            }
        }
        prev = Some(b);
    }
    !quoted && !escaped && prev.is_some_and(|p| p != b' ')
}

/// Appends one label in presentation form, lowercase: letters, digits, `-`, `_`
/// and `*` as they are, every other byte as `\DDD`.
fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        let b = b.to_ascii_lowercase();
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\{b:03}");
        }
    }
}

/// A name in presentation form with the trailing dot (`.` for the root).
pub(crate) fn absolute_name(name: &impl ToLabelIter) -> String {
    let mut out = String::new();
    for label in name.iter_labels() {
        if label.is_root() {
            break;
        }
        push_label(&mut out, label.as_slice());
        out.push('.');
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// `name` relative to `apex` (`@` for the apex), or `None` when outside it.
pub(crate) fn relative_owner(name: &impl ToLabelIter, apex: &Dname) -> Option<String> {
    if !name.ends_with(apex) {
        return None;
    }
    let keep = name
        .iter_labels()
        .count()
        .checked_sub(apex.iter_labels().count())?;
    if keep == 0 {
        return Some("@".to_owned());
    }
    let mut out = String::new();
    for (i, label) in name.iter_labels().take(keep).enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_label(&mut out, label.as_slice());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::base::{MessageBuilder, Serial, Ttl};
    use domain::rdata::{A, Txt};

    use super::*;
    use crate::ZoneRule;
    use crate::secondary::CollectSink;
    use crate::wire::{Part, Transfer, ZoneWire, test_rule as rule};

    const APEX: &str = "phishing.rpz.sharedefend";

    fn zone(serial: u32) -> Arc<ZoneWire> {
        crate::wire::test_zone(APEX, serial)
    }

    /// The messages our own primary sends for a transfer.
    fn primary(qtype: Rtype, serial: u32, parts: Vec<Part>) -> Vec<Vec<u8>> {
        let mut t =
            Transfer::new(7, qtype, zone(serial), parts, None).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        while let Some(m) = t.next_message().unwrap_or_else(|e| panic!("{e}")) {
            out.push(m);
        }
        out
    }

    fn show(r: &ZoneRecord) -> String {
        format!("{} {} {} {}", r.owner, r.ttl, r.rtype, r.data)
    }

    #[test]
    fn axfr_from_our_primary() {
        let rules = vec![
            rule("evil.example", policy::Action::Nxdomain),
            rule("*.evil.example", policy::Action::Nodata),
            rule("ok.example", policy::Action::Passthru),
            rule("gone.example", policy::Action::Drop),
        ];
        let msgs = primary(Rtype::AXFR, 5, Transfer::full_parts(5, rules));
        let mut sink = CollectSink::default();
        let out =
            parse_transfer(APEX, None, msgs, &mut sink, 1000).unwrap_or_else(|e| panic!("{e}"));
        let Outcome::Full { soa, records } = out else {
            panic!("{out:?}")
        };
        assert_eq!((soa.serial, records), (5, 5));
        assert_eq!(
            soa.rdata(),
            "localhost. root.localhost. 5 3600 600 864000 300"
        );
        let shown: Vec<String> = sink.records.iter().map(show).collect();
        assert_eq!(
            shown,
            [
                "@ 300 NS localhost.",
                "evil.example 300 CNAME .",
                "*.evil.example 300 CNAME *.",
                "ok.example 300 CNAME rpz-passthru.",
                "gone.example 300 CNAME rpz-drop.",
            ]
        );
    }

    #[test]
    fn axfr_of_many_messages() {
        let rules: Vec<ZoneRule> = (0..20_000)
            .map(|i| rule(&format!("h{i}.bad.example"), policy::Action::Nxdomain))
            .collect();
        let msgs = primary(Rtype::AXFR, 9, Transfer::full_parts(9, rules));
        assert!(msgs.len() > 10);
        let mut sink = CollectSink::default();
        let out = parse_transfer(APEX, None, msgs.clone(), &mut sink, 1_000_000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(
                out,
                Outcome::Full {
                    records: 20_001,
                    ..
                }
            ),
            "{out:?}"
        );
        // Cut anywhere before the end: truncated; never a success.
        for cut in [1, msgs.len() / 2, msgs.len() - 1] {
            let mut sink = CollectSink::default();
            let e = parse_transfer(
                APEX,
                None,
                msgs.iter().take(cut).cloned(),
                &mut sink,
                1_000_000,
            );
            assert!(matches!(e, Err(XfrError::Truncated(_))), "{cut}: {e:?}");
        }
        // A limit on records.
        let mut sink = CollectSink::default();
        let e = parse_transfer(APEX, None, msgs, &mut sink, 100);
        assert!(matches!(e, Err(XfrError::TooLarge(_))), "{e:?}");
    }

    #[test]
    fn ixfr_differences() {
        let msgs = primary(
            Rtype::IXFR,
            7,
            Transfer::delta_parts(
                5,
                7,
                vec![rule("old.example", policy::Action::Nxdomain)],
                vec![rule("new.example", policy::Action::Drop)],
            ),
        );
        let mut sink = CollectSink::default();
        let out = parse_transfer(APEX, Some(5), msgs.clone(), &mut sink, 1000)
            .unwrap_or_else(|e| panic!("{e}"));
        let Outcome::Incremental { soa, diffs } = out else {
            panic!("{out:?}")
        };
        assert_eq!(soa.serial, 7);
        assert_eq!(diffs.len(), 1);
        let d = &diffs[0];
        assert_eq!((d.from, d.to), (5, 7));
        assert_eq!(
            d.removed.iter().map(show).collect::<Vec<_>>(),
            ["old.example 300 CNAME ."]
        );
        assert_eq!(
            d.added.iter().map(show).collect::<Vec<_>>(),
            ["new.example 300 CNAME rpz-drop."]
        );
        assert!(sink.soa.is_none());
        // The same answer to a client at another serial does not chain.
        let e = parse_transfer(APEX, Some(6), msgs.clone(), &mut sink, 1000);
        assert!(matches!(e, Err(XfrError::Malformed(_))), "{e:?}");
        // A client ahead of the primary: backwards.
        let e = parse_transfer(APEX, Some(9), msgs, &mut sink, 1000);
        assert!(
            matches!(e, Err(XfrError::SerialBackwards { ours: 9, theirs: 7 })),
            "{e:?}"
        );
    }

    #[test]
    fn ixfr_in_axfr_form_and_single_soa() {
        let rules = vec![rule("evil.example", policy::Action::Nxdomain)];
        let msgs = primary(Rtype::IXFR, 8, Transfer::full_parts(8, rules));
        let mut sink = CollectSink::default();
        let out =
            parse_transfer(APEX, Some(3), msgs, &mut sink, 1000).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(out, Outcome::Full { records: 2, .. }), "{out:?}");
        assert_eq!(sink.records.len(), 2);
        let msgs = primary(Rtype::IXFR, 8, vec![Part::Soa(8)]);
        let out =
            parse_transfer(APEX, Some(8), msgs, &mut sink, 1000).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(out, Outcome::UpToDate(Soa { serial: 8, .. })),
            "{out:?}"
        );
    }

    /// Builds one answer message by hand: `records` are `(owner, serial-or-0 for
    /// SOA | data)`.
    fn handmade(qtype: Rtype, answer: &[(&str, Option<u32>)]) -> Vec<u8> {
        let apex = parse_name(APEX).unwrap_or_else(|e| panic!("{e}"));
        let mut b = MessageBuilder::new_vec();
        b.header_mut().set_id(7);
        b.header_mut().set_qr(true);
        let mut q = b.question();
        q.push((&apex, qtype, Class::IN))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut a = q.answer();
        for (owner, serial) in answer {
            let name = parse_name(owner).unwrap_or_else(|e| panic!("{e}"));
            match serial {
                Some(s) => a.push(zone(*s).soa(*s)),
                None => a.push((
                    name,
                    Class::IN,
                    60,
                    A::new(std::net::Ipv4Addr::new(192, 0, 2, 1)),
                )),
            }
            .unwrap_or_else(|e| panic!("{e}"));
        }
        a.finish()
    }

    #[test]
    fn malformed_answers_are_refused() {
        let inside = "x.phishing.rpz.sharedefend";
        type Case<'a> = (Option<u32>, Vec<(&'a str, Option<u32>)>, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (
                None,
                vec![(inside, None)],
                "does not start with the zone's SOA",
            ),
            (
                None,
                vec![(APEX, Some(5)), ("x.example", None)],
                "outside the zone",
            ),
            (
                None,
                vec![(APEX, Some(5)), (inside, None), (APEX, Some(6))],
                "ends with serial 6",
            ),
            (
                None,
                vec![(APEX, Some(5)), (APEX, Some(5)), (inside, None)],
                "after the final SOA",
            ),
            (
                Some(4),
                vec![(APEX, Some(5)), (APEX, Some(4)), (APEX, Some(3))],
                "does not move forward",
            ),
            (
                Some(4),
                vec![
                    (APEX, Some(6)),
                    (APEX, Some(4)),
                    (APEX, Some(5)),
                    (APEX, Some(4)),
                ],
                "previous one ended at 5",
            ),
        ];
        for (from, answer, expect) in cases {
            let qtype = if from.is_some() {
                Rtype::IXFR
            } else {
                Rtype::AXFR
            };
            let msg = handmade(qtype, &answer);
            let mut sink = CollectSink::default();
            let e = parse_transfer(APEX, from, [msg], &mut sink, 1000);
            let text = match &e {
                Err(e) => e.to_string(),
                Ok(o) => format!("{o:?}"),
            };
            assert!(text.contains(expect), "{answer:?}: {text}");
        }
        // A chain of two differences is read in order.
        let msg = handmade(
            Rtype::IXFR,
            &[
                (APEX, Some(6)),
                (APEX, Some(4)),
                (inside, None),
                (APEX, Some(5)),
                (APEX, Some(5)),
                (APEX, Some(6)),
                (inside, None),
                (APEX, Some(6)),
            ],
        );
        let mut sink = CollectSink::default();
        let out =
            parse_transfer(APEX, Some(4), [msg], &mut sink, 1000).unwrap_or_else(|e| panic!("{e}"));
        let Outcome::Incremental { diffs, .. } = out else {
            panic!("{out:?}")
        };
        let shape: Vec<(u32, u32, usize, usize)> = diffs
            .iter()
            .map(|d| (d.from, d.to, d.removed.len(), d.added.len()))
            .collect();
        assert_eq!(shape, [(4, 5, 1, 0), (5, 6, 0, 1)]);
        // Error rcodes, wrong ids, other questions.
        let mut refused = handmade(Rtype::AXFR, &[]);
        refused[3] = (refused[3] & 0xf0) | 5;
        let e = parse_transfer(APEX, None, [refused], &mut CollectSink::default(), 10);
        assert_eq!(e, Err(XfrError::Rcode("REFUSED".into())));
        let e = parse_transfer(
            APEX,
            None,
            [handmade(Rtype::IXFR, &[(APEX, Some(1))])],
            &mut CollectSink::default(),
            10,
        );
        assert!(matches!(e, Err(XfrError::Malformed(_))), "{e:?}");
    }

    #[test]
    fn record_data_in_presentation_form() {
        let apex = parse_name(APEX).unwrap_or_else(|e| panic!("{e}"));
        let mut b = MessageBuilder::new_vec().question().answer();
        let owner = |s: &str| parse_name(&format!("{s}.{APEX}")).unwrap_or_else(|e| panic!("{e}"));
        b.push((
            owner("Page.Example"),
            Class::IN,
            Ttl::from_secs(60),
            Txt::<Vec<u8>>::build_from_slice(b"blocked; see \"x\"")
                .unwrap_or_else(|e| panic!("{e}")),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        b.push((
            owner("Walled"),
            Class::IN,
            60,
            Cname::new(parse_name("Garden.Example.").unwrap_or_else(|e| panic!("{e}"))),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        // A label with a space and a semicolon.
        let odd = Dname::from_octets(b"\x05a b;c\x08phishing\x03rpz\x0bsharedefend\x00".to_vec())
            .unwrap_or_else(|e| panic!("{e}"));
        b.push((
            odd,
            Class::IN,
            60,
            A::new(std::net::Ipv4Addr::new(192, 0, 2, 9)),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        b.push((
            owner("weird"),
            Class::IN,
            60,
            domain::base::UnknownRecordData::from_octets(
                Rtype::from_int(65280),
                vec![1u8, 2, 0x3b],
            )
            .unwrap_or_else(|e| panic!("{e}")),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        // A name in record data that domain would print with a bare `;`: generic.
        let target = Dname::from_octets(b"\x03a;b\x00".to_vec()).unwrap_or_else(|e| panic!("{e}"));
        b.push((
            owner("srv"),
            Class::IN,
            60,
            domain::rdata::Srv::new(1, 2, 3, target),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let msg = Message::from_octets(b.finish()).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        for rr in msg.answer().unwrap_or_else(|e| panic!("{e}")) {
            let rr = rr.unwrap_or_else(|e| panic!("{e}"));
            let owner = relative_owner(&rr.owner(), &apex).unwrap_or_else(|| panic!("outside"));
            out.push(show(
                &zone_record(&rr, owner).unwrap_or_else(|e| panic!("{e}")),
            ));
        }
        assert_eq!(
            out,
            [
                "page.example 60 TXT \"blocked; see \\\"x\\\"\"",
                "walled 60 CNAME garden.example.",
                "a\\032b\\059c 60 A 192.0.2.9",
                "weird 60 TYPE65280 \\# 3 01 02 3b",
                "srv 60 SRV \\# 11 00 01 00 02 00 03 03 61 3b 62 00",
            ]
        );
        let _ = Serial(0);
    }

    #[test]
    fn only_token_stable_text_is_kept_as_text() {
        for ok in [
            "192.0.2.1",
            "\"a b\" \"c\"",
            "0 issue \"ca.example\"",
            "a\\ b",
            "\\# 0",
        ] {
            assert!(one_line(ok), "{ok}");
        }
        for bad in [
            "",
            " ",
            "192  \"x\"",
            " lead",
            "trail ",
            "a\"b\"",
            "\"a\"b",
            "a\tb",
            "x ; y",
            "(x)",
            "\"open",
            "end\\",
            "caf\u{e9}",
        ] {
            assert!(!one_line(bad), "{bad:?}");
        }
    }
}
