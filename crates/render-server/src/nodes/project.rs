//! Project files: the node graph as JSON, what `saveProject` writes and `loadProject` reads.
//!
//! ```json
//! { "format": "octaneweb-project", "version": 1, "root": 1000, "project": "name",
//!   "items": [
//!     { "handle": 1000, "name": "Scene", "owner": null, "position": [0, 0],
//!       "graph": { "graphType": 1, "outType": 0, "items": [1001, 1002] } },
//!     { "handle": 1001, "name": "Camera", "owner": 1000, "position": [180, 0],
//!       "node": { "nodeType": 13, "pins": [ { "id": 133, "link": 1002 } ],
//!                 "value": null, "pinOwner": null, "object": null } },
//!     { "handle": 1002, "name": "Position", "owner": null, "position": [0, 0],
//!       "node": { "nodeType": 6, "pins": [], "value": { "Float3": [0, 2, 7] },
//!                 "pinOwner": [1001, 0], "object": null } } ] }
//! ```
//!
//! Numbers are Octane's: graph types (`NodeGraphType`), pin types (`NodePinType`), node
//! types (`NodeType`) and pin ids (`PinId`). `object` ties a mesh node to an object of the
//! built-in scene (each object exactly once). Loading checks everything a client could not
//! have made through the API (unknown types, pins out of order, dangling links, cycles,
//! values out of bounds) and refuses the file, naming what is wrong.

use std::collections::{BTreeMap, HashSet};

use octaneweb_proto::octaneapi::{NodeGraphType, NodePinType, NodeType};
use serde::{Deserialize, Serialize};

use super::{catalog, check_value, Body, Document, Graph, Item, Node, Value};
use super::{FIRST_HANDLE, ITEM_HANDLE_LIMIT, MAX_ITEMS, MAX_NAME_BYTES};

/// The `format` of project files.
const FORMAT: &str = "octaneweb-project";
/// The version this server writes and reads.
const VERSION: u32 = 1;

/// Why a project file was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProjectError {
    #[error("not an octaneweb project file: {0}")]
    Parse(String),
    #[error("the project file is not valid: {0}")]
    Invalid(String),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProjectFile {
    format: String,
    version: u32,
    root: u64,
    items: Vec<ItemFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ItemFile {
    handle: u64,
    name: String,
    owner: Option<u64>,
    position: [f32; 2],
    #[serde(skip_serializing_if = "Option::is_none", default)]
    graph: Option<GraphFile>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    node: Option<NodeFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GraphFile {
    graph_type: i32,
    out_type: i32,
    items: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeFile {
    node_type: i32,
    pins: Vec<PinFile>,
    value: Option<Value>,
    pin_owner: Option<(u64, usize)>,
    object: Option<usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PinFile {
    id: i32,
    link: Option<u64>,
}

impl Document {
    /// The document as a project file.
    pub fn to_project_json(&self) -> Vec<u8> {
        let items = self
            .items
            .iter()
            .map(|(handle, item)| {
                let (graph, node) = match &item.body {
                    Body::Graph(graph) => (
                        Some(GraphFile {
                            graph_type: graph.graph_type as i32,
                            out_type: graph.out_type as i32,
                            items: graph.items.clone(),
                        }),
                        None,
                    ),
                    Body::Node(node) => {
                        let pins = node
                            .links
                            .iter()
                            .enumerate()
                            .map(|(index, link)| PinFile {
                                id: super::pin_spec(node.node_type, index)
                                    .map_or(0, |p| p.id as i32),
                                link: *link,
                            })
                            .collect();
                        (
                            None,
                            Some(NodeFile {
                                node_type: node.node_type as i32,
                                pins,
                                value: node.value,
                                pin_owner: node.pin_owner,
                                object: node.object,
                            }),
                        )
                    }
                };
                ItemFile {
                    handle: *handle,
                    name: item.name.clone(),
                    owner: item.owner,
                    position: item.position,
                    graph,
                    node,
                }
            })
            .collect();
        let file = ProjectFile {
            format: FORMAT.into(),
            version: VERSION,
            root: self.root,
            items,
        };
        serde_json::to_vec_pretty(&file).unwrap_or_default()
    }

    /// Reads a project file for a scene of `object_count` objects.
    pub fn from_project_json(bytes: &[u8], object_count: usize) -> Result<Document, ProjectError> {
        let file: ProjectFile =
            serde_json::from_slice(bytes).map_err(|e| ProjectError::Parse(e.to_string()))?;
        let invalid = |why: String| ProjectError::Invalid(why);
        if file.format != FORMAT {
            return Err(ProjectError::Parse(format!(
                "its format is {:?}, not {FORMAT:?}",
                file.format
            )));
        }
        if file.version != VERSION {
            return Err(invalid(format!(
                "version {} is not one this server reads ({VERSION})",
                file.version
            )));
        }
        if file.items.len() > MAX_ITEMS {
            return Err(invalid(format!(
                "{} items; at most {MAX_ITEMS}",
                file.items.len()
            )));
        }
        let mut items = BTreeMap::new();
        for entry in file.items {
            let handle = entry.handle;
            if !(FIRST_HANDLE..ITEM_HANDLE_LIMIT).contains(&handle) {
                return Err(invalid(format!(
                    "handle {handle} is outside {FIRST_HANDLE}..{ITEM_HANDLE_LIMIT}"
                )));
            }
            if entry.name.len() > MAX_NAME_BYTES {
                return Err(invalid(format!(
                    "item {handle} has a name of {} bytes",
                    entry.name.len()
                )));
            }
            if !entry.position.iter().all(|v| v.is_finite()) {
                return Err(invalid(format!(
                    "item {handle} has a position that is not finite"
                )));
            }
            let body = match (entry.graph, entry.node) {
                (Some(graph), None) => Body::Graph(Graph {
                    graph_type: NodeGraphType::try_from(graph.graph_type).map_err(|_| {
                        invalid(format!(
                            "graph {handle} has the unknown graph type {}",
                            graph.graph_type
                        ))
                    })?,
                    out_type: NodePinType::try_from(graph.out_type).map_err(|_| {
                        invalid(format!(
                            "graph {handle} has the unknown output type {}",
                            graph.out_type
                        ))
                    })?,
                    items: graph.items,
                }),
                (None, Some(node)) => Body::Node(read_node(handle, node)?),
                _ => {
                    return Err(invalid(format!(
                        "item {handle} must be either a graph or a node"
                    )))
                }
            };
            let item = Item {
                name: entry.name,
                owner: entry.owner,
                position: entry.position,
                body,
            };
            if items.insert(handle, item).is_some() {
                return Err(invalid(format!("handle {handle} is used twice")));
            }
        }
        let doc = Document {
            next: items.keys().next_back().map_or(FIRST_HANDLE, |h| h + 1),
            items,
            root: file.root,
            project: String::new(),
        };
        doc.check(object_count).map_err(invalid)?;
        Ok(doc)
    }

    /// Everything `from_project_json` needs to hold across items.
    fn check(&self, object_count: usize) -> Result<(), String> {
        match self.items.get(&self.root) {
            Some(Item {
                body: Body::Graph(_),
                owner: None,
                ..
            }) => {}
            _ => {
                return Err(format!(
                    "the root {} is not a graph without an owner",
                    self.root
                ))
            }
        }
        let mut objects = HashSet::new();
        let mut owned = HashSet::new();
        for (handle, item) in &self.items {
            if let Some(owner) = item.owner {
                match self.items.get(&owner).map(|i| &i.body) {
                    Some(Body::Graph(graph)) if graph.items.contains(handle) => {}
                    _ => {
                        return Err(format!(
                            "item {handle} names owner {owner}, which is not a graph listing it"
                        ))
                    }
                }
            }
            match &item.body {
                Body::Graph(graph) => {
                    for child in &graph.items {
                        if !owned.insert(*child) {
                            return Err(format!("item {child} is owned twice"));
                        }
                        if self.items.get(child).and_then(|c| c.owner) != Some(*handle) {
                            return Err(format!("graph {handle} lists item {child}, which does not name it as owner"));
                        }
                    }
                }
                Body::Node(node) => {
                    for (index, link) in node.links.iter().enumerate() {
                        let Some(link) = link else { continue };
                        if !self.items.contains_key(link) {
                            return Err(format!(
                                "pin {index} of node {handle} links {link}, which does not exist"
                            ));
                        }
                        if let Some(spec) = super::pin_spec(node.node_type, index) {
                            let actual = self.out_type(*link).map_err(|e| e.to_string())?;
                            if actual != spec.kind.pin_type() {
                                return Err(format!(
                                    "pin {} of node {handle} takes a {}, but links {link}, a {}",
                                    spec.name,
                                    spec.kind.pin_type().as_str_name(),
                                    actual.as_str_name()
                                ));
                            }
                        }
                    }
                    if let Some((owner, index)) = node.pin_owner {
                        let spec = self
                            .node(owner)
                            .ok()
                            .and_then(|(_, n)| super::pin_spec(n.node_type, index))
                            .ok_or_else(|| format!("node {handle} is owned by pin {index} of {owner}, which does not exist"))?;
                        if let Some(value) = node.value {
                            check_value(spec, value).map_err(|why| {
                                format!("node {handle}: pin {} of node {owner} {why}", spec.name)
                            })?;
                        }
                    }
                    if let Some(object) = node.object {
                        if node.node_type != NodeType::NtGeoMesh
                            || object >= object_count
                            || !objects.insert(object)
                        {
                            return Err(format!("node {handle} claims scene object {object}, which is not a mesh this scene has once"));
                        }
                    }
                }
            }
        }
        for handle in self.items.keys() {
            // Every owned item hangs below the root, not too deep and not in an owner loop.
            if self.items.get(handle).and_then(|i| i.owner).is_some() {
                let mut at = *handle;
                let mut steps = 0;
                while let Some(owner) = self.items.get(&at).and_then(|i| i.owner) {
                    steps += 1;
                    if steps > super::MAX_NESTING {
                        return Err(format!(
                            "item {handle} is nested more than {} graphs deep (or its owners loop)",
                            super::MAX_NESTING
                        ));
                    }
                    at = owner;
                }
                if at != self.root {
                    return Err(format!(
                        "item {handle} is owned by graphs that do not lead to the root"
                    ));
                }
            }
        }
        if let Some(item) = self.cycle() {
            return Err(format!("item {item} lies on a cycle of links"));
        }
        if objects.len() != object_count {
            return Err(format!(
                "the file holds {} of the scene's {object_count} meshes; every one must be there",
                objects.len()
            ));
        }
        Ok(())
    }
}

fn read_node(handle: u64, node: NodeFile) -> Result<Node, ProjectError> {
    let invalid = |why: String| ProjectError::Invalid(why);
    let node_type = NodeType::try_from(node.node_type)
        .ok()
        .filter(|t| catalog::spec(*t).is_some() || catalog::value_node(*t).is_some())
        .ok_or_else(|| {
            invalid(format!(
                "node {handle} has the node type {}, which this server does not make",
                node.node_type
            ))
        })?;
    let specs = catalog::spec(node_type).map_or(&[][..], |s| s.pins);
    if node.pins.len() != specs.len() {
        return Err(invalid(format!(
            "node {handle} ({}) has {} pins; its type has {}",
            node_type.as_str_name(),
            node.pins.len(),
            specs.len()
        )));
    }
    for (pin, spec) in node.pins.iter().zip(specs) {
        if pin.id != spec.id as i32 {
            return Err(invalid(format!(
                "node {handle}: pin id {} where {} ({}) belongs",
                pin.id, spec.id as i32, spec.name
            )));
        }
    }
    let is_value_node = catalog::value_node(node_type).is_some();
    if is_value_node != node.value.is_some() {
        return Err(invalid(format!(
            "node {handle}: a value is required on value nodes and only there"
        )));
    }
    Ok(Node {
        node_type,
        links: node.pins.iter().map(|p| p.link).collect(),
        value: node.value,
        pin_owner: node.pin_owner,
        object: node.object,
    })
}
