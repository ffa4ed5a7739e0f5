//! Idempotency rules (Stripe's semantics): the first outcome for a key is
//! stored and replayed for retries with the same request; a retry with a
//! different request is refused; records expire after a TTL measured in
//! log-ordered time by a replicated command.
//!
//! Keys are scoped to the caller: a record is stored under the [`Principal`]
//! that made the request together with its client key
//! ([`IdempotencyKey::scoped`]), and the fingerprint digests the principal
//! too ([`IdempotencyTag::scoped`]), so two callers who pick the same key
//! never see each other's outcome nor squat each other's keys. The principal
//! is not persisted as a type: it exists only inside the stored key string
//! and the digest, so the log and snapshot format is the one of unscoped keys.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::actor::Actor;
use crate::cart::CartOwner;
use crate::command::{ApplyContext, Outcome};
use crate::store::{self, KeyPart, StoreExt, StoreFault, StoreMut};
use crate::DomainError;

/// Idempotency records, keyed by the (scoped) idempotency key.
pub const RECORDS: &str = "idempotency";
/// Expiry index: (created at, key) -> the same two values.
pub const EXPIRY: &str = "idempotency_expiry";
/// At most this many records are dropped by one expiry command.
pub const EXPIRE_BATCH: usize = 10_000;
/// The longest client key [`IdempotencyKey::parse`] accepts.
pub const MAX_CLIENT_KEY_LEN: usize = 255;

/// An idempotency key. From a client ([`IdempotencyKey::parse`]): 1 to 255
/// visible ASCII characters. As stored in a tag and a record
/// ([`IdempotencyKey::scoped`]): the principal's scope, a space, and the
/// client key; longer than 255 characters when the scope is long, so `apply`
/// must not re-validate a stored key with `parse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A client's key (the `Idempotency-Key` header).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty()
            || raw.len() > MAX_CLIENT_KEY_LEN
            || !raw.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(DomainError::validation(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// The key a record of `principal`'s request with client key `key` is
    /// stored under: `<scope> <key>`, e.g. `u:<user id> order-17`.
    ///
    /// Distinct (principal, key) pairs give distinct stored keys: the scope
    /// never holds a space (see [`Principal::scope`]) and ends at the first
    /// one. A client key has no space either, so no stored key of a scoped
    /// request equals a key stored before keys were scoped.
    pub fn scoped(principal: &Principal, key: &IdempotencyKey) -> Self {
        Self(format!("{} {}", principal.scope(), key.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who a request with an idempotency key acts as: the namespace of its key.
/// Not persisted as such (only [`Principal::scope`] is, inside stored keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in user, by id.
    User(String),
    /// A guest cart, by the SHA-256 (hex) of its token; never the raw token.
    Guest(String),
    /// A holder of the node's operator token.
    Operator,
    /// No credentials at all.
    Anonymous,
}

impl Principal {
    /// The principal's part of a stored key and of a fingerprint: `u:<id>`,
    /// `g:<token digest>`, `op` or `anon`. Bytes of an id outside
    /// `[A-Za-z0-9._-]` are percent-escaped, so a scope holds no space, and
    /// different principals have different scopes.
    pub fn scope(&self) -> String {
        match self {
            Self::User(id) => format!("u:{}", escape(id)),
            Self::Guest(digest) => format!("g:{}", escape(digest)),
            Self::Operator => "op".to_string(),
            Self::Anonymous => "anon".to_string(),
        }
    }
}

impl From<&Actor> for Principal {
    fn from(actor: &Actor) -> Self {
        Self::User(actor.user_id.clone())
    }
}

impl From<&CartOwner> for Principal {
    fn from(owner: &CartOwner) -> Self {
        match owner {
            CartOwner::User(id) => Self::User(id.clone()),
            CartOwner::Guest(digest) => Self::Guest(digest.clone()),
        }
    }
}

/// `raw` with every byte outside `[A-Za-z0-9._-]` as `%XX`.
fn escape(raw: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What a command carries when its request had an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyTag {
    /// The stored key ([`IdempotencyKey::scoped`]).
    pub key: IdempotencyKey,
    /// Digest of the request (principal, method, path, body) that first used the key.
    pub fingerprint: String,
}

impl IdempotencyTag {
    /// The tag of `principal`'s request with client key `key`: the scoped key
    /// and the request's fingerprint, a SHA-256 (hex) of the principal's
    /// scope, `method`, `path` and the canonical `body`, NUL-separated. The
    /// one fingerprint of the node: REST and gRPC both build tags here, gRPC
    /// with the method, path and body of the REST request it stands for.
    pub fn scoped(
        principal: &Principal,
        key: &IdempotencyKey,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Self {
        let scope = principal.scope();
        let mut digest = Sha256::new();
        for part in [scope.as_bytes(), method.as_bytes(), path.as_bytes()] {
            digest.update(part);
            digest.update([0]);
        }
        digest.update(body);
        Self {
            key: IdempotencyKey::scoped(principal, key),
            fingerprint: hex::encode(digest.finalize()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{apply_envelope, Envelope};
    use crate::inventory::{InventoryCommand, Location, Sku, WarehouseId};
    use crate::store::memory::MemoryStore;
    use crate::{Command, Role, SystemCommand};

    fn key(raw: &str) -> IdempotencyKey {
        IdempotencyKey::parse(raw).unwrap()
    }
    fn user(id: &str) -> Principal {
        Principal::User(id.into())
    }
    fn tag(principal: &Principal, raw: &str, body: &str) -> IdempotencyTag {
        IdempotencyTag::scoped(
            principal,
            &key(raw),
            "PATCH",
            "/api/v1/users/me",
            body.as_bytes(),
        )
    }

    #[test]
    fn client_keys_are_1_to_255_visible_ascii() {
        assert!(IdempotencyKey::parse("order-17").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "a b", "tab\t", "é", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stored_keys_name_the_principal_and_never_collide() {
        let k = key("order-17");
        assert_eq!(
            IdempotencyKey::scoped(&user("7f3a"), &k).as_str(),
            "u:7f3a order-17"
        );
        assert_eq!(
            IdempotencyKey::scoped(&Principal::Guest("ab12".into()), &k).as_str(),
            "g:ab12 order-17"
        );
        assert_eq!(
            IdempotencyKey::scoped(&Principal::Operator, &k).as_str(),
            "op order-17"
        );
        assert_eq!(
            IdempotencyKey::scoped(&Principal::Anonymous, &k).as_str(),
            "anon order-17"
        );
        // Ids that would blur the boundary are escaped: no two pairs meet.
        let pairs = [
            (user("a"), "b/c"),
            (user("a/b"), "c"),
            (user("a b"), "c"),
            (user("a"), "b%20c"),
            (user("a%20b"), "c"),
            (user("u:a"), "c"),
            (Principal::Guest("a".into()), "c"),
            (Principal::Operator, "c"),
            (user("op"), "c"),
        ];
        let stored: std::collections::BTreeSet<String> = pairs
            .iter()
            .map(|(p, k)| IdempotencyKey::scoped(p, &key(k)).as_str().to_string())
            .collect();
        assert_eq!(stored.len(), pairs.len(), "{stored:?}");
        // A stored key is never a client key: records made before keys were
        // scoped cannot answer a scoped request.
        for s in &stored {
            assert!(IdempotencyKey::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn stored_keys_may_be_longer_than_client_keys() {
        let long = IdempotencyKey::scoped(&user(&"x".repeat(64)), &key(&"k".repeat(255)));
        assert_eq!(long.as_str().len(), 2 + 64 + 1 + 255);
    }

    #[test]
    fn the_fingerprint_covers_principal_method_path_and_body() {
        let ann = user("ann");
        let base = tag(&ann, "k", "{}");
        assert_eq!(base, tag(&ann, "k", "{}"), "deterministic");
        assert_eq!(base.fingerprint.len(), 64);
        let others = [
            tag(&user("bob"), "k", "{}").fingerprint,
            tag(&ann, "k", "{ }").fingerprint,
            IdempotencyTag::scoped(&ann, &key("k"), "PUT", "/api/v1/users/me", b"{}").fingerprint,
            IdempotencyTag::scoped(&ann, &key("k"), "PATCH", "/api/v1/users/x", b"{}").fingerprint,
        ];
        for other in others {
            assert_ne!(base.fingerprint, other);
        }
        // The client key names the record, it is not part of the request.
        assert_eq!(base.fingerprint, tag(&ann, "k2", "{}").fingerprint);
    }

    #[test]
    fn principals_come_from_actors_and_cart_owners() {
        let actor = Actor {
            user_id: "ann".into(),
            role: Role::Customer,
        };
        assert_eq!(Principal::from(&actor), user("ann"));
        assert_eq!(Principal::from(&CartOwner::User("ann".into())), user("ann"));
        assert_eq!(
            Principal::from(&CartOwner::Guest("d1".into())),
            Principal::Guest("d1".into())
        );
    }

    fn ctx(i: u64) -> ApplyContext {
        ApplyContext {
            log_index: i,
            version: i,
            now_ms: 1_000 * i,
        }
    }

    fn inventory(command: InventoryCommand, tag: Option<IdempotencyTag>) -> Envelope {
        Envelope {
            now_ms: 0,
            idempotency: tag,
            command: Command::Inventory(command),
        }
    }

    fn restock(tag: IdempotencyTag) -> Envelope {
        let command = InventoryCommand::AdjustStock {
            sku: Sku::parse("A").unwrap(),
            warehouse_id: WarehouseId::parse("w1").unwrap(),
            delta: 3,
            reason: None,
        };
        inventory(command, Some(tag))
    }

    fn on_hand(outcome: &Outcome) -> u64 {
        match outcome {
            Ok(crate::Response::Stock(level)) => level.on_hand,
            other => panic!("not a stock level: {other:?}"),
        }
    }

    #[test]
    fn two_principals_with_one_key_get_two_outcomes() {
        let mut s = MemoryStore::default();
        let warehouse = InventoryCommand::UpsertWarehouse {
            id: WarehouseId::parse("w1").unwrap(),
            name: "w1".into(),
            location: Location::parse(1.0, 2.0).unwrap(),
            priority: 0,
        };
        apply_envelope(&inventory(warehouse, None), &ctx(1), &mut s).unwrap();
        let (ann, bob) = (user("ann"), user("bob"));

        let first = apply_envelope(&restock(tag(&ann, "k", "{}")), &ctx(2), &mut s).unwrap();
        assert!(!first.replayed);
        assert_eq!(on_hand(&first.outcome), 3);
        // Same key and body from someone else: applied, not a replay of ann's.
        let other = apply_envelope(&restock(tag(&bob, "k", "{}")), &ctx(3), &mut s).unwrap();
        assert!(!other.replayed);
        assert_eq!((on_hand(&other.outcome), other.log_index), (6, 3));
        // Each retry replays its own principal's outcome.
        let again = apply_envelope(&restock(tag(&ann, "k", "{}")), &ctx(4), &mut s).unwrap();
        assert!(again.replayed);
        assert_eq!((on_hand(&again.outcome), again.log_index), (3, 2));
        let again = apply_envelope(&restock(tag(&bob, "k", "{}")), &ctx(5), &mut s).unwrap();
        assert!(again.replayed);
        assert_eq!((on_hand(&again.outcome), again.log_index), (6, 3));
        // Another body under one's own key is still refused.
        let reused =
            apply_envelope(&restock(tag(&ann, "k", "{\"x\":1}")), &ctx(6), &mut s).unwrap();
        assert_eq!(reused.outcome, Err(DomainError::IdempotencyKeyReused));

        // Scoped (and long) keys expire like any other.
        let long = tag(&user(&"x".repeat(64)), &"k".repeat(255), "{}");
        apply_envelope(&restock(long.clone()), &ctx(7), &mut s).unwrap();
        let expire = Envelope {
            now_ms: 0,
            idempotency: None,
            command: Command::System(SystemCommand::ExpireIdempotency { ttl_ms: 0 }),
        };
        apply_envelope(&expire, &ctx(8), &mut s).unwrap();
        for t in [tag(&ann, "k", "{}"), tag(&bob, "k", "{}"), long] {
            assert!(matches!(check(&s, &t).unwrap(), Check::Fresh));
        }
    }
}
