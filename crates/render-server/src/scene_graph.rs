//! A read-only Octane-style node graph describing the built-in scene, with stable handles.
//!
//! Layout (handles assigned in this order from [`FIRST_HANDLE`], so they never change
//! between runs of the same scene):
//!
//! ```text
//! root graph "Scene"
//! ├── "Render target"  PT_RENDERTARGET
//! ├── "Camera"         PT_CAMERA
//! ├── <environment>    PT_ENVIRONMENT
//! ├── "Path tracing kernel" PT_KERNEL
//! ├── "Film settings"  PT_FILM_SETTINGS
//! ├── graph "Geometry" PT_GEOMETRY   owns one PT_GEOMETRY node per scene object
//! └── graph "Materials" PT_UNKNOWN   owns one PT_MATERIAL node per material
//! ```
//!
//! Every graph has one `ApiItemArray` object listing the items it owns.

use octaneweb_pathtracer::Scene;
use octaneweb_proto::octaneapi::object_ref::ObjectType;
use octaneweb_proto::octaneapi::{NodePinType, ObjectRef};
use tonic::Status;

/// The first handle handed out. Handles are opaque to clients; starting well above zero
/// keeps them from being mistaken for indices.
pub(crate) const FIRST_HANDLE: u64 = 1000;

/// What kind of server object a handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    RootGraph,
    Graph,
    Node,
    ItemArray,
}

impl Kind {
    fn object_type(self) -> ObjectType {
        match self {
            Kind::RootGraph => ObjectType::ApiRootNodeGraph,
            Kind::Graph => ObjectType::ApiNodeGraph,
            Kind::Node => ObjectType::ApiNode,
            Kind::ItemArray => ObjectType::ApiItemArray,
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Kind::RootGraph => "ApiRootNodeGraph",
            Kind::Graph => "ApiNodeGraph",
            Kind::Node => "ApiNode",
            Kind::ItemArray => "ApiItemArray",
        }
    }
}

/// One server object.
#[derive(Clone, Debug)]
pub(crate) struct Object {
    pub handle: u64,
    pub kind: Kind,
    /// Item name (empty for arrays).
    pub name: String,
    pub out_type: NodePinType,
    /// For graphs: the handle of the array of owned items. For arrays: unused.
    pub owned_items: Option<u64>,
    /// For arrays: the handles of the items.
    pub items: Vec<u64>,
    /// For geometry nodes: the index of the scene object.
    pub scene_object: Option<usize>,
}

impl Object {
    /// A reference to this object as clients see it.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            handle: self.handle,
            r#type: self.kind.object_type() as i32,
        }
    }
}

/// Which kinds an operation accepts, for error messages.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Expect {
    /// Any item: a node or a graph (`ApiItemService`).
    Item,
    /// A graph, root or not (`ApiNodeGraphService`).
    Graph,
    /// An item array (`ApiItemArrayService`).
    ItemArray,
}

impl Expect {
    fn accepts(self, kind: Kind) -> bool {
        match self {
            Expect::Item => matches!(kind, Kind::RootGraph | Kind::Graph | Kind::Node),
            Expect::Graph => matches!(kind, Kind::RootGraph | Kind::Graph),
            Expect::ItemArray => kind == Kind::ItemArray,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Expect::Item => "an ApiItem (a node or node graph)",
            Expect::Graph => "an ApiNodeGraph",
            Expect::ItemArray => "an ApiItemArray",
        }
    }
}

/// The scene's node graph.
#[derive(Debug)]
pub(crate) struct SceneGraph {
    /// Indexed by `handle - FIRST_HANDLE`.
    objects: Vec<Object>,
}

impl SceneGraph {
    /// Describes `scene`.
    pub fn new(scene: &Scene) -> SceneGraph {
        let mut graph = SceneGraph {
            objects: Vec::new(),
        };
        let root = graph.add(Kind::RootGraph, "Scene", NodePinType::PtUnknown, None);
        let mut root_items = vec![
            graph.add(
                Kind::Node,
                "Render target",
                NodePinType::PtRendertarget,
                None,
            ),
            graph.add(Kind::Node, "Camera", NodePinType::PtCamera, None),
            graph.add(
                Kind::Node,
                &scene.environment().name,
                NodePinType::PtEnvironment,
                None,
            ),
            graph.add(
                Kind::Node,
                "Path tracing kernel",
                NodePinType::PtKernel,
                None,
            ),
            graph.add(
                Kind::Node,
                "Film settings",
                NodePinType::PtFilmSettings,
                None,
            ),
        ];
        let geometry = graph.add(Kind::Graph, "Geometry", NodePinType::PtGeometry, None);
        let materials = graph.add(Kind::Graph, "Materials", NodePinType::PtUnknown, None);
        root_items.push(geometry);
        root_items.push(materials);

        let object_items: Vec<u64> = scene
            .objects()
            .iter()
            .enumerate()
            .map(|(index, object)| {
                graph.add(
                    Kind::Node,
                    &object.name,
                    NodePinType::PtGeometry,
                    Some(index),
                )
            })
            .collect();
        let material_items: Vec<u64> = scene
            .materials()
            .iter()
            .map(|material| graph.add(Kind::Node, &material.name, NodePinType::PtMaterial, None))
            .collect();

        graph.own(root, root_items);
        graph.own(geometry, object_items);
        graph.own(materials, material_items);
        graph
    }

    fn add(
        &mut self,
        kind: Kind,
        name: &str,
        out_type: NodePinType,
        scene_object: Option<usize>,
    ) -> u64 {
        let handle = FIRST_HANDLE + self.objects.len() as u64;
        self.objects.push(Object {
            handle,
            kind,
            name: name.to_owned(),
            out_type,
            owned_items: None,
            items: Vec::new(),
            scene_object,
        });
        handle
    }

    /// Gives graph `owner` an item array holding `items`.
    fn own(&mut self, owner: u64, items: Vec<u64>) {
        let array = self.add(Kind::ItemArray, "", NodePinType::PtUnknown, None);
        if let Some(object) = self.slot_mut(array) {
            object.items = items;
        }
        if let Some(object) = self.slot_mut(owner) {
            object.owned_items = Some(array);
        }
    }

    fn slot_mut(&mut self, handle: u64) -> Option<&mut Object> {
        let index = usize::try_from(handle.checked_sub(FIRST_HANDLE)?).ok()?;
        self.objects.get_mut(index)
    }

    /// The object with `handle`, if any.
    pub fn get(&self, handle: u64) -> Option<&Object> {
        let index = usize::try_from(handle.checked_sub(FIRST_HANDLE)?).ok()?;
        self.objects.get(index)
    }

    /// A reference to the root graph (always the first object, see [`SceneGraph::new`]).
    pub fn root_ref(&self) -> ObjectRef {
        ObjectRef {
            handle: FIRST_HANDLE,
            r#type: ObjectType::ApiRootNodeGraph as i32,
        }
    }

    /// Geometry nodes with the index of their scene object.
    pub fn geometry_nodes(&self) -> impl Iterator<Item = (&Object, usize)> {
        self.objects
            .iter()
            .filter_map(|object| object.scene_object.map(|index| (object, index)))
    }

    /// Resolves a request's `objectPtr` for `method`, checking that it names an object of
    /// the kind `expect`.
    pub fn resolve(
        &self,
        method: &str,
        object_ptr: Option<&ObjectRef>,
        expect: Expect,
    ) -> Result<&Object, Status> {
        let Some(object_ptr) = object_ptr else {
            return Err(Status::invalid_argument(format!(
                "{method}: objectPtr is required"
            )));
        };
        let handle = object_ptr.handle;
        let Some(object) = self.get(handle) else {
            return Err(Status::not_found(format!(
                "{method}: no object with handle {handle}"
            )));
        };
        if !expect.accepts(object.kind) {
            return Err(Status::invalid_argument(format!(
                "{method}: expected {}, but handle {handle} is an {}",
                expect.describe(),
                object.kind.type_name()
            )));
        }
        Ok(object)
    }
}
