//! The state machine applies an entry that carries a leader's batch of
//! envelopes as if each were an entry of its own: in order, each with its own
//! idempotency record, and each with a version no other command shares.
#![allow(clippy::result_large_err)] // openraft's StorageError is imposed by its traits

use ecommerce_domains::command::{Applied, Command, Response};
use ecommerce_domains::idempotency::{IdempotencyKey, IdempotencyTag};
use ecommerce_domains::inventory::{InventoryCommand, Location, Sku, WarehouseId};
use ecommerce_domains::{DomainError, Envelope};
use ecommerce_raft::types::{Entry, LogId};
use ecommerce_raft::StateMachine;
use ecommerce_storage::{Storage, StorageOptions};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload};

fn open_storage(dir: &std::path::Path) -> Storage {
    Storage::open(
        &dir.join("db"),
        ecommerce_domains::TABLES,
        &StorageOptions::default(),
    )
    .expect("open storage")
}

fn envelope(command: InventoryCommand, key: Option<&str>) -> Envelope {
    Envelope {
        now_ms: 1_000,
        idempotency: key.map(|k| IdempotencyTag {
            key: IdempotencyKey::parse(k).unwrap(),
            fingerprint: format!("{command:?}"),
        }),
        command: Command::Inventory(command),
    }
}

fn batch(envelopes: Vec<Envelope>) -> Envelope {
    Envelope {
        now_ms: 1_000,
        idempotency: None,
        command: Command::Batch(envelopes),
    }
}

fn entry(index: u64, envelope: Envelope) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(envelope),
    }
}

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn wh() -> WarehouseId {
    WarehouseId::parse("w1").unwrap()
}

fn set_stock(s: &str, on_hand: u64) -> InventoryCommand {
    InventoryCommand::SetStock {
        sku: sku(s),
        warehouse_id: wh(),
        on_hand,
        expected_version: None,
    }
}

fn adjust(s: &str, delta: i64) -> InventoryCommand {
    InventoryCommand::AdjustStock {
        sku: sku(s),
        warehouse_id: wh(),
        delta,
        reason: None,
    }
}

/// The stock level's (on hand, version) a result carries.
fn stock(applied: &Applied) -> (u64, u64) {
    match &applied.outcome {
        Ok(Response::Stock(level)) => (level.on_hand, level.version),
        other => panic!("not a stock level: {other:?}"),
    }
}

async fn apply(sm: &mut StateMachine, entry: Entry) -> Vec<Applied> {
    let mut responses = sm.apply(vec![entry]).await.expect("apply");
    assert_eq!(responses.len(), 1);
    responses.remove(0).0
}

#[tokio::test]
async fn a_batch_applies_in_order_with_one_result_and_one_version_per_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_storage(dir.path());
    let mut sm = StateMachine::open(storage.clone(), dir.path().join("snapshots"))
        .await
        .unwrap();

    let warehouse = InventoryCommand::UpsertWarehouse {
        id: wh(),
        name: "main".into(),
        location: Location { lat: 0.0, lon: 0.0 },
        priority: 0,
    };
    let lone = apply(&mut sm, entry(1, envelope(warehouse, None))).await;
    assert_eq!(lone.len(), 1);

    let results = apply(
        &mut sm,
        entry(
            2,
            batch(vec![
                envelope(set_stock("A", 5), Some("k1")),
                // Reads what the first envelope of the batch wrote.
                envelope(adjust("A", 2), None),
                // The same key and request as the first: replayed, not applied again.
                envelope(set_stock("A", 5), Some("k1")),
                // The same key for another request: refused.
                envelope(set_stock("A", 9), Some("k1")),
                // Refused by the domain; the rest of the batch goes on.
                envelope(adjust("A", -100), None),
                envelope(set_stock("B", 3), None),
            ]),
        ),
    )
    .await;
    assert_eq!(results.len(), 6);
    assert_eq!(stock(&results[0]), (5, 2));
    assert_eq!(stock(&results[1]), (7, 3));
    assert!(results[2].replayed);
    assert_eq!(stock(&results[2]), (5, 2));
    assert_eq!(
        results[3].outcome,
        Err(DomainError::IdempotencyKeyReused),
        "a reused key is refused inside a batch too"
    );
    assert!(
        matches!(
            results[4].outcome,
            Err(DomainError::InsufficientStock { .. })
        ),
        "{:?}",
        results[4].outcome
    );
    assert_eq!(stock(&results[5]), (3, 7));
    assert!(results.iter().all(|r| r.log_index == 2));

    // The next entry's commands number on above the batch, not from its index,
    // and the count survives a restart.
    let next = apply(&mut sm, entry(3, envelope(adjust("B", 1), None))).await;
    assert_eq!(stock(&next[0]), (4, 8));
    drop(sm);
    let mut sm = StateMachine::open(storage, dir.path().join("snapshots"))
        .await
        .unwrap();
    let after_restart = apply(&mut sm, entry(4, envelope(adjust("B", 1), None))).await;
    assert_eq!(stock(&after_restart[0]), (5, 9));
}

#[tokio::test]
async fn a_batch_inside_a_batch_is_refused_and_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = StateMachine::open(open_storage(dir.path()), dir.path().join("snapshots"))
        .await
        .unwrap();
    let nested = batch(vec![batch(vec![envelope(set_stock("A", 5), None)])]);
    let results = apply(&mut sm, entry(1, nested)).await;
    assert!(
        matches!(results[0].outcome, Err(DomainError::Validation { .. })),
        "{:?}",
        results[0].outcome
    );
}
