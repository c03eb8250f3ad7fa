//! octaneweb's reference CPU renderer: a progressive, multi-threaded path tracer.
//!
//! A [`Renderer`] owns a [`Film`] and adds one sample per pixel each time
//! [`Renderer::render_sample`] is called; the film can be read at any point as sRGB bytes
//! ([`Film::to_srgb8`]) or linear floats ([`Film::to_linear_f32`]). [`Scene::builtin`] is a
//! small demo scene (ground, spheres, meshes, sky with a sun).

mod bvh;
mod camera;
mod film;
mod geometry;
mod integrator;
mod material;
pub mod math;
mod png_io;
mod render;
mod rng;
mod scene;

pub use camera::{Camera, Ray};
pub use film::{Film, Pixels, EXPOSURE};
pub use math::Vec3;
pub use png_io::{encode_png, write_png};
pub use render::{PixelRect, RenderError, RenderSettings, Renderer, MAX_DIMENSION, MAX_PATH_DEPTH};
pub use scene::{
    Environment, Hit, Material, MaterialKind, Scene, SceneObject, ShapeKind, METALLIC_INDEX,
    SUN_ANGULAR_RADIUS,
};
