//! Scene description: materials, objects (spheres and triangle meshes) and the sky.

use crate::camera::{Camera, Ray};
use crate::math::Vec3;

/// How a surface scatters or emits light.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaterialKind {
    /// Matte, Lambertian reflection.
    Diffuse,
    /// A rough mirror-like lobe over a diffuse base.
    Glossy,
    /// A light source; emits `Material::emission`.
    Emissive,
}

/// A surface material.
#[derive(Clone, Debug, PartialEq)]
pub struct Material {
    /// Human-readable name, e.g. "Red matte".
    pub name: String,
    /// Scattering model.
    pub kind: MaterialKind,
    /// Reflectance colour, each channel in 0..=1.
    pub albedo: Vec3,
    /// Glossy roughness in 0..=1 (0 = perfect mirror); ignored by other kinds.
    pub roughness: f32,
    /// Emitted radiance (only used by emissive materials).
    pub emission: Vec3,
}

/// Kind of geometry behind a [`SceneObject`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeKind {
    /// An analytic sphere (its mesh is a tessellation for export only).
    Sphere,
    /// A triangle/polygon mesh.
    Mesh,
}

/// One object of the scene with its geometry as a polygon mesh in world space.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneObject {
    /// Human-readable name, e.g. "Floor" or "Red sphere".
    pub name: String,
    /// Geometry kind.
    pub kind: ShapeKind,
    /// Index into [`Scene::materials`].
    pub material: usize,
    /// Vertex positions.
    pub positions: Vec<Vec3>,
    /// Vertex normals.
    pub normals: Vec<Vec3>,
    /// Number of vertices of each polygon.
    pub verts_per_poly: Vec<u32>,
    /// Position indices of all polygons, concatenated.
    pub poly_vert_indices: Vec<u32>,
    /// Normal indices of all polygons, concatenated (parallel to `poly_vert_indices`).
    pub poly_normal_indices: Vec<u32>,
    /// 3x4 row-major object-to-world matrix; identity because positions are in world space.
    pub world_matrix: [[f64; 4]; 3],
}

/// The sky: a vertical gradient plus a sun.
#[derive(Clone, Debug, PartialEq)]
pub struct Environment {
    /// Human-readable name.
    pub name: String,
    /// Radiance straight up.
    pub zenith: Vec3,
    /// Radiance at the horizon.
    pub horizon: Vec3,
    /// Radiance below the horizon.
    pub ground: Vec3,
    /// Unit direction towards the sun.
    pub sun_direction: Vec3,
    /// Radiance of the sun disk.
    pub sun_radiance: Vec3,
}

/// A ray-surface intersection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Distance along the ray.
    pub t: f32,
    /// World-space hit point.
    pub point: Vec3,
    /// Unit surface normal facing against the ray.
    pub normal: Vec3,
    /// Index into [`Scene::objects`].
    pub object: usize,
}

/// A renderable scene.
#[derive(Clone, Debug)]
pub struct Scene {
    objects: Vec<SceneObject>,
    materials: Vec<Material>,
    environment: Environment,
    camera: Camera,
}

/// The identity 3x4 matrix.
#[allow(dead_code)] // used by the mesh builders
pub(crate) const IDENTITY_3X4: [[f64; 4]; 3] = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
];

impl Scene {
    /// The built-in demo scene.
    pub fn builtin() -> Scene {
        Scene {
            objects: Vec::new(),
            materials: Vec::new(),
            environment: Environment {
                name: "Daylight sky".into(),
                zenith: Vec3::new(0.3, 0.5, 1.0),
                horizon: Vec3::new(0.9, 0.9, 1.0),
                ground: Vec3::new(0.3, 0.25, 0.2),
                sun_direction: Vec3::new(0.5, 0.7, 0.3).normalized(),
                sun_radiance: Vec3::splat(100.0),
            },
            camera: Camera {
                position: Vec3::new(0.0, 2.0, 8.0),
                target: Vec3::new(0.0, 0.8, 0.0),
                up: Vec3::new(0.0, 1.0, 0.0),
                fov_degrees: 40.0,
            },
        }
    }

    /// A camera that frames the scene nicely.
    pub fn default_camera(&self) -> Camera {
        self.camera
    }

    /// All objects; [`Hit::object`] indexes this slice.
    pub fn objects(&self) -> &[SceneObject] {
        &self.objects
    }

    /// All materials; [`SceneObject::material`] indexes this slice.
    pub fn materials(&self) -> &[Material] {
        &self.materials
    }

    /// The sky.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// The closest intersection with `t_min < t < t_max`, if any.
    pub fn intersect(&self, ray: &Ray, t_min: f32, t_max: f32) -> Option<Hit> {
        let _ = (ray, t_min, t_max);
        None
    }
}
