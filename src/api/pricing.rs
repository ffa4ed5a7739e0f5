//! Promotions and coupons over REST (`app::pricing` holds the use cases).

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::pricing::{Coupon, CouponKind, Promotion};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{AdminOnly, VendorOrAdmin};
use super::error::{AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, MutationMeta, ReadParams};
use super::listings::MoneyDto;
use super::App;
use crate::app::pricing::{CouponRequest, PromotionRequest, TierRequest};

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

impl From<PromotionBody> for PromotionRequest {
    fn from(body: PromotionBody) -> Self {
        Self {
            name: body.name,
            percent_bp: body.percent_bp,
            amount_off_per_unit: body.amount_off_per_unit.map(Into::into),
            sale_price: body.sale_price.map(Into::into),
            tiers: body.tiers.map(|tiers| {
                tiers
                    .into_iter()
                    .map(|t| TierRequest {
                        min_quantity: t.min_quantity,
                        unit_price: t.unit_price.into(),
                    })
                    .collect()
            }),
            all: body.all,
            product_id: body.product_id,
            category_id: body.category_id,
            vendor_id: body.vendor_id,
            sku: body.sku,
            starts_ms: body.starts_ms,
            ends_ms: body.ends_ms,
            stackable: body.stackable,
            active: body.active,
        }
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
    let request = PromotionRequest::from(body);
    let tag = meta.tag(&Principal::from(&actor), &request);
    let rendered = state.put_promotion(&actor, &id, &request, tag).await?;
    Ok(rendered.map(PromotionDto::from).into_response())
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
    let items = state
        .promotions(params.consistency.unwrap_or_default())
        .await?
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

impl From<CouponBody> for CouponRequest {
    fn from(body: CouponBody) -> Self {
        Self {
            percent_bp: body.percent_bp,
            amount_off: body.amount_off.map(Into::into),
            min_subtotal: body.min_subtotal.map(Into::into),
            usage_limit: body.usage_limit,
            per_customer_limit: body.per_customer_limit,
            starts_ms: body.starts_ms,
            ends_ms: body.ends_ms,
            active: body.active,
        }
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
    let request = CouponRequest::from(body);
    let tag = meta.tag(&Principal::from(&admin), &request);
    let rendered = state.put_coupon(&admin, &code, &request, tag).await?;
    Ok(rendered.map(CouponDto::from).into_response())
}

/// Read a coupon with its redemption count (admins).
#[utoipa::path(get, path = "/api/v1/coupons/{code}", tag = "pricing", params(("code" = String, Path), ReadParams),
    responses((status = 200, body = CouponDto), (status = 404, body = ErrorBody)))]
pub async fn get_coupon(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    AppPath(code): AppPath<String>,
    AppQuery(params): AppQuery<ReadParams>,
) -> AppResult<Json<CouponDto>> {
    let consistency = params.consistency.unwrap_or_default();
    Ok(Json(state.coupon(&admin, &code, consistency).await?.into()))
}
