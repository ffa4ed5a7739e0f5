//! Coupon usage limits: never exceeded, no acknowledged redemption lost, no
//! phantom redemption.
//!
//! Model: a coupon with usage limit `L` is redeemed by concurrent checkouts
//! (`workload::coupon`; each checkout is by a fresh customer, sent once, so
//! one `redeem` op is one possible redemption). Per coupon:
//! - `ok` redemptions ≤ L, and the final redemption count `n` read from the
//!   API satisfies `ok ≤ n ≤ min(L, ok + info)` ([`check_coupon`]);
//! - redeeming and placing the order are one command, and orders are never
//!   deleted (a cancelled order keeps its redemption), so exactly `n` orders
//!   carry the coupon, and at most `L` do whatever `n` says (acknowledged and
//!   possibly applied redemptions together never exceed the limit);
//! - every `ok` names an order that exists, for its customer, carrying the
//!   coupon with a discount (no lost redemption);
//! - every order carrying a coupon belongs to a customer whose redemption of
//!   that coupon was invoked and not definitely refused; each such customer
//!   has one order, and it carries the coupon it asked for (no phantom or
//!   duplicated redemption).
//!
//! Op shape: `redeem` input `{customer, coupon, key}`, output `{order_id,
//! coupon, discount}` when `ok`.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{Kind, Op};

use super::stock::FinalOrder;
use super::Report;

/// One coupon's bounds. `final_count`: redemptions the node reports after
/// the run, if known.
pub fn check_coupon(ops: &[Op], limit: u64, final_count: Option<u64>) -> Report {
    let mut r = Report::new("coupon usage limit");
    let redeem = || ops.iter().filter(|o| o.f == "redeem");
    let ok = redeem().filter(|o| o.kind == Kind::Ok).count() as u64;
    let info = redeem().filter(|o| o.kind == Kind::Info).count() as u64;
    if ok > limit {
        r.anomaly(format!(
            "{ok} acknowledged redemptions of a coupon limited to {limit}"
        ));
    }
    if let Some(n) = final_count {
        if n < ok || n > limit.min(ok + info) {
            r.anomaly(format!(
                "final redemption count {n} outside {ok}..={} (limit {limit}, {info} unknown)",
                limit.min(ok + info)
            ));
        }
    }
    r.note(format!(
        "{ok} ok and {info} unknown redemptions, limit {limit}"
    ));
    r
}

/// Every coupon of a run. `used`: each coupon's final redemption count
/// (`None` when it could not be read); `orders`: every order after the run;
/// `customer_prefix`: the customers of the coupon workload (all their orders
/// must carry the coupon they asked for).
pub fn check_coupons(
    ops: &[Op],
    limit: u64,
    used: &BTreeMap<String, Option<u64>>,
    orders: &[FinalOrder],
    customer_prefix: &str,
) -> Report {
    let mut r = Report::new("coupon usage limit");
    let redeems: Vec<&Op> = ops.iter().filter(|o| o.f == "redeem").collect();
    let code_of = |o: &Op| o.input["coupon"].as_str().unwrap_or("").to_string();
    let mut by_code: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    for code in used.keys() {
        by_code.entry(code.clone()).or_default();
    }
    for op in &redeems {
        by_code.entry(code_of(op)).or_default().push((*op).clone());
    }
    let mut carrying: BTreeMap<&str, Vec<&FinalOrder>> = BTreeMap::new();
    for o in orders {
        if let Some(c) = &o.coupon {
            carrying.entry(c).or_default().push(o);
        }
    }

    // 1. Limits and the final counts.
    let (mut ok, mut info, mut redeemed) = (0u64, 0u64, 0u64);
    for (code, ops_of) in &by_code {
        let count = used.get(code).copied().flatten();
        let sub = check_coupon(ops_of, limit, count);
        for a in sub.anomalies {
            r.anomaly(format!("{code}: {a}"));
        }
        ok += ops_of.iter().filter(|o| o.kind == Kind::Ok).count() as u64;
        info += ops_of.iter().filter(|o| o.kind == Kind::Info).count() as u64;
        let with = carrying.get(code.as_str()).map_or(0, Vec::len) as u64;
        if with > limit {
            r.anomaly(format!(
                "{code}: {with} orders carry it, but it is limited to {limit} redemptions"
            ));
        }
        match count {
            None => r.unknown(format!("{code}: redemption count not read")),
            Some(n) => {
                redeemed += n;
                if n != with {
                    r.anomaly(format!(
                        "{code}: the coupon counts {n} redemptions but {with} orders carry it"
                    ));
                }
            }
        }
    }

    // 2. No lost redemption.
    let by_id: BTreeMap<&str, &FinalOrder> = orders.iter().map(|o| (o.id.as_str(), o)).collect();
    for op in redeems.iter().filter(|o| o.kind == Kind::Ok) {
        let code = code_of(op);
        let customer = op.input["customer"].as_str().unwrap_or("");
        let id = op.output["order_id"].as_str().unwrap_or("");
        if op.output["coupon"].as_str() != Some(code.as_str())
            || op.output["discount"].as_i64().unwrap_or(0) <= 0
        {
            r.anomaly(format!(
                "op {} was acknowledged as order {id:?} without redeeming {code}: {}",
                op.id, op.output
            ));
        }
        match by_id.get(id) {
            None => r.anomaly(format!(
                "lost redemption: op {} redeemed {code} with order {id:?} for {customer}, \
                 which no longer exists",
                op.id
            )),
            Some(o) if o.coupon.as_deref() != Some(code.as_str()) || o.customer != customer => r
                .anomaly(format!(
                    "lost redemption: op {} redeemed {code} with order {id} for {customer}; \
                     the order is {}'s and carries {:?}",
                    op.id, o.customer, o.coupon
                )),
            Some(_) => {}
        }
    }

    // 3. No phantom or duplicated redemption.
    let mut possible: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for op in redeems.iter().filter(|o| o.kind != Kind::Fail) {
        if let Some(c) = op.input["customer"].as_str() {
            possible.entry(c).or_default().insert(code_of(op));
        }
    }
    let mut of_customer: BTreeMap<&str, Vec<&FinalOrder>> = BTreeMap::new();
    for o in orders {
        if o.coupon.is_some() || o.customer.starts_with(customer_prefix) {
            of_customer.entry(&o.customer).or_default().push(o);
        }
    }
    for (customer, theirs) in &of_customer {
        for o in theirs {
            let ok = o
                .coupon
                .as_ref()
                .is_some_and(|c| possible.get(customer).is_some_and(|s| s.contains(c)));
            if !ok {
                r.anomaly(format!(
                    "phantom redemption: order {} of {customer} carries {:?}, but no redemption \
                     of it by {customer} may have applied",
                    o.id, o.coupon
                ));
            }
        }
        if theirs.len() > 1 && customer.starts_with(customer_prefix) {
            r.anomaly(format!(
                "{customer} checked out once but has {} orders {:?}",
                theirs.len(),
                theirs.iter().map(|o| &o.id).collect::<Vec<_>>()
            ));
        }
    }
    r.note(format!(
        "{} coupons (limit {limit} each): {} redeem ops, {ok} ok, {info} unknown, \
         {redeemed} redemptions counted",
        by_code.len(),
        redeems.len()
    ));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn redeem(id: u64, kind: Kind) -> Op {
        Op {
            id,
            process: "coupon-0".into(),
            f: "redeem".into(),
            node: None,
            invoke_ns: id,
            complete_ns: id + 1,
            kind,
            input: Value::Null,
            output: Value::Null,
            error: None,
        }
    }

    #[test]
    fn over_limit_is_found() {
        let ops = [
            redeem(0, Kind::Ok),
            redeem(1, Kind::Ok),
            redeem(2, Kind::Info),
        ];
        assert_eq!(check_coupon(&ops, 2, Some(2)).valid, Some(true));
        assert_eq!(check_coupon(&ops, 1, None).valid, Some(false));
        assert_eq!(check_coupon(&ops, 5, Some(4)).valid, Some(false));
    }

    fn attempt(id: u64, kind: Kind, customer: &str, code: &str, order: &str) -> Op {
        Op {
            input: json!({"customer": customer, "coupon": code, "key": format!("k{id}")}),
            output: if kind == Kind::Ok {
                json!({"order_id": order, "coupon": code, "discount": 80})
            } else {
                Value::Null
            },
            ..redeem(id, kind)
        }
    }

    fn order(id: &str, customer: &str, coupon: Option<&str>) -> FinalOrder {
        FinalOrder {
            id: id.into(),
            customer: customer.into(),
            status: "paid".into(),
            lines: vec![("C0".into(), 1)],
            coupon: coupon.map(str::to_string),
        }
    }

    fn used(counts: &[(&str, u64)]) -> BTreeMap<String, Option<u64>> {
        counts
            .iter()
            .map(|(c, n)| (c.to_string(), Some(*n)))
            .collect()
    }

    #[test]
    fn consistent_coupons_pass() {
        let ops = [
            attempt(0, Kind::Ok, "jc-a", "C-0", "1"),
            attempt(1, Kind::Info, "jc-b", "C-0", ""),
            attempt(2, Kind::Fail, "jc-c", "C-0", ""),
            attempt(3, Kind::Info, "jc-d", "C-1", ""),
        ];
        // The unknown redemption of C-0 happened, the one of C-1 did not.
        let orders = [
            order("1", "jc-a", Some("C-0")),
            order("2", "jc-b", Some("C-0")),
            order("3", "js-x", None),
        ];
        let r = check_coupons(&ops, 2, &used(&[("C-0", 2), ("C-1", 0)]), &orders, "jc-");
        assert_eq!(r.valid, Some(true), "{r:?}");
        let mut unread = used(&[("C-0", 2)]);
        unread.insert("C-1".into(), None);
        assert_eq!(check_coupons(&ops, 2, &unread, &orders, "jc-").valid, None);
    }

    #[test]
    fn lost_phantom_and_miscounted_redemptions_are_found() {
        let ops = [
            attempt(0, Kind::Ok, "jc-a", "C-0", "1"),
            attempt(1, Kind::Fail, "jc-b", "C-0", ""),
            attempt(2, Kind::Ok, "jc-c", "C-0", "3"),
            attempt(3, Kind::Info, "jc-d", "C-0", ""),
        ];
        // Order 1 is gone, refused jc-b has an order, jc-d's order lacks the
        // coupon, and the count disagrees with the orders.
        let orders = [
            order("2", "jc-b", Some("C-0")),
            order("3", "jc-c", Some("C-0")),
            order("4", "jc-d", None),
        ];
        let r = check_coupons(&ops, 5, &used(&[("C-0", 3)]), &orders, "jc-");
        let all = r.anomalies.join("\n");
        assert!(all.contains("lost redemption: op 0"), "{all}");
        assert!(all.contains("phantom redemption: order 2"), "{all}");
        assert!(all.contains("phantom redemption: order 4"), "{all}");
        assert!(all.contains("3 redemptions but 2 orders"), "{all}");
    }

    #[test]
    fn over_limit_and_duplicates_are_found() {
        let ops = [
            attempt(0, Kind::Ok, "jc-a", "C-0", "1"),
            attempt(1, Kind::Ok, "jc-b", "C-0", "2"),
        ];
        let orders = [
            order("1", "jc-a", Some("C-0")),
            order("2", "jc-b", Some("C-0")),
            order("5", "jc-b", Some("C-0")),
        ];
        let r = check_coupons(&ops, 1, &used(&[("C-0", 3)]), &orders, "jc-");
        let all = r.anomalies.join("\n");
        assert!(all.contains("2 acknowledged redemptions"), "{all}");
        assert!(all.contains("outside"), "{all}");
        assert!(all.contains("has 2 orders"), "{all}");
    }

    #[test]
    fn orders_over_the_limit_fail_even_when_the_count_is_unread() {
        // Both redemptions were unknown and both applied: a limit of 1 is
        // exceeded, and the orders show it though no count could be read.
        let ops = [
            attempt(0, Kind::Info, "jc-a", "C-0", ""),
            attempt(1, Kind::Info, "jc-b", "C-0", ""),
        ];
        let orders = [
            order("1", "jc-a", Some("C-0")),
            order("2", "jc-b", Some("C-0")),
        ];
        let mut unread = BTreeMap::new();
        unread.insert("C-0".to_string(), None);
        let r = check_coupons(&ops, 1, &unread, &orders, "jc-");
        assert_eq!(r.valid, Some(false), "{r:?}");
        assert!(r.anomalies[0].contains("2 orders carry it"), "{r:?}");
        // A count that hides the excess does not help.
        let r = check_coupons(&ops, 1, &used(&[("C-0", 1)]), &orders, "jc-");
        assert_eq!(r.valid, Some(false), "{r:?}");
    }

    #[test]
    fn an_acknowledged_checkout_without_the_discount_is_found() {
        let mut op = attempt(0, Kind::Ok, "jc-a", "C-0", "1");
        op.output = json!({"order_id": "1", "coupon": null, "discount": 0});
        let orders = [order("1", "jc-a", Some("C-0"))];
        let r = check_coupons(&[op], 3, &used(&[("C-0", 1)]), &orders, "jc-");
        assert_eq!(r.valid, Some(false), "{r:?}");
        assert!(r.anomalies[0].contains("without redeeming C-0"), "{r:?}");
    }

    #[test]
    fn other_workloads_orders_are_left_alone_unless_they_carry_a_coupon() {
        let orders = [
            order("7", "js-s0-1", None),
            order("8", "js-i0-1", Some("C-0")),
        ];
        let r = check_coupons(&[], 3, &used(&[("C-0", 1)]), &orders, "jc-");
        let all = r.anomalies.join("\n");
        assert!(all.contains("phantom redemption: order 8"), "{all}");
        assert!(!all.contains("order 7"), "{all}");
    }
}
