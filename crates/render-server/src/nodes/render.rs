//! Between the node graph and the render: [`scene_state`] reads what the pins ask for,
//! [`write_state`] writes a render's values into the pins.

use octaneweb_pathtracer::{
    Camera, Environment, Material, MaterialKind, Scene, Vec3, METALLIC_INDEX,
};
use octaneweb_proto::octaneapi::{NodeType, PinId};

use super::{Body, Document, Value};
use crate::scene_state::{Kernel, Lens, SceneState, HIDDEN_OFFSET_Y};

/// The daylight environment's turbidity at which the built-in sky is what it is.
const BASE_TURBIDITY: f32 = 2.4;
/// A GI clamp at or above this is "no clamp".
const NO_CLAMP: f32 = 1.0e6;

fn v3(v: [f32; 3]) -> Vec3 {
    Vec3::new(v[0], v[1], v[2])
}

fn a3(v: Vec3) -> [f32; 3] {
    [v.x, v.y, v.z]
}

impl Document {
    fn float3(&self, node: u64, pin: PinId) -> Option<[f32; 3]> {
        let index = self.pin_index(node, pin as i32).ok()?;
        match self.pin_value(node, index).ok()?.1 {
            Value::Float3(v) => Some(v),
            Value::Float(x) => Some([x, x, x]),
            Value::Int3(_) => None,
        }
    }

    fn float1(&self, node: u64, pin: PinId) -> Option<f32> {
        let index = self.pin_index(node, pin as i32).ok()?;
        match self.pin_value(node, index).ok()?.1 {
            Value::Float3(v) => Some(v[0]),
            Value::Float(x) => Some(x),
            Value::Int3(_) => None,
        }
    }

    fn int3(&self, node: u64, pin: PinId) -> Option<[i32; 3]> {
        let index = self.pin_index(node, pin as i32).ok()?;
        match self.pin_value(node, index).ok()?.1 {
            Value::Int3(v) => Some(v),
            _ => None,
        }
    }

    fn write(&mut self, node: u64, pin: PinId, value: Value) {
        if let Ok(index) = self.pin_index(node, pin as i32) {
            if let Err(error) = self.set_pin_value(node, index, value) {
                tracing::debug!(%error, "a render value does not fit its pin");
            }
        }
    }

    fn node_type(&self, handle: u64) -> Option<NodeType> {
        self.node(handle).ok().map(|(_, n)| n.node_type)
    }

    /// The camera node the render target looks through, if it is a thin lens camera.
    fn camera_node(&self) -> Option<u64> {
        let camera = self.linked(self.render_target()?, PinId::PCamera)?;
        (self.node_type(camera)? == NodeType::NtCamThinlens).then_some(camera)
    }

    /// Writes a camera set over LiveLink into the camera node's pins.
    pub fn write_camera(&mut self, camera: &Camera) {
        if let Some(node) = self.camera_node() {
            self.write(node, PinId::PPosition, Value::Float3(a3(camera.position)));
            self.write(node, PinId::PTarget, Value::Float3(a3(camera.target)));
            self.write(node, PinId::PUp, Value::Float3(a3(camera.up)));
            self.write(
                node,
                PinId::PFov,
                Value::Float3([camera.fov_degrees, 0.0, 0.0]),
            );
        }
    }

    /// Every placement the render target's geometry reaches, with the mesh it places.
    fn placements(&self) -> Vec<(u64, Option<u64>)> {
        let Some(root) = self
            .render_target()
            .and_then(|rt| self.linked(rt, PinId::PMesh))
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack = vec![root];
        let mut seen = std::collections::HashSet::new();
        while let Some(handle) = stack.pop() {
            if !seen.insert(handle) {
                continue;
            }
            match self.items.get(&handle).map(|i| &i.body) {
                Some(Body::Graph(graph)) => stack.extend(graph.items.iter().rev()),
                Some(Body::Node(node)) if node.node_type == NodeType::NtGeoPlacement => {
                    let mesh = self
                        .linked(handle, PinId::PGeometry)
                        .filter(|m| self.node(*m).is_ok_and(|(_, n)| n.object.is_some()));
                    out.push((handle, mesh));
                }
                // A mesh linked straight to the render target is placed where it was
                // modelled; meshes inside a graph are placed by its placements.
                Some(Body::Node(node)) if node.object.is_some() && handle == root => {
                    out.push((0, Some(handle)))
                }
                _ => {}
            }
        }
        out
    }

    fn material_of(&self, handle: Option<u64>, name: &str) -> Material {
        let grey = Material {
            name: name.to_owned(),
            kind: MaterialKind::Diffuse,
            albedo: Vec3::new(0.5, 0.5, 0.5),
            roughness: 1.0,
            index: METALLIC_INDEX,
            emission: Vec3::ZERO,
        };
        let Some(handle) = handle else { return grey };
        let item_name = self
            .items
            .get(&handle)
            .map_or_else(String::new, |i| i.name.clone());
        match self.node_type(handle) {
            Some(NodeType::NtMatGlossy) => Material {
                name: item_name,
                kind: MaterialKind::Glossy,
                albedo: self.float3(handle, PinId::PSpecular).map_or(Vec3::ONE, v3),
                roughness: self.float1(handle, PinId::PRoughness).unwrap_or(0.1),
                index: self.float1(handle, PinId::PIndex).unwrap_or(METALLIC_INDEX),
                emission: Vec3::ZERO,
            },
            Some(NodeType::NtMatDiffuse) => {
                let albedo = self.float3(handle, PinId::PDiffuse).map_or(Vec3::ONE, v3);
                let emission = self.linked(handle, PinId::PEmission).and_then(|e| {
                    (self.node_type(e)? == NodeType::NtEmisTexture).then(|| {
                        let colour = self.float3(e, PinId::PEfficiency).map_or(Vec3::ONE, v3);
                        colour * self.float1(e, PinId::PPower).unwrap_or(1.0)
                    })
                });
                match emission.filter(|e| e.max_component() > 0.0) {
                    Some(emission) => Material {
                        name: item_name,
                        kind: MaterialKind::Emissive,
                        albedo,
                        roughness: 1.0,
                        index: METALLIC_INDEX,
                        emission,
                    },
                    None => Material {
                        name: item_name,
                        kind: MaterialKind::Diffuse,
                        albedo,
                        roughness: 1.0,
                        index: METALLIC_INDEX,
                        emission: Vec3::ZERO,
                    },
                }
            }
            _ => grey,
        }
    }
}

/// What the graph asks the renderer to show.
pub(super) fn scene_state(doc: &Document, scene: &Scene, base: &SceneState) -> SceneState {
    let mut state = base.clone();
    let Some(render_target) = doc.render_target() else {
        // Without a render target nothing changes what is rendered.
        return state;
    };
    if let Some(camera) = doc.camera_node() {
        let read = |pin, fallback: Vec3| doc.float3(camera, pin).map_or(fallback, v3);
        state.camera = Camera {
            position: read(PinId::PPosition, base.camera.position),
            target: read(PinId::PTarget, base.camera.target),
            up: read(PinId::PUp, base.camera.up),
            fov_degrees: doc
                .float1(camera, PinId::PFov)
                .unwrap_or(base.camera.fov_degrees),
        };
        state.lens = Lens {
            aperture: doc.float1(camera, PinId::PAperture).unwrap_or(0.0),
            focal_distance: doc
                .float1(camera, PinId::PFocalDepth)
                .unwrap_or(base.lens.focal_distance),
        };
    }
    state.environment = environment(doc, render_target, scene.environment());
    if let Some(kernel) = doc
        .linked(render_target, PinId::PKernel)
        .filter(|k| doc.node_type(*k) == Some(NodeType::NtKernPathtracing))
    {
        let int = |pin, fallback: u32| {
            doc.int3(kernel, pin)
                .and_then(|v| u32::try_from(v[0]).ok())
                .unwrap_or(fallback)
        };
        let clamp = doc.float1(kernel, PinId::PGiClamp).unwrap_or(NO_CLAMP);
        state.kernel = Kernel {
            max_samples: int(PinId::PMaxSamples, base.kernel.max_samples),
            max_depth: int(PinId::PMaxDepth, base.kernel.max_depth),
            clamp: if clamp >= NO_CLAMP { 0.0 } else { clamp },
        };
    }
    if let Some(film) = doc
        .linked(render_target, PinId::PFilmSettings)
        .filter(|f| doc.node_type(*f) == Some(NodeType::NtFilmSettings))
    {
        if let Some(v) = doc.int3(film, PinId::PResolution) {
            if let (Ok(w), Ok(h)) = (u32::try_from(v[0]), u32::try_from(v[1])) {
                state.resolution = [w, h];
            }
        }
    }
    let objects = scene.objects();
    let mut offsets = vec![Vec3::new(0.0, HIDDEN_OFFSET_Y, 0.0); objects.len()];
    let mut materials: Vec<Material> = scene.materials().to_vec();
    for (placement, mesh) in doc.placements() {
        let Some(mesh) = mesh else { continue };
        let Some(object) = doc.node(mesh).ok().and_then(|(_, n)| n.object) else {
            continue;
        };
        let translation = if placement == 0 {
            Vec3::ZERO
        } else {
            doc.linked(placement, PinId::PTransform)
                .filter(|t| doc.node_type(*t) == Some(NodeType::NtTransform3d))
                .and_then(|t| doc.float3(t, PinId::PTranslation))
                .map_or(Vec3::ZERO, v3)
        };
        if let Some(offset) = offsets.get_mut(object) {
            *offset = translation;
        }
        if let Some(index) = objects.get(object).map(|o| o.material) {
            let name = materials
                .get(index)
                .map_or_else(String::new, |m| m.name.clone());
            if let Some(slot) = materials.get_mut(index) {
                *slot = doc.material_of(doc.linked(mesh, PinId::PMaterial), &name);
            }
        }
    }
    state.object_offsets = offsets;
    state.materials = materials;
    state
}

fn environment(doc: &Document, render_target: u64, base: &Environment) -> Environment {
    let dark = Environment {
        name: "No environment".into(),
        zenith: Vec3::ZERO,
        horizon: Vec3::ZERO,
        ground: Vec3::ZERO,
        sun_direction: base.sun_direction,
        sun_radiance: Vec3::ZERO,
    };
    let Some(node) = doc.linked(render_target, PinId::PEnvironment) else {
        return dark;
    };
    match doc.node_type(node) {
        Some(NodeType::NtEnvDaylight) => {
            let power = doc.float1(node, PinId::PPower).unwrap_or(1.0);
            let turbidity = doc
                .float1(node, PinId::PTurbidity)
                .unwrap_or(BASE_TURBIDITY);
            // A hazier sky: the zenith pales towards the horizon's colour, the sun dims.
            let haze = ((turbidity - BASE_TURBIDITY) / (15.0 - BASE_TURBIDITY)).clamp(0.0, 1.0);
            let direction = doc
                .float3(node, PinId::PSunDir)
                .map(v3)
                .filter(|d| d.length() > 1e-6)
                .map_or(base.sun_direction, Vec3::normalized);
            Environment {
                name: base.name.clone(),
                zenith: (base.zenith + (base.horizon - base.zenith) * (0.7 * haze)) * power,
                horizon: base.horizon * power,
                ground: base.ground * power,
                sun_direction: direction,
                sun_radiance: base.sun_radiance * ((1.0 - 0.6 * haze) * power),
            }
        }
        Some(NodeType::NtEnvTexture) => {
            let colour = doc.float3(node, PinId::PTexture).map_or(Vec3::ONE, v3)
                * doc.float1(node, PinId::PPower).unwrap_or(1.0);
            Environment {
                name: "Texture environment".into(),
                zenith: colour,
                horizon: colour,
                ground: colour,
                sun_direction: base.sun_direction,
                sun_radiance: Vec3::ZERO,
            }
        }
        _ => dark,
    }
}

/// Writes `state` into the pins of the built-in graph.
pub(super) fn write_state(doc: &mut Document, state: &SceneState) {
    doc.write_camera(&state.camera);
    if let Some(camera) = doc.camera_node() {
        doc.write(
            camera,
            PinId::PAperture,
            Value::Float3([state.lens.aperture, 0.0, 0.0]),
        );
        doc.write(
            camera,
            PinId::PFocalDepth,
            Value::Float3([state.lens.focal_distance, 0.0, 0.0]),
        );
    }
    let Some(render_target) = doc.render_target() else {
        return;
    };
    if let Some(env) = doc.linked(render_target, PinId::PEnvironment) {
        doc.write(
            env,
            PinId::PSunDir,
            Value::Float3(a3(state.environment.sun_direction)),
        );
        doc.write(env, PinId::PPower, Value::Float3([1.0, 0.0, 0.0]));
        doc.write(
            env,
            PinId::PTurbidity,
            Value::Float3([BASE_TURBIDITY, 0.0, 0.0]),
        );
    }
    if let Some(kernel) = doc.linked(render_target, PinId::PKernel) {
        let int = |n: u32| Value::Int3([i32::try_from(n).unwrap_or(i32::MAX), 0, 0]);
        doc.write(kernel, PinId::PMaxSamples, int(state.kernel.max_samples));
        doc.write(kernel, PinId::PMaxDepth, int(state.kernel.max_depth));
        let clamp = if state.kernel.clamp > 0.0 {
            state.kernel.clamp
        } else {
            NO_CLAMP
        };
        doc.write(kernel, PinId::PGiClamp, Value::Float3([clamp, 0.0, 0.0]));
    }
    if let Some(film) = doc.linked(render_target, PinId::PFilmSettings) {
        let [w, h] = state.resolution;
        let side = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        doc.write(film, PinId::PResolution, Value::Int3([side(w), side(h), 0]));
    }
    for (placement, mesh) in doc.placements() {
        let Some(mesh) = mesh else { continue };
        let Some(object) = doc.node(mesh).ok().and_then(|(_, n)| n.object) else {
            continue;
        };
        if let Some(transform) = doc.linked(placement, PinId::PTransform) {
            let offset = state
                .object_offsets
                .get(object)
                .copied()
                .unwrap_or(Vec3::ZERO);
            doc.write(transform, PinId::PTranslation, Value::Float3(a3(offset)));
        }
        let Some(material_node) = doc.linked(mesh, PinId::PMaterial) else {
            continue;
        };
        let Some(material) = object_material(state, object) else {
            continue;
        };
        match material.kind {
            MaterialKind::Glossy => {
                doc.write(
                    material_node,
                    PinId::PSpecular,
                    Value::Float3(a3(material.albedo)),
                );
                doc.write(
                    material_node,
                    PinId::PRoughness,
                    Value::Float(material.roughness),
                );
                doc.write(
                    material_node,
                    PinId::PIndex,
                    Value::Float3([material.index, 0.0, 0.0]),
                );
            }
            MaterialKind::Diffuse | MaterialKind::Emissive => {
                doc.write(
                    material_node,
                    PinId::PDiffuse,
                    Value::Float3(a3(material.albedo)),
                );
                if let Some(emission) = doc.linked(material_node, PinId::PEmission) {
                    let power = material.emission.max_component();
                    let colour = if power > 0.0 {
                        material.emission * (1.0 / power)
                    } else {
                        Vec3::ZERO
                    };
                    doc.write(emission, PinId::PEfficiency, Value::Float3(a3(colour)));
                    doc.write(emission, PinId::PPower, Value::Float3([power, 0.0, 0.0]));
                }
            }
        }
    }
}

fn object_material(state: &SceneState, object: usize) -> Option<&Material> {
    // The built-in scene gives object i material i.
    state.materials.get(object)
}
