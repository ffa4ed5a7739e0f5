//! Access tokens (JWT, HS256 with a key from the replicated key ring, `kid`
//! in the header) and opaque refresh and reset tokens (random, stored only as
//! SHA-256 digests).
//!
//! The algorithm is pinned: a token whose header names anything but HS256
//! (including `none`) is refused before any key is looked up, and the key is
//! chosen by `kid` from the ring, never from the token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ecommerce_domains::users::KeyRing;
use ecommerce_domains::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The only algorithm accepted.
pub const ALGORITHM: Algorithm = Algorithm::HS256;
/// Clock skew tolerated between nodes when checking `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 5;

/// What an access token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    pub role: Role,
    /// Session (refresh-token family) the token was issued for.
    pub sid: String,
    /// The user's security version when it was issued.
    pub ver: u64,
    pub iss: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
}

/// Why a presented access token was refused (kept for the log, never sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token or header")]
    Malformed,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("unknown key id")]
    UnknownKey,
    #[error("bad signature or claims: {0}")]
    Invalid(String),
    #[error("expired")]
    Expired,
    #[error("issued in the future")]
    FutureDated,
}

/// Signs `claims` with the ring's active key.
pub fn sign(ring: &KeyRing, claims: &Claims) -> Option<String> {
    let key = ring.active_key()?;
    let mut header = Header::new(ALGORITHM);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&key.secret.0)).ok()
}

/// The `kid` of a token whose header is well-formed and names [`ALGORITHM`].
pub fn key_id(token: &str) -> Result<String, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != ALGORITHM {
        return Err(TokenError::Algorithm);
    }
    header.kid.ok_or(TokenError::Malformed)
}

/// Verifies signature, algorithm, issuer and times of `token` at `now_secs`.
pub fn verify(
    ring: &KeyRing,
    token: &str,
    issuer: &str,
    now_secs: u64,
) -> Result<Claims, TokenError> {
    let kid = key_id(token)?;
    let key = ring.key(&kid).ok_or(TokenError::UnknownKey)?;
    let mut validation = Validation::new(ALGORITHM);
    validation.algorithms = vec![ALGORITHM];
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "sub"]);
    // Times are checked below against the caller's clock, so tests can pin it.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(&key.secret.0),
        &validation,
    )
    .map_err(|e| TokenError::Invalid(e.to_string()))?;
    let claims = data.claims;
    if claims.exp + LEEWAY_SECS <= now_secs {
        return Err(TokenError::Expired);
    }
    if claims.iat > now_secs + LEEWAY_SECS || claims.nbf > now_secs + LEEWAY_SECS {
        return Err(TokenError::FutureDated);
    }
    Ok(claims)
}

/// `n` random bytes, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Hex SHA-256 of a high-entropy token: what the state stores instead of it.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A refresh token: `<family id>.<secret>`. The family id lets the state
/// machine find the session; only the digest of the whole token is stored.
pub fn new_refresh_token(family_id: &str) -> String {
    format!("{family_id}.{}", random_token(32))
}

/// The family id of a refresh token, if it has the right shape.
pub fn refresh_family(token: &str) -> Option<&str> {
    let (family, secret) = token.split_once('.')?;
    let ok = !family.is_empty() && family.len() <= 64 && secret.len() >= 32 && secret.len() <= 128;
    ok.then_some(family)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecommerce_domains::users::{Secret, SigningKey};

    fn ring(kids: &[&str]) -> KeyRing {
        KeyRing {
            active: kids.first().map(|k| k.to_string()),
            keys: kids
                .iter()
                .enumerate()
                .map(|(i, kid)| SigningKey {
                    kid: kid.to_string(),
                    secret: Secret(vec![i as u8 + 1; 32]),
                    created_ms: 0,
                    retired_ms: None,
                })
                .collect(),
        }
    }

    fn claims(now: u64) -> Claims {
        Claims {
            sub: "u1".into(),
            role: Role::Customer,
            sid: "s1".into(),
            ver: 1,
            iss: "ecommerce".into(),
            iat: now,
            nbf: now,
            exp: now + 900,
        }
    }

    #[test]
    fn tokens_verify_only_with_their_key_issuer_and_time() {
        let now = 1_800_000_000;
        let keys = ring(&["k1", "k2"]);
        let token = sign(&keys, &claims(now)).unwrap();
        assert_eq!(
            verify(&keys, &token, "ecommerce", now).unwrap(),
            claims(now)
        );
        assert!(matches!(
            verify(&keys, &token, "other", now),
            Err(TokenError::Invalid(_))
        ));
        assert_eq!(
            verify(&keys, &token, "ecommerce", now + 1000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&ring(&["k9"]), &token, "ecommerce", now),
            Err(TokenError::UnknownKey)
        );
        // Same kid, other secret.
        let mut wrong = keys.clone();
        wrong.keys[0].secret = Secret(vec![9; 32]);
        assert!(matches!(
            verify(&wrong, &token, "ecommerce", now),
            Err(TokenError::Invalid(_))
        ));
        let future = sign(
            &keys,
            &Claims {
                iat: now + 600,
                nbf: now + 600,
                ..claims(now)
            },
        )
        .unwrap();
        assert_eq!(
            verify(&keys, &future, "ecommerce", now),
            Err(TokenError::FutureDated)
        );
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let now = 1_800_000_000;
        let keys = ring(&["k1"]);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(now)).unwrap());
        for header in [
            r#"{"alg":"none","kid":"k1"}"#,
            r#"{"alg":"HS512","kid":"k1"}"#,
            r#"{"alg":"RS256","kid":"k1"}"#,
        ] {
            let token = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(header));
            assert!(verify(&keys, &token, "ecommerce", now).is_err(), "{header}");
        }
    }

    #[test]
    fn refresh_tokens_carry_their_family() {
        let token = new_refresh_token("fam");
        assert_eq!(refresh_family(&token), Some("fam"));
        assert_eq!(refresh_family("fam.short"), None);
        assert_eq!(refresh_family("nodot"), None);
        assert_ne!(digest(&token), digest(&new_refresh_token("fam")));
    }
}
