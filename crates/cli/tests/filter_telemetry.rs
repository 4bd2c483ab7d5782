//! The filter's telemetry and block page from outside: `dig` (from its own loopback
//! source address, 127.0.0.77) asks a running `sharedefend filter serve` for blocked,
//! log-only, redirected and ordinary names (forwarded to a real BIND `named`); then
//! `GET /metrics` must show the counts and series, the match counts flushed to the
//! state dir must survive a restart and be summed per hour, the block page must
//! answer for a redirected name with the report link and escape a hostile `Host`,
//! and the client's address must appear nowhere: state dir, metrics, logs.
//!
//! Everything on loopback with free ports; every wait bounded; processes killed on
//! drop. `scripts/test` installs `bind9` and `bind9-dnsutils`.

#![allow(clippy::print_stderr)]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, path, workdir, write};

/// The address the test's queries come from: must never be written anywhere.
const CLIENT: &str = "127.0.0.77";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// SIGTERM, then wait (bounded) for a clean exit.
    fn stop(mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = self.0.try_wait() {
                assert!(status.success(), "filter exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("filter did not stop on SIGTERM");
    }
}

/// Polls `f` every 100 ms until it holds; panics after `limit`.
fn wait_until(what: &str, limit: Duration, f: impl FnMut() -> bool) {
    support::wait_until(what, limit, &[], f);
}

/// `dig` from [`CLIENT`]; returns the status (`NOERROR`, `NXDOMAIN`, …, empty on
/// no answer) and the output.
fn dig(port: u16, name: &str, rtype: &str) -> (String, String) {
    let p = port.to_string();
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &p,
            "-b",
            CLIENT,
            "+time=2",
            "+tries=1",
            "+nocookie",
            name,
            rtype,
        ])
        .output()
        .unwrap_or_else(|e| panic!("dig: {e} (scripts/test installs bind9-dnsutils)"));
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = raw
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_owned();
    (status, raw)
}

/// One HTTP/1.1 GET with the given `Host`; (status, body).
fn http_get(port: u16, target: &str, host: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap_or_else(|e| panic!("{e}"));
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_owned())
}

/// The value of the series `series` (name and labels exactly as printed).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

const UP_ZONE: &str = "$TTL 300
@ SOA ns.up.test. root.up.test. 1 3600 600 86400 120
@ NS ns
ns A 127.0.0.1
www A 192.0.2.10
watched A 192.0.2.11
blockpage A 192.0.2.80
";

const BLOCK_RPZ: &str = "$TTL 60
block.rpz. SOA localhost. hostmaster.block.rpz. 7 3600 600 86400 30
block.rpz. NS localhost.
$ORIGIN block.rpz.
evil.up.test CNAME .
*.wild.up.test CNAME .
";

const GARDEN_RPZ: &str = "$TTL 60
garden.rpz. SOA localhost. hostmaster.garden.rpz. 3 3600 600 86400 30
garden.rpz. NS localhost.
$ORIGIN garden.rpz.
scam.up.test CNAME .
";

const WATCH_RPZ: &str = "$TTL 60
watch.rpz. SOA localhost. hostmaster.watch.rpz. 11 3600 600 86400 30
watch.rpz. NS localhost.
$ORIGIN watch.rpz.
watched.up.test CNAME .
";

fn start_named(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let d = path(dir);
    write(&dir.join("up.test.db"), UP_ZONE);
    let conf = dir.join("named.conf");
    write(
        &conf,
        &format!(
            r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
zone "up.test" {{ type primary; file "{d}/up.test.db"; }};
"#
        ),
    );
    let named = Proc(
        Command::new("named")
            .args(["-f", "-c", path(&conf)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("named: {e} (scripts/test installs bind9)")),
    );
    wait_until("named to serve up.test", Duration::from_secs(15), || {
        let p = port.to_string();
        Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &p,
                "+time=1",
                "+tries=1",
                "up.test",
                "SOA",
            ])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("status: NOERROR"))
    });
    (named, port)
}

struct Running {
    proc: Proc,
    dns: u16,
    metrics: u16,
    page: u16,
}

fn start_filter(dir: &Path, upstream: u16, log: &str) -> Running {
    let (dns, metrics, page) = (free_port(), free_port(), free_port());
    let state = dir.join("state");
    let zone = |f: &str, opts: &str| format!("{}{opts}", path(&dir.join(f)));
    let log = std::fs::File::create(dir.join(log)).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_sharedefend"))
        .args(["filter", "serve", "--listen", &format!("127.0.0.1:{dns}")])
        .args(["--upstream", &format!("127.0.0.1:{upstream}")])
        .args(["--zone-file", &zone("block.rpz", "")])
        .args([
            "--zone-file",
            &zone("garden.rpz", ",policy=cname:blockpage.up.test"),
        ])
        .args(["--zone-file", &zone("watch.rpz", ",policy=log-only")])
        .args(["--state", path(&state), "--counts-flush", "1"])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .args(["--block-page-listen", &format!("127.0.0.1:{page}")])
        .args(["--report-url", "https://hub.example/api/reports"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let proc = Proc(child);
    wait_until("the filter to answer", Duration::from_secs(15), || {
        !dig(dns, "ready.up.test", "A").0.is_empty()
    });
    Running {
        proc,
        dns,
        metrics,
        page,
    }
}

/// Sum of the counts files' lines for (zone, rule, action, log_only), and the
/// number of lines with that key in any one file (must be 1: summed per hour).
fn counted(state: &Path, zone: &str, rule: &str, action: &str, log_only: bool) -> (u64, usize) {
    let lines =
        filter::telemetry::read_counts(&state.join("counts")).unwrap_or_else(|e| panic!("{e}"));
    let mut per_hour = std::collections::HashMap::new();
    let mut total = 0;
    for l in lines {
        if l.zone == zone && l.rule == rule && l.action == action && l.log_only == log_only {
            total += l.count;
            *per_hour.entry(l.hour).or_insert(0usize) += 1;
        }
    }
    (total, per_hour.values().copied().max().unwrap_or(0))
}

/// Every file under `dir`, as text.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push_str(&String::from_utf8_lossy(
                    &std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out
}

#[test]
fn metrics_counts_block_page_and_no_client_address() {
    let dir = workdir("main");
    let (_named, up) = start_named(&dir);
    write(&dir.join("block.rpz"), BLOCK_RPZ);
    write(&dir.join("garden.rpz"), GARDEN_RPZ);
    write(&dir.join("watch.rpz"), WATCH_RPZ);
    let state = dir.join("state");

    let f = start_filter(&dir, up, "filter-1.log");
    // The readiness probes are counted too: what follows is measured from here.
    let (code, before) = http_get(f.metrics, "/metrics", "127.0.0.1");
    assert_eq!(code, 200, "{before}");
    let was = |s: &str| metric(&before, s).unwrap_or(0.0);
    for _ in 0..2 {
        assert_eq!(dig(f.dns, "evil.up.test", "A").0, "NXDOMAIN");
    }
    assert_eq!(dig(f.dns, "x.wild.up.test", "AAAA").0, "NXDOMAIN");
    let (status, out) = dig(f.dns, "scam.up.test", "A");
    assert_eq!(status, "NOERROR", "{out}");
    assert!(out.contains("blockpage.up.test."), "{out}");
    assert!(out.contains("192.0.2.80"), "{out}");
    // Log-only: answered as it is, counted apart.
    let (status, out) = dig(f.dns, "watched.up.test", "A");
    assert_eq!(status, "NOERROR", "{out}");
    assert!(out.contains("192.0.2.11"), "{out}");
    // An ordinary name twice: forwarded once, then from the cache.
    for _ in 0..2 {
        assert_eq!(dig(f.dns, "www.up.test", "A").0, "NOERROR");
    }

    let (code, text) = http_get(f.metrics, "/metrics", "127.0.0.1");
    assert_eq!(code, 200, "{text}");
    eprintln!("{text}");
    let m = |s: &str| metric(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(
        m(r#"sharedefend_filter_queries_total{qtype="A",result="blocked"}"#),
        3.0
    );
    assert_eq!(
        m(r#"sharedefend_filter_queries_total{qtype="AAAA",result="blocked"}"#),
        1.0
    );
    // www twice, watched once (the readiness probes are NXDOMAIN).
    assert_eq!(
        m(r#"sharedefend_filter_queries_total{qtype="A",result="noerror"}"#),
        3.0
    );
    assert_eq!(
        m(r#"sharedefend_filter_blocks_total{zone="block.rpz",action="nxdomain"}"#),
        3.0
    );
    assert_eq!(
        m(r#"sharedefend_filter_blocks_total{zone="garden.rpz",action="redirect"}"#),
        1.0
    );
    assert_eq!(
        m(r#"sharedefend_filter_log_only_matches_total{zone="watch.rpz",action="nxdomain"}"#),
        1.0
    );
    // Asked upstream: scam's redirect target, watched, www once; www's second answer
    // from the cache. Blocked names never reach the cache or an upstream.
    let delta = |s: &str| m(s) - was(s);
    assert_eq!(delta("sharedefend_filter_cache_hits_total"), 1.0);
    assert_eq!(delta("sharedefend_filter_cache_misses_total"), 3.0);
    assert_eq!(
        delta("sharedefend_filter_upstream_latency_seconds_count"),
        3.0
    );
    assert_eq!(m("sharedefend_filter_zones_expired"), 0.0);
    assert_eq!(m("sharedefend_filter_notifies_refused_total"), 0.0);
    assert_eq!(
        m(r#"sharedefend_filter_upstream_latency_seconds_bucket{le="+Inf"}"#),
        m("sharedefend_filter_upstream_latency_seconds_count")
    );
    // Cumulative buckets never exceed the count, and there is one per bound.
    let buckets: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("sharedefend_filter_upstream_latency_seconds_bucket"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(buckets.len(), 13, "{text}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{text}");
    assert_eq!(m("sharedefend_filter_upstream_failures_total"), 0.0);
    assert_eq!(
        m(r#"sharedefend_filter_zone_serial{zone="block.rpz"}"#),
        7.0
    );
    assert_eq!(
        m(r#"sharedefend_filter_zone_serial{zone="watch.rpz"}"#),
        11.0
    );
    assert!(m(r#"sharedefend_filter_zone_age_seconds{zone="garden.rpz"}"#) >= 0.0);
    assert_eq!(
        m(r#"sharedefend_filter_zone_expired{zone="block.rpz"}"#),
        0.0
    );

    // The block page for the redirected name: the rule and the report link.
    let (code, page) = http_get(f.page, "/", "scam.up.test");
    assert_eq!(code, 403, "{page}");
    assert!(page.contains("scam, phishing or malware"), "{page}");
    assert!(
        page.contains("href=\"https://hub.example/api/reports?name=scam.up.test&amp;zone=garden.rpz&amp;rule=scam.up.test\""),
        "{page}"
    );
    // A hostile Host header is shown escaped, never as markup.
    let hostile = "\"><script>alert(1)</script>";
    let (code, page) = http_get(f.page, "/login?x=<b>", hostile);
    assert!(code == 403 || code == 400, "{code}: {page}");
    assert!(!page.contains("<script>"), "{page}");
    assert!(!page.contains("<b>"), "{page}");

    // Flushed while running (every second here).
    wait_until("the counts flushed", Duration::from_secs(10), || {
        counted(&state, "block.rpz", "evil.up.test", "nxdomain", false).0 == 2
    });
    f.proc.stop();
    assert_eq!(
        counted(&state, "block.rpz", "*.wild.up.test", "nxdomain", false).0,
        1
    );
    assert_eq!(
        counted(&state, "watch.rpz", "watched.up.test", "nxdomain", true).0,
        1
    );
    assert_eq!(
        counted(&state, "garden.rpz", "scam.up.test", "redirect", false).0,
        1
    );

    // A restart adds to the same counts, one line per key and hour.
    let f = start_filter(&dir, up, "filter-2.log");
    for _ in 0..3 {
        assert_eq!(dig(f.dns, "evil.up.test", "A").0, "NXDOMAIN");
    }
    let (_, metrics_text) = http_get(f.metrics, "/metrics", "127.0.0.1");
    f.proc.stop();
    let (total, lines) = counted(&state, "block.rpz", "evil.up.test", "nxdomain", false);
    assert_eq!(total, 5);
    assert_eq!(lines, 1);

    // The client's address is nowhere.
    let logs = format!(
        "{}{}",
        std::fs::read_to_string(dir.join("filter-1.log")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("filter-2.log")).unwrap_or_default()
    );
    assert!(logs.contains("serving DNS"), "{logs}");
    for (what, haystack) in [
        ("state dir", all_text(&state)),
        ("metrics", format!("{text}{metrics_text}")),
        ("logs", logs),
    ] {
        assert!(
            !haystack.contains(CLIENT),
            "{what} holds the client address"
        );
        assert!(!haystack.is_empty(), "{what} is empty");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
