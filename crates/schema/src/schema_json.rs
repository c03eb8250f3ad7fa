//! The JSON description of a schema served at `GET /schema`.
//!
//! Shape (every key always present unless marked optional). Every service, method, message,
//! field, enum and enum value may carry a `"comment"`: the proto comment above it (then the
//! one after it), as text without the `//` markers; the key is left out when there is none.
//!
//! ```json
//! {
//!   "services": [
//!     { "name": "ApiItemService", "full_name": "octaneapi.ApiItemService",
//!       "package": "octaneapi", "file": "apiitem.proto",
//!       "comment": "Items of the scene.",  // optional, on each kind listed above
//!       "methods": [
//!         { "name": "name", "path": "/octaneapi.ApiItemService/name",
//!           "client_streaming": false, "server_streaming": false,
//!           "input_type": "octaneapi.ApiItem.nameRequest",
//!           "output_type": "octaneapi.ApiItem.nameResponse",
//!           "idempotency_level": "NO_SIDE_EFFECTS" }          // optional: only when set
//!       ] }
//!   ],
//!   "messages": {
//!     "octaneapi.ObjectRef": {
//!       "name": "ObjectRef", "full_name": "octaneapi.ObjectRef",
//!       "fields": [
//!         { "name": "handle", "json_name": "handle", "number": 1,
//!           "kind": "uint64",            // double float int64 uint64 int32 fixed64 fixed32 bool
//!                                        // string bytes uint32 sfixed32 sfixed64 sint32 sint64
//!                                        // message enum, or "map" for a map field
//!           "label": "optional",         // optional | repeated | required
//!           "repeated": false,           // true for repeated fields and maps
//!           "type_name": "octaneapi.X",  // optional: message/enum fields only
//!           "map": { "key_kind": "string", "value_kind": "message",
//!                    "value_type_name": "octaneapi.Y" },   // optional: map fields only
//!           "oneof": "pos_set",          // optional: member of a oneof
//!           "proto3_optional": true      // optional: the oneof is the synthetic one of a
//!                                        //   proto3 `optional` field
//!         }
//!       ],
//!       "oneofs": [ { "name": "pos_set", "synthetic": false, "fields": ["position"] } ]
//!     }
//!   },
//!   "enums": {
//!     "octaneapi.ApiItem.Kind": { "name": "Kind", "full_name": "octaneapi.ApiItem.Kind",
//!       "values": [ { "name": "KIND_A", "number": 0 } ] }
//!   },
//!   "warnings": [                        // files skipped while loading
//!     { "file": "module.proto", "line": 6, "symbol": "octaneapi.StartRequest",
//!       "first_defined_in": "/sdk/protodef/callback.proto",   // line/symbol/first: or null
//!       "message": "/sdk/protodef/module.proto:6: skipped: conflicting definition ..." }
//!   ]
//! }
//! ```
//!
//! `messages` and `enums` hold every type reachable from a method's input or output (map
//! entries are described inline through `map`, not as messages of their own).

use std::collections::{BTreeMap, HashSet, VecDeque};

use prost_reflect::{Cardinality, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{json, Map, Value};

use crate::comments::Comments;
use crate::describe::kind_name;
use crate::schema::Schema;

pub(crate) fn schema_to_json(schema: &Schema) -> Value {
    let mut services = Vec::new();
    let mut queue: VecDeque<MessageDescriptor> = VecDeque::new();
    for service in schema.services() {
        let mut methods = Vec::new();
        for method in service.methods() {
            let mut entry = json!({
                "name": method.name(),
                "path": format!("/{}/{}", service.full_name(), method.name()),
                "client_streaming": method.is_client_streaming(),
                "server_streaming": method.is_server_streaming(),
                "input_type": method.input().full_name(),
                "output_type": method.output().full_name(),
            });
            if let Some(level) = idempotency_level(&method) {
                if let Some(object) = entry.as_object_mut() {
                    object.insert("idempotency_level".into(), Value::from(level));
                }
            }
            add_comment(&mut entry, schema.comments(&method));
            methods.push(entry);
            queue.push_back(method.input());
            queue.push_back(method.output());
        }
        let mut entry = json!({
            "name": service.name(),
            "full_name": service.full_name(),
            "package": service.package_name(),
            "file": service.parent_file().name(),
            "methods": methods,
        });
        add_comment(&mut entry, schema.comments(&service));
        services.push(entry);
    }

    let mut seen: HashSet<String> = HashSet::new();
    let mut messages: BTreeMap<String, Value> = BTreeMap::new();
    let mut enums: BTreeMap<String, Value> = BTreeMap::new();
    while let Some(message) = queue.pop_front() {
        if !seen.insert(message.full_name().to_owned()) {
            continue;
        }
        let mut fields = Vec::new();
        for field in message.fields() {
            // Follow the types this field refers to (through map entries too).
            let mut follow = |kind: Kind| match kind {
                Kind::Message(m) => queue.push_back(m),
                Kind::Enum(e) => {
                    enums
                        .entry(e.full_name().to_owned())
                        .or_insert_with(|| enum_json(schema, &e));
                }
                _ => {}
            };
            match field.kind() {
                Kind::Message(entry) if field.is_map() => {
                    follow(entry.map_entry_value_field().kind());
                }
                kind => follow(kind),
            }
            let mut entry = field_json(&field);
            add_comment(&mut entry, schema.comments(&field));
            fields.push(entry);
        }
        let oneofs: Vec<Value> = message
            .oneofs()
            .map(|oneof| {
                json!({
                    "name": oneof.name(),
                    "synthetic": oneof.is_synthetic(),
                    "fields": oneof.fields().map(|f| f.name().to_owned()).collect::<Vec<_>>(),
                })
            })
            .collect();
        if message.is_map_entry() {
            continue;
        }
        let mut entry = json!({
            "name": message.name(),
            "full_name": message.full_name(),
            "fields": fields,
            "oneofs": oneofs,
        });
        add_comment(&mut entry, schema.comments(&message));
        messages.insert(message.full_name().to_owned(), entry);
    }

    let warnings: Vec<Value> = schema
        .warnings()
        .iter()
        .map(|w| {
            json!({
                "file": w.file,
                "line": w.line,
                "symbol": w.symbol,
                "first_defined_in": w.first_defined_in,
                "message": w.to_string(),
            })
        })
        .collect();
    json!({
        "services": services,
        "messages": Map::from_iter(messages),
        "enums": Map::from_iter(enums),
        "warnings": warnings,
    })
}

fn field_json(field: &FieldDescriptor) -> Value {
    let kind = field.kind();
    let mut object = Map::new();
    object.insert("name".into(), field.name().into());
    object.insert("json_name".into(), field.json_name().into());
    object.insert("number".into(), field.number().into());
    let label = match field.cardinality() {
        Cardinality::Optional => "optional",
        Cardinality::Required => "required",
        Cardinality::Repeated => "repeated",
    };
    if field.is_map() {
        object.insert("kind".into(), "map".into());
        if let Kind::Message(entry) = &kind {
            let key = entry.map_entry_key_field().kind();
            let value = entry.map_entry_value_field().kind();
            let mut map = Map::new();
            map.insert("key_kind".into(), kind_name(&key).into());
            map.insert("value_kind".into(), kind_name(&value).into());
            if let Some(name) = referenced_type(&value) {
                map.insert("value_type_name".into(), name.into());
            }
            object.insert("map".into(), Value::Object(map));
        }
    } else {
        object.insert("kind".into(), kind_name(&kind).into());
        if let Some(name) = referenced_type(&kind) {
            object.insert("type_name".into(), name.into());
        }
    }
    object.insert("label".into(), label.into());
    object.insert(
        "repeated".into(),
        (field.is_list() || field.is_map()).into(),
    );
    if let Some(oneof) = field.containing_oneof() {
        object.insert("oneof".into(), oneof.name().into());
        if oneof.is_synthetic() {
            object.insert("proto3_optional".into(), true.into());
        }
    }
    Value::Object(object)
}

fn referenced_type(kind: &Kind) -> Option<String> {
    match kind {
        Kind::Message(m) => Some(m.full_name().to_owned()),
        Kind::Enum(e) => Some(e.full_name().to_owned()),
        _ => None,
    }
}

fn enum_json(schema: &Schema, enumeration: &EnumDescriptor) -> Value {
    let values: Vec<Value> = enumeration
        .values()
        .map(|v| {
            let mut entry = json!({ "name": v.name(), "number": v.number() });
            add_comment(&mut entry, schema.comments(&v));
            entry
        })
        .collect();
    let mut entry = json!({
        "name": enumeration.name(),
        "full_name": enumeration.full_name(),
        "values": values,
    });
    add_comment(&mut entry, schema.comments(enumeration));
    entry
}

/// `"comment"` on a JSON object, when the definition has one.
fn add_comment(entry: &mut Value, comments: &Comments) {
    let text = comments.text();
    if let (false, Some(object)) = (text.is_empty(), entry.as_object_mut()) {
        object.insert("comment".into(), Value::from(text));
    }
}

fn idempotency_level(method: &prost_reflect::MethodDescriptor) -> Option<&'static str> {
    use prost_types::method_options::IdempotencyLevel;
    let options = method.method_descriptor_proto().options.as_ref()?;
    match options.idempotency_level() {
        IdempotencyLevel::IdempotencyUnknown => None,
        IdempotencyLevel::NoSideEffects => Some("NO_SIDE_EFFECTS"),
        IdempotencyLevel::Idempotent => Some("IDEMPOTENT"),
    }
}
