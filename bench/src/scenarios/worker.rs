//! The spike's generator processes. One process may hold only as many
//! connections as its open-files limit allows (20,000 on the development
//! machine, and without `CAP_SYS_RESOURCE` the hard limit cannot be raised),
//! while the spike wants 50,000 at once. So the spike always runs its users
//! in `ecommerce-bench spike-worker` child processes, as many as the limit
//! asks for (one when it suffices: the same path, N = 1):
//!
//! - the parent writes each worker a [`Job`] as JSON on its stdin (node
//!   addresses, journey settings, its share of the users, the customer
//!   tokens it may lend: tokens stay off the command line), and a common
//!   start time on the wall clock, a moment ahead, so every worker's ramp
//!   and timeline seconds line up with the parent's;
//! - a worker runs its users, user `u` of the spike for every
//!   `u ≡ worker (mod workers)`, with the same code and seeds as one process
//!   would (`super::spawn_users`), samples its open connections every
//!   second, waits (bounded) for its connections to close, and prints one
//!   [`Report`] as JSON on stdout: its [`Stats`], its per-second timeline
//!   and its CPU time;
//! - the parent samples the nodes meanwhile, [`merge`]s the reports into the
//!   one [`Stats`] and [`Timeline`] the spike prints and charts, and kills a
//!   worker that has not reported [`OVERRUN`] after the deadline.
//!
//! Each worker lends customers from its own share of the tokens, so two
//! users still never share a cart. Idempotency keys carry the process id,
//! so they stay unique across workers.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::conn::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};
use super::stats::{lock, Stats};
use super::user::Customers;
use super::wire::{field, read_stats, read_timeline, stats_json, timeline_json, u64_field};
use super::{join_sampling, recorder, spawn_users, user_plan, Ctx};
use crate::timeline::Timeline;

/// How long after the spike's deadline a worker's users may still run: a
/// user that began connecting just before it waits for the connection, then
/// for one answer.
const USERS_GRACE: Duration = CONNECT_TIMEOUT
    .saturating_add(REQUEST_TIMEOUT)
    .saturating_add(Duration::from_secs(5));

/// How long a worker waits for its connections to close after its users
/// returned.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// A worker still running this long after the deadline is killed (it ends
/// by itself within [`USERS_GRACE`] + [`DRAIN_LIMIT`]).
pub const OVERRUN: Duration = USERS_GRACE
    .saturating_add(DRAIN_LIMIT)
    .saturating_add(Duration::from_secs(15));

/// What one worker is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// This worker's number, from 0, and how many there are: it runs user
    /// `u` of `users` for every `u % workers == worker`.
    pub worker: usize,
    pub workers: usize,
    pub users: usize,
    pub nodes: Vec<SocketAddr>,
    pub products: usize,
    pub skus: usize,
    /// The spike's start on the wall clock (every process reads the same).
    pub start: SystemTime,
    pub ramp: Duration,
    pub hold: Duration,
    pub think: Duration,
    /// The customers this worker may lend (no other worker has them).
    pub tokens: Vec<String>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Job {
    pub fn to_json(&self) -> Value {
        let start_us = self
            .start
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64;
        json!({
            "worker": self.worker,
            "workers": self.workers,
            "users": self.users,
            "nodes": self.nodes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "products": self.products,
            "skus": self.skus,
            "start_unix_us": start_us,
            "ramp_ms": ms(self.ramp),
            "hold_ms": ms(self.hold),
            "think_ms": ms(self.think),
            "tokens": self.tokens,
        })
    }

    pub fn from_json(v: &Value) -> anyhow::Result<Job> {
        let strings = |key: &str| -> anyhow::Result<Vec<String>> {
            field(v, key)?
                .as_array()
                .with_context(|| format!("field `{key}` is not an array"))?
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .with_context(|| format!("field `{key}` holds a non-string"))
                })
                .collect()
        };
        let usize_field = |key: &str| u64_field(v, key).map(|n| n as usize);
        let ms_field = |key: &str| u64_field(v, key).map(Duration::from_millis);
        let job = Job {
            worker: usize_field("worker")?,
            workers: usize_field("workers")?,
            users: usize_field("users")?,
            nodes: strings("nodes")?
                .iter()
                .map(|a| a.parse().with_context(|| format!("node address {a}")))
                .collect::<anyhow::Result<_>>()?,
            products: usize_field("products")?,
            skus: usize_field("skus")?,
            start: UNIX_EPOCH + Duration::from_micros(u64_field(v, "start_unix_us")?),
            ramp: ms_field("ramp_ms")?,
            hold: ms_field("hold_ms")?,
            think: ms_field("think_ms")?,
            tokens: strings("tokens")?,
        };
        anyhow::ensure!(
            job.worker < job.workers && !job.nodes.is_empty(),
            "a job needs a worker number below the worker count, and nodes"
        );
        Ok(job)
    }

    /// The spike's start as an [`Instant`] of this process.
    fn start_instant(&self) -> Instant {
        let (now, wall) = (Instant::now(), SystemTime::now());
        match self.start.duration_since(wall) {
            Ok(ahead) => now + ahead,
            Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
        }
    }
}

/// What one worker saw.
pub struct Report {
    pub stats: Stats,
    /// Seconds from the spike's start: answers, latencies, open connections.
    pub timeline: Timeline,
    /// From its users' return until its connections were closed (`None`:
    /// not within [`DRAIN_LIMIT`]).
    pub drained: Option<Duration>,
    /// CPU seconds the worker process used.
    pub cpu_secs: Option<f64>,
}

impl Report {
    pub fn to_json(&self) -> Value {
        json!({
            "stats": stats_json(&self.stats),
            "timeline": timeline_json(&self.timeline),
            "drained_us": self.drained.map(|d| d.as_micros() as u64),
            "cpu_secs": self.cpu_secs,
        })
    }

    pub fn from_json(v: &Value) -> anyhow::Result<Report> {
        Ok(Report {
            stats: read_stats(field(v, "stats")?)?,
            timeline: read_timeline(field(v, "timeline")?)?,
            drained: field(v, "drained_us")?.as_u64().map(Duration::from_micros),
            cpu_secs: field(v, "cpu_secs")?.as_f64(),
        })
    }
}

/// All workers' reports as one.
pub struct Merged {
    pub stats: Stats,
    pub timeline: Timeline,
    /// The slowest worker's drain (`None`: one did not drain, or none reported).
    pub drained: Option<Duration>,
    /// CPU seconds of all workers together.
    pub cpu_secs: f64,
}

/// Merges the reports of the workers of one spike: statistics and
/// timelines add up, the drain is the slowest one.
pub fn merge(reports: &[Report]) -> Merged {
    let mut merged = Merged {
        stats: Stats::default(),
        timeline: Timeline::default(),
        drained: (!reports.is_empty()).then_some(Duration::ZERO),
        cpu_secs: 0.0,
    };
    for r in reports {
        merged.stats.merge(&r.stats);
        merged.timeline.merge(&r.timeline);
        merged.drained = merged.drained.zip(r.drained).map(|(a, b)| a.max(b));
        merged.cpu_secs += r.cpu_secs.unwrap_or(0.0);
    }
    merged
}

/// `ecommerce-bench spike-worker`: reads a [`Job`] from stdin, runs it,
/// prints its [`Report`] on stdout.
pub async fn serve() -> anyhow::Result<()> {
    let mut input = String::new();
    tokio::io::stdin().read_to_string(&mut input).await?;
    let job = Job::from_json(&serde_json::from_str(&input).context("reading the job")?)?;
    let report = run(&job).await;
    let mut out = tokio::io::stdout();
    out.write_all(report.to_json().to_string().as_bytes())
        .await?;
    out.flush().await?;
    Ok(())
}

/// Runs this worker's users to the deadline and its connections to their close.
async fn run(job: &Job) -> Report {
    let start = job.start_instant();
    let deadline = start + job.ramp + job.hold;
    let ctx = Ctx {
        nodes: job.nodes.clone(),
        tokens: Vec::new(),
        customers: Customers::new(job.tokens.clone()),
        open: Arc::new(AtomicI64::new(0)),
        products: job.products,
        skus: job.skus,
    };
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let rec = recorder(start, start, &timeline);
    let plans = (job.worker..job.users)
        .step_by(job.workers)
        .map(|u| {
            let plan = user_plan(&ctx, u, job.users, start, job.ramp, deadline, job.think);
            (u, plan)
        })
        .collect();
    let tasks = spawn_users(&ctx, &rec, plans, super::SPIKE_SEED);
    let open = ctx.open.clone();
    let users = join_sampling(tasks, start, || {
        let at = start.elapsed();
        lock(&timeline).sample_open(at, open.load(Ordering::Relaxed).max(0) as u64);
    });
    // Users end by themselves; this bounds a stuck one (the process exits
    // after the report, and its tasks with it).
    let _ = tokio::time::timeout_at((deadline + USERS_GRACE).into(), users).await;
    let returned = Instant::now();
    let drained = loop {
        if ctx.open.load(Ordering::Relaxed) <= 0 {
            break Some(returned.elapsed());
        }
        if returned.elapsed() > DRAIN_LIMIT {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stats = std::mem::take(&mut *lock(&rec.stats));
    let timeline = std::mem::take(&mut *lock(&timeline));
    Report {
        stats,
        timeline,
        drained,
        cpu_secs: crate::cluster::cpu_secs(std::process::id()),
    }
}

/// Starts one worker per job (this same binary, `spike-worker`), and
/// collects their reports; a worker still running at `kill_at` is killed.
/// Returns the reports, and what went wrong with the others.
pub async fn run_all(jobs: Vec<Job>, kill_at: Instant) -> (Vec<Report>, Vec<String>) {
    let runs = jobs.into_iter().map(|job| async move {
        let k = job.worker;
        one(job, kill_at)
            .await
            .with_context(|| format!("spike worker {k} (its users are not counted)"))
    });
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for outcome in futures::future::join_all(runs).await {
        match outcome {
            Ok(r) => reports.push(r),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    (reports, failures)
}

async fn one(job: Job, kill_at: Instant) -> anyhow::Result<Report> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .arg("spike-worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Dropped at `kill_at` below: SIGKILL.
        .kill_on_drop(true)
        .spawn()
        .context("starting")?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    stdin
        .write_all(job.to_json().to_string().as_bytes())
        .await
        .context("sending the job")?;
    drop(stdin);
    let output = tokio::time::timeout_at(kill_at.into(), child.wait_with_output())
        .await
        .map_err(|_| anyhow::anyhow!("killed: still running {OVERRUN:?} after the deadline"))?
        .context("waiting")?;
    anyhow::ensure!(output.status.success(), "exited with {}", output.status);
    let v: Value = serde_json::from_slice(&output.stdout).context("reading its report")?;
    Report::from_json(&v).context("reading its report")
}

#[cfg(test)]
mod tests {
    use super::{merge, Job, Report};
    use crate::scenarios::conn::Answer;
    use crate::scenarios::stats::Stats;
    use crate::timeline::{Outcome, Timeline};
    use std::time::{Duration, UNIX_EPOCH};

    fn ok() -> Answer {
        Answer::Http {
            status: 200,
            code: None,
            retry_after: false,
        }
    }

    /// A worker's report: `latencies` ms of browse answers, all in second
    /// `second`, with `open` connections sampled then.
    fn report(latencies: &[u64], second: u64, open: u64, drained: Option<u64>) -> Report {
        let ms = Duration::from_millis;
        let mut stats = Stats::default();
        let mut timeline = Timeline::default();
        for &l in latencies {
            stats.record("browse", &ok(), ms(l));
            timeline.record(ms(second * 1000 + 10), Outcome::Ok, ms(l));
        }
        stats.connected_users = latencies.len() as u64;
        stats.last_first_connect = ms(second * 1000);
        timeline.sample_open(ms(second * 1000), open);
        Report {
            stats,
            timeline,
            drained: drained.map(ms),
            cpu_secs: Some(1.5),
        }
    }

    #[test]
    fn reports_add_up() {
        let a = report(&[10, 20, 30], 0, 3, Some(100));
        let b = report(&[40], 2, 1, Some(300));
        let c = report(&[50, 60], 0, 2, Some(200));
        let m = merge(&[a, b, c]);
        let all = m.stats.overall();
        assert_eq!(all.requests(), 6);
        assert_eq!(all.series.ok.max(), m.stats.kinds["browse"].series.ok.max());
        assert!((59_000..=61_000).contains(&all.series.ok.max()));
        assert_eq!(m.stats.connected_users, 6);
        // The last first connection is the latest of any worker.
        assert_eq!(m.stats.last_first_connect, Duration::from_secs(2));
        let b = m.timeline.buckets();
        assert_eq!(b.len(), 3);
        // Seconds line up: second 0 holds workers a and c, second 2 b.
        assert_eq!((b[0].requests, b[0].ok.len(), b[0].open), (5, 5, Some(5)));
        assert_eq!((b[1].requests, b[1].open), (0, None));
        assert_eq!((b[2].requests, b[2].open), (1, Some(1)));
        assert_eq!(m.drained, Some(Duration::from_millis(300)));
        assert!((m.cpu_secs - 4.5).abs() < 1e-9);
    }

    #[test]
    fn one_undrained_worker_leaves_the_drain_unknown() {
        let m = merge(&[report(&[1], 0, 1, Some(5)), report(&[1], 0, 1, None)]);
        assert_eq!(m.drained, None);
        assert_eq!(merge(&[]).drained, None);
        assert_eq!(merge(&[]).stats.overall().requests(), 0);
    }

    #[test]
    fn the_parent_keeps_its_node_samples_and_adds_the_workers() {
        let mut parent = Timeline::default();
        parent.sample_nodes(Duration::ZERO, &[Some(2048), Some(4096)], "ramp");
        let m = merge(&[report(&[10], 0, 4, Some(1)), report(&[20], 0, 6, Some(1))]);
        parent.merge(&m.timeline);
        let csv = parent.csv(2);
        assert_eq!(
            csv.lines().nth(1),
            // p50 and p95 at the 2-digit buckets' highest equivalent values.
            Some("0,ramp,10,2,2,0,0,10.05,20.09,2,4")
        );
    }

    #[test]
    fn reports_and_jobs_cross_the_pipe() {
        let r = report(&[10, 20], 1, 2, Some(7));
        let text = r.to_json().to_string();
        let back = Report::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back.stats.overall().requests(), 2);
        assert_eq!(back.timeline.csv(0), r.timeline.csv(0));
        assert_eq!(back.drained, Some(Duration::from_millis(7)));
        assert_eq!(back.cpu_secs, Some(1.5));

        let job = Job {
            worker: 1,
            workers: 3,
            users: 50_000,
            nodes: vec!["127.0.0.1:4000".parse().unwrap()],
            products: 20_000,
            skus: 2000,
            start: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            ramp: Duration::from_secs(10),
            hold: Duration::from_secs(20),
            think: Duration::from_millis(30_000),
            tokens: vec!["t1".into(), "t2".into()],
        };
        let text = job.to_json().to_string();
        assert_eq!(
            Job::from_json(&serde_json::from_str(&text).unwrap()).unwrap(),
            job
        );
        let bad = Job { worker: 3, ..job }.to_json();
        assert!(Job::from_json(&bad).is_err());
    }
}
