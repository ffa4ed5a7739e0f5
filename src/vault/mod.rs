//! Encryption at rest: the key-encryption key (KEK) a node reads from a file
//! or its environment, data keys wrapped by it, AES-256-GCM sealing of
//! single values bound to the record they belong to, and keyed blind indexes
//! for lookups on encrypted values (docs/security.md).
//!
//! Nothing here is replicated state: the data keys sit wrapped in a file of
//! each node ([`keys`]), identical on every node, and the storage layer
//! seals every value with them ([`StorageSealer`]) below the state machine,
//! so `apply` stays deterministic and knows no key.

pub mod backup;
pub mod kek;
pub mod keys;
pub mod seal;

pub use kek::{Kek, KekError};
pub use keys::{DataKeys, KeyFile, KeysError, Purpose, DATA_KEYS_FILE};
pub use seal::{blind_index, open, seal, unwrap_key, wrap_key, DataKey, SealError, SealedBytes};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use ecommerce_domains::users::{KeyRing, Secret};

use crate::config::Settings;

/// Where the KEK comes from, so that a rotation can read it again.
#[derive(Debug, Clone)]
enum KekSource {
    File(PathBuf),
    Fixed(Kek),
}

/// A node's keys at run time: the KEK (read again for a rotation) and the
/// cluster's data keys, unwrapped.
pub struct Vault {
    source: KekSource,
    file: PathBuf,
    keys: DataKeys,
    /// The key file as stored (wrapped), served to joining nodes.
    wrapped: Mutex<KeyFile>,
    sealer: Arc<StorageSealer>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("file", &self.file).finish()
    }
}

/// Which KEK version wraps the data keys, and which this node holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeysStatus {
    pub kek_version: u32,
    pub kek_versions: Vec<u32>,
}

impl Vault {
    /// The vault of a node whose data keys are `file` (under `data_dir`),
    /// unwrapped with `kek`.
    pub fn open(
        settings: &Settings,
        data_dir: &Path,
        kek: Kek,
        file: KeyFile,
    ) -> Result<Self, KeysError> {
        let path = data_dir.join(DATA_KEYS_FILE);
        let keys = file.unwrap(&kek, &path.display().to_string())?;
        let source = match &settings.storage.kek_file {
            Some(p) => KekSource::File(p.clone()),
            None if settings.storage.kek.is_none() => KekSource::File(data_dir.join(GENERATED_KEK)),
            None => KekSource::Fixed(kek),
        };
        let sealer = Arc::new(StorageSealer::new(&keys));
        Ok(Self {
            source,
            file: path,
            keys,
            wrapped: Mutex::new(file),
            sealer,
        })
    }

    /// What seals every stored value.
    pub fn sealer(&self) -> Arc<StorageSealer> {
        self.sealer.clone()
    }

    fn kek(&self) -> Result<Kek, KekError> {
        match &self.source {
            KekSource::File(path) => Kek::read(path),
            KekSource::Fixed(kek) => Ok(kek.clone()),
        }
    }

    fn wrapped(&self) -> std::sync::MutexGuard<'_, KeyFile> {
        self.wrapped.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> Result<KeysStatus, KekError> {
        Ok(KeysStatus {
            kek_version: self.wrapped().kek_version,
            kek_versions: self.kek()?.versions(),
        })
    }

    /// Rewraps the data keys under KEK version `to` (read again from the
    /// KEK file, where the operator added it) and replaces the key file
    /// atomically. The data keys stay the same: nothing stored changes.
    pub fn rotate_kek(&self, to: u32) -> Result<KeysStatus, RotateError> {
        let kek = self.kek()?;
        let mut wrapped = self.wrapped();
        let file = self.keys.wrap(&kek, to)?;
        file.write(&self.file)?;
        tracing::info!(
            from = wrapped.kek_version,
            to,
            "data keys rewrapped under a new KEK version"
        );
        *wrapped = file;
        Ok(KeysStatus {
            kek_version: to,
            kek_versions: kek.versions(),
        })
    }

    /// The HS256 secret of signing key `kid` with stored salt `salt`:
    /// HMAC-SHA-256 under the signing data key, so no signing secret is ever
    /// stored, proposed or sent; a salt alone signs nothing.
    pub fn signing_secret(&self, kid: &str, salt: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.keys.signing.bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"ecommerce/signing-key/v1\0");
        mac.update(kid.as_bytes());
        mac.update(&[0]);
        mac.update(salt);
        mac.finalize().into_bytes().to_vec()
    }

    /// `ring` with the secret of every derived key ([`DERIVED_KID_PREFIX`])
    /// in place of its salt. A key from before derived secrets keeps the
    /// secret it was stored with until it is rotated out.
    pub fn open_ring(&self, mut ring: KeyRing) -> KeyRing {
        for key in &mut ring.keys {
            if is_derived(&key.kid) {
                key.secret = Secret(self.signing_secret(&key.kid, &key.secret.0));
            }
        }
        ring
    }

    /// Encrypts the snapshot stream `plain` into a backup `out`, under the
    /// KEK version that wraps the data keys now.
    pub fn encrypt_backup(
        &self,
        plain: impl std::io::Read,
        out: impl std::io::Write,
    ) -> Result<(), backup::BackupError> {
        let kek = self
            .kek()
            .map_err(|e| backup::BackupError::Io(std::io::Error::other(e.to_string())))?;
        let file = self.wrapped().clone();
        backup::encrypt(&kek, file.kek_version, &file, plain, out)
    }

    /// Password-reset token `token` of user `user_id`, sealed for the
    /// notification side under the delivery data key (base64 of nonce and
    /// ciphertext): what the log, the events and every copy of them hold.
    pub fn seal_reset_token(&self, user_id: &str, token: &str) -> String {
        let sealed = seal(&self.keys.delivery, &reset_aad(user_id), token.as_bytes());
        B64.encode([sealed.nonce.as_slice(), &sealed.ciphertext].concat())
    }

    /// The token [`Vault::seal_reset_token`] sealed for user `user_id`.
    pub fn open_reset_token(&self, user_id: &str, delivery: &str) -> Result<String, SealError> {
        let bytes = B64.decode(delivery).map_err(|_| SealError::Forged)?;
        if bytes.len() < 12 {
            return Err(SealError::Forged);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let sealed = SealedBytes {
            nonce: nonce
                .try_into()
                .unwrap_or_else(|_| unreachable!("12 bytes")),
            ciphertext: ciphertext.to_vec(),
        };
        let token = open(&self.keys.delivery, &reset_aad(user_id), &sealed)?;
        String::from_utf8(token.to_vec()).map_err(|_| SealError::Forged)
    }

    /// The vault of the node whose data directory is `data_dir`, opened
    /// offline with the KEK file `kek_file` (the operator's tools, tests).
    pub fn open_offline(data_dir: &Path, kek_file: &Path) -> Result<Self, RotateError> {
        let kek = Kek::read(kek_file)?;
        let path = data_dir.join(DATA_KEYS_FILE);
        let file = KeyFile::read(&path)?.ok_or_else(|| KeysError::Io {
            path: path.display().to_string(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        let keys = file.unwrap(&kek, &path.display().to_string())?;
        Ok(Self {
            source: KekSource::File(kek_file.to_path_buf()),
            file: path,
            sealer: Arc::new(StorageSealer::new(&keys)),
            keys,
            wrapped: Mutex::new(file),
        })
    }
}

fn reset_aad(user_id: &str) -> Vec<u8> {
    format!("ecommerce/password-reset/v1\0{user_id}").into_bytes()
}

impl ecommerce_raft::KeySource for Vault {
    fn wrapped_keys(&self) -> Vec<u8> {
        self.wrapped().to_bytes()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Kek(#[from] KekError),
    #[error(transparent)]
    Keys(#[from] KeysError),
}

/// Seals stored values with the storage data key (AES-256-GCM, random
/// nonce, bound to the record) and blinds the keys of blind tables with the
/// index data key (HMAC-SHA-256).
pub struct StorageSealer {
    cipher: Aes256Gcm,
    index: Hmac<Sha256>,
}

impl StorageSealer {
    fn new(keys: &DataKeys) -> Self {
        Self {
            cipher: Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(keys.storage.bytes())),
            index: <Hmac<Sha256> as Mac>::new_from_slice(keys.index.bytes())
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        }
    }
}

impl ecommerce_storage::Sealer for StorageSealer {
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_else(|_| unreachable!("AES-GCM seals any message under 64 GiB"));
        [nonce.as_slice(), &ciphertext].concat()
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 12 + 16 {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }

    fn blind(&self, table: &str, key: &[u8]) -> Vec<u8> {
        let mut mac = self.index.clone();
        mac.update(b"ecommerce/blind/v1\0");
        mac.update(table.as_bytes());
        mac.update(&[0]);
        mac.update(key);
        mac.finalize().into_bytes().to_vec()
    }
}

/// The prefix of the id of a signing key whose secret is derived
/// ([`Vault::signing_secret`]); what it stores is a salt.
pub const DERIVED_KID_PREFIX: &str = "d1-";

/// Whether signing key `kid` has a derived secret.
pub fn is_derived(kid: &str) -> bool {
    kid.starts_with(DERIVED_KID_PREFIX)
}

/// Whether every address the node listens on is a loopback address.
pub fn serves_loopback_only(settings: &Settings) -> bool {
    let loopback = |addr: &str| {
        addr.parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    };
    loopback(&settings.http_addr) && loopback(&settings.grpc_addr) && loopback(&settings.peer_addr)
}

/// Where a lone node keeps the KEK it made for itself.
pub const GENERATED_KEK: &str = "keys/kek";

/// The node's KEK: `storage.kek_file`, else `storage.kek`; else, for a node
/// that serves loopback addresses only and joins nobody (the single-node
/// default), one generated beside the data in [`GENERATED_KEK`], with a
/// warning: whoever holds the data directory then holds its key. Any other
/// node must be given one: it is refused.
pub fn load_kek(settings: &Settings, data_dir: &Path) -> Result<Kek, KekError> {
    if let Some(path) = &settings.storage.kek_file {
        return Kek::read(path);
    }
    if let Some(text) = &settings.storage.kek {
        return Kek::parse(&text.0);
    }
    let alone = settings.join.is_none() && serves_loopback_only(settings);
    if !alone {
        return Err(KekError::Required);
    }
    let path = data_dir.join(GENERATED_KEK);
    if !path.exists() {
        let keys = data_dir.join("keys");
        std::fs::create_dir_all(&keys).map_err(|source| KekError::Write {
            path: keys.display().to_string(),
            source,
        })?;
        kek::append_new_version(&path, None)?;
        tracing::warn!(
            path = %path.display(),
            "made a KEK beside the data for this lone node; give nodes a KEK of their own \
             (storage.kek_file) before they serve other hosts"
        );
    }
    Kek::read(&path)
}
