//! What the hub is doing: `GET /api/feeds` (each feed, its serial, rules and export
//! URLs), `GET /api/status` (feeds, sources with their last import and their last
//! failed submission, each scheduled pull's last fetch, error and failure counts,
//! the review queue, the DNS front's counters) and `GET
//! /api/openapi.json` (the API described, OpenAPI 3.1; every route of the router is
//! in it — a test checks).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::auth::require;
use super::{ApiError, HttpState, Routes, json_response};
use crate::access::Role;

/// The OpenAPI document of every route.
pub const OPENAPI: &str = include_str!("openapi.json");

pub(super) fn routes(r: Routes) -> Routes {
    r.add(&["get"], "/api/feeds", get(feeds))
        .add(&["get"], "/api/status", get(status))
        .add(&["get"], "/api/openapi.json", get(openapi))
}

async fn openapi() -> Response {
    let mut r = Response::new(Body::from(OPENAPI));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Each feed with its serial, rule count and last change.
async fn feed_rows(state: &Arc<HttpState>) -> Result<Vec<Value>, ApiError> {
    let rows = state
        .with_store(|store| {
            store
                .read(|tx| {
                    let mut out = Vec::new();
                    for f in tx.feeds()? {
                        let n = tx.feed_rule_count(&f.name)?;
                        out.push((f, n));
                    }
                    Ok(out)
                })
                .map_err(|e| e.to_string())
        })
        .await?;
    Ok(rows
        .into_iter()
        .map(|(f, rules)| {
            let exports: serde_json::Map<String, Value> = crate::ExportFormat::ALL
                .iter()
                .map(|x| {
                    let ext = super::exports::extension(*x);
                    (
                        x.name().to_owned(),
                        json!(format!("/feeds/{}.{ext}", f.name)),
                    )
                })
                .collect();
            json!({
                "feed": f.name,
                "zone": crate::zone_name(&f.name),
                "serial": f.serial,
                "rules": rules,
                "updated_at": f.updated_at.map(|t| t.to_string()),
                "exports": exports,
                "changes": format!("/feeds/{}/changes?since={}", f.name, f.serial),
            })
        })
        .collect())
}

async fn feeds(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&state, &headers, &[])?;
    let feeds = feed_rows(&state).await?;
    Ok(json_response(StatusCode::OK, &json!({"feeds": feeds})))
}

async fn status(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&state, &headers, &[Role::Reviewer, Role::Admin])?;
    let feeds = feed_rows(&state).await?;
    let (sources, held, open) = state
        .with_store(|store| {
            store
                .read(|tx| {
                    Ok((
                        tx.source_activity()?,
                        tx.batches(Some(store::BatchStatus::Held))?.len(),
                        tx.reports(Some(store::ReportStatus::Open))?.len(),
                    ))
                })
                .map_err(|e| e.to_string())
        })
        .await?;
    let errors = match state.errors.lock() {
        Ok(e) => e.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let sources: Vec<Value> = sources
        .iter()
        .map(|s| {
            let error = s
                .source
                .name
                .strip_prefix("partner:")
                .and_then(|p| errors.get(p))
                .map(|(at, message)| json!({"at": at.to_string(), "message": message}));
            json!({
                "name": s.source.name,
                "kind": s.source.kind.as_str(),
                "trust": s.source.trust,
                "group": s.source.group,
                "batches": s.batches,
                "held": s.held,
                "last_import": s.last_import.map(|t| t.to_string()),
                "last_error": error,
            })
        })
        .collect();
    let pulls: Vec<Value> = state
        .pull_sources()
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "url": p.url,
                "snapshot": p.snapshot,
                "interval_ms": p.interval_ms,
                "last_attempt": p.last_attempt.map(|t| t.to_string()),
                "last_success": p.last_success.map(|t| t.to_string()),
                "last_import": p.last_import.map(|t| t.to_string()),
                "last_outcome": p.last_outcome.map(|o| o.as_str()),
                "last_error": p.last_error,
                "consecutive_failures": p.consecutive_failures,
                "attempts": p.attempts,
                "failures": p.failures,
                "http_status": p.http_status,
                "next_attempt": p.next_attempt.map(|t| t.to_string()),
                "effect": p.effect.iter().map(|e| json!({
                    "feed": e.feed, "added": e.added, "removed": e.removed, "serial": e.serial,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let dns = state.dns.as_ref().map(|d| {
        let s = d.stats();
        json!({
            "queries": s.queries.load(Ordering::Relaxed),
            "axfr": s.axfr.load(Ordering::Relaxed),
            "ixfr": s.ixfr.load(Ordering::Relaxed),
            "ixfr_current": s.ixfr_current.load(Ordering::Relaxed),
            "refused": s.refused.load(Ordering::Relaxed),
            "notify_sent": s.notify_sent.load(Ordering::Relaxed),
            "notify_acked": s.notify_acked.load(Ordering::Relaxed),
        })
    });
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "feeds": feeds,
            "sources": sources,
            "pulls": pulls,
            "review": {"held_batches": held, "open_reports": open},
            "dns": dns,
        }),
    ))
}
