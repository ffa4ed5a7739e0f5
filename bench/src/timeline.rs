//! Latency over time: what a load scenario saw second by second, so a
//! stall, a spike's ramp or a recovery shows where a whole-run percentile
//! would average it away. Pure: the scenario feeds it answers (with the time
//! they came back, relative to the scenario's start) and once a second the
//! gauges (open connections, each node's RSS, the phase); this module buckets
//! them and writes CSV. Nothing here reads a clock.
//!
//! A request counts in the second its answer came back. The per-second
//! p50/p95 are over successful answers only: shed answers (429/503) come back
//! fast, and mixing them in would make an overloaded second look quick.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Ok,
    /// Refused under load: 429 (rate limited) or 503 (overloaded, no leader).
    Shed,
    /// Anything else: another status, a timeout, a broken connection.
    Error,
}

/// One second of a scenario.
pub struct Bucket {
    pub requests: u64,
    pub errors: u64,
    pub shed: u64,
    /// Latencies of the successful answers, in µs (2 significant digits:
    /// enough for a chart, and small enough to keep one per second).
    pub ok: Histogram<u64>,
    /// Open connections when the second was sampled.
    pub open: Option<u64>,
    /// Each node's RSS in KiB when the second was sampled (`None`: gone).
    pub rss_kib: Vec<Option<u64>>,
    /// What the scenario was doing ("ramp", "hold", "step 256 users", ...).
    pub phase: String,
}

impl Bucket {
    pub fn new() -> Bucket {
        Bucket {
            requests: 0,
            errors: 0,
            shed: 0,
            ok: Histogram::new_with_bounds(1, 600_000_000, 2).expect("histogram bounds"),
            open: None,
            rss_kib: Vec::new(),
            phase: String::new(),
        }
    }

    /// Latency of the successful answers at `q`, in ms (`None`: there were none).
    pub fn ms_at(&self, q: f64) -> Option<f64> {
        (!self.ok.is_empty()).then(|| self.ok.value_at_quantile(q) as f64 / 1000.0)
    }
}

/// Per-second buckets from the scenario's start.
#[derive(Default)]
pub struct Timeline {
    buckets: Vec<Bucket>,
}

impl Timeline {
    fn bucket(&mut self, at: Duration) -> &mut Bucket {
        let i = at.as_secs() as usize;
        while self.buckets.len() <= i {
            self.buckets.push(Bucket::new());
        }
        &mut self.buckets[i]
    }

    /// A request that ended `at` after the start, having taken `took`.
    pub fn record(&mut self, at: Duration, outcome: Outcome, took: Duration) {
        let b = self.bucket(at);
        b.requests += 1;
        match outcome {
            Outcome::Ok => {
                let us = (took.as_micros() as u64).clamp(1, 600_000_000);
                b.ok.saturating_record(us);
            }
            Outcome::Shed => b.shed += 1,
            Outcome::Error => b.errors += 1,
        }
    }

    /// The gauges sampled `at` after the start.
    pub fn sample(&mut self, at: Duration, open: u64, rss_kib: &[Option<u64>], phase: &str) {
        self.sample_open(at, open);
        self.sample_nodes(at, rss_kib, phase);
    }

    /// The open connections sampled `at` after the start (a spike worker's
    /// gauge: it sees its own connections, not the nodes).
    pub fn sample_open(&mut self, at: Duration, open: u64) {
        self.bucket(at).open = Some(open);
    }

    /// The nodes' RSS and the phase sampled `at` after the start (the
    /// spike's parent, whose users run in worker processes).
    pub fn sample_nodes(&mut self, at: Duration, rss_kib: &[Option<u64>], phase: &str) {
        let b = self.bucket(at);
        b.rss_kib = rss_kib.to_vec();
        b.phase = phase.to_string();
    }

    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    pub fn from_buckets(buckets: Vec<Bucket>) -> Timeline {
        Timeline { buckets }
    }

    /// Adds `other`'s seconds to these, second by second (both counted from
    /// the same start): answers and latencies add up, and so do the open
    /// connections (each generator process counts its own); the nodes' RSS
    /// and the phase are taken from `other` only where this has none.
    pub fn merge(&mut self, other: &Timeline) {
        for (i, o) in other.buckets.iter().enumerate() {
            let b = self.bucket(Duration::from_secs(i as u64));
            b.requests += o.requests;
            b.errors += o.errors;
            b.shed += o.shed;
            b.ok.add(&o.ok).expect("same bounds");
            if let Some(open) = o.open {
                b.open = Some(b.open.unwrap_or(0) + open);
            }
            if b.rss_kib.is_empty() {
                b.rss_kib.clone_from(&o.rss_kib);
            }
            if b.phase.is_empty() {
                b.phase.clone_from(&o.phase);
            }
        }
    }

    /// One line per second: `second,phase,open_connections,requests,ok,
    /// errors,shed,p50_ms,p95_ms,rss_n1_mib,...` (empty cells where there
    /// is nothing to say). `nodes` fixes the number of RSS columns.
    pub fn csv(&self, nodes: usize) -> String {
        let mut out =
            String::from("second,phase,open_connections,requests,ok,errors,shed,p50_ms,p95_ms");
        for n in 1..=nodes {
            let _ = write!(out, ",rss_n{n}_mib");
        }
        out.push('\n');
        let cell = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.2}"));
        for (second, b) in self.buckets.iter().enumerate() {
            let _ = write!(
                out,
                "{second},{},{},{},{},{},{},{},{}",
                csv_text(&b.phase),
                b.open.map_or(String::new(), |o| o.to_string()),
                b.requests,
                b.ok.len(),
                b.errors,
                b.shed,
                cell(b.ms_at(0.50)),
                cell(b.ms_at(0.95)),
            );
            for n in 0..nodes {
                let rss = b.rss_kib.get(n).copied().flatten();
                let _ = write!(
                    out,
                    ",{}",
                    rss.map_or(String::new(), |k| (k / 1024).to_string())
                );
            }
            out.push('\n');
        }
        out
    }
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::{Outcome, Timeline};
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn answers_count_in_the_second_they_came_back() {
        let mut t = Timeline::default();
        t.record(ms(999), Outcome::Ok, ms(10));
        t.record(ms(1000), Outcome::Ok, ms(20));
        t.record(ms(1500), Outcome::Shed, ms(1));
        t.record(ms(3200), Outcome::Error, ms(5000));
        let b = t.buckets();
        assert_eq!(b.len(), 4);
        assert_eq!((b[0].requests, b[0].ok.len()), (1, 1));
        assert_eq!((b[1].requests, b[1].ok.len(), b[1].shed), (2, 1, 1));
        // A second with no answer is still a row (a stall must show).
        assert_eq!(b[2].requests, 0);
        assert_eq!(b[2].ms_at(0.95), None);
        assert_eq!((b[3].errors, b[3].ok.len()), (1, 0));
    }

    #[test]
    fn percentiles_are_over_successes_only() {
        let mut t = Timeline::default();
        for i in 1..=100 {
            t.record(ms(10), Outcome::Ok, ms(i));
        }
        // Fast refusals do not pull the latency down.
        for _ in 0..1000 {
            t.record(ms(20), Outcome::Shed, Duration::from_micros(50));
        }
        let b = &t.buckets()[0];
        let p50 = b.ms_at(0.50).unwrap();
        let p95 = b.ms_at(0.95).unwrap();
        assert!((49.0..=51.0).contains(&p50), "{p50}");
        assert!((94.0..=96.0).contains(&p95), "{p95}");
        assert_eq!(b.shed, 1000);
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_second() {
        let mut t = Timeline::default();
        t.sample(ms(0), 3, &[Some(2048), None, Some(4096)], "ramp, 3 users");
        t.record(ms(100), Outcome::Ok, ms(1));
        t.record(ms(1100), Outcome::Shed, ms(1));
        let csv = t.csv(3);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "second,phase,open_connections,requests,ok,errors,shed,p50_ms,p95_ms,rss_n1_mib,rss_n2_mib,rss_n3_mib"
        );
        assert_eq!(lines[1], "0,\"ramp, 3 users\",3,1,1,0,0,1.00,1.00,2,,4");
        assert_eq!(lines[2], "1,,,1,0,0,1,,,,,");
        assert_eq!(lines.len(), 3);
        let columns = lines[0].split(',').count();
        assert_eq!(lines[2].split(',').count(), columns);
    }
}
