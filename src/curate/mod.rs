//! Curation: one study's images in, one or more consistent image stacks out, plus findings.
//!
//! The rules run in this order, one module each, and every finding goes to `curation_log`:
//!
//! 1. [`slices`]: group images into acquisitions (series × position × orientation);
//! 2. [`orientation`]: most common plane; non-parallel slices removed; in-plane rotations found
//!    (signed angle);
//! 3. [`repeats`]: locations closer than 1 mm keep the later acquisition; repeated complete stacks
//!    split the study;
//! 4. [`spacing`]: slice spacing = mode of rounded position differences; missing slices filled;
//!    outliers and interspersed slices removed;
//! 5. [`frames`]: frames ordered by trigger time, T = mode of CardiacNumberOfImages, missing frames
//!    filled, extra frames removed;
//! 6. [`grid`]: target grid (mode size/spacing, scaled to ≤ 256 px), and per-slice corrections
//!    applied by [`resample`] (bilinear for images, nearest for masks).
//!
//! Slices are ordered along the LV axis, slice 0 the most apical (see
//! [`crate::geometry::APEX_DIRECTION_LPS`]).

pub mod frames;
pub mod grid;
pub mod orientation;
pub mod repeats;
pub mod resample;
pub mod slices;
pub mod spacing;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::geometry::{APEX_DIRECTION_LPS, Grid, add, dot, scale};

use crate::findings::{Finding, Log, Problem, Resolution};
pub use crate::source::study::{SourceImage, StudyInput};

/// An image after its slice's correction, and its mask.
type Corrected = (Arc<Vec<u16>>, Option<Arc<Vec<u8>>>);

/// Curation settings (`[curation]` in a pipeline file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CurationConfig {
    /// Long side limit in pixels; larger studies are scaled down to it.
    pub max_size_px: u32,
    /// Acquisitions closer than this (mm) are repeats of one location.
    pub collision_mm: f64,
    /// Largest angle (degrees) between plane normals that still counts as parallel.
    pub parallel_tolerance_deg: f64,
    /// Fraction of repeated locations above which the whole stack counts as repeated.
    pub repeated_stack_fraction: f64,
}

impl Default for CurationConfig {
    fn default() -> Self {
        Self { max_size_px: 256, collision_mm: 1.0, parallel_tolerance_deg: 1.0, repeated_stack_fraction: 0.6 }
    }
}

impl CurationConfig {
    /// Checks the settings without doing any work.
    pub fn validate(&self) -> Result<(), String> {
        if !(16..=4096).contains(&self.max_size_px) {
            return Err(format!("curation.max_size_px = {} is outside 16..=4096", self.max_size_px));
        }
        if !(self.collision_mm > 0.0 && self.collision_mm < 10.0) {
            return Err(format!("curation.collision_mm = {} must be in (0, 10)", self.collision_mm));
        }
        if !(self.parallel_tolerance_deg > 0.0 && self.parallel_tolerance_deg < 45.0) {
            return Err(format!("curation.parallel_tolerance_deg = {} must be in (0, 45)", self.parallel_tolerance_deg));
        }
        if !(self.repeated_stack_fraction > 0.0 && self.repeated_stack_fraction <= 1.0) {
            return Err(format!("curation.repeated_stack_fraction = {} must be in (0, 1]", self.repeated_stack_fraction));
        }
        Ok(())
    }
}

/// How a frame came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Copied from the previous frame of its slice (missing time point).
    PreviousFrame,
    /// Copied from the previous slice (missing slice location).
    PreviousSlice,
}

impl Fill {
    pub fn as_str(&self) -> &'static str {
        match self {
            Fill::PreviousFrame => "previous_frame",
            Fill::PreviousSlice => "previous_slice",
        }
    }
}

/// One curated 2-D image on the study grid.
#[derive(Debug, Clone)]
pub struct CuratedFrame {
    pub source_key: String,
    pub trigger_time_ms: Option<f64>,
    pub fill: Option<Fill>,
    pub resampled: bool,
    pub pixels: Arc<Vec<u16>>,
    pub mask: Option<Arc<Vec<u8>>>,
}

/// One slice location of a curated stack.
#[derive(Debug, Clone)]
pub struct CuratedSlice {
    /// Position along the apex direction (mm; larger is more apical).
    pub position_mm: f64,
    pub frames: Vec<CuratedFrame>,
}

/// One curated study: `slices × frames` images on one grid.
#[derive(Debug, Clone)]
pub struct CuratedStudy {
    pub study_id: String,
    /// The id of the input study (differs from `study_id` for split repeated stacks).
    pub source_study_id: String,
    pub split: Option<String>,
    /// The grid of slice 0, the most apical (all slices share spacing, size and orientation).
    pub grid: Grid,
    /// Unit vector (LPS) along which `position_mm` grows: towards the apex. Slice k's plane is
    /// slice 0's moved by `position_mm[k] − position_mm[0]` along it.
    pub axis: crate::geometry::V3,
    pub scale_factor: f64,
    pub slice_spacing_mm: f64,
    pub slice_thickness_mm: Option<f64>,
    pub field_strength_t: Option<f64>,
    pub sex: Option<String>,
    pub age_years: Option<f32>,
    pub n_frames: usize,
    pub slices: Vec<CuratedSlice>,
    /// Source files used (not counting copies).
    pub source_files: usize,
}

/// Everything curation produced for one input study.
#[derive(Debug, Default)]
pub struct CurationOutput {
    pub studies: Vec<CuratedStudy>,
    pub findings: Vec<Finding>,
}

fn suffix(i: usize) -> String {
    let mut s = String::new();
    let mut n = i;
    loop {
        s.insert(0, (b'a' + (n % 26) as u8) as char);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s
}

/// Curates one study.
pub fn curate(input: StudyInput, cfg: &CurationConfig) -> CurationOutput {
    let mut log = Log::default();
    let id = input.study_id.clone();
    let n_images = input.images.len();
    let first_header = input.images.first().map(|i| i.header.clone());
    let unusable = |log: &mut Log, why: &str, files: usize| {
        log.add(&id, Problem::UnusableStudy, Resolution::StudyExcluded, None, why.to_string(), files);
    };
    if n_images == 0 {
        return CurationOutput { studies: vec![], findings: log.findings };
    }
    let acqs = slices::group(input.images);
    let Some(oriented) = orientation::apply(acqs, &id, cfg.parallel_tolerance_deg, &mut log) else {
        unusable(&mut log, "no image plane could be determined", n_images);
        return CurationOutput { studies: vec![], findings: log.findings };
    };
    // Axis along which slices are ordered: the plane normal, pointing to the apex.
    let axis = if dot(oriented.normal, APEX_DIRECTION_LPS) >= 0.0 { oriented.normal } else { scale(oriented.normal, -1.0) };
    let rules = repeats::RepeatRules { collision_mm: cfg.collision_mm, stack_fraction: cfg.repeated_stack_fraction };
    let (normal, row_dir) = (oriented.normal, oriented.row_dir);
    let stacks = repeats::apply(oriented.acquisitions, axis, &id, &rules, &mut log);
    let split = stacks.len() > 1;
    let mut studies = Vec::new();
    for (k, stack) in stacks.into_iter().enumerate() {
        let sid = if split { format!("{id}_{}", suffix(k)) } else { id.clone() };
        let files: usize = stack.iter().map(|a| a.images.len()).sum();
        match build_stack(stack, &sid, &id, input.split.clone(), axis, (normal, row_dir), cfg, &mut log) {
            Some(mut s) => {
                if let Some(h) = &first_header {
                    s.sex = h.sex.clone();
                    s.age_years = h.age_years;
                }
                studies.push(s)
            }
            None => unusable(&mut log, "no slice left after curation", files),
        }
    }
    CurationOutput { studies, findings: log.findings }
}

#[allow(clippy::too_many_arguments)]
fn build_stack(
    stack: Vec<slices::Acquisition>,
    sid: &str,
    source_id: &str,
    split: Option<String>,
    axis: crate::geometry::V3,
    (normal, row_dir): (crate::geometry::V3, crate::geometry::V3),
    cfg: &CurationConfig,
    log: &mut Log,
) -> Option<CuratedStudy> {
    let thickness = spacing::mode_rounded(stack.iter().filter_map(|a| a.images.first().and_then(|i| i.header.slice_thickness)), 0.01);
    let field = stack.iter().find_map(|a| a.images.first().and_then(|i| i.header.field_strength_t));
    let regular = spacing::apply(stack, axis, thickness, sid, log);
    let acquired = || {
        regular.slots.iter().filter_map(|s| match s {
            spacing::Slot::Acquired(a) => Some(a),
            spacing::Slot::CopyOfPrevious => None,
        })
    };
    let t = frames::frames_per_cycle(acquired());
    let dt = frames::frame_interval(acquired());
    let study_grid = grid::study_grid(acquired(), row_dir, normal, cfg.max_size_px, sid, log)?;

    let mut out_slices: Vec<CuratedSlice> = Vec::with_capacity(regular.slots.len());
    let mut source_files = 0;
    for slot in regular.slots {
        let mut acq = match slot {
            spacing::Slot::Acquired(a) => a,
            spacing::Slot::CopyOfPrevious => {
                let prev = out_slices.last()?.clone();
                let frames = prev.frames.into_iter().map(|f| CuratedFrame { fill: Some(Fill::PreviousSlice), ..f }).collect();
                // A filled location sits one spacing further from the apex than the slice it copies.
                out_slices.push(CuratedSlice { position_mm: prev.position_mm - regular.spacing_mm, frames });
                continue;
            }
        };
        let refs = frames::order(&mut acq, t, dt, sid, log);
        let (target, resample) = grid::correction(&acq, &study_grid, sid, log);
        source_files += acq.images.len();
        let corrected: Vec<Corrected> = acq
            .images
            .iter()
            .map(|img| {
                if !resample {
                    return (img.pixels.clone(), img.mask.clone());
                }
                let px = resample::bilinear(&img.pixels, &acq.grid, &target);
                let mask = img.mask.as_ref().map(|m| Arc::new(resample::nearest(m, &acq.grid, &target)));
                (Arc::new(px), mask)
            })
            .collect();
        let frames = refs
            .iter()
            .map(|r| {
                let img = &acq.images[r.image];
                let (pixels, mask) = corrected[r.image].clone();
                CuratedFrame {
                    source_key: img.key.clone(),
                    trigger_time_ms: img.header.trigger_time_ms,
                    fill: r.copied.then_some(Fill::PreviousFrame),
                    resampled: resample,
                    pixels,
                    mask,
                }
            })
            .collect();
        out_slices.push(CuratedSlice { position_mm: acq.position(axis), frames });
    }
    if out_slices.is_empty() {
        return None;
    }
    // Slice 0's plane: the reference grid moved along the axis to slice 0's position.
    let reference = study_grid.reference.origin;
    let grid = study_grid.at(add(reference, scale(axis, out_slices[0].position_mm - dot(reference, axis))));
    Some(CuratedStudy {
        study_id: sid.to_string(),
        source_study_id: source_id.to_string(),
        split,
        grid,
        axis,
        scale_factor: study_grid.scale_factor,
        slice_spacing_mm: regular.spacing_mm,
        slice_thickness_mm: thickness,
        field_strength_t: field,
        sex: None,
        age_years: None,
        n_frames: t,
        slices: out_slices,
        source_files,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_suffixes() {
        assert_eq!(super::suffix(0), "a");
        assert_eq!(super::suffix(1), "b");
        assert_eq!(super::suffix(26), "aa");
    }
}

/// Builders for rule tests: images on an axial grid at chosen positions and trigger times.
#[cfg(test)]
pub(crate) mod testkit {
    use std::sync::Arc;

    use super::SourceImage;
    use super::slices::{self, Acquisition};
    use crate::source::header::ImageHeader;

    pub fn image(series: i32, z: f64, trigger_ms: f64, t: u32) -> SourceImage {
        SourceImage {
            key: format!("s/{series}/z{z}/t{trigger_ms}.dcm"),
            series_key: format!("s/{series}"),
            header: ImageHeader {
                study_uid: None,
                series_uid: None,
                series_number: Some(series),
                instance_number: Some((trigger_ms / 10.0) as i32),
                acquisition_time_s: Some(series as f64),
                trigger_time_ms: Some(trigger_ms),
                cardiac_number_of_images: Some(t),
                position: [0.0, 0.0, z],
                orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                pixel_spacing: [1.0, 1.0],
                slice_location: Some(z),
                slice_thickness: Some(8.0),
                field_strength_t: None,
                rows: 4,
                cols: 4,
                sex: None,
                age_years: None,
            },
            pixels: Arc::new(vec![0; 16]),
            mask: None,
        }
    }

    /// One acquisition per position, `t` frames each, 40 ms apart.
    pub fn stack(zs: &[f64], t: u32) -> Vec<Acquisition> {
        let images = zs.iter().enumerate().flat_map(|(i, z)| (0..t).map(move |f| image(i as i32 + 1, *z, f as f64 * 40.0, t))).collect();
        slices::group(images)
    }
}
