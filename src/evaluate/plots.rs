//! The evaluation's plots ([`crate::plot`]): Bland–Altman of EF and of EDV/ESV with the mean
//! difference and ±1.96 sd lines, Dice histograms of LV and MY, and the mean volume difference
//! per relative slice position (apex → base, the paper's Fig. 4).

use plotters::prelude::*;

use super::agreement::{BlandAltman, POSITION_BINS, SlicePositions, StudyRow};
use super::{DICE_BINS, DiceSummary};
use crate::plot::{Area, FAMILY, PlotResult};

const W: u32 = 1000;
const H: u32 = 520;

fn canvas(draw: impl FnOnce(&Area<'_>) -> PlotResult) -> Result<Vec<u8>, String> {
    crate::plot::canvas(W, H, draw)
}

fn range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    crate::plot::range(values, 0.5)
}

/// One Bland–Altman panel: (mean, difference) points, the mean difference and its limits.
fn bland_altman_panel(
    area: &Area<'_>,
    title: &str,
    unit: &str,
    pairs: &[(f64, f64)],
    stats: Option<&BlandAltman>,
    colour: RGBColor,
) -> PlotResult {
    let points: Vec<(f64, f64)> = pairs.iter().map(|(r, a)| ((r + a) / 2.0, a - r)).collect();
    let xr = range(points.iter().map(|p| p.0));
    let mut ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    if let Some(s) = stats {
        ys.extend([s.lower, s.upper, 0.0]);
    }
    let yr = range(ys.into_iter());
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(xr.clone(), yr)?;
    chart
        .configure_mesh()
        .x_desc(format!("mean of evaluated and reference ({unit})"))
        .y_desc(format!("evaluated − reference ({unit})"))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .light_line_style(WHITE)
        .draw()?;
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
    if let Some(s) = stats {
        let line = |y: f64| vec![(xr.start, y), (xr.end, y)];
        chart
            .draw_series(LineSeries::new(line(s.mean_diff), BLACK.stroke_width(2)))?
            .label(format!("mean {:+.2}", s.mean_diff))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2)));
        let dashed = RGBColor(200, 60, 60).stroke_width(1);
        chart
            .draw_series(LineSeries::new(line(s.upper), dashed))?
            .label(format!("±1.96 sd: {:.2} … {:.2}", s.lower, s.upper))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], dashed));
        chart.draw_series(LineSeries::new(line(s.lower), dashed))?;
        chart
            .configure_series_labels()
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    Ok(())
}

fn pairs(rows: &[StudyRow], g: fn(&StudyRow) -> (Option<f64>, Option<f64>)) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| match g(r) {
            (Some(x), Some(y)) => Some((x, y)),
            _ => None,
        })
        .collect()
}

/// Bland–Altman of EF.
pub fn bland_altman_ef(rows: &[StudyRow], stats: Option<&BlandAltman>, labeller: &str, reference: &str) -> Result<Vec<u8>, String> {
    let p = pairs(rows, |r| (r.reference_ef_pct, r.ef_pct));
    canvas(|root| {
        bland_altman_panel(
            root,
            &format!("EF: {labeller} against {reference} ({} studies)", p.len()),
            "%",
            &p,
            stats,
            RGBColor(40, 90, 200),
        )
    })
}

/// Bland–Altman of EDV (left) and ESV (right).
pub fn bland_altman_volumes(rows: &[StudyRow], edv: Option<&BlandAltman>, esv: Option<&BlandAltman>) -> Result<Vec<u8>, String> {
    canvas(|root| {
        let (l, r) = root.split_horizontally(W / 2);
        bland_altman_panel(&l, "EDV", "mL", &pairs(rows, |r| (r.reference_edv_ml, r.edv_ml)), edv, RGBColor(40, 90, 200))?;
        bland_altman_panel(&r, "ESV", "mL", &pairs(rows, |r| (r.reference_esv_ml, r.esv_ml)), esv, RGBColor(220, 120, 20))
    })
}

/// Histograms of per-image Dice, LV (left) and MY (right), in 50 bins.
pub fn dice_histograms(d: &DiceSummary) -> Result<Vec<u8>, String> {
    const BINS: usize = 50;
    canvas(|root| {
        let (l, r) = root.split_horizontally(W / 2);
        for (k, (area, name, colour)) in [(&l, "LV", RGBColor(200, 40, 40)), (&r, "MY", RGBColor(30, 150, 60))].into_iter().enumerate() {
            let per = DICE_BINS / BINS;
            // The last bar also holds the Dice of exactly 1.
            let counts: Vec<u64> = (0..BINS)
                .map(|b| d.histogram[k][b * per..if b + 1 == BINS { DICE_BINS + 1 } else { (b + 1) * per }].iter().sum())
                .collect();
            let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.08;
            let title = if d.images > 0 {
                format!("Dice {name}: mean {:.3}, median {:.3} ({} images)", d.mean[k], d.median[k], d.images)
            } else {
                format!("Dice {name}: no images")
            };
            let mut chart = ChartBuilder::on(area)
                .caption(title, (FAMILY, 18))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..1.0, 0.0..top)?;
            chart
                .configure_mesh()
                .x_desc("Dice")
                .y_desc("images")
                .label_style((FAMILY, 13))
                .axis_desc_style((FAMILY, 14))
                .light_line_style(WHITE)
                .draw()?;
            chart.draw_series(counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(b, n)| {
                let (x0, x1) = (b as f64 / BINS as f64, (b + 1) as f64 / BINS as f64);
                Rectangle::new([(x0, 0.0), (x1, *n as f64)], colour.filled())
            }))?;
        }
        Ok(())
    })
}

/// Mean (± sd) volume difference per image by relative slice position, LV and MY.
pub fn slice_positions(p: &SlicePositions) -> Result<Vec<u8>, String> {
    canvas(|root| {
        let centre = |k: usize| (k as f64 + 0.5) / POSITION_BINS as f64;
        let mut ys = Vec::new();
        for k in 0..POSITION_BINS {
            for lv in [true, false] {
                if let Some((m, sd)) = p.stats(k, lv) {
                    ys.extend([m - sd, m + sd]);
                }
            }
        }
        ys.push(0.0);
        let mut chart = ChartBuilder::on(root)
            .caption("Volume difference per image by slice position (evaluated − reference)", (FAMILY, 18))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, range(ys.into_iter()))?;
        chart
            .configure_mesh()
            .x_desc("relative slice position: 0 apex … 1 base")
            .y_desc("mL per image (mean ± sd)")
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 14))
            .light_line_style(WHITE)
            .draw()?;
        chart.draw_series(LineSeries::new(vec![(0.0, 0.0), (1.0, 0.0)], BLACK.mix(0.5)))?;
        for (lv, name, colour, shift) in [(true, "LV", RGBColor(200, 40, 40), -0.012), (false, "MY", RGBColor(30, 150, 60), 0.012)] {
            let pts: Vec<(f64, f64, f64)> =
                (0..POSITION_BINS).filter_map(|k| p.stats(k, lv).map(|(m, sd)| (centre(k) + shift, m, sd))).collect();
            chart.draw_series(pts.iter().map(|&(x, m, sd)| PathElement::new(vec![(x, m - sd), (x, m + sd)], colour.stroke_width(2))))?;
            chart
                .draw_series(LineSeries::new(pts.iter().map(|&(x, m, _)| (x, m)), colour.stroke_width(2)).point_size(4))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_has_text_and_points() {
        let rows: Vec<StudyRow> = (0..20)
            .map(|i| StudyRow { reference_ef_pct: Some(40.0 + i as f64), ef_pct: Some(41.0 + i as f64 * 1.02), ..Default::default() })
            .collect();
        let p = pairs(&rows, |r| (r.reference_ef_pct, r.ef_pct));
        let stats = super::super::agreement::bland_altman(&p);
        let png = bland_altman_ef(&rows, stats.as_ref(), "m", "truth").unwrap();
        let mut r = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        r.next_frame(&mut buf).unwrap();
        let blue = buf.chunks_exact(3).filter(|p| p == &[40, 90, 200]).count();
        let dark = buf.chunks_exact(3).filter(|p| p[0] < 60 && p[1] < 60 && p[2] < 60).count();
        assert!(blue > 20 * 10, "the points are drawn ({blue} px)");
        assert!(dark > 2000, "text and axes are drawn ({dark} dark px)");
    }
}
