//! Truth volumes from CSV: Kaggle's `Id,Systole,Diastole` (train/validate) and
//! `Id,Volume,Usage` with ids `<id>_Diastole` / `<id>_Systole` (test `solution.csv`).

use std::collections::HashMap;

use object_store::ObjectStoreExt;

use crate::store::{self, StoreOptions, explain};

/// Errors reading truth CSVs.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    #[error("truth CSV `{url}`: {source}")]
    Open { url: String, source: store::StoreError },
    #[error("truth CSV `{url}`: {}", explain(source))]
    Read { url: String, source: object_store::Error },
    #[error("truth CSV `{url}` line {line}: {message}")]
    Parse { url: String, line: usize, message: String },
}

/// Splits `…/dir/file.csv` into the folder URL and the file name.
fn split_url(url: &str) -> (&str, &str) {
    match url.trim_end_matches('/').rsplit_once('/') {
        Some(("", file)) => ("/", file),
        Some((dir, file)) => (dir, file),
        None => (".", url),
    }
}

/// Truth volumes of a study (mL).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub esv_ml: f64,
    pub edv_ml: f64,
}

/// Parses one truth CSV's text.
pub fn parse(url: &str, text: &str) -> Result<HashMap<String, Truth>, TruthError> {
    let err = |line: usize, message: String| TruthError::Parse { url: url.to_string(), line, message };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| err(1, "empty file".into()))?;
    let cols: Vec<String> = header.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
    let idx = |name: &str| cols.iter().position(|c| c == name);
    let mut out: HashMap<String, Truth> = HashMap::new();
    let num = |s: Option<&str>, line: usize, what: &str| -> Result<f64, TruthError> {
        s.map(str::trim)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| err(line, format!("{what} is not a non-negative number")))
    };
    match (idx("id"), idx("systole"), idx("diastole"), idx("volume")) {
        (Some(i), Some(s), Some(d), _) => {
            for (n, l) in lines {
                let f: Vec<&str> = l.split(',').collect();
                let id = f.get(i).map(|v| v.trim().to_string()).ok_or_else(|| err(n + 1, "missing Id".into()))?;
                let t = Truth { esv_ml: num(f.get(s).copied(), n + 1, "Systole")?, edv_ml: num(f.get(d).copied(), n + 1, "Diastole")? };
                out.insert(id, t);
            }
        }
        (Some(i), _, _, Some(v)) => {
            let mut partial: HashMap<String, (Option<f64>, Option<f64>)> = HashMap::new();
            for (n, l) in lines {
                let f: Vec<&str> = l.split(',').collect();
                let raw = f.get(i).map(|v| v.trim()).unwrap_or("");
                let (id, kind) =
                    raw.rsplit_once('_').ok_or_else(|| err(n + 1, format!("Id `{raw}` is not <id>_Systole or <id>_Diastole")))?;
                let value = num(f.get(v).copied(), n + 1, "Volume")?;
                let e = partial.entry(id.to_string()).or_default();
                match kind {
                    "Systole" => e.0 = Some(value),
                    "Diastole" => e.1 = Some(value),
                    other => return Err(err(n + 1, format!("unknown phase `{other}` (Systole or Diastole)"))),
                }
            }
            for (id, (s, d)) in partial {
                if let (Some(esv_ml), Some(edv_ml)) = (s, d) {
                    out.insert(id, Truth { esv_ml, edv_ml });
                }
            }
        }
        _ => return Err(err(1, format!("header `{header}`: expected Id,Systole,Diastole or Id,Volume,Usage"))),
    }
    Ok(out)
}

/// Loads and merges truth CSVs from storage URLs.
pub async fn load(urls: &[String], opts: &StoreOptions) -> Result<HashMap<String, Truth>, TruthError> {
    let mut all = HashMap::new();
    for url in urls {
        let (dir, file) = split_url(url);
        let loc = store::open_existing(dir, opts).map_err(|source| TruthError::Open { url: url.clone(), source })?;
        let path = loc.child(file);
        let read = |source| TruthError::Read { url: url.clone(), source };
        let bytes = loc.store.get(&path).await.map_err(read)?.bytes().await.map_err(read)?;
        let text = String::from_utf8_lossy(&bytes);
        all.extend(parse(url, &text)?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kaggle_formats() {
        let a = parse("t", "Id,Systole,Diastole\n1,108.3,246.7\n").unwrap();
        assert_eq!(a["1"], Truth { esv_ml: 108.3, edv_ml: 246.7 });
        let b = parse("s", "Id,Volume,Usage\n999_Diastole,162.7,Private\n999_Systole,72.9,Private\n").unwrap();
        assert_eq!(b["999"], Truth { esv_ml: 72.9, edv_ml: 162.7 });
        let e = parse("x", "Id,Systole,Diastole\n1,abc,3\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("Systole"), "{e}");
    }
}
