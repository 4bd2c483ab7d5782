//! phishunt.io `feed.json`: an array of `{url, domain, company, first_seen, uuid, …}`.
//!
//! phishunt publishes the same live phishing sites as CSV, JSON and plain text; the
//! JSON is the one whose fields survive tools that mangle CSV quoting. Each object
//! is one phishing URL (its `domain` is used only when `url` is missing), with the
//! brand it imitates as the description — the same mapping as the CSV reader.

use indicator::{Category, Hint};
use serde_json::Value;

use super::csv::{present, time_field};
use crate::{Format, Location, Meta, Parsed, ReadError, Record};

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ReadError::json(&e))?;
    let Value::Array(items) = root else {
        return Err(ReadError::at(
            Location::Path("$".to_owned()),
            "expected a phishunt feed: an array of {\"url\", \"company\", …} objects",
        ));
    };
    let mut parsed = Parsed::new(Format::PhishuntJson);
    parsed.records.reserve(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(o) = item else {
            parsed.diag(Location::Path(format!("$[{i}]")), "expected an object");
            continue;
        };
        let text = |key: &str| present(o.get(key).and_then(Value::as_str));
        let (field, value, hint) = match (text("url"), text("domain")) {
            (Some(url), _) => ("url", url, Hint::Url),
            (None, Some(domain)) => ("domain", domain, Hint::Domain),
            (None, None) => {
                parsed.diag(Location::Path(format!("$[{i}].url")), "no url");
                continue;
            }
        };
        let at = Location::Path(format!("$[{i}].{field}"));
        let (seen_field, seen) = match text("first_seen") {
            Some(t) => ("first_seen", Some(t)),
            None => ("date", text("date")),
        };
        let first_seen = time_field(
            &mut parsed,
            &Location::Path(format!("$[{i}].{seen_field}")),
            "first_seen",
            seen,
        );
        let meta = Meta {
            category: Some(Category::Phishing),
            first_seen,
            reference: text("uuid").map(str::to_owned),
            description: text("company").map(str::to_owned),
            ..Meta::default()
        };
        parsed
            .records
            .push(Record::new(at, value, hint).with_meta(meta));
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
    fn objects() {
        check(
            r#"[
  {"url": "http://allegrolokalnie.oferta-lokalana989714.lol", "domain": "allegrolokalnie.oferta-lokalana989714.lol",
   "company": "allegro", "date": "2026-08-22T18:05:25.854453+00:00", "first_seen": "2026-08-22T18:05:25.854453+00:00",
   "uuid": "fa70e3e7-a39f-4075-9828-e2645bace19b", "ip": "104.21.31.184", "malicious_google": false},
  {"domain": "only-domain.example", "company": "", "date": "2026-08-22"},
  {"company": "nobody"},
  42,
  {"url": "https://x.example/login", "first_seen": "later"}
]"#,
            expect![[r#"
                url http://allegrolokalnie.oferta-lokalana989714.lol/
                  category=phishing first=2026-08-22T18:05:25.854453Z ref=fa70e3e7-a39f-4075-9828-e2645bace19b desc=allegro
                domain only-domain.example
                  category=phishing first=2026-08-22T00:00:00Z
                url https://x.example/login
                  category=phishing
                diag $[2].url: no url
                diag $[3]: expected an object
                diag $[4].first_seen: first_seen "later" is not a date and time
            "#]],
        );
    }

    #[test]
    fn wrong_shape_is_an_error() {
        check(
            r#"{"url": "http://a.example/"}"#,
            expect![[r#"
                error: $: expected a phishunt feed: an array of {"url", "company", …} objects
            "#]],
        );
        check(
            "[{\"url\": ",
            expect![[r#"
                error: line 1: column 9: invalid JSON: EOF while parsing a value
            "#]],
        );
        check("[]", expect![""]);
    }
}
