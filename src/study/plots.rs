//! The study's figures ([`crate::plot`]):
//!
//! - `fig6`: the paper's Fig. 6 — validation Dice against images seen (thousands), rows LV and
//!   MY, columns the subsets by size (full, the volunteer counts, esed). Colour is the start;
//!   solid lines are whole volunteers (or all ED/ES frames), dashed lines random images. Each
//!   run is drawn as its loess curve (span 0.75, as the paper's) over its raw points, faint.
//! - `peaks`: the raw (hollow) and smoothed (filled) peak Dice per subset and start.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::summary::{Curve, RunSummary, panel_of, panel_order};
use crate::plot::{Area, FAMILY, PlotResult, canvas};
use crate::query::loess;

/// The colour of a start: R grey, TL blue, TL2 red, others from a palette by order.
pub fn start_colour(start: &str, starts: &[String]) -> RGBColor {
    match start {
        "R" => RGBColor(80, 80, 80),
        "TL" => RGBColor(40, 100, 210),
        "TL2" => RGBColor(210, 40, 40),
        other => {
            const PALETTE: [RGBColor; 4] = [RGBColor(30, 150, 60), RGBColor(150, 60, 180), RGBColor(220, 130, 20), RGBColor(20, 160, 170)];
            let k = starts.iter().filter(|s| !["R", "TL", "TL2"].contains(&s.as_str())).position(|s| s == other).unwrap_or(0);
            PALETTE[k % PALETTE.len()]
        }
    }
}

const CLASSES: [&str; 2] = ["LV", "MY"];

/// Starts in a stable order: R, TL, TL2, then the others by name.
fn starts(runs: &[RunSummary]) -> Vec<String> {
    let mut s: Vec<String> = runs.iter().map(|r| r.start.clone()).collect();
    let rank = |x: &String| (["R", "TL", "TL2"].iter().position(|k| k == x).unwrap_or(3), x.clone());
    s.sort_by_key(rank);
    s.dedup();
    s
}

fn line(chart_points: Vec<(f64, f64)>, colour: RGBColor, width: u32, dashed: bool) -> Vec<PathElement<(f64, f64)>> {
    if !dashed || chart_points.len() < 2 {
        return vec![PathElement::new(chart_points, colour.stroke_width(width))];
    }
    // Dashes and gaps of a fortieth of the curve's x range, laid by x along the polyline (each
    // segment cut where it crosses a dash boundary), so dense curves are dashed too.
    let (x0, x1) = chart_points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let dash = ((x1 - x0) / 40.0).max(f64::MIN_POSITIVE);
    let cell = |x: f64| ((x - x0) / dash).floor() as i64;
    let mut out = Vec::new();
    for w in chart_points.windows(2) {
        let (a, b) = (w[0], w[1]);
        let at = |x: f64| if b.0 == a.0 { a } else { (x, a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0)) };
        let mut cuts = vec![a.0];
        let (lo, hi) = (a.0.min(b.0), a.0.max(b.0));
        let mut k = cell(lo) + 1;
        while x0 + k as f64 * dash < hi {
            cuts.push(x0 + k as f64 * dash);
            k += 1;
        }
        cuts.push(b.0);
        if b.0 < a.0 {
            cuts[1..].sort_by(|p, q| q.total_cmp(p));
        }
        for pair in cuts.windows(2) {
            if cell((pair[0] + pair[1]) / 2.0) % 2 == 0 {
                out.push(PathElement::new(vec![at(pair[0]), at(pair[1])], colour.stroke_width(width)));
            }
        }
    }
    out
}

/// Fig. 6 as PNG bytes.
pub fn fig6(runs: &[RunSummary], curves: &BTreeMap<(String, String), Curve>) -> Result<Vec<u8>, String> {
    let panels = panel_order(runs.iter().map(|r| r.subset.clone()));
    let starts = starts(runs);
    let (w, h) = ((260 * panels.len().max(1) + 80) as u32, 640u32);
    canvas(w, h, |root| {
        let (title, body) = root.split_vertically(36);
        title.titled(
            "Validation Dice against images seen (thousands): colour = start, solid = whole volunteers, dashed = random images",
            (FAMILY, 16),
        )?;
        let rows = body.split_evenly((2, panels.len().max(1)));
        for class in 0..CLASSES.len() {
            let values = runs
                .iter()
                .filter_map(|r| curves.get(&(r.study.clone(), r.run.clone())))
                .flatten()
                .map(|p| if class == 0 { p.1 } else { p.2 });
            let lo = values.filter(|v| v.is_finite()).fold(1.0f64, f64::min);
            let y = ((lo - 0.02).max(0.0) * 20.0).floor() / 20.0..1.0;
            for (k, panel) in panels.iter().enumerate() {
                let area = &rows[class * panels.len() + k];
                let mut members: Vec<&RunSummary> = runs.iter().filter(|r| &panel_of(&r.subset).0 == panel).collect();
                members.sort_by_key(|r| (starts.iter().position(|s| *s == r.start), panel_of(&r.subset).1));
                draw_panel(area, class, panel, &members, curves, &starts, y.clone(), k == 0)?;
            }
        }
        Ok(())
    })
}

/// A colour a third of the way from white: the raw points under the smoothed line.
fn faint(c: RGBColor) -> RGBColor {
    let f = |v: u8| 255 - ((255 - v as u16) * 35 / 100) as u8;
    RGBColor(f(c.0), f(c.1), f(c.2))
}

#[allow(clippy::too_many_arguments)]
fn draw_panel(
    area: &Area<'_>,
    class: usize,
    panel: &str,
    members: &[&RunSummary],
    curves: &BTreeMap<(String, String), Curve>,
    starts: &[String],
    y: std::ops::Range<f64>,
    legend: bool,
) -> PlotResult {
    let x_max = members.iter().map(|r| r.final_images as f64 / 1000.0).fold(0.0, f64::max).max(1e-3) * 1.02;
    let caption = match panel {
        "full" | "esed" => format!("{} · {panel}", CLASSES[class]),
        "1" => format!("{} · 1 volunteer", CLASSES[class]),
        p if p.parse::<i64>().is_ok() => format!("{} · {p} volunteers", CLASSES[class]),
        p => format!("{} · {p}", CLASSES[class]),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 15))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(42)
        .build_cartesian_2d(0.0..x_max, y)?;
    chart.configure_mesh().label_style((FAMILY, 11)).light_line_style(WHITE).x_labels(4).y_labels(6).draw()?;
    for r in members {
        let Some(curve) = curves.get(&(r.study.clone(), r.run.clone())) else { continue };
        let colour = start_colour(&r.start, starts);
        let dashed = panel_of(&r.subset).1;
        let raw: Vec<(f64, f64)> = curve.iter().map(|p| (p.0 as f64 / 1000.0, if class == 0 { p.1 } else { p.2 })).collect();
        chart.draw_series(line(raw.clone(), faint(colour), 1, dashed))?;
        let smooth = loess::smooth(&raw, loess::SPAN);
        let series = chart.draw_series(line(smooth, colour, 2, dashed))?;
        if legend && class == 0 {
            series.label(r.start.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
    }
    if legend && class == 0 && !members.is_empty() {
        chart
            .configure_series_labels()
            .label_font((FAMILY, 11))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    Ok(())
}

/// Raw (hollow) and smoothed (filled) peak Dice per subset (x) and start (colour), LV and MY.
pub fn peaks(runs: &[RunSummary]) -> Result<Vec<u8>, String> {
    let starts = starts(runs);
    let mut subsets: Vec<String> = runs.iter().map(|r| r.subset.clone()).collect();
    let order = panel_order(subsets.iter().cloned());
    subsets.sort_by_key(|s| {
        let (panel, random) = panel_of(s);
        (order.iter().position(|p| *p == panel).unwrap_or(usize::MAX), random, s.clone())
    });
    subsets.dedup();
    let n = subsets.len().max(1);
    canvas((110 * n + 160) as u32, 520, |root| {
        let halves = root.split_evenly((1, 2));
        for (class, area) in halves.iter().enumerate() {
            let values = runs.iter().flat_map(|r| [Some(r.peak[class]), r.smooth_peak[class]]).flatten();
            let lo = values.filter(|v| v.is_finite()).fold(1.0f64, f64::min);
            let y = ((lo - 0.02).max(0.0) * 20.0).floor() / 20.0..1.0;
            let labels = subsets.clone();
            let mut chart = ChartBuilder::on(area)
                .caption(format!("Peak Dice {}: hollow raw, filled smoothed", CLASSES[class]), (FAMILY, 15))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .build_cartesian_2d(-0.5..(n as f64 - 0.5), y)?;
            chart
                .configure_mesh()
                .label_style((FAMILY, 12))
                .light_line_style(WHITE)
                .x_labels(n)
                .x_label_formatter(&|x| {
                    let k = x.round();
                    if (x - k).abs() < 1e-6 && k >= 0.0 { labels.get(k as usize).cloned().unwrap_or_default() } else { String::new() }
                })
                .draw()?;
            for (si, start) in starts.iter().enumerate() {
                let colour = start_colour(start, &starts);
                let shift = (si as f64 - (starts.len() as f64 - 1.0) / 2.0) * 0.22;
                let mine: Vec<(f64, &RunSummary)> = runs
                    .iter()
                    .filter(|r| &r.start == start)
                    .filter_map(|r| subsets.iter().position(|s| *s == r.subset).map(|k| (k as f64 + shift, r)))
                    .collect();
                let series = chart.draw_series(mine.iter().map(|(x, r)| Circle::new((*x, r.peak[class]), 5, colour.stroke_width(2))))?;
                if class == 0 {
                    series.label(start.clone()).legend(move |(x, y)| Circle::new((x + 8, y), 5, colour.filled()));
                }
                chart
                    .draw_series(mine.iter().filter_map(|(x, r)| r.smooth_peak[class].map(|v| Circle::new((*x, v), 4, colour.filled()))))?;
            }
            if class == 0 {
                chart
                    .configure_series_labels()
                    .label_font((FAMILY, 12))
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::LowerLeft)
                    .draw()?;
            }
        }
        Ok(())
    })
}
