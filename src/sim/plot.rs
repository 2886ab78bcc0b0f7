//! `--plot FILE.svg`: the simulation as a two-panel SVG chart.
//!
//! Top: demanded vs delivered utilisation (% of all vCPUs) with the baseline. Bottom: the
//! credit balance, the surplus balance and the cumulative surplus charged. On both, the run's
//! [`Marks`]: a thin line labelled `stop`, `start`, `unlimited` or `standard` at each event,
//! stopped spans shaded grey, spans held at the baseline hatched. The title gives the mode at
//! launch and each mode change with its time. Time runs in minutes, hours or days depending on
//! the span. Rendering is to a string; only [`write_svg`] touches the file system.
//!
//! For other charts of trace time (e.g. `advise`): [`draw_marks`] draws the marks on a plot,
//! [`mark_legend`] gives their legend entries, [`draw_legend`] draws a legend, [`mode_story`]
//! words the mode changes.

use super::advise::{Advice, AdviseOption};
use super::engine::SimResult;
use super::marks::{Marks, Span};
use super::report::hms;
use crate::credit::{Mode, Profile};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 760;
/// Right of each plot, for its legend: the plots themselves stay free for the marks' labels.
const LEGEND_WIDTH: u32 = 290;
const DEMANDED: RGBColor = RGBColor(214, 39, 40);
const DEMANDED_FILL: RGBColor = RGBColor(246, 190, 190);
const DELIVERED: RGBColor = RGBColor(31, 119, 180);
const DELIVERED_FILL: RGBColor = RGBColor(196, 220, 238);
const BASELINE: RGBColor = RGBColor(90, 90, 90);
const BALANCE: RGBColor = RGBColor(44, 160, 44);
const SURPLUS: RGBColor = RGBColor(255, 127, 14);
const CHARGED: RGBColor = RGBColor(148, 103, 189);
/// Event lines and labels; used for nothing else, so the marks can be found in the SVG.
const EVENT: RGBColor = RGBColor(51, 51, 51);
const STOPPED: RGBColor = RGBColor(120, 120, 120);
const STOPPED_ALPHA: f64 = 0.25;
const HELD: RGBColor = RGBColor(255, 170, 60);
const HELD_ALPHA: f64 = 0.16;
const HELD_HATCH: RGBColor = RGBColor(170, 80, 0);
const HELD_HATCH_ALPHA: f64 = 0.5;
/// Pixels between hatch lines.
const HATCH_GAP: i32 = 9;
const LABEL_FONT: u32 = 13;
/// Rows of event labels at the top of a plot; a label that fits in none is left out (its
/// line stays).
const LABEL_ROWS: i32 = 3;
/// Characters of mode story that fit in the title beside the profile.
const STORY_CHARS: usize = 64;

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
            "burstd simulate: {} ({} vCPU, {} credits/h), {}",
            profile.name,
            profile.vcpus,
            profile.earn_rate.credits_per_hour(),
            mode_story(result.mode, &result.marks, STORY_CHARS)
        );
        let root = root.titled(&title, ("sans-serif", 22)).map_err(draw_err)?;
        let (top, bottom) = root.split_vertically(HEIGHT as i32 * 46 / 100);
        draw_utilization(&top, profile, result)?;
        draw_credits(&bottom, result)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Lines of the options on the `advise` chart, in ranking order.
const OPTION_COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

/// Writes the `advise` chart ([`render_advice_svg`]) to `path`.
pub fn write_advice_svg(path: &str, advice: &Advice) -> Result<(), PlotError> {
    let svg = render_advice_svg(advice)?;
    std::fs::write(path, svg).map_err(|source| PlotError::Io {
        path: path.to_string(),
        source,
    })
}

/// `burstd advise --plot`: the trace's demand (vCPUs busy, 300 s averages) against the
/// delivered CPU of the ranking's top 3 options and of the recommendation. A fixed-size
/// option delivers min(demand, its vCPUs) of each average.
pub fn render_advice_svg(advice: &Advice) -> Result<String, PlotError> {
    let mut shown: Vec<&AdviseOption> = advice.options.iter().take(3).collect();
    if let Some(r) = &advice.recommendation {
        if let Some(o) = advice
            .options
            .iter()
            .find(|o| o.instance_type == r.instance_type && o.mode == r.mode)
        {
            if !shown.iter().any(|s| std::ptr::eq(*s, o)) {
                shown.push(o);
            }
        }
    }
    let span = advice.trace.duration_s.max(1.0);
    let (unit, unit_s) = time_unit(span);
    let x_max = span / unit_s;
    let y_max = (advice.trace.peak_vcpus * 1.15).max(0.1);
    let demand = &advice.demand_steps;
    let stairs = |value: &dyn Fn(usize) -> f64| {
        let mut points = Vec::with_capacity(demand.len() * 2);
        let mut start = 0.0;
        for (i, &(end, _)) in demand.iter().enumerate() {
            let v = value(i);
            points.push((start / unit_s, v));
            points.push((end / unit_s, v));
            start = end;
        }
        points
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT / 2 + 80)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let root = root
            .titled(
                &format!(
                    "burstd advise: demand ({} vCPUs peak) and delivered CPU of the top options",
                    advice.trace.peak_vcpus
                ),
                ("sans-serif", 20),
            )
            .map_err(draw_err)?;
        let (plot, legend) = plot_and_legend(&root);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(format!("time [{unit}]"))
            .y_desc("vCPUs busy (300 s averages)")
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(215, 215, 215))
            .x_label_formatter(&|x| axis_label(*x, x_max))
            .y_label_formatter(&|y| axis_label(*y, y_max))
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(AreaSeries::new(
                stairs(&|i| demand[i].1),
                0.0,
                DEMANDED_FILL,
            ))
            .map_err(draw_err)?;
        let mut entries = vec![("demand".to_string(), Swatch::Area(DEMANDED_FILL))];
        for (k, o) in shown.iter().enumerate() {
            let color = OPTION_COLORS[k % OPTION_COLORS.len()];
            let points = match &o.result {
                Some(r) => staircase(r, unit_s, |i| {
                    r.steps[i].utilization * o.vcpus as f64 / 100.0
                }),
                None => stairs(&|i| demand[i].1.min(o.vcpus as f64)),
            };
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(draw_err)?;
            entries.push((
                format!(
                    "{} {} (${:.2}/month)",
                    o.instance_type, o.mode, o.monthly_cost_usd
                ),
                Swatch::Line(color, 2),
            ));
        }
        draw_legend(&legend, &entries)?;
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

/// A panel split into its plot (left) and the strip for its legend (right), the legend's top
/// level with the plot's.
fn plot_and_legend<'a>(
    area: &DrawingArea<SVGBackend<'a>, Shift>,
) -> (
    DrawingArea<SVGBackend<'a>, Shift>,
    DrawingArea<SVGBackend<'a>, Shift>,
) {
    let (plot, legend) = area.split_horizontally(WIDTH - LEGEND_WIDTH);
    (plot, legend.margin(PLOT_TOP, 0, 0, 8))
}

/// Pixels from a panel's top to its plot's: the caption and the chart's margin.
const PLOT_TOP: i32 = 36;

fn draw_utilization(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    profile: &Profile,
    result: &SimResult,
) -> Result<(), PlotError> {
    let (unit, unit_s) = time_unit(span_s(result));
    let x_max = span_s(result) / unit_s;
    let (plot, legend) = plot_and_legend(area);
    let mut chart = ChartBuilder::on(&plot)
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
        .bold_line_style(RGBColor(215, 215, 215))
        .x_label_formatter(&|x| axis_label(*x, x_max))
        .y_label_formatter(&|y| {
            // The space above 100% is headroom for the event labels.
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
    // Over the opaque areas, under the lines.
    draw_marks(chart.plotting_area(), &result.marks, unit_s)?;
    chart
        .draw_series(LineSeries::new(demanded, DEMANDED.stroke_width(1)))
        .map_err(draw_err)?;
    chart
        .draw_series(LineSeries::new(delivered, DELIVERED.stroke_width(2)))
        .map_err(draw_err)?;
    let baseline = profile.baseline().as_cores() * 100.0 / profile.vcpus as f64;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, baseline), (x_max, baseline)],
            6,
            4,
            BASELINE.stroke_width(1),
        ))
        .map_err(draw_err)?;
    let mut entries = vec![
        (
            "demanded utilization".to_string(),
            Swatch::Area(DEMANDED_FILL),
        ),
        (
            "delivered utilization".to_string(),
            Swatch::Area(DELIVERED_FILL),
        ),
        (
            format!("baseline ({baseline:.1}%)"),
            Swatch::Line(BASELINE, 1),
        ),
    ];
    entries.extend(mark_legend(&result.marks));
    draw_legend(&legend, &entries)
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
        * 1.25; // headroom for the event labels
    let (plot, legend) = plot_and_legend(area);
    let mut chart = ChartBuilder::on(&plot)
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
        .bold_line_style(RGBColor(215, 215, 215))
        .x_label_formatter(&|x| axis_label(*x, x_max))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(draw_err)?;
    draw_marks(chart.plotting_area(), &result.marks, unit_s)?;
    let mut entries = Vec::new();
    for (points, color, label) in [
        (balance, BALANCE, "CPUCreditBalance"),
        (surplus, SURPLUS, "CPUSurplusCreditBalance"),
        (charged, CHARGED, "CPUSurplusCreditsCharged (cumulative)"),
    ] {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(draw_err)?;
        entries.push((label.to_string(), Swatch::Line(color, 2)));
    }
    entries.extend(mark_legend(&result.marks));
    draw_legend(&legend, &entries)
}

/// The mode at launch and each mode change with its time, e.g. `standard → unlimited at 16:00
/// → standard at 18:00`; `standard mode` without changes. Changes that would take the story
/// past `max_chars` are counted, not listed: `standard → unlimited at 0:00 → … (+5 more)`.
pub fn mode_story(start: Mode, marks: &Marks, max_chars: usize) -> String {
    let changes = marks.mode_changes(start);
    if changes.is_empty() {
        return format!("{start} mode");
    }
    let mut story = start.to_string();
    for (i, (mode, t_s)) in changes.iter().enumerate() {
        let next = format!(" → {mode} at {}", clock(*t_s));
        let left = changes.len() - i;
        // Room for this change and, unless it is the last, for the count of the rest.
        let more = match left - 1 {
            0 => 0,
            rest => format!(" → … (+{rest} more)").chars().count(),
        };
        if story.chars().count() + next.chars().count() + more > max_chars {
            story += &format!(" → … (+{left} more)");
            break;
        }
        story += &next;
    }
    story
}

/// Trace time as `h:mm`, with seconds only when there are any: 16:00, 8:34:30.
fn clock(t_s: f64) -> String {
    let full = hms(t_s);
    match full.strip_suffix(":00") {
        Some(short) => short.to_string(),
        None => full,
    }
}

/// Draws `marks` on a plot whose x axis is trace time in units of `secs_per_unit` seconds:
/// stopped spans shaded grey, held spans tinted and hatched (full height), then at each event
/// a thin line and its name at the top of the plot. Labels take the first of a few rows where
/// they do not overlap another; one that fits nowhere is left out, its line is not. Events on
/// the same pixel share one line, so a trace with more events than pixels stays drawable.
pub fn draw_marks<DB: DrawingBackend>(
    area: &DrawingArea<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    marks: &Marks,
    secs_per_unit: f64,
) -> Result<(), PlotError> {
    let screen = area.use_screen_coord();
    let (xr, yr) = area.get_pixel_range();
    let x_px = |t_s: f64| {
        let (x, _) = area.map_coordinate(&(t_s / secs_per_unit, 0.0));
        x.clamp(xr.start, xr.end)
    };
    // Pixel columns, at least one wide so a short span still shows; spans that touch on
    // screen are drawn as one, so the SVG grows with the plot's width, not the trace's length.
    let columns = |spans: &[Span]| -> Vec<(i32, i32)> {
        let mut cols: Vec<(i32, i32)> = Vec::new();
        for s in spans {
            let x0 = x_px(s.start_s);
            let x1 = x_px(s.end_s).max(x0 + 1);
            match cols.last_mut() {
                Some(last) if x0 <= last.1 => last.1 = last.1.max(x1),
                _ => cols.push((x0, x1)),
            }
        }
        cols
    };
    for (x0, x1) in columns(&marks.stopped) {
        let rect = Rectangle::new(
            [(x0, yr.start), (x1, yr.end)],
            STOPPED.mix(STOPPED_ALPHA).filled(),
        );
        screen.draw(&rect).map_err(draw_err)?;
    }
    let hatch = HELD_HATCH.mix(HELD_HATCH_ALPHA).stroke_width(1);
    for (x0, x1) in columns(&marks.held) {
        let rect = Rectangle::new(
            [(x0, yr.start), (x1, yr.end)],
            HELD.mix(HELD_ALPHA).filled(),
        );
        screen.draw(&rect).map_err(draw_err)?;
        for line in hatch_lines(x0, x1, yr.start, yr.end) {
            screen
                .draw(&PathElement::new(line.to_vec(), hatch))
                .map_err(draw_err)?;
        }
    }
    let font = ("sans-serif", LABEL_FONT).into_font().color(&EVENT);
    let row_h = LABEL_FONT as i32 + 4;
    // Right edge of the last label in each row.
    let mut rows = [i32::MIN; LABEL_ROWS as usize];
    let mut last_line = None;
    for m in &marks.events {
        let x = x_px(m.t_s);
        // Events on the same pixel share a line (their labels stack while rows are free).
        if last_line != Some(x) {
            let line = PathElement::new(vec![(x, yr.start), (x, yr.end)], EVENT.stroke_width(1));
            screen.draw(&line).map_err(draw_err)?;
            last_line = Some(x);
        }
        let label = m.event.as_str();
        let w = text_width(label.len(), LABEL_FONT) + 4;
        // Right of the line, or left of it where the plot ends.
        let left = if x + 3 + w <= xr.end {
            x + 3
        } else {
            x - 3 - w
        };
        let Some(row) = rows.iter().position(|&right| left > right + 2) else {
            continue;
        };
        rows[row] = left + w;
        let y = yr.start + 3 + row as i32 * row_h;
        let bg = Rectangle::new(
            [(left, y), (left + w, y + row_h - 2)],
            WHITE.mix(0.85).filled(),
        );
        screen.draw(&bg).map_err(draw_err)?;
        screen
            .draw(&Text::new(label, (left + 2, y + 1), font.clone()))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Lines rising to the right every [`HATCH_GAP`] pixels (phase fixed to the screen, so
/// neighbouring spans join up), clipped to the box `[x0, x1] × [y0, y1]`.
fn hatch_lines(x0: i32, x1: i32, y0: i32, y1: i32) -> Vec<[(i32, i32); 2]> {
    let h = y1 - y0;
    // The line through (c, y1) and (c + h, y0); the part with x in [x0, x1].
    let first = (x0 - h).div_euclid(HATCH_GAP) * HATCH_GAP;
    (first..=x1)
        .step_by(HATCH_GAP as usize)
        .filter_map(|c| {
            let a = (x0 - c).max(0);
            let b = (x1 - c).min(h);
            (a < b).then(|| [(c + a, y1 - a), (c + b, y1 - b)])
        })
        .collect()
}

/// A legend entry's sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Swatch {
    /// A filled area.
    Area(RGBColor),
    /// A line of this width.
    Line(RGBColor, u32),
    /// A stopped span, as [`draw_marks`] shades it.
    Stopped,
    /// A held span, as [`draw_marks`] tints and hatches it.
    Held,
}

impl Swatch {
    /// Draws the sample, 20 × 12 pixels, with its left middle at `(x, y)`.
    fn draw<DB: DrawingBackend>(
        self,
        area: &DrawingArea<DB, Shift>,
        (x, y): (i32, i32),
    ) -> Result<(), PlotError> {
        let rect = |style: ShapeStyle| Rectangle::new([(x, y - 6), (x + 20, y + 6)], style);
        let line = |a, b, style: ShapeStyle| PathElement::new(vec![a, b], style);
        match self {
            Swatch::Area(color) => area.draw(&rect(color.filled())),
            Swatch::Line(color, width) => {
                area.draw(&line((x, y), (x + 20, y), color.stroke_width(width)))
            }
            Swatch::Stopped => area.draw(&rect(STOPPED.mix(STOPPED_ALPHA).filled())),
            Swatch::Held => {
                area.draw(&rect(HELD.mix(HELD_ALPHA).filled()))
                    .map_err(draw_err)?;
                let hatch = HELD_HATCH.mix(HELD_HATCH_ALPHA).stroke_width(1);
                for [a, b] in hatch_lines(x, x + 20, y - 6, y + 6) {
                    area.draw(&line(a, b, hatch)).map_err(draw_err)?;
                }
                Ok(())
            }
        }
        .map_err(draw_err)
    }
}

/// Legend entries for the spans [`draw_marks`] shades, those the run has. Events need none:
/// their lines are labelled.
pub fn mark_legend(marks: &Marks) -> Vec<(String, Swatch)> {
    let mut entries = Vec::new();
    if !marks.stopped.is_empty() {
        entries.push(("stopped".to_string(), Swatch::Stopped));
    }
    if !marks.held.is_empty() {
        entries.push(("held at baseline".to_string(), Swatch::Held));
    }
    entries
}

/// Draws `entries` as a framed legend at the top left of `area`.
pub fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Swatch)],
) -> Result<(), PlotError> {
    if entries.is_empty() {
        return Ok(());
    }
    const FONT: u32 = 13;
    const LINE: i32 = 17;
    const PAD: i32 = 8;
    let longest = entries
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let w = 2 * PAD + 28 + text_width(longest, FONT);
    let h = 2 * PAD + LINE * entries.len() as i32 - 4;
    area.draw(&Rectangle::new([(0, 0), (w, h)], WHITE.mix(0.85).filled()))
        .map_err(draw_err)?;
    area.draw(&Rectangle::new([(0, 0), (w, h)], BLACK.mix(0.4)))
        .map_err(draw_err)?;
    let font = ("sans-serif", FONT)
        .into_text_style(area)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (label, swatch)) in entries.iter().enumerate() {
        let y = PAD + LINE * i as i32 + LINE / 2 - 2;
        swatch.draw(area, (PAD, y))?;
        area.draw(&Text::new(label.as_str(), (PAD + 28, y), font.clone()))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Width in pixels of `chars` characters at `font` size. The SVG backend has no font metrics
/// and writes sizes as `size / 1.24` px; an average sans-serif glyph is about 0.58 em.
fn text_width(chars: usize, font: u32) -> i32 {
    (chars as f64 * font as f64 / 1.24 * 0.58).ceil() as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credit::builtin_profile;
    use crate::sim::{parse_trace, simulate, SimConfig};

    fn example() -> (Profile, SimResult) {
        let profile = builtin_profile("t2.micro").unwrap();
        let text = include_str!("../../config/example-trace.csv");
        let trace = parse_trace(text.as_bytes(), "example-trace.csv").unwrap();
        let result = simulate(&SimConfig::new(profile.clone()), &trace).unwrap();
        (profile, result)
    }

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    fn attr<'a>(element: &'a str, name: &str) -> &'a str {
        let key = format!(" {name}=\"");
        let start = element.find(&key).unwrap() + key.len();
        let len = element[start..].find('"').unwrap();
        &element[start..start + len]
    }

    fn num(element: &str, name: &str) -> i32 {
        attr(element, name).parse().unwrap()
    }

    /// The SVG's elements of `tag` (plotters writes one per line).
    fn elements<'a>(svg: &'a str, tag: &str) -> Vec<&'a str> {
        let open = format!("<{tag} ");
        svg.lines().filter(|l| l.starts_with(&open)).collect()
    }

    /// `(fill, text)` of every `<text>`; plotters puts the text on its own line.
    fn texts(svg: &str) -> Vec<(String, String)> {
        svg.split("<text ")
            .skip(1)
            .map(|t| {
                let (head, rest) = t.split_once(">\n").unwrap();
                let (body, _) = rest.split_once("\n</text>").unwrap();
                (
                    attr(&format!(" {head}"), "fill").to_string(),
                    body.to_string(),
                )
            })
            .collect()
    }

    /// x of each event line, in drawing order.
    fn event_lines(svg: &str) -> Vec<i32> {
        elements(svg, "polyline")
            .into_iter()
            .filter(|l| attr(l, "stroke") == hex(EVENT))
            .map(|l| {
                attr(l, "points")
                    .split(',')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    /// `(x, x + width)` of the full-height spans filled with `color` (not legend samples).
    fn shaded(svg: &str, color: RGBColor) -> Vec<(i32, i32)> {
        elements(svg, "rect")
            .into_iter()
            .filter(|l| attr(l, "fill") == hex(color) && num(l, "height") > 100)
            .map(|l| (num(l, "x"), num(l, "x") + num(l, "width")))
            .collect()
    }

    #[test]
    fn example_chart_marks_each_event_on_both_panels_and_shades_the_spans() {
        let (profile, result) = example();
        assert_eq!(result.marks.events.len(), 4);
        let svg = render_svg(&profile, &result).unwrap();

        // One labelled line per event and panel, the same x on both panels.
        let lines = event_lines(&svg);
        assert_eq!(lines.len(), 2 * 4, "{lines:?}");
        assert_eq!(lines[..4], lines[4..]);
        assert!(lines.windows(2).take(3).all(|w| w[0] < w[1]), "{lines:?}");
        let mut labels: Vec<String> = texts(&svg)
            .into_iter()
            .filter(|(fill, _)| *fill == hex(EVENT))
            .map(|(_, text)| text)
            .collect();
        labels.sort();
        let want = ["standard", "start", "stop", "unlimited"];
        let want: Vec<&str> = want.iter().flat_map(|l| [*l, *l]).collect();
        assert_eq!(labels, want);

        // The stop (13:00–13:30) shaded between the stop and start lines, on both panels.
        let (stop, start) = (lines[0], lines[1]);
        assert_eq!(shaded(&svg, STOPPED), [(stop, start), (stop, start)]);
        // Held 8:34:30–12:00: before the stop, on both panels, tinted and hatched.
        let held = shaded(&svg, HELD);
        assert_eq!(held.len(), 2, "{held:?}");
        assert_eq!(held[0], held[1]);
        assert!(held[0].1 < stop && held[0].1 - held[0].0 > 100, "{held:?}");
        let hatch = elements(&svg, "polyline")
            .into_iter()
            .filter(|l| attr(l, "stroke") == hex(HELD_HATCH))
            .count();
        assert!(hatch > 2 * 20, "{hatch} hatch lines");

        let all = texts(&svg);
        assert_eq!(
            all[0].1,
            "burstd simulate: t2.micro (1 vCPU, 6 credits/h), \
             standard → unlimited at 16:00 → standard at 18:00"
        );
        for entry in ["stopped", "held at baseline"] {
            assert_eq!(all.iter().filter(|(_, t)| t == entry).count(), 2, "{entry}");
        }
    }

    #[test]
    fn without_events_the_chart_has_no_marks_and_says_the_mode() {
        let (profile, mut result) = example();
        result.marks = Marks::default();
        let svg = render_svg(&profile, &result).unwrap();
        assert!(event_lines(&svg).is_empty());
        assert!(shaded(&svg, STOPPED).is_empty() && shaded(&svg, HELD).is_empty());
        assert!(!svg.contains("held at baseline"));
        assert_eq!(
            texts(&svg)[0].1,
            "burstd simulate: t2.micro (1 vCPU, 6 credits/h), standard mode"
        );
    }

    #[test]
    fn mode_story_lists_changes_until_the_room_runs_out() {
        use crate::sim::{Event, EventMark};
        let at = |t_s, event| EventMark { t_s, event };
        let marks = Marks {
            events: vec![
                at(0.0, Event::Standard), // no change
                at(30_870.0, Event::Unlimited),
                at(46_800.0, Event::Stop),
                at(64_800.0, Event::Standard),
                at(90_000.5, Event::Unlimited),
            ],
            ..Marks::default()
        };
        let story = |max| mode_story(Mode::Standard, &marks, max);
        assert_eq!(
            story(200),
            "standard → unlimited at 8:34:30 → standard at 18:00 → unlimited at 25:00:00.500"
        );
        assert_eq!(story(60), "standard → unlimited at 8:34:30 → … (+2 more)");
        assert_eq!(story(10), "standard → … (+3 more)");
        assert_eq!(
            mode_story(Mode::Unlimited, &Marks::default(), 60),
            "unlimited mode"
        );
    }

    #[test]
    fn a_trace_with_more_events_than_pixels_gives_a_bounded_chart() {
        use crate::sim::{Event, Segment};
        let profile = builtin_profile("t2.micro").unwrap();
        // 100,000 switches, one a second, over 28 hours at 50%.
        let trace: Vec<Segment> = (0..100_000)
            .map(|i| {
                let event = [Event::Unlimited, Event::Standard][i % 2];
                Segment::secs(1, 50.0).with_event(event)
            })
            .chain([Segment::secs(1000, 50.0)])
            .collect();
        let result = simulate(&SimConfig::new(profile.clone()), &trace).unwrap();
        assert_eq!(result.marks.events.len(), 100_000);
        let svg = render_svg(&profile, &result).unwrap();
        let lines = event_lines(&svg);
        assert!(lines.len() <= 2 * WIDTH as usize, "{} lines", lines.len());
        assert!(svg.len() < 2_000_000, "{} bytes", svg.len());
        assert!(texts(&svg)[0].1.ends_with("more)"), "{}", texts(&svg)[0].1);
    }

    #[test]
    fn hatch_lines_stay_in_their_box() {
        let lines = hatch_lines(10, 50, 100, 120);
        assert!(!lines.is_empty());
        for [(xa, ya), (xb, yb)] in &lines {
            for (x, y) in [(xa, ya), (xb, yb)] {
                assert!(
                    (10..=50).contains(x) && (100..=120).contains(y),
                    "{lines:?}"
                );
            }
            // Rising to the right at 45°.
            assert_eq!(xb - xa, ya - yb);
        }
        // A span narrower than the gap between lines is still hatched: a dash every 9 px.
        assert_eq!(hatch_lines(3, 4, 0, 300).len(), 300 / HATCH_GAP as usize);
    }
}
