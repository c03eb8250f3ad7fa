//! `POST /batch` against the reference render server: order, per-call errors, limits.

use serde_json::{json, Value};

use crate::common::*;

async fn batch(gateway: &GatewayHandle, body: &Value) -> Vec<Value> {
    let answer = post(&gateway.url("/batch"), &body.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .body
        .as_array()
        .unwrap_or_else(|| panic!("an array: {}", answer.body))
        .clone()
}

#[tokio::test]
async fn answers_in_order_with_per_call_errors() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let answers = batch(
        &gateway,
        &json!([
            {"service": "LiveLink", "method": "GetCamera", "id": 1},
            {"service": "LiveLink", "method": "NoSuchMethod", "id": "missing"},
            {"service": "ApiItem", "method": "name",
             "params": {"objectPtr": {"handle": "987654321", "type": "ApiItem"}}},
            {"method": "ApiProjectManager/rootNodeGraph", "id": {"any": "json"}},
            {"service": "LiveLink", "method": "SetCamera", "params": {"position": {"x": "left"}}},
            {"service": "StreamCallback", "method": "callbackChannel"},
            {"service": "LiveLink", "method": "StreamCamera"},
            "not an object",
            {"service": "LiveLink"},
            {"service": "LiveLink", "method": "GetCamera", "bogus": 1},
            {"service": "LiveLink", "method": "GetMeshes", "body": {}},
        ]),
    )
    .await;
    assert_eq!(answers.len(), 11);

    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[0]["success"], true);
    assert!(answers[0]["data"]["position"].is_object(), "{}", answers[0]);

    assert_eq!(answers[1]["id"], "missing");
    assert_eq!(answers[1]["success"], false);
    assert_eq!(answers[1]["code"], "NOT_FOUND");

    assert_eq!(
        answers[2]["code"], "NOT_FOUND",
        "unknown handle: {}",
        answers[2]
    );
    assert!(answers[2].get("id").is_none());

    assert_eq!(answers[3]["id"], json!({"any": "json"}));
    assert_eq!(answers[3]["data"]["result"]["type"], "ApiRootNodeGraph");

    assert_eq!(answers[4]["code"], "INVALID_ARGUMENT");
    assert_eq!(answers[4]["field"], "position.x", "{}", answers[4]);

    for streaming in [5, 6] {
        assert_eq!(answers[streaming]["code"], "INVALID_ARGUMENT");
        assert!(
            answers[streaming]["error"]
                .as_str()
                .unwrap_or_default()
                .contains("streaming"),
            "{}",
            answers[streaming]
        );
    }
    for malformed in [7, 8, 9] {
        assert_eq!(
            answers[malformed]["success"], false,
            "{}",
            answers[malformed]
        );
        assert_eq!(answers[malformed]["code"], "INVALID_ARGUMENT");
    }
    assert_eq!(answers[10]["success"], true);
    assert!(answers[10]["data"]["meshes"].is_array(), "{}", answers[10]);
}

#[tokio::test]
async fn each_answer_is_the_json_routes_body() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let root = call_ok(&gateway, "/ApiProjectManager/rootNodeGraph", "").await["result"].clone();
    let owned = call_ok(
        &gateway,
        "/ApiNodeGraph/getOwnedItems",
        &json!({"objectPtr": root}).to_string(),
    )
    .await["list"]
        .clone();
    let size = call_ok(
        &gateway,
        "/ApiItemArray/size",
        &json!({"objectPtr": owned}).to_string(),
    )
    .await["result"]
        .as_u64()
        .expect("size");
    // A level of the scene tree in one round trip, then its names in another.
    let gets: Vec<Value> = (0..size)
        .map(|index| {
            json!({"service": "ApiItemArray", "method": "get",
                            "params": {"objectPtr": owned, "index": index}})
        })
        .collect();
    let items = batch(&gateway, &Value::Array(gets)).await;
    let names_batch: Vec<Value> = items
        .iter()
        .map(|item| {
            assert_eq!(item["success"], true, "{item}");
            json!({"service": "ApiItem", "method": "name",
                   "params": {"objectPtr": item["data"]["result"]}})
        })
        .collect();
    let names = batch(&gateway, &Value::Array(names_batch.clone())).await;
    assert_eq!(names.len() as u64, size);
    for (call, answer) in names_batch.iter().zip(&names) {
        let single = post(&gateway.url("/ApiItem/name"), &call["params"].to_string()).await;
        assert_eq!(&single.body, answer, "batch answer = JSON route answer");
    }
}

#[tokio::test]
async fn bad_batches_are_refused_whole() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let answer = post(&gateway.url("/batch"), r#"{"service":"LiveLink"}"#).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["code"], "INVALID_ARGUMENT");
    assert!(answer.body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("array"));

    let too_many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    let answer = post(&gateway.url("/batch"), &Value::Array(too_many).to_string()).await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.body["code"], "RESOURCE_EXHAUSTED");

    assert!(batch(&gateway, &json!([])).await.is_empty());

    let answer = read_answer(
        client()
            .get(gateway.url("/batch"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, 405);
}

#[tokio::test]
async fn an_unreachable_upstream_fails_each_call_on_its_own() {
    let gateway = start_gateway(&closed_port().await.to_string()).await;
    let answers = batch(
        &gateway,
        &json!([{"service": "LiveLink", "method": "GetCamera"},
                {"service": "LiveLink", "method": "Nope"}]),
    )
    .await;
    assert_eq!(answers[0]["code"], "UNAVAILABLE", "{}", answers[0]);
    assert_eq!(answers[1]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_calls_timeout_bounds_only_that_call() {
    // An upstream that accepts connections but never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gateway = start_gateway(&silent.local_addr().expect("addr").to_string()).await;
    let answers = batch(
        &gateway,
        &json!([{"service": "LiveLink", "method": "GetCamera", "timeout_ms": 200, "id": 1},
                {"service": "LiveLink", "method": "Nope", "id": 2}]),
    )
    .await;
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[0]["code"], "DEADLINE_EXCEEDED", "{}", answers[0]);
    assert_eq!(answers[1]["code"], "NOT_FOUND");
    drop(silent);
}
