//! Users: accounts, profiles and addresses, sessions (refresh-token
//! families), password resets and the token signing key ring.
//!
//! What lives here is the replicated part of authentication. Password hashing,
//! token signing and randomness happen in the API layer *before* a command is
//! proposed: commands carry a finished PHC hash, the SHA-256 digest of an opaque
//! token, or a freshly generated key, so applying them stays deterministic.
//! Expiry is measured in log-ordered time ([`ApplyContext::now_ms`], the
//! proposing leader's clock); a command carries only a time-to-live.
//!
//! Architecture invariant: a command validates everything before its first
//! write, so a refused command leaves no trace. A reused refresh token is not a
//! refusal: the revocation of its family must persist, so it is an `Ok`
//! outcome ([`UsersResponse::RefreshReused`]) that the API answers with a 401.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::check;
use crate::command::{ApplyContext, Response};
use crate::store::{self, KeyPart, Store, StoreExt, StoreFault, StoreMut};
use crate::{ApplyError, DomainError, Event, Role};

/// Users keyed by id.
pub const USERS: &str = "users";
/// Normalised e-mail -> user id: the uniqueness index.
pub const USERS_BY_EMAIL: &str = "users_by_email";
/// Sessions (refresh-token families) keyed by family id.
pub const SESSIONS: &str = "auth_sessions";
/// Password-reset tokens keyed by the SHA-256 digest of the token.
pub const RESET_TOKENS: &str = "auth_reset_tokens";
/// The signing key ring, one value under the key `ring`.
pub const SIGNING_KEYS: &str = "auth_signing_keys";
const KEY_RING: &str = "ring";
/// Social sign-ins under way, keyed by the SHA-256 digest of their `state`.
pub const SOCIAL_PENDING: &str = "auth_social_pending";
/// (provider, provider's subject) -> user id: the accounts a social identity signs in to.
pub const SOCIAL_LINKS: &str = "auth_social_links";
/// (user id, provider, subject) -> (provider, subject): the social identities
/// of an account, so deleting it can unlink them.
pub const SOCIAL_LINKS_BY_USER: &str = "auth_social_links_by_user";
/// Most social identities one account unlinks when it is deleted.
const MAX_SOCIAL_LINKS: usize = 1024;
/// (expires_ms, table, id) -> its expiry entry: sessions, reset tokens and
/// pending social sign-ins in expiry order, for the sweep.
pub const AUTH_EXPIRY: &str = "auth_expiry";
/// Most expiry entries one [`UserCommand::ExpireAuth`] looks at.
pub const EXPIRE_BATCH: usize = 1000;

/// Past refresh-token digests remembered per family to recognise reuse.
pub const MAX_PREVIOUS_TOKENS: usize = 256;
/// Shortest and longest password accepted (in characters).
pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 128;

mod model;
mod query;
pub use model::*;
pub use query::*;

// Commands live for one request; boxing the big variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserCommand {
    /// Create an account. Fails with `email_taken` if the address is in use.
    Register {
        user_id: String,
        email: Email,
        name: String,
        role: Role,
        password_hash: Option<Secret<String>>,
        email_verified: bool,
    },
    /// Change name and addresses; `Some(None)` clears an address.
    UpdateProfile {
        user_id: String,
        name: Option<String>,
        shipping_address: Option<Option<Address>>,
        billing_address: Option<Option<Address>>,
    },
    SetRole {
        user_id: String,
        role: Role,
    },
    /// Replace the password, if the security version is still the one the
    /// current password was checked against.
    ChangePassword {
        user_id: String,
        password_hash: Secret<String>,
        expected_security_version: u64,
    },
    /// Start a session after the credentials were checked against the
    /// account at `expected_security_version`.
    StartSession {
        user_id: String,
        family_id: String,
        token_hash: String,
        ttl_ms: u64,
        expected_security_version: u64,
    },
    /// Exchange the refresh token with digest `presented_hash` for `new_hash`.
    RefreshSession {
        family_id: String,
        presented_hash: String,
        new_hash: String,
        ttl_ms: u64,
    },
    /// Logout: revoke the family of the presented refresh token.
    RevokeSession {
        family_id: String,
        presented_hash: String,
    },
    /// Store a reset token for the account and announce it (the notification
    /// consumer sends it).
    RequestPasswordReset {
        user_id: String,
        token_hash: String,
        token: Secret<String>,
        ttl_ms: u64,
    },
    /// Use a reset token (once, before it expires) to set a new password.
    ResetPassword {
        token_hash: String,
        password_hash: Secret<String>,
    },
    /// Delete and anonymise an account; its id stays (orders refer to it).
    DeleteUser {
        user_id: String,
    },
    /// Install a first signing key unless one is active (safe to race).
    EnsureSigningKey {
        kid: String,
        secret: Secret<Vec<u8>>,
    },
    /// Make a new key the active one; the old one verifies for `retain_ms`
    /// more, then is dropped by a later rotation.
    RotateSigningKey {
        kid: String,
        secret: Secret<Vec<u8>>,
        retain_ms: u64,
    },
    /// Remember a social sign-in sent to the provider, until `ttl_ms`.
    BeginSocialLogin {
        state_hash: String,
        pending: PendingSocialLogin,
        ttl_ms: u64,
    },
    /// Take (once) the pending sign-in whose `state` has digest `state_hash`.
    TakeSocialLogin {
        state_hash: String,
        provider: String,
    },
    /// Sign in the account linked to `identity`, linking it first to the live
    /// account with the same *verified* address, or creating an account
    /// (`new_user_id`) for it; then start a session as `StartSession` does.
    SocialSignIn {
        identity: SocialIdentity,
        new_user_id: String,
        family_id: String,
        token_hash: String,
        ttl_ms: u64,
    },
    /// Remove sessions, reset tokens and pending social sign-ins that have
    /// expired by the command's time (a batch at a time; answers
    /// `Response::Expired` with the number of expiry entries swept).
    ExpireAuth,
    /// As `RequestPasswordReset`, but the token itself is nowhere in the
    /// command: `delivery` is the token sealed by the node for the
    /// notification side, which alone opens it (announced as
    /// `PasswordResetIssued`).
    IssuePasswordReset {
        user_id: String,
        token_hash: String,
        delivery: String,
        ttl_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UsersResponse {
    User(User),
    Session {
        user: User,
        family_id: String,
    },
    /// A rotated refresh token was presented again: its family is revoked.
    RefreshReused,
    SessionRevoked,
    /// A reset token was stored (or nothing happened, for a deleted account).
    ResetRequested,
    SigningKey {
        kid: String,
    },
    SocialLoginBegun,
    SocialLoginTaken(PendingSocialLogin),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserEvent {
    UserRegistered {
        user_id: String,
        role: Role,
    },
    UserRoleChanged {
        user_id: String,
        role: Role,
    },
    PasswordChanged {
        user_id: String,
    },
    /// The notification consumer e-mails `token` to the account's address.
    PasswordResetRequested {
        user_id: String,
        token: Secret<String>,
        expires_ms: u64,
    },
    UserDeleted {
        user_id: String,
    },
    SigningKeyRotated {
        kid: String,
    },
    /// A social identity now signs in to this account.
    SocialIdentityLinked {
        user_id: String,
        provider: String,
    },
    /// The notification side opens `delivery` (the reset token, sealed for
    /// it) and e-mails the token to the account's address.
    PasswordResetIssued {
        user_id: String,
        delivery: String,
        expires_ms: u64,
    },
}

impl UserEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UserRegistered { .. } => "UserRegistered",
            Self::UserRoleChanged { .. } => "UserRoleChanged",
            Self::PasswordChanged { .. } => "PasswordChanged",
            Self::PasswordResetRequested { .. } => "PasswordResetRequested",
            Self::UserDeleted { .. } => "UserDeleted",
            Self::SigningKeyRotated { .. } => "SigningKeyRotated",
            Self::SocialIdentityLinked { .. } => "SocialIdentityLinked",
            Self::PasswordResetIssued { .. } => "PasswordResetIssued",
        }
    }

    pub fn data(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::UserRegistered { user_id, role } | Self::UserRoleChanged { user_id, role } => {
                json!({ "user_id": user_id, "role": role.as_str() })
            }
            Self::PasswordChanged { user_id } | Self::UserDeleted { user_id } => {
                json!({ "user_id": user_id })
            }
            Self::PasswordResetRequested {
                user_id,
                token,
                expires_ms,
            } => json!({ "user_id": user_id, "token": token.0, "expires_ms": expires_ms }),
            Self::SigningKeyRotated { kid } => json!({ "kid": kid }),
            Self::SocialIdentityLinked { user_id, provider } => {
                json!({ "user_id": user_id, "provider": provider })
            }
            Self::PasswordResetIssued {
                user_id,
                delivery,
                expires_ms,
            } => json!({ "user_id": user_id, "delivery": delivery, "expires_ms": expires_ms }),
        }
    }
}

/// Longest sealed delivery payload a command may carry.
const MAX_DELIVERY_BYTES: usize = 4096;

/// Longest password hash (a PHC string) a command may store.
const MAX_PASSWORD_HASH_BYTES: usize = 1024;

/// A password enters the log only hashed: what a command carries must be an
/// argon2id PHC string, so a proposer that forgot to hash is refused rather
/// than writing a password into every replica, snapshot and backup.
fn check_hash(hash: &Secret<String>) -> Result<(), DomainError> {
    if hash.0.len() > MAX_PASSWORD_HASH_BYTES || !hash.0.starts_with("$argon2id$") {
        return Err(DomainError::validation(
            "password_hash",
            format!("must be an argon2id PHC string of at most {MAX_PASSWORD_HASH_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn check_email(email: &Email) -> Result<(), DomainError> {
    check::canonical("email", email, Email::parse(email.as_str()))
}

fn check_address(field: &str, address: &Option<Option<Address>>) -> Result<(), DomainError> {
    match address {
        Some(Some(a)) => check::canonical(field, a, Address::parse(field, a.clone())),
        _ => Ok(()),
    }
}

impl UserCommand {
    /// Checks the command's fields (see [`crate::Command::validate`]): what
    /// the API parsed, and the identifiers and digests it made, which are
    /// stored as keys. What is only looked up is not checked: a wrong value
    /// finds nothing and gets the command's own refusal.
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            Self::Register {
                user_id,
                email,
                name,
                password_hash,
                ..
            } => {
                check::opaque("user_id", user_id)?;
                check_email(email)?;
                check::text("name", name, 200)?;
                match password_hash {
                    Some(h) => check_hash(h),
                    None => Ok(()),
                }
            }
            Self::UpdateProfile {
                name,
                shipping_address,
                billing_address,
                ..
            } => {
                if let Some(name) = name {
                    check::text("name", name, 200)?;
                }
                check_address("shipping_address", shipping_address)?;
                check_address("billing_address", billing_address)
            }
            Self::ChangePassword { password_hash, .. }
            | Self::ResetPassword { password_hash, .. } => check_hash(password_hash),
            Self::StartSession {
                family_id,
                token_hash,
                ..
            } => {
                check::opaque("family_id", family_id)?;
                check::opaque("token_hash", token_hash)
            }
            Self::RefreshSession { new_hash, .. } => check::opaque("new_hash", new_hash),
            Self::RequestPasswordReset { token_hash, .. } => {
                check::opaque("token_hash", token_hash)
            }
            Self::IssuePasswordReset {
                token_hash,
                delivery,
                ..
            } => {
                check::opaque("token_hash", token_hash)?;
                if delivery.is_empty() || delivery.len() > MAX_DELIVERY_BYTES {
                    return Err(DomainError::validation(
                        "delivery",
                        format!("must be 1 to {MAX_DELIVERY_BYTES} bytes"),
                    ));
                }
                Ok(())
            }
            Self::EnsureSigningKey { kid, secret } | Self::RotateSigningKey { kid, secret, .. } => {
                validate_key(kid, secret)
            }
            Self::BeginSocialLogin {
                state_hash,
                pending,
                ..
            } => {
                check::opaque("state", state_hash)?;
                check::opaque("provider", &pending.provider)?;
                check::opaque("nonce", &pending.nonce)?;
                check::opaque("verifier", &pending.verifier.0)
            }
            Self::SocialSignIn {
                identity,
                new_user_id,
                family_id,
                token_hash,
                ..
            } => {
                check::opaque("provider", &identity.provider)?;
                check::opaque("subject", &identity.subject)?;
                if let Some(email) = &identity.email {
                    check_email(email)?;
                }
                check::opaque("user_id", new_user_id)?;
                check::opaque("family_id", family_id)?;
                check::opaque("token_hash", token_hash)
            }
            Self::SetRole { .. }
            | Self::RevokeSession { .. }
            | Self::DeleteUser { .. }
            | Self::TakeSocialLogin { .. }
            | Self::ExpireAuth => Ok(()),
        }
    }
}

fn eq_digest(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn put_user(store: &mut dyn StoreMut, user: &User) -> Result<(), StoreFault> {
    store::put(store, USERS, &[KeyPart::Str(&user.id)], user)
}

/// One record of [`AUTH_EXPIRY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ExpiryEntry {
    expires_ms: u64,
    table: String,
    id: String,
}

/// A new account as of this command: no password, address unproven.
fn new_user(ctx: &ApplyContext, user_id: &str, email: &Email, name: String, role: Role) -> User {
    User {
        id: user_id.to_string(),
        email: Some(email.clone()),
        name,
        role,
        password_hash: None,
        email_verified: false,
        shipping_address: None,
        billing_address: None,
        security_version: 1,
        created_ms: ctx.now_ms,
        deleted: false,
        version: ctx.version,
    }
}

/// Stores a new account whose address the caller found free: the record,
/// the e-mail index and `UserRegistered`.
fn insert_user(store: &mut dyn StoreMut, user: &User) -> Result<(), ApplyError> {
    if get_user(store, &user.id)?.is_some() {
        return Err(DomainError::validation("user_id", "is already in use").into());
    }
    if let Some(email) = &user.email {
        store::put(
            store,
            USERS_BY_EMAIL,
            &[KeyPart::Str(email.as_str())],
            &user.id,
        )?;
    }
    put_user(store, user)?;
    store.emit(Event::User(UserEvent::UserRegistered {
        user_id: user.id.clone(),
        role: user.role,
    }));
    Ok(())
}

/// The user, unless absent or deleted.
fn live_user(store: &dyn Store, user_id: &str) -> Result<Option<User>, StoreFault> {
    Ok(get_user(store, user_id)?.filter(|u| !u.deleted))
}

/// The user, or `UserNotFound` when absent or deleted.
fn existing_user(store: &dyn Store, user_id: &str) -> Result<User, ApplyError> {
    live_user(store, user_id)?.ok_or_else(|| DomainError::UserNotFound(user_id.to_string()).into())
}

fn ok(response: UsersResponse) -> Result<Response, ApplyError> {
    Ok(Response::Users(Box::new(response)))
}

mod accounts;
mod expiry;
mod keys;
mod reset;
mod sessions;
mod social;

pub use expiry::next_auth_expiry;
pub use sessions::session_is_live;

use expiry::index_expiry;
use keys::validate_key;
use sessions::new_session;

pub fn apply(
    command: &UserCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Response, ApplyError> {
    match command {
        UserCommand::Register {
            user_id,
            email,
            name,
            role,
            password_hash,
            email_verified,
        } => accounts::register(
            ctx,
            store,
            user_id,
            email,
            name,
            role,
            password_hash,
            email_verified,
        ),
        UserCommand::UpdateProfile {
            user_id,
            name,
            shipping_address,
            billing_address,
        } => accounts::update_profile(ctx, store, user_id, name, shipping_address, billing_address),
        UserCommand::SetRole { user_id, role } => accounts::set_role(ctx, store, user_id, role),
        UserCommand::ChangePassword {
            user_id,
            password_hash,
            expected_security_version,
        } => accounts::change_password(
            ctx,
            store,
            user_id,
            password_hash,
            expected_security_version,
        ),
        UserCommand::StartSession {
            user_id,
            family_id,
            token_hash,
            ttl_ms,
            expected_security_version,
        } => sessions::start_session(
            ctx,
            store,
            user_id,
            family_id,
            token_hash,
            ttl_ms,
            expected_security_version,
        ),
        UserCommand::RefreshSession {
            family_id,
            presented_hash,
            new_hash,
            ttl_ms,
        } => sessions::refresh_session(ctx, store, family_id, presented_hash, new_hash, ttl_ms),
        UserCommand::RevokeSession {
            family_id,
            presented_hash,
        } => sessions::revoke_session(store, family_id, presented_hash),
        UserCommand::RequestPasswordReset {
            user_id,
            token_hash,
            token,
            ttl_ms,
        } => reset::request_password_reset(
            ctx,
            store,
            user_id,
            token_hash,
            ttl_ms,
            UserEvent::PasswordResetRequested {
                user_id: user_id.clone(),
                token: token.clone(),
                expires_ms: ctx.now_ms.saturating_add(*ttl_ms),
            },
        ),
        UserCommand::IssuePasswordReset {
            user_id,
            token_hash,
            delivery,
            ttl_ms,
        } => reset::request_password_reset(
            ctx,
            store,
            user_id,
            token_hash,
            ttl_ms,
            UserEvent::PasswordResetIssued {
                user_id: user_id.clone(),
                delivery: delivery.clone(),
                expires_ms: ctx.now_ms.saturating_add(*ttl_ms),
            },
        ),
        UserCommand::ResetPassword {
            token_hash,
            password_hash,
        } => reset::reset_password(ctx, store, token_hash, password_hash),
        UserCommand::DeleteUser { user_id } => accounts::delete_user(ctx, store, user_id),
        UserCommand::EnsureSigningKey { kid, secret } => {
            keys::ensure_signing_key(ctx, store, kid, secret)
        }
        UserCommand::RotateSigningKey {
            kid,
            secret,
            retain_ms,
        } => keys::rotate_signing_key(ctx, store, kid, secret, retain_ms),
        UserCommand::BeginSocialLogin {
            state_hash,
            pending,
            ttl_ms,
        } => social::begin_social_login(ctx, store, state_hash, pending, ttl_ms),
        UserCommand::TakeSocialLogin {
            state_hash,
            provider,
        } => social::take_social_login(ctx, store, state_hash, provider),
        UserCommand::ExpireAuth => expiry::expire_auth(ctx, store),
        UserCommand::SocialSignIn {
            identity,
            new_user_id,
            family_id,
            token_hash,
            ttl_ms,
        } => social::social_sign_in(
            ctx,
            store,
            identity,
            new_user_id,
            family_id,
            token_hash,
            ttl_ms,
        ),
    }
}

#[cfg(test)]
mod tests;
