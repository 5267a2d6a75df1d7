//! Pre-processing for a model and its exact inverse for the masks it returns.
//!
//! **Intensity** ([`IntensityRule`]): pixels are mapped to 0…1 by a percentile clip or a
//! min–max over the study, one time point's stack or the image (optionally over the pixels
//! above zero only), optionally followed by ImageNet normalisation.
//!
//! **Size** ([`SizePolicy`]): the image is placed on the model's input grid by an axis-aligned
//! affine map of pixel centres, `input = a·model + b` per axis, sampled bilinearly (zeros
//! outside):
//! - `pad_resize` (fastai's `ResizeMethod.PAD`): the longer side resized to S, the shorter padded
//!   with zeros, centred;
//! - `crop_resize`: the centred square of the shorter side resized to S; with `crop_nonzero`,
//!   first cut to the bounding box of the pixels that are above zero after scaling, over the
//!   time point's whole stack (myopari's `crop_resize_image`), the square's start rounded down;
//! - `pad_multiple` (ukbb_cardiac): zero padding to a multiple of k, `⌊pad/2⌋` before.
//!
//! A mask comes back onto the curated grid through the same map: each curated pixel takes the
//! class of the nearest model pixel to its centre (background where it falls outside the model's
//! grid, as the parts a crop removed).

use serde::{Deserialize, Serialize};

use crate::model::{IMAGENET_MEAN, IMAGENET_STD};
use crate::pixels::pixel_values;

/// Over which pixels a scale is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Over {
    /// Every pixel of every frame of the study (one gain per acquisition).
    Study,
    /// The image's own pixels.
    Image,
    /// Every slice of the image's time point (frame index): the 3-D stack a model trained on
    /// volumes (NIfTI, one file per time point) was scaled by. Label whole time points (e.g.
    /// `--where "frame_index IN (0, 9)"`), or the stack is the planned part of it.
    TimePoint,
}

/// How pixels become 0…1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scaling {
    /// `(v − P_low) / (P_high − P_low)` clipped to 0…1, percentiles in percent (e.g. 0.05 and
    /// 99.05); without `low`, `v / P_high` (zero stays zero: cinestream's own rule, with
    /// `high = 99.95`). The divisor is at least 1. With `nonzero`, the percentiles are of the
    /// pixels above zero only (myopari's `image[image > 0]`).
    Percentile {
        low: Option<f64>,
        high: f64,
        over: Over,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        nonzero: bool,
    },
    /// `(v − min) / (max − min)`.
    MinMax { over: Over },
}

/// Optional normalisation after scaling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalise {
    #[default]
    None,
    /// Per channel `(x − mean) / std` with torchvision's ImageNet statistics (the channel is
    /// replicated to three first).
    Imagenet,
}

/// A model's intensity rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntensityRule {
    pub scaling: Scaling,
    #[serde(default)]
    pub normalise: Normalise,
}

impl IntensityRule {
    pub fn over(&self) -> Over {
        match self.scaling {
            Scaling::Percentile { over, .. } | Scaling::MinMax { over } => over,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Scaling::Percentile { low, high, .. } = self.scaling {
            let ok = |p: f64| (0.0..=100.0).contains(&p);
            if !ok(high) || low.is_some_and(|l| !ok(l) || l >= high) {
                return Err(format!("intensity percentiles must satisfy 0 ≤ low < high ≤ 100 (low {low:?}, high {high})"));
            }
        }
        Ok(())
    }

    /// Whether the percentiles leave out zero pixels.
    pub fn nonzero(&self) -> bool {
        matches!(self.scaling, Scaling::Percentile { nonzero: true, .. })
    }

    /// The histogram this rule takes its window from, of `pixels` (little-endian u16).
    pub fn histogram<'a>(&self, pixels: impl Iterator<Item = &'a [u8]>) -> Histogram {
        let mut h = Histogram::default();
        for p in pixels {
            if self.nonzero() {
                h.add(pixel_values(p).filter(|v| *v > 0));
            } else {
                h.add(pixel_values(p));
            }
        }
        h
    }

    /// The `(offset, divisor)` that maps pixels of `h` to 0…1.
    pub fn window(&self, h: &Histogram) -> (f32, f32) {
        match self.scaling {
            Scaling::Percentile { low, high, .. } => {
                let lo = low.map_or(0.0, |l| h.quantile(l / 100.0));
                (lo, (h.quantile(high / 100.0) - lo).max(1.0))
            }
            Scaling::MinMax { .. } => {
                let (lo, hi) = (h.quantile(0.0), h.quantile(1.0));
                (lo, (hi - lo).max(1.0))
            }
        }
    }
}

/// A histogram of u16 pixel values: exact order statistics of any number of pixels fed in any
/// pieces, in 256 KiB.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u32>,
    n: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram").field("n", &self.n).finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; 1 << 16], n: 0 }
    }
}

impl Histogram {
    pub fn add(&mut self, values: impl Iterator<Item = u16>) {
        for v in values {
            self.counts[v as usize] += 1;
            self.n += 1;
        }
    }

    /// The value at sorted index ⌊(n − 1)·p⌋ (0 when empty).
    pub fn quantile(&self, p: f64) -> f32 {
        if self.n == 0 {
            return 0.0;
        }
        let index = ((self.n - 1) as f64 * p.clamp(0.0, 1.0)) as u64;
        let mut seen = 0u64;
        for (v, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen > index {
                return v as f32;
            }
        }
        u16::MAX as f32
    }
}

/// Little-endian u16 pixels → 0…1 by `(v − offset) / divisor`, clipped.
pub fn to_unit(pixels: &[u8], (offset, divisor): (f32, f32)) -> Vec<f32> {
    pixel_values(pixels).map(|v| ((f32::from(v) - offset) / divisor).clamp(0.0, 1.0)).collect()
}

/// How an image is placed on the model's input grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SizePolicy {
    PadResize {
        size: usize,
    },
    CropResize {
        size: usize,
        /// First cut to the bounding box of the pixels above zero after scaling, over the time
        /// point's stack ([`Bounds`]).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        crop_nonzero: bool,
    },
    PadMultiple {
        multiple: usize,
    },
}

/// A rectangle of an image: rows `r0..r0 + h`, columns `c0..c0 + w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub r0: usize,
    pub c0: usize,
    pub h: usize,
    pub w: usize,
}

impl Bounds {
    /// The bounding box of the values above zero of `images` (each `h × w`); `None` when all
    /// are zero.
    pub fn nonzero<'a>(images: impl Iterator<Item = &'a [f32]>, h: usize, w: usize) -> Option<Bounds> {
        let (mut r0, mut r1, mut c0, mut c1) = (usize::MAX, 0, usize::MAX, 0);
        for img in images {
            for (i, v) in img.iter().enumerate() {
                if *v > 0.0 {
                    let (r, c) = (i / w, i % w);
                    (r0, r1, c0, c1) = (r0.min(r), r1.max(r), c0.min(c), c1.max(c));
                }
            }
        }
        (r0 <= r1 && r0 < h).then(|| Bounds { r0, c0, h: r1 - r0 + 1, w: c1 - c0 + 1 })
    }
}

impl SizePolicy {
    pub fn validate(&self) -> Result<(), String> {
        match self {
            SizePolicy::PadResize { size } | SizePolicy::CropResize { size, .. } if *size == 0 => {
                Err("size policy: size must be positive".into())
            }
            SizePolicy::PadMultiple { multiple: 0 } => Err("size policy: multiple must be positive".into()),
            _ => Ok(()),
        }
    }

    /// Whether the placement needs the bounding box of the time point's non-zero pixels.
    pub fn crops_nonzero(&self) -> bool {
        matches!(self, SizePolicy::CropResize { crop_nonzero: true, .. })
    }

    /// The placement of an `h × w` image; `bounds` is where its time point's non-zero pixels
    /// lie (used by `crop_nonzero`; the whole image when `None`).
    pub fn place_within(&self, h: usize, w: usize, bounds: Option<Bounds>) -> Placement {
        match *self {
            SizePolicy::CropResize { size, crop_nonzero: true } => {
                let b = bounds.unwrap_or(Bounds { r0: 0, c0: 0, h, w });
                let side = b.h.min(b.w);
                let scale = side as f64 / size as f64;
                let axis = |start: usize| Axis { a: scale, b: start as f64 + 0.5 * scale - 0.5 };
                Placement { h, w, out_h: size, out_w: size, y: axis(b.r0 + (b.h - side) / 2), x: axis(b.c0 + (b.w - side) / 2) }
            }
            _ => self.place(h, w),
        }
    }

    /// The placement of an `h × w` image.
    pub fn place(&self, h: usize, w: usize) -> Placement {
        match *self {
            SizePolicy::PadResize { size } => Placement::centred(h, w, size, size as f64 / h.max(w) as f64),
            SizePolicy::CropResize { size, .. } => Placement::centred(h, w, size, size as f64 / h.min(w) as f64),
            SizePolicy::PadMultiple { multiple } => {
                let (oh, ow) = (h.div_ceil(multiple) * multiple, w.div_ceil(multiple) * multiple);
                let (pre_y, pre_x) = ((oh - h) / 2, (ow - w) / 2);
                Placement { h, w, out_h: oh, out_w: ow, y: Axis { a: 1.0, b: -(pre_y as f64) }, x: Axis { a: 1.0, b: -(pre_x as f64) } }
            }
        }
    }
}

/// `input = a·model + b` for pixel-centre coordinates (index units) along one axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Axis {
    pub a: f64,
    pub b: f64,
}

/// Where an `h × w` image sits on an `out_h × out_w` model grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub h: usize,
    pub w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub y: Axis,
    pub x: Axis,
}

impl Placement {
    /// Scaled by `scale` about the centres, onto `size × size`.
    fn centred(h: usize, w: usize, size: usize, scale: f64) -> Placement {
        let axis = |n: usize| Axis { a: 1.0 / scale, b: (0.5 - size as f64 / 2.0) / scale + n as f64 / 2.0 - 0.5 };
        Placement { h, w, out_h: size, out_w: size, y: axis(h), x: axis(w) }
    }

    /// The image (0…1 values, `h × w`) on the model grid, bilinear, zeros outside: the
    /// arithmetic of training's sampler, with each row's and column's taps found once.
    pub fn forward(&self, image: &[f32]) -> Vec<f32> {
        assert_eq!(image.len(), self.h * self.w, "image size");
        let (rows, cols) = (Taps::of(&self.y, self.out_h, self.h), Taps::of(&self.x, self.out_w, self.w));
        let mut out = vec![0f32; self.out_h * self.out_w];
        for (oy, (r0, r1, fy)) in rows.iter().enumerate() {
            if r0.is_none() && r1.is_none() {
                continue;
            }
            let at = |r: Option<usize>, c: Option<usize>| match (r, c) {
                (Some(r), Some(c)) => image[r * self.w + c],
                _ => 0.0,
            };
            for (o, (c0, c1, fx)) in out[oy * self.out_w..(oy + 1) * self.out_w].iter_mut().zip(cols.iter()) {
                let top = at(*r0, *c0) * (1.0 - fx) + at(*r0, *c1) * fx;
                let bottom = at(*r1, *c0) * (1.0 - fx) + at(*r1, *c1) * fx;
                *o = top * (1.0 - fy) + bottom * fy;
            }
        }
        out
    }

    /// A model-grid mask back on the `h × w` grid: each pixel the nearest model pixel's class,
    /// background where it falls outside the model grid.
    pub fn inverse(&self, mask: &[u8]) -> Vec<u8> {
        assert_eq!(mask.len(), self.out_h * self.out_w, "model mask size");
        let index = |axis: &Axis, i: usize, n: usize| -> Option<usize> {
            let m = ((i as f64 - axis.b) / axis.a).round();
            (m >= 0.0 && m < n as f64).then_some(m as usize)
        };
        let cols: Vec<Option<usize>> = (0..self.w).map(|c| index(&self.x, c, self.out_w)).collect();
        let mut out = vec![0u8; self.h * self.w];
        for r in 0..self.h {
            let Some(my) = index(&self.y, r, self.out_h) else { continue };
            for (c, mx) in cols.iter().enumerate() {
                if let Some(mx) = mx {
                    out[r * self.w + c] = mask[my * self.out_w + mx];
                }
            }
        }
        out
    }
}

/// Per model-grid index along one axis: the two input indices a bilinear sample reads (`None`
/// outside the image) and the weight of the second, as [`crate::model::augment::bilinear`]
/// computes them.
struct Taps(Vec<(Option<usize>, Option<usize>, f32)>);

impl Taps {
    fn of(axis: &Axis, n_out: usize, n_in: usize) -> Taps {
        let inside = |i: f64| (i >= 0.0 && i < n_in as f64).then_some(i as usize);
        Taps(
            (0..n_out)
                .map(|o| {
                    let v = axis.a * o as f64 + axis.b;
                    let i0 = v.floor();
                    (inside(i0), inside(i0 + 1.0), (v - i0) as f32)
                })
                .collect(),
        )
    }

    fn iter(&self) -> std::slice::Iter<'_, (Option<usize>, Option<usize>, f32)> {
        self.0.iter()
    }
}

/// `channels` copies of a 0…1 image, ImageNet-normalised when asked (channel-major).
pub fn channels(image: &[f32], channels: usize, normalise: Normalise) -> Vec<f32> {
    let mut out = Vec::with_capacity(image.len() * channels);
    for c in 0..channels {
        match normalise {
            Normalise::None => out.extend_from_slice(image),
            Normalise::Imagenet => {
                let (m, s) = (IMAGENET_MEAN[c % 3], IMAGENET_STD[c % 3]);
                out.extend(image.iter().map(|v| (v - m) / s));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::augment::{self, Draw, bilinear};

    #[test]
    fn pad_resize_is_the_training_transform() {
        // The same placement as training's validation transform (augment::apply, no draw).
        let (h, w) = (30, 44);
        let img: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let (want, _) = augment::apply(&img, &vec![0; h * w], h, w, 64, &Draw::IDENTITY);
        let got = SizePolicy::PadResize { size: 64 }.place(h, w).forward(&img);
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn forward_samples_exactly_as_the_training_sampler() {
        // Every policy, shapes that pad, crop and shrink: the same values to the bit as
        // `bilinear` at each model pixel's centre.
        for (h, w) in [(30, 44), (44, 30), (17, 17), (300, 200)] {
            let img: Vec<f32> = (0..h * w).map(|i| ((i * 7919) % 1009) as f32 / 1008.0).collect();
            for policy in [
                SizePolicy::PadResize { size: 64 },
                SizePolicy::CropResize { size: 96, crop_nonzero: false },
                SizePolicy::PadMultiple { multiple: 16 },
            ] {
                let p = policy.place(h, w);
                let got = p.forward(&img);
                for oy in 0..p.out_h {
                    for ox in 0..p.out_w {
                        let want = bilinear(&img, h, w, p.y.a * oy as f64 + p.y.b, p.x.a * ox as f64 + p.x.b);
                        assert_eq!(got[oy * p.out_w + ox].to_bits(), want.to_bits(), "{policy:?} {h}×{w} at ({oy}, {ox})");
                    }
                }
            }
        }
    }

    #[test]
    fn masks_come_back_exactly_through_every_policy() {
        // A mask drawn on the model grid from a curated-grid mask comes back unchanged where the
        // model grid is at least as fine (upsampling), for every policy.
        for (h, w) in [(40, 56), (56, 40), (33, 33), (50, 62)] {
            let truth: Vec<u8> = (0..h * w).map(|i| ((i / w) / 7 + (i % w) / 9) as u8 % 4).collect();
            for policy in [
                SizePolicy::PadResize { size: 128 },
                SizePolicy::CropResize { size: 128, crop_nonzero: false },
                SizePolicy::PadMultiple { multiple: 16 },
            ] {
                let p = policy.place(h, w);
                // The model "predicts" the class at the input position of each model pixel.
                let model: Vec<u8> = (0..p.out_h * p.out_w)
                    .map(|o| {
                        let (y, x) = ((p.y.a * (o / p.out_w) as f64 + p.y.b).round(), (p.x.a * (o % p.out_w) as f64 + p.x.b).round());
                        if y < 0.0 || x < 0.0 || y >= h as f64 || x >= w as f64 { 0 } else { truth[y as usize * w + x as usize] }
                    })
                    .collect();
                let back = p.inverse(&model);
                let crop = matches!(policy, SizePolicy::CropResize { .. });
                for r in 0..h {
                    for c in 0..w {
                        let inside = !crop || {
                            let s = h.min(w);
                            let (r0, c0) = ((h - s) / 2, (w - s) / 2);
                            (r0..r0 + s).contains(&r) && (c0..c0 + s).contains(&c)
                        };
                        let want = if inside { truth[r * w + c] } else { 0 };
                        assert_eq!(back[r * w + c], want, "{policy:?} {h}×{w} at ({r}, {c})");
                    }
                }
            }
        }
    }

    #[test]
    fn crop_nonzero_cuts_the_box_then_its_centred_square() {
        // A 20 × 30 image whose non-zero pixels span rows 4..=15, columns 3..=24 (12 × 22): the
        // square is 12 wide, starting at column 3 + ⌊10 / 2⌋ = 8, rows 4..16; resized to 24.
        let mut img = vec![0f32; 20 * 30];
        img[4 * 30 + 3] = 0.5;
        img[15 * 30 + 24] = 0.25;
        let b = Bounds::nonzero([img.as_slice()].into_iter(), 20, 30).unwrap();
        assert_eq!(b, Bounds { r0: 4, c0: 3, h: 12, w: 22 });
        assert_eq!(Bounds::nonzero([vec![0f32; 6].as_slice()].into_iter(), 2, 3), None);
        let p = SizePolicy::CropResize { size: 24, crop_nonzero: true }.place_within(20, 30, Some(b));
        assert_eq!((p.out_h, p.out_w), (24, 24));
        // Model pixel centres map into the square: its first and last centres at half a model
        // pixel (a quarter of an image pixel) inside the square's edges.
        assert!((p.y.b - (4.0 + 0.25 - 0.5)).abs() < 1e-12 && (p.y.a - 0.5).abs() < 1e-12);
        assert!((p.x.b - (8.0 + 0.25 - 0.5)).abs() < 1e-12);
        assert!((p.x.a * 23.0 + p.x.b - (8.0 + 12.0 - 0.25 - 0.5)).abs() < 1e-12);
        // Without bounds it is the whole image's centred square, start rounded down.
        let whole = SizePolicy::CropResize { size: 24, crop_nonzero: true }.place_within(20, 31, None);
        assert!((whole.x.b - (5.0 + 20.0 / 48.0 - 0.5)).abs() < 1e-12, "{whole:?}");
    }

    #[test]
    fn pad_multiple_pads_floor_half_before() {
        let p = SizePolicy::PadMultiple { multiple: 16 }.place(20, 33);
        assert_eq!((p.out_h, p.out_w), (32, 48));
        let img: Vec<f32> = (0..20 * 33).map(|i| i as f32).collect();
        let out = p.forward(&img);
        // 12 rows of padding: 6 before; 15 columns: 7 before.
        assert_eq!(out[6 * 48 + 7], 0.0 + img[0]);
        assert_eq!(out[6 * 48 + 8], img[1]);
        assert_eq!(out[5 * 48 + 7], 0.0);
    }

    #[test]
    fn histogram_quantiles_match_the_training_percentile() {
        let v: Vec<u16> = (0..20_011u32).map(|i| ((i * 7919) % 4099) as u16).collect();
        let mut h = Histogram::default();
        h.add(v.iter().copied());
        let mut p = crate::model::scaling::Percentile::new(v.len() as u64);
        p.add(v.iter().copied());
        assert_eq!(h.quantile(crate::model::scaling::SCALE_PERCENTILE).max(1.0), p.scale());
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(h.quantile(0.0), f32::from(sorted[0]));
        assert_eq!(h.quantile(1.0), f32::from(*sorted.last().unwrap()));
        let rule = IntensityRule {
            scaling: Scaling::Percentile { low: Some(0.05), high: 99.05, over: Over::Image, nonzero: false },
            normalise: Normalise::None,
        };
        let (lo, d) = rule.window(&h);
        assert_eq!(lo, f32::from(sorted[((v.len() - 1) as f64 * 0.0005) as usize]));
        assert_eq!(lo + d, f32::from(sorted[((v.len() - 1) as f64 * 0.9905) as usize]));
    }
}
