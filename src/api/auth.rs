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

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ecommerce_domains::{Actor, Role};

use super::error::ApiError;

pub const DEV_ACTOR: &str = "x-dev-actor";

/// The caller, if signed in.
pub struct Caller(pub Option<Actor>);

/// A signed-in caller.
pub struct SignedIn(pub Actor);

/// A signed-in admin.
pub struct AdminOnly(pub Actor);

fn authenticate(parts: &Parts) -> Result<Option<Actor>, ApiError> {
    let Some(raw) = parts.headers.get(DEV_ACTOR) else {
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

pub fn unauthenticated() -> ApiError {
    ApiError::new("unauthenticated", "sign in to use this route")
}

pub fn forbidden() -> ApiError {
    ApiError::new("forbidden", "you are not allowed to do this")
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        authenticate(parts).map(Self)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        authenticate(parts)?.map(Self).ok_or_else(unauthenticated)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AdminOnly {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let actor = authenticate(parts)?.ok_or_else(unauthenticated)?;
        if actor.is_admin() {
            Ok(Self(actor))
        } else {
            Err(forbidden())
        }
    }
}
