//! Agreement of a mask with a reference: the one per-image Dice that training's validation,
//! labelling checks and evaluation all call (docs/science.md §6).

/// Dice of `class` in one image: 2·|P ∩ T| / (|P| + |T|), over pixels paired by position. An
/// image where the class is absent from both scores 1.
pub fn dice<T: PartialEq + Copy>(pred: &[T], truth: &[T], class: T) -> f64 {
    debug_assert_eq!(pred.len(), truth.len(), "Dice of masks of different sizes");
    let (mut inter, mut p, mut t) = (0u64, 0u64, 0u64);
    for (a, b) in pred.iter().zip(truth) {
        let (pa, tb) = (*a == class, *b == class);
        inter += u64::from(pa && tb);
        p += u64::from(pa);
        t += u64::from(tb);
    }
    if p + t == 0 { 1.0 } else { 2.0 * inter as f64 / (p + t) as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_counts_overlap_and_scores_empty_pairs_one() {
        assert_eq!(dice(&[1u8, 1, 0, 0], &[1, 0, 1, 0], 1), 0.5);
        assert_eq!(dice(&[0u8, 2], &[0, 2], 1), 1.0, "absent from both");
        assert_eq!(dice(&[1i64, 0], &[0, 0], 1), 0.0, "present in one only");
    }
}
