//! Stock: no oversell, conservation of units, no lost acknowledged checkout
//! or cancel, no phantom order.
//!
//! Model (the workload never ships, so no unit leaves a warehouse):
//! - per level, `reserved ≤ on_hand` and `available = on_hand − reserved`
//!   (never sell what is not there);
//! - per SKU, final `on_hand` = initial + acknowledged restocks + some subset
//!   of the restocks with unknown outcome (a bound, since `info` may or may
//!   not have happened);
//! - per SKU, final `reserved` = the units of the orders whose hold is live
//!   (status `confirmed` or `paid`);
//! - every acknowledged checkout's order exists, for its customer, with the
//!   SKU and quantity asked; every acknowledged cancel left its order
//!   `cancelled`; a declined card's order is never `paid`;
//! - every order of a suite customer comes from a checkout that was invoked
//!   and not definitely refused, and each customer has at most one order
//!   (each customer checks out once, possibly retried with one key).
//!
//! Op shapes: `checkout` input `{customer, sku, quantity, card, key}` output
//! `{order_id}`; `restock` input `{sku, warehouse, delta}`; `cancel` input
//! `{order_id}`.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{Kind, Op};

use super::Report;

/// The sandbox card that is always declined.
pub const DECLINED_CARD: &str = "tok_chargeDeclined";

/// A stock level read after the run.
#[derive(Clone, Debug)]
pub struct Level {
    pub sku: String,
    pub warehouse: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

/// An order read after the run.
#[derive(Clone, Debug)]
pub struct FinalOrder {
    pub id: String,
    pub customer: String,
    pub status: String,
    pub lines: Vec<(String, i64)>,
    /// The coupon the order redeemed, if any.
    pub coupon: Option<String>,
}

/// What the run ended with, read through the API after healing.
#[derive(Clone, Debug, Default)]
pub struct Final {
    pub levels: Vec<Level>,
    pub orders: Vec<FinalOrder>,
}

fn is_checkout(op: &Op) -> bool {
    op.f == "checkout"
}

/// `initial`: on hand per SKU at the start (summed over warehouses), for
/// every SKU whose units the suite accounts for. `customer_prefix`: orders
/// whose customer id starts with it belong to the suite.
pub fn check_stock(
    ops: &[Op],
    initial: &BTreeMap<String, i64>,
    customer_prefix: &str,
    fin: &Final,
) -> Report {
    let mut r = Report::new("stock");

    // 1. No oversell, per level.
    for l in &fin.levels {
        if l.reserved > l.on_hand || l.available != l.on_hand - l.reserved || l.available < 0 {
            r.anomaly(format!(
                "oversell at {}/{}: on_hand {}, reserved {}, available {}",
                l.sku, l.warehouse, l.on_hand, l.reserved, l.available
            ));
        }
    }

    // 2. Conservation of on-hand units.
    let mut on_hand: BTreeMap<&str, i64> = BTreeMap::new();
    let mut reserved: BTreeMap<&str, i64> = BTreeMap::new();
    for l in &fin.levels {
        *on_hand.entry(&l.sku).or_default() += l.on_hand;
        *reserved.entry(&l.sku).or_default() += l.reserved;
    }
    let mut acked: BTreeMap<&str, i64> = BTreeMap::new();
    let mut unknown: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.f == "restock") {
        let (Some(sku), Some(delta)) = (op.input["sku"].as_str(), op.input["delta"].as_i64())
        else {
            continue;
        };
        match op.kind {
            Kind::Ok => *acked.entry(sku).or_default() += delta,
            Kind::Info => {
                let u = unknown.entry(sku).or_default();
                if delta < 0 {
                    u.0 += delta;
                } else {
                    u.1 += delta;
                }
            }
            _ => {}
        }
    }
    for (sku, start) in initial {
        let sku = sku.as_str();
        let got = on_hand.get(sku).copied().unwrap_or(0);
        let base = start + acked.get(sku).copied().unwrap_or(0);
        let (lo, hi) = unknown.get(sku).copied().unwrap_or((0, 0));
        if got < base + lo || got > base + hi {
            r.anomaly(format!(
                "units of {sku} not conserved: on hand {got}, expected {} to {} \
                 (initial {start}, acknowledged restocks {}, unknown restocks {lo}..+{hi})",
                base + lo,
                base + hi,
                acked.get(sku).copied().unwrap_or(0)
            ));
        }
    }

    // 3. Reserved units = units of live holds.
    let mut live: BTreeMap<&str, i64> = BTreeMap::new();
    for o in &fin.orders {
        if o.status == "confirmed" || o.status == "paid" {
            for (sku, q) in &o.lines {
                *live.entry(sku).or_default() += q;
            }
        }
    }
    for sku in initial.keys() {
        let sku = sku.as_str();
        let res = reserved.get(sku).copied().unwrap_or(0);
        let held = live.get(sku).copied().unwrap_or(0);
        if res != held {
            r.anomaly(format!(
                "{sku}: reserved {res} but live orders hold {held} units"
            ));
        }
    }

    // 4. No lost acknowledged checkout; 5. no phantom order.
    let orders_by_id: BTreeMap<&str, &FinalOrder> =
        fin.orders.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut orders_of: BTreeMap<&str, Vec<&FinalOrder>> = BTreeMap::new();
    for o in &fin.orders {
        orders_of.entry(&o.customer).or_default().push(o);
    }
    let mut attempts: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops.iter().filter(|o| is_checkout(o)) {
        if let Some(c) = op.input["customer"].as_str() {
            attempts.entry(c).or_default().push(op);
        }
    }
    let mut acked_checkouts = 0;
    for op in ops.iter().filter(|o| is_checkout(o) && o.kind == Kind::Ok) {
        acked_checkouts += 1;
        let id = op.output["order_id"].as_str().unwrap_or("");
        let customer = op.input["customer"].as_str().unwrap_or("");
        match orders_by_id.get(id) {
            None => r.anomaly(format!(
                "lost checkout: op {} acknowledged order {id:?} for {customer}, which no longer exists",
                op.id
            )),
            Some(o) => {
                let want = (
                    op.input["sku"].as_str().unwrap_or("").to_string(),
                    op.input["quantity"].as_i64().unwrap_or(0),
                );
                if o.customer != customer || o.lines != [want.clone()] {
                    r.anomaly(format!(
                        "order {id} (op {}) is {:?} for {}, the checkout asked {want:?} for {customer}",
                        op.id, o.lines, o.customer
                    ));
                }
                if op.input["card"] == DECLINED_CARD && o.status == "paid" {
                    r.anomaly(format!("order {id} was paid with a declined card"));
                }
            }
        }
    }
    for (customer, orders) in &orders_of {
        if !customer.starts_with(customer_prefix) {
            continue;
        }
        let tried = attempts.get(customer).map(Vec::as_slice).unwrap_or(&[]);
        let possible = tried.iter().any(|o| o.kind != Kind::Fail);
        if !possible {
            r.anomaly(format!(
                "phantom order(s) {:?} for {customer}: its checkouts were {} (none may have applied)",
                orders.iter().map(|o| &o.id).collect::<Vec<_>>(),
                if tried.is_empty() {
                    "never invoked"
                } else {
                    "all definitely refused"
                }
            ));
        }
        if orders.len() > 1 {
            r.anomaly(format!(
                "{customer} has {} orders {:?} from one (possibly retried) checkout",
                orders.len(),
                orders.iter().map(|o| &o.id).collect::<Vec<_>>()
            ));
        }
    }

    // 6. Acknowledged cancels hold.
    let mut cancelled = BTreeSet::new();
    for op in ops.iter().filter(|o| o.f == "cancel" && o.kind == Kind::Ok) {
        let id = op.input["order_id"].as_str().unwrap_or("");
        cancelled.insert(id);
        match orders_by_id.get(id) {
            Some(o) if o.status == "cancelled" => {}
            Some(o) => r.anomaly(format!(
                "lost cancel: op {} cancelled {id}, which is now {}",
                op.id, o.status
            )),
            None => r.anomaly(format!("lost order {id}, cancelled by op {}", op.id)),
        }
    }
    r.note(format!(
        "{} orders, {acked_checkouts} acknowledged checkouts, {} acknowledged cancels, {} levels",
        fin.orders.len(),
        cancelled.len(),
        fin.levels.len()
    ));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn op(id: u64, f: &str, kind: Kind, input: Value, output: Value) -> Op {
        Op {
            id,
            process: "stock-0".into(),
            f: f.into(),
            node: Some(1),
            invoke_ns: id * 10,
            complete_ns: id * 10 + 5,
            kind,
            input,
            output,
            error: None,
        }
    }

    fn level(on_hand: i64, reserved: i64) -> Level {
        Level {
            sku: "S0".into(),
            warehouse: "w1".into(),
            on_hand,
            reserved,
            available: on_hand - reserved,
        }
    }

    fn order(id: &str, customer: &str, status: &str, q: i64) -> FinalOrder {
        FinalOrder {
            id: id.into(),
            customer: customer.into(),
            status: status.into(),
            lines: vec![("S0".into(), q)],
            coupon: None,
        }
    }

    fn checkout(id: u64, kind: Kind, customer: &str, q: i64, order_id: &str) -> Op {
        op(
            id,
            "checkout",
            kind,
            json!({"customer": customer, "sku": "S0", "quantity": q, "card": "tok_visa"}),
            json!({"order_id": order_id}),
        )
    }

    fn initial() -> BTreeMap<String, i64> {
        BTreeMap::from([("S0".to_string(), 5)])
    }

    #[test]
    fn consistent_run_passes() {
        let ops = vec![
            checkout(0, Kind::Ok, "js-a", 2, "o1"),
            checkout(1, Kind::Info, "js-b", 1, ""),
            op(
                2,
                "restock",
                Kind::Ok,
                json!({"sku":"S0","delta":3}),
                json!({}),
            ),
            op(
                3,
                "restock",
                Kind::Info,
                json!({"sku":"S0","delta":1}),
                Value::Null,
            ),
            checkout(4, Kind::Fail, "js-c", 9, ""),
        ];
        // The unknown checkout and the unknown restock both happened.
        let fin = Final {
            levels: vec![level(9, 3)],
            orders: vec![
                order("o1", "js-a", "paid", 2),
                order("o2", "js-b", "confirmed", 1),
            ],
        };
        let r = check_stock(&ops, &initial(), "js-", &fin);
        assert_eq!(r.valid, Some(true), "{r:?}");
    }

    #[test]
    fn oversell_is_found() {
        let ops = vec![
            checkout(0, Kind::Ok, "js-a", 4, "o1"),
            checkout(1, Kind::Ok, "js-b", 4, "o2"),
        ];
        let fin = Final {
            levels: vec![Level {
                available: -3,
                ..level(5, 8)
            }],
            orders: vec![
                order("o1", "js-a", "paid", 4),
                order("o2", "js-b", "paid", 4),
            ],
        };
        let r = check_stock(&ops, &initial(), "js-", &fin);
        assert_eq!(r.valid, Some(false));
        assert!(r.anomalies.iter().any(|a| a.contains("oversell")), "{r:?}");
    }

    #[test]
    fn lost_checkout_lost_restock_and_phantom_order_are_found() {
        let ops = vec![
            checkout(0, Kind::Ok, "js-a", 1, "o1"),
            op(
                1,
                "restock",
                Kind::Ok,
                json!({"sku":"S0","delta":2}),
                json!({}),
            ),
            checkout(2, Kind::Fail, "js-b", 1, ""),
        ];
        // o1 vanished, the restock is missing, and js-b got an order although refused.
        let fin = Final {
            levels: vec![level(5, 1)],
            orders: vec![order("o2", "js-b", "confirmed", 1)],
        };
        let r = check_stock(&ops, &initial(), "js-", &fin);
        let all = r.anomalies.join("\n");
        assert!(all.contains("lost checkout"), "{all}");
        assert!(all.contains("not conserved"), "{all}");
        assert!(all.contains("phantom"), "{all}");
    }

    #[test]
    fn lost_cancel_and_leaked_reservation_are_found() {
        let ops = vec![
            checkout(0, Kind::Ok, "js-a", 2, "o1"),
            op(1, "cancel", Kind::Ok, json!({"order_id":"o1"}), json!({})),
        ];
        let fin = Final {
            levels: vec![level(5, 2)],
            orders: vec![order("o1", "js-a", "paid", 2)],
        };
        let r = check_stock(&ops, &initial(), "js-", &fin);
        let all = r.anomalies.join("\n");
        assert!(all.contains("lost cancel"), "{all}");
        // Cancelled but its units still reserved:
        let fin = Final {
            levels: vec![level(5, 2)],
            orders: vec![order("o1", "js-a", "cancelled", 2)],
        };
        let r = check_stock(&ops, &initial(), "js-", &fin);
        assert!(r.anomalies.join("\n").contains("reserved 2"), "{r:?}");
    }
}
