//! The hub's HTTP front: feed exports (with ETag, gzip and minisign signatures),
//! journal deltas as JSON, and the partner API (submissions, explain and search,
//! false-positive reports, review, delisting, status, metrics), on the tokio runtime
//! `hub serve` runs.
//!
//! The router is built from one sub-router per area ([`exports`], [`changes`],
//! [`api`], [`review`], [`status`], [`metrics`]), all sharing one [`HttpState`], and
//! every route is recorded in a table as it is added ([`route_table`]), which the
//! OpenAPI document is checked against. Handlers never touch the store on the async
//! threads: reads, renders and writes run on tokio's blocking pool. Every error a
//! request can cause is a 4xx with a JSON body `{"error": "...", "field": "..."}`
//! naming the field at fault; only a failing store gives a 5xx (503).
//!
//! Writes go through the hub's own store connection ([`Hub`]), one transaction each,
//! and are published before the answer: the serial snapshot here is refreshed and the
//! DNS front is woken ([`dns::Server::publish_now`]) so that SOA answers and NOTIFYs
//! carry the new serials by the time the client reads the answer. Otherwise the
//! feeds' serials are read every [`dns::POLL_INTERVAL`] into a snapshot ([`watch`]),
//! for imports by other processes; a conditional export request (`If-None-Match`)
//! is answered 304 from it, without a store read or a render.

mod api;
mod auth;
mod changes;
mod exports;
mod limit;
mod metrics;
mod review;
mod status;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde::Deserialize;
use store::Store;

use crate::Hub;
use crate::access::Access;
use crate::serve_config::PartnerEntry;

pub use exports::{Cache, Rendered, accepts_gzip, etag_matches};

/// Where the HTTP front listens when neither `--http-listen` nor the config says.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8053";

/// Largest request body accepted when the config does not say: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;
/// False-positive reports one client address may send at once.
pub const DEFAULT_REPORTS_BURST: u32 = 5;
/// Reports one client address may send per hour once its burst is spent.
pub const DEFAULT_REPORTS_PER_HOUR: u32 = 20;

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
    /// Largest request body in bytes (larger ones get 413) [16 MiB].
    #[serde(default)]
    pub max_body: Option<usize>,
    /// `POST /api/reports`: reports a client address may send at once [5].
    #[serde(default)]
    pub reports_burst: Option<u32>,
    /// `POST /api/reports`: reports a client address may send per hour after the
    /// burst [20].
    #[serde(default)]
    pub reports_per_hour: Option<u32>,
}

/// What every handler shares.
pub struct HttpState {
    /// The store, for renders and journal reads (one at a time; each is one read
    /// transaction). Its own connection: a long render never delays a DNS transfer
    /// or an API write.
    store: Mutex<Store>,
    /// The hub, for the API's writes and judgements (its own store connection).
    hub: Mutex<Hub>,
    signer: sign::SigningKey,
    /// The public key file, served at `/feeds/pubkey`.
    pubkey: String,
    /// Feed → serial, refreshed by [`watch`] and after every API write.
    serials: RwLock<Arc<HashMap<String, u32>>>,
    cache: Cache,
    /// The API tokens in force; replaced when the config reloads.
    access: RwLock<Arc<Access>>,
    /// The DNS front, woken after each write so it publishes at once.
    dns: Option<dns::Server>,
    metrics: metrics::Metrics,
    /// The per-address limit of `POST /api/reports` (addresses kept in memory only).
    reports: limit::Limiter,
    max_body: usize,
    /// Per partner: when its last submission failed, and why (for `/api/status`).
    errors: Mutex<HashMap<String, (indicator::Timestamp, String)>>,
    /// What each scheduled feed pull last did (written by `hub::pull::Scheduler`),
    /// shown in `/api/status` and `/metrics`.
    pulls: Option<Arc<crate::pull::PullStatus>>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("key", &self.signer.id())
            .finish_non_exhaustive()
    }
}

impl HttpState {
    /// The state over `store` (reads) and `hub` (writes), signing with `signer`,
    /// with the API tokens of `partners`; reads the serials once.
    pub fn new(
        mut store: Store,
        hub: Hub,
        signer: sign::SigningKey,
        config: &HttpConfig,
        partners: &[PartnerEntry],
    ) -> store::Result<HttpState> {
        let serials = read_serials(&mut store)?;
        Ok(HttpState {
            pubkey: signer.public().to_file(),
            store: Mutex::new(store),
            hub: Mutex::new(hub),
            signer,
            serials: RwLock::new(Arc::new(serials)),
            cache: Cache::default(),
            access: RwLock::new(Arc::new(Access::new(partners))),
            dns: None,
            metrics: metrics::Metrics::new(),
            reports: limit::Limiter::new(
                config.reports_burst.unwrap_or(DEFAULT_REPORTS_BURST),
                config.reports_per_hour.unwrap_or(DEFAULT_REPORTS_PER_HOUR),
            ),
            max_body: config.max_body.unwrap_or(DEFAULT_MAX_BODY),
            errors: Mutex::new(HashMap::new()),
            pulls: None,
        })
    }

    /// Reports the scheduled pulls of `pulls` in `/api/status` and `/metrics`.
    pub fn with_pulls(mut self, pulls: Arc<crate::pull::PullStatus>) -> HttpState {
        self.pulls = Some(pulls);
        self
    }

    /// Each pulled source's status (empty when the hub pulls nothing).
    fn pull_sources(&self) -> Vec<crate::pull::SourceStatus> {
        self.pulls.as_ref().map(|p| p.sources()).unwrap_or_default()
    }

    /// Publishes through `server` after each write (see the module doc).
    pub fn with_dns(mut self, server: dns::Server) -> HttpState {
        self.dns = Some(server);
        self
    }

    /// Puts the API tokens of `partners` in force (a reloaded config).
    pub fn reload_partners(&self, partners: &[PartnerEntry]) {
        let access = Arc::new(Access::new(partners));
        tracing::info!(tokens = access.tokens(), "API tokens reloaded");
        match self.access.write() {
            Ok(mut a) => *a = access,
            Err(p) => *p.into_inner() = access,
        }
    }

    fn access(&self) -> Arc<Access> {
        match self.access.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Runs `f` on the hub, on the blocking pool; after it, refreshes the serial
    /// snapshot and has the DNS front publish, so the answer follows publication.
    async fn write<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Hub) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let state = self.clone();
        let (result, serials) = tokio::task::spawn_blocking(move || {
            let mut hub = match state.hub.lock() {
                Ok(h) => h,
                Err(p) => p.into_inner(),
            };
            let result = f(&mut hub);
            let serials = read_serials(&mut hub.store).ok();
            (result, serials)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
        if let Some(serials) = serials {
            self.set_serials(serials);
        }
        if let Some(dns) = &self.dns
            && !dns.publish_now().await
        {
            tracing::warn!("the DNS front did not confirm publication; its next poll will");
        }
        result
    }

    /// Runs `f` on the hub without publishing (reads that need the judgement).
    async fn with_hub<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Hub) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut hub = match state.hub.lock() {
                Ok(h) => h,
                Err(p) => p.into_inner(),
            };
            f(&mut hub)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
    }

    fn set_serials(&self, serials: HashMap<String, u32>) {
        match self.serials.write() {
            Ok(mut s) => *s = Arc::new(serials),
            Err(p) => *p.into_inner() = Arc::new(serials),
        }
    }

    fn serials(&self) -> Arc<HashMap<String, u32>> {
        match self.serials.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn serial(&self, feed: &str) -> Option<u32> {
        self.serials().get(feed).copied()
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
            Ok(serials) => state.set_serials(serials),
            Err(e) => tracing::warn!(error = %e.message, "reading the feeds' serials failed"),
        }
    }
}

/// The router being built, and the table of its routes (method, path).
pub(crate) struct Routes {
    router: Router<Arc<HttpState>>,
    table: Vec<(&'static str, &'static str)>,
}

impl Routes {
    /// Adds `route` at `path`, recording each of `methods` (lowercase) in the table.
    fn add(
        mut self,
        methods: &[&'static str],
        path: &'static str,
        route: MethodRouter<Arc<HttpState>>,
    ) -> Routes {
        self.table.extend(methods.iter().map(|m| (*m, path)));
        self.router = self.router.route(path, route);
        self
    }
}

fn routes() -> Routes {
    let routes = Routes {
        router: Router::new(),
        table: Vec::new(),
    };
    let routes = exports::routes(routes);
    let routes = changes::routes(routes);
    let routes = api::routes(routes);
    let routes = review::routes(routes);
    let routes = status::routes(routes);
    metrics::routes(routes)
}

/// Every route the router serves, as (method, path) with axum's path syntax
/// (`{name}` a segment, `{*name}` the rest): what the OpenAPI document must cover.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    routes().table
}

/// The whole HTTP front.
pub fn router(state: Arc<HttpState>) -> Router {
    routes()
        .router
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(state.max_body))
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
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
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
    /// Headers the answer carries (`WWW-Authenticate` on a 401, `Retry-After` on a
    /// 429).
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    fn new(status: StatusCode, field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            field: Some(field),
            message: message.into(),
            extra: Vec::new(),
            headers: Vec::new(),
        }
    }

    fn internal(message: String) -> ApiError {
        tracing::warn!(error = %message, "request failed: store");
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            field: None,
            message: "the store is unavailable; try again".to_owned(),
            extra: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// A request that failed a check of the hub (a held batch that is not held, a
    /// report already closed, …): the store's message, as a 4xx naming `field`.
    fn from_store(e: store::StoreError, status: StatusCode, field: &'static str) -> ApiError {
        match e {
            store::StoreError::Invalid(m) | store::StoreError::Aborted(m) => {
                ApiError::new(status, field, m)
            }
            other => ApiError::internal(other.to_string()),
        }
    }

    fn with(mut self, key: &'static str, value: serde_json::Value) -> ApiError {
        self.extra.push((key, value));
        self
    }

    fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> ApiError {
        self.headers.push((name, value));
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
        let mut r = json_response(self.status, &serde_json::Value::Object(body));
        for (name, value) in self.headers {
            r.headers_mut().insert(name, value);
        }
        r
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route of the router is in the OpenAPI document with its method, and the
    /// document describes no route the router lacks.
    #[test]
    fn openapi_covers_every_route() {
        let doc: serde_json::Value =
            serde_json::from_str(status::OPENAPI).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"]
            .as_object()
            .unwrap_or_else(|| panic!("no paths"));
        let table = route_table();
        let mut routed = std::collections::BTreeSet::new();
        for (method, path) in &table {
            // axum's `{*rest}` is OpenAPI's `{rest}`.
            let openapi_path = path.replace("{*", "{");
            assert!(
                paths
                    .get(&openapi_path)
                    .and_then(|p| p.get(*method))
                    .is_some(),
                "{} {openapi_path} is routed but not in openapi.json",
                method.to_uppercase()
            );
            routed.insert((method.to_string(), openapi_path));
        }
        for (path, ops) in paths {
            for method in ops.as_object().into_iter().flat_map(|o| o.keys()) {
                assert!(
                    routed.contains(&(method.clone(), path.clone())),
                    "{} {path} is in openapi.json but not routed",
                    method.to_uppercase()
                );
            }
        }
        assert!(table.len() >= 15, "{table:?}");
    }
}
