//! A linearizability checker for registers: Wing & Gong's search with Lowe's
//! memoization (the algorithm of Porcupine and Knossos's `wgl`), run per key
//! (P-compositionality: a history is linearizable iff each key's
//! sub-history is).
//!
//! Why our own: `porcupine-rs` and `todc-utils` were not in the package lists
//! this suite may use, and `stateright`'s tester checks a model's own runs,
//! not a recorded history with unknown outcomes. The algorithm is ~100 lines
//! and tested below on known-good and known-bad histories.
//!
//! Input semantics: an `ok` op took effect between its invocation and
//! completion; an `info` op may have taken effect at any point after its
//! invocation, or never (it gets an infinite completion time, so its return
//! sorts after every real one; once only such ops are left the search
//! succeeds, dropping them, since nothing observed them); a `fail` op had no
//! effect and is dropped before the search.

use std::collections::HashSet;

/// A register operation with its observed result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegOp {
    /// Read `Some(v)`, or `None` for "not there".
    Read(Option<i64>),
    Write(i64),
    /// Compare-and-set: succeeds only when the value is `from`.
    Cas {
        from: i64,
        to: i64,
    },
}

/// One operation of a single key's history.
#[derive(Clone, Debug)]
pub struct Entry {
    pub op: RegOp,
    pub invoke: u64,
    /// `u64::MAX` for an `info` op.
    pub complete: u64,
    /// Id in the recorded history, for the report.
    pub id: u64,
}

/// The verdict for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order exists; `stuck_at` is the op id the deepest search could not
    /// place (a hint for reading the history).
    NotLinearizable {
        stuck_at: u64,
    },
    /// The search gave up after its step budget.
    Unknown,
}

fn step(state: Option<i64>, op: &RegOp) -> Option<Option<i64>> {
    match op {
        RegOp::Read(v) => (*v == state).then_some(state),
        RegOp::Write(v) => Some(Some(*v)),
        RegOp::Cas { from, to } => (state == Some(*from)).then_some(Some(*to)),
    }
}

const NONE: usize = usize::MAX;

/// Checks one key's history from `initial`, exploring at most `budget`
/// search steps.
pub fn check(initial: Option<i64>, history: &[Entry], budget: u64) -> Verdict {
    let n = history.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Events: 2 per op, sorted by time; calls before returns at equal times.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in history.iter().enumerate() {
        events.push((e.invoke, false, i));
        events.push((e.complete, true, i));
    }
    events.sort_by_key(|&(t, is_return, i)| (t, is_return, i));
    // Doubly linked list over events with a head sentinel at index 2n.
    let head = 2 * n;
    let mut next = vec![NONE; 2 * n + 1];
    let mut prev = vec![NONE; 2 * n + 1];
    let mut call_of = vec![0usize; n];
    let mut ret_of = vec![0usize; n];
    let mut order = vec![head];
    for (pos, &(_, is_return, i)) in events.iter().enumerate() {
        if is_return {
            ret_of[i] = pos;
        } else {
            call_of[i] = pos;
        }
        order.push(pos);
    }
    for w in order.windows(2) {
        next[w[0]] = w[1];
        prev[w[1]] = w[0];
    }
    let op_at = |pos: usize| events[pos].2;
    let is_call = |pos: usize| !events[pos].1;

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Option<i64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<i64>)> = Vec::new();
    let mut state = initial;
    let mut entry = next[head];
    let mut steps = 0u64;
    let mut deepest = (0usize, history[op_at(next[head])].id);

    let lift = |pos: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        next[prev[pos]] = next[pos];
        if next[pos] != NONE {
            prev[next[pos]] = prev[pos];
        }
    };
    let unlift = |pos: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        next[prev[pos]] = pos;
        if next[pos] != NONE {
            prev[next[pos]] = pos;
        }
    };

    while next[head] != NONE {
        steps += 1;
        if steps > budget {
            return Verdict::Unknown;
        }
        if entry != NONE && is_call(entry) {
            let i = op_at(entry);
            if let Some(new_state) = step(state, &history[i].op) {
                let mut candidate = linearized.clone();
                candidate[i / 64] |= 1 << (i % 64);
                if cache.insert((candidate.clone(), new_state)) {
                    stack.push((entry, state));
                    state = new_state;
                    linearized = candidate;
                    lift(call_of[i], &mut next, &mut prev);
                    lift(ret_of[i], &mut next, &mut prev);
                    if stack.len() > deepest.0 && next[head] != NONE {
                        deepest = (stack.len(), history[op_at(next[head])].id);
                    }
                    entry = next[head];
                    continue;
                }
            }
            entry = next[entry];
        } else if entry != NONE && history[op_at(entry)].complete == u64::MAX {
            // Only ops with unknown outcome are left (their returns sort
            // last): each may never have happened, so this order is a
            // linearization.
            return Verdict::Linearizable;
        } else {
            // A return (or the end): the op it closes was not linearized
            // before it, so backtrack.
            let Some((call, old_state)) = stack.pop() else {
                return Verdict::NotLinearizable {
                    stuck_at: deepest.1,
                };
            };
            let i = op_at(call);
            state = old_state;
            linearized[i / 64] &= !(1 << (i % 64));
            unlift(ret_of[i], &mut next, &mut prev);
            unlift(call_of[i], &mut next, &mut prev);
            entry = next[call];
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: u64, op: RegOp, invoke: u64, complete: u64) -> Entry {
        Entry {
            op,
            invoke,
            complete,
            id,
        }
    }

    const BUDGET: u64 = 1_000_000;

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            e(0, RegOp::Write(1), 0, 1),
            e(1, RegOp::Read(Some(1)), 2, 3),
            e(2, RegOp::Cas { from: 1, to: 2 }, 4, 5),
            e(3, RegOp::Read(Some(2)), 6, 7),
        ];
        assert_eq!(check(Some(0), &h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn concurrent_ops_may_take_effect_in_either_order() {
        // The read overlaps the write: it may see the old or the new value.
        let old = [
            e(0, RegOp::Write(1), 0, 10),
            e(1, RegOp::Read(Some(0)), 1, 2),
            e(2, RegOp::Read(Some(1)), 3, 4),
        ];
        assert_eq!(check(Some(0), &old, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_acknowledged_write_is_not_linearizable() {
        let h = [
            e(0, RegOp::Write(1), 0, 1),
            e(1, RegOp::Read(Some(0)), 2, 3),
        ];
        assert!(matches!(
            check(Some(0), &h, BUDGET),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn reads_going_back_in_time_are_not_linearizable() {
        // Two sequential reads during a long write: new value then old value.
        let h = [
            e(0, RegOp::Write(1), 0, 100),
            e(1, RegOp::Read(Some(1)), 10, 20),
            e(2, RegOp::Read(Some(0)), 30, 40),
        ];
        assert!(matches!(
            check(Some(0), &h, BUDGET),
            Verdict::NotLinearizable { stuck_at: _ }
        ));
    }

    #[test]
    fn two_successful_cas_from_the_same_value_are_not_linearizable() {
        let h = [
            e(0, RegOp::Cas { from: 0, to: 1 }, 0, 10),
            e(1, RegOp::Cas { from: 0, to: 2 }, 0, 10),
        ];
        assert!(matches!(
            check(Some(0), &h, BUDGET),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn an_info_write_may_or_may_not_have_happened() {
        let seen = [
            e(0, RegOp::Write(5), 0, u64::MAX),
            e(1, RegOp::Read(Some(5)), 10, 11),
        ];
        assert_eq!(check(Some(0), &seen, BUDGET), Verdict::Linearizable);
        let unseen = [
            e(0, RegOp::Write(5), 0, u64::MAX),
            e(1, RegOp::Read(Some(0)), 10, 11),
        ];
        assert_eq!(check(Some(0), &unseen, BUDGET), Verdict::Linearizable);
        // But once seen, it cannot be un-done.
        let flicker = [
            e(0, RegOp::Write(5), 0, u64::MAX),
            e(1, RegOp::Read(Some(5)), 10, 11),
            e(2, RegOp::Read(Some(0)), 12, 13),
        ];
        assert!(matches!(
            check(Some(0), &flicker, BUDGET),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn an_info_cas_that_could_never_apply_is_fine() {
        let h = [
            e(0, RegOp::Write(1), 0, 1),
            e(1, RegOp::Cas { from: 7, to: 8 }, 2, u64::MAX),
            e(2, RegOp::Read(Some(1)), 3, 4),
        ];
        assert_eq!(check(Some(0), &h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn phantom_value_is_not_linearizable() {
        let h = [e(0, RegOp::Read(Some(42)), 0, 1)];
        assert!(matches!(
            check(Some(0), &h, BUDGET),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn many_concurrent_writers_finish_within_budget() {
        // 8 processes × 25 rounds of overlapping CAS chains: linearizable by
        // construction (round r's winner moves r -> r+1; the rest read r).
        let mut h = Vec::new();
        let mut id = 0;
        for r in 0..25i64 {
            let t = r as u64 * 100;
            h.push(e(id, RegOp::Cas { from: r, to: r + 1 }, t, t + 50));
            id += 1;
            for p in 0..7 {
                h.push(e(id, RegOp::Read(Some(r)), t + p, t + 1 + p));
                id += 1;
            }
        }
        assert_eq!(check(Some(0), &h, BUDGET), Verdict::Linearizable);
    }
}
