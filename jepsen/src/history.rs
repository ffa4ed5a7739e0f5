//! The recorded history: every operation as an `invoke` event followed by one
//! completion (`ok`, `fail` or `info`), Jepsen style, plus the nemesis's fault
//! windows. Written as JSON lines; the checkers read it back as [`Op`]s.
//!
//! `fail` means the operation certainly had no effect (the node answered with
//! a definite refusal); `info` means its outcome is unknown (a timeout, a
//! dropped connection, a 5xx): it may or may not have taken effect, and the
//! checkers must allow both. Nothing here interprets what an operation means.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The type of a history event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One line of the history file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    /// Pairs an invocation with its completion.
    pub op: u64,
    /// Nanoseconds since the start of the run.
    pub time_ns: u64,
    /// Which client (or `nemesis`) issued it.
    pub process: String,
    pub kind: Kind,
    /// What was done: `read`, `cas`, `checkout`, `restock`, `kill`, ...
    pub f: String,
    /// The node (slot) the request went to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<usize>,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An invocation with its completion, as the checkers see it.
#[derive(Clone, Debug)]
pub struct Op {
    pub id: u64,
    pub process: String,
    pub f: String,
    pub node: Option<usize>,
    pub invoke_ns: u64,
    /// `u64::MAX` when the operation never completed (the run ended first).
    pub complete_ns: u64,
    /// `Info` when it never completed.
    pub kind: Kind,
    pub input: Value,
    pub output: Value,
    pub error: Option<String>,
}

impl Op {
    pub fn latency_ms(&self) -> Option<f64> {
        (self.complete_ns != u64::MAX).then(|| (self.complete_ns - self.invoke_ns) as f64 / 1e6)
    }
}

/// Collects events from every client task (cheap to clone).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    start: Instant,
}

struct Inner {
    next_op: u64,
    events: Vec<Event>,
}

/// An invoked operation waiting for its completion.
#[must_use = "complete the operation"]
pub struct Pending {
    op: u64,
    process: String,
    f: String,
    node: Option<usize>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            inner: Arc::new(Mutex::new(Inner {
                next_op: 0,
                events: Vec::new(),
            })),
            start: Instant::now(),
        }
    }

    pub fn elapsed_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an invocation.
    pub fn invoke(&self, process: &str, f: &str, node: Option<usize>, value: Value) -> Pending {
        let mut inner = self.lock();
        let op = inner.next_op;
        inner.next_op += 1;
        let time_ns = self.elapsed_ns();
        inner.events.push(Event {
            op,
            time_ns,
            process: process.to_string(),
            kind: Kind::Invoke,
            f: f.to_string(),
            node,
            value,
            error: None,
        });
        Pending {
            op,
            process: process.to_string(),
            f: f.to_string(),
            node,
        }
    }

    /// Records the completion of `pending`.
    pub fn complete(&self, pending: Pending, kind: Kind, value: Value, error: Option<String>) {
        let time_ns = self.elapsed_ns();
        self.lock().events.push(Event {
            op: pending.op,
            time_ns,
            process: pending.process,
            kind,
            f: pending.f,
            node: pending.node,
            value,
            error,
        });
    }

    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// Writes the history as JSON lines.
    pub fn write_jsonl(&self, path: &Path) -> anyhow::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for event in self.lock().events.iter() {
            serde_json::to_writer(&mut out, event)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    }
}

/// Reads a JSON-lines history back.
pub fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Event>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// Pairs invocations with completions, in invocation order. An invocation
/// without completion becomes an `info` op that never returned.
pub fn ops(events: &[Event]) -> Vec<Op> {
    let mut by_id: BTreeMap<u64, Op> = BTreeMap::new();
    for e in events {
        match e.kind {
            Kind::Invoke => {
                by_id.insert(
                    e.op,
                    Op {
                        id: e.op,
                        process: e.process.clone(),
                        f: e.f.clone(),
                        node: e.node,
                        invoke_ns: e.time_ns,
                        complete_ns: u64::MAX,
                        kind: Kind::Info,
                        input: e.value.clone(),
                        output: Value::Null,
                        error: None,
                    },
                );
            }
            kind => {
                if let Some(op) = by_id.get_mut(&e.op) {
                    op.complete_ns = e.time_ns;
                    op.kind = kind;
                    op.output = e.value.clone();
                    op.error = e.error.clone();
                }
            }
        }
    }
    let mut ops: Vec<Op> = by_id.into_values().collect();
    ops.sort_by_key(|o| (o.invoke_ns, o.id));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pairs_invocations_with_completions_and_round_trips_jsonl() {
        let rec = Recorder::new();
        let a = rec.invoke("p0", "read", Some(1), json!({"key": "A"}));
        let b = rec.invoke("p1", "cas", Some(2), json!({"key": "A"}));
        rec.complete(a, Kind::Ok, json!({"value": 3}), None);
        let _never = rec.invoke("p2", "write", None, json!({}));
        rec.complete(b, Kind::Fail, Value::Null, Some("version_conflict".into()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        rec.write_jsonl(&path).unwrap();
        let ops = ops(&read_jsonl(&path).unwrap());
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].kind, Kind::Ok);
        assert_eq!(ops[0].output, json!({"value": 3}));
        assert_eq!(ops[1].kind, Kind::Fail);
        assert_eq!(ops[2].kind, Kind::Info);
        assert_eq!(ops[2].complete_ns, u64::MAX);
    }
}
