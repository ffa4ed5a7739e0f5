//! Domain events: what applied commands announce to consumers (notifications,
//! search indexing, analytics, webhooks) through the replicated event log.

use serde::{Deserialize, Serialize};

use crate::catalog::{Category, Product};
use crate::inventory::{LowStock, StockLevel, Warehouse};
use crate::listing::Listing;
use crate::media::MediaRecord;
use crate::order::{Order, PaymentStatus};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    WarehouseUpserted(Warehouse),
    StockChanged {
        level: StockLevel,
        /// Change of on-hand units.
        delta: i64,
        /// Change of reserved units.
        reserved_delta: i64,
        reason: Option<String>,
    },
    User(crate::users::UserEvent),
    /// Available stock fell below a low-stock threshold.
    StockLow(LowStock),
    /// Available stock is back at or above the threshold.
    BackInStock(LowStock),
    ListingUpserted(Listing),
    OrderPlaced(Box<Order>),
    OrderStatusChanged {
        order_id: u64,
        customer_id: String,
        from: String,
        to: String,
        reason: String,
    },
    PaymentUpdated {
        order_id: u64,
        status: PaymentStatus,
    },
    /// An image was registered; every node fetches its bytes if it lacks them.
    MediaRegistered(MediaRecord),
    ProductChanged(Box<Product>),
    CategoryChanged(Category),
}

impl Event {
    /// The event type name used in the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WarehouseUpserted(_) => "WarehouseUpserted",
            Self::StockChanged { .. } => "StockChanged",
            Self::User(e) => e.kind(),
            Self::StockLow(_) => "StockLow",
            Self::BackInStock(_) => "BackInStock",
            Self::ListingUpserted(_) => "ListingUpserted",
            Self::ProductChanged(_) => "ProductChanged",
            Self::CategoryChanged(_) => "CategoryChanged",
            Self::OrderPlaced(_) => "OrderPlaced",
            Self::OrderStatusChanged { .. } => "OrderStatusChanged",
            Self::PaymentUpdated { .. } => "PaymentUpdated",
            Self::MediaRegistered(_) => "MediaRegistered",
        }
    }

    /// The event's payload as JSON for the API.
    pub fn data(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::WarehouseUpserted(w) => json!(w),
            Self::StockChanged {
                level,
                delta,
                reserved_delta,
                reason,
            } => json!({
                "level": level.view(), "delta": delta, "reserved_delta": reserved_delta,
                "reason": reason
            }),
            Self::StockLow(low) | Self::BackInStock(low) => json!(low),
            Self::ListingUpserted(l) => json!(l),
            Self::ProductChanged(p) => json!({
                "product_id": p.id.as_str(), "slug": p.slug, "vendor_id": p.vendor_id,
                "active": p.active, "deleted": p.deleted_ms.is_some(), "version": p.version
            }),
            Self::CategoryChanged(c) => json!({
                "category_id": c.id.as_str(), "parent_id": c.parent_id.as_ref().map(|p| p.as_str()),
                "slug": c.slug, "name": c.name, "version": c.version
            }),
            Self::OrderPlaced(o) => json!({
                "order_id": o.id.to_string(), "customer_id": o.customer_id,
                "total": o.totals.total, "lines": o.lines
            }),
            Self::OrderStatusChanged {
                order_id,
                customer_id,
                from,
                to,
                reason,
            } => json!({
                "order_id": order_id.to_string(), "customer_id": customer_id,
                "from": from, "to": to, "reason": reason
            }),
            Self::PaymentUpdated { order_id, status } => json!({
                "order_id": order_id.to_string(), "status": status
            }),
            Self::User(e) => e.data(),
            Self::MediaRegistered(m) => json!({
                "hash": m.hash, "content_type": m.content_type.mime(), "size": m.size,
                "width": m.width, "height": m.height, "uploaded_by": m.uploaded_by,
                "origin_node": m.origin_node
            }),
        }
    }
}

/// An event as stored in the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Position in the event log: 1, 2, 3... with no gaps, equal on every replica.
    pub id: u64,
    /// Index of the Raft log entry whose command emitted the event.
    pub log_index: u64,
    pub timestamp_ms: u64,
    pub event: Event,
}
