//! Social sign-in: the OAuth2 authorization-code flow with PKCE (RFC 7636,
//! `S256`) and `state`, against Google, GitHub and Facebook.
//!
//! Google speaks OpenID Connect: the identity comes from its ID token, whose
//! RS256 signature is checked against the provider's published keys (JWKS,
//! cached), with `aud` = our client id, `iss`, `exp` and the `nonce` of this
//! sign-in. GitHub and Facebook have no ID token: the identity comes from their
//! user-info APIs with the access token the code was exchanged for (GitHub's
//! addresses from `/user/emails`, where each says whether it is verified).
//!
//! The routes live in `api::social`; the pending sign-ins and the links from
//! provider identities to accounts are replicated state in
//! `ecommerce_domains::users`. Nothing here logs a code, a token or an address.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ecommerce_domains::users::{Email, SocialIdentity};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::header::{ACCEPT, USER_AGENT};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::tokens::random_token;
use crate::config::{ProviderSettings, SecretString, SocialSettings};

/// Deadline of one call to a provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long fetched signing keys are trusted before they are fetched again.
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` refetches the keys (the provider rotated), at most this often.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);
/// Clock skew tolerated on the ID token's `exp`, `nbf` and `iat`.
const ID_TOKEN_LEEWAY_SECS: u64 = 60;

/// Why a social sign-in did not succeed (the message is safe to show).
#[derive(Debug, thiserror::Error)]
pub enum SocialError {
    #[error("no such social sign-in provider is configured")]
    NotConfigured,
    /// The provider refused the code, or what it answered does not check out.
    #[error("{0}")]
    Refused(String),
    /// The provider could not be reached or answered nonsense.
    #[error("{0}")]
    Unavailable(String),
}

fn refused(reason: impl Into<String>) -> SocialError {
    SocialError::Refused(reason.into())
}

fn unavailable(reason: impl Into<String>) -> SocialError {
    SocialError::Unavailable(reason.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Google,
    GitHub,
    Facebook,
}

impl Kind {
    fn of(name: &str) -> Option<Self> {
        match name {
            "google" => Some(Self::Google),
            "github" => Some(Self::GitHub),
            "facebook" => Some(Self::Facebook),
            _ => None,
        }
    }
}

/// A provider's endpoints and scopes: the configured ones, else its public ones.
#[derive(Debug)]
struct Endpoints {
    authorize: Url,
    token: Url,
    userinfo: Option<Url>,
    emails: Option<Url>,
    jwks: Option<Url>,
    issuers: Vec<String>,
    scopes: String,
}

impl Endpoints {
    fn new(kind: Kind, p: &ProviderSettings) -> Result<Self, SetupError> {
        type Defaults = (
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            &'static [&'static str],
            &'static str,
        );
        let (authorize, token, userinfo, emails, jwks, issuers, scopes): Defaults = match kind {
            Kind::Google => (
                "https://accounts.google.com/o/oauth2/v2/auth",
                "https://oauth2.googleapis.com/token",
                None,
                None,
                Some("https://www.googleapis.com/oauth2/v3/certs"),
                &["https://accounts.google.com", "accounts.google.com"],
                "openid email profile",
            ),
            Kind::GitHub => (
                "https://github.com/login/oauth/authorize",
                "https://github.com/login/oauth/access_token",
                Some("https://api.github.com/user"),
                Some("https://api.github.com/user/emails"),
                None,
                &[],
                "read:user user:email",
            ),
            Kind::Facebook => (
                "https://www.facebook.com/v19.0/dialog/oauth",
                "https://graph.facebook.com/v19.0/oauth/access_token",
                Some("https://graph.facebook.com/v19.0/me?fields=id,name,email"),
                None,
                None,
                &[],
                "email public_profile",
            ),
        };
        let parse = |raw: &str| {
            Url::parse(raw).map_err(|source| SetupError::Url {
                url: raw.to_string(),
                source,
            })
        };
        let url = |configured: &Option<String>, default: &str| {
            parse(configured.as_deref().unwrap_or(default))
        };
        let optional = |configured: &Option<String>, default: Option<&str>| {
            configured.as_deref().or(default).map(parse).transpose()
        };
        Ok(Self {
            authorize: url(&p.authorize_url, authorize)?,
            token: url(&p.token_url, token)?,
            userinfo: optional(&p.userinfo_url, userinfo)?,
            emails: optional(&p.emails_url, emails)?,
            jwks: optional(&p.jwks_url, jwks)?,
            issuers: match &p.issuer {
                Some(issuer) => vec![issuer.clone()],
                None => issuers.iter().map(|s| s.to_string()).collect(),
            },
            scopes: p.scopes.clone().unwrap_or_else(|| scopes.to_string()),
        })
    }
}

/// Why the configured providers could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{url:?} is not a URL: {source}")]
    Url {
        url: String,
        #[source]
        source: <Url as std::str::FromStr>::Err,
    },
}

/// The start of a sign-in: where to send the browser, and the secrets the
/// callback will need (kept by the cluster, never by the browser).
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub verifier: String,
    pub nonce: String,
}

/// One configured provider.
pub struct Provider {
    name: &'static str,
    kind: Kind,
    client_id: String,
    client_secret: SecretString,
    redirect_uri: String,
    endpoints: Endpoints,
    http: reqwest::Client,
    /// The provider's signing keys and when they were fetched (Google).
    jwks: Mutex<Option<(JwkSet, Instant)>>,
}

/// The configured providers of a node.
pub struct Social {
    providers: HashMap<&'static str, Provider>,
    pub state_ttl: Duration,
}

impl Social {
    pub fn new(settings: &SocialSettings) -> Result<Self, SetupError> {
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut providers = HashMap::new();
        for (name, p) in settings.providers() {
            let kind = Kind::of(name).expect("SocialSettings names only known providers");
            let provider = Provider {
                name,
                kind,
                client_id: p.client_id.clone(),
                client_secret: p.client_secret.clone(),
                redirect_uri: p.redirect_uri.clone(),
                endpoints: Endpoints::new(kind, p)?,
                http: http.clone(),
                jwks: Mutex::new(None),
            };
            providers.insert(name, provider);
        }
        Ok(Self {
            providers,
            state_ttl: Duration::from_secs(settings.state_ttl_secs),
        })
    }

    pub fn provider(&self, name: &str) -> Result<&Provider, SocialError> {
        self.providers.get(name).ok_or(SocialError::NotConfigured)
    }
}

/// The PKCE `S256` challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The token endpoint's answer (RFC 6749 §5.1 and §5.2; GitHub answers errors
/// with 200 and an `error` field).
#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    id_token: Option<String>,
    error: Option<String>,
}

/// The claims of an OpenID Connect ID token that we use.
#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    email: Option<String>,
    /// A boolean, or (some providers) the string `"true"`.
    email_verified: Option<serde_json::Value>,
    name: Option<String>,
    nonce: Option<String>,
}

#[derive(Deserialize)]
struct GitHubUser {
    id: u64,
    login: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

#[derive(Deserialize)]
struct FacebookUser {
    id: String,
    name: Option<String>,
    email: Option<String>,
}

impl Provider {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A fresh `state`, PKCE verifier and nonce, and the provider URL that
    /// asks the user to sign in with them.
    pub fn authorization(&self) -> Authorization {
        let state = random_token(32);
        let verifier = random_token(32);
        let nonce = random_token(16);
        let mut url = self.endpoints.authorize.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.endpoints.scopes)
            .append_pair("state", &state)
            .append_pair("code_challenge", &pkce_challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        if self.kind == Kind::Google {
            url.query_pairs_mut().append_pair("nonce", &nonce);
        }
        Authorization {
            url: url.into(),
            state,
            verifier,
            nonce,
        }
    }

    /// Exchanges `code` (with the PKCE `verifier`) and establishes who signed in.
    pub async fn identify(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<SocialIdentity, SocialError> {
        let tokens = self.exchange(code, verifier).await?;
        match self.kind {
            Kind::Google => {
                let id_token = tokens
                    .id_token
                    .ok_or_else(|| refused("the token response has no ID token"))?;
                self.google_identity(&id_token, nonce).await
            }
            Kind::GitHub => {
                let access = tokens
                    .access_token
                    .ok_or_else(|| refused("the token response has no access token"))?;
                self.github_identity(&access).await
            }
            Kind::Facebook => {
                let access = tokens
                    .access_token
                    .ok_or_else(|| refused("the token response has no access token"))?;
                self.facebook_identity(&access).await
            }
        }
    }

    async fn exchange(&self, code: &str, verifier: &str) -> Result<TokenReply, SocialError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_uri),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret.0),
            ("code_verifier", verifier),
        ];
        let response = self
            .http
            .post(self.endpoints.token.clone())
            .header(ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|_| unavailable("the provider's token endpoint is unreachable"))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(unavailable(format!(
                "the provider's token endpoint answered {status}"
            )));
        }
        let reply: Option<TokenReply> = response.json().await.ok();
        match reply {
            Some(TokenReply {
                error: Some(error), ..
            }) => Err(refused(format!(
                "the provider refused the code: {}",
                printable(&error)
            ))),
            Some(reply) if status.is_success() => Ok(reply),
            _ if status.is_success() => Err(unavailable(
                "the provider's token endpoint answered something unexpected",
            )),
            _ => Err(refused(format!("the provider refused the code ({status})"))),
        }
    }

    /// Verifies Google's ID token: RS256 with a published key, audience,
    /// issuer, times and the nonce of this sign-in.
    async fn google_identity(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<SocialIdentity, SocialError> {
        let header =
            jsonwebtoken::decode_header(id_token).map_err(|_| refused("malformed ID token"))?;
        if header.alg != Algorithm::RS256 {
            return Err(refused("ID token algorithm not allowed"));
        }
        let kid = header
            .kid
            .ok_or_else(|| refused("ID token without a key id"))?;
        let key = self.signing_key(&kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.client_id]);
        validation.set_issuer(&self.endpoints.issuers);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = ID_TOKEN_LEEWAY_SECS;
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
            .map_err(|e| refused(format!("ID token refused: {:?}", e.kind())))?
            .claims;
        let nonce_ok = claims
            .nonce
            .as_deref()
            .is_some_and(|n| constant_time_eq(n, nonce));
        if !nonce_ok {
            return Err(refused("ID token nonce does not match this sign-in"));
        }
        let email_verified = match &claims.email_verified {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
        Ok(SocialIdentity {
            provider: self.name.to_string(),
            subject: claims.sub,
            email: claims.email.as_deref().and_then(|e| Email::parse(e).ok()),
            email_verified,
            name: claims.name.unwrap_or_default(),
        })
    }

    /// The key `kid` from the provider's JWKS, fetched when the cached set is
    /// stale or lacks it (rate-limited, so forged `kid`s cannot make us hammer
    /// the provider).
    async fn signing_key(&self, kid: &str) -> Result<DecodingKey, SocialError> {
        let url = self
            .endpoints
            .jwks
            .clone()
            .ok_or_else(|| unavailable("no JWKS endpoint configured"))?;
        let mut cache = self.jwks.lock().await;
        let fresh = |fetched: &Instant| fetched.elapsed() < JWKS_TTL;
        let refetch = match cache.as_ref() {
            None => true,
            Some((set, fetched)) => {
                !fresh(fetched)
                    || (set.find(kid).is_none() && fetched.elapsed() >= JWKS_MIN_REFETCH)
            }
        };
        if refetch {
            let set: JwkSet = self.get_json(url, None).await?;
            *cache = Some((set, Instant::now()));
        }
        let jwk = cache
            .as_ref()
            .and_then(|(set, _)| set.find(kid))
            .ok_or_else(|| refused("ID token signed with an unknown key"))?;
        DecodingKey::from_jwk(jwk)
            .map_err(|_| unavailable("the provider published an unusable key"))
    }

    async fn github_identity(&self, access: &str) -> Result<SocialIdentity, SocialError> {
        let userinfo = self.userinfo_url()?;
        let user: GitHubUser = self.get_json(userinfo, Some(access)).await?;
        let emails_url = self
            .endpoints
            .emails
            .clone()
            .ok_or_else(|| unavailable("no e-mail endpoint configured"))?;
        let emails: Vec<GitHubEmail> = self.get_json(emails_url, Some(access)).await?;
        // Only the primary address, and only if GitHub verified it.
        let primary = emails.into_iter().find(|e| e.primary);
        let (email, email_verified) = match primary {
            Some(e) => (Email::parse(&e.email).ok(), e.verified),
            None => (None, false),
        };
        Ok(SocialIdentity {
            provider: self.name.to_string(),
            subject: user.id.to_string(),
            email,
            email_verified,
            name: user.name.unwrap_or(user.login),
        })
    }

    async fn facebook_identity(&self, access: &str) -> Result<SocialIdentity, SocialError> {
        let userinfo = self.userinfo_url()?;
        let user: FacebookUser = self.get_json(userinfo, Some(access)).await?;
        let email = user.email.as_deref().and_then(|e| Email::parse(e).ok());
        Ok(SocialIdentity {
            provider: self.name.to_string(),
            subject: user.id,
            // Facebook returns an address only once its owner confirmed it.
            email_verified: email.is_some(),
            email,
            name: user.name.unwrap_or_default(),
        })
    }

    fn userinfo_url(&self) -> Result<Url, SocialError> {
        self.endpoints
            .userinfo
            .clone()
            .ok_or_else(|| unavailable("no user-info endpoint configured"))
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        bearer: Option<&str>,
    ) -> Result<T, SocialError> {
        let mut request = self
            .http
            .get(url)
            .header(ACCEPT, "application/json")
            // GitHub's API refuses requests without one.
            .header(USER_AGENT, "ecommerce");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|_| unavailable("the provider is unreachable"))?;
        let status = response.status();
        if status.is_client_error() {
            return Err(refused(format!(
                "the provider refused the access token ({status})"
            )));
        }
        if !status.is_success() {
            return Err(unavailable(format!("the provider answered {status}")));
        }
        response
            .json()
            .await
            .map_err(|_| unavailable("the provider answered something unexpected"))
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A provider's error code, cut short and limited to printable ASCII.
pub fn printable(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(100)
        .collect()
}

#[cfg(test)]
mod tests;
