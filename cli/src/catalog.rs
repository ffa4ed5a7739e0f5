//! `ecommerce catalog import|generate`: bulk-load products from JSON lines,
//! and make a realistic demo catalogue.
//!
//! A file holds one record per line: `{"type": "category", "id", "name",
//! "parent_id"?}` or `{"type": "product", "id", "name", "variants": [..], ..}`
//! (the body of `PUT /api/v1/products/{id}` plus its id). Categories are sent
//! one by one, products in batches to `POST /api/v1/catalog/import`. Every
//! request carries an `Idempotency-Key` derived from the file and the lines it
//! holds, and the line reached is saved in `FILE.import-state` after each
//! acknowledged batch: an interrupted import started again resumes there, and
//! a batch whose answer was lost is replayed, not applied twice.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::client::NodeClient;
use crate::{CatalogCommand, CatalogImportArgs, GenerateArgs};

pub async fn run_catalog(command: CatalogCommand) -> anyhow::Result<()> {
    match command {
        CatalogCommand::Import(args) => import(args).await,
        CatalogCommand::Generate(args) => generate(&args),
    }
}

fn state_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".import-state");
    PathBuf::from(name)
}

/// The first line not yet acknowledged by an earlier run of this file.
fn resume_line(state: &Path, file_id: &str) -> usize {
    std::fs::read_to_string(state)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .filter(|v| v["file"] == file_id)
        .and_then(|v| v["next_line"].as_u64())
        .unwrap_or(0) as usize
}

fn save_state(state: &Path, file_id: &str, next_line: usize) -> anyhow::Result<()> {
    let tmp = state.with_extension("tmp");
    std::fs::write(
        &tmp,
        json!({"file": file_id, "next_line": next_line}).to_string(),
    )?;
    std::fs::rename(&tmp, state).with_context(|| format!("cannot write {}", state.display()))
}

fn key(file_id: &str, first_line: usize, lines: &[String]) -> String {
    let mut digest = Sha256::new();
    digest.update(file_id.as_bytes());
    digest.update(first_line.to_le_bytes());
    for l in lines {
        digest.update(l.as_bytes());
        digest.update([0]);
    }
    format!("import-{}", &hex::encode(digest.finalize())[..40])
}

async fn import(args: CatalogImportArgs) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata()?.len();
    // The file's identity: its size and first bytes (a different file resumes nothing).
    let file_id = {
        let head: String = std::fs::read_to_string(&args.file)
            .unwrap_or_default()
            .chars()
            .take(4096)
            .collect();
        format!(
            "{size}:{}",
            hex::encode(&Sha256::digest(head.as_bytes())[..8])
        )
    };
    let state = state_path(&args.file);
    let start = resume_line(&state, &file_id);
    let client = NodeClient::new(&args.node)?;
    let progress = ProgressBar::new(size);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            .expect("progress template"),
    );
    if start > 0 {
        progress.println(format!("resuming at line {}", start + 1));
    }
    let (mut imported, mut refused) = (0u64, 0u64);
    let mut batch: Vec<String> = Vec::new();
    let mut batch_first = start;
    let mut line_no = 0usize;
    for line in BufReader::new(file).lines() {
        let line = line?;
        progress.inc(line.len() as u64 + 1);
        line_no += 1;
        if line_no <= start || line.trim().is_empty() {
            continue;
        }
        let record: Value =
            serde_json::from_str(&line).with_context(|| format!("line {line_no} is not JSON"))?;
        match record["type"].as_str() {
            Some("category") => {
                flush(
                    &client,
                    &file_id,
                    &mut batch,
                    batch_first,
                    &mut imported,
                    &mut refused,
                    &progress,
                )
                .await?;
                let id = record["id"].as_str().context("a category needs an id")?;
                let mut body = record.clone();
                let obj = body.as_object_mut().expect("object");
                obj.remove("type");
                obj.remove("id");
                let k = key(&file_id, line_no, std::slice::from_ref(&line));
                client
                    .send_idempotent(Method::PUT, &format!("/api/v1/categories/{id}"), &body, &k)
                    .await
                    .with_context(|| format!("category on line {line_no}"))?;
                save_state(&state, &file_id, line_no)?;
                batch_first = line_no;
            }
            Some("product") => {
                if batch.is_empty() {
                    batch_first = line_no - 1;
                }
                batch.push(line);
                if batch.len() as u64 >= args.batch {
                    flush(
                        &client,
                        &file_id,
                        &mut batch,
                        batch_first,
                        &mut imported,
                        &mut refused,
                        &progress,
                    )
                    .await?;
                    save_state(&state, &file_id, line_no)?;
                }
            }
            _ => bail!("line {line_no}: type must be \"category\" or \"product\""),
        }
        progress.set_message(format!("{imported} imported, {refused} refused"));
    }
    flush(
        &client,
        &file_id,
        &mut batch,
        batch_first,
        &mut imported,
        &mut refused,
        &progress,
    )
    .await?;
    save_state(&state, &file_id, line_no)?;
    progress.finish_with_message(format!("{imported} imported, {refused} refused"));
    println!(
        "imported {imported} products, refused {refused} ({} lines)",
        line_no
    );
    Ok(())
}

/// Sends the pending products as one batch.
async fn flush(
    client: &NodeClient,
    file_id: &str,
    batch: &mut Vec<String>,
    first_line: usize,
    imported: &mut u64,
    refused: &mut u64,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let products: Vec<Value> = batch
        .iter()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("checked JSON");
            v.as_object_mut().expect("object").remove("type");
            v
        })
        .collect();
    let k = key(file_id, first_line, batch);
    let response = client
        .send_idempotent(
            Method::POST,
            "/api/v1/catalog/import",
            &json!({ "products": products }),
            &k,
        )
        .await
        .with_context(|| format!("products from line {}", first_line + 1))?;
    let report: Value = response.json().await?;
    *imported += report["imported"].as_u64().unwrap_or(0);
    *refused += report["refused"].as_u64().unwrap_or(0);
    for item in report["items"].as_array().into_iter().flatten() {
        if let Some(code) = item["error_code"].as_str() {
            progress.println(format!(
                "refused {}: {code}: {}",
                item["id"].as_str().unwrap_or("?"),
                item["error"].as_str().unwrap_or("")
            ));
        }
    }
    batch.clear();
    Ok(())
}

const ADJECTIVES: &[&str] = &[
    "Classic",
    "Organic",
    "Vintage",
    "Slim",
    "Relaxed",
    "Premium",
    "Everyday",
    "Lightweight",
    "Waterproof",
    "Recycled",
    "Merino",
    "Linen",
    "Heavyweight",
    "Soft",
    "Urban",
    "Alpine",
];
const NOUNS: &[(&str, &str)] = &[
    ("T-Shirt", "tops"),
    ("Hoodie", "tops"),
    ("Sweater", "tops"),
    ("Shirt", "tops"),
    ("Jeans", "bottoms"),
    ("Chinos", "bottoms"),
    ("Shorts", "bottoms"),
    ("Joggers", "bottoms"),
    ("Sneakers", "shoes"),
    ("Boots", "shoes"),
    ("Sandals", "shoes"),
    ("Loafers", "shoes"),
    ("Backpack", "bags"),
    ("Tote", "bags"),
    ("Duffel", "bags"),
    ("Wallet", "accessories"),
    ("Cap", "accessories"),
    ("Scarf", "accessories"),
    ("Belt", "accessories"),
    ("Socks", "accessories"),
];
const COLOURS: &[&str] = &[
    "black", "white", "navy", "olive", "grey", "red", "sand", "blue",
];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL"];
const BRANDS: &[&str] = &["Northwind", "Acme", "Fjord", "Atlas"];
const MATERIALS: &[&str] = &["cotton", "wool", "linen", "polyester", "leather", "denim"];

/// A deterministic demo catalogue (same `--seed`, same file).
fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut rng = StdRng::seed_from_u64(args.seed);
    let roots = [("clothing", "Clothing"), ("shoes-bags", "Shoes & bags")];
    for (id, name) in roots {
        writeln!(
            out,
            "{}",
            json!({"type": "category", "id": id, "name": name})
        )?;
    }
    for (id, name, parent) in [
        ("tops", "Tops", "clothing"),
        ("bottoms", "Bottoms", "clothing"),
        ("accessories", "Accessories", "clothing"),
        ("shoes", "Shoes", "shoes-bags"),
        ("bags", "Bags", "shoes-bags"),
    ] {
        writeln!(
            out,
            "{}",
            json!({"type": "category", "id": id, "name": name, "parent_id": parent})
        )?;
    }
    for i in 0..args.products {
        let adjective = ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())];
        let (noun, category) = NOUNS[rng.gen_range(0..NOUNS.len())];
        let material = MATERIALS[rng.gen_range(0..MATERIALS.len())];
        let name = format!("{adjective} {noun} {i}");
        let base = rng.gen_range(9..200) * 100 - 1;
        let colours = rng.gen_range(1..=3);
        let sizes = if category == "bags" {
            1
        } else {
            rng.gen_range(1..=4)
        };
        let mut variants = Vec::new();
        for c in 0..colours {
            let colour = COLOURS[(i as usize + c) % COLOURS.len()];
            for size in SIZES.iter().take(sizes) {
                variants.push(json!({
                    "sku": format!("DEMO-{i}-{colour}-{size}"),
                    "attributes": {"colour": colour, "size": size},
                    "price": {"amount": base + if *size == "XL" { 200 } else { 0 }, "currency": "EUR"},
                    "weight_grams": rng.gen_range(100..1500),
                }));
            }
        }
        let product = json!({
            "type": "product",
            "id": format!("demo-{i}"),
            "name": name,
            "description": format!(
                "{adjective} {} {} in {material}, made to last. Care: machine wash cold.",
                noun.to_lowercase(),
                if category == "shoes" { "pair" } else { "piece" }
            ),
            "category_id": category,
            "attributes": {"material": material, "brand": BRANDS[i as usize % BRANDS.len()]},
            "variants": variants,
        });
        writeln!(out, "{product}")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_depend_on_content() {
        let lines = vec!["a".to_string(), "b".to_string()];
        assert_eq!(key("f", 1, &lines), key("f", 1, &lines));
        assert_ne!(key("f", 1, &lines), key("f", 2, &lines));
        assert_ne!(key("f", 1, &lines), key("g", 1, &lines));
        assert!(key("f", 1, &lines).len() <= 255);
    }

    #[test]
    fn resume_state_only_applies_to_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("x.import-state");
        assert_eq!(resume_line(&state, "id1"), 0);
        save_state(&state, "id1", 42).unwrap();
        assert_eq!(resume_line(&state, "id1"), 42);
        assert_eq!(resume_line(&state, "id2"), 0);
    }
}
