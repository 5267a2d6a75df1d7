//! Automatic quality control of a labelled study (the `label_qc` table), in the spirit of
//! ukbb_cardiac's checks and a few more. At the ED and ES frames (docs/science.md §1):
//!
//! - `class_missing`: every class the model labels has at least `min_class_pixels` pixels;
//! - `too_few_slices`: at least `min_slices` slices (or `min_slice_fraction` of them) hold both
//!   LV and MY;
//! - `slice_gap`: the slices with LV and MY are consecutive;
//! - `lv_not_enclosed`: at least `min_lv_enclosed` of the LV's boundary pixels touch MY;
//! - `implausible_volumes`: EDV, ESV and EF lie in plausible ranges;
//! - `ed_far_from_trigger`: ED (the frame of largest LV volume) lies within `ed_max_offset` of the
//!   frames from the first frame, counting around the cycle. An ECG-gated cine starts at the R wave,
//!   so end-diastole is at its first or last frames; a volume curve that peaks mid-cycle means the
//!   masks are wrong at some phase (say, basal slices over-segmented through systole), and its ED,
//!   ES and EF with them, although each frame on its own looks plausible. Checked only where every
//!   frame of the study is labelled.
//!
//! A study whose frames do not cover a whole cycle of every slice still gets ED and ES from the
//! frames it has.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// QC thresholds (`[label.qc]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QcConfig {
    pub min_class_pixels: i64,
    pub min_slices: usize,
    /// Alternatively, this share of the study's slices (the smaller requirement applies).
    pub min_slice_fraction: f64,
    pub min_lv_enclosed: f64,
    pub edv_ml: [f64; 2],
    pub esv_ml: [f64; 2],
    pub ef_pct: [f64; 2],
    /// The ED frame's largest distance from the first frame, as a share of the study's frames,
    /// counted around the cycle (frame T − 1 is 1 frame away); 0.5 turns the check off.
    pub ed_max_offset: f64,
}

impl Default for QcConfig {
    fn default() -> Self {
        QcConfig {
            min_class_pixels: 10,
            min_slices: 6,
            min_slice_fraction: 0.5,
            min_lv_enclosed: 0.75,
            edv_ml: [20.0, 600.0],
            esv_ml: [5.0, 500.0],
            ef_pct: [10.0, 90.0],
            ed_max_offset: 0.2,
        }
    }
}

impl QcConfig {
    pub fn validate(&self) -> Result<(), String> {
        let range =
            |name: &str, r: [f64; 2]| if r[0] < r[1] { Ok(()) } else { Err(format!("qc.{name} must be [low, high] with low < high")) };
        range("edv_ml", self.edv_ml)?;
        range("esv_ml", self.esv_ml)?;
        range("ef_pct", self.ef_pct)?;
        if !(0.0..=1.0).contains(&self.min_slice_fraction) || !(0.0..=1.0).contains(&self.min_lv_enclosed) {
            return Err("qc.min_slice_fraction and qc.min_lv_enclosed are shares in 0…1".into());
        }
        if !(0.0..=0.5).contains(&self.ed_max_offset) {
            return Err("qc.ed_max_offset is a share of the frames in 0…0.5 (0.5 turns the check off)".into());
        }
        Ok(())
    }
}

/// One labelled frame of a study.
pub struct FrameMask<'a> {
    pub slice: usize,
    pub frame: usize,
    pub mask: &'a [u8],
}

/// The QC of one study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QcResult {
    pub passed: bool,
    /// The failed checks, in the order of the module docs.
    pub failures: Vec<&'static str>,
    pub ed_frame: Option<usize>,
    pub es_frame: Option<usize>,
    pub edv_ml: f64,
    pub esv_ml: f64,
    /// `None` when EDV is 0.
    pub ef_pct: Option<f64>,
    /// The fewest pixels of an expected class at ED or ES.
    pub min_class_pixels: i64,
    /// Slices with both LV and MY at ED and at ES.
    pub slices_lv_my_ed: usize,
    pub slices_lv_my_es: usize,
    pub slices: usize,
    pub lv_enclosed: Option<f64>,
}

/// Grid facts the checks need.
pub struct StudyGrid {
    pub h: usize,
    pub w: usize,
    /// Pixel area (mm²) × slice spacing (mm) / 1000: mL per pixel.
    pub ml_per_pixel: f64,
    /// Every frame of the study is labelled (not a selection of some), so the frames are the
    /// whole cycle and `ed_far_from_trigger` applies.
    pub whole_cycle: bool,
}

/// ED = frame of maximum LV volume (ties → highest), ES = minimum (ties → lowest).
pub fn ed_es(volumes: &[(usize, f64)]) -> Option<(usize, usize)> {
    let mut ed = *volumes.first()?;
    let mut es = ed;
    for v in volumes {
        if v.1 >= ed.1 {
            ed = *v;
        }
        if v.1 < es.1 {
            es = *v;
        }
    }
    Some((ed.0, es.0))
}

/// Runs every check on one study's masks; `classes` are the classes the model labels (ours).
pub fn check(frames: &[FrameMask], grid: &StudyGrid, classes: &[u8], cfg: &QcConfig) -> QcResult {
    let mut by_frame: BTreeMap<usize, Vec<&FrameMask>> = BTreeMap::new();
    for f in frames {
        by_frame.entry(f.frame).or_default().push(f);
    }
    let count = |m: &[u8], c: u8| m.iter().filter(|v| **v == c).count() as i64;
    let volumes: Vec<(usize, f64)> =
        by_frame.iter().map(|(t, fs)| (*t, fs.iter().map(|f| count(f.mask, 1)).sum::<i64>() as f64 * grid.ml_per_pixel)).collect();
    let slices = frames.iter().map(|f| f.slice).max().map_or(0, |s| s + 1);
    let Some((ed, es)) = ed_es(&volumes) else {
        return QcResult {
            passed: false,
            failures: vec!["class_missing"],
            ed_frame: None,
            es_frame: None,
            edv_ml: 0.0,
            esv_ml: 0.0,
            ef_pct: None,
            min_class_pixels: 0,
            slices_lv_my_ed: 0,
            slices_lv_my_es: 0,
            slices,
            lv_enclosed: None,
        };
    };
    let vol = |t: usize| volumes.iter().find(|v| v.0 == t).map_or(0.0, |v| v.1);
    let (edv, esv) = (vol(ed), vol(es));
    let ef = (edv > 0.0).then(|| 100.0 * (edv - esv) / edv);

    let mut failures = Vec::new();
    let phases = [&by_frame[&ed], &by_frame[&es]];
    let min_class = phases
        .iter()
        .flat_map(|fs| classes.iter().filter(|c| **c > 0).map(move |c| fs.iter().map(|f| count(f.mask, *c)).sum::<i64>()))
        .min()
        .unwrap_or(0);
    if min_class < cfg.min_class_pixels {
        failures.push("class_missing");
    }
    // Slices with both LV and MY, and whether they are consecutive.
    let with_both = |fs: &[&FrameMask]| -> Vec<usize> {
        let mut s: Vec<usize> = fs.iter().filter(|f| count(f.mask, 1) > 0 && count(f.mask, 2) > 0).map(|f| f.slice).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let (both_ed, both_es) = (with_both(phases[0]), with_both(phases[1]));
    let needed = cfg.min_slices.min((cfg.min_slice_fraction * slices as f64).ceil() as usize).max(1);
    if both_ed.len() < needed || both_es.len() < needed {
        failures.push("too_few_slices");
    }
    let gap = |s: &[usize]| s.windows(2).any(|w| w[1] != w[0] + 1);
    if gap(&both_ed) || gap(&both_es) {
        failures.push("slice_gap");
    }
    let (mut boundary, mut touching) = (0usize, 0usize);
    for f in phases.iter().flat_map(|fs| fs.iter()) {
        let (b, t) = lv_boundary(f.mask, grid.h, grid.w);
        boundary += b;
        touching += t;
    }
    let enclosed = (boundary > 0).then(|| touching as f64 / boundary as f64);
    if enclosed.is_some_and(|e| e < cfg.min_lv_enclosed) {
        failures.push("lv_not_enclosed");
    }
    let within = |v: f64, r: [f64; 2]| v >= r[0] && v <= r[1];
    if !within(edv, cfg.edv_ml) || !within(esv, cfg.esv_ml) || !ef.is_some_and(|e| within(e, cfg.ef_pct)) {
        failures.push("implausible_volumes");
    }
    if grid.whole_cycle && ed_offset(ed, &volumes) > cfg.ed_max_offset {
        failures.push("ed_far_from_trigger");
    }
    QcResult {
        passed: failures.is_empty(),
        failures,
        ed_frame: Some(ed),
        es_frame: Some(es),
        edv_ml: edv,
        esv_ml: esv,
        ef_pct: ef,
        min_class_pixels: min_class,
        slices_lv_my_ed: both_ed.len(),
        slices_lv_my_es: both_es.len(),
        slices,
        lv_enclosed: enclosed,
    }
}

/// The ED frame's distance from the first frame around the cycle, as a share of the frames
/// (`volumes`: one entry per frame of the study, in frame order).
fn ed_offset(ed: usize, volumes: &[(usize, f64)]) -> f64 {
    let n = volumes.len().max(1);
    let k = volumes.iter().position(|v| v.0 == ed).unwrap_or(0);
    k.min(n - k) as f64 / n as f64
}

/// (LV pixels with a 4-neighbour that is not LV or lies outside the image, those of them with a
/// 4-neighbour that is MY).
fn lv_boundary(mask: &[u8], h: usize, w: usize) -> (usize, usize) {
    let (mut boundary, mut touching) = (0, 0);
    for r in 0..h {
        for c in 0..w {
            if mask[r * w + c] != 1 {
                continue;
            }
            let neighbours = [
                (r > 0).then(|| mask[(r - 1) * w + c]),
                (r + 1 < h).then(|| mask[(r + 1) * w + c]),
                (c > 0).then(|| mask[r * w + c - 1]),
                (c + 1 < w).then(|| mask[r * w + c + 1]),
            ];
            if neighbours.iter().any(|n| *n != Some(1)) {
                boundary += 1;
                touching += usize::from(neighbours.contains(&Some(2)));
            }
        }
    }
    (boundary, touching)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `n × n` mask with an LV disc of radius `r` inside an MY ring of width `t`.
    fn ring(n: usize, r: f64, t: f64) -> Vec<u8> {
        let c = n as f64 / 2.0;
        (0..n * n)
            .map(|p| {
                let d = (((p / n) as f64 - c).powi(2) + ((p % n) as f64 - c).powi(2)).sqrt();
                if d <= r {
                    1
                } else if d <= r + t {
                    2
                } else {
                    0
                }
            })
            .collect()
    }

    fn study(radii: &[f64], slices: usize) -> Vec<(usize, usize, Vec<u8>)> {
        (0..slices).flat_map(|s| radii.iter().enumerate().map(move |(t, r)| (s, t, ring(40, *r, 3.0)))).collect()
    }

    fn run(masks: &[(usize, usize, Vec<u8>)], cfg: &QcConfig) -> QcResult {
        run_on(masks, cfg, true)
    }

    fn run_on(masks: &[(usize, usize, Vec<u8>)], cfg: &QcConfig, whole_cycle: bool) -> QcResult {
        let frames: Vec<FrameMask> = masks.iter().map(|(s, t, m)| FrameMask { slice: *s, frame: *t, mask: m }).collect();
        check(&frames, &StudyGrid { h: 40, w: 40, ml_per_pixel: 1.5 * 1.5 * 8.0 / 1000.0, whole_cycle }, &[0, 1, 2], cfg)
    }

    #[test]
    fn a_volume_curve_peaking_mid_cycle_is_flagged() {
        let cfg = QcConfig::default();
        // Ten frames, the largest LV at frame 3: 3 frames (0.3 of the cycle) from the trigger.
        let mid = study(&[7.0, 8.0, 9.0, 10.0, 9.0, 8.0, 7.0, 6.0, 6.0, 6.5], 8);
        let q = run(&mid, &cfg);
        assert_eq!((q.ed_frame, q.es_frame, q.failures.clone()), (Some(3), Some(7), vec!["ed_far_from_trigger"]), "{q:?}");
        assert!(run(&mid, &QcConfig { ed_max_offset: 0.3, ..cfg.clone() }).passed, "exactly at the limit passes");
        assert!(run(&mid, &QcConfig { ed_max_offset: 0.5, ..cfg.clone() }).passed, "0.5 turns the check off");
        assert!(run_on(&mid, &cfg, false).passed, "a selection of frames is not a cycle");
        // Retrospective gating: ED at the second-last of ten frames is 2 frames from the trigger.
        let late = study(&[9.5, 9.0, 8.0, 7.0, 6.0, 6.5, 7.0, 8.0, 10.0, 9.8], 8);
        let q = run(&late, &cfg);
        assert!(q.passed && q.ed_frame == Some(8), "{q:?}");
        assert!(QcConfig { ed_max_offset: 0.6, ..cfg }.validate().is_err());
    }

    #[test]
    fn a_plausible_ring_stack_passes() {
        let q = run(&study(&[10.0, 8.0, 6.0, 7.0, 9.0, 10.0], 8), &QcConfig::default());
        assert!(q.passed, "{q:?}");
        assert_eq!((q.ed_frame, q.es_frame), (Some(5), Some(2)), "ties: ED the later, ES the earlier");
        assert!(q.lv_enclosed.unwrap() > 0.99);
        assert!(q.ef_pct.unwrap() > 50.0);
    }

    #[test]
    fn each_failure_is_named() {
        let cfg = QcConfig::default();
        // Slice 3 without MY: a gap.
        let mut m = study(&[10.0, 6.0], 8);
        for (s, _, mask) in &mut m {
            if *s == 3 {
                mask.iter_mut().filter(|v| **v == 2).for_each(|v| *v = 0);
            }
        }
        let q = run(&m, &cfg);
        assert_eq!(q.failures, vec!["slice_gap"], "{q:?}");
        // No MY in three apical slices: a quarter of the LV boundary and more touches nothing.
        let open: Vec<_> = study(&[10.0, 6.0], 8)
            .into_iter()
            .map(|(s, t, m)| (s, t, m.into_iter().map(|v| if v == 2 && s < 3 { 0 } else { v }).collect()))
            .collect();
        let q = run(&open, &cfg);
        assert_eq!(q.failures, vec!["lv_not_enclosed"], "{q:?}");
        // MY in two of eight slices: fewer than min(6, half of 8).
        let few: Vec<_> = study(&[10.0, 6.0], 8)
            .into_iter()
            .map(|(s, t, m)| (s, t, m.into_iter().map(|v| if v == 2 && s >= 2 { 0 } else { v }).collect()))
            .collect();
        let q = run(&few, &cfg);
        assert!(q.failures.contains(&"too_few_slices") && !q.failures.contains(&"slice_gap"), "{q:?}");
        // No MY anywhere.
        let none: Vec<_> = study(&[10.0, 6.0], 8)
            .into_iter()
            .map(|(s, t, m)| (s, t, m.into_iter().map(|v| if v == 2 { 0 } else { v }).collect()))
            .collect();
        assert!(run(&none, &cfg).failures.contains(&"class_missing"));
        // A constant LV: EF 0.
        assert!(run(&study(&[8.0, 8.0], 8), &cfg).failures.contains(&"implausible_volumes"));
    }
}
