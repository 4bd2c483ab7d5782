//! `sharedefend filter serve` on the wire: real `dig` against the running filter,
//! forwarding to a real BIND `named` that serves a test zone with CNAME chains,
//! addresses and an answer too large for UDP. A table of RPZ cases (precedence,
//! zones in order, every action, chains, addresses, log-only, allowlist, TCP-only,
//! truncation, EDE 17) is asserted on what `dig` prints; then the upstream going
//! away (SERVFAIL, refused and silent), and a cached name blocked as soon as its
//! rule is written, with the upstream gone.
//!
//! Everything runs on 127.0.0.1 with free ports, every wait is bounded, every
//! process is killed when its guard drops. `scripts/test` installs `bind9` and
//! `bind9-dnsutils`.

#![allow(clippy::print_stderr)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{free_port, path, workdir, write};

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` every 100 ms until it holds; panics after `limit`.
fn wait_until(what: &str, limit: Duration, f: impl FnMut() -> bool) {
    support::wait_until(what, limit, &[], f);
}

/// The upstream's zone: chains, addresses, and 60 AAAA records (too big for UDP).
fn up_zone() -> String {
    let mut z = String::from(
        "$TTL 300
@ SOA ns.up.test. root.up.test. 1 3600 600 86400 120
@ NS ns
ns A 127.0.0.1
www A 192.0.2.10
www AAAA 2001:db8::10
alias CNAME mid
mid CNAME www
chain CNAME tobad
tobad CNAME final
final A 192.0.2.20
ipbad A 198.51.100.7
ipalias CNAME ipbad
garden A 192.0.2.99
blocked A 192.0.2.66
twice A 192.0.2.67
second-only A 192.0.2.68
pass A 192.0.2.69
shadowed A 192.0.2.30
allowed A 192.0.2.31
sub.allowed A 192.0.2.32
tcp A 192.0.2.40
late A 192.0.2.50
keep A 192.0.2.51
wild A 192.0.2.70
",
    );
    for i in 0..60 {
        z.push_str(&format!("big AAAA 2001:db8::{i:x}\n"));
    }
    z
}

/// First zone: named by its SOA owner.
const FIRST_RPZ: &str = "$TTL 60
first.rpz. SOA localhost. hostmaster.first.rpz. 7 3600 600 86400 30
first.rpz. NS localhost.
$ORIGIN first.rpz.
blocked.up.test CNAME .
*.wild.up.test CNAME *.
exact.wild.up.test A 10.9.9.9
*.deep.wild.up.test CNAME rpz-drop.
twice.up.test CNAME .
pass.up.test CNAME rpz-passthru.
tobad.up.test CNAME .
32.7.100.51.198.rpz-ip CNAME .
local.up.test A 10.1.2.3
local.up.test TXT \"local data\"
redir.up.test CNAME garden.up.test.
tcp.up.test CNAME rpz-tcp-only.
allowed.up.test CNAME .
ns.example.rpz-nsdname CNAME .
";

/// Second zone: no SOA, named on the command line.
const SECOND_RPZ: &str = "twice.up.test A 10.2.2.2
second-only.up.test CNAME .
pass.up.test CNAME .
";

/// A log-only zone between them.
const SHADOW_RPZ: &str = "$ORIGIN shadow.rpz.
@ SOA localhost. root.localhost. 1 3600 600 86400 60
shadowed.up.test CNAME .
";

fn named_conf(dir: &Path, port: u16) -> PathBuf {
    let d = path(dir);
    write(&dir.join("up.test.db"), &up_zone());
    let conf = format!(
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
zone "up.test" {{ type primary; file "{d}/up.test.db"; }};
"#
    );
    let p = dir.join("named.conf");
    write(&p, &conf);
    p
}

fn start_named(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let conf = named_conf(dir, port);
    let named = Proc(
        Command::new("named")
            .args(["-f", "-c", path(&conf)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("named: {e} (scripts/test installs bind9)")),
    );
    wait_until("named to serve up.test", Duration::from_secs(15), || {
        dig(port, &["up.test", "SOA"]).status == "NOERROR"
    });
    (named, port)
}

/// Starts the filter with `args` after the listen address; logs to `dir/filter.log`.
fn start_filter(dir: &Path, args: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("filter.log")).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_sharedefend"))
        .args(["filter", "serve", "--listen", &listen])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let filter = Proc(child);
    wait_until("the filter to answer", Duration::from_secs(15), || {
        !dig(port, &["+tries=1", "ready.probe.invalid", "A"])
            .status
            .is_empty()
    });
    (filter, port)
}

/// What `dig` printed, picked apart.
#[derive(Debug, Default)]
struct Dig {
    status: String,
    flags: Vec<String>,
    answer: Vec<String>,
    additional: Vec<String>,
    ede: Option<String>,
    raw: String,
}

fn dig(port: u16, args: &[&str]) -> Dig {
    let p = port.to_string();
    let mut all = vec![
        "@127.0.0.1",
        "-p",
        &p,
        "+time=2",
        "+tries=1",
        "+nocookie",
        "+nostats",
        "+nocmd",
    ];
    all.extend_from_slice(args);
    let out = Command::new("dig")
        .args(&all)
        .output()
        .unwrap_or_else(|e| panic!("dig: {e} (scripts/test installs bind9-dnsutils)"));
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut d = Dig {
        raw: raw.clone(),
        ..Dig::default()
    };
    let mut section = "";
    for line in raw.lines() {
        if let Some(s) = line.split("status: ").nth(1) {
            d.status = s.split(',').next().unwrap_or("").to_owned();
        } else if let Some(f) = line.strip_prefix(";; flags: ") {
            d.flags = f
                .split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect();
        } else if let Some(e) = line.strip_prefix("; EDE: ") {
            d.ede = Some(e.to_owned());
        } else if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = "additional";
        } else if line.starts_with(";; ") || line.trim().is_empty() {
            section = "";
        } else if !line.starts_with(';') {
            let rr = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match section {
                "answer" => d.answer.push(rr),
                "additional" => d.additional.push(rr),
                _ => {}
            }
        }
    }
    d
}

/// One row of the table: dig arguments, then what must come back.
struct Case {
    args: &'static [&'static str],
    status: &'static str,
    /// Answer records without TTL (`owner type data`).
    answer: &'static [&'static str],
    /// The EDE text's rule part, or `None` for no EDE.
    ede: Option<&'static str>,
    /// A flag that must be set (`tc`), if any.
    flag: Option<&'static str>,
}

const fn case(
    args: &'static [&'static str],
    status: &'static str,
    answer: &'static [&'static str],
    ede: Option<&'static str>,
) -> Case {
    Case {
        args,
        status,
        answer,
        ede,
        flag: None,
    }
}

fn without_ttl(rr: &str) -> String {
    let f: Vec<&str> = rr.split(' ').collect();
    match f.as_slice() {
        [owner, _ttl, _class, rest @ ..] => format!("{owner} {}", rest.join(" ")),
        _ => rr.to_owned(),
    }
}

#[test]
fn rpz_cases_on_the_wire() {
    let dir = workdir("table");
    let (_named, up) = start_named(&dir);
    write(&dir.join("first.rpz"), FIRST_RPZ);
    write(&dir.join("second.rpz"), SECOND_RPZ);
    write(&dir.join("shadow.rpz"), SHADOW_RPZ);
    let upstream = format!("127.0.0.1:{up}");
    let first = dir.join("first.rpz");
    let shadow = format!("{},policy=log-only", dir.join("shadow.rpz").display());
    let second = format!("{},name=second.rpz", dir.join("second.rpz").display());
    let (_filter, port) = start_filter(
        &dir,
        &[
            "--upstream",
            &upstream,
            "--zone-file",
            path(&first),
            "--zone-file",
            &shadow,
            "--zone-file",
            &second,
            "--allow",
            "allowed.up.test",
        ],
    );
    let first_rule = |r: &'static str| Some(r);
    let table = [
        // Not listed: the upstream's answer, no EDE.
        case(
            &["www.up.test", "A"],
            "NOERROR",
            &["www.up.test. A 192.0.2.10"],
            None,
        ),
        case(
            &["alias.up.test", "A"],
            "NOERROR",
            &[
                "alias.up.test. CNAME mid.up.test.",
                "mid.up.test. CNAME www.up.test.",
                "www.up.test. A 192.0.2.10",
            ],
            None,
        ),
        case(&["nothere.up.test", "A"], "NXDOMAIN", &[], None),
        // Each action.
        case(
            &["blocked.up.test", "A"],
            "NXDOMAIN",
            &[],
            first_rule("zone first.rpz rule blocked.up.test"),
        ),
        case(
            &["a.wild.up.test", "A"],
            "NOERROR",
            &[],
            first_rule("zone first.rpz rule *.wild.up.test"),
        ),
        case(
            &["local.up.test", "A"],
            "NOERROR",
            &["local.up.test. A 10.1.2.3"],
            first_rule("zone first.rpz rule local.up.test"),
        ),
        case(
            &["local.up.test", "TXT"],
            "NOERROR",
            &["local.up.test. TXT \"local data\""],
            first_rule("zone first.rpz rule local.up.test"),
        ),
        case(
            &["local.up.test", "AAAA"],
            "NOERROR",
            &[],
            first_rule("zone first.rpz rule local.up.test"),
        ),
        case(
            &["redir.up.test", "A"],
            "NOERROR",
            &[
                "redir.up.test. CNAME garden.up.test.",
                "garden.up.test. A 192.0.2.99",
            ],
            first_rule("zone first.rpz rule redir.up.test"),
        ),
        // Precedence: exact beats wildcard; a wildcard does not cover its apex; the
        // longer wildcard wins (DROP: no answer at all).
        case(
            &["exact.wild.up.test", "A"],
            "NOERROR",
            &["exact.wild.up.test. A 10.9.9.9"],
            first_rule("zone first.rpz rule exact.wild.up.test"),
        ),
        case(
            &["wild.up.test", "A"],
            "NOERROR",
            &["wild.up.test. A 192.0.2.70"],
            None,
        ),
        case(&["x.deep.wild.up.test", "A"], "", &[], None),
        // Zones in order: the first match wins, PASSTHRU included.
        case(
            &["twice.up.test", "A"],
            "NXDOMAIN",
            &[],
            first_rule("zone first.rpz rule twice.up.test"),
        ),
        case(
            &["second-only.up.test", "A"],
            "NXDOMAIN",
            &[],
            first_rule("zone second.rpz rule second-only.up.test"),
        ),
        case(
            &["pass.up.test", "A"],
            "NOERROR",
            &["pass.up.test. A 192.0.2.69"],
            None,
        ),
        // The CNAME chain and the answer's addresses.
        case(
            &["chain.up.test", "A"],
            "NXDOMAIN",
            &["chain.up.test. CNAME tobad.up.test."],
            first_rule("zone first.rpz rule tobad.up.test"),
        ),
        case(
            &["ipbad.up.test", "A"],
            "NXDOMAIN",
            &[],
            first_rule("zone first.rpz rule 32.7.100.51.198.rpz-ip"),
        ),
        case(
            &["ipalias.up.test", "A"],
            "NXDOMAIN",
            &["ipalias.up.test. CNAME ipbad.up.test."],
            first_rule("zone first.rpz rule 32.7.100.51.198.rpz-ip"),
        ),
        // Log-only: counted, not changed.
        case(
            &["shadowed.up.test", "A"],
            "NOERROR",
            &["shadowed.up.test. A 192.0.2.30"],
            None,
        ),
        // The allowlist overrides the zones, below the name too.
        case(
            &["allowed.up.test", "A"],
            "NOERROR",
            &["allowed.up.test. A 192.0.2.31"],
            None,
        ),
        case(
            &["sub.allowed.up.test", "A"],
            "NOERROR",
            &["sub.allowed.up.test. A 192.0.2.32"],
            None,
        ),
        // Without EDNS: the same rewrite, no OPT, no EDE.
        case(&["+noedns", "blocked.up.test", "A"], "NXDOMAIN", &[], None),
        // TCP-only: truncated over UDP, the real answer over TCP.
        Case {
            flag: Some("tc"),
            ..case(&["+ignore", "tcp.up.test", "A"], "NOERROR", &[], None)
        },
        case(
            &["+tcp", "tcp.up.test", "A"],
            "NOERROR",
            &["tcp.up.test. A 192.0.2.40"],
            None,
        ),
        // An answer too large for UDP: TC=1 over UDP, the whole of it over TCP.
        Case {
            flag: Some("tc"),
            ..case(&["+ignore", "big.up.test", "AAAA"], "NOERROR", &[], None)
        },
    ];
    let mut failures = Vec::new();
    for c in &table {
        // Twice: the second answer comes from the cache and must be the same.
        for round in ["fresh", "cached"] {
            let d = dig(port, c.args);
            let answer: Vec<String> = d.answer.iter().map(|r| without_ttl(r)).collect();
            let ede_rule = d
                .ede
                .as_deref()
                .and_then(|e| e.split("(Filtered): (").nth(1))
                .map(|e| e.trim_end_matches(')'));
            let mut problems = Vec::new();
            if d.status != c.status {
                problems.push(format!("status {:?}", d.status));
            }
            if answer != c.answer {
                problems.push(format!("answer {answer:?}"));
            }
            if ede_rule != c.ede {
                problems.push(format!("ede {:?}", d.ede));
            }
            if let Some(f) = c.flag
                && !d.flags.iter().any(|x| x == f)
            {
                problems.push(format!("flags {:?}", d.flags));
            }
            // A rewritten answer carries its zone's SOA in the additional section.
            if let Some(rule) = c.ede {
                let zone = rule.split(' ').nth(1).unwrap_or("");
                if !d
                    .additional
                    .iter()
                    .any(|r| r.starts_with(&format!("{zone}. ")) && r.contains(" SOA "))
                {
                    problems.push(format!("additional {:?}", d.additional));
                }
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{:?} ({round}): {}\n{}",
                    c.args,
                    problems.join(", "),
                    d.raw
                ));
            }
        }
    }
    // The big answer arrives whole over TCP (dig retries on TC by itself).
    let big = dig(port, &["big.up.test", "AAAA"]);
    if big.answer.len() != 60 {
        failures.push(format!(
            "big.up.test over TCP: {} records\n{}",
            big.answer.len(),
            big.raw
        ));
    }
    let log = std::fs::read_to_string(dir.join("filter.log")).unwrap_or_default();
    assert!(
        failures.is_empty(),
        "{}\n--- filter log:\n{log}",
        failures.join("\n")
    );
    // What the log says about the zones, and what it never says: client addresses.
    assert!(
        log.contains("loaded zone first.rpz (12 rules, 1 nsdname/nsip rules not applied"),
        "{log}"
    );
    assert!(log.contains("loaded zone second.rpz (3 rules"), "{log}");
    assert!(!log.contains("client"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn upstream_down_is_servfail() {
    let dir = workdir("down");
    write(&dir.join("first.rpz"), FIRST_RPZ);
    // One upstream refuses (nothing listens on its port), the other never answers.
    let refused = format!("127.0.0.1:{}", free_port());
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let silent_addr = silent
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let (_filter, port) = start_filter(
        &dir,
        &[
            "--upstream",
            &refused,
            "--upstream",
            &silent_addr,
            "--upstream-timeout",
            "300",
            "--zone-file",
            path(&dir.join("first.rpz")),
        ],
    );
    let d = dig(port, &["www.up.test", "A"]);
    assert_eq!(d.status, "SERVFAIL", "{}", d.raw);
    assert!(
        d.ede.as_deref().is_some_and(|e| e.starts_with("22 ")),
        "{}",
        d.raw
    );
    // Blocked names need no upstream.
    let d = dig(port, &["blocked.up.test", "A"]);
    assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);
    drop(silent);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cached_name_is_blocked_as_soon_as_it_is_listed() {
    let dir = workdir("late");
    let (named, up) = start_named(&dir);
    let zone = dir.join("late.rpz");
    let header = "$ORIGIN late.rpz.\n@ SOA localhost. root.localhost. 1 3600 600 86400 60\n";
    write(&zone, &format!("{header}other.up.test CNAME .\n"));
    let upstream = format!("127.0.0.1:{up}");
    let (_filter, port) =
        start_filter(&dir, &["--upstream", &upstream, "--zone-file", path(&zone)]);
    for name in ["late.up.test", "keep.up.test"] {
        let d = dig(port, &[name, "A"]);
        assert_eq!(d.status, "NOERROR", "{}", d.raw);
    }
    // The upstream goes away: cached answers are all that is left.
    drop(named);
    let d = dig(port, &["late.up.test", "A"]);
    assert_eq!(
        d.answer.iter().map(|r| without_ttl(r)).collect::<Vec<_>>(),
        ["late.up.test. A 192.0.2.50"],
        "{}",
        d.raw
    );
    // The rule arrives; the cached answer is not served any more.
    write(&zone, &format!("{header}late.up.test CNAME .\n"));
    wait_until(
        "late.up.test to be blocked",
        Duration::from_secs(10),
        || dig(port, &["late.up.test", "A"]).status == "NXDOMAIN",
    );
    let d = dig(port, &["late.up.test", "A"]);
    assert_eq!(
        d.ede.as_deref(),
        Some("17 (Filtered): (zone late.rpz rule late.up.test)"),
        "{}",
        d.raw
    );
    // Another cached name is still answered.
    let d = dig(port, &["keep.up.test", "A"]);
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    // A zone file that no longer loads leaves the running policy in place.
    write(&zone, "this is ( not a zone\n");
    std::thread::sleep(Duration::from_millis(2_500));
    let d = dig(port, &["late.up.test", "A"]);
    assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);
    let log = std::fs::read_to_string(dir.join("filter.log")).unwrap_or_default();
    assert!(
        log.contains("reload failed: the running policy is kept"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_zone_files_and_configs_are_exit_2_naming_the_place() {
    let dir = workdir("bad");
    let zone = dir.join("broken.rpz");
    write(
        &zone,
        "$ORIGIN x.rpz.\n@ SOA a. b. 1 2 3 4 5\nevil.example CNAME (\n",
    );
    let config = dir.join("filter.toml");
    write(
        &config,
        "upstreams = [\"127.0.0.1:53\"]\nlisten_on = \"127.0.0.1:53\"\n",
    );
    let cases: [(&[&str], &str); 4] = [
        (
            &["--upstream", "127.0.0.1:9", "--zone-file", path(&zone)],
            "broken.rpz: line 3: unbalanced parentheses",
        ),
        (
            &[
                "--upstream",
                "127.0.0.1:9",
                "--zone-file",
                "/nonexistent/zone.rpz",
            ],
            "/nonexistent/zone.rpz: cannot read",
        ),
        (&["--config", path(&config)], "unknown field `listen_on`"),
        (&["--zone-file", path(&zone)], "no upstream"),
    ];
    for (args, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_sharedefend"))
            .args(["filter", "serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
