//! One call from the command line (`octaneweb call METHOD [JSON]`).
//!
//! Input: for unary and server-streaming methods one JSON object (empty = empty message);
//! for client- and bidirectional-streaming methods a JSON array of objects or a sequence of
//! objects (concatenated or one per line), sent in order. [`RequestInput::from_spec`] takes it
//! from the command line, a file (`@FILE`) or standard input (`@-`); from standard input a
//! streaming call sends each message as soon as it is complete, so a bidirectional stream can
//! be driven by hand. Request metadata comes as
//! [`RequestHeader`]s (`-H 'name: value'`).
//!
//! Output: each response message as proto3 JSON in the [`JsonShape`] of
//! [`CallSettings::shape`] (the command line: proto field names, fields at their default value
//! only with `--emit-defaults`; [`call`]: proto names with defaults, as the gateway's
//! original-proxy routes write it), on one line ([`OutputFormat::Compact`]) or indented
//! ([`OutputFormat::Pretty`]). With [`CallSettings::verbose`] the call is described on a
//! second writer (standard error): the method, the metadata sent (credentials redacted),
//! response headers, each message, trailers, the status with its details, and timings.
//!
//! Exit codes ([`CallError::exit_code`]): 0 on success, otherwise the gRPC code number of the
//! failure (1 CANCELLED ... 16 UNAUTHENTICATED). Local problems map like the HTTP routes do:
//! an unknown service or method is NOT_FOUND (5), a bad method path, header or JSON input
//! INVALID_ARGUMENT (3), an unreachable upstream UNAVAILABLE (14), a deadline
//! DEADLINE_EXCEEDED (4). An output closed by its reader (`| head -1`) is no failure: the call
//! is cancelled and ends with [`CallEnd::OutputClosed`].

use std::fmt::Display;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::stream::BoxStream;
use futures::StreamExt as _;
use octaneweb_schema::{json_to_message, JsonShape, LookupError, Schema};
use prost_reflect::{DynamicMessage, MethodDescriptor};
use tonic::metadata::{
    AsciiMetadataKey, AsciiMetadataValue, BinaryMetadataKey, BinaryMetadataValue, MetadataMap,
};
use tonic::{Code, Status};

use crate::context::call::{upstream_request, MIN_DEADLINE};
use crate::error::GatewayError;
use crate::upstream::{DynamicCodec, Upstream, UpstreamService};
use crate::wire::codes::code_name;
use crate::wire::metadata::{is_secret_metadata, reserved_metadata_reason};
use crate::wire::status_details::readable_details;

/// Most request messages read for a streaming call.
pub const MAX_INPUT_MESSAGES: usize = 100_000;
/// Largest request input (JSON text) read from a file or standard input.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;
/// Request messages read from standard input ahead of the upstream taking them.
const STREAMED_INPUT_QUEUE: usize = 16;
/// How long the upstream may take to list its services by reflection, asked only when the
/// loaded schema does not know the method.
const REFLECTION_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A failed command-line call.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", code_name(*.code))]
pub struct CallError {
    /// The gRPC code of the failure.
    pub code: Code,
    /// What went wrong.
    pub message: String,
}

impl CallError {
    /// The process exit code: the gRPC code number (1..=16; never 0).
    pub fn exit_code(&self) -> u8 {
        match u8::try_from(self.code as i32) {
            Ok(0) | Err(_) => 2,
            Ok(n) => n,
        }
    }

    fn new(code: Code, message: impl Into<String>) -> Self {
        CallError {
            code,
            message: message.into(),
        }
    }
}

impl From<GatewayError> for CallError {
    fn from(error: GatewayError) -> Self {
        CallError::new(error.code(), error.to_string())
    }
}

impl From<tonic::Status> for CallError {
    fn from(status: tonic::Status) -> Self {
        GatewayError::from(status).into()
    }
}

/// One request metadata entry given on the command line as `name: value`. A name ending in
/// `-bin` carries binary data, given in base64 (padded or not) as gRPC writes it.
#[derive(Clone, Debug)]
pub enum RequestHeader {
    /// A text value (printable ASCII).
    Ascii(AsciiMetadataKey, AsciiMetadataValue),
    /// A binary value.
    Binary(BinaryMetadataKey, BinaryMetadataValue),
}

/// Why a `name: value` header cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// No colon between name and value.
    #[error("header {0:?} has no ':' between name and value (expected 'name: value')")]
    NoSeparator(String),
    /// The name has characters gRPC metadata names cannot have.
    #[error("header name {0:?} is not valid metadata (letters, digits, '-', '_' and '.' only)")]
    BadName(String),
    /// The name is one the caller may not set.
    #[error("header {name} cannot be set: {reason}")]
    Reserved {
        /// The header name.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// A text value with characters outside printable ASCII.
    #[error("header {0}: a text value may hold printable ASCII only (binary data goes in a name ending in -bin, base64-encoded)")]
    BadValue(String),
    /// A `-bin` value that is not base64.
    #[error("header {name}: a -bin value must be base64 ({reason})")]
    BadBase64 {
        /// The header name.
        name: String,
        /// What the decoder found.
        reason: String,
    },
}

/// Standard base64, padded or not: gRPC accepts both in `-bin` metadata.
const BASE64_ANY_PADDING: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

impl std::str::FromStr for RequestHeader {
    type Err = HeaderError;

    fn from_str(text: &str) -> Result<Self, HeaderError> {
        let trimmed = text.trim_start();
        // The separator is the first colon after the name's first character, so that a
        // pseudo-header (`:authority: x`) is recognised and refused as one.
        let at = trimmed
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == ':')
            .map(|(at, _)| at)
            .ok_or_else(|| HeaderError::NoSeparator(text.to_owned()))?;
        let name = trimmed[..at].trim().to_ascii_lowercase();
        let value = trimmed[at + 1..].trim();
        if let Some(reason) = reserved_metadata_reason(&name) {
            return Err(HeaderError::Reserved { name, reason });
        }
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !valid_name {
            return Err(HeaderError::BadName(name));
        }
        if name.ends_with("-bin") {
            let bytes =
                BASE64_ANY_PADDING
                    .decode(value)
                    .map_err(|error| HeaderError::BadBase64 {
                        name: name.clone(),
                        reason: error.to_string(),
                    })?;
            let key = BinaryMetadataKey::from_bytes(name.as_bytes())
                .map_err(|_| HeaderError::BadName(name.clone()))?;
            Ok(RequestHeader::Binary(
                key,
                BinaryMetadataValue::from_bytes(&bytes),
            ))
        } else {
            let printable = value.bytes().all(|b| (0x20..=0x7e).contains(&b));
            let key = AsciiMetadataKey::from_bytes(name.as_bytes())
                .map_err(|_| HeaderError::BadName(name.clone()))?;
            let value = AsciiMetadataValue::try_from(value)
                .ok()
                .filter(|_| printable)
                .ok_or(HeaderError::BadValue(name))?;
            Ok(RequestHeader::Ascii(key, value))
        }
    }
}

impl RequestHeader {
    /// Add this entry to `metadata` (after any of the same name).
    pub fn add_to(&self, metadata: &mut MetadataMap) {
        match self {
            RequestHeader::Ascii(key, value) => {
                metadata.append(key.clone(), value.clone());
            }
            RequestHeader::Binary(key, value) => {
                metadata.append_bin(key.clone(), value.clone());
            }
        }
    }
}

/// `upstream`'s call stack with `headers` added to every request: what the schema is asked
/// for by reflection over, so that an upstream wanting credentials on every call gets them
/// there too.
pub fn service_with_headers(
    upstream: &Upstream,
    headers: &[RequestHeader],
) -> tower::util::MapRequest<
    UpstreamService,
    impl FnMut(http::Request<tonic::body::Body>) -> http::Request<tonic::body::Body> + Clone,
> {
    let mut metadata = MetadataMap::new();
    for header in headers {
        header.add_to(&mut metadata);
    }
    let headers = std::sync::Arc::new(metadata.into_headers());
    tower::util::MapRequest::new(
        upstream.service(),
        move |mut request: http::Request<tonic::body::Body>| {
            for (name, value) in headers.iter() {
                request.headers_mut().append(name.clone(), value.clone());
            }
            request
        },
    )
}

/// How response messages are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// One line per message (NDJSON), for pipes and scripts.
    #[default]
    Compact,
    /// Indented JSON, one value after the other, for people.
    Pretty,
}

/// How a command-line call is made and shown.
#[derive(Clone, Debug)]
pub struct CallSettings {
    /// A deadline of its own (the upstream's configured default still caps it).
    pub timeout: Option<Duration>,
    /// Request metadata, sent in this order.
    pub headers: Vec<RequestHeader>,
    /// How each response message is written as JSON.
    pub shape: JsonShape,
    /// How each response message is printed.
    pub format: OutputFormat,
    /// Describe the call on the log writer.
    pub verbose: bool,
    /// When the schema does not know the method, ask the upstream whether it serves
    /// reflection, and if so name `--reflect` in the error.
    pub suggest_reflection: bool,
}

impl Default for CallSettings {
    /// No deadline of its own, no metadata, [`JsonShape::PROXY`] on one line per message.
    fn default() -> Self {
        CallSettings {
            timeout: None,
            headers: Vec::new(),
            shape: JsonShape::PROXY,
            format: OutputFormat::default(),
            verbose: false,
            suggest_reflection: false,
        }
    }
}

/// How a call that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallEnd {
    /// The upstream ended the call with OK and every message was printed.
    Completed,
    /// The output was closed by its reader (a pipe into `head`); the call was cancelled.
    OutputClosed,
}

/// Call `method` (`Service/method`, `Service.method`, `package.Service/Method`; lenient
/// service names) with `json` as input and write each response message as one line to `out`
/// ([`JsonShape::PROXY`]). The upstream's configured default deadline bounds the whole call.
pub async fn call<W: Write>(
    schema: &Schema,
    upstream: &Upstream,
    method: &str,
    json: &str,
    out: &mut W,
) -> Result<(), CallError> {
    call_with_timeout(schema, upstream, method, json, None, JsonShape::PROXY, out).await
}

/// [`call`] with a deadline of its own (the upstream's configured default still caps it),
/// writing responses in `shape`.
pub async fn call_with_timeout<W: Write>(
    schema: &Schema,
    upstream: &Upstream,
    method: &str,
    json: &str,
    timeout: Option<Duration>,
    shape: JsonShape,
    out: &mut W,
) -> Result<(), CallError> {
    let settings = CallSettings {
        timeout,
        shape,
        ..CallSettings::default()
    };
    let input = RequestInput::Text(json.to_owned());
    call_with(
        schema,
        upstream,
        method,
        input,
        &settings,
        out,
        &mut io::sink(),
    )
    .await
    .map(|_| ())
}

/// [`call`] as `settings` say: response messages go to `out`, the verbose description to
/// `log`.
pub async fn call_with<W: Write, L: Write>(
    schema: &Schema,
    upstream: &Upstream,
    method: &str,
    input: RequestInput,
    settings: &CallSettings,
    out: &mut W,
    log: &mut L,
) -> Result<CallEnd, CallError> {
    let started = Instant::now();
    let descriptor = match schema.find_method_path(method) {
        Ok(descriptor) => descriptor,
        Err(error) => return Err(unknown_method(upstream, error, settings).await),
    };
    let (messages, sent, input_failure) = request_messages(&descriptor, input)?;
    let call_id = uuid::Uuid::new_v4().to_string();
    let (mut request, mut options) = upstream_request(messages, settings.timeout, &call_id, None);
    for header in &settings.headers {
        header.add_to(request.metadata_mut());
    }
    let mut trace = Trace {
        log: settings.verbose.then_some(log),
        started,
        shape: settings.shape,
    };
    let deadline = upstream.deadline(options);
    trace.request(&descriptor, upstream, &sent, deadline, request.metadata());
    // Connecting first times it apart from the call, and bounds the TLS handshake too.
    let before = Instant::now();
    let connecting = match deadline {
        Some(deadline) => tokio::time::timeout(deadline, upstream.connect())
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(format!(
                    "the deadline of {} passed while connecting to the upstream",
                    millis(deadline)
                )))
            }),
        None => upstream.connect().await,
    };
    if let Err(status) = connecting {
        trace.end(&status, schema, None, None, None);
        return Err(status.into());
    }
    let took = before.elapsed();
    let connected = Some(took);
    trace.line(format_args!(
        "Connected to {} in {}",
        upstream.target(),
        millis(took)
    ));
    // What is left of the deadline is the call's.
    options.timeout = deadline.map(|d| d.saturating_sub(took).max(MIN_DEADLINE));

    let response = upstream
        .call(
            &descriptor,
            request,
            DynamicCodec::for_method(&descriptor),
            options,
        )
        .await;
    let mut response = match response {
        Ok(response) => response,
        Err(status) => {
            // A failure before any message: what the upstream sent came as trailers only.
            trace.metadata("Response trailers", status.metadata());
            trace.end(&status, schema, connected, None, None);
            // A transport failure carries its cause; a status the upstream sent does not.
            let connection_lost = std::error::Error::source(&status).is_some();
            let mut failure = CallError::from(status);
            let no_client_certificate = upstream
                .config()
                .tls
                .as_ref()
                .is_some_and(|tls| tls.identity.is_none());
            if failure.code == Code::Unavailable && connection_lost && no_client_certificate {
                // The handshake succeeded from our side (the connection was opened above),
                // yet the upstream dropped the connection before answering: what a server
                // that requires client certificates does over TLS 1.3.
                failure.message.push_str(
                    "; the upstream closed the connection after the TLS handshake, as servers \
                     that require a client certificate do: give --upstream-cert and --upstream-key",
                );
            }
            return Err(failure);
        }
    };
    let headers_at = started.elapsed();
    trace.metadata("Response headers", response.metadata());
    let stream = response.get_mut();
    let mut received = 0usize;
    let mut first_message_at = None;
    let ended = loop {
        match stream.message().await {
            Ok(Some(message)) => {
                received += 1;
                let at = started.elapsed();
                first_message_at.get_or_insert(at);
                trace.line(format_args!(
                    "Response message {received} ({} bytes, after {})",
                    prost::Message::encoded_len(&message),
                    millis(at)
                ));
                let text = render(&message, settings)?;
                if let Err(error) = out.write_all(&text).and_then(|()| out.flush()) {
                    if error.kind() == io::ErrorKind::BrokenPipe {
                        // Dropping the response stream cancels the upstream call.
                        trace.line("The output was closed; the call is cancelled.");
                        return Ok(CallEnd::OutputClosed);
                    }
                    return Err(CallError::new(
                        Code::Internal,
                        format!("writing the output: {error}"),
                    ));
                }
            }
            Ok(None) => break stream.trailers().await.map(Option::unwrap_or_default),
            Err(status) => break Err(status),
        }
    };
    let status = match ended {
        Ok(trailers) => {
            trace.metadata("Response trailers", &trailers);
            if received == 0 && !descriptor.is_server_streaming() {
                Status::internal(format!(
                    "{} answered with no message",
                    descriptor.full_name()
                ))
            } else {
                Status::new(Code::Ok, "")
            }
        }
        Err(status) => {
            trace.metadata("Response trailers", status.metadata());
            status
        }
    };
    trace.end(
        &status,
        schema,
        connected,
        Some(headers_at),
        first_message_at,
    );
    if let Some(failure) = input_failure.and_then(|slot| slot.take()) {
        // What was sent stopped at the bad input; that is the failure to report.
        return Err(failure);
    }
    if status.code() == Code::Ok {
        Ok(CallEnd::Completed)
    } else {
        Err(status.into())
    }
}

/// The request messages of a call to `method` and how many they are, in words; for a stream
/// read from a reader, also where a bad message in it is reported.
fn request_messages(
    method: &MethodDescriptor,
    input: RequestInput,
) -> Result<
    (
        BoxStream<'static, DynamicMessage>,
        String,
        Option<InputFailure>,
    ),
    CallError,
> {
    let json = match input {
        RequestInput::Reader(reader) if method.is_client_streaming() => {
            let failure = InputFailure::default();
            let messages = stream_messages(method.input(), reader, failure.clone());
            let sent = "streamed from standard input".to_owned();
            return Ok((messages, sent, Some(failure)));
        }
        RequestInput::Reader(reader) => read_limited(reader, "standard input")?,
        RequestInput::Text(json) => json,
    };
    let messages = if method.is_client_streaming() {
        parse_sequence(&method.input(), &json)?
    } else {
        vec![json_to_message(&method.input(), json.as_bytes()).map_err(GatewayError::from)?]
    };
    let sent = match messages.len() {
        1 => "1 message".to_owned(),
        n => format!("{n} messages"),
    };
    Ok((futures::stream::iter(messages).boxed(), sent, None))
}

/// Where the reader of a streamed request leaves the first bad input it met.
#[derive(Clone, Default)]
struct InputFailure(Arc<Mutex<Option<CallError>>>);

impl InputFailure {
    fn set(&self, error: CallError) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert(error);
    }

    fn take(&self) -> Option<CallError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Request messages read from `reader` by a thread of their own, each sent once complete,
/// at most [`STREAMED_INPUT_QUEUE`] ahead of the upstream. Bad input ends the stream and is
/// left in `failure`. A plain thread, not the runtime's blocking pool: a read that never
/// returns (a terminal nobody types into) must not keep the process from exiting.
fn stream_messages(
    input: prost_reflect::MessageDescriptor,
    reader: Box<dyn Read + Send>,
    failure: InputFailure,
) -> BoxStream<'static, DynamicMessage> {
    let (sender, receiver) = tokio::sync::mpsc::channel(STREAMED_INPUT_QUEUE);
    let spawned = std::thread::Builder::new()
        .name("call-input".into())
        .spawn({
            let failure = failure.clone();
            move || {
                let invalid = |message: String| CallError::new(Code::InvalidArgument, message);
                let mut limited = reader.take(MAX_INPUT_BYTES);
                let mut index = 0usize;
                let values =
                    serde_json::Deserializer::from_reader(&mut limited).into_iter::<serde_json::Value>();
                for value in values {
                    let items = match value {
                        Ok(serde_json::Value::Array(items)) => items,
                        Ok(other) => vec![other],
                        Err(error) => {
                            return failure.set(invalid(format!(
                                "malformed JSON input after {index} messages: {error} (standard input is read up to {} MiB)",
                                MAX_INPUT_BYTES / (1024 * 1024)
                            )))
                        }
                    };
                    for value in items {
                        if index >= MAX_INPUT_MESSAGES {
                            return failure.set(invalid(format!(
                                "more than {MAX_INPUT_MESSAGES} input messages"
                            )));
                        }
                        let text = value.to_string();
                        let message = match json_to_message(&input, text.as_bytes()) {
                            Ok(message) => message,
                            Err(error) => {
                                return failure
                                    .set(invalid(format!("input message {index}: {error}")))
                            }
                        };
                        if sender.blocking_send(message).is_err() {
                            return; // The call is over.
                        }
                        index += 1;
                    }
                }
            }
        });
    if let Err(error) = spawned {
        failure.set(CallError::new(
            Code::Internal,
            format!("cannot start reading standard input: {error}"),
        ));
    }
    tokio_stream::wrappers::ReceiverStream::new(receiver).boxed()
}

/// Where a call's request comes from.
pub enum RequestInput {
    /// JSON text, from the command line or a file.
    Text(String),
    /// A reader (standard input): for client- and bidirectional-streaming methods each message
    /// is sent as soon as it is complete; for the others it is read whole.
    Reader(Box<dyn Read + Send>),
}

impl RequestInput {
    /// What `spec` names: `@-` (or `-`) `stdin`, `@FILE` a file's contents, anything else
    /// the JSON itself (JSON never starts with `@`). At most [`MAX_INPUT_BYTES`] are read.
    pub fn from_spec(spec: &str, stdin: Box<dyn Read + Send>) -> Result<Self, CallError> {
        match spec {
            "-" | "@-" => Ok(RequestInput::Reader(stdin)),
            _ => match spec.strip_prefix('@') {
                Some(path) => {
                    let file = std::fs::File::open(path).map_err(|error| {
                        CallError::new(
                            Code::InvalidArgument,
                            format!("cannot read the request from {path}: {error}"),
                        )
                    })?;
                    read_limited(file, path).map(RequestInput::Text)
                }
                None => Ok(RequestInput::Text(spec.to_owned())),
            },
        }
    }
}

fn read_limited(reader: impl Read, what: &str) -> Result<String, CallError> {
    let mut text = String::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| {
            CallError::new(
                Code::InvalidArgument,
                format!("cannot read the request from {what}: {error}"),
            )
        })?;
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(CallError::new(
            Code::InvalidArgument,
            format!(
                "the request in {what} is over {} MiB",
                MAX_INPUT_BYTES / (1024 * 1024)
            ),
        ));
    }
    Ok(text)
}

/// One response message as JSON text, with its line end.
fn render(message: &DynamicMessage, settings: &CallSettings) -> Result<Vec<u8>, CallError> {
    let options = settings.shape.serialize_options();
    let mut text = Vec::with_capacity(256);
    let written =
        match settings.format {
            OutputFormat::Compact => message
                .serialize_with_options(&mut serde_json::Serializer::new(&mut text), &options),
            OutputFormat::Pretty => message
                .serialize_with_options(&mut serde_json::Serializer::pretty(&mut text), &options),
        };
    written.map_err(|error| {
        CallError::new(
            Code::Internal,
            format!("cannot print a response message as JSON: {error}"),
        )
    })?;
    text.push(b'\n');
    Ok(text)
}

/// The lookup failure as a call error; when the schema lacks the service (or the method) and
/// the upstream serves reflection, the message says to load the schema from it.
async fn unknown_method(
    upstream: &Upstream,
    error: LookupError,
    settings: &CallSettings,
) -> CallError {
    let missing = match &error {
        LookupError::UnknownService { name } => Some(name.clone()),
        LookupError::UnknownMethod { service, .. } => Some(service.clone()),
        _ => None,
    };
    let mut failure = CallError::from(GatewayError::from(error));
    let Some(missing) = missing.filter(|_| settings.suggest_reflection) else {
        return failure;
    };
    let listed = tokio::time::timeout(
        REFLECTION_PROBE_TIMEOUT,
        octaneweb_schema::reflection::list_services(service_with_headers(
            upstream,
            &settings.headers,
        )),
    )
    .await;
    if let Ok(Ok(services)) = listed {
        let named = services.iter().find(|full| names_service(full, &missing));
        let hint = match named {
            Some(full) => format!(
                "; the upstream serves reflection and lists {full}: add --reflect to load its schema from it"
            ),
            None => "; the upstream serves reflection: add --reflect to load its schema from it"
                .to_owned(),
        };
        failure.message.push_str(&hint);
    }
    failure
}

/// True if `name` (as a user wrote it) names the service `full`: the full name, or its last
/// part, either with or without the `Service` suffix.
fn names_service(full: &str, name: &str) -> bool {
    let bare = |n: &str| n.rsplit('.').next().unwrap_or(n).to_owned();
    let stem = |n: &str| n.strip_suffix("Service").unwrap_or(n).to_owned();
    full == name || bare(full) == name || stem(full) == name || stem(&bare(full)) == name
}

/// The RPC kind of `method`, as people say it.
fn kind(method: &MethodDescriptor) -> &'static str {
    match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => "unary",
        (false, true) => "server-streaming",
        (true, false) => "client-streaming",
        (true, true) => "bidirectional-streaming",
    }
}

fn millis(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// The verbose description of a call; writes nothing when off. Failing to write it (a
/// closed standard error) never fails the call.
struct Trace<'a, L: Write> {
    log: Option<&'a mut L>,
    started: Instant,
    /// How status details are written.
    shape: JsonShape,
}

impl<L: Write> Trace<'_, L> {
    fn is_on(&self) -> bool {
        self.log.is_some()
    }

    fn line(&mut self, text: impl Display) {
        if let Some(log) = self.log.as_mut() {
            let _ = writeln!(log, "{text}");
        }
    }

    fn request(
        &mut self,
        method: &MethodDescriptor,
        upstream: &Upstream,
        messages: &str,
        deadline: Option<Duration>,
        metadata: &MetadataMap,
    ) {
        if !self.is_on() {
            return;
        }
        self.line(format_args!(
            "Method: /{}/{} ({}: {} -> {}) on {}",
            method.parent_service().full_name(),
            method.name(),
            kind(method),
            method.input().full_name(),
            method.output().full_name(),
            upstream.target()
        ));
        self.line(format_args!(
            "Request: {messages}, deadline {}",
            deadline.map_or_else(|| "none".to_owned(), |d| format!("{} s", d.as_secs_f64()))
        ));
        self.metadata("Request metadata", metadata);
    }

    fn metadata(&mut self, title: &str, metadata: &MetadataMap) {
        if !self.is_on() {
            return;
        }
        let headers = metadata.clone().into_headers();
        if headers.is_empty() {
            self.line(format_args!("{title}: (none)"));
            return;
        }
        self.line(format_args!("{title}:"));
        for (name, value) in &headers {
            if is_secret_metadata(name.as_str()) {
                self.line(format_args!("  {name}: <redacted, {} bytes>", value.len()));
            } else {
                self.line(format_args!(
                    "  {name}: {}",
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
        }
    }

    fn end(
        &mut self,
        status: &Status,
        schema: &Schema,
        connected: Option<Duration>,
        headers_at: Option<Duration>,
        first_message_at: Option<Duration>,
    ) {
        if !self.is_on() {
            return;
        }
        let code = status.code();
        if status.message().is_empty() {
            self.line(format_args!(
                "Status: {} ({})",
                code_name(code),
                code as i32
            ));
        } else {
            self.line(format_args!(
                "Status: {} ({}): {}",
                code_name(code),
                code as i32,
                status.message()
            ));
        }
        let details = readable_details(status, schema.pool(), self.shape);
        if !details.is_empty() {
            self.line("Status details:");
            for detail in details {
                self.line(format_args!("  {detail}"));
            }
        }
        let at = |moment: Option<Duration>| moment.map_or_else(|| "-".to_owned(), millis);
        self.line(format_args!(
            "Timing: connect {}, response headers {}, first message {}, total {}",
            at(connected),
            at(headers_at),
            at(first_message_at),
            millis(self.started.elapsed())
        ));
    }
}

/// A JSON array of messages, or whitespace-separated JSON objects.
fn parse_sequence(
    input: &prost_reflect::MessageDescriptor,
    json: &str,
) -> Result<Vec<DynamicMessage>, CallError> {
    let invalid = |e: String| CallError::new(Code::InvalidArgument, e);
    let mut values = Vec::new();
    for value in serde_json::Deserializer::from_str(json).into_iter::<serde_json::Value>() {
        let value = value.map_err(|e| invalid(format!("malformed JSON input: {e}")))?;
        match value {
            serde_json::Value::Array(items) => values.extend(items),
            other => values.push(other),
        }
        if values.len() > MAX_INPUT_MESSAGES {
            return Err(invalid(format!(
                "more than {MAX_INPUT_MESSAGES} input messages"
            )));
        }
    }
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let text = value.to_string();
            json_to_message(input, text.as_bytes())
                .map_err(|e| invalid(format!("input message {index}: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> Result<RequestHeader, HeaderError> {
        text.parse()
    }

    #[test]
    fn headers_parse_lower_case_and_decode_binary_values() {
        let Ok(RequestHeader::Ascii(key, value)) = header("X-Tenant:  blue team ") else {
            panic!("a text header")
        };
        assert_eq!(
            (key.as_str(), value.to_str().ok()),
            ("x-tenant", Some("blue team"))
        );
        for padded in [
            "x-trace-bin: AAEC",
            "x-trace-bin: AAECAw==",
            "x-trace-bin: AAECAw",
        ] {
            let Ok(RequestHeader::Binary(_, value)) = header(padded) else {
                panic!("{padded}: a binary header")
            };
            assert!(value.to_bytes().is_ok(), "{padded}");
        }
        let Ok(RequestHeader::Binary(_, value)) = header("x-trace-bin: AAECAw") else {
            panic!("binary")
        };
        assert_eq!(value.to_bytes().ok().as_deref(), Some(&[0u8, 1, 2, 3][..]));
    }

    #[test]
    fn bad_and_reserved_headers_are_refused_by_name() {
        let refusals = [
            ("no colon", "no ':'"),
            (":authority: evil", ":authority"),
            ("grpc-timeout: 1S", "grpc-timeout"),
            ("content-type: text/plain", "content-type"),
            ("connection: close", "connection"),
            ("bad name: x", "bad name"),
            ("x-caf\u{e9}: x", "x-caf"),
            ("x-note: caf\u{e9}", "x-note"),
            ("x-id-bin: not*base64", "x-id-bin"),
        ];
        for (text, named) in refusals {
            let error = header(text).expect_err(text);
            assert!(error.to_string().contains(named), "{text}: {error}");
        }
    }

    #[test]
    fn service_names_match_as_users_write_them() {
        for name in [
            "grpc.health.v1.Health",
            "Health",
            "telemetry.v1.TrainingService",
            "TrainingService",
            "Training",
        ] {
            assert!(
                ["grpc.health.v1.Health", "telemetry.v1.TrainingService"]
                    .iter()
                    .any(|full| names_service(full, name)),
                "{name}"
            );
        }
        assert!(!names_service("grpc.health.v1.Health", "Wealth"));
    }

    #[test]
    fn request_input_comes_from_text_files_and_stdin() {
        let stdin = || Box::new(io::empty()) as Box<dyn Read + Send>;
        let text = |spec: &str| match RequestInput::from_spec(spec, stdin()) {
            Ok(RequestInput::Text(text)) => Some(text),
            _ => None,
        };
        assert_eq!(text(r#"{"a":1}"#).as_deref(), Some(r#"{"a":1}"#));
        for spec in ["-", "@-"] {
            assert!(matches!(
                RequestInput::from_spec(spec, stdin()),
                Ok(RequestInput::Reader(_))
            ));
        }
        let missing = RequestInput::from_spec("@/nonexistent/request.json", stdin())
            .err()
            .expect("no such file");
        assert_eq!(missing.code, Code::InvalidArgument);
        assert!(
            missing.message.contains("/nonexistent/request.json"),
            "{missing}"
        );
    }
}
