//! What an operator gets from the real `octaneweb` binary: JSON log lines with unique keys,
//! no colour codes off a terminal, spans exported over OTLP, every metric of `/metrics`
//! documented in docs/operations.md, and the Grafana dashboard's queries answered by a real
//! Prometheus server scraping a live gateway.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_octaneweb");
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A process killed (and reaped) on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("octaneweb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// `octaneweb demo` on a free loopback port with `args` and `env`, its stderr written to
/// `stderr` (a file: not a terminal); returns the process and its address.
fn start_demo(args: &[&str], env: &[(&str, &str)], stderr: Option<&Path>) -> (Running, String) {
    let mut command = Command::new(BIN);
    command
        .args(["demo", "--listen", "127.0.0.1:0", "--no-open"])
        .args(["--width", "64", "--height", "32", "--max-spp", "16"])
        .args(args)
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdout(Stdio::piped());
    match stderr {
        Some(path) => command.stderr(std::fs::File::create(path).expect("log file")),
        None => command.stderr(Stdio::null()),
    };
    let mut child = command.spawn().expect("start octaneweb demo");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("demo printed its URL")
            .expect("read stdout");
        if let Some(rest) = line.split("open http://").nth(1) {
            break rest.split('/').next().expect("address").to_owned();
        }
    };
    // Keep reading stdout so the demo never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (running, addr)
}

/// One HTTP/1.1 exchange with extra header lines; returns (status, headers, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let answer = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let mut head_lines = head.lines();
    let status = head_lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = head_lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Waits up to `limit` for `check` to give a value, polling what it watches.
fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A JSON value parsed strictly: an object with a key twice is an error.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.insert(key.clone(), value).is_some() {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        Ok(Value::Object(object))
    }
}

/// The lines of a log file that hold `needle`, once there are `count` of them.
fn log_lines_with(log: &Path, needle: &str, count: usize) -> Vec<String> {
    wait_for(
        &format!("{count} log lines with {needle}"),
        Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(log).ok()?;
            let lines: Vec<String> = text
                .lines()
                .filter(|line| line.contains(needle))
                .map(str::to_owned)
                .collect();
            (lines.len() >= count).then_some(lines)
        },
    )
}

#[test]
fn json_logs_are_one_object_per_line_with_unique_keys() {
    let dir = scratch("json-logs");
    let log = dir.join("stderr.log");
    let (_demo, addr) = start_demo(
        &["--log-format", "json"],
        &[("RUST_LOG", "info,octaneweb::call=debug")],
        Some(&log),
    );
    let (status, ..) = http(
        &addr,
        "POST",
        "/LiveLink/GetCamera",
        &[("traceparent", TRACEPARENT), ("x-call-id", "logged-call")],
        "{}",
    );
    assert_eq!(status, 200);
    let (status, ..) = http(&addr, "POST", "/NoSuch/Method", &[], "{}");
    assert_eq!(status, 404);
    log_lines_with(&log, "\"call_id\"", 2);
    // A line of each component: the gateway, the render server, the frame hub's upstream
    // subscription (whose field once repeated the "target" key).
    log_lines_with(&log, "gateway listening", 1);
    log_lines_with(&log, "render server serving", 1);
    log_lines_with(&log, "render callback subscription open", 1);

    let text = std::fs::read_to_string(&log).expect("log");
    let mut calls = Vec::new();
    for line in text.lines() {
        let Strict(value) = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not one JSON object ({e}): {line}"));
        assert!(value["message"].is_string(), "the event's text: {line}");
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
        if value["message"] == "call" {
            calls.push(value);
        }
    }
    let ok = calls
        .iter()
        .find(|c| c["call_id"] == "logged-call")
        .expect("the traced call's line");
    assert_eq!(ok["method"], "livelinkapi.LiveLinkService/GetCamera");
    assert_eq!(ok["status"], "OK");
    assert_eq!(ok["protocol"], "json");
    assert_eq!(ok["trace_id"], TRACE_ID);
    let failed = calls
        .iter()
        .find(|c| c["status"] == "NOT_FOUND")
        .expect("the failed call's line");
    assert!(
        failed["status_message"]
            .as_str()
            .is_some_and(|m| m.contains("NoSuch")),
        "{failed}"
    );
    assert_eq!(failed["method"], "unresolved");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn text_logs_carry_no_colour_codes_off_a_terminal() {
    let dir = scratch("text-logs");
    let log = dir.join("stderr.log");
    let (_demo, addr) = start_demo(
        &[],
        &[("RUST_LOG", "info,octaneweb::call=debug")],
        Some(&log),
    );
    let (status, ..) = http(&addr, "POST", "/NoSuch/Method", &[], "{}");
    assert_eq!(status, 404);
    let lines = log_lines_with(&log, "call_id=", 1);
    assert!(lines[0].contains("NoSuch"), "{lines:?}");
    let bytes = std::fs::read(&log).expect("log");
    assert!(
        !bytes.windows(2).any(|w| w == b"\x1b["),
        "colour codes in a log file:\n{}",
        String::from_utf8_lossy(&bytes)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// What `octaneweb demo` writes to a terminal (a pseudo-terminal from util-linux's `script`)
/// up to its "gateway listening" line, with `NO_COLOR` set to `no_color` if given.
fn terminal_log(no_color: Option<&str>) -> Vec<u8> {
    // `timeout` ends the demo even if the terminal's hang-up did not.
    let inner = format!(
        "timeout 60 {BIN} demo --listen 127.0.0.1:0 --no-open --width 32 --height 16 --max-spp 4"
    );
    let mut command = Command::new("script");
    command
        .args(["-qec", &inner, "/dev/null"])
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(value) = no_color {
        command.env("NO_COLOR", value);
    }
    let mut terminal = Running(command.spawn().expect("util-linux script runs"));
    let mut output = terminal.0.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("gateway listening") {
        let read = output.read(&mut chunk).expect("read the terminal");
        assert!(
            read > 0,
            "the demo ended early:\n{}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&chunk[..read]);
    }
    seen
}

#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    let coloured = terminal_log(None);
    assert!(
        coloured.windows(2).any(|w| w == b"\x1b["),
        "a terminal gets colour:\n{}",
        String::from_utf8_lossy(&coloured)
    );
    let plain = terminal_log(Some("1"));
    assert!(
        !plain.windows(2).any(|w| w == b"\x1b["),
        "NO_COLOR=1 turns colour off:\n{}",
        String::from_utf8_lossy(&plain)
    );
}

/// Spans an OTLP/gRPC receiver on loopback got.
mod otlp_receiver {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::trace::v1::Span;

    /// A received span and the attributes of its resource (key, debug-printed value).
    pub type Exported = (Span, Vec<(String, String)>);

    #[derive(Clone, Default)]
    pub struct Received(pub Arc<Mutex<Vec<Exported>>>);

    #[tonic::async_trait]
    impl TraceService for Received {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let mut received = self.0.lock().unwrap_or_else(|p| p.into_inner());
            for resource_spans in request.into_inner().resource_spans {
                let resource: Vec<(String, String)> = resource_spans
                    .resource
                    .map(|r| r.attributes)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|kv| (kv.key, format!("{:?}", kv.value)))
                    .collect();
                for scope_spans in resource_spans.scope_spans {
                    for span in scope_spans.spans {
                        received.push((span, resource.clone()));
                    }
                }
            }
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    /// Serves on a free loopback port; returns its address.
    pub fn start(runtime: &tokio::runtime::Runtime, received: Received) -> std::net::SocketAddr {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(received))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
            );
            addr
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref());
    match value {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        other => panic!("attribute {key}: {other:?}"),
    }
}

#[test]
fn otlp_export_sends_one_span_per_call_in_the_callers_trace() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let received = otlp_receiver::Received::default();
    let collector = otlp_receiver::start(&runtime, received.clone());
    let endpoint = format!("http://{collector}");
    let (_demo, addr) = start_demo(&["--otlp-endpoint", &endpoint], &[], None);

    let (status, headers, body) = http(
        &addr,
        "POST",
        "/LiveLink/GetCamera",
        &[("traceparent", TRACEPARENT), ("x-call-id", "exported-call")],
        "{}",
    );
    assert_eq!(status, 200, "{body}");
    let echoed = header(&headers, "traceparent").expect("traceparent echoed");
    let gateway_span = echoed.split('-').nth(2).expect("span id").to_owned();

    let spans: Arc<Mutex<_>> = received.0.clone();
    let (span, resource) = wait_for("the call's span", Duration::from_secs(60), || {
        let spans = spans.lock().unwrap_or_else(|p| p.into_inner());
        spans
            .iter()
            .find(|(span, _)| hex(&span.trace_id) == TRACE_ID)
            .cloned()
    });
    assert_eq!(span.name, "livelinkapi.LiveLinkService/GetCamera");
    assert_eq!(hex(&span.span_id), gateway_span, "the echoed span");
    assert_eq!(hex(&span.parent_span_id), CALLER_SPAN, "the caller's span");
    for (key, value) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "livelinkapi.LiveLinkService"),
        ("rpc.method", "GetCamera"),
        ("rpc.grpc.status_code", "0"),
        ("octaneweb.protocol", "json"),
        ("octaneweb.call_id", "exported-call"),
    ] {
        assert_eq!(attribute(&span, key), value, "{key}");
    }
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    assert!(
        resource
            .iter()
            .any(|(k, v)| k == "service.name" && v.contains("octaneweb")),
        "{resource:?}"
    );

    // A call without a traceparent starts a sampled trace of its own while spans are exported.
    let (status, headers, _) = http(&addr, "POST", "/LiveLink/GetCamera", &[], "{}");
    assert_eq!(status, 200);
    let echoed = header(&headers, "traceparent").expect("traceparent");
    assert!(echoed.ends_with("-01"), "{echoed}");
    let new_trace = echoed.split('-').nth(1).expect("trace id").to_owned();
    wait_for("the new trace's span", Duration::from_secs(60), || {
        let spans = spans.lock().unwrap_or_else(|p| p.into_inner());
        spans
            .iter()
            .any(|(span, _)| hex(&span.trace_id) == new_trace && span.parent_span_id.is_empty())
            .then_some(())
    });
    drop(runtime);
}

#[test]
fn an_otlp_endpoint_that_is_not_an_http_url_is_refused_before_listening() {
    for bad in ["ftp://collector:4317", "not a url", "127.0.0.1:4317"] {
        let output = Command::new(BIN)
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--no-open",
                "--otlp-endpoint",
                bad,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run octaneweb");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("--otlp-endpoint") && stderr.contains("http://"),
            "{bad}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{bad}: nothing started");
    }
}

/// The path of a file of the repository.
fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// `name -> type` of every metric family in a Prometheus text exposition, as queried: a
/// counter by its `_total` series.
fn exposed_metrics(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| {
            let name = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            (name, kind.to_owned())
        })
        .collect()
}

/// `name -> type` of the metrics table of docs/operations.md (rows "| `name` | type | ...").
fn documented_metrics() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(repo_file("docs/operations.md")).expect("docs/operations.md");
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once("` |")?;
            let kind = rest.split('|').next()?.trim();
            matches!(kind, "counter" | "gauge" | "histogram")
                .then(|| (name.to_owned(), kind.to_owned()))
        })
        .collect()
}

#[test]
fn every_metric_of_metrics_is_documented_with_its_type() {
    let (_demo, addr) = start_demo(&[], &[], None);
    let (status, _, _) = http(&addr, "POST", "/LiveLink/GetCamera", &[], "{}");
    assert_eq!(status, 200);
    let (status, _, text) = http(&addr, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    let exposed = exposed_metrics(&text);
    assert!(exposed.len() > 20, "{text}");
    let documented = documented_metrics();
    let mut wrong = Vec::new();
    for (name, kind) in &exposed {
        match documented.get(name) {
            None => wrong.push(format!("{name} ({kind}) is not in docs/operations.md")),
            Some(doc_kind) if doc_kind != kind => {
                wrong.push(format!("{name} is a {kind}, the doc says {doc_kind}"))
            }
            Some(_) => {}
        }
    }
    for name in documented.keys() {
        if !exposed.contains_key(name) {
            wrong.push(format!(
                "docs/operations.md lists {name}, /metrics has no such metric"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Prometheus, or why it cannot run: a skip outside CI, a failure in CI.
fn prometheus_or_skip(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        let message = format!(
            "{test}: prometheus is not installed (bash scripts/install-ops-deps.sh installs it)"
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("skipped: {message}");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET /api/v1/query?query=...` on Prometheus; the `data` object of a successful answer.
fn prometheus_query(prometheus: &str, query: &str) -> Result<Value, String> {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, _, body) = http(
        prometheus,
        "GET",
        &format!("/api/v1/query?query={encoded}"),
        &[],
        "",
    );
    let answer: Value = serde_json::from_str(&body)
        .map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
    if answer["status"] != "success" {
        return Err(format!("HTTP {status}: {answer}"));
    }
    Ok(answer["data"].clone())
}

/// Every PromQL expression of the dashboard's panels.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_file("docs/grafana/octaneweb.json"))
        .expect("docs/grafana/octaneweb.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let title = panel["title"].as_str().unwrap_or("?").to_owned();
                queries.push((title, expr.to_owned()));
            }
        }
    }
    queries
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let Some(prometheus_bin) = prometheus_or_skip("the dashboard test") else {
        return;
    };
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");

    let dir = scratch("prometheus");
    let (_demo, addr) = start_demo(&[], &[], None);
    let port = free_port();
    let prometheus = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: octaneweb\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .expect("config");
    let _server = Running(
        Command::new(&prometheus_bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prometheus}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    wait_for("Prometheus to be ready", Duration::from_secs(60), || {
        TcpStream::connect(&prometheus).ok()?;
        (http(&prometheus, "GET", "/-/ready", &[], "").0 == 200).then_some(())
    });

    // Traffic of each kind the panels show: calls that succeed and fail, a WebSocket, a
    // render frame.
    for _ in 0..5 {
        assert_eq!(http(&addr, "POST", "/LiveLink/GetCamera", &[], "{}").0, 200);
        assert_eq!(http(&addr, "POST", "/NoSuch/Method", &[], "{}").0, 404);
    }
    wait_for("a render frame", Duration::from_secs(60), || {
        (http(&addr, "GET", "/render/frame.png", &[], "").0 == 200).then_some(())
    });
    // Two scrapes after the traffic, so rates have two samples to compare.
    let scrapes = |prometheus: &str| {
        prometheus_query(prometheus, "count_over_time(up{job=\"octaneweb\"}[10m])")
            .ok()
            .and_then(|data| data["result"][0]["value"][1].as_str()?.parse::<u32>().ok())
    };
    let before = wait_for("a first scrape", Duration::from_secs(60), || {
        scrapes(&prometheus)
    });
    for _ in 0..3 {
        assert_eq!(http(&addr, "POST", "/LiveLink/GetCamera", &[], "{}").0, 200);
        assert_eq!(http(&addr, "POST", "/NoSuch/Method", &[], "{}").0, 404);
    }
    wait_for("two more scrapes", Duration::from_secs(60), || {
        scrapes(&prometheus).filter(|n| *n >= before + 2)
    });
    let up = prometheus_query(&prometheus, "up{job=\"octaneweb\"}").expect("up");
    assert_eq!(
        up["result"][0]["value"][1], "1",
        "the scrape succeeds: {up}"
    );

    let mut failures = Vec::new();
    let mut seen = HashSet::new();
    for (title, expr) in &queries {
        assert!(seen.insert(expr.clone()), "{expr} twice");
        // Grafana's interval variables, as it would fill them in for a short range.
        let query = expr
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "5s")
            .replace("$__range", "10m");
        match prometheus_query(&prometheus, &query) {
            Ok(data) if data["result"].as_array().is_some_and(|r| !r.is_empty()) => {}
            Ok(data) => failures.push(format!("{title}: {expr}: no data ({data})")),
            Err(error) => failures.push(format!("{title}: {expr}: {error}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_alert_rules_pass_promtool() {
    let Some(prometheus_bin) = prometheus_or_skip("the alert rules test") else {
        return;
    };
    let promtool = prometheus_bin.with_file_name("promtool");
    let output = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(repo_file("docs/prometheus/octaneweb-alerts.yml"))
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", promtool.display()));
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
