//! `GET /metrics`: the hub in Prometheus text, from an explicit `prometheus-client`
//! registry, every name `sharedefend_*`.
//!
//! Two kinds of series. Counted here, by this process: API requests and their
//! latency by route (the route's template, never the raw path, so names in paths do
//! not explode the series), API imports by outcome, submitted items by outcome,
//! reports received and refused by the rate limit. Read from the store at each
//! scrape, so they include what other processes did (`sharedefend import`):
//! indicators by decision state, each feed's journal serial and rule count, batches
//! by status, open reports. Read from the pull scheduler's status at each scrape:
//! each scheduled source's fetches, failures (in all and in a row) and last success. The page carries counts only, never a name, token or
//! address.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::{ApiError, HttpState, Routes};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedLabels {
    feed: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The registry and the handles this process updates.
#[derive(Debug)]
pub(super) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    imports: Family<OutcomeLabels, Counter>,
    items: Family<OutcomeLabels, Counter>,
    reports: Family<OutcomeLabels, Counter>,
    indicators: Family<StateLabels, Gauge>,
    serials: Family<FeedLabels, Gauge>,
    rules: Family<FeedLabels, Gauge>,
    batches: Family<StatusLabels, Gauge>,
    open_reports: Gauge,
    pull_failures: Family<SourceLabels, Gauge>,
    pull_failing: Family<SourceLabels, Gauge>,
    pull_attempts: Family<SourceLabels, Gauge>,
    pull_success: Family<SourceLabels, Gauge>,
}

impl Metrics {
    pub(super) fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "sharedefend_api_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "sharedefend_api_request_duration",
            "Time to answer an HTTP request, by route template",
            Unit::Seconds,
            latency.clone(),
        );
        let imports = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sharedefend_api_imports",
            "Submissions through POST /api/indicators, by outcome (published, held, unreadable)",
            imports.clone(),
        );
        let items = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sharedefend_api_items",
            "Items submitted through POST /api/indicators, by outcome (accepted, rejected, held, revoked)",
            items.clone(),
        );
        let reports = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sharedefend_reports",
            "False-positive reports received (stored) or refused by the rate limit (limited)",
            reports.clone(),
        );
        let indicators = Family::<StateLabels, Gauge>::default();
        registry.register(
            "sharedefend_indicators",
            "Indicators by decision state (from the store)",
            indicators.clone(),
        );
        let serials = Family::<FeedLabels, Gauge>::default();
        registry.register(
            "sharedefend_journal_serial",
            "Each feed's journal serial (the SOA serial of its zone)",
            serials.clone(),
        );
        let rules = Family::<FeedLabels, Gauge>::default();
        registry.register(
            "sharedefend_feed_rules",
            "Rules each feed publishes",
            rules.clone(),
        );
        let batches = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "sharedefend_batches",
            "Imported batches by status (all importers, from the store)",
            batches.clone(),
        );
        let open_reports = Gauge::default();
        registry.register(
            "sharedefend_reports_open",
            "False-positive reports waiting for a reviewer",
            open_reports.clone(),
        );
        let pull_failures = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "sharedefend_pull_failures",
            "Failed fetches of each scheduled feed source since it was first pulled",
            pull_failures.clone(),
        );
        let pull_failing = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "sharedefend_pull_consecutive_failures",
            "Failed fetches in a row of each scheduled feed source (0 after a success)",
            pull_failing.clone(),
        );
        let pull_attempts = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "sharedefend_pull_attempts",
            "Fetches of each scheduled feed source since it was first pulled",
            pull_attempts.clone(),
        );
        let pull_success = Family::<SourceLabels, Gauge>::default();
        registry.register_with_unit(
            "sharedefend_pull_last_success",
            "Unix time of each scheduled feed source's last fetch that did not fail",
            Unit::Seconds,
            pull_success.clone(),
        );
        Metrics {
            registry,
            pull_failures,
            pull_failing,
            pull_attempts,
            pull_success,
            requests,
            latency,
            imports,
            items,
            reports,
            indicators,
            serials,
            rules,
            batches,
            open_reports,
        }
    }

    fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    pub(super) fn import(&self, outcome: &str) {
        self.imports
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub(super) fn items(&self, outcome: &str, n: u64) {
        if n > 0 {
            self.items
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.to_owned(),
                })
                .inc_by(n);
        }
    }

    pub(super) fn report(&self, outcome: &str) {
        self.reports
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

pub(super) fn routes(r: Routes) -> Routes {
    r.add(&["get"], "/metrics", get(metrics))
}

/// Counts every request and times it, by the template of the route it matched.
pub(super) async fn track(
    State(state): State<Arc<HttpState>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_ascii_lowercase();
    let started = Instant::now();
    let response = next.run(req).await;
    state.metrics.request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// What a scrape reads from the store.
struct Scraped {
    states: Vec<(String, u64)>,
    feeds: Vec<(String, u32, u64)>,
    batches: Vec<(String, u64)>,
    open_reports: usize,
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Result<Response, ApiError> {
    let scraped = state
        .with_store(|store| {
            store
                .read(|tx| {
                    let mut feeds = Vec::new();
                    for f in tx.feeds()? {
                        let n = tx.feed_rule_count(&f.name)?;
                        feeds.push((f.name, f.serial, n));
                    }
                    Ok(Scraped {
                        states: tx.decision_counts()?,
                        feeds,
                        batches: tx.batch_counts()?,
                        open_reports: tx.reports(Some(store::ReportStatus::Open))?.len(),
                    })
                })
                .map_err(|e| e.to_string())
        })
        .await?;
    let m = &state.metrics;
    m.indicators.clear();
    for (s, n) in scraped.states {
        m.indicators
            .get_or_create(&StateLabels { state: s })
            .set(gauge(n));
    }
    m.serials.clear();
    m.rules.clear();
    for (feed, serial, n) in scraped.feeds {
        let labels = FeedLabels { feed };
        m.serials.get_or_create(&labels).set(i64::from(serial));
        m.rules.get_or_create(&labels).set(gauge(n));
    }
    m.batches.clear();
    for (s, n) in scraped.batches {
        m.batches
            .get_or_create(&StatusLabels { status: s })
            .set(gauge(n));
    }
    m.open_reports
        .set(i64::try_from(scraped.open_reports).unwrap_or(i64::MAX));
    m.pull_failures.clear();
    m.pull_failing.clear();
    m.pull_attempts.clear();
    m.pull_success.clear();
    for p in state.pull_sources() {
        let labels = SourceLabels { source: p.name };
        m.pull_failures
            .get_or_create(&labels)
            .set(gauge(p.failures));
        m.pull_failing
            .get_or_create(&labels)
            .set(i64::from(p.consecutive_failures));
        m.pull_attempts
            .get_or_create(&labels)
            .set(gauge(p.attempts));
        if let Some(t) = p.last_success {
            m.pull_success.get_or_create(&labels).set(t.as_second());
        }
    }
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &m.registry)
        .map_err(|e| ApiError::internal(format!("encoding the metrics: {e}")))?;
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
