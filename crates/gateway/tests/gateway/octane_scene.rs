//! The reference server's Octane node graph through the JSON route, the way a browser client
//! written for the original proxy walks and edits it.

use std::collections::{BTreeSet, VecDeque};

use serde_json::{json, Value};

use crate::common::*;

/// The handle of a reference in an answer; unlinked pins answer handle 0 (or leave it out).
fn handle_of(reference: &Value) -> u64 {
    match &reference["handle"] {
        Value::String(text) => text.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn reference(handle: u64) -> Value {
    json!({ "handle": handle.to_string(), "type": "ApiItem" })
}

#[tokio::test]
async fn a_browser_client_walks_the_whole_scene_and_edits_a_pin() {
    // A server of its own: the test edits the scene.
    let server = start_render_server(small_config()).await;
    let gateway = start_gateway(&server.addr.to_string()).await;
    let root = call_ok(&gateway, "/ApiProjectManager/rootNodeGraph", "{}").await["result"].clone();
    let mut queue = VecDeque::from([handle_of(&root)]);
    let mut seen = BTreeSet::new();
    let mut nodes = 0;
    let mut camera = None;
    while let Some(item) = queue.pop_front() {
        if item == 0 || !seen.insert(item) {
            continue;
        }
        let body = json!({ "objectPtr": reference(item) }).to_string();
        let name = call_ok(&gateway, "/ApiItem/name", &body).await["result"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let is_graph = call_ok(&gateway, "/ApiItem/isGraph", &body).await["result"]
            .as_bool()
            .unwrap_or(false);
        call_ok(&gateway, "/ApiItem/outType", &body).await;
        if is_graph {
            call_ok(&gateway, "/ApiNodeGraph/info1", &body).await;
            let list =
                call_ok(&gateway, "/ApiNodeGraph/getOwnedItems", &body).await["list"].clone();
            let list_body = json!({ "objectPtr": list }).to_string();
            let size = call_ok(&gateway, "/ApiItemArray/size", &list_body).await["result"]
                .as_u64()
                .unwrap_or(0);
            for index in 0..size {
                let got = call_ok(
                    &gateway,
                    "/ApiItemArray/get",
                    &json!({ "objectPtr": list, "index": index }).to_string(),
                )
                .await;
                queue.push_back(handle_of(&got["result"]));
            }
            continue;
        }
        nodes += 1;
        if name == "Camera" {
            camera = Some(item);
        }
        let info = call_ok(&gateway, "/ApiNode/info", &body).await;
        assert!(
            info["result"]["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("NT_")),
            "{info}"
        );
        let pins = call_ok(&gateway, "/ApiNode/pinCount", &body).await["result"]
            .as_u64()
            .unwrap_or(0);
        for index in 0..pins {
            let linked = call_ok(
                &gateway,
                "/ApiNode/connectedNodeIx",
                &json!({ "objectPtr": reference(item), "pinIx": index, "enterWrapperNode": true })
                    .to_string(),
            )
            .await;
            queue.push_back(handle_of(&linked["result"]));
            let info_ref = call_ok(
                &gateway,
                "/ApiNode/pinInfoIx",
                &json!({ "objectPtr": reference(item), "index": index }).to_string(),
            )
            .await["result"]
                .clone();
            let pin = call_ok(
                &gateway,
                "/ApiNodePinInfoEx/getApiNodePinInfo",
                &json!({ "nodePinInfoRef": info_ref }).to_string(),
            )
            .await;
            assert!(
                pin["nodePinInfo"]["staticLabel"]
                    .as_str()
                    .is_some_and(|l| !l.is_empty()),
                "{pin}"
            );
        }
        if pins == 0 {
            let attribute = call_ok(
                &gateway,
                "/ApiItem/attrInfo",
                &json!({ "objectPtr": reference(item), "id": "A_VALUE" }).to_string(),
            )
            .await;
            let expected = match attribute["result"]["type"].as_str() {
                Some("AT_FLOAT3") => "ATTR_ID_FLOAT3",
                Some("AT_INT3") => "ATTR_ID_INT3",
                Some("AT_FLOAT") => "ATTR_ID_FLOAT",
                other => panic!("{name}: {other:?}"),
            };
            let value = call_ok(
                &gateway,
                "/ApiItem/getValueByAttrID",
                &json!({ "item_ref": reference(item), "attribute_id": "A_VALUE", "expected_type": expected })
                    .to_string(),
            )
            .await;
            assert!(
                value.as_object().is_some_and(|v| !v.is_empty()),
                "{name}: {value}"
            );
        }
    }
    assert!(nodes >= 30, "{nodes} nodes reached");

    // An edit through the same route, read back.
    let camera = camera.expect("the walk met the camera");
    call_ok(
        &gateway,
        "/ApiNode/setPinValueByPinID",
        &json!({ "item_ref": reference(camera), "pin_id": "P_FOV", "float_value": 41.5 })
            .to_string(),
    )
    .await;
    let fov = call_ok(
        &gateway,
        "/ApiNode/getPinValueByPinID",
        &json!({ "item_ref": reference(camera), "pin_id": "P_FOV", "expected_type": "PIN_ID_FLOAT" })
            .to_string(),
    )
    .await;
    assert_eq!(fov["float_value"], 41.5, "{fov}");
    let camera_state = call_ok(&gateway, "/LiveLink/GetCamera", "").await;
    assert_eq!(
        camera_state["fov"], 41.5,
        "LiveLink sees the pin's value: {camera_state}"
    );
    let refused = call_err(
        &gateway,
        "/ApiNode/setPinValueByPinID",
        &json!({ "item_ref": reference(camera), "pin_id": "P_FOV", "float_value": 500.0 })
            .to_string(),
        400,
        "OUT_OF_RANGE",
    )
    .await;
    assert!(refused.contains("fov"), "{refused}");
}
