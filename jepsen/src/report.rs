//! The human-readable output of a run: `report.txt` (parameters, operation
//! counts, nemesis windows, a per-second timeline, every checker's verdict)
//! and `latency.svg` / `report.html` (latency over time, coloured by outcome,
//! with the nemesis windows shaded).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::checker::Report;
use crate::history::{Kind, Op};

/// A fault window: (start s, end s, label).
pub fn nemesis_windows(ops: &[Op], end_ns: u64) -> Vec<(f64, f64, String)> {
    ops.iter()
        .filter(|o| o.process == "nemesis")
        .map(|o| {
            let end = if o.complete_ns == u64::MAX {
                end_ns
            } else {
                o.complete_ns
            };
            let what = match o.node {
                Some(slot) => format!("{} slot {slot}", o.f),
                None => format!("{} {}", o.f, o.input["shape"].as_str().unwrap_or("")),
            };
            let what = if o.kind == Kind::Fail {
                format!("{what} (refused: {})", o.error.clone().unwrap_or_default())
            } else {
                what
            };
            (o.invoke_ns as f64 / 1e9, end as f64 / 1e9, what)
        })
        .collect()
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Invoke => "invoke",
        Kind::Ok => "ok",
        Kind::Fail => "fail",
        Kind::Info => "info",
    }
}

/// The text report.
pub fn text(header: &[String], ops: &[Op], reports: &[Report], end_ns: u64) -> String {
    let mut s = String::new();
    for line in header {
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(
        s,
        "\n== operations (f: ok / fail / info, p50 / p99 latency ms)"
    );
    let mut by_f: BTreeMap<&str, ([usize; 3], Vec<f64>)> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.process != "nemesis") {
        let e = by_f.entry(&o.f).or_default();
        match o.kind {
            Kind::Ok => e.0[0] += 1,
            Kind::Fail => e.0[1] += 1,
            _ => e.0[2] += 1,
        }
        if let Some(l) = o.latency_ms() {
            e.1.push(l);
        }
    }
    for (f, (c, mut lat)) in by_f {
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let _ = writeln!(
            s,
            "{f:>10}: {:>5} / {:>5} / {:>5}   {:>8.1} / {:>8.1}",
            c[0],
            c[1],
            c[2],
            pct(0.5),
            pct(0.99)
        );
    }
    let windows = nemesis_windows(ops, end_ns);
    let _ = writeln!(s, "\n== nemesis windows ({})", windows.len());
    for (a, b, what) in &windows {
        let _ = writeln!(s, "{a:>7.1}s – {b:>7.1}s  {what}");
    }
    // At most ~200 rows: one per second for short runs, wider buckets for long ones.
    let total = end_ns / 1_000_000_000 + 1;
    let width = total.div_ceil(200).max(1);
    let _ = writeln!(
        s,
        "\n== timeline (per {width} s: ok fail info; * = a fault is active)"
    );
    let mut buckets = vec![[0usize; 3]; total.div_ceil(width) as usize];
    for o in ops.iter().filter(|o| o.process != "nemesis") {
        let b = (o.invoke_ns / 1_000_000_000 / width) as usize;
        if let Some(b) = buckets.get_mut(b) {
            match o.kind {
                Kind::Ok => b[0] += 1,
                Kind::Fail => b[1] += 1,
                _ => b[2] += 1,
            }
        }
    }
    for (i, b) in buckets.iter().enumerate() {
        let (from, to) = ((i as u64 * width) as f64, ((i as u64 + 1) * width) as f64);
        let active = windows.iter().any(|(a, e, _)| *a < to && *e >= from);
        let _ = writeln!(
            s,
            "{:>6}s {:>5} {:>5} {:>5} {} {}",
            i as u64 * width,
            b[0],
            b[1],
            b[2],
            if active { "*" } else { " " },
            "#".repeat((b[0] / width as usize).min(60))
        );
    }
    let _ = writeln!(s, "\n== checkers");
    for r in reports {
        let verdict = match r.valid {
            Some(true) => "valid",
            Some(false) => "ANOMALIES",
            None => "unknown",
        };
        let _ = writeln!(s, "{:<28} {verdict}", r.checker);
        for n in &r.notes {
            let _ = writeln!(s, "    note: {n}");
        }
        for a in &r.anomalies {
            let _ = writeln!(s, "    ANOMALY: {a}");
        }
    }
    s
}

/// Latency over time, one dot per completed (or unknown) op.
pub fn svg(ops: &[Op], end_ns: u64) -> String {
    let (w, h, left, bottom) = (1200.0, 420.0, 60.0, 30.0);
    let plot_w = w - left - 10.0;
    let plot_h = h - bottom - 10.0;
    let t_max = (end_ns as f64 / 1e9).max(1.0);
    let x = |t: f64| left + t / t_max * plot_w;
    // Log scale from 1 ms to 20 s.
    let (lo, hi) = (0.0f64, (20_000.0f64).log10());
    let y = |ms: f64| 10.0 + plot_h - ((ms.max(1.0).log10() - lo) / (hi - lo)).min(1.0) * plot_h;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    for (a, b, what) in nemesis_windows(ops, end_ns) {
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="10" width="{:.1}" height="{plot_h}" fill="#f2c14e" fill-opacity="0.25"><title>{}</title></rect>"##,
            x(a),
            (x(b) - x(a)).max(1.0),
            escape(&what)
        );
    }
    for ms in [1.0, 10.0, 100.0, 1000.0, 10000.0] {
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="4" y="{:.1}">{ms} ms</text>"##,
            w - 10.0,
            y(ms) + 4.0,
            y = y(ms)
        );
    }
    let step = if t_max > 600.0 { 120.0 } else { 10.0 };
    let mut t = 0.0;
    while t <= t_max {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}">{t}s</text>"#,
            x(t) - 8.0,
            h - 8.0
        );
        t += step;
    }
    for o in ops.iter().filter(|o| o.process != "nemesis") {
        let (lat, colour) = match (o.kind, o.latency_ms()) {
            (Kind::Ok, Some(l)) => (l, "#2a9d3f"),
            (Kind::Fail, Some(l)) => (l, "#d62828"),
            (_, Some(l)) => (l, "#f77f00"),
            (_, None) => (20_000.0, "#f77f00"),
        };
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="{colour}"><title>{} {} {}</title></circle>"##,
            x(o.invoke_ns as f64 / 1e9),
            y(lat),
            o.process,
            o.f,
            kind_name(o.kind)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="22" fill="#2a9d3f">● ok</text><text x="{}" y="22" fill="#d62828">● fail</text><text x="{}" y="22" fill="#f77f00">● info</text><text x="{}" y="22" fill="#b8860b">▮ fault</text></svg>"##,
        w - 260.0,
        w - 210.0,
        w - 160.0,
        w - 110.0
    );
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes `report.txt`, `latency.svg` and `report.html` into `out`.
pub fn write(out: &Path, text: &str, svg: &str) -> anyhow::Result<()> {
    std::fs::write(out.join("report.txt"), text)?;
    std::fs::write(out.join("latency.svg"), svg)?;
    std::fs::write(
        out.join("report.html"),
        format!(
            "<!doctype html><meta charset=\"utf-8\"><title>jepsen report</title>\
             <h1>Consistency run</h1><p>Latency of every operation over time \
             (log scale), shaded while a fault is active.</p>{svg}<pre>{}</pre>",
            escape(text)
        ),
    )?;
    Ok(())
}
