//! Reading image headers and rendering thumbnails with the `image` crate.
//!
//! CPU-bound and blocking: call from `spawn_blocking`. Decoding is bounded
//! (`decode_limits`) so a small file that claims a huge canvas cannot make
//! the node allocate without limit.

use std::io::Cursor;

use ecommerce_domains::media::{ImageType, MAX_DIMENSION};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// The thumbnail sizes served (longest side, pixels).
pub const THUMBNAIL_SIZES: [u32; 3] = [64, 256, 512];

/// Most memory one decode may allocate.
const MAX_DECODE_BYTES: u64 = 192 << 20;

/// JPEG quality of thumbnails of JPEG images.
const JPEG_QUALITY: u8 = 85;

fn format(ty: ImageType) -> ImageFormat {
    match ty {
        ImageType::Jpeg => ImageFormat::Jpeg,
        ImageType::Png => ImageFormat::Png,
        ImageType::Webp => ImageFormat::WebP,
        ImageType::Gif => ImageFormat::Gif,
    }
}

fn decode_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

fn reader(bytes: &[u8], ty: ImageType) -> ImageReader<Cursor<&[u8]>> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format(ty));
    reader.limits(decode_limits());
    reader
}

/// Width and height from the image's header (the pixels are not decoded).
pub fn dimensions(bytes: &[u8], ty: ImageType) -> Result<(u32, u32), image::ImageError> {
    reader(bytes, ty).into_dimensions()
}

/// What a thumbnail of an image of type `source` is encoded as: JPEG for
/// photos, PNG for the rest (keeps transparency; a GIF gives its first frame).
pub fn thumbnail_type(source: ImageType) -> ImageType {
    match source {
        ImageType::Jpeg => ImageType::Jpeg,
        _ => ImageType::Png,
    }
}

/// A thumbnail whose longest side is at most `size` pixels (never enlarged),
/// encoded as [`thumbnail_type`]`(ty)`.
pub fn thumbnail(bytes: &[u8], ty: ImageType, size: u32) -> Result<Vec<u8>, image::ImageError> {
    let image = reader(bytes, ty).decode()?;
    let small = if image.width() <= size && image.height() <= size {
        image
    } else {
        image.thumbnail(size, size)
    };
    let mut out = Cursor::new(Vec::new());
    match thumbnail_type(ty) {
        ImageType::Jpeg => {
            let rgb = DynamicImage::ImageRgb8(small.to_rgb8());
            let encoder =
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
            rgb.write_with_encoder(encoder)?;
        }
        _ => small.write_to(&mut out, ImageFormat::Png)?,
    }
    Ok(out.into_inner())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `width` × `height` image encoded as `ty` (PNG or JPEG).
    pub(crate) fn sample(width: u32, height: u32, ty: ImageType) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(image)
            .write_to(&mut out, format(ty))
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn dimensions_come_from_the_header_and_thumbnails_fit_the_size() {
        for ty in [ImageType::Png, ImageType::Jpeg] {
            let bytes = sample(300, 150, ty);
            assert_eq!(ImageType::sniff(&bytes), Some(ty));
            assert_eq!(dimensions(&bytes, ty).unwrap(), (300, 150));
            let thumb = thumbnail(&bytes, ty, 64).unwrap();
            assert_eq!(ImageType::sniff(&thumb), Some(thumbnail_type(ty)));
            assert_eq!(dimensions(&thumb, thumbnail_type(ty)).unwrap(), (64, 32));
            let not_enlarged = thumbnail(&bytes, ty, 512).unwrap();
            assert_eq!(
                dimensions(&not_enlarged, thumbnail_type(ty)).unwrap(),
                (300, 150)
            );
        }
    }

    #[test]
    fn truncated_or_mislabelled_images_are_decode_errors() {
        let png = sample(40, 40, ImageType::Png);
        assert!(thumbnail(&png[..png.len() / 2], ImageType::Png, 64).is_err());
        assert!(dimensions(&png[..8], ImageType::Png).is_err());
        assert!(thumbnail(&png, ImageType::Jpeg, 64).is_err());
    }
}
