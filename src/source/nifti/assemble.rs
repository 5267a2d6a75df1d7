//! A NIfTI study's files → the images curation receives, with the expert masks attached.
//!
//! Each cine volume (x, y, z, t) becomes `z × t` images named `<file>#<n>`, `n = t·z_count + z + 1`,
//! each with the header a DICOM image would carry: position `origin + z · slice axis`, the
//! orientation and pixel spacing of the affine, `t · pixdim[4]` ms as trigger time (none when
//! the file gives no time unit) and `t + 1` as instance number. Intensities stay as stored
//! when they are integers in 0–65535 (negatives clamped to 0, as for DICOM); fractional ones
//! are scaled to 0–4095, and the summary says so.
//!
//! Masks go through the dataset's class map. A mask that does not fit (shape, place, a value
//! outside the map) is reported and ignored, never half-used. A 4-D mask labels the frames in
//! which it has a labelled voxel; a frame mask (ACDC) or a phase copy's mask (ukbb, M&Ms-2) its
//! frame. Phase copies are matched to the cine frame with identical voxels, which gives ED/ES
//! where the metadata does not.

use std::sync::Arc;

use bytes::Bytes;

use super::NiftiPlan;
use super::layout::{Phase, Role};
use crate::findings::{Finding, Problem, Resolution};
use crate::geometry::{add, cross, dot, norm, scale, sub};
use crate::nifti::read::{Volume, read};
use crate::source::PlannedFile;
use crate::source::header::ImageHeader;
use crate::source::study::SourceImage;

/// What a NIfTI study became.
#[derive(Debug, Default)]
pub struct Assembled {
    pub images: Vec<SourceImage>,
    pub quarantined: Vec<Finding>,
    /// Images beyond the first of each cine volume.
    pub extra_frames: usize,
    /// ED and ES (0-based), from the metadata or the phase copies.
    pub ed_es: Option<[u32; 2]>,
    /// Cine volumes whose intensities were scaled (fractional values).
    pub rescaled: usize,
}

/// The study's first readable cine volume: the one its masks and phase copies belong to.
struct Cine {
    vol: Volume,
    first: usize,
}

/// Builds the study's images and masks. `masks` and `phases` hold the bytes of `plan.masks` and
/// `plan.phases`, in order.
pub fn assemble(study_id: &str, plan: &NiftiPlan, images: Vec<(PlannedFile, Bytes)>, masks: Vec<Bytes>, phases: Vec<Bytes>) -> Assembled {
    let mut out = Assembled::default();
    let mut cine: Option<Cine> = None;
    for (f, bytes) in images {
        let vol = match read(&bytes) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(study = %study_id, object = %f.name, reason = %e, "NIfTI file quarantined");
                out.quarantined.push(finding(study_id, Problem::UnreadableFile, Resolution::Quarantined, &f.name, e.to_string(), 1));
                continue;
            }
        };
        drop(bytes);
        let first = out.images.len();
        out.rescaled += add_images(&mut out.images, &vol, &f) as usize;
        out.extra_frames += vol.dims[2] * vol.dims[3] - 1;
        if cine.is_none() {
            cine = Some(Cine { vol, first });
        }
    }
    let Some(cine) = cine else { return out };
    let t_count = cine.vol.dims[3];
    // Phase copies → frames.
    let mut phase_frame: Vec<(Phase, usize)> = Vec::new();
    for ((f, phase), bytes) in plan.phases.iter().zip(&phases) {
        match read(bytes).map_err(|e| e.to_string()).and_then(|v| frame_of(&cine.vol, &v)) {
            Ok(t) => phase_frame.push((*phase, t)),
            Err(why) => out.quarantined.push(finding(
                study_id,
                Problem::LabelMismatch,
                Resolution::LabelIgnored,
                &f.name,
                format!("{phase:?} copy not used ({why}): its mask is ignored and ED/ES are not taken from it"),
                0,
            )),
        }
    }
    // Masks: 4-D ones first, then frame masks, then phase copies' masks where no frame has one.
    let mut order: Vec<usize> = (0..plan.masks.len()).collect();
    order.sort_by_key(|i| match plan.masks[*i].1 {
        Role::SeriesMask => 0,
        Role::FrameMask(_) => 1,
        _ => 2,
    });
    for i in order {
        let (f, role) = &plan.masks[i];
        let frames = match role {
            Role::SeriesMask => None,
            Role::FrameMask(t) => Some(*t as usize),
            Role::PhaseMask(p) => match phase_frame.iter().find(|(q, _)| q == p) {
                Some((_, t)) => Some(*t),
                None => {
                    out.quarantined.push(finding(
                        study_id,
                        Problem::LabelMismatch,
                        Resolution::LabelIgnored,
                        &f.name,
                        format!("mask of the {p:?} copy, whose frame in the cine volume is unknown: mask ignored"),
                        0,
                    ));
                    continue;
                }
            },
            _ => continue,
        };
        // A frame a 4-D mask already labelled keeps those masks: its copy's mask is not decoded.
        let nz = cine.vol.dims[2];
        if let Some(t) = frames.filter(|t| *t < t_count)
            && (0..nz).all(|z| out.images[cine.first + t * nz + z].mask.is_some())
        {
            continue;
        }
        if let Err(why) = attach(&mut out.images, &cine, &masks[i], frames, plan) {
            tracing::warn!(study = %study_id, object = %f.name, reason = %why, "expert mask ignored");
            out.quarantined.push(finding(
                study_id,
                Problem::LabelMismatch,
                Resolution::LabelIgnored,
                &f.name,
                format!("{why}: mask ignored"),
                0,
            ));
        }
    }
    let from_phases = || {
        let get = |p: Phase| phase_frame.iter().find(|(q, _)| *q == p).map(|(_, t)| *t as u32);
        Some([get(Phase::Ed)?, get(Phase::Es)?])
    };
    out.ed_es = match plan.ed_es {
        Some(e) if e.iter().all(|t| (*t as usize) < t_count) => Some(e),
        Some(e) => {
            tracing::warn!(study = %study_id, ed = e[0], es = e[1], frames = t_count, "the dataset's ED/ES lie outside the cine volume's frames: not recorded");
            from_phases()
        }
        None => from_phases(),
    };
    out
}

fn finding(study: &str, problem: Problem, resolution: Resolution, object: &str, detail: String, excluded: u32) -> Finding {
    Finding { study_id: study.to_string(), problem, resolution, object_key: Some(object.to_string()), detail, excluded_files: excluded }
}

/// Appends the volume's images; returns whether intensities were scaled.
fn add_images(images: &mut Vec<SourceImage>, vol: &Volume, f: &PlannedFile) -> bool {
    let (pixels, scaled) = intensities(vol);
    let p = vol.placement;
    let [nx, ny, nz, nt] = vol.dims;
    let normal = cross(p.row_dir, p.col_dir);
    for t in 0..nt {
        for z in 0..nz {
            let position = add(p.origin, scale(vol.slice_step, z as f64));
            let plane = (t * nz + z) * nx * ny;
            let header = ImageHeader {
                study_uid: None,
                series_uid: None,
                series_number: None,
                instance_number: Some(t as i32 + 1),
                acquisition_time_s: None,
                trigger_time_ms: (p.frame_interval_ms > 0.0).then_some(t as f64 * p.frame_interval_ms),
                cardiac_number_of_images: Some(nt as u32),
                position,
                orientation: [p.row_dir[0], p.row_dir[1], p.row_dir[2], p.col_dir[0], p.col_dir[1], p.col_dir[2]],
                pixel_spacing: [p.spacing[1], p.spacing[0]],
                slice_location: Some(dot(position, normal)),
                slice_thickness: None,
                field_strength_t: None,
                rows: ny as u32,
                cols: nx as u32,
                sex: None,
                age_years: None,
            };
            images.push(SourceImage {
                key: format!("{}#{}", f.name, t * nz + z + 1),
                series_key: f.series_key.clone(),
                header,
                pixels: Arc::new(pixels[plane..plane + nx * ny].to_vec()),
                mask: None,
            });
        }
    }
    scaled
}

/// The volume's values as 16-bit pixels, and whether they had to be scaled.
fn intensities(vol: &Volume) -> (Vec<u16>, bool) {
    if let Some(v) = vol.exact_u16() {
        return (v, false);
    }
    let (mut lo, mut hi, mut integral) = (f64::INFINITY, f64::NEG_INFINITY, true);
    let _: Vec<()> = vol.convert(|x| {
        if x.is_finite() {
            lo = lo.min(x);
            hi = hi.max(x);
            integral &= x.fract() == 0.0;
        }
    });
    if integral && hi <= 65535.0 {
        (vol.convert(|x| if x.is_finite() { x.max(0.0) as u16 } else { 0 }), false)
    } else {
        let s = if hi > 0.0 { 4095.0 / hi } else { 1.0 };
        (vol.convert(|x| if x.is_finite() { (x.max(0.0) * s).round() as u16 } else { 0 }), true)
    }
}

/// The cine frame whose voxels equal the copy's.
fn frame_of(cine: &Volume, copy: &Volume) -> Result<usize, String> {
    if cine.dims[..3] != copy.dims[..3] || copy.dims[3] != 1 {
        return Err(format!("its shape {:?} is not one frame of the cine volume's {:?}", copy.dims, cine.dims));
    }
    let n = copy.voxels();
    // Stored bytes compare when both store alike; otherwise values, the copy's decoded once.
    let values = (!cine.same_encoding(copy)).then(|| copy.convert(|x| x));
    let equal = |t: usize| {
        let range = t * n..(t + 1) * n;
        match &values {
            None => cine.raw(range) == copy.raw(0..n),
            Some(v) => cine.convert_range(range, |x| x) == *v,
        }
    };
    (0..cine.dims[3]).find(|t| equal(*t)).ok_or_else(|| "its voxels equal no frame of the cine volume".to_string())
}

/// Puts a mask's classes on the cine images: on frame `frame`, or (a 4-D mask) on every frame it
/// labels.
fn attach(images: &mut [SourceImage], cine: &Cine, bytes: &Bytes, frame: Option<usize>, plan: &NiftiPlan) -> Result<(), String> {
    let m = read(bytes).map_err(|e| e.to_string())?;
    let [nx, ny, nz, nt] = cine.vol.dims;
    let want_t = if frame.is_some() { 1 } else { nt };
    if m.dims != [nx, ny, nz, want_t] {
        return Err(format!("the mask is {:?} voxels but its image is {:?}", m.dims, [nx, ny, nz, want_t]));
    }
    if let Some(t) = frame.filter(|t| *t >= nt) {
        return Err(format!("it labels frame {} but the cine volume has {nt} frames", t + 1));
    }
    let (a, b) = (m.placement, cine.vol.placement);
    let off = norm(sub(a.origin, b.origin));
    let turned = [(a.row_dir, b.row_dir), (a.col_dir, b.col_dir)].iter().any(|(u, v)| dot(*u, *v) < 0.9999);
    if off > 0.1 * b.spacing[0].min(b.spacing[1]) || turned {
        return Err(format!(
            "the mask's affine places it elsewhere than its image ({off:.2} mm away{})",
            if turned { ", turned" } else { "" }
        ));
    }
    let map = &plan.class_map;
    let (mut bad, mut first_bad) = (0usize, None);
    let classes: Vec<u8> = m.convert(|x| {
        map.class_of(x).unwrap_or_else(|| {
            bad += 1;
            first_bad.get_or_insert(x);
            0
        })
    });
    if let Some(v) = first_bad {
        return Err(format!(
            "label value {v} ({bad} voxels) is outside the class map {}; give the dataset's map with --class-map",
            map.describe()
        ));
    }
    let frame_len = nx * ny * nz;
    let frames: Vec<(usize, usize)> = match frame {
        Some(t) => vec![(t, 0)],
        None => (0..nt).filter(|t| classes[t * frame_len..(t + 1) * frame_len].iter().any(|c| *c != 0)).map(|t| (t, t)).collect(),
    };
    for (t, src) in frames {
        for z in 0..nz {
            let img = &mut images[cine.first + t * nz + z];
            if img.mask.is_none() {
                let at = src * frame_len + z * nx * ny;
                img.mask = Some(Arc::new(classes[at..at + nx * ny].to_vec()));
            }
        }
    }
    Ok(())
}
