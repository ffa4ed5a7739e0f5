//! Promotions: their kinds and targets, and how they price a line
//! ([`price_line`], rules 1 to 6 of the module doc of `pricing`).

use super::*;

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

/// Creates or replaces a promotion: admins, or a vendor for promotions on
/// its own products (`Target::Vendor(itself)`).
pub(super) fn upsert(
    store: &mut dyn StoreMut,
    ctx: &ApplyContext,
    actor: &Actor,
    promotion: &Promotion,
) -> Result<Response, ApplyError> {
    let own = |v: &str| actor.role == Role::Vendor && actor.user_id == v;
    let allowed = actor.is_admin() || matches!(&promotion.target, Target::Vendor(v) if own(v));
    let existing: Option<Promotion> =
        store.get(PROMOTIONS, &[KeyPart::Str(promotion.id.as_str())])?;
    let may_replace = existing
        .as_ref()
        .is_none_or(|p| actor.is_admin() || matches!(&p.target, Target::Vendor(v) if own(v)));
    if !allowed || !may_replace {
        return Err(DomainError::Forbidden.into());
    }
    if existing.is_none() && promotions(store)?.len() >= MAX_PROMOTIONS {
        return Err(
            DomainError::validation("id", format!("at most {MAX_PROMOTIONS} promotions")).into(),
        );
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
