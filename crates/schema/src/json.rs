//! Proto3 JSON <-> [`DynamicMessage`] for the gateway's JSON routes.

use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};

use crate::error::JsonError;

/// Parse a JSON body into a message of type `desc` (proto3 JSON mapping).
///
/// Field names may be the proto names or the lowerCamelCase JSON names; unknown fields are an
/// error; 64-bit integers may be numbers or strings; enums may be names or numbers. An empty
/// body (or only whitespace) is the default message. Errors name the field path, e.g.
/// `objectPtr.handle: invalid type: ...`.
pub fn json_to_message(desc: &MessageDescriptor, json: &[u8]) -> Result<DynamicMessage, JsonError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(DynamicMessage::new(desc.clone()));
    }
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(&mut deserializer, &mut track);
    let message = DynamicMessage::deserialize_with_options(desc.clone(), tracked, &options)
        .map_err(|error| json_error(error, &track.path().to_string()))?;
    // Trailing characters after the value are as malformed as a broken value.
    deserializer.end().map_err(|error| json_error(error, ""))?;
    Ok(message)
}

/// Render a message as proto3 JSON with the PROTO field names (`object_ptr`, not `objectPtr`),
/// default values included (so `"result": false` is present), enums as names and 64-bit
/// integers as strings.
pub fn message_to_json(msg: &DynamicMessage) -> serde_json::Value {
    // Through the text form: serde_json's value serializer widens `float` fields to f64
    // (2.4 becomes 2.4000000953674316); its writer prints the shortest f32 form, as the
    // proto3 JSON mapping wants.
    let mut text = Vec::with_capacity(256);
    write_message_json(msg, &mut text);
    serde_json::from_slice(&text)
        .unwrap_or_else(|error| serde_json::json!({ "serialization_error": error.to_string() }))
}

/// Append [`message_to_json`]'s JSON text (compact, fields in declaration order) to `out`,
/// serializing straight into the buffer.
pub fn write_message_json(msg: &DynamicMessage, out: &mut Vec<u8>) {
    let options = proto_field_options();
    let start = out.len();
    let mut serializer = serde_json::Serializer::new(&mut *out);
    if let Err(error) = msg.serialize_with_options(&mut serializer, &options) {
        // Only a writer error could get here, and a Vec does not fail; keep the output
        // valid JSON regardless.
        out.truncate(start);
        let _ = serde_json::to_writer(
            &mut *out,
            &serde_json::json!({ "serialization_error": error.to_string() }),
        );
    }
}

fn proto_field_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
}

fn json_error(error: serde_json::Error, path: &str) -> JsonError {
    let message = strip_position(&error);
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            JsonError::Syntax {
                path: String::new(),
                message,
                line: error.line(),
                column: error.column(),
            }
        }
        serde_json::error::Category::Data | serde_json::error::Category::Io => {
            JsonError::Invalid {
                // serde_path_to_error spells the top level ".".
                path: if path == "." {
                    String::new()
                } else {
                    path.to_owned()
                },
                message,
            }
        }
    }
}

/// serde_json appends " at line L column C" to every message; the position is kept separately.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ").and_then(|index| text.get(..index)) {
        Some(message) => message.to_owned(),
        None => text,
    }
}
