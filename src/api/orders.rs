//! Checkout and orders: place an order from the cart, follow it, and move it
//! through the workflow (cancel, extend its hold, ship, deliver).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ecommerce_domains::allocation::Strategy;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::inventory::Location;
use ecommerce_domains::order::{self, Address, Order, OrderId, OrderStatus};
use ecommerce_domains::DomainError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::SignedIn;
use super::error::{AppError, AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, Consistency, MutationMeta, ReadParams};
use super::inventory::LocationDto;
use super::listings::MoneyDto;
use super::{App, Rendered};
use crate::app::orders::{
    order_id, CancelRequest, CheckoutRequest, ExtendHoldRequest, OrderQuery, ShipRequest,
};
use crate::app::ErrorCode;
use crate::payments::PaymentInput;

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

/// Exactly one of `token` (what the payment provider's client library or
/// hosted fields returned for the customer's card: with the sandbox,
/// `tok_visa` and the other test tokens of docs/api.md) or `method` (a
/// payment method the provider knows). Card numbers are refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    pub token: Option<String>,
    pub method: Option<String>,
    /// Refused whatever it holds (`raw_card_data_refused`): card data never
    /// reaches the node. Accepted by the parser only to say so clearly.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub card: Option<serde_json::Value>,
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
    PaymentDto {
        status: p.status.name(),
        authorization: p.status.authorization().map(str::to_string),
        reason: p.status.reason(),
        provider: p.method.provider,
        method: p.method.display,
        amount: p.amount.into(),
    }
}

impl From<Order> for OrderDto {
    fn from(o: Order) -> Self {
        let hold = HoldDto {
            state: o.hold.name(),
            expires_at_ms: o.hold.expires_at_ms(),
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

impl PaymentBody {
    /// The payment input: exactly one of token or method; never a card.
    pub fn input(&self) -> AppResult<PaymentInput> {
        if self.card.is_some() {
            return Err(crate::app::orders::raw_card_data_refused());
        }
        match (&self.token, &self.method) {
            (Some(token), None) => Ok(PaymentInput::Token(token.clone())),
            (None, Some(method)) => Ok(PaymentInput::Method(method.clone())),
            _ => Err(
                DomainError::validation("payment", "give exactly one of token or method").into(),
            ),
        }
    }
}

/// An allocation strategy by name; the default when absent.
pub fn strategy(raw: Option<&str>) -> AppResult<Strategy> {
    match raw {
        None => Ok(Strategy::default()),
        Some(raw) => Strategy::parse(raw).ok_or_else(|| {
            DomainError::validation(
                "allocation_strategy",
                "must be priority, nearest or highest_stock",
            )
            .into()
        }),
    }
}

impl CheckoutBody {
    /// The checkout this body asks for.
    pub fn request(self) -> AppResult<CheckoutRequest> {
        // Card data first: it is refused whatever else is wrong.
        let payment = self.payment.input()?;
        CheckoutRequest {
            strategy: strategy(self.allocation_strategy.as_deref())?,
            shipping_address: self.shipping_address.parse()?,
            hold_ttl_secs: self.hold_ttl_secs,
            payment,
            coupon: self.coupon,
        }
        .refuse_card_data()
    }
}

/// An order as rendered for REST.
fn order_response(rendered: Rendered<Order>) -> Response {
    rendered.map(OrderDto::from).into_response()
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
    let request = body.request()?;
    let tag = meta.tag(&Principal::from(&actor), &request);
    let mut response = order_response(state.checkout(&actor, request, tag).await?);
    if response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::CREATED;
    }
    Ok(response)
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

/// List orders, newest first: a customer's own, a vendor's (only its lines),
/// or, for admins, everyone's.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderListParams),
    responses((status = 200, body = OrderList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_orders(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppQuery(params): AppQuery<OrderListParams>,
) -> AppResult<Json<OrderList>> {
    let (orders, next) = state.list_orders(&actor, &params.query()?).await?;
    Ok(Json(OrderList {
        items: orders.into_iter().map(OrderDto::from).collect(),
        next_after: next.map(|id| id.to_string()),
    }))
}

impl OrderListParams {
    /// The listing these parameters ask for.
    pub fn query(&self) -> AppResult<OrderQuery> {
        let status = self
            .status
            .as_deref()
            .map(|s| {
                OrderStatus::parse(s).ok_or_else(|| {
                    AppError::new(
                        ErrorCode::InvalidQuery,
                        "status must be draft, confirmed, paid, shipped, delivered or cancelled",
                    )
                })
            })
            .transpose()?;
        let after = self
            .after
            .as_deref()
            .map(|a| {
                a.parse::<OrderId>().map_err(|_| {
                    AppError::new(ErrorCode::InvalidQuery, "after must be an order id")
                })
            })
            .transpose()?;
        Ok(OrderQuery {
            status,
            from_ms: self.from_ms,
            to_ms: self.to_ms,
            customer_id: self.customer_id.clone(),
            after,
            limit: self.limit.unwrap_or(20),
            consistency: self.consistency.unwrap_or_default(),
        })
    }
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
    let order = state
        .find_order(&actor, order_id(&raw)?, consistency)
        .await?;
    Ok(Json(order.into()))
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
    let request = CancelRequest {
        reason: body.reason,
    };
    let tag = meta.tag(&Principal::from(&actor), &request);
    let rendered = state
        .cancel_order(&actor, order_id(&raw)?, &request, tag)
        .await?;
    Ok(order_response(rendered))
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
    let request = ExtendHoldRequest {
        ttl_secs: body.ttl_secs,
    };
    let tag = meta.tag(&Principal::from(&actor), &request);
    let rendered = state
        .extend_hold(&actor, order_id(&raw)?, &request, tag)
        .await?;
    Ok(order_response(rendered))
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
    let request = ShipRequest {
        carrier: body.carrier,
        tracking_number: body.tracking_number,
    };
    let tag = meta.tag(&Principal::from(&actor), &request);
    let rendered = state
        .ship_order(&actor, order_id(&raw)?, &request, tag)
        .await?;
    Ok(order_response(rendered))
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
    let tag = meta.tag(&Principal::from(&actor), &());
    let rendered = state.deliver_order(&actor, order_id(&raw)?, tag).await?;
    Ok(order_response(rendered))
}
