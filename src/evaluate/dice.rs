//! Per-image Dice of LV and MY between two labellers' masks (docs/science.md §1: computed per
//! image and averaged; an image where both masks are empty for a class scores 1 for it), and the
//! pairing of the two labellers' masks as they stream from `labels`.

use std::collections::HashMap;

/// Classes scored: LV (1) and MY (2).
pub const CLASSES: [u8; 2] = [1, 2];

/// Dice of one image for LV and MY, and each mask's pixel count per class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageDice {
    pub dice: [f64; 2],
    /// [LV, MY] pixels of the evaluated mask.
    pub pixels: [i64; 2],
    /// [LV, MY] pixels of the reference mask.
    pub reference_pixels: [i64; 2],
}

/// Dice of `a` against `b` (same size) for LV and MY, in one pass.
pub fn dice(a: &[u8], b: &[u8]) -> ImageDice {
    debug_assert_eq!(a.len(), b.len());
    let (mut na, mut nb, mut both) = ([0i64; 2], [0i64; 2], [0i64; 2]);
    for (&x, &y) in a.iter().zip(b) {
        for (k, &c) in CLASSES.iter().enumerate() {
            let (ix, iy) = ((x == c) as i64, (y == c) as i64);
            na[k] += ix;
            nb[k] += iy;
            both[k] += ix & iy;
        }
    }
    let score = |k: usize| {
        if na[k] + nb[k] == 0 { 1.0 } else { 2.0 * both[k] as f64 / (na[k] + nb[k]) as f64 }
    };
    ImageDice { dice: [score(0), score(1)], pixels: na, reference_pixels: nb }
}

/// Where a mask sits and the volume one of its pixels stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskKey {
    pub study_id: String,
    pub slice: i32,
    pub frame: i32,
}

/// A mask waiting for its partner.
struct Waiting {
    mask: Vec<u8>,
    /// mL per pixel: pixel area × slice spacing / 1000.
    ml_per_pixel: f64,
}

/// Pairs masks of the evaluated labeller (`side` 0) and the reference (`side` 1) as they
/// arrive in any order; a pair is scored as soon as both are there, so only unmatched masks
/// are held.
#[derive(Default)]
pub struct Pairing {
    waiting: [HashMap<(String, i32, i32), Waiting>; 2],
}

/// A scored pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub key: MaskKey,
    pub dice: ImageDice,
    pub ml_per_pixel: f64,
}

impl Pairing {
    /// Adds one mask; returns the scored pair when its partner was waiting. A mask whose size
    /// differs from its partner's is an error (the message names the image).
    pub fn add(&mut self, side: usize, key: MaskKey, mask: &[u8], ml_per_pixel: f64) -> Result<Option<Scored>, String> {
        let id = (key.study_id.clone(), key.slice, key.frame);
        let Some(other) = self.waiting[1 - side].remove(&id) else {
            self.waiting[side].insert(id, Waiting { mask: mask.to_vec(), ml_per_pixel });
            return Ok(None);
        };
        if other.mask.len() != mask.len() {
            return Err(format!(
                "study {} slice {} frame {}: the two masks have {} and {} pixels; relabel the study",
                key.study_id,
                key.slice,
                key.frame,
                mask.len(),
                other.mask.len()
            ));
        }
        let (a, b, ml) =
            if side == 0 { (mask, other.mask.as_slice(), ml_per_pixel) } else { (other.mask.as_slice(), mask, other.ml_per_pixel) };
        Ok(Some(Scored { key, dice: dice(a, b), ml_per_pixel: ml }))
    }

    /// Masks still unmatched per side, by study: (evaluated only, reference only).
    pub fn unmatched(&self) -> [HashMap<String, usize>; 2] {
        let count = |m: &HashMap<(String, i32, i32), Waiting>| {
            let mut out: HashMap<String, usize> = HashMap::new();
            for (id, _, _) in m.keys() {
                *out.entry(id.clone()).or_default() += 1;
            }
            out
        };
        [count(&self.waiting[0]), count(&self.waiting[1])]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_by_hand() {
        // a: LV at 0..4, MY at 4..6; b: LV at 2..6, no MY.
        let a = [1, 1, 1, 1, 2, 2, 0, 0];
        let b = [0, 0, 1, 1, 1, 1, 0, 0];
        let d = dice(&a, &b);
        assert_eq!(d.dice, [2.0 * 2.0 / 8.0, 0.0]);
        assert_eq!((d.pixels, d.reference_pixels), ([4, 2], [4, 0]));
        // Both empty for a class: 1.
        assert_eq!(dice(&[0, 3, 0], &[0, 0, 3]).dice, [1.0, 1.0]);
    }

    #[test]
    fn pairs_meet_in_any_order() {
        let mut p = Pairing::default();
        let key = |s: i32| MaskKey { study_id: "7".into(), slice: s, frame: 0 };
        assert!(p.add(1, key(0), &[1, 1], 0.5).unwrap().is_none());
        assert!(p.add(0, key(1), &[1, 0], 0.25).unwrap().is_none());
        let s = p.add(0, key(0), &[1, 0], 0.25).unwrap().unwrap();
        assert_eq!((s.dice.dice[0], s.ml_per_pixel), (2.0 / 3.0, 0.25));
        let un = p.unmatched();
        assert_eq!((un[0].get("7"), un[1].get("7")), (Some(&1), None));
        assert!(p.add(1, key(1), &[1, 1, 1], 0.5).is_err(), "sizes differ");
    }
}
