//! Reflection answered by the gateway from its own schema (v1 and v1alpha, over native gRPC
//! and /ws), and by the upstream when the gateway is configured to forward it (`--reflect`).

use octaneweb_gateway::{GatewayConfig, ReflectionAnswers};
use octaneweb_schema::{Schema, SchemaBuilder};
use prost::Message as _;
use prost_types::FileDescriptorProto;
use serde_json::json;
use tonic::transport::Channel;

use crate::common::*;
use crate::passthrough::channel;
use crate::ws::Ws;

/// A service only the gateway's schema has (no upstream implements it).
const NOTES: &str = r#"syntax = "proto3";
package notes;
// One note.
message Note { string text = 1; }
// Keeps notes.
service Notes { rpc Add(Note) returns (Note); }
"#;

/// The built-in schema, a service of the gateway's own, and the reflection services' files
/// (as the binary loads them).
fn gateway_schema() -> Schema {
    let mut builder = SchemaBuilder::new();
    builder
        .add_proto_source("notes.proto", NOTES)
        .expect("notes")
        .add_descriptor_set("builtin", octaneweb_proto::DESCRIPTOR_SET)
        .expect("built-in set")
        .add_reflection_services()
        .expect("reflection files");
    builder.build().expect("schema")
}

/// What one reflection session learned, whichever version asked.
#[derive(Debug, Default)]
struct Learned {
    services: Vec<String>,
    files: Vec<FileDescriptorProto>,
    errors: Vec<(i32, String)>,
    /// How the stream ended, if not with OK.
    failure: Option<tonic::Status>,
}

/// The v1 and v1alpha clients are message-for-message identical; one body serves both.
macro_rules! ask {
    ($version:ident, $channel:expr, $requests:expr) => {{
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        let requests: Vec<ServerReflectionRequest> = $requests
            .into_iter()
            .map(|request| ServerReflectionRequest {
                host: String::new(),
                message_request: Some(match request {
                    Ask::List => MessageRequest::ListServices(String::new()),
                    Ask::Symbol(name) => MessageRequest::FileContainingSymbol(name.into()),
                    Ask::File(name) => MessageRequest::FileByFilename(name.into()),
                }),
            })
            .collect();
        let mut client = ServerReflectionClient::new($channel);
        let mut answers = tokio::time::timeout(
            EXCHANGE_TIMEOUT,
            client.server_reflection_info(tokio_stream::iter(requests)),
        )
        .await
        .expect("in time")
        .expect("reflection stream opens")
        .into_inner();
        let mut learned = Learned::default();
        loop {
            let answer = match tokio::time::timeout(EXCHANGE_TIMEOUT, answers.message())
                .await
                .expect("in time")
            {
                Ok(Some(answer)) => answer,
                Ok(None) => break,
                Err(status) => {
                    learned.failure = Some(status);
                    break;
                }
            };
            match answer.message_response.expect("an answer") {
                MessageResponse::ListServicesResponse(list) => learned
                    .services
                    .extend(list.service.into_iter().map(|s| s.name)),
                MessageResponse::FileDescriptorResponse(files) => {
                    for bytes in files.file_descriptor_proto {
                        learned
                            .files
                            .push(FileDescriptorProto::decode(bytes.as_slice()).expect("file"));
                    }
                }
                MessageResponse::ErrorResponse(error) => {
                    learned.errors.push((error.error_code, error.error_message))
                }
                other => panic!("unexpected answer {other:?}"),
            }
        }
        learned
    }};
}

enum Ask {
    List,
    Symbol(&'static str),
    File(&'static str),
}

fn questions() -> Vec<Ask> {
    vec![
        Ask::List,
        Ask::Symbol("livelinkapi.LiveLinkService"),
        Ask::Symbol("livelinkapi.LiveLinkService.GetCamera"),
        Ask::File("common.proto"),
        Ask::Symbol("no.Such"),
    ]
}

/// Checks what a session over the gateway's own reflection learned.
fn assert_answered_from_the_schema(learned: &Learned) {
    for service in [
        "livelinkapi.LiveLinkService",
        "octaneapi.ApiItemService",
        "notes.Notes",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            learned.services.iter().any(|s| s == service),
            "{service} missing from {:?}",
            learned.services
        );
    }
    let names: Vec<&str> = learned.files.iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        ["livelink.proto", "livelink.proto", "common.proto"],
        "{names:?}"
    );
    // The files carry their comments.
    let livelink = &learned.files[0];
    let comments: Vec<&str> = livelink
        .source_code_info
        .as_ref()
        .expect("source info")
        .location
        .iter()
        .filter_map(|l| l.leading_comments.as_deref())
        .collect();
    assert!(
        comments
            .iter()
            .any(|c| c.contains("Getters are marked NO_SIDE_EFFECTS")),
        "{comments:?}"
    );
    // tonic-reflection ends the stream on an unknown symbol (the reference render server,
    // built on it too, does the same), naming the symbol.
    assert!(learned.errors.is_empty(), "{:?}", learned.errors);
    let failure = learned
        .failure
        .as_ref()
        .expect("ended by the unknown symbol");
    assert_eq!(failure.code(), tonic::Code::NotFound, "{failure:?}");
    assert!(failure.message().contains("no.Such"), "{failure:?}");
}

#[tokio::test]
async fn the_gateway_answers_reflection_v1_and_v1alpha_from_its_schema() {
    // Nothing listens upstream: every answer must come from the gateway itself.
    let gateway = start_gateway_with(
        &closed_port().await.to_string(),
        GatewayOptions {
            schema: gateway_schema(),
            ..GatewayOptions::default()
        },
    )
    .await;
    let through: Channel = channel(&gateway.base).await;

    let v1 = ask!(v1, through.clone(), questions());
    assert_answered_from_the_schema(&v1);
    let v1alpha = ask!(v1alpha, through.clone(), questions());
    assert_answered_from_the_schema(&v1alpha);

    // Local answers leave the upstream's statistics, pool and reachability alone.
    let upstream = &gateway.state.upstream;
    let stats = upstream.call_stats();
    assert_eq!(stats.answers, 0, "{stats:?}");
    assert!(stats.failures.is_empty(), "{stats:?}");
    assert_eq!(upstream.pool_stats().opened, 0);
    // Counted as the gateway's calls, like any other (ended by the unknown symbol).
    for version in ["v1", "v1alpha"] {
        assert_eq!(
            gateway.state.metrics.calls(
                octaneweb_gateway::Protocol::Grpc,
                &format!("grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"),
                tonic::Code::NotFound
            ),
            1,
            "{version}"
        );
    }
}

#[tokio::test]
async fn reflection_over_ws_is_answered_by_the_gateway_too() {
    let gateway = start_gateway_with(
        &closed_port().await.to_string(),
        GatewayOptions {
            schema: gateway_schema(),
            ..GatewayOptions::default()
        },
    )
    .await;
    let mut ws = Ws::connect(&gateway).await;
    let id = json!("reflect");
    ws.send(json!({
        "id": id,
        "method": "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "message": {"file_containing_symbol": "notes.Notes"},
    }))
    .await;
    let headers = ws.next_for(&id).await;
    assert!(headers.get("headers").is_some(), "{headers}");
    let answer = ws.next_for(&id).await;
    let files = answer["message"]["file_descriptor_response"]["file_descriptor_proto"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(files.len(), 1, "{answer}");
    ws.send(json!({"id": id, "half_close": true})).await;
    let rest = ws.finish(&id).await;
    assert_eq!(rest.end["code"], "OK", "{:?}", rest.end);
    assert_eq!(gateway.state.upstream.pool_stats().opened, 0);
}

#[tokio::test]
async fn with_reflection_left_to_the_upstream_its_answer_is_used() {
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            schema: gateway_schema(),
            config: GatewayConfig {
                reflection: ReflectionAnswers::Upstream,
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let through = channel(&gateway.base).await;
    let learned = ask!(
        v1,
        through,
        vec![Ask::List, Ask::Symbol("livelinkapi.LiveLinkService")]
    );
    // The upstream knows LiveLink but not the gateway's own notes.Notes.
    assert!(
        learned
            .services
            .iter()
            .any(|s| s == "livelinkapi.LiveLinkService"),
        "{:?}",
        learned.services
    );
    assert!(
        !learned.services.iter().any(|s| s == "notes.Notes"),
        "{:?}",
        learned.services
    );
    assert_eq!(learned.files.len(), 1);
    assert!(learned.failure.is_none(), "{:?}", learned.failure);
    let stats = gateway.state.upstream.call_stats();
    assert_eq!(stats.answers, 1, "{stats:?}");
}

#[tokio::test]
async fn the_method_policy_covers_the_gateways_own_reflection() {
    let policy = octaneweb_gateway::MethodPolicy::new(&[], &["grpc.reflection.*/*".to_owned()])
        .expect("patterns");
    let gateway = start_gateway_with(
        &closed_port().await.to_string(),
        GatewayOptions {
            schema: gateway_schema(),
            config: GatewayConfig {
                methods: policy,
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let through = channel(&gateway.base).await;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let refused = tokio::time::timeout(
        EXCHANGE_TIMEOUT,
        ServerReflectionClient::new(through).server_reflection_info(tokio_stream::iter([request])),
    )
    .await
    .expect("in time")
    .expect_err("refused by --deny");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
}
