//! `sharedefend demo` as a user runs it: start it, read the instructions it prints,
//! run them — the blocked `dig` (NXDOMAIN), the unblocked one (the stand-in
//! upstream's 192.0.2.1), the printed `curl` that submits a new name through the API,
//! then `dig` until that name is blocked, the block page's `curl` — and stop it with SIGINT, which must end
//! it with exit 0 and no child left. Real `dig` and `curl`; every port is a free one
//! on 127.0.0.1 (`--listen 127.0.0.1:0` …); bounded waits.

#![allow(clippy::print_stderr)]

mod hubproc;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hubproc::{path, workdir};

/// The demo process, killed if the test fails before SIGINT.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn dig(line: &str) -> String {
    // `dig @127.0.0.1 -p PORT NAME` as printed, with +short or +noall +comments added.
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    let out = Command::new("dig")
        .args(&args)
        .args(["+time=2", "+tries=1"])
        .output()
        .unwrap_or_else(|e| panic!("dig: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rcode(line: &str) -> String {
    dig(line)
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_demo_runs_as_printed_and_stops_on_ctrl_c() {
    let dir = workdir("demo");
    let child = Command::new(env!("CARGO_BIN_EXE_sharedefend"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--hub-dns-listen",
            "127.0.0.1:0",
            "--block-page-listen",
            "127.0.0.1:0",
            "--dir",
            path(&dir.join("demo")),
        ])
        .env_remove("SHAREDEFEND_DATA")
        .env_remove("SHAREDEFEND_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut demo = Demo(child);
    let stdout = demo.0.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let started = Instant::now();
    while !printed
        .iter()
        .any(|l: &String| l.contains("Ctrl-C stops everything"))
    {
        let left = Duration::from_secs(120).saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(e) => panic!(
                "the demo's instructions ({e}); so far:\n{}",
                printed.join("\n")
            ),
        }
    }
    let text = printed.join("\n");
    let after = |label: &str| -> String {
        let at = printed
            .iter()
            .position(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"));
        printed
            .get(at + 1)
            .map(|l| l.trim().to_owned())
            .unwrap_or_else(|| panic!("nothing after {label:?} in:\n{text}"))
    };
    let blocked = after("Blocked");
    let unblocked = after("Not blocked");
    assert!(blocked.starts_with("dig @127.0.0.1 -p "), "{text}");

    assert_eq!(rcode(&blocked), "NXDOMAIN", "{blocked}");
    assert_eq!(rcode(&unblocked), "NOERROR", "{unblocked}");
    assert_eq!(dig(&format!("{unblocked} +short")).trim(), "192.0.2.1");

    // The printed curl, run by a shell as a user would paste it.
    let at = printed
        .iter()
        .position(|l| l.starts_with("Submit a new name"))
        .unwrap_or_else(|| panic!("no submission in:\n{text}"));
    let curl = printed[at + 1].trim().to_owned();
    let then_dig = printed[at + 2].trim().to_owned();
    assert!(
        curl.starts_with("curl ") && then_dig.starts_with("dig "),
        "{text}"
    );
    assert_eq!(
        rcode(&then_dig),
        "NOERROR",
        "blocked before it was submitted"
    );
    let out = Command::new("sh")
        .args(["-c", &curl])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(answer["counts"]["accepted"], 1, "{answer}");
    // Published before the answer; the filter has it by NOTIFY and IXFR.
    let started = Instant::now();
    let mut last = String::new();
    for _ in 0..100 {
        last = rcode(&then_dig);
        if last == "NXDOMAIN" || started.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(last, "NXDOMAIN", "the submitted name is not blocked");

    // The printed block page request: the page names the blocked name.
    let page_cmd = after("The block page");
    assert!(page_cmd.starts_with("curl "), "{text}");
    let name = blocked.rsplit(' ').next().unwrap_or_default();
    let out = Command::new("sh")
        .args(["-c", &page_cmd])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains(name) && page.contains("/api/reports?name="),
        "{page}"
    );

    // Ctrl-C: exit 0, the hub and the filter gone.
    let pid = i32::try_from(demo.0.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .unwrap_or_else(|| panic!("no pid"));
    rustix::process::kill_process(pid, rustix::process::Signal::INT)
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = demo.0.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the demo did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    let hub_log = std::fs::read_to_string(dir.join("demo/hub.log")).unwrap_or_default();
    let filter_log = std::fs::read_to_string(dir.join("demo/filter.log")).unwrap_or_default();
    assert!(!hub_log.contains("panicked") && !filter_log.contains("panicked"));
    // The DNS port is free again: the filter is gone.
    assert!(
        rcode(&blocked).is_empty(),
        "something still answers on the filter's port"
    );
}
