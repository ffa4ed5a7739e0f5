//! The authentication seam: every handler learns who is calling through one of
//! these extractors, and declares its requirement by which one it takes:
//!
//! - [`Caller`]: anyone; `Option<Actor>` (guest carts, public reads);
//! - [`SignedIn`]: any signed-in user, else 401 `unauthenticated`;
//! - [`AdminOnly`]: an admin, else 401 / 403 `forbidden`.
//!
//! Finer rules (a vendor acts only on what it owns, a customer only on their own
//! orders) are checked by the handler or the domain with the [`Actor`].
//!
//! Development credentials: until bearer tokens land, a request names its actor
//! with `X-Dev-Actor: <role>:<user_id>` (role `customer`, `vendor` or `admin`).
//!
//! [`authenticate_headers`] is the one place a credential is read: the
//! extractors call it with the HTTP headers, the gRPC services with the request
//! metadata, so a change of credential applies to both.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ecommerce_domains::{Actor, Role};

use super::error::ApiError;

pub const DEV_ACTOR: &str = "x-dev-actor";

/// The caller, if signed in.
pub struct Caller(pub Option<Actor>);

/// A signed-in caller.
pub struct SignedIn(pub Actor);

/// A signed-in admin.
pub struct AdminOnly(pub Actor);

/// The caller named by a request's headers (or gRPC metadata), if any; a
/// credential that is present but invalid is refused.
pub fn authenticate_headers(headers: &HeaderMap) -> Result<Option<Actor>, ApiError> {
    let Some(raw) = headers.get(DEV_ACTOR) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            "unauthenticated",
            "X-Dev-Actor must be <customer|vendor|admin>:<user id>",
        )
    };
    let raw = raw.to_str().map_err(|_| invalid())?;
    let (role, user_id) = raw.split_once(':').ok_or_else(invalid)?;
    let role = Role::parse(role).ok_or_else(invalid)?;
    if user_id.is_empty() || user_id.len() > 64 {
        return Err(invalid());
    }
    Ok(Some(Actor {
        user_id: user_id.to_string(),
        role,
    }))
}

/// A signed-in caller, else `unauthenticated`.
pub fn signed_in(actor: Option<Actor>) -> Result<Actor, ApiError> {
    actor.ok_or_else(unauthenticated)
}

/// A signed-in admin, else `unauthenticated` or `forbidden`.
pub fn admin_only(actor: Option<Actor>) -> Result<Actor, ApiError> {
    let actor = signed_in(actor)?;
    if actor.is_admin() {
        Ok(actor)
    } else {
        Err(forbidden())
    }
}

pub fn unauthenticated() -> ApiError {
    ApiError::new("unauthenticated", "sign in to use this route")
}

pub fn forbidden() -> ApiError {
    ApiError::new("forbidden", "you are not allowed to do this")
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        authenticate_headers(&parts.headers).map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        signed_in(authenticate_headers(&parts.headers)?).map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AdminOnly {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        admin_only(authenticate_headers(&parts.headers)?).map(Self)
    }
}
