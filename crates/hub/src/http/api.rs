//! The indicator API: `POST /api/indicators` (a partner submits), `GET
//! /api/indicators/{value}` (the `explain` view) and `GET /api/indicators?q=&state=`
//! (search, paged by an opaque cursor).
//!
//! A submission is a JSON list (`application/json`, see [`json_items`]), a CSV with a
//! header (`text/csv`), a plain list (`text/plain`) or a STIX 2.1 bundle
//! (`application/stix+json`), read by the same readers and normalisation as
//! `sharedefend import`, and imported as one batch from the partner's own source
//! (`partner:NAME`, its trust and group), in one transaction: all of it or nothing.
//! The answer gives every item's outcome — accepted (with the decision and the rules
//! and serials it is published under), rejected (with the reason code and the place
//! in the body), held (the circuit breaker held the batch; with its reasons) or
//! revoked — and is sent after the change is published (journal, zones, NOTIFY).
//!
//! Reads are cut to the partner's TLP clearance: an indicator with no observation at
//! or below it is not known to that partner, in explain and in search alike.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use formats::{Diagnostic, Format, Location, Meta, Parsed, Polarity, ReadOptions, Record};
use indicator::{Category, Confidence, Hint, Indicator, Timestamp, Tlp};
use serde_json::{Value, json};

use super::auth::require;
use super::{ApiError, HttpState, Routes, json_response};
use crate::access::{Partner, Role};
use crate::{ImportDefaults, ImportJob};

/// Search pages hold at most this many items.
pub const MAX_PAGE: u32 = 1000;
/// Search pages hold this many items when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 100;
/// The TLP of submitted items that carry none, when the request does not say.
pub const DEFAULT_SUBMIT_TLP: Tlp = Tlp::Green;

const READERS: [Role; 3] = [Role::Consumer, Role::Reviewer, Role::Admin];

pub(super) fn routes(r: Routes) -> Routes {
    r.add(
        &["get", "post"],
        "/api/indicators",
        get(search).post(submit),
    )
    .add(&["get"], "/api/indicators/{*value}", get(explain))
}

fn bad(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, field, message)
}

/// The query's parameters, each at most once and each one of `known`.
fn params<'q>(
    query: &'q [(String, String)],
    known: &[&'static str],
) -> Result<HashMap<&'static str, &'q str>, ApiError> {
    let mut out = HashMap::new();
    for (name, value) in query {
        let Some(k) = known.iter().find(|k| **k == name.as_str()) else {
            return Err(bad(
                "query",
                format!("unknown parameter {name:?}; expected {}", known.join(", ")),
            ));
        };
        if out.insert(*k, value.as_str()).is_some() {
            return Err(bad(k, "given more than once"));
        }
    }
    Ok(out)
}

// --- submissions

/// One item of a submission and what became of it before the import.
#[derive(Debug)]
struct Item {
    /// Where it was: `$[3]`, `line 12`, `$.objects[4].pattern`.
    at: String,
    value: String,
    kind: ItemKind,
}

#[derive(Debug)]
enum ItemKind {
    /// Goes to the import as this record.
    Record(Box<Record>),
    /// Refused before the import.
    Rejected {
        reason: String,
        message: String,
        field: Option<String>,
    },
}

fn rejected(
    at: String,
    value: String,
    reason: &str,
    message: String,
    field: Option<String>,
) -> Item {
    Item {
        at,
        value,
        kind: ItemKind::Rejected {
            reason: reason.to_owned(),
            message,
            field,
        },
    }
}

/// The fields a JSON item may have.
const ITEM_FIELDS: [&str; 11] = [
    "value",
    "kind",
    "category",
    "tlp",
    "confidence",
    "tags",
    "first_seen",
    "last_seen",
    "valid_until",
    "reference",
    "revoked",
];

/// Reads the JSON list form: an array (or `{"indicators": [...]}`) whose items are
/// strings or objects `{"value", "kind", "category", "tlp", "confidence", "tags",
/// "first_seen", "last_seen", "valid_until", "reference", "revoked"}`. A malformed
/// item is rejected on its own, naming its field; the others go on.
/// One JSON item: where it was, and its record or (field, message).
pub(super) type JsonItem = (String, Result<Record, (String, String)>);

pub(super) fn json_items(body: &Value) -> Result<Vec<JsonItem>, ApiError> {
    let list = match body {
        Value::Array(items) => items,
        Value::Object(o) => match o.get("indicators") {
            Some(Value::Array(items)) if o.len() == 1 => items,
            _ => {
                return Err(bad(
                    "body",
                    "expected a JSON array of indicators, or {\"indicators\": [...]} (a STIX bundle is sent as application/stix+json)",
                ));
            }
        },
        _ => return Err(bad("body", "expected a JSON array of indicators")),
    };
    Ok(list
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("$[{i}]");
            let r = json_item(&at, v);
            (at, r)
        })
        .collect())
}

/// One JSON item as a record, or (field, message).
fn json_item(at: &str, v: &Value) -> Result<Record, (String, String)> {
    let err = |field: &str, message: String| (format!("{at}.{field}"), message);
    let o = match v {
        Value::String(s) => {
            return Ok(Record::new(
                Location::Path(at.to_owned()),
                s.clone(),
                Hint::Any,
            ));
        }
        Value::Object(o) => o,
        _ => return Err((at.to_owned(), "expected a string or an object".to_owned())),
    };
    if let Some(k) = o.keys().find(|k| !ITEM_FIELDS.contains(&k.as_str())) {
        return Err(err(
            k,
            format!("unknown field; expected {}", ITEM_FIELDS.join(", ")),
        ));
    }
    let text = |f: &str| -> Result<Option<&str>, (String, String)> {
        match o.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(err(f, "expected a string".to_owned())),
        }
    };
    let time = |f: &str| -> Result<Option<Timestamp>, (String, String)> {
        text(f)?
            .map(|s| {
                s.parse::<Timestamp>()
                    .map_err(|e| err(f, format!("not an RFC 3339 time: {e}")))
            })
            .transpose()
    };
    let value = text("value")?.ok_or_else(|| err("value", "required".to_owned()))?;
    let hint = match text("kind")? {
        None => Hint::Any,
        Some("domain") => Hint::Domain,
        Some("wildcard") => Hint::Wildcard,
        Some("url") => Hint::Url,
        Some("ip") => Hint::Ip,
        Some("cidr") => Hint::Cidr,
        Some(k) => {
            return Err(err(
                "kind",
                format!("{k:?} is not one of domain, wildcard, url, ip, cidr"),
            ));
        }
    };
    let mut meta = Meta {
        category: text("category")?
            .map(|c| c.parse::<Category>().map_err(|e| err("category", e)))
            .transpose()?,
        tlp: text("tlp")?
            .map(|t| {
                Tlp::from_label(t).ok_or_else(|| {
                    err(
                        "tlp",
                        format!("{t:?} is not one of clear, green, amber, amber+strict, red"),
                    )
                })
            })
            .transpose()?,
        first_seen: time("first_seen")?,
        last_seen: time("last_seen")?,
        valid_until: time("valid_until")?,
        reference: text("reference")?.map(str::to_owned),
        ..Meta::default()
    };
    match o.get("confidence") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => match n.as_u64().filter(|c| *c <= 100) {
            Some(c) => meta.confidence = Some(Confidence::new(c as u32)),
            None => return Err(err("confidence", "expected an integer 0 to 100".to_owned())),
        },
        Some(_) => return Err(err("confidence", "expected an integer 0 to 100".to_owned())),
    }
    match o.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tags)) => {
            for t in tags {
                match t {
                    Value::String(s) => meta.tags.push(s.clone()),
                    _ => return Err(err("tags", "expected an array of strings".to_owned())),
                }
            }
        }
        Some(_) => return Err(err("tags", "expected an array of strings".to_owned())),
    }
    match o.get("revoked") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => meta.revoked = *b,
        Some(_) => return Err(err("revoked", "expected true or false".to_owned())),
    }
    Ok(Record::new(Location::Path(at.to_owned()), value, hint).with_meta(meta))
}

/// The body as items, by its content type.
fn read_body(content_type: &str, body: &[u8]) -> Result<(Format, Vec<Item>), ApiError> {
    if body.starts_with(&[0x1f, 0x8b]) {
        return Err(bad(
            "body",
            "compressed bodies are not accepted; send the text (the limit is on the body as sent)",
        ));
    }
    let text = std::str::from_utf8(body).map_err(|e| bad("body", format!("not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(bad("body", "empty: no indicators"));
    }
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let format = match mime.as_str() {
        "application/json" => {
            let value: Value = serde_json::from_str(text).map_err(|e| {
                bad(
                    "body",
                    format!("not JSON: line {}, column {}: {e}", e.line(), e.column()),
                )
            })?;
            if value.get("type").and_then(Value::as_str) == Some("bundle") {
                Format::Stix
            } else {
                let items = json_items(&value)?
                    .into_iter()
                    .map(|(at, r)| match r {
                        Ok(record) => Item {
                            at,
                            value: record.value.clone(),
                            kind: ItemKind::Record(Box::new(record)),
                        },
                        Err((field, message)) => {
                            let value = value_at(&value, &at);
                            rejected(at, value, "invalid-field", message, Some(field))
                        }
                    })
                    .collect();
                return Ok((Format::Plain, items));
            }
        }
        "application/stix+json" | "application/taxii+json" => Format::Stix,
        "text/csv" => Format::Csv,
        "text/plain" => Format::Plain,
        "" => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-type",
                "missing; send application/json, application/stix+json, text/csv or text/plain",
            ));
        }
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-type",
                format!(
                    "{other:?} is not taken; send application/json, application/stix+json, text/csv or text/plain"
                ),
            ));
        }
    };
    let parsed = formats::read_text(
        text,
        &ReadOptions {
            format: Some(format),
            csv_columns: None,
        },
    )
    .map_err(|e| {
        bad(
            "body",
            match &e.at {
                Some(at) => format!("not {}: {at}: {}", format.name(), e.message),
                None => format!("not {}: {}", format.name(), e.message),
            },
        )
    })?;
    Ok((format, items_of(parsed)))
}

/// The JSON list item at `$[i]` as text, for a rejected item's `value`.
fn value_at(body: &Value, at: &str) -> String {
    let i = at
        .trim_start_matches("$[")
        .trim_end_matches(']')
        .parse::<usize>()
        .ok();
    let list = match body {
        Value::Object(o) => o.get("indicators"),
        v => Some(v),
    };
    match i.and_then(|i| list.and_then(|l| l.get(i))) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("value")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

/// A reader's records and diagnostics as items, in input order.
fn items_of(parsed: Parsed) -> Vec<Item> {
    let mut items: Vec<(Location, Item)> = parsed
        .records
        .into_iter()
        .map(|r| {
            (
                r.at.clone(),
                Item {
                    at: r.at.to_string(),
                    value: r.value.clone(),
                    kind: ItemKind::Record(Box::new(r)),
                },
            )
        })
        .collect();
    items.extend(
        parsed
            .diagnostics
            .into_iter()
            .map(|Diagnostic { at, message }| {
                (
                    at.clone(),
                    rejected(at.to_string(), String::new(), "unreadable", message, None),
                )
            }),
    );
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.into_iter().map(|(_, i)| i).collect()
}

/// What one accepted indicator became, read after the import.
struct Outcome {
    state: Option<String>,
    reasons: Vec<String>,
    rules: Vec<Value>,
}

async fn submit(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let partner = require(&state, &headers, &[Role::Contributor, Role::Admin])?;
    let result = submit_as(&state, &partner, &headers, query, body).await;
    if let Err(e) = &result
        && e.status.is_client_error()
    {
        state.metrics.import("unreadable");
        let mut errors = match state.errors.lock() {
            Ok(e) => e,
            Err(p) => p.into_inner(),
        };
        errors.insert(
            partner.name.clone(),
            (
                store::stored_time(Timestamp::now()),
                format!("{}: {}", e.field.unwrap_or("request"), e.message),
            ),
        );
    }
    result
}

async fn submit_as(
    state: &Arc<HttpState>,
    partner: &Arc<Partner>,
    headers: &HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| bad("query", e.body_text()))?;
    let p = params(&query, &["category", "tlp", "reason"])?;
    let defaults = ImportDefaults {
        category: match p.get("category") {
            Some(c) => c.parse::<Category>().map_err(|e| bad("category", e))?,
            None => Category::Unknown,
        },
        tlp: match p.get("tlp") {
            Some(t) => Tlp::from_label(t).ok_or_else(|| {
                bad(
                    "tlp",
                    format!("{t:?} is not one of clear, green, amber, amber+strict, red"),
                )
            })?,
            None => DEFAULT_SUBMIT_TLP,
        },
    };
    let reason = p.get("reason").map(|r| r.trim().to_owned());
    if reason.as_ref().is_some_and(|r| r.len() > 512) {
        return Err(bad("reason", "longer than 512 bytes"));
    }
    let body = body.map_err(|e| ApiError::new(e.status(), "body", e.body_text()))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (format, items) = read_body(&content_type, &body)?;
    drop(body);
    let records: Vec<Record> = items
        .iter()
        .filter_map(|i| match &i.kind {
            ItemKind::Record(r) => Some((**r).clone()),
            ItemKind::Rejected { .. } => None,
        })
        .collect();
    if items.is_empty() {
        return Err(bad("body", "no indicators in it"));
    }
    let partner_ = partner.clone();
    let answer = state
        .write(move |hub| {
            let source = partner_.source();
            let origin = match &reason {
                Some(r) if !r.is_empty() => format!("api: {r}"),
                _ => "api".to_owned(),
            };
            let now = Timestamp::now();
            let normalised: Vec<Option<Result<Indicator, indicator::Reject>>> = items
                .iter()
                .map(|i| match &i.kind {
                    ItemKind::Record(r) if r.polarity == Polarity::Block => Some(r.normalise()),
                    _ => None,
                })
                .collect();
            let any = normalised.iter().any(|n| matches!(n, Some(Ok(_))));
            let report = if any {
                let mut parsed = Parsed::new(format);
                parsed.records = records;
                let job = ImportJob {
                    source: &source,
                    origin: &origin,
                    defaults: &defaults,
                };
                Some(
                    hub.import(&job, &parsed, now, &partner_.name)
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                )
            } else {
                None
            };
            // What each accepted indicator became.
            let mut outcomes: HashMap<String, Outcome> = HashMap::new();
            if report.as_ref().is_some_and(|r| r.held.is_none()) {
                let values: Vec<String> = normalised
                    .iter()
                    .filter_map(|n| match n {
                        Some(Ok(i)) => Some(i.to_string()),
                        _ => None,
                    })
                    .collect();
                outcomes = hub
                    .store
                    .read(|tx| {
                        let mut out = HashMap::new();
                        for v in values {
                            if out.contains_key(&v) {
                                continue;
                            }
                            let Some(row) = tx.indicator_by_value(&v)? else {
                                continue;
                            };
                            let d = tx.decisions_of(&[row.id])?.into_iter().next();
                            let mut rules = Vec::new();
                            if let Some(d) = &d {
                                for feed in &d.feeds {
                                    for r in &d.rules {
                                        rules.push(json!({
                                            "feed": feed,
                                            "trigger": r.trigger,
                                            "action": r.action,
                                            "serial": tx.rule_published_serial(feed, &r.trigger)?,
                                        }));
                                    }
                                }
                            }
                            out.insert(
                                v,
                                Outcome {
                                    state: d.as_ref().map(|d| d.state.clone()),
                                    reasons: d.map(|d| d.reasons).unwrap_or_default(),
                                    rules,
                                },
                            );
                        }
                        Ok(out)
                    })
                    .map_err(|e| ApiError::internal(e.to_string()))?;
            }
            Ok((items, normalised, report, outcomes))
        })
        .await?;
    let (items, normalised, report, outcomes) = answer;
    let held = report.as_ref().and_then(|r| r.held.clone());
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let results: Vec<Value> = items
        .into_iter()
        .zip(normalised)
        .map(|(item, n)| {
            let (status, extra) = match (item.kind, n) {
                (ItemKind::Rejected { reason, message, field }, _) => (
                    "rejected",
                    json!({"reason": reason, "message": message, "field": field}),
                ),
                (ItemKind::Record(_), None) => (
                    "rejected",
                    json!({"reason": "allow-record", "message": "an exception (allow) record: the API takes indicators to block"}),
                ),
                (ItemKind::Record(_), Some(Err(e))) => (
                    "rejected",
                    json!({"reason": e.code.as_str(), "message": e.detail}),
                ),
                (ItemKind::Record(r), Some(Ok(i))) => {
                    let value = i.to_string();
                    if r.meta.as_deref().is_some_and(|m| m.revoked) {
                        ("revoked", json!({"indicator": value}))
                    } else if let Some(why) = &held {
                        ("held", json!({"indicator": value, "reasons": why}))
                    } else {
                        let o = outcomes.get(&value);
                        (
                            "accepted",
                            json!({
                                "indicator": value,
                                "state": o.and_then(|o| o.state.clone()),
                                "reasons": o.map(|o| o.reasons.clone()).unwrap_or_default(),
                                "rules": o.map(|o| o.rules.clone()).unwrap_or_default(),
                            }),
                        )
                    }
                }
            };
            *counts.entry(status).or_default() += 1;
            let mut v = json!({"at": item.at, "value": item.value, "status": status});
            if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
                for (k, x) in more {
                    if !x.is_null() {
                        obj.insert(k, x);
                    }
                }
            }
            v
        })
        .collect();
    for (status, n) in &counts {
        state.metrics.items(status, *n);
    }
    state.metrics.import(match (&report, &held) {
        (None, _) => "nothing-imported",
        (Some(_), Some(_)) => "held",
        (Some(_), None) => "published",
    });
    let serials: BTreeMap<&String, u32> = report
        .as_ref()
        .map(|r| r.applied.feeds.iter().map(|(f, (_, s))| (f, *s)).collect())
        .unwrap_or_default();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "partner": partner.name,
            "batch": report.as_ref().and_then(|r| r.batch_id),
            "held": held,
            "serials": serials,
            "counts": counts,
            "items": results,
        }),
    ))
}

// --- reads

async fn explain(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let partner = require(&state, &headers, &READERS)?;
    let Path(value) = path.map_err(|e| bad("value", e.body_text()))?;
    if value.trim().is_empty() || value.len() > 4096 {
        return Err(bad(
            "value",
            "expected a name, URL or address (at most 4096 bytes)",
        ));
    }
    let clearance = partner.clearance;
    let e = state
        .with_hub(move |hub| {
            hub.explain_within(&value, Timestamp::now(), Some(clearance))
                .map_err(|e| ApiError::internal(e.to_string()))
        })
        .await?;
    Ok(json_response(StatusCode::OK, &e.to_json()))
}

fn cursor_of(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{id}"))
}

fn cursor_id(cursor: &str) -> Option<i64> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("after:")?
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
}

const STATES: [&str; 6] = [
    store::STATE_PUBLISH,
    store::STATE_URL_ONLY,
    store::STATE_ADDRESS_ONLY,
    store::STATE_HOLD,
    store::STATE_IGNORE,
    store::STATE_DELISTED,
];

async fn search(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let partner = require(&state, &headers, &READERS)?;
    let Query(query) = query.map_err(|e| bad("query", e.body_text()))?;
    let p = params(&query, &["q", "state", "cursor", "limit"])?;
    let q = p
        .get("q")
        .map(|q| q.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if q.len() > 256 {
        return Err(bad("q", "longer than 256 bytes"));
    }
    let wanted = match p.get("state") {
        Some(s) if STATES.contains(s) => Some((*s).to_owned()),
        Some(s) => {
            return Err(bad(
                "state",
                format!("{s:?} is not one of {}", STATES.join(", ")),
            ));
        }
        None => None,
    };
    let after = match p.get("cursor") {
        Some(c) => cursor_id(c).ok_or_else(|| bad("cursor", "not a cursor this API gave"))?,
        None => 0,
    };
    let limit = match p.get("limit") {
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| bad("limit", format!("expected 1 to {MAX_PAGE}")))?,
        None => DEFAULT_PAGE,
    };
    let clearance = partner.clearance;
    let (hits, tlps) = state
        .with_store(move |store| {
            store
                .read(|tx| {
                    let hits = tx.indicators_search(&q, wanted.as_deref(), after, limit)?;
                    let ids: Vec<i64> = hits.iter().map(|(i, _)| i.id).collect();
                    let tlps = crate::evidence::visibility(tx, &ids)?;
                    Ok((hits, tlps))
                })
                .map_err(|e| e.to_string())
        })
        .await?;
    let next = (hits.len() == limit as usize)
        .then(|| hits.last().map(|(i, _)| cursor_of(i.id)))
        .flatten();
    let items: Vec<Value> = hits
        .into_iter()
        .filter_map(|(i, d)| {
            let tlp = *tlps.get(&i.id)?;
            (tlp <= clearance).then(|| {
                json!({
                    "value": i.value,
                    "kind": i.kind,
                    "state": d.as_ref().map(|d| d.state.clone()),
                    "score": d.as_ref().map(|d| d.score),
                    "category": d.as_ref().map(|d| d.category.clone()),
                    "tlp": tlp.as_str(),
                })
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"items": items, "next": next}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        assert_eq!(cursor_id(&cursor_of(42)), Some(42));
        assert_eq!(cursor_id("42"), None);
        assert_eq!(cursor_id(&cursor_of(-1)), None);
    }

    #[test]
    fn json_items_name_the_bad_field() {
        let body: Value = serde_json::from_str(
            r#"["evil.example",
                {"value": "http://x.example/a", "kind": "url", "category": "phishing", "tlp": "amber", "confidence": 80, "tags": ["kit"]},
                {"value": "y.example", "tlp": "purple"},
                {"value": "z.example", "colour": "red"},
                {"kind": "domain"},
                {"value": "w.example", "confidence": 101}]"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let items = json_items(&body).unwrap_or_else(|e| panic!("{e:?}"));
        let shown: Vec<String> = items
            .iter()
            .map(|(at, r)| match r {
                Ok(rec) => format!(
                    "{at} ok {} {:?} {:?}",
                    rec.value,
                    rec.meta.as_deref().and_then(|m| m.tlp),
                    rec.meta
                        .as_deref()
                        .and_then(|m| m.confidence)
                        .map(Confidence::get)
                ),
                Err((field, message)) => format!("{at} {field}: {message}"),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "$[0] ok evil.example None None",
                "$[1] ok http://x.example/a Some(Amber) Some(80)",
                "$[2] $[2].tlp: \"purple\" is not one of clear, green, amber, amber+strict, red",
                "$[3] $[3].colour: unknown field; expected value, kind, category, tlp, confidence, tags, first_seen, last_seen, valid_until, reference, revoked",
                "$[4] $[4].value: required",
                "$[5] $[5].confidence: expected an integer 0 to 100",
            ]
        );
        assert!(json_items(&json!({"x": 1})).is_err());
        assert!(json_items(&json!("evil.example")).is_err());
    }
}
