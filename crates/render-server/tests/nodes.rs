//! Octane's node system on the reference server, over gRPC with tonic's generated clients:
//! the walk Octane's browser clients make, pin edits that show in the render, creating,
//! linking and destroying nodes, projects, the render engine's settings, and bad input.

mod common;

use std::collections::{BTreeMap, VecDeque};

use common::*;
use octaneweb_proto::octaneapi::api_info::OctaneNameRequest;
use octaneweb_proto::octaneapi::api_info_service_client::ApiInfoServiceClient;
use octaneweb_proto::octaneapi::api_item::{
    AttrInfoRequest, DestroyRequest, GetValueByIdRequest, IsGraphRequest, NameRequest,
    OutTypeRequest,
};
use octaneweb_proto::octaneapi::api_item_array::{GetRequest, SizeRequest};
use octaneweb_proto::octaneapi::api_item_array_service_client::ApiItemArrayServiceClient;
use octaneweb_proto::octaneapi::api_item_service_client::ApiItemServiceClient;
use octaneweb_proto::octaneapi::api_node::{
    get_pin_value_by_x_response, set_pin_value_by_id_request, ConnectToIxRequest,
    ConnectedNodeIxRequest, CreateRequest, GetPinValueByIdRequest, InfoRequest, PinCountRequest,
    PinInfoIxRequest, SetPinValueByIdRequest,
};
use octaneweb_proto::octaneapi::api_node_graph::{GetOwnedItemsRequest, InfoRequest as GraphInfo};
use octaneweb_proto::octaneapi::api_node_graph_service_client::ApiNodeGraphServiceClient;
use octaneweb_proto::octaneapi::api_node_pin_info_ex::GetNodePinInfoRequest;
use octaneweb_proto::octaneapi::api_node_pin_info_ex_service_client::ApiNodePinInfoExServiceClient;
use octaneweb_proto::octaneapi::api_node_service_client::ApiNodeServiceClient;
use octaneweb_proto::octaneapi::api_project_manager::{
    GetCurrentProjectRequest, LoadProjectRequest, ResetProjectRequest, RootNodeGraphRequest,
    SaveProjectAsRequest,
};
use octaneweb_proto::octaneapi::api_project_manager_service_client::ApiProjectManagerServiceClient;
use octaneweb_proto::octaneapi::api_render_engine::{
    ClayModeRequest, DeviceUsesHardwareRayTracingRequest, GetDeviceNameRequest,
    GetGeometryStatisticsRequest, GetMemoryUsageRequest, GetRenderRegionRequest,
    GetRenderStatisticsRequest, GetRenderTargetNodeRequest, GetSubSampleModeRequest,
    PauseRenderingRequest, PickRequest, RestartRenderingRequest, SetClayModeRequest,
    SetRenderRegionRequest, SetSubSampleModeRequest, StopRenderingRequest,
};
use octaneweb_proto::octaneapi::api_render_engine_service_client::ApiRenderEngineServiceClient;
use octaneweb_proto::octaneapi::stream_callback_request::Payload;
use octaneweb_proto::octaneapi::{
    AttributeId, AttributeType, AttributeTypeId, ClayMode, Float3, NodeType, ObjectRef, PinId,
    PinTypeId, RenderState, SubSampleMode, Uint322,
};
use octaneweb_render_server::RenderServerConfig;
use tonic::transport::Channel;
use tonic::Code;

/// Clients of every node-system service on one channel.
struct Octane {
    projects: ApiProjectManagerServiceClient<Channel>,
    graphs: ApiNodeGraphServiceClient<Channel>,
    arrays: ApiItemArrayServiceClient<Channel>,
    items: ApiItemServiceClient<Channel>,
    nodes: ApiNodeServiceClient<Channel>,
    pin_infos: ApiNodePinInfoExServiceClient<Channel>,
}

fn r(handle: u64) -> Option<ObjectRef> {
    // The type is what a client would send for the service; the server goes by handle.
    Some(ObjectRef { handle, r#type: 16 })
}

impl Octane {
    fn new(channel: &Channel) -> Octane {
        Octane {
            projects: ApiProjectManagerServiceClient::new(channel.clone()),
            graphs: ApiNodeGraphServiceClient::new(channel.clone()),
            arrays: ApiItemArrayServiceClient::new(channel.clone()),
            items: ApiItemServiceClient::new(channel.clone()),
            nodes: ApiNodeServiceClient::new(channel.clone()),
            pin_infos: ApiNodePinInfoExServiceClient::new(channel.clone()),
        }
    }

    async fn root(&mut self) -> u64 {
        self.projects
            .root_node_graph(RootNodeGraphRequest {})
            .await
            .expect("rootNodeGraph")
            .into_inner()
            .result
            .expect("root")
            .handle
    }

    async fn owned(&mut self, graph: u64) -> Vec<u64> {
        let list = self
            .graphs
            .get_owned_items(GetOwnedItemsRequest {
                object_ptr: r(graph),
            })
            .await
            .expect("getOwnedItems")
            .into_inner()
            .list
            .expect("list");
        let size = self
            .arrays
            .size(SizeRequest {
                object_ptr: Some(list),
            })
            .await
            .expect("size")
            .into_inner()
            .result;
        let mut items = Vec::new();
        for index in 0..size {
            let item = self
                .arrays
                .get(GetRequest {
                    object_ptr: Some(list),
                    index,
                })
                .await
                .expect("get")
                .into_inner()
                .result
                .expect("result");
            items.push(item.handle);
        }
        items
    }

    async fn name(&mut self, item: u64) -> String {
        self.items
            .name(NameRequest {
                object_ptr: r(item),
            })
            .await
            .expect("name")
            .into_inner()
            .result
    }

    /// The item named `name` in graph `graph`.
    async fn find(&mut self, graph: u64, name: &str) -> u64 {
        for item in self.owned(graph).await {
            if self.name(item).await == name {
                return item;
            }
        }
        panic!("no item {name:?} in graph {graph}");
    }

    async fn find_path(&mut self, path: &[&str]) -> u64 {
        let mut at = self.root().await;
        for name in path {
            at = self.find(at, name).await;
        }
        at
    }

    async fn pin_float3(&mut self, node: u64, pin: PinId) -> [f32; 3] {
        let value = self
            .nodes
            .get_pin_value_by_pin_id(GetPinValueByIdRequest {
                item_ref: r(node),
                pin_id: pin as i32,
                expected_type: PinTypeId::PinIdFloat3 as i32,
            })
            .await
            .expect("getPinValueByPinID")
            .into_inner()
            .value;
        match value {
            Some(get_pin_value_by_x_response::Value::Float3Value(v)) => [v.x, v.y, v.z],
            other => panic!("expected float3, got {other:?}"),
        }
    }

    async fn set_pin(
        &mut self,
        node: u64,
        pin: PinId,
        value: set_pin_value_by_id_request::Value,
    ) -> Result<(), tonic::Status> {
        self.nodes
            .set_pin_value_by_pin_id(SetPinValueByIdRequest {
                item_ref: r(node),
                pin_id: pin as i32,
                evaluate: Some(true),
                value: Some(value),
            })
            .await
            .map(|_| ())
    }

    async fn connect(&mut self, node: u64, pin: u32, source: u64) -> Result<(), tonic::Status> {
        self.nodes
            .connect_to_ix(ConnectToIxRequest {
                object_ptr: r(node),
                pin_idx: pin,
                source_node: Some(ObjectRef {
                    handle: source,
                    r#type: 17,
                }),
                evaluate: true,
                do_cycle_check: true,
            })
            .await
            .map(|_| ())
    }

    async fn connected(&mut self, node: u64, pin: u32) -> u64 {
        self.nodes
            .connected_node_ix(ConnectedNodeIxRequest {
                object_ptr: r(node),
                pin_ix: pin,
                enter_wrapper_node: true,
            })
            .await
            .expect("connectedNodeIx")
            .into_inner()
            .result
            .expect("a result even for an empty pin")
            .handle
    }
}

fn float3(v: [f32; 3]) -> set_pin_value_by_id_request::Value {
    set_pin_value_by_id_request::Value::Float3Value(Float3 {
        x: v[0],
        y: v[1],
        z: v[2],
    })
}

fn float(x: f32) -> set_pin_value_by_id_request::Value {
    set_pin_value_by_id_request::Value::FloatValue(x)
}

/// The walk octaneWeb and octaneWebR make, every call checked: root graph, owned items, and
/// for each item its name, type and info; for nodes every pin's connected node and pin info,
/// recursively; for value nodes the `A_VALUE` attribute.
#[tokio::test]
async fn the_scene_walks_like_octanes_clients_walk_it() {
    let server = TestServer::start(test_config()).await;
    let mut octane = Octane::new(&server.channel);
    let root = octane.root().await;
    let mut seen: BTreeMap<u64, (String, bool)> = BTreeMap::new();
    let mut queue: VecDeque<u64> = VecDeque::from([root]);
    let mut calls = 1;
    let mut values = 0;
    while let Some(item) = queue.pop_front() {
        if seen.contains_key(&item) {
            continue;
        }
        let name = octane.name(item).await;
        octane
            .items
            .out_type(OutTypeRequest {
                object_ptr: r(item),
            })
            .await
            .expect("outType");
        let is_graph = octane
            .items
            .is_graph(IsGraphRequest {
                object_ptr: r(item),
            })
            .await
            .expect("isGraph")
            .into_inner()
            .result;
        calls += 3;
        seen.insert(item, (name.clone(), is_graph));
        if is_graph {
            octane
                .graphs
                .info1(GraphInfo {
                    object_ptr: r(item),
                })
                .await
                .expect("info1");
            let owned = octane.owned(item).await;
            calls += 3 + owned.len();
            queue.extend(owned);
            continue;
        }
        let info = octane
            .nodes
            .info(InfoRequest {
                object_ptr: r(item),
            })
            .await
            .expect("info")
            .into_inner()
            .result
            .expect("node info");
        assert_ne!(info.r#type, NodeType::NtUnknown as i32, "{name}");
        let pins = octane
            .nodes
            .pin_count(PinCountRequest {
                object_ptr: r(item),
            })
            .await
            .expect("pinCount")
            .into_inner()
            .result;
        calls += 2;
        for index in 0..pins {
            let linked = octane.connected(item, index).await;
            let pin_info = octane
                .nodes
                .pin_info_ix(PinInfoIxRequest {
                    object_ptr: r(item),
                    index,
                })
                .await
                .expect("pinInfoIx")
                .into_inner()
                .result
                .expect("pin info ref");
            let described = octane
                .pin_infos
                .get_api_node_pin_info(GetNodePinInfoRequest {
                    node_pin_info_ref: Some(pin_info),
                })
                .await
                .expect("getApiNodePinInfo")
                .into_inner();
            assert!(described.success);
            let described = described.node_pin_info.expect("pin info");
            assert!(!described.static_name.is_empty() && !described.static_label.is_empty());
            assert_ne!(described.id, PinId::PUnknown as i32, "{name} pin {index}");
            calls += 3;
            if linked != 0 {
                queue.push_back(linked);
            }
        }
        if pins == 0 {
            let attribute = octane
                .items
                .attr_info(AttrInfoRequest {
                    object_ptr: r(item),
                    id: AttributeId::AValue as i32,
                })
                .await
                .expect("attrInfo")
                .into_inner()
                .result
                .expect("attribute info");
            calls += 1;
            let expected = match AttributeType::try_from(attribute.r#type) {
                Ok(AttributeType::AtFloat3) => AttributeTypeId::AttrIdFloat3,
                Ok(AttributeType::AtInt3) => AttributeTypeId::AttrIdInt3,
                Ok(AttributeType::AtFloat) => AttributeTypeId::AttrIdFloat,
                other => panic!("{name}: a node without pins is a value node, got {other:?}"),
            };
            let value = octane
                .items
                .get_value_by_attr_id(GetValueByIdRequest {
                    item_ref: r(item),
                    attribute_id: AttributeId::AValue as i32,
                    expected_type: expected as i32,
                })
                .await
                .expect("getValueByAttrID")
                .into_inner();
            assert!(value.value.is_some(), "{name}");
            values += 1;
            calls += 1;
        }
    }
    let nodes = seen.values().filter(|(_, graph)| !graph).count();
    assert!(nodes >= 30, "{nodes} nodes reached: {seen:?}");
    assert!(values >= 20, "{values} value nodes");
    assert!(calls > 200, "{calls} calls, every one succeeded");
    for expected in [
        "Render target",
        "Camera",
        "Daylight environment",
        "Red matte",
        "Red sphere",
    ] {
        assert!(
            seen.values().any(|(n, _)| n == expected),
            "{expected} reached"
        );
    }
    server.shutdown().await.expect("clean shutdown");
}

/// An image at change level above `after`, fully sampled.
async fn settled(
    server: &TestServer,
    stream: &mut tonic::Streaming<octaneweb_proto::octaneapi::StreamCallbackRequest>,
    after: u64,
    spp: u32,
) -> Vec<u8> {
    let mut engine = server.render_engine();
    let image = wait_for_image(stream, &mut engine, |image| {
        change_level(image) > after && image.tonemapped_samples_per_pixel >= spp as f32
    })
    .await;
    pixels(&image).to_vec()
}

#[tokio::test]
async fn a_pin_edit_changes_the_pixels_where_the_material_is_and_nowhere_else() {
    let server = TestServer::start(RenderServerConfig {
        max_samples_per_pixel: Some(2),
        ..test_config()
    })
    .await;
    let mut stream = server.callbacks_gen2().await;
    let mut octane = Octane::new(&server.channel);
    let before = settled(&server, &mut stream, 0, 2).await;
    let level = change_level(&grab(&mut server.render_engine()).await);
    let red = octane.find_path(&["Materials", "Red matte"]).await;
    octane
        .set_pin(red, PinId::PDiffuse, float3([0.05, 0.1, 0.9]))
        .await
        .expect("set the colour");
    assert_eq!(
        octane.pin_float3(red, PinId::PDiffuse).await,
        [0.05, 0.1, 0.9]
    );
    let after = settled(&server, &mut stream, level, 2).await;
    assert_eq!(before.len(), after.len());
    // The renderer seeds each sample by pixel and sample index: pixels whose paths never
    // touch the sphere come out bit for bit the same.
    let mut changed = 0;
    let mut bluer = 0i64;
    for (old, new) in before.chunks_exact(4).zip(after.chunks_exact(4)) {
        if old != new {
            changed += 1;
            bluer +=
                i64::from(new[2]) - i64::from(new[0]) - (i64::from(old[2]) - i64::from(old[0]));
        }
    }
    let total = before.len() / 4;
    assert!(changed > 20, "{changed} pixels changed");
    assert!(
        changed < total / 2,
        "{changed} of {total} pixels changed: more than the sphere"
    );
    assert!(bluer > 0, "the changed pixels turned bluer");
    assert_eq!(
        before[..4],
        after[..4],
        "the sky in the corner is untouched"
    );
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn nodes_are_created_linked_and_destroyed_and_bad_links_are_refused() {
    let server = TestServer::start(test_config()).await;
    let mut octane = Octane::new(&server.channel);
    let materials = octane.find_path(&["Materials"]).await;
    let mesh = octane.find_path(&["Geometry", "Red sphere"]).await;
    let camera = octane.find_path(&["Camera"]).await;
    let original = octane.connected(mesh, 0).await;
    assert_ne!(original, 0);

    let created = octane
        .nodes
        .create(CreateRequest {
            r#type: NodeType::NtMatDiffuse as i32,
            owner_graph: r(materials),
            configure_pins: true,
        })
        .await
        .expect("create")
        .into_inner()
        .result
        .expect("new node")
        .handle;
    assert!(octane.owned(materials).await.contains(&created));
    assert_ne!(
        octane.connected(created, 0).await,
        0,
        "configured pins own value nodes"
    );
    octane
        .set_pin(created, PinId::PDiffuse, float3([0.1, 0.8, 0.1]))
        .await
        .expect("colour");
    octane
        .connect(mesh, 0, created)
        .await
        .expect("link the new material");
    assert_eq!(octane.connected(mesh, 0).await, created);

    let wrong = octane
        .connect(mesh, 0, camera)
        .await
        .expect_err("a camera is no material");
    assert_eq!(wrong.code(), Code::InvalidArgument);
    assert!(
        wrong.message().contains("PT_MATERIAL") && wrong.message().contains("PT_CAMERA"),
        "{}",
        wrong.message()
    );

    // Two placements placing each other: a cycle.
    let geometry = octane.find_path(&["Geometry"]).await;
    let mut placements = Vec::new();
    for _ in 0..2 {
        placements.push(
            octane
                .nodes
                .create(CreateRequest {
                    r#type: NodeType::NtGeoPlacement as i32,
                    owner_graph: r(geometry),
                    configure_pins: true,
                })
                .await
                .expect("create a placement")
                .into_inner()
                .result
                .expect("placement")
                .handle,
        );
    }
    octane
        .connect(placements[0], 1, placements[1])
        .await
        .expect("a places b");
    let cycle = octane
        .connect(placements[1], 1, placements[0])
        .await
        .expect_err("b places a");
    assert_eq!(cycle.code(), Code::FailedPrecondition);
    assert!(cycle.message().contains("cycle"), "{}", cycle.message());

    octane
        .items
        .destroy(DestroyRequest {
            object_ptr: r(created),
        })
        .await
        .expect("destroy");
    assert_eq!(
        octane.connected(mesh, 0).await,
        0,
        "the link went with the node"
    );
    let gone = octane
        .items
        .destroy(DestroyRequest {
            object_ptr: r(created),
        })
        .await
        .expect_err("destroyed twice");
    assert_eq!(gone.code(), Code::NotFound);
    assert!(
        gone.message().contains(&created.to_string()),
        "{}",
        gone.message()
    );
    octane.connect(mesh, 0, original).await.expect("relink");

    let root = octane.root().await;
    let root_gone = octane
        .items
        .destroy(DestroyRequest {
            object_ptr: r(root),
        })
        .await
        .expect_err("the root stays");
    assert_eq!(root_gone.code(), Code::FailedPrecondition);
    let unknown = octane
        .nodes
        .create(CreateRequest {
            r#type: 99_999,
            owner_graph: r(materials),
            configure_pins: true,
        })
        .await
        .expect_err("unknown node type");
    assert_eq!(unknown.code(), Code::FailedPrecondition);
    assert!(unknown.message().contains("99999"), "{}", unknown.message());
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn bad_values_handles_and_indices_get_precise_statuses() {
    let server = TestServer::start(test_config()).await;
    let mut octane = Octane::new(&server.channel);
    let camera = octane.find_path(&["Camera"]).await;
    let render_target = octane.find_path(&["Render target"]).await;

    let missing = octane
        .items
        .name(NameRequest {
            object_ptr: r(987_654_321),
        })
        .await
        .expect_err("no such handle");
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing.message().contains("987654321"),
        "{}",
        missing.message()
    );

    let wide = octane
        .set_pin(camera, PinId::PFov, float(500.0))
        .await
        .expect_err("fov 500");
    assert_eq!(wide.code(), Code::OutOfRange);
    assert!(
        wide.message().contains("fov") && wide.message().contains("179"),
        "{}",
        wide.message()
    );
    let int = octane
        .set_pin(
            camera,
            PinId::PFov,
            set_pin_value_by_id_request::Value::IntValue(3),
        )
        .await
        .expect_err("an integer for a float pin");
    assert_eq!(int.code(), Code::InvalidArgument);
    let text = octane
        .set_pin(
            camera,
            PinId::PFov,
            set_pin_value_by_id_request::Value::StringValue("x".into()),
        )
        .await
        .expect_err("a string");
    assert_eq!(text.code(), Code::InvalidArgument);
    let no_pin = octane
        .set_pin(camera, PinId::PTurbidity, float(3.0))
        .await
        .expect_err("no such pin");
    assert_eq!(no_pin.code(), Code::InvalidArgument);
    assert!(
        no_pin.message().contains("P_TURBIDITY"),
        "{}",
        no_pin.message()
    );
    let link_value = octane
        .nodes
        .get_pin_value_by_pin_id(GetPinValueByIdRequest {
            item_ref: r(render_target),
            pin_id: PinId::PCamera as i32,
            expected_type: 0,
        })
        .await
        .expect_err("a link pin has no value");
    assert_eq!(link_value.code(), Code::InvalidArgument);
    // The camera cannot look at itself: position equal to target is refused by the renderer.
    let target = octane.pin_float3(camera, PinId::PTarget).await;
    let blind = octane
        .set_pin(camera, PinId::PPosition, float3(target))
        .await
        .expect_err("position = target");
    assert_eq!(blind.code(), Code::FailedPrecondition);
    assert_ne!(
        octane.pin_float3(camera, PinId::PPosition).await,
        target,
        "a refused edit changes nothing"
    );

    let index = octane
        .nodes
        .pin_info_ix(PinInfoIxRequest {
            object_ptr: r(camera),
            index: 99,
        })
        .await
        .expect_err("pin 99");
    assert_eq!(index.code(), Code::InvalidArgument);
    assert!(index.message().contains("99"), "{}", index.message());
    let root = octane.root().await;
    let list = octane
        .graphs
        .get_owned_items(GetOwnedItemsRequest {
            object_ptr: r(root),
        })
        .await
        .expect("list")
        .into_inner()
        .list;
    let past = octane
        .arrays
        .get(GetRequest {
            object_ptr: list,
            index: 1000,
        })
        .await
        .expect_err("index 1000");
    assert_eq!(past.code(), Code::OutOfRange);
    let not_info = octane
        .pin_infos
        .get_api_node_pin_info(GetNodePinInfoRequest {
            node_pin_info_ref: r(camera),
        })
        .await
        .expect_err("a node is not a pin info");
    assert_eq!(not_info.code(), Code::InvalidArgument);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_project_saves_resets_and_loads_back_with_notifications() {
    let projects = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(RenderServerConfig {
        project_root: Some(projects.path().to_path_buf()),
        ..test_config()
    })
    .await;
    let mut stream = server.callbacks_gen2().await;
    let mut octane = Octane::new(&server.channel);
    let camera = octane.find_path(&["Camera"]).await;
    let fov = |v: [f32; 3]| v[0];
    let original = fov(octane.pin_float3(camera, PinId::PFov).await);
    octane
        .set_pin(camera, PinId::PFov, float(55.0))
        .await
        .expect("fov 55");
    octane
        .projects
        .save_project_as(SaveProjectAsRequest {
            path: "look.json".into(),
        })
        .await
        .expect("saveProjectAs");
    assert!(projects.path().join("look.json").is_file());

    let reset = octane
        .projects
        .reset_project(ResetProjectRequest { suppress_ui: true })
        .await
        .expect("resetProject")
        .into_inner();
    assert!(reset.result);
    wait_for_project_change(&mut stream).await;
    let camera = octane.find_path(&["Camera"]).await;
    assert_eq!(fov(octane.pin_float3(camera, PinId::PFov).await), original);

    octane
        .projects
        .load_project(LoadProjectRequest {
            project_path: "look.json".into(),
            ..Default::default()
        })
        .await
        .expect("loadProject");
    wait_for_project_change(&mut stream).await;
    let camera = octane.find_path(&["Camera"]).await;
    assert_eq!(fov(octane.pin_float3(camera, PinId::PFov).await), 55.0);
    let current = octane
        .projects
        .get_current_project(GetCurrentProjectRequest {})
        .await
        .expect("getCurrentProject")
        .into_inner()
        .result;
    assert_eq!(current, "look.json");

    let outside = octane
        .projects
        .load_project(LoadProjectRequest {
            project_path: "../look.json".into(),
            ..Default::default()
        })
        .await
        .expect_err("outside the root");
    assert_eq!(outside.code(), Code::PermissionDenied);
    let escape = octane
        .projects
        .save_project_as(SaveProjectAsRequest {
            path: "/tmp/elsewhere.json".into(),
        })
        .await
        .expect_err("an absolute path elsewhere");
    assert_eq!(escape.code(), Code::PermissionDenied);
    let missing = octane
        .projects
        .load_project(LoadProjectRequest {
            project_path: "nope.json".into(),
            ..Default::default()
        })
        .await
        .expect_err("missing file");
    assert_eq!(missing.code(), Code::NotFound);
    let no_folder = octane
        .projects
        .save_project_as(SaveProjectAsRequest {
            path: "studio/look.json".into(),
        })
        .await
        .expect_err("a folder that does not exist");
    assert_eq!(no_folder.code(), Code::NotFound);
    assert!(
        no_folder.message().contains("saveProjectAs") && no_folder.message().contains("folder"),
        "{}",
        no_folder.message()
    );
    std::fs::write(
        projects.path().join("junk.json"),
        b"{\"format\": \"something\"}",
    )
    .expect("write");
    let junk = octane
        .projects
        .load_project(LoadProjectRequest {
            project_path: "junk.json".into(),
            ..Default::default()
        })
        .await
        .expect_err("not a project");
    assert_eq!(junk.code(), Code::InvalidArgument);
    assert!(junk.message().contains("junk.json"), "{}", junk.message());
    // A refused load leaves the scene as it was.
    assert_eq!(fov(octane.pin_float3(camera, PinId::PFov).await), 55.0);
    server.shutdown().await.expect("clean shutdown");
}

async fn wait_for_project_change(
    stream: &mut tonic::Streaming<octaneweb_proto::octaneapi::StreamCallbackRequest>,
) {
    within(async {
        loop {
            let message = stream.message().await.expect("stream").expect("open");
            if let Some(Payload::ProjectManagerChanged(_)) = message.payload {
                return;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn render_engine_settings_statistics_and_devices() {
    let server = TestServer::start(test_config()).await;
    let mut engine = server.render_engine();
    let mut octane = Octane::new(&server.channel);
    let target = engine
        .get_render_target_node(GetRenderTargetNodeRequest {})
        .await
        .expect("getRenderTargetNode")
        .into_inner()
        .result
        .expect("render target");
    assert_eq!(octane.name(target.handle).await, "Render target");

    let name = engine
        .get_device_name(GetDeviceNameRequest { index: 0 })
        .await
        .expect("device 0")
        .into_inner()
        .result;
    assert!(name.contains("CPU"), "{name}");
    let none = engine
        .get_device_name(GetDeviceNameRequest { index: 3 })
        .await
        .expect_err("device 3");
    assert_eq!(none.code(), Code::OutOfRange);
    let memory = engine
        .get_memory_usage(GetMemoryUsageRequest { device_ix: 0 })
        .await
        .expect("memory")
        .into_inner()
        .mem_usage
        .expect("usage");
    assert!(
        memory.used_device_memory > 0 && memory.total_device_memory > memory.used_device_memory
    );
    let hardware_rt = engine
        .device_uses_hardware_ray_tracing(DeviceUsesHardwareRayTracingRequest { index: 0 })
        .await
        .expect("device 0")
        .into_inner()
        .result;
    assert!(
        !hardware_rt,
        "a CPU path tracer has no ray-tracing hardware"
    );
    let none = engine
        .device_uses_hardware_ray_tracing(DeviceUsesHardwareRayTracingRequest { index: 3 })
        .await
        .expect_err("device 3");
    assert_eq!(none.code(), Code::OutOfRange);
    let name = ApiInfoServiceClient::new(server.channel.clone())
        .octane_name(OctaneNameRequest {})
        .await
        .expect("octaneName")
        .into_inner()
        .result;
    assert!(
        name.starts_with("octaneweb reference render server"),
        "{name}"
    );
    let geometry = engine
        .get_geometry_statistics(GetGeometryStatisticsRequest {})
        .await
        .expect("geometry")
        .into_inner()
        .stats
        .expect("stats");
    assert_eq!(geometry.sphere_count, 3);
    assert!(geometry.tri_count > 100, "{geometry:?}");

    engine
        .set_clay_mode(SetClayModeRequest {
            mode: ClayMode::Grey as i32,
        })
        .await
        .expect("clay");
    let clay = engine
        .clay_mode(ClayModeRequest {})
        .await
        .expect("clayMode")
        .into_inner()
        .result;
    assert_eq!(clay, ClayMode::Grey as i32);
    let bad = engine
        .set_clay_mode(SetClayModeRequest { mode: 7 })
        .await
        .expect_err("clay 7");
    assert_eq!(bad.code(), Code::InvalidArgument);

    engine
        .set_sub_sample_mode(SetSubSampleModeRequest {
            mode: SubSampleMode::Subsamplemode4x4 as i32,
        })
        .await
        .expect("4x4");
    let mode = engine
        .get_sub_sample_mode(GetSubSampleModeRequest {})
        .await
        .expect("mode")
        .into_inner()
        .result;
    assert_eq!(mode, SubSampleMode::Subsamplemode4x4 as i32);
    let bad = engine
        .set_sub_sample_mode(SetSubSampleModeRequest { mode: 3 })
        .await
        .expect_err("mode 3");
    assert_eq!(bad.code(), Code::InvalidArgument);

    let corner = |x, y| Some(Uint322 { x, y });
    engine
        .set_render_region(SetRenderRegionRequest {
            active: true,
            region_min: corner(10, 10),
            region_max: corner(40, 30),
            feather_width: 0,
        })
        .await
        .expect("region");
    let region = engine
        .get_render_region(GetRenderRegionRequest {})
        .await
        .expect("region")
        .into_inner();
    assert!(region.active);
    assert_eq!(
        (region.region_min, region.region_max),
        (corner(10, 10), corner(40, 30))
    );
    let outside = engine
        .set_render_region(SetRenderRegionRequest {
            active: true,
            region_min: corner(10, 10),
            region_max: corner(4000, 30),
            feather_width: 0,
        })
        .await
        .expect_err("a region past the image");
    assert_eq!(outside.code(), Code::OutOfRange);
    assert!(
        outside.message().contains("128 x 64"),
        "{}",
        outside.message()
    );

    // The film's resolution pin sizes the render.
    let film = octane.find_path(&["Film settings"]).await;
    octane
        .set_pin(
            film,
            PinId::PResolution,
            set_pin_value_by_id_request::Value::Int2Value(octaneweb_proto::octaneapi::Int322 {
                x: 96,
                y: 48,
            }),
        )
        .await
        .expect("resolution");
    let stats = engine
        .get_render_statistics(GetRenderStatisticsRequest {})
        .await
        .expect("statistics")
        .into_inner()
        .statistics
        .expect("statistics");
    assert_eq!(stats.set_size, Some(Uint322 { x: 96, y: 48 }));
    // The state says what was asked: stopped is not paused.
    engine
        .pause_rendering(PauseRenderingRequest {})
        .await
        .expect("pause");
    assert_eq!(render_state(&mut engine).await, RenderState::RstatePaused);
    engine
        .stop_rendering(StopRenderingRequest {})
        .await
        .expect("stop");
    assert_eq!(render_state(&mut engine).await, RenderState::RstateStopped);
    engine
        .restart_rendering(RestartRenderingRequest {})
        .await
        .expect("restart");
    assert_ne!(render_state(&mut engine).await, RenderState::RstateStopped);
    let tiny = octane
        .set_pin(
            film,
            PinId::PResolution,
            set_pin_value_by_id_request::Value::Int2Value(octaneweb_proto::octaneapi::Int322 {
                x: 0,
                y: 48,
            }),
        )
        .await
        .expect_err("width 0");
    assert_eq!(tiny.code(), Code::OutOfRange);
    server.shutdown().await.expect("clean shutdown");
}

/// The render state `getRenderStatistics` reports.
async fn render_state(engine: &mut ApiRenderEngineServiceClient<Channel>) -> RenderState {
    engine
        .get_render_statistics(GetRenderStatisticsRequest {})
        .await
        .expect("statistics")
        .into_inner()
        .statistics
        .expect("statistics")
        .state()
}

#[tokio::test]
async fn pick_finds_the_mesh_under_a_pixel_and_follows_a_move() {
    let server = TestServer::start(test_config()).await;
    let mut engine = server.render_engine();
    let mut octane = Octane::new(&server.channel);
    let pick = |x, y| PickRequest {
        x,
        y,
        filter_duplicate_material_pins: true,
        intersections_size: 1,
    };
    // Scan a grid and name what each pixel shows.
    let mut hits: BTreeMap<(u32, u32), String> = BTreeMap::new();
    for y in (0..64).step_by(4) {
        for x in (0..128).step_by(4) {
            let answer = engine.pick(pick(x, y)).await.expect("pick").into_inner();
            if answer.result > 0 {
                let node = answer
                    .intersections
                    .expect("intersection")
                    .node
                    .expect("node");
                hits.insert((x, y), octane.name(node.handle).await);
            }
        }
    }
    assert!(!hits.contains_key(&(0, 0)), "the top-left corner is sky");
    let red: Vec<(u32, u32)> = hits
        .iter()
        .filter(|(_, name)| *name == "Red sphere")
        .map(|(at, _)| *at)
        .collect();
    assert!(!red.is_empty(), "the red sphere is in view: {hits:?}");
    assert!(hits.values().any(|name| name == "Floor"));

    // Move the sphere away through its placement's transform; the pixel shows something else.
    let transform = octane
        .find_path(&["Geometry", "Red sphere transform"])
        .await;
    octane
        .set_pin(transform, PinId::PTranslation, float3([0.0, 0.0, -60.0]))
        .await
        .expect("move");
    let (x, y) = red[red.len() / 2];
    let answer = engine.pick(pick(x, y)).await.expect("pick").into_inner();
    let now = match answer.intersections.and_then(|i| i.node) {
        Some(node) if answer.result > 0 => octane.name(node.handle).await,
        _ => "sky".to_owned(),
    };
    assert_ne!(now, "Red sphere");
    let outside = engine
        .pick(pick(500, 10))
        .await
        .expect_err("outside the image");
    assert_eq!(outside.code(), Code::OutOfRange);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn the_first_image_after_a_camera_change_is_subsampled_and_not_held_back() {
    // One callback a second: a full-resolution frame could not come sooner.
    let server = TestServer::start(RenderServerConfig {
        max_callback_rate: 1.0,
        width: 256,
        height: 128,
        ..test_config()
    })
    .await;
    let mut stream = server.callbacks_gen2().await;
    let mut engine = server.render_engine();
    let first = wait_for_image(&mut stream, &mut engine, |_| true).await;
    let level = change_level(&first);
    let started = std::time::Instant::now();
    server
        .livelink()
        .set_camera(octaneweb_proto::livelinkapi::CameraState {
            fov_set: Some(octaneweb_proto::livelinkapi::camera_state::FovSet::Fov(
                50.0,
            )),
            ..Default::default()
        })
        .await
        .expect("SetCamera");
    let next = wait_for_image(&mut stream, &mut engine, |image| {
        change_level(image) > level
    })
    .await;
    let took = started.elapsed();
    assert_eq!(next.sub_sampling, SubSampleMode::Subsamplemode4x4 as i32);
    assert!(
        took < std::time::Duration::from_millis(900),
        "took {took:?}"
    );
    // The camera node's pin follows the LiveLink camera.
    let mut octane = Octane::new(&server.channel);
    let camera = octane.find_path(&["Camera"]).await;
    assert_eq!(octane.pin_float3(camera, PinId::PFov).await[0], 50.0);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn with_a_render_region_only_the_region_refines() {
    let server = TestServer::start(test_config()).await;
    let mut stream = server.callbacks_gen2().await;
    let mut engine = server.render_engine();
    let first = wait_for_image(&mut stream, &mut engine, |image| {
        image.tonemapped_samples_per_pixel >= 2.0
    })
    .await;
    let corner = |x, y| Some(Uint322 { x, y });
    engine
        .set_render_region(SetRenderRegionRequest {
            active: true,
            region_min: corner(32, 16),
            region_max: corner(96, 48),
            feather_width: 0,
        })
        .await
        .expect("region");
    // The first image at the region's change level, then one some passes later.
    let at_region = wait_for_image(&mut stream, &mut engine, |image| {
        change_level(image) > change_level(&first)
    })
    .await;
    let level = change_level(&at_region);
    let mut later = at_region.clone();
    for _ in 0..4 {
        later = wait_for_image(&mut stream, &mut engine, |image| {
            change_level(image) >= level
        })
        .await;
    }
    let (before, after) = (pixels(&at_region), pixels(&later));
    assert_eq!(before.len(), after.len());
    let (mut inside_changed, mut outside_changed) = (0, 0);
    for (index, (old, new)) in before
        .chunks_exact(4)
        .zip(after.chunks_exact(4))
        .enumerate()
    {
        let (x, y) = (index % 128, index / 128);
        let inside = (32..96).contains(&x) && (16..48).contains(&y);
        if old != new {
            if inside {
                inside_changed += 1;
            } else {
                outside_changed += 1;
            }
        }
    }
    assert_eq!(
        outside_changed, 0,
        "pixels outside the region stay as they were"
    );
    assert!(
        inside_changed > 100,
        "{inside_changed} pixels inside refined"
    );
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn names_positions_labels_destinations_copies_and_attributes() {
    use octaneweb_proto::octaneapi::api_item::{
        set_value_by_id_request, PositionRequest, SetNameRequest, SetPositionRequest,
        SetValueByIdRequest,
    };
    use octaneweb_proto::octaneapi::api_node::{
        ConnectedNodeRequest, DestinationNodesRequest, PinLabelIxRequest, PinTypeIxRequest,
    };
    use octaneweb_proto::octaneapi::api_node_array::{
        GetRequest as NodeArrayGet, SizeRequest as NodeArraySize,
    };
    use octaneweb_proto::octaneapi::api_node_array_service_client::ApiNodeArrayServiceClient;
    use octaneweb_proto::octaneapi::api_node_graph::CopyItemTreeRequest;
    use octaneweb_proto::octaneapi::{Float2, NodePinType};

    let server = TestServer::start(test_config()).await;
    let mut octane = Octane::new(&server.channel);
    let mut node_arrays = ApiNodeArrayServiceClient::new(server.channel.clone());
    let camera = octane.find_path(&["Camera"]).await;

    octane
        .items
        .set_name(SetNameRequest {
            object_ptr: r(camera),
            name: "Hero camera".into(),
        })
        .await
        .expect("setName");
    assert_eq!(octane.name(camera).await, "Hero camera");
    octane
        .items
        .set_position(SetPositionRequest {
            object_ptr: r(camera),
            new_pos: Some(Float2 { x: 12.5, y: -4.0 }),
        })
        .await
        .expect("setPosition");
    let position = octane
        .items
        .position(PositionRequest {
            object_ptr: r(camera),
        })
        .await
        .expect("position")
        .into_inner()
        .result
        .expect("position");
    assert_eq!((position.x, position.y), (12.5, -4.0));
    let bad_position = octane
        .items
        .set_position(SetPositionRequest {
            object_ptr: r(camera),
            new_pos: Some(Float2 {
                x: f32::NAN,
                y: 0.0,
            }),
        })
        .await
        .expect_err("not finite");
    assert_eq!(bad_position.code(), Code::InvalidArgument);

    // Pin 3 of the thin lens camera is its field of view.
    let label = octane
        .nodes
        .pin_label_ix(PinLabelIxRequest {
            object_ptr: r(camera),
            index: 3,
        })
        .await
        .expect("label")
        .into_inner()
        .result;
    assert_eq!(label, "Field of view");
    let pin_type = octane
        .nodes
        .pin_type_ix(PinTypeIxRequest {
            object_ptr: r(camera),
            index: 3,
        })
        .await
        .expect("type")
        .into_inner()
        .result;
    assert_eq!(pin_type, NodePinType::PtFloat as i32);

    // The render target's camera pin, by id; the camera's destinations lead back to it.
    let render_target = octane.find_path(&["Render target"]).await;
    let linked = octane
        .nodes
        .connected_node(ConnectedNodeRequest {
            object_ptr: r(render_target),
            pin_id: PinId::PCamera as i32,
            enter_wrapper_node: true,
        })
        .await
        .expect("connectedNode")
        .into_inner()
        .result
        .expect("camera");
    assert_eq!(linked.handle, camera);
    let destinations = octane
        .nodes
        .destination_nodes(DestinationNodesRequest {
            object_ptr: r(camera),
        })
        .await
        .expect("destinationNodes")
        .into_inner();
    assert_eq!(
        destinations.pin_names.expect("names").data,
        vec!["camera".to_owned()]
    );
    let array = destinations.nodes.expect("array");
    let size = node_arrays
        .size1(NodeArraySize {
            object_ptr: Some(array),
        })
        .await
        .expect("size1")
        .into_inner()
        .result;
    assert_eq!(size, 1);
    let first = node_arrays
        .get1(NodeArrayGet {
            object_ptr: Some(array),
            index: 0,
        })
        .await
        .expect("get1")
        .into_inner()
        .result
        .expect("node");
    assert_eq!(first.handle, render_target);
    let past = node_arrays
        .get1(NodeArrayGet {
            object_ptr: Some(array),
            index: 1,
        })
        .await
        .expect_err("index 1");
    assert_eq!(past.code(), Code::OutOfRange);

    // A copied material has value nodes of its own: editing the copy leaves the original.
    let materials = octane.find_path(&["Materials"]).await;
    let red = octane.find_path(&["Materials", "Red matte"]).await;
    let copy = octane
        .graphs
        .copy_item_tree(CopyItemTreeRequest {
            object_ptr: r(materials),
            root_item: r(red),
        })
        .await
        .expect("copyItemTree")
        .into_inner()
        .result
        .expect("copy")
        .handle;
    assert_ne!(copy, red);
    assert!(octane.owned(materials).await.contains(&copy));
    let original = octane.pin_float3(red, PinId::PDiffuse).await;
    octane
        .set_pin(copy, PinId::PDiffuse, float3([0.0, 1.0, 0.0]))
        .await
        .expect("edit the copy");
    assert_eq!(octane.pin_float3(red, PinId::PDiffuse).await, original);
    assert_ne!(
        octane.connected(copy, 0).await,
        octane.connected(red, 0).await
    );

    // The value node's attribute and the pin are one value.
    let value_node = octane.connected(camera, 3).await;
    octane
        .items
        .set_value_by_attr_id(SetValueByIdRequest {
            item_ref: r(value_node),
            attribute_id: AttributeId::AValue as i32,
            evaluate: Some(false),
            value: Some(set_value_by_id_request::Value::Float3Value(Float3 {
                x: 44.0,
                y: 0.0,
                z: 0.0,
            })),
        })
        .await
        .expect("setValueByAttrID");
    assert_eq!(octane.pin_float3(camera, PinId::PFov).await[0], 44.0);
    let refused = octane
        .items
        .set_value_by_attr_id(SetValueByIdRequest {
            item_ref: r(value_node),
            attribute_id: AttributeId::AValue as i32,
            evaluate: Some(false),
            value: Some(set_value_by_id_request::Value::Float3Value(Float3 {
                x: 400.0,
                y: 0.0,
                z: 0.0,
            })),
        })
        .await
        .expect_err("fov 400 through the attribute");
    assert_eq!(refused.code(), Code::OutOfRange);
    assert!(refused.message().contains("fov"), "{}", refused.message());
    server.shutdown().await.expect("clean shutdown");
}
