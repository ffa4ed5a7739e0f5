//! The checkout benchmark on our side: checkouts on a 3-node cluster at each
//! client count, and the tables that set them next to PostgreSQL's
//! (`postgres.rs` runs the same transaction through pgbench, on one server
//! and on a primary with synchronous standbys).
//!
//! Each client is one signed-in customer talking to one node (clients are
//! spread over the nodes; followers forward writes to the leader, as any node
//! is a gateway). One iteration is a journey of real REST calls:
//! `POST /api/v1/cart/lines` for two distinct random SKUs, then
//! `POST /api/v1/checkout` with `Authorization: Bearer` and a fresh
//! `Idempotency-Key`, paying with the sandbox card that approves. Reported
//! separately: the checkout call alone, and the whole journey. A journey that
//! fails anywhere empties the cart (untimed) and starts over. The leader's
//! `/metrics` before and after each step say how many Raft log entries,
//! commands and fsyncs the step cost (commands per entry: how well the
//! leader batches proposals; "n/a" from a node that does not count them).

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::api::{self, LogCounters};
use crate::cluster::{Cluster, Usage};
use crate::load::{self, timed, Recorder, Step};
use crate::postgres::Side;
use crate::report;
use crate::{Memory, Plan};

/// One step of ours: the figures, each node's peak RSS during it, and what
/// the leader's Raft log did meanwhile.
pub struct CheckoutStep {
    pub step: Step,
    pub usage: Usage,
    pub log: LogCounters,
}

struct Journey {
    http: reqwest::Client,
    url: String,
    token: String,
    skus: usize,
    rng: StdRng,
    client: usize,
    n: u64,
    checkout_body: Value,
}

impl load::Worker for Journey {
    async fn iteration(&mut self, rec: &mut Recorder) {
        self.n += 1;
        let a = self.rng.gen_range(0..self.skus);
        let b = (a + self.rng.gen_range(1..self.skus)) % self.skus;
        let started = Instant::now();
        let mut ok = true;
        for i in [a, b] {
            let req = self
                .http
                .post(format!("{}/api/v1/cart/lines", self.url))
                .bearer_auth(&self.token)
                .json(&json!({"sku": api::sku(i), "quantity": 1}));
            if timed(rec, "cart", req).await.is_none() {
                ok = false;
                break;
            }
        }
        if ok {
            let req = self
                .http
                .post(format!("{}/api/v1/checkout", self.url))
                .bearer_auth(&self.token)
                .header(
                    "idempotency-key",
                    format!("bench-{}-{}-{}", std::process::id(), self.client, self.n),
                )
                .json(&self.checkout_body);
            ok = timed(rec, "checkout", req).await.is_some();
        }
        if ok {
            rec.ok("journey", started.elapsed());
        } else {
            rec.error("journey", "failed");
            let _ = self
                .http
                .delete(format!("{}/api/v1/cart", self.url))
                .bearer_auth(&self.token)
                .send()
                .await;
        }
    }
}

fn checkout_body() -> Value {
    json!({
        "shipping_address": {
            "name": "Bench Customer", "line1": "1 Load St", "city": "Berlin",
            "postal_code": "10115", "country": "DE"
        },
        "payment": {"token": "tok_visa"}
    })
}

/// Runs the checkout steps on `cluster`, client `c` signed in with
/// `tokens[c]` and talking to node `c % 3`.
pub async fn measure(
    http: &reqwest::Client,
    cluster: &mut Cluster,
    leader: &str,
    tokens: &[String],
    plan: &Plan,
    memory: &mut Memory,
) -> anyhow::Result<Vec<CheckoutStep>> {
    let urls = cluster.urls();
    let mut steps = Vec::new();
    for &clients in &plan.clients {
        let make = |seed: u64| -> Vec<Journey> {
            (0..clients)
                .map(|c| Journey {
                    http: http.clone(),
                    url: urls[c % urls.len()].clone(),
                    token: tokens[c].clone(),
                    skus: plan.skus,
                    rng: StdRng::seed_from_u64(seed * 1_000_003 + c as u64),
                    client: c,
                    n: seed * 1_000_000_000,
                    checkout_body: checkout_body(),
                })
                .collect()
        };
        if !plan.warmup.is_zero() {
            load::run(make(2 * clients as u64), plan.warmup).await;
        }
        let before = LogCounters::read(http, leader).await?;
        let ((_, step), usage) = cluster
            .observe(load::run(make(2 * clients as u64 + 1), plan.checkout_time))
            .await;
        let log = before.delta(LogCounters::read(http, leader).await?);
        cluster.check_alive()?;
        println!(
            "  ours, {clients} clients: {} checkouts/s, peak RSS {} MiB, CPU cores {}",
            report::rate(step.rate("checkout")),
            usage.rss,
            usage.cores_text()
        );
        memory.note(format!("checkout, {clients} clients (peak)"), &usage.rss);
        steps.push(CheckoutStep { step, usage, log });
    }
    Ok(steps)
}

/// Prints ours, PostgreSQL's in each set-up measured, and the ratios, as Markdown.
pub fn print(plan: &Plan, ours: &[CheckoutStep], theirs: &[Side]) {
    println!(
        "### Checkout: {} products, carts of 2 SKUs out of {}, {} s per step after {} s of warm-up, closed loop, fsync on",
        plan.products,
        plan.skus,
        plan.checkout_time.as_secs(),
        plan.warmup.as_secs()
    );
    println!();
    println!("Ours (3 nodes; a journey is 2 cart writes and the checkout; latencies in ms):");
    println!();
    let rows: Vec<Vec<String>> = ours
        .iter()
        .map(|CheckoutStep { step: s, usage, .. }| {
            let mut row = vec![s.clients.to_string(), report::rate(s.rate("checkout"))];
            row.extend(report::percentiles(s.rec.get("checkout")));
            row.extend(report::percentiles(s.rec.get("journey")));
            let errors = ["cart", "checkout"]
                .iter()
                .filter_map(|n| {
                    let e = s.rec.get(n)?;
                    (e.error_count() > 0).then(|| format!("{n}: {}", e.errors_text()))
                })
                .collect::<Vec<_>>();
            row.push(if errors.is_empty() {
                "0".into()
            } else {
                errors.join("; ")
            });
            row.push(usage.rss.to_string());
            row.push(usage.cores_text());
            row
        })
        .collect();
    report::table(
        &[
            "clients",
            "checkouts/s",
            "checkout p50",
            "p95",
            "p99",
            "max",
            "journey p50",
            "p95",
            "p99",
            "max",
            "errors",
            "peak RSS MiB (n1/n2/n3)",
            "CPU cores (n1/n2/n3/generator)",
        ],
        &rows,
    );
    println!("The leader's Raft log during each step (every write is a command: cart lines, checkouts, payment results; an entry may carry several):");
    println!();
    let rows: Vec<Vec<String>> = ours
        .iter()
        .map(|CheckoutStep { step, log, .. }| {
            let secs = step.elapsed.as_secs_f64();
            let checkouts = step.rec.get("checkout").map_or(0, |s| s.ok_count()) as f64;
            vec![
                step.clients.to_string(),
                report::rate(log.applied / secs),
                if checkouts > 0.0 {
                    format!("{:.1}", log.applied / checkouts)
                } else {
                    "-".into()
                },
                report::rate(log.fsyncs / secs),
                if log.fsyncs > 0.0 {
                    format!("{:.1}", log.applied / log.fsyncs)
                } else {
                    "-".into()
                },
                log.commands_per_entry(),
            ]
        })
        .collect();
    report::table(
        &[
            "clients",
            "entries applied/s",
            "entries per checkout",
            "log fsyncs/s",
            "entries per fsync",
            "commands per entry",
        ],
        &rows,
    );
    for pg in theirs {
        println!(
            "{} {} ({}; pgbench -M prepared, one transaction per checkout; ms):",
            pg.setup.label(),
            pg.version,
            pg.setup.describe()
        );
        println!();
        let rows: Vec<Vec<String>> = pg
            .steps
            .iter()
            .map(|p| {
                let h = &p.latency_us;
                let mut row = vec![p.clients.to_string(), report::rate(p.tps)];
                if h.is_empty() {
                    row.extend(vec!["-".to_string(); 4]);
                } else {
                    row.extend([
                        report::ms(h.value_at_quantile(0.50)),
                        report::ms(h.value_at_quantile(0.95)),
                        report::ms(h.value_at_quantile(0.99)),
                        report::ms(h.max()),
                    ]);
                }
                row.push(p.errors.clone());
                row
            })
            .collect();
        report::table(
            &["clients", "tx/s", "p50", "p95", "p99", "max", "errors"],
            &rows,
        );
    }
    if theirs.is_empty() {
        return;
    }
    println!("Ours as a ratio of PostgreSQL's throughput (same run):");
    println!();
    let rows: Vec<Vec<String>> = ours
        .iter()
        .map(|s| {
            let r = s.step.rate("checkout");
            let mut row = vec![s.step.clients.to_string(), report::rate(r)];
            for pg in theirs {
                match pg.steps.iter().find(|p| p.clients == s.step.clients) {
                    Some(p) => row.extend([report::rate(p.tps), report::ratio(r, p.tps)]),
                    None => row.extend(["-".to_string(), "-".to_string()]),
                }
            }
            row
        })
        .collect();
    let mut headers = vec!["clients".to_string(), "ours checkouts/s".to_string()];
    for pg in theirs {
        let label = pg.setup.label();
        headers.extend([format!("{label} tx/s"), format!("ours / {label}")]);
    }
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    report::table(&headers, &rows);
}
