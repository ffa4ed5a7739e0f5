//! Unit and property tests of checkout, holds, the workflow and payments. Over 600
//! lines: the workflow property test and its model share the fixtures above it.

use super::*;
use crate::allocation::Strategy;
use crate::cart::LineMode;
use crate::inventory::{InventoryCommand, Sku, StockLevel, WarehouseId};
use crate::listing::ListingCommand;
use crate::store::memory::MemoryStore;
use crate::{Command, Outcome};
use proptest::prelude::*;
use proptest::strategy::Strategy as Generator;

struct World {
    store: MemoryStore,
    index: u64,
    now_ms: u64,
}

fn admin() -> Actor {
    Actor {
        user_id: "root".into(),
        role: Role::Admin,
    }
}

fn customer(id: &str) -> Actor {
    Actor {
        user_id: id.into(),
        role: Role::Customer,
    }
}

fn address() -> Address {
    Address {
        name: "Ada".into(),
        line1: "1 Rue".into(),
        line2: None,
        city: "Paris".into(),
        postal_code: "75001".into(),
        country: "FR".into(),
        location: Some(Location::parse(48.0, 2.0).unwrap()),
    }
}

fn card(reference: &str) -> PaymentMethod {
    PaymentMethod {
        provider: "sandbox".into(),
        reference: reference.into(),
        display: "visa •••• 4242".into(),
    }
}

const TTL: u64 = 60_000;

impl World {
    fn new() -> Self {
        let mut w = World {
            store: MemoryStore::default(),
            index: 0,
            now_ms: 1_000,
        };
        for (id, prio, lat) in [("w1", 0, 10.0), ("w2", 1, 48.0)] {
            w.ok(Command::Inventory(InventoryCommand::UpsertWarehouse {
                id: WarehouseId::parse(id).unwrap(),
                name: id.into(),
                location: Location::parse(lat, 2.0).unwrap(),
                priority: prio,
            }));
        }
        for sku in ["A", "B"] {
            w.ok(Command::Listing(ListingCommand::Upsert {
                actor: admin(),
                sku: Sku::parse(sku).unwrap(),
                name: format!("item {sku}"),
                price: Money::parse("price", 250, "EUR").unwrap(),
                vendor_id: None,
                active: true,
            }));
        }
        w
    }

    fn run(&mut self, command: Command) -> Outcome {
        self.index += 1;
        let ctx = ApplyContext {
            log_index: self.index,
            version: self.index,
            now_ms: self.now_ms,
        };
        // As the state machine applies it: a refusal is rolled back.
        self.store.apply(command, &ctx).unwrap()
    }

    fn ok(&mut self, command: Command) -> Response {
        self.run(command.clone())
            .unwrap_or_else(|e| panic!("{command:?} refused: {e}"))
    }

    fn stock(&mut self, sku: &str, wh: &str, delta: i64) {
        self.ok(Command::Inventory(InventoryCommand::AdjustStock {
            sku: Sku::parse(sku).unwrap(),
            warehouse_id: WarehouseId::parse(wh).unwrap(),
            delta,
            reason: None,
        }));
    }

    fn add(&mut self, user: &str, sku: &str, quantity: u64) -> Outcome {
        self.run(Command::Cart(CartCommand::SetLine {
            owner: CartOwner::User(user.into()),
            sku: Sku::parse(sku).unwrap(),
            quantity,
            mode: LineMode::Add,
        }))
    }

    fn checkout(&mut self, user: &str) -> Outcome {
        self.run(Command::Order(OrderCommand::Checkout {
            actor: customer(user),
            cart: CartOwner::User(user.into()),
            shipping_address: address(),
            strategy: Strategy::Priority,
            hold_ttl_ms: TTL,
            payment_method: card("pm_ok"),
            coupon: None,
        }))
    }

    fn order(&self, id: OrderId) -> Order {
        get(&self.store, id).unwrap().unwrap()
    }

    fn level(&self, sku: &str, wh: &str) -> StockLevel {
        self.store
            .get::<StockLevel>(inventory::STOCK, &[KeyPart::Str(sku), KeyPart::Str(wh)])
            .unwrap()
            .unwrap()
    }

    fn pay(&mut self, id: OrderId, result: PaymentResult) -> Outcome {
        self.run(Command::Order(OrderCommand::PaymentResult {
            order_id: id,
            op: PaymentOp::Authorize,
            result,
        }))
    }
}

use crate::cart::CartCommand;

fn order_of(r: Response) -> Order {
    match r {
        Response::Order(o) => *o,
        other => panic!("not an order: {other:?}"),
    }
}

use crate::Response;

#[test]
fn checkout_reserves_splits_and_snapshots_prices() {
    let mut w = World::new();
    w.stock("A", "w1", 2);
    w.stock("A", "w2", 5);
    w.add("ann", "A", 4).unwrap();
    let order = order_of(w.checkout("ann").unwrap());
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(order.totals.total.amount, 1000);
    assert_eq!(order.lines[0].unit_price.amount, 250);
    let taken: Vec<_> = order
        .allocations
        .iter()
        .map(|a| (a.warehouse_id.as_str().to_string(), a.quantity))
        .collect();
    assert_eq!(taken, vec![("w1".to_string(), 2), ("w2".to_string(), 2)]);
    assert_eq!(w.level("A", "w1").reserved, 2);
    assert_eq!(w.level("A", "w2").available(), 3);
    let timeline: Vec<_> = order.timeline.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        timeline,
        vec![
            (None, OrderStatus::Draft),
            (Some(OrderStatus::Draft), OrderStatus::Confirmed)
        ]
    );
    // The cart is emptied, and an authorization is queued.
    assert!(cart::get(&w.store, &CartOwner::User("ann".into()))
        .unwrap()
        .is_none());
    let tasks = payment_tasks(&w.store, 10).unwrap();
    assert_eq!((tasks.len(), tasks[0].op), (1, PaymentOp::Authorize));
    // A price change later does not touch the order.
    w.ok(Command::Listing(ListingCommand::Upsert {
        actor: admin(),
        sku: Sku::parse("A").unwrap(),
        name: "A".into(),
        price: Money::parse("price", 999, "EUR").unwrap(),
        vendor_id: None,
        active: true,
    }));
    assert_eq!(w.order(order.id).totals.total.amount, 1000);
}

#[test]
fn shortfall_names_every_short_line_and_writes_nothing() {
    let mut w = World::new();
    w.stock("A", "w1", 1);
    w.add("ann", "A", 2).unwrap();
    w.add("ann", "B", 1).unwrap();
    let err = w.checkout("ann").unwrap_err();
    let DomainError::OutOfStock(lines) = err else {
        panic!("{err:?}")
    };
    let skus: Vec<_> = lines
        .iter()
        .map(|l| (l.sku.as_str(), l.requested, l.available))
        .collect();
    assert_eq!(skus, vec![("A", 2, 1), ("B", 1, 0)]);
    assert_eq!(w.level("A", "w1").reserved, 0);
    assert_eq!(w.checkout("bob").unwrap_err(), DomainError::CartEmpty);
}

#[test]
fn workflow_paid_shipped_delivered_and_illegal_moves() {
    let mut w = World::new();
    w.stock("A", "w1", 5);
    w.add("ann", "A", 2).unwrap();
    let id = order_of(w.checkout("ann").unwrap()).id;
    // Shipping an unpaid order is refused.
    let ship = |carrier: &str| {
        Command::Order(OrderCommand::Ship {
            actor: admin(),
            order_id: id,
            carrier: carrier.into(),
            tracking_number: "T1".into(),
        })
    };
    assert_eq!(w.run(ship("ups")).unwrap_err().code(), "invalid_transition");
    let paid = order_of(
        w.pay(
            id,
            PaymentResult::Succeeded {
                reference: "auth_1".into(),
            },
        )
        .unwrap(),
    );
    assert_eq!(
        (paid.status, paid.hold),
        (OrderStatus::Paid, Hold::Committed)
    );
    // A duplicate result is ignored.
    let again = order_of(
        w.pay(id, PaymentResult::Declined { reason: "x".into() })
            .unwrap(),
    );
    assert_eq!(again.status, OrderStatus::Paid);
    // Expiry no longer touches a paid order.
    w.now_ms += 10 * TTL;
    w.ok(Command::Order(OrderCommand::ExpireHolds));
    assert_eq!(w.order(id).status, OrderStatus::Paid);
    let shipped = order_of(w.ok(ship("ups")));
    assert_eq!(shipped.status, OrderStatus::Shipped);
    let level = w.level("A", "w1");
    assert_eq!((level.on_hand, level.reserved), (3, 0));
    // Repeating a legal transition is a no-op; going back is refused.
    let repeated = order_of(w.ok(ship("dhl")));
    assert_eq!(repeated.timeline.len(), shipped.timeline.len());
    assert_eq!(w.level("A", "w1").on_hand, 3);
    let cancel = Command::Order(OrderCommand::Cancel {
        actor: customer("ann"),
        order_id: id,
        reason: "changed my mind".into(),
    });
    let err = w.run(cancel).unwrap_err();
    assert_eq!(
        err,
        DomainError::InvalidTransition {
            from: "shipped".into(),
            to: "cancelled".into()
        }
    );
    assert_eq!(
        payment_tasks(&w.store, 10).unwrap()[0].op,
        PaymentOp::Capture,
        "shipping queues the capture"
    );
    let delivered = order_of(w.ok(Command::Order(OrderCommand::Deliver {
        actor: admin(),
        order_id: id,
    })));
    assert_eq!(delivered.status, OrderStatus::Delivered);
    assert_eq!(delivered.timeline.last().unwrap().by, "user:root");
}

#[test]
fn decline_and_expiry_release_the_hold_exactly_once() {
    let mut w = World::new();
    w.stock("A", "w1", 3);
    w.add("ann", "A", 2).unwrap();
    let declined = order_of(w.checkout("ann").unwrap()).id;
    let out = order_of(
        w.pay(
            declined,
            PaymentResult::Declined {
                reason: "card declined".into(),
            },
        )
        .unwrap(),
    );
    assert_eq!(
        (out.status, out.hold),
        (OrderStatus::Cancelled, Hold::Released)
    );
    assert_eq!(w.level("A", "w1").reserved, 0);

    w.add("bob", "A", 3).unwrap();
    let expiring = order_of(w.checkout("bob").unwrap()).id;
    assert_eq!(w.level("A", "w1").available(), 0);
    w.now_ms += TTL - 1;
    w.ok(Command::Order(OrderCommand::ExpireHolds));
    assert_eq!(
        w.order(expiring).status,
        OrderStatus::Confirmed,
        "not yet due"
    );
    w.now_ms += 1;
    w.ok(Command::Order(OrderCommand::ExpireHolds));
    w.ok(Command::Order(OrderCommand::ExpireHolds));
    let cancel = Command::Order(OrderCommand::Cancel {
        actor: customer("bob"),
        order_id: expiring,
        reason: String::new(),
    });
    w.ok(cancel);
    let order = w.order(expiring);
    assert_eq!(
        (order.status, order.hold),
        (OrderStatus::Cancelled, Hold::Released)
    );
    assert_eq!(
        w.level("A", "w1").reserved,
        0,
        "released once, not three times"
    );
    assert_eq!(order.timeline.last().unwrap().reason, "reservation expired");
    // A late authorization for the expired order queues a void.
    let late = order_of(
        w.pay(
            expiring,
            PaymentResult::Succeeded {
                reference: "auth_9".into(),
            },
        )
        .unwrap(),
    );
    assert_eq!(late.status, OrderStatus::Cancelled);
    let ops: Vec<_> = payment_tasks(&w.store, 10)
        .unwrap()
        .iter()
        .map(|t| t.op)
        .collect();
    assert_eq!(ops, vec![PaymentOp::Void]);
}

#[test]
fn holds_extend_and_others_orders_are_invisible() {
    let mut w = World::new();
    w.stock("A", "w1", 3);
    w.add("ann", "A", 1).unwrap();
    let id = order_of(w.checkout("ann").unwrap()).id;
    let extend = |who: Actor| {
        Command::Order(OrderCommand::ExtendHold {
            actor: who,
            order_id: id,
            ttl_ms: 5 * TTL,
        })
    };
    assert_eq!(
        w.run(extend(customer("eve"))).unwrap_err(),
        DomainError::OrderNotFound(id)
    );
    w.ok(extend(customer("ann")));
    w.now_ms += 2 * TTL;
    w.ok(Command::Order(OrderCommand::ExpireHolds));
    assert_eq!(w.order(id).status, OrderStatus::Confirmed, "extended");
    assert!(w.order(id).visible_to(&customer("eve")).is_none());
    let vendor = Actor {
        user_id: "v1".into(),
        role: Role::Vendor,
    };
    assert!(
        w.order(id).visible_to(&vendor).is_none(),
        "not its products"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Restock(usize, usize, u8),
    Add(usize, usize, u8),
    Checkout(usize),
    Pay(usize, bool),
    Ship(usize),
    Cancel(usize),
    Tick(u8),
}

fn op() -> impl Generator<Value = Op> {
    prop_oneof![
        (0..2usize, 0..2usize, 1..6u8).prop_map(|(s, w, q)| Op::Restock(s, w, q)),
        (0..3usize, 0..2usize, 1..4u8).prop_map(|(c, s, q)| Op::Add(c, s, q)),
        (0..3usize).prop_map(Op::Checkout),
        (0..8usize, any::<bool>()).prop_map(|(o, ok)| Op::Pay(o, ok)),
        (0..8usize).prop_map(Op::Ship),
        (0..8usize).prop_map(Op::Cancel),
        (0..40u8).prop_map(Op::Tick),
    ]
}

proptest! {
    /// Random sequences of restocks, checkouts, payments, shipments, cancels
    /// and expiries never make stock negative and never lose a unit: per
    /// level, on hand + shipped = received, and reserved equals what live
    /// holds took.
    #[test]
    fn units_are_conserved(ops in prop::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        let skus = ["A", "B"];
        let whs = ["w1", "w2"];
        let users = ["u0", "u1", "u2"];
        let mut received = std::collections::BTreeMap::<(usize, usize), u64>::new();
        let mut orders: Vec<OrderId> = Vec::new();
        for op in ops {
            match op {
                Op::Restock(s, h, q) => {
                    w.stock(skus[s], whs[h], q as i64);
                    *received.entry((s, h)).or_default() += q as u64;
                }
                Op::Add(c, s, q) => { let _ = w.add(users[c], skus[s], q as u64); }
                Op::Checkout(c) => {
                    if let Ok(r) = w.checkout(users[c]) { orders.push(order_of(r).id); }
                }
                Op::Pay(o, ok) => if let Some(id) = orders.get(o) {
                    let result = if ok {
                        PaymentResult::Succeeded { reference: format!("a{id}") }
                    } else {
                        PaymentResult::Declined { reason: "no".into() }
                    };
                    let _ = w.pay(*id, result);
                },
                Op::Ship(o) => if let Some(id) = orders.get(o) {
                    let _ = w.run(Command::Order(OrderCommand::Ship {
                        actor: admin(), order_id: *id, carrier: "c".into(), tracking_number: "t".into(),
                    }));
                },
                Op::Cancel(o) => if let Some(id) = orders.get(o) {
                    let _ = w.run(Command::Order(OrderCommand::Cancel {
                        actor: admin(), order_id: *id, reason: String::new(),
                    }));
                },
                Op::Tick(t) => {
                    w.now_ms += t as u64 * 5_000;
                    w.ok(Command::Order(OrderCommand::ExpireHolds));
                }
            }
            for (s, sku) in skus.iter().enumerate() {
                for (h, wh) in whs.iter().enumerate() {
                    let level = w.store
                        .get::<StockLevel>(inventory::STOCK, &[KeyPart::Str(sku), KeyPart::Str(wh)])
                        .unwrap()
                        .unwrap_or(StockLevel {
                            sku: Sku::parse(sku).unwrap(),
                            warehouse_id: WarehouseId::parse(wh).unwrap(),
                            on_hand: 0, reserved: 0, version: 0,
                        });
                    let mut shipped = 0;
                    let mut held = 0;
                    for id in &orders {
                        let order = w.order(*id);
                        for a in order.allocations.iter()
                            .filter(|a| a.sku.as_str() == *sku && a.warehouse_id.as_str() == *wh) {
                            match order.hold {
                                Hold::Consumed => shipped += a.quantity,
                                Hold::Held { .. } | Hold::Committed => held += a.quantity,
                                Hold::Released => {}
                            }
                        }
                    }
                    prop_assert!(level.reserved <= level.on_hand);
                    prop_assert_eq!(level.on_hand + shipped, received.get(&(s, h)).copied().unwrap_or(0));
                    prop_assert_eq!(level.reserved, held);
                }
            }
        }
    }
}

/// A command refused after it wrote (here: a cancellation that released one
/// line's units, then found the other's stock record inconsistent) leaves no
/// trace: the state machine's savepoint takes back the writes and events.
#[test]
fn a_refusal_after_writes_is_taken_back_whole() {
    let mut w = World::new();
    w.stock("A", "w1", 10);
    w.stock("B", "w1", 10);
    w.add("ann", "A", 2).unwrap();
    w.add("ann", "B", 3).unwrap();
    let order = order_of(w.checkout("ann").unwrap());
    // B's record loses its reservation (no command does this; a bug could).
    let mut b = w.level("B", "w1");
    b.reserved = 0;
    store::put(
        &mut w.store,
        inventory::STOCK,
        &[KeyPart::Str("B"), KeyPart::Str("w1")],
        &b,
    )
    .unwrap();
    let before = w.store.clone();
    let refused = w
        .run(Command::Order(OrderCommand::Cancel {
            actor: customer("ann"),
            order_id: order.id,
            reason: String::new(),
        }))
        .unwrap_err();
    assert_eq!(refused.code(), "insufficient_stock");
    // A's units stay reserved, the order stays as it was, no event.
    assert_eq!(w.level("A", "w1").reserved, 2);
    assert_eq!(w.order(order.id), order);
    assert_eq!(w.store.events, before.events);
    let rows = |s: &MemoryStore| {
        s.tables
            .iter()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(t, rows)| (*t, rows.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&w.store), rows(&before));
}

/// Regression: a listing with a negative price plus a coupon made checkout
/// call `clamp(0, negative)`, which panics, on every replica. `apply` now
/// refuses such a price when the listing is written, and a checkout that
/// meets one stored before that is refused and leaves no trace.
#[test]
fn a_negative_price_with_a_coupon_is_refused_not_a_panic() {
    use crate::pricing::{Coupon, CouponKind, PricingCommand};
    let mut w = World::new();
    w.stock("A", "w1", 10);
    w.ok(Command::Pricing(PricingCommand::UpsertCoupon {
        coupon: Coupon {
            code: "SAVE".into(),
            kind: CouponKind::AmountOff {
                amount: Money::parse("m", 100, "EUR").unwrap(),
            },
            min_subtotal: None,
            usage_limit: None,
            per_customer_limit: None,
            used: 0,
            starts_ms: None,
            ends_ms: None,
            active: true,
            version: 0,
        },
    }));
    let negative = Money {
        amount: -500,
        currency: Money::parse("m", 0, "EUR").unwrap().currency,
    };
    let upsert = Command::Listing(ListingCommand::Upsert {
        actor: admin(),
        sku: Sku::parse("A").unwrap(),
        name: "A".into(),
        price: negative.clone(),
        vendor_id: None,
        active: true,
    });
    assert_eq!(w.run(upsert).unwrap_err().code(), "validation_failed");
    w.add("ann", "A", 2).unwrap();
    // A listing stored before `apply` checked prices.
    let mut listing = crate::listing::get(&w.store, &Sku::parse("A").unwrap())
        .unwrap()
        .unwrap();
    listing.price = negative;
    store::put(
        &mut w.store,
        crate::listing::LISTINGS,
        &[KeyPart::Str("A")],
        &listing,
    )
    .unwrap();
    let before = w.store.clone();
    let refused = w
        .run(Command::Order(OrderCommand::Checkout {
            actor: customer("ann"),
            cart: CartOwner::User("ann".into()),
            shipping_address: address(),
            strategy: Strategy::Priority,
            hold_ttl_ms: TTL,
            payment_method: card("pm_ok"),
            coupon: Some("SAVE".into()),
        }))
        .unwrap_err();
    assert_eq!(refused.code(), "validation_failed");
    let rows = |s: &MemoryStore| {
        s.tables
            .iter()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(t, rows)| (*t, rows.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&w.store), rows(&before));
    assert_eq!(w.store.events, before.events);
}

proptest! {
    /// Whatever the promotions and the coupon, an order's line totals sum to
    /// its subtotal, total = subtotal − discount, nothing is negative, and
    /// the payment is for the total.
    #[test]
    fn order_totals_add_up(
        quantities in prop::collection::vec(1u64..5, 1..3),
        percent in 1u32..=10_000,
        off in 0i64..2_000,
        coupon_off in 0i64..5_000,
        stackable in any::<bool>(),
    ) {
        use crate::pricing::{Coupon, CouponKind, PricingCommand, Promotion, PromotionKind, Target};
        let mut w = World::new();
        w.stock("A", "w1", 100);
        w.stock("B", "w1", 100);
        for (i, (id, kind)) in [
            ("pct", PromotionKind::Percent { basis_points: percent }),
            ("off", PromotionKind::AmountOff { per_unit: Money::parse("m", off, "EUR").unwrap() }),
        ].into_iter().enumerate() {
            w.ok(Command::Pricing(PricingCommand::UpsertPromotion {
                actor: admin(),
                promotion: Promotion {
                    id: crate::catalog::CatalogId::parse("id", id).unwrap(),
                    name: id.into(),
                    kind,
                    target: Target::All,
                    starts_ms: None,
                    ends_ms: None,
                    stackable: stackable && i == 1,
                    active: true,
                    version: 0,
                },
            }));
        }
        w.ok(Command::Pricing(PricingCommand::UpsertCoupon {
            coupon: Coupon {
                code: "SAVE".into(),
                kind: CouponKind::AmountOff { amount: Money::parse("m", coupon_off, "EUR").unwrap() },
                min_subtotal: None,
                usage_limit: None,
                per_customer_limit: None,
                used: 0,
                starts_ms: None,
                ends_ms: None,
                active: true,
                version: 0,
            },
        }));
        for (q, sku) in quantities.iter().zip(["A", "B"]) {
            w.add("ann", sku, *q).unwrap();
        }
        let order = order_of(w.run(Command::Order(OrderCommand::Checkout {
            actor: customer("ann"),
            cart: CartOwner::User("ann".into()),
            shipping_address: address(),
            strategy: Strategy::Priority,
            hold_ttl_ms: TTL,
            payment_method: card("pm_ok"),
            coupon: Some("SAVE".into()),
        })).unwrap());
        let lines: i64 = order.lines.iter().map(|l| l.line_total.amount).sum();
        prop_assert_eq!(lines, order.totals.subtotal.amount);
        prop_assert_eq!(order.totals.total.amount, order.totals.subtotal.amount - order.totals.discount.amount);
        prop_assert!(order.totals.total.amount >= 0 && order.totals.discount.amount >= 0);
        prop_assert!(order.lines.iter().all(|l| l.line_total.amount >= 0));
        prop_assert_eq!(&order.payment.amount, &order.totals.total);
    }
}

#[test]
fn nearest_needs_a_location_and_holds_are_bounded_in_the_domain() {
    let mut at = address();
    at.location = None;
    assert_eq!(
        check_strategy(Strategy::Nearest, &at).unwrap_err().code(),
        "validation_failed"
    );
    assert!(check_strategy(Strategy::Priority, &at).is_ok());
    at.location = Some(Location::parse(48.85, 2.35).unwrap());
    assert!(check_strategy(Strategy::Nearest, &at).is_ok());

    assert_eq!(hold_ttl_ms("hold_ttl_secs", 30, 600).unwrap(), 30_000);
    for secs in [0, 601] {
        assert!(hold_ttl_ms("hold_ttl_secs", secs, 600).is_err());
    }

    // A checkout command built without the API's checks is refused at apply.
    let mut checkout = OrderCommand::Checkout {
        actor: customer("c"),
        cart: CartOwner::User("c".into()),
        shipping_address: address(),
        strategy: Strategy::Nearest,
        hold_ttl_ms: 1000,
        payment_method: card("approve"),
        coupon: None,
    };
    if let OrderCommand::Checkout {
        shipping_address, ..
    } = &mut checkout
    {
        shipping_address.location = None;
    }
    assert!(checkout.validate().is_err());
    if let OrderCommand::Checkout {
        shipping_address,
        hold_ttl_ms,
        ..
    } = &mut checkout
    {
        shipping_address.location = Some(Location::parse(48.85, 2.35).unwrap());
        *hold_ttl_ms = 0;
    }
    assert!(checkout.validate().is_err());
}
