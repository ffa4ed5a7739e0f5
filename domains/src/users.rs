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
use crate::command::{ApplyContext, Outcome, Response};
use crate::store::{self, KeyPart, Store, StoreExt, StoreFault, StoreMut};
use crate::{DomainError, Event, Role};

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

/// A secret value whose `Debug` never shows it (commands and events are
/// logged with `{:?}` in places).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret<T>(pub T);

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A normalised e-mail address: trimmed, lower-cased, `local@domain` with a
/// dot in the domain, at most 254 characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::validation("email", "must be an e-mail address");
        let email = raw.trim().to_lowercase();
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let domain_ok = !domain.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// E-mail addresses are personal data: `Debug` shows only the domain.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.0.split_once('@').map_or("", |(_, d)| d);
        write!(f, "Email(***@{domain})")
    }
}

/// The password policy (NIST SP 800-63B style): 12 to 128 characters, not
/// one repeated character, not the e-mail address. No composition rules.
pub fn check_password_policy(password: &str, email: Option<&Email>) -> Result<(), DomainError> {
    let chars = password.chars().count();
    let weak = |message: &str| DomainError::WeakPassword {
        message: message.to_string(),
    };
    if chars < PASSWORD_MIN_CHARS {
        return Err(weak("must be at least 12 characters long"));
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(weak("must be at most 128 characters long"));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return Err(weak("must use at least 4 different characters"));
    }
    if let Some(email) = email {
        let lower = password.to_lowercase();
        let local = email.as_str().split('@').next().unwrap_or("");
        if lower == email.as_str() || lower == local {
            return Err(weak("must not be the e-mail address"));
        }
    }
    Ok(())
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
}

impl Address {
    /// Checks lengths and the country code; trims every field.
    pub fn parse(field: &str, mut a: Address) -> Result<Self, DomainError> {
        let bad =
            |sub: &str, message: &str| DomainError::validation(&format!("{field}.{sub}"), message);
        let required = |sub: &str, value: &mut String, max: usize| {
            *value = value.trim().to_string();
            if value.is_empty() || value.chars().count() > max {
                Err(bad(sub, &format!("must be 1 to {max} characters")))
            } else {
                Ok(())
            }
        };
        required("line1", &mut a.line1, 200)?;
        required("city", &mut a.city, 100)?;
        required("postal_code", &mut a.postal_code, 20)?;
        for (sub, value) in [("line2", &mut a.line2), ("region", &mut a.region)] {
            if let Some(v) = value {
                *v = v.trim().to_string();
                if v.chars().count() > 200 {
                    return Err(bad(sub, "must be at most 200 characters"));
                }
            }
        }
        a.country = a.country.trim().to_ascii_uppercase();
        if a.country.len() != 2 || !a.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad("country", "must be an ISO 3166-1 alpha-2 code"));
        }
        Ok(a)
    }
}

/// A display name: 1 to 200 characters after trimming.
pub fn parse_name(raw: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(DomainError::validation(
            "name",
            "must be 1 to 200 characters",
        ));
    }
    Ok(name.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    /// `None` once the account is deleted (anonymised).
    pub email: Option<Email>,
    pub name: String,
    pub role: Role,
    /// PHC string (argon2id); `None` for accounts that only sign in socially,
    /// and for deleted accounts.
    pub password_hash: Option<Secret<String>>,
    pub email_verified: bool,
    pub shipping_address: Option<Address>,
    pub billing_address: Option<Address>,
    /// Bumped by every change that must end existing sessions and access
    /// tokens: password change or reset, role change, deletion.
    pub security_version: u64,
    pub created_ms: u64,
    pub deleted: bool,
    /// Version of the write that last changed it (`ApplyContext::version`).
    pub version: u64,
}

/// One signed-in session: a family of refresh tokens, each used once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub family_id: String,
    pub user_id: String,
    /// Digest of the one refresh token that is valid now.
    pub current_hash: String,
    /// Digests of the tokens already rotated away (to recognise reuse).
    pub previous: Vec<String>,
    /// The user's security version when the session started.
    pub user_version: u64,
    pub expires_ms: u64,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetToken {
    pub user_id: String,
    pub expires_ms: u64,
    pub used: bool,
}

/// A social sign-in between the redirect to the provider and the callback:
/// what the callback needs and must not come from the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSocialLogin {
    pub provider: String,
    /// The PKCE code verifier (RFC 7636), sent only to the provider's token endpoint.
    pub verifier: Secret<String>,
    /// The OpenID Connect nonce the ID token must carry.
    pub nonce: String,
    pub expires_ms: u64,
}

/// Who a provider says signed in, as the callback established it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocialIdentity {
    pub provider: String,
    /// The provider's stable user id (`sub`, GitHub's numeric id, ...).
    pub subject: String,
    pub email: Option<Email>,
    /// Whether the provider vouches that the address belongs to the person.
    pub email_verified: bool,
    pub name: String,
}

/// An HMAC-SHA256 signing key for access tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    pub kid: String,
    pub secret: Secret<Vec<u8>>,
    pub created_ms: u64,
    /// When it stopped signing; it still verifies for the access-token TTL.
    pub retired_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    /// The kid of the key that signs new tokens.
    pub active: Option<String>,
    pub keys: Vec<SigningKey>,
}

impl KeyRing {
    pub fn active_key(&self) -> Option<&SigningKey> {
        let kid = self.active.as_deref()?;
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn key(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

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
        }
    }
}

/// Longest password hash (a PHC string) a command may store.
const MAX_PASSWORD_HASH_BYTES: usize = 1024;

fn check_hash(hash: &Secret<String>) -> Result<(), DomainError> {
    if hash.0.is_empty() || hash.0.len() > MAX_PASSWORD_HASH_BYTES {
        return Err(DomainError::validation(
            "password_hash",
            format!("must be 1 to {MAX_PASSWORD_HASH_BYTES} bytes"),
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

pub fn get_user(store: &dyn Store, user_id: &str) -> Result<Option<User>, StoreFault> {
    store.get(USERS, &[KeyPart::Str(user_id)])
}

/// The live account with this e-mail address, if any.
pub fn user_by_email(store: &dyn Store, email: &Email) -> Result<Option<User>, StoreFault> {
    let id: Option<String> = store.get(USERS_BY_EMAIL, &[KeyPart::Str(email.as_str())])?;
    match id {
        Some(id) => get_user(store, &id),
        None => Ok(None),
    }
}

pub fn list_users(
    store: &dyn Store,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<User>, StoreFault> {
    let after = after.map(|a| [KeyPart::Str(a)]);
    store.scan(USERS, &[], after.as_ref().map(|a| &a[..]), limit)
}

pub fn get_session(store: &dyn Store, family_id: &str) -> Result<Option<Session>, StoreFault> {
    store.get(SESSIONS, &[KeyPart::Str(family_id)])
}

pub fn key_ring(store: &dyn Store) -> Result<KeyRing, StoreFault> {
    Ok(store
        .get(SIGNING_KEYS, &[KeyPart::Str(KEY_RING)])?
        .unwrap_or_default())
}

/// True when `session` may authorise requests for `user` at `now_ms`.
pub fn session_is_live(session: &Session, user: &User, now_ms: u64) -> bool {
    !session.revoked
        && !user.deleted
        && session.user_id == user.id
        && session.user_version == user.security_version
        && now_ms < session.expires_ms
}

fn eq_digest(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn put_user(store: &mut dyn StoreMut, user: &User) -> Result<(), StoreFault> {
    store::put(store, USERS, &[KeyPart::Str(&user.id)], user)
}

fn put_session(store: &mut dyn StoreMut, session: &Session) -> Result<(), StoreFault> {
    store::put(
        store,
        SESSIONS,
        &[KeyPart::Str(&session.family_id)],
        session,
    )?;
    index_expiry(store, SESSIONS, &session.family_id, session.expires_ms)
}

/// One record of [`AUTH_EXPIRY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ExpiryEntry {
    expires_ms: u64,
    table: String,
    id: String,
}

/// Notes that the record `id` of `table` expires at `expires_ms`. A record
/// whose expiry moves later (a refreshed session) gets one entry per expiry;
/// the sweep removes a record only once its own `expires_ms` has passed.
fn index_expiry(
    store: &mut dyn StoreMut,
    table: &'static str,
    id: &str,
    expires_ms: u64,
) -> Result<(), StoreFault> {
    store::put(
        store,
        AUTH_EXPIRY,
        &[
            KeyPart::U64(expires_ms),
            KeyPart::Str(table),
            KeyPart::Str(id),
        ],
        &ExpiryEntry {
            expires_ms,
            table: table.to_string(),
            id: id.to_string(),
        },
    )
}

/// When the earliest indexed auth record expires (the sweeper asks this
/// before proposing anything).
pub fn next_auth_expiry(store: &dyn Store) -> Result<Option<u64>, StoreFault> {
    let first: Vec<ExpiryEntry> = store.scan(AUTH_EXPIRY, &[], None, 1)?;
    Ok(first.first().map(|e| e.expires_ms))
}

/// Sweeps up to [`EXPIRE_BATCH`] due expiry entries; removes each record
/// whose own expiry has passed. Returns the number of entries swept.
fn expire_auth(store: &mut dyn StoreMut, now_ms: u64) -> Result<u64, StoreFault> {
    let due: Vec<ExpiryEntry> = store.scan(AUTH_EXPIRY, &[], None, EXPIRE_BATCH)?;
    let mut swept: u64 = 0;
    for entry in due.iter().take_while(|e| e.expires_ms <= now_ms) {
        store.delete_raw(
            AUTH_EXPIRY,
            &[
                KeyPart::U64(entry.expires_ms),
                KeyPart::Str(&entry.table),
                KeyPart::Str(&entry.id),
            ],
        );
        swept = swept.saturating_add(1);
        let key = [KeyPart::Str(&entry.id)];
        let (table, expires_ms) = match entry.table.as_str() {
            SESSIONS => (
                SESSIONS,
                store.get::<Session>(SESSIONS, &key)?.map(|r| r.expires_ms),
            ),
            RESET_TOKENS => (
                RESET_TOKENS,
                store
                    .get::<ResetToken>(RESET_TOKENS, &key)?
                    .map(|r| r.expires_ms),
            ),
            SOCIAL_PENDING => (
                SOCIAL_PENDING,
                store
                    .get::<PendingSocialLogin>(SOCIAL_PENDING, &key)?
                    .map(|r| r.expires_ms),
            ),
            _ => continue,
        };
        if expires_ms.is_some_and(|at| at <= now_ms) {
            store.delete_raw(table, &key);
        }
    }
    Ok(swept)
}

/// Starts session `family_id` of `user` with its first refresh-token digest.
fn new_session(
    store: &mut dyn StoreMut,
    ctx: &ApplyContext,
    user: User,
    family_id: &str,
    token_hash: &str,
    ttl_ms: u64,
) -> Result<Outcome, StoreFault> {
    put_session(
        store,
        &Session {
            family_id: family_id.to_string(),
            user_id: user.id.clone(),
            current_hash: token_hash.to_string(),
            previous: Vec::new(),
            user_version: user.security_version,
            expires_ms: ctx.now_ms.saturating_add(ttl_ms),
            revoked: false,
        },
    )?;
    ok(UsersResponse::Session {
        user,
        family_id: family_id.to_string(),
    })
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
fn insert_user(
    store: &mut dyn StoreMut,
    user: &User,
) -> Result<Result<(), DomainError>, StoreFault> {
    if get_user(store, &user.id)?.is_some() {
        return Ok(Err(DomainError::validation("user_id", "is already in use")));
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
    Ok(Ok(()))
}

fn live_user(store: &dyn Store, user_id: &str) -> Result<Result<User, DomainError>, StoreFault> {
    Ok(match get_user(store, user_id)? {
        Some(u) if !u.deleted => Ok(u),
        _ => Err(DomainError::UserNotFound(user_id.to_string())),
    })
}

fn ok(response: UsersResponse) -> Result<Outcome, StoreFault> {
    Ok(Ok(Response::Users(Box::new(response))))
}

macro_rules! check {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

pub fn apply(
    command: &UserCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Outcome, StoreFault> {
    match command {
        UserCommand::Register {
            user_id,
            email,
            name,
            role,
            password_hash,
            email_verified,
        } => {
            if store
                .get_raw(USERS_BY_EMAIL, &[KeyPart::Str(email.as_str())])?
                .is_some()
            {
                return Ok(Err(DomainError::EmailTaken));
            }
            let user = User {
                password_hash: password_hash.clone(),
                email_verified: *email_verified,
                ..new_user(ctx, user_id, email, name.clone(), *role)
            };
            check!(insert_user(store, &user));
            ok(UsersResponse::User(user))
        }
        UserCommand::UpdateProfile {
            user_id,
            name,
            shipping_address,
            billing_address,
        } => {
            let mut user = check!(live_user(store, user_id));
            if let Some(name) = name {
                user.name = name.clone();
            }
            if let Some(a) = shipping_address {
                user.shipping_address = a.clone();
            }
            if let Some(a) = billing_address {
                user.billing_address = a.clone();
            }
            user.version = ctx.version;
            put_user(store, &user)?;
            ok(UsersResponse::User(user))
        }
        UserCommand::SetRole { user_id, role } => {
            let mut user = check!(live_user(store, user_id));
            if user.role != *role {
                user.role = *role;
                user.security_version = user.security_version.saturating_add(1);
                store.emit(Event::User(UserEvent::UserRoleChanged {
                    user_id: user_id.clone(),
                    role: *role,
                }));
            }
            user.version = ctx.version;
            put_user(store, &user)?;
            ok(UsersResponse::User(user))
        }
        UserCommand::ChangePassword {
            user_id,
            password_hash,
            expected_security_version,
        } => {
            let mut user = check!(live_user(store, user_id));
            if user.security_version != *expected_security_version {
                return Ok(Err(DomainError::InvalidCredentials));
            }
            user.password_hash = Some(password_hash.clone());
            user.security_version = user.security_version.saturating_add(1);
            user.version = ctx.version;
            put_user(store, &user)?;
            store.emit(Event::User(UserEvent::PasswordChanged {
                user_id: user_id.clone(),
            }));
            ok(UsersResponse::User(user))
        }
        UserCommand::StartSession {
            user_id,
            family_id,
            token_hash,
            ttl_ms,
            expected_security_version,
        } => {
            let user = match get_user(store, user_id)? {
                Some(u) if !u.deleted && u.security_version == *expected_security_version => u,
                _ => return Ok(Err(DomainError::InvalidCredentials)),
            };
            if get_session(store, family_id)?.is_some() {
                return Ok(Err(DomainError::validation(
                    "family_id",
                    "is already in use",
                )));
            }
            new_session(store, ctx, user, family_id, token_hash, *ttl_ms)
        }
        UserCommand::RefreshSession {
            family_id,
            presented_hash,
            new_hash,
            ttl_ms,
        } => {
            let Some(mut session) = get_session(store, family_id)? else {
                return Ok(Err(DomainError::InvalidRefreshToken));
            };
            if session
                .previous
                .iter()
                .any(|h| eq_digest(h, presented_hash))
            {
                if !session.revoked {
                    session.revoked = true;
                    put_session(store, &session)?;
                }
                return ok(UsersResponse::RefreshReused);
            }
            if !eq_digest(&session.current_hash, presented_hash) {
                return Ok(Err(DomainError::InvalidRefreshToken));
            }
            let user = match get_user(store, &session.user_id)? {
                Some(u) if session_is_live(&session, &u, ctx.now_ms) => u,
                _ => return Ok(Err(DomainError::InvalidRefreshToken)),
            };
            let old = std::mem::replace(&mut session.current_hash, new_hash.clone());
            session.previous.push(old);
            if session.previous.len() > MAX_PREVIOUS_TOKENS {
                session.previous.remove(0);
            }
            session.expires_ms = ctx.now_ms.saturating_add(*ttl_ms);
            put_session(store, &session)?;
            ok(UsersResponse::Session {
                user,
                family_id: family_id.clone(),
            })
        }
        UserCommand::RevokeSession {
            family_id,
            presented_hash,
        } => {
            let Some(mut session) = get_session(store, family_id)? else {
                return Ok(Err(DomainError::InvalidRefreshToken));
            };
            let known = eq_digest(&session.current_hash, presented_hash)
                || session
                    .previous
                    .iter()
                    .any(|h| eq_digest(h, presented_hash));
            if !known {
                return Ok(Err(DomainError::InvalidRefreshToken));
            }
            if !session.revoked {
                session.revoked = true;
                put_session(store, &session)?;
            }
            ok(UsersResponse::SessionRevoked)
        }
        UserCommand::RequestPasswordReset {
            user_id,
            token_hash,
            token,
            ttl_ms,
        } => {
            let Ok(_) = check_live(store, user_id)? else {
                // Deleted meanwhile: answer as if done (no enumeration).
                return ok(UsersResponse::ResetRequested);
            };
            let expires_ms = ctx.now_ms.saturating_add(*ttl_ms);
            store::put(
                store,
                RESET_TOKENS,
                &[KeyPart::Str(token_hash)],
                &ResetToken {
                    user_id: user_id.clone(),
                    expires_ms,
                    used: false,
                },
            )?;
            index_expiry(store, RESET_TOKENS, token_hash, expires_ms)?;
            store.emit(Event::User(UserEvent::PasswordResetRequested {
                user_id: user_id.clone(),
                token: token.clone(),
                expires_ms,
            }));
            ok(UsersResponse::ResetRequested)
        }
        UserCommand::ResetPassword {
            token_hash,
            password_hash,
        } => {
            let record: Option<ResetToken> =
                store.get(RESET_TOKENS, &[KeyPart::Str(token_hash)])?;
            let record = match record {
                Some(r) if !r.used && ctx.now_ms < r.expires_ms => r,
                _ => return Ok(Err(DomainError::InvalidResetToken)),
            };
            let mut user = match check_live(store, &record.user_id)? {
                Ok(u) => u,
                Err(_) => return Ok(Err(DomainError::InvalidResetToken)),
            };
            user.password_hash = Some(password_hash.clone());
            user.security_version = user.security_version.saturating_add(1);
            user.version = ctx.version;
            put_user(store, &user)?;
            store::put(
                store,
                RESET_TOKENS,
                &[KeyPart::Str(token_hash)],
                &ResetToken {
                    used: true,
                    ..record
                },
            )?;
            store.emit(Event::User(UserEvent::PasswordChanged {
                user_id: user.id.clone(),
            }));
            ok(UsersResponse::User(user))
        }
        UserCommand::DeleteUser { user_id } => {
            let mut user = check!(live_user(store, user_id));
            if let Some(email) = &user.email {
                store.delete_raw(USERS_BY_EMAIL, &[KeyPart::Str(email.as_str())]);
            }
            let links: Vec<(String, String)> = store.scan(
                SOCIAL_LINKS_BY_USER,
                &[KeyPart::Str(user_id)],
                None,
                MAX_SOCIAL_LINKS,
            )?;
            for (provider, subject) in links {
                store.delete_raw(
                    SOCIAL_LINKS,
                    &[KeyPart::Str(&provider), KeyPart::Str(&subject)],
                );
                store.delete_raw(
                    SOCIAL_LINKS_BY_USER,
                    &[
                        KeyPart::Str(user_id),
                        KeyPart::Str(&provider),
                        KeyPart::Str(&subject),
                    ],
                );
            }
            user.email = None;
            user.name = String::new();
            user.password_hash = None;
            user.shipping_address = None;
            user.billing_address = None;
            user.email_verified = false;
            user.deleted = true;
            user.security_version = user.security_version.saturating_add(1);
            user.version = ctx.version;
            put_user(store, &user)?;
            store.emit(Event::User(UserEvent::UserDeleted {
                user_id: user_id.clone(),
            }));
            ok(UsersResponse::User(user))
        }
        UserCommand::EnsureSigningKey { kid, secret } => {
            let mut ring = key_ring(store)?;
            if let Some(active) = ring.active_key() {
                return ok(UsersResponse::SigningKey {
                    kid: active.kid.clone(),
                });
            }
            check!(Ok::<_, StoreFault>(validate_key(kid, secret)));
            ring.keys.push(SigningKey {
                kid: kid.clone(),
                secret: secret.clone(),
                created_ms: ctx.now_ms,
                retired_ms: None,
            });
            ring.active = Some(kid.clone());
            store::put(store, SIGNING_KEYS, &[KeyPart::Str(KEY_RING)], &ring)?;
            store.emit(Event::User(UserEvent::SigningKeyRotated {
                kid: kid.clone(),
            }));
            ok(UsersResponse::SigningKey { kid: kid.clone() })
        }
        UserCommand::RotateSigningKey {
            kid,
            secret,
            retain_ms,
        } => {
            let mut ring = key_ring(store)?;
            check!(Ok::<_, StoreFault>(validate_key(kid, secret)));
            if ring.key(kid).is_some() {
                return Ok(Err(DomainError::validation("kid", "is already in use")));
            }
            let now = ctx.now_ms;
            ring.keys.retain(|k| {
                k.retired_ms
                    .is_none_or(|retired| now < retired.saturating_add(*retain_ms))
            });
            for key in &mut ring.keys {
                key.retired_ms.get_or_insert(now);
            }
            ring.keys.push(SigningKey {
                kid: kid.clone(),
                secret: secret.clone(),
                created_ms: now,
                retired_ms: None,
            });
            ring.active = Some(kid.clone());
            store::put(store, SIGNING_KEYS, &[KeyPart::Str(KEY_RING)], &ring)?;
            store.emit(Event::User(UserEvent::SigningKeyRotated {
                kid: kid.clone(),
            }));
            ok(UsersResponse::SigningKey { kid: kid.clone() })
        }
        UserCommand::BeginSocialLogin {
            state_hash,
            pending,
            ttl_ms,
        } => {
            let key = [KeyPart::Str(state_hash)];
            if store.get_raw(SOCIAL_PENDING, &key)?.is_some() {
                return Ok(Err(DomainError::validation("state", "is already in use")));
            }
            let pending = PendingSocialLogin {
                expires_ms: ctx.now_ms.saturating_add(*ttl_ms),
                ..pending.clone()
            };
            store::put(store, SOCIAL_PENDING, &key, &pending)?;
            index_expiry(store, SOCIAL_PENDING, state_hash, pending.expires_ms)?;
            ok(UsersResponse::SocialLoginBegun)
        }
        UserCommand::TakeSocialLogin {
            state_hash,
            provider,
        } => {
            let key = [KeyPart::Str(state_hash)];
            let pending: Option<PendingSocialLogin> = store.get(SOCIAL_PENDING, &key)?;
            match pending {
                Some(p) if p.provider == *provider && ctx.now_ms < p.expires_ms => {
                    store.delete_raw(SOCIAL_PENDING, &key);
                    ok(UsersResponse::SocialLoginTaken(p))
                }
                _ => Ok(Err(DomainError::InvalidSocialState)),
            }
        }
        UserCommand::ExpireAuth => {
            let removed = expire_auth(store, ctx.now_ms)?;
            Ok(Ok(Response::Expired { removed }))
        }
        UserCommand::SocialSignIn {
            identity,
            new_user_id,
            family_id,
            token_hash,
            ttl_ms,
        } => {
            if get_session(store, family_id)?.is_some() {
                return Ok(Err(DomainError::validation(
                    "family_id",
                    "is already in use",
                )));
            }
            let link_key = [
                KeyPart::Str(&identity.provider),
                KeyPart::Str(&identity.subject),
            ];
            let linked: Option<String> = store.get(SOCIAL_LINKS, &link_key)?;
            let linked = match linked {
                Some(id) => live_user(store, &id)?.ok(),
                None => None,
            };
            let user = match linked {
                Some(user) => user,
                None => {
                    // Link by e-mail only when the provider vouches for it.
                    let email = match (&identity.email, identity.email_verified) {
                        (Some(email), true) => email,
                        _ => return Ok(Err(DomainError::EmailNotVerified)),
                    };
                    let user = match user_by_email(store, email)? {
                        Some(mut user) if !user.deleted => {
                            if !user.email_verified {
                                // Whoever registered this address without
                                // proving it owned it loses the password and
                                // its sessions (account pre-hijacking).
                                user.password_hash = None;
                                user.email_verified = true;
                                user.security_version = user.security_version.saturating_add(1);
                                user.version = ctx.version;
                                put_user(store, &user)?;
                            }
                            user
                        }
                        _ => {
                            let name = parse_name(&identity.name)
                                .unwrap_or_else(|_| email.as_str().to_string());
                            let user = User {
                                email_verified: true,
                                ..new_user(ctx, new_user_id, email, name, Role::Customer)
                            };
                            check!(insert_user(store, &user));
                            user
                        }
                    };
                    store::put(store, SOCIAL_LINKS, &link_key, &user.id)?;
                    store::put(
                        store,
                        SOCIAL_LINKS_BY_USER,
                        &[
                            KeyPart::Str(&user.id),
                            KeyPart::Str(&identity.provider),
                            KeyPart::Str(&identity.subject),
                        ],
                        &(&identity.provider, &identity.subject),
                    )?;
                    store.emit(Event::User(UserEvent::SocialIdentityLinked {
                        user_id: user.id.clone(),
                        provider: identity.provider.clone(),
                    }));
                    user
                }
            };
            new_session(store, ctx, user, family_id, token_hash, *ttl_ms)
        }
    }
}

fn check_live(store: &dyn Store, user_id: &str) -> Result<Result<User, DomainError>, StoreFault> {
    live_user(store, user_id)
}

fn validate_key(kid: &str, secret: &Secret<Vec<u8>>) -> Result<(), DomainError> {
    if kid.is_empty() || kid.len() > 64 {
        return Err(DomainError::validation("kid", "must be 1 to 64 characters"));
    }
    if secret.0.len() < 32 {
        return Err(DomainError::validation(
            "secret",
            "must be at least 32 bytes",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    // Commands apply as the state machine applies them (idempotency, savepoint).
    use crate::store::memory::{apply, MemoryStore};

    fn ctx(log_index: u64, now_ms: u64) -> ApplyContext {
        ApplyContext {
            log_index,
            version: log_index,
            now_ms,
        }
    }

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    fn register(store: &mut MemoryStore, id: &str, address: &str) -> Outcome {
        apply(
            &UserCommand::Register {
                user_id: id.into(),
                email: email(address),
                name: "N".into(),
                role: Role::Customer,
                password_hash: Some(Secret("$argon2id$x".into())),
                email_verified: false,
            },
            &ctx(1, 1000),
            store,
        )
        .unwrap()
    }

    fn session(store: &mut MemoryStore, user: &str, family: &str, hash: &str, now: u64) -> Outcome {
        apply(
            &UserCommand::StartSession {
                user_id: user.into(),
                family_id: family.into(),
                token_hash: hash.into(),
                ttl_ms: 10_000,
                expected_security_version: 1,
            },
            &ctx(2, now),
            store,
        )
        .unwrap()
    }

    fn refresh(store: &mut MemoryStore, family: &str, old: &str, new: &str, now: u64) -> Outcome {
        apply(
            &UserCommand::RefreshSession {
                family_id: family.into(),
                presented_hash: old.into(),
                new_hash: new.into(),
                ttl_ms: 10_000,
            },
            &ctx(3, now),
            store,
        )
        .unwrap()
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email("  Alice@Example.COM ").as_str(), "alice@example.com");
        for bad in [
            "", "a", "a@b", "@b.c", "a@.b", "a@b.", "a b@c.d", "a@b@c.d", "a@b..c",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!format!("{:?}", email("alice@example.com")).contains("alice"));
    }

    #[test]
    fn password_policy_explains_what_is_wrong() {
        let e = email("alice@example.com");
        assert!(check_password_policy("correct horse battery", Some(&e)).is_ok());
        for bad in [
            "short",
            "aaaaaaaaaaaaaaaa",
            "alice@example.com",
            &"x1y2".repeat(40),
        ] {
            let err = check_password_policy(bad, Some(&e)).unwrap_err();
            assert_eq!(err.code(), "weak_password", "{bad}");
        }
    }

    #[test]
    fn one_account_per_email_and_deletion_frees_it() {
        let mut store = MemoryStore::default();
        assert!(register(&mut store, "u1", "a@b.co").is_ok());
        assert_eq!(
            register(&mut store, "u2", "A@B.co"),
            Err(DomainError::EmailTaken)
        );
        let deleted = apply(
            &UserCommand::DeleteUser {
                user_id: "u1".into(),
            },
            &ctx(3, 2000),
            &mut store,
        )
        .unwrap();
        let Ok(Response::Users(reply)) = deleted else {
            panic!("{deleted:?}")
        };
        let UsersResponse::User(user) = *reply else {
            panic!("not a user")
        };
        assert!(user.deleted && user.email.is_none() && user.password_hash.is_none());
        assert!(register(&mut store, "u2", "a@b.co").is_ok());
    }

    #[test]
    fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
        let mut store = MemoryStore::default();
        register(&mut store, "u1", "a@b.co").unwrap();
        session(&mut store, "u1", "f1", "h1", 1000).unwrap();
        assert!(matches!(
            refresh(&mut store, "f1", "h1", "h2", 2000),
            Ok(Response::Users(r)) if matches!(*r, UsersResponse::Session { .. })
        ));
        assert_eq!(
            refresh(&mut store, "f1", "nope", "h3", 2000),
            Err(DomainError::InvalidRefreshToken)
        );
        // h1 again: reuse. The family is revoked, so h2 no longer works either.
        assert_eq!(
            refresh(&mut store, "f1", "h1", "h3", 2100),
            Ok(Response::Users(Box::new(UsersResponse::RefreshReused)))
        );
        assert!(get_session(&store, "f1").unwrap().unwrap().revoked);
        assert_eq!(
            refresh(&mut store, "f1", "h2", "h4", 2200),
            Err(DomainError::InvalidRefreshToken)
        );
    }

    #[test]
    fn refresh_tokens_expire_in_log_time_and_password_change_ends_sessions() {
        let mut store = MemoryStore::default();
        register(&mut store, "u1", "a@b.co").unwrap();
        session(&mut store, "u1", "f1", "h1", 1000).unwrap();
        assert_eq!(
            refresh(&mut store, "f1", "h1", "h2", 11_000),
            Err(DomainError::InvalidRefreshToken)
        );
        session(&mut store, "u1", "f2", "k1", 20_000).unwrap();
        apply(
            &UserCommand::ChangePassword {
                user_id: "u1".into(),
                password_hash: Secret("$argon2id$y".into()),
                expected_security_version: 1,
            },
            &ctx(5, 20_001),
            &mut store,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            refresh(&mut store, "f2", "k1", "k2", 20_002),
            Err(DomainError::InvalidRefreshToken)
        );
        // A login checked against the old password is refused.
        assert_eq!(
            session(&mut store, "u1", "f3", "j1", 20_003),
            Err(DomainError::InvalidCredentials)
        );
    }

    #[test]
    fn reset_tokens_are_single_use_and_expire() {
        let mut store = MemoryStore::default();
        register(&mut store, "u1", "a@b.co").unwrap();
        let request = |hash: &str| UserCommand::RequestPasswordReset {
            user_id: "u1".into(),
            token_hash: hash.into(),
            token: Secret("t".into()),
            ttl_ms: 1000,
        };
        let reset = |hash: &str| UserCommand::ResetPassword {
            token_hash: hash.into(),
            password_hash: Secret("$argon2id$z".into()),
        };
        apply(&request("r1"), &ctx(2, 5000), &mut store)
            .unwrap()
            .unwrap();
        apply(&request("r2"), &ctx(3, 5000), &mut store)
            .unwrap()
            .unwrap();
        assert!(apply(&reset("r1"), &ctx(4, 5500), &mut store)
            .unwrap()
            .is_ok());
        assert_eq!(
            apply(&reset("r1"), &ctx(5, 5600), &mut store).unwrap(),
            Err(DomainError::InvalidResetToken)
        );
        assert_eq!(
            apply(&reset("r2"), &ctx(6, 6000), &mut store).unwrap(),
            Err(DomainError::InvalidResetToken),
            "expired at 6000"
        );
        assert!(matches!(
            store.events.last(),
            Some(Event::User(UserEvent::PasswordChanged { .. }))
        ));
    }

    #[test]
    fn key_rotation_keeps_old_keys_for_the_retention_window() {
        let mut store = MemoryStore::default();
        let secret = Secret(vec![7u8; 32]);
        let ensure = |kid: &str| UserCommand::EnsureSigningKey {
            kid: kid.into(),
            secret: secret.clone(),
        };
        apply(&ensure("k1"), &ctx(1, 0), &mut store)
            .unwrap()
            .unwrap();
        apply(&ensure("k2"), &ctx(2, 0), &mut store)
            .unwrap()
            .unwrap();
        assert_eq!(key_ring(&store).unwrap().active.as_deref(), Some("k1"));
        let rotate = |kid: &str| UserCommand::RotateSigningKey {
            kid: kid.into(),
            secret: secret.clone(),
            retain_ms: 100,
        };
        apply(&rotate("k2"), &ctx(3, 1000), &mut store)
            .unwrap()
            .unwrap();
        let ring = key_ring(&store).unwrap();
        assert_eq!(ring.active.as_deref(), Some("k2"));
        assert!(ring.key("k1").is_some());
        apply(&rotate("k3"), &ctx(4, 1100), &mut store)
            .unwrap()
            .unwrap();
        let ring = key_ring(&store).unwrap();
        assert!(ring.key("k1").is_none(), "retired at 1000, kept 100 ms");
        assert!(ring.key("k2").is_some());
        assert!(!format!("{ring:?}").contains("7, 7"));
    }

    fn identity(
        provider: &str,
        subject: &str,
        address: Option<&str>,
        verified: bool,
    ) -> SocialIdentity {
        SocialIdentity {
            provider: provider.into(),
            subject: subject.into(),
            email: address.map(email),
            email_verified: verified,
            name: "Social Name".into(),
        }
    }

    /// Signs `identity` in; the account it lands on.
    fn social(
        store: &mut MemoryStore,
        identity: SocialIdentity,
        new_id: &str,
    ) -> Result<User, DomainError> {
        let outcome = apply(
            &UserCommand::SocialSignIn {
                identity,
                new_user_id: new_id.into(),
                family_id: format!("fam-{new_id}"),
                token_hash: format!("hash-{new_id}"),
                ttl_ms: 10_000,
            },
            &ctx(5, 5000),
            store,
        )
        .unwrap()?;
        match outcome {
            Response::Users(reply) => match *reply {
                UsersResponse::Session { user, .. } => Ok(user),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn social_state_is_taken_once_by_its_provider_before_it_expires() {
        let mut store = MemoryStore::default();
        let begin = |state: &str| UserCommand::BeginSocialLogin {
            state_hash: state.into(),
            pending: PendingSocialLogin {
                provider: "google".into(),
                verifier: Secret("verifier".into()),
                nonce: "nonce".into(),
                expires_ms: 0,
            },
            ttl_ms: 1000,
        };
        let take = |state: &str, provider: &str| UserCommand::TakeSocialLogin {
            state_hash: state.into(),
            provider: provider.into(),
        };
        for state in ["s1", "s2", "s3"] {
            assert!(apply(&begin(state), &ctx(1, 10_000), &mut store)
                .unwrap()
                .is_ok());
        }
        assert!(
            apply(&begin("s1"), &ctx(1, 10_000), &mut store)
                .unwrap()
                .is_err(),
            "a state is stored once"
        );
        let taken = apply(&take("s1", "google"), &ctx(2, 10_500), &mut store).unwrap();
        let Ok(Response::Users(reply)) = taken else {
            panic!("{taken:?}")
        };
        let UsersResponse::SocialLoginTaken(pending) = *reply else {
            panic!("not taken")
        };
        assert_eq!(
            (pending.verifier.0.as_str(), pending.expires_ms),
            ("verifier", 11_000)
        );
        let refused =
            |cmd, now| apply(&cmd, &ctx(3, now), &mut MemoryStore::clone(&store)).unwrap();
        assert_eq!(
            refused(take("s1", "google"), 10_600),
            Err(DomainError::InvalidSocialState)
        );
        assert_eq!(
            refused(take("s2", "github"), 10_600),
            Err(DomainError::InvalidSocialState)
        );
        assert_eq!(
            refused(take("s3", "google"), 11_000),
            Err(DomainError::InvalidSocialState)
        );
        assert_eq!(
            refused(take("nope", "google"), 10_600),
            Err(DomainError::InvalidSocialState)
        );
        assert!(refused(take("s3", "google"), 10_999).is_ok());
    }

    #[test]
    fn social_sign_in_links_by_verified_email_only() {
        let mut store = MemoryStore::default();
        // No address, or one the provider does not vouch for: nothing is created.
        assert_eq!(
            social(&mut store, identity("github", "1", None, true), "n1"),
            Err(DomainError::EmailNotVerified)
        );
        assert_eq!(
            social(
                &mut store,
                identity("github", "1", Some("x@y.co"), false),
                "n1"
            ),
            Err(DomainError::EmailNotVerified)
        );
        assert!(get_user(&store, "n1").unwrap().is_none());

        // A verified address: a new customer without a password, linked.
        let created = social(
            &mut store,
            identity("google", "g1", Some("X@y.co"), true),
            "n1",
        )
        .unwrap();
        assert_eq!((created.id.as_str(), created.role), ("n1", Role::Customer));
        assert!(created.password_hash.is_none() && created.email_verified);
        // Linked: the same account, even once the provider stops sending the address.
        let again = social(&mut store, identity("google", "g1", None, false), "n2").unwrap();
        assert_eq!(again.id, "n1");
        // Another provider vouching for the same address: the same account.
        let github = social(
            &mut store,
            identity("github", "7", Some("x@y.co"), true),
            "n3",
        )
        .unwrap();
        assert_eq!(github.id, "n1");
        assert!(get_user(&store, "n3").unwrap().is_none());
    }

    #[test]
    fn social_sign_in_takes_over_an_unproven_registration() {
        let mut store = MemoryStore::default();
        assert!(register(&mut store, "squatter", "v@w.co").is_ok());
        let before = get_user(&store, "squatter").unwrap().unwrap();
        let user = social(
            &mut store,
            identity("google", "g9", Some("v@w.co"), true),
            "n9",
        )
        .unwrap();
        assert_eq!(user.id, "squatter");
        assert!(
            user.password_hash.is_none(),
            "the unproven password is erased"
        );
        assert!(user.email_verified);
        assert_eq!(user.security_version, before.security_version + 1);
        // The deleted account's address is free: a new account, not the deleted one.
        apply(
            &UserCommand::DeleteUser {
                user_id: "squatter".into(),
            },
            &ctx(6, 6000),
            &mut store,
        )
        .unwrap()
        .unwrap();
        let fresh = social(
            &mut store,
            identity("google", "g9", Some("v@w.co"), true),
            "n10",
        )
        .unwrap();
        assert_eq!(fresh.id, "n10");
        assert!(store
            .scan::<(String, String)>(SOCIAL_LINKS_BY_USER, &[KeyPart::Str("squatter")], None, 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn expired_sessions_reset_tokens_and_social_states_are_swept() {
        let mut store = MemoryStore::default();
        assert!(register(&mut store, "u1", "s@w.co").is_ok());
        // Session "old" expires at 12_000; "kept" is refreshed to 14_000 before that.
        assert!(session(&mut store, "u1", "old", "h-old", 2000).is_ok());
        assert!(session(&mut store, "u1", "kept", "h1", 2000).is_ok());
        assert!(refresh(&mut store, "kept", "h1", "h2", 4000).is_ok());
        apply(
            &UserCommand::RequestPasswordReset {
                user_id: "u1".into(),
                token_hash: "reset-hash".into(),
                token: Secret("tok".into()),
                ttl_ms: 5000,
            },
            &ctx(4, 3000),
            &mut store,
        )
        .unwrap()
        .unwrap();
        apply(
            &UserCommand::BeginSocialLogin {
                state_hash: "state".into(),
                pending: PendingSocialLogin {
                    provider: "github".into(),
                    verifier: Secret("v".into()),
                    nonce: "n".into(),
                    expires_ms: 0,
                },
                ttl_ms: 1000,
            },
            &ctx(5, 3000),
            &mut store,
        )
        .unwrap()
        .unwrap();
        assert_eq!(next_auth_expiry(&store).unwrap(), Some(4000));
        let sweep = |store: &mut MemoryStore, now| match apply(
            &UserCommand::ExpireAuth,
            &ctx(9, now),
            store,
        )
        .unwrap()
        {
            Ok(Response::Expired { removed }) => removed,
            other => panic!("{other:?}"),
        };
        // Nothing is due before the first expiry.
        assert_eq!(sweep(&mut store, 3999), 0);
        assert!(store
            .get_raw(SOCIAL_PENDING, &[KeyPart::Str("state")])
            .unwrap()
            .is_some());
        // The social state (4000) and the reset token (8000) go.
        assert_eq!(sweep(&mut store, 8000), 2);
        assert!(store
            .get_raw(SOCIAL_PENDING, &[KeyPart::Str("state")])
            .unwrap()
            .is_none());
        assert!(store
            .get_raw(RESET_TOKENS, &[KeyPart::Str("reset-hash")])
            .unwrap()
            .is_none());
        // At 12_000 "old" expires; "kept"'s first entry is swept but it lives on.
        assert_eq!(sweep(&mut store, 12_000), 2);
        assert!(get_session(&store, "old").unwrap().is_none());
        assert!(get_session(&store, "kept").unwrap().is_some());
        assert_eq!(next_auth_expiry(&store).unwrap(), Some(14_000));
        assert_eq!(sweep(&mut store, 14_000), 1);
        assert!(get_session(&store, "kept").unwrap().is_none());
        assert_eq!(next_auth_expiry(&store).unwrap(), None);
    }
}
