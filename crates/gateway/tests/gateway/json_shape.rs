//! One JSON shape per message: the same answer over the JSON route, SSE, `/ws`, `/batch`,
//! Connect and `octaneweb call` is the same JSON for the same choice of field names and
//! defaults; each route's default; the gateway-wide choice; a request's choice over it; and
//! wrong values refused before the upstream is called.

use octaneweb_gateway::{call_with_timeout, GatewayConfig, ShapeChoice, Upstream, UpstreamConfig};
use octaneweb_schema::{Defaults, FieldNames, JsonShape};
use serde_json::{json, Value};

use crate::common::*;
use crate::ws::Ws;

/// The four shapes.
const SHAPES: [JsonShape; 4] = [
    JsonShape {
        names: FieldNames::Proto,
        defaults: Defaults::Emit,
    },
    JsonShape {
        names: FieldNames::Proto,
        defaults: Defaults::Omit,
    },
    JsonShape {
        names: FieldNames::Camel,
        defaults: Defaults::Emit,
    },
    JsonShape {
        names: FieldNames::Camel,
        defaults: Defaults::Omit,
    },
];

/// A method and a request to compare the routes with (strict proto3 JSON, which every
/// route reads).
struct Probe {
    /// `Service/method` with a lenient service name (every route resolves it).
    path: &'static str,
    request: Value,
}

/// The probes: LiveLink's camera; the root graph (a uint64 handle and an enum); the camera
/// position's value through ApiItem (a snake_case oneof member, asked for with a handle and
/// enums); the first camera pin's info (enums, and many fields at their default).
async fn probes(gateway: &GatewayHandle) -> Vec<Probe> {
    let camera = camera_node(gateway).await;
    let position = call_ok(
        gateway,
        "/ApiNode/connectedNodeIx",
        &json!({ "objectPtr": camera, "pinIx": 0, "enterWrapperNode": true }).to_string(),
    )
    .await["result"]
        .clone();
    let pin_info = call_ok(
        gateway,
        "/ApiNode/pinInfoIx",
        &json!({ "objectPtr": camera, "index": 0 }).to_string(),
    )
    .await["result"]
        .clone();
    vec![
        Probe {
            path: "LiveLink/GetCamera",
            request: json!({}),
        },
        Probe {
            path: "ApiProjectManager/rootNodeGraph",
            request: json!({}),
        },
        Probe {
            path: "ApiItem/getValueByAttrID",
            request: json!({
                "item_ref": position,
                "attribute_id": "A_VALUE",
                "expected_type": "ATTR_ID_FLOAT3"
            }),
        },
        Probe {
            path: "ApiNodePinInfoEx/getApiNodePinInfo",
            request: json!({ "nodePinInfoRef": pin_info }),
        },
    ]
}

/// How a request states its shape on each route.
#[derive(Clone, Copy)]
enum Ask {
    /// No choice: the route's (or the gateway's) default.
    Nothing,
    /// Headers (`X-Json-*`): JSON route, SSE, `/batch` (per batch), Connect; on `/ws` the
    /// upgrade request's.
    Headers(JsonShape),
    /// Query parameters; on `/ws` the socket URL's, on Connect a GET.
    Query(JsonShape),
    /// The call's own fields: `/batch` items and `/ws` open frames (elsewhere: headers).
    Fields(JsonShape),
}

impl Ask {
    fn headers(self) -> Vec<(&'static str, String)> {
        match self {
            Ask::Headers(shape) | Ask::Fields(shape) => vec![
                ("x-json-names", shape.names.to_string()),
                ("x-json-defaults", shape.defaults.to_string()),
            ],
            Ask::Nothing | Ask::Query(_) => Vec::new(),
        }
    }

    /// `json_names=…&json_defaults=…`, or empty.
    fn query(self) -> String {
        match self {
            Ask::Query(shape) => format!(
                "json_names={}&json_defaults={}",
                shape.names, shape.defaults
            ),
            _ => String::new(),
        }
    }

    /// Call fields for `/batch` and `/ws`.
    fn fields(self) -> Vec<(&'static str, Value)> {
        match self {
            Ask::Fields(shape) => vec![
                ("json_names", Value::from(shape.names.to_string())),
                ("json_defaults", Value::from(shape.defaults.to_string())),
            ],
            _ => Vec::new(),
        }
    }

    /// Batch-level headers: only when the call's own fields are not what is tested.
    fn batch_headers(self) -> Vec<(&'static str, String)> {
        match self {
            Ask::Headers(_) => self.headers(),
            _ => Vec::new(),
        }
    }
}

fn with_query(url: String, query: &str) -> String {
    if query.is_empty() {
        url
    } else if url.contains('?') {
        format!("{url}&{query}")
    } else {
        format!("{url}?{query}")
    }
}

async fn json_route(gateway: &GatewayHandle, probe: &Probe, ask: Ask) -> Value {
    let mut request = client()
        .post(with_query(
            gateway.url(&format!("/{}", probe.path)),
            &ask.query(),
        ))
        .header("content-type", "application/json")
        .body(probe.request.to_string());
    for (name, value) in ask.headers() {
        request = request.header(name, value);
    }
    let answer = read_answer(request.send().await.expect("request")).await;
    assert_eq!(answer.status, 200, "{}: {}", probe.path, answer.body);
    answer.body["data"].clone()
}

async fn sse(gateway: &GatewayHandle, probe: &Probe, ask: Ask) -> Value {
    let url = format!(
        "/sse/{}?message={}",
        probe.path,
        percent(&probe.request.to_string())
    );
    let mut request = client().get(with_query(gateway.url(&url), &ask.query()));
    for (name, value) in ask.headers() {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), 200, "{}", probe.path);
    let mut events = BodyReader::new(response);
    let (name, data) = events.next_event().await.expect("a message event");
    assert_eq!(name, "message", "{}: {data}", probe.path);
    serde_json::from_str(&data).expect("event data is JSON")
}

async fn batch(gateway: &GatewayHandle, probe: &Probe, ask: Ask) -> Value {
    let mut item = json!({ "method": probe.path, "params": probe.request });
    for (name, value) in ask.fields() {
        item[name] = value;
    }
    let mut request = client()
        .post(with_query(gateway.url("/batch"), &ask.query()))
        .header("content-type", "application/json")
        .body(json!([item]).to_string());
    for (name, value) in ask.batch_headers() {
        request = request.header(name, value);
    }
    let answer = read_answer(request.send().await.expect("request")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body[0]["success"], true, "{}", answer.body);
    answer.body[0]["data"].clone()
}

async fn websocket(gateway: &GatewayHandle, probe: &Probe, ask: Ask) -> Value {
    let url = with_query(
        gateway.url("/ws").replacen("http://", "ws://", 1),
        &ask.query(),
    );
    let mut ws = match ask {
        Ask::Headers(_) => {
            let mut request =
                tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                    url.as_str(),
                )
                .expect("request");
            for (name, value) in ask.headers() {
                request
                    .headers_mut()
                    .insert(name, value.parse().expect("header value"));
            }
            let (socket, _) = tokio_tungstenite::connect_async(request)
                .await
                .expect("WebSocket handshake");
            Ws::wrap(socket)
        }
        _ => {
            let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .expect("WebSocket handshake");
            Ws::wrap(socket)
        }
    };
    let mut open = json!({ "id": 1, "method": probe.path, "message": probe.request });
    for (name, value) in ask.fields() {
        open[name] = value;
    }
    ws.send(open).await;
    let finished = ws.finish(&json!(1)).await;
    assert_eq!(
        finished.end["code"], "OK",
        "{}: {:?}",
        probe.path, finished.end
    );
    assert_eq!(finished.messages.len(), 1);
    finished.messages[0].clone()
}

async fn connect(gateway: &GatewayHandle, probe: &Probe, ask: Ask) -> Value {
    let response = match ask {
        Ask::Query(_) => {
            let url = format!(
                "/{}?connect=v1&encoding=json&message={}&{}",
                probe.path,
                percent(&probe.request.to_string()),
                ask.query()
            );
            client().get(gateway.url(&url)).send().await
        }
        _ => {
            let mut request = client()
                .post(gateway.url(&format!("/{}", probe.path)))
                .header("content-type", "application/json")
                .header("connect-protocol-version", "1")
                .body(probe.request.to_string());
            for (name, value) in ask.headers() {
                request = request.header(name, value);
            }
            request.send().await
        }
    }
    .expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "{}: {text}", probe.path);
    serde_json::from_str(&text).expect("Connect JSON")
}

/// `octaneweb call`'s line for `probe` in `shape`.
async fn cli(gateway: &GatewayHandle, probe: &Probe, shape: JsonShape) -> Value {
    let target = gateway.state.upstream.config().target.clone();
    let upstream = Upstream::new(UpstreamConfig::with_target(&target)).expect("upstream");
    let mut out = Vec::new();
    call_with_timeout(
        &builtin_schema(),
        &upstream,
        probe.path,
        &probe.request.to_string(),
        None,
        shape,
        &mut out,
    )
    .await
    .expect("the call");
    let text = String::from_utf8(out).expect("UTF-8");
    assert_eq!(text.lines().count(), 1, "{text}");
    serde_json::from_str(&text).expect("one JSON line")
}

/// Percent-encoding for a query value.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every object key in `value`, at any depth, with its path.
fn keys(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let here = format!("{path}.{key}");
                out.push(here.clone());
                keys(inner, &here, out);
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                keys(inner, &format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

fn all_keys(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    keys(value, "", &mut out);
    out
}

/// What every shape shares: enums as names, 64-bit integers as strings.
fn assert_common_rules(path: &str, value: &Value) {
    if path == "ApiProjectManager/rootNodeGraph" {
        assert!(value["result"]["handle"].is_string(), "{value}");
        assert_eq!(value["result"]["type"], "ApiRootNodeGraph", "{value}");
    }
}

/// Answers over every route for `ask`, asserted equal; returns the one answer.
async fn same_everywhere(gateway: &GatewayHandle, probe: &Probe, asks: [Ask; 5]) -> Value {
    let [json_ask, sse_ask, batch_ask, ws_ask, connect_ask] = asks;
    let answers = [
        ("JSON route", json_route(gateway, probe, json_ask).await),
        ("SSE", sse(gateway, probe, sse_ask).await),
        ("/batch", batch(gateway, probe, batch_ask).await),
        ("/ws", websocket(gateway, probe, ws_ask).await),
        ("Connect", connect(gateway, probe, connect_ask).await),
    ];
    let (_, first) = &answers[0];
    for (route, answer) in &answers[1..] {
        assert_eq!(
            answer, first,
            "{} over {route} differs from the JSON route's",
            probe.path
        );
    }
    first.clone()
}

#[tokio::test]
async fn each_shape_is_the_same_json_on_every_route() {
    let server = start_render_server(small_config()).await;
    let gateway = start_gateway(&server.addr.to_string()).await;
    let probes = probes(&gateway).await;
    for probe in &probes {
        let mut by_shape = Vec::new();
        for shape in SHAPES {
            // Each route states the choice its own way; a second round uses the others.
            let first = same_everywhere(
                &gateway,
                probe,
                [
                    Ask::Headers(shape),
                    Ask::Query(shape),
                    Ask::Fields(shape),
                    Ask::Fields(shape),
                    Ask::Headers(shape),
                ],
            )
            .await;
            let second = same_everywhere(
                &gateway,
                probe,
                [
                    Ask::Query(shape),
                    Ask::Headers(shape),
                    Ask::Headers(shape),
                    Ask::Query(shape),
                    Ask::Query(shape),
                ],
            )
            .await;
            assert_eq!(first, second, "{} in {shape:?}", probe.path);
            assert_eq!(
                cli(&gateway, probe, shape).await,
                first,
                "{} in {shape:?}: octaneweb call",
                probe.path
            );
            assert_common_rules(probe.path, &first);
            let keys = all_keys(&first);
            match shape.names {
                // Our protos' snake_case fields are the only ones whose names differ.
                FieldNames::Camel => assert!(
                    keys.iter().all(|k| !k.contains('_')),
                    "{} in {shape:?}: {first}",
                    probe.path
                ),
                FieldNames::Proto => {}
            }
            by_shape.push((shape, first));
        }
        // Defaults: the emitted form has every key of the omitted one, and more for the
        // pin info, whose many unset fields are at their default.
        for names in [FieldNames::Proto, FieldNames::Camel] {
            let find = |defaults| {
                by_shape
                    .iter()
                    .find(|(s, _)| *s == JsonShape { names, defaults })
                    .map(|(_, v)| all_keys(v))
                    .expect("shape")
            };
            let (emitted, omitted) = (find(Defaults::Emit), find(Defaults::Omit));
            assert!(
                omitted.iter().all(|k| emitted.contains(k)),
                "{}: {omitted:?} ⊄ {emitted:?}",
                probe.path
            );
            if probe.path == "ApiNodePinInfoEx/getApiNodePinInfo" {
                assert!(emitted.len() > omitted.len(), "{}: {emitted:?}", probe.path);
            }
        }
    }
    // The value's oneof member shows its name in each spelling.
    let value = json_route(&gateway, &probes[2], Ask::Headers(SHAPES[0])).await;
    assert!(value["float3_value"].is_object(), "{value}");
    let value = json_route(&gateway, &probes[2], Ask::Headers(SHAPES[2])).await;
    assert!(value["float3Value"].is_object(), "{value}");
}

#[tokio::test]
async fn routes_keep_their_defaults() {
    let server = start_render_server(small_config()).await;
    let gateway = start_gateway(&server.addr.to_string()).await;
    for probe in probes(&gateway).await {
        let original = json_route(&gateway, &probe, Ask::Nothing).await;
        assert_eq!(sse(&gateway, &probe, Ask::Nothing).await, original);
        assert_eq!(batch(&gateway, &probe, Ask::Nothing).await, original);
        assert_eq!(websocket(&gateway, &probe, Ask::Nothing).await, original);
        assert_eq!(
            original,
            json_route(&gateway, &probe, Ask::Headers(JsonShape::PROXY)).await,
            "{}: the original proxy's routes print proto names with defaults",
            probe.path
        );
        assert_eq!(
            connect(&gateway, &probe, Ask::Nothing).await,
            json_route(&gateway, &probe, Ask::Headers(JsonShape::CANONICAL)).await,
            "{}: Connect prints JSON names without defaults",
            probe.path
        );
    }
}

#[tokio::test]
async fn the_gateway_flag_sets_every_route_and_a_request_overrides_it() {
    let server = start_render_server(small_config()).await;
    let camel = start_gateway_with(
        &server.addr.to_string(),
        GatewayOptions {
            config: GatewayConfig {
                json_shape: ShapeChoice {
                    names: Some(FieldNames::Camel),
                    defaults: None,
                },
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let plain = start_gateway(&server.addr.to_string()).await;
    let probes = probes(&plain).await;
    let in_shape = |names, defaults| Ask::Headers(JsonShape { names, defaults });
    // The value (a snake_case member) tells the names apart, the pin info the defaults.
    let value = &probes[2];
    let pin_info = &probes[3];
    assert_ne!(
        json_route(&plain, value, in_shape(FieldNames::Proto, Defaults::Emit)).await,
        json_route(&plain, value, in_shape(FieldNames::Camel, Defaults::Emit)).await
    );
    assert_ne!(
        json_route(
            &plain,
            pin_info,
            in_shape(FieldNames::Proto, Defaults::Emit)
        )
        .await,
        json_route(
            &plain,
            pin_info,
            in_shape(FieldNames::Proto, Defaults::Omit)
        )
        .await
    );
    for probe in [value, pin_info] {
        // Names come from the flag; defaults stay each route's own.
        let camel_emit =
            json_route(&plain, probe, in_shape(FieldNames::Camel, Defaults::Emit)).await;
        assert_eq!(json_route(&camel, probe, Ask::Nothing).await, camel_emit);
        assert_eq!(sse(&camel, probe, Ask::Nothing).await, camel_emit);
        assert_eq!(batch(&camel, probe, Ask::Nothing).await, camel_emit);
        assert_eq!(websocket(&camel, probe, Ask::Nothing).await, camel_emit);
        assert_eq!(
            connect(&camel, probe, Ask::Nothing).await,
            json_route(&plain, probe, Ask::Headers(JsonShape::CANONICAL)).await
        );

        // A request's choice wins over the flag, part by part.
        let proto_emit = json_route(&plain, probe, Ask::Headers(JsonShape::PROXY)).await;
        let answer = read_answer(
            client()
                .post(camel.url(&format!("/{}", probe.path)))
                .header("x-json-names", "proto")
                .body(probe.request.to_string())
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(answer.body["data"], proto_emit);
        let proto = Ask::Fields(JsonShape::PROXY);
        assert_eq!(websocket(&camel, probe, proto).await, proto_emit);
        assert_eq!(batch(&camel, probe, proto).await, proto_emit);
        assert_eq!(
            sse(&camel, probe, Ask::Query(JsonShape::PROXY)).await,
            proto_emit
        );
        let proto_omit = in_shape(FieldNames::Proto, Defaults::Omit);
        assert_eq!(
            connect(&camel, probe, proto_omit).await,
            json_route(&plain, probe, proto_omit).await
        );

        // A call's own field wins over its socket's and its batch's choice.
        let url = camel
            .url("/ws?json_names=camel")
            .replacen("http://", "ws://", 1);
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("WebSocket handshake");
        let mut ws = Ws::wrap(socket);
        ws.send(json!({
            "id": "own", "method": probe.path, "message": probe.request, "json_names": "proto"
        }))
        .await;
        assert_eq!(ws.finish(&json!("own")).await.messages[0], proto_emit);
        let item = json!({ "method": probe.path, "params": probe.request, "json_names": "proto" });
        let answer = read_answer(
            client()
                .post(camel.url("/batch?json_names=camel"))
                .body(json!([item]).to_string())
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(answer.body[0]["data"], proto_emit, "{}", answer.body);
    }
}

/// Answers counted by the upstream stack: a call that reached the upstream adds one.
async fn upstream_answers(gateway: &GatewayHandle) -> u64 {
    let text = metrics_text(gateway).await;
    text.lines()
        .find_map(|line| line.strip_prefix("octaneweb_upstream_answer_seconds_count "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no answer count in the metrics:\n{text}"))
}

#[tokio::test]
async fn wrong_values_are_refused_naming_the_choices_and_nothing_is_called() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    assert_eq!(upstream_answers(&gateway).await, 0);
    let names = "must be proto or camel";
    let defaults = "must be emit or omit";

    // The JSON route: header, query parameter, the two disagreeing.
    for (headers, query, expected) in [
        (
            &[("x-json-names", "snake")][..],
            "",
            "header X-Json-Names must be proto or camel, got \"snake\"",
        ),
        (
            &[],
            "?json_defaults=yes",
            "query parameter json_defaults must be emit or omit, got \"yes\"",
        ),
        (
            &[("x-json-names", "camel")],
            "?json_names=proto",
            "disagree",
        ),
    ] {
        let mut request = client()
            .post(gateway.url(&format!("/LiveLink/GetCamera{query}")))
            .body("{}");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let answer = read_answer(request.send().await.expect("request")).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.body["code"], "INVALID_ARGUMENT");
        let error = answer.body["error"].as_str().expect("error text");
        assert!(error.contains(expected), "{error}");
    }

    // SSE.
    let answer = read_answer(
        client()
            .get(gateway.url("/sse/LiveLink/GetCamera?json_names=Camel"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["code"], "INVALID_ARGUMENT");
    assert!(answer.body["error"]
        .as_str()
        .is_some_and(|e| e.contains(names)));

    // /batch: per batch the whole request; per call that call only.
    let answer = read_answer(
        client()
            .post(gateway.url("/batch"))
            .header("x-json-defaults", "all")
            .body(r#"[{"method":"LiveLink/GetCamera"}]"#)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body["error"]
        .as_str()
        .is_some_and(|e| e.contains(defaults)));
    let answer = read_answer(
        client()
            .post(gateway.url("/batch"))
            .body(r#"[{"method":"LiveLink/GetCamera","json_names":"kebab","id":"bad"}]"#)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body[0]["id"], "bad");
    assert_eq!(
        answer.body[0]["code"], "INVALID_ARGUMENT",
        "{}",
        answer.body
    );
    assert_eq!(
        answer.body[0]["error"],
        "\"json_names\" must be proto or camel, got \"kebab\""
    );

    // /ws: the call ends at once; the socket's other calls go on. A wrong socket choice
    // refuses the upgrade.
    let mut ws = Ws::connect(&gateway).await;
    ws.send(json!({ "id": 7, "method": "LiveLink/GetCamera", "json_defaults": "none" }))
        .await;
    let finished = ws.finish(&json!(7)).await;
    assert_eq!(
        finished.end["code"], "INVALID_ARGUMENT",
        "{:?}",
        finished.end
    );
    assert!(finished.headers.is_none() && finished.messages.is_empty());
    assert_eq!(
        finished.end["message"],
        "\"json_defaults\" must be emit or omit, got \"none\""
    );
    ws.send(json!({ "id": 8, "method": "LiveLink/GetCamera", "json_names": 1 }))
        .await;
    let error = ws.next_error().await;
    assert_eq!(error["code"], "INVALID_ARGUMENT", "{error}");
    let url = gateway
        .url("/ws?json_names=pascal")
        .replacen("http://", "ws://", 1);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains(names), "{body}");
        }
        other => panic!("expected a refused upgrade, got {other:?}"),
    }

    // Connect.
    let response = client()
        .post(gateway.url("/livelinkapi.LiveLinkService/GetCamera"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .header("x-json-defaults", "maybe")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("Connect error JSON");
    assert_eq!(body["code"], "invalid_argument", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains(defaults)),
        "{body}"
    );

    // None of them reached the upstream; a good call does.
    assert_eq!(upstream_answers(&gateway).await, 0);
    ws.send(json!({ "id": 9, "method": "LiveLink/GetCamera", "json_names": "camel" }))
        .await;
    assert_eq!(ws.finish(&json!(9)).await.end["code"], "OK");
    assert_eq!(upstream_answers(&gateway).await, 1);
}
