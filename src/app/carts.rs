//! Carts: a signed-in user's cart, or a guest's cart found by its token.
//!
//! A guest adding its first line gets a new opaque cart token (the
//! transports hand it out in the answer and in `x-cart-token`) and sends it
//! back in `x-cart-token`. Only the token's SHA-256 is replicated. Signing in
//! and merging moves the guest cart into the user's.
//!
//! Whose cart a request is about ([`CartRef`]) is decided here, from the
//! caller the transport authenticated and the token it read; reading the
//! header or metadata stays in each transport. Idempotency keys of cart
//! writes belong to the cart's owner: the user, or the guest cart token (by
//! its digest, [`CartRef::principal`]).

use std::net::IpAddr;

use base64::Engine;
use ecommerce_domains::cart::{self, CartCommand, CartOwner, LineMode, PricedCart};
use ecommerce_domains::idempotency::{IdempotencyTag, Principal};
use ecommerce_domains::inventory::Sku;
use ecommerce_domains::{Actor, Command, DomainError, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{unexpected, App, AppError, AppResult, Consistency, Rendered};
use crate::app::ErrorCode;

/// The header (gRPC: metadata key) carrying a guest cart's token, in
/// requests and in the answer that creates the cart.
pub const CART_TOKEN: &str = "x-cart-token";

/// Adding units of a SKU to the cart. Like every request type here, its
/// serialized form (the REST body's JSON) is the request's idempotency
/// fingerprint, the same over REST and gRPC.
#[derive(Debug, Clone, Serialize)]
pub struct AddLineRequest {
    pub sku: String,
    /// Units to add, 1 to 10000.
    pub quantity: i64,
}

/// Setting the quantity of a line.
#[derive(Debug, Clone, Serialize)]
pub struct SetLineRequest {
    /// 0 (removes the line) to 10000.
    pub quantity: i64,
}

/// Moving a guest cart into the signed-in user's cart.
#[derive(Debug, Clone, Serialize)]
pub struct MergeRequest {
    /// The guest cart's token.
    pub cart_token: String,
}

/// A cart after a line was added, and the token of the guest cart the line
/// created (handed out once: a guest must keep it).
#[derive(Debug, Clone)]
pub struct LineAdded {
    pub cart: PricedCart,
    pub new_token: Option<String>,
}

/// Whose cart a request is about: the signed-in user's, else the guest
/// token's, else nobody's yet (a guest without a cart).
#[derive(Debug, Clone)]
pub struct CartRef {
    owner: Option<CartOwner>,
    /// The client's address when the caller is a guest (for its limits).
    guest: Option<IpAddr>,
}

impl CartRef {
    /// The cart of `caller` if signed in, else of the guest cart `token`
    /// (as the client sent it; `None` without one) of the guest at `client`.
    pub fn new(
        caller: Option<Actor>,
        token: Option<&str>,
        client: Option<IpAddr>,
    ) -> AppResult<Self> {
        if let Some(actor) = caller {
            return Ok(Self {
                owner: Some(CartOwner::User(actor.user_id)),
                guest: None,
            });
        }
        let owner = token.map(token_owner).transpose()?;
        Ok(Self {
            owner,
            guest: client,
        })
    }

    fn is_guest(&self) -> bool {
        !matches!(self.owner, Some(CartOwner::User(_)))
    }

    /// Whose idempotency keys a cart write uses: the cart owner's (a guest
    /// by its token's digest); without a token, nobody's in particular (a
    /// guest cannot send a key then, see [`App::add_line`]).
    pub fn principal(&self) -> Principal {
        self.owner
            .as_ref()
            .map_or(Principal::Anonymous, Principal::from)
    }

    /// The owner of a cart that must already exist (a guest without a token
    /// has none: `cart_empty`).
    fn existing(self) -> AppResult<CartOwner> {
        self.owner.ok_or_else(|| DomainError::CartEmpty.into())
    }
}

/// The error for an `x-cart-token` that is not visible ASCII, which each
/// transport raises when it reads the header.
pub fn unreadable_token() -> AppError {
    AppError::new(
        ErrorCode::InvalidHeader,
        "X-Cart-Token must be visible ASCII",
    )
}

/// The owner of guest cart `token`: the SHA-256 (hex) it is stored under.
fn token_owner(token: &str) -> AppResult<CartOwner> {
    let ok = (20..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(AppError::new(
            ErrorCode::InvalidHeader,
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

/// This node's clock: carts are priced as of the read (checkout prices again
/// at the command's time).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl App {
    /// The cart `cart` names, priced now (an empty cart when there is none).
    pub async fn cart(&self, cart: &CartRef, consistency: Consistency) -> AppResult<PricedCart> {
        let reader = self.read(consistency).await?;
        let stored = match &cart.owner {
            Some(o) => cart::get(&reader, o)?,
            None => None,
        };
        Ok(cart::priced(&reader, stored.as_ref(), now_ms())?)
    }

    /// A new guest cart token for the guest at `client` (counted as a new
    /// cart). Nothing is stored until a line is added with it; a guest that
    /// retries with an idempotency key gets its token here first.
    pub fn new_cart_token(&self, client: Option<IpAddr>) -> AppResult<String> {
        self.guest_limits
            .check_new_cart(client)
            .map_err(super::sessions::rate_limited)?;
        Ok(new_token())
    }

    /// Refuses a guest's cart write past its network's quota.
    fn check_guest_write(&self, cart: &CartRef) -> AppResult<()> {
        if !cart.is_guest() {
            return Ok(());
        }
        self.guest_limits
            .check_write(cart.guest)
            .map_err(super::sessions::rate_limited)
    }

    /// Adds units of a SKU to the cart; a guest without a token gets a new
    /// cart and its token. A request that may be retried (one with a `tag`)
    /// cannot create a guest cart: its replay could not hand out the same
    /// token.
    pub async fn add_line(
        &self,
        cart: CartRef,
        request: &AddLineRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<LineAdded>> {
        let quantity = cart::parse_added_quantity(request.quantity)?;
        let sku = Sku::parse(&request.sku)?;
        self.check_guest_write(&cart)?;
        let (owner, new_token) = match cart.owner {
            Some(owner) => (owner, None),
            None if tag.is_some() => {
                return Err(DomainError::validation(
                    "X-Cart-Token",
                    "a guest request with an Idempotency-Key needs a cart token: get one from POST /api/v1/cart/token",
                )
                .into())
            }
            None => {
                let token = self.new_cart_token(cart.guest)?;
                (token_owner(&token)?, Some(token))
            }
        };
        let command = CartCommand::SetLine {
            owner,
            sku,
            quantity,
            mode: LineMode::Add,
        };
        let rendered = self.change_cart(command, tag).await?;
        Ok(rendered.map(|cart| LineAdded { cart, new_token }))
    }

    /// Sets the quantity of line `sku` (0 removes it).
    pub async fn set_line(
        &self,
        cart: CartRef,
        sku: &str,
        request: &SetLineRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<PricedCart>> {
        self.check_guest_write(&cart)?;
        let command = CartCommand::SetLine {
            owner: cart.existing()?,
            sku: Sku::parse(sku)?,
            quantity: cart::parse_line_quantity(request.quantity)?,
            mode: LineMode::Set,
        };
        self.change_cart(command, tag).await
    }

    /// Removes line `sku`.
    pub async fn remove_line(
        &self,
        cart: CartRef,
        sku: &str,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<PricedCart>> {
        self.check_guest_write(&cart)?;
        let command = CartCommand::SetLine {
            owner: cart.existing()?,
            sku: Sku::parse(sku)?,
            quantity: 0,
            mode: LineMode::Set,
        };
        self.change_cart(command, tag).await
    }

    /// Empties the cart.
    pub async fn clear_cart(
        &self,
        cart: CartRef,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<PricedCart>> {
        self.check_guest_write(&cart)?;
        let command = CartCommand::Clear {
            owner: cart.existing()?,
        };
        self.change_cart(command, tag).await
    }

    /// Moves a guest cart into `actor`'s cart (quantities add up).
    pub async fn merge_carts(
        &self,
        actor: &Actor,
        request: &MergeRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<PricedCart>> {
        let guest = token_owner(&request.cart_token)
            .map_err(|_| DomainError::validation("cart_token", "is not a cart token"))?;
        let command = CartCommand::Merge {
            guest,
            user: CartOwner::User(actor.user_id.clone()),
        };
        self.change_cart(command, tag).await
    }

    /// Proposes a cart change: the changed cart, priced now, or the refusal.
    async fn change_cart(
        &self,
        command: CartCommand,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<PricedCart>> {
        let committed = self.propose(Command::Cart(command), tag).await?;
        // The cart comes from the command's result; prices from this node's replica.
        let priced = match &committed.outcome {
            Ok(Response::Cart(c)) => {
                let reader = self.read(Consistency::Stale).await?;
                Some(cart::priced(&reader, Some(c), now_ms())?)
            }
            _ => None,
        };
        Ok(committed.render(move |reply| match (reply, priced) {
            (Response::Cart(_), Some(p)) => Ok(p),
            (other, _) => Err(unexpected(other)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_in_caller_owns_its_cart_and_a_guest_its_token_digest() {
        let ann = Actor {
            user_id: "ann".into(),
            role: ecommerce_domains::Role::Customer,
        };
        let token = new_token();
        let user = CartRef::new(Some(ann), Some(&token), None).unwrap();
        assert_eq!(user.owner, Some(CartOwner::User("ann".into())));
        let guest = CartRef::new(None, Some(&token), None).unwrap();
        let digest = hex::encode(Sha256::digest(token.as_bytes()));
        assert_eq!(guest.owner, Some(CartOwner::Guest(digest.clone())));
        assert_eq!(guest.principal(), Principal::Guest(digest));
        let nobody = CartRef::new(None, None, None).unwrap();
        assert_eq!(nobody.principal(), Principal::Anonymous);
        assert_eq!(
            nobody.existing().unwrap_err().body.code,
            DomainError::CartEmpty.code()
        );
        for bad in ["short", &"x".repeat(129), "twenty chars with spaces"] {
            let e = CartRef::new(None, Some(bad), None).unwrap_err();
            assert_eq!(e.body.code, "invalid_header", "{bad}");
        }
    }
}
