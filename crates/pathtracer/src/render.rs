//! The progressive renderer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use crate::camera::{Camera, CameraFrame};
use crate::film::Film;
use crate::integrator::{self, PathLimits, DEFAULT_MAX_BOUNCES};
use crate::math::Vec3;
use crate::rng::Rng;
use crate::scene::Scene;

/// Largest accepted image side, in pixels.
pub const MAX_DIMENSION: u32 = 8192;

/// Why a renderer could not be created or reconfigured.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Width or height is zero or larger than [`MAX_DIMENSION`].
    #[error("invalid image size {width}x{height}: each side must be between 1 and {max}")]
    InvalidSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Largest allowed side.
        max: u32,
    },
    /// The camera cannot produce rays (see [`Camera::is_valid`]).
    #[error("invalid camera: {0}")]
    InvalidCamera(String),
    /// A lens or kernel setting is out of range (see [`RenderSettings::validate`]).
    #[error("invalid render settings: {0}")]
    InvalidSettings(String),
}

/// Longest path of a preview ([`Renderer::render_preview`]).
pub const PREVIEW_MAX_DEPTH: u32 = 2;

/// Longest path [`RenderSettings::max_depth`] accepts.
pub const MAX_PATH_DEPTH: u32 = 1024;

/// How rays are generated and paths traced, besides camera and scene.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RenderSettings {
    /// Thin-lens aperture radius in world units; 0 is a pinhole (everything sharp).
    pub aperture: f32,
    /// Distance of the plane in focus, in world units (used when `aperture > 0`).
    pub focal_distance: f32,
    /// Scattering events per path at most (1..=[`MAX_PATH_DEPTH`]).
    pub max_depth: u32,
    /// Largest value per channel of one path's radiance; 0: no clamp beyond the renderer's
    /// own firefly limit.
    pub clamp: f32,
}

impl Default for RenderSettings {
    /// A pinhole, paths of up to 6 bounces, no extra clamp: the renderer's original images.
    fn default() -> Self {
        RenderSettings {
            aperture: 0.0,
            focal_distance: 10.0,
            max_depth: DEFAULT_MAX_BOUNCES,
            clamp: 0.0,
        }
    }
}

impl RenderSettings {
    /// Checks the ranges: aperture finite and >= 0, focal distance finite and > 0, max depth
    /// in 1..=[`MAX_PATH_DEPTH`], clamp finite and >= 0.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.aperture.is_finite() && self.aperture >= 0.0) {
            return Err(format!(
                "the aperture must be a finite number >= 0, got {}",
                self.aperture
            ));
        }
        if !(self.focal_distance.is_finite() && self.focal_distance > 0.0) {
            return Err(format!(
                "the focal distance must be a finite number > 0, got {}",
                self.focal_distance
            ));
        }
        if !(1..=MAX_PATH_DEPTH).contains(&self.max_depth) {
            return Err(format!(
                "the maximum path depth must be between 1 and {MAX_PATH_DEPTH}, got {}",
                self.max_depth
            ));
        }
        if !(self.clamp.is_finite() && self.clamp >= 0.0) {
            return Err(format!(
                "the clamp must be a finite number >= 0, got {}",
                self.clamp
            ));
        }
        Ok(())
    }
}

/// A rectangle of pixels: `min` inclusive, `max` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelRect {
    /// Left and top edge.
    pub min: [u32; 2],
    /// Right and bottom edge (exclusive).
    pub max: [u32; 2],
}

impl PixelRect {
    /// The rectangle cut to a `width x height` image; `None` when nothing is left.
    pub fn clamped(self, width: u32, height: u32) -> Option<PixelRect> {
        let min = [self.min[0].min(width), self.min[1].min(height)];
        let max = [self.max[0].min(width), self.max[1].min(height)];
        (min[0] < max[0] && min[1] < max[1]).then_some(PixelRect { min, max })
    }
}

fn check_size(width: u32, height: u32) -> Result<(), RenderError> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(RenderError::InvalidSize {
            width,
            height,
            max: MAX_DIMENSION,
        });
    }
    Ok(())
}

/// A progressive path tracer bound to one scene, camera, settings and image size.
pub struct Renderer {
    scene: Arc<Scene>,
    camera: Camera,
    settings: RenderSettings,
    film: Film,
}

/// What tracing one pixel sample needs, shared by the rayon workers.
struct Tracer<'a> {
    scene: &'a Scene,
    frame: CameraFrame,
    settings: RenderSettings,
    limits: PathLimits,
    width: usize,
    inv_w: f32,
    inv_h: f32,
}

impl Tracer<'_> {
    /// The tracer for `camera`, `settings` and a `film`-sized image.
    fn new<'a>(
        scene: &'a Scene,
        camera: &Camera,
        settings: RenderSettings,
        film: &Film,
    ) -> Tracer<'a> {
        let width = film.width() as usize;
        let height = film.height() as usize;
        Tracer {
            scene,
            frame: CameraFrame::new(camera, width as f32 / height as f32),
            settings,
            limits: PathLimits {
                max_bounces: settings.max_depth,
                clamp: settings.clamp,
            },
            width,
            inv_w: 2.0 / width as f32,
            inv_h: 2.0 / height as f32,
        }
    }

    /// Radiance of sample `sample_index` of pixel (`x`, `y`), jittered within `span` pixels
    /// (1 for a pixel, the block side for a preview). Seeded from (pixel, sample): the same
    /// inputs give the same value.
    fn sample(&self, x: usize, y: usize, span: [f32; 2], sample_index: u32) -> Vec3 {
        let pixel_index = (y * self.width + x) as u32;
        let mut rng = Rng::for_pixel(pixel_index, sample_index);
        let sx = (x as f32 + rng.next_f32() * span[0]) * self.inv_w - 1.0;
        let sy = 1.0 - (y as f32 + rng.next_f32() * span[1]) * self.inv_h;
        // Only a real lens draws lens numbers, so a pinhole keeps the original sequences.
        let ray = if self.settings.aperture > 0.0 {
            let (u1, u2) = (rng.next_f32(), rng.next_f32());
            self.frame.lens_ray(
                sx,
                sy,
                self.settings.aperture,
                self.settings.focal_distance,
                u1,
                u2,
            )
        } else {
            self.frame.ray(sx, sy)
        };
        integrator::radiance(self.scene, ray, &mut rng, self.limits)
    }
}

impl Renderer {
    /// Creates a renderer; sides must be `1..=8192` and the camera valid.
    pub fn new(
        scene: Arc<Scene>,
        camera: Camera,
        width: u32,
        height: u32,
    ) -> Result<Renderer, RenderError> {
        check_size(width, height)?;
        camera.validate().map_err(RenderError::InvalidCamera)?;
        Ok(Renderer {
            scene,
            camera,
            settings: RenderSettings::default(),
            film: Film::new(width, height),
        })
    }

    /// The scene being rendered.
    pub fn scene(&self) -> &Arc<Scene> {
        &self.scene
    }

    /// Renders `scene` from now on; drops accumulated samples.
    pub fn set_scene(&mut self, scene: Arc<Scene>) {
        self.scene = scene;
        self.film.clear();
    }

    /// The current camera.
    pub fn camera(&self) -> Camera {
        self.camera
    }

    /// Replaces the camera and drops accumulated samples; an invalid camera is rejected and
    /// leaves everything unchanged.
    pub fn set_camera(&mut self, camera: Camera) -> Result<(), RenderError> {
        camera.validate().map_err(RenderError::InvalidCamera)?;
        self.camera = camera;
        self.film.clear();
        Ok(())
    }

    /// The lens and kernel settings.
    pub fn settings(&self) -> RenderSettings {
        self.settings
    }

    /// Replaces the lens and kernel settings and drops accumulated samples; invalid settings
    /// are rejected and leave everything unchanged.
    pub fn set_settings(&mut self, settings: RenderSettings) -> Result<(), RenderError> {
        settings.validate().map_err(RenderError::InvalidSettings)?;
        self.settings = settings;
        self.film.clear();
        Ok(())
    }

    /// Renders at `width x height` from now on (a new, empty film); an invalid size is
    /// rejected and leaves everything unchanged.
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), RenderError> {
        check_size(width, height)?;
        self.film = Film::new(width, height);
        Ok(())
    }

    /// Drops all accumulated samples.
    pub fn reset(&mut self) {
        self.film.clear();
    }

    /// Adds exactly one sample to every pixel of the film, rows in parallel (rayon).
    ///
    /// Each sample is a full light path from the camera (jittered within the pixel, so edges
    /// are antialiased; through a random point of the lens when the aperture is open), seeded
    /// from (pixel index, sample index): the same camera, settings and sample count always
    /// give the same image.
    pub fn render_sample(&mut self) {
        self.render_sample_in(None, None);
    }

    /// Adds one sample to every pixel of `region` (all pixels when `None`); other pixels keep
    /// their samples. While the film has no full-resolution sample yet, the whole image is
    /// rendered whatever `region` says, so no pixel stays empty. A preview on the film is
    /// replaced by this pass.
    ///
    /// When `cancel` becomes true the pass stops early, the film is cleared (a part-added
    /// sample would be wrong) and the answer is false.
    pub fn render_sample_in(
        &mut self,
        region: Option<PixelRect>,
        cancel: Option<&AtomicBool>,
    ) -> bool {
        let samples = self.film.samples_per_pixel();
        if samples == u32::MAX {
            return true; // the count cannot grow further; keep the image as it is
        }
        let (width, height) = (self.film.width(), self.film.height());
        let whole = PixelRect {
            min: [0, 0],
            max: [width, height],
        };
        let rect = match region {
            Some(region) if samples > 0 => match region.clamped(width, height) {
                Some(rect) => rect,
                None => return true, // nothing to refine
            },
            _ => whole,
        };
        let cancelled = || cancel.is_some_and(|flag| flag.load(Ordering::Relaxed));
        let row_len = width as usize * 3;
        let uniform = rect == whole && self.film.has_uniform_counts();
        let overwrite = self.film.holds_preview();
        let tracer = Tracer::new(&self.scene, &self.camera, self.settings, &self.film);
        let [x0, y0] = rect.min.map(|v| v as usize);
        let [x1, y1] = rect.max.map(|v| v as usize);
        if uniform {
            self.film
                .sums_mut()
                .par_chunks_mut(row_len)
                .enumerate()
                .for_each(|(y, row)| {
                    if cancelled() {
                        return;
                    }
                    for (x, px) in row.chunks_exact_mut(3).enumerate() {
                        let radiance = tracer.sample(x, y, [1.0, 1.0], samples);
                        if let [r, g, b] = px {
                            // A preview is one sample per block, not part of the mean.
                            if overwrite {
                                (*r, *g, *b) = (radiance.x, radiance.y, radiance.z);
                            } else {
                                *r += radiance.x;
                                *g += radiance.y;
                                *b += radiance.z;
                            }
                        }
                    }
                });
        } else {
            let (sums, counts) = self.film.sums_and_counts_mut();
            sums.par_chunks_mut(row_len)
                .zip(counts.par_chunks_mut(width as usize))
                .enumerate()
                .skip(y0)
                .take(y1 - y0)
                .for_each(|(y, (row, row_counts))| {
                    if cancelled() {
                        return;
                    }
                    let pixels = row.chunks_exact_mut(3).zip(row_counts.iter_mut());
                    for (x, (px, count)) in pixels.enumerate().take(x1).skip(x0) {
                        let radiance = tracer.sample(x, y, [1.0, 1.0], *count);
                        if let [r, g, b] = px {
                            *r += radiance.x;
                            *g += radiance.y;
                            *b += radiance.z;
                        }
                        *count = count.saturating_add(1);
                    }
                });
        }
        if cancelled() {
            self.film.clear();
            return false;
        }
        if uniform {
            self.film.finish_sample();
        } else {
            self.film.finish_region_sample();
        }
        true
    }

    /// Drops accumulated samples and renders a quick preview: one sample per `block x block`
    /// pixels (`block` clamped to 1..=16), its value filling the block, with paths of at most
    /// [`PREVIEW_MAX_DEPTH`] bounces. The film then reports 0
    /// samples per pixel and [`Film::subsampled`] `block`; the next
    /// [`Renderer::render_sample_in`] replaces the preview instead of adding to it.
    pub fn render_preview(&mut self, block: u32) {
        self.render_preview_in(block, None);
    }

    /// [`Renderer::render_preview`] that stops early when `cancel` becomes true (checked per
    /// row of blocks): the film is then cleared and the answer is false.
    pub fn render_preview_in(&mut self, block: u32, cancel: Option<&AtomicBool>) -> bool {
        let cancelled = || cancel.is_some_and(|flag| flag.load(Ordering::Relaxed));
        let block = block.clamp(1, 16);
        self.film.clear();
        let width = self.film.width() as usize;
        let b = block as usize;
        // A preview is about speed: paths end after PREVIEW_MAX_DEPTH bounces (direct light and
        // the brightest indirect light are there; deeper bounces cost as much and add little).
        let settings = RenderSettings {
            max_depth: self.settings.max_depth.min(PREVIEW_MAX_DEPTH),
            ..self.settings
        };
        let tracer = Tracer::new(&self.scene, &self.camera, settings, &self.film);
        self.film
            .sums_mut()
            .par_chunks_mut(width * 3 * b)
            .enumerate()
            .for_each(|(block_row, rows)| {
                if cancelled() {
                    return;
                }
                let y0 = block_row * b;
                let rows_here = rows.len() / (width * 3);
                for x0 in (0..width).step_by(b) {
                    let cols_here = b.min(width - x0);
                    let span = [cols_here as f32, rows_here as f32];
                    let radiance = tracer.sample(x0, y0, span, 0);
                    for row in rows.chunks_exact_mut(width * 3) {
                        let Some(cells) = row.get_mut(x0 * 3..(x0 + cols_here) * 3) else {
                            continue;
                        };
                        for px in cells.chunks_exact_mut(3) {
                            if let [r, g, b] = px {
                                (*r, *g, *b) = (radiance.x, radiance.y, radiance.z);
                            }
                        }
                    }
                }
            });
        if cancelled() {
            self.film.clear();
            return false;
        }
        self.film.finish_preview(block);
        true
    }

    /// The accumulated image.
    pub fn film(&self) -> &Film {
        &self.film
    }
}
