//! Coupon usage limits (checker ready, workload waiting for coupons).
//!
//! Model: a coupon with usage limit `L` is redeemed by concurrent checkouts.
//! Then `ok` redemptions ≤ L, and the final redemption count `n` read from the
//! API satisfies `ok ≤ n ≤ min(L, ok + info)`. The workload that produces
//! `redeem` ops lands with the catalogue issue's coupons (see
//! `workload::coupon`).

use crate::history::{Kind, Op};

use super::Report;

/// `final_count`: redemptions the node reports after the run, if known.
// Used by its tests until the coupon workload exists (see the module doc).
#[cfg_attr(not(test), allow(dead_code))]
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
}
