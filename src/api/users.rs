//! Accounts over REST: registration, login, token refresh and logout under
//! `/auth` (OAuth2 token-response field names), password change and reset,
//! profiles and addresses, roles and deletion under `/api/v1/users`, and
//! signing-key rotation.
//!
//! Passwords are checked against the policy and hashed here, before the
//! command is proposed. Login and reset answer the same way, and take about
//! the same time, whether or not the account exists. Nothing here logs a
//! password, a token or an e-mail address.
//!
//! `Idempotency-Key`: the routes of a signed-in caller take one, scoped to
//! that caller. The `/auth` routes, account creation and password change
//! refuse one (400 `invalid_header`, never silently ignored): their bodies
//! hold passwords or tokens, which no fingerprint may digest, or each answer
//! carries new credentials that a replay could not give again; each says why
//! its plain retry is safe (see docs/api.md).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::users::{self, Address, Email, Secret, User, UserCommand, UsersResponse};
use ecommerce_domains::{Actor, Command, DomainError, Response as Reply, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{forbidden, AdminOnly, Operator, SignedIn};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, Consistency, MutationMeta};
use super::{unexpected, AppState};
use crate::auth::limits::RetryAfter;
use crate::auth::tokens::{self, Claims};

// ---------------------------------------------------------------- DTOs

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    pub email: String,
    /// 12 to 128 characters, at least 4 different ones, not the e-mail address.
    pub password: String,
    /// Display name, 1 to 200 characters.
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    pub email: String,
    pub password: String,
    pub name: String,
    /// `customer`, `vendor` or `admin`.
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
    /// Optional; when given it must be `password`.
    pub grant_type: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
    /// Optional; when given it must be `refresh_token`.
    pub grant_type: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutBody {
    pub refresh_token: String,
}

/// An OAuth2 token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque; exchange it at `/auth/refresh` for a new pair. Single use.
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmBody {
    /// The token from the reset message.
    pub token: String,
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressDto {
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

impl From<Address> for AddressDto {
    fn from(a: Address) -> Self {
        Self {
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

impl From<AddressDto> for Address {
    fn from(a: AddressDto) -> Self {
        Self {
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

/// A profile update; absent fields stay, `null` addresses are cleared.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    pub name: Option<String>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<AddressDto>)]
    pub shipping_address: Option<Option<AddressDto>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<AddressDto>)]
    pub billing_address: Option<Option<AddressDto>>,
}

mod double_option {
    //! `absent` -> None, `null` -> Some(None), value -> Some(Some(value)).
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(s)
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `customer`, `vendor` or `admin`.
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: String,
    /// Null once the account is deleted.
    pub email: Option<String>,
    pub name: String,
    /// `customer`, `vendor` or `admin`.
    pub role: String,
    pub email_verified: bool,
    pub shipping_address: Option<AddressDto>,
    pub billing_address: Option<AddressDto>,
    pub created_ms: u64,
    pub deleted: bool,
    /// Log index of the last change.
    pub version: u64,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email.map(|e| e.as_str().to_string()),
            name: u.name,
            role: u.role.as_str().to_string(),
            email_verified: u.email_verified,
            shipping_address: u.shipping_address.map(Into::into),
            billing_address: u.billing_address.map(Into::into),
            created_ms: u.created_ms,
            deleted: u.deleted,
            version: u.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserDto>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserListParams {
    pub after: Option<String>,
    /// 1 to 1000 (default 100).
    pub limit: Option<usize>,
    pub consistency: Option<Consistency>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyDto {
    /// Key id of the key that now signs new access tokens.
    pub kid: String,
}

// ---------------------------------------------------------------- helpers

/// Why a route whose body holds a password takes no `Idempotency-Key`.
const PASSWORD_BODY: &str = "the body holds a password, which no fingerprint may digest; \
    a retry is safe without a key (an account exists once per e-mail: 409 email_taken; \
    a reset token works once)";

/// Why the routes that hand out credentials take no `Idempotency-Key`.
const NEW_CREDENTIALS: &str =
    "each answer carries new credentials, which a replayed answer could not give again";

/// The client's IP address (the TCP peer; proxies' headers are not trusted).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

fn rate_limited(RetryAfter(wait): RetryAfter) -> ApiError {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::new("rate_limited", "too many attempts; retry later")
        .with_details(serde_json::json!({ "retry_after_secs": secs }))
}

pub(super) fn check_ip(state: &AppState, ip: &ClientIp) -> ApiResult<()> {
    match ip.0 {
        Some(ip) => state.auth.limits.check_ip(ip).map_err(rate_limited),
        None => Ok(()),
    }
}

fn check_account(state: &AppState, email: &Email) -> ApiResult<()> {
    state
        .auth
        .limits
        .check_account(&tokens::digest(email.as_str()))
        .map_err(rate_limited)
}

fn password_error(e: crate::auth::passwords::PasswordError) -> ApiError {
    ApiError::internal(e)
}

/// The users domain's part of a command response.
pub(super) fn users_reply(reply: Reply) -> ApiResult<UsersResponse> {
    match reply {
        Reply::Users(r) => Ok(*r),
        other => Err(unexpected(other)),
    }
}

pub(super) fn unexpected_users(r: UsersResponse) -> ApiError {
    unexpected(Reply::Users(Box::new(r)))
}

fn user_reply(reply: Reply) -> ApiResult<UserDto> {
    match users_reply(reply)? {
        UsersResponse::User(user) => Ok(user.into()),
        other => Err(unexpected_users(other)),
    }
}

fn parse_role(raw: &str) -> ApiResult<Role> {
    Role::parse(raw)
        .ok_or_else(|| DomainError::validation("role", "must be customer, vendor or admin").into())
}

/// Signs the access token for a fresh or refreshed session.
async fn token_response(
    state: &AppState,
    user: &User,
    family_id: &str,
    refresh_token: String,
) -> ApiResult<TokenResponse> {
    let ring = ensure_signing_key(state).await?;
    let ttl = state.auth.settings.access_token_ttl_secs;
    let now = super::auth::now_secs();
    let claims = Claims {
        sub: user.id.clone(),
        role: user.role,
        sid: family_id.to_string(),
        ver: user.security_version,
        iss: state.auth.settings.issuer.clone(),
        iat: now,
        nbf: now,
        exp: now + ttl,
    };
    let access_token =
        tokens::sign(&ring, &claims).ok_or_else(|| ApiError::internal("signing failed"))?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token,
    })
}

/// The key ring with an active key, creating the first key if there is none
/// (racing nodes are fine: the command keeps whichever key is applied first).
pub async fn ensure_signing_key(state: &AppState) -> ApiResult<users::KeyRing> {
    {
        let reader = state.read(Consistency::Stale).await?;
        let ring = users::key_ring(&reader)?;
        if ring.active_key().is_some() {
            return Ok(ring);
        }
    }
    let command = UserCommand::EnsureSigningKey {
        kid: uuid::Uuid::new_v4().simple().to_string(),
        secret: Secret(random_secret()),
    };
    let committed = state
        .propose(Command::Users(Box::new(command)), None)
        .await?;
    committed.outcome.map_err(ApiError::from)?;
    let reader = state.read(Consistency::Linearizable).await?;
    let ring = users::key_ring(&reader)?;
    if ring.active_key().is_none() {
        return Err(ApiError::internal(
            "no active signing key after ensuring one",
        ));
    }
    Ok(ring)
}

fn random_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut secret = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    secret
}

/// Proposes a new session for `user` and answers with its tokens.
async fn start_session(state: &AppState, user: &User) -> ApiResult<TokenResponse> {
    let family_id = uuid::Uuid::new_v4().simple().to_string();
    let refresh_token = tokens::new_refresh_token(&family_id);
    let command = UserCommand::StartSession {
        user_id: user.id.clone(),
        family_id,
        token_hash: tokens::digest(&refresh_token),
        ttl_ms: state.auth.settings.refresh_token_ttl_secs * 1000,
        expected_security_version: user.security_version,
    };
    propose_session(state, command, refresh_token).await
}

/// Proposes a command that starts a session (whose refresh token is
/// `refresh_token`) and answers with the session's tokens.
pub(super) async fn propose_session(
    state: &AppState,
    command: UserCommand,
    refresh_token: String,
) -> ApiResult<TokenResponse> {
    let committed = state
        .propose(Command::Users(Box::new(command)), None)
        .await?;
    match users_reply(committed.outcome?)? {
        UsersResponse::Session { user, family_id } => {
            token_response(state, &user, &family_id, refresh_token).await
        }
        other => Err(unexpected_users(other)),
    }
}

fn invalid_credentials() -> ApiError {
    DomainError::InvalidCredentials.into()
}

async fn create_account(
    state: &AppState,
    email: &str,
    password: String,
    name: &str,
    role: Role,
) -> ApiResult<Response> {
    let email = Email::parse(email)?;
    let name = users::parse_name(name)?;
    users::check_password_policy(&password, Some(&email))?;
    let hash = state
        .auth
        .passwords
        .hash(password)
        .await
        .map_err(password_error)?;
    let command = UserCommand::Register {
        user_id: uuid::Uuid::new_v4().to_string(),
        email,
        name,
        role,
        password_hash: Some(Secret(hash)),
        email_verified: false,
    };
    let committed = state
        .propose(Command::Users(Box::new(command)), None)
        .await?;
    let user = user_reply(committed.outcome?)?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

/// Reads a live user, or 404.
async fn load_user(state: &AppState, user_id: &str, consistency: Consistency) -> ApiResult<User> {
    let reader = state.read(consistency).await?;
    users::get_user(&reader, user_id)?
        .filter(|u| !u.deleted)
        .ok_or_else(|| DomainError::UserNotFound(user_id.to_string()).into())
}

/// `me` or a user id the actor may act on (itself, or anyone for an admin).
fn target(actor: &Actor, raw: &str) -> ApiResult<String> {
    if raw == "me" || raw == actor.user_id {
        return Ok(actor.user_id.clone());
    }
    if actor.is_admin() {
        Ok(raw.to_string())
    } else {
        Err(forbidden())
    }
}

// ---------------------------------------------------------------- /auth

/// Create a customer account.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, body = UserDto), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<RegisterBody>,
) -> ApiResult<Response> {
    meta.refuse_key(PASSWORD_BODY)?;
    check_ip(&state, &ip)?;
    create_account(
        &state,
        &body.email,
        body.password,
        &body.name,
        Role::Customer,
    )
    .await
}

/// Sign in with e-mail and password; answers an OAuth2 token response.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<LoginBody>,
) -> ApiResult<Json<TokenResponse>> {
    meta.refuse_key(NEW_CREDENTIALS)?;
    check_ip(&state, &ip)?;
    if body.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(DomainError::validation("grant_type", "must be password").into());
    }
    // A malformed address cannot have an account: same answer, same cost.
    let email = Email::parse(&body.email).ok();
    if let Some(email) = &email {
        check_account(&state, email)?;
    }
    let user = match &email {
        Some(email) => {
            let reader = state.read(Consistency::Linearizable).await?;
            users::user_by_email(&reader, email)?.filter(|u| !u.deleted)
        }
        None => None,
    };
    let phc = user
        .as_ref()
        .and_then(|u| u.password_hash.as_ref().map(|h| h.0.clone()));
    let ok = state
        .auth
        .passwords
        .verify(body.password, phc)
        .await
        .map_err(password_error)?;
    match user {
        Some(user) if ok => Ok(Json(start_session(&state, &user).await?)),
        _ => Err(invalid_credentials()),
    }
}

/// Exchange a refresh token for a new token pair; the old refresh token is
/// spent. Presenting a spent one revokes its whole session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<RefreshBody>,
) -> ApiResult<Json<TokenResponse>> {
    meta.refuse_key(NEW_CREDENTIALS)?;
    check_ip(&state, &ip)?;
    if body
        .grant_type
        .as_deref()
        .is_some_and(|g| g != "refresh_token")
    {
        return Err(DomainError::validation("grant_type", "must be refresh_token").into());
    }
    let family_id = tokens::refresh_family(&body.refresh_token)
        .ok_or(DomainError::InvalidRefreshToken)?
        .to_string();
    let new_token = tokens::new_refresh_token(&family_id);
    let command = UserCommand::RefreshSession {
        family_id,
        presented_hash: tokens::digest(&body.refresh_token),
        new_hash: tokens::digest(&new_token),
        ttl_ms: state.auth.settings.refresh_token_ttl_secs * 1000,
    };
    let committed = state
        .propose(Command::Users(Box::new(command)), None)
        .await?;
    match users_reply(committed.outcome?)? {
        UsersResponse::Session { user, family_id } => Ok(Json(
            token_response(&state, &user, &family_id, new_token).await?,
        )),
        UsersResponse::RefreshReused => {
            tracing::warn!("a spent refresh token was presented again; its session is revoked");
            Err(DomainError::InvalidRefreshToken.into())
        }
        other => Err(unexpected_users(other)),
    }
}

/// Sign out: revoke the session of this refresh token (its access tokens stop working).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = LogoutBody,
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<LogoutBody>,
) -> ApiResult<StatusCode> {
    meta.refuse_key("revoking a revoked session answers 204 again, so a plain retry is safe")?;
    check_ip(&state, &ip)?;
    let family_id = tokens::refresh_family(&body.refresh_token)
        .ok_or(DomainError::InvalidRefreshToken)?
        .to_string();
    let command = UserCommand::RevokeSession {
        family_id,
        presented_hash: tokens::digest(&body.refresh_token),
    };
    state
        .propose(Command::Users(Box::new(command)), None)
        .await?
        .outcome?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password-reset token (sent by the notification consumer of the
/// `PasswordResetRequested` event). Always 202, whether or not the account exists.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", request_body = ResetRequestBody,
    responses((status = 202), (status = 429, body = ErrorBody)))]
pub async fn request_password_reset(
    State(state): State<AppState>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<ResetRequestBody>,
) -> ApiResult<StatusCode> {
    meta.refuse_key("the answer (202) comes before anything is written")?;
    check_ip(&state, &ip)?;
    let Ok(email) = Email::parse(&body.email) else {
        return Ok(StatusCode::ACCEPTED);
    };
    check_account(&state, &email)?;
    // The work happens after the answer, so its timing says nothing about
    // whether the account exists.
    let state = state.clone();
    tokio::spawn(async move {
        let user = match state.read(Consistency::Linearizable).await {
            Ok(reader) => users::user_by_email(&reader, &email).ok().flatten(),
            Err(_) => None,
        };
        let Some(user) = user.filter(|u| !u.deleted) else {
            return;
        };
        let token = tokens::random_token(32);
        let command = UserCommand::RequestPasswordReset {
            user_id: user.id,
            token_hash: tokens::digest(&token),
            token: Secret(token),
            ttl_ms: state.auth.settings.reset_token_ttl_secs * 1000,
        };
        if let Err(e) = state.propose(Command::Users(Box::new(command)), None).await {
            tracing::warn!(code = e.body.code, "password reset request not stored");
        }
    });
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with a reset token (single use; ends every session).
#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirmBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn confirm_password_reset(
    State(state): State<AppState>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<ResetConfirmBody>,
) -> ApiResult<StatusCode> {
    meta.refuse_key(PASSWORD_BODY)?;
    check_ip(&state, &ip)?;
    if body.token.is_empty() || body.token.len() > 128 {
        return Err(DomainError::InvalidResetToken.into());
    }
    users::check_password_policy(&body.new_password, None)?;
    let hash = state
        .auth
        .passwords
        .hash(body.new_password)
        .await
        .map_err(password_error)?;
    let command = UserCommand::ResetPassword {
        token_hash: tokens::digest(&body.token),
        password_hash: Secret(hash),
    };
    state
        .propose(Command::Users(Box::new(command)), None)
        .await?
        .outcome?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start signing access tokens with a new key; the previous keys keep
/// verifying until every token they signed has expired.
#[utoipa::path(post, path = "/api/v1/auth/signing-keys/rotate", tag = "auth",
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = SigningKeyDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn rotate_signing_key(
    State(state): State<AppState>,
    AdminOnly(admin): AdminOnly,
    meta: MutationMeta,
) -> ApiResult<Response> {
    let tag = meta.tag(&Principal::from(&admin), &());
    let command = UserCommand::RotateSigningKey {
        kid: uuid::Uuid::new_v4().simple().to_string(),
        secret: Secret(random_secret()),
        retain_ms: (state.auth.settings.access_token_ttl_secs + tokens::LEEWAY_SECS) * 1000,
    };
    let committed = state
        .propose(Command::Users(Box::new(command)), tag)
        .await?;
    Ok(committed.respond(|reply| match users_reply(reply)? {
        UsersResponse::SigningKey { kid } => Ok(SigningKeyDto { kid }),
        other => Err(unexpected_users(other)),
    }))
}

// ---------------------------------------------------------------- /api/v1/users

/// Create an account with any role (admins, or the operator token: this is how
/// `ecommerce user create` bootstraps the first admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserBody,
    params(("X-Operator-Token" = Option<String>, Header)),
    responses((status = 201, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    Operator(_by): Operator,
    meta: MutationMeta,
    AppJson(body): AppJson<CreateUserBody>,
) -> ApiResult<Response> {
    meta.refuse_key(PASSWORD_BODY)?;
    let role = parse_role(&body.role)?;
    create_account(&state, &body.email, body.password, &body.name, role).await
}

/// List accounts in id order (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserListParams),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    AdminOnly(_admin): AdminOnly,
    AppQuery(params): AppQuery<UserListParams>,
) -> ApiResult<Json<UserList>> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            "invalid_query",
            "limit must be between 1 and 1000",
        ));
    }
    let reader = state.read(params.consistency.unwrap_or_default()).await?;
    let items = users::list_users(&reader, params.after.as_deref(), limit)?;
    let next_after = (items.len() == limit)
        .then(|| items.last().map(|u| u.id.clone()))
        .flatten();
    Ok(Json(UserList {
        items: items.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

/// Read a profile: `me`, your own id, or (admins) anyone's.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    SignedIn(actor): SignedIn,
    AppPath(id): AppPath<String>,
) -> ApiResult<Json<UserDto>> {
    let id = target(&actor, &id)?;
    Ok(Json(
        load_user(&state, &id, Consistency::Linearizable)
            .await?
            .into(),
    ))
}

/// Update name and addresses: `me`, your own id, or (admins) anyone's.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = ProfileBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    SignedIn(actor): SignedIn,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<ProfileBody>,
) -> ApiResult<Response> {
    let tag = meta.tag(&Principal::from(&actor), &body);
    let user_id = target(&actor, &id)?;
    let address =
        |field: &str, a: &Option<Option<AddressDto>>| -> ApiResult<Option<Option<Address>>> {
            Ok(match a {
                None => None,
                Some(None) => Some(None),
                Some(Some(dto)) => Some(Some(Address::parse(field, dto.clone().into())?)),
            })
        };
    let command = UserCommand::UpdateProfile {
        user_id,
        name: body.name.as_deref().map(users::parse_name).transpose()?,
        shipping_address: address("shipping_address", &body.shipping_address)?,
        billing_address: address("billing_address", &body.billing_address)?,
    };
    let committed = state
        .propose(Command::Users(Box::new(command)), tag)
        .await?;
    Ok(committed.respond(user_reply))
}

/// Delete and anonymise an account (`me`, your own id, or admins anyone's):
/// e-mail, name, addresses and password are erased, every session ends; the
/// id stays so orders keep their history.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_user(
    State(state): State<AppState>,
    SignedIn(actor): SignedIn,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
) -> ApiResult<Response> {
    let tag = meta.tag(&Principal::from(&actor), &());
    let user_id = target(&actor, &id)?;
    let committed = state
        .propose(
            Command::Users(Box::new(UserCommand::DeleteUser { user_id })),
            tag,
        )
        .await?;
    Ok(committed.respond(user_reply))
}

/// Change the role of an account (admins). Ends that account's sessions.
#[utoipa::path(put, path = "/api/v1/users/{id}/role", tag = "users", request_body = RoleBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_role(
    State(state): State<AppState>,
    AdminOnly(admin): AdminOnly,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<RoleBody>,
) -> ApiResult<Response> {
    let tag = meta.tag(&Principal::from(&admin), &body);
    let role = parse_role(&body.role)?;
    let committed = state
        .propose(
            Command::Users(Box::new(UserCommand::SetRole { user_id: id, role })),
            tag,
        )
        .await?;
    Ok(committed.respond(user_reply))
}

/// Change your own password (`me` or your id); ends every session, so sign in again.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", request_body = ChangePasswordBody,
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    SignedIn(actor): SignedIn,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<ChangePasswordBody>,
) -> ApiResult<StatusCode> {
    meta.refuse_key(
        "the body holds passwords; a change ends every session, so a retry is refused as unauthenticated anyway",
    )?;
    // Only for yourself: an admin resets other accounts through the reset flow.
    if id != "me" && id != actor.user_id {
        return Err(forbidden());
    }
    let user = load_user(&state, &actor.user_id, Consistency::Linearizable).await?;
    if let Some(email) = &user.email {
        check_account(&state, email)?;
    }
    users::check_password_policy(&body.new_password, user.email.as_ref())?;
    let phc = user.password_hash.as_ref().map(|h| h.0.clone());
    let ok = state
        .auth
        .passwords
        .verify(body.current_password, phc)
        .await
        .map_err(password_error)?;
    if !ok {
        return Err(invalid_credentials());
    }
    let hash = state
        .auth
        .passwords
        .hash(body.new_password)
        .await
        .map_err(password_error)?;
    let command = UserCommand::ChangePassword {
        user_id: user.id,
        password_hash: Secret(hash),
        expected_security_version: user.security_version,
    };
    state
        .propose(Command::Users(Box::new(command)), None)
        .await?
        .outcome?;
    Ok(StatusCode::NO_CONTENT)
}
