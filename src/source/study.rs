//! What the source stage hands to curation: a study's images as read, each with its header,
//! its pixels and the mask that came with it, if any.

use std::sync::Arc;

use super::header::ImageHeader;

/// One source image with its optional label mask, as curation receives it.
#[derive(Debug, Clone)]
pub struct SourceImage {
    /// What outputs call the object it came from ([`crate::source::PlannedFile::name`]).
    pub key: String,
    /// Series grouping key (the folder in the Kaggle layout, else a keyed hash of SeriesInstanceUID
    /// or of the folder).
    pub series_key: String,
    pub header: ImageHeader,
    pub pixels: Arc<Vec<u16>>,
    /// Label mask on the image's own grid (0 background, 1 LV, 2 MY, 3 RV), if one was given.
    pub mask: Option<Arc<Vec<u8>>>,
}

/// A study as curation receives it.
#[derive(Debug, Clone)]
pub struct StudyInput {
    pub study_id: String,
    pub split: Option<String>,
    pub images: Vec<SourceImage>,
}
