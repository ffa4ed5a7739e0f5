//! Low-stock thresholds per SKU (over all warehouses) or per SKU and
//! warehouse, and the `StockLow` / `BackInStock` alerts when available stock
//! crosses one.

use super::*;

/// Thresholds keyed by (sku, warehouse id, or "" for the SKU over all warehouses).
pub const THRESHOLDS: &str = "inventory_thresholds";
/// What is currently below its threshold, same keys.
pub const LOW_STOCK: &str = "inventory_low_stock";

/// A SKU (in one warehouse, or over all of them) whose available stock is below its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LowStock {
    pub sku: Sku,
    pub warehouse_id: Option<WarehouseId>,
    pub threshold: u64,
    pub available: u64,
    /// When it fell below the threshold.
    pub since_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub sku: Sku,
    pub warehouse_id: Option<WarehouseId>,
    pub threshold: u64,
    pub version: u64,
}

pub(super) fn threshold_key<'a>(
    sku: &'a Sku,
    warehouse: Option<&'a WarehouseId>,
) -> [KeyPart<'a>; 2] {
    [
        KeyPart::Str(sku.as_str()),
        KeyPart::Str(warehouse.map_or("", WarehouseId::as_str)),
    ]
}

pub(super) fn available_now(
    store: &dyn Store,
    sku: &Sku,
    warehouse: Option<&WarehouseId>,
) -> Result<u64, StoreFault> {
    Ok(match warehouse {
        Some(w) => store
            .get::<StockLevel>(STOCK, &stock_key(sku, w))?
            .map_or(0, |l| l.available()),
        None => sku_stock(store, sku)?.map_or(0, |s| s.available),
    })
}

/// Emits `StockLow` when available stock is below a threshold and was not,
/// `BackInStock` when it is back at or above it. State-based, so a threshold
/// crossed twice in one command still yields one event per real change.
pub(super) fn evaluate_threshold(
    store: &mut dyn StoreMut,
    sku: &Sku,
    warehouse: Option<&WarehouseId>,
    ctx: &ApplyContext,
) -> Result<(), StoreFault> {
    let key = threshold_key(sku, warehouse);
    let Some(threshold) = store.get::<Threshold>(THRESHOLDS, &key)? else {
        return Ok(());
    };
    let available = available_now(store, sku, warehouse)?;
    let was_low = store.get_raw(LOW_STOCK, &key)?.is_some();
    let low = available < threshold.threshold;
    let entry = LowStock {
        sku: sku.clone(),
        warehouse_id: warehouse.cloned(),
        threshold: threshold.threshold,
        available,
        since_ms: ctx.now_ms,
    };
    if low && !was_low {
        store::put(store, LOW_STOCK, &key, &entry)?;
        store.emit(Event::StockLow(entry));
    } else if !low && was_low {
        store.delete_raw(LOW_STOCK, &key);
        store.emit(Event::BackInStock(entry));
    }
    Ok(())
}

pub(super) fn set_threshold(
    store: &mut dyn StoreMut,
    sku: &Sku,
    warehouse: Option<&WarehouseId>,
    threshold: Option<u64>,
    ctx: &ApplyContext,
) -> Result<Response, ApplyError> {
    if let Some(w) = warehouse {
        if get_warehouse(store, w)?.is_none() {
            return Err(DomainError::WarehouseNotFound(w.as_str().to_string()).into());
        }
    }
    let key = threshold_key(sku, warehouse);
    let record = Threshold {
        sku: sku.clone(),
        warehouse_id: warehouse.cloned(),
        threshold: threshold.unwrap_or(0),
        version: ctx.version,
    };
    match threshold {
        Some(_) => {
            store::put(store, THRESHOLDS, &key, &record)?;
            evaluate_threshold(store, sku, warehouse, ctx)?;
        }
        None => {
            store.delete_raw(THRESHOLDS, &key);
            store.delete_raw(LOW_STOCK, &key);
        }
    }
    Ok(Response::Threshold(record))
}

/// Everything below its threshold, in (sku, warehouse) order, with the current availability.
pub fn low_stock(
    store: &dyn Store,
    after: Option<(&Sku, &str)>,
    limit: usize,
) -> Result<Vec<LowStock>, StoreFault> {
    let after_key = after.map(|(s, w)| [KeyPart::Str(s.as_str()), KeyPart::Str(w)]);
    let mut entries: Vec<LowStock> =
        store.scan(LOW_STOCK, &[], after_key.as_ref().map(|k| &k[..]), limit)?;
    for e in &mut entries {
        e.available = available_now(store, &e.sku, e.warehouse_id.as_ref())?;
    }
    Ok(entries)
}

// ---- queries ----
