//! The hub's RPZ zones in the resolvers ISPs run besides BIND (issue #4), each a real
//! server on loopback with the configuration `docs/operating.md` gives operators:
//!
//! - PowerDNS Recursor 4.8 pulls the zone with `rpzPrimary` and TSIG: the initial
//!   AXFR blocks a listed name, an import reaches it (4.8 looks for a new serial on
//!   its `refresh` timer, not on NOTIFY) and it answers NXDOMAIN, a delisting makes
//!   the name resolve again.
//! - Unbound 1.17 pulls it with an `rpz:` clause, unsigned (it cannot sign a
//!   transfer), admitted by the partner's `allow_ips`; the hub's NOTIFY brings each
//!   change at once. Without the allow-list entry the same transfer is refused.
//! - Knot Resolver 5.6 has no zone transfer: it reads the file `sharedefend export
//!   --format rpz` writes (`policy.rpz`), blocks what is listed and nothing else, and
//!   reloads the file when a new export replaces it.
//!
//! Names not blocked resolve against a BIND `named` authoritative for `target.test`.
//! Each test prints (with `--nocapture`) how long a change took from the import's
//! commit to the resolver's NXDOMAIN. `scripts/test` installs `pdns-recursor`,
//! `unbound`, `knot-resolver` and `lua-cqueues` (kresd's file watching).

#![allow(clippy::print_stderr)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{
    Db, KEY_NAME, KEY_SECRET, Proc, TARGET_A, ZONE, authoritative, dig, free_port, import,
    measured, path, quoted, sd, start_hub, status, transfers, tsig_partner, wait_until, workdir,
    write,
};

/// How often the test's PowerDNS Recursor asks the hub for a new serial (`refresh`).
const PDNS_REFRESH: u32 = 1;

fn hub_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default()
}

/// `dig NAME A` at `port` answers `TARGET_A`.
fn resolves(port: u16, name: &str) -> bool {
    status(port, name) == "NOERROR" && dig(port, &["+short", name, "A"]).contains(TARGET_A)
}

/// PowerDNS Recursor in `dir/pdns` on `port`: the hub's phishing zone by
/// `rpzPrimary` with TSIG, `target.test` forwarded to the authoritative on
/// `auth_port`.
///
/// The packet cache is off: 4.8 does not purge it when the policy changes, so an
/// answer given before (NOERROR for a name about to be blocked, for up to its TTL;
/// the policy's NXDOMAIN after a delisting, for up to `packetcache-servfail-ttl`,
/// 60 s) would hide the change this test looks for. `docs/operating.md` tells
/// operators.
fn start_pdns_recursor(dir: &Path, port: u16, hub_port: u16, auth_port: u16) -> Proc {
    let d = dir.join("pdns");
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    let ds = path(&d);
    write(
        &d.join("recursor.conf"),
        &format!(
            "config-dir={ds}
socket-dir={ds}
local-address=127.0.0.1
local-port={port}
allow-from=127.0.0.0/8
daemon=no
write-pid=no
threads=1
disable-syslog=yes
loglevel=6
dnssec=off
security-poll-suffix=
forward-zones=target.test=127.0.0.1:{auth_port}
dont-query=
lua-config-file={ds}/recursor.lua
disable-packetcache=yes
"
        ),
    );
    write(
        &d.join("recursor.lua"),
        &format!(
            r#"rpzPrimary({{"127.0.0.1:{hub_port}"}}, "{ZONE}", {{
  policyName = "sharedefend-phishing",
  tsigname   = "{KEY_NAME}",
  tsigalgo   = "hmac-sha256",
  tsigsecret = "{KEY_SECRET}",
  refresh    = {PDNS_REFRESH},
  dumpFile   = "{ds}/phishing.rpz.dump",
}})
"#
        ),
    );
    Proc::spawn(
        "pdns_recursor",
        Command::new("pdns_recursor").arg(format!("--config-dir={ds}")),
        &d.join("recursor.log"),
        &[],
    )
}

/// The recursor's log says it applied the zone's `serial` by IXFR.
fn pdns_has_serial(dir: &Path, serial: u32) -> bool {
    std::fs::read_to_string(dir.join("pdns/recursor.log"))
        .unwrap_or_default()
        .lines()
        .any(|l| {
            l.contains("msg=\"RPZ mutations\"") && l.contains(&format!("newserial=\"{serial}\""))
        })
}

#[test]
fn pdns_recursor_takes_the_zone_with_tsig_and_follows_changes() {
    let dir = workdir("pdns");
    let data = Db::Sqlite(dir.join("data"));
    import(&dir, &data, "a.txt", &["first.target.test"]);
    let (auth, auth_port) = authoritative(&dir);
    let hub_port = free_port();
    let hub = start_hub(&dir, &data, hub_port, &tsig_partner("pdns", &[]));
    let port = free_port();
    let pdns = start_pdns_recursor(&dir, port, hub_port, auth_port);
    let all = [&hub, &pdns, &auth];

    wait_until(
        "PowerDNS Recursor to block first.target.test (initial AXFR)",
        Duration::from_secs(15),
        &all,
        || status(port, "first.target.test") == "NXDOMAIN",
    );
    wait_until(
        "PowerDNS Recursor to resolve other.target.test",
        Duration::from_secs(10),
        &all,
        || resolves(port, "other.target.test"),
    );

    import(&dir, &data, "b.txt", &["late.target.test"]);
    let imported = Instant::now();
    wait_until(
        "PowerDNS Recursor to apply serial 2",
        Duration::from_secs(15),
        &all,
        || pdns_has_serial(&dir, 2),
    );
    wait_until(
        "PowerDNS Recursor to block late.target.test",
        Duration::from_secs(15),
        &all,
        || status(port, "late.target.test") == "NXDOMAIN",
    );
    measured(
        &format!("import committed → PowerDNS Recursor 4.8 NXDOMAIN (refresh={PDNS_REFRESH})"),
        imported.elapsed(),
    );

    sd(&data, &["delist", "late.target.test", "--reason", "test"]);
    let delisted = Instant::now();
    wait_until(
        "PowerDNS Recursor to apply serial 3",
        Duration::from_secs(15),
        &all,
        || pdns_has_serial(&dir, 3),
    );
    wait_until(
        "PowerDNS Recursor to resolve late.target.test again",
        Duration::from_secs(15),
        &all,
        || resolves(port, "late.target.test"),
    );
    measured(
        "delist committed → PowerDNS Recursor 4.8 resolves",
        delisted.elapsed(),
    );
    assert_eq!(status(port, "first.target.test"), "NXDOMAIN");

    drop(pdns);
    drop(hub);
    let log = hub_log(&dir);
    let kinds = transfers(&log);
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("axfr"),
        "the recursor's first transfer: {log}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "ixfr").count(),
        2,
        "an IXFR for the import and one for the delisting: {log}"
    );
    assert!(log.contains("partner=pdns"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Unbound's partner on the hub: no key, unsigned transfers from `allow_ip` (its
/// address), NOTIFY to it.
fn unbound_partner(unbound_port: u16, allow_ip: &str) -> String {
    format!(
        "[[partner]]\nname = \"unbound\"\nfeeds = [\"phishing\"]\nnotify = [{}]\n\
         allow_ips = [\"{allow_ip}\"]\n",
        quoted(&[format!("127.0.0.1:{unbound_port}")])
    )
}

/// Unbound in `dir/unbound` on `port`: the hub's phishing zone by an `rpz:` clause,
/// `target.test` from the authoritative on `auth_port`.
fn start_unbound(dir: &Path, port: u16, hub_port: u16, auth_port: u16) -> Proc {
    let d = dir.join("unbound");
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    let ds = path(&d);
    let conf = d.join("unbound.conf");
    write(
        &conf,
        &format!(
            r#"server:
    verbosity: 1
    interface: 127.0.0.1@{port}
    port: {port}
    do-ip6: no
    do-daemonize: no
    use-syslog: no
    logfile: ""
    username: ""
    chroot: ""
    directory: "{ds}"
    pidfile: ""
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    module-config: "respip iterator"
    do-not-query-localhost: no
    local-zone: "test." nodefault
stub-zone:
    name: "target.test"
    stub-addr: 127.0.0.1@{auth_port}
rpz:
    name: "{ZONE}"
    primary: 127.0.0.1@{hub_port}
    zonefile: "{ds}/phishing.rpz"
    allow-notify: 127.0.0.1
"#
        ),
    );
    let check = Command::new("unbound-checkconf")
        .arg(path(&conf))
        .output()
        .unwrap_or_else(|e| panic!("unbound-checkconf: {e}"));
    assert!(
        check.status.success(),
        "unbound-checkconf: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    Proc::spawn(
        "unbound",
        Command::new("unbound").args(["-d", "-c", path(&conf)]),
        &d.join("unbound.log"),
        &[],
    )
}

#[test]
fn unbound_takes_the_zone_by_allow_ips_and_follows_notify() {
    let dir = workdir("unbound");
    let data = Db::Sqlite(dir.join("data"));
    import(&dir, &data, "a.txt", &["first.target.test"]);
    let (auth, auth_port) = authoritative(&dir);
    let hub_port = free_port();
    let port = free_port();
    let hub = start_hub(&dir, &data, hub_port, &unbound_partner(port, "127.0.0.1"));
    let unbound = start_unbound(&dir, port, hub_port, auth_port);
    let all = [&hub, &unbound, &auth];

    wait_until(
        "Unbound to block first.target.test (initial AXFR)",
        Duration::from_secs(15),
        &all,
        || status(port, "first.target.test") == "NXDOMAIN",
    );
    wait_until(
        "Unbound to resolve late.target.test",
        Duration::from_secs(10),
        &all,
        || resolves(port, "late.target.test"),
    );

    import(&dir, &data, "b.txt", &["late.target.test"]);
    let imported = Instant::now();
    wait_until(
        "Unbound to block late.target.test",
        Duration::from_secs(15),
        &all,
        || status(port, "late.target.test") == "NXDOMAIN",
    );
    measured(
        "import committed → Unbound 1.17 NXDOMAIN",
        imported.elapsed(),
    );

    sd(&data, &["delist", "late.target.test", "--reason", "test"]);
    let delisted = Instant::now();
    wait_until(
        "Unbound to resolve late.target.test again",
        Duration::from_secs(15),
        &all,
        || resolves(port, "late.target.test"),
    );
    measured(
        "delist committed → Unbound 1.17 resolves",
        delisted.elapsed(),
    );
    assert_eq!(status(port, "first.target.test"), "NXDOMAIN");

    // Unsigned from an address no partner lists: refused.
    let p = hub_port.to_string();
    let other = support::run(
        "dig",
        &[
            "@127.0.0.1",
            "-p",
            &p,
            "-b",
            "127.0.0.2",
            "+time=2",
            "+tries=1",
            ZONE,
            "AXFR",
        ],
    );
    let other = String::from_utf8_lossy(&other.stdout);
    assert!(other.contains("Transfer failed"), "{other}");
    assert!(!other.contains("CNAME"), "{other}");

    // The same transfer, Unbound's own, without the allow-list entry for its address:
    // the hub restarts with the partner allowed from 127.0.0.2 only, the next
    // import's NOTIFY makes Unbound ask, and the hub refuses it.
    hub.stop();
    let elsewhere = unbound_partner(port, "127.0.0.2");
    let hub = start_hub(&dir, &data, hub_port, &elsewhere);
    let before = hub_log(&dir).matches("transfer refused").count();
    import(&dir, &data, "c.txt", &["refused.target.test"]);
    wait_until(
        "the hub to refuse Unbound's unsigned transfer",
        Duration::from_secs(15),
        &[&hub, &unbound],
        || {
            hub_log(&dir)
                .lines()
                .filter(|l| l.contains("transfer refused"))
                .skip(before)
                .any(|l| l.contains("client=127.0.0.1:") && l.contains("signed=false"))
        },
    );
    // Unbound keeps the policy it had.
    assert!(resolves(port, "refused.target.test"));
    assert_eq!(status(port, "first.target.test"), "NXDOMAIN");

    drop(unbound);
    drop(hub);
    let log = hub_log(&dir);
    assert!(
        log.contains("unsigned transfer allowed by allow_ips"),
        "{log}"
    );
    assert!(log.contains("client=127.0.0.2"), "{log}");
    assert!(
        log.contains(&format!("notify acknowledged target=127.0.0.1:{port}")),
        "{log}"
    );
    let kinds = transfers(&log);
    assert_eq!(kinds.first().map(String::as_str), Some("axfr"), "{log}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "ixfr").count(),
        2,
        "an IXFR for the import and one for the delisting: {log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Knot Resolver in `dir/kresd` on `port`: `policy.rpz` on `rpz_file` (watched and
/// reloaded on change), `target.test` from the authoritative on `auth_port`.
fn start_kresd(dir: &Path, port: u16, rpz_file: &Path, auth_port: u16) -> Proc {
    let d = dir.join("kresd");
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    let ds = path(&d);
    let conf = d.join("kresd.conf");
    write(
        &conf,
        &format!(
            r#"log_target('stderr')
net.listen('127.0.0.1', {port}, {{ kind = 'dns' }})
trust_anchors.remove('.')
for _, m in ipairs({{ 'ta_update', 'priming', 'detect_time_skew' }}) do pcall(modules.unload, m) end
cache.open(10 * MB, 'lmdb://{ds}/cache')
policy.add(policy.rpz(policy.DENY, '{rpz}', true))
policy.add(policy.suffix(policy.STUB({{ '127.0.0.1@{auth_port}' }}), {{ todname('target.test.') }}))
"#,
            rpz = path(rpz_file)
        ),
    );
    Proc::spawn(
        "kresd",
        Command::new("kresd").args(["-n", "-c", path(&conf), ds]),
        &d.join("kresd.log"),
        &[],
    )
}

#[test]
fn knot_resolver_blocks_what_the_rpz_export_lists() {
    let dir = workdir("kresd");
    let data = Db::Sqlite(dir.join("data"));
    import(&dir, &data, "a.txt", &["first.target.test", "evil.test"]);
    let rpz = dir.join("phishing.rpz");
    let export = || {
        sd(
            &data,
            &[
                "export",
                "--feed",
                "phishing",
                "--format",
                "rpz",
                "-o",
                path(&rpz),
            ],
        );
    };
    export();
    let (auth, auth_port) = authoritative(&dir);
    let port = free_port();
    let kresd = start_kresd(&dir, port, &rpz, auth_port);
    let all = [&kresd, &auth];

    wait_until(
        "Knot Resolver to block first.target.test",
        Duration::from_secs(15),
        &all,
        || status(port, "first.target.test") == "NXDOMAIN",
    );
    // A registered domain is blocked with its subdomains (`*.evil.test`), a host
    // exactly; unlisted names resolve.
    assert_eq!(status(port, "evil.test"), "NXDOMAIN");
    assert_eq!(status(port, "www.evil.test"), "NXDOMAIN");
    assert!(resolves(port, "www.first.target.test"));
    assert!(resolves(port, "late.target.test"));
    assert!(resolves(port, "notfirst.target.test"));

    // An import, a new export: kresd reloads the file and blocks the new name.
    import(&dir, &data, "b.txt", &["late.target.test"]);
    let imported = Instant::now();
    export();
    wait_until(
        "Knot Resolver to block late.target.test after the new export",
        Duration::from_secs(15),
        &all,
        || status(port, "late.target.test") == "NXDOMAIN",
    );
    measured(
        "import committed → export → Knot Resolver 5.6 NXDOMAIN",
        imported.elapsed(),
    );
    assert_eq!(status(port, "first.target.test"), "NXDOMAIN");
    assert!(resolves(port, "other.target.test"));
    drop(kresd);
    let _ = std::fs::remove_dir_all(&dir);
}
