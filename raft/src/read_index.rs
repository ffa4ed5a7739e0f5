//! Read-index batching on the leader: one quorum round answers every
//! linearizable read that was waiting when the round started.
//!
//! openraft's `get_read_log_id` confirms leadership with a heartbeat round to
//! the voters per call, so concurrent reads would each pay (and send) their
//! own round. Here a read joins the *next* round: the driver takes every read
//! waiting, then starts one round, and hands its answer to all of them. A
//! read that arrives while a round is in flight waits for the following one,
//! because the answer of a round that started before the read arrived may
//! predate a write the read must see. At most one round is in flight.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::node::WireError;
use crate::types::Raft;

type Answer = Result<u64, WireError>;

#[derive(Default)]
struct Queue {
    /// Reads waiting for the next round.
    waiting: Vec<oneshot::Sender<Answer>>,
    /// Whether a driver task is running (it drains `waiting` until empty).
    driving: bool,
}

/// Coalesces the read-index requests of one node.
#[derive(Default, Clone)]
pub(crate) struct ReadIndexBatcher {
    queue: Arc<Mutex<Queue>>,
}

impl ReadIndexBatcher {
    /// The index a linearizable read must wait for, from a quorum round that
    /// started after this call.
    pub(crate) async fn read_index(&self, raft: &Raft) -> Answer {
        let (tx, rx) = oneshot::channel();
        let start_driver = {
            let mut queue = self.queue.lock().expect("read-index queue");
            queue.waiting.push(tx);
            !std::mem::replace(&mut queue.driving, true)
        };
        if start_driver {
            tokio::spawn(drive(self.queue.clone(), raft.clone()));
        }
        rx.await
            .unwrap_or_else(|_| Err(WireError::Other("read-index round abandoned".into())))
    }
}

/// Runs rounds while reads are waiting.
async fn drive(queue: Arc<Mutex<Queue>>, raft: Raft) {
    loop {
        let batch = {
            let mut queue = queue.lock().expect("read-index queue");
            if queue.waiting.is_empty() {
                queue.driving = false;
                return;
            }
            std::mem::take(&mut queue.waiting)
        };
        metrics::histogram!("raft_read_index_batch_size").record(batch.len() as f64);
        let answer = crate::node::read_index_round(&raft).await;
        for waiter in batch {
            let _ = waiter.send(answer.clone());
        }
    }
}
