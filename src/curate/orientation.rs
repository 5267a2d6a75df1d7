//! Orientation rules: the study's plane is the most common one; slices in other planes are
//! removed, and slices in the same plane but rotated in-plane are marked for rotation.
//!
//! The authors compared row directions with an unsigned angle, so a +30° and a −30° rotation
//! looked the same; here the angle is signed about the plane normal (right-handed), and the
//! resampler undoes exactly that rotation.

use crate::geometry::{V3, dot, signed_angle_deg};

use super::slices::Acquisition;
use crate::findings::{Log, Problem, Resolution};

/// Result of the orientation rules for one study.
pub struct Oriented {
    pub acquisitions: Vec<Acquisition>,
    /// Normal of the study plane (row × column of the study orientation).
    pub normal: V3,
    /// Row direction of the study orientation.
    pub row_dir: V3,
}

/// Representative of the heaviest cluster of `vectors` (weights), where `same` says two
/// vectors belong together. Ties go to the earliest cluster.
fn mode_vector(vectors: &[(V3, usize)], same: impl Fn(V3, V3) -> bool) -> Option<V3> {
    let mut clusters: Vec<(V3, usize)> = Vec::new();
    for (v, w) in vectors {
        match clusters.iter_mut().find(|(rep, _)| same(*rep, *v)) {
            Some(c) => c.1 += w,
            None => clusters.push((*v, *w)),
        }
    }
    let best = clusters.iter().map(|c| c.1).max()?;
    clusters.into_iter().find(|c| c.1 == best).map(|c| c.0)
}

/// Applies the plane and rotation rules. `parallel_tol_deg` is the largest angle between
/// normals that still counts as parallel.
pub fn apply(acqs: Vec<Acquisition>, study_id: &str, parallel_tol_deg: f64, log: &mut Log) -> Option<Oriented> {
    let cos_tol = parallel_tol_deg.to_radians().cos();
    let normals: Vec<(V3, usize)> = acqs.iter().map(|a| (a.grid.normal(), a.images.len())).collect();
    let normal = mode_vector(&normals, |a, b| dot(a, b) >= cos_tol)?;
    let mut kept = Vec::with_capacity(acqs.len());
    for a in acqs {
        let d = dot(a.grid.normal(), normal);
        if d >= cos_tol {
            kept.push(a);
            continue;
        }
        let detail = if d <= -cos_tol {
            "plane normal reversed (mirrored image) relative to the study's short-axis plane".to_string()
        } else {
            format!("plane tilted {:.1}° from the study's short-axis plane", d.clamp(-1.0, 1.0).acos().to_degrees())
        };
        log.add(study_id, Problem::NonParallelPlane, Resolution::SliceRemoved, Some(a.first_key()), detail, a.images.len());
    }
    let rows: Vec<(V3, usize)> = kept.iter().map(|a| (a.grid.row_dir, a.images.len())).collect();
    let row_dir = mode_vector(&rows, |a, b| dot(a, b) >= 0.5f64.to_radians().cos())?;
    for a in &mut kept {
        if dot(a.grid.row_dir, row_dir) >= 0.5f64.to_radians().cos() {
            continue;
        }
        let angle = signed_angle_deg(row_dir, a.grid.row_dir, normal);
        a.rotation_deg = Some(angle);
        log.add(
            study_id,
            Problem::Rotation,
            Resolution::Rotated,
            Some(a.first_key()),
            format!("in-plane rotation {angle:+.1}° about the plane normal relative to the study orientation; rotated by {:+.1}° onto the study grid", -angle),
            0,
        );
    }
    Some(Oriented { acquisitions: kept, normal, row_dir })
}
