//! SVG line charts for reports: a metric against K for each multi-centre variant, with 95%
//! interval bars. Plain SVG text, no plotting dependency.
use std::fmt::Write as _;

/// One line of a chart: a label and (x label, mean, CI half-width) points in x order.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points: x label, mean, half-width of the interval (NaN: none).
    pub points: Vec<(String, f64, f64)>,
}

const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The plot area and the value range it maps, in SVG coordinates.
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    pw: f64,
    ph: f64,
    lo: f64,
    hi: f64,
    columns: usize,
}

impl Frame {
    fn new(series: &[Series], columns: usize) -> Self {
        let (w, h, left, right, top, bottom) = (640.0, 400.0, 70.0, 190.0, 40.0, 55.0);
        let (lo, hi) = y_range(series);
        Frame { w, h, left, right, top, pw: w - left - right, ph: h - top - bottom, lo, hi, columns }
    }

    fn x_of(&self, i: usize) -> f64 {
        self.left + if self.columns > 1 { self.pw * i as f64 / (self.columns - 1) as f64 } else { self.pw / 2.0 }
    }

    fn y_of(&self, v: f64) -> f64 {
        self.top + self.ph * (1.0 - (v - self.lo) / (self.hi - self.lo))
    }
}

/// The y range: every mean ± interval, padded by a tenth (at least 0.5); 0..1 when empty.
fn y_range(series: &[Series]) -> (f64, f64) {
    let half = |ci: f64| if ci.is_nan() { 0.0 } else { ci };
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.1 - half(p.2), p.1 + half(p.2)]))
        .filter(|v| v.is_finite())
        .collect();
    let (mut lo, mut hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.1).max(0.5);
    (lo - pad, hi + pad)
}

/// Title, y grid with its values, x tick labels, the plot frame and both axis labels.
fn axes(s: &mut String, f: &Frame, title: &str, x_label: &str, y_label: &str, xs: &[String]) {
    let (left, top, pw, ph) = (f.left, f.top, f.pw, f.ph);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        left + pw / 2.0,
        esc(title)
    );
    for t in 0..=5 {
        let v = f.lo + (f.hi - f.lo) * t as f64 / 5.0;
        let y = f.y_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v:.1}</text>"##,
            left + pw,
            left - 6.0,
            y + 4.0
        );
    }
    for (i, x) in xs.iter().enumerate() {
        let _ =
            writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#, f.x_of(i), top + ph + 18.0, esc(x));
    }
    let _ = writeln!(s, r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#);
    let _ =
        writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#, left + pw / 2.0, f.h - 12.0, esc(x_label));
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        esc(y_label)
    );
}

/// Series `k`: its line, a dot and interval bar per point, and its legend entry.
fn draw_series(s: &mut String, f: &Frame, k: usize, ser: &Series, xs: &[String]) {
    let c = COLOURS[k % COLOURS.len()];
    let pts: Vec<(f64, f64, f64)> = ser
        .points
        .iter()
        .filter_map(|(x, m, ci)| xs.iter().position(|v| v == x).map(|i| (f.x_of(i), *m, *ci)))
        .collect();
    let path: Vec<String> = pts.iter().map(|(x, m, _)| format!("{x:.1},{:.1}", f.y_of(*m))).collect();
    let _ = writeln!(s, r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#, path.join(" "));
    for (x, m, ci) in &pts {
        if ci.is_finite() {
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{c}"/>"#,
                f.y_of(m - ci),
                f.y_of(m + ci)
            );
        }
        let _ = writeln!(s, r#"<circle cx="{x:.1}" cy="{:.1}" r="3.5" fill="{c}"/>"#, f.y_of(*m));
    }
    let ly = f.top + 16.0 + 20.0 * k as f64;
    let _ = writeln!(
        s,
        r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
        f.w - f.right + 12.0,
        f.w - f.right + 36.0,
        f.w - f.right + 42.0,
        ly + 4.0,
        esc(&ser.label)
    );
}

/// A line chart with categorical x positions (`xs`, in order) and a linear y axis.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, xs: &[String], series: &[Series]) -> String {
    let f = Frame::new(series, xs.len());
    let (w, h) = (f.w, f.h);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    axes(&mut s, &f, title, x_label, y_label, xs);
    for (k, ser) in series.iter().enumerate() {
        draw_series(&mut s, &f, k, ser, xs);
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_one_line_and_point_per_value_and_escapes_text() {
        let xs: Vec<String> = ["1", "2", "10"].iter().map(|s| s.to_string()).collect();
        let series = vec![
            Series {
                label: "SoftTriple τ=0.2".into(),
                points: vec![("1".into(), 58.0, 0.5), ("2".into(), 58.8, 0.4), ("10".into(), 60.4, 0.3)],
            },
            Series { label: "a<b".into(), points: vec![("1".into(), 58.0, f64::NAN), ("10".into(), 59.9, 0.2)] },
        ];
        let svg = line_chart("R@1 against K", "K", "R@1 (%)", &xs, &series);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
    }
}
