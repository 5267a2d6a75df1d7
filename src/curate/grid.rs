//! The study's target grid and the per-slice geometric corrections onto it.
//!
//! The target is the most common matrix size and pixel spacing in the study orientation, placed
//! where the scanner put the most common slice (so a slice with another size or field of view is
//! cropped or padded *by its recorded geometry*, not blindly about its centre). Images whose
//! long side exceeds the size limit make the whole study scale down to that limit.

use crate::geometry::{Grid, V3, add, cross, dot, normalize, scale, sub};

use super::slices::Acquisition;
use super::spacing::{mode_rounded, mode_value};
use crate::findings::{Log, Problem, Resolution};

/// The study grid at the plane through the reference slice, and the scale factor applied
/// (native pixel spacing × scale factor = target pixel spacing; 1 when not scaled).
pub struct StudyGrid {
    pub reference: Grid,
    pub scale_factor: f64,
    /// The most common native pixel spacing (row, column) and size (rows, columns).
    pub native_spacing: [f64; 2],
    pub native_size: (u32, u32),
}

impl StudyGrid {
    /// The target grid in the plane of a slice whose (source) origin is `origin`.
    pub fn at(&self, origin: V3) -> Grid {
        let n = self.reference.normal();
        let shift = dot(sub(origin, self.reference.origin), n);
        Grid { origin: add(self.reference.origin, scale(n, shift)), ..self.reference }
    }
}

/// Chooses the target grid. `acqs` are the stack's acquisitions; `row_dir` and `normal` the
/// study orientation; `max_size` the size limit.
pub fn study_grid<'a>(
    acqs: impl Iterator<Item = &'a Acquisition> + Clone,
    row_dir: V3,
    normal: V3,
    max_size: u32,
    study_id: &str,
    log: &mut Log,
) -> Option<StudyGrid> {
    let size_key = |a: &Acquisition| a.grid.rows as f64 * 100_000.0 + a.grid.cols as f64;
    let size = mode_rounded(acqs.clone().map(size_key), 1.0)?;
    let (rows, cols) = ((size / 100_000.0).floor() as u32, (size % 100_000.0).round() as u32);
    let sr = mode_value(acqs.clone().map(|a| a.grid.spacing[0]), 1e-4)?;
    let sc = mode_value(acqs.clone().map(|a| a.grid.spacing[1]), 1e-4)?;
    let aligned = |a: &&Acquisition| a.rotation_deg.is_none() && a.grid.rows == rows && a.grid.cols == cols;
    let reference = acqs.clone().find(aligned).or_else(|| acqs.clone().next())?;
    let col_dir = normalize(cross(normal, row_dir));
    let mut grid = Grid { origin: reference.grid.origin, row_dir, col_dir, spacing: [sr, sc], rows, cols };
    if reference.rotation_deg.is_some() || reference.grid.rows != rows || reference.grid.cols != cols {
        grid = grid.centred_at(reference.grid.centre(), [sr, sc], rows, cols);
    }
    let long = rows.max(cols);
    let mut scale_factor = 1.0;
    if long > max_size {
        scale_factor = long as f64 / max_size as f64;
        let (r2, c2) = (((rows as f64 / scale_factor).round() as u32).max(1), ((cols as f64 / scale_factor).round() as u32).max(1));
        let spacing = [sr * rows as f64 / r2 as f64, sc * cols as f64 / c2 as f64];
        log.add(
            study_id,
            Problem::ImageSizeGt256,
            Resolution::Scaled,
            Some(reference.first_key()),
            format!("images of {rows}×{cols} px exceed {max_size} px: scaled to {r2}×{c2} px, pixel spacing {:.4}×{:.4} mm (factor {scale_factor:.4})", spacing[0], spacing[1]),
            0,
        );
        grid = grid.recentred(spacing, r2, c2);
    }
    Some(StudyGrid { reference: grid, scale_factor, native_spacing: [sr, sc], native_size: (rows, cols) })
}

/// Logs how an acquisition differs from the study grid (rotation was logged already) and
/// returns its target grid and whether its images must be resampled.
pub fn correction(acq: &Acquisition, study: &StudyGrid, study_id: &str, log: &mut Log) -> (Grid, bool) {
    let target = study.at(acq.grid.origin);
    if acq.grid.same_as(&target, 0.01) {
        return (target, false);
    }
    let key = Some(acq.first_key());
    let (ns, (nr, nc)) = (study.native_spacing, study.native_size);
    let spacing_differs = (0..2).any(|k| (acq.grid.spacing[k] - ns[k]).abs() > 1e-3 * ns[k]);
    let size_differs = acq.grid.rows != nr || acq.grid.cols != nc;
    if spacing_differs {
        log.add(
            study_id,
            Problem::PixelSpacing,
            Resolution::Rescaled,
            key,
            format!(
                "pixel spacing {:.4}×{:.4} mm, {}×{} px where the study has {:.4}×{:.4} mm, {}×{} px: resampled onto the study grid",
                acq.grid.spacing[0], acq.grid.spacing[1], acq.grid.rows, acq.grid.cols, ns[0], ns[1], nr, nc
            ),
            0,
        );
    } else if size_differs {
        log.add(
            study_id,
            Problem::ImageSize,
            Resolution::CroppedOrPadded,
            key,
            format!("{}×{} px where the study has {nr}×{nc} px: cropped/padded by its recorded position", acq.grid.rows, acq.grid.cols),
            0,
        );
    } else if acq.rotation_deg.is_none() && study.scale_factor == 1.0 {
        let (i, j) = acq.grid.index_of(target.origin);
        log.add(
            study_id,
            Problem::FieldOfView,
            Resolution::Resampled,
            key,
            format!("field of view shifted by ({i:.2}, {j:.2}) px relative to the study's: resampled onto the study grid"),
            0,
        );
    }
    (target, true)
}
