//! The frames a labelling run reads: which (a selection, a `WHERE` on `frames`, or all), minus
//! the studies the labeller already has, streamed from the shards study by study.
//!
//! The frame keys are planned first (no pixels read). The pixels are then read by one query that
//! joins `frames` with the keys; DataFusion's partitions interleave rows of different studies, so
//! rows are gathered per study and a study is handed on once all its planned frames arrived —
//! at most a few studies per partition are held at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Float64Type, Int32Type};
use datafusion::datasource::MemTable;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::InferError;
use crate::model::prep::Histogram;
use crate::pixels::pixel_values;
use crate::query::Session;
use crate::query::read::{self, ReadError, quote};
use crate::query::selection;
use crate::store::StoreLocation;
use crate::tables::label_rows::FrameGrid;
use crate::workers::WorkShare;

/// Which frames to label.
#[derive(Debug, Clone, PartialEq)]
pub enum Which {
    /// Every frame of the tables.
    All,
    /// The frames of a named selection.
    Selection(String),
    /// `SELECT … FROM frames WHERE <this>`.
    Where(String),
}

/// The table of planned keys in the session.
const KEYS: &str = "_label_keys";

/// The plan: studies and how many frames of each are to be labelled.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    /// study → frames to label.
    pub frames: BTreeMap<String, usize>,
    /// Studies left out because the labeller already has them.
    pub already: BTreeSet<String>,
    /// Studies left out because they are other workers' share.
    pub other_workers: usize,
    /// Studies whose frames are only partly selected (their study-wide scale needs all frames).
    pub partial: BTreeSet<String>,
}

impl Planned {
    pub fn total(&self) -> usize {
        self.frames.values().sum()
    }
}

/// A string column as plain strings (whatever string type the scan chose).
pub fn strings(b: &RecordBatch, name: &str) -> Result<StringArray, InferError> {
    Ok(read::column(b, name, &DataType::Utf8, "reading the frames")?.as_string::<i32>().clone())
}

async fn collect(session: &Session, sql: &str) -> Result<Vec<RecordBatch>, InferError> {
    Ok(read::collect(session, sql, "planning the frames to label").await?)
}

/// Plans the keys of `which` (registering them in `session`) without those of studies
/// `labeller` already has in `latest` (the tables at their latest version; `session` may read a
/// selection's versions) unless `overwrite`, and without other workers' studies (`share`).
#[allow(clippy::too_many_arguments)]
pub async fn plan(
    session: &Session,
    latest: &Session,
    data: &StoreLocation,
    which: &Which,
    labeller: &str,
    overwrite: bool,
    share: Option<&WorkShare>,
) -> Result<Planned, InferError> {
    let keys = match which {
        Which::All => collect(session, "SELECT study_id, slice_index, frame_index FROM frames").await?,
        Which::Where(w) => collect(session, &format!("SELECT study_id, slice_index, frame_index FROM frames WHERE {w}")).await?,
        Which::Selection(name) => {
            let (_, batches) = selection::load(data, name).await?;
            batches
        }
    };
    let mut planned = Planned::default();
    let already: BTreeSet<String> = if overwrite {
        BTreeSet::new()
    } else {
        let rows = collect(latest, &format!("SELECT DISTINCT study_id FROM labels WHERE labeller = {}", quote(labeller))).await?;
        let mut s = BTreeSet::new();
        for b in &rows {
            s.extend(strings(b, "study_id")?.iter().flatten().map(String::from));
        }
        s
    };
    // One key per frame (a selection may list a frame once per labeller).
    let mut seen: BTreeSet<(String, i32, i32)> = BTreeSet::new();
    let mut others: BTreeSet<String> = BTreeSet::new();
    for b in &keys {
        let ids = strings(b, "study_id")?;
        let int = |n: &str| -> Result<arrow::array::Int32Array, InferError> {
            Ok(read::column(b, n, &DataType::Int32, "reading the frame keys")?.as_primitive::<Int32Type>().clone())
        };
        let (slices, frames) = (int("slice_index")?, int("frame_index")?);
        for i in 0..b.num_rows() {
            let id = ids.value(i);
            if share.is_some_and(|s| !s.owns(id)) {
                others.insert(id.to_string());
            } else if already.contains(id) {
                planned.already.insert(id.to_string());
            } else {
                seen.insert((id.to_string(), slices.value(i), frames.value(i)));
            }
        }
    }
    for (id, _, _) in &seen {
        *planned.frames.entry(id.clone()).or_default() += 1;
    }
    planned.other_workers = others.len();
    let batch = RecordBatch::try_from_iter([
        ("study_id", Arc::new(StringArray::from_iter_values(seen.iter().map(|k| k.0.as_str()))) as Arc<dyn Array>),
        ("slice_index", Arc::new(arrow::array::Int32Array::from_iter_values(seen.iter().map(|k| k.1)))),
        ("frame_index", Arc::new(arrow::array::Int32Array::from_iter_values(seen.iter().map(|k| k.2)))),
    ])
    .expect("three columns of one length");
    let registering = "registering the frame keys";
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(ReadError::execute(registering))?;
    let ctx = session.context();
    let _ = ctx.deregister_table(KEYS);
    ctx.register_table(KEYS, Arc::new(table)).map_err(ReadError::execute(registering))?;
    // Rows carry whole images: small batches keep memory bounded.
    session.for_images().await?;
    if !planned.frames.is_empty() {
        let counts = collect(
            session,
            &format!(
                "SELECT study_id, count(*) AS n FROM frames WHERE study_id IN (SELECT DISTINCT study_id FROM {KEYS}) GROUP BY study_id"
            ),
        )
        .await?;
        for b in &counts {
            let (ids, n) = (strings(b, "study_id")?, b.column(1).as_primitive::<arrow::datatypes::Int64Type>());
            for i in 0..b.num_rows() {
                if planned.frames.get(ids.value(i)).is_some_and(|k| (*k as i64) < n.value(i)) {
                    planned.partial.insert(ids.value(i).to_string());
                }
            }
        }
    }
    Ok(planned)
}

/// One frame to label.
#[derive(Debug, Clone)]
pub struct Frame {
    pub slice: i32,
    pub frame: i32,
    pub grid: FrameGrid,
    pub source_key: String,
    pub fill: Option<String>,
    /// Little-endian u16, `height × width`.
    pub pixels: Vec<u8>,
}

/// The planned frames of one study, ordered by slice and frame.
#[derive(Debug, Clone)]
pub struct StudyFrames {
    pub study_id: String,
    pub split: Option<String>,
    pub frames: Vec<Frame>,
    /// The histogram of every frame of the study, when the plan holds only some of them.
    pub whole_study: Option<Histogram>,
    /// The plan holds only some of the study's frames.
    pub partial: bool,
}

/// Histograms of every frame of the `partial` studies (one pass over their pixels), of their
/// pixels above zero only when `nonzero`.
pub async fn study_histograms(
    session: &Session,
    partial: &BTreeSet<String>,
    nonzero: bool,
) -> Result<HashMap<String, Histogram>, InferError> {
    let mut out: HashMap<String, Histogram> = HashMap::new();
    if partial.is_empty() {
        return Ok(out);
    }
    let list: Vec<String> = partial.iter().map(|s| quote(s)).collect();
    let df = session.sql(&format!("SELECT study_id, pixels FROM frames WHERE study_id IN ({})", list.join(", "))).await?;
    let ctx = "reading the pixels of studies labelled in part";
    let mut stream = df.execute_stream().await.map_err(ReadError::execute(ctx))?;
    while let Some(b) = stream.next().await {
        let b = b.map_err(ReadError::execute(ctx))?;
        let (ids, px) = (strings(&b, "study_id")?, b.column(1).as_binary::<i32>().clone());
        for i in 0..b.num_rows() {
            out.entry(ids.value(i).to_string()).or_default().add(pixel_values(px.value(i)).filter(|v| !nonzero || *v > 0));
        }
    }
    Ok(out)
}

/// Streams the planned frames, one [`StudyFrames`] per study, into `tx`.
pub async fn stream(
    session: &Session,
    planned: &Planned,
    mut histograms: HashMap<String, Histogram>,
    tx: mpsc::Sender<Result<StudyFrames, InferError>>,
) -> Result<(), InferError> {
    let sql = format!(
        "SELECT f.study_id, f.split, f.slice_index, f.frame_index, f.height, f.width, f.pixel_spacing_row_mm, f.pixel_spacing_col_mm, f.slice_spacing_mm, f.source_key, f.fill, f.pixels \
         FROM frames f JOIN {KEYS} k ON f.study_id = k.study_id AND f.slice_index = k.slice_index AND f.frame_index = k.frame_index"
    );
    let df = session.sql(&sql).await?;
    let mut rows = df.execute_stream().await.map_err(ReadError::execute("reading the frames"))?;
    let mut open: HashMap<String, StudyFrames> = HashMap::new();
    let mut sent = 0;
    while let Some(b) = rows.next().await {
        let b = b.map_err(ReadError::execute("reading the frames"))?;
        let (ids, splits, keys, fills) =
            (strings(&b, "study_id")?, strings(&b, "split")?, strings(&b, "source_key")?, strings(&b, "fill")?);
        let int = |n: &str| b.column_by_name(n).expect("selected").as_primitive::<Int32Type>().clone();
        let float = |n: &str| b.column_by_name(n).expect("selected").as_primitive::<Float64Type>().clone();
        let (slice, frame, h, w) = (int("slice_index"), int("frame_index"), int("height"), int("width"));
        let (sr, sc, ss) = (float("pixel_spacing_row_mm"), float("pixel_spacing_col_mm"), float("slice_spacing_mm"));
        let px = b.column_by_name("pixels").expect("selected").as_binary::<i32>().clone();
        for i in 0..b.num_rows() {
            let id = ids.value(i);
            let grid = FrameGrid {
                height: h.value(i),
                width: w.value(i),
                pixel_spacing_row_mm: sr.value(i),
                pixel_spacing_col_mm: sc.value(i),
                slice_spacing_mm: ss.value(i),
            };
            if px.value(i).len() != grid.pixels() * 2 {
                return Err(InferError::Data(format!(
                    "study {id} slice {} frame {}: {} pixel bytes for a {}×{} image; re-ingest the study",
                    slice.value(i),
                    frame.value(i),
                    px.value(i).len(),
                    grid.height,
                    grid.width
                )));
            }
            let study = open.entry(id.to_string()).or_insert_with(|| StudyFrames {
                study_id: id.to_string(),
                split: splits.is_valid(i).then(|| splits.value(i).to_string()),
                frames: Vec::new(),
                whole_study: histograms.remove(id),
                partial: planned.partial.contains(id),
            });
            study.frames.push(Frame {
                slice: slice.value(i),
                frame: frame.value(i),
                grid,
                source_key: keys.value(i).to_string(),
                fill: fills.is_valid(i).then(|| fills.value(i).to_string()),
                pixels: px.value(i).to_vec(),
            });
            if study.frames.len() == planned.frames.get(id).copied().unwrap_or(0) {
                let mut done = open.remove(id).expect("open");
                done.frames.sort_by_key(|f| (f.slice, f.frame));
                sent += 1;
                if tx.send(Ok(done)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    if let Some((id, s)) = open.into_iter().next() {
        return Err(InferError::Data(format!(
            "study {id}: {} of its {} planned frames were read; were the tables changed during the run? Rerun",
            s.frames.len(),
            planned.frames.get(&id).copied().unwrap_or(0)
        )));
    }
    if sent != planned.frames.len() {
        return Err(InferError::Data(format!(
            "{} of {} planned studies were read; were the tables changed during the run? Rerun",
            sent,
            planned.frames.len()
        )));
    }
    Ok(())
}
