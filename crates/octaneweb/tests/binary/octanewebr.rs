//! octaneWebR's React client against the real binary: the calls its services make, in the
//! shapes it sends them and reads them (objectPtr with its ObjectType numbers, proto field
//! names, handles as strings, enum names, oneof keys), its other `/api/` routes and its
//! callback WebSocket. Only facts of its client are used here; none of its code.

use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

use super::{start_demo_with, start_serve};

/// The `ObjectRef.type` numbers octaneWebR's client puts in `objectPtr` per service.
const API_ITEM: u32 = 16;
const API_NODE: u32 = 17;
const API_NODE_GRAPH: u32 = 20;
const API_ITEM_ARRAY: u32 = 31;
const API_NODE_PIN_INFO_EX: u32 = 44;
/// `AttributeId.A_VALUE` and `AttributeTypeId.AT_FLOAT`, as its node inspector sends them.
const A_VALUE: u32 = 185;
const AT_FLOAT: u32 = 9;

/// The size `start_demo_with` renders at.
const WIDTH: u64 = 64;
const HEIGHT: u64 = 32;

/// How long anything here may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

fn object_ptr(handle: &str, object_type: u32) -> Value {
    json!({ "handle": handle, "type": object_type })
}

/// octaneWebR's client, as far as these tests need it: `callApi` and plain GETs.
struct Webr {
    base: String,
    http: reqwest::Client,
}

/// An answer: status, headers and JSON body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Webr {
    fn new(addr: &str) -> Webr {
        Webr {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()
                .expect("HTTP client"),
        }
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("answer body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {status} {text}"));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// `POST /api/grpc/{service}/{method}` with `body`, as its ApiService sends it.
    async fn post(&self, service: &str, method: &str, body: &str) -> Answer {
        let response = self
            .http
            .post(format!("{}/api/grpc/{service}/{method}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("POST /api/grpc");
        Webr::answer(response).await
    }

    /// A call that must succeed; its answer body.
    async fn call(&self, service: &str, method: &str, body: Value) -> Value {
        let answer = self.post(service, method, &body.to_string()).await;
        assert_eq!(
            answer.status, 200,
            "{service}/{method} {body}: {}",
            answer.body
        );
        answer.body
    }

    /// The gateway's `/metrics` text.
    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// A new `/api/callbacks` socket.
    async fn callbacks(&self) -> Socket {
        let url = format!("{}/api/callbacks", self.base.replacen("http", "ws", 1));
        tokio_tungstenite::connect_async(url)
            .await
            .expect("connect /api/callbacks")
            .0
    }

    async fn get(&self, path: &str) -> Answer {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Webr::answer(response).await
    }
}

/// A handle as its client reads it: a string (64-bit values are strings).
fn handle(value: &Value) -> String {
    value["handle"]
        .as_str()
        .unwrap_or_else(|| panic!("a handle is a string: {value}"))
        .to_owned()
}

/// An item of the scene as its outliner reads it.
#[derive(Debug)]
struct Item {
    handle: String,
    name: String,
    out_type: String,
    is_graph: bool,
}

async fn item(webr: &Webr, item_handle: &str) -> Item {
    let ptr = json!({ "objectPtr": object_ptr(item_handle, API_ITEM) });
    let name = webr.call("ApiItem", "name", ptr.clone()).await;
    let out_type = webr.call("ApiItem", "outType", ptr.clone()).await;
    let is_graph = webr.call("ApiItem", "isGraph", ptr).await;
    Item {
        handle: item_handle.to_owned(),
        name: name["result"].as_str().expect("name").to_owned(),
        out_type: out_type["result"]
            .as_str()
            .expect("outType is an enum name")
            .to_owned(),
        is_graph: is_graph["result"].as_bool().expect("isGraph"),
    }
}

/// The scene walk of its SceneService: the root graph, its owned items through the item
/// array, and each item's name, type and graph flag.
async fn top_level_items(webr: &Webr) -> Vec<Item> {
    let root = webr
        .call("ApiProjectManager", "rootNodeGraph", json!({}))
        .await;
    assert!(
        root["result"]["type"].is_string(),
        "enums are names: {root}"
    );
    let root = handle(&root["result"]);
    let is_graph = webr
        .call(
            "ApiItem",
            "isGraph",
            json!({ "objectPtr": object_ptr(&root, API_ITEM) }),
        )
        .await;
    assert_eq!(is_graph["result"], true, "the root is a graph");
    let owned = webr
        .call(
            "ApiNodeGraph",
            "getOwnedItems",
            json!({ "objectPtr": object_ptr(&root, API_NODE_GRAPH) }),
        )
        .await;
    let list = handle(&owned["list"]);
    let size = webr
        .call(
            "ApiItemArray",
            "size",
            json!({ "objectPtr": object_ptr(&list, API_ITEM_ARRAY) }),
        )
        .await;
    let size = size["result"].as_u64().expect("size");
    assert!(size > 0, "the scene has items");
    let mut items = Vec::new();
    for index in 0..size {
        let got = webr
            .call(
                "ApiItemArray",
                "get",
                json!({ "objectPtr": object_ptr(&list, API_ITEM_ARRAY), "index": index }),
            )
            .await;
        items.push(item(webr, &handle(&got["result"])).await);
    }
    items
}

/// The nodes connected to `node`'s pins, with each pin's info, as its outliner walks a
/// node: pinCount, connectedNodeIx, pinInfoIx and ApiNodePinInfoEx/getApiNodePinInfo.
async fn pins(webr: &Webr, node: &str) -> Vec<(Value, Option<String>)> {
    let ptr = object_ptr(node, API_NODE);
    let count = webr
        .call("ApiNode", "pinCount", json!({ "objectPtr": ptr }))
        .await;
    let count = count["result"].as_u64().expect("pinCount");
    let mut pins = Vec::new();
    for index in 0..count {
        let connected = webr
            .call(
                "ApiNode",
                "connectedNodeIx",
                json!({ "objectPtr": ptr, "pinIx": index, "enterWrapperNode": true }),
            )
            .await;
        let info_ref = webr
            .call(
                "ApiNode",
                "pinInfoIx",
                json!({ "objectPtr": ptr, "index": index }),
            )
            .await;
        let info = webr
            .call(
                "ApiNodePinInfoEx",
                "getApiNodePinInfo",
                json!({ "objectPtr": object_ptr(&handle(&info_ref["result"]), API_NODE_PIN_INFO_EX) }),
            )
            .await;
        let info = info["nodePinInfo"].clone();
        assert!(
            info["staticLabel"].as_str().is_some_and(|l| !l.is_empty()),
            "pin {index} of {node} has a label: {info}"
        );
        let connected = handle(&connected["result"]);
        pins.push((info, (connected != "0").then_some(connected)));
    }
    pins
}

/// Its node inspector's read of a value: `response[response.value]`.
async fn float_value(webr: &Webr, node: &str) -> Option<f64> {
    let answer = webr
        .post(
            "ApiItem",
            "getValueByAttrID",
            &json!({ "objectPtr": object_ptr(node, API_ITEM), "attribute_id": A_VALUE,
                     "expected_type": AT_FLOAT })
            .to_string(),
        )
        .await;
    if answer.status != 200 {
        return None;
    }
    let field = answer.body["value"].as_str()?;
    (field == "float_value").then(|| answer.body[field].as_f64())?
}

/// The handle and value of a float value node feeding the camera: what its inspector edits.
async fn camera_float(webr: &Webr) -> (String, f64) {
    let items = top_level_items(webr).await;
    let target = items
        .iter()
        .find(|item| item.out_type == "PT_RENDERTARGET")
        .unwrap_or_else(|| panic!("a render target among {items:?}"));
    for (_, connected) in pins(webr, &target.handle).await {
        let Some(node) = connected else { continue };
        if item(webr, &node).await.out_type != "PT_CAMERA" {
            continue;
        }
        for (_, input) in pins(webr, &node).await {
            let Some(input) = input else { continue };
            if let Some(value) = float_value(webr, &input).await {
                return (input, value);
            }
        }
    }
    panic!("no float value feeds the camera");
}

/// Its inspector's edit: `setValueByAttrID` with the keys it sends (`expected_type`
/// included, which the message does not have).
async fn set_float(webr: &Webr, node: &str, value: f64) {
    let answer = webr
        .post(
            "ApiItem",
            "setValueByAttrID",
            &json!({ "objectPtr": object_ptr(node, API_ITEM), "attribute_id": A_VALUE,
                     "expected_type": AT_FLOAT, "float_value": value, "evaluate": false })
            .to_string(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["success"], true, "{}", answer.body);
    assert_eq!(
        answer.headers["x-octaneweb-ignored-fields"], "expected_type",
        "the key the message lacks is named"
    );
}

#[tokio::test]
async fn octanewebr_walks_the_scene_and_edits_a_pin_as_its_client_does() {
    let (demo, _) = start_demo_with(&["--listen", "127.0.0.1:0"]);
    let webr = Webr::new(&demo.addr);
    let health = webr.get("/api/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok", "{}", health.body);
    assert_eq!(health.body["octane"], "connected");
    assert!(
        health.body["timestamp"]
            .as_str()
            .is_some_and(|t| t.contains('T') && t.ends_with('Z')),
        "an ISO timestamp: {}",
        health.body
    );

    // Its debug logger's posts are accepted as its development server accepted them.
    let logged = webr
        .http
        .post(format!("{}/api/log", webr.base))
        .json(&json!({ "level": "info", "message": "scene walk" }))
        .send()
        .await
        .expect("POST /api/log");
    assert_eq!(Webr::answer(logged).await.body, json!({ "success": true }));

    let items = top_level_items(&webr).await;
    assert!(items.iter().all(|item| !item.name.is_empty()));
    let node = items
        .iter()
        .find(|item| !item.is_graph)
        .expect("a node at the top level");
    let info = webr
        .call(
            "ApiNode",
            "info",
            json!({ "objectPtr": object_ptr(&node.handle, API_NODE) }),
        )
        .await;
    assert_eq!(
        info["result"]["outType"], node.out_type,
        "info in proto names, enums as names: {info}"
    );

    let (fov, before) = camera_float(&webr).await;
    let after = before + 1.25;
    set_float(&webr, &fov, after).await;
    let read = float_value(&webr, &fov)
        .await
        .expect("the value reads back");
    assert!((read - after).abs() < 1e-4, "{read} after setting {after}");
}

#[tokio::test]
async fn octanewebr_bad_calls_get_its_error_shape_and_the_server_stays_up() {
    let (demo, _) = start_demo_with(&["--listen", "127.0.0.1:0"]);
    let webr = Webr::new(&demo.addr);
    // (service, method, body, numeric gRPC code, a word the message must name)
    let cases = [
        ("ApiItem", "name", "{bad", 3, "malformed JSON"),
        ("ApiNope", "name", "{}", 5, "ApiNope"),
        ("ApiItem", "nope", "{}", 5, "nope"),
        (
            "ApiItem",
            "name",
            r#"{"objectPtr":{"handle":"1000","type":16,"bogus":1}}"#,
            3,
            "bogus",
        ),
        (
            "StreamCallbackService",
            "callbackChannel",
            "{}",
            -1,
            "server-streaming",
        ),
    ];
    for (service, method, body, code, named) in cases {
        let answer = webr.post(service, method, body).await;
        let label = format!("{service}/{method} {body}: {}", answer.body);
        assert_eq!(answer.status, 500, "{label}");
        assert_eq!(answer.body["service"], service, "{label}");
        assert_eq!(answer.body["method"], method, "{label}");
        let got = answer.body["code"].as_i64().expect("a numeric code");
        assert!(code == -1 || got == code, "{label}");
        assert!((1..=16).contains(&got), "{label}");
        let error = answer.body["error"].as_str().expect("an error message");
        assert!(error.contains(named), "{label}");
    }
    let device = webr.get("/api/device/info?index=first").await;
    assert_eq!(device.status, 500, "{}", device.body);
    assert_eq!(device.body["code"], 3);
    assert!(device.body["error"]
        .as_str()
        .is_some_and(|e| e.contains("\"first\"")));
    let health = webr.get("/api/health").await;
    assert_eq!(
        health.body["status"], "ok",
        "still serving: {}",
        health.body
    );
}

fn count(value: &Value) -> u64 {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("a count: {value}"))
}

#[tokio::test]
async fn octanewebr_system_info_device_info_and_geometry_come_from_octane_calls() {
    let (demo, _) = start_demo_with(&["--listen", "127.0.0.1:0"]);
    let webr = Webr::new(&demo.addr);
    let geometry = webr.get("/api/scene/geometry").await;
    assert_eq!(geometry.status, 200, "{}", geometry.body);
    let stats = &geometry.body;
    assert!(stats["voxelCount"].is_string(), "64-bit counts are strings");
    let primitives: u64 = [
        "triCount",
        "dispTriCount",
        "hairSegCount",
        "sphereCount",
        "emitPriCount",
    ]
    .iter()
    .map(|key| count(&stats[*key]))
    .sum();
    assert!(primitives > 0, "the demo scene has geometry: {stats}");

    let device = webr.get("/api/device/info?index=0").await;
    assert_eq!(device.status, 200, "{}", device.body);
    assert_eq!(device.body["index"], 0);
    let total = count(&device.body["memory"]["total"]);
    assert!(device.body["memory"]["total"].is_string());
    assert!(total > 0 && count(&device.body["memory"]["used"]) <= total);

    let system = webr.get("/api/system/info").await;
    assert_eq!(system.status, 200, "{}", system.body);
    let info = &system.body;
    assert_eq!(info["primitiveCount"], primitives, "{info}");
    assert_eq!(info["meshCount"], 1);
    assert_eq!(info["gpuName"], device.body["name"]);
    assert_eq!(info["hasHardwareRT"], device.body["hasHardwareRT"]);
    assert_eq!(info["totalMemoryGB"], device.body["memory"]["totalGB"]);
    let expected_gb = (total as f64 / f64::from(1u32 << 30) * 10.0).round() / 10.0;
    assert_eq!(info["totalMemoryGB"].as_f64(), Some(expected_gb));
    assert!(info["octaneVersion"]
        .as_str()
        .is_some_and(|v| v.contains("octaneweb")));
}

#[tokio::test]
async fn octanewebr_without_octane_says_so_in_its_shapes() {
    let serve = start_serve(&["--max-body", "4096"]);
    let webr = Webr::new(&serve.addr);
    // The body limit holds before any call is made.
    let oversized = json!({ "objectPtr": object_ptr(&"1".repeat(5000), API_ITEM) });
    let answer = webr.post("ApiItem", "name", &oversized.to_string()).await;
    assert_eq!(answer.status, 500, "{}", answer.body);
    assert_eq!(
        answer.body["code"], 8,
        "RESOURCE_EXHAUSTED: {}",
        answer.body
    );
    assert!(answer.body["error"]
        .as_str()
        .is_some_and(|e| e.contains("4096 bytes")));
    let health = webr.get("/api/health").await;
    assert_eq!(health.status, 200, "its client only needs the server up");
    assert_eq!(health.body["status"], "unhealthy", "{}", health.body);
    assert_eq!(health.body["octane"], "disconnected");
    for answer in [
        webr.get("/api/system/info").await,
        webr.post("ApiProjectManager", "rootNodeGraph", "{}").await,
    ] {
        assert_eq!(answer.status, 500, "{}", answer.body);
        assert_eq!(answer.body["code"], 14, "UNAVAILABLE: {}", answer.body);
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message of `kind` (others skipped), as JSON.
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let message = socket
                .next()
                .await
                .expect("the socket stays open")
                .expect("a message");
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).expect("JSON text");
                if value["type"] == kind {
                    return value;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} message within {PATIENCE:?}"))
}

/// The image its viewport draws from a `newImage` message: checks the shape it reads and
/// decodes the buffer; returns the image and its change level.
fn decoded(message: &Value) -> (Vec<u8>, u64) {
    assert!(message["timestamp"].is_u64(), "{{type, data, timestamp}}");
    let image = &message["data"]["render_images"]["data"][0];
    assert_eq!(image["size"]["x"], WIDTH);
    assert_eq!(image["size"]["y"], HEIGHT);
    assert_eq!(image["type"], 0, "8-bit RGBA");
    let buffer = &image["buffer"];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(buffer["data"].as_str().expect("base64 text"))
        .expect("valid base64");
    assert_eq!(bytes.len() as u64, WIDTH * HEIGHT * 4);
    assert_eq!(buffer["size"], bytes.len());
    assert!(image["tonemappedSamplesPerPixel"].is_number());
    (
        bytes,
        image["changeLevel"]["level"].as_u64().expect("level"),
    )
}

/// The callback socket of the default demo (the second callback generation: the hub grabs
/// each image).
#[tokio::test]
async fn octanewebr_callback_socket_delivers_images_statistics_and_pongs() {
    callback_socket_works(&[]).await;
}

/// The same through the first callback generation (images inline in the callback) and an
/// HDR render, which the socket sends tonemapped to the 8-bit RGBA its viewport draws.
#[tokio::test]
async fn octanewebr_callback_socket_works_with_inline_hdr_images() {
    callback_socket_works(&["--callback-generation", "1", "--hdr"]).await;
}

async fn callback_socket_works(args: &[&str]) {
    // Statistics come once a second while the render runs: let it run for seconds.
    let mut all = vec!["--listen", "127.0.0.1:0", "--max-spp", "2048"];
    all.extend_from_slice(args);
    let (demo, _) = start_demo_with(&all);
    let webr = Webr::new(&demo.addr);
    let mut socket = webr.callbacks().await;
    socket
        .send(Message::text(r#"{"type":"subscribe"}"#))
        .await
        .expect("subscribe");
    let (_, first_level) = decoded(&next_of(&mut socket, "newImage").await);

    // A second socket gets the newest image at once, from the same upstream subscription.
    let mut second = webr.callbacks().await;
    decoded(&next_of(&mut second, "newImage").await);
    let metrics = webr.metrics().await;
    let subscriptions: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("octaneweb_render_subscriptions_total "))
        .collect();
    assert_eq!(
        subscriptions,
        ["octaneweb_render_subscriptions_total 1"],
        "one subscription for every socket"
    );
    drop(second);

    socket
        .send(Message::text(r#"{"type":"ping"}"#))
        .await
        .expect("ping");
    assert!(next_of(&mut socket, "pong").await["timestamp"].is_u64());
    socket.send(Message::text("not json")).await.expect("send");
    let error = next_of(&mut socket, "error").await;
    assert!(error["message"]
        .as_str()
        .is_some_and(|m| m.contains("JSON")));
    socket
        .send(Message::text(r#"{"type":"ping"}"#))
        .await
        .expect("ping");
    next_of(&mut socket, "pong").await;

    // An edit renders again: statistics while it renders, and an image of the change.
    let (fov, value) = camera_float(&webr).await;
    set_float(&webr, &fov, value + 2.0).await;
    let statistics = next_of(&mut socket, "newStatistics").await;
    assert!(
        statistics["data"]["statistics"]["beautySamplesPerPixel"].is_u64(),
        "its render toolbar reads data.statistics: {statistics}"
    );
    tokio::time::timeout(PATIENCE, async {
        loop {
            let (_, level) = decoded(&next_of(&mut socket, "newImage").await);
            if level > first_level {
                break;
            }
        }
    })
    .await
    .expect("an image of the edit");
}

/// Every socket gets each `newStatistics`, and the statistics are fetched from the
/// renderer once per event, not once per socket.
#[tokio::test]
async fn octanewebr_statistics_are_fetched_once_per_event_for_all_sockets() {
    // 64×32 at up to 65,536 samples a pixel renders for many seconds after the edit below.
    let (demo, _) = start_demo_with(&["--listen", "127.0.0.1:0", "--max-spp", "65536"]);
    let webr = Webr::new(&demo.addr);
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let socket = webr.callbacks().await;
        sockets.push(socket);
    }
    for socket in &mut sockets {
        next_of(socket, "newImage").await;
    }
    // An edit starts a fresh render; statistics come about once a second while it runs.
    let (fov, value) = camera_float(&webr).await;
    set_float(&webr, &fov, value + 2.0).await;
    // Each socket sees the same events: three each.
    for socket in &mut sockets {
        for _ in 0..3 {
            next_of(socket, "newStatistics").await;
        }
    }
    let metrics = webr.metrics().await;
    let calls: u64 = metrics
        .lines()
        .filter(|line| {
            line.starts_with("octaneweb_calls_total{protocol=\"octanewebr\"")
                && line.contains("getRenderStatistics")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    // Three sockets fetching for themselves would have made at least 9 calls by now; one
    // fetch per event makes 3, and up to 2 more for events that came while the sockets
    // were read one after the other.
    assert!(
        (3..=5).contains(&calls),
        "getRenderStatistics calls for 3 events on 3 sockets: {calls}\n{metrics}"
    );
}

#[tokio::test]
async fn octanewebr_routes_are_behind_the_front_door() {
    let dev_server = "http://localhost:43929";
    let (demo, _) = start_demo_with(&[
        "--listen",
        "127.0.0.1:0",
        "--cors-origin",
        dev_server,
        "--deny",
        "ApiRenderEngine/getGeometryStatistics",
    ]);
    let base = format!("http://{}", demo.addr);
    let http = reqwest::Client::new();
    let post = |origin: Option<&str>, host: Option<&str>| {
        let mut request = http
            .post(format!("{base}/api/grpc/ApiProjectManager/rootNodeGraph"))
            .header("content-type", "application/json")
            .body("{}");
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(host) = host {
            request = request.header("host", host);
        }
        request.send()
    };
    // DNS rebinding: refused before any route.
    let rebound = post(None, Some("evil.example")).await.expect("send");
    assert_eq!(rebound.status(), 421);
    let rebound = http
        .get(format!("{base}/api/health"))
        .header("host", "evil.example")
        .send()
        .await
        .expect("send");
    assert_eq!(rebound.status(), 421);
    // A page on a port not named is foreign; the named development server is not.
    let foreign = post(Some("http://localhost:5173"), None)
        .await
        .expect("send");
    assert_eq!(foreign.status(), 403);
    assert!(foreign
        .text()
        .await
        .expect("body")
        .contains("--cors-origin http://localhost:5173"));
    let named = post(Some(dev_server), None).await.expect("send");
    assert_eq!(named.status(), 200);
    assert_eq!(named.headers()["access-control-allow-origin"], dev_server);
    let exposed = named.headers()["access-control-expose-headers"]
        .to_str()
        .expect("header text")
        .to_ascii_lowercase();
    assert!(
        exposed.contains("x-octaneweb-ignored-fields"),
        "the page may read which keys were left out: {exposed}"
    );
    let preflight = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{base}/api/grpc/ApiItem/name"),
        )
        .header("origin", dev_server)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        dev_server
    );
    // The callback socket: the named origin upgrades, another is refused.
    let socket = |origin: &str| {
        let mut request = format!("ws://{}/api/callbacks", demo.addr)
            .into_client_request()
            .expect("request");
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
        tokio_tungstenite::connect_async(request)
    };
    socket(dev_server).await.expect("the named origin connects");
    match socket("http://localhost:5173").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!(
            "a foreign origin's socket is refused: {:?}",
            other.map(|_| ())
        ),
    }
    // The method policy: refused on the call route and in the routes built on calls.
    let webr = Webr::new(&demo.addr);
    for answer in [
        webr.get("/api/scene/geometry").await,
        webr.post("ApiRenderEngine", "getGeometryStatistics", "{}")
            .await,
    ] {
        assert_eq!(answer.status, 500, "{}", answer.body);
        assert_eq!(answer.body["code"], 7, "PERMISSION_DENIED: {}", answer.body);
        assert!(answer.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("getGeometryStatistics")));
    }
}

#[tokio::test]
async fn octanewebr_routes_need_the_token_and_the_socket_follows_the_render_policy() {
    let token = "octanewebr-test-token-0123456789";
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("token");
    std::fs::write(&file, token).expect("token file");
    // Off loopback a token is required; the socket is refused when its subscription is.
    let (demo, _) = start_demo_with(&[
        "--listen",
        "0.0.0.0:0",
        "--token-file",
        file.to_str().expect("utf-8 path"),
        "--deny",
        "ApiRenderEngine/grabRenderResult",
    ]);
    let base = format!("http://{}", demo.addr.replace("0.0.0.0", "127.0.0.1"));
    let http = reqwest::Client::new();
    let requests = || {
        [
            http.get(format!("{base}/api/health")),
            http.get(format!("{base}/api/system/info")),
            http.post(format!("{base}/api/grpc/ApiProjectManager/rootNodeGraph"))
                .body("{}"),
            http.get(format!("{base}/api/callbacks")),
        ]
    };
    for request in requests() {
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), 401, "{}", response.url());
    }
    let mut statuses = Vec::new();
    for request in requests() {
        let response = request.bearer_auth(token).send().await.expect("send");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "with the token");
    assert_eq!(statuses[3], 403, "grabRenderResult is refused");
}
