//! The policy a running filter reads: lock-free loads, atomic swaps.
//!
//! Query threads call [`LivePolicy::load`] (an `arc-swap` load: no lock, no
//! contention with updates) and evaluate against that snapshot for the whole query.
//! Updates — a new zone after AXFR, a delta after IXFR, a new allowlist — build the
//! next snapshot beside the current one and swap it in; writers are serialised by a
//! mutex readers never touch. [`LivePolicy::compact_step`] folds one shard's overlay
//! at a time into its base (see [`crate::RuleSet`]); the filter runs it in the
//! background until it returns `false`, so memory stays near one copy of the rules.

use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, Guard};

use crate::{Delta, DeltaError, Policy, PolicyError, RuleSet};

/// Why an update was refused; the current policy is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("zone {zone:?}: {error}")]
    Delta { zone: String, error: DeltaError },
}

/// The current [`Policy`], swapped atomically.
#[derive(Debug)]
pub struct LivePolicy {
    current: ArcSwap<Policy>,
    writer: Mutex<()>,
}

impl LivePolicy {
    pub fn new(policy: Policy) -> LivePolicy {
        LivePolicy {
            current: ArcSwap::from_pointee(policy),
            writer: Mutex::new(()),
        }
    }

    /// The current snapshot, for one query (lock-free; hold it briefly).
    pub fn load(&self) -> Guard<Arc<Policy>> {
        self.current.load()
    }

    /// The current snapshot, to keep.
    pub fn snapshot(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    fn write(&self) -> MutexGuard<'_, ()> {
        // A writer that panicked left the previous snapshot in place: go on.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the whole policy (a reload of every zone at once).
    pub fn replace(&self, policy: Policy) {
        let _writing = self.write();
        self.current.store(Arc::new(policy));
    }

    /// Replaces zone `index`'s rules (after a full transfer).
    pub fn replace_zone(&self, index: usize, rules: RuleSet) -> Result<(), UpdateError> {
        let _writing = self.write();
        let next = self.current.load().with_zone_rules(index, rules)?;
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// Applies an incremental transfer to zone `index`: all of it or nothing.
    pub fn apply_delta(&self, index: usize, delta: &Delta) -> Result<(), UpdateError> {
        let _writing = self.write();
        let current = self.current.load_full();
        let zone = current
            .zones()
            .get(index)
            .ok_or(PolicyError::NoSuchZone(index))?;
        let rules = zone
            .rules
            .apply_delta(delta)
            .map_err(|error| UpdateError::Delta {
                zone: zone.name.to_string(),
                error,
            })?;
        let next = current.with_zone_rules(index, rules)?;
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// Replaces the local allowlist.
    pub fn set_allowlist(&self, allowlist: RuleSet) {
        let _writing = self.write();
        let next = self.current.load().with_allowlist(allowlist);
        self.current.store(Arc::new(next));
    }

    /// Folds one shard's overlay of one zone into its base and swaps the result in
    /// (lookups answer the same before and after). Returns `true` while work remains.
    pub fn compact_step(&self) -> bool {
        let _writing = self.write();
        let current = self.current.load_full();
        let found = current
            .zones()
            .iter()
            .enumerate()
            .find_map(|(i, z)| z.rules.compact_one().map(|rules| (i, rules)));
        let Some((index, rules)) = found else {
            return false;
        };
        if let Ok(next) = current.with_zone_rules(index, rules) {
            self.current.store(Arc::new(next));
        }
        drop(current);
        self.current
            .load()
            .zones()
            .iter()
            .any(|z| z.rules.overlaid_shards() > 0)
    }
}
