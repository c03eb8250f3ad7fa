//! Client and bidirectional streams over Connect and gRPC-Web: over HTTP/2 each request
//! message goes upstream as it arrives and each answer comes back as it is made, with the
//! request still open (hyper's HTTP/2 client, its request body a channel); over HTTP/1.1 a
//! client stream streams its body and a bidirectional call is refused at once.

use std::convert::Infallible;
use std::time::Duration;

use base64::Engine as _;
use bytes::{Buf as _, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Incoming;
use octaneweb_proto::livelinkapi::{CameraState, StreamStatus};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

use crate::common::*;
use crate::passthrough::frame;

const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const STREAM_CAMERA: &str = "/livelinkapi.LiveLinkService/StreamCamera";

/// A gateway in front of the shared render server whose schema holds the reflection
/// services' files, as the binary loads them: a bidirectional method the schema knows.
async fn duplex_gateway() -> GatewayHandle {
    let mut builder = octaneweb_schema::SchemaBuilder::new();
    builder
        .add_descriptor_set("builtin", octaneweb_proto::DESCRIPTOR_SET)
        .expect("built-in set")
        .add_reflection_services()
        .expect("reflection files");
    let options = GatewayOptions {
        schema: builder.build().expect("schema"),
        ..GatewayOptions::default()
    };
    start_gateway_with(&shared_render_server().to_string(), options).await
}

type BodyItem = Result<Frame<Bytes>, std::io::Error>;

/// One call over a fresh h2c connection: `send` writes request body chunks as the test
/// decides; the answer's envelopes are read one at a time.
struct DuplexCall {
    send: Option<mpsc::Sender<BodyItem>>,
    response: Option<tokio::task::JoinHandle<hyper::Result<http::Response<Incoming>>>>,
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Option<Incoming>,
    buffer: BytesMut,
    text: bool,
    /// grpc-web-text: base64 not yet decoded (each frame is padded on its own).
    text_pending: Vec<u8>,
}

impl DuplexCall {
    async fn open(
        gateway: &GatewayHandle,
        path: &str,
        headers: &[(&str, &str)],
        first: Bytes,
    ) -> DuplexCall {
        let authority = gateway.base.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        tokio::spawn(connection);
        let (send, receive) = mpsc::channel::<BodyItem>(4);
        send.send(Ok(Frame::data(first))).await.expect("queued");
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{authority}{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let text = headers
            .iter()
            .any(|(_, value)| value.starts_with("application/grpc-web-text"));
        let body = StreamBody::new(ReceiverStream::new(receive));
        let request = request.body(body).expect("request");
        DuplexCall {
            send: Some(send),
            response: Some(tokio::spawn(sender.send_request(request))),
            status: http::StatusCode::OK,
            headers: http::HeaderMap::new(),
            body: None,
            buffer: BytesMut::new(),
            text,
            text_pending: Vec::new(),
        }
    }

    /// Wait for the answer's headers (a bidirectional call has them while the request is
    /// still open; a client stream's upstream answers when the request ends).
    async fn answer(&mut self) {
        let Some(response) = self.response.take() else {
            return;
        };
        let response = tokio::time::timeout(EXCHANGE_TIMEOUT, response)
            .await
            .expect("the answer's headers in time")
            .expect("the request task")
            .expect("response");
        self.status = response.status();
        self.headers = response.headers().clone();
        self.body = Some(response.into_body());
    }

    /// Decode the whole base64 quanta received, one padded chunk at a time.
    fn decode_text(&mut self) {
        let whole = self.text_pending.len() / 4 * 4;
        let (mut start, mut end) = (0, 0);
        while end < whole {
            let padded = self.text_pending[end + 3] == b'=';
            end += 4;
            if padded || end == whole {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(&self.text_pending[start..end])
                    .expect("base64 frames");
                self.buffer.extend_from_slice(&decoded);
                start = end;
            }
        }
        self.text_pending.drain(..whole);
    }

    async fn send(&self, item: BodyItem) {
        self.send
            .as_ref()
            .expect("the request body is open")
            .send(item)
            .await
            .expect("the request body is open");
    }

    /// End the request stream.
    fn close(&mut self) {
        self.send = None;
    }

    /// The next envelope of the answer: (flags, payload); `None` at its end.
    async fn next(&mut self) -> Option<(u8, Bytes)> {
        self.answer().await;
        tokio::time::timeout(EXCHANGE_TIMEOUT, async {
            loop {
                if self.buffer.len() >= 5 {
                    let length = u32::from_be_bytes([
                        self.buffer[1],
                        self.buffer[2],
                        self.buffer[3],
                        self.buffer[4],
                    ]) as usize;
                    if self.buffer.len() >= 5 + length {
                        let flags = self.buffer[0];
                        self.buffer.advance(5);
                        return Some((flags, self.buffer.split_to(length).freeze()));
                    }
                }
                let frame = self.body.as_mut()?.frame().await?.expect("answer body");
                if let Ok(data) = frame.into_data() {
                    if self.text {
                        self.text_pending.extend_from_slice(&data);
                        self.decode_text();
                    } else {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        })
        .await
        .expect("an answer in time")
    }
}

fn reflection_request(request: MessageRequest) -> Bytes {
    let message = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    frame(0, &message.encode_to_vec())
}

fn reflection_answer(envelope: Option<(u8, Bytes)>) -> MessageResponse {
    let (flags, payload) = envelope.expect("an answer");
    assert_eq!(flags, 0, "a message envelope, got {flags:#x}: {payload:?}");
    ServerReflectionResponse::decode(payload)
        .expect("a ServerReflectionResponse")
        .message_response
        .expect("an answer")
}

/// One request, its answer, a second request, its answer, then close: each answer is read
/// while the request stream is still open, so a gateway that waited for the whole request
/// would fail this.
async fn reflection_turns(gateway: &GatewayHandle, content_type: &str) -> Option<(u8, Bytes)> {
    let encode = |bytes: Bytes| {
        if content_type.starts_with("application/grpc-web-text") {
            Bytes::from(base64::engine::general_purpose::STANDARD.encode(&bytes))
        } else {
            bytes
        }
    };
    let list = encode(reflection_request(MessageRequest::ListServices(
        String::new(),
    )));
    let mut call = DuplexCall::open(
        gateway,
        REFLECTION,
        &[("content-type", content_type), ("te", "trailers")],
        list,
    )
    .await;
    call.answer().await;
    assert_eq!(call.status, 200, "{:?}", call.headers);
    let Some(MessageResponse::ListServicesResponse(services)) =
        Some(reflection_answer(call.next().await))
    else {
        panic!("a list of services first");
    };
    assert!(
        services
            .service
            .iter()
            .any(|s| s.name == "livelinkapi.LiveLinkService"),
        "{services:?}"
    );
    call.send(Ok(Frame::data(encode(reflection_request(
        MessageRequest::FileContainingSymbol("livelinkapi.LiveLinkService".into()),
    )))))
    .await;
    let MessageResponse::FileDescriptorResponse(files) = reflection_answer(call.next().await)
    else {
        panic!("the file of the symbol second");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    // Close the request stream: the call ends with its final status.
    call.close();
    let end = call.next().await;
    assert!(call.next().await.is_none(), "nothing after the end");
    end
}

#[tokio::test]
async fn connect_bidi_over_http2_takes_turns() {
    let gateway = duplex_gateway().await;
    let (flags, end) = reflection_turns(&gateway, "application/connect+proto")
        .await
        .expect("an end-of-stream message");
    assert_eq!(flags, 0x02, "end of stream");
    let end: serde_json::Value = serde_json::from_slice(&end).expect("JSON");
    assert!(end.get("error").is_none(), "{end}");
}

#[tokio::test]
async fn grpc_web_bidi_over_http2_takes_turns() {
    let gateway = duplex_gateway().await;
    for content_type in ["application/grpc-web+proto", "application/grpc-web-text"] {
        let (flags, trailers) = reflection_turns(&gateway, content_type)
            .await
            .expect("the trailer frame");
        assert_eq!(flags, 0x80, "{content_type}: trailers");
        let trailers = String::from_utf8_lossy(&trailers);
        assert!(
            trailers.contains("grpc-status: 0"),
            "{content_type}: {trailers}"
        );
    }
}

fn camera(fov: f32) -> Vec<u8> {
    CameraState {
        fov_set: Some(octaneweb_proto::livelinkapi::camera_state::FovSet::Fov(fov)),
        ..CameraState::default()
    }
    .encode_to_vec()
}

/// The upstream streams the gateway's pool has open, from /metrics.
async fn upstream_streams(gateway: &GatewayHandle) -> u64 {
    let text = metrics_text(gateway).await;
    text.lines()
        .find_map(|line| line.strip_prefix("octaneweb_upstream_streams "))
        .and_then(|value| value.trim().parse().ok())
        .expect("octaneweb_upstream_streams in /metrics")
}

#[tokio::test]
async fn client_streams_reach_the_upstream_message_by_message() {
    let gateway = duplex_gateway().await;
    // Content type, how the body is written, the flags of the answer's last envelope.
    type Encode = fn(Bytes) -> Bytes;
    let cases: [(&str, Encode, u8); 3] = [
        ("application/connect+proto", |b| b, 0x02),
        ("application/grpc-web+proto", |b| b, 0x80),
        (
            "application/grpc-web-text",
            |b| Bytes::from(base64::engine::general_purpose::STANDARD.encode(&b)),
            0x80,
        ),
    ];
    for (content_type, encode, end_flags) in cases {
        let mut call = DuplexCall::open(
            &gateway,
            STREAM_CAMERA,
            &[("content-type", content_type)],
            encode(frame(0, &camera(31.0))),
        )
        .await;
        // The first message is upstream before the request ends: the call holds a stream.
        eventually("the upstream stream to open", || async {
            upstream_streams(&gateway).await == 1
        })
        .await;
        call.send(Ok(Frame::data(encode(frame(0, &camera(32.5))))))
            .await;
        call.close();
        let (flags, payload) = call.next().await.expect("the answer");
        assert_eq!(call.status, 200, "{content_type}: {:?}", call.headers);
        assert_eq!(flags, 0, "{content_type}");
        let status = StreamStatus::decode(payload).expect("a StreamStatus");
        assert!(!status.message.is_empty(), "{content_type}");
        let (flags, _) = call.next().await.expect("the end");
        assert_eq!(flags, end_flags, "{content_type}");
        let camera: serde_json::Value = call_ok(&gateway, "/LiveLink/GetCamera", "{}").await;
        assert_eq!(
            camera["fov"], 32.5,
            "{content_type}: the last state applies"
        );
    }
}

#[tokio::test]
async fn a_cancelled_client_stream_resets_the_upstream_stream() {
    let gateway = duplex_gateway().await;
    for content_type in ["application/connect+proto", "application/grpc-web+proto"] {
        let call = DuplexCall::open(
            &gateway,
            STREAM_CAMERA,
            &[("content-type", content_type)],
            frame(0, &camera(40.0)),
        )
        .await;
        eventually("the upstream stream to open", || async {
            upstream_streams(&gateway).await == 1
        })
        .await;
        // The client resets its stream mid-call (hyper sends RST_STREAM for a body error).
        call.send(Err(std::io::Error::other("the client gives up")))
            .await;
        eventually("the upstream stream to be released", || async {
            upstream_streams(&gateway).await == 0
        })
        .await;
        let protocol = if content_type.starts_with("application/connect") {
            octaneweb_gateway::Protocol::Connect
        } else {
            octaneweb_gateway::Protocol::GrpcWeb
        };
        let metrics = &gateway.state.metrics;
        eventually("the call to be counted as cancelled", || async {
            metrics.calls(
                protocol,
                "livelinkapi.LiveLinkService/StreamCamera",
                tonic::Code::Cancelled,
            ) == 1
                && metrics.in_flight(protocol) == 0
        })
        .await;
    }
}

#[tokio::test]
async fn connect_json_client_stream_over_http1() {
    let gateway = duplex_gateway().await;
    // The body streams in over HTTP/1.1 (chunked), one envelope per chunk.
    let chunks: Vec<Result<Bytes, Infallible>> = [r#"{"fov":21}"#, r#"{"fov": 22.5}"#]
        .into_iter()
        .map(|json| Ok(frame(0, json.as_bytes())))
        .collect();
    let response = client()
        .post(gateway.url(STREAM_CAMERA))
        .header("content-type", "application/connect+json")
        .body(streamed(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.expect("body");
    let message_len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let message: serde_json::Value =
        serde_json::from_slice(&body[5..5 + message_len]).expect("JSON");
    assert!(message["message"].is_string(), "{message}");
    let end = &body[5 + message_len..];
    assert_eq!(end[0], 0x02);
    let camera = call_ok(&gateway, "/LiveLink/GetCamera", "{}").await;
    assert_eq!(camera["fov"], 22.5);

    // A message that is not the method's input ends the call with the error naming it.
    let response = client()
        .post(gateway.url(STREAM_CAMERA))
        .header("content-type", "application/connect+json")
        .body(frame(0, br#"{"fov":"wide"}"#).to_vec())
        .send()
        .await
        .expect("answer");
    let body = response.bytes().await.expect("body");
    assert_eq!(body[0], 0x02, "only the end of stream");
    let end: serde_json::Value = serde_json::from_slice(&body[5..]).expect("JSON");
    assert_eq!(end["error"]["code"], "invalid_argument", "{end}");
    assert!(
        end["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("fov")),
        "{end}"
    );
}

#[tokio::test]
async fn bidi_over_http1_is_refused_at_once() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gateway = duplex_gateway().await;
    let authority = gateway.base.trim_start_matches("http://").to_owned();
    for content_type in ["application/connect+proto", "application/grpc-web+proto"] {
        // The head and a first chunked message, and then nothing: the body stays open, as
        // a bidirectional client's does while it waits for its first answer.
        let first = reflection_request(MessageRequest::ListServices(String::new()));
        let mut socket = tokio::net::TcpStream::connect(&authority)
            .await
            .expect("connect");
        let head = format!(
            "POST {REFLECTION} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: {content_type}\r\n\
             transfer-encoding: chunked\r\n\r\n{:x}\r\n",
            first.len()
        );
        socket.write_all(head.as_bytes()).await.expect("head");
        socket.write_all(&first).await.expect("message");
        socket.write_all(b"\r\n").await.expect("chunk end");
        // The whole answer arrives while the request is still open, saying the connection
        // ends with it.
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            let mut answer = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let read = socket.read(&mut chunk).await.expect("read");
                assert!(read > 0, "closed before the answer: {answer:?}");
                answer.extend_from_slice(&chunk[..read]);
                if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length: "))
                        .and_then(|value| value.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if answer.len() >= end + 4 + length {
                        return answer;
                    }
                }
            }
        })
        .await
        .expect("answered while the request is still open");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let lower = answer.to_ascii_lowercase();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(lower.contains("connection: close"), "{answer}");
        let message = if content_type.starts_with("application/connect") {
            assert!(lower.contains("\"code\":\"invalid_argument\""), "{answer}");
            answer
        } else {
            assert!(lower.contains("grpc-status: 3"), "{answer}");
            percent_decode(&answer)
        };
        assert!(
            message.contains("ServerReflectionInfo is a bidirectional-streaming method")
                && message.contains("over HTTP/1.1 cannot carry it")
                && message.contains("HTTP/2")
                && message.contains("/ws"),
            "{content_type}: {message}"
        );
    }
    // The gateway serves on.
    call_ok(&gateway, "/LiveLink/GetCamera", "{}").await;
}

/// A reqwest body that sends `chunks` as they come.
fn streamed(
    chunks: impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + Sync + 'static,
) -> reqwest::Body {
    use futures::StreamExt as _;
    reqwest::Body::wrap(StreamBody::new(chunks.map(|chunk| chunk.map(Frame::data))))
}

/// `grpc-message` is percent-encoded; enough of it for the assertions above.
fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                let value = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16);
                out.push(value.unwrap_or(b'?'));
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_request_stream_keeps_the_deadline_and_the_message_limit() {
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            config: octaneweb_gateway::GatewayConfig {
                max_body_bytes: 4096,
                ..octaneweb_gateway::GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    // The deadline runs while the request is still open: the call ends at it.
    for (content_type, header, value) in [
        ("application/connect+proto", "connect-timeout-ms", "300"),
        ("application/grpc-web+proto", "grpc-timeout", "300m"),
    ] {
        let started = std::time::Instant::now();
        let mut call = DuplexCall::open(
            &gateway,
            STREAM_CAMERA,
            &[("content-type", content_type), (header, value)],
            frame(0, &camera(41.0)),
        )
        .await;
        let ended = call.next().await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{content_type}: ended after {:?}",
            started.elapsed()
        );
        assert_deadline_or_status(content_type, &call, ended, "deadline_exceeded", "4");
        call.close();
    }
    // A message over the limit ends the call as soon as its header arrives, the request
    // still open.
    for content_type in ["application/connect+proto", "application/grpc-web+proto"] {
        let mut header = vec![0u8; 5];
        header[1..].copy_from_slice(&5000u32.to_be_bytes());
        let mut call = DuplexCall::open(
            &gateway,
            STREAM_CAMERA,
            &[("content-type", content_type)],
            Bytes::from(header),
        )
        .await;
        let ended = call.next().await;
        assert_deadline_or_status(content_type, &call, ended, "resource_exhausted", "8");
        call.close();
    }
    call_ok(&gateway, "/LiveLink/GetCamera", "{}").await;
}

/// The call ended with `connect_code` (Connect's end-of-stream) or `grpc_status` (gRPC-Web,
/// trailers-only or a trailer frame).
fn assert_deadline_or_status(
    content_type: &str,
    call: &DuplexCall,
    ended: Option<(u8, Bytes)>,
    connect_code: &str,
    grpc_status: &str,
) {
    if content_type.starts_with("application/connect") {
        let (flags, payload) = ended.expect("an end-of-stream message");
        assert_eq!(flags, 0x02, "{content_type}");
        let end: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
        assert_eq!(end["error"]["code"], connect_code, "{end}");
        return;
    }
    let status = match ended {
        Some((0x80, trailers)) => String::from_utf8_lossy(&trailers)
            .lines()
            .find_map(|line| line.strip_prefix("grpc-status: ").map(str::to_owned))
            .unwrap_or_default(),
        None => call.headers["grpc-status"]
            .to_str()
            .unwrap_or_default()
            .to_owned(),
        other => panic!("{content_type}: {other:?}"),
    };
    assert_eq!(
        status.trim(),
        grpc_status,
        "{content_type}: {:?}",
        call.headers
    );
}
