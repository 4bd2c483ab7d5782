//! The ISP's protective DNS filter: the resolver an ISP puts in front of its
//! customers, which stops the lookups of names the hub's policy zones list.
//!
//! The filter loads policy zones (RPZ) and a local allowlist into a policy snapshot,
//! hands the `dns` crate's query path ([`dns::front::Front`]) a [`Screen`] over it,
//! and serves. The snapshot is immutable; a reload builds a new one from scratch and
//! swaps it in atomically (`arc-swap`), so a query never sees half a change and the
//! query path takes no lock. Zone files are watched (size and modification time)
//! and reloaded when they change; a file that no longer loads leaves the running
//! policy as it was.
//!
//! For now the policy is [`ReferenceScreen`], plain hash maps with BIND's RPZ
//! semantics; the compact matcher of the `policy` crate will take its place and this
//! one stays as its test oracle. Privacy: no client address is logged or stored
//! here; it is passed to the policy only for RPZ-CLIENT-IP triggers.
//!
//! Beside the DNS front the filter serves, on the same runtime, `/metrics`
//! ([`telemetry`]: counters without personal data, rule matches per hour flushed to
//! the state dir) and the block page ([`blockpage`]) walled-garden zones point at.

mod allow;
pub mod blockpage;
mod reference;
pub mod telemetry;
mod zones;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use dns::front::{Front, FrontConfig, Io, Screen, Verdict};
use serde::Deserialize;

pub use allow::Allowlist;
pub use reference::{ReferenceScreen, ZonePolicy, ZoneRules, rpz_ip_owner};
pub use telemetry::Telemetry;
pub use zones::{LoadError, LoadReport, Loaded, ZoneFile, load};

/// Where the filter listens when neither flag nor config says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:53";
/// How often the zone and allowlist files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(1);

/// The filter's configuration file (TOML). Every field can also be given as a
/// flag; flags win.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Address for UDP and TCP.
    pub listen: Option<SocketAddr>,
    /// Resolvers to forward to, in order of preference.
    #[serde(default)]
    pub upstreams: Vec<SocketAddr>,
    /// Per-upstream timeout in milliseconds [default: 1000].
    pub upstream_timeout_ms: Option<u64>,
    /// Bytes the answer cache may hold [default: 64 MiB].
    pub cache_bytes: Option<usize>,
    /// UDP sockets (reader threads) on the port; 0 = one per core.
    pub udp_sockets: Option<usize>,
    /// `threads` (default) or `tokio`.
    pub io: Option<String>,
    /// Policy zones, first match wins.
    #[serde(default)]
    pub zone_files: Vec<ZoneFileConfig>,
    /// Names never filtered (each with everything below it).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Files of allowed names, one per line.
    #[serde(default)]
    pub allow_files: Vec<PathBuf>,
    /// The state directory: rule match counts per hour go to `counts/` in it.
    pub state: Option<PathBuf>,
    /// Address of the HTTP `/metrics` endpoint (Prometheus); off when not given.
    pub metrics_listen: Option<SocketAddr>,
    /// Address of the HTTP block page; off when not given.
    pub block_page_listen: Option<SocketAddr>,
    /// The hub's public report endpoint the block page links to.
    pub report_url: Option<String>,
    /// Seconds between flushes of the match counts to the state dir [default: 60].
    pub counts_flush_secs: Option<u64>,
}

/// One `[[zone_files]]` table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ZoneFileConfig {
    pub file: PathBuf,
    pub name: Option<String>,
    /// `given`, `log-only`, `nxdomain`, `nodata`, `passthru`, `drop`, `tcp-only`,
    /// `cname NAME`.
    pub policy: Option<String>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{path}: {message}", path = .0.display(), message = .1)]
    Allowlist(PathBuf, String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The effective settings: config file and flags merged, defaults applied, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub front: FrontConfig,
    pub zone_files: Vec<ZoneFile>,
    pub allow: Vec<String>,
    pub allow_files: Vec<PathBuf>,
    pub state: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    pub block_page_listen: Option<SocketAddr>,
    pub report_url: Option<String>,
    pub counts_flush: Duration,
}

impl FilterConfig {
    /// Checks the configuration and applies the defaults.
    pub fn settings(&self) -> Result<Settings, FilterError> {
        let bad = |m: String| FilterError::Config(m);
        if self.upstreams.is_empty() {
            return Err(bad(
                "no upstream: give --upstream ADDR:PORT (or upstreams in the config)".into(),
            ));
        }
        let io = match self.io.as_deref() {
            None => Io::default(),
            Some(t) => {
                Io::parse(t).ok_or_else(|| bad(format!("io {t:?}: expected threads or tokio")))?
            }
        };
        let timeout = match self.upstream_timeout_ms {
            None => dns::front::DEFAULT_UPSTREAM_TIMEOUT,
            Some(0) => return Err(bad("upstream_timeout_ms must be above 0".into())),
            Some(ms) => Duration::from_millis(ms),
        };
        let mut zone_files = Vec::with_capacity(self.zone_files.len());
        for z in &self.zone_files {
            let policy = match z.policy.as_deref() {
                None => ZonePolicy::Given,
                Some(p) => ZonePolicy::parse(p).ok_or_else(|| {
                    bad(format!(
                        "zone file {}: unknown policy {p:?}",
                        z.file.display()
                    ))
                })?,
            };
            zone_files.push(ZoneFile {
                path: z.file.clone(),
                name: z.name.clone(),
                policy,
            });
        }
        if let Some(url) = &self.report_url {
            blockpage::check_report_url(url).map_err(bad)?;
        }
        let counts_flush = match self.counts_flush_secs {
            None => telemetry::DEFAULT_FLUSH,
            Some(0) => return Err(bad("counts_flush_secs must be above 0".into())),
            Some(s) => Duration::from_secs(s),
        };
        let listen = match self.listen {
            Some(l) => l,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|e| bad(format!("default listen address: {e}")))?,
        };
        Ok(Settings {
            listen,
            front: FrontConfig {
                upstreams: self.upstreams.clone(),
                upstream_timeout: timeout,
                cache_bytes: self.cache_bytes.unwrap_or(dns::front::DEFAULT_CACHE_BYTES),
                udp_sockets: self.udp_sockets.unwrap_or(0),
                io,
            },
            zone_files,
            allow: self.allow.clone(),
            allow_files: self.allow_files.clone(),
            state: self.state.clone(),
            metrics_listen: self.metrics_listen,
            block_page_listen: self.block_page_listen,
            report_url: self.report_url.clone(),
            counts_flush,
        })
    }
}

/// Builds the policy snapshot: every zone file, then the allowlist. All or nothing.
pub fn load_policy(settings: &Settings) -> Result<(ReferenceScreen, Vec<LoadReport>), FilterError> {
    let mut allow = Allowlist::from_names(settings.allow.iter().map(String::as_str))
        .map_err(FilterError::Config)?;
    for path in &settings.allow_files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| FilterError::Allowlist(path.clone(), format!("cannot read: {e}")))?;
        allow
            .add_text(&text)
            .map_err(|e| FilterError::Allowlist(path.clone(), e))?;
    }
    let mut zones = Vec::with_capacity(settings.zone_files.len());
    let mut reports = Vec::with_capacity(settings.zone_files.len());
    for spec in &settings.zone_files {
        let loaded = load(spec)?;
        reports.push(LoadReport::of(&loaded));
        zones.push((loaded.rules, spec.policy.clone()));
    }
    Ok((ReferenceScreen::new(zones, allow), reports))
}

/// The screen the front holds: the current snapshot, swapped on reload.
#[derive(Debug)]
pub struct LiveScreen {
    current: ArcSwap<ReferenceScreen>,
}

impl LiveScreen {
    pub fn new(screen: ReferenceScreen) -> LiveScreen {
        LiveScreen {
            current: ArcSwap::from_pointee(screen),
        }
    }

    pub fn replace(&self, screen: ReferenceScreen) {
        self.current.store(Arc::new(screen));
    }
}

impl Screen for LiveScreen {
    fn qname(&self, qname: &str, client: IpAddr) -> Option<Verdict> {
        self.current.load().qname(qname, client)
    }

    fn answer(&self, names: &[Box<str>], addrs: &[IpAddr]) -> Option<(usize, Verdict)> {
        self.current.load().answer(names, addrs)
    }
}

/// Tells the telemetry each file zone's serial and age (since the file changed).
fn record_zones(telemetry: &Telemetry, screen: &ReferenceScreen, files: &[ZoneFile]) {
    for (zone, spec) in screen.zones().zip(files) {
        let age = std::fs::metadata(&spec.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        telemetry.set_zone(zone.name(), Some(zone.serial()), age);
    }
}

fn log_loaded(loaded: &[LoadReport], files: &[ZoneFile]) {
    for (l, spec) in loaded.iter().zip(files) {
        tracing::info!(file = %spec.path.display(), "loaded {l}");
        for d in l.diagnostics.iter().take(5) {
            tracing::warn!(file = %spec.path.display(), "{d}");
        }
        if l.diagnostics.len() > 5 {
            tracing::warn!(file = %spec.path.display(), "… and {} more diagnostics", l.diagnostics.len() - 5);
        }
    }
}

/// Size and modification time of each watched file (`None` when unreadable).
fn fingerprint(paths: &[&Path]) -> Vec<Option<(u64, SystemTime)>> {
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        })
        .collect()
}

/// The filter, loaded and bound, ready to serve.
#[derive(Debug)]
pub struct Filter {
    settings: Settings,
    screen: Arc<LiveScreen>,
    front: Front,
    listeners: dns::front::Listeners,
    telemetry: Arc<Telemetry>,
    metrics: Option<std::net::TcpListener>,
    block_page: Option<std::net::TcpListener>,
}

/// Binds an HTTP listener (non-blocking, for tokio).
fn bind_http(addr: SocketAddr, what: &str) -> Result<std::net::TcpListener, FilterError> {
    let l = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| FilterError::Config(format!("cannot listen on {addr} for {what}: {e}")))?;
    Ok(l)
}

/// Serves `router` on `listener` until the task is aborted.
async fn serve_http(listener: std::net::TcpListener, router: axum::Router, what: &'static str) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "{what}: cannot serve");
            return;
        }
    };
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "{what}: stopped");
    }
}

/// `GET /metrics`: the registry as Prometheus text.
fn metrics_router(registry: Arc<prometheus_client::registry::Registry>) -> axum::Router {
    async fn metrics(
        axum::extract::State(registry): axum::extract::State<
            Arc<prometheus_client::registry::Registry>,
        >,
    ) -> impl axum::response::IntoResponse {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            Telemetry::render(&registry),
        )
    }
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(registry)
}

/// Writes the match counts to the state dir every `every`.
async fn flush_every(telemetry: Arc<Telemetry>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        flush(&telemetry).await;
    }
}

async fn flush(telemetry: &Arc<Telemetry>) {
    let t = telemetry.clone();
    match tokio::task::spawn_blocking(move || t.flush()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the match counts: kept for the next flush"),
        Err(e) => tracing::warn!(error = %e, "cannot write the match counts"),
    }
}

impl Filter {
    /// Loads the policy and binds the listening sockets.
    pub fn start(settings: Settings) -> Result<Filter, FilterError> {
        let (screen, loaded) = load_policy(&settings)?;
        log_loaded(&loaded, &settings.zone_files);
        if let Some(state) = &settings.state {
            std::fs::create_dir_all(state.join("counts")).map_err(|e| {
                FilterError::Config(format!("state dir {}: {e}", state.display()))
            })?;
        }
        let telemetry = Arc::new(Telemetry::new(settings.state.clone()));
        record_zones(&telemetry, &screen, &settings.zone_files);
        let screen = Arc::new(LiveScreen::new(screen));
        let front = Front::with_observer(screen.clone(), settings.front.clone(), telemetry.clone());
        let listeners = front.bind(settings.listen).map_err(|e| {
            FilterError::Config(format!("cannot listen on {}: {e}", settings.listen))
        })?;
        let metrics = settings
            .metrics_listen
            .map(|a| bind_http(a, "metrics"))
            .transpose()?;
        let block_page = settings
            .block_page_listen
            .map(|a| bind_http(a, "the block page"))
            .transpose()?;
        Ok(Filter {
            settings,
            screen,
            front,
            listeners,
            telemetry,
            metrics,
            block_page,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listeners.local_addr()
    }

    pub fn front(&self) -> &Front {
        &self.front
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where the block page is served, if it is.
    pub fn block_page_addr(&self) -> Option<SocketAddr> {
        self.block_page.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, reloading changed zone files.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), FilterError> {
        let Filter {
            settings,
            screen,
            front,
            listeners,
            telemetry,
            metrics,
            block_page,
        } = self;
        tracing::info!(
            listen = %listeners.local_addr(),
            upstreams = ?settings.front.upstreams,
            io = ?settings.front.io,
            "serving DNS"
        );
        let mut tasks = Vec::new();
        if let Some(l) = metrics {
            if let Ok(a) = l.local_addr() {
                tracing::info!(listen = %a, "serving /metrics");
            }
            let registry = Arc::new(telemetry.registry(front.clone()));
            tasks.push(tokio::spawn(serve_http(l, metrics_router(registry), "metrics")));
        }
        if let Some(l) = block_page {
            if let Ok(a) = l.local_addr() {
                tracing::info!(listen = %a, "serving the block page");
            }
            let page = blockpage::BlockPage::new(screen.clone(), settings.report_url.clone());
            tasks.push(tokio::spawn(serve_http(l, page.router(), "block page")));
        }
        if settings.state.is_some() {
            tasks.push(tokio::spawn(flush_every(
                telemetry.clone(),
                settings.counts_flush,
            )));
        }
        tasks.push(tokio::spawn(watch(settings, screen, telemetry.clone())));
        let result = front.serve(listeners, shutdown).await;
        for t in &tasks {
            t.abort();
        }
        flush(&telemetry).await;
        tracing::info!("stopped");
        Ok(result?)
    }
}

/// Reloads the policy when a zone or allowlist file changes.
async fn watch(settings: Settings, screen: Arc<LiveScreen>, telemetry: Arc<Telemetry>) {
    let paths: Vec<&Path> = settings
        .zone_files
        .iter()
        .map(|z| z.path.as_path())
        .chain(settings.allow_files.iter().map(PathBuf::as_path))
        .collect();
    let mut seen = fingerprint(&paths);
    let mut ticker = tokio::time::interval(RELOAD_POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = fingerprint(&paths);
        if now == seen {
            continue;
        }
        seen = now;
        let loaded = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || load_policy(&settings)).await
        };
        match loaded {
            Ok(Ok((new, loaded))) => {
                record_zones(&telemetry, &new, &settings.zone_files);
                screen.replace(new);
                log_loaded(&loaded, &settings.zone_files);
                tracing::info!("policy reloaded");
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "reload failed: the running policy is kept"),
            Err(e) => tracing::warn!(error = %e, "reload failed: the running policy is kept"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_reads_and_defaults_apply() {
        let text = r#"
listen = "127.0.0.1:5353"
upstreams = ["127.0.0.1:5300", "[::1]:53"]
upstream_timeout_ms = 250
io = "tokio"
allow = ["bank.example"]

[[zone_files]]
file = "a.rpz"

[[zone_files]]
file = "b.rpz"
name = "b.rpz"
policy = "log-only"
"#;
        let config: FilterConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let s = config.settings().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:5353");
        assert_eq!(s.front.upstreams.len(), 2);
        assert_eq!(s.front.upstream_timeout, Duration::from_millis(250));
        assert_eq!(s.front.io, Io::Tokio);
        assert_eq!(s.front.cache_bytes, dns::front::DEFAULT_CACHE_BYTES);
        assert_eq!(s.zone_files.len(), 2);
        assert_eq!(s.zone_files[1].policy, ZonePolicy::LogOnly);
        let bad = |t: &str| {
            toml::from_str::<FilterConfig>(t)
                .map_err(|e| e.to_string())
                .and_then(|c| c.settings().map(|_| ()).map_err(|e| e.to_string()))
        };
        assert!(
            bad("upstreams = [\"127.0.0.1:53\"]\nio = \"fibers\"\n")
                .is_err_and(|e| e.contains("io \"fibers\""))
        );
        assert!(bad("upstreams = []\n").is_err_and(|e| e.contains("no upstream")));
        assert!(
            bad(
                "upstreams = [\"127.0.0.1:53\"]\n[[zone_files]]\nfile = \"a\"\npolicy = \"block\"\n"
            )
            .is_err_and(|e| e.contains("unknown policy"))
        );
        assert!(bad("upstream = [\"127.0.0.1:53\"]\n").is_err_and(|e| e.contains("unknown field")));
    }
}
