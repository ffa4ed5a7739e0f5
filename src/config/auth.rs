//! The `[auth]` section: token lifetimes, password hashing cost, rate
//! limits, the operator secret and the social sign-in providers.

use serde::{Deserialize, Serialize};

/// A secret from the configuration: never printed by `Debug`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Authentication: token lifetimes, password hashing cost, rate limits and
/// the operator secret. See docs/security.md.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Lifetime of an access token (JWT).
    pub access_token_ttl_secs: u64,
    /// A refresh token expires this long after it was issued (each use issues a new one).
    pub refresh_token_ttl_secs: u64,
    /// Lifetime of a password-reset token.
    pub reset_token_ttl_secs: u64,
    /// `iss` of the access tokens.
    pub issuer: String,
    /// Operator secret (at least 32 characters): lets `ecommerce user create`
    /// bootstrap the first admin, nodes join, and the `cluster`/`backup`
    /// commands act, without a user account. Unset disables all three.
    /// Set it through `ECOMMERCE_AUTH__OPERATOR_TOKEN`, not a file in git.
    pub operator_token: Option<SecretString>,
    /// argon2id cost (OWASP: 19 MiB, 2 iterations, 1 lane).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Login and password-reset attempts per account per minute (per node).
    pub attempts_per_account_per_minute: u32,
    /// Requests to the /auth routes per client IP per minute (per node).
    pub attempts_per_ip_per_minute: u32,
    /// Social sign-in providers; a provider without a section is off.
    pub social: SocialSettings,
}

/// Social sign-in (OAuth2 authorization code with PKCE): one optional
/// section per provider, e.g. `[auth.social.google]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SocialSettings {
    pub google: Option<ProviderSettings>,
    pub github: Option<ProviderSettings>,
    pub facebook: Option<ProviderSettings>,
    /// How long a sign-in may take between the redirect and the callback.
    #[serde(default = "default_social_state_ttl_secs")]
    pub state_ttl_secs: u64,
}

fn default_social_state_ttl_secs() -> u64 {
    600
}

impl SocialSettings {
    /// The configured providers, by the name used in the routes.
    pub fn providers(&self) -> impl Iterator<Item = (&'static str, &ProviderSettings)> {
        [
            ("google", &self.google),
            ("github", &self.github),
            ("facebook", &self.facebook),
        ]
        .into_iter()
        .filter_map(|(name, p)| p.as_ref().map(|p| (name, p)))
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(
            (1..=3600).contains(&self.state_ttl_secs),
            "auth.social.state_ttl_secs must be between 1 and 3600"
        );
        for (name, p) in self.providers() {
            ensure!(
                !p.client_id.is_empty() && !p.client_secret.0.is_empty(),
                "auth.social.{name}: client_id and client_secret must be set"
            );
            let urls = [
                ("redirect_uri", Some(&p.redirect_uri)),
                ("authorize_url", p.authorize_url.as_ref()),
                ("token_url", p.token_url.as_ref()),
                ("userinfo_url", p.userinfo_url.as_ref()),
                ("emails_url", p.emails_url.as_ref()),
                ("jwks_url", p.jwks_url.as_ref()),
            ];
            for (field, url) in urls {
                if let Some(url) = url {
                    let parsed = reqwest::Url::parse(url);
                    ensure!(
                        parsed.is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
                        "auth.social.{name}.{field} must be an absolute http(s) URL"
                    );
                }
            }
        }
        Ok(())
    }
}

impl Default for SocialSettings {
    fn default() -> Self {
        Self {
            google: None,
            github: None,
            facebook: None,
            state_ttl_secs: default_social_state_ttl_secs(),
        }
    }
}

/// One OAuth2 provider: the client registered with it, and its endpoints
/// when they differ from the provider's public ones (a test or self-hosted
/// provider).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    pub client_id: String,
    /// Set it through `ECOMMERCE_AUTH__SOCIAL__<PROVIDER>__CLIENT_SECRET`.
    pub client_secret: SecretString,
    /// Where the provider sends the browser back with `code` and `state`:
    /// the storefront page that forwards them to `/auth/social/{provider}/callback`.
    pub redirect_uri: String,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    /// Google: not used (the ID token carries the identity).
    pub userinfo_url: Option<String>,
    /// GitHub only: the list of the user's addresses and whether each is verified.
    pub emails_url: Option<String>,
    /// Google only: the provider's signing keys and the ID token's `iss`.
    pub jwks_url: Option<String>,
    pub issuer: Option<String>,
    /// Space-separated OAuth2 scopes.
    pub scopes: Option<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            reset_token_ttl_secs: 30 * 60,
            issuer: "ecommerce".into(),
            operator_token: None,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            attempts_per_account_per_minute: 10,
            attempts_per_ip_per_minute: 120,
            social: SocialSettings::default(),
        }
    }
}
