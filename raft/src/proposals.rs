//! Leader-side batching of proposals (group commit).
//!
//! openraft's core takes one client write per turn of its loop, and each one
//! becomes its own log entry: its own append, replication message and fsync
//! on the leader and on a follower. Under concurrent writes that makes the
//! disk's sync latency the ceiling of the whole cluster.
//!
//! The batcher keeps a few proposals in flight; the envelopes that arrive
//! meanwhile wait in a queue, and the next proposal packs everything waiting
//! (up to [`Limits`]) into one entry, `Command::Batch`. The state machine
//! applies the envelopes of a batch in order, each with its own idempotency
//! record and its own version, and answers one result per envelope, which
//! goes back to the envelope's caller. A lone envelope is proposed as itself.
//!
//! A failed proposal fails every envelope it carried with the same error: a
//! batch commits whole or not at all, so "outcome unknown" is true of each.
//!
//! An envelope that is itself a batch, or larger than
//! [`MAX_ENVELOPE_BYTES`], is refused before it is proposed (a client never
//! sends a batch, and no entry may outgrow what a peer accepts).

use std::future::Future;
use std::sync::Arc;

use ecommerce_domains::command::{Applied, Command, MAX_ENVELOPE_BYTES};
use ecommerce_domains::{DomainError, Envelope};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::node::WireError;

/// How much one proposal may carry, and how many may be in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_commands: usize,
    /// Encoded size; an envelope larger than this is proposed alone.
    pub max_bytes: usize,
    /// Proposals handed to Raft and not yet answered. More than one lets the
    /// leader append a batch while the previous one replicates.
    pub in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_commands: 256,
            max_bytes: 1 << 20,
            in_flight: 2,
        }
    }
}

/// Envelopes waiting to be proposed, beyond which callers wait to enqueue.
const QUEUE: usize = 8192;

struct Pending {
    envelope: Envelope,
    bytes: usize,
    reply: oneshot::Sender<Result<Applied, WireError>>,
}

pub(crate) struct ProposalBatcher {
    queue: mpsc::Sender<Pending>,
}

impl ProposalBatcher {
    /// Starts the batching task. `propose` hands one entry to Raft and
    /// returns the state machine's results, one per envelope of the entry.
    pub(crate) fn start<F, Fut>(limits: Limits, propose: F) -> Self
    where
        F: Fn(Envelope) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Applied>, WireError>> + Send + 'static,
    {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(run(waiting, limits, Arc::new(propose)));
        Self { queue }
    }

    /// Proposes `envelope` in the next batch and returns its result.
    pub(crate) async fn propose(&self, envelope: Envelope) -> Result<Applied, WireError> {
        let bytes = ecommerce_storage::codec::encode(&envelope)
            .map_err(|e| WireError::Other(e.to_string()))?
            .len();
        let refused = |message: String| {
            Ok(Applied {
                outcome: Err(DomainError::validation("command", message)),
                replayed: false,
                log_index: 0,
            })
        };
        if matches!(envelope.command, Command::Batch(_)) {
            return refused("a batch is built by the leader only".into());
        }
        if bytes > MAX_ENVELOPE_BYTES {
            return refused(format!(
                "the command is {bytes} bytes encoded, more than the {MAX_ENVELOPE_BYTES} allowed"
            ));
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending {
                envelope,
                bytes,
                reply,
            })
            .await
            .map_err(|_| WireError::Other("the proposal batcher stopped".into()))?;
        // Dropped without an answer only if the proposing task died, after
        // the entry may have reached Raft.
        answer.await.unwrap_or(Err(WireError::Ambiguous))
    }
}

async fn run<F, Fut>(mut waiting: mpsc::Receiver<Pending>, limits: Limits, propose: Arc<F>)
where
    F: Fn(Envelope) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<Applied>, WireError>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.in_flight.max(1)));
    // The envelope that did not fit into the previous batch.
    let mut carried: Option<Pending> = None;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(p) => p,
            None => match waiting.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while batch.len() < limits.max_commands {
            match waiting.try_recv() {
                Ok(p) if bytes + p.bytes > limits.max_bytes => {
                    carried = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += p.bytes;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("raft_proposal_batch_commands").record(batch.len() as f64);
        let propose = propose.clone();
        tokio::spawn(async move {
            let _permit = permit;
            answer(batch, &*propose).await;
        });
    }
}

/// Proposes `batch` as one entry and answers each envelope's caller.
async fn answer<F, Fut>(batch: Vec<Pending>, propose: &F)
where
    F: Fn(Envelope) -> Fut,
    Fut: Future<Output = Result<Vec<Applied>, WireError>>,
{
    let (mut envelopes, replies): (Vec<Envelope>, Vec<_>) =
        batch.into_iter().map(|p| (p.envelope, p.reply)).unzip();
    let entry = if envelopes.len() == 1 {
        envelopes.remove(0)
    } else {
        Envelope {
            now_ms: 0,
            idempotency: None,
            command: Command::Batch(envelopes),
        }
    };
    let outcome = match propose(entry).await {
        Ok(applied) if applied.len() == replies.len() => {
            for (reply, applied) in replies.into_iter().zip(applied) {
                let _ = reply.send(Ok(applied));
            }
            return;
        }
        Ok(applied) => Err(WireError::Other(format!(
            "{} results for {} commands",
            applied.len(),
            replies.len()
        ))),
        Err(e) => Err(e),
    };
    for reply in replies {
        let _ = reply.send(outcome.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use ecommerce_domains::command::{Outcome, Response};
    use ecommerce_domains::SystemCommand;

    use super::*;

    /// An envelope told apart by `ttl_ms`.
    fn envelope(n: u64) -> Envelope {
        Envelope {
            now_ms: 0,
            idempotency: None,
            command: Command::System(SystemCommand::ExpireIdempotency { ttl_ms: n }),
        }
    }

    fn tag(e: &Envelope) -> u64 {
        match e.command {
            Command::System(SystemCommand::ExpireIdempotency { ttl_ms }) => ttl_ms,
            _ => panic!("not a test envelope: {e:?}"),
        }
    }

    /// A result carrying the envelope's tag, so each caller can check it got its own.
    fn applied(e: &Envelope) -> Applied {
        let outcome: Outcome = Ok(Response::Expired { removed: tag(e) });
        Applied {
            outcome,
            replayed: false,
            log_index: 1,
        }
    }

    type Proposed = std::pin::Pin<Box<dyn Future<Output = Result<Vec<Applied>, WireError>> + Send>>;

    /// A fake Raft: records each entry's size, answers after `delay`.
    fn fake_raft(
        delay: Duration,
        entries: Arc<std::sync::Mutex<Vec<usize>>>,
    ) -> impl Fn(Envelope) -> Proposed + Send + Sync + 'static {
        move |entry: Envelope| {
            let entries = entries.clone();
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                let results: Vec<Applied> = entry.unbatch().iter().map(applied).collect();
                entries.lock().unwrap().push(results.len());
                Ok(results)
            }) as Proposed
        }
    }

    #[tokio::test]
    async fn a_lone_envelope_is_proposed_as_itself() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let batcher = ProposalBatcher::start(Limits::default(), move |entry: Envelope| {
            s.lock().unwrap().push(entry.clone());
            async move { Ok(vec![applied(&entry)]) }
        });
        let result = batcher.propose(envelope(7)).await.unwrap();
        assert_eq!(result.outcome, Ok(Response::Expired { removed: 7 }));
        assert_eq!(*seen.lock().unwrap(), vec![envelope(7)]);
    }

    #[tokio::test]
    async fn envelopes_waiting_behind_a_proposal_share_the_next_entry_and_get_their_own_results() {
        let entries = Arc::new(std::sync::Mutex::new(Vec::new()));
        let limits = Limits {
            in_flight: 1,
            ..Limits::default()
        };
        let batcher = Arc::new(ProposalBatcher::start(
            limits,
            fake_raft(Duration::from_millis(50), entries.clone()),
        ));
        let calls: Vec<_> = (0..40u64)
            .map(|n| {
                let b = batcher.clone();
                tokio::spawn(async move { (n, b.propose(envelope(n)).await) })
            })
            .collect();
        for call in calls {
            let (n, result) = call.await.unwrap();
            assert_eq!(
                result.unwrap().outcome,
                Ok(Response::Expired { removed: n }),
                "caller {n} got another's result"
            );
        }
        let entries = entries.lock().unwrap();
        assert_eq!(entries.iter().sum::<usize>(), 40);
        assert!(
            entries.len() < 40 && entries.iter().any(|&n| n > 1),
            "nothing was batched: {entries:?}"
        );
    }

    #[tokio::test]
    async fn batches_respect_the_count_and_size_limits() {
        let entries = Arc::new(std::sync::Mutex::new(Vec::new()));
        let one = ecommerce_storage::codec::encode(&envelope(1))
            .unwrap()
            .len();
        let limits = Limits {
            max_commands: 5,
            max_bytes: 3 * one,
            in_flight: 1,
        };
        let batcher = Arc::new(ProposalBatcher::start(
            limits,
            fake_raft(Duration::from_millis(20), entries.clone()),
        ));
        let calls: Vec<_> = (0..30u64)
            .map(|n| {
                let b = batcher.clone();
                tokio::spawn(async move { b.propose(envelope(n)).await })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let entries = entries.lock().unwrap();
        assert_eq!(entries.iter().sum::<usize>(), 30);
        assert!(entries.iter().all(|&n| n <= 3), "{entries:?}");
    }

    #[tokio::test]
    async fn a_failed_proposal_fails_every_envelope_it_carried() {
        let proposals = Arc::new(AtomicUsize::new(0));
        let p = proposals.clone();
        let limits = Limits {
            in_flight: 1,
            ..Limits::default()
        };
        let batcher = Arc::new(ProposalBatcher::start(limits, move |_entry: Envelope| {
            p.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Err::<Vec<Applied>, _>(WireError::Ambiguous)
            }
        }));
        let calls: Vec<_> = (0..10u64)
            .map(|n| {
                let b = batcher.clone();
                tokio::spawn(async move { b.propose(envelope(n)).await })
            })
            .collect();
        for call in calls {
            assert!(matches!(call.await.unwrap(), Err(WireError::Ambiguous)));
        }
        assert!(proposals.load(Ordering::SeqCst) < 10);
    }

    #[tokio::test]
    async fn a_batch_or_an_oversized_envelope_is_refused_without_a_proposal() {
        let proposals = Arc::new(AtomicUsize::new(0));
        let p = proposals.clone();
        let batcher = ProposalBatcher::start(Limits::default(), move |entry: Envelope| {
            p.fetch_add(1, Ordering::SeqCst);
            async move { Ok(vec![applied(&entry)]) }
        });
        let batch = Envelope {
            now_ms: 0,
            idempotency: None,
            command: Command::Batch(vec![envelope(1)]),
        };
        let huge = Envelope {
            now_ms: 0,
            idempotency: None,
            command: Command::Listing(ecommerce_domains::listing::ListingCommand::Upsert {
                actor: ecommerce_domains::Actor {
                    user_id: "x".repeat(MAX_ENVELOPE_BYTES),
                    role: ecommerce_domains::Role::Admin,
                },
                sku: ecommerce_domains::inventory::Sku::parse("A").unwrap(),
                name: "A".into(),
                price: ecommerce_domains::money::Money::parse("price", 1, "EUR").unwrap(),
                vendor_id: None,
                active: true,
            }),
        };
        for e in [batch, huge] {
            let refused = batcher.propose(e).await.unwrap();
            assert_eq!(refused.outcome.unwrap_err().code(), "validation_failed");
        }
        assert_eq!(proposals.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_result_count_that_does_not_match_fails_the_batch() {
        let limits = Limits {
            in_flight: 1,
            ..Limits::default()
        };
        let batcher = Arc::new(ProposalBatcher::start(limits, |_entry: Envelope| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Vec::new())
        }));
        let calls: Vec<_> = (0..4u64)
            .map(|n| {
                let b = batcher.clone();
                tokio::spawn(async move { b.propose(envelope(n)).await })
            })
            .collect();
        for call in calls {
            assert!(matches!(call.await.unwrap(), Err(WireError::Other(_))));
        }
    }
}
