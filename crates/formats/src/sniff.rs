//! Content sniffing: which format is this input?
//!
//! Operators point the hub at files and URLs without saying what they hold, and feed
//! publishers rename files freely, so the format is read from the content, never the
//! file name. JSON is told apart by its keys, CSV by its header (or the shape of its
//! first row for headerless feeds), line formats by the syntax of their first
//! meaningful lines. Only the first 64 KiB are looked at. `--format` overrides.

use crate::Format;

/// How much of the input the sniffer reads.
const HEAD: usize = 1 << 16;
/// How many meaningful lines the line sniffer looks at.
const SAMPLE_LINES: usize = 200;

/// The format of `text`, or `None` when nothing fits (empty input counts as plain).
pub fn sniff(text: &str) -> Option<Format> {
    let head = head(text);
    let start = head.trim_start();
    if start.is_empty() {
        return Some(Format::Plain);
    }
    if start.starts_with('{') || start.starts_with('[') {
        return sniff_json(start);
    }
    sniff_lines(head)
}

fn head(text: &str) -> &str {
    let mut end = text.len().min(HEAD);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// True when `"key"` appears as an object key (followed by optional space and `:`).
fn has_key(text: &str, key: &str) -> bool {
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(i) = text[from..].find(&quoted) {
        let after = &text[from + i + quoted.len()..];
        if after.trim_start().starts_with(':') {
            return true;
        }
        from += i + quoted.len();
    }
    false
}

/// True when `"key"` has the string value `value` somewhere.
fn has_key_value(text: &str, key: &str, value: &str) -> bool {
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(i) = text[from..].find(&quoted) {
        let after = text[from + i + quoted.len()..].trim_start();
        if let Some(rest) = after.strip_prefix(':')
            && rest.trim_start().starts_with(&format!("\"{value}\""))
        {
            return true;
        }
        from += i + quoted.len();
    }
    false
}

fn sniff_json(start: &str) -> Option<Format> {
    // Newline-delimited JSON: the first line is a whole object and another follows.
    let first_line = start.lines().next().unwrap_or("");
    let is_ndjson = first_line.trim_end().ends_with('}')
        && serde_json::from_str::<serde_json::Value>(first_line).is_ok_and(|v| v.is_object());
    if is_ndjson {
        if has_key(first_line, "rrname") {
            return Some(Format::Cof);
        }
        if has_key(first_line, "status")
            && (has_key(first_line, "url") || has_key(first_line, "domain"))
        {
            return Some(Format::Takedown);
        }
    }
    if has_key(start, "$schema")
        || (has_key(start, "properties") && has_key(start, "additionalProperties"))
    {
        return Some(Format::JsonSchema);
    }
    // ThreatFox: the export names `ioc_value`, the API answer `query_status` + `ioc`.
    if has_key(start, "ioc_value") || has_key(start, "query_status") && has_key(start, "ioc") {
        return Some(Format::ThreatfoxJson);
    }
    if has_key(start, "Event") || (start.starts_with('{') && has_key(start, "response")) {
        return Some(Format::Misp);
    }
    if has_key(start, "bundles") && has_key(start, "indicator_count") {
        return Some(Format::StixIndex);
    }
    if has_key_value(start, "type", "bundle")
        || has_key(start, "pattern")
        || (has_key(start, "objects") && has_key(start, "more"))
        || has_key_value(start, "type", "indicator")
        || has_key_value(start, "type", "identity")
    {
        return Some(Format::Stix);
    }
    // Warninglists sort their keys, so a long `list` can push all but `description`
    // out of the sniffed head.
    if has_key(start, "list")
        && ["matching_attributes", "version", "description"]
            .iter()
            .any(|k| has_key(start, k))
    {
        return Some(Format::Warninglist);
    }
    if has_key(start, "info") && has_key(start, "Orgc") {
        return Some(Format::MispFeed);
    }
    if start.starts_with('[') && has_key(start, "url") && has_key(start, "company") {
        return Some(Format::PhishuntJson);
    }
    None
}

/// Lines that are neither blank nor whole-line comments.
fn meaningful(head: &str) -> impl Iterator<Item = &str> {
    head.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .take(SAMPLE_LINES)
}

fn sniff_lines(head: &str) -> Option<Format> {
    let first = meaningful(head).next().unwrap_or("");

    // Zone files: directives or an SOA near the top.
    if first.starts_with("$TTL")
        || first.starts_with("$ORIGIN")
        || head.lines().take(40).any(|l| {
            let l = l.split(';').next().unwrap_or("");
            l.split_ascii_whitespace().any(|w| w == "SOA")
        })
    {
        return Some(Format::Rpz);
    }

    // CSV with a header naming its columns (the URLhaus and ThreatFox dumps write the
    // header as a comment).
    for line in head.lines().take(20) {
        let h = line.trim_start_matches(['#', ' ']).to_ascii_lowercase();
        if h.starts_with("id,dateadded,url") {
            return Some(Format::UrlhausCsv);
        }
        if h.starts_with("\"first_seen_utc\",\"ioc_id\"") || h.starts_with("first_seen_utc,ioc_id")
        {
            return Some(Format::ThreatfoxCsv);
        }
    }
    let lower_first = first.to_ascii_lowercase();
    if lower_first.starts_with("phish_id,url") {
        return Some(Format::PhishtankCsv);
    }
    if lower_first.starts_with("url,domain,company") {
        return Some(Format::PhishuntCsv);
    }

    let sample: Vec<&str> = meaningful(head).collect();
    let share = |pred: &dyn Fn(&str) -> bool| {
        let hits = sample.iter().filter(|l| pred(l)).count();
        hits * 10 >= sample.len() * 8 && hits > 0
    };
    if share(&|l| l.starts_with("zone \"") || l.starts_with("zone\t\"")) {
        return Some(Format::BindZones);
    }
    if share(&|l| l.starts_with("local-zone:") || l.starts_with("local-data:") || l == "server:") {
        return Some(Format::Unbound);
    }
    if share(&|l| {
        l.starts_with("address=/") || l.starts_with("server=/") || l.starts_with("local=/")
    }) {
        return Some(Format::Dnsmasq);
    }
    if share(&|l| {
        l.starts_with("||")
            || l.starts_with("@@")
            || l.starts_with('|') && (l.ends_with('^') || l.ends_with('|'))
            || l.starts_with("[Adblock")
    }) {
        return Some(Format::Adblock);
    }
    if share(&|l| is_tweetfeed_row(l)) {
        return Some(Format::TweetfeedCsv);
    }
    if share(&|l| is_md5_uuid_row(l)) {
        return Some(Format::MispHashes);
    }
    if share(&|l| {
        l.split_once(',').is_some_and(|(rank, rest)| {
            !rank.is_empty() && rank.bytes().all(|b| b.is_ascii_digit()) && !rest.contains(',')
        })
    }) {
        return Some(Format::TrancoCsv);
    }
    if share(&|l| {
        let mut f = l.split_ascii_whitespace();
        f.next()
            .is_some_and(|a| a.parse::<std::net::IpAddr>().is_ok())
            && f.next().is_some()
    }) {
        return Some(Format::Hosts);
    }
    if looks_like_csv_header(first) {
        return Some(Format::Csv);
    }
    // Prose: most lines are several words. A list line is one token.
    if share(&|l| l.split_ascii_whitespace().count() >= 3) {
        return Some(Format::Prose);
    }
    Some(Format::Plain)
}

/// `2026-08-16 01:04:58,user,domain,value,…`
fn is_tweetfeed_row(l: &str) -> bool {
    let mut f = l.split(',');
    let date = f.next().unwrap_or("");
    let _user = f.next();
    let kind = f.next().unwrap_or("");
    date.len() == 19
        && date.as_bytes()[4] == b'-'
        && date.as_bytes()[10] == b' '
        && matches!(kind, "url" | "domain" | "ip" | "sha256" | "md5")
}

/// `md5hex,uuid` (MISP feed `hashes.csv`).
fn is_md5_uuid_row(l: &str) -> bool {
    l.split_once(',').is_some_and(|(h, u)| {
        h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()) && u.len() == 36
    })
}

fn looks_like_csv_header(line: &str) -> bool {
    if !line.contains(',') {
        return false;
    }
    line.split(',')
        .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
        .any(|c| {
            matches!(
                c.as_str(),
                "url"
                    | "domain"
                    | "host"
                    | "hostname"
                    | "ip"
                    | "ioc"
                    | "ioc_value"
                    | "indicator"
                    | "value"
                    | "fqdn"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_inputs() {
        for (text, want) in [
            ("evil.example\n", Format::Plain),
            ("", Format::Plain),
            ("0.0.0.0 a.example\n", Format::Hosts),
            ("||a.example^\n", Format::Adblock),
            ("address=/a.example/0.0.0.0\n", Format::Dnsmasq),
            (
                "local-zone: \"a.example.\" always_nxdomain\n",
                Format::Unbound,
            ),
            (
                "zone \"a.example\" { type master; file \"null\"; };\n",
                Format::BindZones,
            ),
            ("$TTL 300\n@ SOA a. b. 1 2 3 4 5\n", Format::Rpz),
            ("1,google.com\n2,example.com\n", Format::TrancoCsv),
            ("{\"type\": \"bundle\", \"objects\": []}", Format::Stix),
            ("{\"Event\": {}}", Format::Misp),
            (
                "{\"rrname\":\"a.example\",\"rrtype\":\"A\"}\n{\"rrname\":\"b\"}\n",
                Format::Cof,
            ),
            (
                "{\"url\":\"http://a.example/\",\"status\":\"live\"}\n",
                Format::Takedown,
            ),
            ("host,path\na.example,/x\n", Format::Csv),
            (
                "This is a document.\nIt has many words per line.\n",
                Format::Prose,
            ),
        ] {
            assert_eq!(sniff(text), Some(want), "{text:?}");
        }
    }

    #[test]
    fn unknown_json_is_none() {
        assert_eq!(sniff("{\"hello\": 1}"), None);
    }
}
