//! ThreatFox JSON: the export (`{"<ioc_id>": [{ioc_value, ioc_type, …}]}`) and the
//! API answer (`{"query_status": "ok", "data": [{ioc, ioc_type, …}]}`).
//!
//! ThreatFox (abuse.ch) is the richest free malware-infrastructure feed: every IOC
//! carries a threat type, a malware family, a confidence and dates. It mixes what a
//! resolver can block (`domain`, `url`, `ip:port`) with file hashes it cannot; those
//! are diagnostics, counted, never silently dropped. The CSV export shares the
//! per-IOC mapping ([`push`]), so both spellings of one IOC give the same record.

use std::net::IpAddr;

use indicator::{Category, Hint};
use serde_json::{Map, Value};

use super::csv::{confidence, present, split_tags, time_field};
use crate::{Format, Location, Meta, Parsed, ReadError, Record};

/// One IOC as either export spells it; `None` for absent or null fields.
#[derive(Debug, Default)]
pub(crate) struct Ioc<'a> {
    pub id: Option<&'a str>,
    pub value: &'a str,
    pub ioc_type: &'a str,
    pub threat_type: Option<&'a str>,
    pub malware: Option<&'a str>,
    pub malware_printable: Option<&'a str>,
    pub first_seen: Option<&'a str>,
    pub last_seen: Option<&'a str>,
    pub confidence: Option<&'a str>,
    pub reference: Option<&'a str>,
    pub tags: Vec<&'a str>,
    pub reporter: Option<&'a str>,
}

/// The record for one IOC, or a diagnostic when its type is not a network
/// indicator. `at(field)` locates a field of the IOC.
pub(crate) fn push(
    parsed: &mut Parsed,
    value_field: &str,
    at: &dyn Fn(&str) -> Location,
    ioc: &Ioc<'_>,
) {
    let kind = ioc.ioc_type.trim().to_ascii_lowercase();
    let (hint, value) = match kind.as_str() {
        "ip:port" => (Hint::Ip, ip_part(ioc.value)),
        "domain" => (Hint::Domain, ioc.value),
        "url" => (Hint::Url, ioc.value),
        k if k.ends_with("_hash") => {
            parsed.diag(
                at("ioc_type"),
                format!(
                    "unsupported ioc_type {:?}: a file hash, not a network indicator",
                    ioc.ioc_type
                ),
            );
            return;
        }
        _ => {
            parsed.diag(
                at("ioc_type"),
                format!("unsupported ioc_type {:?}", ioc.ioc_type),
            );
            return;
        }
    };
    let mut meta = Meta::default();
    if let Some(t) = ioc.threat_type {
        match Category::from_label(t) {
            Some(c) => meta.category = Some(c),
            None => meta.tags.push(t.to_owned()),
        }
    }
    meta.tags.extend(ioc.tags.iter().map(|t| (*t).to_owned()));
    if let Some(c) = ioc.confidence {
        meta.confidence = confidence(parsed, &at("confidence_level"), c);
    }
    meta.first_seen = time_field(parsed, &at("first_seen_utc"), "first_seen", ioc.first_seen);
    meta.last_seen = time_field(parsed, &at("last_seen_utc"), "last_seen", ioc.last_seen);
    // The IOC's own page is its stable reference; the feed's `reference` (a blog
    // post, a tweet) is kept only when there is no id to link to.
    meta.reference = match ioc.id {
        Some(id) => Some(format!("https://threatfox.abuse.ch/ioc/{id}/")),
        None => ioc.reference.map(str::to_owned),
    };
    meta.reporter = ioc.reporter.map(str::to_owned);
    meta.description = ioc.malware_printable.or(ioc.malware).map(str::to_owned);
    parsed
        .records
        .push(Record::new(at(value_field), value, hint).with_meta(meta));
}

/// The address of an `ip:port` value (`192.0.2.1:443`, `[2001:db8::1]:443`).
fn ip_part(value: &str) -> &str {
    let v = value.trim();
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip);
    }
    if v.parse::<IpAddr>().is_ok() {
        return v;
    }
    match v.rsplit_once(':') {
        Some((ip, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => ip,
        _ => v,
    }
}

const SHAPE: &str = "expected a ThreatFox export {\"<ioc_id>\": [{\"ioc_value\": …}]} \
                     or an API answer {\"query_status\": …, \"data\": […]}";

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ReadError::json(&e))?;
    let Value::Object(root) = root else {
        return Err(ReadError::at(Location::Path("$".to_owned()), SHAPE));
    };
    let mut parsed = Parsed::new(Format::ThreatfoxJson);
    if let Some(status) = root.get("query_status") {
        match root.get("data") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    ioc(&mut parsed, &format!("$.data[{i}]"), item, None);
                }
            }
            other => {
                // `no_result` and errors come with a message in `data`.
                let status = status.as_str().unwrap_or("");
                let message = other.and_then(Value::as_str).unwrap_or("");
                parsed.diag(
                    Location::Path("$.query_status".to_owned()),
                    format!("query_status {status:?}, no IOCs: {message}"),
                );
            }
        }
        return Ok(parsed);
    }
    if !root.is_empty() && !root.values().any(Value::is_array) {
        return Err(ReadError::at(Location::Path("$".to_owned()), SHAPE));
    }
    for (id, entries) in &root {
        let base = format!("$[{}]", quote(id));
        match entries {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    ioc(&mut parsed, &format!("{base}[{i}]"), item, Some(id));
                }
            }
            _ => parsed.diag(Location::Path(base), "expected an array of IOCs"),
        }
    }
    Ok(parsed)
}

/// A JSON string literal for a path segment (`$["1856791"]`).
fn quote(key: &str) -> String {
    serde_json::to_string(key).unwrap_or_else(|_| format!("{key:?}"))
}

fn text<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    present(o.get(key).and_then(Value::as_str))
}

/// Numbers and strings alike (`"confidence_level": 100`, `"id": "41"`).
fn scalar(o: &Map<String, Value>, key: &str) -> Option<String> {
    match o.get(key)? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => present(Some(s)).map(str::to_owned),
        _ => None,
    }
}

fn ioc(parsed: &mut Parsed, path: &str, item: &Value, id: Option<&str>) {
    let at = |field: &str| Location::Path(format!("{path}.{field}"));
    let Value::Object(o) = item else {
        parsed.diag(Location::Path(path.to_owned()), "expected an IOC object");
        return;
    };
    // The export says `ioc_value`, the API `ioc`.
    let (value_field, value) = match (text(o, "ioc_value"), text(o, "ioc")) {
        (Some(v), _) => ("ioc_value", v),
        (None, Some(v)) => ("ioc", v),
        (None, None) => {
            parsed.diag(at("ioc_value"), "no ioc_value");
            return;
        }
    };
    let own_id = scalar(o, "id");
    let confidence = scalar(o, "confidence_level");
    let tags = match o.get("tags") {
        Some(Value::String(s)) => split_tags(s).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|t| present(Some(t)))
            .collect(),
        _ => Vec::new(),
    };
    let ioc = Ioc {
        id: id.or(own_id.as_deref()),
        value,
        ioc_type: text(o, "ioc_type").unwrap_or(""),
        threat_type: text(o, "threat_type"),
        malware: text(o, "malware"),
        malware_printable: text(o, "malware_printable"),
        first_seen: text(o, "first_seen_utc").or_else(|| text(o, "first_seen")),
        last_seen: text(o, "last_seen_utc").or_else(|| text(o, "last_seen")),
        confidence: confidence.as_deref(),
        reference: text(o, "reference"),
        tags,
        reporter: text(o, "reporter"),
    };
    push(parsed, value_field, &at, &ioc);
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::super::csv::dump_meta;

    #[track_caller]
    fn check(input: &str, expect: Expect) {
        let actual = match super::parse(input) {
            Ok(p) => dump_meta(&p),
            Err(e) => format!("error: {e}\n"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn export_shape() {
        check(
            r#"{
  "1856791": [{"ioc_value": "https://sup.merahsm188.top/", "ioc_type": "url", "threat_type": "botnet_cc",
    "malware": "win.vidar", "malware_alias": null, "malware_printable": "Vidar",
    "first_seen_utc": "2026-07-24 13:50:06", "last_seen_utc": null, "confidence_level": 100,
    "is_compromised": true, "reference": null, "tags": "vidar", "anonymous": 0, "reporter": "crep1x"}],
  "1856792": [{"ioc_value": "45.137.22.5:443", "ioc_type": "ip:port", "threat_type": "payload_delivery",
    "malware": "win.x", "malware_printable": null, "confidence_level": 75, "tags": "a,b"}],
  "1856793": [{"ioc_value": "0123456789abcdef0123456789abcdef", "ioc_type": "md5_hash", "threat_type": "payload"}],
  "1856794": [{"ioc_type": "domain"}, "junk", {"ioc_value": "x.example", "ioc_type": "domain", "first_seen_utc": "soon", "confidence_level": "high"}],
  "1856795": {"not": "an array"}
}"#,
            expect![[r#"
                url https://sup.merahsm188.top/
                  category=c2 confidence=100 tags=vidar first=2026-07-24T13:50:06Z ref=https://threatfox.abuse.ch/ioc/1856791/ by=crep1x desc=Vidar
                ip 45.137.22.5
                  category=malware confidence=75 tags=a|b ref=https://threatfox.abuse.ch/ioc/1856792/ desc=win.x
                domain x.example
                  ref=https://threatfox.abuse.ch/ioc/1856794/
                diag $["1856793"][0].ioc_type: unsupported ioc_type "md5_hash": a file hash, not a network indicator
                diag $["1856794"][0].ioc_value: no ioc_value
                diag $["1856794"][1]: expected an IOC object
                diag $["1856794"][2].confidence_level: confidence "high" is not a number from 0 to 100
                diag $["1856794"][2].first_seen_utc: first_seen "soon" is not a date and time
                diag $["1856795"]: expected an array of IOCs
            "#]],
        );
    }

    #[test]
    fn api_shape() {
        check(
            r#"{"query_status": "ok", "data": [
  {"id": "41", "ioc": "gaga.example", "threat_type": "botnet_cc", "ioc_type": "domain",
   "malware": "win.dridex", "malware_printable": "Dridex", "confidence_level": 50,
   "first_seen": "2020-12-08 13:36:27 UTC", "last_seen": null, "reporter": "abuse_ch",
   "reference": "https://twitter.com/x/status/1", "tags": ["exe", "test"]},
  {"id": 42, "ioc": "[2001:db8::1]:8080", "ioc_type": "ip:port", "threat_type": "cc_skimming"}
]}"#,
            expect![[r#"
                domain gaga.example
                  category=c2 confidence=50 tags=exe|test first=2020-12-08T13:36:27Z ref=https://threatfox.abuse.ch/ioc/41/ by=abuse_ch desc=Dridex
                ip 2001:db8::1
                  tags=cc_skimming ref=https://threatfox.abuse.ch/ioc/42/
            "#]],
        );
        check(
            r#"{"query_status": "no_result", "data": "Your search did not yield any results"}"#,
            expect![[r#"
                diag $.query_status: query_status "no_result", no IOCs: Your search did not yield any results
            "#]],
        );
    }

    #[test]
    fn not_threatfox_is_an_error() {
        check(
            "[1, 2]",
            expect![[r#"
                error: $: expected a ThreatFox export {"<ioc_id>": [{"ioc_value": …}]} or an API answer {"query_status": …, "data": […]}
            "#]],
        );
        check(
            r#"{"hello": 1}"#,
            expect![[r#"
                error: $: expected a ThreatFox export {"<ioc_id>": [{"ioc_value": …}]} or an API answer {"query_status": …, "data": […]}
            "#]],
        );
        check(
            r#"{"1": [{"ioc_value": "a.example""#,
            expect![[r#"
                error: line 1: column 32: invalid JSON: EOF while parsing an object
            "#]],
        );
        check("{}", expect![""]);
    }

    #[test]
    fn ip_part() {
        assert_eq!(super::ip_part("192.0.2.1:443"), "192.0.2.1");
        assert_eq!(super::ip_part("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(super::ip_part("2001:db8::1"), "2001:db8::1");
        assert_eq!(super::ip_part("192.0.2.1"), "192.0.2.1");
        assert_eq!(super::ip_part("host:abc"), "host:abc");
        assert_eq!(super::ip_part("[unclosed"), "unclosed");
    }
}
