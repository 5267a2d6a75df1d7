//! The phantom heart and its rendering into images and masks.
//!
//! The LV blood pool is a half-ellipsoid (cut flat at the base) inside a myocardial shell; both
//! contract over the cardiac cycle (radii shrink, the wall thickens, the long axis shortens), so
//! volumes follow a smooth curve with ED at frame 0 and ES mid-cycle. A right-ventricle crescent
//! and the torso give the images realistic surroundings (labelled background), and the intensity
//! has Gaussian noise and a smooth multiplicative bias field.

use rand::Rng;

use crate::geometry::{Grid, V3, dot, sub};

/// The heart of one phantom study.
#[derive(Debug, Clone)]
pub struct Heart {
    pub centre: V3,
    /// Unit vector from base to apex.
    pub axis: V3,
    /// In-plane unit axes (perpendicular to `axis` and to each other).
    pub e1: V3,
    pub e2: V3,
    /// Cavity semi-axes at end-diastole (mm): in-plane `a`, `b`, long axis `c`.
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// Wall thickness at end-diastole (mm).
    pub wall: f64,
    /// Base plane position along `axis` relative to the centre (mm, negative).
    pub base_w: f64,
    /// Fractional shortening of the in-plane radii at end-systole.
    pub shortening: f64,
    /// Fractional shortening of the long axis at end-systole.
    pub long_shortening: f64,
}

/// Shape at one phase.
#[derive(Debug, Clone, Copy)]
struct Shape {
    a: f64,
    b: f64,
    c: f64,
    wall: f64,
}

/// Contraction at fraction `phase` ∈ [0, 1) of the cycle: 0 at ED, 1 at ES (phase 0.4).
pub fn contraction(phase: f64) -> f64 {
    let es = 0.4;
    let x = if phase <= es { phase / es } else { 1.0 - (phase - es) / (1.0 - es) };
    (1.0 - (std::f64::consts::PI * x).cos()) / 2.0
}

impl Heart {
    fn shape(&self, phase: f64) -> Shape {
        let k = contraction(phase);
        let r = 1.0 - self.shortening * k;
        Shape { a: self.a * r, b: self.b * r, c: self.c * (1.0 - self.long_shortening * k), wall: self.wall * (1.0 + 0.35 * k) }
    }

    /// Label of patient point `p` at `phase`: 0 background, 1 LV blood pool, 2 myocardium.
    pub fn label(&self, p: V3, phase: f64) -> u8 {
        self.label_with(p, &self.shape(phase))
    }

    fn label_with(&self, p: V3, s: &Shape) -> u8 {
        let d = sub(p, self.centre);
        let w = dot(d, self.axis);
        if w < self.base_w {
            return 0;
        }
        let (u, v) = (dot(d, self.e1), dot(d, self.e2));
        if (u / s.a).powi(2) + (v / s.b).powi(2) + (w / s.c).powi(2) <= 1.0 {
            return 1;
        }
        let (ao, bo, co) = (s.a + s.wall, s.b + s.wall, s.c + s.wall);
        if (u / ao).powi(2) + (v / bo).powi(2) + (w / co).powi(2) <= 1.0 { 2 } else { 0 }
    }

    /// Whether `p` is in the right-ventricle crescent (background label, bright blood).
    fn in_rv(&self, p: V3) -> bool {
        let d = sub(p, self.centre);
        let w = dot(d, self.axis);
        if w < self.base_w || w > 0.55 * self.c {
            return false;
        }
        let taper = (1.0 - (w / (0.6 * self.c)).powi(2)).max(0.0).sqrt();
        let (u, v) = (dot(d, self.e1) - (self.a + self.wall + 14.0), dot(d, self.e2));
        (u / (16.0 * taper + 1e-9)).powi(2) + (v / (32.0 * taper + 1e-9)).powi(2) <= 1.0
    }

    /// Renders one image and its mask on `grid` at `phase`.
    pub fn render(&self, grid: &Grid, phase: f64, look: &Look, rng: &mut impl Rng) -> (Vec<u16>, Vec<u8>) {
        let shape = self.shape(phase);
        let n = grid.rows as usize * grid.cols as usize;
        let mut px = Vec::with_capacity(n);
        let mut mask = Vec::with_capacity(n);
        for i in 0..grid.rows {
            for j in 0..grid.cols {
                let p = grid.point(i as f64, j as f64);
                let l = self.label_with(p, &shape);
                let base = match l {
                    1 => look.blood,
                    2 => look.muscle,
                    _ if self.in_rv(p) => look.blood * 0.9,
                    _ => {
                        let d = sub(p, self.centre);
                        let (x, y) = (dot(d, self.e1) / 160.0, dot(d, self.e2) / 120.0);
                        if x * x + y * y <= 1.0 { look.tissue } else { look.air }
                    }
                };
                let (x, y) = (j as f64 * grid.spacing[1], i as f64 * grid.spacing[0]);
                let bias = 1.0 + look.bias * ((x / 90.0 + look.phase).sin() * 0.6 + (y / 70.0).cos() * 0.4);
                let noise = gaussian(rng) * look.noise;
                px.push((base * bias + noise).round().clamp(0.0, 4095.0) as u16);
                mask.push(l);
            }
        }
        (px, mask)
    }
}

/// Intensities of a study.
#[derive(Debug, Clone)]
pub struct Look {
    pub blood: f64,
    pub muscle: f64,
    pub tissue: f64,
    pub air: f64,
    pub noise: f64,
    pub bias: f64,
    pub phase: f64,
}

/// Standard normal sample (Box–Muller).
pub fn gaussian(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contraction_peaks_at_end_systole() {
        assert_eq!(contraction(0.0), 0.0);
        assert!((contraction(0.4) - 1.0).abs() < 1e-12);
        assert!(contraction(0.2) > 0.0 && contraction(0.2) < 1.0);
        assert!(contraction(0.95) < 0.05);
    }
}
