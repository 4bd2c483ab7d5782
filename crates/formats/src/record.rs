//! What a reader returns: records as the feed states them, plus diagnostics.
//!
//! A feed is judged line by line: one bad line is a [`Diagnostic`], never the end of
//! the file. A [`Record`] keeps the raw value and where it was found, so that a
//! rejection can name its line; normalisation into an [`Indicator`] happens after
//! reading ([`Record::normalise`]), in one place for every format.

use std::fmt;

use indicator::{Category, Confidence, Hint, Indicator, IpNet, Reject, Timestamp, Tlp};

use crate::Format;

/// Where in the input something was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    /// 1-based line number.
    Line(u32),
    /// A JSON path such as `$.objects[12].pattern`.
    Path(String),
    /// The input as a whole.
    File,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Path(p) => f.write_str(p),
            Location::File => f.write_str("file"),
        }
    }
}

/// A problem with one part of the input; the rest was still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub at: Location,
    pub message: String,
}

impl Diagnostic {
    pub fn new(at: Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            at,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Whether the source lists the value as bad (block) or as good (allow: Adblock `@@`
/// exceptions, RPZ PASSTHRU, warninglists, popularity lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Polarity {
    #[default]
    Block,
    Allow,
}

/// One item as the feed states it, before normalisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub at: Location,
    /// The value as written (possibly defanged, with its original case).
    pub value: String,
    /// What the format says the value is.
    pub hint: Hint,
    pub polarity: Polarity,
    /// Everything else the feed says; `None` for bare lists (keeps them small).
    pub meta: Option<Box<Meta>>,
}

impl Record {
    pub fn new(at: Location, value: impl Into<String>, hint: Hint) -> Record {
        Record {
            at,
            value: value.into(),
            hint,
            polarity: Polarity::Block,
            meta: None,
        }
    }

    pub fn allow(mut self) -> Record {
        self.polarity = Polarity::Allow;
        self
    }

    pub fn with_meta(mut self, meta: Meta) -> Record {
        self.meta = Some(Box::new(meta));
        self
    }

    /// The metadata, created empty on first use.
    pub fn meta_mut(&mut self) -> &mut Meta {
        self.meta.get_or_insert_with(Default::default)
    }

    /// Normalises the value into an indicator.
    pub fn normalise(&self) -> Result<Indicator, Reject> {
        Indicator::parse(&self.value, self.hint)
    }
}

/// What a feed says about a value beyond the value itself. Every field is optional:
/// formats differ in what they carry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Meta {
    pub category: Option<Category>,
    pub confidence: Option<Confidence>,
    pub tlp: Option<Tlp>,
    pub tags: Vec<String>,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    /// The source's own id or link for the item (STIX id, ThreatFox id, tweet URL).
    pub reference: Option<String>,
    /// Who reported it, when the feed names someone (STIX `created_by_ref` identity,
    /// TweetFeed user, MISP `Orgc`).
    pub reporter: Option<String>,
    /// Free text: threat or malware name, target brand.
    pub description: Option<String>,
    /// STIX `revoked`: the producer withdrew it.
    pub revoked: bool,
    /// MISP `to_ids`: the producer marks it fit for detection.
    pub to_ids: Option<bool>,
    /// From takedown reports.
    pub takedown: Option<Takedown>,
    /// From RPZ zones: the policy as written.
    pub rpz: Option<RpzPolicy>,
}

/// Takedown state of a reported URL or domain (`docs/formats.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takedown {
    pub status: TakedownStatus,
    pub reported_at: Option<Timestamp>,
    pub taken_down_at: Option<Timestamp>,
    pub provider: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TakedownStatus {
    Live,
    TakenDown,
    Unknown,
}

/// An RPZ rule as a zone file states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpzPolicy {
    pub trigger: RpzTrigger,
    pub action: RpzAction,
}

/// The trigger an RPZ owner name encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpzTrigger {
    /// The query name (exact, or wildcard per the record's hint).
    Qname,
    /// `rpz-client-ip`: the client's address.
    ClientIp(IpNet),
    /// `rpz-ip`: an address in the answer.
    ResponseIp(IpNet),
    /// `rpz-nsdname`: a name server's name (the record's value).
    NsDname,
    /// `rpz-nsip`: a name server's address.
    NsIp(IpNet),
}

/// The action an RPZ rule's records encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpzAction {
    /// `CNAME .`
    Nxdomain,
    /// `CNAME *.`
    Nodata,
    /// `CNAME rpz-passthru.`
    Passthru,
    /// `CNAME rpz-drop.`
    Drop,
    /// `CNAME rpz-tcp-only.`
    TcpOnly,
    /// `CNAME target` (walled garden or block page).
    Redirect(String),
    /// Local data: records returned instead (`A 192.0.2.1`, `TXT "…"`), in
    /// presentation form `(type, rdata)`.
    LocalData(Vec<(String, String)>),
}

/// A passive DNS observation (COF, draft-dulaunoy-dnsop-passive-dns-cof): not an
/// indicator, kept for analysis (pivots from a bad name to its addresses and back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdnsRecord {
    pub at: Location,
    pub rrname: String,
    pub rrtype: String,
    pub rdata: Vec<String>,
    pub time_first: Timestamp,
    pub time_last: Timestamp,
    pub count: Option<u64>,
    pub bailiwick: Option<String>,
    /// The sensor that saw it (COF `sensor_id`).
    pub sensor_id: Option<String>,
}

/// The result of reading one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub format: Format,
    pub records: Vec<Record>,
    pub pdns: Vec<PdnsRecord>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    pub fn new(format: Format) -> Parsed {
        Parsed {
            format,
            records: Vec::new(),
            pdns: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    pub fn diag(&mut self, at: Location, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(at, message));
    }

    /// A compact text dump for `expect!` tests: one line per record
    /// (`kind value` after normalisation, or `reject …`), then the diagnostics.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for r in &self.records {
            let allow = if r.polarity == Polarity::Allow {
                "allow "
            } else {
                ""
            };
            match r.normalise() {
                Ok(i) => out.push_str(&format!("{allow}{} {i}\n", i.kind().as_str())),
                Err(e) => out.push_str(&format!("{allow}reject {}: {e}\n", r.at)),
            }
        }
        for p in &self.pdns {
            out.push_str(&format!(
                "pdns {} {} {}\n",
                p.rrname,
                p.rrtype,
                p.rdata.join(",")
            ));
        }
        for d in &self.diagnostics {
            out.push_str(&format!("diag {d}\n"));
        }
        out
    }
}

/// An input that cannot be read at all (not this format, truncated, binary).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
pub struct ReadError {
    pub at: Option<Location>,
    pub message: String,
}

impl ReadError {
    pub fn new(message: impl Into<String>) -> ReadError {
        ReadError {
            at: None,
            message: message.into(),
        }
    }

    pub fn at(at: Location, message: impl Into<String>) -> ReadError {
        ReadError {
            at: Some(at),
            message: message.into(),
        }
    }

    /// A serde_json error with its line and column.
    pub fn json(e: &serde_json::Error) -> ReadError {
        let full = e.to_string();
        let what = full
            .rsplit_once(" at line ")
            .map_or(full.as_str(), |(m, _)| m);
        ReadError::at(
            Location::Line(e.line().try_into().unwrap_or(u32::MAX)),
            format!("column {}: invalid JSON: {what}", e.column()),
        )
    }
}
