//! Pricing and discounts: how a line's price is reached, and coupons.
//!
//! Rules, in order, for one line (`quantity` units of a SKU):
//!
//! 1. **List price** of the SKU's listing.
//! 2. **Sale price**: the lowest sale price among the promotions in their
//!    time window that target the line replaces the list price if lower.
//! 3. **Tiered price**: among tiered promotions, the tier with the largest
//!    `min_quantity` not above the quantity gives a unit price, used if lower.
//! 4. Line subtotal = unit price × quantity.
//! 5. **Discounts**: of the non-stackable percentage / amount-off promotions,
//!    only the one giving the largest discount applies; then every stackable
//!    one applies, in id order, each to what remains.
//! 6. A line total never goes below zero.
//!
//! Then for the order: subtotal = sum of line totals; a **coupon** takes a
//! percentage or an amount off the subtotal (never below zero), if it is
//! active, in its window, the subtotal reaches its minimum, and its total and
//! per-customer usage limits are not reached. Redeeming is part of the
//! checkout command, so a limit of 100 is never exceeded, whatever the
//! concurrency.
//!
//! Rounding: money is integer minor units; a percentage of an amount is
//! rounded half away from zero to the minor unit (`percent_of`). Nothing else
//! divides.
//!
//! Promotions and line pricing are in `promotions`, coupons in `coupons`;
//! this file holds the rounding, the command and its dispatch.

use serde::{Deserialize, Serialize};

use crate::catalog::{self, CatalogId};
use crate::check;
use crate::command::{ApplyContext, Response};
use crate::inventory::Sku;
use crate::listing::Listing;
use crate::money::{Currency, Money};
use crate::store::{self, KeyPart, Store, StoreExt, StoreFault, StoreMut};
use crate::{Actor, ApplyError, DomainError, Role};

pub const PROMOTIONS: &str = "pricing_promotions";
pub const COUPONS: &str = "pricing_coupons";
/// (coupon code, customer id) → redemptions.
pub const REDEMPTIONS: &str = "pricing_coupon_redemptions";
/// Most promotions that can exist (each pricing reads them all).
pub const MAX_PROMOTIONS: usize = 1000;

/// Basis points: 1/100 of a percent; 10000 = 100 %.
pub const FULL: u32 = 10_000;

/// `amount × bp / 10000`, rounded half away from zero (saturating at the
/// ends of `i64`, which only more than 100 % of an extreme amount reaches).
pub fn percent_of(amount: i64, basis_points: u32) -> i64 {
    // |amount × bp| < 2^63 × 2^32: no i128 operation below can overflow.
    let full = i128::from(FULL);
    let product = i128::from(amount).saturating_mul(i128::from(basis_points));
    let (q, r) = (
        product.checked_div(full).unwrap_or(0),
        product.checked_rem(full).unwrap_or(0),
    );
    let rounded = if r.saturating_abs().saturating_mul(2) >= full {
        q.saturating_add(product.signum())
    } else {
        q
    };
    i64::try_from(rounded).unwrap_or(if rounded < 0 { i64::MIN } else { i64::MAX })
}

/// `value` kept within `0..=max`, and 0 when `max` is negative (a negative
/// amount gets no discount). Unlike `clamp`, it cannot panic.
fn within(value: i64, max: i64) -> i64 {
    value.min(max).max(0)
}

mod coupons;
mod promotions;

pub(crate) use coupons::redeem;
pub use coupons::{coupon_discount, customer_uses, get_coupon, parse_code, Coupon, CouponKind};
pub use promotions::{
    price_line, promotions, validate_kind, LineContext, PricedLine, Promotion, PromotionKind, Step,
    Target, Tier,
};

impl PricingCommand {
    /// Checks the command's fields (see [`crate::Command::validate`]).
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            Self::UpsertPromotion { promotion, .. } => promotion.check(),
            Self::UpsertCoupon { coupon } => coupon.check(),
        }
    }
}

fn money(amount: i64, currency: &Currency) -> Money {
    Money {
        amount,
        currency: currency.clone(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PricingCommand {
    /// Admins, or a vendor for promotions on its own products (`Target::Vendor(itself)`).
    UpsertPromotion { actor: Actor, promotion: Promotion },
    /// Admins. `used` is kept from the stored coupon.
    UpsertCoupon { coupon: Coupon },
}

pub fn apply(
    command: &PricingCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Response, ApplyError> {
    match command {
        PricingCommand::UpsertPromotion { actor, promotion } => {
            promotions::upsert(store, ctx, actor, promotion)
        }
        PricingCommand::UpsertCoupon { coupon } => coupons::upsert(store, ctx, coupon),
    }
}

#[cfg(test)]
mod tests;
