//! Adblock / AdGuard filter lists: `||name^`, `@@` exceptions, URL rules, host lines.
//!
//! AdGuard Home, AdGuard DNS, uBlock Origin and Pi-hole v6 load blocklists in this
//! syntax, and malware feeds publish a flavour for them (urlhaus-filter's `-agh.txt`
//! and `.txt`). Only network rules that name a host or a URL become records:
//!
//! - `||name^` blocks the name and every name below it: [`Hint::Domain`] with the
//!   subdomains tag ([`SUBDOMAINS_TAG`]); `||*.name^` is a [`Hint::Wildcard`];
//!   `|name^` is the exact name; `||1.2.3.4^` and `||[2001:db8::1]^` are addresses.
//! - `||host/path^`, `|http://…|` and bare `http://…` lines are URL records.
//! - `@@` makes any of these an exception ([`Polarity::Allow`]).
//! - Options after `$` are kept as tags (`important`, `dnstype=AAAA` …), except
//!   those that make the rule something other than a block of the name
//!   (`$denyallow`, `$badfilter`, `$client`, `$ctag`, and modifiers such as
//!   `$removeparam` or `$elemhide`): such rules are diagnostics.
//! - AdGuard Home also takes bare names (blocked exactly) and hosts-file lines
//!   (`0.0.0.0 name …`); both are read, skipping the system's own names.
//! - `!` lines, `#` lines and `[Adblock Plus 2.0]` headers are comments. Cosmetic
//!   rules (`##`, `#@#` …), HTML filters (`$$`), regular expressions (`/…/`) and
//!   patterns with `*` or `^` inside are diagnostics ("unsupported rule").
//!
//! Every line is some rule, so there is no "not this format" error.

use indicator::Hint;

use super::dnsmasq::{is_local_name, with_subdomains};
use super::lines::numbered;
use crate::{Format, Location, Parsed, Polarity, ReadError, Record};

#[cfg(doc)]
use super::dnsmasq::SUBDOMAINS_TAG;

/// Options that turn a rule into something other than "block (or allow) this name":
/// the brief's AdGuard set, then browser modifiers that change requests or pages.
const NOT_A_BLOCK: &[&str] = &[
    "denyallow",
    "badfilter",
    "client",
    "ctag",
    "csp",
    "removeparam",
    "queryprune",
    "removeheader",
    "permissions",
    "cookie",
    "replace",
    "hls",
    "jsonprune",
    "xmlprune",
    "urltransform",
    "uritransform",
    "referrerpolicy",
    "generichide",
    "ghide",
    "elemhide",
    "ehide",
    "specifichide",
    "shide",
    "genericblock",
    "content",
    "jsinject",
    "urlblock",
    "extension",
    "stealth",
];

/// Markers of cosmetic and HTML-filtering rules.
const COSMETIC: &[&str] = &[
    "##", "#@#", "#?#", "#@?#", "#$#", "#@$#", "#%#", "#@%#", "$$", "$@$",
];

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    let mut parsed = Parsed::new(Format::Adblock);
    parsed.records.reserve(text.len() / 24);
    for (n, line) in numbered(text) {
        let line = line.trim();
        let Some(&first) = line.as_bytes().first() else {
            continue;
        };
        if first == b'!' || is_header(line) {
            continue;
        }
        if COSMETIC.iter().any(|m| line.contains(m)) {
            parsed.diag(
                Location::Line(n),
                format!("unsupported rule (cosmetic or HTML filter): {line:?}"),
            );
            continue;
        }
        if first == b'#' {
            continue;
        }
        rule(&mut parsed, n, line);
    }
    Ok(parsed)
}

/// `[Adblock Plus 2.0]`, `[uBlock Origin]` …
fn is_header(line: &str) -> bool {
    line.len() > 2
        && line.starts_with('[')
        && line.ends_with(']')
        && line.as_bytes().get(1).is_some_and(u8::is_ascii_alphabetic)
}

pub(crate) fn rule(parsed: &mut Parsed, n: u32, line: &str) {
    let at = || Location::Line(n);
    let (polarity, body) = match line.strip_prefix("@@") {
        Some(rest) => (Polarity::Allow, rest),
        None => (Polarity::Block, line),
    };
    if body.bytes().any(|b| b.is_ascii_whitespace()) {
        if polarity == Polarity::Block {
            hosts_line(parsed, n, body);
        } else {
            parsed.diag(at(), format!("unsupported rule: {line:?}"));
        }
        return;
    }
    let (pattern, options) = split_options(body);
    let mut tags = Vec::new();
    if let Some(options) = options {
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let name = option.trim_start_matches('~');
            let name = name.split_once('=').map_or(name, |(k, _)| k);
            if NOT_A_BLOCK.iter().any(|x| x.eq_ignore_ascii_case(name)) {
                parsed.diag(at(), format!("unsupported rule (${name}): {line:?}"));
                return;
            }
            tags.push(option.to_owned());
        }
    }
    if pattern.len() > 1 && pattern.starts_with('/') && pattern.ends_with('/') {
        parsed.diag(
            at(),
            format!("unsupported rule (regular expression): {line:?}"),
        );
        return;
    }
    let Some((value, hint, subdomains)) = classify(pattern) else {
        parsed.diag(at(), format!("unsupported rule (pattern): {line:?}"));
        return;
    };
    let mut record = Record::new(at(), value, hint);
    record.polarity = polarity;
    if subdomains {
        record = with_subdomains(record);
    }
    if !tags.is_empty() {
        record.meta_mut().tags.extend(tags);
    }
    parsed.records.push(record);
}

/// Splits `pattern$options` at the last `$` when what follows looks like options.
fn split_options(body: &str) -> (&str, Option<&str>) {
    match body.rsplit_once('$') {
        Some((pattern, options))
            if options
                .as_bytes()
                .first()
                .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'~') =>
        {
            (pattern, Some(options))
        }
        _ => (body, None),
    }
}

/// The value, its hint and whether the rule covers subdomains; `None` for patterns
/// that name no single host or URL.
fn classify(pattern: &str) -> Option<(&str, Hint, bool)> {
    let (rest, anchor) = if let Some(rest) = pattern.strip_prefix("||") {
        (rest, Anchor::Domain)
    } else if let Some(rest) = pattern.strip_prefix('|') {
        (rest, Anchor::Start)
    } else {
        (pattern, Anchor::None)
    };
    let rest = rest.strip_suffix('|').unwrap_or(rest);
    let rest = rest.strip_suffix('^').unwrap_or(rest);
    if rest.is_empty() {
        return None;
    }
    if let Some(below) = rest.strip_prefix("*.") {
        return plain(below).then_some((rest, Hint::Wildcard, false));
    }
    if !plain(rest) {
        return None;
    }
    if rest.contains('/') || rest.contains('?') {
        return Some((rest, Hint::Url, false));
    }
    if rest.starts_with('[') && rest.ends_with(']') {
        return Some((rest, Hint::Ip, false));
    }
    // An address does not have "subdomains".
    let subdomains = anchor == Anchor::Domain && !looks_like_ipv4(rest);
    Some((rest, Hint::Domain, subdomains))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    /// `||`: the name or any name below it.
    Domain,
    /// `|`: the start of the address.
    Start,
    None,
}

/// No wildcard, separator or anchor left inside.
fn plain(s: &str) -> bool {
    !s.bytes().any(|b| matches!(b, b'*' | b'^' | b'|'))
}

fn looks_like_ipv4(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// `0.0.0.0 name [name…]` as AdGuard Home accepts it.
fn hosts_line(parsed: &mut Parsed, n: u32, line: &str) {
    let line = match memchr::memchr(b'#', line.as_bytes()) {
        Some(i) => line.get(..i).unwrap_or(line),
        None => line,
    };
    let mut fields = line.split_ascii_whitespace();
    let is_address = fields
        .next()
        .is_some_and(|a| a.parse::<std::net::IpAddr>().is_ok());
    if !is_address {
        parsed.diag(Location::Line(n), format!("unsupported rule: {line:?}"));
        return;
    }
    for name in fields.filter(|name| !is_local_name(name)) {
        parsed
            .records
            .push(Record::new(Location::Line(n), name, Hint::Domain));
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    #[track_caller]
    fn check(input: &str, expect: Expect) {
        let actual = match super::parse(input) {
            Ok(parsed) => parsed.dump(),
            Err(e) => format!("error {e}\n"),
        };
        expect.assert_eq(&actual);
    }

    #[track_caller]
    fn tags(input: &str) -> Vec<Vec<String>> {
        super::parse(input)
            .unwrap_or_else(|e| panic!("{e}"))
            .records
            .iter()
            .map(|r| r.meta.as_ref().map(|m| m.tags.clone()).unwrap_or_default())
            .collect()
    }

    #[test]
    fn domains_and_exceptions() {
        check(
            "[Adblock Plus 2.0]\n! Title: x\n||a.example^\n||B.Example^$important\n@@||good.example^\n|exact.example^\n||*.w.example^\n||1.2.3.4^\n||[2001:db8::1]^\n||c.example\n||d.example^|\n",
            expect![[r#"
                domain a.example
                domain b.example
                allow domain good.example
                domain exact.example
                domain *.w.example
                ip 1.2.3.4
                ip 2001:db8::1
                domain c.example
                domain d.example
            "#]],
        );
    }

    #[test]
    fn options_become_tags() {
        assert_eq!(
            tags("||a.example^$important,dnstype=AAAA\n|b.example^\n||1.2.3.4^$all\n"),
            [
                vec!["subdomains", "important", "dnstype=AAAA"],
                vec![],
                vec!["all"],
            ]
        );
    }

    #[test]
    fn unsupported_rules() {
        check(
            "||a.example^$denyallow=b.example\n||a.example^$badfilter\n||a.example^$client=192.168.1.1\n||a.example^$ctag=device_phone\n@@||a.example^$elemhide\nexample.com##.ad\n##.banner\nexample.com#@#.ad\nexample.com$$script\n/ads[0-9]+/\n||ads*.example^\n||a.example^*/x\n$script,third-party\n||^\n@@0.0.0.0 a.example\n",
            expect![[r###"
                diag line 1: unsupported rule ($denyallow): "||a.example^$denyallow=b.example"
                diag line 2: unsupported rule ($badfilter): "||a.example^$badfilter"
                diag line 3: unsupported rule ($client): "||a.example^$client=192.168.1.1"
                diag line 4: unsupported rule ($ctag): "||a.example^$ctag=device_phone"
                diag line 5: unsupported rule ($elemhide): "@@||a.example^$elemhide"
                diag line 6: unsupported rule (cosmetic or HTML filter): "example.com##.ad"
                diag line 7: unsupported rule (cosmetic or HTML filter): "##.banner"
                diag line 8: unsupported rule (cosmetic or HTML filter): "example.com#@#.ad"
                diag line 9: unsupported rule (cosmetic or HTML filter): "example.com$$script"
                diag line 10: unsupported rule (regular expression): "/ads[0-9]+/"
                diag line 11: unsupported rule (pattern): "||ads*.example^"
                diag line 12: unsupported rule (pattern): "||a.example^*/x"
                diag line 13: unsupported rule (pattern): "$script,third-party"
                diag line 14: unsupported rule (pattern): "||^"
                diag line 15: unsupported rule: "@@0.0.0.0 a.example"
            "###]],
        );
    }

    #[test]
    fn urls() {
        check(
            "||evil.example/path/x.exe^$all\n|http://evil.example/login.php|\nhttps://evil.example/a?b=c\n@@|https://good.example/ok|\n||evil.example/q?x=1\n",
            expect![[r#"
                url http://evil.example/path/x.exe
                url http://evil.example/login.php
                url https://evil.example/a?b=c
                allow url https://good.example/ok
                url http://evil.example/q?x=1
            "#]],
        );
    }

    #[test]
    fn agh_host_lines_and_comments() {
        check(
            "# AdGuard Home comment\nbare.example\n0.0.0.0 h1.example h2.example # tail\n127.0.0.1 localhost\n::1 ip6-localhost\n1.2.3.4\nnot an address line\n",
            expect![[r#"
                domain bare.example
                domain h1.example
                domain h2.example
                ip 1.2.3.4
                diag line 7: unsupported rule: "not an address line"
            "#]],
        );
    }

    #[test]
    fn only_double_pipe_names_cover_subdomains() {
        assert_eq!(
            tags("||a.example^\n|b.example^\nc.example\n0.0.0.0 d.example\n@@||e.example^\n"),
            [
                vec!["subdomains"],
                vec![],
                vec![],
                vec![],
                vec!["subdomains"],
            ]
        );
    }
}
