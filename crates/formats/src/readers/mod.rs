//! One module per input format, and the dispatch from [`Format`] to its reader.
//!
//! Each reader is a plain function from text to [`Parsed`]; shared line handling
//! (numbering, comments) is in `lines`.

pub(crate) mod lines;

pub mod adblock;
pub mod bind;
pub mod cof;
pub mod csv;
pub mod dnsmasq;
pub mod document;
pub mod hosts;
pub mod misp;
pub mod phishunt;
pub mod plain;
pub mod rpz;
pub mod stix;
pub mod takedown;
pub mod threatfox;
pub mod unbound;
pub mod warninglist;

use crate::{Format, Parsed, ReadError, ReadOptions};

/// Parses `text` as `format`.
pub fn parse(format: Format, text: &str, options: &ReadOptions) -> Result<Parsed, ReadError> {
    match format {
        Format::Plain => Ok(plain::parse(text)),
        Format::Hosts => Ok(hosts::parse(text)),
        Format::Adblock => adblock::parse(text),
        Format::Dnsmasq => dnsmasq::parse(text),
        Format::Unbound => unbound::parse(text),
        Format::BindZones => bind::parse(text),
        Format::Rpz => rpz::parse(text),
        Format::UrlhausCsv
        | Format::PhishtankCsv
        | Format::ThreatfoxCsv
        | Format::TweetfeedCsv
        | Format::PhishuntCsv
        | Format::TrancoCsv
        | Format::MispHashes
        | Format::Csv => csv::parse(format, text, options.csv_columns.as_deref()),
        Format::ThreatfoxJson => threatfox::parse(text),
        Format::PhishuntJson => phishunt::parse(text),
        Format::Stix => stix::parse(text),
        Format::Misp => misp::parse(text),
        Format::MispFeed => Err(ReadError::new(
            "a MISP feed manifest is read with the event files beside it: give the feed directory or its manifest.json path",
        )),
        Format::Warninglist => warninglist::parse(text),
        Format::Cof => cof::parse(text),
        Format::Takedown => takedown::parse(text),
        Format::JsonSchema | Format::StixIndex | Format::Prose => document::parse(format, text),
    }
}
