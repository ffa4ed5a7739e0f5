//! Carts: persistent carts of signed-in users and temporary carts of guests.
//!
//! A guest cart is found by the hash of its opaque token (the token itself is
//! never stored); signing in merges it into the user's cart. Lines are priced
//! when read, from the SKU's listing, so a cart never shows a stale price.
//! Carts idle for longer than the configured time are removed by a replicated
//! command, at log-ordered time.

use serde::{Deserialize, Serialize};

use crate::check;
use crate::command::{ApplyContext, Response};
use crate::inventory::Sku;
use crate::listing::{self, Listing};
use crate::money::{Currency, Money};
use crate::store::{self, KeyPart, Store, StoreExt, StoreFault, StoreMut};
use crate::{ApplyError, DomainError};

/// Carts keyed by owner.
pub const CARTS: &str = "carts";
/// Carts by last change: (updated_ms, owner kind, owner id) → the same.
pub const CART_EXPIRY: &str = "carts_expiry";
/// Most lines a cart may hold.
pub const MAX_LINES: usize = 100;
/// Most units of one SKU in a cart.
pub const MAX_LINE_QUANTITY: u64 = 10_000;
/// Most carts removed by one expiry command.
pub const EXPIRE_BATCH: usize = 1000;

/// Whose cart it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CartOwner {
    User(String),
    /// A guest, by the SHA-256 (hex) of its cart token.
    Guest(String),
}

impl CartOwner {
    fn key(&self) -> [KeyPart<'_>; 2] {
        match self {
            Self::User(id) => [KeyPart::Str("u"), KeyPart::Str(id)],
            Self::Guest(hash) => [KeyPart::Str("g"), KeyPart::Str(hash)],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub sku: Sku,
    pub quantity: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub owner: CartOwner,
    pub lines: Vec<CartLine>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub version: u64,
}

impl Cart {
    fn empty(owner: CartOwner) -> Self {
        Self {
            owner,
            lines: Vec::new(),
            created_ms: 0,
            updated_ms: 0,
            version: 0,
        }
    }
}

/// How a line change combines with what the cart holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineMode {
    /// Add to the quantity already in the cart.
    Add,
    /// Replace it (0 removes the line).
    Set,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CartCommand {
    SetLine {
        owner: CartOwner,
        sku: Sku,
        quantity: u64,
        mode: LineMode,
    },
    /// Moves a guest cart's lines into a user's cart (quantities add up) and
    /// removes the guest cart.
    Merge {
        guest: CartOwner,
        user: CartOwner,
    },
    Clear {
        owner: CartOwner,
    },
    /// Removes carts unchanged for `idle_ms` (a system command).
    Expire {
        idle_ms: u64,
    },
}

/// A quantity in a cart line: 0 to [`MAX_LINE_QUANTITY`].
pub fn parse_line_quantity(raw: i64) -> Result<u64, DomainError> {
    u64::try_from(raw)
        .ok()
        .filter(|q| *q <= MAX_LINE_QUANTITY)
        .ok_or_else(|| {
            DomainError::validation(
                "quantity",
                format!("must be between 0 and {MAX_LINE_QUANTITY}"),
            )
        })
}

/// Units added to a cart line ([`LineMode::Add`]): 1 to
/// [`MAX_LINE_QUANTITY`]; adding nothing is refused rather than answered
/// with an unchanged cart.
pub fn parse_added_quantity(raw: i64) -> Result<u64, DomainError> {
    match parse_line_quantity(raw)? {
        0 => Err(DomainError::validation("quantity", "must be at least 1")),
        quantity => Ok(quantity),
    }
}

impl CartOwner {
    /// The owner's id or token digest is a plain identifier.
    pub fn check(&self) -> Result<(), DomainError> {
        match self {
            Self::User(id) => check::opaque("user_id", id),
            Self::Guest(hash) => check::opaque("cart_token", hash),
        }
    }
}

impl CartCommand {
    /// Checks the command's fields (see [`crate::Command::validate`]).
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            Self::SetLine {
                owner,
                sku,
                quantity,
                mode,
            } => {
                owner.check()?;
                sku.check()?;
                check::at_most("quantity", *quantity, MAX_LINE_QUANTITY)?;
                if *mode == LineMode::Add && *quantity == 0 {
                    return Err(DomainError::validation("quantity", "must be at least 1"));
                }
                Ok(())
            }
            Self::Merge { guest, user } => {
                guest.check()?;
                user.check()?;
                match (guest, user) {
                    (CartOwner::Guest(_), CartOwner::User(_)) => Ok(()),
                    _ => Err(DomainError::validation(
                        "cart",
                        "a guest's cart merges into a user's",
                    )),
                }
            }
            Self::Clear { owner } => owner.check(),
            Self::Expire { .. } => Ok(()),
        }
    }
}

pub fn get(store: &dyn Store, owner: &CartOwner) -> Result<Option<Cart>, StoreFault> {
    store.get(CARTS, &owner.key())
}

/// A listing that can be sold, or `sku_not_for_sale`.
pub fn sellable(store: &dyn Store, sku: &Sku) -> Result<Listing, ApplyError> {
    match listing::get(store, sku)? {
        Some(l) if l.active => Ok(l),
        _ => Err(DomainError::SkuNotForSale(sku.as_str().to_string()).into()),
    }
}

fn cart_currency(store: &dyn Store, cart: &Cart) -> Result<Option<Currency>, StoreFault> {
    for line in &cart.lines {
        if let Some(l) = listing::get(store, &line.sku)? {
            return Ok(Some(l.price.currency));
        }
    }
    Ok(None)
}

fn save(store: &mut dyn StoreMut, mut cart: Cart, ctx: &ApplyContext) -> Result<Cart, StoreFault> {
    if cart.version != 0 {
        remove_expiry_entry(store, &cart);
    } else {
        cart.created_ms = ctx.now_ms;
    }
    cart.updated_ms = ctx.now_ms;
    cart.version = ctx.version;
    store::put(store, CARTS, &cart.owner.key(), &cart)?;
    let [kind, id] = cart.owner.key();
    let entry = ExpiryEntry {
        updated_ms: cart.updated_ms,
        owner: cart.owner.clone(),
    };
    store::put(
        store,
        CART_EXPIRY,
        &[KeyPart::U64(cart.updated_ms), kind, id],
        &entry,
    )?;
    Ok(cart)
}

/// An entry of the idle-cart index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ExpiryEntry {
    updated_ms: u64,
    owner: CartOwner,
}

fn remove_expiry_entry(store: &mut dyn StoreMut, cart: &Cart) {
    remove_entry(store, cart.updated_ms, &cart.owner);
}

fn remove_entry(store: &mut dyn StoreMut, updated_ms: u64, owner: &CartOwner) {
    let [kind, id] = owner.key();
    store.delete_raw(CART_EXPIRY, &[KeyPart::U64(updated_ms), kind, id]);
}

/// Removes a cart (after checkout, merge or expiry).
pub(crate) fn delete(store: &mut dyn StoreMut, cart: &Cart) {
    remove_expiry_entry(store, cart);
    store.delete_raw(CARTS, &cart.owner.key());
}

pub fn apply(
    command: &CartCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Response, ApplyError> {
    match command {
        CartCommand::SetLine {
            owner,
            sku,
            quantity,
            mode,
        } => {
            let mut cart = get(store, owner)?.unwrap_or_else(|| Cart::empty(owner.clone()));
            let existing = cart.lines.iter().position(|l| &l.sku == sku);
            let current = existing
                .and_then(|i| cart.lines.get(i))
                .map_or(0, |l| l.quantity);
            let target = match mode {
                LineMode::Add => current.checked_add(*quantity),
                LineMode::Set => Some(*quantity),
            };
            let Some(target) = target.filter(|t| *t <= MAX_LINE_QUANTITY) else {
                return Err(DomainError::validation(
                    "quantity",
                    format!("a cart holds at most {MAX_LINE_QUANTITY} units of one SKU"),
                )
                .into());
            };
            if target > 0 {
                let listing = sellable(store, sku)?;
                let others = Cart {
                    lines: cart
                        .lines
                        .iter()
                        .filter(|l| &l.sku != sku)
                        .cloned()
                        .collect(),
                    ..cart.clone()
                };
                if let Some(currency) = cart_currency(store, &others)? {
                    if currency != listing.price.currency {
                        return Err(DomainError::CurrencyMismatch {
                            cart: currency.as_str().to_string(),
                            sku: listing.price.currency.as_str().to_string(),
                        }
                        .into());
                    }
                }
            }
            match (existing, target) {
                (Some(_), 0) => cart.lines.retain(|l| &l.sku != sku),
                (Some(i), q) => {
                    if let Some(line) = cart.lines.get_mut(i) {
                        line.quantity = q;
                    }
                }
                (None, 0) => {}
                (None, q) => {
                    if cart.lines.len() >= MAX_LINES {
                        return Err(DomainError::validation(
                            "sku",
                            format!("a cart holds at most {MAX_LINES} lines"),
                        )
                        .into());
                    }
                    cart.lines.push(CartLine {
                        sku: sku.clone(),
                        quantity: q,
                    });
                }
            }
            Ok(Response::Cart(save(store, cart, ctx)?))
        }
        CartCommand::Merge { guest, user } => {
            let mut target = get(store, user)?.unwrap_or_else(|| Cart::empty(user.clone()));
            let Some(source) = get(store, guest)? else {
                return Ok(Response::Cart(target));
            };
            for line in &source.lines {
                let full = target.lines.len() >= MAX_LINES;
                match target.lines.iter_mut().find(|l| l.sku == line.sku) {
                    Some(l) => {
                        l.quantity = l
                            .quantity
                            .saturating_add(line.quantity)
                            .min(MAX_LINE_QUANTITY)
                    }
                    None if !full => target.lines.push(line.clone()),
                    None => {}
                }
            }
            delete(store, &source);
            Ok(Response::Cart(save(store, target, ctx)?))
        }
        CartCommand::Clear { owner } => {
            if let Some(cart) = get(store, owner)? {
                delete(store, &cart);
            }
            Ok(Response::Cart(Cart::empty(owner.clone())))
        }
        CartCommand::Expire { idle_ms } => {
            let cutoff = ctx.now_ms.saturating_sub(*idle_ms);
            let due: Vec<ExpiryEntry> = store.scan(CART_EXPIRY, &[], None, EXPIRE_BATCH)?;
            let mut removed: u64 = 0;
            for entry in due {
                if entry.updated_ms > cutoff {
                    break;
                }
                match get(store, &entry.owner)? {
                    Some(cart) if cart.updated_ms == entry.updated_ms => {
                        delete(store, &cart);
                        removed = removed.saturating_add(1);
                    }
                    // A stale entry (not expected) must not block the ones behind it.
                    _ => remove_entry(store, entry.updated_ms, &entry.owner),
                }
            }
            Ok(Response::Expired { removed })
        }
    }
}

/// The time the oldest cart was last changed, for the leader's sweeper.
pub fn oldest_update(store: &dyn Store) -> Result<Option<u64>, StoreFault> {
    let first: Vec<ExpiryEntry> = store.scan(CART_EXPIRY, &[], None, 1)?;
    Ok(first.first().map(|e| e.updated_ms))
}

/// A cart line with its current price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    pub sku: String,
    pub name: Option<String>,
    pub quantity: u64,
    pub list_price: Option<Money>,
    /// After sale and tiered prices.
    pub unit_price: Option<Money>,
    /// Taken off by promotions.
    pub discount: Option<Money>,
    pub line_total: Option<Money>,
    /// How the price was reached, rule by rule.
    pub explanation: Vec<crate::pricing::Step>,
    /// False when the SKU is no longer for sale (checkout would refuse it).
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedCart {
    pub lines: Vec<PricedLine>,
    pub item_count: u64,
    /// Sum of the lines that are for sale; `None` for an empty cart.
    pub subtotal: Option<Money>,
    pub updated_ms: u64,
    pub version: u64,
}

/// Prices a cart (or an empty one) at `now_ms` from the current listings and
/// promotions, as checkout would.
pub fn priced(
    store: &dyn Store,
    cart: Option<&Cart>,
    now_ms: u64,
) -> Result<PricedCart, StoreFault> {
    let mut lines = Vec::new();
    let mut subtotal: Option<Money> = None;
    let mut item_count: u64 = 0;
    let promotions = match cart {
        Some(c) if !c.lines.is_empty() => crate::pricing::promotions(store)?,
        _ => Vec::new(),
    };
    for line in cart.map(|c| c.lines.as_slice()).unwrap_or_default() {
        item_count = item_count.saturating_add(line.quantity);
        let listing = listing::get(store, &line.sku)?.filter(|l| l.active);
        let name = listing.as_ref().map(|l| l.name.clone());
        let price = match listing {
            Some(l) => {
                let context = crate::pricing::LineContext::load(store, l)?;
                crate::pricing::price_line(&context, line.quantity, now_ms, &promotions)
            }
            None => None,
        };
        if let Some(p) = &price {
            subtotal = match subtotal {
                None => Some(p.line_total.clone()),
                Some(s) => s.plus(&p.line_total).or(Some(s)),
            };
        }
        lines.push(PricedLine {
            sku: line.sku.as_str().to_string(),
            name,
            quantity: line.quantity,
            available: price.is_some(),
            list_price: price.as_ref().map(|p| p.list_price.clone()),
            unit_price: price.as_ref().map(|p| p.unit_price.clone()),
            discount: price.as_ref().map(|p| p.discount.clone()),
            line_total: price.as_ref().map(|p| p.line_total.clone()),
            explanation: price.map(|p| p.explanation).unwrap_or_default(),
        });
    }
    Ok(PricedCart {
        lines,
        item_count,
        subtotal,
        updated_ms: cart.map_or(0, |c| c.updated_ms),
        version: cart.map_or(0, |c| c.version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::ListingCommand;
    // Commands apply as the state machine applies them (idempotency, savepoint).
    use crate::store::memory::{apply, MemoryStore};
    use crate::{Actor, Role};

    fn ctx(i: u64, now_ms: u64) -> ApplyContext {
        ApplyContext {
            log_index: i,
            version: i,
            now_ms,
        }
    }

    fn list(store: &mut MemoryStore, sku: &str, currency: &str, i: u64) {
        let command = ListingCommand::Upsert {
            actor: Actor {
                user_id: "root".into(),
                role: Role::Admin,
            },
            sku: Sku::parse(sku).unwrap(),
            name: sku.into(),
            price: Money::parse("price", 150, currency).unwrap(),
            vendor_id: None,
            active: true,
        };
        apply(&command, &ctx(i, 0), store).unwrap().unwrap();
    }

    fn set(owner: &CartOwner, sku: &str, quantity: u64, mode: LineMode) -> CartCommand {
        CartCommand::SetLine {
            owner: owner.clone(),
            sku: Sku::parse(sku).unwrap(),
            quantity,
            mode,
        }
    }

    #[test]
    fn lines_add_set_remove_and_keep_one_currency() {
        let mut s = MemoryStore::default();
        list(&mut s, "A", "EUR", 1);
        list(&mut s, "U", "USD", 2);
        let ann = CartOwner::User("ann".into());
        apply(&set(&ann, "A", 2, LineMode::Add), &ctx(3, 10), &mut s)
            .unwrap()
            .unwrap();
        apply(&set(&ann, "A", 3, LineMode::Add), &ctx(4, 20), &mut s)
            .unwrap()
            .unwrap();
        let err = apply(&set(&ann, "U", 1, LineMode::Add), &ctx(5, 30), &mut s).unwrap();
        assert_eq!(err.unwrap_err().code(), "currency_mismatch");
        let err = apply(&set(&ann, "Z", 1, LineMode::Add), &ctx(6, 30), &mut s).unwrap();
        assert_eq!(err.unwrap_err().code(), "sku_not_for_sale");
        let err = apply(
            &set(&ann, "A", MAX_LINE_QUANTITY, LineMode::Add),
            &ctx(7, 30),
            &mut s,
        );
        assert_eq!(err.unwrap().unwrap_err().code(), "validation_failed");
        let cart = get(&s, &ann).unwrap().unwrap();
        assert_eq!(
            (cart.lines[0].quantity, cart.created_ms, cart.updated_ms),
            (5, 10, 20)
        );
        let priced = priced(&s, Some(&cart), 0).unwrap();
        assert_eq!(priced.subtotal.unwrap().amount, 750);
        apply(&set(&ann, "A", 0, LineMode::Set), &ctx(8, 40), &mut s)
            .unwrap()
            .unwrap();
        assert!(get(&s, &ann).unwrap().unwrap().lines.is_empty());
        // Once empty, another currency is fine.
        apply(&set(&ann, "U", 1, LineMode::Add), &ctx(9, 50), &mut s)
            .unwrap()
            .unwrap();
    }

    #[test]
    fn adding_takes_at_least_one_unit_in_the_parser_and_the_command() {
        assert_eq!(parse_added_quantity(1).unwrap(), 1);
        assert_eq!(
            parse_added_quantity(MAX_LINE_QUANTITY as i64).unwrap(),
            MAX_LINE_QUANTITY
        );
        for raw in [0, -1, MAX_LINE_QUANTITY as i64 + 1] {
            assert_eq!(
                parse_added_quantity(raw).unwrap_err().code(),
                "validation_failed",
                "{raw}"
            );
        }
        // Setting a line to 0 removes it; adding 0 units is refused, also
        // when the command did not come through the parser.
        let ann = CartOwner::User("ann".into());
        assert!(set(&ann, "A", 0, LineMode::Set).validate().is_ok());
        assert!(set(&ann, "A", 0, LineMode::Add).validate().is_err());
        assert!(set(&ann, "A", 1, LineMode::Add).validate().is_ok());
    }

    #[test]
    fn guest_carts_merge_and_idle_carts_expire() {
        let mut s = MemoryStore::default();
        list(&mut s, "A", "EUR", 1);
        let guest = CartOwner::Guest("hash".into());
        let ann = CartOwner::User("ann".into());
        apply(&set(&guest, "A", 2, LineMode::Add), &ctx(2, 100), &mut s)
            .unwrap()
            .unwrap();
        apply(&set(&ann, "A", 1, LineMode::Add), &ctx(3, 100), &mut s)
            .unwrap()
            .unwrap();
        let merge = CartCommand::Merge {
            guest: guest.clone(),
            user: ann.clone(),
        };
        apply(&merge, &ctx(4, 200), &mut s).unwrap().unwrap();
        assert_eq!(get(&s, &ann).unwrap().unwrap().lines[0].quantity, 3);
        assert!(get(&s, &guest).unwrap().is_none());
        apply(&set(&guest, "A", 1, LineMode::Add), &ctx(5, 300), &mut s)
            .unwrap()
            .unwrap();
        assert_eq!(oldest_update(&s).unwrap(), Some(200));
        // Idle for 150 ms at t=400: only ann's cart (last changed at 200) goes.
        let out = apply(&CartCommand::Expire { idle_ms: 150 }, &ctx(6, 400), &mut s).unwrap();
        assert_eq!(out.unwrap(), Response::Expired { removed: 1 });
        assert!(get(&s, &ann).unwrap().is_none());
        assert!(get(&s, &guest).unwrap().is_some());
        assert_eq!(oldest_update(&s).unwrap(), Some(300));
    }
}
