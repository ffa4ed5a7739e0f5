//! Idempotency keys as both transports carry them: the `idempotency-key`
//! header (REST) or metadata entry (gRPC, HTTP/2 headers underneath), the
//! tag a write is recorded under, and the `idempotent-replayed` mark on an
//! answer that replays a stored outcome.
//!
//! A tag is always built with the caller's [`Principal`]: the record of a key
//! belongs to whoever used it (see `ecommerce_domains::idempotency`). Its
//! fingerprint is the REST request's method, path and JSON body; a gRPC call
//! passes the REST request it stands for (the use case's request type, which
//! serializes to the REST body), so a key retried over either transport
//! finds the same record.

use ecommerce_domains::idempotency::{IdempotencyKey, IdempotencyTag, Principal};
use http::HeaderMap;
use serde::Serialize;

use super::{AppError, AppResult};
use crate::app::ErrorCode;

/// The request header (gRPC: metadata key) carrying a client's key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The answer's header (gRPC: metadata key), `true` on a replayed outcome.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The `Idempotency-Key` of a request's headers (or gRPC metadata), if any.
pub fn idempotency_key(headers: &HeaderMap) -> AppResult<Option<IdempotencyKey>> {
    let Some(raw) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let raw = raw.to_str().map_err(|_| {
        AppError::new(
            ErrorCode::InvalidHeader,
            "Idempotency-Key must be visible ASCII",
        )
    })?;
    IdempotencyKey::parse(raw)
        .map(Some)
        .map_err(|e| AppError::new(ErrorCode::InvalidHeader, e.to_string()))
}

/// The tag `principal`'s request with client key `key` is recorded under:
/// the scoped key and the fingerprint of the REST request (`method`, `path`,
/// the body's canonical JSON, so the same request with other whitespace or
/// field order still matches).
pub fn idempotency_tag<B: Serialize>(
    principal: &Principal,
    key: &IdempotencyKey,
    method: &str,
    path: &str,
    body: &B,
) -> IdempotencyTag {
    let body = serde_json::to_vec(body).unwrap_or_default();
    IdempotencyTag::scoped(principal, key, method, path, &body)
}
