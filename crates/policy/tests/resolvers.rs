//! What the matcher's QNAME semantics are, checked against the resolvers that load
//! the same zones: PowerDNS Recursor, Knot Resolver, BIND 9 and Unbound.
//!
//! RPZ implementations do not agree on wildcards. With `*.example.test` and
//! `b.example.test` in one zone, PowerDNS Recursor and Knot Resolver rewrite
//! `y.b.example.test` by the wildcard (the closest wildcard ancestor wins); BIND looks
//! the name up in the policy zone as DNS would (RFC 4592), where the existing
//! `b.example.test` — or an empty non-terminal such as `d.example.test` above
//! `c.d.example.test` — blocks the wildcard above it, so that zone does not match and
//! a later zone may; Unbound blocks on names with records but not on empty
//! non-terminals. The matcher follows PowerDNS and Knot (and the issue's definition:
//! `*.name` is everything strictly below, the most specific rule wins); this test
//! holds it to them on every row and records, as data, where BIND and Unbound differ.
//!
//! Each rule answers a distinct address (local data), so the address in the answer
//! names the rule that fired; `192.0.2.1` is the unrewritten answer from the
//! authoritative server. Everything runs on 127.0.0.1, free ports, bounded waits;
//! every process is killed when its guard drops. `scripts/test` installs `bind9`,
//! `bind9-dnsutils`, `pdns-recursor`, `knot-resolver` and `unbound`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use expect_test::expect;
use policy::{Policy, QueryName, Response, RuleSet, Zone, ZoneOptions, rpz};

const ONE: &str = "$ORIGIN one.rpz.\n\
    $TTL 60\n\
    @ SOA ns. hostmaster. 1 60 60 600 60\n\
    @ NS localhost.\n\
    *.example.test A 198.51.100.1\n\
    b.example.test A 198.51.100.2\n\
    *.w.example.test A 198.51.100.3\n\
    c.d.example.test A 198.51.100.4\n\
    *.x.b.example.test A 198.51.100.5\n";

const TWO: &str = "$ORIGIN two.rpz.\n\
    $TTL 60\n\
    @ SOA ns. hostmaster. 1 60 60 600 60\n\
    @ NS localhost.\n\
    y.b.example.test A 198.51.100.20\n\
    *.b.example.test A 198.51.100.21\n";

const AUTHORITY: &str = "$TTL 60\n\
    @ SOA ns.example.test. hostmaster.example.test. 1 60 60 600 60\n\
    @ NS ns\n\
    @ A 192.0.2.1\n\
    * A 192.0.2.1\n";

const QUERIES: [&str; 14] = [
    "example.test",
    "a.example.test",
    "b.example.test",
    "z.b.example.test",
    "y.b.example.test",
    "x.b.example.test",
    "k.x.b.example.test",
    "w.example.test",
    "v.w.example.test",
    "u.v.w.example.test",
    "d.example.test",
    "e.d.example.test",
    "c.d.example.test",
    "f.c.d.example.test",
];

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sharedefend-rpz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path"))
        .to_owned()
}

use testkit::free_port;

/// Starts `program`, its output in `dir/<program>.log`.
fn spawn(dir: &Path, program: &str, args: &[&str], package: &str) -> Proc {
    let log =
        std::fs::File::create(dir.join(format!("{program}.log"))).unwrap_or_else(|e| panic!("{e}"));
    let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test installs {package})"));
    Proc(child)
}

/// The first address of the answer, or `-` for none (NXDOMAIN, NODATA, no reply).
fn answer(port: u16, name: &str) -> String {
    let p = port.to_string();
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &p,
            "+time=2",
            "+tries=1",
            "+short",
            name,
            "A",
        ])
        .output()
        .unwrap_or_else(|e| panic!("dig: {e} (scripts/test installs bind9-dnsutils)"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.parse::<IpAddr>().is_ok())
        .unwrap_or("-")
        .to_owned()
}

/// Waits (bounded) until the server on `port` answers a name outside the rules;
/// on failure shows the server's log from `dir`.
fn wait_ready(what: &str, dir: &Path, port: u16) {
    let start = Instant::now();
    for _ in 0..200 {
        if answer(port, "example.test") == "192.0.2.1" {
            return;
        }
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut logs = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            logs.push_str(&format!("\n{}:\n", entry.path().display()));
            for line in tail.iter().rev() {
                logs.push_str(line);
                logs.push('\n');
            }
        }
    }
    panic!("{what} on port {port} did not answer within 30 s{logs}");
}

fn authority(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let d = dir.to_str().unwrap_or_default();
    let zone = write(dir, "example.test.db", AUTHORITY);
    let conf = write(
        dir,
        "auth.conf",
        &format!(
            "options {{ directory \"{d}\"; pid-file \"{d}/auth.pid\"; listen-on port {port} {{ 127.0.0.1; }}; \
             listen-on-v6 {{ none; }}; recursion no; notify no; }};\n\
             controls {{ }};\n\
             zone \"example.test\" {{ type primary; file \"{zone}\"; }};\n"
        ),
    );
    (spawn(dir, "named", &["-f", "-c", &conf], "bind9"), port)
}

fn bind(dir: &Path, auth: u16) -> (Proc, u16) {
    let port = free_port();
    let d = dir.to_str().unwrap_or_default();
    let one = write(dir, "one.rpz", ONE);
    let two = write(dir, "two.rpz", TWO);
    let conf = write(
        dir,
        "named.conf",
        &format!(
            "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; listen-on port {port} {{ 127.0.0.1; }}; \
             listen-on-v6 {{ none; }}; recursion yes; allow-recursion {{ 127.0.0.0/8; }}; \
             dnssec-validation no; notify no; \
             response-policy {{ zone \"one.rpz\"; zone \"two.rpz\"; }} qname-wait-recurse no; }};\n\
             controls {{ }};\n\
             zone \"one.rpz\" {{ type primary; file \"{one}\"; }};\n\
             zone \"two.rpz\" {{ type primary; file \"{two}\"; }};\n\
             zone \"example.test\" {{ type forward; forward only; forwarders {{ 127.0.0.1 port {auth}; }}; }};\n"
        ),
    );
    (spawn(dir, "named", &["-f", "-c", &conf], "bind9"), port)
}

fn pdns(dir: &Path, auth: u16) -> (Proc, u16) {
    let port = free_port();
    let d = dir.to_str().unwrap_or_default();
    let one = write(dir, "one.rpz", ONE);
    let two = write(dir, "two.rpz", TWO);
    write(
        dir,
        "rpz.lua",
        &format!(
            "rpzFile(\"{one}\", {{policyName=\"one.rpz\"}})\nrpzFile(\"{two}\", {{policyName=\"two.rpz\"}})\n"
        ),
    );
    write(
        dir,
        "recursor.conf",
        &format!(
            "local-address=127.0.0.1\nlocal-port={port}\nforward-zones=example.test=127.0.0.1:{auth}\n\
             lua-config-file={d}/rpz.lua\nsocket-dir={d}\ndnssec=off\ndaemon=no\nsecurity-poll-suffix=\n\
             setuid=\nsetgid=\n"
        ),
    );
    let config_dir = format!("--config-dir={d}");
    (
        spawn(dir, "pdns_recursor", &[&config_dir], "pdns-recursor"),
        port,
    )
}

fn knot(dir: &Path, auth: u16) -> (Proc, u16) {
    let port = free_port();
    let one = write(dir, "one.rpz", ONE);
    let two = write(dir, "two.rpz", TWO);
    let conf = write(
        dir,
        "kresd.conf",
        &format!(
            "net.listen('127.0.0.1', {port}, {{ kind = 'dns' }})\n\
             modules.unload('ta_update')\ntrust_anchors.remove('.')\n\
             policy.add(policy.rpz(policy.DENY, '{one}'))\n\
             policy.add(policy.rpz(policy.DENY, '{two}'))\n\
             policy.add(policy.suffix(policy.STUB({{'127.0.0.1@{auth}'}}), {{todname('example.test.')}}))\n"
        ),
    );
    let rundir = dir.join("run");
    std::fs::create_dir_all(&rundir).unwrap_or_else(|e| panic!("{e}"));
    let rundir = rundir.to_str().unwrap_or_default().to_owned();
    (
        spawn(dir, "kresd", &["-n", "-c", &conf, &rundir], "knot-resolver"),
        port,
    )
}

fn unbound(dir: &Path, auth: u16) -> (Proc, u16) {
    let port = free_port();
    let d = dir.to_str().unwrap_or_default();
    let one = write(dir, "one.rpz", ONE);
    let two = write(dir, "two.rpz", TWO);
    let conf = write(
        dir,
        "unbound.conf",
        &format!(
            "server:\n  interface: 127.0.0.1@{port}\n  do-not-query-localhost: no\n  \
             module-config: \"respip iterator\"\n  local-zone: \"test.\" nodefault\n  chroot: \"\"\n  username: \"\"\n  \
             directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n\
             forward-zone:\n  name: \"example.test\"\n  forward-addr: 127.0.0.1@{auth}\n\
             rpz:\n  name: one.rpz\n  zonefile: {one}\n\
             rpz:\n  name: two.rpz\n  zonefile: {two}\n"
        ),
    );
    (spawn(dir, "unbound", &["-d", "-c", &conf], "unbound"), port)
}

/// What the matcher answers: the rule's local data, or the authority's answer.
fn ours(policy: &Policy, name: &str) -> String {
    let q = QueryName::from_text(name.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    match policy.check_query(None, &q).hit.map(|h| h.response) {
        None => "192.0.2.1".to_owned(),
        Some(Response::LocalData(rrs)) => rrs
            .first()
            .map_or_else(|| "-".to_owned(), |rr| rr.rdata.to_string()),
        Some(other) => panic!("{name}: unexpected {other}"),
    }
}

fn zone(name: &str, text: &str) -> Zone {
    let parsed = formats::readers::rpz::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let loaded = rpz::load_rpz(&parsed);
    assert_eq!((loaded.invalid.len(), loaded.not_applied.len()), (0, 0));
    Zone::new(name, ZoneOptions::default(), loaded.rules)
}

#[test]
fn qname_semantics_match_powerdns_and_knot() {
    let policy = Policy::new(
        vec![zone("one.rpz", ONE), zone("two.rpz", TWO)],
        RuleSet::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let auth_dir = workdir("auth");
    let (_auth, auth) = authority(&auth_dir);
    wait_ready("named (authority)", &auth_dir, auth);
    let dirs = ["pdns", "knot", "bind", "unbound"].map(workdir);
    let resolvers = [
        ("pdns", pdns(&dirs[0], auth)),
        ("knot", knot(&dirs[1], auth)),
        ("bind", bind(&dirs[2], auth)),
        ("unbound", unbound(&dirs[3], auth)),
    ];
    for ((what, (_, port)), dir) in resolvers.iter().zip(&dirs) {
        wait_ready(what, dir, *port);
    }

    let mut table = String::from(
        "query                  ours            pdns            knot            bind            unbound\n",
    );
    for name in QUERIES {
        let mine = ours(&policy, name);
        let theirs: Vec<String> = resolvers
            .iter()
            .map(|(_, (_, port))| answer(*port, name))
            .collect();
        assert_eq!(theirs.first(), Some(&mine), "{name}: PowerDNS Recursor");
        assert_eq!(theirs.get(1), Some(&mine), "{name}: Knot Resolver");
        table.push_str(&format!("{name:<22} {mine:<15}"));
        for t in &theirs {
            table.push_str(&format!(" {t:<15}"));
        }
        table = table.trim_end().to_owned();
        table.push('\n');
    }
    expect![[r#"
        query                  ours            pdns            knot            bind            unbound
        example.test           192.0.2.1       192.0.2.1       192.0.2.1       192.0.2.1       192.0.2.1
        a.example.test         198.51.100.1    198.51.100.1    198.51.100.1    198.51.100.1    198.51.100.1
        b.example.test         198.51.100.2    198.51.100.2    198.51.100.2    198.51.100.2    198.51.100.2
        z.b.example.test       198.51.100.1    198.51.100.1    198.51.100.1    198.51.100.21   198.51.100.21
        y.b.example.test       198.51.100.1    198.51.100.1    198.51.100.1    198.51.100.20   198.51.100.20
        x.b.example.test       198.51.100.1    198.51.100.1    198.51.100.1    198.51.100.21   198.51.100.21
        k.x.b.example.test     198.51.100.5    198.51.100.5    198.51.100.5    198.51.100.5    198.51.100.5
        w.example.test         198.51.100.1    198.51.100.1    198.51.100.1    192.0.2.1       198.51.100.1
        v.w.example.test       198.51.100.3    198.51.100.3    198.51.100.3    198.51.100.3    198.51.100.3
        u.v.w.example.test     198.51.100.3    198.51.100.3    198.51.100.3    198.51.100.3    198.51.100.3
        d.example.test         198.51.100.1    198.51.100.1    198.51.100.1    192.0.2.1       198.51.100.1
        e.d.example.test       198.51.100.1    198.51.100.1    198.51.100.1    192.0.2.1       192.0.2.1
        c.d.example.test       198.51.100.4    198.51.100.4    198.51.100.4    198.51.100.4    198.51.100.4
        f.c.d.example.test     198.51.100.1    198.51.100.1    198.51.100.1    192.0.2.1       192.0.2.1
    "#]].assert_eq(&table);
}
