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

#[cfg(test)]
mod tests {
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, PrimitiveValue, VR};

    use super::*;

    /// A decimal string element of `\\`-separated values.
    fn ds(tag: Tag, v: &str) -> InMemElement {
        DataElement::new(tag, VR::DS, PrimitiveValue::Strs(v.split('\\').map(String::from).collect()))
    }

    fn group(tag: Tag, elements: Vec<InMemElement>) -> InMemElement {
        DataElement::new(tag, VR::SQ, DataSetSequence::from(vec![InMemDicomObject::from_element_iter(elements)]))
    }

    /// An enhanced MR data set as scanners write it: geometry shared or per frame in functional
    /// groups, the trigger delay in Cardiac Synchronization, stacks in Frame Content.
    fn enhanced(positions: &[(&str, &str, f64)]) -> InMemDicomObject {
        let per_frame: Vec<InMemDicomObject> = positions
            .iter()
            .map(|(stack, pos, trigger)| {
                InMemDicomObject::from_element_iter([
                    group(tags::PLANE_POSITION_SEQUENCE, vec![ds(tags::IMAGE_POSITION_PATIENT, pos)]),
                    group(
                        tags::CARDIAC_SYNCHRONIZATION_SEQUENCE,
                        vec![DataElement::new(tags::NOMINAL_CARDIAC_TRIGGER_DELAY_TIME, VR::FD, PrimitiveValue::from(*trigger))],
                    ),
                    group(tags::FRAME_CONTENT_SEQUENCE, vec![DataElement::new(tags::STACK_ID, VR::SH, PrimitiveValue::from(*stack))]),
                ])
            })
            .collect();
        InMemDicomObject::from_element_iter([
            DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(4u16)),
            DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(6u16)),
            DataElement::new(tags::SERIES_NUMBER, VR::IS, PrimitiveValue::from("7")),
            DataElement::new(
                tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
                VR::SQ,
                DataSetSequence::from(vec![InMemDicomObject::from_element_iter([
                    group(tags::PLANE_ORIENTATION_SEQUENCE, vec![ds(tags::IMAGE_ORIENTATION_PATIENT, "1\\0\\0\\0\\1\\0")]),
                    group(tags::PIXEL_MEASURES_SEQUENCE, vec![ds(tags::PIXEL_SPACING, "1.5\\1.25"), ds(tags::SLICE_THICKNESS, "8")]),
                ])]),
            ),
            DataElement::new(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, VR::SQ, DataSetSequence::from(per_frame)),
        ])
    }

    #[test]
    fn each_frame_reads_its_groups_then_the_shared_ones() {
        let obj = enhanced(&[("1", "0\\0\\0", 0.0), ("1", "0\\0\\0", 40.0), ("1", "0\\0\\8", 0.0), ("2", "0\\0\\0", 0.0)]);
        let f = frames(&obj, 4).unwrap();
        assert_eq!(f.len(), 4);
        let (h, p) = &f[1];
        assert_eq!((h.rows, h.cols, h.pixel_spacing, h.orientation), (4, 6, [1.5, 1.25], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]));
        assert_eq!((h.trigger_time_ms, h.slice_thickness, h.series_number), (Some(40.0), Some(8.0), Some(7)));
        assert_eq!(h.instance_number, Some(2), "a frame without its own number is numbered by its place");
        assert_eq!((p.number, p.stack.as_str()), (2, "1"));
        assert_eq!(f[2].0.position, [0.0, 0.0, 8.0]);
        assert_eq!(f[3].1.stack, "2", "another stack at the same place and time is another series");
    }

    #[test]
    fn frames_that_cannot_be_placed_are_refused_with_the_reason() {
        let twice = enhanced(&[("1", "0\\0\\0", 0.0), ("1", "0\\0\\0", 0.0)]);
        let e = frames(&twice, 2).unwrap_err();
        assert!(e.contains("frames 1 and 2 share their stack, position") && e.contains("trigger 0 ms"), "{e}");
        let e = frames(&enhanced(&[("1", "0\\0\\0", 0.0)]), 3).unwrap_err();
        assert!(e.contains("NumberOfFrames is 3 but the Per-Frame Functional Groups Sequence (5200,9230) has 1 items"), "{e}");
        let no_position = InMemDicomObject::from_element_iter([
            DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(4u16)),
            DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(6u16)),
        ]);
        let e = frames(&no_position, 2).unwrap_err();
        assert!(e.starts_with("frame 1 of 2: missing or unreadable attribute ImagePositionPatient"), "{e}");
    }
}
