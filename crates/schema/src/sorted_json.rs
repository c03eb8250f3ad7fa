//! A serde serializer that writes compact JSON straight into a byte buffer, byte for byte
//! what serializing into a [`serde_json::Value`] and then writing that value produces (object
//! keys sorted, `f32` widened to `f64`, non-finite floats as `null`), without building the
//! intermediate tree. Shapes the value form would accept but this writer does not know
//! (bytes, enums, unit structs, ...) fail with [`Unsupported`] so the caller can fall back
//! to the value form.

use std::fmt::{Display, Write as _};

use serde::ser::{self, Impossible, Serialize};

/// Why the direct writer gave up; the caller falls back to the [`serde_json::Value`] path.
#[derive(Debug)]
pub(crate) struct Unsupported(String);

impl Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

fn unsupported<T>(what: &str) -> Result<T, Unsupported> {
    Err(Unsupported(format!("{what} is not written directly")))
}

/// Writes one value into `out`.
pub(crate) struct SortedJson<'a> {
    pub(crate) out: &'a mut Vec<u8>,
}

impl SortedJson<'_> {
    /// serde_json's own writer for scalars, so numbers and strings come out identical.
    fn scalar(&mut self) -> serde_json::Serializer<&mut Vec<u8>> {
        serde_json::Serializer::new(&mut *self.out)
    }
}

fn json_err(error: serde_json::Error) -> Unsupported {
    Unsupported(error.to_string())
}

macro_rules! scalar {
    ($name:ident, $ty:ty) => {
        fn $name(mut self, v: $ty) -> Result<(), Unsupported> {
            ser::Serializer::$name(&mut self.scalar(), v).map_err(json_err)
        }
    };
}

impl<'a> ser::Serializer for SortedJson<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = SortedSeq<'a>;
    type SerializeTuple = Impossible<(), Unsupported>;
    type SerializeTupleStruct = Impossible<(), Unsupported>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = SortedMap<'a>;
    type SerializeStruct = Impossible<(), Unsupported>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    scalar!(serialize_bool, bool);
    scalar!(serialize_i8, i8);
    scalar!(serialize_i16, i16);
    scalar!(serialize_i32, i32);
    scalar!(serialize_i64, i64);
    scalar!(serialize_u8, u8);
    scalar!(serialize_u16, u16);
    scalar!(serialize_u32, u32);
    scalar!(serialize_u64, u64);
    scalar!(serialize_f64, f64);
    scalar!(serialize_str, &str);

    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        // The value form stores every float as f64.
        self.serialize_f64(f64::from(v))
    }

    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unsupported> {
        unsupported("bytes")
    }

    fn serialize_none(self) -> Result<(), Unsupported> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        unsupported("a unit struct")
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Unsupported> {
        unsupported("an enum")
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        unsupported("a newtype struct")
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        unsupported("an enum")
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<SortedSeq<'a>, Unsupported> {
        self.out.push(b'[');
        Ok(SortedSeq {
            out: self.out,
            first: true,
        })
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
        unsupported("a tuple")
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        unsupported("a tuple struct")
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        unsupported("an enum")
    }

    fn serialize_map(self, _: Option<usize>) -> Result<SortedMap<'a>, Unsupported> {
        Ok(SortedMap {
            out: self.out,
            entries: Vec::new(),
            keys: String::new(),
            key: None,
        })
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        unsupported("a struct")
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        unsupported("an enum")
    }

    fn collect_str<T: ?Sized + Display>(self, value: &T) -> Result<(), Unsupported> {
        self.serialize_str(&value.to_string())
    }
}

/// A JSON array being written.
pub(crate) struct SortedSeq<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl ser::SerializeSeq for SortedSeq<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        value.serialize(SortedJson { out: self.out })
    }

    fn end(self) -> Result<(), Unsupported> {
        self.out.push(b']');
        Ok(())
    }
}

/// One object entry: its key (a range of [`SortedMap::keys`]) and where its `"key":value`
/// text sits in the output buffer.
struct Entry {
    key: (usize, usize),
    text: (usize, usize),
}

/// A JSON object being written. Entries are written to the end of the output as they come,
/// then moved into key order (last one wins for a repeated key, as in a map) by `end`.
pub(crate) struct SortedMap<'a> {
    out: &'a mut Vec<u8>,
    entries: Vec<Entry>,
    /// Every key's unescaped text, back to back: keys sort by their text, not their escapes.
    keys: String,
    /// The pending key of `serialize_key`, waiting for its value.
    key: Option<(usize, usize)>,
}

impl SortedMap<'_> {
    /// The start of the entries' text in the output.
    fn entries_start(&self) -> usize {
        self.entries
            .first()
            .map_or(self.out.len(), |entry| entry.text.0)
    }
}

impl ser::SerializeMap for SortedMap<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Unsupported> {
        let start = self.keys.len();
        key.serialize(KeyText {
            keys: &mut self.keys,
        })?;
        self.key = Some((start, self.keys.len()));
        Ok(())
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unsupported> {
        let Some(key) = self.key.take() else {
            return unsupported("a map value without a key");
        };
        let start = self.out.len();
        let key_text = self.keys.get(key.0..key.1).unwrap_or_default();
        ser::Serializer::serialize_str(&mut serde_json::Serializer::new(&mut *self.out), key_text)
            .map_err(json_err)?;
        self.out.push(b':');
        value.serialize(SortedJson { out: self.out })?;
        self.entries.push(Entry {
            key,
            text: (start, self.out.len()),
        });
        Ok(())
    }

    fn end(mut self) -> Result<(), Unsupported> {
        let start = self.entries_start();
        let keys = &self.keys;
        let key_of = |entry: &Entry| keys.get(entry.key.0..entry.key.1).unwrap_or_default();
        // Stable, so among equal keys the last written stays last.
        self.entries.sort_by(|a, b| key_of(a).cmp(key_of(b)));
        let written = self.out.split_off(start);
        self.out.push(b'{');
        let mut first = true;
        for (index, entry) in self.entries.iter().enumerate() {
            let superseded = self
                .entries
                .get(index + 1)
                .is_some_and(|next| key_of(next) == key_of(entry));
            if superseded {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            let text = written
                .get(entry.text.0 - start..entry.text.1 - start)
                .unwrap_or_default();
            self.out.extend_from_slice(text);
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// Collects an object key's text: strings, and anything written with `collect_str` (map keys
/// that are numbers or booleans). Like the value form, other key types are refused.
struct KeyText<'a> {
    keys: &'a mut String,
}

impl ser::Serializer for KeyText<'_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Impossible<(), Unsupported>;
    type SerializeTuple = Impossible<(), Unsupported>;
    type SerializeTupleStruct = Impossible<(), Unsupported>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Impossible<(), Unsupported>;
    type SerializeStruct = Impossible<(), Unsupported>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.keys.push_str(v);
        Ok(())
    }

    fn collect_str<T: ?Sized + Display>(self, value: &T) -> Result<(), Unsupported> {
        write!(self.keys, "{value}").map_err(|e| Unsupported(e.to_string()))
    }

    fn serialize_bool(self, _: bool) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_i8(self, _: i8) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_i16(self, _: i16) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_i32(self, _: i32) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_i64(self, _: i64) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_u8(self, _: u8) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_u16(self, _: u16) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_u32(self, _: u32) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_u64(self, _: u64) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_f32(self, _: f32) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_f64(self, _: f64) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_char(self, _: char) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        unsupported("a non-string key")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        unsupported("a non-string key")
    }
}

#[cfg(test)]
mod tests {
    use prost_reflect::{DynamicMessage, SerializeOptions};

    use super::SortedJson;

    /// The shapes octaneweb's messages use (nested messages, maps, lists, floats, 64-bit
    /// strings, `Struct`) are written directly, not through the fallback.
    #[test]
    fn common_shapes_take_the_direct_path() {
        let mut builder = crate::SchemaBuilder::new();
        builder
            .add_proto_source(
                "direct.proto",
                "syntax = \"proto3\";\npackage t;\nimport \"google/protobuf/struct.proto\";\n\
                 message V { float y = 2; float x = 1; }\n\
                 message M { V pos = 1; map<string, V> named = 2; repeated int64 ids = 3;\n\
                   google.protobuf.Struct meta = 4; bytes blob = 5; double d = 6; }\n\
                 service S { rpc C(M) returns (M); }\n",
            )
            .expect("proto");
        let schema = builder.build().expect("schema");
        let desc = schema.pool().get_message_by_name("t.M").expect("M");
        let msg = crate::json_to_message(
            &desc,
            br#"{"pos":{"x":1,"y":0.5},"named":{"b":{},"a":{"x":2}},"ids":["1",2],
                "meta":{"k":[1,"s"]},"blob":"AQ==","d":"NaN"}"#,
        )
        .expect("valid");
        let mut out = Vec::new();
        let options = SerializeOptions::new()
            .use_proto_field_name(true)
            .skip_default_fields(false);
        DynamicMessage::serialize_with_options(&msg, SortedJson { out: &mut out }, &options)
            .expect("written directly");
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"blob":"AQ==","d":"NaN","ids":["1","2"],"meta":{"k":[1.0,"s"]},"named":{"a":{"x":2.0,"y":0.0},"b":{"x":0.0,"y":0.0}},"pos":{"x":1.0,"y":0.5}}"#
        );
    }
}
