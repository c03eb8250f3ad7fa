//! Octane's node-system services over the scene's [`Document`]: items, item and node arrays,
//! nodes and their pins, pin infos, graphs, the project manager, the change manager and
//! `ApiInfo`. Every edit is checked by the document, then by the renderer (which must be
//! able to render the result) before it takes effect; a refused edit changes nothing.

use std::sync::Arc;

use octaneweb_proto::octaneapi as api;
use octaneweb_proto::octaneapi::api_change_manager_service_server::ApiChangeManagerService;
use octaneweb_proto::octaneapi::api_info_service_server::ApiInfoService;
use octaneweb_proto::octaneapi::api_item_array_service_server::ApiItemArrayService;
use octaneweb_proto::octaneapi::api_item_service_server::ApiItemService;
use octaneweb_proto::octaneapi::api_node_array_service_server::ApiNodeArrayService;
use octaneweb_proto::octaneapi::api_node_graph_service_server::ApiNodeGraphService;
use octaneweb_proto::octaneapi::api_node_pin_info_ex_service_server::ApiNodePinInfoExService;
use octaneweb_proto::octaneapi::api_node_service_server::ApiNodeService;
use octaneweb_proto::octaneapi::api_project_manager_service_server::ApiProjectManagerService;
use octaneweb_proto::octaneapi::{
    api_change_manager, api_info, api_item, api_item_array, api_node, api_node_array,
    api_node_graph, api_node_pin_info_ex, api_project_manager, AttributeType, Float2, ObjectRef,
};
use tonic::{Request, Response, Status};

use super::values::{self, Shape};
use super::Shared;
use crate::nodes::catalog::{self, PinKind};
use crate::nodes::{Body, Document, NodeError};

/// The Octane version the reference server reports: the wire interface it follows is that
/// of Octane 2024 (whose scenes say 14000011).
pub(crate) const OCTANE_VERSION: i32 = 14_000_011;

/// Implements every node-system service.
#[derive(Clone)]
pub(crate) struct NodeServices {
    shared: Arc<Shared>,
}

impl NodeServices {
    pub fn new(shared: Arc<Shared>) -> Self {
        NodeServices { shared }
    }
}

/// The handle of a request's object reference (the `type` is not checked: Octane's clients
/// send the type of the service they call, not of the object).
fn handle(method: &str, field: &str, reference: Option<&ObjectRef>) -> Result<u64, Status> {
    match reference {
        Some(reference) => Ok(reference.handle),
        None => Err(Status::invalid_argument(format!(
            "{method}: {field} is required"
        ))),
    }
}

impl NodeServices {
    fn read<T>(
        &self,
        method: &str,
        f: impl FnOnce(&Document) -> Result<T, NodeError>,
    ) -> Result<T, Status> {
        let doc = self.shared.document();
        f(&doc).map_err(|e| e.to_status(method))
    }

    fn edit<T>(
        &self,
        method: &str,
        f: impl FnOnce(&mut Document) -> Result<T, NodeError>,
    ) -> Result<T, Status> {
        self.shared.edit_document(method, f)
    }
}

#[tonic::async_trait]
impl ApiItemService for NodeServices {
    async fn destroy(
        &self,
        request: Request<api_item::DestroyRequest>,
    ) -> Result<Response<()>, Status> {
        let h = handle(
            "ApiItem.destroy",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        self.edit("ApiItem.destroy", |doc| doc.destroy(h))?;
        Ok(Response::new(()))
    }

    async fn name(
        &self,
        request: Request<api_item::NameRequest>,
    ) -> Result<Response<api_item::NameResponse>, Status> {
        let h = handle(
            "ApiItem.name",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        let result = self.read("ApiItem.name", |doc| Ok(doc.item(h)?.name.clone()))?;
        Ok(Response::new(api_item::NameResponse { result }))
    }

    async fn set_name(
        &self,
        request: Request<api_item::SetNameRequest>,
    ) -> Result<Response<()>, Status> {
        let request = request.into_inner();
        let h = handle("ApiItem.setName", "objectPtr", request.object_ptr.as_ref())?;
        self.edit("ApiItem.setName", |doc| doc.set_name(h, &request.name))?;
        Ok(Response::new(()))
    }

    async fn position(
        &self,
        request: Request<api_item::PositionRequest>,
    ) -> Result<Response<api_item::PositionResponse>, Status> {
        let h = handle(
            "ApiItem.position",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        let [x, y] = self.read("ApiItem.position", |doc| Ok(doc.item(h)?.position))?;
        Ok(Response::new(api_item::PositionResponse {
            result: Some(Float2 { x, y }),
        }))
    }

    async fn set_position(
        &self,
        request: Request<api_item::SetPositionRequest>,
    ) -> Result<Response<()>, Status> {
        let request = request.into_inner();
        let h = handle(
            "ApiItem.setPosition",
            "objectPtr",
            request.object_ptr.as_ref(),
        )?;
        let position = request
            .new_pos
            .map(|p| [p.x, p.y])
            .ok_or_else(|| Status::invalid_argument("ApiItem.setPosition: newPos is required"))?;
        self.edit("ApiItem.setPosition", |doc| doc.set_position(h, position))?;
        Ok(Response::new(()))
    }

    async fn out_type(
        &self,
        request: Request<api_item::OutTypeRequest>,
    ) -> Result<Response<api_item::OutTypeResponse>, Status> {
        let h = handle(
            "ApiItem.outType",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        let out = self.read("ApiItem.outType", |doc| doc.out_type(h))?;
        Ok(Response::new(api_item::OutTypeResponse {
            result: out as i32,
        }))
    }

    async fn is_graph(
        &self,
        request: Request<api_item::IsGraphRequest>,
    ) -> Result<Response<api_item::IsGraphResponse>, Status> {
        let h = handle(
            "ApiItem.isGraph",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        let result = self.read("ApiItem.isGraph", |doc| {
            Ok(matches!(doc.item(h)?.body, Body::Graph(_)))
        })?;
        Ok(Response::new(api_item::IsGraphResponse { result }))
    }

    async fn attr_info(
        &self,
        request: Request<api_item::AttrInfoRequest>,
    ) -> Result<Response<api_item::AttrInfoResponse>, Status> {
        let request = request.into_inner();
        let h = handle("ApiItem.attrInfo", "objectPtr", request.object_ptr.as_ref())?;
        let attribute = self.read("ApiItem.attrInfo", |doc| doc.attribute(h))?;
        // An attribute the item does not have is described as AT_UNKNOWN, as Octane does.
        let attr_type = match attribute {
            Some((attr_type, _)) if request.id == api::AttributeId::AValue as i32 => attr_type,
            _ => AttributeType::AtUnknown,
        };
        Ok(Response::new(api_item::AttrInfoResponse {
            result: Some(api::ApiAttributeInfo {
                id: request.id,
                r#type: attr_type as i32,
                description: if attr_type == AttributeType::AtUnknown {
                    String::new()
                } else {
                    "The node's value.".into()
                },
                ..Default::default()
            }),
        }))
    }

    async fn get_value_by_attr_id(
        &self,
        request: Request<api_item::GetValueByIdRequest>,
    ) -> Result<Response<api_item::GetValueResponse>, Status> {
        const METHOD: &str = "ApiItem.getValueByAttrID";
        let request = request.into_inner();
        let h = handle(METHOD, "item_ref", request.item_ref.as_ref())?;
        let value = self.read(METHOD, |doc| {
            let name = doc.item(h)?.name.clone();
            match doc.attribute(h)? {
                Some((_, value)) if request.attribute_id == api::AttributeId::AValue as i32 => {
                    Ok(value)
                }
                _ => Err(NodeError::BadValue {
                    handle: h,
                    name,
                    why: format!("has no attribute {}", attribute_name(request.attribute_id)),
                    out_of_bounds: false,
                }),
            }
        })?;
        let out = values::shape(value, Shape::of_attribute_type(request.expected_type)).map_err(
            |why| Status::invalid_argument(format!("{METHOD}: A_VALUE of item {h} {why}")),
        )?;
        Ok(Response::new(api_item::GetValueResponse {
            value: Some(values::attribute_out(out)),
        }))
    }

    async fn set_value_by_attr_id(
        &self,
        request: Request<api_item::SetValueByIdRequest>,
    ) -> Result<Response<api_item::SetValueResponse>, Status> {
        const METHOD: &str = "ApiItem.setValueByAttrID";
        let request = request.into_inner();
        let h = handle(METHOD, "item_ref", request.item_ref.as_ref())?;
        if request.attribute_id != api::AttributeId::AValue as i32 {
            return Err(Status::invalid_argument(format!(
                "{METHOD}: item {h} has no attribute {} the server lets clients set (only A_VALUE)",
                attribute_name(request.attribute_id)
            )));
        }
        let value = values::attribute_in(request.value)
            .map_err(|why| Status::invalid_argument(format!("{METHOD}: {why}")))?;
        self.edit(METHOD, |doc| doc.set_attribute(h, value))?;
        Ok(Response::new(api_item::SetValueResponse {
            success: true,
            error_message: String::new(),
        }))
    }
}

fn attribute_name(id: i32) -> String {
    api::AttributeId::try_from(id)
        .map_or_else(|_| format!("with id {id}"), |a| a.as_str_name().to_owned())
}

#[tonic::async_trait]
impl ApiItemArrayService for NodeServices {
    async fn size(
        &self,
        request: Request<api_item_array::SizeRequest>,
    ) -> Result<Response<api_item_array::SizeResponse>, Status> {
        let h = handle(
            "ApiItemArray.size",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        let items = self.read("ApiItemArray.size", |doc| doc.array_items(h))?;
        Ok(Response::new(api_item_array::SizeResponse {
            result: u32::try_from(items.len()).unwrap_or(u32::MAX),
        }))
    }

    async fn get(
        &self,
        request: Request<api_item_array::GetRequest>,
    ) -> Result<Response<api_item_array::GetResponse>, Status> {
        let request = request.into_inner();
        let h = handle("ApiItemArray.get", "objectPtr", request.object_ptr.as_ref())?;
        let result = self.read("ApiItemArray.get", |doc| {
            entry(doc, "item array", h, doc.array_items(h)?, request.index)
        })?;
        Ok(Response::new(api_item_array::GetResponse {
            result: Some(result),
        }))
    }
}

/// Entry `index` of array `handle` as a reference.
fn entry(
    doc: &Document,
    what: &'static str,
    handle: u64,
    entries: Vec<u64>,
    index: u32,
) -> Result<ObjectRef, NodeError> {
    match entries.get(index as usize) {
        Some(item) => Ok(doc.item_ref(*item)),
        None => Err(NodeError::PastTheEnd {
            what,
            handle,
            len: entries.len(),
            index,
        }),
    }
}

#[tonic::async_trait]
impl ApiNodeArrayService for NodeServices {
    async fn size1(
        &self,
        request: Request<api_node_array::SizeRequest>,
    ) -> Result<Response<api_node_array::SizeResponse>, Status> {
        let h = handle(
            "ApiNodeArray.size1",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        let nodes = self.read("ApiNodeArray.size1", |doc| doc.node_array(h))?;
        Ok(Response::new(api_node_array::SizeResponse {
            result: u32::try_from(nodes.len()).unwrap_or(u32::MAX),
        }))
    }

    async fn get1(
        &self,
        request: Request<api_node_array::GetRequest>,
    ) -> Result<Response<api_node_array::GetResponse>, Status> {
        let request = request.into_inner();
        let h = handle(
            "ApiNodeArray.get1",
            "objectPtr",
            request.object_ptr.as_ref(),
        )?;
        let result = self.read("ApiNodeArray.get1", |doc| {
            entry(doc, "node array", h, doc.node_array(h)?, request.index)
        })?;
        Ok(Response::new(api_node_array::GetResponse {
            result: Some(result),
        }))
    }
}

#[tonic::async_trait]
impl ApiNodeService for NodeServices {
    async fn create(
        &self,
        request: Request<api_node::CreateRequest>,
    ) -> Result<Response<api_node::CreateResponse>, Status> {
        let request = request.into_inner();
        let owner = handle("ApiNode.create", "ownerGraph", request.owner_graph.as_ref())?;
        let created = self.edit("ApiNode.create", |doc| {
            let node = doc.create(request.r#type, owner, request.configure_pins)?;
            Ok(doc.item_ref(node))
        })?;
        Ok(Response::new(api_node::CreateResponse {
            result: Some(created),
        }))
    }

    async fn info(
        &self,
        request: Request<api_node::InfoRequest>,
    ) -> Result<Response<api_node::InfoResponse>, Status> {
        let h = handle(
            "ApiNode.info",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        let info = self.read("ApiNode.info", |doc| {
            let (_, node) = doc.node(h)?;
            let out_type = doc.out_type(h)?;
            let spec = catalog::spec(node.node_type);
            Ok(api::ApiNodeInfo {
                r#type: node.node_type as i32,
                description: catalog::description(node.node_type).to_owned(),
                out_type: out_type as i32,
                is_creatable_by_api: catalog::creatable(node.node_type).is_some(),
                takes_pin_default_value: catalog::value_node(node.node_type).is_some(),
                category: category(out_type).to_owned(),
                default_name: catalog::default_name(node.node_type).to_owned(),
                attribute_info_count: u32::from(catalog::value_node(node.node_type).is_some()),
                pin_info_count: spec.map_or(0, |s| u32::try_from(s.pins.len()).unwrap_or(0)),
                ..Default::default()
            })
        })?;
        Ok(Response::new(api_node::InfoResponse { result: Some(info) }))
    }

    async fn pin_count(
        &self,
        request: Request<api_node::PinCountRequest>,
    ) -> Result<Response<api_node::PinCountResponse>, Status> {
        let h = handle(
            "ApiNode.pinCount",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        let count = self.read("ApiNode.pinCount", |doc| Ok(doc.node(h)?.1.links.len()))?;
        Ok(Response::new(api_node::PinCountResponse {
            result: u32::try_from(count).unwrap_or(0),
        }))
    }

    async fn pin_label_ix(
        &self,
        request: Request<api_node::PinLabelIxRequest>,
    ) -> Result<Response<api_node::PinLabelIxResponse>, Status> {
        let request = request.into_inner();
        let h = handle(
            "ApiNode.pinLabelIx",
            "objectPtr",
            request.object_ptr.as_ref(),
        )?;
        let (spec, _) = self.read("ApiNode.pinLabelIx", |doc| {
            doc.pin(h, u64::from(request.index))
        })?;
        Ok(Response::new(api_node::PinLabelIxResponse {
            result: spec.label.to_owned(),
        }))
    }

    async fn pin_type_ix(
        &self,
        request: Request<api_node::PinTypeIxRequest>,
    ) -> Result<Response<api_node::PinTypeIxResponse>, Status> {
        let request = request.into_inner();
        let h = handle(
            "ApiNode.pinTypeIx",
            "objectPtr",
            request.object_ptr.as_ref(),
        )?;
        let (spec, _) = self.read("ApiNode.pinTypeIx", |doc| {
            doc.pin(h, u64::from(request.index))
        })?;
        Ok(Response::new(api_node::PinTypeIxResponse {
            result: spec.kind.pin_type() as i32,
        }))
    }

    async fn pin_info_ix(
        &self,
        request: Request<api_node::PinInfoIxRequest>,
    ) -> Result<Response<api_node::PinInfoIxResponse>, Status> {
        let request = request.into_inner();
        let h = handle(
            "ApiNode.pinInfoIx",
            "objectPtr",
            request.object_ptr.as_ref(),
        )?;
        self.read("ApiNode.pinInfoIx", |doc| {
            doc.pin(h, u64::from(request.index))
        })?;
        Ok(Response::new(api_node::PinInfoIxResponse {
            result: Some(Document::pin_info_ref(h, request.index as usize)),
        }))
    }

    async fn connect_to_ix(
        &self,
        request: Request<api_node::ConnectToIxRequest>,
    ) -> Result<Response<()>, Status> {
        let request = request.into_inner();
        let h = handle(
            "ApiNode.connectToIx",
            "objectPtr",
            request.object_ptr.as_ref(),
        )?;
        // No source, or handle 0, disconnects the pin.
        let source = request.source_node.map(|s| s.handle).filter(|s| *s != 0);
        self.edit("ApiNode.connectToIx", |doc| {
            doc.connect(
                h,
                u64::from(request.pin_idx),
                source,
                request.do_cycle_check,
            )
        })?;
        Ok(Response::new(()))
    }

    async fn connected_node(
        &self,
        request: Request<api_node::ConnectedNodeRequest>,
    ) -> Result<Response<api_node::ConnectedNodeResponse>, Status> {
        let request = request.into_inner();
        let h = handle(
            "ApiNode.connectedNode",
            "objectPtr",
            request.object_ptr.as_ref(),
        )?;
        let result = self.read("ApiNode.connectedNode", |doc| {
            let index = doc.pin_index(h, request.pin_id)?;
            let (_, link) = doc.pin(h, index as u64)?;
            Ok(link.map_or_else(Document::none_ref, |l| doc.item_ref(l)))
        })?;
        Ok(Response::new(api_node::ConnectedNodeResponse {
            result: Some(result),
        }))
    }

    async fn connected_node_ix(
        &self,
        request: Request<api_node::ConnectedNodeIxRequest>,
    ) -> Result<Response<api_node::ConnectedNodeIxResponse>, Status> {
        let request = request.into_inner();
        let h = handle(
            "ApiNode.connectedNodeIx",
            "objectPtr",
            request.object_ptr.as_ref(),
        )?;
        let result = self.read("ApiNode.connectedNodeIx", |doc| {
            let (_, link) = doc.pin(h, u64::from(request.pin_ix))?;
            Ok(link.map_or_else(Document::none_ref, |l| doc.item_ref(l)))
        })?;
        Ok(Response::new(api_node::ConnectedNodeIxResponse {
            result: Some(result),
        }))
    }

    async fn destination_nodes(
        &self,
        request: Request<api_node::DestinationNodesRequest>,
    ) -> Result<Response<api_node::DestinationNodesResponse>, Status> {
        let h = handle(
            "ApiNode.destinationNodes",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        let names = self.read("ApiNode.destinationNodes", |doc| {
            doc.node(h)?;
            Ok(doc
                .destinations(h)
                .into_iter()
                .map(|(_, pin)| pin.to_owned())
                .collect::<Vec<_>>())
        })?;
        Ok(Response::new(api_node::DestinationNodesResponse {
            nodes: Some(Document::node_array_ref(h)),
            pin_names: Some(api::StringArrayT { data: names }),
        }))
    }

    async fn get_pin_value_by_pin_id(
        &self,
        request: Request<api_node::GetPinValueByIdRequest>,
    ) -> Result<Response<api_node::GetPinValueByXResponse>, Status> {
        const METHOD: &str = "ApiNode.getPinValueByPinID";
        let request = request.into_inner();
        let h = handle(METHOD, "item_ref", request.item_ref.as_ref())?;
        let index = self.read(METHOD, |doc| doc.pin_index(h, request.pin_id))?;
        self.pin_value(METHOD, h, index, request.expected_type)
    }

    async fn get_pin_value_by_ix(
        &self,
        request: Request<api_node::GetPinValueByIxRequest>,
    ) -> Result<Response<api_node::GetPinValueByXResponse>, Status> {
        let request = request.into_inner();
        let h = handle(
            "ApiNode.getPinValueByIx",
            "item_ref",
            request.item_ref.as_ref(),
        )?;
        self.pin_value(
            "ApiNode.getPinValueByIx",
            h,
            request.index as usize,
            request.expected_type,
        )
    }

    async fn set_pin_value_by_pin_id(
        &self,
        request: Request<api_node::SetPinValueByIdRequest>,
    ) -> Result<Response<api_node::SetPinValueResponse>, Status> {
        const METHOD: &str = "ApiNode.setPinValueByPinID";
        let request = request.into_inner();
        let h = handle(METHOD, "item_ref", request.item_ref.as_ref())?;
        let value = values::pin_by_id_in(request.value)
            .map_err(|why| Status::invalid_argument(format!("{METHOD}: {why}")))?;
        let index = self.read(METHOD, |doc| doc.pin_index(h, request.pin_id))?;
        self.set_pin_value(METHOD, h, index, value)
    }

    async fn set_pin_value_by_ix(
        &self,
        request: Request<api_node::SetPinValueByIxRequest>,
    ) -> Result<Response<api_node::SetPinValueResponse>, Status> {
        const METHOD: &str = "ApiNode.setPinValueByIx";
        let request = request.into_inner();
        let h = handle(METHOD, "item_ref", request.item_ref.as_ref())?;
        let value = values::pin_by_ix_in(request.value)
            .map_err(|why| Status::invalid_argument(format!("{METHOD}: {why}")))?;
        self.set_pin_value(METHOD, h, request.index as usize, value)
    }
}

impl NodeServices {
    fn pin_value(
        &self,
        method: &str,
        h: u64,
        index: usize,
        expected: i32,
    ) -> Result<Response<api_node::GetPinValueByXResponse>, Status> {
        let (spec, value) = self.read(method, |doc| doc.pin_value(h, index))?;
        let shape = match Shape::of_pin_type(expected) {
            Shape::Natural => values::pin_shape(spec.kind),
            other => other,
        };
        let out = values::shape(value, shape).map_err(|why| {
            Status::invalid_argument(format!("{method}: pin {} of node {h} {why}", spec.name))
        })?;
        Ok(Response::new(api_node::GetPinValueByXResponse {
            value: Some(values::pin_out(out)),
        }))
    }

    fn set_pin_value(
        &self,
        method: &str,
        h: u64,
        index: usize,
        value: crate::nodes::Value,
    ) -> Result<Response<api_node::SetPinValueResponse>, Status> {
        self.edit(method, |doc| {
            let (spec, _) = doc.pin(h, index as u64)?;
            let value = match spec.kind {
                PinKind::Link(_) => value,
                kind => values::for_pin(kind, value),
            };
            doc.set_pin_value(h, index, value)
        })?;
        Ok(Response::new(api_node::SetPinValueResponse {
            success: true,
            error_message: String::new(),
        }))
    }
}

fn category(out_type: api::NodePinType) -> &'static str {
    use api::NodePinType as T;
    match out_type {
        T::PtCamera => "Cameras",
        T::PtEnvironment => "Environments",
        T::PtKernel => "Kernels",
        T::PtMaterial => "Materials",
        T::PtEmission => "Emission",
        T::PtGeometry => "Geometry",
        T::PtTransform => "Transforms",
        T::PtTexture => "Textures",
        T::PtFloat | T::PtInt => "Values",
        T::PtRendertarget => "Render targets",
        T::PtFilmSettings => "Film settings",
        _ => "Other",
    }
}

#[tonic::async_trait]
impl ApiNodePinInfoExService for NodeServices {
    async fn get_api_node_pin_info(
        &self,
        request: Request<api_node_pin_info_ex::GetNodePinInfoRequest>,
    ) -> Result<Response<api_node_pin_info_ex::GetNodePinInfoResponse>, Status> {
        const METHOD: &str = "ApiNodePinInfoEx.getApiNodePinInfo";
        let h = handle(
            METHOD,
            "nodePinInfoRef",
            request.get_ref().node_pin_info_ref.as_ref(),
        )?;
        let (node, index) = self.read(METHOD, |doc| match doc.target(h)? {
            crate::nodes::Target::PinInfo(node, index) => Ok((node, index)),
            _ => Err(NodeError::WrongKind {
                handle: h,
                expected: "a pin info (from ApiNode.pinInfoIx)",
                actual: "another object",
            }),
        })?;
        let (spec, _) = self.read(METHOD, |doc| doc.pin(node, index as u64))?;
        Ok(Response::new(
            api_node_pin_info_ex::GetNodePinInfoResponse {
                success: true,
                node_pin_info: Some(pin_info(spec)),
            },
        ))
    }
}

/// A pin's description, with the bounds of its kind.
fn pin_info(spec: &catalog::PinSpec) -> api::ApiNodePinInfo {
    use api::api_float_pin_info::ApiFloatPinInfoDimInfo;
    use api::api_int_pin_info::ApiIntPinInfoDimInfo;
    const AXES: [&str; 3] = ["x", "y", "z"];
    let mut info = api::ApiNodePinInfo {
        id: spec.id as i32,
        r#type: spec.kind.pin_type() as i32,
        static_name: spec.name.to_owned(),
        static_label: spec.label.to_owned(),
        description: spec.description.to_owned(),
        default_node_type: spec.kind.value_node().map_or(0, |t| t as i32),
        ..Default::default()
    };
    match spec.kind {
        PinKind::Float {
            dims,
            min,
            max,
            default,
        } => {
            info.float_info = Some(api::ApiFloatPinInfo {
                is_valid: true,
                dim_count: dims as u32,
                dim_infos: AXES
                    .iter()
                    .take(dims)
                    .map(|axis| ApiFloatPinInfoDimInfo {
                        name: (*axis).to_owned(),
                        min_value: min,
                        max_value: max,
                        slider_min_value: min,
                        slider_max_value: max,
                        slider_step: 0.0,
                    })
                    .collect(),
                default_value: Some(api::Float4 {
                    x: default[0],
                    y: default[1],
                    z: default[2],
                    w: 0.0,
                }),
                use_sliders: dims == 1,
                ..Default::default()
            });
        }
        PinKind::Int {
            dims,
            min,
            max,
            default,
        } => {
            info.int_info = Some(api::ApiIntPinInfo {
                is_valid: true,
                dim_count: dims as u32,
                dim_infos: AXES
                    .iter()
                    .take(dims)
                    .map(|axis| ApiIntPinInfoDimInfo {
                        name: (*axis).to_owned(),
                        min_value: min,
                        max_value: max,
                        slider_min_value: min,
                        slider_max_value: max,
                        slider_step: 1,
                    })
                    .collect(),
                default_value: Some(api::Int324 {
                    x: default[0],
                    y: default[1],
                    z: 0,
                    w: 0,
                }),
                ..Default::default()
            });
        }
        PinKind::Resolution { default } => {
            let max = octaneweb_pathtracer::MAX_DIMENSION as i32;
            info.int_info = Some(api::ApiIntPinInfo {
                is_valid: true,
                dim_count: 2,
                dim_infos: ["width", "height"]
                    .iter()
                    .map(|axis| ApiIntPinInfoDimInfo {
                        name: (*axis).to_owned(),
                        min_value: 1,
                        max_value: max,
                        slider_min_value: 1,
                        slider_max_value: max,
                        slider_step: 1,
                    })
                    .collect(),
                default_value: Some(api::Int324 {
                    x: default[0],
                    y: default[1],
                    z: 0,
                    w: 0,
                }),
                ..Default::default()
            });
        }
        PinKind::Rgb { default } => {
            info.float_info = Some(api::ApiFloatPinInfo {
                is_valid: true,
                dim_count: 3,
                dim_infos: ["r", "g", "b"]
                    .iter()
                    .map(|axis| ApiFloatPinInfoDimInfo {
                        name: (*axis).to_owned(),
                        min_value: 0.0,
                        max_value: 1.0,
                        slider_min_value: 0.0,
                        slider_max_value: 1.0,
                        slider_step: 0.0,
                    })
                    .collect(),
                default_value: Some(api::Float4 {
                    x: default[0],
                    y: default[1],
                    z: default[2],
                    w: 0.0,
                }),
                is_color: true,
                ..Default::default()
            });
            info.tex_info = Some(api::ApiTexturePinInfo {
                is_valid: true,
                min_value: 0.0,
                max_value: 1.0,
                slider_min_value: 0.0,
                slider_max_value: 1.0,
                default_value: Some(api::Float4 {
                    x: default[0],
                    y: default[1],
                    z: default[2],
                    w: 0.0,
                }),
                ..Default::default()
            });
        }
        PinKind::Grey { min, max, default } => {
            info.tex_info = Some(api::ApiTexturePinInfo {
                is_valid: true,
                min_value: min,
                max_value: max,
                slider_min_value: min,
                slider_max_value: max,
                default_value: Some(api::Float4 {
                    x: default,
                    y: default,
                    z: default,
                    w: 0.0,
                }),
                ..Default::default()
            });
        }
        PinKind::Link(_) => {}
    }
    info
}

#[tonic::async_trait]
impl ApiNodeGraphService for NodeServices {
    async fn get_owned_items(
        &self,
        request: Request<api_node_graph::GetOwnedItemsRequest>,
    ) -> Result<Response<api_node_graph::GetOwnedItemsResponse>, Status> {
        let h = handle(
            "ApiNodeGraph.getOwnedItems",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        let list = self.read("ApiNodeGraph.getOwnedItems", |doc| {
            doc.graph(h)?;
            Ok(doc.item_array_ref(h))
        })?;
        Ok(Response::new(api_node_graph::GetOwnedItemsResponse {
            list: Some(list),
        }))
    }

    async fn info1(
        &self,
        request: Request<api_node_graph::InfoRequest>,
    ) -> Result<Response<api_node_graph::InfoResponse>, Status> {
        let h = handle(
            "ApiNodeGraph.info1",
            "objectPtr",
            request.get_ref().object_ptr.as_ref(),
        )?;
        let info = self.read("ApiNodeGraph.info1", |doc| {
            let (item, graph) = doc.graph(h)?;
            Ok(api::ApiNodeGraphInfo {
                r#type: graph.graph_type as i32,
                description: "A graph of nodes.".into(),
                out_type: graph.out_type as i32,
                category: "Graphs".into(),
                default_name: item.name.clone(),
                is_inspectable: true,
                ..Default::default()
            })
        })?;
        Ok(Response::new(api_node_graph::InfoResponse {
            result: Some(info),
        }))
    }

    async fn copy_item_tree(
        &self,
        request: Request<api_node_graph::CopyItemTreeRequest>,
    ) -> Result<Response<api_node_graph::CopyItemTreeResponse>, Status> {
        let request = request.into_inner();
        let destination = handle(
            "ApiNodeGraph.copyItemTree",
            "objectPtr",
            request.object_ptr.as_ref(),
        )?;
        let source = handle(
            "ApiNodeGraph.copyItemTree",
            "rootItem",
            request.root_item.as_ref(),
        )?;
        let copy = self.edit("ApiNodeGraph.copyItemTree", |doc| {
            let copy = doc.copy_item_tree(destination, source)?;
            Ok(doc.item_ref(copy))
        })?;
        Ok(Response::new(api_node_graph::CopyItemTreeResponse {
            result: Some(copy),
        }))
    }
}

#[tonic::async_trait]
impl ApiProjectManagerService for NodeServices {
    async fn root_node_graph(
        &self,
        _request: Request<api_project_manager::RootNodeGraphRequest>,
    ) -> Result<Response<api_project_manager::RootNodeGraphResponse>, Status> {
        let doc = self.shared.document();
        Ok(Response::new(api_project_manager::RootNodeGraphResponse {
            result: Some(doc.item_ref(doc.root())),
        }))
    }

    async fn get_current_project(
        &self,
        _request: Request<api_project_manager::GetCurrentProjectRequest>,
    ) -> Result<Response<api_project_manager::GetCurrentProjectResponse>, Status> {
        Ok(Response::new(
            api_project_manager::GetCurrentProjectResponse {
                result: self.shared.document().project.clone(),
            },
        ))
    }

    async fn reset_project(
        &self,
        _request: Request<api_project_manager::ResetProjectRequest>,
    ) -> Result<Response<api_project_manager::ResetProjectResponse>, Status> {
        self.shared.reset_project()?;
        Ok(Response::new(api_project_manager::ResetProjectResponse {
            result: true,
        }))
    }

    async fn load_project(
        &self,
        request: Request<api_project_manager::LoadProjectRequest>,
    ) -> Result<Response<api_project_manager::LoadProjectResponse>, Status> {
        self.shared
            .load_project(&request.get_ref().project_path)
            .await?;
        Ok(Response::new(api_project_manager::LoadProjectResponse {
            result: true,
            callback_id: 0,
        }))
    }

    async fn save_project(
        &self,
        _request: Request<api_project_manager::SaveProjectRequest>,
    ) -> Result<Response<api_project_manager::SaveProjectResponse>, Status> {
        let path = self.shared.document().project.clone();
        if path.is_empty() {
            return Err(Status::failed_precondition(
                "ApiProjectManager.saveProject: the project has no file yet; use saveProjectAs",
            ));
        }
        self.shared
            .save_project("ApiProjectManager.saveProject", &path)
            .await?;
        Ok(Response::new(api_project_manager::SaveProjectResponse {
            result: true,
        }))
    }

    async fn save_project_as(
        &self,
        request: Request<api_project_manager::SaveProjectAsRequest>,
    ) -> Result<Response<api_project_manager::SaveProjectAsResponse>, Status> {
        self.shared
            .save_project("ApiProjectManager.saveProjectAs", &request.get_ref().path)
            .await?;
        Ok(Response::new(api_project_manager::SaveProjectAsResponse {
            result: true,
        }))
    }
}

#[tonic::async_trait]
impl ApiChangeManagerService for NodeServices {
    /// Edits take effect as they are made; `update` has nothing left to do.
    async fn update(
        &self,
        _request: Request<api_change_manager::UpdateRequest>,
    ) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }
}

#[tonic::async_trait]
impl ApiInfoService for NodeServices {
    async fn octane_version(
        &self,
        _request: Request<api_info::OctaneVersionRequest>,
    ) -> Result<Response<api_info::OctaneVersionResponse>, Status> {
        Ok(Response::new(api_info::OctaneVersionResponse {
            result: OCTANE_VERSION,
        }))
    }

    async fn octane_name(
        &self,
        _request: Request<api_info::OctaneNameRequest>,
    ) -> Result<Response<api_info::OctaneNameResponse>, Status> {
        Ok(Response::new(api_info::OctaneNameResponse {
            result: format!(
                "octaneweb reference render server {}",
                env!("CARGO_PKG_VERSION")
            ),
        }))
    }
}
