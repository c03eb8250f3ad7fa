//! Fetching a schema by server reflection from a real tonic server on 127.0.0.1.

use std::net::SocketAddr;

use octaneweb_schema::{reflection, SchemaBuilder, SchemaError};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};

/// Which reflection versions the test server speaks.
#[derive(Clone, Copy)]
enum Versions {
    Both,
    V1AlphaOnly,
    None,
}

struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl TestServer {
    async fn start(versions: Versions) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (_health_reporter, health) = tonic_health::server::health_reporter();
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(octaneweb_proto::DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let mut router = Server::builder().add_service(health);
        match versions {
            Versions::Both => {
                router = router
                    .add_service(reflection().build_v1().expect("v1"))
                    .add_service(reflection().build_v1alpha().expect("v1alpha"));
            }
            Versions::V1AlphaOnly => {
                router = router.add_service(reflection().build_v1alpha().expect("v1alpha"));
            }
            Versions::None => {}
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(router.serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = (&mut self.task).await.expect("server task");
        assert!(served.is_ok(), "server failed: {served:?}");
    }
}

async fn fetch_and_check(versions: Versions) {
    let server = TestServer::start(versions).await;
    let files = reflection::fetch(server.channel().await)
        .await
        .expect("reflection works");
    let names: Vec<&str> = files.iter().map(|f| f.name()).collect();
    assert!(
        names.iter().all(|n| !n.contains("reflection")),
        "reflection's own files are left out: {names:?}"
    );
    // Imports were followed.
    assert!(names.contains(&"google/protobuf/empty.proto"), "{names:?}");

    let mut builder = SchemaBuilder::new();
    builder
        .add_file_descriptors("reflection", files)
        .expect("files");
    let schema = builder.build().expect("schema");
    assert!(schema.warnings().is_empty(), "{:?}", schema.warnings());
    assert!(schema.find_service("octaneapi.ApiItemService").is_ok());
    assert!(schema.find_service("livelinkapi.LiveLinkService").is_ok());
    assert!(schema.find_method("LiveLink", "GetCamera").is_ok());
    assert!(schema.find_service("grpc.health.v1.Health").is_ok());
    server.stop().await;
}

#[tokio::test]
async fn fetches_every_service_over_v1() {
    fetch_and_check(Versions::Both).await;
}

#[tokio::test]
async fn falls_back_to_v1alpha() {
    fetch_and_check(Versions::V1AlphaOnly).await;
}

#[tokio::test]
async fn lists_services_over_either_version_and_refuses_without_reflection() {
    for versions in [Versions::Both, Versions::V1AlphaOnly] {
        let server = TestServer::start(versions).await;
        let services = reflection::list_services(server.channel().await)
            .await
            .expect("reflection lists services");
        for service in ["grpc.health.v1.Health", "livelinkapi.LiveLinkService"] {
            assert!(
                services.iter().any(|s| s == service),
                "{service}: {services:?}"
            );
        }
        server.stop().await;
    }
    let server = TestServer::start(Versions::None).await;
    match reflection::list_services(server.channel().await).await {
        Err(SchemaError::Reflection { code, .. }) => {
            assert_eq!(code, tonic::Code::Unimplemented)
        }
        other => panic!("expected a reflection error, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_server_without_reflection_is_a_typed_error() {
    let server = TestServer::start(Versions::None).await;
    match reflection::fetch(server.channel().await).await {
        Err(SchemaError::Reflection { code, message }) => {
            assert_eq!(code, tonic::Code::Unimplemented, "{message}");
        }
        other => panic!("expected a reflection error, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_typed_error() {
    // A port that was just free: nothing listens there any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    match reflection::fetch(channel).await {
        Err(SchemaError::Reflection { code, .. }) => assert_eq!(code, tonic::Code::Unavailable),
        other => panic!("expected a reflection error, got {other:?}"),
    }
}
