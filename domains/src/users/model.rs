//! What the users domain stores and parses: accounts, addresses, sessions,
//! reset tokens, signing keys, social identities, and the e-mail and
//! password rules.

use super::*;

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
