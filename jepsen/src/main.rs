//! `jepsen`: a Jepsen-style consistency suite for the `ecommerce` binary.
//!
//! It starts a real cluster (`cluster`, on `net`), runs concurrent clients
//! (`workload`) that record every operation (`history`) while a nemesis
//! injects faults (`nemesis`), heals, reads the final state through the public
//! API, and hands everything to checkers (`checker`) that share no code with
//! the node. Output goes to `--out`: `history.jsonl`, `report.txt`,
//! `latency.svg`, `report.html`, each node's log. The exit code is 1 when any
//! checker found an anomaly.
//!
//! ```text
//! jepsen run --short                           # CI: ≤ 3 minutes
//! jepsen run --duration 1800 --seed 7 --nemesis all --nodes 5
//! jepsen durability --rounds 20                # kill -9 every node after acknowledged writes
//! ```
//!
//! A timed-out mutation has an unknown outcome (`info`), not a failed one.

mod auth;
mod checker;
mod client;
mod cluster;
mod durability;
mod history;
mod nemesis;
mod net;
mod report;
mod workload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use ecommerce_testkit as testkit;
use tokio::sync::Mutex;

use crate::checker::Report;
use crate::client::{Client, Outcome};
use crate::cluster::{Cluster, TIMING};
use crate::history::Recorder;
use crate::nemesis::{Fault, Nemesis, Schedule};
use crate::net::Net;
use crate::workload::{Ctx, Setup, Workload};

#[derive(Parser)]
#[command(
    name = "jepsen",
    about = "Consistency tests of the ecommerce binary under faults"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum NetMode {
    /// Namespaces when root, else loopback.
    Auto,
    Netns,
    Loopback,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// The node binary (default: `ecommerce` next to this binary).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Cluster size.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    nodes: u64,
    /// Where history, reports and node logs go (default: a new directory
    /// under `$CARGO_TARGET_DIR/jepsen` or `target/jepsen`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Random seed of the fault schedule and the clients' choices (default: time).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = NetMode::Auto)]
    net: NetMode,
    /// Credential scheme (see `auth.rs`).
    #[arg(long, value_enum, default_value_t = auth::Scheme::Bearer)]
    auth: auth::Scheme,
    /// Build a snapshot every N applied entries (small: restarts install snapshots).
    #[arg(long, default_value_t = 200)]
    snapshot_logs: u64,
    /// Clients reach the nodes over HTTPS (certificates from the cluster CA
    /// the run creates); peers use mutual TLS either way.
    #[arg(long)]
    tls: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Workloads under faults, then checkers.
    Run {
        #[command(flatten)]
        common: Common,
        /// CI mode: 3 nodes, ~90 s of faults (kill, pause, partition), every
        /// workload unless `--workload` names some, plus 3 rounds of the
        /// durability test.
        #[arg(long)]
        short: bool,
        /// Seconds of workload under faults.
        #[arg(long, default_value_t = 120)]
        duration: u64,
        /// Faults, comma separated, or `all` / `none`.
        #[arg(long, default_value = "kill,pause,partition")]
        nemesis: String,
        /// Workloads, comma separated (`stock,register,idempotency,coupon`),
        /// or `all` (the default).
        #[arg(long)]
        workload: Option<String>,
        /// Clients per workload.
        #[arg(long, default_value_t = 3)]
        clients: usize,
        /// Quiet seconds between faults (min,max).
        #[arg(long, default_value = "2,6")]
        gap: String,
        /// Seconds a fault lasts (min,max).
        #[arg(long, default_value = "3,10")]
        hold: String,
    },
    /// Re-check the register histories of a recorded `history.jsonl` (to
    /// reproduce a verdict without a cluster).
    Check {
        /// A `history.jsonl` written by `run`.
        history: PathBuf,
    },
    /// kill -9 every node right after acknowledged writes; verify none is lost.
    Durability {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        #[arg(long, default_value_t = 20)]
        batch: usize,
    },
}

fn parse_range(s: &str) -> anyhow::Result<(f64, f64)> {
    let (a, b) = s.split_once(',').context("expected MIN,MAX")?;
    Ok((a.trim().parse()?, b.trim().parse()?))
}

fn parse_list<T: ValueEnum + Clone>(s: &str, all: &[T]) -> anyhow::Result<Vec<T>> {
    match s {
        "all" => Ok(all.to_vec()),
        "none" | "" => Ok(Vec::new()),
        _ => s
            .split(',')
            .map(|x| T::from_str(x.trim(), true).map_err(|e| anyhow::anyhow!(e)))
            .collect(),
    }
}

fn default_out(seed: u64) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    target.join("jepsen").join(format!("{stamp}-seed{seed}"))
}

fn node_bin(common: &Common) -> anyhow::Result<PathBuf> {
    let bin = match &common.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("ecommerce"),
    };
    if !bin.exists() {
        bail!(
            "node binary {} not found (build it with `cargo build --workspace` or pass --bin)",
            bin.display()
        );
    }
    Ok(bin)
}

fn make_net(mode: NetMode, slots: usize) -> anyhow::Result<Net> {
    let root = net::is_root();
    match mode {
        NetMode::Loopback => Net::loopback(slots),
        NetMode::Netns if !root => bail!("--net netns needs root"),
        NetMode::Auto if !root => Net::loopback(slots),
        NetMode::Auto => {
            net::reap_stale();
            Net::namespaces(slots).or_else(|e| {
                eprintln!("note: no network namespaces ({e:#}); falling back to loopback");
                Net::loopback(slots)
            })
        }
        NetMode::Netns => {
            net::reap_stale();
            Net::namespaces(slots)
        }
    }
}

/// Everything a run or durability test starts with.
struct Started {
    cluster: Arc<Mutex<Cluster>>,
    ctx: Ctx,
    http: reqwest::Client,
    out: PathBuf,
}

async fn start(common: &Common, seed: u64, duration: Duration) -> anyhow::Result<Started> {
    let bin = node_bin(common)?;
    let out = common.out.clone().unwrap_or_else(|| default_out(seed));
    std::fs::create_dir_all(&out)?;
    let out = out.canonicalize()?;
    let slots = common.nodes as usize;
    let net = make_net(common.net, slots)?;
    println!("network: {}", net.describe());
    println!("output:  {}", out.display());
    let mut cluster = Cluster::prepare(net, slots, &bin, &out, common.tls, common.snapshot_logs)?;
    // With --tls, clients trust the cluster CA and nothing else.
    let ca = match common.tls {
        true => Some(cluster.kit.certs().reqwest_ca()?),
        false => None,
    };
    let mut http = reqwest::Client::builder().timeout(Duration::from_secs(5));
    if let Some(ca) = &ca {
        http = http
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca.clone());
    }
    let http = http.build()?;
    cluster.form().await?;
    let urls = Arc::new(cluster.urls());
    let client = Client::new(auth::Auth::new(common.auth), Duration::from_secs(5), ca)?;
    let ctx = Ctx {
        client,
        rec: Recorder::new(),
        urls,
        until: Instant::now() + duration,
        seed,
    };
    Ok(Started {
        cluster: Arc::new(Mutex::new(cluster)),
        ctx,
        http,
        out,
    })
}

/// Waits until every slot serves `/cluster`, knows a leader and is a voter.
async fn wait_healthy(s: &Started) -> anyhow::Result<()> {
    let nodes: Vec<_> = s
        .cluster
        .lock()
        .await
        .slots()
        .map(|(_, n)| (n.probe().clone(), n.id()))
        .collect();
    let patient = testkit::Timing {
        timeout: Duration::from_secs(90),
        ..TIMING
    };
    for (probe, id) in nodes {
        probe
            .wait_for("a leader, and the node a voter", patient, |v| {
                v.leader_id.is_some() && v.voters().contains(&id)
            })
            .await?;
    }
    Ok(())
}

/// Samples `/cluster/digest` on every slot until all report one applied index.
async fn convergence(s: &Started) -> Report {
    let urls = s.ctx.urls.clone();
    let mut samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reached = false;
    while Instant::now() < deadline {
        let mut round = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            if let Outcome::Ok { body, .. } =
                s.ctx.client.get_as_operator(url, "/cluster/digest").await
            {
                if let (Some(index), Some(d)) =
                    (body["applied_index"].as_u64(), body["digest"].as_str())
                {
                    round.push((i + 1, index, d.to_string()));
                }
            }
        }
        let all_same = round.len() == urls.len() && round.windows(2).all(|w| w[0].1 == w[1].1);
        samples.push(round);
        if all_same {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    checker::convergence(&samples, reached)
}

/// What `jepsen run` does, after defaults and `--short` are applied.
struct RunSettings {
    duration: u64,
    faults: Vec<Fault>,
    workloads: Vec<Workload>,
    clients: usize,
    schedule: Schedule,
    durability_rounds: usize,
    /// Drop faults the network cannot make instead of refusing to run.
    lenient: bool,
}

async fn run(common: Common, settings: RunSettings) -> anyhow::Result<bool> {
    let RunSettings {
        duration,
        mut faults,
        workloads,
        clients,
        schedule,
        durability_rounds,
        lenient,
    } = settings;
    let seed = common.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1)
    });
    let t0 = Instant::now();
    let s = start(&common, seed, Duration::from_secs(duration)).await?;
    if !s.cluster.lock().await.net.supports_network_faults()
        && faults
            .iter()
            .any(|f| matches!(f, Fault::Partition | Fault::Slow))
    {
        if !lenient {
            bail!("partition/slow faults need network namespaces (run as root)");
        }
        eprintln!("note: no network namespaces: running without partition/slow faults");
        faults.retain(|f| !matches!(f, Fault::Partition | Fault::Slow));
    }
    let setup = Setup::new();
    setup.apply(&s.ctx).await?;
    if workloads.contains(&Workload::Coupon) {
        workload::coupon::setup(&s.ctx).await?;
    }
    // The workload clock starts now.
    let ctx = Ctx {
        until: Instant::now() + Duration::from_secs(duration),
        ..s.ctx.clone()
    };
    println!(
        "seed {seed}: {duration} s of {:?} under {:?}",
        workloads,
        faults.iter().map(|f| f.name()).collect::<Vec<_>>()
    );
    let mut tasks = Vec::new();
    let orders = workload::stock::Orders::default();
    let values = Arc::new(AtomicI64::new(1));
    let coupon = workload::coupon::Current::default();
    for p in 0..clients {
        if workloads.contains(&Workload::Stock) {
            tasks.push(tokio::spawn(workload::stock::run(
                ctx.clone(),
                p,
                orders.clone(),
            )));
        }
        if workloads.contains(&Workload::Register) {
            tasks.push(tokio::spawn(workload::register::run(
                ctx.clone(),
                p,
                setup.register_keys.clone(),
                values.clone(),
            )));
        }
        if workloads.contains(&Workload::Idempotency) {
            tasks.push(tokio::spawn(workload::idempotency::run(ctx.clone(), p)));
        }
        if workloads.contains(&Workload::Coupon) {
            tasks.push(tokio::spawn(workload::coupon::run(
                ctx.clone(),
                p,
                coupon.clone(),
            )));
        }
    }
    let nemesis = Nemesis::new(
        s.cluster.clone(),
        ctx.rec.clone(),
        s.http.clone(),
        faults.clone(),
        schedule,
        seed,
    );
    let nemesis = tokio::spawn(nemesis.run(ctx.until));
    for t in tasks {
        t.await?;
    }
    nemesis.await?;
    println!("workload done; healing and checking");
    s.cluster.lock().await.reap_crashed();
    wait_healthy(&s).await?;

    let mut skus: Vec<String> = setup.initial_stock().keys().cloned().collect();
    skus.sort();
    let (fin, quiescent) = workload::final_state(&ctx, &skus).await?;
    let coupons = if workloads.contains(&Workload::Coupon) {
        let last = coupon.load(std::sync::atomic::Ordering::SeqCst);
        Some(workload::coupon::final_counts(&ctx, last + 1).await?)
    } else {
        None
    };
    let end_ns = ctx.rec.elapsed_ns();
    let events = ctx.rec.events();
    let ops = history::ops(&events);
    let mut reports = Vec::new();
    if workloads.contains(&Workload::Register) {
        reports.push(checker::register::check_registers(
            &ops,
            &setup.initial_registers(),
        ));
    }
    // Every workload's orders hold stock, so the stock checker runs whenever
    // one places orders (its lost/phantom checks cover `js-` customers only).
    if workloads.iter().any(|w| {
        matches!(
            w,
            Workload::Stock | Workload::Idempotency | Workload::Coupon
        )
    }) {
        let mut r = checker::stock::check_stock(
            &ops,
            &setup.initial_stock(),
            workload::CUSTOMER_PREFIX,
            &fin,
        );
        if !quiescent {
            r.note("some orders were still confirmed after 45 s (holds pending)");
        }
        reports.push(r);
    }
    if workloads.contains(&Workload::Idempotency) {
        reports.push(checker::idempotency::check_idempotency(&ops, &fin.orders));
    }
    if let Some((used, orders)) = &coupons {
        reports.push(checker::coupon::check_coupons(
            &ops,
            workload::coupon::LIMIT,
            used,
            orders,
            workload::coupon::CUSTOMER_PREFIX,
        ));
    }
    reports.push(convergence(&s).await);
    if durability_rounds > 0 {
        reports.push(durability::run(&s.ctx, &s.cluster, durability_rounds, 20).await?);
    }
    let mut crashes = Report::new("no node crashed by itself");
    {
        let mut c = s.cluster.lock().await;
        c.reap_crashed();
        for crash in &c.crashes {
            crashes.anomaly(crash.clone());
        }
    }
    reports.push(crashes);

    ctx.rec.write_jsonl(&s.out.join("history.jsonl"))?;
    let header = vec![
        format!("ecommerce consistency run, seed {seed}"),
        format!(
            "nodes {}, {duration} s of workload, faults {:?}, workloads {:?}, {clients} clients each",
            common.nodes,
            faults.iter().map(|f| f.name()).collect::<Vec<_>>(),
            workloads
        ),
        format!("network: {}", s.cluster.lock().await.net.describe()),
        format!("wall time {:.0} s", t0.elapsed().as_secs_f64()),
    ];
    let text = report::text(&header, &ops, &reports, end_ns);
    report::write(&s.out, &text, &report::svg(&ops, end_ns))?;
    println!("{text}");
    println!("output in {}", s.out.display());
    Ok(reports.iter().all(|r| r.valid != Some(false)))
}

async fn durability_only(common: Common, rounds: usize, batch: usize) -> anyhow::Result<bool> {
    let seed = common.seed.unwrap_or(1);
    let s = start(&common, seed, Duration::ZERO).await?;
    Setup::new().apply(&s.ctx).await?;
    let r = durability::run(&s.ctx, &s.cluster, rounds, batch).await?;
    let text = report::text(
        &["durability".to_string()],
        &[],
        std::slice::from_ref(&r),
        0,
    );
    std::fs::write(s.out.join("report.txt"), &text)?;
    println!("{text}");
    Ok(r.valid != Some(false))
}

async fn main_inner(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Cmd::Run {
            mut common,
            short,
            mut duration,
            nemesis,
            workload,
            clients,
            gap,
            hold,
        } => {
            let mut faults = parse_list(&nemesis, Fault::value_variants())?;
            let workloads = parse_list(
                workload.as_deref().unwrap_or("all"),
                Workload::value_variants(),
            )?;
            let mut schedule = Schedule {
                gap: parse_range(&gap)?,
                hold: parse_range(&hold)?,
            };
            let mut rounds = 0;
            if short {
                common.nodes = 3;
                duration = 75;
                faults = vec![Fault::Kill, Fault::Pause, Fault::Partition, Fault::Rekey];
                schedule = Schedule {
                    gap: (2.0, 5.0),
                    hold: (3.0, 8.0),
                };
                rounds = 3;
            }
            if faults.contains(&Fault::Clock)
                && !Path::new("/usr/lib/x86_64-linux-gnu/faketime").exists()
            {
                eprintln!(
                    "note: clock faults need libfaketime (apt-get install faketime); dropping them"
                );
                faults.retain(|f| *f != Fault::Clock);
            }
            let settings = RunSettings {
                duration,
                faults,
                workloads,
                clients,
                schedule,
                durability_rounds: rounds,
                lenient: short,
            };
            run(common, settings).await
        }
        Cmd::Durability {
            common,
            rounds,
            batch,
        } => durability_only(common, rounds, batch).await,
        Cmd::Check { history } => {
            let ops = history::ops(&history::read_jsonl(&history)?);
            let r = checker::register::check_registers(&ops, &Setup::new().initial_registers());
            let end = ops.iter().map(|o| o.invoke_ns).max().unwrap_or(0);
            println!("{}", report::text(&[], &ops, std::slice::from_ref(&r), end));
            Ok(r.valid != Some(false))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jepsen: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = main_inner(cli) => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            _ = term.recv() => bail!("terminated"),
        }
    });
    // Dropping the runtime drops every task, and with them the cluster: nodes
    // are killed and namespaces removed whatever happened above.
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(true) => {
            println!("jepsen: no anomalies");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("jepsen: ANOMALIES FOUND (see the report)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("jepsen: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
