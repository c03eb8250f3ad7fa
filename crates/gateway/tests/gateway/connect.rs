//! The Connect protocol through the gateway, spoken with reqwest: unary JSON and binary,
//! GET, server streams with end-of-stream messages, errors, gzip and bad input.

use base64::Engine as _;
use octaneweb_gateway::{GatewayConfig, Protocol};
use octaneweb_proto::livelinkapi::{CameraState, MeshRequest};
use octaneweb_proto::octaneapi::StreamCallbackRequest;
use prost::Message as _;
use serde_json::Value;
use tonic::Code;

use crate::common::*;
use crate::grpc_web::first_mesh_handle;
use crate::passthrough::{frame, gzip};

struct ConnectAnswer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl ConnectAnswer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The envelopes of a streamed answer: (flags, payload).
    fn envelopes(&self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = &self.body[..];
        while !rest.is_empty() {
            assert!(rest.len() >= 5, "truncated envelope");
            let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            assert!(rest.len() >= 5 + length, "truncated envelope");
            out.push((rest[0], rest[5..5 + length].to_vec()));
            rest = &rest[5 + length..];
        }
        out
    }

    /// The end-of-stream message of a streamed answer.
    fn end_of_stream(&self) -> Value {
        let envelopes = self.envelopes();
        let (flags, payload) = envelopes.last().expect("an end-of-stream envelope");
        assert_eq!(*flags, 0x02, "the last envelope ends the stream");
        serde_json::from_slice(payload).expect("end-of-stream JSON")
    }
}

async fn connect_post(
    url: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> ConnectAnswer {
    let mut request = client()
        .post(url)
        .header("content-type", content_type)
        .header("connect-protocol-version", "1");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body).send().await.expect("request");
    ConnectAnswer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("body").to_vec(),
    }
}

async fn connect_get(url: &str) -> ConnectAnswer {
    let response = client().get(url).send().await.expect("request");
    ConnectAnswer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("body").to_vec(),
    }
}

#[tokio::test]
async fn unary_json_and_binary_calls() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let url = gateway.url("/livelinkapi.LiveLinkService/GetCamera");

    let answer = connect_post(&url, "application/json", &[], b"{}".to_vec()).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.headers["content-type"], "application/json");
    let camera = answer.json();
    assert!(camera["fov"].is_number(), "{camera}");
    assert!(camera["position"]["z"].is_number(), "{camera}");

    // A lenient service name resolves as on the JSON route and goes upstream in full.
    let answer = connect_post(
        &gateway.url("/LiveLink/GetCamera"),
        "application/json",
        &[],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.json()["fov"].is_number());

    let answer = connect_post(&url, "application/proto", &[], Vec::new()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/proto");
    let camera = CameraState::decode(&answer.body[..]).expect("a CameraState");
    assert!(camera.fov_set.is_some());

    // JSON output uses lowerCamelCase names; input takes either spelling.
    let handle = first_mesh_handle(&gateway).await;
    let answer = connect_post(
        &gateway.url("/livelinkapi.LiveLinkService/GetMesh"),
        "application/json",
        &[],
        format!("{{\"objecthandle\":{handle}}}").into_bytes(),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let mesh = answer.json();
    assert!(mesh["vertsPerPoly"].is_array(), "camelCase names: {mesh}");
    assert!(mesh.get("verts_per_poly").is_none(), "{mesh}");

    // Binary passes through for a method the schema does not know.
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
    let answer = connect_post(
        &gateway.url("/grpc.health.v1.Health/Check"),
        "application/proto",
        &[],
        HealthCheckRequest {
            service: String::new(),
        }
        .encode_to_vec(),
    )
    .await;
    assert_eq!(answer.status, 200);
    let health = HealthCheckResponse::decode(&answer.body[..]).expect("a health answer");
    assert_eq!(health.status, 1, "SERVING");

    assert!(
        gateway.state.metrics.calls(
            Protocol::Connect,
            "livelinkapi.LiveLinkService/GetCamera",
            Code::Ok
        ) == 3
    );
}

#[tokio::test]
async fn get_is_served_for_side_effect_free_methods_only() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let answer = connect_get(
        &gateway
            .url("/livelinkapi.LiveLinkService/GetCamera?connect=v1&encoding=json&message=%7B%7D"),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.json()["fov"].is_number());

    let handle = first_mesh_handle(&gateway).await;
    let message = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        MeshRequest {
            objecthandle: handle,
        }
        .encode_to_vec(),
    );
    let answer = connect_get(&gateway.url(&format!(
        "/livelinkapi.LiveLinkService/GetMesh?connect=v1&encoding=proto&base64=1&message={message}"
    )))
    .await;
    assert_eq!(answer.status, 200);
    let mesh = octaneweb_proto::livelinkapi::MeshData::decode(&answer.body[..]).expect("mesh");
    assert!(!mesh.positions.is_empty());

    // A gzip-compressed JSON message in the query.
    let message = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(gzip(b"{}"));
    let answer = connect_get(&gateway.url(&format!(
        "/livelinkapi.LiveLinkService/GetCamera?connect=v1&encoding=json&base64=1&compression=gzip&message={message}"
    )))
    .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.json()["fov"].is_number());
    let answer = connect_get(&gateway.url(
        "/livelinkapi.LiveLinkService/GetCamera?connect=v1&encoding=json&base64=1&message=***",
    ))
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["code"], "invalid_argument");
    let answer = connect_get(
        &gateway.url("/livelinkapi.LiveLinkService/GetCamera?connect=v1&encoding=xml&message=x"),
    )
    .await;
    assert_eq!(answer.status, 415);

    // SetCamera changes state: not over GET.
    let answer = connect_get(
        &gateway
            .url("/livelinkapi.LiveLinkService/SetCamera?connect=v1&encoding=json&message=%7B%7D"),
    )
    .await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.headers["allow"], "POST");
    assert_eq!(answer.json()["code"], "unimplemented");
}

#[tokio::test]
async fn server_streams_end_with_an_end_of_stream_message() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let url = gateway.url("/octaneapi.StreamCallbackService/callbackChannel");

    let answer = connect_post(
        &url,
        "application/connect+json",
        &[("connect-timeout-ms", "700")],
        frame(0, b"{}").to_vec(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/connect+json");
    let envelopes = answer.envelopes();
    let messages: Vec<Value> = envelopes
        .iter()
        .filter(|(flags, _)| *flags == 0)
        .map(|(_, payload)| serde_json::from_slice(payload).expect("JSON message"))
        .collect();
    assert!(!messages.is_empty(), "no messages before the deadline");
    assert!(
        messages.iter().all(|m| m.get("newImage").is_some()
            || m.get("newStatistics").is_some()
            || m.get("renderFailure").is_some()),
        "{messages:?}"
    );
    let end = answer.end_of_stream();
    assert_eq!(end["error"]["code"], "deadline_exceeded", "{end}");

    let answer = connect_post(
        &url,
        "application/connect+proto",
        &[("connect-timeout-ms", "500")],
        frame(0, b"").to_vec(),
    )
    .await;
    let envelopes = answer.envelopes();
    let first = StreamCallbackRequest::decode(&envelopes[0].1[..]).expect("a notification");
    assert!(first.payload.is_some());
    assert_eq!(answer.end_of_stream()["error"]["code"], "deadline_exceeded");
}

#[tokio::test]
async fn errors_are_connect_errors_and_the_gateway_keeps_serving() {
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            config: GatewayConfig {
                max_body_bytes: 4096,
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let get_camera = gateway.url("/livelinkapi.LiveLinkService/GetCamera");
    let still_serving = || async {
        let answer = connect_post(&get_camera, "application/json", &[], b"{}".to_vec()).await;
        assert_eq!(answer.status, 200);
    };
    let expect_error = |answer: ConnectAnswer, status: u16, code: &str| {
        assert_eq!(
            answer.status,
            status,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let error = answer.json();
        assert_eq!(error["code"], code, "{error}");
        assert!(error["details"].is_array(), "{error}");
        error["message"].as_str().unwrap_or_default().to_owned()
    };

    // Unknown method, upstream error, bad JSON.
    let answer = connect_post(
        &gateway.url("/livelinkapi.LiveLinkService/NoSuchMethod"),
        "application/json",
        &[],
        b"{}".to_vec(),
    )
    .await;
    let message = expect_error(answer, 404, "not_found");
    assert!(message.contains("NoSuchMethod"), "{message}");
    let answer = connect_post(
        &gateway.url("/livelinkapi.LiveLinkService/GetMesh"),
        "application/json",
        &[],
        b"{\"objecthandle\": 999999}".to_vec(),
    )
    .await;
    expect_error(answer, 404, "not_found");
    let answer = connect_post(&get_camera, "application/json", &[], b"{nope".to_vec()).await;
    expect_error(answer, 400, "invalid_argument");
    still_serving().await;

    // Protocol headers.
    let answer = connect_post(
        &get_camera,
        "application/json",
        &[("connect-protocol-version", "2")],
        b"{}".to_vec(),
    )
    .await;
    // reqwest appends the second header value; either way the version is not 1.
    expect_error(answer, 400, "invalid_argument");
    let answer = connect_post(
        &get_camera,
        "application/json",
        &[("connect-timeout-ms", "soon")],
        b"{}".to_vec(),
    )
    .await;
    expect_error(answer, 400, "invalid_argument");
    let answer = connect_post(
        &get_camera,
        "application/json",
        &[("content-encoding", "br")],
        b"{}".to_vec(),
    )
    .await;
    let message = expect_error(answer, 501, "unimplemented");
    assert!(message.contains("br"), "{message}");

    // Content types: unknown, and the wrong shape for the method.
    let answer = connect_post(&get_camera, "application/connect+thrift", &[], Vec::new()).await;
    assert_eq!(answer.status, 415);
    let answer = connect_post(
        &get_camera,
        "application/connect+json",
        &[],
        frame(0, b"{}").to_vec(),
    )
    .await;
    assert_eq!(answer.status, 415);
    let answer = connect_post(
        &gateway.url("/octaneapi.StreamCallbackService/callbackChannel"),
        "application/json",
        &[],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(answer.status, 415);
    still_serving().await;

    // A client stream takes the streaming content types, which the refusal names.
    let answer = connect_post(
        &gateway.url("/livelinkapi.LiveLinkService/StreamCamera"),
        "application/json",
        &[],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(answer.status, 415);
    let message = answer.json()["message"].as_str().unwrap_or("").to_owned();
    assert!(
        message.contains("client-streaming method livelinkapi.LiveLinkService.StreamCamera"),
        "{message}"
    );
    assert!(message.contains("application/connect+json"), "{message}");

    // Oversize bodies, and gzip that expands past the limit.
    let answer = connect_post(&get_camera, "application/proto", &[], vec![0; 5000]).await;
    expect_error(answer, 429, "resource_exhausted");
    let answer = connect_post(
        &get_camera,
        "application/proto",
        &[("content-encoding", "gzip")],
        gzip(&[0; 100_000]),
    )
    .await;
    expect_error(answer, 429, "resource_exhausted");
    still_serving().await;

    // Streams: bad envelopes end in an end-of-stream error.
    let stream_url = gateway.url("/octaneapi.StreamCallbackService/callbackChannel");
    for (body, headers, expected) in [
        (vec![0, 0, 0, 0, 9, 1], vec![], "ended inside a frame"),
        (frame(1, b"{}").to_vec(), vec![], "connect-content-encoding"),
        (
            [frame(0, b"{}"), frame(0, b"{}")].concat(),
            vec![],
            "exactly one",
        ),
        (frame(0, b"{bad").to_vec(), vec![], "JSON"),
        (
            frame(1, b"not gzip").to_vec(),
            vec![("connect-content-encoding", "gzip")],
            "gzip",
        ),
    ] {
        let answer = connect_post(&stream_url, "application/connect+json", &headers, body).await;
        assert_eq!(answer.status, 200);
        let end = answer.end_of_stream();
        assert_eq!(end["error"]["code"], "invalid_argument", "{end}");
        let message = end["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{expected}: {message}");
    }
    still_serving().await;
}

#[tokio::test]
async fn gzip_both_ways() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    // A gzip request; a large (image) answer comes back gzip.
    let grab = gateway.url("/octaneapi.ApiRenderEngineService/grabRenderResult");
    let deadline = tokio::time::Instant::now() + EXCHANGE_TIMEOUT;
    loop {
        let answer = connect_post(
            &grab,
            "application/json",
            &[("content-encoding", "gzip"), ("accept-encoding", "gzip")],
            gzip(b"{}"),
        )
        .await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        if answer.headers.get("content-encoding").is_some() {
            assert_eq!(answer.headers["content-encoding"], "gzip");
            use std::io::Read as _;
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(&answer.body[..])
                .read_to_end(&mut json)
                .expect("gunzip");
            let result: Value = serde_json::from_slice(&json).expect("JSON");
            assert_eq!(result["result"], true);
            assert!(result["renderImages"]["data"][0]["buffer"]["data"].is_string());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never compressed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Streams: gzip envelopes both ways.
    let answer = connect_post(
        &gateway.url("/octaneapi.StreamCallbackService/callbackChannel"),
        "application/connect+json",
        &[
            ("connect-content-encoding", "gzip"),
            ("connect-accept-encoding", "gzip"),
            ("connect-timeout-ms", "300"),
        ],
        frame(1, &gzip(b"{}")).to_vec(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["connect-content-encoding"], "gzip");
    assert_eq!(answer.end_of_stream()["error"]["code"], "deadline_exceeded");
}

/// HTTP/1.1 clients that send the head first and the body later (connect-node does) must
/// read an early error answer, and the connection stays usable.
#[tokio::test]
async fn early_answers_on_http1_wait_for_a_body_sent_later() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let authority = gateway.base.trim_start_matches("http://").to_owned();
    for (path, content_type, version, expected) in [
        (
            "/livelinkapi.LiveLinkService/NoSuchMethod",
            "application/json",
            "connect-protocol-version: 1\r\n",
            "404 Not Found",
        ),
        (
            "/livelinkapi.LiveLinkService/GetCamera",
            "application/connect+thrift",
            "",
            "415 Unsupported Media Type",
        ),
        // The original proxy's JSON route too.
        (
            "/LiveLink/NoSuchMethod",
            "application/json",
            "",
            "404 Not Found",
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&authority)
            .await
            .expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: {content_type}\r\n\
             {version}transfer-encoding: chunked\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stream.write_all(b"2\r\n{}\r\n").await.expect("body chunk");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stream.write_all(b"0\r\n\r\n").await.expect("last chunk");
        // The same connection serves the next call.
        let next = format!(
            "POST /livelinkapi.LiveLinkService/GetCamera HTTP/1.1\r\nhost: {authority}\r\n\
             content-type: application/json\r\nconnect-protocol-version: 1\r\n\
             content-length: 2\r\nconnection: close\r\n\r\n{{}}"
        );
        stream
            .write_all(next.as_bytes())
            .await
            .expect("second request");
        let mut answer = String::new();
        tokio::time::timeout(EXCHANGE_TIMEOUT, stream.read_to_string(&mut answer))
            .await
            .expect("in time")
            .expect("read");
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {expected}")),
            "{answer}"
        );
        assert!(answer.contains("HTTP/1.1 200 OK"), "{path}: {answer}");
    }
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_stream() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut response = client()
        .post(gateway.url("/octaneapi.StreamCallbackService/callbackChannel"))
        .header("content-type", "application/connect+proto")
        .body(frame(0, b"").to_vec())
        .send()
        .await
        .expect("stream");
    tokio::time::timeout(EXCHANGE_TIMEOUT, response.chunk())
        .await
        .expect("in time")
        .expect("chunk")
        .expect("a first message");
    assert_eq!(gateway.state.metrics.in_flight(Protocol::Connect), 1);
    drop(response);
    let metrics = &gateway.state.metrics;
    eventually("the stream to be recorded as cancelled", || async {
        metrics.calls(
            Protocol::Connect,
            "octaneapi.StreamCallbackService/callbackChannel",
            Code::Cancelled,
        ) == 1
            && metrics.in_flight(Protocol::Connect) == 0
    })
    .await;
}
