//! Training sink: a U-Net learns from named selections, stage by stage, with the authors' recipe
//! (docs/science.md §5): one-cycle AdamW per stage, frozen encoder with trainable BatchNorm, then
//! unfrozen; CE, focal or generalized-Dice loss; s1/s2 augmentation; pad-resize to the training
//! size.
//!
//! A run writes under its output prefix (default `<data>/models/<name>/`):
//! - `checkpoints/`: model and optimizer state every `checkpoint_every` batches and at each
//!   epoch's end, committed by `latest.json` (written last). `--resume` continues from it
//!   mid-epoch with the same data order and ends with the weights an uninterrupted run has.
//! - `model/model.bin` + `model/model.json`: the final weights, the resolved configuration, and
//!   the lineage (selections with their checksums, queries, parameters and table versions).
//! - `training_log.parquet` (schema `schemas/training_log.json`) and `learning_curve.png`:
//!   per validation point ([`validate`]: every epoch, or an images-seen schedule), loss and
//!   validation Dice LV/MY against images seen (the paper's Fig. 6).

mod cache_dir;
pub mod checkpoint;
pub mod data;
pub mod freeze;
mod key_order;
pub mod log;
pub mod optim;
pub mod plot;
pub mod schedule;
pub mod validate;

use std::collections::BTreeMap;

use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::Device;
use crate::model::augment::Preset;
use crate::model::card::{Lineage, SelectionLineage};
use crate::model::losses::{self, LossKind};
use crate::model::scaling::Intensity;
use crate::model::weights::{self, WeightsError};
use crate::model::{ModelConfig, SegModel};
use crate::progress::Progress;
use crate::query::selection::{QuerySource, SelectionError, SelectionRecord};
use crate::query::{QueryError, Session, SessionOptions, selection};
use crate::store::{self, StoreLocation, StoreOptions};
use checkpoint::{Checkpoint, Progress as RunState};
use data::{CacheConfig, FeedOptions, Prepared};
use log::EpochRow;
use optim::AdamW;
use schedule::OneCycle;
use validate::{Point, capped, due, validate_point};

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Read(#[from] crate::query::read::ReadError),
    #[error("training cache `{dir}`: {source}")]
    Cache { dir: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("{what} `{url}`: {}", crate::store::explain(source))]
    Store { what: &'static str, url: String, source: object_store::Error },
    #[error("{what} `{url}`: {source}")]
    Corrupt { what: &'static str, url: String, source: serde_json::Error },
    #[error("{what}: {source}")]
    Record { what: &'static str, source: burn::record::RecorderError },
    #[error("the data feeder failed: {0}")]
    Feed(#[from] data::FeedError),
    #[error(transparent)]
    Storage(#[from] store::StoreError),
    #[error(transparent)]
    Card(#[from] crate::model::card::CardError),
    #[error("cannot train on {device:?}: this build runs on {}", Device::available())]
    NoDevice { device: Device },
}

/// A selection to train or validate on: its name, and optionally the saved query (and
/// parameters) that makes it when it does not exist yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionSpec {
    pub name: String,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// One `fit_one_cycle` of the recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub epochs: usize,
    pub lr_max: f64,
    /// Encoder frozen (its BatchNorm layers still train).
    #[serde(default)]
    pub frozen: bool,
}

/// Where the first weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Init {
    /// Random (R).
    Random,
    /// torchvision ImageNet weights for the encoder (TL): a .safetensors or .pth state dict.
    Imagenet(String),
    /// A model of ours (TL²): `<output>/model` of an earlier run, or its model.bin.
    Checkpoint(String),
}

/// `[train]` of a pipeline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub name: String,
    pub train: SelectionSpec,
    pub valid: SelectionSpec,
    /// Whose masks to learn when a selection has no `labeller` column.
    #[serde(default)]
    pub labeller: Option<String>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_size")]
    pub image_size: usize,
    #[serde(default = "default_loss")]
    pub loss: LossKind,
    #[serde(default = "default_augment")]
    pub augment: Preset,
    /// How images are scaled to 0…1: by their study's 99.95th percentile (`"study"`, default)
    /// or by their own (`"image"`).
    #[serde(default)]
    pub intensity: Intensity,
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    #[serde(default = "default_init")]
    pub init: Init,
    pub stages: Vec<Stage>,
    /// The full pool a subset was drawn from: each stage then runs round(epochs · N / n) epochs
    /// (n training images of the pool's N), as the paper's transfer study did.
    #[serde(default)]
    pub scale_epochs_to: Option<SelectionSpec>,
    /// Validate whenever this many more training images have been seen (0: at the end of every
    /// epoch); always after the first epoch and at the end. The transfer study validates every
    /// N_full/4 images, as its smallest subsets run hundreds of epochs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub validate_every_images: u64,
    /// Stop once this many training images have been seen (0: run every epoch): a quick look at
    /// a long run. The one-cycle schedules keep their full length, so the run stops mid-cycle.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_images: u64,
    /// Checkpoint every this many batches (0: only at the end of each epoch).
    #[serde(default = "default_checkpoint")]
    pub checkpoint_every: usize,
    /// Output prefix (default `<data>/models/<name>`).
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub cache: CacheConfig,
    /// Batches prepared ahead of the model.
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// Blocks (64 samples each) whose samples are shuffled together.
    #[serde(default = "default_window")]
    pub shuffle_window: usize,
}

fn default_seed() -> u64 {
    1
}
fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn default_batch() -> usize {
    32
}
fn default_size() -> usize {
    256
}
fn default_loss() -> LossKind {
    LossKind::CrossEntropy
}
fn default_augment() -> Preset {
    Preset::S1
}
fn default_wd() -> f64 {
    1e-2
}
fn default_init() -> Init {
    Init::Random
}
fn default_checkpoint() -> usize {
    200
}
fn default_prefetch() -> usize {
    4
}
fn default_window() -> usize {
    8
}

impl TrainConfig {
    /// Checks the values (no I/O).
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.stages.is_empty() {
            return bad("train.stages is empty: add [[train.stages]] with epochs and lr_max".into());
        }
        if let Some(s) = self.stages.iter().find(|s| s.epochs == 0 || !(s.lr_max > 0.0 && s.lr_max < 1.0)) {
            return bad(format!("train.stages: {s:?} needs epochs ≥ 1 and 0 < lr_max < 1"));
        }
        if self.batch_size == 0 || self.image_size < 32 || !self.image_size.is_multiple_of(32) {
            return bad(format!(
                "train.batch_size ({}) must be ≥ 1 and train.image_size ({}) a multiple of 32",
                self.batch_size, self.image_size
            ));
        }
        if self.train.name == self.valid.name {
            return bad("train.train and train.valid name the same selection: validate on held-out data".into());
        }
        Ok(())
    }
}

/// What a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub output: String,
    pub epochs: usize,
    pub steps: usize,
    pub images_seen: u64,
    pub dice_lv: f64,
    pub dice_my: f64,
    pub valid_loss: f64,
    pub seconds: f64,
    pub resumed_from_step: Option<usize>,
    /// Every validation point (also in `training_log.parquet`).
    #[serde(skip)]
    pub log: Vec<EpochRow>,
}

/// Everything a run needs, resolved (selections prepared, stores open).
pub struct Plan {
    pub train: TrainConfig,
    pub model: ModelConfig,
    pub data: StoreLocation,
    pub output: StoreLocation,
    pub train_set: Prepared,
    pub valid_set: Prepared,
    pub lineage: Lineage,
    /// Storage settings for everything the run reads and writes (`[store]`).
    pub store: StoreOptions,
}

/// Resolves a run: opens the stores, makes missing selections, prepares the cached sets.
pub async fn plan(mut train: TrainConfig, model: ModelConfig, data_url: &str, opts: &StoreOptions) -> Result<Plan, TrainError> {
    train.validate()?;
    model.validate().map_err(TrainError::Config)?;
    let data = store::open_existing(data_url, opts)?;
    let output = match &train.output {
        Some(o) if o.contains("://") || o.starts_with('/') || o.starts_with('.') => store::open(o, opts)?,
        Some(o) => data.sub(o),
        None => data.sub(&format!("models/{}", train.name)),
    };
    let mut records: Vec<(String, SelectionRecord)> = Vec::new();
    let mut sets = Vec::new();
    for spec in [&train.train, &train.valid] {
        ensure_selection(&data, spec, opts).await?;
        // The tables as the selection saw them, whatever was committed since.
        let (record, _) = selection::load(&data, &spec.name).await?;
        let session =
            Session::open(Some(&data), &SessionOptions { as_of: record.as_of(), store: opts.clone(), ..Default::default() }).await?;
        let (set, record) = data::prepare(&session, &data, &spec.name, train.labeller.as_deref(), train.intensity, &train.cache).await?;
        records.push((spec.name.clone(), record));
        sets.push(set);
    }
    let valid_set = sets.pop().expect("two sets");
    let train_set = sets.pop().expect("two sets");
    if train_set.samples < train.batch_size {
        return Err(TrainError::Config(format!(
            "selection `{}` has {} images, fewer than batch_size {}",
            train.train.name, train_set.samples, train.batch_size
        )));
    }
    if let Some(spec) = train.scale_epochs_to.clone() {
        ensure_selection(&data, &spec, opts).await?;
        let (pool, _) = selection::load(&data, &spec.name).await?;
        let factor = pool.rows as f64 / train_set.samples as f64;
        for s in &mut train.stages {
            s.epochs = ((s.epochs as f64) * factor).round().max(1.0) as usize;
        }
        tracing::info!(pool = pool.rows, subset = train_set.samples, epochs = ?train.stages.iter().map(|s| s.epochs).collect::<Vec<_>>(), "epochs scaled to the pool");
    }
    let lineage = Lineage {
        data: data.url().to_string(),
        selections: records
            .into_iter()
            .zip(["train", "valid"])
            .map(|((name, r), role)| SelectionLineage {
                role: role.into(),
                name,
                sha256: r.file.sha256,
                rows: r.rows,
                studies: r.studies,
                query: r.query,
                params: r.params,
                tables: r.tables,
            })
            .collect(),
        labeller: train.labeller.clone(),
    };
    Ok(Plan { train, model, data, output, train_set, valid_set, lineage, store: opts.clone() })
}

/// Makes the selection from its query when it does not exist yet; an existing one must come
/// from the same query and parameters.
async fn ensure_selection(data: &StoreLocation, spec: &SelectionSpec, opts: &StoreOptions) -> Result<(), TrainError> {
    match selection::load(data, &spec.name).await {
        Ok((record, _)) => {
            if let Some(q) = &spec.query
                && (record.query != *q || spec.params.iter().any(|(k, v)| record.params.get(k) != Some(v)))
            {
                return Err(TrainError::Config(format!(
                    "selection `{}` exists but was made by `{}` with other parameters than train.{{train,valid}} asks ({q} {:?}); rename one",
                    spec.name, record.query, spec.params
                )));
            }
            Ok(())
        }
        Err(SelectionError::Read { source: object_store::Error::NotFound { .. }, .. }) if spec.query.is_some() => {
            let q = spec.query.as_deref().expect("checked");
            let params = spec.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let session = Session::open(Some(data), &SessionOptions { params, store: opts.clone(), ..Default::default() }).await?;
            let source = QuerySource { label: q.to_string(), sql: format!("SELECT * FROM {q}") };
            let r = selection::create(&session, data, &spec.name, &source, false).await?;
            tracing::info!(selection = %spec.name, rows = r.rows, studies = r.studies, "selection made for training");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn tensors<B: burn::tensor::backend::Backend>(b: &data::Batch, device: &B::Device) -> (Tensor<B, 4>, Tensor<B, 3, Int>) {
    let x = Tensor::from_data(TensorData::new(b.images.clone(), [b.n, 1, b.size, b.size]), device);
    let y = Tensor::from_data(TensorData::new(b.masks.clone(), [b.n, b.size, b.size]), device);
    (x, y)
}

/// Runs `plan` on `device` with Burn's backend for it: flex on the CPU, CUDA on an NVIDIA GPU
/// (builds with `--features cuda`).
pub fn run_on(
    plan: &Plan,
    device: Device,
    resume: bool,
    handle: &tokio::runtime::Handle,
    progress: &dyn Progress,
) -> Result<TrainReport, TrainError> {
    use burn::backend::Autodiff;
    match device {
        Device::Cpu => run::<Autodiff<burn::backend::Flex>>(plan, Default::default(), resume, handle, progress),
        #[cfg(feature = "cuda")]
        Device::Cuda => run::<Autodiff<burn::backend::Cuda<f32>>>(plan, Default::default(), resume, handle, progress),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err(TrainError::NoDevice { device }),
    }
}

/// Runs (or resumes) the training of a plan. Call from a blocking thread: storage calls go
/// through `handle`.
pub fn run<B: AutodiffBackend>(
    plan: &Plan,
    device: B::Device,
    resume: bool,
    handle: &tokio::runtime::Handle,
    progress: &dyn Progress,
) -> Result<TrainReport, TrainError> {
    let t0 = std::time::Instant::now();
    let cfg = &plan.train;
    let ckpt = Checkpoint::new(&plan.output, cfg, &plan.model);
    B::seed(&device, cfg.seed);
    let mut model: SegModel<B> = plan.model.init(&device);
    let adamw = AdamW::fastai(cfg.weight_decay);
    let beta1 = adamw.beta1.clone();
    let mut optim = adamw.clone().init::<B, SegModel<B>>();
    let existing = handle.block_on(ckpt.latest())?;
    let mut state = match (existing, resume) {
        (Some(saved), true) => {
            let (m, o, s) = handle.block_on(ckpt.load::<B>(model, optim, &saved, &device))?;
            model = m;
            optim = o;
            tracing::info!(step = s.global_step, stage = s.stage, epoch = s.epoch, batch = s.batch, "resuming");
            s
        }
        (Some(saved), false) => {
            return Err(TrainError::Config(format!(
                "{} already has a run (checkpoint at step {}): pass --resume to continue it, or choose another train.name / output",
                plan.output, saved.global_step
            )));
        }
        (None, _) => {
            model = initial_weights(model, &plan.model, &cfg.init, &plan.store, &device, handle)?;
            RunState::default()
        }
    };
    let resumed_from = (state.global_step > 0).then_some(state.global_step);
    let steps = plan.train_set.samples / cfg.batch_size;
    let mut epochs_before: usize = cfg.stages.iter().take(state.stage).map(|s| s.epochs).sum();
    for (si, stage) in cfg.stages.iter().enumerate().skip(state.stage) {
        progress.start((stage.epochs * steps) as u64, &format!("stage {si}"));
        let starting = state.epoch == 0 && state.batch == 0;
        let frozen_before = si > 0 && cfg.stages[si - 1].frozen;
        if starting && si > 0 && stage.frozen != frozen_before {
            // fastai re-creates the optimizer when the encoder is frozen or unfrozen.
            optim = adamw.clone().init::<B, SegModel<B>>();
        }
        model = freeze::set_frozen(model, stage.frozen);
        let sched = OneCycle::new(stage.lr_max, stage.epochs * steps);
        for epoch in state.epoch..stage.epochs {
            let global_epoch = (epochs_before + epoch) as u64;
            let order = data::epoch_order(&plan.train_set.blocks, cfg.seed, global_epoch, cfg.shuffle_window);
            let opts = FeedOptions {
                batch_size: cfg.batch_size,
                image_size: cfg.image_size,
                preset: cfg.augment,
                seed: cfg.seed,
                epoch: global_epoch,
                start_batch: state.batch,
                drop_last: true,
                prefetch: cfg.prefetch,
                max_class: 2,
            };
            let last_epoch = si + 1 == cfg.stages.len() && epoch + 1 == stage.epochs;
            let point = Point { stage: si, epoch, global_epoch, lr_max: stage.lr_max, frozen: stage.frozen };
            for batch in data::feed(&plan.train_set, order, opts) {
                let b = batch.map_err(TrainError::Feed)?;
                let (lr, mom) = sched.at(epoch * steps + state.batch);
                beta1.set(mom);
                let (x, y) = tensors::<B>(&b, &device);
                let loss = losses::loss(cfg.loss, model.forward(x), y);
                let value: f64 = loss.clone().into_scalar().elem::<f64>();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
                state.batch += 1;
                state.global_step += 1;
                state.images_seen += b.n as u64;
                state.loss_sum += value;
                state.loss_count += 1;
                progress.advance(1, &format!("loss {value:.4}"));
                if capped(cfg, &state) {
                    break;
                }
                if state.batch < steps && due(cfg, &state) {
                    validate_point(&model, plan, &point, &mut state, t0, &device, progress)?;
                    handle.block_on(ckpt.save(&model, &optim, &state))?;
                } else if cfg.checkpoint_every > 0 && state.global_step % cfg.checkpoint_every == 0 && state.batch < steps {
                    handle.block_on(ckpt.save(&model, &optim, &state))?;
                }
            }
            let stop = capped(cfg, &state);
            if cfg.validate_every_images == 0 || global_epoch == 0 || last_epoch || stop || due(cfg, &state) {
                validate_point(&model, plan, &point, &mut state, t0, &device, progress)?;
            }
            state.epoch = epoch + 1;
            state.batch = 0;
            if stop {
                state.stage = cfg.stages.len();
                tracing::info!(images = state.images_seen, max_images = cfg.max_images, "stopped at train.max_images");
                break;
            }
            handle.block_on(ckpt.save(&model, &optim, &state))?;
        }
        if state.stage == cfg.stages.len() {
            break;
        }
        epochs_before += stage.epochs;
        state.stage = si + 1;
        state.epoch = 0;
    }
    let last = state.log.last().cloned().ok_or_else(|| TrainError::Config("no epoch ran".into()))?;
    let seconds = state.seconds + t0.elapsed().as_secs_f64();
    let report = TrainReport {
        output: plan.output.url().to_string(),
        epochs: state.log.len(),
        steps: state.global_step,
        images_seen: state.images_seen,
        dice_lv: last.dice_lv,
        dice_my: last.dice_my,
        valid_loss: last.valid_loss,
        seconds,
        resumed_from_step: resumed_from,
        log: state.log.clone(),
    };
    handle.block_on(ckpt.finish(&model, &state, &plan.lineage, &report))?;
    Ok(report)
}

fn initial_weights<B: AutodiffBackend>(
    mut model: SegModel<B>,
    cfg: &ModelConfig,
    init: &Init,
    opts: &StoreOptions,
    device: &B::Device,
    handle: &tokio::runtime::Handle,
) -> Result<SegModel<B>, TrainError> {
    match init {
        Init::Random => Ok(model),
        Init::Imagenet(url) => {
            let n = handle.block_on(weights::load_imagenet(&mut model, cfg, url, opts))?;
            tracing::info!(tensors = n, weights = %url, "ImageNet weights loaded into the encoder");
            Ok(model)
        }
        Init::Checkpoint(url) => {
            let (m, card) = handle.block_on(checkpoint::load_model::<B>(url, opts, device))?;
            if card.architecture != *cfg {
                return Err(TrainError::Config(format!(
                    "init.checkpoint `{url}` is a {:?} (width {}, blocks {:?}, {} classes) but [model] asks for {:?} (width {}, blocks {:?}, {} classes): make [model] match the model's card (model.json)",
                    card.architecture.encoder,
                    card.architecture.width,
                    card.architecture.blocks,
                    card.architecture.classes,
                    cfg.encoder,
                    cfg.width,
                    cfg.blocks,
                    cfg.classes
                )));
            }
            drop(model);
            tracing::info!(model = %url, "initialised from a model of ours");
            Ok(m)
        }
    }
}
