//! The `/ws` frame formats: client text frames (JSON), server text frames, and the binary
//! message frame. docs/websocket.md describes them for client authors.

use bytes::{BufMut as _, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use tonic::metadata::MetadataMap;
use tonic::Code;

use crate::wire::codes::code_name;

/// Longest call id, in bytes of its text (a number's decimal digits).
pub const MAX_ID_BYTES: usize = 128;

/// Binary frame kind: one protobuf message of a call (both directions).
pub const KIND_MESSAGE: u8 = 0x01;
/// Binary frame kind: the client has no more messages for the call (no payload).
pub const KIND_HALF_CLOSE: u8 = 0x02;
/// Binary frame kind: the client cancels the call (no payload).
pub const KIND_CANCEL: u8 = 0x03;

/// A call id as the client wrote it: compared by its text (so `7` and `"7"` are one call),
/// echoed back exactly as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRef {
    /// The id's text: the string itself, or a number's decimal digits.
    pub key: Box<str>,
    /// The id as JSON, ready to be written into server frames.
    pub echo: std::sync::Arc<str>,
}

/// A client frame that could not be used. `id` is set when the frame named a usable id, so
/// the error can be attributed to that call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FrameError {
    /// The call the frame was about, if that much could be read.
    pub id: Option<CallRef>,
    /// What is wrong with the frame.
    pub message: String,
}

impl FrameError {
    fn new(id: Option<CallRef>, message: impl Into<String>) -> Self {
        FrameError {
            id,
            message: message.into(),
        }
    }
}

/// A parsed client text frame. Message payloads stay as raw JSON text borrowed from the
/// frame; the session turns them into protobuf once it knows the call's input type.
#[derive(Debug)]
pub enum ClientFrame<'a> {
    /// Start a call.
    Open(OpenFrame<'a>),
    /// One more request message for a client- or bidi-streaming call.
    Message {
        /// The call.
        id: CallRef,
        /// The message as JSON.
        message: &'a RawValue,
    },
    /// No more request messages.
    HalfClose {
        /// The call.
        id: CallRef,
    },
    /// Cancel the call.
    Cancel {
        /// The call.
        id: CallRef,
    },
}

/// `{"id", "method", "message"?, "metadata"?, "timeout_ms"?, "binary"?, "json_names"?,
/// "json_defaults"?}`.
#[derive(Debug)]
pub struct OpenFrame<'a> {
    /// The new call's id.
    pub id: CallRef,
    /// The method, leniently named (`LiveLink/GetCamera`, `pkg.Service/Method`, ...).
    pub method: String,
    /// The first (for unary and server streaming: the only) request message.
    pub message: Option<&'a RawValue>,
    /// Request metadata (gRPC headers).
    pub metadata: Vec<(String, String)>,
    /// Deadline in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Answer with binary message frames instead of JSON.
    pub binary: bool,
    /// The call's choice of field names in JSON answers (`proto`, `camel`), as given.
    pub json_names: Option<String>,
    /// The call's choice of default values in JSON answers (`emit`, `omit`), as given.
    pub json_defaults: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: Option<String>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    metadata: Option<std::collections::BTreeMap<String, String>>,
    timeout_ms: Option<u64>,
    half_close: Option<bool>,
    cancel: Option<bool>,
    binary: Option<bool>,
    json_names: Option<String>,
    json_defaults: Option<String>,
}

#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
}

/// Parse a client text frame.
pub fn parse_text(text: &str) -> Result<ClientFrame<'_>, FrameError> {
    if !text.trim_start().starts_with('{') {
        return Err(FrameError::new(
            None,
            "a frame must be a JSON object such as {\"id\":1,\"method\":\"LiveLink/GetCamera\"}",
        ));
    }
    let envelope: Envelope<'_> = match serde_json::from_str(text) {
        Ok(envelope) => envelope,
        Err(error) => {
            // Attribute the error to a call if the id at least is readable.
            let id = serde_json::from_str::<IdOnly<'_>>(text)
                .ok()
                .and_then(|f| f.id)
                .and_then(|raw| parse_id(raw).ok());
            return Err(FrameError::new(id, format!("malformed frame: {error}")));
        }
    };
    let raw_id = envelope
        .id
        .ok_or_else(|| FrameError::new(None, "frame has no \"id\""))?;
    let id = parse_id(raw_id).map_err(|message| FrameError::new(None, message))?;
    let bad = |message: &str| Err(FrameError::new(Some(id.clone()), message.to_owned()));

    if let Some(method) = envelope.method {
        if envelope.half_close.is_some() || envelope.cancel.is_some() {
            return bad("an open frame (with \"method\") cannot also half-close or cancel");
        }
        let metadata = envelope.metadata.unwrap_or_default().into_iter().collect();
        return Ok(ClientFrame::Open(OpenFrame {
            id,
            method,
            message: envelope.message,
            metadata,
            timeout_ms: envelope.timeout_ms,
            binary: envelope.binary.unwrap_or(false),
            json_names: envelope.json_names,
            json_defaults: envelope.json_defaults,
        }));
    }
    if envelope.metadata.is_some()
        || envelope.timeout_ms.is_some()
        || envelope.binary.is_some()
        || envelope.json_names.is_some()
        || envelope.json_defaults.is_some()
    {
        return bad("\"metadata\", \"timeout_ms\", \"binary\", \"json_names\" and \"json_defaults\" belong in the open frame (the one with \"method\")");
    }
    match (envelope.message, envelope.half_close, envelope.cancel) {
        (Some(message), None, None) => Ok(ClientFrame::Message { id, message }),
        (None, Some(true), None) => Ok(ClientFrame::HalfClose { id }),
        (None, None, Some(true)) => Ok(ClientFrame::Cancel { id }),
        (None, None, None) => {
            bad("frame has none of \"method\", \"message\", \"half_close\", \"cancel\"")
        }
        (None, Some(false), None) | (None, None, Some(false)) => {
            bad("\"half_close\" and \"cancel\" can only be true")
        }
        _ => bad("a frame carries one of \"message\", \"half_close\", \"cancel\""),
    }
}

/// A call id: a non-empty string of at most [`MAX_ID_BYTES`] bytes, or an integer.
fn parse_id(raw: &RawValue) -> Result<CallRef, String> {
    let text = raw.get();
    if text.starts_with('"') {
        let key: String =
            serde_json::from_str(text).map_err(|e| format!("\"id\" is not a valid string: {e}"))?;
        check_key(&key)?;
        return Ok(CallRef {
            key: key.into_boxed_str(),
            echo: std::sync::Arc::from(text),
        });
    }
    let number = if let Ok(n) = text.parse::<u64>() {
        n.to_string()
    } else if let Ok(n) = text.parse::<i64>() {
        n.to_string()
    } else if is_json_integer(text) {
        // The error frame quotes the id; a huge one is described, not repeated.
        let shown = if text.len() <= 40 {
            text.to_owned()
        } else {
            format!(
                "(an integer of {} digits)",
                text.trim_start_matches('-').len()
            )
        };
        return Err(format!(
            "\"id\" {shown} is out of range: integer ids must be from {} to {} (use a string id for other values)",
            i64::MIN,
            u64::MAX
        ));
    } else {
        return Err(format!("\"id\" must be a string or an integer, got {text}"));
    };
    Ok(CallRef {
        echo: std::sync::Arc::from(number.as_str()),
        key: number.into_boxed_str(),
    })
}

/// True for JSON's integer form (`-?digits`, no fraction or exponent), whatever its size.
fn is_json_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("\"id\" must not be empty".into());
    }
    if key.len() > MAX_ID_BYTES {
        return Err(format!(
            "\"id\" is {} bytes long; the limit is {MAX_ID_BYTES}",
            key.len()
        ));
    }
    Ok(())
}

/// A parsed client binary frame.
#[derive(Debug, PartialEq, Eq)]
pub enum BinaryFrame {
    /// One encoded request message.
    Message {
        /// The call's id text.
        key: Box<str>,
        /// The protobuf bytes.
        payload: Bytes,
    },
    /// No more request messages.
    HalfClose {
        /// The call's id text.
        key: Box<str>,
    },
    /// Cancel the call.
    Cancel {
        /// The call's id text.
        key: Box<str>,
    },
}

/// Parse a client binary frame: kind (1 byte), id length n (1 byte), id (n bytes of UTF-8),
/// payload (the rest).
pub fn parse_binary(frame: Bytes) -> Result<BinaryFrame, String> {
    let (kind, len) = match frame.get(..2) {
        Some(&[kind, len]) => (kind, usize::from(len)),
        _ => return Err("binary frame shorter than its 2-byte header".into()),
    };
    let id_bytes = frame
        .get(2..2 + len)
        .ok_or_else(|| format!("binary frame ends inside its {len}-byte call id"))?;
    let key = std::str::from_utf8(id_bytes)
        .map_err(|_| "binary frame's call id is not UTF-8".to_owned())?;
    check_key(key)?;
    let key: Box<str> = key.into();
    let payload = frame.slice(2 + len..);
    match kind {
        KIND_MESSAGE => Ok(BinaryFrame::Message { key, payload }),
        KIND_HALF_CLOSE | KIND_CANCEL if !payload.is_empty() => Err(format!(
            "binary frame of kind {kind} carries {} payload bytes; it takes none",
            payload.len()
        )),
        KIND_HALF_CLOSE => Ok(BinaryFrame::HalfClose { key }),
        KIND_CANCEL => Ok(BinaryFrame::Cancel { key }),
        other => Err(format!(
            "unknown binary frame kind {other} (1 message, 2 half-close, 3 cancel)"
        )),
    }
}

/// A server binary message frame for the call whose id text is `key`.
pub fn binary_message(key: &str, payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(2 + key.len() + payload.len());
    frame.put_u8(KIND_MESSAGE);
    // Keys are at most MAX_ID_BYTES (< 256) long: checked when the call was opened.
    frame.put_u8(u8::try_from(key.len()).unwrap_or(u8::MAX));
    frame.put_slice(key.as_bytes());
    frame.put_slice(payload);
    frame.freeze()
}

/// `{"id":<id>,"headers":{...}}`.
pub fn headers_frame(id: &CallRef, headers: &MetadataMap) -> String {
    let mut frame = String::with_capacity(64);
    frame.push_str("{\"id\":");
    frame.push_str(&id.echo);
    frame.push_str(",\"headers\":");
    frame.push_str(&metadata_json(headers).to_string());
    frame.push('}');
    frame
}

/// `{"id":<id>,"message":` + the message JSON written by `write` + `}`.
pub fn message_frame(id: &CallRef, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut frame = Vec::with_capacity(128);
    frame.extend_from_slice(b"{\"id\":");
    frame.extend_from_slice(id.echo.as_bytes());
    frame.extend_from_slice(b",\"message\":");
    write(&mut frame);
    frame.push(b'}');
    frame
}

/// `{"id":<id>,"end":{"code","message","details","trailers"}}`.
pub fn end_frame(
    id: &CallRef,
    code: Code,
    message: &str,
    details: serde_json::Value,
    trailers: &MetadataMap,
) -> String {
    let end = serde_json::json!({
        "code": code_name(code),
        "message": message,
        "details": details,
        "trailers": trailers_json(trailers),
    });
    format!("{{\"id\":{},\"end\":{end}}}", id.echo)
}

/// Trailers without the ones the end frame already carries as `code`, `message`, `details`.
fn trailers_json(trailers: &MetadataMap) -> serde_json::Value {
    let mut json = metadata_json(trailers);
    if let Some(object) = json.as_object_mut() {
        for key in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
            object.remove(key);
        }
    }
    json
}

/// `{"error":{"code","message","id"?}}`: a frame the gateway could not use.
pub fn error_frame(id: Option<&CallRef>, code: Code, message: &str) -> String {
    let mut error = serde_json::json!({
        "code": code_name(code),
        "message": message,
    });
    if let Some(id) = id {
        // The echo is valid JSON (it came from the client's frame or was made from a number).
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&id.echo) {
            error["id"] = value;
        }
    }
    serde_json::json!({ "error": error }).to_string()
}

/// Response headers that describe the HTTP/2 response, not the call: `content-type` is always
/// gRPC's, `date` is the server's clock, the encodings are the gateway's business, and
/// hop-by-hop headers belong to one connection. They are left out of `headers` and
/// `trailers`, which carry the call's metadata only.
fn is_transport_header(name: &str) -> bool {
    matches!(
        name,
        "content-type" | "date" | "grpc-encoding" | "grpc-accept-encoding"
    ) || crate::wire::metadata::is_hop_by_hop_name(name)
}

/// Metadata as a JSON object: ASCII values as text, `-bin` values as base64; a key sent
/// more than once keeps its values joined with ", " (the HTTP convention). Transport
/// headers (`content-type`, `date`, ...) are left out.
pub fn metadata_json(metadata: &MetadataMap) -> serde_json::Value {
    use base64::Engine as _;
    use tonic::metadata::KeyAndValueRef;
    let mut object = serde_json::Map::new();
    for entry in metadata.iter() {
        let name = match &entry {
            KeyAndValueRef::Ascii(key, _) => key.as_str(),
            KeyAndValueRef::Binary(key, _) => key.as_str(),
        };
        if is_transport_header(name) {
            continue;
        }
        let (key, value) = match entry {
            KeyAndValueRef::Ascii(key, value) => (
                key.as_str().to_owned(),
                String::from_utf8_lossy(value.as_encoded_bytes()).into_owned(),
            ),
            KeyAndValueRef::Binary(key, value) => {
                let bytes = value.to_bytes().unwrap_or_default();
                (
                    key.as_str().to_owned(),
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                )
            }
        };
        match object.get_mut(&key) {
            Some(serde_json::Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                object.insert(key, serde_json::Value::String(value));
            }
        }
    }
    serde_json::Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(frame: &ClientFrame<'_>) -> String {
        match frame {
            ClientFrame::Open(open) => open.id.key.to_string(),
            ClientFrame::Message { id, .. }
            | ClientFrame::HalfClose { id }
            | ClientFrame::Cancel { id } => id.key.to_string(),
        }
    }

    #[test]
    fn ids_are_strings_or_integers_echoed_as_given() {
        let frame = parse_text(r#"{"id":"a\"b","method":"X/y"}"#).unwrap();
        assert_eq!(key(&frame), "a\"b");
        let ClientFrame::Open(open) = frame else {
            panic!("open")
        };
        assert_eq!(&*open.id.echo, r#""a\"b""#);
        let frame = parse_text(r#"{"id":7,"cancel":true}"#).unwrap();
        assert_eq!(key(&frame), "7");
        let frame = parse_text(r#"{"id":-3,"half_close":true}"#).unwrap();
        assert_eq!(key(&frame), "-3");
        for bad in [
            r#"{"id":1.5,"cancel":true}"#,
            r#"{"id":"","cancel":true}"#,
            r#"{"id":null,"cancel":true}"#,
            r#"{"id":[1],"cancel":true}"#,
        ] {
            let error = parse_text(bad).unwrap_err();
            assert!(error.id.is_none(), "{bad}");
            assert!(error.message.contains("id"), "{bad}: {error}");
        }
        let long = format!(
            r#"{{"id":"{}","cancel":true}}"#,
            "x".repeat(MAX_ID_BYTES + 1)
        );
        assert!(parse_text(&long).unwrap_err().message.contains("limit"));
    }

    #[test]
    fn frame_kinds_and_their_errors() {
        let frame = parse_text(r#"{"id":1,"message":{"a":1}}"#).unwrap();
        let ClientFrame::Message { message, .. } = frame else {
            panic!("message")
        };
        assert_eq!(message.get(), r#"{"a":1}"#);
        let frame = parse_text(
            r#"{"id":1,"method":"LiveLink/GetCamera","metadata":{"k":"v"},"timeout_ms":50,"binary":true}"#,
        )
        .unwrap();
        let ClientFrame::Open(open) = frame else {
            panic!("open")
        };
        assert_eq!(open.metadata, vec![("k".to_owned(), "v".to_owned())]);
        assert_eq!(open.timeout_ms, Some(50));
        assert!(open.binary && open.message.is_none());

        let error = parse_text(r#"{"id":1,"bogus":2}"#).unwrap_err();
        assert_eq!(error.id.as_ref().map(|i| &*i.key), Some("1"));
        assert!(error.message.contains("bogus"), "{error}");
        let error = parse_text(r#"{"id":1}"#).unwrap_err();
        assert!(error.message.contains("none of"), "{error}");
        let error = parse_text(r#"{"id":1,"message":{},"cancel":true}"#).unwrap_err();
        assert!(error.message.contains("one of"), "{error}");
        assert!(parse_text("not json").unwrap_err().id.is_none());
        assert!(parse_text(r#"{"method":"A/b"}"#)
            .unwrap_err()
            .message
            .contains("no \"id\""));
        assert!(parse_text(r#"[1,2]"#)
            .unwrap_err()
            .message
            .contains("JSON object"));
    }

    #[test]
    fn binary_frames_round_trip_and_reject_bad_headers() {
        let frame = binary_message("call-1", &[8, 1]);
        assert_eq!(&frame[..], b"\x01\x06call-1\x08\x01");
        assert_eq!(
            parse_binary(frame).unwrap(),
            BinaryFrame::Message {
                key: "call-1".into(),
                payload: Bytes::from_static(&[8, 1])
            }
        );
        assert_eq!(
            parse_binary(Bytes::from_static(b"\x02\x017")).unwrap(),
            BinaryFrame::HalfClose { key: "7".into() }
        );
        assert_eq!(
            parse_binary(Bytes::from_static(b"\x03\x017")).unwrap(),
            BinaryFrame::Cancel { key: "7".into() }
        );
        for bad in [
            &b""[..],
            b"\x01",
            b"\x01\x05abc",
            b"\x01\x00",
            b"\x09\x017",
            b"\x03\x017x",
            b"\x01\x02\xff\xfe",
        ] {
            assert!(
                parse_binary(Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn integer_ids_past_u64_or_i64_are_out_of_range() {
        let error = |text: &str| parse_text(text).unwrap_err().message;
        let big = error(r#"{"id":1180591620717411303424,"method":"m"}"#);
        assert!(
            big.contains("1180591620717411303424 is out of range"),
            "{big}"
        );
        let low = error(r#"{"id":-9223372036854775809,"method":"m"}"#);
        assert!(low.contains("out of range"), "{low}");
        let huge = error(&format!(r#"{{"id":{},"method":"m"}}"#, "9".repeat(500)));
        assert!(huge.contains("an integer of 500 digits"), "{huge}");
        assert!(huge.len() < 200, "{huge}");
        for not_integer in ["1.5", "1e3", "true"] {
            let text = error(&format!(r#"{{"id":{not_integer},"method":"m"}}"#));
            assert!(text.contains("must be a string or an integer"), "{text}");
        }
        assert!(parse_text(r#"{"id":18446744073709551615,"method":"m"}"#).is_ok());
        assert!(parse_text(r#"{"id":-9223372036854775808,"method":"m"}"#).is_ok());
    }

    #[test]
    fn server_frames_are_json() {
        let id = CallRef {
            key: "7".into(),
            echo: "7".into(),
        };
        let mut trailers = MetadataMap::new();
        trailers.insert("x-a", "1".parse().unwrap());
        trailers.append("x-a", "2".parse().unwrap());
        trailers.insert_bin(
            "x-b-bin",
            tonic::metadata::MetadataValue::from_bytes(b"\x00\x01"),
        );
        let end: serde_json::Value = serde_json::from_str(&end_frame(
            &id,
            Code::NotFound,
            "gone",
            serde_json::json!([]),
            &trailers,
        ))
        .unwrap();
        assert_eq!(
            end,
            serde_json::json!({"id":7,"end":{"code":"NOT_FOUND","message":"gone","details":[],
                "trailers":{"x-a":"1, 2","x-b-bin":"AAE="}}})
        );
        let error: serde_json::Value =
            serde_json::from_str(&error_frame(Some(&id), Code::InvalidArgument, "bad")).unwrap();
        assert_eq!(error["error"]["id"], 7);
        let message = message_frame(&id, |out| out.extend_from_slice(b"{}"));
        assert_eq!(message, br#"{"id":7,"message":{}}"#);
    }
}
