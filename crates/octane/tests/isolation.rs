//! The render stream does not share the API's upstream connections: API traffic that fills
//! (or breaks) them leaves viewers' frames flowing.

mod common;

use common::*;
use octaneweb_gateway::upstream::{CallOptions, PoolLimits, Upstream, UpstreamConfig};
use octaneweb_render_server::{CallbackGeneration, ImageFormat};
use prost_reflect::DynamicMessage;
use tonic::{Code, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_api_connection_pool_leaves_the_render_stream_alone() {
    let server = Server::start(server_config(CallbackGeneration::Gen2, ImageFormat::Ldr)).await;
    let upstream = Upstream::new(UpstreamConfig {
        pool: PoolLimits {
            streams_per_connection: 2,
            max_connections: 1,
            max_waiting: 0,
            ..PoolLimits::default()
        },
        ..UpstreamConfig::with_target(server.addr.to_string())
    })
    .expect("upstream");
    let schema = schema(CallbackGeneration::Gen2);
    let method = |service: &str, name: &str| {
        schema
            .pool()
            .get_service_by_name(service)
            .and_then(|s| s.methods().find(|m| m.name() == name))
            .unwrap_or_else(|| panic!("{service}/{name} in the schema"))
    };
    let callbacks = method("octaneapi.StreamCallbackService", "callbackChannel");
    let get_camera = method("livelinkapi.LiveLinkService", "GetCamera");

    // Two endless API streams fill the API pool.
    let mut held = Vec::new();
    for _ in 0..2 {
        let request = Request::new(DynamicMessage::new(callbacks.input()));
        let stream = tokio::time::timeout(
            WAIT,
            upstream.server_streaming(&callbacks, request, CallOptions::default()),
        )
        .await
        .expect("opens in time")
        .expect("callbackChannel opens");
        held.push(stream);
    }
    let refused = upstream
        .unary(
            &get_camera,
            Request::new(DynamicMessage::new(get_camera.input())),
            CallOptions::default(),
        )
        .await
        .expect_err("the API pool is full");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("busy"), "{refused:?}");

    // A viewer still gets frames: the hub subscribes over a connection of its own.
    let gateway = Gateway::start_on(upstream.clone(), CallbackGeneration::Gen2, hub_config()).await;
    let mut ws = gateway.ws().await;
    next_json_of(&mut ws, "hello").await;
    let (header, payload) = next_frame(&mut ws).await;
    assert!(header.width > 0 && !payload.is_empty());
    assert_eq!(gateway.hub.status().metrics.subscriptions, 1);
    assert_eq!(
        upstream.pool_stats().streams,
        2,
        "the API pool is unchanged"
    );
    drop(held);
}
