//! Encryption at rest: the key-encryption key (KEK) a node reads from a file
//! or its environment, data keys wrapped by it, AES-256-GCM sealing of
//! single values bound to the record they belong to, and keyed blind indexes
//! for lookups on encrypted values (docs/security.md).
//!
//! Nothing here is replicated state by itself: what the cluster stores are
//! wrapped data keys and sealed values, made here *before* a command is
//! proposed (random nonces have no place in `apply`) and opened here when a
//! use case reads them.

pub mod kek;
pub mod seal;

pub use kek::{Kek, KekError};
pub use seal::{blind_index, open, seal, unwrap_key, wrap_key, DataKey, SealError, SealedBytes};

use std::path::Path;

use crate::config::Settings;

/// Where a lone node keeps the KEK it made for itself.
pub const GENERATED_KEK: &str = "keys/kek";

/// The node's KEK: `storage.kek_file`, else `storage.kek`; else, for a node
/// that serves loopback addresses only and joins nobody (the single-node
/// default), one generated beside the data in [`GENERATED_KEK`], with a
/// warning: whoever holds the data directory then holds its key. `None`
/// for any other node without one (encryption at rest is not available to
/// it yet).
pub fn load_kek(settings: &Settings, data_dir: &Path) -> Result<Option<Kek>, KekError> {
    if let Some(path) = &settings.storage.kek_file {
        return Ok(Some(Kek::read(path)?));
    }
    if let Some(text) = &settings.storage.kek {
        return Ok(Some(Kek::parse(&text.0)?));
    }
    let loopback = |addr: &str| {
        addr.parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    };
    let alone = settings.join.is_none()
        && loopback(&settings.http_addr)
        && loopback(&settings.grpc_addr)
        && loopback(&settings.peer_addr);
    if !alone {
        tracing::warn!("no KEK configured (storage.kek_file): encryption at rest is unavailable");
        return Ok(None);
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
    Ok(Some(Kek::read(&path)?))
}
