//! `sharedefend hub serve` against real DNS software: `dig` and `kdig` transfer the
//! feed zones with TSIG (and are refused without it, or with a wrong key), BIND's
//! `named-checkzone` accepts what was transferred, and BIND 9 `named` runs as a
//! TSIG-authenticated RPZ secondary that follows an import by NOTIFY and IXFR and
//! blocks the name, then unblocks it after a delisting.
//!
//! Everything talks to 127.0.0.1 on free ports, every wait is bounded, and every
//! process the test starts is killed when its guard drops. `scripts/test` installs
//! `bind9`, `bind9-dnsutils` and `knot-dnsutils`.

#![allow(clippy::print_stderr)]

#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The bench's test-only key (`../shared/bench/configs/xfr/README.md`). Not secret.
const KEY_NAME: &str = "hub-key";
const KEY_SECRET: &str = "c6fbQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";
/// A second partner with an hmac-sha512 key (test only: base64(sha512("sharedefend
/// test-only sha512 key, not secret"))).
const KEY512_NAME: &str = "isp512-key";
const KEY512_SECRET: &str =
    "9HtadgZyHjgBTQhPHKiDGBio4W6pueUaDsLxMG9rSDV3W5mvlYKkP4mKXMkOhrZ3BhwUjzcIJU9qmOq3+Qgf9w==";
/// Right name, wrong secret.
const WRONG_SECRET: &str = "AAAAQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";

const ZONE: &str = "phishing.rpz.sharedefend";

/// A child process killed on drop.
struct Proc {
    child: Child,
    what: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sharedefend-dns-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 path"))
}

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = udp.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port")
}

/// The store under test: a SQLite directory or a PostgreSQL database.
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        match self {
            Db::Sqlite(dir) => cmd
                .env("SHAREDEFEND_DATA", dir)
                .env_remove("SHAREDEFEND_POSTGRES"),
            Db::Postgres(params) => cmd.env("SHAREDEFEND_POSTGRES", params),
        }
    }
}

/// Runs `sharedefend` on the store `data`; requires success.
fn sd(data: &Db, args: &[&str]) -> String {
    let out = data
        .apply(&mut Command::new(env!("CARGO_BIN_EXE_sharedefend")))
        .args(args)
        .env_remove("SHAREDEFEND_NOW")
        .env("SHAREDEFEND_OPERATOR", "test")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "sharedefend {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn import(dir: &Path, data: &Db, file: &str, names: &[&str]) {
    let f = dir.join(file);
    std::fs::write(&f, names.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
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

/// Starts `hub serve` on a free port with partners for both test keys; logs to
/// `dir/hub.log`. `notify` are the NOTIFY targets of the sha256 partner.
fn serve(dir: &Path, data: &Db, notify: &[String]) -> (Proc, u16) {
    let port = free_port();
    let config = dir.join("hub.toml");
    let notify: Vec<String> = notify.iter().map(|n| format!("{n:?}")).collect();
    std::fs::write(
        &config,
        format!(
            r#"[[partner]]
name = "isp"
feeds = ["phishing"]
notify = [{}]
tsig = {{ name = "{KEY_NAME}", algorithm = "hmac-sha256", secret = "{KEY_SECRET}" }}

[[partner]]
name = "isp512"
feeds = ["*"]
tsig = {{ name = "{KEY512_NAME}", algorithm = "hmac-sha512", secret = "{KEY512_SECRET}" }}
"#,
            notify.join(", ")
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = std::fs::File::create(dir.join("hub.log")).unwrap_or_else(|e| panic!("{e}"));
    let child = data
        .apply(&mut Command::new(env!("CARGO_BIN_EXE_sharedefend")))
        .args([
            "hub",
            "serve",
            "--dns-listen",
            &format!("127.0.0.1:{port}"),
            "--config",
            path(&config),
            // Any free port for the HTTP front, which these tests do not use.
            "--http-listen",
            "127.0.0.1:0",
            "--key-dir",
            path(&dir.join("keys")),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let hub = Proc {
        child,
        what: "sharedefend hub serve",
    };
    wait_until("the hub to answer SOA", Duration::from_secs(10), || {
        dig(port, &["+short", ZONE, "SOA"]).contains("localhost.")
    });
    (hub, port)
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test installs it)"))
}

fn dig(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let mut all = vec!["@127.0.0.1", "-p", &p, "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    let out = run("dig", &all);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kdig(port: u16, args: &[&str]) -> String {
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

fn key256() -> String {
    format!("hmac-sha256:{KEY_NAME}:{KEY_SECRET}")
}

/// Polls `f` every 100 ms until it holds; panics after `limit`.
fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    for _ in 0..1000 {
        if f() {
            return;
        }
        if start.elapsed() > limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// The answer records of a dig transfer (no comments, no TSIG), one per line.
fn records(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("\tTSIG\t"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn soa_serials(out: &str) -> Vec<String> {
    records(out)
        .iter()
        .filter(|r| r.split(' ').nth(3) == Some("SOA"))
        .filter_map(|r| r.split(' ').nth(6).map(str::to_owned))
        .collect()
}

#[test]
fn dig_and_kdig_transfer_with_tsig_and_are_refused_without() {
    let dir = workdir("xfr");
    let data = Db::Sqlite(dir.join("data"));
    import(
        &dir,
        &data,
        "a.txt",
        &["evil-one.example", "evil-two.example"],
    );
    let (hub, port) = serve(&dir, &data, &[]);

    // AXFR with the sha256 key (dig) and the sha512 key (kdig).
    let axfr = dig(port, &["-y", &key256(), ZONE, "AXFR"]);
    let rrs = records(&axfr);
    assert_eq!(soa_serials(&axfr), ["1", "1"], "{axfr}");
    assert!(
        rrs.contains(&format!("evil-one.example.{ZONE}. 300 IN CNAME .")),
        "{axfr}"
    );
    assert!(
        rrs.contains(&format!("*.evil-one.example.{ZONE}. 300 IN CNAME .")),
        "{axfr}"
    );
    assert!(
        rrs.contains(&format!("{ZONE}. 300 IN NS localhost.")),
        "{axfr}"
    );
    assert_eq!(rrs.len(), 3 + 4, "{axfr}");
    let k512 = format!("hmac-sha512:{KEY512_NAME}:{KEY512_SECRET}");
    let kaxfr = kdig(port, &["-y", &k512, ZONE, "AXFR"]);
    assert!(kaxfr.contains("(1 messages, 7 records)"), "{kaxfr}");
    assert!(kaxfr.contains("evil-two.example"), "{kaxfr}");

    // named-checkzone accepts the zone as transferred.
    let zone_file = dir.join("axfr.zone");
    std::fs::write(&zone_file, records(&axfr).join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    let check = run("named-checkzone", &[ZONE, path(&zone_file)]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // Refused: no key (REFUSED), unknown key (NOTAUTH/BADKEY), wrong secret
    // (NOTAUTH/BADSIG).
    let none = kdig(port, &[ZONE, "AXFR"]);
    assert!(none.contains("REFUSED"), "{none}");
    assert!(!none.contains("CNAME"), "{none}");
    let unknown = kdig(
        port,
        &[
            "-y",
            &format!("hmac-sha256:stranger:{KEY_SECRET}"),
            ZONE,
            "AXFR",
        ],
    );
    assert!(unknown.contains("BADKEY"), "{unknown}");
    assert!(!unknown.contains("CNAME"), "{unknown}");
    let wrong = dig(
        port,
        &[
            "-y",
            &format!("hmac-sha256:{KEY_NAME}:{WRONG_SECRET}"),
            ZONE,
            "AXFR",
        ],
    );
    assert!(wrong.contains("BADSIG"), "{wrong}");
    assert!(!wrong.contains("CNAME"), "{wrong}");
    let kwrong = kdig(
        port,
        &[
            "-y",
            &format!("hmac-sha256:{KEY_NAME}:{WRONG_SECRET}"),
            ZONE,
            "IXFR=0",
        ],
    );
    assert!(kwrong.contains("BADSIG"), "{kwrong}");

    // A new name: serial 2; IXFR from 1 is the condensed difference.
    import(&dir, &data, "b.txt", &["evil-three.example"]);
    wait_until("serial 2", Duration::from_secs(10), || {
        dig(port, &["+short", ZONE, "SOA"]).contains(" 2 ")
    });
    let ixfr = dig(port, &["-y", &key256(), ZONE, "IXFR=1"]);
    assert_eq!(soa_serials(&ixfr), ["2", "1", "2", "2"], "{ixfr}");
    let rrs = records(&ixfr);
    assert_eq!(rrs.len(), 4 + 2, "{ixfr}");
    assert!(
        rrs.contains(&format!("evil-three.example.{ZONE}. 300 IN CNAME .")),
        "{ixfr}"
    );
    let kixfr = kdig(port, &["-y", &k512, ZONE, "IXFR=1"]);
    assert!(kixfr.contains("evil-three.example"), "{kixfr}");
    // Up to date: the SOA alone. Older than the journal (none older here): serial 0
    // is the feed's start, so the difference from 0 is the whole zone.
    let current = dig(port, &["-y", &key256(), ZONE, "IXFR=2"]);
    assert_eq!(soa_serials(&current), ["2"], "{current}");
    let from0 = dig(port, &["-y", &key256(), ZONE, "IXFR=0"]);
    assert_eq!(records(&from0).len(), 4 + 6, "{from0}");
    // (the difference from 0 has no NS: NS is not a journalled rule)

    drop(hub);
    let log = std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default();
    assert!(log.contains("kind=\"axfr\""), "{log}");
    assert!(log.contains("kind=\"ixfr\""), "{log}");
    assert!(
        !log.contains(KEY_SECRET) && !log.contains(KEY512_SECRET),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn named_conf(dir: &Path, port: u16, hub_port: u16) -> PathBuf {
    let d = path(dir);
    std::fs::write(
        dir.join("target.test.db"),
        "$TTL 60\n@ SOA ns.target.test. root.target.test. 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n* A 192.0.2.1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
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
zone "target.test" {{ type primary; file "{d}/target.test.db"; }};
zone "{ZONE}" {{
    type secondary;
    primaries {{ 127.0.0.1 port {hub_port} key "{KEY_NAME}"; }};
    file "{d}/rpz.db";
    allow-query {{ localhost; }};
}};
"#
    );
    let p = dir.join("named.conf");
    std::fs::write(&p, conf).unwrap_or_else(|e| panic!("{e}"));
    p
}

fn status(port: u16, name: &str) -> String {
    let out = dig(port, &[name, "A"]);
    out.lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap_or("")
        .to_owned()
}

#[test]
fn bind_secondary_follows_notify_and_ixfr() {
    let dir = workdir("bind");
    let data = Db::Sqlite(dir.join("data"));
    import(&dir, &data, "a.txt", &["first.target.test"]);
    let bind_port = free_port();
    let (hub, hub_port) = serve(&dir, &data, &[format!("127.0.0.1:{bind_port}")]);
    let conf = named_conf(&dir, bind_port, hub_port);
    let named = Proc {
        child: Command::new("named")
            .args(["-f", "-c", path(&conf)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("named: {e} (scripts/test installs bind9)")),
        what: "named",
    };
    let _ = named.what;
    let _ = hub.what;

    // Initial AXFR: the first name is blocked, any other resolves.
    wait_until(
        "BIND to load the policy zone",
        Duration::from_secs(10),
        || status(bind_port, "first.target.test") == "NXDOMAIN",
    );
    assert_eq!(status(bind_port, "late.target.test"), "NOERROR");
    assert!(dig(bind_port, &["+short", "late.target.test", "A"]).contains("192.0.2.1"));

    // Import a name: the hub NOTIFYs, BIND pulls an IXFR and blocks it.
    import(&dir, &data, "b.txt", &["late.target.test"]);
    let imported = Instant::now();
    wait_until(
        "BIND to block late.target.test",
        Duration::from_secs(10),
        || status(bind_port, "late.target.test") == "NXDOMAIN",
    );
    eprintln!("import → BIND NXDOMAIN: {:?}", imported.elapsed());

    // Delist it: it resolves again.
    sd(&data, &["delist", "late.target.test", "--reason", "test"]);
    wait_until(
        "BIND to unblock late.target.test",
        Duration::from_secs(10),
        || status(bind_port, "late.target.test") == "NOERROR",
    );
    assert_eq!(status(bind_port, "first.target.test"), "NXDOMAIN");

    drop(named);
    drop(hub);
    let log = std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default();
    let transfers: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("transfer done"))
        .filter_map(|l| l.split("kind=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(transfers, ["axfr", "ixfr", "ixfr"], "{log}");
    assert!(log.contains("notify acknowledged"), "{log}");

    // The secondary's copy passes named-checkzone (BIND 9.18 writes secondary zones
    // in its raw format).
    let check = run(
        "named-checkzone",
        &["-f", "raw", ZONE, path(&dir.join("rpz.db"))],
    );
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same server over PostgreSQL (the store's reads run on the server's blocking
/// threads): AXFR, then IXFR after a second import.
#[test]
fn transfers_from_a_postgres_store() {
    let dir = workdir("pg");
    let data = Db::Postgres(support::pg_database());
    import(&dir, &data, "a.txt", &["pg-one.example"]);
    let (hub, port) = serve(&dir, &data, &[]);
    let axfr = dig(port, &["-y", &key256(), ZONE, "AXFR"]);
    assert_eq!(soa_serials(&axfr), ["1", "1"], "{axfr}");
    assert!(
        records(&axfr).contains(&format!("pg-one.example.{ZONE}. 300 IN CNAME .")),
        "{axfr}"
    );
    import(&dir, &data, "b.txt", &["pg-two.example"]);
    wait_until("serial 2", Duration::from_secs(10), || {
        dig(port, &["+short", ZONE, "SOA"]).contains(" 2 ")
    });
    let ixfr = dig(port, &["-y", &key256(), ZONE, "IXFR=1"]);
    assert_eq!(soa_serials(&ixfr), ["2", "1", "2", "2"], "{ixfr}");
    assert!(
        records(&ixfr).contains(&format!("pg-two.example.{ZONE}. 300 IN CNAME .")),
        "{ixfr}"
    );
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}
