//! Operational endpoints: liveness, readiness, metrics, and the fallbacks for
//! unknown routes and methods.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::AppError;
use super::App;
use crate::app::ErrorCode;

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub leader_id: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
}

/// Readiness: a leader is known and this node has applied up to the commit
/// index it knows.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(state): State<App>) -> impl IntoResponse {
    let status = state.cluster_status();
    let caught_up = status.applied_index >= status.commit_index;
    let ready = status.leader_id.is_some() && caught_up;
    let body = Readiness {
        ready,
        leader_id: status.leader_id,
        commit_index: status.commit_index,
        applied_index: status.applied_index,
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<App>) -> impl IntoResponse {
    state.record_node_gauges();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.prometheus.render(),
    )
}

pub async fn route_not_found(uri: axum::http::Uri) -> AppError {
    AppError::new(
        ErrorCode::RouteNotFound,
        format!("no route for {}", uri.path()),
    )
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> AppError {
    AppError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
