//! `codec`: the bytes of everything stored, shared by `domains` and `storage`.
//!
//! Keys ([`keys`]): composite keys of [`KeyPart`]s, encoded so that byte order
//! is key order. Values ([`encode`], [`decode`]): bincode with the standard
//! configuration, decoding bounded by the input's length.
//!
//! Architecture invariant: these encodings are persisted (RocksDB, snapshots,
//! the Raft log) and pinned by the golden test
//! `domains/tests/persisted_format.rs`; they change only with a migration.
//! Nothing here knows about RocksDB or the domains: pure bytes.

pub mod keys;
mod value;

pub use keys::KeyPart;
pub use value::{decode, encode, CodecError, Result, CLAIM_PER_BYTE};
