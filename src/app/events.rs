//! The replicated event log as readers see it: pages after a checkpoint,
//! and a wake-up on every apply for those that wait.

use std::time::Duration;

use ecommerce_domains::EventRecord;
use tokio::sync::watch;

use super::{App, AppError, AppResult, Consistency};
use crate::app::ErrorCode;

/// Longest a long-poll for events waits (a longer wait is cut to it).
pub const MAX_WAIT: Duration = Duration::from_secs(30);

impl App {
    /// Up to `limit` events with an id above `after`, in id order; or
    /// `events_compacted` (with the oldest id left) when the event right
    /// after `after` was compacted away: a consumer must never skip events
    /// without knowing it.
    pub fn events_after(&self, after: u64, limit: usize) -> AppResult<Vec<EventRecord>> {
        let records = self.node().events_after(after, limit)?;
        // The first event returned is the oldest left whenever `after` is
        // behind it.
        let oldest = match records.first() {
            Some(first) => first.id,
            None => self.node().oldest_event_id()?,
        };
        if oldest > after.saturating_add(1) {
            return Err(AppError::new(
                ErrorCode::EventsCompacted,
                format!(
                    "events up to {} were compacted away; the oldest left is {oldest}",
                    oldest - 1
                ),
            )
            .with_details(serde_json::json!({ "oldest_id": oldest })));
        }
        Ok(records)
    }

    /// The id of the last event this replica applied (0 before the first).
    pub fn last_event_id(&self) -> AppResult<u64> {
        Ok(self.node().last_event_id()?)
    }

    /// Up to `limit` (1 to 1000) events after checkpoint `after`, waiting
    /// up to `wait` (at most [`MAX_WAIT`]) for one when there are none yet;
    /// with the checkpoint to pass next time. `consistency` is the read's:
    /// linearizable first catches this replica up with the leader.
    pub async fn wait_for_events(
        &self,
        after: u64,
        limit: usize,
        wait: Duration,
        consistency: Consistency,
    ) -> AppResult<(Vec<EventRecord>, u64)> {
        if !(1..=1000).contains(&limit) {
            return Err(AppError::new(
                ErrorCode::InvalidQuery,
                "limit must be between 1 and 1000",
            ));
        }
        self.read(consistency).await?;
        let mut applied = self.subscribe_applied();
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        loop {
            let records = self.events_after(after, limit)?;
            if !records.is_empty() || tokio::time::Instant::now() >= deadline {
                let last_id = records.last().map_or(after, |r| r.id);
                return Ok((records, last_id));
            }
            // Wake on the next apply, or give up at the deadline.
            let _ = tokio::time::timeout_at(deadline, applied.changed()).await;
        }
    }

    /// Changes whenever this replica applies something.
    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.node().subscribe_applied()
    }
}
