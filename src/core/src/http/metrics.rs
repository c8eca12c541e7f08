//! `/health` and `/metrics` (Prometheus, OpenMetrics text) for the internal listeners.
//!
//! The core's figures are read when scraped (sessions, links, storage latency) or counted in
//! plain atomics on the hot path (stanzas); modules add theirs to `Registrar::metrics`, with
//! [`GaugeFn`] for values they compute on demand (rooms in memory).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::server::Server;
use crate::stanza::Kind;

pub(super) fn router() -> Router<Arc<Server>> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// Stanzas received, by where from and kind; counted by the router.
#[derive(Default)]
pub struct StanzaCounts {
    /// [from clients, from other servers] × [message, presence, iq].
    counts: [[AtomicU64; 3]; 2],
}

impl StanzaCounts {
    pub(crate) fn count(&self, from_remote: bool, kind: Kind) {
        let k = match kind {
            Kind::Message => 0,
            Kind::Presence => 1,
            Kind::Iq => 2,
        };
        self.counts[usize::from(from_remote)][k].fetch_add(1, Ordering::Relaxed);
    }
}

/// A gauge whose value is computed at each scrape.
pub struct GaugeFn<F> {
    name: &'static str,
    help: &'static str,
    value: F,
}

impl<F: Fn() -> i64 + Send + Sync + 'static> GaugeFn<F> {
    pub fn new(name: &'static str, help: &'static str, value: F) -> Box<Self> {
        Box::new(GaugeFn { name, help, value })
    }
}

impl<F> std::fmt::Debug for GaugeFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl<F: Fn() -> i64 + Send + Sync + 'static> Collector for GaugeFn<F> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new((self.value)());
        let metric = encoder.encode_descriptor(self.name, self.help, None, gauge.metric_type())?;
        gauge.encode(metric)
    }
}

/// The storage latency histograms, read from the store at each scrape.
struct StorageLatency(hearth_store::Store);

impl std::fmt::Debug for StorageLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("storage latency")
    }
}

impl Collector for StorageLatency {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let latency = self.0.latency();
        for (name, help, histogram) in [
            (
                "hearth_storage_read_seconds",
                "Time database reads took, waiting for a connection included.",
                &latency.read,
            ),
            (
                "hearth_storage_write_seconds",
                "Time database writes took until committed, queueing included.",
                &latency.write,
            ),
        ] {
            let (sum, count, buckets) = histogram.snapshot();
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            metric.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

/// The core's figures as of now.
fn core_registry(server: &Server) -> Registry {
    let mut registry = Registry::default();
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: usize| {
        let g: Gauge = Gauge::default();
        g.set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(name, help, g);
    };
    let uptime = server.started.elapsed().as_secs() as usize;
    gauge(
        &mut registry,
        "hearth_uptime_seconds",
        "Seconds since hearth started",
        uptime,
    );
    let parked = server.resumable.parked_count();
    gauge(
        &mut registry,
        "hearth_c2s_sessions",
        "Client sessions bound, including those waiting to be resumed",
        server.sessions.count(),
    );
    gauge(
        &mut registry,
        "hearth_c2s_sessions_waiting_for_resumption",
        "Sessions whose connection dropped, kept for resumption (XEP-0198)",
        parked,
    );
    let s2s = server.s2s.counts();
    let links = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
    for state in s2s.outgoing_by_state {
        links.get_or_create(&vec![("state", state)]).inc();
    }
    registry.register(
        "hearth_s2s_outgoing_links",
        "Outgoing server-to-server links, by state",
        links,
    );
    gauge(
        &mut registry,
        "hearth_s2s_incoming_connections",
        "Authenticated incoming server-to-server connections",
        s2s.incoming,
    );
    gauge(
        &mut registry,
        "hearth_s2s_queued_stanzas",
        "Stanzas waiting on outgoing server-to-server links",
        s2s.queued,
    );
    let stanzas = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
    for (from, counts) in ["client", "server"].into_iter().zip(&server.stanzas.counts) {
        for (kind, n) in ["message", "presence", "iq"].into_iter().zip(counts) {
            stanzas
                .get_or_create(&vec![("from", from), ("kind", kind)])
                .inc_by(n.load(Ordering::Relaxed));
        }
    }
    registry.register(
        "hearth_stanzas_received",
        "Stanzas received from clients and other servers",
        stanzas,
    );
    registry.register_collector(Box::new(StorageLatency(server.store.clone())));
    registry
}

async fn metrics(State(server): State<Arc<Server>>) -> impl IntoResponse {
    let mut body = String::new();
    let encoded =
        prometheus_client::encoding::text::encode_registry(&mut body, &core_registry(&server))
            .and_then(|()| {
                prometheus_client::encoding::text::encode_registry(&mut body, &server.regs.metrics)
            })
            .and_then(|()| prometheus_client::encoding::text::encode_eof(&mut body));
    if encoded.is_err() {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics encoding failed\n".to_string(),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// 200 when the database answers within two seconds, 503 otherwise.
async fn health(State(server): State<Arc<Server>>) -> impl IntoResponse {
    let probe = server.store.account_exists("");
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "status": "ok",
                "sessions": server.sessions.count(),
                "uptime_secs": server.started.elapsed().as_secs(),
            })),
        ),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "error", "error": format!("database: {e}") })),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({ "status": "error", "error": "database: no answer within 2 s" }),
            ),
        ),
    }
}
