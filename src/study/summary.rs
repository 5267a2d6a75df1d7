//! A study's runs and curves, read through SQL: one [`RunSummary`] per row of the saved
//! `study_summary`, and the validation points of `study_log` per run. Whatever `study_log` is
//! in the session — our table, or a view over another group's log — goes through the same rows.

use std::collections::BTreeMap;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};

use crate::query::Session;
use crate::query::read::{self, ReadError};

/// One run's row of `study_summary`. Index 0 of each pair is LV, 1 MY.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    pub study: String,
    pub run: String,
    pub start: String,
    pub subset: String,
    pub subset_images: i64,
    pub epochs: i64,
    pub points: i64,
    pub first_images: i64,
    pub first: [f64; 2],
    pub peak: [f64; 2],
    pub peak_images: [i64; 2],
    pub smooth_peak: [Option<f64>; 2],
    pub smooth_peak_images: [Option<i64>; 2],
    pub final_images: i64,
    pub last: [f64; 2],
    pub seconds: Option<f64>,
}

/// One run's validation curve: (images seen, Dice LV, Dice MY), by images seen.
pub type Curve = Vec<(i64, f64, f64)>;

const CONTEXT: &str = "the study summary (`study_summary` over `study_log`)";

/// Typed columns of a batch.
struct Columns<'a> {
    batch: &'a RecordBatch,
}

impl Columns<'_> {
    fn text(&self, name: &str) -> Result<Vec<String>, ReadError> {
        let c = read::column(self.batch, name, &DataType::Utf8, CONTEXT)?;
        Ok(c.as_string::<i32>().iter().map(|v| v.unwrap_or_default().to_string()).collect())
    }
    fn int(&self, name: &str) -> Result<Vec<Option<i64>>, ReadError> {
        let c = read::column(self.batch, name, &DataType::Int64, CONTEXT)?;
        Ok(c.as_primitive::<Int64Type>().iter().collect())
    }
    fn float(&self, name: &str) -> Result<Vec<Option<f64>>, ReadError> {
        let c = read::column(self.batch, name, &DataType::Float64, CONTEXT)?;
        Ok(c.as_primitive::<Float64Type>().iter().collect())
    }
}

fn or_nan(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

/// The `study_summary` rows (with `--param study=…` applied as the session has it).
pub async fn runs(session: &Session) -> Result<Vec<RunSummary>, ReadError> {
    let mut out = Vec::new();
    for b in read::collect(session, "SELECT * FROM study_summary", CONTEXT).await? {
        let c = Columns { batch: &b };
        let (study, run, start, subset) = (c.text("study")?, c.text("run")?, c.text("start")?, c.text("subset")?);
        let i = |n: &str| c.int(n);
        let f = |n: &str| c.float(n);
        let (n, epochs, points, first_images, final_images) =
            (i("subset_images")?, i("epochs")?, i("points")?, i("first_images")?, i("final_images")?);
        let (first_lv, first_my, peak_lv, peak_my) = (f("first_dice_lv")?, f("first_dice_my")?, f("peak_dice_lv")?, f("peak_dice_my")?);
        let (peak_at_lv, peak_at_my) = (i("peak_images_lv")?, i("peak_images_my")?);
        let (smooth_lv, smooth_my) = (f("smooth_peak_dice_lv")?, f("smooth_peak_dice_my")?);
        let (smooth_at_lv, smooth_at_my) = (i("smooth_peak_images_lv")?, i("smooth_peak_images_my")?);
        let (last_lv, last_my, seconds) = (f("final_dice_lv")?, f("final_dice_my")?, f("seconds")?);
        for r in 0..b.num_rows() {
            out.push(RunSummary {
                study: study[r].clone(),
                run: run[r].clone(),
                start: start[r].clone(),
                subset: subset[r].clone(),
                subset_images: n[r].unwrap_or(0),
                epochs: epochs[r].unwrap_or(0),
                points: points[r].unwrap_or(0),
                first_images: first_images[r].unwrap_or(0),
                first: [or_nan(first_lv[r]), or_nan(first_my[r])],
                peak: [or_nan(peak_lv[r]), or_nan(peak_my[r])],
                peak_images: [peak_at_lv[r].unwrap_or(0), peak_at_my[r].unwrap_or(0)],
                smooth_peak: [smooth_lv[r], smooth_my[r]],
                smooth_peak_images: [smooth_at_lv[r], smooth_at_my[r]],
                final_images: final_images[r].unwrap_or(0),
                last: [or_nan(last_lv[r]), or_nan(last_my[r])],
                seconds: seconds[r],
            });
        }
    }
    // A view's ORDER BY does not survive being selected from: order here. Starts R, TL, TL2,
    // then others; subsets by Fig. 6's panels, whole volunteers before random images.
    out.sort_by_cached_key(|r| {
        let (panel, random) = panel_of(&r.subset);
        (
            r.study.clone(),
            ["R", "TL", "TL2"].iter().position(|s| *s == r.start).unwrap_or(3),
            r.start.clone(),
            panel_rank(&panel),
            random,
            r.subset.clone(),
        )
    });
    Ok(out)
}

/// Where a panel sits in Fig. 6's order (see [`panel_order`]).
fn panel_rank(panel: &str) -> (u8, i64, String) {
    match panel {
        "full" => (0, 0, String::new()),
        "esed" => (2, 0, String::new()),
        p => match p.parse::<i64>() {
            Ok(n) => (1, -n, String::new()),
            Err(_) => (3, 0, p.to_string()),
        },
    }
}

/// Every run's validation curve, keyed by (study, run).
pub async fn curves(session: &Session, study: Option<&str>) -> Result<BTreeMap<(String, String), Curve>, ReadError> {
    let filter = study.map(|s| format!(" WHERE study = {}", read::quote(s))).unwrap_or_default();
    let sql = format!("SELECT study, run, images_seen, dice_lv, dice_my FROM study_log{filter} ORDER BY study, run, images_seen");
    let mut out: BTreeMap<(String, String), Curve> = BTreeMap::new();
    for b in read::collect(session, &sql, CONTEXT).await? {
        let c = Columns { batch: &b };
        let (study, run, seen, lv, my) =
            (c.text("study")?, c.text("run")?, c.int("images_seen")?, c.float("dice_lv")?, c.float("dice_my")?);
        for r in 0..b.num_rows() {
            out.entry((study[r].clone(), run[r].clone())).or_default().push((seen[r].unwrap_or(0), or_nan(lv[r]), or_nan(my[r])));
        }
    }
    Ok(out)
}

/// Where a subset sits in Fig. 6: its column (`full`, `7`, `3`, `1`, `esed`, or its own name)
/// and whether it is random images (dashed) rather than whole volunteers or all frames (solid).
pub fn panel_of(subset: &str) -> (String, bool) {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    match subset {
        "esed" => ("esed".into(), false),
        "r_esed" => ("esed".into(), true),
        s if s.len() > 1 && s.starts_with('v') && digits(&s[1..]) => (s[1..].to_string(), false),
        s if s.len() > 1 && s.starts_with('r') && digits(&s[1..]) => (s[1..].to_string(), true),
        s => (s.to_string(), false),
    }
}

/// Fig. 6's columns in order: `full`, then volunteer counts from the most, then `esed`, then any
/// other subsets by name.
pub fn panel_order(subsets: impl Iterator<Item = String>) -> Vec<String> {
    let mut panels: Vec<String> = subsets.map(|s| panel_of(&s).0).collect();
    panels.sort_by_key(|p| panel_rank(p));
    panels.dedup();
    panels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_find_their_panel() {
        assert_eq!(panel_of("v7"), ("7".into(), false));
        assert_eq!(panel_of("r7"), ("7".into(), true));
        assert_eq!(panel_of("r_esed"), ("esed".into(), true));
        assert_eq!(panel_of("full"), ("full".into(), false));
        assert_eq!(panel_of("valid"), ("valid".into(), false));
        let order = panel_order(["v1", "esed", "r7", "full", "v3", "r_esed", "mine", "v12"].into_iter().map(String::from));
        assert_eq!(order, ["full", "12", "7", "3", "1", "esed", "mine"]);
    }
}
