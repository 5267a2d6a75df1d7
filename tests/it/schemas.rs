//! `schemas/<table>.json` is what the code writes: the files match the code's schemas, and the
//! Delta tables and Parquet files an ingest writes carry exactly those schemas.

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::*;
use cinestream::tables::delta::{self, AsOf};
use cinestream::tables::{self, DOCUMENTED, TABLES};
use deltalake_core::kernel::engine::arrow_conversion::TryIntoArrow as _;

#[test]
fn schema_files_match_the_code() {
    for t in DOCUMENTED {
        let path = format!("{}/schemas/{t}.json", env!("CARGO_MANIFEST_DIR"));
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap();
        let code = tables::schema_json(t).unwrap();
        assert_eq!(
            file, code,
            "{path} differs from the code; if the change is intended, update it with `cinestream schema {t} > schemas/{t}.json` and bump SCHEMA_VERSION"
        );
    }
    let files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), DOCUMENTED.len(), "one schema file per table: {files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_parquet_has_the_declared_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, data) = (dir.path().join("raw"), dir.path().join("data"));
    synth(raw.to_str().unwrap(), 1, 9, "broken_files").await;
    ingest_phantom(raw.to_str().unwrap(), data.to_str().unwrap()).await;
    let loc = open(data.to_str().unwrap());
    for t in TABLES {
        let table = delta::open(&loc, t, &AsOf::Latest).await.unwrap().unwrap_or_else(|| panic!("{t}: no Delta table"));
        let logged: arrow::datatypes::Schema = table.snapshot().unwrap().schema().as_ref().try_into_arrow().unwrap();
        let first = data.join(t).join(&delta::active_files(&table).unwrap()[0].path);
        let b = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&first).unwrap()).unwrap();
        let written = b.schema();
        let declared = tables::schema(t).unwrap();
        assert_eq!(written.fields().len(), declared.fields().len(), "{t}");
        assert_eq!(logged.fields().len(), declared.fields().len(), "{t}: Delta schema");
        for ((w, d), l) in written.fields().iter().zip(declared.fields()).zip(logged.fields()) {
            assert_eq!((w.name(), w.data_type(), w.is_nullable()), (d.name(), d.data_type(), d.is_nullable()), "{t}");
            assert_eq!((l.name(), l.data_type(), l.is_nullable()), (d.name(), d.data_type(), d.is_nullable()), "{t}: Delta schema");
        }
        // Data-skipping statistics: key columns only, never the blobs.
        let stats: Vec<String> = table
            .snapshot()
            .unwrap()
            .table_config()
            .data_skipping_stats_columns
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert!(
            stats.iter().any(|c| c == "study_id" || c == "source_study_id")
                && !stats.iter().any(|c| tables::BLOB_COLUMNS.contains(&c.as_str())),
            "{t}: {stats:?}"
        );
    }
}
