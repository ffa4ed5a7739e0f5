//! Sessions and access tokens: sign-in with a password or a social provider,
//! refresh, sign-out, the signing keys, and the check of an access token that
//! every authenticated request goes through (REST and gRPC alike).
//!
//! A session is a refresh-token family in the replicated state; an access
//! token is a JWT naming the session (`sid`) and the user's security version
//! (`ver`). A token is accepted when its signature verifies with the key its
//! `kid` names in the replicated key ring, it has not expired and is not dated
//! in the future, and the domain says its session is live for its user
//! ([`users::session_is_live`]: not revoked, not expired, same user at the
//! same security version, account not deleted).

use std::net::IpAddr;

use ecommerce_domains::users::{
    self, Email, PendingSocialLogin, Secret, User, UserCommand, UsersResponse,
};
use ecommerce_domains::{Actor, DomainError};
use ecommerce_raft::Reader;

use super::{App, AppError, AppResult, Consistency};
use crate::app::ErrorCode;
use crate::auth::social::{printable, SocialError};
use crate::auth::tokens::{self, Claims, TokenError};

/// A fresh access token and the refresh token of its session.
#[derive(Debug)]
pub struct Tokens {
    /// A JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque and single use: exchanged for a new pair at refresh.
    pub refresh_token: String,
}

/// Where to send a browser to sign in with a social provider.
#[derive(Debug)]
pub struct SocialAuthorization {
    pub url: String,
    pub state: String,
}

/// What a social provider's callback carried.
#[derive(Debug, Default)]
pub struct SocialCallback<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    /// Set instead of `code` when the user or the provider declined.
    pub error: Option<&'a str>,
}

/// Longest `code` or `state` accepted from a callback.
const MAX_PARAM_LEN: usize = 2048;

/// Why an access token was refused (logged, never shown: the client sees
/// one `unauthenticated` answer whatever the reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the user no longer exists or changed since the token was issued")]
    UserChanged,
    #[error("the session was revoked or has expired")]
    SessionRevoked,
    #[error("the state is being replaced by a snapshot")]
    Unavailable,
    #[error("storage: {0}")]
    Storage(String),
}

impl Refusal {
    /// True when the token may be newer than this replica (a key just
    /// rotated in, a session or account created on the leader a moment ago):
    /// worth deciding again once caught up with the leader.
    fn may_be_lagging(&self) -> bool {
        matches!(
            self,
            Refusal::Token(TokenError::UnknownKey) | Refusal::UserChanged | Refusal::SessionRevoked
        )
    }
}

/// Seconds since the Unix epoch by this node's clock.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The answer to a bad, expired or revoked access token.
pub fn invalid_token() -> AppError {
    AppError::new(
        ErrorCode::Unauthenticated,
        "the access token is invalid, expired or revoked",
    )
}

fn invalid_credentials() -> AppError {
    DomainError::InvalidCredentials.into()
}

/// 32 random bytes from the operating system's generator: the salt a new
/// signing key's secret is derived from (see [`crate::vault::Vault::open_ring`]),
/// stored and proposed in its place.
fn random_salt() -> Vec<u8> {
    use rand::RngCore;
    let mut salt = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut salt);
    salt
}

/// The id of a new signing key, whose secret is derived.
fn new_kid() -> String {
    format!(
        "{}{}",
        crate::vault::DERIVED_KID_PREFIX,
        uuid::Uuid::new_v4().simple()
    )
}

/// The users domain's part of a command response.
pub(super) fn users_reply(reply: ecommerce_domains::Response) -> AppResult<UsersResponse> {
    match reply {
        ecommerce_domains::Response::Users(r) => Ok(*r),
        other => Err(super::unexpected(other)),
    }
}

pub(super) fn unexpected_users(r: UsersResponse) -> AppError {
    super::unexpected(ecommerce_domains::Response::Users(Box::new(r)))
}

impl App {
    /// Checks an access token against this replica only.
    pub fn verify_access_token(&self, token: &str) -> Result<Actor, Refusal> {
        let reader = Reader::new(self.node().storage()).ok_or(Refusal::Unavailable)?;
        let storage = |e: ecommerce_domains::store::StoreFault| Refusal::Storage(e.to_string());
        let ring = self
            .vault
            .open_ring(users::key_ring(&reader).map_err(storage)?);
        let now = now_secs();
        let claims = tokens::verify(&ring, token, &self.auth.settings.issuer, now)?;
        let user = users::get_user(&reader, &claims.sub)
            .map_err(storage)?
            .filter(|u| !u.deleted && u.security_version == claims.ver && u.role == claims.role)
            .ok_or(Refusal::UserChanged)?;
        let session = users::get_session(&reader, &claims.sid)
            .map_err(storage)?
            .ok_or(Refusal::SessionRevoked)?;
        if !users::session_is_live(&session, &user, now.saturating_mul(1000)) {
            return Err(Refusal::SessionRevoked);
        }
        Ok(Actor {
            user_id: user.id,
            role: user.role,
        })
    }

    /// The caller of an access token. A refusal that may come from this
    /// replica lagging is decided again after catching up with the leader.
    pub async fn authenticate(&self, token: &str) -> AppResult<Actor> {
        let mut refusal = match self.verify_access_token(token) {
            Ok(actor) => return Ok(actor),
            Err(refusal) => refusal,
        };
        if refusal.may_be_lagging() {
            self.node().linearizable_barrier(self.deadline()).await?;
            refusal = match self.verify_access_token(token) {
                Ok(actor) => return Ok(actor),
                Err(refusal) => refusal,
            };
        }
        match refusal {
            Refusal::Unavailable => Err(AppError::new(
                ErrorCode::Unavailable,
                "this node is installing a snapshot; retry shortly",
            )),
            Refusal::Storage(e) => Err(AppError::internal(e)),
            other => {
                tracing::debug!(reason = %other, "access token refused");
                Err(invalid_token())
            }
        }
    }

    /// Refuses a client IP address that made too many attempts.
    pub fn check_ip(&self, ip: Option<IpAddr>) -> AppResult<()> {
        match ip {
            Some(ip) => self.auth.limits.check_ip(ip).map_err(rate_limited),
            None => Ok(()),
        }
    }

    /// Refuses an account that had too many attempts from client `ip`'s
    /// network (`None`: its signed-in owner).
    pub(super) fn check_account(&self, email: &Email, ip: Option<IpAddr>) -> AppResult<()> {
        self.auth
            .limits
            .check_account(&tokens::digest(email.as_str()), ip)
            .map_err(rate_limited)
    }

    /// Signs in with e-mail and password. A malformed address, an unknown
    /// account and a wrong password get the same answer at the same cost.
    pub async fn login(
        &self,
        ip: Option<IpAddr>,
        email: &str,
        password: String,
    ) -> AppResult<Tokens> {
        self.check_ip(ip)?;
        let email = Email::parse(email).ok();
        if let Some(email) = &email {
            self.check_account(email, ip)?;
        }
        let user = match &email {
            Some(email) => {
                let reader = self.read(Consistency::Linearizable).await?;
                users::user_by_email(&reader, email)?.filter(|u| !u.deleted)
            }
            None => None,
        };
        let phc = user
            .as_ref()
            .and_then(|u| u.password_hash.as_ref().map(|h| h.0.clone()));
        let ok = self
            .auth
            .passwords
            .verify(password, phc)
            .await
            .map_err(AppError::internal)?;
        match user {
            Some(user) if ok => self.start_session(&user).await,
            _ => Err(invalid_credentials()),
        }
    }

    /// Exchanges a refresh token for a new pair; the old one is spent.
    /// Presenting a spent one revokes its whole session.
    pub async fn refresh(&self, ip: Option<IpAddr>, refresh_token: &str) -> AppResult<Tokens> {
        self.check_ip(ip)?;
        let family_id = tokens::refresh_family(refresh_token)
            .ok_or(DomainError::InvalidRefreshToken)?
            .to_string();
        let new_token = tokens::new_refresh_token(&family_id);
        let command = UserCommand::RefreshSession {
            family_id,
            presented_hash: tokens::digest(refresh_token),
            new_hash: tokens::digest(&new_token),
            ttl_ms: self
                .auth
                .settings
                .refresh_token_ttl_secs
                .saturating_mul(1000),
        };
        let committed = self.propose(command.into(), None).await?;
        match users_reply(committed.outcome?)? {
            UsersResponse::Session { user, family_id } => {
                self.sign_access_token(&user, &family_id, new_token).await
            }
            UsersResponse::RefreshReused => {
                tracing::warn!("a spent refresh token was presented again; its session is revoked");
                Err(DomainError::InvalidRefreshToken.into())
            }
            other => Err(unexpected_users(other)),
        }
    }

    /// Revokes the session of a refresh token (its access tokens stop working).
    pub async fn logout(&self, ip: Option<IpAddr>, refresh_token: &str) -> AppResult<()> {
        self.check_ip(ip)?;
        let family_id = tokens::refresh_family(refresh_token)
            .ok_or(DomainError::InvalidRefreshToken)?
            .to_string();
        let command = UserCommand::RevokeSession {
            family_id,
            presented_hash: tokens::digest(refresh_token),
        };
        self.propose(command.into(), None).await?.outcome?;
        Ok(())
    }

    /// Starts a social sign-in: the state, PKCE verifier and nonce are kept
    /// in the cluster so that the callback may reach any node.
    pub async fn begin_social_login(
        &self,
        ip: Option<IpAddr>,
        provider: &str,
    ) -> AppResult<SocialAuthorization> {
        self.check_ip(ip)?;
        let social = &self.auth.social;
        let provider = social.provider(provider)?;
        let authorization = provider.authorization();
        let command = UserCommand::BeginSocialLogin {
            state_hash: tokens::digest(&authorization.state),
            pending: PendingSocialLogin {
                provider: provider.name().to_string(),
                verifier: Secret(authorization.verifier),
                nonce: authorization.nonce,
                expires_ms: 0,
            },
            ttl_ms: u64::try_from(social.state_ttl.as_millis()).unwrap_or(u64::MAX),
        };
        match users_reply(self.propose(command.into(), None).await?.outcome?)? {
            UsersResponse::SocialLoginBegun => Ok(SocialAuthorization {
                url: authorization.url,
                state: authorization.state,
            }),
            other => Err(unexpected_users(other)),
        }
    }

    /// Finishes a social sign-in: spends the state (once, before it expires,
    /// whatever the outcome), exchanges the code, checks who signed in and
    /// starts their session.
    pub async fn finish_social_login(
        &self,
        ip: Option<IpAddr>,
        provider: &str,
        callback: SocialCallback<'_>,
    ) -> AppResult<Tokens> {
        self.check_ip(ip)?;
        let provider = self.auth.social.provider(provider)?;
        let state = param(callback.state, "state")
            .map_err(|_| AppError::from(DomainError::InvalidSocialState))?;
        let take = UserCommand::TakeSocialLogin {
            state_hash: tokens::digest(state),
            provider: provider.name().to_string(),
        };
        let pending = match users_reply(self.propose(take.into(), None).await?.outcome?)? {
            UsersResponse::SocialLoginTaken(pending) => pending,
            other => return Err(unexpected_users(other)),
        };
        if let Some(error) = callback.error {
            return Err(SocialError::Refused(format!(
                "the sign-in was declined at the provider: {}",
                printable(error)
            ))
            .into());
        }
        let code = param(callback.code, "code")?;
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
            ttl_ms: self
                .auth
                .settings
                .refresh_token_ttl_secs
                .saturating_mul(1000),
        };
        self.propose_session(command, refresh_token).await
    }

    /// Starts signing access tokens with a new key; the previous keys keep
    /// verifying until every token they signed has expired. Answers the new
    /// key's id.
    pub async fn rotate_signing_key(
        &self,
        tag: Option<ecommerce_domains::idempotency::IdempotencyTag>,
    ) -> AppResult<super::Rendered<String>> {
        let retain_secs = self
            .auth
            .settings
            .access_token_ttl_secs
            .saturating_add(tokens::LEEWAY_SECS);
        let command = UserCommand::RotateSigningKey {
            kid: new_kid(),
            secret: Secret(random_salt()),
            retain_ms: retain_secs.saturating_mul(1000),
        };
        Ok(self
            .propose(command.into(), tag)
            .await?
            .render(|reply| match users_reply(reply)? {
                UsersResponse::SigningKey { kid } => Ok(kid),
                other => Err(unexpected_users(other)),
            }))
    }

    /// The key ring with an active key, its secrets opened, creating the
    /// first key if there is none (racing nodes are fine: the command keeps
    /// whichever key is applied first). An active key from before derived
    /// secrets (its secret stored as such) is rotated out first.
    async fn ensure_signing_key(&self) -> AppResult<users::KeyRing> {
        let ring = {
            let reader = self.read(Consistency::Stale).await?;
            users::key_ring(&reader)?
        };
        match ring.active_key() {
            Some(key) if crate::vault::is_derived(&key.kid) => {
                return Ok(self.vault.open_ring(ring));
            }
            Some(_) => {
                tracing::info!("rotating out a signing key stored before derived secrets");
                self.rotate_signing_key(None).await?.result?;
            }
            None => {
                let command = UserCommand::EnsureSigningKey {
                    kid: new_kid(),
                    secret: Secret(random_salt()),
                };
                self.propose(command.into(), None).await?.outcome?;
            }
        }
        let reader = self.read(Consistency::Linearizable).await?;
        let ring = self.vault.open_ring(users::key_ring(&reader)?);
        if ring.active_key().is_none() {
            return Err(AppError::internal(
                "no active signing key after ensuring one",
            ));
        }
        Ok(ring)
    }

    /// Signs the access token of a fresh or refreshed session.
    async fn sign_access_token(
        &self,
        user: &User,
        family_id: &str,
        refresh_token: String,
    ) -> AppResult<Tokens> {
        let ring = self.ensure_signing_key().await?;
        let ttl = self.auth.settings.access_token_ttl_secs;
        let now = now_secs();
        let claims = Claims {
            sub: user.id.clone(),
            role: user.role,
            sid: family_id.to_string(),
            ver: user.security_version,
            iss: self.auth.settings.issuer.clone(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl),
        };
        let access_token =
            tokens::sign(&ring, &claims).ok_or_else(|| AppError::internal("signing failed"))?;
        Ok(Tokens {
            access_token,
            expires_in: ttl,
            refresh_token,
        })
    }

    /// Proposes a new session for `user` and answers its tokens.
    async fn start_session(&self, user: &User) -> AppResult<Tokens> {
        let family_id = uuid::Uuid::new_v4().simple().to_string();
        let refresh_token = tokens::new_refresh_token(&family_id);
        let command = UserCommand::StartSession {
            user_id: user.id.clone(),
            family_id,
            token_hash: tokens::digest(&refresh_token),
            ttl_ms: self
                .auth
                .settings
                .refresh_token_ttl_secs
                .saturating_mul(1000),
            expected_security_version: user.security_version,
        };
        self.propose_session(command, refresh_token).await
    }

    /// Proposes a command that starts a session (whose refresh token is
    /// `refresh_token`) and answers the session's tokens.
    async fn propose_session(
        &self,
        command: UserCommand,
        refresh_token: String,
    ) -> AppResult<Tokens> {
        let committed = self.propose(command.into(), None).await?;
        match users_reply(committed.outcome?)? {
            UsersResponse::Session { user, family_id } => {
                self.sign_access_token(&user, &family_id, refresh_token)
                    .await
            }
            other => Err(unexpected_users(other)),
        }
    }
}

pub(super) fn rate_limited(
    crate::auth::limits::RetryAfter(wait): crate::auth::limits::RetryAfter,
) -> AppError {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1);
    AppError::new(ErrorCode::RateLimited, "too many attempts; retry later")
        .with_details(serde_json::json!({ "retry_after_secs": secs }))
}

/// A required, bounded parameter of a social callback.
fn param<'a>(value: Option<&'a str>, name: &str) -> AppResult<&'a str> {
    match value {
        Some(v) if !v.is_empty() && v.len() <= MAX_PARAM_LEN => Ok(v),
        Some(v) if !v.is_empty() => Err(DomainError::validation(name, "is too long").into()),
        _ => Err(DomainError::validation(name, "is required").into()),
    }
}

impl From<SocialError> for AppError {
    fn from(e: SocialError) -> Self {
        match e {
            SocialError::NotConfigured => {
                AppError::new(ErrorCode::ProviderNotConfigured, e.to_string())
            }
            SocialError::Refused(reason) => AppError::new(
                ErrorCode::SocialLoginFailed,
                "the provider did not confirm the sign-in",
            )
            .with_details(serde_json::json!({ "reason": reason })),
            SocialError::Unavailable(reason) => AppError::new(
                ErrorCode::ProviderUnavailable,
                "the provider could not be asked",
            )
            .with_details(serde_json::json!({ "reason": reason })),
        }
    }
}
