//! The replicated command envelope, its outcome, and system commands.

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
use crate::DomainError;

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
/// existing entries decode as another command.
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
    /// sent by a client, never nested.
    Batch(Vec<Envelope>),
}

impl Envelope {
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
}

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

/// Applies an envelope: idempotency first, then the command.
pub fn apply_envelope(
    envelope: &Envelope,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Applied, StoreFault> {
    let Some(tag) = &envelope.idempotency else {
        let outcome = crate::apply(&envelope.command, ctx, store)?;
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
            let outcome = crate::apply(&envelope.command, ctx, store)?;
            idempotency::record(store, tag, ctx, &outcome)?;
            Ok(Applied {
                outcome,
                replayed: false,
                log_index: ctx.log_index,
            })
        }
    }
}

pub(crate) fn apply_system(
    command: &SystemCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Outcome, StoreFault> {
    match command {
        SystemCommand::ExpireIdempotency { ttl_ms } => {
            let removed = idempotency::expire(store, ctx.now_ms, *ttl_ms)?;
            Ok(Ok(Response::Expired { removed }))
        }
    }
}
