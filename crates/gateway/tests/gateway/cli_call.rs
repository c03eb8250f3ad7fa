//! `octaneweb_gateway::call`, the command line's one-shot call.

use std::time::Duration;

use octaneweb_gateway::{call, call_with_timeout, Upstream, UpstreamConfig};
use octaneweb_schema::JsonShape;
use tonic::Code;

use crate::common::*;

fn upstream_for(target: &str) -> Upstream {
    Upstream::new(UpstreamConfig::with_target(target)).expect("upstream")
}

fn lines(out: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON value per line"))
        .collect()
}

#[tokio::test]
async fn unary_and_server_streaming_calls_print_one_line_per_message() {
    let schema = builtin_schema();
    let upstream = upstream_for(&shared_render_server().to_string());
    let mut out = Vec::new();
    call(&schema, &upstream, "LiveLink/GetCamera", "", &mut out)
        .await
        .expect("GetCamera");
    let printed = lines(&out);
    assert_eq!(printed.len(), 1);
    assert!(printed[0]["position"].is_object(), "{}", printed[0]);

    let mut out = Vec::new();
    let error = call_with_timeout(
        &schema,
        &upstream,
        "octaneapi.StreamCallbackService.callbackChannel",
        "{}",
        Some(Duration::from_millis(400)),
        JsonShape::PROXY,
        &mut out,
    )
    .await
    .expect_err("an endless stream ends at the deadline");
    assert_eq!(error.code, Code::DeadlineExceeded);
    assert_eq!(error.exit_code(), 4);
    assert!(
        !lines(&out).is_empty(),
        "messages before the deadline were printed"
    );
}

#[tokio::test]
async fn client_streaming_takes_an_array_of_messages() {
    let server = start_render_server(octaneweb_render_server::RenderServerConfig {
        max_samples_per_pixel: Some(4),
        ..small_config()
    })
    .await;
    let schema = builtin_schema();
    let upstream = upstream_for(&server.addr.to_string());
    let mut out = Vec::new();
    call(
        &schema,
        &upstream,
        "/livelinkapi.LiveLinkService/StreamCamera",
        r#"[{"fov": 30}, {"fov": 35, "position": {"x": 0, "y": 1, "z": 5}}]"#,
        &mut out,
    )
    .await
    .expect("StreamCamera");
    let printed = lines(&out);
    assert_eq!(printed.len(), 1);
    assert!(
        printed[0]["message"]
            .as_str()
            .expect("message")
            .contains('2'),
        "{}",
        printed[0]
    );
    server.stop().await;
}

#[tokio::test]
async fn failures_give_the_grpc_code_as_exit_code() {
    let schema = builtin_schema();
    let upstream = upstream_for(&shared_render_server().to_string());
    let mut out = Vec::new();
    let unknown = call(&schema, &upstream, "LiveLink/Nope", "", &mut out)
        .await
        .expect_err("unknown method");
    assert_eq!(unknown.exit_code(), 5);
    let bad_path = call(&schema, &upstream, "nothing", "", &mut out)
        .await
        .expect_err("bad path");
    assert_eq!(bad_path.exit_code(), 3);
    let bad_json = call(&schema, &upstream, "ApiItem/name", "{oops", &mut out)
        .await
        .expect_err("bad JSON");
    assert_eq!(bad_json.code, Code::InvalidArgument);
    let out_of_range = call(
        &schema,
        &upstream,
        "ApiItem/name",
        r#"{"objectPtr":{"handle":"424242424242"}}"#,
        &mut out,
    )
    .await
    .expect_err("unknown handle");
    assert_eq!(out_of_range.code, Code::NotFound);
    assert!(out.is_empty(), "nothing printed for failed calls");

    let down = upstream_for(&closed_port().await.to_string());
    let unavailable = call(&schema, &down, "LiveLink/GetCamera", "", &mut out)
        .await
        .expect_err("upstream down");
    assert_eq!(unavailable.exit_code(), 14);
}
