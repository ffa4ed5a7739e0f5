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
use crate::command::{ApplyContext, Response};
use crate::inventory::{self, Location};
use crate::money::Money;
use crate::pricing;
use crate::store::{self, KeyPart, Store, StoreExt, StoreFault, StoreMut};
use crate::{Actor, ApplyError, DomainError, Event, Role};

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
) -> Result<(), ApplyError> {
    if let Hold::Held { expires_at_ms } = order.hold {
        unschedule_expiry(store, expires_at_ms, order.id);
    }
    if matches!(order.hold, Hold::Held { .. } | Hold::Committed) {
        for a in &order.allocations {
            inventory::move_stock(store, a, 0, -1, reason, ctx)?;
        }
        order.hold = Hold::Released;
    }
    Ok(())
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
) -> Result<Order, ApplyError> {
    match get(store, id)? {
        Some(o) if allowed(&o) => Ok(o),
        _ => Err(DomainError::OrderNotFound(id).into()),
    }
}

fn invalid(order: &Order, to: OrderStatus) -> DomainError {
    DomainError::InvalidTransition {
        from: order.status.as_str().to_string(),
        to: to.as_str().to_string(),
    }
}

mod checkout;
mod model;
mod payment;
mod query;

pub use model::*;
pub use query::*;

pub fn apply(
    command: &OrderCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Response, ApplyError> {
    match command {
        OrderCommand::Checkout {
            actor,
            cart,
            shipping_address,
            strategy,
            hold_ttl_ms,
            payment_method,
            coupon,
        } => checkout::checkout(
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
            let mut order = load_for(store, *order_id, |o| o.is_visible_to(actor))?;
            if !may_act(actor, &order) {
                return Err(DomainError::Forbidden.into());
            }
            let Hold::Held { expires_at_ms } = order.hold else {
                return Err(DomainError::HoldNotActive(order.id).into());
            };
            let next = ctx.now_ms.saturating_add(*ttl_ms).max(expires_at_ms);
            unschedule_expiry(store, expires_at_ms, order.id);
            schedule_expiry(store, next, order.id)?;
            order.hold = Hold::Held {
                expires_at_ms: next,
            };
            save(store, &mut order, ctx)?;
            Ok(Response::Order(Box::new(order)))
        }
        OrderCommand::Cancel {
            actor,
            order_id,
            reason,
        } => {
            let mut order = load_for(store, *order_id, |o| o.is_visible_to(actor))?;
            if !may_act(actor, &order) {
                return Err(DomainError::Forbidden.into());
            }
            cancel(store, ctx, &mut order, Some(actor), reason)
        }
        OrderCommand::Ship {
            actor,
            order_id,
            carrier,
            tracking_number,
        } => {
            let mut order = load_for(store, *order_id, |o| o.is_visible_to(actor))?;
            if !may_fulfil(actor, &order) {
                return Err(DomainError::Forbidden.into());
            }
            if order.status == OrderStatus::Shipped {
                return Ok(Response::Order(Box::new(order)));
            }
            if !order.status.can_become(OrderStatus::Shipped) {
                return Err(invalid(&order, OrderStatus::Shipped).into());
            }
            for a in &order.allocations {
                inventory::move_stock(store, a, -1, -1, "shipped", ctx)?;
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
            Ok(Response::Order(Box::new(order)))
        }
        OrderCommand::Deliver { actor, order_id } => {
            let mut order = load_for(store, *order_id, |o| o.is_visible_to(actor))?;
            if !may_fulfil(actor, &order) {
                return Err(DomainError::Forbidden.into());
            }
            if order.status == OrderStatus::Delivered {
                return Ok(Response::Order(Box::new(order)));
            }
            if !order.status.can_become(OrderStatus::Delivered) {
                return Err(invalid(&order, OrderStatus::Delivered).into());
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
            Ok(Response::Order(Box::new(order)))
        }
        OrderCommand::PaymentResult {
            order_id,
            op,
            result,
        } => payment::payment_result(store, ctx, *order_id, *op, result),
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
                cancel(store, ctx, &mut order, None, "reservation expired")?;
                removed = removed.saturating_add(1);
            }
            Ok(Response::Expired { removed })
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
) -> Result<Response, ApplyError> {
    if order.status == OrderStatus::Cancelled {
        return Ok(Response::Order(Box::new(order.clone())));
    }
    if !order.status.can_become(OrderStatus::Cancelled) {
        return Err(invalid(order, OrderStatus::Cancelled).into());
    }
    release(store, order, "order cancelled", ctx)?;
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
    Ok(Response::Order(Box::new(order.clone())))
}

#[cfg(test)]
mod tests;
