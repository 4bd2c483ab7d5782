//! The filter's zone manager following `sharedefend hub serve` itself: AXFR of a
//! feed zone with the partner's TSIG key, an import that the hub announces by NOTIFY
//! and serves by IXFR, a delisting that removes the rule, the saved copy accepted by
//! `named-checkzone`; a wrong key refused with the copy kept; and the hub down at
//! start: the saved copy is loaded and handed over.
//!
//! Everything on 127.0.0.1, free ports, bounded waits; the hub is killed on drop.

#![allow(clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dns::secondary::{Limits, SecondaryZone, parse_tsig_spec};
use filter::{OnExpire, Refreshed, ZoneEvent, ZoneManager, ZonesConfig};

const KEY_NAME: &str = "hub-key";
const KEY_SECRET: &str = "c6fbQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";
const WRONG_SECRET: &str = "AAAAQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";
const ZONE: &str = "phishing.rpz.sharedefend";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sharedefend-fz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 path"))
}

use testkit::free_port;

fn sd(data: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_sharedefend"))
        .env("SHAREDEFEND_DATA", data)
        .env_remove("SHAREDEFEND_POSTGRES")
        .env_remove("SHAREDEFEND_NOW")
        .env("SHAREDEFEND_OPERATOR", "test")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "sharedefend {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn import(dir: &Path, data: &Path, file: &str, names: &[&str]) {
    let f = dir.join(file);
    std::fs::write(&f, names.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    sd(
        data,
        &[
            "import",
            "--source",
            "test-feed",
            "--category",
            "phishing",
            path(&f),
        ],
    );
}

/// Starts `hub serve` on `port` with the filter as a partner that gets NOTIFY on
/// `notify`.
async fn hub(dir: &Path, data: &Path, port: u16, notify: u16) -> Proc {
    let config = dir.join("hub.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[partner]]
name = "filter"
feeds = ["phishing"]
notify = ["127.0.0.1:{notify}"]
tsig = {{ name = "{KEY_NAME}", algorithm = "hmac-sha256", secret = "{KEY_SECRET}" }}
"#
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = std::fs::File::create(dir.join("hub.log")).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_sharedefend"))
        .env("SHAREDEFEND_DATA", data)
        .env_remove("SHAREDEFEND_POSTGRES")
        .env("RUST_LOG", "info")
        .args([
            "hub",
            "serve",
            "--dns-listen",
            &format!("127.0.0.1:{port}"),
            "--config",
            path(&config),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let p = Proc(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until("the hub to listen", Duration::from_secs(15), || {
        std::net::TcpStream::connect(addr).is_ok()
    })
    .await;
    p
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    for _ in 0..10_000 {
        if f() {
            return;
        }
        if start.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

type Events = Arc<Mutex<Vec<ZoneEvent>>>;

fn manager(primary: SocketAddr, secret: &str, state: &Path, events: &Events) -> ZoneManager {
    let events = events.clone();
    ZoneManager::new(
        ZonesConfig {
            zones: vec![SecondaryZone {
                apex: ZONE.into(),
                primary,
                tsig: Some(
                    parse_tsig_spec(&format!("{KEY_NAME}:hmac-sha256:{secret}"))
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
            }],
            state_dir: state.to_owned(),
            on_expire: OnExpire::Keep,
            limits: Limits::default(),
        },
        Arc::new(move |e: &ZoneEvent| {
            events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.clone());
            Ok(())
        }),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn all(events: &Events) -> Vec<ZoneEvent> {
    events.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn owners(v: &[filter::OwnerRecords]) -> Vec<String> {
    v.iter()
        .map(|o| {
            let data: Vec<&str> = o.records.iter().map(|r| r.data.as_str()).collect();
            format!("{} {}", o.owner, data.join(" "))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_follows_the_hub() {
    let dir = workdir("follow");
    let data = dir.join("data");
    let state = dir.join("state");
    import(
        &dir,
        &data,
        "a.txt",
        &["evil-one.example", "evil-two.example"],
    );
    let socket = Arc::new(
        tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let notify = socket.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    let port = free_port();
    let primary = SocketAddr::from(([127, 0, 0, 1], port));
    let hub_proc = hub(&dir, &data, port, notify).await;

    let events: Events = Arc::default();
    let m = manager(primary, KEY_SECRET, &state, &events);
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
        tokio::spawn(async move { m.serve_notify(socket).await })
    };

    wait_until("the AXFR", Duration::from_secs(15), || {
        !all(&events).is_empty()
    })
    .await;
    let file = state.join(format!("{ZONE}.zone"));
    assert_eq!(
        all(&events),
        [ZoneEvent::Full {
            zone: ZONE.into(),
            serial: 1,
            path: file.clone(),
            from_state: false
        }]
    );
    let check = Command::new("named-checkzone")
        .args([ZONE, path(&file)])
        .output()
        .unwrap_or_else(|e| panic!("named-checkzone: {e}"));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        text.contains("\nevil-one.example 300 IN CNAME .\n"),
        "{text}"
    );
    assert!(
        text.contains("\n*.evil-two.example 300 IN CNAME .\n"),
        "{text}"
    );

    // An import: the hub NOTIFYs, the filter pulls the IXFR.
    import(&dir, &data, "b.txt", &["evil-three.example"]);
    wait_until("the IXFR", Duration::from_secs(15), || {
        all(&events).len() >= 2
    })
    .await;
    let got = all(&events);
    let ZoneEvent::Delta { delta, .. } = &got[1] else {
        panic!("{got:?}")
    };
    assert_eq!((delta.from, delta.to), (1, 2));
    assert!(delta.removed.is_empty(), "{delta:?}");
    assert_eq!(
        owners(&delta.added),
        ["*.evil-three.example .", "evil-three.example ."]
    );

    // A delisting: the rule goes.
    sd(&data, &["delist", "evil-one.example", "--reason", "test"]);
    wait_until("the second IXFR", Duration::from_secs(15), || {
        all(&events).len() >= 3
    })
    .await;
    let got = all(&events);
    let ZoneEvent::Delta { delta, .. } = &got[2] else {
        panic!("{got:?}")
    };
    assert_eq!(
        owners(&delta.removed),
        ["*.evil-one.example .", "evil-one.example ."]
    );
    assert!(delta.added.is_empty(), "{delta:?}");
    let st = &m.status()[0];
    assert_eq!(
        (st.serial, st.transfers_full, st.transfers_incremental),
        (Some(3), 1, 2)
    );
    assert!(st.notifies >= 2, "{st:?}");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(!text.contains("evil-one"), "{text}");
    assert!(
        text.contains("\nevil-three.example 300 IN CNAME .\n"),
        "{text}"
    );

    let _ = stop.send(());
    let _ = runner.await;
    listener.abort();

    // The wrong key: refused by the hub, the copy kept.
    let saved = std::fs::read(&file).unwrap_or_default();
    let events: Events = Arc::default();
    let wrong = manager(primary, WRONG_SECRET, &state, &events);
    assert_eq!(wrong.load_saved(), 1);
    let e = wrong.refresh(ZONE).await.err().unwrap_or_default();
    assert!(e.contains("tsig") && e.contains("NOTAUTH"), "{e}");
    assert_eq!(std::fs::read(&file).unwrap_or_default(), saved);

    // The hub down at start: the saved copy is handed over, and stays.
    drop(hub_proc);
    let events: Events = Arc::default();
    let cold = manager(primary, KEY_SECRET, &state, &events);
    assert_eq!(cold.load_saved(), 1);
    assert!(cold.refresh(ZONE).await.is_err());
    assert_eq!(
        all(&events),
        [ZoneEvent::Full {
            zone: ZONE.into(),
            serial: 3,
            path: file.clone(),
            from_state: true
        }]
    );
    assert!(cold.status()[0].applied);

    // Back up: the copy is current, nothing is transferred.
    let _hub = hub(&dir, &data, port, notify).await;
    assert_eq!(cold.refresh(ZONE).await, Ok(Refreshed::UpToDate(3)));
    let log = std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default();
    assert!(!log.contains(KEY_SECRET), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
