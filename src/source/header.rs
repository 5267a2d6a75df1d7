//! The DICOM attributes cinestream reads from each image, and how they are read.
//!
//! Only geometry, timing and acquisition attributes are kept. Identifying attributes
//! (names, birth dates, UIDs) are read only where grouping needs them (Study/Series UID), and
//! those never leave the process: [`ImageHeader`]'s UIDs are used for grouping and hashed into
//! pseudonymous ids before anything is written.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

/// Where an image's attributes are looked up: a single-frame file's data set, or one frame of a
/// multi-frame file (its functional groups over the file's, see [`crate::source::multiframe`]).
pub trait Attributes {
    fn attribute(&self, tag: dicom_core::Tag) -> Option<&InMemElement>;
}

impl Attributes for InMemDicomObject {
    fn attribute(&self, tag: dicom_core::Tag) -> Option<&InMemElement> {
        // `get`, not `element_opt`: the latter builds an error (with a backtrace) for every
        // absent attribute, which cost a tenth of a multi-frame ingest (perf, 2026-12-06).
        self.get(tag)
    }
}

/// Attributes of one image that curation and the tables need.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageHeader {
    /// StudyInstanceUID — grouping only, never written.
    pub study_uid: Option<String>,
    /// SeriesInstanceUID — grouping only, never written.
    pub series_uid: Option<String>,
    pub series_number: Option<i32>,
    pub instance_number: Option<i32>,
    /// AcquisitionTime as seconds since midnight.
    pub acquisition_time_s: Option<f64>,
    pub trigger_time_ms: Option<f64>,
    pub cardiac_number_of_images: Option<u32>,
    /// ImagePositionPatient (mm, LPS): centre of the first transmitted pixel.
    pub position: [f64; 3],
    /// ImageOrientationPatient: row direction cosines, then column direction cosines.
    pub orientation: [f64; 6],
    /// PixelSpacing: (row spacing, column spacing) in mm.
    pub pixel_spacing: [f64; 2],
    pub slice_location: Option<f64>,
    pub slice_thickness: Option<f64>,
    pub field_strength_t: Option<f64>,
    pub rows: u32,
    pub cols: u32,
    /// PatientSex (M/F/O) — allowed in outputs (not identifying on its own).
    pub sex: Option<String>,
    /// PatientAge in years (from `045Y`, `030M`, …) — allowed in outputs.
    pub age_years: Option<f32>,
}

/// A required attribute is absent or unreadable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("missing or unreadable attribute {name} ({tag})")]
pub struct MissingAttribute {
    pub name: &'static str,
    pub tag: &'static str,
}

pub(crate) fn text(obj: &(impl Attributes + ?Sized), tag: dicom_core::Tag) -> Option<String> {
    let e = obj.attribute(tag)?;
    let s = e.to_str().ok()?;
    let s = s.trim().trim_end_matches('\0').trim();
    (!s.is_empty()).then(|| s.to_string())
}

pub(crate) fn float(obj: &(impl Attributes + ?Sized), tag: dicom_core::Tag) -> Option<f64> {
    obj.attribute(tag)?.to_float64().ok().filter(|v| v.is_finite())
}

pub(crate) fn int(obj: &(impl Attributes + ?Sized), tag: dicom_core::Tag) -> Option<i64> {
    obj.attribute(tag)?.to_int::<i64>().ok()
}

fn floats<const N: usize>(obj: &(impl Attributes + ?Sized), tag: dicom_core::Tag) -> Option<[f64; N]> {
    let v = obj.attribute(tag)?.to_multi_float64().ok()?;
    (v.len() == N && v.iter().all(|x| x.is_finite())).then(|| std::array::from_fn(|i| v[i]))
}

/// A DICOM date-time (`YYYYMMDDHHMMSS.FFFFFF`, with an optional zone) → seconds since midnight.
pub fn parse_dicom_datetime_time(s: &str) -> Option<f64> {
    let s = s.split(['+', '-']).next()?;
    (s.len() > 8).then(|| parse_dicom_time(&s[8..])).flatten()
}

/// `HHMMSS.FFFFFF` (or `HH:MM:SS`) → seconds since midnight.
pub fn parse_dicom_time(s: &str) -> Option<f64> {
    let s: String = s.chars().filter(|c| *c != ':').collect();
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    if whole.len() < 2 || !whole.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let part = |a: usize| whole.get(a..a + 2).and_then(|p| p.parse::<f64>().ok()).unwrap_or(0.0);
    let frac: f64 = if frac.is_empty() { 0.0 } else { format!("0.{frac}").parse().ok()? };
    Some(part(0) * 3600.0 + part(2) * 60.0 + part(4) + frac)
}

/// `045Y` / `030M` / `012W` / `100D` → years.
pub fn parse_dicom_age(s: &str) -> Option<f32> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: f32 = num.parse().ok()?;
    Some(match unit {
        "Y" | "y" => n,
        "M" | "m" => n / 12.0,
        "W" | "w" => n / 52.0,
        "D" | "d" => n / 365.25,
        _ => return None,
    })
}

impl ImageHeader {
    /// Reads the header of an image; geometry attributes are required. Multi-frame files give
    /// each frame's attributes through [`Attributes`]; what only they record is read as well:
    /// the nominal trigger delay (Cardiac Synchronization) where TriggerTime is absent, the frame
    /// acquisition date-time where AcquisitionTime is, and the number of temporal positions
    /// where CardiacNumberOfImages is.
    pub fn read(obj: &(impl Attributes + ?Sized)) -> Result<Self, MissingAttribute> {
        let rows = int(obj, tags::ROWS).filter(|v| *v > 0);
        let cols = int(obj, tags::COLUMNS).filter(|v| *v > 0);
        let (Some(rows), Some(cols)) = (rows, cols) else {
            return Err(MissingAttribute { name: "Rows/Columns", tag: "(0028,0010)/(0028,0011)" });
        };
        let position =
            floats::<3>(obj, tags::IMAGE_POSITION_PATIENT).ok_or(MissingAttribute { name: "ImagePositionPatient", tag: "(0020,0032)" })?;
        let orientation = floats::<6>(obj, tags::IMAGE_ORIENTATION_PATIENT)
            .ok_or(MissingAttribute { name: "ImageOrientationPatient", tag: "(0020,0037)" })?;
        let pixel_spacing = floats::<2>(obj, tags::PIXEL_SPACING)
            .filter(|s| s[0] > 0.0 && s[1] > 0.0)
            .ok_or(MissingAttribute { name: "PixelSpacing", tag: "(0028,0030)" })?;
        Ok(Self {
            study_uid: text(obj, tags::STUDY_INSTANCE_UID),
            series_uid: text(obj, tags::SERIES_INSTANCE_UID),
            series_number: int(obj, tags::SERIES_NUMBER).map(|v| v as i32),
            instance_number: int(obj, tags::INSTANCE_NUMBER).map(|v| v as i32),
            acquisition_time_s: text(obj, tags::ACQUISITION_TIME)
                .and_then(|t| parse_dicom_time(&t))
                .or_else(|| text(obj, tags::FRAME_ACQUISITION_DATE_TIME).and_then(|t| parse_dicom_datetime_time(&t)))
                .or_else(|| text(obj, tags::ACQUISITION_DATE_TIME).and_then(|t| parse_dicom_datetime_time(&t))),
            trigger_time_ms: float(obj, tags::TRIGGER_TIME).or_else(|| float(obj, tags::NOMINAL_CARDIAC_TRIGGER_DELAY_TIME)),
            cardiac_number_of_images: int(obj, tags::CARDIAC_NUMBER_OF_IMAGES)
                .or_else(|| int(obj, tags::NUMBER_OF_TEMPORAL_POSITIONS))
                .filter(|v| *v > 0)
                .map(|v| v as u32),
            position,
            orientation,
            pixel_spacing,
            slice_location: float(obj, tags::SLICE_LOCATION),
            slice_thickness: float(obj, tags::SLICE_THICKNESS),
            field_strength_t: float(obj, tags::MAGNETIC_FIELD_STRENGTH),
            rows: rows as u32,
            cols: cols as u32,
            sex: text(obj, tags::PATIENT_SEX).filter(|s| matches!(s.as_str(), "M" | "F" | "O")),
            age_years: text(obj, tags::PATIENT_AGE).and_then(|a| parse_dicom_age(&a)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_times_and_ages() {
        assert_eq!(parse_dicom_time("101530.5"), Some(10.0 * 3600.0 + 15.0 * 60.0 + 30.5));
        assert_eq!(parse_dicom_time("10:15:30"), Some(36930.0));
        assert_eq!(parse_dicom_time("09"), Some(9.0 * 3600.0));
        assert_eq!(parse_dicom_time("x"), None);
        assert_eq!(parse_dicom_age("045Y"), Some(45.0));
        assert_eq!(parse_dicom_age("006M"), Some(0.5));
        assert_eq!(parse_dicom_age("Y"), None);
        assert_eq!(parse_dicom_datetime_time("20261206101530.5+0100"), Some(10.0 * 3600.0 + 15.0 * 60.0 + 30.5));
        assert_eq!(parse_dicom_datetime_time("20261206"), None);
    }
}
