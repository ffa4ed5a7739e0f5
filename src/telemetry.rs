//! Logging, metrics and request instrumentation, set up once per process.
//!
//! Logs: human-readable text or JSON lines (`--log-format json`), filtered by
//! `RUST_LOG` (default `info`). Metrics: a Prometheus recorder; HTTP request
//! counts and latency histograms by route and status are recorded by
//! [`track_http`]; Raft and storage gauges are refreshed on every scrape.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use ecommerce_raft::RaftNode;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global tracing subscriber (first call wins).
pub fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("valid buckets");
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (several nodes in one test
                // process): keep a private one so rendering still works.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Middleware: counts requests and records latency by route and status.
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Refreshes the Raft and storage gauges.
pub fn record_node_gauges(node: &RaftNode) {
    let status = node.status();
    metrics::gauge!("raft_term").set(status.term as f64);
    metrics::gauge!("raft_is_leader").set(if status.leader_id == Some(node.id) {
        1.0
    } else {
        0.0
    });
    metrics::gauge!("raft_leader_id").set(status.leader_id.unwrap_or(0) as f64);
    metrics::gauge!("raft_last_log_index").set(status.last_log_index.unwrap_or(0) as f64);
    metrics::gauge!("raft_commit_index").set(status.commit_index.unwrap_or(0) as f64);
    metrics::gauge!("raft_applied_index").set(status.applied_index.unwrap_or(0) as f64);
    let lag = status
        .commit_index
        .unwrap_or(0)
        .saturating_sub(status.applied_index.unwrap_or(0));
    metrics::gauge!("raft_apply_lag").set(lag as f64);
    metrics::gauge!("raft_snapshot_index").set(status.snapshot_index.unwrap_or(0) as f64);
    metrics::gauge!("raft_purged_index").set(status.purged_index.unwrap_or(0) as f64);
    metrics::gauge!("raft_members").set(status.members.len() as f64);
    let storage = node.storage();
    for (name, property) in [
        ("rocksdb_live_data_bytes", "rocksdb.estimate-live-data-size"),
        ("rocksdb_sst_files_bytes", "rocksdb.total-sst-files-size"),
        ("rocksdb_memtable_bytes", "rocksdb.cur-size-all-mem-tables"),
        ("rocksdb_estimated_keys", "rocksdb.estimate-num-keys"),
    ] {
        if let Some(v) = storage.property_sum(property) {
            metrics::gauge!(name).set(v as f64);
        }
    }
}
