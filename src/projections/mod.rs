//! Projections: state derived on every node from the replicated event log
//! (caches, search indexes). They follow the log after the state machine
//! applied it, so what they derive is never ahead of the replica.

pub mod products;

use std::sync::Arc;
use std::time::Duration;

use ecommerce_domains::EventRecord;
use ecommerce_raft::RaftNode;
use tokio::task::JoinHandle;

/// Events handed to a handler at once.
const PAGE: usize = 512;

/// What a follower is told.
pub enum Feed<'a> {
    /// Events in log order.
    Events(&'a [EventRecord]),
    /// The follower may have missed events (a snapshot was installed, or the
    /// log moved on past it): derived state must be rebuilt or dropped.
    Gap,
}

/// Calls `handler` with every event applied from now on, in order, on this node.
/// "From now" is when this is called, not when the task first runs.
pub fn follow(
    node: Arc<RaftNode>,
    mut handler: impl FnMut(Feed<'_>) + Send + 'static,
) -> JoinHandle<()> {
    let mut applied = node.subscribe_applied();
    let mut checkpoint = node.last_event_id().unwrap_or(0);
    tokio::spawn(async move {
        loop {
            match node.events_after(checkpoint, PAGE) {
                Ok(events) if !events.is_empty() => {
                    if events[0].id != checkpoint + 1 {
                        handler(Feed::Gap);
                    }
                    checkpoint = events.last().map_or(checkpoint, |e| e.id);
                    handler(Feed::Events(&events));
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    // Installing a snapshot: what follows may not continue what we saw.
                    tracing::debug!(error = %e, "event follower waiting");
                    handler(Feed::Gap);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    checkpoint = node.last_event_id().unwrap_or(checkpoint);
                    continue;
                }
            }
            if applied.changed().await.is_err() {
                return;
            }
        }
    })
}
