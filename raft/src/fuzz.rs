//! Fuzzing of what a node decodes from its peers (tests only): arbitrary and
//! mutated bytes through the decoders of log entries, append-entries requests
//! and forwarded envelopes never panic, never overflow the stack, and never
//! allocate what the input does not hold. The domain side (decoded commands
//! through `apply`) is fuzzed in `ecommerce_domains` (`fuzz.rs`).
//!
//! Cases: `ECOMMERCE_FUZZ_CASES` (default 256); see docs/security.md, "Fuzzing".

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use ecommerce_domains::inventory::{InventoryCommand, Sku, WarehouseId};
use ecommerce_domains::{Command, Envelope, SystemCommand};
use ecommerce_storage::codec;
use openraft::raft::AppendEntriesRequest;
use openraft::{CommittedLeaderId, EntryPayload, Membership};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::types::{Entry, LogId, NodeInfo, TypeConfig, Vote};

fn config() -> Config {
    Config {
        cases: std::env::var("ECOMMERCE_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..Config::default()
    }
}

fn envelope(command: Command) -> Envelope {
    Envelope {
        now_ms: 1_000,
        idempotency: None,
        command,
    }
}

fn request() -> AppendEntriesRequest<TypeConfig> {
    let log_id = |i| LogId::new(CommittedLeaderId::new(1, 1), i);
    let adjust = Command::Inventory(InventoryCommand::AdjustStock {
        sku: Sku::parse("A").unwrap(),
        warehouse_id: WarehouseId::parse("w1").unwrap(),
        delta: -3,
        reason: Some("count".into()),
    });
    let expire = Command::System(SystemCommand::ExpireIdempotency { ttl_ms: 1 });
    let membership = Membership::new(
        vec![BTreeSet::from([1, 2, 3])],
        BTreeMap::from([(
            4,
            NodeInfo {
                http_addr: "h:1".into(),
                peer_addr: "p:1".into(),
            },
        )]),
    );
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: Some(log_id(1)),
        entries: vec![
            Entry {
                log_id: log_id(2),
                payload: EntryPayload::Normal(envelope(adjust.clone())),
            },
            Entry {
                log_id: log_id(3),
                payload: EntryPayload::Normal(envelope(Command::Batch(vec![
                    envelope(adjust),
                    envelope(expire),
                ]))),
            },
            Entry {
                log_id: log_id(4),
                payload: EntryPayload::Membership(membership),
            },
            Entry {
                log_id: log_id(5),
                payload: EntryPayload::Blank,
            },
        ],
        leader_commit: Some(log_id(3)),
    }
}

fn mutate(mut bytes: Vec<u8>, edits: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(kind, at, byte) in edits {
        let len = bytes.len().max(1);
        match kind % 4 {
            0 if !bytes.is_empty() => bytes[at % len] ^= byte.max(1),
            1 => bytes.insert(at % (bytes.len() + 1), byte),
            2 if !bytes.is_empty() => {
                bytes.remove(at % len);
            }
            3 => bytes.truncate(at % len),
            _ => {}
        }
    }
    bytes
}

#[test]
fn peer_messages_never_panic_the_decoders() {
    let valid = codec::encode(&request()).unwrap();
    let entries: Vec<Vec<u8>> = request()
        .entries
        .iter()
        .map(|e| codec::encode(e).unwrap())
        .collect();
    assert!(codec::decode::<AppendEntriesRequest<TypeConfig>>(&valid).is_ok());
    let seeds = [vec![valid], entries].concat();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (
            prop::sample::select(seeds),
            prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..12),
        )
            .prop_map(|(seed, edits)| mutate(seed, &edits)),
    ];
    let decoded = AtomicU64::new(0);
    let mut runner = TestRunner::new(config());
    runner
        .run(&bytes, |bytes| {
            let _ = codec::decode::<AppendEntriesRequest<TypeConfig>>(&bytes);
            if codec::decode::<Entry>(&bytes).is_ok() {
                decoded.fetch_add(1, Ordering::Relaxed);
            }
            let _ = Envelope::decode_checked(&bytes);
            Ok(())
        })
        .unwrap();
    eprintln!(
        "fuzz peer messages: {} cases, {} decoded as an entry",
        runner.config().cases,
        decoded.load(Ordering::Relaxed)
    );
}
