//! Passive DNS in the Common Output Format (COF, draft-dulaunoy-dnsop-passive-dns-cof).
//!
//! Passive DNS answers "which addresses did this name have, and since when" — the
//! evidence analysts pivot on from a bad name to its infrastructure and back. It is
//! not a list of indicators, so this reader fills [`Parsed::pdns`], never
//! [`Parsed::records`]. The format is NDJSON: one JSON object per line with the
//! mandatory `rrname`, `rrtype`, `rdata` (a string or an array of strings),
//! `time_first` and `time_last` (Unix seconds), and the optional `count`,
//! `bailiwick` and `sensor_id`. As the draft allows (§3.7), `zone_time_first` and
//! `zone_time_last` stand in for absent `time_*` fields; `time_first_ms` /
//! `time_last_ms` are the last resort. A numeric `rrtype` (RFC 3597 transparency) is
//! kept as `TYPE<n>`. Fields the reader does not know are ignored (the draft lets
//! servers add fields); a known field of the wrong type makes the line a diagnostic.

use indicator::Timestamp;
use serde_json::{Map, Value};

use super::lines::{json_kind, json_lines};
use crate::{Format, Location, Parsed, PdnsRecord, ReadError};

pub fn parse(text: &str) -> Result<Parsed, ReadError> {
    let mut parsed = Parsed::new(Format::Cof);
    parsed.pdns = json_lines(text, &mut parsed, "a passive DNS COF object", parse_line)?;
    Ok(parsed)
}

fn parse_line(obj: Map<String, Value>, at: Location) -> Result<PdnsRecord, String> {
    let rrname = required_string(&obj, "rrname")?;
    let rrtype = match obj.get("rrtype") {
        None | Some(Value::Null) => return Err(missing("rrtype")),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(t) if t <= u64::from(u16::MAX) => format!("TYPE{t}"),
            _ => return Err(format!("rrtype {n} is not an RR type number (0-65535)")),
        },
        Some(other) => return Err(wrong_type("rrtype", "a string or number", other)),
    };
    let rdata = match obj.get("rdata") {
        None | Some(Value::Null) => return Err(missing("rdata")),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            let mut rdata = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => rdata.push(s.clone()),
                    other => return Err(wrong_type(&format!("rdata[{i}]"), "a string", other)),
                }
            }
            if rdata.is_empty() {
                return Err("rdata is an empty array".to_owned());
            }
            rdata
        }
        Some(other) => return Err(wrong_type("rdata", "a string or array of strings", other)),
    };
    let (time_first, time_last) = times(&obj)?;
    if time_first > time_last {
        return Err(format!(
            "time_first {time_first} is after time_last {time_last}"
        ));
    }
    let count = match obj.get("count") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .ok_or_else(|| format!("count {n} is not a non-negative integer"))?,
        ),
        Some(other) => return Err(wrong_type("count", "a number", other)),
    };
    Ok(PdnsRecord {
        at,
        rrname,
        rrtype,
        rdata,
        time_first,
        time_last,
        count,
        bailiwick: optional_string(&obj, "bailiwick")?,
        sensor_id: optional_string(&obj, "sensor_id")?,
    })
}

/// `time_first`/`time_last`, or the zone import times that replace them (§3.7), or
/// the millisecond variants (§3.5.5).
fn times(obj: &Map<String, Value>) -> Result<(Timestamp, Timestamp), String> {
    for (first, last, scale) in [
        ("time_first", "time_last", 1),
        ("zone_time_first", "zone_time_last", 1),
        ("time_first_ms", "time_last_ms", 1000),
    ] {
        let f = present(obj, first);
        let l = present(obj, last);
        match (f, l) {
            (Some(f), Some(l)) => {
                return Ok((timestamp(first, f, scale)?, timestamp(last, l, scale)?));
            }
            (Some(_), None) => return Err(missing(last)),
            (None, Some(_)) => return Err(missing(first)),
            (None, None) => {}
        }
    }
    Err(missing("time_first and time_last"))
}

fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Unix time in seconds (or milliseconds when `scale` is 1000); a fraction is
/// dropped, as the draft speaks of whole seconds.
fn timestamp(key: &str, value: &Value, scale: i64) -> Result<Timestamp, String> {
    let Value::Number(n) = value else {
        return Err(wrong_type(key, "a number of seconds", value));
    };
    let whole = match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => Some(i),
        // Saturating cast; the range check below rejects what is out of range.
        (None, Some(f)) if f.is_finite() => Some(f.trunc() as i64),
        _ => None,
    };
    whole
        .map(|w| w.div_euclid(scale))
        .and_then(|s| Timestamp::from_second(s).ok())
        .ok_or_else(|| format!("{key} {n} is not a Unix time in range"))
}

fn required_string(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(missing(key)),
        Some(Value::String(s)) if s.is_empty() => Err(format!("{key} is empty")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(wrong_type(key, "a string", other)),
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(key, "a string", other)),
    }
}

fn missing(key: &str) -> String {
    format!("missing mandatory field {key}")
}

fn wrong_type(key: &str, want: &str, found: &Value) -> String {
    format!("{key} must be {want}, found {}", json_kind(found))
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    /// Every field of each record, then the diagnostics (or the error).
    #[track_caller]
    fn check(input: &str, expect: Expect) {
        let actual = match super::parse(input) {
            Ok(parsed) => {
                let mut out = String::new();
                for p in &parsed.pdns {
                    out.push_str(&format!(
                        "{}: {} {} [{}] {}..{} count={:?} bailiwick={:?} sensor={:?}\n",
                        p.at,
                        p.rrname,
                        p.rrtype,
                        p.rdata.join(", "),
                        p.time_first,
                        p.time_last,
                        p.count,
                        p.bailiwick,
                        p.sensor_id,
                    ));
                }
                assert!(parsed.records.is_empty(), "pdns is not indicators");
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
    fn draft_examples() {
        check(
            concat!(
                r#"{"count": 102, "time_first": 1298412391, "rrtype": "AAAA", "rrname": "www.ietf.org", "rdata": "2001:1890:1112:1::20", "time_last": 1302506851}"#,
                "\r\n",
                r#"{"count":962,"time_first":1522998917,"time_last":1619613241,"rrname":"westernunion.com.ph.","rrtype":"A","bailiwick":"westernunion.com.ph.","rdata":["66.218.161.27","66.218.170.77"],"sensor_id":"42"}"#,
                "\n\n",
            ),
            expect![[r#"
                line 1: www.ietf.org AAAA [2001:1890:1112:1::20] 2011-02-22T22:06:31Z..2011-04-11T07:27:31Z count=Some(102) bailiwick=None sensor=None
                line 2: westernunion.com.ph. A [66.218.161.27, 66.218.170.77] 2018-04-06T07:15:17Z..2021-04-28T12:34:01Z count=Some(962) bailiwick=Some("westernunion.com.ph.") sensor=Some("42")
            "#]],
        );
    }

    #[test]
    fn zone_times_and_numeric_type() {
        check(
            concat!(
                r#"{"rrname":"a.example","rrtype":65,"rdata":["1 . alpn=h2"],"zone_time_first":1,"zone_time_last":2}"#,
                "\n",
                r#"{"rrname":"b.example","rrtype":"A","rdata":"192.0.2.1","time_first_ms":1619690051001,"time_last_ms":1619690211002.5}"#,
                "\n",
                r#"{"rrname":"c.example","rrtype":"A","rdata":"192.0.2.2","time_first":1.9,"time_last":3,"zone_time_first":0,"zone_time_last":9,"origin":"https://pdns.example/","future":{"x":1}}"#,
                "\n",
            ),
            expect![[r#"
                line 1: a.example TYPE65 [1 . alpn=h2] 1970-01-01T00:00:01Z..1970-01-01T00:00:02Z count=None bailiwick=None sensor=None
                line 2: b.example A [192.0.2.1] 2021-04-29T09:54:11Z..2021-04-29T09:56:51Z count=None bailiwick=None sensor=None
                line 3: c.example A [192.0.2.2] 1970-01-01T00:00:01Z..1970-01-01T00:00:03Z count=None bailiwick=None sensor=None
            "#]],
        );
    }

    #[test]
    fn bad_lines_are_diagnostics() {
        check(
            concat!(
                r#"{"rrname":"ok.example","rrtype":"A","rdata":"192.0.2.1","time_first":1,"time_last":2}"#,
                "\nnot json\n[1,2]\n",
                r#"{"rrtype":"A","rdata":"192.0.2.1","time_first":1,"time_last":2}"#,
                "\n",
                r#"{"rrname":"x.example","rrtype":"A","rdata":[1],"time_first":1,"time_last":2}"#,
                "\n",
                r#"{"rrname":"x.example","rrtype":"A","rdata":[],"time_first":1,"time_last":2}"#,
                "\n",
                r#"{"rrname":"x.example","rrtype":"A","rdata":"a","time_first":"1","time_last":2}"#,
                "\n",
                r#"{"rrname":"x.example","rrtype":"A","rdata":"a","time_first":1}"#,
                "\n",
                r#"{"rrname":"x.example","rrtype":"A","rdata":"a"}"#,
                "\n",
                r#"{"rrname":"x.example","rrtype":"A","rdata":"a","time_first":5,"time_last":2}"#,
                "\n",
                r#"{"rrname":"x.example","rrtype":"A","rdata":"a","time_first":1,"time_last":2,"count":-1}"#,
                "\n",
                r#"{"rrname":"x.example","rrtype":true,"rdata":"a","time_first":1,"time_last":2}"#,
                "\n",
                r#"{"rrname":"x.example","rrtype":70000,"rdata":"a","time_first":1,"time_last":2}"#,
                "\n",
                r#"{"rrname":"x.example","rrtype":"A","rdata":"a","time_first":1e300,"time_last":2}"#,
                "\n",
                r#"{"rrname":"","rrtype":"A","rdata":"a","time_first":1,"time_last":2}"#,
                "\n",
                r#"{"rrname":"x.example","rrtype":"A","rdata":"a","time_first":1,"time_last":2,"bailiwick":7}"#,
                "\n",
                r#"{"rrname":"x.example","#,
                "\n",
            ),
            expect![[r#"
                line 1: ok.example A [192.0.2.1] 1970-01-01T00:00:01Z..1970-01-01T00:00:02Z count=None bailiwick=None sensor=None
                diag line 2: column 2: invalid JSON: expected ident
                diag line 3: expected a JSON object, found an array
                diag line 4: missing mandatory field rrname
                diag line 5: rdata[0] must be a string, found a number
                diag line 6: rdata is an empty array
                diag line 7: time_first must be a number of seconds, found a string
                diag line 8: missing mandatory field time_last
                diag line 9: missing mandatory field time_first and time_last
                diag line 10: time_first 1970-01-01T00:00:05Z is after time_last 1970-01-01T00:00:02Z
                diag line 11: count -1 is not a non-negative integer
                diag line 12: rrtype must be a string or number, found a boolean
                diag line 13: rrtype 70000 is not an RR type number (0-65535)
                diag line 14: time_first 1e+300 is not a Unix time in range
                diag line 15: rrname is empty
                diag line 16: bailiwick must be a string, found a number
                diag line 17: column 22: invalid JSON: EOF while parsing a value
            "#]],
        );
    }

    #[test]
    fn not_cof_at_all_is_an_error() {
        check(
            "evil.example\nbad.example\n",
            expect![[r#"
                error no line is a passive DNS COF object (first problem: line 1: column 1: invalid JSON: expected value)
            "#]],
        );
        check(
            r#"{"url":"http://evil.example/","status":"live"}"#,
            expect![[r#"
                error no line is a passive DNS COF object (first problem: line 1: missing mandatory field rrname)
            "#]],
        );
    }

    #[test]
    fn empty_answer_is_empty() {
        check("", expect![""]);
        check("\n  \n", expect![""]);
    }
}
