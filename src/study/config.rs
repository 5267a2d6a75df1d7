//! `[study]` of a pipeline file: which studies are which, the starting points, the subsets and
//! the recipe of a transfer-learning study (docs/science.md §5; the authors' 7T design by
//! default). Checked by a pure `validate()` before anything touches storage.

use serde::{Deserialize, Serialize};

use crate::model::augment::Preset;
use crate::model::losses::LossKind;
use crate::train::Init;

/// `[study]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// The study's name: its rows in `study_runs`/`study_log`/`study_subsets`, and its folder
    /// `<data>/studies/<name>/` (runs, selections' lineage, report).
    pub name: String,
    /// Which studies train, validate and test: SQL conditions over `studies` (e.g.
    /// `split = 'train' AND field_strength_t = 7`).
    pub train: String,
    pub valid: String,
    pub test: String,
    /// Whose masks are the truth (`labels.labeller`): the experts', or `phantom`.
    pub labeller: String,
    /// The starting points, each trained on every subset.
    #[serde(rename = "start")]
    pub starts: Vec<StartSpec>,
    /// full, v<k> (k whole volunteers), r<k> (as many random images as v<k>), esed (the ED and
    /// ES frames of every training volunteer), r_esed (as many random images as esed).
    pub subsets: Vec<String>,
    /// Seed of the subset draws (one volunteer order and one image permutation per seed).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// A membership file shaped like the authors' `image_subsets.tsv` (file, Id, frame, slice,
    /// then TRUE/FALSE per subset) instead of drawing: reruns a published split exactly.
    #[serde(default)]
    pub membership: Option<String>,
    #[serde(default)]
    pub recipe: Recipe,
}

/// One starting point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartSpec {
    /// R, TL, TL2, or a name of your own.
    pub name: String,
    /// `"random"`, `{ imagenet = "resnet34.pth" }` (an empty URL skips the start with a note:
    /// the weights are the user's to supply) or `{ checkpoint = "<model URL>" }`.
    pub init: Init,
}

impl StartSpec {
    /// Whether the encoder is frozen in the first stage (every start but random weights).
    pub fn freezes(&self) -> bool {
        !matches!(self.init, Init::Random)
    }

    /// Why the start is skipped, if it is (a TL start without weights).
    pub fn skipped(&self) -> Option<String> {
        match &self.init {
            Init::Imagenet(url) if url.trim().is_empty() => Some(format!(
                "start `{}` is skipped: it needs ImageNet weights (a torchvision ResNet state dict, .pth or .safetensors) and none were given",
                self.name
            )),
            _ => None,
        }
    }
}

/// `[study.recipe]`: the authors' 7T recipe unless said otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The epoch rule's constant: each stage runs round(epochs · N_full / N_subset) epochs.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Learning rates of the two stages (frozen, then unfrozen).
    #[serde(default = "default_lr")]
    pub lr: [f64; 2],
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_size")]
    pub image_size: usize,
    #[serde(default = "default_augment")]
    pub augment: Preset,
    #[serde(default = "default_loss")]
    pub loss: LossKind,
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    /// Validate every this fraction of N_full training images (and after the first epoch and
    /// at the end).
    #[serde(default = "default_validate_every")]
    pub validate_every: f64,
    /// Cap every run at this many images (0: none): a quick look at a long study.
    #[serde(default)]
    pub max_images: u64,
    /// Training seed (data order, augmentation, random weights).
    #[serde(default = "default_train_seed")]
    pub seed: u64,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            epochs: default_epochs(),
            lr: default_lr(),
            batch_size: default_batch(),
            image_size: default_size(),
            augment: default_augment(),
            loss: default_loss(),
            weight_decay: default_wd(),
            validate_every: default_validate_every(),
            max_images: 0,
            seed: default_train_seed(),
        }
    }
}

fn default_seed() -> u64 {
    42
}
fn default_epochs() -> usize {
    10
}
fn default_lr() -> [f64; 2] {
    [1e-4, 1e-5]
}
fn default_batch() -> usize {
    8
}
fn default_size() -> usize {
    256
}
fn default_augment() -> Preset {
    Preset::S2
}
fn default_loss() -> LossKind {
    LossKind::CrossEntropy
}
fn default_wd() -> f64 {
    1e-2
}
fn default_validate_every() -> f64 {
    0.25
}
fn default_train_seed() -> u64 {
    1
}

/// A subset's kind, parsed from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubsetKind {
    Full,
    /// k whole volunteers.
    Volunteers(usize),
    /// As many random images as `Volunteers(k)`.
    Random(usize),
    Esed,
    RandomEsed,
}

impl SubsetKind {
    pub fn parse(name: &str) -> Option<Self> {
        let count = |s: &str| s.parse::<usize>().ok().filter(|k| *k > 0);
        match name {
            "full" => Some(Self::Full),
            "esed" => Some(Self::Esed),
            "r_esed" => Some(Self::RandomEsed),
            n if n.starts_with('v') => count(&n[1..]).map(Self::Volunteers),
            n if n.starts_with('r') => count(&n[1..]).map(Self::Random),
            _ => None,
        }
    }
}

/// The start names the study knows its colours and meaning for.
pub const KNOWN_STARTS: [&str; 3] = ["R", "TL", "TL2"];

impl StudyConfig {
    /// Checks the values (no I/O).
    pub fn validate(&self) -> Result<(), String> {
        let ok_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok_name(&self.name) {
            return Err(format!("study.name `{}`: use letters, digits, `_` and `-`", self.name));
        }
        for (what, cond) in [("train", &self.train), ("valid", &self.valid), ("test", &self.test)] {
            if cond.trim().is_empty() || cond.contains(';') {
                return Err(format!("study.{what}: give one SQL condition over `studies`, e.g. \"split = '{what}'\""));
            }
        }
        if self.starts.is_empty() {
            return Err("the study has no [[study.start]]: add R (init = \"random\"), TL or TL2".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.starts {
            if !ok_name(&s.name) || !seen.insert(&s.name) {
                return Err(format!("start `{}`: names must be unique and use letters, digits, `_` and `-`", s.name));
            }
        }
        if self.subsets.is_empty() {
            return Err(
                "study.subsets is empty: e.g. [\"full\", \"v7\", \"v3\", \"v1\", \"r7\", \"r3\", \"r1\", \"esed\", \"r_esed\"]".into()
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &self.subsets {
            if SubsetKind::parse(s).is_none() {
                return Err(format!(
                    "unknown subset `{s}`: subsets are full, v<k> (k whole volunteers), r<k> (as many random images), esed, r_esed"
                ));
            }
            if !names.insert(s) {
                return Err(format!("subset `{s}` is listed twice"));
            }
        }
        let r = &self.recipe;
        if r.epochs == 0 || r.batch_size == 0 || !r.image_size.is_multiple_of(32) || r.image_size < 32 {
            return Err(format!(
                "study.recipe: epochs ({}) and batch_size ({}) must be ≥ 1 and image_size ({}) a multiple of 32",
                r.epochs, r.batch_size, r.image_size
            ));
        }
        if r.lr.iter().any(|lr| !(*lr > 0.0 && *lr < 1.0)) {
            return Err(format!("study.recipe.lr {:?}: both learning rates must lie in (0, 1)", r.lr));
        }
        if !(r.validate_every > 0.0 && r.validate_every <= 10.0) {
            return Err(format!("study.recipe.validate_every {}: a fraction of the full set's images, e.g. 0.25", r.validate_every));
        }
        Ok(())
    }

    /// Epochs per stage for a subset of `n` of the full set's `full` images.
    pub fn epochs_per_stage(&self, full: usize, n: usize) -> usize {
        ((self.recipe.epochs * full) as f64 / n.max(1) as f64).round().max(1.0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study(subsets: &[&str]) -> StudyConfig {
        StudyConfig {
            name: "s".into(),
            train: "split = 'train'".into(),
            valid: "split = 'validate'".into(),
            test: "split = 'test'".into(),
            labeller: "manual".into(),
            starts: vec![StartSpec { name: "R".into(), init: Init::Random }],
            subsets: subsets.iter().map(|s| s.to_string()).collect(),
            seed: 42,
            membership: None,
            recipe: Recipe::default(),
        }
    }

    #[test]
    fn the_epoch_rule_matches_the_authors_runs() {
        let s = study(&["full"]);
        // Their 7T subsets of 5,076 images: 2,626 / 1,001 / 306 / 448.
        let per_stage: Vec<usize> = [5076, 2626, 1001, 306, 448].iter().map(|n| s.epochs_per_stage(5076, *n)).collect();
        assert_eq!(per_stage, [10, 19, 51, 166, 113]);
    }

    #[test]
    fn bad_studies_are_refused_before_any_work() {
        assert!(study(&["full", "v7", "r7", "esed", "r_esed"]).validate().is_ok());
        assert!(study(&["v0"]).validate().unwrap_err().contains("unknown subset `v0`"));
        assert!(study(&["half"]).validate().unwrap_err().contains("unknown subset"));
        assert!(study(&["v3", "v3"]).validate().unwrap_err().contains("twice"));
        let mut s = study(&["full"]);
        s.starts.push(StartSpec { name: "R".into(), init: Init::Random });
        assert!(s.validate().unwrap_err().contains("unique"));
        let tl = StartSpec { name: "TL".into(), init: Init::Imagenet(String::new()) };
        assert!(tl.skipped().unwrap().contains("ImageNet weights"));
        assert!(tl.freezes() && !study(&["full"]).starts[0].freezes());
        assert_eq!(SubsetKind::parse("r12"), Some(SubsetKind::Random(12)));
    }
}
