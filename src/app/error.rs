//! The one error of every use case, and the table of stable error codes.
//!
//! An error is a stable code, a message and code-specific details; REST
//! answers it as `{"code": "...", "message": "...", "details": ...}`
//! (`api::error`), gRPC as a status carrying the code (`grpc::call`). Codes
//! are documented (docs/api.md, the OpenAPI document); the HTTP status of
//! each code is fixed here and nowhere else.

use ecommerce_domains::DomainError;
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// Every error code the API can return, with its HTTP status.
pub const ERROR_CODES: &[(&str, u16)] = &[
    ("malformed_json", 400),
    ("invalid_body", 400),
    ("invalid_path", 400),
    ("invalid_query", 400),
    ("invalid_header", 400),
    ("unauthenticated", 401),
    ("forbidden", 403),
    ("route_not_found", 404),
    ("method_not_allowed", 405),
    ("request_timeout", 408),
    ("payload_too_large", 413),
    ("unsupported_media_type", 415),
    ("validation_failed", 422),
    ("idempotency_key_reused", 422),
    ("sku_not_for_sale", 422),
    ("currency_mismatch", 422),
    ("cart_empty", 422),
    ("invalid_card", 422),
    ("media_undecodable", 422),
    ("media_not_found", 404),
    ("warehouse_not_found", 404),
    ("sku_not_found", 404),
    ("node_not_found", 404),
    ("listing_not_found", 404),
    ("coupon_not_found", 404),
    ("product_not_found", 404),
    ("category_not_found", 404),
    ("order_not_found", 404),
    ("version_conflict", 409),
    ("insufficient_stock", 409),
    ("invalid_transition", 409),
    ("slug_taken", 409),
    ("coupon_not_applicable", 409),
    ("sku_taken", 409),
    ("category_not_empty", 409),
    ("hold_not_active", 409),
    ("node_id_removed", 409),
    ("membership_refused", 409),
    ("internal", 500),
    ("no_leader", 503),
    ("unavailable", 503),
    ("overloaded", 503),
    ("timeout", 504),
    // users and authentication
    ("email_taken", 409),
    ("invalid_credentials", 401),
    ("invalid_refresh_token", 401),
    ("invalid_reset_token", 400),
    ("user_not_found", 404),
    ("weak_password", 422),
    ("rate_limited", 429),
    ("invalid_social_state", 400),
    ("email_not_verified", 403),
    ("social_login_failed", 400),
    ("provider_not_configured", 404),
    ("provider_unavailable", 502),
];

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Code-specific data (e.g. the field that failed validation), or null.
    #[schema(value_type = Object, nullable)]
    pub details: serde_json::Value,
}

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct AppError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl AppError {
    /// An error with a code from [`ERROR_CODES`]; unknown codes are a bug and become 500.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        let status = ERROR_CODES
            .iter()
            .find(|(c, _)| *c == code)
            .and_then(|(_, s)| StatusCode::from_u16(*s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                details: serde_json::Value::Null,
            },
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.body.details = details;
        self
    }

    /// A 500 whose cause is logged but not shown to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new("internal", "internal error")
    }
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        let details = e.details();
        Self::new(e.code(), e.to_string()).with_details(details)
    }
}

impl From<ecommerce_raft::Error> for AppError {
    fn from(e: ecommerce_raft::Error) -> Self {
        use ecommerce_raft::Error as E;
        match e {
            E::NoLeader => Self::new("no_leader", "no leader is available; retry shortly"),
            E::Timeout => Self::new(
                "timeout",
                "the request did not complete in time; a write may still take effect (retry with the same Idempotency-Key)",
            ),
            E::NodeIdRemoved(id) => Self::new("node_id_removed", e.to_string()).with_details(serde_json::json!({ "node_id": id })),
            E::Membership(m) => Self::new("membership_refused", m),
            E::Rpc(m) => {
                tracing::warn!(error = %m, "peer rpc failed");
                Self::new("unavailable", "a peer could not be reached; retry shortly")
            }
            E::Installing => Self::new("unavailable", "this node is installing a snapshot; retry shortly"),
            E::Storage(_) | E::Fatal(_) => Self::internal(e),
        }
    }
}

impl From<ecommerce_domains::store::StoreFault> for AppError {
    fn from(e: ecommerce_domains::store::StoreFault) -> Self {
        Self::internal(e)
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_error_has_a_client_status() {
        let samples = [
            DomainError::validation("f", "m"),
            DomainError::WarehouseNotFound("w".into()),
            DomainError::SkuNotFound("s".into()),
            DomainError::VersionConflict {
                expected: 1,
                actual: 2,
            },
            DomainError::InsufficientStock {
                sku: "s".into(),
                warehouse_id: "w".into(),
                requested: 1,
                available: 0,
            },
            DomainError::IdempotencyKeyReused,
            DomainError::EmailTaken,
            DomainError::InvalidCredentials,
            DomainError::InvalidRefreshToken,
            DomainError::InvalidResetToken,
            DomainError::UserNotFound("u".into()),
            DomainError::WeakPassword {
                message: "m".into(),
            },
            DomainError::Forbidden,
            DomainError::ListingNotFound("s".into()),
            DomainError::SkuNotForSale("s".into()),
            DomainError::CurrencyMismatch {
                cart: "EUR".into(),
                sku: "USD".into(),
            },
            DomainError::CartEmpty,
            DomainError::MediaNotFound("h".into()),
            DomainError::OutOfStock(vec![]),
            DomainError::OrderNotFound(1),
            DomainError::InvalidTransition {
                from: "shipped".into(),
                to: "paid".into(),
            },
            DomainError::HoldNotActive(1),
            DomainError::ProductNotFound("p".into()),
            DomainError::CategoryNotFound("c".into()),
            DomainError::SlugTaken("s".into()),
            DomainError::SkuTaken("s".into()),
            DomainError::CategoryNotEmpty("c".into()),
            DomainError::CouponNotFound("C".into()),
            DomainError::InvalidSocialState,
            DomainError::EmailNotVerified,
            DomainError::CouponNotApplicable {
                code: "C".into(),
                reason: "r".into(),
            },
        ];
        for e in samples {
            let api = AppError::from(e.clone());
            assert!(
                api.status.is_client_error(),
                "{} -> {}",
                e.code(),
                api.status
            );
            assert_eq!(api.body.code, e.code());
        }
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = ERROR_CODES.iter().map(|(c, _)| c).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ERROR_CODES.len());
    }
}
