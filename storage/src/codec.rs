//! Value encoding for everything stored: [`ecommerce_codec`]'s bounded
//! bincode, with this crate's errors.

pub use ecommerce_codec::{CodecError, CLAIM_PER_BYTE};

use crate::Result;

pub fn encode<V: serde::Serialize + ?Sized>(value: &V) -> Result<Vec<u8>> {
    Ok(ecommerce_codec::encode(value)?)
}

pub fn decode<V: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<V> {
    Ok(ecommerce_codec::decode(bytes)?)
}
