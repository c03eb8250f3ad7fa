//! The real `octaneweb` binary, started as a process on ephemeral loopback ports.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_octaneweb");

/// `octaneweb call` against real gRPC servers.
#[path = "binary/call.rs"]
mod call;

/// octaneWebR's client's calls, in its shapes, against `octaneweb demo` and `serve`.
#[path = "binary/octanewebr.rs"]
mod octanewebr;

/// A running `octaneweb demo`, killed on drop.
struct Demo {
    child: Child,
    addr: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    start_demo_with(&["--listen", "127.0.0.1:0"]).0
}

/// `octaneweb demo` with `args` added (64 samples per pixel unless they set `--max-spp`);
/// also returns the URL it printed.
fn start_demo_with(args: &[&str]) -> (Demo, String) {
    let max_spp: &[&str] = if args.contains(&"--max-spp") {
        &[]
    } else {
        &["--max-spp", "64"]
    };
    let mut child = Command::new(BIN)
        .args(["demo", "--width", "64", "--height", "32", "--no-open"])
        .args(max_spp)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start octaneweb demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (addr, url) = loop {
        let line = lines
            .next()
            .expect("demo printed its URL")
            .expect("read stdout");
        if let Some(rest) = line.split("open http://").nth(1) {
            let url = format!("http://{}", rest.split_whitespace().next().unwrap_or(rest));
            break (rest.split('/').next().expect("address").to_owned(), url);
        }
    };
    (Demo { child, addr }, url)
}

/// A minimal HTTP/1.1 exchange; returns (status, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_with(addr, method, path, "", body)
}

/// [`http`] with extra header lines (each ending in `\r\n`).
fn http_with(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let answer = String::from_utf8_lossy(&raw);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn demo_serves_the_client_the_json_routes_and_render_metrics() {
    let demo = start_demo();
    let (status, page) = http(&demo.addr, "GET", "/", "");
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "index.html at /");

    let (status, body) = http(&demo.addr, "POST", "/LiveLink/GetCamera", "{}");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"success\":true"), "{body}");

    // The frame hub subscribes at start in the demo; wait for its first frame.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _) = http(&demo.addr, "GET", "/render/frame.png", "");
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no frame within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, metrics) = http(&demo.addr, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(metrics.contains("octaneweb_calls_total"), "{metrics}");
    assert!(
        metrics.contains("octaneweb_render_"),
        "the frame hub's metrics are part of /metrics:\n{metrics}"
    );
}

#[test]
fn snapshot_writes_a_png_of_the_scene() {
    let dir = std::env::temp_dir().join(format!("octaneweb-snapshot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("still.png");
    let output = Command::new(BIN)
        .args([
            "render-server",
            "--width",
            "64",
            "--height",
            "32",
            "--spp",
            "4",
        ])
        .arg("--snapshot")
        .arg(&path)
        .output()
        .expect("run snapshot");
    assert!(output.status.success(), "{output:?}");
    let bytes = std::fs::read(&path).expect("png written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn describe_lists_the_builtin_services_and_names_unknown_ones() {
    let output = Command::new(BIN)
        .arg("describe")
        .output()
        .expect("describe");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    for service in [
        "livelinkapi.LiveLinkService",
        "octaneapi.ApiRenderEngineService",
        "octaneapi.StreamCallbackService",
    ] {
        assert!(text.contains(service), "{service} missing from:\n{text}");
    }
    let output = Command::new(BIN)
        .args(["describe", "nope.NoSuchService"])
        .output()
        .expect("describe unknown");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nope.NoSuchService"));
}

#[test]
fn call_exit_code_reflects_the_status() {
    // Nothing listens on this port: the call fails with UNAVAILABLE (14).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let output = Command::new(BIN)
        .args(["call", "LiveLink/GetCamera", "--upstream"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("call");
    assert_eq!(output.status.code(), Some(14), "{output:?}");

    let output = Command::new(BIN)
        .args(["call", "LiveLink/NoSuchMethod"])
        .output()
        .expect("call unknown");
    // NOT_FOUND (5): the schema has no such method, so nothing is sent upstream.
    assert_eq!(output.status.code(), Some(5), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("NoSuchMethod"));
}

/// A running `octaneweb serve`, killed on drop.
struct Serve {
    child: Child,
    addr: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `octaneweb serve` with `args`, in front of an upstream that is not there (the gateway
/// serves anyway), once it accepts connections.
fn start_serve(args: &[&str]) -> Serve {
    start_process(&["serve", "--upstream", "127.0.0.1:1"], args)
}

/// `octaneweb <command> --listen <a free port> <args>`, once it accepts connections.
fn start_process(command: &[&str], args: &[&str]) -> Serve {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args(command)
        .args(["--listen", &addr])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start octaneweb");
    let serve = Serve { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&serve.addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{command:?} did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    serve
}

#[test]
fn ws_flags_reach_the_websocket() {
    let serve = start_serve(&["--ws-max-frame", "2048"]);
    let mut stream = TcpStream::connect(&serve.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: b2N0YW5ld2ViIHRlc3Qga2V5\r\nSec-WebSocket-Version: 13\r\n\r\n",
        serve.addr
    )
    .expect("write handshake");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read handshake");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    // A masked text frame of 4 KiB: over the 2 KiB limit set on the command line, far under
    // the 16 MiB default.
    let payload = vec![b' '; 4096];
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 126, 0x10, 0x00];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).expect("write frame");

    let mut header = [0u8; 2];
    stream
        .read_exact(&mut header)
        .expect("read the server's frame");
    assert_eq!(header[0] & 0x0f, 0x8, "a close frame, got {header:?}");
    let mut code = [0u8; 2];
    stream.read_exact(&mut code).expect("close code");
    assert_eq!(u16::from_be_bytes(code), 1009, "closed as too big");
}

/// `data` of a successful JSON route answer.
fn data(addr: &str, path: &str, headers: &str, body: &serde_json::Value) -> serde_json::Value {
    let (status, text) = http_with(addr, "POST", path, headers, &body.to_string());
    assert_eq!(status, 200, "{path}: {text}");
    let answer: serde_json::Value = serde_json::from_str(&text).expect("JSON answer");
    answer["data"].clone()
}

#[test]
fn json_shape_flags_reach_the_gateway_and_requests_still_choose() {
    let renderer = start_process(
        &["render-server"],
        &["--width", "64", "--height", "32", "--max-spp", "16"],
    );
    let serve = start_process(
        &["serve", "--upstream", &renderer.addr],
        &["--json-names", "camel", "--json-defaults", "omit"],
    );
    let addr = serve.addr.as_str();
    let walk = "X-Json-Names: proto\r\nX-Json-Defaults: emit\r\n";
    let empty = serde_json::json!({});
    let root = data(addr, "/ApiProjectManager/rootNodeGraph", walk, &empty)["result"].clone();
    let owned = serde_json::json!({ "objectPtr": root });
    let list = data(addr, "/ApiNodeGraph/getOwnedItems", walk, &owned)["list"].clone();
    let size = data(
        addr,
        "/ApiItemArray/size",
        walk,
        &serde_json::json!({ "objectPtr": list }),
    )["result"]
        .as_u64()
        .expect("size");
    let camera = (0..size)
        .map(|index| {
            let get = serde_json::json!({ "objectPtr": list, "index": index });
            data(addr, "/ApiItemArray/get", walk, &get)["result"].clone()
        })
        .find(|item| {
            let name = serde_json::json!({ "objectPtr": item });
            data(addr, "/ApiItem/name", walk, &name)["result"] == "Camera"
        })
        .expect("a camera");
    let pin = serde_json::json!({ "objectPtr": camera, "index": 0 });

    // The flags' shape: camelCase names (the value's oneof member is `float3_value`).
    let value = data(addr, "/ApiNode/getPinValueByIx", "", &pin);
    assert!(value["float3Value"].is_object(), "{value}");
    // Without defaults: the pin's info leaves out its zero `endVersion`.
    let info = data(addr, "/ApiNode/pinInfoIx", walk, &pin)["result"].clone();
    let info = serde_json::json!({ "nodePinInfoRef": info });
    let shown = data(addr, "/ApiNodePinInfoEx/getApiNodePinInfo", "", &info);
    assert!(shown["nodePinInfo"].is_object(), "{shown}");
    assert!(shown["nodePinInfo"].get("endVersion").is_none(), "{shown}");
    let shown = data(addr, "/ApiNodePinInfoEx/getApiNodePinInfo", walk, &info);
    assert_eq!(shown["nodePinInfo"]["endVersion"], 0, "{shown}");
    // A request's choice wins.
    let value = data(addr, "/ApiNode/getPinValueByIx", walk, &pin);
    assert!(value["float3_value"].is_object(), "{value}");

    // A wrong value stops the binary before it serves, naming the choices.
    let output = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--json-defaults",
            "sometimes",
        ])
        .output()
        .expect("run serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("must be emit or omit"), "{stderr}");
}

#[test]
fn listening_off_loopback_without_a_token_refuses_to_start() {
    let output = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--upstream",
            "127.0.0.1:1",
        ])
        .env_remove("OCTANEWEB_TOKEN")
        .output()
        .expect("run serve");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--token") && stderr.contains("--insecure-no-auth"),
        "{stderr}"
    );
    // A token that is too short is refused with advice, not silently accepted.
    let output = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--token", "short"])
        .output()
        .expect("run serve");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 16"));
}

#[test]
fn a_token_guards_every_route_and_the_printed_url_carries_it() {
    let token = "binary-test-token-0123456789";
    let dir = std::env::temp_dir().join(format!("octaneweb-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("token");
    std::fs::write(&file, format!("{token}\n")).expect("token file");
    // Off loopback with a token it starts, and prints a URL a browser can open.
    let (demo, url) = start_demo_with(&[
        "--listen",
        "0.0.0.0:0",
        "--token-file",
        file.to_str().expect("utf-8 path"),
    ]);
    assert!(url.ends_with(&format!("/?token={token}")), "{url}");
    let local = demo.addr.replace("0.0.0.0", "127.0.0.1");
    let (status, body) = http(&local, "POST", "/LiveLink/GetCamera", "{}");
    assert_eq!(status, 401, "{body}");
    let (status, _) = http(&local, "GET", "/render/frame.png", "");
    assert_eq!(status, 401);
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let (status, body) = http_with(&local, "POST", "/LiveLink/GetCamera", &bearer, "{}");
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(&local, "GET", "/healthz", "");
    assert_eq!(status, 200);
    drop(demo);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_refused_render_method_closes_the_render_routes() {
    let (demo, _) = start_demo_with(&[
        "--listen",
        "127.0.0.1:0",
        "--deny",
        "ApiRenderEngine/grabRenderResult",
    ]);
    for path in [
        "/render/frame.png",
        "/render/stream",
        "/render/callback-status",
    ] {
        let (status, body) = http(&demo.addr, "GET", path, "");
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body.contains("grabRenderResult") && body.contains("PERMISSION_DENIED"),
            "{path}: {body}"
        );
    }
    // Methods the policy leaves alone still answer.
    let (status, body) = http(&demo.addr, "POST", "/LiveLink/GetCamera", "{}");
    assert_eq!(status, 200, "{body}");
}

/// The "viewer only" example of docs/security.md, flag for flag.
#[test]
fn viewer_only_policy_from_the_docs() {
    let (demo, _) = start_demo_with(&[
        "--listen",
        "127.0.0.1:0",
        "--allow",
        "LiveLink/Get*",
        "--deny",
        "LiveLink/GetFile",
        "--allow",
        "ApiRenderEngine/setOnNewImageCallback",
        "--allow",
        "ApiRenderEngine/grabRenderResult",
        "--allow",
        "ApiRenderEngine/releaseRenderResult",
        "--allow",
        "StreamCallback/callbackChannel",
        "--allow",
        "ApiProjectManager/rootNodeGraph",
        "--allow",
        "ApiNodeGraph/getOwnedItems",
        "--allow",
        "ApiItem/name",
        "--allow",
        "ApiItem/isGraph",
        "--allow",
        "ApiItem/outType",
    ]);
    // Frames flow.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = http(&demo.addr, "GET", "/render/frame.png", "");
        if status == 200 {
            break;
        }
        assert_ne!(status, 403, "{body}");
        assert!(Instant::now() < deadline, "no frame within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Reads answer; anything that changes the scene or reads files does not.
    let (status, body) = http(&demo.addr, "POST", "/LiveLink/GetCamera", "{}");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&demo.addr, "POST", "/ApiProjectManager/rootNodeGraph", "{}");
    assert_eq!(status, 200, "{body}");
    for (path, body) in [
        ("/LiveLink/SetCamera", r#"{"fov": 10}"#),
        ("/LiveLink/GetFile", r#"{"path": "x"}"#),
        ("/ApiRenderEngine/stopRendering", "{}"),
    ] {
        let (status, answer) = http(&demo.addr, "POST", path, body);
        assert_eq!(status, 403, "{path}: {answer}");
        assert!(answer.contains("PERMISSION_DENIED"), "{answer}");
    }
}

/// The render routes and the web client's files sit behind the same Host check as the API.
#[test]
fn a_rebinding_host_is_refused_by_the_render_routes_and_the_web_client() {
    let demo = start_demo();
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/js/main.js"),
        ("GET", "/render/frame.png"),
        ("GET", "/render/stream"),
        ("GET", "/render/ws"),
        ("POST", "/render/register-callback"),
    ] {
        let mut stream = TcpStream::connect(&demo.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: rebound.example\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let answer = String::from_utf8_lossy(&raw);
        assert!(answer.starts_with("HTTP/1.1 421"), "{path}: {answer}");
        assert!(answer.contains("--allowed-host"), "{path}: {answer}");
    }
}

/// Dot segments, plain or percent-encoded, name no call and no file: 404, never 405 ("use
/// POST") and never a file outside `web/`.
#[test]
fn dot_segment_paths_are_404_and_never_leave_the_web_client() {
    let demo = start_demo();
    let (status, page) = http(&demo.addr, "GET", "/index.html", "");
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "{page}");
    for path in [
        "/./index.html",
        "/%2e/index.html",
        "/js/../index.html",
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "/js/%2e%2e",
    ] {
        let (status, body) = http(&demo.addr, "GET", path, "");
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            !body.contains("root:") && !body.contains("<html"),
            "{path}: {body}"
        );
    }
    let (_, body) = http(&demo.addr, "GET", "/./index.html", "");
    assert!(body.contains("segments are not served"), "{body}");
}

#[test]
fn describe_prints_proto_comments_above_what_they_describe() {
    let output = Command::new(BIN)
        .args(["describe", "livelinkapi.LiveLinkService"])
        .output()
        .expect("describe");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(
            "// Getters are marked NO_SIDE_EFFECTS (an option: the wire is unchanged) so that Connect\n\
             // clients may call them with GET.\n\
             service LiveLinkService {\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "  // Client streaming: every CameraState is applied as it arrives; one reply at the end.\n  rpc StreamCamera("
        ),
        "{text}"
    );
}

/// Decodes an encoded FileDescriptorSet and checks what every export of the built-in schema
/// holds: every file after its imports, LiveLink's comments, the reflection services.
fn assert_is_the_builtin_schema(bytes: &[u8]) {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(bytes).expect("a FileDescriptorSet");
    let mut seen = std::collections::HashSet::new();
    for file in &set.file {
        for import in &file.dependency {
            assert!(
                seen.contains(import.as_str()),
                "{} before {import}",
                file.name()
            );
        }
        seen.insert(file.name().to_owned());
    }
    let services: Vec<String> = set
        .file
        .iter()
        .flat_map(|f| {
            f.service
                .iter()
                .map(move |s| format!("{}.{}", f.package(), s.name()))
        })
        .collect();
    for expected in [
        "livelinkapi.LiveLinkService",
        "octaneapi.ApiItemService",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            services.iter().any(|s| s == expected),
            "{expected}: {services:?}"
        );
    }
    let livelink = set
        .file
        .iter()
        .find(|f| f.name() == "livelink.proto")
        .expect("livelink.proto");
    let info = livelink.source_code_info.as_ref().expect("source info");
    assert!(info.location.iter().any(|l| l
        .leading_comments()
        .contains("Getters are marked NO_SIDE_EFFECTS")));
}

#[test]
fn schema_out_writes_the_descriptor_set_binary_or_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("schema")
            .args(args)
            .output()
            .expect("octaneweb schema")
    };

    // Binary by default.
    let binary = dir.path().join("octane.binpb");
    let output = run(&["--out", binary.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{output:?}");
    assert_is_the_builtin_schema(&std::fs::read(&binary).expect("written"));

    // JSON from the extension: the proto3 JSON mapping of the same set.
    let json_path = dir.path().join("octane.json");
    let output = run(&["--out", json_path.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).expect("written")).expect("JSON");
    let files = json["file"].as_array().expect("file list");
    let livelink = files
        .iter()
        .find(|f| f["name"] == "livelink.proto")
        .expect("livelink.proto");
    assert_eq!(livelink["package"], "livelinkapi");
    assert!(livelink["sourceCodeInfo"]["location"]
        .as_array()
        .expect("source info")
        .iter()
        .any(|l| l["leadingComments"]
            .as_str()
            .is_some_and(|c| c.contains("Getters are marked"))));

    // --format wins over the extension; `-` is standard output.
    let output = run(&["--out", "-", "--format", "json"]);
    assert!(output.status.success(), "{output:?}");
    let streamed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(streamed, json);
    let output = run(&["--out", "-"]);
    assert!(output.status.success(), "{output:?}");
    assert_is_the_builtin_schema(&output.stdout);

    // An unwritable path is a clear error naming it, not a panic.
    let missing = dir.path().join("no-such-dir").join("x.binpb");
    let output = run(&["--out", missing.to_str().expect("utf-8 path")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-dir"), "{stderr}");
}

#[test]
fn demo_serves_its_schema_as_a_descriptor_set() {
    let demo = start_demo();
    let mut stream = TcpStream::connect(&demo.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET /schema.binpb HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        demo.addr
    )
    .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head and body");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: application/x-protobuf"),
        "{head}"
    );
    assert!(
        head.contains("content-disposition: attachment; filename=\"schema.binpb\""),
        "{head}"
    );
    assert_is_the_builtin_schema(&raw[split + 4..]);
}

/// A free loopback address (bound, then released).
fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    format!("127.0.0.1:{port}")
}

/// Starts `octaneweb` with `args` and waits until `addr` accepts connections.
fn start_listening(args: &[&str], addr: &str) -> Serve {
    let child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start octaneweb");
    let serve = Serve {
        child,
        addr: addr.to_owned(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&serve.addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{args:?} did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    serve
}

/// The services a v1 reflection `list_services` through `addr` names.
fn reflected_services(addr: &str) -> Vec<String> {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let exchange = async {
            let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect()
                .await
                .expect("connect");
            let mut client = ServerReflectionClient::new(channel);
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut answers = client
                .server_reflection_info(tokio_stream::iter([request]))
                .await
                .expect("reflection")
                .into_inner();
            match answers.message().await.expect("an answer") {
                Some(answer) => match answer.message_response {
                    Some(MessageResponse::ListServicesResponse(list)) => {
                        list.service.into_iter().map(|s| s.name).collect()
                    }
                    other => panic!("unexpected answer {other:?}"),
                },
                None => panic!("no answer"),
            }
        };
        tokio::time::timeout(Duration::from_secs(20), exchange)
            .await
            .expect("reflection in time")
    })
}

#[test]
fn serve_answers_reflection_itself_unless_reflect_leaves_it_to_the_upstream() {
    let render_addr = free_addr();
    let _render = start_listening(
        &[
            "render-server",
            "--listen",
            &render_addr,
            "--width",
            "32",
            "--height",
            "16",
        ],
        &render_addr,
    );
    // The gateway's own answer: its schema (the built-in protos and both reflection
    // services), not the upstream's (which also lists grpc.health.v1.Health).
    let own_addr = free_addr();
    let _own = start_listening(
        &["serve", "--listen", &own_addr, "--upstream", &render_addr],
        &own_addr,
    );
    let own = reflected_services(&own_addr);
    for expected in [
        "livelinkapi.LiveLinkService",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(own.iter().any(|s| s == expected), "{expected}: {own:?}");
    }
    assert!(!own.iter().any(|s| s == "grpc.health.v1.Health"), "{own:?}");

    // --reflect: the schema came from the upstream, and so does every reflection answer.
    let forwarding_addr = free_addr();
    let _forwarding = start_listening(
        &[
            "serve",
            "--listen",
            &forwarding_addr,
            "--upstream",
            &render_addr,
            "--reflect",
            "--builtin-schema",
            "none",
        ],
        &forwarding_addr,
    );
    let forwarded = reflected_services(&forwarding_addr);
    assert_eq!(forwarded, reflected_services(&render_addr));
    assert!(
        forwarded.iter().any(|s| s == "grpc.health.v1.Health"),
        "{forwarded:?}"
    );
}
