//! Leader-side workers: the only code that acts on time or talks to outside
//! services. Each loop runs on every node but does its work only while the
//! node leads, and only proposes commands: what a command does is decided by
//! the state machine at log-ordered time, so a stale trigger, a duplicate
//! proposal, or two leaders overlapping for a moment change nothing.
//!
//! - expiry: idempotency records, stock holds of unpaid orders, idle carts,
//!   expired sessions, reset tokens and pending social sign-ins;
//! - payments: performs the payment outbox's tasks with the provider and
//!   proposes their results.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ecommerce_domains::order::{self, OrderCommand, PaymentOp, PaymentResult, PaymentTask};
use ecommerce_domains::users::{self, UserCommand};
use ecommerce_domains::{cart, Command, Envelope, Response, SystemCommand};
use ecommerce_raft::{RaftNode, Reader};
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::payments::{self, PaymentProvider, PaymentRequest, ProviderAnswer};

/// Starts every worker; abort the handles to stop them.
pub fn spawn(
    node: Arc<RaftNode>,
    settings: Settings,
    provider: Arc<dyn PaymentProvider>,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(idempotency_sweeper(node.clone(), settings.clone())),
        tokio::spawn(event_compactor(node.clone(), settings.clone())),
        tokio::spawn(expiry_sweeper(node.clone(), settings.clone())),
        tokio::spawn(payment_worker(node, settings, provider)),
    ]
}

fn is_leader(node: &RaftNode) -> bool {
    node.status().leader_id == Some(node.id)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Proposes a system command; returns how many records it removed.
async fn propose(node: &RaftNode, command: Command) -> Option<Response> {
    let envelope = Envelope {
        now_ms: 0, // stamped by the leader
        idempotency: None,
        command,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    match node.write(envelope, deadline).await {
        Ok(applied) => applied.outcome.ok(),
        Err(e) => {
            tracing::debug!(error = %e, "housekeeping proposal skipped");
            None
        }
    }
}

/// Repeats an expiry command while it removes full batches; counts what it
/// removed in `expired_total{kind}`.
async fn expire_all(node: &RaftNode, command: Command, batch: usize, kind: &'static str) {
    while is_leader(node) {
        match propose(node, command.clone()).await {
            Some(Response::Expired { removed }) => {
                metrics::counter!("expired_total", "kind" => kind).increment(removed);
                if removed < batch as u64 {
                    break;
                }
            }
            _ => break,
        }
    }
}

async fn idempotency_sweeper(node: Arc<RaftNode>, settings: Settings) {
    let every = Duration::from_secs(settings.idempotency.sweep_interval_secs);
    let ttl_ms = settings.idempotency.ttl_secs * 1000;
    loop {
        tokio::time::sleep(every).await;
        if is_leader(&node) {
            let command = Command::System(SystemCommand::ExpireIdempotency { ttl_ms });
            let batch = ecommerce_domains::idempotency::EXPIRE_BATCH;
            expire_all(&node, command, batch, "idempotency_record").await;
        }
    }
}

/// Events one compaction command removes at most.
const COMPACT_BATCH: u64 = 10_000;

/// Compacts the event log past `events.retention_secs` and
/// `events.max_events`, when this replica says something is due.
async fn event_compactor(node: Arc<RaftNode>, settings: Settings) {
    let every = Duration::from_secs(settings.events.compact_interval_secs);
    let retention_ms = settings.events.retention_secs.saturating_mul(1000);
    let keep_events = settings.events.max_events;
    loop {
        tokio::time::sleep(every).await;
        if !is_leader(&node) || !compaction_due(&node, retention_ms, keep_events) {
            continue;
        }
        let command = Command::System(SystemCommand::CompactEvents {
            retention_ms,
            keep_events,
            max_removed: COMPACT_BATCH,
        });
        expire_all(&node, command, COMPACT_BATCH as usize, "event").await;
    }
}

/// Whether the oldest event is past the retention or the log over its budget.
fn compaction_due(node: &RaftNode, retention_ms: u64, keep_events: u64) -> bool {
    let (Ok(oldest), Ok(newest)) = (node.events_after(0, 1), node.last_event_id()) else {
        return false;
    };
    let Some(oldest) = oldest.first() else {
        return false;
    };
    oldest.timestamp_ms < now_ms().saturating_sub(retention_ms)
        || newest.saturating_sub(oldest.id).saturating_add(1) > keep_events
}

/// Cancels unpaid orders whose hold expired, removes idle carts and expired
/// sessions, reset tokens and social sign-in states. The local
/// replica says whether anything is due, so an idle cluster proposes nothing.
async fn expiry_sweeper(node: Arc<RaftNode>, settings: Settings) {
    let every = Duration::from_millis(settings.commerce.sweep_interval_ms);
    let idle_ms = settings.commerce.cart_idle_secs * 1000;
    loop {
        tokio::time::sleep(every).await;
        if !is_leader(&node) {
            continue;
        }
        let (hold_due, cart_due, auth_due) = {
            let Some(reader) = Reader::new(node.storage()) else {
                continue;
            };
            let now = now_ms();
            let hold_due = order::next_hold_expiry(&reader)
                .ok()
                .flatten()
                .is_some_and(|at| at <= now);
            let cart_due = cart::oldest_update(&reader)
                .ok()
                .flatten()
                .is_some_and(|at| at.saturating_add(idle_ms) <= now);
            let auth_due = users::next_auth_expiry(&reader)
                .ok()
                .flatten()
                .is_some_and(|at| at <= now);
            (hold_due, cart_due, auth_due)
        };
        if hold_due {
            let command = Command::Order(OrderCommand::ExpireHolds);
            expire_all(&node, command, order::EXPIRE_BATCH, "hold").await;
        }
        if cart_due {
            let command = Command::Cart(cart::CartCommand::Expire { idle_ms });
            expire_all(&node, command, cart::EXPIRE_BATCH, "cart").await;
        }
        if auth_due {
            let command = Command::Users(Box::new(UserCommand::ExpireAuth));
            expire_all(&node, command, users::EXPIRE_BATCH, "auth").await;
        }
    }
}

/// Most payment tasks in flight at once.
const MAX_IN_FLIGHT: usize = 64;

/// Performs payment tasks while this node leads.
async fn payment_worker(
    node: Arc<RaftNode>,
    settings: Settings,
    provider: Arc<dyn PaymentProvider>,
) {
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let every = Duration::from_millis(settings.payments.poll_interval_ms);
    loop {
        tokio::time::sleep(every).await;
        if !is_leader(&node) {
            continue;
        }
        let tasks = {
            let Some(reader) = Reader::new(node.storage()) else {
                continue;
            };
            match order::payment_tasks(&reader, MAX_IN_FLIGHT) {
                Ok(tasks) => tasks,
                Err(e) => {
                    tracing::error!(error = %e, "reading payment tasks");
                    continue;
                }
            }
        };
        for task in tasks {
            if !in_flight
                .lock()
                .expect("in-flight set")
                .insert(task.key.clone())
            {
                continue;
            }
            let (node, provider, settings, in_flight) = (
                node.clone(),
                provider.clone(),
                settings.clone(),
                in_flight.clone(),
            );
            tokio::spawn(async move {
                let key = task.key.clone();
                let result = perform(provider.as_ref(), &task, &settings).await;
                let outcome = result_kind(&result);
                tracing::info!(order_id = task.order_id, op = ?task.op, outcome, "payment task done");
                metrics::counter!("payment_tasks_total", "op" => format!("{:?}", task.op).to_lowercase(), "outcome" => outcome)
                    .increment(1);
                let command = Command::Order(OrderCommand::PaymentResult {
                    order_id: task.order_id,
                    op: task.op,
                    result,
                });
                propose(&node, command).await;
                in_flight.lock().expect("in-flight set").remove(&key);
            });
        }
    }
}

fn result_kind(result: &PaymentResult) -> &'static str {
    match result {
        PaymentResult::Succeeded { .. } => "succeeded",
        PaymentResult::Declined { .. } => "declined",
        PaymentResult::Failed { .. } => "failed",
    }
}

/// One task, retried with the same idempotency key until the provider gives
/// a definite answer or the attempts run out.
async fn perform(
    provider: &dyn PaymentProvider,
    task: &PaymentTask,
    settings: &Settings,
) -> PaymentResult {
    let p = &settings.payments;
    let mut last_error = String::new();
    for attempt in 1..=p.max_attempts {
        let request = PaymentRequest {
            amount: task.amount.clone(),
            method: task.method.clone(),
            authorization: task.authorization.clone(),
            idempotency_key: task.key.clone(),
        };
        let call = match task.op {
            PaymentOp::Authorize => provider.authorize(request),
            PaymentOp::Capture => provider.capture(request),
            PaymentOp::Void => provider.void(request),
            PaymentOp::Refund => provider.refund(request),
        };
        match payments::with_timeout(Duration::from_millis(p.timeout_ms), call).await {
            Ok(ProviderAnswer::Approved { reference }) => {
                return PaymentResult::Succeeded { reference }
            }
            Ok(ProviderAnswer::Declined { reason }) => return PaymentResult::Declined { reason },
            Err(e) => {
                tracing::warn!(order_id = task.order_id, op = ?task.op, attempt, error = %e, "payment call failed");
                last_error = e.to_string();
            }
        }
        if attempt < p.max_attempts {
            tokio::time::sleep(Duration::from_millis(p.retry_backoff_ms)).await;
        }
    }
    PaymentResult::Failed {
        reason: format!("no answer after {} attempts: {last_error}", p.max_attempts),
    }
}
