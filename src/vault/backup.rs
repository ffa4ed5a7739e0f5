//! Encrypted backups. A backup leaves the node, so besides its values
//! (sealed at rest already) the whole stream is encrypted and authenticated:
//!
//! ```text
//! "ECBAK001" | u32 BE header length | header (JSON)
//! STREAM chunks: AES-256-GCM under a fresh per-backup key, 64 KiB of
//! plaintext each (+16-byte tag), the last one marked as last
//! ```
//!
//! The header holds the cluster's data keys and the per-backup key, both
//! wrapped by the KEK version the node used; each chunk's associated data is
//! the SHA-256 of the magic and header, so nothing in the header can be
//! changed either. Truncation, reordering and any flipped bit fail. The
//! plaintext is the snapshot stream (`ECSNAP01`) the node imports.

use std::io::{Read, Write};

use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::aead::{KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::seal::{unwrap_key, wrap_key, DataKey, SealedBytes};
use super::{Kek, KeyFile, KeysError};

pub const MAGIC: &[u8; 8] = b"ECBAK001";
const CHUNK: usize = 64 << 10;
const TAG: usize = 16;
const MAX_HEADER: usize = 64 << 10;
const BACKUP_KEY_AAD: &[u8] = b"ecommerce/backup-key/v1";

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    kek_version: u32,
    data_keys: KeyFile,
    key_nonce: String,
    wrapped_key: String,
    stream_nonce: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error("not an encrypted backup: {0}")]
    Format(String),
    #[error(
        "the backup failed authentication at chunk {0}: it was altered or truncated; \
         nothing was restored"
    )]
    Tampered(u64),
}

/// Whether `first` (the file's first bytes) starts an encrypted backup.
pub fn is_encrypted(first: &[u8]) -> bool {
    first.starts_with(MAGIC)
}

/// Encrypts the snapshot stream `plain` into `out` under a fresh key wrapped
/// by KEK version `kek_version`, with the cluster's wrapped `data_keys`.
pub fn encrypt(
    kek: &Kek,
    kek_version: u32,
    data_keys: &KeyFile,
    mut plain: impl Read,
    mut out: impl Write,
) -> Result<(), BackupError> {
    let key = DataKey::generate();
    let wrapped = wrap_key(kek, kek_version, &key, BACKUP_KEY_AAD)
        .map_err(|e| KeysError::from_seal(e, kek_version))?;
    let mut stream_nonce = [0u8; 7];
    OsRng.fill_bytes(&mut stream_nonce);
    let header = Header {
        kek_version,
        data_keys: data_keys.clone(),
        key_nonce: B64.encode(wrapped.nonce),
        wrapped_key: B64.encode(&wrapped.ciphertext),
        stream_nonce: B64.encode(stream_nonce),
    };
    let header = serde_json::to_vec(&header).map_err(|e| BackupError::Format(e.to_string()))?;
    out.write_all(MAGIC)?;
    out.write_all(&(header.len() as u32).to_be_bytes())?;
    out.write_all(&header)?;
    let aad = header_digest(&header);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.bytes()));
    let mut encryptor = EncryptorBE32::from_aead(cipher, stream_nonce.as_slice().into());
    let mut buf = vec![0u8; CHUNK];
    let mut filled = fill(&mut plain, &mut buf)?;
    loop {
        let mut next = vec![0u8; CHUNK];
        let next_filled = if filled == CHUNK {
            fill(&mut plain, &mut next)?
        } else {
            0
        };
        if filled < CHUNK || next_filled == 0 {
            let sealed = encryptor
                .encrypt_last(aes_gcm::aead::Payload {
                    msg: &buf[..filled],
                    aad: &aad,
                })
                .map_err(|_| BackupError::Format("encryption failed".into()))?;
            out.write_all(&sealed)?;
            break;
        }
        let sealed = encryptor
            .encrypt_next(aes_gcm::aead::Payload {
                msg: &buf[..filled],
                aad: &aad,
            })
            .map_err(|_| BackupError::Format("encryption failed".into()))?;
        out.write_all(&sealed)?;
        buf = next;
        filled = next_filled;
    }
    out.flush()?;
    Ok(())
}

/// Decrypts an encrypted backup from `input` into `out`, failing on the
/// first chunk that does not authenticate; returns the cluster's data keys
/// (still wrapped) from its header.
pub fn decrypt(
    kek: &Kek,
    mut input: impl Read,
    mut out: impl Write,
) -> Result<KeyFile, BackupError> {
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(BackupError::Format("bad magic".into()));
    }
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_HEADER {
        return Err(BackupError::Format(format!("header of {len} bytes")));
    }
    let mut header_bytes = vec![0u8; len];
    input.read_exact(&mut header_bytes)?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|e| BackupError::Format(e.to_string()))?;
    let b64 = |s: &str| {
        B64.decode(s)
            .map_err(|e| BackupError::Format(e.to_string()))
    };
    let wrapped = SealedBytes {
        nonce: b64(&header.key_nonce)?
            .try_into()
            .map_err(|_| BackupError::Format("key nonce".into()))?,
        ciphertext: b64(&header.wrapped_key)?,
    };
    let key =
        unwrap_key(kek, header.kek_version, BACKUP_KEY_AAD, &wrapped).map_err(|e| match e {
            super::SealError::MissingKek { version, have } => {
                KeysError::MissingKek { version, have }
            }
            super::SealError::Forged => KeysError::WrongKek {
                version: header.kek_version,
            },
        })?;
    let stream_nonce: [u8; 7] = b64(&header.stream_nonce)?
        .try_into()
        .map_err(|_| BackupError::Format("stream nonce".into()))?;
    let aad = header_digest(&header_bytes);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.bytes()));
    let mut decryptor = DecryptorBE32::from_aead(cipher, stream_nonce.as_slice().into());
    let mut buf = vec![0u8; CHUNK + TAG];
    let mut filled = fill(&mut input, &mut buf)?;
    let mut chunk = 0u64;
    loop {
        let mut next = vec![0u8; CHUNK + TAG];
        let next_filled = if filled == CHUNK + TAG {
            fill(&mut input, &mut next)?
        } else {
            0
        };
        let payload = aes_gcm::aead::Payload {
            msg: &buf[..filled],
            aad: &aad,
        };
        if next_filled == 0 {
            let plain = decryptor
                .decrypt_last(payload)
                .map_err(|_| BackupError::Tampered(chunk))?;
            out.write_all(&plain)?;
            break;
        }
        let plain = decryptor
            .decrypt_next(payload)
            .map_err(|_| BackupError::Tampered(chunk))?;
        out.write_all(&plain)?;
        buf = next;
        filled = next_filled;
        chunk += 1;
    }
    out.flush()?;
    Ok(header.data_keys)
}

fn header_digest(header: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(header);
    h.finalize().to_vec()
}

/// Reads until `buf` is full or the input ends; the number of bytes read.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::super::DataKeys;
    use super::*;

    const V1_V2: &str = "1 AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n\
                         2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n";

    fn backup(len: usize) -> (Vec<u8>, Vec<u8>) {
        let kek = Kek::parse(V1_V2).unwrap();
        let keys = DataKeys::generate().wrap(&kek, 1).unwrap();
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        encrypt(&kek, 1, &keys, plain.as_slice(), &mut out).unwrap();
        (plain, out)
    }

    #[test]
    fn backups_round_trip_at_every_size() {
        let kek = Kek::parse(V1_V2).unwrap();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let (plain, sealed) = backup(len);
            assert!(is_encrypted(&sealed));
            let mut back = Vec::new();
            let keys = decrypt(&kek, sealed.as_slice(), &mut back).unwrap();
            assert_eq!(back, plain, "length {len}");
            assert_eq!(keys.kek_version, 1);
        }
    }

    #[test]
    fn a_flipped_bit_truncation_or_missing_kek_version_is_refused() {
        let kek = Kek::parse(V1_V2).unwrap();
        let (_, sealed) = backup(3 * CHUNK);
        let header_end = 12 + u32::from_be_bytes(sealed[8..12].try_into().unwrap()) as usize;
        let mut flipped = sealed.clone();
        flipped[header_end + CHUNK + 40] ^= 1;
        assert!(matches!(
            decrypt(&kek, flipped.as_slice(), &mut Vec::new()),
            Err(BackupError::Tampered(1))
        ));
        // Cut at a chunk boundary: the last chunk present is not marked last.
        let cut = &sealed[..header_end + 2 * (CHUNK + TAG)];
        assert!(matches!(
            decrypt(&kek, cut, &mut Vec::new()),
            Err(BackupError::Tampered(_))
        ));
        // The header is authenticated too.
        let mut header = sealed.clone();
        let at = header_end - 3;
        header[at] = if header[at] == b'A' { b'B' } else { b'A' };
        assert!(decrypt(&kek, header.as_slice(), &mut Vec::new()).is_err());
        let only_v2 = Kek::parse("2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n").unwrap();
        assert!(matches!(
            decrypt(&only_v2, sealed.as_slice(), &mut Vec::new()),
            Err(BackupError::Keys(KeysError::MissingKek { version: 1, .. }))
        ));
    }
}
