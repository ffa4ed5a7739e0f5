//! Files beside the printed tables: per-second timelines of the load
//! scenarios (CSV and SVG) and throughput-against-clients charts of the
//! checkout and read steps, in the directory given by `--out` (a kept temp
//! dir otherwise; its path is printed). The documented full run writes to
//! `docs/perf/`. Drawing is `plot.rs`'s; this module only chooses what to
//! draw and names the files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::checkout::CheckoutStep;
use crate::plot::{Chart, Line};
use crate::reads;
use crate::timeline::Timeline;

/// Where the files go.
pub struct Out {
    dir: PathBuf,
}

impl Out {
    /// `dir` (created if needed), or a new temp dir that outlives the run.
    pub fn resolve(dir: Option<PathBuf>) -> anyhow::Result<Out> {
        let dir = match dir {
            Some(d) => {
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                d
            }
            None => tempfile::Builder::new()
                .prefix("ecommerce-bench-figures-")
                .tempdir()?
                .keep(),
        };
        Ok(Out { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write(&self, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// A scenario's timeline: `scenario-{name}.csv` and charts of latency,
    /// answers per second, open connections and RSS.
    pub fn timeline(
        &self,
        name: &str,
        title: &str,
        t: &Timeline,
        nodes: usize,
    ) -> anyhow::Result<Vec<PathBuf>> {
        let b = t.buckets();
        let per_second = |f: &dyn Fn(usize) -> f64| -> Vec<(f64, f64)> {
            (0..b.len()).map(|i| (i as f64, f(i))).collect()
        };
        let nan = f64::NAN;
        let latency = Chart {
            title: format!("{title}: latency of successful answers"),
            x_label: "second".into(),
            y_label: "ms".into(),
            x_log: false,
            lines: vec![
                Line {
                    name: "p50".into(),
                    points: per_second(&|i| b[i].ms_at(0.50).unwrap_or(nan)),
                },
                Line {
                    name: "p95".into(),
                    points: per_second(&|i| b[i].ms_at(0.95).unwrap_or(nan)),
                },
            ],
        };
        let answers = Chart {
            title: format!("{title}: answers per second"),
            x_label: "second".into(),
            y_label: "answers/s".into(),
            x_log: false,
            lines: vec![
                Line {
                    name: "ok".into(),
                    points: per_second(&|i| b[i].ok.len() as f64),
                },
                Line {
                    name: "shed (429/503)".into(),
                    points: per_second(&|i| b[i].shed as f64),
                },
                Line {
                    name: "errors".into(),
                    points: per_second(&|i| b[i].errors as f64),
                },
            ],
        };
        let connections = Chart {
            title: format!("{title}: open connections"),
            x_label: "second".into(),
            y_label: "connections".into(),
            x_log: false,
            lines: vec![Line {
                name: "open".into(),
                points: per_second(&|i| b[i].open.map_or(nan, |o| o as f64)),
            }],
        };
        let rss = Chart {
            title: format!("{title}: RSS per node"),
            x_label: "second".into(),
            y_label: "MiB".into(),
            x_log: false,
            lines: (0..nodes)
                .map(|n| Line {
                    name: format!("node {}", n + 1),
                    points: per_second(&|i| {
                        b[i].rss_kib
                            .get(n)
                            .copied()
                            .flatten()
                            .map_or(nan, |k| k as f64 / 1024.0)
                    }),
                })
                .collect(),
        };
        Ok(vec![
            self.write(&format!("scenario-{name}.csv"), &t.csv(nodes))?,
            self.write(&format!("scenario-{name}-latency.svg"), &latency.svg())?,
            self.write(&format!("scenario-{name}-answers.svg"), &answers.svg())?,
            self.write(
                &format!("scenario-{name}-connections.svg"),
                &connections.svg(),
            )?,
            self.write(&format!("scenario-{name}-rss.svg"), &rss.svg())?,
        ])
    }

    /// Throughput and latency against client count: checkouts per second
    /// with checkout p50/p95/p99, and reads per second of each read target.
    pub fn clients(
        &self,
        checkout: Option<&[CheckoutStep]>,
        reads: Option<&[reads::Series]>,
    ) -> anyhow::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        if let Some(steps) = checkout {
            let mut csv = String::from(
                "clients,checkouts_per_s,checkout_p50_ms,checkout_p95_ms,checkout_p99_ms\n",
            );
            let q = |s: &CheckoutStep, q: f64| {
                s.step
                    .rec
                    .get("checkout")
                    .filter(|c| c.ok_count() > 0)
                    .map_or(f64::NAN, |c| c.at(q) as f64 / 1000.0)
            };
            for s in steps {
                let _ = writeln!(
                    csv,
                    "{},{:.1},{:.2},{:.2},{:.2}",
                    s.step.clients,
                    s.step.rate("checkout"),
                    q(s, 0.50),
                    q(s, 0.95),
                    q(s, 0.99)
                );
            }
            let x = |s: &CheckoutStep| s.step.clients as f64;
            let throughput = Chart {
                title: "Checkout on 3 nodes: throughput against clients".into(),
                x_label: "concurrent clients (closed loop)".into(),
                y_label: "checkouts/s".into(),
                x_log: true,
                lines: vec![Line {
                    name: "checkouts/s".into(),
                    points: steps
                        .iter()
                        .map(|s| (x(s), s.step.rate("checkout")))
                        .collect(),
                }],
            };
            let latency = Chart {
                title: "Checkout on 3 nodes: latency against clients".into(),
                x_label: "concurrent clients (closed loop)".into(),
                y_label: "ms".into(),
                x_log: true,
                lines: [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)]
                    .iter()
                    .map(|&(name, quantile)| Line {
                        name: name.into(),
                        points: steps.iter().map(|s| (x(s), q(s, quantile))).collect(),
                    })
                    .collect(),
            };
            files.push(self.write("checkout-clients.csv", &csv.replace("NaN", ""))?);
            files.push(self.write("checkout-throughput.svg", &throughput.svg())?);
            files.push(self.write("checkout-latency.svg", &latency.svg())?);
        }
        if let Some(series) = reads {
            let mut csv = String::from("read,clients,reads_per_s\n");
            for s in series {
                for (step, _) in &s.steps {
                    let _ = writeln!(
                        csv,
                        "{},{},{:.1}",
                        s.target.name(),
                        step.clients,
                        step.rate("read")
                    );
                }
            }
            let chart = Chart {
                title: "Reads: throughput against clients".into(),
                x_label: "concurrent clients (closed loop)".into(),
                y_label: "reads/s".into(),
                x_log: true,
                lines: series
                    .iter()
                    .map(|s| Line {
                        name: s.target.name().into(),
                        points: s
                            .steps
                            .iter()
                            .map(|(step, _)| (step.clients as f64, step.rate("read")))
                            .collect(),
                    })
                    .collect(),
            };
            files.push(self.write("reads-clients.csv", &csv)?);
            files.push(self.write("reads-throughput.svg", &chart.svg())?);
        }
        Ok(files)
    }
}
