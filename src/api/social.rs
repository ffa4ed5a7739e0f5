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
use ecommerce_domains::users::{PendingSocialLogin, Secret, UserCommand, UsersResponse};
use ecommerce_domains::{Command, DomainError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AppPath, AppQuery};
use super::users::{
    check_ip, propose_session, unexpected_users, users_reply, ClientIp, TokenResponse,
};
use super::AppState;
use crate::auth::social::{printable, SocialError};
use crate::auth::tokens;

/// Longest `code` or `state` accepted from a callback.
const MAX_PARAM_LEN: usize = 2048;

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

impl From<SocialError> for ApiError {
    fn from(e: SocialError) -> Self {
        match e {
            SocialError::NotConfigured => ApiError::new("provider_not_configured", e.to_string()),
            SocialError::Refused(reason) => ApiError::new(
                "social_login_failed",
                "the provider did not confirm the sign-in",
            )
            .with_details(serde_json::json!({ "reason": reason })),
            SocialError::Unavailable(reason) => {
                ApiError::new("provider_unavailable", "the provider could not be asked")
                    .with_details(serde_json::json!({ "reason": reason }))
            }
        }
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// A required, bounded query parameter.
fn param<'a>(value: &'a Option<String>, name: &str) -> ApiResult<&'a str> {
    match value.as_deref() {
        Some(v) if !v.is_empty() && v.len() <= MAX_PARAM_LEN => Ok(v),
        Some(v) if !v.is_empty() => Err(DomainError::validation(name, "is too long").into()),
        _ => Err(DomainError::validation(name, "is required").into()),
    }
}

/// Start a social sign-in: redirects to the provider.
#[utoipa::path(get, path = "/auth/social/{provider}", tag = "auth",
    params(("provider" = String, Path, description = "google, github or facebook")),
    responses(
        (status = 302, description = "To the provider's sign-in page (`Location`)"),
        (status = 200, body = SocialAuthorization, description = "With `Accept: application/json`"),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn begin(
    State(state): State<AppState>,
    ip: ClientIp,
    AppPath(provider): AppPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_ip(&state, &ip)?;
    let social = &state.auth.social;
    let provider = social.provider(&provider)?;
    let authorization = provider.authorization();
    let command = UserCommand::BeginSocialLogin {
        state_hash: tokens::digest(&authorization.state),
        pending: PendingSocialLogin {
            provider: provider.name().to_string(),
            verifier: Secret(authorization.verifier),
            nonce: authorization.nonce,
            expires_ms: 0,
        },
        ttl_ms: social.state_ttl.as_millis() as u64,
    };
    let committed = state
        .propose(Command::Users(Box::new(command)), None)
        .await?;
    match users_reply(committed.outcome?)? {
        UsersResponse::SocialLoginBegun => {}
        other => return Err(unexpected_users(other)),
    }
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
    State(state): State<AppState>,
    ip: ClientIp,
    AppPath(provider): AppPath<String>,
    AppQuery(params): AppQuery<CallbackParams>,
) -> ApiResult<Json<TokenResponse>> {
    check_ip(&state, &ip)?;
    let provider = state.auth.social.provider(&provider)?;
    let sign_in_state = param(&params.state, "state")
        .map_err(|_| ApiError::from(DomainError::InvalidSocialState))?;
    let take = UserCommand::TakeSocialLogin {
        state_hash: tokens::digest(sign_in_state),
        provider: provider.name().to_string(),
    };
    let committed = state.propose(Command::Users(Box::new(take)), None).await?;
    let pending = match users_reply(committed.outcome?)? {
        UsersResponse::SocialLoginTaken(pending) => pending,
        other => return Err(unexpected_users(other)),
    };
    if let Some(error) = &params.error {
        return Err(SocialError::Refused(format!(
            "the sign-in was declined at the provider: {}",
            printable(error)
        ))
        .into());
    }
    let code = param(&params.code, "code")?;
    let identity = provider
        .identify(code, &pending.verifier.0, &pending.nonce)
        .await?;
    let family_id = uuid::Uuid::new_v4().simple().to_string();
    let refresh_token = tokens::new_refresh_token(&family_id);
    let command = UserCommand::SocialSignIn {
        identity,
        new_user_id: uuid::Uuid::new_v4().to_string(),
        family_id,
        token_hash: tokens::digest(&refresh_token),
        ttl_ms: state.auth.settings.refresh_token_ttl_secs * 1000,
    };
    Ok(Json(propose_session(&state, command, refresh_token).await?))
}
