//! The hub: where evidence becomes published policy.
//!
//! [`Hub`] owns the store and the judgement (analysis settings, the Public Suffix List,
//! the allowlists as loaded from the store) and offers the operations an operator or a
//! partner performs: import a feed, load an allowlist, sweep expired evidence, explain
//! a name, review held batches, delist a name, export a feed. Each operation that can
//! change what is published runs as one store transaction ending in
//! [`engine::recompute`], so the journal is always the truth for publication.

pub mod access;
pub mod engine;
pub mod evidence;
mod explain;
mod export;
pub mod http;
pub mod ingest;
pub mod keys;
mod ops;
pub mod partners;
pub mod pull;
pub mod serve_config;
mod zones;

use std::borrow::Cow;

use analysis::{Config, Context, Lists};
use indicator::SuffixList;
use store::Store;

pub use explain::{Explanation, ObservationView, RuleView, stored_tlp};
pub use export::{ExportError, ExportFormat, export, export_store, zone_name};
pub use ingest::{ImportDefaults, ImportJob, ImportReport, prepare};
pub use ops::{AllowlistOptions, AllowlistReport, NewReportText, SweepReport};
pub use serve_config::ServeConfig;
pub use zones::{FeedDelta, StoreZones, condense, feed_delta};

/// The hub's state: its store and its judgement.
#[derive(Debug)]
pub struct Hub {
    pub store: Store,
    pub config: Config,
    /// Borrowed when it is the compiled-in list (parsed once per process, never
    /// copied: a copy cost a tenth of an `explain` command).
    psl: Cow<'static, SuffixList>,
    lists: Lists,
    /// The store's allowlist version `lists` was built from (see
    /// [`store::Tx::allow_version`]); -1 when it must be reloaded.
    lists_version: i64,
}

impl Hub {
    /// Opens the hub over `store`, loading the allowlists it holds.
    pub fn open(store: Store, config: Config, psl: SuffixList) -> store::Result<Hub> {
        Hub::open_with(store, config, Cow::Owned(psl))
    }

    /// [`Hub::open`] with the suffix list borrowed or owned (`Cow::Borrowed(
    /// SuffixList::builtin())` for the compiled-in one).
    pub fn open_with(
        store: Store,
        config: Config,
        psl: Cow<'static, SuffixList>,
    ) -> store::Result<Hub> {
        let mut hub = Hub {
            store,
            config,
            psl,
            lists: Lists::new(),
            lists_version: -1,
        };
        hub.reload_lists()?;
        Ok(hub)
    }

    pub fn context(&self) -> Context<'_> {
        Context {
            psl: &self.psl,
            lists: &self.lists,
            config: &self.config,
        }
    }

    pub fn lists(&self) -> &Lists {
        &self.lists
    }

    fn reload_lists(&mut self) -> store::Result<()> {
        let (rows, version) = self
            .store
            .read(|tx| Ok((tx.allow_all()?, tx.allow_version()?)))?;
        self.lists = evidence::lists_from_rows(&rows, self.config.popular_top);
        self.lists_version = version;
        Ok(())
    }

    /// Reloads the allowlists if the store's changed since they were read (another
    /// process loaded a list or delisted a name). A long-running hub (`hub serve`)
    /// calls it before each judgement, so it never publishes what a list loaded
    /// meanwhile protects. One cheap read when nothing changed.
    pub fn refresh_lists(&mut self) -> store::Result<bool> {
        let version = self.store.read(|tx| tx.allow_version())?;
        if version == self.lists_version {
            return Ok(false);
        }
        self.reload_lists()?;
        Ok(true)
    }

    /// Imports a parsed file (see [`ingest`]).
    pub fn import(
        &mut self,
        job: &ImportJob<'_>,
        parsed: &formats::Parsed,
        now: indicator::Timestamp,
        who: &str,
    ) -> store::Result<ImportReport> {
        self.refresh_lists()?;
        let batch = prepare(parsed);
        let cx = Context {
            psl: &self.psl,
            lists: &self.lists,
            config: &self.config,
        };
        ingest::import(&mut self.store, job, batch, &cx, now, who)
    }

    /// Imports a parsed full snapshot of the job's source: what the source listed
    /// before and `parsed` does not list loses the source's observation (see
    /// [`ingest::import_snapshot`]).
    pub fn import_snapshot(
        &mut self,
        job: &ImportJob<'_>,
        parsed: &formats::Parsed,
        now: indicator::Timestamp,
        who: &str,
    ) -> store::Result<ImportReport> {
        self.refresh_lists()?;
        let batch = prepare(parsed);
        let cx = Context {
            psl: &self.psl,
            lists: &self.lists,
            config: &self.config,
        };
        ingest::import_snapshot(&mut self.store, job, batch, &cx, now, who)
    }
}
