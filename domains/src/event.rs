//! Domain events: what applied commands announce to consumers (notifications,
//! search indexing, analytics, webhooks) through the replicated event log.

use serde::{Deserialize, Serialize};

use crate::inventory::{StockLevel, Warehouse};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    WarehouseUpserted(Warehouse),
    StockChanged {
        level: StockLevel,
        delta: i64,
        reason: Option<String>,
    },
    User(crate::users::UserEvent),
}

impl Event {
    /// The event type name used in the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WarehouseUpserted(_) => "WarehouseUpserted",
            Self::StockChanged { .. } => "StockChanged",
            Self::User(e) => e.kind(),
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
                reason,
            } => json!({
                "level": level.view(), "delta": delta, "reason": reason
            }),
            Self::User(e) => e.data(),
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
