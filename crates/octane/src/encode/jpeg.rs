//! Baseline JPEG from RGBA8, on every core for large frames.
//!
//! A large frame is cut into horizontal strips of whole MCU rows. Each strip is encoded as a
//! JPEG of its own (same quality, so the same quantisation and the standard Huffman tables)
//! on a small dedicated thread pool, and the strips' entropy-coded data are joined into the
//! one scan of a single image: a DRI segment whose interval is one strip's MCUs, RST0..RST7
//! in turn between the strips, and the full height in SOF0. A restart marker resets the DC
//! predictors to zero, which is the state each strip's encoder started from, so the result
//! is an ordinary baseline JPEG that any decoder reads, byte for byte what a single encoder
//! with that restart interval would write.

use std::num::NonZeroUsize;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::EncodeError;

/// Frames with fewer pixels than this are encoded on the calling thread: they take a few
/// milliseconds whole, and their strips would be a handful of MCU rows each. (At 1440x810,
/// above it, the strips measured no faster than one thread on the busy 2-core machine; see
/// BENCHMARKS.md.)
pub const PARALLEL_MIN_PIXELS: u64 = 256 * 1024;

/// Strip heights are multiples of this many rows: the MCU height of 4:2:0 (16); 4:4:4's
/// 8-row MCUs divide it too.
const STRIP_ROW_UNIT: u32 = 16;

/// Strips per pool thread. More than one, so that when the OS takes a core away (the path
/// tracer shares them) the other threads take over the waiting strips.
const STRIPS_PER_THREAD: u32 = 4;

/// Largest restart interval the 16-bit DRI field holds, in MCUs.
const MAX_RESTART_INTERVAL: u32 = u16::MAX as u32;

/// Encodes one strip (tightly packed RGBA8, `width` x `rows`) at `quality` as a complete
/// baseline JPEG with one interleaved scan, the standard Huffman tables and no restart
/// interval of its own.
pub type StripEncoder = fn(&[u8], u32, u32, u8) -> Result<Vec<u8>, EncodeError>;

/// Encodes tightly packed RGBA8 as baseline JPEG (alpha dropped), quality 1..=100; frames of
/// [`PARALLEL_MIN_PIXELS`] and more in parallel strips joined with restart markers.
pub fn encode_jpeg(
    rgba: &[u8],
    width: u32,
    height: u32,
    quality: u8,
    out: &mut impl std::io::Write,
) -> Result<(), EncodeError> {
    encode_in_strips(libjpeg_turbo_strip, rgba, width, height, quality, out)
}

/// Chroma subsampling by quality: 4:2:0 below 90 (half the chroma data, invisible at the
/// qualities viewers stream at), full-resolution chroma from 90, as the encoder before did.
fn subsampling_for(quality: u8) -> libjpeg_turbo_rs::Subsampling {
    if quality < 90 {
        libjpeg_turbo_rs::Subsampling::S420
    } else {
        libjpeg_turbo_rs::Subsampling::S444
    }
}

/// One strip through `libjpeg-turbo-rs`, a pure-Rust port of libjpeg-turbo with run-time
/// selected AVX2/SSE2/NEON kernels: libjpeg-turbo's output byte for byte, with no C or
/// assembler in the build. The fastest candidate in `benches/jpeg_encoders.rs` that needs
/// nothing but cargo (see BENCHMARKS.md).
pub fn libjpeg_turbo_strip(
    rgba: &[u8],
    width: u32,
    rows: u32,
    quality: u8,
) -> Result<Vec<u8>, EncodeError> {
    jpeg_dimensions(width, rows)?;
    libjpeg_turbo_rs::compress(
        rgba,
        width as usize,
        rows as usize,
        libjpeg_turbo_rs::PixelFormat::Rgba,
        quality.clamp(1, 100),
        subsampling_for(quality),
    )
    .map_err(|e| EncodeError::Jpeg(e.to_string()))
}

/// Encodes `rgba` with `encoder`, in parallel strips on the JPEG pool when the frame is large
/// enough and the pool has more than one thread, else whole on the calling thread.
pub fn encode_in_strips(
    encoder: StripEncoder,
    rgba: &[u8],
    width: u32,
    height: u32,
    quality: u8,
    out: &mut impl std::io::Write,
) -> Result<(), EncodeError> {
    jpeg_dimensions(width, height)?;
    let quality = quality.clamp(1, 100);
    let row_bytes = width as usize * 4;
    let needed = row_bytes.checked_mul(height as usize);
    let rgba = needed
        .and_then(|needed| rgba.get(..needed))
        .ok_or_else(|| {
            let needed = u64::from(width) * u64::from(height) * 4;
            EncodeError::Jpeg(format!(
                "{} bytes of pixels for a {width}x{height} RGBA8 image, which needs {needed}",
                rgba.len()
            ))
        })?;
    let pool = match pool() {
        Some(pool) if u64::from(width) * u64::from(height) >= PARALLEL_MIN_PIXELS => pool,
        _ => return write_all(out, &encoder(rgba, width, height, quality)?),
    };
    let rows = strip_rows(width, height, pool.current_num_threads());
    let strips: Vec<Vec<u8>> = pool.install(|| {
        rgba.par_chunks(row_bytes * rows as usize)
            .map(|strip| {
                let strip_rows = (strip.len() / row_bytes) as u32;
                encoder(strip, width, strip_rows, quality)
            })
            .collect::<Result<_, _>>()
    })?;
    join_strips(&strips, height, rows, out)
}

/// Rows per strip: the frame split evenly over `threads * STRIPS_PER_THREAD` strips, rounded
/// up to whole MCU rows, and small enough that a strip's MCUs fit the 16-bit restart
/// interval even with 8x8 MCUs (4:4:4).
fn strip_rows(width: u32, height: u32, threads: usize) -> u32 {
    let strips = (threads as u32).max(1) * STRIPS_PER_THREAD;
    let even = height.div_ceil(strips).next_multiple_of(STRIP_ROW_UNIT);
    let most_mcu_rows = MAX_RESTART_INTERVAL / width.div_ceil(8);
    let most = (most_mcu_rows * 8 / STRIP_ROW_UNIT * STRIP_ROW_UNIT).max(STRIP_ROW_UNIT);
    even.min(most)
}

/// The JPEG thread pool, created on first use: one named thread per core. It is not
/// rayon's global pool, which the embedded path tracer keeps busy: a frame encode must not
/// wait behind render work. `None` when there is a single core or the threads could not be
/// started; frames are then encoded on the calling thread.
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        if threads < 2 {
            return None;
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("jpeg-encode-{i}"))
            .build()
            .map_err(|e| tracing::warn!("JPEG encodes stay on one thread: {e}"))
            .ok()
    })
    .as_ref()
}

fn jpeg_dimensions(width: u32, height: u32) -> Result<(u16, u16), EncodeError> {
    let side = |value: u32, name: &str| {
        u16::try_from(value)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| EncodeError::Jpeg(format!("{name} {value} is not in JPEG's 1..=65535")))
    };
    Ok((side(width, "width")?, side(height, "height")?))
}

fn write_all(out: &mut impl std::io::Write, bytes: &[u8]) -> Result<(), EncodeError> {
    out.write_all(bytes)
        .map_err(|e| EncodeError::Jpeg(format!("writing the JPEG failed: {e}")))
}

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOF0: u8 = 0xC0;
const SOS: u8 = 0xDA;
const DRI: u8 = 0xDD;
const RST0: u8 = 0xD0;

/// Where the parts of one strip's JPEG are.
struct StripLayout {
    /// Offset of SOF0's 16-bit height.
    height_at: usize,
    /// Offset of the DRI segment, if the encoder wrote one (then its strips cannot be joined).
    dri_at: Option<usize>,
    /// Offset of the SOS marker (the DRI segment goes right before it).
    sos_at: usize,
    /// Offset of the first entropy-coded byte (just after the SOS segment).
    scan_at: usize,
    /// MCU width and height in pixels.
    mcu: (u32, u32),
}

fn malformed(why: &str) -> EncodeError {
    EncodeError::Jpeg(format!("a strip encoder wrote an unexpected JPEG: {why}"))
}

/// Finds SOF0 and SOS in `jpeg` (SOI, marker segments, one scan, EOI).
fn strip_layout(jpeg: &[u8]) -> Result<StripLayout, EncodeError> {
    if jpeg.len() < 4 || jpeg[..2] != [0xFF, SOI] || jpeg[jpeg.len() - 2..] != [0xFF, EOI] {
        return Err(malformed("no SOI at the start or EOI at the end"));
    }
    let mut at = 2;
    let mut sof: Option<(usize, (u32, u32))> = None;
    let mut dri_at = None;
    loop {
        let segment = jpeg.get(at..at + 4).ok_or_else(|| malformed("no SOS"))?;
        if segment[0] != 0xFF {
            return Err(malformed("bytes between marker segments"));
        }
        let marker = segment[1];
        let len = usize::from(u16::from_be_bytes([segment[2], segment[3]]));
        let end = at + 2 + len;
        let body = jpeg
            .get(at + 4..end)
            .ok_or_else(|| malformed("a cut segment"))?;
        match marker {
            SOF0 => {
                // precision, height, width, component count, then (id, HV, table) each.
                let components = body.get(6..).ok_or_else(|| malformed("short SOF0"))?;
                let (h, v) = components
                    .chunks_exact(3)
                    .fold((1, 1), |(h, v), c| (h.max(c[1] >> 4), v.max(c[1] & 0x0F)));
                sof = Some((at + 5, (8 * u32::from(h), 8 * u32::from(v))));
            }
            0xC1..=0xCF if marker != 0xC4 && marker != 0xC8 && marker != 0xCC => {
                return Err(malformed("not a baseline frame"));
            }
            DRI => dri_at = Some(at),
            SOS => {
                let (height_at, mcu) = sof.ok_or_else(|| malformed("SOS before SOF0"))?;
                return Ok(StripLayout {
                    height_at,
                    dri_at,
                    sos_at: at,
                    scan_at: end,
                    mcu,
                });
            }
            _ => {}
        }
        at = end;
    }
}

/// Writes one JPEG made of `strips` (each a whole JPEG of `rows` rows, the last one
/// possibly fewer): the first strip's header with the full `height`, a DRI segment, and the
/// strips' scans separated by RST0..RST7 in turn.
fn join_strips(
    strips: &[Vec<u8>],
    height: u32,
    rows: u32,
    out: &mut impl std::io::Write,
) -> Result<(), EncodeError> {
    let first = strips.first().ok_or_else(|| malformed("no strips"))?;
    let layout = strip_layout(first)?;
    if strips.len() == 1 {
        return write_all(out, first);
    }
    if layout.dri_at.is_some() {
        return Err(malformed("a restart interval of its own"));
    }
    let (mcu_w, mcu_h) = layout.mcu;
    if !rows.is_multiple_of(mcu_h) {
        return Err(malformed("an MCU taller than a strip row unit"));
    }
    let width = u32::from(u16::from_be_bytes([
        first[layout.height_at + 2],
        first[layout.height_at + 3],
    ]));
    let interval = width.div_ceil(mcu_w) * (rows / mcu_h);
    let interval = u16::try_from(interval).map_err(|_| malformed("a strip of too many MCUs"))?;
    let height = u16::try_from(height).map_err(|_| malformed("a height over 65535"))?;

    // Check every strip before writing anything: each must have been coded with the same
    // tables and components as the first; only its height may differ.
    let mut scans = Vec::with_capacity(strips.len());
    for strip in strips {
        let own = strip_layout(strip)?;
        let same_header = own.sos_at == layout.sos_at
            && own.scan_at == layout.scan_at
            && strip[..own.height_at] == first[..layout.height_at]
            && strip[own.height_at + 2..own.scan_at] == first[layout.height_at + 2..layout.scan_at];
        if !same_header {
            return Err(malformed("strips with different headers"));
        }
        let scan = strip
            .get(own.scan_at..strip.len() - 2)
            .ok_or_else(|| malformed("no room for a scan before EOI"))?;
        scans.push(scan);
    }
    let mut dri = [0xFF, DRI, 0, 4, 0, 0];
    dri[4..].copy_from_slice(&interval.to_be_bytes());
    write_all(out, &first[..layout.height_at])?;
    write_all(out, &height.to_be_bytes())?;
    write_all(out, &first[layout.height_at + 2..layout.sos_at])?;
    write_all(out, &dri)?;
    write_all(out, &first[layout.sos_at..layout.scan_at])?;
    for (index, scan) in scans.into_iter().enumerate() {
        if index > 0 {
            write_all(out, &[0xFF, RST0 + ((index - 1) % 8) as u8])?;
        }
        write_all(out, scan)?;
    }
    write_all(out, &[0xFF, EOI])
}

#[cfg(test)]
mod tests {
    use super::*;
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    /// A render-like test image: smooth gradients, a hard edge and a little noise.
    fn test_image(width: u32, height: u32) -> Vec<u8> {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rgba = Vec::with_capacity(width as usize * height as usize * 4);
        for y in 0..height {
            for x in 0..width {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let noise = (seed % 9) as i32 - 4;
                // Gradients no steeper than over 256 pixels, as in a render of this size.
                let fx = x as f32 / width.max(256) as f32;
                let fy = y as f32 / height.max(256) as f32;
                // The edge falls on an MCU boundary: 4:2:0 would smear colour across it.
                let edge = if x >= (width / 3).next_multiple_of(16) {
                    60
                } else {
                    0
                };
                let channel = |v: f32| (v as i32 + noise).clamp(0, 255) as u8;
                rgba.extend_from_slice(&[
                    channel(40.0 + 180.0 * fx + edge as f32),
                    channel(30.0 + 200.0 * fy),
                    channel(200.0 - 150.0 * fx * fy),
                    255,
                ]);
            }
        }
        rgba
    }

    fn encode(rgba: &[u8], width: u32, height: u32, quality: u8) -> Vec<u8> {
        let mut jpeg = Vec::new();
        encode_jpeg(rgba, width, height, quality, &mut jpeg).expect("encodes");
        jpeg
    }

    /// Decodes with zune-jpeg (not the encoder's own code) to RGB.
    fn decode(jpeg: &[u8]) -> (usize, usize, Vec<u8>) {
        let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
        let rgb = decoder.decode().expect("zune-jpeg decodes the output");
        let (w, h) = decoder.dimensions().expect("dimensions after decoding");
        (w, h, rgb)
    }

    /// PSNR of `rgb` against `rgba`'s colour channels, in dB.
    fn psnr(rgba: &[u8], rgb: &[u8]) -> f64 {
        assert_eq!(rgba.len() / 4, rgb.len() / 3, "pixel count");
        let squared: f64 = rgba
            .chunks_exact(4)
            .zip(rgb.chunks_exact(3))
            .flat_map(|(a, b)| (0..3).map(move |c| f64::from(a[c]) - f64::from(b[c])))
            .map(|d| d * d)
            .sum();
        10.0 * (255.0 * 255.0 * rgb.len() as f64 / squared.max(1e-9)).log10()
    }

    /// The markers after the header: (DRI interval if any, RST marker numbers in order).
    fn restart_markers(jpeg: &[u8]) -> (Option<u16>, Vec<u8>) {
        let layout = strip_layout(jpeg).expect("a baseline JPEG");
        let dri = layout
            .dri_at
            .map(|at| u16::from_be_bytes([jpeg[at + 4], jpeg[at + 5]]));
        // In entropy-coded data a 0xFF byte is followed by 0x00; anything else is a marker.
        let rst = jpeg[layout.scan_at..]
            .windows(2)
            .filter(|w| w[0] == 0xFF && (RST0..RST0 + 8).contains(&w[1]))
            .map(|w| w[1] - RST0)
            .collect();
        (dri, rst)
    }

    fn assert_round_trips(width: u32, height: u32, quality: u8, min_psnr: f64) -> Vec<u8> {
        let rgba = test_image(width, height);
        let jpeg = encode(&rgba, width, height, quality);
        let (w, h, rgb) = decode(&jpeg);
        assert_eq!((w, h), (width as usize, height as usize), "decoded size");
        let db = psnr(&rgba, &rgb);
        assert!(
            db >= min_psnr,
            "{width}x{height} q{quality}: PSNR {db:.2} dB < {min_psnr}"
        );
        jpeg
    }

    #[test]
    fn small_and_odd_sizes_decode_close_to_the_source() {
        for (width, height) in [(1, 1), (2, 3), (17, 9), (33, 31), (640, 360), (100, 1)] {
            let jpeg = assert_round_trips(width, height, 80, 30.0);
            assert_eq!(
                restart_markers(&jpeg),
                (None, vec![]),
                "{width}x{height} is below the parallel threshold: one strip"
            );
        }
    }

    #[test]
    fn one_pixel_keeps_its_colour() {
        let jpeg = encode(&[200, 40, 90, 255], 1, 1, 90);
        let (_, _, rgb) = decode(&jpeg);
        for (got, want) in rgb.iter().zip([200u8, 40, 90]) {
            assert!(got.abs_diff(want) <= 4, "{rgb:?} vs [200, 40, 90]");
        }
    }

    #[test]
    fn large_frames_are_joined_strips_with_restart_markers() {
        // Neither side a multiple of 16, so the right MCU column and the last strip are
        // partial; quality 80 is 4:2:0 (16x16 MCUs), 95 is 4:4:4 (8x8).
        for (width, height, quality, mcu) in [(1001, 530, 80, 16), (1001, 530, 95, 8)] {
            let jpeg = assert_round_trips(width, height, quality, 30.0);
            let (dri, rst) = restart_markers(&jpeg);
            let Some(pool) = pool() else {
                assert_eq!((dri, rst), (None, vec![]), "one core: one strip");
                continue;
            };
            let rows = strip_rows(width, height, pool.current_num_threads());
            let strips = height.div_ceil(rows);
            assert!(strips > 1, "{height} rows in strips of {rows}");
            let interval = width.div_ceil(mcu) * (rows / mcu);
            assert_eq!(dri, Some(interval as u16), "DRI: one strip's MCUs");
            let expected: Vec<u8> = (0..strips - 1).map(|i| (i % 8) as u8).collect();
            assert_eq!(rst, expected, "RST0..RST7 in turn between strips");
        }
    }

    #[test]
    fn a_4k_frame_round_trips() {
        let jpeg = assert_round_trips(3840, 2160, 80, 30.0);
        if pool().is_some() {
            let (dri, rst) = restart_markers(&jpeg);
            assert!(
                dri.is_some() && rst.len() >= 7,
                "{dri:?}, {} RSTs",
                rst.len()
            );
        }
    }

    #[test]
    fn joined_strips_are_what_one_encoder_writes_with_that_restart_interval() {
        let (width, height) = (1001, 530);
        let rgba = test_image(width, height);
        let joined = encode(&rgba, width, height, 80);
        let (Some(interval), _) = restart_markers(&joined) else {
            return; // one core: nothing was joined
        };
        let whole = libjpeg_turbo_rs::Encoder::new(
            &rgba,
            width as usize,
            height as usize,
            libjpeg_turbo_rs::PixelFormat::Rgba,
        )
        .quality(80)
        .subsampling(subsampling_for(80))
        .restart_blocks(interval)
        .encode()
        .expect("encodes");
        assert!(joined == whole, "joined strips differ from a single encode");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        let short = encode_jpeg(&[0; 15], 2, 2, 80, &mut out);
        assert!(matches!(short, Err(EncodeError::Jpeg(m)) if m.contains("needs 16")));
        assert!(encode_jpeg(&[], 0, 5, 80, &mut out).is_err());
        assert!(encode_jpeg(&[], 70_000, 1, 80, &mut out).is_err());
        assert!(out.is_empty(), "nothing written on error");
        // Quality outside 1..=100 is clamped, as before.
        assert_round_trips(16, 16, 0, 10.0);
    }

    #[test]
    fn strip_rows_are_whole_mcu_rows_within_the_restart_limit() {
        assert_eq!(strip_rows(3840, 2160, 2), 272);
        assert_eq!(strip_rows(3840, 2160, 1), 544);
        for (width, height, threads) in [(65_535, 65_535, 2), (8192, 100, 16), (1, 65_535, 64)] {
            let rows = strip_rows(width, height, threads);
            assert_eq!(rows % STRIP_ROW_UNIT, 0, "{width}x{height}");
            assert!(width.div_ceil(8) * (rows / 8) <= MAX_RESTART_INTERVAL);
        }
    }

    #[test]
    fn strips_with_different_tables_are_refused() {
        let a = libjpeg_turbo_strip(&test_image(32, 32), 32, 32, 80).expect("encodes");
        let b = libjpeg_turbo_strip(&test_image(32, 32), 32, 32, 50).expect("encodes");
        let mut out = Vec::new();
        let joined = join_strips(&[a.clone(), b], 64, 32, &mut out);
        assert!(matches!(joined, Err(EncodeError::Jpeg(m)) if m.contains("different headers")));
        assert!(out.is_empty());
        assert!(join_strips(&[a[..a.len() - 1].to_vec()], 32, 32, &mut out).is_err());
    }
}
