//! `sharedefend check --json` over every real file in `../shared/data`: each is read
//! without an error exit, and detected as the format it really is.
//!
//! This is the "Done when" of the foundation issue, run on the real feeds in place.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

fn sharedefend() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sharedefend"))
}

/// The format each real file must be detected as (path relative to the data dir;
/// the first matching rule wins).
fn expected_format(rel: &str) -> &'static str {
    const RULES: &[(&str, &str)] = &[
        ("allowlists/misp-warninglists/_schema.json", "json-schema"),
        ("allowlists/misp-warninglists/", "warninglist"),
        ("allowlists/tranco/", "tranco-csv"),
        ("allowlists/", "plain"),
        ("feeds/phishtank/", "phishtank-csv"),
        ("feeds/phishunt/phishunt_feed.csv", "phishunt-csv"),
        ("feeds/phishunt/phishunt_feed.json", "phishunt-json"),
        ("feeds/rpz-misc/", "rpz"),
        ("feeds/threatfox/", "threatfox-json"),
        ("feeds/tweetfeed/", "tweetfeed-csv"),
        ("feeds/urlhaus/", "urlhaus-csv"),
        ("feeds/urlhaus-filter/urlhaus-filter-agh.txt", "adblock"),
        ("feeds/urlhaus-filter/urlhaus-filter-bind.conf", "bind"),
        (
            "feeds/urlhaus-filter/urlhaus-filter-dnsmasq.conf",
            "dnsmasq",
        ),
        ("feeds/urlhaus-filter/urlhaus-filter-hosts.txt", "hosts"),
        ("feeds/urlhaus-filter/urlhaus-filter-rpz.conf", "rpz"),
        (
            "feeds/urlhaus-filter/urlhaus-filter-splunk-online.csv",
            "csv",
        ),
        (
            "feeds/urlhaus-filter/urlhaus-filter-unbound.conf",
            "unbound",
        ),
        ("feeds/", "plain"),
        ("misp/tweetfeed-feed/manifest.json", "misp-feed"),
        ("misp/tweetfeed-feed/hashes.csv", "misp-hashes"),
        ("misp/", "misp"),
        ("pdns/circl_cof_testdata.ndjson", "cof"),
        ("pdns/cof_schema.json", "json-schema"),
        ("pdns/draft-", "prose"),
        ("stix/stix21-json-schemas/", "json-schema"),
        ("stix/tweetfeed/tweetfeed_stix_manifest.json", "stix-index"),
        ("stix/", "stix"),
    ];
    RULES
        .iter()
        .find(|(prefix, _)| rel.starts_with(prefix))
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no expected format for {rel}"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn every_real_file_is_read_and_detected() {
    let root = data_dir();
    let mut files = Vec::new();
    for sub in ["feeds", "stix", "misp", "pdns", "allowlists"] {
        files_under(&root.join(sub), &mut files);
    }
    assert!(files.len() > 100, "found only {} files", files.len());
    let output = sharedefend()
        .arg("check")
        .arg("--json")
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        lines.len(),
        files.len(),
        "one JSON object per file; stderr:\n{stderr}"
    );
    let mut wrong = Vec::new();
    for (file, v) in files.iter().zip(&lines) {
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .to_string_lossy()
            .into_owned();
        let want = expected_format(&rel);
        match v.get("format").and_then(Value::as_str) {
            Some(got) if got == want => {}
            got => wrong.push(format!("{rel}: got {got:?} want {want} ({v})")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        output.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        output.status
    );
}

#[test]
fn feed_directory_is_read_as_a_misp_feed() {
    let dir = data_dir().join("misp/tweetfeed-feed");
    let output = sharedefend()
        .args(["check", "--json"])
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success());
    let v: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["format"], "misp-feed");
    // 365 events in the manifest, 7 present: the other 358 are diagnostics.
    assert_eq!(
        v["diagnostics_total"].as_u64().map(|n| n >= 358),
        Some(true),
        "{v}"
    );
}

/// Writes `content` to a temp file named `name` and runs `check` on it.
fn check_bad(name: &str, content: &[u8], extra: &[&str]) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("sharedefend-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("{e}"));
    let output = sharedefend()
        .arg("check")
        .args(extra)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

#[test]
fn truncated_json_exits_2_naming_file_and_line() {
    let (code, stderr) = check_bad(
        "truncated.json",
        b"{\"type\": \"bundle\", \"objects\": [\n  {\"type\": \"indicator\",\n",
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("truncated.json"), "{stderr}");
    assert!(stderr.contains("line "), "{stderr}");
}

#[test]
fn random_bytes_exit_2() {
    let bytes: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (code, stderr) = check_bad("random.bin", &bytes, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("random.bin"), "{stderr}");
    assert!(stderr.contains("binary"), "{stderr}");
}

#[test]
fn csv_header_matching_nothing_exits_2() {
    let (code, stderr) = check_bad(
        "odd.csv",
        b"colour,shape,size\nred,round,3\n",
        &["--format", "csv"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("odd.csv"), "{stderr}");
    assert!(stderr.contains("line 1"), "{stderr}");
}

#[test]
fn missing_file_exits_2() {
    let output = sharedefend()
        .args(["check", "/nonexistent/feed.txt"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/feed.txt"));
}

#[test]
fn json_schema_of_one_file() {
    let file = data_dir().join("feeds/urlhaus-filter/urlhaus-filter-hosts.txt");
    let output = sharedefend()
        .args(["check", "--json"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success());
    let v: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["format"], "hosts");
    // SOURCES.md: 2689 non-comment lines, one name each, all distinct.
    assert_eq!(v["records"], 2689);
    assert_eq!(v["indicators"]["domain"], 2689);
    assert_eq!(v["indicators"]["url"], 0);
    assert_eq!(v["rejected"], 0);
    assert!(v["diagnostics"].as_array().is_some_and(Vec::is_empty));
}
