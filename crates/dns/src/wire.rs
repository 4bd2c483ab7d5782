//! DNS messages the server sends: apex answers, refusals, and zone transfers cut
//! into many messages.
//!
//! A transfer of a million-rule zone must not be one giant message (a DNS message
//! over TCP is at most 64 KiB) nor one giant buffer: [`Transfer`] produces one
//! message at a time, each filled to [`MESSAGE_TARGET`] bytes with names compressed
//! against the apex, and signed as the next message of a TSIG sequence when the
//! request was signed.

use std::sync::Arc;

use domain::base::iana::{Class, Rcode, TsigRcode};
use domain::base::message_builder::{AdditionalBuilder, AnswerBuilder, PushError, TreeCompressor};
use domain::base::{Message, MessageBuilder, Name, Rtype, Serial, ToName, Ttl};
use domain::rdata::{Cname, Ns, Soa};
use domain::tsig::{Key, ServerSequence};

use crate::{SoaFields, ZoneInfo, ZoneRule};

/// Bytes of records per transfer message before the next message starts. Well below
/// the 65,535 limit, leaving room for the TSIG record; large enough that a million
/// rules take a few thousand messages.
pub const MESSAGE_TARGET: usize = 16_000;

pub(crate) type Dname = Name<Vec<u8>>;
pub(crate) type Target = TreeCompressor<Vec<u8>>;
pub(crate) type Tsig = ServerSequence<Arc<Key>>;

/// A zone's apex as wire names, built once per serial.
#[derive(Debug, Clone)]
pub(crate) struct ZoneWire {
    pub info: ZoneInfo,
    pub apex: Dname,
    mname: Dname,
    rname: Dname,
    ns: Vec<Dname>,
}

/// The CNAME targets of the RPZ actions.
#[derive(Debug, Clone)]
struct Targets([Dname; 4]);

impl Targets {
    fn new() -> Result<Targets, String> {
        let p = |s: &str| parse_name(s);
        Ok(Targets([
            p(policy::Action::Nxdomain.rpz_target())?,
            p(policy::Action::Nodata.rpz_target())?,
            p(policy::Action::Passthru.rpz_target())?,
            p(policy::Action::Drop.rpz_target())?,
        ]))
    }

    fn of(&self, action: policy::Action) -> &Dname {
        let [nx, nodata, pass, drop] = &self.0;
        match action {
            policy::Action::Nxdomain => nx,
            policy::Action::Nodata => nodata,
            policy::Action::Passthru => pass,
            policy::Action::Drop => drop,
        }
    }
}

/// Parses a name written with or without the trailing dot.
pub(crate) fn parse_name(text: &str) -> Result<Dname, String> {
    let absolute = if text.ends_with('.') {
        text.to_owned()
    } else {
        format!("{text}.")
    };
    absolute
        .parse::<Dname>()
        .map_err(|e| format!("bad name {text:?}: {e}"))
}

impl ZoneWire {
    pub fn new(info: ZoneInfo) -> Result<ZoneWire, String> {
        let SoaFields {
            mname, rname, ns, ..
        } = &info.soa;
        Ok(ZoneWire {
            apex: parse_name(&info.apex)?,
            mname: parse_name(mname)?,
            rname: parse_name(rname)?,
            ns: ns.iter().map(|n| parse_name(n)).collect::<Result<_, _>>()?,
            info,
        })
    }

    fn ttl(&self) -> u32 {
        self.info.soa.ttl
    }

    pub fn soa(&self, serial: u32) -> (Dname, Class, u32, Soa<Dname>) {
        let s = &self.info.soa;
        (
            self.apex.clone(),
            Class::IN,
            self.ttl(),
            Soa::new(
                self.mname.clone(),
                self.rname.clone(),
                Serial(serial),
                Ttl::from_secs(s.refresh),
                Ttl::from_secs(s.retry),
                Ttl::from_secs(s.expire),
                Ttl::from_secs(s.minimum),
            ),
        )
    }

    pub fn push_ns(&self, answer: &mut AnswerBuilder<Target>) -> Result<(), PushError> {
        for ns in &self.ns {
            answer.push((
                self.apex.clone(),
                Class::IN,
                self.ttl(),
                Ns::new(ns.clone()),
            ))?;
        }
        Ok(())
    }
}

/// A new response builder for messages we send.
pub(crate) fn builder() -> MessageBuilder<Target> {
    MessageBuilder::from_target(TreeCompressor::new(Vec::new()))
        .unwrap_or_else(|never| match never {})
}

/// Finishes a response: signs it when the request was signed.
pub(crate) fn finish(
    mut additional: AdditionalBuilder<Target>,
    tsig: Option<&mut Tsig>,
) -> Result<Vec<u8>, PushError> {
    if let Some(seq) = tsig {
        additional.as_builder_mut().clear_push_limit();
        seq.answer(&mut additional, domain::rdata::tsig::Time48::now())?;
    }
    Ok(additional.finish().into_target())
}

/// A response to `request` with `rcode`, the question copied, AA set, and whatever
/// `fill` puts in the answer section.
pub(crate) fn answer(
    request: &Message<Vec<u8>>,
    rcode: Rcode,
    tsig: Option<&mut Tsig>,
    fill: impl FnOnce(&mut AnswerBuilder<Target>) -> Result<(), PushError>,
) -> Result<Vec<u8>, PushError> {
    let mut b = builder().start_answer(request, rcode)?;
    b.header_mut().set_aa(rcode == Rcode::NOERROR);
    fill(&mut b)?;
    finish(b.additional(), tsig)
}

/// An unsigned TSIG error answer (RCODE NOTAUTH, RFC 8945 §5.3.2) to a request whose
/// TSIG record is well formed: the record echoed with an empty MAC and `error`.
/// `None` if the request has no single, parseable TSIG record as its last record.
pub(crate) fn tsig_error(request: &Message<Vec<u8>>, error: TsigRcode) -> Option<Vec<u8>> {
    let additional = request.additional().ok()?;
    let mut count = 0;
    let mut last = None;
    for rr in additional {
        let rr = rr.ok()?;
        if rr.rtype() == Rtype::TSIG {
            count += 1;
        }
        last = Some(rr);
    }
    let last = last?;
    if count != 1 || last.rtype() != Rtype::TSIG {
        return None;
    }
    let tsig = last
        .into_record::<domain::rdata::Tsig<&[u8], domain::base::ParsedName<&[u8]>>>()
        .ok()??;
    let data = tsig.data();
    let record = domain::rdata::Tsig::new(
        data.algorithm().to_name::<Vec<u8>>(),
        data.time_signed(),
        data.fudge(),
        Vec::new(),
        request.header().id(),
        error,
        Vec::new(),
    )
    .ok()?;
    let mut b = builder()
        .start_answer(request, Rcode::NOTAUTH)
        .ok()?
        .additional();
    b.push((tsig.owner().to_name::<Vec<u8>>(), Class::ANY, 0, record))
        .ok()?;
    Some(b.finish().into_target())
}

/// One stretch of a transfer.
#[derive(Debug)]
pub(crate) enum Part {
    Soa(u32),
    /// The apex NS records (a zone without them does not load).
    Ns,
    Rules(Vec<ZoneRule>),
}

/// A zone transfer (AXFR, or IXFR in either form) as a sequence of messages.
#[derive(Debug)]
pub(crate) struct Transfer {
    id: u16,
    qtype: Rtype,
    zone: Arc<ZoneWire>,
    parts: Vec<Part>,
    part: usize,
    index: usize,
    first: bool,
    tsig: Option<Tsig>,
    targets: Targets,
    /// Records sent so far.
    pub records: u64,
    /// Messages sent so far.
    pub messages: u64,
}

impl Transfer {
    pub fn new(
        request_id: u16,
        qtype: Rtype,
        zone: Arc<ZoneWire>,
        parts: Vec<Part>,
        tsig: Option<Tsig>,
    ) -> Result<Transfer, String> {
        Ok(Transfer {
            id: request_id,
            qtype,
            zone,
            parts,
            part: 0,
            index: 0,
            first: true,
            tsig,
            targets: Targets::new()?,
            records: 0,
            messages: 0,
        })
    }

    /// The full zone: SOA, NS, the rules, SOA (RFC 5936 §2.2; also IXFR's full
    /// form).
    pub fn full_parts(serial: u32, rules: Vec<ZoneRule>) -> Vec<Part> {
        vec![
            Part::Soa(serial),
            Part::Ns,
            Part::Rules(rules),
            Part::Soa(serial),
        ]
    }

    /// IXFR's incremental form (RFC 1995 §4) with one condensed difference:
    /// SOA(new), SOA(old), removed, SOA(new), added, SOA(new).
    pub fn delta_parts(
        from: u32,
        to: u32,
        removed: Vec<ZoneRule>,
        added: Vec<ZoneRule>,
    ) -> Vec<Part> {
        vec![
            Part::Soa(to),
            Part::Soa(from),
            Part::Rules(removed),
            Part::Soa(to),
            Part::Rules(added),
            Part::Soa(to),
        ]
    }

    fn done(&self) -> bool {
        self.part >= self.parts.len()
    }

    /// The next message, or `None` when the transfer is complete.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, String> {
        if self.done() {
            return Ok(None);
        }
        let mut b = builder();
        {
            let h = b.header_mut();
            h.set_id(self.id);
            h.set_qr(true);
            h.set_aa(true);
            h.set_rcode(Rcode::NOERROR);
        }
        let mut q = b.question();
        if self.first {
            q.push((&self.zone.apex, self.qtype, Class::IN))
                .map_err(|e| format!("question: {e}"))?;
            self.first = false;
        }
        let mut answer = q.answer();
        answer.as_builder_mut().set_push_limit(MESSAGE_TARGET);
        let mut in_message = 0u64;
        'fill: while let Some(part) = self.parts.get(self.part) {
            let pushed = match part {
                Part::Soa(serial) => answer.push(self.zone.soa(*serial)),
                Part::Ns => {
                    // Right after the first SOA of the first message: always fits.
                    let before = answer.counts().ancount();
                    self.zone
                        .push_ns(&mut answer)
                        .map_err(|e| format!("apex NS records do not fit: {e}"))?;
                    in_message += u64::from(answer.counts().ancount().saturating_sub(before));
                    self.part += 1;
                    continue 'fill;
                }
                Part::Rules(rules) => {
                    let Some(rule) = rules.get(self.index) else {
                        self.part += 1;
                        self.index = 0;
                        continue 'fill;
                    };
                    let owner = format!("{}.{}.", rule.owner, self.zone.info.apex);
                    match owner.parse::<Dname>() {
                        Ok(owner) => answer.push((
                            owner,
                            Class::IN,
                            self.zone.ttl(),
                            Cname::new(self.targets.of(rule.action).clone()),
                        )),
                        Err(_) => {
                            // The source filters names a zone cannot hold; skip rather
                            // than fail the whole transfer.
                            self.index += 1;
                            continue 'fill;
                        }
                    }
                }
            };
            match pushed {
                Ok(()) => {
                    in_message += 1;
                    match part {
                        Part::Soa(_) | Part::Ns => self.part += 1,
                        Part::Rules(_) => self.index += 1,
                    }
                }
                Err(e) if in_message == 0 => return Err(format!("record does not fit: {e}")),
                Err(_) => break 'fill,
            }
        }
        self.records += in_message;
        self.messages += 1;
        let additional = answer.additional();
        finish(additional, self.tsig.as_mut())
            .map(Some)
            .map_err(|e| format!("signing: {e}"))
    }
}

/// Fixtures for this crate's unit tests: the feed `phishing` at `apex`, and a rule.
#[cfg(test)]
pub(crate) fn test_zone(apex: &str, serial: u32) -> Arc<ZoneWire> {
    let info = ZoneInfo {
        feed: "phishing".into(),
        apex: apex.into(),
        serial,
        soa: SoaFields {
            ttl: 300,
            mname: "localhost".into(),
            rname: "root.localhost".into(),
            refresh: 3600,
            retry: 600,
            expire: 864000,
            minimum: 300,
            ns: vec!["localhost".into()],
        },
    };
    Arc::new(ZoneWire::new(info).unwrap_or_else(|e| panic!("{e}")))
}

#[cfg(test)]
pub(crate) fn test_rule(owner: &str, action: policy::Action) -> ZoneRule {
    ZoneRule {
        owner: owner.into(),
        action,
    }
}

#[cfg(test)]
mod tests {
    use super::test_rule as rule;
    use super::*;

    fn zone() -> Arc<ZoneWire> {
        test_zone("phishing.rpz.sharedefend", 7)
    }

    /// Every record of every message, as `owner type data` lines.
    fn dump(mut t: Transfer) -> (usize, String) {
        let mut out = String::new();
        let mut n = 0;
        while let Some(bytes) = t.next_message().unwrap_or_else(|e| panic!("{e}")) {
            assert!(bytes.len() < 65_535);
            n += 1;
            let msg = Message::from_octets(bytes).unwrap_or_else(|e| panic!("{e}"));
            for rr in msg.answer().unwrap_or_else(|e| panic!("{e}")) {
                let rr = rr.unwrap_or_else(|e| panic!("{e}"));
                let rr = rr
                    .to_any_record::<domain::rdata::AllRecordData<_, _>>()
                    .unwrap_or_else(|e| panic!("{e}"));
                out.push_str(&format!("{}. {} {}\n", rr.owner(), rr.rtype(), rr.data()));
            }
        }
        (n, out)
    }

    #[test]
    fn axfr_is_soa_rules_soa() {
        let rules = vec![
            rule("evil.example", policy::Action::Nxdomain),
            rule("*.evil.example", policy::Action::Nxdomain),
            rule("quiet.example", policy::Action::Nodata),
        ];
        let t = Transfer::new(1, Rtype::AXFR, zone(), Transfer::full_parts(7, rules), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let (messages, text) = dump(t);
        assert_eq!(messages, 1);
        assert_eq!(
            text,
            "phishing.rpz.sharedefend. SOA localhost. root.localhost. 7 3600 600 864000 300\n\
             phishing.rpz.sharedefend. NS localhost.\n\
             evil.example.phishing.rpz.sharedefend. CNAME .\n\
             *.evil.example.phishing.rpz.sharedefend. CNAME .\n\
             quiet.example.phishing.rpz.sharedefend. CNAME *.\n\
             phishing.rpz.sharedefend. SOA localhost. root.localhost. 7 3600 600 864000 300\n"
        );
    }

    #[test]
    fn ixfr_delta_layout() {
        let t = Transfer::new(
            1,
            Rtype::IXFR,
            zone(),
            Transfer::delta_parts(
                5,
                7,
                vec![rule("old.example", policy::Action::Nxdomain)],
                vec![rule("new.example", policy::Action::Drop)],
            ),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (_, text) = dump(t);
        let serials: Vec<&str> = text
            .lines()
            .map(|l| {
                l.split(' ')
                    .nth(4)
                    .unwrap_or(l.split(' ').next().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            serials,
            [
                "7",
                "5",
                "old.example.phishing.rpz.sharedefend.",
                "7",
                "new.example.phishing.rpz.sharedefend.",
                "7"
            ]
        );
        assert!(text.contains("new.example.phishing.rpz.sharedefend. CNAME rpz-drop.\n"));
    }

    #[test]
    fn large_zone_is_split_into_many_small_messages() {
        let rules: Vec<ZoneRule> = (0..20_000)
            .map(|i| {
                rule(
                    &format!("host-{i}.bad-{}.example", i % 97),
                    policy::Action::Nxdomain,
                )
            })
            .collect();
        let t = Transfer::new(1, Rtype::AXFR, zone(), Transfer::full_parts(7, rules), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let (messages, text) = dump(t);
        assert_eq!(text.lines().count(), 20_003);
        assert!(messages > 10, "{messages}");
    }
}

/// Encodes record data written in presentation form (`A 192.0.2.1`, `TXT "a b"`,
/// `MX 10 mail.example.`) as `(type code, wire data)`, with `domain`'s scanner.
/// Quoted strings are one token; names are taken as absolute.
pub(crate) fn encode_rdata(rtype: &str, data: &str) -> Result<(u16, Vec<u8>), String> {
    use domain::base::rdata::ComposeRecordData;
    use domain::base::scan::IterScanner;
    use domain::rdata::ZoneRecordData;

    let code = rtype
        .parse::<Rtype>()
        .map_err(|_| format!("unknown record type {rtype:?}"))?;
    let tokens = rdata_tokens(data)?;
    let mut scanner = IterScanner::<_, Vec<u8>>::new(tokens.iter());
    let parsed = ZoneRecordData::<Vec<u8>, Dname>::scan(code, &mut scanner)
        .map_err(|e| format!("{rtype} {data}: {e}"))?;
    if !scanner.is_exhausted() {
        return Err(format!("{rtype} {data}: trailing data"));
    }
    let mut out = Vec::new();
    parsed
        .compose_rdata(&mut out)
        .map_err(|_| format!("{rtype} {data}: record data too long"))?;
    Ok((code.to_int(), out))
}

/// Splits record data into tokens: white space separates, a quoted string is one
/// token (quotes removed, escapes kept for the scanner).
fn rdata_tokens(data: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = data.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut token = String::new();
        if c == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        token.push('\\');
                        if let Some(n) = chars.next() {
                            token.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    ' ' => token.push_str("\\032"),
                    _ => token.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted string in {data:?}"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                token.push(c);
                chars.next();
            }
        }
        tokens.push(token);
    }
    Ok(tokens)
}

#[cfg(test)]
mod rdata_tests {
    use super::encode_rdata;

    #[test]
    fn presentation_data_is_encoded() {
        let ok = |t: &str, d: &str| encode_rdata(t, d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok("A", "192.0.2.1"), (1, vec![192, 0, 2, 1]));
        assert_eq!(ok("AAAA", "2001:db8::1").1.len(), 16);
        assert_eq!(
            ok("TXT", "\"blocked here\"").1,
            b"\x0cblocked here".to_vec()
        );
        assert_eq!(ok("TXT", "\"a\" \"b\"").1, b"\x01a\x01b".to_vec());
        assert_eq!(
            ok("MX", "10 mail.example.").1,
            b"\x00\x0a\x04mail\x07example\x00".to_vec()
        );
        assert_eq!(
            ok("CNAME", "garden.example").1,
            b"\x06garden\x07example\x00".to_vec()
        );
        assert!(encode_rdata("A", "not-an-address").is_err());
        assert!(encode_rdata("A", "192.0.2.1 192.0.2.2").is_err());
        assert!(encode_rdata("NOPE", "x").is_err());
        assert!(encode_rdata("TXT", "\"open").is_err());
    }
}
