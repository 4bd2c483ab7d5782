//! `sharedefend filter serve`: the ISP's protective DNS filter as a running service.
//!
//! Answers clients over UDP and TCP on `--listen`, forwards names that are not
//! blocked to the `--upstream` resolvers, caches their answers, and rewrites answers
//! the policy zones block, as BIND's RPZ does, with Extended DNS Error 17 naming the
//! zone and rule. Zones are files (`--zone-file`, reloaded when they change) or
//! followed from a primary (`--zone NAME --primary ADDR:PORT [--tsig KEY]`, saved
//! in `--state DIR`), in the order given on the command line: first match wins.
//! `--allow` names are never filtered. Options come from `--config FILE` (TOML,
//! `filter::FilterConfig`) and flags, flags winning. Logs go to standard error
//! (`RUST_LOG`); no client address is ever logged. `--metrics-listen` serves
//! `/metrics` (Prometheus), `--block-page-listen` the page walled-garden zones point
//! at; rule match counts per hour are kept in `--state DIR`.

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
    Serve(Box<ServeArgs>),
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
    /// A zone to follow from a primary by AXFR/IXFR (NOTIFY accepted on
    /// --listen); repeatable, mixed with --zone-file in one order of precedence.
    /// Each --zone takes the --primary (and --tsig) that follow it. Option after a
    /// comma: `policy=POLICY`, as for --zone-file.
    #[arg(long = "zone", value_name = "NAME[,policy=POLICY]")]
    zones: Vec<String>,
    /// The primary of the --zone before it.
    #[arg(long = "primary", value_name = "ADDR:PORT")]
    primaries: Vec<SocketAddr>,
    /// The TSIG key of the --zone before it: NAME:ALG:SECRET (hmac-sha256 or
    /// hmac-sha512, secret in base64). Visible to other local users in the
    /// process list: prefer the config file.
    #[arg(long = "tsig", value_name = "NAME:ALG:SECRET")]
    tsigs: Vec<String>,
    /// State directory: saved copies of followed zones (loaded at start; required
    /// with --zone) and rule match counts per hour in DIR/counts/.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// Serve the block page (HTTP) that `policy=cname` zones point at [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    block_page_listen: Option<SocketAddr>,
    /// The hub's public report endpoint the block page links to, e.g.
    /// https://hub.example/api/reports (the name, zone and rule are appended).
    #[arg(long, value_name = "URL")]
    report_url: Option<String>,
    /// Seconds between writes of the match counts to the state dir [default: 60].
    #[arg(long, value_name = "SECS")]
    counts_flush: Option<u64>,
    /// A followed zone past its SOA expire: `keep` enforcing it (default) or `drop` it.
    #[arg(long, value_name = "keep|drop")]
    on_expire: Option<String>,
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
    /// How UDP is read: `batch` (many datagrams per system call; the default on
    /// Linux), `threads` (one at a time, a blocking loop per socket) or `tokio`.
    #[arg(long, value_name = "MODEL")]
    io: Option<String>,
    /// The policy implementation: `matcher` (default) or `reference` (the hash-map
    /// oracle, for comparisons and benchmarks).
    #[arg(long, value_name = "ENGINE", hide = true)]
    policy_engine: Option<String>,
    /// Configuration file (TOML): listen, upstreams, [[zones]] (file, or name +
    /// primary + tsig), state, on_expire, allow, metrics_listen, … Flags win; any
    /// zone flag replaces the file's zones.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// `matches`: the `filter serve` matches, for the order of repeated flags.
pub fn run(args: &FilterArgs, matches: Option<&clap::ArgMatches>) -> anyhow::Result<ExitCode> {
    match &args.command {
        FilterCommand::Serve(a) => serve(a, matches),
    }
}

/// Where each occurrence of flag `id` stood on the command line.
fn places(matches: Option<&clap::ArgMatches>, id: &str) -> Vec<usize> {
    matches
        .and_then(|m| m.indices_of(id))
        .map(Iterator::collect)
        .unwrap_or_default()
}

/// The zones of the command line in the order given: each `--zone-file`, and each
/// `--zone` with the `--primary` and `--tsig` after it (before the next zone).
fn zones_from_flags(
    args: &ServeArgs,
    matches: Option<&clap::ArgMatches>,
) -> anyhow::Result<Vec<filter::ZoneSource>> {
    let file_at = places(matches, "zone_files");
    let zone_at = places(matches, "zones");
    let primary_at = places(matches, "primaries");
    let tsig_at = places(matches, "tsigs");
    anyhow::ensure!(
        file_at.len() == args.zone_files.len()
            && zone_at.len() == args.zones.len()
            && primary_at.len() == args.primaries.len()
            && tsig_at.len() == args.tsigs.len(),
        "cannot tell the order of the zone flags"
    );
    // The zone (by position in `zone_at`) a --primary or --tsig at `place` belongs to.
    let owner = |place: usize, flag: &str| -> anyhow::Result<usize> {
        zone_at
            .iter()
            .rposition(|&z| z < place)
            .ok_or_else(|| anyhow::anyhow!("{flag} before any --zone: give --zone NAME {flag} …"))
    };
    let mut primary: Vec<Option<SocketAddr>> = vec![None; args.zones.len()];
    for (&place, &addr) in primary_at.iter().zip(&args.primaries) {
        let z = owner(place, "--primary")?;
        if let Some(slot) = primary.get_mut(z) {
            anyhow::ensure!(
                slot.is_none(),
                "--zone {}: two --primary (one primary per zone)",
                args.zones[z]
            );
            *slot = Some(addr);
        }
    }
    let mut tsig: Vec<Option<&str>> = vec![None; args.zones.len()];
    for (&place, key) in tsig_at.iter().zip(&args.tsigs) {
        let z = owner(place, "--tsig")?;
        if let Some(slot) = tsig.get_mut(z) {
            anyhow::ensure!(slot.is_none(), "--zone {}: two --tsig", args.zones[z]);
            *slot = Some(key.as_str());
        }
    }
    let mut ordered: Vec<(usize, filter::ZoneSource)> = Vec::new();
    for (&place, spec) in file_at.iter().zip(&args.zone_files) {
        let file = filter::ZoneFile::parse_spec(spec).map_err(anyhow::Error::msg)?;
        ordered.push((place, filter::ZoneSource::File(file)));
    }
    for (i, (&place, spec)) in zone_at.iter().zip(&args.zones).enumerate() {
        let addr = primary
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| anyhow::anyhow!("--zone {spec}: no --primary ADDR:PORT after it"))?;
        let key = tsig.get(i).copied().flatten();
        let source = filter::ZoneSource::parse_primary(spec, addr, key)
            .map_err(|e| anyhow::anyhow!("--zone {spec}: {e}"))?;
        ordered.push((place, source));
    }
    ordered.sort_by_key(|(place, _)| *place);
    Ok(ordered.into_iter().map(|(_, z)| z).collect())
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
    config.state = args.state.clone().or(config.state);
    config.on_expire = args.on_expire.clone().or(config.on_expire);
    config.metrics_listen = args.metrics_listen.or(config.metrics_listen);
    config.block_page_listen = args.block_page_listen.or(config.block_page_listen);
    config.report_url = args.report_url.clone().or(config.report_url);
    config.counts_flush_secs = args.counts_flush.or(config.counts_flush_secs);
    Ok(config)
}

fn serve(args: &ServeArgs, matches: Option<&clap::ArgMatches>) -> anyhow::Result<ExitCode> {
    let config = config(args)?;
    let mut settings = match &args.config {
        Some(path) => config
            .settings()
            .with_context(|| path.display().to_string())?,
        None => config.settings()?,
    };
    if !args.zone_files.is_empty()
        || !args.zones.is_empty()
        || !args.primaries.is_empty()
        || !args.tsigs.is_empty()
    {
        // Flags replace the config's zones: the order of precedence is one list.
        settings.zones = zones_from_flags(args, matches)?;
    }
    if let Some(e) = &args.policy_engine {
        settings.engine = filter::Engine::parse(e).ok_or_else(|| {
            anyhow::anyhow!("--policy-engine {e:?}: expected matcher or reference")
        })?;
    }
    settings.check()?;
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
