//! Idempotency rules (Stripe's semantics): the first outcome for a key is
//! stored and replayed for retries with the same request; a retry with a
//! different request is refused; records expire after a TTL measured in
//! log-ordered time by a replicated command.

use serde::{Deserialize, Serialize};

use crate::command::{ApplyContext, Outcome};
use crate::store::{self, KeyPart, StoreExt, StoreFault, StoreMut};
use crate::DomainError;

/// Idempotency records, keyed by the idempotency key.
pub const RECORDS: &str = "idempotency";
/// Expiry index: (created at, key) -> the same two values.
pub const EXPIRY: &str = "idempotency_expiry";
/// At most this many records are dropped by one expiry command.
pub const EXPIRE_BATCH: usize = 10_000;

/// A client-chosen idempotency key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DomainError::validation(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a command carries when its request had an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyTag {
    pub key: IdempotencyKey,
    /// Digest of the request (method, path, body) that first used the key.
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub created_ms: u64,
    pub log_index: u64,
    pub outcome: Outcome,
}

pub enum Check {
    Fresh,
    Replay(Box<IdempotencyRecord>),
    Conflict,
}

pub fn check(store: &dyn StoreMut, tag: &IdempotencyTag) -> Result<Check, StoreFault> {
    let existing: Option<IdempotencyRecord> =
        store.get(RECORDS, &[KeyPart::Str(tag.key.as_str())])?;
    Ok(match existing {
        None => Check::Fresh,
        Some(record) if record.fingerprint == tag.fingerprint => Check::Replay(Box::new(record)),
        Some(_) => Check::Conflict,
    })
}

pub fn record(
    store: &mut dyn StoreMut,
    tag: &IdempotencyTag,
    ctx: &ApplyContext,
    outcome: &Outcome,
) -> Result<(), StoreFault> {
    let record = IdempotencyRecord {
        fingerprint: tag.fingerprint.clone(),
        created_ms: ctx.now_ms,
        log_index: ctx.log_index,
        outcome: outcome.clone(),
    };
    store::put(store, RECORDS, &[KeyPart::Str(tag.key.as_str())], &record)?;
    let entry = ExpiryEntry {
        created_ms: ctx.now_ms,
        key: tag.key.as_str().to_string(),
    };
    store::put(
        store,
        EXPIRY,
        &[KeyPart::U64(ctx.now_ms), KeyPart::Str(tag.key.as_str())],
        &entry,
    )?;
    Ok(())
}

/// Removes records created at or before `now_ms - ttl_ms`; returns how many.
pub fn expire(store: &mut dyn StoreMut, now_ms: u64, ttl_ms: u64) -> Result<u64, StoreFault> {
    let cutoff = now_ms.saturating_sub(ttl_ms);
    let mut removed: u64 = 0;
    let candidates: Vec<ExpiryEntry> = store.scan(EXPIRY, &[], None, EXPIRE_BATCH)?;
    for entry in candidates {
        if entry.created_ms > cutoff {
            break;
        }
        store.delete_raw(
            EXPIRY,
            &[KeyPart::U64(entry.created_ms), KeyPart::Str(&entry.key)],
        );
        store.delete_raw(RECORDS, &[KeyPart::Str(&entry.key)]);
        removed = removed.saturating_add(1);
    }
    Ok(removed)
}

#[derive(Serialize, Deserialize)]
struct ExpiryEntry {
    created_ms: u64,
    key: String,
}
