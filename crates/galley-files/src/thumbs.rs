//! Thumbnails: PocketBase's size syntax and a bounded decoder, so a small file that
//! claims to be a huge image (a decompression bomb) is refused instead of decoded.

use crate::FilesError;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader};
use std::io::Cursor;

/// Where a crop keeps the image, or `Fit` (no crop) and `Resize` (one side 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Center,
    Top,
    Bottom,
    Fit,
    Resize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbSize {
    pub width: u32,
    pub height: u32,
    pub mode: Mode,
}

/// Largest side of a thumbnail; larger sizes are refused when a collection is saved.
pub const MAX_SIDE: u32 = 8192;
/// Largest original decoded (pixels), about 50 megapixels.
pub const MAX_SOURCE_PIXELS: u64 = 50_000_000;
/// Most memory the decoder may allocate.
pub const MAX_DECODE_ALLOC: u64 = 512 << 20;

impl ThumbSize {
    /// `WxH`, `WxHt`, `WxHb`, `WxHf`, `0xH`, `Wx0`; not `0x0`.
    pub fn parse(s: &str) -> Option<ThumbSize> {
        let (w, rest) = s.split_once('x')?;
        let digits = rest.trim_end_matches(['t', 'b', 'f']);
        let suffix = &rest[digits.len()..];
        if w.is_empty() || digits.is_empty() || suffix.len() > 1 {
            return None;
        }
        if !w.bytes().all(|b| b.is_ascii_digit()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let width: u32 = w.parse().ok()?;
        let height: u32 = digits.parse().ok()?;
        if (width == 0 && height == 0) || width > MAX_SIDE || height > MAX_SIDE {
            return None;
        }
        let mode = if width == 0 || height == 0 {
            if !suffix.is_empty() {
                return None;
            }
            Mode::Resize
        } else {
            match suffix {
                "t" => Mode::Top,
                "b" => Mode::Bottom,
                "f" => Mode::Fit,
                _ => Mode::Center,
            }
        };
        Some(ThumbSize {
            width,
            height,
            mode,
        })
    }
}

fn decode(src: &[u8]) -> Result<(DynamicImage, ImageFormat), FilesError> {
    let bad = |e: image::ImageError| FilesError::Image(e.to_string());
    let reader = ImageReader::new(Cursor::new(src))
        .with_guessed_format()
        .map_err(|e| FilesError::Image(e.to_string()))?;
    let format = reader
        .format()
        .ok_or_else(|| FilesError::Image("unknown image format".into()))?;
    let (w, h) = ImageReader::with_format(Cursor::new(src), format)
        .into_dimensions()
        .map_err(bad)?;
    if u64::from(w) * u64::from(h) > MAX_SOURCE_PIXELS {
        return Err(FilesError::Image(format!(
            "the image is {w}x{h}, larger than the {MAX_SOURCE_PIXELS} pixels thumbnails are made from"
        )));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w.max(1));
    limits.max_image_height = Some(h.max(1));
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let mut reader = ImageReader::with_format(Cursor::new(src), format);
    reader.limits(limits);
    Ok((reader.decode().map_err(bad)?, format))
}

fn crop_fill(img: &DynamicImage, w: u32, h: u32, mode: Mode) -> DynamicImage {
    let (sw, sh) = (img.width().max(1), img.height().max(1));
    // Scale so the image covers w×h, then cut the overflow at the anchor.
    let scale = f64::max(f64::from(w) / f64::from(sw), f64::from(h) / f64::from(sh));
    let rw = ((f64::from(sw) * scale).round() as u32).max(w);
    let rh = ((f64::from(sh) * scale).round() as u32).max(h);
    let resized = img.resize_exact(rw, rh, FilterType::Triangle);
    let x = (rw - w) / 2;
    let y = match mode {
        Mode::Top => 0,
        Mode::Bottom => rh - h,
        _ => (rh - h) / 2,
    };
    resized.crop_imm(x, y, w, h)
}

fn transform(img: &DynamicImage, t: ThumbSize) -> DynamicImage {
    match t.mode {
        Mode::Resize => {
            let (sw, sh) = (img.width().max(1), img.height().max(1));
            let (w, h) = if t.width == 0 {
                (
                    ((u64::from(sw) * u64::from(t.height)) / u64::from(sh)).max(1) as u32,
                    t.height,
                )
            } else {
                (
                    t.width,
                    ((u64::from(sh) * u64::from(t.width)) / u64::from(sw)).max(1) as u32,
                )
            };
            img.resize_exact(w.min(MAX_SIDE), h.min(MAX_SIDE), FilterType::Triangle)
        }
        Mode::Fit => {
            if img.width() <= t.width && img.height() <= t.height {
                img.clone()
            } else {
                img.resize(t.width, t.height, FilterType::Triangle)
            }
        }
        m => crop_fill(img, t.width, t.height, m),
    }
}

/// Makes a thumbnail of `src`. JPEG and GIF keep their format, everything else becomes
/// PNG (as PocketBase does). Returns the bytes and their content type.
pub fn render(src: &[u8], t: ThumbSize) -> Result<(Vec<u8>, &'static str), FilesError> {
    let (img, format) = decode(src)?;
    let out = transform(&img, t);
    let (format, mime) = match format {
        ImageFormat::Jpeg => (ImageFormat::Jpeg, "image/jpeg"),
        ImageFormat::Gif => (ImageFormat::Gif, "image/gif"),
        _ => (ImageFormat::Png, "image/png"),
    };
    let out = if format == ImageFormat::Jpeg {
        DynamicImage::ImageRgb8(out.to_rgb8())
    } else {
        out
    };
    let mut buf = Cursor::new(Vec::new());
    out.write_to(&mut buf, format)
        .map_err(|e| FilesError::Image(e.to_string()))?;
    Ok((buf.into_inner(), mime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::new_rgb8(w, h);
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, ImageFormat::Png).expect("png");
        buf.into_inner()
    }

    fn dims(bytes: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory(bytes).expect("decode");
        (img.width(), img.height())
    }

    #[test]
    fn sizes_parse_like_pocketbase() {
        assert_eq!(
            ThumbSize::parse("50x40t"),
            Some(ThumbSize {
                width: 50,
                height: 40,
                mode: Mode::Top
            })
        );
        assert_eq!(ThumbSize::parse("0x40").map(|t| t.mode), Some(Mode::Resize));
        for bad in [
            "0x0", "x10", "10x", "10x10tt", "10x10z", "-1x10", "10 x10", "0x10f", "99999x1", "",
        ] {
            assert_eq!(ThumbSize::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn thumbnails_have_the_asked_size() {
        let src = png(8, 6);
        let t = |s| render(&src, ThumbSize::parse(s).expect("size")).expect("thumb");
        assert_eq!(dims(&t("50x50").0), (50, 50));
        assert_eq!(dims(&t("20x0").0), (20, 15));
        assert_eq!(dims(&t("0x3").0), (4, 3));
        assert_eq!(dims(&t("4x4b").0), (4, 4));
        // Fit never crops and never enlarges.
        assert_eq!(dims(&t("4x4f").0), (4, 3));
        assert_eq!(dims(&t("100x100f").0), (8, 6));
        assert_eq!(t("10x10").1, "image/png");
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        // A PNG header claiming 100000x100000 pixels, with no data behind it.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let t = ThumbSize::parse("10x10").expect("size");
        assert!(matches!(render(&bomb, t), Err(FilesError::Image(_))));
        assert!(render(b"not an image", t).is_err());
        let mut truncated = png(64, 64);
        truncated.truncate(40);
        assert!(render(&truncated, t).is_err());
    }
}
