//! Authentication machinery of a node, below the HTTP layer: password
//! hashing ([`passwords`]), access/refresh/reset tokens ([`tokens`]), rate
//! limits ([`limits`]) and social sign-in with OAuth2 providers ([`social`]). The extractors that every route declares its
//! requirement with live in `api::auth`; the replicated rules (accounts,
//! sessions, key ring) in `ecommerce_domains::users`.
//!
//! Architecture invariant: nothing here logs a password, a token, a hash or an
//! e-mail address.

pub mod grpc;
pub mod limits;
pub mod passwords;
pub mod social;
pub mod tokens;

use crate::config::AuthSettings;

/// Per-node authentication state, shared by the handlers.
pub struct Auth {
    pub settings: AuthSettings,
    pub passwords: passwords::Passwords,
    pub limits: limits::Limits,
    pub social: social::Social,
}

/// Why the authentication services could not be set up from the settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("password hashing: {0}")]
    Passwords(#[from] passwords::PasswordError),
    #[error("social sign-in: {0}")]
    Social(#[from] social::SetupError),
}

impl Auth {
    pub fn new(settings: &AuthSettings) -> Result<Self, SetupError> {
        Ok(Self {
            settings: settings.clone(),
            passwords: passwords::Passwords::new(settings)?,
            limits: limits::Limits::new(settings),
            social: social::Social::new(&settings.social)?,
        })
    }

    /// Whether `presented` is the configured operator token (constant time).
    pub fn is_operator_token(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        match &self.settings.operator_token {
            // Compare digests: equal length, and no early exit on the content.
            Some(expected) => tokens::digest(presented)
                .as_bytes()
                .ct_eq(tokens::digest(&expected.0).as_bytes())
                .into(),
            None => false,
        }
    }
}
