//! Exactly-once per `Idempotency-Key`.
//!
//! Model: the idempotency workload sends one checkout per key, retried with the
//! same key (and body) on other nodes after unknown outcomes, and sometimes
//! replayed once more after success. Then:
//! - every `ok` answer for a key names the same order;
//! - the key's customer ends with at most one order (a retry never places a
//!   second one), and with exactly that order when any attempt was `ok`;
//! - if every attempt was definitely refused, the customer has no order.
//!
//! Op shape: `checkout` from an `idem-*` process, input `{customer, key}`,
//! output `{order_id, replayed}`.

use std::collections::BTreeMap;

use crate::history::{Kind, Op};

use super::stock::FinalOrder;
use super::Report;

pub fn check_idempotency(ops: &[Op], orders: &[FinalOrder]) -> Report {
    let mut r = Report::new("idempotency");
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops
        .iter()
        .filter(|o| o.process.starts_with("idem") && o.f == "checkout")
    {
        if let Some(key) = op.input["key"].as_str() {
            by_key.entry(key).or_default().push(op);
        }
    }
    let mut replays = 0;
    for (key, attempts) in &by_key {
        let customer = attempts[0].input["customer"].as_str().unwrap_or("");
        let oks: Vec<&str> = attempts
            .iter()
            .filter(|o| o.kind == Kind::Ok)
            .filter_map(|o| o.output["order_id"].as_str())
            .collect();
        replays += attempts
            .iter()
            .filter(|o| o.output["replayed"] == true)
            .count();
        if oks.windows(2).any(|w| w[0] != w[1]) {
            r.anomaly(format!(
                "key {key}: acknowledged with different orders {oks:?}"
            ));
        }
        let theirs: Vec<&FinalOrder> = orders.iter().filter(|o| o.customer == customer).collect();
        if theirs.len() > 1 {
            r.anomaly(format!(
                "key {key}: {} orders {:?} for one key (not exactly once)",
                theirs.len(),
                theirs.iter().map(|o| &o.id).collect::<Vec<_>>()
            ));
        }
        if let Some(first) = oks.first() {
            if !theirs.iter().any(|o| o.id == *first) {
                r.anomaly(format!(
                    "key {key}: acknowledged order {first} is missing (lost write)"
                ));
            }
        }
        if attempts.iter().all(|o| o.kind == Kind::Fail) && !theirs.is_empty() {
            r.anomaly(format!(
                "key {key}: every attempt was refused, yet {} exists (phantom)",
                theirs[0].id
            ));
        }
    }
    r.note(format!(
        "{} keys, {} attempts, {replays} replayed answers",
        by_key.len(),
        by_key.values().map(Vec::len).sum::<usize>()
    ));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attempt(id: u64, kind: Kind, order: Option<&str>) -> Op {
        Op {
            id,
            process: "idem-0".into(),
            f: "checkout".into(),
            node: Some(1),
            invoke_ns: id,
            complete_ns: id + 1,
            kind,
            input: json!({"key": "k1", "customer": "js-i-1"}),
            output: order.map_or(serde_json::Value::Null, |o| json!({"order_id": o})),
            error: None,
        }
    }

    fn order(id: &str) -> FinalOrder {
        FinalOrder {
            id: id.into(),
            customer: "js-i-1".into(),
            status: "paid".into(),
            lines: vec![("I0".into(), 1)],
            coupon: None,
        }
    }

    #[test]
    fn retried_key_with_one_order_passes() {
        let ops = [
            attempt(0, Kind::Info, None),
            attempt(2, Kind::Ok, Some("o1")),
            attempt(4, Kind::Ok, Some("o1")),
        ];
        assert_eq!(check_idempotency(&ops, &[order("o1")]).valid, Some(true));
    }

    #[test]
    fn duplicate_order_for_a_key_is_found() {
        let ops = [
            attempt(0, Kind::Info, None),
            attempt(2, Kind::Ok, Some("o2")),
        ];
        let r = check_idempotency(&ops, &[order("o1"), order("o2")]);
        assert_eq!(r.valid, Some(false));
        let ops = [
            attempt(0, Kind::Ok, Some("o1")),
            attempt(2, Kind::Ok, Some("o2")),
        ];
        assert_eq!(check_idempotency(&ops, &[order("o1")]).valid, Some(false));
    }
}
