//! Watching the zones' serials, and telling partners when they move (RFC 1996).
//!
//! Imports can run in other processes, so the watcher polls the source every
//! [`POLL_INTERVAL`](crate::POLL_INTERVAL) and refreshes the cached zone list; a write
//! in this process (the hub's API) wakes it at once instead
//! ([`Server::publish_now`](crate::Server::publish_now)). When a zone's serial changes
//! it sends NOTIFY at once to every target of every partner
//! granted that zone, signed with the partner's key when it has one. Each NOTIFY is
//! retried with a doubling timeout until the target answers, at most
//! [`NOTIFY_ATTEMPTS`] times; a newer serial for the same target and zone replaces a
//! pending one.
//!
//! At start-up the watcher NOTIFYs every target of every partner once for each zone
//! the partner may take, whatever its serial: a secondary that missed changes while
//! the hub was down (imports go on without it) then asks for them at once instead of
//! at its next SOA refresh, up to an hour later. A secondary that is already current
//! answers, compares the serial and does nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use domain::base::iana::{Class, Opcode, Rcode};
use domain::base::{Message, Rtype};
use domain::rdata::tsig::Time48;
use domain::tsig::{ClientTransaction, Key};
use tokio::net::UdpSocket;
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::server::Inner;
use crate::wire::{self, ZoneWire};

/// NOTIFY attempts per target and serial before giving up (the SOA refresh then
/// catches up).
pub const NOTIFY_ATTEMPTS: u32 = 5;
/// Wait for the first answer; doubled at each retry (1, 2, 4, 8, 16 s).
const FIRST_TIMEOUT: Duration = Duration::from_secs(1);

/// Reads the zones once and replaces the cache; returns the zones whose serial
/// changed (all of them on the first call).
pub(crate) async fn refresh(inner: &Arc<Inner>) -> Vec<Arc<ZoneWire>> {
    let source = inner.source.clone();
    let zones = match tokio::task::spawn_blocking(move || source.zones()).await {
        Ok(Ok(z)) => z,
        Ok(Err(e)) => {
            warn!(error = %e, "reading the zones failed; serving the last known");
            return Vec::new();
        }
        Err(e) => {
            warn!(error = %e, "reading the zones failed; serving the last known");
            return Vec::new();
        }
    };
    let old = match inner.zones.read() {
        Ok(z) => z.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let old: HashMap<&str, u32> = old
        .iter()
        .map(|z| (z.info.apex.as_str(), z.info.serial))
        .collect();
    let mut fresh = Vec::with_capacity(zones.len());
    let mut changed = Vec::new();
    for info in zones {
        let previous = old.get(info.apex.as_str()).copied();
        let reuse = previous == Some(info.serial);
        match ZoneWire::new(info) {
            Ok(z) => {
                let z = Arc::new(z);
                if !reuse {
                    changed.push(z.clone());
                }
                fresh.push(z);
            }
            Err(e) => warn!(error = %e, "zone skipped"),
        }
    }
    drop(old);
    match inner.zones.write() {
        Ok(mut z) => *z = Arc::new(fresh),
        Err(p) => *p.into_inner() = Arc::new(fresh),
    }
    changed
}

/// NOTIFYs waiting for an answer: the latest serial per target and zone.
type Pending = Arc<Mutex<HashMap<(SocketAddr, String), u32>>>;

/// The watcher: NOTIFY every zone once at start-up, then refresh every poll
/// interval and NOTIFY on change.
pub(crate) async fn watch(inner: Arc<Inner>) -> std::io::Result<()> {
    let pending = Pending::default();
    let loaded = match inner.zones.read() {
        Ok(z) => z.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for zone in loaded.iter() {
        info!(zone = %zone.info.apex, serial = zone.info.serial, "start-up notify");
        notify_partners(&inner, &pending, zone).await;
    }
    let mut tick = tokio::time::interval(crate::POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = inner.wake.notified() => {}
        }
        // Every request counted by now was made after its write committed, so the
        // read below sees that write.
        let covers = inner.requested.load(Ordering::SeqCst);
        for zone in refresh(&inner).await {
            info!(zone = %zone.info.apex, serial = zone.info.serial, "serial changed");
            notify_partners(&inner, &pending, &zone).await;
        }
        inner.served.send_replace(covers);
    }
}

/// Starts a NOTIFY of `zone` at its serial to every target of every partner granted
/// its feed, each retried in its own task until answered.
async fn notify_partners(inner: &Arc<Inner>, pending: &Pending, zone: &Arc<ZoneWire>) {
    let auth = inner.auth();
    for partner in auth.partners.iter().filter(|p| p.allows(&zone.info.feed)) {
        let key = partner
            .tsig
            .as_ref()
            .and_then(|t| crate::server::make_key(t).ok().map(Arc::new));
        for &target in &partner.notify {
            let slot = (target, zone.info.apex.clone());
            pending.lock().await.insert(slot.clone(), zone.info.serial);
            tokio::spawn(notify_until_acked(
                inner.clone(),
                pending.clone(),
                slot,
                zone.clone(),
                key.clone(),
            ));
        }
    }
}

async fn notify_until_acked(
    inner: Arc<Inner>,
    pending: Pending,
    slot: (SocketAddr, String),
    zone: Arc<ZoneWire>,
    key: Option<Arc<Key>>,
) {
    let (target, _) = &slot;
    let serial = zone.info.serial;
    let mut timeout = FIRST_TIMEOUT;
    for attempt in 1..=NOTIFY_ATTEMPTS {
        if pending.lock().await.get(&slot) != Some(&serial) {
            debug!(%target, zone = %zone.info.apex, serial, "notify superseded");
            return;
        }
        inner.stats.notify_sent.fetch_add(1, Ordering::Relaxed);
        match notify_once(*target, &zone, key.clone(), timeout).await {
            Ok(rcode) => {
                inner.stats.notify_acked.fetch_add(1, Ordering::Relaxed);
                if rcode == Rcode::NOERROR {
                    info!(%target, zone = %zone.info.apex, serial, attempt, "notify acknowledged");
                } else {
                    warn!(%target, zone = %zone.info.apex, serial, %rcode, "notify answered with an error");
                }
                return;
            }
            Err(e) => {
                debug!(%target, zone = %zone.info.apex, serial, attempt, error = %e, "notify not acknowledged")
            }
        }
        timeout = timeout.saturating_mul(2);
    }
    warn!(%target, zone = %zone.info.apex, serial, attempts = NOTIFY_ATTEMPTS, "notify never acknowledged; the secondary will catch up at its SOA refresh");
}

/// Sends one NOTIFY and waits for its answer; returns the answer's rcode.
async fn notify_once(
    target: SocketAddr,
    zone: &ZoneWire,
    key: Option<Arc<Key>>,
    timeout: Duration,
) -> Result<Rcode, String> {
    let id = random_id();
    let mut b = wire::builder();
    {
        let h = b.header_mut();
        h.set_id(id);
        h.set_opcode(Opcode::NOTIFY);
        h.set_aa(true);
    }
    let mut q = b.question();
    q.push((&zone.apex, Rtype::SOA, Class::IN))
        .map_err(|e| e.to_string())?;
    let mut a = q.answer();
    a.push(zone.soa(zone.info.serial))
        .map_err(|e| e.to_string())?;
    let mut add = a.additional();
    let tran = match key {
        Some(k) => Some(
            ClientTransaction::request(k, &mut add, Time48::now()).map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let bytes = add.finish().into_target();
    let local: SocketAddr = if target.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket
        .send_to(&bytes, target)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (len, from) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if from != target {
            continue;
        }
        let Some(reply) = buf.get(..len) else {
            continue;
        };
        let Ok(mut msg) = Message::from_octets(reply.to_vec()) else {
            continue;
        };
        let h = msg.header();
        if !h.qr() || h.id() != id || h.opcode() != Opcode::NOTIFY {
            continue;
        }
        if let Some(t) = &tran {
            // An unsigned answer to a signed NOTIFY is an error answer (e.g. BADKEY);
            // its rcode still ends the retries.
            if let Err(e) = t.answer(&mut msg, Time48::now()) {
                debug!(%target, error = %e, "notify answer not verified");
            }
        }
        return Ok(msg.header().rcode());
    }
}

/// A message id that is hard to guess (transfers and NOTIFY).
pub(crate) fn random_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (h.finish() & 0xffff) as u16
}
