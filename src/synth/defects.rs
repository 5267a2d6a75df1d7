//! Curation defects the phantom can plant, each on request.

use std::str::FromStr;

/// One plantable defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Defect {
    /// One frame file of one slice is missing.
    MissingTimePoint,
    /// The mid-ventricular slice location is missing (a gap of 2× the spacing).
    MissingSlice,
    /// One slice location acquired twice (a later series 0.3 mm away).
    RepeatedSlice,
    /// The whole stack acquired twice.
    RepeatedStack,
    /// One slice with 1.25× the pixel spacing and fewer pixels (same field of view).
    Scaled,
    /// One slice with 32 more columns at the same spacing.
    ImageSize,
    /// One slice rotated +90° in-plane and one −90°.
    Rotated90,
    /// One slice rotated +30° in-plane and one −17°.
    RotatedArbitrary,
    /// An extra slice tilted 30° out of the short-axis plane.
    NonParallel,
    /// The whole study at 512 px (over the 256 px limit).
    LargeImage,
    /// Extra files: truncated, not DICOM, zero bytes, no pixel data.
    BrokenFiles,
}

impl Defect {
    pub const ALL: [Defect; 11] = [
        Defect::MissingTimePoint,
        Defect::MissingSlice,
        Defect::RepeatedSlice,
        Defect::RepeatedStack,
        Defect::Scaled,
        Defect::ImageSize,
        Defect::Rotated90,
        Defect::RotatedArbitrary,
        Defect::NonParallel,
        Defect::LargeImage,
        Defect::BrokenFiles,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Defect::MissingTimePoint => "missing_time_point",
            Defect::MissingSlice => "missing_slice",
            Defect::RepeatedSlice => "repeated_slice",
            Defect::RepeatedStack => "repeated_stack",
            Defect::Scaled => "scaled",
            Defect::ImageSize => "image_size",
            Defect::Rotated90 => "rotated_90",
            Defect::RotatedArbitrary => "rotated_arbitrary",
            Defect::NonParallel => "non_parallel",
            Defect::LargeImage => "large_image",
            Defect::BrokenFiles => "broken_files",
        }
    }
}

impl FromStr for Defect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Defect::ALL.iter().copied().find(|d| d.name() == s.trim()).ok_or_else(|| {
            let names: Vec<&str> = Defect::ALL.iter().map(|d| d.name()).collect();
            format!("unknown defect `{s}`; choose from: {}, or `all` / `none`", names.join(", "))
        })
    }
}

/// Parses `all`, `none` or a comma-separated list.
pub fn parse_list(s: &str) -> Result<Vec<Defect>, String> {
    match s.trim() {
        "all" => Ok(Defect::ALL.to_vec()),
        "none" | "" => Ok(Vec::new()),
        list => list.split(',').map(str::parse).collect(),
    }
}
