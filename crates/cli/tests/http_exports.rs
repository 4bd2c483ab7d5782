//! `sharedefend hub serve`'s HTTP exports on loopback: every format is byte for byte
//! what `sharedefend export` writes (plain and gzipped), ETags give 304s and change
//! with the serial, the `.minisig` signatures verify with the real `minisign` tool and
//! with `sharedefend verify` (and a tampered file fails both), `changes?since=` gives
//! the journal's condensed delta, and bad requests get 4xx JSON naming the field.
//! The same over PostgreSQL, where the key directory must be named.
//! `scripts/test` installs `minisign`.

#![allow(clippy::print_stderr)]

mod hubproc;
#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use hubproc::{Proc, get, import, path, sd, sd_output, serve, try_get, wait_until, workdir};

const FORMATS: [(&str, &str, &str); 8] = [
    ("rpz", "rpz", "text/dns; charset=utf-8"),
    ("hosts", "hosts", "text/plain; charset=utf-8"),
    ("txt", "domains", "text/plain; charset=utf-8"),
    ("dnsmasq", "dnsmasq", "text/plain; charset=utf-8"),
    ("unbound", "unbound", "text/plain; charset=utf-8"),
    ("adblock", "adblock", "text/plain; charset=utf-8"),
    ("csv", "csv", "text/csv; charset=utf-8"),
    ("urls", "urls", "text/plain; charset=utf-8"),
];

fn start(dir: &Path, data: &Path) -> (Proc, u16) {
    let port = hubproc::free_port();
    let dns = hubproc::free_port();
    let hub = serve(
        data,
        &[
            "--dns-listen",
            &format!("127.0.0.1:{dns}"),
            "--http-listen",
            &format!("127.0.0.1:{port}"),
            "--key-dir",
            path(&dir.join("keys")),
        ],
        &dir.join("hub.log"),
    );
    wait_until("the hub to answer HTTP", Duration::from_secs(10), || {
        try_get(port, "/feeds/pubkey", &[]).is_some_and(|r| r.status == 200)
    });
    (hub, port)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{e}"));
    out
}

fn minisign(file: &Path, sig: &Path, pubkey_line: &str) -> std::process::Output {
    // -H: insist on the prehashed kind (the modern default).
    hubproc::run(
        "minisign",
        &[
            "-V",
            "-H",
            "-P",
            pubkey_line,
            "-m",
            path(file),
            "-x",
            path(sig),
        ],
    )
}

#[test]
fn exports_are_the_cli_exports_cached_gzipped_and_signed() {
    let dir = workdir("http");
    let data = dir.join("data");
    import(
        &dir,
        &data,
        "a.txt",
        &[
            "evil-one.example",
            "evil-two.example",
            "http://evil-three.example/login.php",
        ],
    );
    let (hub, port) = start(&dir, &data);

    // The public key: served, and kept in the key dir beside a private secret key.
    let pubkey = get(port, "/feeds/pubkey", &[]).text();
    let on_disk = std::fs::read_to_string(dir.join("keys/signing.pub")).unwrap_or_default();
    assert_eq!(pubkey, on_disk);
    assert!(
        pubkey.starts_with("untrusted comment: minisign public key "),
        "{pubkey}"
    );
    let pubkey_line = pubkey.lines().nth(1).unwrap_or_default().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("keys/signing.key"))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode, 0o600);
    }

    for (ext, format, content_type) in FORMATS {
        let url = format!("/feeds/phishing.{ext}");
        let expected = sd(&data, &["export", "--feed", "phishing", "--format", format]);
        let r = get(port, &url, &[]);
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        assert_eq!(r.text(), expected, "{url}");
        assert_eq!(r.header("content-type"), Some(content_type), "{url}");
        let etag = r.header("etag").unwrap_or_default().to_owned();
        if ext == "urls" {
            // URL-only indicators change the list without the serial: a digest too.
            assert!(etag.starts_with("\"phishing.urls.1-"), "{url}: {etag}");
        } else {
            assert_eq!(etag, format!("\"phishing.{ext}.1\""), "{url}");
        }
        assert_eq!(r.header("x-sharedefend-serial"), Some("1"), "{url}");
        assert_eq!(r.header("cache-control"), Some("public, no-cache"), "{url}");
        assert_eq!(r.header("content-encoding"), None, "{url}");

        // Conditional: 304 with no body, for the plain and the gzip tag.
        let not_modified = get(port, &url, &[("If-None-Match", &etag)]);
        assert_eq!(not_modified.status, 304, "{url}");
        assert!(not_modified.body.is_empty(), "{url}");
        let gz_tag = etag.replace("\"", "") + ".gz";
        let gz_tag = format!("\"{gz_tag}\"");
        let nm = get(
            port,
            &url,
            &[("If-None-Match", &gz_tag), ("Accept-Encoding", "gzip")],
        );
        assert_eq!(nm.status, 304, "{url}");
        assert_eq!(nm.header("etag"), Some(gz_tag.as_str()), "{url}");

        // gzip when accepted; the same bytes once decompressed.
        let gz = get(port, &url, &[("Accept-Encoding", "br, gzip")]);
        assert_eq!(gz.status, 200, "{url}");
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{url}");
        assert_eq!(gz.header("etag"), Some(gz_tag.as_str()), "{url}");
        assert_eq!(gz.header("vary"), Some("Accept-Encoding"), "{url}");
        assert_eq!(
            String::from_utf8_lossy(&gunzip(&gz.body)),
            expected,
            "{url}"
        );

        // The signature verifies with minisign and with sharedefend verify.
        let sig = get(port, &format!("{url}.minisig"), &[]);
        assert_eq!(sig.status, 200, "{url}.minisig");
        let file = dir.join(format!("phishing.{ext}"));
        let sig_file = dir.join(format!("phishing.{ext}.minisig"));
        std::fs::write(&file, &r.body).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&sig_file, &sig.body).unwrap_or_else(|e| panic!("{e}"));
        let m = minisign(&file, &sig_file, &pubkey_line);
        let m_out = String::from_utf8_lossy(&m.stdout).into_owned();
        assert!(
            m.status.success(),
            "minisign {url}: {m_out}{}",
            String::from_utf8_lossy(&m.stderr)
        );
        let comment = format!("file:phishing.{ext}\tfeed:phishing\tserial:1\tformat:{ext}\thashed");
        assert!(m_out.contains(&comment), "{m_out}");
        let v = sd(
            &data,
            &[
                "verify",
                path(&file),
                path(&sig_file),
                "--pubkey",
                path(&dir.join("keys/signing.pub")),
            ],
        );
        assert!(
            v.contains("signature verified; trusted comment: timestamp:"),
            "{v}"
        );
        assert!(v.contains(&comment), "{v}");
    }

    // A tampered file: sharedefend verify exits 1, minisign refuses too.
    let file = dir.join("phishing.rpz");
    let sig_file = dir.join("phishing.rpz.minisig");
    let mut tampered = std::fs::read(&file).unwrap_or_default();
    tampered.extend_from_slice(b"innocent.example CNAME .\n");
    std::fs::write(&file, &tampered).unwrap_or_else(|e| panic!("{e}"));
    let bad = sd_output(
        &data,
        &[
            "verify",
            path(&file),
            path(&sig_file),
            "--pubkey",
            &pubkey_line,
        ],
    );
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("the signature does not match the file"));
    assert!(!minisign(&file, &sig_file, &pubkey_line).status.success());
    // Unreadable or malformed input: exit 2 naming the file.
    let junk = dir.join("junk.minisig");
    std::fs::write(&junk, "untrusted comment: x\nnot base64!\n").unwrap_or_else(|e| panic!("{e}"));
    let malformed = sd_output(
        &data,
        &["verify", path(&file), path(&junk), "--pubkey", &pubkey_line],
    );
    assert_eq!(malformed.status.code(), Some(2));
    let err = String::from_utf8_lossy(&malformed.stderr).into_owned();
    assert!(
        err.contains("junk.minisig: signature line 2: not base64"),
        "{err}"
    );
    let missing = sd_output(
        &data,
        &[
            "verify",
            path(&dir.join("nope")),
            path(&sig_file),
            "--pubkey",
            &pubkey_line,
        ],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot read"),
        "{missing:?}"
    );
    let bad_key = sd_output(
        &data,
        &["verify", path(&file), path(&sig_file), "--pubkey", "RWQ"],
    );
    assert_eq!(bad_key.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad_key.stderr).contains("--pubkey"),
        "{bad_key:?}"
    );

    // A new serial: the ETag moves, the old tag no longer gives 304, and the
    // changes since 1 are the new name alone.
    import(&dir, &data, "b.txt", &["evil-four.example"]);
    let imported = Instant::now();
    wait_until("serial 2 over HTTP", Duration::from_secs(10), || {
        get(port, "/feeds/phishing.rpz", &[]).header("etag") == Some("\"phishing.rpz.2\"")
    });
    eprintln!("import → new ETag over HTTP: {:?}", imported.elapsed());
    let fresh = get(
        port,
        "/feeds/phishing.rpz",
        &[("If-None-Match", "\"phishing.rpz.1\"")],
    );
    assert_eq!(fresh.status, 200);
    assert_eq!(
        fresh.text(),
        sd(&data, &["export", "--feed", "phishing", "--format", "rpz"])
    );
    assert!(fresh.text().contains("evil-four.example CNAME ."));
    let changes = get(port, "/feeds/phishing/changes?since=1", &[]);
    assert_eq!(changes.status, 200, "{}", changes.text());
    assert_eq!(changes.header("content-type"), Some("application/json"));
    assert_eq!(
        changes.json(),
        serde_json::json!({
            "feed": "phishing", "since": 1, "serial": 2, "removed": [],
            "added": [
                {"trigger": "*.evil-four.example", "action": "nxdomain"},
                {"trigger": "evil-four.example", "action": "nxdomain"},
            ],
        })
    );
    let current = get(port, "/feeds/phishing/changes?since=2", &[]).json();
    assert_eq!(current["added"], serde_json::json!([]));
    assert_eq!(current["removed"], serde_json::json!([]));
    let from0 = get(port, "/feeds/phishing/changes?since=0", &[]).json();
    // From 0: every rule of the feed, as the domain list has them.
    let listed: Vec<String> = sd(
        &data,
        &["export", "--feed", "phishing", "--format", "domains"],
    )
    .lines()
    .filter(|l| !l.starts_with('#'))
    .map(str::to_owned)
    .collect();
    let added: Vec<String> = from0["added"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["trigger"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(added, listed, "{from0}");

    // A URL-only indicator (a URL on a shared host) changes the URL list but not the
    // serial: the list's ETag still moves.
    let urls_tag = get(port, "/feeds/phishing.urls", &[])
        .header("etag")
        .unwrap_or_default()
        .to_owned();
    let shared = dir.join("shared.txt");
    std::fs::write(&shared, "share.example\n").unwrap_or_else(|e| panic!("{e}"));
    sd(
        &data,
        &[
            "allowlist",
            "load",
            "--name",
            "hosting",
            "--role",
            "shared",
            path(&shared),
        ],
    );
    import(&dir, &data, "c.txt", &["http://share.example/evil-page"]);
    wait_until(
        "the URL list's ETag to move",
        Duration::from_secs(10),
        || {
            let r = get(
                port,
                "/feeds/phishing.urls",
                &[("If-None-Match", &urls_tag)],
            );
            r.status == 200 && r.text().contains("http://share.example/evil-page")
        },
    );
    let after = get(port, "/feeds/phishing.urls", &[]);
    assert_eq!(
        after.header("x-sharedefend-serial"),
        Some("2"),
        "URL-only: no new serial"
    );
    assert_eq!(
        after.text(),
        sd(&data, &["export", "--feed", "phishing", "--format", "urls"])
    );

    // Bad requests: 4xx with a JSON error naming the field; never a 5xx.
    let cases: [(&str, u16, &str); 9] = [
        ("/feeds/nope.rpz", 404, "feed"),
        ("/feeds/nope.rpz.minisig", 404, "feed"),
        ("/feeds/phishing.zip", 404, "format"),
        ("/feeds/phishing", 404, "format"),
        ("/feeds/nope/changes?since=1", 404, "feed"),
        ("/feeds/phishing/changes", 400, "since"),
        ("/feeds/phishing/changes?since=-1", 400, "since"),
        ("/feeds/phishing/changes?since=1&x=2", 400, "query"),
        ("/nothing/here", 404, "path"),
    ];
    for (url, status, field) in cases {
        let r = get(port, url, &[]);
        assert_eq!(r.status, status, "{url}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"), "{url}");
        assert_eq!(r.json()["field"], field, "{url}: {}", r.text());
    }
    let gone = get(port, "/feeds/phishing/changes?since=99", &[]);
    assert_eq!(gone.status, 410, "{}", gone.text());
    let body = gone.json();
    assert_eq!(body["reset"], "full");
    assert_eq!(body["serial"], 2);
    assert_eq!(body["full"], "/feeds/phishing.rpz");

    drop(hub);
    // One render per (feed, format, serial), however many requests; the secret key
    // never reaches the log.
    let log = std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default();
    let renders = log
        .lines()
        .filter(|l| l.contains("export rendered") && l.contains("format=\"rpz\""))
        .count();
    assert_eq!(renders, 2, "{log}");
    let secret = std::fs::read_to_string(dir.join("keys/signing.key")).unwrap_or_default();
    let secret_line = secret.lines().nth(1).unwrap_or("<none>");
    assert!(!log.contains(secret_line), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sharedefend` on a PostgreSQL store.
fn sd_pg(params: &str) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sharedefend"));
    c.env("SHAREDEFEND_POSTGRES", params)
        .env_remove("SHAREDEFEND_DATA")
        .env_remove("SHAREDEFEND_NOW")
        .env_remove("SHAREDEFEND_CONFIG")
        .env("SHAREDEFEND_OPERATOR", "test");
    c
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn exports_from_a_postgres_store() {
    let dir = workdir("http-pg");
    let params = support::pg_database();
    let feed = dir.join("a.txt");
    std::fs::write(&feed, "pg-one.example\npg-two.example\n").unwrap_or_else(|e| panic!("{e}"));
    ok(sd_pg(&params)
        .args([
            "import",
            "--source",
            "t",
            "--category",
            "phishing",
            path(&feed),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}")));

    // No data directory to keep the key in: it must be named.
    let refused = sd_pg(&params)
        .args([
            "hub",
            "serve",
            "--dns-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--key-dir: required with --postgres")
    );

    let port = hubproc::free_port();
    let dns = hubproc::free_port();
    let log = std::fs::File::create(dir.join("hub.log")).unwrap_or_else(|e| panic!("{e}"));
    let _hub = Proc {
        child: sd_pg(&params)
            .args([
                "hub",
                "serve",
                "--dns-listen",
                &format!("127.0.0.1:{dns}"),
                "--http-listen",
                &format!("127.0.0.1:{port}"),
                "--key-dir",
                path(&dir.join("keys")),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    };
    wait_until("the hub to answer HTTP", Duration::from_secs(10), || {
        try_get(port, "/feeds/pubkey", &[]).is_some_and(|r| r.status == 200)
    });
    let expected = ok(sd_pg(&params)
        .args(["export", "--feed", "phishing", "--format", "rpz"])
        .output()
        .unwrap_or_else(|e| panic!("{e}")));
    let body = get(port, "/feeds/phishing.rpz", &[]);
    assert_eq!(body.text(), expected);
    assert!(expected.contains("pg-two.example CNAME ."), "{expected}");
    let file = dir.join("phishing.rpz");
    let sig = dir.join("phishing.rpz.minisig");
    std::fs::write(&file, &body.body).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&sig, get(port, "/feeds/phishing.rpz.minisig", &[]).body)
        .unwrap_or_else(|e| panic!("{e}"));
    let v = ok(sd_pg(&params)
        .args([
            "verify",
            path(&file),
            path(&sig),
            "--pubkey",
            path(&dir.join("keys/signing.pub")),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}")));
    assert!(v.contains("feed:phishing\tserial:1\tformat:rpz"), "{v}");
    drop(_hub);
    let _ = std::fs::remove_dir_all(&dir);
}
