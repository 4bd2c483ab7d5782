//! RPZ zone files: how the hub hands its blocklist to resolvers.
//!
//! BIND, Unbound, Knot Resolver and PowerDNS Recursor all load Response Policy Zones
//! (draft-ietf-dnsop-dns-rpz), by file or by zone transfer, so this is the one output
//! every resolver operator can use. The writer emits `$ORIGIN`, `$TTL`, the SOA and
//! NS records, then one owner per rule, relative to the origin: a name, `*.name`, or
//! `<prefix>.<reversed address>.rpz-ip` in the canonical form BIND checks (IPv6 with
//! the longest run of zero groups as `zz`). What a zone cannot express is skipped,
//! not written wrongly: URLs (DNS sees no paths), names whose owner would exceed 253
//! characters, and names ending in an `rpz-*` label (they would be read as another
//! trigger type). [`owner`] says in advance which rules are written.
//!
//! [`RecordWriter`] writes a zone record by record instead, as a secondary received
//! it (the filter's saved copy of a transferred zone): data, not rules.

use std::collections::HashSet;
use std::io::{self, Write};
use std::net::IpAddr;

use indicator::{Domain, Indicator, MAX_NAME_LEN};

use crate::RpzAction;

/// Default TTL of policy records: short, so a removed entry stops blocking soon.
pub const DEFAULT_TTL: u32 = 300;
/// Default SOA refresh: secondaries check for a new serial every hour (NOTIFY
/// usually tells them sooner).
pub const DEFAULT_REFRESH: u32 = 3_600;
/// Default SOA retry after a failed refresh: ten minutes.
pub const DEFAULT_RETRY: u32 = 600;
/// Default SOA expire: a secondary that cannot reach the hub keeps serving the last
/// policy for ten days, then drops it.
pub const DEFAULT_EXPIRE: u32 = 864_000;
/// Default SOA minimum (negative-caching TTL).
pub const DEFAULT_MINIMUM: u32 = 300;
/// Default SOA MNAME and NS target: `localhost`, the RPZ convention (a policy zone
/// is transferred, never resolved through its NS records, and an in-zone name would
/// need glue).
pub const DEFAULT_NS: &str = "localhost";
/// Default SOA RNAME (`root@localhost`).
pub const DEFAULT_RNAME: &str = "root.localhost";

/// The apex records of a zone and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneHeader {
    /// The zone name, as given to the resolver (`response-policy { zone "…"; }`).
    pub origin: Domain,
    pub serial: u32,
    /// `$TTL`: the TTL of every record.
    pub ttl: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
    pub mname: Domain,
    pub rname: Domain,
    pub ns: Vec<Domain>,
}

impl ZoneHeader {
    /// A header with the documented defaults ([`DEFAULT_TTL`] …, [`DEFAULT_NS`],
    /// [`DEFAULT_RNAME`]).
    pub fn new(origin: Domain, serial: u32) -> ZoneHeader {
        // The defaults are valid names; falling back to the origin only keeps this
        // free of panics.
        let ns = Domain::parse(DEFAULT_NS).unwrap_or_else(|_| origin.clone());
        let rname = Domain::parse(DEFAULT_RNAME).unwrap_or_else(|_| origin.clone());
        ZoneHeader {
            serial,
            ttl: DEFAULT_TTL,
            refresh: DEFAULT_REFRESH,
            retry: DEFAULT_RETRY,
            expire: DEFAULT_EXPIRE,
            minimum: DEFAULT_MINIMUM,
            mname: ns.clone(),
            rname,
            ns: vec![ns],
            origin,
        }
    }
}

/// Writes a whole zone. Rules that a zone cannot express ([`owner`] is `None`) are
/// skipped. No NS name in the header, two rules with the same owner, a malformed
/// redirect target or local data that would not parse are an `InvalidInput` error:
/// the zone would not load.
pub fn zone(
    out: &mut dyn Write,
    header: &ZoneHeader,
    rules: &[(Indicator, RpzAction)],
) -> io::Result<()> {
    let h = header;
    if h.ns.is_empty() {
        return Err(invalid("a zone needs at least one NS record".to_owned()));
    }
    let mut out = io::BufWriter::new(out);
    writeln!(out, "; response policy zone {}", h.origin)?;
    writeln!(out, "$ORIGIN {}.", h.origin)?;
    writeln!(out, "$TTL {}", h.ttl)?;
    writeln!(
        out,
        "@ SOA {}. {}. {} {} {} {} {}",
        h.mname, h.rname, h.serial, h.refresh, h.retry, h.expire, h.minimum
    )?;
    for ns in &h.ns {
        writeln!(out, "@ NS {ns}.")?;
    }
    let mut seen = HashSet::with_capacity(rules.len());
    for (indicator, action) in rules {
        let Some(owner) = owner(indicator, &h.origin) else {
            continue;
        };
        if !seen.insert(owner.clone()) {
            return Err(invalid(format!("two rules for the owner {owner}")));
        }
        match action {
            RpzAction::Nxdomain => writeln!(out, "{owner} CNAME .")?,
            RpzAction::Nodata => writeln!(out, "{owner} CNAME *.")?,
            RpzAction::Passthru => writeln!(out, "{owner} CNAME rpz-passthru.")?,
            RpzAction::Drop => writeln!(out, "{owner} CNAME rpz-drop.")?,
            RpzAction::TcpOnly => writeln!(out, "{owner} CNAME rpz-tcp-only.")?,
            RpzAction::Redirect(target) => {
                let text = target.strip_suffix('.').unwrap_or(target);
                let (star, name) = match text.strip_prefix("*.") {
                    Some(name) => ("*.", name),
                    None => ("", text),
                };
                let Ok(name) = Domain::parse(name) else {
                    return Err(invalid(format!(
                        "redirect target {target:?} for {owner} is not a domain name"
                    )));
                };
                writeln!(out, "{owner} CNAME {star}{name}.")?;
            }
            RpzAction::LocalData(rrs) => {
                if rrs.is_empty() {
                    return Err(invalid(format!("local data for {owner} is empty")));
                }
                for (rtype, rdata) in rrs {
                    let type_ok = rtype
                        .as_bytes()
                        .first()
                        .is_some_and(u8::is_ascii_alphabetic)
                        && rtype
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                    let data_ok = !rdata.trim().is_empty()
                        && !rdata.bytes().any(|b| b.is_ascii_control() && b != b'\t');
                    if !type_ok || !data_ok {
                        return Err(invalid(format!(
                            "local data {rtype} {rdata:?} for {owner} is not one record"
                        )));
                    }
                    writeln!(out, "{owner} {rtype} {rdata}")?;
                }
            }
        }
    }
    out.flush()
}

/// The owner name of a rule relative to `origin`, or `None` when a zone cannot
/// express it (a URL; a name ending in an `rpz-*` label; an owner too long).
pub fn owner(indicator: &Indicator, origin: &Domain) -> Option<String> {
    let relative = match indicator {
        Indicator::Url(_) => return None,
        Indicator::Domain(d) | Indicator::Wildcard(d) => {
            let last = d.labels().next_back().unwrap_or_default();
            if SPECIAL_LABELS.contains(&last) {
                return None;
            }
            if matches!(indicator, Indicator::Wildcard(_)) {
                format!("*.{d}")
            } else {
                d.as_str().to_owned()
            }
        }
        Indicator::Ip(a) => address_owner(*a, if a.is_ipv4() { 32 } else { 128 }),
        Indicator::Cidr(net) => address_owner(net.network(), net.prefix_len()),
    };
    (relative.len() + 1 + origin.as_str().len() <= MAX_NAME_LEN).then_some(relative)
}

/// `<prefix>.<address, least significant label first>.rpz-ip`, in BIND's canonical
/// form: IPv6 words in lowercase hex without leading zeros, the longest run of two or
/// more zero words (the first such run in address order on a tie) written `zz`.
fn address_owner(address: IpAddr, prefix: u8) -> String {
    match address {
        IpAddr::V4(a) => {
            let [o1, o2, o3, o4] = a.octets();
            format!("{prefix}.{o4}.{o3}.{o2}.{o1}.rpz-ip")
        }
        IpAddr::V6(a) => {
            let words = a.segments();
            let (mut best_start, mut best_len) = (0, 0);
            let mut run_start = 0;
            for (i, &w) in words.iter().enumerate() {
                if w != 0 {
                    run_start = i + 1;
                } else if i + 1 - run_start > best_len {
                    best_start = run_start;
                    best_len = i + 1 - run_start;
                }
            }
            let mut name = prefix.to_string();
            let mut i = words.len();
            while i > 0 {
                i -= 1;
                if best_len >= 2 && i + 1 == best_start + best_len {
                    name.push_str(".zz");
                    i = best_start;
                } else {
                    let w = words.get(i).copied().unwrap_or_default();
                    name.push_str(&format!(".{w:x}"));
                }
            }
            name.push_str(".rpz-ip");
            name
        }
    }
}

/// Writes a zone record by record, as a secondary received it: `$ORIGIN`, then one
/// line per record (`owner TTL IN TYPE data`), owners relative to the origin (`@`
/// for the apex). The caller writes the SOA first. Each field is checked to be one
/// token of master-file syntax, so what is written reads back as written
/// ([`RecordReader`](crate::readers::rpz::RecordReader)) and loads in BIND; a field
/// that is not is an `InvalidInput` error.
#[derive(Debug)]
pub struct RecordWriter<W: Write> {
    out: io::BufWriter<W>,
    records: u64,
}

impl<W: Write> RecordWriter<W> {
    /// Starts the zone `origin` (a name in presentation form, trailing dot optional).
    pub fn new(out: W, origin: &str) -> io::Result<RecordWriter<W>> {
        let origin = origin.trim_end_matches('.');
        if origin.is_empty() || !is_name_token(origin) {
            return Err(invalid(format!("origin {origin:?} is not a name")));
        }
        let mut out = io::BufWriter::with_capacity(1 << 16, out);
        writeln!(out, "; response policy zone {origin}, as transferred")?;
        writeln!(out, "$ORIGIN {origin}.")?;
        Ok(RecordWriter { out, records: 0 })
    }

    /// Writes one record. `owner` is relative to the origin or `@`; `rdata` is the
    /// record data in presentation form on one line.
    pub fn record(&mut self, owner: &str, ttl: u32, rtype: &str, rdata: &str) -> io::Result<()> {
        if !is_name_token(owner) || owner.ends_with('.') && !owner.ends_with("\\.") {
            return Err(invalid(format!("owner {owner:?} is not a relative name")));
        }
        let type_ok = rtype
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
            && rtype
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !type_ok {
            return Err(invalid(format!("record type {rtype:?} for {owner}")));
        }
        if let Err(e) = check_data_line(rdata) {
            return Err(invalid(format!("{owner} {rtype} {rdata:?}: {e}")));
        }
        writeln!(self.out, "{owner} {ttl} IN {rtype} {rdata}")?;
        self.records += 1;
        Ok(())
    }

    /// Copies one record line, as it is, from a zone this writer's form wrote
    /// before (a saved copy being rewritten with a few changes: the lines that do not
    /// change are not parsed and written again). The line must be one line of
    /// printable text starting with an owner; the newline is added if missing.
    pub fn copy_line(&mut self, line: &str) -> io::Result<()> {
        let body = line.strip_suffix('\n').unwrap_or(line);
        let starts_with_owner = body
            .bytes()
            .next()
            .is_some_and(|b| !matches!(b, b' ' | b'\t' | b';' | b'$'));
        if !starts_with_owner || body.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(invalid(format!("{body:?} is not one record line")));
        }
        self.out.write_all(body.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.records += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Flushes and hands back the output.
    pub fn finish(self) -> io::Result<W> {
        self.out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
    }
}

/// A name as one master-file token: printable ASCII, no white space, and `;`, `(`,
/// `)` and `"` only escaped.
fn is_name_token(text: &str) -> bool {
    let mut escaped = false;
    for b in text.bytes() {
        if !(0x21..0x7f).contains(&b) {
            return false;
        }
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if matches!(b, b';' | b'(' | b')' | b'"') {
            return false;
        }
    }
    !text.is_empty() && !escaped
}

/// Record data that stays one entry on one line and reads back as written:
/// printable ASCII, each quoted string a whole field, fields separated by one space,
/// no comment or parenthesis outside quotes, no dangling escape.
fn check_data_line(rdata: &str) -> Result<(), &'static str> {
    let bytes = rdata.as_bytes();
    let mut quoted = false;
    let mut escaped = false;
    let mut prev: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if !(0x20..0x7f).contains(&b) {
            return Err("a control or non-ASCII character");
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
                        return Err("a quoted string glued to what follows");
                    }
                }
                _ => {}
            }
        } else {
            match b {
                b'\\' => escaped = true,
                b'"' if prev.is_some_and(|p| p != b' ') => {
                    return Err("a quoted string glued to what precedes");
                }
                b'"' => quoted = true,
                b' ' if prev.is_none_or(|p| p == b' ') => {
                    return Err("an empty field (leading or double space)");
                }
                b';' | b'(' | b')' => return Err("a comment or parenthesis"),
                _ => {}
            }
        }
        prev = Some(b);
    }
    if quoted || escaped {
        return Err("an unterminated quote or escape");
    }
    if prev.is_none_or(|p| p == b' ') {
        return Err("no data, or a trailing space");
    }
    Ok(())
}

/// Labels that mark an address or name-server trigger when they end an owner.
const SPECIAL_LABELS: [&str; 4] = ["rpz-ip", "rpz-client-ip", "rpz-nsip", "rpz-nsdname"];

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};
    use indicator::{Domain, Hint, Indicator};

    use super::{ZoneHeader, zone};
    use crate::RpzAction;

    #[track_caller]
    fn check_owner(text: &str, expect: Expect) {
        let origin = Domain::parse("rpz.example").unwrap_or_else(|e| panic!("{e}"));
        let indicator = Indicator::parse(text, Hint::Any).unwrap_or_else(|e| panic!("{e}"));
        expect.assert_eq(&format!("{:?}", super::owner(&indicator, &origin)));
    }

    #[test]
    fn owners() {
        check_owner("Evil.Example", expect![[r#"Some("evil.example")"#]]);
        check_owner("*.evil.example", expect![[r#"Some("*.evil.example")"#]]);
        check_owner("192.0.2.1", expect![[r#"Some("32.1.2.0.192.rpz-ip")"#]]);
        check_owner("10.0.0.0/8", expect![[r#"Some("8.0.0.0.10.rpz-ip")"#]]);
        check_owner(
            "2001:db8::1",
            expect![[r#"Some("128.1.zz.db8.2001.rpz-ip")"#]],
        );
        check_owner(
            "2001:db8::/32",
            expect![[r#"Some("32.zz.db8.2001.rpz-ip")"#]],
        );
        // A single zero word is not compressed; on a tie the first run is.
        check_owner(
            "2001:db8:0:1:1:1:1:1",
            expect![[r#"Some("128.1.1.1.1.1.0.db8.2001.rpz-ip")"#]],
        );
        check_owner(
            "2001:0:0:1:0:0:1:1",
            expect![[r#"Some("128.1.1.0.0.1.zz.2001.rpz-ip")"#]],
        );
        check_owner("::/1", expect![[r#"Some("1.zz.rpz-ip")"#]]);
        check_owner("::1", expect![[r#"Some("128.1.zz.rpz-ip")"#]]);
        check_owner("http://evil.example/x", expect!["None"]);
        check_owner("x.rpz-ip", expect!["None"]);
    }

    #[test]
    fn header_and_rules() {
        let origin = Domain::parse("rpz.example").unwrap_or_else(|e| panic!("{e}"));
        let header = ZoneHeader::new(origin, 7);
        let rule = |t: &str, a: RpzAction| {
            (
                Indicator::parse(t, Hint::Any).unwrap_or_else(|e| panic!("{e}")),
                a,
            )
        };
        let rules = vec![
            rule("evil.example", RpzAction::Nxdomain),
            rule("*.evil.example", RpzAction::Nodata),
            rule("http://evil.example/x", RpzAction::Nxdomain),
            rule(
                "198.51.100.0/24",
                RpzAction::Redirect("walled.example.".to_owned()),
            ),
            rule(
                "page.example",
                RpzAction::LocalData(vec![
                    ("A".to_owned(), "192.0.2.1".to_owned()),
                    ("TXT".to_owned(), "\"blocked\"".to_owned()),
                ]),
            ),
        ];
        let mut out = Vec::new();
        zone(&mut out, &header, &rules).unwrap_or_else(|e| panic!("{e}"));
        expect![[r#"
            ; response policy zone rpz.example
            $ORIGIN rpz.example.
            $TTL 300
            @ SOA localhost. root.localhost. 7 3600 600 864000 300
            @ NS localhost.
            evil.example CNAME .
            *.evil.example CNAME *.
            24.0.100.51.198.rpz-ip CNAME walled.example.
            page.example A 192.0.2.1
            page.example TXT "blocked"
        "#]]
        .assert_eq(&String::from_utf8_lossy(&out));
    }

    #[test]
    fn what_would_not_load_is_an_error() {
        let origin = Domain::parse("rpz.example").unwrap_or_else(|e| panic!("{e}"));
        let header = ZoneHeader::new(origin, 1);
        let d = Indicator::parse("evil.example", Hint::Domain).unwrap_or_else(|e| panic!("{e}"));
        let cases = [
            vec![
                (d.clone(), RpzAction::Nxdomain),
                (d.clone(), RpzAction::Drop),
            ],
            vec![(d.clone(), RpzAction::Redirect("not a name".to_owned()))],
            vec![(d.clone(), RpzAction::LocalData(Vec::new()))],
            vec![(
                d.clone(),
                RpzAction::LocalData(vec![("A".to_owned(), "1.2.3.4\nx CNAME .".to_owned())]),
            )],
        ];
        for rules in cases {
            let e = zone(&mut Vec::new(), &header, &rules).err();
            assert_eq!(
                e.map(|e| e.kind()),
                Some(std::io::ErrorKind::InvalidInput),
                "{rules:?}"
            );
        }
        let no_ns = ZoneHeader {
            ns: Vec::new(),
            ..header
        };
        let e = zone(&mut Vec::new(), &no_ns, &[]).err();
        assert_eq!(e.map(|e| e.kind()), Some(std::io::ErrorKind::InvalidInput));
    }

    #[test]
    fn record_writer_round_trips_through_both_readers() {
        let mut w =
            super::RecordWriter::new(Vec::new(), "rpz.example.").unwrap_or_else(|e| panic!("{e}"));
        let rows = [
            (
                "@",
                300,
                "SOA",
                "localhost. root.localhost. 9 3600 600 864000 300",
            ),
            ("@", 300, "NS", "localhost."),
            ("evil.example", 300, "CNAME", "."),
            ("*.evil.example", 300, "CNAME", "*."),
            ("page.example", 60, "TXT", "\"blocked; see (x)\" \"two\""),
            ("odd\\032name.example", 300, "CNAME", "rpz-drop."),
        ];
        for (owner, ttl, rtype, rdata) in rows {
            w.record(owner, ttl, rtype, rdata)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(w.records(), 6);
        let bytes = w.finish().unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&bytes);
        let mut back = Vec::new();
        crate::readers::rpz::RecordReader::new("rpz.example")
            .read(&text, &mut |r| {
                back.push((r.owner, r.ttl, r.rtype, r.rdata));
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let expected: Vec<_> = rows
            .iter()
            .map(|&(o, t, ty, d)| (o.to_owned(), t, ty.to_owned(), d.to_owned()))
            .collect();
        assert_eq!(back, expected);
        let parsed = crate::readers::rpz::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.records.len(), 4, "{parsed:?}");
        assert!(parsed.diagnostics.is_empty(), "{parsed:?}");
    }

    #[test]
    fn record_writer_refuses_what_would_not_read_back() {
        let mut w =
            super::RecordWriter::new(Vec::new(), "rpz.example").unwrap_or_else(|e| panic!("{e}"));
        let bad = [
            ("a b", "CNAME", "."),
            ("abs.example.", "CNAME", "."),
            ("x;y", "CNAME", "."),
            ("x", "C NAME", "."),
            ("x", "TXT", "\"open"),
            ("x", "TXT", "a ; comment"),
            ("x", "TXT", "line\nx CNAME ."),
            ("x", "TXT", " "),
            ("x", "CAA", "0  \"v\""),
            ("x", "TXT", "a\"b\""),
            ("x", "TXT", "a\tb"),
        ];
        for (owner, rtype, rdata) in bad {
            let e = w.record(owner, 1, rtype, rdata).err();
            assert_eq!(
                e.map(|e| e.kind()),
                Some(std::io::ErrorKind::InvalidInput),
                "{owner} {rtype} {rdata}"
            );
        }
        assert!(super::RecordWriter::new(Vec::new(), "bad name").is_err());
        for bad in [
            "",
            " x 1 IN CNAME .",
            "$TTL 1",
            "; c",
            "x 1 IN CNAME .\ny 1 IN CNAME .",
        ] {
            assert!(w.copy_line(bad).is_err(), "{bad:?}");
        }
        w.copy_line("x 1 IN CNAME .\n")
            .unwrap_or_else(|e| panic!("{e}"));
        w.copy_line("y 1 IN CNAME .")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.records(), 2);
        let out = w.finish().unwrap_or_else(|e| panic!("{e}"));
        assert!(String::from_utf8_lossy(&out).ends_with("\nx 1 IN CNAME .\ny 1 IN CNAME .\n"));
    }
}
