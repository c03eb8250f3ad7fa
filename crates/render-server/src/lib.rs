//! octaneweb's reference render server: a real CPU path tracer
//! ([`octaneweb_pathtracer`]) behind the Octane LiveLink gRPC interface.
//!
//! It is the default upstream of octaneweb (`octaneweb demo` runs it in-process) and the
//! target of the project's integration tests. It speaks the same wire interface as Octane's
//! LiveLink server for the subset octaneweb uses:
//!
//! - `octaneapi.ApiRenderEngineService`: new-image callback registration, grab/release of
//!   render results, pause/continue/restart/stop, render priority;
//! - `octaneapi.StreamCallbackService.callbackChannel`: progressive `newImage` callbacks in
//!   either callback generation (see [`CallbackGeneration`]), `newStatistics` about once a
//!   second while rendering, `renderFailure` when the renderer fails;
//! - `livelinkapi.LiveLinkService`: camera get/set/stream, the scene's meshes, file access
//!   under a configured root;
//! - a read-only scene graph (`ApiProjectManagerService`, `ApiNodeGraphService`,
//!   `ApiItemArrayService`, `ApiItemService`) describing the built-in scene;
//! - gRPC server reflection (v1 and v1alpha) and `grpc.health.v1`.
//!
//! ```no_run
//! # async fn run() -> Result<(), octaneweb_render_server::RenderServerError> {
//! use octaneweb_render_server::{RenderServer, RenderServerConfig};
//! let server = RenderServer::start(RenderServerConfig::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:51022").await.map_err(
//!     octaneweb_render_server::RenderServerError::Bind)?;
//! server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

#![warn(missing_docs)]

#[doc(hidden)]
pub mod bench_support;
mod engine;
mod files;
mod image;
mod nodes;
mod scene_state;
mod server;
mod services;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use octaneweb_pathtracer::{RenderError, Renderer, Scene};

pub use server::RenderServer;

/// Which generation of the callback stream the server speaks.
///
/// Both use `octaneapi.StreamCallbackService/callbackChannel` with the same oneof field
/// numbers; they differ in the `newImage` payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CallbackGeneration {
    /// Octane SDKs from 2026: `newImage` is a small `OnNewImageData { user_data }`
    /// notification; clients then call `grabRenderResult` and `releaseRenderResult`.
    #[default]
    Gen2,
    /// Older Octane SDKs (and the original Python proxy): `newImage` carries the images
    /// inline (`OnNewImageRequest.render_images`).
    Gen1,
}

impl CallbackGeneration {
    /// The encoded `FileDescriptorSet` describing this generation's schema, as served by
    /// the server's reflection service.
    pub fn descriptor_set(self) -> &'static [u8] {
        match self {
            CallbackGeneration::Gen2 => octaneweb_proto::DESCRIPTOR_SET,
            CallbackGeneration::Gen1 => octaneweb_proto::DESCRIPTOR_SET_GEN1,
        }
    }
}

/// Pixel format of the render images the server publishes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageFormat {
    /// `IMAGE_TYPE_LDR_RGBA`: 8-bit sRGB RGBA, 4 bytes per pixel, colour space SRGB.
    #[default]
    Ldr,
    /// `IMAGE_TYPE_HDR_RGBA`: linear 32-bit float RGBA (little-endian), 16 bytes per pixel,
    /// colour space LINEAR_SRGB.
    Hdr,
}

impl ImageFormat {
    /// Bytes per pixel in the image buffer.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            ImageFormat::Ldr => 4,
            ImageFormat::Hdr => 16,
        }
    }
}

/// Settings of a [`RenderServer`].
#[derive(Clone, Debug)]
pub struct RenderServerConfig {
    /// Image width in pixels (default 1024).
    pub width: u32,
    /// Image height in pixels (default 512).
    pub height: u32,
    /// Callback stream generation (default [`CallbackGeneration::Gen2`]).
    pub callback_generation: CallbackGeneration,
    /// Most `newImage` callbacks per second (default 30). The renderer keeps sampling in
    /// between; only the newest image is published at each opportunity.
    pub max_callback_rate: f64,
    /// Pixel format of render images (default [`ImageFormat::Ldr`]).
    pub image_format: ImageFormat,
    /// `LiveLinkService.GetFile` serves files only below this directory. `None` (default)
    /// disables GetFile entirely.
    pub file_root: Option<PathBuf>,
    /// `ApiProjectManager.loadProject`, `saveProject` and `saveProjectAs` use files only
    /// below this directory (the same path rules as GetFile). `None` (default) disables
    /// project files.
    pub project_root: Option<PathBuf>,
    /// Stop refining once this many samples per pixel are reached (the render is then
    /// finished). `None` (default) renders until stopped, up to [`MAX_SAMPLES_PER_PIXEL`].
    pub max_samples_per_pixel: Option<u32>,
}

/// The most samples per pixel the server ever accumulates.
pub const MAX_SAMPLES_PER_PIXEL: u32 = 65_536;

/// Largest encoded gRPC message the server sends or accepts on the services that carry
/// images or files (a 4K HDR frame is about 130 MB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Largest file `GetFile` returns.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

impl Default for RenderServerConfig {
    fn default() -> Self {
        RenderServerConfig {
            width: 1024,
            height: 512,
            callback_generation: CallbackGeneration::Gen2,
            max_callback_rate: 30.0,
            image_format: ImageFormat::Ldr,
            file_root: None,
            project_root: None,
            max_samples_per_pixel: None,
        }
    }
}

impl RenderServerConfig {
    /// Checks the settings that do not depend on the file system.
    pub fn validate(&self) -> Result<(), RenderServerError> {
        let invalid = |why: String| Err(RenderServerError::InvalidConfig(why));
        if self.width == 0 || self.height == 0 {
            return invalid(format!(
                "image size {}x{} must be at least 1x1",
                self.width, self.height
            ));
        }
        let frame_bytes = u64::from(self.width)
            * u64::from(self.height)
            * self.image_format.bytes_per_pixel() as u64;
        // Leave headroom for the message envelope around the pixels.
        if frame_bytes > (MAX_MESSAGE_BYTES as u64) - 4096 {
            return invalid(format!(
                "a {}x{} {:?} frame is {frame_bytes} bytes, more than the {MAX_MESSAGE_BYTES}-byte message limit",
                self.width, self.height, self.image_format
            ));
        }
        if !(self.max_callback_rate.is_finite() && self.max_callback_rate > 0.0) {
            return invalid(format!(
                "max_callback_rate must be a positive number, got {}",
                self.max_callback_rate
            ));
        }
        if self.max_samples_per_pixel == Some(0) {
            return invalid("max_samples_per_pixel must be at least 1".into());
        }
        Ok(())
    }

    /// The sample count at which the render counts as finished.
    pub(crate) fn sample_limit(&self) -> u32 {
        self.max_samples_per_pixel
            .unwrap_or(MAX_SAMPLES_PER_PIXEL)
            .min(MAX_SAMPLES_PER_PIXEL)
    }
}

/// Why the render server could not start, serve or render.
#[derive(Debug, thiserror::Error)]
pub enum RenderServerError {
    /// A setting of [`RenderServerConfig`] is out of range.
    #[error("invalid render server configuration: {0}")]
    InvalidConfig(String),
    /// The path tracer rejected the size or camera.
    #[error("cannot create the renderer: {0}")]
    Renderer(#[from] RenderError),
    /// The configured file root cannot be used.
    #[error("file root {path:?} is not usable: {source}")]
    FileRoot {
        /// The configured directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The render thread could not be spawned.
    #[error("cannot start the render thread: {0}")]
    RenderThread(std::io::Error),
    /// Binding a listening socket failed (for callers that bind on the server's behalf).
    #[error("cannot listen: {0}")]
    Bind(std::io::Error),
    /// The reflection service could not be built from the descriptor set.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed while serving.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The path tracer panicked while rendering a snapshot.
    #[error("rendering failed: {0}")]
    RenderFailed(String),
    /// The snapshot PNG could not be written.
    #[error("cannot write snapshot {path:?}: {source}")]
    Snapshot {
        /// Where the PNG was to be written.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
}

/// Renders one still of the built-in scene with `spp` samples per pixel and writes it to
/// `out` as an 8-bit sRGB PNG, without any network. Uses `config.width` and
/// `config.height`; other settings are ignored.
pub fn snapshot(
    config: &RenderServerConfig,
    spp: u32,
    out: &Path,
) -> Result<(), RenderServerError> {
    config.validate()?;
    if spp == 0 || spp > MAX_SAMPLES_PER_PIXEL {
        return Err(RenderServerError::InvalidConfig(format!(
            "snapshot samples per pixel must be between 1 and {MAX_SAMPLES_PER_PIXEL}, got {spp}"
        )));
    }
    let scene = Arc::new(Scene::builtin());
    let camera = scene.default_camera();
    let mut renderer = Renderer::new(scene, camera, config.width, config.height)?;
    let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..spp {
            renderer.render_sample();
        }
        renderer.film().to_srgb8()
    }));
    let rgba =
        rendered.map_err(|panic| RenderServerError::RenderFailed(engine::panic_message(&panic)))?;
    octaneweb_pathtracer::write_png(out, config.width, config.height, &rgba).map_err(|source| {
        RenderServerError::Snapshot {
            path: out.to_path_buf(),
            source,
        }
    })
}
