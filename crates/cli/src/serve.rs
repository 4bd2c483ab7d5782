//! `sharedefend hub serve`: the hub as a running service.
//!
//! Two fronts over the store on one tokio runtime: the authoritative DNS primary of
//! the feed zones (AXFR, IXFR, TSIG, NOTIFY; the `dns` crate) and the HTTP exports
//! (feed files with ETag, gzip and minisign signatures, journal deltas as JSON;
//! `hub::http`), and the partner API on the same HTTP listener (submissions,
//! explain and search, reports, review, delisting, status, `/metrics`). The
//! configuration is one TOML file (`--config`, see `hub::ServeConfig`); flags
//! override it. The file is watched (every 200 ms, and at once on SIGHUP): a changed
//! partner list, key or API token is in force for the next request, and a file that
//! does not validate is logged and ignored (the running one stays). The signing key
//! is made at first start in the key directory (default: the SQLite data directory).
//! A write through the API is published before it is answered (the DNS front is
//! woken: SOA and NOTIFY at once); imports by other processes (`sharedefend import`)
//! are picked up by both fronts' 200 ms poll of the store's serials. The DNS front
//! NOTIFYs partners on a change and once at start-up, for what changed while it was
//! down. The config's `[[feed_source]]` tables are pulled on their schedules
//! (`hub::pull::Scheduler`, its own store connection; sources added, changed or
//! removed apply on reload). Logs go to standard error
//! (`RUST_LOG=debug|info|warn`, default info); secrets never appear in them.
//! SIGTERM or Ctrl-C stops it cleanly (exit 0).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::hubcli::StoreArgs;

/// Default DNS listening address when neither the flag nor the config names one.
pub const DEFAULT_DNS_LISTEN: &str = "127.0.0.1:5353";

/// Run the hub's services.
#[derive(Debug, clap::Args)]
pub struct HubArgs {
    #[command(subcommand)]
    command: HubCommand,
}

#[derive(Debug, clap::Subcommand)]
enum HubCommand {
    /// Serve the feeds: RPZ zones by AXFR/IXFR with TSIG and NOTIFY, and signed HTTP
    /// exports.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address (UDP and TCP) to serve DNS on [default: 127.0.0.1:5353].
    #[arg(long, value_name = "ADDR:PORT")]
    dns_listen: Option<SocketAddr>,
    /// Address (TCP) to serve the HTTP exports on [default: 127.0.0.1:8053].
    #[arg(long, value_name = "ADDR:PORT")]
    http_listen: Option<SocketAddr>,
    /// Directory of the signing key (made at first start) [default: the --data
    /// directory; required with --postgres unless the config names one].
    #[arg(long, value_name = "DIR")]
    key_dir: Option<PathBuf>,
    /// The service's TOML: `listen`, `[http]` (listen, key_dir), `[[partner]]`
    /// tables (name, feeds, tsig, notify, allow_ips) and `[[feed_source]]` tables
    /// (feeds to pull: name, url, interval, …). Watched: edits apply live.
    #[arg(long, env = "SHAREDEFEND_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(args: &HubArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        HubCommand::Serve(a) => serve(a),
    }
}

pub(crate) fn init_logs() {
    let level = match std::env::var("RUST_LOG").as_deref() {
        Ok("trace") => tracing::Level::TRACE,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("warn") => tracing::Level::WARN,
        Ok("error") => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

fn load_config(path: &Path) -> anyhow::Result<hub::ServeConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    hub::ServeConfig::parse(&text).with_context(|| path.display().to_string())
}

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => load_config(path)?,
        None => hub::ServeConfig::default(),
    };
    let dns_listen = match (args.dns_listen, config.listen) {
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => DEFAULT_DNS_LISTEN.parse()?,
    };
    let http_listen = match (args.http_listen, config.http.listen) {
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => hub::http::DEFAULT_HTTP_LISTEN.parse()?,
    };
    let key_dir = match (&args.key_dir, &config.http.key_dir, &args.store.postgres) {
        (Some(d), _, _) | (None, Some(d), _) => d.clone(),
        (None, None, None) => args.store.data.clone(),
        (None, None, Some(_)) => anyhow::bail!(
            "--key-dir: required with --postgres (or key_dir in the config's [http] table): \
             the directory that keeps the hub's signing key"
        ),
    };
    let store = args.store.open_store()?;
    let http_store = args.store.open_store()?;
    let pull_hub = args.store.open_hub()?;
    let api_hub = args.store.open_hub()?;
    init_logs();
    let (signer, origin) = hub::keys::load_or_create(&key_dir).context("the signing key")?;
    tracing::info!(
        key_id = %signer.id(),
        dir = %key_dir.display(),
        created = origin == hub::keys::Origin::Created,
        "signing key ready"
    );
    let source = Arc::new(hub::StoreZones::new(store));
    let dns_config = config.dns();
    let server = dns::Server::new(source, &dns_config)?;
    // Read by whoever reports status (the status API and metrics); written by the
    // scheduler.
    let pull_status = Arc::new(hub::pull::PullStatus::default());
    let http_state = Arc::new(
        hub::http::HttpState::new(http_store, api_hub, signer, &config.http, &config.partners)?
            .with_dns(server.clone())
            .with_pulls(pull_status.clone()),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let pulls = hub::pull::Scheduler::new(pull_hub, pull_status, "hub-serve");
        pulls.apply(&config.feed_sources);
        // UDP and TCP on one port, also when the port is the kernel's choice.
        let (udp, tcp) = dns::bind_udp_tcp(dns_listen)
            .with_context(|| format!("binding udp and tcp {dns_listen}"))?;
        let dns_listen = udp.local_addr()?;
        let udp = tokio::net::UdpSocket::from_std(udp)?;
        let tcp = tokio::net::TcpListener::from_std(tcp)?;
        let http = tokio::net::TcpListener::bind(http_listen)
            .await
            .with_context(|| format!("binding http {http_listen}"))?;
        let http_addr = http.local_addr()?;
        tracing::info!(listen = %dns_listen, partners = dns_config.partners.len(), "serving DNS");
        tracing::info!(listen = %http_addr, "serving HTTP");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut dns_task =
            tokio::spawn(server.clone().run(udp, tcp, until_stopped(stopped.clone())));
        let mut http_task = tokio::spawn(hub::http::serve(
            http,
            http_state.clone(),
            until_stopped(stopped.clone()),
        ));
        let watcher = args.config.clone().map(|path| {
            tokio::spawn(watch_config(
                path,
                server.clone(),
                http_state.clone(),
                pulls.clone(),
            ))
        });
        let failed = tokio::select! {
            () = shutdown_signal() => None,
            r = &mut dns_task => Some(("dns", r)),
            r = &mut http_task => Some(("http", r)),
        };
        let _ = stop.send(true);
        pulls.stop();
        if let Some(w) = watcher {
            w.abort();
        }
        if let Some((front, r)) = failed {
            dns_task.abort();
            http_task.abort();
            return match r {
                Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("{front} server"))),
                Ok(Ok(())) => Err(anyhow::anyhow!("{front} server stopped")),
                Err(e) => Err(anyhow::anyhow!("{front} server: {e}")),
            };
        }
        // Give open connections a moment to finish, then stop.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = (&mut dns_task).await;
            let _ = (&mut http_task).await;
        })
        .await;
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What identifies a version of the config file: a rename (how `partner` commands and
/// editors write) changes the inode, an edit in place the time or size.
fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some((m.modified().ok()?, m.len(), inode))
}

/// Reloads the partners (DNS keys and API tokens) and feed sources when the config
/// file changes or on SIGHUP. A file that does not validate is reported and the
/// running configuration kept.
async fn watch_config(
    path: PathBuf,
    server: dns::Server,
    http: Arc<hub::http::HttpState>,
    pulls: hub::pull::Scheduler,
) {
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(dns::POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        tokio::select! {
            _ = tick.tick() => {
                let now = stamp(&path);
                if now == last {
                    continue;
                }
                last = now;
                tracing::info!(file = %path.display(), "config file changed; reloading");
            }
            () = hangup => {
                last = stamp(&path);
                tracing::info!(file = %path.display(), "SIGHUP; reloading the config");
            }
        }
        let loaded = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| hub::ServeConfig::parse(&text).map_err(|e| e.to_string()))
            .and_then(|config| {
                server.reload(&config.dns()).map_err(|e| e.to_string())?;
                http.reload_partners(&config.partners);
                pulls.apply(&config.feed_sources);
                Ok(())
            });
        if let Err(error) = loaded {
            tracing::warn!(file = %path.display(), %error, "config not reloaded; the running one stays");
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
