//! SVG line charts for reports, drawn with plotters: a metric against K for each multi-centre
//! variant, with 95% interval bars, a legend beside the plot and optional dashed reference lines.
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

/// One line of a chart: a label and (x label, mean, CI half-width) points in x order.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points: x label, mean, half-width of the interval (NaN: none).
    pub points: Vec<(String, f64, f64)>,
    /// Drawn dashed, without markers: a reference value rather than a measurement.
    pub dashed: bool,
}

/// A chart that could not be drawn (the message of the plotting library).
#[derive(Debug, thiserror::Error)]
#[error("chart \"{title}\": {message}")]
pub struct PlotError {
    /// The chart's title.
    pub title: String,
    /// What went wrong.
    pub message: String,
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x8c, 0x56, 0x4b),
];
const SIZE: (u32, u32) = (720, 400);
const LEGEND_WIDTH: u32 = 190;

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

/// A series' finite points as (x position, mean, half-width), x positions from `xs`.
fn positions(ser: &Series, xs: &[String]) -> Vec<(usize, f64, f64)> {
    ser.points
        .iter()
        .filter(|p| p.1.is_finite())
        .filter_map(|(x, m, ci)| xs.iter().position(|v| v == x).map(|i| (i, *m, *ci)))
        .collect()
}

/// A line chart with categorical x positions (`xs`, in order) and a linear y axis, as SVG text.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    xs: &[String],
    series: &[Series],
) -> Result<String, PlotError> {
    let mut svg = String::new();
    draw(&mut svg, title, x_label, y_label, xs, series)
        .map_err(|e| PlotError { title: title.to_string(), message: e.to_string() })?;
    Ok(svg)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(svg: &mut String, title: &str, x_label: &str, y_label: &str, xs: &[String], series: &[Series]) -> DrawResult {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let (lo, hi) = y_range(series);
    let last = xs.len().saturating_sub(1) as i32;
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0..last).into_segmented(), lo..hi)?;
    let x_name = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => xs.get(*i as usize).cloned().unwrap_or_default(),
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(1)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .x_labels(xs.len())
        .x_label_formatter(&x_name)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()?;
    for (k, ser) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let pts = positions(ser, xs);
        let at = |i: usize| SegmentValue::CenterOf(i as i32);
        if ser.dashed {
            chart.draw_series(DashedLineSeries::new(
                pts.iter().map(|p| (at(p.0), p.1)),
                8,
                5,
                colour.stroke_width(2),
            ))?;
        } else {
            chart.draw_series(LineSeries::new(pts.iter().map(|p| (at(p.0), p.1)), colour.stroke_width(2)))?;
            chart.draw_series(pts.iter().map(|p| Circle::new((at(p.0), p.1), 4, colour.filled())))?;
            let bars = pts.iter().filter(|p| p.2.is_finite());
            chart.draw_series(bars.map(|p| ErrorBar::new_vertical(at(p.0), p.1 - p.2, p.1, p.1 + p.2, colour, 10)))?;
        }
        legend_entry(&legend_area, k, ser, colour)?;
    }
    root.present()?;
    Ok(())
}

/// Series `k`'s legend entry: a short line in its style and its label.
fn legend_entry(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    k: usize,
    ser: &Series,
    c: RGBColor,
) -> DrawResult {
    let y = 30 + 22 * k as i32;
    area.draw(&PathElement::new(vec![(8, y), (34, y)], c.stroke_width(2)))?;
    if ser.dashed {
        // A gap in the line marks it dashed.
        area.draw(&Rectangle::new([(16, y - 2), (22, y + 2)], WHITE.filled()))?;
    } else {
        area.draw(&Circle::new((21, y), 4, c.filled()))?;
    }
    area.draw(&Text::new(ser.label.clone(), (40, y - 7), ("sans-serif", 16)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_one_line_and_marker_per_value_one_bar_per_interval_and_escapes_text() {
        let xs: Vec<String> = ["1", "2", "10"].iter().map(|s| s.to_string()).collect();
        let series = vec![
            Series {
                label: "SoftTriple τ=0.2".into(),
                points: vec![("1".into(), 58.0, 0.5), ("2".into(), 58.8, 0.4), ("10".into(), 60.4, 0.3)],
                dashed: false,
            },
            Series {
                label: "a<b".into(),
                points: vec![("1".into(), 58.0, f64::NAN), ("10".into(), 59.9, 0.2)],
                dashed: false,
            },
            Series {
                label: "true views M = 4".into(),
                points: xs.iter().map(|x| (x.clone(), 59.0, f64::NAN)).collect(),
                dashed: true,
            },
        ];
        let svg = line_chart("R@1 against K", "K", "R@1 (%)", &xs, &series).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        // 5 filled data markers and 2 in the legend (the dashed reference line has none).
        let filled = svg.lines().filter(|l| l.starts_with("<circle") && !l.contains(r#"fill="none""#)).count();
        assert_eq!(filled, 7, "{svg}");
        // One interval bar (three strokes) per finite interval: 3 + 1.
        let bar = |l: &&str| l.starts_with("<line") && (l.contains("#1F77B4") || l.contains("#D62728"));
        assert_eq!(svg.lines().filter(bar).count(), 3 * 4, "{svg}");
        // Every x label, legend label and the title, the special character escaped.
        let texts: Vec<&str> = svg.lines().collect();
        for text in ["1", "2", "10", "SoftTriple τ=0.2", "a&lt;b", "true views M = 4", "R@1 against K", "K", "R@1 (%)"]
        {
            assert!(texts.contains(&text), "missing {text}: {svg}");
        }
        assert!(!svg.contains("a<b"));
    }

    #[test]
    fn a_chart_without_points_still_draws_its_axes() {
        let xs: Vec<String> = vec!["1".into(), "2".into()];
        let svg = line_chart("empty", "K", "y", &xs, &[]).unwrap();
        assert!(svg.lines().any(|l| l == "empty") && svg.lines().any(|l| l == "2"), "{svg}");
    }
}
