//! dnsmasq blocklists: `address=/name/…`, `server=/name/` and `local=/name/` lines.
//!
//! Routers (OpenWrt, Pi-hole before FTL v6, pfSense) load blocklists as dnsmasq
//! configuration snippets, so feeds such as urlhaus-filter publish a `-dnsmasq.conf`
//! flavour. dnsmasq matches a `/name/` pattern against the name *and every name below
//! it*, so each record says so in [`Meta::tags`](crate::Meta) ([`SUBDOMAINS_TAG`]) and keeps
//! [`Hint::Domain`]: how far a block extends is the hub's policy, not the reader's.
//!
//! What each line means (dnsmasq(8), `--address` and `--server`):
//! - `address=/d/` (NXDOMAIN), `address=/d/#` (null address), `address=/d/<any IP>`
//!   (sinkhole or block page): a block, like a hosts line with any address.
//! - `server=/d/` and `local=/d/`: answered from local data only, so NXDOMAIN: a block.
//! - `server=/d/#`: "use the standard servers" — an exception carved out of a wider
//!   block, read as [`Polarity::Allow`](crate::Polarity).
//! - `server=/d/1.2.3.4`: conditional forwarding. It says where to ask, not that the
//!   name is bad (a partner may forward to a sinkhole resolver, but the line cannot
//!   tell), so it is a diagnostic and no record.
//! - `/*.d/` (dnsmasq 2.86+, a suffix match) covers strictly the names below `d`: a
//!   [`Hint::Wildcard`]. Other `*` patterns (`/*d/` also matches `superd`) and `/#/`
//!   (every name) cannot be expressed as an indicator and are diagnostics.
//!
//! Any other directive (`cache-size=…`, `domain-needed`) is a diagnostic, so a whole
//! `dnsmasq.conf` can be read and shows what was skipped. An input with no
//! `address=`, `server=` or `local=` line at all is not a dnsmasq blocklist: an error.

use indicator::Hint;

use super::hosts::LOCAL_NAMES;
use super::lines::{content, numbered};
use crate::{Format, Location, Parsed, Polarity, ReadError, Record};

/// The tag a resolver-configuration reader puts in [`Meta::tags`](crate::Meta) when the rule it
/// read covers the name and every name below it (dnsmasq `/d/`, Adblock `||d^`,
/// Unbound `local-zone:`, BIND `zone`). The record still carries [`Hint::Domain`].
pub const SUBDOMAINS_TAG: &str = "subdomains";

/// Marks `record` as covering the names below its value (see [`SUBDOMAINS_TAG`]).
pub(crate) fn with_subdomains(mut record: Record) -> Record {
    record.meta_mut().tags.push(SUBDOMAINS_TAG.to_owned());
    record
}

/// True for the names every system declares for itself (`localhost`, `ip6-*` …):
/// resolver configs carry them to keep them local, never to block them.
pub(crate) fn is_local_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    LOCAL_NAMES.iter().any(|l| l.eq_ignore_ascii_case(name))
}

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    let mut parsed = Parsed::new(Format::Dnsmasq);
    parsed.records.reserve(text.len() / 32);
    let mut first_line: Option<(u32, &str)> = None;
    let mut recognised = false;
    for (n, line) in numbered(text) {
        let Some(line) = content(line, b"#") else {
            continue;
        };
        first_line.get_or_insert((n, line));
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim_end(), v.trim_start()),
            None => (line, ""),
        };
        match key {
            "address" => {
                recognised = true;
                address(&mut parsed, n, value);
            }
            "server" | "local" => {
                recognised = true;
                server(&mut parsed, n, key, value);
            }
            _ => parsed.diag(
                Location::Line(n),
                format!("directive {key:?} does not block a name, skipped"),
            ),
        }
    }
    match first_line {
        Some((n, line)) if !recognised => Err(ReadError::at(
            Location::Line(n),
            format!(
                "not a dnsmasq blocklist: no address=, server= or local= line (first line {line:?})"
            ),
        )),
        _ => Ok(parsed),
    }
}

/// `address=/d/[d2/…]<target>`: every name is blocked whatever the target address.
fn address(parsed: &mut Parsed, n: u32, value: &str) {
    let Some((names, target)) = split_spec(parsed, n, "address", value) else {
        return;
    };
    if !(target.is_empty() || target == "#" || target.parse::<std::net::IpAddr>().is_ok()) {
        parsed.diag(
            Location::Line(n),
            format!("address={value}: {target:?} is not an address"),
        );
        return;
    }
    push_names(parsed, n, names, Polarity::Block);
}

/// `server=/d/[d2/…][<upstream>]` and its synonym `local=`.
fn server(parsed: &mut Parsed, n: u32, key: &str, value: &str) {
    if !value.starts_with('/') {
        parsed.diag(
            Location::Line(n),
            format!("{key}={value} names an upstream server, not a blocked name; skipped"),
        );
        return;
    }
    let Some((names, target)) = split_spec(parsed, n, key, value) else {
        return;
    };
    let polarity = match target {
        "" => Polarity::Block,
        "#" => Polarity::Allow,
        upstream => {
            parsed.diag(
                Location::Line(n),
                format!("{key}={value} forwards to {upstream}, which is not a block; skipped"),
            );
            return;
        }
    };
    push_names(parsed, n, names, polarity);
}

/// Splits `/a/b/target` into `("a/b", "target")`.
fn split_spec<'a>(
    parsed: &mut Parsed,
    n: u32,
    key: &str,
    value: &'a str,
) -> Option<(&'a str, &'a str)> {
    let split = value
        .strip_prefix('/')
        .and_then(|spec| spec.rsplit_once('/'));
    if split.is_none() {
        parsed.diag(
            Location::Line(n),
            format!("{key}={value}: expected /name/ then an optional target"),
        );
    }
    split
}

fn push_names(parsed: &mut Parsed, n: u32, names: &str, polarity: Polarity) {
    for name in names.split('/') {
        let name = name.trim();
        let (value, hint) = if name.is_empty() {
            parsed.diag(
                Location::Line(n),
                "empty name (dnsmasq: unqualified names only) skipped",
            );
            continue;
        } else if name == "#" {
            parsed.diag(Location::Line(n), "/#/ matches every name, skipped");
            continue;
        } else if name.starts_with("*.") {
            (name, Hint::Wildcard)
        } else if name.starts_with('*') {
            parsed.diag(
                Location::Line(n),
                format!("pattern {name:?} matches any name ending in its text, not supported"),
            );
            continue;
        } else {
            // `/.d/` is the historical spelling of `/d/`.
            (name.strip_prefix('.').unwrap_or(name), Hint::Domain)
        };
        if is_local_name(value) {
            continue;
        }
        let mut record = Record::new(Location::Line(n), value, hint);
        record.polarity = polarity;
        if hint == Hint::Domain {
            record = with_subdomains(record);
        }
        parsed.records.push(record);
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
    fn blocking_forms() {
        check(
            "# list\naddress=/a.example/0.0.0.0\naddress=/b.example/\naddress=/c.example/::\naddress=/d.example/#\nlocal=/e.example/\nserver=/f.example/\naddress=/g.example/192.0.2.1\n",
            expect![[r#"
                domain a.example
                domain b.example
                domain c.example
                domain d.example
                domain e.example
                domain f.example
                domain g.example
            "#]],
        );
    }

    #[test]
    fn several_names_on_one_line() {
        check(
            "address=/a.example/B.Example./0.0.0.0\nserver=/c.example/d.example/\n",
            expect![[r#"
                domain a.example
                domain b.example
                domain c.example
                domain d.example
            "#]],
        );
    }

    #[test]
    fn subdomains_are_tagged() {
        let parsed = super::parse("address=/a.example/\naddress=/*.b.example/\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let tags: Vec<_> = parsed
            .records
            .iter()
            .map(|r| r.meta.as_ref().map(|m| m.tags.clone()).unwrap_or_default())
            .collect();
        assert_eq!(tags, [vec![super::SUBDOMAINS_TAG.to_owned()], vec![]]);
    }

    #[test]
    fn exceptions_and_forwarding() {
        check(
            "server=/good.example/#\nserver=/corp.example/10.0.0.1\nlocal=/lan/192.168.1.1#5353\nserver=8.8.8.8\naddress=/bad.example/\n",
            expect![[r#"
                allow domain good.example
                domain bad.example
                diag line 2: server=/corp.example/10.0.0.1 forwards to 10.0.0.1, which is not a block; skipped
                diag line 3: local=/lan/192.168.1.1#5353 forwards to 192.168.1.1#5353, which is not a block; skipped
                diag line 4: server=8.8.8.8 names an upstream server, not a blocked name; skipped
            "#]],
        );
    }

    #[test]
    fn patterns() {
        check(
            "address=/*.w.example/\naddress=/*w.example/\naddress=/#/0.0.0.0\naddress=//\naddress=/.old.example/\n",
            expect![[r#"
                domain *.w.example
                domain old.example
                diag line 2: pattern "*w.example" matches any name ending in its text, not supported
                diag line 3: /#/ matches every name, skipped
                diag line 4: empty name (dnsmasq: unqualified names only) skipped
            "#]],
        );
    }

    #[test]
    fn bad_lines_are_diagnostics() {
        check(
            "address=/a.example/nope\naddress=a.example\naddress=/unterminated\ndomain-needed\ncache-size=1000\naddress=/bad_-.example/\naddress=/localhost/127.0.0.1\naddress=/ok.example/ # trailing comment\n",
            expect![[r#"
                reject line 6: invalid-domain: "bad_-.example": label starts or ends with a hyphen
                domain ok.example
                diag line 1: address=/a.example/nope: "nope" is not an address
                diag line 2: address=a.example: expected /name/ then an optional target
                diag line 3: address=/unterminated: expected /name/ then an optional target
                diag line 4: directive "domain-needed" does not block a name, skipped
                diag line 5: directive "cache-size" does not block a name, skipped
            "#]],
        );
    }

    #[test]
    fn not_dnsmasq_is_an_error() {
        check(
            "# header\nevil.example\nbad.example\n",
            expect![[r#"
                error line 2: not a dnsmasq blocklist: no address=, server= or local= line (first line "evil.example")
            "#]],
        );
        check("# only comments\n\n", expect![""]);
    }
}
