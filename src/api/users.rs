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

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::users::{Address, User};
use ecommerce_domains::{DomainError, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{AdminOnly, Operator, SignedIn};
use super::error::{AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, ClientIp, Consistency, MutationMeta};
use super::App;
use crate::app::accounts::ProfileChange;
use crate::app::sessions::Tokens;

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

fn parse_role(raw: &str) -> AppResult<Role> {
    Role::parse(raw)
        .ok_or_else(|| DomainError::validation("role", "must be customer, vendor or admin").into())
}

fn created(user: User) -> Response {
    (StatusCode::CREATED, Json(UserDto::from(user))).into_response()
}

impl From<Tokens> for TokenResponse {
    fn from(t: Tokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
        }
    }
}

// ---------------------------------------------------------------- /auth

/// Create a customer account.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, body = UserDto), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn register(
    State(state): State<App>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<RegisterBody>,
) -> AppResult<Response> {
    meta.refuse_key(PASSWORD_BODY)?;
    let user = state
        .create_account(ip.0, &body.email, body.password, &body.name, Role::Customer)
        .await?;
    Ok(created(user))
}

/// Sign in with e-mail and password; answers an OAuth2 token response.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<App>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<LoginBody>,
) -> AppResult<Json<TokenResponse>> {
    meta.refuse_key(NEW_CREDENTIALS)?;
    if body.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(DomainError::validation("grant_type", "must be password").into());
    }
    Ok(Json(
        state.login(ip.0, &body.email, body.password).await?.into(),
    ))
}

/// Exchange a refresh token for a new token pair; the old refresh token is
/// spent. Presenting a spent one revokes its whole session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<App>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<RefreshBody>,
) -> AppResult<Json<TokenResponse>> {
    meta.refuse_key(NEW_CREDENTIALS)?;
    if body
        .grant_type
        .as_deref()
        .is_some_and(|g| g != "refresh_token")
    {
        return Err(DomainError::validation("grant_type", "must be refresh_token").into());
    }
    Ok(Json(state.refresh(ip.0, &body.refresh_token).await?.into()))
}

/// Sign out: revoke the session of this refresh token (its access tokens stop working).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = LogoutBody,
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<App>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<LogoutBody>,
) -> AppResult<StatusCode> {
    meta.refuse_key("revoking a revoked session answers 204 again, so a plain retry is safe")?;
    state.logout(ip.0, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password-reset token (sent by the notification consumer of the
/// `PasswordResetRequested` event). Always 202, whether or not the account exists.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", request_body = ResetRequestBody,
    responses((status = 202), (status = 429, body = ErrorBody)))]
pub async fn request_password_reset(
    State(state): State<App>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<ResetRequestBody>,
) -> AppResult<StatusCode> {
    meta.refuse_key("the answer (202) comes before anything is written")?;
    state.request_password_reset(ip.0, &body.email)?;
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with a reset token (single use; ends every session).
#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirmBody,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn confirm_password_reset(
    State(state): State<App>,
    ip: ClientIp,
    meta: MutationMeta,
    AppJson(body): AppJson<ResetConfirmBody>,
) -> AppResult<StatusCode> {
    meta.refuse_key(PASSWORD_BODY)?;
    state
        .confirm_password_reset(ip.0, &body.token, body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start signing access tokens with a new key; the previous keys keep
/// verifying until every token they signed has expired.
#[utoipa::path(post, path = "/api/v1/auth/signing-keys/rotate", tag = "auth",
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = SigningKeyDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn rotate_signing_key(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    meta: MutationMeta,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&admin), &());
    let rendered = state.rotate_signing_key(tag).await?;
    Ok(rendered.map(|kid| SigningKeyDto { kid }).into_response())
}

// ---------------------------------------------------------------- /api/v1/users

/// Create an account with any role (admins, or the operator token: this is how
/// `ecommerce user create` bootstraps the first admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserBody,
    params(("X-Operator-Token" = Option<String>, Header)),
    responses((status = 201, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<App>,
    Operator(_by): Operator,
    meta: MutationMeta,
    AppJson(body): AppJson<CreateUserBody>,
) -> AppResult<Response> {
    meta.refuse_key(PASSWORD_BODY)?;
    let role = parse_role(&body.role)?;
    let user = state
        .create_account(None, &body.email, body.password, &body.name, role)
        .await?;
    Ok(created(user))
}

/// List accounts in id order (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserListParams),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<App>,
    AdminOnly(_admin): AdminOnly,
    AppQuery(params): AppQuery<UserListParams>,
) -> AppResult<Json<UserList>> {
    let limit = params.limit.unwrap_or(100);
    let items = state
        .list_accounts(
            params.after.as_deref(),
            limit,
            params.consistency.unwrap_or_default(),
        )
        .await?;
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
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppPath(id): AppPath<String>,
) -> AppResult<Json<UserDto>> {
    Ok(Json(state.get_account(&actor, &id).await?.into()))
}

/// Update name and addresses: `me`, your own id, or (admins) anyone's.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = ProfileBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<ProfileBody>,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&actor), &body);
    let address =
        |field: &str, a: &Option<Option<AddressDto>>| -> AppResult<Option<Option<Address>>> {
            Ok(match a {
                None => None,
                Some(None) => Some(None),
                Some(Some(dto)) => Some(Some(Address::parse(field, dto.clone().into())?)),
            })
        };
    let change = ProfileChange {
        name: body.name.clone(),
        shipping_address: address("shipping_address", &body.shipping_address)?,
        billing_address: address("billing_address", &body.billing_address)?,
    };
    let rendered = state.update_profile(&actor, &id, change, tag).await?;
    Ok(rendered.map(UserDto::from).into_response())
}

/// Delete and anonymise an account (`me`, your own id, or admins anyone's):
/// e-mail, name, addresses and password are erased, every session ends; the
/// id stays so orders keep their history.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_user(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&actor), &());
    let rendered = state.delete_account(&actor, &id, tag).await?;
    Ok(rendered.map(UserDto::from).into_response())
}

/// Change the role of an account (admins). Ends that account's sessions.
#[utoipa::path(put, path = "/api/v1/users/{id}/role", tag = "users", request_body = RoleBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_role(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<RoleBody>,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&admin), &body);
    let role = parse_role(&body.role)?;
    let rendered = state.set_role(&admin, id, role, tag).await?;
    Ok(rendered.map(UserDto::from).into_response())
}

/// Change your own password (`me` or your id); ends every session, so sign in again.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", request_body = ChangePasswordBody,
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<ChangePasswordBody>,
) -> AppResult<StatusCode> {
    meta.refuse_key(
        "the body holds passwords; a change ends every session, so a retry is refused as unauthenticated anyway",
    )?;
    state
        .change_password(&actor, &id, body.current_password, body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
