//! From a model's output to our classes: per-pixel argmax (or the labels a model gives), the
//! class map, and the optional clean-ups of a contract — small connected components removed,
//! only the largest LV component kept. Components are 4-connected.

use crate::model::contract::{Layout, OutputKind};

/// The model's class of each pixel of image `i` of a batch output of `channels × h × w`
/// values per image in `layout` (channels 1 for [`OutputKind::Labels`]). Ties go to the lower
/// channel, as `argmax` does.
pub fn classes_of(output: &[f32], i: usize, channels: usize, h: usize, w: usize, layout: Layout, kind: OutputKind) -> Vec<u8> {
    let per = channels * h * w;
    let img = &output[i * per..(i + 1) * per];
    // Strides of a channel and of a pixel.
    let (sc, sp) = match layout {
        Layout::Nchw => (h * w, 1),
        Layout::Nhwc => (1, channels),
    };
    let first: Vec<f32> = (0..h * w).map(|p| img[p * sp]).collect();
    if kind == OutputKind::Labels {
        return first.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect();
    }
    // Channel by channel (contiguous planes in NCHW): a pixel moves on only for a strictly
    // higher score.
    let (mut best, mut score) = (vec![0u8; h * w], first);
    for c in 1..channels {
        for (p, (b, s)) in best.iter_mut().zip(score.iter_mut()).enumerate() {
            let v = img[c * sc + p * sp];
            if v > *s {
                *s = v;
                *b = c as u8;
            }
        }
    }
    best
}

/// Applies a class map (model class → ours; classes beyond it become background).
pub fn map_classes(mask: &mut [u8], map: &[u8]) {
    for v in mask {
        *v = map.get(*v as usize).copied().unwrap_or(0);
    }
}

/// The 4-connected components of the pixels of `class`: per pixel its component index, and the
/// size of each component.
fn components(mask: &[u8], h: usize, w: usize, class: u8) -> (Vec<u32>, Vec<usize>) {
    const NONE: u32 = u32::MAX;
    let mut label = vec![NONE; h * w];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..h * w {
        if mask[start] != class || label[start] != NONE {
            continue;
        }
        let id = sizes.len() as u32;
        let mut n = 0;
        label[start] = id;
        stack.push(start);
        while let Some(p) = stack.pop() {
            n += 1;
            let (r, c) = (p / w, p % w);
            let mut visit = |q: usize| {
                if mask[q] == class && label[q] == NONE {
                    label[q] = id;
                    stack.push(q);
                }
            };
            if r > 0 {
                visit(p - w);
            }
            if r + 1 < h {
                visit(p + w);
            }
            if c > 0 {
                visit(p - 1);
            }
            if c + 1 < w {
                visit(p + 1);
            }
        }
        sizes.push(n);
    }
    (label, sizes)
}

/// Sets to background every component of a non-background class smaller than `min_pixels`.
pub fn drop_small_components(mask: &mut [u8], h: usize, w: usize, min_pixels: usize) {
    for class in 1..=3u8 {
        let (label, sizes) = components(mask, h, w, class);
        for (p, l) in label.iter().enumerate() {
            if *l != u32::MAX && sizes[*l as usize] < min_pixels {
                mask[p] = 0;
            }
        }
    }
}

/// Keeps only the largest LV (class 1) component; the others become background.
pub fn keep_largest_lv(mask: &mut [u8], h: usize, w: usize) {
    let (label, sizes) = components(mask, h, w, 1);
    let Some(largest) = sizes.iter().enumerate().max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i))).map(|(i, _)| i as u32) else { return };
    for (p, l) in label.iter().enumerate() {
        if *l != u32::MAX && *l != largest {
            mask[p] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_reads_both_layouts_and_labels() {
        // Two images of 1×2 pixels, 3 channels.
        let nchw = [0.1, 0.9, 0.8, 0.05, 0.1, 0.05, /* image 1 */ 0.2, 0.2, 0.3, 0.1, 0.5, 0.7];
        assert_eq!(classes_of(&nchw, 0, 3, 1, 2, Layout::Nchw, OutputKind::Probabilities), vec![1, 0]);
        assert_eq!(classes_of(&nchw, 1, 3, 1, 2, Layout::Nchw, OutputKind::Logits), vec![2, 2]);
        // The same values laid out NHWC: pixel-major.
        let nhwc = [0.1, 0.8, 0.1, 0.9, 0.05, 0.05];
        assert_eq!(classes_of(&nhwc, 0, 3, 1, 2, Layout::Nhwc, OutputKind::Probabilities), vec![1, 0]);
        assert_eq!(classes_of(&[3.0, 1.0], 0, 1, 1, 2, Layout::Nchw, OutputKind::Labels), vec![3, 1]);
        // Ties: the lower channel.
        assert_eq!(classes_of(&[0.5, 0.5], 0, 2, 1, 1, Layout::Nchw, OutputKind::Probabilities), vec![0]);
    }

    #[test]
    fn class_maps_and_component_clean_ups() {
        // myopari's classes: 1 RV, 2 MY, 3 LV → ours 3, 2, 1.
        let mut m = vec![0u8, 1, 2, 3, 7];
        map_classes(&mut m, &[0, 3, 2, 1]);
        assert_eq!(m, vec![0, 3, 2, 1, 0]);
        // 4 × 5: an LV of 6 px, a stray LV pixel, an MY pair; diagonal pixels are not connected.
        #[rustfmt::skip]
        let mut m = vec![
            1, 1, 1, 0, 1,
            1, 1, 1, 0, 0,
            0, 0, 0, 2, 0,
            0, 0, 0, 2, 1,
        ];
        let mut a = m.clone();
        drop_small_components(&mut a, 4, 5, 2);
        assert_eq!(a.iter().filter(|v| **v == 1).count(), 6, "the two single LV pixels go");
        assert_eq!(a.iter().filter(|v| **v == 2).count(), 2, "the MY pair stays");
        keep_largest_lv(&mut m, 4, 5);
        assert_eq!(m.iter().filter(|v| **v == 1).count(), 6);
        assert_eq!(m[4], 0);
    }
}
