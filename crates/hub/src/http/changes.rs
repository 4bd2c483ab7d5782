//! `GET /feeds/{feed}/changes?since=SERIAL`: what changed in a feed since a serial, as
//! JSON — the HTTP twin of IXFR, read from the same journal and condensed the same way
//! ([`crate::feed_delta`]).
//!
//! ```json
//! {"feed":"phishing","since":3,"serial":5,
//!  "removed":[{"trigger":"old.example","action":"nxdomain"}],
//!  "added":[{"trigger":"*.evil.example","action":"nxdomain"}]}
//! ```
//!
//! A reader that is current gets empty lists. When the journal does not reach back to
//! `since` (or `since` is ahead of the feed, e.g. after the hub's store was rebuilt),
//! the answer is `410 Gone` with `"reset": "full"`, the current serial and the URL of
//! the full export: the reader starts over from that. `since` missing or not a serial
//! is a 400 naming the field; an unknown feed or query parameter is reported likewise.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;
use store::RuleText;

use super::{ApiError, HttpState, Routes, json_response};
use crate::FeedDelta;

pub(super) fn routes(r: Routes) -> Routes {
    r.add(&["get"], "/feeds/{feed}/changes", get(changes))
}

fn rules(rs: &[RuleText]) -> serde_json::Value {
    rs.iter()
        .map(|r| json!({"trigger": r.trigger, "action": r.action}))
        .collect()
}

async fn changes(
    State(state): State<Arc<HttpState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(feed) =
        path.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "path", e.body_text()))?;
    let Query(params) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))?;
    let mut since = None;
    for (name, value) in &params {
        match name.as_str() {
            "since" if since.is_none() => since = Some(value.as_str()),
            "since" => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "since",
                    "given more than once",
                ));
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "query",
                    format!("unknown parameter {other:?}; expected since"),
                ));
            }
        }
    }
    let Some(since) = since else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "since",
            "required: the serial you hold (0 for none)",
        ));
    };
    let Ok(since) = since.parse::<u32>() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "since",
            format!("{since:?} is not a serial (0 to 4294967295)"),
        ));
    };
    if state.serial(&feed).is_none() {
        return Err(unknown_feed(&feed));
    }
    let feed_ = feed.clone();
    let delta = state
        .with_store(move |store| {
            store
                .read(|tx| crate::feed_delta(tx, &feed_, since))
                .map_err(|e| e.to_string())
        })
        .await?;
    match delta {
        FeedDelta::NoFeed => Err(unknown_feed(&feed)),
        FeedDelta::Unreachable { serial } => Err(ApiError::new(
            StatusCode::GONE,
            "since",
            if since > serial {
                format!(
                    "serial {since} is ahead of the feed (it is at {serial}): not a state this hub published; fetch the full export"
                )
            } else {
                format!(
                    "the journal does not reach back to serial {since} (the feed is at {serial}); fetch the full export"
                )
            },
        )
        .with("reset", json!("full"))
        .with("serial", json!(serial))
        .with("full", json!(format!("/feeds/{feed}.rpz")))),
        FeedDelta::Changes {
            serial,
            removed,
            added,
        } => Ok(json_response(
            StatusCode::OK,
            &json!({
                "feed": feed,
                "since": since,
                "serial": serial,
                "removed": rules(&removed),
                "added": rules(&added),
            }),
        )),
    }
}

fn unknown_feed(feed: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "feed",
        format!("unknown feed {feed:?}"),
    )
}
