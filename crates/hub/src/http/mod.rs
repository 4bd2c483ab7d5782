//! The hub's HTTP front: feed exports (with ETag, gzip and minisign signatures) and
//! journal deltas as JSON, on the tokio runtime `hub serve` runs.
//!
//! The router is built from one sub-router per area ([`exports`] for now; the partner
//! API — submissions, tokens, TAXII — joins it later), all sharing one [`HttpState`].
//! Handlers never touch the store on the async threads: reads and renders run on
//! tokio's blocking pool. Every error a request can cause is a 4xx with a JSON body
//! `{"error": "...", "field": "..."}` naming the path or query field at fault; only a
//! failing store gives a 5xx.
//!
//! The feeds' serials are read every [`dns::POLL_INTERVAL`] into a snapshot ([`watch`]),
//! so a conditional request (`If-None-Match`) is answered 304 from memory, without a
//! store read or a render.

mod changes;
mod exports;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use store::Store;

pub use exports::{Cache, Rendered, accepts_gzip, etag_matches};

/// Where the HTTP front listens when neither `--http-listen` nor the config says.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8053";

/// The `[http]` table of the `hub serve` configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listening address; `--http-listen` overrides it.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Directory of the signing key (`signing.key`, `signing.pub`); `--key-dir`
    /// overrides it. Default: the SQLite data directory (required with PostgreSQL).
    #[serde(default)]
    pub key_dir: Option<PathBuf>,
}

/// What every handler shares.
pub struct HttpState {
    /// The store, for renders and journal reads (one at a time; each is one read
    /// transaction). Its own connection: a long render never delays a DNS transfer.
    store: Mutex<Store>,
    signer: sign::SigningKey,
    /// The public key file, served at `/feeds/pubkey`.
    pubkey: String,
    /// Feed → serial, refreshed by [`watch`].
    serials: RwLock<Arc<HashMap<String, u32>>>,
    cache: Cache,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("key", &self.signer.id())
            .finish_non_exhaustive()
    }
}

impl HttpState {
    /// The state over `store`, signing with `signer`; reads the serials once.
    pub fn new(mut store: Store, signer: sign::SigningKey) -> store::Result<HttpState> {
        let serials = read_serials(&mut store)?;
        Ok(HttpState {
            pubkey: signer.public().to_file(),
            store: Mutex::new(store),
            signer,
            serials: RwLock::new(Arc::new(serials)),
            cache: Cache::default(),
        })
    }

    fn serial(&self, feed: &str) -> Option<u32> {
        let serials = match self.serials.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        };
        serials.get(feed).copied()
    }

    /// Runs `f` on the store, on the blocking pool.
    async fn with_store<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> Result<R, String> + Send + 'static,
    ) -> Result<R, ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = state
                .store
                .lock()
                .map_err(|_| "the store lock is poisoned".to_owned())?;
            f(&mut store)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::internal)
    }
}

fn read_serials(store: &mut Store) -> store::Result<HashMap<String, u32>> {
    Ok(store
        .read(|tx| tx.feeds())?
        .into_iter()
        .map(|f| (f.name, f.serial))
        .collect())
}

/// Refreshes the serial snapshot every [`dns::POLL_INTERVAL`], forever.
pub async fn watch(state: Arc<HttpState>) {
    let mut tick = tokio::time::interval(dns::POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state
            .with_store(|s| read_serials(s).map_err(|e| e.to_string()))
            .await
        {
            Ok(serials) => match state.serials.write() {
                Ok(mut s) => *s = Arc::new(serials),
                Err(p) => *p.into_inner() = Arc::new(serials),
            },
            Err(e) => tracing::warn!(error = %e.message, "reading the feeds' serials failed"),
        }
    }
}

/// The whole HTTP API.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .merge(exports::routes())
        .merge(changes::routes())
        .fallback(not_found)
        .with_state(state)
}

/// Serves `router(state)` on `listener` (and keeps the serial snapshot fresh) until
/// `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let watcher = tokio::spawn(watch(state.clone()));
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    watcher.abort();
    result
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "path", "no such resource")
}

/// An error answer: a status and a JSON body naming the field at fault.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    field: Option<&'static str>,
    message: String,
    /// Extra members of the JSON body (e.g. the current serial of a reset).
    extra: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    fn new(status: StatusCode, field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            field: Some(field),
            message: message.into(),
            extra: Vec::new(),
        }
    }

    fn internal(message: String) -> ApiError {
        tracing::warn!(error = %message, "request failed: store");
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            field: None,
            message: "the store is unavailable; try again".to_owned(),
            extra: Vec::new(),
        }
    }

    fn with(mut self, key: &'static str, value: serde_json::Value) -> ApiError {
        self.extra.push((key, value));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("error".to_owned(), self.message.into());
        if let Some(f) = self.field {
            body.insert("field".to_owned(), f.into());
        }
        for (k, v) in self.extra {
            body.insert(k.to_owned(), v);
        }
        json_response(self.status, &serde_json::Value::Object(body))
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut bytes = body.to_string().into_bytes();
    bytes.push(b'\n');
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
