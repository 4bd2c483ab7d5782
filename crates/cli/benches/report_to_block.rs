//! Seconds from report to block, measured (not a test: it prints). Issue #6's goal:
//! p99 under 1 s at the filter and under 2 s at BIND.
//!
//! Starts on loopback: `sharedefend hub serve` on a fresh SQLite store; `sharedefend
//! filter serve` following its phishing zone (TSIG, NOTIFY to its DNS port, IXFR);
//! BIND 9 `named` as an RPZ resolver slaving the same zone with TSIG
//! (`min-update-interval 0`); and a BIND authoritative for `target.test`, which both
//! resolve unblocked names against. Then submits `N` names (`bNNN.target.test`) one
//! request at a time through `POST /api/indicators` and, after each answer, asks
//! both followers for the name (A, over UDP, every 2 ms) until each says NXDOMAIN
//! (at most 10 s each). Reports, per follower, p50/p95/p99/max of the time from the
//! API's answer to the first NXDOMAIN, and the API's own answer time.
//!
//! `cargo bench -p sharedefend --bench report_to_block [-- N]` (default 1000).

#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../tests/hubproc/mod.rs"]
mod hubproc;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{
    Db, KEY_NAME, KEY_SECRET, Proc, ZONE, authoritative, dig, free_port, import, path, sd, status,
    tsig_partner, wait_until, workdir, write,
};

/// The longest wait for one name at one follower.
const LIMIT: Duration = Duration::from_secs(10);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn show(what: &str, mut v: Vec<Duration>, missed: usize) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<26} n={} p50={:.1} ms p95={:.1} ms p99={:.1} ms max={:.1} ms{}",
        v.len(),
        ms(percentile(&v, 0.50)),
        ms(percentile(&v, 0.95)),
        ms(percentile(&v, 0.99)),
        ms(v.last().copied().unwrap_or_default()),
        if missed > 0 {
            format!(" ({missed} not blocked within {LIMIT:?})")
        } else {
            String::new()
        }
    );
}

/// An A query for `name` with `id`, recursion desired.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Asks `port` for `name`; true if the answer is NXDOMAIN.
fn nxdomain(socket: &UdpSocket, port: u16, id: u16, name: &str) -> bool {
    if socket
        .send_to(&query(id, name), ("127.0.0.1", port))
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 1500];
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(500) {
        match socket.recv(&mut buf) {
            Ok(n) if n >= 4 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                return buf[3] & 0x0f == 3;
            }
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
    false
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let dir = workdir("report-to-block");
    let data = Db::Sqlite(dir.join("data"));
    import(&dir, &data, "seed.txt", &["seed.target.test"]);
    let (auth, auth_port) = authoritative(&dir);
    let hub_dns = free_port();
    let http = free_port();
    let filter_port = free_port();
    let bind_port = free_port();
    let config = dir.join("hub.toml");
    write(
        &config,
        &tsig_partner(
            "followers",
            &[
                format!("127.0.0.1:{filter_port}"),
                format!("127.0.0.1:{bind_port}"),
            ],
        ),
    );
    sd(
        &data,
        &[
            "partner",
            "add",
            "cert",
            "--config",
            path(&config),
            "--no-tsig",
            "--roles",
            "contributor",
            "--trust",
            "0.9",
        ],
    );
    let token = sd(
        &data,
        &["partner", "token", "cert", "--config", path(&config)],
    )
    .trim()
    .to_owned();
    let hub = Proc::spawn(
        "sharedefend hub serve",
        data.apply(&mut Command::new(env!("CARGO_BIN_EXE_sharedefend")))
            .args([
                "hub",
                "serve",
                "--dns-listen",
                &format!("127.0.0.1:{hub_dns}"),
                "--http-listen",
                &format!("127.0.0.1:{http}"),
                "--config",
                path(&config),
                "--key-dir",
                path(&dir.join("keys")),
            ])
            .env("RUST_LOG", "warn"),
        &dir.join("hub.log"),
        &[],
    );
    wait_until("the hub", Duration::from_secs(15), &[&hub], || {
        hubproc::try_get(http, "/feeds/pubkey", &[]).is_some_and(|r| r.status == 200)
            && dig(hub_dns, &["+short", ZONE, "SOA"]).contains("localhost.")
    });
    let filter = Proc::spawn(
        "sharedefend filter serve",
        Command::new(env!("CARGO_BIN_EXE_sharedefend"))
            .args([
                "filter",
                "serve",
                "--listen",
                &format!("127.0.0.1:{filter_port}"),
                "--udp-sockets",
                "1",
                "--upstream",
                &format!("127.0.0.1:{auth_port}"),
                "--zone",
                ZONE,
                "--primary",
                &format!("127.0.0.1:{hub_dns}"),
                "--tsig",
                &format!("{KEY_NAME}:hmac-sha256:{KEY_SECRET}"),
                "--state",
                path(&dir.join("filter-state")),
            ])
            .env("RUST_LOG", "warn"),
        &dir.join("filter.log"),
        &[],
    );
    let named = support::start_rpz_secondary(&dir.join("bind"), bind_port, hub_dns);
    let procs = [&hub, &filter, &named, &auth];
    for port in [filter_port, bind_port] {
        wait_until(
            "the followers to load the zone",
            Duration::from_secs(30),
            &procs,
            || status(port, "seed.target.test") == "NXDOMAIN",
        );
    }

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap_or_else(|e| panic!("{e}"));
    let auth_header = format!("Bearer {token}");
    let mut answers = Vec::with_capacity(n);
    let (mut at_filter, mut at_bind) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut missed_filter, mut missed_bind) = (0, 0);
    let mut id: u16 = 1;
    let tag = std::process::id();
    for i in 0..n {
        let name = format!("b{i}-{tag}.target.test");
        let body = format!("[{{\"value\": \"{name}\", \"tlp\": \"clear\"}}]");
        let sent = Instant::now();
        let r = hubproc::request(
            http,
            "POST",
            "/api/indicators?category=phishing",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth_header),
            ],
            body.as_bytes(),
        );
        let answered = Instant::now();
        assert_eq!(r.status, 200, "{}", r.text());
        answers.push(answered - sent);
        let (mut f, mut b) = (None, None);
        while (f.is_none() || b.is_none()) && answered.elapsed() < LIMIT {
            for (port, slot) in [(filter_port, &mut f), (bind_port, &mut b)] {
                if slot.is_none() {
                    id = id.wrapping_add(1);
                    if nxdomain(&socket, port, id, &name) {
                        *slot = Some(answered.elapsed());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        match f {
            Some(d) => at_filter.push(d),
            None => missed_filter += 1,
        }
        match b {
            Some(d) => at_bind.push(d),
            None => missed_bind += 1,
        }
        if (i + 1) % 100 == 0 {
            eprintln!("{} of {n}", i + 1);
        }
    }
    println!(
        "report to block: {n} names submitted one at a time (POST /api/indicators), SQLite, loopback"
    );
    show("API answer", answers, 0);
    show("answer → NXDOMAIN filter", at_filter, missed_filter);
    show("answer → NXDOMAIN BIND", at_bind, missed_bind);
    drop((named, filter, hub, auth));
    let _ = std::fs::remove_dir_all(&dir);
}
