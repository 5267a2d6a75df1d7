//! Rows of `labels`, from whoever made the mask: ingest (masks that came with the images), the
//! phantom's truth, or a model ([`LabelRow`], [`labels_batch`]); and the one count of pixels per
//! class ([`class_counts`]) that every writer of mask pixel counts uses.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryBuilder, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};

use super::registry::LABELS;

/// Pixels per class of a mask: `[background, LV, MY, RV]` (classes 0–3). Values above 3 are
/// not counted.
pub fn class_counts(mask: &[u8]) -> [i64; 4] {
    let mut n = [0i64; 4];
    for v in mask {
        if let Some(c) = n.get_mut(*v as usize) {
            *c += 1;
        }
    }
    n
}

/// The curated frame grid a mask lies on (the `height` … `slice_spacing_mm` columns).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameGrid {
    pub height: i32,
    pub width: i32,
    pub pixel_spacing_row_mm: f64,
    pub pixel_spacing_col_mm: f64,
    pub slice_spacing_mm: f64,
}

impl FrameGrid {
    /// Pixels of one image on this grid.
    pub fn pixels(&self) -> usize {
        self.height.max(0) as usize * self.width.max(0) as usize
    }

    /// The five geometry columns for `n` rows on this grid.
    pub fn columns(&self, n: usize) -> Vec<ArrayRef> {
        Self::columns_of(std::iter::repeat_n(self, n))
    }

    /// The five geometry columns, one row per grid.
    pub fn columns_of<'a>(grids: impl Iterator<Item = &'a FrameGrid> + Clone) -> Vec<ArrayRef> {
        vec![
            Arc::new(Int32Array::from_iter_values(grids.clone().map(|g| g.height))),
            Arc::new(Int32Array::from_iter_values(grids.clone().map(|g| g.width))),
            Arc::new(Float64Array::from_iter_values(grids.clone().map(|g| g.pixel_spacing_row_mm))),
            Arc::new(Float64Array::from_iter_values(grids.clone().map(|g| g.pixel_spacing_col_mm))),
            Arc::new(Float64Array::from_iter_values(grids.map(|g| g.slice_spacing_mm))),
        ]
    }
}

/// One mask of one frame by one labeller.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow<'a> {
    pub study_id: &'a str,
    pub split: Option<&'a str>,
    pub slice_index: i32,
    pub frame_index: i32,
    pub labeller: &'a str,
    pub grid: FrameGrid,
    /// Object key of the source image the mask belongs to.
    pub source_key: &'a str,
    /// `None`, or how the frame was filled (`previous_frame`, `previous_slice`).
    pub fill: Option<&'a str>,
    /// `height × width` class values, row-major.
    pub mask: &'a [u8],
}

/// The `labels` rows of `rows` (pixel counts from [`class_counts`]).
///
/// Panics if a mask's length is not its grid's `height × width`: a writer's bug, never input.
pub fn labels_batch(rows: &[LabelRow]) -> RecordBatch {
    let n = rows.len();
    let counts: Vec<[i64; 4]> = rows.iter().map(|r| class_counts(r.mask)).collect();
    let mut masks = BinaryBuilder::with_capacity(n, rows.iter().map(|r| r.mask.len()).sum());
    for r in rows {
        assert_eq!(
            r.mask.len(),
            r.grid.pixels(),
            "mask of {} slice {} frame {} does not fit its grid",
            r.study_id,
            r.slice_index,
            r.frame_index
        );
        masks.append_value(r.mask);
    }
    let count = |class: usize| Arc::new(Int64Array::from_iter_values(counts.iter().map(|c| c[class]))) as ArrayRef;
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.study_id))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.split))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.slice_index))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.frame_index))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.labeller))),
    ];
    cols.extend(FrameGrid::columns_of(rows.iter().map(|r| &r.grid)));
    cols.extend([
        count(1),
        count(2),
        count(3),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.source_key))) as ArrayRef,
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.fill))),
        Arc::new(masks.finish()),
    ]);
    RecordBatch::try_new(LABELS.schema(), cols).expect("columns match the labels schema")
}

/// Appends one labeller's masks to `labels` as one published run (what `cinestream label`
/// commits, without a model): the shard writer's files, one Delta commit tagged `app_id` (a
/// rerun with the same id commits nothing twice), published with `sources`. For masks made
/// elsewhere — a test's altered copy, a benchmark's second labeller.
pub async fn append_labels(data: &crate::store::StoreLocation, app_id: &str, rows: &[LabelRow<'_>]) -> Result<(), super::ShardError> {
    use super::{RunInfo, ShardSet, TableChange, commit_run, registry, writer::ShardConfig};
    let run_id = format!("{app_id}-run");
    let mut shards = ShardSet::new(data, &run_id, &ShardConfig::default(), &registry::LABEL, &std::collections::BTreeSet::new());
    for chunk in rows.chunks(256) {
        shards.write(&registry::LABELS, labels_batch(chunk)).await?;
    }
    let mut changes: std::collections::BTreeMap<&'static str, TableChange> = std::collections::BTreeMap::new();
    for (t, files) in shards.finish().await? {
        changes.entry(t).or_default().adds.extend(files);
    }
    let labellers: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.labeller).collect();
    let run = RunInfo::new(
        app_id.to_string(),
        "append_labels",
        run_id,
        &serde_json::json!({ "rows": rows.len() }),
        &serde_json::json!({ "labellers": labellers }),
    );
    commit_run(data, &run, &registry::LABEL, changes).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;

    #[test]
    fn counts_per_class_ignore_unknown_values() {
        assert_eq!(class_counts(&[0, 1, 1, 2, 3, 3, 3, 9]), [1, 2, 1, 3]);
    }

    #[test]
    fn rows_of_two_grids_keep_their_own_geometry_and_counts() {
        let g = |h, w| FrameGrid { height: h, width: w, pixel_spacing_row_mm: 1.5, pixel_spacing_col_mm: 1.25, slice_spacing_mm: 8.0 };
        let (m1, m2) = ([1u8, 2, 2, 0], [3u8; 6]);
        let row = |study, grid, mask| LabelRow {
            study_id: study,
            split: None,
            slice_index: 0,
            frame_index: 1,
            labeller: "x",
            grid,
            source_key: "k",
            fill: None,
            mask,
        };
        let b = labels_batch(&[row("a", g(2, 2), &m1), row("b", g(2, 3), &m2)]);
        assert_eq!(b.num_rows(), 2);
        let col = |name: &str| b.column_by_name(name).unwrap().clone();
        assert_eq!(col("width").as_primitive::<arrow::datatypes::Int32Type>().values(), &[2, 3]);
        assert_eq!(col("my_pixels").as_primitive::<Int64Type>().values(), &[2, 0]);
        assert_eq!(col("rv_pixels").as_primitive::<Int64Type>().values(), &[0, 6]);
        assert_eq!(col("mask").as_binary::<i32>().value(1), &m2);
    }
}
