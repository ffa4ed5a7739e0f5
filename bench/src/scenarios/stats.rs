//! What the virtual users of a scenario saw, by request kind: latencies of
//! the successful answers, refusals under load ("shed": 429 and 503, by
//! status and error code, with how fast they came back and whether they
//! carried `Retry-After`), other errors, and the connections.
//!
//! All users of a scenario (or of one stress step) share one [`Stats`]
//! behind a mutex, and the scenario's [`Timeline`] behind another. Not one
//! recorder per user as in `load.rs`: a histogram per request kind is
//! ~100 KB, and 50,000 users would need gigabytes. The lock is held for one
//! histogram update, a few thousand times a second on 2 cores.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::conn::Answer;
use crate::load::Series;
use crate::timeline::{Outcome, Timeline};

/// 1 µs to 10 minutes, 3 significant digits (as `load.rs`).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 600_000_000)
}

/// Answers refused under load with one status and code.
pub struct Shed {
    pub latency: Histogram<u64>,
    pub with_retry_after: u64,
}

/// One kind of request.
pub struct Kind {
    /// Successful answers' latencies, and the other errors by label.
    pub series: Series,
    /// Refusals by "status code" (e.g. "503 overloaded", "429 rate_limited").
    pub shed: BTreeMap<String, Shed>,
}

impl Kind {
    pub fn new() -> Kind {
        Kind {
            series: Series::new(),
            shed: BTreeMap::new(),
        }
    }

    pub fn shed_count(&self) -> u64 {
        self.shed.values().map(|s| s.latency.len()).sum()
    }

    /// Every answer and failure.
    pub fn requests(&self) -> u64 {
        self.series.ok_count() + self.series.error_count() + self.shed_count()
    }

    pub fn merge(&mut self, other: &Kind) {
        self.series.ok.add(&other.series.ok).expect("same bounds");
        for (k, n) in &other.series.errors {
            *self.series.errors.entry(k.clone()).or_default() += n;
        }
        for (k, s) in &other.shed {
            let mine = self.shed.entry(k.clone()).or_insert_with(|| Shed {
                latency: histogram(),
                with_retry_after: 0,
            });
            mine.latency.add(&s.latency).expect("same bounds");
            mine.with_retry_after += s.with_retry_after;
        }
    }
}

/// Everything one scenario (or stress step) saw.
pub struct Stats {
    pub kinds: BTreeMap<&'static str, Kind>,
    /// Connection establishment times (first connections and reconnections).
    pub connect: Histogram<u64>,
    pub connect_errors: BTreeMap<String, u64>,
    /// Connections made again after one broke or timed out.
    pub reconnects: u64,
    /// Users that got their first connection, and when the last of them did
    /// (from the scenario's start).
    pub connected_users: u64,
    pub last_first_connect: Duration,
    /// Times a user waited for a free customer account, and the longest wait.
    pub customer_waits: u64,
    pub longest_customer_wait: Duration,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            kinds: BTreeMap::new(),
            connect: histogram(),
            connect_errors: BTreeMap::new(),
            reconnects: 0,
            connected_users: 0,
            last_first_connect: Duration::ZERO,
            customer_waits: 0,
            longest_customer_wait: Duration::ZERO,
        }
    }
}

/// How an answer is classed: a 2xx, a refusal under load, or an error.
pub fn classify(answer: &Answer) -> Outcome {
    match answer {
        Answer::Http { status, .. } if (200..300).contains(status) => Outcome::Ok,
        Answer::Http {
            status: 429 | 503, ..
        } => Outcome::Shed,
        _ => Outcome::Error,
    }
}

impl Stats {
    /// Records one request of `kind` that took `took`.
    pub fn record(&mut self, kind: &'static str, answer: &Answer, took: Duration) {
        let k = self.kinds.entry(kind).or_insert_with(Kind::new);
        match (classify(answer), answer) {
            (Outcome::Ok, _) => {
                k.series.ok.saturating_record(micros(took));
            }
            (
                Outcome::Shed,
                Answer::Http {
                    status,
                    code,
                    retry_after,
                },
            ) => {
                let key = format!("{status} {}", code.as_deref().unwrap_or("-"));
                let shed = k.shed.entry(key).or_insert_with(|| Shed {
                    latency: histogram(),
                    with_retry_after: 0,
                });
                shed.latency.saturating_record(micros(took));
                shed.with_retry_after += u64::from(*retry_after);
            }
            (_, answer) => {
                let label = match answer {
                    Answer::Http { status, .. } => status.to_string(),
                    Answer::Timeout => "timeout".into(),
                    Answer::Transport => "transport".into(),
                };
                *k.series.errors.entry(label).or_default() += 1;
            }
        }
    }

    /// Adds what `other` saw (another generator process's users of the
    /// same scenario): counts add up, histograms merge, longest waits and
    /// the last first connection are the larger of the two.
    pub fn merge(&mut self, other: &Stats) {
        for (name, k) in &other.kinds {
            self.kinds.entry(name).or_insert_with(Kind::new).merge(k);
        }
        self.connect.add(&other.connect).expect("same bounds");
        for (k, n) in &other.connect_errors {
            *self.connect_errors.entry(k.clone()).or_default() += n;
        }
        self.reconnects += other.reconnects;
        self.connected_users += other.connected_users;
        self.last_first_connect = self.last_first_connect.max(other.last_first_connect);
        self.customer_waits += other.customer_waits;
        self.longest_customer_wait = self.longest_customer_wait.max(other.longest_customer_wait);
    }

    /// All kinds together.
    pub fn overall(&self) -> Kind {
        let mut all = Kind::new();
        for k in self.kinds.values() {
            all.merge(k);
        }
        all
    }

    /// All refusals together, by "status code".
    pub fn shed_by_code(&self) -> BTreeMap<String, (u64, u64)> {
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for k in self.kinds.values() {
            for (code, s) in &k.shed {
                let e = out.entry(code.clone()).or_default();
                e.0 += s.latency.len();
                e.1 += s.with_retry_after;
            }
        }
        out
    }
}

/// Where the users of one scenario (or stress step) record: the step's
/// [`Stats`] and the scenario's [`Timeline`]. Requests that end before
/// `measure_from` (a ramp-up) go to the timeline only.
#[derive(Clone)]
pub struct Recorder {
    pub start: Instant,
    pub measure_from: Instant,
    pub stats: Arc<Mutex<Stats>>,
    pub timeline: Arc<Mutex<Timeline>>,
}

impl Recorder {
    pub fn request(&self, kind: &'static str, answer: &Answer, took: Duration) {
        let now = Instant::now();
        if now >= self.measure_from {
            lock(&self.stats).record(kind, answer, took);
        }
        lock(&self.timeline).record(now - self.start, classify(answer), took);
    }

    /// A connection made in `took`; `first` for a user's first one.
    pub fn connected(&self, took: Duration, first: bool) {
        let since_start = self.start.elapsed();
        let mut s = lock(&self.stats);
        s.connect.saturating_record(micros(took));
        if first {
            s.connected_users += 1;
            s.last_first_connect = s.last_first_connect.max(since_start);
        } else {
            s.reconnects += 1;
        }
    }

    pub fn connect_failed(&self, label: String) {
        *lock(&self.stats).connect_errors.entry(label).or_default() += 1;
    }

    pub fn waited_for_customer(&self, took: Duration) {
        let mut s = lock(&self.stats);
        s.customer_waits += 1;
        s.longest_customer_wait = s.longest_customer_wait.max(took);
    }
}

/// A lock that a panicked user cannot poison for the others (the figures
/// of one broken user are still figures).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::{Answer, Stats};
    use std::time::Duration;

    fn http(status: u16, code: Option<&str>, retry_after: bool) -> Answer {
        Answer::Http {
            status,
            code: code.map(str::to_string),
            retry_after,
        }
    }

    #[test]
    fn refusals_are_shed_not_errors() {
        let mut s = Stats::default();
        let ms = Duration::from_millis;
        s.record("checkout", &http(201, None, false), ms(30));
        s.record("checkout", &http(503, Some("overloaded"), true), ms(1));
        s.record("browse", &http(503, Some("overloaded"), false), ms(2));
        s.record("browse", &http(429, Some("rate_limited"), true), ms(1));
        s.record("browse", &http(500, Some("internal"), false), ms(5));
        s.record("browse", &Answer::Timeout, ms(30_000));
        s.record("browse", &Answer::Transport, ms(3));
        let all = s.overall();
        assert_eq!(all.requests(), 7);
        assert_eq!(all.series.ok_count(), 1);
        assert_eq!(all.shed_count(), 3);
        assert_eq!(
            all.series.errors_text(),
            "500 × 1, timeout × 1, transport × 1"
        );
        let by_code = s.shed_by_code();
        assert_eq!(by_code["503 overloaded"], (2, 1));
        assert_eq!(by_code["429 rate_limited"], (1, 1));
        assert_eq!(s.kinds["browse"].requests(), 5);
    }
}
