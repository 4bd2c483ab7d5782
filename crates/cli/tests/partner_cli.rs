//! `sharedefend partner add|list|rotate-tsig` against a running `hub serve`: the key
//! printed by `add` transfers the zone with `dig -y`; a partner added while the hub
//! runs works within a second (the hub watches its config file); after `rotate-tsig`
//! the new key works and the old one is refused (BADSIG); bad arguments exit 2 naming
//! the field and leave the file as it was; a broken config is not loaded (the running
//! one stays); SIGHUP reloads; no secret reaches the log or `partner list`.

mod hubproc;

use std::path::Path;
use std::time::Duration;

use hubproc::{dig, free_port, import, path, sd, sd_output, serve, wait_until, workdir};

const ZONE: &str = "phishing.rpz.sharedefend";

/// The key from a BIND key statement: `hmac-sha256:NAME:SECRET` for `dig -y`.
fn dig_key(stanza: &str) -> String {
    let name = stanza.split('"').nth(1).unwrap_or_default();
    let algorithm = stanza
        .split("algorithm ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or_default();
    let secret = stanza.split('"').nth(3).unwrap_or_default();
    assert!(!name.is_empty() && !secret.is_empty(), "{stanza}");
    format!("{algorithm}:{name}:{secret}")
}

fn secret_of(key: &str) -> &str {
    key.rsplit(':').next().unwrap_or_default()
}

fn axfr_records(port: u16, key: &str) -> usize {
    dig(port, &["-y", key, ZONE, "AXFR"])
        .lines()
        .filter(|l| !l.starts_with(';') && l.split_whitespace().nth(3) == Some("CNAME"))
        .count()
}

fn refused_badsig(port: u16, key: &str) -> bool {
    let out = dig(port, &["-y", key, ZONE, "AXFR"]);
    out.contains("BADSIG") && !out.contains("CNAME")
}

fn add(data: &Path, config: &Path, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["partner", "add", name, "--config", path(config)];
    args.extend_from_slice(extra);
    sd(data, &args)
}

#[test]
fn partners_added_and_rotated_while_the_hub_runs() {
    let dir = workdir("partners");
    let data = dir.join("data");
    let config = dir.join("hub.toml");
    std::fs::write(&config, "# partners of the test hub\n").unwrap_or_else(|e| panic!("{e}"));
    import(
        &dir,
        &data,
        "a.txt",
        &["evil-one.example", "evil-two.example"],
    );

    let isp_a = dig_key(&add(
        &data,
        &config,
        "isp-a",
        &["--feeds", "phishing,malware", "--notify", "127.0.0.1:9"],
    ));
    assert!(
        isp_a.starts_with("hmac-sha256:sharedefend-isp-a:"),
        "{isp_a}"
    );

    // list: names, feeds, key names; never the secret.
    let list = sd(&data, &["partner", "list", "--config", path(&config)]);
    assert_eq!(
        list,
        "isp-a\tfeeds=phishing,malware\ttsig=sharedefend-isp-a (hmac-sha256)\tnotify=127.0.0.1:9\tallow_ips=-\troles=-\ttlp=green\ttokens=0\n"
    );
    let json = sd(
        &data,
        &["partner", "list", "--config", path(&config), "--json"],
    );
    assert!(!json.contains(secret_of(&isp_a)), "{json}");
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed[0]["tsig"]["name"], "sharedefend-isp-a");

    // Bad arguments: exit 2 naming the field; the file unchanged.
    let before = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(
        before.starts_with("# partners of the test hub\n"),
        "{before}"
    );
    let bad: [(&[&str], &str); 5] = [
        (
            &["partner", "add", "isp-a", "--feeds", "phishing"],
            "NAME: a partner \"isp-a\" is already in",
        ),
        (
            &["partner", "add", "isp-c", "--feeds", "phish"],
            "--feeds: unknown feed \"phish\"",
        ),
        (
            &[
                "partner",
                "add",
                "isp-c",
                "--feeds",
                "phishing",
                "--notify",
                "not-an-address",
            ],
            "--notify",
        ),
        (
            &[
                "partner",
                "add",
                "isp-c",
                "--feeds",
                "phishing",
                "--allow-ip",
                "300.1.1.1",
            ],
            "--allow-ip",
        ),
        (
            &["partner", "rotate-tsig", "nobody"],
            "NAME: no partner \"nobody\"",
        ),
    ];
    for (args, want) in bad {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--config", path(&config)]);
        let out = sd_output(&data, &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&config).unwrap_or_default(), before);

    // The hub serves the key `add` printed.
    let port = free_port();
    let http = free_port();
    let hub = serve(
        &data,
        &[
            "--dns-listen",
            &format!("127.0.0.1:{port}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
            "--config",
            path(&config),
        ],
        &dir.join("hub.log"),
    );
    wait_until("the hub to answer SOA", Duration::from_secs(10), || {
        dig(port, &["+short", ZONE, "SOA"]).contains("localhost.")
    });
    assert_eq!(axfr_records(port, &isp_a), 4);

    // A partner added while it runs: picked up from the file.
    let isp_b = dig_key(&add(
        &data,
        &config,
        "isp-b",
        &["--feeds", "*", "--tsig-algorithm", "hmac-sha512"],
    ));
    assert!(
        isp_b.starts_with("hmac-sha512:sharedefend-isp-b:"),
        "{isp_b}"
    );
    wait_until("isp-b's key to work", Duration::from_secs(10), || {
        axfr_records(port, &isp_b) == 4
    });

    // Rotation: the new key works, the old one is refused.
    let rotated = sd(
        &data,
        &["partner", "rotate-tsig", "isp-a", "--config", path(&config)],
    );
    let isp_a2 = dig_key(&rotated);
    assert_ne!(isp_a2, isp_a);
    wait_until("the rotated key to work", Duration::from_secs(10), || {
        axfr_records(port, &isp_a2) == 4
    });
    assert!(refused_badsig(port, &isp_a));
    assert_eq!(axfr_records(port, &isp_b), 4);

    // A broken file is not loaded: the running partners stay.
    let good = std::fs::read_to_string(&config).unwrap_or_default();
    std::fs::write(
        &config,
        good.replace("feeds = [\"*\"]", "feeds = [\"*\"]\nfeedz = 1"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log_path = dir.join("hub.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_until(
        "the broken config to be reported",
        Duration::from_secs(10),
        || log().contains("config not reloaded"),
    );
    assert_eq!(axfr_records(port, &isp_a2), 4);

    // SIGHUP reloads on demand.
    std::fs::write(&config, &good).unwrap_or_else(|e| panic!("{e}"));
    let pid = hub.child.id().to_string();
    let hup = hubproc::run("kill", &["-HUP", &pid]);
    assert!(hup.status.success());
    wait_until("SIGHUP to reload", Duration::from_secs(10), || {
        log().contains("SIGHUP; reloading the config")
    });
    assert_eq!(axfr_records(port, &isp_a2), 4);

    drop(hub);
    let log = log();
    assert!(log.contains("partners reloaded"), "{log}");
    for key in [&isp_a, &isp_a2, &isp_b] {
        assert!(!log.contains(secret_of(key)), "secret in the log: {log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
