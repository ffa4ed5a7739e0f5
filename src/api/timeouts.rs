//! How long a request may take. Three bounds, each answered with the one
//! error shape:
//!
//! - its body must arrive whole within `http.body_read_timeout_ms`, else 408
//!   `request_timeout` (enforced where the body is read: `api::shed`, and the
//!   upload handler for the pauses of its stream);
//! - once admitted, the route's **budget**, a tower-http [`TimeoutLayer`]
//!   around the handler ([`budget`]): `http.request_timeout_ms` for ordinary
//!   routes, longer for the routes that wait on purpose (the event long-poll,
//!   membership changes, uploads), else 504 `timeout`. A handler cut off by
//!   its budget may have proposed a write that still commits, exactly like one
//!   whose Raft deadline passed: same code, same advice.
//! - none for the routes whose work is the size of the whole state (backup,
//!   digest): operator tools, bounded by the state they read.
//!
//! Which route has which budget is in the route table (`api::router`).

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::util::MapResponseLayer;
use tower_http::timeout::TimeoutLayer;

use super::error::AppError;
use crate::app::ErrorCode;

/// What [`TimeoutLayer`] answers with when a budget runs out: a bare status,
/// which [`as_timeout_error`] turns into the `timeout` error.
const BUDGET_EXCEEDED: StatusCode = StatusCode::GATEWAY_TIMEOUT;

/// A route's budget: past `limit`, the handler is dropped and the client gets
/// 504 `timeout`.
pub type Budget = (MapResponseLayer<fn(Response) -> Response>, TimeoutLayer);

pub fn budget(limit: Duration) -> Budget {
    (
        MapResponseLayer::new(as_timeout_error as fn(Response) -> Response),
        TimeoutLayer::with_status_code(BUDGET_EXCEEDED, limit),
    )
}

/// The bare response of an exhausted budget as the `timeout` error; any other
/// response (handlers' errors are JSON, with a content type) unchanged.
fn as_timeout_error(response: Response) -> Response {
    if response.status() == BUDGET_EXCEEDED
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        AppError::from(ecommerce_raft::Error::Timeout).into_response()
    } else {
        response
    }
}

/// 408 `request_timeout`: the body did not arrive in time. The connection is
/// closed after it (the rest of the body is never read).
pub fn body_too_slow(limit: Duration) -> Response {
    let mut response = AppError::new(
        ErrorCode::RequestTimeout,
        format!(
            "the request body did not arrive within {} ms",
            limit.as_millis()
        ),
    )
    .with_details(serde_json::json!({ "timeout_ms": limit.as_millis() as u64 }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Whether reading a body failed because tower-http's `RequestBodyTimeoutLayer`
/// saw no data for its whole timeout (somewhere in `error`'s chain of causes).
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn an_exhausted_budget_is_the_timeout_error_and_other_answers_pass_through() {
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            )
            .route(
                "/own-504",
                get(|| async { AppError::from(ecommerce_raft::Error::Timeout) }),
            )
            .route("/fast", get(|| async { "fast" }))
            .layer(budget(Duration::from_millis(50)));
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let response = app
                    .oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (status, body)
            }
        };

        let (status, body) = call("/slow").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "timeout");
        let (status, body) = call("/own-504").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert!(String::from_utf8_lossy(&body).contains("\"timeout\""));
        assert_eq!(call("/fast").await, (StatusCode::OK, "fast".into()));
    }

    #[test]
    fn a_slow_body_is_408_request_timeout_and_closes_the_connection() {
        let response = body_too_slow(Duration::from_secs(10));
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }
}
