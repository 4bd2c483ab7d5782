//! The zone manager following a real BIND 9 primary on loopback: AXFR of an RPZ with
//! every action, a dynamic update (nsupdate) that BIND announces by NOTIFY and
//! serves by IXFR from its journal, the saved copy checked by `named-checkzone`; a
//! wrong TSIG key refused with the old zone kept; a primary restarted with an older
//! serial refused; a primary down at start (the saved copy is loaded and enforced);
//! SOA refresh timers without NOTIFY, and expiry (kept, or dropped).
//!
//! Each test starts its own `named` on a free port (`scripts/test` installs `bind9`
//! and `bind9-dnsutils`); every wait is bounded; `named` is killed on drop.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use filter::{OnExpire, Refreshed, ZoneEvent};
use support::*;

const APEX: &str = "rpz.test";

/// The RPZ the primary starts with: every action, and an address trigger.
fn zone_text(serial: u32, refresh: u32, retry: u32, expire: u32) -> String {
    format!(
        "$TTL 60\n\
         @ SOA ns.rpz.test. hostmaster.rpz.test. {serial} {refresh} {retry} {expire} 60\n\
         @ NS localhost.\n\
         evil.example CNAME .\n\
         *.evil.example CNAME *.\n\
         ok.example CNAME rpz-passthru.\n\
         drop.example CNAME rpz-drop.\n\
         tcp.example CNAME rpz-tcp-only.\n\
         walled.example CNAME garden.example.\n\
         local.example A 192.0.2.1\n\
         local.example TXT \"blocked by policy\"\n\
         32.1.2.0.192.rpz-ip CNAME .\n"
    )
}

struct Named {
    _proc: Proc,
    port: u16,
}

impl Named {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A dynamic update, signed with the key.
    fn update(&self, commands: &str) {
        let input = format!(
            "server 127.0.0.1 {}\nzone {APEX}\n{commands}\nsend\n",
            self.port
        );
        let key = format!("hmac-sha256:{KEY_NAME}:{KEY_SECRET}");
        let out = run("nsupdate", &["-y", &key], Some(&input));
        assert!(
            out.status.success(),
            "nsupdate: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn serial(&self) -> Option<u32> {
        let p = self.port.to_string();
        let out = run(
            "dig",
            &[
                "@127.0.0.1",
                "-p",
                &p,
                "+short",
                "+time=1",
                "+tries=1",
                APEX,
                "SOA",
            ],
            None,
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
    }
}

/// Starts `named` as the primary of `rpz.test` from `zone` (on `port`, or a free
/// one), NOTIFYing `notify` when the zone changes.
async fn named(dir: &Path, zone: &str, port: Option<u16>, notify: Option<u16>) -> Named {
    let port = port.unwrap_or_else(free_port);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let d = path(dir);
    std::fs::write(dir.join("rpz.test.db"), zone).unwrap_or_else(|e| panic!("{e}"));
    let also = match notify {
        Some(p) => {
            format!("notify explicit; also-notify {{ 127.0.0.1 port {p} key \"{KEY_NAME}\"; }};")
        }
        None => "notify no;".to_owned(),
    };
    let conf = format!(
        r#"key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{KEY_SECRET}"; }};
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify-delay 0;
}};
controls {{ }};
logging {{
    channel f {{ file "{d}/named.log"; severity info; print-time yes; }};
    category default {{ f; }};
}};
zone "{APEX}" {{
    type primary;
    file "{d}/rpz.test.db";
    allow-transfer {{ key "{KEY_NAME}"; }};
    allow-update {{ key "{KEY_NAME}"; }};
    {also}
}};
"#
    );
    let conf_path = dir.join("named.conf");
    std::fs::write(&conf_path, conf).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new("named")
        .args(["-f", "-c", path(&conf_path)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("named: {e} (scripts/test installs bind9)"));
    let named = Named {
        _proc: Proc(child),
        port,
    };
    wait_until("named to answer SOA", Duration::from_secs(15), || {
        named.serial().is_some()
    })
    .await;
    named
}

fn serial_of(state: &Path) -> String {
    let text = std::fs::read_to_string(state.join("rpz.test.zone")).unwrap_or_default();
    text.lines()
        .find(|l| l.contains(" SOA "))
        .and_then(|l| l.split_whitespace().nth(6))
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axfr_then_notify_and_ixfr_from_bind() {
    let dir = workdir("bind-follow");
    let state = dir.join("state");
    let notify_socket = Arc::new(
        tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let notify_port = notify_socket
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let primary = named(
        &dir.join("named"),
        &zone_text(10, 3600, 600, 86400),
        None,
        Some(notify_port),
    )
    .await;
    let events = Events::default();
    let m = manager(
        vec![zone(APEX, primary.addr(), Some(KEY_SECRET))],
        &state,
        OnExpire::Keep,
        &events,
    );
    assert_eq!(m.load_saved(), 0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let m = m.clone();
        tokio::spawn(async move {
            m.run(async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let listener = {
        let m = m.clone();
        tokio::spawn(async move { m.serve_notify(notify_socket).await })
    };

    // The first refresh at start: AXFR.
    wait_until("the AXFR", Duration::from_secs(15), || {
        !events.all().is_empty()
    })
    .await;
    let file = state.join("rpz.test.zone");
    assert_eq!(
        events.all(),
        [ZoneEvent::Full {
            zone: APEX.into(),
            serial: 10,
            path: file.clone(),
            from_state: false
        }]
    );
    checkzone(APEX, &file);
    assert_eq!(
        rules(&file),
        [
            "*.evil.example Nodata",
            "192.0.2.1/32 Nxdomain",
            "drop.example Drop",
            "evil.example Nxdomain",
            "local.example LocalData([(\"A\", \"192.0.2.1\"), (\"TXT\", \"\\\"blocked by policy\\\"\")])",
            "ok.example Passthru",
            "tcp.example TcpOnly",
            "walled.example Redirect(\"garden.example\")",
        ]
    );

    // A dynamic update: BIND bumps the serial and NOTIFYs; the manager pulls IXFR.
    primary.update(&format!(
        "update add new.example.{APEX}. 60 CNAME .\nupdate delete evil.example.{APEX}. CNAME .\nupdate delete local.example.{APEX}. TXT"
    ));
    wait_until("the IXFR after NOTIFY", Duration::from_secs(15), || {
        events.all().len() >= 2
    })
    .await;
    let all = events.all();
    let ZoneEvent::Delta { zone, delta } = &all[1] else {
        panic!("{all:?}")
    };
    assert_eq!(zone, APEX);
    assert_eq!(delta.from, 10);
    let owners = |v: &[filter::OwnerRecords]| -> Vec<String> {
        v.iter()
            .map(|o| {
                let recs: Vec<String> = o
                    .records
                    .iter()
                    .map(|r| format!("{} {}", r.rtype, r.data))
                    .collect();
                format!("{}: {}", o.owner, recs.join(" | "))
            })
            .collect()
    };
    assert_eq!(
        owners(&delta.removed),
        [
            "evil.example: CNAME .",
            "local.example: A 192.0.2.1 | TXT \"blocked by policy\""
        ]
    );
    assert_eq!(
        owners(&delta.added),
        ["local.example: A 192.0.2.1", "new.example: CNAME ."]
    );
    // The change, read as policy, is what the matcher needs.
    let rule = delta.added[1]
        .policy(APEX)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("a rule"));
    assert_eq!(rule.value, "new.example");
    let status = &m.status()[0];
    assert_eq!(status.serial, primary.serial());
    assert_eq!(
        (status.transfers_full, status.transfers_incremental),
        (1, 1)
    );
    assert!(status.notifies >= 1, "{status:?}");
    checkzone(APEX, &file);
    let now = rules(&file);
    assert!(now.contains(&"new.example Nxdomain".to_owned()), "{now:?}");
    assert!(
        !now.iter().any(|r| r.starts_with("evil.example ")),
        "{now:?}"
    );

    let _ = stop.send(());
    let _ = runner.await;
    listener.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_backwards_serial_and_primary_down_keep_the_saved_zone() {
    let dir = workdir("bind-faults");
    let state = dir.join("state");
    let named_dir = dir.join("named");
    let primary = named(&named_dir, &zone_text(10, 3600, 600, 86400), None, None).await;
    let port = primary.port;

    // A good transfer first, then an update by IXFR: serial 11 saved.
    let events = Events::default();
    let good = manager(
        vec![zone(APEX, primary.addr(), Some(KEY_SECRET))],
        &state,
        OnExpire::Keep,
        &events,
    );
    assert_eq!(
        good.refresh(APEX).await,
        Ok(Refreshed::Full {
            serial: 10,
            records: 10
        })
    );
    primary.update(&format!("update add late.example.{APEX}. 60 CNAME ."));
    let r = good.refresh(APEX).await;
    assert!(
        matches!(
            r,
            Ok(Refreshed::Incremental {
                from: 10,
                serial: 11,
                owners: 1
            })
        ),
        "{r:?}"
    );
    let file = state.join("rpz.test.zone");
    let saved = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}"));

    // The wrong key: refused, the saved zone loaded and kept, nothing changes.
    primary.update(&format!("update add later.example.{APEX}. 60 CNAME ."));
    let events = Events::default();
    let wrong = manager(
        vec![zone(APEX, primary.addr(), Some(WRONG_SECRET))],
        &state,
        OnExpire::Keep,
        &events,
    );
    assert_eq!(wrong.load_saved(), 1);
    let e = wrong.refresh(APEX).await.err().unwrap_or_default();
    assert!(e.contains("tsig"), "{e}");
    assert_eq!(std::fs::read(&file).unwrap_or_default(), saved);
    assert_eq!(
        events.all(),
        [ZoneEvent::Full {
            zone: APEX.into(),
            serial: 11,
            path: file.clone(),
            from_state: true
        }]
    );
    let st = &wrong.status()[0];
    assert!(st.applied && st.last_error.is_some(), "{st:?}");

    // The primary restarted from an older zone (serial 5, journal gone): refused.
    drop(primary);
    for f in ["rpz.test.db.jnl", "named.pid"] {
        let _ = std::fs::remove_file(named_dir.join(f));
    }
    let primary = named(
        &named_dir,
        &zone_text(5, 3600, 600, 86400),
        Some(port),
        None,
    )
    .await;
    assert_eq!(primary.serial(), Some(5));
    let e = good.refresh(APEX).await.err().unwrap_or_default();
    assert!(e.contains("older than ours"), "{e}");
    assert_eq!(good.status()[0].serial_backwards, 1);
    assert_eq!(serial_of(&state), "11");
    assert_eq!(std::fs::read(&file).unwrap_or_default(), saved);

    // The primary down at start: the saved copy is loaded and handed over.
    drop(primary);
    let events = Events::default();
    let cold = manager(
        vec![zone(
            APEX,
            SocketAddr::from(([127, 0, 0, 1], port)),
            Some(KEY_SECRET),
        )],
        &state,
        OnExpire::Keep,
        &events,
    );
    assert_eq!(cold.load_saved(), 1);
    let e = cold.refresh(APEX).await.err().unwrap_or_default();
    assert!(e.contains("connecting"), "{e}");
    assert_eq!(
        events.all(),
        [ZoneEvent::Full {
            zone: APEX.into(),
            serial: 11,
            path: file.clone(),
            from_state: true
        }]
    );
    assert!(cold.status()[0].applied);
    checkzone(APEX, &file);
    assert!(rules(&file).contains(&"late.example Nxdomain".to_owned()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soa_timers_without_notify_then_expiry() {
    let dir = workdir("bind-timers");
    let named_dir = dir.join("named");
    // Refresh 1 s, retry 1 s, expire 4 s.
    let primary = named(&named_dir, &zone_text(20, 1, 1, 4), None, None).await;
    let port = primary.port;
    for (tag, on_expire) in [("keep", OnExpire::Keep), ("drop", OnExpire::Drop)] {
        let state = dir.join(format!("state-{tag}"));
        let events = Events::default();
        let m = manager(
            vec![zone(
                APEX,
                SocketAddr::from(([127, 0, 0, 1], port)),
                Some(KEY_SECRET),
            )],
            &state,
            on_expire,
            &events,
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runner = {
            let m = m.clone();
            tokio::spawn(async move {
                m.run(async {
                    let _ = stopped.await;
                })
                .await
            })
        };
        wait_until("the AXFR", Duration::from_secs(15), || {
            m.status()[0].serial.is_some()
        })
        .await;
        if tag == "keep" {
            // No NOTIFY is configured: the refresh timer finds the update.
            let before = primary.serial().unwrap_or_default();
            primary.update(&format!("update add timer.example.{APEX}. 60 CNAME ."));
            wait_until("the refresh timer", Duration::from_secs(15), || {
                m.status()[0].serial > Some(before)
            })
            .await;
            assert_eq!(m.status()[0].notifies, 0);
            assert!(m.status()[0].transfers_incremental >= 1);
        }
        let _ = stop.send(());
        let _ = runner.await;
    }
    // The primary goes away; each manager restarts from its saved copy and, after
    // the SOA expire (4 s), reports the zone expired; "drop" withdraws it.
    drop(primary);
    for (tag, on_expire) in [("keep", OnExpire::Keep), ("drop", OnExpire::Drop)] {
        let state = dir.join(format!("state-{tag}"));
        let events = Events::default();
        let m = manager(
            vec![zone(
                APEX,
                SocketAddr::from(([127, 0, 0, 1], port)),
                Some(KEY_SECRET),
            )],
            &state,
            on_expire,
            &events,
        );
        assert_eq!(m.load_saved(), 1);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runner = {
            let m = m.clone();
            tokio::spawn(async move {
                m.run(async {
                    let _ = stopped.await;
                })
                .await
            })
        };
        wait_until("the zone to expire", Duration::from_secs(20), || {
            m.expired() == 1 && m.status()[0].refresh_failures >= 1
        })
        .await;
        let st = m.status()[0].clone();
        assert!(st.expired && st.refresh_failures >= 1, "{st:?}");
        let all = events.all();
        match on_expire {
            OnExpire::Keep => {
                assert!(st.applied, "{st:?}");
                assert_eq!(all.len(), 1, "{all:?}");
            }
            OnExpire::Drop => {
                // Withdrawn: either never handed over (already expired when loaded)
                // or handed over and then dropped.
                assert!(!st.applied, "{st:?}");
                assert!(
                    all.is_empty() || matches!(all.last(), Some(ZoneEvent::Dropped { .. })),
                    "{all:?}"
                );
            }
        }
        let _ = stop.send(());
        let _ = runner.await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
