//! Files that travel with feeds but hold no indicators: JSON Schemas, TweetFeed's
//! STIX bundle index, prose (RFCs, Internet-Drafts, READMEs).
//!
//! Operators point the hub at whole directories of a feed's repository, and a schema
//! or an index read as data would be silently empty or, worse, a schema's example
//! values would be taken as indicators. These readers recognise such a file, check
//! that it really is what the sniffer took it for (a schema that is not JSON is a
//! [`ReadError`]), and say what it is in exactly one diagnostic at
//! [`Location::File`], with zero records, so `check` output tells the operator why
//! nothing was read.

use serde_json::{Map, Value};

use crate::{Format, Location, Parsed, ReadError};

pub fn parse(format: Format, text: &str) -> Result<Parsed, ReadError> {
    let message = match format {
        Format::JsonSchema => json_schema(text)?,
        Format::StixIndex => stix_index(text)?,
        Format::Prose => prose(text),
        other => {
            return Err(ReadError::new(format!(
                "{other} is not a document format (json-schema, stix-index, prose)"
            )));
        }
    };
    let mut parsed = Parsed::new(format);
    parsed.diag(Location::File, message);
    Ok(parsed)
}

fn json_object(text: &str, what: &str) -> Result<Map<String, Value>, ReadError> {
    match serde_json::from_str::<Value>(text).map_err(|e| ReadError::json(&e))? {
        Value::Object(obj) => Ok(obj),
        other => Err(ReadError::at(
            Location::Path("$".to_owned()),
            format!("{what} must be a JSON object, found {}", kind(&other)),
        )),
    }
}

fn json_schema(text: &str) -> Result<String, ReadError> {
    let obj = json_object(text, "a JSON Schema")?;
    if !["$schema", "properties", "type"]
        .iter()
        .any(|k| obj.contains_key(*k))
    {
        return Err(ReadError::at(
            Location::Path("$".to_owned()),
            "not a JSON Schema: none of $schema, properties, type",
        ));
    }
    let name = ["title", "$id", "id"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_str))
        .map(|n| format!(" {n:?}"))
        .unwrap_or_default();
    Ok(format!(
        "JSON Schema{name}: describes a data format, holds no indicators"
    ))
}

fn stix_index(text: &str) -> Result<String, ReadError> {
    let obj = json_object(text, "a STIX bundle index")?;
    let entries: Vec<&Value> = match obj.get("bundles") {
        Some(Value::Object(b)) => b.values().collect(),
        Some(Value::Array(b)) => b.iter().collect(),
        Some(other) => {
            return Err(ReadError::at(
                Location::Path("$.bundles".to_owned()),
                format!("expected an object or array, found {}", kind(other)),
            ));
        }
        None => {
            return Err(ReadError::at(
                Location::Path("$".to_owned()),
                "not a STIX bundle index: no bundles",
            ));
        }
    };
    let indicators = entries
        .iter()
        .filter_map(|b| b.get("indicator_count").and_then(Value::as_u64))
        .fold(0u64, u64::saturating_add);
    let by = obj
        .get("identity")
        .and_then(|i| i.get("name"))
        .and_then(Value::as_str)
        .map(|n| format!(" by {n}"))
        .unwrap_or_default();
    let bundles = entries.len();
    let s = |n: u64| if n == 1 { "" } else { "s" };
    Ok(format!(
        "STIX bundle index{by}: references {bundles} bundle{} with {indicators} indicator{} in all; holds no indicators itself (read the bundles)",
        s(bundles.try_into().unwrap_or(u64::MAX)),
        s(indicators),
    ))
}

fn prose(text: &str) -> String {
    let lines = text.lines().count();
    // The header block that names an RFC or a draft is in the first lines.
    let head = || text.lines().take(40);
    let what = if head().any(|l| l.contains("Internet-Draft")) {
        "Internet-Draft"
    } else if head().any(|l| l.contains("Request for Comments")) {
        "RFC"
    } else {
        "prose"
    };
    let plural = if lines == 1 { "" } else { "s" };
    format!("{what} text ({lines} line{plural}): a document, holds no indicators")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use crate::Format;

    #[track_caller]
    fn check(format: Format, input: &str, expect: Expect) {
        let actual = match super::parse(format, input) {
            Ok(parsed) => {
                assert!(parsed.records.is_empty() && parsed.pdns.is_empty());
                assert_eq!(parsed.diagnostics.len(), 1);
                parsed.dump()
            }
            Err(e) => format!("error {e}\n"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn json_schema() {
        check(
            Format::JsonSchema,
            r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"hex","type":"string"}"#,
            expect![[r#"
                diag file: JSON Schema "hex": describes a data format, holds no indicators
            "#]],
        );
        check(
            Format::JsonSchema,
            r#"{"id":"https://schema.example/list.json","properties":{}}"#,
            expect![[r#"
                diag file: JSON Schema "https://schema.example/list.json": describes a data format, holds no indicators
            "#]],
        );
        check(
            Format::JsonSchema,
            r#"{"type":"object"}"#,
            expect![[r#"
                diag file: JSON Schema: describes a data format, holds no indicators
            "#]],
        );
    }

    #[test]
    fn json_schema_errors() {
        check(
            Format::JsonSchema,
            r#"{"title":"x"}"#,
            expect![[r#"
                error $: not a JSON Schema: none of $schema, properties, type
            "#]],
        );
        check(
            Format::JsonSchema,
            "[1]",
            expect![[r#"
                error $: a JSON Schema must be a JSON object, found an array
            "#]],
        );
        check(
            Format::JsonSchema,
            "{\"$schema\":\n",
            expect![[r#"
                error line 2: column 0: invalid JSON: EOF while parsing a value
            "#]],
        );
        check(
            Format::JsonSchema,
            "",
            expect![[r#"
                error line 1: column 0: invalid JSON: EOF while parsing a value
            "#]],
        );
    }

    #[test]
    fn stix_index() {
        check(
            Format::StixIndex,
            r#"{"identity":{"name":"Feed Example"},"bundles":{"today":{"indicator_count":2},"week":{"indicator_count":40},"old":{}}}"#,
            expect![[r#"
                diag file: STIX bundle index by Feed Example: references 3 bundles with 42 indicators in all; holds no indicators itself (read the bundles)
            "#]],
        );
        check(
            Format::StixIndex,
            r#"{"bundles":[{"indicator_count":18446744073709551615},{"indicator_count":1},{"indicator_count":"7"}]}"#,
            expect![[r#"
                diag file: STIX bundle index: references 3 bundles with 18446744073709551615 indicators in all; holds no indicators itself (read the bundles)
            "#]],
        );
        check(
            Format::StixIndex,
            r#"{"bundles":[{"indicator_count":1}]}"#,
            expect![[r#"
                diag file: STIX bundle index: references 1 bundle with 1 indicator in all; holds no indicators itself (read the bundles)
            "#]],
        );
    }

    #[test]
    fn stix_index_errors() {
        check(
            Format::StixIndex,
            r#"{"type":"bundle","objects":[]}"#,
            expect![[r#"
                error $: not a STIX bundle index: no bundles
            "#]],
        );
        check(
            Format::StixIndex,
            r#"{"bundles":"today.json"}"#,
            expect![[r#"
                error $.bundles: expected an object or array, found a string
            "#]],
        );
        check(
            Format::StixIndex,
            r#"{"bundles":{}"#,
            expect![[r#"
                error line 1: column 13: invalid JSON: EOF while parsing an object
            "#]],
        );
    }

    #[test]
    fn prose() {
        check(
            Format::Prose,
            "Internet-Draft     Passive DNS - Common Output Format\n\nAbstract\n",
            expect![[r#"
                diag file: Internet-Draft text (3 lines): a document, holds no indicators
            "#]],
        );
        check(
            Format::Prose,
            "Network Working Group\nRequest for Comments: 8499\n",
            expect![[r#"
                diag file: RFC text (2 lines): a document, holds no indicators
            "#]],
        );
        check(
            Format::Prose,
            "This project collects lists.",
            expect![[r#"
                diag file: prose text (1 line): a document, holds no indicators
            "#]],
        );
        check(
            Format::Prose,
            "",
            expect![[r#"
                diag file: prose text (0 lines): a document, holds no indicators
            "#]],
        );
    }

    #[test]
    fn other_formats_are_refused() {
        check(
            Format::Plain,
            "evil.example\n",
            expect![[r#"
                error plain is not a document format (json-schema, stix-index, prose)
            "#]],
        );
    }
}
