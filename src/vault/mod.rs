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
