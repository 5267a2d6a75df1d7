//! DICOM bytes → a parsed image (header + 16-bit pixels), or a reason to quarantine the file.
//!
//! Parsing runs on a blocking thread (see [`crate::source::fetch`]); this module is pure.
//! Supported: uncompressed (implicit/explicit VR little endian, explicit big endian, deflated),
//! JPEG baseline/extended/lossless and RLE, single-frame MONOCHROME images of 8 or 16 bits.
//! Anything else is refused with a reason that says what the file is and what to do.

use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::OpenFileOptions;
use dicom_object::file::ReadPreamble;
use dicom_pixeldata::PixelDecoder;

use super::header::ImageHeader;

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
    #[error("multi-frame image ({0} frames): enhanced multi-frame MR is not supported yet; split it into single frames first")]
    MultiFrame(u32),
    #[error("unsupported pixel format: {0}")]
    PixelFormat(String),
    #[error("pixel data decoding failed: {0}")]
    Decode(String),
}

/// One parsed image.
#[derive(Debug, Clone)]
pub struct ParsedImage {
    pub header: ImageHeader,
    /// Row-major, `rows × cols`, raw stored values (negative signed values clamped to 0).
    pub pixels: Vec<u16>,
}

/// Parses a whole DICOM Part 10 file held in memory.
pub fn parse_dicom(bytes: &[u8]) -> Result<ParsedImage, Unreadable> {
    let obj = open(bytes, None)?;
    let frames = obj.element_opt(tags::NUMBER_OF_FRAMES).ok().flatten().and_then(|e| e.to_int::<u32>().ok()).unwrap_or(1);
    if frames > 1 {
        return Err(Unreadable::MultiFrame(frames));
    }
    let header = ImageHeader::read(&obj).map_err(|e| Unreadable::MissingAttribute(e.to_string()))?;
    let pixels = decode_pixels(&obj, &header)?;
    Ok(ParsedImage { header, pixels })
}

/// Parses the header only (stops before the pixel data); for grouping passes.
pub fn parse_header(bytes: &[u8]) -> Result<ImageHeader, Unreadable> {
    let obj = open(bytes, Some(tags::PIXEL_DATA))?;
    ImageHeader::read(&obj).map_err(|e| Unreadable::MissingAttribute(e.to_string()))
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
    let obj = opts.from_reader(bytes).map_err(|e| Unreadable::Corrupt(flatten(&e)))?;
    let ts_uid = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    match dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(&ts_uid) {
        Some(ts) if ts.can_decode_all() || until.is_some() => Ok(obj),
        Some(ts) => Err(Unreadable::UnsupportedTransferSyntax { uid: ts_uid, name: ts.name().to_string() }),
        None => Err(Unreadable::UnsupportedTransferSyntax { uid: ts_uid, name: "unknown".into() }),
    }
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

fn decode_pixels(obj: &dicom_object::DefaultDicomObject, header: &ImageHeader) -> Result<Vec<u16>, Unreadable> {
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(Unreadable::NoPixelData);
    }
    let px = obj.decode_pixel_data().map_err(|e| Unreadable::Decode(flatten(&e)))?;
    if px.samples_per_pixel() != 1 {
        return Err(Unreadable::PixelFormat(format!(
            "{} samples per pixel (colour); cine magnitude images are MONOCHROME",
            px.samples_per_pixel()
        )));
    }
    let n = header.rows as usize * header.cols as usize;
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
