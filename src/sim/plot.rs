//! `--plot FILE.svg`: the simulation as a two-panel SVG chart.
//!
//! Top: demanded vs delivered utilisation (% of all vCPUs) with the baseline. Bottom: the
//! credit balance, the surplus balance and the cumulative surplus charged. Time runs in
//! minutes, hours or days depending on the span. Rendering is to a string; only
//! [`write_svg`] touches the file system.

use super::engine::SimResult;
use crate::credit::Profile;
use plotters::coord::Shift;
use plotters::prelude::*;

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 760;
const DEMANDED: RGBColor = RGBColor(214, 39, 40);
const DEMANDED_FILL: RGBColor = RGBColor(246, 190, 190);
const DELIVERED: RGBColor = RGBColor(31, 119, 180);
const DELIVERED_FILL: RGBColor = RGBColor(196, 220, 238);
const BASELINE: RGBColor = RGBColor(90, 90, 90);
const BALANCE: RGBColor = RGBColor(44, 160, 44);
const SURPLUS: RGBColor = RGBColor(255, 127, 14);
const CHARGED: RGBColor = RGBColor(148, 103, 189);

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    #[error("{path}: cannot write the chart: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// Renders the chart and writes it to `path`.
pub fn write_svg(path: &str, profile: &Profile, result: &SimResult) -> Result<(), PlotError> {
    let svg = render_svg(profile, result)?;
    std::fs::write(path, svg).map_err(|source| PlotError::Io {
        path: path.to_string(),
        source,
    })
}

/// The time unit of the x axis: its name and seconds per unit.
fn time_unit(span_s: f64) -> (&'static str, f64) {
    if span_s <= 3.0 * 3600.0 {
        ("minutes", 60.0)
    } else if span_s <= 4.0 * 86_400.0 {
        ("hours", 3600.0)
    } else {
        ("days", 86_400.0)
    }
}

/// The chart as an SVG document.
pub fn render_svg(profile: &Profile, result: &SimResult) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let title = format!(
            "burstd simulate: {} ({} vCPU, {} credits/h), {} mode",
            profile.name,
            profile.vcpus,
            profile.earn_rate.credits_per_hour(),
            result.mode
        );
        let root = root.titled(&title, ("sans-serif", 22)).map_err(draw_err)?;
        let (top, bottom) = root.split_vertically(HEIGHT as i32 * 46 / 100);
        draw_utilization(&top, profile, result)?;
        draw_credits(&bottom, result)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Step averages drawn as a staircase: each value holds from the step's start to its end.
fn staircase(result: &SimResult, unit_s: f64, value: impl Fn(usize) -> f64) -> Vec<(f64, f64)> {
    let mut points = Vec::with_capacity(result.steps.len() * 2);
    let mut start = 0.0;
    for (i, s) in result.steps.iter().enumerate() {
        let v = value(i);
        points.push((start / unit_s, v));
        points.push((s.t_end_s / unit_s, v));
        start = s.t_end_s;
    }
    points
}

/// Tick labels without needless decimals: 12, not 12.0; 0.5 on short axes.
fn axis_label(x: f64, max: f64) -> String {
    if max >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn span_s(result: &SimResult) -> f64 {
    result.summary.duration_s.max(1.0)
}

fn draw_utilization(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    profile: &Profile,
    result: &SimResult,
) -> Result<(), PlotError> {
    let (unit, unit_s) = time_unit(span_s(result));
    let x_max = span_s(result) / unit_s;
    let mut chart = ChartBuilder::on(area)
        .caption("CPU utilization", ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..128.0)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(format!("time [{unit}]"))
        .y_desc("% of all vCPUs")
        .light_line_style(RGBColor(240, 240, 240))
        .x_label_formatter(&|x| axis_label(*x, x_max))
        .y_label_formatter(&|y| {
            // The space above 100% is headroom for the legend.
            if *y > 100.0 {
                String::new()
            } else {
                format!("{y:.0}")
            }
        })
        .draw()
        .map_err(draw_err)?;
    let steps = &result.steps;
    let demanded = staircase(result, unit_s, |i| steps[i].utilization_demanded);
    let delivered = staircase(result, unit_s, |i| steps[i].utilization);
    // Opaque fills: the delivered area covers the demanded one, so what shows in red is the
    // demand that was not delivered (held at baseline).
    chart
        .draw_series(AreaSeries::new(demanded.clone(), 0.0, DEMANDED_FILL))
        .map_err(draw_err)?;
    chart
        .draw_series(AreaSeries::new(delivered.clone(), 0.0, DELIVERED_FILL))
        .map_err(draw_err)?;
    chart
        .draw_series(LineSeries::new(demanded, DEMANDED.stroke_width(1)))
        .map_err(draw_err)?
        .label("demanded utilization")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], DEMANDED_FILL.filled()));
    chart
        .draw_series(LineSeries::new(delivered, DELIVERED.stroke_width(2)))
        .map_err(draw_err)?
        .label("delivered utilization")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], DELIVERED_FILL.filled()));
    let baseline = profile.baseline().as_cores() * 100.0 / profile.vcpus as f64;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, baseline), (x_max, baseline)],
            6,
            4,
            BASELINE.stroke_width(1),
        ))
        .map_err(draw_err)?
        .label(format!("baseline ({baseline:.1}%)"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BASELINE.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

fn draw_credits(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    result: &SimResult,
) -> Result<(), PlotError> {
    let (unit, unit_s) = time_unit(span_s(result));
    let x_max = span_s(result) / unit_s;
    let steps = &result.steps;
    let start = (0.0, result.summary.initial_balance);
    let balance: Vec<(f64, f64)> = std::iter::once(start)
        .chain(steps.iter().map(|s| (s.t_end_s / unit_s, s.credit_balance)))
        .collect();
    let surplus: Vec<(f64, f64)> = std::iter::once((0.0, 0.0))
        .chain(
            steps
                .iter()
                .map(|s| (s.t_end_s / unit_s, s.surplus_credit_balance)),
        )
        .collect();
    let mut total = 0.0;
    let charged: Vec<(f64, f64)> = std::iter::once((0.0, 0.0))
        .chain(steps.iter().map(|s| {
            total += s.surplus_credits_charged;
            (s.t_end_s / unit_s, total)
        }))
        .collect();
    let y_max = balance
        .iter()
        .chain(&surplus)
        .chain(&charged)
        .map(|p| p.1)
        .fold(1.0f64, f64::max)
        * 1.4; // headroom for the legend
    let mut chart = ChartBuilder::on(area)
        .caption("CPU credits", ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(format!("time [{unit}]"))
        .y_desc("credits")
        .light_line_style(RGBColor(240, 240, 240))
        .x_label_formatter(&|x| axis_label(*x, x_max))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(draw_err)?;
    for (points, color, label) in [
        (balance, BALANCE, "CPUCreditBalance"),
        (surplus, SURPLUS, "CPUSurplusCreditBalance"),
        (charged, CHARGED, "CPUSurplusCreditsCharged (cumulative)"),
    ] {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(draw_err)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(draw_err)?;
    Ok(())
}
