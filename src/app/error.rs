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

/// Declares [`ErrorCode`]: each code with its HTTP status and gRPC code.
macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:ident, $grpc:ident;)*) => {
        /// Every error code the node answers, each with its HTTP status and
        /// its gRPC code beside it: a code without both cannot compile.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable, documented code clients see.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status REST answers with it.
            pub fn http_status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }

            /// The status code gRPC answers with it.
            pub fn grpc_code(self) -> tonic::Code {
                match self {
                    $(ErrorCode::$variant => tonic::Code::$grpc,)*
                }
            }
        }
    };
}

// A lost compare-and-set race (`version_conflict`) is `Aborted`: retrying
// the read-modify-write may succeed; other conflicts are preconditions.
error_codes! {
    MalformedJson = "malformed_json", BAD_REQUEST, InvalidArgument;
    InvalidBody = "invalid_body", BAD_REQUEST, InvalidArgument;
    InvalidPath = "invalid_path", BAD_REQUEST, InvalidArgument;
    InvalidQuery = "invalid_query", BAD_REQUEST, InvalidArgument;
    InvalidHeader = "invalid_header", BAD_REQUEST, InvalidArgument;
    Unauthenticated = "unauthenticated", UNAUTHORIZED, Unauthenticated;
    Forbidden = "forbidden", FORBIDDEN, PermissionDenied;
    RouteNotFound = "route_not_found", NOT_FOUND, NotFound;
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, Unimplemented;
    RequestTimeout = "request_timeout", REQUEST_TIMEOUT, DeadlineExceeded;
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, ResourceExhausted;
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, InvalidArgument;
    ValidationFailed = "validation_failed", UNPROCESSABLE_ENTITY, InvalidArgument;
    IdempotencyKeyReused = "idempotency_key_reused", UNPROCESSABLE_ENTITY, InvalidArgument;
    SkuNotForSale = "sku_not_for_sale", UNPROCESSABLE_ENTITY, InvalidArgument;
    CurrencyMismatch = "currency_mismatch", UNPROCESSABLE_ENTITY, InvalidArgument;
    CartEmpty = "cart_empty", UNPROCESSABLE_ENTITY, InvalidArgument;
    InvalidCard = "invalid_card", UNPROCESSABLE_ENTITY, InvalidArgument;
    RawCardDataRefused = "raw_card_data_refused", UNPROCESSABLE_ENTITY, InvalidArgument;
    MediaUndecodable = "media_undecodable", UNPROCESSABLE_ENTITY, InvalidArgument;
    MediaNotFound = "media_not_found", NOT_FOUND, NotFound;
    WarehouseNotFound = "warehouse_not_found", NOT_FOUND, NotFound;
    SkuNotFound = "sku_not_found", NOT_FOUND, NotFound;
    NodeNotFound = "node_not_found", NOT_FOUND, NotFound;
    ListingNotFound = "listing_not_found", NOT_FOUND, NotFound;
    CouponNotFound = "coupon_not_found", NOT_FOUND, NotFound;
    ProductNotFound = "product_not_found", NOT_FOUND, NotFound;
    CategoryNotFound = "category_not_found", NOT_FOUND, NotFound;
    OrderNotFound = "order_not_found", NOT_FOUND, NotFound;
    VersionConflict = "version_conflict", CONFLICT, Aborted;
    InsufficientStock = "insufficient_stock", CONFLICT, FailedPrecondition;
    InvalidTransition = "invalid_transition", CONFLICT, FailedPrecondition;
    SlugTaken = "slug_taken", CONFLICT, FailedPrecondition;
    CouponNotApplicable = "coupon_not_applicable", CONFLICT, FailedPrecondition;
    SkuTaken = "sku_taken", CONFLICT, FailedPrecondition;
    CategoryNotEmpty = "category_not_empty", CONFLICT, FailedPrecondition;
    HoldNotActive = "hold_not_active", CONFLICT, FailedPrecondition;
    NodeIdRemoved = "node_id_removed", CONFLICT, FailedPrecondition;
    MembershipRefused = "membership_refused", CONFLICT, FailedPrecondition;
    Internal = "internal", INTERNAL_SERVER_ERROR, Internal;
    NoLeader = "no_leader", SERVICE_UNAVAILABLE, Unavailable;
    Unavailable = "unavailable", SERVICE_UNAVAILABLE, Unavailable;
    Overloaded = "overloaded", SERVICE_UNAVAILABLE, Unavailable;
    Timeout = "timeout", GATEWAY_TIMEOUT, DeadlineExceeded;
    EmailTaken = "email_taken", CONFLICT, FailedPrecondition;
    InvalidCredentials = "invalid_credentials", UNAUTHORIZED, Unauthenticated;
    InvalidRefreshToken = "invalid_refresh_token", UNAUTHORIZED, Unauthenticated;
    InvalidResetToken = "invalid_reset_token", BAD_REQUEST, InvalidArgument;
    UserNotFound = "user_not_found", NOT_FOUND, NotFound;
    WeakPassword = "weak_password", UNPROCESSABLE_ENTITY, InvalidArgument;
    RateLimited = "rate_limited", TOO_MANY_REQUESTS, ResourceExhausted;
    InvalidSocialState = "invalid_social_state", BAD_REQUEST, InvalidArgument;
    EmailNotVerified = "email_not_verified", FORBIDDEN, PermissionDenied;
    SocialLoginFailed = "social_login_failed", BAD_REQUEST, InvalidArgument;
    ProviderNotConfigured = "provider_not_configured", NOT_FOUND, NotFound;
    ProviderUnavailable = "provider_unavailable", BAD_GATEWAY, Unavailable;
    InsufficientStorage = "insufficient_storage", INSUFFICIENT_STORAGE, ResourceExhausted;
    EventsCompacted = "events_compacted", GONE, OutOfRange;
    UploadQuotaExceeded = "upload_quota_exceeded", CONFLICT, FailedPrecondition;
}

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
    pub code: ErrorCode,
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl AppError {
    /// An error with `code` and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = code.http_status();
        Self {
            code,
            status,
            body: ErrorBody {
                code: code.as_str(),
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
        Self::new(ErrorCode::Internal, "internal error")
    }
}

impl From<&DomainError> for ErrorCode {
    /// Each refusal of the domain, by the code clients see (the same
    /// strings as [`DomainError::code`], checked by a test).
    fn from(e: &DomainError) -> Self {
        use DomainError as D;
        match e {
            D::Validation { .. } => Self::ValidationFailed,
            D::WarehouseNotFound(_) => Self::WarehouseNotFound,
            D::SkuNotFound(_) => Self::SkuNotFound,
            D::VersionConflict { .. } => Self::VersionConflict,
            D::InsufficientStock { .. } | D::OutOfStock(_) => Self::InsufficientStock,
            D::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            D::EmailTaken => Self::EmailTaken,
            D::InvalidCredentials => Self::InvalidCredentials,
            D::InvalidRefreshToken => Self::InvalidRefreshToken,
            D::InvalidResetToken => Self::InvalidResetToken,
            D::UserNotFound(_) => Self::UserNotFound,
            D::WeakPassword { .. } => Self::WeakPassword,
            D::Forbidden => Self::Forbidden,
            D::SkuNotForSale(_) => Self::SkuNotForSale,
            D::ListingNotFound(_) => Self::ListingNotFound,
            D::CouponNotApplicable { .. } => Self::CouponNotApplicable,
            D::CouponNotFound(_) => Self::CouponNotFound,
            D::InvalidSocialState => Self::InvalidSocialState,
            D::EmailNotVerified => Self::EmailNotVerified,
            D::ProductNotFound(_) => Self::ProductNotFound,
            D::CategoryNotFound(_) => Self::CategoryNotFound,
            D::SlugTaken(_) => Self::SlugTaken,
            D::SkuTaken(_) => Self::SkuTaken,
            D::CategoryNotEmpty(_) => Self::CategoryNotEmpty,
            D::CurrencyMismatch { .. } => Self::CurrencyMismatch,
            D::CartEmpty => Self::CartEmpty,
            D::OrderNotFound(_) => Self::OrderNotFound,
            D::InvalidTransition { .. } => Self::InvalidTransition,
            D::HoldNotActive(_) => Self::HoldNotActive,
            D::MediaNotFound(_) => Self::MediaNotFound,
            D::Internal => Self::Internal,
            D::UploadQuotaExceeded { .. } => Self::UploadQuotaExceeded,
        }
    }
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        let details = e.details();
        Self::new(ErrorCode::from(&e), e.to_string()).with_details(details)
    }
}

impl From<ecommerce_raft::Error> for AppError {
    fn from(e: ecommerce_raft::Error) -> Self {
        use ecommerce_raft::Error as E;
        match e {
            E::NoLeader => Self::new(ErrorCode::NoLeader, "no leader is available; retry shortly"),
            E::Timeout => Self::new(
                ErrorCode::Timeout,
                "the request did not complete in time; a write may still take effect (retry with the same Idempotency-Key)",
            ),
            E::NodeIdRemoved(id) => Self::new(ErrorCode::NodeIdRemoved, e.to_string()).with_details(serde_json::json!({ "node_id": id })),
            E::Membership(m) => Self::new(ErrorCode::MembershipRefused, m),
            E::Rpc(m) => {
                tracing::warn!(error = %m, "peer rpc failed");
                Self::new(ErrorCode::Unavailable, "a peer could not be reached; retry shortly")
            }
            E::Installing => Self::new(ErrorCode::Unavailable, "this node is installing a snapshot; retry shortly"),
            E::InsufficientStorage => Self::new(
                ErrorCode::InsufficientStorage,
                "the leader's disk is nearly full: writes are refused until space is freed (reads go on)",
            ),
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
        let mut codes: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
    }
}
