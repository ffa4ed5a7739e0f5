//! The event log is compacted by a replicated command: from the oldest
//! event on, those older than the retention and those beyond the count
//! budget, at most so many per command. Every replica must remove the same
//! events however its apply runs were cut, so the test applies one log in
//! one run and entry by entry, and compares.
#![allow(clippy::result_large_err)] // openraft's StorageError is imposed by its traits

use ecommerce_domains::command::{Command, Response, SystemCommand};
use ecommerce_domains::inventory::{InventoryCommand, Location, Sku, WarehouseId};
use ecommerce_domains::{Envelope, EventRecord};
use ecommerce_raft::types::{Entry, LogId};
use ecommerce_raft::StateMachine;
use ecommerce_storage::{codec, Storage, StorageOptions, CF_EVENTS};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload};

fn entry(index: u64, now_ms: u64, command: Command) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Envelope {
            now_ms,
            idempotency: None,
            command,
        }),
    }
}

fn warehouse() -> Command {
    Command::Inventory(InventoryCommand::UpsertWarehouse {
        id: WarehouseId::parse("w1").unwrap(),
        name: "main".into(),
        location: Location { lat: 0.0, lon: 0.0 },
        priority: 0,
    })
}

fn set_stock(on_hand: u64) -> Command {
    Command::Inventory(InventoryCommand::SetStock {
        sku: Sku::parse("A").unwrap(),
        warehouse_id: WarehouseId::parse("w1").unwrap(),
        on_hand,
        expected_version: None,
    })
}

fn compact(retention_ms: u64, keep_events: u64, max_removed: u64) -> Command {
    Command::System(SystemCommand::CompactEvents {
        retention_ms,
        keep_events,
        max_removed,
    })
}

/// Ten stock changes a second apart (each emits events), a compaction that
/// keeps the last 4.5 s, more changes, a compaction by count, and one cut
/// short by its maximum; the last entries share one second.
fn log() -> Vec<Entry> {
    let mut entries = vec![entry(1, 1_000, warehouse())];
    for i in 0..10 {
        entries.push(entry(2 + i, 2_000 + i * 1_000, set_stock(i + 1)));
    }
    entries.push(entry(12, 11_500, compact(4_500, u64::MAX, 100_000)));
    for i in 0..5 {
        entries.push(entry(13 + i, 12_000, set_stock(20 + i)));
    }
    entries.push(entry(18, 12_000, compact(u64::MAX, 6, 100_000)));
    entries.push(entry(19, 12_000, set_stock(40)));
    entries.push(entry(20, 12_000, compact(u64::MAX, 0, 2)));
    entries
}

fn events(storage: &Storage) -> Vec<EventRecord> {
    storage
        .scan(
            CF_EVENTS,
            (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            usize::MAX,
        )
        .unwrap()
        .iter()
        .map(|(_, v)| codec::decode(v).unwrap())
        .collect()
}

async fn replica(dir: &std::path::Path) -> (Storage, StateMachine) {
    let storage = Storage::open(
        &dir.join("db"),
        ecommerce_domains::TABLES,
        &StorageOptions::default(),
    )
    .unwrap();
    let sm = StateMachine::open(storage.clone(), dir.join("snapshots"))
        .await
        .unwrap();
    (storage, sm)
}

/// How many events each compaction reported removing.
fn removed(responses: &[ecommerce_raft::types::EntryResponse]) -> Vec<u64> {
    responses
        .iter()
        .flat_map(|r| r.0.iter())
        .filter_map(|applied| match &applied.outcome {
            Ok(Response::Expired { removed }) => Some(*removed),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn compaction_removes_the_same_old_events_on_every_replica() {
    let one_run = tempfile::tempdir().unwrap();
    let (storage_a, mut a) = replica(one_run.path()).await;
    let responses_a = a.apply(log()).await.unwrap();

    let entry_by_entry = tempfile::tempdir().unwrap();
    let (storage_b, mut b) = replica(entry_by_entry.path()).await;
    let mut responses_b = Vec::new();
    for entry in log() {
        responses_b.extend(b.apply(vec![entry]).await.unwrap());
    }

    let (left_a, left_b) = (events(&storage_a), events(&storage_b));
    let ids = |events: &[EventRecord]| events.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(&left_a),
        ids(&left_b),
        "replicas disagree on what was compacted"
    );
    assert_eq!(removed(&responses_a), removed(&responses_b));

    // The first compaction removed everything stamped before 7 000 ms (the
    // warehouse and the first five changes); the second left the newest 6;
    // the third, asked to keep none, stopped at its maximum of 2.
    let reported = removed(&responses_a);
    assert_eq!(reported.len(), 3, "{reported:?}");
    assert_eq!(reported[2], 2, "the maximum per command holds");
    assert!(left_a.len() == 6 + 1 - 2, "{:?}", ids(&left_a));
    let newest = left_a.last().unwrap().id;
    assert_eq!(
        ids(&left_a),
        ((newest - 4)..=newest).collect::<Vec<_>>(),
        "what is left is the newest events, consecutive"
    );
    assert!(left_a.iter().all(|e| e.timestamp_ms >= 7_000));
}
