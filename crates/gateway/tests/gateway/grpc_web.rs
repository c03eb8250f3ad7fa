//! gRPC-Web through the gateway, spoken with reqwest: binary and text, HTTP/1.1 and HTTP/2,
//! unary and server streaming, trailers, gzip, CORS, and every bad input.

use base64::Engine as _;
use bytes::Bytes;
use octaneweb_gateway::{GatewayConfig, Protocol};
use octaneweb_proto::livelinkapi::{CameraState, MeshList, MeshRequest};
use prost::Message as _;
use tonic::Code;

use crate::common::*;
use crate::passthrough::{frame, gzip};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The frames of a gRPC-Web body: (flags, payload).
fn frames(body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "truncated frame header in {body:?}");
        let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        assert!(rest.len() >= 5 + length, "truncated frame in {body:?}");
        frames.push((rest[0], rest[5..5 + length].to_vec()));
        rest = &rest[5 + length..];
    }
    frames
}

/// Base64 text bodies as the gateway sends them: separately padded chunks.
fn decode_text(body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).expect("ascii");
    let mut out = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        chunk.push(c);
        if chunk.len().is_multiple_of(4) && chunk.ends_with('=') {
            out.extend(B64.decode(&chunk).expect("base64"));
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        out.extend(B64.decode(&chunk).expect("base64"));
    }
    out
}

fn trailer_lines(payload: &[u8]) -> String {
    String::from_utf8(payload.to_vec()).expect("trailers are text")
}

struct WebAnswer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    frames: Vec<(u8, Vec<u8>)>,
}

impl WebAnswer {
    fn grpc_status(&self) -> String {
        if let Some(value) = self.headers.get("grpc-status") {
            return value.to_str().expect("ascii").to_owned();
        }
        let (_, trailers) = self
            .frames
            .iter()
            .find(|(flags, _)| *flags == 0x80)
            .expect("a trailer frame");
        let text = trailer_lines(trailers);
        text.lines()
            .find_map(|line| line.strip_prefix("grpc-status: "))
            .expect("grpc-status trailer")
            .trim()
            .to_owned()
    }

    fn grpc_message(&self) -> String {
        let raw = self
            .headers
            .get("grpc-message")
            .map(|v| v.to_str().expect("ascii").to_owned())
            .unwrap_or_default();
        raw.replace("%20", " ")
    }
}

async fn web_call(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> WebAnswer {
    let mut request = client
        .post(url)
        .header("content-type", content_type)
        .header("x-grpc-web", "1");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body).send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body");
    let binary = if content_type.contains("text") && status == 200 {
        decode_text(&body)
    } else {
        body.to_vec()
    };
    WebAnswer {
        status,
        frames: if status == 200 {
            frames(&binary)
        } else {
            Vec::new()
        },
        headers,
    }
}

#[tokio::test]
async fn unary_calls_in_binary_and_text_over_http1_and_http2() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let url = gateway.url("/livelinkapi.LiveLinkService/GetCamera");
    let http2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(EXCHANGE_TIMEOUT)
        .build()
        .expect("client");
    for client in [client(), http2] {
        let answer = web_call(
            &client,
            &url,
            "application/grpc-web+proto",
            &[],
            frame(0, b"").to_vec(),
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["content-type"], "application/grpc-web+proto");
        assert_eq!(answer.frames.len(), 2, "one message, then trailers");
        let camera = CameraState::decode(&answer.frames[0].1[..]).expect("a CameraState");
        assert!(camera.fov_set.is_some(), "{camera:?}");
        assert_eq!(answer.frames[1].0, 0x80);
        assert!(trailer_lines(&answer.frames[1].1).contains("grpc-status: 0\r\n"));
        assert_eq!(answer.grpc_status(), "0");
    }

    // A lenient service name goes upstream under its full name.
    let answer = web_call(
        &client(),
        &gateway.url("/LiveLink/GetCamera"),
        "application/grpc-web",
        &[],
        frame(0, b"").to_vec(),
    )
    .await;
    assert_eq!(answer.grpc_status(), "0");

    // Text mode, the request split into two separately padded base64 chunks.
    let request = frame(0, &MeshRequest { objecthandle: 1 }.encode_to_vec());
    let (first, second) = request.split_at(2);
    let body = format!("{}{}", B64.encode(first), B64.encode(second));
    let answer = web_call(
        &client(),
        &gateway.url("/livelinkapi.LiveLinkService/GetMeshes"),
        "application/grpc-web-text",
        &[],
        body.into_bytes(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.headers["content-type"],
        "application/grpc-web-text+proto"
    );
    let meshes = MeshList::decode(&answer.frames[0].1[..]).expect("a MeshList");
    assert!(!meshes.meshes.is_empty());
    assert_eq!(answer.grpc_status(), "0");
    assert!(
        gateway.state.metrics.calls(
            Protocol::GrpcWeb,
            "livelinkapi.LiveLinkService/GetCamera",
            Code::Ok
        ) >= 2
    );
}

#[tokio::test]
async fn server_streams_deliver_messages_then_trailers() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    for content_type in ["application/grpc-web", "application/grpc-web-text"] {
        let body = if content_type.ends_with("text") {
            B64.encode(frame(0, b"")).into_bytes()
        } else {
            frame(0, b"").to_vec()
        };
        // The deadline ends the otherwise endless callback stream.
        let answer = web_call(
            &client(),
            &gateway.url("/octaneapi.StreamCallbackService/callbackChannel"),
            content_type,
            &[("grpc-timeout", "700m")],
            body,
        )
        .await;
        assert_eq!(answer.status, 200);
        let messages = answer.frames.iter().filter(|(f, _)| *f == 0).count();
        assert!(messages >= 1, "{content_type}: no messages");
        let (flags, trailers) = answer.frames.last().expect("frames");
        assert_eq!(*flags, 0x80, "{content_type}: the trailer frame comes last");
        let trailers = trailer_lines(trailers);
        assert!(
            trailers.contains("grpc-status: 4\r\n"),
            "{content_type}: {trailers}"
        );
    }
}

#[tokio::test]
async fn bad_input_gets_grpc_web_errors_and_the_gateway_keeps_serving() {
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            config: GatewayConfig {
                max_body_bytes: 1024,
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let client = client();
    let get_camera = gateway.url("/livelinkapi.LiveLinkService/GetCamera");
    let still_serving = || async {
        let answer = web_call(
            &client,
            &get_camera,
            "application/grpc-web",
            &[],
            frame(0, b"").to_vec(),
        )
        .await;
        assert_eq!(answer.grpc_status(), "0");
    };
    let call = |path: &'static str, content_type: &'static str, body: Vec<u8>| {
        let client = client.clone();
        let url = gateway.url(path);
        async move { web_call(&client, &url, content_type, &[], body).await }
    };

    // The upstream's own errors pass through.
    let answer = call(
        "/livelinkapi.LiveLinkService/GetMesh",
        "application/grpc-web",
        frame(
            0,
            &MeshRequest {
                objecthandle: 999_999,
            }
            .encode_to_vec(),
        )
        .to_vec(),
    )
    .await;
    assert_eq!(answer.grpc_status(), "5");
    assert!(
        answer.grpc_message().contains("999999"),
        "{}",
        answer.grpc_message()
    );
    let answer = call(
        "/no.such.Service/Method",
        "application/grpc-web",
        frame(0, b"").to_vec(),
    )
    .await;
    assert_eq!(answer.grpc_status(), "12");
    still_serving().await;

    // Client streams are carried, also over HTTP/1.1 (the body streams in).
    let answer = call(
        "/livelinkapi.LiveLinkService/StreamCamera",
        "application/grpc-web",
        frame(0, b"").to_vec(),
    )
    .await;
    assert_eq!(answer.grpc_status(), "0", "{}", answer.grpc_message());

    // Unknown content type: 415.
    let answer = call(
        "/livelinkapi.LiveLinkService/GetCamera",
        "application/grpc-web+thrift",
        frame(0, b"").to_vec(),
    )
    .await;
    assert_eq!(answer.status, 415);
    still_serving().await;

    // Bad base64.
    let answer = call(
        "/livelinkapi.LiveLinkService/GetCamera",
        "application/grpc-web-text",
        b"AAAA$$$$".to_vec(),
    )
    .await;
    assert_eq!(answer.grpc_status(), "3");
    assert!(
        answer.grpc_message().contains("base64"),
        "{}",
        answer.grpc_message()
    );

    // Truncated frame, compressed flag without encoding, trailer flag in a request.
    for (body, expected) in [
        (vec![0, 0, 0, 0, 9, 1], "ended inside a frame"),
        (frame(1, b"").to_vec(), "grpc-encoding"),
        (frame(0x80, b"").to_vec(), "flags"),
    ] {
        let answer = call(
            "/livelinkapi.LiveLinkService/GetCamera",
            "application/grpc-web",
            body,
        )
        .await;
        assert_eq!(answer.grpc_status(), "3");
        assert!(
            answer.grpc_message().contains(expected),
            "{}",
            answer.grpc_message()
        );
        still_serving().await;
    }

    // A body over the limit, and gzip that expands over the limit.
    let answer = call(
        "/livelinkapi.LiveLinkService/GetFile",
        "application/grpc-web",
        frame(0, &[b'a'; 2000]).to_vec(),
    )
    .await;
    assert_eq!(answer.grpc_status(), "8");
    let bomb = gzip(&[0u8; 100_000]);
    let answer = web_call(
        &client,
        &gateway.url("/livelinkapi.LiveLinkService/GetFile"),
        "application/grpc-web",
        &[("grpc-encoding", "gzip")],
        frame(1, &bomb).to_vec(),
    )
    .await;
    assert_eq!(answer.grpc_status(), "8");

    // Not POST.
    let response = client
        .get(&get_camera)
        .header("content-type", "application/grpc-web")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 405);
    still_serving().await;
}

#[tokio::test]
async fn gzip_both_ways() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let handle = first_mesh_handle(&gateway).await;
    let answer = web_call(
        &client(),
        &gateway.url("/livelinkapi.LiveLinkService/GetMesh"),
        "application/grpc-web+proto",
        &[("grpc-encoding", "gzip"), ("grpc-accept-encoding", "gzip")],
        frame(
            1,
            &gzip(
                &MeshRequest {
                    objecthandle: handle,
                }
                .encode_to_vec(),
            ),
        )
        .to_vec(),
    )
    .await;
    assert_eq!(answer.grpc_status(), "0", "{:?}", answer.headers);
    assert_eq!(answer.headers["grpc-encoding"], "gzip");
    let (flags, payload) = &answer.frames[0];
    let payload = if *flags == 1 {
        use std::io::Read as _;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&payload[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        out
    } else {
        payload.clone()
    };
    let mesh =
        octaneweb_proto::livelinkapi::MeshData::decode(Bytes::from(payload)).expect("a MeshData");
    assert!(!mesh.positions.is_empty());

    // A rendered image is large enough to come back compressed.
    use octaneweb_proto::octaneapi::api_render_engine::GrabRenderResultResponse;
    let grab = gateway.url("/octaneapi.ApiRenderEngineService/grabRenderResult");
    let deadline = tokio::time::Instant::now() + EXCHANGE_TIMEOUT;
    let compressed = loop {
        let answer = web_call(
            &client(),
            &grab,
            "application/grpc-web",
            &[("grpc-accept-encoding", "identity, gzip")],
            frame(0, b"").to_vec(),
        )
        .await;
        assert_eq!(answer.grpc_status(), "0");
        let (flags, payload) = answer.frames[0].clone();
        if flags == 1 {
            break Some(payload);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no compressed render result"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let payload = compressed.expect("compressed");
    let mut out = Vec::new();
    {
        use std::io::Read as _;
        flate2::read::GzDecoder::new(&payload[..])
            .read_to_end(&mut out)
            .expect("gunzip");
    }
    let result = GrabRenderResultResponse::decode(&out[..]).expect("a grab result");
    assert!(result.result);
    assert!(out.len() > payload.len(), "gzip made it smaller");
}

/// The object handle of the scene's first mesh, asked through the gateway.
pub async fn first_mesh_handle(gateway: &GatewayHandle) -> i32 {
    let answer = web_call(
        &client(),
        &gateway.url("/livelinkapi.LiveLinkService/GetMeshes"),
        "application/grpc-web",
        &[],
        frame(0, b"").to_vec(),
    )
    .await;
    let meshes = MeshList::decode(&answer.frames[0].1[..]).expect("a MeshList");
    i32::try_from(meshes.meshes[0].object_handle).expect("small handle")
}

#[tokio::test]
async fn cors_preflights_allow_grpc_web_headers() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let response = client()
        .request(
            reqwest::Method::OPTIONS,
            gateway.url("/livelinkapi.LiveLinkService/GetCamera"),
        )
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent,grpc-timeout",
        )
        .send()
        .await
        .expect("preflight");
    assert!(response.status().is_success(), "{}", response.status());
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(
        allowed.contains("x-grpc-web") && allowed.contains("x-user-agent"),
        "{allowed}"
    );
    let answer = web_call(
        &client(),
        &gateway.url("/livelinkapi.LiveLinkService/GetCamera"),
        "application/grpc-web",
        &[("origin", "http://localhost:3000")],
        frame(0, b"").to_vec(),
    )
    .await;
    let exposed = answer.headers["access-control-expose-headers"]
        .to_str()
        .expect("ascii");
    assert!(
        exposed.contains("grpc-status") && exposed.contains("grpc-message"),
        "{exposed}"
    );
}

#[tokio::test]
async fn a_browser_that_goes_away_cancels_the_stream() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut response = client()
        .post(gateway.url("/octaneapi.StreamCallbackService/callbackChannel"))
        .header("content-type", "application/grpc-web")
        .body(frame(0, b"").to_vec())
        .send()
        .await
        .expect("stream");
    let first = tokio::time::timeout(EXCHANGE_TIMEOUT, response.chunk())
        .await
        .expect("in time")
        .expect("chunk")
        .expect("a first message");
    assert_eq!(first[0], 0, "a message frame");
    assert_eq!(gateway.state.metrics.in_flight(Protocol::GrpcWeb), 1);
    drop(response);
    let metrics = &gateway.state.metrics;
    eventually("the stream to be recorded as cancelled", || async {
        metrics.calls(
            Protocol::GrpcWeb,
            "octaneapi.StreamCallbackService/callbackChannel",
            Code::Cancelled,
        ) == 1
            && metrics.in_flight(Protocol::GrpcWeb) == 0
    })
    .await;
}
