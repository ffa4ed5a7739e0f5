use super::*;
use crate::command::{apply_envelope, Envelope};
use crate::idempotency::{IdempotencyKey, IdempotencyTag};
// Commands apply as the state machine applies them (idempotency, savepoint).
use crate::store::memory::{apply, MemoryStore};
use crate::{Command, SystemCommand};
use proptest::prelude::*;

fn ctx(i: u64) -> ApplyContext {
    ApplyContext {
        log_index: i,
        version: i,
        now_ms: 1_000 * i,
    }
}
fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}
fn wh(s: &str) -> WarehouseId {
    WarehouseId::parse(s).unwrap()
}
fn upsert(store: &mut MemoryStore, id: &str, i: u64) {
    let c = InventoryCommand::UpsertWarehouse {
        id: wh(id),
        name: id.into(),
        location: Location::parse(1.0, 2.0).unwrap(),
        priority: 0,
    };
    apply(&c, &ctx(i), store).unwrap().unwrap();
}
fn adjust(delta: i64) -> InventoryCommand {
    InventoryCommand::AdjustStock {
        sku: sku("A"),
        warehouse_id: wh("w1"),
        delta,
        reason: None,
    }
}

#[test]
fn identifiers_and_quantities_are_parsed() {
    assert!(Sku::parse("SKU-1.a_b").is_ok());
    assert_eq!(Sku::parse("").unwrap_err().code(), "validation_failed");
    assert!(Sku::parse("a b").is_err());
    assert!(Sku::parse(&"x".repeat(65)).is_err());
    assert!(WarehouseId::parse("w.1").is_err());
    assert_eq!(
        parse_quantity("on_hand", -1).unwrap_err().code(),
        "validation_failed"
    );
    assert_eq!(parse_quantity("on_hand", 5).unwrap(), 5);
    assert!(Location::parse(91.0, 0.0).is_err());
    assert!(Location::parse(f64::NAN, 0.0).is_err());
}

#[test]
fn warehouse_names_deltas_and_reasons_are_parsed_and_checked_again() {
    assert_eq!(parse_warehouse_name("  Paris ").unwrap(), "Paris");
    assert_eq!(
        parse_warehouse_name(&format!(" {} ", "n".repeat(200)))
            .unwrap()
            .len(),
        200
    );
    for bad in ["", "   ", &"n".repeat(201)] {
        assert_eq!(
            parse_warehouse_name(bad).unwrap_err().code(),
            "validation_failed"
        );
    }
    let max = MAX_QUANTITY as i64;
    assert_eq!(parse_delta(-max).unwrap(), -max);
    assert!(parse_delta(max + 1).is_err() && parse_delta(-max - 1).is_err());
    assert!(parse_delta(i64::MIN).is_err());
    assert_eq!(parse_reason(None).unwrap(), None);
    assert_eq!(parse_reason(Some("")).unwrap().as_deref(), Some(""));
    assert!(parse_reason(Some(&"r".repeat(500))).is_ok());
    assert!(parse_reason(Some(&"r".repeat(501))).is_err());

    // Commands that did not come through the parsers are refused at apply.
    let warehouse = |name: &str| InventoryCommand::UpsertWarehouse {
        id: wh("w1"),
        name: name.into(),
        location: Location::parse(1.0, 2.0).unwrap(),
        priority: 0,
    };
    assert!(warehouse("Paris").validate().is_ok());
    assert!(warehouse(" Paris").validate().is_err());
    assert!(adjust(max + 1).validate().is_err());
    let long_reason = InventoryCommand::AdjustStock {
        sku: sku("A"),
        warehouse_id: wh("w1"),
        delta: 1,
        reason: Some("r".repeat(501)),
    };
    assert!(long_reason.validate().is_err());
}

#[test]
fn stock_in_unknown_warehouse_is_refused_without_writes() {
    let mut s = MemoryStore::default();
    let out = apply(&adjust(5), &ctx(1), &mut s).unwrap();
    assert_eq!(
        out.unwrap_err(),
        DomainError::WarehouseNotFound("w1".into())
    );
    assert!(!s.tables.contains_key(STOCK) && s.events.is_empty());
}

#[test]
fn set_and_adjust_track_versions_and_refuse_negative_stock() {
    let mut s = MemoryStore::default();
    upsert(&mut s, "w1", 1);
    let set = InventoryCommand::SetStock {
        sku: sku("A"),
        warehouse_id: wh("w1"),
        on_hand: 10,
        expected_version: Some(0),
    };
    let Response::Stock(level) = apply(&set, &ctx(2), &mut s).unwrap().unwrap() else {
        panic!()
    };
    assert_eq!((level.on_hand, level.version), (10, 2));
    // Stale compare-and-set fails.
    let err = apply(&set, &ctx(3), &mut s).unwrap().unwrap_err();
    assert_eq!(
        err,
        DomainError::VersionConflict {
            expected: 0,
            actual: 2
        }
    );
    let err = apply(&adjust(-11), &ctx(4), &mut s).unwrap().unwrap_err();
    assert_eq!(err.code(), "insufficient_stock");
    let Response::Stock(level) = apply(&adjust(-4), &ctx(5), &mut s).unwrap().unwrap() else {
        panic!()
    };
    assert_eq!((level.on_hand, level.available(), level.version), (6, 6, 5));
    let stock = sku_stock(&s, &sku("A")).unwrap().unwrap();
    assert_eq!(
        (stock.on_hand, stock.available, stock.warehouses.len()),
        (6, 6, 1)
    );
    assert_eq!(sku_stock(&s, &sku("B")).unwrap(), None);
    assert_eq!(s.events.len(), 3);
}

fn env(command: InventoryCommand, key: Option<(&str, &str)>) -> Envelope {
    Envelope {
        now_ms: 0,
        idempotency: key.map(|(k, f)| IdempotencyTag {
            key: IdempotencyKey::parse(k).unwrap(),
            fingerprint: f.into(),
        }),
        command: Command::Inventory(command),
    }
}

#[test]
fn idempotency_replays_refuses_other_bodies_and_expires() {
    let mut s = MemoryStore::default();
    upsert(&mut s, "w1", 1);
    let first = apply_envelope(&env(adjust(3), Some(("k1", "f1"))), &ctx(2), &mut s).unwrap();
    assert!(!first.replayed);
    let again = apply_envelope(&env(adjust(3), Some(("k1", "f1"))), &ctx(3), &mut s).unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.outcome.clone(), again.log_index),
        (first.outcome.clone(), 2)
    );
    assert_eq!(
        sku_stock(&s, &sku("A")).unwrap().unwrap().on_hand,
        3,
        "applied once"
    );
    let other = apply_envelope(&env(adjust(4), Some(("k1", "f2"))), &ctx(4), &mut s).unwrap();
    assert_eq!(other.outcome, Err(DomainError::IdempotencyKeyReused));
    // Refusals are stored too: a retry gets the same refusal.
    let refused = apply_envelope(&env(adjust(-100), Some(("k2", "f3"))), &ctx(5), &mut s).unwrap();
    assert_eq!(
        refused.outcome.as_ref().unwrap_err().code(),
        "insufficient_stock"
    );
    adjust_ok(&mut s, 200, 6);
    let retried = apply_envelope(&env(adjust(-100), Some(("k2", "f3"))), &ctx(7), &mut s).unwrap();
    assert!(retried.replayed && retried.outcome.is_err());
    // Expiry at log-ordered time: k1 was created at 2_000 ms, k2 at 5_000 ms.
    let expire = Envelope {
        now_ms: 0,
        idempotency: None,
        command: Command::System(SystemCommand::ExpireIdempotency { ttl_ms: 3_000 }),
    };
    let out = apply_envelope(
        &expire,
        &ApplyContext {
            log_index: 8,
            version: 8,
            now_ms: 6_000,
        },
        &mut s,
    )
    .unwrap();
    assert_eq!(out.outcome, Ok(Response::Expired { removed: 1 }));
    let fresh = apply_envelope(&env(adjust(4), Some(("k1", "f2"))), &ctx(9), &mut s).unwrap();
    assert!(
        fresh.outcome.is_ok() && !fresh.replayed,
        "an expired key can be used again"
    );
    let still = apply_envelope(&env(adjust(-100), Some(("k2", "f3"))), &ctx(10), &mut s).unwrap();
    assert!(still.replayed);
}

fn adjust_ok(s: &mut MemoryStore, delta: i64, i: u64) {
    apply(&adjust(delta), &ctx(i), s).unwrap().unwrap();
}

proptest! {
    /// Random adjustments never make stock negative, and on hand always
    /// equals the sum of the accepted deltas.
    #[test]
    fn stock_never_goes_negative(deltas in prop::collection::vec(-50i64..50, 1..200)) {
        let mut s = MemoryStore::default();
        upsert(&mut s, "w1", 1);
        let mut expected: i64 = 0;
        for (i, d) in deltas.iter().enumerate() {
            let out = apply(&adjust(*d), &ctx(i as u64 + 2), &mut s).unwrap();
            if expected + d >= 0 {
                prop_assert!(out.is_ok());
                expected += d;
            } else {
                prop_assert_eq!(out.unwrap_err().code(), "insufficient_stock");
            }
            let level = sku_stock(&s, &sku("A")).unwrap().map(|l| l.on_hand as i64).unwrap_or(0);
            prop_assert_eq!(level, expected);
        }
    }
}
