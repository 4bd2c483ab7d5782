//! The whole chain across real processes: `hub serve` (SQLite store) with its partner
//! API, `filter serve` following the hub's phishing zone (AXFR/IXFR, TSIG, NOTIFY, a
//! saved copy in `--state`), and BIND 9 `named` slaving the same zone with TSIG as an
//! RPZ resolver. A submission through the API is NXDOMAIN at both followers; a public
//! false-positive report changes nothing until a reviewer approves it, then the name
//! resolves again at both (and `POST /api/delist` does the same for another name); a
//! restarted hub keeps its rules, review state and serials and carries on from them;
//! with the hub gone, a restarted filter still blocks from its saved zone.
//!
//! Unblocked names resolve against a BIND `named` authoritative for `target.test`.
//! Everything on 127.0.0.1, free ports, bounded waits; processes killed on drop.

#![allow(clippy::print_stderr)]

mod hubproc;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hubproc::{Response, request, try_get};
use serde_json::{Value, json};
use support::{
    Db, KEY_NAME, KEY_SECRET, Proc, TARGET_A, ZONE, authoritative, dig, free_port, import, key256,
    measured, path, records, sd, soa_serials, status, tsig_partner, wait_until, workdir, write,
};

/// How long a change may take to reach a follower before the test fails.
const REACH: Duration = Duration::from_secs(15);

struct Ports {
    hub_dns: u16,
    hub_http: u16,
}

/// Starts `hub serve` with `dir/hub.toml`; returns once the API answers.
fn start_hub(dir: &Path, data: &Db, ports: &Ports) -> Proc {
    let hub = Proc::spawn(
        "sharedefend hub serve",
        data.apply(&mut Command::new(env!("CARGO_BIN_EXE_sharedefend")))
            .args([
                "hub",
                "serve",
                "--dns-listen",
                &format!("127.0.0.1:{}", ports.hub_dns),
                "--http-listen",
                &format!("127.0.0.1:{}", ports.hub_http),
                "--config",
                path(&dir.join("hub.toml")),
                "--key-dir",
                path(&dir.join("keys")),
            ])
            .env("RUST_LOG", "info"),
        &dir.join("hub.log"),
        &[],
    );
    wait_until("the hub's API", Duration::from_secs(15), &[&hub], || {
        try_get(ports.hub_http, "/feeds/pubkey", &[]).is_some_and(|r| r.status == 200)
            && dig(ports.hub_dns, &["+short", ZONE, "SOA"]).contains("localhost.")
    });
    hub
}

/// Starts the filter on `port` following the hub; returns once it answers.
fn start_filter(dir: &Path, port: u16, upstream: u16, hub_dns: u16) -> Proc {
    let filter = Proc::spawn(
        "sharedefend filter serve",
        Command::new(env!("CARGO_BIN_EXE_sharedefend"))
            .args([
                "filter",
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--udp-sockets",
                "1",
                "--upstream",
                &format!("127.0.0.1:{upstream}"),
                "--zone",
                ZONE,
                "--primary",
                &format!("127.0.0.1:{hub_dns}"),
                "--tsig",
                &format!("{KEY_NAME}:hmac-sha256:{KEY_SECRET}"),
                "--state",
                path(&dir.join("filter-state")),
            ])
            .env("RUST_LOG", "info"),
        &dir.join("filter.log"),
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

fn post(port: u16, path_: &str, token: Option<&str>, body: &Value) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    request(port, "POST", path_, &headers, body.to_string().as_bytes())
}

fn get_as(port: u16, path_: &str, token: &str) -> Value {
    let auth = format!("Bearer {token}");
    let r = request(port, "GET", path_, &[("Authorization", auth.as_str())], &[]);
    assert_eq!(r.status, 200, "GET {path_}: {}", r.text());
    r.json()
}

/// Submits `name` as phishing; returns the serial of the phishing feed it is in.
fn submit(port: u16, token: &str, name: &str) -> u64 {
    let r = post(
        port,
        "/api/indicators?category=phishing",
        Some(token),
        &json!([{"value": name, "tlp": "clear"}]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(a["counts"]["accepted"], 1, "{a}");
    a["items"][0]["rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["feed"] == "phishing"))
        .and_then(|r| r["serial"].as_u64())
        .unwrap_or_else(|| panic!("no phishing rule in {a}"))
}

fn resolves(port: u16, name: &str) -> bool {
    status(port, name) == "NOERROR" && dig(port, &["+short", name, "A"]).trim() == TARGET_A
}

/// The zone as the hub serves it (TSIG AXFR), records sorted.
fn axfr(hub_dns: u16) -> Vec<String> {
    let k = key256();
    let mut r = records(&dig(hub_dns, &["-y", &k, ZONE, "AXFR"]));
    r.sort();
    r.dedup();
    r
}

fn hub_serial(hub_dns: u16) -> String {
    soa_serials(&dig(hub_dns, &["-y", &key256(), ZONE, "SOA"]))
        .first()
        .cloned()
        .or_else(|| {
            dig(hub_dns, &["+short", ZONE, "SOA"])
                .split_whitespace()
                .nth(2)
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

#[test]
fn report_to_block_to_delist_across_hub_filter_and_bind() {
    let dir = workdir("e2e");
    let data = Db::Sqlite(dir.join("data"));
    import(&dir, &data, "seed.txt", &["seed.target.test"]);
    let (auth, auth_port) = authoritative(&dir);
    let ports = Ports {
        hub_dns: free_port(),
        hub_http: free_port(),
    };
    let filter_port = free_port();
    let bind_port = free_port();
    let config = dir.join("hub.toml");
    write(
        &config,
        &format!(
            "[http]\nreports_burst = 5\n{}",
            tsig_partner(
                "followers",
                &[
                    format!("127.0.0.1:{filter_port}"),
                    format!("127.0.0.1:{bind_port}")
                ]
            )
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
            "contributor,reviewer",
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
    assert!(token.starts_with("sdp_"), "{token}");

    let hub = start_hub(&dir, &data, &ports);
    let filter = start_filter(&dir, filter_port, auth_port, ports.hub_dns);
    let named = support::start_rpz_secondary(&dir.join("bind"), bind_port, ports.hub_dns);
    let http = ports.hub_http;
    {
        let procs = [&hub, &filter, &named, &auth];
        for (who, port) in [("the filter", filter_port), ("BIND", bind_port)] {
            wait_until(
                &format!("{who} to block seed.target.test (AXFR)"),
                REACH,
                &procs,
                || status(port, "seed.target.test") == "NXDOMAIN",
            );
            assert!(resolves(port, "api.target.test"), "{who}");
        }

        // --- submit through the API: NXDOMAIN at both followers
        let submitted = Instant::now();
        submit(http, &token, "api.target.test");
        submit(http, &token, "two.target.test");
        for (who, port) in [("the filter", filter_port), ("BIND", bind_port)] {
            wait_until(
                &format!("{who} to block the submitted names"),
                REACH,
                &procs,
                || {
                    status(port, "api.target.test") == "NXDOMAIN"
                        && status(port, "two.target.test") == "NXDOMAIN"
                },
            );
            measured(
                &format!("API answer → NXDOMAIN at {who}"),
                submitted.elapsed(),
            );
        }

        // --- a public report changes nothing by itself
        let r = post(
            http,
            "/api/reports",
            None,
            &json!({"name": "api.target.test", "message": "this is my shop", "contact": "me@shop.example"}),
        );
        assert_eq!(r.status, 202, "{}", r.text());
        let report = r.json()["report"].as_str().unwrap_or_default().to_owned();
        assert!(report.starts_with("report-"), "{report}");
        let queue = get_as(http, "/api/review", &token);
        assert!(
            queue["reports"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["id"] == report.as_str())),
            "{queue}"
        );
        assert_eq!(status(filter_port, "api.target.test"), "NXDOMAIN");
        assert_eq!(status(bind_port, "api.target.test"), "NXDOMAIN");

        // --- a reviewer approves it (delists the name); another name delisted directly
        let approved = post(
            http,
            &format!("/api/review/{report}/approve"),
            Some(&token),
            &json!({"reason": "owner verified"}),
        );
        assert_eq!(approved.status, 200, "{}", approved.text());
        let delisted = post(
            http,
            "/api/delist",
            Some(&token),
            &json!({"name": "two.target.test", "reason": "ticket 7"}),
        );
        assert_eq!(delisted.status, 200, "{}", delisted.text());
        let unblocked = Instant::now();
        for (who, port) in [("the filter", filter_port), ("BIND", bind_port)] {
            wait_until(
                &format!("{who} to resolve the delisted names again"),
                REACH,
                &procs,
                || resolves(port, "api.target.test") && resolves(port, "two.target.test"),
            );
            measured(
                &format!("approve/delist → resolves at {who}"),
                unblocked.elapsed(),
            );
            assert_eq!(status(port, "seed.target.test"), "NXDOMAIN", "{who}");
        }
    }

    // --- restart the hub: rules, review state and serials intact
    let zone_before = axfr(ports.hub_dns);
    let serial_before = hub_serial(ports.hub_dns);
    assert!(!serial_before.is_empty());
    let status_before = get_as(http, "/api/status", &token);
    let review_before = get_as(http, "/api/review", &token);
    hub.stop();
    let hub = start_hub(&dir, &data, &ports);
    assert_eq!(hub_serial(ports.hub_dns), serial_before);
    assert_eq!(axfr(ports.hub_dns), zone_before);
    let status_after = get_as(http, "/api/status", &token);
    assert_eq!(status_after["feeds"], status_before["feeds"]);
    assert_eq!(status_after["review"], status_before["review"]);
    assert_eq!(get_as(http, "/api/review", &token), review_before);
    // The next change carries on from the serial it had.
    let next = submit(http, &token, "three.target.test");
    let before: u64 = serial_before.parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next, before + 1);
    {
        let procs = [&hub, &filter, &named, &auth];
        for (who, port) in [("the filter", filter_port), ("BIND", bind_port)] {
            wait_until(
                &format!("{who} to block three.target.test from the restarted hub"),
                REACH,
                &procs,
                || status(port, "three.target.test") == "NXDOMAIN",
            );
            assert!(resolves(port, "api.target.test"), "{who}");
        }
    }

    // --- the hub gone, a restarted filter blocks from its saved zone at once
    hub.stop();
    named.stop();
    filter.stop();
    let filter = start_filter(&dir, filter_port, auth_port, ports.hub_dns);
    assert_eq!(status(filter_port, "seed.target.test"), "NXDOMAIN");
    assert_eq!(status(filter_port, "three.target.test"), "NXDOMAIN");
    assert!(resolves(filter_port, "api.target.test"));
    assert!(resolves(filter_port, "two.target.test"));
    drop(filter);
    drop(auth);
    let _ = std::fs::remove_dir_all(&dir);
}
