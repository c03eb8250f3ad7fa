//! The progressive renderer.

use std::sync::Arc;

use rayon::prelude::*;

use crate::camera::{Camera, CameraFrame};
use crate::film::Film;
use crate::integrator;
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
}

/// A progressive path tracer bound to one scene, camera and image size.
pub struct Renderer {
    scene: Arc<Scene>,
    camera: Camera,
    film: Film,
}

impl Renderer {
    /// Creates a renderer; sides must be `1..=8192` and the camera valid.
    pub fn new(
        scene: Arc<Scene>,
        camera: Camera,
        width: u32,
        height: u32,
    ) -> Result<Renderer, RenderError> {
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(RenderError::InvalidSize {
                width,
                height,
                max: MAX_DIMENSION,
            });
        }
        camera.validate().map_err(RenderError::InvalidCamera)?;
        Ok(Renderer {
            scene,
            camera,
            film: Film::new(width, height),
        })
    }

    /// The scene being rendered.
    pub fn scene(&self) -> &Arc<Scene> {
        &self.scene
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

    /// Drops all accumulated samples.
    pub fn reset(&mut self) {
        self.film.clear();
    }

    /// Adds exactly one sample to every pixel of the film, rows in parallel (rayon).
    ///
    /// Each sample is a full light path from the camera (jittered within the pixel, so edges
    /// are antialiased), seeded from (pixel index, sample index): the same camera and sample
    /// count always give the same image.
    pub fn render_sample(&mut self) {
        let sample_index = self.film.samples_per_pixel();
        if sample_index == u32::MAX {
            return; // the count cannot grow further; keep the image as it is
        }
        let width = self.film.width() as usize;
        let height = self.film.height() as usize;
        let frame = CameraFrame::new(&self.camera, width as f32 / height as f32);
        let scene: &Scene = &self.scene;
        let inv_w = 2.0 / width as f32;
        let inv_h = 2.0 / height as f32;
        self.film
            .sums_mut()
            .par_chunks_mut(width * 3)
            .enumerate()
            .for_each(|(y, row)| {
                for (x, px) in row.chunks_exact_mut(3).enumerate() {
                    let pixel_index = (y * width + x) as u32;
                    let mut rng = Rng::for_pixel(pixel_index, sample_index);
                    let sx = (x as f32 + rng.next_f32()) * inv_w - 1.0;
                    let sy = 1.0 - (y as f32 + rng.next_f32()) * inv_h;
                    let radiance = integrator::radiance(scene, frame.ray(sx, sy), &mut rng);
                    if let [r, g, b] = px {
                        *r += radiance.x;
                        *g += radiance.y;
                        *b += radiance.z;
                    }
                }
            });
        self.film.finish_sample();
    }

    /// The accumulated image.
    pub fn film(&self) -> &Film {
        &self.film
    }
}
