//! Checkout and orders: place an order from the cart, follow it, and move it
//! through the workflow (cancel, extend its hold, ship, deliver).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ecommerce_domains::allocation::Strategy;
use ecommerce_domains::cart::CartOwner;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::inventory::Location;
use ecommerce_domains::order::{
    self, Address, Hold, Order, OrderCommand, OrderId, OrderStatus, PaymentMethod, PaymentStatus,
};
use ecommerce_domains::{Actor, Command, DomainError, Response as Reply, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::SignedIn;
use super::error::{AppError, AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, Consistency, MutationMeta, ReadParams};
use super::inventory::LocationDto;
use super::listings::MoneyDto;
use super::{unexpected, App, Rendered};
use crate::config::CommerceSettings;
use crate::payments::sandbox;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressDto {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `FR`.
    pub country: String,
    /// Lets the `nearest` allocation strategy pick the closest warehouse.
    pub location: Option<LocationDto>,
}

impl AddressDto {
    fn parse(self) -> AppResult<Address> {
        let location = self
            .location
            .map(|l| Location::parse(l.lat, l.lon))
            .transpose()?;
        Ok(Address {
            name: self.name,
            line1: self.line1,
            line2: self.line2,
            city: self.city,
            postal_code: self.postal_code,
            country: self.country,
            location,
        }
        .validate()?)
    }
}

impl From<Address> for AddressDto {
    fn from(a: Address) -> Self {
        Self {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
            location: a.location.map(|l| LocationDto {
                lat: l.lat,
                lon: l.lon,
            }),
        }
    }
}

/// A card (sandbox test numbers: see docs/api.md). Only a reference and the
/// last four digits are kept.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardDto {
    pub number: String,
    pub exp_month: u32,
    pub exp_year: u32,
    pub cvc: String,
}

/// Exactly one of `card` or `method` (a provider's payment-method reference).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    pub card: Option<CardDto>,
    pub method: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    pub shipping_address: AddressDto,
    pub payment: PaymentBody,
    /// `priority` (default), `nearest` or `highest_stock`.
    pub allocation_strategy: Option<String>,
    /// How long the stock is held for payment; default `commerce.hold_ttl_secs`.
    pub hold_ttl_secs: Option<u64>,
    /// A coupon code; its limits are checked and counted atomically with the order.
    pub coupon: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderLineDto {
    pub sku: String,
    pub name: String,
    pub vendor_id: Option<String>,
    pub quantity: u64,
    /// List price when the order was placed.
    pub list_price: MoneyDto,
    /// After sale and tiered prices.
    pub unit_price: MoneyDto,
    /// Taken off by promotions.
    pub discount: MoneyDto,
    pub line_total: MoneyDto,
    /// How the price was reached, rule by rule.
    pub explanation: Vec<PriceStepDto>,
}

/// One rule applied to a line's price.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PriceStepDto {
    /// `list_price`, `sale_price`, `tier_price`, `percent` or `amount_off`.
    pub rule: String,
    pub promotion_id: Option<String>,
    pub description: String,
    /// The line amount after this rule.
    pub line_amount: i64,
}

impl From<ecommerce_domains::pricing::Step> for PriceStepDto {
    fn from(s: ecommerce_domains::pricing::Step) -> Self {
        Self {
            rule: s.rule,
            promotion_id: s.promotion_id,
            description: s.description,
            line_amount: s.line_amount,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TotalsDto {
    pub subtotal: MoneyDto,
    pub shipping: MoneyDto,
    pub discount: MoneyDto,
    pub tax: MoneyDto,
    pub total: MoneyDto,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AllocationDto {
    pub sku: String,
    pub warehouse_id: String,
    pub quantity: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HoldDto {
    /// `held`, `committed` (paid), `consumed` (shipped) or `released`.
    pub state: &'static str,
    pub expires_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentDto {
    pub provider: String,
    /// e.g. "visa •••• 4242".
    pub method: String,
    pub amount: MoneyDto,
    /// `pending`, `authorized`, `captured`, `declined`, `failed`, `voided`,
    /// `refunded` or `action_failed`.
    pub status: &'static str,
    pub authorization: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FulfilmentDto {
    pub carrier: String,
    pub tracking_number: String,
    pub shipped_at_ms: u64,
    pub delivered_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransitionDto {
    pub at_ms: u64,
    /// `user:<id>` or `system`.
    pub by: String,
    pub from: Option<&'static str>,
    pub to: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderDto {
    pub id: String,
    pub customer_id: String,
    /// `draft`, `confirmed`, `paid`, `shipped`, `delivered` or `cancelled`.
    pub status: &'static str,
    pub lines: Vec<OrderLineDto>,
    /// `total` = sum of the lines' `line_total` − `discount` (the coupon's).
    pub totals: TotalsDto,
    /// The coupon redeemed with this order.
    pub coupon: Option<String>,
    pub shipping_address: AddressDto,
    pub allocations: Vec<AllocationDto>,
    pub hold: HoldDto,
    pub payment: PaymentDto,
    pub fulfilment: Option<FulfilmentDto>,
    pub timeline: Vec<TransitionDto>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub version: u64,
}

fn payment_dto(p: order::Payment) -> PaymentDto {
    let (status, authorization, reason) = match p.status {
        PaymentStatus::Pending => ("pending", None, None),
        PaymentStatus::Authorized { authorization } => ("authorized", Some(authorization), None),
        PaymentStatus::Captured { authorization, .. } => ("captured", Some(authorization), None),
        PaymentStatus::Declined { reason } => ("declined", None, Some(reason)),
        PaymentStatus::Failed { reason } => ("failed", None, Some(reason)),
        PaymentStatus::Voided => ("voided", None, None),
        PaymentStatus::Refunded { .. } => ("refunded", None, None),
        PaymentStatus::ActionFailed { operation, reason } => (
            "action_failed",
            None,
            Some(format!("{operation:?} failed: {reason}").to_lowercase()),
        ),
    };
    PaymentDto {
        provider: p.method.provider,
        method: p.method.display,
        amount: p.amount.into(),
        status,
        authorization,
        reason,
    }
}

impl From<Order> for OrderDto {
    fn from(o: Order) -> Self {
        let hold = match o.hold {
            Hold::Held { expires_at_ms } => HoldDto {
                state: "held",
                expires_at_ms: Some(expires_at_ms),
            },
            Hold::Committed => HoldDto {
                state: "committed",
                expires_at_ms: None,
            },
            Hold::Consumed => HoldDto {
                state: "consumed",
                expires_at_ms: None,
            },
            Hold::Released => HoldDto {
                state: "released",
                expires_at_ms: None,
            },
        };
        Self {
            id: o.id.to_string(),
            customer_id: o.customer_id,
            status: o.status.as_str(),
            lines: o
                .lines
                .into_iter()
                .map(|l| OrderLineDto {
                    sku: l.sku,
                    name: l.name,
                    vendor_id: l.vendor_id,
                    quantity: l.quantity,
                    list_price: l.list_price.into(),
                    unit_price: l.unit_price.into(),
                    discount: l.discount.into(),
                    line_total: l.line_total.into(),
                    explanation: l.explanation.into_iter().map(Into::into).collect(),
                })
                .collect(),
            totals: TotalsDto {
                subtotal: o.totals.subtotal.into(),
                shipping: o.totals.shipping.into(),
                discount: o.totals.discount.into(),
                tax: o.totals.tax.into(),
                total: o.totals.total.into(),
            },
            coupon: o.coupon,
            shipping_address: o.shipping_address.into(),
            allocations: o
                .allocations
                .into_iter()
                .map(|a| AllocationDto {
                    sku: a.sku.as_str().to_string(),
                    warehouse_id: a.warehouse_id.as_str().to_string(),
                    quantity: a.quantity,
                })
                .collect(),
            hold,
            payment: payment_dto(o.payment),
            fulfilment: o.fulfilment.map(|f| FulfilmentDto {
                carrier: f.carrier,
                tracking_number: f.tracking_number,
                shipped_at_ms: f.shipped_at_ms,
                delivered_at_ms: f.delivered_at_ms,
            }),
            timeline: o
                .timeline
                .into_iter()
                .map(|t| TransitionDto {
                    at_ms: t.at_ms,
                    by: t.by,
                    from: t.from.map(OrderStatus::as_str),
                    to: t.to.as_str(),
                    reason: t.reason,
                })
                .collect(),
            created_ms: o.created_ms,
            updated_ms: o.updated_ms,
            version: o.version,
        }
    }
}

/// The order a command answered, as `actor` may see it.
pub fn visible_order(actor: &Actor) -> impl FnOnce(Reply) -> AppResult<Order> + '_ {
    move |reply| match reply {
        Reply::Order(o) => o
            .visible_to(actor)
            .ok_or_else(|| DomainError::OrderNotFound(o.id).into()),
        other => Err(unexpected(other)),
    }
}

/// Proposes an order command: the order as `actor` may see it, or the refusal.
pub async fn propose_order(
    state: &App,
    actor: &Actor,
    command: OrderCommand,
    tag: Option<ecommerce_domains::idempotency::IdempotencyTag>,
) -> AppResult<Rendered<Order>> {
    let committed = state.propose(Command::Order(command), tag).await?;
    Ok(committed.render(visible_order(actor)))
}

/// (year, month) of the node's clock, for card expiry.
fn this_month() -> (u32, u32) {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Civil-from-days (H. Hinnant), valid for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as u32, month as u32)
}

fn payment_method(body: &PaymentBody) -> AppResult<PaymentMethod> {
    match (&body.card, &body.method) {
        (Some(card), None) => sandbox::tokenize(
            &card.number,
            card.exp_month,
            card.exp_year,
            &card.cvc,
            this_month(),
        )
        .map_err(|e| AppError::new("invalid_card", e.to_string())),
        (None, Some(method)) if sandbox::METHODS.contains(&method.as_str()) => Ok(PaymentMethod {
            provider: sandbox::NAME.to_string(),
            reference: method.clone(),
            display: method.clone(),
        }),
        (None, Some(_)) => Err(AppError::new("invalid_card", "unknown payment method")),
        _ => Err(DomainError::validation("payment", "give exactly one of card or method").into()),
    }
}

/// Place an order from the caller's cart: price it, reserve stock across
/// warehouses, create the order and empty the cart, all or nothing. The
/// payment is then authorized in the background (`payment.status`).
#[utoipa::path(post, path = "/api/v1/checkout", tag = "orders", request_body = CheckoutBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "strongly recommended: a retry with the same key places one order")),
    responses((status = 201, body = OrderDto), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "insufficient_stock: details.lines lists every short line"),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody)))]
pub async fn checkout(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    meta: MutationMeta,
    AppJson(body): AppJson<CheckoutBody>,
) -> AppResult<Response> {
    let command = body.command(&state.settings.commerce, &actor)?;
    let mut response = propose_order(
        &state,
        &actor,
        command,
        meta.tag(&Principal::from(&actor), &body),
    )
    .await?
    .map(OrderDto::from)
    .into_response();
    if response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::CREATED;
    }
    Ok(response)
}

/// A hold length in ms, from `secs` between 1 and `max_secs`.
fn hold_ttl_ms(field: &str, secs: u64, max_secs: u64) -> AppResult<u64> {
    if !(1..=max_secs).contains(&secs) {
        return Err(
            DomainError::validation(field, format!("must be between 1 and {max_secs}")).into(),
        );
    }
    Ok(secs * 1000)
}

impl CheckoutBody {
    /// The command placing `actor`'s cart as an order.
    pub fn command(&self, settings: &CommerceSettings, actor: &Actor) -> AppResult<OrderCommand> {
        let strategy = match self.allocation_strategy.as_deref() {
            None => Strategy::default(),
            Some(raw) => Strategy::parse(raw).ok_or_else(|| {
                DomainError::validation(
                    "allocation_strategy",
                    "must be priority, nearest or highest_stock",
                )
            })?,
        };
        let hold_ttl_ms = hold_ttl_ms(
            "hold_ttl_secs",
            self.hold_ttl_secs.unwrap_or(settings.hold_ttl_secs),
            settings.max_hold_ttl_secs,
        )?;
        let shipping_address = self.shipping_address.clone().parse()?;
        if strategy == Strategy::Nearest && shipping_address.location.is_none() {
            return Err(DomainError::validation(
                "shipping_address.location",
                "the nearest strategy needs the address's location",
            )
            .into());
        }
        Ok(OrderCommand::Checkout {
            actor: actor.clone(),
            cart: CartOwner::User(actor.user_id.clone()),
            shipping_address,
            strategy,
            hold_ttl_ms,
            payment_method: payment_method(&self.payment)?,
            coupon: self
                .coupon
                .as_deref()
                .map(ecommerce_domains::pricing::parse_code)
                .transpose()?,
        })
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrderListParams {
    /// Only orders in this status.
    pub status: Option<String>,
    /// Only orders placed at or after this time (ms since the epoch).
    pub from_ms: Option<u64>,
    /// Only orders placed at or before this time (ms since the epoch).
    pub to_ms: Option<u64>,
    /// Admins: only this customer's orders.
    pub customer_id: Option<String>,
    /// Continue after this order id (`next_after` of the previous page).
    pub after: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<usize>,
    pub consistency: Option<Consistency>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    /// Newest first.
    pub items: Vec<OrderDto>,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

fn order_id(raw: &str) -> AppResult<OrderId> {
    raw.parse()
        .map_err(|_| DomainError::OrderNotFound(0).into())
        .and_then(|id: OrderId| {
            if id == 0 {
                Err(DomainError::OrderNotFound(0).into())
            } else {
                Ok(id)
            }
        })
}

/// List orders, newest first: a customer's own, a vendor's (only its lines),
/// or, for admins, everyone's.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderListParams),
    responses((status = 200, body = OrderList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_orders(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppQuery(params): AppQuery<OrderListParams>,
) -> AppResult<Json<OrderList>> {
    let (orders, next) = list_visible(&state, &actor, &params).await?;
    Ok(Json(OrderList {
        items: orders.into_iter().map(OrderDto::from).collect(),
        next_after: next.map(|id| id.to_string()),
    }))
}

/// A page of the orders `actor` may see (each as it may see it), newest
/// first, and the id to continue after.
pub async fn list_visible(
    state: &App,
    actor: &Actor,
    params: &OrderListParams,
) -> AppResult<(Vec<Order>, Option<OrderId>)> {
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(AppError::new(
            "invalid_query",
            "limit must be between 1 and 100",
        ));
    }
    let status = params
        .status
        .as_deref()
        .map(|s| {
            OrderStatus::parse(s).ok_or_else(|| {
                AppError::new(
                    "invalid_query",
                    "status must be draft, confirmed, paid, shipped, delivered or cancelled",
                )
            })
        })
        .transpose()?;
    let after = params
        .after
        .as_deref()
        .map(|a| {
            a.parse::<OrderId>()
                .map_err(|_| AppError::new("invalid_query", "after must be an order id"))
        })
        .transpose()?;
    let scope = match (actor.role, params.customer_id.as_deref()) {
        (Role::Admin, Some(c)) => order::Scope::Customer(c),
        (Role::Admin, None) => order::Scope::All,
        (_, Some(_)) => return Err(super::auth::forbidden()),
        (Role::Vendor, None) => order::Scope::Vendor(&actor.user_id),
        (Role::Customer, None) => order::Scope::Customer(&actor.user_id),
    };
    let filter = order::Filter {
        status,
        created_from_ms: params.from_ms,
        created_to_ms: params.to_ms,
    };
    let reader = state.read(params.consistency.unwrap_or_default()).await?;
    let (orders, next) = order::list(&reader, scope, &filter, after, limit)?;
    let visible = orders.iter().filter_map(|o| o.visible_to(actor)).collect();
    Ok((visible, next))
}

/// Read one order with its lines, allocations, payment and timeline.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = String, Path), ReadParams),
    responses((status = 200, body = OrderDto), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_order(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppPath(raw): AppPath<String>,
    AppQuery(params): AppQuery<ReadParams>,
) -> AppResult<Json<OrderDto>> {
    let consistency = params.consistency.unwrap_or_default();
    let order = find_order(&state, &actor, &raw, consistency).await?;
    Ok(Json(order.into()))
}

/// Order `raw_id` as `actor` may see it; `order_not_found` if it may not.
pub async fn find_order(
    state: &App,
    actor: &Actor,
    raw_id: &str,
    consistency: Consistency,
) -> AppResult<Order> {
    let id = order_id(raw_id)?;
    let reader = state.read(consistency).await?;
    order::get(&reader, id)?
        .and_then(|o| o.visible_to(actor))
        .ok_or_else(|| DomainError::OrderNotFound(id).into())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Up to 500 characters, kept in the timeline.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipBody {
    pub carrier: String,
    pub tracking_number: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendHoldBody {
    /// New hold length from now, up to `commerce.max_hold_ttl_secs`.
    pub ttl_secs: u64,
}

async fn transition(
    state: &App,
    actor: &Actor,
    command: OrderCommand,
    tag: Option<ecommerce_domains::idempotency::IdempotencyTag>,
) -> AppResult<Response> {
    let rendered = propose_order(state, actor, command, tag).await?;
    Ok(rendered.map(OrderDto::from).into_response())
}

fn short_text(field: &str, raw: &str, max: usize) -> AppResult<String> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > max {
        return Err(
            DomainError::validation(field, format!("must be 1 to {max} characters")).into(),
        );
    }
    Ok(t.to_string())
}

/// Cancel an order (draft, confirmed or paid): its stock is released and a
/// payment is voided or refunded. Cancelling again is a no-op.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", request_body = CancelBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = OrderDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_order(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppPath(raw): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<CancelBody>,
) -> AppResult<Response> {
    let command = body.command(&actor, &raw)?;
    transition(
        &state,
        &actor,
        command,
        meta.tag(&Principal::from(&actor), &body),
    )
    .await
}

impl CancelBody {
    /// The command cancelling order `raw_id`.
    pub fn command(&self, actor: &Actor, raw_id: &str) -> AppResult<OrderCommand> {
        let reason = match &self.reason {
            Some(r) => short_text("reason", r, 500)?,
            None => String::new(),
        };
        Ok(OrderCommand::Cancel {
            actor: actor.clone(),
            order_id: order_id(raw_id)?,
            reason,
        })
    }
}

/// Keep a confirmed order's stock reserved for `ttl_secs` more (e.g. while a
/// payment needs extra verification).
#[utoipa::path(post, path = "/api/v1/orders/{id}/extend-hold", tag = "orders", request_body = ExtendHoldBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = OrderDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn extend_hold(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppPath(raw): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<ExtendHoldBody>,
) -> AppResult<Response> {
    let command = body.command(&state.settings.commerce, &actor, &raw)?;
    transition(
        &state,
        &actor,
        command,
        meta.tag(&Principal::from(&actor), &body),
    )
    .await
}

impl ExtendHoldBody {
    /// The command extending the hold of order `raw_id`.
    pub fn command(
        &self,
        settings: &CommerceSettings,
        actor: &Actor,
        raw_id: &str,
    ) -> AppResult<OrderCommand> {
        let ttl_ms = hold_ttl_ms("ttl_secs", self.ttl_secs, settings.max_hold_ttl_secs)?;
        Ok(OrderCommand::ExtendHold {
            actor: actor.clone(),
            order_id: order_id(raw_id)?,
            ttl_ms,
        })
    }
}

/// Ship a paid order (admins, or the vendor selling every line): its units
/// leave the warehouses and the payment is captured.
#[utoipa::path(post, path = "/api/v1/orders/{id}/ship", tag = "orders", request_body = ShipBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = OrderDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn ship_order(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppPath(raw): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<ShipBody>,
) -> AppResult<Response> {
    let command = body.command(&actor, &raw)?;
    transition(
        &state,
        &actor,
        command,
        meta.tag(&Principal::from(&actor), &body),
    )
    .await
}

impl ShipBody {
    /// The command shipping order `raw_id`.
    pub fn command(&self, actor: &Actor, raw_id: &str) -> AppResult<OrderCommand> {
        Ok(OrderCommand::Ship {
            actor: actor.clone(),
            order_id: order_id(raw_id)?,
            carrier: short_text("carrier", &self.carrier, 100)?,
            tracking_number: short_text("tracking_number", &self.tracking_number, 100)?,
        })
    }
}

/// Mark a shipped order delivered.
#[utoipa::path(post, path = "/api/v1/orders/{id}/deliver", tag = "orders",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = OrderDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn deliver_order(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppPath(raw): AppPath<String>,
    meta: MutationMeta,
) -> AppResult<Response> {
    let command = deliver_command(&actor, &raw)?;
    transition(
        &state,
        &actor,
        command,
        meta.tag(&Principal::from(&actor), &()),
    )
    .await
}

/// The command marking order `raw_id` delivered.
pub fn deliver_command(actor: &Actor, raw_id: &str) -> AppResult<OrderCommand> {
    Ok(OrderCommand::Deliver {
        actor: actor.clone(),
        order_id: order_id(raw_id)?,
    })
}
