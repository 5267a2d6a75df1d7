//! "Did you mean …?": the closest known name to a mistyped table, column or parameter.

use datafusion::common::SchemaError;
use datafusion::common::utils::datafusion_strsim::levenshtein;
use datafusion::error::DataFusionError;

/// The candidate closest to `name` (case-insensitive edit distance), if any is close enough to
/// be a plausible typo or a shortened name (`edv` for `edv_ml`).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| {
            let lc = c.to_lowercase();
            let prefix = lower.len() >= 3 && (lc.starts_with(&lower) || lower.starts_with(&lc));
            (if prefix { 1 } else { levenshtein(&lower, &lc) }, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

/// A DataFusion error as a message for people, where there is a better one than DataFusion's:
/// unknown columns and tables get the closest known name, a CSV value of the wrong type says how
/// to declare its column. `tables` lists what the session can resolve.
pub fn explain(err: &DataFusionError, tables: &[String]) -> Option<String> {
    let root = err.find_root();
    if let DataFusionError::SchemaError(schema_error, _) = root
        && let SchemaError::FieldNotFound { field, valid_fields } = schema_error.as_ref()
    {
        let names: Vec<String> = valid_fields.iter().map(|c| c.name.clone()).collect();
        let hint = closest(&field.name, names.iter().map(String::as_str)).map(|c| format!(" — did you mean `{c}`?")).unwrap_or_default();
        let mut known = names.clone();
        known.sort();
        known.dedup();
        return Some(format!("no column `{}`{hint} (columns here: {})", field.name, known.join(", ")));
    }
    let text = root.to_string();
    if let Some(name) = missing_table(&text) {
        let hint = closest(name, tables.iter().map(String::as_str)).map(|c| format!(" — did you mean `{c}`?")).unwrap_or_default();
        return Some(format!("no table `{name}`{hint} (tables: {}; add others with --table NAME=URL)", tables.join(", ")));
    }
    let hint = value_hint(&text);
    (!hint.is_empty()).then(|| text + hint)
}

/// DataFusion's error as its root cause says it (without the context layers DataFusion wraps
/// around it), keeping the root's own source: a storage error stays reachable by
/// [`crate::store::transient`].
#[derive(Debug)]
pub struct Root(pub DataFusionError);

impl std::fmt::Display for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.find_root().fmt(f)
    }
}

impl std::error::Error for Root {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.find_root().source()
    }
}

/// A CSV/TSV value its column's type does not allow (Arrow: "Error while parsing value … as type
/// …"): says how to declare the column's type.
pub fn value_hint(text: &str) -> &'static str {
    if text.contains("Error while parsing value") || text.contains("Parser error") {
        " — a CSV/TSV file of a --table holds a value its column's type does not allow; declare the type: --table NAME=URL:column=text (or int, float, bool)"
    } else {
        ""
    }
}

/// The table name in DataFusion's "table '…' not found" message.
fn missing_table(text: &str) -> Option<&str> {
    let start = text.find("table '")? + "table '".len();
    let end = start + text[start..].find("' not found")?;
    let full = &text[start..end];
    Some(full.rsplit('.').next().unwrap_or(full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_only() {
        let c = ["volumes", "labels", "frame_volumes", "studies"];
        assert_eq!(closest("volume", c), Some("volumes"));
        assert_eq!(closest("Lables", c), Some("labels"));
        assert_eq!(closest("confidence", c), None);
        assert_eq!(closest("edv", ["ed_frame", "edv_ml", "esv_ml"]), Some("edv_ml"));
    }

    #[test]
    fn table_name_from_message() {
        assert_eq!(missing_table("Error during planning: table 'datafusion.public.volums' not found"), Some("volums"));
        assert_eq!(missing_table("something else"), None);
    }
}
