//! The original proxy's habits on its JSON route: `objectPtr` for any request's object
//! reference, `0`/`1` for booleans, and the client's log posts. Connect stays strict.

use serde_json::{json, Value};

use crate::common::*;

/// POST `body` as Connect unary JSON.
async fn connect_json(gateway: &GatewayHandle, path: &str, body: &str) -> (u16, Value) {
    let response = client()
        .post(gateway.url(path))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, body)
}

fn error_text(answer: &Answer) -> String {
    answer.body["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn object_ptr_and_numeric_booleans_reach_the_node_system() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let camera = camera_node(&gateway).await;

    // `enterWrapperNode: 1`, as the original client sends it.
    let connected_body = json!({ "objectPtr": camera, "pinIx": 0, "enterWrapperNode": 1 });
    let position = call_ok(
        &gateway,
        "/ApiNode/connectedNodeIx",
        &connected_body.to_string(),
    )
    .await["result"]
        .clone();
    assert!(position["handle"].is_string(), "{position}");

    // getValueByAttrID's reference is `item_ref`; objectPtr stands for it.
    let value_body = json!({ "objectPtr": position, "attribute_id": 185, "expected_type": 11 });
    let value = call_ok(
        &gateway,
        "/ApiItem/getValueByAttrID",
        &value_body.to_string(),
    )
    .await;
    let float3 = value
        .as_object()
        .and_then(|o| o.values().find(|v| v.get("x").is_some()))
        .unwrap_or_else(|| panic!("a float3 value: {value}"));
    assert!(
        float3["y"].is_number() && float3["z"].is_number(),
        "{value}"
    );

    // getApiNodePinInfo's reference is `nodePinInfoRef`.
    let pin_info = call_ok(
        &gateway,
        "/ApiNode/pinInfoIx",
        &json!({ "objectPtr": camera, "index": 0 }).to_string(),
    )
    .await["result"]
        .clone();
    let info = call_ok(
        &gateway,
        "/ApiNodePinInfoEx/getApiNodePinInfo",
        &json!({ "objectPtr": pin_info }).to_string(),
    )
    .await;
    assert_eq!(info["success"], true, "{info}");
    assert!(info["nodePinInfo"].is_object(), "{info}");

    // Both names for the reference: refused, naming both.
    let both = post(
        &gateway.url("/ApiItem/getValueByAttrID"),
        &json!({ "objectPtr": position, "item_ref": position, "attribute_id": 185 }).to_string(),
    )
    .await;
    assert_eq!(both.status, 400, "{}", both.body);
    assert_eq!(both.body["code"], "INVALID_ARGUMENT");
    let text = error_text(&both);
    assert!(
        text.contains("objectPtr") && text.contains("item_ref"),
        "{text}"
    );

    // No object reference to stand for: objectPtr is an unknown field.
    let unknown = post(
        &gateway.url("/LiveLink/SetCamera"),
        &json!({ "objectPtr": position }).to_string(),
    )
    .await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert!(
        error_text(&unknown).contains("objectPtr"),
        "{}",
        unknown.body
    );

    // Only 0 and 1 are booleans.
    let two = post(
        &gateway.url("/ApiNode/connectedNodeIx"),
        &json!({ "objectPtr": camera, "pinIx": 0, "enterWrapperNode": 2 }).to_string(),
    )
    .await;
    assert_eq!(two.status, 400, "{}", two.body);
    assert!(
        error_text(&two).contains("enterWrapperNode"),
        "{}",
        two.body
    );

    // Batched calls are the JSON route's calls, leniencies included.
    let batch = post(
        &gateway.url("/batch"),
        &json!([
            { "method": "ApiNode/connectedNodeIx", "params": connected_body },
            { "method": "ApiItem/getValueByAttrID", "params": value_body },
        ])
        .to_string(),
    )
    .await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    for answer in batch.body.as_array().expect("array") {
        assert_eq!(answer["success"], true, "{}", batch.body);
    }

    // Connect reads strict proto3 JSON: the same bodies are refused.
    for (path, body) in [
        (
            "/octaneapi.ApiItemService/getValueByAttrID",
            value_body.to_string(),
        ),
        (
            "/octaneapi.ApiNodeService/connectedNodeIx",
            connected_body.to_string(),
        ),
    ] {
        let (status, answer) = connect_json(&gateway, path, &body).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["code"], "invalid_argument", "{path}: {answer}");
    }
    // ...and the strict spelling works there.
    let strict = json!({ "item_ref": position, "attribute_id": 185, "expected_type": 11 });
    let (status, answer) = connect_json(
        &gateway,
        "/octaneapi.ApiItemService/getValueByAttrID",
        &strict.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn the_original_clients_log_posts_are_accepted_and_bounded() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    for path in ["/debug/append-log", "/debug/clear-log", "/save-debug-logs"] {
        let answer = post(
            &gateway.url(path),
            r#"{"level":"info","message":"line one\nINFO forged"}"#,
        )
        .await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_eq!(answer.body, json!({ "success": true }), "{path}");
        // An empty body too.
        let answer = post(&gateway.url(path), "").await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);

        let huge = "x".repeat(octaneweb_gateway::server::client_log::MAX_LOG_BODY + 1);
        let answer = post(&gateway.url(path), &huge).await;
        assert_eq!(answer.status, 413, "{path}: {}", answer.body);
        assert_eq!(answer.body["success"], false, "{path}");

        let response = client()
            .post(gateway.url(path))
            .header("origin", "https://evil.example")
            .body("{}")
            .send()
            .await
            .expect("request");
        let refused = read_answer(response).await;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert_eq!(refused.body["success"], false, "{path}");

        let response = client().get(gateway.url(path)).send().await.expect("get");
        assert_eq!(response.status(), 405, "{path}");
    }
    // Other unknown routes are unchanged.
    let response = client()
        .post(gateway.url("/debug/other/route"))
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);
}
