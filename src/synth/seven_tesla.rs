//! The 7T domain: phantom volunteers as 7T gradient-echo cine differs from clinical 1.5/3 T
//! SSFP cine (the paper's application). What the README marks as facts from the paper: 7 T; one
//! fixed geometry for every volunteer (0.66 mm in-plane, a 472 × 512 matrix, 6 mm slices without
//! gap, 14–18 slices); 18–25 frames; end-diastole at the first or the last frames (retrospective
//! gating). What is a modelling choice:
//!
//! - gradient-echo contrast: blood only about twice as bright as myocardium (clinical: three to
//!   four times), darker at the endocardium and at end-systole ([`Gre`]);
//! - a smooth multiplicative transmit field of one to three Gaussian lobes across the field of
//!   view, with a max/min of 2–4, drawn per volunteer and constant over frames;
//! - receive fall-off with depth from the anterior chest wall;
//! - a signal void on the inferolateral wall in about a third of the volunteers;
//! - Gaussian noise;
//! - the stack reaching one slice above the base and one or two beyond the apex, so about 15% of
//!   images have empty masks.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::defects::Defect;
use super::phantom::{Gre, Heart, Look};
use super::{Spec, Stack, identity, place_heart, study_place};
use crate::geometry::{Grid, V3, add, dot, normalize, scale, sub};

/// Which kind of scanner the phantom imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, clap::ValueEnum)]
pub enum Domain {
    /// Clinical 1.5/3 T SSFP cine as in the Kaggle data: varied matrix, pixel size, slices.
    #[default]
    Clinical,
    /// 7T gradient-echo cine (the paper's application): fixed geometry, inhomogeneous fields.
    #[value(name = "7t")]
    #[serde(rename = "7t")]
    SevenTesla,
}

/// Pixel spacing (mm), rows, columns, slice spacing = thickness (mm).
pub const PIXEL_MM: f64 = 0.66;
pub const ROWS: u32 = 472;
pub const COLS: u32 = 512;
pub const SLICE_MM: f64 = 6.0;

/// Study ids of the 7T domain start above the Kaggle ranges, so both domains fit one prefix.
pub const ID_BASE: u32 = 7000;

/// The static gain of one volunteer: transmit lobes × receive fall-off × an optional void.
#[derive(Debug, Clone)]
pub struct Field {
    /// (centre, width σ in mm, weight) of each transmit lobe.
    lobes: Vec<(V3, f64, f64)>,
    /// ln(max/min) of the transmit field.
    log_ratio: f64,
    /// A point on the anterior chest wall and the direction into the body (LPS posterior).
    surface: V3,
    inward: V3,
    /// Depth (mm) over which the receive sensitivity falls by e.
    depth_scale: f64,
    /// (centre, direction of its long axis, in-plane radius mm, half-length mm, signal kept).
    void: Option<(V3, V3, f64, f64, f64)>,
}

impl Field {
    /// The gain at patient point `p`.
    pub fn at(&self, p: V3) -> f64 {
        let total: f64 = self.lobes.iter().map(|l| l.2).sum();
        let s: f64 = self.lobes.iter().map(|(c, sigma, w)| w * (-dist2(p, *c) / (2.0 * sigma * sigma)).exp()).sum::<f64>() / total;
        let transmit = (self.log_ratio * (s - 0.5)).exp();
        let depth = dot(sub(p, self.surface), self.inward).max(0.0);
        let receive = 0.15 + 0.85 * (-depth / self.depth_scale).exp();
        let void = self.void.map_or(1.0, |(c, axis, r, half, kept)| {
            let d = sub(p, c);
            let along = dot(d, axis);
            let across2 = dot(d, d) - along * along;
            let g = (-across2 / (2.0 * r * r) - (along / half).powi(2) / 2.0).exp();
            1.0 - (1.0 - kept) * g
        });
        // Scaled so the gain is about 1 at the heart, where the clinical bias field is.
        2.0 * transmit * receive * void
    }

    /// The gain on every pixel of `grid`, row-major.
    pub fn map(&self, grid: &Grid) -> Vec<f64> {
        (0..grid.rows).flat_map(|i| (0..grid.cols).map(move |j| self.at(grid.point(i as f64, j as f64)))).collect()
    }
}

fn dist2(a: V3, b: V3) -> f64 {
    let d = sub(a, b);
    dot(d, d)
}

/// The `index`-th 7T volunteer of a run with `seed`.
pub(super) fn spec(seed: u64, index: usize, defects: Vec<Defect>) -> Spec {
    let (split, _) = study_place(index);
    let id = ID_BASE + index as u32 + 1;
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ (index as u64) ^ 0x7E57);
    let n_slices = rng.random_range(14..=18);
    let n_frames = rng.random_range(18..=25);
    // Retrospective gating: end-diastole at frame 0, or the last or second-last frame.
    let ed_shift = rng.random_range(0..3usize);
    // Slice 0 lies 0.4 slices above the base; the apex half a slice before the first of one or
    // two empty apical slices.
    let stack = Stack { n_slices, spacing: SLICE_MM, pixel: PIXEL_MM, rows: ROWS, cols: COLS };
    let c_outer = |rng: &mut ChaCha8Rng| {
        let apical = rng.random_range(1..=2usize);
        (n_slices as f64 - apical as f64 - 0.1) * SLICE_MM / 1.35
    };
    let (heart, normal, grids) = place_heart(&mut rng, &stack, c_outer, 25.0);
    let look = Look {
        blood: rng.random_range(380.0..520.0),
        muscle: rng.random_range(190.0..250.0),
        tissue: rng.random_range(230.0..300.0),
        air: 5.0,
        noise: rng.random_range(10.0..20.0),
        bias: 0.0,
        phase: 0.0,
        gre: Some(Gre { endo_dark: rng.random_range(0.2..0.4), es_dark: rng.random_range(0.15..0.3) }),
    };
    let field = field(&mut rng, &heart);
    Spec {
        split,
        id,
        n_slices,
        n_frames,
        spacing: SLICE_MM,
        thickness: SLICE_MM,
        rr_ms: rng.random_range(800.0..1100.0),
        field_t: 7.0,
        heart,
        look,
        grids,
        normal,
        defects,
        identity: identity(seed, id),
        seed,
        field: Some(field),
        ed_shift,
    }
}

/// A volunteer's transmit lobes, receive fall-off and (sometimes) void.
fn field(rng: &mut ChaCha8Rng, heart: &Heart) -> Field {
    let lobes = (0..rng.random_range(1..=3))
        .map(|_| {
            let at = add(
                add(heart.centre, scale(heart.e1, rng.random_range(-120.0..120.0))),
                add(scale(heart.e2, rng.random_range(-120.0..120.0)), scale(heart.axis, rng.random_range(-40.0..40.0))),
            );
            (at, rng.random_range(45.0..90.0), rng.random_range(0.5..1.0))
        })
        .collect();
    let inward = [0.0, 1.0, 0.0]; // LPS: +y is posterior, away from the anterior coil
    let surface = sub(heart.centre, scale(inward, rng.random_range(50.0..80.0)));
    // Inferolateral: away from the septum (+e1, where the RV is) and towards −e2.
    let void = rng.random_bool(0.35).then(|| {
        let dir = normalize(add(scale(heart.e1, -1.0), scale(heart.e2, -1.0)));
        let centre = add(add(heart.centre, scale(dir, heart.a + heart.wall * 0.6)), scale(heart.axis, rng.random_range(-10.0..15.0)));
        (centre, heart.axis, rng.random_range(5.0..9.0), rng.random_range(12.0..25.0), rng.random_range(0.05..0.3))
    });
    Field { lobes, log_ratio: rng.random_range(2.0f64..4.0).ln(), surface, inward, depth_scale: rng.random_range(80.0..130.0), void }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_geometry_is_fixed_and_the_field_varies_a_few_times() {
        for i in 0..6 {
            let s = spec(3, i, Vec::new());
            assert_eq!((s.grids[0].rows, s.grids[0].cols, s.grids[0].spacing), (ROWS, COLS, [PIXEL_MM; 2]));
            assert!((14..=18).contains(&s.n_slices) && (18..=25).contains(&s.n_frames));
            assert_eq!((s.field_t, s.thickness, s.spacing), (7.0, SLICE_MM, SLICE_MM));
            let f = s.field.as_ref().unwrap();
            let g = f.map(&s.grids[s.n_slices / 2]);
            let (lo, hi) = g.iter().fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
            assert!(hi / lo > 2.0, "volunteer {i}: the gain varies {:.2}×", hi / lo);
            assert!(s.id > ID_BASE);
        }
    }
}
