//! Takedown reports: which reported URLs and domains are still live.
//!
//! Registrars, hosters and CERTs that act on our reports send back the state of each
//! one, and partners send us theirs; a name that was taken down can leave the
//! blocklist sooner, one still live after weeks needs escalating. No common format
//! exists, so we define a small one (JSON Lines, specified with an example in
//! `docs/formats.md` — keep the two in step): one object per line with `url` or
//! `domain` (exactly one), `status` (`live`, `taken_down`, `unknown`), `reported_at`
//! (RFC 3339), `taken_down_at` (RFC 3339, present exactly when the status is
//! `taken_down`), and the optional `provider` and `reference`. `null` counts as
//! absent. Unknown fields are ignored so the format can grow; a known field of the
//! wrong type or with a bad value makes the line a diagnostic. A report says nothing
//! about why the value was reported, so no category is set.

use indicator::{Hint, Timestamp};
use serde_json::{Map, Value};

use super::lines::{json_kind, json_lines};
use crate::{Format, Location, Meta, Parsed, ReadError, Record, Takedown, TakedownStatus};

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    let mut parsed = Parsed::new(Format::Takedown);
    parsed.records = json_lines(text, &mut parsed, "a takedown report", parse_line)?;
    Ok(parsed)
}

fn parse_line(obj: Map<String, Value>, at: Location) -> Result<Record, String> {
    let (value, hint) = match (string(&obj, "url")?, string(&obj, "domain")?) {
        (Some(url), None) => (url, Hint::Url),
        (None, Some(domain)) => (domain, Hint::Domain),
        (Some(_), Some(_)) => return Err("give url or domain, not both".to_owned()),
        (None, None) => return Err("missing url or domain".to_owned()),
    };
    let status = match string(&obj, "status")?.as_deref() {
        Some("live") => TakedownStatus::Live,
        Some("taken_down") => TakedownStatus::TakenDown,
        Some("unknown") => TakedownStatus::Unknown,
        Some(other) => {
            return Err(format!(
                "status {other:?} is not one of live, taken_down, unknown"
            ));
        }
        None => return Err("missing status".to_owned()),
    };
    let reported_at = time(&obj, "reported_at")?.ok_or("missing reported_at")?;
    let taken_down_at = time(&obj, "taken_down_at")?;
    match (status, taken_down_at) {
        (TakedownStatus::TakenDown, None) => {
            return Err("status taken_down needs taken_down_at".to_owned());
        }
        (TakedownStatus::Live | TakedownStatus::Unknown, Some(_)) => {
            return Err("taken_down_at is only for status taken_down".to_owned());
        }
        _ => {}
    }
    let meta = Meta {
        takedown: Some(Takedown {
            status,
            reported_at: Some(reported_at),
            taken_down_at,
            provider: string(&obj, "provider")?,
        }),
        reference: string(&obj, "reference")?,
        ..Meta::default()
    };
    Ok(Record::new(at, value, hint).with_meta(meta))
}

/// A string field; `null` and absence are both `None`.
fn string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "{key} must be a string, found {}",
            json_kind(other)
        )),
    }
}

/// An RFC 3339 time field.
fn time(obj: &Map<String, Value>, key: &str) -> Result<Option<Timestamp>, String> {
    match string(obj, key)? {
        None => Ok(None),
        Some(s) => s
            .parse::<Timestamp>()
            .map(Some)
            .map_err(|_| format!("{key} {s:?} is not an RFC 3339 time")),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use crate::TakedownStatus;

    /// The normalised value with its takedown state, then the diagnostics.
    #[track_caller]
    fn check(input: &str, expect: Expect) {
        let actual = match super::parse(input) {
            Ok(parsed) => {
                let mut out = String::new();
                for r in &parsed.records {
                    let value = match r.normalise() {
                        Ok(i) => format!("{} {i}", i.kind().as_str()),
                        Err(e) => format!("reject {e}"),
                    };
                    let meta = r.meta.as_deref();
                    assert_eq!(meta.and_then(|m| m.category), None);
                    let t = meta.and_then(|m| m.takedown.as_ref());
                    let status = match t.map(|t| t.status) {
                        Some(TakedownStatus::Live) => "live",
                        Some(TakedownStatus::TakenDown) => "taken_down",
                        Some(TakedownStatus::Unknown) => "unknown",
                        None => "none",
                    };
                    let opt = |o: Option<String>| o.unwrap_or_else(|| "-".to_owned());
                    out.push_str(&format!(
                        "{}: {value} {status} reported={} down={} provider={} ref={}\n",
                        r.at,
                        opt(t.and_then(|t| t.reported_at).map(|x| x.to_string())),
                        opt(t.and_then(|t| t.taken_down_at).map(|x| x.to_string())),
                        opt(t.and_then(|t| t.provider.clone())),
                        opt(meta.and_then(|m| m.reference.clone())),
                    ));
                }
                for d in &parsed.diagnostics {
                    out.push_str(&format!("diag {d}\n"));
                }
                out
            }
            Err(e) => format!("error {e}\n"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn good_lines() {
        check(
            concat!(
                r#"{"url":"hxxp://login.bank.example/verify","status":"live","reported_at":"2026-08-20T09:00:00Z","provider":"Hoster Example","reference":"CASE-1"}"#,
                "\r\n\n",
                r#"{"domain":"Evil.Example.","status":"taken_down","reported_at":"2026-08-20T09:00:00+02:00","taken_down_at":"2026-08-21T10:30:00Z","extra":[1,2]}"#,
                "\n",
                r#"{"domain":"gone.example","status":"unknown","reported_at":"2026-08-20T09:00:00Z","taken_down_at":null,"provider":null}"#,
                "\n",
            ),
            expect![[r#"
                line 1: url http://login.bank.example/verify live reported=2026-08-20T09:00:00Z down=- provider=Hoster Example ref=CASE-1
                line 3: domain evil.example taken_down reported=2026-08-20T07:00:00Z down=2026-08-21T10:30:00Z provider=- ref=-
                line 4: domain gone.example unknown reported=2026-08-20T09:00:00Z down=- provider=- ref=-
            "#]],
        );
    }

    #[test]
    fn bad_lines_are_diagnostics() {
        check(
            concat!(
                r#"{"domain":"ok.example","status":"live","reported_at":"2026-08-20T09:00:00Z"}"#,
                "\n",
                r#"{"url":"http://a.example/","domain":"a.example","status":"live","reported_at":"2026-08-20T09:00:00Z"}"#,
                "\n",
                r#"{"status":"live","reported_at":"2026-08-20T09:00:00Z"}"#,
                "\n",
                r#"{"domain":"a.example","status":"down","reported_at":"2026-08-20T09:00:00Z"}"#,
                "\n",
                r#"{"domain":"a.example","reported_at":"2026-08-20T09:00:00Z"}"#,
                "\n",
                r#"{"domain":"a.example","status":"live"}"#,
                "\n",
                r#"{"domain":"a.example","status":"live","reported_at":"2026-08-20"}"#,
                "\n",
                r#"{"domain":"a.example","status":"taken_down","reported_at":"2026-08-20T09:00:00Z"}"#,
                "\n",
                r#"{"domain":"a.example","status":"live","reported_at":"2026-08-20T09:00:00Z","taken_down_at":"2026-08-21T09:00:00Z"}"#,
                "\n",
                r#"{"domain":["a.example"],"status":"live","reported_at":"2026-08-20T09:00:00Z"}"#,
                "\n",
                r#"{"domain":"a.example","status":"live","reported_at":1787216400}"#,
                "\n",
                r#"{"domain":"a.example","status":"live","reported_at":"2026-08-20T09:00:00Z","provider":5}"#,
                "\n",
                r#"{"domain":"a.example","status":"live","reported_at":"2026-08-20T09:00:00Z","reference":true}"#,
                "\n",
                "\"a.example\"\n{\"domain\":\n",
            ),
            expect![[r#"
                line 1: domain ok.example live reported=2026-08-20T09:00:00Z down=- provider=- ref=-
                diag line 2: give url or domain, not both
                diag line 3: missing url or domain
                diag line 4: status "down" is not one of live, taken_down, unknown
                diag line 5: missing status
                diag line 6: missing reported_at
                diag line 7: reported_at "2026-08-20" is not an RFC 3339 time
                diag line 8: status taken_down needs taken_down_at
                diag line 9: taken_down_at is only for status taken_down
                diag line 10: domain must be a string, found an array
                diag line 11: reported_at must be a string, found a number
                diag line 12: provider must be a string, found a number
                diag line 13: reference must be a string, found a boolean
                diag line 14: expected a JSON object, found a string
                diag line 15: column 10: invalid JSON: EOF while parsing a value
            "#]],
        );
    }

    #[test]
    fn values_are_normalised_later() {
        check(
            concat!(
                r#"{"domain":"","status":"live","reported_at":"2026-08-20T09:00:00Z"}"#,
                "\n",
                r#"{"domain":"http://a.example/x","status":"live","reported_at":"2026-08-20T09:00:00Z"}"#,
                "\n",
            ),
            expect![[r#"
                line 1: reject empty: empty value live reported=2026-08-20T09:00:00Z down=- provider=- ref=-
                line 2: reject invalid-domain: "http://a.example/x": invalid character ':' in name live reported=2026-08-20T09:00:00Z down=- provider=- ref=-
            "#]],
        );
    }

    #[test]
    fn not_takedown_at_all_is_an_error() {
        check(
            "evil.example\n",
            expect![[r#"
                error no line is a takedown report (first problem: line 1: column 1: invalid JSON: expected value)
            "#]],
        );
        check("", expect![""]);
    }
}
