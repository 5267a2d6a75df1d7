//! Figures made elsewhere that a report shows beside its own (a training run's learning curve):
//! read from any storage URL, named in `--out` by their folder and file so two runs' curves do
//! not collide (`…/models/base/learning_curve.png` → `base_learning_curve.png`).

use super::EvaluateError;
use crate::store::{self, StoreOptions};

/// The name an attached figure gets in the output folder: `<parent folder>_<file>`, or the file
/// alone when the URL has no parent folder.
pub fn attachment_name(url: &str) -> String {
    let mut parts = url.trim_end_matches('/').rsplit('/');
    let (file, parent) = (parts.next().unwrap_or("figure.png"), parts.next().filter(|p| !p.is_empty() && *p != "."));
    parent.map_or(file.to_string(), |p| format!("{p}_{file}"))
}

/// Reads every figure to attach: (its name in the output, its bytes).
pub async fn read_attachments(urls: &[String], opts: &StoreOptions) -> Result<Vec<(String, Vec<u8>)>, EvaluateError> {
    let mut out = Vec::new();
    for url in urls {
        let png = store::read_object(url, opts).await.map_err(|source| EvaluateError::Attachment { url: url.clone(), source })?;
        out.push((attachment_name(url), png.to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_are_named_by_folder_and_file() {
        assert_eq!(attachment_name("./data/models/base/learning_curve.png"), "base_learning_curve.png");
        assert_eq!(attachment_name("s3://b/models/tl2/learning_curve.png"), "tl2_learning_curve.png");
        assert_eq!(attachment_name("curve.png"), "curve.png");
        assert_eq!(attachment_name("./curve.png"), "curve.png");
        assert_eq!(attachment_name("/curve.png"), "curve.png");
    }
}
