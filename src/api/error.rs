//! Errors as HTTP responses: the one JSON error shape (`app::error`), with
//! `Retry-After` on 503 and 429.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub use crate::app::error::{AppError, AppResult, ErrorBody, ErrorCode};

/// How long clients should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(&self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            let secs = self
                .body
                .details
                .get("retry_after_secs")
                .and_then(|v| v.as_u64());
            if let Some(value) = secs.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_leader_says_when_to_retry() {
        let response = AppError::from(ecommerce_raft::Error::NoLeader).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
