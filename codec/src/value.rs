//! Value encoding for everything stored: bincode with the standard configuration.
//!
//! Decoding is bounded. bincode allocates a string or byte buffer as long as
//! the length prefix it reads says, before it reads the bytes; without a limit
//! ten bytes claiming an exabyte make the allocator abort the process, and this
//! decoder also reads what peers send. Every decode therefore runs under
//! bincode's byte limit, chosen from the input's length: a valid encoding of
//! `n` bytes never claims more than [`CLAIM_PER_BYTE`] × `n` (a one-byte varint
//! decodes to at most a 16-byte integer), so the limit refuses only what no
//! valid encoding asks for. The limit is a type parameter in bincode, hence the
//! tiers.
//!
//! The encoding itself is unchanged: limits apply to decoding only.

use bincode::config::{self, Config};

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encoding: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decoding: {0}")]
    Decode(#[from] bincode::error::DecodeError),
}

/// What [`encode`] and [`decode`] return.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;

/// The most bytes a decoded value may claim per encoded byte.
pub const CLAIM_PER_BYTE: usize = 16;

pub fn encode<V: serde::Serialize + ?Sized>(value: &V) -> Result<Vec<u8>> {
    Ok(bincode::serde::encode_to_vec(value, config::standard())?)
}

pub fn decode<V: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<V> {
    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    let claim = bytes.len().saturating_mul(CLAIM_PER_BYTE);
    if claim <= 64 * KIB {
        decode_with(bytes, config::standard().with_limit::<{ 64 * KIB }>())
    } else if claim <= 4 * MIB {
        decode_with(bytes, config::standard().with_limit::<{ 4 * MIB }>())
    } else if claim <= 64 * MIB {
        decode_with(bytes, config::standard().with_limit::<{ 64 * MIB }>())
    } else if claim <= 1024 * MIB {
        decode_with(bytes, config::standard().with_limit::<{ 1024 * MIB }>())
    } else {
        decode_with(bytes, config::standard().with_limit::<{ usize::MAX }>())
    }
}

fn decode_with<V: serde::de::DeserializeOwned>(bytes: &[u8], config: impl Config) -> Result<V> {
    let (value, _) = bincode::serde::decode_from_slice(bytes, config)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_prefix_beyond_the_input_is_refused_before_allocating() {
        // A string claiming 2^62 bytes: 0xFD, then a little-endian u64.
        let mut bytes = vec![0xFD];
        bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(decode::<String>(&bytes).is_err());
        assert!(decode::<Vec<u8>>(&bytes).is_err());
        assert!(decode::<Vec<String>>(&bytes).is_err());
    }

    #[test]
    fn values_round_trip_at_every_tier() {
        for len in [0usize, 10, 5_000, 300_000, 5 << 20] {
            let value = (
                vec![7u8; len],
                "x".repeat(len),
                u128::MAX,
                vec![1u64; len / 8],
            );
            let bytes = encode(&value).unwrap();
            assert_eq!(
                decode::<(Vec<u8>, String, u128, Vec<u64>)>(&bytes).unwrap(),
                value
            );
        }
    }

    #[test]
    fn small_integers_claim_their_full_width_and_still_decode() {
        // One byte per element on the wire, 16 claimed: the worst ratio.
        let value = vec![1u128; 100_000];
        let bytes = encode(&value).unwrap();
        assert_eq!(decode::<Vec<u128>>(&bytes).unwrap(), value);
    }
}
