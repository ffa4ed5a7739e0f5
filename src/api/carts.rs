//! Carts: a signed-in user's cart, or a guest's cart found by its token.
//!
//! A guest adding its first line gets a new opaque cart token (in the body as
//! `cart_token` and in the `X-Cart-Token` response header) and sends it back
//! in `X-Cart-Token`. Only the token's SHA-256 is replicated. Signing in and
//! calling `POST /api/v1/cart/merge` moves the guest cart into the user's.
//!
//! Idempotency keys of cart writes belong to the cart's owner: the user, or
//! the guest cart token (by its digest, [`CartRef::principal`]).

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use base64::Engine;
use ecommerce_domains::cart::{self, CartCommand, CartOwner, LineMode, PricedCart, PricedLine};
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::inventory::Sku;
use ecommerce_domains::{Actor, Command, Response as Reply};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::auth::{Caller, SignedIn};
use super::error::{AppError, AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, Consistency, MutationMeta, ReadParams};
use super::listings::MoneyDto;
use super::{unexpected, App, Committed, Rendered};

pub const CART_TOKEN: &str = "x-cart-token";

/// This node's clock: carts are priced as of the read (checkout prices again
/// at the command's time).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

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

/// The SHA-256 (hex) under which a guest cart token is stored.
fn token_owner(token: &str) -> AppResult<CartOwner> {
    let ok = (20..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(AppError::new(
            "invalid_header",
            "a cart token is 20 to 128 characters of A-Z a-z 0-9 - _",
        ));
    }
    Ok(CartOwner::Guest(hex::encode(Sha256::digest(
        token.as_bytes(),
    ))))
}

fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whose cart a request is about: the signed-in user's, else the guest token's.
pub struct CartRef {
    pub owner: Option<CartOwner>,
}

impl CartRef {
    /// From the authenticated caller, else a request's `X-Cart-Token` header
    /// (or gRPC metadata).
    pub fn from_headers(caller: Option<Actor>, headers: &HeaderMap) -> AppResult<Self> {
        if let Some(actor) = caller {
            return Ok(Self {
                owner: Some(CartOwner::User(actor.user_id)),
            });
        }
        let owner = match headers.get(CART_TOKEN) {
            None => None,
            Some(raw) => Some(token_owner(raw.to_str().map_err(|_| {
                AppError::new("invalid_header", "X-Cart-Token must be visible ASCII")
            })?)?),
        };
        Ok(Self { owner })
    }

    /// Whose idempotency keys a cart write uses: the cart owner's (a guest
    /// by its token's digest); without a token, nobody's in particular (a
    /// guest cannot send a key then, see [`AddLineBody::command`]).
    pub fn principal(&self) -> Principal {
        self.owner
            .as_ref()
            .map_or(Principal::Anonymous, Principal::from)
    }

    /// The owner of a cart that must already exist (a guest without a token has none).
    pub fn existing(self) -> AppResult<CartOwner> {
        self.owner
            .ok_or_else(|| AppError::from(ecommerce_domains::DomainError::CartEmpty))
    }
}

impl<S> axum::extract::FromRequestParts<S> for CartRef
where
    S: Send + Sync,
    App: axum::extract::FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(actor) = Caller::from_request_parts(parts, state).await?;
        Self::from_headers(actor, &parts.headers)
    }
}

/// The cart of `owner` (none: an empty cart), priced now.
pub async fn read_cart(
    state: &App,
    owner: Option<&CartOwner>,
    consistency: Consistency,
) -> AppResult<PricedCart> {
    let reader = state.read(consistency).await?;
    let stored = match owner {
        Some(o) => cart::get(&reader, o)?,
        None => None,
    };
    Ok(cart::priced(&reader, stored.as_ref(), now_ms())?)
}

/// Proposes a cart change: the changed cart, priced now, or the refusal.
pub async fn propose_change(
    state: &App,
    command: CartCommand,
    tag: Option<ecommerce_domains::idempotency::IdempotencyTag>,
) -> AppResult<Rendered<PricedCart>> {
    let committed: Committed = state.propose(Command::Cart(command), tag).await?;
    // The cart comes from the command's result; prices from this node's replica.
    let priced = match &committed.outcome {
        Ok(Reply::Cart(c)) => {
            let reader = state.read(Consistency::Stale).await?;
            Some(cart::priced(&reader, Some(c), now_ms())?)
        }
        _ => None,
    };
    Ok(committed.render(move |reply| match (reply, priced) {
        (Reply::Cart(_), Some(p)) => Ok(p),
        (other, _) => Err(unexpected(other)),
    }))
}

/// Proposes a cart change and answers with the priced cart.
async fn change(
    state: &App,
    command: CartCommand,
    tag: Option<ecommerce_domains::idempotency::IdempotencyTag>,
    new_token: Option<String>,
) -> AppResult<Response> {
    let token = new_token.clone();
    let mut response = propose_change(state, command, tag)
        .await?
        .map(move |p| CartDto {
            cart_token: token,
            ..CartDto::from(p)
        })
        .into_response();
    if let (Some(token), StatusCode::OK) = (new_token, response.status()) {
        if let Ok(value) = HeaderValue::from_str(&token) {
            response.headers_mut().insert(CART_TOKEN, value);
        }
    }
    Ok(response)
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
    Ok(Json(
        read_cart(&state, cart.owner.as_ref(), consistency)
            .await?
            .into(),
    ))
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
    let tag = meta.tag(&cart.principal(), &body);
    let (command, token) = body.command(cart, tag.is_some())?;
    change(&state, command, tag, token).await
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartTokenDto {
    pub cart_token: String,
}

/// A new guest cart token. Nothing is stored until a line is added with it;
/// a guest that retries with `Idempotency-Key` gets its token here first.
#[utoipa::path(post, path = "/api/v1/cart/token", tag = "carts",
    responses((status = 200, body = CartTokenDto)))]
pub async fn new_cart_token() -> Json<CartTokenDto> {
    Json(CartTokenDto {
        cart_token: new_token(),
    })
}

impl AddLineBody {
    /// The command adding this line to `cart`, and the new cart token when
    /// it creates a guest cart. A request that may be retried (`idempotent`)
    /// cannot create one: its replay could not hand out the same token.
    pub fn command(
        &self,
        cart: CartRef,
        idempotent: bool,
    ) -> AppResult<(CartCommand, Option<String>)> {
        let quantity = cart::parse_line_quantity(self.quantity)?;
        if quantity == 0 {
            return Err(AppError::from(ecommerce_domains::DomainError::validation(
                "quantity",
                "must be at least 1",
            )));
        }
        let sku = Sku::parse(&self.sku)?;
        let (owner, token) = match cart.owner {
            Some(owner) => (owner, None),
            None if idempotent => {
                return Err(AppError::from(ecommerce_domains::DomainError::validation(
                    "X-Cart-Token",
                    "a guest request with an Idempotency-Key needs a cart token: get one from POST /api/v1/cart/token",
                )))
            }
            None => {
                let token = new_token();
                (token_owner(&token)?, Some(token))
            }
        };
        let command = CartCommand::SetLine {
            owner,
            sku,
            quantity,
            mode: LineMode::Add,
        };
        Ok((command, token))
    }
}

impl SetLineBody {
    /// The command setting the quantity of `raw_sku` in `cart`.
    pub fn command(&self, cart: CartRef, raw_sku: &str) -> AppResult<CartCommand> {
        Ok(CartCommand::SetLine {
            owner: cart.existing()?,
            sku: Sku::parse(raw_sku)?,
            quantity: cart::parse_line_quantity(self.quantity)?,
            mode: LineMode::Set,
        })
    }
}

/// The command removing `raw_sku` from `cart`.
pub fn remove_line_command(cart: CartRef, raw_sku: &str) -> AppResult<CartCommand> {
    Ok(CartCommand::SetLine {
        owner: cart.existing()?,
        sku: Sku::parse(raw_sku)?,
        quantity: 0,
        mode: LineMode::Set,
    })
}

/// Set the quantity of a line (0 removes it).
#[utoipa::path(put, path = "/api/v1/cart/lines/{sku}", tag = "carts", request_body = SetLineBody,
    params(("sku" = String, Path), ("X-Cart-Token" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CartDto), (status = 422, body = ErrorBody)))]
pub async fn set_line(
    State(state): State<App>,
    cart: CartRef,
    AppPath(raw): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<SetLineBody>,
) -> AppResult<Response> {
    let tag = meta.tag(&cart.principal(), &body);
    let command = body.command(cart, &raw)?;
    change(&state, command, tag, None).await
}

/// Remove a line.
#[utoipa::path(delete, path = "/api/v1/cart/lines/{sku}", tag = "carts",
    params(("sku" = String, Path), ("X-Cart-Token" = Option<String>, Header), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CartDto), (status = 422, body = ErrorBody)))]
pub async fn remove_line(
    State(state): State<App>,
    cart: CartRef,
    AppPath(raw): AppPath<String>,
    meta: MutationMeta,
) -> AppResult<Response> {
    let tag = meta.tag(&cart.principal(), &());
    let command = remove_line_command(cart, &raw)?;
    change(&state, command, tag, None).await
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
    let command = CartCommand::Clear {
        owner: cart.existing()?,
    };
    change(&state, command, tag, None).await
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
    let tag = meta.tag(&Principal::from(&actor), &body);
    let command = body.command(actor)?;
    change(&state, command, tag, None).await
}

impl MergeBody {
    /// The command moving this guest cart into `actor`'s cart.
    pub fn command(&self, actor: Actor) -> AppResult<CartCommand> {
        let guest = token_owner(&self.cart_token).map_err(|_| {
            AppError::from(ecommerce_domains::DomainError::validation(
                "cart_token",
                "is not a cart token",
            ))
        })?;
        Ok(CartCommand::Merge {
            guest,
            user: CartOwner::User(actor.user_id),
        })
    }
}
