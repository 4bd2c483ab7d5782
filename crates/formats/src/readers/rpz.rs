//! RPZ zones: DNS Response Policy Zones (draft-ietf-dnsop-dns-rpz) in master-file
//! syntax (RFC 1035 §5).
//!
//! An RPZ is how resolvers (BIND, Unbound, Knot, PowerDNS) take a blocklist, so
//! partners publish their lists this way and the hub must read them exactly as a
//! resolver would. The file is an ordinary zone: `$ORIGIN`, `$TTL`, relative and
//! absolute owners, `@`, blank owners, parentheses, comments, quoted strings. The
//! owner name relative to the zone apex is the trigger (`name`, `*.name`,
//! `<prefix>.<reversed-address>.rpz-ip`, `rpz-client-ip`, `rpz-nsip`, `name.rpz-nsdname`)
//! and the records at that owner are the action (`CNAME .` NXDOMAIN, `CNAME *.`
//! NODATA, `CNAME rpz-passthru.`, `rpz-drop.`, `rpz-tcp-only.`, another CNAME target,
//! or local data). One [`Record`] is made per owner, with the policy in
//! [`Meta::rpz`](crate::Meta).
//!
//! The zone's apex normally comes from `named.conf`, not from the file. It is taken
//! from the SOA owner when that is absolute, else from the first absolute `$ORIGIN`.
//! Without either, relative owners are taken as triggers as written (the common
//! `evil.example CNAME .` feed), and absolute owners are cut below the longest suffix
//! they all share that still leaves every trigger a two-label name (or its `rpz-*`
//! label): hand-written zones such as `tiktok.com.rpz. CNAME .` are read as zone
//! `rpz`. A one-label trigger in such a file cannot be told from the apex and is
//! misread; files that carry `$ORIGIN` or an absolute SOA owner are read exactly.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use indicator::{Hint, IpNet};

use crate::{Format, Location, Meta, Parsed, ReadError, Record, RpzAction, RpzPolicy, RpzTrigger};

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    let mut records = Vec::new();
    let mut parsed = read(text, false, &mut |r| records.push(r.into_record()))?;
    parsed.records = records;
    Ok(parsed)
}

/// One owner's policy as [`parse_each`] hands it over: what [`parse`] makes a
/// [`Record`] of, borrowed from the zone text where it can be (no allocation per
/// owner for the usual `name CNAME .`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerPolicy<'t> {
    pub line: u32,
    /// The record's value: the owner below the apex (`name`, `*.name`), or the
    /// network of an address trigger.
    pub value: Cow<'t, str>,
    pub hint: Hint,
    pub policy: RpzPolicy,
}

impl OwnerPolicy<'_> {
    /// The record [`parse`] makes of this owner.
    pub fn into_record(self) -> Record {
        let allow = self.policy.action == RpzAction::Passthru;
        let record = Record::new(
            Location::Line(self.line),
            self.value.into_owned(),
            self.hint,
        );
        let record = if allow { record.allow() } else { record };
        record.with_meta(Meta {
            rpz: Some(self.policy),
            ..Meta::default()
        })
    }
}

/// Like [`parse`], but hands each owner's policy to `sink` as soon as its records
/// end, instead of collecting records: a loader that turns them into something
/// smaller (the filter's matcher) never holds a million `Record`s, nor a million
/// pending owners, at once. The returned `Parsed` has the diagnostics and no
/// records.
///
/// Zones are written owner by owner, so once the apex is known (an absolute SOA
/// owner, the usual `$ORIGIN` + `@ SOA`) an owner is complete when a line names
/// another owner. The price: an owner whose records are **not** adjacent (it
/// reappears after other owners) comes to `sink` once per run of its records, and
/// the consumer merges them ([`parse`] merges them itself, and reports conflicts).
/// Owners met before the apex is known, and every owner of a zone whose apex is
/// only known at the end (no absolute SOA owner), are held and merged as in
/// [`parse`].
pub fn parse_each(text: &str, sink: &mut dyn FnMut(OwnerPolicy<'_>)) -> Result<Parsed, ReadError> {
    read(text, true, sink)
}

fn read(
    text: &str,
    stream: bool,
    sink: &mut dyn FnMut(OwnerPolicy<'_>),
) -> Result<Parsed, ReadError> {
    let mut parsed = Parsed::new(Format::Rpz);
    let mut zone = Zone {
        stream,
        ..Zone::default()
    };
    let mut lexer = Lexer {
        text,
        pos: 0,
        line: 1,
    };
    let mut tokens = Vec::with_capacity(16);
    while let Some(entry) = lexer.next_entry(&mut tokens)? {
        if let Some(problem) = entry.problem {
            parsed.diag(Location::Line(entry.line), problem);
            continue;
        }
        zone.entry(&entry, &tokens, &mut parsed, sink);
    }
    finish(zone, parsed, sink)
}

/// The end of a zone: an error when nothing in it was a record, else what is still
/// held goes to `sink`.
fn finish(
    zone: Zone<'_>,
    mut parsed: Parsed,
    sink: &mut dyn FnMut(OwnerPolicy<'_>),
) -> Result<Parsed, ReadError> {
    if zone.rrs == 0 {
        let first = parsed
            .diagnostics
            .first()
            .map(|d| format!(" (first problem: {d})"))
            .unwrap_or_default();
        return Err(ReadError::new(format!(
            "no SOA and no resource record: not an RPZ zone{first}"
        )));
    }
    zone.finish(&mut parsed, sink);
    Ok(parsed)
}

/// [`parse_each`] over a file read piece by piece: the loader never holds the whole
/// file (160 MB for 5M rules) beside the rules it builds. Feed it whole lines (each
/// piece ending at a line end, the last piece with `last`); an entry whose `(` is
/// still open at the end of a piece is carried into the next. Owners held for the
/// apex (see [`parse_each`]) are made owned between pieces; the usual zone has none
/// by the end of its first piece ([`StreamReader::placed`]).
#[derive(Debug)]
pub struct StreamReader {
    zone: Zone<'static>,
    parsed: Parsed,
    /// Line of the next piece's first line.
    line: u32,
    /// The start of an entry still open at the end of the last piece.
    carry: String,
    tokens_hint: usize,
}

impl Default for StreamReader {
    fn default() -> Self {
        StreamReader::new()
    }
}

impl StreamReader {
    pub fn new() -> StreamReader {
        StreamReader {
            zone: Zone {
                stream: true,
                ..Zone::default()
            },
            parsed: Parsed::new(Format::Rpz),
            line: 1,
            carry: String::new(),
            tokens_hint: 16,
        }
    }

    /// True once an absolute SOA owner has fixed the apex: from then on owners go to
    /// the sink as they end, and nothing is held from one piece to the next but the
    /// owner being read.
    pub fn placed(&self) -> bool {
        self.zone.placed.is_some()
    }

    /// The line the next piece starts at.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// Reads the next piece of the file (whole lines; `last` for the final one).
    pub fn feed(
        &mut self,
        piece: &str,
        last: bool,
        sink: &mut dyn FnMut(OwnerPolicy<'_>),
    ) -> Result<(), ReadError> {
        let joined;
        let text: &str = if self.carry.is_empty() {
            piece
        } else {
            let mut t = std::mem::take(&mut self.carry);
            t.push_str(piece);
            joined = t;
            &joined
        };
        let mut zone: Zone<'_> = std::mem::take(&mut self.zone);
        let mut lexer = Lexer {
            text,
            pos: 0,
            line: self.line,
        };
        let mut tokens = Vec::with_capacity(self.tokens_hint);
        loop {
            let (start, line) = (lexer.pos, lexer.line);
            match lexer.next_entry(&mut tokens) {
                Ok(Some(entry)) => {
                    if let Some(problem) = entry.problem {
                        self.parsed.diag(Location::Line(entry.line), problem);
                        continue;
                    }
                    zone.entry(&entry, &tokens, &mut self.parsed, sink);
                }
                Ok(None) => {
                    self.line = lexer.line;
                    break;
                }
                // A `(` open at the end of a piece: the entry goes on in the next.
                Err(_) if !last => {
                    self.carry = text.get(start..).unwrap_or_default().to_owned();
                    self.line = line;
                    break;
                }
                Err(e) => {
                    self.zone = zone.detach();
                    return Err(e);
                }
            }
        }
        self.tokens_hint = tokens.capacity();
        self.zone = zone.detach();
        Ok(())
    }

    /// Ends the file: places and hands over what is still held, returns the
    /// diagnostics (no records).
    pub fn finish(self, sink: &mut dyn FnMut(OwnerPolicy<'_>)) -> Result<Parsed, ReadError> {
        finish(self.zone, self.parsed, sink)
    }
}

/// What a zone file says about itself, for a resolver that serves it: the apex and
/// the SOA (BIND puts the policy zone's SOA in the additional section of every
/// rewritten answer).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZoneHead {
    /// The apex without the trailing dot, lowercase: the SOA owner when absolute,
    /// else the first absolute `$ORIGIN`; `None` when the file does not say.
    pub apex: Option<String>,
    pub soa: Option<SoaData>,
}

/// The SOA record's data, names absolute without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoaData {
    /// The record's TTL (its own, else the last `$TTL`, else its MINIMUM).
    pub ttl: u32,
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// Reads the apex and SOA of an RPZ zone file, stopping at the SOA record. Entries
/// that do not parse are skipped ([`parse`] reports them); an unbalanced `(` ends the
/// scan with what was found so far.
pub fn head(text: &str) -> ZoneHead {
    let mut lexer = Lexer {
        text,
        pos: 0,
        line: 1,
    };
    let mut tokens = Vec::with_capacity(16);
    let mut origin = Name {
        text: Cow::Borrowed(""),
        absolute: false,
    };
    let mut first_origin: Option<String> = None;
    let mut default_ttl: Option<u32> = None;
    let mut previous: Option<Name<'_>> = None;
    let lower = |n: &Name<'_>| n.text.to_ascii_lowercase();
    while let Ok(Some(entry)) = lexer.next_entry(&mut tokens) {
        if entry.problem.is_some() {
            continue;
        }
        let Some(first) = tokens.first() else {
            continue;
        };
        if !first.quoted && first.text.starts_with('$') {
            let arg = tokens.get(1).filter(|t| !t.quoted && tokens.len() == 2);
            if first.text.eq_ignore_ascii_case("$ORIGIN") {
                if let Some(Ok(o)) = arg.map(|a| resolve(a.text, &origin)) {
                    if o.absolute && first_origin.is_none() {
                        first_origin = Some(lower(&o));
                    }
                    origin = o;
                }
            } else if first.text.eq_ignore_ascii_case("$TTL") {
                default_ttl = arg.and_then(|a| parse_ttl(a.text)).or(default_ttl);
            }
            continue;
        }
        let (owner, rest) = if entry.blank_owner {
            match &previous {
                Some(p) => (p.clone(), tokens.as_slice()),
                None => continue,
            }
        } else {
            match resolve(first.text, &origin) {
                Ok(o) => (o, tokens.get(1..).unwrap_or_default()),
                Err(_) => continue,
            }
        };
        previous = Some(owner.clone());
        let mut ttl = None;
        let mut fields = rest.iter();
        let rtype = loop {
            match fields.next() {
                Some(t) if t.text.as_bytes().first().is_some_and(u8::is_ascii_digit) => {
                    ttl = parse_ttl(t.text);
                }
                Some(t) if CLASSES.iter().any(|c| c.eq_ignore_ascii_case(t.text)) => {}
                other => break other,
            }
        };
        if !rtype.is_some_and(|t| t.text.eq_ignore_ascii_case("SOA")) {
            continue;
        }
        let rdata = fields.as_slice();
        let [mname, rname, serial, refresh, retry, expire, minimum] = rdata else {
            continue;
        };
        let names = (resolve(mname.text, &origin), resolve(rname.text, &origin));
        let (Ok(mname), Ok(rname)) = names else {
            continue;
        };
        let timers = [refresh, retry, expire, minimum].map(|t| parse_ttl(t.text));
        let (Ok(serial), [Some(refresh), Some(retry), Some(expire), Some(minimum)]) =
            (serial.text.parse::<u32>(), timers)
        else {
            continue;
        };
        let apex = if owner.absolute {
            Some(lower(&owner))
        } else {
            first_origin
        };
        return ZoneHead {
            apex,
            soa: Some(SoaData {
                ttl: ttl.or(default_ttl).unwrap_or(minimum),
                mname: lower(&mname),
                rname: lower(&rname),
                serial,
                refresh,
                retry,
                expire,
                minimum,
            }),
        };
    }
    ZoneHead {
        apex: first_origin,
        soa: None,
    }
}

// ---------------------------------------------------------------------------------
// Lexing: tokens of one entry (a record or directive), parentheses joined.

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    /// As written; a quoted string keeps its quotes and escapes.
    text: &'a str,
    quoted: bool,
}

#[derive(Debug)]
struct Entry {
    /// Line where the entry starts.
    line: u32,
    /// The first line starts with white space: the owner is the previous one.
    blank_owner: bool,
    /// A lexical problem that makes the entry unusable.
    problem: Option<String>,
}

#[derive(Debug)]
struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    line: u32,
}

impl<'a> Lexer<'a> {
    /// Reads the next entry's tokens into `tokens`; `Ok(None)` at the end of input. A
    /// `(` still open at the end of input is an error: the rest of the file was
    /// swallowed into one entry and nothing after it can be trusted.
    fn next_entry(&mut self, tokens: &mut Vec<Token<'a>>) -> Result<Option<Entry>, ReadError> {
        tokens.clear();
        let bytes = self.text.as_bytes();
        let mut entry = Entry {
            line: self.line,
            blank_owner: false,
            problem: None,
        };
        let mut depth = 0u32;
        let mut open_line = 0;
        let mut line_start = true;
        loop {
            let Some(&b) = bytes.get(self.pos) else {
                if depth > 0 {
                    return Err(ReadError::at(
                        Location::Line(open_line),
                        "unbalanced parentheses: \"(\" is never closed",
                    ));
                }
                let any = !tokens.is_empty() || entry.problem.is_some();
                return Ok(any.then_some(entry));
            };
            if line_start && depth == 0 && tokens.is_empty() && entry.problem.is_none() {
                entry.line = self.line;
                entry.blank_owner = b == b' ' || b == b'\t';
            }
            line_start = false;
            match b {
                b'\n' => {
                    self.pos += 1;
                    self.line = self.line.saturating_add(1);
                    line_start = true;
                    if depth == 0 && (!tokens.is_empty() || entry.problem.is_some()) {
                        return Ok(Some(entry));
                    }
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b';' => {
                    let rest = bytes.get(self.pos..).unwrap_or_default();
                    self.pos = memchr::memchr(b'\n', rest).map_or(bytes.len(), |i| self.pos + i);
                }
                b'(' => {
                    if depth > 0 {
                        problem(&mut entry, "nested \"(\"");
                    } else {
                        open_line = self.line;
                    }
                    depth += 1;
                    self.pos += 1;
                }
                b')' => {
                    if depth == 0 {
                        problem(&mut entry, "\")\" without \"(\"");
                    } else {
                        depth -= 1;
                    }
                    self.pos += 1;
                }
                b'"' => self.quoted(tokens, &mut entry),
                _ => self.word(tokens),
            }
        }
    }

    /// A quoted string, kept with its quotes; it may not span lines.
    fn quoted(&mut self, tokens: &mut Vec<Token<'a>>, entry: &mut Entry) {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        self.pos += 1;
        loop {
            match bytes.get(self.pos) {
                None | Some(b'\n') => {
                    problem(entry, "unterminated quoted string");
                    return;
                }
                Some(b'\\') if bytes.get(self.pos + 1).is_some_and(|&c| c != b'\n') => {
                    self.pos += 2;
                }
                Some(b'"') => {
                    self.pos += 1;
                    if let Some(text) = self.text.get(start..self.pos) {
                        tokens.push(Token { text, quoted: true });
                    }
                    return;
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// An unquoted word; `\x` escapes a delimiter.
    fn word(&mut self, tokens: &mut Vec<Token<'a>>) {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"' => break,
                b'\\' if bytes.get(self.pos + 1).is_some_and(|&c| c != b'\n') => self.pos += 2,
                _ => self.pos += 1,
            }
        }
        // Delimiters are ASCII, so `start..pos` is on character boundaries; `get`
        // keeps that an assumption checked rather than trusted.
        if let Some(text) = self.text.get(start..self.pos) {
            tokens.push(Token {
                text,
                quoted: false,
            });
        } else {
            self.pos = self.pos.max(start + 1);
        }
    }
}

fn problem(entry: &mut Entry, message: &str) {
    if entry.problem.is_none() {
        entry.problem = Some(message.to_owned());
    }
}

// ---------------------------------------------------------------------------------
// Names.

/// A name as resolved against `$ORIGIN`: no trailing dot; relative when the origin
/// is unknown (relative to the zone named in `named.conf`).
#[derive(Debug, Clone)]
struct Name<'a> {
    text: Cow<'a, str>,
    absolute: bool,
}

impl Name<'_> {
    /// Writes the owner's comparison key (lowercase, `.` when absolute) into `out`.
    fn key_into(&self, out: &mut String) {
        out.clear();
        out.extend(self.text.chars().map(|c| c.to_ascii_lowercase()));
        if self.absolute {
            out.push('.');
        }
    }

    fn same(&self, other: &Name<'_>) -> bool {
        self.absolute == other.absolute && self.text.eq_ignore_ascii_case(&other.text)
    }

    fn shown(&self) -> String {
        if self.absolute {
            format!("{}.", self.text)
        } else if self.text.is_empty() {
            "@".to_owned()
        } else {
            self.text.clone().into_owned()
        }
    }
}

impl Name<'_> {
    /// The same name, owning its text (to outlive the piece of file it was read from).
    fn detach(self) -> Name<'static> {
        Name {
            text: Cow::Owned(self.text.into_owned()),
            absolute: self.absolute,
        }
    }
}

/// Resolves `text` (`@`, `name.`, or `name` relative to `origin`).
fn resolve<'a>(text: &'a str, origin: &Name<'a>) -> Result<Name<'a>, String> {
    if text == "@" {
        return Ok(origin.clone());
    }
    if text == "." {
        return Ok(Name {
            text: Cow::Borrowed(""),
            absolute: true,
        });
    }
    let (body, absolute) = match text.strip_suffix('.') {
        Some(body) if body.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 0 => {
            (body, true)
        }
        _ => (text, false),
    };
    if body.is_empty() || body.starts_with('.') || body.contains("..") {
        return Err(format!("empty label in name {text:?}"));
    }
    if absolute {
        return Ok(Name {
            text: Cow::Borrowed(body),
            absolute: true,
        });
    }
    Ok(Name {
        text: if origin.text.is_empty() {
            Cow::Borrowed(body)
        } else {
            Cow::Owned(format!("{body}.{}", origin.text))
        },
        absolute: origin.absolute,
    })
}

/// Resolves an owner once the apex is placed and `$ORIGIN` is the apex: a relative
/// owner stays as written, relative to the apex (placed exactly like its absolute
/// form, without building that name).
fn resolve_below_apex<'a>(text: &'a str, origin: &Name<'a>) -> Result<Name<'a>, String> {
    let plain =
        !text.ends_with('.') && text != "@" && !text.starts_with('.') && !text.contains("..");
    if !plain {
        return resolve(text, origin);
    }
    Ok(Name {
        text: Cow::Borrowed(text),
        absolute: false,
    })
}

/// The trigger-type labels a policy owner may end in (just above the apex).
const SPECIAL_LABELS: [&str; 4] = ["rpz-ip", "rpz-client-ip", "rpz-nsip", "rpz-nsdname"];

fn is_special(label: &str) -> bool {
    SPECIAL_LABELS.iter().any(|s| s.eq_ignore_ascii_case(label))
}

/// Where an owner sits relative to the apex.
enum Place<'n> {
    Apex,
    Outside,
    Trigger(&'n str),
}

/// `name` relative to `origin` (both without trailing dot; `""` is the root).
fn below<'n>(name: &'n str, origin: &str) -> Place<'n> {
    if origin.is_empty() {
        return if name.is_empty() {
            Place::Apex
        } else {
            Place::Trigger(name)
        };
    }
    if name.eq_ignore_ascii_case(origin) {
        return Place::Apex;
    }
    let Some(cut) = name.len().checked_sub(origin.len() + 1) else {
        return Place::Outside;
    };
    let dot = name.as_bytes().get(cut) == Some(&b'.');
    match (name.get(..cut), name.get(cut + 1..)) {
        (Some(head), Some(tail)) if dot && tail.eq_ignore_ascii_case(origin) => {
            Place::Trigger(head)
        }
        _ => Place::Outside,
    }
}

/// The origin of a zone whose absolute owners are all that says where it is: the
/// longest common suffix that leaves each owner a two-label trigger (three with a
/// leading `*`) and its `rpz-*` label. `""` (the root) when nothing is shared.
fn infer_origin<'n>(owners: impl Iterator<Item = &'n str>) -> String {
    let mut reference: Option<&str> = None;
    let mut shared = usize::MAX;
    for owner in owners {
        if owner.is_empty() {
            continue;
        }
        let labels = owner.split('.').count();
        let mut keep = if owner.starts_with("*.") { 3 } else { 2 };
        for (i, label) in owner.split('.').enumerate() {
            if is_special(label) {
                keep = keep.max(i + 1);
            }
        }
        let mut limit = labels.saturating_sub(keep);
        if let Some(reference) = reference {
            let common = owner
                .rsplit('.')
                .zip(reference.rsplit('.'))
                .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
                .count();
            limit = limit.min(common);
        } else {
            reference = Some(owner);
        }
        shared = shared.min(limit);
    }
    let Some(reference) = reference else {
        return String::new();
    };
    let mut labels: Vec<&str> = reference.rsplit('.').take(shared).collect();
    labels.reverse();
    labels.join(".").to_ascii_lowercase()
}

// ---------------------------------------------------------------------------------
// Records.

/// What an owner's records say, before the trigger is known.
#[derive(Debug)]
enum Data<'a> {
    Cname(Name<'a>),
    Local(Vec<(String, String)>),
}

#[derive(Debug)]
struct Pending<'a> {
    line: u32,
    owner: Name<'a>,
    data: Data<'a>,
}

impl Pending<'_> {
    fn detach(self) -> Pending<'static> {
        Pending {
            line: self.line,
            owner: self.owner.detach(),
            data: match self.data {
                Data::Cname(target) => Data::Cname(target.detach()),
                Data::Local(rrs) => Data::Local(rrs),
            },
        }
    }
}

#[derive(Debug)]
struct Zone<'a> {
    /// Current `$ORIGIN`; relative `""` while unknown.
    origin: Name<'a>,
    /// The first absolute `$ORIGIN`, the apex when the SOA does not say.
    first_origin: Option<Name<'a>>,
    previous: Option<Name<'a>>,
    soa: Option<Name<'a>>,
    /// Resource records read (SOA, NS and DNSSEC records included).
    rrs: usize,
    pending: Vec<Pending<'a>>,
    /// Keyed hash of the owner key → index in `pending`. Hashing into a reused
    /// buffer instead of keeping one `String` per owner halves the time spent here.
    index: HashMap<u64, usize, BuildHasherDefault<Prehashed>>,
    /// Owners whose hash another owner already holds (rare: 64-bit collisions).
    collided: HashMap<String, usize>,
    keys: RandomState,
    scratch: String,
    /// [`parse_each`]: emit each owner when the next one starts, once `placed`.
    stream: bool,
    /// Where owners sit, once the SOA has fixed the apex (stream mode only).
    placed: Option<Placement>,
    /// The owner being read (stream mode, once placed).
    current: Option<Pending<'a>>,
    /// Placed, and `$ORIGIN` is the apex: relative owners are kept as written.
    origin_is_apex: bool,
}

/// How owners are placed below the apex: the absolute origin, and the SOA owner when
/// it is relative (the apex as relative owners name it).
#[derive(Debug)]
struct Placement {
    abs_origin: String,
    rel_apex: String,
}

/// The hasher of a map whose keys are already keyed hashes (SipHash with a random
/// key, from [`RandomState`]), so feed-chosen names cannot flood it.
#[derive(Debug, Default, Clone, Copy)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Default for Zone<'_> {
    fn default() -> Self {
        Zone {
            origin: Name {
                text: Cow::Borrowed(""),
                absolute: false,
            },
            first_origin: None,
            previous: None,
            soa: None,
            rrs: 0,
            pending: Vec::new(),
            index: HashMap::default(),
            collided: HashMap::new(),
            keys: RandomState::new(),
            scratch: String::new(),
            stream: false,
            placed: None,
            current: None,
            origin_is_apex: false,
        }
    }
}

/// Records that sign a zone rather than state policy.
const DNSSEC_TYPES: [&str; 8] = [
    "RRSIG",
    "NSEC",
    "NSEC3",
    "NSEC3PARAM",
    "DNSKEY",
    "ZONEMD",
    "CDS",
    "CDNSKEY",
];

const CLASSES: [&str; 4] = ["IN", "CH", "HS", "CS"];

impl<'a> Zone<'a> {
    fn entry(
        &mut self,
        entry: &Entry,
        tokens: &[Token<'a>],
        parsed: &mut Parsed,
        sink: &mut dyn FnMut(OwnerPolicy<'_>),
    ) {
        let line = entry.line;
        let at = || Location::Line(line);
        if let Some(first) = tokens.first()
            && !first.quoted
            && first.text.starts_with('$')
        {
            self.directive(
                first.text,
                tokens.get(1..).unwrap_or_default(),
                line,
                parsed,
            );
            return;
        }
        let (owner, rest) = if entry.blank_owner {
            match &self.previous {
                Some(previous) => (previous.clone(), tokens),
                None => {
                    parsed.diag(at(), "no owner name: the first record must name one");
                    return;
                }
            }
        } else {
            let Some((first, rest)) = tokens.split_first() else {
                return;
            };
            if first.quoted {
                parsed.diag(at(), format!("owner name {} is quoted", first.text));
                return;
            }
            let resolved = if self.origin_is_apex {
                resolve_below_apex(first.text, &self.origin)
            } else {
                resolve(first.text, &self.origin)
            };
            match resolved {
                Ok(owner) => {
                    self.previous = Some(owner.clone());
                    (owner, rest)
                }
                Err(e) => {
                    parsed.diag(at(), e);
                    return;
                }
            }
        };
        let mut fields = rest.iter();
        let mut class_seen = false;
        let mut ttl_seen = false;
        let rtype = loop {
            let Some(token) = fields.next() else {
                parsed.diag(at(), format!("record for {} has no type", owner.shown()));
                return;
            };
            let t = token.text;
            if token.quoted {
                parsed.diag(at(), format!("expected a record type, found {t}"));
                return;
            }
            if CLASSES.iter().any(|c| c.eq_ignore_ascii_case(t)) || is_generic(t, "CLASS") {
                if class_seen {
                    parsed.diag(at(), format!("second class {t:?}"));
                    return;
                }
                if !t.eq_ignore_ascii_case("IN") {
                    parsed.diag(at(), format!("class {t}: an RPZ is class IN"));
                    return;
                }
                class_seen = true;
            } else if t.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                if ttl_seen {
                    parsed.diag(at(), format!("second TTL {t:?}"));
                    return;
                }
                if parse_ttl(t).is_none() {
                    parsed.diag(at(), format!("invalid TTL {t:?}"));
                    return;
                }
                ttl_seen = true;
            } else {
                break t;
            }
        };
        let valid_type = rtype
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
            && rtype
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid_type {
            parsed.diag(at(), format!("expected a record type, found {rtype:?}"));
            return;
        }
        self.record(owner, rtype, fields.as_slice(), line, parsed, sink);
    }

    fn directive(&mut self, name: &str, args: &[Token<'a>], line: u32, parsed: &mut Parsed) {
        let at = Location::Line(line);
        if name.eq_ignore_ascii_case("$ORIGIN") {
            let [arg] = args else {
                parsed.diag(at, "$ORIGIN takes one name");
                return;
            };
            match resolve(arg.text, &self.origin) {
                Ok(origin) if !arg.quoted => {
                    if origin.absolute && self.first_origin.is_none() {
                        self.first_origin = Some(origin.clone());
                    }
                    self.origin = origin;
                    self.origin_is_apex = self.origin_at_apex();
                }
                Ok(_) => parsed.diag(at, format!("$ORIGIN {} is quoted", arg.text)),
                Err(e) => parsed.diag(at, e),
            }
        } else if name.eq_ignore_ascii_case("$TTL") {
            match args {
                [arg] if parse_ttl(arg.text).is_some() => {}
                _ => parsed.diag(at, "$TTL takes one TTL (seconds or 1h30m)"),
            }
        } else if name.eq_ignore_ascii_case("$INCLUDE") {
            let file = args.first().map_or("", |t| t.text);
            parsed.diag(
                at,
                format!("$INCLUDE {file} not followed: its records are not read"),
            );
        } else if name.eq_ignore_ascii_case("$GENERATE") {
            parsed.diag(at, "$GENERATE not supported: its records are not read");
        } else {
            parsed.diag(at, format!("unknown directive {name}"));
        }
    }

    fn record(
        &mut self,
        owner: Name<'a>,
        rtype: &str,
        rdata: &[Token<'a>],
        line: u32,
        parsed: &mut Parsed,
        sink: &mut dyn FnMut(OwnerPolicy<'_>),
    ) {
        let at = || Location::Line(line);
        let is = |t: &str| rtype.eq_ignore_ascii_case(t);
        if let Err(e) = check_rdata(rtype, rdata) {
            parsed.diag(at(), format!("{} {rtype}: {e}", owner.shown()));
            return;
        }
        self.rrs += 1;
        if is("SOA") {
            if self.soa.is_some() {
                parsed.diag(at(), "second SOA ignored");
            } else {
                if self.stream && owner.absolute {
                    // The apex is fixed: owners held so far go out, later ones as
                    // soon as they end.
                    let placement = Placement {
                        abs_origin: owner.text.to_ascii_lowercase(),
                        rel_apex: String::new(),
                    };
                    for pending in std::mem::take(&mut self.pending) {
                        emit(pending, &placement, parsed, sink);
                    }
                    self.index = HashMap::default();
                    self.collided = HashMap::new();
                    self.placed = Some(placement);
                    self.origin_is_apex = self.origin_at_apex();
                }
                self.soa = Some(owner);
            }
            return;
        }
        if DNSSEC_TYPES.iter().any(|&t| is(t)) {
            return;
        }
        let data = if is("CNAME") {
            let Some(target) = rdata.first() else {
                return;
            };
            let relative_special = ["*", "rpz-passthru", "rpz-drop", "rpz-tcp-only"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(target.text));
            if relative_special {
                parsed.diag(
                    at(),
                    format!(
                        "CNAME {t} is relative (no trailing dot): it names {t}.<origin>, not the {t}. action",
                        t = target.text
                    ),
                );
            }
            match resolve(target.text, &self.origin) {
                Ok(target) => Data::Cname(target),
                Err(e) => {
                    parsed.diag(at(), format!("CNAME target: {e}"));
                    return;
                }
            }
        } else {
            let mut rtext = String::new();
            for (i, t) in rdata.iter().enumerate() {
                if i > 0 {
                    rtext.push(' ');
                }
                rtext.push_str(t.text);
            }
            Data::Local(vec![(rtype.to_ascii_uppercase(), rtext)])
        };
        if let Some(placement) = &self.placed {
            if let Some(current) = &mut self.current
                && current.owner.same(&owner)
            {
                merge(current, owner, data, line, parsed);
                return;
            }
            let next = Pending { line, owner, data };
            if let Some(done) = self.current.replace(next) {
                emit(done, placement, parsed, sink);
            }
            return;
        }
        self.add(owner, data, line, parsed);
    }

    /// The same state, owning every name it holds.
    fn detach(self) -> Zone<'static> {
        Zone {
            origin: self.origin.detach(),
            first_origin: self.first_origin.map(Name::detach),
            previous: self.previous.map(Name::detach),
            soa: self.soa.map(Name::detach),
            rrs: self.rrs,
            pending: self.pending.into_iter().map(Pending::detach).collect(),
            index: self.index,
            collided: self.collided,
            keys: self.keys,
            scratch: self.scratch,
            stream: self.stream,
            placed: self.placed,
            current: self.current.map(Pending::detach),
            origin_is_apex: self.origin_is_apex,
        }
    }

    fn origin_at_apex(&self) -> bool {
        self.placed.as_ref().is_some_and(|p| {
            self.origin.absolute && self.origin.text.eq_ignore_ascii_case(&p.abs_origin)
        })
    }

    /// Adds data to its owner's pending rule, merging with what the owner has.
    fn add(&mut self, owner: Name<'a>, data: Data<'a>, line: u32, parsed: &mut Parsed) {
        owner.key_into(&mut self.scratch);
        let hash = self.keys.hash_one(self.scratch.as_str());
        let next = self.pending.len();
        let mut index = *self.index.entry(hash).or_insert(next);
        if index != next
            && !self
                .pending
                .get(index)
                .is_some_and(|p| p.owner.same(&owner))
        {
            index = *self.collided.entry(self.scratch.clone()).or_insert(next);
        }
        if index == next {
            self.pending.push(Pending { line, owner, data });
            return;
        }
        if let Some(pending) = self.pending.get_mut(index) {
            merge(pending, owner, data, line, parsed);
        }
    }

    /// Places every owner still held below the apex and turns it into a record.
    fn finish(self, parsed: &mut Parsed, sink: &mut dyn FnMut(OwnerPolicy<'_>)) {
        if let Some(placement) = &self.placed {
            if let Some(current) = self.current {
                emit(current, placement, parsed, sink);
            }
            return;
        }
        let soa = self.soa.as_ref();
        let placement = match (soa, &self.first_origin) {
            (Some(soa), _) if soa.absolute => Placement {
                abs_origin: soa.text.to_ascii_lowercase(),
                rel_apex: String::new(),
            },
            (_, Some(origin)) => Placement {
                abs_origin: origin.text.to_ascii_lowercase(),
                rel_apex: soa.map(|s| s.text.to_ascii_lowercase()).unwrap_or_default(),
            },
            (soa, None) => Placement {
                abs_origin: infer_origin(
                    self.pending
                        .iter()
                        .filter(|p| p.owner.absolute)
                        .map(|p| p.owner.text.as_ref()),
                ),
                rel_apex: soa.map(|s| s.text.to_ascii_lowercase()).unwrap_or_default(),
            },
        };
        for pending in self.pending {
            emit(pending, &placement, parsed, sink);
        }
    }
}

/// Merges a later record of an owner into what the owner has.
fn merge(
    pending: &mut Pending<'_>,
    owner: Name<'_>,
    data: Data<'_>,
    line: u32,
    parsed: &mut Parsed,
) {
    let problem = match (&mut pending.data, data) {
        (Data::Cname(old), Data::Cname(new)) => {
            if old.absolute == new.absolute && old.text.eq_ignore_ascii_case(&new.text) {
                return;
            }
            format!(
                "{} already has CNAME {} (line {}): CNAME {} ignored",
                owner.shown(),
                old.shown(),
                pending.line,
                new.shown()
            )
        }
        (Data::Local(old), Data::Local(new)) => {
            for rr in new {
                if !old.contains(&rr) {
                    old.push(rr);
                }
            }
            return;
        }
        (Data::Cname(_), Data::Local(new)) => format!(
            "{} has a CNAME (line {}) and other data: {} ignored",
            owner.shown(),
            pending.line,
            new.first().map_or("", |(t, _)| t.as_str())
        ),
        (Data::Local(_), Data::Cname(_)) => format!(
            "{} has other data (line {}) and a CNAME: CNAME ignored",
            owner.shown(),
            pending.line
        ),
    };
    parsed.diag(Location::Line(line), problem);
}

/// Places one owner below the apex and turns it into a record.
fn emit(
    pending: Pending<'_>,
    placement: &Placement,
    parsed: &mut Parsed,
    sink: &mut dyn FnMut(OwnerPolicy<'_>),
) {
    let Placement {
        abs_origin,
        rel_apex,
    } = placement;
    let at = Location::Line(pending.line);
    let owner = &pending.owner;
    let place = if owner.absolute {
        below(&owner.text, abs_origin)
    } else {
        match below(&owner.text, rel_apex) {
            Place::Outside => Place::Trigger(&owner.text),
            place => place,
        }
    };
    let trigger_text = match place {
        Place::Apex => return,
        Place::Outside => {
            parsed.diag(
                at,
                format!("owner {} is outside the zone {abs_origin}.", owner.shown()),
            );
            return;
        }
        Place::Trigger(t) => t,
    };
    let (value, hint, trigger) = match decode_trigger(trigger_text) {
        Ok(decoded) => decoded,
        Err(e) => {
            parsed.diag(at, format!("owner {}: {e}", owner.shown()));
            return;
        }
    };
    let action = match pending.data {
        Data::Local(rrs) => RpzAction::LocalData(rrs),
        Data::Cname(target) => cname_action(target, &trigger, hint, &value),
    };
    sink(OwnerPolicy {
        line: pending.line,
        value,
        hint,
        policy: RpzPolicy { trigger, action },
    });
}

fn cname_action(target: Name<'_>, trigger: &RpzTrigger, hint: Hint, value: &str) -> RpzAction {
    if target.absolute {
        let t = target.text.as_ref();
        if t.is_empty() {
            return RpzAction::Nxdomain;
        }
        if t == "*" {
            return RpzAction::Nodata;
        }
        if t.eq_ignore_ascii_case("rpz-passthru") {
            return RpzAction::Passthru;
        }
        if t.eq_ignore_ascii_case("rpz-drop") {
            return RpzAction::Drop;
        }
        if t.eq_ignore_ascii_case("rpz-tcp-only") {
            return RpzAction::TcpOnly;
        }
        // The obsolete PASSTHRU: a CNAME to the query name itself.
        if *trigger == RpzTrigger::Qname && hint == Hint::Domain && t.eq_ignore_ascii_case(value) {
            return RpzAction::Passthru;
        }
    }
    RpzAction::Redirect(target.text.into_owned())
}

/// Splits a trigger (the owner below the apex) into value, hint and trigger type.
fn decode_trigger(trigger: &str) -> Result<(Cow<'_, str>, Hint, RpzTrigger), String> {
    let (head, last) = match trigger.rsplit_once('.') {
        Some((head, last)) => (Some(head), last),
        None => (None, trigger),
    };
    let ip = |make: fn(IpNet) -> RpzTrigger| {
        let head = head.ok_or_else(|| format!("{last} with no address"))?;
        let net = decode_ip(head)?;
        Ok((Cow::Owned(net.to_string()), Hint::Cidr, make(net)))
    };
    if last.eq_ignore_ascii_case("rpz-ip") {
        return ip(RpzTrigger::ResponseIp);
    }
    if last.eq_ignore_ascii_case("rpz-client-ip") {
        return ip(RpzTrigger::ClientIp);
    }
    if last.eq_ignore_ascii_case("rpz-nsip") {
        return ip(RpzTrigger::NsIp);
    }
    let (name, kind) = if last.eq_ignore_ascii_case("rpz-nsdname") {
        let name = head.ok_or("rpz-nsdname with no name server name")?;
        (name, RpzTrigger::NsDname)
    } else {
        (trigger, RpzTrigger::Qname)
    };
    if name == "*" {
        return Err("wildcard \"*\" matches every name: not an indicator".to_owned());
    }
    let hint = if name.starts_with("*.") {
        Hint::Wildcard
    } else {
        Hint::Domain
    };
    Ok((Cow::Borrowed(name), hint, kind))
}

/// Decodes `<prefix>.<address labels, least significant first>` (IPv4: four decimal
/// labels; IPv6: hex labels with at most one `zz` for a run of zero groups).
fn decode_ip(text: &str) -> Result<IpNet, String> {
    let (prefix, rest) = text
        .split_once('.')
        .ok_or_else(|| format!("{text:?} has a prefix length and no address"))?;
    let prefix: u8 = match prefix.len() {
        1..=3 if prefix.bytes().all(|b| b.is_ascii_digit()) => prefix.parse().unwrap_or(u8::MAX),
        _ => return Err(format!("invalid prefix length {prefix:?} in {text:?}")),
    };
    let mut labels = [""; 8];
    let mut count = 0;
    for label in rest.split('.') {
        let slot = labels
            .get_mut(count)
            .ok_or_else(|| format!("{text:?} has too many address labels"))?;
        *slot = label;
        count += 1;
    }
    let labels = labels.get(..count).unwrap_or_default();
    let net = if count == 4 && !rest.bytes().any(|b| b == b'z' || b == b'Z') {
        if !(1..=32).contains(&prefix) {
            return Err(format!("invalid IPv4 prefix length in {text:?}"));
        }
        let mut octets = [0u8; 4];
        for (octet, label) in octets.iter_mut().rev().zip(labels) {
            *octet = match label.len() {
                1..=3 if label.bytes().all(|b| b.is_ascii_digit()) => label
                    .parse()
                    .map_err(|_| format!("invalid IPv4 octet {label:?}"))?,
                _ => return Err(format!("invalid IPv4 octet {label:?}")),
            };
        }
        IpNet::new(IpAddr::V4(Ipv4Addr::from(octets)), prefix)
    } else {
        if !(1..=128).contains(&prefix) {
            return Err(format!("invalid IPv6 prefix length in {text:?}"));
        }
        let zz = labels
            .iter()
            .filter(|l| l.eq_ignore_ascii_case("zz"))
            .count();
        let zeros = match (zz, count) {
            (0, 8) => 0,
            (1, n) => 9 - n,
            _ => return Err(format!("{text:?} is not an IPv6 address")),
        };
        // Groups least significant first, as written.
        let mut groups = [0u16; 8];
        let mut i = 0;
        for label in labels {
            if label.eq_ignore_ascii_case("zz") {
                i += zeros;
                continue;
            }
            let word = match label.len() {
                1..=4 if label.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u16::from_str_radix(label, 16)
                        .map_err(|_| format!("invalid IPv6 word {label:?}"))?
                }
                _ => return Err(format!("invalid IPv6 word {label:?}")),
            };
            if let Some(slot) = groups.get_mut(i) {
                *slot = word;
            }
            i += 1;
        }
        groups.reverse();
        IpNet::new(IpAddr::V6(Ipv6Addr::from(groups)), prefix)
    }
    .map_err(|_| format!("invalid prefix length in {text:?}"))?;
    if net.trunc() != net {
        return Err(format!(
            "{net} has address bits set beyond the prefix length (resolvers ignore it)"
        ));
    }
    Ok(net)
}

/// The rest of RFC 3597 generic data after `\\#`: a length, then that many bytes in
/// hex (in fields of any even length).
fn check_generic(rest: &[Token<'_>]) -> Result<(), String> {
    let Some((len, hex)) = rest.split_first() else {
        return Err("\\# without a length".to_owned());
    };
    let len: usize = match len.text.parse() {
        Ok(n) if n <= 65_535 && !len.quoted => n,
        _ => {
            return Err(format!(
                "\\# length {:?} is not a number up to 65535",
                len.text
            ));
        }
    };
    let mut digits = 0;
    for t in hex {
        if t.quoted || !t.text.bytes().all(|b| b.is_ascii_hexdigit()) || t.text.len() % 2 != 0 {
            return Err(format!("\\# data {:?} is not hex", t.text));
        }
        digits += t.text.len();
    }
    if digits != 2 * len {
        return Err(format!("\\# says {len} bytes, the data has {}", digits / 2));
    }
    Ok(())
}

/// A TTL: seconds, or BIND units (`1w2d3h4m5s`).
fn parse_ttl(text: &str) -> Option<u32> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let mut total: u32 = 0;
    let mut number: Option<u32> = None;
    for b in text.bytes() {
        if b.is_ascii_digit() {
            let n = number.unwrap_or(0);
            number = Some(n.checked_mul(10)?.checked_add(u32::from(b - b'0'))?);
        } else {
            let unit = match b.to_ascii_lowercase() {
                b'w' => 604_800,
                b'd' => 86_400,
                b'h' => 3_600,
                b'm' => 60,
                b's' => 1,
                _ => return None,
            };
            total = total.checked_add(number.take()?.checked_mul(unit)?)?;
        }
    }
    if number.is_some() {
        return None;
    }
    Some(total)
}

/// `TYPE123` / `CLASS1` (RFC 3597).
fn is_generic(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        && text
            .get(prefix.len()..)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks the record data of the types whose shape matters here.
fn check_rdata(rtype: &str, rdata: &[Token<'_>]) -> Result<(), String> {
    let is = |t: &str| rtype.eq_ignore_ascii_case(t);
    if let [marker, rest @ ..] = rdata
        && marker.text == "\\#"
        && !marker.quoted
    {
        // RFC 3597's generic form, for any type but the one that carries the action.
        if is("CNAME") {
            return Err("CNAME data in the generic \\# form: the target cannot be read".to_owned());
        }
        return check_generic(rest);
    }
    let one_name = || match rdata {
        [name] if !name.quoted => Ok(()),
        _ => Err(format!("expected one name, found {} fields", rdata.len())),
    };
    if is("CNAME") || is("NS") || is("PTR") || is("DNAME") {
        return one_name();
    }
    if is("A") {
        return match rdata {
            [a] if a.text.parse::<Ipv4Addr>().is_ok() => Ok(()),
            _ => Err("expected one IPv4 address".to_owned()),
        };
    }
    if is("AAAA") {
        return match rdata {
            [a] if a.text.parse::<Ipv6Addr>().is_ok() => Ok(()),
            _ => Err("expected one IPv6 address".to_owned()),
        };
    }
    if is("SOA") {
        return match rdata {
            [_, _, serial, timers @ ..]
                if timers.len() == 4
                    && serial.text.parse::<u32>().is_ok()
                    && timers.iter().all(|t| parse_ttl(t.text).is_some()) =>
            {
                Ok(())
            }
            _ => Err("expected mname rname serial refresh retry expire minimum".to_owned()),
        };
    }
    if is("MX") {
        return match rdata {
            [pref, name] if pref.text.parse::<u16>().is_ok() && !name.quoted => Ok(()),
            _ => Err("expected a preference and a name".to_owned()),
        };
    }
    if rdata.is_empty() {
        return Err("no record data".to_owned());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Record by record: a zone as data, not as policy.
//
// A secondary keeps its copy of a policy zone record by record (an IXFR removes and
// adds records, not rules), and saves it as a zone file. [`RecordReader`] reads such
// a file back exactly as written — owner, TTL, type, data — with the lexer and name
// rules of [`parse`], strictly: any problem is an error naming the line, since a
// saved copy is either intact or not to be trusted. [`owner_record`] then reads one
// owner's records as policy, the way [`parse`] would, for changes that arrive owner
// by owner.

/// One resource record as a zone file states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    pub line: u32,
    /// Relative to the zone's apex, lowercase; `@` for the apex itself.
    pub owner: String,
    pub ttl: u32,
    /// The type mnemonic in upper case (`CNAME`, `TYPE65280`).
    pub rtype: String,
    /// The data as written, its fields joined by one space (quoted strings keep their
    /// quotes and escapes; comments and parentheses are gone).
    pub rdata: String,
}

/// Reads a zone file's records one entry at a time; text may be fed in pieces of
/// whole entries (the whole file, or line by line when every entry is one line).
#[derive(Debug)]
pub struct RecordReader {
    /// The zone's apex, lowercase, no trailing dot.
    apex: String,
    /// The current `$ORIGIN` (absolute, no trailing dot).
    origin: String,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    /// The last owner named (absolute), for records with a blank owner.
    previous: Option<String>,
    /// Lines consumed so far.
    line: u32,
}

impl RecordReader {
    /// A reader for the zone `apex` (with or without the trailing dot); `$ORIGIN`
    /// starts at the apex.
    pub fn new(apex: &str) -> RecordReader {
        let apex = apex.trim_end_matches('.').to_ascii_lowercase();
        RecordReader {
            origin: apex.clone(),
            apex,
            default_ttl: None,
            last_ttl: None,
            previous: None,
            line: 0,
        }
    }

    /// Reads the entries of `text` (the next lines of the file) and hands each record
    /// to `visit`. The first problem, or the first error `visit` returns, ends the
    /// reading with an error naming the line.
    pub fn read(
        &mut self,
        text: &str,
        visit: &mut dyn FnMut(ZoneRecord) -> Result<(), String>,
    ) -> Result<(), ReadError> {
        let mut lexer = Lexer {
            text,
            pos: 0,
            line: self.line.saturating_add(1),
        };
        let mut tokens = Vec::with_capacity(16);
        while let Some(entry) = lexer.next_entry(&mut tokens)? {
            let at = Location::Line(entry.line);
            if let Some(problem) = entry.problem {
                return Err(ReadError::at(at, problem));
            }
            self.entry(&entry, &tokens, visit)
                .map_err(|e| ReadError::at(at, e))?;
        }
        let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).count();
        let unterminated = u32::from(!text.is_empty() && !text.ends_with('\n'));
        self.line = self
            .line
            .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX))
            .saturating_add(unterminated);
        Ok(())
    }

    fn entry(
        &mut self,
        entry: &Entry,
        tokens: &[Token<'_>],
        visit: &mut dyn FnMut(ZoneRecord) -> Result<(), String>,
    ) -> Result<(), String> {
        let origin = Name {
            text: Cow::Borrowed(self.origin.as_str()),
            absolute: true,
        };
        if let Some(first) = tokens.first()
            && !first.quoted
            && first.text.starts_with('$')
        {
            let args = tokens.get(1..).unwrap_or_default();
            let name = first.text;
            if name.eq_ignore_ascii_case("$ORIGIN") {
                let [arg] = args else {
                    return Err("$ORIGIN takes one name".to_owned());
                };
                if arg.quoted {
                    return Err(format!("$ORIGIN {} is quoted", arg.text));
                }
                let new = resolve(arg.text, &origin)?.text.to_ascii_lowercase();
                self.origin = new;
                return Ok(());
            }
            if name.eq_ignore_ascii_case("$TTL") {
                return match args {
                    [arg] => match parse_ttl(arg.text) {
                        Some(ttl) => {
                            self.default_ttl = Some(ttl);
                            Ok(())
                        }
                        None => Err(format!("invalid $TTL {:?}", arg.text)),
                    },
                    _ => Err("$TTL takes one TTL".to_owned()),
                };
            }
            return Err(format!("directive {name} not supported here"));
        }
        let (owner, rest) = if entry.blank_owner {
            let previous = self
                .previous
                .clone()
                .ok_or("no owner name: the first record must name one")?;
            (previous, tokens)
        } else {
            let (first, rest) = tokens.split_first().ok_or("empty entry")?;
            if first.quoted {
                return Err(format!("owner name {} is quoted", first.text));
            }
            let owner = resolve(first.text, &origin)?.text.to_ascii_lowercase();
            self.previous = Some(owner.clone());
            (owner, rest)
        };
        let mut ttl = None;
        let mut class_seen = false;
        let mut fields = rest.iter();
        let rtype = loop {
            let token = fields.next().ok_or("record has no type")?;
            let t = token.text;
            if token.quoted {
                return Err(format!("expected a record type, found {t}"));
            }
            if CLASSES.iter().any(|c| c.eq_ignore_ascii_case(t)) || is_generic(t, "CLASS") {
                if class_seen || !t.eq_ignore_ascii_case("IN") {
                    return Err(format!("class {t}: only one class, IN"));
                }
                class_seen = true;
            } else if t.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                if ttl.is_some() {
                    return Err(format!("second TTL {t:?}"));
                }
                ttl = Some(parse_ttl(t).ok_or_else(|| format!("invalid TTL {t:?}"))?);
            } else {
                break t;
            }
        };
        let valid_type = rtype
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
            && rtype
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid_type {
            return Err(format!("expected a record type, found {rtype:?}"));
        }
        let rdata = fields.as_slice();
        check_rdata(rtype, rdata).map_err(|e| format!("{rtype}: {e}"))?;
        let ttl = ttl
            .or(self.default_ttl)
            .or(self.last_ttl)
            .ok_or("no TTL and no $TTL before it")?;
        self.last_ttl = Some(ttl);
        let owner = match below(&owner, &self.apex) {
            Place::Apex => "@".to_owned(),
            Place::Trigger(t) => t.to_owned(),
            Place::Outside => {
                return Err(format!("owner {owner}. is outside the zone {}.", self.apex));
            }
        };
        let mut text = String::new();
        for (i, t) in rdata.iter().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(t.text);
        }
        visit(ZoneRecord {
            line: entry.line,
            owner,
            ttl,
            rtype: rtype.to_ascii_uppercase(),
            rdata: text,
        })
    }
}

/// One owner's records (`(type, data)` in presentation form, as a [`ZoneRecord`]
/// holds them) read as policy, exactly as [`parse`] reads that owner in a zone file
/// whose origin is `apex`: the trigger its name encodes, the action its records
/// encode. `None` for what [`parse`] skips silently (the apex, DNSSEC records); an
/// error for what it would report. The record is placed at `line`.
pub fn owner_record(
    apex: &str,
    owner: &str,
    records: &[(&str, &str)],
    line: u32,
) -> Result<Option<Record>, String> {
    if owner == "@" {
        return Ok(None);
    }
    let origin_text = apex.trim_end_matches('.');
    let origin = Name {
        text: Cow::Borrowed(origin_text),
        absolute: true,
    };
    let mut cname: Option<Name<'_>> = None;
    let mut local: Vec<(String, String)> = Vec::new();
    for &(rtype, rdata) in records {
        if DNSSEC_TYPES.iter().any(|t| t.eq_ignore_ascii_case(rtype)) {
            continue;
        }
        if rtype.eq_ignore_ascii_case("CNAME") {
            if cname.is_some() || !local.is_empty() {
                return Err(format!("{owner} has a CNAME and other data"));
            }
            cname = Some(resolve(rdata.trim(), &origin)?);
        } else {
            if cname.is_some() {
                return Err(format!("{owner} has a CNAME and other data"));
            }
            let rr = (rtype.to_ascii_uppercase(), rdata.to_owned());
            if !local.contains(&rr) {
                local.push(rr);
            }
        }
    }
    let (value, hint, trigger) = decode_trigger(owner)?;
    let action = match cname {
        Some(target) => cname_action(target, &trigger, hint, &value),
        None if local.is_empty() => return Ok(None),
        None => RpzAction::LocalData(local),
    };
    let mut record = Record::new(Location::Line(line), value.into_owned(), hint);
    if action == RpzAction::Passthru {
        record = record.allow();
    }
    Ok(Some(record.with_meta(Meta {
        rpz: Some(RpzPolicy { trigger, action }),
        ..Meta::default()
    })))
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::{OwnerPolicy, StreamReader};
    use crate::{Parsed, Polarity, RpzAction, RpzTrigger};

    /// One line per record: line, normalised value (as `Parsed::dump`), trigger,
    /// action; then diagnostics. An error is shown as `error …`.
    fn dump(parsed: &Parsed) -> String {
        let mut out = String::new();
        for r in &parsed.records {
            let value = match r.normalise() {
                Ok(i) => format!("{} {i}", i.kind().as_str()),
                Err(e) => format!("reject {e}"),
            };
            let allow = if r.polarity == Polarity::Allow {
                " allow"
            } else {
                ""
            };
            let policy = match r.meta.as_ref().and_then(|m| m.rpz.as_ref()) {
                None => "no policy".to_owned(),
                Some(p) => {
                    let trigger = match &p.trigger {
                        RpzTrigger::Qname => "qname".to_owned(),
                        RpzTrigger::NsDname => "nsdname".to_owned(),
                        RpzTrigger::ResponseIp(n) => format!("ip {n}"),
                        RpzTrigger::ClientIp(n) => format!("client-ip {n}"),
                        RpzTrigger::NsIp(n) => format!("nsip {n}"),
                    };
                    let action = match &p.action {
                        RpzAction::Nxdomain => "nxdomain".to_owned(),
                        RpzAction::Nodata => "nodata".to_owned(),
                        RpzAction::Passthru => "passthru".to_owned(),
                        RpzAction::Drop => "drop".to_owned(),
                        RpzAction::TcpOnly => "tcp-only".to_owned(),
                        RpzAction::Redirect(t) => format!("redirect {t}"),
                        RpzAction::LocalData(rrs) => {
                            let rrs: Vec<String> =
                                rrs.iter().map(|(t, d)| format!("{t} {d}")).collect();
                            format!("local [{}]", rrs.join(" | "))
                        }
                    };
                    format!("{trigger} {action}")
                }
            };
            out.push_str(&format!("{}: {value} ({policy}){allow}\n", r.at));
        }
        for d in &parsed.diagnostics {
            out.push_str(&format!("diag {d}\n"));
        }
        out
    }

    #[track_caller]
    fn check(input: &str, expect: Expect) {
        let actual = match super::parse(input) {
            Ok(parsed) => dump(&parsed),
            Err(e) => format!("error {e}\n"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn head_reads_apex_and_soa() {
        let head = super::head(
            "$TTL 60\n$ORIGIN Feed.RPZ.\n@ SOA ns hostmaster.example. 7 3600 600 86400 30\n@ NS ns\nx CNAME .\n",
        );
        expect![[r#"
            ZoneHead {
                apex: Some(
                    "feed.rpz",
                ),
                soa: Some(
                    SoaData {
                        ttl: 60,
                        mname: "ns.feed.rpz",
                        rname: "hostmaster.example",
                        serial: 7,
                        refresh: 3600,
                        retry: 600,
                        expire: 86400,
                        minimum: 30,
                    },
                ),
            }"#]]
        .assert_eq(&format!("{head:#?}"));
        let bare = super::head("evil.example CNAME .\n");
        assert_eq!(bare, super::ZoneHead::default());
        let own_ttl = super::head("feed.rpz. 10 IN SOA a. b. 1 2 3 4 5\n");
        assert_eq!(own_ttl.apex.as_deref(), Some("feed.rpz"));
        assert_eq!(own_ttl.soa.map(|s| s.ttl), Some(10));
    }

    #[test]
    fn relative_owners_without_origin() {
        check(
            "$TTL 30\n@ IN SOA localhost. root.localhost. 1 86400 3600 604800 30\n NS localhost.\n\nevil.example CNAME .\nBad.Example. CNAME .\n",
            expect![[r#"
                line 5: domain evil.example (qname nxdomain)
                line 6: domain bad.example (qname nxdomain)
            "#]],
        );
    }

    #[test]
    fn every_action() {
        check(
            "$ORIGIN rpz.example.\n@ SOA ns. hostmaster. 1 2 3 4 5\n@ NS ns.\n\
             a.example CNAME .\n\
             b.example CNAME *.\n\
             c.example CNAME rpz-passthru.\n\
             d.example CNAME rpz-drop.\n\
             e.example CNAME rpz-tcp-only.\n\
             f.example CNAME walled.garden.example.\n\
             g.example CNAME g.example.\n\
             h.example CNAME *.walled.garden.example.\n\
             i.example A 192.0.2.1\n\
             i.example AAAA 2001:db8::1\n\
             i.example TXT \"blocked; see https://x.example/\" \"by policy\"\n\
             j.example CNAME garden\n",
            expect![[r#"
                line 4: domain a.example (qname nxdomain)
                line 5: domain b.example (qname nodata)
                line 6: domain c.example (qname passthru) allow
                line 7: domain d.example (qname drop)
                line 8: domain e.example (qname tcp-only)
                line 9: domain f.example (qname redirect walled.garden.example)
                line 10: domain g.example (qname passthru) allow
                line 11: domain h.example (qname redirect *.walled.garden.example)
                line 12: domain i.example (qname local [A 192.0.2.1 | AAAA 2001:db8::1 | TXT "blocked; see https://x.example/" "by policy"])
                line 15: domain j.example (qname redirect garden.rpz.example)
            "#]],
        );
    }

    #[test]
    fn relative_special_targets_are_flagged() {
        check(
            "x.example CNAME rpz-passthru\ny.example CNAME *\n",
            expect![[r#"
                line 1: domain x.example (qname redirect rpz-passthru)
                line 2: domain y.example (qname redirect *)
                diag line 1: CNAME rpz-passthru is relative (no trailing dot): it names rpz-passthru.<origin>, not the rpz-passthru. action
                diag line 2: CNAME * is relative (no trailing dot): it names *.<origin>, not the *. action
            "#]],
        );
    }

    #[test]
    fn wildcards_and_name_triggers() {
        check(
            "$ORIGIN rpz.example.\n*.evil.example CNAME .\nns1.bad.example.rpz-nsdname CNAME .\n*.bad.example.rpz-nsdname CNAME .\n* CNAME .\n",
            expect![[r#"
                line 2: domain *.evil.example (qname nxdomain)
                line 3: domain ns1.bad.example (nsdname nxdomain)
                line 4: domain *.bad.example (nsdname nxdomain)
                diag line 5: owner *.rpz.example.: wildcard "*" matches every name: not an indicator
            "#]],
        );
    }

    #[test]
    fn address_triggers() {
        check(
            "$ORIGIN rpz.example.\n\
             32.1.2.0.192.rpz-ip CNAME .\n\
             24.0.2.0.192.rpz-client-ip CNAME rpz-passthru.\n\
             128.1.zz.db8.2001.rpz-ip CNAME .\n\
             48.zz.db8.2001.rpz-nsip CNAME .\n\
             128.1.0.0.0.0.0.0.1.rpz-ip CNAME .\n\
             64.zz.1.db8.2001.rpz-ip CNAME .\n\
             1.zz.rpz-ip CNAME .\n",
            expect![[r#"
                line 2: ip 192.0.2.1 (ip 192.0.2.1/32 nxdomain)
                line 3: cidr 192.0.2.0/24 (client-ip 192.0.2.0/24 passthru) allow
                line 4: ip 2001:db8::1 (ip 2001:db8::1/128 nxdomain)
                line 5: cidr 2001:db8::/48 (nsip 2001:db8::/48 nxdomain)
                line 6: ip 1::1 (ip 1::1/128 nxdomain)
                line 7: cidr 2001:db8:1::/64 (ip 2001:db8:1::/64 nxdomain)
                line 8: cidr ::/1 (ip ::/1 nxdomain)
            "#]],
        );
    }

    #[test]
    fn bad_address_triggers() {
        check(
            "$ORIGIN rpz.example.\n\
             33.1.2.0.192.rpz-ip CNAME .\n\
             24.1.2.0.192.rpz-ip CNAME .\n\
             32.1.2.0.300.rpz-ip CNAME .\n\
             0.1.2.0.192.rpz-ip CNAME .\n\
             128.1.zz.zz.2001.rpz-ip CNAME .\n\
             128.1.2.3.4.5.rpz-ip CNAME .\n\
             128.10000.zz.2001.rpz-ip CNAME .\n\
             x.1.zz.rpz-ip CNAME .\n\
             rpz-ip CNAME .\n\
             32.rpz-ip CNAME .\n\
             128.1.2.3.4.5.6.7.8.9.rpz-ip CNAME .\n",
            expect![[r#"
                diag line 2: owner 33.1.2.0.192.rpz-ip.rpz.example.: invalid IPv4 prefix length in "33.1.2.0.192"
                diag line 3: owner 24.1.2.0.192.rpz-ip.rpz.example.: 192.0.2.1/24 has address bits set beyond the prefix length (resolvers ignore it)
                diag line 4: owner 32.1.2.0.300.rpz-ip.rpz.example.: invalid IPv4 octet "300"
                diag line 5: owner 0.1.2.0.192.rpz-ip.rpz.example.: invalid IPv4 prefix length in "0.1.2.0.192"
                diag line 6: owner 128.1.zz.zz.2001.rpz-ip.rpz.example.: "128.1.zz.zz.2001" is not an IPv6 address
                diag line 7: owner 128.1.2.3.4.5.rpz-ip.rpz.example.: "128.1.2.3.4.5" is not an IPv6 address
                diag line 8: owner 128.10000.zz.2001.rpz-ip.rpz.example.: invalid IPv6 word "10000"
                diag line 9: owner x.1.zz.rpz-ip.rpz.example.: invalid prefix length "x" in "x.1.zz"
                diag line 10: owner rpz-ip.rpz.example.: rpz-ip with no address
                diag line 11: owner 32.rpz-ip.rpz.example.: "32" has a prefix length and no address
                diag line 12: owner 128.1.2.3.4.5.6.7.8.9.rpz-ip.rpz.example.: "128.1.2.3.4.5.6.7.8.9" has too many address labels
            "#]],
        );
    }

    #[test]
    fn ttl_and_class_in_either_order() {
        check(
            "a.example 300 IN CNAME .\nb.example IN 1h30m CNAME .\nc.example in cname .\nd.example 1W CNAME .\n",
            expect![[r#"
                line 1: domain a.example (qname nxdomain)
                line 2: domain b.example (qname nxdomain)
                line 3: domain c.example (qname nxdomain)
                line 4: domain d.example (qname nxdomain)
            "#]],
        );
    }

    #[test]
    fn bad_fields_are_diagnostics() {
        check(
            "a.example 300 300 CNAME .\nb.example 1x CNAME .\nc.example CH CNAME .\nd.example IN IN CNAME .\ne.example\nf.example CNAME\ng.example CNAME a. b.\nh.example A 300.1.1.1\ni.example AAAA 192.0.2.1\nj.example TXT\nk.example \"CNAME\" .\n\"l.example\" CNAME .\nm..example CNAME .\nn.example in.valid .\nok.example CNAME .\n",
            expect![[r#"
                line 15: domain ok.example (qname nxdomain)
                diag line 1: second TTL "300"
                diag line 2: invalid TTL "1x"
                diag line 3: class CH: an RPZ is class IN
                diag line 4: second class "IN"
                diag line 5: record for e.example has no type
                diag line 6: f.example CNAME: expected one name, found 0 fields
                diag line 7: g.example CNAME: expected one name, found 2 fields
                diag line 8: h.example A: expected one IPv4 address
                diag line 9: i.example AAAA: expected one IPv6 address
                diag line 10: j.example TXT: no record data
                diag line 11: expected a record type, found "CNAME"
                diag line 12: owner name "l.example" is quoted
                diag line 13: empty label in name "m..example"
                diag line 14: expected a record type, found "in.valid"
            "#]],
        );
    }

    #[test]
    fn blank_owner_is_the_previous_one() {
        check(
            "a.example A 192.0.2.1\n          AAAA 2001:db8::1\n\tTXT blocked\nb.example CNAME .\n",
            expect![[r#"
                line 1: domain a.example (qname local [A 192.0.2.1 | AAAA 2001:db8::1 | TXT blocked])
                line 4: domain b.example (qname nxdomain)
            "#]],
        );
        check(
            "  CNAME .\nb.example CNAME .\n",
            expect![[r#"
                line 2: domain b.example (qname nxdomain)
                diag line 1: no owner name: the first record must name one
            "#]],
        );
    }

    #[test]
    fn merging_one_record_per_owner() {
        check(
            "a.example CNAME .\nb.example A 192.0.2.1\nA.EXAMPLE CNAME .\nb.example a 192.0.2.1\nb.example A 192.0.2.2\na.example CNAME *.\na.example A 192.0.2.9\nb.example CNAME .\n",
            expect![[r#"
                line 1: domain a.example (qname nxdomain)
                line 2: domain b.example (qname local [A 192.0.2.1 | A 192.0.2.2])
                diag line 6: a.example already has CNAME . (line 1): CNAME *. ignored
                diag line 7: a.example has a CNAME (line 1) and other data: A ignored
                diag line 8: b.example has other data (line 2) and a CNAME: CNAME ignored
            "#]],
        );
    }

    #[track_caller]
    fn check_each(input: &str, expect: Expect) {
        let mut records = Vec::new();
        let actual = match super::parse_each(input, &mut |r| records.push(r.into_record())) {
            Ok(mut parsed) => {
                parsed.records = records;
                dump(&parsed)
            }
            Err(e) => format!("error {e}\n"),
        };
        expect.assert_eq(&actual);
    }

    /// `parse_each` emits an owner when the next one starts once an absolute SOA has
    /// fixed the apex: adjacent records (blank owners, any case) still merge, an owner
    /// that comes back is emitted again with its later records (the consumer merges),
    /// owners before the SOA are held until it comes.
    #[test]
    fn parse_each_emits_owners_as_they_end() {
        let zone = "$ORIGIN rpz.example.\n\
            early.example CNAME .\n\
            @ SOA ns. hostmaster. 1 2 3 4 5\n\
            @ NS ns.\n\
            a.example A 192.0.2.1\n\
            \tTXT \"x\"\n\
            A.EXAMPLE A 192.0.2.1\n\
            b.example CNAME .\n\
            b.example CNAME *.\n\
            a.example A 192.0.2.2\n\
            outside.example. CNAME .\n\
            *.c.example.rpz.example. CNAME rpz-drop.\n";
        check_each(
            zone,
            expect![[r#"
                line 2: domain early.example (qname nxdomain)
                line 5: domain a.example (qname local [A 192.0.2.1 | TXT "x"])
                line 8: domain b.example (qname nxdomain)
                line 10: domain a.example (qname local [A 192.0.2.2])
                line 12: domain *.c.example (qname drop)
                diag line 9: b.example already has CNAME . (line 8): CNAME *. ignored
                diag line 11: owner outside.example. is outside the zone rpz.example.
            "#]],
        );
        // The same zone read whole: one record per owner.
        check(
            zone,
            expect![[r#"
                line 2: domain early.example (qname nxdomain)
                line 5: domain a.example (qname local [A 192.0.2.1 | TXT "x" | A 192.0.2.2])
                line 8: domain b.example (qname nxdomain)
                line 12: domain *.c.example (qname drop)
                diag line 9: b.example.rpz.example. already has CNAME . (line 8): CNAME *. ignored
                diag line 11: owner outside.example. is outside the zone rpz.example.
            "#]],
        );
        // No absolute SOA owner: nothing is placed before the end, as in `parse`.
        let relative = "x.example CNAME .\ny.example. CNAME .\nx.example A 192.0.2.1\n";
        let mut whole = Vec::new();
        let mut each = Vec::new();
        let a = super::parse(relative).map(|p| {
            whole = p.records;
            p.diagnostics
        });
        let b =
            super::parse_each(relative, &mut |r| each.push(r.into_record())).map(|p| p.diagnostics);
        assert_eq!(a, b);
        assert_eq!(whole, each);
    }

    /// A zone fed to `StreamReader` in pieces of whole lines, cut anywhere (inside
    /// parentheses too), reads as `parse_each` reads it whole.
    #[test]
    fn stream_reader_pieces_read_as_the_whole() {
        let zone = "$TTL 300\n$ORIGIN rpz.example.\n\
            @ SOA ( ns. hostmaster.\n 1 2 3\n 4 5 )\n\
            @ NS ns.\n\
            a.example A 192.0.2.1\n\
            \tTXT ( \"x\"\n \"y\" )\n\
            b.example CNAME .\n\
            $ORIGIN sub.rpz.example.\n\
            c CNAME *.\n\
            *.d CNAME rpz-drop.\n\
            $ORIGIN rpz.example.\n\
            a.example AAAA 2001:db8::1\n\
            bad..name CNAME .\n\
            e.example CNAME garden.example.\n";
        let show = |sink: &mut Vec<String>, o: OwnerPolicy<'_>| {
            sink.push(format!("{o:?}"));
        };
        let mut whole = Vec::new();
        let wp =
            super::parse_each(zone, &mut |o| show(&mut whole, o)).unwrap_or_else(|e| panic!("{e}"));
        let lines: Vec<&str> = zone.split_inclusive('\n').collect();
        for size in 1..=4 {
            let mut pieces = Vec::new();
            let mut reader = StreamReader::new();
            let chunks: Vec<String> = lines.chunks(size).map(|c| c.concat()).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                reader
                    .feed(chunk, i + 1 == chunks.len(), &mut |o| show(&mut pieces, o))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            assert!(reader.placed(), "placed by the SOA");
            let rp = reader
                .finish(&mut |o| show(&mut pieces, o))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(pieces, whole, "pieces of {size} lines");
            assert_eq!(rp.diagnostics, wp.diagnostics, "pieces of {size} lines");
        }
        // An unbalanced `(` in the last piece is the same error as in a whole read.
        let mut reader = StreamReader::new();
        let open = "$ORIGIN rpz.example.\n@ SOA ( ns. h. 1 2 3 4 5\n";
        assert!(reader.feed(open, false, &mut |_| {}).is_ok());
        let err = reader.feed("x CNAME .\n", true, &mut |_| {});
        let whole = super::parse_each(&format!("{open}x CNAME .\n"), &mut |_| {});
        assert_eq!(
            err.map_err(|e| e.to_string()),
            whole.map(|_| ()).map_err(|e| e.to_string())
        );
    }

    #[test]
    fn multi_line_soa_and_comments() {
        check(
            "$TTL 1h\n@   IN  SOA localhost. root.localhost. (\n        2026032522  ; serial\n        1h  ; refresh\n        15m ; retry\n        30d ; expire\n        1h )        ; Minimum\n@   IN  NS  localhost.\n; a comment\nevil.example CNAME . ; trailing\n",
            expect![[r#"
                line 10: domain evil.example (qname nxdomain)
            "#]],
        );
    }

    #[test]
    fn parentheses_around_record_data() {
        check(
            "a.example TXT ( \"one\"\n  \"two;three\" ) \nb.example (CNAME\n .)\n",
            expect![[r#"
                line 1: domain a.example (qname local [TXT "one" "two;three"])
                line 3: domain b.example (qname nxdomain)
            "#]],
        );
    }

    #[test]
    fn quoted_strings_and_escapes() {
        check(
            "a.example TXT \"say \\\"hi\\\" ; not a comment\" plain\\;word ; comment\nb.example TXT \"unterminated\nc.example CNAME .\n",
            expect![[r#"
                line 1: domain a.example (qname local [TXT "say \"hi\" ; not a comment" plain\;word])
                line 3: domain c.example (qname nxdomain)
                diag line 2: unterminated quoted string
            "#]],
        );
    }

    #[test]
    fn unbalanced_parentheses() {
        check(
            "@ SOA a. b. ( 1 2 3 4 5\nevil.example CNAME .\n",
            expect![[r#"
                error line 1: unbalanced parentheses: "(" is never closed
            "#]],
        );
        check(
            "a.example CNAME . )\nb.example CNAME .\nc.example ( ( CNAME . ) )\n",
            expect![[r#"
                line 2: domain b.example (qname nxdomain)
                diag line 1: ")" without "("
                diag line 3: nested "("
            "#]],
        );
    }

    #[test]
    fn origin_directive_and_absolute_owners() {
        check(
            "$ORIGIN rpz.example.\n@ SOA ns. hostmaster. 1 2 3 4 5\nevil.example CNAME .\nbad.example.rpz.example. CNAME .\nother.example. CNAME .\n$ORIGIN rpz-ip.rpz.example.\n32.1.2.0.192 CNAME .\n$ORIGIN sub\nx CNAME .\n$ORIGIN rpz.example.\n$ORIGIN sub\nx CNAME .\n",
            expect![[r#"
                line 3: domain evil.example (qname nxdomain)
                line 4: domain bad.example (qname nxdomain)
                line 7: ip 192.0.2.1 (ip 192.0.2.1/32 nxdomain)
                line 12: domain x.sub (qname nxdomain)
                diag line 5: owner other.example. is outside the zone rpz.example.
                diag line 9: owner x.sub.rpz-ip.rpz.example.: invalid prefix length "x" in "x.sub"
            "#]],
        );
    }

    #[test]
    fn soa_owner_gives_the_origin() {
        check(
            "rpz.example. SOA ns. hostmaster. 1 2 3 4 5\nrpz.example. NS ns.\nevil.example.rpz.example. CNAME .\nrelative.example CNAME .\n",
            expect![[r#"
                line 3: domain evil.example (qname nxdomain)
                line 4: domain relative.example (qname nxdomain)
            "#]],
        );
    }

    #[test]
    fn origin_inferred_from_absolute_owners() {
        check(
            "@ SOA localhost. root.localhost. 1 2 3 4 5\n@ NS localhost.\ntiktok.com.rpz. CNAME .\n*.tiktok.com.rpz. CNAME .\nplay.example.net.rpz. CNAME .\n32.1.2.0.192.rpz-ip.rpz. CNAME .\n",
            expect![[r#"
                line 3: domain tiktok.com (qname nxdomain)
                line 4: domain *.tiktok.com (qname nxdomain)
                line 5: domain play.example.net (qname nxdomain)
                line 6: ip 192.0.2.1 (ip 192.0.2.1/32 nxdomain)
            "#]],
        );
        // One owner: the origin cannot be shorter than what leaves a two-label name.
        check(
            "evil.example.rpz.local. CNAME .\n",
            expect![[r#"
                line 1: domain evil.example (qname nxdomain)
            "#]],
        );
        // Owners sharing a registrable suffix still keep two labels.
        check(
            "a.example.rpz. CNAME .\nb.example.rpz. CNAME .\n",
            expect![[r#"
                line 1: domain a.example (qname nxdomain)
                line 2: domain b.example (qname nxdomain)
            "#]],
        );
    }

    #[test]
    fn directives() {
        check(
            "$INCLUDE other.zone\n$GENERATE 1-2 x$ CNAME .\n$TTL forever\n$ORIGIN\n$FOO bar\nevil.example CNAME .\n",
            expect![[r#"
                line 6: domain evil.example (qname nxdomain)
                diag line 1: $INCLUDE other.zone not followed: its records are not read
                diag line 2: $GENERATE not supported: its records are not read
                diag line 3: $TTL takes one TTL (seconds or 1h30m)
                diag line 4: $ORIGIN takes one name
                diag line 5: unknown directive $FOO
            "#]],
        );
    }

    #[test]
    fn apex_and_dnssec_records_are_not_rules() {
        check(
            "$ORIGIN rpz.example.\n@ SOA ns. hostmaster. 1 2 3 4 5\n@ NS ns.\n@ TXT \"policy v1\"\n@ SOA ns. hostmaster. 2 2 3 4 5\nevil.example CNAME .\n  RRSIG CNAME 8 3 300 20300101000000 20200101000000 1 rpz.example. AAAA\n  NSEC z.example CNAME RRSIG NSEC\n",
            expect![[r#"
                line 6: domain evil.example (qname nxdomain)
                diag line 5: second SOA ignored
            "#]],
        );
    }

    #[test]
    fn not_a_zone() {
        check(
            "",
            expect![[r#"
                error no SOA and no resource record: not an RPZ zone
            "#]],
        );
        check(
            "evil.example\nbad.example\n",
            expect![[r#"
                error no SOA and no resource record: not an RPZ zone (first problem: line 1: record for evil.example has no type)
            "#]],
        );
        check(
            "; only comments\n$TTL 300\n",
            expect![[r#"
                error no SOA and no resource record: not an RPZ zone
            "#]],
        );
    }

    #[test]
    fn empty_policy_zone_is_fine() {
        check(
            "$ORIGIN rpz.example.\n@ SOA ns. hostmaster. 1 2 3 4 5\n@ NS ns.\n",
            expect![""],
        );
    }

    #[test]
    fn crlf_and_odd_bytes_do_not_panic() {
        check(
            "a.example CNAME .\r\nb.ex\\\u{e9}mple CNAME .\r\n\\",
            expect![[r#"
                line 1: domain a.example (qname nxdomain)
                line 2: reject invalid-domain: "b.ex\\émple": invalid character '\\' in name (qname nxdomain)
                diag line 3: record for \ has no type
            "#]],
        );
    }

    /// Every record [`super::RecordReader`] reads, one per line, or the error.
    #[track_caller]
    fn check_records(apex: &str, input: &str, expect: Expect) {
        let mut out = String::new();
        let mut reader = super::RecordReader::new(apex);
        let result = reader.read(input, &mut |r| {
            out.push_str(&format!(
                "{}: {} {} {} {}\n",
                r.line, r.owner, r.ttl, r.rtype, r.rdata
            ));
            Ok(())
        });
        if let Err(e) = result {
            out.push_str(&format!("error {e}\n"));
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn records_as_written() {
        check_records(
            "rpz.example.",
            "$ORIGIN rpz.example.\n$TTL 300\n@ SOA ns. hostmaster. ( 7 3600\n 600 864000 300 )\n@ NS localhost.\n\
             Evil.Example CNAME . ; comment\n*.evil.example 60 IN CNAME *.\n\
             page.example A 192.0.2.1\n  TXT \"blocked;  here\" \"x\"\n\
             abs.rpz.example. CNAME rpz-drop.\n$ORIGIN sub.rpz.example.\nx CNAME walled.example.\n",
            expect![[r#"
                3: @ 300 SOA ns. hostmaster. 7 3600 600 864000 300
                5: @ 300 NS localhost.
                6: evil.example 300 CNAME .
                7: *.evil.example 60 CNAME *.
                8: page.example 300 A 192.0.2.1
                9: page.example 300 TXT "blocked;  here" "x"
                10: abs 300 CNAME rpz-drop.
                12: x.sub 300 CNAME walled.example.
            "#]],
        );
    }

    #[test]
    fn generic_data() {
        check(
            "$ORIGIN rpz.example.\n@ SOA ns. h. 1 2 3 4 5\na.example A \\# 4 c0000201\nb.example CNAME \\# 1 00\n",
            expect![[r#"
                line 3: domain a.example (qname local [A \# 4 c0000201])
                diag line 4: b.example.rpz.example. CNAME: CNAME data in the generic \# form: the target cannot be read
            "#]],
        );
    }

    #[test]
    fn records_are_strict() {
        check_records(
            "rpz.example",
            "$ORIGIN rpz.example.\nx CNAME .\n",
            expect![[r#"
                error line 2: no TTL and no $TTL before it
            "#]],
        );
        check_records(
            "rpz.example",
            "$TTL 1\nx CNAME .\nother.example. CNAME .\n",
            expect![[r#"
                2: x 1 CNAME .
                error line 3: owner other.example. is outside the zone rpz.example.
            "#]],
        );
        check_records(
            "rpz.example",
            "$TTL 1\nx A 999.1.1.1\n",
            expect![[r#"
                error line 2: A: expected one IPv4 address
            "#]],
        );
        check_records(
            "rpz.example",
            "$TTL 1\n$INCLUDE other\n",
            expect![[r#"
                error line 2: directive $INCLUDE not supported here
            "#]],
        );
        check_records(
            "rpz.example",
            "$TTL 1\nx CH TXT \"a\"\n",
            expect![[r#"
                error line 2: class CH: only one class, IN
            "#]],
        );
        check_records(
            "rpz.example",
            "$TTL 1\nx SOA \\# 2 0a0b\ny TYPE9 \\# 0\nz A \\# 4 c0 00 02 01\nw A \\# 4 c000\n",
            expect![[r#"
                2: x 1 SOA \# 2 0a0b
                3: y 1 TYPE9 \# 0
                4: z 1 A \# 4 c0 00 02 01
                error line 5: A: \# says 4 bytes, the data has 2
            "#]],
        );
        check_records(
            "rpz.example",
            "$TTL 1\nx TXT \"open\n",
            expect![[r#"
                error line 2: unterminated quoted string
            "#]],
        );
    }

    #[test]
    fn records_fed_line_by_line_keep_their_lines() {
        let text = "$ORIGIN rpz.example.\n$TTL 5\na CNAME .\n\nb CNAME *.\n";
        let mut reader = super::RecordReader::new("rpz.example");
        let mut seen = Vec::new();
        for line in text.split_inclusive('\n') {
            reader
                .read(line, &mut |r| {
                    seen.push((r.line, r.owner));
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(seen, [(3, "a".to_owned()), (5, "b".to_owned())]);
        let err = reader
            .read("c CNAME .\n", &mut |_| Err("stop".to_owned()))
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("line 6: stop"));
    }

    #[track_caller]
    fn check_owner(owner: &str, records: &[(&str, &str)], expect: Expect) {
        let shown = match super::owner_record("rpz.example", owner, records, 1) {
            Ok(Some(record)) => {
                let mut parsed = Parsed::new(crate::Format::Rpz);
                parsed.records.push(record);
                dump(&parsed)
            }
            Ok(None) => "none\n".to_owned(),
            Err(e) => format!("error {e}\n"),
        };
        expect.assert_eq(&shown);
    }

    #[test]
    fn one_owner_as_policy() {
        check_owner(
            "evil.example",
            &[("CNAME", ".")],
            expect![[r#"
            line 1: domain evil.example (qname nxdomain)
        "#]],
        );
        check_owner(
            "*.evil.example",
            &[("CNAME", "*.")],
            expect![[r#"
                line 1: domain *.evil.example (qname nodata)
            "#]],
        );
        check_owner(
            "ok.example",
            &[("CNAME", "rpz-passthru.")],
            expect![[r#"
            line 1: domain ok.example (qname passthru) allow
        "#]],
        );
        check_owner(
            "24.0.2.0.192.rpz-ip",
            &[("CNAME", "rpz-drop.")],
            expect![[r#"
            line 1: cidr 192.0.2.0/24 (ip 192.0.2.0/24 drop)
        "#]],
        );
        check_owner(
            "page.example",
            &[("A", "192.0.2.1"), ("TXT", "\"blocked\"")],
            expect![[r#"
            line 1: domain page.example (qname local [A 192.0.2.1 | TXT "blocked"])
        "#]],
        );
        check_owner(
            "x.example",
            &[("CNAME", "."), ("A", "192.0.2.1")],
            expect![[r#"
            error x.example has a CNAME and other data
        "#]],
        );
        check_owner("@", &[("NS", "localhost.")], expect!["none\n"]);
        check_owner(
            "x.example",
            &[("RRSIG", "A 8 2 300 1 2 3 x. AAAA")],
            expect!["none\n"],
        );
    }
}
