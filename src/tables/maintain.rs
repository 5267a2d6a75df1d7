//! Table maintenance: the history of each table (`cinestream log`) and removal of files no
//! version needs any more (`cinestream vacuum`).
//!
//! Vacuum runs delta-rs' *full* mode: it removes data files that no commit references (what a
//! killed run uploaded before it could commit) and files removed by commits older than the
//! retention period, once they are older than it themselves — so files of a run still in
//! progress, and of versions readers may still time-travel to, stay.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deltalake_core::operations::vacuum::VacuumMode;
use serde::Serialize;

use super::delta::{self, AsOf, DeltaError};
use super::{publish, registry};
use crate::store::StoreLocation;

/// One commit of one table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryRow {
    pub table: String,
    pub version: i64,
    pub time: Option<DateTime<Utc>>,
    pub operation: String,
    pub rows_added: Option<u64>,
    pub rows_removed: Option<u64>,
    /// `ingest run 3f2a…: 2 new, 10 already present, …`, from our commit info.
    pub summary: String,
}

/// The history of `tables` (every table when empty), newest first per table.
pub async fn history(out: &StoreLocation, only: &[String]) -> Result<Vec<HistoryRow>, DeltaError> {
    let mut rows = Vec::new();
    let sources = delta::open(out, registry::PUBLISHING_TABLE, &AsOf::Latest).await?;
    let mut publication = publish::Publication::read(sources.as_ref()).await?;
    for table in tables_of(out).await?.iter().filter(|t| only.is_empty() || only.contains(*t)) {
        let Some(t) = delta::open(out, table, &AsOf::Latest).await? else { continue };
        let latest = delta::version(&t).unwrap_or(0);
        for (i, info) in delta::history(&t, None).await?.into_iter().enumerate() {
            let ours = info.info.get("cinestream");
            let number = |k: &str| ours.and_then(|o| o[k].as_u64());
            let mut summary = ours.map(summarise).unwrap_or_default();
            if let Some(app) = ours.and_then(|o| o["app_id"].as_str())
                && !publication.is_published(app).await?
            {
                summary.push_str(" [unpublished: its run has not committed `sources` (still running, or killed: rerun it); hidden from cinestream's readers]");
            }
            rows.push(HistoryRow {
                table: table.to_string(),
                version: latest - i as i64,
                time: info.timestamp.and_then(DateTime::from_timestamp_millis),
                operation: info.operation.clone().unwrap_or_default(),
                rows_added: number("rows_added"),
                rows_removed: number("rows_removed"),
                summary,
            });
        }
    }
    Ok(rows)
}

fn summarise(info: &serde_json::Value) -> String {
    let command = info["command"].as_str().unwrap_or("?");
    let run = info["run_id"].as_str().unwrap_or("?");
    let s = &info["summary"];
    match command {
        "ingest" => {
            let n = |k: &str| {
                s[k].as_u64()
                    .or_else(|| s[k].as_array().map(|a| a.len() as u64))
                    .or_else(|| s[k].as_object().map(|o| o.len() as u64))
                    .unwrap_or(0)
            };
            format!(
                "ingest {run}: {} new, {} replaced, {} present, {} refused; {} images in = {} written + {} quarantined + {} excluded + {} skipped",
                n("sources_new"),
                n("sources_replaced"),
                n("sources_present"),
                n("sources_refused"),
                n("image_files"),
                n("frames_from_files"),
                n("files_quarantined"),
                n("files_excluded"),
                n("files_skipped")
            )
        }
        other => format!("{other} {run}"),
    }
}

/// What vacuum removed (or, in a dry run, would remove), per table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VacuumReport {
    pub dry_run: bool,
    pub files: BTreeMap<String, Vec<String>>,
}

/// Vacuums every table under `out`: files no commit references, and files of versions older
/// than `older_than`, once older than that themselves.
pub async fn vacuum(out: &StoreLocation, older_than: chrono::Duration, dry_run: bool) -> Result<VacuumReport, DeltaError> {
    let mut report = VacuumReport { dry_run, ..Default::default() };
    for table in tables_of(out).await? {
        let table = table.as_str();
        let Some(t) = delta::open(out, table, &AsOf::Latest).await? else { continue };
        let url = t.table_url().to_string();
        let (_, metrics) = t
            .vacuum()
            .with_mode(VacuumMode::Full)
            .with_retention_period(older_than)
            .with_enforce_retention_duration(false)
            .with_dry_run(dry_run)
            .await
            .map_err(|e| DeltaError::Table { url, source: Box::new(e) })?;
        let mut files: Vec<String> = metrics.files_deleted.into_iter().map(|f| relative(out, table, &f)).collect();
        files.sort();
        report.files.insert(table.to_string(), files);
    }
    Ok(report)
}

/// Adds to each of our tables under `out` the columns this version writes and the table, made
/// by an earlier version, lacks (one metadata commit per table; older rows read them as null).
/// Returns the columns added per table.
pub async fn upgrade_schemas(out: &StoreLocation) -> Result<BTreeMap<String, Vec<String>>, DeltaError> {
    let mut added = BTreeMap::new();
    for spec in registry::REGISTRY {
        let Some(t) = delta::open(out, spec.name, &AsOf::Latest).await? else { continue };
        let info = std::collections::HashMap::from([(
            "cinestream".to_string(),
            serde_json::json!({ "command": "upgrade", "schema_version": registry::SCHEMA_VERSION }),
        )]);
        let (_, columns) = delta::add_missing_columns(t, &spec.schema(), info).await?;
        if !columns.is_empty() {
            tracing::info!(table = spec.name, columns = ?columns, "columns added");
            added.insert(spec.name.to_string(), columns);
        }
    }
    Ok(added)
}

/// Every Delta table under `out`: cinestream's in commit order, then any others by name.
async fn tables_of(out: &StoreLocation) -> Result<Vec<String>, DeltaError> {
    let mut names = delta::tables_under(out).await?;
    names.sort_by_key(|n| (registry::REGISTRY.iter().position(|s| s.name == n).unwrap_or(usize::MAX), n.clone()));
    Ok(names)
}

/// A vacuumed path as `<table>/<file>`, whatever form delta-rs gave it in.
fn relative(out: &StoreLocation, table: &str, path: &str) -> String {
    let p = path.trim_start_matches('/');
    let prefix = out.child(table);
    let p = p.strip_prefix(prefix.as_ref()).unwrap_or(p).trim_start_matches('/');
    format!("{table}/{p}")
}

/// `7d`, `12h`, `30m`, `45s` or `0`.
pub fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(chrono::Duration::zero());
    }
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = num.parse().map_err(|_| format!("`{t}`: write a number and a unit: 7d, 12h, 30m, 45s, or 0"))?;
    match unit {
        "d" => Ok(chrono::Duration::days(n)),
        "h" => Ok(chrono::Duration::hours(n)),
        "m" => Ok(chrono::Duration::minutes(n)),
        "s" => Ok(chrono::Duration::seconds(n)),
        _ => Err(format!("`{t}`: the unit must be d, h, m or s (7d, 12h, 30m, 45s)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d").unwrap(), chrono::Duration::days(7));
        assert_eq!(parse_duration("0").unwrap(), chrono::Duration::zero());
        assert_eq!(parse_duration("90s").unwrap(), chrono::Duration::seconds(90));
        assert!(parse_duration("7 days").is_err());
        assert!(parse_duration("d").is_err());
    }
}
