//! Readers and writers for every feed format a threat-intel hub meets.
//!
//! Partners and public feeds publish the same kind of data — harmful names, URLs and
//! addresses — in two dozen shapes: plain lists, hosts files, resolver configs, RPZ
//! zones, CSV dumps, ThreatFox and phishunt JSON, STIX, MISP, passive DNS. This crate
//! reads each into [`Record`]s (raw values with their place in the input and what the
//! feed says about them) plus [`Diagnostic`]s for the lines it could not use, and
//! writes the formats resolvers load. It picks the format by content ([`sniff()`]),
//! reads gzip transparently, and does no I/O beyond the bytes it is handed.
//!
//! Contract of every reader: one bad line or object is a diagnostic and never fails
//! the input; an input that is not the format at all (wrong shape, truncated JSON,
//! binary) is a [`ReadError`]; no input makes a reader panic (fuzzed in `fuzz/`).

mod record;
mod sniff;
mod summary;

pub mod readers;
pub mod write;

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

pub use record::{
    Diagnostic, Location, Meta, Parsed, PdnsRecord, Polarity, ReadError, Record, RpzAction,
    RpzPolicy, RpzTrigger, Takedown, TakedownStatus,
};
pub use sniff::sniff;
pub use summary::{Summary, summarise};

/// Every format this crate reads. The names are what `--format` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// One domain, URL, IP or prefix per line; `#`, `!` or `;` comments.
    Plain,
    /// `0.0.0.0 name [name…]` hosts files.
    Hosts,
    /// Adblock / AdGuard network rules (`||name^`, `@@` exceptions).
    Adblock,
    /// dnsmasq `address=/name/…` and `server=/name/`.
    Dnsmasq,
    /// Unbound `local-zone:` / `local-data:` blocklists.
    Unbound,
    /// BIND `zone "name" { … };` blocklists.
    BindZones,
    /// RPZ master files.
    Rpz,
    /// URLhaus CSV dump (banner or plain header).
    UrlhausCsv,
    /// PhishTank `verified_online.csv`.
    PhishtankCsv,
    /// ThreatFox CSV export.
    ThreatfoxCsv,
    /// TweetFeed CSV (no header).
    TweetfeedCsv,
    /// phishunt.io `feed.csv`.
    PhishuntCsv,
    /// Tranco-style `rank,domain` popularity list.
    TrancoCsv,
    /// Any CSV, columns found by header name or given by `--csv-columns`.
    Csv,
    /// ThreatFox JSON export (`{ioc_id: [{ioc_value…}]}`).
    ThreatfoxJson,
    /// phishunt.io `feed.json`.
    PhishuntJson,
    /// STIX 2.0/2.1 bundles, TAXII 2.1 envelopes, bare object arrays.
    Stix,
    /// MISP event JSON (`{"Event":…}`, `{"response":[…]}`).
    Misp,
    /// MISP feed `manifest.json` (events read from beside it).
    MispFeed,
    /// MISP feed `hashes.csv` (value hashes only: no indicators).
    MispHashes,
    /// MISP warninglist JSON.
    Warninglist,
    /// Passive DNS Common Output Format (NDJSON).
    Cof,
    /// Takedown reports, JSON lines (`docs/formats.md`).
    Takedown,
    /// A JSON Schema document (recognised so it is not mistaken for data).
    JsonSchema,
    /// TweetFeed's STIX bundle index (`stix/manifest.json`): references, no indicators.
    StixIndex,
    /// Prose (an RFC or Internet-Draft, a README): recognised, holds no indicators.
    Prose,
}

impl Format {
    pub const ALL: [Format; 26] = [
        Format::Plain,
        Format::Hosts,
        Format::Adblock,
        Format::Dnsmasq,
        Format::Unbound,
        Format::BindZones,
        Format::Rpz,
        Format::UrlhausCsv,
        Format::PhishtankCsv,
        Format::ThreatfoxCsv,
        Format::TweetfeedCsv,
        Format::PhishuntCsv,
        Format::TrancoCsv,
        Format::Csv,
        Format::ThreatfoxJson,
        Format::PhishuntJson,
        Format::Stix,
        Format::Misp,
        Format::MispFeed,
        Format::MispHashes,
        Format::Warninglist,
        Format::Cof,
        Format::Takedown,
        Format::JsonSchema,
        Format::StixIndex,
        Format::Prose,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::Hosts => "hosts",
            Format::Adblock => "adblock",
            Format::Dnsmasq => "dnsmasq",
            Format::Unbound => "unbound",
            Format::BindZones => "bind",
            Format::Rpz => "rpz",
            Format::UrlhausCsv => "urlhaus-csv",
            Format::PhishtankCsv => "phishtank-csv",
            Format::ThreatfoxCsv => "threatfox-csv",
            Format::TweetfeedCsv => "tweetfeed-csv",
            Format::PhishuntCsv => "phishunt-csv",
            Format::TrancoCsv => "tranco-csv",
            Format::Csv => "csv",
            Format::ThreatfoxJson => "threatfox-json",
            Format::PhishuntJson => "phishunt-json",
            Format::Stix => "stix",
            Format::Misp => "misp",
            Format::MispFeed => "misp-feed",
            Format::MispHashes => "misp-hashes",
            Format::Warninglist => "warninglist",
            Format::Cof => "cof",
            Format::Takedown => "takedown",
            Format::JsonSchema => "json-schema",
            Format::StixIndex => "stix-index",
            Format::Prose => "prose",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::from_name(s).ok_or_else(|| {
            let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
            format!("unknown format {s:?} (one of: {})", names.join(", "))
        })
    }
}

/// How to read an input.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Use this format instead of sniffing.
    pub format: Option<Format>,
    /// Column mapping for [`Format::Csv`], e.g. `value=url,category=threat,first_seen=3`
    /// (names or 1-based positions; see `docs/formats.md`).
    pub csv_columns: Option<String>,
}

/// Largest decompressed size accepted from a gzip input (a bomb guard): 4 GiB.
pub const MAX_DECOMPRESSED: u64 = 4 << 30;

/// Reads one input: gunzips if needed, checks it is text, picks the format (or takes
/// the given one) and parses it.
///
/// A MISP feed manifest needs the event files beside it: use [`read_misp_feed`].
pub fn read(bytes: &[u8], options: &ReadOptions) -> Result<Parsed, ReadError> {
    read_text(&decode(bytes)?, options)
}

/// Like [`read`] for input already decoded with [`decode`].
pub fn read_text(text: &str, options: &ReadOptions) -> Result<Parsed, ReadError> {
    let format = match options.format {
        Some(f) => f,
        None => sniff(text)
            .ok_or_else(|| ReadError::new("format not recognised (give one with --format)"))?,
    };
    readers::parse(format, text, options)
}

/// Reads a MISP feed: its `manifest.json`, and each event file through `load`
/// (called with the event's UUID; an error from it is a diagnostic, not a failure).
pub fn read_misp_feed(
    manifest: &[u8],
    load: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
) -> Result<Parsed, ReadError> {
    let text = decode(manifest)?;
    readers::misp::parse_feed(&text, load)
}

/// Gunzips (by magic number) and decodes to text. NUL bytes mean binary data and
/// fail; other invalid UTF-8 (a Latin-1 comment) is replaced, not fatal.
pub fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, ReadError> {
    let bytes: Cow<'_, [u8]> = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .take(MAX_DECOMPRESSED)
            .read_to_end(&mut out)
            .map_err(|e| ReadError::new(format!("gzip: {e}")))?;
        Cow::Owned(out)
    } else {
        Cow::Borrowed(bytes)
    };
    let probe = &bytes[..bytes.len().min(1 << 16)];
    if let Some(pos) = memchr::memchr(0, probe) {
        return Err(ReadError::new(format!(
            "binary data (NUL byte at offset {pos}), not a text feed"
        )));
    }
    let text = match bytes {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(v) => match String::from_utf8(v) {
            Ok(s) => Cow::Owned(s),
            Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        },
    };
    // A byte-order mark is not part of the first line.
    Ok(match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.strip_prefix('\u{feff}').unwrap_or(s)),
        Cow::Owned(s) => match s.strip_prefix('\u{feff}') {
            Some(rest) => Cow::Owned(rest.to_owned()),
            None => Cow::Owned(s),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.name()), Some(f));
        }
        assert!("nope".parse::<Format>().is_err());
    }

    #[test]
    fn binary_is_an_error() {
        let e = read(b"\x00\x01\x02garbage", &ReadOptions::default());
        assert!(matches!(e, Err(ReadError { .. })));
    }

    #[test]
    fn gzip_is_transparent() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"evil.example\nbad.example\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let gz = enc.finish().unwrap_or_else(|e| panic!("{e}"));
        let parsed = read(&gz, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.format, Format::Plain);
        assert_eq!(parsed.records.len(), 2);
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&b"evil.example\n".repeat(1000))
            .unwrap_or_else(|e| panic!("{e}"));
        let gz = enc.finish().unwrap_or_else(|e| panic!("{e}"));
        assert!(read(&gz[..gz.len() / 2], &ReadOptions::default()).is_err());
    }
}
