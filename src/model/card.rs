//! A model as an artifact with a contract: `model/model.json` beside `model/model.bin`.
//!
//! The card says everything needed to use the weights without the pipeline file that trained
//! them: the architecture (to build the network the weights fit), what each output channel
//! means in our classes, how an input image is brought to the network (intensity rule, size),
//! and the data it was trained on (lineage: selections and the table versions they read).

use std::collections::BTreeMap;

use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::scaling::Intensity;
use super::{ModelConfig, SegModel};
use crate::query::TableVersion;
use crate::store::{self, StoreOptions};

/// `format` of the cards this version writes.
pub const CARD_FORMAT: &str = "cinestream-model-v2";

/// The name of a model's card in its folder.
pub const CARD_FILE: &str = "model.json";

/// The weights file in a model folder, and how it is encoded.
pub const WEIGHTS_FILE: &str = "model.bin";
pub const WEIGHTS_RECORD: &str = "burn BinBytesRecorder, full precision";

/// The recorder of our weights files and checkpoints.
pub fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::default()
}

/// Errors reading a model card.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("reading model `{url}`: {source}")]
    Read { url: String, source: Box<store::ReadError> },
    #[error("model weights `{url}`: SHA-256 {found} differs from the card's {expected}: the weights were changed or only partly copied")]
    Checksum { url: String, found: String, expected: String },
    #[error("model weights `{url}`: {source} (the weights do not fit the card's architecture)")]
    Weights { url: String, source: burn::record::RecorderError },
    #[error(
        "model card `{url}` is not a cinestream model card ({source}); a model of `cinestream train` has model/model.json beside model/model.bin"
    )]
    Parse { url: String, source: serde_json::Error },
    #[error(
        "model card `{url}` has format `{found}`; this cinestream reads `{CARD_FORMAT}`: retrain, or use the cinestream version that wrote it"
    )]
    Format { url: String, found: String },
    #[error("model card `{url}`: {message}")]
    Invalid { url: String, message: String },
}

/// The weights file a card describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsFile {
    /// Relative to the card's folder.
    pub path: String,
    pub sha256: String,
    /// How they are encoded (Burn's recorder and precision).
    pub record: String,
}

/// How an image of the `frames` table becomes the network's input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRule {
    /// Pixels are divided by a scale and clipped to 0…1; the scale is this rule's.
    pub intensity: Intensity,
    /// The network sees `size × size`: the image's longer side resized to `size`, the shorter
    /// padded with zeros (fastai's pad-resize); outputs go back by the exact inverse.
    pub size: usize,
}

/// One selection a model was trained or validated on, as it was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionLineage {
    /// `train` or `valid`.
    pub role: String,
    pub name: String,
    /// SHA-256 of the selection's frame list.
    pub sha256: String,
    pub rows: u64,
    pub studies: u64,
    pub query: String,
    pub params: BTreeMap<String, String>,
    /// The table versions the selection read: re-selecting at them reproduces it.
    pub tables: Vec<TableVersion>,
}

/// What a model was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    /// The data prefix.
    pub data: String,
    pub selections: Vec<SelectionLineage>,
    /// The labeller whose masks it learned (`None`: the selection's own).
    pub labeller: Option<String>,
}

/// `model/model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub format: String,
    pub created: String,
    pub cinestream_version: String,
    pub weights: WeightsFile,
    pub architecture: ModelConfig,
    /// Our class of each output channel (0 background, 1 LV, 2 MY, 3 RV): channel i is
    /// `classes[i]`.
    pub classes: Vec<u8>,
    pub input: InputRule,
    pub lineage: Lineage,
    /// The training configuration as run (for people; nothing reads it back).
    pub training: serde_json::Value,
    /// The final report: epochs, images seen, validation Dice.
    pub report: serde_json::Value,
}

impl ModelCard {
    /// Parses and checks a card (`url` names it in errors).
    pub fn parse(bytes: &[u8], url: &str) -> Result<ModelCard, CardError> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|source| CardError::Parse { url: url.into(), source })?;
        let found = value["format"].as_str().unwrap_or_default();
        if found != CARD_FORMAT {
            return Err(CardError::Format { url: url.into(), found: found.into() });
        }
        let card: ModelCard = serde_json::from_value(value).map_err(|source| CardError::Parse { url: url.into(), source })?;
        card.validate().map_err(|message| CardError::Invalid { url: url.into(), message })?;
        Ok(card)
    }

    /// Checks the card's values (no I/O).
    pub fn validate(&self) -> Result<(), String> {
        self.architecture.validate()?;
        if self.classes.len() != self.architecture.classes {
            return Err(format!("{} output channels but {} class names", self.architecture.classes, self.classes.len()));
        }
        if let Some(c) = self.classes.iter().find(|c| **c > 3) {
            return Err(format!("class {c} is not one of ours (0 background, 1 LV, 2 MY, 3 RV)"));
        }
        if self.input.size == 0 {
            return Err("input.size must be positive".into());
        }
        Ok(())
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a model card serialises")
    }
}

/// Reads a model of ours (`…/model` folder, its `model.json` or its `model.bin`): its card and
/// its weights, checked against the card's SHA-256.
pub async fn read(url: &str, opts: &StoreOptions) -> Result<(ModelCard, Bytes), CardError> {
    let folder =
        url.trim_end_matches('/').trim_end_matches(&format!("/{WEIGHTS_FILE}")).trim_end_matches(&format!("/{CARD_FILE}")).to_string();
    let card_url = format!("{folder}/{CARD_FILE}");
    let bytes = store::read_object(&card_url, opts).await.map_err(|e| CardError::Read { url: card_url.clone(), source: Box::new(e) })?;
    let card = ModelCard::parse(&bytes, &card_url)?;
    let weights_url = format!("{folder}/{}", card.weights.path);
    let weights =
        store::read_object(&weights_url, opts).await.map_err(|e| CardError::Read { url: weights_url.clone(), source: Box::new(e) })?;
    let found = hex::encode(Sha256::digest(&weights));
    if found != card.weights.sha256 {
        return Err(CardError::Checksum { url: weights_url, found, expected: card.weights.sha256.clone() });
    }
    Ok((card, weights))
}

/// The network of `card` with `weights` loaded.
pub fn build<B: Backend>(card: &ModelCard, weights: &Bytes, device: &B::Device) -> Result<SegModel<B>, CardError> {
    let record = Recorder::<B>::load(&recorder(), weights.to_vec(), device)
        .map_err(|source| CardError::Weights { url: card.weights.path.clone(), source })?;
    Ok(card.architecture.init::<B>(device).load_record(record))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn card() -> ModelCard {
        ModelCard {
            format: CARD_FORMAT.into(),
            created: "2026-12-02T00:00:00.000Z".into(),
            cinestream_version: "0".into(),
            weights: WeightsFile { path: "model.bin".into(), sha256: "ab".into(), record: "burn".into() },
            architecture: ModelConfig { width: 8, blocks: [1, 1, 1, 1], ..Default::default() },
            classes: vec![0, 1, 2],
            input: InputRule { intensity: Intensity::Study, size: 128 },
            lineage: Lineage { data: "file:///d".into(), selections: vec![], labeller: Some("phantom".into()) },
            training: serde_json::json!({}),
            report: serde_json::json!({}),
        }
    }

    #[test]
    fn a_card_reads_back_as_written() {
        let c = card();
        assert_eq!(ModelCard::parse(&c.to_json(), "m").unwrap(), c);
    }

    #[test]
    fn bad_cards_say_what_is_wrong() {
        let mut c = card();
        c.classes = vec![0, 1];
        assert!(ModelCard::parse(&c.to_json(), "m").unwrap_err().to_string().contains("3 output channels but 2"));
        let mut v: serde_json::Value = serde_json::from_slice(&card().to_json()).unwrap();
        v["format"] = "cinestream-model-v1".into();
        assert!(matches!(ModelCard::parse(v.to_string().as_bytes(), "m"), Err(CardError::Format { .. })));
        v["format"] = CARD_FORMAT.into();
        v["extra"] = 1.into();
        assert!(ModelCard::parse(v.to_string().as_bytes(), "m").unwrap_err().to_string().contains("extra"));
    }
}
