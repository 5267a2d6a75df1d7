//! Grouping a study's images into acquisitions: one slice location acquired once.
//!
//! Images belong to the same acquisition when they share a series (folder or SeriesInstanceUID),
//! an image position and an orientation. A Kaggle `sax_N` folder is usually one acquisition, but
//! some hold several locations; those are separated here.

use std::collections::BTreeMap;

use crate::geometry::{Grid, V3, dot};

use super::SourceImage;

/// One slice location acquired once, with its frames (unordered).
#[derive(Debug, Clone)]
pub struct Acquisition {
    pub images: Vec<SourceImage>,
    pub grid: Grid,
    pub series_number: i32,
    /// Earliest AcquisitionTime of its frames (seconds since midnight), if recorded.
    pub acquisition_time_s: Option<f64>,
    /// In-plane rotation relative to the study orientation (degrees, signed), once known.
    pub rotation_deg: Option<f64>,
}

/// How image keys sort: by text, and the frames of one multi-frame file (`<file>#<n>`) by their
/// number, so that frame 2 comes before frame 10 as the file's second image before its tenth.
pub fn key_order(key: &str) -> (&str, u64) {
    match key.rsplit_once('#') {
        Some((file, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => (file, n.parse().unwrap_or(u64::MAX)),
        _ => (key, 0),
    }
}

impl Acquisition {
    /// Key of its first image in key order (for messages; see [`key_order`]).
    pub fn first_key(&self) -> &str {
        self.images.iter().map(|i| i.key.as_str()).min_by_key(|k| key_order(k)).unwrap_or("")
    }

    /// Position of the plane along `axis` (mm).
    pub fn position(&self, axis: V3) -> f64 {
        dot(self.grid.origin, axis)
    }

    /// Acquisition order: series number, then acquisition time.
    pub fn order_key(&self) -> (i32, f64) {
        (self.series_number, self.acquisition_time_s.unwrap_or(f64::NEG_INFINITY))
    }

    /// Compares by [`Self::order_key`]; a NaN acquisition time (a malformed header) sorts after
    /// every number instead of panicking.
    pub fn acquisition_order(&self, other: &Self) -> std::cmp::Ordering {
        order_keys(self.order_key(), other.order_key())
    }
}

fn order_keys(a: (i32, f64), b: (i32, f64)) -> std::cmp::Ordering {
    a.0.cmp(&b.0).then(a.1.total_cmp(&b.1))
}

fn grouping_key(img: &SourceImage) -> String {
    let h = &img.header;
    let p = h.position.map(|v| (v * 100.0).round() as i64);
    let o = h.orientation.map(|v| (v * 1e4).round() as i64);
    format!("{}|{:?}|{:?}|{}x{}", img.series_key, p, o, h.rows, h.cols)
}

/// Groups images into acquisitions, in a deterministic order.
pub fn group(images: Vec<SourceImage>) -> Vec<Acquisition> {
    let mut groups: BTreeMap<String, Vec<SourceImage>> = BTreeMap::new();
    for img in images {
        groups.entry(grouping_key(&img)).or_default().push(img);
    }
    let mut acqs: Vec<Acquisition> = groups
        .into_values()
        .map(|images| {
            let h = &images[0].header;
            let grid = Grid::from_dicom(h.position, h.orientation, h.pixel_spacing, h.rows, h.cols);
            let series_number = images.iter().filter_map(|i| i.header.series_number).min().unwrap_or(0);
            let acquisition_time_s = images.iter().filter_map(|i| i.header.acquisition_time_s).min_by(|a, b| a.total_cmp(b));
            Acquisition { images, grid, series_number, acquisition_time_s, rotation_deg: None }
        })
        .collect();
    acqs.sort_by(|a, b| a.acquisition_order(b).then(key_order(a.first_key()).cmp(&key_order(b.first_key()))));
    acqs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquisition_order_survives_nan() {
        let mut keys = [(2, 5.0), (1, f64::NAN), (1, 3.0), (1, f64::NEG_INFINITY)];
        keys.sort_by(|a, b| order_keys(*a, *b));
        assert_eq!(keys.map(|k| k.0), [1, 1, 1, 2]);
        assert_eq!(keys[..2], [(1, f64::NEG_INFINITY), (1, 3.0)]);
        assert!(keys[2].1.is_nan(), "NaN after every number of its series");
    }
}
