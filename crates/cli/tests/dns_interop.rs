//! `sharedefend hub serve` against real DNS software: `dig` and `kdig` transfer the
//! feed zones with TSIG (and are refused without it, or with a wrong key), BIND's
//! `named-checkzone` accepts what was transferred, and BIND 9 `named` runs as a
//! TSIG-authenticated RPZ secondary that follows an import by NOTIFY and IXFR and
//! blocks the name, then unblocks it after a delisting, and catches up at once on an
//! import it missed while the hub was down (the hub NOTIFYs at start-up). The other
//! resolvers are in `resolver_interop.rs`; the helpers both use in `support/`.
//!
//! Everything talks to 127.0.0.1 on free ports, every wait is bounded, and every
//! process the test starts is killed when its guard drops. `scripts/test` installs
//! `bind9`, `bind9-dnsutils` and `knot-dnsutils`.

#![allow(clippy::print_stderr)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{
    Db, KEY_NAME, KEY_SECRET, KEY512_NAME, KEY512_SECRET, Proc, ZONE, dig, free_port, import, kdig,
    key256, measured, path, quoted, records, run, sd, soa_serials, start_hub, status, transfers,
    wait_until, workdir, write,
};

/// Right name, wrong secret.
const WRONG_SECRET: &str = "AAAAQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";

/// The hub's config: partner `isp` (sha256 key, the phishing feed, NOTIFY `notify`)
/// and `isp512` (sha512 key, every feed).
fn hub_config(notify: &[String]) -> String {
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
        quoted(notify)
    )
}

/// Starts `hub serve` on a free port with [`hub_config`]; logs to `dir/hub.log`.
fn serve(dir: &Path, data: &Db, notify: &[String]) -> (Proc, u16) {
    let port = free_port();
    (start_hub(dir, data, port, &hub_config(notify)), port)
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
    write(&zone_file, &(records(&axfr).join("\n") + "\n"));
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
    wait_until("serial 2", Duration::from_secs(10), &[&hub], || {
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

fn hub_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default()
}

#[test]
fn bind_secondary_follows_notify_and_ixfr() {
    let dir = workdir("bind");
    let data = Db::Sqlite(dir.join("data"));
    import(&dir, &data, "a.txt", &["first.target.test"]);
    let bind_port = free_port();
    let (hub, hub_port) = serve(&dir, &data, &[format!("127.0.0.1:{bind_port}")]);
    let named = support::start_rpz_secondary(&dir, bind_port, hub_port);
    let both = [&hub, &named];

    // Initial AXFR: the first name is blocked, any other resolves.
    wait_until(
        "BIND to load the policy zone",
        Duration::from_secs(10),
        &both,
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
        &both,
        || status(bind_port, "late.target.test") == "NXDOMAIN",
    );
    measured("import committed → BIND 9 NXDOMAIN", imported.elapsed());

    // Delist it: it resolves again.
    sd(&data, &["delist", "late.target.test", "--reason", "test"]);
    let delisted = Instant::now();
    wait_until(
        "BIND to unblock late.target.test",
        Duration::from_secs(10),
        &both,
        || status(bind_port, "late.target.test") == "NOERROR",
    );
    measured("delist committed → BIND 9 resolves", delisted.elapsed());
    assert_eq!(status(bind_port, "first.target.test"), "NXDOMAIN");

    drop(named);
    drop(hub);
    let log = hub_log(&dir);
    assert_eq!(transfers(&log), ["axfr", "ixfr", "ixfr"], "{log}");
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

/// `hub serve` NOTIFYs its partners' servers at start-up: a BIND secondary that
/// missed an import while the hub was down asks for it as soon as the hub is back,
/// not at its SOA refresh an hour later.
#[test]
fn bind_catches_up_when_the_hub_restarts() {
    let dir = workdir("restart");
    let data = Db::Sqlite(dir.join("data"));
    import(&dir, &data, "a.txt", &["first.target.test"]);
    let bind_port = free_port();
    let hub_port = free_port();
    let config = hub_config(&[format!("127.0.0.1:{bind_port}")]);
    let hub = start_hub(&dir, &data, hub_port, &config);
    let named = support::start_rpz_secondary(&dir, bind_port, hub_port);
    wait_until(
        "BIND to load the policy zone",
        Duration::from_secs(10),
        &[&hub, &named],
        || status(bind_port, "first.target.test") == "NXDOMAIN",
    );
    hub.stop();

    // An import while the hub is down: BIND cannot know.
    import(&dir, &data, "b.txt", &["late.target.test"]);
    assert_eq!(status(bind_port, "late.target.test"), "NOERROR");

    let hub = start_hub(&dir, &data, hub_port, &config);
    let restarted = Instant::now();
    wait_until(
        "BIND to block late.target.test after the hub's restart",
        Duration::from_secs(10),
        &[&hub, &named],
        || status(bind_port, "late.target.test") == "NXDOMAIN",
    );
    measured("hub restart → BIND 9 NXDOMAIN", restarted.elapsed());
    drop(named);
    drop(hub);
    let log = hub_log(&dir);
    assert!(log.contains("start-up notify"), "{log}");
    assert_eq!(transfers(&log), ["axfr", "ixfr"], "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same server over PostgreSQL (the store's reads run on the server's blocking
/// threads): AXFR, then IXFR after a second import.
#[test]
fn transfers_from_a_postgres_store() {
    let dir = workdir("pg");
    let data = Db::Postgres(support::pg::pg_database());
    import(&dir, &data, "a.txt", &["pg-one.example"]);
    let (hub, port) = serve(&dir, &data, &[]);
    let axfr = dig(port, &["-y", &key256(), ZONE, "AXFR"]);
    assert_eq!(soa_serials(&axfr), ["1", "1"], "{axfr}");
    assert!(
        records(&axfr).contains(&format!("pg-one.example.{ZONE}. 300 IN CNAME .")),
        "{axfr}"
    );
    import(&dir, &data, "b.txt", &["pg-two.example"]);
    wait_until("serial 2", Duration::from_secs(10), &[&hub], || {
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
