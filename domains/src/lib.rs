//! `domains`: the pure heart of the product.
//!
//! Domain types, commands, events and the deterministic rules that apply a
//! command to the replicated state. No I/O, no tokio, no HTTP, no RocksDB: the
//! state is reached through the small [`store`] traits, and time, log index and
//! ids come in through [`ApplyContext`], so every replica that applies the same
//! log computes the same state.
//!
//! Architecture invariant: applying a command reads and writes only through
//! [`store::StoreMut`] and never consults a clock or a random source.

pub mod actor;
pub mod allocation;
pub mod cart;
pub mod catalog;
pub mod command;
pub mod error;
pub mod event;
pub mod idempotency;
pub mod inventory;
pub mod listing;
pub mod media;
pub mod money;
pub mod order;
pub mod pricing;
pub mod store;
pub mod users;

pub use actor::{Actor, Role};
pub use command::{ApplyContext, Command, Envelope, Outcome, Response, SystemCommand};
pub use error::DomainError;
pub use event::{Event, EventRecord};

/// Every domain table (one column family each), in a fixed order.
pub const TABLES: &[&str] = &[
    inventory::WAREHOUSES,
    inventory::STOCK,
    // users
    users::USERS,
    users::USERS_BY_EMAIL,
    users::SESSIONS,
    users::RESET_TOKENS,
    users::SIGNING_KEYS,
    inventory::THRESHOLDS,
    inventory::LOW_STOCK,
    listing::LISTINGS,
    catalog::PRODUCTS,
    catalog::PRODUCT_SLUGS,
    catalog::SKU_PRODUCTS,
    catalog::BY_CATEGORY,
    catalog::CATEGORIES,
    catalog::CATEGORY_SLUGS,
    pricing::PROMOTIONS,
    pricing::COUPONS,
    pricing::REDEMPTIONS,
    cart::CARTS,
    cart::CART_EXPIRY,
    order::ORDERS,
    order::BY_CUSTOMER,
    order::BY_VENDOR,
    order::BY_TIME,
    order::HOLD_EXPIRY,
    order::PAYMENT_TASKS,
    media::MEDIA,
    users::SOCIAL_PENDING,
    users::SOCIAL_LINKS,
    users::SOCIAL_LINKS_BY_USER,
    users::AUTH_EXPIRY,
];

/// Applies one command. Writes go to `store`; when the command is rejected
/// (`Ok(Err(..))`) the caller discards what it wrote. `Err` is a storage fault:
/// the replica must stop, since it could no longer apply the log faithfully.
pub fn apply(
    command: &Command,
    ctx: &ApplyContext,
    store: &mut dyn store::StoreMut,
) -> Result<Outcome, store::StoreFault> {
    match command {
        Command::Inventory(c) => inventory::apply(c, ctx, store),
        Command::Listing(c) => listing::apply(c, ctx, store),
        Command::Catalog(c) => catalog::apply(c, ctx, store),
        Command::Pricing(c) => pricing::apply(c, ctx, store),
        Command::Cart(c) => cart::apply(c, ctx, store),
        Command::Order(c) => order::apply(c, ctx, store),
        Command::System(c) => command::apply_system(c, ctx, store),
        Command::Users(c) => users::apply(c, ctx, store),
        Command::Media(c) => media::apply(c, ctx, store),
        // The state machine unbatches an entry once; a batch inside a batch
        // is refused rather than applied.
        Command::Batch(_) => Ok(Err(DomainError::Validation {
            field: "command".into(),
            message: "a batch may not contain a batch".into(),
        })),
    }
}
