//! What the benchmarks need of the node's REST API before they measure:
//! an admin (made with the operator token, as `jepsen/src/auth.rs` does),
//! signed-in customers, and a catalogue with stock. Request bodies follow
//! `src/api/{users,catalog,inventory}.rs`; nothing here is timed.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

/// The operator token the benchmark's nodes start with.
pub const OPERATOR_TOKEN: &str = "bench-operator-token-0123456789abcdef0123";

/// The one warehouse that holds all stock.
pub const WAREHOUSE: &str = "w1";

/// Products per `POST /api/v1/catalog/import` (the node's maximum).
const IMPORT_BATCH: usize = 500;

/// Stock writes in flight while loading.
const LOAD_CONCURRENCY: usize = 64;

/// A keep-alive client for the measured requests; `timeout` bounds one request.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()?)
}

/// The SKU of product `i` (each product has one variant).
pub fn sku(i: usize) -> String {
    format!("SKU-{i}")
}

/// The id of product `i`.
pub fn product_id(i: usize) -> String {
    format!("p{i}")
}

/// Sends `req` and returns the JSON body of a 2xx answer, or an error naming `what`.
async fn send(req: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let reply = req.send().await.with_context(|| what.to_string())?;
    let status = reply.status();
    let body = reply.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{what}: {status} {body}");
    }
    Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The leader's Raft log counters (from `GET /metrics`), to say how many
/// log entries, commands and fsyncs a step cost.
#[derive(Clone, Copy, Default)]
pub struct LogCounters {
    /// `raft_applied_entries_total`.
    pub applied: f64,
    /// `raft_applied_commands_total`: the leader batches proposals, so one
    /// entry may carry many commands. `None` when the node does not export
    /// it (binaries from before the batching).
    pub commands: Option<f64>,
    /// `raft_log_fsyncs_total`.
    pub fsyncs: f64,
}

impl LogCounters {
    /// Reads the counters of the node at `base`.
    pub async fn read(http: &reqwest::Client, base: &str) -> anyhow::Result<LogCounters> {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(LogCounters::parse(&text))
    }

    /// The counters in a Prometheus text page (`name{labels} value` or
    /// `name value`, summed over labels; absent counters are 0, except the
    /// commands counter, which is `None` when absent).
    pub fn parse(text: &str) -> LogCounters {
        let sum = |name: &str| -> Option<f64> {
            text.lines()
                .filter(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with([' ', '{']))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .fold(None, |acc, v| Some(acc.unwrap_or(0.0) + v))
        };
        LogCounters {
            applied: sum("raft_applied_entries_total").unwrap_or(0.0),
            commands: sum("raft_applied_commands_total"),
            fsyncs: sum("raft_log_fsyncs_total").unwrap_or(0.0),
        }
    }

    /// What happened between `self` (before) and `after`.
    pub fn delta(self, after: LogCounters) -> LogCounters {
        LogCounters {
            applied: after.applied - self.applied,
            commands: after.commands.zip(self.commands).map(|(a, b)| a - b),
            fsyncs: after.fsyncs - self.fsyncs,
        }
    }

    /// Commands per applied entry, "n/a" when the node does not export the
    /// commands counter, "-" when nothing was applied.
    pub fn commands_per_entry(&self) -> String {
        match self.commands {
            None => "n/a".into(),
            Some(_) if self.applied <= 0.0 => "-".into(),
            Some(c) => format!("{:.1}", c / self.applied),
        }
    }
}

/// Logs in and returns the access token; a refused login is retried for a few
/// seconds (the account may not have reached this node's replica yet).
async fn login(http: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = send(
            http.post(format!("{base}/auth/login"))
                .json(&json!({"email": email, "password": password(email)})),
            "POST /auth/login",
        )
        .await;
        match body {
            Ok(body) => {
                return body["access_token"]
                    .as_str()
                    .map(str::to_string)
                    .context("no access_token in the login response")
            }
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The bench's password of account `email`.
pub fn password(email: &str) -> String {
    format!("bench-password-{email}")
}

/// Creates the admin through `base` with the operator token and signs it in.
pub async fn admin_token(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let email = "admin@bench.invalid";
    send(
        http.post(format!("{base}/api/v1/users"))
            .header("x-operator-token", OPERATOR_TOKEN)
            .json(&json!({
                "email": email, "password": password(email), "name": "bench admin", "role": "admin"
            })),
        "POST /api/v1/users (admin)",
    )
    .await?;
    login(http, base, email).await
}

/// The e-mail address of bench customer `i`.
pub fn customer_email(i: usize) -> String {
    format!("customer{i}@bench.invalid")
}

/// Registers customers `0..n` and signs each in on `urls[i % urls.len()]`
/// (the node its benchmark client will talk to), `concurrency` at a time;
/// returns their tokens.
pub async fn customer_tokens(
    http: &reqwest::Client,
    urls: &[String],
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    futures::stream::iter(0..n)
        .map(|i| async move {
            let base = &urls[i % urls.len()];
            let email = customer_email(i);
            send(
                http.post(format!("{base}/auth/register")).json(&json!({
                    "email": email, "password": password(&email), "name": format!("Customer {i}")
                })),
                "POST /auth/register",
            )
            .await?;
            login(http, base, &email).await
        })
        // Password hashing (argon2) is the cost here, on 2 cores.
        .buffered(concurrency)
        .try_collect()
        .await
}

/// Loads `products` products of one variant each (`p{i}` / `SKU-{i}`) through
/// bulk import, and gives the first `stocked` SKUs `on_hand` units each in
/// [`WAREHOUSE`]. Returns how long it took.
/// Units on hand per stocked SKU: enough that no benchmark runs out.
pub const AMPLE_STOCK: u64 = 1_000_000_000;

pub async fn load_catalogue(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    products: usize,
    stocked: usize,
    on_hand: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    send(
        http.put(format!("{base}/api/v1/warehouses/{WAREHOUSE}"))
            .bearer_auth(admin)
            .json(&json!({"name": "Main", "location": {"lat": 52.5, "lon": 13.4}})),
        "PUT /api/v1/warehouses",
    )
    .await?;
    for (batch, from) in (0..products).step_by(IMPORT_BATCH).enumerate() {
        let items: Vec<Value> = (from..(from + IMPORT_BATCH).min(products))
            .map(|i| {
                json!({
                    "id": product_id(i),
                    "name": format!("Bench product {i}"),
                    "description": "A product of the benchmark catalogue.",
                    "variants": [{
                        "sku": sku(i),
                        "price": {"amount": 1000 + (i % 9000) as i64, "currency": "EUR"},
                        "weight_grams": 300
                    }]
                })
            })
            .collect();
        let report = send(
            http.post(format!("{base}/api/v1/catalog/import"))
                .bearer_auth(admin)
                .header("idempotency-key", format!("bench-import-{batch}"))
                .json(&json!({ "products": items })),
            "POST /api/v1/catalog/import",
        )
        .await?;
        if report["refused"].as_u64() != Some(0) {
            bail!("catalogue import refused products: {report}");
        }
    }
    futures::stream::iter(0..stocked.min(products))
        .map(|i| {
            send(
                http.put(format!(
                    "{base}/api/v1/inventory/{}/warehouses/{WAREHOUSE}",
                    sku(i)
                ))
                .bearer_auth(admin)
                .json(&json!({ "on_hand": on_hand })),
                "PUT /api/v1/inventory/{sku}/warehouses/w1",
            )
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .try_for_each(|_| async { Ok(()) })
        .await?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::LogCounters;

    #[test]
    fn log_counters_sum_over_labels_and_ignore_lookalikes() {
        let page = "# TYPE raft_applied_entries_total counter\n\
                    raft_applied_entries_total 120\n\
                    raft_applied_entries_total_extra 7\n\
                    raft_log_fsyncs_total{disk=\"a\"} 3\n\
                    raft_log_fsyncs_total{disk=\"b\"} 4.5\n";
        let c = LogCounters::parse(page);
        assert_eq!(c.applied, 120.0);
        assert_eq!(c.fsyncs, 7.5);
        assert_eq!(LogCounters::parse("").applied, 0.0);
    }

    #[test]
    fn commands_per_entry_is_na_without_the_counter() {
        let old = "raft_applied_entries_total 10\nraft_log_fsyncs_total 10\n";
        let (a, b) = (LogCounters::parse(old), LogCounters::parse(old));
        assert_eq!(a.commands, None);
        assert_eq!(a.delta(b).commands_per_entry(), "n/a");

        let before =
            LogCounters::parse("raft_applied_entries_total 10\nraft_applied_commands_total 30\n");
        let after = LogCounters::parse(
            "raft_applied_entries_total 110\n# HELP raft_applied_commands_total x\n\
             raft_applied_commands_total 280\n",
        );
        let d = before.delta(after);
        assert_eq!(d.commands, Some(250.0));
        assert_eq!(d.commands_per_entry(), "2.5");
        // A counter that appears only after the step (a restarted node) is not a delta.
        assert_eq!(LogCounters::parse(old).delta(after).commands, None);
        let idle = LogCounters::parse("raft_applied_commands_total 0\n");
        assert_eq!(idle.delta(idle).commands_per_entry(), "-");
    }
}
