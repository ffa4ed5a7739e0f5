//! Load shedding. A node serves at most `http.max_in_flight` requests at a
//! time; past that, a new request is refused at once with 503 `overloaded`
//! and `Retry-After`, before it parses a body, signs a token or proposes
//! anything. Under overload the requests already admitted keep their latency
//! and the node keeps its memory, instead of every request slowing down
//! together until clients time out and retry on top of the queue.
//!
//! Operators' routes (`/health`, `/ready`, `/metrics`, `/cluster...`) and
//! the nodes' own `/internal` traffic are never shed: a node must stay
//! observable and manageable when it is busiest.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// Permits for the requests being served.
#[derive(Clone)]
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)))
    }
}

/// Whether `path` is served even when the node is overloaded.
fn never_shed(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
        || path == "/cluster"
        || path.starts_with("/cluster/")
        || path.starts_with("/internal/")
}

/// The middleware: admits the request with a permit, or refuses it.
pub async fn shed(State(in_flight): State<InFlight>, request: Request, next: Next) -> Response {
    if never_shed(request.uri().path()) {
        return next.run(request).await;
    }
    match in_flight.0.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            metrics::counter!("http_requests_shed_total").increment(1);
            ApiError::new(
                "overloaded",
                "the node is serving as many requests as it admits; retry shortly",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{header, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tokio::sync::oneshot;
    use tower::ServiceExt;

    use super::*;

    /// A router whose `/api/v1/slow` and `/metrics` wait for `release`.
    fn app(limit: usize, release: Arc<tokio::sync::Notify>) -> Router {
        let slow = move || {
            let release = release.clone();
            async move {
                release.notified().await;
                "done"
            }
        };
        Router::new()
            .route("/api/v1/slow", get(slow.clone()))
            .route("/api/v1/fast", get(|| async { "fast" }))
            .route("/metrics", get(|| async { "metrics" }))
            .layer(axum::middleware::from_fn_with_state(
                InFlight::new(limit),
                shed,
            ))
    }

    fn get_req(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn past_the_limit_requests_are_refused_at_once_and_admitted_again_when_one_finishes() {
        let release = Arc::new(tokio::sync::Notify::new());
        let app = app(1, release.clone());
        let (started_tx, started) = oneshot::channel();
        let busy = tokio::spawn({
            let app = app.clone();
            async move {
                let fut = app.oneshot(get_req("/api/v1/slow"));
                let _ = started_tx.send(());
                fut.await.unwrap()
            }
        });
        started.await.unwrap();
        // Let the slow request take its permit.
        let refused = loop {
            let r = app.clone().oneshot(get_req("/api/v1/fast")).await.unwrap();
            if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                break r;
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(refused.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "overloaded");

        // Operators' routes are served even now.
        let metrics = app.clone().oneshot(get_req("/metrics")).await.unwrap();
        assert_eq!(metrics.status(), StatusCode::OK);

        release.notify_one();
        assert_eq!(busy.await.unwrap().status(), StatusCode::OK);
        let again = app.oneshot(get_req("/api/v1/fast")).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
    }

    #[test]
    fn operators_and_peers_are_never_shed() {
        for path in [
            "/health",
            "/ready",
            "/metrics",
            "/cluster",
            "/cluster/digest",
            "/internal/blobs/x",
        ] {
            assert!(never_shed(path), "{path}");
        }
        for path in ["/api/v1/checkout", "/auth/login", "/clusterfoo", "/healthz"] {
            assert!(!never_shed(path), "{path}");
        }
    }
}
