//! cinestream: cardiac cine MRI from object storage to curated Parquet tables, SQL selections,
//! training and inference. See `ARCHITECTURE.md` for the data flow; each module below is one
//! stage of it.

pub mod config;
pub mod curate;
pub mod evaluate;
pub mod findings;
pub mod geometry;
pub mod html;
pub mod ids;
pub mod ingest;
pub mod label;
pub mod model;
pub mod nifti;
pub mod pixels;
pub mod plot;
pub mod progress;
pub mod query;
pub mod schedule;
pub mod source;
pub mod store;
pub mod study;
pub mod synth;
pub mod tables;
pub mod train;
pub mod viewer;
pub mod workers;
