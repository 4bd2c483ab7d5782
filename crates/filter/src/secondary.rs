//! Following the policy zones: one secondary per configured zone, its saved copy,
//! its timers, and the changes handed to the rest of the filter.
//!
//! For each `--zone NAME --primary ADDR:PORT [--tsig NAME:ALG:SECRET]` the manager
//! keeps the last good copy in `--state DIR` ([`crate::state`]) and loads it at start,
//! so a filter that cannot reach its primary keeps protecting. It then follows the
//! primary the way BIND does: an SOA query at start, after each NOTIFY, and every SOA
//! *refresh* seconds (every *retry* seconds after a failure); a newer serial is
//! fetched by IXFR (AXFR when nothing is held, or when the primary cannot send
//! differences, or sends ones that do not fit); an older serial is refused and
//! reported. A zone whose primary has not confirmed it for SOA *expire* seconds is
//! reported loudly — an `error` log line and [`ZoneStatus::expired`] for the metrics
//! — and, as configured ([`OnExpire`]), kept in force or dropped.
//!
//! The rest of the filter learns about zones through a [`ZoneSink`]: a whole zone as
//! a file to load ([`ZoneEvent::Full`], an RPZ master file the `formats` reader reads),
//! an IXFR as the owners whose records changed ([`ZoneEvent::Delta`]: remove these
//! rules, add those), or a zone withdrawn ([`ZoneEvent::Dropped`]). Events for one
//! zone come in order, each after the saved copy already says the same, so a crash
//! between the two replays the event from the file at the next start. If the sink
//! cannot apply a delta, the whole zone is handed over again.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use dns::secondary::{
    Client, FullZoneSink, Limits, NotifyAcceptor, Outcome, SecondaryZone, Soa, XfrError,
    ZoneRecord, serial_newer,
};
use tokio::net::UdpSocket;
use tracing::{debug, error, info, warn};

use crate::state::{self, OwnerDelta, StateDir, StateError, ZoneFileWriter};

/// Shortest wait between two refreshes, whatever the SOA says.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between two refreshes, whatever the SOA says.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);
/// Wait before trying again when no copy of the zone is held at all.
pub const RETRY_WITHOUT_ZONE: Duration = Duration::from_secs(10);

/// What to do with a zone past its SOA expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnExpire {
    /// Keep enforcing the last copy (the default: a stale blocklist protects more
    /// than none), and say so loudly.
    #[default]
    Keep,
    /// Stop enforcing it until the primary answers again (RFC 1035 behaviour).
    Drop,
}

/// The manager's configuration.
#[derive(Debug, Clone)]
pub struct ZonesConfig {
    pub zones: Vec<SecondaryZone>,
    pub state_dir: PathBuf,
    pub on_expire: OnExpire,
    pub limits: Limits,
}

/// A change the rest of the filter applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneEvent {
    /// The zone is now the content of `path` (an RPZ master file) at `serial`.
    /// `from_state`: loaded from the saved copy at start, not transferred.
    Full {
        zone: String,
        serial: u32,
        path: PathBuf,
        from_state: bool,
    },
    /// The zone changed owner by owner.
    Delta { zone: String, delta: OwnerDelta },
    /// The zone is no longer to be enforced.
    Dropped { zone: String, reason: String },
}

/// Where zone changes go (the matcher). Called from a blocking thread, one event at
/// a time per zone; an error makes the manager hand over the whole zone.
pub trait ZoneSink: Send + Sync + 'static {
    fn apply(&self, event: &ZoneEvent) -> Result<(), String>;
}

impl<F> ZoneSink for F
where
    F: Fn(&ZoneEvent) -> Result<(), String> + Send + Sync + 'static,
{
    fn apply(&self, event: &ZoneEvent) -> Result<(), String> {
        self(event)
    }
}

/// One zone's state, for logs, tests and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneStatus {
    pub zone: String,
    /// The serial of the copy held.
    pub serial: Option<u32>,
    /// When the primary last confirmed the copy (a transfer, or an SOA query with
    /// the same serial).
    pub confirmed: Option<SystemTime>,
    /// Past its SOA expire without a confirmation.
    pub expired: bool,
    /// The rest of the filter holds this zone.
    pub applied: bool,
    pub last_error: Option<String>,
    pub transfers_full: u64,
    pub transfers_incremental: u64,
    pub refresh_failures: u64,
    /// Refusals of a primary whose serial went backwards.
    pub serial_backwards: u64,
    /// NOTIFY messages accepted.
    pub notifies: u64,
}

impl ZoneStatus {
    /// Time since the primary last confirmed the copy.
    pub fn age(&self) -> Option<Duration> {
        self.confirmed
            .map(|c| SystemTime::now().duration_since(c).unwrap_or_default())
    }
}

/// What one refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    UpToDate(u32),
    Full {
        serial: u32,
        records: u64,
    },
    Incremental {
        from: u32,
        serial: u32,
        owners: usize,
    },
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ZonesError {
    #[error("zone {zone:?}: {message}")]
    Zone { zone: String, message: String },
    #[error(transparent)]
    State(#[from] StateError),
}

struct Slot {
    client: Client,
    path: PathBuf,
    wake: tokio::sync::Notify,
    /// One refresh at a time.
    busy: tokio::sync::Mutex<()>,
    soa: Mutex<Option<Soa>>,
    status: Mutex<ZoneStatus>,
    /// The last refresh failed (the retry timer applies).
    failing: Mutex<bool>,
}

struct Inner {
    zones: Vec<Slot>,
    acceptor: NotifyAcceptor,
    sink: Arc<dyn ZoneSink>,
    on_expire: OnExpire,
    /// NOTIFY messages refused (anyone can send one: counted, and logged at most
    /// once per [`REFUSED_LOG_EVERY`]).
    notifies_refused: AtomicU64,
    refused_logged: Mutex<Option<Instant>>,
}

/// How often a refused NOTIFY is logged at most.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(60);

/// Follows the configured zones. Cheap to clone.
#[derive(Clone)]
pub struct ZoneManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ZoneManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneManager")
            .field("zones", &self.inner.zones.len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A full zone as it arrives, into the temporary file of the next saved copy.
struct FileSink<'a> {
    path: &'a Path,
    apex: &'a str,
    writer: Option<ZoneFileWriter>,
}

impl FullZoneSink for FileSink<'_> {
    fn begin(&mut self, soa: &Soa) -> Result<(), String> {
        self.writer = None;
        self.writer =
            Some(ZoneFileWriter::create(self.path, self.apex, soa).map_err(|e| e.to_string())?);
        Ok(())
    }

    fn record(&mut self, record: ZoneRecord) -> Result<(), String> {
        match self.writer.as_mut() {
            Some(w) => w.record(&record).map_err(|e| e.to_string()),
            None => Err("a record before the zone began".into()),
        }
    }
}

impl ZoneManager {
    pub fn new(config: ZonesConfig, sink: Arc<dyn ZoneSink>) -> Result<ZoneManager, ZonesError> {
        let state = StateDir::new(&config.state_dir)?;
        let mut seen = HashSet::new();
        let mut zones = Vec::with_capacity(config.zones.len());
        for z in &config.zones {
            let err = |message: String| ZonesError::Zone {
                zone: z.apex.clone(),
                message,
            };
            let client = Client::new(z, config.limits).map_err(err)?;
            if !seen.insert(client.apex().to_owned()) {
                return Err(err("configured twice".into()));
            }
            let path = state.zone_path(client.apex());
            zones.push(Slot {
                status: Mutex::new(ZoneStatus {
                    zone: client.apex().to_owned(),
                    ..ZoneStatus::default()
                }),
                client,
                path,
                wake: tokio::sync::Notify::new(),
                busy: tokio::sync::Mutex::new(()),
                soa: Mutex::new(None),
                failing: Mutex::new(false),
            });
        }
        let acceptor = NotifyAcceptor::new(&config.zones).map_err(|message| ZonesError::Zone {
            zone: String::new(),
            message,
        })?;
        Ok(ZoneManager {
            inner: Arc::new(Inner {
                zones,
                acceptor,
                sink,
                on_expire: config.on_expire,
                notifies_refused: AtomicU64::new(0),
                refused_logged: Mutex::new(None),
            }),
        })
    }

    /// Loads the saved copies and hands each to the sink (blocking: reads files).
    /// Call once before [`run`](ZoneManager::run). A damaged copy is set aside as
    /// `<file>.corrupt`, logged, and the zone transferred afresh. Returns the
    /// number of zones loaded.
    pub fn load_saved(&self) -> usize {
        let mut loaded = 0;
        for slot in &self.inner.zones {
            let apex = slot.client.apex();
            if !slot.path.exists() {
                info!(
                    zone = apex,
                    "no saved copy: the zone is transferred at start"
                );
                continue;
            }
            let saved = match state::read_zone_file(&slot.path, apex, &mut |_| Ok(())) {
                Ok(saved) => saved,
                Err(e) => {
                    let mut aside = slot.path.as_os_str().to_owned();
                    aside.push(".corrupt");
                    let _ = std::fs::rename(&slot.path, &aside);
                    error!(zone = apex, error = %e, "saved copy unusable, set aside; the zone is transferred afresh");
                    continue;
                }
            };
            *lock(&slot.soa) = Some(saved.soa.clone());
            {
                let mut st = lock(&slot.status);
                st.serial = Some(saved.soa.serial);
                st.confirmed = Some(saved.confirmed);
            }
            info!(
                zone = apex,
                serial = saved.soa.serial,
                records = saved.records,
                "saved copy loaded"
            );
            loaded += 1;
            if self.check_expiry(slot) && self.inner.on_expire == OnExpire::Drop {
                continue;
            }
            self.deliver(
                slot,
                ZoneEvent::Full {
                    zone: apex.to_owned(),
                    serial: saved.soa.serial,
                    path: slot.path.clone(),
                    from_state: true,
                },
            );
        }
        loaded
    }

    /// Follows every zone until `shutdown` completes: a refresh of each at once,
    /// then by NOTIFY and by the SOA timers.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..self.inner.zones.len() {
            let me = self.clone();
            tasks.spawn(async move { me.zone_loop(i).await });
        }
        shutdown.await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    async fn zone_loop(&self, i: usize) {
        let Some(slot) = self.inner.zones.get(i) else {
            return;
        };
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = slot.wake.notified() => {}
            }
            let _ = self.refresh_slot(slot).await;
            wait = self.next_wait(slot);
        }
    }

    /// The wait until the next refresh: SOA refresh, or retry after a failure,
    /// clamped, and never past the moment the zone expires.
    fn next_wait(&self, slot: &Slot) -> Duration {
        let soa = lock(&slot.soa).clone();
        let failing = *lock(&slot.failing);
        let Some(soa) = soa else {
            return RETRY_WITHOUT_ZONE;
        };
        let secs = if failing { soa.retry } else { soa.refresh };
        let mut wait = Duration::from_secs(u64::from(secs)).clamp(MIN_INTERVAL, MAX_INTERVAL);
        let st = lock(&slot.status);
        if !st.expired
            && let Some(age) = st.age()
        {
            let left = Duration::from_secs(u64::from(soa.expire)).saturating_sub(age);
            wait = wait.min(left.max(MIN_INTERVAL));
        }
        wait
    }

    /// Refreshes zone `apex` now and waits for the outcome (tests, tools).
    pub async fn refresh(&self, apex: &str) -> Result<Refreshed, String> {
        let apex = apex.trim_end_matches('.').to_ascii_lowercase();
        let slot = self
            .inner
            .zones
            .iter()
            .find(|s| s.client.apex() == apex)
            .ok_or_else(|| format!("{apex}: not a zone we follow"))?;
        self.refresh_slot(slot).await
    }

    async fn refresh_slot(&self, slot: &Slot) -> Result<Refreshed, String> {
        let _one = slot.busy.lock().await;
        let apex = slot.client.apex();
        let started = Instant::now();
        let result = self.try_refresh(slot).await;
        *lock(&slot.failing) = result.is_err();
        match &result {
            Ok(r) => {
                {
                    let mut st = lock(&slot.status);
                    st.last_error = None;
                    st.confirmed = Some(SystemTime::now());
                    if st.expired {
                        info!(zone = apex, "zone no longer expired: the primary answered");
                    }
                    st.expired = false;
                }
                let ms = started.elapsed().as_millis() as u64;
                match r {
                    Refreshed::UpToDate(_) => {}
                    Refreshed::Full { serial, records } => {
                        info!(
                            zone = apex,
                            serial,
                            records,
                            ms,
                            kind = "axfr",
                            "zone transferred"
                        );
                    }
                    Refreshed::Incremental {
                        from,
                        serial,
                        owners,
                    } => {
                        info!(
                            zone = apex,
                            from,
                            serial,
                            owners,
                            ms,
                            kind = "ixfr",
                            "zone transferred"
                        );
                    }
                }
                // Held but not in force (dropped when it expired): hand it over again.
                let applied = lock(&slot.status).applied;
                let serial = lock(&slot.soa).as_ref().map(|s| s.serial);
                if !applied && let Some(serial) = serial {
                    self.deliver_blocking(
                        slot,
                        ZoneEvent::Full {
                            zone: apex.to_owned(),
                            serial,
                            path: slot.path.clone(),
                            from_state: false,
                        },
                    )
                    .await;
                }
            }
            Err(e) => {
                {
                    let mut st = lock(&slot.status);
                    st.refresh_failures += 1;
                    st.last_error = Some(e.to_string());
                    if matches!(e, RefreshError::Xfr(XfrError::SerialBackwards { .. })) {
                        st.serial_backwards += 1;
                    }
                }
                match e {
                    RefreshError::Xfr(XfrError::SerialBackwards { .. }) => error!(
                        zone = apex,
                        primary = %slot.client.primary(),
                        error = %e,
                        "refresh refused: the primary's serial went backwards; keeping our copy (remove the saved copy to accept a reset primary)"
                    ),
                    _ if lock(&slot.soa).is_none() => warn!(
                        zone = apex,
                        primary = %slot.client.primary(),
                        error = %e,
                        "refresh failed; no copy of the zone held yet, nothing of it enforced"
                    ),
                    _ => warn!(
                        zone = apex,
                        primary = %slot.client.primary(),
                        error = %e,
                        "refresh failed; keeping our copy"
                    ),
                }
                self.check_expiry(slot);
            }
        }
        result.map_err(|e| e.to_string())
    }

    async fn try_refresh(&self, slot: &Slot) -> Result<Refreshed, RefreshError> {
        let client = &slot.client;
        let apex = client.apex();
        let current = lock(&slot.soa).clone();
        let theirs = client.query_soa().await?;
        let Some(current) = current else {
            return self.axfr(slot, None).await;
        };
        if theirs.serial == current.serial {
            touch(slot).await;
            return Ok(Refreshed::UpToDate(current.serial));
        }
        if !serial_newer(theirs.serial, current.serial) {
            return Err(XfrError::SerialBackwards {
                ours: current.serial,
                theirs: theirs.serial,
            }
            .into());
        }
        let mut sink = FileSink {
            path: &slot.path,
            apex,
            writer: None,
        };
        let outcome = client.ixfr(&current, &mut sink).await;
        let fallback = match outcome {
            Ok(Outcome::UpToDate(soa)) => {
                touch(slot).await;
                return Ok(Refreshed::UpToDate(soa.serial));
            }
            Ok(Outcome::Full { soa, records }) => {
                return self.install_full(slot, sink, soa, records).await;
            }
            Ok(Outcome::Incremental { soa, diffs }) => {
                let path = slot.path.clone();
                let apex_owned = apex.to_owned();
                let from = current.serial;
                let soa_new = soa.clone();
                let applied = tokio::task::spawn_blocking(move || {
                    state::apply_diffs(&path, &apex_owned, from, &soa_new, &diffs)
                })
                .await
                .map_err(|e| RefreshError::Internal(e.to_string()))?;
                match applied {
                    Ok(delta) => return self.install_delta(slot, soa, delta).await,
                    Err(e @ StateError::Inconsistent(_)) => e.to_string(),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e @ XfrError::Malformed(_)) => e.to_string(),
            Err(XfrError::Rcode(r)) if r == "NOTIMP" || r == "FORMERR" => {
                format!("the primary answered IXFR with {r}")
            }
            Err(e) => return Err(e.into()),
        };
        warn!(zone = apex, reason = %fallback, "IXFR unusable; transferring the whole zone");
        self.axfr(slot, Some(current.serial)).await
    }

    async fn axfr(&self, slot: &Slot, current: Option<u32>) -> Result<Refreshed, RefreshError> {
        let mut sink = FileSink {
            path: &slot.path,
            apex: slot.client.apex(),
            writer: None,
        };
        match slot.client.axfr(current, &mut sink).await? {
            Outcome::Full { soa, records } => self.install_full(slot, sink, soa, records).await,
            other => Err(RefreshError::Internal(format!(
                "an AXFR answered {other:?}"
            ))),
        }
    }

    async fn install_full(
        &self,
        slot: &Slot,
        sink: FileSink<'_>,
        soa: Soa,
        records: u64,
    ) -> Result<Refreshed, RefreshError> {
        let writer = sink
            .writer
            .ok_or_else(|| RefreshError::Internal("a full zone that never began".into()))?;
        tokio::task::spawn_blocking(move || writer.commit())
            .await
            .map_err(|e| RefreshError::Internal(e.to_string()))??;
        *lock(&slot.soa) = Some(soa.clone());
        {
            let mut st = lock(&slot.status);
            st.serial = Some(soa.serial);
            st.transfers_full += 1;
        }
        self.deliver_blocking(
            slot,
            ZoneEvent::Full {
                zone: slot.client.apex().to_owned(),
                serial: soa.serial,
                path: slot.path.clone(),
                from_state: false,
            },
        )
        .await;
        Ok(Refreshed::Full {
            serial: soa.serial,
            records,
        })
    }

    async fn install_delta(
        &self,
        slot: &Slot,
        soa: Soa,
        delta: OwnerDelta,
    ) -> Result<Refreshed, RefreshError> {
        let from = delta.from;
        let owners = delta.removed.len() + delta.added.len();
        *lock(&slot.soa) = Some(soa.clone());
        {
            let mut st = lock(&slot.status);
            st.serial = Some(soa.serial);
            st.transfers_incremental += 1;
        }
        let zone = slot.client.apex().to_owned();
        if lock(&slot.status).applied {
            let event = ZoneEvent::Delta {
                zone: zone.clone(),
                delta,
            };
            if !self.deliver_blocking(slot, event).await {
                warn!(zone = %zone, "the filter could not apply the change; handing over the whole zone");
                self.deliver_blocking(
                    slot,
                    ZoneEvent::Full {
                        zone,
                        serial: soa.serial,
                        path: slot.path.clone(),
                        from_state: false,
                    },
                )
                .await;
            }
        }
        Ok(Refreshed::Incremental {
            from,
            serial: soa.serial,
            owners,
        })
    }

    /// Hands `event` to the sink on a blocking thread; records whether the zone is
    /// in force. Returns whether the sink applied it.
    async fn deliver_blocking(&self, slot: &Slot, event: ZoneEvent) -> bool {
        let sink = self.inner.sink.clone();
        let applied = tokio::task::spawn_blocking(move || {
            let r = sink.apply(&event);
            (event, r)
        })
        .await;
        match applied {
            Ok((event, r)) => self.after_delivery(slot, &event, r),
            Err(e) => {
                error!(zone = slot.client.apex(), error = %e, "the zone sink panicked");
                false
            }
        }
    }

    fn deliver(&self, slot: &Slot, event: ZoneEvent) -> bool {
        let r = self.inner.sink.apply(&event);
        self.after_delivery(slot, &event, r)
    }

    fn after_delivery(&self, slot: &Slot, event: &ZoneEvent, r: Result<(), String>) -> bool {
        let mut st = lock(&slot.status);
        match (event, r) {
            (ZoneEvent::Dropped { .. }, _) => {
                st.applied = false;
                true
            }
            (_, Ok(())) => {
                st.applied = true;
                true
            }
            (ZoneEvent::Full { .. }, Err(e)) => {
                error!(zone = %st.zone, error = %e, "the filter could not load the zone");
                st.applied = false;
                false
            }
            (ZoneEvent::Delta { .. }, Err(e)) => {
                warn!(zone = %st.zone, error = %e, "the filter could not apply the change");
                false
            }
        }
    }

    /// Marks the zone expired when its primary has not confirmed it for SOA expire
    /// seconds; logs it once, loudly, and drops it if so configured. Returns
    /// whether the zone is expired.
    fn check_expiry(&self, slot: &Slot) -> bool {
        let Some(soa) = lock(&slot.soa).clone() else {
            return false;
        };
        let (newly, applied, age) = {
            let mut st = lock(&slot.status);
            let Some(age) = st.age() else {
                return false;
            };
            if age < Duration::from_secs(u64::from(soa.expire)) {
                return st.expired;
            }
            let newly = !st.expired;
            st.expired = true;
            (newly, st.applied, age)
        };
        if newly {
            let what = match self.inner.on_expire {
                OnExpire::Keep => "still enforced (on-expire keep)",
                OnExpire::Drop => "no longer enforced (on-expire drop)",
            };
            error!(
                zone = slot.client.apex(),
                serial = soa.serial,
                unconfirmed_s = age.as_secs(),
                expire_s = soa.expire,
                primary = %slot.client.primary(),
                "ZONE EXPIRED: the primary has not confirmed this copy within its SOA expire; {what}"
            );
        }
        if self.inner.on_expire == OnExpire::Drop && applied {
            self.deliver(
                slot,
                ZoneEvent::Dropped {
                    zone: slot.client.apex().to_owned(),
                    reason: format!("expired: unconfirmed for {} s", age.as_secs()),
                },
            );
        }
        true
    }

    /// Handles a NOTIFY message the filter's DNS front received from `src`: on
    /// acceptance the zone is refreshed at once. Returns the answer to send.
    pub fn notify(&self, bytes: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
        let out = self.inner.acceptor.handle(bytes, src);
        match (out.zone.and_then(|i| self.inner.zones.get(i)), &out.refused) {
            (Some(slot), _) => {
                info!(zone = slot.client.apex(), from = %src, serial = ?out.serial, "notify: refreshing");
                lock(&slot.status).notifies += 1;
                slot.wake.notify_one();
            }
            (None, Some(why)) => {
                let count = self.inner.notifies_refused.fetch_add(1, Ordering::Relaxed) + 1;
                let mut last = lock(&self.inner.refused_logged);
                if last.is_none_or(|t| t.elapsed() >= REFUSED_LOG_EVERY) {
                    *last = Some(Instant::now());
                    warn!(from = %src, reason = %why, refused_so_far = count, "notify refused");
                } else {
                    debug!(from = %src, reason = %why, "notify refused");
                }
            }
            (None, None) => {}
        }
        out.reply
    }

    /// Answers NOTIFY messages arriving on `socket` until it fails (for a filter
    /// without its own DNS front, and tests); other messages are ignored.
    pub async fn serve_notify(&self, socket: Arc<UdpSocket>) -> std::io::Result<()> {
        let mut buf = vec![0u8; 4096];
        loop {
            let (len, src) = socket.recv_from(&mut buf).await?;
            let Some(bytes) = buf.get(..len) else {
                continue;
            };
            if let Some(reply) = self.notify(bytes, src) {
                let _ = socket.send_to(&reply, src).await;
            }
        }
    }

    /// Every zone's state.
    pub fn status(&self) -> Vec<ZoneStatus> {
        self.inner
            .zones
            .iter()
            .map(|s| lock(&s.status).clone())
            .collect()
    }

    /// NOTIFY messages refused so far (a counter for the metrics).
    pub fn notifies_refused(&self) -> u64 {
        self.inner.notifies_refused.load(Ordering::Relaxed)
    }

    /// How many zones are past their SOA expire (a gauge for the metrics).
    pub fn expired(&self) -> usize {
        self.inner
            .zones
            .iter()
            .filter(|s| lock(&s.status).expired)
            .count()
    }
}

/// Records that the primary confirmed the copy.
async fn touch(slot: &Slot) {
    let path = slot.path.clone();
    match tokio::task::spawn_blocking(move || state::touch(&path)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            warn!(zone = slot.client.apex(), error = %e, "could not record the confirmation")
        }
        Err(e) => warn!(zone = slot.client.apex(), error = %e, "could not record the confirmation"),
    }
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error(transparent)]
    Xfr(#[from] XfrError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Internal(String),
}
