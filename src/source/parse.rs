//! DICOM bytes → parsed images (header + 16-bit pixels), or a reason to quarantine the file.
//!
//! Parsing runs on a blocking thread (see [`crate::source::load_study`]); this module is pure.
//! Supported: uncompressed (implicit/explicit VR little endian, explicit big endian, deflated),
//! JPEG baseline/extended/lossless, JPEG-LS (lossless and near-lossless), JPEG 2000 (lossless
//! and lossy) and RLE; MONOCHROME images of 8 or 16 bits, one per file (classic) or many
//! (enhanced and legacy-converted multi-frame MR, one image per frame, decoded frame by frame;
//! see [`super::multiframe`]). Anything else is refused with a reason that says what the file is
//! and what to do.

use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::OpenFileOptions;
use dicom_object::file::ReadPreamble;
use dicom_pixeldata::PixelDecoder;

use super::header::ImageHeader;
use super::multiframe::{self, Placement};

/// Why a file cannot be used; becomes an `unreadable_file` finding with this text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unreadable {
    #[error("empty object (0 bytes)")]
    Empty,
    #[error("not a DICOM file: no `DICM` marker at byte 128 (is it a DICOM Part 10 file?)")]
    NotDicom,
    #[error("DICOM parse failed (truncated or corrupt file?): {0}")]
    Corrupt(String),
    #[error("unsupported transfer syntax {uid} ({name}): convert it to explicit VR little endian, e.g. `gdcmconv --raw`")]
    UnsupportedTransferSyntax { uid: String, name: String },
    #[error("no pixel data (7FE0,0010): the file holds no image")]
    NoPixelData,
    #[error("{0}")]
    MissingAttribute(String),
    #[error("multi-frame image: {0}")]
    MultiFrame(String),
    #[error("unsupported pixel format: {0}")]
    PixelFormat(String),
    #[error("pixel data decoding failed: {0}")]
    Decode(String),
}

/// One parsed image: a classic file's, or one frame of a multi-frame file.
#[derive(Debug, Clone)]
pub struct ParsedImage {
    pub header: ImageHeader,
    /// Row-major, `rows × cols`, raw stored values (negative signed values clamped to 0).
    pub pixels: Vec<u16>,
    /// Where a multi-frame file's frame is (`None` for a classic file's image).
    pub frame: Option<Placement>,
}

/// A file's multi-frame count: NumberOfFrames when the file holds functional groups or more
/// than one frame; `None` for a classic single-frame image.
fn multi_frame(obj: &dicom_object::InMemDicomObject) -> Option<u32> {
    let frames = obj.get(tags::NUMBER_OF_FRAMES).and_then(|e| e.to_int::<u32>().ok()).unwrap_or(1);
    let enhanced =
        obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).is_some() || obj.get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).is_some();
    (frames > 1 || enhanced).then_some(frames.max(1))
}

/// Parses a whole DICOM Part 10 file held in memory: one image, or one per frame (in the
/// file's frame order), each frame decoded on its own.
pub fn parse_dicom(bytes: &[u8]) -> Result<Vec<ParsedImage>, Unreadable> {
    images(open(bytes, None)?)
}

/// [`parse_dicom`] of bytes it owns: they are let go once parsed, before any frame is decoded,
/// so a large multi-frame file is held as its data set and its decoded frames, not also as
/// its bytes.
pub fn parse_dicom_owned(bytes: bytes::Bytes) -> Result<Vec<ParsedImage>, Unreadable> {
    let obj = open(&bytes, None)?;
    drop(bytes);
    images(obj)
}

fn images(obj: dicom_object::DefaultDicomObject) -> Result<Vec<ParsedImage>, Unreadable> {
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(Unreadable::NoPixelData);
    }
    let Some(count) = multi_frame(&obj) else {
        let header = ImageHeader::read(&*obj).map_err(|e| Unreadable::MissingAttribute(e.to_string()))?;
        let pixels = decode_frame(&obj, header.rows, header.cols, None)?;
        return Ok(vec![ParsedImage { header, pixels, frame: None }]);
    };
    let placed = multiframe::frames(&obj, count).map_err(Unreadable::MultiFrame)?;
    let mut out = Vec::with_capacity(placed.len());
    for (header, place) in placed {
        let pixels = decode_frame(&obj, header.rows, header.cols, Some(place.number - 1)).map_err(|e| match e {
            Unreadable::Decode(m) => Unreadable::Decode(format!("frame {} of {count}: {m}", place.number)),
            other => other,
        })?;
        out.push(ParsedImage { header, pixels, frame: Some(place) });
    }
    Ok(out)
}

/// Decodes every frame's pixels (rows × cols each, in file order) without placing the frames:
/// what a file holds even where its geometry is missing (for checks against other decoders).
pub fn decode_frames(bytes: &[u8]) -> Result<Vec<Vec<u16>>, Unreadable> {
    use super::header::int;
    let obj = open(bytes, None)?;
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(Unreadable::NoPixelData);
    }
    let (rows, cols) = (int(&*obj, tags::ROWS).unwrap_or(0) as u32, int(&*obj, tags::COLUMNS).unwrap_or(0) as u32);
    match multi_frame(&obj) {
        None => Ok(vec![decode_frame(&obj, rows, cols, None)?]),
        Some(count) => (0..count).map(|i| decode_frame(&obj, rows, cols, Some(i))).collect(),
    }
}

/// Parses the header only (stops before the pixel data), for grouping passes: the image's, or
/// a multi-frame file's first frame's.
pub fn parse_header(bytes: &[u8]) -> Result<ImageHeader, Unreadable> {
    let obj = open(bytes, Some(tags::PIXEL_DATA))?;
    match multi_frame(&obj) {
        None => ImageHeader::read(&*obj).map_err(|e| Unreadable::MissingAttribute(e.to_string())),
        Some(count) => {
            let mut placed = multiframe::frames(&obj, count).map_err(Unreadable::MultiFrame)?;
            Ok(placed.swap_remove(0).0)
        }
    }
}

fn open(bytes: &[u8], until: Option<dicom_core::Tag>) -> Result<dicom_object::DefaultDicomObject, Unreadable> {
    if bytes.is_empty() {
        return Err(Unreadable::Empty);
    }
    let preamble = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        ReadPreamble::Always
    } else if bytes.starts_with(b"DICM") {
        ReadPreamble::Never
    } else {
        return Err(Unreadable::NotDicom);
    };
    let mut opts = OpenFileOptions::new().read_preamble(preamble);
    if let Some(tag) = until {
        opts = opts.read_until(tag);
    }
    let obj = opts.from_reader(bytes).map_err(|e| unknown_syntax(bytes).unwrap_or_else(|| Unreadable::Corrupt(flatten(&e))))?;
    let ts_uid = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    match dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(&ts_uid) {
        Some(ts) if ts.can_decode_all() || until.is_some() => Ok(obj),
        Some(ts) => Err(Unreadable::UnsupportedTransferSyntax { uid: ts_uid, name: ts.name().to_string() }),
        None => Err(Unreadable::UnsupportedTransferSyntax { uid: ts_uid, name: "unknown".into() }),
    }
}

/// A file that did not open because its file meta names a transfer syntax no codec knows.
fn unknown_syntax(bytes: &[u8]) -> Option<Unreadable> {
    let meta = bytes.get(if bytes.starts_with(b"DICM") { 0 } else { 128 }..)?;
    let table = dicom_object::meta::FileMetaTable::from_reader(meta).ok()?;
    let uid = table.transfer_syntax().trim_end_matches('\0').to_string();
    dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(&uid)
        .is_none()
        .then(|| Unreadable::UnsupportedTransferSyntax { uid, name: "unknown".into() })
}

fn flatten(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// Decodes one image: the whole pixel data of a classic file, or frame `frame` (0-based) of a
/// multi-frame one (only that frame is decoded).
fn decode_frame(obj: &dicom_object::DefaultDicomObject, rows: u32, cols: u32, frame: Option<u32>) -> Result<Vec<u16>, Unreadable> {
    let px = match frame {
        None => obj.decode_pixel_data(),
        Some(i) => obj.decode_pixel_data_frame(i),
    }
    .map_err(|e| Unreadable::Decode(flatten(&e)))?;
    if px.samples_per_pixel() != 1 {
        return Err(Unreadable::PixelFormat(format!(
            "{} samples per pixel (colour); cine magnitude images are MONOCHROME",
            px.samples_per_pixel()
        )));
    }
    let n = rows as usize * cols as usize;
    let data = px.data();
    let signed = px.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
    let out: Vec<u16> = match px.bits_allocated() {
        16 => {
            if data.len() < 2 * n {
                return Err(Unreadable::Decode(format!("pixel data holds {} bytes, {} expected", data.len(), 2 * n)));
            }
            let raw = data[..2 * n].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
            if signed { raw.map(|v| (v as i16).max(0) as u16).collect() } else { raw.collect() }
        }
        8 => {
            if data.len() < n {
                return Err(Unreadable::Decode(format!("pixel data holds {} bytes, {} expected", data.len(), n)));
            }
            if signed {
                data[..n].iter().map(|v| (*v as i8).max(0) as u16).collect()
            } else {
                data[..n].iter().map(|v| *v as u16).collect()
            }
        }
        b => return Err(Unreadable::PixelFormat(format!("{b} bits allocated; 8 and 16 are supported"))),
    };
    Ok(out)
}
