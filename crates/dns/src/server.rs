//! The UDP and TCP front: decode a query, check its TSIG, decide, answer.
//!
//! Every request runs the same checks in order: a response or an unknown opcode is
//! dropped or answered NOTIMP; a TSIG record that does not verify is answered as
//! RFC 8945 §5.2 says (NOTAUTH with BADKEY, BADSIG or BADTIME, built by `domain`);
//! the question must be one apex of a served zone. SOA and NS queries are answered
//! to anyone (they reveal only the serial); a transfer needs a partner: the key that
//! signed it, or — opt-in, logged — an unsigned request from an address the partner
//! listed. Anything else is REFUSED. Transfers go over TCP only; IXFR over UDP is
//! answered with the current SOA alone, which makes the client retry over TCP
//! (RFC 1995 §2).
//!
//! The zone list (serials and apex data) is cached and refreshed by the watcher every
//! [`POLL_INTERVAL`] or at once on [`Server::publish_now`], which also sends NOTIFY
//! when a serial moves; transfers read
//! their content fresh from the source, one read per transfer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use domain::base::iana::{Opcode, Rcode, TsigRcode};
use domain::base::{Message, Rtype, Serial, ToName};
use domain::rdata::Soa;
use domain::rdata::tsig::Time48;
use domain::tsig::{Algorithm, Key, KeyName, ServerSequence};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tracing::{debug, info, warn};

use crate::wire::{self, Dname, Transfer, Tsig, ZoneWire};
use crate::{Config, PartnerConfig, TsigConfig, ZoneSource};

/// How often the watcher reads the zones' serials. Imports can run in other
/// processes (`sharedefend import`), so the server polls; 200 ms keeps NOTIFY prompt
/// at the cost of five cheap reads a second. Writes in this process do not wait for
/// it: they call [`Server::publish_now`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long [`Server::publish_now`] waits for the watcher before giving up (the
/// next poll then publishes).
pub const PUBLISH_WAIT: Duration = Duration::from_secs(5);

/// How long a TCP connection may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(30);

/// Counters of what the server did, for logs, tests and (later) metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub queries: AtomicU64,
    /// Full transfers, AXFR or IXFR answered with the full zone.
    pub axfr: AtomicU64,
    /// IXFR answered with a condensed difference.
    pub ixfr: AtomicU64,
    /// IXFR whose client was already current (one SOA).
    pub ixfr_current: AtomicU64,
    /// Requests refused: no partner, feed not granted, TSIG failure.
    pub refused: AtomicU64,
    pub notify_sent: AtomicU64,
    pub notify_acked: AtomicU64,
}

type KeyStore = HashMap<(KeyName, Algorithm), Arc<Key>>;

impl Inner {
    /// The partners and keys in force now.
    pub(crate) fn auth(&self) -> Arc<Auth> {
        match self.auth.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Who may do what: the partners and their keys. Replaced whole by
/// [`Server::reload`]; a request or transfer in flight keeps the one it started with.
pub(crate) struct Auth {
    pub partners: Vec<PartnerConfig>,
    pub keys: KeyStore,
    /// Key name → index in `partners`.
    key_owner: HashMap<KeyName, usize>,
}

impl Auth {
    fn new(config: &Config) -> Result<Auth, crate::ConfigError> {
        config.validate()?;
        let mut keys = KeyStore::new();
        let mut key_owner = HashMap::new();
        for (i, p) in config.partners.iter().enumerate() {
            if let Some(t) = &p.tsig {
                let key = make_key(t).map_err(|message| crate::ConfigError::Partner {
                    partner: p.name.clone(),
                    message,
                })?;
                key_owner.insert(key.name().clone(), i);
                keys.insert((key.name().clone(), key.algorithm()), Arc::new(key));
            }
        }
        Ok(Auth {
            partners: config.partners.clone(),
            keys,
            key_owner,
        })
    }

    fn warn_allow_ips(&self) {
        for p in self.partners.iter().filter(|p| !p.allow_ips.is_empty()) {
            warn!(
                partner = %p.name,
                ips = ?p.allow_ips,
                "unsigned transfers allowed from these addresses (allow_ips opt-in)"
            );
        }
    }
}

pub(crate) struct Inner {
    pub source: Arc<dyn ZoneSource>,
    auth: RwLock<Arc<Auth>>,
    /// The served zones, refreshed by the watcher.
    pub zones: RwLock<Arc<Vec<Arc<ZoneWire>>>>,
    pub stats: Stats,
    /// Wakes the watcher before its next tick ([`Server::publish_now`]).
    pub wake: tokio::sync::Notify,
    /// Publication requests made so far.
    pub requested: AtomicU64,
    /// The requests the watcher has served: every request counted before a refresh
    /// started is served when that refresh (and its NOTIFYs) is under way.
    pub served: tokio::sync::watch::Sender<u64>,
}

/// The authoritative server. Cheap to clone.
#[derive(Clone)]
pub struct Server {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("partners", &self.inner.auth().partners.len())
            .finish_non_exhaustive()
    }
}

/// Builds the `domain` key of a configured TSIG key.
pub(crate) fn make_key(t: &TsigConfig) -> Result<Key, String> {
    let secret: Vec<u8> = domain::utils::base64::decode(t.secret.base64())
        .map_err(|_| format!("tsig key {:?}: the secret is not base64", t.name))?;
    let name = KeyName::from_str(&format!("{}.", t.name.trim_end_matches('.')))
        .map_err(|e| format!("tsig key {:?}: bad name: {e}", t.name))?;
    let algorithm = match t.algorithm {
        crate::KeyAlgorithm::HmacSha256 => Algorithm::Sha256,
        crate::KeyAlgorithm::HmacSha512 => Algorithm::Sha512,
    };
    Key::new(algorithm, &secret, name, None, None)
        .map_err(|e| format!("tsig key {:?}: {e}", t.name))
}

/// What to send back for one request.
enum Reply {
    None,
    One(Vec<u8>),
    Transfer(Box<Transfer>, TransferLog),
}

/// What a finished transfer logs.
struct TransferLog {
    kind: &'static str,
    zone: String,
    from: Option<u32>,
    serial: u32,
    partner: String,
    client: SocketAddr,
}

impl Server {
    /// A server over `source` for the partners in `config` (validated here).
    pub fn new(source: Arc<dyn ZoneSource>, config: &Config) -> Result<Server, crate::ConfigError> {
        let auth = Auth::new(config)?;
        auth.warn_allow_ips();
        Ok(Server {
            inner: Arc::new(Inner {
                source,
                auth: RwLock::new(Arc::new(auth)),
                zones: RwLock::new(Arc::new(Vec::new())),
                stats: Stats::default(),
                wake: tokio::sync::Notify::new(),
                requested: AtomicU64::new(0),
                served: tokio::sync::watch::Sender::new(0),
            }),
        })
    }

    /// Replaces the partners and keys with those of `config` (validated first; on an
    /// error nothing changes). Requests that arrive afterwards see the new set: a
    /// rotated key works at once and the old one is refused. The listening address
    /// is not reloaded.
    pub fn reload(&self, config: &Config) -> Result<(), crate::ConfigError> {
        let auth = Auth::new(config)?;
        auth.warn_allow_ips();
        let names: Vec<&str> = auth.partners.iter().map(|p| p.name.as_str()).collect();
        info!(partners = ?names, "partners reloaded");
        match self.inner.auth.write() {
            Ok(mut a) => *a = Arc::new(auth),
            Err(p) => *p.into_inner() = Arc::new(auth),
        }
        Ok(())
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Publishes what the source holds now, without waiting for the next poll: the
    /// watcher reads the zones at once, so SOA answers carry the new serials, and
    /// starts the NOTIFYs of every zone that changed. Call it after a write to the
    /// store has committed; it returns once that is done (true), or after
    /// [`PUBLISH_WAIT`] if the server is not running (false: the next poll publishes).
    pub async fn publish_now(&self) -> bool {
        let request = self.inner.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut served = self.inner.served.subscribe();
        self.inner.wake.notify_one();
        matches!(
            tokio::time::timeout(PUBLISH_WAIT, served.wait_for(|s| *s >= request)).await,
            Ok(Ok(_))
        )
    }

    /// Serves on `udp` and `tcp`, watches the source and sends NOTIFY, until
    /// `shutdown` completes.
    pub async fn run(
        self,
        udp: UdpSocket,
        tcp: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        // Load the zones once before answering anything.
        crate::notify::refresh(&self.inner).await;
        let udp = Arc::new(udp);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().udp_loop(udp));
        tasks.spawn(self.clone().tcp_loop(tcp));
        tasks.spawn(crate::notify::watch(self.inner.clone()));
        tokio::select! {
            () = shutdown => info!("shutting down"),
            Some(r) = tasks.join_next() => {
                if let Ok(Err(e)) = r {
                    tasks.abort_all();
                    return Err(e);
                }
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    async fn udp_loop(self, socket: Arc<UdpSocket>) -> std::io::Result<()> {
        let mut buf = vec![0u8; 65_535];
        loop {
            let (len, src) = socket.recv_from(&mut buf).await?;
            let Some(bytes) = buf.get(..len).map(<[u8]>::to_vec) else {
                continue;
            };
            let server = self.clone();
            let socket = socket.clone();
            tokio::spawn(async move {
                match server.handle(bytes, src, false).await {
                    Reply::One(out) => {
                        if let Err(e) = socket.send_to(&out, src).await {
                            debug!(client = %src, error = %e, "udp send failed");
                        }
                    }
                    Reply::None | Reply::Transfer(..) => {}
                }
            });
        }
    }

    async fn tcp_loop(self, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, src) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move {
                if let Err(e) = server.tcp_connection(stream, src).await {
                    debug!(client = %src, error = %e, "tcp connection ended");
                }
            });
        }
    }

    async fn tcp_connection(self, stream: TcpStream, src: SocketAddr) -> std::io::Result<()> {
        let (mut rd, wr) = stream.into_split();
        let mut wr = BufWriter::with_capacity(1 << 16, wr);
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(TCP_IDLE, rd.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => return Ok(()),
            }
            let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(len))];
            tokio::time::timeout(TCP_IDLE, rd.read_exact(&mut bytes))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            match self.handle(bytes, src, true).await {
                Reply::None => {}
                Reply::One(out) => write_framed(&mut wr, &out).await?,
                Reply::Transfer(mut t, log) => {
                    let started = std::time::Instant::now();
                    loop {
                        match t.next_message() {
                            Ok(Some(out)) => write_framed(&mut wr, &out).await?,
                            Ok(None) => break,
                            Err(e) => {
                                warn!(zone = %log.zone, client = %src, error = %e, "transfer failed");
                                return Ok(());
                            }
                        }
                    }
                    wr.flush().await?;
                    info!(
                        kind = log.kind,
                        zone = %log.zone,
                        from = ?log.from,
                        serial = log.serial,
                        partner = %log.partner,
                        client = %log.client,
                        records = t.records,
                        messages = t.messages,
                        ms = started.elapsed().as_millis() as u64,
                        "transfer done"
                    );
                }
            }
            wr.flush().await?;
        }
    }

    /// Answers one request.
    async fn handle(&self, bytes: Vec<u8>, src: SocketAddr, tcp: bool) -> Reply {
        let inner = &self.inner;
        inner.stats.queries.fetch_add(1, Ordering::Relaxed);
        let Ok(mut msg) = Message::from_octets(bytes) else {
            return Reply::None;
        };
        if msg.header().qr() {
            return Reply::None;
        }
        let original = msg.clone();
        if msg.header().opcode() != Opcode::QUERY {
            return one(wire::answer(&original, Rcode::NOTIMP, None, |_| Ok(())));
        }
        let auth = inner.auth();
        let mut tsig: Option<Tsig> = match ServerSequence::request(
            &auth.keys,
            &mut msg,
            Time48::now(),
        ) {
            Ok(t) => t,
            Err(e) => {
                inner.stats.refused.fetch_add(1, Ordering::Relaxed);
                // `domain` 0.12.3 reports a MAC that does not verify as TSIG error
                // FORMERR; RFC 8945 §5.2.2 says BADSIG. A well-formed TSIG record with
                // a known key that failed is exactly that case.
                if e.error() == TsigRcode::FORMERR
                    && let Some(reply) = wire::tsig_error(&original, TsigRcode::BADSIG)
                {
                    warn!(client = %src, tsig_error = %TsigRcode::BADSIG, "request refused: tsig verification failed");
                    return Reply::One(reply);
                }
                warn!(client = %src, tsig_error = %e.error(), "request refused: tsig verification failed");
                return match e.build_message(&original, wire::builder()) {
                    Ok(b) => Reply::One(b.finish().into_target()),
                    Err(_) => Reply::None,
                };
            }
        };
        let partner = tsig
            .as_ref()
            .and_then(|s| auth.key_owner.get(s.key().name()).copied());
        let Ok(question) = msg.sole_question() else {
            return one(wire::answer(
                &msg,
                Rcode::FORMERR,
                tsig.as_mut(),
                |_| Ok(()),
            ));
        };
        let qname: Dname = question.qname().to_name();
        let qtype = question.qtype();
        let zones = match inner.zones.read() {
            Ok(z) => z.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let Some(zone) = zones.iter().find(|z| z.apex == qname).cloned() else {
            // Not ours (or a name inside a policy zone: policy is served by
            // transfer only).
            return one(wire::answer(
                &msg,
                Rcode::REFUSED,
                tsig.as_mut(),
                |_| Ok(()),
            ));
        };
        match qtype {
            Rtype::SOA => one(wire::answer(&msg, Rcode::NOERROR, tsig.as_mut(), |a| {
                a.push(zone.soa(zone.info.serial))
            })),
            Rtype::NS => one(wire::answer(&msg, Rcode::NOERROR, tsig.as_mut(), |a| {
                zone.push_ns(a)
            })),
            Rtype::AXFR | Rtype::IXFR => {
                let Some(partner_name) = authorise(&auth, partner, &zone.info.feed, src) else {
                    inner.stats.refused.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        client = %src,
                        zone = %zone.info.apex,
                        signed = tsig.is_some(),
                        "transfer refused: no partner may transfer this zone from here"
                    );
                    return one(wire::answer(
                        &msg,
                        Rcode::REFUSED,
                        tsig.as_mut(),
                        |_| Ok(()),
                    ));
                };
                if qtype == Rtype::AXFR && !tcp {
                    return one(wire::answer(
                        &msg,
                        Rcode::FORMERR,
                        tsig.as_mut(),
                        |_| Ok(()),
                    ));
                }
                let client_serial = if qtype == Rtype::IXFR {
                    match ixfr_serial(&msg) {
                        Some(s) => Some(s),
                        None => {
                            return one(wire::answer(&msg, Rcode::FORMERR, tsig.as_mut(), |_| {
                                Ok(())
                            }));
                        }
                    }
                } else {
                    None
                };
                if !tcp {
                    // IXFR over UDP: the current SOA alone; the client retries over TCP.
                    return one(wire::answer(&msg, Rcode::NOERROR, tsig.as_mut(), |a| {
                        a.push(zone.soa(zone.info.serial))
                    }));
                }
                match self
                    .transfer(&msg, &zone, qtype, client_serial, tsig, partner_name, src)
                    .await
                {
                    Ok(reply) => reply,
                    Err(e) => {
                        warn!(zone = %zone.info.apex, error = %e, "transfer failed: source");
                        one(wire::answer(&msg, Rcode::SERVFAIL, None, |_| Ok(())))
                    }
                }
            }
            _ => one(wire::answer(
                &msg,
                Rcode::NOERROR,
                tsig.as_mut(),
                |_| Ok(()),
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn transfer(
        &self,
        msg: &Message<Vec<u8>>,
        zone: &Arc<ZoneWire>,
        qtype: Rtype,
        client_serial: Option<u32>,
        mut tsig: Option<Tsig>,
        partner: String,
        client: SocketAddr,
    ) -> Result<Reply, String> {
        let source = self.inner.source.clone();
        let feed = zone.info.feed.clone();
        let stats = &self.inner.stats;
        let id = msg.header().id();
        let log = |kind, from, serial| TransferLog {
            kind,
            zone: zone.info.apex.clone(),
            from,
            serial,
            partner: partner.clone(),
            client,
        };
        if let Some(from) = client_serial {
            let delta = tokio::task::spawn_blocking(move || source.delta(&feed, from))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if let Some(d) = delta {
                let current = Arc::new(ZoneWire::new(d.info.clone())?);
                let to = d.info.serial;
                // Up to date, or ahead of us (RFC 1982 arithmetic): the SOA alone.
                let behind = Serial(from) < Serial(to);
                if !behind {
                    stats.ixfr_current.fetch_add(1, Ordering::Relaxed);
                    debug!(zone = %zone.info.apex, from, "ixfr: client is current");
                    return Ok(one(wire::answer(msg, Rcode::NOERROR, tsig.as_mut(), |a| {
                        a.push(current.soa(to))
                    })));
                }
                stats.ixfr.fetch_add(1, Ordering::Relaxed);
                let parts = Transfer::delta_parts(from, to, d.removed, d.added);
                let t = Transfer::new(id, qtype, current, parts, tsig)?;
                return Ok(Reply::Transfer(Box::new(t), log("ixfr", Some(from), to)));
            }
            // The journal does not reach back: the full zone inside IXFR.
            let source = self.inner.source.clone();
            let feed = zone.info.feed.clone();
            return self
                .full(source, feed, id, qtype, tsig, |s| {
                    log("ixfr-full", Some(from), s)
                })
                .await;
        }
        self.full(source, zone.info.feed.clone(), id, qtype, tsig, |s| {
            log("axfr", None, s)
        })
        .await
    }

    async fn full(
        &self,
        source: Arc<dyn ZoneSource>,
        feed: String,
        id: u16,
        qtype: Rtype,
        tsig: Option<Tsig>,
        log: impl FnOnce(u32) -> TransferLog,
    ) -> Result<Reply, String> {
        let snap = tokio::task::spawn_blocking(move || source.snapshot(&feed))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .ok_or("the zone disappeared")?;
        self.inner.stats.axfr.fetch_add(1, Ordering::Relaxed);
        let serial = snap.info.serial;
        let zone = Arc::new(ZoneWire::new(snap.info)?);
        let t = Transfer::new(
            id,
            qtype,
            zone,
            Transfer::full_parts(serial, snap.rules),
            tsig,
        )?;
        Ok(Reply::Transfer(Box::new(t), log(serial)))
    }
}

/// The partner allowed to transfer `feed`: the key's owner, or (unsigned) a
/// partner listing `src` in `allow_ips`.
fn authorise(
    auth: &Auth,
    key_partner: Option<usize>,
    feed: &str,
    src: SocketAddr,
) -> Option<String> {
    let partners = &auth.partners;
    match key_partner {
        Some(i) => partners
            .get(i)
            .filter(|p| p.allows(feed))
            .map(|p| p.name.clone()),
        None => {
            let p = partners
                .iter()
                .find(|p| p.allows(feed) && p.allow_ips.contains(&src.ip()))?;
            info!(partner = %p.name, client = %src, feed, "unsigned transfer allowed by allow_ips");
            Some(p.name.clone())
        }
    }
}

fn one(r: Result<Vec<u8>, domain::base::message_builder::PushError>) -> Reply {
    match r {
        Ok(b) => Reply::One(b),
        Err(e) => {
            warn!(error = %e, "could not build a response");
            Reply::None
        }
    }
}

/// The client's serial from an IXFR query's authority section (RFC 1995 §3).
fn ixfr_serial(msg: &Message<Vec<u8>>) -> Option<u32> {
    let authority = msg.authority().ok()?;
    let mut soas = authority.limit_to::<Soa<domain::base::ParsedName<&[u8]>>>();
    let rr = soas.next()?.ok()?;
    Some(rr.data().serial().into_int())
}

async fn write_framed<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    msg: &[u8],
) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::Error::other("message over 64 KiB"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(msg).await
}
