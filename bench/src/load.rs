//! The load generator: a closed loop of `clients` tokio tasks, each sending
//! its next request as soon as the previous one answered (keep-alive
//! connections from one shared `reqwest` client), for a fixed duration.
//!
//! Each task records into its own [`Recorder`] (no shared lock on the hot
//! path); they are merged when the step ends. Latencies go into HDR
//! histograms in microseconds. A closed loop measures service time under
//! that concurrency: a stalled server slows the clients down instead of
//! queueing requests behind it (coordinated omission), so the tail is the
//! tail the clients saw, not what an open arrival rate would see.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// One kind of request (e.g. "checkout"): latencies of the successful ones
/// and a count of the others by status.
pub struct Series {
    pub ok: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
}

impl Series {
    pub fn new() -> Series {
        Series {
            // 1 µs to 10 minutes, 3 significant digits.
            ok: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
            errors: BTreeMap::new(),
        }
    }

    pub fn ok_count(&self) -> u64 {
        self.ok.len()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// "409 × 3, timeout × 1", or "0".
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "0".into();
        }
        self.errors
            .iter()
            .map(|(k, n)| format!("{k} × {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Latency at `q` (0..=1) in microseconds.
    pub fn at(&self, q: f64) -> u64 {
        self.ok.value_at_quantile(q)
    }
}

/// What one client task saw, by series name.
#[derive(Default)]
pub struct Recorder {
    series: BTreeMap<&'static str, Series>,
}

impl Recorder {
    pub fn ok(&mut self, name: &'static str, took: Duration) {
        let us = (took.as_micros() as u64).clamp(1, 600_000_000);
        self.series
            .entry(name)
            .or_insert_with(Series::new)
            .ok
            .saturating_record(us);
    }

    pub fn error(&mut self, name: &'static str, what: impl Into<String>) {
        *self
            .series
            .entry(name)
            .or_insert_with(Series::new)
            .errors
            .entry(what.into())
            .or_default() += 1;
    }

    fn merge(&mut self, other: Recorder) {
        for (name, s) in other.series {
            let mine = self.series.entry(name).or_insert_with(Series::new);
            mine.ok.add(&s.ok).expect("same histogram bounds");
            for (k, n) in s.errors {
                *mine.errors.entry(k).or_default() += n;
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Series> {
        self.series.get(name)
    }
}

/// The outcome of one step at one concurrency.
pub struct Step {
    pub clients: usize,
    /// From the start until the last client finished its last request.
    pub elapsed: Duration,
    pub rec: Recorder,
}

impl Step {
    /// Successful requests of `name` per second.
    pub fn rate(&self, name: &str) -> f64 {
        self.rec.get(name).map_or(0.0, |s| s.ok_count() as f64) / self.elapsed.as_secs_f64()
    }
}

/// Records a request's answer as `name`: 2xx as a latency, anything else as
/// an error by status (or `timeout` / `transport`). Returns the 2xx body.
pub async fn timed(
    rec: &mut Recorder,
    name: &'static str,
    req: reqwest::RequestBuilder,
) -> Option<bytes::Bytes> {
    let started = Instant::now();
    match req.send().await {
        Ok(reply) => {
            let status = reply.status();
            let body = reply.bytes().await;
            match body {
                Ok(body) if status.is_success() => {
                    rec.ok(name, started.elapsed());
                    Some(body)
                }
                Ok(_) => {
                    rec.error(name, status.as_u16().to_string());
                    None
                }
                Err(_) => {
                    rec.error(name, "transport");
                    None
                }
            }
        }
        Err(e) if e.is_timeout() => {
            rec.error(name, "timeout");
            None
        }
        Err(_) => {
            rec.error(name, "transport");
            None
        }
    }
}

/// A client of the closed loop: [`Worker::iteration`] runs one unit of work
/// (one request, or one journey of several) and records what happened.
pub trait Worker: Send + 'static {
    fn iteration(&mut self, rec: &mut Recorder) -> impl Future<Output = ()> + Send;
}

/// Runs `workers` concurrently until `duration` has passed (a running
/// iteration is finished, not cut), and returns the workers (with their
/// state) and the merged figures.
pub async fn run<W: Worker>(workers: Vec<W>, duration: Duration) -> (Vec<W>, Step) {
    let clients = workers.len();
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            tokio::spawn(async move {
                let mut rec = Recorder::default();
                while Instant::now() < deadline {
                    w.iteration(&mut rec).await;
                }
                (w, rec)
            })
        })
        .collect();
    let mut rec = Recorder::default();
    let mut back = Vec::with_capacity(clients);
    for t in tasks {
        let (w, r) = t.await.expect("benchmark client panicked");
        rec.merge(r);
        back.push(w);
    }
    let step = Step {
        clients,
        elapsed: started.elapsed(),
        rec,
    };
    (back, step)
}
