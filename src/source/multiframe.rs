//! Enhanced and legacy-converted multi-frame MR: each frame's attributes, as the single-frame
//! file it stands for would hold them.
//!
//! A multi-frame file keeps what differs between frames in the Per-Frame Functional Groups
//! (one item per frame) and what they share in the Shared Functional Groups; each group is a
//! one-item sequence (Plane Position, Plane Orientation, Pixel Measures, Cardiac
//! Synchronization, Frame Content, and in legacy-converted files the Unassigned Per-Frame and
//! Shared Converted Attributes, which hold TriggerTime, InstanceNumber, SeriesNumber, …). A
//! frame's attribute is looked up in its own groups, then the shared ones, then the file's data
//! set ([`FrameView`]), so [`ImageHeader::read`] reads a frame as it reads a classic image.
//!
//! Frame Content places frames that carry no trigger time (its temporal position index orders
//! them) and names their stack (its stack id, or the series number a legacy file kept per
//! frame); frames that share a stack, a position and a time cannot be placed and make the file
//! unreadable, as does a frame without geometry, with the attribute named.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

use super::header::{Attributes, ImageHeader, int, text};

/// One frame's attributes: its functional groups, the shared ones, then the file's data set.
pub struct FrameView<'a> {
    layers: Vec<&'a InMemDicomObject>,
}

impl Attributes for FrameView<'_> {
    fn attribute(&self, tag: Tag) -> Option<&InMemElement> {
        self.layers.iter().find_map(|o| o.attribute(tag))
    }
}

/// The items of each functional group sequence in one Functional Groups item.
fn group_items(item: &InMemDicomObject) -> impl Iterator<Item = &InMemDicomObject> {
    item.iter().filter_map(|e| e.items()).flatten()
}

/// Where a frame is: its stack, the time it shows, and its own number.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// 1-based frame number in the file (what `<key>#<n>` names).
    pub number: u32,
    /// The frame's stack within the file: its stack id, else the series number it carries
    /// (legacy-converted files keep each source series' number per frame), else empty.
    pub stack: String,
}

/// A frame's header and placement, or why it cannot be placed.
pub fn frames(obj: &InMemDicomObject, count: u32) -> Result<Vec<(ImageHeader, Placement)>, String> {
    let shared: Vec<&InMemDicomObject> =
        obj.attribute(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items()).map(|i| i.iter().collect()).unwrap_or_default();
    let per_frame = obj.attribute(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items()).unwrap_or(&[]);
    if !per_frame.is_empty() && per_frame.len() != count as usize {
        return Err(format!(
            "NumberOfFrames is {count} but the Per-Frame Functional Groups Sequence (5200,9230) has {} items",
            per_frame.len()
        ));
    }
    let shared_layers: Vec<&InMemDicomObject> = shared.iter().flat_map(|s| group_items(s)).collect();
    let top_series = int(obj, tags::SERIES_NUMBER);
    let mut out = Vec::with_capacity(count as usize);
    for n in 1..=count {
        let own: Vec<&InMemDicomObject> = per_frame.get(n as usize - 1).map(|f| group_items(f).collect()).unwrap_or_default();
        let mut layers = own.clone();
        layers.extend(&shared_layers);
        let groups = FrameView { layers: layers.clone() };
        layers.push(obj);
        let view = FrameView { layers };
        let mut header = ImageHeader::read(&view).map_err(|e| {
            format!(
                "frame {n} of {count}: {e}, in neither its Per-Frame nor the Shared Functional Groups (Plane Position (0020,9113), \
                 Plane Orientation (0020,9116), Pixel Measures (0028,9110)) nor the data set"
            )
        })?;
        let temporal = int(&groups, tags::TEMPORAL_POSITION_INDEX);
        // The instance number a legacy file kept per frame; else the temporal position, else
        // the frame's number (the file's own InstanceNumber names the file, not a frame).
        header.instance_number = int(&groups, tags::INSTANCE_NUMBER).or(temporal).map(|v| v as i32).or(Some(n as i32));
        let series = int(&groups, tags::SERIES_NUMBER);
        let stack =
            text(&groups, tags::STACK_ID).or_else(|| series.filter(|s| Some(*s) != top_series).map(|s| s.to_string())).unwrap_or_default();
        out.push((header, Placement { number: n, stack }));
    }
    same_place_and_time(&out)?;
    Ok(out)
}

/// Two frames of one stack at one position and time cannot both be placed.
fn same_place_and_time(frames: &[(ImageHeader, Placement)]) -> Result<(), String> {
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for (h, p) in frames {
        let time = h.trigger_time_ms.map_or_else(|| format!("#{}", h.instance_number.unwrap_or(0)), |t| format!("{t:.3}"));
        let pos = h.position.map(|v| format!("{v:.3}")).join(",");
        let key = format!("{}|{pos}|{}|{time}", p.stack, h.orientation.map(|v| format!("{v:.4}")).join(","));
        if let Some(first) = seen.insert(key, p.number) {
            return Err(format!(
                "frames {first} and {} share their stack, position ({pos} mm) and time ({}): cannot tell which is which; \
                 split the file or fix its Frame Content and Cardiac Synchronization attributes",
                p.number,
                h.trigger_time_ms.map_or_else(|| "no trigger time, same temporal position".into(), |t| format!("trigger {t} ms"))
            ));
        }
    }
    Ok(())
}
