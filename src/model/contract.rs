//! A model's contract: how frames become its input and its output becomes our masks.
//!
//! For an ONNX model it is a small TOML beside it (`net.onnx` → `net.toml`) or given with
//! `--contract URL`; for one of our models it follows from its card ([`Contract::of_card`]).
//! `pipelines/models/` ships contracts for our U-Net exported to ONNX, for myopari's tiramisu and
//! for ukbb_cardiac.

use serde::{Deserialize, Serialize};

use crate::model::card::ModelCard;
use crate::model::prep::{IntensityRule, Normalise, Over, Scaling, SizePolicy};
use crate::model::scaling::{Intensity, SCALE_PERCENTILE};

/// What a model's output holds per pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// One channel per class: probabilities (e.g. after a softmax).
    Probabilities,
    /// One channel per class: scores before a softmax.
    Logits,
    /// One channel: the class index.
    Labels,
}

/// Tensor layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// Clean-ups after the class map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostRule {
    /// Connected components (4-connected, per class) smaller than this become background; 0 keeps all.
    pub min_component_pixels: usize,
    /// Keep only the largest LV component.
    pub keep_largest_lv: bool,
}

/// The contract (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// Name of the model's image input (ONNX); ignored by our own models.
    #[serde(default = "default_input")]
    pub input: String,
    /// Name of the output to read (ONNX).
    #[serde(default = "default_output")]
    pub output: String,
    /// Layout of the input and the output tensors.
    #[serde(default = "default_layout")]
    pub layout: Layout,
    /// Input channels: 1, or the image replicated to 3.
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// Swap rows and columns before the model (and back after): for models trained on images
    /// stored column-major (NIfTI-style x, y order).
    #[serde(default)]
    pub transpose: bool,
    pub size: SizePolicy,
    pub intensity: IntensityRule,
    pub output_kind: OutputKind,
    /// Our class (0 background, 1 LV, 2 MY, 3 RV) of each model class: model class i is `classes[i]`.
    pub classes: Vec<u8>,
    #[serde(default)]
    pub post: PostRule,
}

fn default_input() -> String {
    "input".into()
}
fn default_output() -> String {
    "output".into()
}
fn default_layout() -> Layout {
    Layout::Nchw
}
fn default_channels() -> usize {
    1
}

/// A contract that cannot be used, naming where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("model contract `{origin}`: {source}")]
    Toml { origin: String, source: toml::de::Error },
    #[error("model contract `{origin}`: {message}")]
    Invalid { origin: String, message: String },
}

impl Contract {
    /// Parses a contract (TOML); `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Contract, ContractError> {
        let c: Contract = toml::from_str(text).map_err(|source| ContractError::Toml { origin: origin.into(), source })?;
        c.validate().map_err(|message| ContractError::Invalid { origin: origin.into(), message })?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.channels, 1 | 3) {
            return Err(format!("channels = {}: 1, or 3 (the image replicated)", self.channels));
        }
        if self.classes.is_empty() || self.classes.iter().any(|c| *c > 3) {
            return Err(format!("classes = {:?}: one of ours (0 background, 1 LV, 2 MY, 3 RV) per model class", self.classes));
        }
        if self.output_kind == OutputKind::Labels && self.classes.len() < 2 {
            return Err("a labels output needs the class map of every label value".into());
        }
        self.size.validate()?;
        self.intensity.validate()
    }

    /// Output channels per pixel.
    pub fn output_channels(&self) -> usize {
        if self.output_kind == OutputKind::Labels { 1 } else { self.classes.len() }
    }

    /// The contract of one of our models: pad-resize to the training size, the training
    /// intensity rule (v / the 99.95th percentile of the study or the image), one channel (the
    /// network replicates it and applies ImageNet normalisation itself), logits.
    pub fn of_card(card: &ModelCard) -> Contract {
        let over = match card.input.intensity {
            Intensity::Study => Over::Study,
            Intensity::Image => Over::Image,
        };
        Contract {
            input: default_input(),
            output: default_output(),
            layout: Layout::Nchw,
            channels: 1,
            transpose: false,
            size: SizePolicy::PadResize { size: card.input.size },
            intensity: IntensityRule {
                scaling: Scaling::Percentile { low: None, high: SCALE_PERCENTILE * 100.0, over, nonzero: false },
                normalise: Normalise::None,
            },
            output_kind: OutputKind::Logits,
            classes: card.classes.clone(),
            post: PostRule::default(),
        }
    }

    /// The contract as TOML, after `comment` as `#` lines.
    pub fn to_toml(&self, comment: &str) -> String {
        let body = toml::to_string(self).expect("a contract serialises");
        let head: String = comment.lines().map(|l| format!("# {l}\n")).collect();
        format!("{head}{body}")
    }

    /// The classes this model labels (ours, without background).
    pub fn labelled_classes(&self) -> Vec<u8> {
        let mut c: Vec<u8> = self.classes.iter().copied().filter(|c| *c > 0).collect();
        c.sort_unstable();
        c.dedup();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_contracts_say_what_is_wrong() {
        let good = "output_kind = \"probabilities\"\nclasses = [0, 3, 2, 1]\nsize = { kind = \"crop_resize\", size = 256 }\nintensity = { scaling = { kind = \"percentile\", low = 0.05, high = 99.05, over = \"image\" } }\n";
        Contract::parse(good, "t").unwrap();
        let e = Contract::parse(&good.replace("[0, 3, 2, 1]", "[0, 5]"), "t").unwrap_err().to_string();
        assert!(e.contains("classes"), "{e}");
        let e = Contract::parse(&format!("{good}colour = 1\n"), "t").unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        let e = Contract::parse(&good.replace("low = 0.05", "low = 99.5"), "t").unwrap_err().to_string();
        assert!(e.contains("low < high"), "{e}");
    }
}
