//! Value encoding for everything stored: bincode with the standard configuration.

use crate::{Error, Result};

pub fn encode<V: serde::Serialize + ?Sized>(value: &V) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| Error::Codec(e.to_string()))
}

pub fn decode<V: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<V> {
    let (value, _) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| Error::Codec(e.to_string()))?;
    Ok(value)
}
