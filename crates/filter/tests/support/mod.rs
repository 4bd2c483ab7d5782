//! What the zone tests share: temporary directories, free loopback ports, child
//! processes killed on drop, a zone sink that records events, and bounded waits.

#![allow(dead_code, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dns::secondary::{Limits, SecondaryZone, parse_tsig_spec};
use filter::{OnExpire, ZoneEvent, ZoneManager, ZoneSink, ZonesConfig};

/// The bench's test-only key (`../shared/bench/configs/xfr/README.md`). Not secret.
pub const KEY_NAME: &str = "hub-key";
pub const KEY_SECRET: &str = "c6fbQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";
/// Right name, wrong secret.
pub const WRONG_SECRET: &str = "AAAAQQ9fTG5/edBR03J/GkFP5Jn7Vp7yGVpK168IYCI=";

/// A child process killed on drop.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn workdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sharedefend-filter-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 path"))
}

/// A loopback port free for UDP and TCP (see `testkit`).
pub fn free_port() -> u16 {
    testkit::free_port()
}

pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test installs it)"));
    if let Some(text) = stdin
        && let Some(mut input) = child.stdin.take()
    {
        input
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    child.stdin.take();
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

/// Every event the manager handed over, in order.
#[derive(Debug, Default, Clone)]
pub struct Events(pub Arc<Mutex<Vec<ZoneEvent>>>);

impl Events {
    pub fn sink(&self) -> Arc<dyn ZoneSink> {
        let events = self.0.clone();
        Arc::new(move |e: &ZoneEvent| {
            events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.clone());
            Ok(())
        })
    }

    pub fn all(&self) -> Vec<ZoneEvent> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub fn zone(apex: &str, primary: SocketAddr, secret: Option<&str>) -> SecondaryZone {
    SecondaryZone {
        apex: apex.into(),
        primary,
        tsig: secret.map(|s| {
            parse_tsig_spec(&format!("{KEY_NAME}:hmac-sha256:{s}"))
                .unwrap_or_else(|e| panic!("{e}"))
        }),
    }
}

pub fn manager(
    zones: Vec<SecondaryZone>,
    state: &Path,
    on_expire: OnExpire,
    events: &Events,
) -> ZoneManager {
    let limits = Limits {
        connect: Duration::from_secs(3),
        message: Duration::from_secs(10),
        max_records: 10_000_000,
    };
    ZoneManager::new(
        ZonesConfig {
            zones,
            state_dir: state.to_owned(),
            on_expire,
            limits,
        },
        events.sink(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `f` every 100 ms until it holds; panics after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
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

/// The saved copy passes BIND's `named-checkzone`.
pub fn checkzone(apex: &str, file: &Path) {
    let out = run("named-checkzone", &[apex, path(file)], None);
    assert!(
        out.status.success(),
        "named-checkzone {apex} {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rules our own RPZ reader finds in a saved copy, as `value action` lines.
pub fn rules(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{e}"));
    let parsed = formats::readers::rpz::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let mut out: Vec<String> = parsed
        .records
        .iter()
        .map(|r| {
            let action = r
                .meta
                .as_ref()
                .and_then(|m| m.rpz.as_ref())
                .map(|p| format!("{:?}", p.action))
                .unwrap_or_default();
            format!("{} {action}", r.value)
        })
        .collect();
    out.sort();
    out
}
