//! Which version of a table a reader wants: the latest, a version, a time, or one version per
//! table (what a selection recorded). `--as-of` on the command line.

use chrono::{DateTime, Utc};

/// Which version a reader wants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AsOf {
    #[default]
    Latest,
    Version(i64),
    /// The latest version committed at or before this time.
    Timestamp(DateTime<Utc>),
    /// One version per table (what a selection recorded); a table not named, or named with
    /// `None`, did not exist then and reads as empty.
    Tables(std::collections::BTreeMap<String, Option<i64>>),
}

impl AsOf {
    /// `--as-of 3`, `--as-of 2026-12-01T12:00:00Z` (RFC 3339; a date alone means its midnight
    /// UTC), or `--as-of frames=3,labels=5,…` (one version per table, as a selection records).
    pub fn parse(text: &str) -> Result<AsOf, String> {
        let t = text.trim();
        if t.contains('=') {
            let mut map = std::collections::BTreeMap::new();
            for part in t.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (table, v) = part.split_once('=').ok_or_else(|| format!("--as-of `{part}`: write TABLE=VERSION"))?;
                let v = v.trim().parse::<i64>().map_err(|_| format!("--as-of `{part}`: the version must be a number"))?;
                map.insert(table.trim().to_string(), Some(v));
            }
            return Ok(AsOf::Tables(map));
        }
        if let Ok(v) = t.parse::<i64>() {
            return if v >= 0 { Ok(AsOf::Version(v)) } else { Err(format!("--as-of {t}: a version is 0 or more")) };
        }
        if let Ok(ts) = DateTime::parse_from_rfc3339(t) {
            return Ok(AsOf::Timestamp(ts.with_timezone(&Utc)));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            return Ok(AsOf::Timestamp(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()));
        }
        Err(format!("--as-of `{t}`: give a table version (e.g. 3) or a time (2026-12-01T12:00:00Z, or 2026-12-01)"))
    }
}

impl std::fmt::Display for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AsOf::Latest => f.write_str("latest"),
            AsOf::Version(v) => write!(f, "version {v}"),
            AsOf::Timestamp(t) => write!(f, "as of {}", t.to_rfc3339()),
            AsOf::Tables(m) => {
                let parts: Vec<String> = m.iter().filter_map(|(t, v)| v.map(|v| format!("{t}={v}"))).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_parses_versions_times_and_dates() {
        assert_eq!(AsOf::parse("3").unwrap(), AsOf::Version(3));
        assert!(matches!(AsOf::parse("2026-12-01T12:00:00Z").unwrap(), AsOf::Timestamp(_)));
        assert_eq!(AsOf::parse("2026-12-01").unwrap(), AsOf::Timestamp("2026-12-01T00:00:00Z".parse().unwrap()));
        assert!(AsOf::parse("-1").is_err());
        assert!(AsOf::parse("yesterday").unwrap_err().contains("--as-of"));
        let tables = AsOf::parse("frames=3, labels=5").unwrap();
        assert_eq!(tables, AsOf::Tables([("frames".to_string(), Some(3)), ("labels".to_string(), Some(5))].into()));
        assert_eq!(tables.to_string(), "frames=3,labels=5");
        assert!(AsOf::parse("frames=x").is_err());
    }
}
