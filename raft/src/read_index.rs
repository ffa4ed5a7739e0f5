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

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::node::WireError;

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
    /// The index a linearizable read must wait for, from a quorum round
    /// (`round`, e.g. `node::read_index_round`) that started after this call.
    pub(crate) async fn read_index<R, F>(&self, round: R) -> Answer
    where
        R: Fn() -> F + Send + 'static,
        F: Future<Output = Answer> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let start_driver = {
            let mut queue = self.queue.lock().expect("read-index queue");
            queue.waiting.push(tx);
            !std::mem::replace(&mut queue.driving, true)
        };
        if start_driver {
            tokio::spawn(drive(self.queue.clone(), round));
        }
        rx.await
            .unwrap_or_else(|_| Err(WireError::Other("read-index round abandoned".into())))
    }
}

/// Runs rounds while reads are waiting.
async fn drive<R, F>(queue: Arc<Mutex<Queue>>, round: R)
where
    R: Fn() -> F,
    F: Future<Output = Answer>,
{
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
        let answer = round().await;
        for waiter in batch {
            let _ = waiter.send(answer.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    /// A round that takes 50 ms and answers the number of rounds started so far.
    fn counting_round(
        started: Arc<AtomicU64>,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Answer> + Send>> + Send + 'static {
        move || {
            let n = started.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(n)
            })
        }
    }

    #[tokio::test]
    async fn waiting_reads_share_a_round_and_late_reads_wait_for_the_next() {
        let batcher = ReadIndexBatcher::default();
        let started = Arc::new(AtomicU64::new(0));
        // Round 1 starts with the first read alone.
        let first = tokio::spawn({
            let (b, s) = (batcher.clone(), started.clone());
            async move { b.read_index(counting_round(s)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(started.load(Ordering::SeqCst), 1);
        // Ten reads arrive while round 1 is in flight: they must not take its
        // answer, and they share round 2.
        let late: Vec<_> = (0..10)
            .map(|_| {
                let (b, s) = (batcher.clone(), started.clone());
                tokio::spawn(async move { b.read_index(counting_round(s)).await })
            })
            .collect();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        for read in late {
            assert_eq!(read.await.unwrap().unwrap(), 2);
        }
        assert_eq!(started.load(Ordering::SeqCst), 2, "one round for the ten");
        // Idle again: the next read starts a fresh driver and round.
        assert_eq!(
            batcher
                .read_index(counting_round(started.clone()))
                .await
                .unwrap(),
            3
        );
    }

    #[tokio::test]
    async fn a_failed_round_fails_every_read_that_waited_for_it() {
        let batcher = ReadIndexBatcher::default();
        let reads: Vec<_> = (0..3)
            .map(|_| {
                let b = batcher.clone();
                tokio::spawn(
                    async move { b.read_index(|| async { Err(WireError::NotLeader) }).await },
                )
            })
            .collect();
        for read in reads {
            assert!(matches!(read.await.unwrap(), Err(WireError::NotLeader)));
        }
    }
}
