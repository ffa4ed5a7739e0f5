//! Inventory routes: warehouses and stock levels.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::inventory::{
    self, InventoryCommand, Location, Sku, StockLevelView, WarehouseId,
};
use ecommerce_domains::{Command, Response as Reply};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::AdminOnly;
use super::error::{AppError, AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, Consistency, MutationMeta, ReadParams};
use super::{unexpected, App};

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

fn warehouse_id(raw: &str) -> AppResult<WarehouseId> {
    Ok(WarehouseId::parse(raw)?)
}

fn sku(raw: &str) -> AppResult<Sku> {
    Ok(Sku::parse(raw)?)
}

fn stock_reply(reply: Reply) -> AppResult<StockLevelDto> {
    match reply {
        Reply::Stock(level) => Ok(level.view().into()),
        other => Err(unexpected(other)),
    }
}

/// List warehouses in id order.
#[utoipa::path(get, path = "/api/v1/warehouses", tag = "inventory", params(ListParams),
    responses((status = 200, body = WarehouseList), (status = 400, body = ErrorBody)))]
pub async fn list_warehouses(
    State(state): State<App>,
    AppQuery(params): AppQuery<ListParams>,
) -> AppResult<Json<WarehouseList>> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::new(
            "invalid_query",
            "limit must be between 1 and 1000",
        ));
    }
    let after = params.after.as_deref().map(warehouse_id).transpose()?;
    let reader = state.read(params.consistency.unwrap_or_default()).await?;
    let items = inventory::list_warehouses(&reader, after.as_ref(), limit)?;
    let next_after = (items.len() == limit)
        .then(|| items.last().map(|w| w.id.as_str().to_string()))
        .flatten();
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
    let id = warehouse_id(&id)?;
    let reader = state.read(params.consistency.unwrap_or_default()).await?;
    let warehouse = inventory::get_warehouse(&reader, &id)?.ok_or_else(|| {
        AppError::from(ecommerce_domains::DomainError::WarehouseNotFound(
            id.as_str().into(),
        ))
    })?;
    Ok(Json(warehouse.into()))
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
    let tag = meta.tag(&Principal::from(&admin), &body);
    let id = warehouse_id(&id)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::from(ecommerce_domains::DomainError::validation(
            "name",
            "must be 1 to 200 characters",
        )));
    }
    let location = Location::parse(body.location.lat, body.location.lon)?;
    let command = InventoryCommand::UpsertWarehouse {
        id,
        name: name.to_string(),
        location,
        priority: body.priority,
    };
    let committed = state.propose(Command::Inventory(command), tag).await?;
    Ok(committed.respond(|reply| match reply {
        Reply::Warehouse(w) => Ok(WarehouseDto::from(w)),
        other => Err(unexpected(other)),
    }))
}

/// Stock of a SKU over all warehouses.
#[utoipa::path(get, path = "/api/v1/inventory/{sku}", tag = "inventory", params(("sku" = String, Path), ReadParams),
    responses((status = 200, body = SkuStockDto), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_stock(
    State(state): State<App>,
    AppPath(raw): AppPath<String>,
    AppQuery(params): AppQuery<ReadParams>,
) -> AppResult<Json<SkuStockDto>> {
    let stock = find_stock(&state, &raw, params.consistency.unwrap_or_default()).await?;
    Ok(Json(stock.into()))
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

/// Stock of SKU `raw` over all warehouses, or `sku_not_found`.
pub async fn find_stock(
    state: &App,
    raw: &str,
    consistency: Consistency,
) -> AppResult<inventory::SkuStock> {
    let sku = sku(raw)?;
    let reader = state.read(consistency).await?;
    inventory::sku_stock(&reader, &sku)?.ok_or_else(|| {
        AppError::from(ecommerce_domains::DomainError::SkuNotFound(
            sku.as_str().into(),
        ))
    })
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
    AppPath((raw_sku, raw_warehouse)): AppPath<(String, String)>,
    meta: MutationMeta,
    AppJson(body): AppJson<SetStockBody>,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&admin), &body);
    let command = InventoryCommand::SetStock {
        sku: sku(&raw_sku)?,
        warehouse_id: warehouse_id(&raw_warehouse)?,
        on_hand: inventory::parse_quantity("on_hand", body.on_hand)?,
        expected_version: body.expected_version,
    };
    let committed = state.propose(Command::Inventory(command), tag).await?;
    Ok(committed.respond(stock_reply))
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
    AppPath((raw_sku, raw_warehouse)): AppPath<(String, String)>,
    meta: MutationMeta,
    AppJson(body): AppJson<AdjustBody>,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&admin), &body);
    if body.delta.unsigned_abs() > inventory::MAX_QUANTITY {
        return Err(ecommerce_domains::DomainError::validation("delta", "is out of range").into());
    }
    if body
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 500)
    {
        return Err(ecommerce_domains::DomainError::validation(
            "reason",
            "must be at most 500 characters",
        )
        .into());
    }
    let command = InventoryCommand::AdjustStock {
        sku: sku(&raw_sku)?,
        warehouse_id: warehouse_id(&raw_warehouse)?,
        delta: body.delta,
        reason: body.reason.clone(),
    };
    let committed = state.propose(Command::Inventory(command), tag).await?;
    Ok(committed.respond(stock_reply))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdBody {
    /// Alert when available stock falls below this; null removes the threshold.
    pub threshold: Option<i64>,
    /// A warehouse, or absent for the SKU over all warehouses.
    pub warehouse_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ThresholdDto {
    pub sku: String,
    pub warehouse_id: Option<String>,
    /// 0 when removed.
    pub threshold: u64,
    pub version: u64,
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
    AppPath(raw_sku): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<ThresholdBody>,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&admin), &body);
    let command = body.command(&raw_sku)?;
    let committed = state.propose(Command::Inventory(command), tag).await?;
    let rendered = committed.render(threshold_reply).map(ThresholdDto::from);
    Ok(rendered.into_response())
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

impl ThresholdBody {
    /// The command setting (or removing) the low-stock threshold of `raw_sku`.
    pub fn command(&self, raw_sku: &str) -> AppResult<InventoryCommand> {
        Ok(InventoryCommand::SetThreshold {
            sku: sku(raw_sku)?,
            warehouse_id: self.warehouse_id.as_deref().map(warehouse_id).transpose()?,
            threshold: self
                .threshold
                .map(|t| inventory::parse_quantity("threshold", t))
                .transpose()?,
        })
    }
}

/// The threshold a threshold command answered.
pub fn threshold_reply(reply: Reply) -> AppResult<inventory::Threshold> {
    match reply {
        Reply::Threshold(t) => Ok(t),
        other => Err(unexpected(other)),
    }
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
    AdminOnly(_admin): AdminOnly,
    AppQuery(params): AppQuery<ListParams>,
) -> AppResult<Json<LowStockList>> {
    let (items, next_after) = low_stock_page(&state, &params).await?;
    Ok(Json(LowStockList {
        items: items.into_iter().map(Into::into).collect(),
        next_after,
    }))
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

/// A page of what is below its low-stock threshold, and the `after` of the
/// next page (`sku` or `sku/warehouse_id`).
pub async fn low_stock_page(
    state: &App,
    params: &ListParams,
) -> AppResult<(Vec<inventory::LowStock>, Option<String>)> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::new(
            "invalid_query",
            "limit must be between 1 and 1000",
        ));
    }
    let after = match params.after.as_deref() {
        None => None,
        Some(a) => {
            let (s, w) = a.split_once('/').unwrap_or((a, ""));
            Some((sku(s)?, w.to_string()))
        }
    };
    let reader = state.read(params.consistency.unwrap_or_default()).await?;
    let items = inventory::low_stock(&reader, after.as_ref().map(|(s, w)| (s, w.as_str())), limit)?;
    let next_after = (items.len() == limit)
        .then(|| {
            items.last().map(|l| match &l.warehouse_id {
                Some(w) => format!("{}/{}", l.sku.as_str(), w.as_str()),
                None => l.sku.as_str().to_string(),
            })
        })
        .flatten();
    Ok((items, next_after))
}
