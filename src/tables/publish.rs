//! When a run's rows become visible to cinestream's readers: all tables at once.
//!
//! Delta commits one table at a time, so a run's `frames` commit lands before its `sources`
//! commit, and a run killed in between leaves `frames` holding rows whose `labels` never came.
//! Every run that committed anything commits `sources` last (with no rows if it has none): a run is **published** when its
//! application transaction id is in `sources`. Readers ([`Publication::visible_files`]) hide the files of
//! commits whose run is not published, and bring back the files such a commit removed (a
//! `--replace` that did not finish), so `sql`, `select` and `train` see each run entirely or not
//! at all — across every table, whatever crashed and whatever runs concurrently.
//!
//! Finding the unpublished commits must not mean reading every table's whole history on every
//! query. So each `sources` commit records [`Marks`]: per table, a version at or below which
//! every commit is published or listed as pending (its version and run). A reader checks only
//! the pending commits and those above the mark — normally none, one in the crash window.
//! A writer computes the marks from the previous ones, before its `sources` commit.
//!
//! Engines that read one Delta table at a time (polars, deltalake, DuckDB, Spark) see each table's
//! commits atomically but not this cross-table rule; README says so and how to apply it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deltalake_core::DeltaTable;
use serde_json::Value;

use super::delta::{self, ActiveFile, DeltaError};

/// The key of a `sources` commit's `cinestream` info that holds the marks.
const MARKS_KEY: &str = "marks";

/// How far back the marks of `sources` are looked for (commits without marks: creation,
/// vacuum, commits of other programs).
const MARKS_LOOKBACK: usize = 64;

/// What a `sources` commit records about every other table (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marks {
    /// Per table: every commit at or below this version is published or in `pending`.
    pub published: BTreeMap<String, i64>,
    /// Commits at or below their table's mark whose run had not committed `sources`.
    pub pending: Vec<Pending>,
}

/// A commit whose run had not committed `sources` when the marks were made. It carries the
/// files it added and removed, so readers never need its log entry again (Delta may expire old
/// log entries once a checkpoint covers them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    pub table: String,
    pub version: i64,
    pub app_id: String,
    pub adds: Vec<String>,
    /// Path and size of each file it removed.
    pub removes: Vec<(String, i64)>,
}

impl Marks {
    /// The marks as a `cinestream` commit-info entry.
    pub fn to_info(&self) -> (String, Value) {
        (MARKS_KEY.to_string(), serde_json::to_value(self).expect("marks serialise"))
    }
}

/// The parts of one commit that visibility needs.
#[derive(Debug, Default)]
struct CommitEntry {
    /// `commitInfo.cinestream.app_id`: `None` for commits that are not a run's (creation, vacuum).
    app_id: Option<String>,
    adds: Vec<String>,
    /// Path and size of each removed file.
    removes: Vec<(String, i64)>,
    /// `commitInfo.cinestream.marks` (`sources` commits of runs).
    marks: Option<Value>,
}

async fn read_entry(t: &DeltaTable, version: i64) -> Result<CommitEntry, DeltaError> {
    let url = t.table_url().clone();
    let bytes = t
        .log_store()
        .read_commit_entry(version as u64)
        .await
        .map_err(|e| DeltaError::Table { url: url.to_string(), source: Box::new(e) })?
        .ok_or_else(|| DeltaError::NoVersion { url: url.to_string(), as_of: version.to_string() })?;
    let mut entry = CommitEntry::default();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let action: Value = serde_json::from_slice(line).map_err(|e| DeltaError::Log {
            url: url.to_string(),
            version,
            what: "an action",
            source: e.into(),
        })?;
        let ours = &action["commitInfo"]["cinestream"];
        if let Some(id) = ours["app_id"].as_str() {
            entry.app_id = Some(id.to_string());
        }
        if !ours[MARKS_KEY].is_null() {
            entry.marks = Some(ours[MARKS_KEY].clone());
        }
        if let Some(path) = action["add"]["path"].as_str() {
            entry.adds.push(path.to_string());
        }
        if let Some(path) = action["remove"]["path"].as_str() {
            entry.removes.push((path.to_string(), action["remove"]["size"].as_i64().unwrap_or(0)));
        }
    }
    Ok(entry)
}

/// The newest marks at or below the loaded version of `sources` (none: nothing is published).
async fn latest_marks(sources: Option<&DeltaTable>) -> Result<Marks, DeltaError> {
    let Some(t) = sources else { return Ok(Marks::default()) };
    let Some(latest) = delta::version(t) else { return Ok(Marks::default()) };
    for version in (0..=latest).rev().take(MARKS_LOOKBACK) {
        if let Some(marks) = read_entry(t, version).await?.marks {
            let url = t.table_url().to_string();
            return serde_json::from_value(marks).map_err(|e| DeltaError::Log { url, version, what: "marks", source: e.into() });
        }
    }
    Ok(Marks::default())
}

/// Which runs are published, as of one version of `sources`: read once per reader, so a query
/// over every table reads the marks once and asks `sources` about each run at most once.
pub struct Publication<'a> {
    sources: Option<&'a DeltaTable>,
    marks: Marks,
    /// Runs already looked up in `sources`.
    known: HashMap<String, bool>,
}

impl<'a> Publication<'a> {
    /// `sources` at the version read alongside the other tables (`None`: absent, so no run is
    /// published).
    pub async fn read(sources: Option<&'a DeltaTable>) -> Result<Self, DeltaError> {
        Ok(Publication { sources, marks: latest_marks(sources).await?, known: HashMap::new() })
    }

    /// Whether `app_id` committed to `sources` (at its loaded version).
    pub async fn is_published(&mut self, app_id: &str) -> Result<bool, DeltaError> {
        if let Some(known) = self.known.get(app_id) {
            return Ok(*known);
        }
        let published = match self.sources {
            Some(t) => delta::has_transaction(t, app_id).await?,
            None => false,
        };
        self.known.insert(app_id.to_string(), published);
        Ok(published)
    }

    /// The unpublished commits of `t` (at its loaded version), other than `except`'s: the
    /// pending ones of the marks and those above its mark whose run has not committed `sources`.
    async fn unpublished(&mut self, t: &DeltaTable, table: &str, except: Option<&str>) -> Result<Vec<Pending>, DeltaError> {
        let Some(version) = delta::version(t) else { return Ok(Vec::new()) };
        let mark = self.marks.published.get(table).copied().unwrap_or(-1);
        let mut found: Vec<Pending> = self.marks.pending.iter().filter(|p| p.table == table && p.version <= version).cloned().collect();
        for v in mark + 1..=version {
            let entry = read_entry(t, v).await?;
            if let Some(app_id) = entry.app_id {
                found.push(Pending { table: table.to_string(), version: v, app_id, adds: entry.adds, removes: entry.removes });
            }
        }
        let mut out = Vec::new();
        for p in found {
            if Some(p.app_id.as_str()) != except && !self.is_published(&p.app_id).await? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The files of `t` (at its loaded version) that readers see: the active files without
    /// those of unpublished runs, plus the files such runs removed.
    pub async fn visible_files(&mut self, t: &DeltaTable, table: &str) -> Result<Vec<ActiveFile>, DeltaError> {
        let mut files = delta::active_files(t)?;
        if table == super::registry::PUBLISHING_TABLE {
            return Ok(files);
        }
        let hidden = self.unpublished(t, table, None).await?;
        if hidden.is_empty() {
            return Ok(files);
        }
        let added: BTreeSet<&str> = hidden.iter().flat_map(|p| p.adds.iter().map(String::as_str)).collect();
        tracing::debug!(table, commits = hidden.len(), files = added.len(), "hiding commits of runs that have not committed `sources`");
        files.retain(|f| !added.contains(f.path.as_str()));
        let active: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
        for p in &hidden {
            for (path, size) in &p.removes {
                if !added.contains(path.as_str()) && !active.contains(path) {
                    files.push(ActiveFile { path: path.clone(), size: *size, rows: None, stats: None, partition_values: HashMap::new() });
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        Ok(files)
    }
}

/// The marks a run records in its `sources` commit, made after its other tables committed:
/// every table's latest version, with the commits of other unpublished runs up to it.
pub async fn marks_for(tables: &BTreeMap<&str, DeltaTable>, sources: Option<&DeltaTable>, app_id: &str) -> Result<Marks, DeltaError> {
    let mut prev = Publication::read(sources).await?;
    let mut marks = Marks::default();
    for (table, t) in tables {
        let Some(version) = delta::version(t) else { continue };
        marks.pending.extend(prev.unpublished(t, table, Some(app_id)).await?);
        marks.published.insert(table.to_string(), version);
    }
    // Tables this run did not open (a labelling run does not open `frames`) keep their marks,
    // with those of their pending commits still unpublished.
    let carried: Vec<(String, i64)> =
        prev.marks.published.iter().filter(|(t, _)| !tables.contains_key(t.as_str())).map(|(t, v)| (t.clone(), *v)).collect();
    for (table, version) in carried {
        let pending: Vec<Pending> = prev.marks.pending.iter().filter(|p| p.table == table).cloned().collect();
        for p in pending {
            if p.app_id != app_id && !prev.is_published(&p.app_id).await? {
                marks.pending.push(p);
            }
        }
        marks.published.insert(table, version);
    }
    Ok(marks)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::StoreLocation;
    use crate::tables::delta::{AsOf, CommitSpec};
    use crate::tables::writer::{DataFile, FileEntry};
    use crate::tables::{self, RunInfo, TableChange, commit_run};
    use deltalake_core::protocol::{DeltaOperation, SaveMode};

    fn file(name: &str) -> DataFile {
        DataFile {
            entry: FileEntry { path: format!("{name}.parquet"), rows: 1, bytes: 1, sha256: String::new() },
            stats: r#"{"numRecords":1}"#.into(),
        }
    }

    fn run(app: &str) -> RunInfo {
        RunInfo { app_id: app.into(), command: "test".into(), run_id: app.into(), summary: Value::Null, config: Value::Null }
    }

    fn adds(names: &[&str]) -> TableChange {
        TableChange { adds: names.iter().map(|n| file(n)).collect(), ..Default::default() }
    }

    /// What readers see of `frames` and `labels`.
    async fn seen(out: &StoreLocation) -> Vec<Vec<String>> {
        let sources = delta::open(out, "sources", &AsOf::Latest).await.unwrap();
        let mut publication = Publication::read(sources.as_ref()).await.unwrap();
        let mut all = Vec::new();
        for table in ["frames", "labels"] {
            let t = delta::open(out, table, &AsOf::Latest).await.unwrap().unwrap();
            let files = publication.visible_files(&t, table).await.unwrap();
            all.push(files.into_iter().map(|f| f.path.trim_end_matches(".parquet").to_string()).collect());
        }
        all
    }

    /// A run that commits `frames` and dies: `append` adds files, `replace` also removes one.
    async fn crash_after_frames(out: &StoreLocation, app: &str, append: &[&str], replace: Option<&str>) {
        let mut t = delta::open(out, "frames", &AsOf::Latest).await.unwrap().unwrap();
        let removes = delta::active_files(&t)
            .unwrap()
            .iter()
            .filter(|f| Some(f.path.trim_end_matches(".parquet")) == replace)
            .map(delta::remove_action)
            .collect();
        let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None };
        let info = HashMap::from([("cinestream".to_string(), serde_json::json!({ "app_id": app }))]);
        let spec = CommitSpec { app_id: app.into(), adds: append.iter().map(|n| file(n)).collect(), removes, operation, info };
        delta::commit(&mut t, spec).await.unwrap();
    }

    /// Runs that crash after their first commit stay invisible in every table — also while
    /// other runs complete, and a crashed replace still shows the rows it meant to replace —
    /// until a rerun commits their last table.
    #[tokio::test]
    async fn only_published_runs_are_visible_in_every_table() {
        let out = crate::store::open("memory://publish-visibility/data", &Default::default()).unwrap();
        commit_run(
            &out,
            &run("a"),
            &tables::INGEST,
            [("frames", adds(&["fa"])), ("labels", adds(&["la"])), ("sources", adds(&["sa"]))].into(),
        )
        .await
        .unwrap();
        assert_eq!(seen(&out).await, [vec!["fa"], vec!["la"]]);

        crash_after_frames(&out, "b", &["fb"], None).await;
        assert_eq!(seen(&out).await, [vec!["fa"], vec!["la"]], "a run killed after `frames` is invisible");

        // A run without rows for `sources` still publishes itself there.
        commit_run(&out, &run("c"), &tables::INGEST, [("frames", adds(&["fc"])), ("labels", adds(&["lc"]))].into()).await.unwrap();
        assert_eq!(seen(&out).await, [vec!["fa", "fc"], vec!["la", "lc"]], "b stays hidden while c completes");
        let sources = delta::open(&out, "sources", &AsOf::Latest).await.unwrap();
        let marks = latest_marks(sources.as_ref()).await.unwrap();
        let b = Pending { table: "frames".into(), version: 2, app_id: "b".into(), adds: vec!["fb.parquet".into()], removes: vec![] };
        assert_eq!(marks.pending, vec![b.clone()], "c's marks remember b and its files: {marks:?}");

        // A run that commits only `labels` (as `cinestream label` does) keeps the marks of the
        // tables it did not open, and b's pending commit with them.
        commit_run(&out, &run("l"), &[&tables::LABELS], [("labels", adds(&["ll"]))].into()).await.unwrap();
        assert_eq!(seen(&out).await, [vec!["fa", "fc"], vec!["la", "lc", "ll"]]);
        let sources = delta::open(&out, "sources", &AsOf::Latest).await.unwrap();
        let marks = latest_marks(sources.as_ref()).await.unwrap();
        assert_eq!((marks.published.get("frames"), marks.pending.clone()), (Some(&3), vec![b]), "{marks:?}");

        crash_after_frames(&out, "r", &["fr"], Some("fa")).await;
        assert_eq!(seen(&out).await, [vec!["fa", "fc"], vec!["la", "lc", "ll"]], "an unfinished replace shows the old rows");

        // b's rerun: `frames` is already committed, the rest is not.
        commit_run(&out, &run("b"), &tables::INGEST, [("labels", adds(&["lb"])), ("sources", adds(&["sb"]))].into()).await.unwrap();
        assert_eq!(seen(&out).await, [vec!["fa", "fb", "fc"], vec!["la", "lb", "lc", "ll"]]);

        // A rerun whose other tables an earlier attempt already committed (nothing left to add
        // but `sources`) still publishes them.
        crash_after_frames(&out, "q", &["fq"], None).await;
        commit_run(&out, &run("q"), &tables::INGEST, BTreeMap::new()).await.unwrap();
        assert!(seen(&out).await[0].contains(&"fq".to_string()), "q's frames are published by its rerun");

        commit_run(&out, &run("r"), &tables::INGEST, [("sources", adds(&["sr"]))].into()).await.unwrap();
        assert_eq!(seen(&out).await, [vec!["fb", "fc", "fq", "fr"], vec!["la", "lb", "lc", "ll"]], "the replace is visible once published");
        let sources = delta::open(&out, "sources", &AsOf::Latest).await.unwrap();
        assert!(latest_marks(sources.as_ref()).await.unwrap().pending.is_empty(), "every run is published");
    }
}
