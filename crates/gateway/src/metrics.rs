//! Call metrics in the Prometheus text exposition format (`GET /metrics`) and the per-call
//! log line.
//!
//! Series are labelled by protocol, method (full name `package.Service/Method`, or
//! `unresolved` when the name did not resolve) and final gRPC code. The number of series is
//! bounded by [`MAX_SERIES`]; past it, new methods are counted under `method="other"`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tonic::Code;

use crate::error::code_name;
use crate::upstream::Upstream;

/// Most (protocol, method) series kept; beyond it calls count under `method="other"`.
pub const MAX_SERIES: usize = 4096;
/// Upper bounds (seconds) of the call-duration histogram buckets.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Number of gRPC codes (0..=16).
const CODES: usize = 17;

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
    /// The render frame hub's own upstream calls.
    FrameHub,
    /// The command line `call`.
    Cli,
}

impl Protocol {
    /// Every protocol, in label order.
    pub const ALL: [Protocol; 8] = [
        Protocol::Json,
        Protocol::Sse,
        Protocol::GrpcWeb,
        Protocol::Connect,
        Protocol::Grpc,
        Protocol::WebSocket,
        Protocol::FrameHub,
        Protocol::Cli,
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
            Protocol::FrameHub => "frame-hub",
            Protocol::Cli => "cli",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Default)]
struct Series {
    by_code: [u64; CODES],
    buckets: [u64; BUCKETS.len()],
    duration_sum: f64,
    count: u64,
}

#[derive(Default)]
struct PerProtocol {
    in_flight: AtomicI64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// The gateway's metrics registry; share it as `Arc<Metrics>`.
pub struct Metrics {
    series: Mutex<HashMap<(Protocol, Arc<str>), Series>>,
    protocols: [PerProtocol; Protocol::ALL.len()],
    /// Other components' metrics (e.g. the render frame hub), appended to every exposition.
    sources: Mutex<Vec<MetricsSource>>,
}

/// Renders a component's metrics as Prometheus text.
type MetricsSource = Arc<dyn Fn() -> String + Send + Sync>;

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
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            series: Mutex::new(HashMap::new()),
            protocols: Default::default(),
            sources: Mutex::new(Vec::new()),
        }
    }

    /// Appends another component's metrics (Prometheus text, with its own HELP and TYPE
    /// lines) to every `/metrics` answer. Meant for start-up wiring, not per request.
    pub fn add_source(&self, source: impl Fn() -> String + Send + Sync + 'static) {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(source));
    }

    /// Start tracking a call: counts it in flight until the returned tracker is finished or
    /// dropped (a dropped, unfinished call counts as `CANCELLED`: the client went away).
    pub fn start_call(
        self: &Arc<Self>,
        protocol: Protocol,
        method: Arc<str>,
        call_id: Arc<str>,
    ) -> CallTracker {
        self.protocols[protocol.index()]
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
        CallTracker {
            metrics: Arc::clone(self),
            protocol,
            method,
            call_id,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Count bytes received from browsers.
    pub fn add_bytes_in(&self, protocol: Protocol, bytes: u64) {
        self.protocols[protocol.index()]
            .bytes_in
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Count bytes sent to browsers.
    pub fn add_bytes_out(&self, protocol: Protocol, bytes: u64) {
        self.protocols[protocol.index()]
            .bytes_out
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Calls of `protocol` currently running.
    pub fn in_flight(&self, protocol: Protocol) -> i64 {
        self.protocols[protocol.index()]
            .in_flight
            .load(Ordering::Relaxed)
    }

    /// How many calls of this protocol and method ended with `code`.
    pub fn calls(&self, protocol: Protocol, method: &str, code: Code) -> u64 {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series
            .get(&(protocol, Arc::from(method)))
            .and_then(|s| s.by_code.get(code as usize).copied())
            .unwrap_or(0)
    }

    fn record(&self, protocol: Protocol, method: &Arc<str>, code: Code, seconds: f64) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let key = (protocol, Arc::clone(method));
        let entry = if series.contains_key(&key) || series.len() < MAX_SERIES {
            series.entry(key).or_default()
        } else {
            series.entry((protocol, Arc::from("other"))).or_default()
        };
        if let Some(slot) = entry.by_code.get_mut(code as usize) {
            *slot += 1;
        }
        for (bucket, bound) in entry.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        entry.duration_sum += seconds;
        entry.count += 1;
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self, upstream: &Upstream) -> String {
        let mut out = String::with_capacity(4096);
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<&(Protocol, Arc<str>)> = series.keys().collect();
        keys.sort_by(|a, b| (a.0.as_str(), &*a.1).cmp(&(b.0.as_str(), &*b.1)));

        out.push_str("# HELP octaneweb_calls_total Calls through the gateway by protocol, method and final gRPC code.\n");
        out.push_str("# TYPE octaneweb_calls_total counter\n");
        for key in &keys {
            let Some(s) = series.get(*key) else { continue };
            for (code, count) in s.by_code.iter().enumerate() {
                if *count > 0 {
                    let _ = writeln!(
                        out,
                        "octaneweb_calls_total{{protocol=\"{}\",method=\"{}\",code=\"{}\"}} {count}",
                        key.0.as_str(),
                        escape(&key.1),
                        code_name(Code::from(code as i32)),
                    );
                }
            }
        }

        out.push_str("# HELP octaneweb_call_duration_seconds Call duration from request to final status (streams included).\n");
        out.push_str("# TYPE octaneweb_call_duration_seconds histogram\n");
        for key in &keys {
            let Some(s) = series.get(*key) else { continue };
            let labels = format!(
                "protocol=\"{}\",method=\"{}\"",
                key.0.as_str(),
                escape(&key.1)
            );
            for (count, bound) in s.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "octaneweb_call_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "octaneweb_call_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "octaneweb_call_duration_seconds_sum{{{labels}}} {}",
                s.duration_sum
            );
            let _ = writeln!(
                out,
                "octaneweb_call_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        drop(series);

        let per_protocol = |out: &mut String,
                            name: &str,
                            help: &str,
                            kind: &str,
                            f: &dyn Fn(&PerProtocol) -> i64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for protocol in Protocol::ALL {
                let value = f(&self.protocols[protocol.index()]);
                let _ = writeln!(out, "{name}{{protocol=\"{}\"}} {value}", protocol.as_str());
            }
        };
        per_protocol(
            &mut out,
            "octaneweb_calls_in_flight",
            "Calls currently running.",
            "gauge",
            &|p| p.in_flight.load(Ordering::Relaxed),
        );
        per_protocol(
            &mut out,
            "octaneweb_received_bytes_total",
            "Bytes of request bodies and messages received from clients.",
            "counter",
            &|p| i64::try_from(p.bytes_in.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        );
        per_protocol(
            &mut out,
            "octaneweb_sent_bytes_total",
            "Bytes of response bodies and messages sent to clients.",
            "counter",
            &|p| i64::try_from(p.bytes_out.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        );

        out.push_str("# HELP octaneweb_upstream_connected Whether the last upstream call or probe reached the upstream.\n");
        out.push_str("# TYPE octaneweb_upstream_connected gauge\n");
        let _ = writeln!(
            out,
            "octaneweb_upstream_connected {}",
            u8::from(upstream.is_connected())
        );
        out.push_str("# HELP octaneweb_upstream_reconnects_total Times the upstream became reachable again after being unreachable.\n");
        out.push_str("# TYPE octaneweb_upstream_reconnects_total counter\n");
        let _ = writeln!(
            out,
            "octaneweb_upstream_reconnects_total {}",
            upstream.reconnects()
        );
        // Cloned out of the lock so a slow source never blocks add_source or another scrape.
        let sources: Vec<MetricsSource> = self
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for source in sources {
            let text = source();
            out.push_str(&text);
            if !text.is_empty() && !text.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }
}

/// Escape a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One call in progress: counted in flight until finished or dropped, then recorded and
/// logged once.
pub struct CallTracker {
    metrics: Arc<Metrics>,
    protocol: Protocol,
    method: Arc<str>,
    call_id: Arc<str>,
    started: Instant,
    finished: bool,
}

impl CallTracker {
    /// The call's id (the client's `X-Call-Id`, or one made up for it).
    pub fn call_id(&self) -> &str {
        &self.call_id
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
        self.metrics.protocols[self.protocol.index()]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .record(self.protocol, &self.method, code, elapsed.as_secs_f64());
        tracing::info!(
            target: "octaneweb::call",
            protocol = self.protocol.as_str(),
            method = &*self.method,
            status = code_name(code),
            ms = (ms * 1000.0).round() / 1000.0,
            call_id = &*self.call_id,
            message = message,
            "call"
        );
    }
}

impl Drop for CallTracker {
    fn drop(&mut self) {
        if !self.finished {
            self.complete(Code::Cancelled, "client went away");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamConfig;

    #[tokio::test]
    async fn renders_counts_histograms_and_gauges() {
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
        let text = metrics.render(&upstream);
        assert!(text.contains(
            "octaneweb_calls_total{protocol=\"json\",method=\"pkg.Svc/Do\",code=\"OK\"} 1"
        ));
        assert!(text.contains(
            "octaneweb_calls_total{protocol=\"sse\",method=\"pkg.Svc/Do\",code=\"CANCELLED\"} 1"
        ));
        assert!(text.contains(
            "octaneweb_call_duration_seconds_count{protocol=\"json\",method=\"pkg.Svc/Do\"} 1"
        ));
        assert!(text.contains("octaneweb_received_bytes_total{protocol=\"json\"} 42"));
        assert!(text.contains("octaneweb_calls_in_flight{protocol=\"json\"} 0"));
        assert!(text.contains("octaneweb_upstream_reconnects_total 0"));
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

    #[tokio::test]
    async fn added_sources_are_appended_to_every_exposition() {
        let metrics = Metrics::new();
        let scrapes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&scrapes);
        metrics.add_source(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            format!("# TYPE other_scrapes_total counter\nother_scrapes_total {n}")
        });
        let upstream = Upstream::new(UpstreamConfig::default()).unwrap();
        let first = metrics.render(&upstream);
        let second = metrics.render(&upstream);
        assert!(first.ends_with("other_scrapes_total 1\n"), "{first}");
        assert!(second.ends_with("other_scrapes_total 2\n"), "{second}");
        assert!(first.contains("octaneweb_upstream_reconnects_total 0"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
