//! The request/response surface: meshes, files, reflection, health, snapshot (the node
//! system has its own tests in `nodes.rs`).

mod common;

use std::collections::BTreeSet;

use common::*;
use octaneweb_pathtracer::Scene;
use octaneweb_proto::livelinkapi::{Empty, FileRequest, MeshRequest};
use octaneweb_render_server::{snapshot, CallbackGeneration, RenderServerConfig};
use tonic::transport::Channel;
use tonic::Code;

#[tokio::test]
async fn meshes_are_the_real_scene_objects() {
    let server = TestServer::start(test_config()).await;
    let mut livelink = server.livelink();
    let scene = Scene::builtin();
    let list = livelink
        .get_meshes(Empty {})
        .await
        .expect("GetMeshes")
        .into_inner();
    assert_eq!(list.meshes.len(), scene.objects().len());
    for (mesh, object) in list.meshes.iter().zip(scene.objects()) {
        assert_eq!(mesh.name, object.name);
        let data = livelink
            .get_mesh(MeshRequest {
                objecthandle: i32::try_from(mesh.object_handle).expect("handle fits"),
            })
            .await
            .expect("GetMesh")
            .into_inner();
        assert_eq!(data.name, object.name);
        assert_eq!(data.positions.len(), object.positions.len());
        assert_eq!(data.normals.len(), object.normals.len());
        assert_eq!(data.verts_per_poly, object.verts_per_poly);
        assert_eq!(data.poly_vert_indices, object.poly_vert_indices);
        assert_eq!(data.poly_normal_indices, object.poly_normal_indices);
        for (wire, real) in data.positions.iter().zip(&object.positions) {
            assert_eq!((wire.x, wire.y, wire.z), (real.x, real.y, real.z));
        }
        let matrix = data.world_matrix.expect("world matrix");
        let row0 = matrix.row0.expect("row0");
        assert_eq!(
            [row0.x, row0.y, row0.z, row0.w],
            object.world_matrix[0],
            "{}",
            object.name
        );
    }
    for bad in [0, -5, 999_999] {
        let status = livelink
            .get_mesh(MeshRequest { objecthandle: bad })
            .await
            .expect_err("unknown mesh");
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().contains(&bad.to_string()));
    }
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn get_file_serves_under_the_root_and_refuses_everything_else() {
    let outside = tempfile::tempdir().expect("tempdir");
    let root = outside.path().join("served");
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::write(root.join("scene.txt"), b"hello from the root").expect("write");
    std::fs::create_dir(root.join("textures")).expect("mkdir");
    std::fs::write(root.join("textures/wood.png"), b"not really a png").expect("write");
    std::fs::write(outside.path().join("secret.txt"), b"top secret").expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("escape"))
        .expect("symlink");
    // 65 MiB without writing it: a sparse file.
    std::fs::File::create(root.join("huge.bin"))
        .and_then(|file| file.set_len(65 * 1024 * 1024))
        .expect("sparse file");

    let server = TestServer::start(RenderServerConfig {
        file_root: Some(root.clone()),
        ..test_config()
    })
    .await;
    let livelink = server.livelink();
    let get = |path: String| {
        let mut client = livelink.clone();
        async move {
            client
                .get_file(FileRequest { filepath: path })
                .await
                .map(|r| r.into_inner().filedata)
        }
    };

    assert_eq!(
        get("scene.txt".into()).await.expect("relative"),
        b"hello from the root"
    );
    assert_eq!(
        get("textures/wood.png".into()).await.expect("nested"),
        b"not really a png"
    );
    let absolute_inside = root.join("scene.txt").to_string_lossy().into_owned();
    assert_eq!(
        get(absolute_inside).await.expect("absolute inside"),
        b"hello from the root"
    );

    let refused = [
        "../secret.txt".to_owned(),
        "textures/../../secret.txt".to_owned(),
        outside
            .path()
            .join("secret.txt")
            .to_string_lossy()
            .into_owned(),
        "/etc/passwd".to_owned(),
        #[cfg(unix)]
        "escape".to_owned(),
    ];
    for path in refused {
        let status = get(path.clone()).await.expect_err("refused");
        assert_eq!(status.code(), Code::PermissionDenied, "{path}: {status:?}");
        assert!(!status.message().contains("top secret"));
    }
    let status = get("missing.txt".into()).await.expect_err("missing");
    assert_eq!(status.code(), Code::NotFound);
    let status = get(String::new()).await.expect_err("empty");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = get("textures".into()).await.expect_err("directory");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = get("huge.bin".into()).await.expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("67108864"),
        "{}",
        status.message()
    );
    server.shutdown().await.expect("clean shutdown");

    // Without a root, GetFile refuses everything.
    let server = TestServer::start(test_config()).await;
    let status = server
        .livelink()
        .get_file(FileRequest {
            filepath: "scene.txt".into(),
        })
        .await
        .expect_err("disabled");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("file root"));
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn start_refuses_bad_configurations() {
    let bad = [
        RenderServerConfig {
            width: 0,
            ..test_config()
        },
        RenderServerConfig {
            max_callback_rate: 0.0,
            ..test_config()
        },
        RenderServerConfig {
            max_callback_rate: f64::NAN,
            ..test_config()
        },
        RenderServerConfig {
            max_samples_per_pixel: Some(0),
            ..test_config()
        },
        RenderServerConfig {
            file_root: Some("/definitely/not/a/directory/octaneweb".into()),
            ..test_config()
        },
    ];
    for config in bad {
        let error =
            octaneweb_render_server::RenderServer::start(config.clone()).expect_err("refused");
        assert!(!error.to_string().is_empty(), "{config:?}");
    }
}

async fn reflected_services_v1(channel: &Channel) -> BTreeSet<String> {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1")
        .into_inner();
    let response = within(responses.message())
        .await
        .expect("healthy")
        .expect("one response");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

async fn reflected_services_v1alpha(channel: &Channel) -> BTreeSet<String> {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    let response = within(responses.message())
        .await
        .expect("healthy")
        .expect("one response");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

/// Asks reflection (v1) for the file defining `symbol` and returns whether the newImage
/// payload of that schema has `render_images` (generation 1).
async fn reflected_callback_has_inline_images(channel: &Channel) -> bool {
    use prost::Message as _;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "octaneapi.StreamCallbackService".into(),
        )),
    };
    let mut responses = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection v1")
        .into_inner();
    let response = within(responses.message())
        .await
        .expect("healthy")
        .expect("one response");
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("expected file descriptors");
    };
    files.file_descriptor_proto.iter().any(|bytes| {
        let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("decodes");
        file.message_type.iter().any(|message| {
            message.name() == "OnNewImageRequest"
                && message.field.iter().any(|f| f.name() == "render_images")
        })
    })
}

#[tokio::test]
async fn reflection_and_health_describe_the_server() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let server = TestServer::start(test_config()).await;
    let expected = [
        "octaneapi.ApiRenderEngineService",
        "octaneapi.StreamCallbackService",
        "octaneapi.ApiProjectManagerService",
        "octaneapi.ApiNodeGraphService",
        "octaneapi.ApiItemArrayService",
        "octaneapi.ApiItemService",
        "livelinkapi.LiveLinkService",
        "grpc.health.v1.Health",
    ];
    for services in [
        reflected_services_v1(&server.channel).await,
        reflected_services_v1alpha(&server.channel).await,
    ] {
        for name in expected {
            assert!(services.contains(name), "{name} missing from {services:?}");
        }
    }
    assert!(!reflected_callback_has_inline_images(&server.channel).await);

    let mut health = HealthClient::new(server.channel.clone());
    for service in [
        "",
        "octaneapi.ApiRenderEngineService",
        "livelinkapi.LiveLinkService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    server.shutdown().await.expect("clean shutdown");

    // A generation-1 server describes the generation-1 schema.
    let server = TestServer::start(RenderServerConfig {
        callback_generation: CallbackGeneration::Gen1,
        ..test_config()
    })
    .await;
    assert!(reflected_callback_has_inline_images(&server.channel).await);
    server.shutdown().await.expect("clean shutdown");
}

#[test]
fn snapshot_writes_a_decodable_png() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("still.png");
    snapshot(&test_config(), 2, &out).expect("snapshot");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&out).expect("open"),
    ));
    let mut reader = decoder.read_info().expect("png header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("png data");
    assert_eq!((info.width, info.height), (128, 64));
    let used = &pixels[..info.buffer_size()];
    assert!(used.iter().any(|&b| b != 0), "not an empty image");

    let error = snapshot(&test_config(), 0, &out).expect_err("zero samples refused");
    assert!(error.to_string().contains("samples"));
    let error = snapshot(&test_config(), 1, &dir.path().join("no/such/dir/x.png"))
        .expect_err("unwritable path");
    assert!(error.to_string().contains("x.png"));
}
