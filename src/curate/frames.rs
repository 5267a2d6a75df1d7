//! Time rules: frames are ordered by TriggerTime (InstanceNumber breaks ties); the study's
//! number of frames T is the mode of CardiacNumberOfImages (else of the slices' frame counts); a
//! missing frame — a trigger-time gap of about twice the frame interval, or frames missing at the
//! end of the cycle — is filled with a copy of the previous frame, and frames beyond T are removed.

use super::slices::Acquisition;
use super::spacing::mode_rounded;
use crate::findings::{Log, Problem, Resolution};

/// One time point of a slice: an index into the acquisition's images, and whether it is a copy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameRef {
    pub image: usize,
    pub copied: bool,
}

/// T for the study: mode of CardiacNumberOfImages, else of frame counts.
pub fn frames_per_cycle<'a>(acqs: impl Iterator<Item = &'a Acquisition> + Clone) -> usize {
    let cardiac = acqs.clone().flat_map(|a| a.images.iter().filter_map(|i| i.header.cardiac_number_of_images));
    mode_rounded(cardiac.map(|v| v as f64), 1.0).or_else(|| mode_rounded(acqs.map(|a| a.images.len() as f64), 1.0)).unwrap_or(1.0) as usize
}

/// Median interval between consecutive trigger times over all slices (ms).
pub fn frame_interval<'a>(acqs: impl Iterator<Item = &'a Acquisition>) -> Option<f64> {
    let mut d: Vec<f64> = acqs
        .flat_map(|a| {
            let mut t: Vec<f64> = a.images.iter().filter_map(|i| i.header.trigger_time_ms).collect();
            t.sort_by(f64::total_cmp);
            t.windows(2).map(|w| w[1] - w[0]).filter(|x| *x > 0.0).collect::<Vec<_>>()
        })
        .collect();
    d.sort_by(f64::total_cmp);
    d.get(d.len() / 2).copied()
}

/// Orders one acquisition's frames and brings them to exactly `t` time points.
/// Removed frames are dropped from `acq.images` order-wise (returned refs never point at them).
pub fn order(acq: &mut Acquisition, t: usize, interval_ms: Option<f64>, study_id: &str, log: &mut Log) -> Vec<FrameRef> {
    acq.images.sort_by(|a, b| {
        let ta = a.header.trigger_time_ms.unwrap_or(f64::INFINITY);
        let tb = b.header.trigger_time_ms.unwrap_or(f64::INFINITY);
        ta.total_cmp(&tb)
            .then(a.header.instance_number.cmp(&b.header.instance_number))
            .then(super::slices::key_order(&a.key).cmp(&super::slices::key_order(&b.key)))
    });
    if acq.images.len() > t {
        let extra = acq.images.split_off(t);
        log.add(
            study_id,
            Problem::ExtraTimePoints,
            Resolution::FramesRemoved,
            extra.first().map(|i| i.key.as_str()),
            format!("{} frames where the study has {t}; the frames after the first {t} by trigger time were removed", t + extra.len()),
            extra.len(),
        );
    }
    let mut refs: Vec<FrameRef> = Vec::with_capacity(t);
    for (idx, img) in acq.images.iter().enumerate() {
        if let (Some(prev), Some(dt)) = (refs.last().copied(), interval_ms) {
            let gap = img.header.trigger_time_ms.zip(acq.images[prev.image].header.trigger_time_ms).map(|(a, b)| a - b);
            if let Some(gap) = gap.filter(|g| *g / dt > 1.5) {
                let room = t.saturating_sub(acq.images.len() - idx + refs.len());
                let missing = ((gap / dt).round() as usize).saturating_sub(1).min(room);
                if missing > 0 {
                    log.add(
                        study_id,
                        Problem::MissingTimePoint,
                        Resolution::PreviousFrameCopied,
                        Some(&img.key),
                        format!("trigger-time gap of {gap:.1} ms (interval {dt:.1} ms) before this frame: {missing} frame(s) filled"),
                        0,
                    );
                    refs.extend((0..missing).map(|_| FrameRef { image: prev.image, copied: true }));
                }
            }
        }
        refs.push(FrameRef { image: idx, copied: false });
    }
    if refs.len() < t && !refs.is_empty() {
        let last = refs.last().unwrap().image;
        log.add(
            study_id,
            Problem::MissingTimePoint,
            Resolution::PreviousFrameCopied,
            Some(&acq.images[last].key),
            format!("{} of {t} frames; {} missing at the end of the cycle filled", refs.len(), t - refs.len()),
            0,
        );
        refs.resize(t, FrameRef { image: last, copied: true });
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curate::testkit::{image, stack};
    use crate::findings::{Log, Problem};

    #[test]
    fn a_missing_middle_frame_is_filled_from_its_predecessor() {
        let mut acqs = stack(&[0.0], 5);
        acqs[0].images.retain(|i| i.header.trigger_time_ms != Some(80.0));
        let mut log = Log::default();
        let refs = order(&mut acqs[0], 5, Some(40.0), "x", &mut log);
        let trig: Vec<f64> = refs.iter().map(|r| acqs[0].images[r.image].header.trigger_time_ms.unwrap()).collect();
        assert_eq!(trig, vec![0.0, 40.0, 40.0, 120.0, 160.0]);
        assert_eq!(refs.iter().filter(|r| r.copied).count(), 1);
        assert_eq!(log.findings[0].problem, Problem::MissingTimePoint);
    }

    #[test]
    fn frames_are_ordered_by_trigger_time_and_extras_removed() {
        let mut acqs = stack(&[0.0], 4);
        acqs[0].images.reverse();
        acqs[0].images.push(image(1, 0.0, 400.0, 4));
        let mut log = Log::default();
        let refs = order(&mut acqs[0], 4, Some(40.0), "x", &mut log);
        let trig: Vec<f64> = refs.iter().map(|r| acqs[0].images[r.image].header.trigger_time_ms.unwrap()).collect();
        assert_eq!(trig, vec![0.0, 40.0, 80.0, 120.0]);
        assert_eq!((log.findings[0].problem, log.excluded()), (Problem::ExtraTimePoints, 1));
    }

    #[test]
    fn frames_per_cycle_is_the_mode_of_cardiac_number_of_images() {
        let acqs = stack(&[0.0, 10.0, 20.0], 25);
        assert_eq!(frames_per_cycle(acqs.iter()), 25);
    }
}
