//! Exports of a feed's current state in the formats resolvers and partners load.
//!
//! Everything is derived from the store's feed rules (the journal's sum), never
//! hand-built: an RPZ zone whose SOA serial is the feed's journal serial, host and
//! domain lists, dnsmasq, Unbound, Adblock and CSV; and the URL list, which also
//! carries the URL-only indicators that never become DNS rules.
//!
//! TLP: the rule formats carry rules only (a trigger and an action), never what an
//! indicator came with (sources, markings, tags, scores). The two formats partners
//! load as indicator lists are cut to a clearance ([`ExportFormat::by_clearance`]):
//! `urls` lists only URLs some source shared at or below it, and `csv` only the
//! rules that such an indicator needs. Anonymous HTTP clients get `clear`.

use std::io::Write;

use std::collections::HashSet;

use formats::RpzAction;
use formats::write::rpz::ZoneHeader;
use indicator::{Domain, Indicator, Tlp};

use crate::Hub;

/// Export formats (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    Rpz,
    Hosts,
    Domains,
    Dnsmasq,
    Unbound,
    Adblock,
    Csv,
    Urls,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 8] = [
        ExportFormat::Rpz,
        ExportFormat::Hosts,
        ExportFormat::Domains,
        ExportFormat::Dnsmasq,
        ExportFormat::Unbound,
        ExportFormat::Adblock,
        ExportFormat::Csv,
        ExportFormat::Urls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Rpz => "rpz",
            ExportFormat::Hosts => "hosts",
            ExportFormat::Domains => "domains",
            ExportFormat::Dnsmasq => "dnsmasq",
            ExportFormat::Unbound => "unbound",
            ExportFormat::Adblock => "adblock",
            ExportFormat::Csv => "csv",
            ExportFormat::Urls => "urls",
        }
    }

    pub fn parse(s: &str) -> Option<ExportFormat> {
        ExportFormat::ALL.into_iter().find(|f| f.name() == s)
    }

    /// True for the formats cut to the reader's TLP clearance: the lists partners
    /// load as indicators (`urls`, `csv`).
    pub fn by_clearance(self) -> bool {
        matches!(self, ExportFormat::Urls | ExportFormat::Csv)
    }
}

/// The zone name of a feed: `<feed>.rpz.sharedefend.`
pub fn zone_name(feed: &str) -> String {
    format!("{feed}.rpz.sharedefend")
}

/// Errors of an export: the store, or the output.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Writes `feed` in `format` to `out`, cut to `clearance` where the format is
/// ([`ExportFormat::by_clearance`]); returns the serial exported.
pub fn export(
    hub: &mut Hub,
    feed: &str,
    format: ExportFormat,
    clearance: Tlp,
    out: &mut dyn Write,
) -> Result<u32, ExportError> {
    export_store(&mut hub.store, feed, format, clearance, out)
}

/// [`export`] from a bare store: what the HTTP exports render, byte for byte the
/// same as `sharedefend export`. One read transaction; the writing happens after it.
pub fn export_store(
    store: &mut store::Store,
    feed: &str,
    format: ExportFormat,
    clearance: Tlp,
    out: &mut dyn Write,
) -> Result<u32, ExportError> {
    let cut = format.by_clearance() && clearance < Tlp::Red;
    let (serial, rules, urls) = store.read(|tx| {
        let serial = tx
            .feeds()?
            .into_iter()
            .find(|f| f.name == feed)
            .map(|f| f.serial)
            .ok_or_else(|| store::StoreError::Invalid(format!("no feed {feed:?}")))?;
        let mut rules = tx.feed_rules(feed)?;
        if cut && format == ExportFormat::Csv {
            // The rules some indicator the reader may see needs.
            let publishing: Vec<_> = tx
                .decisions_in_state(store::STATE_PUBLISH)?
                .into_iter()
                .filter(|(_, d)| d.feeds.iter().any(|f| f == feed))
                .collect();
            let ids: Vec<i64> = publishing.iter().map(|(i, _)| i.id).collect();
            let tlps = crate::evidence::visibility(tx, &ids)?;
            let seen: HashSet<&str> = publishing
                .iter()
                .filter(|(i, _)| tlps.get(&i.id).is_some_and(|t| *t <= clearance))
                .flat_map(|(_, d)| d.rules.iter().map(|r| r.trigger.as_str()))
                .collect();
            rules.retain(|r| seen.contains(r.trigger.as_str()));
        }
        let urls = if format == ExportFormat::Urls {
            let mut urls = Vec::new();
            for state in [store::STATE_URL_ONLY, store::STATE_PUBLISH] {
                for (i, d) in tx.decisions_in_state(state)? {
                    if i.kind == "url"
                        && (d.feeds.iter().any(|f| f == feed)
                            || state == store::STATE_URL_ONLY && in_feed(feed, &d.category))
                    {
                        urls.push((i.id, i.value));
                    }
                }
            }
            if cut {
                let ids: Vec<i64> = urls.iter().map(|(id, _)| *id).collect();
                let tlps = crate::evidence::visibility(tx, &ids)?;
                urls.retain(|(id, _)| tlps.get(id).is_some_and(|t| *t <= clearance));
            }
            let mut urls: Vec<String> = urls.into_iter().map(|(_, v)| v).collect();
            urls.sort();
            urls
        } else {
            Vec::new()
        };
        Ok((serial, rules, urls))
    })?;
    let indicators: Vec<(Indicator, RpzAction)> = rules
        .iter()
        .filter_map(|r| {
            let i = match r.trigger.strip_prefix("*.") {
                Some(base) => Indicator::Wildcard(Domain::parse(base).ok()?),
                None => Indicator::Domain(Domain::parse(&r.trigger).ok()?),
            };
            let action = match r.action.as_str() {
                "nodata" => RpzAction::Nodata,
                "passthru" => RpzAction::Passthru,
                "drop" => RpzAction::Drop,
                _ => RpzAction::Nxdomain,
            };
            Some((i, action))
        })
        .collect();
    let plain: Vec<Indicator> = indicators.iter().map(|(i, _)| i.clone()).collect();
    let mut buf = std::io::BufWriter::with_capacity(1 << 20, out);
    match format {
        ExportFormat::Rpz => {
            let origin =
                Domain::parse(&zone_name(feed)).map_err(|e| ExportError::Invalid(e.to_string()))?;
            let header = ZoneHeader::new(origin, serial);
            formats::write::rpz::zone(&mut buf, &header, &indicators)?;
        }
        ExportFormat::Hosts => formats::write::text::hosts(&mut buf, &plain)?,
        ExportFormat::Domains => formats::write::text::plain(&mut buf, &plain)?,
        ExportFormat::Dnsmasq => formats::write::text::dnsmasq(&mut buf, &plain)?,
        ExportFormat::Unbound => formats::write::text::unbound(&mut buf, &plain)?,
        ExportFormat::Adblock => formats::write::text::adblock(&mut buf, &plain)?,
        ExportFormat::Csv => formats::write::csv::csv(&mut buf, &plain)?,
        ExportFormat::Urls => {
            for u in &urls {
                writeln!(buf, "{u}")?;
            }
        }
    }
    buf.flush()?;
    Ok(serial)
}

fn in_feed(feed: &str, category: &str) -> bool {
    feed == "all"
        || category
            .parse::<indicator::Category>()
            .ok()
            .and_then(analysis::feed_for)
            .is_some_and(|f| f == feed)
}
