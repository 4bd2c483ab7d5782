//! What the DNS interop tests stand on: temporary directories, free loopback ports,
//! `sharedefend` runs against a store, `hub serve` and the real DNS servers as child
//! processes killed when their guard drops, `dig`/`kdig`, bounded waits that fail with
//! the tail of every server's log, and a BIND `named` serving the test zone
//! `target.test` for the resolvers to resolve unblocked names against.
//!
//! Shared by `dns_interop.rs` (the hub and BIND) and `resolver_interop.rs` (PowerDNS
//! Recursor, Unbound, Knot Resolver); each uses a part, hence `dead_code` allowed.
//! Everything listens on 127.0.0.1; `scripts/test` installs the servers.
#![allow(dead_code, clippy::print_stderr)]

#[path = "../../../store/tests/support/mod.rs"]
pub mod pg;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The bench's test-only key (`../shared/bench/configs/xfr/README.md`). Not secret.
pub const KEY_NAME: &str = "hub-key";
pub const KEY_SECRET: &str = "c6fbQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";
/// A second partner with an hmac-sha512 key (test only: base64(sha512("sharedefend
/// test-only sha512 key, not secret"))).
pub const KEY512_NAME: &str = "isp512-key";
pub const KEY512_SECRET: &str =
    "9HtadgZyHjgBTQhPHKiDGBio4W6pueUaDsLxMG9rSDV3W5mvlYKkP4mKXMkOhrZ3BhwUjzcIJU9qmOq3+Qgf9w==";

/// The feed zone every test imports into (`--category phishing`).
pub const ZONE: &str = "phishing.rpz.sharedefend";

/// The answer of every name in the test zone `target.test`.
pub const TARGET_A: &str = "192.0.2.1";

/// `Result::unwrap` for tests, naming what failed.
pub trait Must<T> {
    fn must(self, what: &str) -> T;
}

impl<T, E: std::fmt::Display> Must<T> for Result<T, E> {
    #[track_caller]
    fn must(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// A child process, killed on drop, with the log files that tell what it did.
pub struct Proc {
    child: Mutex<Child>,
    pub what: &'static str,
    logs: Vec<PathBuf>,
}

impl Proc {
    /// Starts `cmd` with standard output and error appended to `log` (which is
    /// also where its report looks), plus any `more_logs` the server writes itself.
    pub fn spawn(what: &'static str, cmd: &mut Command, log: &Path, more_logs: &[&Path]) -> Proc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .must(&format!("{}", log.display()));
        let err = file.try_clone().must("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e} (scripts/test installs it)"));
        let mut logs = vec![log.to_path_buf()];
        logs.extend(more_logs.iter().map(|p| p.to_path_buf()));
        Proc {
            child: Mutex::new(child),
            what,
            logs,
        }
    }

    /// Whether it is running, and the last lines of its logs.
    pub fn report(&self) -> String {
        let state = match self.child.lock() {
            Ok(mut c) => match c.try_wait() {
                Ok(None) => "running".to_owned(),
                Ok(Some(status)) => format!("EXITED ({status})"),
                Err(e) => format!("unknown ({e})"),
            },
            Err(_) => "unknown".to_owned(),
        };
        let mut out = format!("--- {} ({state})\n", self.what);
        for log in &self.logs {
            let _ = writeln!(out, "{}:\n{}", log.display(), tail(log, 30));
        }
        out
    }

    /// Stops it (SIGKILL) and waits for it.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let child = match self.child.get_mut() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The last `n` lines of a file (empty if it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A fresh directory for one test.
pub fn workdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sharedefend-dns-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).must("creating the test directory");
    dir
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 path"))
}

pub fn write(p: &Path, text: &str) {
    std::fs::write(p, text).must(&format!("{}", p.display()));
}

/// A loopback port free for UDP and TCP (see `testkit`).
pub fn free_port() -> u16 {
    testkit::free_port()
}

/// The store under test: a SQLite directory or a PostgreSQL database.
pub enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        match self {
            Db::Sqlite(dir) => cmd
                .env("SHAREDEFEND_DATA", dir)
                .env_remove("SHAREDEFEND_POSTGRES"),
            Db::Postgres(params) => cmd.env("SHAREDEFEND_POSTGRES", params),
        }
    }
}

/// Runs `sharedefend` on the store `data`; requires success.
pub fn sd(data: &Db, args: &[&str]) -> String {
    let out = data
        .apply(&mut Command::new(env!("CARGO_BIN_EXE_sharedefend")))
        .args(args)
        .env_remove("SHAREDEFEND_NOW")
        .env("SHAREDEFEND_OPERATOR", "test")
        .output()
        .must("running sharedefend");
    assert!(
        out.status.success(),
        "sharedefend {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Imports `names` as a phishing feed file; returns once the import has committed.
pub fn import(dir: &Path, data: &Db, file: &str, names: &[&str]) {
    let f = dir.join(file);
    write(&f, &(names.join("\n") + "\n"));
    sd(
        data,
        &[
            "import",
            "--source",
            "test-feed",
            "--category",
            "phishing",
            path(&f),
        ],
    );
}

/// A partner table for the hub's config: TSIG key `hub-key` (sha256), the phishing
/// feed, NOTIFY `notify`.
pub fn tsig_partner(name: &str, notify: &[String]) -> String {
    format!(
        "[[partner]]\nname = \"{name}\"\nfeeds = [\"phishing\"]\nnotify = [{}]\n\
         tsig = {{ name = \"{KEY_NAME}\", algorithm = \"hmac-sha256\", secret = \"{KEY_SECRET}\" }}\n",
        quoted(notify)
    )
}

pub fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Starts `hub serve` on 127.0.0.1:`port` with `config` (written to `dir/hub.toml`);
/// logs are appended to `dir/hub.log`, so a restarted hub keeps one log. Returns once
/// the hub answers SOA for the phishing zone.
pub fn start_hub(dir: &Path, data: &Db, port: u16, config: &str) -> Proc {
    let file = dir.join("hub.toml");
    write(&file, config);
    let hub = Proc::spawn(
        "sharedefend hub serve",
        data.apply(&mut Command::new(env!("CARGO_BIN_EXE_sharedefend")))
            .args([
                "hub",
                "serve",
                "--dns-listen",
                &format!("127.0.0.1:{port}"),
                "--config",
                path(&file),
                // Any free port for the HTTP front, which these tests do not use.
                "--http-listen",
                "127.0.0.1:0",
                "--key-dir",
                path(&dir.join("keys")),
            ])
            .env("RUST_LOG", "info"),
        &dir.join("hub.log"),
        &[],
    );
    wait_until(
        "the hub to answer SOA",
        Duration::from_secs(10),
        &[&hub],
        || dig(port, &["+short", ZONE, "SOA"]).contains("localhost."),
    );
    hub
}

pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test installs it)"))
}

/// `dig @127.0.0.1 -p port ARGS`: its standard output.
pub fn dig(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let mut all = vec!["@127.0.0.1", "-p", &p, "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    let out = run("dig", &all);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn kdig(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let mut all = vec!["@127.0.0.1", "-p", &p, "+time=2", "+retry=0"];
    all.extend_from_slice(args);
    let out = run("kdig", &all);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn key256() -> String {
    format!("hmac-sha256:{KEY_NAME}:{KEY_SECRET}")
}

/// The rcode of `dig NAME A` at the server on `port` (`NOERROR`, `NXDOMAIN`, …;
/// empty if there was no answer).
pub fn status(port: u16, name: &str) -> String {
    let out = dig(port, &[name, "A"]);
    out.lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_owned()
}

/// Polls `f` every 100 ms until it holds; after `limit` panics with what it waited
/// for and the state and log tail of each of `procs`.
pub fn wait_until(what: &str, limit: Duration, procs: &[&Proc], mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    for _ in 0..10_000 {
        if f() {
            return;
        }
        if start.elapsed() > limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let reports: Vec<String> = procs.iter().map(|p| p.report()).collect();
    panic!(
        "timed out after {limit:?} waiting for {what}\n{}",
        reports.join("\n")
    );
}

/// Reports a measured time on standard error (shown with `--nocapture`).
pub fn measured(what: &str, elapsed: Duration) {
    eprintln!("measured: {what}: {:.3} s", elapsed.as_secs_f64());
}

/// The answer records of a dig transfer (no comments, no TSIG), one per line.
pub fn records(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("\tTSIG\t"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

pub fn soa_serials(out: &str) -> Vec<String> {
    records(out)
        .iter()
        .filter(|r| r.split(' ').nth(3) == Some("SOA"))
        .filter_map(|r| r.split(' ').nth(6).map(str::to_owned))
        .collect()
}

/// The `kind`s of the hub's finished transfers, in order, from its log.
pub fn transfers(hub_log: &str) -> Vec<String> {
    hub_log
        .lines()
        .filter(|l| l.contains("transfer done"))
        .filter_map(|l| l.split("kind=\"").nth(1)?.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// Writes the test zone `target.test` (every name `A 192.0.2.1`, TTL 60) to
/// `dir/target.test.db`.
pub fn target_zone(dir: &Path) -> PathBuf {
    let file = dir.join("target.test.db");
    write(
        &file,
        &format!(
            "$TTL 60\n@ SOA ns.target.test. root.target.test. 1 3600 600 86400 60\n\
             @ NS ns\nns A 127.0.0.1\n* A {TARGET_A}\n"
        ),
    );
    file
}

/// A BIND `named` authoritative for `target.test` only (no recursion), in
/// `dir/auth`: what the resolvers under test resolve unblocked names against.
pub fn authoritative(dir: &Path) -> (Proc, u16) {
    let d = dir.join("auth");
    std::fs::create_dir_all(&d).must("creating the authoritative's directory");
    let zone = target_zone(&d);
    let port = free_port();
    let ds = path(&d);
    let conf = d.join("named.conf");
    write(
        &conf,
        &format!(
            r#"options {{
    directory "{ds}";
    pid-file "{ds}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    dnssec-validation no;
}};
controls {{ }};
zone "target.test" {{ type primary; file "{zone}"; }};
"#,
            zone = path(&zone)
        ),
    );
    let named = Proc::spawn(
        "named (authoritative for target.test)",
        Command::new("named").args(["-f", "-g", "-c", path(&conf)]),
        &d.join("named.log"),
        &[],
    );
    wait_until(
        "the authoritative named to serve target.test",
        Duration::from_secs(10),
        &[&named],
        || dig(port, &["+short", "+norec", "probe.target.test", "A"]).contains(TARGET_A),
    );
    (named, port)
}

/// Starts BIND 9 `named` in `dir` (made if missing) on `port` as a resolver with one response-policy
/// zone, the hub's phishing zone, taken as a TSIG secondary from the hub on
/// `hub_port`, and the test zone `target.test` as its own primary.
pub fn start_rpz_secondary(dir: &Path, port: u16, hub_port: u16) -> Proc {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let d = path(dir);
    let target = target_zone(dir);
    let conf = format!(
        r#"key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{KEY_SECRET}"; }};
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-query {{ 127.0.0.0/8; }};
    allow-recursion {{ 127.0.0.0/8; }};
    dnssec-validation no;
    notify no;
    response-policy {{ zone "{ZONE}" min-update-interval 0; }} qname-wait-recurse no break-dnssec yes;
}};
controls {{ }};
logging {{
    channel f {{ file "{d}/named.log"; severity info; print-time yes; }};
    category default {{ f; }};
    category rpz {{ null; }};
}};
zone "target.test" {{ type primary; file "{target}"; }};
zone "{ZONE}" {{
    type secondary;
    primaries {{ 127.0.0.1 port {hub_port} key "{KEY_NAME}"; }};
    file "{d}/rpz.db";
    allow-query {{ localhost; }};
}};
"#,
        target = path(&target)
    );
    let file = dir.join("named.conf");
    write(&file, &conf);
    Proc::spawn(
        "named (RPZ secondary)",
        Command::new("named").args(["-f", "-c", path(&file)]),
        &dir.join("named.stderr"),
        &[&dir.join("named.log")],
    )
}
