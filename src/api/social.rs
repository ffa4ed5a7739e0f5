//! Social sign-in over REST (Google, GitHub, Facebook).
//!
//! `GET /auth/social/{provider}` starts a sign-in: it stores the `state`
//! digest, the PKCE verifier and the nonce in the cluster (so the callback may
//! reach any node) and sends the browser to the provider (302, or a JSON body
//! with the URL for `Accept: application/json`). The provider sends the browser
//! back to the configured `redirect_uri` (the storefront) with `code` and
//! `state`; the storefront forwards both to `GET /auth/social/{provider}/callback`,
//! which spends the state (once, before it expires), exchanges the code, checks
//! who signed in and answers the same OAuth2 token response as `/auth/login`.
//! See `crate::auth::social` for the provider side and docs/security.md.

use axum::extract::State;
use axum::http::header::{ACCEPT, CACHE_CONTROL, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{AppResult, ErrorBody};
use super::extract::ClientIp;
use super::extract::{AppPath, AppQuery};
use super::users::TokenResponse;
use super::App;
use crate::app::sessions::SocialCallback;

/// Where to send the browser to sign in with the provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocialAuthorization {
    pub authorization_url: String,
    /// Also in the URL; a storefront may keep it to check the callback is its own.
    pub state: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CallbackParams {
    /// The authorization code from the provider.
    pub code: Option<String>,
    /// The `state` of the sign-in, as the provider sent it back.
    pub state: Option<String>,
    /// Set instead of `code` when the user or the provider declined.
    pub error: Option<String>,
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// Start a social sign-in: redirects to the provider.
#[utoipa::path(get, path = "/auth/social/{provider}", tag = "auth",
    params(("provider" = String, Path, description = "google, github or facebook")),
    responses(
        (status = 302, description = "To the provider's sign-in page (`Location`)"),
        (status = 200, body = SocialAuthorization, description = "With `Accept: application/json`"),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn begin(
    State(state): State<App>,
    ip: ClientIp,
    AppPath(provider): AppPath<String>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let authorization = state.begin_social_login(ip.0, &provider).await?;
    if wants_json(&headers) {
        return Ok(Json(SocialAuthorization {
            authorization_url: authorization.url,
            state: authorization.state,
        })
        .into_response());
    }
    Ok((
        StatusCode::FOUND,
        [
            (LOCATION, authorization.url),
            (CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response())
}

/// Finish a social sign-in with the provider's `code` and `state`; answers an
/// OAuth2 token response. The state is spent whatever the outcome.
#[utoipa::path(get, path = "/auth/social/{provider}/callback", tag = "auth",
    params(("provider" = String, Path, description = "google, github or facebook"), CallbackParams),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = ErrorBody, description = "`invalid_social_state` or `social_login_failed`"),
        (status = 403, body = ErrorBody, description = "`email_not_verified`: the provider does not vouch for the address"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn callback(
    State(state): State<App>,
    ip: ClientIp,
    AppPath(provider): AppPath<String>,
    AppQuery(params): AppQuery<CallbackParams>,
) -> AppResult<Json<TokenResponse>> {
    let callback = SocialCallback {
        code: params.code.as_deref(),
        state: params.state.as_deref(),
        error: params.error.as_deref(),
    };
    let tokens = state.finish_social_login(ip.0, &provider, callback).await?;
    Ok(Json(tokens.into()))
}
