//! Images: their displayed size from the header alone, and thumbnails. Decoding is bounded
//! twice — the header's pixel count is checked before any pixel is decoded, and the
//! decoder's allocations are capped — so a decompression bomb is refused, not expanded.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::MediaError;

/// The image types that are decoded (measured and thumbnailed); every other type is
/// stored as it came.
pub fn is_decoded(mime: &str) -> bool {
    format_of(mime).is_some()
}

fn format_of(mime: &str) -> Option<ImageFormat> {
    match mime {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

fn unreadable(mime: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::Unreadable {
        mime: mime.to_owned(),
        reason: e.to_string(),
    }
}

/// A decoder over `bytes`, the format given (never guessed again), allocations capped.
fn decoder<'a>(
    bytes: &'a [u8],
    mime: &str,
    max_alloc: u64,
) -> Result<impl ImageDecoder + 'a, MediaError> {
    let Some(format) = format_of(mime) else {
        return Err(unreadable(mime, "not a decoded image type"));
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);
    reader.into_decoder().map_err(|e| unreadable(mime, e))
}

/// Whether an orientation turns the image on its side (width and height swap).
fn turns(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// The size an image is shown at (EXIF orientation applied), read from its first bytes;
/// refused when it declares more than `max_pixels` or its header does not decode.
pub fn displayed_size(
    head: &[u8],
    mime: &str,
    max_pixels: u64,
) -> Result<Option<(u32, u32)>, MediaError> {
    if !is_decoded(mime) {
        return Ok(None);
    }
    let mut decoder = decoder(head, mime, 64 * 1024 * 1024)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(MediaError::TooManyPixels {
            width,
            height,
            max: max_pixels,
        });
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    Ok(Some(if turns(orientation) {
        (height, width)
    } else {
        (width, height)
    }))
}

/// A thumbnail, encoded.
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub mime_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// A thumbnail of an image at most `edge` pixels on its longer side: upright (EXIF
/// orientation applied), re-encoded from the pixels alone (so no EXIF, GPS or other
/// metadata of the original survives), JPEG unless the image has transparency (PNG).
/// Blocking: run it off the async threads.
pub fn thumbnail(
    bytes: &[u8],
    mime: &str,
    max_pixels: u64,
    edge: u32,
) -> Result<Thumbnail, MediaError> {
    // Four bytes per pixel decoded, twice over for the conversions on the way.
    let mut decoder = decoder(bytes, mime, max_pixels.saturating_mul(8))?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(MediaError::TooManyPixels {
            width,
            height,
            max: max_pixels,
        });
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| unreadable(mime, e))?;
    image.apply_orientation(orientation);
    let small = if image.width() > edge || image.height() > edge {
        image.thumbnail(edge, edge)
    } else {
        image
    };
    let mut out = Cursor::new(Vec::new());
    let mime_type = if small.color().has_alpha() {
        small
            .write_to(&mut out, ImageFormat::Png)
            .map_err(|e| unreadable(mime, e))?;
        "image/png"
    } else {
        let rgb = DynamicImage::ImageRgb8(small.to_rgb8());
        rgb.write_with_encoder(JpegEncoder::new_with_quality(&mut out, 82))
            .map_err(|e| unreadable(mime, e))?;
        "image/jpeg"
    };
    Ok(Thumbnail {
        bytes: out.into_inner(),
        mime_type,
        width: small.width(),
        height: small.height(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = DynamicImage::new_rgb8(width, height);
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).ok();
        out.into_inner()
    }

    #[test]
    fn a_header_declaring_too_many_pixels_is_refused_before_decoding() {
        let mut bomb = png(1, 1);
        // IHDR's width and height (bytes 16..24) say 100,000 × 100,000.
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        // A valid chunk all the same: its CRC (over type and data) recomputed.
        let mut crc = flate2::Crc::new();
        crc.update(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        let refused = displayed_size(&bomb, "image/png", 50_000_000);
        assert!(matches!(
            refused,
            Err(MediaError::TooManyPixels { width: 100_000, .. })
        ));
        let refused = thumbnail(&bomb, "image/png", 50_000_000, 320);
        assert!(matches!(refused, Err(MediaError::TooManyPixels { .. })));
    }

    #[test]
    fn a_thumbnail_keeps_the_aspect_and_fits_the_edge() {
        let made = thumbnail(&png(1000, 500), "image/png", 50_000_000, 320);
        let Ok(made) = made else {
            panic!("no thumbnail");
        };
        assert_eq!((made.width, made.height), (320, 160));
        assert_eq!(made.mime_type, "image/jpeg");
        assert_eq!(
            displayed_size(&png(7, 3), "image/png", 100).ok(),
            Some(Some((7, 3)))
        );
    }
}
