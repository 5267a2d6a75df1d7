//! Quick-look PNG montages for checking hundreds of studies by eye: one tile per slice (apex
//! left, base right), one row per frame shown (ED and ES, or every frame), each image windowed
//! to its study's 99.5th percentile and the mask outlined in colour (LV red, MY green, RV blue).

use super::study::Study;
use crate::plot::png_rgb;

/// Outline colours by class (1 LV, 2 MY, 3 RV).
pub const CLASS_COLOURS: [[u8; 3]; 3] = [[235, 50, 50], [40, 200, 70], [60, 130, 255]];
/// Pixels between tiles.
const GAP: usize = 2;

/// The value below which 99.5% of the study's pixels lie (at least 1).
fn window(images: &[u8]) -> u16 {
    let mut hist = vec![0u64; 65536];
    for v in images.chunks_exact(2) {
        hist[u16::from_le_bytes([v[0], v[1]]) as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    let target = (total as f64 * 0.995).ceil() as u64;
    let mut seen = 0;
    for (v, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= target {
            return (v as u16).max(1);
        }
    }
    1
}

/// Whether pixel `i` of a `h × w` mask lies on the edge of its class (a 4-neighbour differs or
/// it touches the image border).
fn on_edge(mask: &[u8], w: usize, h: usize, i: usize) -> bool {
    let (r, c) = (i / w, i % w);
    let v = mask[i];
    r == 0 || c == 0 || r + 1 == h || c + 1 == w || mask[i - 1] != v || mask[i + 1] != v || mask[i - w] != v || mask[i + w] != v
}

/// A montage of the given frames of `study` (one row each): PNG bytes, or `None` without frames.
pub fn montage(study: &Study, frames: &[usize]) -> Option<Vec<u8>> {
    if frames.is_empty() || study.slices == 0 {
        return None;
    }
    let (h, w, z_n) = (study.height, study.width, study.slices);
    let (width, height) = (z_n * w + (z_n - 1) * GAP, frames.len() * h + (frames.len() - 1) * GAP);
    let mut rgb = vec![255u8; width * height * 3];
    let top = window(&study.images) as f64;
    for (row, &t) in frames.iter().enumerate() {
        for z in 0..z_n {
            let plane = study.plane(z, t);
            let (img, mask) = (&study.images[plane.start * 2..plane.end * 2], &study.masks[plane]);
            for i in 0..h * w {
                let v = u16::from_le_bytes([img[2 * i], img[2 * i + 1]]) as f64;
                let grey = (v / top * 255.0).clamp(0.0, 255.0) as u8;
                let class = mask[i];
                let colour = if class > 0 && (class as usize) <= CLASS_COLOURS.len() && on_edge(mask, w, h, i) {
                    CLASS_COLOURS[class as usize - 1]
                } else {
                    [grey; 3]
                };
                let (y, x) = (row * (h + GAP) + i / w, z * (w + GAP) + i % w);
                let at = (y * width + x) * 3;
                rgb[at..at + 3].copy_from_slice(&colour);
            }
        }
    }
    Some(png_rgb(width, height, &rgb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_edge_of_a_region_is_outlined() {
        // 5×5 mask with a 3×3 LV block in the middle: its 8 border pixels are edges, its centre not.
        let mut m = vec![0u8; 25];
        for r in 1..4 {
            for c in 1..4 {
                m[r * 5 + c] = 1;
            }
        }
        let edges: Vec<usize> = (0..25).filter(|&i| m[i] == 1 && on_edge(&m, 5, 5, i)).collect();
        assert_eq!(edges.len(), 8);
        assert!(!edges.contains(&12));
    }

    #[test]
    fn the_window_ignores_the_brightest_half_percent() {
        let mut px: Vec<u16> = vec![100; 1000];
        px[..4].fill(60_000);
        let bytes: Vec<u8> = px.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(window(&bytes), 100);
    }
}
