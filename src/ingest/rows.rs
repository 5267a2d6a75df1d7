//! Ingest's rows: a curated study as record batches of `frames`, `labels` and `studies`, and
//! findings as rows of `curation_log`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryBuilder, BooleanArray, Float32Array, Float64Array, Int32Array, RecordBatch, StringArray};

use crate::curate::{CuratedFrame, CuratedStudy};
use crate::findings::Finding;
use crate::pixels::pixel_bytes;
use crate::source::truth::Truth;
use crate::tables::label_rows::{FrameGrid, LabelRow, labels_batch};
use crate::tables::spec::TableSpec;
use crate::tables::{CURATION_LOG, FRAMES, STUDIES};

fn batch(table: &TableSpec, cols: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(table.schema(), cols).expect("columns match the schema")
}

/// Rows of one study for each table.
pub struct StudyBatches {
    pub frames: RecordBatch,
    pub labels: Option<RecordBatch>,
    pub studies: RecordBatch,
}

/// Builds the rows of one curated study; `ed_es` are the frames a NIfTI dataset gives.
pub fn study_batches(s: &CuratedStudy, truth: Option<Truth>, ed_es: Option<[u32; 2]>, labeller: &str) -> StudyBatches {
    let g = FrameGrid {
        height: s.grid.rows as i32,
        width: s.grid.cols as i32,
        pixel_spacing_row_mm: s.grid.spacing[0],
        pixel_spacing_col_mm: s.grid.spacing[1],
        slice_spacing_mm: s.slice_spacing_mm,
    };
    let frames: Vec<(usize, usize, f64, &CuratedFrame)> = s
        .slices
        .iter()
        .enumerate()
        .flat_map(|(k, sl)| sl.frames.iter().enumerate().map(move |(t, fr)| (k, t, sl.position_mm, fr)))
        .collect();
    let n = frames.len();
    let split = |n: usize| Arc::new(StringArray::from(vec![s.split.as_deref(); n])) as ArrayRef;

    let mut pixels = BinaryBuilder::with_capacity(n, n * g.pixels() * 2);
    for (_, _, _, fr) in &frames {
        pixels.append_value(pixel_bytes(&fr.pixels));
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![s.study_id.as_str(); n])),
        Arc::new(StringArray::from(vec![s.source_study_id.as_str(); n])),
        split(n),
        Arc::new(Int32Array::from_iter_values(frames.iter().map(|x| x.0 as i32))),
        Arc::new(Int32Array::from_iter_values(frames.iter().map(|x| x.1 as i32))),
        Arc::new(Float64Array::from_iter_values(frames.iter().map(|x| x.2))),
        Arc::new(Float64Array::from_iter(frames.iter().map(|x| x.3.trigger_time_ms))),
    ];
    cols.extend(g.columns(n));
    cols.extend([
        Arc::new(Float64Array::from(vec![s.slice_thickness_mm; n])) as ArrayRef,
        Arc::new(Float64Array::from(vec![s.field_strength_t; n])),
        Arc::new(StringArray::from_iter_values(frames.iter().map(|x| x.3.source_key.as_str()))),
        Arc::new(StringArray::from_iter(frames.iter().map(|x| x.3.fill.map(|f| f.as_str())))),
        Arc::new(BooleanArray::from_iter(frames.iter().map(|x| Some(x.3.resampled)))),
        Arc::new(pixels.finish()),
    ]);
    let frames_batch = batch(&FRAMES, cols);

    let label_rows: Vec<LabelRow> = frames
        .iter()
        .filter_map(|(k, t, _, fr)| {
            let mask = fr.mask.as_deref()?.as_slice();
            Some(LabelRow {
                study_id: &s.study_id,
                split: s.split.as_deref(),
                slice_index: *k as i32,
                frame_index: *t as i32,
                labeller,
                grid: g,
                source_key: &fr.source_key,
                fill: fr.fill.map(|f| f.as_str()),
                mask,
            })
        })
        .collect();
    let labels = (!label_rows.is_empty()).then(|| labels_batch(&label_rows));

    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![s.study_id.as_str()])),
        Arc::new(StringArray::from(vec![s.source_study_id.as_str()])),
        split(1),
        Arc::new(Int32Array::from(vec![s.slices.len() as i32])),
        Arc::new(Int32Array::from(vec![s.n_frames as i32])),
    ];
    cols.extend(g.columns(1));
    cols.extend([
        Arc::new(Float64Array::from(vec![s.slice_thickness_mm])) as ArrayRef,
        Arc::new(Float64Array::from(vec![s.scale_factor])),
        Arc::new(Float64Array::from(vec![s.field_strength_t])),
        Arc::new(StringArray::from(vec![s.sex.as_deref()])),
        Arc::new(Float32Array::from(vec![s.age_years])),
        Arc::new(Float64Array::from(vec![truth.map(|t| t.esv_ml)])),
        Arc::new(Float64Array::from(vec![truth.map(|t| t.edv_ml)])),
        Arc::new(Int32Array::from(vec![s.source_files as i32])),
    ]);
    let toward_base = crate::geometry::scale(s.axis, -1.0);
    cols.extend(
        s.grid
            .origin
            .iter()
            .chain(&s.grid.row_dir)
            .chain(&s.grid.col_dir)
            .chain(&toward_base)
            .map(|v| Arc::new(Float64Array::from(vec![*v])) as ArrayRef),
    );
    cols.extend([0, 1].map(|k| Arc::new(Int32Array::from(vec![ed_es.map(|e| e[k] as i32)])) as ArrayRef));
    StudyBatches { frames: frames_batch, labels, studies: batch(&STUDIES, cols) }
}

/// Rows of `curation_log`.
pub fn findings_batch(findings: &[Finding]) -> RecordBatch {
    batch(
        &CURATION_LOG,
        vec![
            Arc::new(StringArray::from_iter_values(findings.iter().map(|f| f.study_id.as_str()))),
            Arc::new(StringArray::from_iter_values(findings.iter().map(|f| f.problem.as_str()))),
            Arc::new(StringArray::from_iter_values(findings.iter().map(|f| f.resolution.as_str()))),
            Arc::new(StringArray::from_iter(findings.iter().map(|f| f.object_key.as_deref()))),
            Arc::new(StringArray::from_iter_values(findings.iter().map(|f| f.detail.as_str()))),
            Arc::new(Int32Array::from_iter_values(findings.iter().map(|f| f.excluded_files as i32))),
        ],
    )
}
