//! The state as the domains see it: typed reads and writes over named tables
//! with composite keys. The Raft state machine implements these traits over
//! RocksDB; the unit tests implement them over a `BTreeMap`.
//!
//! Writes are staged and can be taken back to a [`Savepoint`]: that is how a
//! refused command leaves no trace (see [`crate::command::apply_command`]),
//! whatever it wrote before it found a reason to refuse.

use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};

/// One component of a composite key; the storage layer encodes keys with
/// [`ecommerce_codec::keys`], order-preservingly.
pub use ecommerce_codec::KeyPart;

/// A storage failure while applying or reading; not a domain error.
///
/// It says what failed and keeps the store's own error as its `source()`,
/// without this crate naming the store's error types.
#[derive(Debug, Clone)]
pub struct StoreFault {
    what: String,
    source: Arc<dyn std::error::Error + Send + Sync>,
}

impl StoreFault {
    /// `what` failed because of `source`.
    pub fn new(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            what: what.into(),
            source: Arc::new(source),
        }
    }
}

/// The cause is in the text too: most callers log only the `Display` text
/// (as `ecommerce_storage::Error` does for its sources).
impl std::fmt::Display for StoreFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage fault: {}: {}", self.what, self.source)
    }
}

impl std::error::Error for StoreFault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Read access to the state.
pub trait Store {
    fn get_raw(
        &self,
        table: &'static str,
        key: &[KeyPart<'_>],
    ) -> Result<Option<Vec<u8>>, StoreFault>;

    /// Values whose keys start with `prefix`, in key order, starting after
    /// `after` (a full key) when given, at most `limit`.
    fn scan_raw(
        &self,
        table: &'static str,
        prefix: &[KeyPart<'_>],
        after: Option<&[KeyPart<'_>]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreFault>;
}

/// A point in a store's staged writes and events, to roll back to.
///
/// Implementations count what was staged: `writes` is the length of their
/// undo log, `events` the number of events emitted, when the mark was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Savepoint {
    pub writes: usize,
    pub events: usize,
}

/// Write access, used only by command application.
pub trait StoreMut: Store {
    fn put_raw(&mut self, table: &'static str, key: &[KeyPart<'_>], value: Vec<u8>);
    fn delete_raw(&mut self, table: &'static str, key: &[KeyPart<'_>]);
    /// Appends a domain event to the event log, in apply order.
    fn emit(&mut self, event: crate::Event);
    /// Removes events from the oldest on while they are stamped before
    /// `before_ms` or more than `keep` events are left, at most `max`;
    /// returns how many it removed. Deterministic: it sees the log as every
    /// replica has it at this point of the log (events staged by earlier
    /// commands of the same apply run included).
    fn compact_events(&mut self, before_ms: u64, keep: u64, max: u64) -> Result<u64, StoreFault>;
    /// Marks the writes and events staged so far.
    fn savepoint(&mut self) -> Savepoint;
    /// Takes back every write and event staged since `savepoint`: reads see
    /// again what they saw when it was taken. Savepoints nest; rolling back
    /// to one forgets the ones taken after it.
    fn rollback_to(&mut self, savepoint: Savepoint);
}

/// Encodes a value as every stored value is ([`ecommerce_codec::encode`]).
pub fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, StoreFault> {
    ecommerce_codec::encode(value).map_err(|e| StoreFault::new("encoding a value", e))
}

/// Decodes a stored value ([`ecommerce_codec::decode`], bounded by the
/// input's length).
pub fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, StoreFault> {
    ecommerce_codec::decode(bytes).map_err(|e| StoreFault::new("decoding a stored value", e))
}

/// Typed helpers over [`Store`].
pub trait StoreExt: Store {
    fn get<V: DeserializeOwned>(
        &self,
        table: &'static str,
        key: &[KeyPart<'_>],
    ) -> Result<Option<V>, StoreFault> {
        self.get_raw(table, key)?.map(|b| decode(&b)).transpose()
    }

    fn scan<V: DeserializeOwned>(
        &self,
        table: &'static str,
        prefix: &[KeyPart<'_>],
        after: Option<&[KeyPart<'_>]>,
        limit: usize,
    ) -> Result<Vec<V>, StoreFault> {
        self.scan_raw(table, prefix, after, limit)?
            .iter()
            .map(|b| decode(b))
            .collect()
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// Typed writes over [`StoreMut`].
pub fn put<V: Serialize>(
    store: &mut dyn StoreMut,
    table: &'static str,
    key: &[KeyPart<'_>],
    value: &V,
) -> Result<(), StoreFault> {
    store.put_raw(table, key, encode(value)?);
    Ok(())
}

#[cfg(any(test, feature = "test-support"))]
pub mod memory {
    //! An in-memory store for tests (this crate's, and its integration tests
    //! through the `test-support` feature).
    use super::*;
    use std::collections::BTreeMap;

    type Key = Vec<Owned>;

    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Owned {
        U64(u64),
        Str(String),
    }

    fn own(key: &[KeyPart<'_>]) -> Key {
        key.iter()
            .map(|p| match p {
                KeyPart::U64(n) => Owned::U64(*n),
                KeyPart::Str(s) => Owned::Str(s.to_string()),
            })
            .collect()
    }

    #[derive(Default, Debug, Clone)]
    pub struct MemoryStore {
        pub tables: BTreeMap<&'static str, BTreeMap<Key, Vec<u8>>>,
        pub events: Vec<crate::Event>,
        /// Each write's table, key and the value it replaced, for rollbacks.
        undo: Vec<(&'static str, Key, Option<Vec<u8>>)>,
        /// Every `put`, in order: table and value (rollbacks do not remove them).
        pub writes: Vec<(&'static str, Vec<u8>)>,
    }

    impl MemoryStore {
        /// Applies `envelope` exactly as the state machine does
        /// ([`crate::command::apply_envelope`]: idempotency, then the command
        /// under a savepoint).
        pub fn apply_envelope(
            &mut self,
            envelope: &crate::Envelope,
            ctx: &crate::ApplyContext,
        ) -> Result<crate::command::Applied, StoreFault> {
            crate::command::apply_envelope(envelope, ctx, self)
        }

        /// Applies one command as the state machine would, alone in an
        /// envelope without an idempotency key.
        pub fn apply(
            &mut self,
            command: impl Into<crate::Command>,
            ctx: &crate::ApplyContext,
        ) -> Result<crate::Outcome, StoreFault> {
            let envelope = crate::Envelope {
                now_ms: ctx.now_ms,
                idempotency: None,
                command: command.into(),
            };
            Ok(self.apply_envelope(&envelope, ctx)?.outcome)
        }

        fn write(&mut self, table: &'static str, key: Key, value: Option<Vec<u8>>) {
            let rows = self.tables.entry(table).or_default();
            let previous = match value {
                Some(v) => rows.insert(key.clone(), v),
                None => rows.remove(&key),
            };
            self.undo.push((table, key, previous));
        }
    }

    /// What the domain tests call for a command: the production path
    /// ([`MemoryStore::apply`]), in the shape of the domains' own `apply`.
    pub fn apply<C: Clone + Into<crate::Command>>(
        command: &C,
        ctx: &crate::ApplyContext,
        store: &mut MemoryStore,
    ) -> Result<crate::Outcome, StoreFault> {
        store.apply(command.clone(), ctx)
    }

    impl Store for MemoryStore {
        fn get_raw(
            &self,
            table: &'static str,
            key: &[KeyPart<'_>],
        ) -> Result<Option<Vec<u8>>, StoreFault> {
            Ok(self
                .tables
                .get(table)
                .and_then(|t| t.get(&own(key)).cloned()))
        }

        fn scan_raw(
            &self,
            table: &'static str,
            prefix: &[KeyPart<'_>],
            after: Option<&[KeyPart<'_>]>,
            limit: usize,
        ) -> Result<Vec<Vec<u8>>, StoreFault> {
            let prefix = own(prefix);
            let after = after.map(own);
            Ok(self
                .tables
                .get(table)
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.starts_with(&prefix) && after.as_ref().is_none_or(|a| *k > a))
                .take(limit)
                .map(|(_, v)| v.clone())
                .collect())
        }
    }

    impl StoreMut for MemoryStore {
        fn put_raw(&mut self, table: &'static str, key: &[KeyPart<'_>], value: Vec<u8>) {
            self.writes.push((table, value.clone()));
            self.write(table, own(key), Some(value));
        }
        fn delete_raw(&mut self, table: &'static str, key: &[KeyPart<'_>]) {
            self.write(table, own(key), None);
        }
        fn emit(&mut self, event: crate::Event) {
            self.events.push(event);
        }

        /// The in-memory store keeps the events emitted, without ids or
        /// times: only the state machine's log (`raft/src/store_adapter.rs`)
        /// has anything to compact.
        fn compact_events(&mut self, _: u64, _: u64, _: u64) -> Result<u64, StoreFault> {
            Ok(0)
        }
        fn savepoint(&mut self) -> Savepoint {
            Savepoint {
                writes: self.undo.len(),
                events: self.events.len(),
            }
        }
        fn rollback_to(&mut self, savepoint: Savepoint) {
            while self.undo.len() > savepoint.writes {
                let Some((table, key, previous)) = self.undo.pop() else {
                    break;
                };
                let rows = self.tables.entry(table).or_default();
                match previous {
                    Some(v) => rows.insert(key, v),
                    None => rows.remove(&key),
                };
            }
            self.events.truncate(savepoint.events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StoreFault;

    #[test]
    fn a_fault_keeps_its_cause() {
        let fault = StoreFault::new("reading products", std::io::Error::other("disk gone"));
        assert_eq!(
            fault.to_string(),
            "storage fault: reading products: disk gone"
        );
        let source = std::error::Error::source(&fault).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("disk gone"));
    }
}
