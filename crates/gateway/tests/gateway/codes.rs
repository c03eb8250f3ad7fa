//! Precise codes and messages for edge cases of input, over real sockets: tiny and zero
//! deadlines, a malformed chunked body, duplicate JSON fields, an out-of-range `/ws` call id,
//! WebSocket protocol violations and dot segments in paths. docs/protocols.md ("Error codes")
//! lists them.

use octaneweb_schema::{Schema, SchemaBuilder};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::common::*;
use crate::passthrough::{frame, raw_grpc, RawAnswer};
use crate::ws::Ws;

const GET_CAMERA: &str = "/livelinkapi.LiveLinkService/GetCamera";

/// `host:port` of a gateway.
fn authority(gateway: &GatewayHandle) -> String {
    gateway.base.trim_start_matches("http://").to_owned()
}

/// An HTTP/1.1 answer read off a raw socket.
struct RawHttp {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl RawHttp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The answer as a gRPC(-Web) trailers-only answer, for its status and decoded message.
    fn grpc(&self) -> RawAnswer {
        RawAnswer {
            http_status: self.status,
            headers: self.headers.clone(),
            data: bytes::Bytes::new(),
        }
    }
}

/// Write `request` as it is on a fresh connection and read the answer until the server closes
/// the connection (requests here say `Connection: close`, or are malformed).
async fn raw_http(gateway: &GatewayHandle, request: &[u8]) -> RawHttp {
    tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        let mut stream = TcpStream::connect(authority(gateway))
            .await
            .expect("connect");
        stream.write_all(request).await.expect("send");
        let mut raw = Vec::new();
        // A reset after the answer (the server closed with unread input) ends the read too.
        let _ = stream.read_to_end(&mut raw).await;
        parse_http(&raw)
    })
    .await
    .expect("an answer in time")
}

fn parse_http(raw: &[u8]) -> RawHttp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header block in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            http::HeaderValue::from_str(value.trim()).expect("header value"),
        );
    }
    let mut body = raw[end + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"))
    {
        body = dechunk(&body);
    }
    RawHttp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
    out
}

/// Expect a JSON route failure: HTTP `status`, gRPC `code`, an error text containing
/// `fragment`; returns the body.
fn assert_json_error(answer: &Answer, status: u16, code: &str, fragment: &str) -> Value {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["code"], code, "{}", answer.body);
    let error = answer.body["error"].as_str().unwrap_or_default();
    assert!(error.contains(fragment), "{fragment:?} not in {error:?}");
    answer.body.clone()
}

async fn post_with(gateway: &GatewayHandle, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = client()
        .post(gateway.url(path))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read_answer(request.body("{}").send().await.expect("request")).await
}

/// A gRPC-Web unary call of GetCamera with extra `headers`: (HTTP status, grpc-status,
/// grpc-message). Failures before the upstream answers are trailers-only.
async fn grpc_web_get_camera(gateway: &GatewayHandle, headers: &[(&str, &str)]) -> RawAnswer {
    let mut request = client()
        .post(gateway.url(GET_CAMERA))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .body(frame(0, b"").to_vec())
        .send()
        .await
        .expect("request");
    let http_status = response.status().as_u16();
    let headers = response.headers().clone();
    let data = response.bytes().await.expect("body");
    RawAnswer {
        http_status,
        headers,
        data,
    }
}

fn assert_grpc(answer: &RawAnswer, code: i32, fragment: &str) {
    assert_eq!(answer.http_status, 200, "{answer:?}");
    assert_eq!(answer.status(), code, "{answer:?}");
    let message = answer.message();
    assert!(
        message.contains(fragment),
        "{fragment:?} not in {message:?}"
    );
}

#[tokio::test]
async fn a_one_nanosecond_deadline_is_deadline_exceeded_not_no_deadline() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let fragment = "deadline of 1 ns passed before the call started";

    // A control: GetCamera answers without a deadline.
    let answer = raw_grpc(&gateway, GET_CAMERA, &[], frame(0, b"")).await;
    assert_eq!(answer.status(), 0, "{answer:?}");

    let answer = raw_grpc(
        &gateway,
        GET_CAMERA,
        &[("grpc-timeout", "1n")],
        frame(0, b""),
    )
    .await;
    assert_grpc(&answer, 4, fragment);

    let answer = grpc_web_get_camera(&gateway, &[("grpc-timeout", "1n")]).await;
    assert_grpc(&answer, 4, fragment);

    let answer = post_with(&gateway, "/LiveLink/GetCamera", &[("grpc-timeout", "1n")]).await;
    assert_json_error(&answer, 504, "DEADLINE_EXCEEDED", fragment);

    // Just under the timer's millisecond is as short.
    let answer = post_with(&gateway, "/LiveLink/GetCamera", &[("grpc-timeout", "999u")]).await;
    assert_json_error(&answer, 504, "DEADLINE_EXCEEDED", "999000 ns");

    let response = client()
        .get(gateway.url("/sse/StreamCallback/callbackChannel"))
        .header("grpc-timeout", "1n")
        .send()
        .await
        .expect("request");
    let answer = read_answer(response).await;
    assert_json_error(&answer, 504, "DEADLINE_EXCEEDED", fragment);
}

#[tokio::test]
async fn a_zero_deadline_is_deadline_exceeded_on_every_protocol() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let fragment = "deadline of 0 ns passed before the call started";

    for zero in ["0n", "0S", "0H"] {
        let answer = raw_grpc(
            &gateway,
            GET_CAMERA,
            &[("grpc-timeout", zero)],
            frame(0, b""),
        )
        .await;
        assert_grpc(&answer, 4, fragment);
    }

    let answer = grpc_web_get_camera(&gateway, &[("grpc-timeout", "0m")]).await;
    assert_grpc(&answer, 4, fragment);

    let response = client()
        .post(gateway.url(GET_CAMERA))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .header("connect-timeout-ms", "0")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 504);
    let body: Value = response.json().await.expect("Connect error JSON");
    assert_eq!(body["code"], "deadline_exceeded", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(fragment), "{message}");

    for header in [("x-timeout-ms", "0"), ("grpc-timeout", "0m")] {
        let answer = post_with(&gateway, "/LiveLink/GetCamera", &[header]).await;
        assert_json_error(&answer, 504, "DEADLINE_EXCEEDED", fragment);
    }

    let response = client()
        .get(gateway.url("/sse/StreamCallback/callbackChannel?timeout_ms=0"))
        .send()
        .await
        .expect("request");
    let answer = read_answer(response).await;
    assert_json_error(&answer, 504, "DEADLINE_EXCEEDED", fragment);

    let batch = client()
        .post(gateway.url("/batch"))
        .header("content-type", "application/json")
        .body(r#"[{"method":"LiveLink/GetCamera","timeout_ms":0,"id":"zero"},{"method":"LiveLink/GetCamera","id":"none"}]"#)
        .send()
        .await
        .expect("request");
    assert_eq!(batch.status().as_u16(), 200);
    let answers: Value = batch.json().await.expect("batch JSON");
    assert_eq!(answers[0]["code"], "DEADLINE_EXCEEDED", "{answers}");
    assert!(
        answers[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains(fragment),
        "{answers}"
    );
    assert_eq!(answers[1]["success"], true, "{answers}");

    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": 1, "method": "LiveLink/GetCamera", "timeout_ms": 0}))
        .await;
    let finished = ws.finish(&json!(1)).await;
    assert_eq!(
        finished.end["code"], "DEADLINE_EXCEEDED",
        "{:?}",
        finished.end
    );
    let message = finished.end["message"].as_str().unwrap_or_default();
    assert!(message.contains(fragment), "{message}");
}

/// A request with a chunked body whose first chunk size line is not hexadecimal.
fn bad_chunked_request(gateway: &GatewayHandle, path: &str, headers: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\n{headers}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n",
        authority(gateway)
    )
    .into_bytes()
}

#[tokio::test]
async fn a_malformed_chunked_body_is_invalid_argument() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let fragment = "request body is malformed and could not be read";

    let json_route = bad_chunked_request(
        &gateway,
        "/LiveLink/GetCamera",
        "Content-Type: application/json\r\n",
    );
    let answer = raw_http(&gateway, &json_route).await;
    assert_eq!(answer.status, 400);
    let body = answer.json();
    assert_eq!(body["code"], "INVALID_ARGUMENT", "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(fragment), "{error}");
    assert!(error.to_lowercase().contains("chunk"), "{error}");

    let grpc_web = bad_chunked_request(
        &gateway,
        GET_CAMERA,
        "Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n",
    );
    let answer = raw_http(&gateway, &grpc_web).await;
    assert_grpc(&answer.grpc(), 3, fragment);

    let connect = bad_chunked_request(
        &gateway,
        GET_CAMERA,
        "Content-Type: application/json\r\nConnect-Protocol-Version: 1\r\n",
    );
    let answer = raw_http(&gateway, &connect).await;
    assert_eq!(answer.status, 400);
    let body = answer.json();
    assert_eq!(body["code"], "invalid_argument", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(fragment), "{message}");

    // The gateway goes on serving.
    call_ok(&gateway, "/LiveLink/GetCamera", "{}").await;
}

/// The built-in schema plus a method whose input has a oneof of two members (the built-in
/// request messages have only one-member oneofs).
fn schema_with_a_choice() -> Schema {
    let mut builder = SchemaBuilder::new();
    builder
        .add_descriptor_set("builtin", octaneweb_proto::DESCRIPTOR_SET)
        .expect("built-in set")
        .add_proto_source(
            "codes.proto",
            r#"syntax = "proto3";
               package codes;
               message Choice { oneof pick { int32 first_choice = 1; string second = 2; } }
               service Probe { rpc Pick(Choice) returns (Choice); }"#,
        )
        .expect("codes.proto");
    builder.build().expect("schema")
}

#[tokio::test]
async fn duplicate_json_fields_are_named_and_oneof_conflicts_still_say_oneof() {
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            schema: schema_with_a_choice(),
            ..GatewayOptions::default()
        },
    )
    .await;

    let answer = post(
        &gateway.url("/LiveLink/SetCamera"),
        r#"{"fov": 1, "fov": 2}"#,
    )
    .await;
    let body = assert_json_error(&answer, 400, "INVALID_ARGUMENT", "duplicate field \"fov\"");
    assert_eq!(body["field"], "fov", "{body}");
    assert!(!body["error"].as_str().unwrap_or_default().contains("oneof"));

    let answer = post(
        &gateway.url("/LiveLink/SetCamera"),
        r#"{"position": {"x": 1, "y": 2, "x": 3}}"#,
    )
    .await;
    let body = assert_json_error(&answer, 400, "INVALID_ARGUMENT", "duplicate field \"x\"");
    assert_eq!(body["field"], "position.x", "{body}");

    // One field under its proto name and its JSON name.
    let answer = post(
        &gateway.url("/codes.Probe/Pick"),
        r#"{"first_choice": 1, "firstChoice": 2}"#,
    )
    .await;
    assert_json_error(
        &answer,
        400,
        "INVALID_ARGUMENT",
        "duplicate field \"firstChoice\" (already given as \"first_choice\")",
    );

    // Two members of one oneof are a oneof conflict, as before.
    let answer = post(
        &gateway.url("/codes.Probe/Pick"),
        r#"{"first_choice": 1, "second": "b"}"#,
    )
    .await;
    let body = assert_json_error(&answer, 400, "INVALID_ARGUMENT", "oneof 'pick'");
    assert!(!body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("duplicate"));

    // Connect's JSON goes through the same conversion.
    let response = client()
        .post(gateway.url("/livelinkapi.LiveLinkService/SetCamera"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(r#"{"fov": 1, "fov": 2}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("Connect error JSON");
    assert_eq!(body["code"], "invalid_argument", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("duplicate field \"fov\""), "{message}");
}

#[tokio::test]
async fn a_ws_call_id_too_big_for_an_integer_is_out_of_range() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    // 2^70: valid JSON, but neither an i64 nor a u64.
    ws.send_text(r#"{"id":1180591620717411303424,"method":"LiveLink/GetCamera"}"#)
        .await;
    let error = ws.next_error().await;
    assert_eq!(error["code"], "INVALID_ARGUMENT", "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("1180591620717411303424 is out of range"),
        "{message}"
    );
    assert!(message.contains("18446744073709551615"), "{message}");

    // A fraction is not an integer at all, as before; the socket still serves calls.
    ws.send_text(r#"{"id":1.5,"method":"LiveLink/GetCamera"}"#)
        .await;
    let error = ws.next_error().await;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("must be a string or an integer"),
        "{message}"
    );
    ws.send(json!({"id": 7, "method": "LiveLink/GetCamera"}))
        .await;
    assert_eq!(ws.finish(&json!(7)).await.end["code"], "OK");
}

/// Open `/ws` on a raw socket, write `frame` and return the close frame's code and reason.
async fn ws_close_after(gateway: &GatewayHandle, frame: &[u8]) -> (u16, String) {
    tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        let mut stream = TcpStream::connect(authority(gateway))
            .await
            .expect("connect");
        let handshake = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            authority(gateway)
        );
        stream.write_all(handshake.as_bytes()).await.expect("send");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.expect("handshake answer"));
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        stream.write_all(frame).await.expect("send frame");
        loop {
            let (opcode, payload) = read_server_frame(&mut stream).await;
            if opcode == 0x8 {
                assert!(payload.len() >= 2, "close frame without a code");
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                let reason = String::from_utf8(payload[2..].to_vec()).expect("UTF-8 reason");
                return (code, reason);
            }
        }
    })
    .await
    .expect("a close frame in time")
}

/// One (unmasked) server frame: opcode and payload.
async fn read_server_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let first = stream.read_u8().await.expect("frame header");
    let second = stream.read_u8().await.expect("frame header");
    let length = match second & 0x7f {
        126 => u64::from(stream.read_u16().await.expect("length")),
        127 => stream.read_u64().await.expect("length"),
        short => u64::from(short),
    };
    let mut payload = vec![0u8; usize::try_from(length).expect("length fits")];
    stream.read_exact(&mut payload).await.expect("payload");
    (first & 0x0f, payload)
}

/// A masked client frame: first byte (FIN, RSV, opcode) and payload.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut out = vec![
        first,
        0x80 | u8::try_from(payload.len()).expect("short payload"),
    ];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[tokio::test]
async fn ws_protocol_violations_close_with_1002_and_bad_utf8_with_1007() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let cases: [(&str, Vec<u8>, u16, &str); 6] = [
        ("unmasked", vec![0x81, 0x02, b'{', b'}'], 1002, "masked"),
        (
            "reserved opcode",
            masked(0x83, b""),
            1002,
            "reserved opcode",
        ),
        ("RSV1 set", masked(0xC1, b"{}"), 1002, "reserved bits"),
        (
            "fragmented ping",
            masked(0x09, b""),
            1002,
            "fragmented control frame",
        ),
        (
            "continuation first",
            masked(0x80, b"{}"),
            1002,
            "continuation",
        ),
        ("invalid UTF-8", masked(0x81, &[0xff, 0xfe]), 1007, "UTF-8"),
    ];
    for (what, frame, code, fragment) in cases {
        let (got, reason) = ws_close_after(&gateway, &frame).await;
        assert_eq!(got, code, "{what}: {reason}");
        assert!(
            reason.contains(fragment),
            "{what}: {fragment:?} not in {reason:?}"
        );
    }
    // A socket that keeps to the protocol is unaffected.
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": 1, "method": "LiveLink/GetCamera"}))
        .await;
    assert_eq!(ws.finish(&json!(1)).await.end["code"], "OK");
}

#[tokio::test]
async fn dot_segment_paths_are_404_not_a_call_and_not_a_file() {
    let page = axum::Router::new().route(
        "/index.html",
        axum::routing::get(|| async { "<html>the page</html>" }),
    );
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            extra: page,
            ..GatewayOptions::default()
        },
    )
    .await;
    let get = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            authority(&gateway)
        )
        .into_bytes()
    };
    let answer = raw_http(&gateway, &get("/index.html")).await;
    assert_eq!(answer.status, 200);

    for path in [
        "/./index.html",
        "/%2e/index.html",
        "/%2E%2e/index.html",
        "/x/..",
    ] {
        let answer = raw_http(&gateway, &get(path)).await;
        assert_eq!(answer.status, 404, "{path}");
        let body = answer.json();
        assert_eq!(body["code"], "NOT_FOUND", "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("segments are not served"), "{path}: {error}");
    }
    for path in [
        "/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
    ] {
        let answer = raw_http(&gateway, &get(path)).await;
        assert_eq!(answer.status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&answer.body).contains("root:"));
    }
    // A call path with another HTTP method is still told to use POST.
    let answer = raw_http(&gateway, &get("/LiveLink/GetCamera")).await;
    assert_eq!(answer.status, 405);
}
