//! Charts: training curves and confusion matrices as PNG (plotters, embedded font).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::TrainError;
use crate::metrics::EpochMetrics;

static FONT: Once = Once::new();

/// Registers the bundled DejaVu Sans so charts render the same on every machine.
fn font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        let _ = register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

/// Points of one curve: (epoch, value).
pub(crate) type Curve = Vec<(f64, f64)>;

fn err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::file(path, format!("cannot draw chart: {e}"))
}

/// Loss (left) and accuracy (right) per epoch, train vs test.
pub fn curves(path: &Path, history: &[EpochMetrics], title: &str) -> Result<(), TrainError> {
    font();
    let root = BitMapBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| err(path, e))?;
    let (left, right) = root.split_horizontally(600);
    let epochs = history.len().max(2) as f64;
    let xs = |f: fn(&EpochMetrics) -> f64| -> Curve {
        history.iter().map(|m| (m.epoch as f64, f(m))).collect()
    };
    let panels = [
        (&left, "loss", xs(|m| m.train_loss), xs(|m| m.test_loss)),
        (
            &right,
            "accuracy (%)",
            xs(|m| 100.0 * m.train_acc),
            xs(|m| 100.0 * m.test_top1),
        ),
    ];
    for (area, label, train, test) in panels {
        let values = train
            .iter()
            .chain(&test)
            .map(|p| p.1)
            .filter(|v| v.is_finite());
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
        let pad = ((hi - lo) * 0.08).max(1e-3);
        let mut chart = ChartBuilder::on(area)
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(1.0..epochs, (lo - pad)..(hi + pad))
            .map_err(|e| err(path, e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(path, e))?;
        for (series, color, name) in [(train, BLUE, "train"), (test, RED, "test")] {
            chart
                .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
                .map_err(|e| err(path, e))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            chart
                .draw_series(series.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(|e| err(path, e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))
}

/// A confusion matrix heat map: rows are true classes, columns predictions, row-normalised.
pub fn confusion(path: &Path, matrix: &[Vec<u64>], classes: &[String]) -> Result<(), TrainError> {
    font();
    let n = matrix.len().max(1);
    let cell = (600 / n).clamp(6, 60) as u32;
    let size = (cell * n as u32 + 260, cell * n as u32 + 200);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "confusion matrix (rows: true class, row-normalised)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(110)
        .y_label_area_size(120)
        .build_cartesian_2d((0..n).into_segmented(), (0..n).into_segmented())
        .map_err(|e| err(path, e))?;
    // Rows are drawn top-down: true class t sits at y = n - 1 - t.
    let name = |v: &SegmentValue<usize>, flip: bool| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if *i < n => {
            let i = if flip { n - 1 - i } else { *i };
            classes.get(i).cloned().unwrap_or_else(|| i.to_string())
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n)
        .y_labels(n)
        .x_desc("predicted")
        .y_desc("true")
        .x_label_formatter(&|v| name(v, false))
        .y_label_formatter(&|v| name(v, true))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| err(path, e))?;
    let cells = matrix.iter().enumerate().flat_map(|(t, row)| {
        let total = row.iter().sum::<u64>().max(1) as f64;
        row.iter()
            .enumerate()
            .map(move |(p, &c)| (t, p, c as f64 / total))
    });
    chart
        .draw_series(cells.map(|(t, p, v)| {
            let shade = (255.0 * (1.0 - v)) as u8;
            Rectangle::new(
                [
                    (SegmentValue::Exact(p), SegmentValue::Exact(n - 1 - t)),
                    (SegmentValue::Exact(p + 1), SegmentValue::Exact(n - t)),
                ],
                RGBColor(shade, shade, 255).filled(),
            )
        }))
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// One labelled curve of a multi-curve panel.
pub(crate) type Labelled = (String, Curve);

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(227, 119, 194),
];

/// Panels (up to three per row) of several labelled curves each, sharing one y range and one
/// colour per label (each panel's x range fits its curves); each panel is (caption, y axis label, curves).
pub(crate) fn panels(
    path: &Path,
    title: &str,
    x_desc: &str,
    content: &[(String, &str, Vec<Labelled>)],
) -> Result<(), TrainError> {
    font();
    let cols = content.len().clamp(1, 3);
    let rows = content.len().max(1).div_ceil(cols);
    let size = (700 * cols as u32, 500 * rows as u32 + 60);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| err(path, e))?;
    let points = || content.iter().flat_map(|p| &p.2).flat_map(|c| &c.1);
    let (lo, hi) = points().fold((f64::MAX, f64::MIN), |(c, d), p| (c.min(p.1), d.max(p.1)));
    let (lo, hi) = if lo > hi {
        (0.0, 1.0)
    } else {
        let pad = ((hi - lo) * 0.06).max(1e-3);
        (lo - pad, hi + pad)
    };
    let areas = root.split_evenly((rows, cols));
    for (area, (caption, y_desc, curves)) in areas.iter().zip(content) {
        // One y range for every panel (comparable heights); x fits each panel's own curves.
        let (x_lo, x_hi) = curves
            .iter()
            .flat_map(|c| &c.1)
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (x_lo, x_hi) = if x_lo >= x_hi {
            (0.0, 1.0)
        } else {
            (x_lo, x_hi)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 16))
            .margin(14)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x_lo..x_hi, lo..hi)
            .map_err(|e| err(path, e))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(*y_desc)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(path, e))?;
        for (i, (label, curve)) in curves.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            // Wide strokes join dense zig-zags with long miter spikes that leave the panel.
            let width = if curve.len() > 200 { 1 } else { 2 };
            chart
                .draw_series(LineSeries::new(curve.clone(), color.stroke_width(width)))
                .map_err(|e| err(path, e))?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))
}
