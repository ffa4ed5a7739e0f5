//! Orders: atomic checkout, stock holds with a TTL, the order workflow, and
//! the payment outbox.
//!
//! ```text
//!            checkout (one command: price, allocate, reserve, create)
//!   (draft) ───────────────▶ confirmed ──payment authorized──▶ paid ──ship──▶ shipped ──▶ delivered
//!                               │  ╲                              │
//!                               │   hold expired / declined       │
//!                               ▼    ╲                            ▼
//!                           cancelled ◀──────── cancel ───────────┘
//! ```
//!
//! Stock: checkout reserves (`reserved += q`) per allocation; cancelling or
//! expiring a confirmed order releases exactly those units once (the status
//! guards it); shipping removes them from the warehouse (`on_hand −= q`,
//! `reserved −= q`). A paid order's hold no longer expires.
//!
//! Payments: transitions that need the provider (authorize after checkout,
//! capture after shipping, void or refund after a cancel) write a task to the
//! payment outbox. A worker on the leader performs it outside the state
//! machine and proposes [`OrderCommand::PaymentResult`]; a result for a task
//! that is gone is ignored, so a retried or duplicated result applies once.

use serde::{Deserialize, Serialize};

use crate::allocation::{self, Allocation, Strategy};
use crate::cart::{self, CartOwner};
use crate::check;
use crate::command::{ApplyContext, Outcome, Response};
use crate::inventory::{self, Location};
use crate::money::Money;
use crate::pricing;
use crate::store::{self, KeyPart, Store, StoreExt, StoreFault, StoreMut};
use crate::{Actor, DomainError, Event, Role};

/// Orders keyed by id.
pub const ORDERS: &str = "orders";
/// (customer id, newest-first order key) → order id.
pub const BY_CUSTOMER: &str = "orders_by_customer";
/// (vendor id, newest-first order key) → order id.
pub const BY_VENDOR: &str = "orders_by_vendor";
/// (newest-first order key) → order id, for admins.
pub const BY_TIME: &str = "orders_by_time";
/// (hold expiry ms, order id) → the same, for confirmed orders.
pub const HOLD_EXPIRY: &str = "orders_hold_expiry";
/// (order id, operation) → payment task: the payment outbox.
pub const PAYMENT_TASKS: &str = "payment_tasks";
/// Most holds expired by one command.
pub const EXPIRE_BATCH: usize = 1000;

pub type OrderId = u64;

/// Newest first: keys sort by descending id.
fn newest_first(id: OrderId) -> KeyPart<'static> {
    KeyPart::U64(u64::MAX.saturating_sub(id))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Draft,
    Confirmed,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Confirmed => "confirmed",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Draft,
            Self::Confirmed,
            Self::Paid,
            Self::Shipped,
            Self::Delivered,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    /// The workflow's legal moves.
    pub fn can_become(self, to: Self) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Draft, Confirmed)
                | (Confirmed, Paid)
                | (Paid, Shipped)
                | (Shipped, Delivered)
                | (Draft | Confirmed | Paid, Cancelled)
        )
    }
}

/// A shipping address. `location` (optional) lets the nearest-warehouse strategy work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    pub location: Option<Location>,
}

impl Address {
    /// Checks every field; `location` is checked by [`Location::parse`] before.
    pub fn validate(self) -> Result<Self, DomainError> {
        let text = |field: &str, v: &str, max: usize| {
            if v.trim().is_empty() || v.chars().count() > max {
                Err(DomainError::validation(
                    field,
                    format!("must be 1 to {max} characters"),
                ))
            } else {
                Ok(())
            }
        };
        text("shipping_address.name", &self.name, 200)?;
        text("shipping_address.line1", &self.line1, 200)?;
        if let Some(l2) = &self.line2 {
            if l2.chars().count() > 200 {
                return Err(DomainError::validation(
                    "shipping_address.line2",
                    "must be at most 200 characters",
                ));
            }
        }
        text("shipping_address.city", &self.city, 100)?;
        text("shipping_address.postal_code", &self.postal_code, 20)?;
        if !(self.country.len() == 2 && self.country.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(DomainError::validation(
                "shipping_address.country",
                "must be an ISO 3166-1 alpha-2 code such as FR",
            ));
        }
        Ok(self)
    }
}

/// A line as bought: the price is a snapshot taken at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub name: String,
    pub vendor_id: Option<String>,
    pub quantity: u64,
    pub list_price: Money,
    /// After sale and tiered prices.
    pub unit_price: Money,
    /// Taken off by promotions.
    pub discount: Money,
    pub line_total: Money,
    /// How the price was reached.
    pub explanation: Vec<pricing::Step>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub subtotal: Money,
    pub shipping: Money,
    pub discount: Money,
    pub tax: Money,
    pub total: Money,
}

/// The stock an order holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// Reserved; returned to stock at `expires_at_ms` unless paid first.
    Held { expires_at_ms: u64 },
    /// Reserved for a paid order; no longer expires.
    Committed,
    /// Shipped: the units left the warehouse.
    Consumed,
    /// Returned to available stock.
    Released,
}

impl Hold {
    /// Its name in the APIs: `held`, `committed`, `consumed` or `released`.
    pub fn name(&self) -> &'static str {
        match self {
            Hold::Held { .. } => "held",
            Hold::Committed => "committed",
            Hold::Consumed => "consumed",
            Hold::Released => "released",
        }
    }

    /// When a held reservation returns to stock.
    pub fn expires_at_ms(&self) -> Option<u64> {
        match self {
            Hold::Held { expires_at_ms } => Some(*expires_at_ms),
            _ => None,
        }
    }
}

/// What the customer pays with: a provider and the provider's reference to a
/// payment method (never a card number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub provider: String,
    pub reference: String,
    /// What may be shown, e.g. "visa •••• 4242".
    pub display: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Authorization requested, no answer yet.
    Pending,
    Authorized {
        authorization: String,
    },
    Captured {
        authorization: String,
        capture: String,
    },
    Declined {
        reason: String,
    },
    Failed {
        reason: String,
    },
    Voided,
    Refunded {
        refund: String,
    },
    /// A capture, void or refund the provider refused: needs an operator.
    ActionFailed {
        operation: PaymentOp,
        reason: String,
    },
}

impl PaymentStatus {
    /// Its name in the APIs: `pending`, `authorized`, `captured`,
    /// `declined`, `failed`, `voided`, `refunded` or `action_failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Authorized { .. } => "authorized",
            Self::Captured { .. } => "captured",
            Self::Declined { .. } => "declined",
            Self::Failed { .. } => "failed",
            Self::Voided => "voided",
            Self::Refunded { .. } => "refunded",
            Self::ActionFailed { .. } => "action_failed",
        }
    }

    /// The provider's authorization, while it stands.
    pub fn authorization(&self) -> Option<&str> {
        match self {
            Self::Authorized { authorization } | Self::Captured { authorization, .. } => {
                Some(authorization)
            }
            _ => None,
        }
    }

    /// Why the payment did not go through, for people.
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::Declined { reason } | Self::Failed { reason } => Some(reason.clone()),
            Self::ActionFailed { operation, reason } => {
                Some(format!("{operation:?} failed: {reason}").to_lowercase())
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub method: PaymentMethod,
    pub amount: Money,
    pub status: PaymentStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfilment {
    pub carrier: String,
    pub tracking_number: String,
    pub shipped_at_ms: u64,
    pub delivered_at_ms: Option<u64>,
}

/// One entry of an order's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub at_ms: u64,
    /// `user:<id>` or `system`.
    pub by: String,
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: String,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub totals: Totals,
    /// The coupon redeemed by this order.
    pub coupon: Option<String>,
    pub shipping_address: Address,
    pub allocations: Vec<Allocation>,
    pub hold: Hold,
    pub payment: Payment,
    pub fulfilment: Option<Fulfilment>,
    pub timeline: Vec<Transition>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub version: u64,
}

impl Order {
    pub fn vendors(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .lines
            .iter()
            .filter_map(|l| l.vendor_id.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// True when `actor` may see (part of) this order; see [`Order::visible_to`].
    pub fn is_visible_to(&self, actor: &Actor) -> bool {
        actor.is_admin()
            || self.customer_id == actor.user_id
            || (actor.role == Role::Vendor
                && self
                    .lines
                    .iter()
                    .any(|l| l.vendor_id.as_deref() == Some(actor.user_id.as_str())))
    }

    /// What `actor` may see of this order, or `None` if nothing.
    /// Customers see their own orders, admins all; a vendor sees the lines it
    /// sells (with their allocations), the address it ships to, and the
    /// status and timeline, but not other vendors' lines, totals or payment.
    pub fn visible_to(&self, actor: &Actor) -> Option<Order> {
        if actor.is_admin() || self.customer_id == actor.user_id {
            return Some(self.clone());
        }
        if actor.role != Role::Vendor {
            return None;
        }
        let mine = |vendor: &Option<String>| vendor.as_deref() == Some(actor.user_id.as_str());
        let lines: Vec<OrderLine> = self
            .lines
            .iter()
            .filter(|l| mine(&l.vendor_id))
            .cloned()
            .collect();
        if lines.is_empty() {
            return None;
        }
        let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
        let currency = self.totals.total.currency.clone();
        let subtotal = lines
            .iter()
            .try_fold(Money::zero(currency.clone()), |acc, l| {
                acc.plus(&l.line_total)
            })
            .unwrap_or_else(|| Money::zero(currency.clone()));
        Some(Order {
            allocations: self
                .allocations
                .iter()
                .filter(|a| skus.contains(&a.sku.as_str()))
                .cloned()
                .collect(),
            lines,
            totals: Totals {
                subtotal: subtotal.clone(),
                shipping: Money::zero(currency.clone()),
                discount: Money::zero(currency.clone()),
                tax: Money::zero(currency),
                total: subtotal,
            },
            payment: Payment {
                method: PaymentMethod {
                    provider: String::new(),
                    reference: String::new(),
                    display: String::new(),
                },
                ..self.payment.clone()
            },
            ..self.clone()
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOp {
    Authorize,
    Capture,
    Void,
    Refund,
}

impl PaymentOp {
    fn as_str(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }
}

/// A provider call the leader's payment worker must make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentTask {
    pub order_id: OrderId,
    pub op: PaymentOp,
    pub amount: Money,
    pub method: PaymentMethod,
    /// The authorization a capture, void or refund refers to.
    pub authorization: Option<String>,
    /// Also the provider's idempotency key: `order-<id>-<op>`.
    pub key: String,
    pub created_ms: u64,
}

/// What the provider answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentResult {
    Succeeded {
        reference: String,
    },
    Declined {
        reason: String,
    },
    /// No usable answer (timeouts, errors) after the worker's retries.
    Failed {
        reason: String,
    },
}

// Commands live briefly (built, serialized, applied); boxing the large
// variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderCommand {
    /// Validate the cart, price it, allocate and reserve stock, create the
    /// order, empty the cart and queue the payment authorization: all or nothing.
    Checkout {
        actor: Actor,
        cart: CartOwner,
        shipping_address: Address,
        strategy: Strategy,
        hold_ttl_ms: u64,
        payment_method: PaymentMethod,
        /// A coupon code to redeem (its limits are checked and counted here).
        coupon: Option<String>,
    },
    /// Moves a confirmed order's hold expiry to `ttl_ms` from now.
    ExtendHold {
        actor: Actor,
        order_id: OrderId,
        ttl_ms: u64,
    },
    Cancel {
        actor: Actor,
        order_id: OrderId,
        reason: String,
    },
    Ship {
        actor: Actor,
        order_id: OrderId,
        carrier: String,
        tracking_number: String,
    },
    Deliver {
        actor: Actor,
        order_id: OrderId,
    },
    /// The outcome of a payment task (proposed by the leader's worker).
    PaymentResult {
        order_id: OrderId,
        op: PaymentOp,
        result: PaymentResult,
    },
    /// Cancels confirmed orders whose hold expired (proposed by the leader).
    ExpireHolds,
}

impl PaymentMethod {
    fn check(&self) -> Result<(), DomainError> {
        check::text("payment.provider", &self.provider, 100)?;
        check::text("payment.reference", &self.reference, 500)?;
        check::optional_text("payment.display", &self.display, 200)
    }
}

impl OrderCommand {
    /// Checks the command's fields (see [`crate::Command::validate`]).
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            Self::Checkout {
                actor,
                cart,
                shipping_address,
                strategy,
                hold_ttl_ms,
                payment_method,
                coupon,
            } => {
                check::opaque("user_id", &actor.user_id)?;
                cart.check()?;
                check_strategy(*strategy, shipping_address)?;
                if *hold_ttl_ms == 0 {
                    return Err(DomainError::validation("hold_ttl_ms", "must be at least 1"));
                }
                if let Some(l) = &shipping_address.location {
                    l.check()?;
                }
                shipping_address.clone().validate()?;
                payment_method.check()?;
                match coupon {
                    Some(code) => check::canonical("coupon", code, pricing::parse_code(code)),
                    None => Ok(()),
                }
            }
            Self::Cancel { reason, .. } => check::optional_text("reason", reason, 500),
            Self::Ship {
                carrier,
                tracking_number,
                ..
            } => {
                check::text("carrier", carrier, 100)?;
                check::text("tracking_number", tracking_number, 100)
            }
            Self::ExtendHold { ttl_ms: 0, .. } => {
                Err(DomainError::validation("ttl_ms", "must be at least 1"))
            }
            Self::ExtendHold { .. }
            | Self::Deliver { .. }
            | Self::PaymentResult { .. }
            | Self::ExpireHolds => Ok(()),
        }
    }
}

/// A hold length in ms from `secs`, which must be between 1 and `max_secs`
/// (the shop's `commerce.max_hold_ttl_secs`); `field` names it in the error.
pub fn hold_ttl_ms(field: &str, secs: u64, max_secs: u64) -> Result<u64, DomainError> {
    if !(1..=max_secs).contains(&secs) {
        return Err(DomainError::validation(
            field,
            format!("must be between 1 and {max_secs}"),
        ));
    }
    Ok(secs.saturating_mul(1000))
}

/// The `nearest` strategy needs to know where the parcel goes: without the
/// address's location it is refused rather than quietly run as `priority`.
pub fn check_strategy(strategy: Strategy, address: &Address) -> Result<(), DomainError> {
    if strategy == Strategy::Nearest && address.location.is_none() {
        return Err(DomainError::validation(
            "shipping_address.location",
            "the nearest strategy needs the address's location",
        ));
    }
    Ok(())
}

pub fn get(store: &dyn Store, id: OrderId) -> Result<Option<Order>, StoreFault> {
    store.get(ORDERS, &[KeyPart::U64(id)])
}

fn by(actor: Option<&Actor>) -> String {
    actor.map_or_else(|| "system".to_string(), |a| format!("user:{}", a.user_id))
}

fn save(store: &mut dyn StoreMut, order: &mut Order, ctx: &ApplyContext) -> Result<(), StoreFault> {
    order.updated_ms = ctx.now_ms;
    order.version = ctx.version;
    store::put(store, ORDERS, &[KeyPart::U64(order.id)], order)
}

fn transition(
    order: &mut Order,
    to: OrderStatus,
    actor: Option<&Actor>,
    reason: &str,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) {
    let from = order.status;
    order.timeline.push(Transition {
        at_ms: ctx.now_ms,
        by: by(actor),
        from: Some(from),
        to,
        reason: reason.to_string(),
    });
    order.status = to;
    store.emit(Event::OrderStatusChanged {
        order_id: order.id,
        customer_id: order.customer_id.clone(),
        from: from.as_str().to_string(),
        to: to.as_str().to_string(),
        reason: reason.to_string(),
    });
}

fn enqueue(
    store: &mut dyn StoreMut,
    order: &Order,
    op: PaymentOp,
    authorization: Option<String>,
    ctx: &ApplyContext,
) -> Result<(), StoreFault> {
    let task = PaymentTask {
        order_id: order.id,
        op,
        amount: order.payment.amount.clone(),
        method: order.payment.method.clone(),
        authorization,
        key: format!("order-{}-{}", order.id, op.as_str()),
        created_ms: ctx.now_ms,
    };
    store::put(
        store,
        PAYMENT_TASKS,
        &[KeyPart::U64(order.id), KeyPart::Str(op.as_str())],
        &task,
    )
}

/// An entry of the hold-expiry index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct HoldEntry {
    expires_at_ms: u64,
    order_id: OrderId,
}

fn schedule_expiry(
    store: &mut dyn StoreMut,
    expires_at_ms: u64,
    order_id: OrderId,
) -> Result<(), StoreFault> {
    let entry = HoldEntry {
        expires_at_ms,
        order_id,
    };
    store::put(
        store,
        HOLD_EXPIRY,
        &[KeyPart::U64(expires_at_ms), KeyPart::U64(order_id)],
        &entry,
    )
}

fn unschedule_expiry(store: &mut dyn StoreMut, expires_at_ms: u64, order_id: OrderId) {
    store.delete_raw(
        HOLD_EXPIRY,
        &[KeyPart::U64(expires_at_ms), KeyPart::U64(order_id)],
    );
}

/// Returns the units of every allocation to available stock.
fn release(
    store: &mut dyn StoreMut,
    order: &mut Order,
    reason: &str,
    ctx: &ApplyContext,
) -> Result<Result<(), DomainError>, StoreFault> {
    if let Hold::Held { expires_at_ms } = order.hold {
        unschedule_expiry(store, expires_at_ms, order.id);
    }
    if matches!(order.hold, Hold::Held { .. } | Hold::Committed) {
        for a in &order.allocations {
            if let Err(e) = inventory::move_stock(store, a, 0, -1, reason, ctx)? {
                return Ok(Err(e));
            }
        }
        order.hold = Hold::Released;
    }
    Ok(Ok(()))
}

fn may_act(actor: &Actor, order: &Order) -> bool {
    actor.is_admin() || actor.user_id == order.customer_id
}

/// Admins ship and deliver; so does a vendor that sells every line of the order.
fn may_fulfil(actor: &Actor, order: &Order) -> bool {
    actor.is_admin()
        || (actor.role == Role::Vendor
            && order
                .lines
                .iter()
                .all(|l| l.vendor_id.as_deref() == Some(actor.user_id.as_str())))
}

/// Loads an order the actor may change; others' orders look absent.
fn load_for(
    store: &dyn Store,
    id: OrderId,
    allowed: impl Fn(&Order) -> bool,
) -> Result<Result<Order, DomainError>, StoreFault> {
    Ok(match get(store, id)? {
        Some(o) if allowed(&o) => Ok(o),
        _ => Err(DomainError::OrderNotFound(id)),
    })
}

fn invalid(order: &Order, to: OrderStatus) -> DomainError {
    DomainError::InvalidTransition {
        from: order.status.as_str().to_string(),
        to: to.as_str().to_string(),
    }
}

macro_rules! domain {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

pub fn apply(
    command: &OrderCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Outcome, StoreFault> {
    match command {
        OrderCommand::Checkout {
            actor,
            cart,
            shipping_address,
            strategy,
            hold_ttl_ms,
            payment_method,
            coupon,
        } => checkout(
            store,
            ctx,
            actor,
            cart,
            shipping_address,
            *strategy,
            *hold_ttl_ms,
            payment_method,
            coupon.as_ref(),
        ),
        OrderCommand::ExtendHold {
            actor,
            order_id,
            ttl_ms,
        } => {
            let mut order = domain!(load_for(store, *order_id, |o| o.is_visible_to(actor)));
            if !may_act(actor, &order) {
                return Ok(Err(DomainError::Forbidden));
            }
            let Hold::Held { expires_at_ms } = order.hold else {
                return Ok(Err(DomainError::HoldNotActive(order.id)));
            };
            let next = ctx.now_ms.saturating_add(*ttl_ms).max(expires_at_ms);
            unschedule_expiry(store, expires_at_ms, order.id);
            schedule_expiry(store, next, order.id)?;
            order.hold = Hold::Held {
                expires_at_ms: next,
            };
            save(store, &mut order, ctx)?;
            Ok(Ok(Response::Order(Box::new(order))))
        }
        OrderCommand::Cancel {
            actor,
            order_id,
            reason,
        } => {
            let mut order = domain!(load_for(store, *order_id, |o| o.is_visible_to(actor)));
            if !may_act(actor, &order) {
                return Ok(Err(DomainError::Forbidden));
            }
            cancel(store, ctx, &mut order, Some(actor), reason)
        }
        OrderCommand::Ship {
            actor,
            order_id,
            carrier,
            tracking_number,
        } => {
            let mut order = domain!(load_for(store, *order_id, |o| o.is_visible_to(actor)));
            if !may_fulfil(actor, &order) {
                return Ok(Err(DomainError::Forbidden));
            }
            if order.status == OrderStatus::Shipped {
                return Ok(Ok(Response::Order(Box::new(order))));
            }
            if !order.status.can_become(OrderStatus::Shipped) {
                return Ok(Err(invalid(&order, OrderStatus::Shipped)));
            }
            for a in &order.allocations {
                domain!(inventory::move_stock(store, a, -1, -1, "shipped", ctx));
            }
            order.hold = Hold::Consumed;
            order.fulfilment = Some(Fulfilment {
                carrier: carrier.clone(),
                tracking_number: tracking_number.clone(),
                shipped_at_ms: ctx.now_ms,
                delivered_at_ms: None,
            });
            transition(
                &mut order,
                OrderStatus::Shipped,
                Some(actor),
                &format!("shipped with {carrier}, tracking {tracking_number}"),
                ctx,
                store,
            );
            if let PaymentStatus::Authorized { authorization } = &order.payment.status {
                enqueue(
                    store,
                    &order,
                    PaymentOp::Capture,
                    Some(authorization.clone()),
                    ctx,
                )?;
            }
            save(store, &mut order, ctx)?;
            Ok(Ok(Response::Order(Box::new(order))))
        }
        OrderCommand::Deliver { actor, order_id } => {
            let mut order = domain!(load_for(store, *order_id, |o| o.is_visible_to(actor)));
            if !may_fulfil(actor, &order) {
                return Ok(Err(DomainError::Forbidden));
            }
            if order.status == OrderStatus::Delivered {
                return Ok(Ok(Response::Order(Box::new(order))));
            }
            if !order.status.can_become(OrderStatus::Delivered) {
                return Ok(Err(invalid(&order, OrderStatus::Delivered)));
            }
            if let Some(f) = &mut order.fulfilment {
                f.delivered_at_ms = Some(ctx.now_ms);
            }
            transition(
                &mut order,
                OrderStatus::Delivered,
                Some(actor),
                "delivered",
                ctx,
                store,
            );
            save(store, &mut order, ctx)?;
            Ok(Ok(Response::Order(Box::new(order))))
        }
        OrderCommand::PaymentResult {
            order_id,
            op,
            result,
        } => payment_result(store, ctx, *order_id, *op, result),
        OrderCommand::ExpireHolds => {
            let due: Vec<HoldEntry> = store.scan(HOLD_EXPIRY, &[], None, EXPIRE_BATCH)?;
            let mut removed: u64 = 0;
            for entry in due {
                if entry.expires_at_ms > ctx.now_ms {
                    break;
                }
                let order = get(store, entry.order_id)?;
                let Some(mut order) = order.filter(|o| matches!(o.hold, Hold::Held { .. })) else {
                    // Not expected (every change of a hold moves its entry), but a
                    // stale entry must not block the ones behind it.
                    unschedule_expiry(store, entry.expires_at_ms, entry.order_id);
                    continue;
                };
                if let Err(e) = cancel(store, ctx, &mut order, None, "reservation expired")? {
                    return Ok(Err(e));
                }
                removed = removed.saturating_add(1);
            }
            Ok(Ok(Response::Expired { removed }))
        }
    }
}

/// Cancels an order from draft, confirmed or paid: releases its stock and
/// queues a void or refund of what was paid. Cancelling a cancelled order is
/// a no-op.
fn cancel(
    store: &mut dyn StoreMut,
    ctx: &ApplyContext,
    order: &mut Order,
    actor: Option<&Actor>,
    reason: &str,
) -> Result<Outcome, StoreFault> {
    if order.status == OrderStatus::Cancelled {
        return Ok(Ok(Response::Order(Box::new(order.clone()))));
    }
    if !order.status.can_become(OrderStatus::Cancelled) {
        return Ok(Err(invalid(order, OrderStatus::Cancelled)));
    }
    domain!(release(store, order, "order cancelled", ctx));
    match order.payment.status.clone() {
        PaymentStatus::Authorized { authorization } => {
            enqueue(store, order, PaymentOp::Void, Some(authorization), ctx)?;
        }
        PaymentStatus::Captured { authorization, .. } => {
            enqueue(store, order, PaymentOp::Refund, Some(authorization), ctx)?;
        }
        // A pending authorization stays queued: if it succeeds, its result
        // finds the order cancelled and queues a void.
        _ => {}
    }
    let reason = if reason.is_empty() {
        "cancelled"
    } else {
        reason
    };
    transition(order, OrderStatus::Cancelled, actor, reason, ctx, store);
    save(store, order, ctx)?;
    Ok(Ok(Response::Order(Box::new(order.clone()))))
}

#[allow(clippy::too_many_arguments)]
fn checkout(
    store: &mut dyn StoreMut,
    ctx: &ApplyContext,
    actor: &Actor,
    cart_owner: &CartOwner,
    address: &Address,
    strategy: Strategy,
    hold_ttl_ms: u64,
    payment_method: &PaymentMethod,
    coupon: Option<&String>,
) -> Result<Outcome, StoreFault> {
    let cart = match cart::get(store, cart_owner)? {
        Some(c) if !c.lines.is_empty() => c,
        _ => return Ok(Err(DomainError::CartEmpty)),
    };
    // Price every line (listing, sale, tier and promotions at the command's
    // time): the order keeps this snapshot.
    let promotions = pricing::promotions(store)?;
    let mut lines = Vec::with_capacity(cart.lines.len());
    let mut subtotal: Option<Money> = None;
    for line in &cart.lines {
        let listing = domain!(cart::sellable(store, &line.sku));
        // A price the listing rules refuse (stored before they were checked
        // in apply) is not sold.
        if let Err(e) = listing.price.check("price") {
            return Ok(Err(e));
        }
        let context = pricing::LineContext::load(store, listing.clone())?;
        let Some(priced) = pricing::price_line(&context, line.quantity, ctx.now_ms, &promotions)
        else {
            return Ok(Err(DomainError::validation(
                "quantity",
                "the line total is too large",
            )));
        };
        let line_total = priced.line_total.clone();
        subtotal = match subtotal {
            None => Some(line_total.clone()),
            Some(s) => match s.plus(&line_total) {
                Some(s) => Some(s),
                None if s.currency != line_total.currency => {
                    return Ok(Err(DomainError::CurrencyMismatch {
                        cart: s.currency.as_str().to_string(),
                        sku: line_total.currency.as_str().to_string(),
                    }))
                }
                None => {
                    return Ok(Err(DomainError::validation(
                        "quantity",
                        "the order total is too large",
                    )))
                }
            },
        };
        lines.push(OrderLine {
            sku: line.sku.as_str().to_string(),
            name: listing.name,
            vendor_id: listing.vendor_id,
            quantity: line.quantity,
            list_price: priced.list_price,
            unit_price: priced.unit_price,
            discount: priced.discount,
            line_total,
            explanation: priced.explanation,
        });
    }
    let Some(subtotal) = subtotal else {
        return Ok(Err(DomainError::CartEmpty));
    };
    let (discount, redeemed) = match coupon {
        None => (Money::zero(subtotal.currency.clone()), None),
        Some(code) => {
            let Some(found) = pricing::get_coupon(store, code)? else {
                return Ok(Err(DomainError::CouponNotFound(code.clone())));
            };
            let uses = pricing::customer_uses(store, code, &actor.user_id)?;
            let discount = match pricing::coupon_discount(&found, &subtotal, ctx.now_ms, uses) {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
            (discount, Some(found))
        }
    };
    // 0 <= discount <= subtotal (`coupon_discount`), so this never fails.
    let Some(amount) = subtotal.amount.checked_sub(discount.amount) else {
        return Ok(Err(DomainError::validation(
            "coupon",
            "the discount is out of range",
        )));
    };
    let total = Money {
        amount,
        currency: subtotal.currency.clone(),
    };
    // Allocate across warehouses; report every line that falls short.
    let mut wanted = Vec::with_capacity(cart.lines.len());
    for line in &cart.lines {
        wanted.push((
            line.sku.clone(),
            line.quantity,
            inventory::candidates(store, &line.sku)?,
        ));
    }
    let allocations = match allocation::allocate(&wanted, strategy, address.location) {
        Ok(a) => a,
        Err(shortages) => return Ok(Err(DomainError::OutOfStock(shortages))),
    };
    let id = ctx.version;
    if let Some(c) = &redeemed {
        pricing::redeem(store, c, &actor.user_id, ctx)?;
    }
    for a in &allocations {
        domain!(inventory::move_stock(
            store,
            a,
            0,
            1,
            &format!("reserved for order {id}"),
            ctx
        ));
    }
    let expires_at_ms = ctx.now_ms.saturating_add(hold_ttl_ms);
    let zero = Money::zero(subtotal.currency.clone());
    let mut order = Order {
        id,
        customer_id: actor.user_id.clone(),
        status: OrderStatus::Draft,
        lines,
        totals: Totals {
            subtotal: subtotal.clone(),
            shipping: zero.clone(),
            discount,
            tax: zero,
            total: total.clone(),
        },
        coupon: redeemed.map(|c| c.code),
        shipping_address: address.clone(),
        allocations,
        hold: Hold::Held { expires_at_ms },
        payment: Payment {
            method: payment_method.clone(),
            amount: total,
            status: PaymentStatus::Pending,
        },
        fulfilment: None,
        timeline: vec![Transition {
            at_ms: ctx.now_ms,
            by: by(Some(actor)),
            from: None,
            to: OrderStatus::Draft,
            reason: "checkout".to_string(),
        }],
        created_ms: ctx.now_ms,
        updated_ms: ctx.now_ms,
        version: ctx.version,
    };
    store.emit(Event::OrderPlaced(Box::new(order.clone())));
    transition(
        &mut order,
        OrderStatus::Confirmed,
        Some(actor),
        "stock reserved",
        ctx,
        store,
    );
    schedule_expiry(store, expires_at_ms, id)?;
    store::put(
        store,
        BY_CUSTOMER,
        &[KeyPart::Str(&order.customer_id), newest_first(id)],
        &id,
    )?;
    store::put(store, BY_TIME, &[newest_first(id)], &id)?;
    for vendor in order.vendors() {
        store::put(
            store,
            BY_VENDOR,
            &[KeyPart::Str(&vendor), newest_first(id)],
            &id,
        )?;
    }
    enqueue(store, &order, PaymentOp::Authorize, None, ctx)?;
    cart::delete(store, &cart);
    save(store, &mut order, ctx)?;
    Ok(Ok(Response::Order(Box::new(order))))
}

fn payment_result(
    store: &mut dyn StoreMut,
    ctx: &ApplyContext,
    order_id: OrderId,
    op: PaymentOp,
    result: &PaymentResult,
) -> Result<Outcome, StoreFault> {
    let task_key = [KeyPart::U64(order_id), KeyPart::Str(op.as_str())];
    let Some(mut order) = get(store, order_id)? else {
        return Ok(Err(DomainError::OrderNotFound(order_id)));
    };
    if store.get_raw(PAYMENT_TASKS, &task_key)?.is_none() {
        // Already settled (a duplicate result): nothing changes.
        return Ok(Ok(Response::Order(Box::new(order))));
    }
    store.delete_raw(PAYMENT_TASKS, &task_key);
    match (op, result) {
        (PaymentOp::Authorize, PaymentResult::Succeeded { reference }) => {
            order.payment.status = PaymentStatus::Authorized {
                authorization: reference.clone(),
            };
            if order.status == OrderStatus::Confirmed {
                if let Hold::Held { expires_at_ms } = order.hold {
                    unschedule_expiry(store, expires_at_ms, order.id);
                }
                order.hold = Hold::Committed;
                transition(
                    &mut order,
                    OrderStatus::Paid,
                    None,
                    "payment authorized",
                    ctx,
                    store,
                );
            } else {
                // The order was cancelled (or its hold expired) meanwhile.
                enqueue(store, &order, PaymentOp::Void, Some(reference.clone()), ctx)?;
            }
        }
        (
            PaymentOp::Authorize,
            PaymentResult::Declined { reason } | PaymentResult::Failed { reason },
        ) => {
            let declined = matches!(result, PaymentResult::Declined { .. });
            order.payment.status = if declined {
                PaymentStatus::Declined {
                    reason: reason.clone(),
                }
            } else {
                PaymentStatus::Failed {
                    reason: reason.clone(),
                }
            };
            if order.status == OrderStatus::Confirmed {
                let why = format!(
                    "payment {}: {reason}",
                    if declined { "declined" } else { "failed" }
                );
                return cancel(store, ctx, &mut order, None, &why);
            }
        }
        (PaymentOp::Capture, PaymentResult::Succeeded { reference }) => {
            if let PaymentStatus::Authorized { authorization } = &order.payment.status {
                order.payment.status = PaymentStatus::Captured {
                    authorization: authorization.clone(),
                    capture: reference.clone(),
                };
            }
        }
        (PaymentOp::Void, PaymentResult::Succeeded { .. }) => {
            order.payment.status = PaymentStatus::Voided;
        }
        (PaymentOp::Refund, PaymentResult::Succeeded { reference }) => {
            order.payment.status = PaymentStatus::Refunded {
                refund: reference.clone(),
            };
        }
        (op, PaymentResult::Declined { reason } | PaymentResult::Failed { reason }) => {
            order.payment.status = PaymentStatus::ActionFailed {
                operation: op,
                reason: reason.clone(),
            };
        }
    }
    store.emit(Event::PaymentUpdated {
        order_id: order.id,
        status: order.payment.status.clone(),
    });
    save(store, &mut order, ctx)?;
    Ok(Ok(Response::Order(Box::new(order))))
}

// ---- queries ----

/// Which orders a listing walks.
pub enum Scope<'a> {
    Customer(&'a str),
    Vendor(&'a str),
    All,
}

/// Filters of an order listing.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<OrderStatus>,
    pub created_from_ms: Option<u64>,
    pub created_to_ms: Option<u64>,
}

/// Most index entries one listing call examines, so a filter that matches
/// little cannot make one request walk every order.
pub const MAX_EXAMINED: usize = 10_000;

/// Orders newest first, starting after order `before` (exclusive), at most
/// `limit` matching `filter`; with the id to continue from if more may follow.
pub fn list(
    store: &dyn Store,
    scope: Scope<'_>,
    filter: &Filter,
    before: Option<OrderId>,
    limit: usize,
) -> Result<(Vec<Order>, Option<OrderId>), StoreFault> {
    let (table, owner) = match scope {
        Scope::Customer(c) => (BY_CUSTOMER, Some(c)),
        Scope::Vendor(v) => (BY_VENDOR, Some(v)),
        Scope::All => (BY_TIME, None),
    };
    let prefix: Vec<KeyPart<'_>> = owner.map(KeyPart::Str).into_iter().collect();
    let mut after: Option<Vec<KeyPart<'_>>> = before.map(|id| {
        let mut k = prefix.clone();
        k.push(newest_first(id));
        k
    });
    let mut out = Vec::new();
    let mut examined: usize = 0;
    const PAGE: usize = 256;
    loop {
        let ids: Vec<OrderId> = store.scan(table, &prefix, after.as_deref(), PAGE)?;
        for id in &ids {
            examined = examined.saturating_add(1);
            let Some(order) = get(store, *id)? else {
                continue;
            };
            if filter.created_to_ms.is_some_and(|to| order.created_ms > to) {
                continue;
            }
            if filter
                .created_from_ms
                .is_some_and(|from| order.created_ms < from)
            {
                // Newest first: everything after this is older still.
                return Ok((out, None));
            }
            if filter.status.is_none_or(|s| s == order.status) {
                out.push(order);
                if out.len() == limit {
                    return Ok((out, Some(*id)));
                }
            }
            if examined >= MAX_EXAMINED {
                return Ok((out, Some(*id)));
            }
        }
        let Some(last) = ids.last() else {
            return Ok((out, None));
        };
        if ids.len() < PAGE {
            return Ok((out, None));
        }
        let mut k = prefix.clone();
        k.push(newest_first(*last));
        after = Some(k);
    }
}

/// Pending payment tasks, oldest orders first, for the leader's worker.
pub fn payment_tasks(store: &dyn Store, limit: usize) -> Result<Vec<PaymentTask>, StoreFault> {
    store.scan(PAYMENT_TASKS, &[], None, limit)
}

/// The earliest hold expiry, for the leader's sweeper.
pub fn next_hold_expiry(store: &dyn Store) -> Result<Option<u64>, StoreFault> {
    let first: Vec<HoldEntry> = store.scan(HOLD_EXPIRY, &[], None, 1)?;
    Ok(first.first().map(|e| e.expires_at_ms))
}

#[cfg(test)]
mod tests;
