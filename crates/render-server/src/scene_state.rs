//! What the scene's node graph controls about the render: everything but the geometry
//! itself. The node graph (`nodes`) computes a [`SceneState`] from its pins after every edit
//! and hands it to the engine ([`crate::engine::Engine::apply`]), which restarts progressive
//! rendering when anything changed.

use octaneweb_pathtracer::{Camera, Environment, Material, RenderSettings, Scene, Vec3};

/// The thin lens: an aperture of 0 is a pinhole (everything sharp).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Lens {
    /// Aperture radius in world units (>= 0).
    pub aperture: f32,
    /// Distance from the camera to the plane in focus, in world units (> 0).
    pub focal_distance: f32,
}

/// The path-tracing kernel's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Kernel {
    /// Samples per pixel after which rendering stops (>= 1).
    pub max_samples: u32,
    /// Longest light path, in bounces (>= 1).
    pub max_depth: u32,
    /// Largest radiance a path may add to a pixel (0: no clamp); tames fireflies.
    pub clamp: f32,
}

/// A rectangle of the image, in pixels: `min` inclusive, `max` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    pub min: [u32; 2],
    pub max: [u32; 2],
}

/// Clay mode: materials replaced by plain diffuse ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ClayMode {
    /// Materials as they are.
    #[default]
    None,
    /// Every surface a mid grey diffuse.
    Grey,
    /// Every surface diffuse in its material's colour.
    Color,
}

/// Sub-sampling: the first passes after a change render fewer pixels and are shown at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum SubSample {
    /// Full resolution after the previews every change starts with (4x4 blocks, then 2x2;
    /// see the engine).
    #[default]
    None,
    /// Previews of 4x4 then 2x2 blocks, then full resolution.
    X2,
    /// One preview of 4x4 blocks, then full resolution.
    X4,
}

/// What the render shows, besides the geometry.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SceneState {
    pub camera: Camera,
    pub lens: Lens,
    /// In [`Scene::materials`] order.
    pub materials: Vec<Material>,
    pub environment: Environment,
    /// A translation per object, in [`Scene::objects`] order.
    pub object_offsets: Vec<Vec3>,
    pub kernel: Kernel,
    /// Width and height in pixels.
    pub resolution: [u32; 2],
    /// Only this part of the image refines; `None`: all of it.
    pub region: Option<Region>,
    pub clay: ClayMode,
    pub subsample: SubSample,
}

/// Where an object no placement puts is moved: far below the floor, out of every view.
pub(crate) const HIDDEN_OFFSET_Y: f32 = -1.0e4;

impl SceneState {
    /// The objects a placement puts in the scene (the others are moved out of view).
    pub fn placed_objects(&self) -> impl Iterator<Item = usize> + '_ {
        self.object_offsets
            .iter()
            .enumerate()
            .filter(|(_, offset)| offset.y > HIDDEN_OFFSET_Y / 2.0)
            .map(|(index, _)| index)
    }

    /// The built-in scene as it starts.
    pub fn initial(scene: &Scene, resolution: [u32; 2], max_samples: u32) -> SceneState {
        SceneState {
            camera: scene.default_camera(),
            lens: Lens {
                aperture: 0.0,
                focal_distance: 10.0,
            },
            materials: scene.materials().to_vec(),
            environment: scene.environment().clone(),
            object_offsets: vec![Vec3::ZERO; scene.objects().len()],
            kernel: Kernel {
                max_samples,
                // The path tracer's own default, so the first image is the one it always made.
                max_depth: RenderSettings::default().max_depth,
                clamp: 0.0,
            },
            resolution,
            region: None,
            clay: ClayMode::None,
            subsample: SubSample::None,
        }
    }
}

/// What is under a pixel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PickHit {
    /// Index into [`Scene::objects`].
    pub object: usize,
    /// Distance from the camera.
    pub depth: f32,
    pub position: Vec3,
    pub normal: Vec3,
}
