//! `sharedefend hub serve`: the hub as a running service.
//!
//! For now the service is the authoritative DNS primary of the feed zones (AXFR,
//! IXFR, TSIG, NOTIFY; the `dns` crate) over the store. Partners come from a TOML
//! file (`--config`, see `dns::Config`); `--dns-listen` overrides its `listen`.
//! Imports run in other processes (`sharedefend import`), so the server polls the
//! store's serials every 200 ms and NOTIFYs partners on a change. Logs go to standard
//! error (`RUST_LOG=debug|info|warn`, default info); secrets never appear in them.
//! SIGTERM or Ctrl-C stops it cleanly (exit 0).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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
    /// Serve the feeds as RPZ zones by AXFR/IXFR with TSIG, and NOTIFY partners.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address (UDP and TCP) to serve DNS on [default: 127.0.0.1:5353].
    #[arg(long, value_name = "ADDR:PORT")]
    dns_listen: Option<SocketAddr>,
    /// Partners: TOML with `[[partner]]` tables (name, feeds, tsig, notify, allow_ips).
    #[arg(long, value_name = "FILE")]
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

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str::<dns::Config>(&text).with_context(|| format!("{}", path.display()))?
        }
        None => dns::Config::default(),
    };
    config.validate().with_context(|| match &args.config {
        Some(p) => p.display().to_string(),
        None => "config".to_owned(),
    })?;
    let listen = match (args.dns_listen, config.listen) {
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => DEFAULT_DNS_LISTEN.parse()?,
    };
    let store = args.store.open_store()?;
    init_logs();
    let source = Arc::new(hub::StoreZones::new(store));
    let server = dns::Server::new(source, &config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let udp = tokio::net::UdpSocket::bind(listen)
            .await
            .with_context(|| format!("binding udp {listen}"))?;
        let tcp = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding tcp {listen}"))?;
        tracing::info!(%listen, partners = config.partners.len(), "serving DNS");
        server
            .run(udp, tcp, shutdown_signal())
            .await
            .context("dns server")
    })?;
    Ok(ExitCode::SUCCESS)
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
