//! Repeated acquisitions: slices closer than 1 mm, and repeated complete stacks.
//!
//! A single repeated location keeps the later acquisition (higher SeriesNumber, else later
//! AcquisitionTime), as the authors did. When most locations were acquired more than once, the
//! whole stack was repeated: instead of mixing acquisitions, the study is split into one study per
//! repetition (`<id>_a`, `<id>_b`, …), which the authors did by hand for 9 Kaggle studies.

use crate::geometry::V3;

use super::slices::Acquisition;
use crate::findings::{Log, Problem, Resolution};

/// Settings of the repeat rules.
pub struct RepeatRules {
    /// Acquisitions closer than this (mm) are the same location.
    pub collision_mm: f64,
    /// Fraction of locations that must be repeated to call it a repeated stack.
    pub stack_fraction: f64,
}

/// Clusters acquisitions (sorted apex first) whose positions are within `collision_mm`.
fn clusters(mut acqs: Vec<Acquisition>, axis: V3, collision_mm: f64) -> Vec<Vec<Acquisition>> {
    acqs.sort_by(|a, b| b.position(axis).total_cmp(&a.position(axis)));
    let mut out: Vec<Vec<Acquisition>> = Vec::new();
    for a in acqs {
        match out.last_mut() {
            Some(c) if (c[0].position(axis) - a.position(axis)).abs() < collision_mm => c.push(a),
            _ => out.push(vec![a]),
        }
    }
    for c in &mut out {
        c.sort_by(|a, b| a.acquisition_order(b));
    }
    out
}

/// Resolves repeats; returns one stack, or several when the whole stack was repeated.
pub fn apply(acqs: Vec<Acquisition>, axis: V3, study_id: &str, rules: &RepeatRules, log: &mut Log) -> Vec<Vec<Acquisition>> {
    let groups = clusters(acqs, axis, rules.collision_mm);
    let repeated = groups.iter().filter(|c| c.len() > 1).count();
    let n_stacks = groups.iter().map(|c| c.len()).max().unwrap_or(1);
    if groups.len() >= 3 && repeated as f64 >= rules.stack_fraction * groups.len() as f64 {
        log.add(
            study_id,
            Problem::RepeatedStack,
            Resolution::StudySplit,
            None,
            format!(
                "{repeated} of {} slice locations acquired more than once: {n_stacks} complete stacks, split into one study each in acquisition order",
                groups.len()
            ),
            0,
        );
        let mut stacks: Vec<Vec<Acquisition>> = (0..n_stacks).map(|_| Vec::new()).collect();
        for c in groups {
            for (j, a) in c.into_iter().enumerate() {
                stacks[j].push(a);
            }
        }
        return stacks;
    }
    let mut stack = Vec::with_capacity(groups.len());
    for mut c in groups {
        let kept = c.pop().expect("clusters are non-empty");
        for dropped in c {
            log.add(
                study_id,
                Problem::RepeatedSliceLocation,
                Resolution::SliceRemoved,
                Some(dropped.first_key()),
                format!(
                    "slice at {:.2} mm repeats the location of {} ({:.2} mm); kept the later acquisition (series {})",
                    dropped.position(axis),
                    kept.first_key(),
                    kept.position(axis),
                    kept.series_number
                ),
                dropped.images.len(),
            );
        }
        stack.push(kept);
    }
    vec![stack]
}
