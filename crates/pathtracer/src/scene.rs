//! Scene description: materials, objects (spheres and triangle meshes) and the sky.

use std::fmt;

use crate::bvh::Bvh;
use crate::camera::{Camera, Ray};
use crate::geometry::{self, PolyMesh, Triangle};
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
    /// Glossy index of refraction (>= 1): how much light the coat reflects head-on,
    /// `((n - 1) / (n + 1))^2` (1.5 is a plastic's 4%; metals are approximated by high
    /// indices, 18 reflects 80%); ignored by other kinds.
    pub index: f32,
    /// Emitted radiance (only used by emissive materials).
    pub emission: Vec3,
}

/// The index the built-in glossy materials use: 80% head-on reflection, metal-like.
pub const METALLIC_INDEX: f32 = 18.0;

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

impl Material {
    /// Checks that the renderer can use the material: albedo channels in 0..=1, roughness in
    /// 0..=1, emission finite and >= 0.
    pub fn validate(&self) -> Result<(), String> {
        let channels = |v: Vec3| [v.x, v.y, v.z];
        if !channels(self.albedo)
            .iter()
            .all(|c| (0.0..=1.0).contains(c))
        {
            return Err(format!(
                "material {:?}: albedo channels must be between 0 and 1, got {:?}",
                self.name, self.albedo
            ));
        }
        if !(self.index.is_finite() && self.index >= 1.0) {
            return Err(format!(
                "material {:?}: the index of refraction must be at least 1, got {}",
                self.name, self.index
            ));
        }
        if !(0.0..=1.0).contains(&self.roughness) {
            return Err(format!(
                "material {:?}: roughness must be between 0 and 1, got {}",
                self.name, self.roughness
            ));
        }
        if !channels(self.emission)
            .iter()
            .all(|c| c.is_finite() && *c >= 0.0)
        {
            return Err(format!(
                "material {:?}: emission must be finite and not negative, got {:?}",
                self.name, self.emission
            ));
        }
        Ok(())
    }
}

impl Environment {
    /// Checks that the renderer can use the sky: radiances finite and >= 0, a finite non-zero
    /// sun direction.
    pub fn validate(&self) -> Result<(), String> {
        for (what, v) in [
            ("zenith", self.zenith),
            ("horizon", self.horizon),
            ("ground", self.ground),
            ("sun radiance", self.sun_radiance),
        ] {
            if !(v.is_finite() && v.x >= 0.0 && v.y >= 0.0 && v.z >= 0.0) {
                return Err(format!(
                    "environment {what} must be finite and not negative, got {v:?}"
                ));
            }
        }
        let length = self.sun_direction.length();
        if !(length.is_finite() && length > 1e-6) {
            return Err(format!(
                "the sun direction must be a finite non-zero vector, got {:?}",
                self.sun_direction
            ));
        }
        Ok(())
    }
}

/// The BVH of a mesh object's triangles (`None` for a mesh without triangles).
fn mesh_bvh(mesh: &PolyMesh, object: usize) -> Option<Bvh> {
    let mut triangles: Vec<Triangle> = Vec::new();
    geometry::triangulate(
        &mesh.positions,
        &mesh.normals,
        &mesh.verts_per_poly,
        &mesh.poly_vert_indices,
        &mesh.poly_normal_indices,
        object as u32,
        &mut triangles,
    );
    (!triangles.is_empty()).then(|| Bvh::build(triangles))
}

/// Like [`mesh_bvh`] for an object of an assembled scene.
fn object_bvh(object: &SceneObject, index: usize) -> Option<Bvh> {
    let mut triangles: Vec<Triangle> = Vec::new();
    geometry::triangulate(
        &object.positions,
        &object.normals,
        &object.verts_per_poly,
        &object.poly_vert_indices,
        &object.poly_normal_indices,
        index as u32,
        &mut triangles,
    );
    (!triangles.is_empty()).then(|| Bvh::build(triangles))
}

/// Indices of the spheres whose material emits light (sampled directly as lights).
fn emissive_spheres(
    spheres: &[Sphere],
    objects: &[SceneObject],
    materials: &[Material],
) -> Vec<usize> {
    spheres
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            objects
                .get(s.object)
                .and_then(|o| materials.get(o.material))
                .is_some_and(|m| {
                    m.kind == MaterialKind::Emissive && m.emission.max_component() > 0.0
                })
        })
        .map(|(i, _)| i)
        .collect()
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

/// The identity 3x4 matrix.
pub(crate) const IDENTITY_3X4: [[f64; 4]; 3] = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
];

/// Angular radius of the sun disk in radians (about 1.7 degrees: a little larger than the real
/// sun so shadows have visibly soft edges and converge quickly).
pub const SUN_ANGULAR_RADIUS: f32 = 0.03;

/// A renderable scene: objects with materials, a sky and a default camera.
///
/// Rendering uses analytic spheres and a BVH over all mesh triangles; the polygon meshes in
/// [`SceneObject`] are what the scene looks like to an exporter.
#[derive(Clone)]
pub struct Scene {
    objects: Vec<SceneObject>,
    materials: Vec<Material>,
    environment: Environment,
    camera: Camera,
    spheres: Vec<Sphere>,
    /// One hierarchy per mesh object: rays skip a whole object after one box test, and the
    /// huge floor does not inflate the boxes of the small objects.
    meshes: Vec<Bvh>,
    /// The object each entry of `meshes` belongs to.
    mesh_objects: Vec<usize>,
    /// Indices into `spheres` of the emissive ones (sampled directly as lights).
    sphere_lights: Vec<usize>,
    /// Cosine of [`SUN_ANGULAR_RADIUS`].
    sun_cos_max: f32,
}

impl fmt::Debug for Scene {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scene")
            .field(
                "objects",
                &self.objects.iter().map(|o| &o.name).collect::<Vec<_>>(),
            )
            .field("materials", &self.materials.len())
            .field("environment", &self.environment.name)
            .field("camera", &self.camera)
            .finish_non_exhaustive()
    }
}

/// An analytic sphere used for rendering.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sphere {
    pub center: Vec3,
    pub radius: f32,
    pub object: usize,
}

impl Sphere {
    /// Nearest root of |o + t d - c|^2 = r^2 inside (t_min, t_max); `dir` must be unit length.
    #[inline]
    pub fn intersect(&self, origin: Vec3, dir: Vec3, t_min: f32, t_max: f32) -> Option<f32> {
        let oc = origin - self.center;
        let b = oc.dot(dir);
        let c = oc.dot(oc) - self.radius * self.radius;
        let disc = b * b - c;
        if disc < 0.0 {
            return None;
        }
        let sq = disc.sqrt();
        let near = -b - sq;
        if near > t_min && near < t_max {
            return Some(near);
        }
        let far = -b + sq;
        if far > t_min && far < t_max {
            return Some(far);
        }
        None
    }
}

/// Internal hit record with the extra data shading needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SurfaceHit {
    pub t: f32,
    pub point: Vec3,
    /// Shading normal, flipped to face the incoming ray.
    pub normal: Vec3,
    /// Geometric normal, flipped to face the incoming ray.
    pub geometric_normal: Vec3,
    pub object: usize,
    /// Index into the scene's sphere list when the hit surface is an analytic sphere.
    pub sphere: Option<usize>,
}

/// Builder input for one object.
struct ObjectSpec {
    name: &'static str,
    material: usize,
    shape: Shape,
}

enum Shape {
    Sphere { center: Vec3, radius: f32 },
    Mesh(PolyMesh),
}

fn material(
    name: &str,
    kind: MaterialKind,
    albedo: Vec3,
    roughness: f32,
    emission: Vec3,
) -> Material {
    Material {
        name: name.to_string(),
        kind,
        albedo,
        roughness,
        index: METALLIC_INDEX,
        emission,
    }
}

impl Scene {
    /// The built-in demo scene: a large floor, a matte red sphere, a glossy gold sphere, a
    /// glowing orange sphere, a blue box, a green glossy icosahedron and a copper torus under a
    /// late-afternoon sky with a sun.
    pub fn builtin() -> Scene {
        use MaterialKind::{Diffuse, Emissive, Glossy};
        let materials = vec![
            material(
                "Floor white",
                Diffuse,
                Vec3::new(0.55, 0.53, 0.50),
                1.0,
                Vec3::ZERO,
            ),
            material(
                "Red matte",
                Diffuse,
                Vec3::new(0.80, 0.10, 0.08),
                1.0,
                Vec3::ZERO,
            ),
            material("Gold", Glossy, Vec3::new(1.0, 0.72, 0.30), 0.1, Vec3::ZERO),
            material(
                "Warm glow",
                Emissive,
                Vec3::ZERO,
                1.0,
                Vec3::new(6.0, 2.6, 0.7),
            ),
            material(
                "Blue matte",
                Diffuse,
                Vec3::new(0.12, 0.25, 0.75),
                1.0,
                Vec3::ZERO,
            ),
            material(
                "Green glossy",
                Glossy,
                Vec3::new(0.20, 0.70, 0.30),
                0.35,
                Vec3::ZERO,
            ),
            material(
                "Copper",
                Glossy,
                Vec3::new(0.95, 0.55, 0.40),
                0.22,
                Vec3::ZERO,
            ),
        ];
        let objects = vec![
            ObjectSpec {
                name: "Floor",
                material: 0,
                shape: Shape::Mesh(geometry::floor_quad(100.0, 0.0)),
            },
            ObjectSpec {
                name: "Red sphere",
                material: 1,
                shape: Shape::Sphere {
                    center: Vec3::new(-1.9, 0.8, 0.2),
                    radius: 0.8,
                },
            },
            ObjectSpec {
                name: "Gold sphere",
                material: 2,
                shape: Shape::Sphere {
                    center: Vec3::new(0.2, 1.0, -0.9),
                    radius: 1.0,
                },
            },
            ObjectSpec {
                name: "Glowing sphere",
                material: 3,
                shape: Shape::Sphere {
                    center: Vec3::new(1.25, 0.35, 1.3),
                    radius: 0.35,
                },
            },
            ObjectSpec {
                name: "Blue box",
                material: 4,
                shape: Shape::Mesh(geometry::cuboid(
                    Vec3::new(2.7, 0.6, -0.6),
                    Vec3::new(0.6, 0.6, 0.6),
                    0.6,
                )),
            },
            ObjectSpec {
                name: "Green icosahedron",
                material: 5,
                shape: Shape::Mesh(geometry::icosahedron(Vec3::new(-3.9, 0.75, -1.6), 0.8, 0.3)),
            },
            ObjectSpec {
                name: "Copper torus",
                material: 6,
                shape: Shape::Mesh(geometry::torus(
                    Vec3::new(-0.4, 0.62, 1.6),
                    0.5,
                    0.2,
                    (64, 24),
                    (1.1, 0.5),
                )),
            },
        ];
        let environment = Environment {
            name: "Afternoon sky".into(),
            zenith: Vec3::new(0.07, 0.15, 0.42),
            horizon: Vec3::new(0.36, 0.42, 0.55),
            ground: Vec3::new(0.25, 0.22, 0.20),
            sun_direction: Vec3::new(-0.72, 0.45, 0.42).normalized(),
            sun_radiance: Vec3::new(1450.0, 1250.0, 1000.0),
        };
        let camera = Camera {
            position: Vec3::new(0.0, 2.4, 7.8),
            target: Vec3::new(-0.3, 0.7, 0.0),
            up: Vec3::new(0.0, 1.0, 0.0),
            fov_degrees: 38.0,
        };
        Scene::assemble(objects, materials, environment, camera)
    }

    fn assemble(
        specs: Vec<ObjectSpec>,
        materials: Vec<Material>,
        environment: Environment,
        camera: Camera,
    ) -> Scene {
        let mut objects = Vec::with_capacity(specs.len());
        let mut spheres = Vec::new();
        let mut meshes = Vec::new();
        let mut mesh_objects = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            let (kind, mesh) = match spec.shape {
                Shape::Sphere { center, radius } => {
                    spheres.push(Sphere {
                        center,
                        radius,
                        object: index,
                    });
                    (
                        ShapeKind::Sphere,
                        geometry::uv_sphere(center, radius, 32, 16),
                    )
                }
                Shape::Mesh(mesh) => {
                    if let Some(bvh) = mesh_bvh(&mesh, index) {
                        meshes.push(bvh);
                        mesh_objects.push(index);
                    }
                    (ShapeKind::Mesh, mesh)
                }
            };
            objects.push(SceneObject {
                name: spec.name.to_string(),
                kind,
                material: spec.material,
                positions: mesh.positions,
                normals: mesh.normals,
                verts_per_poly: mesh.verts_per_poly,
                poly_vert_indices: mesh.poly_vert_indices,
                poly_normal_indices: mesh.poly_normal_indices,
                world_matrix: IDENTITY_3X4,
            });
        }
        let sphere_lights = emissive_spheres(&spheres, &objects, &materials);
        let mut environment = environment;
        environment.sun_direction = environment.sun_direction.normalized();
        Scene {
            objects,
            materials,
            environment,
            camera,
            spheres,
            meshes,
            mesh_objects,
            sphere_lights,
            sun_cos_max: SUN_ANGULAR_RADIUS.cos(),
        }
    }

    /// This scene with other materials (same count and order as [`Scene::materials`]), another
    /// sky, and every object translated by its entry of `offsets` (same order as
    /// [`Scene::objects`]): spheres move their centre, meshes their vertices (their BVH is
    /// rebuilt). Offsets are relative to `self`. Refuses values the renderer cannot use.
    pub fn with_changes(
        &self,
        materials: &[Material],
        environment: &Environment,
        offsets: &[Vec3],
    ) -> Result<Scene, String> {
        if materials.len() != self.materials.len() {
            return Err(format!(
                "the scene has {} materials, got {}",
                self.materials.len(),
                materials.len()
            ));
        }
        if offsets.len() != self.objects.len() {
            return Err(format!(
                "the scene has {} objects, got {} offsets",
                self.objects.len(),
                offsets.len()
            ));
        }
        for material in materials {
            material.validate()?;
        }
        environment.validate()?;
        for (object, offset) in self.objects.iter().zip(offsets) {
            if !offset.is_finite() {
                return Err(format!(
                    "the offset of {:?} must be finite, got {offset:?}",
                    object.name
                ));
            }
        }
        let mut objects = self.objects.clone();
        for (object, &offset) in objects.iter_mut().zip(offsets) {
            if offset != Vec3::ZERO {
                for position in &mut object.positions {
                    *position += offset;
                }
            }
        }
        let spheres: Vec<Sphere> = self
            .spheres
            .iter()
            .map(|sphere| Sphere {
                center: sphere.center + offsets.get(sphere.object).copied().unwrap_or(Vec3::ZERO),
                ..*sphere
            })
            .collect();
        let mut meshes = Vec::with_capacity(self.meshes.len());
        let mut mesh_objects = Vec::with_capacity(self.mesh_objects.len());
        for (bvh, &index) in self.meshes.iter().zip(&self.mesh_objects) {
            let moved = offsets.get(index).is_some_and(|o| *o != Vec3::ZERO);
            let rebuilt = match objects.get(index) {
                Some(object) if moved => object_bvh(object, index),
                _ => Some(bvh.clone()),
            };
            if let Some(rebuilt) = rebuilt {
                meshes.push(rebuilt);
                mesh_objects.push(index);
            }
        }
        let materials = materials.to_vec();
        let sphere_lights = emissive_spheres(&spheres, &objects, &materials);
        let mut environment = environment.clone();
        environment.sun_direction = environment.sun_direction.normalized();
        Ok(Scene {
            objects,
            materials,
            environment,
            camera: self.camera,
            spheres,
            meshes,
            mesh_objects,
            sphere_lights,
            sun_cos_max: self.sun_cos_max,
        })
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

    /// The closest intersection with `t_min < t < t_max`, if any. `ray.dir` need not be unit
    /// length (it is normalised here); `t` is then measured in units of the normalised
    /// direction, i.e. world distance.
    pub fn intersect(&self, ray: &Ray, t_min: f32, t_max: f32) -> Option<Hit> {
        let dir = ray.dir.normalized();
        if dir == Vec3::ZERO || !ray.origin.is_finite() || t_min.is_nan() || t_max.is_nan() {
            return None;
        }
        let hit = self.trace(ray.origin, dir, t_min, t_max)?;
        Some(Hit {
            t: hit.t,
            point: hit.point,
            normal: hit.normal,
            object: hit.object,
        })
    }

    /// Closest hit for a unit-length `dir`.
    pub(crate) fn trace(
        &self,
        origin: Vec3,
        dir: Vec3,
        t_min: f32,
        t_max: f32,
    ) -> Option<SurfaceHit> {
        let mut closest = t_max;
        let mut found: Option<(usize, bool, Vec3, Vec3)> = None; // (object, is sphere index, n, ng)
        let mut sphere_index = None;
        for (i, s) in self.spheres.iter().enumerate() {
            if let Some(t) = s.intersect(origin, dir, t_min, closest) {
                closest = t;
                sphere_index = Some(i);
            }
        }
        let inv_dir = Vec3::new(1.0 / dir.x, 1.0 / dir.y, 1.0 / dir.z);
        for mesh in &self.meshes {
            if let Some(hit) = mesh.intersect(origin, dir, inv_dir, t_min, closest) {
                closest = hit.t;
                sphere_index = None;
                let tri = hit.triangle;
                found = Some((
                    tri.object as usize,
                    false,
                    tri.shading_normal(hit.u, hit.v),
                    tri.ng,
                ));
            }
        }
        let point = origin + dir * closest;
        if let Some(i) = sphere_index {
            let s = self.spheres.get(i)?;
            let n = ((point - s.center) * (1.0 / s.radius)).normalized();
            found = Some((s.object, true, n, n));
        }
        let (object, _, mut normal, mut geometric_normal) = found?;
        if geometric_normal.dot(dir) > 0.0 {
            geometric_normal = -geometric_normal;
        }
        if normal.dot(geometric_normal) < 0.0 {
            normal = -normal;
        }
        Some(SurfaceHit {
            t: closest,
            point,
            normal,
            geometric_normal,
            object,
            sphere: sphere_index,
        })
    }

    /// True when anything blocks the segment `t_min < t < t_max` along unit `dir`.
    pub(crate) fn occluded(&self, origin: Vec3, dir: Vec3, t_min: f32, t_max: f32) -> bool {
        self.spheres
            .iter()
            .any(|s| s.intersect(origin, dir, t_min, t_max).is_some())
            || {
                let inv_dir = Vec3::new(1.0 / dir.x, 1.0 / dir.y, 1.0 / dir.z);
                self.meshes
                    .iter()
                    .any(|m| m.occluded(origin, dir, inv_dir, t_min, t_max))
            }
    }

    /// Sky radiance in direction `dir` (unit), without the sun disk.
    #[inline]
    pub(crate) fn sky_radiance(&self, dir: Vec3) -> Vec3 {
        let env = &self.environment;
        if dir.y >= 0.0 {
            // sqrt keeps the horizon band narrow and bright, like a real sky.
            let t = dir.y.sqrt();
            env.horizon * (1.0 - t) + env.zenith * t
        } else {
            let t = (-dir.y * 6.0).min(1.0);
            env.horizon * (1.0 - t) + env.ground * t
        }
    }

    /// Cosine of the sun's angular radius.
    pub(crate) fn sun_cos_max(&self) -> f32 {
        self.sun_cos_max
    }

    pub(crate) fn spheres(&self) -> &[Sphere] {
        &self.spheres
    }

    pub(crate) fn sphere_lights(&self) -> &[usize] {
        &self.sphere_lights
    }

    /// Material of an object (a neutral diffuse grey if the index is out of range).
    pub(crate) fn material_of(&self, object: usize) -> &Material {
        static FALLBACK: Material = Material {
            name: String::new(),
            kind: MaterialKind::Diffuse,
            albedo: Vec3::splat(0.5),
            roughness: 1.0,
            index: METALLIC_INDEX,
            emission: Vec3::ZERO,
        };
        self.objects
            .get(object)
            .and_then(|o| self.materials.get(o.material))
            .unwrap_or(&FALLBACK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scene_meshes_are_consistent() {
        let scene = Scene::builtin();
        let objects = scene.objects();
        assert!(
            (5..=8).contains(&objects.len()),
            "{} objects",
            objects.len()
        );
        let mut triangles = 0usize;
        for object in objects {
            assert!(
                scene.materials().get(object.material).is_some(),
                "{}",
                object.name
            );
            let corners: u32 = object.verts_per_poly.iter().sum();
            assert_eq!(
                corners as usize,
                object.poly_vert_indices.len(),
                "{}",
                object.name
            );
            assert_eq!(
                object.poly_vert_indices.len(),
                object.poly_normal_indices.len()
            );
            assert!(object.verts_per_poly.iter().all(|&n| n >= 3));
            assert!(object
                .poly_vert_indices
                .iter()
                .all(|&i| (i as usize) < object.positions.len()));
            assert!(object
                .poly_normal_indices
                .iter()
                .all(|&i| (i as usize) < object.normals.len()));
            assert!(object
                .normals
                .iter()
                .all(|n| (n.length() - 1.0).abs() < 1e-3));
            assert_eq!(object.world_matrix, IDENTITY_3X4);
            triangles += object
                .verts_per_poly
                .iter()
                .map(|&n| n as usize - 2)
                .sum::<usize>();
        }
        assert!(
            triangles < 10_000,
            "{triangles} triangles: keep the scene interactive"
        );
        assert!(objects.iter().any(|o| o.kind == ShapeKind::Sphere));
        assert!(objects.iter().any(|o| o.kind == ShapeKind::Mesh));
        assert_eq!(
            scene.sphere_lights().len(),
            1,
            "the glowing sphere is a light"
        );
    }

    /// Every object is hit (and reported as itself) by a ray from above aimed at it.
    #[test]
    fn every_object_can_be_hit() {
        let scene = Scene::builtin();
        for object in scene.objects() {
            let target = match object.kind {
                ShapeKind::Sphere => {
                    let n = object.positions.len() as f32;
                    object.positions.iter().fold(Vec3::ZERO, |a, &p| a + p) / n
                }
                // Centre of the first polygon, approached from its normal side.
                ShapeKind::Mesh => {
                    let count = object.verts_per_poly.first().copied().unwrap_or(0) as usize;
                    let pts = object.poly_vert_indices.iter().take(count);
                    pts.fold(Vec3::ZERO, |a, &i| a + object.positions[i as usize]) / count as f32
                }
            };
            let origin = Vec3::new(target.x, 30.0, target.z + 20.0);
            let ray = Ray::new(origin, target - origin);
            let hit = scene.intersect(&ray, 1e-4, f32::INFINITY);
            assert!(
                hit.is_some_and(|h| scene.objects()[h.object].name == object.name),
                "{} was not hit: {hit:?}",
                object.name
            );
        }
    }

    #[test]
    fn hostile_rays_are_misses_not_panics() {
        let scene = Scene::builtin();
        let cases = [
            Ray::new(Vec3::ZERO, Vec3::ZERO),
            Ray::new(Vec3::new(f32::NAN, 1.0, 1.0), Vec3::new(0.0, -1.0, 0.0)),
            Ray::new(
                Vec3::new(0.0, 1.0, 1.0),
                Vec3::new(f32::INFINITY, -1.0, 0.0),
            ),
            Ray::new(Vec3::splat(f32::MAX), Vec3::new(-1.0, -1.0, -1.0)),
        ];
        for ray in cases {
            let hit = scene.intersect(&ray, 0.0, f32::INFINITY);
            assert!(hit.is_none_or(|h| h.t.is_finite()), "{ray:?} -> {hit:?}");
        }
        let down = Ray::new(Vec3::new(0.0, 1.0, 5.0), Vec3::new(0.0, -1.0, 0.0));
        assert!(scene.intersect(&down, f32::NAN, f32::INFINITY).is_none());
        // A non-unit direction is normalised: t is world distance to the floor.
        let long = Ray::new(Vec3::new(0.0, 1.0, 5.0), Vec3::new(0.0, -7.0, 0.0));
        let hit = scene.intersect(&long, 1e-4, f32::INFINITY);
        assert!(hit.is_some_and(|h| (h.t - 1.0).abs() < 1e-4), "{hit:?}");
    }
}
