//! The read benchmark: read throughput and latency of one node next to
//! the floor, a minimal axum handler answering "hello" from its own process
//! (`ecommerce-bench hello`, this binary) on the same machine, with the same
//! load generator.
//!
//! Measured on the leader of a 3-node cluster with the catalogue loaded:
//! - product by id, `GET /api/v1/products/{id}`: a stale read (the route's
//!   default), served from the node's own replica;
//! - stock by SKU, `GET /api/v1/inventory/{sku}`: a linearizable read (the
//!   route's default), a read-index round to a quorum before reading.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::api;
use crate::cluster::{Cluster, Usage};
use crate::load::{self, timed, Recorder, Step};
use crate::report;
use crate::{Memory, Plan};

/// What is read.
#[derive(Clone, Copy, PartialEq)]
pub enum Target {
    Hello,
    Product,
    Stock,
}

impl Target {
    const ALL: [Target; 3] = [Target::Hello, Target::Product, Target::Stock];

    pub fn name(self) -> &'static str {
        match self {
            Target::Hello => "axum hello (floor)",
            Target::Product => "product by id (stale)",
            Target::Stock => "stock by SKU (linearizable)",
        }
    }
}

struct Reader {
    http: reqwest::Client,
    base: String,
    target: Target,
    products: usize,
    skus: usize,
    rng: StdRng,
}

impl load::Worker for Reader {
    async fn iteration(&mut self, rec: &mut Recorder) {
        let url = match self.target {
            Target::Hello => format!("{}/hello", self.base),
            Target::Product => {
                let i = self.rng.gen_range(0..self.products);
                format!("{}/api/v1/products/{}", self.base, api::product_id(i))
            }
            Target::Stock => {
                let i = self.rng.gen_range(0..self.skus);
                format!("{}/api/v1/inventory/{}", self.base, api::sku(i))
            }
        };
        timed(rec, "read", self.http.get(url)).await;
    }
}

/// The floor's process; killed on drop.
struct Hello {
    child: Child,
    url: String,
}

impl Hello {
    fn start() -> anyhow::Result<Hello> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("hello")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the hello server")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("hello stdout")?).read_line(&mut line)?;
        let addr = line.trim().to_string();
        anyhow::ensure!(!addr.is_empty(), "the hello server printed no address");
        Ok(Hello {
            child,
            url: format!("http://{addr}"),
        })
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ecommerce-bench hello`: serves `GET /hello` on 127.0.0.1 and a free port,
/// printing the address on the first line of stdout.
pub async fn serve_hello() -> anyhow::Result<()> {
    let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The steps of one target, each with what the processes used during it.
pub struct Series {
    pub target: Target,
    pub steps: Vec<(Step, Usage)>,
}

impl Series {
    /// Reads per second at `clients`, if that step ran.
    pub fn rate_at(&self, clients: usize) -> Option<f64> {
        self.steps
            .iter()
            .find(|(s, _)| s.clients == clients)
            .map(|(s, _)| s.rate("read"))
    }
}

/// Runs every target at every client count: the floor on its own process,
/// product and stock reads on `leader`.
pub async fn measure(
    http: &reqwest::Client,
    cluster: &mut Cluster,
    leader: &str,
    plan: &Plan,
    memory: &mut Memory,
) -> anyhow::Result<Vec<Series>> {
    let hello = Hello::start()?;
    let mut results = Vec::new();
    for target in Target::ALL {
        let base = match target {
            Target::Hello => hello.url.clone(),
            _ => leader.to_string(),
        };
        let mut steps = Vec::new();
        for &clients in &plan.clients {
            let make = |seed: u64| -> Vec<Reader> {
                (0..clients)
                    .map(|c| Reader {
                        http: http.clone(),
                        base: base.clone(),
                        target,
                        products: plan.products,
                        skus: plan.skus,
                        rng: StdRng::seed_from_u64(seed * 1_000_003 + c as u64),
                    })
                    .collect()
            };
            if !plan.warmup.is_zero() {
                load::run(make(2 * clients as u64), plan.warmup).await;
            }
            let ((_, step), usage) = cluster
                .observe(load::run(make(2 * clients as u64 + 1), plan.read_time))
                .await;
            cluster.check_alive()?;
            println!(
                "  {}, {clients} clients: {} reads/s",
                target.name(),
                report::rate(step.rate("read"))
            );
            if target != Target::Hello {
                memory.note(
                    format!("{}, {clients} clients (peak)", target.name()),
                    &usage.rss,
                );
            }
            steps.push((step, usage));
        }
        results.push(Series { target, steps });
    }
    Ok(results)
}

/// Prints every target's figures with its ratio to the floor at the same
/// client count.
pub fn print(plan: &Plan, results: &[Series]) {
    println!(
        "### Reads: {} products, on the leader of 3 nodes, {} s per step after {} s of warm-up, closed loop; latencies in ms",
        plan.products,
        plan.read_time.as_secs(),
        plan.warmup.as_secs()
    );
    println!();
    let floor = results.iter().find(|s| s.target == Target::Hello);
    let mut rows = Vec::new();
    for series in results {
        for (s, usage) in &series.steps {
            let floor = floor.and_then(|f| f.rate_at(s.clients)).unwrap_or(0.0);
            let mut row = vec![
                series.target.name().to_string(),
                s.clients.to_string(),
                report::rate(s.rate("read")),
                report::ratio(s.rate("read"), floor),
            ];
            row.extend(report::percentiles(s.rec.get("read")));
            row.push(s.rec.get("read").map_or("0".into(), |r| r.errors_text()));
            row.push(usage.cores_text());
            rows.push(row);
        }
    }
    report::table(
        &[
            "read",
            "clients",
            "reads/s",
            "/ floor",
            "p50",
            "p95",
            "p99",
            "max",
            "errors",
            "CPU cores (n1/n2/n3/generator)",
        ],
        &rows,
    );
}
