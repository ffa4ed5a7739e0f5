//! `ecommerce-bench`: benchmarks of the shipped `ecommerce` binary. Each
//! command starts what it measures (node processes in temp dirs, a local
//! PostgreSQL, a hello server), measures with one closed-loop HTTP load
//! generator (`load`), and prints Markdown tables plus the command that
//! reproduces them. Not tests: nothing here asserts a speed.
//!
//! ```text
//! ecommerce-bench all                       # checkout, PostgreSQL, reads, memory, scenarios
//! ecommerce-bench checkout                  # 3 nodes vs PostgreSQL (one server, and
//!                                           #   a primary with 2 sync standbys), 1/16/64/256 clients
//! ecommerce-bench reads                     # product and stock reads vs an axum floor
//! ecommerce-bench scenarios                 # steady, spike and stress load of many users
//! ecommerce-bench all --smoke               # a seconds-long run with tiny sizes (CI)
//! ```
//!
//! This file holds the command line and the order of a run: one cluster is
//! started and loaded once, measured, and stopped; the load scenarios then
//! start a cluster of their own (`scenarios/mod.rs` says why), and
//! PostgreSQL runs last, so each side has the machine to itself. It talks to
//! nodes only over HTTP, like `jepsen/`, and depends on none of the node's
//! crates. The spike's users run in child processes of this same binary
//! (hidden `spike-worker`, `scenarios/worker.rs`): one process may not hold
//! 50,000 connections.

mod api;
mod checkout;
mod cluster;
mod figures;
mod limits;
mod load;
mod login;
mod plot;
mod postgres;
mod reads;
mod report;
mod scenarios;
mod timeline;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

use crate::cluster::{Cluster, Rss};
use crate::figures::Out;
use crate::limits::OpenFiles;
use crate::scenarios::ScenarioArgs;

#[derive(Parser)]
#[command(
    name = "ecommerce-bench",
    about = "Benchmarks of the ecommerce binary (figures, not assertions)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Checkout, reads and memory on one loaded cluster, the load scenarios
    /// on another, and the checkout's transaction on PostgreSQL.
    All(AllArgs),
    /// Checkout on a 3-node cluster, and the same transaction on PostgreSQL.
    Checkout(PlanArgs),
    /// Product (stale) and stock (linearizable) reads against an axum floor.
    Reads(PlanArgs),
    /// Load scenarios of many users with think times: steady, spike, stress.
    Scenarios(ScenariosArgs),
    /// The floor's server (started by `reads`): prints its address, serves `GET /hello`.
    #[command(hide = true)]
    Hello,
    /// A generator process of the spike (started by it): reads its job as
    /// JSON on stdin, runs its users, prints its report as JSON on stdout.
    #[command(hide = true)]
    SpikeWorker,
}

/// What every measuring command takes.
#[derive(Args)]
struct CommonArgs {
    /// The node binary [default: `ecommerce` next to this binary, else
    /// `$CARGO_TARGET_DIR/release/ecommerce`, else `target/release/ecommerce`].
    /// Measure a release build.
    #[arg(long, env = "ECOMMERCE_BENCH_NODE_BIN")]
    node_bin: Option<PathBuf>,
    /// A seconds-long run with tiny sizes (for CI; the figures mean nothing).
    #[arg(long)]
    smoke: bool,
    /// Products in the catalogue, one SKU each [default: 100000; smoke: 200].
    #[arg(long)]
    products: Option<usize>,
    /// SKUs given stock; carts and stock reads pick from these [default: 10000; smoke: 50].
    #[arg(long)]
    skus: Option<usize>,
    /// Keep the nodes' data directories and logs (the path is printed).
    #[arg(long)]
    keep: bool,
    /// Directory for the charts (SVG) and their data (CSV) [default: a new
    /// temp dir, printed].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct AllArgs {
    #[command(flatten)]
    plan: PlanArgs,
    #[command(flatten)]
    scenarios: ScenarioArgs,
    /// Skip the load scenarios.
    #[arg(long)]
    no_scenarios: bool,
}

#[derive(Args)]
struct ScenariosArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    scenarios: ScenarioArgs,
}

/// Sizes and durations. Unset values take the full run's defaults, or the
/// smoke run's with `--smoke`.
#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Concurrent clients, one step each [default: 1,16,64,256; smoke: 1,4].
    #[arg(long, value_delimiter = ',')]
    clients: Option<Vec<usize>>,
    /// Seconds measured per checkout step [default: 20; smoke: 2].
    #[arg(long)]
    checkout_secs: Option<u64>,
    /// Seconds measured per read step [default: 10; smoke: 1].
    #[arg(long)]
    read_secs: Option<u64>,
    /// Seconds of the login step (the largest client count, after the
    /// checkout) [default: 10; smoke: 1].
    #[arg(long)]
    login_secs: Option<u64>,
    /// Seconds of unmeasured load before each step [default: 3; smoke: 0].
    #[arg(long)]
    warmup_secs: Option<u64>,
    /// The PostgreSQL set-ups the checkout is compared with, each run in
    /// turn after ours: `single` (one server) and `replicated` (a primary
    /// and two streaming standbys, synchronous commit to a quorum, like our
    /// three nodes) [default: both].
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        conflicts_with = "no_postgres"
    )]
    postgres: Option<Vec<postgres::Setup>>,
    /// Skip the PostgreSQL side of the checkout benchmark.
    #[arg(long)]
    no_postgres: bool,
}

impl PlanArgs {
    /// Only the common part given: every step setting at its default.
    fn from_common(common: CommonArgs) -> PlanArgs {
        PlanArgs {
            common,
            clients: None,
            checkout_secs: None,
            read_secs: None,
            login_secs: None,
            warmup_secs: None,
            postgres: None,
            no_postgres: true,
        }
    }
}

/// What a run measures, resolved from [`PlanArgs`].
pub struct Plan {
    pub node_bin: PathBuf,
    pub smoke: bool,
    pub clients: Vec<usize>,
    pub checkout_time: Duration,
    /// Duration of the login step.
    pub login_time: Duration,
    pub read_time: Duration,
    pub warmup: Duration,
    pub products: usize,
    pub skus: usize,
    /// The PostgreSQL set-ups to compare with, in order; none with `--no-postgres`.
    pub postgres: Vec<postgres::Setup>,
    pub keep: bool,
    pub out: Out,
}

impl PlanArgs {
    fn plan(self) -> anyhow::Result<Plan> {
        let smoke = self.common.smoke;
        let pick = |full: u64, small: u64| if smoke { small } else { full };
        let secs =
            |v: Option<u64>, full, small| Duration::from_secs(v.unwrap_or(pick(full, small)));
        let plan = Plan {
            node_bin: node_bin(self.common.node_bin)?,
            smoke,
            clients: self.clients.unwrap_or_else(|| {
                if smoke {
                    vec![1, 4]
                } else {
                    vec![1, 16, 64, 256]
                }
            }),
            checkout_time: secs(self.checkout_secs, 20, 2),
            read_time: secs(self.read_secs, 10, 1),
            login_time: secs(self.login_secs, 10, 1),
            warmup: secs(self.warmup_secs, 3, 0),
            products: self.common.products.unwrap_or(pick(100_000, 200) as usize),
            skus: self.common.skus.unwrap_or(pick(10_000, 50) as usize),
            postgres: if self.no_postgres {
                Vec::new()
            } else {
                let given = self
                    .postgres
                    .unwrap_or_else(|| vec![postgres::Setup::Single, postgres::Setup::Replicated]);
                let mut setups = Vec::new();
                for setup in given {
                    if !setups.contains(&setup) {
                        setups.push(setup);
                    }
                }
                setups
            },
            keep: self.common.keep,
            out: Out::resolve(self.common.out)?,
        };
        if plan.clients.is_empty() || plan.clients.contains(&0) {
            bail!("--clients needs one or more counts above 0");
        }
        if plan.skus < 2 || plan.skus > plan.products {
            bail!("--skus must be at least 2 (a cart holds two SKUs) and at most --products");
        }
        if plan.checkout_time.is_zero() || plan.read_time.is_zero() {
            bail!("a measured step needs at least one second");
        }
        Ok(plan)
    }
}

fn node_bin(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match flag {
        Some(b) => b,
        None => {
            let beside = std::env::current_exe()?.with_file_name("ecommerce");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| PathBuf::from("target"), PathBuf::from)
                .join("release/ecommerce");
            if beside.exists() {
                beside
            } else {
                target
            }
        }
    };
    if !bin.exists() {
        bail!(
            "node binary {} not found (build it with `cargo build --release --bin ecommerce` or pass --node-bin)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Which parts of a run to do.
#[derive(Clone, Copy, PartialEq)]
enum Parts {
    All,
    Checkout,
    Reads,
    Scenarios,
}

/// RSS of the nodes at the points of a run, for the memory table.
pub struct Memory(Vec<(String, Rss)>);

impl Memory {
    pub fn note(&mut self, what: impl Into<String>, rss: &Rss) {
        self.0.push((what.into(), rss.clone()));
    }
}

async fn run(
    parts: Parts,
    plan: &Plan,
    scenario_plan: Option<&scenarios::ScenarioPlan>,
    open_files: OpenFiles,
) -> anyhow::Result<()> {
    report::header(plan);
    if parts == Parts::Scenarios {
        let sp = scenario_plan.expect("the scenarios command has a scenario plan");
        let results = scenarios::measure(plan, sp, open_files, &plan.out).await?;
        println!();
        scenarios::print(plan, &results);
        return Ok(());
    }
    let http = api::client(Duration::from_secs(30))?;
    let mut memory = Memory(Vec::new());
    let mut cluster = Cluster::start(&plan.node_bin, 3, plan.keep, &[]).await?;
    memory.note("started, empty", &cluster.rss());
    let leader = cluster.leader_url().await?;
    let admin = api::admin_token(&http, &leader).await?;
    let (took, usage) = cluster
        .observe(api::load_catalogue(
            &http,
            &leader,
            &admin,
            plan.products,
            plan.skus,
            api::AMPLE_STOCK,
        ))
        .await;
    let took = took?;
    memory.note(
        format!(
            "loading {} products, stock for {} SKUs (peak)",
            plan.products, plan.skus
        ),
        &usage.rss,
    );
    println!(
        "loaded {} products (stock for {} SKUs) in {:.1} s",
        plan.products,
        plan.skus,
        took.as_secs_f64()
    );
    settle().await;
    memory.note("loaded, at rest", &cluster.rss());

    let ours = if parts != Parts::Reads {
        let max_clients = plan.clients.iter().copied().max().unwrap_or(1);
        let started = Instant::now();
        let tokens = api::customer_tokens(&http, &cluster.urls(), max_clients, 8).await?;
        println!(
            "registered and signed in {max_clients} customers in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let steps =
            checkout::measure(&http, &mut cluster, &leader, &tokens, plan, &mut memory).await?;
        if !plan.login_time.is_zero() {
            let step = login::measure(&http, &cluster.urls(), max_clients, plan.login_time).await;
            let series = step.rec.get("login");
            println!(
                "  ours, {max_clients} clients: {} logins/s, p50 {} ms, p99 {} ms, errors {}",
                report::rate(step.rate("login")),
                series.map_or(0.0, |s| s.at(0.5) as f64 / 1000.0),
                series.map_or(0.0, |s| s.at(0.99) as f64 / 1000.0),
                series.map_or_else(|| "0".into(), |s| s.errors_text()),
            );
        }
        Some(steps)
    } else {
        None
    };
    let read_steps = if parts != Parts::Checkout {
        Some(reads::measure(&http, &mut cluster, &leader, plan, &mut memory).await?)
    } else {
        None
    };
    settle().await;
    memory.note("after the runs, at rest", &cluster.rss());
    // Our nodes stop before the scenarios' and PostgreSQL start: each gets
    // the machine alone.
    drop(cluster);

    let scenario_results = match scenario_plan {
        Some(sp) => Some(scenarios::measure(plan, sp, open_files, &plan.out).await?),
        None => None,
    };
    let theirs = match &ours {
        Some(_) => postgres_sides(plan)?,
        None => Vec::new(),
    };
    println!();
    if let Some(ours) = &ours {
        checkout::print(plan, ours, &theirs);
    }
    if let Some(steps) = &read_steps {
        reads::print(plan, steps);
    }
    report::memory(&memory.0);
    report::goals(ours.as_deref(), &theirs, read_steps.as_deref());
    let files = plan.out.clients(ours.as_deref(), read_steps.as_deref())?;
    if !files.is_empty() {
        println!("Throughput and latency against clients (SVG) and their data (CSV):");
        println!();
        for f in &files {
            println!("- {}", f.display());
        }
        println!();
    }
    if let Some(results) = &scenario_results {
        scenarios::print(plan, results);
    }
    Ok(())
}

/// A pause so "at rest" figures come after background work (indexing,
/// payment authorisation) has had time to finish.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// PostgreSQL's figures in each of the plan's set-ups, one after the other
/// (each stopped and removed before the next starts), or none with a printed
/// note when it cannot be installed here (only then: a failure to run it is
/// an error).
fn postgres_sides(plan: &Plan) -> anyhow::Result<Vec<postgres::Side>> {
    if plan.postgres.is_empty() {
        return Ok(Vec::new());
    }
    let bin = match postgres::ensure_installed() {
        Ok(bin) => bin,
        Err(e) => {
            println!("NOTE: PostgreSQL side skipped: {e:#}");
            return Ok(Vec::new());
        }
    };
    plan.postgres
        .iter()
        .map(|&setup| {
            let started = Instant::now();
            let side = postgres::measure(&bin, plan, setup)?;
            println!(
                "  {} set up, measured and removed in {:.1} s",
                setup.label(),
                started.elapsed().as_secs_f64()
            );
            Ok(side)
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Before any node is spawned, so that they inherit it.
    let open_files = limits::raise_open_files(limits::WANTED);
    match cli.command {
        Cmd::All(args) => {
            let plan = args.plan.plan()?;
            let sp = if args.no_scenarios {
                None
            } else {
                Some(args.scenarios.plan(plan.smoke)?)
            };
            run(Parts::All, &plan, sp.as_ref(), open_files).await
        }
        Cmd::Checkout(args) => run(Parts::Checkout, &args.plan()?, None, open_files).await,
        Cmd::Reads(args) => run(Parts::Reads, &args.plan()?, None, open_files).await,
        Cmd::Scenarios(args) => {
            let plan = PlanArgs::from_common(args.common).plan()?;
            let sp = args.scenarios.plan(plan.smoke)?;
            run(Parts::Scenarios, &plan, Some(&sp), open_files).await
        }
        Cmd::Hello => reads::serve_hello().await,
        Cmd::SpikeWorker => scenarios::serve_spike_worker().await,
    }
}
