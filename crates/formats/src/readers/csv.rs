//! CSV feeds: URLhaus, PhishTank, ThreatFox, TweetFeed, phishunt, Tranco, MISP
//! `hashes.csv`, and any other CSV whose columns are named or given.
//!
//! CSV is the shape most public feeds are dumped in, and every publisher picks its own
//! columns: some write the header as a `#` comment (URLhaus, ThreatFox), some write
//! none (TweetFeed, Tranco), PhishTank quotes URLs that hold commas. One module reads
//! them all so that header finding, quoting, line numbers and the mapping of
//! dates, tags and categories into [`Meta`] are done once. A known format maps its
//! columns by header name (robust to a publisher adding a column); the generic
//! [`Format::Csv`] finds the value column by common names, or takes a mapping such as
//! `value=url,category=threat,first_seen=3,header=no`.
//!
//! Rows are read with the `csv` crate (quotes, embedded commas and newlines, ragged
//! rows); a row without a usable value is a diagnostic and the rest is still read. A
//! CSV whose header names nothing this reader can use is a [`ReadError`] at the
//! header's line.

use std::borrow::Cow;

use indicator::{Category, Confidence, Hint, Timestamp};

use super::threatfox;
use crate::{Format, Location, Meta, Parsed, ReadError, Record};

pub fn parse(format: Format, text: &str, columns: Option<&str>) -> Result<Parsed, ReadError> {
    match format {
        Format::UrlhausCsv => named(format, text, &URLHAUS),
        Format::PhishtankCsv => named(format, text, &PHISHTANK),
        Format::PhishuntCsv => named(format, text, &PHISHUNT),
        Format::ThreatfoxCsv => threatfox_csv(text),
        Format::TweetfeedCsv => Ok(read_rows(format, text, 1, &tweetfeed_layout())),
        Format::TrancoCsv => Ok(read_rows(format, text, 1, &tranco_layout())),
        Format::MispHashes => Ok(misp_hashes(text)),
        _ => generic(text, columns),
    }
}

// ---------------------------------------------------------------------------------
// Columns

/// What a column can mean. `Status` (URLhaus `url_status`) and `Rank` (Tranco) become
/// tags; the others fill [`Meta`] fields of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Value,
    Path,
    Type,
    Category,
    FirstSeen,
    LastSeen,
    Tags,
    Reference,
    Reporter,
    Description,
    Confidence,
    Status,
    Rank,
}

const FIELD_COUNT: usize = 13;

impl Field {
    /// The fields a `--csv-columns` mapping may name.
    const MAPPABLE: [Field; 11] = [
        Field::Value,
        Field::Path,
        Field::Type,
        Field::Category,
        Field::FirstSeen,
        Field::LastSeen,
        Field::Tags,
        Field::Reference,
        Field::Reporter,
        Field::Description,
        Field::Confidence,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Value => "value",
            Field::Path => "path",
            Field::Type => "type",
            Field::Category => "category",
            Field::FirstSeen => "first_seen",
            Field::LastSeen => "last_seen",
            Field::Tags => "tags",
            Field::Reference => "reference",
            Field::Reporter => "reporter",
            Field::Description => "description",
            Field::Confidence => "confidence",
            Field::Status => "status",
            Field::Rank => "rank",
        }
    }
}

/// Column positions (0-based) resolved for one input.
#[derive(Debug, Clone, Default)]
struct Layout {
    cols: [Option<usize>; FIELD_COUNT],
    /// What the value column holds, unless a type column says otherwise.
    hint: Hint,
    /// Said of every row by the format (PhishTank and phishunt list phishing only).
    category: Option<Category>,
    /// Popularity lists: every row is an allow entry.
    allow: bool,
    /// Name of the value column, for diagnostics.
    value_name: String,
}

impl Layout {
    fn col(&self, field: Field) -> Option<usize> {
        self.cols.get(field as usize).copied().flatten()
    }

    fn set(&mut self, field: Field, col: usize) {
        if let Some(slot) = self.cols.get_mut(field as usize) {
            *slot = Some(col);
        }
    }
}

/// Header names a format's columns go by, in order of preference.
struct Preset {
    value: &'static [(&'static str, Hint)],
    others: &'static [(Field, &'static [&'static str])],
    category: Option<Category>,
}

const URLHAUS: Preset = Preset {
    value: &[("url", Hint::Url)],
    others: &[
        (Field::FirstSeen, &["dateadded"]),
        (Field::LastSeen, &["last_online"]),
        (Field::Category, &["threat"]),
        (Field::Tags, &["tags"]),
        (Field::Reference, &["urlhaus_link"]),
        (Field::Reporter, &["reporter"]),
        (Field::Status, &["url_status"]),
    ],
    category: None,
};

const PHISHTANK: Preset = Preset {
    value: &[("url", Hint::Url)],
    others: &[
        (Field::FirstSeen, &["submission_time"]),
        (Field::Reference, &["phish_detail_url"]),
        (Field::Description, &["target"]),
    ],
    category: Some(Category::Phishing),
};

const PHISHUNT: Preset = Preset {
    value: &[("url", Hint::Url)],
    others: &[
        (Field::FirstSeen, &["first_seen", "date"]),
        (Field::Reference, &["uuid"]),
        (Field::Description, &["company"]),
    ],
    category: Some(Category::Phishing),
};

/// The generic reader's guesses. The value column is the first of these present.
const GENERIC: Preset = Preset {
    value: &[
        ("url", Hint::Url),
        ("domain", Hint::Domain),
        ("host", Hint::Any),
        ("hostname", Hint::Domain),
        ("fqdn", Hint::Domain),
        ("ip", Hint::Ip),
        ("ioc", Hint::Any),
        ("ioc_value", Hint::Any),
        ("indicator", Hint::Any),
        ("value", Hint::Any),
    ],
    others: &[
        (Field::Path, &["path"]),
        (Field::Type, &["type", "kind", "ioc_type", "indicator_type"]),
        (
            Field::Category,
            &["category", "threat", "threat_type", "classification"],
        ),
        (
            Field::FirstSeen,
            &[
                "first_seen",
                "first_seen_utc",
                "firstseen",
                "dateadded",
                "date_added",
                "date",
            ],
        ),
        (
            Field::LastSeen,
            &["last_seen", "last_seen_utc", "lastseen", "last_online"],
        ),
        (Field::Tags, &["tags", "tag", "labels"]),
        (Field::Reference, &["reference", "link", "ref"]),
        (Field::Reporter, &["reporter"]),
        (Field::Description, &["description", "comment", "target"]),
        (Field::Confidence, &["confidence", "confidence_level"]),
    ],
    category: None,
};

/// The hint a value column's name implies.
fn hint_for_name(name: &str) -> Hint {
    match name {
        "url" | "uri" | "link" => Hint::Url,
        "domain" | "hostname" | "fqdn" | "domain_name" => Hint::Domain,
        "ip" | "ip_address" | "ipv4" | "ipv6" => Hint::Ip,
        "cidr" | "prefix" | "network" => Hint::Cidr,
        _ => Hint::Any,
    }
}

fn position(fields: &[Cow<'_, str>], name: &str) -> Option<usize> {
    fields.iter().position(|f| f.eq_ignore_ascii_case(name))
}

impl Preset {
    /// The layout for a header, or `None` when it has no value column.
    fn resolve(&self, fields: &[Cow<'_, str>]) -> Option<Layout> {
        let (col, name, hint) = self
            .value
            .iter()
            .find_map(|&(name, hint)| position(fields, name).map(|c| (c, name, hint)))?;
        let mut layout = Layout {
            hint,
            category: self.category,
            value_name: name.to_owned(),
            ..Layout::default()
        };
        layout.set(Field::Value, col);
        for &(field, names) in self.others {
            if let Some(c) = names.iter().find_map(|n| position(fields, n)) {
                layout.set(field, c);
            }
        }
        Some(layout)
    }

    fn value_names(&self) -> String {
        let names: Vec<&str> = self.value.iter().map(|&(n, _)| n).collect();
        names.join(", ")
    }
}

/// TweetFeed: `date,user,type,value,tags,tweet_url`, no header.
fn tweetfeed_layout() -> Layout {
    let mut layout = Layout {
        value_name: "value".to_owned(),
        ..Layout::default()
    };
    for (field, col) in [
        (Field::FirstSeen, 0),
        (Field::Reporter, 1),
        (Field::Type, 2),
        (Field::Value, 3),
        (Field::Tags, 4),
        (Field::Reference, 5),
    ] {
        layout.set(field, col);
    }
    layout
}

/// Tranco: `rank,domain`, no header; popular names are allow entries.
fn tranco_layout() -> Layout {
    let mut layout = Layout {
        hint: Hint::Domain,
        allow: true,
        value_name: "domain".to_owned(),
        ..Layout::default()
    };
    layout.set(Field::Rank, 0);
    layout.set(Field::Value, 1);
    layout
}

// ---------------------------------------------------------------------------------
// Header finding

/// A header line and where the data after it starts.
#[derive(Debug)]
struct Header<'a> {
    fields: Vec<Cow<'a, str>>,
    line: u32,
    /// Byte offset of the first line after the header.
    data_start: usize,
    /// Line number of `data_start`.
    data_line: u32,
}

enum Found<'a> {
    Header(Header<'a>),
    /// Nothing but blank and comment lines.
    Empty,
    /// The first row is not a header, and no comment before it is: its line and fields.
    NotHeader(u32, Vec<Cow<'a, str>>),
}

fn line_number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// Finds the header: the comment line just before the first row when it is one
/// (URLhaus and ThreatFox write `# id,dateadded,url,…`), else the first line that is
/// neither blank nor a comment. The comment is tried first because a data row can
/// look like a header (`evil.example,domain,…` has a `domain` cell).
fn find_header<'a>(text: &'a str, is_header: &dyn Fn(&[Cow<'_, str>]) -> bool) -> Found<'a> {
    let mut offset = 0;
    let mut from_comment: Option<Header<'a>> = None;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let n = line_number(i);
        let next = offset + raw.len();
        let line = raw.trim();
        if line.is_empty() {
            offset = next;
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let fields = split_fields(comment.trim_start_matches('#').trim());
            from_comment = is_header(&fields).then_some(Header {
                fields,
                line: n,
                data_start: next,
                data_line: n.saturating_add(1),
            });
            offset = next;
            continue;
        }
        if let Some(mut h) = from_comment {
            h.data_start = offset;
            h.data_line = n;
            return Found::Header(h);
        }
        let fields = split_fields(line);
        if is_header(&fields) {
            return Found::Header(Header {
                fields,
                line: n,
                data_start: next,
                data_line: n.saturating_add(1),
            });
        }
        return Found::NotHeader(n, fields);
    }
    match from_comment {
        Some(h) => Found::Header(h),
        None => Found::Empty,
    }
}

fn show_fields(fields: &[Cow<'_, str>]) -> String {
    let shown: Vec<&str> = fields.iter().map(|f| f.as_ref()).collect();
    format!("{:?}", shown.join(","))
}

/// A known format, columns found by header name.
fn named(format: Format, text: &str, preset: &Preset) -> Result<Parsed, ReadError> {
    match find_header(text, &|f| preset.resolve(f).is_some()) {
        Found::Header(h) => match preset.resolve(&h.fields) {
            Some(layout) => Ok(read_rows(
                format,
                text.get(h.data_start..).unwrap_or(""),
                h.data_line,
                &layout,
            )),
            None => Err(no_value_column(format, h.line, &h.fields, preset)),
        },
        Found::Empty => Ok(Parsed::new(format)),
        Found::NotHeader(n, fields) => Err(no_value_column(format, n, &fields, preset)),
    }
}

fn no_value_column(
    format: Format,
    line: u32,
    fields: &[Cow<'_, str>],
    preset: &Preset,
) -> ReadError {
    ReadError::at(
        Location::Line(line),
        format!(
            "not a {format} header: {} has no {} column",
            show_fields(fields),
            preset.value_names()
        ),
    )
}

// ---------------------------------------------------------------------------------
// Generic CSV and its column mapping

/// Where a mapping puts a field: a header name or a 0-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ColRef {
    Name(String),
    Pos(usize),
}

/// A parsed `--csv-columns` mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    cols: Vec<(Field, ColRef)>,
    header: bool,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            cols: Vec::new(),
            header: true,
        }
    }
}

fn spec_error(message: impl std::fmt::Display) -> ReadError {
    ReadError::new(format!("csv columns: {message}"))
}

/// Parses `value=url,category=threat,first_seen=3,header=no`.
fn parse_spec(text: &str) -> Result<Spec, ReadError> {
    let mut spec = Spec::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, col)) = part.split_once('=') else {
            return Err(spec_error(format!(
                "{part:?}: expected field=column (e.g. value=url or value=3)"
            )));
        };
        let key = key.trim().to_ascii_lowercase();
        let col = col.trim();
        if key == "header" {
            spec.header = match col.to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" => true,
                "no" | "false" | "0" => false,
                _ => {
                    return Err(spec_error(format!(
                        "field \"header\": {col:?} is not yes or no"
                    )));
                }
            };
            continue;
        }
        let Some(field) = Field::MAPPABLE.into_iter().find(|f| f.name() == key) else {
            let names: Vec<&str> = Field::MAPPABLE.iter().map(|f| f.name()).collect();
            return Err(spec_error(format!(
                "unknown field {key:?} (one of: {}, header)",
                names.join(", ")
            )));
        };
        if spec.cols.iter().any(|(f, _)| *f == field) {
            return Err(spec_error(format!("field {key:?} is given twice")));
        }
        let col = if col.is_empty() {
            return Err(spec_error(format!("field {key:?} names no column")));
        } else if col.bytes().all(|b| b.is_ascii_digit()) {
            match col.parse::<usize>() {
                Ok(0) => {
                    return Err(spec_error(format!(
                        "field {key:?}: column positions start at 1"
                    )));
                }
                Ok(p) => ColRef::Pos(p - 1),
                Err(_) => {
                    return Err(spec_error(format!(
                        "field {key:?}: column {col} is out of range"
                    )));
                }
            }
        } else {
            ColRef::Name(col.to_owned())
        };
        spec.cols.push((field, col));
    }
    Ok(spec)
}

impl Spec {
    fn value(&self) -> Option<&ColRef> {
        self.cols
            .iter()
            .find(|(f, _)| *f == Field::Value)
            .map(|(_, c)| c)
    }

    /// The layout for a header (`None` for `header=no`). Explicit columns win; the
    /// others are guessed by name as [`GENERIC`] does.
    fn resolve(&self, header: Option<&[Cow<'_, str>]>) -> Result<Layout, ReadError> {
        let mut layout = match (header, self.value()) {
            (Some(fields), None) => GENERIC.resolve(fields).ok_or_else(|| {
                ReadError::new(format!(
                    "no indicator column in header {} (looked for {}; give one with value=…)",
                    show_fields(fields),
                    GENERIC.value_names()
                ))
            })?,
            (Some(fields), Some(_)) => {
                // Guess the optional columns; the mapping is applied over them below.
                let mut guessed = Layout::default();
                for &(field, names) in GENERIC.others {
                    if let Some(c) = names.iter().find_map(|n| position(fields, n)) {
                        guessed.set(field, c);
                    }
                }
                guessed
            }
            (None, None) => {
                return Err(spec_error(
                    "header=no needs the value column's position (e.g. value=2)",
                ));
            }
            (None, Some(_)) => Layout::default(),
        };
        // A column the mapping uses is not also guessed to mean something else.
        let explicit: Vec<usize> = match header {
            Some(fields) => self
                .cols
                .iter()
                .filter_map(|(_, c)| match c {
                    ColRef::Pos(p) => Some(*p),
                    ColRef::Name(n) => position(fields, n),
                })
                .collect(),
            None => Vec::new(),
        };
        for slot in &mut layout.cols {
            if slot.is_some_and(|c| explicit.contains(&c)) {
                *slot = None;
            }
        }
        for (field, col) in &self.cols {
            let index = match (col, header) {
                (ColRef::Pos(p), None) => *p,
                (ColRef::Pos(p), Some(fields)) => {
                    if *p >= fields.len() {
                        return Err(spec_error(format!(
                            "field {:?}: column {} but the header {} has {} columns",
                            field.name(),
                            p + 1,
                            show_fields(fields),
                            fields.len()
                        )));
                    }
                    *p
                }
                (ColRef::Name(name), Some(fields)) => position(fields, name).ok_or_else(|| {
                    spec_error(format!(
                        "field {:?}: no column {name:?} in header {}",
                        field.name(),
                        show_fields(fields)
                    ))
                })?,
                (ColRef::Name(name), None) => {
                    return Err(spec_error(format!(
                        "field {:?}: column name {name:?} needs a header (header=no was given); use a position",
                        field.name()
                    )));
                }
            };
            layout.set(*field, index);
            if *field == Field::Value {
                let name = header
                    .and_then(|h| h.get(index))
                    .map(|n| n.trim().to_ascii_lowercase())
                    .unwrap_or_else(|| format!("column {}", index + 1));
                layout.hint = hint_for_name(&name);
                layout.value_name = name;
            }
        }
        Ok(layout)
    }
}

/// Any CSV: the header found by name, or a given mapping.
fn generic(text: &str, columns: Option<&str>) -> Result<Parsed, ReadError> {
    let spec = match columns {
        Some(c) => parse_spec(c)?,
        None => Spec::default(),
    };
    if !spec.header {
        let layout = spec.resolve(None)?;
        return Ok(read_rows(Format::Csv, text, 1, &layout));
    }
    match find_header(text, &|f| spec.resolve(Some(f)).is_ok()) {
        Found::Header(h) => {
            let layout = spec
                .resolve(Some(&h.fields))
                .map_err(|e| ReadError::at(Location::Line(h.line), e.message))?;
            Ok(read_rows(
                Format::Csv,
                text.get(h.data_start..).unwrap_or(""),
                h.data_line,
                &layout,
            ))
        }
        Found::Empty => Ok(Parsed::new(Format::Csv)),
        Found::NotHeader(n, fields) => Err(match spec.resolve(Some(&fields)) {
            Err(e) => ReadError::at(Location::Line(n), e.message),
            Ok(_) => ReadError::at(
                Location::Line(n),
                format!("no usable header in {}", show_fields(&fields)),
            ),
        }),
    }
}

// ---------------------------------------------------------------------------------
// Rows

/// The line a record really starts on: the `csv` crate reports the position where
/// it began scanning, before any blank or comment lines it skipped.
fn record_line(text: &str, position: Option<&::csv::Position>, base: u32) -> u32 {
    let Some(pos) = position else {
        return base;
    };
    let mut line = pos.line();
    let start = usize::try_from(pos.byte()).unwrap_or(usize::MAX);
    let mut rest = text.as_bytes().get(start..).unwrap_or_default();
    loop {
        match rest.first() {
            Some(b'\n') => {
                line += 1;
                rest = rest.get(1..).unwrap_or_default();
            }
            Some(b'\r') => rest = rest.get(1..).unwrap_or_default(),
            Some(b'#') => match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    line += 1;
                    rest = rest.get(i + 1..).unwrap_or_default();
                }
                None => break,
            },
            _ => break,
        }
    }
    let line = u32::try_from(line).unwrap_or(u32::MAX);
    base.saturating_add(line.saturating_sub(1))
}

/// Reads the data rows of `text` (whose first line is line `base`) with `layout`.
fn read_rows(format: Format, text: &str, base: u32, layout: &Layout) -> Parsed {
    let mut parsed = Parsed::new(format);
    parsed.records.reserve(text.len() / 64);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut record = ::csv::StringRecord::new();
    let mut first = true;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                // Cannot happen on `&str` input (no I/O, valid UTF-8); kept honest.
                let line = record_line(text, e.position(), base);
                parsed.diag(Location::Line(line), format!("unreadable row: {e}"));
                break;
            }
        }
        let line = record_line(text, record.position(), base);
        let is_first = std::mem::replace(&mut first, false);
        if is_first && layout.col(Field::Rank).is_some() && is_rank_header(&record) {
            continue;
        }
        row(&mut parsed, line, &record, layout);
    }
    parsed
}

/// Some Tranco copies start with `rank,domain`.
fn is_rank_header(record: &::csv::StringRecord) -> bool {
    record
        .get(0)
        .is_some_and(|r| r.trim().eq_ignore_ascii_case("rank"))
}

/// A text field, trimmed; `None` when absent, empty or a null spelling.
pub(crate) fn present(text: Option<&str>) -> Option<&str> {
    let t = text?.trim();
    let null = t.is_empty()
        || t.eq_ignore_ascii_case("none")
        || t.eq_ignore_ascii_case("null")
        || t.eq_ignore_ascii_case("n/a");
    if null { None } else { Some(t) }
}

fn row(parsed: &mut Parsed, line: u32, record: &::csv::StringRecord, layout: &Layout) {
    let get = |field: Field| present(layout.col(field).and_then(|c| record.get(c)));
    let at = Location::Line(line);
    let Some(value) = get(Field::Value) else {
        let cells = record.iter().filter(|c| !c.trim().is_empty()).count();
        if cells > 0 {
            parsed.diag(at, format!("no {} in this row", layout.value_name));
        }
        return;
    };
    let mut hint = layout.hint;
    if let Some(kind) = get(Field::Type) {
        match type_hint(kind) {
            TypeHint::Known(h) => hint = h,
            TypeHint::Hash => {
                parsed.diag(
                    at,
                    format!("unsupported type {kind:?}: a file hash, not a network indicator"),
                );
                return;
            }
            TypeHint::Unknown => {}
        }
    }
    let value = match get(Field::Path) {
        // A host and a path (urlhaus-filter's Splunk lookup) make a URL; the scheme
        // is not given, and without one a path holding `://` would be taken for it.
        Some(path) => {
            hint = Hint::Url;
            let scheme = if value.contains("://") { "" } else { "http://" };
            let slash = if path.starts_with('/') { "" } else { "/" };
            format!("{scheme}{value}{slash}{path}")
        }
        None => value.to_owned(),
    };

    let mut meta = Meta::default();
    if let Some(rank) = get(Field::Rank) {
        if !rank.bytes().all(|b| b.is_ascii_digit()) {
            parsed.diag(
                at,
                format!("rank {rank:?} is not a number (expected rank,domain)"),
            );
            return;
        }
        meta.tags.push(format!("rank:{rank}"));
    }
    if let Some(label) = get(Field::Category) {
        match Category::from_label(label) {
            Some(c) => meta.category = Some(c),
            None => meta.tags.push(label.to_owned()),
        }
    }
    if let Some(tags) = get(Field::Tags) {
        for tag in split_tags(tags) {
            if meta.category.is_none() {
                meta.category = Category::from_label(tag);
            }
            meta.tags.push(tag.to_owned());
        }
    }
    if meta.category.is_none() {
        meta.category = layout.category;
    }
    if let Some(status) = get(Field::Status) {
        meta.tags.push(status.to_ascii_lowercase());
    }
    meta.first_seen = time_field(parsed, &at, "first_seen", get(Field::FirstSeen));
    meta.last_seen = time_field(parsed, &at, "last_seen", get(Field::LastSeen));
    if let Some(c) = get(Field::Confidence) {
        meta.confidence = confidence(parsed, &at, c);
    }
    meta.reference = get(Field::Reference).map(str::to_owned);
    meta.reporter = get(Field::Reporter).map(str::to_owned);
    meta.description = get(Field::Description).map(str::to_owned);

    let mut record = Record::new(at, value, hint);
    if layout.allow {
        record = record.allow();
    }
    if meta != Meta::default() {
        record = record.with_meta(meta);
    }
    parsed.records.push(record);
}

/// A time field: parsed, or a diagnostic (the record is kept without it).
pub(crate) fn time_field(
    parsed: &mut Parsed,
    at: &Location,
    name: &str,
    text: Option<&str>,
) -> Option<Timestamp> {
    match parse_time(text?) {
        Ok(t) => t,
        Err(()) => {
            parsed.diag(
                at.clone(),
                format!("{name} {:?} is not a date and time", text.unwrap_or("")),
            );
            None
        }
    }
}

/// A 0–100 confidence: parsed, or a diagnostic (the record is kept without it).
pub(crate) fn confidence(parsed: &mut Parsed, at: &Location, text: &str) -> Option<Confidence> {
    match text.trim().parse::<u32>() {
        Ok(c) => Some(Confidence::new(c)),
        Err(_) => {
            parsed.diag(
                at.clone(),
                format!("confidence {text:?} is not a number from 0 to 100"),
            );
            None
        }
    }
}

/// What a type column (`type`, `ioc_type`) says a value is.
enum TypeHint {
    Known(Hint),
    /// A file hash: not something a resolver can block.
    Hash,
    /// Not a type this reader knows: the value column's hint stands.
    Unknown,
}

fn type_hint(kind: &str) -> TypeHint {
    let k = kind.trim().to_ascii_lowercase();
    let hint = match k.as_str() {
        "url" | "uri" | "link" => Hint::Url,
        "domain" | "hostname" | "fqdn" | "domain-name" | "domain_name" => Hint::Domain,
        "wildcard" => Hint::Wildcard,
        "ip" | "ipv4" | "ipv6" | "ip:port" | "ip-dst" | "ip-src" | "ipv4-addr" | "ipv6-addr" => {
            Hint::Ip
        }
        "cidr" | "ip-range" | "netblock" | "prefix" => Hint::Cidr,
        _ => {
            let hash = [
                "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sha3",
            ]
            .iter()
            .any(|h| k.starts_with(h))
                || k == "hash"
                || k.ends_with("_hash")
                || k.starts_with("filehash")
                || k == "ssdeep"
                || k == "imphash"
                || k == "tlsh";
            return if hash {
                TypeHint::Hash
            } else {
                TypeHint::Unknown
            };
        }
    };
    TypeHint::Known(hint)
}

// ---------------------------------------------------------------------------------
// MISP hashes.csv

/// A MISP feed's `hashes.csv` lists an md5 of every attribute value with its event:
/// a lookup aid, from which no value can be recovered.
fn misp_hashes(text: &str) -> Parsed {
    let mut parsed = Parsed::new(Format::MispHashes);
    let rows = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    parsed.diag(
        Location::File,
        format!(
            "MISP feed hashes.csv holds {rows} md5 hashes of attribute values, not the values: \
             no indicators can be read from it (read the feed's manifest.json and event files)"
        ),
    );
    parsed
}

// ---------------------------------------------------------------------------------
// ThreatFox CSV

/// ThreatFox's CSV export: header as a comment, rows written `"a", "b", …` (a space
/// after each comma, which the `csv` crate would take as part of an unquoted field),
/// `None` for nulls. Rows are one line each and split with [`split_fields`].
fn threatfox_csv(text: &str) -> Result<Parsed, ReadError> {
    let is_header = |f: &[Cow<'_, str>]| position(f, "ioc_value").is_some();
    let h = match find_header(text, &is_header) {
        Found::Header(h) => h,
        Found::Empty => return Ok(Parsed::new(Format::ThreatfoxCsv)),
        Found::NotHeader(n, fields) => {
            return Err(ReadError::at(
                Location::Line(n),
                format!(
                    "not a ThreatFox CSV header: {} has no ioc_value column",
                    show_fields(&fields)
                ),
            ));
        }
    };
    let col = |name: &str| position(&h.fields, name);
    let (Some(value_col), Some(type_col)) = (col("ioc_value"), col("ioc_type")) else {
        return Err(ReadError::at(
            Location::Line(h.line),
            format!(
                "not a ThreatFox CSV header: {} has no ioc_type column",
                show_fields(&h.fields)
            ),
        ));
    };
    let cols = ThreatfoxCols {
        id: col("ioc_id"),
        threat_type: col("threat_type"),
        malware: col("fk_malware"),
        malware_printable: col("malware_printable"),
        first_seen: col("first_seen_utc"),
        last_seen: col("last_seen_utc"),
        confidence: col("confidence_level"),
        reference: col("reference"),
        tags: col("tags"),
        reporter: col("reporter"),
    };
    let mut parsed = Parsed::new(Format::ThreatfoxCsv);
    let data = text.get(h.data_start..).unwrap_or("");
    for (i, line) in data.split('\n').enumerate() {
        let n = h
            .data_line
            .saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_fields(line);
        let get = |c: Option<usize>| present(c.and_then(|c| fields.get(c)).map(|f| f.as_ref()));
        let Some(value) = get(Some(value_col)) else {
            parsed.diag(Location::Line(n), "no ioc_value in this row");
            continue;
        };
        let ioc = threatfox::Ioc {
            id: get(cols.id),
            value,
            ioc_type: get(Some(type_col)).unwrap_or(""),
            threat_type: get(cols.threat_type),
            malware: get(cols.malware),
            malware_printable: get(cols.malware_printable),
            first_seen: get(cols.first_seen),
            last_seen: get(cols.last_seen),
            confidence: get(cols.confidence),
            reference: get(cols.reference),
            tags: get(cols.tags)
                .map(|t| split_tags(t).collect())
                .unwrap_or_default(),
            reporter: get(cols.reporter),
        };
        threatfox::push(&mut parsed, "ioc_value", &|_| Location::Line(n), &ioc);
    }
    Ok(parsed)
}

struct ThreatfoxCols {
    id: Option<usize>,
    threat_type: Option<usize>,
    malware: Option<usize>,
    malware_printable: Option<usize>,
    first_seen: Option<usize>,
    last_seen: Option<usize>,
    confidence: Option<usize>,
    reference: Option<usize>,
    tags: Option<usize>,
    reporter: Option<usize>,
}

// ---------------------------------------------------------------------------------
// Shared helpers

/// Splits one CSV line into fields, allowing white space around a field and before
/// its opening quote (`"a", "b"`); `""` inside quotes is one quote. Used for header
/// lines and ThreatFox rows, which are one line each; other rows go through the
/// `csv` crate.
fn split_fields(line: &str) -> Vec<Cow<'_, str>> {
    let bytes = line.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while matches!(at(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        if at(i) == Some(b'"') {
            let mut field: Cow<'_, str> = Cow::Borrowed("");
            let mut j = i + 1;
            loop {
                let rest = bytes.get(j..).unwrap_or_default();
                match memchr::memchr(b'"', rest) {
                    None => {
                        append(&mut field, line.get(j..).unwrap_or(""));
                        j = bytes.len();
                        break;
                    }
                    Some(k) => {
                        let quote = j + k;
                        if at(quote + 1) == Some(b'"') {
                            append(&mut field, line.get(j..=quote).unwrap_or(""));
                            j = quote + 2;
                        } else {
                            append(&mut field, line.get(j..quote).unwrap_or(""));
                            j = quote + 1;
                            break;
                        }
                    }
                }
            }
            out.push(field);
            // Anything between the closing quote and the next comma is dropped.
            match memchr::memchr(b',', bytes.get(j..).unwrap_or_default()) {
                Some(k) => i = j + k + 1,
                None => return out,
            }
        } else {
            let rest = bytes.get(i..).unwrap_or_default();
            match memchr::memchr(b',', rest) {
                Some(k) => {
                    out.push(Cow::Borrowed(line.get(i..i + k).unwrap_or("").trim()));
                    i += k + 1;
                }
                None => {
                    out.push(Cow::Borrowed(line.get(i..).unwrap_or("").trim()));
                    return out;
                }
            }
        }
    }
}

fn append<'a>(field: &mut Cow<'a, str>, more: &'a str) {
    if field.is_empty() {
        *field = Cow::Borrowed(more);
    } else {
        field.to_mut().push_str(more);
    }
}

/// Tags as feeds write them: `elf,ua-wget`, `#phishing #scam`, `a; b`. The `#` is
/// dropped; null spellings are skipped.
pub(crate) fn split_tags(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', ';', '|', ' ', '\t'])
        .map(|t| t.trim().trim_start_matches('#'))
        .filter(|t| present(Some(t)).is_some())
}

/// Reads the date-and-time spellings feeds use: RFC 3339 (`2023-01-05T09:24:25+00:00`,
/// `…Z`), `YYYY-MM-DD HH:MM:SS` taken as UTC (URLhaus, ThreatFox, TweetFeed, with or
/// without a trailing ` UTC`), a bare date (midnight UTC), and Unix seconds or
/// milliseconds. `Err` means the text is none of these.
pub(crate) fn parse_time(text: &str) -> Result<Option<Timestamp>, ()> {
    let t = text.trim();
    let t = t.strip_suffix(" UTC").unwrap_or(t).trim_end();
    if present(Some(t)).is_none() {
        return Ok(None);
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = t.parse().map_err(|_| ())?;
        let ts = if t.len() >= 13 {
            Timestamp::from_millisecond(n)
        } else {
            Timestamp::from_second(n)
        };
        return ts.map(Some).map_err(|_| ());
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(Some(ts));
    }
    let utc = jiff::tz::TimeZone::UTC;
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        return utc.to_timestamp(dt).map(Some).map_err(|_| ());
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        return utc
            .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .map(Some)
            .map_err(|_| ());
    }
    Err(())
}

/// A test dump that also shows each record's metadata.
#[cfg(test)]
pub(crate) fn dump_meta(parsed: &Parsed) -> String {
    let mut out = String::new();
    let plain = parsed.dump();
    let mut lines = plain.lines();
    for r in &parsed.records {
        out.push_str(lines.next().unwrap_or(""));
        out.push('\n');
        if let Some(m) = &r.meta {
            let mut parts = Vec::new();
            if let Some(c) = m.category {
                parts.push(format!("category={c}"));
            }
            if let Some(c) = m.confidence {
                parts.push(format!("confidence={c}"));
            }
            if !m.tags.is_empty() {
                parts.push(format!("tags={}", m.tags.join("|")));
            }
            if let Some(t) = m.first_seen {
                parts.push(format!("first={t}"));
            }
            if let Some(t) = m.last_seen {
                parts.push(format!("last={t}"));
            }
            if let Some(s) = &m.reference {
                parts.push(format!("ref={s}"));
            }
            if let Some(s) = &m.reporter {
                parts.push(format!("by={s}"));
            }
            if let Some(s) = &m.description {
                parts.push(format!("desc={s}"));
            }
            out.push_str(&format!("  {}\n", parts.join(" ")));
        }
    }
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    #[track_caller]
    fn check(format: Format, input: &str, expect: Expect) {
        let actual = match parse(format, input, None) {
            Ok(p) => dump_meta(&p),
            Err(e) => format!("error: {e}\n"),
        };
        expect.assert_eq(&actual);
    }

    #[track_caller]
    fn check_columns(columns: &str, input: &str, expect: Expect) {
        let actual = match parse(Format::Csv, input, Some(columns)) {
            Ok(p) => dump_meta(&p),
            Err(e) => format!("error: {e}\n"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn urlhaus_banner() {
        check(
            Format::UrlhausCsv,
            "################\n# abuse.ch URLhaus Database Dump\n#\n# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\
             \"3773425\",\"2026-02-07 04:31:13\",\"http://216.126.225.121/bins/arm7\",\"online\",\"2026-02-07 04:31:13\",\"malware_download\",\"elf,ua-wget\",\"https://urlhaus.abuse.ch/url/3773425/\",\"ClearlyNotB\"\r\n\
             \"28277\",\"2018-07-04 16:45:25\",\"http://crimefreesoftware.com/MC_setup.exe\",\"offline\",\"\",\"malware_download\",\"\",\"https://urlhaus.abuse.ch/url/28277/\",\"lovemalware\"\r\n",
            expect![[r#"
                url http://216.126.225.121/bins/arm7
                  category=malware tags=elf|ua-wget|online first=2026-02-07T04:31:13Z last=2026-02-07T04:31:13Z ref=https://urlhaus.abuse.ch/url/3773425/ by=ClearlyNotB
                url http://crimefreesoftware.com/MC_setup.exe
                  category=malware tags=offline first=2018-07-04T16:45:25Z ref=https://urlhaus.abuse.ch/url/28277/ by=lovemalware
            "#]],
        );
    }

    #[test]
    fn urlhaus_plain_header_and_line_numbers() {
        check(
            Format::UrlhausCsv,
            "id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\n# a comment\n\
             1,2024-01-01 00:00:00,http://a.example/x,online,,malware_download,,,\n\
             2,2024-01-01 00:00:00,,online,,malware_download,,,\n\
             3,yesterday,http://b.example/,online,,weird_threat,,,\n",
            expect![[r#"
                url http://a.example/x
                  category=malware tags=online first=2024-01-01T00:00:00Z
                url http://b.example/
                  tags=weird_threat|online
                diag line 5: no url in this row
                diag line 6: first_seen "yesterday" is not a date and time
            "#]],
        );
    }

    #[test]
    fn urlhaus_wrong_header_is_an_error() {
        check(
            Format::UrlhausCsv,
            "# banner\nid,when,link\n1,2,3\n",
            expect![[r#"
                error: line 2: not a urlhaus-csv header: "id,when,link" has no url column
            "#]],
        );
        check(Format::UrlhausCsv, "", expect![""]);
    }

    #[test]
    fn phishtank_quoted_commas_and_newlines() {
        check(
            Format::PhishtankCsv,
            "phish_id,url,phish_detail_url,submission_time,verified,verification_time,online,target\n\
             7972888,\"https://l.example/?url=https://s.example/m=weblogin/x181,375,648&a=1\",http://www.phishtank.com/phish_detail.php?phish_id=7972888,2022-12-11T01:39:50+00:00,yes,2022-12-11T01:42:25+00:00,yes,Other\n\
             7,\"http://multi.example/a\nb\",http://www.phishtank.com/phish_detail.php?phish_id=7,2022-12-11T01:39:50+00:00,yes,,yes,\"Bank, Inc\"\n\
             8,http://after.example/,x,2022-12-11T01:39:50+00:00,yes,,yes,PayPal\n",
            expect![[r#"
                url https://l.example/?url=https://s.example/m=weblogin/x181,375,648&a=1
                  category=phishing first=2022-12-11T01:39:50Z ref=http://www.phishtank.com/phish_detail.php?phish_id=7972888 desc=Other
                url http://multi.example/ab
                  category=phishing first=2022-12-11T01:39:50Z ref=http://www.phishtank.com/phish_detail.php?phish_id=7 desc=Bank, Inc
                url http://after.example/
                  category=phishing first=2022-12-11T01:39:50Z ref=x desc=PayPal
            "#]],
        );
    }

    #[test]
    fn tweetfeed_types_and_hashtags() {
        check(
            Format::TweetfeedCsv,
            "2026-08-16 01:04:58,masaomi346,domain,hndjsy.com,#phishing,https://x.com/masaomi346/status/1\n\
             2026-08-16 01:04:58,masaomi346,url,https://hndjsy.com/lYfKfsvY/,#cryptoscam #phishing,https://x.com/s/2\n\
             2026-08-16 02:10:04,someone,ip,192.0.2.7,,https://x.com/s/3\n\
             2026-08-16 02:10:04,someone,sha256,e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855,#malware,https://x.com/s/4\n\
             2026-08-16 02:10:04,someone,md5,d41d8cd98f00b204e9800998ecf8427e,,\n\
             2026-08-16 02:10:04,someone,domain\n",
            expect![[r#"
                domain hndjsy.com
                  category=phishing tags=phishing first=2026-08-16T01:04:58Z ref=https://x.com/masaomi346/status/1 by=masaomi346
                url https://hndjsy.com/lYfKfsvY/
                  category=phishing tags=cryptoscam|phishing first=2026-08-16T01:04:58Z ref=https://x.com/s/2 by=masaomi346
                ip 192.0.2.7
                  first=2026-08-16T02:10:04Z ref=https://x.com/s/3 by=someone
                diag line 4: unsupported type "sha256": a file hash, not a network indicator
                diag line 5: unsupported type "md5": a file hash, not a network indicator
                diag line 6: no value in this row
            "#]],
        );
    }

    #[test]
    fn phishunt_csv() {
        check(
            Format::PhishuntCsv,
            "url,domain,company,date,first_seen,uuid,ip,country,asn,org,cert,malicious_google\n\
             http://allegrolokalnie.oferta-lokalana989714.lol,allegrolokalnie.oferta-lokalana989714.lol,allegro,2026-08-22T18:05:25.854453+00:00,2026-08-22T18:05:25.854453+00:00,fa70e3e7-a39f-4075-9828-e2645bace19b,104.21.31.184,United States,13335,\"Cloudflare, Inc.\",WE1,false\n",
            expect![[r#"
                url http://allegrolokalnie.oferta-lokalana989714.lol/
                  category=phishing first=2026-08-22T18:05:25.854453Z ref=fa70e3e7-a39f-4075-9828-e2645bace19b desc=allegro
            "#]],
        );
    }

    #[test]
    fn tranco_ranks_are_allow_entries() {
        check(
            Format::TrancoCsv,
            "rank,domain\n1,google.com\r\n2,Microsoft.COM\nx,bad.example\n3,\n4,not a name\n",
            expect![[r#"
                allow domain google.com
                  tags=rank:1
                allow domain microsoft.com
                  tags=rank:2
                allow reject line 6: invalid-domain: "not a name": invalid character ' ' in name
                  tags=rank:4
                diag line 4: rank "x" is not a number (expected rank,domain)
                diag line 5: no domain in this row
            "#]],
        );
    }

    #[test]
    fn misp_hashes_hold_no_indicators() {
        check(
            Format::MispHashes,
            "a8ba23fe226c0220aded7950d4065231,fbd854da-9574-5fb6-b297-c483f9d5daf0\n01457c58fd459cb382e850ae15141a81,fbd854da-9574-5fb6-b297-c483f9d5daf0\n",
            expect![[r#"
                diag file: MISP feed hashes.csv holds 2 md5 hashes of attribute values, not the values: no indicators can be read from it (read the feed's manifest.json and event files)
            "#]],
        );
    }

    #[test]
    fn threatfox_csv_export() {
        check(
            Format::ThreatfoxCsv,
            "################################################################\r\n\
             # ThreatFox IOCs: recent additions - CSV format                #\r\n\
             #\r\n\
             # \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\",\"threat_type\",\"fk_malware\",\"malware_alias\",\"malware_printable\",\"last_seen_utc\",\"confidence_level\",\"is_compromised\",\"reference\",\"tags\",\"anonymous\",\"reporter\"\r\n\
             \"2026-07-04 22:19:04\", \"1844855\", \"dazayse.hi-lo.bet\", \"domain\", \"payload_delivery\", \"js.clearfake\", \"None\", \"ClearFake\", \"\", \"100\", \"False\", \"None\", \"ClearFake,win-0x4679,windows\", \"1\", \"anonymous\"\r\n\
             \"2026-07-04 21:46:30\", \"1844853\", \"64.227.143.36:5555\", \"ip:port\", \"botnet_cc\", \"win.cobalt_strike\", \"Agentemis,BEACON,CobaltStrike,cobeacon\", \"Cobalt Strike\", \"2026-07-04 22:46:23\", \"75\", \"False\", \"https://blog.example/post\", \"CobaltStrike,drb-ra\", \"0\", \"drb_ra\"\r\n\
             \"2026-07-04 21:40:00\", \"1844850\", \"https://evil.example/\"\"q\"\"\", \"url\", \"cc_skimming\", \"js.magecart\", \"None\", \"magecart\", \"\", \"50\", \"False\", \"None\", \"None\", \"0\", \"x\"\r\n\
             \"2026-07-04 21:34:48\", \"1844849\", \"3dd25cbfe76db155615283f905992030468f3da9\", \"sha1_hash\", \"payload\", \"win.vidar\", \"None\", \"Vidar\", \"\", \"95\", \"False\", \"None\", \"None\", \"0\", \"Grim\"\r\n\
             \"2026-07-04 21:30:00\", \"1844848\", \"someone@example.com\", \"email\", \"payload\", \"win.vidar\", \"None\", \"Vidar\", \"\", \"high\", \"False\", \"None\", \"None\", \"0\", \"Grim\"\r\n\
             # Number of entries: 5\r\n",
            expect![[r#"
                domain dazayse.hi-lo.bet
                  category=malware confidence=100 tags=ClearFake|win-0x4679|windows first=2026-07-04T22:19:04Z ref=https://threatfox.abuse.ch/ioc/1844855/ by=anonymous desc=ClearFake
                ip 64.227.143.36
                  category=c2 confidence=75 tags=CobaltStrike|drb-ra first=2026-07-04T21:46:30Z last=2026-07-04T22:46:23Z ref=https://threatfox.abuse.ch/ioc/1844853/ by=drb_ra desc=Cobalt Strike
                url https://evil.example/%22q%22
                  confidence=50 tags=cc_skimming first=2026-07-04T21:40:00Z ref=https://threatfox.abuse.ch/ioc/1844850/ by=x desc=magecart
                diag line 8: unsupported ioc_type "sha1_hash": a file hash, not a network indicator
                diag line 9: unsupported ioc_type "email"
            "#]],
        );
    }

    #[test]
    fn threatfox_csv_without_header_is_an_error() {
        check(
            Format::ThreatfoxCsv,
            "\"2026-07-04 22:19:04\", \"1844855\", \"dazayse.hi-lo.bet\", \"domain\"\n",
            expect![[r#"
                error: line 1: not a ThreatFox CSV header: "2026-07-04 22:19:04,1844855,dazayse.hi-lo.bet,domain" has no ioc_value column
            "#]],
        );
    }

    #[test]
    fn generic_finds_columns_by_name() {
        check(
            Format::Csv,
            "# Title: Online Malicious URL Splunk Lookup\n\"host\",\"path\",\"message\",\"updated\"\n\
             \"0022a601.pphost.net\",\"\",\"urlhaus-filter malicious website detected\",\"2025-07-19T12:11:28Z\"\n\
             \"1.1.109.99\",\"\",\"m\",\"x\"\n\
             \"2024.sci-hub.se\",\"/2294/skidmore1966.pdf\",\"m\",\"x\"\n\
             \"yourclassmanager.com\",\"blogs/?u=file\",\"m\",\"x\"\n",
            expect![[r#"
                domain 0022a601.pphost.net
                ip 1.1.109.99
                url http://2024.sci-hub.se/2294/skidmore1966.pdf
                url http://yourclassmanager.com/blogs/?u=file
            "#]],
        );
        check(
            Format::Csv,
            "Domain,Category,First_Seen,Tags,Confidence\nevil.example,C2,2024-05-01,a;b,80\nbad.example,,,,lots\n",
            expect![[r#"
                domain evil.example
                  category=c2 confidence=80 tags=a|b first=2024-05-01T00:00:00Z
                domain bad.example
                diag line 3: confidence "lots" is not a number from 0 to 100
            "#]],
        );
    }

    #[test]
    fn generic_comment_header_and_type_column() {
        check(
            Format::Csv,
            "# indicator,type,tags\nevil.example,domain,#phishing\n192.0.2.0/24,cidr,\nabc123,sha256,\nhttp://x.example/,url,spam\n",
            expect![[r#"
                domain evil.example
                  category=phishing tags=phishing
                cidr 192.0.2.0/24
                url http://x.example/
                  category=spam tags=spam
                diag line 4: unsupported type "sha256": a file hash, not a network indicator
            "#]],
        );
    }

    #[test]
    fn generic_header_matching_nothing_is_an_error() {
        check(
            Format::Csv,
            "# comment\nname,when\na,b\n",
            expect![[r#"
                error: line 2: no indicator column in header "name,when" (looked for url, domain, host, hostname, fqdn, ip, ioc, ioc_value, indicator, value; give one with value=…)
            "#]],
        );
        check(Format::Csv, "# only a comment\n\n", expect![""]);
    }

    #[test]
    fn column_mapping() {
        check_columns(
            "value=Link,category=threat,first_seen=4,tags=tags",
            "id,Link,threat,added,tags\n1,http://a.example/x,botnet_cc,2024-01-02 03:04:05,\"x,y\"\n",
            expect![[r#"
                url http://a.example/x
                  category=c2 tags=x|y first=2024-01-02T03:04:05Z
            "#]],
        );
        check_columns(
            "header=no,value=2,reporter=1",
            "alice,evil.example\nbob,192.0.2.1\n",
            expect![[r#"
                domain evil.example
                  by=alice
                ip 192.0.2.1
                  by=bob
            "#]],
        );
    }

    #[test]
    fn bad_column_mappings_name_the_field() {
        for (spec, input) in [
            ("value=nope", "a,b\n1,2\n"),
            ("colour=2", "a,b\n1,2\n"),
            ("value=0", "a,b\n1,2\n"),
            ("value=9", "a,b\n1,2\n"),
            ("header=no,value=url", "1,2\n"),
            ("header=no", "1,2\n"),
            ("header=maybe", "1,2\n"),
            ("value", "1,2\n"),
            ("value=1,value=2", "1,2\n"),
            ("value=a,tags=missing", "a,b\n1,2\n"),
        ] {
            let e = parse(Format::Csv, input, Some(spec));
            let shown = match e {
                Ok(p) => format!("ok {}", p.dump()),
                Err(e) => e.to_string(),
            };
            assert!(shown.contains("csv columns"), "{spec}: {shown}");
        }
        check_columns(
            "value=9",
            "a,b\n1,2\n",
            expect![[r#"
                error: line 1: csv columns: field "value": column 9 but the header "a,b" has 2 columns
            "#]],
        );
        check_columns(
            "colour=2",
            "a,b\n",
            expect![[r#"
                error: csv columns: unknown field "colour" (one of: value, path, type, category, first_seen, last_seen, tags, reference, reporter, description, confidence, header)
            "#]],
        );
        check_columns(
            "header=no,value=url",
            "1,2\n",
            expect![[r#"
                error: csv columns: field "value": column name "url" needs a header (header=no was given); use a position
            "#]],
        );
    }

    #[test]
    fn ragged_rows_and_unclosed_quotes() {
        check(
            Format::Csv,
            "url\nhttp://a.example/,extra,cells\n\"http://b.example/\n",
            expect![[r#"
                url http://a.example/
                url http://b.example/
            "#]],
        );
    }

    #[test]
    fn line_numbers_after_multiline_fields_and_comments() {
        check(
            Format::Csv,
            "url,note\n\"http://a.example/\",\"two\nlines\"\n# comment\n\n\"bad\nhost name\",\r\nnot a url\n",
            expect![[r#"
                url http://a.example/
                reject line 6: invalid-url: "bad\nhost name": not a URL: invalid international domain name
                reject line 8: invalid-url: "not a url": not a URL: invalid international domain name
            "#]],
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "[a-z0-9#\",;:/. \\n\\r\\t'=|-]{0,200}") {
            for format in [
                Format::UrlhausCsv,
                Format::PhishtankCsv,
                Format::ThreatfoxCsv,
                Format::TweetfeedCsv,
                Format::PhishuntCsv,
                Format::TrancoCsv,
                Format::MispHashes,
                Format::Csv,
            ] {
                let _ = parse(format, &text, None);
            }
            let _ = parse(Format::Csv, &text, Some(&text));
            let _ = parse(Format::Csv, &text, Some("header=no,value=1,tags=2,first_seen=3"));
        }
    }

    #[test]
    fn split_fields_handles_quotes_and_spaces() {
        let f = split_fields(r#""a", "b,c" ,d , "e""f", "#);
        let f: Vec<&str> = f.iter().map(|c| c.as_ref()).collect();
        assert_eq!(f, ["a", "b,c", "d", "e\"f", ""]);
        let f = split_fields(r#""unclosed, x"#);
        let f: Vec<&str> = f.iter().map(|c| c.as_ref()).collect();
        assert_eq!(f, ["unclosed, x"]);
    }

    #[test]
    fn time_spellings() {
        let show = |t: &str| match parse_time(t) {
            Ok(Some(ts)) => ts.to_string(),
            Ok(None) => "none".to_owned(),
            Err(()) => "error".to_owned(),
        };
        assert_eq!(show("2026-07-24 13:50:06"), "2026-07-24T13:50:06Z");
        assert_eq!(show("2020-12-08 13:36:27 UTC"), "2020-12-08T13:36:27Z");
        assert_eq!(show("2023-01-05T09:24:25+01:00"), "2023-01-05T08:24:25Z");
        assert_eq!(show("2025-07-19T12:11:28Z"), "2025-07-19T12:11:28Z");
        assert_eq!(show("2024-05-01"), "2024-05-01T00:00:00Z");
        assert_eq!(show("1700000000"), "2023-11-14T22:13:20Z");
        assert_eq!(show("1700000000000"), "2023-11-14T22:13:20Z");
        assert_eq!(show("None"), "none");
        assert_eq!(show(""), "none");
        assert_eq!(show("yesterday"), "error");
        assert_eq!(show("99999999999999999999"), "error");
    }
}
