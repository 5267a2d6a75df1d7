//! Resampling an image or mask from its own grid onto a target grid.
//!
//! One affine map covers every geometric correction curation makes: in-plane rotation by any
//! signed angle, pixel-spacing changes, size changes (crop/pad around the geometry the scanner
//! recorded) and down-scaling of large images. Images are interpolated bilinearly (area-averaged
//! first when shrinking by 1.5× or more, to avoid aliasing); masks take the nearest label, so
//! labels stay labels. Points outside the source are zero.

use crate::geometry::Grid;

/// The affine map target (i, j) → source (i', j') = base + i·di + j·dj.
struct Map {
    base: (f64, f64),
    di: (f64, f64),
    dj: (f64, f64),
}

impl Map {
    fn new(src: &Grid, dst: &Grid) -> Self {
        let p0 = src.index_of(dst.origin);
        let pi = src.index_of(dst.point(1.0, 0.0));
        let pj = src.index_of(dst.point(0.0, 1.0));
        Map { base: p0, di: (pi.0 - p0.0, pi.1 - p0.1), dj: (pj.0 - p0.0, pj.1 - p0.1) }
    }
    #[inline]
    fn at(&self, i: usize, j: usize) -> (f64, f64) {
        let (i, j) = (i as f64, j as f64);
        (self.base.0 + i * self.di.0 + j * self.dj.0, self.base.1 + i * self.di.1 + j * self.dj.1)
    }
}

/// Snaps indices that are integers up to rounding error (exact 90° rotations, pure shifts).
#[inline]
fn snap(x: f64) -> f64 {
    let r = x.round();
    if (x - r).abs() < 1e-6 { r } else { x }
}

/// Nearest-neighbour resampling (masks).
pub fn nearest(src: &[u8], src_grid: &Grid, dst_grid: &Grid) -> Vec<u8> {
    let map = Map::new(src_grid, dst_grid);
    let (h, w) = (src_grid.rows as i64, src_grid.cols as i64);
    let mut out = vec![0u8; dst_grid.rows as usize * dst_grid.cols as usize];
    for i in 0..dst_grid.rows as usize {
        for j in 0..dst_grid.cols as usize {
            let (si, sj) = map.at(i, j);
            let (si, sj) = (snap(si).round() as i64, snap(sj).round() as i64);
            if si >= 0 && sj >= 0 && si < h && sj < w {
                out[i * dst_grid.cols as usize + j] = src[(si * w + sj) as usize];
            }
        }
    }
    out
}

/// Bilinear resampling (images), with a box pre-filter when shrinking by ≥ 1.5×.
pub fn bilinear(src: &[u16], src_grid: &Grid, dst_grid: &Grid) -> Vec<u16> {
    let factor = (dst_grid.spacing[0] / src_grid.spacing[0]).min(dst_grid.spacing[1] / src_grid.spacing[1]);
    let k = if factor >= 1.5 { factor.floor() as usize } else { 1 };
    let filtered;
    let src = if k > 1 {
        filtered = box_filter(src, src_grid.rows as usize, src_grid.cols as usize, k);
        &filtered[..]
    } else {
        src
    };
    let map = Map::new(src_grid, dst_grid);
    let (h, w) = (src_grid.rows as usize, src_grid.cols as usize);
    let get = |i: i64, j: i64| -> f64 {
        if i < 0 || j < 0 || i >= h as i64 || j >= w as i64 { 0.0 } else { src[i as usize * w + j as usize] as f64 }
    };
    let mut out = vec![0u16; dst_grid.rows as usize * dst_grid.cols as usize];
    for i in 0..dst_grid.rows as usize {
        for j in 0..dst_grid.cols as usize {
            let (si, sj) = map.at(i, j);
            let (si, sj) = (snap(si), snap(sj));
            if si <= -1.0 || sj <= -1.0 || si >= h as f64 || sj >= w as f64 {
                continue;
            }
            let (i0, j0) = (si.floor(), sj.floor());
            let (fi, fj) = (si - i0, sj - j0);
            let (i0, j0) = (i0 as i64, j0 as i64);
            let v = get(i0, j0) * (1.0 - fi) * (1.0 - fj)
                + get(i0, j0 + 1) * (1.0 - fi) * fj
                + get(i0 + 1, j0) * fi * (1.0 - fj)
                + get(i0 + 1, j0 + 1) * fi * fj;
            out[i * dst_grid.cols as usize + j] = v.round().clamp(0.0, u16::MAX as f64) as u16;
        }
    }
    out
}

/// Mean over a k×k window centred on each pixel (edges use the pixels that exist).
fn box_filter(src: &[u16], h: usize, w: usize, k: usize) -> Vec<u16> {
    let r0 = (k - 1) / 2;
    let r1 = k - 1 - r0;
    let mut tmp = vec![0f64; h * w];
    for i in 0..h {
        for j in 0..w {
            let (a, b) = (j.saturating_sub(r0), (j + r1).min(w - 1));
            let s: f64 = src[i * w + a..=i * w + b].iter().map(|v| *v as f64).sum();
            tmp[i * w + j] = s / (b - a + 1) as f64;
        }
    }
    let mut out = vec![0u16; h * w];
    for i in 0..h {
        let (a, b) = (i.saturating_sub(r0), (i + r1).min(h - 1));
        for j in 0..w {
            let s: f64 = (a..=b).map(|ii| tmp[ii * w + j]).sum();
            out[i * w + j] = (s / (b - a + 1) as f64).round() as u16;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Grid, rotate};

    fn grid(rows: u32, cols: u32) -> Grid {
        Grid::from_dicom([0.0; 3], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [1.0, 1.0], rows, cols)
    }

    #[test]
    fn identity_copies_exactly() {
        let g = grid(3, 4);
        let px: Vec<u16> = (0..12).collect();
        assert_eq!(bilinear(&px, &g, &g), px);
        let m: Vec<u8> = (0..12).map(|v| (v % 3) as u8).collect();
        assert_eq!(nearest(&m, &g, &g), m);
    }

    #[test]
    fn ninety_degree_rotation_is_lossless_both_ways() {
        // A 3×5 image whose rows run along −y: rotating the grid by +90° about z and back.
        let src = grid(3, 5);
        let n = src.normal();
        let r = rotate(src.row_dir, n, 90.0);
        let c = rotate(src.col_dir, n, 90.0);
        let rotated = Grid { row_dir: r, col_dir: c, ..src }.centred_at(src.centre(), [1.0, 1.0], 5, 3);
        let px: Vec<u16> = (1..=15).collect();
        let there = bilinear(&px, &src, &rotated);
        let back = bilinear(&there, &rotated, &src);
        assert_eq!(back, px);
        assert_ne!(there, px);
    }

    #[test]
    fn halving_keeps_mask_area() {
        let src = grid(64, 64);
        let dst = src.recentred([2.0, 2.0], 32, 32);
        let mut m = vec![0u8; 64 * 64];
        for i in 16..48 {
            for j in 16..48 {
                m[i * 64 + j] = 1;
            }
        }
        let out = nearest(&m, &src, &dst);
        let area_src: f64 = m.iter().filter(|v| **v == 1).count() as f64 * src.pixel_area();
        let area_dst: f64 = out.iter().filter(|v| **v == 1).count() as f64 * dst.pixel_area();
        assert!((area_src - area_dst).abs() / area_src < 0.07, "{area_src} vs {area_dst}");
    }
}
