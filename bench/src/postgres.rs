//! The PostgreSQL side of the checkout comparison: a throw-away server the
//! benchmark installs (Debian's `postgresql`, when missing and we are root),
//! initialises in a temp dir and starts on 127.0.0.1 and a free port, with
//! durability as shipped (`fsync=on`, `synchronous_commit=on`), then drives
//! with `pgbench` and a custom script. Started the way
//! `tests/bench/search.rs` starts its PostgreSQL (as the `postgres` user when
//! run as root: initdb refuses root), but with fsync on: this is a write
//! benchmark. Two set-ups ([`Setup`]): that one server, and a primary with
//! two synchronous streaming standbys built from the same pieces
//! (`postgres/replicated.rs`); pgbench runs against the server or the primary.
//!
//! The transaction is the checkout of two SKUs: guarded stock decrements
//! (`UPDATE stock SET qty = qty - 1 WHERE sku = $s AND qty >= 1`, in SKU
//! order so two checkouts never deadlock), reading the prices, an order row
//! with a unique idempotency key, two order lines, one commit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use crate::report;
use crate::Plan;
use ecommerce_testkit::free_port;

mod replicated;

use replicated::Replicated;

/// The checkout transaction as a pgbench script; `{last}` (the highest SKU
/// number a cart picks) is replaced.
const CHECKOUT_SQL: &str = r#"\set a random(0, {last})
\set b random(0, {last} - 1)
\set b case when :b >= :a then :b + 1 else :b end
\set lo least(:a, :b)
\set hi greatest(:a, :b)
\set key random(1, 9000000000000000000)
BEGIN;
UPDATE stock SET qty = qty - 1 WHERE sku = 'SKU-' || :lo::text AND qty >= 1 RETURNING price AS p1 \gset
UPDATE stock SET qty = qty - 1 WHERE sku = 'SKU-' || :hi::text AND qty >= 1 RETURNING price AS p2 \gset
\set total :p1 + :p2
INSERT INTO orders (customer_id, idempotency_key, total, status) VALUES (:client_id, :client_id::text || '-' || :key::text, :total, 'pending_payment') RETURNING id AS order_id \gset
INSERT INTO order_lines (order_id, line, sku, qty, unit_price) VALUES (:order_id, 1, 'SKU-' || :lo::text, 1, :p1), (:order_id, 2, 'SKU-' || :hi::text, 1, :p2);
COMMIT;
"#;

const SCHEMA_SQL: &str = "
CREATE TABLE stock (
    sku text PRIMARY KEY,
    price bigint NOT NULL,
    qty bigint NOT NULL CHECK (qty >= 0)
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id integer NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    total bigint NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE order_lines (
    order_id bigint NOT NULL REFERENCES orders (id),
    line integer NOT NULL,
    sku text NOT NULL REFERENCES stock (sku),
    qty integer NOT NULL,
    unit_price bigint NOT NULL,
    PRIMARY KEY (order_id, line)
);
";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The newest installed `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pgbench").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The server's binaries, after installing Debian's `postgresql` if no
/// server is installed (as root; `apt-get update` first when the package
/// lists are too old to install it).
pub fn ensure_installed() -> anyhow::Result<PathBuf> {
    if let Some(bin) = bin_dir() {
        return Ok(bin);
    }
    if !is_root() {
        bail!("PostgreSQL is not installed and we are not root: apt-get install -y postgresql");
    }
    println!("installing PostgreSQL (apt-get install -y postgresql)");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "postgresql"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new("apt-get")
            .args(["update", "-q"])
            .stdout(Stdio::null())
            .status();
        if !install() {
            bail!("apt-get install -y postgresql failed");
        }
    }
    bin_dir().context("postgresql installed but no /usr/lib/postgresql/*/bin/pgbench")
}

/// Runs `output` and fails with its stderr unless it succeeded.
fn check(what: &str, mut cmd: Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| what.to_string())?;
    if !out.status.success() {
        bail!(
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running server; stopped on drop.
pub struct Postgres {
    bin: PathBuf,
    root: bool,
    data: PathBuf,
    port: u16,
    pub version: String,
    // Declared last: removed after the server is stopped.
    dir: tempfile::TempDir,
}

/// Which PostgreSQL the checkout is compared with (`--postgres`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Setup {
    /// One server: a commit is durable once its WAL is flushed there.
    Single,
    /// A primary and two streaming standbys, synchronous commit to a quorum
    /// of one standby: a commit is durable on two servers before it is
    /// acknowledged, like ours.
    Replicated,
}

impl Setup {
    /// Short, for column headers.
    pub fn label(self) -> &'static str {
        match self {
            Setup::Single => "PostgreSQL",
            Setup::Replicated => "PostgreSQL replicated",
        }
    }

    /// What runs and when a commit returns, for table titles.
    pub fn describe(self) -> &'static str {
        match self {
            Setup::Single => "one server",
            Setup::Replicated => {
                "a primary and 2 streaming standbys on this machine, \
                 `synchronous_standby_names = 'ANY 1 (s1, s2)'`, `synchronous_commit = on`: \
                 a commit returns once its WAL is flushed on the primary and on a standby"
            }
        }
    }
}

/// PostgreSQL's side of the comparison, in one set-up.
pub struct Side {
    pub setup: Setup,
    pub version: String,
    pub steps: Vec<PgStep>,
}

/// Starts `setup` of `bin` with the plan's catalogue and runs the checkout
/// script at each of `plan.clients`, with the same warm-up and duration as
/// ours. Everything started is stopped and removed before it returns,
/// whether or not a step failed.
pub fn measure(bin: &Path, plan: &Plan, setup: Setup) -> anyhow::Result<Side> {
    match setup {
        Setup::Single => {
            let pg = Postgres::start(bin, plan.products, plan.skus)?;
            run_steps(&pg, plan, setup)
        }
        Setup::Replicated => {
            let set = Replicated::start(bin, plan.products, plan.skus)?;
            run_steps(&set.primary, plan, setup)
        }
    }
}

/// The checkout steps against `pg` (a single server or the primary).
fn run_steps(pg: &Postgres, plan: &Plan, setup: Setup) -> anyhow::Result<Side> {
    let mut steps = Vec::new();
    for &clients in &plan.clients {
        if !plan.warmup.is_zero() {
            pg.pgbench(clients, plan.warmup, false)?;
        }
        let step = pg.pgbench(clients, plan.checkout_time, true)?;
        println!(
            "  {}, {clients} clients: {} tx/s",
            setup.label(),
            report::rate(step.tps)
        );
        steps.push(step);
    }
    Ok(Side {
        setup,
        version: pg.version.clone(),
        steps,
    })
}

/// What one pgbench run measured.
pub struct PgStep {
    pub clients: usize,
    /// pgbench's own figure (without connection set-up).
    pub tps: f64,
    pub latency_us: Histogram<u64>,
    /// Transactions that failed or clients that aborted, as pgbench reports them.
    pub errors: String,
}

impl Postgres {
    /// Initialises and starts a server of `bin` with `products` SKUs of
    /// ample stock; the checkout script picks its two out of the first `skus`.
    pub fn start(bin: &Path, products: usize, skus: usize) -> anyhow::Result<Postgres> {
        let mut pg = Postgres::new(bin)?;
        pg.initdb()?;
        pg.run()?;
        pg.load(products, skus)?;
        Ok(pg)
    }

    /// A server yet to be made: its own temp dir (the `postgres` user's when
    /// we are root) and a free port. Dropping it stops whatever runs there,
    /// then removes the dir, from any step on.
    fn new(bin: &Path) -> anyhow::Result<Postgres> {
        let root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("ecommerce-bench-pg-")
            .tempdir()?;
        if root {
            check("chown", {
                let mut c = Command::new("chown");
                c.args(["postgres:postgres"]).arg(dir.path());
                c
            })?;
        }
        Ok(Postgres {
            bin: bin.to_path_buf(),
            root,
            data: dir.path().join("data"),
            port: free_port()?,
            version: String::new(),
            dir,
        })
    }

    /// `initdb` of a fresh cluster in the data dir, its superuser `bench`.
    /// `--no-sync`: a throw-away cluster's initial files need not reach the
    /// disk (a crash throws the run away); every write measured is fsynced
    /// by the server. Saves a second or so per server.
    fn initdb(&self) -> anyhow::Result<()> {
        let data = self.data.display().to_string();
        check(
            "initdb",
            self.tool(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "bench",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            ),
        )?;
        Ok(())
    }

    /// Starts the server on its data dir (made by `initdb` or
    /// `pg_basebackup`) and waits until it accepts connections. Durability as
    /// shipped; the data dir's `postgresql.conf` may add settings, the
    /// command line's win.
    fn run(&mut self) -> anyhow::Result<()> {
        let data = self.data.display().to_string();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on -c synchronous_commit=on \
             -c shared_buffers=256MB -c max_connections=300 -c max_wal_size=4GB",
            self.port,
            self.dir.path().display()
        );
        let log = format!("{data}.log");
        check(
            "pg_ctl start",
            self.tool(
                "pg_ctl",
                &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
            ),
        )
        .with_context(|| format!("see {log}"))?;
        self.version = self.psql("SHOW server_version")?.trim().to_string();
        Ok(())
    }

    /// The schema, `products` SKUs of ample stock, statistics, and the
    /// checkout script (which picks out of the first `skus`).
    fn load(&self, products: usize, skus: usize) -> anyhow::Result<()> {
        self.psql(SCHEMA_SQL)?;
        self.psql(&format!(
            "INSERT INTO stock (sku, price, qty) \
             SELECT 'SKU-' || i, 1000 + i % 9000, 1000000000 FROM generate_series(0, {}) AS i",
            products.saturating_sub(1)
        ))?;
        // Not in the statement above: psql runs several as one transaction,
        // and VACUUM refuses to run in one.
        self.psql("VACUUM ANALYZE")?;
        std::fs::write(
            self.dir.path().join("checkout.sql"),
            CHECKOUT_SQL.replace("{last}", &skus.saturating_sub(1).to_string()),
        )?;
        Ok(())
    }

    /// A PostgreSQL tool, as the `postgres` user when we are root.
    fn tool(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut c = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        c.args(args).current_dir(self.dir.path());
        c
    }

    fn conn_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            "bench".into(),
        ]
    }

    /// Runs SQL through psql; returns its unaligned output.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let mut args = self.conn_args();
        args.extend(
            [
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-A",
                "-t",
                "-c",
                sql,
            ]
            .map(String::from),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        check("psql", self.tool("psql", &args))
    }

    /// Runs the checkout script with `clients` connections for `duration`;
    /// `record` keeps per-transaction latencies (the warm-up does not).
    pub fn pgbench(
        &self,
        clients: usize,
        duration: Duration,
        record: bool,
    ) -> anyhow::Result<PgStep> {
        let prefix = format!("run-{clients}-{}", if record { "rec" } else { "warm" });
        let mut args = self.conn_args();
        args.extend(
            [
                "-n",
                "-M",
                "prepared",
                "-c",
                &clients.to_string(),
                "-j",
                &clients.min(2).to_string(),
                "-T",
                &duration.as_secs().max(1).to_string(),
                "-f",
                "checkout.sql",
            ]
            .map(String::from),
        );
        if record {
            args.extend(["-l", "--log-prefix", &prefix].map(String::from));
        }
        args.push("postgres".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self
            .tool("pgbench", &args)
            .output()
            .context("running pgbench")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tps = stdout
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("pgbench printed no tps:\n{stdout}{stderr}"))?;
        let mut errors = Vec::new();
        if let Some(failed) = stdout
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .and_then(|l| l.split_whitespace().next())
            .filter(|n| *n != "0")
        {
            errors.push(format!("failed × {failed}"));
        }
        let aborted = stderr.lines().filter(|l| l.contains("aborted")).count();
        if aborted > 0 {
            errors.push(format!("aborted clients × {aborted}"));
        }
        let mut latency_us =
            Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds");
        if record {
            read_logs(self.dir.path(), &prefix, &mut latency_us)?;
        }
        Ok(PgStep {
            clients,
            tps,
            latency_us,
            errors: if errors.is_empty() {
                "0".into()
            } else {
                errors.join(", ")
            },
        })
    }
}

/// Per-transaction logs (`client tx latency_us script epoch us`) of a run.
fn read_logs(dir: &Path, prefix: &str, into: &mut Histogram<u64>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(prefix) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())?;
        for us in text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        {
            into.saturating_record(us.clamp(1, 600_000_000));
        }
        // Logs of the longer runs are large; they have served their purpose.
        let _ = std::fs::remove_file(entry.path());
    }
    Ok(())
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self
            .tool("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
