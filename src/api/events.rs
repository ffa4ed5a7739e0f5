//! The event log over REST: consumers read committed domain events in order
//! from a checkpoint, optionally long-polling for new ones.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use ecommerce_domains::EventRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::AdminOnly;
use super::error::{AppResult, ErrorBody};
use super::extract::{AppQuery, Consistency};
use super::App;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Return events with id greater than this checkpoint (default 0).
    pub after: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<usize>,
    /// When no event is newer than `after`, wait up to this many milliseconds
    /// (at most 30000) for one.
    pub wait_ms: Option<u64>,
    pub consistency: Option<Consistency>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventDto {
    /// Position in the event log: 1, 2, 3... the same on every node.
    pub id: u64,
    /// Raft log index of the command that emitted it.
    pub log_index: u64,
    pub timestamp_ms: u64,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<EventRecord> for EventDto {
    fn from(r: EventRecord) -> Self {
        Self {
            id: r.id,
            log_index: r.log_index,
            timestamp_ms: r.timestamp_ms,
            kind: r.event.kind().into(),
            data: r.event.data(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventDto>,
    /// The checkpoint to pass as `after` next time.
    pub last_id: u64,
}

/// Read the event log from a checkpoint.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventParams),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_events(
    State(state): State<App>,
    AdminOnly(_admin): AdminOnly,
    AppQuery(params): AppQuery<EventParams>,
) -> AppResult<Json<EventPage>> {
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0));
    let (records, last_id) = state
        .wait_for_events(
            params.after.unwrap_or(0),
            params.limit.unwrap_or(100),
            wait,
            params.consistency.unwrap_or_default(),
        )
        .await?;
    Ok(Json(EventPage {
        events: records.into_iter().map(Into::into).collect(),
        last_id,
    }))
}
