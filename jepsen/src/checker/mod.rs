//! Checkers: pure functions from a recorded history (and final reads made
//! through the public API) to a verdict. None of them links or imitates the
//! node's code; each states its model in its module doc.

pub mod coupon;
pub mod idempotency;
pub mod linear;
pub mod register;
pub mod stock;

use serde::Serialize;

/// A checker's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub checker: String,
    /// `true`: no anomaly; `false`: anomalies found; `None`: could not decide.
    pub valid: Option<bool>,
    pub anomalies: Vec<String>,
    /// Figures worth printing (ops checked, bounds used, ...).
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(checker: &str) -> Report {
        Report {
            checker: checker.to_string(),
            valid: Some(true),
            anomalies: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn anomaly(&mut self, message: impl Into<String>) {
        self.valid = Some(false);
        self.anomalies.push(message.into());
    }

    pub fn unknown(&mut self, message: impl Into<String>) {
        if self.valid == Some(true) {
            self.valid = None;
        }
        self.notes.push(message.into());
    }

    pub fn note(&mut self, message: impl Into<String>) {
        self.notes.push(message.into());
    }
}

/// Replicas must converge: samples of `(slot, applied_index, digest)` taken
/// after healing; two replicas at the same index must agree, and every
/// replica must reach one common index.
pub fn convergence(samples: &[Vec<(usize, u64, String)>], reached_common: bool) -> Report {
    let mut r = Report::new("convergence");
    let mut by_index: std::collections::BTreeMap<u64, (usize, String)> = Default::default();
    for round in samples {
        for (slot, index, digest) in round {
            match by_index.get(index) {
                Some((other, d)) if d != digest => r.anomaly(format!(
                    "slots {other} and {slot} at applied index {index} have different digests \
                     ({d} vs {digest})"
                )),
                Some(_) => {}
                None => {
                    by_index.insert(*index, (*slot, digest.clone()));
                }
            }
        }
    }
    if !reached_common {
        r.anomaly("replicas did not reach a common applied index after healing");
    }
    r.note(format!(
        "{} digest samples at {} distinct indexes",
        samples.iter().map(Vec::len).sum::<usize>(),
        by_index.len()
    ));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverged_replicas_are_an_anomaly() {
        let ok = vec![vec![(1, 10, "a".to_string()), (2, 10, "a".to_string())]];
        assert_eq!(convergence(&ok, true).valid, Some(true));
        let bad = vec![
            vec![(1, 10, "a".to_string()), (2, 9, "x".to_string())],
            vec![(2, 10, "b".to_string())],
        ];
        assert_eq!(convergence(&bad, true).valid, Some(false));
        assert_eq!(convergence(&ok, false).valid, Some(false));
    }
}
