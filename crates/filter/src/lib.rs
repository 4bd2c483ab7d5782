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
//! Zones can also be followed from a primary as a secondary: [`secondary::ZoneManager`]
//! (AXFR, IXFR, TSIG, NOTIFY, SOA timers) keeps the last good copy on disk ([`state`])
//! and loads it at start, and hands every change to the rest of the filter through a
//! [`secondary::ZoneSink`].
//!
//! The policy runs on [`MatcherScreen`], the compact matcher of the `policy` crate;
//! [`ReferenceScreen`] (plain hash maps with BIND's RPZ semantics) is its test
//! oracle and can still be chosen ([`Engine::Reference`]) to compare the two.
//! Privacy: no client address is logged or stored here; it is passed to the policy
//! only for RPZ-CLIENT-IP triggers.
//!
//! Beside the DNS front the filter serves, on the same runtime, `/metrics`
//! ([`telemetry`]: counters without personal data, rule matches per hour flushed to
//! the state dir) and the block page ([`blockpage`]) walled-garden zones point at.

mod allow;
pub mod blockpage;
mod matcher;
mod reference;
pub mod secondary;
pub mod state;
pub mod telemetry;
mod zones;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use dns::front::{Front, FrontConfig, Io, Screen, Verdict};
use dns::secondary::{Limits, SecondaryZone};
use serde::Deserialize;

pub use allow::Allowlist;
pub use matcher::{
    MatcherScreen, MatcherZone, ZoneMeta, allowlist_rules, build as build_matcher,
    load_matcher_zone, zone_options,
};
pub use reference::{ReferenceScreen, ZonePolicy, ZoneRules, rpz_ip_owner};
pub use secondary::{
    OnExpire, Refreshed, ZoneEvent, ZoneManager, ZoneSink, ZoneStatus, ZonesConfig, ZonesError,
};
pub use state::{OwnerDelta, OwnerRecords, StateError};
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
    /// Policy zone files, first match wins (the older form of `[[zones]]`; the
    /// two cannot be mixed).
    #[serde(default)]
    pub zone_files: Vec<ZoneFileConfig>,
    /// Policy zones in order of precedence (first match wins), each a file or
    /// followed from a primary.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Where followed zones are saved (and loaded from at start).
    pub state: Option<PathBuf>,
    /// What to do with a followed zone past its SOA expire: `keep` (default) or
    /// `drop`.
    pub on_expire: Option<String>,
    /// Address of the HTTP `/metrics` endpoint (Prometheus); off when not given.
    pub metrics_listen: Option<SocketAddr>,
    /// Address of the HTTP block page; off when not given.
    pub block_page_listen: Option<SocketAddr>,
    /// The hub's public report endpoint the block page links to.
    pub report_url: Option<String>,
    /// Seconds between flushes of the match counts to the state dir [default: 60].
    pub counts_flush_secs: Option<u64>,
    /// Names never filtered (each with everything below it).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Files of allowed names, one per line.
    #[serde(default)]
    pub allow_files: Vec<PathBuf>,
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

/// One `[[zones]]` table: `file = "..."` (with an optional `name`), or
/// `name = "..."` with `primary = "ADDR:PORT"` (and an optional `tsig`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub name: Option<String>,
    pub file: Option<PathBuf>,
    pub primary: Option<SocketAddr>,
    /// `NAME:ALG:SECRET` (the secret in base64).
    pub tsig: Option<String>,
    /// As for `[[zone_files]]`.
    pub policy: Option<String>,
}

/// A zone followed from a primary, with its override.
#[derive(Debug, Clone)]
pub struct PrimaryZone {
    pub zone: SecondaryZone,
    pub policy: ZonePolicy,
}

/// Where one policy zone comes from.
#[derive(Debug, Clone)]
pub enum ZoneSource {
    File(ZoneFile),
    Primary(PrimaryZone),
}

impl ZoneSource {
    /// Reads a command-line `--zone` spec, `NAME[,policy=POLICY]`, whose primary
    /// and key are given apart.
    pub fn parse_primary(
        spec: &str,
        primary: SocketAddr,
        tsig: Option<&str>,
    ) -> Result<ZoneSource, String> {
        let mut parts = spec.split(',');
        let name = parts
            .next()
            .map(|n| n.trim_end_matches('.'))
            .filter(|n| !n.is_empty())
            .ok_or("--zone: empty zone name")?;
        let mut policy = ZonePolicy::Given;
        for part in parts {
            match part.split_once('=') {
                Some(("policy", p)) => {
                    policy = ZonePolicy::parse(p)
                        .ok_or_else(|| format!("zone {name}: unknown policy {p:?}"))?;
                }
                _ => {
                    return Err(format!(
                        "zone {name}: unknown option {part:?} (policy=POLICY)"
                    ));
                }
            }
        }
        let tsig = tsig
            .map(|t| {
                dns::secondary::parse_tsig_spec(t).map_err(|e| format!("zone {name}: tsig: {e}"))
            })
            .transpose()?;
        Ok(ZoneSource::Primary(PrimaryZone {
            zone: SecondaryZone {
                apex: name.to_ascii_lowercase(),
                primary,
                tsig,
            },
            policy,
        }))
    }
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

/// Which implementation of the policy answers queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Engine {
    /// The compact matcher of the `policy` crate.
    #[default]
    Matcher,
    /// The hash-map reference (the matcher's test oracle).
    Reference,
}

impl Engine {
    pub fn parse(text: &str) -> Option<Engine> {
        match text {
            "matcher" => Some(Engine::Matcher),
            "reference" => Some(Engine::Reference),
            _ => None,
        }
    }
}

/// The effective settings: config file and flags merged, defaults applied, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub front: FrontConfig,
    /// Policy zones in order of precedence.
    pub zones: Vec<ZoneSource>,
    /// Where followed zones are saved (required when one is followed) and rule
    /// match counts are flushed (`counts/`).
    pub state: Option<PathBuf>,
    pub on_expire: OnExpire,
    pub metrics_listen: Option<SocketAddr>,
    pub block_page_listen: Option<SocketAddr>,
    pub report_url: Option<String>,
    pub counts_flush: Duration,
    pub allow: Vec<String>,
    pub allow_files: Vec<PathBuf>,
    pub engine: Engine,
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
            Some(t) => Io::parse(t)
                .ok_or_else(|| bad(format!("io {t:?}: expected threads, batch or tokio")))?,
        };
        let timeout = match self.upstream_timeout_ms {
            None => dns::front::DEFAULT_UPSTREAM_TIMEOUT,
            Some(0) => return Err(bad("upstream_timeout_ms must be above 0".into())),
            Some(ms) => Duration::from_millis(ms),
        };
        if !self.zone_files.is_empty() && !self.zones.is_empty() {
            return Err(bad(
                "zone_files and zones: give the zones in one list ([[zones]])".into(),
            ));
        }
        let mut zones = Vec::with_capacity(self.zone_files.len() + self.zones.len());
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
            zones.push(ZoneSource::File(ZoneFile {
                path: z.file.clone(),
                name: z.name.clone(),
                policy,
            }));
        }
        for (i, z) in self.zones.iter().enumerate() {
            let at = |m: String| bad(format!("zones[{i}]: {m}"));
            let policy = match z.policy.as_deref() {
                None => ZonePolicy::Given,
                Some(p) => ZonePolicy::parse(p)
                    .ok_or_else(|| at(format!("policy: unknown policy {p:?}")))?,
            };
            match (&z.file, z.primary) {
                (Some(file), None) => {
                    if z.tsig.is_some() {
                        return Err(at("tsig: only for a zone with a primary".into()));
                    }
                    zones.push(ZoneSource::File(ZoneFile {
                        path: file.clone(),
                        name: z.name.clone(),
                        policy,
                    }));
                }
                (None, Some(primary)) => {
                    let name = z
                        .name
                        .as_deref()
                        .ok_or_else(|| at("name: a zone with a primary needs its name".into()))?;
                    let mut spec =
                        ZoneSource::parse_primary(name, primary, z.tsig.as_deref()).map_err(at)?;
                    if let ZoneSource::Primary(p) = &mut spec {
                        p.policy = policy;
                    }
                    zones.push(spec);
                }
                (Some(_), Some(_)) => return Err(at("give file or primary, not both".into())),
                (None, None) => {
                    return Err(at("give file = \"...\" or primary = \"ADDR:PORT\"".into()));
                }
            }
        }
        if let Some(url) = &self.report_url {
            blockpage::check_report_url(url).map_err(|e| bad(format!("report_url: {e}")))?;
        }
        let counts_flush = match self.counts_flush_secs {
            None => telemetry::DEFAULT_FLUSH,
            Some(0) => return Err(bad("counts_flush_secs must be above 0".into())),
            Some(s) => Duration::from_secs(s),
        };
        let on_expire = match self.on_expire.as_deref() {
            None | Some("keep") => OnExpire::Keep,
            Some("drop") => OnExpire::Drop,
            Some(o) => return Err(bad(format!("on_expire {o:?}: expected keep or drop"))),
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
            zones,
            state: self.state.clone(),
            on_expire,
            metrics_listen: self.metrics_listen,
            block_page_listen: self.block_page_listen,
            report_url: self.report_url.clone(),
            counts_flush,
            allow: self.allow.clone(),
            allow_files: self.allow_files.clone(),
            engine: Engine::default(),
        })
    }
}

impl Settings {
    /// The zone files, with their place in the order of precedence.
    pub fn zone_files(&self) -> impl Iterator<Item = (usize, &ZoneFile)> {
        self.zones.iter().enumerate().filter_map(|(i, z)| match z {
            ZoneSource::File(f) => Some((i, f)),
            ZoneSource::Primary(_) => None,
        })
    }

    /// The zones followed from a primary, with their place in the order.
    pub fn primaries(&self) -> impl Iterator<Item = (usize, &PrimaryZone)> {
        self.zones.iter().enumerate().filter_map(|(i, z)| match z {
            ZoneSource::Primary(p) => Some((i, p)),
            ZoneSource::File(_) => None,
        })
    }

    /// Checks what only the whole can tell: followed zones need a state dir and
    /// the matcher.
    pub fn check(&self) -> Result<(), FilterError> {
        if let Some((_, p)) = self.primaries().next() {
            if self.state.is_none() {
                return Err(FilterError::Config(format!(
                    "zone {}: a zone followed from a primary needs --state DIR (state in the config) for its saved copy",
                    p.zone.apex
                )));
            }
            if self.engine != Engine::Matcher {
                return Err(FilterError::Config(
                    "zones followed from a primary need the matcher engine".into(),
                ));
            }
        }
        Ok(())
    }
}

/// The allowlist of the settings: names, then files.
fn load_allowlist(settings: &Settings) -> Result<Allowlist, FilterError> {
    let mut allow = Allowlist::from_names(settings.allow.iter().map(String::as_str))
        .map_err(FilterError::Config)?;
    for path in &settings.allow_files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| FilterError::Allowlist(path.clone(), format!("cannot read: {e}")))?;
        allow
            .add_text(&text)
            .map_err(|e| FilterError::Allowlist(path.clone(), e))?;
    }
    Ok(allow)
}

/// Builds the reference policy: every zone file, then the allowlist. All or nothing.
pub fn load_policy(settings: &Settings) -> Result<(ReferenceScreen, Vec<LoadReport>), FilterError> {
    settings.check()?;
    let allow = load_allowlist(settings)?;
    let mut zones = Vec::with_capacity(settings.zones.len());
    let mut reports = Vec::with_capacity(settings.zones.len());
    for (_, spec) in settings.zone_files() {
        let loaded = load(spec)?;
        reports.push(LoadReport::of(&loaded));
        zones.push((loaded.rules, spec.policy.clone()));
    }
    Ok((ReferenceScreen::new(zones, allow), reports))
}

/// Builds the matcher's policy: every zone file, then the allowlist. All or nothing.
/// A zone followed from a primary starts empty in its place; its saved copy and
/// transfers fill it ([`MatcherSink`]).
pub fn load_matcher(
    settings: &Settings,
) -> Result<(policy::Policy, ZoneMeta, Vec<LoadReport>), FilterError> {
    settings.check()?;
    let allow = load_allowlist(settings)?;
    let mut zones = Vec::with_capacity(settings.zones.len());
    let mut reports = Vec::with_capacity(settings.zones.len());
    for source in &settings.zones {
        match source {
            ZoneSource::File(spec) => {
                let loaded = load_matcher_zone(spec)?;
                reports.push(loaded.report.clone());
                zones.push((loaded, spec.policy.clone()));
            }
            ZoneSource::Primary(p) => {
                let empty = MatcherZone::empty(&p.zone.apex, &p.policy)
                    .map_err(|e| FilterError::Config(format!("zone {}: {e}", p.zone.apex)))?;
                zones.push((empty, p.policy.clone()));
            }
        }
    }
    let (policy, meta) = build_matcher(zones, &allow).map_err(FilterError::Config)?;
    Ok((policy, meta, reports))
}

/// The screen the front holds: the current snapshot of the chosen engine, swapped
/// on reload.
#[derive(Debug)]
pub enum LiveScreen {
    Matcher(MatcherScreen),
    Reference(ArcSwap<ReferenceScreen>),
}

impl LiveScreen {
    /// Loads the settings' zones and allowlist with the settings' engine.
    pub fn load(settings: &Settings) -> Result<(LiveScreen, Vec<LoadReport>), FilterError> {
        Ok(match settings.engine {
            Engine::Matcher => {
                let (policy, meta, reports) = load_matcher(settings)?;
                (
                    LiveScreen::Matcher(MatcherScreen::new(policy, meta)),
                    reports,
                )
            }
            Engine::Reference => {
                let (screen, reports) = load_policy(settings)?;
                (
                    LiveScreen::Reference(ArcSwap::from_pointee(screen)),
                    reports,
                )
            }
        })
    }

    /// Loads again and swaps the result in; on error the running policy stays.
    pub fn reload(&self, settings: &Settings) -> Result<Vec<LoadReport>, FilterError> {
        match self {
            LiveScreen::Matcher(m) => {
                // Only the files: followed zones and their transfers stay as they are.
                let allow = load_allowlist(settings)?;
                let mut loaded = Vec::new();
                for (i, spec) in settings.zone_files() {
                    loaded.push((i, load_matcher_zone(spec)?));
                }
                let mut reports = Vec::with_capacity(loaded.len());
                for (i, zone) in loaded {
                    reports.push(zone.report.clone());
                    m.set_zone(i, zone).map_err(FilterError::Config)?;
                }
                m.set_allowlist(&allow);
                Ok(reports)
            }
            LiveScreen::Reference(r) => {
                let (screen, reports) = load_policy(settings)?;
                r.store(Arc::new(screen));
                Ok(reports)
            }
        }
    }
}

impl LiveScreen {
    /// Each zone's name and the serial in force, in the order of precedence.
    pub fn zone_serials(&self) -> Vec<(String, u32)> {
        match self {
            LiveScreen::Matcher(m) => m.zone_serials(),
            LiveScreen::Reference(r) => r
                .load()
                .zones()
                .map(|z| (z.name().to_owned(), z.serial()))
                .collect(),
        }
    }
}

/// Tells the telemetry each file zone's serial and age (since the file changed).
fn record_file_zones(telemetry: &Telemetry, screen: &LiveScreen, settings: &Settings) {
    let serials = screen.zone_serials();
    for (i, spec) in settings.zone_files() {
        let Some((name, serial)) = serials.get(i) else {
            continue;
        };
        let age = std::fs::metadata(&spec.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        telemetry.set_zone(name, Some(*serial), age);
    }
}

/// Tells the telemetry each followed zone's serial, age (since its primary last
/// confirmed it) and expiry, and the NOTIFYs refused; called at each scrape.
fn record_followed_zones(telemetry: &Telemetry, manager: &ZoneManager) {
    for st in manager.status() {
        // A zone never held has no serial or age to show yet.
        if let Some(age) = st.age() {
            telemetry.set_zone(&st.zone, st.serial, age);
            telemetry.set_zone_expired(&st.zone, st.expired);
        }
    }
    telemetry.set_notifies_refused(manager.notifies_refused());
}

impl Screen for LiveScreen {
    fn qname(&self, qname: &str, client: IpAddr) -> Option<Verdict> {
        match self {
            LiveScreen::Matcher(m) => m.qname(qname, client),
            LiveScreen::Reference(r) => r.load().qname(qname, client),
        }
    }

    fn answer(&self, names: &[Box<str>], addrs: &[IpAddr]) -> Option<(usize, Verdict)> {
        match self {
            LiveScreen::Matcher(m) => m.answer(names, addrs),
            LiveScreen::Reference(r) => r.load().answer(names, addrs),
        }
    }
}

fn log_loaded(loaded: &[LoadReport], settings: &Settings) {
    for (l, (_, spec)) in loaded.iter().zip(settings.zone_files()) {
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

/// Applies the zone manager's events to the matcher, one zone at a time: a full
/// zone replaces that zone's rules alone, an IXFR's owners are applied as a delta
/// to that zone alone (no zone is rebuilt), a dropped zone is emptied.
#[derive(Debug)]
pub struct MatcherSink {
    screen: Arc<LiveScreen>,
    /// Apex → place in the order of precedence, and the zone's override.
    zones: std::collections::HashMap<String, (usize, ZonePolicy)>,
}

impl MatcherSink {
    pub fn new(screen: Arc<LiveScreen>, settings: &Settings) -> MatcherSink {
        let zones = settings
            .primaries()
            .map(|(i, p)| (p.zone.apex.clone(), (i, p.policy.clone())))
            .collect();
        MatcherSink { screen, zones }
    }
}

impl ZoneSink for MatcherSink {
    fn apply(&self, event: &ZoneEvent) -> Result<(), String> {
        let LiveScreen::Matcher(m) = &*self.screen else {
            return Err("followed zones need the matcher engine".into());
        };
        let zone = match event {
            ZoneEvent::Full { zone, .. }
            | ZoneEvent::Delta { zone, .. }
            | ZoneEvent::Dropped { zone, .. } => zone,
        };
        let (index, policy) = self
            .zones
            .get(zone)
            .ok_or_else(|| format!("zone {zone}: not configured"))?;
        match event {
            ZoneEvent::Full {
                serial,
                path,
                from_state,
                ..
            } => {
                let spec = ZoneFile {
                    path: path.clone(),
                    name: Some(zone.clone()),
                    policy: policy.clone(),
                };
                let loaded = load_matcher_zone(&spec).map_err(|e| e.to_string())?;
                let report = loaded.report.clone();
                m.set_zone(*index, loaded)?;
                let from = if *from_state {
                    "the saved copy"
                } else {
                    "a transfer"
                };
                tracing::info!(zone = %zone, serial, "in force from {from}: {report}");
                for d in report.diagnostics.iter().take(5) {
                    tracing::warn!(zone = %zone, "{d}");
                }
            }
            ZoneEvent::Delta { delta, .. } => {
                let (removed, added) = m.apply_owner_delta(*index, zone, delta)?;
                tracing::info!(
                    zone = %zone,
                    serial = delta.to,
                    removed,
                    added,
                    "change in force"
                );
            }
            ZoneEvent::Dropped { reason, .. } => {
                m.set_zone(*index, MatcherZone::empty(zone, policy)?)?;
                tracing::warn!(zone = %zone, reason = %reason, "zone no longer enforced");
            }
        }
        Ok(())
    }
}

impl dns::front::NotifyHandler for ZoneManager {
    fn notify(&self, message: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
        ZoneManager::notify(self, message, src)
    }
}

/// The filter, loaded and bound, ready to serve.
#[derive(Debug)]
pub struct Filter {
    settings: Settings,
    screen: Arc<LiveScreen>,
    front: Front,
    listeners: dns::front::Listeners,
    zones: Option<ZoneManager>,
    telemetry: Arc<Telemetry>,
    metrics: Option<std::net::TcpListener>,
    block_page: Option<std::net::TcpListener>,
}

/// Binds an HTTP listener (non-blocking, for tokio).
fn bind_http(addr: SocketAddr, what: &str) -> Result<std::net::TcpListener, FilterError> {
    std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| FilterError::Config(format!("cannot listen on {addr} for {what}: {e}")))
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

/// What `/metrics` renders from.
#[derive(Clone)]
struct MetricsState {
    registry: Arc<prometheus_client::registry::Registry>,
    telemetry: Arc<Telemetry>,
    zones: Option<ZoneManager>,
}

/// `GET /metrics`: the registry as Prometheus text, followed zones read at the
/// moment of the scrape.
fn metrics_router(state: MetricsState) -> axum::Router {
    async fn metrics(
        axum::extract::State(state): axum::extract::State<MetricsState>,
    ) -> impl axum::response::IntoResponse {
        if let Some(m) = &state.zones {
            record_followed_zones(&state.telemetry, m);
        }
        (
            [(
                axum::http::header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            Telemetry::render(&state.registry),
        )
    }
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(state)
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
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot write the match counts: kept for the next flush");
        }
        Err(e) => tracing::warn!(error = %e, "cannot write the match counts"),
    }
}

impl Filter {
    /// Loads the policy (zone files, and the saved copies of followed zones)
    /// and binds the listening sockets. Serving can begin at once: a followed
    /// zone's primary is first asked when [`Filter::serve`] runs.
    pub fn start(settings: Settings) -> Result<Filter, FilterError> {
        let (screen, loaded) = LiveScreen::load(&settings)?;
        log_loaded(&loaded, &settings);
        let screen = Arc::new(screen);
        let zones = match (&settings.state, settings.primaries().next()) {
            (Some(state), Some(_)) => {
                let manager = ZoneManager::new(
                    ZonesConfig {
                        zones: settings.primaries().map(|(_, p)| p.zone.clone()).collect(),
                        state_dir: state.clone(),
                        on_expire: settings.on_expire,
                        limits: Limits::default(),
                    },
                    Arc::new(MatcherSink::new(screen.clone(), &settings)),
                )
                .map_err(|e| FilterError::Config(e.to_string()))?;
                manager.load_saved();
                Some(manager)
            }
            _ => None,
        };
        if let Some(state) = &settings.state {
            std::fs::create_dir_all(state.join("counts"))
                .map_err(|e| FilterError::Config(format!("state dir {}: {e}", state.display())))?;
        }
        let telemetry = Arc::new(Telemetry::new(settings.state.clone()));
        record_file_zones(&telemetry, &screen, &settings);
        if let Some(m) = &zones {
            record_followed_zones(&telemetry, m);
        }
        let front = Front::with_observer(screen.clone(), settings.front.clone(), telemetry.clone());
        if let Some(m) = &zones {
            // A fresh front has no handler yet.
            let _ = front.set_notify_handler(Arc::new(m.clone()));
        }
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
            zones,
            telemetry,
            metrics,
            block_page,
        })
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

    /// The manager of the zones followed from a primary, if any.
    pub fn zones(&self) -> Option<&ZoneManager> {
        self.zones.as_ref()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listeners.local_addr()
    }

    pub fn front(&self) -> &Front {
        &self.front
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
            zones,
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
            let state = MetricsState {
                registry: Arc::new(telemetry.registry(front.clone())),
                telemetry: telemetry.clone(),
                zones: zones.clone(),
            };
            tasks.push(tokio::spawn(serve_http(
                l,
                metrics_router(state),
                "metrics",
            )));
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
        let following = zones.map(|m| {
            for (_, p) in settings.primaries() {
                tracing::info!(zone = %p.zone.apex, primary = %p.zone.primary, tsig = p.zone.tsig.is_some(), "following");
            }
            tokio::spawn(async move { m.run(std::future::pending()).await })
        });
        tasks.extend(following);
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
        .zone_files()
        .map(|(_, z)| z.path.as_path())
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
            let screen = screen.clone();
            tokio::task::spawn_blocking(move || screen.reload(&settings)).await
        };
        match loaded {
            Ok(Ok(loaded)) => {
                record_file_zones(&telemetry, &screen, &settings);
                log_loaded(&loaded, &settings);
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
        assert_eq!(s.zones.len(), 2);
        assert!(matches!(&s.zones[1], ZoneSource::File(f) if f.policy == ZonePolicy::LogOnly));
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

        // Followed zones and files in one order; the key parsed, never shown.
        let text = r#"
upstreams = ["127.0.0.1:53"]
state = "/var/lib/f"
on_expire = "drop"

[[zones]]
name = "Feed.RPZ."
primary = "192.0.2.5:53"
tsig = "k:hmac-sha256:c6fbQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI="
policy = "nodata"

[[zones]]
file = "local.rpz"
"#;
        let config: FilterConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let s = config.settings().unwrap_or_else(|e| panic!("{e}"));
        assert!(s.check().is_ok());
        assert_eq!(s.on_expire, OnExpire::Drop);
        let order: Vec<String> = s
            .zones
            .iter()
            .map(|z| match z {
                ZoneSource::Primary(p) => format!(
                    "{} from {} tsig={} {:?}",
                    p.zone.apex,
                    p.zone.primary,
                    p.zone.tsig.is_some(),
                    p.policy
                ),
                ZoneSource::File(f) => format!("file {}", f.path.display()),
            })
            .collect();
        assert_eq!(
            order,
            [
                "feed.rpz from 192.0.2.5:53 tsig=true Nodata",
                "file local.rpz"
            ]
        );
        assert!(!format!("{:?}", s.zones).contains("c6fbQQ9f"));
        let no_state = text.replace("state = \"/var/lib/f\"\n", "");
        let config: FilterConfig = toml::from_str(&no_state).unwrap_or_else(|e| panic!("{e}"));
        let s = config.settings().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.check()
                .is_err_and(|e| e.to_string().contains("needs --state DIR"))
        );
    }
}
