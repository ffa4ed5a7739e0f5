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
//!
//! Architecture invariant: nothing a command carries can make `apply` panic.
//! Every command is validated again in `apply` ([`Command::validate`]), and
//! outside tests this crate denies `unwrap`, `expect`, `panic!`, indexing and
//! unchecked arithmetic (the lints below): a panic in `apply` would repeat
//! on every replica, for every replay of the entry.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod actor;
pub mod allocation;
pub mod cart;
pub mod catalog;
pub mod check;
pub mod command;
pub mod error;
pub mod event;
#[cfg(test)]
mod fuzz;
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
pub use error::{ApplyError, DomainError};
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
    media::MEDIA_USAGE,
];

/// Tables read only by exact key whose keys are personal data (e-mail
/// addresses, a provider's subject): the storage stores a keyed hash of each
/// key instead (a blind index), and refuses range reads of them.
pub const BLIND_TABLES: &[&str] = &[users::USERS_BY_EMAIL, users::SOCIAL_LINKS];

/// Applies one command. Writes go to `store`; when the command is refused
/// ([`ApplyError::Refused`]) the caller takes back what it wrote (see
/// [`command::apply_command`], which every replica goes through).
/// [`ApplyError::Fault`] is a storage fault: the replica must stop, since it
/// could no longer apply the log faithfully. The command's fields are checked
/// first ([`Command::validate`]), whoever built it.
pub fn apply(
    command: &Command,
    ctx: &ApplyContext,
    store: &mut dyn store::StoreMut,
) -> Result<Response, ApplyError> {
    command.validate()?;
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
        // Refused by `validate` above.
        Command::Batch(_) => {
            Err(DomainError::validation("command", "a batch may not contain a batch").into())
        }
    }
}
