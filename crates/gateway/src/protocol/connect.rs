//! The Connect protocol: unary (JSON or binary, POST or GET) and streams of every kind
//! (`application/connect+json` / `+proto` envelopes), translated to gRPC towards the upstream.
//!
//! - Unary: `POST` with `application/json` (told apart from the original proxy's JSON route
//!   by the `Connect-Protocol-Version: 1` header) or `application/proto`. Success is 200 with
//!   the response message; response metadata comes back as headers and the upstream's
//!   trailers as `trailer-`-prefixed headers. Failures are the Connect error JSON
//!   `{"code":"not_found","message":"...","details":[]}` with the HTTP status of the code.
//! - `GET /pkg.Service/Method?connect=v1&encoding=json|proto&message=...[&base64=1]
//!   [&compression=gzip]` for methods marked `option idempotency_level = NO_SIDE_EFFECTS`;
//!   other methods answer 405.
//! - Streams: `POST` with `application/connect+json` or `+proto`: one envelope per response
//!   message out, then the end-of-stream envelope (flag `0x02`)
//!   `{"error":{...},"metadata":{...}}` (no `error` on success). Errors are reported in the
//!   end-of-stream message with HTTP 200. A server stream takes one request envelope, read
//!   whole; client and bidirectional streams (and methods the schema does not know) go
//!   upstream envelope by envelope as they arrive, through the pass-through's forwarder
//!   (`grpc::forward_stream`, `+json` converted per message), while answers stream
//!   back: full duplex over HTTP/2. Over HTTP/1.1, where no answer can be read before the
//!   request ends, a bidirectional method is refused at once.
//! - JSON is converted through the schema (proto or lowerCamelCase names accepted; output by
//!   default in lowerCamelCase without default values, per the proto3 JSON mapping, or in
//!   the shape the `X-Json-Names`/`X-Json-Defaults` headers or `json_names`/`json_defaults`
//!   query parameters choose, see [`crate::context::json_shape`]), so JSON needs a method the
//!   schema knows; binary passes through as bytes, also for methods the schema does not know.
//! - Deadlines from `Connect-Timeout-Ms`; gzip with `Content-Encoding`/`Accept-Encoding`
//!   (unary) and `Connect-Content-Encoding`/`Connect-Accept-Encoding` (streams); a wrong
//!   content type (also a unary one for a streaming method, or the reverse) answers 415.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};
use octaneweb_schema::{json_to_message, write_message_json, JsonShape};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor};
use tonic::{Code, Status};

use super::grpc::{forward_stream, method_path, RequestFraming};
use crate::context::call::{effective_timeout, kind_name, read_body, refuse_streaming, Carries};
use crate::context::{
    CallScope, GatewayState, JsonRoute, ResolvedMethod, ShapeChoice, ShutdownSignal,
};
use crate::error::GatewayError;
use crate::metrics::{CallTracker, Metrics, Protocol};
use crate::upstream::forward::{self, reply, ReplyEvent, ReplyOptions, UpstreamCall};
use crate::wire::codes::connect_code_name;
use crate::wire::compression::{self, Encoding};
use crate::wire::framing::{
    encode_frame, FrameDecoder, FramingError, FLAG_COMPRESSED, FLAG_END_STREAM,
};
use crate::wire::metadata::{is_hop_by_hop, is_status_header, request_metadata};
use crate::wire::trace_context::CallTrace;

/// Unary content types served.
pub const UNARY_CONTENT_TYPES: &str = "application/json, application/proto";
/// Streaming content types served.
pub const STREAM_CONTENT_TYPES: &str = "application/connect+json, application/connect+proto";
/// Longest `Connect-Timeout-Ms` value, in digits (the specification's limit).
const MAX_TIMEOUT_DIGITS: usize = 10;

/// The message encoding of a Connect call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Json,
    Proto,
}

/// How response messages are written: the call's codec, and for JSON its shape.
#[derive(Clone, Copy, Debug)]
struct ResponseFormat {
    codec: Codec,
    shape: JsonShape,
}

/// Unary or streaming, by content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Unary,
    Stream,
}

/// The method as far as the schema knows it.
struct Target {
    path: http::uri::PathAndQuery,
    method: Option<MethodDescriptor>,
}

/// Serve one Connect request.
pub async fn handle(state: GatewayState, request: Request) -> Response {
    let scope = CallScope::new(state, request.extensions());
    let mut tracker = scope.track(Protocol::Connect);
    let CallScope {
        state, shutdown, ..
    } = scope;
    let is_get = request.method() == http::Method::GET;
    if !is_get && request.method() != http::Method::POST {
        let error = GatewayError::MethodNotAllowed {
            method: request.method().to_string(),
            allowed: "POST, GET",
        };
        return unary_error(tracker, &error.to_status(), &error, HeaderMap::new(), None);
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let kind = if is_get {
        None
    } else {
        match content_type.as_str() {
            "application/json" => Some((Shape::Unary, Codec::Json)),
            "application/proto" => Some((Shape::Unary, Codec::Proto)),
            "application/connect+json" => Some((Shape::Stream, Codec::Json)),
            "application/connect+proto" => Some((Shape::Stream, Codec::Proto)),
            _ => {
                let error = GatewayError::UnsupportedMediaType {
                    content_type,
                    supported: "application/json, application/proto, application/connect+json, application/connect+proto",
                };
                return unary_error(tracker, &error.to_status(), &error, HeaderMap::new(), None);
            }
        }
    };
    let shape = match ShapeChoice::of_request(request.headers(), request.uri()) {
        Ok(choice) => state.json_shape(JsonRoute::Connect, choice),
        Err(error) => {
            return unary_error(tracker, &error.to_status(), &error, HeaderMap::new(), None)
        }
    };
    match kind {
        Some((Shape::Stream, codec)) => {
            let format = ResponseFormat { codec, shape };
            stream(state, format, request, shutdown, tracker).await
        }
        Some((Shape::Unary, codec)) => {
            let (parts, body) = request.into_parts();
            let prepared = async {
                let target = target(&state, &parts, codec, Shape::Unary, &mut tracker)?;
                let limit = state.config.max_body_bytes;
                let body = read_body(&parts.headers, body, limit).await?;
                state
                    .metrics
                    .add_bytes_in(Protocol::Connect, body.len() as u64);
                let encoding = Encoding::from_header(&parts.headers, "content-encoding")?;
                let body = encoding.decompress(body, limit)?;
                Ok::<_, GatewayError>((target, body))
            }
            .await;
            match prepared {
                Ok((target, body)) => {
                    let format = ResponseFormat { codec, shape };
                    unary(&state, format, target, body, &parts.headers, tracker).await
                }
                Err(error) => {
                    unary_error(tracker, &error.to_status(), &error, HeaderMap::new(), None)
                }
            }
        }
        None => {
            let (parts, _body) = request.into_parts();
            match get_request(&state, &parts, &mut tracker) {
                Ok((codec, target, body)) => {
                    let format = ResponseFormat { codec, shape };
                    unary(&state, format, target, body, &parts.headers, tracker).await
                }
                Err(error) => {
                    unary_error(tracker, &error.to_status(), &error, HeaderMap::new(), None)
                }
            }
        }
    }
}

/// Resolve the path; check the protocol version header and the method's streaming kind.
fn target(
    state: &GatewayState,
    parts: &http::request::Parts,
    codec: Codec,
    shape: Shape,
    tracker: &mut CallTracker,
) -> Result<Target, GatewayError> {
    for version in parts.headers.get_all("connect-protocol-version") {
        if version.as_bytes() != b"1" {
            return Err(GatewayError::BadRequest(format!(
                "Connect-Protocol-Version must be 1, got {version:?}"
            )));
        }
    }
    let path = method_path(parts.uri.path()).map_err(|_| {
        GatewayError::BadRequest(format!(
            "{:?} is not a Connect method path (/package.Service/Method)",
            parts.uri.path()
        ))
    })?;
    let (service, name) = path
        .as_str()
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", ""));
    let method = match state.resolve_method(service, name) {
        Ok(resolved) => {
            tracker.set_method(Arc::clone(&resolved.label));
            Some(resolved)
        }
        // Binary needs no schema: the bytes pass through to whatever the upstream serves
        // (the policy is asked below, by path). Its metrics stay under `unresolved`, so
        // unknown paths cannot add series.
        Err(GatewayError::Lookup(_)) if codec == Codec::Proto => None,
        Err(error) => return Err(error),
    };
    if let Some(ResolvedMethod {
        descriptor: method, ..
    }) = &method
    {
        let streaming = method.is_server_streaming() || method.is_client_streaming();
        if streaming && shape == Shape::Unary {
            return Err(GatewayError::UnsupportedMediaType {
                content_type: format!(
                    "{} (for the {} method {})",
                    unary_content_type(codec),
                    kind_name(method),
                    method.full_name()
                ),
                supported: STREAM_CONTENT_TYPES,
            });
        }
        if !streaming && shape == Shape::Stream {
            return Err(GatewayError::UnsupportedMediaType {
                content_type: format!(
                    "{} (for the unary method {})",
                    stream_content_type(codec),
                    method.full_name()
                ),
                supported: UNARY_CONTENT_TYPES,
            });
        }
        // Over HTTP/1.1 no answer can be read before the request body ends, so a
        // bidirectional client waiting for an answer to its first message would wait forever:
        // refused at once instead.
        if parts.version < http::Version::HTTP_2 {
            refuse_streaming(method, Carries::AllButBidi, "Connect over HTTP/1.1")?;
        }
    }
    // A leniently spelled name (`LiveLink/GetCamera`) goes upstream under its full name.
    match method {
        Some(resolved) => Ok(Target {
            path: resolved.path,
            method: Some(resolved.descriptor),
        }),
        None => {
            state.authorize(path.as_str())?;
            Ok(Target { path, method: None })
        }
    }
}

fn unary_content_type(codec: Codec) -> &'static str {
    match codec {
        Codec::Json => "application/json",
        Codec::Proto => "application/proto",
    }
}

fn stream_content_type(codec: Codec) -> &'static str {
    match codec {
        Codec::Json => "application/connect+json",
        Codec::Proto => "application/connect+proto",
    }
}

/// The call's deadline: `Connect-Timeout-Ms`, capped by the gateway's default. `0` is a
/// deadline that has passed (as Connect's reference implementation reads it), not "none".
fn timeout(state: &GatewayState, headers: &HeaderMap) -> Result<Option<Duration>, GatewayError> {
    let requested = match headers.get("connect-timeout-ms") {
        None => None,
        Some(value) => {
            let text = value.to_str().unwrap_or("").trim();
            if text.is_empty()
                || text.len() > MAX_TIMEOUT_DIGITS
                || !text.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(GatewayError::BadRequest(format!(
                    "Connect-Timeout-Ms must be a whole number of milliseconds of at most 10 digits, got {value:?}"
                )));
            }
            text.parse::<u64>().ok().map(Duration::from_millis)
        }
    };
    effective_timeout(&state.upstream, requested)
}

/// A Connect GET: the request message is in the query.
fn get_request(
    state: &GatewayState,
    parts: &http::request::Parts,
    tracker: &mut CallTracker,
) -> Result<(Codec, Target, Bytes), GatewayError> {
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .collect::<HashMap<String, String>>()
        })
        .unwrap_or_default();
    let codec = match query.get("encoding").map(String::as_str) {
        Some("json") => Codec::Json,
        Some("proto") => Codec::Proto,
        other => {
            return Err(GatewayError::UnsupportedMediaType {
                content_type: format!("encoding={}", other.unwrap_or("(absent)")),
                supported: "encoding=json, encoding=proto",
            })
        }
    };
    if let Some(version) = query.get("connect") {
        if version != "v1" {
            return Err(GatewayError::BadRequest(format!(
                "query parameter connect must be v1, got {version:?}"
            )));
        }
    }
    let target = target(state, parts, codec, Shape::Unary, tracker)?;
    let side_effect_free = target
        .method
        .as_ref()
        .is_some_and(octaneweb_schema::has_no_side_effects);
    if !side_effect_free {
        return Err(GatewayError::MethodNotAllowed {
            method: "GET".into(),
            allowed: "POST (GET only for methods marked idempotency_level = NO_SIDE_EFFECTS)",
        });
    }
    let raw = query.get("message").map(String::as_str).unwrap_or("");
    let limit = state.config.max_body_bytes;
    if raw.len() > limit.saturating_mul(2) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let message = if query.get("base64").is_some_and(|v| v == "1") {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw.trim_end_matches('='))
            .map_err(|e| {
                GatewayError::BadRequest(format!(
                    "query parameter message is not valid URL-safe base64: {e}"
                ))
            })?
    } else {
        raw.as_bytes().to_vec()
    };
    let encoding = match query.get("compression") {
        None => Encoding::Identity,
        Some(name) => {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(name) {
                headers.insert("compression", value);
            }
            Encoding::from_header(&headers, "compression")?
        }
    };
    let body = encoding.decompress(Bytes::from(message), limit)?;
    Ok((codec, target, body))
}

/// Query pairs, percent-decoded (`+` is a space, as in forms).
fn url_pairs(query: &str) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}").parse().unwrap_or_default(),
    )
    .map(|q| q.0)
    .unwrap_or_default()
}

/// The request message as protobuf bytes.
fn request_bytes(codec: Codec, target: &Target, body: Bytes) -> Result<Bytes, GatewayError> {
    match (codec, &target.method) {
        (Codec::Proto, _) => Ok(body),
        (Codec::Json, Some(method)) => {
            let message = json_to_message(&method.input(), &body)?;
            Ok(Bytes::from(message.encode_to_vec()))
        }
        (Codec::Json, None) => Err(GatewayError::BadRequest(
            "JSON needs a method the schema knows".into(),
        )),
    }
}

/// A response message as the client's codec (and, for JSON, shape) wants it.
fn response_bytes(
    format: ResponseFormat,
    output: Option<&MessageDescriptor>,
    payload: Bytes,
) -> Result<Bytes, Status> {
    match (format.codec, output) {
        (Codec::Proto, _) => Ok(payload),
        (Codec::Json, Some(output)) => {
            let message = DynamicMessage::decode(output.clone(), payload).map_err(|e| {
                Status::internal(format!(
                    "the upstream's response is not a valid {}: {e}",
                    output.full_name()
                ))
            })?;
            let mut out = Vec::with_capacity(256);
            write_message_json(&message, format.shape, &mut out);
            Ok(Bytes::from(out))
        }
        (Codec::Json, None) => Err(Status::internal("JSON needs a method the schema knows")),
    }
}

/// Start the upstream call with one request message.
async fn start_call(
    state: &GatewayState,
    target: &Target,
    message: Bytes,
    headers: &HeaderMap,
    timeout: Option<Duration>,
    trace: Option<&CallTrace>,
    shutdown: Option<ShutdownSignal>,
) -> Result<forward::Reply, GatewayError> {
    let mut body = BytesMut::with_capacity(message.len() + 5);
    encode_frame(0, &message, &mut body)?;
    let call = UpstreamCall {
        path: target.path.clone(),
        content_type: HeaderValue::from_static("application/grpc+proto"),
        metadata: request_metadata(headers),
        timeout,
        trace: trace.cloned(),
    };
    let body = tonic::body::Body::new(http_body_util::Full::new(body.freeze()));
    let response = forward::send(&state.upstream, call, body).await?;
    Ok(reply(
        response,
        ReplyOptions {
            max_message_bytes: state.upstream.config().max_message_bytes,
            shutdown: shutdown.map(ShutdownSignal::boxed),
            request_failure: None,
        },
    )?)
}

/// Response metadata for the client: the upstream's headers minus gRPC protocol headers.
fn response_metadata(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !is_hop_by_hop(name)
            && !is_status_header(name)
            && !matches!(
                name.as_str(),
                "content-type" | "grpc-encoding" | "grpc-accept-encoding" | "date"
            )
        {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Trailers as `trailer-`-prefixed headers (status headers left out).
fn prefixed_trailers(trailers: &HeaderMap, into: &mut HeaderMap) {
    for (name, value) in trailers {
        if is_status_header(name) {
            continue;
        }
        if let Ok(prefixed) = HeaderName::from_bytes(format!("trailer-{name}").as_bytes()) {
            into.append(prefixed, value.clone());
        }
    }
}

async fn unary(
    state: &GatewayState,
    format: ResponseFormat,
    target: Target,
    body: Bytes,
    headers: &HeaderMap,
    tracker: CallTracker,
) -> Response {
    let accept = compression::accepted(headers, "accept-encoding");
    let outcome = async {
        let timeout = timeout(state, headers)?;
        let message = request_bytes(format.codec, &target, body)?;
        let trace = tracker.trace();
        let reply = start_call(state, &target, message, headers, timeout, trace, None).await?;
        Ok::<_, GatewayError>(reply)
    }
    .await;
    let mut reply = match outcome {
        Ok(reply) => reply,
        Err(error) => {
            return unary_error(tracker, &error.to_status(), &error, HeaderMap::new(), None)
        }
    };
    let mut answer_headers = response_metadata(&reply.headers);
    let mut messages = Vec::with_capacity(1);
    let (status, trailers) = loop {
        match reply.events.next().await {
            Some(ReplyEvent::Message(payload)) => messages.push(payload),
            Some(ReplyEvent::End(status, trailers)) => break (status, trailers),
            None => {
                let status = Status::internal("the upstream's answer ended without a status");
                let trailers = crate::wire::metadata::status_trailers(&status);
                break (status, trailers);
            }
        }
    };
    prefixed_trailers(&trailers, &mut answer_headers);
    let schema = Some((state.schema.pool(), format.shape));
    if status.code() != Code::Ok {
        let error = GatewayError::Upstream(status.clone());
        return unary_error(tracker, &status, &error, answer_headers, schema);
    }
    let payload = match (messages.pop(), messages.is_empty()) {
        (Some(payload), true) => payload,
        (found, _) => {
            let count = messages.len() + usize::from(found.is_some());
            let status = Status::internal(format!(
                "the upstream answered a unary call with {count} messages"
            ));
            let error = GatewayError::Upstream(status.clone());
            return unary_error(tracker, &status, &error, answer_headers, schema);
        }
    };
    let output = target.method.as_ref().map(|m| m.output());
    let body = match response_bytes(format, output.as_ref(), payload) {
        Ok(body) => body,
        Err(status) => {
            let error = GatewayError::Upstream(status.clone());
            return unary_error(tracker, &status, &error, answer_headers, schema);
        }
    };
    let body = if compression::worth_compressing(accept, &body) {
        answer_headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(accept.as_str()),
        );
        accept.compress(&body)
    } else {
        body
    };
    answer_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(unary_content_type(format.codec)),
    );
    state
        .metrics
        .add_bytes_out(Protocol::Connect, body.len() as u64);
    tracker.finish(Code::Ok, "");
    let mut response = Response::new(Body::from(body));
    *response.headers_mut() = answer_headers;
    response
}

/// The Connect error JSON for `status`. Details the upstream attached
/// (`grpc-status-details-bin`, a `google.rpc.Status`) become Connect's
/// `{"type", "value": <base64>}` entries, with `"debug"` (the detail as JSON in the call's
/// shape) when `schema` is given and it, or the standard `google.rpc` details, know the type.
fn error_json(status: &Status, schema: Option<(&DescriptorPool, JsonShape)>) -> serde_json::Value {
    let mut error = serde_json::json!({ "code": connect_code_name(status.code()) });
    if !status.message().is_empty() {
        error["message"] = serde_json::Value::from(status.message());
    }
    let (pool, shape) = match schema {
        Some((pool, shape)) => (Some(pool), shape),
        None => (None, JsonShape::CANONICAL),
    };
    error["details"] = serde_json::Value::Array(crate::wire::status_details::connect_details(
        status, pool, shape,
    ));
    error
}

/// A refusal before the call started (see [`super::refusal`]): Connect's error JSON with
/// the code's HTTP status, which unary and streaming Connect clients both read.
pub(crate) fn refusal(error: &GatewayError) -> Response {
    let body = serde_json::to_vec(&error_json(&error.to_status(), None)).unwrap_or_default();
    let mut response = (error.connect_http_status(), body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let GatewayError::RateLimited { .. } = error {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// A unary failure: Connect error JSON with the code's HTTP status (or the precise HTTP
/// status of a protocol-level refusal: 405, 415).
fn unary_error(
    tracker: CallTracker,
    status: &Status,
    error: &GatewayError,
    mut headers: HeaderMap,
    schema: Option<(&DescriptorPool, JsonShape)>,
) -> Response {
    tracker.finish(status.code(), status.message());
    let http_status = error.connect_http_status();
    if let GatewayError::MethodNotAllowed { allowed, .. } = error {
        let allow = if allowed.starts_with("POST (") {
            "POST"
        } else {
            allowed
        };
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&error_json(status, schema)).unwrap_or_default();
    let mut response = (http_status, body).into_response();
    response.headers_mut().extend(headers);
    response
}

async fn stream(
    state: GatewayState,
    format: ResponseFormat,
    request: Request,
    shutdown: Option<ShutdownSignal>,
    mut tracker: CallTracker,
) -> Response {
    let (parts, body) = request.into_parts();
    let accept = compression::accepted(&parts.headers, "connect-accept-encoding");
    let http1 = parts.version < http::Version::HTTP_2;
    let prepared = async {
        let target = target(&state, &parts, format.codec, Shape::Stream, &mut tracker)?;
        let timeout = timeout(&state, &parts.headers)?;
        let encoding = Encoding::from_header(&parts.headers, "connect-content-encoding")?;
        let limit = state.config.max_body_bytes;
        // Client and bidirectional streams (and methods the schema does not know, whose
        // kind only the upstream knows) go upstream message by message as they arrive.
        let request_stream = target
            .method
            .as_ref()
            .is_none_or(MethodDescriptor::is_client_streaming);
        if request_stream {
            let call = UpstreamCall {
                path: target.path.clone(),
                content_type: HeaderValue::from_static("application/grpc+proto"),
                metadata: request_metadata(&parts.headers),
                timeout,
                trace: tracker.trace().cloned(),
            };
            let framing = RequestFraming {
                encoding,
                encoding_header: "connect-content-encoding",
                max_message_bytes: limit.min(state.upstream.config().max_message_bytes),
                json_input: match format.codec {
                    Codec::Json => target.method.as_ref().map(MethodDescriptor::input),
                    Codec::Proto => None,
                },
            };
            let reply =
                forward_stream(&state, call, body, framing, Protocol::Connect, shutdown).await?;
            return Ok::<_, GatewayError>((target, reply));
        }
        let body = read_body(&parts.headers, body, limit).await?;
        state
            .metrics
            .add_bytes_in(Protocol::Connect, body.len() as u64);
        let frames = FrameDecoder::decode_all(&body, limit)?;
        if frames.len() != 1 {
            return Err(FramingError::MessageCount(format!(
                "a server-streaming call takes exactly one request message, got {}",
                frames.len()
            ))
            .into());
        }
        let mut message = Bytes::new();
        for frame in frames {
            message = compression::request_message(
                frame,
                encoding,
                limit,
                "connect-content-encoding",
                "request envelopes carry a message, flags 0x00 or 0x01",
            )?;
        }
        let message = request_bytes(format.codec, &target, message)?;
        let (headers, trace) = (&parts.headers, tracker.trace());
        let reply = start_call(&state, &target, message, headers, timeout, trace, shutdown).await?;
        Ok::<_, GatewayError>((target, reply))
    }
    .await;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(stream_content_type(format.codec)),
    );
    headers.insert(
        HeaderName::from_static("connect-accept-encoding"),
        HeaderValue::from_static(compression::SUPPORTED),
    );
    let (target, reply) = match prepared {
        Ok(ok) => ok,
        // Refusals of the request's form itself are HTTP-level, as for unary calls.
        Err(
            error @ (GatewayError::UnsupportedMediaType { .. }
            | GatewayError::MethodNotAllowed { .. }),
        ) => return unary_error(tracker, &error.to_status(), &error, HeaderMap::new(), None),
        Err(error) => {
            let status = error.to_status();
            tracker.finish(status.code(), status.message());
            // A refused bidirectional call over HTTP/1.1: the client may still be sending
            // (and never end its body), so the connection ends with this answer.
            if http1 && matches!(error, GatewayError::UnsupportedStreaming { .. }) {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            let end = end_of_stream(&status, &HeaderMap::new(), None);
            let mut response = Response::new(Body::from(end));
            *response.headers_mut() = headers;
            return response;
        }
    };
    headers.extend(response_metadata(&reply.headers));
    if accept == Encoding::Gzip {
        headers.insert(
            HeaderName::from_static("connect-content-encoding"),
            HeaderValue::from_static("gzip"),
        );
    }
    let output = target.method.as_ref().map(|m| m.output());
    let body = stream_body(
        format,
        output,
        reply.events,
        accept,
        (Arc::clone(&state.metrics), state.schema.pool().clone()),
        tracker,
    );
    let mut response = Response::new(Body::from_stream(body));
    *response.headers_mut() = headers;
    response
}

fn stream_body(
    format: ResponseFormat,
    output: Option<MessageDescriptor>,
    mut events: futures::stream::BoxStream<'static, ReplyEvent>,
    accept: Encoding,
    (metrics, pool): (Arc<Metrics>, DescriptorPool),
    tracker: CallTracker,
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
    async_stream::stream! {
        let mut tracker = Some(tracker);
        while let Some(event) = events.next().await {
            match event {
                ReplyEvent::Message(payload) => {
                    let envelope = response_bytes(format, output.as_ref(), payload).and_then(|body| {
                        let mut out = BytesMut::new();
                        let written = if compression::worth_compressing(accept, &body) {
                            encode_frame(FLAG_COMPRESSED, &accept.compress(&body), &mut out)
                        } else {
                            encode_frame(0, &body, &mut out)
                        };
                        written
                            .map(|()| out.freeze())
                            .map_err(|e| Status::resource_exhausted(e.to_string()))
                    });
                    match envelope {
                        Ok(envelope) => {
                            metrics.add_bytes_out(Protocol::Connect, envelope.len() as u64);
                            yield Ok(envelope);
                        }
                        Err(status) => {
                            if let Some(tracker) = tracker.take() {
                                tracker.finish(status.code(), status.message());
                            }
                            yield Ok(end_of_stream(&status, &HeaderMap::new(), None));
                            break;
                        }
                    }
                }
                ReplyEvent::End(status, trailers) => {
                    if let Some(tracker) = tracker.take() {
                        tracker.finish(status.code(), status.message());
                    }
                    yield Ok(end_of_stream(&status, &trailers, Some((&pool, format.shape))));
                    break;
                }
            }
        }
    }
}

/// The end-of-stream envelope: `{"error":{...},"metadata":{"name":["value"]}}`.
fn end_of_stream(
    status: &Status,
    trailers: &HeaderMap,
    schema: Option<(&DescriptorPool, JsonShape)>,
) -> Bytes {
    let mut metadata = serde_json::Map::new();
    for (name, value) in trailers {
        if is_status_header(name) {
            continue;
        }
        let entry = metadata
            .entry(name.as_str().to_owned())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(values) = entry {
            values.push(serde_json::Value::from(
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
    }
    let mut end = serde_json::json!({ "metadata": metadata });
    if status.code() != Code::Ok {
        end["error"] = error_json(status, schema);
    }
    let json = serde_json::to_vec(&end).unwrap_or_default();
    let mut out = BytesMut::with_capacity(json.len() + 5);
    // An end-of-stream message is small; it always fits a frame.
    let _ = encode_frame(FLAG_END_STREAM, &json, &mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_stream_carries_error_and_metadata() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("5"));
        trailers.insert("x-extra", HeaderValue::from_static("a"));
        let end = end_of_stream(&Status::not_found("gone"), &trailers, None);
        assert_eq!(end[0], FLAG_END_STREAM);
        let json: serde_json::Value = serde_json::from_slice(&end[5..]).unwrap();
        assert_eq!(json["error"]["code"], "not_found");
        assert_eq!(json["error"]["message"], "gone");
        assert_eq!(json["metadata"]["x-extra"][0], "a");
        assert!(json["metadata"].get("grpc-status").is_none());
        let ok = end_of_stream(&Status::new(Code::Ok, ""), &HeaderMap::new(), None);
        let json: serde_json::Value = serde_json::from_slice(&ok[5..]).unwrap();
        assert!(json.get("error").is_none());
    }

    #[test]
    fn status_details_become_connect_details() {
        use crate::wire::status_details::{AnyDetail as RpcAny, RpcStatus};
        let details = RpcStatus {
            code: 5,
            message: "gone".into(),
            details: vec![RpcAny {
                type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                value: vec![1, 2, 3],
            }],
        }
        .encode_to_vec();
        let status = Status::with_details(Code::NotFound, "gone", details.into());
        let json = error_json(&status, None);
        assert_eq!(json["details"][0]["type"], "google.rpc.ErrorInfo");
        assert_eq!(json["details"][0]["value"], "AQID");
        assert_eq!(
            error_json(&Status::not_found("x"), None)["details"],
            serde_json::json!([])
        );
    }

    #[test]
    fn known_details_carry_a_debug_form_in_the_calls_shape() {
        use tonic_types::{ErrorDetails, StatusExt as _};
        let status = Status::with_error_details(
            Code::FailedPrecondition,
            "not now",
            ErrorDetails::with_error_info("RENDER_BUSY", "octane", [("gpu".into(), "0".into())]),
        );
        let pool = DescriptorPool::new();
        let json = error_json(&status, Some((&pool, JsonShape::CANONICAL)));
        let detail = &json["details"][0];
        assert_eq!(detail["type"], "google.rpc.ErrorInfo");
        assert_eq!(detail["debug"]["reason"], "RENDER_BUSY");
        assert_eq!(detail["debug"]["metadata"]["gpu"], "0");
        // The bytes stay what a client decodes; without a schema there is no debug form.
        assert!(detail["value"].as_str().is_some_and(|v| !v.is_empty()));
        assert!(error_json(&status, None)["details"][0]
            .get("debug")
            .is_none());
    }

    #[test]
    fn query_pairs_are_percent_decoded() {
        let pairs = url_pairs("connect=v1&message=%7B%22a%22%3A1%7D&encoding=json");
        assert!(pairs.contains(&("message".to_owned(), "{\"a\":1}".to_owned())));
    }
}
