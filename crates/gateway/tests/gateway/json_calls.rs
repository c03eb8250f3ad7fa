//! `POST /{Service}/{method}` against the reference render server.

use serde_json::{json, Value};

use crate::common::*;

async fn root_graph(gateway: &GatewayHandle) -> Value {
    let data = call_ok(gateway, "/ApiProjectManager/rootNodeGraph", "").await;
    let root = data["result"].clone();
    assert!(
        root["handle"].is_string(),
        "uint64 handles print as strings: {data}"
    );
    root
}

#[tokio::test]
async fn scene_walk_root_items_size_get_name() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let root = root_graph(&gateway).await;
    assert_eq!(root["type"], "ApiRootNodeGraph");

    let owned = call_ok(
        &gateway,
        "/ApiNodeGraph/getOwnedItems",
        &json!({ "objectPtr": root }).to_string(),
    )
    .await;
    let list = owned["list"].clone();
    assert_eq!(list["type"], "ApiItemArray", "{owned}");

    let size = call_ok(
        &gateway,
        "/octaneapi.ApiItemArrayService/size",
        &json!({ "objectPtr": list }).to_string(),
    )
    .await;
    let count = size["result"].as_u64().expect("size is a number");
    assert!(count > 0, "the built-in scene has items: {size}");

    let mut names = Vec::new();
    for index in 0..count {
        let item = call_ok(
            &gateway,
            "/ApiItemArrayService/get",
            &json!({ "objectPtr": list, "index": index }).to_string(),
        )
        .await["result"]
            .clone();
        let name = call_ok(
            &gateway,
            "/ApiItem/name",
            &json!({ "objectPtr": item }).to_string(),
        )
        .await;
        let name = name["result"]
            .as_str()
            .expect("name is a string")
            .to_owned();
        assert!(!name.is_empty());
        let is_graph = call_ok(
            &gateway,
            "/ApiItem/isGraph",
            &json!({ "objectPtr": item }).to_string(),
        )
        .await;
        assert!(is_graph["result"].is_boolean(), "{is_graph}");
        let out_type = call_ok(
            &gateway,
            "/ApiItem/outType",
            &json!({ "objectPtr": item }).to_string(),
        )
        .await;
        assert!(
            out_type["result"]
                .as_str()
                .is_some_and(|t| t.starts_with("PT_")),
            "enum values print as names: {out_type}"
        );
        names.push(name);
    }
    assert_eq!(names.len() as u64, count);
}

#[tokio::test]
async fn handles_are_accepted_as_numbers_and_strings() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let root = root_graph(&gateway).await;
    let handle_text = root["handle"].as_str().expect("string handle").to_owned();
    let handle_number: u64 = handle_text.parse().expect("numeric handle");

    let as_string = call_ok(
        &gateway,
        "/ApiItem/name",
        &format!(r#"{{"objectPtr":{{"handle":"{handle_text}","type":"ApiRootNodeGraph"}}}}"#),
    )
    .await;
    let as_number = call_ok(
        &gateway,
        "/ApiItem/name",
        &format!(r#"{{"objectPtr":{{"handle":{handle_number},"type":18}}}}"#),
    )
    .await;
    assert_eq!(as_string, as_number);
    assert!(as_string["result"].is_string());
}

#[tokio::test]
async fn livelink_camera_meshes_and_files() {
    let files = tempfile::tempdir().expect("tempdir");
    std::fs::write(files.path().join("hello.txt"), b"hello octane").expect("write");
    let server = start_render_server(octaneweb_render_server::RenderServerConfig {
        file_root: Some(files.path().to_path_buf()),
        max_samples_per_pixel: Some(4),
        ..small_config()
    })
    .await;
    let gateway = start_gateway(&server.addr.to_string()).await;

    let camera = call_ok(&gateway, "/LiveLink/GetCamera", "").await;
    assert!(camera["position"]["x"].is_number(), "{camera}");
    call_ok(
        &gateway,
        "/livelinkapi.LiveLinkService/SetCamera",
        r#"{"fov": 42.5, "position": {"x": 1, "y": 2, "z": 3}}"#,
    )
    .await;
    let camera = call_ok(&gateway, "/LiveLinkService/GetCamera", "{}").await;
    assert_eq!(camera["fov"], 42.5);
    assert_eq!(camera["position"], json!({"x": 1.0, "y": 2.0, "z": 3.0}));

    let meshes = call_ok(&gateway, "/LiveLink/GetMeshes", "").await;
    let list = meshes["meshes"].as_array().expect("meshes").clone();
    assert!(!list.is_empty(), "{meshes}");
    let handle = list[0]["objectHandle"]
        .as_str()
        .or(list[0]["object_handle"].as_str())
        .expect("int64 handle as string")
        .to_owned();
    let mesh = call_ok(
        &gateway,
        "/LiveLink/GetMesh",
        &format!(r#"{{"objecthandle": {handle}}}"#),
    )
    .await;
    assert_eq!(mesh["name"], list[0]["name"]);
    assert!(!mesh["positions"].as_array().expect("positions").is_empty());

    let file = call_ok(&gateway, "/LiveLink/GetFile", r#"{"filepath":"hello.txt"}"#).await;
    // bytes print as base64.
    assert_eq!(file["filedata"], "aGVsbG8gb2N0YW5l");
    server.stop().await;
}

#[tokio::test]
async fn render_engine_controls() {
    let server = start_render_server(small_config()).await;
    let gateway = start_gateway(&server.addr.to_string()).await;
    let registered = call_ok(
        &gateway,
        "/ApiRenderEngine/setOnNewImageCallback",
        r#"{"callback":{"callbackSource":"test","callbackId":1},"userData":"7"}"#,
    )
    .await;
    assert!(registered["callbackId"].is_number(), "{registered}");
    for method in ["pauseRendering", "continueRendering", "restartRendering"] {
        let data = call_ok(&gateway, &format!("/ApiRenderEngine/{method}"), "{}").await;
        assert_eq!(data, json!({}), "{method} returns google.protobuf.Empty");
    }
    call_ok(
        &gateway,
        "/octaneapi.ApiRenderEngineService/setRenderPriority",
        r#"{"priority":"PRIORITY_HIGH"}"#,
    )
    .await;
    eventually("a render result", || async {
        let grabbed = call_ok(&gateway, "/ApiRenderEngine/grabRenderResult", "").await;
        let ok = grabbed["result"] == true;
        call_ok(&gateway, "/ApiRenderEngine/releaseRenderResult", "").await;
        if ok {
            let image = &grabbed["renderImages"]["data"][0];
            assert_eq!(image["size"], json!({"x": 64, "y": 32}), "{image}");
        }
        ok
    })
    .await;
    call_ok(&gateway, "/ApiRenderEngine/stopRendering", "").await;
    server.stop().await;
}

#[tokio::test]
async fn call_id_is_echoed_or_made_up() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let response = client()
        .post(gateway.url("/LiveLink/GetCamera"))
        .header("X-Call-Id", "call-42")
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["x-call-id"], "call-42");
    let answer = read_answer(response).await;
    assert_eq!(answer.body["success"], true);

    // Failures carry it too, and a call without one gets a fresh id.
    let failed = post(&gateway.url("/NoSuch/method"), "").await;
    assert_eq!(failed.status, 404);
    let made_up = failed.headers["x-call-id"].to_str().expect("ascii");
    assert_eq!(made_up.len(), 36, "a UUID: {made_up}");
}

#[tokio::test]
async fn wrong_content_type_is_read_as_json() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let response = client()
        .post(gateway.url("/LiveLink/GetCamera"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("request");
    let answer = read_answer(response).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["success"], true);
}

#[tokio::test]
async fn server_stream_as_ndjson() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let response = client()
        .post(gateway.url("/StreamCallback/callbackChannel"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut reader = BodyReader::new(response);
    for _ in 0..2 {
        let line = reader.next_line().await.expect("a line");
        let data = line["data"].as_object().expect("{\"data\":...}");
        assert!(
            [
                "newImage",
                "newStatistics",
                "renderFailure",
                "projectManagerChanged"
            ]
            .iter()
            .any(|k| data.contains_key(*k)),
            "a callback payload: {line}"
        );
    }
    drop(reader);
}

#[tokio::test]
async fn server_stream_deadline_ends_with_deadline_exceeded() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let response = client()
        .post(gateway.url("/StreamCallback/callbackChannel"))
        .header("X-Timeout-Ms", "300")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let mut reader = BodyReader::new(response);
    let end = loop {
        let line = reader.next_line().await.expect("a line before the end");
        if line.get("end").is_some() {
            break line;
        }
    };
    assert_eq!(end["end"]["code"], "DEADLINE_EXCEEDED", "{end}");
    assert!(
        reader.next_line().await.is_none(),
        "nothing after the end line"
    );
}
