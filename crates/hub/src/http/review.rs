//! People overrule the machine over HTTP: the public false-positive report
//! (`POST /api/reports`), the review queue (`GET /api/review`, `POST
//! /api/review/{id}/approve|reject`) and delisting (`POST /api/delist`).
//!
//! A report is what a block page sends when someone says "this is my site": a name
//! (or the rule that matched), free text, maybe a way to reach them. It needs no
//! token, so it is rate-limited per client address (a token bucket in memory; the
//! address is used for nothing else: not stored, not logged, not returned). It is
//! stored in the review queue and changes no rule by itself: a reviewer approves it
//! (the name is delisted, in the same transaction as the report is closed) or
//! rejects it. The queue also holds the batches the circuit breaker held. Every
//! decision needs a reason, and goes to the audit log with the reviewer's name.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use indicator::{Hint, Indicator, Timestamp};
use serde_json::{Map, Value, json};
use store::{BatchStatus, ReportStatus};

use super::auth::require;
use super::{ApiError, HttpState, Routes, json_response};
use crate::NewReportText;
use crate::access::Role;

/// The longest report text, in bytes.
pub const MAX_REPORT_TEXT: usize = 2048;
/// The longest contact, in bytes.
pub const MAX_CONTACT: usize = 256;
/// The longest reason a reviewer gives, in bytes.
pub const MAX_REASON: usize = 1024;

const REVIEWERS: [Role; 2] = [Role::Reviewer, Role::Admin];

pub(super) fn routes(r: Routes) -> Routes {
    r.add(&["post"], "/api/reports", post(report))
        .add(&["get"], "/api/review", get(queue))
        .add(&["post"], "/api/review/{id}/approve", post(approve))
        .add(&["post"], "/api/review/{id}/reject", post(reject))
        .add(&["post"], "/api/delist", post(delist))
}

fn bad(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, field, message)
}

/// The body as a JSON object whose keys are all in `fields`.
fn object(
    body: Result<Bytes, BytesRejection>,
    fields: &[&'static str],
) -> Result<Map<String, Value>, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), "body", e.body_text()))?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        bad(
            "body",
            format!("not JSON: line {}, column {}: {e}", e.line(), e.column()),
        )
    })?;
    let Value::Object(o) = value else {
        return Err(bad("body", "expected a JSON object"));
    };
    if let Some(k) = o.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body",
            format!("unknown field {k:?}; expected {}", fields.join(", ")),
        ));
    }
    Ok(o)
}

/// A string member: absent or null is `None`; too long, not a string, or holding
/// control characters (other than newlines and tabs) is an error naming it.
fn text(
    o: &Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.len() > max {
                Err(bad(field, format!("longer than {max} bytes")))
            } else if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                Err(bad(field, "holds control characters"))
            } else if s.is_empty() {
                Ok(None)
            } else {
                Ok(Some(s.to_owned()))
            }
        }
        Some(_) => Err(bad(field, "expected a string")),
    }
}

fn required(o: &Map<String, Value>, field: &'static str, max: usize) -> Result<String, ApiError> {
    text(o, field, max)?.ok_or_else(|| bad(field, "required"))
}

/// The checked content of a report.
fn report_text(o: &Map<String, Value>) -> Result<NewReportText, ApiError> {
    let name = text(o, "name", 4096)?;
    let rule = text(o, "rule", 300)?;
    let mut message = required(o, "message", MAX_REPORT_TEXT)?;
    let contact = text(o, "contact", MAX_CONTACT)?;
    let feed = text(o, "feed", 64)?;
    if let Some(f) = &feed
        && !analysis::DEFAULT_FEEDS.contains(&f.as_str())
    {
        return Err(bad(
            "feed",
            format!(
                "unknown feed {f:?}; expected {}",
                analysis::DEFAULT_FEEDS.join(", ")
            ),
        ));
    }
    let (kind, target) = match (name, rule) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(bad("name", "give exactly one of name and rule"));
        }
        (Some(name), None) => match Indicator::parse(&name, Hint::Any) {
            Ok(Indicator::Domain(d)) => ("name", d.to_string()),
            Ok(Indicator::Url(u)) => match u.domain() {
                Some(d) => {
                    // The rule that blocks a URL's page is on its host; keep the URL
                    // for the reviewer.
                    message = format!("url: {u}\n{message}");
                    ("name", d.to_string())
                }
                None => return Err(bad("name", "a URL on an IP address is not blocked by name")),
            },
            Ok(_) => return Err(bad("name", "expected a domain name or a URL")),
            Err(e) => return Err(bad("name", e.to_string())),
        },
        (None, Some(rule)) => match Indicator::parse(&rule, Hint::Any) {
            Ok(i @ (Indicator::Domain(_) | Indicator::Wildcard(_))) => ("rule", i.to_string()),
            Ok(_) => return Err(bad("rule", "expected a rule's trigger: NAME or *.NAME")),
            Err(e) => return Err(bad("rule", e.to_string())),
        },
    };
    Ok(NewReportText {
        kind,
        target,
        feed,
        message,
        contact,
    })
}

async fn report(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if let Err(wait) = state.reports.take(client.ip()) {
        state.metrics.report("limited");
        let secs = wait.as_secs().max(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "client",
            format!("too many reports from this address; try again in {secs} s"),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from(secs)));
    }
    let o = object(body, &["name", "rule", "feed", "message", "contact"])?;
    let new = report_text(&o)?;
    let id = state
        .write(move |hub| {
            hub.report(&new, Timestamp::now())
                .map_err(|e| ApiError::internal(e.to_string()))
        })
        .await?;
    state.metrics.report("stored");
    tracing::info!(report = id, "false-positive report stored for review");
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({"report": format!("report-{id}"), "status": "open"}),
    ))
}

async fn queue(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&state, &headers, &REVIEWERS)?;
    let (batches, reports) = state
        .with_store(|store| {
            store
                .read(|tx| {
                    Ok((
                        tx.batches(Some(BatchStatus::Held))?,
                        tx.reports(Some(ReportStatus::Open))?,
                    ))
                })
                .map_err(|e| e.to_string())
        })
        .await?;
    let batches: Vec<Value> = batches
        .iter()
        .map(|b| {
            json!({
                "id": format!("batch-{}", b.id),
                "origin": b.origin,
                "created_at": b.created_at.to_string(),
                "held": b.held,
                "reasons": b.note.split("; ").collect::<Vec<_>>(),
            })
        })
        .collect();
    let reports: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "id": format!("report-{}", r.id),
                "kind": r.kind,
                "target": r.target,
                "feed": r.feed,
                "message": r.message,
                "contact": r.contact,
                "created_at": r.created_at.to_string(),
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"batches": batches, "reports": reports}),
    ))
}

/// What a review id names.
enum Target {
    Batch(i64),
    Report(i64),
}

fn target(path: Result<Path<String>, PathRejection>) -> Result<Target, ApiError> {
    let Path(id) = path.map_err(|e| bad("id", e.body_text()))?;
    let parse = |n: &str| n.parse::<i64>().ok().filter(|n| *n > 0);
    match id.split_once('-') {
        Some(("batch", n)) if parse(n).is_some() => Ok(Target::Batch(parse(n).unwrap_or(0))),
        Some(("report", n)) if parse(n).is_some() => Ok(Target::Report(parse(n).unwrap_or(0))),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "id",
            format!("{id:?} is not a review item: expected batch-N or report-N"),
        )),
    }
}

/// A hub refusal as the API answers it: an unknown item is 404, one already
/// decided 409.
fn refused(e: store::StoreError) -> ApiError {
    let missing = matches!(&e, store::StoreError::Invalid(m) if m.starts_with("no "));
    let status = if missing {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::CONFLICT
    };
    ApiError::from_store(e, status, "id")
}

fn applied_json(id: &str, status: &str, applied: &crate::engine::Applied) -> Value {
    let serials: serde_json::Map<String, Value> = applied
        .feeds
        .iter()
        .map(|(f, (_, s))| (f.clone(), json!(s)))
        .collect();
    json!({
        "id": id,
        "status": status,
        "rules_added": applied.rules_added(),
        "rules_removed": applied.rules_removed(),
        "serials": serials,
    })
}

async fn approve(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let who = require(&state, &headers, &REVIEWERS)?.name.clone();
    let target = target(path)?;
    let reason = required(&object(body, &["reason"])?, "reason", MAX_REASON)?;
    let (id, applied) = state
        .write(move |hub| {
            let now = Timestamp::now();
            match target {
                Target::Batch(n) => hub
                    .approve(n, &reason, now, &who)
                    .map(|a| (format!("batch-{n}"), a))
                    .map_err(refused),
                Target::Report(n) => hub
                    .approve_report(n, &reason, now, &who)
                    .map(|a| (format!("report-{n}"), a))
                    .map_err(refused),
            }
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &applied_json(&id, "approved", &applied),
    ))
}

async fn reject(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let who = require(&state, &headers, &REVIEWERS)?.name.clone();
    let target = target(path)?;
    let reason = required(&object(body, &["reason"])?, "reason", MAX_REASON)?;
    let answer = state
        .write(move |hub| {
            let now = Timestamp::now();
            match target {
                Target::Batch(n) => hub
                    .reject(n, &reason, now, &who)
                    .map(|dropped| json!({"id": format!("batch-{n}"), "status": "rejected", "observations_dropped": dropped}))
                    .map_err(refused),
                Target::Report(n) => hub
                    .reject_report(n, &reason, now, &who)
                    .map(|()| json!({"id": format!("report-{n}"), "status": "rejected"}))
                    .map_err(refused),
            }
        })
        .await?;
    Ok(json_response(StatusCode::OK, &answer))
}

async fn delist(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let who = require(&state, &headers, &REVIEWERS)?.name.clone();
    let o = object(body, &["name", "reason"])?;
    let name = required(&o, "name", 300)?;
    let reason = required(&o, "reason", MAX_REASON)?;
    let domain = indicator::Domain::parse(&name).map_err(|e| bad("name", e.to_string()))?;
    let target = domain.to_string();
    let applied = state
        .write(move |hub| {
            hub.delist(&target, &reason, Timestamp::now(), &who)
                .map_err(|e| ApiError::from_store(e, StatusCode::BAD_REQUEST, "name"))
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &applied_json(domain.as_str(), "delisted", &applied),
    ))
}
