//! SVG line charts of sweep results. The SVG backend writes text as SVG
//! `<text>` elements, so no font files or native libraries are needed, and
//! the charts render in any browser and in GitHub's Markdown preview.

use crate::SimError;
use plotters::backend::SVGBackend;
use plotters::prelude::*;
use std::path::Path;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// One value per x.
    pub ys: Vec<f64>,
}

/// A compact tick label: 1.2k, 3.4M, 0.05.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e12 {
        format!("{:.1}T", v / 1e12)
    } else if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> SimError {
    SimError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Draws `series` against `xs` into an SVG at `path`. With `x_labels`, the
/// x axis is categorical (xs are 0, 1, 2...) and labelled with them.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    xs: &[f64],
    x_labels: Option<&[String]>,
    series: &[Series],
) -> Result<(), SimError> {
    if xs.is_empty() {
        return Err(plot_err(path, "no points to plot"));
    }
    let finite = |v: &f64| v.is_finite();
    let (mut x0, mut x1) = xs
        .iter()
        .filter(|v| finite(v))
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    if x0 >= x1 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let pad = (x1 - x0) * 0.04;
    let (x0, x1) = (x0 - pad, x1 + pad);
    let ymax = series
        .iter()
        .flat_map(|s| s.ys.iter())
        .filter(|v| finite(v))
        .fold(0.0f64, |a, v| a.max(*v));
    let ymax = if ymax > 0.0 { ymax * 1.15 } else { 1.0 };

    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0f64..ymax)
        .map_err(|e| plot_err(path, e))?;
    let labels: Vec<String> = x_labels.map(|l| l.to_vec()).unwrap_or_default();
    let categorical = x_labels.is_some();
    let xfmt = |v: &f64| -> String {
        if categorical {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        } else {
            short(*v)
        }
    };
    let yfmt = |v: &f64| short(*v);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .label_style(("sans-serif", 14));
    if categorical {
        mesh.x_labels(xs.len() * 2 + 1);
    }
    mesh.draw().map_err(|e| plot_err(path, e))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = xs
            .iter()
            .zip(&s.ys)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| (*x, *y))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| plot_err(path, e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_svg_without_fonts() {
        let dir = std::env::temp_dir().join(format!("elohim-sim-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.svg");
        line_chart(
            &path,
            "Test",
            "x",
            "y",
            &[0.0, 1.0, 2.0],
            Some(&["a".into(), "b".into(), "c".into()]),
            &[Series {
                name: "s".into(),
                ys: vec![1.0, 3.0, 2.0],
            }],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("Test") && svg.contains("\nb\n"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(short(1_500_000.0), "1.5M");
        assert_eq!(short(0.25), "0.250");
    }
}
