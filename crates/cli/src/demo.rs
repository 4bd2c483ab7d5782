//! `sharedefend demo`: the whole system on one machine in one command, for a first
//! look. It makes a hub with an SQLite store in a fresh directory, loads the sample
//! data the binary carries (`crates/cli/demo/`: 300 hosts from URLhaus, 60 allowlist
//! names), issues a demo API token, and starts `hub serve` and `filter serve` (the
//! filter following the hub's phishing zone by AXFR/IXFR and NOTIFY) as child
//! processes of this same binary, with a stand-in upstream resolver inside this
//! process (`dns::serve_stub`: every A is 192.0.2.1, so it works offline). Once the
//! filter blocks, it prints what to try — a blocked and an unblocked `dig`, the API
//! with the token and a `curl` that submits a new name. Ctrl-C (or SIGTERM) stops
//! both children with SIGTERM and removes the directory unless `--dir` named it.
//! Everything listens on loopback only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The sample indicators (CC0-1.0, see `crates/cli/demo/README.md`).
const INDICATORS: &str = include_str!("../demo/indicators.txt");
/// The sample allowlist (MIT, see `crates/cli/demo/README.md`).
const ALLOWLIST: &str = include_str!("../demo/allowlist.txt");

/// Where the filter answers when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5300";
/// Where the hub's HTTP API answers when `--http-listen` is not given.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8053";
/// Where the filter serves its block page when `--block-page-listen` is not given.
pub const DEFAULT_BLOCK_PAGE_LISTEN: &str = "127.0.0.1:8054";
/// Where the hub serves its zones when `--hub-dns-listen` is not given.
pub const DEFAULT_HUB_DNS_LISTEN: &str = "127.0.0.1:5354";
/// The zone the filter follows.
const ZONE: &str = "phishing.rpz.sharedefend";
/// A name that is not blocked (answered by the stand-in upstream).
const UNBLOCKED: &str = "www.example.org";
/// The name the printed `curl` submits.
const NEW_NAME: &str = "new-phish.example";
/// How long a start-up step may take before the demo gives up.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Run a hub and a filter following it, with sample data, on loopback.
///
/// Prints a blocked and an unblocked `dig`, the API URL with a demo token, and a
/// `curl` that submits a name the filter then blocks. Ctrl-C stops everything. Port
/// 0 in any address picks a free port.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the filter answers DNS (UDP and TCP).
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Where the hub's HTTP API and exports answer.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_HTTP_LISTEN)]
    http_listen: SocketAddr,
    /// Where the filter serves its block page (HTTP; the blocked name is read from
    /// the `Host` header).
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_BLOCK_PAGE_LISTEN)]
    block_page_listen: SocketAddr,
    /// Where the hub serves its zones (AXFR/IXFR) to the filter.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_HUB_DNS_LISTEN)]
    hub_dns_listen: SocketAddr,
    /// Keep the store, config, saved zone and logs in DIR (made if missing; kept on
    /// exit) [default: a fresh temporary directory, removed on exit].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// A child `sharedefend` stopped with SIGTERM (then killed) when dropped.
struct Service {
    what: &'static str,
    child: Child,
    log: PathBuf,
}

impl Service {
    fn spawn(what: &'static str, dir: &Path, log: &str, args: &[&str]) -> anyhow::Result<Service> {
        let log = dir.join(log);
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = sharedefend(dir)?
            .args(args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        Ok(Service { what, child, log })
    }

    /// `Some(message)` if it has exited.
    fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Some(format!(
            "{} exited ({status}):\n{}",
            self.what,
            tail.join("\n")
        ))
    }

    /// SIGTERM, then up to 10 s for it to finish, then SIGKILL. True if it exited
    /// by itself with status 0 (or from the terminal's SIGINT).
    fn stop(&mut self) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.success();
        }
        if let Some(pid) = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// This binary, on the demo's store, without the caller's store or config.
fn sharedefend(dir: &Path) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("finding the sharedefend binary")?;
    let mut cmd = Command::new(exe);
    cmd.env("SHAREDEFEND_DATA", dir.join("data"))
        .env_remove("SHAREDEFEND_POSTGRES")
        .env_remove("SHAREDEFEND_CONFIG")
        .env("SHAREDEFEND_OPERATOR", "demo")
        .env("RUST_LOG", "info");
    Ok(cmd)
}

/// Runs `sharedefend ARGS` to completion; its standard output.
fn step(dir: &Path, what: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = sharedefend(dir)?
        .args(args)
        .output()
        .with_context(|| what.to_owned())?;
    anyhow::ensure!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `addr`, with port 0 replaced by a port free for both UDP and TCP (the DNS
/// listeners need both; the HTTP ones ignore the UDP side).
fn pick(addr: SocketAddr, flag: &str) -> anyhow::Result<SocketAddr> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "{flag} {addr}: the demo listens on loopback only"
    );
    if addr.port() != 0 {
        return Ok(addr);
    }
    let (udp, _tcp) = dns::bind_udp_tcp(addr).with_context(|| format!("{flag} {addr}"))?;
    Ok(udp.local_addr()?)
}

/// The body of `GET path` on the hub's HTTP front, if it answers 200.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// Polls `f` every 100 ms for up to [`START_LIMIT`], failing early when a service
/// exits.
fn wait(
    what: &str,
    services: &mut [&mut Service],
    mut f: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < START_LIMIT {
        if f() {
            return Ok(());
        }
        for s in services.iter_mut() {
            if let Some(m) = s.exited() {
                anyhow::bail!("waiting for {what}: {m}");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("{what}: not within {START_LIMIT:?}")
}

/// Removes the temporary directory when the demo ends.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (dir, _cleanup) = match &args.dir {
        Some(d) => (d.clone(), TempDir(None)),
        None => {
            let d = std::env::temp_dir().join(format!("sharedefend-demo-{}", std::process::id()));
            (d.clone(), TempDir(Some(d)))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let listen = pick(args.listen, "--listen")?;
    let http = pick(args.http_listen, "--http-listen")?;
    let hub_dns = pick(args.hub_dns_listen, "--hub-dns-listen")?;
    let block_page = pick(args.block_page_listen, "--block-page-listen")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // The stand-in upstream: answers A and AAAA with documentation addresses.
    let upstream_socket = runtime
        .block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))
        .context("binding the stand-in upstream")?;
    let upstream = upstream_socket.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    runtime.spawn(dns::serve_stub(upstream_socket, async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    }));

    // The sample data and the partners.
    eprintln!(
        "sharedefend demo: loading the sample data into {}",
        dir.display()
    );
    let indicators = dir.join("sample-indicators.txt");
    let allowlist = dir.join("sample-allowlist.txt");
    std::fs::write(&indicators, INDICATORS).context("writing the sample indicators")?;
    std::fs::write(&allowlist, ALLOWLIST).context("writing the sample allowlist")?;
    let p = |p: &Path| p.to_string_lossy().into_owned();
    step(
        &dir,
        "loading the sample allowlist",
        &["allowlist", "load", "--name", "demo-allow", &p(&allowlist)],
    )?;
    step(
        &dir,
        "importing the sample indicators",
        &[
            "import",
            "--source",
            "demo-feed",
            "--trust",
            "0.9",
            "--category",
            "phishing",
            &p(&indicators),
        ],
    )?;
    let config = dir.join("hub.toml");
    let _ = std::fs::remove_file(&config);
    let notify = listen.to_string();
    step(
        &dir,
        "adding the filter as a partner",
        &[
            "partner",
            "add",
            "demo-filter",
            "--config",
            &p(&config),
            "--no-tsig",
            "--feeds",
            "phishing",
            "--allow-ip",
            "127.0.0.1",
            "--notify",
            &notify,
        ],
    )?;
    step(
        &dir,
        "adding the demo API partner",
        &[
            "partner",
            "add",
            "demo",
            "--config",
            &p(&config),
            "--no-tsig",
            "--roles",
            "contributor,consumer,reviewer",
            "--trust",
            "0.9",
            "--tlp",
            "amber",
        ],
    )?;
    let token = step(
        &dir,
        "issuing the demo token",
        &["partner", "token", "demo", "--config", &p(&config)],
    )?
    .trim()
    .to_owned();

    // The hub, then the filter following it.
    let mut hub = Service::spawn(
        "hub serve",
        &dir,
        "hub.log",
        &[
            "hub",
            "serve",
            "--config",
            &p(&config),
            "--dns-listen",
            &hub_dns.to_string(),
            "--http-listen",
            &http.to_string(),
        ],
    )?;
    wait("the hub's HTTP API", &mut [&mut hub], || {
        http_get(http, "/feeds/pubkey").is_some()
    })?;
    let published = http_get(http, "/feeds/phishing.txt").unwrap_or_default();
    let blocked = published
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('/') && !l.starts_with('*'))
        .map(str::to_owned)
        .context("the hub published none of the sample names (see hub.log)")?;
    let mut filter = Service::spawn(
        "filter serve",
        &dir,
        "filter.log",
        &[
            "filter",
            "serve",
            "--listen",
            &listen.to_string(),
            "--udp-sockets",
            "1",
            "--upstream",
            &upstream.to_string(),
            "--zone",
            ZONE,
            "--primary",
            &hub_dns.to_string(),
            "--state",
            &p(&dir.join("filter-state")),
            "--block-page-listen",
            &block_page.to_string(),
            "--report-url",
            &format!("http://{http}/api/reports"),
        ],
    )?;
    wait(
        "the filter to block the sample",
        &mut [&mut hub, &mut filter],
        || {
            runtime
                .block_on(dns::probe_rcode(listen, &blocked))
                .as_deref()
                == Some("NXDOMAIN")
        },
    )?;

    let port = listen.port();
    let ip = listen.ip();
    let api = format!("http://{http}/api");
    println!();
    println!("sharedefend demo is running: a hub and a filter following its zone {ZONE}.");
    println!("Data, config and logs: {}", dir.display());
    println!();
    println!("Blocked (NXDOMAIN, a name from the sample feed):");
    println!("  dig @{ip} -p {port} {blocked}");
    println!("Not blocked (answered by the built-in upstream with 192.0.2.1):");
    println!("  dig @{ip} -p {port} {UNBLOCKED}");
    println!("The partner API (OpenAPI at {api}/openapi.json), demo token:");
    println!("  API_URL={api}");
    println!("  TOKEN={token}");
    println!("Submit a new name, then see it blocked:");
    println!(
        "  curl -s -H \"Authorization: Bearer {token}\" -H 'Content-Type: application/json' \
         -d '[{{\"value\": \"{NEW_NAME}\", \"tlp\": \"clear\"}}]' '{api}/indicators?category=phishing'"
    );
    println!("  dig @{ip} -p {port} {NEW_NAME}");
    println!(
        "The block page (where a walled-garden zone, policy=cname, sends browsers; it reads the name from Host):"
    );
    println!("  curl -s -H 'Host: {blocked}' http://{block_page}/");
    println!("Status (feeds, serials): curl -s -H \"Authorization: Bearer {token}\" {api}/status");
    println!();
    println!("Ctrl-C stops everything.");
    let _ = std::io::stdout().flush();

    // Until Ctrl-C or SIGTERM, or a child's death.
    let died = runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                () = crate::serve::shutdown_signal() => return None,
                _ = tick.tick() => {
                    if let Some(m) = hub.exited().or_else(|| filter.exited()) {
                        return Some(m);
                    }
                }
            }
        }
    });
    let _ = stop_tx.send(true);
    let filter_ok = filter.stop();
    let hub_ok = hub.stop();
    runtime.shutdown_timeout(Duration::from_secs(2));
    if let Some(m) = died {
        anyhow::bail!("{m}");
    }
    anyhow::ensure!(
        filter_ok && hub_ok,
        "the filter or the hub did not stop cleanly (see {})",
        dir.display()
    );
    eprintln!("sharedefend demo: stopped");
    Ok(ExitCode::SUCCESS)
}
