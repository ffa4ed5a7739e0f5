//! Line charts as self-contained SVG files, written by hand. The charts are
//! few and plain (a handful of lines over seconds or client counts, axes,
//! a legend), and a page of string formatting is smaller to build and read
//! than a plotting crate with a font stack; the files open in a browser and
//! render on GitHub, next to the CSV they were drawn from. Pure: a [`Chart`]
//! in, a `String` out.
//!
//! A point whose y is not finite (NaN: "no value that second") breaks its
//! line instead of being drawn as zero.

use std::fmt::Write as _;

/// One named line.
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart: lines over a shared x axis (linear, or logarithmic for client
/// counts) and a y axis from 0.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic x axis, ticked at the x values of the points.
    pub x_log: bool,
    pub lines: Vec<Line>,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Colour-blind-safe (Okabe–Ito).
const COLOURS: [&str; 7] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
];

impl Chart {
    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let finite = |v: &f64| v.is_finite();
        let xs: Vec<f64> = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| self.x_of(p.0)))
            .filter(finite)
            .collect();
        let ys: Vec<f64> = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .filter(finite)
            .collect();
        let (x_min, x_max) = span(&xs);
        let y_max = nice_ceiling(ys.iter().copied().fold(0.0, f64::max));
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (self.x_of(x) - x_min) / (x_max - x_min) * plot_w;
        let sy = |y: f64| TOP + plot_h - y / y_max * plot_h;

        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        s.push('\n');
        let _ = writeln!(
            s,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
            LEFT + plot_w / 2.0,
            escape(&self.title)
        );
        // Grid and y ticks.
        for i in 0..=5 {
            let y = y_max * i as f64 / 5.0;
            let py = sy(y);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/>"##,
                LEFT + plot_w
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                py + 4.0,
                number(y)
            );
        }
        // X ticks: the points' own x values on a log axis, round steps otherwise.
        let ticks: Vec<f64> = if self.x_log {
            let mut t: Vec<f64> = self
                .lines
                .iter()
                .flat_map(|l| l.points.iter().map(|p| p.0))
                .filter(|x| *x > 0.0)
                .collect();
            t.sort_by(f64::total_cmp);
            t.dedup();
            t
        } else {
            linear_ticks(x_min, x_max)
        };
        for x in ticks {
            let px = sx(x);
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#999"/>"##,
                TOP + plot_h,
                TOP + plot_h + 5.0
            );
            let _ = writeln!(
                s,
                r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                TOP + plot_h + 18.0,
                number(x)
            );
        }
        // Axes and their labels.
        let _ = writeln!(
            s,
            r##"<path d="M{LEFT},{TOP} V{:.1} H{:.1}" fill="none" stroke="#333"/>"##,
            TOP + plot_h,
            LEFT + plot_w
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 10.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        // Lines, split where y is missing; dots when there are few points.
        for (i, line) in self.lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            for run in line
                .points
                .split(|p| !p.1.is_finite() || !self.x_of(p.0).is_finite())
                .filter(|r| !r.is_empty())
            {
                let d: Vec<String> = run
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                    d.join(" ")
                );
                if line.points.len() <= 24 {
                    for &(x, y) in run {
                        let _ = writeln!(
                            s,
                            r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                            sx(x),
                            sy(y)
                        );
                    }
                }
            }
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let lx = WIDTH - RIGHT + 15.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/>"#,
                lx + 20.0
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}">{}</text>"#,
                lx + 26.0,
                ly + 4.0,
                escape(&line.name)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// Where `x` sits on the axis (its logarithm on a log axis).
    fn x_of(&self, x: f64) -> f64 {
        if self.x_log {
            x.log10()
        } else {
            x
        }
    }
}

/// The smallest and largest value, widened so the span is never empty.
fn span(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        (0.0, 1.0)
    } else if (hi - lo).abs() < f64::EPSILON {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

/// A round number (1, 2 or 5 × 10^k) at or above `v`; 1 for nothing.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

/// About six round ticks from `lo` to `hi`.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let step = nice_ceiling((hi - lo) / 6.0);
    let mut t = (lo / step).ceil() * step;
    let mut ticks = Vec::new();
    while t <= hi + step * 1e-9 {
        ticks.push(t);
        t += step;
    }
    ticks
}

/// A tick label: no trailing ".0", thousands as "k".
fn number(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{}k", (v / 1000.0 * 10.0).round() / 10.0)
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v:.1}")
    }
}

/// Text safe inside an SVG element.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::{nice_ceiling, number, Chart, Line};

    /// Checks that every tag is closed in order (enough XML for our output:
    /// no comments, CDATA or processing instructions).
    fn well_formed(svg: &str) -> Result<(), String> {
        let mut open: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let end = rest[i..].find('>').ok_or("unclosed <")? + i;
            let tag = &rest[i + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                let top = open.pop().ok_or(format!("stray </{name}>"))?;
                if top != name {
                    return Err(format!("</{name}> closes <{top}>"));
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().ok_or("empty tag")?;
                open.push(name.to_string());
            }
            if rest[i + 1..end].contains('<') {
                return Err("< inside a tag".into());
            }
            rest = &rest[end + 1..];
        }
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed: {open:?}"))
        }
    }

    fn chart(x_log: bool, lines: Vec<Line>) -> Chart {
        Chart {
            title: "p95 <ms> & errors".into(),
            x_label: "second".into(),
            y_label: "ms".into(),
            x_log,
            lines,
        }
    }

    #[test]
    fn the_svg_is_well_formed_and_escapes_text() {
        let svg = chart(
            false,
            vec![
                Line {
                    name: "p50".into(),
                    points: (0..100).map(|i| (i as f64, (i % 7) as f64)).collect(),
                },
                Line {
                    name: "p95 \"tail\"".into(),
                    points: vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 4.0)],
                },
            ],
        )
        .svg();
        well_formed(&svg).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("p95 &lt;ms&gt; &amp; errors"));
        assert!(svg.contains("p95 &quot;tail&quot;"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        // The missing second splits the second line in two.
        assert_eq!(svg.matches("<polyline").count(), 1 + 2);
    }

    #[test]
    fn empty_and_log_charts_are_well_formed() {
        well_formed(&chart(false, vec![]).svg()).unwrap();
        let one = Line {
            name: "only".into(),
            points: vec![(5.0, 0.0)],
        };
        well_formed(&chart(false, vec![one]).svg()).unwrap();
        let svg = chart(
            true,
            vec![Line {
                name: "checkouts/s".into(),
                points: vec![(1.0, 129.0), (16.0, 277.0), (64.0, 402.0), (256.0, 451.0)],
            }],
        )
        .svg();
        well_formed(&svg).unwrap();
        // Ticked at the client counts, one dot per point.
        for label in [">1<", ">16<", ">64<", ">256<", ">500<"] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn the_checker_catches_broken_svg() {
        assert!(well_formed("<svg><g></svg>").is_err());
        assert!(well_formed("<svg>").is_err());
        assert!(well_formed("<svg><rect/></svg>").is_ok());
    }

    #[test]
    fn axis_numbers_are_round() {
        assert_eq!(nice_ceiling(451.0), 500.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(2100.0), 2500.0);
        assert_eq!(number(25_000.0), "25k");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(2.5), "2.5");
    }
}
