//! The process's metrics (one `prometheus_client` registry, exposed as Prometheus text at
//! `GET /metrics`) and the per-call log line. Components with their own counters (the
//! listener, the WebSockets, the upstream pool, the render hub) add a [`Collector`] that reads
//! them at each scrape.
//!
//! Series are labelled by protocol, method (full name `package.Service/Method` of a method the
//! schema knows, or `unresolved` for any other path, on every protocol, so unknown paths cannot
//! add series) and final gRPC code. The number of series is bounded by [`MAX_SERIES`]; past
//! it, new methods are counted under `method="other"`.
//!
//! A finished call can also be handed to a [`SpanExporter`] (OTLP export, when configured).

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

pub use prometheus_client::collector::Collector;
pub use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::{
    prometheus_text, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tonic::Code;

use crate::upstream::Upstream;
use crate::wire::codes::code_name;
use crate::wire::trace_context::CallTrace;

/// Most (protocol, method) series kept; beyond it calls count under `method="other"`.
pub const MAX_SERIES: usize = 4096;
/// Upper bounds (seconds) of the call-duration histogram buckets.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A browser-facing protocol, the `protocol` label of every metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `POST /{Service}/{method}` JSON (and its NDJSON form for server streams).
    Json,
    /// `GET /sse/{Service}/{method}` Server-Sent Events.
    Sse,
    /// gRPC-Web.
    GrpcWeb,
    /// Connect.
    Connect,
    /// gRPC pass-through.
    Grpc,
    /// The multiplexed WebSocket.
    WebSocket,
    /// octaneWebR's server's routes (`POST /api/grpc/...` and the calls behind its other
    /// `/api/` routes).
    OctaneWebR,
}

impl Protocol {
    /// Every protocol, in label order.
    pub const ALL: [Protocol; 7] = [
        Protocol::Json,
        Protocol::Sse,
        Protocol::GrpcWeb,
        Protocol::Connect,
        Protocol::Grpc,
        Protocol::WebSocket,
        Protocol::OctaneWebR,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Json => "json",
            Protocol::Sse => "sse",
            Protocol::GrpcWeb => "grpc-web",
            Protocol::Connect => "connect",
            Protocol::Grpc => "grpc",
            Protocol::WebSocket => "websocket",
            Protocol::OctaneWebR => "octanewebr",
        }
    }
}

/// `protocol` and `method` labels of a call's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    protocol: &'static str,
    method: MethodName,
}

/// One protocol's in-flight gauge and byte counters.
struct ProtocolSeries {
    in_flight: Gauge,
    bytes_in: Counter,
    bytes_out: Counter,
}

/// `protocol`, `method` and `code` labels of a finished call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    protocol: &'static str,
    method: MethodName,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

/// A method label shared with the method cache: recording a call clones a reference count,
/// never the text.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct MethodName(Arc<str>);

impl EncodeLabelValue for MethodName {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(&self.0)
    }
}

/// One finished call, as a [`SpanExporter`] sees it.
#[derive(Debug)]
pub struct FinishedCall<'a> {
    /// The protocol it came in by.
    pub protocol: Protocol,
    /// Its method label (`package.Service/Method`, or `unresolved`).
    pub method: &'a str,
    /// The call's id.
    pub call_id: &'a str,
    /// Its final gRPC code and message.
    pub code: Code,
    /// The status message (empty for `OK`).
    pub message: &'a str,
    /// The gateway's span of the call.
    pub trace: &'a CallTrace,
    /// When it started and ended, by the wall clock.
    pub started: SystemTime,
    /// When it ended.
    pub ended: SystemTime,
}

/// Receives every finished call that has a sampled trace, to export it as a span. Called on
/// the call's task: an implementation must only queue the span, never wait.
pub trait SpanExporter: Send + Sync + 'static {
    /// Queue one call's span.
    fn export(&self, call: &FinishedCall<'_>);
}

fn duration_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The gateway's metrics: one [`prometheus_client`] registry for every component of the
/// process (calls, connections, WebSockets, the upstream, the render hub, the process itself);
/// share it as `Arc<Metrics>`.
pub struct Metrics {
    registry: Mutex<Registry>,
    calls: Family<CodeLabels, Counter>,
    durations: Family<MethodLabels, Histogram, fn() -> Histogram>,
    /// Each protocol's series of the per-protocol families, looked up once: updating them
    /// on every call is then an atomic add, no lock and no hashing.
    per_protocol: [ProtocolSeries; Protocol::ALL.len()],
    /// (protocol, method) series seen, to bound them.
    series: Mutex<HashSet<(Protocol, Arc<str>)>>,
    /// Where finished calls' spans go, if anywhere (set once at start-up).
    spans: OnceLock<Box<dyn SpanExporter>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with the call metrics, the process metrics and the build's version.
    pub fn new() -> Self {
        let calls = Family::<CodeLabels, Counter>::default();
        let durations = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let in_flight = Family::<ProtocolLabels, Gauge>::default();
        let bytes_in = Family::<ProtocolLabels, Counter>::default();
        let bytes_out = Family::<ProtocolLabels, Counter>::default();
        // Every protocol's series exist from the start, at zero.
        let per_protocol = Protocol::ALL.map(|protocol| {
            let labels = ProtocolLabels {
                protocol: protocol.as_str(),
            };
            ProtocolSeries {
                in_flight: in_flight.get_or_create_owned(&labels),
                bytes_in: bytes_in.get_or_create_owned(&labels),
                bytes_out: bytes_out.get_or_create_owned(&labels),
            }
        });
        let mut registry = Registry::default();
        // (`register` ends each help text with a full stop itself.)
        registry.register(
            "octaneweb_calls",
            "Calls through the gateway by protocol, method and final gRPC code",
            calls.clone(),
        );
        registry.register(
            "octaneweb_call_duration_seconds",
            "Call duration from request to final status (streams included)",
            durations.clone(),
        );
        registry.register(
            "octaneweb_calls_in_flight",
            "Calls currently running",
            in_flight.clone(),
        );
        registry.register(
            "octaneweb_received_bytes",
            "Bytes of request bodies and messages received from clients",
            bytes_in.clone(),
        );
        registry.register(
            "octaneweb_sent_bytes",
            "Bytes of response bodies and messages sent to clients",
            bytes_out.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry: Mutex::new(registry),
            calls,
            durations,
            per_protocol,
            series: Mutex::new(HashSet::new()),
            spans: OnceLock::new(),
        }
    }

    /// Sends every finished call with a sampled trace to `exporter` from now on. Meant for
    /// start-up wiring; `false` if an exporter was set already (the first one stays).
    pub fn export_spans(&self, exporter: impl SpanExporter) -> bool {
        self.spans.set(Box::new(exporter)).is_ok()
    }

    /// Whether finished calls are exported as spans (then new traces are sampled).
    pub fn exports_spans(&self) -> bool {
        self.spans.get().is_some()
    }

    /// Adds another component's metrics (read at every scrape) to the registry. Meant for
    /// start-up wiring, not per request.
    pub fn add_collector(&self, collector: impl Collector) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register_collector(Box::new(collector));
    }

    /// Start tracking a call: counts it in flight until the returned tracker is finished or
    /// dropped (a dropped, unfinished call counts as `CANCELLED`: the client went away).
    pub fn start_call(
        self: &Arc<Self>,
        protocol: Protocol,
        method: Arc<str>,
        call_id: Arc<str>,
    ) -> CallTracker {
        self.in_flight_gauge(protocol).inc();
        CallTracker {
            metrics: Arc::clone(self),
            protocol,
            method,
            call_id,
            trace: None,
            started: Instant::now(),
            finished: false,
        }
    }

    fn series(&self, protocol: Protocol) -> &ProtocolSeries {
        &self.per_protocol[protocol as usize]
    }

    fn in_flight_gauge(&self, protocol: Protocol) -> &Gauge {
        &self.series(protocol).in_flight
    }

    /// Count bytes received from browsers.
    pub fn add_bytes_in(&self, protocol: Protocol, bytes: u64) {
        self.series(protocol).bytes_in.inc_by(bytes);
    }

    /// Count bytes sent to browsers.
    pub fn add_bytes_out(&self, protocol: Protocol, bytes: u64) {
        self.series(protocol).bytes_out.inc_by(bytes);
    }

    /// Calls of `protocol` currently running.
    pub fn in_flight(&self, protocol: Protocol) -> i64 {
        self.in_flight_gauge(protocol).get()
    }

    /// How many calls of this protocol and method ended with `code`.
    pub fn calls(&self, protocol: Protocol, method: &str, code: Code) -> u64 {
        self.calls
            .get_or_create(&CodeLabels {
                protocol: protocol.as_str(),
                method: MethodName(Arc::from(method)),
                code: code_name(code),
            })
            .get()
    }

    fn record(&self, protocol: Protocol, method: &Arc<str>, code: Code, seconds: f64) {
        let method = {
            let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
            let key = (protocol, Arc::clone(method));
            if series.contains(&key) || series.len() < MAX_SERIES {
                series.insert(key);
                Arc::clone(method)
            } else {
                Arc::from("other")
            }
        };
        let method = MethodName(method);
        self.calls
            .get_or_create(&CodeLabels {
                protocol: protocol.as_str(),
                method: method.clone(),
                code: code_name(code),
            })
            .inc();
        self.durations
            .get_or_create(&MethodLabels {
                protocol: protocol.as_str(),
                method,
            })
            .observe(seconds);
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = prometheus_text::encode(&mut out, &registry) {
            tracing::warn!(%error, "encoding the metrics failed");
        }
        out
    }
}

/// Writes the values of a component's metrics at a scrape: a thin layer over
/// [`DescriptorEncoder`] for the plain counters and gauges components keep as atomics.
pub struct Scrape<'a> {
    encoder: DescriptorEncoder<'a>,
}

impl<'a> Scrape<'a> {
    /// Wraps a collector's encoder.
    pub fn new(encoder: DescriptorEncoder<'a>) -> Self {
        Self { encoder }
    }

    /// A counter (`name` without `_total`: the exposition adds it), of whole (`u64`) or
    /// fractional (`f64`, seconds) values.
    pub fn counter<N>(&mut self, name: &str, help: &str, value: N) -> std::fmt::Result
    where
        ConstCounter<N>: EncodeMetric,
    {
        let metric = ConstCounter::new(value);
        let encoder = self
            .encoder
            .encode_descriptor(name, help, None, metric.metric_type())?;
        metric.encode(encoder)
    }

    /// A gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: i64) -> std::fmt::Result {
        let metric = ConstGauge::new(value);
        let encoder = self
            .encoder
            .encode_descriptor(name, help, None, metric.metric_type())?;
        metric.encode(encoder)
    }

    /// A counter with one label, one series per `(label value, count)`.
    pub fn counters_by<N: Copy>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: &[(&str, N)],
    ) -> std::fmt::Result
    where
        ConstCounter<N>: EncodeMetric,
    {
        let mut encoder = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (value, count) in values {
            let labels = [(label, *value)];
            ConstCounter::new(*count).encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// A histogram from cumulative `(upper bound, count)` buckets (`+Inf` excluded).
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        sum: f64,
        count: u64,
        buckets: &[(f64, u64)],
    ) -> std::fmt::Result {
        let mut encoder =
            self.encoder
                .encode_descriptor(name, help, None, MetricType::Histogram)?;
        // The encoder expects per-bucket counts with the last bucket +Inf.
        let mut per_bucket = Vec::with_capacity(buckets.len() + 1);
        let mut previous = 0;
        for (bound, cumulative) in buckets {
            per_bucket.push((*bound, cumulative.saturating_sub(previous)));
            previous = *cumulative;
        }
        per_bucket.push((f64::INFINITY, count.saturating_sub(previous)));
        encoder.encode_histogram::<NoLabelSet>(sum, count, &per_bucket, None)
    }
}

/// The process's CPU time, memory, threads and file descriptors (as every Prometheus client
/// names them), and the build's version as `octaneweb_build_info`.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let process = metrics_process::collector::collect();
        let mut scrape = Scrape::new(encoder);
        if let Some(seconds) = process.cpu_seconds_total {
            scrape.counter(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                seconds,
            )?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                process.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                process.virtual_memory_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                process.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                process.max_fds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process.",
                process.threads,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
                process.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                scrape.gauge(name, help, i64::try_from(value).unwrap_or(i64::MAX))?;
            }
        }
        let info = ConstGauge::new(1_i64);
        let mut encoder = scrape.encoder.encode_descriptor(
            "octaneweb_build_info",
            "The running build: version of the octaneweb crates; always 1.",
            None,
            MetricType::Gauge,
        )?;
        let labels = [("version", env!("CARGO_PKG_VERSION"))];
        info.encode(encoder.encode_family(&labels)?)
    }
}

/// The upstream's reachability, connection pool and answers, read at every scrape.
#[derive(Debug)]
pub struct UpstreamCollector(pub Upstream);

impl Collector for UpstreamCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let upstream = &self.0;
        let pool = upstream.pool_stats();
        let calls = upstream.call_stats();
        let mut scrape = Scrape::new(encoder);
        scrape.gauge(
            "octaneweb_upstream_connected",
            "Whether the last upstream call or probe reached the upstream.",
            i64::from(upstream.is_connected()),
        )?;
        scrape.counter(
            "octaneweb_upstream_reconnects",
            "Times the upstream became reachable again after being unreachable.",
            upstream.reconnects(),
        )?;
        scrape.gauge(
            "octaneweb_upstream_connections",
            "HTTP/2 connections open to the upstream for API calls.",
            i64::try_from(pool.connections).unwrap_or(i64::MAX),
        )?;
        scrape.counter(
            "octaneweb_upstream_connections_opened",
            "HTTP/2 connections to the upstream opened for API calls.",
            pool.opened,
        )?;
        scrape.gauge(
            "octaneweb_upstream_streams",
            "Upstream streams (calls) in flight.",
            i64::try_from(pool.streams).unwrap_or(i64::MAX),
        )?;
        scrape.gauge(
            "octaneweb_upstream_waiting",
            "Calls waiting for an upstream stream because every connection is full.",
            i64::try_from(pool.waiting).unwrap_or(i64::MAX),
        )?;
        scrape.histogram(
            "octaneweb_upstream_answer_seconds",
            "Time from a call entering the upstream stack to the upstream's response headers \
             (including any wait for a free stream).",
            calls.answer_seconds,
            calls.answers,
            &calls.answer_buckets,
        )?;
        scrape.counters_by(
            "octaneweb_upstream_failures",
            "Upstream calls that got no answer, by gRPC code.",
            "code",
            &calls.failures,
        )
    }
}

/// One call in progress: counted in flight until finished or dropped, then recorded and
/// logged once.
pub struct CallTracker {
    metrics: Arc<Metrics>,
    protocol: Protocol,
    method: Arc<str>,
    call_id: Arc<str>,
    trace: Option<CallTrace>,
    started: Instant,
    finished: bool,
}

impl CallTracker {
    /// The protocol the call came in by.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The call's id (the client's `X-Call-Id`, or one made up for it).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The gateway's span of the call, for its log line and its exported span.
    pub fn set_trace(&mut self, trace: CallTrace) {
        self.trace = Some(trace);
    }

    /// The gateway's span of the call, if it has one.
    pub fn trace(&self) -> Option<&CallTrace> {
        self.trace.as_ref()
    }

    /// Set the method label once the method name has been resolved.
    pub fn set_method(&mut self, method: Arc<str>) {
        self.method = method;
    }

    /// Record the call's final gRPC code (and a message for the log line).
    pub fn finish(mut self, code: Code, message: &str) {
        self.complete(code, message);
    }

    fn complete(&mut self, code: Code, message: &str) {
        if self.finished {
            return;
        }
        self.finished = true;
        let elapsed = self.started.elapsed();
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.metrics.in_flight_gauge(self.protocol).dec();
        self.metrics
            .record(self.protocol, &self.method, code, elapsed.as_secs_f64());
        // One line per call: at debug level for calls that succeeded (an artist's session
        // makes hundreds, and formatting the line cost a busy gateway about 7 µs per call),
        // at info for the ones that did not. Fields as display values: the Debug form would
        // quote and escape every string. The status message is `status_message`: `message` is
        // the event's own text, and JSON logs must not carry one key twice.
        macro_rules! call_line {
            ($level:expr) => {
                tracing::event!(
                    target: "octaneweb::call",
                    $level,
                    protocol = %self.protocol.as_str(),
                    method = %&*self.method,
                    status = %code_name(code),
                    ms = (ms * 1000.0).round() / 1000.0,
                    call_id = %&*self.call_id,
                    trace_id = %self.trace.as_ref().map(|t| t.span.trace_id_hex()).unwrap_or_default(),
                    status_message = %message,
                    "call"
                )
            };
        }
        if code == Code::Ok {
            call_line!(tracing::Level::DEBUG);
        } else {
            call_line!(tracing::Level::INFO);
        }
        if let (Some(exporter), Some(trace)) = (self.metrics.spans.get(), &self.trace) {
            if trace.span.sampled() {
                let ended = SystemTime::now();
                exporter.export(&FinishedCall {
                    protocol: self.protocol,
                    method: &self.method,
                    call_id: &self.call_id,
                    code,
                    message,
                    trace,
                    started: ended.checked_sub(elapsed).unwrap_or(ended),
                    ended,
                });
            }
        }
    }
}

impl Drop for CallTracker {
    fn drop(&mut self) {
        if !self.finished {
            self.complete(Code::Cancelled, "client went away");
        }
    }
}

/// Counters of the listening side, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub(crate) open: AtomicUsize,
    pub(crate) accepted: AtomicU64,
    pub(crate) refused_total: AtomicU64,
    pub(crate) refused_per_address: AtomicU64,
    first_byte_timeouts: AtomicU64,
    tls_failures: AtomicU64,
    idle_closed: AtomicU64,
    send_stalls: AtomicU64,
}

impl ConnectionStats {
    pub(crate) fn count_send_stall(&self) {
        self.send_stalls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_first_byte_timeout(&self) {
        self.first_byte_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_tls_failure(&self) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_idle_close(&self) {
        self.idle_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections closed because the client stopped reading.
    pub fn send_stalls(&self) -> u64 {
        self.send_stalls.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Collector for ConnectionStats {
    fn encode(&self, encoder: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut scrape = Scrape::new(encoder);
        scrape.gauge(
            "octaneweb_connections_open",
            "Client connections open now.",
            i64::try_from(self.open()).unwrap_or(i64::MAX),
        )?;
        scrape.counter(
            "octaneweb_connections_accepted",
            "Client connections accepted.",
            load(&self.accepted),
        )?;
        scrape.counters_by(
            "octaneweb_connections_refused",
            "Connections closed at once because a cap was reached.",
            "cap",
            &[
                ("global", load(&self.refused_total)),
                ("per_address", load(&self.refused_per_address)),
            ],
        )?;
        scrape.counters_by(
            "octaneweb_connections_closed",
            "Connections the gateway closed, by reason.",
            "reason",
            &[
                ("no_first_byte", load(&self.first_byte_timeouts)),
                ("tls_handshake", load(&self.tls_failures)),
                ("idle", load(&self.idle_closed)),
                ("send_stall", load(&self.send_stalls)),
            ],
        )
    }
}

/// Gauges of the gateway's WebSockets, shown in `/metrics`.
#[derive(Debug, Default)]
pub struct WsStats {
    pub(crate) sockets: AtomicI64,
    pub(crate) calls: AtomicI64,
    pub(crate) outbound_bytes: AtomicI64,
    pub(crate) inbound_bytes: AtomicI64,
}

impl WsStats {
    /// Sockets open now.
    pub fn open_sockets(&self) -> i64 {
        self.sockets.load(Ordering::Relaxed)
    }

    /// Calls running now, over all sockets.
    pub fn open_calls(&self) -> i64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Bytes of frames queued for clients and not yet written to their sockets.
    pub fn outbound_bytes(&self) -> i64 {
        self.outbound_bytes.load(Ordering::Relaxed)
    }

    /// Bytes of request messages queued for upstream calls and not yet taken.
    pub fn inbound_bytes(&self) -> i64 {
        self.inbound_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicI64, delta: i64) {
        counter.fetch_add(delta, Ordering::Relaxed);
    }
}

impl Collector for WsStats {
    fn encode(&self, encoder: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        let mut scrape = Scrape::new(encoder);
        scrape.gauge(
            "octaneweb_ws_sockets",
            "WebSockets open on /ws.",
            self.open_sockets(),
        )?;
        scrape.gauge(
            "octaneweb_ws_calls",
            "Calls running over /ws.",
            self.open_calls(),
        )?;
        scrape.gauge(
            "octaneweb_ws_outbound_queued_bytes",
            "Bytes of /ws frames queued for clients.",
            self.outbound_bytes(),
        )?;
        scrape.gauge(
            "octaneweb_ws_inbound_queued_bytes",
            "Bytes of /ws request messages queued for the upstream.",
            self.inbound_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamConfig;

    #[tokio::test]
    async fn renders_counts_histograms_gauges_and_the_process() {
        let metrics = Arc::new(Metrics::new());
        let method: Arc<str> = Arc::from("pkg.Svc/Do");
        let tracker = metrics.start_call(Protocol::Json, Arc::clone(&method), Arc::from("id"));
        assert_eq!(metrics.in_flight(Protocol::Json), 1);
        tracker.finish(Code::Ok, "");
        drop(metrics.start_call(Protocol::Sse, Arc::clone(&method), Arc::from("id2")));
        assert_eq!(metrics.in_flight(Protocol::Json), 0);
        assert_eq!(
            metrics.calls(Protocol::Sse, "pkg.Svc/Do", Code::Cancelled),
            1
        );
        metrics.add_bytes_in(Protocol::Json, 42);
        let upstream = Upstream::new(UpstreamConfig::default()).unwrap();
        metrics.add_collector(UpstreamCollector(upstream));

        let text = metrics.render();
        for line in [
            "octaneweb_calls_total{protocol=\"json\",method=\"pkg.Svc/Do\",code=\"OK\"} 1",
            "octaneweb_calls_total{protocol=\"sse\",method=\"pkg.Svc/Do\",code=\"CANCELLED\"} 1",
            "octaneweb_call_duration_seconds_count{protocol=\"json\",method=\"pkg.Svc/Do\"} 1",
            "octaneweb_received_bytes_total{protocol=\"json\"} 42",
            "octaneweb_calls_in_flight{protocol=\"json\"} 0",
            "octaneweb_upstream_reconnects_total 0",
            "octaneweb_upstream_connections 0",
            "# TYPE process_cpu_seconds_total counter",
            "# TYPE process_resident_memory_bytes gauge",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.contains(&format!(
            "octaneweb_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn series_are_bounded() {
        let metrics = Arc::new(Metrics::new());
        for i in 0..MAX_SERIES + 10 {
            metrics
                .start_call(Protocol::Json, Arc::from(format!("m{i}")), Arc::from(""))
                .finish(Code::Ok, "");
        }
        assert_eq!(metrics.calls(Protocol::Json, "other", Code::Ok), 10);
    }

    #[derive(Debug, Default)]
    struct Scrapes(std::sync::atomic::AtomicU64);

    impl Collector for Scrapes {
        fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let mut scrape = Scrape::new(encoder);
            scrape.counter("other_scrapes", "Scrapes seen.", n)?;
            scrape.counters_by("other_by", "By kind.", "kind", &[("a\"b", 2_u64)])?;
            scrape.histogram("other_seconds", "Latency.", 1.5, 3, &[(0.1, 1), (1.0, 2)])
        }
    }

    #[test]
    fn added_collectors_are_read_at_every_scrape() {
        let metrics = Metrics::new();
        metrics.add_collector(Scrapes::default());
        let first = metrics.render();
        let second = metrics.render();
        assert!(first.contains("other_scrapes_total 1\n"), "{first}");
        assert!(second.contains("other_scrapes_total 2\n"), "{second}");
        // Label values are escaped; histogram buckets are cumulative.
        assert!(
            first.contains("other_by_total{kind=\"a\\\"b\"} 2"),
            "{first}"
        );
        assert!(
            first.contains("other_seconds_bucket{le=\"1\"} 2"),
            "{first}"
        );
        assert!(
            first.contains("other_seconds_bucket{le=\"+Inf\"} 3"),
            "{first}"
        );
        assert!(first.contains("other_seconds_sum 1.5"), "{first}");
    }
}
