//! HTTP plumbing shared by the operator commands: a [`NodeClient`] that sends requests to
//! one node's REST API, retries while the cluster has no leader, and turns the node's
//! error body (`{"code","message","details"}`) into an [`ApiError`].
//!
//! Nothing here prints; presentation belongs to the commands.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::{header, Client, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::NodeOpts;

/// Error code the node answers with (503) while no leader is known.
const NO_LEADER: &str = "no_leader";
/// First wait before retrying a `no_leader` answer; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// An error answered by the node, in the API's error shape.
///
/// Displays as `<code>: <message>`; callers can `downcast_ref::<ApiError>()` an
/// `anyhow::Error` to get at the code, e.g. to pick an exit status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: u16,
    /// Stable error code, e.g. `no_leader` or `node_id_removed`. Answers that are not in
    /// the API's error shape (say, from a proxy) get `http_<status>`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Structured details, if the node sent any.
    pub details: Option<Value>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Reads an unsuccessful response's body into an error.
    async fn from_response(response: Response) -> Self {
        #[derive(Deserialize)]
        struct Body {
            code: String,
            message: String,
            #[serde(default)]
            details: Option<Value>,
        }

        let status = response.status();
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => format!("(could not read the error body: {e})"),
        };
        match serde_json::from_str::<Body>(&text) {
            Ok(body) => ApiError {
                status: status.as_u16(),
                code: body.code,
                message: body.message,
                details: body.details.filter(|d| !d.is_null()),
            },
            Err(_) => ApiError {
                status: status.as_u16(),
                code: format!("http_{}", status.as_u16()),
                message: describe_foreign_body(status, &text),
                details: None,
            },
        }
    }
}

/// A message for an error body that is not in the API's shape: the status line plus the
/// start of the body.
fn describe_foreign_body(status: StatusCode, text: &str) -> String {
    const MAX_CHARS: usize = 200;
    let text = text.trim();
    let mut message = status.to_string();
    if !text.is_empty() {
        message.push_str(": ");
        message.extend(text.chars().take(MAX_CHARS));
        if text.chars().count() > MAX_CHARS {
            message.push('…');
        }
    }
    message
}

/// Talks to one node's REST API within the `--timeout` budget.
#[derive(Debug, Clone)]
pub(crate) struct NodeClient {
    http: Client,
    base: String,
    timeout: Duration,
    operator_token: Option<String>,
    access_token: Option<String>,
}

impl NodeClient {
    pub(crate) fn new(opts: &NodeOpts) -> anyhow::Result<Self> {
        let timeout = opts.timeout();
        let mut builder = Client::builder();
        if let Some(ca) = &opts.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} holds no PEM certificate", ca.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .connect_timeout(timeout)
            // Bounds stalls while reading a body (a backup may legitimately take longer
            // than the whole budget, so there is no overall request timeout).
            .read_timeout(timeout)
            .user_agent(concat!("ecommerce-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            base: opts.node.clone(),
            timeout,
            operator_token: opts.operator_token.clone(),
            access_token: opts.access_token.clone(),
        })
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Response> {
        let url = self.url(path);
        self.send(&url, |http| http.get(&url)).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Response> {
        let url = self.url(path);
        self.send(&url, |http| http.post(&url).json(body)).await
    }

    /// A JSON request with an `Idempotency-Key`, so that resending it is safe.
    pub(crate) async fn send_idempotent(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        key: &str,
    ) -> anyhow::Result<Response> {
        let url = self.url(path);
        self.send(&url, |http| {
            http.request(method.clone(), &url)
                .header("idempotency-key", key)
                .json(body)
        })
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends the request `build` makes until the node answers something other than
    /// `503 no_leader`, or the timeout has passed. Returns successful responses with their
    /// body unread; every other answer becomes an [`ApiError`].
    ///
    /// Retrying is safe for every request: a node without a leader has applied nothing.
    async fn send(
        &self,
        url: &str,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> anyhow::Result<Response> {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut request = build(&self.http);
            if let Some(token) = &self.access_token {
                request = request.bearer_auth(token);
            } else if let Some(token) = &self.operator_token {
                request = request.header("x-operator-token", token);
            }
            let response = tokio::time::timeout(remaining, request.send())
                .await
                .map_err(|_| {
                    anyhow::anyhow!("no answer from {url} within {}s", self.timeout.as_secs())
                })?
                .with_context(|| format!("cannot reach the node at {}", self.base))?;
            if response.status().is_success() {
                return Ok(response);
            }

            let retry_after = retry_after(&response);
            let error = ApiError::from_response(response).await;
            if error.code != NO_LEADER {
                return Err(error.into());
            }
            let wait = retry_after.unwrap_or(backoff);
            if Instant::now() + wait >= deadline {
                return Err(error.into());
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// The `Retry-After` header in its delay-seconds form (the node never sends a date).
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;

    use super::*;
    use crate::testing::{node_opts, serve};

    fn no_leader() -> axum::response::Response {
        let body = json!({"code": "no_leader", "message": "no leader known", "details": null});
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            Json(body),
        )
            .into_response()
    }

    #[tokio::test]
    async fn error_bodies_become_api_errors() {
        let router = Router::new().route(
            "/cluster/promote",
            axum::routing::post(|| async {
                let body = json!({"code": "node_id_removed", "message": "node 3 was removed",
                                  "details": {"node_id": 3}});
                (StatusCode::CONFLICT, Json(body))
            }),
        );
        let client = NodeClient::new(&node_opts(&serve(router).await, 5)).unwrap();

        let err = client
            .post("/cluster/promote", &json!({"node_id": 3}))
            .await;
        let err = err.unwrap_err();
        let api = err.downcast_ref::<ApiError>().expect("an ApiError");
        assert_eq!(api.status, 409);
        assert_eq!(api.details, Some(json!({"node_id": 3})));
        assert_eq!(err.to_string(), "node_id_removed: node 3 was removed");
    }

    #[tokio::test]
    async fn foreign_error_bodies_keep_the_status() {
        let router = Router::new().route(
            "/cluster",
            get(|| async { (StatusCode::BAD_GATEWAY, "upstream down") }),
        );
        let client = NodeClient::new(&node_opts(&serve(router).await, 5)).unwrap();

        let err = client.get("/cluster").await.unwrap_err();
        assert_eq!(err.to_string(), "http_502: 502 Bad Gateway: upstream down");
    }

    #[tokio::test]
    async fn no_leader_is_retried_until_a_leader_answers() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let router = Router::new().route(
            "/cluster",
            get(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        no_leader()
                    } else {
                        Json(json!({"leader_id": 1})).into_response()
                    }
                }
            }),
        );
        let client = NodeClient::new(&node_opts(&serve(router).await, 10)).unwrap();

        let response = client.get("/cluster").await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn no_leader_gives_up_at_the_timeout() {
        let router = Router::new().route(
            "/cluster",
            get(|| async {
                let body = json!({"code": "no_leader", "message": "no leader known"});
                (StatusCode::SERVICE_UNAVAILABLE, Json(body))
            }),
        );
        let client = NodeClient::new(&node_opts(&serve(router).await, 1)).unwrap();

        let started = std::time::Instant::now();
        let err = client.get("/cluster").await.unwrap_err();
        assert_eq!(err.to_string(), "no_leader: no leader known");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn an_unreachable_node_is_reported() {
        // Bind then drop a listener to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let client = NodeClient::new(&node_opts(&base, 5)).unwrap();

        let err = client.get("/cluster").await.unwrap_err();
        assert!(format!("{err:#}").starts_with(&format!("cannot reach the node at {base}")));
    }
}
