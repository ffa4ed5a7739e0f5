//! The register workload's history as per-key register histories for
//! [`super::linear`].
//!
//! Model: each key is a register holding a stock level's `on_hand`. Every
//! write in a run writes a value never written before, so a value names the
//! write that produced it, and a compare-and-set on a version read together
//! with value `v` is a compare-and-set on `v`. Ops: `read` → output
//! `{"value"}`; `cas` → input `{"from","to"}`; all with input `"key"`.

use std::collections::BTreeMap;

use crate::history::{Kind, Op};

use super::linear::{check, Entry, RegOp, Verdict};
use super::Report;

/// Search steps per key before giving up ("unknown", never "valid").
pub const BUDGET: u64 = 20_000_000;

/// Checks every key of the register ops in `ops`; `initial` gives each key's
/// starting value.
pub fn check_registers(ops: &[Op], initial: &BTreeMap<String, i64>) -> Report {
    let mut report = Report::new("linearizable registers");
    let mut per_key: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut counted = [0usize; 3];
    for op in ops.iter().filter(|o| o.process.starts_with("register")) {
        let Some(key) = op.input["key"].as_str() else {
            continue;
        };
        let reg = match (op.f.as_str(), op.kind) {
            (_, Kind::Fail) | (_, Kind::Invoke) => None,
            // A read with unknown outcome observed nothing.
            ("read", Kind::Info) => None,
            ("read", Kind::Ok) => Some(RegOp::Read(op.output["value"].as_i64())),
            ("cas", _) => match (op.input["from"].as_i64(), op.input["to"].as_i64()) {
                (Some(from), Some(to)) => Some(RegOp::Cas { from, to }),
                _ => None,
            },
            ("write", _) => op.input["to"].as_i64().map(RegOp::Write),
            _ => None,
        };
        let Some(reg) = reg else { continue };
        match op.kind {
            Kind::Ok => counted[0] += 1,
            Kind::Info => counted[1] += 1,
            _ => counted[2] += 1,
        }
        let complete = if op.kind == Kind::Info {
            u64::MAX
        } else {
            op.complete_ns
        };
        per_key.entry(key.to_string()).or_default().push(Entry {
            op: reg,
            invoke: op.invoke_ns,
            complete,
            id: op.id,
        });
    }
    for (key, history) in &per_key {
        let start = initial.get(key).copied();
        match check(start, history, BUDGET) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { stuck_at } => report.anomaly(format!(
                "key {key}: not linearizable ({} ops); no linearization gets past op {stuck_at}",
                history.len()
            )),
            Verdict::Unknown => report.unknown(format!(
                "key {key}: search budget of {BUDGET} steps exhausted ({} ops)",
                history.len()
            )),
        }
    }
    report.note(format!(
        "{} keys, {} ok and {} info ops checked",
        per_key.len(),
        counted[0],
        counted[1]
    ));
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn op(id: u64, f: &str, kind: Kind, t: (u64, u64), input: Value, output: Value) -> Op {
        Op {
            id,
            process: "register-0".into(),
            f: f.into(),
            node: Some(1),
            invoke_ns: t.0,
            complete_ns: t.1,
            kind,
            input,
            output,
            error: None,
        }
    }

    #[test]
    fn lost_cas_is_found_and_failed_cas_is_ignored() {
        let initial = BTreeMap::from([("R0".to_string(), 0)]);
        let good = vec![
            op(
                0,
                "cas",
                Kind::Ok,
                (0, 1),
                json!({"key":"R0","from":0,"to":7}),
                json!({}),
            ),
            op(
                1,
                "cas",
                Kind::Fail,
                (2, 3),
                json!({"key":"R0","from":0,"to":8}),
                json!({}),
            ),
            op(
                2,
                "read",
                Kind::Ok,
                (4, 5),
                json!({"key":"R0"}),
                json!({"value":7}),
            ),
        ];
        assert_eq!(check_registers(&good, &initial).valid, Some(true));
        // The acknowledged CAS is lost: a later read sees the old value.
        let lost = vec![
            op(
                0,
                "cas",
                Kind::Ok,
                (0, 1),
                json!({"key":"R0","from":0,"to":7}),
                json!({}),
            ),
            op(
                2,
                "read",
                Kind::Ok,
                (4, 5),
                json!({"key":"R0"}),
                json!({"value":0}),
            ),
        ];
        assert_eq!(check_registers(&lost, &initial).valid, Some(false));
    }
}
