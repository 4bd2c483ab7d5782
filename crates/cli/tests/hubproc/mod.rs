//! What the `hub serve` tests share: temp dirs, free loopback ports, child processes
//! killed on drop, bounded waits, running `sharedefend`, and a minimal HTTP/1.1 client
//! over `std::net::TcpStream` (one request per connection; enough for a server that
//! answers with a `Content-Length`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn workdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sharedefend-{tag}-{}", std::process::id()));
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

/// Runs `sharedefend` with the SQLite store `data`.
pub fn sd_output(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sharedefend"))
        .args(args)
        .env("SHAREDEFEND_DATA", data)
        .env_remove("SHAREDEFEND_POSTGRES")
        .env_remove("SHAREDEFEND_NOW")
        .env_remove("SHAREDEFEND_CONFIG")
        .env("SHAREDEFEND_OPERATOR", "test")
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `sharedefend`; requires success; returns standard output.
pub fn sd(data: &Path, args: &[&str]) -> String {
    let out = sd_output(data, args);
    assert!(
        out.status.success(),
        "sharedefend {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Imports `names` as a phishing feed.
pub fn import(dir: &Path, data: &Path, file: &str, names: &[&str]) {
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

/// Starts `sharedefend hub serve ARGS` on the store `data`, logging to `log`.
pub fn serve(data: &Path, args: &[&str], log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_sharedefend"))
        .args(["hub", "serve"])
        .args(args)
        .env("SHAREDEFEND_DATA", data)
        .env_remove("SHAREDEFEND_POSTGRES")
        .env_remove("SHAREDEFEND_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    Proc { child }
}

/// Polls `f` every 100 ms until it holds; panics after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    for _ in 0..1000 {
        if f() {
            return;
        }
        if start.elapsed() > limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// `GET path` on 127.0.0.1:`port` with extra request headers; `None` if the server
/// is not answering (yet).
pub fn try_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<Response> {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    exchange(s, "GET", path, headers, &[])
}

/// `METHOD path` with `headers` and `body` on 127.0.0.1:`port`.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    exchange(s, method, path, headers, body).unwrap_or_else(|| panic!("{method} {path}: no answer"))
}

/// [`request`] from the loopback address `from` (e.g. 127.0.0.2), so a test can
/// tell the client's address from every other address the hub knows.
pub fn request_from(
    from: std::net::Ipv4Addr,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
        socket
            .bind((from, 0).into())
            .unwrap_or_else(|e| panic!("bind {from}: {e}"));
        socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_std()
            .unwrap_or_else(|e| panic!("{e}"))
    });
    stream
        .set_nonblocking(false)
        .unwrap_or_else(|e| panic!("{e}"));
    exchange(stream, method, path, headers, body)
        .unwrap_or_else(|| panic!("{method} {path}: no answer"))
}

/// One HTTP/1.1 request and its answer on `s` (`Connection: close`).
fn exchange(
    mut s: std::net::TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Response> {
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if method != "GET" || !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    // A server may answer (413) before reading a large body, and close.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(raw.get(..split)?).into_owned();
    let body = raw.get(split + 4..)?.to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let r = Response {
        status,
        headers,
        body,
    };
    if let Some(len) = r.header("content-length") {
        assert_eq!(
            len.parse::<usize>().ok(),
            Some(r.body.len()),
            "{path}: body length"
        );
    }
    Some(r)
}

pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    try_get(port, path, headers).unwrap_or_else(|| panic!("GET {path}: no answer"))
}

pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test installs it)"))
}

pub fn dig(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let mut all = vec!["@127.0.0.1", "-p", &p, "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&run("dig", &all).stdout).into_owned()
}
