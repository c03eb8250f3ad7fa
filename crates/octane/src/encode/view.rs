//! Views of a frame: the part a viewer looks at (a crop, or the whole frame) at the size it
//! displays it (scaled down by area-averaging, never enlarged).
//!
//! A viewer asks with a [`ViewRequest`]; against a frame's size the request resolves to a
//! [`View`], the exact region and output size. Output widths are rounded up to a fixed ladder
//! of [`WIDTH_RUNGS`], so viewers of similar sizes resolve to the same view and share one
//! encoding, and the views of one frame stay few (memory bounded by the cache's key limit).

use std::borrow::Cow;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use serde::Serialize;

/// Largest width or height a viewer may state (16k: beyond any display, and beyond JPEG's
/// practical limits for a browser).
pub const MAX_VIEW_SIDE: u32 = 16384;

/// Output widths a scaled view is rounded up to. Neighbours differ by at most a third, so an
/// image is never much larger than its display; the common display widths are rungs, so a
/// 1440-wide viewer of a 3840-wide frame gets exactly 1440.
pub const WIDTH_RUNGS: &[u32] = &[
    32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 480, 640, 800, 960, 1120, 1280, 1440, 1600, 1920,
    2240, 2560, 2880, 3200, 3840, 4480, 5120, 5760, 6400, 7680,
];

/// A rectangle of a frame, in full-frame pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Region {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (at least 1).
    pub width: u32,
    /// Height (at least 1).
    pub height: u32,
}

impl Region {
    /// The whole of a `width`×`height` frame.
    pub fn whole(width: u32, height: u32) -> Region {
        Region {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    /// `[x, y, width, height]`, as viewers send and receive it.
    pub fn to_array(self) -> [u32; 4] {
        [self.x, self.y, self.width, self.height]
    }

    /// The part of this region inside a `width`×`height` frame, if any.
    fn within(self, width: u32, height: u32) -> Option<Region> {
        let x = self.x.min(width);
        let y = self.y.min(height);
        let right = self.x.saturating_add(self.width).min(width);
        let bottom = self.y.saturating_add(self.height).min(height);
        (right > x && bottom > y).then(|| Region {
            x,
            y,
            width: right - x,
            height: bottom - y,
        })
    }
}

/// A view request that does not fit: the text names the field and the bounds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// Width or height out of range, or only one of them given.
    #[error("{0}")]
    Size(String),
    /// The crop is malformed or outside the frame.
    #[error("{0}")]
    Crop(String),
}

/// What a viewer asks to see: a region (default: the whole frame) fitted into a display box
/// (default: no box, the region 1:1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ViewRequest {
    /// The display size in device pixels, if the viewer stated one.
    pub fit: Option<(u32, u32)>,
    /// The region of the full frame, if not the whole.
    pub crop: Option<Region>,
}

impl ViewRequest {
    /// The request for the whole frame at full size.
    pub const FULL: ViewRequest = ViewRequest {
        fit: None,
        crop: None,
    };

    /// A display size: both `width` and `height` from 1 to [`MAX_VIEW_SIDE`], or both 0 (no
    /// box: full size). `names` are how the caller calls the two fields in its errors.
    pub fn fit_from(
        width: u64,
        height: u64,
        names: (&str, &str),
    ) -> Result<Option<(u32, u32)>, ViewError> {
        let (w_name, h_name) = names;
        if width == 0 && height == 0 {
            return Ok(None);
        }
        let side = |value: u64, name: &str| {
            u32::try_from(value)
                .ok()
                .filter(|v| (1..=MAX_VIEW_SIDE).contains(v))
                .ok_or_else(|| {
                    ViewError::Size(format!(
                        "{name} {value} must be from 1 to {MAX_VIEW_SIDE} (or 0 with {w_name} and {h_name} both 0 for the full frame)"
                    ))
                })
        };
        Ok(Some((side(width, w_name)?, side(height, h_name)?)))
    }

    /// A crop `[x, y, width, height]` that lies inside a `frame_width`×`frame_height` frame
    /// (the newest frame when it is asked for; `None` when there is none yet, and then only
    /// the form is checked). `name` is how the caller calls the field.
    pub fn crop_from(
        values: [u64; 4],
        frame: Option<(u32, u32)>,
        name: &str,
    ) -> Result<Region, ViewError> {
        let [x, y, width, height] = values;
        let number = |v: u64| u32::try_from(v).ok().filter(|v| *v <= 1 << 20);
        let (Some(x), Some(y), Some(width), Some(height)) =
            (number(x), number(y), number(width), number(height))
        else {
            return Err(ViewError::Crop(format!(
                "{name} {values:?} has a number out of range"
            )));
        };
        if width == 0 || height == 0 {
            return Err(ViewError::Crop(format!(
                "{name} [{x}, {y}, {width}, {height}] must have a width and height of at least 1"
            )));
        }
        if let Some((frame_width, frame_height)) = frame {
            if x + width > frame_width || y + height > frame_height {
                return Err(ViewError::Crop(format!(
                    "{name} [{x}, {y}, {width}, {height}] reaches outside the {frame_width}×{frame_height} frame"
                )));
            }
        }
        Ok(Region {
            x,
            y,
            width,
            height,
        })
    }

    /// Resolves the request against a `width`×`height` frame. A crop that no longer fits (the
    /// render's size changed since it was asked) is cut to the frame; one wholly outside it
    /// falls back to the whole frame.
    pub fn resolve(&self, width: u32, height: u32) -> View {
        let region = self
            .crop
            .and_then(|crop| crop.within(width, height))
            .unwrap_or(Region::whole(width, height));
        let (out_width, out_height) = match self.fit {
            None => (region.width, region.height),
            Some(display) => fitted_size(region, display),
        };
        View {
            region,
            width: out_width,
            height: out_height,
            full_width: width,
            full_height: height,
        }
    }
}

/// The output size of `region` fitted into `display`: never enlarged, width rounded up to the
/// next rung (or to the region's own width when the rung would reach it).
fn fitted_size(region: Region, (box_width, box_height): (u32, u32)) -> (u32, u32) {
    let scale = (f64::from(box_width) / f64::from(region.width))
        .min(f64::from(box_height) / f64::from(region.height));
    if scale >= 1.0 {
        return (region.width, region.height);
    }
    let wanted = (f64::from(region.width) * scale).ceil().max(1.0) as u32;
    let rung = WIDTH_RUNGS
        .iter()
        .copied()
        .find(|rung| *rung >= wanted)
        .unwrap_or_else(|| wanted.div_ceil(512) * 512);
    if rung >= region.width {
        return (region.width, region.height);
    }
    let height = (u64::from(region.height) * u64::from(rung) + u64::from(region.width) / 2)
        / u64::from(region.width);
    (rung, height.clamp(1, u64::from(region.height)) as u32)
}

/// A request resolved against one frame: which region, at what size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct View {
    /// The part of the full frame shown.
    pub region: Region,
    /// Output width in pixels.
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    /// The full frame's width.
    pub full_width: u32,
    /// The full frame's height.
    pub full_height: u32,
}

impl View {
    /// The whole `width`×`height` frame at full size.
    pub fn full(width: u32, height: u32) -> View {
        ViewRequest::FULL.resolve(width, height)
    }

    /// Whether this is the whole frame, unscaled.
    pub fn is_full(&self) -> bool {
        self.region == Region::whole(self.full_width, self.full_height)
            && (self.width, self.height) == (self.full_width, self.full_height)
    }
}

/// The view's pixels from the full frame's tightly packed RGBA8 `pixels`: borrowed when the
/// view is the full frame, else cropped and area-averaged (vectorised).
pub fn apply<'a>(pixels: &'a [u8], view: &View) -> Result<Cow<'a, [u8]>, String> {
    if view.is_full() {
        return Ok(Cow::Borrowed(pixels));
    }
    let source = ImageRef::new(view.full_width, view.full_height, pixels, PixelType::U8x4)
        .map_err(|e| format!("frame pixels do not match its size: {e}"))?;
    let region = view.region;
    if (view.width, view.height) == (region.width, region.height) {
        return Ok(Cow::Owned(copy_region(pixels, view)));
    }
    let mut scaled = Image::new(view.width, view.height, PixelType::U8x4);
    // A box filter scaled to the reduction covers each output pixel's footprint with equal
    // weights: an area average. Alpha is averaged like the colours (no premultiplication),
    // as renders are opaque and an unweighted mean is what a viewer expects of a thumbnail.
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Box))
        .use_alpha(false)
        .crop(
            f64::from(region.x),
            f64::from(region.y),
            f64::from(region.width),
            f64::from(region.height),
        );
    Resizer::new()
        .resize(&source, &mut scaled, &options)
        .map_err(|e| format!("scaling the frame failed: {e}"))?;
    Ok(Cow::Owned(scaled.into_vec()))
}

/// The region's rows, copied out of the full frame (a crop shown 1:1).
fn copy_region(pixels: &[u8], view: &View) -> Vec<u8> {
    let region = view.region;
    let stride = view.full_width as usize * 4;
    let row_bytes = region.width as usize * 4;
    let mut out = Vec::with_capacity(row_bytes * region.height as usize);
    for row in region.y..region.y + region.height {
        let start = row as usize * stride + region.x as usize * 4;
        if let Some(bytes) = pixels.get(start..start + row_bytes) {
            out.extend_from_slice(bytes);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(w: u32, h: u32) -> ViewRequest {
        ViewRequest {
            fit: Some((w, h)),
            crop: None,
        }
    }

    #[test]
    fn display_sizes_resolve_to_rungs_and_never_enlarge() {
        let v = fit(640, 360).resolve(3840, 2160);
        assert_eq!((v.width, v.height), (640, 360));
        let v = fit(1440, 810).resolve(3840, 2160);
        assert_eq!((v.width, v.height), (1440, 810));
        // A box a little smaller than a rung gets that rung.
        let v = fit(1400, 1000).resolve(3840, 2160);
        assert_eq!((v.width, v.height), (1440, 810));
        // Limited by height: a tall narrow box.
        let v = fit(5000, 540).resolve(3840, 2160);
        assert_eq!((v.width, v.height), (960, 540));
        // Never larger than the frame.
        let v = fit(4000, 4000).resolve(1024, 512);
        assert!(v.is_full());
        let v = fit(1000, 600).resolve(1024, 512);
        assert!(v.is_full(), "rung 1120 would exceed the frame: {v:?}");
        assert!(ViewRequest::FULL.resolve(8, 8).is_full());
    }

    #[test]
    fn crops_are_cut_to_the_frame_and_fitted() {
        let crop = Region {
            x: 1000,
            y: 500,
            width: 800,
            height: 600,
        };
        let v = ViewRequest {
            fit: None,
            crop: Some(crop),
        }
        .resolve(3840, 2160);
        assert_eq!(v.region, crop);
        assert_eq!((v.width, v.height), (800, 600));
        let v = ViewRequest {
            fit: Some((400, 400)),
            crop: Some(crop),
        }
        .resolve(3840, 2160);
        assert_eq!((v.width, v.height), (480, 360));
        // The render shrank under the crop.
        let v = ViewRequest {
            fit: None,
            crop: Some(crop),
        }
        .resolve(1200, 800);
        assert_eq!(
            v.region,
            Region {
                x: 1000,
                y: 500,
                width: 200,
                height: 300
            }
        );
        let v = ViewRequest {
            fit: None,
            crop: Some(crop),
        }
        .resolve(640, 480);
        assert!(v.is_full());
    }

    #[test]
    fn bad_requests_name_the_field() {
        let err = ViewRequest::fit_from(0, 360, ("width", "height")).unwrap_err();
        assert!(
            err.to_string().starts_with("width 0 must be from 1"),
            "{err}"
        );
        let err = ViewRequest::fit_from(640, 99999, ("width", "height")).unwrap_err();
        assert!(err.to_string().starts_with("height 99999"), "{err}");
        assert_eq!(ViewRequest::fit_from(0, 0, ("w", "h")), Ok(None));
        let err = ViewRequest::crop_from([0, 0, 0, 5], None, "crop").unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        let err =
            ViewRequest::crop_from([3000, 0, 1000, 5], Some((3840, 2160)), "crop").unwrap_err();
        assert!(
            err.to_string().contains("outside the 3840×2160 frame"),
            "{err}"
        );
        assert!(ViewRequest::crop_from([2840, 0, 1000, 5], Some((3840, 2160)), "crop").is_ok());
    }

    #[test]
    fn scaling_is_an_area_average_and_crops_are_exact() {
        let (w, h) = (96u32, 48u32);
        let pixels: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [(x * 2) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8, 255]
            })
            .collect();
        let view = fit(16, 8).resolve(w, h);
        assert_eq!((view.width, view.height), (32, 16));
        let scaled = apply(&pixels, &view).unwrap();
        for (oy, ox) in [(0u32, 0u32), (7, 13), (15, 31)] {
            for c in 0..4 {
                let mut sum = 0u32;
                for y in oy * 3..oy * 3 + 3 {
                    for x in ox * 3..ox * 3 + 3 {
                        sum += u32::from(pixels[((y * w + x) * 4 + c) as usize]);
                    }
                }
                let mean = sum as f64 / 9.0;
                let got = f64::from(scaled[((oy * 32 + ox) * 4 + c) as usize]);
                assert!(
                    (got - mean).abs() <= 1.0,
                    "({ox},{oy}) channel {c}: {got} vs {mean}"
                );
            }
        }
        let crop = Region {
            x: 5,
            y: 7,
            width: 10,
            height: 3,
        };
        let view = ViewRequest {
            fit: None,
            crop: Some(crop),
        }
        .resolve(w, h);
        let cut = apply(&pixels, &view).unwrap();
        assert_eq!(cut.len(), 10 * 3 * 4);
        for row in 0..3usize {
            let start = ((7 + row) * w as usize + 5) * 4;
            assert_eq!(&cut[row * 40..row * 40 + 40], &pixels[start..start + 40]);
        }
    }
}
