//! Agreement of a labeller's study volumes with a reference (another labeller, or the truth):
//! EDV, ESV and EF with signed, absolute and relative differences (docs/science.md §1: a study
//! whose EF cannot be computed counts as an EF error of 100), Bland–Altman statistics, the
//! share of studies with a good EF but bad volumes, and volume differences by slice position
//! (apex → base, the paper's Fig. 4).

use serde::Serialize;

/// A study's volumes as one labeller (or the truth) gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Volumes {
    pub edv_ml: Option<f64>,
    pub esv_ml: Option<f64>,
    pub ed_frame: Option<i64>,
    pub es_frame: Option<i64>,
}

impl Volumes {
    /// EF (%) = 100 × (EDV − ESV) / EDV; none when EDV is not positive or missing.
    pub fn ef_pct(&self) -> Option<f64> {
        match (self.edv_ml, self.esv_ml) {
            (Some(d), Some(s)) if d > 0.0 => Some(100.0 * (d - s) / d),
            _ => None,
        }
    }
}

/// |relative EF error| at most this, …
pub const GOOD_EF: f64 = 0.10;
/// … while a volume is off by more than this: "good EF but bad volumes".
pub const BAD_VOLUME: f64 = 0.20;

/// One row of `evaluation_studies` (Dice columns filled in by the caller).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StudyRow {
    pub study_id: String,
    pub split: Option<String>,
    pub labeller: String,
    pub reference: String,
    pub images: i64,
    pub dice_lv_mean: Option<f64>,
    pub dice_my_mean: Option<f64>,
    pub edv_ml: Option<f64>,
    pub esv_ml: Option<f64>,
    pub ef_pct: Option<f64>,
    pub ed_frame: Option<i64>,
    pub es_frame: Option<i64>,
    pub reference_edv_ml: Option<f64>,
    pub reference_esv_ml: Option<f64>,
    pub reference_ef_pct: Option<f64>,
    pub reference_ed_frame: Option<i64>,
    pub reference_es_frame: Option<i64>,
    pub edv_diff_ml: Option<f64>,
    pub esv_diff_ml: Option<f64>,
    pub ef_diff_pct: Option<f64>,
    pub edv_rel_diff: Option<f64>,
    pub esv_rel_diff: Option<f64>,
    pub ef_rel_diff: Option<f64>,
    pub ef_error_pct: f64,
    pub not_computable: bool,
    pub good_ef_bad_volumes: Option<bool>,
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

fn rel(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b != 0.0).then(|| (a - b) / b)
}

/// Compares `a` (none: the labeller gave no volumes) with the reference `r`.
pub fn compare(study_id: &str, split: Option<String>, labeller: &str, reference: &str, a: Option<Volumes>, r: Volumes) -> StudyRow {
    let v = a.unwrap_or_default();
    let (ef, ref_ef) = (v.ef_pct(), r.ef_pct());
    let ef_diff = diff(ef, ref_ef);
    let (edv_rel, esv_rel, ef_rel) = (rel(v.edv_ml, r.edv_ml), rel(v.esv_ml, r.esv_ml), rel(ef, ref_ef));
    let good_ef_bad_volumes = match (ef_rel, edv_rel, esv_rel) {
        (Some(e), Some(d), Some(s)) => Some(e.abs() <= GOOD_EF && (d.abs() > BAD_VOLUME || s.abs() > BAD_VOLUME)),
        _ => None,
    };
    StudyRow {
        study_id: study_id.to_string(),
        split,
        labeller: labeller.to_string(),
        reference: reference.to_string(),
        edv_ml: v.edv_ml,
        esv_ml: v.esv_ml,
        ef_pct: ef,
        ed_frame: v.ed_frame,
        es_frame: v.es_frame,
        reference_edv_ml: r.edv_ml,
        reference_esv_ml: r.esv_ml,
        reference_ef_pct: ref_ef,
        reference_ed_frame: r.ed_frame,
        reference_es_frame: r.es_frame,
        edv_diff_ml: diff(v.edv_ml, r.edv_ml),
        esv_diff_ml: diff(v.esv_ml, r.esv_ml),
        ef_diff_pct: ef_diff,
        edv_rel_diff: edv_rel,
        esv_rel_diff: esv_rel,
        ef_rel_diff: ef_rel,
        ef_error_pct: ef_diff.map(f64::abs).unwrap_or(100.0),
        not_computable: ef.is_none(),
        good_ef_bad_volumes,
        ..Default::default()
    }
}

/// Bland–Altman statistics of paired measurements: the mean difference and its ±1.96 sd
/// limits of agreement (sample sd).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlandAltman {
    pub n: usize,
    pub mean_diff: f64,
    pub sd_diff: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Bland–Altman statistics of (reference, evaluated) pairs; none for fewer than two.
pub fn bland_altman(pairs: &[(f64, f64)]) -> Option<BlandAltman> {
    let n = pairs.len();
    if n < 2 {
        return None;
    }
    let d: Vec<f64> = pairs.iter().map(|(r, a)| a - r).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    Some(BlandAltman { n, mean_diff: mean, sd_diff: sd, lower: mean - 1.96 * sd, upper: mean + 1.96 * sd })
}

/// Bins of relative slice position, apex (0) → base (1).
pub const POSITION_BINS: usize = 10;

/// Volume differences (evaluated − reference, mL per image) by relative slice position.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlicePositions {
    pub images: [u64; POSITION_BINS],
    pub lv_sum: [f64; POSITION_BINS],
    pub lv_sq: [f64; POSITION_BINS],
    pub my_sum: [f64; POSITION_BINS],
    pub my_sq: [f64; POSITION_BINS],
}

impl SlicePositions {
    /// The bin of slice `index` in a stack of `slices` (a single slice is mid-ventricular).
    pub fn bin(index: i32, slices: i32) -> usize {
        let pos = if slices > 1 { index as f64 / (slices - 1) as f64 } else { 0.5 };
        ((pos * POSITION_BINS as f64).floor() as usize).min(POSITION_BINS - 1)
    }

    pub fn add(&mut self, bin: usize, lv_diff_ml: f64, my_diff_ml: f64) {
        self.images[bin] += 1;
        self.lv_sum[bin] += lv_diff_ml;
        self.lv_sq[bin] += lv_diff_ml * lv_diff_ml;
        self.my_sum[bin] += my_diff_ml;
        self.my_sq[bin] += my_diff_ml * my_diff_ml;
    }

    /// (mean, sample sd) of bin `k` for LV (`lv`) or MY; none when empty.
    pub fn stats(&self, k: usize, lv: bool) -> Option<(f64, f64)> {
        let n = self.images[k] as f64;
        if n == 0.0 {
            return None;
        }
        let (s, q) = if lv { (self.lv_sum[k], self.lv_sq[k]) } else { (self.my_sum[k], self.my_sq[k]) };
        let mean = s / n;
        let sd = if n > 1.0 { ((q - n * mean * mean) / (n - 1.0)).max(0.0).sqrt() } else { 0.0 };
        Some((mean, sd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_and_the_good_ef_bad_volumes_rule() {
        let truth = Volumes { edv_ml: Some(100.0), esv_ml: Some(40.0), ..Default::default() };
        // Both volumes 30% high: EF identical (60%), volumes bad.
        let a = Volumes { edv_ml: Some(130.0), esv_ml: Some(52.0), ..Default::default() };
        let r = compare("1", None, "m", "truth", Some(a), truth);
        assert!((r.ef_pct.unwrap() - 60.0).abs() < 1e-9 && r.ef_error_pct.abs() < 1e-9);
        assert!((r.edv_diff_ml.unwrap() - 30.0).abs() < 1e-9 && (r.edv_rel_diff.unwrap() - 0.3).abs() < 1e-9);
        assert_eq!(r.good_ef_bad_volumes, Some(true));
        // No volumes: EF error 100, not computable.
        let r = compare("2", None, "m", "truth", None, truth);
        assert_eq!((r.ef_error_pct, r.not_computable, r.good_ef_bad_volumes), (100.0, true, None));
        // EDV 0: EF cannot be computed either.
        let zero = Volumes { edv_ml: Some(0.0), esv_ml: Some(0.0), ..Default::default() };
        assert_eq!(compare("3", None, "m", "truth", Some(zero), truth).ef_error_pct, 100.0);
    }

    #[test]
    fn bland_altman_by_hand() {
        let ba = bland_altman(&[(10.0, 12.0), (20.0, 20.0), (30.0, 28.0), (40.0, 44.0)]).unwrap();
        // Differences 2, 0, −2, 4: mean 1, sample sd sqrt(20/3).
        assert!((ba.mean_diff - 1.0).abs() < 1e-12 && (ba.sd_diff - (20.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((ba.upper - (1.0 + 1.96 * ba.sd_diff)).abs() < 1e-12);
        assert!(bland_altman(&[(1.0, 2.0)]).is_none());
    }

    #[test]
    fn slice_positions_run_from_apex_to_base() {
        assert_eq!((SlicePositions::bin(0, 10), SlicePositions::bin(9, 10), SlicePositions::bin(5, 11)), (0, 9, 5));
        let mut p = SlicePositions::default();
        p.add(3, 1.0, 0.0);
        p.add(3, 3.0, 0.0);
        let (m, sd) = p.stats(3, true).unwrap();
        assert!((m - 2.0).abs() < 1e-12 && (sd - 2f64.sqrt()).abs() < 1e-12);
        assert!(p.stats(4, true).is_none());
    }
}
