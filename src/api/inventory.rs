//! Inventory routes: warehouses, stock levels and low-stock thresholds
//! (`app::inventory` holds the use cases).

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::inventory::{self, Location, StockLevelView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::AdminOnly;
use super::error::{AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, Consistency, MutationMeta, ReadParams};
use super::App;
use crate::app::inventory::{
    AdjustStockRequest, PageQuery, SetStockRequest, ThresholdRequest, WarehouseRequest,
};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationDto {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarehouseBody {
    /// Display name, 1 to 200 characters.
    pub name: String,
    pub location: LocationDto,
    /// Lower is preferred when allocating stock. Defaults to 0.
    #[serde(default)]
    pub priority: i32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WarehouseDto {
    pub id: String,
    pub name: String,
    pub location: LocationDto,
    pub priority: i32,
    /// Log index of the last change.
    pub version: u64,
}

impl From<inventory::Warehouse> for WarehouseDto {
    fn from(w: inventory::Warehouse) -> Self {
        Self {
            id: w.id.as_str().to_string(),
            name: w.name,
            location: LocationDto {
                lat: w.location.lat,
                lon: w.location.lon,
            },
            priority: w.priority,
            version: w.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WarehouseList {
    pub items: Vec<WarehouseDto>,
    /// Pass as `after` to get the next page; null on the last page.
    pub next_after: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Return warehouses with ids after this one.
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<usize>,
    pub consistency: Option<Consistency>,
}

impl ListParams {
    fn query(self) -> PageQuery {
        PageQuery {
            after: self.after,
            limit: self.limit,
            consistency: self.consistency.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStockBody {
    /// New on-hand quantity (0 or more).
    pub on_hand: i64,
    /// Only set if the level is still at this version (0: never stocked).
    pub expected_version: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustBody {
    /// Units to add (positive) or remove (negative).
    pub delta: i64,
    /// Free text for the audit trail, up to 500 characters.
    pub reason: Option<String>,
}

// A body becomes the use case's request field for field: both serialize to
// the same JSON, the idempotency fingerprint (see the tests below).
impl From<WarehouseBody> for WarehouseRequest {
    fn from(b: WarehouseBody) -> Self {
        Self {
            name: b.name,
            location: Location {
                lat: b.location.lat,
                lon: b.location.lon,
            },
            priority: b.priority,
        }
    }
}

impl From<SetStockBody> for SetStockRequest {
    fn from(b: SetStockBody) -> Self {
        Self {
            on_hand: b.on_hand,
            expected_version: b.expected_version,
        }
    }
}

impl From<AdjustBody> for AdjustStockRequest {
    fn from(b: AdjustBody) -> Self {
        Self {
            delta: b.delta,
            reason: b.reason,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StockLevelDto {
    pub sku: String,
    pub warehouse_id: String,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
    /// Log index of the last change.
    pub version: u64,
}

impl From<StockLevelView> for StockLevelDto {
    fn from(v: StockLevelView) -> Self {
        Self {
            sku: v.sku,
            warehouse_id: v.warehouse_id,
            on_hand: v.on_hand,
            reserved: v.reserved,
            available: v.available,
            version: v.version,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SkuStockDto {
    pub sku: String,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
    pub warehouses: Vec<StockLevelDto>,
}

impl From<inventory::SkuStock> for SkuStockDto {
    fn from(stock: inventory::SkuStock) -> Self {
        Self {
            sku: stock.sku,
            on_hand: stock.on_hand,
            reserved: stock.reserved,
            available: stock.available,
            warehouses: stock.warehouses.into_iter().map(Into::into).collect(),
        }
    }
}

/// List warehouses in id order.
#[utoipa::path(get, path = "/api/v1/warehouses", tag = "inventory", params(ListParams),
    responses((status = 200, body = WarehouseList), (status = 400, body = ErrorBody)))]
pub async fn list_warehouses(
    State(state): State<App>,
    AppQuery(params): AppQuery<ListParams>,
) -> AppResult<Json<WarehouseList>> {
    let (items, next_after) = state.warehouses(&params.query()).await?;
    Ok(Json(WarehouseList {
        items: items.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

/// Read one warehouse.
#[utoipa::path(get, path = "/api/v1/warehouses/{id}", tag = "inventory", params(("id" = String, Path), ReadParams),
    responses((status = 200, body = WarehouseDto), (status = 404, body = ErrorBody)))]
pub async fn get_warehouse(
    State(state): State<App>,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<ReadParams>,
) -> AppResult<Json<WarehouseDto>> {
    let consistency = params.consistency.unwrap_or_default();
    Ok(Json(state.warehouse(&id, consistency).await?.into()))
}

/// Create or replace a warehouse.
#[utoipa::path(put, path = "/api/v1/warehouses/{id}", tag = "inventory", request_body = WarehouseBody,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = WarehouseDto), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn put_warehouse(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    AppPath(id): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<WarehouseBody>,
) -> AppResult<Response> {
    let request = WarehouseRequest::from(body);
    let tag = meta.tag(&Principal::from(&admin), &request);
    let rendered = state.put_warehouse(&admin, &id, &request, tag).await?;
    Ok(rendered.map(WarehouseDto::from).into_response())
}

/// Stock of a SKU over all warehouses.
#[utoipa::path(get, path = "/api/v1/inventory/{sku}", tag = "inventory", params(("sku" = String, Path), ReadParams),
    responses((status = 200, body = SkuStockDto), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_stock(
    State(state): State<App>,
    AppPath(sku): AppPath<String>,
    AppQuery(params): AppQuery<ReadParams>,
) -> AppResult<Json<SkuStockDto>> {
    let consistency = params.consistency.unwrap_or_default();
    Ok(Json(state.sku_stock(&sku, consistency).await?.into()))
}

/// Set the on-hand stock of a SKU in a warehouse (optionally compare-and-set on version).
#[utoipa::path(put, path = "/api/v1/inventory/{sku}/warehouses/{warehouse_id}", tag = "inventory",
    request_body = SetStockBody,
    params(("sku" = String, Path), ("warehouse_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = StockLevelDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn set_stock(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    AppPath((sku, warehouse)): AppPath<(String, String)>,
    meta: MutationMeta,
    AppJson(body): AppJson<SetStockBody>,
) -> AppResult<Response> {
    let request = SetStockRequest::from(body);
    let tag = meta.tag(&Principal::from(&admin), &request);
    let rendered = state
        .set_stock(&admin, &sku, &warehouse, &request, tag)
        .await?;
    Ok(rendered.map(StockLevelDto::from).into_response())
}

/// Add or remove on-hand units of a SKU in a warehouse.
#[utoipa::path(post, path = "/api/v1/inventory/{sku}/warehouses/{warehouse_id}/adjustments", tag = "inventory",
    request_body = AdjustBody,
    params(("sku" = String, Path), ("warehouse_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = StockLevelDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn adjust_stock(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    AppPath((sku, warehouse)): AppPath<(String, String)>,
    meta: MutationMeta,
    AppJson(body): AppJson<AdjustBody>,
) -> AppResult<Response> {
    let request = AdjustStockRequest::from(body);
    let tag = meta.tag(&Principal::from(&admin), &request);
    let rendered = state
        .adjust_stock(&admin, &sku, &warehouse, &request, tag)
        .await?;
    Ok(rendered.map(StockLevelDto::from).into_response())
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdBody {
    /// Alert when available stock falls below this; null removes the threshold.
    pub threshold: Option<i64>,
    /// A warehouse, or absent for the SKU over all warehouses.
    pub warehouse_id: Option<String>,
}

impl From<ThresholdBody> for ThresholdRequest {
    fn from(b: ThresholdBody) -> Self {
        Self {
            threshold: b.threshold,
            warehouse_id: b.warehouse_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ThresholdDto {
    pub sku: String,
    pub warehouse_id: Option<String>,
    /// 0 when removed.
    pub threshold: u64,
    pub version: u64,
}

impl From<inventory::Threshold> for ThresholdDto {
    fn from(t: inventory::Threshold) -> Self {
        Self {
            sku: t.sku.as_str().to_string(),
            warehouse_id: t.warehouse_id.map(|w| w.as_str().to_string()),
            threshold: t.threshold,
            version: t.version,
        }
    }
}

/// Set the low-stock threshold of a SKU (over all warehouses, or in one):
/// crossing it emits `StockLow`, coming back above emits `BackInStock`.
#[utoipa::path(put, path = "/api/v1/inventory/{sku}/threshold", tag = "inventory", request_body = ThresholdBody,
    params(("sku" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ThresholdDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_threshold(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    AppPath(sku): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<ThresholdBody>,
) -> AppResult<Response> {
    let request = ThresholdRequest::from(body);
    let tag = meta.tag(&Principal::from(&admin), &request);
    let rendered = state.set_threshold(&admin, &sku, &request, tag).await?;
    Ok(rendered.map(ThresholdDto::from).into_response())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LowStockDto {
    pub sku: String,
    /// Null: the SKU over all warehouses.
    pub warehouse_id: Option<String>,
    pub threshold: u64,
    pub available: u64,
    pub since_ms: u64,
}

impl From<inventory::LowStock> for LowStockDto {
    fn from(l: inventory::LowStock) -> Self {
        Self {
            sku: l.sku.as_str().to_string(),
            warehouse_id: l.warehouse_id.map(|w| w.as_str().to_string()),
            threshold: l.threshold,
            available: l.available,
            since_ms: l.since_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LowStockList {
    pub items: Vec<LowStockDto>,
    /// Pass as `after` (`sku` or `sku/warehouse_id`) for the next page.
    pub next_after: Option<String>,
}

/// Everything below its low-stock threshold (admins).
#[utoipa::path(get, path = "/api/v1/inventory/low-stock", tag = "inventory", params(ListParams),
    responses((status = 200, body = LowStockList), (status = 403, body = ErrorBody)))]
pub async fn low_stock(
    State(state): State<App>,
    AdminOnly(admin): AdminOnly,
    AppQuery(params): AppQuery<ListParams>,
) -> AppResult<Json<LowStockList>> {
    let (items, next_after) = state.low_stock(&admin, &params.query()).await?;
    Ok(Json(LowStockList {
        items: items.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap()
    }

    /// A key keeps finding its record: the request a body becomes
    /// serializes exactly as the body does (fields, order, values).
    #[test]
    fn bodies_and_requests_fingerprint_alike() {
        let warehouse: WarehouseBody = serde_json::from_str(
            r#"{"priority":2,"name":" Paris ","location":{"lon":2.35,"lat":48.85}}"#,
        )
        .unwrap();
        let request = WarehouseRequest::from(warehouse.clone());
        assert_eq!(json(&warehouse), json(&request));
        let set: SetStockBody =
            serde_json::from_str(r#"{"on_hand":-1,"expected_version":7}"#).unwrap();
        assert_eq!(json(&set), json(&SetStockRequest::from(set.clone())));
        let adjust: AdjustBody = serde_json::from_str(r#"{"delta":-3,"reason":"r"}"#).unwrap();
        assert_eq!(
            json(&adjust),
            json(&AdjustStockRequest::from(adjust.clone()))
        );
        let threshold: ThresholdBody =
            serde_json::from_str(r#"{"threshold":null,"warehouse_id":"w1"}"#).unwrap();
        assert_eq!(
            json(&threshold),
            json(&ThresholdRequest::from(threshold.clone()))
        );
    }
}
