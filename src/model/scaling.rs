//! How an image's pixels become the network's 0…1 input: divided by a scale and clipped. The
//! scale is a high percentile of the pixels — of the whole study (default) or of the image —
//! so a few bright pixels do not darken the image. Training and labelling use the same rule,
//! which a model's card records ([`super::card::InputRule`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::pixels::pixel_values;

/// How an image is scaled to 0…1 before augmentation (pixel / scale, clipped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intensity {
    /// One scale per study: the 99.95th percentile of all its pixels (every slice and frame).
    /// A cine stack is one acquisition with one gain, so an apical slice without a bright
    /// blood pool keeps its myocardium as grey as every other slice's. Scaling each image by
    /// itself turned that myocardium nearly white: the phantom demo's model then left 36 of
    /// 44 apical caps without any myocardium.
    #[default]
    Study,
    /// Each image by its own 99.95th percentile.
    Image,
}

/// The percentile a scale maps to 1. A 99.95th percentile ignores a few bright pixels (noise,
/// an artefact) yet keeps a bright structure as small as an apical blood pool (0.2% of a
/// 256×192 image) apart from the myocardium's grey; a 99.5th clipped both to 1.0, and a model
/// could not tell them apart.
pub const SCALE_PERCENTILE: f64 = 0.9995;

/// The value at [`SCALE_PERCENTILE`] of `n` pixels fed in any order and any number of pieces:
/// the smallest of the k largest, k = n − ⌊(n − 1)·p⌋ (the sorted index ⌊(n − 1)·p⌋).
pub struct Percentile {
    k: usize,
    top: BinaryHeap<Reverse<u16>>,
}

impl Percentile {
    pub fn new(n: u64) -> Self {
        let k = (n - ((n.max(1) - 1) as f64 * SCALE_PERCENTILE) as u64).max(1) as usize;
        Percentile { k, top: BinaryHeap::with_capacity(k + 1) }
    }

    pub fn add(&mut self, values: impl Iterator<Item = u16>) {
        for v in values {
            if self.top.len() < self.k {
                self.top.push(Reverse(v));
            } else if self.top.peek().is_some_and(|m| v > m.0) {
                self.top.pop();
                self.top.push(Reverse(v));
            }
        }
    }

    /// The scale: the percentile, at least 1 (an all-black image stays black).
    pub fn scale(&self) -> f32 {
        self.top.peek().map_or(1.0, |m| f32::from(m.0).max(1.0))
    }
}

/// The [`Intensity::Image`] scale of one image (little-endian u16 pixels).
pub fn image_scale(pixels: &[u8]) -> f32 {
    let mut p = Percentile::new((pixels.len() / 2) as u64);
    p.add(pixel_values(pixels));
    p.scale()
}

/// Little-endian u16 pixels → pixel / scale, clipped to 0…1.
pub fn to_unit(pixels: &[u8], scale: f32) -> Vec<f32> {
    pixel_values(pixels).map(|v| (f32::from(v) / scale).clamp(0.0, 1.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn le(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn the_percentile_equals_the_sorted_value_whatever_the_pieces() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for n in [1usize, 7, 1999, 20_000, 123_457] {
            let v: Vec<u16> = (0..n).map(|_| rand::Rng::random_range(&mut rng, 0..4096u16)).collect();
            let mut sorted = v.clone();
            sorted.sort();
            let want = f32::from(sorted[((n - 1) as f64 * SCALE_PERCENTILE) as usize]).max(1.0);
            let mut p = Percentile::new(n as u64);
            for piece in v.chunks(1000) {
                p.add(piece.iter().copied());
            }
            assert_eq!(p.scale(), want, "n = {n}");
            assert_eq!(image_scale(&le(&v)), want, "n = {n}");
        }
        assert_eq!(image_scale(&le(&[0; 100])), 1.0, "black stays black");
    }

    #[test]
    fn image_scaling_keeps_a_small_bright_structure_apart_from_a_larger_grey_one() {
        // 256×192 image: background 100, a "myocardium" of 2% at 300, a "blood pool" of 0.2% at 900.
        let n = 256 * 192;
        let v: Vec<u16> = (0..n)
            .map(|i| {
                if i < n / 500 {
                    900
                } else if i < n / 50 {
                    300
                } else {
                    100
                }
            })
            .collect();
        let s = to_unit(&le(&v), image_scale(&le(&v)));
        assert!(s[0] > 0.99 && (s[n / 100] - 1.0 / 3.0).abs() < 0.01, "blood {} myocardium {}", s[0], s[n / 100]);
    }

    #[test]
    fn image_scaling_ignores_a_few_bright_pixels() {
        let mut v: Vec<u16> = (0..1000).map(|i| (i % 100) as u16).collect();
        v[0] = 60_000;
        let s = to_unit(&le(&v), image_scale(&le(&v)));
        assert!(s[99] > 0.95 && s[0] == 1.0, "{} {}", s[99], s[0]);
    }

    #[test]
    fn study_scaling_keeps_an_apical_cap_as_grey_as_the_myocardium_elsewhere() {
        // Two slices of one study: mid-ventricular (blood 900, myocardium 300, tissue 180) and
        // an apical cap (myocardium 300 in tissue 180, no blood pool).
        let n = 100 * 100;
        let mid: Vec<u16> = (0..n)
            .map(|i| {
                if i < n / 20 {
                    900
                } else if i < n / 10 {
                    300
                } else {
                    180
                }
            })
            .collect();
        let cap: Vec<u16> = (0..n).map(|i| if i < n / 50 { 300 } else { 180 }).collect();
        let mut study = Percentile::new(2 * n as u64);
        study.add(mid.iter().chain(&cap).copied());
        let (m, c) = (to_unit(&le(&mid), study.scale()), to_unit(&le(&cap), study.scale()));
        assert_eq!(m[n / 15], c[0], "one gain for the study");
        assert!((c[0] - 1.0 / 3.0).abs() < 0.01, "cap myocardium {}", c[0]);
        // By itself, the cap's myocardium would be white.
        assert_eq!(to_unit(&le(&cap), image_scale(&le(&cap)))[0], 1.0);
    }
}
