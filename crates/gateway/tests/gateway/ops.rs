//! Operations routes, CORS and h2c.

use octaneweb_gateway::GatewayConfig;

use crate::common::*;

async fn get(url: String) -> reqwest::Response {
    client().get(url).send().await.expect("request")
}

#[tokio::test]
async fn health_healthz_readyz_with_a_live_upstream() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let health = read_answer(get(gateway.url("/health")).await).await;
    assert_eq!(health.status, 200);
    assert_eq!(
        health.body,
        serde_json::json!({"status": "ok", "connected": true})
    );
    let healthz = read_answer(get(gateway.url("/healthz")).await).await;
    assert_eq!(healthz.body, serde_json::json!({"status": "ok"}));
    let readyz = read_answer(get(gateway.url("/readyz")).await).await;
    assert_eq!(readyz.status, 200, "{}", readyz.body);
    assert_eq!(readyz.body["status"], "ready");
}

#[tokio::test]
async fn readyz_is_503_with_a_reason_when_the_upstream_is_down() {
    let gateway = start_gateway(&closed_port().await.to_string()).await;
    let response = get(gateway.url("/readyz")).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let readyz = read_answer(response).await;
    assert_eq!(readyz.status, 503);
    assert!(readyz.body["reason"]
        .as_str()
        .expect("reason")
        .contains("health check"));
    let healthz = read_answer(get(gateway.url("/healthz")).await).await;
    assert_eq!(healthz.status, 200, "the process itself is fine");
    let health = read_answer(get(gateway.url("/health")).await).await;
    assert_eq!(health.body["connected"], false);
}

#[tokio::test]
async fn metrics_count_calls_by_protocol_method_and_code() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    call_ok(&gateway, "/LiveLink/GetCamera", "").await;
    call_err(&gateway, "/LiveLink/Nope", "", 404, "NOT_FOUND").await;
    let response = get(gateway.url("/metrics")).await;
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.expect("text");
    for expected in [
        "octaneweb_calls_total{protocol=\"json\",method=\"livelinkapi.LiveLinkService/GetCamera\",code=\"OK\"} 1",
        "octaneweb_calls_total{protocol=\"json\",method=\"unresolved\",code=\"NOT_FOUND\"} 1",
        "octaneweb_call_duration_seconds_count{protocol=\"json\",method=\"livelinkapi.LiveLinkService/GetCamera\"} 1",
        "octaneweb_calls_in_flight{protocol=\"json\"} 0",
        "octaneweb_upstream_connected 1",
        "# TYPE octaneweb_sent_bytes_total counter",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// The value of the first series in a Prometheus exposition whose line starts with `series`.
fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_show_the_upstream_stacks_answer_times_and_failures() {
    let live = start_gateway(&shared_render_server().to_string()).await;
    call_ok(&live, "/LiveLink/GetCamera", "").await;
    let text = get(live.url("/metrics")).await.text().await.expect("text");
    let answers = series_value(&text, "octaneweb_upstream_answer_seconds_count").unwrap_or(0.0);
    assert!(answers >= 1.0, "no upstream answer counted in:\n{text}");
    assert!(
        series_value(&text, "octaneweb_upstream_answer_seconds_sum").is_some_and(|s| s > 0.0),
        "{text}"
    );

    let down = start_gateway(&closed_port().await.to_string()).await;
    let before = series_value(
        &get(down.url("/metrics")).await.text().await.expect("text"),
        "octaneweb_upstream_failures_total{code=\"UNAVAILABLE\"}",
    )
    .unwrap_or(0.0);
    call_err(&down, "/LiveLink/GetCamera", "", 503, "UNAVAILABLE").await;
    let text = get(down.url("/metrics")).await.text().await.expect("text");
    let after = series_value(
        &text,
        "octaneweb_upstream_failures_total{code=\"UNAVAILABLE\"}",
    )
    .unwrap_or(0.0);
    assert_eq!(after, before + 1.0, "{text}");
}

#[tokio::test]
async fn schema_lists_services_and_messages() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let answer = read_answer(get(gateway.url("/schema")).await).await;
    assert_eq!(answer.status, 200);
    let services: Vec<&str> = answer.body["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["full_name"].as_str())
        .collect();
    for expected in [
        "octaneapi.ApiItemService",
        "octaneapi.ApiRenderEngineService",
        "octaneapi.StreamCallbackService",
        "livelinkapi.LiveLinkService",
    ] {
        assert!(services.contains(&expected), "{expected} in {services:?}");
    }
    assert!(answer.body["messages"]["octaneapi.ObjectRef"].is_object());
}

#[tokio::test]
async fn cors_preflight_on_any_path_and_exposed_headers() {
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            config: GatewayConfig {
                cors_origins: vec![
                    "https://app.example.com".into(),
                    "http://localhost:5173".into(),
                    "http://127.0.0.1:8080".into(),
                ],
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    for (path, origin) in [
        ("/LiveLink/GetCamera", "http://localhost:5173"),
        ("/no/such/route/at/all", "http://127.0.0.1:8080"),
        ("/render/stream", "https://app.example.com"),
    ] {
        let response = client()
            .request(reqwest::Method::OPTIONS, gateway.url(path))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "content-type,x-call-id,x-grpc-web",
            )
            .send()
            .await
            .expect("preflight");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], origin, "{path}");
        let allowed = headers["access-control-allow-headers"]
            .to_str()
            .expect("ascii");
        assert!(allowed.contains("x-grpc-web"), "{allowed}");
        assert!(headers["access-control-allow-methods"]
            .to_str()
            .expect("ascii")
            .contains("POST"));
    }

    // A foreign page's preflight is answered too: the request that follows is refused
    // before routing, and the browser can then read why.
    let response = client()
        .request(reqwest::Method::OPTIONS, gateway.url("/LiveLink/GetCamera"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://evil.example"
    );
    let response = client()
        .post(gateway.url("/LiveLink/GetCamera"))
        .header("Origin", "https://evil.example")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://evil.example"
    );

    let response = client()
        .post(gateway.url("/LiveLink/GetCamera"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for header in ["x-call-id", "grpc-status", "grpc-message", "content-type"] {
        assert!(exposed.contains(header), "{header} in {exposed}");
    }
}

#[tokio::test]
async fn http2_prior_knowledge_is_served_on_the_same_port() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(EXCHANGE_TIMEOUT)
        .build()
        .expect("client");
    let response = h2
        .post(gateway.url("/LiveLink/GetCamera"))
        .send()
        .await
        .expect("h2c request");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let answer = read_answer(response).await;
    assert_eq!(answer.body["success"], true);
}

#[tokio::test]
async fn extra_routes_and_their_fallback_share_the_port() {
    let extra = axum::Router::new()
        .route(
            "/render/stream",
            axum::routing::get(|| async { "render stream" }),
        )
        .fallback(|| async { "static file" });
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            extra,
            ..GatewayOptions::default()
        },
    )
    .await;
    let text = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 200);
        response.text().await.expect("text")
    };
    assert_eq!(
        text(get(gateway.url("/render/stream")).await).await,
        "render stream"
    );
    // Two-segment GETs that are not calls reach the extra fallback (static files) ...
    assert_eq!(
        text(get(gateway.url("/js/app.js")).await).await,
        "static file"
    );
    assert_eq!(
        text(get(gateway.url("/index.html")).await).await,
        "static file"
    );
    // ... while POSTs on them are calls, and gateway routes keep working.
    call_ok(&gateway, "/LiveLink/GetCamera", "").await;
    let health = read_answer(get(gateway.url("/health")).await).await;
    assert_eq!(health.body["status"], "ok");
    assert!(get(gateway.url("/js/app.js"))
        .await
        .headers()
        .contains_key("x-call-id"));
}

/// CORS only hides answers from foreign pages; a plain-text POST needs no preflight, so the
/// gateway itself must refuse it, or any web page could move the camera.
#[tokio::test]
async fn requests_from_foreign_pages_are_refused_before_they_reach_the_upstream() {
    let render = start_render_server(small_config()).await;
    let gateway = start_gateway_with(
        &render.addr.to_string(),
        GatewayOptions {
            config: GatewayConfig {
                cors_origins: vec!["http://localhost:5173".into()],
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let before = call_ok(&gateway, "/LiveLink/GetCamera", "{}").await;

    let response = client()
        .post(gateway.url("/LiveLink/SetCamera"))
        .header("Origin", "https://evil.example")
        .header("Content-Type", "text/plain")
        .body(r#"{"fov": 77}"#)
        .send()
        .await
        .expect("request");
    let refused = read_answer(response).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["code"], "PERMISSION_DENIED");
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("https://evil.example") && e.contains("--cors-origin")),
        "{}",
        refused.body
    );
    assert_eq!(
        call_ok(&gateway, "/LiveLink/GetCamera", "{}").await,
        before,
        "the refused call must not have reached the upstream"
    );

    // A development server on another loopback port is a foreign page unless listed.
    let response = client()
        .post(gateway.url("/LiveLink/SetCamera"))
        .header("Origin", "http://localhost:3000")
        .body(r#"{"fov": 66}"#)
        .send()
        .await
        .expect("request");
    let refused = read_answer(response).await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // The same call from an allowed page goes through.
    let response = client()
        .post(gateway.url("/LiveLink/SetCamera"))
        .header("Origin", "http://localhost:5173")
        .body(r#"{"fov": 77}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(read_answer(response).await.status, 200);
    let after = call_ok(&gateway, "/LiveLink/GetCamera", "{}").await;
    assert_eq!(after["fov"], 77.0, "{after}");
    render.stop().await;
}

#[tokio::test]
async fn schema_binpb_is_the_schema_as_a_descriptor_set_behind_the_token() {
    use octaneweb_gateway::AccessToken;
    use prost::Message as _;

    const TOKEN: &str = "schema-token-0123456789abcdef";
    let mut builder = octaneweb_schema::SchemaBuilder::new();
    builder
        .add_descriptor_set("builtin", octaneweb_proto::DESCRIPTOR_SET)
        .expect("built-in set")
        .add_reflection_services()
        .expect("reflection files");
    let gateway = start_gateway_with(
        &shared_render_server().to_string(),
        GatewayOptions {
            schema: builder.build().expect("schema"),
            config: GatewayConfig {
                token: Some(AccessToken::new(TOKEN).expect("token")),
                ..GatewayConfig::default()
            },
            ..GatewayOptions::default()
        },
    )
    .await;
    let refused = get(gateway.url("/schema.binpb")).await;
    assert_eq!(refused.status(), 401);

    let response = client()
        .get(gateway.url("/schema.binpb"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"schema.binpb\""
    );
    let bytes = response.bytes().await.expect("body");
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
        seen.insert(file.name());
    }
    assert_eq!(set.file.len(), gateway.state.schema.pool().files().len());
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
    assert!(livelink
        .source_code_info
        .as_ref()
        .expect("source info kept")
        .location
        .iter()
        .any(|l| l
            .leading_comments()
            .contains("Getters are marked NO_SIDE_EFFECTS")));
}
