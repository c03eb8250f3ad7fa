//! Render frames: what the hub keeps of one Octane `ApiRenderImage`, and the decoding of that
//! message from a run-time schema ([`prost_reflect::DynamicMessage`]).
//!
//! Fields are read by their field NUMBERS (the wire facts), so a user's own Octane `protodef/`
//! works even where a field's spelling differs from ours.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost_reflect::{DynamicMessage, Value};

/// `ImageType` values of `ApiRenderImage.type` (top-level enum `octaneapi.ImageType`).
pub mod image_type {
    /// 8-bit RGBA, 4 bytes per pixel.
    pub const LDR_RGBA: i32 = 0;
    /// 32-bit float RGBA, 16 bytes per pixel (four little-endian f32).
    pub const HDR_RGBA: i32 = 2;

    /// The enum's value name without the `IMAGE_TYPE_` prefix, for messages.
    pub fn name(value: i32) -> &'static str {
        match value {
            0 => "LDR_RGBA",
            1 => "LDR_MONO",
            2 => "HDR_RGBA",
            3 => "HDR_MONO",
            4 => "LDR_MONO_ALPHA",
            5 => "HDR_MONO_ALPHA",
            6 => "HALF_RGBA",
            7 => "HALF_MONO",
            8 => "HALF_MONO_ALPHA",
            _ => "unknown",
        }
    }
}

/// The largest width or height accepted from the upstream (JPEG's own limit is 65535).
pub const MAX_DIMENSION: u32 = 32_768;
/// The largest pixel count accepted from the upstream (8K x 8K).
pub const MAX_PIXELS: u64 = 8192 * 8192;

/// Why an `ApiRenderImage` could not be turned into a frame.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    /// An image type other than LDR_RGBA and HDR_RGBA.
    #[error("image type {value} ({name}) is not supported; only LDR_RGBA (0) and HDR_RGBA (2) are decoded", name = image_type::name(*value))]
    UnsupportedType {
        /// The `ImageType` number.
        value: i32,
    },
    /// Zero or oversized width or height.
    #[error("image size {width}x{height} is out of range (1..={MAX_DIMENSION} per side, at most {MAX_PIXELS} pixels)")]
    BadSize {
        /// `size.x`.
        width: u32,
        /// `size.y`.
        height: u32,
    },
    /// The buffer cannot hold the image at any reading of `pitch`.
    #[error("image buffer of {len} bytes is too short for {width}x{height} at {bytes_per_pixel} bytes per pixel with pitch {pitch}")]
    BufferTooShort {
        /// Bytes in `buffer.data`.
        len: usize,
        /// `size.x`.
        width: u32,
        /// `size.y`.
        height: u32,
        /// 4 for LDR_RGBA, 16 for HDR_RGBA.
        bytes_per_pixel: usize,
        /// `pitch` as sent.
        pitch: u32,
    },
    /// The `render_images` array was empty.
    #[error("the render result holds no image")]
    NoImage,
}

/// Pixel data of a frame, tightly packed (no row padding), rows top to bottom.
#[derive(Clone, Debug)]
pub enum Pixels {
    /// 8-bit RGBA, `width * height * 4` bytes, sRGB-encoded as Octane tonemapped it.
    Rgba8(Bytes),
    /// Linear float RGBA, `width * height * 4` values.
    RgbaF32(Vec<f32>),
}

impl Pixels {
    /// True for float (HDR) pixels.
    pub fn is_hdr(&self) -> bool {
        matches!(self, Pixels::RgbaF32(_))
    }

    /// Bytes held by the pixel data.
    pub fn byte_len(&self) -> usize {
        match self {
            Pixels::Rgba8(b) => b.len(),
            Pixels::RgbaF32(v) => v.len() * 4,
        }
    }
}

/// One decoded render image with the metadata Octane sent alongside it.
#[derive(Clone, Debug)]
pub struct RenderImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixels, tightly packed.
    pub pixels: Pixels,
    /// `ImageType` number as sent (0 or 2).
    pub image_type: i32,
    /// `NamedColorSpace` number as sent.
    pub color_space: i32,
    /// `isLinear` as sent.
    pub is_linear: bool,
    /// `renderPassId` number as sent.
    pub render_pass_id: i32,
    /// Samples per pixel of the tonemapped image.
    pub tonemapped_samples_per_pixel: f32,
    /// Samples per pixel calculated so far.
    pub calculated_samples_per_pixel: f32,
    /// Samples per second.
    pub samples_per_second: f32,
    /// Seconds since the render started.
    pub render_time: f32,
    /// The scene's change level when the image was made.
    pub change_level: u64,
    /// `hasPendingUpdates` as sent.
    pub has_pending_updates: bool,
    /// `hasAlpha` as sent.
    pub has_alpha: bool,
    /// A cheap fingerprint of the source buffer, for spotting duplicate deliveries.
    pub fingerprint: u64,
}

impl RenderImage {
    /// True when `other` is the same image delivered again (real Octane sends each twice):
    /// same change level, same samples per pixel, same size and same buffer fingerprint.
    pub fn is_duplicate_of(&self, other: &RenderImage) -> bool {
        self.change_level == other.change_level
            && self.tonemapped_samples_per_pixel.to_bits()
                == other.tonemapped_samples_per_pixel.to_bits()
            && self.width == other.width
            && self.height == other.height
            && self.image_type == other.image_type
            && self.fingerprint == other.fingerprint
    }
}

/// A frame as the hub publishes it: a decoded image, its place in the sequence and when it
/// reached the gateway.
#[derive(Debug)]
pub struct Frame {
    /// Grows by one per distinct upstream frame, across reconnects.
    pub seq: u64,
    /// When the frame reached the gateway, microseconds since the Unix epoch.
    pub arrived_unix_micros: u64,
    /// When the frame reached the gateway, monotonic (for latency metrics).
    pub arrived: Instant,
    /// The callback id of the registration that delivered the frame.
    pub callback_id: i32,
    /// The `user_data` the upstream sent with the notification.
    pub user_data: u64,
    /// The image.
    pub image: RenderImage,
}

impl Frame {
    /// Wraps an image that reached the gateway now.
    pub fn new(seq: u64, callback_id: i32, user_data: u64, image: RenderImage) -> Frame {
        Frame {
            seq,
            arrived_unix_micros: unix_micros_now(),
            arrived: Instant::now(),
            callback_id,
            user_data,
            image,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.image.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.image.height
    }

    /// True when the source image was float (HDR).
    pub fn is_hdr(&self) -> bool {
        self.image.pixels.is_hdr()
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch as a float, like Python's `time.time()`.
pub fn unix_seconds_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Field numbers of `octaneapi.ApiRenderImage` (wire facts).
mod field {
    pub const TYPE: u32 = 1;
    pub const COLOR_SPACE: u32 = 2;
    pub const IS_LINEAR: u32 = 3;
    pub const SIZE: u32 = 5;
    pub const PITCH: u32 = 6;
    pub const BUFFER: u32 = 7;
    pub const RENDER_PASS_ID: u32 = 8;
    pub const TONEMAPPED_SPP: u32 = 9;
    pub const CALCULATED_SPP: u32 = 10;
    pub const SAMPLES_PER_SECOND: u32 = 13;
    pub const RENDER_TIME: u32 = 14;
    pub const CHANGE_LEVEL: u32 = 15;
    pub const HAS_PENDING_UPDATES: u32 = 16;
    pub const HAS_ALPHA: u32 = 18;
}

fn field_value<'a>(msg: &'a DynamicMessage, number: u32) -> Option<Cow<'a, Value>> {
    msg.get_field_by_number(number)
}

fn get_u32(msg: &DynamicMessage, number: u32) -> u32 {
    field_value(msg, number)
        .and_then(|v| v.as_u32())
        .unwrap_or(0)
}

fn get_u64(msg: &DynamicMessage, number: u32) -> u64 {
    field_value(msg, number)
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

fn get_f32(msg: &DynamicMessage, number: u32) -> f32 {
    field_value(msg, number)
        .and_then(|v| v.as_f32())
        .unwrap_or(0.0)
}

fn get_bool(msg: &DynamicMessage, number: u32) -> bool {
    field_value(msg, number)
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

fn get_enum(msg: &DynamicMessage, number: u32) -> i32 {
    field_value(msg, number)
        .and_then(|v| match v.as_ref() {
            Value::EnumNumber(n) => Some(*n),
            Value::I32(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

fn get_message(msg: &DynamicMessage, number: u32) -> Option<DynamicMessage> {
    field_value(msg, number).and_then(|v| v.as_message().cloned())
}

fn get_bytes(msg: &DynamicMessage, number: u32) -> Bytes {
    field_value(msg, number)
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default()
}

/// Picks the image to show from an `ApiArrayApiRenderImage`: the first beauty pass
/// (`renderPassId` 0), else the first image.
pub fn pick_image(array: &DynamicMessage) -> Result<DynamicMessage, ImageError> {
    let Some(list) = field_value(array, 1) else {
        return Err(ImageError::NoImage);
    };
    let Some(images) = list.as_list() else {
        return Err(ImageError::NoImage);
    };
    let messages: Vec<&DynamicMessage> = images.iter().filter_map(|v| v.as_message()).collect();
    messages
        .iter()
        .find(|m| get_enum(m, field::RENDER_PASS_ID) == 0)
        .or_else(|| messages.first())
        .map(|m| (*m).clone())
        .ok_or(ImageError::NoImage)
}

/// Decodes one `octaneapi.ApiRenderImage`, honouring `size` and `pitch`.
///
/// `pitch` is read as a row stride in pixels (what octaneweb's reference server sends) or in
/// bytes, whichever fits the buffer; 0 means "rows are packed".
pub fn decode_render_image(msg: &DynamicMessage) -> Result<RenderImage, ImageError> {
    let image_type = get_enum(msg, field::TYPE);
    let bytes_per_pixel = match image_type {
        image_type::LDR_RGBA => 4usize,
        image_type::HDR_RGBA => 16usize,
        other => return Err(ImageError::UnsupportedType { value: other }),
    };
    let (width, height) = match get_message(msg, field::SIZE) {
        Some(size) => (get_u32(&size, 1), get_u32(&size, 2)),
        None => (0, 0),
    };
    if width == 0
        || height == 0
        || width > MAX_DIMENSION
        || height > MAX_DIMENSION
        || u64::from(width) * u64::from(height) > MAX_PIXELS
    {
        return Err(ImageError::BadSize { width, height });
    }
    let pitch = get_u32(msg, field::PITCH);
    let (data, declared_size) = match get_message(msg, field::BUFFER) {
        Some(buffer) => (get_bytes(&buffer, 1), get_u32(&buffer, 2)),
        None => (Bytes::new(), 0),
    };
    // `buffer.size` may state fewer bytes than were sent; never read past either.
    let len = match usize::try_from(declared_size) {
        Ok(size) if size > 0 && size < data.len() => size,
        _ => data.len(),
    };
    let data = data.slice(..len);

    // Sizes are bounded by MAX_PIXELS, so these products fit in usize on 64-bit targets.
    let w = width as usize;
    let h = height as usize;
    let row_bytes = w * bytes_per_pixel;
    let stride = row_stride(pitch, row_bytes, bytes_per_pixel, h, data.len()).ok_or(
        ImageError::BufferTooShort {
            len: data.len(),
            width,
            height,
            bytes_per_pixel,
            pitch,
        },
    )?;
    let fingerprint = fingerprint(&data);
    let pixels = if image_type == image_type::LDR_RGBA {
        Pixels::Rgba8(pack_rows(&data, stride, row_bytes, h))
    } else {
        Pixels::RgbaF32(unpack_f32_rows(&data, stride, row_bytes, h))
    };
    Ok(RenderImage {
        width,
        height,
        pixels,
        image_type,
        color_space: get_enum(msg, field::COLOR_SPACE),
        is_linear: get_bool(msg, field::IS_LINEAR),
        render_pass_id: get_enum(msg, field::RENDER_PASS_ID),
        tonemapped_samples_per_pixel: get_f32(msg, field::TONEMAPPED_SPP),
        calculated_samples_per_pixel: get_f32(msg, field::CALCULATED_SPP),
        samples_per_second: get_f32(msg, field::SAMPLES_PER_SECOND),
        render_time: get_f32(msg, field::RENDER_TIME),
        change_level: get_message(msg, field::CHANGE_LEVEL)
            .map(|level| get_u64(&level, 1))
            .unwrap_or(0),
        has_pending_updates: get_bool(msg, field::HAS_PENDING_UPDATES),
        has_alpha: get_bool(msg, field::HAS_ALPHA),
        fingerprint,
    })
}

/// The row stride in bytes: `pitch` in pixels if that fits the buffer, else `pitch` in bytes,
/// else none. A stride smaller than a row is never accepted.
fn row_stride(
    pitch: u32,
    row_bytes: usize,
    bytes_per_pixel: usize,
    rows: usize,
    len: usize,
) -> Option<usize> {
    let fits = |stride: usize| {
        stride >= row_bytes
            && stride
                .checked_mul(rows.saturating_sub(1))
                .and_then(|n| n.checked_add(row_bytes))
                .is_some_and(|needed| needed <= len)
    };
    let pitch = pitch as usize;
    let candidates: [Option<usize>; 2] = if pitch == 0 {
        [Some(row_bytes), None]
    } else {
        [pitch.checked_mul(bytes_per_pixel), Some(pitch)]
    };
    candidates.into_iter().flatten().find(|&s| fits(s))
}

/// Rows packed tightly; zero-copy when the buffer already is.
fn pack_rows(data: &Bytes, stride: usize, row_bytes: usize, rows: usize) -> Bytes {
    if stride == row_bytes {
        return data.slice(..row_bytes * rows);
    }
    let mut out = Vec::with_capacity(row_bytes * rows);
    for row in data.chunks(stride).take(rows) {
        out.extend_from_slice(row.get(..row_bytes).unwrap_or(row));
    }
    Bytes::from(out)
}

fn unpack_f32_rows(data: &[u8], stride: usize, row_bytes: usize, rows: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(row_bytes / 4 * rows);
    for row in data.chunks(stride).take(rows) {
        let row = row.get(..row_bytes).unwrap_or(row);
        out.extend(
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
    out
}

/// A sampled hash of a buffer: its length, its first and last 4 KiB and 256 spread samples.
/// Cheap for 4K float frames; with the change level and spp it tells duplicates apart.
fn fingerprint(data: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.len().hash(&mut hasher);
    const EDGE: usize = 4096;
    if data.len() <= 4 * EDGE {
        data.hash(&mut hasher);
        return hasher.finish();
    }
    data.get(..EDGE).hash(&mut hasher);
    data.get(data.len() - EDGE..).hash(&mut hasher);
    const SAMPLES: usize = 256;
    const SAMPLE: usize = 64;
    let step = (data.len() - SAMPLE) / SAMPLES;
    for i in 0..SAMPLES {
        let start = i * step;
        data.get(start..start + SAMPLE).hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::{DescriptorPool, MessageDescriptor};

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(octaneweb_proto::DESCRIPTOR_SET).expect("built-in schema decodes")
    }

    fn image_descriptor() -> MessageDescriptor {
        pool()
            .get_message_by_name("octaneapi.ApiRenderImage")
            .expect("ApiRenderImage")
    }

    fn image(ty: i32, w: u32, h: u32, pitch: u32, data: Vec<u8>) -> DynamicMessage {
        let desc = image_descriptor();
        let mut msg = DynamicMessage::new(desc.clone());
        msg.set_field_by_name("type", Value::EnumNumber(ty));
        let size_desc = desc.get_field_by_name("size").unwrap();
        let mut size = DynamicMessage::new(size_desc.kind().as_message().unwrap().clone());
        size.set_field_by_name("x", Value::U32(w));
        size.set_field_by_name("y", Value::U32(h));
        msg.set_field_by_name("size", Value::Message(size));
        msg.set_field_by_name("pitch", Value::U32(pitch));
        let buf_desc = desc.get_field_by_name("buffer").unwrap();
        let mut buf = DynamicMessage::new(buf_desc.kind().as_message().unwrap().clone());
        buf.set_field_by_name("size", Value::U32(data.len() as u32));
        buf.set_field_by_name("data", Value::Bytes(data.into()));
        msg.set_field_by_name("buffer", Value::Message(buf));
        msg.set_field_by_name("tonemappedSamplesPerPixel", Value::F32(3.0));
        msg
    }

    #[test]
    fn ldr_packed_is_zero_copy_and_exact() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let img = decode_render_image(&image(0, 2, 3, 2, data.clone())).unwrap();
        match &img.pixels {
            Pixels::Rgba8(b) => assert_eq!(&b[..], &data[..]),
            Pixels::RgbaF32(_) => panic!("expected LDR"),
        }
        assert_eq!((img.width, img.height), (2, 3));
        assert_eq!(img.tonemapped_samples_per_pixel, 3.0);
    }

    #[test]
    fn ldr_pitch_in_pixels_and_in_bytes_drop_padding() {
        // 2x2 image, rows padded to 3 pixels (12 bytes).
        let mut data = vec![0u8; 12 * 2];
        data[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        data[12..20].copy_from_slice(&[9, 10, 11, 12, 13, 14, 15, 16]);
        let expect: Vec<u8> = (1..=16).collect();
        for pitch in [3, 12] {
            let img = decode_render_image(&image(0, 2, 2, pitch, data.clone())).unwrap();
            match &img.pixels {
                Pixels::Rgba8(b) => assert_eq!(&b[..], &expect[..], "pitch {pitch}"),
                Pixels::RgbaF32(_) => panic!("expected LDR"),
            }
        }
    }

    #[test]
    fn hdr_decodes_little_endian_floats() {
        let values = [0.5f32, 1.0, 2.0, 1.0, 0.0, 0.25, 0.125, 1.0];
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let img = decode_render_image(&image(2, 2, 1, 0, data)).unwrap();
        match &img.pixels {
            Pixels::RgbaF32(v) => assert_eq!(&v[..], &values[..]),
            Pixels::Rgba8(_) => panic!("expected HDR"),
        }
    }

    #[test]
    fn bad_images_are_errors_not_panics() {
        assert_eq!(
            decode_render_image(&image(1, 2, 2, 0, vec![0; 4])).unwrap_err(),
            ImageError::UnsupportedType { value: 1 }
        );
        assert!(matches!(
            decode_render_image(&image(0, 0, 2, 0, vec![])).unwrap_err(),
            ImageError::BadSize { .. }
        ));
        assert!(matches!(
            decode_render_image(&image(0, 100_000, 2, 0, vec![])).unwrap_err(),
            ImageError::BadSize { .. }
        ));
        assert!(matches!(
            decode_render_image(&image(0, 4, 4, 0, vec![0; 63])).unwrap_err(),
            ImageError::BufferTooShort { .. }
        ));
        // A pitch smaller than a row is never accepted.
        assert!(matches!(
            decode_render_image(&image(0, 4, 4, 1, vec![0; 64])).unwrap_err(),
            ImageError::BufferTooShort { .. }
        ));
        // Huge pitch overflowing the arithmetic is a clean error.
        assert!(matches!(
            decode_render_image(&image(2, 4, 4, u32::MAX, vec![0; 256])).unwrap_err(),
            ImageError::BufferTooShort { .. }
        ));
    }

    #[test]
    fn duplicates_are_recognised() {
        let a = decode_render_image(&image(0, 2, 2, 0, vec![7; 16])).unwrap();
        let b = decode_render_image(&image(0, 2, 2, 0, vec![7; 16])).unwrap();
        let c = decode_render_image(&image(0, 2, 2, 0, vec![8; 16])).unwrap();
        assert!(a.is_duplicate_of(&b));
        assert!(!a.is_duplicate_of(&c));
    }

    #[test]
    fn fingerprint_samples_large_buffers() {
        let mut big = vec![0u8; 1 << 20];
        let f1 = fingerprint(&big);
        big[0] = 1;
        assert_ne!(f1, fingerprint(&big));
    }
}
