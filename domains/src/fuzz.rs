//! Fuzzing of what a replica decodes and applies (tests only). Over 600 lines: one
//! seed per kind of command, kept beside the shop they run against.
//!
//! Two properties, checked with proptest:
//! - arbitrary bytes through the envelope decoders (the log's, bincode's
//!   standard configuration, and [`Envelope::decode_checked`] for forwarded
//!   writes) never panic and never overflow the stack;
//! - arbitrary decoded envelopes, applied the way the state machine applies
//!   them ([`MemoryStore::apply_envelope`] per unbatched envelope) to a store
//!   holding a little of everything, never panic, and a refused command
//!   leaves no trace but its idempotency record.
//!
//! Random bytes rarely decode to a command that gets far in `apply`, so the
//! second property mutates valid encodings (a seed of every kind of command,
//! bytes flipped, inserted, removed, truncated) and the first also throws in
//! plain random bytes.
//!
//! Cases per property: `ECOMMERCE_FUZZ_CASES` (default 256, a second or two).
//! A long run, with what it found: docs/security.md, "Fuzzing". Figures of a
//! run print with `--nocapture`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::allocation::Strategy as Allocation;
use crate::cart::{CartCommand, CartOwner, LineMode};
use crate::catalog::{CatalogCommand, CatalogId, ProductDraft, Variant};
use crate::command::{apply_envelope, Applied};
use crate::idempotency::{self, IdempotencyKey, IdempotencyTag};
use crate::inventory::{InventoryCommand, Location, Sku, WarehouseId};
use crate::listing::ListingCommand;
use crate::media::{ContentHash, ImageType, MediaCommand};
use crate::money::Money;
use crate::order::{Address, OrderCommand, PaymentMethod, PaymentOp, PaymentResult};
use crate::pricing::{Coupon, CouponKind, PricingCommand, Promotion, PromotionKind, Target};
use crate::store::memory::{MemoryStore, Owned};
use crate::users::{Email, PendingSocialLogin, Secret, SocialIdentity, UserCommand};
use crate::{Actor, ApplyContext, Command, Envelope, Role, SystemCommand};

fn cases() -> u32 {
    std::env::var("ECOMMERCE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> Config {
    Config {
        cases: cases(),
        // Failures are reported (and shrunk) in the run that finds them.
        failure_persistence: None,
        ..Config::default()
    }
}

/// The log's decoder as `ecommerce_storage::codec::decode` runs it on an
/// input under 4 KiB (every input here): bincode's standard configuration
/// with its smallest claim limit. (Without a limit, the first hundred cases
/// already found a length prefix that made bincode abort the process on an
/// allocation of exabytes; the codec has had the limit since.)
fn decode(bytes: &[u8]) -> Option<Envelope> {
    assert!(bytes.len() <= 4 << 10);
    let config = bincode::config::standard().with_limit::<{ 64 << 10 }>();
    bincode::serde::decode_from_slice(bytes, config)
        .ok()
        .map(|(e, _)| e)
}

fn encode(envelope: &Envelope) -> Vec<u8> {
    bincode::serde::encode_to_vec(envelope, bincode::config::standard()).unwrap()
}

fn admin() -> Actor {
    Actor {
        user_id: "root".into(),
        role: Role::Admin,
    }
}

fn customer() -> Actor {
    Actor {
        user_id: "u1".into(),
        role: Role::Customer,
    }
}

fn eur(amount: i64) -> Money {
    Money::parse("m", amount, "EUR").unwrap()
}

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn id(s: &str) -> CatalogId {
    CatalogId::parse("id", s).unwrap()
}

fn wh(s: &str) -> WarehouseId {
    WarehouseId::parse(s).unwrap()
}

/// Valid commands of every kind, in an order that builds a small shop when
/// applied one after the other (the first checkout's order id is its
/// version, which the later order commands use).
fn seeds() -> Vec<Command> {
    let user = CartOwner::User("u1".into());
    let guest = CartOwner::Guest("g".repeat(64));
    let hash = ContentHash::parse(&"ab".repeat(32)).unwrap();
    let mut c: Vec<Command> = vec![
        InventoryCommand::UpsertWarehouse {
            id: wh("w1"),
            name: "Paris".into(),
            location: Location::parse(48.8, 2.3).unwrap(),
            priority: 0,
        }
        .into(),
        ListingCommand::Upsert {
            actor: admin(),
            sku: sku("A"),
            name: "item A".into(),
            price: eur(1000),
            vendor_id: Some("v1".into()),
            active: true,
        }
        .into(),
        InventoryCommand::SetStock {
            sku: sku("A"),
            warehouse_id: wh("w1"),
            on_hand: 50,
            expected_version: None,
        }
        .into(),
        InventoryCommand::AdjustStock {
            sku: sku("A"),
            warehouse_id: wh("w1"),
            delta: -5,
            reason: Some("count".into()),
        }
        .into(),
        InventoryCommand::SetThreshold {
            sku: sku("A"),
            warehouse_id: Some(wh("w1")),
            threshold: Some(3),
        }
        .into(),
        CatalogCommand::UpsertCategory {
            id: id("men"),
            parent_id: None,
            slug: "men".into(),
            name: "Men".into(),
            position: 1,
        }
        .into(),
        CatalogCommand::UpsertProduct {
            actor: admin(),
            draft: ProductDraft {
                id: id("p1"),
                slug: "p1".into(),
                name: "Shirt".into(),
                description: "cotton".into(),
                category_id: Some(id("men")),
                attributes: BTreeMap::from([("fit".into(), "slim".into())]),
                images: Vec::new(),
                vendor_id: Some("v1".into()),
                active: true,
                variants: vec![Variant {
                    sku: sku("B"),
                    attributes: BTreeMap::from([("size".into(), "M".into())]),
                    price: eur(2000),
                    weight_grams: 200,
                }],
            },
        }
        .into(),
        PricingCommand::UpsertPromotion {
            actor: admin(),
            promotion: Promotion {
                id: id("sale"),
                name: "Sale".into(),
                kind: PromotionKind::Percent { basis_points: 1000 },
                target: Target::All,
                starts_ms: None,
                ends_ms: None,
                stackable: false,
                active: true,
                version: 0,
            },
        }
        .into(),
        PricingCommand::UpsertCoupon {
            coupon: Coupon {
                code: "WELCOME".into(),
                kind: CouponKind::AmountOff { amount: eur(300) },
                min_subtotal: None,
                usage_limit: Some(10),
                per_customer_limit: Some(2),
                used: 0,
                starts_ms: None,
                ends_ms: None,
                active: true,
                version: 0,
            },
        }
        .into(),
        UserCommand::Register {
            user_id: "u1".into(),
            email: Email::parse("ada@example.com").unwrap(),
            name: "Ada".into(),
            role: Role::Customer,
            password_hash: Some(Secret("$argon2id$v=19$x".into())),
            email_verified: false,
        }
        .into(),
        UserCommand::StartSession {
            user_id: "u1".into(),
            family_id: "f1".into(),
            token_hash: "t1".into(),
            ttl_ms: 60_000,
            expected_security_version: 1,
        }
        .into(),
        CartCommand::SetLine {
            owner: guest.clone(),
            sku: sku("A"),
            quantity: 1,
            mode: LineMode::Add,
        }
        .into(),
        CartCommand::SetLine {
            owner: user.clone(),
            sku: sku("A"),
            quantity: 2,
            mode: LineMode::Set,
        }
        .into(),
        CartCommand::Merge {
            guest,
            user: user.clone(),
        }
        .into(),
    ];
    // The checkout: its version is its position, counted from 1.
    let order_id = c.len() as u64 + 1;
    c.extend::<[Command; 21]>([
        OrderCommand::Checkout {
            actor: customer(),
            cart: user.clone(),
            shipping_address: Address {
                name: "Ada".into(),
                line1: "1 Rue".into(),
                line2: None,
                city: "Paris".into(),
                postal_code: "75001".into(),
                country: "FR".into(),
                location: Some(Location::parse(48.8, 2.3).unwrap()),
            },
            strategy: Allocation::Nearest,
            hold_ttl_ms: 60_000,
            payment_method: PaymentMethod {
                provider: "sandbox".into(),
                reference: "pm_ok".into(),
                display: "visa".into(),
            },
            coupon: Some("WELCOME".into()),
        }
        .into(),
        OrderCommand::ExtendHold {
            actor: customer(),
            order_id,
            ttl_ms: 60_000,
        }
        .into(),
        OrderCommand::PaymentResult {
            order_id,
            op: PaymentOp::Authorize,
            result: PaymentResult::Succeeded {
                reference: "auth_1".into(),
            },
        }
        .into(),
        OrderCommand::Ship {
            actor: admin(),
            order_id,
            carrier: "La Poste".into(),
            tracking_number: "XY1".into(),
        }
        .into(),
        OrderCommand::Deliver {
            actor: admin(),
            order_id,
        }
        .into(),
        OrderCommand::Cancel {
            actor: customer(),
            order_id,
            reason: "changed my mind".into(),
        }
        .into(),
        OrderCommand::ExpireHolds.into(),
        CartCommand::Clear { owner: user }.into(),
        CartCommand::Expire { idle_ms: 1 }.into(),
        MediaCommand::Register {
            hash,
            content_type: ImageType::Png,
            size: 1000,
            width: 10,
            height: 10,
            uploaded_by: admin(),
            origin_node: 1,
        }
        .into(),
        UserCommand::UpdateProfile {
            user_id: "u1".into(),
            name: Some("Ada L.".into()),
            shipping_address: Some(None),
            billing_address: None,
        }
        .into(),
        UserCommand::RefreshSession {
            family_id: "f1".into(),
            presented_hash: "t1".into(),
            new_hash: "t2".into(),
            ttl_ms: 60_000,
        }
        .into(),
        UserCommand::RequestPasswordReset {
            user_id: "u1".into(),
            token_hash: "r1".into(),
            token: Secret("token".into()),
            ttl_ms: 60_000,
        }
        .into(),
        UserCommand::IssuePasswordReset {
            user_id: "u1".into(),
            token_hash: "r2".into(),
            delivery: "sealed".into(),
            ttl_ms: 60_000,
        }
        .into(),
        UserCommand::EnsureSigningKey {
            kid: "k1".into(),
            secret: Secret(vec![7; 32]),
        }
        .into(),
        UserCommand::BeginSocialLogin {
            state_hash: "s1".into(),
            pending: PendingSocialLogin {
                provider: "google".into(),
                verifier: Secret("v".into()),
                nonce: "n".into(),
                expires_ms: 60_000,
            },
            ttl_ms: 60_000,
        }
        .into(),
        UserCommand::SocialSignIn {
            identity: SocialIdentity {
                provider: "google".into(),
                subject: "123".into(),
                email: Some(Email::parse("bob@example.com").unwrap()),
                email_verified: true,
                name: "Bob".into(),
            },
            new_user_id: "u2".into(),
            family_id: "f2".into(),
            token_hash: "t3".into(),
            ttl_ms: 60_000,
        }
        .into(),
        UserCommand::SetRole {
            user_id: "u2".into(),
            role: Role::Vendor,
        }
        .into(),
        CatalogCommand::DeleteProduct {
            actor: admin(),
            id: id("p1"),
        }
        .into(),
        UserCommand::DeleteUser {
            user_id: "u2".into(),
        }
        .into(),
        SystemCommand::ExpireIdempotency { ttl_ms: 1 }.into(),
    ]);
    c
}

fn envelope(command: Command, key: Option<&str>) -> Envelope {
    Envelope {
        now_ms: 1_000,
        idempotency: key.map(|k| IdempotencyTag {
            key: IdempotencyKey::parse(k).unwrap(),
            fingerprint: "f".into(),
        }),
        command,
    }
}

/// The seeds as envelopes: alone, with an idempotency key, and two batches.
fn seed_envelopes() -> Vec<Envelope> {
    let commands = seeds();
    let mut out: Vec<Envelope> = commands.iter().map(|c| envelope(c.clone(), None)).collect();
    out.extend(commands.iter().map(|c| envelope(c.clone(), Some("k-1"))));
    let (first, rest) = commands.split_at(commands.len() / 2);
    for part in [first, rest] {
        let batch = part.iter().map(|c| envelope(c.clone(), None)).collect();
        out.push(envelope(Command::Batch(batch), None));
    }
    out
}

fn ctx(index: u64) -> ApplyContext {
    ApplyContext {
        log_index: index,
        version: index,
        now_ms: 1_000,
    }
}

/// The seeds applied in order, each alone in its entry (most are accepted).
fn shop() -> (MemoryStore, u64) {
    let mut store = MemoryStore::default();
    let mut index = 0;
    for command in seeds() {
        index += 1;
        store.apply(command, &ctx(index)).unwrap().ok();
    }
    (store, index)
}

/// A table of the in-memory store.
type Rows = BTreeMap<Vec<Owned>, Vec<u8>>;

/// What a refused command must leave as it found: every table but the
/// idempotency records (empty tables are no state), and the events.
fn state(store: &MemoryStore) -> (Vec<(&str, &Rows)>, usize) {
    let tables = store
        .tables
        .iter()
        .filter(|(name, rows)| {
            !rows.is_empty() && **name != idempotency::RECORDS && **name != idempotency::EXPIRY
        })
        .map(|(name, rows)| (*name, rows))
        .collect();
    (tables, store.events.len())
}

/// A change to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR the byte at (position mod length) with a non-zero value.
    Flip(usize, u8),
    /// Overwrite it with a byte likely to mean something to bincode
    /// (variant indexes, varint markers, extremes).
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl proptest::strategy::Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        0u8, 1, 2, 9, 10, 0x7f, 0x80, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
    ]);
    // Mostly in place: a shifted encoding rarely decodes at all.
    prop_oneof![
        3 => (any::<usize>(), 1u8..=255).prop_map(|(p, x)| Mutation::Flip(p, x)),
        4 => (any::<usize>(), interesting).prop_map(|(p, b)| Mutation::Set(p, b)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Flip(p, x) if !bytes.is_empty() => bytes[p % len] ^= x,
            Mutation::Set(p, b) if !bytes.is_empty() => bytes[p % len] = b,
            Mutation::Insert(p, b) => bytes.insert(p % (bytes.len() + 1), b),
            Mutation::Remove(p) if !bytes.is_empty() => {
                bytes.remove(p % len);
            }
            Mutation::Truncate(p) => bytes.truncate(p % len),
            _ => {}
        }
    }
    bytes
}

#[derive(Default)]
struct Tally {
    cases: AtomicU64,
    decoded: AtomicU64,
    commands: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl Tally {
    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    fn print(&self, name: &str) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        eprintln!(
            "fuzz {name}: {} cases, {} decoded, {} commands applied: {} accepted, {} refused",
            get(&self.cases),
            get(&self.decoded),
            get(&self.commands),
            get(&self.accepted),
            get(&self.refused),
        );
    }
}

#[test]
fn the_seeds_are_valid_and_build_a_shop() {
    // The fuzzing below is only as good as its seeds: every one must decode
    // back to itself, and applied in order they must mostly be accepted (an
    // order is placed, paid, shipped...).
    for e in seed_envelopes() {
        assert_eq!(decode(&encode(&e)).as_ref(), Some(&e));
    }
    let mut store = MemoryStore::default();
    let mut refused = Vec::new();
    for (i, command) in seeds().into_iter().enumerate() {
        if let Err(e) = store.apply(command.clone(), &ctx(i as u64 + 1)).unwrap() {
            refused.push((command, e));
        }
    }
    // Cancel after delivery is refused, as it should be.
    assert!(refused.len() <= 1, "{refused:#?}");
    assert!(crate::order::get(&store, 15).unwrap().is_some());
}

#[test]
fn arbitrary_bytes_never_panic_the_decoders() {
    let tally = Tally::default();
    let seeds: Vec<Vec<u8>> = seed_envelopes().iter().map(encode).collect();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (
            prop::sample::select(seeds),
            prop::collection::vec(mutation(), 1..16)
        )
            .prop_map(|(seed, m)| mutate(seed, &m)),
    ];
    let mut runner = TestRunner::new(config());
    runner
        .run(&bytes, |bytes| {
            Tally::count(&tally.cases);
            let log = decode(&bytes);
            let checked = Envelope::decode_checked(&bytes);
            if log.is_some() {
                Tally::count(&tally.decoded);
            }
            // What the checked decoder accepts, the log's decoder accepts
            // alike (compared encoded: a decoded NaN is not equal to itself).
            if let Ok(e) = &checked {
                prop_assert_eq!(log.as_ref().map(encode), Some(encode(e)));
            }
            Ok(())
        })
        .unwrap();
    tally.print("decoders");
}

#[test]
fn arbitrary_decoded_commands_never_panic_apply_and_refusals_leave_no_trace() {
    let tally = Tally::default();
    let (world, last) = shop();
    let seeds: Vec<Vec<u8>> = seed_envelopes().iter().map(encode).collect();
    let bytes = (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 1..4),
    )
        .prop_map(|(seed, m)| mutate(seed, &m));
    let mut runner = TestRunner::new(config());
    runner
        .run(&bytes, |bytes| {
            Tally::count(&tally.cases);
            let Some(entry) = decode(&bytes) else {
                return Ok(());
            };
            Tally::count(&tally.decoded);
            let mut store = world.clone();
            for (i, e) in entry.unbatch().iter().enumerate() {
                let ctx = ctx(last + 1 + i as u64);
                let before = store.clone();
                let Applied { outcome, .. } = apply_envelope(e, &ctx, &mut store).unwrap();
                Tally::count(&tally.commands);
                match outcome {
                    Ok(_) => Tally::count(&tally.accepted),
                    Err(_) => {
                        Tally::count(&tally.refused);
                        prop_assert_eq!(state(&store), state(&before), "refused: {:?}", e);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    tally.print("apply");
}
