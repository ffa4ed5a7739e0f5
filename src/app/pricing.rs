//! Promotions (admins, or a vendor for its own products) and coupons
//! (admins). The pricing rules themselves are in `domains::pricing`; carts
//! and checkout apply them.

use ecommerce_domains::catalog::CatalogId;
use ecommerce_domains::idempotency::IdempotencyTag;
use ecommerce_domains::inventory::Sku;
use ecommerce_domains::money::Money;
use ecommerce_domains::pricing::{
    self, Coupon, CouponKind, PricingCommand, Promotion, PromotionKind, Target, Tier,
};
use ecommerce_domains::{Actor, Command, DomainError, Response};
use serde::Serialize;

use super::access::{require_admin, require_vendor_or_admin};
use super::{unexpected, App, AppResult, Consistency, MoneyInput, Rendered};

/// A volume price: from `min_quantity` units on, each costs `unit_price`.
#[derive(Debug, Clone, Serialize)]
pub struct TierRequest {
    pub min_quantity: u64,
    pub unit_price: MoneyInput,
}

/// Creating or replacing a promotion: exactly one rule (`percent_bp`,
/// `amount_off_per_unit`, `sale_price`, `tiers`) and exactly one target
/// (`all`, `product_id`, `category_id`, `vendor_id`, `sku`). Its serialized
/// form (the REST body's JSON) is the request's idempotency fingerprint.
#[derive(Debug, Clone, Serialize)]
pub struct PromotionRequest {
    pub name: String,
    /// Percentage off in basis points (1000 = 10 %).
    pub percent_bp: Option<u32>,
    pub amount_off_per_unit: Option<MoneyInput>,
    pub sale_price: Option<MoneyInput>,
    pub tiers: Option<Vec<TierRequest>>,
    pub all: bool,
    pub product_id: Option<String>,
    pub category_id: Option<String>,
    pub vendor_id: Option<String>,
    pub sku: Option<String>,
    pub starts_ms: Option<u64>,
    pub ends_ms: Option<u64>,
    pub stackable: bool,
    /// True when `None`.
    pub active: Option<bool>,
}

/// Creating or replacing a coupon: exactly one of `percent_bp` and
/// `amount_off`. Limits are `None` for unlimited.
#[derive(Debug, Clone, Serialize)]
pub struct CouponRequest {
    pub percent_bp: Option<u32>,
    pub amount_off: Option<MoneyInput>,
    pub min_subtotal: Option<MoneyInput>,
    /// Redemptions allowed in all.
    pub usage_limit: Option<u64>,
    /// Redemptions allowed per customer.
    pub per_customer_limit: Option<u64>,
    pub starts_ms: Option<u64>,
    pub ends_ms: Option<u64>,
    /// True when `None`.
    pub active: Option<bool>,
}

fn money(field: &str, m: &MoneyInput) -> Result<Money, DomainError> {
    Money::parse(field, m.amount, &m.currency)
}

/// The one value of `candidates` that is given, else a validation error on
/// `field` saying `which`.
fn exactly_one<T>(
    candidates: impl IntoIterator<Item = Option<T>>,
    field: &str,
    which: &str,
) -> Result<T, DomainError> {
    let mut given = candidates.into_iter().flatten();
    match (given.next(), given.next()) {
        (Some(one), None) => Ok(one),
        _ => Err(DomainError::validation(field, which)),
    }
}

impl PromotionRequest {
    /// The validated promotion `id` this request describes.
    pub fn promotion(&self, id: &str) -> Result<Promotion, DomainError> {
        let kind = exactly_one(
            [
                self.percent_bp
                    .map(|bp| Ok(PromotionKind::Percent { basis_points: bp })),
                self.amount_off_per_unit.as_ref().map(|m| {
                    Ok(PromotionKind::AmountOff {
                        per_unit: money("amount_off_per_unit", m)?,
                    })
                }),
                self.sale_price.as_ref().map(|m| {
                    Ok(PromotionKind::SalePrice {
                        unit_price: money("sale_price", m)?,
                    })
                }),
                self.tiers.as_ref().map(|tiers| {
                    let tiers = tiers
                        .iter()
                        .map(|t| {
                            Ok(Tier {
                                min_quantity: t.min_quantity,
                                unit_price: money("tiers.unit_price", &t.unit_price)?,
                            })
                        })
                        .collect::<Result<Vec<_>, DomainError>>()?;
                    Ok(PromotionKind::Tiered { tiers })
                }),
            ],
            "percent_bp",
            "give exactly one of percent_bp, amount_off_per_unit, sale_price, tiers",
        )??;
        pricing::validate_kind(&kind)?;
        let target = exactly_one(
            [
                self.all.then_some(Ok(Target::All)),
                self.product_id
                    .as_deref()
                    .map(|p| CatalogId::parse("product_id", p).map(Target::Product)),
                self.category_id
                    .as_deref()
                    .map(|c| CatalogId::parse("category_id", c).map(Target::Category)),
                self.vendor_id.clone().map(|v| Ok(Target::Vendor(v))),
                self.sku.as_deref().map(|s| Sku::parse(s).map(Target::Sku)),
            ],
            "all",
            "give exactly one target: all, product_id, category_id, vendor_id or sku",
        )?;
        if let (Some(s), Some(e)) = (self.starts_ms, self.ends_ms) {
            if e <= s {
                return Err(DomainError::validation(
                    "ends_ms",
                    "must be after starts_ms",
                ));
            }
        }
        Ok(Promotion {
            id: CatalogId::parse("id", id)?,
            name: ecommerce_domains::listing::parse_name("name", &self.name)?,
            kind,
            target: target?,
            starts_ms: self.starts_ms,
            ends_ms: self.ends_ms,
            stackable: self.stackable,
            active: self.active.unwrap_or(true),
            version: 0,
        })
    }
}

impl CouponRequest {
    /// The validated coupon `code` this request describes (its redemption
    /// count is the state's business).
    pub fn coupon(&self, code: &str) -> Result<Coupon, DomainError> {
        let kind = match (self.percent_bp, &self.amount_off) {
            (Some(bp), None) if (1..=pricing::FULL).contains(&bp) => {
                CouponKind::Percent { basis_points: bp }
            }
            (None, Some(m)) => CouponKind::AmountOff {
                amount: money("amount_off", m)?,
            },
            _ => {
                return Err(DomainError::validation(
                    "percent_bp",
                    "give exactly one of percent_bp (1 to 10000) and amount_off",
                ))
            }
        };
        Ok(Coupon {
            code: pricing::parse_code(code)?,
            kind,
            min_subtotal: self
                .min_subtotal
                .as_ref()
                .map(|m| money("min_subtotal", m))
                .transpose()?,
            usage_limit: self.usage_limit,
            per_customer_limit: self.per_customer_limit,
            used: 0,
            starts_ms: self.starts_ms,
            ends_ms: self.ends_ms,
            active: self.active.unwrap_or(true),
            version: 0,
        })
    }
}

impl App {
    /// Creates or replaces promotion `id`: admins, or a vendor for a
    /// promotion targeting itself (decided by the domain).
    pub async fn put_promotion(
        &self,
        actor: &Actor,
        id: &str,
        request: &PromotionRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Promotion>> {
        require_vendor_or_admin(actor)?;
        let command = PricingCommand::UpsertPromotion {
            actor: actor.clone(),
            promotion: request.promotion(id)?,
        };
        let committed = self.propose(Command::Pricing(command), tag).await?;
        Ok(committed.render(|reply| match reply {
            Response::Promotion(p) => Ok(p),
            other => Err(unexpected(other)),
        }))
    }

    /// Every promotion.
    pub async fn promotions(&self, consistency: Consistency) -> AppResult<Vec<Promotion>> {
        let reader = self.read(consistency).await?;
        Ok(pricing::promotions(&reader)?)
    }

    /// Creates or replaces coupon `code` (admins); its redemption count is kept.
    pub async fn put_coupon(
        &self,
        admin: &Actor,
        code: &str,
        request: &CouponRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Coupon>> {
        require_admin(admin)?;
        let coupon = request.coupon(code)?;
        let command = PricingCommand::UpsertCoupon { coupon };
        let committed = self.propose(Command::Pricing(command), tag).await?;
        Ok(committed.render(|reply| match reply {
            Response::Coupon(c) => Ok(c),
            other => Err(unexpected(other)),
        }))
    }

    /// Coupon `code` with its redemption count (admins), or `coupon_not_found`.
    pub async fn coupon(
        &self,
        admin: &Actor,
        code: &str,
        consistency: Consistency,
    ) -> AppResult<Coupon> {
        require_admin(admin)?;
        let code = pricing::parse_code(code)?;
        let reader = self.read(consistency).await?;
        Ok(pricing::get_coupon(&reader, &code)?.ok_or(DomainError::CouponNotFound(code))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(amount: i64) -> MoneyInput {
        MoneyInput {
            amount,
            currency: "EUR".into(),
        }
    }

    fn promotion() -> PromotionRequest {
        PromotionRequest {
            name: "Summer".into(),
            percent_bp: Some(1000),
            amount_off_per_unit: None,
            sale_price: None,
            tiers: None,
            all: true,
            product_id: None,
            category_id: None,
            vendor_id: None,
            sku: None,
            starts_ms: Some(10),
            ends_ms: Some(20),
            stackable: false,
            active: None,
        }
    }

    fn field_of(error: DomainError) -> String {
        match error {
            DomainError::Validation { field, .. } => field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_promotion_needs_exactly_one_rule_and_one_target() {
        let p = promotion().promotion("summer").unwrap();
        assert_eq!(p.kind, PromotionKind::Percent { basis_points: 1000 });
        assert_eq!(p.target, Target::All);
        assert!(p.active);

        let two_rules = PromotionRequest {
            sale_price: Some(eur(500)),
            ..promotion()
        };
        assert_eq!(
            field_of(two_rules.promotion("x").unwrap_err()),
            "percent_bp"
        );
        let no_rule = PromotionRequest {
            percent_bp: None,
            ..promotion()
        };
        assert_eq!(field_of(no_rule.promotion("x").unwrap_err()), "percent_bp");
        let two_targets = PromotionRequest {
            sku: Some("SKU-1".into()),
            ..promotion()
        };
        assert_eq!(field_of(two_targets.promotion("x").unwrap_err()), "all");
        let backwards = PromotionRequest {
            ends_ms: Some(10),
            ..promotion()
        };
        assert_eq!(field_of(backwards.promotion("x").unwrap_err()), "ends_ms");
        let bad_tier = PromotionRequest {
            percent_bp: None,
            tiers: Some(vec![TierRequest {
                min_quantity: 2,
                unit_price: MoneyInput {
                    amount: 100,
                    currency: "??".into(),
                },
            }]),
            ..promotion()
        };
        assert!(bad_tier.promotion("x").is_err());
    }

    #[test]
    fn a_coupon_is_a_percentage_in_range_or_an_amount() {
        let request = CouponRequest {
            percent_bp: Some(2500),
            amount_off: None,
            min_subtotal: Some(eur(1000)),
            usage_limit: Some(100),
            per_customer_limit: Some(1),
            starts_ms: None,
            ends_ms: None,
            active: None,
        };
        let coupon = request.coupon("SAVE25").unwrap();
        assert_eq!(coupon.kind, CouponKind::Percent { basis_points: 2500 });
        assert_eq!(coupon.used, 0);

        for (percent_bp, amount_off) in [
            (Some(0), None),
            (Some(pricing::FULL + 1), None),
            (Some(10), Some(eur(5))),
            (None, None),
        ] {
            let request = CouponRequest {
                percent_bp,
                amount_off,
                ..request.clone()
            };
            assert_eq!(field_of(request.coupon("C").unwrap_err()), "percent_bp");
        }
    }
}
