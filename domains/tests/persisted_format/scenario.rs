//! What `apply` itself writes, for the stored types this test cannot build:
//! the index entries private to the domains crate (idle carts, hold expiry,
//! auth expiry, idempotency expiry). A short run of commands through
//! `command::apply_envelope`, the state machine's own path, over the crate's in-memory
//! store, which records every write in order.
//!
//! The bytes captured here depend on what the commands compute (an expiry
//! time, an order id) as well as on the format: when one of them changes,
//! check which of the two moved.

use ecommerce_domains::allocation::Strategy;
use ecommerce_domains::cart::{CartCommand, CartOwner, LineMode};
use ecommerce_domains::command::apply_envelope;
use ecommerce_domains::inventory::InventoryCommand;
use ecommerce_domains::listing::ListingCommand;
use ecommerce_domains::order::OrderCommand;
use ecommerce_domains::store::memory::MemoryStore;
use ecommerce_domains::users::UserCommand;
use ecommerce_domains::{ApplyContext, Command, Envelope, SystemCommand};

use super::fixtures::*;

/// Stocks a SKU, checks a cart of it out, begins a social sign-in, and
/// applies one command with an idempotency key: together these write to
/// every private index. Panics if the domain refuses any of them.
pub fn run() -> MemoryStore {
    let mut store = MemoryStore::default();
    let commands: Vec<(Command, bool)> = vec![
        (
            Command::Listing(ListingCommand::Upsert {
                actor: admin(),
                sku: sku(),
                name: "T-shirt (M)".into(),
                price: eur(1990),
                vendor_id: None,
                active: true,
            }),
            false,
        ),
        (
            Command::Inventory(InventoryCommand::UpsertWarehouse {
                id: warehouse_id(),
                name: "Paris 1".into(),
                location: location(),
                priority: 0,
            }),
            false,
        ),
        (
            Command::Inventory(InventoryCommand::SetStock {
                sku: sku(),
                warehouse_id: warehouse_id(),
                on_hand: 10,
                expected_version: None,
            }),
            false,
        ),
        (
            Command::Cart(CartCommand::SetLine {
                owner: CartOwner::User(customer().user_id),
                sku: sku(),
                quantity: 2,
                mode: LineMode::Add,
            }),
            false,
        ),
        (
            Command::Order(OrderCommand::Checkout {
                actor: customer(),
                cart: CartOwner::User(customer().user_id),
                shipping_address: shipping_address(),
                strategy: Strategy::Priority,
                hold_ttl_ms: 900_000,
                payment_method: payment_method(),
                coupon: None,
            }),
            false,
        ),
        (
            Command::Users(Box::new(UserCommand::BeginSocialLogin {
                state_hash: digest('5'),
                pending: pending_social(),
                ttl_ms: 600_000,
            })),
            false,
        ),
        (
            Command::System(SystemCommand::ExpireIdempotency { ttl_ms: 86_400_000 }),
            true,
        ),
    ];
    for (n, (command, with_key)) in commands.into_iter().enumerate() {
        let index = n as u64 + 1;
        let ctx = ApplyContext {
            log_index: index,
            version: index,
            now_ms: NOW,
        };
        let envelope = Envelope {
            now_ms: NOW,
            idempotency: with_key.then(tag),
            command,
        };
        let applied = apply_envelope(&envelope, &ctx, &mut store).unwrap();
        if let Err(e) = applied.outcome {
            panic!("the scenario's {:?} was refused: {e}", envelope.command);
        }
    }
    store
}
