//! Saved queries: `pipelines/queries/*.sql`, built into the binary and usable by name — as the
//! QUERY of `cinestream sql`, as a table in any other query (a view, planned when first used),
//! or as the `--query` of `cinestream select`.
//!
//! Each file starts with a comment header that says what it returns:
//!
//! ```sql
//! -- One line: what the query returns.
//! -- More lines of explanation (columns, rules, sources).
//! -- @param threshold number = 0.05  what the parameter means
//! -- @example cinestream sql --data ./data confidence_sets --param threshold=0.10
//! -- @empty what an empty result means and what to do (printed when it returns no rows)
//! SELECT …
//! ```
//!
//! A user's own folder (`--queries DIR`) adds or replaces queries; `--view NAME=SQL` defines one
//! for a single run (e.g. to feed another group's volume table to the saved views).

use std::collections::BTreeMap;

use super::QueryError;
use super::params::ParamDecl;

/// The queries shipped with cinestream (the files in `pipelines/queries/`).
const BUILTIN: &[(&str, &str)] = &[
    ("pixel_counts", include_str!("../../pipelines/queries/pixel_counts.sql")),
    ("frame_volumes", include_str!("../../pipelines/queries/frame_volumes.sql")),
    ("volumes", include_str!("../../pipelines/queries/volumes.sql")),
    ("truth", include_str!("../../pipelines/queries/truth.sql")),
    ("kaggle_truth", include_str!("../../pipelines/queries/kaggle_truth.sql")),
    ("label_quality", include_str!("../../pipelines/queries/label_quality.sql")),
    ("confidence_sets", include_str!("../../pipelines/queries/confidence_sets.sql")),
    ("confidence_frames", include_str!("../../pipelines/queries/confidence_frames.sql")),
    ("esed_frames", include_str!("../../pipelines/queries/esed_frames.sql")),
    ("esed_ties", include_str!("../../pipelines/queries/esed_ties.sql")),
    ("dataset_esed", include_str!("../../pipelines/queries/dataset_esed.sql")),
    ("subset_pool", include_str!("../../pipelines/queries/subset_pool.sql")),
    ("subset_volunteers", include_str!("../../pipelines/queries/subset_volunteers.sql")),
    ("subset_images", include_str!("../../pipelines/queries/subset_images.sql")),
    ("subset_esed", include_str!("../../pipelines/queries/subset_esed.sql")),
    ("subset_random_esed", include_str!("../../pipelines/queries/subset_random_esed.sql")),
    ("ef_errors", include_str!("../../pipelines/queries/ef_errors.sql")),
    ("ef_error_stats", include_str!("../../pipelines/queries/ef_error_stats.sql")),
    ("study_summary", include_str!("../../pipelines/queries/study_summary.sql")),
    ("authors_study_log", include_str!("../../pipelines/queries/authors_study_log.sql")),
];

/// One saved query.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedQuery {
    pub name: String,
    /// Where it came from (`pipelines/queries/x.sql`, a user file, or `--view`).
    pub origin: String,
    /// The header's first line.
    pub summary: String,
    /// The header's other prose lines.
    pub description: String,
    pub params: Vec<ParamDecl>,
    pub examples: Vec<String>,
    /// What an empty result means (`@empty`), said when the query, run by name, returns no rows.
    pub empty: Option<String>,
    /// The whole file, header included (comments are valid SQL).
    pub sql: String,
}

impl SavedQuery {
    /// Parses a query file's header.
    pub fn parse(name: &str, origin: &str, text: &str) -> Result<Self, QueryError> {
        let bad = |message: String| QueryError::SavedQuery { name: name.into(), origin: origin.into(), message };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(bad("a saved query's name (its file name) must be lower-case letters, digits and _".into()));
        }
        let mut summary = None;
        let mut description = Vec::new();
        let mut params = Vec::new();
        let mut examples = Vec::new();
        let mut empty: Option<String> = None;
        for line in text.lines().map(str::trim).take_while(|l| l.starts_with("--")) {
            let body = line.trim_start_matches('-').trim();
            if let Some(rest) = body.strip_prefix("@param") {
                params.push(ParamDecl::parse(rest.trim()).map_err(|e| QueryError::SavedQueryParam {
                    name: name.into(),
                    origin: origin.into(),
                    source: Box::new(e),
                })?);
            } else if let Some(rest) = body.strip_prefix("@example") {
                examples.push(rest.trim().to_string());
            } else if let Some(rest) = body.strip_prefix("@empty") {
                let text = empty.get_or_insert_with(String::new);
                text.push_str(if text.is_empty() { "" } else { " " });
                text.push_str(rest.trim());
            } else if body.starts_with('@') {
                return Err(bad(format!("unknown header tag in `{line}`: use @param, @example or @empty")));
            } else if summary.is_none() {
                if body.is_empty() {
                    continue;
                }
                summary = Some(body.to_string());
            } else {
                description.push(body.to_string());
            }
        }
        let summary = summary.ok_or_else(|| bad("the file must start with a `-- …` line saying what the query returns".into()))?;
        let body_empty = text.lines().map(str::trim).all(|l| l.is_empty() || l.starts_with("--"));
        if body_empty {
            return Err(bad("no SQL after the header".into()));
        }
        let description = description.join("\n").trim().to_string();
        Ok(SavedQuery { name: name.into(), origin: origin.into(), summary, description, params, examples, empty, sql: text.to_string() })
    }
}

/// Every saved query a session knows, by name.
#[derive(Debug, Clone)]
pub struct Catalog {
    queries: BTreeMap<String, SavedQuery>,
}

impl Catalog {
    /// The built-in queries.
    pub fn builtin() -> Self {
        let queries = BUILTIN
            .iter()
            .map(|(name, text)| {
                let q = SavedQuery::parse(name, &format!("pipelines/queries/{name}.sql"), text).expect("built-in queries parse (tested)");
                (name.to_string(), q)
            })
            .collect();
        Catalog { queries }
    }

    /// Adds (or replaces) the `*.sql` files of a local folder.
    pub fn add_dir(&mut self, dir: &std::path::Path) -> Result<(), QueryError> {
        let io = |source: std::io::Error| QueryError::SavedQueryRead { origin: dir.display().to_string(), source };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("sql") {
                continue;
            }
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| QueryError::SavedQueryRead { origin: origin.clone(), source })?;
            self.insert(SavedQuery::parse(&name, &origin, &text)?);
        }
        Ok(())
    }

    /// Defines a query for this run (`--view NAME=SQL`).
    pub fn define(&mut self, name: &str, sql: &str) -> Result<(), QueryError> {
        let text = format!("-- Defined with --view {name}=….\n{sql}\n");
        self.insert(SavedQuery::parse(name, "--view", &text)?);
        Ok(())
    }

    pub fn insert(&mut self, q: SavedQuery) {
        self.queries.insert(q.name.clone(), q);
    }

    pub fn get(&self, name: &str) -> Option<&SavedQuery> {
        self.queries.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SavedQuery> {
        self.queries.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.queries.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_headers_parse_and_say_what_they_return() {
        let c = Catalog::builtin();
        for q in c.iter() {
            assert!(q.summary.len() > 20, "{}: summary too short", q.name);
            assert!(!q.examples.is_empty(), "{}: needs an @example", q.name);
            for p in &q.params {
                assert!(q.sql.contains(&format!("${{{}}}", p.name)), "{}: declares unused parameter {}", q.name, p.name);
                assert!(!p.description.is_empty(), "{}: parameter {} needs a description", q.name, p.name);
            }
        }
    }

    #[test]
    fn header_errors_are_explained() {
        assert!(SavedQuery::parse("x", "t", "SELECT 1").unwrap_err().to_string().contains("must start with"));
        assert!(SavedQuery::parse("x", "t", "-- returns one\n").unwrap_err().to_string().contains("no SQL"));
        assert!(SavedQuery::parse("X-y", "t", "-- r\nSELECT 1").is_err());
        assert!(SavedQuery::parse("x", "t", "-- r\n-- @parm a text = b\nSELECT 1").is_err());
        let q = SavedQuery::parse(
            "x",
            "t",
            "-- Returns one.\n-- More.\n-- @param a text = 'b c' the a\n-- @example cinestream sql x\nSELECT ${a}",
        )
        .unwrap();
        assert_eq!((q.summary.as_str(), q.description.as_str(), q.params[0].default.as_str()), ("Returns one.", "More.", "b c"));
    }
}
