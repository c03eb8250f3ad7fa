//! The node types the reference server knows: their Octane type ids, output types and pins
//! (Octane's pin ids, with a name, a label, a type, a default and bounds). Only pins the
//! renderer honours are listed, so every edit shows in the render.

use octaneweb_proto::octaneapi::{AttributeType, NodePinType, NodeType, PinId};

/// What a pin holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PinKind {
    /// Floats (1 to 3 components) in a `NT_FLOAT` value node.
    Float {
        dims: usize,
        min: f32,
        max: f32,
        default: [f32; 3],
    },
    /// Integers (1 or 2 components) in a `NT_INT` value node.
    Int {
        dims: usize,
        min: i32,
        max: i32,
        default: [i32; 2],
    },
    /// An RGB colour in a `NT_TEX_RGB` node (a texture input).
    Rgb { default: [f32; 3] },
    /// A greyscale value in a `NT_TEX_FLOAT` node (a texture input).
    Grey { min: f32, max: f32, default: f32 },
    /// An image size in a `NT_IMAGE_RESOLUTION` node.
    Resolution { default: [i32; 2] },
    /// A link to another node with this output type.
    Link(NodePinType),
}

impl PinKind {
    /// The pin's type as Octane names it.
    pub fn pin_type(self) -> NodePinType {
        match self {
            PinKind::Float { .. } => NodePinType::PtFloat,
            PinKind::Int { .. } | PinKind::Resolution { .. } => NodePinType::PtInt,
            PinKind::Rgb { .. } | PinKind::Grey { .. } => NodePinType::PtTexture,
            PinKind::Link(out) => out,
        }
    }

    /// The value node a pin of this kind owns (none for links).
    pub fn value_node(self) -> Option<NodeType> {
        match self {
            PinKind::Float { .. } => Some(NodeType::NtFloat),
            PinKind::Int { .. } => Some(NodeType::NtInt),
            PinKind::Rgb { .. } => Some(NodeType::NtTexRgb),
            PinKind::Grey { .. } => Some(NodeType::NtTexFloat),
            PinKind::Resolution { .. } => Some(NodeType::NtImageResolution),
            PinKind::Link(_) => None,
        }
    }
}

/// One pin of a node type.
#[derive(Debug)]
pub(crate) struct PinSpec {
    pub id: PinId,
    /// Octane's static name (`pos`, `fov`, ...).
    pub name: &'static str,
    /// What a user reads.
    pub label: &'static str,
    pub description: &'static str,
    pub kind: PinKind,
}

/// A node type.
#[derive(Debug)]
pub(crate) struct NodeSpec {
    pub node_type: NodeType,
    /// The name a new node gets.
    pub default_name: &'static str,
    pub description: &'static str,
    pub out_type: NodePinType,
    pub pins: &'static [PinSpec],
}

const fn pin(
    id: PinId,
    name: &'static str,
    label: &'static str,
    description: &'static str,
    kind: PinKind,
) -> PinSpec {
    PinSpec {
        id,
        name,
        label,
        description,
        kind,
    }
}

const fn float3(default: [f32; 3], min: f32, max: f32) -> PinKind {
    PinKind::Float {
        dims: 3,
        min,
        max,
        default,
    }
}

const fn float1(default: f32, min: f32, max: f32) -> PinKind {
    PinKind::Float {
        dims: 1,
        min,
        max,
        default: [default, 0.0, 0.0],
    }
}

/// Largest coordinate a position pin accepts.
const WORLD: f32 = 1.0e5;

static RENDER_TARGET_PINS: [PinSpec; 5] = [
    pin(
        PinId::PCamera,
        "camera",
        "Camera",
        "The camera the render looks through.",
        PinKind::Link(NodePinType::PtCamera),
    ),
    pin(
        PinId::PEnvironment,
        "environment",
        "Environment",
        "The sky that lights the scene.",
        PinKind::Link(NodePinType::PtEnvironment),
    ),
    pin(
        PinId::PMesh,
        "mesh",
        "Mesh",
        "The geometry rendered.",
        PinKind::Link(NodePinType::PtGeometry),
    ),
    pin(
        PinId::PFilmSettings,
        "filmSettings",
        "Film settings",
        "Resolution of the render.",
        PinKind::Link(NodePinType::PtFilmSettings),
    ),
    pin(
        PinId::PKernel,
        "kernel",
        "Kernel",
        "How the image is sampled.",
        PinKind::Link(NodePinType::PtKernel),
    ),
];

static THIN_LENS_PINS: [PinSpec; 6] = [
    pin(
        PinId::PPosition,
        "pos",
        "Position",
        "Where the camera is.",
        float3([0.0, 0.0, 1.0], -WORLD, WORLD),
    ),
    pin(
        PinId::PTarget,
        "target",
        "Target",
        "The point the camera looks at.",
        float3([0.0, 0.0, 0.0], -WORLD, WORLD),
    ),
    pin(
        PinId::PUp,
        "up",
        "Up-vector",
        "Which way is up in the image.",
        float3([0.0, 1.0, 0.0], -WORLD, WORLD),
    ),
    pin(
        PinId::PFov,
        "fov",
        "Field of view",
        "Vertical field of view, degrees.",
        float1(38.0, 1.0, 179.0),
    ),
    pin(
        PinId::PAperture,
        "aperture",
        "Aperture",
        "Lens radius; 0 keeps everything sharp.",
        float1(0.0, 0.0, 10.0),
    ),
    pin(
        PinId::PFocalDepth,
        "focalDepth",
        "Focal depth",
        "Distance to the plane in focus.",
        float1(10.0, 0.001, WORLD),
    ),
];

static DAYLIGHT_PINS: [PinSpec; 3] = [
    pin(
        PinId::PSunDir,
        "sundir",
        "Sun direction",
        "Direction towards the sun.",
        float3([0.0, 1.0, 0.0], -WORLD, WORLD),
    ),
    pin(
        PinId::PPower,
        "power",
        "Power",
        "Brightness of sky and sun.",
        float1(1.0, 0.0, 100.0),
    ),
    pin(
        PinId::PTurbidity,
        "turbidity",
        "Turbidity",
        "Haze: 2 is a clear sky, 15 a hazy one.",
        float1(2.4, 2.0, 15.0),
    ),
];

static TEXTURE_ENVIRONMENT_PINS: [PinSpec; 2] = [
    pin(
        PinId::PTexture,
        "texture",
        "Texture",
        "Colour of the whole sky.",
        PinKind::Rgb {
            default: [1.0, 1.0, 1.0],
        },
    ),
    pin(
        PinId::PPower,
        "power",
        "Power",
        "Brightness of the sky.",
        float1(1.0, 0.0, 100.0),
    ),
];

static PATH_TRACING_PINS: [PinSpec; 3] = [
    pin(
        PinId::PMaxSamples,
        "maxsamples",
        "Max. samples",
        "Samples per pixel after which rendering stops.",
        PinKind::Int {
            dims: 1,
            min: 1,
            max: 65_536,
            default: [5000, 0],
        },
    ),
    pin(
        PinId::PMaxDepth,
        "maxDepth",
        "Maximum depth",
        "Longest light path, in bounces.",
        PinKind::Int {
            dims: 1,
            min: 1,
            max: 64,
            default: [8, 0],
        },
    ),
    pin(
        PinId::PGiClamp,
        "giClamp",
        "GI clamp",
        "Largest light one path may add to a pixel; tames fireflies.",
        float1(1_000_000.0, 0.001, 1_000_000.0),
    ),
];

static FILM_PINS: [PinSpec; 1] = [pin(
    PinId::PResolution,
    "resolution",
    "Resolution",
    "Width and height of the render, pixels.",
    PinKind::Resolution {
        default: [1024, 512],
    },
)];

static PLACEMENT_PINS: [PinSpec; 2] = [
    pin(
        PinId::PTransform,
        "transform",
        "Transformation",
        "Where the geometry is placed.",
        PinKind::Link(NodePinType::PtTransform),
    ),
    pin(
        PinId::PGeometry,
        "geometry",
        "Geometry",
        "The geometry placed.",
        PinKind::Link(NodePinType::PtGeometry),
    ),
];

static TRANSFORM_PINS: [PinSpec; 1] = [pin(
    PinId::PTranslation,
    "translation",
    "Translation",
    "Offset from where the geometry was modelled.",
    float3([0.0, 0.0, 0.0], -WORLD, WORLD),
)];

static MESH_PINS: [PinSpec; 1] = [pin(
    PinId::PMaterial,
    "material",
    "Material",
    "The material of the mesh.",
    PinKind::Link(NodePinType::PtMaterial),
)];

static DIFFUSE_PINS: [PinSpec; 2] = [
    pin(
        PinId::PDiffuse,
        "diffuse",
        "Diffuse",
        "Colour of the surface.",
        PinKind::Rgb {
            default: [0.7, 0.7, 0.7],
        },
    ),
    pin(
        PinId::PEmission,
        "emission",
        "Emission",
        "Light the surface gives off.",
        PinKind::Link(NodePinType::PtEmission),
    ),
];

static GLOSSY_PINS: [PinSpec; 3] = [
    pin(
        PinId::PSpecular,
        "specular",
        "Specular",
        "Colour of reflections.",
        PinKind::Rgb {
            default: [1.0, 1.0, 1.0],
        },
    ),
    pin(
        PinId::PRoughness,
        "roughness",
        "Roughness",
        "0 is a mirror, 1 a rough surface.",
        PinKind::Grey {
            min: 0.0,
            max: 1.0,
            default: 0.1,
        },
    ),
    pin(
        PinId::PIndex,
        "index",
        "Index",
        "Index of refraction of the coat: 1.5 reflects like plastic, high values like metal.",
        float1(1.5, 1.0, 20.0),
    ),
];

static EMISSION_PINS: [PinSpec; 2] = [
    pin(
        PinId::PEfficiency,
        "efficiency",
        "Texture",
        "Colour of the light.",
        PinKind::Rgb {
            default: [1.0, 1.0, 1.0],
        },
    ),
    pin(
        PinId::PPower,
        "power",
        "Power",
        "Strength of the light.",
        float1(1.0, 0.0, 1000.0),
    ),
];

static NODE_SPECS: [NodeSpec; 11] = [
    NodeSpec {
        node_type: NodeType::NtRendertarget,
        default_name: "Render target",
        description: "What is rendered: camera, environment, geometry, film and kernel.",
        out_type: NodePinType::PtRendertarget,
        pins: &RENDER_TARGET_PINS,
    },
    NodeSpec {
        node_type: NodeType::NtCamThinlens,
        default_name: "Thin lens camera",
        description: "A camera with a thin lens.",
        out_type: NodePinType::PtCamera,
        pins: &THIN_LENS_PINS,
    },
    NodeSpec {
        node_type: NodeType::NtEnvDaylight,
        default_name: "Daylight environment",
        description: "A sky with a sun.",
        out_type: NodePinType::PtEnvironment,
        pins: &DAYLIGHT_PINS,
    },
    NodeSpec {
        node_type: NodeType::NtEnvTexture,
        default_name: "Texture environment",
        description: "A sky of one colour.",
        out_type: NodePinType::PtEnvironment,
        pins: &TEXTURE_ENVIRONMENT_PINS,
    },
    NodeSpec {
        node_type: NodeType::NtKernPathtracing,
        default_name: "Path tracing kernel",
        description: "Progressive path tracing.",
        out_type: NodePinType::PtKernel,
        pins: &PATH_TRACING_PINS,
    },
    NodeSpec {
        node_type: NodeType::NtFilmSettings,
        default_name: "Film settings",
        description: "The size of the image.",
        out_type: NodePinType::PtFilmSettings,
        pins: &FILM_PINS,
    },
    NodeSpec {
        node_type: NodeType::NtGeoPlacement,
        default_name: "Placement",
        description: "Places geometry in the scene.",
        out_type: NodePinType::PtGeometry,
        pins: &PLACEMENT_PINS,
    },
    NodeSpec {
        node_type: NodeType::NtTransform3d,
        default_name: "3D transformation",
        description: "A translation.",
        out_type: NodePinType::PtTransform,
        pins: &TRANSFORM_PINS,
    },
    NodeSpec {
        node_type: NodeType::NtMatDiffuse,
        default_name: "Diffuse material",
        description: "A matte surface, optionally emitting light.",
        out_type: NodePinType::PtMaterial,
        pins: &DIFFUSE_PINS,
    },
    NodeSpec {
        node_type: NodeType::NtMatGlossy,
        default_name: "Glossy material",
        description: "A shiny surface.",
        out_type: NodePinType::PtMaterial,
        pins: &GLOSSY_PINS,
    },
    NodeSpec {
        node_type: NodeType::NtEmisTexture,
        default_name: "Texture emission",
        description: "Light of one colour.",
        out_type: NodePinType::PtEmission,
        pins: &EMISSION_PINS,
    },
];

/// Mesh nodes exist only for the scene's built-in objects; they cannot be created.
pub(crate) static MESH_SPEC: NodeSpec = NodeSpec {
    node_type: NodeType::NtGeoMesh,
    default_name: "Mesh",
    description: "A polygon mesh of the built-in scene.",
    out_type: NodePinType::PtGeometry,
    pins: &MESH_PINS,
};

/// The spec of a node type that can be created with `ApiNode.create`.
pub(crate) fn creatable(node_type: NodeType) -> Option<&'static NodeSpec> {
    NODE_SPECS.iter().find(|spec| spec.node_type == node_type)
}

/// The spec of any node type with pins (creatable ones and meshes).
pub(crate) fn spec(node_type: NodeType) -> Option<&'static NodeSpec> {
    creatable(node_type).or_else(|| (node_type == NodeType::NtGeoMesh).then_some(&MESH_SPEC))
}

/// A value node type: its output type and the type of its `A_VALUE` attribute.
pub(crate) fn value_node(node_type: NodeType) -> Option<(NodePinType, AttributeType)> {
    Some(match node_type {
        // Octane's float and int value nodes keep three components whatever the pin uses.
        NodeType::NtFloat => (NodePinType::PtFloat, AttributeType::AtFloat3),
        NodeType::NtInt => (NodePinType::PtInt, AttributeType::AtInt3),
        NodeType::NtTexRgb => (NodePinType::PtTexture, AttributeType::AtFloat3),
        NodeType::NtTexFloat => (NodePinType::PtTexture, AttributeType::AtFloat),
        NodeType::NtImageResolution => (NodePinType::PtInt, AttributeType::AtInt3),
        _ => return None,
    })
}

/// The default name of any node type the server makes.
pub(crate) fn default_name(node_type: NodeType) -> &'static str {
    match node_type {
        NodeType::NtFloat => "Float value",
        NodeType::NtInt => "Int value",
        NodeType::NtTexRgb => "RGB color",
        NodeType::NtTexFloat => "Greyscale color",
        NodeType::NtImageResolution => "Image resolution",
        other => spec(other).map_or("Node", |spec| spec.default_name),
    }
}

/// The description of any node type the server makes.
pub(crate) fn description(node_type: NodeType) -> &'static str {
    match node_type {
        NodeType::NtFloat => "A number or vector.",
        NodeType::NtInt => "A whole number.",
        NodeType::NtTexRgb => "A colour.",
        NodeType::NtTexFloat => "A greyscale value.",
        NodeType::NtImageResolution => "An image size.",
        other => spec(other).map_or("", |spec| spec.description),
    }
}
