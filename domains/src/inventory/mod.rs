//! Inventory: warehouses and stock levels per SKU per warehouse.
//!
//! Available = on hand − reserved, and never negative: every command that
//! lowers on-hand stock checks it against what is reserved. Reservations
//! (holds), allocation across warehouses and orders build on these records.
//!
//! A refused command leaves no trace: `apply` runs under a savepoint that
//! takes back its writes ([`crate::command::apply_command`]).

use serde::{Deserialize, Serialize};

use crate::allocation::{Allocation, Candidate};
use crate::check;
use crate::command::{ApplyContext, Response};
use crate::store::{self, KeyPart, Store, StoreExt, StoreFault, StoreMut};
use crate::{ApplyError, DomainError, Event};

mod thresholds;
pub use thresholds::*;

/// Warehouses keyed by id.
pub const WAREHOUSES: &str = "inventory_warehouses";
/// Stock levels keyed by (sku, warehouse id).
pub const STOCK: &str = "inventory_stock";
/// Most warehouses a SKU can be stocked in (bounds reads of one SKU).
pub const MAX_WAREHOUSES_PER_SKU: usize = 1000;

pub(crate) fn parse_identifier(
    field: &str,
    raw: &str,
    extra: &[u8],
) -> Result<String, DomainError> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || extra.contains(&b));
    if ok {
        Ok(raw.to_string())
    } else {
        let more = if extra.is_empty() { "" } else { " ." };
        Err(DomainError::validation(
            field,
            format!("must be 1 to 64 characters of A-Z a-z 0-9 _ -{more}"),
        ))
    }
}

/// A stock-keeping unit code: 1 to 64 characters of `[A-Za-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        parse_identifier("sku", raw, b".").map(Self)
    }
    /// What [`Sku::parse`] checks, for a value that did not come through it.
    pub fn check(&self) -> Result<(), DomainError> {
        Self::parse(&self.0).map(|_| ())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A warehouse id: 1 to 64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WarehouseId(String);

impl WarehouseId {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        parse_identifier("warehouse_id", raw, b"").map(Self)
    }
    /// What [`WarehouseId::parse`] checks, for a value that did not come through it.
    pub fn check(&self) -> Result<(), DomainError> {
        Self::parse(&self.0).map(|_| ())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A geographic position in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

impl Location {
    pub fn parse(lat: f64, lon: f64) -> Result<Self, DomainError> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(DomainError::validation(
                "location.lat",
                "must be between -90 and 90",
            ));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(DomainError::validation(
                "location.lon",
                "must be between -180 and 180",
            ));
        }
        Ok(Self { lat, lon })
    }

    /// What [`Location::parse`] checks (NaN included), for a value that did
    /// not come through it.
    pub fn check(&self) -> Result<(), DomainError> {
        Self::parse(self.lat, self.lon).map(|_| ())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warehouse {
    pub id: WarehouseId,
    pub name: String,
    pub location: Location,
    /// Lower numbers are preferred by the priority allocation strategy.
    pub priority: i32,
    /// Version of the write that last changed it (`ApplyContext::version`).
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub sku: Sku,
    pub warehouse_id: WarehouseId,
    pub on_hand: u64,
    pub reserved: u64,
    /// Version of the write that last changed it (`ApplyContext::version`).
    pub version: u64,
}

impl StockLevel {
    pub fn available(&self) -> u64 {
        self.on_hand.saturating_sub(self.reserved)
    }

    /// The API representation, with `available` spelled out.
    pub fn view(&self) -> StockLevelView {
        StockLevelView {
            sku: self.sku.as_str().to_string(),
            warehouse_id: self.warehouse_id.as_str().to_string(),
            on_hand: self.on_hand,
            reserved: self.reserved,
            available: self.available(),
            version: self.version,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevelView {
    pub sku: String,
    pub warehouse_id: String,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
    pub version: u64,
}

/// Stock of one SKU over all warehouses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuStock {
    pub sku: String,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
    pub warehouses: Vec<StockLevelView>,
}

/// Largest on-hand quantity of one SKU in one warehouse.
pub const MAX_QUANTITY: u64 = 1_000_000_000_000;

/// A stock quantity: 0 to [`MAX_QUANTITY`].
pub fn parse_quantity(field: &str, raw: i64) -> Result<u64, DomainError> {
    u64::try_from(raw)
        .ok()
        .filter(|q| *q <= MAX_QUANTITY)
        .ok_or_else(|| {
            DomainError::validation(field, format!("must be between 0 and {MAX_QUANTITY}"))
        })
}

/// A warehouse's display name: trimmed, 1 to 200 characters.
pub fn parse_warehouse_name(raw: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    check::text("name", name, 200)?;
    Ok(name.to_string())
}

/// A change of on-hand stock ([`InventoryCommand::AdjustStock`]): at most
/// [`MAX_QUANTITY`] units either way.
pub fn parse_delta(raw: i64) -> Result<i64, DomainError> {
    if raw.unsigned_abs() > MAX_QUANTITY {
        return Err(DomainError::validation("delta", "is out of range"));
    }
    Ok(raw)
}

/// The free-text reason of an adjustment, kept for the audit trail: at most
/// 500 characters.
pub fn parse_reason(raw: Option<&str>) -> Result<Option<String>, DomainError> {
    if let Some(r) = raw {
        check::optional_text("reason", r, 500)?;
    }
    Ok(raw.map(str::to_string))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InventoryCommand {
    UpsertWarehouse {
        id: WarehouseId,
        name: String,
        location: Location,
        priority: i32,
    },
    /// Set on-hand stock; with `expected_version`, only if the level is still at that version
    /// (0 means "not stocked yet").
    SetStock {
        sku: Sku,
        warehouse_id: WarehouseId,
        on_hand: u64,
        expected_version: Option<u64>,
    },
    /// Add to (or, with a negative delta, remove from) on-hand stock.
    AdjustStock {
        sku: Sku,
        warehouse_id: WarehouseId,
        delta: i64,
        reason: Option<String>,
    },
    /// Sets (or with `None` removes) the low-stock threshold of a SKU in one
    /// warehouse, or over all warehouses when `warehouse_id` is `None`.
    SetThreshold {
        sku: Sku,
        warehouse_id: Option<WarehouseId>,
        threshold: Option<u64>,
    },
}

impl InventoryCommand {
    /// Checks the command's fields (see [`crate::Command::validate`]).
    pub fn validate(&self) -> Result<(), DomainError> {
        match self {
            Self::UpsertWarehouse {
                id, name, location, ..
            } => {
                id.check()?;
                check::canonical("name", name, parse_warehouse_name(name))?;
                location.check()
            }
            Self::SetStock {
                sku,
                warehouse_id,
                on_hand,
                ..
            } => {
                sku.check()?;
                warehouse_id.check()?;
                check::at_most("on_hand", *on_hand, MAX_QUANTITY)
            }
            Self::AdjustStock {
                sku,
                warehouse_id,
                delta,
                reason,
            } => {
                sku.check()?;
                warehouse_id.check()?;
                parse_delta(*delta)?;
                parse_reason(reason.as_deref()).map(|_| ())
            }
            Self::SetThreshold {
                sku,
                warehouse_id,
                threshold,
            } => {
                sku.check()?;
                if let Some(w) = warehouse_id {
                    w.check()?;
                }
                check::at_most("threshold", threshold.unwrap_or(0), MAX_QUANTITY)
            }
        }
    }
}

fn stock_key<'a>(sku: &'a Sku, warehouse: &'a WarehouseId) -> [KeyPart<'a>; 2] {
    [KeyPart::Str(sku.as_str()), KeyPart::Str(warehouse.as_str())]
}

pub fn apply(
    command: &InventoryCommand,
    ctx: &ApplyContext,
    store: &mut dyn StoreMut,
) -> Result<Response, ApplyError> {
    match command {
        InventoryCommand::UpsertWarehouse {
            id,
            name,
            location,
            priority,
        } => {
            let warehouse = Warehouse {
                id: id.clone(),
                name: name.clone(),
                location: *location,
                priority: *priority,
                version: ctx.version,
            };
            store::put(store, WAREHOUSES, &[KeyPart::Str(id.as_str())], &warehouse)?;
            store.emit(Event::WarehouseUpserted(warehouse.clone()));
            Ok(Response::Warehouse(warehouse))
        }
        InventoryCommand::SetStock {
            sku,
            warehouse_id,
            on_hand,
            expected_version,
        } => {
            let current = current_level(store, sku, warehouse_id)?;
            if let Some(expected) = expected_version {
                if *expected != current.version {
                    return Err(DomainError::VersionConflict {
                        expected: *expected,
                        actual: current.version,
                    }
                    .into());
                }
            }
            if *on_hand < current.reserved {
                let requested = current.on_hand.saturating_sub(*on_hand);
                return Err(insufficient(&current, requested).into());
            }
            let delta = difference(*on_hand, current.on_hand);
            write_level(store, current, *on_hand, delta, None, ctx)
        }
        InventoryCommand::AdjustStock {
            sku,
            warehouse_id,
            delta,
            reason,
        } => {
            let current = current_level(store, sku, warehouse_id)?;
            let target = i128::from(current.on_hand).saturating_add(i128::from(*delta));
            if target < i128::from(current.reserved) {
                return Err(insufficient(&current, delta.unsigned_abs()).into());
            }
            let Some(target) = u64::try_from(target).ok().filter(|t| *t <= MAX_QUANTITY) else {
                return Err(DomainError::validation(
                    "delta",
                    format!("on hand would exceed {MAX_QUANTITY}"),
                )
                .into());
            };
            write_level(store, current, target, *delta, reason.clone(), ctx)
        }
        InventoryCommand::SetThreshold {
            sku,
            warehouse_id,
            threshold,
        } => set_threshold(store, sku, warehouse_id.as_ref(), *threshold, ctx),
    }
}

/// `to − from` as a signed change, saturating at the ends of `i64`.
fn difference(to: u64, from: u64) -> i64 {
    let d = i128::from(to).saturating_sub(i128::from(from));
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
}

fn insufficient(level: &StockLevel, requested: u64) -> DomainError {
    DomainError::InsufficientStock {
        sku: level.sku.as_str().to_string(),
        warehouse_id: level.warehouse_id.as_str().to_string(),
        requested,
        available: level.available(),
    }
}

/// The current level (version 0 and zero stock when never stocked), or
/// `WarehouseNotFound`.
fn current_level(
    store: &dyn Store,
    sku: &Sku,
    warehouse_id: &WarehouseId,
) -> Result<StockLevel, ApplyError> {
    if store
        .get_raw(WAREHOUSES, &[KeyPart::Str(warehouse_id.as_str())])?
        .is_none()
    {
        return Err(DomainError::WarehouseNotFound(warehouse_id.as_str().to_string()).into());
    }
    let level = store
        .get::<StockLevel>(STOCK, &stock_key(sku, warehouse_id))?
        .unwrap_or(StockLevel {
            sku: sku.clone(),
            warehouse_id: warehouse_id.clone(),
            on_hand: 0,
            reserved: 0,
            version: 0,
        });
    Ok(level)
}

fn write_level(
    store: &mut dyn StoreMut,
    mut level: StockLevel,
    on_hand: u64,
    delta: i64,
    reason: Option<String>,
    ctx: &ApplyContext,
) -> Result<Response, ApplyError> {
    level.on_hand = on_hand;
    let level = save_level(store, level, delta, 0, reason, ctx)?;
    Ok(Response::Stock(level))
}

/// Stores a changed level, announces it, and re-evaluates its thresholds.
fn save_level(
    store: &mut dyn StoreMut,
    mut level: StockLevel,
    delta: i64,
    reserved_delta: i64,
    reason: Option<String>,
    ctx: &ApplyContext,
) -> Result<StockLevel, StoreFault> {
    level.version = ctx.version;
    store::put(
        store,
        STOCK,
        &stock_key(&level.sku, &level.warehouse_id),
        &level,
    )?;
    store.emit(Event::StockChanged {
        level: level.clone(),
        delta,
        reserved_delta,
        reason,
    });
    evaluate_threshold(store, &level.sku, Some(&level.warehouse_id), ctx)?;
    evaluate_threshold(store, &level.sku, None, ctx)?;
    Ok(level)
}

/// Moves units of one level: `on_hand_delta` to what is on hand,
/// `reserved_delta` to what is reserved. Refused (with nothing written) when
/// reserved would become negative or exceed on hand. Used by holds
/// (+reserved), their release (−reserved) and shipping (−both).
pub(crate) fn move_stock(
    store: &mut dyn StoreMut,
    allocation: &Allocation,
    on_hand_sign: i64,
    reserved_sign: i64,
    reason: &str,
    ctx: &ApplyContext,
) -> Result<StockLevel, ApplyError> {
    let q = i128::from(allocation.quantity);
    let level = current_level(store, &allocation.sku, &allocation.warehouse_id)?;
    // Signs are -1, 0 or 1 and quantities u64: nothing here nears i128's range.
    let on_hand =
        i128::from(level.on_hand).saturating_add(i128::from(on_hand_sign).saturating_mul(q));
    let reserved =
        i128::from(level.reserved).saturating_add(i128::from(reserved_sign).saturating_mul(q));
    if reserved < 0 || on_hand < reserved {
        return Err(insufficient(&level, allocation.quantity).into());
    }
    let (Ok(on_hand), Ok(reserved), Ok(quantity)) = (
        u64::try_from(on_hand),
        u64::try_from(reserved),
        i64::try_from(allocation.quantity),
    ) else {
        return Err(
            DomainError::validation("quantity", "the stock level would be out of range").into(),
        );
    };
    let mut next = level;
    next.on_hand = on_hand;
    next.reserved = reserved;
    let delta = on_hand_sign.saturating_mul(quantity);
    let reserved_delta = reserved_sign.saturating_mul(quantity);
    let saved = save_level(
        store,
        next,
        delta,
        reserved_delta,
        Some(reason.to_string()),
        ctx,
    )?;
    Ok(saved)
}

// ---- low-stock thresholds ----

pub fn get_warehouse(store: &dyn Store, id: &WarehouseId) -> Result<Option<Warehouse>, StoreFault> {
    store.get(WAREHOUSES, &[KeyPart::Str(id.as_str())])
}

/// Warehouses in id order, after `after`, at most `limit`.
pub fn list_warehouses(
    store: &dyn Store,
    after: Option<&WarehouseId>,
    limit: usize,
) -> Result<Vec<Warehouse>, StoreFault> {
    let after_key = after.map(|a| [KeyPart::Str(a.as_str())]);
    store.scan(WAREHOUSES, &[], after_key.as_ref().map(|k| &k[..]), limit)
}

/// Stock of `sku` over every warehouse, or `None` if it was never stocked.
pub fn sku_stock(store: &dyn Store, sku: &Sku) -> Result<Option<SkuStock>, StoreFault> {
    let levels: Vec<StockLevel> = store.scan(
        STOCK,
        &[KeyPart::Str(sku.as_str())],
        None,
        MAX_WAREHOUSES_PER_SKU,
    )?;
    if levels.is_empty() {
        return Ok(None);
    }
    Ok(Some(SkuStock {
        sku: sku.as_str().to_string(),
        on_hand: total(levels.iter().map(|l| l.on_hand)),
        reserved: total(levels.iter().map(|l| l.reserved)),
        available: total(levels.iter().map(StockLevel::available)),
        warehouses: levels.iter().map(StockLevel::view).collect(),
    }))
}

/// A sum that saturates instead of overflowing (`Iterator::sum` panics).
fn total(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, u64::saturating_add)
}

/// Every warehouse that stocks `sku`, with what it has available, for allocation.
pub fn candidates(store: &dyn Store, sku: &Sku) -> Result<Vec<Candidate>, StoreFault> {
    let levels: Vec<StockLevel> = store.scan(
        STOCK,
        &[KeyPart::Str(sku.as_str())],
        None,
        MAX_WAREHOUSES_PER_SKU,
    )?;
    let mut out = Vec::with_capacity(levels.len());
    for level in levels {
        if let Some(w) = get_warehouse(store, &level.warehouse_id)? {
            out.push(Candidate {
                warehouse_id: w.id,
                priority: w.priority,
                location: w.location,
                available: level.available(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
