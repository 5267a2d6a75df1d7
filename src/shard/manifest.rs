//! Manifests: the commit record of a run's shards.
//!
//! A run writes its shard files first, then one manifest object
//! `<output>/_manifest/<created>-<run_id>.json`, create-only. Readers trust only files listed in
//! committed manifests, so a crashed run leaves invisible orphans, never half a table. Each file
//! is listed with its row count, byte size and SHA-256.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{StoreLocation, explain};

/// Folder of manifests under an output prefix.
pub const MANIFEST_DIR: &str = "_manifest";

/// One shard file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the output prefix.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// One table's files in a manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    pub schema_version: u32,
    pub files: Vec<FileEntry>,
}

/// A committed run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub run_id: String,
    pub created: String,
    pub command: String,
    pub cinestream_version: String,
    pub tables: BTreeMap<String, TableEntry>,
    /// The run's report (counts that reconcile).
    pub summary: serde_json::Value,
    /// The resolved configuration that produced the files (no credentials).
    pub config: serde_json::Value,
}

/// Which committed manifest a reader saw: enough to tell later exactly which files it read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ManifestRef {
    /// Path relative to the data prefix (`_manifest/….json`).
    pub path: String,
    pub run_id: String,
    pub created: String,
    /// SHA-256 of the manifest object's bytes.
    pub sha256: String,
}

/// A manifest with its reference.
#[derive(Debug, Clone)]
pub struct Committed {
    pub reference: ManifestRef,
    pub manifest: Manifest,
}

/// Errors reading or writing manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("writing manifest `{object}`: {message}")]
    Write { object: String, message: String },
    #[error("listing manifests under `{url}`: {message}")]
    List { url: String, message: String },
    #[error("reading manifest `{object}`: {message}")]
    Read { object: String, message: String },
}

impl Manifest {
    pub const FORMAT: &'static str = "cinestream-manifest-v1";

    /// Commits the manifest (create-only); returns its object URL.
    pub async fn commit(&self, out: &StoreLocation) -> Result<String, ManifestError> {
        let name = format!("{MANIFEST_DIR}/{}-{}.json", self.created.replace([':', '-'], ""), self.run_id);
        let path = out.child(&name);
        let url = out.object_url(&path);
        let body = serde_json::to_vec_pretty(self).expect("manifest serialises");
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        out.store
            .put_opts(&path, PutPayload::from(body), opts)
            .await
            .map_err(|e| ManifestError::Write { object: url.clone(), message: explain(&e) })?;
        Ok(url)
    }

    /// Every committed manifest under `out`, oldest first.
    pub async fn list(out: &StoreLocation) -> Result<Vec<Manifest>, ManifestError> {
        Ok(Self::list_committed(out).await?.into_iter().map(|c| c.manifest).collect())
    }

    /// Every committed manifest under `out` with the reference a reader records for lineage.
    pub async fn list_committed(out: &StoreLocation) -> Result<Vec<Committed>, ManifestError> {
        let dir = out.child(MANIFEST_DIR);
        let mut metas: Vec<object_store::ObjectMeta> = out
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| ManifestError::List { url: out.url().to_string(), message: explain(&e) })?;
        metas.retain(|m| m.location.as_ref().ends_with(".json"));
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let mut out_list = Vec::with_capacity(metas.len());
        for m in metas {
            let object = out.object_url(&m.location);
            let bytes = out
                .store
                .get(&m.location)
                .await
                .map_err(|e| ManifestError::Read { object: object.clone(), message: explain(&e) })?
                .bytes()
                .await
                .map_err(|e| ManifestError::Read { object: object.clone(), message: explain(&e) })?;
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| ManifestError::Read { object: object.clone(), message: e.to_string() })?;
            let reference = ManifestRef {
                path: out.relative(&m.location).to_string(),
                run_id: manifest.run_id.clone(),
                created: manifest.created.clone(),
                sha256: hex::encode(Sha256::digest(&bytes)),
            };
            out_list.push(Committed { reference, manifest });
        }
        Ok(out_list)
    }

    /// The committed files of `table` across all manifests.
    pub fn files_of<'a>(manifests: &'a [Manifest], table: &str) -> Vec<&'a FileEntry> {
        manifests.iter().filter_map(|m| m.tables.get(table)).flat_map(|t| t.files.iter()).collect()
    }
}
