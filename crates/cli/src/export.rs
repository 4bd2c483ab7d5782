//! `sharedefend export`: a feed's current state in a resolver's format.

use std::process::ExitCode;

use anyhow::Context;
use hub::ExportFormat;

use crate::hubcli::StoreArgs;

/// Write a feed (phishing, malware, c2, scam, all) as RPZ (SOA serial = the feed's
/// journal serial), hosts, domains, dnsmasq, unbound, adblock, csv or urls.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[arg(long, default_value = "all")]
    feed: String,
    /// rpz, hosts, domains, dnsmasq, unbound, adblock, csv, urls.
    #[arg(long, default_value = "rpz")]
    format: String,
    /// Output file (default: standard output). Written to a temporary file and renamed.
    #[arg(short, long)]
    output: Option<std::path::PathBuf>,
    /// TLP clearance of the reader, for the formats that list indicators (urls,
    /// csv): only what some source shared at or below it. The default is what an
    /// anonymous HTTP client gets; rule formats are not cut.
    #[arg(long, default_value = "clear", value_name = "TLP")]
    tlp: indicator::Tlp,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let format = ExportFormat::parse(&args.format).with_context(|| {
        let names: Vec<_> = ExportFormat::ALL.iter().map(|f| f.name()).collect();
        format!(
            "--format: expected one of {}, got {:?}",
            names.join(", "),
            args.format
        )
    })?;
    let mut hub = args.store.open_hub()?;
    match &args.output {
        None => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            hub::export(&mut hub, &args.feed, format, args.tlp, &mut out)?;
        }
        Some(path) => {
            let tmp = path.with_extension("tmp-export");
            let mut file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let serial = hub::export(&mut hub, &args.feed, format, args.tlp, &mut file)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("{}: feed {} serial {serial}", path.display(), args.feed);
        }
    }
    Ok(ExitCode::SUCCESS)
}
