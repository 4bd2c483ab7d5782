//! Feed pulls from the command line and inside `hub serve`, against a feed server on
//! loopback (a thread in the test serving real files from `../shared/data/feeds` with
//! an `ETag`): `sharedefend pull NAME --config FILE` imports, then gets 304, then
//! fails visibly (exit 2) when the feed breaks; `hub serve` pulls its configured
//! sources on start, picks up a source added to the config while it runs, and
//! publishes them over its own HTTP export. The API key header never reaches the
//! output or the logs.

#![allow(clippy::print_stderr)]

mod hubproc;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hubproc::{free_port, get, path, sd_output, serve, wait_until, workdir};

const SECRET: &str = "k3y-s3cr3t-4242";

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

/// URL path → body.
type Bodies = Vec<(String, Vec<u8>)>;

/// Serves `bodies[path]` with ETag `"<len>"`; 500 for everything when `broken`.
struct FeedServer {
    addr: SocketAddr,
    bodies: Arc<Mutex<Bodies>>,
    broken: Arc<AtomicBool>,
    not_modified: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FeedServer {
    fn start() -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let bodies: Arc<Mutex<Bodies>> = Arc::default();
        let broken = Arc::new(AtomicBool::new(false));
        let not_modified = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (bodies, broken, nm, stop) = (
                bodies.clone(),
                broken.clone(),
                not_modified.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        answer(conn, &bodies, &broken, &nm);
                    }
                }
            })
        };
        FeedServer {
            addr,
            bodies,
            broken,
            not_modified,
            stop,
            thread: Some(thread),
        }
    }

    fn serve_file(&self, url_path: &str, file: &Path) {
        let body = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut b = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
        b.push((url_path.to_owned(), body));
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

fn answer(
    conn: TcpStream,
    bodies: &Mutex<Bodies>,
    broken: &AtomicBool,
    not_modified: &AtomicUsize,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&conn);
    let mut first = String::new();
    let _ = reader.read_line(&mut first);
    let url_path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut if_none_match = None;
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
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(v.trim().to_owned());
        }
    }
    let body = bodies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(p, _)| *p == url_path)
        .map(|(_, b)| b.clone());
    let mut out: Vec<u8> = Vec::new();
    match body {
        _ if broken.load(Ordering::SeqCst) => out.extend_from_slice(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
        Some(body) => {
            let etag = format!("\"{}\"", body.len());
            if if_none_match.as_deref() == Some(etag.as_str()) {
                not_modified.fetch_add(1, Ordering::SeqCst);
                out.extend_from_slice(
                    format!(
                        "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
            } else {
                out.extend_from_slice(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: {etag}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(&body);
            }
        }
        None => out.extend_from_slice(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
    }
    let mut conn = conn;
    let _ = conn.write_all(&out);
}

fn source_toml(name: &str, url: &str) -> String {
    format!(
        "[[feed_source]]\nname = \"{name}\"\nurl = \"{url}\"\ninterval = \"1h\"\n\
         category = \"phishing\"\ntrust = 0.9\nheaders = {{ \"Auth-Key\" = \"{SECRET}\" }}\n"
    )
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pull_from_the_command_line_imports_then_304_then_fails_visibly() {
    let server = FeedServer::start();
    server.serve_file(
        "/openphish.txt",
        &data("feeds/openphish/openphish_feed_2026-08-22.txt"),
    );
    let dir = workdir("pull-cli");
    let store = dir.join("data");
    let config = dir.join("hub.toml");
    let url = format!("http://{}/openphish.txt", server.addr);
    std::fs::write(&config, source_toml("openphish", &url)).unwrap_or_else(|e| panic!("{e}"));

    let out = sd_output(
        &store,
        &["pull", "openphish", "--config", path(&config), "--json"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let st: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(st["last_outcome"], "imported", "{stdout}");
    assert_eq!(st["counts"]["records"], 300);
    assert_eq!(st["http_status"], 200);

    let out = sd_output(&store, &["pull", "openphish", "--config", path(&config)]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("openphish: not-modified"), "{stdout}");
    assert_eq!(server.not_modified.load(Ordering::SeqCst), 1);

    // The imported names are evidence like any import's.
    let explained = sd_output(&store, &["explain", "http://013224.icefactory.cl/"]);
    assert!(String::from_utf8_lossy(&explained.stdout).contains("openphish"));

    server.broken.store(true, Ordering::SeqCst);
    let out = sd_output(&store, &["pull", "openphish", "--config", path(&config)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("HTTP 500") && stdout.contains("1 in a row"),
        "{stdout}"
    );
    assert!(
        stderr.contains("pull openphish: fetch: HTTP 500"),
        "{stderr}"
    );

    let out = sd_output(&store, &["pull", "nope", "--config", path(&config)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("no [[feed_source]] named \"nope\" (configured: openphish)"),
        "{stderr}"
    );
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
}

#[test]
fn hub_serve_pulls_its_sources_and_takes_new_ones_on_reload() {
    let server = FeedServer::start();
    server.serve_file(
        "/openphish.txt",
        &data("feeds/openphish/openphish_feed_2026-08-22.txt"),
    );
    server.serve_file(
        "/hosts.txt",
        &data("feeds/urlhaus-filter/urlhaus-filter-hosts.txt"),
    );
    let dir = workdir("pull-serve");
    let store = dir.join("data");
    let config = dir.join("hub.toml");
    let log = dir.join("serve.log");
    let http = free_port();
    let base = format!(
        "listen = \"127.0.0.1:{}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n",
        free_port()
    );
    let openphish = source_toml(
        "openphish",
        &format!("http://{}/openphish.txt", server.addr),
    );
    std::fs::write(&config, format!("{base}{openphish}")).unwrap_or_else(|e| panic!("{e}"));
    let _hub = serve(&store, &["--config", path(&config)], &log);

    let served = |name: &str| {
        hubproc::try_get(http, "/feeds/all.txt", &[])
            .is_some_and(|r| r.status == 200 && r.text().lines().any(|l| l == name))
    };
    // The host of a URL in the OpenPhish file (line 42), blocked exactly.
    wait_until(
        "the pulled openphish feed in the export",
        Duration::from_secs(60),
        || served("013224.icefactory.cl"),
    );

    // Add a source to the running hub's config.
    let hosts = source_toml(
        "urlhaus-hosts",
        &format!("http://{}/hosts.txt", server.addr),
    );
    std::fs::write(&config, format!("{base}{openphish}{hosts}")).unwrap_or_else(|e| panic!("{e}"));
    let before = get(http, "/feeds/all.txt", &[]).text().lines().count();
    // A registered domain from the hosts file: published with its subdomains.
    wait_until(
        "the added source in the export",
        Duration::from_secs(60),
        || served("05webinvite.com"),
    );
    assert!(get(http, "/feeds/all.txt", &[]).text().lines().count() > before);
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logs.contains("feed source scheduled") && logs.contains("pull imported"),
        "{logs}"
    );
    assert!(!logs.contains(SECRET), "the API key reached the log");
}

/// A source whose server is down shows in `GET /api/status` (last fetch, outcome,
/// error, failures) and in `/metrics` (failures per source) of the running hub.
#[test]
fn a_failing_pull_shows_in_status_and_metrics() {
    // A port nobody listens on: every fetch is refused.
    let dead = free_port();
    let dir = workdir("pull-status");
    let store = dir.join("data");
    let config = dir.join("hub.toml");
    let http = free_port();
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n{}",
            free_port(),
            source_toml("deadfeed", &format!("http://127.0.0.1:{dead}/x.txt"))
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    sd_output(
        &store,
        &[
            "partner",
            "add",
            "boss",
            "--config",
            path(&config),
            "--no-tsig",
            "--roles",
            "reviewer",
        ],
    );
    let out = sd_output(
        &store,
        &["partner", "token", "boss", "--config", path(&config)],
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("sdp_"), "{out:?}");
    let _hub = serve(&store, &["--config", path(&config)], &dir.join("serve.log"));

    let failures = || {
        hubproc::try_get(http, "/metrics", &[]).and_then(|r| {
            r.text()
                .lines()
                .find(|l| l.starts_with("sharedefend_pull_failures{source=\"deadfeed\"}"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        })
    };
    wait_until("a failed pull in /metrics", Duration::from_secs(60), || {
        failures().is_some_and(|n| n >= 1)
    });
    let text = get(http, "/metrics", &[]).text();
    assert!(
        text.contains("sharedefend_pull_attempts{source=\"deadfeed\"}")
            && text.contains("sharedefend_pull_consecutive_failures{source=\"deadfeed\"}"),
        "{text}"
    );
    let auth = format!("Bearer {token}");
    let status = get(http, "/api/status", &[("Authorization", auth.as_str())]).json();
    let pulls = status["pulls"].as_array().cloned().unwrap_or_default();
    assert_eq!(pulls.len(), 1, "{status}");
    let p = &pulls[0];
    assert_eq!(p["name"], "deadfeed", "{p}");
    assert_eq!(p["last_outcome"], "failed", "{p}");
    assert!(
        p["last_attempt"].is_string() && p["last_success"].is_null(),
        "{p}"
    );
    assert!(
        p["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{p}"
    );
    assert!(p["failures"].as_u64().is_some_and(|n| n >= 1), "{p}");
    assert!(
        p["consecutive_failures"].as_u64().is_some_and(|n| n >= 1),
        "{p}"
    );
}
