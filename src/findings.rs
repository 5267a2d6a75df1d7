//! What reading and curation found and did: rows of the `curation_log` table (a leaf: the source
//! stage quarantines files with it, curation logs its rules, ingest writes the rows).
//!
//! Findings are data, not errors: a study with findings is still written (corrected), and a file
//! or slice that a rule removes is counted in `excluded_files`, so that for every run
//! `files seen = frames written from files + files quarantined + files excluded`.

use serde::Serialize;

/// The classes of problem (docs/science.md §4), as written to `curation_log.problem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The file could not be read as a single-frame DICOM image.
    UnreadableFile,
    /// The slice's plane is not parallel to the study's short-axis plane.
    NonParallelPlane,
    /// Parallel plane, but the image is rotated in-plane.
    Rotation,
    /// Two acquisitions less than 1 mm apart.
    RepeatedSliceLocation,
    /// The whole stack was acquired more than once.
    RepeatedStack,
    /// A gap of about twice the slice spacing: one slice location is missing.
    MissingSlice,
    /// A gap of more than 2.5× the slice spacing isolates slices from the stack.
    SliceSpacingOutlier,
    /// A slice lies between two regular positions.
    SliceSpacingInterspersed,
    /// A slice has fewer frames than the study's cardiac cycle.
    MissingTimePoint,
    /// A slice has more frames than the study's cardiac cycle.
    ExtraTimePoints,
    /// A slice's pixel spacing differs from the study's.
    PixelSpacing,
    /// A slice's matrix size differs from the study's.
    ImageSize,
    /// The study's images are larger than the size limit (256 px).
    ImageSizeGt256,
    /// A slice's field of view is shifted in-plane relative to the study's.
    FieldOfView,
    /// Nothing usable is left of the study.
    UnusableStudy,
    /// A label mask does not fit its image.
    LabelMismatch,
}

impl Problem {
    pub fn as_str(&self) -> &'static str {
        match self {
            Problem::UnreadableFile => "unreadable_file",
            Problem::NonParallelPlane => "non_parallel_plane",
            Problem::Rotation => "rotation",
            Problem::RepeatedSliceLocation => "repeated_slice_location",
            Problem::RepeatedStack => "repeated_stack",
            Problem::MissingSlice => "missing_slice",
            Problem::SliceSpacingOutlier => "slice_spacing_outlier",
            Problem::SliceSpacingInterspersed => "slice_spacing_interspersed",
            Problem::MissingTimePoint => "missing_time_point",
            Problem::ExtraTimePoints => "extra_time_points",
            Problem::PixelSpacing => "pixel_spacing",
            Problem::ImageSize => "image_size",
            Problem::ImageSizeGt256 => "image_size_gt_256",
            Problem::FieldOfView => "field_of_view",
            Problem::UnusableStudy => "unusable_study",
            Problem::LabelMismatch => "label_mismatch",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was done about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Quarantined,
    SliceRemoved,
    FramesRemoved,
    Rotated,
    StudySplit,
    PreviousSliceCopied,
    PreviousFrameCopied,
    Rescaled,
    CroppedOrPadded,
    Scaled,
    Resampled,
    StudyExcluded,
    LabelIgnored,
}

impl Resolution {
    pub fn as_str(&self) -> &'static str {
        match self {
            Resolution::Quarantined => "quarantined",
            Resolution::SliceRemoved => "slice removed",
            Resolution::FramesRemoved => "frames removed",
            Resolution::Rotated => "rotated",
            Resolution::StudySplit => "study split",
            Resolution::PreviousSliceCopied => "previous slice copied",
            Resolution::PreviousFrameCopied => "previous frame copied",
            Resolution::Rescaled => "rescaled",
            Resolution::CroppedOrPadded => "cropped/padded",
            Resolution::Scaled => "scaled",
            Resolution::Resampled => "resampled",
            Resolution::StudyExcluded => "study excluded",
            Resolution::LabelIgnored => "label ignored",
        }
    }
}

/// One row of `curation_log`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub study_id: String,
    pub problem: Problem,
    pub resolution: Resolution,
    /// The object (relative to the input prefix) the finding is about, if one.
    pub object_key: Option<String>,
    /// Human-readable specifics (positions, angles, sizes).
    pub detail: String,
    /// Source files this finding removed from the output (quarantined or excluded).
    pub excluded_files: u32,
}

/// Collects findings for one study.
#[derive(Debug, Default)]
pub struct Log {
    pub findings: Vec<Finding>,
}

impl Log {
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        study_id: &str,
        problem: Problem,
        resolution: Resolution,
        object_key: Option<&str>,
        detail: impl Into<String>,
        excluded_files: usize,
    ) {
        let detail = detail.into();
        tracing::debug!(study = study_id, %problem, resolution = resolution.as_str(), detail = %detail, "curation finding");
        self.findings.push(Finding {
            study_id: study_id.to_string(),
            problem,
            resolution,
            object_key: object_key.map(str::to_string),
            detail,
            excluded_files: excluded_files as u32,
        });
    }

    /// Source files removed by the findings so far.
    pub fn excluded(&self) -> usize {
        self.findings.iter().map(|f| f.excluded_files as usize).sum()
    }
}
