//! Integration tests: one binary (linking is slow), one module per concern.

mod architecture;
mod common;
mod compose;
mod crashes;
mod curation;
mod delta;
mod evaluate;
mod faults;
mod label;
mod label_engines;
mod label_onnx;
mod phi;
mod pseudonym;
mod pydicom_files;
mod roundtrip;
mod run;
mod schedule;
mod schemas;
mod sql;
mod storage;
mod study;
mod torchvision;
mod train;
mod viewer;
mod workers;
