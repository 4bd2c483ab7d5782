//! Hosts files: `0.0.0.0 name [name…]`.
//!
//! The oldest blocklist format (Pi-hole, Steven Black, urlhaus-filter `-hosts.txt`).
//! The address is the sink (`0.0.0.0`, `127.0.0.1`, `::`, `::1`), every name after it
//! is blocked. The loopback names every system hosts file carries (`localhost`,
//! `broadcasthost`, `ip6-*` …) are skipped, never blocked.

use indicator::Hint;

use super::lines::{content, numbered};
use crate::{Format, Location, Parsed, Record};

/// Names that belong to the local system, found in every hosts file.
pub(crate) const LOCAL_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::new(Format::Hosts);
    parsed.records.reserve(text.len() / 32);
    for (n, line) in numbered(text) {
        let Some(line) = content(line, b"#") else {
            continue;
        };
        let mut fields = line.split_ascii_whitespace();
        let Some(address) = fields.next() else {
            continue;
        };
        if address.parse::<std::net::IpAddr>().is_err() {
            parsed.diag(
                Location::Line(n),
                format!("expected an address then names, found {address:?}"),
            );
            continue;
        }
        let mut any = false;
        for name in fields {
            if name.starts_with('#') {
                break;
            }
            any = true;
            if LOCAL_NAMES.iter().any(|l| l.eq_ignore_ascii_case(name)) {
                continue;
            }
            parsed
                .records
                .push(Record::new(Location::Line(n), name, Hint::Domain));
        }
        if !any {
            parsed.diag(Location::Line(n), format!("address {address} has no names"));
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    #[track_caller]
    fn check(input: &str, expect: Expect) {
        expect.assert_eq(&super::parse(input).dump());
    }

    #[test]
    fn skips_localhost() {
        check(
            "0.0.0.0 ads.example.com # x\n127.0.0.1 localhost\n::1 ip6-localhost ip6-loopback\n",
            expect![[r#"
                domain ads.example.com
            "#]],
        );
    }

    #[test]
    fn several_names_and_sinks() {
        check(
            "0.0.0.0 a.example b.example\n127.0.0.1\tc.example\n:: d.example#x\n",
            expect![[r#"
                domain a.example
                domain b.example
                domain c.example
                reject line 3: invalid-domain: "d.example#x": invalid character '#' in name
            "#]],
        );
    }

    #[test]
    fn bad_lines_are_diagnostics() {
        check(
            "evil.example\n0.0.0.0\n0.0.0.0 ok.example\n",
            expect![[r#"
                domain ok.example
                diag line 1: expected an address then names, found "evil.example"
                diag line 2: address 0.0.0.0 has no names
            "#]],
        );
    }
}
