//! The authorization layer: every handler learns who is calling through one of
//! these extractors, and declares its requirement by which one it takes:
//!
//! - [`Caller`]: anyone; `Option<Actor>` (guest carts, public reads);
//! - [`SignedIn`]: any signed-in user, else 401 `unauthenticated`;
//! - [`VendorOrAdmin`]: a vendor or an admin, else 401 / 403 `forbidden`;
//! - [`AdminOnly`]: an admin, else 401 / 403 `forbidden`;
//! - [`Operator`]: an admin, or a request carrying the node's operator token
//!   (`X-Operator-Token`): cluster administration, backups, creating accounts
//!   with a role (the first admin is bootstrapped this way).
//!
//! The role checks themselves are the application layer's
//! (`app::access`), which gRPC runs too. Finer rules (a vendor acts only on
//! what it owns, a customer only on their own orders) are checked by the use
//! case or the domain with the [`Actor`].
//!
//! Credentials are `Authorization: Bearer <access token>` (see
//! `crate::auth::tokens`). A token is accepted when its signature verifies with
//! the key its `kid` names in the replicated key ring, it has not expired and is
//! not dated in the future, its user still exists at the security version the
//! token was issued for, and its session has not been revoked (logout, refresh
//! reuse). A malformed, expired or revoked token is a 401 even with [`Caller`]
//! (anonymous allowed): a client that sends credentials learns they failed.
//! Routes that take none of these extractors are public and ignore credentials.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use ecommerce_domains::Actor;

use super::error::AppError;
use super::App;
use crate::app::access::{admin_only, unauthenticated, vendor_or_admin};
use crate::app::sessions::invalid_token;
use crate::app::ErrorCode;

/// Header carrying the operator token.
pub const OPERATOR_TOKEN: &str = "x-operator-token";

/// The caller, if signed in.
pub struct Caller(pub Option<Actor>);

/// A signed-in caller.
pub struct SignedIn(pub Actor);

/// A signed-in vendor or admin.
pub struct VendorOrAdmin(pub Actor);

/// A signed-in admin.
pub struct AdminOnly(pub Actor);

/// An admin (`Some`), or the operator token (`None`).
pub struct Operator(pub Option<Actor>);

/// The bearer token of a request: `Ok(None)` without an Authorization header.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    let Some(raw) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let raw = raw.to_str().map_err(|_| invalid_token())?;
    match raw.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(AppError::new(
            ErrorCode::Unauthenticated,
            "the Authorization header must be `Bearer <access token>`",
        )),
    }
}

/// The signed-in actor of a request, if any.
pub async fn authenticate(state: &App, headers: &HeaderMap) -> Result<Option<Actor>, AppError> {
    let Some(token) = bearer(headers)? else {
        return Ok(None);
    };
    state.authenticate(token).await.map(Some)
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = App::from_ref(state);
        authenticate(&state, &parts.headers).await.map(Self)
    }
}

impl<S> FromRequestParts<S> for SignedIn
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = App::from_ref(state);
        authenticate(&state, &parts.headers)
            .await?
            .map(Self)
            .ok_or_else(unauthenticated)
    }
}

impl<S> FromRequestParts<S> for VendorOrAdmin
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let SignedIn(actor) = SignedIn::from_request_parts(parts, state).await?;
        vendor_or_admin(Some(actor)).map(Self)
    }
}

impl<S> FromRequestParts<S> for AdminOnly
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let SignedIn(actor) = SignedIn::from_request_parts(parts, state).await?;
        admin_only(Some(actor)).map(Self)
    }
}

impl<S> FromRequestParts<S> for Operator
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = App::from_ref(state);
        if let Some(raw) = parts.headers.get(OPERATOR_TOKEN) {
            let presented = raw.to_str().unwrap_or("");
            return if app.auth.is_operator_token(presented) {
                Ok(Self(None))
            } else {
                tracing::debug!("operator token refused");
                Err(AppError::new(
                    ErrorCode::Unauthenticated,
                    "the operator token is wrong",
                ))
            };
        }
        let AdminOnly(actor) = AdminOnly::from_request_parts(parts, state).await?;
        Ok(Self(Some(actor)))
    }
}
