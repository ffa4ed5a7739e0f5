//! The cluster's data keys: random 256-bit keys, one per purpose, the same
//! on every node, kept in `<data_dir>/keys/data-keys` wrapped by a version
//! of the KEK (never in RocksDB or the Raft log). A node that starts a
//! cluster makes them; a node that joins fetches the wrapped file from a
//! member and unwraps it with its own KEK; `rotate-kek` rewraps the file in
//! place (the data keys, and so every sealed value, stay the same).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::seal::{unwrap_key, wrap_key, DataKey, SealError, SealedBytes};
use super::Kek;

/// Where the wrapped data keys live, under the data directory.
pub const DATA_KEYS_FILE: &str = "keys/data-keys";

/// What a data key protects. Stored by name in the key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Every value stored in RocksDB, the Raft log and snapshots.
    Storage,
    /// Blind indexes: keys of tables looked up by e-mail or provider subject.
    Index,
    /// Token-signing keys are derived from it and a key id, so no signing
    /// secret is ever stored or proposed.
    Signing,
    /// Payloads for the notification side (password-reset tokens).
    Delivery,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [
        Purpose::Storage,
        Purpose::Index,
        Purpose::Signing,
        Purpose::Delivery,
    ];

    fn aad(self) -> Vec<u8> {
        format!("ecommerce/data-key/v1/{self:?}").into_bytes()
    }
}

/// One wrapped data key in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WrappedKey {
    purpose: Purpose,
    /// Base64 of the nonce and the wrapped key.
    nonce: String,
    wrapped: String,
}

/// The key file (JSON, 0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub format: u32,
    /// The KEK version every key is wrapped under.
    pub kek_version: u32,
    keys: Vec<WrappedKey>,
}

/// Why the data keys cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("reading or writing {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a data-key file: {reason}")]
    Format { path: String, reason: String },
    #[error(
        "the data keys are wrapped under KEK version {version}, which this node's KEK does \
         not have (it has {have:?}): add that version to storage.kek_file"
    )]
    MissingKek { version: u32, have: Vec<u32> },
    #[error(
        "the data keys do not open with KEK version {version}: this node's KEK file holds \
         other bytes under that version than the node that wrapped them"
    )]
    WrongKek { version: u32 },
}

impl KeysError {
    pub(super) fn from_seal(e: SealError, version: u32) -> Self {
        match e {
            SealError::MissingKek { version, have } => Self::MissingKek { version, have },
            SealError::Forged => Self::WrongKek { version },
        }
    }
}

/// The data keys in the clear, zeroed when dropped.
#[derive(Debug)]
pub struct DataKeys {
    pub storage: DataKey,
    pub index: DataKey,
    pub signing: DataKey,
    pub delivery: DataKey,
}

impl DataKeys {
    pub fn generate() -> Self {
        Self {
            storage: DataKey::generate(),
            index: DataKey::generate(),
            signing: DataKey::generate(),
            delivery: DataKey::generate(),
        }
    }

    fn get(&self, purpose: Purpose) -> &DataKey {
        match purpose {
            Purpose::Storage => &self.storage,
            Purpose::Index => &self.index,
            Purpose::Signing => &self.signing,
            Purpose::Delivery => &self.delivery,
        }
    }

    /// The keys wrapped under KEK version `kek_version`.
    pub fn wrap(&self, kek: &Kek, kek_version: u32) -> Result<KeyFile, KeysError> {
        let keys = Purpose::ALL
            .into_iter()
            .map(|purpose| {
                let sealed = wrap_key(kek, kek_version, self.get(purpose), &purpose.aad())
                    .map_err(|e| KeysError::from_seal(e, kek_version))?;
                Ok(WrappedKey {
                    purpose,
                    nonce: B64.encode(sealed.nonce),
                    wrapped: B64.encode(sealed.ciphertext),
                })
            })
            .collect::<Result<_, KeysError>>()?;
        Ok(KeyFile {
            format: 1,
            kek_version,
            keys,
        })
    }
}

impl KeyFile {
    pub fn parse(bytes: &[u8], path: &str) -> Result<Self, KeysError> {
        let file: KeyFile = serde_json::from_slice(bytes).map_err(|e| KeysError::Format {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        if file.format != 1 {
            return Err(KeysError::Format {
                path: path.to_string(),
                reason: format!("format {} is not known to this version", file.format),
            });
        }
        Ok(file)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_else(|_| unreachable!("plain JSON"))
    }

    /// The data keys, unwrapped with `kek`.
    pub fn unwrap(&self, kek: &Kek, path: &str) -> Result<DataKeys, KeysError> {
        let key = |purpose: Purpose| -> Result<DataKey, KeysError> {
            let wrapped = self
                .keys
                .iter()
                .find(|k| k.purpose == purpose)
                .ok_or_else(|| KeysError::Format {
                    path: path.to_string(),
                    reason: format!("no {purpose:?} key"),
                })?;
            let decode = |s: &str| {
                B64.decode(s).map_err(|e| KeysError::Format {
                    path: path.to_string(),
                    reason: e.to_string(),
                })
            };
            let nonce: [u8; 12] =
                decode(&wrapped.nonce)?
                    .try_into()
                    .map_err(|_| KeysError::Format {
                        path: path.to_string(),
                        reason: "a nonce is not 12 bytes".into(),
                    })?;
            let sealed = SealedBytes {
                nonce,
                ciphertext: decode(&wrapped.wrapped)?,
            };
            unwrap_key(kek, self.kek_version, &purpose.aad(), &sealed)
                .map_err(|e| KeysError::from_seal(e, self.kek_version))
        };
        Ok(DataKeys {
            storage: key(Purpose::Storage)?,
            index: key(Purpose::Index)?,
            signing: key(Purpose::Signing)?,
            delivery: key(Purpose::Delivery)?,
        })
    }

    /// Reads the key file at `path`; `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<Self>, KeysError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeysError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Writes the file to `path` atomically (a temporary file made 0600,
    /// fsynced, renamed over the old one).
    pub fn write(&self, path: &Path) -> Result<(), KeysError> {
        let io = |source| KeysError::Io {
            path: path.display().to_string(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let temp: PathBuf = path.with_extension("tmp");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::remove_file(&temp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .map_err(io)?;
            f.write_all(&self.to_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&temp, path).map_err(io)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(text: &str) -> Kek {
        Kek::parse(text).unwrap()
    }

    const V1: &str = "1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n";
    const V1_V2: &str = "1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n\
                         2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n";

    #[test]
    fn keys_round_trip_through_the_file_and_rewrap_under_a_new_kek_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DATA_KEYS_FILE);
        let keys = DataKeys::generate();
        let blind = super::super::seal::mac(&super::super::seal::hmac(&keys.index), &[b"a@b"]);
        keys.wrap(&kek(V1), 1).unwrap().write(&path).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"kek_version\": 1"), "{text}");

        let file = KeyFile::read(&path).unwrap().unwrap();
        let back = file.unwrap(&kek(V1_V2), "f").unwrap();
        assert_eq!(
            super::super::seal::mac(&super::super::seal::hmac(&back.index), &[b"a@b"]),
            blind
        );
        // Rotation: the same keys under version 2; version 1 is then not needed.
        back.wrap(&kek(V1_V2), 2).unwrap().write(&path).unwrap();
        let file = KeyFile::read(&path).unwrap().unwrap();
        assert_eq!(file.kek_version, 2);
        let only_v2 = kek("2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n");
        let again = file.unwrap(&only_v2, "f").unwrap();
        assert_eq!(
            super::super::seal::mac(&super::super::seal::hmac(&again.index), &[b"a@b"]),
            blind
        );
        assert!(matches!(
            file.unwrap(&kek(V1), "f"),
            Err(KeysError::MissingKek { version: 2, .. })
        ));
        let other_v2 = kek("2 AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n");
        assert!(matches!(
            file.unwrap(&other_v2, "f"),
            Err(KeysError::WrongKek { version: 2 })
        ));
    }

    #[test]
    fn a_key_wrapped_for_one_purpose_does_not_unwrap_as_another() {
        let keys = DataKeys::generate();
        let mut file = keys.wrap(&kek(V1), 1).unwrap();
        let index = file.keys[1].clone();
        file.keys[0].nonce = index.nonce;
        file.keys[0].wrapped = index.wrapped;
        assert!(matches!(
            file.unwrap(&kek(V1), "f"),
            Err(KeysError::WrongKek { version: 1 })
        ));
    }
}
