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
//! Finer rules (a vendor acts only on what it owns, a customer only on their own
//! orders) are checked by the handler or the domain with the [`Actor`].
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
use ecommerce_domains::users;
use ecommerce_domains::{Actor, Role};
use ecommerce_raft::Reader;

use super::error::ApiError;
use super::AppState;
use crate::auth::tokens::{self, TokenError};

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

/// A signed-in caller, else `unauthenticated` (for callers that learnt the
/// actor elsewhere, e.g. a gRPC interceptor).
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

fn invalid_token() -> ApiError {
    ApiError::new(
        "unauthenticated",
        "the access token is invalid, expired or revoked",
    )
}

pub fn forbidden() -> ApiError {
    ApiError::new("forbidden", "you are not allowed to do this")
}

/// Why a bearer token was refused; logged at debug level, never sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the user no longer exists or changed since the token was issued")]
    UserChanged,
    #[error("the session was revoked")]
    SessionRevoked,
    #[error("the state is being replaced by a snapshot")]
    Unavailable,
    #[error("storage: {0}")]
    Storage(String),
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks an access token against this node's replica.
pub fn verify_access_token(state: &AppState, token: &str) -> Result<Actor, Refusal> {
    let reader = Reader::new(state.node.storage()).ok_or(Refusal::Unavailable)?;
    let storage = |e: ecommerce_domains::store::StoreFault| Refusal::Storage(e.to_string());
    let ring = users::key_ring(&reader).map_err(storage)?;
    let claims = tokens::verify(&ring, token, &state.auth.settings.issuer, now_secs())?;
    let user = users::get_user(&reader, &claims.sub)
        .map_err(storage)?
        .filter(|u| !u.deleted && u.security_version == claims.ver && u.role == claims.role)
        .ok_or(Refusal::UserChanged)?;
    let session = users::get_session(&reader, &claims.sid)
        .map_err(storage)?
        .ok_or(Refusal::SessionRevoked)?;
    if session.revoked
        || session.user_id != user.id
        || session.user_version != user.security_version
    {
        return Err(Refusal::SessionRevoked);
    }
    Ok(Actor {
        user_id: user.id,
        role: user.role,
    })
}

/// The bearer token of a request: `Ok(None)` without an Authorization header.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
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
        _ => Err(ApiError::new(
            "unauthenticated",
            "the Authorization header must be `Bearer <access token>`",
        )),
    }
}

/// The signed-in actor of a request, if any.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Actor>, ApiError> {
    let Some(token) = bearer(headers)? else {
        return Ok(None);
    };
    let refusal = match verify_access_token(state, token) {
        Ok(actor) => return Ok(Some(actor)),
        Err(refusal) => refusal,
    };
    // The token may be newer than this replica: a key just rotated in, or a
    // session (or account) created on the leader by a login a moment ago.
    // Catch up with the leader once, then decide.
    let lagging = matches!(
        refusal,
        Refusal::Token(TokenError::UnknownKey) | Refusal::UserChanged | Refusal::SessionRevoked
    );
    let refusal = if lagging {
        state.node.linearizable_barrier(state.deadline()).await?;
        match verify_access_token(state, token) {
            Ok(actor) => return Ok(Some(actor)),
            Err(refusal) => refusal,
        }
    } else {
        refusal
    };
    match refusal {
        Refusal::Unavailable => Err(ApiError::new(
            "unavailable",
            "this node is installing a snapshot; retry shortly",
        )),
        Refusal::Storage(e) => Err(ApiError::internal(e)),
        other => {
            tracing::debug!(reason = %other, "access token refused");
            Err(invalid_token())
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        authenticate(&state, &parts.headers).await.map(Self)
    }
}

impl<S> FromRequestParts<S> for SignedIn
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        authenticate(&state, &parts.headers)
            .await?
            .map(Self)
            .ok_or_else(unauthenticated)
    }
}

impl<S> FromRequestParts<S> for VendorOrAdmin
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let SignedIn(actor) = SignedIn::from_request_parts(parts, state).await?;
        if matches!(actor.role, Role::Vendor | Role::Admin) {
            Ok(Self(actor))
        } else {
            Err(forbidden())
        }
    }
}

impl<S> FromRequestParts<S> for AdminOnly
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let SignedIn(actor) = SignedIn::from_request_parts(parts, state).await?;
        if actor.is_admin() {
            Ok(Self(actor))
        } else {
            Err(forbidden())
        }
    }
}

impl<S> FromRequestParts<S> for Operator
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        if let Some(raw) = parts.headers.get(OPERATOR_TOKEN) {
            let presented = raw.to_str().unwrap_or("");
            return if app.auth.is_operator_token(presented) {
                Ok(Self(None))
            } else {
                tracing::debug!("operator token refused");
                Err(ApiError::new(
                    "unauthenticated",
                    "the operator token is wrong",
                ))
            };
        }
        let AdminOnly(actor) = AdminOnly::from_request_parts(parts, state).await?;
        Ok(Self(Some(actor)))
    }
}
