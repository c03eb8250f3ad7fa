//! JPEG encoder candidates on real renders (a plain harness):
//!
//! ```sh
//! cargo bench -p octaneweb-octane --bench jpeg_encoders            # 7 rounds
//! cargo bench -p octaneweb-octane --bench jpeg_encoders -- --rounds 9
//! ```
//!
//! The inputs are the built-in scene path-traced at 3840x2160 and at 1440x810 with 4 samples
//! per pixel (the noise of a live frame left in), rendered once and cached under the target
//! directory. Every candidate encodes the same RGBA8 pixels at quality 80, one encode per
//! candidate and image per round, the candidates interleaved within each round so the
//! machine's drift reaches all of them alike; a first round warms up and is not counted.
//! Reported per candidate: the median wall time, Mpixel/s from it, the median CPU time of the
//! whole process during the encode (all threads), the output size, and the PSNR of the
//! decoded output against the source (zune-jpeg decodes), so a faster candidate cannot win
//! by being worse. "strips" candidates run through `octaneweb_octane::encode::jpeg`'s parallel
//! strips on its own thread pool, each strip encoded by that library.

#[path = "support/render.rs"]
mod render;

use std::time::{Duration, Instant};

use octaneweb_octane::encode::jpeg::{self, StripEncoder};
use octaneweb_octane::encode::EncodeError;

const QUALITY: u8 = 80;
const SAMPLES_PER_PIXEL: u32 = 4;

fn failed(library: &str) -> impl Fn(String) -> EncodeError + '_ {
    move |why| EncodeError::Jpeg(format!("{library}: {why}"))
}

/// `jpeg-encoder` 0.7 with AVX2, its defaults (4:2:0 below quality 90): the encoder the
/// project used before, one thread.
fn jpeg_encoder_whole(rgba: &[u8], w: u32, h: u32, q: u8) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(rgba.len() / 10);
    jpeg_encoder::Encoder::new(&mut out, q)
        .encode(rgba, w as u16, h as u16, jpeg_encoder::ColorType::Rgba)
        .map_err(|e| failed("jpeg-encoder")(e.to_string()))?;
    Ok(out)
}

/// mozjpeg (libjpeg-turbo's C code) with its fastest profile: no trellis, no progressive
/// scans, standard Huffman tables; 4:2:0. SIMD only if nasm was on PATH when mozjpeg-sys
/// was built.
fn mozjpeg_whole(rgba: &[u8], w: u32, h: u32, q: u8) -> Result<Vec<u8>, EncodeError> {
    let run = || -> std::io::Result<Vec<u8>> {
        let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_EXT_RGBA);
        compress.set_fastest_defaults();
        compress.set_size(w as usize, h as usize);
        compress.set_quality(f32::from(q));
        compress.set_optimize_coding(false);
        compress.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
        let mut started = compress.start_compress(Vec::with_capacity(rgba.len() / 10))?;
        started.write_scanlines(rgba)?;
        started.finish()
    };
    // mozjpeg reports libjpeg's errors by unwinding.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
        .map_err(|_| "libjpeg error".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(failed("mozjpeg"))
}

/// rusty_jpeg 0.4 (a pure-Rust descendant of jpeg-encoder with more AVX2 kernels and
/// box-averaged chroma), its defaults: 4:2:0 below quality 90, no trellis.
fn rusty_jpeg_whole(rgba: &[u8], w: u32, h: u32, q: u8) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(rgba.len() / 10);
    rusty_jpeg::encode::Encoder::new(&mut out, q)
        .encode(
            rgba,
            w as u16,
            h as u16,
            rusty_jpeg::encode::ColorType::Rgba,
        )
        .map_err(|e| failed("rusty_jpeg")(e.to_string()))?;
    Ok(out)
}

/// libjpeg-turbo-rs 0.9 (a pure-Rust port of libjpeg-turbo with AVX2), 4:2:0, standard
/// Huffman tables: the strip encoder the project uses.
fn libjpeg_turbo_rs_whole(rgba: &[u8], w: u32, h: u32, q: u8) -> Result<Vec<u8>, EncodeError> {
    jpeg::libjpeg_turbo_strip(rgba, w, h, q)
}

/// The `image` crate's own encoder (0.25). It takes RGB only, so the RGBA to RGB copy is
/// part of its time; its chroma is always 4:2:2.
fn image_whole(rgba: &[u8], w: u32, h: u32, q: u8) -> Result<Vec<u8>, EncodeError> {
    let rgb: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let mut out = Vec::with_capacity(rgba.len() / 10);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q)
        .encode(&rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| failed("image")(e.to_string()))?;
    Ok(out)
}

struct Candidate {
    name: String,
    /// Encodes the whole image on the calling thread.
    whole: StripEncoder,
    /// Run through the project's parallel strips with `whole` as the strip encoder.
    strips: bool,
}

impl Candidate {
    fn encode(&self, rgba: &[u8], w: u32, h: u32) -> Result<Vec<u8>, EncodeError> {
        if self.strips {
            let mut out = Vec::with_capacity(rgba.len() / 10);
            jpeg::encode_in_strips(self.whole, rgba, w, h, QUALITY, &mut out)?;
            Ok(out)
        } else {
            (self.whole)(rgba, w, h, QUALITY)
        }
    }
}

fn candidates(threads: usize) -> Vec<Candidate> {
    let libraries: [(&str, StripEncoder, bool); 5] = [
        ("jpeg-encoder 0.7 (simd)", jpeg_encoder_whole, true),
        ("mozjpeg 0.10 (C, fastest)", mozjpeg_whole, true),
        ("rusty_jpeg 0.4", rusty_jpeg_whole, true),
        ("libjpeg-turbo-rs 0.9", libjpeg_turbo_rs_whole, true),
        ("image 0.25 (RGB copy, 4:2:2)", image_whole, false),
    ];
    let mut all = Vec::new();
    for (name, whole, also_strips) in libraries {
        all.push(Candidate {
            name: format!("{name}, 1 thread"),
            whole,
            strips: false,
        });
        if also_strips {
            all.push(Candidate {
                name: format!("{name}, strips on {threads} threads"),
                whole,
                strips: true,
            });
        }
    }
    all
}

/// CPU time of the whole process so far (every thread).
fn process_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    if status != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Peak signal-to-noise ratio of the decoded `jpeg` against `rgba`'s colour channels, dB.
fn psnr(jpeg: &[u8], rgba: &[u8]) -> Result<f64, String> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let rgb = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), options)
        .decode()
        .map_err(|e| format!("zune-jpeg cannot decode it: {e:?}"))?;
    if rgb.len() / 3 != rgba.len() / 4 {
        return Err(format!(
            "decoded {} pixels of {}",
            rgb.len() / 3,
            rgba.len() / 4
        ));
    }
    let squared: f64 = rgba
        .chunks_exact(4)
        .zip(rgb.chunks_exact(3))
        .flat_map(|(a, b)| (0..3).map(move |c| f64::from(a[c]) - f64::from(b[c])))
        .map(|d| d * d)
        .sum();
    let mse = squared / (rgb.len() as f64);
    Ok(10.0 * (255.0 * 255.0 / mse.max(1e-12)).log10())
}

struct Image {
    label: String,
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

#[derive(Default)]
struct Measured {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
    bytes: usize,
    psnr: f64,
    error: Option<String>,
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then a smoke run on
    // small renders with one round.
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if benching { 7 } else { 1 });
    let sizes: &[(u32, u32)] = if benching {
        &[(3840, 2160), (1440, 810)]
    } else {
        &[(640, 360)]
    };
    let images: Vec<Image> = sizes
        .iter()
        .map(|&(width, height)| Image {
            label: format!("{width}x{height}"),
            width,
            height,
            rgba: render::rendered_rgba(width, height, SAMPLES_PER_PIXEL)
                .unwrap_or_else(|e| panic!("cannot render the {width}x{height} frame: {e}")),
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let candidates = candidates(threads);
    let mut results: Vec<Vec<Measured>> = images
        .iter()
        .map(|_| candidates.iter().map(|_| Measured::default()).collect())
        .collect();

    // Round 0 warms up (thread pool, page faults, CPU clocks) and checks every output.
    for round in 0..=rounds {
        for (image, per_candidate) in images.iter().zip(results.iter_mut()) {
            for (candidate, measured) in candidates.iter().zip(per_candidate.iter_mut()) {
                if measured.error.is_some() {
                    continue;
                }
                let (cpu_before, started) = (process_cpu(), Instant::now());
                let encoded = candidate.encode(&image.rgba, image.width, image.height);
                let (wall, cpu) = (started.elapsed(), process_cpu() - cpu_before);
                match encoded {
                    Err(e) => measured.error = Some(e.to_string()),
                    Ok(jpeg) if round == 0 => {
                        measured.bytes = jpeg.len();
                        match psnr(&jpeg, &image.rgba) {
                            Ok(db) => measured.psnr = db,
                            Err(e) => measured.error = Some(e),
                        }
                    }
                    Ok(_) => {
                        measured.wall.push(wall);
                        measured.cpu.push(cpu);
                    }
                }
            }
        }
    }

    println!(
        "== JPEG encoders, RGBA8 input, quality {QUALITY}, {rounds} rounds (medians), {threads} cores"
    );
    for (image, per_candidate) in images.iter().zip(&results) {
        let pixels = f64::from(image.width) * f64::from(image.height);
        let baseline = median(&per_candidate[0].wall).as_secs_f64();
        println!();
        println!(
            "{} ({:.1} Mpixel, path-traced, {SAMPLES_PER_PIXEL} spp)",
            image.label,
            pixels / 1e6
        );
        println!();
        println!("| candidate | ms per frame | Mpixel/s | CPU ms | vs jpeg-encoder 1 thread | bytes | PSNR dB |");
        println!("|---|---|---|---|---|---|---|");
        for (candidate, measured) in candidates.iter().zip(per_candidate) {
            if let Some(error) = &measured.error {
                println!("| {} | failed: {error} | | | | | |", candidate.name);
                continue;
            }
            let wall = median(&measured.wall).as_secs_f64();
            println!(
                "| {} | {:.1} | {:.0} | {:.1} | {:.2}x | {} | {:.2} |",
                candidate.name,
                wall * 1e3,
                pixels / wall / 1e6,
                median(&measured.cpu).as_secs_f64() * 1e3,
                baseline / wall,
                measured.bytes,
                measured.psnr
            );
        }
    }
}
