//! Checkout and orders: place an order from the caller's cart, read and list
//! the orders a caller may see, and move an order through its workflow
//! (cancel, extend its hold, ship, deliver). REST and gRPC both come here
//! with domain types; what a caller may see of an order (a vendor sees only
//! its own lines) is decided here and in the domain, never by a transport.

use ecommerce_domains::allocation::Strategy;
use ecommerce_domains::cart::CartOwner;
use ecommerce_domains::idempotency::IdempotencyTag;
use ecommerce_domains::order::{self, Address, Order, OrderCommand, OrderId, OrderStatus};
use ecommerce_domains::{Actor, DomainError, Response, Role};
use serde::Serialize;

use super::{unexpected, App, AppError, AppResult, Consistency, Rendered};
use crate::app::ErrorCode;
use crate::payments::PaymentInput;

/// A checkout as a client asks for it. Serialized, it is the request's
/// idempotency fingerprint, the same over REST and gRPC.
#[derive(Debug, Clone, Serialize)]
pub struct CheckoutRequest {
    pub shipping_address: Address,
    pub strategy: Strategy,
    /// How long the stock is held for payment; the shop's default if `None`.
    pub hold_ttl_secs: Option<u64>,
    pub payment: PaymentInput,
    /// A coupon code as typed; its limits are checked and counted
    /// atomically with the order.
    pub coupon: Option<String>,
}

impl CheckoutRequest {
    /// Refuses a checkout that carries anything looking like a card number,
    /// in any field (`raw_card_data_refused`): the node takes provider
    /// tokens only. Both transports call it before the request is
    /// fingerprinted, so nothing of it is stored.
    pub fn refuse_card_data(self) -> AppResult<Self> {
        let a = &self.shipping_address;
        let mut texts: Vec<&str> = vec![&a.name, &a.line1, &a.city, &a.postal_code, &a.country];
        texts.extend(a.line2.as_deref());
        texts.extend(self.coupon.as_deref());
        match &self.payment {
            PaymentInput::Token(t) | PaymentInput::Method(t) => texts.push(t),
        }
        if texts
            .iter()
            .any(|t| crate::payments::looks_like_card_number(t))
        {
            return Err(raw_card_data_refused());
        }
        Ok(self)
    }
}

/// `raw_card_data_refused`: card numbers never reach the node.
pub fn raw_card_data_refused() -> AppError {
    AppError::new(
        ErrorCode::RawCardDataRefused,
        "card data is refused: give the card to the payment provider (its hosted fields or \
         SDK) and send the token it returns as payment.token",
    )
}

/// Cancelling an order. Like every request type here, its serialized form
/// is the request's idempotency fingerprint, the same over REST and gRPC.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CancelRequest {
    /// Up to 500 characters, kept in the timeline.
    pub reason: Option<String>,
}

/// Extending the hold of an order's stock.
#[derive(Debug, Clone, Serialize)]
pub struct ExtendHoldRequest {
    /// New hold length from now, up to `commerce.max_hold_ttl_secs`.
    pub ttl_secs: u64,
}

/// Shipping an order.
#[derive(Debug, Clone, Serialize)]
pub struct ShipRequest {
    pub carrier: String,
    pub tracking_number: String,
}

/// An order id as clients write it; `order_not_found` for anything else.
pub fn order_id(raw: &str) -> AppResult<OrderId> {
    match raw.parse::<OrderId>() {
        Ok(id) if id != 0 => Ok(id),
        _ => Err(DomainError::OrderNotFound(0).into()),
    }
}

/// Which orders a listing returns.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    pub status: Option<OrderStatus>,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    /// Admins only: this customer's orders.
    pub customer_id: Option<String>,
    /// Continue after this order id.
    pub after: Option<OrderId>,
    /// 1 to 100.
    pub limit: usize,
    pub consistency: Consistency,
}

/// The order a command answered, as `actor` may see it.
fn visible_order(actor: &Actor) -> impl FnOnce(Response) -> AppResult<Order> + '_ {
    move |reply| match reply {
        Response::Order(o) => o
            .visible_to(actor)
            .ok_or_else(|| DomainError::OrderNotFound(o.id).into()),
        other => Err(unexpected(other)),
    }
}

/// Trimmed text of 1 to `max` characters.
fn short_text(field: &str, raw: &str, max: usize) -> AppResult<String> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > max {
        return Err(
            DomainError::validation(field, format!("must be 1 to {max} characters")).into(),
        );
    }
    Ok(t.to_string())
}

impl App {
    /// Places an order from `actor`'s cart: prices it, reserves stock across
    /// warehouses, creates the order and empties the cart, all or nothing.
    /// The payment is then authorized in the background.
    pub async fn checkout(
        &self,
        actor: &Actor,
        request: CheckoutRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Order>> {
        let commerce = &self.settings.commerce;
        let hold_ttl_ms = order::hold_ttl_ms(
            "hold_ttl_secs",
            request.hold_ttl_secs.unwrap_or(commerce.hold_ttl_secs),
            commerce.max_hold_ttl_secs,
        )?;
        order::check_strategy(request.strategy, &request.shipping_address)?;
        let payment_method = self
            .payments
            .payment_method(&request.payment)
            .map_err(|e| AppError::new(ErrorCode::InvalidCard, e.to_string()))?;
        let coupon = request
            .coupon
            .as_deref()
            .map(ecommerce_domains::pricing::parse_code)
            .transpose()?;
        let command = OrderCommand::Checkout {
            actor: actor.clone(),
            cart: CartOwner::User(actor.user_id.clone()),
            shipping_address: request.shipping_address,
            strategy: request.strategy,
            hold_ttl_ms,
            payment_method,
            coupon,
        };
        self.propose_order(actor, command, tag).await
    }

    /// Cancels an order (draft, confirmed or paid): its stock is released
    /// and a payment voided or refunded. Cancelling again is a no-op.
    pub async fn cancel_order(
        &self,
        actor: &Actor,
        order_id: OrderId,
        request: &CancelRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Order>> {
        let reason = match &request.reason {
            Some(r) => short_text("reason", r, 500)?,
            None => String::new(),
        };
        let command = OrderCommand::Cancel {
            actor: actor.clone(),
            order_id,
            reason,
        };
        self.propose_order(actor, command, tag).await
    }

    /// Keeps a confirmed order's stock reserved for `ttl_secs` more.
    pub async fn extend_hold(
        &self,
        actor: &Actor,
        order_id: OrderId,
        request: &ExtendHoldRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Order>> {
        let max = self.settings.commerce.max_hold_ttl_secs;
        let command = OrderCommand::ExtendHold {
            actor: actor.clone(),
            order_id,
            ttl_ms: order::hold_ttl_ms("ttl_secs", request.ttl_secs, max)?,
        };
        self.propose_order(actor, command, tag).await
    }

    /// Ships a paid order (admins, or the vendor selling every line): its
    /// units leave the warehouses and the payment is captured.
    pub async fn ship_order(
        &self,
        actor: &Actor,
        order_id: OrderId,
        request: &ShipRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Order>> {
        let command = OrderCommand::Ship {
            actor: actor.clone(),
            order_id,
            carrier: short_text("carrier", &request.carrier, 100)?,
            tracking_number: short_text("tracking_number", &request.tracking_number, 100)?,
        };
        self.propose_order(actor, command, tag).await
    }

    /// Marks a shipped order delivered.
    pub async fn deliver_order(
        &self,
        actor: &Actor,
        order_id: OrderId,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Order>> {
        let command = OrderCommand::Deliver {
            actor: actor.clone(),
            order_id,
        };
        self.propose_order(actor, command, tag).await
    }

    /// An order as `actor` may see it; `order_not_found` if it may not.
    pub async fn find_order(
        &self,
        actor: &Actor,
        id: OrderId,
        consistency: Consistency,
    ) -> AppResult<Order> {
        let reader = self.read(consistency).await?;
        order::get(&reader, id)?
            .and_then(|o| o.visible_to(actor))
            .ok_or_else(|| DomainError::OrderNotFound(id).into())
    }

    /// A page of the orders `actor` may see (each as it may see it), newest
    /// first: a customer's own, a vendor's (only its lines), or for admins
    /// everyone's; and the id to continue after.
    pub async fn list_orders(
        &self,
        actor: &Actor,
        query: &OrderQuery,
    ) -> AppResult<(Vec<Order>, Option<OrderId>)> {
        if !(1..=100).contains(&query.limit) {
            return Err(AppError::new(
                ErrorCode::InvalidQuery,
                "limit must be between 1 and 100",
            ));
        }
        let scope = match (actor.role, query.customer_id.as_deref()) {
            (Role::Admin, Some(c)) => order::Scope::Customer(c),
            (Role::Admin, None) => order::Scope::All,
            (_, Some(_)) => return Err(DomainError::Forbidden.into()),
            (Role::Vendor, None) => order::Scope::Vendor(&actor.user_id),
            (Role::Customer, None) => order::Scope::Customer(&actor.user_id),
        };
        let filter = order::Filter {
            status: query.status,
            created_from_ms: query.from_ms,
            created_to_ms: query.to_ms,
        };
        let reader = self.read(query.consistency).await?;
        let (orders, next) = order::list(&reader, scope, &filter, query.after, query.limit)?;
        let visible = orders.iter().filter_map(|o| o.visible_to(actor)).collect();
        Ok((visible, next))
    }

    /// Proposes an order command: the order as `actor` may see it, or the
    /// refusal.
    async fn propose_order(
        &self,
        actor: &Actor,
        command: OrderCommand,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Order>> {
        let committed = self.propose(command.into(), tag).await?;
        Ok(committed.render(visible_order(actor)))
    }
}
