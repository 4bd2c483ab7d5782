//! Options every hub command shares: where the store is, and what time it is.
//!
//! The embedded SQLite store lives in `--data DIR` (env `SHAREDEFEND_DATA`); a
//! production hub names its PostgreSQL with `--postgres PARAMS` (env
//! `SHAREDEFEND_POSTGRES`). `--now` (env `SHAREDEFEND_NOW`) pins the clock for tests
//! and replays.

use std::path::PathBuf;

use anyhow::Context;
use hub::Hub;
use indicator::{SuffixList, Timestamp};
use store::Store;

/// Where the hub's store is.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Directory of the embedded SQLite store (created if missing).
    #[arg(
        long,
        env = "SHAREDEFEND_DATA",
        default_value = "sharedefend-data",
        global = true
    )]
    pub data: PathBuf,
    /// PostgreSQL connection (`host=… port=… user=… dbname=…` or a URL); overrides --data.
    #[arg(long, env = "SHAREDEFEND_POSTGRES", global = true)]
    pub postgres: Option<String>,
    /// A newer public_suffix_list.dat to use instead of the compiled-in copy.
    #[arg(long, env = "SHAREDEFEND_PSL", global = true)]
    pub psl: Option<PathBuf>,
    /// Pretend it is this time (RFC 3339), for tests and replays.
    #[arg(long, env = "SHAREDEFEND_NOW", hide = true, global = true)]
    pub now: Option<Timestamp>,
    /// Who is acting, for the audit log.
    #[arg(
        long,
        env = "SHAREDEFEND_OPERATOR",
        default_value = "cli",
        global = true
    )]
    pub operator: String,
}

impl StoreArgs {
    pub fn open_store(&self) -> anyhow::Result<Store> {
        match &self.postgres {
            Some(params) => Store::open_postgres(params).context("opening the PostgreSQL store"),
            None => Store::open_sqlite(&self.data)
                .with_context(|| format!("opening the store in {}", self.data.display())),
        }
    }

    pub fn open_hub(&self) -> anyhow::Result<Hub> {
        let psl = match &self.psl {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                std::borrow::Cow::Owned(
                    SuffixList::parse(&text).with_context(|| format!("{}", path.display()))?,
                )
            }
            None => std::borrow::Cow::Borrowed(SuffixList::builtin()),
        };
        Ok(Hub::open_with(
            self.open_store()?,
            analysis::Config::default(),
            psl,
        )?)
    }

    pub fn now(&self) -> Timestamp {
        self.now.unwrap_or_else(Timestamp::now)
    }
}
