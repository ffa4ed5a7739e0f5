//! Decoding and applying envelopes: nested batches, the checked decoder,
//! savepoints and the idempotency record of a refusal.

use super::*;
use crate::inventory::{Location, WarehouseId};
use crate::store::memory::MemoryStore;
use crate::store::{KeyPart, Store, StoreMut};
use std::collections::BTreeMap;

fn envelope(command: Command) -> Envelope {
    Envelope {
        now_ms: 1,
        idempotency: None,
        command,
    }
}

fn warehouse(id: &str) -> Command {
    Command::Inventory(InventoryCommand::UpsertWarehouse {
        id: WarehouseId::parse(id).unwrap(),
        name: id.into(),
        location: Location::parse(0.0, 0.0).unwrap(),
        priority: 0,
    })
}

fn encode(envelope: &Envelope) -> Vec<u8> {
    bincode::serde::encode_to_vec(envelope, bincode::config::standard()).unwrap()
}

/// The log's decoder (bincode, standard configuration).
fn decode(bytes: &[u8]) -> Result<Envelope, String> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(e, _)| e)
        .map_err(|e| e.to_string())
}

#[test]
fn a_batch_decodes_but_a_batch_inside_one_does_not() {
    let batch = envelope(Command::Batch(vec![
        envelope(warehouse("w1")),
        envelope(warehouse("w2")),
    ]));
    assert_eq!(decode(&encode(&batch)).unwrap(), batch);
    let nested = envelope(Command::Batch(vec![
        envelope(warehouse("w3")),
        batch.clone(),
    ]));
    let refused = decode(&encode(&nested)).unwrap_err();
    assert!(
        refused.contains("a batch may not contain a batch"),
        "{refused}"
    );
    assert!(matches!(
        Envelope::decode_checked(&encode(&nested)),
        Err(DecodeError::Malformed(_))
    ));
    // The refusal leaves nothing behind: the next batch decodes.
    assert_eq!(decode(&encode(&batch)).unwrap(), batch);
    // Two batches side by side (two entries of one message) both decode.
    let two: (Envelope, Envelope) = bincode::serde::decode_from_slice(
        &bincode::serde::encode_to_vec((&batch, &batch), bincode::config::standard()).unwrap(),
        bincode::config::standard(),
    )
    .unwrap()
    .0;
    assert_eq!(two, (batch.clone(), batch));
}

#[test]
fn deeply_nested_batches_are_refused_without_overflowing_the_stack() {
    // One level: an envelope whose command is a batch of one envelope.
    let mut level = encode(&envelope(Command::Batch(Vec::new())));
    *level.last_mut().unwrap() = 1;
    let inner = encode(&envelope(warehouse("w1")));
    // The crafted bytes are well formed: one level decodes.
    assert!(decode(&[level.clone(), inner.clone()].concat()).is_ok());
    // 200,000 levels (800 KB, under the envelope limit): each level of
    // recursion takes far more stack than 4 bytes, so without the
    // refusal this overflowed the stack and aborted the process.
    let deep = [level.repeat(200_000), inner].concat();
    assert!(deep.len() < MAX_ENVELOPE_BYTES);
    assert!(decode(&deep).is_err());
    assert!(Envelope::decode_checked(&deep).is_err());
}

#[test]
fn the_checked_decoder_refuses_batches_and_oversized_envelopes() {
    let one = envelope(warehouse("w1"));
    assert_eq!(Envelope::decode_checked(&encode(&one)).unwrap(), one);
    let batch = envelope(Command::Batch(vec![one.clone()]));
    assert_eq!(
        Envelope::decode_checked(&encode(&batch)),
        Err(DecodeError::Batch)
    );
    let mut big = encode(&one);
    big.resize(MAX_ENVELOPE_BYTES + 1, 0);
    assert_eq!(
        Envelope::decode_checked(&big),
        Err(DecodeError::TooLarge(MAX_ENVELOPE_BYTES + 1))
    );
    // A length prefix claiming far more than the input is refused
    // before anything that large is allocated.
    let mut claim = encode(&envelope(warehouse("w1")));
    claim.truncate(4);
    claim.push(0xfd);
    claim.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(Envelope::decode_checked(&claim).is_err());
}

#[test]
fn a_batch_inside_a_batch_is_refused_at_apply_and_writes_nothing() {
    let ctx = ApplyContext {
        log_index: 1,
        version: 1,
        now_ms: 1,
    };
    let mut store = MemoryStore::default();
    let nested = envelope(Command::Batch(vec![envelope(warehouse("w1"))]));
    let applied = store.apply_envelope(&nested, &ctx).unwrap();
    assert_eq!(applied.outcome.unwrap_err().code(), "validation_failed");
    assert!(store.tables.values().all(|rows| rows.is_empty()));
    assert!(store.events.is_empty());
    // The same command alone is accepted and writes.
    assert!(store.apply(warehouse("w1"), &ctx).unwrap().is_ok());
    assert!(store.tables.values().any(|rows| !rows.is_empty()));
}

#[test]
fn a_refusal_keeps_its_idempotency_record_and_nothing_else() {
    let ctx = ApplyContext {
        log_index: 1,
        version: 1,
        now_ms: 1,
    };
    let mut store = MemoryStore::default();
    let refused = Envelope {
        now_ms: 1,
        idempotency: Some(idempotency::IdempotencyTag {
            key: idempotency::IdempotencyKey::parse("k").unwrap(),
            fingerprint: "f".into(),
        }),
        command: Command::Batch(Vec::new()),
    };
    let first = store.apply_envelope(&refused, &ctx).unwrap();
    assert!(first.outcome.is_err() && !first.replayed);
    let tables: Vec<&str> = store
        .tables
        .iter()
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(tables, [idempotency::RECORDS, idempotency::EXPIRY]);
    // A retry gets the same refusal, replayed.
    let again = store.apply_envelope(&refused, &ctx).unwrap();
    assert!(again.replayed);
    assert_eq!(again.outcome, first.outcome);
}

#[test]
fn rolling_back_restores_what_reads_saw_and_drops_later_events() {
    let mut store = MemoryStore::default();
    let key = |k: &'static str| [KeyPart::Str(k)];
    store.put_raw("t", &key("kept"), vec![1]);
    store.put_raw("t", &key("changed"), vec![1]);
    store.put_raw("t", &key("deleted"), vec![1]);
    store.emit(crate::Event::OrderStatusChanged {
        order_id: 1,
        customer_id: "u".into(),
        from: "a".into(),
        to: "b".into(),
        reason: String::new(),
    });
    let before = (store.tables.clone(), store.events.clone());
    let mark = store.savepoint();
    store.put_raw("t", &key("changed"), vec![2]);
    store.put_raw("t", &key("changed"), vec![3]);
    store.delete_raw("t", &key("deleted"));
    store.put_raw("t", &key("new"), vec![2]);
    store.put_raw("u", &key("new"), vec![2]);
    store.emit(before.1[0].clone());
    assert_eq!(store.get_raw("t", &key("changed")).unwrap(), Some(vec![3]));
    store.rollback_to(mark);
    assert_eq!(store.get_raw("t", &key("changed")).unwrap(), Some(vec![1]));
    assert_eq!(store.get_raw("t", &key("deleted")).unwrap(), Some(vec![1]));
    assert_eq!(store.get_raw("t", &key("new")).unwrap(), None);
    assert_eq!(store.events, before.1);
    let tables: BTreeMap<_, _> = store
        .tables
        .iter()
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(tables, before.0);
}

#[test]
fn a_compaction_removes_a_bounded_number_of_events() {
    let compact = |max_removed| {
        Command::System(SystemCommand::CompactEvents {
            retention_ms: 1,
            keep_events: 1,
            max_removed,
        })
    };
    assert!(compact(0).validate().is_err());
    assert!(compact(MAX_COMPACTED_PER_COMMAND + 1).validate().is_err());
    assert!(compact(1).validate().is_ok());
    assert!(compact(MAX_COMPACTED_PER_COMMAND).validate().is_ok());
}
