//! What operators see: unknown paths under one metric label on every protocol.

use serde_json::json;

use crate::common::*;
use crate::passthrough::{frame, raw_grpc};
use crate::ws::Ws;

/// Distinct unknown paths sent on each protocol.
const UNKNOWN_PATHS: usize = 4;

#[tokio::test]
async fn unknown_paths_count_under_one_label_on_every_protocol() {
    let gateway = start_gateway(&shared_render_server().to_string()).await;
    let mut ws = Ws::connect(&gateway).await;
    for i in 0..UNKNOWN_PATHS {
        let path = format!("/nope.Missing{i}/Do{i}");
        let answer = post(&gateway.url(&path), "{}").await;
        assert_eq!(answer.status, 404, "JSON: {}", answer.body);

        let sse = client()
            .get(gateway.url(&format!("/sse{path}")))
            .send()
            .await
            .expect("SSE answer");
        assert_eq!(sse.status(), 404, "SSE");

        // Binary Connect and gRPC-Web forward what the schema does not know: the upstream
        // answers UNIMPLEMENTED.
        let connect = client()
            .post(gateway.url(&path))
            .header("content-type", "application/proto")
            .header("connect-protocol-version", "1")
            .body(Vec::new())
            .send()
            .await
            .expect("Connect answer");
        assert_eq!(connect.status(), 501, "Connect");

        let web = client()
            .post(gateway.url(&path))
            .header("content-type", "application/grpc-web+proto")
            .body(frame(0, b"").to_vec())
            .send()
            .await
            .expect("gRPC-Web answer");
        assert_eq!(
            web.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"12"[..]),
            "gRPC-Web: {:?}",
            web.headers()
        );

        let grpc = raw_grpc(&gateway, &path, &[], frame(0, b"")).await;
        assert_eq!(grpc.status(), 12, "gRPC: {grpc:?}");

        let id = json!(i);
        ws.send(json!({"id": i, "method": path, "message": {}}))
            .await;
        let end = ws.finish(&id).await.end;
        assert_eq!(end["code"], "NOT_FOUND", "/ws: {end}");
    }

    let text = metrics_text(&gateway).await;
    assert!(
        !text.contains("Missing"),
        "an unknown path became a label:\n{text}"
    );
    for protocol in ["json", "sse", "connect", "grpc-web", "grpc", "websocket"] {
        let prefix = format!("octaneweb_calls_total{{protocol=\"{protocol}\",");
        let series: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(series.len(), 1, "{protocol}: one series, got {series:?}");
        assert!(
            series[0].contains("method=\"unresolved\""),
            "{protocol}: {}",
            series[0]
        );
        let count: f64 = series[0]
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        assert_eq!(count, UNKNOWN_PATHS as f64, "{protocol}: {}", series[0]);
    }
}
