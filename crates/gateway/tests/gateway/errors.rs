//! Every row of the error table, and the gateway keeps serving after each bad input.

use std::time::Duration;

use octaneweb_gateway::GatewayConfig;
use octaneweb_schema::SchemaBuilder;
use tokio::net::TcpListener;

use crate::common::*;

#[tokio::test]
async fn bad_requests_get_precise_errors_and_the_gateway_keeps_serving() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let still_serving = || async {
        call_ok(&gateway, "/LiveLink/GetCamera", "").await;
    };

    let text = call_err(&gateway, "/NoSuchService/method", "", 404, "NOT_FOUND").await;
    assert!(text.contains("NoSuchService"), "{text}");
    still_serving().await;

    let text = call_err(&gateway, "/LiveLink/NoSuchMethod", "", 404, "NOT_FOUND").await;
    assert!(text.contains("NoSuchMethod"), "{text}");
    still_serving().await;

    let text = call_err(
        &gateway,
        "/ApiItem/name",
        "{not json",
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    assert!(text.contains("malformed JSON"), "{text}");
    still_serving().await;

    let answer = post(
        &gateway.url("/ApiItem/name"),
        r#"{"objectPtr":{"handel":1}}"#,
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let text = answer.body["error"].as_str().expect("error");
    assert!(text.contains("handel"), "unknown field named: {text}");
    still_serving().await;

    let answer = post(
        &gateway.url("/ApiItem/name"),
        r#"{"objectPtr":{"handle":true}}"#,
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["code"], "INVALID_ARGUMENT");
    let text = answer.body["error"].as_str().expect("error");
    assert!(text.contains("objectPtr.handle"), "path named: {text}");
    still_serving().await;

    let answer = post(&gateway.url("/ApiItem/name"), r#"{"objectPtr":"abc"}"#).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let text = answer.body["error"].as_str().expect("error");
    assert!(
        text.contains("objectPtr"),
        "a string where a message belongs: {text}"
    );
    still_serving().await;

    let text = call_err(
        &gateway,
        "/LiveLink/StreamCamera",
        "{}",
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    // It names every path that carries client streams.
    assert!(
        text.contains("client-streaming")
            && text.contains("Connect (application/connect+json or +proto)")
            && text.contains("gRPC-Web")
            && text.contains("native gRPC (application/grpc)")
            && text.contains("the WebSocket /ws (rpc.js)"),
        "{text}"
    );
    still_serving().await;

    let response = client()
        .get(gateway.url("/LiveLink/GetCamera"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let answer = read_answer(response).await;
    assert_eq!(answer.body["success"], false);
    still_serving().await;

    let response = client()
        .post(gateway.url("/LiveLink/GetCamera"))
        .header("X-Timeout-Ms", "soon")
        .send()
        .await
        .expect("request");
    let answer = read_answer(response).await;
    assert_eq!(answer.status, 400);
    assert!(answer.body["error"]
        .as_str()
        .expect("error")
        .contains("X-Timeout-Ms"));
    still_serving().await;

    // Absurdly long deadlines are just long.
    for (header, value) in [
        ("X-Timeout-Ms", "18446744073709551615"),
        ("grpc-timeout", "99999999H"),
    ] {
        let response = client()
            .post(gateway.url("/LiveLink/GetCamera"))
            .header(header, value)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{header}: {value}");
    }
}

#[tokio::test]
async fn upstream_statuses_are_mapped() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let text = call_err(
        &gateway,
        "/ApiItem/name",
        r#"{"objectPtr":{"handle":"987654321987","type":"ApiItem"}}"#,
        404,
        "NOT_FOUND",
    )
    .await;
    assert!(
        text.contains("987654321987"),
        "the upstream's own message: {text}"
    );

    let root = call_ok(&gateway, "/ApiProjectManager/rootNodeGraph", "").await["result"].clone();
    let list = call_ok(
        &gateway,
        "/ApiNodeGraph/getOwnedItems",
        &serde_json::json!({ "objectPtr": root }).to_string(),
    )
    .await["list"]
        .clone();
    call_err(
        &gateway,
        "/ApiItemArray/get",
        &serde_json::json!({ "objectPtr": list, "index": 100000 }).to_string(),
        400,
        "OUT_OF_RANGE",
    )
    .await;
    // GetFile without a file root on the server: PERMISSION_DENIED -> 403.
    call_err(
        &gateway,
        "/LiveLink/GetFile",
        r#"{"filepath":"x"}"#,
        403,
        "PERMISSION_DENIED",
    )
    .await;
    call_ok(&gateway, "/LiveLink/GetCamera", "").await;
}

#[tokio::test]
async fn ambiguous_service_names_list_the_candidates() {
    let mut builder = SchemaBuilder::new();
    builder
        .add_proto_source(
            "a.proto",
            "syntax = \"proto3\"; package a; message M {} service FooService { rpc Bar(M) returns (M); }",
        )
        .expect("a.proto");
    builder
        .add_proto_source(
            "b.proto",
            "syntax = \"proto3\"; package b; message M {} service FooService { rpc Bar(M) returns (M); }",
        )
        .expect("b.proto");
    let schema = builder.build().expect("schema");
    let gateway = start_gateway_with(
        &closed_port().await.to_string(),
        GatewayOptions {
            schema,
            ..GatewayOptions::default()
        },
    )
    .await;
    let answer = post(&gateway.url("/Foo/Bar"), "{}").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["code"], "INVALID_ARGUMENT");
    assert_eq!(
        answer.body["candidates"],
        serde_json::json!(["a.FooService", "b.FooService"])
    );
    let text = answer.body["error"].as_str().expect("error");
    assert!(
        text.contains("a.FooService") && text.contains("b.FooService"),
        "{text}"
    );
    // The full name is not ambiguous: it reaches the (absent) upstream.
    call_err(&gateway, "/a.FooService/Bar", "{}", 503, "UNAVAILABLE").await;
}

#[tokio::test]
async fn oversize_body_is_413_in_the_json_form() {
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
    let big = format!(r#"{{"filepath":"{}"}}"#, "x".repeat(4096));
    let text = call_err(
        &gateway,
        "/LiveLink/GetFile",
        &big,
        413,
        "RESOURCE_EXHAUSTED",
    )
    .await;
    assert!(text.contains("1024"), "{text}");

    // Without a Content-Length (chunked), the limit still holds.
    let chunks = futures::stream::iter((0..8).map(|_| {
        Ok::<_, std::io::Error>(http_body::Frame::data(bytes::Bytes::from(vec![b' '; 512])))
    }));
    let response = client()
        .post(gateway.url("/LiveLink/GetCamera"))
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(chunks)))
        .send()
        .await
        .expect("request");
    let answer = read_answer(response).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    call_ok(&gateway, "/LiveLink/GetCamera", "").await;
}

#[tokio::test]
async fn upstream_down_is_503_then_recovers_without_restarting_the_gateway() {
    let addr = closed_port().await;
    let gateway = start_gateway(&addr.to_string()).await;
    let text = call_err(&gateway, "/LiveLink/GetCamera", "", 503, "UNAVAILABLE").await;
    // The answer names the upstream and why it cannot be reached, not just "tcp connect error".
    assert!(
        text.contains(&format!("upstream {addr} is unreachable"))
            && text.to_lowercase().contains("refused"),
        "{text}"
    );
    let health = read_answer(
        client()
            .get(gateway.url("/health"))
            .send()
            .await
            .expect("health"),
    )
    .await;
    assert_eq!(
        health.body,
        serde_json::json!({"status": "ok", "connected": false})
    );

    let listener = TcpListener::bind(addr).await.expect("rebind the same port");
    let server = start_render_server_on(listener, small_config());
    eventually("calls to succeed after the upstream came up", || async {
        post(&gateway.url("/LiveLink/GetCamera"), "").await.status == 200
    })
    .await;
    let health = read_answer(
        client()
            .get(gateway.url("/health"))
            .send()
            .await
            .expect("health"),
    )
    .await;
    assert_eq!(health.body["connected"], true);
    assert!(gateway.state.upstream.reconnects() >= 1);
    let metrics = metrics_text(&gateway).await;
    assert!(
        metrics.contains("octaneweb_upstream_reconnects_total 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn deadline_on_a_silent_upstream_is_504() {
    // An upstream that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = silent.local_addr().expect("addr");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let gateway = start_gateway(&addr.to_string()).await;
    let response = client()
        .post(gateway.url("/LiveLink/GetCamera"))
        .header("X-Timeout-Ms", "200")
        .send()
        .await
        .expect("request");
    let answer = read_answer(response).await;
    assert_eq!(answer.status, 504, "{}", answer.body);
    assert_eq!(answer.body["code"], "DEADLINE_EXCEEDED");

    // The configured default deadline applies when the client gives none.
    let gateway = start_gateway_with(
        &addr.to_string(),
        GatewayOptions {
            default_timeout: Some(Duration::from_millis(200)),
            ..GatewayOptions::default()
        },
    )
    .await;
    call_err(
        &gateway,
        "/LiveLink/GetCamera",
        "",
        504,
        "DEADLINE_EXCEEDED",
    )
    .await;
    holder.abort();
}
