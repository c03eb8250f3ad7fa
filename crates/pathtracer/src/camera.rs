//! Pinhole camera and rays.

use crate::math::Vec3;

/// A pinhole camera looking from `position` at `target`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    /// Eye position in world space.
    pub position: Vec3,
    /// Point the camera looks at.
    pub target: Vec3,
    /// Approximate up direction; need not be orthogonal to the view direction.
    pub up: Vec3,
    /// Vertical field of view in degrees, strictly between 0 and 180.
    pub fov_degrees: f32,
}

impl Camera {
    /// True when the camera can produce rays: all numbers finite, `position != target`,
    /// `up` not (nearly) parallel to the view direction and `0 < fov_degrees < 180`.
    pub fn is_valid(&self) -> bool {
        self.validate().is_ok()
    }

    /// Like [`Camera::is_valid`] but says what is wrong.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.position.is_finite() && self.target.is_finite() && self.up.is_finite()) {
            return Err("camera position, target and up must be finite".into());
        }
        if !self.fov_degrees.is_finite() || self.fov_degrees <= 0.0 || self.fov_degrees >= 180.0 {
            return Err(format!(
                "field of view must be between 0 and 180 degrees (exclusive), got {}",
                self.fov_degrees
            ));
        }
        let view = self.target - self.position;
        let view_len = view.length();
        if !view_len.is_finite() || view_len <= 1e-6 {
            return Err("camera position and target must differ".into());
        }
        let up_len = self.up.length();
        if !up_len.is_finite() || up_len <= 1e-6 {
            return Err("camera up vector must be non-zero".into());
        }
        let sin_angle = view.cross(self.up).length() / (view_len * up_len);
        if !sin_angle.is_finite() || sin_angle <= 1e-4 {
            return Err("camera up vector must not be parallel to the view direction".into());
        }
        Ok(())
    }

    /// The pinhole ray through image position (`x`, `y`) in pixels (`0.5, 0.5` is the centre of
    /// the top-left pixel) of a `width x height` image; the camera must be valid and the size
    /// non-zero (otherwise the direction may be NaN).
    pub fn ray_through_pixel(&self, x: f32, y: f32, width: u32, height: u32) -> Ray {
        let frame = CameraFrame::new(self, width as f32 / height as f32);
        frame.ray(x * 2.0 / width as f32 - 1.0, 1.0 - y * 2.0 / height as f32)
    }
}

/// A ray `origin + t * dir`; `dir` is expected to be unit length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ray {
    /// Start point.
    pub origin: Vec3,
    /// Direction (unit length).
    pub dir: Vec3,
}

impl Ray {
    /// Builds a ray.
    pub fn new(origin: Vec3, dir: Vec3) -> Ray {
        Ray { origin, dir }
    }

    /// The point at distance `t` along the ray.
    pub fn at(&self, t: f32) -> Vec3 {
        self.origin + self.dir * t
    }
}

/// Precomputed camera basis used to generate primary rays.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CameraFrame {
    pub origin: Vec3,
    /// Direction through the image centre.
    pub forward: Vec3,
    /// Image-plane right vector scaled by half the horizontal extent at distance 1.
    pub right: Vec3,
    /// Image-plane up vector scaled by half the vertical extent at distance 1.
    pub up: Vec3,
}

impl CameraFrame {
    /// Basis for a valid camera and an image with the given aspect ratio (width / height).
    pub fn new(camera: &Camera, aspect: f32) -> CameraFrame {
        let forward = (camera.target - camera.position).normalized();
        let right = forward.cross(camera.up).normalized();
        let up = right.cross(forward);
        let half_h = (camera.fov_degrees.to_radians() * 0.5).tan();
        let half_w = half_h * aspect;
        CameraFrame {
            origin: camera.position,
            forward,
            right: right * half_w,
            up: up * half_h,
        }
    }

    /// Ray through normalised device coordinates `sx, sy` in [-1, 1] (+y up).
    pub fn ray(&self, sx: f32, sy: f32) -> Ray {
        let dir = (self.forward + self.right * sx + self.up * sy).normalized();
        Ray::new(self.origin, dir)
    }

    /// Thin-lens ray through `sx, sy`: it starts at a point of the lens disk of radius
    /// `aperture` chosen by `u1, u2` in [0, 1) and passes through the point the pinhole ray
    /// meets the plane in focus (perpendicular to the view, `focal_distance` away), so that
    /// plane stays sharp and everything else blurs.
    pub fn lens_ray(
        &self,
        sx: f32,
        sy: f32,
        aperture: f32,
        focal_distance: f32,
        u1: f32,
        u2: f32,
    ) -> Ray {
        let pinhole = self.ray(sx, sy);
        let along = pinhole.dir.dot(self.forward);
        if aperture <= 0.0 || along <= 0.0 {
            return pinhole;
        }
        let focus = pinhole.at(focal_distance / along);
        // Uniform point on the disk (polar mapping: sqrt keeps the density even).
        let radius = aperture * u1.sqrt();
        let angle = 2.0 * std::f32::consts::PI * u2;
        let offset = self.right.normalized() * (radius * angle.cos())
            + self.up.normalized() * (radius * angle.sin());
        let origin = self.origin + offset;
        Ray::new(origin, (focus - origin).normalized())
    }
}
