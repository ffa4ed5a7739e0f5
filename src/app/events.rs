//! The replicated event log as readers see it: pages after a checkpoint,
//! and a wake-up on every apply for those that wait.

use ecommerce_domains::EventRecord;
use tokio::sync::watch;

use super::{App, AppResult};

impl App {
    /// Up to `limit` events with an id above `after`, in id order.
    pub fn events_after(&self, after: u64, limit: usize) -> AppResult<Vec<EventRecord>> {
        Ok(self.node().events_after(after, limit)?)
    }

    /// The id of the last event this replica applied (0 before the first).
    pub fn last_event_id(&self) -> AppResult<u64> {
        Ok(self.node().last_event_id()?)
    }

    /// Changes whenever this replica applies something.
    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.node().subscribe_applied()
    }
}
