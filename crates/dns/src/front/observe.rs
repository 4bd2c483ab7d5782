//! What the query path reports about each query, for telemetry: [`Observer`].
//!
//! The front counts its own totals in [`super::FrontStats`]; an operator also wants
//! them split by query type and result, blocks by zone and rule, and the upstreams'
//! latency. Those belong to the filter (Prometheus, the state dir), so the front only
//! reports, once per query and after the answer is decided, what happened — never
//! the client's address or the query name: an observer cannot store what it is not
//! given. The filter installs one with [`super::Front::with_observer`].

use std::time::Duration;

use super::Verdict;

/// What became of one query, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryResult {
    /// An ordinary answer (forwarded or cached, a SERVFAIL, an error for a query
    /// that could not be served) with its RCODE; policy left it alone.
    Rcode(u8),
    /// Rewritten by a policy rule (NXDOMAIN, NODATA, local data, redirect,
    /// TCP-only over UDP).
    Blocked,
    /// A PASSTHRU rule (or the allowlist) matched: answered as it was.
    Passthru,
    /// A DROP rule: no answer sent.
    Dropped,
}

/// Receives the query path's reports. Called on the query path: must be cheap and
/// must not block (no lock shared between threads on every call).
pub trait Observer: Send + Sync + 'static {
    /// A query was answered (or dropped). `qtype` is `None` when the query could not
    /// be read that far. Called once per query.
    fn answered(&self, qtype: Option<u16>, result: QueryResult);

    /// A rule matched a query and was acted on (`verdict.shadow`: a log-only zone,
    /// counted, the answer left alone). Called once per matching query and verdict,
    /// before [`Observer::answered`].
    fn matched(&self, verdict: &Verdict);

    /// An upstream resolution finished after `elapsed` (all upstreams tried in turn;
    /// `ok` false when none answered).
    fn upstream(&self, elapsed: Duration, ok: bool);
}

/// The observer of a front nobody watches.
#[derive(Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn answered(&self, _: Option<u16>, _: QueryResult) {}
    fn matched(&self, _: &Verdict) {}
    fn upstream(&self, _: Duration, _: bool) {}
}
