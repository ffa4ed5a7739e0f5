//! Printing figures: Markdown tables (so a run pastes into
//! docs/performance.md as it is), latencies in milliseconds, and the header
//! that says what machine, commit and command produced them.

use std::process::Command;

use crate::checkout::CheckoutStep;
use crate::cluster::Rss;
use crate::load::Series as LoadSeries;
use crate::postgres::Side;
use crate::reads::{Series, Target};
use crate::Plan;

/// Prints a Markdown table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    println!("| {} |", headers.join(" | "));
    println!(
        "|{}|",
        headers.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
    println!();
}

/// Microseconds as milliseconds with a precision that suits the size.
pub fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// p50, p95, p99 and max of a series, in ms ("-" when it has no success).
pub fn percentiles(series: Option<&LoadSeries>) -> Vec<String> {
    match series {
        Some(s) if s.ok_count() > 0 => vec![
            ms(s.at(0.50)),
            ms(s.at(0.95)),
            ms(s.at(0.99)),
            ms(s.ok.max()),
        ],
        _ => vec!["-".into(); 4],
    }
}

/// A throughput figure.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 100.0 {
        format!("{per_sec:.0}")
    } else {
        format!("{per_sec:.1}")
    }
}

/// `ours / theirs` as "0.42×".
pub fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2}×", ours / theirs)
    } else {
        "-".into()
    }
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Date, commit, machine and the command line, printed before the figures.
pub fn header(plan: &Plan) {
    let date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let commit = output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".into());
    let dirty = output("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / (1 << 20));
    let kernel = output("uname", &["-r"]).unwrap_or_default();
    println!(
        "## ecommerce-bench{}",
        if plan.smoke {
            " (smoke: the figures mean nothing)"
        } else {
            ""
        }
    );
    println!();
    println!("- date: {date}");
    println!(
        "- commit: {commit}{}",
        if dirty { " (with local changes)" } else { "" }
    );
    println!("- machine: {cores} cores ({cpu}), {mem_gib} GiB, Linux {kernel}");
    println!("- node binary: {}", plan.node_bin.display());
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!(
        "- reproduce: `cargo run --release -p ecommerce-bench -- {}`",
        args.join(" ")
    );
    println!("- the load generator runs on the same machine as what it measures");
    println!();
}

/// Prints the memory table: each node's RSS at each point of the run.
pub fn memory(points: &[(String, Rss)]) {
    println!("### Memory: RSS per node in MiB (peak during a load, else at that moment)");
    println!();
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|(what, rss)| {
            let mut row = vec![what.clone()];
            row.extend(rss.cells());
            row
        })
        .collect();
    table(&["when", "node 1 (leader)", "node 2", "node 3"], &rows);
}

/// The client count the goals are judged at: 64, or the largest step below
/// it when 64 was not run.
fn goal_clients(steps: impl Iterator<Item = usize>) -> Option<usize> {
    let all: Vec<usize> = steps.collect();
    if all.contains(&64) {
        return Some(64);
    }
    all.iter()
        .copied()
        .filter(|&c| c < 64)
        .max()
        .or_else(|| all.iter().copied().min())
}

/// "met" or "missed by N %" for `value` against a floor `goal`.
fn verdict(value: f64, goal: f64) -> String {
    if value >= goal {
        "met".into()
    } else {
        format!("missed by {:.0} %", (1.0 - value / goal) * 100.0)
    }
}

/// Prints the issue's goals against this run's figures.
pub fn goals(ours: Option<&[CheckoutStep]>, theirs: &[Side], reads: Option<&[Series]>) {
    let mut rows = Vec::new();
    // The issue's goal names PostgreSQL, not a set-up: it is shown against
    // each one measured.
    for pg in theirs {
        let Some(ours) = ours else { break };
        if let Some(c) = goal_clients(ours.iter().map(|s| s.step.clients)) {
            let mine = ours.iter().find(|s| s.step.clients == c);
            let theirs = pg.steps.iter().find(|p| p.clients == c);
            if let (Some(mine), Some(theirs)) = (mine, theirs) {
                let r = mine.step.rate("checkout") / theirs.tps.max(f64::MIN_POSITIVE);
                rows.push(vec![
                    format!(
                        "checkout throughput ≥ 1.5× {}, {c} clients",
                        pg.setup.label()
                    ),
                    format!("{r:.2}×"),
                    verdict(r, 1.5),
                ]);
            }
        }
    }
    if let Some(ours) = ours {
        if let Some(c) = goal_clients(ours.iter().map(|s| s.step.clients)) {
            if let Some(s) = ours.iter().find(|s| s.step.clients == c) {
                let p99 = s.step.rec.get("checkout").filter(|s| s.ok_count() > 0);
                rows.push(match p99 {
                    Some(h) => {
                        let ms = h.at(0.99) as f64 / 1000.0;
                        vec![
                            format!("checkout p99 < 50 ms, {c} clients"),
                            format!("{ms:.1} ms"),
                            if ms < 50.0 {
                                "met".into()
                            } else {
                                format!("missed: {:.1}× the bound", ms / 50.0)
                            },
                        ]
                    }
                    None => vec![
                        format!("checkout p99 < 50 ms, {c} clients"),
                        "no checkout succeeded".into(),
                        "missed".into(),
                    ],
                });
            }
        }
    }
    if let Some(reads) = reads {
        let floor = reads.iter().find(|s| s.target == Target::Hello);
        for (target, goal) in [(Target::Product, 0.5), (Target::Stock, 0.25)] {
            let (Some(floor), Some(series)) = (floor, reads.iter().find(|s| s.target == target))
            else {
                continue;
            };
            let Some(c) = goal_clients(series.steps.iter().map(|(s, _)| s.clients)) else {
                continue;
            };
            if let (Some(mine), Some(base)) = (series.rate_at(c), floor.rate_at(c)) {
                let r = mine / base.max(f64::MIN_POSITIVE);
                rows.push(vec![
                    format!("{} ≥ {goal}× the floor, {c} clients", target.name()),
                    format!("{r:.2}×"),
                    verdict(r, goal),
                ]);
            }
            let peak = |s: &Series| {
                s.steps
                    .iter()
                    .map(|(s, _)| s.rate("read"))
                    .fold(0.0, f64::max)
            };
            let r = peak(series) / peak(floor).max(f64::MIN_POSITIVE);
            rows.push(vec![
                format!("{} ≥ {goal}× the floor, best step of each", target.name()),
                format!("{r:.2}×"),
                verdict(r, goal),
            ]);
        }
    }
    if rows.is_empty() {
        return;
    }
    println!("### Goals (ratios from this run)");
    println!();
    table(&["goal", "measured", "verdict"], &rows);
}
