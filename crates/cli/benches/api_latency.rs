//! From a partner's submission to publication, measured (not a test: it prints).
//!
//! Starts `sharedefend hub serve` on a fresh SQLite store with a contributor and a
//! DNS partner whose NOTIFY target is a UDP socket here (standing in for a
//! secondary), then submits `N` indicators one request at a time through
//! `POST /api/indicators` and reports, as p50/p95/p99/max:
//!
//! - **answer**: request sent → answer read. The answer comes after the journal
//!   commit and after the DNS front has taken the new serial (`publish_now`), so it
//!   is the whole publication path on the hub.
//! - **notify**: answer read → the NOTIFY for the answered serial arriving here.
//!
//! `cargo bench -p sharedefend --bench api_latency [-- N]` (default 200).

#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../tests/hubproc/mod.rs"]
mod hubproc;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubproc::{path, request, sd, serve, try_get, wait_until, workdir};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn show(what: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<8} n={} p50={:.2} ms p95={:.2} ms p99={:.2} ms max={:.2} ms",
        v.len(),
        ms(percentile(&v, 0.50)),
        ms(percentile(&v, 0.95)),
        ms(percentile(&v, 0.99)),
        ms(v.last().copied().unwrap_or_default()),
    );
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = workdir("api-latency");
    let data = dir.join("data");
    let config = dir.join("hub.toml");
    let secondary = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let target = secondary.local_addr().unwrap_or_else(|e| panic!("{e}"));
    sd(
        &data,
        &[
            "partner",
            "add",
            "isp",
            "--config",
            path(&config),
            "--feeds",
            "phishing",
            "--no-tsig",
            "--allow-ip",
            "127.0.0.1",
            "--notify",
            &target.to_string(),
        ],
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
    let http = hubproc::free_port();
    let dns = hubproc::free_port();
    let _hub = serve(
        &data,
        &[
            "--dns-listen",
            &format!("127.0.0.1:{dns}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
            "--config",
            path(&config),
        ],
        &dir.join("hub.log"),
    );
    wait_until("the hub to answer HTTP", Duration::from_secs(10), || {
        try_get(http, "/feeds/pubkey", &[]).is_some_and(|r| r.status == 200)
    });

    // The secondary: notes when each serial of the phishing zone is first NOTIFYed,
    // and answers (an unsigned NOTIFY ends with the SOA's five 32-bit fields, the
    // serial first).
    let arrivals: Arc<Mutex<HashMap<u32, Instant>>> = Arc::default();
    let seen = arrivals.clone();
    secondary
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap_or_else(|e| panic!("{e}"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let listener = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((len, from)) = secondary.recv_from(&mut buf) else {
                continue;
            };
            let at = Instant::now();
            let msg = &buf[..len];
            if len > 32 && msg.windows(9).any(|w| w == b"\x08phishing") {
                let s = &msg[len - 20..len - 16];
                let serial = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
                if let Ok(mut m) = seen.lock() {
                    m.entry(serial).or_insert(at);
                }
            }
            let mut answer = msg.to_vec();
            answer[2] |= 0x80;
            let _ = secondary.send_to(&answer, from);
        }
    });

    let auth = format!("Bearer {token}");
    let mut answers = Vec::with_capacity(n);
    let mut answered: Vec<(u32, Instant)> = Vec::with_capacity(n);
    for i in 0..n {
        let body = format!("[\"bench-{i}-{}.example\"]", std::process::id());
        let sent = Instant::now();
        let r = request(
            http,
            "POST",
            "/api/indicators?category=phishing",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            body.as_bytes(),
        );
        let got = Instant::now();
        assert_eq!(r.status, 200, "{}", r.text());
        let serial = r.json()["serials"]["phishing"].as_u64().unwrap_or(0) as u32;
        answers.push(got - sent);
        answered.push((serial, got));
    }
    // Let the last NOTIFYs arrive.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = listener.join();
    let arrivals = arrivals.lock().map(|m| m.clone()).unwrap_or_default();
    let notify: Vec<Duration> = answered
        .iter()
        .filter_map(|(serial, got)| {
            arrivals
                .get(serial)
                .map(|at| at.saturating_duration_since(*got))
        })
        .collect();
    println!("API submission → publication, {n} single-indicator requests, SQLite, loopback");
    show("answer", answers);
    show("notify", notify);
    println!(
        "(notify: time from the answer to the NOTIFY of its serial; {} of {n} serials NOTIFYed)",
        arrivals.len().min(n)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
