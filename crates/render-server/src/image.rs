//! Published frames: the film converted to `ApiRenderImage`s once per publication (at the
//! capped callback rate), never per sample.

use std::time::Duration;

use octaneweb_pathtracer::Film;
use octaneweb_proto::gen1::octaneapi as gen1;
use octaneweb_proto::octaneapi::{
    ApiArrayApiRenderImage, ApiRenderImage, Buffer, CLevelT, ImageType, NamedColorSpace,
    PremultipliedAlphaType, RenderPassId, SubSampleMode, Uint322,
};
use prost::Message as _;

use crate::{CallbackGeneration, ImageFormat, RenderServerConfig};

/// Numbers describing the accumulation a frame shows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameStats {
    /// Change level of the accumulation.
    pub change_level: u64,
    pub samples_per_pixel: u32,
    pub max_samples_per_pixel: u32,
    /// Rendering time of the accumulation (pauses excluded).
    pub render_time: Duration,
    /// Side of the pixel blocks of a sub-sampled preview (one sample per block), 1 for a
    /// full-resolution image.
    pub subsampled: u32,
}

/// One published frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub stats: FrameStats,
    /// The render images (one beauty pass), generation-2 types. `hasPendingUpdates` is
    /// false here; readers set it from the engine's current change level.
    pub images: ApiArrayApiRenderImage,
    /// The same images as generation-1 types, built once when the server speaks gen1.
    pub images_gen1: Option<gen1::ApiArrayApiRenderImage>,
}

impl Frame {
    /// The images with `hasPendingUpdates` set for the engine's current change level.
    pub fn images_at(&self, current_level: u64) -> ApiArrayApiRenderImage {
        let mut images = self.images.clone();
        let pending = current_level > self.stats.change_level;
        for image in &mut images.data {
            image.has_pending_updates = pending;
        }
        images
    }

    /// Like [`Frame::images_at`], as generation-1 types (converted on the fly if the frame
    /// was built for generation 2).
    pub fn images_gen1_at(&self, current_level: u64) -> gen1::ApiArrayApiRenderImage {
        let mut images = match &self.images_gen1 {
            Some(images) => images.clone(),
            None => to_gen1(&self.images),
        };
        let pending = current_level > self.stats.change_level;
        for image in &mut images.data {
            image.has_pending_updates = pending;
        }
        images
    }
}

/// Converts generation-2 image types to their wire-identical generation-1 copies.
fn to_gen1(images: &ApiArrayApiRenderImage) -> gen1::ApiArrayApiRenderImage {
    // Both types come from the same .proto definition, so decoding cannot fail; an empty
    // array is the safe answer if it ever did.
    gen1::ApiArrayApiRenderImage::decode(images.encode_to_vec().as_slice()).unwrap_or_default()
}

/// Converts the film into a frame in the configured format.
pub(crate) fn build_frame(film: &Film, config: &RenderServerConfig, stats: FrameStats) -> Frame {
    let (image_type, color_space, is_linear, data) = match config.image_format {
        ImageFormat::Ldr => (
            ImageType::LdrRgba,
            NamedColorSpace::Srgb,
            false,
            film.to_srgb8(),
        ),
        ImageFormat::Hdr => {
            let floats = film.to_linear_f32();
            let mut bytes = Vec::with_capacity(floats.len() * 4);
            for value in floats {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
            (ImageType::HdrRgba, NamedColorSpace::LinearSrgb, true, bytes)
        }
    };
    let seconds = stats.render_time.as_secs_f32();
    let spp = stats.samples_per_pixel as f32;
    let pixel_samples =
        f64::from(stats.samples_per_pixel) * f64::from(film.width()) * f64::from(film.height());
    // Pixel samples per second over the accumulation's rendering time.
    let samples_per_second = if seconds > 0.0 {
        (pixel_samples / stats.render_time.as_secs_f64()) as f32
    } else {
        0.0
    };
    let image = ApiRenderImage {
        r#type: image_type as i32,
        color_space: color_space as i32,
        is_linear,
        shared_surface: None,
        size: Some(Uint322 {
            x: film.width(),
            y: film.height(),
        }),
        // Pixels, not bytes: see the comment on `pitch` in apirender.proto.
        pitch: film.width(),
        buffer: Some(Buffer {
            size: u32::try_from(data.len()).unwrap_or(u32::MAX),
            data,
        }),
        render_pass_id: RenderPassId::RenderPassBeauty as i32,
        tonemapped_samples_per_pixel: spp,
        calculated_samples_per_pixel: spp,
        region_samples_per_pixel: spp,
        max_samples_per_pixel: stats.max_samples_per_pixel as f32,
        samples_per_second,
        render_time: seconds,
        change_level: Some(CLevelT {
            value: stats.change_level,
        }),
        has_pending_updates: false,
        sub_sampling: match stats.subsampled {
            4.. => SubSampleMode::Subsamplemode4x4 as i32,
            2..=3 => SubSampleMode::Subsamplemode2x2 as i32,
            _ => SubSampleMode::SubsamplemodeNone as i32,
        },
        has_alpha: false,
        premultiplied_alpha_type: PremultipliedAlphaType::None as i32,
        keep_environment: false,
    };
    let images = ApiArrayApiRenderImage { data: vec![image] };
    let images_gen1 = match config.callback_generation {
        CallbackGeneration::Gen1 => Some(to_gen1(&images)),
        CallbackGeneration::Gen2 => None,
    };
    Frame {
        stats,
        images,
        images_gen1,
    }
}
