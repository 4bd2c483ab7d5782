//! The hub: where evidence becomes published policy.
//!
//! [`Hub`] owns the store and the judgement (analysis settings, the Public Suffix List,
//! the allowlists as loaded from the store) and offers the operations an operator or a
//! partner performs: import a feed, load an allowlist, sweep expired evidence, explain
//! a name, review held batches, delist a name, export a feed. Each operation that can
//! change what is published runs as one store transaction ending in
//! [`engine::recompute`], so the journal is always the truth for publication.

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

use analysis::{Config, Context, Lists};
use indicator::SuffixList;
use store::Store;

pub use explain::{Explanation, ObservationView, RuleView};
pub use export::{ExportError, ExportFormat, export, export_store, zone_name};
pub use ingest::{ImportDefaults, ImportJob, ImportReport, prepare};
pub use ops::{AllowlistOptions, AllowlistReport, SweepReport};
pub use serve_config::ServeConfig;
pub use zones::{FeedDelta, StoreZones, condense, feed_delta};

/// The hub's state: its store and its judgement.
#[derive(Debug)]
pub struct Hub {
    pub store: Store,
    pub config: Config,
    psl: SuffixList,
    lists: Lists,
}

impl Hub {
    /// Opens the hub over `store`, loading the allowlists it holds.
    pub fn open(mut store: Store, config: Config, psl: SuffixList) -> store::Result<Hub> {
        let rows = store.read(|tx| tx.allow_all())?;
        let lists = evidence::lists_from_rows(&rows, config.popular_top);
        Ok(Hub {
            store,
            config,
            psl,
            lists,
        })
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
        let rows = self.store.read(|tx| tx.allow_all())?;
        self.lists = evidence::lists_from_rows(&rows, self.config.popular_top);
        Ok(())
    }

    /// Imports a parsed file (see [`ingest`]).
    pub fn import(
        &mut self,
        job: &ImportJob<'_>,
        parsed: &formats::Parsed,
        now: indicator::Timestamp,
        who: &str,
    ) -> store::Result<ImportReport> {
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
        let batch = prepare(parsed);
        let cx = Context {
            psl: &self.psl,
            lists: &self.lists,
            config: &self.config,
        };
        ingest::import_snapshot(&mut self.store, job, batch, &cx, now, who)
    }

    /// Reads the allowlists again from the store (another process may have loaded
    /// one since this hub opened; a long-running importer calls this before each
    /// import).
    pub fn refresh_lists(&mut self) -> store::Result<()> {
        self.reload_lists()
    }
}
