//! The object shape in which octaneWebR's Node.js server answers: `@grpc/proto-loader` with
//! `keepCase`, `longs: String`, `enums: String`, `defaults: true` and `oneofs: true`.
//!
//! That is [`JsonShape::PROXY`] (proto field names, every field, 64-bit integers as strings,
//! enums as names) plus, for every oneof that has a member set, a key named after the oneof
//! whose value is the set member's name: `{"float_value": 2, "value": "float_value"}`.
//! octaneWebR's node inspector reads `response[response.value]`, so the key is part of the
//! answer it relies on.
//!
//! Requests: protobuf.js, under proto-loader, drops keys a message does not have, and
//! octaneWebR's client relies on it (its inspector sends `expected_type` to
//! `setValueByAttrID`, which has no such field). [`unknown_top_level_fields`] finds such keys
//! so its route can leave them out, and name them to the client, instead of refusing the call.

use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, ReflectMessage as _, Value};

use crate::json::{message_to_json, JsonShape};

/// `msg` as octaneWebR's server would answer it (see the module docs).
pub fn message_to_proto_loader_json(msg: &DynamicMessage) -> serde_json::Value {
    let mut json = message_to_json(msg, JsonShape::PROXY);
    mark_oneofs(msg, &mut json);
    json
}

/// The top-level keys of the JSON object `json` that are no field of `desc` (by proto or
/// JSON name), except `objectPtr`, which the original proxy's leniency reads
/// ([`crate::JsonOptions::proxy_compat`]). Empty for a body that is not a JSON object: the
/// conversion then reports what is wrong with it.
pub fn unknown_top_level_fields(desc: &MessageDescriptor, json: &[u8]) -> Vec<String> {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(json)
    else {
        return Vec::new();
    };
    object
        .keys()
        .filter(|key| {
            key.as_str() != "objectPtr"
                && desc.get_field_by_name(key).is_none()
                && desc.get_field_by_json_name(key).is_none()
        })
        .cloned()
        .collect()
}

/// `json`, a JSON object, without the top-level keys `drop`.
pub fn without_fields(json: &[u8], drop: &[String]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(mut object)) => {
            for key in drop {
                object.remove(key);
            }
            serde_json::Value::Object(object).to_string().into_bytes()
        }
        _ => json.to_vec(),
    }
}

/// Adds the oneof keys to `json`, the proto-named JSON of `msg`, at every depth.
fn mark_oneofs(msg: &DynamicMessage, json: &mut serde_json::Value) {
    let Some(object) = json.as_object_mut() else {
        return;
    };
    let descriptor = msg.descriptor();
    for oneof in descriptor.oneofs().filter(|oneof| !oneof.is_synthetic()) {
        // A field of the oneof's own name keeps its value, as proto-loader's object would.
        if object.contains_key(oneof.name()) {
            continue;
        }
        if let Some(set) = oneof.fields().find(|field| msg.has_field(field)) {
            object.insert(
                oneof.name().to_owned(),
                serde_json::Value::String(set.name().to_owned()),
            );
        }
    }
    for field in descriptor.fields() {
        if !matches!(field.kind(), Kind::Message(_)) || field.is_map() || !msg.has_field(&field) {
            continue;
        }
        let Some(child) = object.get_mut(field.name()) else {
            continue;
        };
        match (&*msg.get_field(&field), child) {
            (Value::Message(inner), child) => mark_oneofs(inner, child),
            (Value::List(items), serde_json::Value::Array(children)) => {
                for (item, child) in items.iter().zip(children.iter_mut()) {
                    if let Value::Message(inner) = item {
                        mark_oneofs(inner, child);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::DescriptorPool;
    use prost_types::{
        field_descriptor_proto::{Label, Type},
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
        OneofDescriptorProto,
    };

    fn field(name: &str, number: i32, kind: Type, oneof: Option<i32>) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            label: Some(Label::Optional as i32),
            r#type: Some(kind as i32),
            oneof_index: oneof,
            ..Default::default()
        }
    }

    fn pool() -> DescriptorPool {
        let mut child = field("inner", 4, Type::Message, None);
        child.type_name = Some(".t.Value".into());
        let mut list = field("items", 5, Type::Message, None);
        list.type_name = Some(".t.Value".into());
        list.label = Some(Label::Repeated as i32);
        let value = DescriptorProto {
            name: Some("Value".into()),
            field: vec![
                field("float_value", 1, Type::Float, Some(0)),
                field("string_value", 2, Type::String, Some(0)),
                field("big", 3, Type::Uint64, None),
                child,
                list,
            ],
            oneof_decl: vec![OneofDescriptorProto {
                name: Some("value".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let file = FileDescriptorProto {
            name: Some("t.proto".into()),
            package: Some("t".into()),
            message_type: vec![value],
            syntax: Some("proto3".into()),
            ..Default::default()
        };
        DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: vec![file] })
            .expect("test schema")
    }

    #[test]
    fn names_the_set_member_of_each_oneof_at_every_depth() {
        let desc = pool().get_message_by_name("t.Value").expect("Value");
        let json = serde_json::json!({
            "float_value": 2.0, "big": "5",
            "inner": {"string_value": "x"},
            "items": [{"float_value": 1.0}, {}]
        });
        let msg = crate::json_to_message(&desc, json.to_string().as_bytes()).expect("message");
        let out = message_to_proto_loader_json(&msg);
        assert_eq!(out["value"], "float_value");
        assert_eq!(out["big"], "5", "64-bit integers are strings");
        assert_eq!(out["inner"]["value"], "string_value");
        assert_eq!(out["items"][0]["value"], "float_value");
        assert!(
            out["items"][1].get("value").is_none(),
            "no member set, no key"
        );
        assert_eq!(out["inner"]["big"], "0", "defaults are written");
    }

    #[test]
    fn finds_and_drops_keys_the_message_does_not_have() {
        let desc = pool().get_message_by_name("t.Value").expect("Value");
        let body = br#"{"floatValue": 1, "big": 2, "expected_type": 9, "objectPtr": {}}"#;
        let unknown = unknown_top_level_fields(&desc, body);
        assert_eq!(unknown, vec!["expected_type".to_owned()]);
        let kept: serde_json::Value =
            serde_json::from_slice(&without_fields(body, &unknown)).expect("JSON");
        assert_eq!(
            kept,
            serde_json::json!({"floatValue": 1, "big": 2, "objectPtr": {}})
        );
        assert!(unknown_top_level_fields(&desc, b"[1]").is_empty());
    }
}
