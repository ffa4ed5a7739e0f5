//! Promotions and coupons (the rules are in `domains::pricing`; carts and
//! checkout apply them).

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use ecommerce_domains::catalog::CatalogId;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::inventory::Sku;
use ecommerce_domains::money::Money;
use ecommerce_domains::pricing::{
    self, Coupon, CouponKind, PricingCommand, Promotion, PromotionKind, Target, Tier,
};
use ecommerce_domains::{Command, DomainError, Response as Reply};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{AdminOnly, VendorOrAdmin};
use super::error::{AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, MutationMeta, ReadParams};
use super::listings::MoneyDto;
use super::{unexpected, App};

fn money(field: &str, m: &MoneyDto) -> Result<Money, DomainError> {
    Money::parse(field, m.amount, &m.currency)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierDto {
    pub min_quantity: u64,
    pub unit_price: MoneyDto,
}

/// Exactly one of `percent_bp`, `amount_off_per_unit`, `sale_price`, `tiers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionBody {
    pub name: String,
    /// Percentage off in basis points (1000 = 10 %).
    pub percent_bp: Option<u32>,
    pub amount_off_per_unit: Option<MoneyDto>,
    pub sale_price: Option<MoneyDto>,
    pub tiers: Option<Vec<TierDto>>,
    /// `all`, or exactly one of the others.
    #[serde(default)]
    pub all: bool,
    pub product_id: Option<String>,
    pub category_id: Option<String>,
    pub vendor_id: Option<String>,
    pub sku: Option<String>,
    pub starts_ms: Option<u64>,
    pub ends_ms: Option<u64>,
    #[serde(default)]
    pub stackable: bool,
    /// Defaults to true.
    pub active: Option<bool>,
}

impl PromotionBody {
    fn promotion(&self, id: &str) -> Result<Promotion, DomainError> {
        let kinds = [
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
        ];
        let mut kinds = kinds.into_iter().flatten();
        let (Some(kind), None) = (kinds.next(), kinds.next()) else {
            return Err(DomainError::validation(
                "percent_bp",
                "give exactly one of percent_bp, amount_off_per_unit, sale_price, tiers",
            ));
        };
        let kind = kind?;
        pricing::validate_kind(&kind)?;
        let targets = [
            self.all.then_some(Ok(Target::All)),
            self.product_id
                .as_deref()
                .map(|p| CatalogId::parse("product_id", p).map(Target::Product)),
            self.category_id
                .as_deref()
                .map(|c| CatalogId::parse("category_id", c).map(Target::Category)),
            self.vendor_id.clone().map(|v| Ok(Target::Vendor(v))),
            self.sku.as_deref().map(|s| Sku::parse(s).map(Target::Sku)),
        ];
        let mut targets = targets.into_iter().flatten();
        let (Some(target), None) = (targets.next(), targets.next()) else {
            return Err(DomainError::validation(
                "all",
                "give exactly one target: all, product_id, category_id, vendor_id or sku",
            ));
        };
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

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PromotionDto {
    pub id: String,
    pub name: String,
    /// The rule as stored.
    #[schema(value_type = Object)]
    pub kind: serde_json::Value,
    #[schema(value_type = Object)]
    pub target: serde_json::Value,
    pub starts_ms: Option<u64>,
    pub ends_ms: Option<u64>,
    pub stackable: bool,
    pub active: bool,
    pub version: u64,
}

impl From<Promotion> for PromotionDto {
    fn from(p: Promotion) -> Self {
        Self {
            id: p.id.as_str().to_string(),
            name: p.name,
            kind: serde_json::to_value(&p.kind).unwrap_or_default(),
            target: serde_json::to_value(&p.target).unwrap_or_default(),
            starts_ms: p.starts_ms,
            ends_ms: p.ends_ms,
            stackable: p.stackable,
            active: p.active,
            version: p.version,
        }
    }
}

/// Create or replace a promotion (admins; vendors for `vendor_id` = themselves).
#[utoipa::path(put, path = "/api/v1/promotions/{id}", tag = "pricing", request_body = PromotionBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = PromotionDto), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_promotion(
    State(state): State<App>,
    VendorOrAdmin(actor): VendorOrAdmin,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<PromotionBody>,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&actor), &body);
    let command = PricingCommand::UpsertPromotion {
        actor,
        promotion: body.promotion(&id)?,
    };
    let committed = state.propose(Command::Pricing(command), tag).await?;
    Ok(committed.respond(|reply| match reply {
        Reply::Promotion(p) => Ok(PromotionDto::from(p)),
        other => Err(unexpected(other)),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromotionList {
    pub items: Vec<PromotionDto>,
}

/// Every promotion.
#[utoipa::path(get, path = "/api/v1/promotions", tag = "pricing", params(ReadParams),
    responses((status = 200, body = PromotionList)))]
pub async fn list_promotions(
    State(state): State<App>,
    AppQuery(params): AppQuery<ReadParams>,
) -> AppResult<Json<PromotionList>> {
    let reader = state.read(params.consistency.unwrap_or_default()).await?;
    let items = pricing::promotions(&reader)?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(PromotionList { items }))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponBody {
    /// Exactly one of `percent_bp` and `amount_off`.
    pub percent_bp: Option<u32>,
    pub amount_off: Option<MoneyDto>,
    pub min_subtotal: Option<MoneyDto>,
    /// Redemptions allowed in all (absent: unlimited).
    pub usage_limit: Option<u64>,
    /// Redemptions allowed per customer (absent: unlimited).
    pub per_customer_limit: Option<u64>,
    pub starts_ms: Option<u64>,
    pub ends_ms: Option<u64>,
    /// Defaults to true.
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CouponDto {
    pub code: String,
    pub percent_bp: Option<u32>,
    pub amount_off: Option<MoneyDto>,
    pub min_subtotal: Option<MoneyDto>,
    pub usage_limit: Option<u64>,
    pub per_customer_limit: Option<u64>,
    /// Redemptions so far.
    pub used: u64,
    pub starts_ms: Option<u64>,
    pub ends_ms: Option<u64>,
    pub active: bool,
    pub version: u64,
}

impl From<Coupon> for CouponDto {
    fn from(c: Coupon) -> Self {
        let (percent_bp, amount_off) = match c.kind {
            CouponKind::Percent { basis_points } => (Some(basis_points), None),
            CouponKind::AmountOff { amount } => (None, Some(amount.into())),
        };
        Self {
            code: c.code,
            percent_bp,
            amount_off,
            min_subtotal: c.min_subtotal.map(Into::into),
            usage_limit: c.usage_limit,
            per_customer_limit: c.per_customer_limit,
            used: c.used,
            starts_ms: c.starts_ms,
            ends_ms: c.ends_ms,
            active: c.active,
            version: c.version,
        }
    }
}

fn coupon_reply(reply: Reply) -> AppResult<CouponDto> {
    match reply {
        Reply::Coupon(c) => Ok(c.into()),
        other => Err(unexpected(other)),
    }
}

/// Create or replace a coupon (admins); its redemption count is kept.
#[utoipa::path(put, path = "/api/v1/coupons/{code}", tag = "pricing", request_body = CouponBody,
    params(("code" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = CouponDto), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_coupon(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    AppPath(code): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<CouponBody>,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&admin), &body);
    let kind = match (body.percent_bp, &body.amount_off) {
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
            )
            .into())
        }
    };
    let coupon = Coupon {
        code: pricing::parse_code(&code)?,
        kind,
        min_subtotal: body
            .min_subtotal
            .as_ref()
            .map(|m| money("min_subtotal", m))
            .transpose()?,
        usage_limit: body.usage_limit,
        per_customer_limit: body.per_customer_limit,
        used: 0,
        starts_ms: body.starts_ms,
        ends_ms: body.ends_ms,
        active: body.active.unwrap_or(true),
        version: 0,
    };
    let committed = state
        .propose(
            Command::Pricing(PricingCommand::UpsertCoupon { coupon }),
            tag,
        )
        .await?;
    Ok(committed.respond(coupon_reply))
}

/// Read a coupon with its redemption count (admins).
#[utoipa::path(get, path = "/api/v1/coupons/{code}", tag = "pricing", params(("code" = String, Path), ReadParams),
    responses((status = 200, body = CouponDto), (status = 404, body = ErrorBody)))]
pub async fn get_coupon(
    State(state): State<App>,
    AdminOnly(_admin): AdminOnly,
    AppPath(code): AppPath<String>,
    AppQuery(params): AppQuery<ReadParams>,
) -> AppResult<Json<CouponDto>> {
    let code = pricing::parse_code(&code)?;
    let reader = state.read(params.consistency.unwrap_or_default()).await?;
    let coupon = pricing::get_coupon(&reader, &code)?.ok_or(DomainError::CouponNotFound(code))?;
    Ok(Json(coupon.into()))
}
