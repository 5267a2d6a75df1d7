//! Augmentations, applied identically to an image and its mask (bilinear for the image,
//! nearest for the mask, zeros outside), then pad-resize to the training size — fastai v1's
//! `get_transforms` as the authors set it:
//!
//! | preset | rotation | zoom | lighting | flip |
//! |---|---|---|---|---|
//! | `s1` | ±20° | 1–1.2 | 0.4 | no |
//! | `s2` | ±90° | 1–1.2 | 0.4 | left–right |
//!
//! Rotation and zoom each apply with probability 0.75 (zoom centred at a random point of the
//! image, as `rand_zoom`), lighting with 0.75 (brightness: +logit(c), c ∈ [0.3, 0.7]; contrast:
//! ×s in logit space, s log-uniform in [0.6, 1/0.6]), flip with 0.5. Pad-resize scales the
//! longer side to the output size and pads the shorter with zeros (`ResizeMethod.PAD`).
//! Geometry is one affine map from output to input pixel centres, so one resampling does it all.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// An augmentation preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Pad-resize only (validation, inference).
    None,
    S1,
    S2,
}

/// One draw of the random transform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    pub angle_deg: f64,
    pub zoom: f64,
    /// Zoom centre as fractions of the image (0.5 = middle).
    pub centre: (f64, f64),
    pub flip: bool,
    /// Brightness `c` (0.5 = unchanged) and contrast scale (1 = unchanged).
    pub brightness: f64,
    pub contrast: f64,
}

impl Draw {
    pub const IDENTITY: Draw = Draw { angle_deg: 0.0, zoom: 1.0, centre: (0.5, 0.5), flip: false, brightness: 0.5, contrast: 1.0 };
}

impl Preset {
    /// Draws the transform of one sample.
    pub fn draw(self, rng: &mut impl Rng) -> Draw {
        let (max_rot, flip) = match self {
            Preset::None => return Draw::IDENTITY,
            Preset::S1 => (20.0, false),
            Preset::S2 => (90.0, true),
        };
        let lighting = 0.4;
        let mut d = Draw::IDENTITY;
        if rng.random_bool(0.75) {
            d.angle_deg = rng.random_range(-max_rot..=max_rot);
        }
        if rng.random_bool(0.75) {
            d.zoom = rng.random_range(1.0..=1.2);
            d.centre = (rng.random_range(0.0..=1.0), rng.random_range(0.0..=1.0));
        }
        if flip && rng.random_bool(0.5) {
            d.flip = true;
        }
        if rng.random_bool(0.75) {
            d.brightness = rng.random_range(0.5 * (1.0 - lighting)..=0.5 * (1.0 + lighting));
        }
        if rng.random_bool(0.75) {
            let lo: f64 = 1.0 - lighting;
            d.contrast = rng.random_range(lo.ln()..=(1.0 / lo).ln()).exp();
        }
        d
    }
}

/// The transformed image (0…1) and mask at `out`×`out`.
pub fn apply(image: &[f32], mask: &[u8], h: usize, w: usize, out: usize, d: &Draw) -> (Vec<f32>, Vec<u8>) {
    assert_eq!(image.len(), h * w, "image size");
    assert_eq!(mask.len(), h * w, "mask size");
    // Output pixel centre → input pixel coordinates: undo pad-resize, flip, rotation, zoom.
    let scale = out as f64 / h.max(w) as f64;
    let (sin, cos) = d.angle_deg.to_radians().sin_cos();
    // The zoom centre, in the centred resized frame.
    let (zx, zy) = ((d.centre.1 - 0.5) * w as f64 * scale, (d.centre.0 - 0.5) * h as f64 * scale);
    let half = out as f64 / 2.0;
    let mut img_out = vec![0f32; out * out];
    let mut mask_out = vec![0u8; out * out];
    for oy in 0..out {
        for ox in 0..out {
            let (mut u, v) = (ox as f64 + 0.5 - half, oy as f64 + 0.5 - half);
            if d.flip {
                u = -u;
            }
            // Inverse rotation, then inverse zoom about the zoom centre.
            let (ru, rv) = (cos * u + sin * v, -sin * u + cos * v);
            let (zu, zv) = (zx + (ru - zx) / d.zoom, zy + (rv - zy) / d.zoom);
            let x = zu / scale + w as f64 / 2.0 - 0.5;
            let y = zv / scale + h as f64 / 2.0 - 0.5;
            let o = oy * out + ox;
            img_out[o] = bilinear(image, h, w, y, x);
            let (ny, nx) = (y.round(), x.round());
            if ny >= 0.0 && nx >= 0.0 && (ny as usize) < h && (nx as usize) < w {
                mask_out[o] = mask[ny as usize * w + nx as usize];
            }
        }
    }
    if d.brightness != 0.5 || d.contrast != 1.0 {
        let shift = logit(d.brightness);
        for v in &mut img_out {
            *v = sigmoid(logit(*v as f64) * d.contrast + shift) as f32;
        }
    }
    (img_out, mask_out)
}

/// Bilinear sample of an `h × w` image at pixel-centre coordinates (y, x); zeros outside.
pub(crate) fn bilinear(img: &[f32], h: usize, w: usize, y: f64, x: f64) -> f32 {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = ((y - y0) as f32, (x - x0) as f32);
    let at = |yy: f64, xx: f64| -> f32 {
        if yy < 0.0 || xx < 0.0 || yy >= h as f64 || xx >= w as f64 { 0.0 } else { img[yy as usize * w + xx as usize] }
    };
    let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1.0) * fx;
    let bottom = at(y0 + 1.0, x0) * (1.0 - fx) + at(y0 + 1.0, x0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// An off-centre blob with a bright core: its mask is the image thresholded at 0.5.
    fn scene(h: usize, w: usize) -> (Vec<f32>, Vec<u8>) {
        let mut img = vec![0f32; h * w];
        for y in 0..h {
            for x in 0..w {
                let (dy, dx) = ((y as f32 - 0.4 * h as f32) / 14.0, (x as f32 - 0.6 * w as f32) / 22.0);
                img[y * w + x] = (-(dy * dy + dx * dx)).exp();
            }
        }
        let mask = img.iter().map(|v| u8::from(*v > 0.5)).collect();
        (img, mask)
    }

    #[test]
    fn masks_stay_aligned_with_their_images() {
        let (h, w) = (96, 120);
        let (img, mask) = scene(h, w);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for preset in [Preset::None, Preset::S1, Preset::S2] {
            for _ in 0..40 {
                let mut d = preset.draw(&mut rng);
                // Lighting changes intensities, not positions: check geometry without it.
                (d.brightness, d.contrast) = (0.5, 1.0);
                let (i2, m2) = apply(&img, &mask, h, w, 128, &d);
                let drawn: Vec<u8> = i2.iter().map(|v| u8::from(*v > 0.5)).collect();
                let inside = m2.iter().filter(|m| **m == 1).count();
                let differ = drawn.iter().zip(&m2).filter(|(a, b)| a != b).count();
                assert!(inside > 50, "{preset:?} {d:?}: the blob left the image");
                // Only boundary pixels may differ (bilinear vs nearest): under 12% of the blob.
                assert!(differ * 100 < inside * 12, "{preset:?} {d:?}: {differ} of {inside} differ");
            }
        }
    }

    #[test]
    fn pad_resize_keeps_aspect_and_pads_with_zeros() {
        let (img, mask) = (vec![1f32; 50 * 100], vec![1u8; 50 * 100]);
        let (i2, m2) = apply(&img, &mask, 50, 100, 64, &Draw::IDENTITY);
        // 100 → 64 wide, 50 → 32 high, centred: rows 16..48 filled, the rest zero.
        for y in 0..64 {
            let filled = (16..48).contains(&y);
            assert_eq!(m2[y * 64 + 32], u8::from(filled), "row {y}");
            assert_eq!(i2[y * 64 + 32] > 0.99, filled, "row {y}");
        }
    }

    #[test]
    fn flips_and_quarter_turns_are_exact() {
        let (h, w) = (8, 8);
        let img: Vec<f32> = (0..64).map(|v| v as f32 / 64.0).collect();
        let mask: Vec<u8> = (0..64).map(|v| v as u8).collect();
        let d = Draw { flip: true, ..Draw::IDENTITY };
        let (_, m) = apply(&img, &mask, h, w, 8, &d);
        assert_eq!(m[3], mask[4]);
        let d = Draw { angle_deg: 90.0, ..Draw::IDENTITY };
        let (_, m) = apply(&img, &mask, h, w, 8, &d);
        let mut seen = m.clone();
        seen.sort();
        assert_eq!(seen, mask, "a quarter turn is a permutation");
    }

    #[test]
    fn lighting_is_monotonic() {
        let img: Vec<f32> = (0..100).map(|v| v as f32 / 100.0).collect();
        let d = Draw { brightness: 0.65, contrast: 1.4, ..Draw::IDENTITY };
        let (i2, _) = apply(&img, &[0u8; 100], 10, 10, 10, &d);
        let row: Vec<f32> = i2[50..60].to_vec();
        assert!(row.windows(2).all(|p| p[1] >= p[0]), "{row:?}");
    }
}
