//! Benchmark: our product search (tantivy, `ecommerce::search`) against PostgreSQL full-text
//! search (tsvector + GIN) on the same generated products and the same queries.
//!
//! ```sh
//! cargo bench --bench search -- --products 100000 --queries 2000
//! ```
//!
//! It generates a deterministic catalogue, loads it into a search index in a temp dir and
//! times a fixed query mix through `SearchIndex::search` (in process: query, facets and
//! highlighting, no HTTP); then initialises and starts a throw-away PostgreSQL (Debian's
//! `postgresql` package, on 127.0.0.1 and a free port, as the `postgres` user when run as
//! root), loads the same products with `COPY`, builds a GIN index over a weighted tsvector,
//! and runs the same query texts with `pgbench` (one client, per-transaction log), each a
//! ranked top 20 plus the total count. It prints load times, sizes, queries/s and latency
//! percentiles for both, and stops PostgreSQL. Without PostgreSQL it reports our side only.
//!
//! Not a test: figures depend on the machine; see docs/performance.md.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecommerce::search::indexer::Derived;
use ecommerce::search::{SearchIndex, SearchRequest, SortBy};
use ecommerce_domains::catalog::{CatalogId, Product, Variant};
use ecommerce_domains::inventory::Sku;
use ecommerce_domains::money::Money;

const ADJECTIVES: &[&str] = &[
    "classic",
    "modern",
    "vintage",
    "slim",
    "relaxed",
    "premium",
    "essential",
    "lightweight",
    "heavy",
    "soft",
    "rugged",
    "elegant",
    "casual",
    "sporty",
    "cosy",
    "organic",
];
const COLOURS: &[&str] = &[
    "red", "blue", "green", "black", "white", "grey", "navy", "olive", "sand", "burgundy",
    "yellow", "pink",
];
const MATERIALS: &[&str] = &[
    "cotton",
    "linen",
    "wool",
    "denim",
    "leather",
    "silk",
    "cashmere",
    "polyester",
    "ceramic",
    "oak",
    "steel",
    "bamboo",
];
const NOUNS: &[&str] = &[
    "shirt", "trousers", "jacket", "sweater", "dress", "skirt", "scarf", "boots", "sneakers",
    "backpack", "mug", "lamp", "chair", "blanket", "pillow", "wallet", "belt", "hat", "socks",
    "hoodie",
];
const WORDS: &[&str] = &[
    "comfortable",
    "durable",
    "handmade",
    "breathable",
    "waterproof",
    "warm",
    "everyday",
    "travel",
    "summer",
    "winter",
    "office",
    "weekend",
    "gift",
    "sustainable",
    "washable",
    "stitched",
    "tailored",
    "fit",
    "classic",
    "design",
    "quality",
    "finish",
    "pocket",
    "collar",
];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL"];

/// A small deterministic generator (xorshift), so both engines get identical data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Item {
    product: Product,
    path: Vec<String>,
}

fn generate(n: usize) -> Vec<Item> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|i| {
            let name = format!(
                "{} {} {} {}",
                rng.pick(ADJECTIVES),
                rng.pick(COLOURS),
                rng.pick(MATERIALS),
                rng.pick(NOUNS)
            );
            let description: Vec<&str> = (0..16).map(|_| rng.pick(WORDS)).collect();
            let root = rng.below(8);
            let leaf = rng.below(6);
            let price = 500 + rng.below(50_000) as i64;
            let sizes = 1 + rng.below(4) as usize;
            let id = format!("p{i}");
            let variants = SIZES[..sizes]
                .iter()
                .enumerate()
                .map(|(k, size)| Variant {
                    sku: Sku::parse(&format!("SKU-{i}-{size}")).expect("sku"),
                    attributes: [("size".to_string(), size.to_string())].into(),
                    price: Money::parse("price", price + 100 * k as i64, "EUR").expect("money"),
                    weight_grams: 300,
                })
                .collect();
            Item {
                product: Product {
                    id: CatalogId::parse("id", &id).expect("id"),
                    slug: id.clone(),
                    name,
                    description: description.join(" "),
                    category_id: Some(
                        CatalogId::parse("c", &format!("c{root}-{leaf}")).expect("c"),
                    ),
                    attributes: [("colour".to_string(), rng.pick(COLOURS).to_string())].into(),
                    images: vec![],
                    vendor_id: Some(format!("vendor{}", rng.below(100))),
                    active: true,
                    deleted_ms: None,
                    variants,
                    created_ms: i as u64,
                    updated_ms: i as u64,
                    version: 1,
                },
                path: vec![format!("c{root}"), format!("c{root}-{leaf}")],
            }
        })
        .collect()
}

/// The fixed query mix: one word, two words, a word and a category, three words.
fn queries(n: usize) -> Vec<(String, Option<Vec<String>>)> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    (0..n)
        .map(|i| match i % 4 {
            0 => (rng.pick(NOUNS).to_string(), None),
            1 => (format!("{} {}", rng.pick(COLOURS), rng.pick(NOUNS)), None),
            2 => {
                let root = rng.below(8);
                (
                    rng.pick(MATERIALS).to_string(),
                    Some(vec![format!("c{root}")]),
                )
            }
            _ => (
                format!(
                    "{} {} {}",
                    rng.pick(ADJECTIVES),
                    rng.pick(MATERIALS),
                    rng.pick(NOUNS)
                ),
                None,
            ),
        })
        .collect()
}

struct Figures {
    queries: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Figures {
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }
    fn print(&self, engine: &str) {
        println!(
            "{engine:<24} {:>8.0} q/s   p50 {:>7.2} ms   p95 {:>7.2} ms   p99 {:>7.2} ms   ({} queries)",
            self.queries as f64 / self.elapsed.as_secs_f64(),
            self.percentile(0.50),
            self.percentile(0.95),
            self.percentile(0.99),
            self.queries
        );
    }
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn ours(items: &[Item], mix: &[(String, Option<Vec<String>>)], dir: &Path) -> Figures {
    let index = SearchIndex::open(&dir.join("search")).expect("open index");
    let started = Instant::now();
    let loaded = index
        .load(items.iter().map(|it| {
            (
                it.product.clone(),
                Derived {
                    category_path: it.path.clone(),
                    in_stock: true,
                    popularity: 0,
                },
            )
        }))
        .expect("load index");
    println!(
        "tantivy: indexed {loaded} products in {:.1} s, index {:.1} MiB",
        started.elapsed().as_secs_f64(),
        dir_size(&dir.join("search")) as f64 / (1 << 20) as f64
    );
    // One warm-up pass, then the measured one.
    let run = |record: bool| {
        let mut latencies = Vec::with_capacity(mix.len());
        let started = Instant::now();
        for (text, category) in mix {
            let mut req = SearchRequest::browse(20);
            req.text = Some(text.clone());
            req.category = category.clone();
            req.sort = SortBy::Relevance;
            let t = Instant::now();
            let r = index.search(&req).expect("search");
            if let Some(h) = &r.highlighter {
                for hit in r.hits.iter().take(20) {
                    let _ = h.highlight(hit.id.as_str(), "");
                }
            }
            if record {
                latencies.push(t.elapsed().as_micros() as u64);
            }
        }
        (started.elapsed(), latencies)
    };
    run(false);
    let (elapsed, latencies_us) = run(true);
    Figures {
        queries: mix.len(),
        elapsed,
        latencies_us,
    }
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (initdb refuses root).
fn pg(tool: &str, args: &[&str]) -> Command {
    let bin = [
        "/usr/lib/postgresql/17/bin",
        "/usr/lib/postgresql/16/bin",
        "/usr/lib/postgresql/15/bin",
    ]
    .iter()
    .map(|d| PathBuf::from(d).join(tool))
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from(tool));
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin).args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

fn check(what: &str, mut c: Command) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Stops the server when dropped (also on a panic).
struct Server {
    data: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = pg("pg_ctl", &["-D", &self.data, "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn tsv_field(s: &str) -> String {
    s.replace(['\t', '\n', '\\'], " ")
}

fn postgres(items: &[Item], mix: &[(String, Option<Vec<String>>)], dir: &Path) -> Option<Figures> {
    if pg("pg_ctl", &["--version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        println!("PostgreSQL not found (apt-get install postgresql); skipping the comparison");
        return None;
    }
    let pg_dir = dir.join("pg");
    std::fs::create_dir_all(&pg_dir).expect("pg dir");
    let _ = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status();
    let data = pg_dir.join("data").display().to_string();
    let port = free_port().to_string();
    check(
        "initdb",
        pg(
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
    );
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c shared_buffers=256MB -c max_wal_size=4GB",
        pg_dir.display()
    );
    check(
        "pg_ctl start",
        pg(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-o",
                &options,
                "-l",
                &format!("{data}.log"),
                "-w",
                "start",
            ],
        ),
    );
    let _server = Server { data: data.clone() };
    let psql = |sql: &str| {
        let mut c = pg(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "bench",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                sql,
            ],
        );
        c.stdout(Stdio::null());
        check(sql, c);
    };

    let tsv = pg_dir.join("products.tsv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tsv).expect("tsv"));
        for it in items {
            let p = &it.product;
            let attrs: Vec<String> = p
                .variants
                .iter()
                .flat_map(|v| v.attributes.iter().map(|(k, v)| format!("{k} {v}")))
                .chain(p.attributes.iter().map(|(k, v)| format!("{k} {v}")))
                .collect();
            let skus: Vec<&str> = p.variants.iter().map(|v| v.sku.as_str()).collect();
            writeln!(
                f,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                p.id.as_str(),
                tsv_field(&p.name),
                tsv_field(&p.description),
                tsv_field(&attrs.join(" ")),
                skus.join(" "),
                it.path.join(" "),
                p.vendor_id.as_deref().unwrap_or(""),
                p.min_price().map_or(0, |m| m.amount)
            )
            .expect("write tsv");
        }
    }
    let _ = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&tsv)
        .status();
    psql("CREATE TABLE products (id text PRIMARY KEY, name text, description text, attributes text, skus text, categories text, vendor text, price bigint)");
    let started = Instant::now();
    psql(&format!("COPY products FROM '{}'", tsv.display()));
    psql("ALTER TABLE products ADD COLUMN tsv tsvector GENERATED ALWAYS AS (\
          setweight(to_tsvector('english', name), 'A') || setweight(to_tsvector('english', skus), 'B') || \
          setweight(to_tsvector('english', attributes), 'C') || setweight(to_tsvector('english', description), 'D')) STORED");
    psql("CREATE INDEX products_tsv ON products USING GIN (tsv)");
    psql(
        "CREATE INDEX products_categories ON products USING GIN (string_to_array(categories, ' '))",
    );
    psql("VACUUM ANALYZE products");
    println!(
        "postgres: loaded and indexed {} products in {:.1} s, table + indexes {:.1} MiB",
        items.len(),
        started.elapsed().as_secs_f64(),
        dir_size(&pg_dir.join("data").join("base")) as f64 / (1 << 20) as f64
    );
    psql("CREATE TABLE queries (id int PRIMARY KEY, q text, category text)");
    let qfile = pg_dir.join("queries.tsv");
    {
        let mut f = std::fs::File::create(&qfile).expect("queries");
        for (i, (q, c)) in mix.iter().enumerate() {
            let category = c
                .as_ref()
                .and_then(|p| p.last().cloned())
                .unwrap_or_else(|| "\\N".into());
            writeln!(f, "{}\t{}\t{}", i + 1, q, category).expect("write queries");
        }
    }
    let _ = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&qfile)
        .status();
    psql(&format!("COPY queries FROM '{}'", qfile.display()));

    // Every query once in order (pgbench's -t with a counter would need a sequence): the
    // script picks query :n = 1..N by client-local counter through a sequence table.
    psql("CREATE SEQUENCE qseq");
    let script = pg_dir.join("search.sql");
    std::fs::write(
        &script,
        format!(
            "SELECT (nextval('qseq') - 1) % {n} + 1 AS qid \\gset\n\
             WITH q AS (SELECT websearch_to_tsquery('english', q) AS tq, category FROM queries WHERE id = :qid) \
             SELECT p.id, ts_rank(p.tsv, q.tq) AS rank, count(*) OVER () AS total \
             FROM products p, q WHERE p.tsv @@ q.tq \
             AND (q.category IS NULL OR string_to_array(p.categories, ' ') @> ARRAY[q.category]) \
             ORDER BY rank DESC LIMIT 20;\n",
            n = mix.len()
        ),
    )
    .expect("script");
    let _ = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&script)
        .status();
    let bench = |record: bool| {
        let log_prefix = pg_dir.join(if record { "run" } else { "warm" });
        let mut c = pg(
            "pgbench",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "bench",
                "-n",
                "-c",
                "1",
                "-t",
                &mix.len().to_string(),
                "-f",
                &script.display().to_string(),
                "-l",
                "--log-prefix",
                &log_prefix.display().to_string(),
                "postgres",
            ],
        );
        c.current_dir(&pg_dir);
        let started = Instant::now();
        check("pgbench", c);
        (started.elapsed(), log_prefix)
    };
    bench(false);
    let (elapsed, prefix) = bench(true);
    // Per-transaction log lines: client_id transaction_no time_us script_no time_epoch time_us_part.
    let mut latencies_us = Vec::new();
    let name = prefix
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("run")
        .to_string();
    for entry in std::fs::read_dir(&pg_dir).expect("pg dir").flatten() {
        if entry.file_name().to_string_lossy().starts_with(&name) {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            latencies_us.extend(
                text.lines()
                    .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()),
            );
        }
    }
    Some(Figures {
        queries: latencies_us.len(),
        elapsed,
        latencies_us,
    })
}

fn main() {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        if let Some(key) = raw[i].strip_prefix("--") {
            if let Some(value) = raw.get(i + 1).filter(|v| !v.starts_with("--")) {
                args.insert(key.to_string(), value.clone());
                i += 1;
            }
        }
        i += 1;
    }
    let products: usize = args
        .get("products")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let n_queries: usize = args
        .get("queries")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "search benchmark: {products} products, {n_queries} queries (mix: 1 word, 2 words, word + category, 3 words)"
    );
    println!(
        "reproduce: cargo bench --bench search -- --products {products} --queries {n_queries}"
    );
    let started = Instant::now();
    let items = generate(products);
    println!("generated in {:.1} s", started.elapsed().as_secs_f64());
    let mix = queries(n_queries);
    let ours = ours(&items, &mix, dir.path());
    let theirs = postgres(&items, &mix, dir.path());
    println!();
    ours.print("tantivy (in process)");
    if let Some(theirs) = theirs {
        theirs.print("postgres (pgbench, tcp)");
    }
}
