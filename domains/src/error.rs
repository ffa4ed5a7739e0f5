//! Domain errors: the reasons a command or query is refused. Each has a stable
//! code; the HTTP layer maps codes to statuses in one table.
//!
//! Also [`ApplyError`], what the apply paths return: a refusal or a storage
//! fault, told apart in one place ([`crate::command::apply_command`]).

use serde::{Deserialize, Serialize};

use crate::store::StoreFault;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DomainError {
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    #[error("warehouse {0:?} does not exist")]
    WarehouseNotFound(String),
    #[error("sku {0:?} has no stock records")]
    SkuNotFound(String),
    #[error("expected version {expected}, current version is {actual}")]
    VersionConflict { expected: u64, actual: u64 },
    #[error(
        "not enough stock of {sku} in {warehouse_id}: requested {requested}, available {available}"
    )]
    InsufficientStock {
        sku: String,
        warehouse_id: String,
        requested: u64,
        available: u64,
    },
    #[error("this idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    // users and authentication
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    #[error("the e-mail address or password is wrong")]
    InvalidCredentials,
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    #[error("the password reset token is invalid, expired or already used")]
    InvalidResetToken,
    #[error("user {0:?} does not exist")]
    UserNotFound(String),
    #[error("password {message}")]
    WeakPassword { message: String },
    #[error("you are not allowed to do this")]
    Forbidden,
    #[error("sku {0:?} has no listing")]
    ListingNotFound(String),
    #[error("sku {0:?} is not for sale")]
    SkuNotForSale(String),
    #[error("the cart holds {cart} items; {sku} is priced in another currency")]
    CurrencyMismatch { cart: String, sku: String },
    #[error("the cart is empty")]
    CartEmpty,
    #[error("not enough stock for {} line(s)", .0.len())]
    OutOfStock(Vec<crate::allocation::Shortage>),
    #[error("order {0} does not exist")]
    OrderNotFound(u64),
    #[error("an order cannot go from {from} to {to}")]
    InvalidTransition { from: String, to: String },
    #[error("order {0} holds no reservation that can be extended")]
    HoldNotActive(u64),
    #[error("no image has the hash {0}")]
    MediaNotFound(String),
    #[error("product {0:?} does not exist")]
    ProductNotFound(String),
    #[error("category {0:?} does not exist")]
    CategoryNotFound(String),
    #[error("the slug {0:?} is already used")]
    SlugTaken(String),
    #[error("sku {0:?} belongs to another product or vendor")]
    SkuTaken(String),
    #[error("category {0:?} still has subcategories or products")]
    CategoryNotEmpty(String),
    #[error("coupon {code} cannot be used: {reason}")]
    CouponNotApplicable { code: String, reason: String },
    #[error("coupon {0} does not exist")]
    CouponNotFound(String),
    #[error("the sign-in state is unknown, expired or already used; start the sign-in again")]
    InvalidSocialState,
    #[error(
        "the provider does not vouch for this e-mail address; verify it with the provider first"
    )]
    EmailNotVerified,
    /// Applying the command failed in a way no rule foresaw (a bug: it
    /// panicked). The command is refused on every replica alike and changed
    /// nothing; the cause is in the node's log, not in the answer.
    #[error("internal error")]
    Internal,
    #[error(
        "the upload quota is used up: {images} images and {bytes} bytes of at most \
         {max_images} and {max_bytes}"
    )]
    UploadQuotaExceeded {
        images: u64,
        bytes: u64,
        max_images: u64,
        max_bytes: u64,
    },
}

impl DomainError {
    /// The stable, documented error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation_failed",
            Self::WarehouseNotFound(_) => "warehouse_not_found",
            Self::SkuNotFound(_) => "sku_not_found",
            Self::VersionConflict { .. } => "version_conflict",
            Self::InsufficientStock { .. } => "insufficient_stock",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::EmailTaken => "email_taken",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::InvalidResetToken => "invalid_reset_token",
            Self::UserNotFound(_) => "user_not_found",
            Self::WeakPassword { .. } => "weak_password",
            Self::Forbidden => "forbidden",
            Self::SkuNotForSale(_) => "sku_not_for_sale",
            Self::ListingNotFound(_) => "listing_not_found",
            Self::CouponNotApplicable { .. } => "coupon_not_applicable",
            Self::CouponNotFound(_) => "coupon_not_found",
            Self::InvalidSocialState => "invalid_social_state",
            Self::EmailNotVerified => "email_not_verified",
            Self::ProductNotFound(_) => "product_not_found",
            Self::CategoryNotFound(_) => "category_not_found",
            Self::SlugTaken(_) => "slug_taken",
            Self::SkuTaken(_) => "sku_taken",
            Self::CategoryNotEmpty(_) => "category_not_empty",
            Self::CurrencyMismatch { .. } => "currency_mismatch",
            Self::CartEmpty => "cart_empty",
            Self::OutOfStock(_) => "insufficient_stock",
            Self::OrderNotFound(_) => "order_not_found",
            Self::InvalidTransition { .. } => "invalid_transition",
            Self::HoldNotActive(_) => "hold_not_active",
            Self::MediaNotFound(_) => "media_not_found",
            Self::Internal => "internal",
            Self::UploadQuotaExceeded { .. } => "upload_quota_exceeded",
        }
    }

    /// Machine-readable details for the error body.
    pub fn details(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Validation { field, .. } => json!({ "field": field }),
            Self::WarehouseNotFound(id) => json!({ "warehouse_id": id }),
            Self::SkuNotFound(sku) => json!({ "sku": sku }),
            Self::VersionConflict { expected, actual } => {
                json!({ "expected": expected, "actual": actual })
            }
            Self::InsufficientStock {
                sku,
                warehouse_id,
                requested,
                available,
            } => json!({
                "sku": sku, "warehouse_id": warehouse_id, "requested": requested, "available": available
            }),
            Self::EmailTaken
            | Self::InvalidCredentials
            | Self::InvalidRefreshToken
            | Self::InvalidResetToken
            | Self::InvalidSocialState
            | Self::EmailNotVerified
            | Self::Internal => serde_json::Value::Null,
            Self::UploadQuotaExceeded {
                images,
                bytes,
                max_images,
                max_bytes,
            } => json!({
                "images": images, "bytes": bytes,
                "max_images": max_images, "max_bytes": max_bytes,
            }),
            Self::UserNotFound(id) => json!({ "user_id": id }),
            Self::WeakPassword { .. } => json!({
                "field": "password",
                "min_length": crate::users::PASSWORD_MIN_CHARS,
                "max_length": crate::users::PASSWORD_MAX_CHARS,
            }),
            Self::IdempotencyKeyReused | Self::Forbidden | Self::CartEmpty => {
                serde_json::Value::Null
            }
            Self::SkuNotForSale(sku) | Self::ListingNotFound(sku) | Self::SkuTaken(sku) => {
                json!({ "sku": sku })
            }
            Self::ProductNotFound(id) => json!({ "product_id": id }),
            Self::CouponNotApplicable { code, reason } => json!({ "code": code, "reason": reason }),
            Self::CouponNotFound(code) => json!({ "code": code }),
            Self::CategoryNotFound(id) | Self::CategoryNotEmpty(id) => json!({ "category_id": id }),
            Self::SlugTaken(slug) => json!({ "slug": slug }),
            Self::CurrencyMismatch { cart, sku } => json!({ "cart": cart, "sku": sku }),
            Self::OutOfStock(lines) => json!({ "lines": lines }),
            Self::OrderNotFound(id) | Self::HoldNotActive(id) => {
                json!({ "order_id": id.to_string() })
            }
            Self::InvalidTransition { from, to } => json!({ "from": from, "to": to }),
            Self::MediaNotFound(hash) => json!({ "hash": hash }),
        }
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Why applying a command stopped: the domain refused it, or the store failed.
///
/// Every apply path returns this, so `?` propagates either. Only
/// [`crate::command::apply_command`] tells them apart: a refusal becomes the
/// command's outcome (and its writes are taken back), a fault stops the
/// state machine.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Refused(#[from] DomainError),
    #[error(transparent)]
    Fault(#[from] StoreFault),
}
