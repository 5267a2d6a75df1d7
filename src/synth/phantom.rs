//! The phantom heart and its rendering into images and masks.
//!
//! The LV blood pool is a half-ellipsoid (cut flat at the base) inside a myocardial shell; both
//! contract over the cardiac cycle (radii shrink, the wall thickens, the long axis shortens), so
//! volumes follow a smooth curve with ED at frame 0 and ES mid-cycle. A right-ventricle crescent
//! and the torso give the images realistic surroundings (labelled background), and the intensity
//! has Gaussian noise and a smooth multiplicative bias field — or, for the 7T domain, a static
//! gain map (transmit and receive fields, signal voids) and gradient-echo blood ([`Gre`]).

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
        self.label_with(p, &self.shape(phase)).0
    }

    /// The label, and for the blood pool the point's normalised radius (0 at the centre, 1 at
    /// the endocardium).
    fn label_with(&self, p: V3, s: &Shape) -> (u8, f64) {
        let d = sub(p, self.centre);
        let w = dot(d, self.axis);
        if w < self.base_w {
            return (0, 0.0);
        }
        let (u, v) = (dot(d, self.e1), dot(d, self.e2));
        let inner = (u / s.a).powi(2) + (v / s.b).powi(2) + (w / s.c).powi(2);
        if inner <= 1.0 {
            return (1, inner.sqrt());
        }
        let (ao, bo, co) = (s.a + s.wall, s.b + s.wall, s.c + s.wall);
        if (u / ao).powi(2) + (v / bo).powi(2) + (w / co).powi(2) <= 1.0 { (2, 0.0) } else { (0, 0.0) }
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

    /// Renders one image and its mask on `grid` at `phase`. `gain` is the study's static
    /// multiplicative field on this grid (row-major), which replaces the clinical bias field.
    pub fn render(&self, grid: &Grid, phase: f64, look: &Look, gain: Option<&[f64]>, rng: &mut impl Rng) -> (Vec<u16>, Vec<u8>) {
        let shape = self.shape(phase);
        let n = grid.rows as usize * grid.cols as usize;
        let mut px = Vec::with_capacity(n);
        let mut mask = Vec::with_capacity(n);
        // Gradient echo: slow blood (end-systole) loses its inflow enhancement.
        let flow = look.gre.as_ref().map_or(1.0, |g| 1.0 - g.es_dark * contraction(phase));
        for i in 0..grid.rows {
            for j in 0..grid.cols {
                let p = grid.point(i as f64, j as f64);
                let (l, rho) = self.label_with(p, &shape);
                let base = match l {
                    1 => look.blood * flow * look.gre.as_ref().map_or(1.0, |g| g.endocardial(rho)),
                    2 => look.muscle,
                    _ if self.in_rv(p) => look.blood * 0.9 * flow,
                    _ => {
                        let d = sub(p, self.centre);
                        let (x, y) = (dot(d, self.e1) / 160.0, dot(d, self.e2) / 120.0);
                        if x * x + y * y <= 1.0 { look.tissue } else { look.air }
                    }
                };
                let bias = match gain {
                    Some(g) => g[i as usize * grid.cols as usize + j as usize],
                    None => {
                        let (x, y) = (j as f64 * grid.spacing[1], i as f64 * grid.spacing[0]);
                        1.0 + look.bias * ((x / 90.0 + look.phase).sin() * 0.6 + (y / 70.0).cos() * 0.4)
                    }
                };
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
    /// Gradient-echo blood (the 7T domain); None: bright, uniform clinical SSFP blood.
    pub gre: Option<Gre>,
}

/// How gradient-echo cine darkens blood (a modelling choice of the 7T domain).
#[derive(Debug, Clone)]
pub struct Gre {
    /// Fraction of blood signal lost at the endocardium (slow flow along the wall).
    pub endo_dark: f64,
    /// Fraction lost at end-systole (at full contraction).
    pub es_dark: f64,
}

impl Gre {
    /// The blood's factor at normalised radius `rho` (0 centre, 1 endocardium): full signal in
    /// the middle, falling smoothly over the outer 40%.
    pub fn endocardial(&self, rho: f64) -> f64 {
        let t = ((rho - 0.6) / 0.4).clamp(0.0, 1.0);
        1.0 - self.endo_dark * t * t * (3.0 - 2.0 * t)
    }
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
