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
pub use seal::{open, seal, unwrap_key, wrap_key, DataKey, SealError, SealedBytes};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::Hmac;
use sha2::Sha256;

use ecommerce_domains::idempotency::IdempotencyTag;
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
        let parts: [&[u8]; 4] = [b"ecommerce/signing-key/v1\0", kid.as_bytes(), &[0], salt];
        seal::mac(&seal::hmac(&self.keys.signing), &parts).to_vec()
    }

    /// `tag` with its fingerprint keyed: HMAC-SHA-256, under the index data
    /// key, of the request's digest. Every node keys alike, so a retry on
    /// another node matches; the replicated state never holds a plain
    /// digest of a request body (which a guess could be tested against).
    pub fn keyed_tag(&self, mut tag: IdempotencyTag) -> IdempotencyTag {
        let parts: [&[u8]; 2] = [
            b"ecommerce/idempotency-fingerprint/v1\0",
            tag.fingerprint.as_bytes(),
        ];
        tag.fingerprint = hex::encode(seal::mac(&seal::hmac(&self.keys.index), &parts));
        tag
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
        let cipher = self.keys.delivery.cipher();
        B64.encode(seal::seal_joined(
            &cipher,
            &reset_aad(user_id),
            token.as_bytes(),
        ))
    }

    /// The token [`Vault::seal_reset_token`] sealed for user `user_id`.
    pub fn open_reset_token(&self, user_id: &str, delivery: &str) -> Result<String, SealError> {
        let bytes = B64.decode(delivery).map_err(|_| SealError::Forged)?;
        let cipher = self.keys.delivery.cipher();
        let token = seal::open_joined(&cipher, &reset_aad(user_id), &bytes)
            .map(zeroize::Zeroizing::new)
            .ok_or(SealError::Forged)?;
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
            cipher: keys.storage.cipher(),
            index: seal::hmac(&keys.index),
        }
    }
}

impl ecommerce_storage::Sealer for StorageSealer {
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal::seal_joined(&self.cipher, aad, plaintext)
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        seal::open_joined(&self.cipher, aad, sealed)
    }

    fn blind(&self, table: &str, key: &[u8]) -> Vec<u8> {
        let parts: [&[u8]; 4] = [b"ecommerce/blind/v1\0", table.as_bytes(), &[0], key];
        seal::mac(&self.index, &parts).to_vec()
    }
}

/// `ecommerce keys init-data-keys`: new data keys in `data_dir`, wrapped by
/// the newest version of `kek_file`; refused when the node has some.
pub fn init_data_keys(data_dir: &Path, kek_file: &Path) -> Result<PathBuf, RotateError> {
    let kek = Kek::read(kek_file)?;
    let path = data_dir.join(DATA_KEYS_FILE);
    if path.exists() {
        return Err(KeysError::Format {
            path: path.display().to_string(),
            reason: "this node has data keys already".into(),
        }
        .into());
    }
    DataKeys::generate()
        .wrap(&kek, kek.current())?
        .write(&path)?;
    Ok(path)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ecommerce_storage::{Durability, Storage, StorageOptions};

    fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_holding(&path, needle));
            } else if std::fs::read(&path)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                found.push(path);
            }
        }
        found
    }

    /// A store written before encryption, its plaintext in SST files and the
    /// WAL, holds none of it after sealing in place, and reads back.
    #[test]
    fn sealing_a_plaintext_store_leaves_no_plaintext_in_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let tables = ["users", "users_by_email"];
        let marker = b"ann.marker@example.test";
        {
            let storage = Storage::open(dir.path(), &tables, &StorageOptions::default()).unwrap();
            let mut batch = storage.batch();
            batch.put("users", b"u1", marker).unwrap();
            batch.put("users_by_email", marker, b"u1").unwrap();
            storage.write(batch, Durability::Sync).unwrap();
            storage.compact_all().unwrap();
            let mut batch = storage.batch();
            batch.put("users", b"u2", marker).unwrap();
            storage.write(batch, Durability::Sync).unwrap();
            assert!(!files_holding(dir.path(), marker).is_empty());
        }
        let storage = Storage::open(dir.path(), &tables, &StorageOptions::default()).unwrap();
        let sealer = Arc::new(StorageSealer::new(&DataKeys::generate()));
        let done = storage
            .seal_at_rest(sealer.clone(), &["users_by_email"])
            .unwrap();
        assert_eq!(done.sealed, 3);
        drop(storage);
        // Opened again (as the node does after sealing), and still readable.
        let storage = Storage::open(dir.path(), &tables, &StorageOptions::default()).unwrap();
        assert!(
            storage
                .seal_at_rest(sealer, &["users_by_email"])
                .unwrap()
                .already
        );
        assert_eq!(
            storage.get("users", b"u2").unwrap().as_deref(),
            Some(&marker[..])
        );
        assert_eq!(
            storage.get("users_by_email", marker).unwrap().as_deref(),
            Some(&b"u1"[..])
        );
        drop(storage);
        let left = files_holding(dir.path(), marker);
        assert!(left.is_empty(), "plaintext left in {left:?}");
    }

    #[test]
    fn derived_signing_secrets_depend_on_key_id_salt_and_data_key() {
        let dir = tempfile::tempdir().unwrap();
        let kek_file = dir.path().join("kek");
        kek::append_new_version(&kek_file, None).unwrap();
        let kek = Kek::read(&kek_file).unwrap();
        DataKeys::generate()
            .wrap(&kek, 1)
            .unwrap()
            .write(&dir.path().join(DATA_KEYS_FILE))
            .unwrap();
        let vault = Vault::open_offline(dir.path(), &kek_file).unwrap();
        let a = vault.signing_secret("d1-a", &[1; 32]);
        assert_eq!(a.len(), 32);
        assert_ne!(a, vec![1; 32], "the salt is not the secret");
        assert_eq!(a, vault.signing_secret("d1-a", &[1; 32]));
        assert_ne!(a, vault.signing_secret("d1-b", &[1; 32]));
        assert_ne!(a, vault.signing_secret("d1-a", &[2; 32]));
        let other = tempfile::tempdir().unwrap();
        DataKeys::generate()
            .wrap(&kek, 1)
            .unwrap()
            .write(&other.path().join(DATA_KEYS_FILE))
            .unwrap();
        let stranger = Vault::open_offline(other.path(), &kek_file).unwrap();
        assert_ne!(a, stranger.signing_secret("d1-a", &[1; 32]));

        // Idempotency fingerprints: keyed alike on every node of a cluster.
        let tag = IdempotencyTag {
            key: ecommerce_domains::idempotency::IdempotencyKey::parse("k-1").unwrap(),
            fingerprint: "ab".repeat(32),
        };
        let keyed = vault.keyed_tag(tag.clone());
        assert_ne!(keyed.fingerprint, tag.fingerprint);
        assert_eq!(keyed.fingerprint.len(), 64);
        assert_eq!(keyed, vault.keyed_tag(tag.clone()));
        assert_ne!(keyed, stranger.keyed_tag(tag));

        let sealed = vault.seal_reset_token("u1", "the-token");
        assert!(!sealed.contains("the-token"));
        assert_eq!(vault.open_reset_token("u1", &sealed).unwrap(), "the-token");
        assert!(
            vault.open_reset_token("u2", &sealed).is_err(),
            "bound to its user"
        );
        assert!(stranger.open_reset_token("u1", &sealed).is_err());
    }
}
