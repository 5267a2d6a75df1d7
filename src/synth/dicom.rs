//! Writing one phantom image as a DICOM Part 10 file (explicit VR little endian, MR Image
//! Storage, 16-bit MONOCHROME2), with realistic geometry and timing attributes and planted
//! patient-identifying attributes (so tests can prove none of them leaks into outputs).

use dicom_core::value::{C, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use crate::geometry::Grid;

/// MR Image Storage.
pub const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
/// Explicit VR Little Endian.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// Identifying attributes planted in a phantom study (never to appear in outputs).
#[derive(Debug, Clone)]
pub struct Identity {
    pub patient_name: String,
    pub patient_id: String,
    pub birth_date: String,
    pub address: String,
    pub study_uid: String,
    pub frame_of_reference_uid: String,
    pub uid_root: String,
    pub sex: String,
    pub age: String,
}

impl Identity {
    /// Every planted string that must never reach an output.
    pub fn secrets(&self) -> Vec<String> {
        vec![
            self.patient_name.clone(),
            self.patient_id.clone(),
            self.birth_date.clone(),
            self.address.clone(),
            self.study_uid.clone(),
            self.frame_of_reference_uid.clone(),
            self.uid_root.clone(),
        ]
    }
}

/// Everything that varies per image.
pub struct ImageAttrs<'a> {
    pub identity: &'a Identity,
    pub grid: &'a Grid,
    pub series_number: i32,
    pub instance_number: i32,
    pub trigger_time_ms: f64,
    pub cardiac_images: u32,
    pub acquisition_time_s: f64,
    pub slice_location: f64,
    pub slice_thickness: f64,
    pub field_strength_t: f64,
    pub with_pixels: bool,
}

/// A DS value: a decimal string of at most 16 characters.
pub fn ds(v: f64) -> String {
    for prec in (0..=10).rev() {
        let s = format!("{v:.prec$}");
        let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
        if s.len() <= 16 {
            return if s == "-0" { "0".into() } else { s };
        }
    }
    format!("{v:.0}")
}

fn strs(values: impl IntoIterator<Item = String>) -> PrimitiveValue {
    PrimitiveValue::Strs(values.into_iter().collect::<C<String>>())
}

fn time(seconds: f64) -> String {
    let s = seconds.rem_euclid(86_400.0);
    let (h, m) = ((s / 3600.0) as u32, ((s % 3600.0) / 60.0) as u32);
    format!("{h:02}{m:02}{:09.6}", s % 60.0)
}

/// Encodes one image (`pixels` row-major, `grid.rows × grid.cols`) as DICOM bytes.
pub fn encode(a: &ImageAttrs, pixels: &[u16]) -> Vec<u8> {
    let mut o = InMemDicomObject::new_empty();
    let mut put = |tag: Tag, vr: VR, v: PrimitiveValue| {
        o.put(DataElement::new(tag, vr, v));
    };
    let series_uid = format!("{}.{}", a.identity.uid_root, a.series_number);
    let sop_uid = format!("{}.{}.{}", a.identity.uid_root, a.series_number, a.instance_number);
    let g = a.grid;
    put(tags::SOP_CLASS_UID, VR::UI, MR_IMAGE_STORAGE.into());
    put(tags::SOP_INSTANCE_UID, VR::UI, sop_uid.as_str().into());
    put(tags::STUDY_DATE, VR::DA, "20150601".into());
    put(tags::ACQUISITION_TIME, VR::TM, time(a.acquisition_time_s).into());
    put(tags::MODALITY, VR::CS, "MR".into());
    put(tags::MANUFACTURER, VR::LO, "cinestream-synth".into());
    put(tags::PATIENT_NAME, VR::PN, a.identity.patient_name.as_str().into());
    put(tags::PATIENT_ID, VR::LO, a.identity.patient_id.as_str().into());
    put(tags::PATIENT_BIRTH_DATE, VR::DA, a.identity.birth_date.as_str().into());
    put(tags::PATIENT_SEX, VR::CS, a.identity.sex.as_str().into());
    put(tags::PATIENT_AGE, VR::AS, a.identity.age.as_str().into());
    put(tags::PATIENT_ADDRESS, VR::LO, a.identity.address.as_str().into());
    put(tags::SLICE_THICKNESS, VR::DS, ds(a.slice_thickness).into());
    put(tags::MAGNETIC_FIELD_STRENGTH, VR::DS, ds(a.field_strength_t).into());
    put(tags::TRIGGER_TIME, VR::DS, ds(a.trigger_time_ms).into());
    put(tags::CARDIAC_NUMBER_OF_IMAGES, VR::IS, a.cardiac_images.to_string().into());
    put(tags::STUDY_INSTANCE_UID, VR::UI, a.identity.study_uid.as_str().into());
    put(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.as_str().into());
    put(tags::SERIES_NUMBER, VR::IS, a.series_number.to_string().into());
    put(tags::INSTANCE_NUMBER, VR::IS, a.instance_number.to_string().into());
    put(tags::IMAGE_POSITION_PATIENT, VR::DS, strs(g.origin.iter().map(|v| ds(*v))));
    let o6 = [g.row_dir[0], g.row_dir[1], g.row_dir[2], g.col_dir[0], g.col_dir[1], g.col_dir[2]];
    put(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, strs(o6.iter().map(|v| ds(*v))));
    put(tags::FRAME_OF_REFERENCE_UID, VR::UI, a.identity.frame_of_reference_uid.as_str().into());
    put(tags::SLICE_LOCATION, VR::DS, ds(a.slice_location).into());
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2".into());
    put(tags::ROWS, VR::US, PrimitiveValue::from(g.rows as u16));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(g.cols as u16));
    put(tags::PIXEL_SPACING, VR::DS, strs(g.spacing.iter().map(|v| ds(*v))));
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16));
    put(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0u16));
    if a.with_pixels {
        put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.iter().copied().collect()));
    }
    let file = o
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_VR_LE).implementation_class_uid("1.2.826.0.1.3680043.10.1447"))
        .expect("phantom meta group is complete");
    let mut out = Vec::with_capacity(pixels.len() * 2 + 2048);
    file.write_all(&mut out).expect("writing to memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::ds;

    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        assert_eq!(ds(1.5), "1.5");
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(10.0), "10");
        assert!(ds(-123.4567890123456).len() <= 16);
        assert!((ds(0.123456789012345).parse::<f64>().unwrap() - 0.123456789012345).abs() < 1e-9);
    }
}
