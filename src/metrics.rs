//! Prometheus metrics: one registry per server (not a global one, so the test servers of one
//! process count apart), recorded into by every layer above and encoded for `/metrics`.
//!
//! On the hot paths a recording is one atomic add (or, for a latency, one uncontended lock):
//! every label set is known in advance, so its series is created here once and kept as a
//! handle instead of being looked up by its labels per request. Labels never hold anything
//! a client chooses (no operation names, no user ids), so the number of series is fixed.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The media type of [`Metrics::encode`]'s text (OpenMetrics, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label set of static names and values.
type Labels<const N: usize> = [(&'static str, &'static str); N];

/// The operation a GraphQL request ran, as a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
    /// The document did not parse, or selected no operation.
    Unknown,
}

impl OperationKind {
    const ALL: [OperationKind; 4] = [
        OperationKind::Query,
        OperationKind::Mutation,
        OperationKind::Subscription,
        OperationKind::Unknown,
    ];

    /// The label value (and what the request log shows).
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Query => "query",
            OperationKind::Mutation => "mutation",
            OperationKind::Subscription => "subscription",
            OperationKind::Unknown => "unknown",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<Option<OperationType>> for OperationKind {
    fn from(ty: Option<OperationType>) -> Self {
        match ty {
            Some(OperationType::Query) => OperationKind::Query,
            Some(OperationType::Mutation) => OperationKind::Mutation,
            Some(OperationType::Subscription) => OperationKind::Subscription,
            None => OperationKind::Unknown,
        }
    }
}

/// How a GraphQL request ended, as a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Executed without errors.
    Ok,
    /// Executed, with errors in the response (a field failed, access was refused).
    Error,
    /// Refused before execution: unparsable, invalid, malformed parameters.
    BadRequest,
    /// Refused before execution by a size, depth, complexity or count limit.
    LimitExceeded,
    /// Refused before execution: no valid credentials.
    Unauthenticated,
    /// Refused before execution by the per-user mutation rate limit.
    RateLimited,
    /// Refused because the server failed (e.g. the database was unreachable).
    Internal,
    /// An automatic persisted query whose hash was not known yet: the client resends it
    /// with its query (a normal step of the protocol, not a failure).
    PersistedQueryNotFound,
}

impl Outcome {
    const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::BadRequest,
        Outcome::LimitExceeded,
        Outcome::Unauthenticated,
        Outcome::RateLimited,
        Outcome::Internal,
        Outcome::PersistedQueryNotFound,
    ];

    /// The label value (and what the request log shows).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::BadRequest => "bad_request",
            Outcome::LimitExceeded => "limit_exceeded",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::RateLimited => "rate_limited",
            Outcome::Internal => "internal",
            Outcome::PersistedQueryNotFound => "persisted_query_not_found",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which limit refused a request (`chatql_rate_limited_total{limit}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The per-user mutation rate limit (HTTP 429, or `RATE_LIMITED` on a socket).
    Mutations,
    /// Too many WebSockets awaiting `connection_init` (HTTP 429 before the upgrade).
    WsPending,
}

impl Limit {
    fn index(self) -> usize {
        match self {
            Limit::Mutations => 0,
            Limit::WsPending => 1,
        }
    }
}

/// How an upload's bytes ended, as a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Received and stored.
    Stored,
    /// Over a size or pixel limit.
    TooLarge,
    /// A type not accepted, or not the one it was sent as.
    UnsupportedType,
    /// The body broke off, or the store failed.
    Failed,
}

impl UploadOutcome {
    const ALL: [UploadOutcome; 4] = [
        UploadOutcome::Stored,
        UploadOutcome::TooLarge,
        UploadOutcome::UnsupportedType,
        UploadOutcome::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            UploadOutcome::Stored => "stored",
            UploadOutcome::TooLarge => "too_large",
            UploadOutcome::UnsupportedType => "unsupported_type",
            UploadOutcome::Failed => "failed",
        }
    }
}

/// What the database pool holds, read when `/metrics` is scraped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool may open.
    pub max: usize,
    /// Connections open now.
    pub open: usize,
    /// Open connections not checked out.
    pub idle: usize,
    /// Tasks waiting for a connection.
    pub waiting: usize,
}

/// Latency buckets in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The metrics of one server; cheap to clone (every clone records into the same series).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    /// By operation, then outcome.
    requests: [[Counter; Outcome::ALL.len()]; OperationKind::ALL.len()],
    latency: [Histogram; OperationKind::ALL.len()],
    ws_connections: Gauge,
    subscriptions: Gauge,
    events_published: Family<Labels<1>, Counter>,
    events_delivered: Counter,
    events_written_ahead: Counter,
    /// By whether the rendering was shared (`shared`) or made (`executed`).
    event_renders: [Counter; 2],
    resyncs: Counter,
    rate_limited: [Counter; 2],
    uploads: [Counter; UploadOutcome::ALL.len()],
    upload_bytes: Counter,
    /// Thumbnails made (`made`) or given up (`failed`).
    thumbnails: [Counter; 2],
    pool_max: Gauge,
    pool_connections: [Gauge; 2],
    pool_waiting: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every series of chatql in it, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chatql");

        let requests_family = Family::<Labels<2>, Counter>::default();
        let requests = OperationKind::ALL.map(|op| {
            Outcome::ALL.map(|outcome| {
                requests_family.get_or_create_owned(&[
                    ("operation", op.as_str()),
                    ("outcome", outcome.as_str()),
                ])
            })
        });
        registry.register(
            "http_requests",
            "GraphQL operations over HTTP (each of a batch counts), by operation type and outcome",
            requests_family,
        );

        let latency_family =
            Family::<Labels<1>, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let latency = OperationKind::ALL
            .map(|op| latency_family.get_or_create_owned(&[("operation", op.as_str())]));
        registry.register_with_unit(
            "http_request_duration",
            "Time from receiving a GraphQL operation over HTTP to having its answer, by operation type",
            Unit::Seconds,
            latency_family,
        );

        let ws_connections = Gauge::default();
        registry.register(
            "ws_connections",
            "Open GraphQL WebSockets (authenticated or awaiting connection_init)",
            ws_connections.clone(),
        );
        let subscriptions = Gauge::default();
        registry.register(
            "subscriptions_active",
            "Operations running on WebSockets (subscriptions, and queries until answered)",
            subscriptions.clone(),
        );

        let events_published = Family::<Labels<1>, Counter>::default();
        registry.register(
            "events_published",
            "Events fanned out to this process's subscribers (committed here or received from other instances), by kind",
            events_published.clone(),
        );
        let events_delivered = Counter::default();
        registry.register(
            "events_delivered",
            "Live events handed to a subscription (one per subscriber that receives it)",
            events_delivered.clone(),
        );
        let events_written_ahead = Counter::default();
        registry.register(
            "events_written_ahead",
            "Live events a chat's stage wrote to a subscription's socket itself, the subscription's task not woken (part of events_delivered)",
            events_written_ahead.clone(),
        );
        let renders_family = Family::<Labels<1>, Counter>::default();
        let event_renders = [("by", "executed"), ("by", "shared")]
            .map(|label| renders_family.get_or_create_owned(&[label]));
        registry.register(
            "event_renders",
            "Live event renderings: a selection executed, ahead of the feeds or by a subscription for itself (executed), or a subscription shown the result made for its operation already (shared)",
            renders_family,
        );
        let resyncs = Counter::default();
        registry.register(
            "resyncs",
            "ResyncRequired sent to subscriptions (they fell behind or the cross-instance feed dropped)",
            resyncs.clone(),
        );

        let rate_limited_family = Family::<Labels<1>, Counter>::default();
        let rate_limited = [("limit", "mutations"), ("limit", "ws_pending")]
            .map(|label| rate_limited_family.get_or_create_owned(&[label]));
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit: mutations per user per minute, WebSockets awaiting connection_init",
            rate_limited_family,
        );

        let uploads_family = Family::<Labels<1>, Counter>::default();
        let uploads = UploadOutcome::ALL
            .map(|outcome| uploads_family.get_or_create_owned(&[("outcome", outcome.as_str())]));
        registry.register(
            "uploads",
            "Attachment uploads received (multipart files and two-step PUTs), by outcome",
            uploads_family,
        );
        let upload_bytes = Counter::default();
        registry.register_with_unit(
            "upload",
            "Bytes of uploads stored (before deduplication)",
            Unit::Bytes,
            upload_bytes.clone(),
        );
        let thumbnails_family = Family::<Labels<1>, Counter>::default();
        let thumbnails = [("outcome", "made"), ("outcome", "failed")]
            .map(|label| thumbnails_family.get_or_create_owned(&[label]));
        registry.register(
            "thumbnails",
            "Image thumbnails made off the request path, or given up (unreadable, too slow)",
            thumbnails_family,
        );

        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max",
            "The most database connections the pool may open",
            pool_max.clone(),
        );
        let pool_family = Family::<Labels<1>, Gauge>::default();
        let pool_connections = [("state", "in_use"), ("state", "idle")]
            .map(|label| pool_family.get_or_create_owned(&[label]));
        registry.register(
            "db_pool_connections",
            "Open database connections, checked out (in_use) or not (idle)",
            pool_family,
        );
        let pool_waiting = Gauge::default();
        registry.register(
            "db_pool_waiting",
            "Tasks waiting for a database connection",
            pool_waiting.clone(),
        );

        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                ws_connections,
                subscriptions,
                events_published,
                events_delivered,
                events_written_ahead,
                event_renders,
                resyncs,
                rate_limited,
                uploads,
                upload_bytes,
                thumbnails,
                pool_max,
                pool_connections,
                pool_waiting,
            }),
        }
    }

    /// Counts one GraphQL operation over HTTP and its latency.
    pub fn http_request(&self, operation: OperationKind, outcome: Outcome, took: Duration) {
        let inner = &self.inner;
        inner.requests[operation.index()][outcome.index()].inc();
        inner.latency[operation.index()].observe(took.as_secs_f64());
    }

    /// Counts an open WebSocket until the guard is dropped.
    pub fn ws_connection(&self) -> GaugeGuard {
        GaugeGuard::new(&self.inner.ws_connections)
    }

    /// Counts a running WebSocket operation until the guard is dropped.
    pub fn subscription(&self) -> GaugeGuard {
        GaugeGuard::new(&self.inner.subscriptions)
    }

    /// Counts an event of `kind` fanned out to this process's subscribers. Looked up by
    /// its label (a read lock and a hash of a short string): once per event published,
    /// not per subscriber, so it is noise next to the transaction that produced it.
    pub fn event_published(&self, kind: &'static str) {
        self.inner
            .events_published
            .get_or_create(&[("kind", kind)])
            .inc();
    }

    /// Counts a live event handed to a subscription.
    pub fn event_delivered(&self) {
        self.inner.events_delivered.inc();
    }

    /// Counts `count` deliveries a chat's stage wrote itself, each with the rendering it
    /// shared (one shard's pass over its feeds: see `events::routes`).
    pub fn events_written_ahead(&self, count: u64) {
        self.inner.events_delivered.inc_by(count);
        self.inner.events_written_ahead.inc_by(count);
        // As `event_rendered(true)` counts it: the rendering was shared.
        self.inner.event_renders[usize::from(true)].inc_by(count);
    }

    /// Counts a live event's rendering: `shared` when a subscription reused the output
    /// made for its operation (ahead of the feeds, or by another subscription), else an
    /// execution of the selection.
    pub fn event_rendered(&self, shared: bool) {
        self.inner.event_renders[usize::from(shared)].inc();
    }

    /// Counts a `ResyncRequired` sent to a subscription.
    pub fn resync_sent(&self) {
        self.inner.resyncs.inc();
    }

    /// Counts a request refused by `limit`.
    pub fn rate_limited(&self, limit: Limit) {
        self.inner.rate_limited[limit.index()].inc();
    }

    /// Counts an upload's end, and its bytes when stored.
    pub fn upload(&self, outcome: UploadOutcome, bytes: u64) {
        let index = UploadOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        self.inner.uploads[index].inc();
        if outcome == UploadOutcome::Stored {
            self.inner.upload_bytes.inc_by(bytes);
        }
    }

    /// Counts a thumbnail made (`true`) or given up.
    pub fn thumbnail(&self, made: bool) {
        self.inner.thumbnails[usize::from(!made)].inc();
    }

    /// The exposition text, with the pool's gauges set from `pool` first.
    pub fn encode(&self, pool: PoolStatus) -> String {
        let inner = &self.inner;
        inner.pool_max.set(gauge_value(pool.max));
        let [in_use, idle] = &inner.pool_connections;
        in_use.set(gauge_value(pool.open.saturating_sub(pool.idle)));
        idle.set(gauge_value(pool.idle));
        inner.pool_waiting.set(gauge_value(pool.waiting));
        let mut text = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &inner.registry);
        text
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Holds one unit of a gauge (an open socket, a running operation) until dropped.
pub struct GaugeGuard {
    gauge: Gauge,
}

impl GaugeGuard {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self {
            gauge: gauge.clone(),
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_exposed_from_the_start_and_moves() {
        let metrics = Metrics::new();
        let before = metrics.encode(PoolStatus::default());
        assert!(
            before.contains(
                r#"chatql_http_requests_total{operation="mutation",outcome="rate_limited"} 0"#
            ),
            "{before}"
        );
        metrics.http_request(OperationKind::Query, Outcome::Ok, Duration::from_millis(3));
        let socket = metrics.ws_connection();
        metrics.event_published("message_added");
        let after = metrics.encode(PoolStatus {
            max: 8,
            open: 3,
            idle: 1,
            waiting: 0,
        });
        for line in [
            r#"chatql_http_requests_total{operation="query",outcome="ok"} 1"#,
            r#"chatql_http_request_duration_seconds_bucket{le="0.005",operation="query"} 1"#,
            "chatql_ws_connections 1",
            r#"chatql_events_published_total{kind="message_added"} 1"#,
            r#"chatql_db_pool_connections{state="in_use"} 2"#,
            "chatql_db_pool_max 8",
        ] {
            assert!(after.lines().any(|l| l == line), "no `{line}` in\n{after}");
        }
        drop(socket);
        assert!(
            metrics
                .encode(PoolStatus::default())
                .contains("chatql_ws_connections 0")
        );
    }
}
