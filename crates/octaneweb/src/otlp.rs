//! `--otlp-endpoint`: every finished call with a sampled trace becomes one span, exported to
//! an OpenTelemetry collector over OTLP/gRPC. The gateway's call already carries its span's
//! identity (W3C trace context) and its times, so a finished call is turned into span data
//! and handed to the SDK's batch processor: a bounded queue (spans beyond it are dropped,
//! never waited for) drained by the processor's own thread.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use octaneweb_gateway::metrics::{FinishedCall, SpanExporter};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor as _,
};
use opentelemetry_sdk::Resource;
use tonic::transport::ClientTlsConfig;
use tonic::Code;

/// How long one export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutting down waits for queued spans to be sent.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The span export; clones share one queue.
#[derive(Clone, Debug)]
pub struct OtlpSpans {
    processor: Arc<BatchSpanProcessor>,
    scope: InstrumentationScope,
}

impl OtlpSpans {
    /// Starts exporting to `endpoint` (e.g. `http://127.0.0.1:4317`; `https://` checks the
    /// collector's certificate against the system's roots). Must run inside the Tokio
    /// runtime: the exporter's connection lives on it.
    pub fn start(endpoint: &str) -> anyhow::Result<OtlpSpans> {
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT);
        if endpoint.starts_with("https://") {
            builder = builder.with_tls_config(ClientTlsConfig::new().with_enabled_roots());
        }
        let exporter = builder
            .build()
            .with_context(|| format!("--otlp-endpoint {endpoint}"))?;
        let mut processor = BatchSpanProcessor::builder(exporter).build();
        processor.set_resource(
            &Resource::builder()
                .with_service_name("octaneweb")
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        Ok(OtlpSpans {
            processor: Arc::new(processor),
            scope: InstrumentationScope::builder("octaneweb")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        })
    }

    /// Sends what is queued and stops the export.
    pub fn shutdown(&self) {
        if let Err(error) = self.processor.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(%error, "the last spans could not be exported");
        }
    }
}

impl SpanExporter for OtlpSpans {
    fn export(&self, call: &FinishedCall<'_>) {
        self.processor.on_end(span_data(call, &self.scope));
    }
}

/// A call's span as the semantic conventions for RPC name it: `package.Service/Method`,
/// with `rpc.system`, `rpc.service`, `rpc.method` and `rpc.grpc.status_code`.
fn span_data(call: &FinishedCall<'_>, scope: &InstrumentationScope) -> SpanData {
    let trace = call.trace;
    let flags = TraceFlags::new(trace.span.flags);
    let (service, method) = call.method.split_once('/').unwrap_or((call.method, ""));
    let mut attributes = vec![
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.grpc.status_code", call.code as i64),
        KeyValue::new("octaneweb.protocol", call.protocol.as_str()),
        KeyValue::new("octaneweb.call_id", call.call_id.to_owned()),
    ];
    if !method.is_empty() {
        attributes.push(KeyValue::new("rpc.service", service.to_owned()));
        attributes.push(KeyValue::new("rpc.method", method.to_owned()));
    }
    let status = match call.code {
        Code::Ok => Status::Unset,
        _ => Status::error(format!("{:?}: {}", call.code, call.message)),
    };
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace.span.trace_id),
            SpanId::from_bytes(trace.span.span_id),
            flags,
            false,
            trace
                .state
                .as_ref()
                .and_then(|state| state.to_str().ok())
                .and_then(|state| state.parse::<TraceState>().ok())
                .unwrap_or_default(),
        ),
        parent_span_id: trace
            .parent_span_id
            .map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: trace.parent_span_id.is_some(),
        span_kind: SpanKind::Server,
        name: Cow::Owned(call.method.to_owned()),
        start_time: call.started,
        end_time: call.ended,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}
