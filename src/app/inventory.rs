//! Inventory and listings: warehouses, stock levels (set, adjusted, read
//! over all warehouses), low-stock thresholds and what is below them, and
//! the listing a SKU is sold under (name, list price, vendor).
//!
//! Ids come as the client wrote them (a path segment, a message field) and
//! are parsed here, in the order REST has always reported a request's first
//! fault. Warehouses, stock and thresholds are for admins; a listing is
//! managed by an admin or the vendor that sells it (decided by the domain).

use ecommerce_domains::idempotency::IdempotencyTag;
use ecommerce_domains::inventory::{
    self, InventoryCommand, Location, LowStock, Sku, SkuStock, StockLevelView, Threshold,
    Warehouse, WarehouseId,
};
use ecommerce_domains::listing::{self, Listing, ListingCommand};
use ecommerce_domains::money::Money;
use ecommerce_domains::{Actor, Command, DomainError, Response};
use serde::Serialize;

use super::access::require_admin;
use super::{unexpected, App, AppError, AppResult, Consistency, MoneyInput, Rendered};
use crate::app::ErrorCode;

/// Creating or replacing a warehouse. Like every request type here, its
/// serialized form (the REST body's JSON) is the request's idempotency
/// fingerprint, the same over REST and gRPC.
#[derive(Debug, Clone, Serialize)]
pub struct WarehouseRequest {
    /// Display name, 1 to 200 characters once trimmed.
    pub name: String,
    /// As the client sent it: checked by the use case.
    pub location: Location,
    /// Lower is preferred when allocating stock.
    pub priority: i32,
}

/// Setting the on-hand stock of a SKU in a warehouse.
#[derive(Debug, Clone, Serialize)]
pub struct SetStockRequest {
    /// 0 or more.
    pub on_hand: i64,
    /// Only set if the level is still at this version (0: never stocked).
    pub expected_version: Option<u64>,
}

/// Adding or removing on-hand units of a SKU in a warehouse.
#[derive(Debug, Clone, Serialize)]
pub struct AdjustStockRequest {
    pub delta: i64,
    /// Up to 500 characters, for the audit trail.
    pub reason: Option<String>,
}

/// Setting (or with `threshold: None` removing) a low-stock threshold.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdRequest {
    pub threshold: Option<i64>,
    /// A warehouse, or `None` for the SKU over all warehouses.
    pub warehouse_id: Option<String>,
}

/// Creating or replacing the listing of a SKU.
#[derive(Debug, Clone, Serialize)]
pub struct ListingRequest {
    /// 1 to 200 characters.
    pub name: String,
    /// List price per unit.
    pub price: MoneyInput,
    /// The vendor selling it (a vendor may only name itself); `None` for the shop.
    pub vendor_id: Option<String>,
    /// True when `None`.
    pub active: Option<bool>,
}

/// A page of a listing in key order.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    /// Continue after this key (`next_after` of the previous page).
    pub after: Option<String>,
    /// 1 to 1000; 100 when `None`.
    pub limit: Option<usize>,
    pub consistency: Consistency,
}

impl PageQuery {
    fn limit(&self) -> AppResult<usize> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(AppError::new(
                ErrorCode::InvalidQuery,
                "limit must be between 1 and 1000",
            ));
        }
        Ok(limit)
    }
}

fn parse_warehouse(raw: &str) -> AppResult<WarehouseId> {
    Ok(WarehouseId::parse(raw)?)
}

fn parse_sku(raw: &str) -> AppResult<Sku> {
    Ok(Sku::parse(raw)?)
}

fn stock_reply(reply: Response) -> AppResult<StockLevelView> {
    match reply {
        Response::Stock(level) => Ok(level.view()),
        other => Err(unexpected(other)),
    }
}

impl App {
    /// A page of warehouses in id order, and the id to continue after.
    pub async fn warehouses(
        &self,
        query: &PageQuery,
    ) -> AppResult<(Vec<Warehouse>, Option<String>)> {
        let limit = query.limit()?;
        let after = query.after.as_deref().map(parse_warehouse).transpose()?;
        let reader = self.read(query.consistency).await?;
        let items = inventory::list_warehouses(&reader, after.as_ref(), limit)?;
        let next_after = (items.len() == limit)
            .then(|| items.last().map(|w| w.id.as_str().to_string()))
            .flatten();
        Ok((items, next_after))
    }

    /// Warehouse `id`, or `warehouse_not_found`.
    pub async fn warehouse(&self, id: &str, consistency: Consistency) -> AppResult<Warehouse> {
        let id = parse_warehouse(id)?;
        let reader = self.read(consistency).await?;
        inventory::get_warehouse(&reader, &id)?
            .ok_or_else(|| DomainError::WarehouseNotFound(id.as_str().into()).into())
    }

    /// Creates or replaces warehouse `id` (admins).
    pub async fn put_warehouse(
        &self,
        admin: &Actor,
        id: &str,
        request: &WarehouseRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Warehouse>> {
        require_admin(admin)?;
        let command = InventoryCommand::UpsertWarehouse {
            id: parse_warehouse(id)?,
            name: inventory::parse_warehouse_name(&request.name)?,
            location: Location::parse(request.location.lat, request.location.lon)?,
            priority: request.priority,
        };
        let committed = self.propose(Command::Inventory(command), tag).await?;
        Ok(committed.render(|reply| match reply {
            Response::Warehouse(w) => Ok(w),
            other => Err(unexpected(other)),
        }))
    }

    /// Stock of SKU `sku` over all warehouses, or `sku_not_found`.
    pub async fn sku_stock(&self, sku: &str, consistency: Consistency) -> AppResult<SkuStock> {
        let sku = parse_sku(sku)?;
        let reader = self.read(consistency).await?;
        inventory::sku_stock(&reader, &sku)?
            .ok_or_else(|| DomainError::SkuNotFound(sku.as_str().into()).into())
    }

    /// Sets the on-hand stock of `sku` in `warehouse` (admins), optionally
    /// only if the level is still at the expected version.
    pub async fn set_stock(
        &self,
        admin: &Actor,
        sku: &str,
        warehouse: &str,
        request: &SetStockRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<StockLevelView>> {
        require_admin(admin)?;
        let command = InventoryCommand::SetStock {
            sku: parse_sku(sku)?,
            warehouse_id: parse_warehouse(warehouse)?,
            on_hand: inventory::parse_quantity("on_hand", request.on_hand)?,
            expected_version: request.expected_version,
        };
        let committed = self.propose(Command::Inventory(command), tag).await?;
        Ok(committed.render(stock_reply))
    }

    /// Adds or removes on-hand units of `sku` in `warehouse` (admins).
    pub async fn adjust_stock(
        &self,
        admin: &Actor,
        sku: &str,
        warehouse: &str,
        request: &AdjustStockRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<StockLevelView>> {
        require_admin(admin)?;
        let delta = inventory::parse_delta(request.delta)?;
        let reason = inventory::parse_reason(request.reason.as_deref())?;
        let command = InventoryCommand::AdjustStock {
            sku: parse_sku(sku)?,
            warehouse_id: parse_warehouse(warehouse)?,
            delta,
            reason,
        };
        let committed = self.propose(Command::Inventory(command), tag).await?;
        Ok(committed.render(stock_reply))
    }

    /// Sets or removes the low-stock threshold of `sku`, over all
    /// warehouses or in one (admins): crossing it emits `StockLow`, coming
    /// back above emits `BackInStock`.
    pub async fn set_threshold(
        &self,
        admin: &Actor,
        sku: &str,
        request: &ThresholdRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Threshold>> {
        require_admin(admin)?;
        let command = InventoryCommand::SetThreshold {
            sku: parse_sku(sku)?,
            warehouse_id: request
                .warehouse_id
                .as_deref()
                .map(parse_warehouse)
                .transpose()?,
            threshold: request
                .threshold
                .map(|t| inventory::parse_quantity("threshold", t))
                .transpose()?,
        };
        let committed = self.propose(Command::Inventory(command), tag).await?;
        Ok(committed.render(|reply| match reply {
            Response::Threshold(t) => Ok(t),
            other => Err(unexpected(other)),
        }))
    }

    /// A page of what is below its low-stock threshold (admins), and the
    /// `after` of the next page (`sku` or `sku/warehouse_id`).
    pub async fn low_stock(
        &self,
        admin: &Actor,
        query: &PageQuery,
    ) -> AppResult<(Vec<LowStock>, Option<String>)> {
        require_admin(admin)?;
        let limit = query.limit()?;
        let after = match query.after.as_deref() {
            None => None,
            Some(a) => {
                let (s, w) = a.split_once('/').unwrap_or((a, ""));
                Some((parse_sku(s)?, w.to_string()))
            }
        };
        let reader = self.read(query.consistency).await?;
        let after = after.as_ref().map(|(s, w)| (s, w.as_str()));
        let items = inventory::low_stock(&reader, after, limit)?;
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

    /// Creates or replaces the listing of `sku` (admins, or the vendor that
    /// sells it: the domain decides).
    pub async fn put_listing(
        &self,
        actor: &Actor,
        sku: &str,
        request: &ListingRequest,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<Listing>> {
        let command = ListingCommand::Upsert {
            actor: actor.clone(),
            sku: parse_sku(sku)?,
            name: listing::parse_name("name", &request.name)?,
            price: Money::parse("price", request.price.amount, &request.price.currency)?,
            vendor_id: request.vendor_id.clone(),
            active: request.active.unwrap_or(true),
        };
        let committed = self.propose(Command::Listing(command), tag).await?;
        Ok(committed.render(|reply| match reply {
            Response::Listing(l) => Ok(l),
            other => Err(unexpected(other)),
        }))
    }

    /// The listing of SKU `sku`, or `listing_not_found`.
    pub async fn listing(&self, sku: &str, consistency: Consistency) -> AppResult<Listing> {
        let parsed = parse_sku(sku)?;
        let reader = self.read(consistency).await?;
        listing::get(&reader, &parsed)?
            .ok_or_else(|| DomainError::ListingNotFound(sku.to_string()).into())
    }
}
