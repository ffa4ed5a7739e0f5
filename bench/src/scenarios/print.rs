//! The scenarios' Markdown: one section per scenario, the goals of the
//! issue against what was measured, and where the charts went.

use std::time::Duration;

use super::stats::{Kind, Stats};
use super::user::THINK_CUT;
use super::{Results, ScenarioPlan, StressStep, Which, DEGRADED_FAILURES, DEGRADED_P95};
use crate::cluster::Usage;
use crate::report::{self, ms, percentiles, rate, table};
use crate::Plan;

/// The request kinds in journey order.
const KINDS: [&str; 5] = ["browse", "search", "product", "cart", "checkout"];

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 || s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    let p = part as f64 * 100.0 / whole as f64;
    if p == 0.0 {
        "0 %".into()
    } else if p < 0.1 {
        format!("{p:.3} %")
    } else {
        format!("{p:.1} %")
    }
}

/// The chart title of a scenario's timeline.
pub fn timeline_title(which: Which, sp: &ScenarioPlan) -> String {
    match which {
        Which::Steady => format!("steady: {} users, think {} mean", sp.users, secs(sp.think)),
        Which::Spike => format!(
            "spike: {} connections in {}, held {}",
            sp.spike_connections,
            secs(sp.spike_ramp),
            secs(sp.spike_hold)
        ),
        Which::Stress => format!(
            "stress: steps of {:?} users, no think time",
            sp.stress_users
        ),
    }
}

fn shed_text(k: &Kind) -> String {
    if k.shed.is_empty() {
        return "0".into();
    }
    k.shed
        .iter()
        .map(|(code, s)| format!("{code} × {}", s.latency.len()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row per request kind and one for all, over `window`.
fn kinds_table(stats: &Stats, window: Duration) -> (Kind, Vec<Vec<String>>) {
    let secs = window.as_secs_f64().max(f64::MIN_POSITIVE);
    let row = |name: &str, k: &Kind| {
        let mut row = vec![
            name.to_string(),
            k.requests().to_string(),
            rate(k.requests() as f64 / secs),
        ];
        row.extend(percentiles(Some(&k.series)));
        row.push(k.series.errors_text());
        row.push(shed_text(k));
        row
    };
    let mut rows: Vec<Vec<String>> = KINDS
        .iter()
        .filter_map(|n| Some(row(n, stats.kinds.get(n)?)))
        .collect();
    let all = stats.overall();
    rows.push(row("**all**", &all));
    (all, rows)
}

const KIND_HEADERS: [&str; 9] = [
    "request",
    "requests",
    "per s",
    "p50",
    "p95",
    "p99",
    "max",
    "errors",
    "shed (429/503)",
];

fn connections_text(s: &Stats) -> String {
    let connect = if s.connect.is_empty() {
        "none made".to_string()
    } else {
        format!(
            "connect p50 {} / p95 {} / max {} ms",
            ms(s.connect.value_at_quantile(0.5)),
            ms(s.connect.value_at_quantile(0.95)),
            ms(s.connect.max())
        )
    };
    let failures = if s.connect_errors.is_empty() {
        "no connect failure".to_string()
    } else {
        s.connect_errors
            .iter()
            .map(|(k, n)| format!("{k} × {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{} users connected (the last {} after the start), {connect}, {failures}, {} reconnections",
        s.connected_users,
        secs(s.last_first_connect),
        s.reconnects
    )
}

fn usage_rows(before: &crate::cluster::Rss, usage: &Usage) -> Vec<Vec<String>> {
    let mut at_start = vec!["RSS MiB at the start".to_string()];
    at_start.extend(before.cells());
    at_start.push("-".into());
    let mut peak = vec!["peak RSS MiB".to_string()];
    peak.extend(usage.rss.cells());
    peak.push("-".into());
    let mut cpu = vec!["CPU cores (generator last)".to_string()];
    cpu.extend(
        usage
            .cores
            .iter()
            .map(|c| c.map_or("-".into(), |c| format!("{c:.2}"))),
    );
    vec![at_start, peak, cpu]
}

/// Prints every scenario that ran, the goals, and the files written.
pub fn print(plan: &Plan, r: &Results) {
    let (s, sp) = (&r.setup, &r.plan);
    println!(
        "### Load scenarios: 3 nodes (fsync on), {} products, stock for {} SKUs; one keep-alive connection per user",
        plan.products, plan.skus
    );
    println!();
    println!(
        "A user's journey: browse (product list page) → search → product page → 2 cart lines → checkout (bearer token, Idempotency-Key), \
         with an exponential think time before each request after the first (cut at {THINK_CUT}× its mean). \
         Users are spread over the 3 nodes. Set-up: the catalogue loaded in {:.1} s; {} customers signed in ({:.1} s) are lent to users from their first cart line to their checkout. \
         Open files: {} (raised from {}); {} ephemeral ports per destination. Latencies in ms, of successful answers.",
        s.loaded.as_secs_f64(),
        s.customers,
        s.signed_in.as_secs_f64(),
        s.open_files.now,
        s.open_files.before,
        s.ports_per_node
    );
    println!();
    for note in &r.notes {
        println!("- {note}");
    }
    if !r.notes.is_empty() {
        println!();
    }
    if let Some(st) = &r.steady {
        println!(
            "#### Steady: {} users, think time {} mean, {} measured after a {} ramp-up",
            sp.users,
            secs(sp.think),
            secs(sp.steady),
            secs(sp.ramp)
        );
        println!();
        let (all, rows) = kinds_table(&st.stats, sp.steady);
        table(&KIND_HEADERS, &rows);
        println!(
            "Errors {} and shed {} of {} requests; {}; {} waits for a free customer (longest {}).",
            percent(all.series.error_count(), all.requests()),
            percent(all.shed_count(), all.requests()),
            all.requests(),
            connections_text(&st.stats),
            st.stats.customer_waits,
            secs(st.stats.longest_customer_wait)
        );
        println!();
        table(
            &["", "node 1", "node 2", "node 3", "generator"],
            &usage_rows(&st.rss_before, &st.usage),
        );
    }
    if let Some(sk) = &r.spike {
        println!(
            "#### Spike: {} connections opened over {}, held {}, think time {} mean, then all dropped",
            sp.spike_connections,
            secs(sp.spike_ramp),
            secs(sp.spike_hold),
            secs(sp.spike_think)
        );
        println!();
        let window = sp.spike_ramp + sp.spike_hold;
        let (_, rows) = kinds_table(&sk.stats, window);
        table(&KIND_HEADERS, &rows);
        println!("- connections: {}", connections_text(&sk.stats));
        println!(
            "- generator: {} worker process(es), about {} connections each{}",
            sk.workers,
            sp.spike_connections.div_ceil(sk.workers.max(1)),
            if sk.worker_failures.is_empty() {
                String::new()
            } else {
                format!("; FAILED: {}", sk.worker_failures.join("; "))
            }
        );
        println!(
            "- node exits: {}",
            if sk.exited.is_empty() {
                "none".to_string()
            } else {
                sk.exited.join("; ")
            }
        );
        println!(
            "- after the drop: connections closed {}, every node answered `GET /health` {}",
            sk.drained
                .map_or("not within 30 s".into(), |d| format!("after {}", secs(d))),
            sk.healthy_after
                .map_or("not within 30 s".into(), |d| format!("{} later", secs(d)))
        );
        println!();
        table(
            &["", "node 1", "node 2", "node 3", "generator"],
            &usage_rows(&sk.rss_before, &sk.usage),
        );
    }
    if let Some(ss) = &r.stress {
        println!(
            "#### Stress: closed loop without think time, {} per step, stopping after the first degraded step (≥ {:.0} % failed or shed, or p95 ≥ {}); then {} without load and a light step",
            secs(sp.stress_step),
            DEGRADED_FAILURES * 100.0,
            secs(DEGRADED_P95),
            secs(sp.stress_cooldown)
        );
        println!();
        let rows: Vec<Vec<String>> = ss
            .steps
            .iter()
            .chain(ss.recovery.as_ref())
            .map(stress_row)
            .collect();
        table(
            &[
                "step",
                "answered/s",
                "ok/s",
                "p50",
                "p95",
                "p99",
                "max",
                "429",
                "503",
                "shed p50",
                "shed p95",
                "other errors",
                "degraded",
                "peak RSS MiB (n1/n2/n3)",
                "CPU cores (n1/n2/n3/generator)",
            ],
            &rows,
        );
        let codes: Vec<Vec<String>> = ss
            .steps
            .iter()
            .chain(ss.recovery.as_ref())
            .flat_map(|step| {
                step.stats
                    .shed_by_code()
                    .into_iter()
                    .map(|(code, (n, with))| {
                        vec![step.label.clone(), code, n.to_string(), with.to_string()]
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        if !codes.is_empty() {
            println!("Refusals by status and error code:");
            println!();
            table(
                &["step", "status code", "answers", "with Retry-After"],
                &codes,
            );
        }
        if !ss.exited.is_empty() {
            println!("- node exits: {}", ss.exited.join("; "));
            println!();
        }
    }
    goals(r);
    if !r.files.is_empty() {
        println!("Per-second timelines (CSV) and charts (SVG):");
        println!();
        for f in &r.files {
            println!("- {}", f.display());
        }
        println!();
    }
}

fn stress_row(step: &StressStep) -> Vec<String> {
    let all = step.stats.overall();
    let secs = step.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let mut row = vec![
        step.label.clone(),
        rate(all.requests() as f64 / secs),
        rate(all.series.ok_count() as f64 / secs),
    ];
    row.extend(percentiles(Some(&all.series)));
    let count = |status: &str| -> u64 {
        all.shed
            .iter()
            .filter(|(k, _)| k.starts_with(status))
            .map(|(_, s)| s.latency.len())
            .sum()
    };
    row.push(count("429").to_string());
    row.push(count("503").to_string());
    let mut shed = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .expect("histogram bounds");
    for s in all.shed.values() {
        shed.add(&s.latency).expect("same bounds");
    }
    if shed.is_empty() {
        row.extend(["-".into(), "-".into()]);
    } else {
        row.push(ms(shed.value_at_quantile(0.5)));
        row.push(ms(shed.value_at_quantile(0.95)));
    }
    row.push(all.series.errors_text());
    row.push(if step.degraded { "yes" } else { "no" }.into());
    row.push(step.usage.rss.to_string());
    row.push(step.usage.cores_text());
    row
}

/// "met" or "missed" for a bound.
fn verdict(ok: bool) -> String {
    if ok { "met" } else { "missed" }.into()
}

fn goals(r: &Results) {
    let mut rows = Vec::new();
    if let Some(st) = &r.steady {
        let all = st.stats.overall();
        match (all.series.ok_count() > 0).then(|| all.series.at(0.95)) {
            Some(p95) => rows.push(vec![
                "steady: p95 < 100 ms (all requests)".into(),
                format!("{} ms", ms(p95)),
                verdict(p95 < 100_000),
            ]),
            None => rows.push(vec![
                "steady: p95 < 100 ms (all requests)".into(),
                "no request succeeded".into(),
                "missed".into(),
            ]),
        }
        let failed = all.series.error_count() + all.shed_count();
        rows.push(vec![
            "steady: errors < 0.1 % (errors and shed)".into(),
            percent(failed, all.requests()),
            verdict(all.requests() > 0 && (failed as f64) < 0.001 * all.requests() as f64),
        ]);
        let peak = st
            .usage
            .rss
            .0
            .iter()
            .map(|k| k.unwrap_or(u64::MAX))
            .max()
            .unwrap_or(0);
        rows.push(vec![
            "steady: RSS < 512 MiB per node (peak)".into(),
            format!("{} MiB", st.usage.rss),
            verdict(peak < 512 * 1024),
        ]);
    }
    if let Some(sk) = &r.spike {
        rows.push(vec![
            "spike: no node crashes".into(),
            if sk.exited.is_empty() {
                "no exit".into()
            } else {
                format!("{} exited", sk.exited.len())
            },
            verdict(sk.exited.is_empty()),
        ]);
        let all = sk.stats.overall();
        let p95 = (all.series.ok_count() > 0).then(|| all.series.at(0.95));
        rows.push(vec![
            "spike: p95 < 200 ms (all requests)".into(),
            p95.map_or("no request succeeded".into(), |p| format!("{} ms", ms(p))),
            verdict(p95.is_some_and(|p| p < 200_000)),
        ]);
    }
    if let Some(ss) = &r.stress {
        if let (Some(first), Some(rec)) = (ss.steps.first(), &ss.recovery) {
            let base = first.stats.overall();
            let back = rec.stats.overall();
            let failed = back.series.error_count() + back.shed_count();
            let (p_base, p_back) = (base.series.at(0.95), back.series.at(0.95));
            let ok = failed == 0 && back.series.ok_count() > 0 && p_back <= 2 * p_base.max(1);
            rows.push(vec![
                "stress: recovers (no failure, p95 ≤ 2× the first step's)".into(),
                format!(
                    "{failed} failed; p95 {} ms against {} ms",
                    ms(p_back),
                    ms(p_base)
                ),
                verdict(ok),
            ]);
        }
    }
    if rows.is_empty() {
        return;
    }
    println!("#### Goals of the load scenarios");
    println!();
    report::table(&["goal", "measured", "verdict"], &rows);
}
