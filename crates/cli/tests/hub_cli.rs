//! The hub's commands end to end, from the CLI, on both store backends: allowlists,
//! imports, the breaker and review, explain, delist, export (checked by BIND's
//! `named-checkzone`) and the decay sweep. PostgreSQL is a real server started for the
//! test run (the store's own test harness).

#![allow(clippy::print_stderr)]

#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel)
}

/// How to reach the store under test.
enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Backend {
    fn sqlite(name: &str) -> Backend {
        let dir =
            std::env::temp_dir().join(format!("sharedefend-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Backend::Sqlite(dir)
    }

    fn run(&self, now: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sharedefend"));
        cmd.args(args)
            .env("SHAREDEFEND_NOW", now)
            .env("SHAREDEFEND_OPERATOR", "test");
        match self {
            Backend::Sqlite(dir) => cmd
                .env("SHAREDEFEND_DATA", dir)
                .env_remove("SHAREDEFEND_POSTGRES"),
            Backend::Postgres(params) => cmd.env("SHAREDEFEND_POSTGRES", params),
        };
        cmd.output().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, now: &str, args: &[&str]) -> String {
        let out = self.run(now, args);
        assert!(
            out.status.success(),
            "sharedefend {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, now: &str, args: &[&str]) -> Value {
        let text = self.ok(now, args);
        serde_json::from_str(text.lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

const T0: &str = "2026-09-01T00:00:00Z";

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 path"))
}

fn whole_flow(b: &Backend, tag: &str) {
    let tranco10k = data("allowlists/misp-warninglists/tranco10k.json");
    let shorteners = data("allowlists/misp-warninglists/url-shortener.json");
    b.ok(
        T0,
        &["allowlist", "load", path(&tranco10k), path(&shorteners)],
    );

    // OpenPhish: URLs; dedicated hosts are blocked exactly, shared ones stay URL-only.
    let openphish = data("feeds/openphish/openphish_feed_2026-08-22.txt");
    let r = b.json(
        T0,
        &[
            "import",
            "--source",
            "openphish",
            "--category",
            "phishing",
            "--json",
            path(&openphish),
        ],
    );
    assert_eq!(r["records"], 300);
    assert!(r["held"].is_null(), "{r}");
    let added = r["added"].as_u64().unwrap_or(0);
    assert!(added > 50, "{r}");
    assert_eq!(r["feeds"]["phishing"]["serial"], 1);

    let e = b.json(T0, &["explain", "--json", "hxxps://api[.]msuto[.]com/"]);
    assert_eq!(e["state"], "publish", "{e}");
    assert_eq!(e["rules"][0]["trigger"], "api.msuto.com");
    // What blocks the host, with its action, in its category feed and in `all`.
    for feed in ["phishing", "all"] {
        assert!(
            e["matched_by"]
                .as_array()
                .is_some_and(|m| m.iter().any(|r| {
                    r["feed"] == feed
                        && r["trigger"] == "api.msuto.com"
                        && r["action"] == "nxdomain"
                        && r["serial"] == 1
                })),
            "{feed}: {e}"
        );
    }
    let text = b.ok(T0, &["explain", "api.msuto.com"]);
    assert!(
        text.contains("api.msuto.com nxdomain in all (serial 1)"),
        "{text}"
    );
    let e = b.json(
        T0,
        &["explain", "--json", "http://send-usdt-9999.netlify.app/"],
    );
    assert_eq!(e["state"], "url-only", "{e}");

    // A poisoned feed naming popular sites is held, and rejected.
    let dir =
        std::env::temp_dir().join(format!("sharedefend-cli-{tag}-work-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let poison = dir.join("poison.txt");
    std::fs::write(
        &poison,
        "google.com\nfacebook.com\ngithub.io\nevil-but-new.example\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The popularity list, as Tranco publishes it.
    let tranco = data("allowlists/tranco/tranco_top-1m_first50k.csv");
    b.ok(
        T0,
        &[
            "allowlist",
            "load",
            "--name",
            "tranco",
            "--role",
            "popular",
            "--top",
            "10000",
            path(&tranco),
        ],
    );
    let r = b.json(
        T0,
        &["import", "--source", "dubious", "--json", path(&poison)],
    );
    assert!(r["held"].is_array(), "{r}");
    let batch = r["batch"].as_i64().unwrap_or_else(|| panic!("{r}"));
    let listed = b.ok(T0, &["review", "list"]);
    assert!(listed.contains(&format!("batch {batch}")), "{listed}");
    b.ok(
        T0,
        &["review", "reject", &batch.to_string(), "--note", "poisoned"],
    );
    let e = b.json(T0, &["explain", "--json", "evil-but-new.example"]);
    assert!(e["state"].is_null(), "a rejected batch left evidence: {e}");

    // Delist: withdrawn at once, and audited.
    let out = b.ok(
        T0,
        &[
            "delist",
            "api.msuto.com",
            "--reason",
            "owner proved it is theirs",
        ],
    );
    assert!(out.contains("2 rules withdrawn"), "{out}");
    let e = b.json(T0, &["explain", "--json", "api.msuto.com"]);
    assert!(e["protected_by"].is_string(), "{e}");
    assert!(
        e["audit"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["action"] == "delist")),
        "{e}"
    );

    // Export: the zone's serial is the journal's, and BIND accepts the zone.
    let zone_file = dir.join("phishing.rpz");
    b.ok(
        T0,
        &[
            "export",
            "--feed",
            "phishing",
            "--format",
            "rpz",
            "-o",
            path(&zone_file),
        ],
    );
    let zone = std::fs::read_to_string(&zone_file).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        zone.contains("SOA localhost. root.localhost. 2 "),
        "serial 2 after the delisting:\n{}",
        &zone[..zone.len().min(400)]
    );
    assert!(!zone.contains("api.msuto.com"));
    let check = Command::new("named-checkzone")
        .args(["-i", "local", "phishing.rpz.sharedefend", path(&zone_file)])
        .output()
        .unwrap_or_else(|e| panic!("named-checkzone: {e} (scripts/test installs bind9-utils)"));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let hosts = b.ok(T0, &["export", "--feed", "phishing", "--format", "hosts"]);
    assert_eq!(
        hosts.lines().filter(|l| l.starts_with("0.0.0.0 ")).count() as u64,
        (added - 2) / 2
    );

    // Four days later, nothing re-sighted: the phishing rules decay away.
    let later = "2026-09-05T00:00:00Z";
    let s = b.json(later, &["sweep", "--json"]);
    assert_eq!(s["withdrawn"].as_u64(), Some(added - 2), "{s}");
    let zone = b.ok(later, &["export", "--feed", "phishing", "--format", "rpz"]);
    assert!(!zone.contains("CNAME"), "{zone}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn whole_flow_on_sqlite() {
    let b = Backend::sqlite("flow");
    whole_flow(&b, "sqlite");
    if let Backend::Sqlite(dir) = b {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn whole_flow_on_postgres() {
    whole_flow(&Backend::Postgres(support::pg_database()), "postgres");
}

#[test]
fn bad_flags_exit_2_with_the_field_named() {
    let b = Backend::sqlite("flags");
    let out = b.run(
        T0,
        &["import", "--source", "x", "--trust", "7", "/dev/null"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--trust"));
    let out = b.run(T0, &["export", "--format", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));
    let out = b.run(T0, &["delist", "not a name!", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(2));
}
