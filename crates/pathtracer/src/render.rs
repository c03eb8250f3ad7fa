//! The progressive renderer.

use std::sync::Arc;

use crate::camera::{Camera, CameraFrame};
use crate::film::Film;
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

    /// Adds one sample to every pixel.
    pub fn render_sample(&mut self) {
        let w = self.film.width() as usize;
        let h = self.film.height() as usize;
        let frame = CameraFrame::new(&self.camera, w as f32 / h as f32);
        let sums = self.film.sums_mut();
        for (i, px) in sums.chunks_exact_mut(3).enumerate() {
            let sx = ((i % w) as f32 + 0.5) / w as f32 * 2.0 - 1.0;
            let sy = 1.0 - ((i / w) as f32 + 0.5) / h as f32 * 2.0;
            let d = frame.ray(sx, sy).dir;
            px[0] += d.x * 0.5 + 0.5;
            px[1] += d.y * 0.5 + 0.5;
            px[2] += d.z * 0.5 + 0.5;
        }
        self.film.finish_sample();
    }

    /// The accumulated image.
    pub fn film(&self) -> &Film {
        &self.film
    }
}
