//! AES-256-GCM with 96-bit random nonces, and HMAC-SHA-256 blind indexes.
//!
//! Every ciphertext is bound to where it is stored: the caller passes the
//! record's table, key and field as associated data, so a ciphertext copied
//! into another record (or another field) does not open. Data keys are
//! wrapped the same way under a KEK version.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Kek;

/// A 256-bit data key, zeroed when dropped.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let key = Aes256Gcm::generate_key(&mut OsRng);
        Self(Zeroizing::new(key.into()))
    }

    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(super) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&*self.0))
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// A sealed value: its nonce and the ciphertext with its tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBytes {
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Wrong key, tampered bytes, or bytes sealed for another record.
    #[error("the value does not open with this key for this record")]
    Forged,
    #[error("KEK version {version} is not configured on this node (it has {have:?})")]
    MissingKek { version: u32, have: Vec<u32> },
}

/// Seals `plaintext` under `key`, bound to `aad`.
pub fn seal(key: &DataKey, aad: &[u8], plaintext: &[u8]) -> SealedBytes {
    seal_with(&key.cipher(), aad, plaintext)
}

/// Opens what [`seal`] made with the same key and `aad`.
pub fn open(
    key: &DataKey,
    aad: &[u8],
    sealed: &SealedBytes,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    open_with(&key.cipher(), aad, sealed)
}

/// Wraps data key `key` under KEK `version`, bound to `aad` (its purpose
/// and version, so a wrapped key cannot stand in for another).
pub fn wrap_key(
    kek: &Kek,
    version: u32,
    key: &DataKey,
    aad: &[u8],
) -> Result<SealedBytes, SealError> {
    Ok(seal_with(&kek_cipher(kek, version)?, aad, &*key.0))
}

/// Unwraps what [`wrap_key`] made.
pub fn unwrap_key(
    kek: &Kek,
    version: u32,
    aad: &[u8],
    wrapped: &SealedBytes,
) -> Result<DataKey, SealError> {
    let bytes = open_with(&kek_cipher(kek, version)?, aad, wrapped)?;
    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SealError::Forged)?;
    Ok(DataKey(Zeroizing::new(key)))
}

/// HMAC-SHA-256 under `key`, ready for [`mac`] (the key schedule done once).
pub fn hmac(key: &DataKey) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(&*key.0)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// The MAC of `parts` (one after the other, as given) under `prepared`: the
/// one keyed hash behind blind indexes, derived signing secrets and keyed
/// idempotency fingerprints. Callers start `parts` with a label of their
/// own, so two uses of one key never collide; equal inputs give equal
/// MACs, and nobody without the key can tell the input or test a guess.
pub fn mac(prepared: &Hmac<Sha256>, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = prepared.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn kek_cipher(kek: &Kek, version: u32) -> Result<Aes256Gcm, SealError> {
    let key = kek.key(version).ok_or_else(|| SealError::MissingKek {
        version,
        have: kek.versions(),
    })?;
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)))
}

fn seal_with(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> SealedBytes {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_else(|_| unreachable!("AES-GCM seals any message under 64 GiB"));
    SealedBytes {
        nonce: nonce.into(),
        ciphertext,
    }
}

fn decrypt(cipher: &Aes256Gcm, nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

fn open_with(
    cipher: &Aes256Gcm,
    aad: &[u8],
    sealed: &SealedBytes,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    decrypt(cipher, &sealed.nonce, &sealed.ciphertext, aad)
        .map(Zeroizing::new)
        .ok_or(SealError::Forged)
}

/// [`seal`] as one byte string: the nonce, then the ciphertext and tag.
pub(super) fn seal_joined(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let sealed = seal_with(cipher, aad, plaintext);
    [sealed.nonce.as_slice(), &sealed.ciphertext].concat()
}

/// Opens what [`seal_joined`] made; `None` when it does not open.
pub(super) fn open_joined(cipher: &Aes256Gcm, aad: &[u8], joined: &[u8]) -> Option<Vec<u8>> {
    if joined.len() < 12 + 16 {
        return None;
    }
    let (nonce, ciphertext) = joined.split_at(12);
    decrypt(cipher, nonce, ciphertext, aad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn kek(versions: &[(u32, u8)]) -> Kek {
        let text: String = versions
            .iter()
            .map(|(v, b)| {
                format!(
                    "{v} {}\n",
                    base64::engine::general_purpose::STANDARD.encode([*b; 32])
                )
            })
            .collect();
        Kek::parse(&text).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_for_its_record() {
        let key = DataKey::generate();
        let sealed = seal(&key, b"users_private/u1/email", b"ann@example.test");
        assert!(
            !sealed.ciphertext.windows(3).any(|w| w == b"ann"),
            "no plaintext"
        );
        assert_eq!(
            &*open(&key, b"users_private/u1/email", &sealed).unwrap(),
            b"ann@example.test"
        );
        // Another record, another key, a flipped bit: all refused alike.
        assert_eq!(
            open(&key, b"users_private/u2/email", &sealed),
            Err(SealError::Forged)
        );
        assert_eq!(
            open(&DataKey::generate(), b"users_private/u1/email", &sealed),
            Err(SealError::Forged)
        );
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(
            open(&key, b"users_private/u1/email", &tampered),
            Err(SealError::Forged)
        );
        // Random nonces: sealing twice gives two ciphertexts.
        assert_ne!(seal(&key, b"a", b"x"), seal(&key, b"a", b"x"));
    }

    #[test]
    fn data_keys_are_wrapped_by_a_kek_version_and_need_it_to_unwrap() {
        let old = kek(&[(1, 1)]);
        let both = kek(&[(1, 1), (2, 2)]);
        let key = DataKey::generate();
        let wrapped = wrap_key(&old, 1, &key, b"dek/personal/1").unwrap();
        let sealed = seal(&key, b"r", b"secret");

        // Rewrapped under version 2, the same data key opens the same values.
        let unwrapped = unwrap_key(&both, 1, b"dek/personal/1", &wrapped).unwrap();
        let rewrapped = wrap_key(&both, 2, &unwrapped, b"dek/personal/1").unwrap();
        let again = unwrap_key(&both, 2, b"dek/personal/1", &rewrapped).unwrap();
        assert_eq!(&*open(&again, b"r", &sealed).unwrap(), b"secret");

        // Without the version, a clear error; with the wrong purpose, forged.
        assert_eq!(
            unwrap_key(&old, 2, b"dek/personal/1", &rewrapped).unwrap_err(),
            SealError::MissingKek {
                version: 2,
                have: vec![1]
            }
        );
        assert_eq!(
            unwrap_key(&both, 1, b"dek/payment/1", &wrapped).unwrap_err(),
            SealError::Forged
        );
    }

    #[test]
    fn a_mac_is_keyed_labelled_and_stable() {
        let key = DataKey::generate();
        let blind = |key: &DataKey, label: &str| {
            hex::encode(mac(&hmac(key), &[label.as_bytes(), b"ann@example.test"]))
        };
        let a = blind(&key, "email\0");
        assert_eq!(a, blind(&key, "email\0"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, blind(&key, "social\0"), "labels separate");
        assert_ne!(a, blind(&DataKey::generate(), "email\0"));
        assert!(!a.contains("ann"));
    }
}
