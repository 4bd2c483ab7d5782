//! Plain lists: one domain, URL, IP address or prefix per line.
//!
//! The most common feed shape (maltrail trails, Phishing Database, OpenPhish,
//! phishunt `feed.txt`, urlhaus-filter's lists, Pi-hole allowlists). Comments start
//! with `#`, `!` or `;`; a trailing ` # comment` is dropped. The value's kind is
//! decided by normalisation, so one file may mix names, URLs and addresses. Adblock
//! network rules (`||name^`, `@@…`) met in a plain list are read as such: uBlock-style
//! lists start with bare names and carry rules further down, past what sniffing sees.

use indicator::Hint;

use super::lines::{content, numbered};
use crate::{Format, Location, Parsed, Record};

pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::new(Format::Plain);
    parsed.records.reserve(text.len() / 24);
    for (n, line) in numbered(text) {
        if let Some(value) = content(line, b"#!;") {
            // uBlock-style lists mix bare names with network rules further down
            // (urlhaus-filter.txt): read those with the Adblock rule reader.
            if value.starts_with("||") || value.starts_with("@@") || value.starts_with("|http") {
                super::adblock::rule(&mut parsed, n, value);
                continue;
            }
            parsed
                .records
                .push(Record::new(Location::Line(n), value, Hint::Any));
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
    fn mixed_kinds_and_comments() {
        check(
            "# maltrail\n! adblock-style header\n\nEvil.Example.\r\nhttp://bad.example/x # note\n192.0.2.1:443\n/admin.php\n",
            expect![[r#"
                domain evil.example
                url http://bad.example/x
                ip 192.0.2.1
                reject line 7: no-host: "/admin.php" names no host
            "#]],
        );
    }

    #[test]
    fn defanged_and_wildcards() {
        check(
            "hxxps://evil[.]example/a\n*.evil.example\n",
            expect![[r#"
                url https://evil.example/a
                domain *.evil.example
            "#]],
        );
    }

    #[test]
    fn hash_inside_value_is_kept() {
        check(
            "http://evil.example/#frag\n",
            expect![[r#"
            url http://evil.example/
        "#]],
        );
    }
}
