//! Admission and load shedding: what a request must get through before its
//! handler runs.
//!
//! 1. **Its body is read whole first**, within `http.body_read_timeout_ms`
//!    (else 408 `request_timeout`, and the connection is closed) and
//!    `http.max_body_bytes` (else 413 `payload_too_large`), then handed to
//!    the handler from memory.
//! 2. **Then it takes a permit**: a node serves at most `http.max_in_flight`
//!    requests at a time; past that, a request is refused at once with 503
//!    `overloaded` and `Retry-After`, before it signs a token or proposes
//!    anything. Under overload the requests already admitted keep their
//!    latency and the node keeps its memory, instead of every request slowing
//!    down together until clients time out and retry on top of the queue.
//!
//! Why the permit comes after the body, rather than a cap on connections per
//! IP: a permit stands for work the node does, and a client trickling its body
//! makes the node do none, so it must not hold one. When the permit was taken
//! first, 256 connections sending a login body a byte at a time held every
//! permit, and every other client got 503 for as long as they liked. A cap per
//! IP stops that attack only from one address (not from 256), and refuses
//! honest clients behind one NAT or proxy. What it costs: bodies being read
//! are in memory before admission, each at most `http.max_body_bytes`, and
//! only for as long as the body-read timeout; a slow client holds a connection
//! and the bytes it actually sent, nothing else.
//!
//! The deadline on the whole body is here because tower-http's
//! `RequestBodyTimeoutLayer` (also installed, see `api::service`) bounds only
//! the pause between two pieces of a body: every byte restarts it, so a
//! trickle never trips it.
//!
//! One exception: image uploads (`POST /api/v1/media`, up to
//! `media.max_upload_bytes`) are streamed by their handler, which refuses
//! anyone but a vendor or an admin before it reads a byte; so only those can
//! hold a permit with a slow upload, and for at most `media.upload_timeout_ms`.
//!
//! Never shed: `/health`, `/ready`, `/metrics`, cluster administration
//! (`/cluster...`, each route checks its own credential): a node must stay
//! observable and manageable when it is busiest. `GET /cluster/digest` hashes the whole state, so it is never shed
//! only when it carries the operator token; an admin's call takes a permit.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::Semaphore;

use super::auth::OPERATOR_TOKEN;
use super::error::AppError;
use super::timeouts;
use crate::app::ErrorCode;
use crate::auth::Auth;
use crate::config::HttpSettings;

/// Routes (method, matched path) whose handler reads and bounds the body
/// itself, as a stream.
const STREAMED_BODIES: &[(Method, &str)] = &[(Method::POST, "/api/v1/media")];

/// What admission needs: the permits, the body limits, and the operator
/// token to recognise (through [`Auth`]).
#[derive(Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    auth: Arc<Auth>,
    max_body_bytes: usize,
    body_read_timeout: Duration,
}

impl Admission {
    pub fn new(http: &HttpSettings, auth: Arc<Auth>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(http.max_in_flight)),
            auth,
            max_body_bytes: http.max_body_bytes,
            body_read_timeout: Duration::from_millis(http.body_read_timeout_ms),
        }
    }

    /// Whether `request` is served even when the node is overloaded.
    fn never_shed(&self, request: &Request) -> bool {
        let path = request.uri().path();
        match path {
            "/health" | "/ready" | "/metrics" => true,
            "/cluster/digest" => request
                .headers()
                .get(OPERATOR_TOKEN)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|token| self.auth.is_operator_token(token)),
            _ => path == "/cluster" || path.starts_with("/cluster/"),
        }
    }

    /// `request` with its body read into memory, or the error to answer.
    async fn read_body(&self, request: Request) -> Result<Request, Response> {
        let (parts, body) = request.into_parts();
        let too_large = || {
            let mut response = AppError::new(
                ErrorCode::PayloadTooLarge,
                "the body is larger than this node accepts",
            )
            .into_response();
            // The rest of the body is not read: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        };
        // A declared length over the limit is refused before reading a byte.
        if body.size_hint().lower() > self.max_body_bytes as u64 {
            return Err(too_large());
        }
        let read = Limited::new(body, self.max_body_bytes).collect();
        match tokio::time::timeout(self.body_read_timeout, read).await {
            Ok(Ok(collected)) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
            Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
            Err(_) => Err(timeouts::body_too_slow(self.body_read_timeout)),
            Ok(Err(e)) if timeouts::is_body_timeout(e.as_ref()) => {
                Err(timeouts::body_too_slow(self.body_read_timeout))
            }
            // The client went away or sent a broken encoding: nobody to tell much.
            Ok(Err(e)) => Err(AppError::new(
                ErrorCode::InvalidBody,
                format!("the body could not be read: {e}"),
            )
            .into_response()),
        }
    }
}

/// Whether the handler of `request` streams its body itself.
fn streams_body(request: &Request) -> bool {
    let Some(path) = request.extensions().get::<MatchedPath>() else {
        return false;
    };
    STREAMED_BODIES
        .iter()
        .any(|(method, p)| method == request.method() && *p == path.as_str())
}

/// The middleware: reads the body, then serves the request with a permit,
/// without one if it is never shed, or refuses it.
pub async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    let request = if streams_body(&request) {
        request
    } else {
        match admission.read_body(request).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    };
    if admission.never_shed(&request) {
        return next.run(request).await;
    }
    match admission.permits.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            metrics::counter!("http_requests_shed_total").increment(1);
            AppError::new(
                ErrorCode::Overloaded,
                "the node is serving as many requests as it admits; retry shortly",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use axum::Router;
    use bytes::Bytes;
    use futures::SinkExt;
    use tokio::sync::oneshot;
    use tower::ServiceExt;

    use super::*;
    use crate::config::{AuthSettings, SecretString, Settings};

    const OPERATOR: &str = "unit-test-operator-token-0123456789";

    fn admission(limit: usize, body_read_timeout: Duration) -> Admission {
        let mut http = Settings::default().http;
        http.max_in_flight = limit;
        http.body_read_timeout_ms = body_read_timeout.as_millis() as u64;
        let auth = Auth::new(&AuthSettings {
            operator_token: Some(SecretString(OPERATOR.into())),
            argon2_memory_kib: 8 * 1024,
            argon2_iterations: 1,
            ..AuthSettings::default()
        })
        .unwrap();
        Admission::new(&http, Arc::new(auth))
    }

    /// A router whose `/api/v1/slow`, `/metrics` and `/cluster/digest` wait for
    /// `release`; `/auth/login` echoes its body.
    fn app(admission: Admission, release: Arc<tokio::sync::Notify>) -> Router {
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
            .route("/cluster/digest", get(|| async { "digest" }))
            .route("/auth/login", post(|body: Bytes| async move { body }))
            .route("/metrics", get(|| async { "metrics" }))
            .layer(axum::middleware::from_fn_with_state(admission, admit))
    }

    fn get_req(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    /// Starts a `/api/v1/slow` request on `app` and returns once it holds its permit.
    async fn hold_a_permit(app: &Router) -> tokio::task::JoinHandle<Response> {
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
        loop {
            let r = app.clone().oneshot(get_req("/api/v1/fast")).await.unwrap();
            if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                return busy;
            }
            tokio::task::yield_now().await;
        }
    }

    async fn json(response: Response) -> serde_json::Value {
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn past_the_limit_requests_are_refused_at_once_and_admitted_again_when_one_finishes() {
        let release = Arc::new(tokio::sync::Notify::new());
        let app = app(admission(1, Duration::from_secs(10)), release.clone());
        let busy = hold_a_permit(&app).await;
        let refused = app.clone().oneshot(get_req("/api/v1/fast")).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        assert_eq!(json(refused).await["code"], "overloaded");

        // Operators' routes are served even now.
        let metrics = app.clone().oneshot(get_req("/metrics")).await.unwrap();
        assert_eq!(metrics.status(), StatusCode::OK);

        release.notify_one();
        assert_eq!(busy.await.unwrap().status(), StatusCode::OK);
        let again = app.oneshot(get_req("/api/v1/fast")).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn the_permit_is_taken_after_the_body_so_slow_bodies_hold_none() {
        let release = Arc::new(tokio::sync::Notify::new());
        let timeout = Duration::from_millis(300);
        let app = app(admission(1, timeout), release.clone());

        // A body that never finishes arriving: its request takes no permit...
        let (mut sender, body) = mpsc_body();
        let stalled = tokio::spawn(
            app.clone().oneshot(
                Request::post("/auth/login")
                    .header(header::CONTENT_LENGTH, "64")
                    .body(body)
                    .unwrap(),
            ),
        );
        sender.send(Bytes::from_static(b"{")).await.unwrap();
        // ...so the one permit is still free for another request,
        let busy = hold_a_permit(&app).await;
        assert!(
            !stalled.is_finished(),
            "the stalled body is still being read"
        );
        // ...and the stalled one ends with 408 once its time is up.
        let stalled = stalled.await.unwrap().unwrap();
        assert_eq!(stalled.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(stalled.headers()[header::CONNECTION], "close");
        assert_eq!(json(stalled).await["code"], "request_timeout");

        // A body that keeps trickling is cut off at the same deadline.
        let (mut sender, body) = mpsc_body();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if sender.send(Bytes::from_static(b" ")).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let started = std::time::Instant::now();
        let trickled = app
            .clone()
            .oneshot(Request::post("/auth/login").body(body).unwrap())
            .await
            .unwrap();
        assert_eq!(trickled.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(started.elapsed() < Duration::from_secs(2));
        trickle.abort();

        release.notify_one();
        assert_eq!(busy.await.unwrap().status(), StatusCode::OK);

        // A complete body reaches the handler intact.
        let echoed = app
            .oneshot(
                Request::post("/auth/login")
                    .body(Body::from("{\"a\":1}"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(echoed.status(), StatusCode::OK);
        let body = axum::body::to_bytes(echoed.into_body(), 4096)
            .await
            .unwrap();
        assert_eq!(&body[..], b"{\"a\":1}");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413_declared_or_not() {
        let app = app(
            admission(4, Duration::from_secs(10)),
            Arc::new(tokio::sync::Notify::new()),
        );
        let max = Settings::default().http.max_body_bytes;
        let declared = app
            .clone()
            .oneshot(
                Request::post("/auth/login")
                    .header(header::CONTENT_LENGTH, (max + 1).to_string())
                    .body(Body::from(vec![b' '; max + 1]))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(declared.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json(declared).await["code"], "payload_too_large");
        let chunks = futures::stream::iter(
            (0..=max / 4096).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 4096]))),
        );
        let streamed = app
            .oneshot(
                Request::post("/auth/login")
                    .body(Body::from_stream(chunks))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn the_digest_is_never_shed_only_for_the_operator() {
        let release = Arc::new(tokio::sync::Notify::new());
        let app = app(admission(1, Duration::from_secs(10)), release.clone());
        let busy = hold_a_permit(&app).await;
        let digest = |token: Option<&str>| {
            let mut request = Request::get("/cluster/digest");
            if let Some(token) = token {
                request = request.header(OPERATOR_TOKEN, token);
            }
            app.clone().oneshot(request.body(Body::empty()).unwrap())
        };
        assert_eq!(
            digest(Some(OPERATOR)).await.unwrap().status(),
            StatusCode::OK
        );
        for other in [None, Some("not-the-operator-token")] {
            assert_eq!(
                digest(other).await.unwrap().status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{other:?}"
            );
        }
        release.notify_one();
        busy.await.unwrap();
    }

    #[test]
    fn operators_and_peers_are_never_shed() {
        let admission = admission(1, Duration::from_secs(1));
        for path in [
            "/health",
            "/ready",
            "/metrics",
            "/cluster",
            "/cluster/backup",
        ] {
            assert!(admission.never_shed(&get_req(path)), "{path}");
        }
        for path in [
            "/api/v1/checkout",
            "/auth/login",
            "/clusterfoo",
            "/healthz",
            "/cluster/digest",
        ] {
            assert!(!admission.never_shed(&get_req(path)), "{path}");
        }
    }

    /// A request body fed through a channel, to send it piece by piece.
    fn mpsc_body() -> (futures::channel::mpsc::Sender<Bytes>, Body) {
        use futures::StreamExt;
        let (tx, rx) = futures::channel::mpsc::channel::<Bytes>(16);
        (tx, Body::from_stream(rx.map(Ok::<_, std::io::Error>)))
    }
}
