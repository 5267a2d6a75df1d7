//! One study rebuilt from the tables alone: its curated grid in patient space (`studies`), its
//! images (`frames`) and one labeller's masks (`labels`) as (x, y, z, t) volumes, and the
//! labeller's ED and ES frames (the `volumes` view, so the rule of docs/science.md §1 applies).
//!
//! Each study is read by its own queries (`WHERE study_id = …`, which the tables' statistics
//! prune to the files holding it), so memory is bounded by one study.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};

use super::ViewerError;
use crate::geometry::V3;
use crate::nifti::Placement;
use crate::query::Session;
use crate::query::read::{collect, column, quote};

/// The study ids a run covers, in order: `ids` when given (each must exist in `studies`), else
/// those of `SELECT study_id FROM studies WHERE <filter>` that `labeller` labelled, else every
/// study `labeller` labelled. Returns the ids and the asked-for ids that do not exist.
pub async fn study_ids(
    session: &Session,
    labeller: &str,
    ids: Option<&[String]>,
    filter: Option<&str>,
) -> Result<(Vec<String>, Vec<String>), ViewerError> {
    let labelled = format!("SELECT DISTINCT study_id FROM labels WHERE labeller = {}", quote(labeller));
    let sql = match (ids, filter) {
        (Some(list), _) => {
            let quoted: Vec<String> = list.iter().map(|s| quote(s)).collect();
            format!("SELECT study_id FROM studies WHERE study_id IN ({}) ORDER BY study_id", quoted.join(", "))
        }
        (None, Some(w)) => format!("SELECT study_id FROM studies WHERE ({w}) AND study_id IN ({labelled}) ORDER BY study_id"),
        (None, None) => format!("{labelled} ORDER BY study_id"),
    };
    let mut found = Vec::new();
    for b in collect(session, &sql, "choosing the studies").await? {
        let c = column(&b, "study_id", &DataType::Utf8, "choosing the studies")?;
        found.extend(c.as_string::<i32>().iter().flatten().map(String::from));
    }
    let missing = match ids {
        Some(list) => list.iter().filter(|id| !found.contains(id)).cloned().collect(),
        None => Vec::new(),
    };
    Ok((found, missing))
}

/// One study's volumes.
pub struct Study {
    pub id: String,
    pub slices: usize,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub placement: Placement,
    /// Little-endian u16 voxels, x fastest, then y, z, t (frame-major).
    pub images: Vec<u8>,
    /// One labeller's masks in the same order (0 where it has no mask).
    pub masks: Vec<u8>,
    /// Frames (slice × frame images) the labeller has a mask for.
    pub masked: usize,
    /// Images the tables lack (left black; a curated study has none).
    pub missing_images: usize,
    /// The labeller's ED and ES frames (`volumes`), when it labelled the study.
    pub ed_frame: Option<usize>,
    pub es_frame: Option<usize>,
    /// Largest distance (mm) of a slice from the regular stack the affine describes.
    pub irregularity_mm: f64,
}

impl Study {
    /// Voxels of one frame (all slices).
    pub fn frame_len(&self) -> usize {
        self.slices * self.height * self.width
    }

    /// Byte range of image (slice `z`, frame `t`) in `masks` (×2 in `images`).
    pub fn plane(&self, z: usize, t: usize) -> std::ops::Range<usize> {
        let n = self.height * self.width;
        let start = (t * self.slices + z) * n;
        start..start + n
    }
}

/// The curated grid of `id` from `studies`: (slices, frames, height, width, origin, row and
/// column directions, slice direction, column / row spacing).
struct Geometry {
    slices: usize,
    frames: usize,
    height: usize,
    width: usize,
    origin: V3,
    row_dir: V3,
    col_dir: V3,
    slice_dir: V3,
    spacing_col: f64,
    spacing_row: f64,
    slice_spacing: f64,
}

async fn geometry(session: &Session, id: &str) -> Result<Geometry, ViewerError> {
    let ctx = format!("reading study {id} from `studies`");
    // The 12 geometry columns of `studies` in their documented order, then the spacings.
    let names: Vec<&str> = crate::tables::schemas::STUDY_GEOMETRY
        .iter()
        .map(|(name, _)| *name)
        .chain(["pixel_spacing_col_mm", "pixel_spacing_row_mm", "slice_spacing_mm"])
        .collect();
    let sql = format!("SELECT n_slices, n_frames, height, width, {} FROM studies WHERE study_id = {}", names.join(", "), quote(id));
    let rows = collect(session, &sql, &ctx).await?;
    let b = rows.iter().find(|b| b.num_rows() > 0).ok_or_else(|| ViewerError::NoStudy { study: id.to_string() })?;
    let int = |n: &str| -> Result<usize, ViewerError> {
        Ok(column(b, n, &DataType::Int64, &ctx)?.as_primitive::<Int64Type>().value(0).max(0) as usize)
    };
    let mut v = [0.0; 15];
    for (k, n) in names.iter().enumerate() {
        let c = column(b, n, &DataType::Float64, &ctx)?;
        if c.is_null(0) {
            return Err(ViewerError::NoGeometry { study: id.to_string() });
        }
        v[k] = c.as_primitive::<Float64Type>().value(0);
    }
    Ok(Geometry {
        slices: int("n_slices")?,
        frames: int("n_frames")?,
        height: int("height")?,
        width: int("width")?,
        origin: [v[0], v[1], v[2]],
        row_dir: [v[3], v[4], v[5]],
        col_dir: [v[6], v[7], v[8]],
        slice_dir: [v[9], v[10], v[11]],
        spacing_col: v[12],
        spacing_row: v[13],
        slice_spacing: v[14],
    })
}

/// The median of the differences of consecutive values (0 for fewer than two).
fn median_step(values: &[f64]) -> f64 {
    let mut d: Vec<f64> = values.windows(2).map(|w| w[1] - w[0]).collect();
    if d.is_empty() {
        return 0.0;
    }
    d.sort_by(f64::total_cmp);
    d[d.len() / 2]
}

/// Reads study `id`: images, `labeller`'s masks and its ED/ES frames.
pub async fn read(session: &Session, id: &str, labeller: &str) -> Result<Study, ViewerError> {
    let g = geometry(session, id).await?;
    let n = g.height * g.width;
    let (z_n, t_n) = (g.slices, g.frames);
    let mut images = vec![0u8; z_n * t_n * n * 2];
    let mut seen = vec![false; z_n * t_n];
    let mut location = vec![(0.0, 0usize); z_n];
    let mut trigger = vec![(0.0, 0usize); t_n];
    let ctx = format!("reading the images of study {id}");
    let sql =
        format!("SELECT slice_index, frame_index, slice_location_mm, trigger_time_ms, pixels FROM frames WHERE study_id = {}", quote(id));
    for b in collect(session, &sql, &ctx).await? {
        let (z, t) = (column(&b, "slice_index", &DataType::Int32, &ctx)?, column(&b, "frame_index", &DataType::Int32, &ctx)?);
        let (z, t) = (z.as_primitive::<Int32Type>(), t.as_primitive::<Int32Type>());
        let loc = column(&b, "slice_location_mm", &DataType::Float64, &ctx)?;
        let trig = column(&b, "trigger_time_ms", &DataType::Float64, &ctx)?;
        let (loc, trig) = (loc.as_primitive::<Float64Type>(), trig.as_primitive::<Float64Type>());
        let px = b.column_by_name("pixels").expect("selected").as_binary::<i32>();
        for i in 0..b.num_rows() {
            let (zi, ti) = (z.value(i) as usize, t.value(i) as usize);
            if zi >= z_n || ti >= t_n || px.value(i).len() != n * 2 {
                return Err(ViewerError::Data {
                    study: id.to_string(),
                    message: format!(
                        "image (slice {zi}, frame {ti}) does not fit the study's {z_n} slices × {t_n} frames of {}×{} px; re-ingest the study with --replace",
                        g.height, g.width
                    ),
                });
            }
            let at = (ti * z_n + zi) * n;
            images[at * 2..(at + n) * 2].copy_from_slice(px.value(i));
            seen[ti * z_n + zi] = true;
            location[zi].0 += loc.value(i);
            location[zi].1 += 1;
            if trig.is_valid(i) {
                trigger[ti].0 += trig.value(i);
                trigger[ti].1 += 1;
            }
        }
    }
    let missing_images = seen.iter().filter(|s| !**s).count();
    if missing_images == seen.len() {
        return Err(ViewerError::Data { study: id.to_string(), message: "`frames` has no images of it".into() });
    }
    let mean = |(s, k): (f64, usize)| if k > 0 { Some(s / k as f64) } else { None };
    let locations: Vec<f64> = location.into_iter().filter_map(mean).collect();
    let triggers: Vec<f64> = trigger.into_iter().filter_map(mean).collect();
    // slice_location_mm grows towards the apex, slice 0 is the most apical: the stack's step
    // along slice_direction is the mean decrease per slice.
    let step =
        if locations.len() > 1 { (locations[0] - locations[locations.len() - 1]) / (locations.len() - 1) as f64 } else { g.slice_spacing };
    let irregularity_mm = locations.iter().enumerate().map(|(k, l)| ((locations[0] - l) - k as f64 * step).abs()).fold(0.0, f64::max);

    let mut masks = vec![0u8; z_n * t_n * n];
    let mut masked = 0;
    let ctx = format!("reading the masks of study {id} by labeller `{labeller}`");
    let sql =
        format!("SELECT slice_index, frame_index, mask FROM labels WHERE study_id = {} AND labeller = {}", quote(id), quote(labeller));
    for b in collect(session, &sql, &ctx).await? {
        let (z, t) = (column(&b, "slice_index", &DataType::Int32, &ctx)?, column(&b, "frame_index", &DataType::Int32, &ctx)?);
        let (z, t) = (z.as_primitive::<Int32Type>(), t.as_primitive::<Int32Type>());
        let m = b.column_by_name("mask").expect("selected").as_binary::<i32>();
        for i in 0..b.num_rows() {
            let (zi, ti) = (z.value(i) as usize, t.value(i) as usize);
            if zi >= z_n || ti >= t_n || m.value(i).len() != n {
                return Err(ViewerError::Data {
                    study: id.to_string(),
                    message: format!("`{labeller}`'s mask (slice {zi}, frame {ti}) does not fit the study's grid; relabel the study"),
                });
            }
            let at = (ti * z_n + zi) * n;
            masks[at..at + n].copy_from_slice(m.value(i));
            masked += 1;
        }
    }
    let (ed_frame, es_frame) = if masked > 0 { ed_es(session, id, labeller).await? } else { (None, None) };
    Ok(Study {
        id: id.to_string(),
        slices: z_n,
        frames: t_n,
        height: g.height,
        width: g.width,
        placement: Placement {
            origin: g.origin,
            row_dir: g.row_dir,
            col_dir: g.col_dir,
            slice_dir: g.slice_dir,
            spacing: [g.spacing_col, g.spacing_row, step.abs()],
            frame_interval_ms: median_step(&triggers).max(0.0),
        },
        images,
        masks,
        masked,
        missing_images,
        ed_frame,
        es_frame,
        irregularity_mm,
    })
}

/// The labeller's ED and ES frames of study `id` (the `volumes` view).
pub async fn ed_es(session: &Session, id: &str, labeller: &str) -> Result<(Option<usize>, Option<usize>), ViewerError> {
    let ctx = format!("finding the ED and ES frames of study {id} (`volumes`)");
    let sql = format!("SELECT ed_frame, es_frame FROM volumes WHERE study_id = {} AND labeller = {}", quote(id), quote(labeller));
    let rows = collect(session, &sql, &ctx).await?;
    let Some(b) = rows.iter().find(|b| b.num_rows() > 0) else {
        return Ok((None, None));
    };
    let get = |n: &str| -> Result<Option<usize>, ViewerError> {
        let c = column(b, n, &DataType::Int64, &ctx)?;
        Ok(c.is_valid(0).then(|| c.as_primitive::<Int64Type>().value(0).max(0) as usize))
    };
    Ok((get("ed_frame")?, get("es_frame")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_frame_interval_is_the_median_step() {
        assert_eq!(super::median_step(&[0.0, 30.0, 61.0, 90.0, 120.0]), 30.0);
        assert_eq!(super::median_step(&[5.0]), 0.0);
    }
}
