//! The original Python proxy's leniencies, as a pre-pass over a JSON body driven by the
//! message descriptor (see [`JsonOptions::proxy_compat`](crate::JsonOptions)).
//!
//! Browser code written for that proxy names a request's object reference `objectPtr`
//! whatever the field is really called, and sends `0`/`1` for booleans. The pre-pass rewrites
//! such a body into plain proto3 JSON, which the strict conversion then reads; a body that
//! needs no rewriting is converted as it came.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::Value;

/// The key the original proxy's clients use for a request's object reference.
pub(crate) const OBJECT_PTR: &str = "objectPtr";

/// Octane's object reference message.
const OBJECT_REF: &str = "octaneapi.ObjectRef";

/// The field that `objectPtr` stands for in messages of type `desc`: the message has no field
/// of that name (JSON or proto) and exactly one field of type `octaneapi.ObjectRef`, and that
/// field is a single reference (not repeated). `None` otherwise: `objectPtr` is then either
/// the real field or an unknown one.
pub(crate) fn object_ptr_alias(desc: &MessageDescriptor) -> Option<FieldDescriptor> {
    if desc.get_field_by_json_name(OBJECT_PTR).is_some()
        || desc.get_field_by_name(OBJECT_PTR).is_some()
    {
        return None;
    }
    let mut references = desc
        .fields()
        .filter(|field| matches!(field.kind(), Kind::Message(m) if m.full_name() == OBJECT_REF));
    let only = references.next()?;
    if references.next().is_some() || only.is_list() {
        return None;
    }
    Some(only)
}

/// What [`rewrite`] did to a body.
pub(crate) struct Rewritten {
    /// The body as plain proto3 JSON.
    pub json: Vec<u8>,
    /// The key `objectPtr` was renamed to, when it was: errors found under that key are
    /// reported under `objectPtr`, the name the client wrote.
    pub renamed_to: Option<String>,
}

/// `json` with `objectPtr` renamed to `alias` (top level only, and only when the real field
/// is not also given: that is reported as a duplicate) and `0`/`1` turned into `false`/`true`
/// for bool fields at any depth. `Ok(None)` when there is nothing to rewrite; the parser's
/// error when `json` is not JSON (reported as such: the strict conversion would stop earlier,
/// at a `1` for a bool, and send the client after the wrong problem).
pub(crate) fn rewrite(
    desc: &MessageDescriptor,
    json: &[u8],
    alias: Option<&FieldDescriptor>,
) -> Result<Option<Rewritten>, serde_json::Error> {
    let mut value: Value = serde_json::from_slice(json)?;
    let mut renamed_to = None;
    if let (Some(field), Value::Object(object)) = (alias, &mut value) {
        let real_given =
            object.contains_key(field.json_name()) || object.contains_key(field.name());
        if !real_given {
            if let Some(reference) = object.remove(OBJECT_PTR) {
                object.insert(field.json_name().to_owned(), reference);
                renamed_to = Some(field.json_name().to_owned());
            }
        }
    }
    let coerced = coerce_message_bools(desc, &mut value);
    if renamed_to.is_none() && !coerced {
        return Ok(None);
    }
    let json = serde_json::to_vec(&value)?;
    Ok(Some(Rewritten { json, renamed_to }))
}

/// Turn `0`/`1` in the bool fields of `value` (a message of type `desc`) into booleans, also
/// in nested messages, repeated fields and map values. True if anything changed. Other values
/// are left for the strict conversion to report. The recursion is bounded by serde_json's own
/// nesting limit on the parsed value.
fn coerce_message_bools(desc: &MessageDescriptor, value: &mut Value) -> bool {
    let Value::Object(object) = value else {
        return false;
    };
    let mut changed = false;
    for (key, value) in object.iter_mut() {
        let Some(field) = desc
            .get_field_by_json_name(key)
            .or_else(|| desc.get_field_by_name(key))
        else {
            continue;
        };
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                continue;
            };
            let kind = entry.map_entry_value_field().kind();
            if let Value::Object(entries) = value {
                for value in entries.values_mut() {
                    changed |= coerce_bool_kind(&kind, value);
                }
            }
        } else if field.is_list() {
            if let Value::Array(elements) = value {
                for value in elements {
                    changed |= coerce_bool_kind(&field.kind(), value);
                }
            }
        } else {
            changed |= coerce_bool_kind(&field.kind(), value);
        }
    }
    changed
}

fn coerce_bool_kind(kind: &Kind, value: &mut Value) -> bool {
    match kind {
        // `google.protobuf.BoolValue` is a bare bool in JSON too.
        Kind::Bool => coerce_bool(value),
        Kind::Message(message) if message.full_name() == "google.protobuf.BoolValue" => {
            coerce_bool(value)
        }
        // Other well-known types have JSON forms that are not objects of fields.
        Kind::Message(message) if !message.full_name().starts_with("google.protobuf.") => {
            coerce_message_bools(message, value)
        }
        _ => false,
    }
}

fn coerce_bool(value: &mut Value) -> bool {
    let flag = match value {
        Value::Number(number) => match number.as_u64() {
            Some(0) => false,
            Some(1) => true,
            _ => return false,
        },
        _ => return false,
    };
    *value = Value::Bool(flag);
    true
}

/// An error path found in the rewritten body, spelled as the client wrote it: a path under
/// the renamed reference field is reported under `objectPtr`.
pub(crate) fn original_path(path: &str, renamed_to: &str) -> Option<String> {
    let rest = path.strip_prefix(renamed_to)?;
    (rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
        .then(|| format!("{OBJECT_PTR}{rest}"))
}
