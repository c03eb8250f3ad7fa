//! Proto3 JSON <-> [`DynamicMessage`] for the gateway's JSON routes.

use std::borrow::Cow;
use std::fmt;

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{JsonError, ShapeValueError};
use crate::proxy_compat;

/// Leniencies of [`json_to_message_with`] beyond the proto3 JSON mapping. The default is
/// strict: what [`json_to_message`] accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JsonOptions {
    /// Accept what browser code written for Octane's original Python proxy sends (only the
    /// original proxy's `POST /{Service}/{method}` route should turn this on):
    ///
    /// - a top-level key `objectPtr` stands for the message's object reference when the
    ///   message has no field of that name (JSON or proto name) and exactly one field of type
    ///   `octaneapi.ObjectRef`, a single one (`ApiItem.getValueByIDRequest.item_ref`,
    ///   `ApiNodePinInfoEx.GetNodePinInfoRequest.nodePinInfoRef`). Otherwise `objectPtr` is
    ///   an unknown field as without the option. Giving both `objectPtr` and the field it
    ///   stands for is an error naming both. Errors inside it are reported under `objectPtr`;
    /// - the numbers `0` and `1` are accepted for `bool` fields (also `google.protobuf.BoolValue`),
    ///   at any depth, in repeated fields and map values. Other numbers stay an error naming
    ///   the field.
    pub proxy_compat: bool,
}

impl JsonOptions {
    /// The proto3 JSON mapping, nothing more.
    pub const STRICT: JsonOptions = JsonOptions {
        proxy_compat: false,
    };
    /// The original proxy's leniencies (see [`JsonOptions::proxy_compat`]).
    pub const PROXY_COMPAT: JsonOptions = JsonOptions { proxy_compat: true };
}

/// Parse a JSON body into a message of type `desc` (proto3 JSON mapping).
///
/// Field names may be the proto names or the lowerCamelCase JSON names; unknown fields are an
/// error; 64-bit integers may be numbers or strings; enums may be names or numbers. An empty
/// body (or only whitespace) is the default message. A field given twice (also once by its
/// proto name and once by its JSON name) and a map key given twice are errors. Errors name the
/// field path, e.g. `objectPtr.handle: invalid type: ...`.
pub fn json_to_message(desc: &MessageDescriptor, json: &[u8]) -> Result<DynamicMessage, JsonError> {
    json_to_message_with(desc, json, JsonOptions::STRICT)
}

/// [`json_to_message`] with the leniencies of `options`.
pub fn json_to_message_with(
    desc: &MessageDescriptor,
    json: &[u8],
    options: JsonOptions,
) -> Result<DynamicMessage, JsonError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(DynamicMessage::new(desc.clone()));
    }
    let alias = options
        .proxy_compat
        .then(|| proxy_compat::object_ptr_alias(desc))
        .flatten();
    let rewritten = if options.proxy_compat {
        proxy_compat::rewrite(desc, json, alias.as_ref())
    } else {
        Ok(None)
    };
    let converted = match &rewritten {
        Ok(None) => convert(desc, json),
        Err(error) => Err(json_error(error, "")),
        Ok(Some(rewritten)) => {
            convert(desc, &rewritten.json).map_err(|error| match (&rewritten.renamed_to, error) {
                (Some(renamed), JsonError::Invalid { path, message }) => JsonError::Invalid {
                    path: proxy_compat::original_path(&path, renamed).unwrap_or(path),
                    message,
                },
                (_, error) => error,
            })
        }
    };
    // prost-reflect keeps the last of two values for a field without a word, and reports a
    // oneof member given twice as a conflict between members; name the duplicate instead.
    // Also after a failure, so that a duplicate is not reported as that conflict. The walk
    // reads the body as the client sent it (the rewrite would have merged duplicates).
    match (find_duplicate(desc, json, alias), converted) {
        (Some(duplicate), _) => Err(duplicate),
        (None, converted) => converted,
    }
}

/// The strict conversion of a non-empty body.
fn convert(desc: &MessageDescriptor, json: &[u8]) -> Result<DynamicMessage, JsonError> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(&mut deserializer, &mut track);
    DynamicMessage::deserialize_with_options(desc.clone(), tracked, &options)
        .map_err(|error| json_error(&error, &track.path().to_string()))
        // Trailing characters after the value are as malformed as a broken value.
        .and_then(|message| {
            deserializer.end().map_err(|error| json_error(&error, ""))?;
            Ok(message)
        })
}

/// How a message is written as JSON: the two choices the proto3 JSON mapping leaves to the
/// printer. Every shape writes enums as their value names and 64-bit integers as strings,
/// and every reader of the gateway accepts all shapes (both names, defaults or not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JsonShape {
    /// Which name each field is written under.
    pub names: FieldNames,
    /// Whether fields holding their default value are written.
    pub defaults: Defaults,
}

impl JsonShape {
    /// What Octane's original Python proxy printed, and its clients read: proto field names
    /// (`user_data`), default values included (`"result": false`).
    pub const PROXY: JsonShape = JsonShape {
        names: FieldNames::Proto,
        defaults: Defaults::Emit,
    };
    /// The proto3 JSON mapping's usual form, which Connect and protobuf-es clients print:
    /// lowerCamelCase JSON names (`userData`), default values left out.
    pub const CANONICAL: JsonShape = JsonShape {
        names: FieldNames::Camel,
        defaults: Defaults::Omit,
    };

    /// The prost-reflect options that write this shape, for a writer of one's own (the
    /// command line's indented output).
    pub fn serialize_options(self) -> SerializeOptions {
        SerializeOptions::new()
            .use_proto_field_name(self.names == FieldNames::Proto)
            .skip_default_fields(self.defaults == Defaults::Omit)
            .use_enum_numbers(false)
            .stringify_64_bit_integers(true)
    }
}

/// Which name a field is written under ([`JsonShape::names`]); spelled `proto` or `camel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldNames {
    /// The name in the `.proto` file: `user_data`.
    Proto,
    /// The field's JSON name: lowerCamelCase (`userData`) unless the `.proto` file sets
    /// `json_name`.
    Camel,
}

impl FieldNames {
    /// The spellings [`FieldNames::from_str`] accepts, for messages.
    pub const ACCEPTED: &'static str = "proto or camel";
}

impl std::str::FromStr for FieldNames {
    type Err = ShapeValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "proto" => Ok(FieldNames::Proto),
            "camel" => Ok(FieldNames::Camel),
            _ => Err(ShapeValueError::new(text, FieldNames::ACCEPTED)),
        }
    }
}

impl fmt::Display for FieldNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldNames::Proto => "proto",
            FieldNames::Camel => "camel",
        })
    }
}

/// Whether fields holding their default value (`0`, `""`, `false`, an empty list, the
/// first enum value) are written ([`JsonShape::defaults`]); spelled `emit` or `omit`. Fields
/// with presence (message fields, oneof members, `optional` fields) are written when set and
/// never when unset, in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Defaults {
    /// Every field is written.
    Emit,
    /// Fields holding their default value are left out.
    Omit,
}

impl Defaults {
    /// The spellings [`Defaults::from_str`] accepts, for messages.
    pub const ACCEPTED: &'static str = "emit or omit";
}

impl std::str::FromStr for Defaults {
    type Err = ShapeValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "emit" => Ok(Defaults::Emit),
            "omit" => Ok(Defaults::Omit),
            _ => Err(ShapeValueError::new(text, Defaults::ACCEPTED)),
        }
    }
}

impl fmt::Display for Defaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Defaults::Emit => "emit",
            Defaults::Omit => "omit",
        })
    }
}

/// Render a message as proto3 JSON in `shape`.
pub fn message_to_json(msg: &DynamicMessage, shape: JsonShape) -> serde_json::Value {
    // Through the text form: serde_json's value serializer widens `float` fields to f64
    // (2.4 becomes 2.4000000953674316); its writer prints the shortest f32 form, as the
    // proto3 JSON mapping wants.
    let mut text = Vec::with_capacity(256);
    write_message_json(msg, shape, &mut text);
    serde_json::from_slice(&text)
        .unwrap_or_else(|error| serde_json::json!({ "serialization_error": error.to_string() }))
}

/// Append [`message_to_json`]'s JSON text (compact, fields in declaration order) to `out`,
/// serializing straight into the buffer.
pub fn write_message_json(msg: &DynamicMessage, shape: JsonShape, out: &mut Vec<u8>) {
    let options = shape.serialize_options();
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

fn json_error(error: &serde_json::Error, path: &str) -> JsonError {
    let message = strip_position(error);
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

/// The first key given twice in an object of `json` that is a message of type `desc` (or a
/// message or map nested in it), as an error naming its path. `None` when there is none, also
/// when `json` is malformed or does not fit `desc` (the conversion reports those). `alias` is
/// the field a top-level `objectPtr` stands for ([`JsonOptions::proxy_compat`]), if any.
fn find_duplicate(
    desc: &MessageDescriptor,
    json: &[u8],
    alias: Option<FieldDescriptor>,
) -> Option<JsonError> {
    let mut walk = DuplicateWalk {
        alias,
        ..DuplicateWalk::default()
    };
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let seed = Shape::Message(desc.clone()).seed(&mut walk);
    match seed.deserialize(&mut deserializer) {
        Ok(()) => None,
        Err(_) => walk.found,
    }
}

/// Where the duplicate walk is in the JSON, and what it found.
#[derive(Default)]
struct DuplicateWalk {
    /// Path of the value being read, in serde_path_to_error's form (`a.b[2].c`).
    path: Vec<PathSegment>,
    found: Option<JsonError>,
    /// The field a top-level `objectPtr` stands for, under [`JsonOptions::proxy_compat`].
    alias: Option<FieldDescriptor>,
}

enum PathSegment {
    Key(String),
    Index(usize),
}

impl DuplicateWalk {
    fn path_text(&self) -> String {
        let mut text = String::new();
        for segment in &self.path {
            match segment {
                PathSegment::Key(key) => {
                    if !text.is_empty() {
                        text.push('.');
                    }
                    text.push_str(key);
                }
                PathSegment::Index(index) => {
                    text.push('[');
                    text.push_str(&index.to_string());
                    text.push(']');
                }
            }
        }
        text
    }

    /// Record a duplicate at the current path; the returned error stops the walk.
    fn duplicate<E: de::Error>(&mut self, message: String) -> E {
        let path = self.path_text();
        self.found = Some(JsonError::Invalid { path, message });
        E::custom("duplicate key")
    }
}

/// What a JSON value is expected to hold.
#[derive(Clone)]
enum Shape {
    /// A message (not a well-known type, whose JSON forms are not objects of fields).
    Message(MessageDescriptor),
    /// A repeated field: an array of `Shape`s.
    List(Box<Shape>),
    /// A map field: an object with one key per entry.
    Map(Box<Shape>),
    /// Anything else: nothing to check inside.
    Opaque,
}

impl Shape {
    fn of_field(field: &FieldDescriptor) -> Shape {
        if field.is_map() {
            let value = match field.kind() {
                Kind::Message(entry) => Shape::of_kind(&entry.map_entry_value_field().kind()),
                _ => Shape::Opaque,
            };
            Shape::Map(Box::new(value))
        } else if field.is_list() {
            Shape::List(Box::new(Shape::of_kind(&field.kind())))
        } else {
            Shape::of_kind(&field.kind())
        }
    }

    fn of_kind(kind: &Kind) -> Shape {
        match kind {
            Kind::Message(message) if !message.full_name().starts_with("google.protobuf.") => {
                Shape::Message(message.clone())
            }
            _ => Shape::Opaque,
        }
    }

    fn seed(self, walk: &mut DuplicateWalk) -> ShapeSeed<'_> {
        ShapeSeed { shape: self, walk }
    }
}

struct ShapeSeed<'w> {
    shape: Shape,
    walk: &'w mut DuplicateWalk,
}

impl<'de> DeserializeSeed<'de> for ShapeSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.shape {
            Shape::Opaque => deserializer.deserialize_ignored_any(IgnoredAny).map(|_| ()),
            shape => deserializer.deserialize_any(ShapeVisitor {
                shape,
                walk: self.walk,
            }),
        }
    }
}

struct ShapeVisitor<'w> {
    shape: Shape,
    walk: &'w mut DuplicateWalk,
}

impl<'de> Visitor<'de> for ShapeVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    // Values of another type than expected hold no keys; the conversion reports them.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let element = match self.shape {
            Shape::List(element) => *element,
            _ => Shape::Opaque,
        };
        let walk = self.walk;
        let mut index = 0;
        loop {
            walk.path.push(PathSegment::Index(index));
            let more = seq.next_element_seed(element.clone().seed(walk))?;
            walk.path.pop();
            if more.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let walk = self.walk;
        match self.shape {
            Shape::Message(message) => {
                // Only the body's own message has the `objectPtr` alias.
                let top_level = walk.path.is_empty();
                // Field numbers seen, with the key that named each.
                let mut seen: Vec<(u32, Cow<'de, str>)> = Vec::new();
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    let field = message
                        .get_field_by_json_name(&key)
                        .or_else(|| message.get_field_by_name(&key))
                        .or_else(|| {
                            (top_level && key == proxy_compat::OBJECT_PTR)
                                .then(|| walk.alias.clone())
                                .flatten()
                        });
                    let Some(field) = field else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    walk.path.push(PathSegment::Key(key.to_string()));
                    if let Some((_, first)) = seen.iter().find(|(n, _)| *n == field.number()) {
                        let aliased = top_level
                            && *first != key
                            && (key == proxy_compat::OBJECT_PTR
                                || *first == proxy_compat::OBJECT_PTR);
                        let message = if *first == key {
                            format!("duplicate field \"{key}\"")
                        } else if aliased {
                            format!(
                                "\"{first}\" and \"{key}\" both give field {}: \"objectPtr\" \
                                 stands for the message's only object reference; give one",
                                field.name()
                            )
                        } else {
                            format!("duplicate field \"{key}\" (already given as \"{first}\")")
                        };
                        return Err(walk.duplicate(message));
                    }
                    map.next_value_seed(Shape::of_field(&field).seed(walk))?;
                    walk.path.pop();
                    seen.push((field.number(), key));
                }
                Ok(())
            }
            Shape::Map(value) => {
                let mut seen: Vec<Cow<'de, str>> = Vec::new();
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    walk.path.push(PathSegment::Key(key.to_string()));
                    if seen.contains(&key) {
                        return Err(walk.duplicate(format!("duplicate map key \"{key}\"")));
                    }
                    map.next_value_seed(value.as_ref().clone().seed(walk))?;
                    walk.path.pop();
                    seen.push(key);
                }
                Ok(())
            }
            _ => {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(())
            }
        }
    }
}

/// An object key, borrowed from the JSON text unless it has escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}
