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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    All,
    Product(CatalogId),
    /// The category and everything below it.
    Category(CatalogId),
    Vendor(String),
    Sku(Sku),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub min_quantity: u64,
    pub unit_price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromotionKind {
    /// A percentage off the line.
    Percent { basis_points: u32 },
    /// An amount off each unit.
    AmountOff { per_unit: Money },
    /// A unit price replacing the list price when lower.
    SalePrice { unit_price: Money },
    /// Unit prices by quantity.
    Tiered { tiers: Vec<Tier> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub id: CatalogId,
    pub name: String,
    pub kind: PromotionKind,
    pub target: Target,
    pub starts_ms: Option<u64>,
    pub ends_ms: Option<u64>,
    /// Whether it adds to the best non-stackable discount.
    pub stackable: bool,
    pub active: bool,
    pub version: u64,
}

impl Promotion {
    fn live(&self, now_ms: u64) -> bool {
        self.active
            && self.starts_ms.is_none_or(|s| now_ms >= s)
            && self.ends_ms.is_none_or(|e| now_ms < e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CouponKind {
    Percent { basis_points: u32 },
    AmountOff { amount: Money },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    /// Upper case, 3 to 40 characters of A-Z 0-9 - _.
    pub code: String,
    pub kind: CouponKind,
    pub min_subtotal: Option<Money>,
    pub usage_limit: Option<u64>,
    pub per_customer_limit: Option<u64>,
    pub used: u64,
    pub starts_ms: Option<u64>,
    pub ends_ms: Option<u64>,
    pub active: bool,
    pub version: u64,
}

/// A coupon code as typed: trimmed and upper-cased.
pub fn parse_code(raw: &str) -> Result<String, DomainError> {
    let code = raw.trim().to_ascii_uppercase();
    let ok = (3..=40).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(code)
    } else {
        Err(DomainError::validation(
            "code",
            "must be 3 to 40 characters of A-Z 0-9 - _",
        ))
    }
}

/// Checks a promotion's shape (amounts, percentages, tiers).
pub fn validate_kind(kind: &PromotionKind) -> Result<(), DomainError> {
    match kind {
        PromotionKind::Percent { basis_points } if *basis_points == 0 || *basis_points > FULL => {
            Err(DomainError::validation(
                "basis_points",
                "must be 1 to 10000",
            ))
        }
        PromotionKind::Tiered { tiers } if tiers.is_empty() || tiers.len() > 20 => {
            Err(DomainError::validation("tiers", "1 to 20 tiers"))
        }
        PromotionKind::Tiered { tiers }
            if tiers.iter().any(|t| t.min_quantity < 2)
                || tiers.windows(2).any(
                    |w| matches!(w, [a, b] if a.unit_price.currency != b.unit_price.currency),
                ) =>
        {
            Err(DomainError::validation(
                "tiers",
                "min_quantity must be 2 or more, all tiers in one currency",
            ))
        }
        _ => Ok(()),
    }
}

impl Target {
    fn check(&self) -> Result<(), DomainError> {
        match self {
            Target::All => Ok(()),
            Target::Product(id) | Target::Category(id) => id.check(),
            Target::Vendor(v) => check::opaque("vendor_id", v),
            Target::Sku(sku) => sku.check(),
        }
    }
}

impl Promotion {
    /// Everything the API checks of a promotion, money included.
    pub fn check(&self) -> Result<(), DomainError> {
        self.id.check()?;
        check::text("name", &self.name, 200)?;
        validate_kind(&self.kind)?;
        match &self.kind {
            PromotionKind::Percent { .. } => {}
            PromotionKind::AmountOff { per_unit } => per_unit.check("amount_off_per_unit")?,
            PromotionKind::SalePrice { unit_price } => unit_price.check("sale_price")?,
            PromotionKind::Tiered { tiers } => {
                for tier in tiers {
                    tier.unit_price.check("tiers")?;
                }
            }
        }
        self.target.check()?;
        check::window(self.starts_ms, self.ends_ms)
    }
}

impl Coupon {
    /// Everything the API checks of a coupon, money included.
    pub fn check(&self) -> Result<(), DomainError> {
        check::canonical("code", &self.code, parse_code(&self.code))?;
        match &self.kind {
            CouponKind::Percent { basis_points } if (1..=FULL).contains(basis_points) => {}
            CouponKind::Percent { .. } => {
                return Err(DomainError::validation("percent_bp", "must be 1 to 10000"))
            }
            CouponKind::AmountOff { amount } => amount.check("amount_off")?,
        }
        match &self.min_subtotal {
            Some(min) => min.check("min_subtotal"),
            None => Ok(()),
        }
    }
}

impl PricingCommand {
    /// Checks the command's fields (see [`crate::Command::validate`]).
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            Self::UpsertPromotion { promotion, .. } => promotion.check(),
            Self::UpsertCoupon { coupon } => coupon.check(),
        }
    }
}

/// One step of how a line's price was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// `list_price`, `sale_price`, `tier_price`, `percent`, `amount_off`.
    pub rule: String,
    pub promotion_id: Option<String>,
    pub description: String,
    /// The line amount after this step.
    pub line_amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    pub sku: Sku,
    pub quantity: u64,
    pub list_price: Money,
    /// After sale and tier prices.
    pub unit_price: Money,
    /// Taken off by percentage and amount-off promotions.
    pub discount: Money,
    pub line_total: Money,
    pub explanation: Vec<Step>,
}

/// What a line is for pricing: the listing and where its SKU sits in the catalogue.
pub struct LineContext {
    pub listing: Listing,
    pub product_id: Option<CatalogId>,
    /// The product's category and its ancestors.
    pub categories: Vec<CatalogId>,
}

impl LineContext {
    pub fn load(store: &dyn Store, listing: Listing) -> Result<Self, StoreFault> {
        let product = catalog::product_of_sku(store, &listing.sku)?;
        let categories = match product.as_ref().and_then(|p| p.category_id.as_ref()) {
            Some(c) => catalog::ancestors(store, c)?
                .into_iter()
                .map(|c| c.id)
                .collect(),
            None => Vec::new(),
        };
        Ok(Self {
            product_id: product.map(|p| p.id),
            categories,
            listing,
        })
    }

    fn targets(&self, target: &Target) -> bool {
        match target {
            Target::All => true,
            Target::Product(p) => self.product_id.as_ref() == Some(p),
            Target::Category(c) => self.categories.contains(c),
            Target::Vendor(v) => self.listing.vendor_id.as_deref() == Some(v.as_str()),
            Target::Sku(s) => &self.listing.sku == s,
        }
    }
}

/// Every promotion (at most [`MAX_PROMOTIONS`]).
pub fn promotions(store: &dyn Store) -> Result<Vec<Promotion>, StoreFault> {
    store.scan(PROMOTIONS, &[], None, MAX_PROMOTIONS)
}

fn money(amount: i64, currency: &Currency) -> Money {
    Money {
        amount,
        currency: currency.clone(),
    }
}

/// Prices `quantity` units of a line at `now_ms` under `promotions` (pure).
pub fn price_line(
    line: &LineContext,
    quantity: u64,
    now_ms: u64,
    promotions: &[Promotion],
) -> Option<PricedLine> {
    let list = &line.listing.price;
    let currency = &list.currency;
    let applicable: Vec<&Promotion> = promotions
        .iter()
        .filter(|p| p.live(now_ms) && line.targets(&p.target))
        .collect();
    let mut unit = list.amount;
    let mut steps = vec![Step {
        rule: "list_price".into(),
        promotion_id: None,
        description: format!("list price {} × {quantity}", list.amount),
        line_amount: list.times(quantity)?.amount,
    }];
    let mut lower = |rule: &str, p: &Promotion, price: &Money, what: String| {
        if price.currency == *currency && price.amount < unit {
            unit = price.amount.max(0);
            steps.push(Step {
                rule: rule.into(),
                promotion_id: Some(p.id.as_str().to_string()),
                description: what,
                line_amount: money(unit, currency).times(quantity)?.amount,
            });
        }
        Some(())
    };
    for p in &applicable {
        if let PromotionKind::SalePrice { unit_price } = &p.kind {
            lower(
                "sale_price",
                p,
                unit_price,
                format!("{}: sale price {}", p.name, unit_price.amount),
            )?;
        }
    }
    for p in &applicable {
        if let PromotionKind::Tiered { tiers } = &p.kind {
            if let Some(t) = tiers
                .iter()
                .filter(|t| t.min_quantity <= quantity)
                .max_by_key(|t| t.min_quantity)
            {
                let what = format!(
                    "{}: {} or more at {}",
                    p.name, t.min_quantity, t.unit_price.amount
                );
                lower("tier_price", p, &t.unit_price, what)?;
            }
        }
    }
    let subtotal = money(unit, currency).times(quantity)?.amount;
    let discount_of = |p: &Promotion, remaining: i64| -> Option<i64> {
        match &p.kind {
            PromotionKind::Percent { basis_points } => Some(percent_of(remaining, *basis_points)),
            PromotionKind::AmountOff { per_unit } if per_unit.currency == *currency => {
                Some(per_unit.times(quantity)?.amount)
            }
            _ => None,
        }
        .map(|d| within(d, remaining))
    };
    let mut remaining = subtotal;
    let best = applicable
        .iter()
        .filter(|p| !p.stackable)
        .filter_map(|p| discount_of(p, subtotal).map(|d| (d, *p)))
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.id.cmp(&a.1.id)));
    let mut chosen: Vec<&Promotion> = best
        .into_iter()
        .filter(|(d, _)| *d > 0)
        .map(|(_, p)| p)
        .collect();
    let mut stackable: Vec<&Promotion> =
        applicable.iter().filter(|p| p.stackable).copied().collect();
    stackable.sort_by(|a, b| a.id.cmp(&b.id));
    chosen.extend(stackable);
    for p in chosen {
        let Some(d) = discount_of(p, remaining) else {
            continue;
        };
        if d == 0 {
            continue;
        }
        // 0 < d <= remaining: no overflow.
        remaining = remaining.saturating_sub(d);
        let rule = match p.kind {
            PromotionKind::Percent { .. } => "percent",
            _ => "amount_off",
        };
        steps.push(Step {
            rule: rule.into(),
            promotion_id: Some(p.id.as_str().to_string()),
            description: format!("{}: −{d}", p.name),
            line_amount: remaining,
        });
    }
    Some(PricedLine {
        sku: line.listing.sku.clone(),
        quantity,
        list_price: list.clone(),
        unit_price: money(unit, currency),
        discount: money(subtotal.saturating_sub(remaining), currency),
        line_total: money(remaining, currency),
        explanation: steps,
    })
}

/// The discount a coupon gives on `subtotal` (pure), or why it does not apply.
pub fn coupon_discount(
    coupon: &Coupon,
    subtotal: &Money,
    now_ms: u64,
    customer_uses: u64,
) -> Result<Money, DomainError> {
    let refuse = |why: &str| {
        Err(DomainError::CouponNotApplicable {
            code: coupon.code.clone(),
            reason: why.to_string(),
        })
    };
    if !coupon.active
        || coupon.starts_ms.is_some_and(|s| now_ms < s)
        || coupon.ends_ms.is_some_and(|e| now_ms >= e)
    {
        return refuse("not active now");
    }
    if coupon.usage_limit.is_some_and(|l| coupon.used >= l) {
        return refuse("usage limit reached");
    }
    if coupon
        .per_customer_limit
        .is_some_and(|l| customer_uses >= l)
    {
        return refuse("you already used it");
    }
    if let Some(min) = &coupon.min_subtotal {
        if min.currency != subtotal.currency || subtotal.amount < min.amount {
            return refuse("the order does not reach its minimum");
        }
    }
    let amount = match &coupon.kind {
        CouponKind::Percent { basis_points } => percent_of(subtotal.amount, *basis_points),
        CouponKind::AmountOff { amount } if amount.currency == subtotal.currency => amount.amount,
        CouponKind::AmountOff { .. } => return refuse("it is in another currency"),
    };
    Ok(money(within(amount, subtotal.amount), &subtotal.currency))
}

pub fn get_coupon(store: &dyn Store, code: &str) -> Result<Option<Coupon>, StoreFault> {
    store.get(COUPONS, &[KeyPart::Str(code)])
}

pub fn customer_uses(store: &dyn Store, code: &str, customer: &str) -> Result<u64, StoreFault> {
    Ok(store
        .get::<u64>(REDEMPTIONS, &[KeyPart::Str(code), KeyPart::Str(customer)])?
        .unwrap_or(0))
}

/// Redeems a coupon once for `customer` (inside the checkout command).
pub(crate) fn redeem(
    store: &mut dyn StoreMut,
    coupon: &Coupon,
    customer: &str,
    ctx: &ApplyContext,
) -> Result<(), StoreFault> {
    let uses = customer_uses(store, &coupon.code, customer)?;
    store::put(
        store,
        REDEMPTIONS,
        &[KeyPart::Str(&coupon.code), KeyPart::Str(customer)],
        &uses.saturating_add(1),
    )?;
    let mut next = coupon.clone();
    next.used = next.used.saturating_add(1);
    next.version = ctx.version;
    store::put(store, COUPONS, &[KeyPart::Str(&coupon.code)], &next)
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
            let own = |v: &str| actor.role == Role::Vendor && actor.user_id == v;
            let allowed =
                actor.is_admin() || matches!(&promotion.target, Target::Vendor(v) if own(v));
            let existing: Option<Promotion> =
                store.get(PROMOTIONS, &[KeyPart::Str(promotion.id.as_str())])?;
            let may_replace = existing.as_ref().is_none_or(|p| {
                actor.is_admin() || matches!(&p.target, Target::Vendor(v) if own(v))
            });
            if !allowed || !may_replace {
                return Err(DomainError::Forbidden.into());
            }
            if existing.is_none() && promotions(store)?.len() >= MAX_PROMOTIONS {
                return Err(DomainError::validation(
                    "id",
                    format!("at most {MAX_PROMOTIONS} promotions"),
                )
                .into());
            }
            let stored = Promotion {
                version: ctx.version,
                ..promotion.clone()
            };
            store::put(
                store,
                PROMOTIONS,
                &[KeyPart::Str(stored.id.as_str())],
                &stored,
            )?;
            Ok(Response::Promotion(stored))
        }
        PricingCommand::UpsertCoupon { coupon } => {
            let used = get_coupon(store, &coupon.code)?.map_or(0, |c| c.used);
            let stored = Coupon {
                used,
                version: ctx.version,
                ..coupon.clone()
            };
            store::put(store, COUPONS, &[KeyPart::Str(&stored.code)], &stored)?;
            Ok(Response::Coupon(stored))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur(amount: i64) -> Money {
        Money::parse("m", amount, "EUR").unwrap()
    }

    fn line(price: i64) -> LineContext {
        LineContext {
            listing: Listing {
                sku: Sku::parse("A").unwrap(),
                name: "A".into(),
                price: eur(price),
                vendor_id: Some("v1".into()),
                active: true,
                version: 1,
            },
            product_id: Some(CatalogId::parse("id", "p1").unwrap()),
            categories: vec![
                CatalogId::parse("id", "shirts").unwrap(),
                CatalogId::parse("id", "men").unwrap(),
            ],
        }
    }

    fn promo(id: &str, kind: PromotionKind, target: Target, stackable: bool) -> Promotion {
        Promotion {
            id: CatalogId::parse("id", id).unwrap(),
            name: id.into(),
            kind,
            target,
            starts_ms: Some(100),
            ends_ms: Some(200),
            stackable,
            active: true,
            version: 1,
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(percent_of(1005, 1000), 101); // 100.5 → 101
        assert_eq!(percent_of(1004, 1000), 100);
        assert_eq!(percent_of(-1005, 1000), -101);
        assert_eq!(percent_of(999, FULL), 999);
    }

    #[test]
    fn sale_tier_best_non_stackable_then_stackable() {
        let men = Target::Category(CatalogId::parse("id", "men").unwrap());
        let promos = vec![
            promo(
                "sale",
                PromotionKind::SalePrice {
                    unit_price: eur(900),
                },
                Target::All,
                false,
            ),
            promo(
                "bulk",
                PromotionKind::Tiered {
                    tiers: vec![
                        Tier {
                            min_quantity: 3,
                            unit_price: eur(850),
                        },
                        Tier {
                            min_quantity: 10,
                            unit_price: eur(800),
                        },
                    ],
                },
                Target::Sku(Sku::parse("A").unwrap()),
                false,
            ),
            promo(
                "ten",
                PromotionKind::Percent { basis_points: 1000 },
                men.clone(),
                false,
            ),
            promo(
                "fifty-off",
                PromotionKind::AmountOff { per_unit: eur(50) },
                Target::Vendor("v1".into()),
                false,
            ),
            promo(
                "extra",
                PromotionKind::Percent { basis_points: 500 },
                men,
                true,
            ),
            promo(
                "other",
                PromotionKind::Percent { basis_points: 9000 },
                Target::Vendor("v2".into()),
                false,
            ),
        ];
        let priced = price_line(&line(1000), 4, 150, &promos).unwrap();
        // 1000 → sale 900 → tier (3+) 850; subtotal 3400; best of 10 % (340) and 4 × 50 (200) is
        // 10 %: 3060; then the stackable 5 %: 3060 − 153 = 2907.
        assert_eq!(priced.unit_price.amount, 850);
        assert_eq!(priced.line_total.amount, 2907);
        assert_eq!(priced.discount.amount, 3400 - 2907);
        let rules: Vec<&str> = priced.explanation.iter().map(|s| s.rule.as_str()).collect();
        assert_eq!(
            rules,
            [
                "list_price",
                "sale_price",
                "tier_price",
                "percent",
                "percent"
            ]
        );
        // Outside the window only the list price applies.
        let later = price_line(&line(1000), 4, 250, &promos).unwrap();
        assert_eq!(later.line_total.amount, 4000);
    }

    #[test]
    fn coupons_check_window_minimum_and_limits() {
        let mut coupon = Coupon {
            code: "WELCOME10".into(),
            kind: CouponKind::Percent { basis_points: 1000 },
            min_subtotal: Some(eur(2000)),
            usage_limit: Some(2),
            per_customer_limit: Some(1),
            used: 0,
            starts_ms: None,
            ends_ms: None,
            active: true,
            version: 1,
        };
        assert_eq!(
            coupon_discount(&coupon, &eur(2500), 0, 0).unwrap().amount,
            250
        );
        assert_eq!(
            coupon_discount(&coupon, &eur(1999), 0, 0)
                .unwrap_err()
                .code(),
            "coupon_not_applicable"
        );
        assert!(
            coupon_discount(&coupon, &eur(2500), 0, 1).is_err(),
            "per customer"
        );
        coupon.used = 2;
        assert!(coupon_discount(&coupon, &eur(2500), 0, 0).is_err(), "total");
        coupon.used = 0;
        coupon.kind = CouponKind::AmountOff {
            amount: eur(99_999),
        };
        assert_eq!(
            coupon_discount(&coupon, &eur(2500), 0, 0).unwrap().amount,
            2500,
            "never below zero"
        );
        assert_eq!(parse_code(" welcome-10 ").unwrap(), "WELCOME-10");
    }

    /// Regression: a negative amount (a price no rule accepts, but one a
    /// command carried before `apply` checked prices) reached
    /// `clamp(0, negative)`, which panics. It now gets no discount.
    #[test]
    fn a_negative_amount_gets_no_discount_and_does_not_panic() {
        let negative = Money {
            amount: -500,
            currency: eur(0).currency,
        };
        for kind in [
            CouponKind::Percent { basis_points: 1000 },
            CouponKind::AmountOff { amount: eur(300) },
        ] {
            let coupon = Coupon {
                code: "WELCOME".into(),
                kind,
                min_subtotal: None,
                usage_limit: None,
                per_customer_limit: None,
                used: 0,
                starts_ms: None,
                ends_ms: None,
                active: true,
                version: 1,
            };
            assert_eq!(coupon_discount(&coupon, &negative, 0, 0).unwrap().amount, 0);
        }
        let mut context = line(1000);
        context.listing.price = Money {
            amount: -1000,
            ..context.listing.price
        };
        let promos = [
            promo(
                "ten",
                PromotionKind::Percent { basis_points: 1000 },
                Target::All,
                true,
            ),
            promo(
                "off",
                PromotionKind::AmountOff { per_unit: eur(50) },
                Target::All,
                true,
            ),
        ];
        let priced = price_line(&context, 2, 150, &promos).unwrap();
        assert_eq!(priced.line_total.amount, -2000);
        assert_eq!(priced.discount.amount, 0);
    }

    #[test]
    fn percent_of_extreme_amounts_saturates() {
        assert_eq!(percent_of(i64::MAX, FULL), i64::MAX);
        assert_eq!(percent_of(i64::MAX, u32::MAX), i64::MAX);
        assert_eq!(percent_of(i64::MIN, u32::MAX), i64::MIN);
        assert_eq!(percent_of(i64::MIN, 0), 0);
    }

    proptest! {
        /// No combination of promotions makes a price negative or raises it.
        #[test]
        fn discounts_never_go_negative(
            price in 0i64..100_000,
            quantity in 1u64..50,
            percents in prop::collection::vec((1u32..=FULL, any::<bool>()), 0..4),
            offs in prop::collection::vec((0i64..200_000, any::<bool>()), 0..4),
            sale in prop::option::of(0i64..100_000),
        ) {
            let mut promos = Vec::new();
            for (i, (bp, stack)) in percents.iter().enumerate() {
                promos.push(promo(&format!("p{i}"), PromotionKind::Percent { basis_points: *bp }, Target::All, *stack));
            }
            for (i, (off, stack)) in offs.iter().enumerate() {
                promos.push(promo(&format!("o{i}"), PromotionKind::AmountOff { per_unit: eur(*off) }, Target::All, *stack));
            }
            if let Some(s) = sale {
                promos.push(promo("s", PromotionKind::SalePrice { unit_price: eur(s) }, Target::All, false));
            }
            let priced = price_line(&line(price), quantity, 150, &promos).unwrap();
            prop_assert!(priced.line_total.amount >= 0);
            prop_assert!(priced.line_total.amount <= price * quantity as i64);
            prop_assert_eq!(
                priced.line_total.amount + priced.discount.amount,
                priced.unit_price.amount * quantity as i64
            );
            prop_assert_eq!(priced.explanation.last().unwrap().line_amount, priced.line_total.amount);
        }
    }
}
