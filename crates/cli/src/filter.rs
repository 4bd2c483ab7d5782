//! `sharedefend filter serve`: the ISP's protective DNS filter as a running service.
//!
//! Answers clients over UDP and TCP on `--listen`, forwards names that are not
//! blocked to the `--upstream` resolvers, caches their answers, and rewrites answers
//! the policy zones (`--zone-file`, in order: first match wins) block, as BIND's RPZ
//! does, with Extended DNS Error 17 naming the zone and rule. `--allow` names are
//! never filtered. Zone and allowlist files are reloaded when they change. Options
//! come from `--config FILE` (TOML, `filter::FilterConfig`) and flags, flags winning.
//! Logs go to standard error (`RUST_LOG`); no client address is ever logged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Run the protective DNS filter.
#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    #[command(subcommand)]
    command: FilterCommand,
}

#[derive(Debug, clap::Subcommand)]
enum FilterCommand {
    /// Serve DNS: forward, cache, and enforce the policy zones.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address (UDP and TCP) to answer on [default: 127.0.0.1:53].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// A resolver to forward to; repeat for more (tried in turn when one fails).
    #[arg(long = "upstream", value_name = "ADDR:PORT")]
    upstreams: Vec<SocketAddr>,
    /// An RPZ zone file; repeat for more, in order of precedence. Options after
    /// commas: `name=NAME` (when the file does not name its zone), `policy=POLICY`
    /// (given, log-only, nxdomain, nodata, passthru, drop, tcp-only, cname:NAME).
    #[arg(long = "zone-file", value_name = "FILE[,name=NAME][,policy=POLICY]")]
    zone_files: Vec<String>,
    /// A name never filtered, with everything below it; repeatable.
    #[arg(long = "allow", value_name = "NAME")]
    allow: Vec<String>,
    /// A file of names never filtered, one per line (`#` comments); repeatable.
    #[arg(long = "allow-file", value_name = "FILE")]
    allow_files: Vec<PathBuf>,
    /// Milliseconds each upstream has to answer before the next is tried [default: 1000].
    #[arg(long, value_name = "MS")]
    upstream_timeout: Option<u64>,
    /// Bytes the answer cache may hold [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    cache_bytes: Option<usize>,
    /// UDP sockets on the port, each read by its own thread [default: one per core].
    #[arg(long, value_name = "N")]
    udp_sockets: Option<usize>,
    /// How UDP is read: `threads` (a blocking loop per socket) or `tokio`.
    #[arg(long, value_name = "MODEL")]
    io: Option<String>,
    /// The policy implementation: `matcher` (default) or `reference` (the hash-map
    /// oracle, for comparisons and benchmarks).
    #[arg(long, value_name = "ENGINE", hide = true)]
    policy_engine: Option<String>,
    /// Configuration file (TOML): listen, upstreams, zone_files, allow, … Flags win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(args: &FilterArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        FilterCommand::Serve(a) => serve(a),
    }
}

fn config(args: &ServeArgs) -> anyhow::Result<filter::FilterConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str::<filter::FilterConfig>(&text)
                .with_context(|| path.display().to_string())?
        }
        None => filter::FilterConfig::default(),
    };
    if args.listen.is_some() {
        config.listen = args.listen;
    }
    if !args.upstreams.is_empty() {
        config.upstreams = args.upstreams.clone();
    }
    config.upstream_timeout_ms = args.upstream_timeout.or(config.upstream_timeout_ms);
    config.cache_bytes = args.cache_bytes.or(config.cache_bytes);
    config.udp_sockets = args.udp_sockets.or(config.udp_sockets);
    config.io = args.io.clone().or(config.io);
    config.allow.extend(args.allow.iter().cloned());
    config.allow_files.extend(args.allow_files.iter().cloned());
    Ok(config)
}

fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = config(args)?;
    let mut settings = config.settings()?;
    if !args.zone_files.is_empty() {
        // Flags replace the config's zones: the order of precedence is one list.
        settings.zone_files = args
            .zone_files
            .iter()
            .map(|s| filter::ZoneFile::parse_spec(s).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?;
    }
    if let Some(e) = &args.policy_engine {
        settings.engine = filter::Engine::parse(e).ok_or_else(|| {
            anyhow::anyhow!("--policy-engine {e:?}: expected matcher or reference")
        })?;
    }
    crate::serve::init_logs();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let filter = filter::Filter::start(settings)?;
        filter.serve(crate::serve::shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}
