//! The partner API of `sharedefend hub serve`, over real processes on loopback:
//! partners and tokens made by `sharedefend partner`, submissions as JSON, CSV and a
//! STIX bundle with per-item results, publication at once (`dig` SOA and AXFR at the
//! hub show the new serial as soon as the answer is read), 401/403, TLP clearance in
//! explain, search and the `urls`/`csv` exports, the public report with its rate
//! limit (and no trace of the client's address), the review queue, delisting,
//! status, metrics, the OpenAPI document, size limits and 4xx for bad input. Once
//! over SQLite, and the publication path once over PostgreSQL.

#![allow(clippy::print_stderr)]

mod hubproc;
#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use hubproc::{
    Proc, Response, dig, path, request, request_from, sd, serve, try_get, wait_until, workdir,
};
use serde_json::{Value, json};

const ZONE: &str = "phishing.rpz.sharedefend";

/// The client address of the public reports: nothing else in the test uses it.
const REPORTER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Adds a partner with `args`; returns what it printed.
fn partner_add(data: &Path, config: &Path, name: &str, args: &[&str]) {
    let mut all = vec!["partner", "add", name, "--config", path(config)];
    all.extend_from_slice(args);
    sd(data, &all);
}

/// Issues `name` a token; returns it.
fn token(data: &Path, config: &Path, name: &str) -> String {
    let out = sd(data, &["partner", "token", name, "--config", path(config)]);
    let t = out.trim().to_owned();
    assert!(t.starts_with("sdp_") && !t.contains('\n'), "{out}");
    t
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn post_json(port: u16, path_: &str, token: Option<&str>, body: &Value) -> Response {
    let auth = token.map(bearer);
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    request(port, "POST", path_, &headers, body.to_string().as_bytes())
}

fn get_as(port: u16, path_: &str, token: &str) -> Response {
    let auth = bearer(token);
    request(port, "GET", path_, &[("Authorization", auth.as_str())], &[])
}

/// The zone's SOA serial at the hub; `None` before the feed exists.
fn try_soa_serial(port: u16) -> Option<u32> {
    let out = dig(port, &["+short", ZONE, "SOA"]);
    out.split_whitespace().nth(2).and_then(|s| s.parse().ok())
}

fn soa_serial(port: u16) -> u32 {
    try_soa_serial(port).unwrap_or_else(|| panic!("no SOA serial for {ZONE}"))
}

fn axfr(port: u16) -> String {
    dig(port, &["+tcp", ZONE, "AXFR"])
}

/// Asserts a 4xx JSON error naming `field`.
#[track_caller]
fn assert_error(r: &Response, status: u16, field: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let j = r.json();
    assert_eq!(j["field"], field, "{j}");
    assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{j}");
}

/// The item of a submission answer at `at`.
fn item<'a>(answer: &'a Value, at: &str) -> &'a Value {
    answer["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["at"] == at))
        .unwrap_or_else(|| panic!("no item at {at}: {answer}"))
}

struct Hub {
    _proc: Proc,
    http: u16,
    dns: u16,
}

fn start(dir: &Path, data: &Path, config: &Path) -> Hub {
    let http = hubproc::free_port();
    let dns = hubproc::free_port();
    let proc = serve(
        data,
        &[
            "--dns-listen",
            &format!("127.0.0.1:{dns}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
            "--config",
            path(config),
        ],
        &dir.join("hub.log"),
    );
    wait_until("the hub to answer HTTP", Duration::from_secs(10), || {
        try_get(http, "/feeds/pubkey", &[]).is_some_and(|r| r.status == 200)
    });
    Hub {
        _proc: proc,
        http,
        dns,
    }
}

const STIX_BUNDLE: &str = r#"{
  "type": "bundle", "id": "bundle--0b0d1f0e-7c1a-4d6b-9d43-1e2f3a4b5c6d",
  "objects": [
    {"type": "indicator", "spec_version": "2.1",
     "id": "indicator--4f0b8d8e-3c2a-4e1f-8a9b-0c1d2e3f4a5b",
     "created": "2026-08-20T10:00:00Z", "modified": "2026-08-20T10:00:00Z",
     "pattern_type": "stix",
     "pattern": "[domain-name:value = 'amber-stix.example']",
     "valid_from": "2026-08-20T10:00:00Z"},
    {"type": "indicator", "spec_version": "2.1",
     "id": "indicator--5a1c9e9f-4d3b-4f20-9bac-1d2e3f4a5b6c",
     "created": "2026-08-20T10:00:00Z", "modified": "2026-08-20T10:00:00Z",
     "pattern_type": "stix",
     "pattern": "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
     "valid_from": "2026-08-20T10:00:00Z"}
  ]}"#;

#[test]
fn partners_submit_read_report_review_over_sqlite() {
    let dir = workdir("api");
    let data = dir.join("data");
    let config = dir.join("hub.toml");
    std::fs::write(
        &config,
        "[http]\nmax_body = 65536\nreports_burst = 3\nreports_per_hour = 1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    partner_add(
        &data,
        &config,
        "isp",
        &["--feeds", "*", "--no-tsig", "--allow-ip", "127.0.0.1"],
    );
    partner_add(
        &data,
        &config,
        "cert",
        &["--no-tsig", "--roles", "contributor", "--trust", "0.9"],
    );
    partner_add(
        &data,
        &config,
        "reader",
        &["--no-tsig", "--roles", "consumer", "--tlp", "green"],
    );
    partner_add(
        &data,
        &config,
        "boss",
        &[
            "--no-tsig",
            "--roles",
            "reviewer,consumer",
            "--tlp",
            "amber",
        ],
    );
    let cert = token(&data, &config, "cert");
    let reader = token(&data, &config, "reader");
    let boss = token(&data, &config, "boss");
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(
        !text.contains(&cert) && !text.contains(&boss),
        "tokens are stored hashed"
    );
    // A popularity list, so that a submission naming a top site is held.
    let tranco = dir.join("tranco.csv");
    std::fs::write(&tranco, "1,google.com\n2,wikipedia.org\n").unwrap_or_else(|e| panic!("{e}"));
    sd(
        &data,
        &["allowlist", "load", "--role", "popular", path(&tranco)],
    );

    let hub = start(&dir, &data, &config);
    let (http, dns) = (hub.http, hub.dns);

    // --- who may do what
    let submit = json!(["nobody.example"]);
    assert_error(
        &post_json(http, "/api/indicators", None, &submit),
        401,
        "authorization",
    );
    let wrong = post_json(http, "/api/indicators", Some("sdp_not-a-token"), &submit);
    assert_error(&wrong, 401, "authorization");
    assert_eq!(
        wrong.header("www-authenticate"),
        Some("Bearer realm=\"sharedefend\"")
    );
    assert_error(
        &post_json(http, "/api/indicators", Some(&reader), &submit),
        403,
        "authorization",
    );
    assert_error(
        &get_as(http, "/api/indicators?q=x", &cert),
        403,
        "authorization",
    );
    assert_error(&get_as(http, "/api/review", &reader), 403, "authorization");
    assert_error(&get_as(http, "/api/status", &reader), 403, "authorization");

    // --- a JSON submission: per-item results, published before the answer
    let before = try_soa_serial(dns).unwrap_or(0);
    let r = post_json(
        http,
        "/api/indicators?category=phishing&reason=case%2042",
        Some(&cert),
        &json!([
            "evil-api-one.example",
            {"value": "hxxp://evil-api-two[.]example/login", "tlp": "clear", "confidence": 90},
            "not a domain!",
            {"value": "x.example", "tlp": "purple"},
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    let serial = answer["serials"]["phishing"]
        .as_u64()
        .unwrap_or_else(|| panic!("no phishing serial: {answer}")) as u32;
    assert!(serial > before, "{answer}");
    // At once: the hub's SOA and AXFR already carry it.
    assert_eq!(soa_serial(dns), serial);
    assert!(axfr(dns).contains("evil-api-one.example.phishing.rpz.sharedefend."));
    let one = item(&answer, "$[0]");
    assert_eq!(one["status"], "accepted", "{one}");
    assert_eq!(one["state"], "publish", "{one}");
    assert!(
        one["rules"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| r["feed"] == "phishing"
                && r["trigger"] == "evil-api-one.example"
                && r["serial"] == serial)),
        "{one}"
    );
    assert_eq!(
        item(&answer, "$[1]")["indicator"],
        "http://evil-api-two.example/login"
    );
    let bad = item(&answer, "$[2]");
    assert_eq!(
        (&bad["status"], &bad["reason"]),
        (&json!("rejected"), &json!("invalid-domain"))
    );
    let purple = item(&answer, "$[3]");
    assert_eq!(purple["field"], "$[3].tlp", "{purple}");
    assert_eq!(answer["counts"], json!({"accepted": 2, "rejected": 2}));

    // --- CSV and STIX (the STIX bundle marked amber by the request)
    let csv = request(
        http,
        "POST",
        "/api/indicators?category=phishing&tlp=clear",
        &[
            ("Content-Type", "text/csv"),
            ("Authorization", &bearer(&cert)),
        ],
        b"url,comment\nhttp://evil-csv.example/pay,kit\nnot a url at all,x\n",
    );
    assert_eq!(csv.status, 200, "{}", csv.text());
    let csv = csv.json();
    assert_eq!(item(&csv, "line 2")["status"], "accepted", "{csv}");
    assert_eq!(item(&csv, "line 3")["status"], "rejected", "{csv}");
    let stix = request(
        http,
        "POST",
        "/api/indicators?category=phishing&tlp=amber",
        &[
            ("Content-Type", "application/stix+json;version=2.1"),
            ("Authorization", &bearer(&cert)),
        ],
        STIX_BUNDLE.as_bytes(),
    );
    assert_eq!(stix.status, 200, "{}", stix.text());
    let stix = stix.json();
    let amber = item(&stix, "$.objects[0].pattern");
    assert_eq!(
        (&amber["status"], &amber["state"]),
        (&json!("accepted"), &json!("publish")),
        "{stix}"
    );
    assert_eq!(
        item(&stix, "$.objects[1].pattern")["status"],
        "rejected",
        "{stix}"
    );
    assert_eq!(
        soa_serial(dns),
        stix["serials"]["phishing"].as_u64().unwrap_or(0) as u32
    );
    let amber_url = post_json(
        http,
        "/api/indicators?category=phishing",
        Some(&cert),
        &json!([{"value": "http://amber-url.example/a", "tlp": "amber"}]),
    );
    assert_eq!(amber_url.status, 200, "{}", amber_url.text());

    // --- TLP: the green reader does not see the amber indicator anywhere
    let seen = get_as(http, "/api/indicators/amber-stix.example", &reader).json();
    assert_eq!(seen["known"], false, "{seen}");
    assert_eq!(seen["observations"], json!([]), "{seen}");
    let seen = get_as(http, "/api/indicators/amber-stix.example", &boss).json();
    assert_eq!(seen["known"], true, "{seen}");
    assert_eq!(seen["observations"][0]["source"], "partner:cert", "{seen}");
    assert_eq!(seen["observations"][0]["tlp"], "amber", "{seen}");
    let mine = get_as(http, "/api/indicators/evil-api-one.example", &reader).json();
    assert_eq!(
        (&mine["known"], &mine["state"]),
        (&json!(true), &json!("publish")),
        "{mine}"
    );
    let search = |token: &str, q: &str| -> Vec<String> {
        let r = get_as(http, &format!("/api/indicators?q={q}&limit=1000"), token);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["value"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let green = search(&reader, "amber");
    assert!(green.is_empty(), "{green:?}");
    let cleared = search(&boss, "amber");
    assert_eq!(
        cleared,
        ["amber-stix.example", "http://amber-url.example/a"]
    );
    // Paging: one item a page, each page's cursor to the next.
    let mut pages = Vec::new();
    let mut next = String::new();
    for _ in 0..20 {
        let url = format!("/api/indicators?q=evil&limit=1{next}");
        let page = get_as(http, &url, &reader).json();
        pages.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(c) => next = format!("&cursor={c}"),
            None => break,
        }
    }
    let values: Vec<&str> = pages.iter().filter_map(|p| p["value"].as_str()).collect();
    assert!(
        values.contains(&"evil-api-one.example") && values.contains(&"http://evil-csv.example/pay"),
        "{values:?}"
    );
    // The urls and csv exports: anonymous gets clear, a token its clearance.
    let urls = |auth: Option<&str>| -> String {
        let a = auth.map(bearer);
        let h: Vec<(&str, &str)> = a.iter().map(|a| ("Authorization", a.as_str())).collect();
        let r = request(http, "GET", "/feeds/phishing.urls", &h, &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    };
    assert!(!urls(None).contains("amber-url.example") && urls(None).contains("evil-api-two"));
    assert!(!urls(Some(&reader)).contains("amber-url.example"));
    assert!(urls(Some(&boss)).contains("http://amber-url.example/a"));
    let csv_export = |auth: Option<&str>| -> String {
        let a = auth.map(bearer);
        let h: Vec<(&str, &str)> = a.iter().map(|a| ("Authorization", a.as_str())).collect();
        request(http, "GET", "/feeds/phishing.csv", &h, &[]).text()
    };
    assert!(!csv_export(None).contains("amber-stix.example"));
    assert!(csv_export(Some(&boss)).contains("amber-stix.example"));
    assert_eq!(
        request(
            http,
            "GET",
            "/feeds/phishing.csv",
            &[("Authorization", "Bearer nope")],
            &[]
        )
        .status,
        401
    );

    // --- public reports: stored, rate-limited, the address kept nowhere
    let report = |body: &Value| {
        request_from(
            REPORTER,
            http,
            "POST",
            "/api/reports",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    let r1 = report(
        &json!({"name": "https://evil-api-one.example/", "message": "this is my bakery", "contact": "owner@bakery.example"}),
    );
    assert_eq!(r1.status, 202, "{}", r1.text());
    assert_eq!(r1.json()["report"], "report-1");
    let bad_report =
        report(&json!({"name": "x.example", "rule": "*.x.example", "message": "both"}));
    assert_error(&bad_report, 400, "name");
    let r2 = report(
        &json!({"rule": "evil-csv.example", "feed": "phishing", "message": "not me either"}),
    );
    assert_eq!(r2.status, 202, "{}", r2.text());
    let limited = report(&json!({"name": "a.example", "message": "once more"}));
    assert_error(&limited, 429, "client");
    assert!(limited.header("retry-after").is_some());
    // Never by itself: the name is still blocked.
    assert!(axfr(dns).contains("evil-api-one.example.phishing"));

    // --- the review queue: reports and a batch the breaker held
    let held = post_json(
        http,
        "/api/indicators?category=phishing",
        Some(&cert),
        &json!(["login.google.com"]),
    )
    .json();
    assert_eq!(item(&held, "$[0]")["status"], "held", "{held}");
    let batch = held["batch"].as_i64().unwrap_or(0);
    let queue = get_as(http, "/api/review", &boss).json();
    let reports: Vec<&str> = queue["reports"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(reports, ["report-1", "report-2"], "{queue}");
    assert_eq!(queue["reports"][0]["target"], "evil-api-one.example");
    assert!(
        queue["reports"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("url: https://evil-api-one.example/"))
    );
    assert_eq!(
        queue["batches"][0]["id"],
        format!("batch-{batch}"),
        "{queue}"
    );
    let reason = json!({"reason": "checked with the owner"});
    assert_error(
        &post_json(
            http,
            "/api/review/report-1/approve",
            Some(&boss),
            &json!({}),
        ),
        400,
        "reason",
    );
    assert_error(
        &post_json(http, "/api/review/thing-1/approve", Some(&boss), &reason),
        404,
        "id",
    );
    assert_error(
        &post_json(http, "/api/review/report-99/approve", Some(&boss), &reason),
        404,
        "id",
    );
    let approved = post_json(http, "/api/review/report-1/approve", Some(&boss), &reason);
    assert_eq!(approved.status, 200, "{}", approved.text());
    let approved = approved.json();
    assert!(
        approved["rules_removed"].as_u64().unwrap_or(0) >= 1,
        "{approved}"
    );
    let after = approved["serials"]["phishing"].as_u64().unwrap_or(0) as u32;
    assert_eq!(soa_serial(dns), after);
    assert!(!axfr(dns).contains("evil-api-one.example.phishing"));
    assert_error(
        &post_json(http, "/api/review/report-1/approve", Some(&boss), &reason),
        409,
        "id",
    );
    let rejected = post_json(http, "/api/review/report-2/reject", Some(&boss), &reason);
    assert_eq!(rejected.json()["status"], "rejected");
    assert!(
        axfr(dns).contains("evil-csv.example.phishing"),
        "a rejected report changes nothing"
    );
    let published = post_json(
        http,
        &format!("/api/review/batch-{batch}/reject"),
        Some(&boss),
        &reason,
    );
    assert_eq!(published.status, 200, "{}", published.text());
    // Delist over the API, audited with the reviewer and the reason.
    let delisted = post_json(
        http,
        "/api/delist",
        Some(&boss),
        &json!({"name": "evil-csv.example", "reason": "ticket 7"}),
    );
    assert_eq!(delisted.status, 200, "{}", delisted.text());
    assert!(!axfr(dns).contains("evil-csv.example.phishing"));
    assert_error(
        &post_json(
            http,
            "/api/delist",
            Some(&boss),
            &json!({"name": "not a name!", "reason": "x"}),
        ),
        400,
        "name",
    );
    let explained = get_as(http, "/api/indicators/evil-csv.example", &boss).json();
    let audit = explained["audit"].as_array().cloned().unwrap_or_default();
    assert!(
        audit
            .iter()
            .any(|a| a["who"] == "boss" && a["action"] == "delist" && a["reason"] == "ticket 7"),
        "{explained}"
    );

    // --- status, feeds, metrics, OpenAPI
    let status = get_as(http, "/api/status", &boss).json();
    let cert_source = status["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "partner:cert"))
        .cloned()
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(cert_source["trust"], 0.9);
    assert!(
        cert_source["batches"].as_u64().unwrap_or(0) >= 4,
        "{cert_source}"
    );
    assert!(cert_source["last_import"].is_string(), "{cert_source}");
    assert_eq!(status["review"]["open_reports"], 0);
    let feeds = get_as(http, "/api/feeds", &reader).json();
    assert!(
        feeds["feeds"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["feed"] == "phishing"
                && f["serial"].as_u64().is_some_and(|s| s as u32 >= after)
                && f["exports"]["rpz"] == "/feeds/phishing.rpz")),
        "{feeds}"
    );
    let metrics = request(http, "GET", "/metrics", &[], &[]).text();
    for series in [
        "sharedefend_api_requests_total{route=\"/api/indicators\",method=\"post\",status=\"200\"}",
        "sharedefend_api_requests_total{route=\"/api/reports\",method=\"post\",status=\"429\"} 1",
        "sharedefend_api_request_duration_seconds_bucket{route=\"/api/indicators\",le=",
        "sharedefend_indicators{state=\"publish\"}",
        "sharedefend_journal_serial{feed=\"phishing\"}",
        "sharedefend_batches{status=\"rejected\"} 1",
        "sharedefend_api_imports_total{outcome=\"held\"} 1",
        "sharedefend_reports_total{outcome=\"stored\"} 2",
        "sharedefend_reports_open 0",
    ] {
        assert!(metrics.contains(series), "{series} not in\n{metrics}");
    }
    let openapi = request(http, "GET", "/api/openapi.json", &[], &[]).json();
    assert!(openapi["paths"]["/api/indicators"]["post"].is_object());

    // --- bad input: 4xx naming the field, never a 5xx, nothing half-applied
    let big = vec![b'a'; 70_000];
    let too_big = request(
        http,
        "POST",
        "/api/indicators",
        &[
            ("Content-Type", "text/plain"),
            ("Authorization", &bearer(&cert)),
        ],
        &big,
    );
    assert_error(&too_big, 413, "body");
    let as_cert = bearer(&cert);
    for (ct, body, status, field) in [
        ("application/json", &b"[\"a.example\""[..], 400, "body"),
        ("application/json", &b"{\"x\": 1}"[..], 400, "body"),
        ("application/xml", &b"<a/>"[..], 415, "content-type"),
        ("text/plain", &b"   "[..], 400, "body"),
        ("text/plain", &b"\x1f\x8b\x08\x00"[..], 400, "body"),
    ] {
        let r = request(
            http,
            "POST",
            "/api/indicators",
            &[("Content-Type", ct), ("Authorization", &as_cert)],
            body,
        );
        assert_error(&r, status, field);
    }
    assert_error(
        &get_as(http, "/api/indicators?q=a&colour=red", &reader),
        400,
        "query",
    );
    assert_error(
        &get_as(http, "/api/indicators?cursor=zzz", &reader),
        400,
        "cursor",
    );
    assert_error(
        &get_as(http, "/api/indicators?state=gone", &reader),
        400,
        "state",
    );
    assert_error(
        &get_as(http, "/api/indicators?limit=0", &reader),
        400,
        "limit",
    );
    let status_after = get_as(http, "/api/status", &boss).json();
    let last_error = status_after["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "partner:cert"))
        .map(|s| s["last_error"]["message"].clone());
    assert!(
        last_error
            .as_ref()
            .and_then(|m| m.as_str())
            .is_some_and(|m| m.starts_with("body:")),
        "{last_error:?}"
    );
    assert!(!metrics.contains("status=\"5"), "{metrics}");
    let metrics = request(http, "GET", "/metrics", &[], &[]).text();
    assert!(
        !metrics.contains("status=\"5"),
        "a 5xx was answered:\n{metrics}"
    );

    // --- the client's address is in no file the hub wrote
    drop(hub);
    let reporter = REPORTER.to_string();
    for file in ["hub.log", "data/sharedefend.db", "data/sharedefend.db-wal"] {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_default();
        assert!(
            !bytes
                .windows(reporter.len())
                .any(|w| w == reporter.as_bytes()),
            "{file} holds the reporter's address"
        );
    }
    let log = std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default();
    for secret in [&cert, &reader, &boss] {
        assert!(!log.contains(secret.as_str()), "a token reached the log");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_submission_over_postgres_is_published_at_once() {
    let dir = workdir("api-pg");
    let params = support::pg_database();
    let config = dir.join("hub.toml");
    let pg = |args: &[&str]| -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sharedefend"))
            .args(args)
            .env("SHAREDEFEND_POSTGRES", &params)
            .env_remove("SHAREDEFEND_DATA")
            .env_remove("SHAREDEFEND_CONFIG")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    pg(&[
        "partner",
        "add",
        "isp",
        "--config",
        path(&config),
        "--feeds",
        "*",
        "--no-tsig",
        "--allow-ip",
        "127.0.0.1",
    ]);
    pg(&[
        "partner",
        "add",
        "cert",
        "--config",
        path(&config),
        "--no-tsig",
        "--roles",
        "contributor,consumer",
        "--trust",
        "0.9",
    ]);
    let cert = pg(&["partner", "token", "cert", "--config", path(&config)])
        .trim()
        .to_owned();
    let http = hubproc::free_port();
    let dns = hubproc::free_port();
    let log = std::fs::File::create(dir.join("hub.log")).unwrap_or_else(|e| panic!("{e}"));
    let _hub = Proc {
        child: std::process::Command::new(env!("CARGO_BIN_EXE_sharedefend"))
            .args([
                "hub",
                "serve",
                "--dns-listen",
                &format!("127.0.0.1:{dns}"),
                "--http-listen",
                &format!("127.0.0.1:{http}"),
                "--key-dir",
                path(&dir.join("keys")),
                "--config",
                path(&config),
            ])
            .env("SHAREDEFEND_POSTGRES", &params)
            .env_remove("SHAREDEFEND_DATA")
            .env_remove("SHAREDEFEND_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    };
    wait_until("the hub to answer HTTP", Duration::from_secs(10), || {
        try_get(http, "/feeds/pubkey", &[]).is_some_and(|r| r.status == 200)
    });
    for (i, name) in ["pg-api-one.example", "pg-api-two.example"]
        .iter()
        .enumerate()
    {
        let r = post_json(
            http,
            "/api/indicators?category=phishing",
            Some(&cert),
            &json!([name]),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let answer = r.json();
        assert_eq!(item(&answer, "$[0]")["state"], "publish", "{answer}");
        let serial = answer["serials"]["phishing"].as_u64().unwrap_or(0) as u32;
        assert_eq!(serial, i as u32 + 1);
        assert_eq!(soa_serial(dns), serial);
        assert!(axfr(dns).contains(&format!("{name}.phishing.rpz.sharedefend.")));
    }
    let e = get_as(http, "/api/indicators/pg-api-two.example", &cert).json();
    assert_eq!(e["observations"][0]["source"], "partner:cert", "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
