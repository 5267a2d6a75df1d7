//! Per-image agreement: both labellers' masks streamed a few studies per query, paired as they
//! meet, scored (Dice of LV and MY, volume differences by slice position) and written to
//! `evaluation_images` in batches, so memory holds at most those studies' masks.

use std::collections::{BTreeSet, HashMap};

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Float64Type, Int32Type};
use futures::StreamExt;
use serde::Serialize;

use super::agreement::SlicePositions;
use super::dice::{MaskKey, Pairing, Scored};
use super::{EvaluateConfig, EvaluateError, Evaluation, KEYS, id_list, query_err, tables};
use crate::progress::Progress;
use crate::query::Session;
use crate::query::read::{ReadError, column as col, quote};
use crate::store::StoreLocation;

/// Studies read per mask query.
const STUDIES_PER_QUERY: usize = 4;
/// Rows per `evaluation_images` batch.
const IMAGE_BATCH: usize = 4096;
/// Bins of the Dice histograms over [0, 1) (medians read from them are exact to 0.001); one
/// more bin holds the Dice of exactly 1 (an empty class in both masks, or identical masks).
pub const DICE_BINS: usize = 1000;

/// Per-class Dice over all images: count, sum and a histogram (exact mean, median to 0.001).
/// `mean` is the paper's convention (an image empty in both masks scores 1);
/// `mean_nonempty` averages only the images whose reference has the class.
#[derive(Debug, Clone, Serialize)]
pub struct DiceSummary {
    pub images: u64,
    pub mean: [f64; 2],
    pub median: [f64; 2],
    /// Images whose reference mask has the class, and their mean Dice.
    pub images_nonempty: [u64; 2],
    pub mean_nonempty: [f64; 2],
    #[serde(skip)]
    pub histogram: [Vec<u64>; 2],
    #[serde(skip)]
    sum: [f64; 2],
    #[serde(skip)]
    sum_nonempty: [f64; 2],
}

impl Default for DiceSummary {
    fn default() -> Self {
        Self {
            images: 0,
            mean: [f64::NAN; 2],
            median: [f64::NAN; 2],
            images_nonempty: [0; 2],
            mean_nonempty: [f64::NAN; 2],
            histogram: [vec![0; DICE_BINS + 1], vec![0; DICE_BINS + 1]],
            sum: [0.0; 2],
            sum_nonempty: [0.0; 2],
        }
    }
}

impl DiceSummary {
    /// One image's Dice of LV and MY, and whether the reference has each class.
    pub(super) fn add(&mut self, d: [f64; 2], reference_has: [bool; 2]) {
        self.images += 1;
        for (k, &v) in d.iter().enumerate() {
            if reference_has[k] {
                self.images_nonempty[k] += 1;
                self.sum_nonempty[k] += v;
            }
            self.sum[k] += v;
            let bin = if v >= 1.0 { DICE_BINS } else { ((v.max(0.0) * DICE_BINS as f64) as usize).min(DICE_BINS - 1) };
            self.histogram[k][bin] += 1;
        }
    }

    pub(super) fn finish(&mut self) {
        if self.images == 0 {
            return;
        }
        for k in 0..2 {
            self.mean[k] = self.sum[k] / self.images as f64;
            if self.images_nonempty[k] > 0 {
                self.mean_nonempty[k] = self.sum_nonempty[k] / self.images_nonempty[k] as f64;
            }
            let half = self.images.div_ceil(2);
            let mut seen = 0;
            for (b, n) in self.histogram[k].iter().enumerate() {
                seen += n;
                if seen >= half {
                    self.median[k] = if b == DICE_BINS { 1.0 } else { (b as f64 + 0.5) / DICE_BINS as f64 };
                    break;
                }
            }
        }
    }
}

/// Streams both labellers' masks of `studies`, a few studies per query, scoring pairs.
#[allow(clippy::too_many_arguments)]
pub(super) async fn score_images(
    session: &Session,
    cfg: &EvaluateConfig,
    reference: &str,
    studies: &[String],
    splits: &HashMap<String, (Option<String>, i32)>,
    out: &StoreLocation,
    ev: &mut Evaluation,
    progress: &dyn Progress,
) -> Result<HashMap<String, (u64, [f64; 2])>, EvaluateError> {
    progress.start(studies.len() as u64, "studies");
    let mut writer = tables::TableWriter::create(out, "evaluation_images.parquet", crate::tables::schemas::evaluation_images())?;
    let mut per_study: HashMap<String, (u64, [f64; 2])> = HashMap::new();
    let mut positions = SlicePositions::default();
    let mut pending: Vec<(Scored, f64)> = Vec::with_capacity(IMAGE_BATCH);
    let join = if cfg.selection.is_some() {
        format!(" JOIN {KEYS} k ON l.study_id = k.study_id AND l.slice_index = k.slice_index AND l.frame_index = k.frame_index")
    } else {
        String::new()
    };
    let mut no_overlap = BTreeSet::new();
    for chunk in studies.chunks(STUDIES_PER_QUERY) {
        let ids: Vec<String> = chunk.iter().map(|s| quote(s)).collect();
        let sql = format!(
            "SELECT l.study_id, l.slice_index, l.frame_index, l.labeller, l.pixel_spacing_row_mm * l.pixel_spacing_col_mm * l.slice_spacing_mm / 1000.0 AS ml_per_pixel, l.mask \
             FROM labels l{join} WHERE l.study_id IN ({}) AND l.labeller IN ({}, {})",
            ids.join(", "),
            quote(&cfg.labeller),
            quote(reference)
        );
        let ctx = format!("reading the masks of studies {}", chunk.join(", "));
        let df = session.sql(&sql).await.map_err(query_err(&ctx))?;
        let mut stream = df.execute_stream().await.map_err(ReadError::execute(&ctx))?;
        let mut pairing = Pairing::default();
        while let Some(b) = stream.next().await {
            let b = b.map_err(ReadError::execute(&ctx))?;
            let (id, lab) = (col(&b, "study_id", &DataType::Utf8, &ctx)?, col(&b, "labeller", &DataType::Utf8, &ctx)?);
            let (id, lab) = (id.as_string::<i32>(), lab.as_string::<i32>());
            let (z, t) = (col(&b, "slice_index", &DataType::Int32, &ctx)?, col(&b, "frame_index", &DataType::Int32, &ctx)?);
            let (z, t) = (z.as_primitive::<Int32Type>(), t.as_primitive::<Int32Type>());
            let ml = col(&b, "ml_per_pixel", &DataType::Float64, &ctx)?;
            let ml = ml.as_primitive::<Float64Type>();
            let masks = b.column_by_name("mask").expect("selected").as_binary::<i32>();
            for i in 0..b.num_rows() {
                let side = if lab.value(i) == cfg.labeller { 0 } else { 1 };
                let key = MaskKey { study_id: id.value(i).to_string(), slice: z.value(i), frame: t.value(i) };
                let Some(scored) = pairing.add(side, key, masks.value(i), ml.value(i)).map_err(EvaluateError::Data)? else {
                    continue;
                };
                let slices = splits.get(&scored.key.study_id).map(|s| s.1).unwrap_or(0);
                let position = if slices > 1 { scored.key.slice as f64 / (slices - 1) as f64 } else { 0.5 };
                let d = scored.dice;
                positions.add(
                    SlicePositions::bin(scored.key.slice, slices),
                    (d.pixels[0] - d.reference_pixels[0]) as f64 * scored.ml_per_pixel,
                    (d.pixels[1] - d.reference_pixels[1]) as f64 * scored.ml_per_pixel,
                );
                ev.dice.add(d.dice, [d.reference_pixels[0] > 0, d.reference_pixels[1] > 0]);
                let e = per_study.entry(scored.key.study_id.clone()).or_default();
                e.0 += 1;
                e.1[0] += d.dice[0];
                e.1[1] += d.dice[1];
                pending.push((scored, position));
                if pending.len() >= IMAGE_BATCH {
                    writer.write(&tables::images_batch(&pending, &cfg.labeller, reference)).await?;
                    pending.clear();
                }
            }
        }
        let [only_a, only_b] = pairing.unmatched();
        ev.unpaired_images[0] += only_a.values().sum::<usize>();
        ev.unpaired_images[1] += only_b.values().sum::<usize>();
        no_overlap.extend(chunk.iter().filter(|s| !per_study.contains_key(*s)).cloned());
        progress.advance(chunk.len() as u64, "");
    }
    if !pending.is_empty() {
        writer.write(&tables::images_batch(&pending, &cfg.labeller, reference)).await?;
    }
    ev.written.push(writer.close().await?);
    if !no_overlap.is_empty() {
        ev.problems.push(format!(
            "{} studies have masks of both `{}` and `{reference}` but no frame masked by both, so they have no Dice: {}",
            no_overlap.len(),
            cfg.labeller,
            id_list(&no_overlap)
        ));
    }
    ev.slice_positions = Some(positions);
    Ok(per_study)
}
