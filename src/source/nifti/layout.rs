//! What each file of a NIfTI dataset folder is, by the dataset's naming: the cine volume, an
//! expert mask (of one frame, or of every frame), a copy of one phase (ED/ES) of the volume with
//! its mask, the metadata, or something else that is not read.

use serde::{Deserialize, Serialize};

/// NIfTI folder layouts (`--layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Each folder's layout found from its file names.
    #[default]
    Auto,
    /// ACDC: `patientNNN_4d.nii.gz`, `patientNNN_frameNN_gt.nii.gz`, `Info.cfg`.
    Acdc,
    /// M&Ms-1 (`<code>_sa.nii.gz`, `<code>_sa_gt.nii.gz`, the CSV) and M&Ms-2 (`<code>_SA_CINE`,
    /// `<code>_SA_ED[_gt]`, `<code>_SA_ES[_gt]`).
    Mnms,
    /// UK Biobank / ukbb_cardiac: `sa.nii.gz`, `seg_sa.nii.gz`, `sa_ED`/`sa_ES` (what
    /// `cinestream export --format nifti` writes).
    Ukbb,
    /// Any NIfTI files, each a series of the folder's study (e.g. dcm2niix output); no masks.
    Nifti,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Auto => "auto",
            Layout::Acdc => "acdc",
            Layout::Mnms => "mnms",
            Layout::Ukbb => "ukbb",
            Layout::Nifti => "nifti",
        }
    }

    /// The shipped class map its masks use.
    pub fn class_map(self) -> &'static str {
        match self {
            Layout::Acdc => "acdc",
            Layout::Mnms => "mnms",
            _ => "ukbb",
        }
    }
}

/// ED or ES.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Ed,
    Es,
}

/// What a file of a dataset folder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The cine volume (x, y, z, t), or one series of it.
    Image,
    /// An expert mask of one frame (0-based) of the cine volume.
    FrameMask(u32),
    /// Expert masks of every frame (4-D); frames with no labelled voxel are unlabelled.
    SeriesMask,
    /// A copy of the cine volume's ED or ES frame: read to find that frame.
    PhaseImage(Phase),
    /// The expert mask of that copy.
    PhaseMask(Phase),
    /// ACDC's `Info.cfg` (ED/ES, read when planning).
    Info,
    /// Not read, with why.
    NotRead(&'static str),
}

/// Whether a key names a NIfTI file or a dataset's metadata file.
pub fn is_dataset_file(key: &str) -> bool {
    let file = key.rsplit('/').next().unwrap_or(key);
    nifti_base(file).is_some() || file.eq_ignore_ascii_case("info.cfg")
}

/// The file name without `.nii` / `.nii.gz`, if it is a NIfTI file.
fn nifti_base(file: &str) -> Option<&str> {
    let lower = file.to_ascii_lowercase();
    [".nii.gz", ".nii"].iter().find(|e| lower.ends_with(*e)).map(|e| &file[..file.len() - e.len()])
}

/// The layout of a folder from its file names.
pub fn detect(files: &[&str]) -> Layout {
    let bases: Vec<String> = files.iter().filter_map(|f| nifti_base(f)).map(str::to_ascii_lowercase).collect();
    if files.iter().any(|f| f.eq_ignore_ascii_case("info.cfg")) || bases.iter().any(|b| b.ends_with("_4d")) {
        Layout::Acdc
    } else if bases.iter().any(|b| b == "sa") {
        Layout::Ukbb
    } else if bases.iter().any(|b| b.ends_with("_sa") || b.ends_with("_sa_cine")) {
        Layout::Mnms
    } else {
        Layout::Nifti
    }
}

/// A file's stem (what pairs it with its cine volume: the patient part of the name, empty when
/// the folder holds one study) and role under `layout` (never `Auto`).
pub fn role(layout: Layout, file: &str) -> (String, Role) {
    if file.eq_ignore_ascii_case("info.cfg") {
        return (String::new(), if layout == Layout::Acdc { Role::Info } else { Role::NotRead("an Info.cfg outside the ACDC layout") });
    }
    let Some(base) = nifti_base(file) else { return (String::new(), Role::NotRead("not a NIfTI file")) };
    let lower = base.to_ascii_lowercase();
    let stem = |suffix: &str| base[..base.len() - suffix.len()].to_string();
    let ends = |s: &str| lower.ends_with(s);
    let phase = |p: &str| if p == "ed" { Phase::Ed } else { Phase::Es };
    match layout {
        Layout::Acdc => {
            if ends("_4d") {
                return (stem("_4d"), Role::Image);
            }
            let (rest, gt) = match lower.strip_suffix("_gt") {
                Some(r) => (r, true),
                None => (lower.as_str(), false),
            };
            if let Some((patient, n)) = rest.rsplit_once("_frame")
                && let Ok(n) = n.parse::<u32>()
                && n >= 1
            {
                let stem = base[..patient.len()].to_string();
                return (
                    stem,
                    if gt { Role::FrameMask(n - 1) } else { Role::NotRead("a copy of one frame of the 4-D volume, which is read instead") },
                );
            }
            (String::new(), Role::NotRead("not part of the ACDC layout (patientNNN_4d, patientNNN_frameNN[_gt])"))
        }
        Layout::Mnms => {
            for (suffix, role) in [
                ("_sa_gt", Role::SeriesMask),
                ("_sa_cine", Role::Image),
                ("_sa", Role::Image),
                ("_sa_ed_gt", Role::PhaseMask(Phase::Ed)),
                ("_sa_es_gt", Role::PhaseMask(Phase::Es)),
                ("_sa_ed", Role::PhaseImage(Phase::Ed)),
                ("_sa_es", Role::PhaseImage(Phase::Es)),
            ] {
                if ends(suffix) {
                    return (stem(suffix), role);
                }
            }
            (String::new(), Role::NotRead("not a short-axis file of the M&Ms layout (long-axis views are not read)"))
        }
        Layout::Ukbb => match lower.as_str() {
            "sa" => (String::new(), Role::Image),
            "seg_sa" => (String::new(), Role::SeriesMask),
            "sa_ed" | "sa_es" => (String::new(), Role::PhaseImage(phase(&lower[3..]))),
            "seg_sa_ed" | "seg_sa_es" | "label_sa_ed" | "label_sa_es" => (String::new(), Role::PhaseMask(phase(&lower[lower.len() - 2..]))),
            _ => (String::new(), Role::NotRead("not the short-axis stack of the ukbb layout (long-axis and aorta files are not read)")),
        },
        Layout::Nifti | Layout::Auto => (String::new(), Role::Image),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_give_roles_and_stems() {
        let acdc = |f| role(Layout::Acdc, f);
        assert_eq!(acdc("patient001_4d.nii.gz"), ("patient001".into(), Role::Image));
        assert_eq!(acdc("patient001_frame12_gt.nii.gz"), ("patient001".into(), Role::FrameMask(11)));
        assert!(matches!(acdc("patient001_frame01.nii.gz").1, Role::NotRead(_)));
        assert_eq!(acdc("Info.cfg").1, Role::Info);
        let mnms = |f| role(Layout::Mnms, f);
        assert_eq!(mnms("A0S9V9_sa.nii.gz"), ("A0S9V9".into(), Role::Image));
        assert_eq!(mnms("A0S9V9_sa_gt.nii.gz"), ("A0S9V9".into(), Role::SeriesMask));
        assert_eq!(mnms("001_SA_CINE.nii.gz"), ("001".into(), Role::Image));
        assert_eq!(mnms("001_SA_ES_gt.nii.gz"), ("001".into(), Role::PhaseMask(Phase::Es)));
        assert!(matches!(mnms("001_LA_ED.nii.gz").1, Role::NotRead(_)));
        let ukbb = |f| role(Layout::Ukbb, f).1;
        assert_eq!((ukbb("sa.nii.gz"), ukbb("seg_sa.nii.gz")), (Role::Image, Role::SeriesMask));
        assert_eq!((ukbb("sa_ED.nii.gz"), ukbb("seg_sa_ES.nii.gz")), (Role::PhaseImage(Phase::Ed), Role::PhaseMask(Phase::Es)));
        assert_eq!(detect(&["patient001_4d.nii.gz", "Info.cfg"]), Layout::Acdc);
        assert_eq!(detect(&["A_sa.nii.gz", "A_sa_gt.nii.gz"]), Layout::Mnms);
        assert_eq!(detect(&["sa.nii.gz", "seg_sa.nii.gz"]), Layout::Ukbb);
        assert_eq!(detect(&["sax_5_cine.nii.gz", "sax_5_cine.json"]), Layout::Nifti);
        assert!(is_dataset_file("a/b/x.NII.GZ") && is_dataset_file("p/Info.cfg") && !is_dataset_file("a/x.dcm"));
    }
}
