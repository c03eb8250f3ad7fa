//! Server-Sent Events, cancellation of upstream streams when the browser goes away, and
//! graceful shutdown of open streams.

use std::sync::Arc;

use octaneweb_gateway::Protocol;
use tonic::Code;

use crate::common::*;
use crate::counting_upstream::{start_counting_server, wait_for_open};

#[tokio::test]
async fn sse_streams_events_from_the_reference_server() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let response = client()
        .get(gateway.url("/sse/StreamCallback/callbackChannel"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/event-stream"));
    let mut reader = BodyReader::new(response);
    for _ in 0..2 {
        let (name, data) = reader.next_event().await.expect("an event");
        assert_eq!(name, "message");
        let value: serde_json::Value = serde_json::from_str(&data).expect("JSON data");
        assert!(
            value.is_object() && !value.as_object().expect("object").is_empty(),
            "{data}"
        );
    }
}

#[tokio::test]
async fn sse_unary_call_is_one_event_then_end() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let url = format!(
        "{}?message={}",
        gateway.url("/sse/ApiItem/name"),
        "%7B%22objectPtr%22%3A%7B%22handle%22%3A%22987654321%22%7D%7D"
    );
    let mut reader = BodyReader::new(client().get(url).send().await.expect("request"));
    let (name, data) = reader.next_event().await.expect("end event");
    assert_eq!(name, "end", "an unknown handle fails: {data}");
    let end: serde_json::Value = serde_json::from_str(&data).expect("JSON");
    assert_eq!(end["code"], "NOT_FOUND");

    let mut reader = BodyReader::new(
        client()
            .get(gateway.url("/sse/LiveLink/GetCamera"))
            .send()
            .await
            .expect("request"),
    );
    let (name, data) = reader.next_event().await.expect("data event");
    assert_eq!(name, "message");
    assert!(data.contains("position"), "{data}");
    let (name, data) = reader.next_event().await.expect("end event");
    assert_eq!(name, "end");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&data).expect("JSON"),
        serde_json::json!({"code": "OK", "message": ""})
    );
    assert!(reader.next_event().await.is_none());
}

#[tokio::test]
async fn sse_errors_before_the_call_are_http_errors() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let answer = read_answer(
        client()
            .get(gateway.url("/sse/LiveLink/Nope"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body["code"], "NOT_FOUND");
    let answer = read_answer(
        client()
            .get(gateway.url("/sse/LiveLink/GetMesh?message=%7Bbroken"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, 400);
    let answer = read_answer(
        client()
            .get(gateway.url("/sse/LiveLink/StreamCamera"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, 400);
}

#[tokio::test]
async fn sse_deadline_ends_the_stream() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut reader = BodyReader::new(
        client()
            .get(gateway.url("/sse/StreamCallback/callbackChannel?timeout_ms=300"))
            .send()
            .await
            .expect("request"),
    );
    let end = loop {
        let (name, data) = reader.next_event().await.expect("events until the end");
        if name == "end" {
            break data;
        }
    };
    let end: serde_json::Value = serde_json::from_str(&end).expect("JSON");
    assert_eq!(end["code"], "DEADLINE_EXCEEDED");
}

#[tokio::test]
async fn disconnecting_cancels_the_upstream_stream() {
    let (addr, mut open) = start_counting_server().await;
    let gateway = start_gateway(&addr.to_string()).await;

    // SSE
    let response = client()
        .get(gateway.url("/sse/StreamCallback/callbackChannel"))
        .send()
        .await
        .expect("request");
    let mut reader = BodyReader::new(response);
    let (_, data) = reader.next_event().await.expect("first event");
    assert!(data.contains("newStatistics"), "{data}");
    wait_for_open(&mut open, 1).await;
    drop(reader);
    wait_for_open(&mut open, 0).await;

    // NDJSON
    let response = client()
        .post(gateway.url("/StreamCallback/callbackChannel"))
        .send()
        .await
        .expect("request");
    let mut reader = BodyReader::new(response);
    reader.next_line().await.expect("first line");
    wait_for_open(&mut open, 1).await;
    drop(reader);
    wait_for_open(&mut open, 0).await;

    let metrics = Arc::clone(&gateway.state.metrics);
    eventually("the cancelled calls to be recorded", || {
        let metrics = Arc::clone(&metrics);
        async move {
            let method = "octaneapi.StreamCallbackService/callbackChannel";
            metrics.calls(Protocol::Sse, method, Code::Cancelled) == 1
                && metrics.calls(Protocol::Json, method, Code::Cancelled) == 1
        }
    })
    .await;
    assert_eq!(metrics.in_flight(Protocol::Sse), 0);
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_serve_returns() {
    let (addr, mut open) = start_counting_server().await;
    let gateway = start_gateway(&addr.to_string()).await;
    let response = client()
        .post(gateway.url("/StreamCallback/callbackChannel"))
        .send()
        .await
        .expect("request");
    let mut reader = BodyReader::new(response);
    reader.next_line().await.expect("first line");
    wait_for_open(&mut open, 1).await;

    let shutdown = tokio::spawn(gateway.shutdown());
    let end = loop {
        let line = reader.next_line().await.expect("lines until the end");
        if line.get("end").is_some() {
            break line;
        }
    };
    assert_eq!(end["end"]["code"], "UNAVAILABLE", "{end}");
    tokio::time::timeout(EXCHANGE_TIMEOUT, shutdown)
        .await
        .expect("serve returns after draining")
        .expect("task")
        .expect("serve ok");
    wait_for_open(&mut open, 0).await;
}
