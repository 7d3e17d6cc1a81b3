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

/// A line chart with categorical x positions (`xs`, in order) and a linear y axis.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, xs: &[String], series: &[Series]) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 400.0, 70.0, 190.0, 40.0, 55.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .flat_map(|p| [p.1 - if p.2.is_nan() { 0.0 } else { p.2 }, p.1 + if p.2.is_nan() { 0.0 } else { p.2 }])
        })
        .filter(|v| v.is_finite())
        .collect();
    let (mut lo, mut hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.1).max(0.5);
    (lo, hi) = (lo - pad, hi + pad);
    let x_of = |i: usize| left + if xs.len() > 1 { pw * i as f64 / (xs.len() - 1) as f64 } else { pw / 2.0 };
    let y_of = |v: f64| top + ph * (1.0 - (v - lo) / (hi - lo));
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        left + pw / 2.0,
        esc(title)
    );
    for t in 0..=5 {
        let v = lo + (hi - lo) * t as f64 / 5.0;
        let y = y_of(v);
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
            writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#, x_of(i), top + ph + 18.0, esc(x));
    }
    let _ = writeln!(s, r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#);
    let _ =
        writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#, left + pw / 2.0, h - 12.0, esc(x_label));
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        esc(y_label)
    );
    for (k, ser) in series.iter().enumerate() {
        let c = COLOURS[k % COLOURS.len()];
        let pts: Vec<(f64, f64, f64)> = ser
            .points
            .iter()
            .filter_map(|(x, m, ci)| xs.iter().position(|v| v == x).map(|i| (x_of(i), *m, *ci)))
            .collect();
        let path: Vec<String> = pts.iter().map(|(x, m, _)| format!("{x:.1},{:.1}", y_of(*m))).collect();
        let _ = writeln!(s, r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#, path.join(" "));
        for (x, m, ci) in &pts {
            if ci.is_finite() {
                let _ = writeln!(
                    s,
                    r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{c}"/>"#,
                    y_of(m - ci),
                    y_of(m + ci)
                );
            }
            let _ = writeln!(s, r#"<circle cx="{x:.1}" cy="{:.1}" r="3.5" fill="{c}"/>"#, y_of(*m));
        }
        let ly = top + 16.0 + 20.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            w - right + 12.0,
            w - right + 36.0,
            w - right + 42.0,
            ly + 4.0,
            esc(&ser.label)
        );
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
