//! Unit and property tests of line pricing, promotions and coupons.

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
