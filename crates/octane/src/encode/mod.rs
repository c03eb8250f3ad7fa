//! Frame encodings: raw RGBA8, PNG, JPEG (each behind the 56-byte WebSocket frame header) and
//! the original proxy's JSON `newImage` event with a base64 buffer.
//!
//! Every function here is CPU-bound and blocking; callers run them off the async reactor.

pub mod jpeg;
pub mod tonemap;
pub mod view;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::frame::{image_type, Frame, Pixels};
pub use jpeg::encode_jpeg;
pub use tonemap::{ToneCurve, Tonemap, TonemapError};
pub use view::{Region, View, ViewError, ViewRequest};

/// The image encodings a viewer can choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingKind {
    /// Raw RGBA8, `width * height * 4` bytes, rows top to bottom.
    Raw,
    /// PNG, 8-bit RGBA.
    Png,
    /// Baseline JPEG (alpha dropped).
    Jpeg,
}

impl EncodingKind {
    /// The `encoding` byte of the frame header.
    pub fn wire_code(self) -> u8 {
        match self {
            EncodingKind::Raw => 0,
            EncodingKind::Png => 1,
            EncodingKind::Jpeg => 2,
        }
    }

    /// The lowercase name used in JSON and metrics.
    pub fn name(self) -> &'static str {
        match self {
            EncodingKind::Raw => "raw",
            EncodingKind::Png => "png",
            EncodingKind::Jpeg => "jpeg",
        }
    }

    /// The HTTP content type of the payload.
    pub fn content_type(self) -> &'static str {
        match self {
            EncodingKind::Raw => "application/octet-stream",
            EncodingKind::Png => "image/png",
            EncodingKind::Jpeg => "image/jpeg",
        }
    }

    /// Parses "raw", "png", "jpeg" (or "jpg").
    pub fn parse(name: &str) -> Option<EncodingKind> {
        match name {
            "raw" | "rgba" => Some(EncodingKind::Raw),
            "png" => Some(EncodingKind::Png),
            "jpeg" | "jpg" => Some(EncodingKind::Jpeg),
            _ => None,
        }
    }
}

/// What to produce from a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// An image behind the binary frame header.
    Image {
        /// The image encoding.
        kind: EncodingKind,
        /// JPEG quality 1..=100 (0 for the other kinds).
        quality: u8,
    },
    /// The original proxy's `newImage` JSON event (base64 RGBA8), for `/render/stream`. The
    /// message is the whole Server-Sent Event (`data: <json>\n\n`); the payload is the JSON.
    ProxyJson,
    /// octaneWebR's `newImage` callback message, `{"type":"newImage","timestamp":<ms>,
    /// "data":<the original proxy's event>}`, for `/api/callbacks`; message and payload are
    /// the whole JSON text.
    CallbackJson,
}

impl Format {
    /// An image format; the quality only matters for JPEG.
    pub fn image(kind: EncodingKind, quality: u8) -> Format {
        let quality = match kind {
            EncodingKind::Jpeg => quality.clamp(1, 100),
            _ => 0,
        };
        Format::Image { kind, quality }
    }

    /// A short label for metrics: "raw", "png", "jpeg", "sse" or "octanewebr".
    pub fn label(self) -> &'static str {
        match self {
            Format::Image { kind, .. } => kind.name(),
            Format::ProxyJson => "sse",
            Format::CallbackJson => "octanewebr",
        }
    }
}

/// Cache identity of one encoding of a frame: the format, the view (unless the whole frame at
/// full size) and, for HDR frames, the tonemap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EncodingKey {
    /// What is produced.
    pub format: Format,
    /// Bit patterns of exposure and gamma; the defaults for LDR frames, where they do nothing.
    tonemap_bits: (u32, u32),
    /// The part and size of the frame encoded; `None` for the whole frame at full size.
    view: Option<View>,
}

impl EncodingKey {
    /// The key for `format` with `tonemap`, normalised for the frame (LDR frames ignore the
    /// tonemap, so viewers with different settings share one encoding of them).
    pub fn new(format: Format, tonemap: Tonemap, frame_is_hdr: bool) -> EncodingKey {
        let tonemap = if frame_is_hdr {
            tonemap
        } else {
            Tonemap::default()
        };
        EncodingKey {
            format,
            tonemap_bits: tonemap.key(),
            view: None,
        }
    }

    /// This key for `view` of the frame. The JSON image events always carry the whole
    /// frame, so they ignore views.
    pub fn with_view(self, view: View) -> EncodingKey {
        let partial = !view.is_full() && matches!(self.format, Format::Image { .. });
        EncodingKey {
            view: partial.then_some(view),
            ..self
        }
    }

    /// The view encoded, or `None` for the whole frame at full size.
    pub fn view(&self) -> Option<View> {
        self.view
    }

    /// Identity of the tonemap part of the key.
    pub(crate) fn tonemap_bits(&self) -> (u32, u32) {
        self.tonemap_bits
    }

    /// The tonemap this key stands for.
    pub fn tonemap(&self) -> Tonemap {
        Tonemap {
            exposure: f32::from_bits(self.tonemap_bits.0),
            gamma: f32::from_bits(self.tonemap_bits.1),
        }
    }
}

/// Length of the binary frame header this crate writes, in bytes.
pub const HEADER_LEN: usize = 80;
/// Length of the first version-1 header (without the change level); readers accept it.
pub const HEADER_LEN_V1_BASE: usize = 48;
/// Length of the header with the change level but without the view (region and full size).
pub const HEADER_LEN_CHANGE_LEVEL: usize = 56;
/// The header's magic bytes.
pub const HEADER_MAGIC: &[u8; 4] = b"OWRF";
/// The header version this crate writes.
pub const HEADER_VERSION: u8 = 1;
/// Header flag: the source image was HDR (float) and was tonemapped.
pub const FLAG_SOURCE_HDR: u32 = 1;

/// The little-endian header that precedes every binary WebSocket frame message (80 bytes;
/// the first 48 were the whole header before the change level was added, the first 56 before
/// the view was; readers skip to `header_len`, so old readers keep working).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameHeader {
    /// Header version (1).
    pub version: u8,
    /// Encoding of the payload.
    pub encoding: EncodingKind,
    /// Header length; the payload starts here.
    pub header_len: u16,
    /// Frame sequence number.
    pub seq: u64,
    /// Width of this image in pixels (the view's, when scaled or cropped).
    pub width: u32,
    /// Height of this image in pixels.
    pub height: u32,
    /// Tonemapped samples per pixel.
    pub samples_per_pixel: f32,
    /// Render time in seconds.
    pub render_time: f32,
    /// Arrival at the gateway, microseconds since the Unix epoch.
    pub arrived_unix_micros: u64,
    /// Samples per second.
    pub samples_per_second: f32,
    /// Flags; bit 0 = source was HDR.
    pub flags: u32,
    /// The upstream's change level of the image (0 when the header is the short 48-byte
    /// one). A viewer compares it with the level before its own change to know when a
    /// frame shows that change rather than more samples of the old view.
    pub change_level: u64,
    /// The part of the full frame this image shows, in full-frame pixels (the whole frame in
    /// headers shorter than 80 bytes).
    pub region: Region,
    /// The full frame's width (this image's width in headers shorter than 80 bytes).
    pub full_width: u32,
    /// The full frame's height.
    pub full_height: u32,
}

/// A binary frame message that is not a valid header.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeaderError {
    /// Shorter than the header says (or than 48 bytes, or a header length under 48).
    #[error("frame message of {0} bytes is shorter than its header")]
    Short(usize),
    /// Magic is not "OWRF".
    #[error("frame message does not start with \"OWRF\"")]
    Magic,
    /// Unknown encoding byte.
    #[error("unknown frame encoding {0}")]
    Encoding(u8),
}

impl FrameHeader {
    /// The header describing `view` of `frame` encoded as `encoding`.
    pub fn for_frame(frame: &Frame, encoding: EncodingKind, view: &View) -> FrameHeader {
        FrameHeader {
            version: HEADER_VERSION,
            encoding,
            header_len: HEADER_LEN as u16,
            seq: frame.seq,
            width: view.width,
            height: view.height,
            samples_per_pixel: frame.image.tonemapped_samples_per_pixel,
            render_time: frame.image.render_time,
            arrived_unix_micros: frame.arrived_unix_micros,
            samples_per_second: frame.image.samples_per_second,
            flags: if frame.is_hdr() { FLAG_SOURCE_HDR } else { 0 },
            change_level: frame.image.change_level,
            region: view.region,
            full_width: view.full_width,
            full_height: view.full_height,
        }
    }

    /// Appends the header bytes to `out`.
    pub fn write(&self, out: &mut impl BufMut) {
        out.put_slice(HEADER_MAGIC);
        out.put_u8(self.version);
        out.put_u8(self.encoding.wire_code());
        out.put_u16_le(self.header_len);
        out.put_u64_le(self.seq);
        out.put_u32_le(self.width);
        out.put_u32_le(self.height);
        out.put_f32_le(self.samples_per_pixel);
        out.put_f32_le(self.render_time);
        out.put_u64_le(self.arrived_unix_micros);
        out.put_f32_le(self.samples_per_second);
        out.put_u32_le(self.flags);
        out.put_u64_le(self.change_level);
        for value in self.region.to_array() {
            out.put_u32_le(value);
        }
        out.put_u32_le(self.full_width);
        out.put_u32_le(self.full_height);
    }

    /// Parses a binary frame message; returns the header and the payload.
    pub fn parse(message: &[u8]) -> Result<(FrameHeader, &[u8]), HeaderError> {
        let short = || HeaderError::Short(message.len());
        let head: &[u8; HEADER_LEN_V1_BASE] = message
            .get(..HEADER_LEN_V1_BASE)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(short)?;
        if &head[0..4] != HEADER_MAGIC {
            return Err(HeaderError::Magic);
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        let encoding = match head[5] {
            0 => EncodingKind::Raw,
            1 => EncodingKind::Png,
            2 => EncodingKind::Jpeg,
            other => return Err(HeaderError::Encoding(other)),
        };
        let header_len = u16::from_le_bytes([head[6], head[7]]);
        if usize::from(header_len) < HEADER_LEN_V1_BASE {
            return Err(short());
        }
        let payload = message.get(usize::from(header_len)..).ok_or_else(short)?;
        // The change level follows the first 48 bytes in headers long enough to hold it.
        let change_level = match message.get(HEADER_LEN_V1_BASE..HEADER_LEN_CHANGE_LEVEL) {
            Some(bytes) if usize::from(header_len) >= HEADER_LEN_CHANGE_LEVEL => {
                bytes.try_into().map(u64::from_le_bytes).unwrap_or_default()
            }
            _ => 0,
        };
        let (width, height) = (u32_at(16), u32_at(20));
        // The view (region, full size) follows in headers long enough to hold it.
        let mut view = [0, 0, width, height, width, height];
        if let Some(bytes) = message.get(HEADER_LEN_CHANGE_LEVEL..HEADER_LEN) {
            if usize::from(header_len) >= HEADER_LEN {
                for (slot, b) in view.iter_mut().zip(bytes.chunks_exact(4)) {
                    *slot = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        }
        let [x, y, region_width, region_height, full_width, full_height] = view;
        Ok((
            FrameHeader {
                version: head[4],
                encoding,
                header_len,
                seq: u64_at(8),
                width,
                height,
                samples_per_pixel: f32::from_bits(u32_at(24)),
                render_time: f32::from_bits(u32_at(28)),
                arrived_unix_micros: u64_at(32),
                samples_per_second: f32::from_bits(u32_at(40)),
                flags: u32_at(44),
                change_level,
                region: Region {
                    x,
                    y,
                    width: region_width,
                    height: region_height,
                },
                full_width,
                full_height,
            },
            payload,
        ))
    }
}

/// An encoder failure (the frame is then skipped for that encoding).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EncodeError {
    /// The PNG encoder refused the image.
    #[error("PNG encoding failed: {0}")]
    Png(String),
    /// The JPEG encoder refused the image.
    #[error("JPEG encoding failed: {0}")]
    Jpeg(String),
    /// The JSON event could not be written.
    #[error("JSON encoding failed: {0}")]
    Json(String),
    /// The view could not be cut or scaled from the frame.
    #[error("{0}")]
    View(String),
    /// The encoding task did not finish (runtime shutting down).
    #[error("the encoding task was cancelled")]
    Cancelled,
}

/// One encoding of one frame, shared by every viewer that asked for it.
#[derive(Debug)]
pub struct EncodedFrame {
    /// The frame this encodes.
    pub frame: Arc<Frame>,
    /// What was produced.
    pub format: Format,
    /// The part of the frame encoded and its size (the whole frame for the proxy's JSON).
    pub view: View,
    /// The header (for images) followed by the payload; for SSE the framed event.
    message: Bytes,
    payload: std::ops::Range<usize>,
    /// Time spent encoding.
    pub encode_time: Duration,
}

impl EncodedFrame {
    /// The whole message: header + image for [`Format::Image`], the framed Server-Sent
    /// Event for [`Format::ProxyJson`]. Cloning is cheap (reference counted).
    pub fn message(&self) -> Bytes {
        self.message.clone()
    }

    /// The image without the header (the JSON without the SSE framing).
    pub fn payload(&self) -> Bytes {
        self.message.slice(self.payload.clone())
    }
}

/// The frame's pixels as sRGB RGBA8: borrowed for LDR, tonemapped for HDR.
pub fn rgba8<'a>(frame: &'a Frame, tonemap: Tonemap) -> Cow<'a, [u8]> {
    match &frame.image.pixels {
        Pixels::Rgba8(bytes) => Cow::Borrowed(&bytes[..]),
        Pixels::RgbaF32(floats) => Cow::Owned(ToneCurve::new(tonemap).apply_to_vec(floats)),
    }
}

/// The view `key` encodes of `frame` (the whole frame at full size unless it names one).
pub fn view_of(frame: &Frame, key: &EncodingKey) -> View {
    key.view
        .unwrap_or_else(|| View::full(frame.width(), frame.height()))
}

/// `key`'s view of the frame's sRGB RGBA8 `pixels` (the whole frame, tonemapped for HDR).
pub fn view_pixels<'a>(
    frame: &Frame,
    key: &EncodingKey,
    pixels: &'a [u8],
) -> Result<Cow<'a, [u8]>, EncodeError> {
    view::apply(pixels, &view_of(frame, key)).map_err(EncodeError::View)
}

/// Encodes `frame` for `key`. Blocking and CPU-bound.
pub fn encode(frame: &Arc<Frame>, key: EncodingKey) -> Result<EncodedFrame, EncodeError> {
    let pixels = rgba8(frame, key.tonemap());
    encode_rgba(frame, key, &view_pixels(frame, &key, &pixels)?)
}

/// Encodes `frame` for `key` from `pixels`, the key's view of the frame as sRGB RGBA8 (for
/// HDR frames: already tonemapped with the key's settings). Blocking and CPU-bound.
pub fn encode_rgba(
    frame: &Arc<Frame>,
    key: EncodingKey,
    pixels: &[u8],
) -> Result<EncodedFrame, EncodeError> {
    let started = Instant::now();
    let view = view_of(frame, &key);
    let (message, payload) = match key.format {
        Format::Image { kind, quality } => {
            let mut out = BytesMut::with_capacity(HEADER_LEN + encoded_size_hint(kind, pixels));
            FrameHeader::for_frame(frame, kind, &view).write(&mut out);
            match kind {
                EncodingKind::Raw => out.extend_from_slice(pixels),
                EncodingKind::Png => {
                    let mut writer = (&mut out).writer();
                    encode_png(pixels, view.width, view.height, &mut writer)?;
                }
                EncodingKind::Jpeg => {
                    let mut writer = (&mut out).writer();
                    encode_jpeg(pixels, view.width, view.height, quality, &mut writer)?;
                }
            }
            let len = out.len();
            (out.freeze(), HEADER_LEN..len)
        }
        Format::ProxyJson => {
            let json = proxy_image_event(frame, pixels)?;
            let mut out = BytesMut::with_capacity(json.len() + 8);
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&json);
            out.extend_from_slice(b"\n\n");
            (out.freeze(), 6..6 + json.len())
        }
        Format::CallbackJson => {
            let json = proxy_image_event(frame, pixels)?;
            let head = format!(
                "{{\"type\":\"newImage\",\"timestamp\":{},\"data\":",
                frame.arrived_unix_micros / 1000
            );
            let mut out = BytesMut::with_capacity(head.len() + json.len() + 1);
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(&json);
            out.extend_from_slice(b"}");
            let len = out.len();
            (out.freeze(), 0..len)
        }
    };
    Ok(EncodedFrame {
        frame: frame.clone(),
        format: key.format,
        view,
        message,
        payload,
        encode_time: started.elapsed(),
    })
}

fn encoded_size_hint(kind: EncodingKind, pixels: &[u8]) -> usize {
    match kind {
        EncodingKind::Raw => pixels.len(),
        EncodingKind::Png => pixels.len() / 2,
        EncodingKind::Jpeg => pixels.len() / 8,
    }
}

/// Encodes tightly packed RGBA8 as PNG with fast compression.
pub fn encode_png(
    rgba: &[u8],
    width: u32,
    height: u32,
    out: &mut impl std::io::Write,
) -> Result<(), EncodeError> {
    let mut encoder = png::Encoder::new(out, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder
        .write_header()
        .map_err(|e| EncodeError::Png(e.to_string()))?;
    writer
        .write_image_data(rgba)
        .map_err(|e| EncodeError::Png(e.to_string()))?;
    writer.finish().map_err(|e| EncodeError::Png(e.to_string()))
}

/// The `buffer` object of the original proxy's image JSON.
#[derive(Serialize)]
struct ProxyBuffer<'a> {
    data: &'a str,
    size: usize,
    encoding: &'static str,
}

#[derive(Serialize)]
struct ProxySize {
    x: u32,
    y: u32,
}

#[derive(Serialize)]
struct ProxyChangeLevel {
    level: u64,
}

/// One entry of `render_images.data`, with the original proxy's key names.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProxyImage<'a> {
    index: u32,
    #[serde(rename = "type")]
    image_type: i32,
    color_space: i32,
    is_linear: bool,
    size: ProxySize,
    pitch: u32,
    render_pass_id: i32,
    tonemapped_samples_per_pixel: f32,
    calculated_samples_per_pixel: f32,
    samples_per_second: f32,
    render_time: f32,
    change_level: ProxyChangeLevel,
    has_pending_updates: bool,
    has_alpha: bool,
    buffer: ProxyBuffer<'a>,
}

#[derive(Serialize)]
struct ProxyImages<'a> {
    data: [ProxyImage<'a>; 1],
}

#[derive(Serialize)]
struct ProxyNewImage<'a> {
    #[serde(rename = "type")]
    event_type: &'static str,
    callback_id: i32,
    user_data: u64,
    timestamp: f64,
    render_images: ProxyImages<'a>,
}

/// `NamedColorSpace` SRGB: what a tonemapped HDR frame is in.
const COLOR_SPACE_SRGB: i32 = 1;

/// The original proxy's `newImage` event for `frame`, as JSON bytes. The buffer is always
/// 8-bit RGBA (type 0; HDR is tonemapped first) and `pitch` is in PIXELS (= width).
pub fn proxy_image_event(frame: &Frame, rgba: &[u8]) -> Result<Bytes, EncodeError> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(rgba);
    let image = &frame.image;
    let (color_space, is_linear) = if frame.is_hdr() {
        (COLOR_SPACE_SRGB, false)
    } else {
        (image.color_space, image.is_linear)
    };
    let event = ProxyNewImage {
        event_type: "newImage",
        callback_id: frame.callback_id,
        user_data: frame.user_data,
        timestamp: frame.arrived_unix_micros as f64 / 1e6,
        render_images: ProxyImages {
            data: [ProxyImage {
                index: 0,
                image_type: image_type::LDR_RGBA,
                color_space,
                is_linear,
                size: ProxySize {
                    x: image.width,
                    y: image.height,
                },
                pitch: image.width,
                render_pass_id: image.render_pass_id,
                tonemapped_samples_per_pixel: image.tonemapped_samples_per_pixel,
                calculated_samples_per_pixel: image.calculated_samples_per_pixel,
                samples_per_second: image.samples_per_second,
                render_time: image.render_time,
                change_level: ProxyChangeLevel {
                    level: image.change_level,
                },
                has_pending_updates: image.has_pending_updates,
                has_alpha: image.has_alpha,
                buffer: ProxyBuffer {
                    data: &b64,
                    size: rgba.len(),
                    encoding: "base64",
                },
            }],
        },
    };
    serde_json::to_vec(&event)
        .map(Bytes::from)
        .map_err(|e| EncodeError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::RenderImage;

    pub(crate) fn test_frame(seq: u64, pixels: Pixels, w: u32, h: u32) -> Arc<Frame> {
        Arc::new(Frame::new(
            seq,
            7,
            42,
            RenderImage {
                width: w,
                height: h,
                image_type: if pixels.is_hdr() { 2 } else { 0 },
                pixels,
                color_space: 2,
                is_linear: true,
                render_pass_id: 0,
                tonemapped_samples_per_pixel: 16.0,
                calculated_samples_per_pixel: 16.0,
                samples_per_second: 1000.0,
                render_time: 1.5,
                change_level: 3,
                has_pending_updates: false,
                has_alpha: true,
                fingerprint: 0,
            },
        ))
    }

    #[test]
    fn header_round_trips() {
        let frame = test_frame(9, Pixels::Rgba8(Bytes::from(vec![1u8; 16])), 2, 2);
        let key = EncodingKey::new(
            Format::image(EncodingKind::Raw, 0),
            Tonemap::default(),
            false,
        );
        let encoded = encode(&frame, key).unwrap();
        let message = encoded.message();
        assert_eq!(message.len(), HEADER_LEN + 16);
        assert_eq!(&message[..4], b"OWRF");
        let (header, payload) = FrameHeader::parse(&message).unwrap();
        assert_eq!(header.seq, 9);
        assert_eq!((header.width, header.height), (2, 2));
        assert_eq!(header.encoding, EncodingKind::Raw);
        assert_eq!(header.header_len, 80);
        assert_eq!(header.region, Region::whole(2, 2));
        assert_eq!((header.full_width, header.full_height), (2, 2));
        assert_eq!(header.change_level, 3);
        assert_eq!(header.samples_per_pixel, 16.0);
        assert_eq!(header.render_time, 1.5);
        assert_eq!(header.samples_per_second, 1000.0);
        assert_eq!(header.arrived_unix_micros, frame.arrived_unix_micros);
        assert_eq!(header.flags, 0);
        assert_eq!(payload, &[1u8; 16][..]);
        assert_eq!(&encoded.payload()[..], payload);
        assert_eq!(
            FrameHeader::parse(&message[..40]),
            Err(HeaderError::Short(40))
        );
        // A 56-byte header (before views) describes the whole frame.
        let mut old = message[..56].to_vec();
        old[6..8].copy_from_slice(&56u16.to_le_bytes());
        old.extend_from_slice(&[1u8; 16]);
        let (header, payload) = FrameHeader::parse(&old).unwrap();
        assert_eq!(
            (header.change_level, header.region),
            (3, Region::whole(2, 2))
        );
        assert_eq!((header.full_width, header.full_height), (2, 2));
        assert_eq!(payload.len(), 16);
    }

    #[test]
    fn views_are_encoded_with_their_region_in_the_header() {
        let (w, h) = (64u32, 32u32);
        let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i % 251) as u8).collect();
        let frame = test_frame(4, Pixels::Rgba8(Bytes::from(rgba)), w, h);
        let request = ViewRequest {
            fit: Some((32, 32)),
            crop: Some(Region {
                x: 16,
                y: 8,
                width: 40,
                height: 20,
            }),
        };
        let key = EncodingKey::new(
            Format::image(EncodingKind::Raw, 0),
            Tonemap::default(),
            false,
        )
        .with_view(request.resolve(w, h));
        let encoded = encode(&frame, key).unwrap();
        let message = encoded.message();
        let (header, payload) = FrameHeader::parse(&message).unwrap();
        assert_eq!((header.width, header.height), (32, 16));
        assert_eq!(payload.len(), 32 * 16 * 4);
        assert_eq!(
            header.region,
            Region {
                x: 16,
                y: 8,
                width: 40,
                height: 20
            }
        );
        assert_eq!((header.full_width, header.full_height), (64, 32));
        // The whole frame at full size is the plain key.
        let plain = EncodingKey::new(Format::ProxyJson, Tonemap::default(), false);
        assert_eq!(plain.with_view(request.resolve(w, h)), plain);
        assert_eq!(key.with_view(View::full(w, h)).view(), None);
    }

    #[test]
    fn png_and_jpeg_produce_their_signatures() {
        let rgba: Vec<u8> = (0..16 * 8 * 4).map(|i| (i * 7) as u8).collect();
        let frame = test_frame(1, Pixels::Rgba8(Bytes::from(rgba.clone())), 16, 8);
        let png = encode(
            &frame,
            EncodingKey::new(
                Format::image(EncodingKind::Png, 0),
                Tonemap::default(),
                false,
            ),
        )
        .unwrap();
        assert_eq!(&png.payload()[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png.payload()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        assert_eq!(buf, rgba, "PNG is lossless");
        let jpeg = encode(
            &frame,
            EncodingKey::new(
                Format::image(EncodingKind::Jpeg, 80),
                Tonemap::default(),
                false,
            ),
        )
        .unwrap();
        assert_eq!(&jpeg.payload()[..3], &[0xFF, 0xD8, 0xFF]);
        let (header, _) = FrameHeader::parse(&jpeg.message()).unwrap();
        assert_eq!(header.encoding, EncodingKind::Jpeg);
    }

    #[test]
    fn hdr_frames_are_tonemapped_and_flagged() {
        let frame = test_frame(2, Pixels::RgbaF32(vec![1.0, 0.0, 0.5, 1.0]), 1, 1);
        let key = EncodingKey::new(
            Format::image(EncodingKind::Raw, 0),
            Tonemap::default(),
            true,
        );
        let encoded = encode(&frame, key).unwrap();
        let message = encoded.message();
        let (header, payload) = FrameHeader::parse(&message).unwrap();
        assert_eq!(header.flags, FLAG_SOURCE_HDR);
        assert_eq!(payload, &[255, 0, 188, 255][..]);
    }

    #[test]
    fn ldr_keys_ignore_the_tonemap() {
        let bright = Tonemap {
            exposure: 2.0,
            gamma: 1.0,
        };
        let format = Format::image(EncodingKind::Png, 50);
        assert_eq!(
            EncodingKey::new(format, bright, false),
            EncodingKey::new(format, Tonemap::default(), false)
        );
        assert_ne!(
            EncodingKey::new(format, bright, true),
            EncodingKey::new(format, Tonemap::default(), true)
        );
        assert_eq!(
            format,
            Format::image(EncodingKind::Png, 90),
            "quality is JPEG-only"
        );
    }

    #[test]
    fn proxy_json_has_the_original_shape() {
        let frame = test_frame(3, Pixels::RgbaF32(vec![1.0; 8]), 2, 1);
        let key = EncodingKey::new(Format::ProxyJson, Tonemap::default(), true);
        let encoded = encode(&frame, key).unwrap();
        let message = encoded.message();
        assert!(message.starts_with(b"data: {") && message.ends_with(b"}\n\n"));
        let v: serde_json::Value = serde_json::from_slice(&encoded.payload()).unwrap();
        assert_eq!(v["type"], "newImage");
        assert_eq!(v["callback_id"], 7);
        assert_eq!(v["user_data"], 42);
        assert!(v["timestamp"].as_f64().unwrap() > 1.6e9);
        let img = &v["render_images"]["data"][0];
        assert_eq!(img["index"], 0);
        assert_eq!(img["type"], 0);
        assert_eq!(img["colorSpace"], 1);
        assert_eq!(img["isLinear"], false);
        assert_eq!(img["size"], serde_json::json!({"x": 2, "y": 1}));
        assert_eq!(img["pitch"], 2);
        assert_eq!(img["changeLevel"], serde_json::json!({"level": 3}));
        assert_eq!(img["buffer"]["encoding"], "base64");
        assert_eq!(img["buffer"]["size"], 8);
        let data = base64::engine::general_purpose::STANDARD
            .decode(img["buffer"]["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(data, vec![255u8; 8]);

        // octaneWebR's callback message wraps the same event, once per frame.
        let key = EncodingKey::new(Format::CallbackJson, Tonemap::default(), true);
        let callback = encode(&frame, key).unwrap();
        assert_eq!(callback.message(), callback.payload());
        let c: serde_json::Value = serde_json::from_slice(&callback.payload()).unwrap();
        assert_eq!(c["type"], "newImage");
        assert_eq!(c["timestamp"], frame.arrived_unix_micros / 1000);
        assert_eq!(c["data"], v);
    }
}
