//! `cinestream ingest` settings: `[ingest]` in a pipeline file, or flags. Unknown fields are
//! errors, and [`IngestConfig::validate`] checks everything without I/O.

use serde::{Deserialize, Serialize};

use crate::curate::CurationConfig;
use crate::source::SourceConfig;
use crate::source::pseudonym::PseudonymKey;
use crate::store::StoreOptions;
use crate::tables::writer::ShardConfig;

/// Settings that cannot work together, said in the words of the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct InvalidIngestConfig(pub String);

/// `cinestream ingest` settings (`[ingest]` in a pipeline file, or flags).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Storage URL of the DICOM input prefix.
    pub input: String,
    /// Storage URL of the output prefix (one Delta table per table goes below it).
    pub output: String,
    /// Truth CSV URLs (Kaggle formats).
    #[serde(default)]
    pub truth: Vec<String>,
    /// URL of label-mask Parquet files keyed by object key (e.g. `<synth output>/truth`).
    #[serde(default)]
    pub labels: Option<String>,
    /// Labeller name written with those masks.
    #[serde(default = "default_labeller")]
    pub labeller: String,
    /// Labeller name written with a NIfTI dataset's expert masks.
    #[serde(default = "default_expert")]
    pub expert_labeller: String,
    /// Studies fetched and curated concurrently (bounds memory: about this many studies are held).
    #[serde(default = "default_in_flight")]
    pub studies_in_flight: usize,
    #[serde(default)]
    pub source: SourceConfig,
    #[serde(default)]
    pub curation: CurationConfig,
    #[serde(default)]
    pub shards: ShardConfig,
    #[serde(default)]
    pub store: StoreOptions,
    /// Replace the rows of studies whose source changed since they were ingested (otherwise such
    /// studies are refused); also re-ingests studies upgraded from the manifest format.
    #[serde(default)]
    pub replace: bool,
    /// Read only these folders below the input (keys and study ids stay as the whole input
    /// gives them); everything when empty. Not recorded in the commits' configuration: sites
    /// name folders after patients.
    #[serde(default, skip_serializing)]
    pub folders: Vec<String>,
    /// Take only this worker's share of the studies (`i/N`, see [`crate::workers`]).
    #[serde(default)]
    pub share: Option<crate::workers::WorkShare>,
    /// The pseudonym key, given by a program (never read from or written to a file: by default
    /// it comes from the environment or the config folder, see [`crate::source::pseudonym`]).
    #[serde(skip)]
    pub pseudonym_key: Option<PseudonymKey>,
}

fn default_labeller() -> String {
    "manual".into()
}
fn default_expert() -> String {
    "expert".into()
}
fn default_in_flight() -> usize {
    2
}

impl IngestConfig {
    /// A configuration with defaults for everything but the two URLs.
    pub fn new(input: impl Into<String>, output: impl Into<String>) -> Self {
        Self {
            input: input.into(),
            output: output.into(),
            truth: Vec::new(),
            labels: None,
            labeller: default_labeller(),
            expert_labeller: default_expert(),
            studies_in_flight: default_in_flight(),
            source: SourceConfig::default(),
            curation: CurationConfig::default(),
            shards: ShardConfig::default(),
            store: StoreOptions::default(),
            replace: false,
            folders: Vec::new(),
            share: None,
            pseudonym_key: None,
        }
    }

    /// Sets the label masks to read and who made them. Without a labeller, masks from a
    /// `…/truth` folder (what `cinestream synth` writes beside its studies) are the phantom's,
    /// and masks from anywhere else keep the configured labeller. A labeller given also names a
    /// NIfTI dataset's expert masks (otherwise `expert`).
    pub fn set_labels(&mut self, labels: Option<String>, labeller: Option<String>) {
        let from_synth = labels.as_deref().is_some_and(|l| l.trim_end_matches('/').ends_with("truth"));
        if labels.is_some() {
            self.labels = labels;
        }
        if let Some(l) = labeller {
            self.expert_labeller = l.clone();
            self.labeller = l;
        } else if from_synth {
            self.labeller = "phantom".into();
        }
    }

    /// Checks the settings without I/O.
    pub fn validate(&self) -> Result<(), InvalidIngestConfig> {
        let bad = |m: String| Err(InvalidIngestConfig(m));
        if self.input.trim().is_empty() || self.output.trim().is_empty() {
            return bad("input and output URLs are required".into());
        }
        if self.input.trim_end_matches('/') == self.output.trim_end_matches('/') {
            return bad(format!("output `{}` must differ from the input", self.output));
        }
        if !(1..=64).contains(&self.studies_in_flight) {
            return bad(format!("studies_in_flight = {} must be in 1..=64", self.studies_in_flight));
        }
        if !(1..=256).contains(&self.source.fetch_concurrency) {
            return bad(format!("source.fetch_concurrency = {} must be in 1..=256", self.source.fetch_concurrency));
        }
        if self.source.header_bytes < 1024 {
            return bad("source.header_bytes must be at least 1024".into());
        }
        if self.labeller.trim().is_empty() || self.expert_labeller.trim().is_empty() {
            return bad("labeller and expert_labeller must not be empty".into());
        }
        self.curation.validate().map_err(InvalidIngestConfig)?;
        self.shards.validate().map_err(InvalidIngestConfig)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_from_a_synth_truth_folder_are_the_phantoms() {
        let mut c = IngestConfig::new("in", "out");
        c.set_labels(Some("./phantom/truth/".into()), None);
        assert_eq!((c.labels.as_deref(), c.labeller.as_str()), (Some("./phantom/truth/"), "phantom"));
        c.set_labels(Some("s3://b/masks".into()), Some("expert".into()));
        assert_eq!((c.labels.as_deref(), c.labeller.as_str()), (Some("s3://b/masks"), "expert"));
        let mut d = IngestConfig::new("in", "out");
        d.set_labels(Some("s3://b/masks".into()), None);
        assert_eq!(d.labeller, "manual");
        d.set_labels(None, None);
        assert_eq!(d.labels.as_deref(), Some("s3://b/masks"));
    }

    #[test]
    fn validation_is_pure_and_specific() {
        let mut c = IngestConfig::new("in", "out");
        c.validate().unwrap();
        c.studies_in_flight = 0;
        assert!(c.validate().unwrap_err().to_string().contains("studies_in_flight"));
        let same = IngestConfig::new("x/", "x");
        assert!(same.validate().is_err());
    }
}
