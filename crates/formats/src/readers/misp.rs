//! MISP events (`{"Event":…}`, `{"response":[{"Event":…}…]}`) and MISP feeds.
//!
//! MISP is how most CERTs and ISACs share: an event holds attributes (directly and
//! inside objects), each typed (`domain`, `url`, `ip-dst`, `domain|ip`, `md5` …) and
//! tagged (`tlp:amber`, galaxy clusters, free labels). A DNS hub needs the name, URL and
//! address attributes; the rest (hashes, file names, registry keys …) is counted in one
//! summary diagnostic per event rather than one per attribute. A MISP feed is a
//! `manifest.json` naming events by UUID, each in `<uuid>.json` beside it.
//!
//! MISP JSON is loose about types (timestamps and flags appear as strings or numbers,
//! lists may be absent), so events are read from a [`Value`] with forgiving accessors
//! instead of strict structs; one malformed attribute is one diagnostic.

use std::collections::BTreeMap;

use indicator::{Category, Hint, Timestamp, Tlp};
use serde_json::Value;

use crate::{Format, Location, Meta, Parsed, ReadError, Record};

const NOT_MISP: &str =
    "not a MISP event: expected {\"Event\":{…}} or {\"response\":[{\"Event\":{…}}, …]}";

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ReadError::json(&e))?;
    let mut parsed = Parsed::new(Format::Misp);
    read_root(&root, "", &mut parsed)?;
    Ok(parsed)
}

/// Reads a feed's `manifest.json`, loading each event it lists through `load`
/// (given the event UUID). A missing or broken event file is a diagnostic.
pub fn parse_feed(
    manifest: &str,
    load: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
) -> Result<Parsed, ReadError> {
    const NOT_MANIFEST: &str =
        "not a MISP feed manifest: expected an object mapping event UUIDs to event summaries";
    let root: Value = serde_json::from_str(manifest).map_err(|e| ReadError::json(&e))?;
    let Value::Object(events) = root else {
        return Err(ReadError::at(Location::File, NOT_MANIFEST));
    };
    if !events.is_empty() && !events.iter().any(|(k, v)| is_uuid(k) && v.is_object()) {
        return Err(ReadError::at(Location::File, NOT_MANIFEST));
    }
    let mut parsed = Parsed::new(Format::MispFeed);
    for (uuid, summary) in &events {
        // The key becomes a file name: anything but a UUID could point elsewhere.
        if !is_uuid(uuid) {
            parsed.diag(
                Location::Path("$".into()),
                format!("event key {uuid:?} is not a UUID, not loaded"),
            );
            continue;
        }
        let at = Location::Path(format!("$['{uuid}']"));
        if !summary.is_object() {
            parsed.diag(
                at.clone(),
                format!("event {uuid}: summary is not an object"),
            );
        }
        let bytes = match load(uuid) {
            Ok(bytes) => bytes,
            Err(e) => {
                parsed.diag(at, format!("event {uuid}: missing ({e})"));
                continue;
            }
        };
        let read = crate::decode(&bytes).and_then(|text| {
            let root: Value = serde_json::from_str(&text).map_err(|e| ReadError::json(&e))?;
            read_root(&root, &format!("{uuid}.json:"), &mut parsed)
        });
        if let Err(e) = read {
            parsed.diag(at, format!("event {uuid}: {e}"));
        }
    }
    Ok(parsed)
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hexadecimal.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Reads one document; `prefix` names the file in paths when a feed holds several.
/// Fails only on the document's shape, before anything is read from it.
fn read_root(root: &Value, prefix: &str, parsed: &mut Parsed) -> Result<(), ReadError> {
    let Some(map) = root.as_object() else {
        return Err(ReadError::at(Location::File, NOT_MISP));
    };
    if let Some(event) = map.get("Event") {
        if !event.is_object() {
            return Err(ReadError::at(
                Location::Path(format!("{prefix}$.Event")),
                "expected an event object",
            ));
        }
        read_event(event, &format!("{prefix}$.Event"), parsed);
        return Ok(());
    }
    match map.get("response") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.get("Event") {
                    Some(event) if event.is_object() => {
                        read_event(event, &format!("{prefix}$.response[{i}].Event"), parsed);
                    }
                    _ => parsed.diag(
                        Location::Path(format!("{prefix}$.response[{i}]")),
                        "expected {\"Event\":{…}}",
                    ),
                }
            }
            Ok(())
        }
        Some(Value::Object(item)) => match item.get("Event") {
            Some(event) if event.is_object() => {
                read_event(event, &format!("{prefix}$.response.Event"), parsed);
                Ok(())
            }
            _ => Err(ReadError::at(
                Location::Path(format!("{prefix}$.response")),
                "expected {\"Event\":{…}}",
            )),
        },
        _ => Err(ReadError::at(Location::File, NOT_MISP)),
    }
}

/// What an event says about all its attributes.
struct EventContext {
    meta: Meta,
    tags: Tags,
    /// Attributes of types a DNS hub does not use, by type.
    others: BTreeMap<String, usize>,
}

fn read_event(event: &Value, path: &str, parsed: &mut Parsed) {
    let org = |key: &str| {
        event
            .get(key)
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut context = EventContext {
        meta: Meta {
            description: event.get("info").and_then(Value::as_str).map(str::to_owned),
            reporter: org("Orgc").or_else(|| org("Org")),
            ..Meta::default()
        },
        tags: Tags::read(event.get("Tag"), &format!("{path}.Tag"), parsed),
        others: BTreeMap::new(),
    };
    read_attributes(
        event.get("Attribute"),
        &format!("{path}.Attribute"),
        &mut context,
        parsed,
    );
    match event.get("Object") {
        None | Some(Value::Null) => {}
        Some(Value::Array(objects)) => {
            for (j, object) in objects.iter().enumerate() {
                if flag(object.get("deleted")) == Some(true) {
                    continue;
                }
                read_attributes(
                    object.get("Attribute"),
                    &format!("{path}.Object[{j}].Attribute"),
                    &mut context,
                    parsed,
                );
            }
        }
        Some(_) => parsed.diag(
            Location::Path(format!("{path}.Object")),
            "expected an array of objects",
        ),
    }
    if !context.others.is_empty() {
        let total: usize = context.others.values().sum();
        let types: Vec<String> = context
            .others
            .iter()
            .map(|(ty, n)| format!("{ty} {n}"))
            .collect();
        parsed.diag(
            Location::Path(path.to_owned()),
            format!(
                "{total} attribute{} of other types skipped (types: {})",
                if total == 1 { "" } else { "s" },
                types.join(", ")
            ),
        );
    }
}

fn read_attributes(
    list: Option<&Value>,
    path: &str,
    context: &mut EventContext,
    parsed: &mut Parsed,
) {
    match list {
        None | Some(Value::Null) => {}
        Some(Value::Array(attributes)) => {
            for (i, attribute) in attributes.iter().enumerate() {
                read_attribute(attribute, &format!("{path}[{i}]"), context, parsed);
            }
        }
        Some(_) => parsed.diag(
            Location::Path(path.to_owned()),
            "expected an array of attributes",
        ),
    }
}

fn read_attribute(attribute: &Value, path: &str, context: &mut EventContext, parsed: &mut Parsed) {
    if !attribute.is_object() {
        parsed.diag(
            Location::Path(path.to_owned()),
            "expected an attribute object",
        );
        return;
    }
    if flag(attribute.get("deleted")) == Some(true) {
        return;
    }
    let Some(ty) = attribute.get("type").and_then(Value::as_str) else {
        parsed.diag(
            Location::Path(format!("{path}.type")),
            "attribute without a type",
        );
        return;
    };
    let composite = matches!(
        ty,
        "domain|ip" | "ip-dst|port" | "ip-src|port" | "hostname|port"
    );
    if !composite && !matches!(ty, "domain" | "hostname" | "url" | "ip-dst" | "ip-src") {
        *context.others.entry(ty.to_owned()).or_default() += 1;
        return;
    }
    let value_path = format!("{path}.value");
    let Some(value) = attribute.get("value").and_then(Value::as_str) else {
        parsed.diag(
            Location::Path(value_path),
            format!("{ty} attribute without a string value"),
        );
        return;
    };
    let (first, second) = if composite {
        let Some((left, right)) = value.split_once('|') else {
            parsed.diag(
                Location::Path(value_path),
                format!("{ty} attribute {value:?} has no '|'"),
            );
            return;
        };
        match ty {
            "domain|ip" => ((left, Hint::Domain), Some((right, ip_hint(right)))),
            "hostname|port" => ((left, Hint::Domain), None),
            _ => ((left, ip_hint(left)), None),
        }
    } else {
        let hint = match ty {
            "domain" | "hostname" => Hint::Domain,
            "url" => Hint::Url,
            _ => ip_hint(value),
        };
        ((value, hint), None)
    };
    let meta = attribute_meta(attribute, path, context, parsed);
    for (value, hint) in std::iter::once(first).chain(second) {
        parsed.records.push(
            Record::new(Location::Path(value_path.clone()), value, hint).with_meta(meta.clone()),
        );
    }
}

fn attribute_meta(
    attribute: &Value,
    path: &str,
    context: &EventContext,
    parsed: &mut Parsed,
) -> Meta {
    let own = Tags::read(attribute.get("Tag"), &format!("{path}.Tag"), parsed);
    let mut read_time = |field: &str| match time(attribute.get(field)) {
        Ok(t) => t,
        Err(text) => {
            parsed.diag(
                Location::Path(format!("{path}.{field}")),
                format!("invalid time {text:?}"),
            );
            None
        }
    };
    let first_seen = read_time("first_seen").or_else(|| read_time("timestamp"));
    let last_seen = read_time("last_seen");
    let mut tags = own.names;
    for t in &context.tags.names {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    Meta {
        category: own.category.or(context.tags.category),
        tlp: own.tlp.or(context.tags.tlp),
        tags,
        first_seen,
        last_seen,
        to_ids: flag(attribute.get("to_ids")),
        reference: attribute
            .get("uuid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..context.meta.clone()
    }
}

/// An event's or attribute's tags: TLP, the first category that maps, the rest.
#[derive(Default)]
struct Tags {
    tlp: Option<Tlp>,
    category: Option<Category>,
    names: Vec<String>,
}

impl Tags {
    fn read(list: Option<&Value>, path: &str, parsed: &mut Parsed) -> Tags {
        let mut tags = Tags::default();
        let items = match list {
            None | Some(Value::Null) => return tags,
            Some(Value::Array(items)) => items,
            Some(_) => {
                parsed.diag(Location::Path(path.to_owned()), "expected an array of tags");
                return tags;
            }
        };
        for item in items {
            let Some(name) = item.get("name").or(Some(item)).and_then(Value::as_str) else {
                continue;
            };
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if let Some(tlp) = Tlp::from_label(name).filter(|_| is_tlp(name)) {
                // Several TLP tags: the most restrictive holds.
                tags.tlp = tags.tlp.max(Some(tlp));
                continue;
            }
            if tags.category.is_none() {
                tags.category = category(name);
            }
            if !tags.names.iter().any(|n| n == name) {
                tags.names.push(name.to_owned());
            }
        }
        tags
    }
}

fn is_tlp(tag: &str) -> bool {
    tag.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("tlp:"))
}

/// A tag as a category: the tag itself (`phishing`), or a machine tag's value
/// (`malware_classification:malware-category="Ransomware"`).
fn category(tag: &str) -> Option<Category> {
    Category::from_label(tag).or_else(|| {
        let (_, value) = tag.split_once('=')?;
        Category::from_label(value.trim_matches('"'))
    })
}

/// MISP flags: `true`, `"1"`, `1`, `"true"`.
fn flag(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_u64().map(|n| n != 0),
        Value::String(s) => match s.trim() {
            "1" | "true" | "True" => Some(true),
            "0" | "false" | "False" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// MISP times: unix seconds (string or number) or ISO 8601 (`first_seen`). Empty and
/// `null` are no time; anything else unreadable is returned as text for a diagnostic.
fn time(value: Option<&Value>) -> Result<Option<Timestamp>, String> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(Value::Number(n)) => {
            return n
                .as_i64()
                .and_then(|s| Timestamp::from_second(s).ok())
                .map(Some)
                .ok_or_else(|| n.to_string());
        }
        Some(other) => return Err(other.to_string()),
    };
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = if text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<i64>()
            .ok()
            .and_then(|s| Timestamp::from_second(s).ok())
    } else {
        text.parse::<Timestamp>().ok()
    };
    parsed.map(Some).ok_or_else(|| text.to_owned())
}

/// The hint for an address value: a prefix when it has a length.
fn ip_hint(value: &str) -> Hint {
    if value.contains('/') {
        Hint::Cidr
    } else {
        Hint::Ip
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
    fn attribute_types() {
        check(
            r#"{"Event":{"info":"x","Attribute":[
                {"type":"domain","value":"Evil.Example"},
                {"type":"hostname","value":"www.evil.example"},
                {"type":"url","value":"hxxp://evil[.]example/a"},
                {"type":"ip-dst","value":"192.0.2.1"},
                {"type":"ip-src","value":"198.51.100.0/24"},
                {"type":"domain|ip","value":"c2.example|203.0.113.7"},
                {"type":"ip-dst|port","value":"192.0.2.2|8080"},
                {"type":"ip-src|port","value":"2001:db8::2|53"},
                {"type":"hostname|port","value":"mail.evil.example|25"},
                {"type":"md5","value":"d41d8cd98f00b204e9800998ecf8427e"},
                {"type":"link","value":"https://blog.example/report"},
                {"type":"md5","value":"d41d8cd98f00b204e9800998ecf8427f"},
                {"type":"email-src","value":"x@evil.example"}
            ]}}"#,
            expect![[r#"
                domain evil.example
                domain www.evil.example
                url http://evil.example/a
                ip 192.0.2.1
                cidr 198.51.100.0/24
                domain c2.example
                ip 203.0.113.7
                ip 192.0.2.2
                ip 2001:db8::2
                domain mail.evil.example
                diag $.Event: 4 attributes of other types skipped (types: email-src 1, link 1, md5 2)
            "#]],
        );
    }

    #[test]
    fn object_attributes_and_deleted() {
        check(
            r#"{"Event":{"Attribute":[
                {"type":"domain","value":"gone.example","deleted":true},
                {"type":"domain","value":"kept.example","deleted":"0"}
            ],"Object":[
                {"name":"domain-ip","Attribute":[
                    {"type":"domain","value":"obj.example"},
                    {"type":"ip-dst","value":"192.0.2.3"},
                    {"type":"text","value":"note"}
                ]},
                {"name":"domain-ip","deleted":true,"Attribute":[{"type":"domain","value":"deleted-object.example"}]},
                {"name":"empty"}
            ]}}"#,
            expect![[r#"
                domain kept.example
                domain obj.example
                ip 192.0.2.3
                diag $.Event: 1 attribute of other types skipped (types: text 1)
            "#]],
        );
    }

    #[test]
    fn bad_attributes_are_diagnostics() {
        check(
            r#"{"Event":{"Attribute":[
                "domain",
                {"value":"no-type.example"},
                {"type":"domain"},
                {"type":"url","value":42},
                {"type":"domain|ip","value":"no-pipe.example"},
                {"type":"ip-dst","value":"not-an-ip"},
                {"type":"domain","value":"ok.example","first_seen":"soon"}
            ],"Object":{}}}"#,
            expect![[r#"
                reject $.Event.Attribute[5].value: invalid-ip: "not-an-ip" is not an IP address
                domain ok.example
                diag $.Event.Attribute[0]: expected an attribute object
                diag $.Event.Attribute[1].type: attribute without a type
                diag $.Event.Attribute[2].value: domain attribute without a string value
                diag $.Event.Attribute[3].value: url attribute without a string value
                diag $.Event.Attribute[4].value: domain|ip attribute "no-pipe.example" has no '|'
                diag $.Event.Attribute[6].first_seen: invalid time "soon"
                diag $.Event.Object: expected an array of objects
            "#]],
        );
    }

    #[test]
    fn response_lists() {
        check(
            r#"{"response":[
                {"Event":{"Attribute":[{"type":"domain","value":"a.example"}]}},
                {"event":{}},
                {"Event":{"Attribute":[{"type":"url","value":"http://b.example/"}]}}
            ]}"#,
            expect![[r#"
                domain a.example
                url http://b.example/
                diag $.response[1]: expected {"Event":{…}}
            "#]],
        );
        check(r#"{"response":[]}"#, expect![""]);
    }

    #[test]
    fn not_misp() {
        check(
            r#"{"foo":1}"#,
            expect![[r#"
                error file: not a MISP event: expected {"Event":{…}} or {"response":[{"Event":{…}}, …]}
            "#]],
        );
        check(
            r#"{"Event":[]}"#,
            expect![[r#"
                error $.Event: expected an event object
            "#]],
        );
        check(
            "[1,2]",
            expect![[r#"
                error file: not a MISP event: expected {"Event":{…}} or {"response":[{"Event":{…}}, …]}
            "#]],
        );
        check(
            "{\"Event\":{\"Attribute\":[\n{\"type\":\"domain\",",
            expect![[r#"
                error line 2: column 17: invalid JSON: EOF while parsing a value
            "#]],
        );
    }

    #[test]
    fn multibyte_tags() {
        check(
            r#"{"Event":{"Tag":[{"name":"abcé"},{"name":"é"},"tlp:green"],"Attribute":[{"type":"domain","value":"a.example","Tag":[{"name":"ééé=\"x\""}]}]}}"#,
            expect![[r#"
                domain a.example
            "#]],
        );
    }

    proptest::proptest! {
        /// Arbitrary text never panics the reader or the feed reader.
        #[test]
        fn text_never_panics(text in "\\PC{0,200}") {
            let _ = super::parse(&text);
            let _ = super::parse_feed(&text, &mut |_| Ok(text.clone().into_bytes()));
        }

        /// Events with attributes of any type and value never panic the reader.
        #[test]
        fn events_never_panic(attributes in proptest::collection::vec(
            ("(domain|hostname|url|ip-dst|ip-src|domain\\|ip|ip-dst\\|port|hostname\\|port|md5)", "\\PC{0,20}", proptest::bool::ANY),
            0..8,
        )) {
            let attributes: Vec<serde_json::Value> = attributes
                .into_iter()
                .map(|(ty, value, deleted)| serde_json::json!({"type": ty, "value": value, "deleted": deleted, "first_seen": value}))
                .collect();
            let event = serde_json::json!({"Event": {"Attribute": attributes, "Tag": [{"name": "tlp:amber"}]}});
            proptest::prop_assert!(super::parse(&event.to_string()).is_ok());
        }
    }
}
