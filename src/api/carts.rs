//! Cart routes: the caller's cart, or a guest's cart found by its token
//! (`app::carts` decides whose cart it is and changes it).
//!
//! A guest adding its first line gets a new opaque cart token (in the body as
//! `cart_token` and in the `X-Cart-Token` response header) and sends it back
//! in `X-Cart-Token`. Signing in and calling `POST /api/v1/cart/merge` moves
//! the guest cart into the user's.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use ecommerce_domains::cart::{PricedCart, PricedLine};
use ecommerce_domains::idempotency::Principal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, SignedIn};
use super::error::{AppError, AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, ClientIp, MutationMeta, ReadParams};
use super::listings::MoneyDto;
use super::{App, Rendered};
use crate::app::carts::{
    unreadable_token, AddLineRequest, CartRef, MergeRequest, SetLineRequest, CART_TOKEN,
};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartLineDto {
    pub sku: String,
    pub name: Option<String>,
    pub quantity: u64,
    /// Current list price; null when the SKU is no longer for sale.
    pub list_price: Option<MoneyDto>,
    /// After sale and tiered prices.
    pub unit_price: Option<MoneyDto>,
    /// Taken off by promotions.
    pub discount: Option<MoneyDto>,
    pub line_total: Option<MoneyDto>,
    /// How the price was reached, rule by rule.
    pub explanation: Vec<super::orders::PriceStepDto>,
    /// False when the SKU is no longer for sale: checkout would refuse the cart.
    pub available: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartDto {
    pub lines: Vec<CartLineDto>,
    pub item_count: u64,
    /// Sum of the lines for sale, priced now; null for an empty cart.
    pub subtotal: Option<MoneyDto>,
    pub updated_ms: u64,
    pub version: u64,
    /// Set once, when a guest cart is created: send it back in `X-Cart-Token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cart_token: Option<String>,
}

impl From<PricedCart> for CartDto {
    fn from(c: PricedCart) -> Self {
        Self {
            lines: c.lines.into_iter().map(line_dto).collect(),
            item_count: c.item_count,
            subtotal: c.subtotal.map(Into::into),
            updated_ms: c.updated_ms,
            version: c.version,
            cart_token: None,
        }
    }
}

fn line_dto(l: PricedLine) -> CartLineDto {
    CartLineDto {
        sku: l.sku,
        name: l.name,
        quantity: l.quantity,
        list_price: l.list_price.map(Into::into),
        unit_price: l.unit_price.map(Into::into),
        discount: l.discount.map(Into::into),
        line_total: l.line_total.map(Into::into),
        explanation: l.explanation.into_iter().map(Into::into).collect(),
        available: l.available,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddLineBody {
    pub sku: String,
    /// Units to add, 1 to 10000.
    pub quantity: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLineBody {
    /// New quantity, 0 (removes the line) to 10000.
    pub quantity: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The guest cart's token.
    pub cart_token: String,
}

// A body becomes the use case's request field for field: both serialize to
// the same JSON, the idempotency fingerprint (see the tests below).
impl From<AddLineBody> for AddLineRequest {
    fn from(b: AddLineBody) -> Self {
        Self {
            sku: b.sku,
            quantity: b.quantity,
        }
    }
}

impl From<SetLineBody> for SetLineRequest {
    fn from(b: SetLineBody) -> Self {
        Self {
            quantity: b.quantity,
        }
    }
}

impl From<MergeBody> for MergeRequest {
    fn from(b: MergeBody) -> Self {
        Self {
            cart_token: b.cart_token,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartTokenDto {
    pub cart_token: String,
}

/// Whose cart a request is about, from its caller and `X-Cart-Token`.
impl<S> axum::extract::FromRequestParts<S> for CartRef
where
    S: Send + Sync,
    App: axum::extract::FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(actor) = Caller::from_request_parts(parts, state).await?;
        let ClientIp(client) = ClientIp::from_request_parts(parts, state).await?;
        let token = match parts.headers.get(CART_TOKEN) {
            None => None,
            Some(raw) => Some(raw.to_str().map_err(|_| unreadable_token())?),
        };
        CartRef::new(actor, token, client)
    }
}

/// A changed cart as rendered for REST.
fn cart_response(rendered: Rendered<PricedCart>) -> Response {
    rendered.map(CartDto::from).into_response()
}

/// Read the caller's cart, priced now (an empty cart when there is none).
#[utoipa::path(get, path = "/api/v1/cart", tag = "carts",
    params(ReadParams, ("X-Cart-Token" = Option<String>, Header, description = "a guest cart's token")),
    responses((status = 200, body = CartDto), (status = 400, body = ErrorBody)))]
pub async fn get_cart(
    State(state): State<App>,
    cart: CartRef,
    AppQuery(params): AppQuery<ReadParams>,
) -> AppResult<Json<CartDto>> {
    let consistency = params.consistency.unwrap_or_default();
    Ok(Json(state.cart(&cart, consistency).await?.into()))
}

/// Add units of a SKU to the cart (a guest without a token gets a new cart and token).
#[utoipa::path(post, path = "/api/v1/cart/lines", tag = "carts", request_body = AddLineBody,
    params(("X-Cart-Token" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CartDto), (status = 422, body = ErrorBody)))]
pub async fn add_line(
    State(state): State<App>,
    cart: CartRef,
    meta: MutationMeta,
    AppJson(body): AppJson<AddLineBody>,
) -> AppResult<Response> {
    let request = AddLineRequest::from(body);
    let tag = meta.tag(&cart.principal(), &request);
    let mut new_token = None;
    let mut response = state
        .add_line(cart, &request, tag)
        .await?
        .map(|added| {
            new_token.clone_from(&added.new_token);
            CartDto {
                cart_token: added.new_token,
                ..CartDto::from(added.cart)
            }
        })
        .into_response();
    if let (Some(token), StatusCode::OK) = (new_token, response.status()) {
        if let Ok(value) = HeaderValue::from_str(&token) {
            response.headers_mut().insert(CART_TOKEN, value);
        }
    }
    Ok(response)
}

/// A new guest cart token. Nothing is stored until a line is added with it;
/// a guest that retries with `Idempotency-Key` gets its token here first.
#[utoipa::path(post, path = "/api/v1/cart/token", tag = "carts",
    responses((status = 200, body = CartTokenDto)))]
pub async fn new_cart_token(
    State(state): State<App>,
    ClientIp(client): ClientIp,
) -> AppResult<Json<CartTokenDto>> {
    Ok(Json(CartTokenDto {
        cart_token: state.new_cart_token(client)?,
    }))
}

/// Set the quantity of a line (0 removes it).
#[utoipa::path(put, path = "/api/v1/cart/lines/{sku}", tag = "carts", request_body = SetLineBody,
    params(("sku" = String, Path), ("X-Cart-Token" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CartDto), (status = 422, body = ErrorBody)))]
pub async fn set_line(
    State(state): State<App>,
    cart: CartRef,
    AppPath(sku): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<SetLineBody>,
) -> AppResult<Response> {
    let request = SetLineRequest::from(body);
    let tag = meta.tag(&cart.principal(), &request);
    let rendered = state.set_line(cart, &sku, &request, tag).await?;
    Ok(cart_response(rendered))
}

/// Remove a line.
#[utoipa::path(delete, path = "/api/v1/cart/lines/{sku}", tag = "carts",
    params(("sku" = String, Path), ("X-Cart-Token" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CartDto), (status = 422, body = ErrorBody)))]
pub async fn remove_line(
    State(state): State<App>,
    cart: CartRef,
    AppPath(sku): AppPath<String>,
    meta: MutationMeta,
) -> AppResult<Response> {
    let tag = meta.tag(&cart.principal(), &());
    Ok(cart_response(state.remove_line(cart, &sku, tag).await?))
}

/// Empty the cart.
#[utoipa::path(delete, path = "/api/v1/cart", tag = "carts",
    params(("X-Cart-Token" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CartDto)))]
pub async fn clear_cart(
    State(state): State<App>,
    cart: CartRef,
    meta: MutationMeta,
) -> AppResult<Response> {
    let tag = meta.tag(&cart.principal(), &());
    Ok(cart_response(state.clear_cart(cart, tag).await?))
}

/// Move a guest cart into the signed-in user's cart (quantities add up).
#[utoipa::path(post, path = "/api/v1/cart/merge", tag = "carts", request_body = MergeBody,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CartDto), (status = 401, body = ErrorBody)))]
pub async fn merge_cart(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    meta: MutationMeta,
    AppJson(body): AppJson<MergeBody>,
) -> AppResult<Response> {
    let request = MergeRequest::from(body);
    let tag = meta.tag(&Principal::from(&actor), &request);
    Ok(cart_response(
        state.merge_carts(&actor, &request, tag).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap()
    }

    /// A key keeps finding its record: the request a body becomes
    /// serializes exactly as the body does (fields, order, values).
    #[test]
    fn bodies_and_requests_fingerprint_alike() {
        let add: AddLineBody = serde_json::from_str(r#"{"quantity":3,"sku":"A-1"}"#).unwrap();
        assert_eq!(json(&add), json(&AddLineRequest::from(add.clone())));
        let set: SetLineBody = serde_json::from_str(r#"{"quantity":0}"#).unwrap();
        assert_eq!(json(&set), json(&SetLineRequest::from(set.clone())));
        let merge: MergeBody = serde_json::from_str(r#"{"cart_token":"t"}"#).unwrap();
        assert_eq!(json(&merge), json(&MergeRequest::from(merge.clone())));
    }
}
