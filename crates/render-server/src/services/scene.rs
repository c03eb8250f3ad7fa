//! The read-only scene graph: `ApiProjectManagerService`, `ApiNodeGraphService`,
//! `ApiItemArrayService` and `ApiItemService` over [`crate::scene_graph::SceneGraph`].

use std::sync::Arc;

use octaneweb_proto::octaneapi::api_item::{
    IsGraphRequest, IsGraphResponse, NameRequest, NameResponse, OutTypeRequest, OutTypeResponse,
};
use octaneweb_proto::octaneapi::api_item_array::{
    GetRequest, GetResponse, SizeRequest, SizeResponse,
};
use octaneweb_proto::octaneapi::api_item_array_service_server::ApiItemArrayService;
use octaneweb_proto::octaneapi::api_item_service_server::ApiItemService;
use octaneweb_proto::octaneapi::api_node_graph::{GetOwnedItemsRequest, GetOwnedItemsResponse};
use octaneweb_proto::octaneapi::api_node_graph_service_server::ApiNodeGraphService;
use octaneweb_proto::octaneapi::api_project_manager::{
    RootNodeGraphRequest, RootNodeGraphResponse,
};
use octaneweb_proto::octaneapi::api_project_manager_service_server::ApiProjectManagerService;
use tonic::{Request, Response, Status};

use super::Shared;
use crate::scene_graph::{Expect, Kind};

/// Implements all four scene-graph services.
#[derive(Clone)]
pub(crate) struct SceneService {
    shared: Arc<Shared>,
}

impl SceneService {
    pub fn new(shared: Arc<Shared>) -> Self {
        SceneService { shared }
    }
}

#[tonic::async_trait]
impl ApiProjectManagerService for SceneService {
    async fn root_node_graph(
        &self,
        _request: Request<RootNodeGraphRequest>,
    ) -> Result<Response<RootNodeGraphResponse>, Status> {
        Ok(Response::new(RootNodeGraphResponse {
            result: Some(self.shared.scene_graph.root_ref()),
        }))
    }
}

#[tonic::async_trait]
impl ApiNodeGraphService for SceneService {
    async fn get_owned_items(
        &self,
        request: Request<GetOwnedItemsRequest>,
    ) -> Result<Response<GetOwnedItemsResponse>, Status> {
        let graph = &self.shared.scene_graph;
        let owner = graph.resolve(
            "ApiNodeGraph.getOwnedItems",
            request.get_ref().object_ptr.as_ref(),
            Expect::Graph,
        )?;
        let list = owner
            .owned_items
            .and_then(|handle| graph.get(handle))
            .map(|array| array.object_ref())
            .ok_or_else(|| Status::internal(format!("graph {} has no item array", owner.handle)))?;
        Ok(Response::new(GetOwnedItemsResponse { list: Some(list) }))
    }
}

#[tonic::async_trait]
impl ApiItemArrayService for SceneService {
    async fn size(&self, request: Request<SizeRequest>) -> Result<Response<SizeResponse>, Status> {
        let array = self.shared.scene_graph.resolve(
            "ApiItemArray.size",
            request.get_ref().object_ptr.as_ref(),
            Expect::ItemArray,
        )?;
        Ok(Response::new(SizeResponse {
            result: u32::try_from(array.items.len()).unwrap_or(u32::MAX),
        }))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let graph = &self.shared.scene_graph;
        let request = request.get_ref();
        let array = graph.resolve(
            "ApiItemArray.get",
            request.object_ptr.as_ref(),
            Expect::ItemArray,
        )?;
        let index = request.index;
        let item = usize::try_from(index)
            .ok()
            .and_then(|i| array.items.get(i))
            .and_then(|&handle| graph.get(handle))
            .ok_or_else(|| {
                Status::out_of_range(format!(
                    "ApiItemArray.get: index {index} is out of range for an array of size {}",
                    array.items.len()
                ))
            })?;
        Ok(Response::new(GetResponse {
            result: Some(item.object_ref()),
        }))
    }
}

#[tonic::async_trait]
impl ApiItemService for SceneService {
    async fn name(&self, request: Request<NameRequest>) -> Result<Response<NameResponse>, Status> {
        let item = self.shared.scene_graph.resolve(
            "ApiItem.name",
            request.get_ref().object_ptr.as_ref(),
            Expect::Item,
        )?;
        Ok(Response::new(NameResponse {
            result: item.name.clone(),
        }))
    }

    async fn is_graph(
        &self,
        request: Request<IsGraphRequest>,
    ) -> Result<Response<IsGraphResponse>, Status> {
        let item = self.shared.scene_graph.resolve(
            "ApiItem.isGraph",
            request.get_ref().object_ptr.as_ref(),
            Expect::Item,
        )?;
        Ok(Response::new(IsGraphResponse {
            result: matches!(item.kind, Kind::Graph | Kind::RootGraph),
        }))
    }

    async fn out_type(
        &self,
        request: Request<OutTypeRequest>,
    ) -> Result<Response<OutTypeResponse>, Status> {
        let item = self.shared.scene_graph.resolve(
            "ApiItem.outType",
            request.get_ref().object_ptr.as_ref(),
            Expect::Item,
        )?;
        Ok(Response::new(OutTypeResponse {
            result: item.out_type as i32,
        }))
    }
}
