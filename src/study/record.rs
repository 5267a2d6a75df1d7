//! What a study commits, exactly once: its subsets (`study_subsets`, once per study) and each
//! run's validation points and result (`study_log`, `study_runs`, once per run). Every commit
//! carries an application transaction id naming the work (`study:<name>:subsets`,
//! `study:<name>:run:<run>`), so a rerun, a second worker or a worker that died between two
//! commits adds nothing twice; `sources` publishes the commit to our readers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};

use super::StudyError;
use crate::query::loess;
use crate::store::StoreLocation;
use crate::tables::{self, RunInfo, ShardSet, TableChange, commit_run, committed_tables};
use crate::train::log::EpochRow;

/// A run's identity in the tables.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunId {
    pub study: String,
    pub run: String,
    pub start: String,
    pub subset: String,
    pub subset_images: i64,
}

/// A run's result: its training and its test evaluation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunResult {
    pub epochs_per_stage: i32,
    pub images_seen: i64,
    pub seconds: f64,
    pub model_url: String,
    /// Test Dice LV/MY (both-empty images score 1), and over images whose expert mask has the class.
    pub test_dice: [Option<f64>; 2],
    pub test_dice_nonempty: [Option<f64>; 2],
    pub test_studies: Option<i64>,
    pub test_ef_error_mean: Option<f64>,
    pub test_ef_error_median: Option<f64>,
    pub test_edv_error_mean_ml: Option<f64>,
    pub test_esv_error_mean_ml: Option<f64>,
}

/// The application transaction id of a run's commit.
pub fn run_app_id(study: &str, run: &str) -> String {
    format!("study:{study}:run:{run}")
}

/// The application transaction id of a study's subsets.
pub fn subsets_app_id(study: &str) -> String {
    format!("study:{study}:subsets")
}

/// Whether the work of `app_id` is published: its `sources` commit, the last of a run, landed.
/// A worker killed between its `study_runs` and its `sources` commit left rows no reader sees;
/// the run is done again, and [`commit`] then writes only what is missing.
pub async fn published(data: &StoreLocation, app_id: &str) -> Result<bool, StudyError> {
    Ok(committed_tables(data, &[&tables::SOURCES], app_id).await?.contains(tables::SOURCES.name))
}

/// The `study_log` rows of a run: its identity, then the run's `training_log` columns.
pub fn log_batch(id: &RunId, rows: &[EpochRow]) -> RecordBatch {
    let n = rows.len();
    let same = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
    let mut columns: Vec<ArrayRef> =
        vec![same(&id.study), same(&id.run), same(&id.start), same(&id.subset), Arc::new(Int64Array::from(vec![id.subset_images; n]))];
    columns.extend(crate::train::log::batch(rows).columns().iter().cloned());
    RecordBatch::try_new(tables::schemas::study_log(), columns).expect("columns match the schema")
}

/// First, raw peak (and where), smoothed peak (and where) and final Dice of class `k` (0 LV,
/// 1 MY), as `study_summary` computes them.
fn curve_stats(rows: &[EpochRow], k: usize) -> [Option<f64>; 6] {
    let dice = |r: &EpochRow| if k == 0 { r.dice_lv } else { r.dice_my };
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else { return [None; 6] };
    let peak = rows.iter().fold(first, |best, r| if dice(r) > dice(best) { r } else { best });
    let points: Vec<(f64, f64)> = rows.iter().map(|r| (r.images_seen as f64, dice(r))).collect();
    let smooth = loess::peak(&points, loess::SPAN);
    [Some(dice(first)), Some(dice(peak)), Some(peak.images_seen as f64), smooth.map(|s| s.1), smooth.map(|s| s.0), Some(dice(last))]
}

/// The `study_runs` row of a run.
pub fn runs_batch(id: &RunId, result: &RunResult, log: &[EpochRow]) -> RecordBatch {
    let text = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let float = |v: Option<f64>| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
    let int = |v: Option<i64>| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
    let mut columns: Vec<ArrayRef> = vec![
        text(&id.study),
        text(&id.run),
        text(&id.start),
        text(&id.subset),
        Arc::new(Int64Array::from(vec![id.subset_images])),
        Arc::new(Int32Array::from(vec![result.epochs_per_stage])),
        Arc::new(Int64Array::from(vec![result.images_seen])),
        Arc::new(Float64Array::from(vec![result.seconds])),
        text(&result.model_url),
    ];
    for k in 0..2 {
        let [first, peak, peak_at, smooth, smooth_at, last] = curve_stats(log, k);
        columns.extend([
            float(first),
            float(peak),
            int(peak_at.map(|v| v as i64)),
            float(smooth),
            int(smooth_at.map(|v| v as i64)),
            float(last),
        ]);
    }
    for k in 0..2 {
        columns.extend([float(result.test_dice[k]), float(result.test_dice_nonempty[k])]);
    }
    columns.extend([
        int(result.test_studies),
        float(result.test_ef_error_mean),
        float(result.test_ef_error_median),
        float(result.test_edv_error_mean_ml),
        float(result.test_esv_error_mean_ml),
    ]);
    RecordBatch::try_new(tables::schemas::study_runs(), columns).expect("columns match the schema")
}

/// Writes `batches` (table → rows) and commits them under `app_id`, tables a crashed earlier
/// attempt already committed left out; `sources` publishes.
pub async fn commit(
    data: &StoreLocation,
    app_id: &str,
    summary: &impl serde::Serialize,
    batches: Vec<(&'static tables::spec::TableSpec, RecordBatch)>,
) -> Result<(), StudyError> {
    let specs: Vec<&'static tables::spec::TableSpec> = batches.iter().map(|(s, _)| *s).collect();
    let done: BTreeSet<&str> = committed_tables(data, &specs, app_id).await?;
    let run_id = crate::ids::run_id();
    let mut shards = ShardSet::new(data, &run_id, &Default::default(), &specs, &done);
    for (spec, batch) in batches {
        shards.write(spec, batch).await?;
    }
    let changes: BTreeMap<&'static str, TableChange> =
        shards.finish().await?.into_iter().map(|(t, adds)| (t, TableChange { adds, ..Default::default() })).collect();
    let run = RunInfo::new(app_id.to_string(), "study", run_id, summary, &serde_json::json!({ "app_id": app_id }));
    commit_run(data, &run, &specs, changes).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(images: i64, lv: f64) -> EpochRow {
        EpochRow {
            stage: 0,
            epoch: 0,
            global_epoch: 0,
            steps: images / 8,
            images_seen: images,
            lr_max: 1e-4,
            frozen: true,
            train_loss: 0.1,
            valid_loss: 0.1,
            dice_lv: lv,
            dice_my: lv / 2.0,
            seconds: 1.0,
        }
    }

    #[test]
    fn a_run_row_has_the_curve_figures() {
        let id = RunId { study: "s".into(), run: "R_full".into(), start: "R".into(), subset: "full".into(), subset_images: 80 };
        let log = [row(80, 0.5), row(160, 0.8), row(240, 0.7)];
        let b = runs_batch(&id, &RunResult { epochs_per_stage: 2, images_seen: 240, ..Default::default() }, &log);
        assert_eq!(b.num_rows(), 1);
        let f = |c: &str| arrow::compute::cast(b.column_by_name(c).unwrap(), &arrow::datatypes::DataType::Float64).unwrap();
        let v = |c: &str| f(c).as_any().downcast_ref::<Float64Array>().unwrap().value(0);
        assert_eq!((v("first_dice_lv"), v("peak_dice_lv"), v("peak_images_lv"), v("final_dice_lv")), (0.5, 0.8, 160.0, 0.7));
        assert_eq!(v("peak_dice_my"), 0.4);
        assert!(b.column_by_name("test_dice_lv").unwrap().is_null(0));
        assert_eq!(log_batch(&id, &log).num_rows(), 3);
    }
}
