//! Load scenarios: many shoppers at once, each a virtual user with its own
//! keep-alive connection walking a journey with think times (`user.rs`), on a
//! 3-node cluster of their own (fsync on):
//!
//! - **steady**: N users (10,000) ramped up, then measured for a fixed time:
//!   latency per request kind and overall, request rate, error rate, RSS.
//! - **spike**: many connections (50,000) opened within seconds, each user
//!   doing the journey slowly, held briefly, then all dropped at once: did a
//!   node exit, how long did connecting take, what did latency do, and do
//!   the nodes answer afterwards. Its users run in worker processes
//!   (`worker.rs`), as many as one process's open-files limit asks for.
//! - **stress**: closed-loop users without think time in rising steps until
//!   the cluster degrades, refusals (429/503, "shed") counted apart from
//!   errors with their own latency, then a cool-down and a light step to show
//!   whether it recovers.
//!
//! Every scenario stops by itself: its users stop at a deadline, and every
//! request and connection attempt has a timeout (`conn.rs`). Each records a
//! per-second timeline (`timeline.rs`), written as CSV and SVG charts.
//!
//! Why a cluster of their own (not the one `all` loaded for checkout and
//! reads): the scenarios judge RSS against a bound, and the checkout steps
//! leave tens of thousands of orders and grown caches behind; and their nodes
//! start with a cheaper password hash (below) and the raised open-files limit.
//! The three scenarios share that cluster, in order, and each reports the
//! RSS it started from; a scenario after a node exited is skipped.

mod conn;
mod print;
mod stats;
mod user;
mod wire;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use rand::rngs::StdRng;
use rand::SeedableRng;

use self::stats::{lock, Recorder, Stats};
use self::user::Customers;
use crate::cluster::{rss_of, Cluster, Usage};
use crate::figures::Out;
use crate::limits::OpenFiles;
use crate::timeline::Timeline;
use crate::{api, Plan};

pub use self::print::print;
pub use self::worker::serve as serve_spike_worker;

/// Node settings of the scenarios' cluster. The cheapest argon2 cost the
/// node accepts: the scenarios sign in thousands of customers before they
/// measure, and no measured request hashes a password (they carry a bearer
/// token), so this shortens the set-up without changing what is measured.
const SCENARIO_ENV: &[(&str, &str)] = &[
    ("ECOMMERCE_AUTH__ARGON2_MEMORY_KIB", "8192"),
    ("ECOMMERCE_AUTH__ARGON2_ITERATIONS", "1"),
];

/// Descriptors kept for everything but the users' connections: in a
/// generator process the set-up client and stdio, in a node (which
/// inherits the same limit) RocksDB's files, the Raft peers and its log.
const FD_RESERVE: u64 = 1000;

/// Nodes in the scenarios' cluster (users are spread over them evenly).
const NODES: usize = 3;

/// The spike's users' seed (each user's random generator is seeded from it
/// and the user's number, in whichever process the user runs).
const SPIKE_SEED: u64 = 2;

/// How far ahead of now the spike starts, so that its worker processes
/// have started and laid out their users by then.
const WORKER_LEAD: Duration = Duration::from_secs(2);

/// Customers signed in at once while setting up.
const SIGN_IN_CONCURRENCY: usize = 32;

/// A stress step is degraded when at least this share of its requests
/// failed or were refused...
const DEGRADED_FAILURES: f64 = 0.01;
/// ...or its p95 is at least this (a shopper has given up by then).
const DEGRADED_P95: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Which {
    Steady,
    Spike,
    Stress,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::Steady => "steady",
            Which::Spike => "spike",
            Which::Stress => "stress",
        }
    }
}

/// The scenarios' sizes and durations. Unset values take the full run's
/// defaults, or the smoke run's with `--smoke`.
#[derive(Args, Clone)]
pub struct ScenarioArgs {
    /// Scenarios to run [default: steady,spike,stress].
    #[arg(long, value_delimiter = ',', value_enum)]
    scenario: Option<Vec<Which>>,
    /// steady: concurrent users [default: 10000; smoke: 30].
    #[arg(long)]
    users: Option<usize>,
    /// steady: seconds measured after the ramp-up [default: 60; smoke: 3].
    #[arg(long)]
    steady_secs: Option<u64>,
    /// steady: seconds over which the users connect, evenly [default: 20; smoke: 1].
    #[arg(long)]
    ramp_secs: Option<u64>,
    /// steady: mean think time between two requests, in ms (exponential, cut
    /// at 10× the mean; TPC-W's 7 s) [default: 7000; smoke: 100].
    #[arg(long)]
    think_ms: Option<u64>,
    /// spike: connections (= users) opened [default: 50000; smoke: 60].
    #[arg(long)]
    spike_connections: Option<usize>,
    /// spike: seconds over which they connect [default: 10; smoke: 1].
    #[arg(long)]
    spike_ramp_secs: Option<u64>,
    /// spike: seconds held after the ramp before all drop [default: 20; smoke: 2].
    #[arg(long)]
    spike_hold_secs: Option<u64>,
    /// spike: mean think time in ms, a slow journey [default: 30000; smoke: 500].
    #[arg(long)]
    spike_think_ms: Option<u64>,
    /// stress: users per step, no think time; stops after the first degraded
    /// step [default: 16,64,256,1024,4096; smoke: 2,8].
    #[arg(long, value_delimiter = ',')]
    stress_users: Option<Vec<usize>>,
    /// stress: seconds per step, and of the recovery step [default: 10; smoke: 1].
    #[arg(long)]
    stress_step_secs: Option<u64>,
    /// stress: seconds without load before the recovery step [default: 10; smoke: 1].
    #[arg(long)]
    stress_cooldown_secs: Option<u64>,
    /// Customers signed in and lent to users for their carts; at most the
    /// largest user count [default: 5000; smoke: 20].
    #[arg(long)]
    customers: Option<usize>,
}

/// What the scenarios do, resolved from [`ScenarioArgs`].
#[derive(Clone)]
pub struct ScenarioPlan {
    pub which: Vec<Which>,
    pub users: usize,
    pub steady: Duration,
    pub ramp: Duration,
    pub think: Duration,
    pub spike_connections: usize,
    pub spike_ramp: Duration,
    pub spike_hold: Duration,
    pub spike_think: Duration,
    pub stress_users: Vec<usize>,
    pub stress_step: Duration,
    pub stress_cooldown: Duration,
    pub customers: usize,
}

impl ScenarioArgs {
    pub fn plan(self, smoke: bool) -> anyhow::Result<ScenarioPlan> {
        let pick = |full: u64, small: u64| if smoke { small } else { full };
        let secs =
            |v: Option<u64>, full, small| Duration::from_secs(v.unwrap_or(pick(full, small)));
        let ms =
            |v: Option<u64>, full, small| Duration::from_millis(v.unwrap_or(pick(full, small)));
        let which = self
            .scenario
            .unwrap_or_else(|| vec![Which::Steady, Which::Spike, Which::Stress]);
        let plan = ScenarioPlan {
            users: self.users.unwrap_or(pick(10_000, 30) as usize),
            steady: secs(self.steady_secs, 60, 3),
            ramp: secs(self.ramp_secs, 20, 1),
            think: ms(self.think_ms, 7000, 100),
            spike_connections: self.spike_connections.unwrap_or(pick(50_000, 60) as usize),
            spike_ramp: secs(self.spike_ramp_secs, 10, 1),
            spike_hold: secs(self.spike_hold_secs, 20, 2),
            spike_think: ms(self.spike_think_ms, 30_000, 500),
            stress_users: self.stress_users.unwrap_or_else(|| {
                if smoke {
                    vec![2, 8]
                } else {
                    vec![16, 64, 256, 1024, 4096]
                }
            }),
            stress_step: secs(self.stress_step_secs, 10, 1),
            stress_cooldown: secs(self.stress_cooldown_secs, 10, 1),
            customers: self.customers.unwrap_or(pick(5000, 20) as usize),
            which,
        };
        if plan.users == 0 || plan.spike_connections == 0 || plan.customers == 0 {
            bail!("--users, --spike-connections and --customers must be above 0");
        }
        if plan.stress_users.is_empty() || plan.stress_users.contains(&0) {
            bail!("--stress-users needs one or more counts above 0");
        }
        if plan.steady.is_zero() || plan.spike_hold.is_zero() || plan.stress_step.is_zero() {
            bail!("a measured phase needs at least one second");
        }
        Ok(plan)
    }
}

impl ScenarioPlan {
    /// The users the customers pool must serve at most.
    fn most_users(&self) -> usize {
        self.which
            .iter()
            .map(|w| match w {
                Which::Steady => self.users,
                Which::Spike => self.spike_connections,
                Which::Stress => self.stress_users.iter().copied().max().unwrap_or(1),
            })
            .max()
            .unwrap_or(1)
    }

    /// This plan with every user count cut to what `room` allows, saying
    /// so in `notes`.
    fn capped(&self, room: &Room, notes: &mut Vec<String>) -> ScenarioPlan {
        let mut p = self.clone();
        let mut cut = |what: &str, n: &mut usize, (most, why): (usize, &str)| {
            if *n > most {
                notes.push(format!("{what}: {n} asked, cut to {most}: {why}"));
                *n = most;
            }
        };
        if p.which.contains(&Which::Steady) {
            cut("steady users", &mut p.users, room.one_process());
        }
        if p.which.contains(&Which::Spike) {
            cut("spike connections", &mut p.spike_connections, room.spike());
        }
        if p.which.contains(&Which::Stress) {
            for n in &mut p.stress_users {
                cut("stress users", n, room.one_process());
            }
        }
        p
    }
}

/// How many connections fit, from the open-files limit (this process's,
/// which its workers and the nodes inherit) and the local ports.
struct Room {
    /// Connections one process can hold (its limit less [`FD_RESERVE`]).
    per_process: usize,
    /// Local ports per destination: every user connects from 127.0.0.1.
    ports_per_node: usize,
}

impl Room {
    fn new(open_files: u64, ports_per_node: u64) -> Room {
        Room {
            per_process: open_files.saturating_sub(FD_RESERVE) as usize,
            ports_per_node: ports_per_node as usize,
        }
    }

    /// Steady and stress run their users in this process.
    fn one_process(&self) -> (usize, &'static str) {
        let ports = NODES * self.ports_per_node;
        if self.per_process <= ports {
            (self.per_process, "one process may hold only that many connections here (the open-files limit); only the spike spreads its users over processes")
        } else {
            (ports, "the local ports to the 3 nodes allow only that many")
        }
    }

    /// The spike runs its users in as many worker processes as needed; each
    /// node accepts a third of the connections under the same limit, from
    /// the local ports one destination allows.
    fn spike(&self) -> (usize, &'static str) {
        let per_node = self.per_process.min(self.ports_per_node);
        (
            NODES * per_node,
            "each of the 3 nodes may hold only a third of that (its open-files limit, inherited, or the local ports)",
        )
    }

    /// Worker processes for `connections` users.
    fn workers(&self, connections: usize) -> usize {
        connections.div_ceil(self.per_process.max(1)).max(1)
    }
}

/// What the scenarios' set-up took, for the report.
pub struct Setup {
    pub open_files: OpenFiles,
    pub ports_per_node: u64,
    pub loaded: Duration,
    pub customers: usize,
    pub signed_in: Duration,
}

pub struct SteadyResult {
    pub stats: Stats,
    pub usage: Usage,
    pub rss_before: crate::cluster::Rss,
}

pub struct SpikeResult {
    pub stats: Stats,
    pub usage: Usage,
    /// From the users' return until every connection was closed (the
    /// slowest worker's).
    pub drained: Option<Duration>,
    /// From then until every node answered `GET /health` (`None`: some never did).
    pub healthy_after: Option<Duration>,
    pub exited: Vec<String>,
    pub rss_before: crate::cluster::Rss,
    /// Generator processes the users ran in.
    pub workers: usize,
    /// Workers that failed or were killed (their users are not counted).
    pub worker_failures: Vec<String>,
}

pub struct StressStep {
    pub label: String,
    pub stats: Stats,
    pub usage: Usage,
    pub elapsed: Duration,
    pub degraded: bool,
}

pub struct StressResult {
    pub steps: Vec<StressStep>,
    pub recovery: Option<StressStep>,
    pub exited: Vec<String>,
}

/// Everything the scenarios measured.
pub struct Results {
    pub setup: Setup,
    pub steady: Option<SteadyResult>,
    pub spike: Option<SpikeResult>,
    pub stress: Option<StressResult>,
    /// What was run (the plan asked for, with user counts cut to what this
    /// process can connect).
    pub plan: ScenarioPlan,
    /// Counts cut, scenarios not run, and why.
    pub notes: Vec<String>,
    pub files: Vec<PathBuf>,
}

/// What every user of a scenario shares.
struct Ctx {
    nodes: Vec<SocketAddr>,
    /// The customers' tokens, shared out to the spike's workers.
    tokens: Vec<String>,
    customers: Arc<Customers>,
    open: Arc<AtomicI64>,
    products: usize,
    skus: usize,
}

/// Starts the scenarios' cluster, loads it, signs customers in, runs the
/// chosen scenarios in order, and writes their timelines to `out`.
pub async fn measure(
    plan: &Plan,
    sp: &ScenarioPlan,
    open_files: OpenFiles,
    out: &Out,
) -> anyhow::Result<Results> {
    let http = api::client(Duration::from_secs(30))?;
    // Users connect from 127.0.0.1 to the 3 nodes' ports: the kernel needs a
    // free local port per destination, so the ports allow 3 × the range.
    // The descriptors are the tighter bound when the limit could not be
    // raised: every connection is one here (and one on a node).
    let ports_per_node = ephemeral_ports();
    let room = Room::new(open_files.now, ports_per_node);
    let mut notes = Vec::new();
    let sp = &sp.capped(&room, &mut notes);
    for note in &notes {
        println!("NOTE: {note}");
    }
    let mut cluster = Cluster::start(&plan.node_bin, NODES, plan.keep, SCENARIO_ENV).await?;
    let leader = cluster.leader_url().await?;
    let admin = api::admin_token(&http, &leader).await?;
    let loaded = api::load_catalogue(
        &http,
        &leader,
        &admin,
        plan.products,
        plan.skus,
        api::AMPLE_STOCK,
    )
    .await?;
    let customers = sp.customers.min(sp.most_users());
    let started = Instant::now();
    let tokens =
        api::customer_tokens(&http, &cluster.urls(), customers, SIGN_IN_CONCURRENCY).await?;
    let signed_in = started.elapsed();
    println!(
        "scenarios: loaded {} products in {:.1} s, signed in {customers} customers in {:.1} s",
        plan.products,
        loaded.as_secs_f64(),
        signed_in.as_secs_f64()
    );
    let nodes = cluster
        .urls()
        .iter()
        .map(|u| {
            u.trim_start_matches("http://")
                .parse::<SocketAddr>()
                .with_context(|| format!("node address {u}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ctx = Ctx {
        nodes,
        customers: Customers::new(tokens.clone()),
        tokens,
        open: Arc::new(AtomicI64::new(0)),
        products: plan.products,
        skus: plan.skus,
    };
    let mut results = Results {
        setup: Setup {
            open_files,
            ports_per_node,
            loaded,
            customers,
            signed_in,
        },
        steady: None,
        spike: None,
        stress: None,
        plan: sp.clone(),
        notes,
        files: Vec::new(),
    };
    for &which in &sp.which {
        let gone = cluster.exited();
        if !gone.is_empty() {
            results.notes.push(format!(
                "{}: skipped, a node had exited: {}",
                which.name(),
                gone.join("; ")
            ));
            continue;
        }
        settle().await;
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        match which {
            Which::Steady => {
                results.steady = Some(steady(&cluster, &ctx, sp, &timeline).await);
            }
            Which::Spike => {
                results.spike = Some(spike(&mut cluster, &ctx, sp, &timeline, &http, &room).await);
            }
            Which::Stress => {
                results.stress = Some(stress(&mut cluster, &ctx, sp, &timeline).await);
            }
        }
        let t = lock(&timeline);
        results.files.extend(out.timeline(
            which.name(),
            &print::timeline_title(which, sp),
            &t,
            NODES,
        )?);
    }
    Ok(results)
}

/// A pause between scenarios, so background work of the last one (payment
/// authorisations, indexing) does not land in the next.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// The number of local ports `ip_local_port_range` gives per destination.
fn ephemeral_ports() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u64>().ok());
            let (lo, hi) = (it.next()??, it.next()??);
            Some(hi.saturating_sub(lo) + 1)
        })
        .unwrap_or(28_232)
}

/// Runs `plans` as users, each on its own task, sampling the gauges into
/// `rec`'s timeline every second with the phase `phase(elapsed)`; returns
/// what the nodes used meanwhile.
async fn drive(
    cluster: &Cluster,
    ctx: &Ctx,
    rec: &Recorder,
    plans: Vec<user::Plan>,
    seed: u64,
    phase: impl Fn(Duration) -> String,
) -> Usage {
    let tasks = spawn_users(ctx, rec, plans.into_iter().enumerate().collect(), seed);
    let pids = cluster.pids();
    let work = join_sampling(tasks, Instant::now(), || sample(rec, ctx, &pids, &phase));
    let ((), usage) = cluster.observe(work).await;
    usage
}

/// Starts each user of `plans` on its own task; a user's number (its
/// place among all the scenario's users, in whichever process) and `seed`
/// seed its random generator.
fn spawn_users(
    ctx: &Ctx,
    rec: &Recorder,
    plans: Vec<(usize, user::Plan)>,
    seed: u64,
) -> Vec<tokio::task::JoinHandle<()>> {
    plans
        .into_iter()
        .map(|(i, p)| {
            tokio::spawn(user::run(
                p,
                StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(i as u64)),
                ctx.customers.clone(),
                rec.clone(),
                ctx.open.clone(),
            ))
        })
        .collect()
}

/// Waits for every task, calling `sample` every second from `first`.
async fn join_sampling(
    tasks: Vec<tokio::task::JoinHandle<()>>,
    first: Instant,
    mut sample: impl FnMut(),
) {
    let all = futures::future::join_all(tasks);
    tokio::pin!(all);
    let mut tick = tokio::time::interval_at(first.into(), Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = &mut all => break,
            _ = tick.tick() => sample(),
        }
    }
}

fn sample(rec: &Recorder, ctx: &Ctx, pids: &[Option<u32>], phase: &impl Fn(Duration) -> String) {
    let at = rec.start.elapsed();
    let open = ctx.open.load(Ordering::Relaxed).max(0) as u64;
    lock(&rec.timeline).sample(at, open, &rss_of(pids).0, &phase(at));
}

fn recorder(start: Instant, measure_from: Instant, timeline: &Arc<Mutex<Timeline>>) -> Recorder {
    Recorder {
        start,
        measure_from,
        stats: Arc::new(Mutex::new(Stats::default())),
        timeline: timeline.clone(),
    }
}

fn take(rec: &Recorder) -> Stats {
    std::mem::take(&mut *lock(&rec.stats))
}

/// User `u` of `n` starting evenly over `ramp` from `start`.
fn user_plan(
    ctx: &Ctx,
    u: usize,
    n: usize,
    start: Instant,
    ramp: Duration,
    deadline: Instant,
    think: Duration,
) -> user::Plan {
    user::Plan {
        node: ctx.nodes[u % ctx.nodes.len()],
        start_at: start + ramp.mul_f64(u as f64 / n as f64),
        deadline,
        think_mean: think,
        products: ctx.products,
        skus: ctx.skus,
    }
}

async fn steady(
    cluster: &Cluster,
    ctx: &Ctx,
    sp: &ScenarioPlan,
    timeline: &Arc<Mutex<Timeline>>,
) -> SteadyResult {
    let rss_before = cluster.rss();
    let start = Instant::now();
    let measure_from = start + sp.ramp;
    let deadline = measure_from + sp.steady;
    let rec = recorder(start, measure_from, timeline);
    let plans = (0..sp.users)
        .map(|u| user_plan(ctx, u, sp.users, start, sp.ramp, deadline, sp.think))
        .collect();
    let ramp = sp.ramp;
    let users = sp.users;
    let usage = drive(cluster, ctx, &rec, plans, 1, |at| {
        if at < ramp {
            format!("ramp to {users} users")
        } else {
            format!("{users} users")
        }
    })
    .await;
    let stats = take(&rec);
    println!(
        "  steady, {} users: {} requests measured, peak RSS {} MiB",
        sp.users,
        stats.overall().requests(),
        usage.rss
    );
    SteadyResult {
        stats,
        usage,
        rss_before,
    }
}

/// The spike: its users run in [`worker`] processes, as many as one
/// process's open-files limit asks for (one when it suffices); this process
/// samples the nodes meanwhile and merges the workers' reports.
async fn spike(
    cluster: &mut Cluster,
    ctx: &Ctx,
    sp: &ScenarioPlan,
    timeline: &Arc<Mutex<Timeline>>,
    http: &reqwest::Client,
    room: &Room,
) -> SpikeResult {
    let rss_before = cluster.rss();
    let n = sp.spike_connections;
    let workers = room.workers(n);
    let start = Instant::now() + WORKER_LEAD;
    let start_wall = SystemTime::now() + WORKER_LEAD;
    let deadline = start + sp.spike_ramp + sp.spike_hold;
    let jobs = (0..workers)
        .map(|k| worker::Job {
            worker: k,
            workers,
            users: n,
            nodes: ctx.nodes.clone(),
            products: ctx.products,
            skus: ctx.skus,
            start: start_wall,
            ramp: sp.spike_ramp,
            hold: sp.spike_hold,
            think: sp.spike_think,
            tokens: ctx
                .tokens
                .iter()
                .skip(k)
                .step_by(workers)
                .cloned()
                .collect(),
        })
        .collect();
    let (ramp, hold) = (sp.spike_ramp, sp.spike_ramp + sp.spike_hold);
    let phase = |at: Duration| {
        if at < ramp {
            format!("ramp to {n} connections")
        } else if at < hold {
            "hold".to_string()
        } else {
            "drop".to_string()
        }
    };
    let pids = cluster.pids();
    let began = Instant::now();
    let work = async {
        let run = worker::run_all(jobs, deadline + worker::OVERRUN);
        tokio::pin!(run);
        let mut tick = tokio::time::interval_at(start.into(), Duration::from_secs(1));
        loop {
            tokio::select! {
                out = &mut run => break out,
                _ = tick.tick() => {
                    let at = start.elapsed();
                    lock(timeline).sample_nodes(at, &rss_of(&pids).0, &phase(at));
                }
            }
        }
    };
    let ((reports, worker_failures), mut usage) = cluster.observe(work).await;
    let merged = worker::merge(&reports);
    lock(timeline).merge(&merged.timeline);
    // The generator's CPU: this process's (from `observe`) and the workers'.
    if let Some(Some(cores)) = usage.cores.last_mut() {
        *cores += merged.cpu_secs / began.elapsed().as_secs_f64();
    }
    // Every worker has drained (bounded) and exited: now the nodes.
    let healthy_after = all_healthy(http, &cluster.urls(), Duration::from_secs(30)).await;
    let exited = cluster.exited();
    let stats = merged.stats;
    println!(
        "  spike, {n} connections from {workers} worker process(es): {} connected, {} requests, node exits: {}",
        stats.connected_users,
        stats.overall().requests(),
        exited.len()
    );
    SpikeResult {
        stats,
        usage,
        drained: merged.drained,
        healthy_after,
        exited,
        rss_before,
        workers,
        worker_failures,
    }
}

/// How long until every node answered `GET /health` with a 2xx, polling
/// for at most `limit`.
async fn all_healthy(http: &reqwest::Client, urls: &[String], limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut pending: Vec<&String> = urls.iter().collect();
    while started.elapsed() < limit {
        let mut still = Vec::new();
        for url in pending {
            let ok = http
                .get(format!("{url}/health"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !ok {
                still.push(url);
            }
        }
        if still.is_empty() {
            return Some(started.elapsed());
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

async fn stress(
    cluster: &mut Cluster,
    ctx: &Ctx,
    sp: &ScenarioPlan,
    timeline: &Arc<Mutex<Timeline>>,
) -> StressResult {
    let start = Instant::now();
    let mut steps: Vec<StressStep> = Vec::new();
    for (i, &users) in sp.stress_users.iter().enumerate() {
        let step = stress_step(
            cluster,
            ctx,
            sp,
            timeline,
            start,
            users,
            format!("{users} users"),
            10 + i as u64,
        )
        .await;
        let degraded = step.degraded;
        steps.push(step);
        if degraded || !cluster.exited().is_empty() {
            break;
        }
    }
    let exited = cluster.exited();
    if !exited.is_empty() {
        return StressResult {
            steps,
            recovery: None,
            exited,
        };
    }
    // Cool-down: no load, the gauges still sampled.
    let pids = cluster.pids();
    let cool_until = Instant::now() + sp.stress_cooldown;
    while Instant::now() < cool_until {
        let at = start.elapsed();
        let open = ctx.open.load(Ordering::Relaxed).max(0) as u64;
        lock(timeline).sample(at, open, &rss_of(&pids).0, "cool-down");
        tokio::time::sleep(Duration::from_secs(1).min(cool_until - Instant::now())).await;
    }
    let light = sp.stress_users[0];
    let recovery = stress_step(
        cluster,
        ctx,
        sp,
        timeline,
        start,
        light,
        format!("recovery, {light} users"),
        99,
    )
    .await;
    StressResult {
        steps,
        recovery: Some(recovery),
        exited: cluster.exited(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn stress_step(
    cluster: &Cluster,
    ctx: &Ctx,
    sp: &ScenarioPlan,
    timeline: &Arc<Mutex<Timeline>>,
    start: Instant,
    users: usize,
    label: String,
    seed: u64,
) -> StressStep {
    let step_start = Instant::now();
    let deadline = step_start + sp.stress_step;
    let rec = recorder(start, step_start, timeline);
    let plans = (0..users)
        .map(|u| {
            user_plan(
                ctx,
                u,
                users,
                step_start,
                Duration::ZERO,
                deadline,
                Duration::ZERO,
            )
        })
        .collect();
    let phase = label.clone();
    let usage = drive(cluster, ctx, &rec, plans, seed, |_| phase.clone()).await;
    let elapsed = step_start.elapsed();
    let stats = take(&rec);
    let all = stats.overall();
    let failed = all.series.error_count() + all.shed_count();
    let share = failed as f64 / all.requests().max(1) as f64;
    let p95 = (all.series.ok_count() > 0).then(|| Duration::from_micros(all.series.at(0.95)));
    let degraded = share >= DEGRADED_FAILURES || p95.is_none_or(|p| p >= DEGRADED_P95);
    println!(
        "  stress, {label}: {} answered/s, {:.1} % failed or shed{}",
        crate::report::rate(all.requests() as f64 / elapsed.as_secs_f64()),
        share * 100.0,
        if degraded { ", degraded" } else { "" }
    );
    StressStep {
        label,
        stats,
        usage,
        elapsed,
        degraded,
    }
}
