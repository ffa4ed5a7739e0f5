//! What `apply` itself writes, for the stored types this test cannot build:
//! the index entries private to the domains crate (idle carts, hold expiry,
//! auth expiry, idempotency expiry). A short run of commands through
//! `command::apply_envelope`, the state machine's own path, over a store that
//! records every write in order.
//!
//! The bytes captured here depend on what the commands compute (an expiry
//! time, an order id) as well as on the format: when one of them changes,
//! check which of the two moved.

use std::collections::BTreeMap;

use ecommerce_domains::allocation::Strategy;
use ecommerce_domains::cart::{CartCommand, CartOwner, LineMode};
use ecommerce_domains::command::apply_envelope;
use ecommerce_domains::inventory::InventoryCommand;
use ecommerce_domains::listing::ListingCommand;
use ecommerce_domains::order::OrderCommand;
use ecommerce_domains::store::{KeyPart, Savepoint, Store, StoreFault, StoreMut};
use ecommerce_domains::users::UserCommand;
use ecommerce_domains::{ApplyContext, Command, Envelope, Event, SystemCommand};

use super::fixtures::*;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    U64(u64),
    Str(String),
}

type Key = Vec<Part>;

fn own(key: &[KeyPart<'_>]) -> Key {
    key.iter()
        .map(|p| match p {
            KeyPart::U64(n) => Part::U64(*n),
            KeyPart::Str(s) => Part::Str(s.to_string()),
        })
        .collect()
}

/// An in-memory store that keeps, besides the state, every value written.
#[derive(Default)]
pub struct Recorder {
    tables: BTreeMap<&'static str, BTreeMap<Key, Vec<u8>>>,
    undo: Vec<(&'static str, Key, Option<Vec<u8>>)>,
    events: Vec<Event>,
    /// Every `put`, in order: table and value.
    pub writes: Vec<(&'static str, Vec<u8>)>,
}

impl Recorder {
    fn write(&mut self, table: &'static str, key: Key, value: Option<Vec<u8>>) {
        let rows = self.tables.entry(table).or_default();
        let previous = match value {
            Some(v) => rows.insert(key.clone(), v),
            None => rows.remove(&key),
        };
        self.undo.push((table, key, previous));
    }
}

impl Store for Recorder {
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

impl StoreMut for Recorder {
    fn put_raw(&mut self, table: &'static str, key: &[KeyPart<'_>], value: Vec<u8>) {
        self.writes.push((table, value.clone()));
        self.write(table, own(key), Some(value));
    }
    fn delete_raw(&mut self, table: &'static str, key: &[KeyPart<'_>]) {
        self.write(table, own(key), None);
    }
    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }
    fn savepoint(&mut self) -> Savepoint {
        Savepoint {
            writes: self.undo.len(),
            events: self.events.len(),
        }
    }
    fn rollback_to(&mut self, savepoint: Savepoint) {
        while self.undo.len() > savepoint.writes {
            let (table, key, previous) = self.undo.pop().unwrap();
            let rows = self.tables.entry(table).or_default();
            match previous {
                Some(v) => rows.insert(key, v),
                None => rows.remove(&key),
            };
        }
        self.events.truncate(savepoint.events);
    }
}

/// Stocks a SKU, checks a cart of it out, begins a social sign-in, and
/// applies one command with an idempotency key: together these write to
/// every private index. Panics if the domain refuses any of them.
pub fn run() -> Recorder {
    let mut store = Recorder::default();
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
