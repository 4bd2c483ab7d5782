//! `sharedefend filter serve` following `sharedefend hub serve` as a secondary, both
//! as real processes: the zone is transferred at start, an import reaches the
//! filter by NOTIFY (sent to the filter's DNS port) and IXFR and blocks, a delisting
//! unblocks, a wrong TSIG key is refused with a clear log line, and with the hub
//! stopped a restarted filter blocks at once from its saved copy. Malformed zone
//! flags and configs are exit 2 naming the flag or field.
//!
//! Names not blocked resolve against a BIND `named` authoritative for `target.test`.
//! Everything on 127.0.0.1, free ports, bounded waits; processes killed on drop.

#![allow(clippy::print_stderr)]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{
    Db, KEY_NAME, KEY_SECRET, Proc, TARGET_A, ZONE, authoritative, dig, free_port, import,
    measured, path, sd, start_hub, status, tsig_partner, wait_until, workdir, write,
};

const WRONG_SECRET: &str = "AAAAQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";

fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// Starts the filter on 127.0.0.1:`port` with `args`; its log goes to `dir/LOG`.
/// Returns once it answers.
fn start_filter(dir: &Path, log: &'static str, port: u16, args: &[&str]) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let filter = Proc::spawn(
        "sharedefend filter serve",
        Command::new(env!("CARGO_BIN_EXE_sharedefend"))
            .args(["filter", "serve", "--listen", &listen, "--udp-sockets", "1"])
            .args(args)
            .env("RUST_LOG", "info"),
        &dir.join(log),
        &[],
    );
    wait_until(
        "the filter to answer",
        Duration::from_secs(15),
        &[&filter],
        || !status(port, "ready.probe.invalid").is_empty(),
    );
    filter
}

/// `GET /metrics` on 127.0.0.1:`port`: the body.
fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap_or_else(|e| panic!("{e}"));
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or(raw)
}

/// The value of `series` (name and labels exactly as printed) in `text`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn resolves(port: u16, name: &str) -> bool {
    dig(port, &["+short", name, "A"]).trim() == TARGET_A
}

#[test]
fn filter_serve_follows_the_hub() {
    let dir = workdir("filter-follow");
    let data = Db::Sqlite(dir.join("data"));
    let state = dir.join("state");
    import(&dir, &data, "a.txt", &["first.target.test"]);
    let (auth, auth_port) = authoritative(&dir);
    let upstream = format!("127.0.0.1:{auth_port}");
    let hub_port = free_port();
    let primary = format!("127.0.0.1:{hub_port}");
    let port = free_port();
    let hub = start_hub(
        &dir,
        &data,
        hub_port,
        &tsig_partner("filter", &[format!("127.0.0.1:{port}")]),
    );
    let key = format!("{KEY_NAME}:hmac-sha256:{KEY_SECRET}");
    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let args = [
        "--metrics-listen",
        &metrics,
        "--upstream",
        &upstream,
        "--zone",
        ZONE,
        "--primary",
        &primary,
        "--tsig",
        &key,
        "--state",
        path(&state),
    ];
    let filter = start_filter(&dir, "filter.log", port, &args);
    let procs = [&filter, &hub, &auth];

    // The AXFR at start.
    wait_until(
        "the filter to block first.target.test (AXFR)",
        Duration::from_secs(15),
        &procs,
        || status(port, "first.target.test") == "NXDOMAIN",
    );
    assert!(resolves(port, "other.target.test"));

    // An import: the hub NOTIFYs the filter's DNS port, the filter pulls the IXFR.
    // The hub's SOA refresh is far longer than the wait, so only the NOTIFY can
    // bring it in time.
    assert!(resolves(port, "late.target.test"));
    let started = Instant::now();
    import(&dir, &data, "b.txt", &["late.target.test"]);
    wait_until(
        "the filter to block late.target.test (NOTIFY, IXFR)",
        Duration::from_secs(10),
        &procs,
        || status(port, "late.target.test") == "NXDOMAIN",
    );
    measured("import to NXDOMAIN at the filter", started.elapsed());
    let text = log(&dir, "filter.log");
    assert!(text.contains("notify: refreshing"), "{text}");
    assert!(text.contains("kind=\"ixfr\""), "{text}");
    assert!(text.contains("change in force"), "{text}");

    // A delisting: the name resolves again (the true answer was cached).
    let started = Instant::now();
    sd(&data, &["delist", "late.target.test", "--reason", "test"]);
    wait_until(
        "late.target.test to resolve again",
        Duration::from_secs(10),
        &procs,
        || resolves(port, "late.target.test"),
    );
    measured("delist to resolving at the filter", started.elapsed());
    assert_eq!(status(port, "first.target.test"), "NXDOMAIN");

    // An unsigned NOTIFY (the zone has a key) is refused and counted.
    let out = dig(port, &["+opcode=notify", "+norec", ZONE, "SOA"]);
    assert!(
        out.contains("status: NOTAUTH") || out.contains("status: REFUSED"),
        "{out}"
    );
    let text = scrape(metrics_port);
    let m = |s: &str| metric(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(
        m(&format!(
            "sharedefend_filter_zone_serial{{zone=\"{ZONE}\"}}"
        )),
        3.0
    );
    assert_eq!(
        m(&format!(
            "sharedefend_filter_zone_expired{{zone=\"{ZONE}\"}}"
        )),
        0.0
    );
    assert!(
        m(&format!(
            "sharedefend_filter_zone_age_seconds{{zone=\"{ZONE}\"}}"
        )) < 60.0
    );
    assert_eq!(m("sharedefend_filter_zones_expired"), 0.0);
    assert_eq!(m("sharedefend_filter_notifies_refused_total"), 1.0);

    // A wrong key: the hub refuses, the filter says why and blocks nothing.
    let wrong_port = free_port();
    let wrong_key = format!("{KEY_NAME}:hmac-sha256:{WRONG_SECRET}");
    let wrong_state = dir.join("wrong-state");
    let wrong = start_filter(
        &dir,
        "wrong.log",
        wrong_port,
        &[
            "--upstream",
            &upstream,
            "--zone",
            ZONE,
            "--primary",
            &primary,
            "--tsig",
            &wrong_key,
            "--state",
            path(&wrong_state),
        ],
    );
    wait_until(
        "the wrong key to be refused in the log",
        Duration::from_secs(15),
        &[&wrong, &hub],
        || log(&dir, "wrong.log").contains("refresh failed"),
    );
    let text = log(&dir, "wrong.log");
    let line = text
        .lines()
        .find(|l| l.contains("refresh failed"))
        .unwrap_or_default();
    assert!(
        line.contains(ZONE)
            && line.contains("tsig")
            && line.contains("NOTAUTH")
            && line.contains("no copy of the zone held yet"),
        "{line}"
    );
    assert!(resolves(wrong_port, "first.target.test"));
    wrong.stop();

    // The hub stopped, the filter restarted: it blocks at once from its saved copy.
    hub.stop();
    filter.stop();
    let started = Instant::now();
    let filter = start_filter(&dir, "filter2.log", port, &args);
    assert_eq!(status(port, "first.target.test"), "NXDOMAIN");
    measured("restart to serving from the saved copy", started.elapsed());
    assert!(resolves(port, "late.target.test"));
    let text = log(&dir, "filter2.log");
    assert!(text.contains("saved copy loaded"), "{text}");
    assert!(text.contains("in force from the saved copy"), "{text}");
    wait_until(
        "the failed refresh to be logged",
        Duration::from_secs(15),
        &[&filter],
        || log(&dir, "filter2.log").contains("refresh failed"),
    );
    assert_eq!(status(port, "first.target.test"), "NXDOMAIN");
    for name in ["filter.log", "filter2.log", "wrong.log"] {
        let text = log(&dir, name);
        assert!(
            !text.contains(KEY_SECRET) && !text.contains(WRONG_SECRET),
            "{name}: {text}"
        );
    }
    drop(filter);
    drop(auth);
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn malformed_zone_flags_and_configs_are_exit_2_naming_the_field() {
    let dir = workdir("filter-follow-bad");
    let config = |name: &str, text: &str| {
        let p = dir.join(name);
        write(&p, &format!("upstreams = [\"127.0.0.1:9\"]\n{text}"));
        p
    };
    let bad_primary = config(
        "primary.toml",
        "[[zones]]\nname = \"z.rpz\"\nprimary = \"hub.example\"\n",
    );
    let no_state = config(
        "state.toml",
        "[[zones]]\nname = \"z.rpz\"\nprimary = \"127.0.0.1:53\"\n",
    );
    let both = config(
        "both.toml",
        "[[zones]]\nname = \"z.rpz\"\nfile = \"z.rpz\"\nprimary = \"127.0.0.1:53\"\n",
    );
    let no_name = config("name.toml", "[[zones]]\nprimary = \"127.0.0.1:53\"\n");
    let bad_key = config(
        "key.toml",
        "state = \"/tmp\"\n[[zones]]\nname = \"z.rpz\"\nprimary = \"127.0.0.1:53\"\ntsig = \"k:hmac-md5:AAAA\"\n",
    );
    let expire = config("expire.toml", "on_expire = \"sometimes\"\n");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--config", path(&bad_primary)], "primary"),
        (vec!["--config", path(&no_state)], "needs --state DIR"),
        (
            vec!["--config", path(&both)],
            "zones[0]: give file or primary",
        ),
        (vec!["--config", path(&no_name)], "zones[0]: name"),
        (
            vec!["--config", path(&bad_key)],
            "zones[0]: zone z.rpz: tsig",
        ),
        (vec!["--config", path(&expire)], "on_expire \"sometimes\""),
        (
            vec!["--upstream", "127.0.0.1:9", "--zone", "z.rpz"],
            "--zone z.rpz: no --primary",
        ),
        (
            vec!["--upstream", "127.0.0.1:9", "--primary", "127.0.0.1:53"],
            "--primary before any --zone",
        ),
        (
            vec![
                "--upstream",
                "127.0.0.1:9",
                "--zone",
                "z.rpz",
                "--primary",
                "127.0.0.1:53",
                "--tsig",
                "nokey",
            ],
            "--zone z.rpz: zone z.rpz: tsig",
        ),
        (
            vec![
                "--upstream",
                "127.0.0.1:9",
                "--zone",
                "z.rpz",
                "--primary",
                "nowhere",
            ],
            "--primary",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_sharedefend"))
            .args(["filter", "serve", "--listen", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
