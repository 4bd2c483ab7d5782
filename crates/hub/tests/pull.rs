//! Scheduled feed pulls against a real HTTP server on loopback: a small server in the
//! test serves real feed files from `../shared/data/feeds` with `ETag` and
//! `Last-Modified`, counts requests and conditional ones, and can be switched to
//! answer 500, a binary body, or nothing at all. The hub imports into a real SQLite
//! store.

#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub::Hub;
use hub::pull::{FeedSource, Outcome, PullOptions, PullStatus, Scheduler, SharedHub, SourceStatus};
use indicator::{Category, SuffixList, Timestamp};
use store::{BatchStatus, Store};

// --- a feed server

/// What the server answers on a path.
#[derive(Debug, Clone)]
enum Answer {
    /// 200 with this body, its ETag and Last-Modified (304 when the client has them).
    Feed {
        body: Vec<u8>,
        etag: String,
        last_modified: String,
    },
    /// This status, no validators.
    Status(u16),
}

#[derive(Debug, Default)]
struct Seen {
    requests: usize,
    /// Requests that carried `If-None-Match`.
    conditional: usize,
    not_modified: usize,
    /// Header lines of the last request, lowercased names.
    last_headers: Vec<(String, String)>,
}

#[derive(Debug)]
struct FeedServer {
    addr: SocketAddr,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FeedServer {
    fn start() -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let answers: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (answers, seen, stop) = (answers.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        serve_one(conn, &answers, &seen);
                    }
                }
            })
        };
        FeedServer {
            addr,
            answers,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> reqwest::Url {
        reqwest::Url::parse(&format!("http://{}{path}", self.addr))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn set(&self, path: &str, answer: Answer) {
        lock(&self.answers).insert(path.to_owned(), answer);
    }

    fn feed(&self, path: &str, body: &[u8], version: u32) {
        self.set(
            path,
            Answer::Feed {
                body: body.to_vec(),
                etag: format!("\"v{version}\""),
                last_modified: format!("Tue, 01 Dec 2026 10:{version:02}:00 GMT"),
            },
        );
    }

    fn seen<R>(&self, f: impl FnOnce(&Seen) -> R) -> R {
        f(&lock(&self.seen))
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Answers one HTTP/1.1 request and closes the connection.
fn serve_one(conn: TcpStream, answers: &Mutex<HashMap<String, Answer>>, seen: &Mutex<Seen>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let answer = lock(answers).get(&path).cloned();
    let mut out = Vec::new();
    {
        let mut s = lock(seen);
        s.requests += 1;
        if header("if-none-match").is_some() {
            s.conditional += 1;
        }
        match &answer {
            Some(Answer::Feed {
                body,
                etag,
                last_modified,
            }) => {
                if header("if-none-match").as_deref() == Some(etag.as_str()) {
                    s.not_modified += 1;
                    out.extend_from_slice(
                        format!(
                            "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                } else {
                    out.extend_from_slice(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                             ETag: {etag}\r\nLast-Modified: {last_modified}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    out.extend_from_slice(body);
                }
            }
            Some(Answer::Status(code)) => out.extend_from_slice(
                format!(
                    "HTTP/1.1 {code} Oops\r\nContent-Length: 6\r\nConnection: close\r\n\r\noops!\n"
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ),
        }
        s.last_headers = headers;
    }
    let mut conn = conn;
    let _ = conn.write_all(&out);
    let _ = conn.flush();
}

// --- the hub

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

/// The first `n` lines of a real feed file.
fn lines(rel: &str, n: usize) -> Vec<String> {
    std::fs::read_to_string(data(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .lines()
        .take(n)
        .map(str::to_owned)
        .collect()
}

fn body(lines: &[String]) -> Vec<u8> {
    let mut text = lines.join("\n");
    text.push('\n');
    text.into_bytes()
}

const PHISHING_DOMAINS: &str = "feeds/phishing-database/phishing-domains-ACTIVE2.txt";
const OPENPHISH: &str = "feeds/openphish/openphish_feed_2026-08-22.txt";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sharedefend-pull-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn hub(name: &str) -> SharedHub {
    let store = Store::open_sqlite(&temp_dir(name)).unwrap_or_else(|e| panic!("{e}"));
    let hub = Hub::open(
        store,
        analysis::Config::default(),
        SuffixList::builtin().clone(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(Mutex::new(hub))
}

fn source(name: &str, url: reqwest::Url) -> FeedSource {
    let mut s = FeedSource::new(name, url);
    s.category = Category::Phishing;
    s.trust = 0.9;
    s
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn pull(
    rt: &tokio::runtime::Runtime,
    hub: &SharedHub,
    status: &PullStatus,
    s: &FeedSource,
) -> SourceStatus {
    let client = hub::pull::client(s).unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(hub::pull::pull_source(
        hub,
        status,
        s,
        &client,
        PullOptions {
            force: false,
            who: "test",
        },
    ))
}

fn rule_count(hub: &SharedHub, feed: &str) -> u64 {
    lock(hub)
        .store
        .read(|tx| tx.feed_rule_count(feed))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn triggers(hub: &SharedHub, feed: &str) -> Vec<String> {
    lock(hub)
        .store
        .read(|tx| tx.feed_rules(feed))
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|r| r.trigger)
        .collect()
}

/// The sources that observe `value`, as `explain` shows them.
fn observed_by(hub: &SharedHub, value: &str) -> Vec<String> {
    let e = lock(hub)
        .explain(value, Timestamp::now())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sources: Vec<String> = e.observations.into_iter().map(|o| o.source).collect();
    sources.sort();
    sources
}

fn outcome(st: &SourceStatus) -> String {
    format!(
        "{} {}",
        st.last_outcome.map_or("none", Outcome::as_str),
        st.last_error.as_deref().unwrap_or("")
    )
}

// --- the tests

#[test]
fn first_pull_imports_then_a_conditional_get_gets_304() {
    let server = FeedServer::start();
    server.feed("/openphish.txt", &body(&lines(OPENPHISH, 300)), 1);
    let hub = hub("conditional");
    let status = PullStatus::default();
    let rt = runtime();
    let s = source("openphish", server.url("/openphish.txt"));

    let first = pull(&rt, &hub, &status, &s);
    assert_eq!(
        first.last_outcome,
        Some(Outcome::Imported),
        "{}",
        outcome(&first)
    );
    let counts = first.counts.clone().unwrap_or_default();
    assert_eq!((counts.format.as_str(), counts.records), ("plain", 300));
    assert!(
        first.effect.iter().any(|e| e.feed == "all" && e.added > 0),
        "{:?}",
        first.effect
    );
    assert_eq!(first.etag.as_deref(), Some("\"v1\""));
    assert!(first.last_modified.is_some());
    let serial = first
        .effect
        .iter()
        .find(|e| e.feed == "all")
        .map(|e| e.serial);

    let second = pull(&rt, &hub, &status, &s);
    assert_eq!(
        second.last_outcome,
        Some(Outcome::NotModified),
        "{}",
        outcome(&second)
    );
    assert_eq!(
        (second.attempts, second.imports, second.not_modified),
        (2, 1, 1)
    );
    server.seen(|seen| {
        assert_eq!(
            (seen.requests, seen.conditional, seen.not_modified),
            (2, 1, 1)
        );
        assert!(
            seen.last_headers
                .iter()
                .any(|(k, v)| k == "if-modified-since" && v.contains("10:01")),
            "{:?}",
            seen.last_headers
        );
    });
    // Nothing was imported the second time: the feed's serial did not move.
    let feeds = lock(&hub)
        .store
        .read(|tx| tx.feeds())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        feeds.iter().find(|f| f.name == "all").map(|f| f.serial),
        serial
    );

    // The status is in memory and in the store, the same.
    assert_eq!(status.get("openphish").as_ref(), Some(&second));
    let stored = lock(&hub)
        .store
        .read(|tx| tx.pull_state("openphish"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_default();
    let stored: SourceStatus = serde_json::from_str(&stored).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored, second);

    // A new process (empty memory) carries on from the store: still conditional.
    let third = pull(&rt, &hub, &PullStatus::default(), &s);
    assert_eq!(third.last_outcome, Some(Outcome::NotModified));
    server.seen(|seen| assert_eq!(seen.conditional, 2));

    // A server that ignores validators but sends the same bytes: unchanged, no import.
    server.feed("/openphish.txt", &body(&lines(OPENPHISH, 300)), 2);
    let fourth = pull(&rt, &hub, &status, &s);
    assert_eq!(
        fourth.last_outcome,
        Some(Outcome::Unchanged),
        "{}",
        outcome(&fourth)
    );
    assert_eq!(fourth.etag.as_deref(), Some("\"v2\""));
    assert_eq!(fourth.imports, 1);
}

#[test]
fn a_changed_snapshot_withdraws_only_this_sources_observations() {
    let server = FeedServer::start();
    let names = lines(PHISHING_DOMAINS, 30);
    server.feed("/domains.txt", &body(&names), 1);
    let hub = hub("snapshot");
    let status = PullStatus::default();
    let rt = runtime();
    let mut s = source("phishing-db", server.url("/domains.txt"));
    s.snapshot = true;

    let first = pull(&rt, &hub, &status, &s);
    assert_eq!(
        first.last_outcome,
        Some(Outcome::Imported),
        "{}",
        outcome(&first)
    );
    let published = triggers(&hub, "all");
    // The names dropped in the next version that this feed got published.
    let dropped: Vec<&String> = names[..10]
        .iter()
        .filter(|n| published.contains(n))
        .collect();
    assert!(
        dropped.len() >= 2,
        "too few published names to test: {published:?}"
    );
    // Another source also reports the first dropped name, by file import.
    let shared = dropped[0].clone();
    {
        let mut h = lock(&hub);
        let other = store::NewSource {
            name: "partner-x".into(),
            kind: store::SourceKind::Partner,
            trust: 0.9,
            group: None,
        };
        let parsed = formats::read(shared.as_bytes(), &formats::ReadOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let defaults = hub::ImportDefaults {
            category: Category::Phishing,
            ..Default::default()
        };
        let job = hub::ImportJob {
            source: &other,
            origin: "partner.txt",
            defaults: &defaults,
        };
        h.import(&job, &parsed, Timestamp::now(), "test")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(observed_by(&hub, &shared), ["partner-x", "phishing-db"]);

    server.feed("/domains.txt", &body(&names[10..]), 2);
    let second = pull(&rt, &hub, &status, &s);
    assert_eq!(
        second.last_outcome,
        Some(Outcome::Imported),
        "{}",
        outcome(&second)
    );
    assert_eq!(second.counts.as_ref().map(|c| c.unlisted), Some(10));
    assert!(
        second.effect.iter().any(|e| e.removed > 0),
        "{:?}",
        second.effect
    );
    // The name both reported keeps the other source's observation, loses this one's.
    assert_eq!(observed_by(&hub, &shared), ["partner-x"]);
    // A name only this source reported has no evidence and no rule left.
    let only = dropped[1];
    assert!(observed_by(&hub, only).is_empty());
    assert!(
        !triggers(&hub, "all").contains(only),
        "{only} still published"
    );
    // What the snapshot still lists is untouched.
    for n in names[10..].iter().filter(|n| published.contains(n)) {
        assert_eq!(observed_by(&hub, n), ["phishing-db"], "{n}");
    }
}

#[test]
fn an_empty_snapshot_trips_the_breaker_and_keeps_the_feed() {
    let server = FeedServer::start();
    let names = lines(PHISHING_DOMAINS, 400);
    server.feed("/domains.txt", &body(&names), 1);
    let hub = hub("empty");
    let status = PullStatus::default();
    let rt = runtime();
    let mut s = source("phishing-db", server.url("/domains.txt"));
    s.snapshot = true;

    let first = pull(&rt, &hub, &status, &s);
    assert_eq!(
        first.last_outcome,
        Some(Outcome::Imported),
        "{}",
        outcome(&first)
    );
    let before = triggers(&hub, "all");
    assert!(
        before.len() >= 100,
        "the breaker guards feeds of 100 rules or more: {}",
        before.len()
    );

    // The feed comes back empty (200, no body).
    server.feed("/domains.txt", b"", 2);
    let held = pull(&rt, &hub, &status, &s);
    assert_eq!(held.last_outcome, Some(Outcome::Held), "{}", outcome(&held));
    assert!(
        held.held.iter().any(|r| r.contains("remov")),
        "{:?}",
        held.held
    );
    assert_eq!(held.counts.as_ref().map(|c| c.unlisted), Some(400));
    assert_eq!(
        triggers(&hub, "all"),
        before,
        "an empty snapshot wiped the feed"
    );
    let first_hold = held.last_batch.unwrap_or_else(|| panic!("no batch"));
    // The same empty body again is not a second held batch.
    let again = pull(&rt, &hub, &status, &s);
    assert_eq!(again.last_outcome, Some(Outcome::NotModified));

    // The feed recovers: a newer batch of the source, so the old hold is stale.
    server.feed("/domains.txt", &body(&names), 3);
    let back = pull(&rt, &hub, &status, &s);
    assert_eq!(
        back.last_outcome,
        Some(Outcome::Imported),
        "{}",
        outcome(&back)
    );
    assert_eq!(triggers(&hub, "all"), before);
    let stale = lock(&hub).approve(first_hold, "looked", Timestamp::now(), "test");
    assert!(
        stale
            .as_ref()
            .is_err_and(|e| e.to_string().contains("superseded")),
        "{stale:?}"
    );

    // Empty again, held again; this time a person approves: the withdrawal applies.
    server.feed("/domains.txt", b"", 4);
    let held = pull(&rt, &hub, &status, &s);
    assert_eq!(held.last_outcome, Some(Outcome::Held));
    let batch = held.last_batch.unwrap_or_else(|| panic!("no batch"));
    let applied = lock(&hub)
        .approve(
            batch,
            "the feed was retired upstream",
            Timestamp::now(),
            "test",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    withdrawn_all(&before, &applied);
    assert_eq!(rule_count(&hub, "all"), 0);
    assert!(observed_by(&hub, &names[0]).is_empty());
    let batches = lock(&hub)
        .store
        .read(|tx| tx.batches(Some(BatchStatus::Held)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        batches.len(),
        1,
        "the stale hold stays for a person to reject"
    );
}

/// Checks that `applied` withdrew every one of `before` from the `all` feed.
fn withdrawn_all(before: &[String], applied: &hub::engine::Applied) {
    let removed: Vec<&str> = applied
        .feeds
        .get("all")
        .map(|(c, _)| c.removed.iter().map(|r| r.trigger.as_str()).collect())
        .unwrap_or_default();
    for t in before {
        assert!(removed.contains(&t.as_str()), "{t} not withdrawn");
    }
}

#[test]
fn failures_keep_the_data_show_in_status_and_back_off() {
    let server = FeedServer::start();
    server.feed("/openphish.txt", &body(&lines(OPENPHISH, 300)), 1);
    let hub = hub("failures");
    let status = PullStatus::default();
    let rt = runtime();
    let s = source("openphish", server.url("/openphish.txt"));
    let first = pull(&rt, &hub, &status, &s);
    assert_eq!(first.last_outcome, Some(Outcome::Imported));
    let rules = triggers(&hub, "all");

    server.set("/openphish.txt", Answer::Status(500));
    let st = pull(&rt, &hub, &status, &s);
    assert_eq!(outcome(&st), "failed fetch: HTTP 500 Internal Server Error");
    assert_eq!((st.consecutive_failures, st.http_status), (1, Some(500)));

    server.set(
        "/openphish.txt",
        Answer::Feed {
            body: b"\x00\x01garbage".to_vec(),
            etag: "\"g\"".into(),
            last_modified: "Tue, 01 Dec 2026 11:00:00 GMT".into(),
        },
    );
    let st = pull(&rt, &hub, &status, &s);
    assert!(
        outcome(&st).starts_with("failed unreadable body: binary data"),
        "{}",
        outcome(&st)
    );
    assert_eq!(st.consecutive_failures, 2);
    // The validators of an unreadable body are not kept: the next pull fetches again.
    assert_eq!(st.etag.as_deref(), Some("\"v1\""));

    server.set(
        "/openphish.txt",
        Answer::Feed {
            body: b"<html><body><h1>Maintenance</h1> back soon</body></html>\n".to_vec(),
            etag: "\"h\"".into(),
            last_modified: "Tue, 01 Dec 2026 11:00:00 GMT".into(),
        },
    );
    let st = pull(&rt, &hub, &status, &s);
    assert!(
        outcome(&st).starts_with("failed unreadable body"),
        "{}",
        outcome(&st)
    );
    assert_eq!(st.consecutive_failures, 3);

    // Nobody listening.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}"))
    };
    let mut down = s.clone();
    down.url = reqwest::Url::parse(&format!("http://{closed}/openphish.txt"))
        .unwrap_or_else(|e| panic!("{e}"));
    let st = pull(&rt, &hub, &status, &down);
    assert!(
        outcome(&st).starts_with("failed fetch: cannot connect"),
        "{}",
        outcome(&st)
    );
    assert_eq!((st.consecutive_failures, st.failures), (4, 4));

    // Through it all, the feed kept every rule.
    assert_eq!(triggers(&hub, "all"), rules);

    // The scheduler retries a failing source with growing, bounded waits.
    down.backoff_min = Duration::from_millis(40);
    down.interval = Duration::from_secs(1);
    let scheduled = Arc::new(PullStatus::default());
    let waits = rt.block_on(async {
        let hub = {
            let store = Store::open_sqlite(&temp_dir("backoff")).unwrap_or_else(|e| panic!("{e}"));
            Hub::open(
                store,
                analysis::Config::default(),
                SuffixList::builtin().clone(),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let scheduler = Scheduler::new(hub, scheduled.clone(), "test");
        scheduler.apply(std::slice::from_ref(&down));
        let mut waits: Vec<(u32, u64)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && waits.len() < 6 {
            if let Some(st) = scheduled.get(&down.name)
                && let Some(ms) = st.retry_in_ms
                && waits
                    .last()
                    .is_none_or(|(n, _)| *n != st.consecutive_failures)
            {
                waits.push((st.consecutive_failures, ms));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let last = scheduled.get(&down.name).unwrap_or_default();
        scheduler.stop();
        assert!(
            scheduled.get(&down.name).is_none(),
            "a stopped source is still reported"
        );
        (waits, last)
    });
    let (waits, st) = waits;
    assert!(waits.len() >= 5, "{waits:?}");
    for &(n, ms) in &waits {
        let base = (40u64 << (n - 1).min(20)).min(1000);
        assert!(
            (base / 2..=base).contains(&ms),
            "failure {n}: waited {ms} ms, expected {}..={base}",
            base / 2
        );
    }
    assert!(
        st.last_error.is_some() && st.next_attempt.is_some(),
        "{st:?}"
    );
}

#[test]
fn reload_adds_and_removes_sources_and_sends_headers() {
    let server = FeedServer::start();
    server.feed("/openphish.txt", &body(&lines(OPENPHISH, 100)), 1);
    server.feed("/domains.txt", &body(&lines(PHISHING_DOMAINS, 50)), 1);
    let rt = runtime();
    let status = Arc::new(PullStatus::default());
    let mut a = source("openphish", server.url("/openphish.txt"));
    a.interval = Duration::from_secs(3600);
    let mut b = source("phishing-db", server.url("/domains.txt"));
    b.interval = Duration::from_secs(3600);
    b.headers.insert("Auth-Key".into(), "s3cr3t-key".into());

    let until = |name: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = status.get(name)
                && st.last_outcome.is_some()
            {
                return st;
            }
            assert!(Instant::now() < deadline, "{name} never pulled");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let store = Store::open_sqlite(&temp_dir("reload")).unwrap_or_else(|e| panic!("{e}"));
    let hub = Hub::open(
        store,
        analysis::Config::default(),
        SuffixList::builtin().clone(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let _guard = rt.enter();
    let scheduler = Scheduler::new(hub, status.clone(), "test");
    scheduler.apply(std::slice::from_ref(&a));
    let st = until("openphish");
    assert_eq!(st.last_outcome, Some(Outcome::Imported), "{}", outcome(&st));
    assert!(status.get("phishing-db").is_none());

    scheduler.apply(&[a.clone(), b.clone()]);
    let st = until("phishing-db");
    assert_eq!(st.last_outcome, Some(Outcome::Imported), "{}", outcome(&st));
    server.seen(|seen| {
        assert!(
            seen.last_headers
                .iter()
                .any(|(k, v)| k == "auth-key" && v == "s3cr3t-key"),
            "{:?}",
            seen.last_headers
        );
    });
    // The unchanged source was not restarted (its hour has not passed).
    assert_eq!(status.get("openphish").map(|s| s.attempts), Some(1));
    // The secret is in no status and no Debug output.
    let shown = format!(
        "{:?} {:?} {}",
        b,
        status.sources(),
        serde_json::to_string(&status.sources()).unwrap_or_default()
    );
    assert!(!shown.contains("s3cr3t"), "{shown}");

    // Removed from the config: stopped and no longer reported.
    scheduler.apply(std::slice::from_ref(&b));
    assert!(status.get("openphish").is_none());
    assert!(status.get("phishing-db").is_some());
    scheduler.stop();
}
