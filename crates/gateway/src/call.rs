//! One call from the command line (`octaneweb call METHOD [JSON]`).
//!
//! Input: for unary and server-streaming methods one JSON object (empty = empty message);
//! for client- and bidirectional-streaming methods a JSON array of objects or a sequence of
//! objects (one per line), sent in order. Output: each response message as one line of
//! proto3 JSON in the [`JsonShape`] asked for ([`call`]: proto field names with defaults,
//! as the gateway's original-proxy routes write it).
//!
//! Exit codes ([`CallError::exit_code`]): 0 on success, otherwise the gRPC code number of the
//! failure (1 CANCELLED ... 16 UNAUTHENTICATED). Local problems map like the HTTP routes do:
//! an unknown service or method is NOT_FOUND (5), a bad method path or JSON input
//! INVALID_ARGUMENT (3), an unreachable upstream UNAVAILABLE (14), a deadline
//! DEADLINE_EXCEEDED (4).

use std::io::Write;
use std::time::Duration;

use futures::StreamExt as _;
use octaneweb_schema::{json_to_message, write_message_json, JsonShape, Schema};
use prost_reflect::DynamicMessage;
use tonic::Code;

use crate::context::call::{pump, upstream_request, StreamEvent};
use crate::error::GatewayError;
use crate::upstream::Upstream;
use crate::wire::codes::code_name;

/// Most request messages read for a streaming call.
pub const MAX_INPUT_MESSAGES: usize = 100_000;

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
    let descriptor = schema
        .find_method_path(method)
        .map_err(GatewayError::from)?;
    let input = descriptor.input();
    let call_id = uuid::Uuid::new_v4().to_string();

    let write = |out: &mut W, message: &DynamicMessage| -> Result<(), CallError> {
        let mut line = Vec::with_capacity(256);
        write_message_json(message, shape, &mut line);
        line.push(b'\n');
        out.write_all(&line)
            .and_then(|()| out.flush())
            .map_err(|e| CallError::new(Code::Internal, format!("writing the output: {e}")))
    };

    if descriptor.is_client_streaming() {
        let messages = parse_sequence(&input, json)?;
        let (request, options) =
            upstream_request(futures::stream::iter(messages), timeout, &call_id, None);
        if descriptor.is_server_streaming() {
            let response = upstream.streaming(&descriptor, request, options).await?;
            drain(response.into_inner(), out, write).await
        } else {
            let response = upstream
                .client_streaming(&descriptor, request, options)
                .await?;
            write(out, response.get_ref())
        }
    } else {
        let message = json_to_message(&input, json.as_bytes()).map_err(GatewayError::from)?;
        let (request, options) = upstream_request(message, timeout, &call_id, None);
        if descriptor.is_server_streaming() {
            let response = upstream
                .server_streaming(&descriptor, request, options)
                .await?;
            drain(response.into_inner(), out, write).await
        } else {
            let response = upstream.unary(&descriptor, request, options).await?;
            write(out, response.get_ref())
        }
    }
}

async fn drain<W: Write>(
    messages: tonic::Streaming<DynamicMessage>,
    out: &mut W,
    write: impl Fn(&mut W, &DynamicMessage) -> Result<(), CallError>,
) -> Result<(), CallError> {
    let events = pump(messages, None);
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        match event {
            StreamEvent::Message(message) => write(out, &message)?,
            StreamEvent::End(status) if status.code() == Code::Ok => return Ok(()),
            StreamEvent::End(status) => return Err(status.into()),
        }
    }
    Ok(())
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
