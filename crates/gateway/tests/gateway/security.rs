//! The front door over real sockets: DNS-rebinding hosts, side-effecting and cross-site GETs,
//! the token (header, cookie, WebSocket, every protocol, never forwarded), TLS and mutual
//! TLS, the method policy on every protocol, connection caps and timeouts, rate limits.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use octaneweb_gateway::{AccessToken, ConnectionLimits, GatewayConfig, MethodPolicy, ServeOptions};
use octaneweb_proto::livelinkapi::camera_state::FovSet;
use octaneweb_proto::livelinkapi::live_link_service_client::LiveLinkServiceClient;
use octaneweb_proto::livelinkapi::{CameraState, Empty};
use serde_json::{json, Value};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;

use crate::common::*;
use crate::passthrough::{raw_grpc, start_echo_upstream};
use crate::ws::Ws;

const TOKEN: &str = "test-token-0123456789abcdef";

/// One HTTP/1.1 exchange written by hand (any `Host`, any header); returns the status line's
/// code, the header block and the body as text. Blocking I/O, off the test's runtime thread
/// (which also serves the gateway).
async fn raw_http(addr: &str, request: &str) -> (u16, String, String) {
    let (addr, request) = (addr.to_owned(), request.to_owned());
    tokio::task::spawn_blocking(move || raw_http_blocking(&addr, &request))
        .await
        .expect("exchange")
}

fn raw_http_blocking(addr: &str, request: &str) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(EXCHANGE_TIMEOUT))
        .expect("read timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    // Read until the headers and the announced body are in (the connection may stay open).
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if answer.len() >= end + 4 + length || n == 0 {
                break;
            }
        } else if n == 0 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn authority(gateway: &GatewayHandle) -> String {
    gateway
        .base
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_owned()
}

fn port(gateway: &GatewayHandle) -> u16 {
    authority(gateway)
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

async fn gateway_with_config(target: &str, config: GatewayConfig) -> GatewayHandle {
    start_gateway_with(
        target,
        GatewayOptions {
            config,
            ..GatewayOptions::default()
        },
    )
    .await
}

/// An enveloped/length-prefixed message frame (gRPC, gRPC-Web, Connect streams).
fn frame(flags: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flags);
    out.put_u32(u32::try_from(payload.len()).expect("small"));
    out.put_slice(payload);
    out.freeze()
}

#[tokio::test]
async fn a_rebinding_host_is_refused_on_every_route_and_on_websocket_upgrades() {
    let gateway = gateway_with_config(
        &shared_render_server().to_string(),
        GatewayConfig {
            allowed_hosts: vec!["render-box.lan".into()],
            ..GatewayConfig::default()
        },
    )
    .await;
    let addr = authority(&gateway);
    let port = port(&gateway);
    let requests = [
        "POST /LiveLink/GetCamera HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        "GET /sse/StreamCallback/callbackChannel HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "GET /schema HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "GET /schema.binpb HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "POST /batch HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\n[]",
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        "POST /livelinkapi.LiveLinkService/GetCamera HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nConnect-Protocol-Version: 1\r\nContent-Length: 2\r\n\r\n{}",
        "GET /no/such/route HTTP/1.1\r\nHost: {host}\r\n\r\n",
    ];
    for template in requests {
        let refused = template.replace("{host}", &format!("evil.example:{port}"));
        let (status, head, body) = raw_http(&addr, &refused).await;
        // Connect answers with its code's HTTP status (403), the others with 421.
        assert!(
            status == 421 || (status == 403 && template.contains("Connect-Protocol")),
            "{template}\n{head}\n{body}"
        );
        assert!(
            body.contains("evil.example") && body.contains("--allowed-host"),
            "{body}"
        );
        for host in [
            format!("localhost:{port}"),
            format!("render-box.lan:{port}"),
        ] {
            let served = template.replace("{host}", &host);
            let (status, head, _) = raw_http(&addr, &served).await;
            assert_ne!(status, 421, "{host}: {template}\n{head}");
            assert!(status != 0 && status != 403, "{host}: {head}");
        }
    }
    // gRPC-Web and native gRPC read the refusal as their own status.
    let (status, head, _) = raw_http(
        &addr,
        "POST /livelinkapi.LiveLinkService/GetCamera HTTP/1.1\r\nHost: evil.example\r\nContent-Type: application/grpc-web+proto\r\nContent-Length: 5\r\n\r\n\0\0\0\0\0",
    )
    .await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("grpc-status: 7"), "{head}");
    // Native gRPC over h2c: the `:authority` is checked like `Host`.
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    for (authority, refused) in [
        (format!("evil.example:{port}"), true),
        (addr.clone(), false),
    ] {
        let request = http::Request::post(format!(
            "http://{authority}/livelinkapi.LiveLinkService/GetCamera"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(frame(0, b"")))
        .expect("request");
        let response = sender.send_request(request).await.expect("answer");
        let grpc_status = response
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        if refused {
            assert_eq!(
                grpc_status.as_deref(),
                Some("7"),
                "{:?}",
                response.headers()
            );
        } else {
            assert_eq!(response.status(), 200);
            assert_ne!(grpc_status.as_deref(), Some("7"));
        }
    }
}

#[tokio::test]
async fn side_effecting_gets_and_cross_site_requests_are_refused() {
    let render = start_render_server(small_config()).await;
    let gateway = start_gateway(&render.addr.to_string()).await;
    let before = call_ok(&gateway, "/LiveLink/GetCamera", "{}").await;

    // `<img src=".../sse/LiveLink/SetCamera?message=...">`: refused, naming POST.
    let response = client()
        .get(gateway.url("/sse/LiveLink/SetCamera?message=%7B%22fov%22%3A170%7D"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let answer = read_answer(response).await;
    assert!(
        answer.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("POST")),
        "{}",
        answer.body
    );
    // A cross-site sub-resource request carries no Origin, but says where it is from.
    let response = client()
        .get(gateway.url("/sse/StreamCallback/callbackChannel"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "no-cors")
        .header("sec-fetch-dest", "image")
        .send()
        .await
        .expect("request");
    let refused = read_answer(response).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("--cors-origin")),
        "{}",
        refused.body
    );
    let response = client()
        .post(gateway.url("/LiveLink/SetCamera"))
        .header("sec-fetch-site", "same-site")
        .body(r#"{"fov": 150}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    // Following a link to the gateway loads it.
    let response = client()
        .get(gateway.url("/schema"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        call_ok(&gateway, "/LiveLink/GetCamera", "{}").await,
        before,
        "nothing reached the upstream"
    );
    render.stop().await;
}

async fn token_gateway(target: &str) -> GatewayHandle {
    gateway_with_config(
        target,
        GatewayConfig {
            token: Some(AccessToken::new(TOKEN).expect("token")),
            ..GatewayConfig::default()
        },
    )
    .await
}

#[tokio::test]
async fn the_token_is_required_by_header_cookie_or_websocket() {
    let gateway = token_gateway(&shared_render_server().to_string()).await;

    // Without it, or with a wrong one: 401 UNAUTHENTICATED, asking for a bearer token.
    for authorization in [
        None,
        Some("Bearer wrong-token-0123456789abcdef"),
        Some(TOKEN),
    ] {
        let mut request = client().post(gateway.url("/LiveLink/GetCamera")).body("{}");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let answer = read_answer(request.send().await.expect("request")).await;
        assert_eq!(answer.status, 401, "{authorization:?}: {}", answer.body);
        assert_eq!(answer.body["code"], "UNAUTHENTICATED");
        assert_eq!(
            answer.headers["www-authenticate"],
            "Bearer realm=\"octaneweb\""
        );
    }
    let answer = read_answer(
        client()
            .post(gateway.url("/LiveLink/GetCamera"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body("{}")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Probes need none.
    assert_eq!(
        client()
            .get(gateway.url("/healthz"))
            .send()
            .await
            .expect("probe")
            .status(),
        200
    );
    // A browser without the token is told where it comes from.
    let page = client()
        .get(gateway.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 401);
    assert!(page.text().await.expect("text").contains("?token="));

    // A page opened with ?token= gets the cookie and leaves the token out of its address.
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = no_redirects
        .get(gateway.url(&format!("/?token={TOKEN}&server=x")))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .expect("page");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/?server=x");
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains(TOKEN), "the cookie holds a digest");
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    let answer = read_answer(
        client()
            .post(gateway.url("/LiveLink/GetCamera"))
            .header("cookie", format!("theme=dark; {cookie}"))
            .body("{}")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // WebSockets cannot set headers: the cookie opens /ws, nothing else does.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = gateway.url("/ws").replacen("http://", "ws://", 1);
    let bare = url.as_str().into_client_request().expect("request");
    match tokio_tungstenite::connect_async(bare).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let mut request = url.as_str().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("cookie", cookie.parse().expect("header value"));
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the cookie opens the socket");
    let mut ws = Ws::wrap(socket);
    ws.send(json!({"id": 1, "method": "LiveLink/GetCamera", "message": {}}))
        .await;
    let finished = ws.finish(&json!(1)).await;
    assert_eq!(finished.end["code"], "OK", "{:?}", finished.end);
    // A scripted SSE reader may bring the token in the query; it never reaches a route.
    let response = client()
        .get(gateway.url(&format!("/schema?token={TOKEN}")))
        .send()
        .await
        .expect("schema");
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("set-cookie"));
}

#[tokio::test]
async fn every_protocol_reads_a_missing_token_as_unauthenticated_and_the_token_is_never_forwarded()
{
    let gateway = token_gateway(&shared_render_server().to_string()).await;
    // Native gRPC (tonic).
    let channel = crate::passthrough::channel(&gateway.base).await;
    let status = LiveLinkServiceClient::new(channel.clone())
        .get_camera(Empty {})
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {TOKEN}").parse().expect("metadata");
    let mut with_token =
        LiveLinkServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        });
    with_token
        .get_camera(Empty {})
        .await
        .expect("GetCamera with the token");
    // Connect: 401 with Connect's error JSON.
    let response = client()
        .post(gateway.url("/livelinkapi.LiveLinkService/GetCamera"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body("{}")
        .send()
        .await
        .expect("connect");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "unauthenticated");
    // gRPC-Web: trailers-only, grpc-status 16.
    let response = client()
        .post(gateway.url("/livelinkapi.LiveLinkService/GetCamera"))
        .header("content-type", "application/grpc-web+proto")
        .body(frame(0, b"").to_vec())
        .send()
        .await
        .expect("grpc-web");
    assert_eq!(response.headers()["grpc-status"], "16");

    // What the upstream sees: no authorization header, no gateway cookie.
    let echo = start_echo_upstream().await;
    let gateway = token_gateway(&echo.to_string()).await;
    let set_cookie = AccessToken::new(TOKEN).expect("token").set_cookie(false);
    let pair = set_cookie.split(';').next().expect("name=value");
    let answer = raw_grpc(
        &gateway,
        "/test.Echo/Unary",
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("cookie", pair),
            ("x-meta", "kept"),
        ],
        frame(0, b"payload"),
    )
    .await;
    assert_eq!(answer.status(), 0, "{answer:?}");
    let seen = answer.headers["x-seen-headers"].to_str().expect("ascii");
    assert!(!seen.contains("authorization"), "{seen}");
    assert!(!seen.contains("cookie"), "{seen}");
    assert!(seen.contains("x-meta"), "{seen}");
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, as PEM.
struct TestPki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

impl TestPki {
    fn new() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params")
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        let client_key = KeyPair::generate().expect("client key");
        let client_cert = CertificateParams::new(vec!["client.test".into()])
            .expect("client params")
            .signed_by(&client_key, &issuer)
            .expect("client certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("server.pem"), server_cert.pem()).expect("write");
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).expect("write");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write");
        TestPki {
            dir,
            ca_pem: ca_cert.pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    fn files(&self, client_ca: bool) -> octaneweb_gateway::server::tls::TlsFiles {
        octaneweb_gateway::server::tls::TlsFiles {
            cert: self.dir.path().join("server.pem"),
            key: self.dir.path().join("server.key"),
            client_ca: client_ca.then(|| self.dir.path().join("ca.pem")),
        }
    }
}

async fn tls_gateway(pki: &TestPki, client_ca: bool) -> GatewayHandle {
    let acceptor = octaneweb_gateway::server::tls::acceptor(&pki.files(client_ca)).expect("TLS");
    start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            config: GatewayConfig {
                tls: true,
                ..GatewayConfig::default()
            },
            serve: ServeOptions {
                tls: Some(acceptor),
                ..ServeOptions::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await
}

async fn tls_channel(gateway: &GatewayHandle, tls: ClientTlsConfig) -> Result<Channel, String> {
    let endpoint = Channel::from_shared(gateway.base.clone())
        .expect("uri")
        .tls_config(tls)
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(EXCHANGE_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn tls_serves_grpc_and_http_1_and_2_on_one_port() {
    let pki = TestPki::new();
    let gateway = tls_gateway(&pki, false).await;
    assert!(gateway.base.starts_with("https://"));
    let ca = Certificate::from_pem(&pki.ca_pem);
    let channel = tls_channel(
        &gateway,
        ClientTlsConfig::new()
            .ca_certificate(ca)
            .domain_name("localhost"),
    )
    .await
    .expect("TLS channel");
    let camera = LiveLinkServiceClient::new(channel)
        .get_camera(Empty {})
        .await
        .expect("GetCamera over TLS")
        .into_inner();
    assert!(camera.fov_set.is_some());

    let root = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("root");
    for (version, builder) in [
        (
            reqwest::Version::HTTP_11,
            reqwest::Client::builder().http1_only(),
        ),
        (reqwest::Version::HTTP_2, reqwest::Client::builder()),
    ] {
        let https = builder
            .no_proxy()
            .use_rustls_tls()
            .add_root_certificate(root.clone())
            .build()
            .expect("client");
        let response = https
            .post(gateway.url("/LiveLink/GetCamera"))
            .body("{}")
            .send()
            .await
            .expect("JSON over TLS");
        assert_eq!(response.version(), version, "ALPN chose {version:?}");
        assert_eq!(response.status(), 200);
    }
    // Plain HTTP to the TLS port gets nowhere.
    let plain = client()
        .post(
            gateway
                .url("/LiveLink/GetCamera")
                .replacen("https://", "http://", 1),
        )
        .body("{}")
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()));
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = TestPki::new();
    let gateway = tls_gateway(&pki, true).await;
    let ca = Certificate::from_pem(&pki.ca_pem);
    let without = tls_channel(
        &gateway,
        ClientTlsConfig::new()
            .ca_certificate(ca.clone())
            .domain_name("localhost"),
    )
    .await;
    let refused = match without {
        Err(error) => error,
        Ok(channel) => LiveLinkServiceClient::new(channel)
            .get_camera(Empty {})
            .await
            .expect_err("no client certificate")
            .to_string(),
    };
    assert!(!refused.is_empty());
    let identity = Identity::from_pem(&pki.client_cert_pem, &pki.client_key_pem);
    let channel = tls_channel(
        &gateway,
        ClientTlsConfig::new()
            .ca_certificate(ca)
            .identity(identity)
            .domain_name("localhost"),
    )
    .await
    .expect("mutual TLS channel");
    LiveLinkServiceClient::new(channel)
        .get_camera(Empty {})
        .await
        .expect("GetCamera with a client certificate");
}

#[tokio::test]
async fn a_refused_method_is_permission_denied_on_every_protocol() {
    let render = start_render_server(small_config()).await;
    let policy = MethodPolicy::new(
        &[],
        &[
            "LiveLink/Set*".into(),
            "octaneapi.StreamCallbackService/*".into(),
        ],
    )
    .expect("patterns");
    let gateway = gateway_with_config(
        &render.addr.to_string(),
        GatewayConfig {
            methods: policy,
            ..GatewayConfig::default()
        },
    )
    .await;
    let before = call_ok(&gateway, "/LiveLink/GetCamera", "{}").await;
    let named = |text: &str| text.contains("SetCamera") || text.contains("callbackChannel");

    // JSON route.
    let answer = post(&gateway.url("/LiveLink/SetCamera"), r#"{"fov": 12}"#).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.body["code"], "PERMISSION_DENIED");
    assert!(named(answer.body["error"].as_str().unwrap_or("")));
    // Batch: that item only.
    let answer = post(
        &gateway.url("/batch"),
        r#"[{"service":"LiveLink","method":"SetCamera","params":{"fov":12}},{"service":"LiveLink","method":"GetCamera"}]"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body[0]["code"], "PERMISSION_DENIED",
        "{}",
        answer.body
    );
    assert_eq!(answer.body[1]["success"], true, "{}", answer.body);
    // SSE.
    let answer = read_answer(
        client()
            .get(gateway.url("/sse/StreamCallback/callbackChannel"))
            .send()
            .await
            .expect("sse"),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    // /ws.
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({"id": "s", "method": "LiveLink/SetCamera", "message": {"fov": 12}}))
        .await;
    let end = ws.finish(&json!("s")).await.end;
    assert_eq!(end["code"], "PERMISSION_DENIED", "{end}");
    // Connect.
    let response = client()
        .post(gateway.url("/livelinkapi.LiveLinkService/SetCamera"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(r#"{"fov": 12}"#)
        .send()
        .await
        .expect("connect");
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "permission_denied");
    // Connect binary pass-through of the same method, by path.
    let response = client()
        .post(gateway.url("/livelinkapi.LiveLinkService/SetCamera"))
        .header("content-type", "application/proto")
        .body(Vec::new())
        .send()
        .await
        .expect("connect proto");
    assert_eq!(response.status(), 403);
    // gRPC-Web.
    let response = client()
        .post(gateway.url("/livelinkapi.LiveLinkService/SetCamera"))
        .header("content-type", "application/grpc-web+proto")
        .body(frame(0, b"").to_vec())
        .send()
        .await
        .expect("grpc-web");
    assert_eq!(response.headers()["grpc-status"], "7");
    // Native gRPC.
    let channel = crate::passthrough::channel(&gateway.base).await;
    let status = LiveLinkServiceClient::new(channel.clone())
        .set_camera(CameraState {
            fov_set: Some(FovSet::Fov(12.0)),
            ..CameraState::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    LiveLinkServiceClient::new(channel)
        .get_camera(Empty {})
        .await
        .expect("an allowed method still works");
    assert_eq!(
        call_ok(&gateway, "/LiveLink/GetCamera", "{}").await,
        before,
        "no refused call reached the upstream"
    );
    // /schema says which methods are refused.
    let schema: Value = client()
        .get(gateway.url("/schema"))
        .send()
        .await
        .expect("schema")
        .json()
        .await
        .expect("json");
    let method = |service: &str, name: &str| -> Value {
        schema["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["full_name"] == service)
            .flat_map(|s| s["methods"].as_array().cloned().unwrap_or_default())
            .find(|m| m["name"] == name)
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        method("livelinkapi.LiveLinkService", "SetCamera")["refused"],
        true
    );
    assert!(method("livelinkapi.LiveLinkService", "GetCamera")
        .get("refused")
        .is_none());
    assert_eq!(schema["policy"]["deny"][0], "LiveLink/Set*");
    render.stop().await;
}

/// Connects from `local` (an address of 127.0.0.0/8) to `target`, sending nothing.
async fn silent_connection(
    local: IpAddr,
    target: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(target).await
}

#[tokio::test]
async fn a_flood_of_silent_connections_from_one_address_locks_no_one_else_out() {
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            serve: ServeOptions {
                limits: ConnectionLimits {
                    first_byte_timeout: Duration::from_secs(30),
                    ..ConnectionLimits::default()
                },
                ..ServeOptions::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let target: SocketAddr = authority(&gateway).parse().expect("addr");
    let flooder: IpAddr = "127.0.0.2".parse().expect("ip");
    let mut held = Vec::with_capacity(5000);
    for _ in 0..5000 {
        match silent_connection(flooder, target).await {
            Ok(stream) => held.push(stream),
            Err(error) => panic!("connection {} failed: {error}", held.len()),
        }
    }
    // More than the old global cap of 4,096, from one address: the others are still served
    // at once.
    let started = Instant::now();
    let response = client()
        .get(gateway.url("/healthz"))
        .send()
        .await
        .expect("served");
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "served after {:?}",
        started.elapsed()
    );
    let metrics = metrics_text(&gateway).await;
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("octaneweb_connections_refused_total{cap=\"per_address\"} "))
        .and_then(|v| v.parse().ok())
        .expect("per-address refusals in /metrics");
    assert!(refused >= 5000 - 256, "{refused}");
    drop(held);
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed() {
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            serve: ServeOptions {
                limits: ConnectionLimits {
                    first_byte_timeout: Duration::from_millis(300),
                    idle_timeout: Duration::from_millis(600),
                    ..ConnectionLimits::default()
                },
                ..ServeOptions::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let addr = authority(&gateway);
    // EOF (Ok) means the gateway closed the connection; a timeout error means it did not.
    let closed_within = |stream: std::net::TcpStream, bound: Duration| async move {
        tokio::task::spawn_blocking(move || {
            let mut stream = stream;
            stream.set_read_timeout(Some(bound)).expect("timeout");
            let mut sink = Vec::new();
            stream.read_to_end(&mut sink).map(|_| sink.len())
        })
        .await
        .expect("reader")
    };
    // Says nothing: closed after the first-byte timeout.
    let silent = std::net::TcpStream::connect(&addr).expect("connect");
    assert_eq!(
        closed_within(silent, Duration::from_secs(10))
            .await
            .expect("closed, not timed out"),
        0
    );
    // HTTP/1.1 keep-alive after one answer: closed after the idle timeout.
    let mut kept = std::net::TcpStream::connect(&addr).expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let read = closed_within(kept, Duration::from_secs(10))
        .await
        .expect("closed, not timed out");
    assert!(read > 0, "the answer came first");
    // HTTP/2 with no open stream: the gateway ends the connection (GOAWAY, then close).
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, http_body_util::Empty<Bytes>>(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let response = sender
        .send_request(
            http::Request::get(format!("http://{addr}/healthz"))
                .body(http_body_util::Empty::new())
                .expect("request"),
        )
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    drop(response);
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the idle HTTP/2 connection was closed")
        .expect("task")
        .expect("closed cleanly");
    let metrics = metrics_text(&gateway).await;
    assert!(
        metrics.contains("octaneweb_connections_closed_total{reason=\"no_first_byte\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_rate_limit_slows_only_the_address_that_exceeds_it() {
    let gateway = gateway_with_config(
        &shared_render_server().to_string(),
        GatewayConfig {
            rate_limit: NonZeroU32::new(5),
            ..GatewayConfig::default()
        },
    )
    .await;
    let from = |ip: &str| {
        reqwest::Client::builder()
            .no_proxy()
            .local_address(ip.parse::<IpAddr>().expect("ip"))
            .build()
            .expect("client")
    };
    let busy = from("127.0.0.2");
    let mut limited = None;
    for _ in 0..20 {
        let response = busy
            .post(gateway.url("/LiveLink/GetCamera"))
            .body("{}")
            .send()
            .await
            .expect("request");
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("past 5 calls in a burst, some are refused");
    assert_eq!(limited.headers()["retry-after"], "1");
    let answer = read_answer(limited).await;
    assert_eq!(answer.body["code"], "RESOURCE_EXHAUSTED");
    let other = from("127.0.0.3")
        .post(gateway.url("/LiveLink/GetCamera"))
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), 200, "another address is not limited");
}

/// Starts the firehose (64 KiB callback messages, endlessly) on loopback.
async fn start_firehose() -> SocketAddr {
    use crate::ws::Firehose;
    use octaneweb_proto::gen1::octaneapi as gen1;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                gen1::stream_callback_service_server::StreamCallbackServiceServer::new(Firehose {
                    produced: std::sync::Arc::default(),
                }),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

/// An HTTP/2 (h2c) callbackChannel call through the gateway with `window` as its stream
/// window; returns the response body, the connection's request handle (the client keeps its
/// connection while it holds it) and the connection task.
async fn firehose_call(
    addr: &str,
    window: u32,
) -> (
    hyper::body::Incoming,
    hyper::client::conn::http2::SendRequest<http_body_util::Full<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(window)
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let request = http::Request::post(format!(
        "http://{addr}/octaneapi.StreamCallbackService/callbackChannel"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(http_body_util::Full::new(frame(0, b"")))
    .expect("request");
    let response = sender.send_request(request).await.expect("headers");
    assert_eq!(response.status(), 200);
    (response.into_body(), sender, connection)
}

/// Reads at least `bytes` more of `body`.
async fn read_at_least(body: &mut hyper::body::Incoming, bytes: usize) {
    use http_body_util::BodyExt as _;
    let mut read = 0;
    while read < bytes {
        let frame = tokio::time::timeout(EXCHANGE_TIMEOUT, body.frame())
            .await
            .expect("data in time")
            .expect("stream open")
            .expect("frame");
        read += frame.data_ref().map_or(0, |d| d.len());
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_one_http2_stream_is_dropped_and_others_stream_on() {
    let upstream = start_firehose().await;
    let gateway = start_gateway_with(
        &upstream.to_string(),
        GatewayOptions {
            schema: crate::ws::gen1_schema(),
            serve: ServeOptions {
                limits: ConnectionLimits {
                    send_stall_timeout: Duration::from_millis(500),
                    ..ConnectionLimits::default()
                },
                ..ServeOptions::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let addr = authority(&gateway);
    // A reading client, and a stalled one: its 1 KiB stream window is never opened further,
    // while its socket stays readable (HTTP/2 flow control, not TCP, holds the data back).
    let (mut reading, _reading_sender, _reading_connection) = firehose_call(&addr, 65_535).await;
    let (unread, _stalled_sender, stalled_connection) = firehose_call(&addr, 1024).await;
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&received);
    let reader = tokio::spawn(async move {
        loop {
            read_at_least(&mut reading, 1).await;
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });

    // The stalled one is dropped: its connection ends, and /metrics counts it.
    let ended = tokio::time::timeout(EXCHANGE_TIMEOUT, stalled_connection)
        .await
        .expect("the gateway ended the stalled connection")
        .expect("connection task");
    // With a reset, not a close: a closed socket would keep its unsent data in the kernel
    // for as long as the client keeps its end open.
    let error = ended.expect_err("the connection ends in an error");
    let cause = std::error::Error::source(&error)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    assert_eq!(
        cause,
        Some(std::io::ErrorKind::ConnectionReset),
        "{error:?}"
    );
    drop(unread);
    // The reading one streams on.
    let at_close = received.load(std::sync::atomic::Ordering::Relaxed);
    eventually("the reading client to receive more", || {
        let received = std::sync::Arc::clone(&received);
        async move { received.load(std::sync::atomic::Ordering::Relaxed) > at_close + 8 }
    })
    .await;
    assert!(
        !reader.is_finished(),
        "the reading client is still streaming"
    );
    reader.abort();
    let metrics = metrics_text(&gateway).await;
    assert!(
        metrics.contains("octaneweb_connections_closed_total{reason=\"send_stall\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_refusal_before_the_body_is_read_does_not_cut_off_the_client() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gateway = token_gateway(&shared_render_server().to_string()).await;
    let mut stream = tokio::net::TcpStream::connect(authority(&gateway))
        .await
        .expect("connect");
    let body = "x".repeat(64 * 1024);
    let head = format!(
        "POST /LiveLink/GetCamera HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    // The refusal comes before the body is sent...
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(EXCHANGE_TIMEOUT, stream.read(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    // ...and the client can still send it, and use the connection again.
    stream
        .write_all(body.as_bytes())
        .await
        .expect("the body is taken");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("next request");
    let mut next = String::new();
    while !next.contains("HTTP/1.1 200") {
        let n = tokio::time::timeout(EXCHANGE_TIMEOUT, stream.read(&mut answer))
            .await
            .expect("the next answer in time")
            .expect("read");
        assert!(n > 0, "the connection was closed: {next}");
        next.push_str(&String::from_utf8_lossy(&answer[..n]));
    }
}
