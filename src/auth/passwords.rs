//! Password hashing with argon2id (PHC strings, so parameters can be raised
//! later and old hashes still verify), run on the blocking pool and bounded
//! by a semaphore so a burst of logins cannot exhaust memory.
//!
//! Hashing happens here, in the API layer, before a command is proposed; the
//! state machine only stores the finished PHC string.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use tokio::sync::Semaphore;

use crate::config::AuthSettings;

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// Concurrent hashes allowed (each takes `argon2_memory_kib`).
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified when an account does not exist
    /// so that a wrong e-mail costs as much time as a wrong password.
    dummy: Arc<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("the hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Passwords {
    pub fn new(settings: &AuthSettings) -> Result<Self, PasswordError> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(|e| PasswordError::Argon2(e.to_string()))?;
        let lanes = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut random = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut random);
        let dummy = hash_with(&params, &hex::encode(random))?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(lanes.max(1))),
            dummy: Arc::new(dummy),
        })
    }

    /// The PHC string of `password` with a fresh random salt.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let _permit = self.permits.acquire().await.expect("never closed");
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, &password)).await?
    }

    /// Whether `password` matches the PHC string `phc`; with `None` (no such
    /// account, or no password) verifies against a dummy hash and answers false.
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, PasswordError> {
        let _permit = self.permits.acquire().await.expect("never closed");
        let (phc, real) = match phc {
            Some(phc) => (phc, true),
            None => (self.dummy.as_ref().clone(), false),
        };
        let matches = tokio::task::spawn_blocking(move || {
            let parsed =
                PasswordHash::new(&phc).map_err(|e| PasswordError::Argon2(e.to_string()))?;
            // The parameters come from the PHC string itself.
            Ok::<_, PasswordError>(
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
            )
        })
        .await??;
        Ok(real && matches)
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Argon2(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Argon2(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify() {
        let passwords = Passwords::new(&AuthSettings::default()).unwrap();
        let phc = passwords
            .hash("correct horse battery".into())
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(passwords
            .verify("correct horse battery".into(), Some(phc.clone()))
            .await
            .unwrap());
        assert!(!passwords
            .verify("wrong horse battery".into(), Some(phc))
            .await
            .unwrap());
        assert!(!passwords.verify("anything".into(), None).await.unwrap());
    }
}
