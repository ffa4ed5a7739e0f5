//! SKU listings: what a SKU is sold as (name, list price, owning vendor).
//! Carts price their lines from here when they are read, and checkout
//! snapshots these prices into the order. The catalogue (products with
//! variants) writes these records for its variants; until then they are set
//! directly.

use serde::{Deserialize, Serialize};

use crate::check;
use crate::command::{ApplyContext, Response};
use crate::inventory::Sku;
use crate::money::Money;
use crate::store::{self, KeyPart, Store, StoreExt, StoreFault, StoreMut};
use crate::{Actor, ApplyError, DomainError, Event};

/// Listings keyed by SKU.
pub const LISTINGS: &str = "catalog_listings";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub sku: Sku,
    pub name: String,
    pub price: Money,
    /// The vendor that sells it; `None` for the shop itself.
    pub vendor_id: Option<String>,
    /// Inactive listings cannot be added to carts or checked out.
    pub active: bool,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ListingCommand {
    Upsert {
        actor: Actor,
        sku: Sku,
        name: String,
        price: Money,
        vendor_id: Option<String>,
        active: bool,
    },
}

/// A display name: 1 to 200 characters, not only spaces.
pub fn parse_name(field: &str, raw: &str) -> Result<String, DomainError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || raw.chars().count() > 200 {
        return Err(DomainError::validation(
            field,
            "must be 1 to 200 characters",
        ));
    }
    Ok(trimmed.to_string())
}

impl ListingCommand {
    /// Checks the command's fields (see [`crate::Command::validate`]).
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            Self::Upsert {
                sku,
                name,
                price,
                vendor_id,
                ..
            } => {
                sku.check()?;
                check::text("name", name, 200)?;
                price.check("price")?;
                match vendor_id {
                    Some(v) => check::opaque("vendor_id", v),
                    None => Ok(()),
                }
            }
        }
    }
}

pub fn apply(
    command: &ListingCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Response, ApplyError> {
    match command {
        ListingCommand::Upsert {
            actor,
            sku,
            name,
            price,
            vendor_id,
            active,
        } => {
            let existing = get(store, sku)?;
            // A vendor manages only its own listings, and cannot give one away.
            let owner_ok = |v: &Option<String>| match v {
                Some(v) => actor.may_manage_vendor(v),
                None => actor.is_admin(),
            };
            let allowed =
                owner_ok(vendor_id) && existing.as_ref().is_none_or(|l| owner_ok(&l.vendor_id));
            if !allowed {
                return Err(DomainError::Forbidden.into());
            }
            let listing = Listing {
                sku: sku.clone(),
                name: name.clone(),
                price: price.clone(),
                vendor_id: vendor_id.clone(),
                active: *active,
                version: ctx.version,
            };
            store::put(store, LISTINGS, &[KeyPart::Str(sku.as_str())], &listing)?;
            store.emit(Event::ListingUpserted(listing.clone()));
            Ok(Response::Listing(listing))
        }
    }
}

pub fn get(store: &dyn Store, sku: &Sku) -> Result<Option<Listing>, StoreFault> {
    store.get(LISTINGS, &[KeyPart::Str(sku.as_str())])
}
