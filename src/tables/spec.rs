//! What any stage needs to know to write a table: a [`TableSpec`].
//!
//! The shard writer, the lanes and the Delta commit take a spec instead of a table name, so a
//! new table (`label_qc`, evaluation tables) is one more spec in the module that fills it, not
//! another branch in `shard/`. The specs of the tables cinestream writes are listed in
//! [`super::registry::REGISTRY`].

use arrow::datatypes::SchemaRef;

/// How many writer tasks a table gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lanes {
    /// One: small tables (a row per study or per finding).
    One,
    /// `shards.encoder_lanes`: tables of images or masks, whose encoding is the heavy part.
    Encoders,
}

/// A table: its name, schema and how it is written.
#[derive(Debug)]
pub struct TableSpec {
    /// The table's folder under the data prefix, and its name in SQL.
    pub name: &'static str,
    /// Its Arrow schema, with a `description` per column (mirrored in `schemas/<name>.json`).
    pub schema_fn: fn() -> SchemaRef,
    /// Columns of image or mask bytes: no dictionary, no statistics.
    pub blobs: &'static [&'static str],
    /// Columns with Delta data-skipping statistics (those of the schema that exist).
    pub stats: &'static [&'static str],
    pub lanes: Lanes,
    /// The column that names the study a row belongs to: a replace removes rows by it.
    pub study_key: &'static str,
    /// One line for `cinestream sql --help`: what a row is.
    pub about: &'static str,
    /// An example query for `cinestream sql --help`.
    pub example: &'static str,
}

impl TableSpec {
    pub fn schema(&self) -> SchemaRef {
        (self.schema_fn)()
    }

    /// Writer tasks for this table when image and mask tables get `encoder_lanes`.
    pub fn lanes(&self, encoder_lanes: usize) -> usize {
        match self.lanes {
            Lanes::One => 1,
            Lanes::Encoders => encoder_lanes.max(1),
        }
    }
}
