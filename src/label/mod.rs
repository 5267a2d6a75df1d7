//! Batch inference writers: `cinestream label` labels selected frames with a model and commits
//! the masks to `labels` and a quality check per study to `label_qc`.
//!
//! 1. **Plan** ([`frames::plan`]): the frame keys of a selection, a `WHERE` on `frames`, or all,
//!    without the studies the labeller already has (a rerun skips them; `overwrite` does not).
//! 2. **Stream**: read (async) → pre-process → infer → post-process (threads, [`stages`]) → write
//!    (async, the shard writer), each behind a bounded channel.
//! 3. **Commit** ([`crate::tables::commit_run`]): `labels`, `label_qc`, then `sources` (which
//!    publishes the run), each with one application transaction id per job, so a retried or
//!    resumed job never commits twice. `overwrite` removes the labeller's earlier rows in the same
//!    commits, so readers see the old rows or the new, never both or neither.

pub mod engine;
pub mod frames;
pub mod onnx;
pub mod post;
pub mod qc;
pub mod stages;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::model::card::{self, CardError, ModelCard};
use crate::model::contract::Contract;
use crate::progress::{Parts, Progress};
use crate::query::selection::SelectionError;
use crate::query::{QueryError, Session, SessionOptions};
use crate::store::{self, StoreError, StoreOptions};
use crate::tables::delta::{self, AsOf};
use crate::tables::label_rows::{LabelRow, labels_batch};
use crate::tables::writer::ShardConfig;
use crate::tables::{self, RunInfo, ShardError, ShardSet, TableChange, commit_run, committed_tables, rewrite};
use frames::Which;
use qc::{QcConfig, QcResult};

/// Errors of a labelling run; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("label configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Session(#[from] QueryError),
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error(transparent)]
    Read(#[from] crate::query::read::ReadError),
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Card(#[from] CardError),
    #[error(transparent)]
    Contract(#[from] crate::model::contract::ContractError),
    #[error("model `{url}`: {message}")]
    Model { url: String, message: String },
    #[error("model `{url}` cannot be read: {source}")]
    ReadModel { url: String, source: Box<store::ReadError> },
    #[error(
        "model `{model}`: its contract `{contract}` cannot be read ({source}): write one (see pipelines/models/) or give --contract URL"
    )]
    ReadContract { model: String, contract: String, source: Box<store::ReadError> },
    #[error("model `{url}`: ONNX Runtime cannot load it: {source}")]
    LoadModel { url: String, source: ort::Error },
    #[error("{what}: {source}")]
    Onnx { what: &'static str, source: ort::Error },
    /// The model's output does not have the shape or type the contract promised.
    #[error("the model's output: {0}")]
    Output(String),
    #[error(transparent)]
    Runtime(std::sync::Arc<onnx::RuntimeError>),
    #[error("no frames to label: {0}")]
    NoFrames(String),
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error("the labelling stage `{stage}` stopped: {source}")]
    Join { stage: &'static str, source: tokio::task::JoinError },
    #[error("the {thread} thread panicked: {message}")]
    Panicked { thread: &'static str, message: String },
    #[error("{came} of {planned} planned studies came through the model")]
    Lost { came: usize, planned: usize },
}

impl From<delta::DeltaError> for InferError {
    fn from(e: delta::DeltaError) -> Self {
        InferError::Shard(e.into())
    }
}

pub use crate::model::Device;

/// `cinestream label` settings (`[label]` in a pipeline file, or flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelConfig {
    /// The data prefix with the tables.
    pub data: String,
    /// One of our models (its `model` folder, or `model.json` / `model.bin`), or an ONNX file.
    pub model: String,
    /// The contract of an ONNX model (default: the `.toml` beside it with the same stem).
    #[serde(default)]
    pub contract: Option<String>,
    /// Name written in `labels.labeller` and `label_qc.labeller`.
    pub labeller: String,
    /// Label the frames of this selection …
    #[serde(default)]
    pub selection: Option<String>,
    /// … or those of `SELECT … FROM frames WHERE <this>` (all frames without either).
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Images per model call.
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default)]
    pub device: Device,
    /// Replace every earlier row of this labeller (in one commit per table).
    #[serde(default)]
    pub overwrite: bool,
    /// Label only this worker's share of the studies (`i/N`, see [`crate::workers`]).
    #[serde(default)]
    pub share: Option<crate::workers::WorkShare>,
    /// Studies held between reading and writing (bounds memory).
    #[serde(default = "default_in_flight")]
    pub studies_in_flight: usize,
    #[serde(default)]
    pub qc: QcConfig,
    #[serde(default)]
    pub shards: ShardConfig,
    #[serde(default)]
    pub store: StoreOptions,
}

fn default_batch() -> usize {
    8
}
fn default_in_flight() -> usize {
    2
}

impl LabelConfig {
    pub fn new(data: impl Into<String>, model: impl Into<String>, labeller: impl Into<String>) -> Self {
        LabelConfig {
            data: data.into(),
            model: model.into(),
            labeller: labeller.into(),
            contract: None,
            selection: None,
            filter: None,
            batch: default_batch(),
            device: Device::Cpu,
            overwrite: false,
            share: None,
            studies_in_flight: default_in_flight(),
            qc: QcConfig::default(),
            shards: ShardConfig::default(),
            store: StoreOptions::default(),
        }
    }

    /// Checks the settings without I/O.
    pub fn validate(&self) -> Result<(), InferError> {
        let bad = |m: String| Err(InferError::Config(m));
        if self.labeller.trim().is_empty() || !self.labeller.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
            return bad(format!("labeller `{}`: use letters, digits, `_`, `-` and `.`", self.labeller));
        }
        if self.selection.is_some() && self.filter.is_some() {
            return bad("give a selection or a where clause, not both".into());
        }
        if !(1..=1024).contains(&self.batch) {
            return bad(format!("batch = {} must be in 1..=1024", self.batch));
        }
        if !(1..=64).contains(&self.studies_in_flight) {
            return bad(format!("studies_in_flight = {} must be in 1..=64", self.studies_in_flight));
        }
        self.qc.validate().map_err(InferError::Config)?;
        self.shards.validate().map_err(InferError::Config)
    }

    fn which(&self) -> Which {
        match (&self.selection, &self.filter) {
            (Some(s), _) => Which::Selection(s.clone()),
            (None, Some(w)) => Which::Where(w.clone()),
            (None, None) => Which::All,
        }
    }
}

/// One study's line in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct StudyLine {
    pub study_id: String,
    pub frames: usize,
    pub qc: QcResult,
}

/// What a labelling run did (also stored in each commit's info).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LabelReport {
    pub labeller: String,
    pub model_sha256: String,
    /// Studies labelled, and skipped because the labeller already had them.
    pub studies: Vec<StudyLine>,
    pub studies_already_labelled: Vec<String>,
    /// Studies planned that are other workers' share (`share`).
    pub studies_other_workers: usize,
    pub share: Option<String>,
    pub frames_labelled: usize,
    pub qc_passed: usize,
    pub qc_failures: BTreeMap<String, usize>,
    pub seconds: f64,
    pub images_per_second: f64,
    /// Share of the wall time the model was computing.
    pub model_busy: f64,
    /// Earlier rows of the labeller removed (`overwrite`).
    pub rows_replaced: u64,
    pub app_id: String,
    pub commits: BTreeMap<String, String>,
}

impl LabelReport {
    pub fn render(&self) -> String {
        let mut s = format!(
            "label summary ({})\n  studies labelled      {} ({} frames), {} already labelled by `{}` (skipped)\n  quality control       {} passed, {} failed{}\n  throughput            {:.1} images/s over {:.1} s, model busy {:.0}% of the time\n",
            self.model_sha256.get(..12).unwrap_or_default(),
            self.studies.len(),
            self.frames_labelled,
            self.studies_already_labelled.len(),
            self.labeller,
            self.qc_passed,
            self.studies.len() - self.qc_passed,
            if self.qc_failures.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.qc_failures.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
            },
            self.images_per_second,
            self.seconds,
            100.0 * self.model_busy
        );
        if let Some(share) = &self.share {
            s += &format!("  worker {share}          {} studies left to the other workers\n", self.studies_other_workers);
        }
        if self.rows_replaced > 0 {
            s += &format!("  replaced              {} earlier rows of `{}`\n", self.rows_replaced, self.labeller);
        }
        if !self.studies.is_empty() {
            s += "  study          EDV mL   ESV mL    EF %   QC\n";
            for l in &self.studies {
                let q = &l.qc;
                let ef = q.ef_pct.map_or("-".to_string(), |e| format!("{e:.1}"));
                let verdict = if q.passed { "pass".to_string() } else { format!("fail: {}", q.failures.join(", ")) };
                s += &format!("  {:<12} {:>8.1} {:>8.1} {:>7}   {verdict}\n", l.study_id, q.edv_ml, q.esv_ml, ef);
            }
        }
        for (t, c) in &self.commits {
            s += &format!("  {t:<13} {c}\n");
        }
        s
    }
}

/// A model ready for the inference thread.
enum Loaded {
    Burn { card: Box<ModelCard>, weights: bytes::Bytes },
    Onnx { bytes: bytes::Bytes, url: String },
}

/// Reads the model and its contract.
async fn load(cfg: &LabelConfig) -> Result<(Loaded, Contract, String), InferError> {
    if cfg.model.ends_with(".onnx") {
        let bytes = store::read_object(&cfg.model, &cfg.store)
            .await
            .map_err(|e| InferError::ReadModel { url: cfg.model.clone(), source: Box::new(e) })?;
        let contract_url = cfg.contract.clone().unwrap_or_else(|| format!("{}.toml", cfg.model.trim_end_matches(".onnx")));
        let text = store::read_object(&contract_url, &cfg.store).await.map_err(|e| InferError::ReadContract {
            model: cfg.model.clone(),
            contract: contract_url.clone(),
            source: Box::new(e),
        })?;
        let contract = Contract::parse(&String::from_utf8_lossy(&text), &contract_url)?;
        let sha = hex::encode(Sha256::digest(&bytes));
        return Ok((Loaded::Onnx { bytes, url: cfg.model.clone() }, contract, sha));
    }
    if cfg.contract.is_some() {
        return Err(InferError::Config("--contract is for ONNX models; our models carry theirs in model.json".into()));
    }
    let (card, weights) = card::read(&cfg.model, &cfg.store).await?;
    let contract = Contract::of_card(&card);
    let sha = card.weights.sha256.clone();
    Ok((Loaded::Burn { card: Box::new(card), weights }, contract, sha))
}

/// Loads the model and its contract and builds its engine, without labelling anything: a model
/// that cannot be used fails here (the scheduler checks before it takes any work). Returns the
/// model's SHA-256.
pub async fn preflight(cfg: &LabelConfig) -> Result<String, InferError> {
    let (loaded, contract, sha) = load(cfg).await?;
    let device = cfg.device;
    tokio::task::spawn_blocking(move || {
        let (tx, rx) = mpsc::channel(1);
        let (out_tx, _out_rx) = mpsc::channel(1);
        drop(tx);
        run_engine(loaded, device, &contract, rx, out_tx).map(|_| ())
    })
    .await
    .map_err(|source| InferError::Join { stage: "checking the model", source })??;
    Ok(sha)
}

/// Builds the engine on the inference thread and runs the inference stage there.
fn run_engine(
    loaded: Loaded,
    device: Device,
    contract: &Contract,
    rx: mpsc::Receiver<Result<stages::Job, InferError>>,
    tx: mpsc::Sender<Result<stages::Output, InferError>>,
) -> Result<Duration, InferError> {
    match (loaded, device) {
        (Loaded::Burn { card, weights }, Device::Cpu) => {
            let dev = Default::default();
            let model = card::build::<burn::backend::Flex>(&card, &weights, &dev)?;
            Ok(stages::infer(&mut engine::BurnEngine { model, device: dev }, contract, rx, tx))
        }
        #[cfg(feature = "cuda")]
        (Loaded::Burn { card, weights }, Device::Cuda) => {
            let dev = Default::default();
            let model = card::build::<burn::backend::Cuda<f32>>(&card, &weights, &dev)?;
            Ok(stages::infer(&mut engine::BurnEngine { model, device: dev }, contract, rx, tx))
        }
        #[cfg(not(feature = "cuda"))]
        (Loaded::Burn { .. }, Device::Cuda) => {
            Err(InferError::Config("this build has no CUDA: cargo build --release --features cuda".into()))
        }
        (Loaded::Onnx { bytes, url }, Device::Cpu) => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let mut engine = onnx::OnnxEngine::new(&bytes, &url, contract, threads)?;
            Ok(stages::infer(&mut engine, contract, rx, tx))
        }
        (Loaded::Onnx { url, .. }, Device::Cuda) => Err(InferError::Model {
            url,
            message: "the ONNX engine runs on the CPU (the pip onnxruntime wheel has no CUDA provider): use --device cpu".into(),
        }),
    }
}

/// The application transaction id of a labelling job: the same work (labeller, model, frames,
/// overwrite) has the same id, so a rerun after a crash completes it instead of repeating it.
fn app_id(labeller: &str, model_sha: &str, planned: &frames::Planned, overwrite: bool) -> String {
    let mut h = Sha256::new();
    h.update(format!("labeller={labeller}\nmodel={model_sha}\noverwrite={overwrite}\n").as_bytes());
    for (study, n) in &planned.frames {
        h.update(format!("{study}\t{n}\n").as_bytes());
    }
    format!("cinestream-label-{}", &hex::encode(h.finalize())[..32])
}

/// Labels the planned frames and commits them (see the module docs).
pub async fn run(cfg: &LabelConfig, progress: Arc<dyn Progress>) -> Result<LabelReport, InferError> {
    cfg.validate()?;
    let started = Instant::now();
    let data = store::open_existing(&cfg.data, &cfg.store)?;
    delta::check_writable(&data, &tables::LABEL).await?;
    let (loaded, contract, model_sha) = load(cfg).await?;
    let which = cfg.which();
    // A selection is read at the table versions it recorded; otherwise the latest.
    let as_of = match &which {
        Which::Selection(name) => crate::query::selection::load(&data, name).await?.0.as_of(),
        _ => AsOf::Latest,
    };
    let open = |as_of: AsOf| {
        let (data, opts) = (&data, SessionOptions { as_of, store: cfg.store.clone(), ..Default::default() });
        async move { Session::open(Some(data), &opts).await }
    };
    let latest = open(AsOf::Latest).await?;
    let session = if as_of == AsOf::Latest { None } else { Some(open(as_of).await?) };
    let session = session.as_ref().unwrap_or(&latest);
    let planned = frames::plan(session, &latest, &data, &which, &cfg.labeller, cfg.overwrite, cfg.share.as_ref()).await?;
    let mut report = LabelReport {
        labeller: cfg.labeller.clone(),
        model_sha256: model_sha.clone(),
        studies_already_labelled: planned.already.iter().cloned().collect(),
        studies_other_workers: planned.other_workers,
        share: cfg.share.map(|s| s.to_string()),
        ..Default::default()
    };
    if planned.frames.is_empty() {
        if !planned.already.is_empty() || planned.other_workers > 0 {
            tracing::info!(studies = planned.already.len(), other_workers = planned.other_workers, labeller = %cfg.labeller, "every planned study is already labelled or another worker's: nothing to do");
            return Ok(report);
        }
        let what = match &which {
            Which::All => format!("the tables under {data} hold no frames (ingest first)"),
            Which::Selection(n) => format!("selection `{n}` lists none"),
            Which::Where(w) => {
                format!("no frame matches `{w}` (try it: cinestream sql --data {data} \"SELECT count(*) FROM frames WHERE {w}\")")
            }
        };
        return Err(InferError::NoFrames(what));
    }
    progress.start(planned.total() as u64, "frames");
    let parts = Parts::new(planned.frames.len());
    tracing::info!(studies = planned.frames.len(), frames = planned.total(), skipped = planned.already.len(), "planned");

    let app_id = app_id(&cfg.labeller, &model_sha, &planned, cfg.overwrite);
    let done = committed_tables(&data, &tables::LABEL, &app_id).await?;
    let run_id = crate::ids::run_id();
    let mut shards = ShardSet::new(&data, &run_id, &cfg.shards, &tables::LABEL, &done);
    let mut qc_rows: Vec<(String, QcResult)> = Vec::new();
    let busy = if done.len() == tables::LABEL.len() {
        tracing::warn!(app_id = %app_id, "an earlier attempt of this job committed its tables: publishing it");
        Duration::ZERO
    } else {
        // Whole-study windows of studies labelled in part (the other rules need no extra pass).
        let histograms = if contract.intensity.over() == crate::model::prep::Over::Study {
            frames::study_histograms(session, &planned.partial, contract.intensity.nonzero()).await?
        } else {
            Default::default()
        };
        let (tx_frames, rx_frames) = mpsc::channel(cfg.studies_in_flight);
        let (tx_jobs, rx_jobs) = mpsc::channel(2);
        let (tx_out, rx_out) = mpsc::channel(2);
        let (tx_done, mut rx_done) = mpsc::channel(cfg.studies_in_flight);
        let batch = cfg.batch;
        let c1 = contract.clone();
        let prep = std::thread::spawn(move || stages::preprocess(&c1, batch, rx_frames, tx_jobs));
        let (c2, device) = (contract.clone(), cfg.device);
        let infer = std::thread::spawn(move || run_engine(loaded, device, &c2, rx_jobs, tx_out));
        let c3 = contract.clone();
        let post = std::thread::spawn(move || stages::postprocess(&c3, rx_out, tx_done));
        let reader = frames::stream(session, &planned, histograms, tx_frames);
        let classes = contract.labelled_classes();
        let writer = async {
            while let Some(l) = rx_done.recv().await {
                let l = l?;
                let line = write_study(&mut shards, &l, &cfg.labeller, &classes, &cfg.qc).await?;
                progress.advance(line.frames as u64, &parts.done("studies"));
                report.frames_labelled += line.frames;
                qc_rows.push((line.study_id.clone(), line.qc.clone()));
                report.studies.push(line);
            }
            Ok::<_, InferError>(())
        };
        let (read, written) = tokio::join!(reader, writer);
        let joined = |thread: &'static str, e: Box<dyn std::any::Any + Send>| InferError::Panicked {
            thread,
            message: e.downcast_ref::<String>().cloned().or(e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default(),
        };
        prep.join().map_err(|e| joined("pre-processing", e))?;
        let busy = infer.join().map_err(|e| joined("inference", e))?;
        post.join().map_err(|e| joined("post-processing", e))?;
        written?;
        read?;
        busy?
    };
    if done.len() < tables::LABEL.len() && report.studies.len() != planned.frames.len() {
        return Err(InferError::Lost { came: report.studies.len(), planned: planned.frames.len() });
    }
    if !qc_rows.is_empty() {
        shards.write(&tables::LABEL_QC, qc_batch(&qc_rows, &cfg.labeller, &model_sha, &run_id)).await?;
    }
    let written = shards.finish().await?;
    progress.committing();
    let mut changes: BTreeMap<&'static str, TableChange> = BTreeMap::new();
    if cfg.overwrite {
        let labeller: BTreeSet<String> = [cfg.labeller.clone()].into();
        for spec in tables::LABEL.into_iter().filter(|t| !done.contains(t.name)) {
            if let Some(t) = delta::open(&data, spec.name, &AsOf::Latest).await? {
                let change = rewrite::without_rows(&data, spec, &t, "labeller", &labeller, &format!("{run_id}-rw"), &cfg.shards).await?;
                if spec.name == tables::LABELS.name {
                    report.rows_replaced = change.rows_removed;
                }
                changes.insert(spec.name, change);
            }
        }
    }
    for (table, files) in written {
        changes.entry(table).or_default().adds.extend(files);
    }
    for s in &report.studies {
        if s.qc.passed {
            report.qc_passed += 1;
        }
        for f in &s.qc.failures {
            *report.qc_failures.entry(f.to_string()).or_default() += 1;
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.images_per_second = report.frames_labelled as f64 / report.seconds.max(1e-9);
    report.model_busy = busy.as_secs_f64() / report.seconds.max(1e-9);
    report.app_id = app_id.clone();
    for t in &done {
        report.commits.insert(t.to_string(), "already committed by an earlier attempt".into());
    }
    let run = RunInfo::new(app_id, "label", run_id, &report, cfg);
    for (table, result) in commit_run(&data, &run, &tables::LABEL, changes).await? {
        report.commits.insert(table.to_string(), result.describe());
    }
    Ok(report)
}

/// Writes one labelled study's `labels` rows and returns its QC.
async fn write_study(
    shards: &mut ShardSet,
    l: &stages::Labelled,
    labeller: &str,
    classes: &[u8],
    qc_cfg: &QcConfig,
) -> Result<StudyLine, InferError> {
    let m = &l.meta;
    let rows: Vec<LabelRow> = m
        .frames
        .iter()
        .zip(&l.masks)
        .map(|(f, mask)| LabelRow {
            study_id: &m.study_id,
            split: m.split.as_deref(),
            slice_index: f.slice,
            frame_index: f.frame,
            labeller,
            grid: f.grid,
            source_key: &f.source_key,
            fill: f.fill.as_deref(),
            mask,
        })
        .collect();
    shards.write(&tables::LABELS, labels_batch(&rows)).await?;
    let g = m.frames[0].grid;
    let grid = qc::StudyGrid {
        h: g.height as usize,
        w: g.width as usize,
        ml_per_pixel: g.pixel_spacing_row_mm * g.pixel_spacing_col_mm * g.slice_spacing_mm / 1000.0,
        whole_cycle: !m.partial,
    };
    let frames: Vec<qc::FrameMask> =
        m.frames.iter().zip(&l.masks).map(|(f, mask)| qc::FrameMask { slice: f.slice as usize, frame: f.frame as usize, mask }).collect();
    Ok(StudyLine { study_id: m.study_id.clone(), frames: m.frames.len(), qc: qc::check(&frames, &grid, classes, qc_cfg) })
}

/// Rows of `label_qc`.
fn qc_batch(rows: &[(String, QcResult)], labeller: &str, model_sha: &str, run_id: &str) -> RecordBatch {
    let n = rows.len();
    let q = |f: &dyn Fn(&QcResult) -> Option<f64>| Arc::new(Float64Array::from_iter(rows.iter().map(|(_, r)| f(r)))) as ArrayRef;
    let i = |f: &dyn Fn(&QcResult) -> Option<i32>| Arc::new(Int32Array::from_iter(rows.iter().map(|(_, r)| f(r)))) as ArrayRef;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))),
        Arc::new(StringArray::from(vec![labeller; n])),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|(_, r)| Some(r.passed)))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|(_, r)| r.failures.join(",")))),
        i(&|r| r.ed_frame.map(|v| v as i32)),
        i(&|r| r.es_frame.map(|v| v as i32)),
        q(&|r| Some(r.edv_ml)),
        q(&|r| Some(r.esv_ml)),
        q(&|r| r.ef_pct),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, r)| r.min_class_pixels))),
        i(&|r| Some(r.slices as i32)),
        i(&|r| Some(r.slices_lv_my_ed as i32)),
        i(&|r| Some(r.slices_lv_my_es as i32)),
        q(&|r| r.lv_enclosed),
        Arc::new(StringArray::from(vec![model_sha; n])),
        Arc::new(StringArray::from(vec![run_id; n])),
    ];
    RecordBatch::try_new(tables::LABEL_QC.schema(), cols).expect("columns match the label_qc schema")
}
