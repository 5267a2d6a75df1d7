//! The transfer-learning study (the paper's Fig. 6): how much data, and which, a new scanner
//! needs. Starting points (R: random weights, TL: ImageNet encoder, TL²: a model trained on other
//! data) are trained on subsets of the new domain's training set and compared by validation Dice
//! against images seen.
//!
//! - `config`: `[study]` of a pipeline file — which studies are which, the starts, the subsets,
//!   the recipe (the epoch rule);
//! - `subsets`: full, v<k>, r<k>, esed, r_esed drawn by seed (or read from the authors'
//!   membership file), the `study_subsets` rows and the authors' `subsets.tsv` shape;
//! - `summary`: a study's runs and learning curves as the saved `study_summary` and the
//!   `study_log` table give them — ours, or another group's log through a view
//!   (`authors_study_log` puts the authors' published log through the same summary);
//! - `plots`: Fig. 6 (Dice against images seen, rows LV and MY, columns the subsets by size,
//!   colour the start, solid whole volunteers, dashed random images) and the peaks per subset;
//! - `record`: the `study_subsets`, `study_log` and `study_runs` rows and their exactly-once
//!   commits;
//! - `run`: prepare (checks, subsets, selections), then each run trained, labelled, evaluated
//!   and committed exactly once, then the report;
//! - `report`: the PNGs, `report.html` and `summary.md`.

pub mod config;
pub mod plots;
pub mod record;
pub mod report;
pub mod run;
pub mod subsets;
pub mod summary;

use crate::query::read::ReadError;

/// Errors of the study.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("[study] {0}")]
    Config(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Tables(#[from] crate::tables::ShardError),
    #[error(transparent)]
    Delta(#[from] crate::tables::delta::DeltaError),
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    #[error(transparent)]
    Selection(#[from] crate::query::selection::SelectionError),
    #[error(transparent)]
    Storage(#[from] crate::store::StoreError),
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(transparent)]
    Label(#[from] crate::label::InferError),
    #[error(transparent)]
    Evaluate(#[from] crate::evaluate::EvaluateError),
    #[error("{0}")]
    Empty(String),
    #[error("drawing {name}: {message}")]
    Plot { name: String, message: String },
    #[error("writing `{url}`: {}", crate::store::explain(source))]
    Put { url: String, source: object_store::Error },
}
