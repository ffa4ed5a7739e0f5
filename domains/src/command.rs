//! The replicated command envelope, its outcome, and system commands.
//!
//! Also the one way a command is applied ([`apply_envelope`]): idempotency
//! first, then the command under a savepoint, so that a refusal takes back
//! whatever the command wrote. The state machine and the domain tests both go
//! through it.
//!
//! Decoding an envelope refuses a batch inside a batch (so a crafted payload
//! cannot nest batches deep enough to overflow the stack), and
//! [`Envelope::decode_checked`] also refuses what only the leader may build
//! and anything over [`MAX_ENVELOPE_BYTES`].

use serde::{Deserialize, Serialize};

use crate::cart::{Cart, CartCommand};
use crate::catalog::{CatalogCommand, Category, Product};
use crate::idempotency::{self, IdempotencyTag};
use crate::inventory::{InventoryCommand, StockLevel, Threshold, Warehouse};
use crate::listing::{Listing, ListingCommand};
use crate::media::{MediaCommand, MediaRecord};
use crate::order::{Order, OrderCommand};
use crate::pricing::{Coupon, PricingCommand, Promotion};
use crate::store::{StoreFault, StoreMut};
use crate::{ApplyError, DomainError};

/// What a client request becomes before it is proposed: one log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The leader's wall clock in milliseconds, stamped when it proposes the
    /// command (whatever the sender put here is replaced). The state machine never reads
    /// a clock of its own; it uses this value (made monotonic, see
    /// [`ApplyContext::now_ms`]).
    pub now_ms: u64,
    pub idempotency: Option<IdempotencyTag>,
    pub command: Command,
}

/// Every command the state machine understands. Variants are only ever
/// appended: the log stores their index (bincode), so inserting one would make
/// existing entries decode as another command (pinned by the golden test
/// `domains/tests/persisted_format.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Inventory(InventoryCommand),
    Listing(ListingCommand),
    Cart(CartCommand),
    Order(OrderCommand),
    System(SystemCommand),
    Users(Box<crate::users::UserCommand>),
    Media(MediaCommand),
    Catalog(CatalogCommand),
    Pricing(PricingCommand),
    /// Envelopes the leader packed into one log entry, applied in order as
    /// if each were an entry of its own (see [`Envelope::unbatch`]). Never
    /// sent by a client, never nested: decoding refuses a batch inside one.
    Batch(#[serde(deserialize_with = "not_nested::deserialize")] Vec<Envelope>),
}

impl Command {
    /// Checks the command's own fields, as the API does before proposing it:
    /// `apply` runs this first, so no rule depends on the sender having
    /// checked. Rules that need the state stay in each command's `apply`.
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            Command::Inventory(c) => c.validate(),
            Command::Listing(c) => c.validate(),
            Command::Cart(c) => c.validate(),
            Command::Order(c) => c.validate(),
            Command::System(SystemCommand::ExpireIdempotency { .. }) => Ok(()),
            Command::System(SystemCommand::CompactEvents { max_removed, .. }) => {
                if (1..=MAX_COMPACTED_PER_COMMAND).contains(max_removed) {
                    Ok(())
                } else {
                    Err(DomainError::validation(
                        "max_removed",
                        format!("1 to {MAX_COMPACTED_PER_COMMAND} events per compaction"),
                    ))
                }
            }
            Command::Users(c) => c.validate(),
            Command::Media(c) => c.validate(),
            Command::Catalog(c) => c.validate(),
            Command::Pricing(c) => c.validate(),
            // The state machine unbatches an entry once; a batch inside a
            // batch is refused rather than applied.
            Command::Batch(_) => Err(DomainError::validation(
                "command",
                "a batch may not contain a batch",
            )),
        }
    }
}

macro_rules! into_command {
    ($($variant:ident($command:ty)),* $(,)?) => {
        $(impl From<$command> for Command {
            fn from(command: $command) -> Self {
                Command::$variant(command)
            }
        })*
    };
}

impl From<crate::users::UserCommand> for Command {
    fn from(command: crate::users::UserCommand) -> Self {
        Command::Users(Box::new(command))
    }
}

into_command!(
    Inventory(InventoryCommand),
    Listing(ListingCommand),
    Cart(CartCommand),
    Order(OrderCommand),
    System(SystemCommand),
    Media(MediaCommand),
    Catalog(CatalogCommand),
    Pricing(PricingCommand),
);

/// The largest command envelope a node proposes or accepts from a peer
/// (encoded size). Far above what an HTTP body (1 MiB by default,
/// `http.max_body_bytes`) turns into, and well under a gRPC message between
/// nodes (64 MiB), so a batch of a few of them still fits in one.
pub const MAX_ENVELOPE_BYTES: usize = 16 << 20;

/// Why [`Envelope::decode_checked`] refused a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the envelope is {0} bytes, more than the {MAX_ENVELOPE_BYTES} allowed")]
    TooLarge(usize),
    #[error("a batch is built by the leader only")]
    Batch,
    #[error("undecodable envelope: {0}")]
    Malformed(String),
}

mod not_nested {
    //! Decodes a batch's envelopes, refusing a batch inside them.
    //!
    //! bincode has no depth limit and `Command::Batch` is recursive: without
    //! this, a payload of nested batches a few bytes per level deep would
    //! overflow the stack of whoever decodes it (a log entry, a forwarded
    //! envelope). A flag per thread says "inside a batch"; decoding is
    //! synchronous, so it cannot leak into another decode.

    use std::cell::Cell;

    use serde::{de::Error, Deserialize, Deserializer};

    use super::Envelope;

    thread_local! {
        static INSIDE_BATCH: Cell<bool> = const { Cell::new(false) };
    }

    /// Clears the flag however decoding ends (error or panic included).
    struct Leave;

    impl Drop for Leave {
        fn drop(&mut self) {
            INSIDE_BATCH.set(false);
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Envelope>, D::Error> {
        if INSIDE_BATCH.get() {
            return Err(D::Error::custom("a batch may not contain a batch"));
        }
        INSIDE_BATCH.set(true);
        let _leave = Leave;
        Vec::<Envelope>::deserialize(deserializer)
    }
}

impl Envelope {
    /// Decodes an envelope that another node sent (a forwarded write): at most
    /// [`MAX_ENVELOPE_BYTES`], no batch (only the leader builds one, from
    /// envelopes it received), with bincode's allocations bounded by the
    /// input's size. Never panics, whatever the bytes.
    pub fn decode_checked(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        // A valid encoding claims at most 16 bytes per encoded byte (see
        // `ecommerce_codec::CLAIM_PER_BYTE`); the limit bounds what a length prefix
        // can make bincode allocate.
        let config = bincode::config::standard().with_limit::<{ 16 * MAX_ENVELOPE_BYTES }>();
        let (envelope, _): (Envelope, usize) = bincode::serde::decode_from_slice(bytes, config)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if matches!(envelope.command, Command::Batch(_)) {
            return Err(DecodeError::Batch);
        }
        Ok(envelope)
    }

    /// The envelopes this log entry carries, in the order they apply: the
    /// ones a leader batched together, or the envelope itself.
    pub fn unbatch(&self) -> &[Envelope] {
        match &self.command {
            Command::Batch(envelopes) => envelopes,
            _ => std::slice::from_ref(self),
        }
    }
}

/// Housekeeping commands proposed by the leader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SystemCommand {
    /// Drop idempotency records older than `ttl_ms` at the command's time.
    ExpireIdempotency { ttl_ms: u64 },
    /// Compact the event log from its oldest event on: events older than
    /// `retention_ms` at the command's time, and those beyond the newest
    /// `keep_events`; at most `max_removed` of them (the rest wait for the
    /// next compaction, so one entry's apply stays short).
    CompactEvents {
        retention_ms: u64,
        keep_events: u64,
        max_removed: u64,
    },
}

/// The most events one [`SystemCommand::CompactEvents`] may remove.
pub const MAX_COMPACTED_PER_COMMAND: u64 = 100_000;

/// Deterministic inputs of one apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyContext {
    /// Index of the log entry being applied.
    pub log_index: u64,
    /// This command's number, unique and increasing along the log: the
    /// version of what it writes, and the id of what it creates. It is the
    /// log index for a command alone in its entry; commands a leader batched
    /// into one entry get consecutive numbers, and later entries continue
    /// above them.
    pub version: u64,
    /// Log-ordered time: the maximum of every leader clock applied so far,
    /// so it never goes backwards even if a leader's clock does.
    pub now_ms: u64,
}

/// A command's successful result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Warehouse(Warehouse),
    Stock(StockLevel),
    Threshold(Threshold),
    Listing(Listing),
    Cart(Cart),
    Order(Box<Order>),
    Expired {
        removed: u64,
    },
    Users(Box<crate::users::UsersResponse>),
    /// A registered image; `created` is false when the hash was already known.
    Media {
        record: MediaRecord,
        created: bool,
    },
    Product(Box<Product>),
    Category(Category),
    Promotion(Promotion),
    Coupon(Coupon),
    /// Per-product results of a bulk import.
    Imported(Vec<crate::catalog::ImportItem>),
}

/// The result of applying a command: the value, or the domain's refusal.
pub type Outcome = Result<Response, DomainError>;

/// What the state machine returns for one applied entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub outcome: Outcome,
    /// True when the outcome is a stored one replayed for a repeated idempotency key.
    pub replayed: bool,
    pub log_index: u64,
}

/// Applies an envelope: idempotency first, then the command
/// ([`apply_command`]), then the idempotency record of its outcome, refusals
/// included (a retry gets the same answer). This is how every replica applies
/// every envelope; the domain tests apply commands through it too.
pub fn apply_envelope(
    envelope: &Envelope,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Applied, StoreFault> {
    let Some(tag) = &envelope.idempotency else {
        let outcome = apply_command(&envelope.command, ctx, store)?;
        return Ok(Applied {
            outcome,
            replayed: false,
            log_index: ctx.log_index,
        });
    };
    match idempotency::check(store, tag)? {
        idempotency::Check::Replay(record) => Ok(Applied {
            outcome: record.outcome,
            replayed: true,
            log_index: record.log_index,
        }),
        idempotency::Check::Conflict => Ok(Applied {
            outcome: Err(DomainError::IdempotencyKeyReused),
            replayed: false,
            log_index: ctx.log_index,
        }),
        idempotency::Check::Fresh => {
            let outcome = apply_command(&envelope.command, ctx, store)?;
            idempotency::record(store, tag, ctx, &outcome)?;
            Ok(Applied {
                outcome,
                replayed: false,
                log_index: ctx.log_index,
            })
        }
    }
}

/// Applies one command under a savepoint: when it is refused, every write and
/// event it staged is taken back, so a refused command leaves no trace however
/// far it got. (A storage fault needs no rollback: the state machine discards
/// the whole run and stops.) This is the one place an [`ApplyError`] becomes
/// an [`Outcome`] or a [`StoreFault`].
pub fn apply_command(
    command: &Command,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Outcome, StoreFault> {
    let mark = store.savepoint();
    match crate::apply(command, ctx, store) {
        Ok(response) => Ok(Ok(response)),
        Err(ApplyError::Refused(refusal)) => {
            store.rollback_to(mark);
            Ok(Err(refusal))
        }
        Err(ApplyError::Fault(fault)) => Err(fault),
    }
}

pub(crate) fn apply_system(
    command: &SystemCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Response, ApplyError> {
    match command {
        SystemCommand::ExpireIdempotency { ttl_ms } => {
            let removed = idempotency::expire(store, ctx.now_ms, *ttl_ms)?;
            Ok(Response::Expired { removed })
        }
        SystemCommand::CompactEvents {
            retention_ms,
            keep_events,
            max_removed,
        } => {
            let before_ms = ctx.now_ms.saturating_sub(*retention_ms);
            let removed = store.compact_events(before_ms, *keep_events, *max_removed)?;
            Ok(Response::Expired { removed })
        }
    }
}

#[cfg(test)]
mod tests;
