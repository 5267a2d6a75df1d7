//! The manifest format of cinestream before Delta Lake (`<output>/_manifest/*.json`): read
//! only, to refuse such a prefix with a clear message and to convert it (`cinestream upgrade`).
//!
//! A manifest listed a run's files per table with row counts, sizes and SHA-256. Upgrading
//! commits those files, unchanged, to a Delta table per table (checking each checksum first),
//! and records every source study in `sources` with an unknown fingerprint, so a re-ingest of
//! the same input skips them instead of adding them twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::AsArray;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::delta::Committed;
use super::stats::FileStats;
use super::writer::{DataFile, FileEntry, ShardConfig, TableWriter};
use super::{RunInfo, ShardError, TableChange, commit_run, registry};
use crate::store::{StoreLocation, explain};

/// Folder of manifests under an output prefix.
pub const MANIFEST_DIR: &str = "_manifest";

/// One table's files in a manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    pub schema_version: u32,
    pub files: Vec<FileEntry>,
}

/// A committed run of the old format.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub run_id: String,
    pub created: String,
    pub command: String,
    pub cinestream_version: String,
    pub tables: BTreeMap<String, TableEntry>,
    pub summary: serde_json::Value,
    pub config: serde_json::Value,
}

/// Errors reading manifests or upgrading them.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("listing manifests under `{url}`: {}", explain(source))]
    List { url: String, source: object_store::Error },
    #[error("reading manifest `{object}`: {}", explain(source))]
    Read { object: String, source: object_store::Error },
    #[error("`{object}` is not what the manifest format promises ({source}); restore it or drop that run's manifest before upgrading")]
    Corrupt { object: String, source: serde_json::Error },
    #[error("`{object}` cannot be read as Parquet ({source}); restore it or drop that run's manifest before upgrading")]
    Parquet { object: String, source: parquet::errors::ParquetError },
    #[error("`{object}` cannot be read as Parquet ({source}); restore it or drop that run's manifest before upgrading")]
    Arrow { object: String, source: arrow::error::ArrowError },
    #[error(
        "`{object}` has SHA-256 {found}, its manifest says {expected}: the file changed after it was written; restore it or drop that run's manifest before upgrading"
    )]
    Checksum { object: String, found: String, expected: String },
    #[error(
        "the data prefix `{url}` holds tables in cinestream's old manifest format (`_manifest/`): convert them once with `cinestream upgrade --data {url}`, then rerun"
    )]
    NeedsUpgrade { url: String },
    #[error(transparent)]
    Shard(#[from] ShardError),
}

/// What an upgrade did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpgradeReport {
    pub manifests: usize,
    /// Files and rows committed per table.
    pub files: BTreeMap<String, usize>,
    pub rows: BTreeMap<String, u64>,
    pub source_studies: usize,
    /// Tables that were already upgraded (a rerun).
    pub already: Vec<String>,
}

impl Manifest {
    /// Every committed manifest under `out`, oldest first, with the SHA-256 of its bytes.
    pub async fn list(out: &StoreLocation) -> Result<Vec<(Manifest, String)>, LegacyError> {
        let dir = out.child(MANIFEST_DIR);
        let mut metas: Vec<object_store::ObjectMeta> =
            out.store.list(Some(&dir)).try_collect().await.map_err(|source| LegacyError::List { url: out.url().to_string(), source })?;
        metas.retain(|m| m.location.as_ref().ends_with(".json"));
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let mut out_list = Vec::with_capacity(metas.len());
        for m in metas {
            let object = out.object_url(&m.location);
            let bytes = out
                .store
                .get(&m.location)
                .await
                .map_err(|source| LegacyError::Read { object: object.clone(), source })?
                .bytes()
                .await
                .map_err(|source| LegacyError::Read { object: object.clone(), source })?;
            let manifest: Manifest =
                serde_json::from_slice(&bytes).map_err(|source| LegacyError::Corrupt { object: object.clone(), source })?;
            out_list.push((manifest, hex::encode(Sha256::digest(&bytes))));
        }
        Ok(out_list)
    }
}

/// Whether `out` holds manifests of the old format.
pub async fn has_manifests(out: &StoreLocation) -> Result<bool, LegacyError> {
    let dir = out.child(MANIFEST_DIR);
    let listed =
        out.store.list_with_delimiter(Some(&dir)).await.map_err(|source| LegacyError::List { url: out.url().to_string(), source })?;
    Ok(listed.objects.iter().any(|m| m.location.as_ref().ends_with(".json")))
}

/// Refuses a prefix of the old format that has not been upgraded (it would be read half-way:
/// the manifest's files are not in any Delta table).
pub async fn refuse_unconverted(out: &StoreLocation) -> Result<(), LegacyError> {
    if has_manifests(out).await? && !super::delta::exists(out, "sources").await.map_err(ShardError::from)? {
        return Err(LegacyError::NeedsUpgrade { url: out.url().to_string() });
    }
    Ok(())
}

/// Converts the manifests under `out` into Delta tables (idempotent: a rerun commits only what
/// is missing). Files stay where they are; their checksums are verified first.
pub async fn upgrade(out: &StoreLocation, cfg: &ShardConfig) -> Result<UpgradeReport, LegacyError> {
    let manifests = Manifest::list(out).await?;
    let mut report = UpgradeReport { manifests: manifests.len(), ..Default::default() };
    if manifests.is_empty() {
        return Ok(report);
    }
    let digest: Vec<&str> = manifests.iter().map(|(_, sha)| sha.as_str()).collect();
    let app_id = format!("cinestream-upgrade-{}", &hex::encode(Sha256::digest(digest.join("\n")))[..24]);
    // Tables a previous attempt already converted are left alone (and reported).
    let done = super::committed_tables(out, &registry::INGEST, &app_id).await?;
    report.already.extend(done.iter().map(|t| t.to_string()));
    let run_id =
        format!("upgrade-{}", &hex::encode(Sha256::digest(format!("{:?}{}", std::time::SystemTime::now(), std::process::id())))[..8]);
    let mut changes: BTreeMap<&'static str, TableChange> = BTreeMap::new();
    // study_id → source_study_id, and the image files per source study, from `studies`.
    let mut source_of: HashMap<String, String> = HashMap::new();
    let mut files_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut logged: BTreeSet<String> = BTreeSet::new();
    for table in ["frames", "labels", "studies", "curation_log"] {
        let schema = registry::schema(table).expect("known table");
        let mut adds = Vec::new();
        for entry in manifests.iter().filter_map(|(m, _)| m.tables.get(table)).flat_map(|t| &t.files) {
            let path = out.child(&entry.path);
            let object = out.object_url(&path);
            let bytes = async { out.store.get(&path).await?.bytes().await }
                .await
                .map_err(|source| LegacyError::Read { object: object.clone(), source })?;
            let found = hex::encode(Sha256::digest(&bytes));
            if found != entry.sha256 {
                return Err(LegacyError::Checksum { object, found, expected: entry.sha256.clone() });
            }
            let keys = read_objects_bytes(bytes, &object)?;
            let mut stats = FileStats::new(&schema, registry::STATS_COLUMNS);
            for b in &keys {
                stats.update(b);
                collect_sources(table, b, &mut source_of, &mut files_of, &mut logged);
            }
            let rel = entry.path.strip_prefix(&format!("{table}/")).unwrap_or(&entry.path).to_string();
            adds.push(DataFile { entry: FileEntry { path: rel, ..entry.clone() }, stats: stats.to_json() });
        }
        report.files.insert(table.to_string(), adds.len());
        report.rows.insert(table.to_string(), adds.iter().map(|f| f.entry.rows).sum());
        changes.insert(table, TableChange { adds, ..Default::default() });
    }
    // Source studies: those with studies rows, and those that only left findings.
    let mut rows: BTreeMap<String, registry::SourceRow> = BTreeMap::new();
    for (study, source) in &source_of {
        let r = rows.entry(source.clone()).or_insert_with(|| unknown_source(source, files_of.get(source).copied().unwrap_or(0)));
        r.study_ids.push(study.clone());
    }
    for study in logged.iter().filter(|s| *s != "unassigned" && !source_of.contains_key(*s)) {
        rows.entry(study.clone()).or_insert_with(|| unknown_source(study, 0));
    }
    let rows: Vec<registry::SourceRow> = rows
        .into_values()
        .map(|mut r| {
            r.study_ids.sort();
            r
        })
        .collect();
    report.source_studies = rows.len();
    if !done.contains(registry::SOURCES.name) {
        let mut w = TableWriter::new(out, &registry::SOURCES, &run_id, cfg);
        w.write(registry::sources_batch(&rows, &run_id, chrono::Utc::now())).await.map_err(ShardError::from)?;
        changes.insert(registry::SOURCES.name, TableChange { adds: w.finish().await.map_err(ShardError::from)?, ..Default::default() });
    }
    for t in &done {
        changes.remove(t);
    }
    let run = RunInfo {
        app_id,
        command: "upgrade".into(),
        run_id,
        summary: serde_json::json!({ "manifests": report.manifests, "rows": report.rows, "source_studies": report.source_studies }),
        config: serde_json::json!({ "manifests": manifests.iter().map(|(m, sha)| serde_json::json!({ "run_id": m.run_id, "created": m.created, "sha256": sha })).collect::<Vec<_>>() }),
    };
    for (table, result) in commit_run(out, &run, &registry::INGEST, changes).await? {
        if result == Committed::AlreadyThere && !report.already.iter().any(|t| t == table) {
            report.already.push(table.to_string());
        }
    }
    Ok(report)
}

fn unknown_source(source: &str, image_files: usize) -> registry::SourceRow {
    registry::SourceRow {
        source_study_id: source.into(),
        fingerprint: String::new(),
        listing_fingerprint: String::new(),
        image_files,
        study_ids: Vec::new(),
    }
}

/// The key columns of a Parquet file held in memory.
fn read_objects_bytes(bytes: bytes::Bytes, object: &str) -> Result<Vec<arrow::array::RecordBatch>, LegacyError> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let err = |source| LegacyError::Parquet { object: object.to_string(), source };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(err)?;
    let wanted: Vec<&str> = registry::STATS_COLUMNS.iter().copied().chain(["source_files"]).collect();
    let mask = ProjectionMask::columns(builder.parquet_schema(), wanted.iter().copied());
    let reader = builder.with_projection(mask).build().map_err(err)?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|source| LegacyError::Arrow { object: object.to_string(), source })
}

/// Notes which source study each study came from (`studies`) and which studies left findings.
fn collect_sources(
    table: &str,
    b: &arrow::array::RecordBatch,
    source_of: &mut HashMap<String, String>,
    files_of: &mut BTreeMap<String, usize>,
    logged: &mut BTreeSet<String>,
) {
    let strings = |name: &str| b.column_by_name(name).map(|c| c.as_string::<i32>().clone());
    match table {
        "studies" => {
            let (Some(ids), Some(sources)) = (strings("study_id"), strings("source_study_id")) else { return };
            let files = b.column_by_name("source_files").map(|c| c.as_primitive::<arrow::datatypes::Int32Type>().clone());
            for i in 0..b.num_rows() {
                source_of.insert(ids.value(i).to_string(), sources.value(i).to_string());
                *files_of.entry(sources.value(i).to_string()).or_default() += files.as_ref().map_or(0, |f| f.value(i) as usize);
            }
        }
        "curation_log" => {
            if let Some(ids) = strings("study_id") {
                logged.extend(ids.iter().flatten().map(String::from));
            }
        }
        _ => {}
    }
}
