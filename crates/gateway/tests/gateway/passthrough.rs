//! Native gRPC pass-through: tonic clients pointed at the gateway, all four RPC kinds, a
//! method the schema does not know, deadlines, cancellation, gzip and bad frames.

use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use octaneweb_gateway::{GatewayConfig, Protocol, ReflectionAnswers};
use octaneweb_proto::livelinkapi::camera_state::{FovSet, PosSet};
use octaneweb_proto::livelinkapi::live_link_service_client::LiveLinkServiceClient;
use octaneweb_proto::livelinkapi::{CameraState, Empty, Vec3};
use octaneweb_proto::octaneapi::stream_callback_service_client::StreamCallbackServiceClient;
use tonic::transport::Channel;
use tonic::Code;

use crate::common::*;

/// A tonic channel to `base` (`http://127.0.0.1:port`).
pub async fn channel(base: &str) -> Channel {
    tokio::time::timeout(
        EXCHANGE_TIMEOUT,
        Channel::from_shared(base.to_owned())
            .expect("uri")
            .connect(),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(EXCHANGE_TIMEOUT, future)
        .await
        .expect("in time")
}

#[tokio::test]
async fn all_four_rpc_kinds_pass_through() {
    let render = start_render_server(small_config()).await;
    // Reflection is the render server's only bidirectional method: left to the upstream
    // (as under --reflect), it is a bidirectional pass-through.
    let gateway = start_gateway_with(
        &render.addr.to_string(),
        GatewayOptions {
            config: GatewayConfig {
                reflection: ReflectionAnswers::Upstream,
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let through = channel(&gateway.base).await;
    let direct = channel(&format!("http://{}", render.addr)).await;

    // Unary: the same answer as the upstream gives directly.
    let mut live = LiveLinkServiceClient::new(through.clone());
    let via_gateway = within(live.get_camera(Empty {}))
        .await
        .expect("GetCamera through the gateway")
        .into_inner();
    let straight = within(LiveLinkServiceClient::new(direct.clone()).get_camera(Empty {}))
        .await
        .expect("GetCamera direct")
        .into_inner();
    assert_eq!(via_gateway, straight);

    // Client streaming: every state is applied, one answer at the end.
    let states: Vec<CameraState> = [31.0_f32, 32.0, 33.0]
        .into_iter()
        .map(|fov| CameraState {
            fov_set: Some(FovSet::Fov(fov)),
            pos_set: Some(PosSet::Position(Vec3 {
                x: 1.0,
                y: 2.0,
                z: fov,
            })),
            ..Default::default()
        })
        .collect();
    let status = within(live.stream_camera(tokio_stream::iter(states)))
        .await
        .expect("StreamCamera")
        .into_inner();
    assert!(!status.message.is_empty(), "{status:?}");
    let camera = within(live.get_camera(Empty {}))
        .await
        .expect("GetCamera")
        .into_inner();
    assert_eq!(camera.fov_set, Some(FovSet::Fov(33.0)));

    // Server streaming: the callback stream delivers notifications.
    let mut callbacks =
        within(StreamCallbackServiceClient::new(through.clone()).callback_channel(()))
            .await
            .expect("callbackChannel")
            .into_inner();
    let first = within(callbacks.message())
        .await
        .expect("healthy stream")
        .expect("a notification");
    assert!(first.payload.is_some(), "{first:?}");
    drop(callbacks);

    // Bidirectional streaming: reflection lists the upstream's services.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "livelinkapi.LiveLinkService".into(),
            )),
        },
    ];
    let mut answers = within(
        ServerReflectionClient::new(through.clone())
            .server_reflection_info(tokio_stream::iter(requests)),
    )
    .await
    .expect("reflection")
    .into_inner();
    let mut kinds = Vec::new();
    while let Some(answer) = within(answers.message()).await.expect("healthy") {
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                assert!(
                    list.service
                        .iter()
                        .any(|s| s.name == "livelinkapi.LiveLinkService"),
                    "{list:?}"
                );
                kinds.push("list");
            }
            Some(MessageResponse::FileDescriptorResponse(files)) => {
                assert!(!files.file_descriptor_proto.is_empty());
                kinds.push("file");
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }
    assert_eq!(kinds, ["list", "file"]);

    let metrics = &gateway.state.metrics;
    assert!(
        metrics.calls(
            Protocol::Grpc,
            "livelinkapi.LiveLinkService/GetCamera",
            Code::Ok
        ) >= 2
    );
    assert_eq!(
        metrics.calls(
            Protocol::Grpc,
            "livelinkapi.LiveLinkService/StreamCamera",
            Code::Ok
        ),
        1
    );
    // The built-in schema does not know reflection: forwarded all the same, and counted
    // under the one label of unknown paths.
    assert_eq!(metrics.calls(Protocol::Grpc, "unresolved", Code::Ok), 1);
}

#[tokio::test]
async fn a_method_unknown_to_the_schema_passes_through() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    assert!(
        gateway
            .state
            .schema
            .find_method_path("grpc.health.v1.Health/Check")
            .is_err(),
        "the built-in schema must not know the health service for this test"
    );
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let mut health = HealthClient::new(channel(&gateway.base).await);
    let answer = within(health.check(HealthCheckRequest {
        service: "livelinkapi.LiveLinkService".into(),
    }))
    .await
    .expect("health check through the gateway")
    .into_inner();
    assert_eq!(answer.status, ServingStatus::Serving as i32);
    // An unknown service is the upstream's NOT_FOUND, passed through unchanged.
    let status = within(health.check(HealthCheckRequest {
        service: "no.such.Service".into(),
    }))
    .await
    .expect_err("unknown service");
    assert_eq!(status.code(), Code::NotFound);
    // A path the upstream does not serve at all is its UNIMPLEMENTED.
    let status = raw_grpc(&gateway, "/no.such.Service/Method", &[], frame(0, b""))
        .await
        .status();
    assert_eq!(status, 12);
}

#[tokio::test]
async fn deadlines_pass_through_and_the_gateway_default_caps_them() {
    let upstream = shared_render_server().to_string();
    let gateway = start_gateway(&upstream).await;
    let mut client = StreamCallbackServiceClient::new(channel(&gateway.base).await);
    let mut request = tonic::Request::new(());
    request.set_timeout(Duration::from_millis(300));
    let outcome = within(async {
        let mut stream = client.callback_channel(request).await?.into_inner();
        while stream.message().await?.is_some() {}
        Ok::<(), tonic::Status>(())
    })
    .await;
    let status = outcome.expect_err("the stream ends at the deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    // The client sets no deadline; the gateway's default ends the call.
    let capped = start_gateway_with(
        &upstream,
        GatewayOptions {
            default_timeout: Some(Duration::from_millis(300)),
            ..GatewayOptions::default()
        },
    )
    .await;
    let mut client = StreamCallbackServiceClient::new(channel(&capped.base).await);
    let outcome = within(async {
        let mut stream = client.callback_channel(()).await?.into_inner();
        while stream.message().await?.is_some() {}
        Ok::<(), tonic::Status>(())
    })
    .await;
    let status = outcome.expect_err("the stream ends at the gateway's deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_call() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut client = StreamCallbackServiceClient::new(channel(&gateway.base).await);
    let mut stream = within(client.callback_channel(()))
        .await
        .expect("callbackChannel")
        .into_inner();
    within(stream.message())
        .await
        .expect("healthy")
        .expect("a notification");
    assert_eq!(gateway.state.metrics.in_flight(Protocol::Grpc), 1);
    drop(stream);
    let metrics = &gateway.state.metrics;
    eventually("the call to be recorded as cancelled", || async {
        metrics.calls(
            Protocol::Grpc,
            "octaneapi.StreamCallbackService/callbackChannel",
            Code::Cancelled,
        ) == 1
            && metrics.in_flight(Protocol::Grpc) == 0
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_upstream_is_unavailable() {
    let gateway = start_gateway(&closed_port().await.to_string()).await;
    let status =
        within(LiveLinkServiceClient::new(channel(&gateway.base).await).get_camera(Empty {}))
            .await
            .expect_err("no upstream");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("upstream"), "{status:?}");
}

#[tokio::test]
async fn gzip_is_accepted_and_answered() {
    use tonic::codec::CompressionEncoding;
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut live = LiveLinkServiceClient::new(channel(&gateway.base).await)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let meshes = within(live.get_meshes(Empty {}))
        .await
        .expect("GetMeshes with gzip")
        .into_inner();
    assert!(!meshes.meshes.is_empty());
    let mesh = within(live.get_mesh(octaneweb_proto::livelinkapi::MeshRequest {
        objecthandle: meshes.meshes[0].object_handle as i32,
    }))
    .await
    .expect("GetMesh with gzip")
    .into_inner();
    assert!(!mesh.positions.is_empty());

    // On the wire: a gzip request frame is accepted, and a large answer comes back gzip.
    let request = frame(1, &gzip(&[]));
    let answer = raw_grpc(
        &gateway,
        "/livelinkapi.LiveLinkService/GetMeshes",
        &[("grpc-encoding", "gzip"), ("grpc-accept-encoding", "gzip")],
        request,
    )
    .await;
    assert_eq!(answer.http_status, 200);
    assert_eq!(answer.status(), 0, "{:?}", answer.headers);
    assert_eq!(answer.headers["grpc-encoding"], "gzip");
    assert!(!answer.data.is_empty());
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

#[tokio::test]
async fn bad_frames_get_grpc_errors_and_the_gateway_keeps_serving() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut live = LiveLinkServiceClient::new(channel(&gateway.base).await);
    let path = "/livelinkapi.LiveLinkService/GetCamera";

    // A frame announcing more than the message limit.
    let mut oversize = BytesMut::new();
    oversize.put_u8(0);
    oversize.put_u32(u32::MAX);
    oversize.put_slice(b"abc");
    let answer = raw_grpc(&gateway, path, &[], oversize.freeze()).await;
    assert_eq!(
        answer.status(),
        Code::ResourceExhausted as i32,
        "{answer:?}"
    );
    assert!(answer.message().contains("limit"), "{answer:?}");
    within(live.get_camera(Empty {}))
        .await
        .expect("still serving");

    // A body that ends inside a frame.
    let truncated = Bytes::from_static(&[0, 0, 0, 0, 10, 1, 2, 3]);
    let answer = raw_grpc(&gateway, path, &[], truncated).await;
    assert_eq!(answer.status(), Code::InvalidArgument as i32, "{answer:?}");
    assert!(
        answer.message().contains("ended inside a frame"),
        "{answer:?}"
    );
    within(live.get_camera(Empty {}))
        .await
        .expect("still serving");

    // The compressed flag without grpc-encoding.
    let answer = raw_grpc(&gateway, path, &[], frame(1, b"")).await;
    assert_eq!(answer.status(), Code::InvalidArgument as i32, "{answer:?}");
    assert!(answer.message().contains("grpc-encoding"), "{answer:?}");

    // Flags gRPC does not define (a gRPC-Web trailer frame).
    let answer = raw_grpc(&gateway, path, &[], frame(0x80, b"")).await;
    assert_eq!(answer.status(), Code::InvalidArgument as i32, "{answer:?}");
    assert!(answer.message().contains("0x80"), "{answer:?}");

    // An encoding the gateway does not know.
    let answer = raw_grpc(&gateway, path, &[("grpc-encoding", "br")], frame(1, b"")).await;
    assert_eq!(answer.status(), Code::Unimplemented as i32, "{answer:?}");
    assert!(answer.message().contains("br"), "{answer:?}");

    // Corrupt gzip.
    let answer = raw_grpc(
        &gateway,
        path,
        &[("grpc-encoding", "gzip")],
        frame(1, b"not gzip"),
    )
    .await;
    assert_eq!(answer.status(), Code::InvalidArgument as i32, "{answer:?}");

    // Not a method path.
    let answer = raw_grpc(&gateway, "/not-a-method", &[], frame(0, b"")).await;
    assert_eq!(answer.status(), Code::Unimplemented as i32, "{answer:?}");

    // A malformed deadline.
    let answer = raw_grpc(&gateway, path, &[("grpc-timeout", "soon")], frame(0, b"")).await;
    assert_eq!(answer.status(), Code::InvalidArgument as i32, "{answer:?}");

    within(live.get_camera(Empty {}))
        .await
        .expect("still serving");
}

/// One gRPC frame.
pub fn frame(flags: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(flags);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.freeze()
}

/// A raw HTTP/2 gRPC exchange: response headers and trailers merged, data bytes.
#[derive(Debug)]
pub struct RawAnswer {
    pub http_status: u16,
    pub headers: http::HeaderMap,
    pub data: Bytes,
}

impl RawAnswer {
    /// grpc-status from the trailers (or headers of a trailers-only answer).
    pub fn status(&self) -> i32 {
        self.headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    }

    /// grpc-message, percent-decoded.
    pub fn message(&self) -> String {
        let raw = self
            .headers
            .get("grpc-message")
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (raw[i], hex) {
                (b'%', Some(byte)) => {
                    out.push(byte);
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
}

/// Send `body` as a gRPC request over a fresh h2c connection to the gateway.
pub async fn raw_grpc(
    gateway: &GatewayHandle,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> RawAnswer {
    raw_grpc_reading_after(gateway, path, headers, body, Duration::ZERO).await
}

/// [`raw_grpc`], waiting `delay` after the response headers before reading the body (so the
/// answer piles up in the client's HTTP/2 buffers).
pub async fn raw_grpc_reading_after(
    gateway: &GatewayHandle,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    delay: Duration,
) -> RawAnswer {
    within(async {
        let authority = gateway.base.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .expect("connect");
        // HTTP/2's default windows (64 KiB), as many gRPC clients use.
        let (mut sender, connection) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .initial_connection_window_size(65_535)
                .initial_stream_window_size(65_535)
                .handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        tokio::spawn(connection);
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{authority}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).expect("request");
        let response = sender.send_request(request).await.expect("response");
        tokio::time::sleep(delay).await;
        let http_status = response.status().as_u16();
        let mut merged = response.headers().clone();
        let collected = response.into_body().collect().await.expect("body");
        if let Some(trailers) = collected.trailers() {
            merged.extend(trailers.clone());
        }
        RawAnswer {
            http_status,
            headers: merged,
            data: collected.to_bytes(),
        }
    })
    .await
}

/// A purpose-built upstream that shows what reached it: it echoes the request's frames,
/// answers `x-meta` as `x-meta-echo`, lists the request's header names in `x-seen-headers`
/// and its `grpc-timeout` in `x-seen-timeout`, and ends with a custom trailer `x-trailer: t1`.
pub async fn start_echo_upstream() -> std::net::SocketAddr {
    use http_body_util::StreamBody;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = hyper::service::service_fn(
                |request: http::Request<hyper::body::Incoming>| async move {
                    let headers = request.headers().clone();
                    let names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
                    let mut response = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .header("x-seen-headers", names.join(","));
                    if let Some(meta) = headers.get("x-meta") {
                        response = response.header("x-meta-echo", meta);
                    }
                    if let Some(timeout) = headers.get("grpc-timeout") {
                        response = response.header("x-seen-timeout", timeout);
                    }
                    let body = request
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    trailers.insert("x-trailer", http::HeaderValue::from_static("t1"));
                    let frames = vec![
                        Ok::<_, std::convert::Infallible>(http_body::Frame::data(body)),
                        Ok(http_body::Frame::trailers(trailers)),
                    ];
                    let body = StreamBody::new(futures::stream::iter(frames));
                    Ok::<_, std::convert::Infallible>(response.body(body).expect("response"))
                },
            );
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[tokio::test]
async fn metadata_headers_and_trailers_cross_every_protocol() {
    let echo = start_echo_upstream().await;
    let gateway = start_gateway_with(
        &echo.to_string(),
        GatewayOptions {
            default_timeout: Some(Duration::from_secs(2)),
            ..GatewayOptions::default()
        },
    )
    .await;
    let payload = b"opaque bytes the gateway never decodes";

    // Native gRPC: metadata up, headers and trailers down, the deadline capped at 2 s.
    let answer = raw_grpc(
        &gateway,
        "/test.Echo/Unary",
        &[("x-meta", "hello"), ("grpc-timeout", "1H")],
        frame(0, payload),
    )
    .await;
    assert_eq!(answer.status(), 0, "{answer:?}");
    assert_eq!(answer.headers["x-meta-echo"], "hello");
    assert_eq!(answer.headers["x-trailer"], "t1");
    assert_eq!(answer.data, frame(0, payload));
    let seen = answer.headers["x-seen-headers"].to_str().expect("ascii");
    assert!(
        !seen
            .split(',')
            .any(|h| h == "connection" || h == "grpc-accept-encoding"),
        "{seen}"
    );
    let timeout = answer.headers["x-seen-timeout"].to_str().expect("ascii");
    let timeout =
        octaneweb_gateway::wire::deadline::parse_grpc_timeout(timeout).expect("a timeout");
    assert!(timeout <= Duration::from_secs(2), "{timeout:?}");

    // gRPC-Web: the custom trailer is in the trailer frame; browser headers stay here.
    let response = client()
        .post(gateway.url("/test.Echo/Unary"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("x-meta", "web")
        .header("origin", gateway.base.as_str())
        .body(frame(0, payload).to_vec())
        .send()
        .await
        .expect("grpc-web");
    assert_eq!(response.headers()["x-meta-echo"], "web");
    let seen = response.headers()["x-seen-headers"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        !seen.split(',').any(|h| h == "x-grpc-web" || h == "origin"),
        "{seen}"
    );
    let body = response.bytes().await.expect("body");
    let trailer_frame = &body[frame(0, payload).len()..];
    assert_eq!(trailer_frame[0], 0x80);
    let trailers = String::from_utf8_lossy(&trailer_frame[5..]);
    assert!(trailers.contains("x-trailer: t1\r\n"), "{trailers}");

    // Connect unary (binary: a method the schema does not know): trailers as trailer- headers.
    let response = client()
        .post(gateway.url("/test.Echo/Unary"))
        .header("content-type", "application/proto")
        .header("x-meta", "connect")
        .body(payload.to_vec())
        .send()
        .await
        .expect("connect");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-meta-echo"], "connect");
    assert_eq!(response.headers()["trailer-x-trailer"], "t1");
    assert_eq!(&response.bytes().await.expect("body")[..], payload);

    // Connect stream: trailers in the end-of-stream metadata.
    let response = client()
        .post(gateway.url("/test.Echo/Unary"))
        .header("content-type", "application/connect+proto")
        .body(frame(0, payload).to_vec())
        .send()
        .await
        .expect("connect stream");
    let body = response.bytes().await.expect("body");
    let end = &body[frame(0, payload).len()..];
    assert_eq!(end[0], 0x02);
    let end: serde_json::Value = serde_json::from_slice(&end[5..]).expect("end JSON");
    assert_eq!(end["metadata"]["x-trailer"][0], "t1", "{end}");
    assert!(end.get("error").is_none(), "{end}");
}

#[tokio::test]
async fn answers_carry_only_what_the_upstream_sent() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let foreign = |answer: &RawAnswer| -> Vec<String> {
        answer
            .headers
            .keys()
            .map(|k| k.as_str().to_owned())
            .filter(|k| {
                k == "x-call-id"
                    || k == "vary"
                    || k == "content-length"
                    || k.starts_with("access-control-")
            })
            .collect()
    };
    let ok = raw_grpc(
        &gateway,
        "/livelinkapi.LiveLinkService/GetCamera",
        &[],
        frame(0, b""),
    )
    .await;
    assert_eq!(ok.status(), 0);
    assert!(foreign(&ok).is_empty(), "{:?}", ok.headers);
    let trailers_only = raw_grpc(&gateway, "/no.such.Service/Method", &[], frame(0, b"")).await;
    assert_eq!(trailers_only.status(), 12);
    assert!(trailers_only.data.is_empty());
    assert!(
        foreign(&trailers_only).is_empty(),
        "{:?}",
        trailers_only.headers
    );
}

/// An upstream that answers every call with `count` tiny messages, each in its own DATA
/// frame, as fast as it can, then `grpc-status: 0`.
pub async fn start_burst_upstream(count: usize) -> std::net::SocketAddr {
    use http_body_util::StreamBody;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = hyper::service::service_fn(
                move |_request: http::Request<hyper::body::Incoming>| async move {
                    let mut frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
                        (0..count)
                            .map(|i| Ok(http_body::Frame::data(frame(0, &[i as u8, 1, 2]))))
                            .collect();
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                    frames.push(Ok(http_body::Frame::trailers(trailers)));
                    let body = StreamBody::new(futures::stream::iter(frames));
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(body)
                            .expect("response"),
                    )
                },
            );
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// h2 (0.4.20 and later) closes a connection whose peer sends many tiny DATA frames that pile
/// up unread; the gateway sends each small message as one frame, as gRPC servers do, so a
/// client reading a burst late still gets all of it.
#[tokio::test]
async fn a_burst_of_small_messages_read_late_arrives_whole() {
    let upstream = start_burst_upstream(100).await;
    let gateway = start_gateway(&upstream.to_string()).await;
    let answer = raw_grpc_reading_after(
        &gateway,
        "/test.Burst/Stream",
        &[],
        frame(0, b""),
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(answer.status(), 0, "{answer:?}");
    assert_eq!(answer.data.len(), 100 * 8);
}
