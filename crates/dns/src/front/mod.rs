//! The filter's query path: answer clients over UDP and TCP, forward what is not
//! blocked, cache the true answers, and apply the policy on the way out.
//!
//! One query goes through [`Front::respond`]: read the header and question (by
//! hand, [`message`]); ask the [`Screen`] about the query name (and the client's
//! address, for RPZ-CLIENT-IP; it is never logged); answer from the cache if it
//! holds the question, else forward ([`upstream`]) and cache the answer as it came;
//! then ask the screen about the answer's CNAME chain and addresses and rewrite it
//! if a rule says so. Rewritten answers follow BIND: the CNAMEs up to the matched
//! name are kept, the policy zone's SOA goes in the additional section, local data
//! is answered with a short TTL, a redirect is resolved like any name; and they
//! carry Extended DNS Error 17 (Filtered, RFC 8914) naming the zone and the rule.
//!
//! The cache and the policy step are synchronous: a cached or blocked answer is
//! written on the thread that read the query, and only a miss goes to the async
//! runtime to wait for an upstream ([`listen`] has the loops).

#[cfg(target_os = "linux")]
mod batch;
mod cache;
#[doc(hidden)]
pub mod fuzzing;
mod listen;
mod message;
mod observe;
mod screen;
mod upstream;

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use listen::{Listeners, NotifyHandler};
pub use observe::{NoObserver, Observer, QueryResult};
pub use screen::{LocalData, Policy, PolicySoa, PolicyZone, Redirect, Screen, Verdict};

use cache::{Cache, Entry, Key};
use message::{
    CLASS_IN, FLAG_TC, HEADER_LEN, Query, RCODE_BADVERS, RCODE_NOERROR, RCODE_NOTIMP,
    RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL, Section, TYPE_AXFR, TYPE_CNAME, TYPE_IXFR,
    Unreadable, Writer,
};
use upstream::{Failure, Upstreams};

/// The UDP payload size we accept, advertise and answer within (DNS Flag Day 2020:
/// no fragmentation). Larger answers go with TC=1 and the client retries over TCP.
pub const UDP_PAYLOAD: u16 = 1232;
/// How long each upstream has to answer before the next is tried.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Bytes the answer cache may hold.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;
/// TTL of records the policy synthesises (local data, redirect CNAME): BIND 9.18
/// answers them with 5 s (measured here), so a rule change shows quickly.
pub const POLICY_TTL: u32 = 5;
/// Extended DNS Error codes (RFC 8914).
const EDE_FILTERED: u16 = 17;
const EDE_NO_REACHABLE_AUTHORITY: u16 = 22;

/// How the UDP sockets are served. The default is [`Io::Batch`] on Linux (it
/// measured 8–11% more queries per CPU-second than [`Io::Threads`],
/// `docs/performance.md`), [`Io::Threads`] elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// One `SO_REUSEPORT` socket per thread, each read by its own OS thread in a
    /// blocking loop; cache misses go to the tokio runtime.
    Threads,
    /// The same sockets and threads, but each system call moves up to
    /// [`BATCH`](listen::BATCH) datagrams: `recvmmsg` takes what has arrived,
    /// `sendmmsg` sends the answers together (Linux; elsewhere as `Threads`).
    Batch,
    /// The same sockets, each read by a task on the tokio runtime.
    Tokio,
}

impl Default for Io {
    fn default() -> Self {
        if cfg!(target_os = "linux") {
            Io::Batch
        } else {
            Io::Threads
        }
    }
}

impl Io {
    pub fn parse(text: &str) -> Option<Io> {
        match text {
            "threads" => Some(Io::Threads),
            "batch" => Some(Io::Batch),
            "tokio" => Some(Io::Tokio),
            _ => None,
        }
    }
}

/// How the front runs.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// Where to forward names that are not blocked, in order of preference.
    pub upstreams: Vec<SocketAddr>,
    pub upstream_timeout: Duration,
    pub cache_bytes: usize,
    /// UDP sockets (and reader threads) on the listening port; 0 = one per core.
    pub udp_sockets: usize,
    pub io: Io,
}

impl Default for FrontConfig {
    fn default() -> Self {
        FrontConfig {
            upstreams: Vec::new(),
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            cache_bytes: DEFAULT_CACHE_BYTES,
            udp_sockets: 0,
            io: Io::default(),
        }
    }
}

/// What the front did, counted (no names, no addresses). Each query counts once,
/// when its answer is decided.
#[derive(Debug, Default)]
pub struct FrontStats {
    pub queries: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub upstream_failures: AtomicU64,
    /// Answers rewritten by a policy (including DROP and TCP-only).
    pub rewritten: AtomicU64,
    pub passthru: AtomicU64,
    /// Matches of log-only zones (answers left alone).
    pub shadow: AtomicU64,
    pub dropped: AtomicU64,
    /// UDP answers too large for the client, sent with TC=1.
    pub truncated: AtomicU64,
    pub servfail: AtomicU64,
    /// Queries that could not be read (FORMERR, NOTIMP, BADVERS, REFUSED).
    pub malformed: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What became of one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The answer is in the output buffer.
    Reply,
    /// Nothing to send (not a query, or a DROP rule).
    Drop,
    /// An upstream must be asked: call [`Front::answer`].
    Upstream,
}

/// Upstream answers fetched for this query, handed back to [`Front::respond`]
/// (they may not be cacheable, so the cache cannot carry them).
#[derive(Debug, Default)]
struct Fetched {
    main: Option<Arc<Entry>>,
    target: Option<Arc<Entry>>,
}

/// What one pass of [`Front::respond`] decided, reported to the stats and the
/// observer only when the query is done (a miss runs the pass again, and must not
/// be counted twice).
#[derive(Default)]
struct Report {
    qtype: Option<u16>,
    /// Set when a policy decided the answer; otherwise the RCODE written counts.
    result: Option<QueryResult>,
    /// The rules acted on (log-only ones included). Allocates only on a match.
    matched: Vec<Verdict>,
}

/// What the synchronous step needs next.
enum Step {
    Done(Outcome),
    /// The answer to the query itself.
    Main(Key),
    /// The answer for a redirect target.
    Target(Key),
}

struct Inner {
    screen: Arc<dyn Screen>,
    cache: Cache,
    upstreams: Upstreams,
    config: FrontConfig,
    stats: FrontStats,
    /// Where NOTIFY messages go (the filter's zone manager); unset: NOTIMP.
    notify: std::sync::OnceLock<Arc<dyn NotifyHandler>>,
    observer: Arc<dyn Observer>,
}

/// The query path. Cheap to clone.
#[derive(Clone)]
pub struct Front {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("upstreams", &self.inner.config.upstreams)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The query name as text, for the screen: one buffer per thread.
    static QNAME_TEXT: RefCell<String> = RefCell::new(String::with_capacity(256));
}

impl Front {
    pub fn new(screen: Arc<dyn Screen>, config: FrontConfig) -> Front {
        Front::with_observer(screen, config, Arc::new(NoObserver))
    }

    /// A front that reports every query's result and matched rules to `observer`
    /// (never the client's address or the query name).
    pub fn with_observer(
        screen: Arc<dyn Screen>,
        config: FrontConfig,
        observer: Arc<dyn Observer>,
    ) -> Front {
        Front {
            inner: Arc::new(Inner {
                screen,
                cache: Cache::new(config.cache_bytes),
                upstreams: Upstreams::new(config.upstreams.clone(), config.upstream_timeout),
                config,
                stats: FrontStats::default(),
                notify: std::sync::OnceLock::new(),
                observer,
            }),
        }
    }

    pub fn stats(&self) -> &FrontStats {
        &self.inner.stats
    }

    /// Entries and bytes in the answer cache.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.inner.cache.usage()
    }

    /// Answers `query` from the cache or the policy alone, writing into `out`.
    /// [`Outcome::Upstream`] means an upstream must be asked first ([`Front::answer`]).
    /// Runs on the thread that read the query: no await, no upstream.
    pub fn answer_now(
        &self,
        query: &[u8],
        client: IpAddr,
        tcp: bool,
        out: &mut Vec<u8>,
    ) -> Outcome {
        bump(&self.inner.stats.queries);
        let mut report = Report::default();
        let now = Instant::now();
        match self.respond(
            query,
            client,
            tcp,
            now,
            &Fetched::default(),
            &mut report,
            out,
        ) {
            Step::Done(o) => {
                self.report(report, o, out);
                o
            }
            Step::Main(_) | Step::Target(_) => Outcome::Upstream,
        }
    }

    /// Answers `query` completely, asking the upstreams as needed. Returns
    /// [`Outcome::Reply`] or [`Outcome::Drop`].
    pub async fn answer(
        &self,
        query: &[u8],
        client: IpAddr,
        tcp: bool,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let stats = &self.inner.stats;
        let mut fetched = Fetched::default();
        let mut report = Report::default();
        // At most the query's own answer and one redirect target.
        for _ in 0..3 {
            let now = Instant::now();
            let (key, main) =
                match self.respond(query, client, tcp, now, &fetched, &mut report, out) {
                    Step::Done(o) => {
                        self.report(report, o, out);
                        return o;
                    }
                    Step::Main(key) => (key, true),
                    Step::Target(key) => (key, false),
                };
            bump(&stats.cache_misses);
            let started = Instant::now();
            let answer = self
                .inner
                .upstreams
                .resolve(key.qname(), key.qtype(), key.dnssec_ok(), key.cd())
                .await;
            self.inner
                .observer
                .upstream(started.elapsed(), answer.is_ok());
            match answer {
                Ok(a) => {
                    let entry = self
                        .inner
                        .cache
                        .insert(&key, Entry::new(&key, a, Instant::now()));
                    if main {
                        fetched.main = Some(entry);
                    } else {
                        fetched.target = Some(entry);
                    }
                }
                Err(failure) => {
                    bump(&stats.upstream_failures);
                    let o = self.servfail(query, tcp, failure, out);
                    report.result = None;
                    self.report(report, o, out);
                    return o;
                }
            }
        }
        let o = self.servfail(query, tcp, Failure::Failed, out);
        report.result = None;
        self.report(report, o, out);
        o
    }

    /// Counts a query whose answer is decided: once per query.
    fn report(&self, report: Report, outcome: Outcome, out: &[u8]) {
        let stats = &self.inner.stats;
        let observer = &*self.inner.observer;
        for v in &report.matched {
            if v.shadow {
                bump(&stats.shadow);
            }
            observer.matched(v);
        }
        let result = match (report.result, outcome) {
            (Some(r), _) => r,
            (None, Outcome::Reply) => QueryResult::Rcode(out.get(3).copied().unwrap_or(0) & 0xF),
            // Not a query at all: nothing to count.
            (None, _) => return,
        };
        match result {
            QueryResult::Blocked => bump(&stats.rewritten),
            QueryResult::Passthru => bump(&stats.passthru),
            QueryResult::Dropped => {
                bump(&stats.rewritten);
                bump(&stats.dropped);
            }
            QueryResult::Rcode(_) => {}
        }
        observer.answered(report.qtype, result);
    }

    fn servfail(&self, query: &[u8], tcp: bool, failure: Failure, out: &mut Vec<u8>) -> Outcome {
        bump(&self.inner.stats.servfail);
        let Ok(q) = message::parse_query(query) else {
            return Outcome::Drop;
        };
        let mut w = Writer::start(out, query, &q, RCODE_SERVFAIL);
        if let Some(e) = q.edns {
            let ede = (failure == Failure::Unreachable)
                .then_some((EDE_NO_REACHABLE_AUTHORITY, "no upstream answered"));
            w.opt(UDP_PAYLOAD, e.dnssec_ok, 0, ede);
        }
        w.finish();
        self.fit(&q, tcp, out);
        Outcome::Reply
    }

    /// The synchronous part of answering: policy, cache, rewrite. What it decided
    /// goes into `report`.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &self,
        buf: &[u8],
        client: IpAddr,
        tcp: bool,
        now: Instant,
        fetched: &Fetched,
        report: &mut Report,
        out: &mut Vec<u8>,
    ) -> Step {
        *report = Report::default();
        let inner = &*self.inner;
        let stats = &inner.stats;
        let q = match message::parse_query(buf) {
            Ok(q) => q,
            Err(Unreadable::Ignore) => return Step::Done(Outcome::Drop),
            Err(Unreadable::Answer(rcode)) => {
                bump(&stats.malformed);
                Writer::header_only(out, buf, rcode);
                return Step::Done(Outcome::Reply);
            }
        };
        report.qtype = Some(q.qtype);
        if let Some(e) = q.edns
            && e.version != 0
        {
            bump(&stats.malformed);
            let mut w = Writer::start(out, buf, &q, RCODE_NOERROR);
            w.opt(UDP_PAYLOAD, e.dnssec_ok, RCODE_BADVERS, None);
            w.finish();
            return Step::Done(Outcome::Reply);
        }
        if q.qclass != CLASS_IN || q.qtype == TYPE_AXFR || q.qtype == TYPE_IXFR {
            bump(&stats.malformed);
            let rcode = if q.qclass == CLASS_IN {
                RCODE_NOTIMP
            } else {
                RCODE_REFUSED
            };
            let mut w = Writer::start(out, buf, &q, rcode);
            if let Some(e) = q.edns {
                w.opt(UDP_PAYLOAD, e.dnssec_ok, 0, None);
            }
            w.finish();
            return Step::Done(Outcome::Reply);
        }
        let sent_qname = buf
            .get(HEADER_LEN..HEADER_LEN + q.qname_len)
            .unwrap_or_default();
        let key = Key::new(sent_qname, q.qtype, q.dnssec_ok(), q.cd());

        // The query name, before anything is asked upstream.
        let verdict = QNAME_TEXT.with_borrow_mut(|text| {
            message::name_text(key.qname(), text);
            inner.screen.qname(text, client)
        });
        let mut check_answer = true;
        if let Some(v) = verdict {
            if v.shadow {
                report.matched.push(v);
            } else {
                match &v.action {
                    Policy::Passthru => {
                        report.result = Some(QueryResult::Passthru);
                        report.matched.push(v);
                        check_answer = false;
                    }
                    Policy::TcpOnly if tcp => {}
                    _ => {
                        return self.rewrite(buf, &q, &key, tcp, 0, None, v, fetched, report, out);
                    }
                }
            }
        }

        let entry = match &fetched.main {
            Some(e) => e.clone(),
            None => match inner.cache.get(&key, now) {
                Some(e) => {
                    bump(&stats.cache_hits);
                    e
                }
                None => return Step::Main(key),
            },
        };

        // The answer on the way out: its CNAME chain and its addresses.
        if check_answer
            && (!entry.names.is_empty() || !entry.addrs.is_empty())
            && let Some((depth, v)) = inner.screen.answer(&entry.names, &entry.addrs)
        {
            if v.shadow {
                report.matched.push(v);
            } else {
                match &v.action {
                    Policy::Passthru => {
                        report.result = Some(QueryResult::Passthru);
                        report.matched.push(v);
                    }
                    Policy::TcpOnly if tcp => {}
                    _ => {
                        let depth = depth.min(entry.links.len());
                        return self.rewrite(
                            buf,
                            &q,
                            &key,
                            tcp,
                            depth,
                            Some(&entry),
                            v,
                            fetched,
                            report,
                            out,
                        );
                    }
                }
            }
        }

        entry.write(out, q.id, q.flags, sent_qname, now);
        if let Some(e) = q.edns {
            message::write_opt(out, UDP_PAYLOAD, e.dnssec_ok, 0, None);
            let ar = u16::from_be_bytes([
                out.get(10).copied().unwrap_or(0),
                out.get(11).copied().unwrap_or(0),
            ]);
            message::put_u16(out, 10, ar.saturating_add(1));
        }
        self.fit(&q, tcp, out);
        Step::Done(Outcome::Reply)
    }

    /// Writes the answer a policy gives. `depth` CNAMEs of `entry`'s chain are kept
    /// before the rewritten name (0: the query name itself).
    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        &self,
        buf: &[u8],
        q: &Query,
        key: &Key,
        tcp: bool,
        depth: usize,
        entry: Option<&Entry>,
        v: Verdict,
        fetched: &Fetched,
        report: &mut Report,
        out: &mut Vec<u8>,
    ) -> Step {
        let links = entry.map(|e| &e.links[..]).unwrap_or_default();
        let links = links.get(..depth).unwrap_or(links);
        // The rewritten name: `None` is the query name (a pointer to the question).
        let owner: Option<&[u8]> = links.last().map(|(w, _)| &**w);
        let (rcode, redirect) = match &v.action {
            Policy::Drop => {
                report.result = Some(QueryResult::Dropped);
                report.matched.push(v);
                return Step::Done(Outcome::Drop);
            }
            Policy::TcpOnly => {
                let mut w = Writer::start(out, buf, q, RCODE_NOERROR);
                w.set_flag(FLAG_TC);
                if let Some(e) = q.edns {
                    w.opt(UDP_PAYLOAD, e.dnssec_ok, 0, None);
                }
                w.finish();
                report.result = Some(QueryResult::Blocked);
                report.matched.push(v);
                return Step::Done(Outcome::Reply);
            }
            Policy::Nxdomain => (RCODE_NXDOMAIN, None),
            Policy::Nodata | Policy::Local(_) | Policy::Passthru => (RCODE_NOERROR, None),
            Policy::Redirect(r) => {
                let named = owner.unwrap_or(key.qname());
                match r.target_for(named) {
                    Some(target) => {
                        let tkey = Key::new(&target, q.qtype, q.dnssec_ok(), q.cd());
                        let found = match &fetched.target {
                            Some(t) => Some(t.clone()),
                            None => self.inner.cache.get(&tkey, Instant::now()),
                        };
                        match found {
                            Some(t) => (t.rcode, Some((target, t))),
                            None => return Step::Target(tkey),
                        }
                    }
                    // The synthesised name is too long: as BIND, no such name.
                    None => (RCODE_NXDOMAIN, None),
                }
            }
        };
        let mut w = Writer::start(out, buf, q, rcode);
        let mut previous: Option<&[u8]> = None;
        for (target, ttl) in links {
            w.record(Section::Answer, previous, TYPE_CNAME, *ttl, target);
            previous = Some(target);
        }
        match (&v.action, redirect) {
            (Policy::Local(data), _) => {
                for (rtype, rdata) in data.of_type(q.qtype) {
                    w.record(Section::Answer, owner, rtype, POLICY_TTL, rdata);
                }
            }
            (Policy::Redirect(_), Some((target, t))) => {
                w.record(Section::Answer, owner, TYPE_CNAME, POLICY_TTL, &target);
                let mut records = Vec::new();
                if let Some(n) = message::copy_answer_records(&t.wire, &mut records) {
                    w.raw_records(Section::Answer, &records, n);
                }
            }
            _ => {}
        }
        w.raw_records(Section::Additional, v.zone.soa_record(), 1);
        if let Some(e) = q.edns {
            let text = format!("zone {} rule {}", v.zone.name(), v.rule);
            w.opt(UDP_PAYLOAD, e.dnssec_ok, 0, Some((EDE_FILTERED, &text)));
        }
        w.finish();
        self.fit(q, tcp, out);
        report.result = Some(QueryResult::Blocked);
        report.matched.push(v);
        Step::Done(Outcome::Reply)
    }

    /// Truncates a UDP answer the client cannot take: the header and question
    /// (and OPT) with TC=1, so it retries over TCP.
    fn fit(&self, q: &Query, tcp: bool, out: &mut Vec<u8>) {
        if tcp {
            return;
        }
        let limit = match q.edns {
            Some(e) => usize::from(e.udp_size.clamp(512, UDP_PAYLOAD)),
            None => 512,
        };
        if out.len() <= limit {
            return;
        }
        bump(&self.inner.stats.truncated);
        let rcode = out.get(3).copied().unwrap_or(0) & 0xF;
        let flags = message::flags_of(out) & !0xF;
        out.truncate(q.question_end());
        message::put_u16(out, 2, flags | FLAG_TC | u16::from(rcode));
        for at in [6, 8, 10] {
            message::put_u16(out, at, 0);
        }
        if let Some(e) = q.edns {
            message::write_opt(out, UDP_PAYLOAD, e.dnssec_ok, 0, None);
            message::put_u16(out, 10, 1);
        }
    }
}

#[cfg(test)]
mod tests;
