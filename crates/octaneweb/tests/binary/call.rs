//! `octaneweb call` as a process against real gRPC servers on loopback: the example telemetry
//! service (every RPC kind, reflection), and small tonic servers that record the metadata
//! they receive, attach `google.rpc` error details, or require a client certificate.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use octaneweb_example_telemetry::{TelemetryConfig, TelemetryServer, MAX_TOTAL_STEPS};
use tonic::metadata::MetadataMap;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use super::BIN;

/// One runtime for every server of this file, on threads of its own, alive for the whole
/// test binary.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime")
    })
}

fn bind() -> tokio::net::TcpListener {
    runtime()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind a loopback port")
}

/// The example telemetry server (reflection on), training fast enough that a stream of
/// metrics never waits long, for longer than any test runs.
fn telemetry() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let listener = bind();
        let addr = listener.local_addr().expect("address");
        let server = TelemetryServer::new(TelemetryConfig {
            steps_per_second: 100.0,
            total_steps: MAX_TOTAL_STEPS,
            ..TelemetryConfig::default()
        })
        .expect("telemetry server");
        runtime().spawn(server.serve(listener, std::future::pending()));
        addr
    })
}

/// A `grpc.health.v1` server with reflection that records every request's metadata, and
/// fails a request carrying `x-fail` with FAILED_PRECONDITION and an ErrorInfo detail.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<MetadataMap>>>,
    /// The metadata of reflection requests.
    reflected: Arc<Mutex<Vec<MetadataMap>>>,
}

impl Recorder {
    fn start(tls: Option<ServerTlsConfig>) -> Recorder {
        let seen: Arc<Mutex<Vec<MetadataMap>>> = Arc::default();
        let record = Arc::clone(&seen);
        let interceptor = move |request: tonic::Request<()>| {
            let metadata = request.metadata().clone();
            let fail = metadata.contains_key("x-fail");
            record
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(metadata);
            if fail {
                return Err(Status::with_error_details(
                    Code::FailedPrecondition,
                    "told to fail",
                    ErrorDetails::with_error_info("TOLD_TO", "octaneweb.test", HashMap::new()),
                ));
            }
            Ok(request)
        };
        let (_, health) = tonic_health::server::health_reporter();
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("reflection service");
        let reflected: Arc<Mutex<Vec<MetadataMap>>> = Arc::default();
        let record_reflection = Arc::clone(&reflected);
        let reflection = tonic::service::interceptor::InterceptedService::new(
            reflection,
            move |request: tonic::Request<()>| {
                record_reflection
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(request.metadata().clone());
                Ok(request)
            },
        );
        let listener = bind();
        let addr = listener.local_addr().expect("address");
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).expect("server TLS");
        }
        let router = builder
            .add_service(tonic::service::interceptor::InterceptedService::new(
                health,
                interceptor,
            ))
            .add_service(reflection);
        runtime().spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
        Recorder {
            addr,
            seen,
            reflected,
        }
    }

    /// The metadata of the request that carried `x-test: test`.
    fn request_of(&self, test: &str) -> MetadataMap {
        Self::find(&self.seen, test)
            .unwrap_or_else(|| panic!("no request with x-test: {test} reached the server"))
    }

    /// The metadata of the reflection request that carried `x-test: test`.
    fn reflection_request_of(&self, test: &str) -> Option<MetadataMap> {
        Self::find(&self.reflected, test)
    }

    fn find(requests: &Mutex<Vec<MetadataMap>>, test: &str) -> Option<MetadataMap> {
        let requests = requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests
            .iter()
            .find(|m| m.get("x-test").and_then(|v| v.to_str().ok()) == Some(test))
            .cloned()
    }
}

fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| Recorder::start(None))
}

/// `octaneweb call ARGS`, with `stdin` as its standard input.
fn call(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .arg("call")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start octaneweb call");
    if let Some(text) = stdin {
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("octaneweb call finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every JSON value printed, whatever the layout.
fn values(stdout: &[u8]) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_slice(stdout)
        .into_iter::<serde_json::Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("JSON output ({e}):\n{}", text(stdout)))
}

#[test]
fn headers_reach_the_server_and_verbose_shows_the_exchange_without_secrets() {
    let server = recorder();
    let upstream = server.addr.to_string();
    let output = call(
        &[
            "grpc.health.v1.Health/Check",
            "--reflect",
            "--upstream",
            &upstream,
            "-H",
            "x-test: headers",
            "--header",
            "X-Tenant:  blue team",
            "-H",
            "x-trace-bin: AAECAw",
            "-H",
            "authorization: Bearer very-secret-token-4711",
            "-v",
        ],
        None,
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        values(&output.stdout),
        [serde_json::json!({"status": "SERVING"})]
    );

    let seen = server.request_of("headers");
    assert_eq!(
        seen.get("x-tenant").map(|v| v.to_str().ok()),
        Some(Some("blue team"))
    );
    let binary = seen.get_bin("x-trace-bin").expect("binary header");
    assert_eq!(binary.to_bytes().expect("base64").as_ref(), [0, 1, 2, 3]);
    assert_eq!(
        seen.get("authorization").map(|v| v.to_str().ok()),
        Some(Some("Bearer very-secret-token-4711"))
    );
    // --reflect asked for the schema with the same metadata.
    let reflected = server
        .reflection_request_of("headers")
        .expect("the reflection request carried the headers");
    assert!(reflected.get("authorization").is_some());

    for line in [
        "Method: /grpc.health.v1.Health/Check (unary: grpc.health.v1.HealthCheckRequest",
        "Request metadata:",
        "  x-tenant: blue team",
        "  authorization: <redacted",
        "Connected to",
        "Response headers:",
        "  content-type: application/grpc",
        "Response message 1",
        "Response trailers",
        "Status: OK (0)",
        "Timing: connect ",
    ] {
        assert!(stderr.contains(line), "{line:?} missing from:\n{stderr}");
    }
    assert!(
        !stderr.contains("very-secret-token"),
        "a credential was shown:\n{stderr}"
    );
    assert!(
        !stdout.contains("Status"),
        "verbose output went to stdout:\n{stdout}"
    );
}

#[test]
fn verbose_decodes_the_status_details() {
    let server = recorder();
    let output = call(
        &[
            "grpc.health.v1.Health/Check",
            "--reflect",
            "--upstream",
            &server.addr.to_string(),
            "-H",
            "x-test: details",
            "-H",
            "x-fail: yes",
            "-v",
        ],
        None,
    );
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(9),
        "FAILED_PRECONDITION:\n{stderr}"
    );
    assert!(output.stdout.is_empty());
    for line in [
        "Status: FAILED_PRECONDITION (9): told to fail",
        "Status details:",
        "\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\"",
        "\"reason\":\"TOLD_TO\"",
        "\"domain\":\"octaneweb.test\"",
        "Timing:",
        "octaneweb call: FAILED_PRECONDITION: ",
    ] {
        assert!(stderr.contains(line), "{line:?} missing from:\n{stderr}");
    }
}

#[test]
fn reserved_and_malformed_headers_are_refused_by_name() {
    for (header, named) in [
        ("grpc-timeout: 1S", "grpc-timeout"),
        (":authority: evil.example", ":authority"),
        ("connection: close", "connection"),
        ("x-note: caf\u{e9}", "x-note"),
        ("x-id-bin: ***", "x-id-bin"),
        ("no separator", "no separator"),
    ] {
        let output = call(&["LiveLink/GetCamera", "-H", header], None);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{header}: {stderr}");
        assert!(stderr.contains(named), "{header}: {stderr}");
    }
}

#[test]
fn data_comes_from_the_command_line_a_file_or_standard_input() {
    let upstream = telemetry().to_string();
    let base = ["--reflect", "--upstream", &upstream];
    let accepted = |output: &Output| -> u64 {
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let printed = values(&output.stdout);
        assert_eq!(printed.len(), 1, "{printed:?}");
        printed[0]["accepted"].as_u64().expect("accepted")
    };

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("notes.json");
    std::fs::write(
        &file,
        "{\"text\": \"warm-up done\"}\n{\"text\": \"lowered the rate\"}\n",
    )
    .expect("write notes");
    let from_file = format!("@{}", file.display());
    let mut args = vec!["TrainingService/RecordNotes", "-d", &from_file];
    args.extend(base);
    assert_eq!(accepted(&call(&args, None)), 2);

    let mut args = vec!["TrainingService/RecordNotes", "--data", "@-"];
    args.extend(base);
    let concatenated = r#"{"text":"a"}{"text":"b"}{"text":"c"}"#;
    assert_eq!(accepted(&call(&args, Some(concatenated))), 3);

    // The positional request still works, `-` reading standard input as before.
    let mut args = vec!["TrainingService/RecordNotes", r#"[{"text":"x"}]"#];
    args.extend(base);
    assert_eq!(accepted(&call(&args, None)), 1);
    let mut args = vec!["TrainingService/RecordNotes", "-"];
    args.extend(base);
    assert_eq!(accepted(&call(&args, Some(r#"{"text":"y"}"#))), 1);

    // A missing file is named.
    let mut args = vec![
        "TrainingService/RecordNotes",
        "-d",
        "@/nonexistent/notes.json",
    ];
    args.extend(base);
    let output = call(&args, None);
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output.stderr).contains("/nonexistent/notes.json"));
}

#[test]
fn emit_defaults_prints_fields_holding_their_default() {
    let upstream = telemetry().to_string();
    // No notes: `accepted` is 0, proto3's default, left out unless asked for.
    let args = [
        "TrainingService/RecordNotes",
        "--reflect",
        "--upstream",
        &upstream,
    ];
    let output = call(&args, None);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let plain = values(&output.stdout);
    assert!(plain[0].get("accepted").is_none(), "{plain:?}");

    for flags in [&["--emit-defaults"][..], &["--json-defaults", "emit"]] {
        let mut with_defaults = args.to_vec();
        with_defaults.extend(flags);
        let output = call(&with_defaults, None);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert_eq!(values(&output.stdout)[0]["accepted"], 0, "{flags:?}");
    }
    // Camel names on request: GetJob's job_id is jobId.
    let output = call(
        &[
            "TrainingService/GetJob",
            "--reflect",
            "--upstream",
            &upstream,
            "--json-names",
            "camel",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let job = &values(&output.stdout)[0];
    assert!(
        job["jobId"].is_string() && job.get("job_id").is_none(),
        "{job}"
    );
}

#[test]
fn compact_prints_one_line_per_message_and_pretty_indents() {
    let upstream = telemetry().to_string();
    let args = [
        "TrainingService/WatchMetrics",
        r#"{"max_events": 3}"#,
        "--reflect",
        "--upstream",
        &upstream,
    ];
    // Into a pipe, the default is compact.
    for format in [None, Some("compact")] {
        let mut args = args.to_vec();
        if let Some(format) = format {
            args.extend(["--format", format]);
        }
        let output = call(&args, None);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{format:?}:\n{stdout}");
        for line in lines {
            let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert!(value.is_object(), "{line}");
        }
    }
    let mut pretty = args.to_vec();
    pretty.extend(["--format", "pretty"]);
    let output = call(&pretty, None);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert_eq!(values(&output.stdout).len(), 3, "{stdout}");
    assert!(
        stdout.lines().count() > 3 && stdout.contains("\n  \""),
        "{stdout}"
    );
}

#[test]
fn a_closed_output_ends_a_stream_quietly_with_success() {
    let upstream = telemetry().to_string();
    let mut child = Command::new(BIN)
        .args([
            "call",
            "TrainingService/WatchMetrics",
            "--reflect",
            "--upstream",
            &upstream,
            "--timeout",
            "0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start octaneweb call");
    // Read one line, as `head -1` does, and close the pipe.
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("first message");
    assert!(first.starts_with('{'), "{first}");
    // The stream never ends by itself: only the closed pipe can end the process.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the call ends once its output is closed")
        .expect("wait");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
}

#[test]
fn an_unknown_service_names_reflect_when_the_upstream_serves_reflection() {
    let upstream = telemetry().to_string();
    // The built-in schema has no telemetry service; the upstream lists it by reflection.
    let output = call(
        &[
            "telemetry.v1.TrainingService/GetJob",
            "--upstream",
            &upstream,
        ],
        None,
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("unknown service 'telemetry.v1.TrainingService'")
            && stderr.contains("lists telemetry.v1.TrainingService: add --reflect"),
        "{stderr}"
    );
    // Following the advice works.
    let output = call(
        &[
            "telemetry.v1.TrainingService/GetJob",
            "--upstream",
            &upstream,
            "--reflect",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(values(&output.stdout)[0]["job_id"].is_string());

    // Nothing listening: no reflection to point at.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let output = call(
        &[
            "telemetry.v1.TrainingService/GetJob",
            "--upstream",
            &format!("127.0.0.1:{port}"),
        ],
        None,
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(!stderr.contains("--reflect"), "{stderr}");
}

/// A CA, a server certificate for localhost signed by it, and a client certificate, as PEM
/// files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: String,
    server_cert: String,
    server_key: String,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = CertificateParams::new(vec!["localhost".into()])
            .expect("server params")
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        let client_key = KeyPair::generate().expect("client key");
        let client_cert = CertificateParams::new(vec!["cli.test".into()])
            .expect("client params")
            .signed_by(&client_key, &issuer)
            .expect("client certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, pem: &str| {
            std::fs::write(dir.path().join(name), pem).expect("write PEM");
        };
        write("ca.pem", &ca_cert.pem());
        write("client.pem", &client_cert.pem());
        write("client.key", &client_key.serialize_pem());
        Pki {
            ca: ca_cert.pem(),
            server_cert: server_cert.pem(),
            server_key: server_key.serialize_pem(),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[test]
fn a_client_certificate_opens_an_upstream_that_requires_one() {
    let pki = Pki::new();
    let server = Recorder::start(Some(
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&pki.server_cert, &pki.server_key))
            .client_ca_root(Certificate::from_pem(&pki.ca)),
    ));
    let upstream = format!("localhost:{}", server.addr.port());
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
    );
    let output = call(
        &[
            "grpc.health.v1.Health/Check",
            "--reflect",
            "--upstream",
            &upstream,
            "--upstream-ca",
            &ca,
            "--upstream-cert",
            &cert,
            "--upstream-key",
            &key,
            "-H",
            "x-test: mtls",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        values(&output.stdout),
        [serde_json::json!({"status": "SERVING"})]
    );
    server.request_of("mtls");

    // Without the certificate the server refuses the connection: the call says so. (The
    // schema comes from a file here, so that it is the call that meets the refusal.)
    let schema = pki.dir.path().join("health.binpb");
    std::fs::write(&schema, tonic_health::pb::FILE_DESCRIPTOR_SET).expect("write schema");
    let output = call(
        &[
            "grpc.health.v1.Health/Check",
            "--descriptor-set",
            &schema.display().to_string(),
            "--upstream",
            &upstream,
            "--upstream-ca",
            &ca,
        ],
        None,
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(14), "{stderr}");
    assert!(
        stderr.contains("client certificate") && stderr.contains("--upstream-cert"),
        "{stderr}"
    );

    // A key without its certificate is refused before anything is sent.
    let output = call(&["LiveLink/GetCamera", "--upstream-key", &key], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--upstream-cert"));
}

#[test]
fn connect_timeout_bounds_connecting_and_timeout_the_call() {
    // Accepts TCP connections (the kernel does, into the backlog) but never answers the TLS
    // handshake: connecting hangs until one of the two limits ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = silent.local_addr().expect("address").to_string();
    let run = |connect: &str, deadline: &str| {
        call(
            &[
                "LiveLink/GetCamera",
                "--upstream",
                &upstream,
                "--upstream-tls",
                "--connect-timeout",
                connect,
                "--timeout",
                deadline,
            ],
            None,
        )
    };
    // Connecting gives up long before the call's deadline (and before the 1.5 s default).
    let output = run("200ms", "1s");
    assert_eq!(output.status.code(), Some(14), "{}", text(&output.stderr));
    // With time to connect, the call's deadline ends it instead.
    let output = run("60s", "1s");
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    drop(silent);
}

#[test]
fn a_stream_from_standard_input_sends_each_message_as_it_comes() {
    let upstream = telemetry().to_string();
    let mut child = Command::new(BIN)
        .args([
            "call",
            "TrainingService/Control",
            "-d",
            "@-",
            "--reflect",
            "--upstream",
            &upstream,
            "--timeout",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start octaneweb call");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (line_sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if line_sender.send(line).is_err() {
                break;
            }
        }
    });
    // Each command is answered while standard input is still open: it was sent as it came.
    for id in ["first", "second"] {
        writeln!(
            stdin,
            r#"{{"command_id": "{id}", "set_learning_rate": {{"learning_rate": 0.01}}}}"#
        )
        .expect("write a command");
        stdin.flush().expect("flush");
        let ack = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("an acknowledgement while the input is open")
            .expect("read stdout");
        let ack: serde_json::Value = serde_json::from_str(&ack).expect("JSON");
        assert_eq!(ack["command_id"], id, "{ack}");
        assert_eq!(ack["accepted"], true, "{ack}");
    }
    // Closing the input ends the stream.
    drop(stdin);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the call ends once its input is closed")
        .expect("wait");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    // Bad input on the way ends the call with INVALID_ARGUMENT, naming where it was.
    let output = call(
        &[
            "TrainingService/Control",
            "-d",
            "@-",
            "--reflect",
            "--upstream",
            &upstream,
        ],
        Some(r#"{"command_id": "ok", "resume": {}} {oops"#),
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("after 1 messages"), "{stderr}");
}
