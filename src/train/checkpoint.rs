//! Checkpoints and the final model, in the object store.
//!
//! `checkpoints/step-NNNNNNNN/{model,optim}.bin` hold the weights and the optimizer state
//! (Burn records, full precision); `checkpoints/latest.json` — written last, so it is the
//! commit — names them and carries the run's progress (stage, epoch, batch, images seen, the
//! log so far) and a hash of the configuration. Resuming with another configuration is refused.
//! Only the two newest checkpoints are kept.

use burn::module::Module;
use burn::optim::Optimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::log::{self, EpochRow};
use super::optim::AdamW;
use super::{TrainConfig, TrainError, TrainReport, plot};
use crate::model::card::{self, CARD_FILE, CARD_FORMAT, InputRule, Lineage, ModelCard, WeightsFile};
use crate::model::{ModelConfig, SegModel};
use crate::store::{StoreLocation, StoreOptions};

/// The optimizer of a run.
pub type Optim<B> = OptimizerAdaptor<AdamW, SegModel<B>, B>;

/// Where a run is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub stage: usize,
    pub epoch: usize,
    /// Next batch of the epoch.
    pub batch: usize,
    pub global_step: usize,
    pub images_seen: u64,
    /// Training loss summed since the last validation point, and its batches.
    pub loss_sum: f64,
    pub loss_count: usize,
    /// Images seen at the last validation point.
    #[serde(default)]
    pub validated_at: u64,
    /// Wall time spent before this process (resumed runs).
    pub seconds: f64,
    pub log: Vec<EpochRow>,
}

/// `latest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub global_step: usize,
    pub dir: String,
    pub config_sha256: String,
    pub progress: Progress,
}

/// A run's checkpoint folder and final outputs.
pub struct Checkpoint {
    root: StoreLocation,
    config_sha256: String,
    train: TrainConfig,
    model: ModelConfig,
}

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    card::recorder()
}

impl Checkpoint {
    pub fn new(output: &StoreLocation, train: &TrainConfig, model: &ModelConfig) -> Self {
        // What decides the weights; not where the cache lives or how often we checkpoint.
        let mut t = train.clone();
        t.cache = Default::default();
        t.prefetch = 0;
        t.checkpoint_every = 0;
        let decisive = serde_json::json!({ "train": t, "model": model });
        let config_sha256 = hex::encode(Sha256::digest(serde_json::to_vec(&decisive).expect("serialises")));
        Checkpoint { root: output.clone(), config_sha256, train: train.clone(), model: model.clone() }
    }

    fn err(&self, what: &'static str, path: &object_store::path::Path, source: object_store::Error) -> TrainError {
        TrainError::Store { what, url: self.root.object_url(path), source }
    }

    async fn put(&self, rel: &str, what: &'static str, bytes: Vec<u8>) -> Result<(), TrainError> {
        let path = self.root.child(rel);
        self.root.store.put(&path, PutPayload::from(Bytes::from(bytes))).await.map_err(|e| self.err(what, &path, e))?;
        Ok(())
    }

    async fn get(&self, rel: &str, what: &'static str) -> Result<Bytes, TrainError> {
        let path = self.root.child(rel);
        let got = self.root.store.get(&path).await.map_err(|e| self.err(what, &path, e))?;
        got.bytes().await.map_err(|e| self.err(what, &path, e))
    }

    /// The committed checkpoint, if any.
    pub async fn latest(&self) -> Result<Option<Saved>, TrainError> {
        let path = self.root.child("checkpoints/latest.json");
        match self.root.store.get(&path).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| self.err("reading checkpoint", &path, e))?;
                let saved: Saved = serde_json::from_slice(&bytes).map_err(|source| TrainError::Corrupt {
                    what: "reading checkpoint",
                    url: self.root.object_url(&path),
                    source,
                })?;
                Ok(Some(saved))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("reading checkpoint", &path, e)),
        }
    }

    /// Writes a checkpoint and commits it.
    pub async fn save<B: AutodiffBackend>(&self, model: &SegModel<B>, optim: &Optim<B>, progress: &Progress) -> Result<(), TrainError> {
        let dir = format!("checkpoints/step-{:08}", progress.global_step);
        let rec = recorder();
        let model_bytes = Recorder::<B>::record(&rec, model.clone().into_record(), ())
            .map_err(|source| TrainError::Record { what: "encoding the model", source })?;
        let optim_bytes = Recorder::<B>::record(&rec, optim.to_record(), ())
            .map_err(|source| TrainError::Record { what: "encoding the optimizer", source })?;
        self.put(&format!("{dir}/model.bin"), "writing checkpoint", model_bytes).await?;
        self.put(&format!("{dir}/optim.bin"), "writing checkpoint", optim_bytes).await?;
        let previous = self.latest().await?;
        let saved = Saved {
            global_step: progress.global_step,
            dir: dir.clone(),
            config_sha256: self.config_sha256.clone(),
            progress: progress.clone(),
        };
        self.put("checkpoints/latest.json", "committing checkpoint", serde_json::to_vec_pretty(&saved).expect("serialises")).await?;
        tracing::debug!(step = progress.global_step, "checkpoint committed");
        // Keep this checkpoint and the one before; drop older ones.
        if let Some(prev) = previous {
            self.prune(&[dir.as_str(), prev.dir.as_str()]).await;
        }
        Ok(())
    }

    async fn prune(&self, keep: &[&str]) {
        use futures::TryStreamExt;
        let prefix = self.root.child("checkpoints");
        let Ok(listed) = self.root.store.list(Some(&prefix)).try_collect::<Vec<_>>().await else { return };
        for meta in listed {
            let rel = self.root.relative(&meta.location).to_string();
            let in_step_dir = rel.starts_with("checkpoints/step-");
            if in_step_dir && !keep.iter().any(|k| rel.starts_with(&format!("{k}/"))) {
                let _ = self.root.store.delete(&meta.location).await;
            }
        }
    }

    /// Loads a checkpoint into a fresh model and optimizer.
    pub async fn load<B: AutodiffBackend>(
        &self,
        model: SegModel<B>,
        optim: Optim<B>,
        saved: &Saved,
        device: &B::Device,
    ) -> Result<(SegModel<B>, Optim<B>, Progress), TrainError> {
        if saved.config_sha256 != self.config_sha256 {
            return Err(TrainError::Config(format!(
                "the checkpoint in {} was made with another configuration: resume with the same pipeline file, or start a new run (another train.name)",
                self.root
            )));
        }
        let rec = recorder();
        let m = self.get(&format!("{}/model.bin", saved.dir), "reading checkpoint").await?;
        let o = self.get(&format!("{}/optim.bin", saved.dir), "reading checkpoint").await?;
        let model_record = Recorder::<B>::load(&rec, m.to_vec(), device)
            .map_err(|source| TrainError::Record { what: "decoding the checkpoint's model", source })?;
        let optim_record = Recorder::<B>::load(&rec, o.to_vec(), device)
            .map_err(|source| TrainError::Record { what: "decoding the checkpoint's optimizer", source })?;
        Ok((model.load_record(model_record), optim.load_record(optim_record), saved.progress.clone()))
    }

    /// Writes the final model and its card, the training log and the curve.
    pub async fn finish<B: Backend>(
        &self,
        model: &SegModel<B>,
        progress: &Progress,
        lineage: &Lineage,
        report: &TrainReport,
    ) -> Result<(), TrainError> {
        let bytes = Recorder::<B>::record(&recorder(), model.clone().into_record(), ())
            .map_err(|source| TrainError::Record { what: "encoding the model", source })?;
        let weights_sha256 = hex::encode(Sha256::digest(&bytes));
        self.put(&format!("model/{}", card::WEIGHTS_FILE), "writing the model", bytes).await?;
        let card = ModelCard {
            format: CARD_FORMAT.into(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            cinestream_version: env!("CARGO_PKG_VERSION").into(),
            weights: WeightsFile { path: card::WEIGHTS_FILE.into(), sha256: weights_sha256, record: card::WEIGHTS_RECORD.into() },
            architecture: self.model.clone(),
            // Training maps every class above the last channel to background.
            classes: (0..self.model.classes as u8).collect(),
            input: InputRule { intensity: self.train.intensity, size: self.train.image_size },
            lineage: lineage.clone(),
            training: serde_json::to_value(&self.train).expect("serialises"),
            report: serde_json::to_value(report).expect("serialises"),
        };
        self.put(&format!("model/{CARD_FILE}"), "writing the model", card.to_json()).await?;
        self.put("training_log.parquet", "writing the training log", log::parquet(&progress.log)).await?;
        self.put("learning_curve.png", "writing the learning curve", plot::learning_curve(&progress.log)).await?;
        Ok(())
    }
}

/// A model of ours, read and built (see [`card::load`]).
pub async fn load_model<B: Backend>(url: &str, opts: &StoreOptions, device: &B::Device) -> Result<(SegModel<B>, ModelCard), TrainError> {
    let (card, weights) = card::read(url, opts).await?;
    Ok((card::build::<B>(&card, &weights, device)?, card))
}
