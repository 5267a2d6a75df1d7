//! Slice spacing rules: the spacing is the mode of the rounded differences of slice positions;
//! a gap of about twice the spacing is a missing slice (filled with a copy of the previous
//! slice, as the authors did); a gap of more than 2.5× isolates outliers (the smaller part of
//! the stack is removed); a slice between two regular positions is removed.

use crate::geometry::V3;

use super::slices::Acquisition;
use crate::findings::{Log, Problem, Resolution};

/// A slice location of the regularised stack.
pub enum Slot {
    /// An acquired slice.
    Acquired(Acquisition),
    /// A missing location filled with a copy of the slice before it (apex side).
    CopyOfPrevious,
}

/// The regularised stack (apex first) and its slice spacing.
pub struct Regular {
    pub slots: Vec<Slot>,
    pub spacing_mm: f64,
}

/// Mode of values rounded to `step`; ties go to the smaller value.
pub fn mode_rounded(values: impl IntoIterator<Item = f64>, step: f64) -> Option<f64> {
    let mut keys: Vec<i64> = values.into_iter().map(|v| (v / step).round() as i64).collect();
    keys.sort_unstable();
    let mut best: Option<(i64, usize)> = None;
    let mut i = 0;
    while i < keys.len() {
        let j = keys[i..].iter().take_while(|k| **k == keys[i]).count();
        if best.is_none_or(|(_, n)| j > n) {
            best = Some((keys[i], j));
        }
        i += j;
    }
    best.map(|(k, _)| k as f64 * step)
}

/// The first value (in input order) of the most common bin of `values` rounded to `step`:
/// a real value, for attributes whose exact value matters (pixel spacing).
pub fn mode_value(values: impl IntoIterator<Item = f64> + Clone, step: f64) -> Option<f64> {
    let bin = mode_rounded(values.clone(), step)?;
    values.into_iter().find(|v| ((v / step).round() * step - bin).abs() < step / 2.0)
}

/// Applies the spacing rules to a stack without repeats. `fallback_mm` is used for a
/// single-slice stack (its SliceThickness).
pub fn apply(mut stack: Vec<Acquisition>, axis: V3, fallback_mm: Option<f64>, study_id: &str, log: &mut Log) -> Regular {
    stack.sort_by(|a, b| b.position(axis).total_cmp(&a.position(axis)));
    let positions: Vec<f64> = stack.iter().map(|a| a.position(axis)).collect();
    let diffs: Vec<f64> = positions.windows(2).map(|w| w[0] - w[1]).collect();
    let Some(spacing) = mode_rounded(diffs.iter().copied(), 0.01).filter(|s| *s > 0.0) else {
        let spacing_mm = fallback_mm.unwrap_or(0.0);
        return Regular { slots: stack.into_iter().map(Slot::Acquired).collect(), spacing_mm };
    };

    // Walk apex → base, building segments separated by outlier gaps.
    let mut segments: Vec<Vec<Slot>> = vec![Vec::new()];
    let mut last_pos: Option<f64> = None;
    for a in stack {
        let pos = a.position(axis);
        let Some(prev) = last_pos else {
            segments.last_mut().unwrap().push(Slot::Acquired(a));
            last_pos = Some(pos);
            continue;
        };
        let ratio = (prev - pos) / spacing;
        if ratio < 0.75 {
            log.add(
                study_id,
                Problem::SliceSpacingInterspersed,
                Resolution::SliceRemoved,
                Some(a.first_key()),
                format!("slice at {pos:.2} mm lies {:.2} mm from the previous slice (spacing {spacing:.2} mm)", prev - pos),
                a.images.len(),
            );
            continue;
        }
        if ratio > 2.5 {
            segments.push(Vec::new());
        } else if ratio > 1.25 {
            let missing = (ratio.round() as usize).saturating_sub(1).max(1);
            log.add(
                study_id,
                Problem::MissingSlice,
                Resolution::PreviousSliceCopied,
                Some(a.first_key()),
                format!(
                    "gap of {:.2} mm ({ratio:.2}× the spacing {spacing:.2} mm) before this slice: {missing} location(s) filled",
                    prev - pos
                ),
                0,
            );
            let seg = segments.last_mut().unwrap();
            seg.extend((0..missing).map(|_| Slot::CopyOfPrevious));
        }
        segments.last_mut().unwrap().push(Slot::Acquired(a));
        last_pos = Some(pos);
    }
    // Keep the longest segment (first one on ties); the rest are outliers.
    let best = segments.iter().enumerate().max_by(|(i, a), (j, b)| a.len().cmp(&b.len()).then(j.cmp(i))).map(|(i, _)| i).unwrap_or(0);
    let mut slots = Vec::new();
    for (i, seg) in segments.into_iter().enumerate() {
        if i == best {
            slots = seg;
            continue;
        }
        for slot in seg {
            if let Slot::Acquired(a) = slot {
                log.add(
                    study_id,
                    Problem::SliceSpacingOutlier,
                    Resolution::SliceRemoved,
                    Some(a.first_key()),
                    format!(
                        "slice at {:.2} mm is separated from the stack by more than 2.5× the spacing {spacing:.2} mm",
                        a.position(axis)
                    ),
                    a.images.len(),
                );
            }
        }
    }
    Regular { slots, spacing_mm: spacing }
}

#[cfg(test)]
mod tests {
    use super::mode_rounded;

    #[test]
    fn mode_of_rounded_values() {
        assert_eq!(mode_rounded([10.0, 10.001, 9.999, 20.0], 0.01), Some(10.0));
        assert_eq!(mode_rounded([8.0, 10.0], 0.01), Some(8.0));
        assert_eq!(mode_rounded([], 0.01), None);
        assert_eq!(super::mode_value([1.328125, 1.5, 1.328125], 1e-4), Some(1.328125));
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;
    use crate::curate::testkit::stack;
    use crate::findings::{Log, Problem};

    fn run(zs: &[f64]) -> (Regular, Log) {
        let mut log = Log::default();
        let r = apply(stack(zs, 2), [0.0, 0.0, 1.0], None, "x", &mut log);
        (r, log)
    }

    fn problems(log: &Log) -> Vec<Problem> {
        log.findings.iter().map(|f| f.problem).collect()
    }

    #[test]
    fn regular_stack_is_untouched() {
        let (r, log) = run(&[0.0, 10.0, 20.0, 30.0]);
        assert_eq!((r.slots.len(), r.spacing_mm), (4, 10.0));
        assert!(log.findings.is_empty());
    }

    #[test]
    fn a_double_gap_is_one_missing_slice() {
        let (r, log) = run(&[0.0, 10.0, 30.0, 40.0, 50.0]);
        assert_eq!(r.slots.len(), 6);
        assert!(matches!(r.slots[3], Slot::CopyOfPrevious), "apex first: 50, 40, 30, [copy], 10, 0");
        assert_eq!(problems(&log), vec![Problem::MissingSlice]);
    }

    #[test]
    fn slices_beyond_a_wide_gap_are_outliers() {
        let (r, log) = run(&[0.0, 10.0, 20.0, 30.0, 70.0]);
        assert_eq!(r.slots.len(), 4);
        assert_eq!(problems(&log), vec![Problem::SliceSpacingOutlier]);
        assert_eq!(log.excluded(), 2, "the outlier's two frames are excluded");
    }

    #[test]
    fn interspersed_slices_are_removed() {
        let (r, log) = run(&[0.0, 10.0, 14.0, 20.0, 30.0]);
        assert_eq!((r.slots.len(), r.spacing_mm), (4, 10.0));
        assert_eq!(problems(&log), vec![Problem::SliceSpacingInterspersed]);
    }
}
