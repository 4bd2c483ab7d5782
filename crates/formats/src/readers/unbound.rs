//! Unbound blocklists: `local-zone:` and `local-data:` lines.
//!
//! Unbound is the resolver of pfSense, OPNsense and many distributions; blocklists
//! for it (urlhaus-filter's `-unbound.conf`, pfBlockerNG exports) are snippets of
//! `unbound.conf` included in the `server:` clause. A `local-zone:` covers its name
//! and every name below it, so those records carry the subdomains tag
//! ([`SUBDOMAINS_TAG`]); a `local-data:` record answers for its exact owner name only.
//!
//! Zone types, from unbound.conf(5):
//! - blocks: `deny`, `refuse`, `static`, `redirect`, `inform_deny`, `inform_redirect`,
//!   `always_refuse`, `always_nxdomain`, `always_null`, `always_deny` — each answers
//!   with something other than the real data;
//! - exceptions ([`Polarity::Allow`]): `transparent`, `typetransparent`,
//!   `always_transparent`, `nodefault` — they let the real answer through below a
//!   wider block;
//! - `inform`, `block_a`, `noview`, `ipset` neither block nor exempt: diagnostics.
//!
//! Names may be quoted or not, with or without the trailing dot. Unbound has no
//! wildcards in `local-zone:`/`local-data:` (`*` is a literal label there), so such
//! lines are diagnostics. Clause headers (`server:`) are accepted; other directives
//! are diagnostics. An input without a single `local-zone:`, `local-data:` or clause
//! header is not an Unbound configuration: an error.

use indicator::Hint;

use super::dnsmasq::{is_local_name, with_subdomains};
use super::lines::numbered;
use crate::{Format, Location, Parsed, Polarity, ReadError, Record};

#[cfg(doc)]
use super::dnsmasq::SUBDOMAINS_TAG;

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    let mut parsed = Parsed::new(Format::Unbound);
    parsed.records.reserve(text.len() / 40);
    let mut first_line: Option<(u32, &str)> = None;
    let mut recognised = false;
    for (n, line) in numbered(text) {
        let line = strip_comment(line).trim();
        if line.is_empty() {
            continue;
        }
        first_line.get_or_insert((n, line));
        let Some((key, value)) = line.split_once(':') else {
            parsed.diag(
                Location::Line(n),
                format!("expected \"name: value\", found {line:?}"),
            );
            continue;
        };
        let (key, value) = (key.trim_end(), value.trim_start());
        match key {
            "local-zone" => {
                recognised = true;
                local_zone(&mut parsed, n, value);
            }
            "local-data" => {
                recognised = true;
                local_data(&mut parsed, n, value);
            }
            // A clause header: `server:`, `view:`, `forward-zone:` …
            _ if value.is_empty() && is_keyword(key) => recognised = true,
            _ if is_keyword(key) => parsed.diag(
                Location::Line(n),
                format!("directive {key:?} does not block a name, skipped"),
            ),
            _ => parsed.diag(
                Location::Line(n),
                format!("expected \"name: value\", found {line:?}"),
            ),
        }
    }
    match first_line {
        Some((n, line)) if !recognised => Err(ReadError::at(
            Location::Line(n),
            format!(
                "not an Unbound configuration: no local-zone: or local-data: line (first line {line:?})"
            ),
        )),
        _ => Ok(parsed),
    }
}

/// The line without its `#` comment; a `#` inside quotes is data (`TXT "#1"`).
fn strip_comment(line: &str) -> &str {
    if memchr::memchr(b'#', line.as_bytes()).is_none() {
        return line;
    }
    let mut quote = None;
    for (i, b) in line.bytes().enumerate() {
        match quote {
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'#' => return &line[..i],
            Some(q) if b == q => quote = None,
            _ => {}
        }
    }
    line
}

/// Unbound option names are lower-case words with hyphens.
fn is_keyword(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What a `local-zone:` type does to the names it covers.
enum ZoneKind {
    Block,
    Allow,
    Neither,
}

fn zone_kind(kind: &str) -> Option<ZoneKind> {
    Some(match kind {
        "deny" | "refuse" | "static" | "redirect" | "inform_deny" | "inform_redirect"
        | "always_refuse" | "always_nxdomain" | "always_null" | "always_deny" => ZoneKind::Block,
        "transparent" | "typetransparent" | "always_transparent" | "nodefault" => ZoneKind::Allow,
        "inform" | "block_a" | "noview" | "ipset" => ZoneKind::Neither,
        _ => return None,
    })
}

/// `local-zone: "name." type`
fn local_zone(parsed: &mut Parsed, n: u32, value: &str) {
    let Some((name, rest)) = take_quoted(parsed, n, value) else {
        return;
    };
    let Some(kind) = rest.split_ascii_whitespace().next() else {
        parsed.diag(
            Location::Line(n),
            format!("local-zone {name:?} has no type"),
        );
        return;
    };
    let polarity = match zone_kind(kind) {
        Some(ZoneKind::Block) => Polarity::Block,
        Some(ZoneKind::Allow) => Polarity::Allow,
        Some(ZoneKind::Neither) => {
            parsed.diag(
                Location::Line(n),
                format!("local-zone type {kind} neither blocks nor exempts {name:?}, skipped"),
            );
            return;
        }
        None => {
            parsed.diag(
                Location::Line(n),
                format!("unknown local-zone type {kind:?}"),
            );
            return;
        }
    };
    if let Some(name) = usable_name(parsed, n, name) {
        let mut record = with_subdomains(Record::new(Location::Line(n), name, Hint::Domain));
        record.polarity = polarity;
        parsed.records.push(record);
    }
}

/// `local-data: "name. [ttl] [class] TYPE rdata"`: the owner name is answered locally.
fn local_data(parsed: &mut Parsed, n: u32, value: &str) {
    let Some((rr, _)) = take_quoted(parsed, n, value) else {
        return;
    };
    let mut fields = rr.split_ascii_whitespace();
    let (Some(name), Some(_type)) = (fields.next(), fields.next()) else {
        parsed.diag(
            Location::Line(n),
            format!("local-data {rr:?} is not a resource record"),
        );
        return;
    };
    if let Some(name) = usable_name(parsed, n, name) {
        parsed
            .records
            .push(Record::new(Location::Line(n), name, Hint::Domain));
    }
}

/// The name unless it is local, the root or a literal `*` label (diagnosed).
fn usable_name<'a>(parsed: &mut Parsed, n: u32, name: &'a str) -> Option<&'a str> {
    if is_local_name(name) {
        return None;
    }
    if name == "." {
        parsed.diag(
            Location::Line(n),
            "the root zone covers every name, skipped",
        );
        return None;
    }
    if name.starts_with('*') {
        parsed.diag(
            Location::Line(n),
            format!("{name:?}: Unbound has no wildcards here (\"*\" is a literal label), skipped"),
        );
        return None;
    }
    Some(name)
}

/// The first value: inside `"…"` or `'…'`, or up to white space. Returns it and the
/// rest of the line.
fn take_quoted<'a>(parsed: &mut Parsed, n: u32, value: &'a str) -> Option<(&'a str, &'a str)> {
    let quote = match value.as_bytes().first() {
        Some(&q @ (b'"' | b'\'')) => q as char,
        Some(_) => {
            let end = value
                .find(|c: char| c.is_ascii_whitespace())
                .unwrap_or(value.len());
            return Some(value.split_at(end));
        }
        None => {
            parsed.diag(Location::Line(n), "missing value");
            return None;
        }
    };
    let inner = &value[1..];
    match inner.split_once(quote) {
        Some((quoted, rest)) => Some((quoted.trim(), rest)),
        None => {
            parsed.diag(
                Location::Line(n),
                format!("unterminated quote in {value:?}"),
            );
            None
        }
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

    #[test]
    fn zones_and_data() {
        check(
            "server:\n  local-zone: \"a.example.\" always_nxdomain\n  local-zone: b.example refuse # note\n  local-data: \"c.example. A 0.0.0.0\"\n  local-data: 'd.example 3600 IN TXT \"blocked #1\"'\nlocal-zone: \"e.example\" redirect\n",
            expect![[r#"
                domain a.example
                domain b.example
                domain c.example
                domain d.example
                domain e.example
            "#]],
        );
    }

    #[test]
    fn every_zone_type() {
        check(
            "local-zone: \"a.example\" deny\nlocal-zone: \"b.example\" static\nlocal-zone: \"c.example\" inform_deny\nlocal-zone: \"d.example\" always_refuse\nlocal-zone: \"e.example\" always_null\nlocal-zone: \"f.example\" always_deny\nlocal-zone: \"g.example\" transparent\nlocal-zone: \"h.example\" typetransparent\nlocal-zone: \"i.example\" always_transparent\nlocal-zone: \"j.example\" nodefault\nlocal-zone: \"k.example\" inform\nlocal-zone: \"l.example\" sometimes_nxdomain\nlocal-zone: \"m.example\"\n",
            expect![[r#"
                domain a.example
                domain b.example
                domain c.example
                domain d.example
                domain e.example
                domain f.example
                allow domain g.example
                allow domain h.example
                allow domain i.example
                allow domain j.example
                diag line 11: local-zone type inform neither blocks nor exempts "k.example", skipped
                diag line 12: unknown local-zone type "sometimes_nxdomain"
                diag line 13: local-zone "m.example" has no type
            "#]],
        );
    }

    #[test]
    fn only_zones_are_tagged_subdomains() {
        let parsed =
            super::parse("local-zone: \"a.example\" static\nlocal-data: \"a.example A 0.0.0.0\"\n")
                .unwrap_or_else(|e| panic!("{e}"));
        let tagged: Vec<bool> = parsed.records.iter().map(|r| r.meta.is_some()).collect();
        assert_eq!(tagged, [true, false]);
    }

    #[test]
    fn odd_lines() {
        check(
            "server:\n  verbosity: 1\nlocal-zone: \"localhost.\" nodefault\nlocal-data: \"localhost. A 127.0.0.1\"\nlocal-zone: \".\" refuse\nlocal-zone: \"*.w.example\" always_nxdomain\nlocal-data: \"x.example\"\nlocal-data: \"y.example A 0.0.0.0\nlocal-zone:\nevil.example\nlocal-data: \"bad..example AAAA ::\"\n",
            expect![[r#"
                reject line 11: invalid-domain: "bad..example": empty label
                diag line 2: directive "verbosity" does not block a name, skipped
                diag line 5: the root zone covers every name, skipped
                diag line 6: "*.w.example": Unbound has no wildcards here ("*" is a literal label), skipped
                diag line 7: local-data "x.example" is not a resource record
                diag line 8: unterminated quote in "\"y.example A 0.0.0.0"
                diag line 9: missing value
                diag line 10: expected "name: value", found "evil.example"
            "#]],
        );
    }

    #[test]
    fn not_unbound_is_an_error() {
        check(
            "0.0.0.0 evil.example\n",
            expect![[r#"
                error line 1: not an Unbound configuration: no local-zone: or local-data: line (first line "0.0.0.0 evil.example")
            "#]],
        );
    }
}
