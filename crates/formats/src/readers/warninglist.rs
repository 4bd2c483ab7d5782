//! MISP warninglists: `{name, version, description, matching_attributes, type, list}`.
//!
//! Warninglists are the community's record of values that look like indicators but
//! must never be blocked — top sites, public resolvers, CDNs, sinkholes, RFC 1918
//! ranges. The hub reads them as allow entries that guard its blocklists against
//! false positives, so every entry is [`Polarity::Allow`](crate::Polarity::Allow).
//!
//! The list `type` decides what an entry matches: `string` is exact, `hostname` is
//! the name and its subdomains (tag `subdomains`), `cidr` an address or prefix.
//! `substring` and `regex` entries are patterns, not values: they are kept with a
//! tag saying so, and normalisation mostly rejects them — honest, since the hub does
//! not match patterns. A leading `.` (`.google.ad`, in both `string` and `hostname`
//! lists) is MISP's way of writing "this domain and below", so it becomes a
//! `subdomains` entry. Lists whose `matching_attributes` name no network attribute
//! (empty-file hashes, e-mail addresses) hold nothing a resolver sees: they give one
//! diagnostic and no records rather than stray allow entries (`3::` in the
//! empty-hashes list is a valid IPv6 address).
//!
//! Every record carries the list's name as its description and the list type as the
//! tag `warninglist-type:<type>`.

use indicator::Hint;
use serde::Deserialize;
use serde_json::Value;

use crate::{Format, Location, Meta, Parsed, ReadError, Record};

#[derive(Debug, Deserialize)]
struct Warninglist {
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    matching_attributes: Vec<Value>,
    list: Vec<Value>,
}

/// How entries of a list type are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Hostname,
    Cidr,
    Substring,
    Regex,
}

impl Kind {
    fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "string" => Kind::String,
            "hostname" => Kind::Hostname,
            "cidr" => Kind::Cidr,
            "substring" => Kind::Substring,
            "regex" => Kind::Regex,
            _ => return None,
        })
    }
}

/// MISP attribute types whose values a resolver or firewall sees.
fn is_network_attribute(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    n.starts_with("ip-")
        || n.starts_with("domain")
        || n.starts_with("hostname")
        || matches!(n.as_str(), "url" | "uri" | "link")
}

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    if !text.trim_start().starts_with('{') {
        return Err(ReadError::at(
            Location::Path("$".to_owned()),
            "expected a warninglist object {\"name\", \"type\", \"list\": […]}",
        ));
    }
    let list: Warninglist = serde_json::from_str(text).map_err(|e| ReadError::json(&e))?;
    let type_name = list.kind.as_deref().unwrap_or("string");
    let kind = Kind::from_name(type_name).ok_or_else(|| {
        ReadError::at(
            Location::Path("$.type".to_owned()),
            format!(
                "unknown warninglist type {type_name:?} (string, hostname, cidr, substring or regex)"
            ),
        )
    })?;
    let name = list
        .name
        .or(list.description)
        .unwrap_or_else(|| "MISP warninglist".to_owned());
    let mut parsed = Parsed::new(Format::Warninglist);

    let attributes: Vec<&str> = list
        .matching_attributes
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !attributes.is_empty() && !attributes.iter().any(|a| is_network_attribute(a)) {
        parsed.diag(
            Location::Path("$.matching_attributes".to_owned()),
            format!(
                "warninglist {name:?} matches {} only: its {} entries are not network indicators",
                attributes.join(", "),
                list.list.len()
            ),
        );
        return Ok(parsed);
    }

    let type_tag = format!("warninglist-type:{type_name}");
    parsed.records.reserve(list.list.len());
    for (i, entry) in list.list.iter().enumerate() {
        let at = || Location::Path(format!("$.list[{i}]"));
        let Some(entry) = entry.as_str().map(str::trim) else {
            parsed.diag(at(), "expected a string");
            continue;
        };
        if entry.is_empty() {
            parsed.diag(at(), "empty entry");
            continue;
        }
        let mut tags = vec![type_tag.clone()];
        let (value, hint) = match kind {
            Kind::String | Kind::Hostname => {
                let (value, below) = match entry.strip_prefix('.') {
                    Some(rest) => (rest, true),
                    None => (entry, false),
                };
                if kind == Kind::Hostname || below {
                    tags.push("subdomains".to_owned());
                    (value, Hint::Domain)
                } else {
                    (value, Hint::Any)
                }
            }
            Kind::Cidr => (entry, Hint::Cidr),
            Kind::Substring => {
                tags.push("substring".to_owned());
                (entry, Hint::Any)
            }
            Kind::Regex => {
                tags.push("regex".to_owned());
                (entry, Hint::Any)
            }
        };
        let meta = Meta {
            tags,
            description: Some(name.clone()),
            ..Meta::default()
        };
        parsed
            .records
            .push(Record::new(at(), value, hint).allow().with_meta(meta));
    }
    Ok(parsed)
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
    fn hostname_list() {
        check(
            r#"{"name": "Banks", "version": 3, "description": "d", "matching_attributes": ["domain", "hostname"],
               "type": "hostname", "list": [".02bancorp.com", "Bank.Example.", "", 7, "not a name"]}"#,
            expect![[r#"
                allow domain 02bancorp.com
                  tags=warninglist-type:hostname|subdomains desc=Banks
                allow domain bank.example
                  tags=warninglist-type:hostname|subdomains desc=Banks
                allow reject $.list[4]: invalid-domain: "not a name": invalid character ' ' in name
                  tags=warninglist-type:hostname|subdomains desc=Banks
                diag $.list[2]: empty entry
                diag $.list[3]: expected a string
            "#]],
        );
    }

    #[test]
    fn string_cidr_and_patterns() {
        check(
            r#"{"name": "Google", "type": "string", "matching_attributes": ["domain"], "list": ["google.com", ".google.ad", "AAA"]}"#,
            expect![[r#"
                allow domain google.com
                  tags=warninglist-type:string desc=Google
                allow domain google.ad
                  tags=warninglist-type:string|subdomains desc=Google
                allow domain aaa
                  tags=warninglist-type:string desc=Google
            "#]],
        );
        check(
            r#"{"name": "RFC 1918", "type": "cidr", "matching_attributes": ["ip-src", "ip-dst"], "list": ["10.0.0.0/8", "1.0.0.1", "2001:db8::/32", "nope"]}"#,
            expect![[r#"
                allow cidr 10.0.0.0/8
                  tags=warninglist-type:cidr desc=RFC 1918
                allow ip 1.0.0.1
                  tags=warninglist-type:cidr desc=RFC 1918
                allow cidr 2001:db8::/32
                  tags=warninglist-type:cidr desc=RFC 1918
                allow reject $.list[3]: invalid-cidr: "nope" is not an address prefix
                  tags=warninglist-type:cidr desc=RFC 1918
            "#]],
        );
        check(
            r#"{"name": "Sandboxes", "type": "substring", "list": ["analyze.intezer.com", "/sandbox/"]}"#,
            expect![[r#"
                allow domain analyze.intezer.com
                  tags=warninglist-type:substring|substring desc=Sandboxes
                allow reject $.list[1]: no-host: "/sandbox/" names no host
                  tags=warninglist-type:substring|substring desc=Sandboxes
            "#]],
        );
    }

    #[test]
    fn non_network_lists_give_no_records() {
        check(
            r#"{"name": "Empty hashes", "type": "string", "matching_attributes": ["md5", "sha1"], "list": ["3::", "d41d8cd98f00b204e9800998ecf8427e"]}"#,
            expect![[r#"
                diag $.matching_attributes: warninglist "Empty hashes" matches md5, sha1 only: its 2 entries are not network indicators
            "#]],
        );
    }

    #[test]
    fn wrong_shape_is_an_error() {
        check(
            r#"{"name": "x", "type": "glob", "list": []}"#,
            expect![[r#"
                error: $.type: unknown warninglist type "glob" (string, hostname, cidr, substring or regex)
            "#]],
        );
        check(
            r#"{"name": "x"}"#,
            expect![[r#"
                error: line 1: column 13: invalid JSON: missing field `list`
            "#]],
        );
        check(
            "[]",
            expect![[r#"
                error: $: expected a warninglist object {"name", "type", "list": […]}
            "#]],
        );
    }
}
