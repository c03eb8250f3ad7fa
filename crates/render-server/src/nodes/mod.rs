//! Octane's node system over the built-in scene: graphs own items, nodes have typed pins,
//! a pin links another node, and a value pin's value lives in a small value node the pin
//! owns (as in Octane, whose clients read a pin's value as the `A_VALUE` attribute of the
//! node connected to it). After every edit the document computes the render's
//! [`SceneState`] ([`Document::scene_state`]).
//!
//! The built-in document ([`Document::builtin`]):
//!
//! ```text
//! root graph "Scene"
//! ├── Render target ── camera ── Thin lens camera (pos, target, up, fov, aperture, focalDepth)
//! │                  ├ environment ── Daylight environment (sundir, power, turbidity)
//! │                  ├ mesh ── graph "Geometry"
//! │                  ├ filmSettings ── Film settings (resolution)
//! │                  └ kernel ── Path tracing kernel (maxsamples, maxDepth, giClamp)
//! ├── the five nodes above
//! ├── graph "Geometry": per object a Placement (transform ── 3D transformation
//! │   (translation); geometry ── the object's Mesh (material ── its material))
//! └── graph "Materials": one Diffuse or Glossy material per object (the glowing one's
//!     emission ── Texture emission (efficiency, power))
//! ```
//!
//! Handles name items; arrays and pin infos get handles derived from their item, so they
//! need no storage and never go stale while their item lives.

pub(crate) mod catalog;
mod project;
mod render;

use std::collections::BTreeMap;

use octaneweb_pathtracer::{MaterialKind, Scene};
use octaneweb_proto::octaneapi::object_ref::ObjectType;
use octaneweb_proto::octaneapi::{AttributeType, NodeGraphType, NodePinType, NodeType, ObjectRef};

use crate::scene_state::SceneState;
use catalog::{PinKind, PinSpec};

/// The first item handle; starting well above zero keeps handles from passing for indices.
pub(crate) const FIRST_HANDLE: u64 = 1000;
/// Item handles stay below this; array and pin-info handles are tagged above it.
const ITEM_HANDLE_LIMIT: u64 = 1 << 32;
const ITEM_ARRAY_TAG: u64 = 1 << 40;
const NODE_ARRAY_TAG: u64 = 2 << 40;
const PIN_INFO_TAG: u64 = 3 << 40;
/// Most items a document holds: a client creating nodes in a loop hits this, not the
/// server's memory.
pub(crate) const MAX_ITEMS: usize = 20_000;
/// Longest item name accepted.
pub(crate) const MAX_NAME_BYTES: usize = 1024;
/// How deep graphs nest at most (the root is depth 0).
pub(crate) const MAX_NESTING: usize = 32;

/// The value of a value node's `A_VALUE` attribute.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Value {
    Float3([f32; 3]),
    Int3([i32; 3]),
    Float(f32),
}

/// A graph: the items it owns, in order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Graph {
    pub graph_type: NodeGraphType,
    pub out_type: NodePinType,
    pub items: Vec<u64>,
}

/// A node: its type, what each pin links, and for a value node its value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub node_type: NodeType,
    /// One entry per pin of the type's spec: the linked node's handle.
    pub links: Vec<Option<u64>>,
    /// For value nodes: `A_VALUE`.
    pub value: Option<Value>,
    /// For a value node a pin owns: that node and pin index.
    pub pin_owner: Option<(u64, usize)>,
    /// For a mesh: the index of its object in the scene.
    pub object: Option<usize>,
}

/// Graph or node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Body {
    Graph(Graph),
    Node(Node),
}

/// One item of the document.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Item {
    pub name: String,
    /// The graph that owns the item (`None` for the root and for pin-owned value nodes).
    pub owner: Option<u64>,
    pub position: [f32; 2],
    pub body: Body,
}

/// What a handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Item(u64),
    /// The items a graph owns (`ApiItemArray`).
    ItemArray(u64),
    /// The nodes linking a node (`ApiNodeArray`, from `destinationNodes`).
    NodeArray(u64),
    /// A pin's description (`ApiNodePinInfo`): node and pin index.
    PinInfo(u64, usize),
}

/// Why an operation on the document failed; each names the handle, pin or value at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum NodeError {
    #[error("no object with handle {0}")]
    NoSuchHandle(u64),
    #[error("handle {handle} is {actual}, not {expected}")]
    WrongKind {
        handle: u64,
        expected: &'static str,
        actual: &'static str,
    },
    #[error("node {handle} ({name}) has {count} pins; there is no pin index {index}")]
    NoSuchPinIndex {
        handle: u64,
        name: String,
        count: usize,
        index: u64,
    },
    #[error("node {handle} ({name}) has no pin {pin}")]
    NoSuchPin {
        handle: u64,
        name: String,
        pin: String,
    },
    #[error("pin {pin} of node {handle} ({name}) {why}")]
    BadPinValue {
        handle: u64,
        name: String,
        pin: &'static str,
        why: String,
        /// The value has the right type but lies outside the pin's bounds.
        out_of_bounds: bool,
    },
    #[error("item {handle} ({name}) {why}")]
    BadValue {
        handle: u64,
        name: String,
        why: String,
        /// The value has the right type but lies outside the bounds.
        out_of_bounds: bool,
    },
    #[error("pin {pin} of node {handle} takes a {expected}; node {from} ({source_name}) gives a {actual}")]
    TypeMismatch {
        handle: u64,
        pin: &'static str,
        expected: &'static str,
        from: u64,
        source_name: String,
        actual: &'static str,
    },
    #[error("linking node {from} to pin {pin} of node {handle} would make a cycle: {handle} already feeds {from}")]
    Cycle {
        handle: u64,
        pin: &'static str,
        from: u64,
    },
    #[error("{what} {handle} has {len} entries; there is no index {index}")]
    PastTheEnd {
        what: &'static str,
        handle: u64,
        len: usize,
        index: u32,
    },
    #[error("{0}")]
    NotAllowed(String),
    #[error("the scene holds {MAX_ITEMS} items, the most it can; destroy some first")]
    Full,
}

impl NodeError {
    /// The status a client gets for this failure in `method`.
    pub fn to_status(&self, method: &str) -> tonic::Status {
        tonic::Status::new(self.code(), format!("{method}: {self}"))
    }

    /// The gRPC code for this failure.
    pub fn code(&self) -> tonic::Code {
        match self {
            NodeError::NoSuchHandle(_) => tonic::Code::NotFound,
            NodeError::Full => tonic::Code::ResourceExhausted,
            NodeError::PastTheEnd { .. } => tonic::Code::OutOfRange,
            NodeError::NotAllowed(_) => tonic::Code::FailedPrecondition,
            NodeError::Cycle { .. } => tonic::Code::FailedPrecondition,
            NodeError::BadPinValue { out_of_bounds, .. }
            | NodeError::BadValue { out_of_bounds, .. } => {
                if *out_of_bounds {
                    tonic::Code::OutOfRange
                } else {
                    tonic::Code::InvalidArgument
                }
            }
            _ => tonic::Code::InvalidArgument,
        }
    }
}

/// The scene's node graph.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Document {
    items: BTreeMap<u64, Item>,
    root: u64,
    next: u64,
    /// The project file last loaded or saved ("" for none).
    pub project: String,
}

impl Document {
    /// The built-in scene as a node graph, its values taken from `state`.
    pub fn builtin(scene: &Scene, state: &SceneState) -> Document {
        let mut doc = Document {
            items: BTreeMap::new(),
            root: FIRST_HANDLE,
            next: FIRST_HANDLE,
            project: String::new(),
        };
        let root = doc.add_graph(
            "Scene",
            None,
            NodeGraphType::GtStandard,
            NodePinType::PtUnknown,
        );
        let render_target = doc.add_node(NodeType::NtRendertarget, "Render target", Some(root));
        let camera = doc.add_node(NodeType::NtCamThinlens, "Camera", Some(root));
        let environment = doc.add_node(NodeType::NtEnvDaylight, "Daylight environment", Some(root));
        let film = doc.add_node(NodeType::NtFilmSettings, "Film settings", Some(root));
        let kernel = doc.add_node(
            NodeType::NtKernPathtracing,
            "Path tracing kernel",
            Some(root),
        );
        let geometry = doc.add_graph(
            "Geometry",
            Some(root),
            NodeGraphType::GtStandard,
            NodePinType::PtGeometry,
        );
        let materials = doc.add_graph(
            "Materials",
            Some(root),
            NodeGraphType::GtStandard,
            NodePinType::PtUnknown,
        );
        for (pin, source) in [
            (0, camera),
            (1, environment),
            (2, geometry),
            (3, film),
            (4, kernel),
        ] {
            doc.set_link(render_target, pin, Some(source));
        }
        let material_nodes: Vec<u64> = scene
            .materials()
            .iter()
            .map(|material| {
                let node_type = match material.kind {
                    MaterialKind::Glossy => NodeType::NtMatGlossy,
                    MaterialKind::Diffuse | MaterialKind::Emissive => NodeType::NtMatDiffuse,
                };
                let node = doc.add_node(node_type, &material.name, Some(materials));
                if material.kind == MaterialKind::Emissive {
                    let emission = doc.add_node(
                        NodeType::NtEmisTexture,
                        &format!("{} emission", material.name),
                        Some(materials),
                    );
                    doc.set_link(node, 1, Some(emission));
                }
                node
            })
            .collect();
        for (index, object) in scene.objects().iter().enumerate() {
            let placement = doc.add_node(
                NodeType::NtGeoPlacement,
                &format!("{} placement", object.name),
                Some(geometry),
            );
            let transform = doc.add_node(
                NodeType::NtTransform3d,
                &format!("{} transform", object.name),
                Some(geometry),
            );
            let mesh = doc.add_node(NodeType::NtGeoMesh, &object.name, Some(geometry));
            if let Some(Body::Node(node)) = doc.items.get_mut(&mesh).map(|item| &mut item.body) {
                node.object = Some(index);
            }
            doc.set_link(placement, 0, Some(transform));
            doc.set_link(placement, 1, Some(mesh));
            if let Some(material) = material_nodes.get(object.material) {
                doc.set_link(mesh, 0, Some(*material));
            }
        }
        // Lay the items out in rows, as an editor would show them.
        let root_items = doc.graph_items(root);
        for (column, handle) in root_items.into_iter().enumerate() {
            if let Some(item) = doc.items.get_mut(&handle) {
                item.position = [column as f32 * 180.0, 0.0];
            }
        }
        doc.write_state(state);
        doc
    }

    fn add_graph(
        &mut self,
        name: &str,
        owner: Option<u64>,
        graph_type: NodeGraphType,
        out_type: NodePinType,
    ) -> u64 {
        self.insert(Item {
            name: name.to_owned(),
            owner,
            position: [0.0, 0.0],
            body: Body::Graph(Graph {
                graph_type,
                out_type,
                items: Vec::new(),
            }),
        })
    }

    /// Adds a node of a type with a spec, with a value node on every value pin.
    fn add_node(&mut self, node_type: NodeType, name: &str, owner: Option<u64>) -> u64 {
        let pins = catalog::spec(node_type).map_or(&[][..], |spec| spec.pins);
        let handle = self.insert(Item {
            name: name.to_owned(),
            owner,
            position: [0.0, 0.0],
            body: Body::Node(Node {
                node_type,
                links: vec![None; pins.len()],
                value: None,
                pin_owner: None,
                object: None,
            }),
        });
        for (index, pin) in pins.iter().enumerate() {
            if pin.kind.value_node().is_some() {
                let value = default_value(pin.kind);
                self.add_value_node(handle, index, pin, value);
            }
        }
        handle
    }

    fn add_value_node(
        &mut self,
        owner: u64,
        pin_index: usize,
        pin: &PinSpec,
        value: Value,
    ) -> Option<u64> {
        let node_type = pin.kind.value_node()?;
        let value_node = self.insert(Item {
            name: pin.label.to_owned(),
            owner: None,
            position: [0.0, 0.0],
            body: Body::Node(Node {
                node_type,
                links: Vec::new(),
                value: Some(value),
                pin_owner: Some((owner, pin_index)),
                object: None,
            }),
        });
        self.set_link(owner, pin_index, Some(value_node));
        Some(value_node)
    }

    fn insert(&mut self, item: Item) -> u64 {
        let handle = self.next;
        self.next += 1;
        if let Some(owner) = item.owner {
            if let Some(Body::Graph(graph)) = self.items.get_mut(&owner).map(|i| &mut i.body) {
                graph.items.push(handle);
            }
        }
        self.items.insert(handle, item);
        handle
    }

    fn set_link(&mut self, node: u64, pin: usize, source: Option<u64>) {
        if let Some(Body::Node(node)) = self.items.get_mut(&node).map(|i| &mut i.body) {
            if let Some(slot) = node.links.get_mut(pin) {
                *slot = source;
            }
        }
    }

    // ---- reading ------------------------------------------------------------------------

    /// The root graph's handle.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// What `handle` names.
    pub fn target(&self, handle: u64) -> Result<Target, NodeError> {
        let target = match handle >> 40 {
            0 => Target::Item(handle),
            1 => Target::ItemArray(handle & (ITEM_ARRAY_TAG - 1)),
            2 => Target::NodeArray(handle & (ITEM_ARRAY_TAG - 1)),
            3 => {
                let rest = handle & (ITEM_ARRAY_TAG - 1);
                Target::PinInfo(rest >> 8, (rest & 0xff) as usize)
            }
            _ => return Err(NodeError::NoSuchHandle(handle)),
        };
        // The item behind the handle must exist, and be of the right kind.
        match target {
            Target::Item(h) => {
                if !self.items.contains_key(&h) {
                    return Err(NodeError::NoSuchHandle(h));
                }
            }
            Target::ItemArray(h) => {
                self.graph(h).map_err(|_| NodeError::NoSuchHandle(handle))?;
            }
            Target::NodeArray(h) => {
                self.node(h).map_err(|_| NodeError::NoSuchHandle(handle))?;
            }
            Target::PinInfo(h, ix) => {
                let (_, node) = self.node(h).map_err(|_| NodeError::NoSuchHandle(handle))?;
                if ix >= node.links.len() {
                    return Err(NodeError::NoSuchHandle(handle));
                }
            }
        }
        Ok(target)
    }

    /// The item `handle` names.
    pub fn item(&self, handle: u64) -> Result<&Item, NodeError> {
        if handle >= ITEM_HANDLE_LIMIT {
            return match self.target(handle) {
                Ok(target) => Err(NodeError::WrongKind {
                    handle,
                    expected: "an item (node or graph)",
                    actual: target_kind(target),
                }),
                Err(error) => Err(error),
            };
        }
        self.items
            .get(&handle)
            .ok_or(NodeError::NoSuchHandle(handle))
    }

    /// The node `handle` names.
    pub fn node(&self, handle: u64) -> Result<(&Item, &Node), NodeError> {
        let item = self.item(handle)?;
        match &item.body {
            Body::Node(node) => Ok((item, node)),
            Body::Graph(_) => Err(NodeError::WrongKind {
                handle,
                expected: "a node",
                actual: "a graph",
            }),
        }
    }

    /// The graph `handle` names.
    pub fn graph(&self, handle: u64) -> Result<(&Item, &Graph), NodeError> {
        let item = self.item(handle)?;
        match &item.body {
            Body::Graph(graph) => Ok((item, graph)),
            Body::Node(_) => Err(NodeError::WrongKind {
                handle,
                expected: "a graph",
                actual: "a node",
            }),
        }
    }

    fn graph_items(&self, handle: u64) -> Vec<u64> {
        self.graph(handle)
            .map(|(_, g)| g.items.clone())
            .unwrap_or_default()
    }

    /// A reference to item `handle` as Octane's clients expect it.
    pub fn item_ref(&self, handle: u64) -> ObjectRef {
        let r#type = match self.items.get(&handle).map(|i| &i.body) {
            _ if handle == self.root => ObjectType::ApiRootNodeGraph,
            Some(Body::Graph(_)) => ObjectType::ApiNodeGraph,
            Some(Body::Node(_)) => ObjectType::ApiNode,
            None => ObjectType::Unknown,
        };
        ObjectRef {
            handle,
            r#type: r#type as i32,
        }
    }

    /// "No object": handle 0.
    pub fn none_ref() -> ObjectRef {
        ObjectRef {
            handle: 0,
            r#type: ObjectType::Unknown as i32,
        }
    }

    /// The array of the items graph `handle` owns.
    pub fn item_array_ref(&self, graph: u64) -> ObjectRef {
        ObjectRef {
            handle: ITEM_ARRAY_TAG | graph,
            r#type: ObjectType::ApiItemArray as i32,
        }
    }

    /// The array of the nodes linking node `handle`.
    pub fn node_array_ref(node: u64) -> ObjectRef {
        ObjectRef {
            handle: NODE_ARRAY_TAG | node,
            r#type: ObjectType::ApiNodeArray as i32,
        }
    }

    /// The description of pin `index` of node `node`.
    pub fn pin_info_ref(node: u64, index: usize) -> ObjectRef {
        ObjectRef {
            handle: PIN_INFO_TAG | (node << 8) | (index as u64 & 0xff),
            r#type: ObjectType::ApiNodePinInfo as i32,
        }
    }

    /// The items of an item array.
    pub fn array_items(&self, handle: u64) -> Result<Vec<u64>, NodeError> {
        match self.target(handle)? {
            Target::ItemArray(graph) => Ok(self.graph_items(graph)),
            other => Err(NodeError::WrongKind {
                handle,
                expected: "an item array",
                actual: target_kind(other),
            }),
        }
    }

    /// The nodes of a node array.
    pub fn node_array(&self, handle: u64) -> Result<Vec<u64>, NodeError> {
        match self.target(handle)? {
            Target::NodeArray(node) => Ok(self
                .destinations(node)
                .into_iter()
                .map(|(h, _)| h)
                .collect()),
            other => Err(NodeError::WrongKind {
                handle,
                expected: "a node array",
                actual: target_kind(other),
            }),
        }
    }

    /// The nodes with a pin linking `node`, and the names of those pins.
    pub fn destinations(&self, node: u64) -> Vec<(u64, &'static str)> {
        let mut out = Vec::new();
        for (handle, item) in &self.items {
            if let Body::Node(other) = &item.body {
                for (index, link) in other.links.iter().enumerate() {
                    if *link == Some(node) {
                        if let Some(pin) = pin_spec(other.node_type, index) {
                            out.push((*handle, pin.name));
                        }
                    }
                }
            }
        }
        out
    }

    /// The spec of pin `index` of node `handle`.
    pub fn pin(
        &self,
        handle: u64,
        index: u64,
    ) -> Result<(&'static PinSpec, Option<u64>), NodeError> {
        let (item, node) = self.node(handle)?;
        let slot = usize::try_from(index)
            .ok()
            .filter(|i| *i < node.links.len());
        match slot.and_then(|i| Some((pin_spec(node.node_type, i)?, node.links[i]))) {
            Some(found) => Ok(found),
            None => Err(NodeError::NoSuchPinIndex {
                handle,
                name: item.name.clone(),
                count: node.links.len(),
                index,
            }),
        }
    }

    /// The index of the pin with id `pin_id` of node `handle`.
    pub fn pin_index(&self, handle: u64, pin_id: i32) -> Result<usize, NodeError> {
        let (item, node) = self.node(handle)?;
        (0..node.links.len())
            .find(|i| pin_spec(node.node_type, *i).is_some_and(|p| p.id as i32 == pin_id))
            .ok_or_else(|| NodeError::NoSuchPin {
                handle,
                name: item.name.clone(),
                pin: octaneweb_proto::octaneapi::PinId::try_from(pin_id).map_or_else(
                    |_| format!("with id {pin_id}"),
                    |p| p.as_str_name().to_owned(),
                ),
            })
    }

    /// The value of pin `index` of node `handle`: the linked value node's, or the pin's
    /// default when nothing is linked.
    pub fn pin_value(
        &self,
        handle: u64,
        index: usize,
    ) -> Result<(&'static PinSpec, Value), NodeError> {
        let (spec, link) = self.pin(handle, index as u64)?;
        if let PinKind::Link(_) = spec.kind {
            return Err(self.link_pin_error(handle, spec));
        }
        let value = link
            .and_then(|source| self.node(source).ok())
            .and_then(|(_, node)| node.value)
            .unwrap_or_else(|| default_value(spec.kind));
        Ok((spec, value))
    }

    fn link_pin_error(&self, handle: u64, spec: &'static PinSpec) -> NodeError {
        NodeError::BadPinValue {
            handle,
            name: self.name_of(handle),
            pin: spec.name,
            why: format!(
                "is a link to a {} node and has no value; link a node with ApiNode.connectToIx",
                pin_type_name(spec.kind.pin_type())
            ),
            out_of_bounds: false,
        }
    }

    fn name_of(&self, handle: u64) -> String {
        self.items
            .get(&handle)
            .map(|i| i.name.clone())
            .unwrap_or_default()
    }

    /// The `A_VALUE` attribute of a value node: its type and value; `None` for items without.
    pub fn attribute(&self, handle: u64) -> Result<Option<(AttributeType, Value)>, NodeError> {
        let item = self.item(handle)?;
        Ok(match &item.body {
            Body::Node(node) => catalog::value_node(node.node_type)
                .and_then(|(_, attr_type)| Some((attr_type, node.value?))),
            Body::Graph(_) => None,
        })
    }

    /// Every item that is a mesh, with its object index.
    pub fn meshes(&self) -> Vec<(u64, usize)> {
        self.items
            .iter()
            .filter_map(|(handle, item)| match &item.body {
                Body::Node(node) => Some((*handle, node.object?)),
                Body::Graph(_) => None,
            })
            .collect()
    }

    /// The render target node (the first in the root graph).
    pub fn render_target(&self) -> Option<u64> {
        self.graph_items(self.root).into_iter().find(|h| {
            self.node(*h)
                .is_ok_and(|(_, n)| n.node_type == NodeType::NtRendertarget)
        })
    }

    /// The node linked to pin `pin_id` of `node`, if any.
    fn linked(&self, node: u64, pin_id: octaneweb_proto::octaneapi::PinId) -> Option<u64> {
        let index = self.pin_index(node, pin_id as i32).ok()?;
        self.pin(node, index as u64).ok()?.1
    }

    // ---- editing ------------------------------------------------------------------------

    fn item_mut(&mut self, handle: u64) -> Result<&mut Item, NodeError> {
        self.item(handle)?;
        self.items
            .get_mut(&handle)
            .ok_or(NodeError::NoSuchHandle(handle))
    }

    /// Renames an item.
    pub fn set_name(&mut self, handle: u64, name: &str) -> Result<(), NodeError> {
        if name.len() > MAX_NAME_BYTES {
            return Err(NodeError::BadValue {
                handle,
                name: self.name_of(handle),
                why: format!(
                    "cannot take a name of {} bytes (at most {MAX_NAME_BYTES})",
                    name.len()
                ),
                out_of_bounds: false,
            });
        }
        self.item_mut(handle)?.name = name.to_owned();
        Ok(())
    }

    /// Moves an item in the editor.
    pub fn set_position(&mut self, handle: u64, position: [f32; 2]) -> Result<(), NodeError> {
        if !position.iter().all(|v| v.is_finite()) {
            return Err(NodeError::BadValue {
                handle,
                name: self.name_of(handle),
                why: "cannot move to a position that is not finite".into(),
                out_of_bounds: false,
            });
        }
        self.item_mut(handle)?.position = position;
        Ok(())
    }

    /// Sets pin `index` of node `handle` to `value` (converted from what the client sent),
    /// writing it into the pin's value node (made if the pin has none).
    pub fn set_pin_value(
        &mut self,
        handle: u64,
        index: usize,
        value: Value,
    ) -> Result<(), NodeError> {
        let (spec, link) = self.pin(handle, index as u64)?;
        if let PinKind::Link(_) = spec.kind {
            return Err(self.link_pin_error(handle, spec));
        }
        let value = check_value(spec, value).map_err(|problem| NodeError::BadPinValue {
            handle,
            name: self.name_of(handle),
            pin: spec.name,
            why: problem.why,
            out_of_bounds: problem.out_of_bounds,
        })?;
        let target = link.filter(|source| {
            self.node(*source).is_ok_and(|(_, node)| {
                node.value.is_some() && Some(node.node_type) == spec.kind.value_node()
            })
        });
        match target {
            Some(source) => {
                if let Body::Node(node) = &mut self.item_mut(source)?.body {
                    node.value = Some(value);
                }
            }
            None => {
                if self.items.len() >= MAX_ITEMS {
                    return Err(NodeError::Full);
                }
                self.add_value_node(handle, index, spec, value);
            }
        }
        Ok(())
    }

    /// Sets the `A_VALUE` attribute of a value node; a node a pin owns keeps to that pin's
    /// bounds.
    pub fn set_attribute(&mut self, handle: u64, value: Value) -> Result<(), NodeError> {
        let (item, node) = self.node(handle)?;
        let Some((_, attr_type)) = catalog::value_node(node.node_type) else {
            return Err(NodeError::BadValue {
                handle,
                name: item.name.clone(),
                why: "has no attribute A_VALUE".into(),
                out_of_bounds: false,
            });
        };
        let value = coerce(value, attr_type).ok_or_else(|| NodeError::BadValue {
            handle,
            name: item.name.clone(),
            why: format!(
                "keeps A_VALUE as {}; got {}",
                attr_type.as_str_name(),
                value_name(value)
            ),
            out_of_bounds: false,
        })?;
        let value = match node.pin_owner {
            Some((owner, index)) => match self.pin(owner, index as u64) {
                Ok((spec, _)) => {
                    check_value(spec, value).map_err(|problem| NodeError::BadValue {
                        handle,
                        name: item.name.clone(),
                        why: format!("(pin {} of node {owner}) {}", spec.name, problem.why),
                        out_of_bounds: problem.out_of_bounds,
                    })?
                }
                Err(_) => value,
            },
            None => check_finite(value).map_err(|why| NodeError::BadValue {
                handle,
                name: item.name.clone(),
                why,
                out_of_bounds: false,
            })?,
        };
        if let Body::Node(node) = &mut self.item_mut(handle)?.body {
            node.value = Some(value);
        }
        Ok(())
    }

    /// Creates a node of `node_type` in graph `owner`; with `configure_pins`, every value pin
    /// gets a value node holding its default.
    pub fn create(
        &mut self,
        node_type: i32,
        owner: u64,
        configure_pins: bool,
    ) -> Result<u64, NodeError> {
        self.graph(owner)?;
        let known = NodeType::try_from(node_type).ok();
        let Some(spec) = known.and_then(catalog::creatable) else {
            let name = known.map_or_else(
                || format!("node type {node_type}"),
                |t| t.as_str_name().to_owned(),
            );
            return Err(NodeError::NotAllowed(format!(
                "{name} cannot be created here: the reference server creates render targets, thin lens cameras, daylight and texture environments, path tracing kernels, film settings, placements, 3D transformations, diffuse and glossy materials and texture emissions"
            )));
        };
        if self.items.len() + 1 + spec.pins.len() > MAX_ITEMS {
            return Err(NodeError::Full);
        }
        let handle = self.add_node(spec.node_type, spec.default_name, Some(owner));
        if !configure_pins {
            // Value pins start unlinked: they read as their defaults until set.
            let owned: Vec<u64> = self
                .items
                .iter()
                .filter_map(|(h, item)| match &item.body {
                    Body::Node(n) if n.pin_owner.is_some_and(|(o, _)| o == handle) => Some(*h),
                    _ => None,
                })
                .collect();
            for value_node in owned {
                self.items.remove(&value_node);
            }
            if let Body::Node(node) = &mut self.item_mut(handle)?.body {
                node.links.iter_mut().for_each(|l| *l = None);
            }
        }
        Ok(handle)
    }

    /// Links `source` (or nothing) to pin `index` of node `handle`. The source's output type
    /// must be the pin's type, and (with `cycle_check`) the link must not close a loop.
    pub fn connect(
        &mut self,
        handle: u64,
        index: u64,
        source: Option<u64>,
        cycle_check: bool,
    ) -> Result<(), NodeError> {
        let (spec, old) = self.pin(handle, index)?;
        let index = index as usize;
        if let Some(source) = source {
            let source_name = self.item(source)?.name.clone();
            let actual = self.out_type(source)?;
            if actual != spec.kind.pin_type() {
                return Err(NodeError::TypeMismatch {
                    handle,
                    pin: spec.name,
                    expected: pin_type_name(spec.kind.pin_type()),
                    from: source,
                    source_name,
                    actual: pin_type_name(actual),
                });
            }
            // Cycles are refused whatever `doCycleCheck` says: the renderer and every client
            // that walks the graph would follow them forever.
            let _ = cycle_check;
            if source == handle || self.feeds(source, handle) {
                return Err(NodeError::Cycle {
                    handle,
                    pin: spec.name,
                    from: source,
                });
            }
        }
        self.set_link(handle, index, source);
        // A value node the pin owned goes with the link.
        if let Some(old) = old.filter(|old| Some(*old) != source) {
            let owned = self
                .node(old)
                .is_ok_and(|(_, n)| n.pin_owner == Some((handle, index)));
            if owned {
                self.remove_tree(old);
            }
        }
        Ok(())
    }

    /// True if `from` reaches `to` by following pin links.
    fn feeds(&self, from: u64, to: u64) -> bool {
        let mut stack = vec![from];
        let mut seen = std::collections::HashSet::new();
        while let Some(handle) = stack.pop() {
            if handle == to {
                return true;
            }
            if !seen.insert(handle) {
                continue;
            }
            match self.items.get(&handle).map(|i| &i.body) {
                Some(Body::Node(node)) => stack.extend(node.links.iter().flatten()),
                Some(Body::Graph(graph)) => stack.extend(graph.items.iter()),
                None => {}
            }
        }
        false
    }

    fn out_type_of(&self, node: &Node) -> NodePinType {
        catalog::spec(node.node_type)
            .map(|s| s.out_type)
            .or_else(|| catalog::value_node(node.node_type).map(|(out, _)| out))
            .unwrap_or(NodePinType::PtUnknown)
    }

    /// The output type of any item.
    pub fn out_type(&self, handle: u64) -> Result<NodePinType, NodeError> {
        Ok(match &self.item(handle)?.body {
            Body::Graph(graph) => graph.out_type,
            Body::Node(node) => self.out_type_of(node),
        })
    }

    /// Destroys an item: a graph with everything it owns, a node with the value nodes its
    /// pins own; links to it are cut. The root graph and the meshes of the built-in scene
    /// stay.
    pub fn destroy(&mut self, handle: u64) -> Result<(), NodeError> {
        let item = self.item(handle)?;
        if handle == self.root {
            return Err(NodeError::NotAllowed(format!(
                "item {handle} is the root graph, which cannot be destroyed"
            )));
        }
        if let Body::Node(node) = &item.body {
            if node.object.is_some() {
                return Err(NodeError::NotAllowed(format!(
                    "item {handle} ({}) is a mesh of the built-in scene, which cannot be destroyed; unlink its placement instead",
                    item.name
                )));
            }
        }
        if self.contains_mesh(handle) {
            return Err(NodeError::NotAllowed(format!(
                "item {handle} ({}) holds meshes of the built-in scene, which cannot be destroyed",
                item.name
            )));
        }
        self.remove_tree(handle);
        Ok(())
    }

    /// Item `handle` and everything the graphs in it own, however deep (pin-owned value
    /// nodes not included); each item once.
    fn subtree(&self, handle: u64) -> Vec<u64> {
        let mut out = vec![handle];
        let mut seen = std::collections::HashSet::from([handle]);
        let mut index = 0;
        while let Some(current) = out.get(index).copied() {
            index += 1;
            if let Some(Body::Graph(graph)) = self.items.get(&current).map(|i| &i.body) {
                out.extend(graph.items.iter().copied().filter(|h| seen.insert(*h)));
            }
        }
        out
    }

    fn contains_mesh(&self, handle: u64) -> bool {
        self.subtree(handle)
            .into_iter()
            .any(|h| self.node(h).is_ok_and(|(_, n)| n.object.is_some()))
    }

    /// How many graphs own `handle` above it (the root's items are at 1).
    fn nesting(&self, handle: u64) -> usize {
        let mut depth = 0;
        let mut current = self.items.get(&handle).and_then(|i| i.owner);
        // Bounded: a loaded file is checked for owner loops, but nothing here trusts that.
        while let Some(owner) = current.filter(|_| depth <= MAX_ITEMS) {
            depth += 1;
            current = self.items.get(&owner).and_then(|i| i.owner);
        }
        depth
    }

    /// How many levels of graphs lie below `handle` (0 for a node or an empty graph).
    fn depth_below(&self, handle: u64) -> usize {
        let mut level = vec![handle];
        let mut depth = 0;
        while depth <= MAX_ITEMS {
            let next: Vec<u64> = level
                .iter()
                .filter_map(|h| match self.items.get(h).map(|i| &i.body) {
                    Some(Body::Graph(graph)) if !graph.items.is_empty() => {
                        Some(graph.items.clone())
                    }
                    _ => None,
                })
                .flatten()
                .collect();
            if next.is_empty() {
                break;
            }
            depth += 1;
            level = next;
        }
        depth
    }

    fn remove_tree(&mut self, handle: u64) {
        // Value nodes by the node whose pin owns them, gathered once.
        let mut owned: std::collections::HashMap<u64, Vec<u64>> = std::collections::HashMap::new();
        for (h, item) in &self.items {
            if let Body::Node(Node {
                pin_owner: Some((owner, _)),
                ..
            }) = &item.body
            {
                owned.entry(*owner).or_default().push(*h);
            }
        }
        let mut doomed = std::collections::HashSet::new();
        let mut stack = self.subtree(handle);
        while let Some(current) = stack.pop() {
            if doomed.insert(current) {
                stack.extend(owned.get(&current).into_iter().flatten().copied());
            }
        }
        for handle in &doomed {
            self.items.remove(handle);
        }
        for item in self.items.values_mut() {
            match &mut item.body {
                Body::Graph(graph) => graph.items.retain(|h| !doomed.contains(h)),
                Body::Node(node) => {
                    for link in &mut node.links {
                        if link.is_some_and(|h| doomed.contains(&h)) {
                            *link = None;
                        }
                    }
                }
            }
        }
    }

    /// Copies item `source` (with the value nodes its pins own; for a graph, its items) into
    /// graph `destination`; links to other nodes are kept. Meshes cannot be copied.
    pub fn copy_item_tree(&mut self, destination: u64, source: u64) -> Result<u64, NodeError> {
        self.graph(destination)?;
        let item = self.item(source)?.clone();
        if source == self.root
            || self.contains_mesh(source)
            || matches!(&item.body, Body::Node(n) if n.object.is_some())
        {
            return Err(NodeError::NotAllowed(format!(
                "item {source} ({}) holds meshes of the built-in scene or is the root, which cannot be copied",
                item.name
            )));
        }
        if self.feeds(source, destination) && matches!(item.body, Body::Graph(_)) {
            return Err(NodeError::NotAllowed(format!(
                "graph {source} cannot be copied into itself"
            )));
        }
        if self.nesting(destination) + 1 + self.depth_below(source) > MAX_NESTING {
            return Err(NodeError::NotAllowed(format!(
                "copying item {source} into graph {destination} would nest graphs more than {MAX_NESTING} deep"
            )));
        }
        if self.items.len() + self.tree_size(source) > MAX_ITEMS {
            return Err(NodeError::Full);
        }
        Ok(self.copy_into(source, Some(destination)))
    }

    /// Items a copy of `handle` makes (each node with a value node per pin at most).
    fn tree_size(&self, handle: u64) -> usize {
        self.subtree(handle)
            .into_iter()
            .map(|h| match self.items.get(&h).map(|i| &i.body) {
                Some(Body::Node(node)) => 1 + node.links.len(),
                _ => 1,
            })
            .sum()
    }

    /// The first item found on a cycle of links and ownership, if any (one pass).
    pub(crate) fn cycle(&self) -> Option<u64> {
        let edges = |handle: u64| -> Vec<u64> {
            match self.items.get(&handle).map(|i| &i.body) {
                Some(Body::Node(node)) => node.links.iter().flatten().copied().collect(),
                Some(Body::Graph(graph)) => graph.items.clone(),
                None => Vec::new(),
            }
        };
        // 1: on the current path, 2: done.
        let mut state: std::collections::HashMap<u64, u8> = std::collections::HashMap::new();
        for start in self.items.keys() {
            if state.contains_key(start) {
                continue;
            }
            state.insert(*start, 1);
            let mut stack: Vec<(u64, Vec<u64>, usize)> = vec![(*start, edges(*start), 0)];
            while let Some((current, targets, next)) = stack.last_mut() {
                let Some(target) = targets.get(*next).copied() else {
                    state.insert(*current, 2);
                    stack.pop();
                    continue;
                };
                *next += 1;
                match state.get(&target) {
                    Some(1) => return Some(target),
                    Some(_) => {}
                    None => {
                        state.insert(target, 1);
                        stack.push((target, edges(target), 0));
                    }
                }
            }
        }
        None
    }

    fn copy_into(&mut self, source: u64, owner: Option<u64>) -> u64 {
        let Some(item) = self.items.get(&source).cloned() else {
            return 0;
        };
        match item.body {
            Body::Graph(graph) => {
                let copy = self.add_graph(&item.name, owner, graph.graph_type, graph.out_type);
                for child in graph.items {
                    self.copy_into(child, Some(copy));
                }
                copy
            }
            Body::Node(node) => {
                let copy = self.insert(Item {
                    name: item.name.clone(),
                    owner,
                    position: [item.position[0] + 20.0, item.position[1] + 20.0],
                    body: Body::Node(Node {
                        links: vec![None; node.links.len()],
                        pin_owner: None,
                        ..node.clone()
                    }),
                });
                for (index, link) in node.links.iter().enumerate() {
                    let Some(link) = *link else { continue };
                    let owned = self
                        .node(link)
                        .is_ok_and(|(_, n)| n.pin_owner == Some((source, index)));
                    let target = if owned {
                        let value_copy = self.copy_into(link, None);
                        if let Some(Body::Node(n)) =
                            self.items.get_mut(&value_copy).map(|i| &mut i.body)
                        {
                            n.pin_owner = Some((copy, index));
                        }
                        value_copy
                    } else {
                        link
                    };
                    self.set_link(copy, index, Some(target));
                }
                copy
            }
        }
    }

    // ---- the render ---------------------------------------------------------------------

    /// Writes `state`'s values into the pins (the camera and everything else the graph
    /// shows), so the graph starts as what is rendered.
    pub fn write_state(&mut self, state: &SceneState) {
        render::write_state(self, state);
    }

    /// What the graph asks the renderer to show, starting from `base` (for what the graph
    /// does not control: clay mode, sub-sampling, the region).
    pub fn scene_state(&self, scene: &Scene, base: &SceneState) -> SceneState {
        render::scene_state(self, scene, base)
    }
}

fn target_kind(target: Target) -> &'static str {
    match target {
        Target::Item(_) => "an item",
        Target::ItemArray(_) => "an item array",
        Target::NodeArray(_) => "a node array",
        Target::PinInfo(..) => "a pin info",
    }
}

/// The spec of pin `index` of a node type.
pub(crate) fn pin_spec(node_type: NodeType, index: usize) -> Option<&'static PinSpec> {
    catalog::spec(node_type)?.pins.get(index)
}

/// `PT_FLOAT` and friends, as names.
pub(crate) fn pin_type_name(pin_type: NodePinType) -> &'static str {
    pin_type.as_str_name()
}

fn value_name(value: Value) -> &'static str {
    match value {
        Value::Float3(_) => "a float3",
        Value::Int3(_) => "an int3",
        Value::Float(_) => "a float",
    }
}

/// A pin's default as its value node keeps it.
pub(crate) fn default_value(kind: PinKind) -> Value {
    match kind {
        PinKind::Float { default, .. } | PinKind::Rgb { default } => Value::Float3(default),
        PinKind::Int { default, .. } | PinKind::Resolution { default } => {
            Value::Int3([default[0], default[1], 0])
        }
        PinKind::Grey { default, .. } => Value::Float(default),
        PinKind::Link(_) => Value::Float(0.0),
    }
}

/// `value` as the attribute type `attr_type` keeps it: scalars widen to three components.
fn coerce(value: Value, attr_type: AttributeType) -> Option<Value> {
    Some(match (attr_type, value) {
        (AttributeType::AtFloat3, Value::Float3(v)) => Value::Float3(v),
        (AttributeType::AtFloat3, Value::Float(x)) => Value::Float3([x, 0.0, 0.0]),
        (AttributeType::AtInt3, Value::Int3(v)) => Value::Int3(v),
        (AttributeType::AtFloat, Value::Float(x)) => Value::Float(x),
        _ => return None,
    })
}

fn check_finite(value: Value) -> Result<Value, String> {
    let finite = match value {
        Value::Float3(v) => v.iter().all(|x| x.is_finite()),
        Value::Float(x) => x.is_finite(),
        Value::Int3(_) => true,
    };
    if finite {
        Ok(value)
    } else {
        Err("takes only finite numbers".into())
    }
}

/// What is wrong with a value.
#[derive(Debug)]
pub(crate) struct Problem {
    pub why: String,
    /// Right type, outside the bounds.
    pub out_of_bounds: bool,
}

impl Problem {
    fn invalid(why: String) -> Problem {
        Problem {
            why,
            out_of_bounds: false,
        }
    }

    fn bounds(why: String) -> Problem {
        Problem {
            why,
            out_of_bounds: true,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

/// Checks `value` against a value pin: its type and bounds. Returns the value as the pin's
/// value node keeps it.
pub(crate) fn check_value(spec: &PinSpec, value: Value) -> Result<Value, Problem> {
    let value = check_finite(value).map_err(Problem::invalid)?;
    match (spec.kind, value) {
        (PinKind::Float { dims, min, max, .. }, value) => {
            let v = match value {
                Value::Float3(v) => v,
                Value::Float(x) if dims == 1 => [x, 0.0, 0.0],
                other => {
                    return Err(Problem::invalid(format!(
                        "takes a float{}, not {}",
                        dims_suffix(dims),
                        value_name(other)
                    )))
                }
            };
            for (axis, x) in v.iter().take(dims).enumerate() {
                if *x < min || *x > max {
                    return Err(Problem::bounds(format!(
                        "takes values from {min} to {max}; component {axis} is {x}"
                    )));
                }
            }
            let direction = matches!(
                spec.id,
                octaneweb_proto::octaneapi::PinId::PUp | octaneweb_proto::octaneapi::PinId::PSunDir
            );
            if direction && v.iter().all(|x| *x == 0.0) {
                return Err(Problem::bounds("cannot be the zero vector".into()));
            }
            Ok(Value::Float3(v))
        }
        (PinKind::Rgb { .. }, Value::Float3(v)) => {
            if v.iter().any(|x| *x < 0.0 || *x > 1.0) {
                return Err(Problem::bounds(format!(
                    "takes colour components from 0 to 1; got {v:?}"
                )));
            }
            Ok(Value::Float3(v))
        }
        (PinKind::Grey { min, max, .. }, Value::Float(x)) => {
            if x < min || x > max {
                return Err(Problem::bounds(format!(
                    "takes values from {min} to {max}; got {x}"
                )));
            }
            Ok(Value::Float(x))
        }
        (PinKind::Int { dims, min, max, .. }, Value::Int3(v)) => {
            for (axis, x) in v.iter().take(dims).enumerate() {
                if *x < min || *x > max {
                    return Err(Problem::bounds(format!(
                        "takes values from {min} to {max}; component {axis} is {x}"
                    )));
                }
            }
            Ok(Value::Int3(v))
        }
        (PinKind::Resolution { .. }, Value::Int3(v)) => {
            let max = octaneweb_pathtracer::MAX_DIMENSION as i32;
            if v[0] < 1 || v[1] < 1 || v[0] > max || v[1] > max {
                return Err(Problem::bounds(format!(
                    "takes a width and a height from 1 to {max} pixels; got {} x {}",
                    v[0], v[1]
                )));
            }
            Ok(Value::Int3([v[0], v[1], 0]))
        }
        (kind, value) => Err(Problem::invalid(format!(
            "is a {} pin and cannot take {}",
            pin_type_name(kind.pin_type()),
            value_name(value)
        ))),
    }
}

fn dims_suffix(dims: usize) -> &'static str {
    match dims {
        1 => "",
        2 => "2",
        _ => "3",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use octaneweb_proto::octaneapi::PinId;

    fn builtin() -> (Scene, Document, SceneState) {
        let scene = Scene::builtin();
        let state = SceneState::initial(&scene, [64, 32], 16);
        let doc = Document::builtin(&scene, &state);
        (scene, doc, state)
    }

    fn named(doc: &Document, name: &str) -> u64 {
        doc.items
            .iter()
            .find(|(_, item)| item.name == name)
            .map(|(h, _)| *h)
            .unwrap_or_else(|| panic!("no item {name}"))
    }

    #[test]
    fn the_builtin_graph_reproduces_the_builtin_render() {
        let (scene, doc, state) = builtin();
        assert_eq!(doc.scene_state(&scene, &state), state);
    }

    #[test]
    fn a_translation_moves_its_object_and_only_it() {
        let (scene, mut doc, state) = builtin();
        let transform = named(&doc, "Red sphere transform");
        let index = doc
            .pin_index(transform, PinId::PTranslation as i32)
            .unwrap();
        doc.set_pin_value(transform, index, Value::Float3([0.0, 0.0, -60.0]))
            .unwrap();
        let moved = doc.scene_state(&scene, &state);
        let red = scene
            .objects()
            .iter()
            .position(|o| o.name == "Red sphere")
            .unwrap();
        for (i, offset) in moved.object_offsets.iter().enumerate() {
            let expected = if i == red {
                octaneweb_pathtracer::Vec3::new(0.0, 0.0, -60.0)
            } else {
                octaneweb_pathtracer::Vec3::ZERO
            };
            assert_eq!(*offset, expected, "object {i}");
        }
    }

    #[test]
    fn a_project_file_round_trips_and_damage_is_refused() {
        let (scene, mut doc, _) = builtin();
        let camera = named(&doc, "Camera");
        let fov = doc.pin_index(camera, PinId::PFov as i32).unwrap();
        doc.set_pin_value(camera, fov, Value::Float3([55.0, 0.0, 0.0]))
            .unwrap();
        let bytes = doc.to_project_json();
        let loaded = Document::from_project_json(&bytes, scene.objects().len()).unwrap();
        assert_eq!(loaded.items, doc.items);
        let text = String::from_utf8(bytes).unwrap();
        // A dangling link, an unknown node type and a value out of bounds are each refused.
        let dangling = text.replacen("\"link\": 1", "\"link\": 9", 1);
        assert!(Document::from_project_json(dangling.as_bytes(), 7).is_err());
        let unknown = text.replacen("\"nodeType\": 56", "\"nodeType\": 99999", 1);
        assert!(Document::from_project_json(unknown.as_bytes(), 7).is_err());
        let wide = text.replacen("55.0", "500.0", 1);
        let error = Document::from_project_json(wide.as_bytes(), 7).unwrap_err();
        assert!(error.to_string().contains("fov"), "{error}");
        assert!(Document::from_project_json(b"[]", 7).is_err());
    }

    #[test]
    fn copies_nest_at_most_max_nesting_graphs_deep() {
        let (_, mut doc, _) = builtin();
        let materials = named(&doc, "Materials");
        let mut destination = doc.root();
        let mut copies = 0;
        let refused = loop {
            match doc.copy_item_tree(destination, materials) {
                Ok(copy) => {
                    destination = copy;
                    copies += 1;
                    assert!(copies <= MAX_NESTING, "nested without limit");
                }
                Err(error) => break error,
            }
        };
        assert!(
            matches!(refused, NodeError::NotAllowed(ref why) if why.contains("deep")),
            "{refused}"
        );
        assert_eq!(doc.nesting(destination), copies);
    }

    #[test]
    fn loaded_files_with_link_cycles_or_owner_loops_are_refused() {
        let (scene, mut doc, _) = builtin();
        let geometry = named(&doc, "Geometry");
        let a = doc
            .create(NodeType::NtGeoPlacement as i32, geometry, true)
            .unwrap();
        let b = doc
            .create(NodeType::NtGeoPlacement as i32, geometry, true)
            .unwrap();
        assert!(doc.cycle().is_none());
        // What the API refuses, written into the document directly.
        doc.set_link(a, 1, Some(b));
        doc.set_link(b, 1, Some(a));
        assert!(doc.cycle().is_some());
        let error =
            Document::from_project_json(&doc.to_project_json(), scene.objects().len()).unwrap_err();
        assert!(error.to_string().contains("cycle"), "{error}");

        let (_, mut doc, _) = builtin();
        let materials = named(&doc, "Materials");
        let geometry = named(&doc, "Geometry");
        // Materials and Geometry owning each other, cut off from the root.
        let root = doc.root();
        if let Some(Body::Graph(graph)) = doc.items.get_mut(&root).map(|i| &mut i.body) {
            graph.items.retain(|h| *h != materials && *h != geometry);
        }
        for (item, owner) in [(materials, geometry), (geometry, materials)] {
            if let Some(entry) = doc.items.get_mut(&item) {
                entry.owner = Some(owner);
            }
            if let Some(Body::Graph(graph)) = doc.items.get_mut(&owner).map(|i| &mut i.body) {
                graph.items.push(item);
            }
        }
        let error =
            Document::from_project_json(&doc.to_project_json(), scene.objects().len()).unwrap_err();
        assert!(
            error.to_string().contains("loop") || error.to_string().contains("cycle"),
            "{error}"
        );
    }
}
