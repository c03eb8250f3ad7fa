//! JSON <-> message conversion with octaneweb's own protos.

use octaneweb_schema::prost_reflect::{DescriptorPool, MessageDescriptor, Value};
use octaneweb_schema::{
    json_to_message, message_to_json, write_message_json, Defaults, FieldNames, JsonError,
    JsonShape,
};
use serde_json::json;

fn pool() -> DescriptorPool {
    DescriptorPool::decode(octaneweb_proto::DESCRIPTOR_SET).expect("descriptor set")
}

fn message(name: &str) -> MessageDescriptor {
    pool().get_message_by_name(name).expect(name)
}

fn get_request() -> MessageDescriptor {
    message("octaneapi.ApiItemArray.getRequest")
}

fn handle_of(json: &[u8]) -> u64 {
    let msg = json_to_message(&get_request(), json).expect("valid JSON");
    let object = msg.get_field_by_name("objectPtr").expect("objectPtr");
    let Value::Message(object) = object.as_ref() else {
        panic!("objectPtr is not a message: {object:?}");
    };
    object
        .get_field_by_name("handle")
        .and_then(|h| h.as_u64())
        .expect("handle")
}

#[test]
fn uint64_handles_accept_numbers_and_strings() {
    assert_eq!(handle_of(br#"{"objectPtr":{"handle":1234}}"#), 1234);
    assert_eq!(
        handle_of(br#"{"objectPtr":{"handle":"18446744073709551615"}}"#),
        u64::MAX
    );
    // Proto field names and JSON names are both accepted.
    assert_eq!(handle_of(br#"{"objectPtr":{"handle":"7"},"index":2}"#), 7);
}

#[test]
fn enums_accept_names_and_numbers() {
    let desc = message("octaneapi.ObjectRef");
    for body in [
        &br#"{"handle":"1","type":"ApiNode"}"#[..],
        &br#"{"handle":"1","type":17}"#[..],
    ] {
        let msg = json_to_message(&desc, body).expect("valid");
        assert_eq!(
            msg.get_field_by_name("type")
                .and_then(|v| v.as_enum_number()),
            Some(17)
        );
    }
    let bad = json_to_message(&desc, br#"{"type":"NotAType"}"#).expect_err("unknown enum name");
    assert_eq!(bad.path(), "type");
}

#[test]
fn empty_bodies_are_the_default_message() {
    for body in [&b""[..], b"   \n\t", b"{}"] {
        let msg = json_to_message(&get_request(), body).expect("empty is fine");
        assert!(!msg.has_field_by_name("objectPtr"));
    }
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let error = json_to_message(&get_request(), br#"{"objectPtr":{"handle":1,"hadle":2}}"#)
        .expect_err("unknown field");
    assert!(matches!(error, JsonError::Invalid { .. }), "{error:?}");
    assert_eq!(error.path(), "objectPtr");
    assert!(error.message().contains("hadle"), "{error}");

    let top = json_to_message(&get_request(), br#"{"bogus":true}"#).expect_err("unknown");
    assert!(top.message().contains("bogus"), "{top}");
}

#[test]
fn wrong_types_name_the_field_path() {
    let error = json_to_message(&get_request(), br#"{"objectPtr":{"handle":true}}"#)
        .expect_err("bool is not a handle");
    assert_eq!(error.path(), "objectPtr.handle");
    let text = error.to_string();
    assert!(text.starts_with("objectPtr.handle: "), "{text}");
    assert!(text.contains("invalid type"), "{text}");

    let error = json_to_message(&get_request(), br#"{"index":"many"}"#).expect_err("index");
    assert_eq!(error.path(), "index");
}

#[test]
fn a_string_where_a_message_belongs_is_rejected() {
    let error = json_to_message(&get_request(), br#"{"objectPtr":"17"}"#).expect_err("string");
    assert_eq!(error.path(), "objectPtr");
    assert!(matches!(error, JsonError::Invalid { .. }), "{error:?}");
    let error = json_to_message(&get_request(), br#"[1,2]"#).expect_err("array");
    assert_eq!(error.path(), "");
}

#[test]
fn malformed_json_is_a_syntax_error_with_position() {
    let error =
        json_to_message(&get_request(), b"{\"objectPtr\": {\"handle\": 1}").expect_err("eof");
    assert!(matches!(error, JsonError::Syntax { .. }), "{error:?}");
    let error = json_to_message(&get_request(), b"{\n  \"index\": 1,,\n}").expect_err("comma");
    match error {
        JsonError::Syntax { line, .. } => assert_eq!(line, 2),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let trailing = json_to_message(&get_request(), b"{} {}").expect_err("trailing value");
    assert!(matches!(trailing, JsonError::Syntax { .. }), "{trailing:?}");
}

#[test]
fn responses_render_with_proto_names_defaults_and_string_int64() {
    let desc = message("octaneapi.ApiRenderEngine.grabRenderResultResponse");
    let msg = json_to_message(&desc, b"").expect("default");
    let value = message_to_json(&msg, JsonShape::PROXY);
    // Defaults are present, so `result: false` tells the client there is no image.
    // Unset message fields stay absent (they have presence).
    assert_eq!(value, json!({"result": false}));

    let request = json_to_message(
        &get_request(),
        br#"{"objectPtr":{"handle":"18446744073709551615","type":"ApiItemArray"},"index":3}"#,
    )
    .expect("valid");
    let value = message_to_json(&request, JsonShape::PROXY);
    assert_eq!(
        value,
        json!({
            "objectPtr": {"handle": "18446744073709551615", "type": "ApiItemArray"},
            "index": 3
        })
    );

    // Proto names (`user_data`), not lowerCamelCase JSON names (`userData`); both parse.
    let desc = message("octaneapi.OnNewImageData");
    for body in [&br#"{"userData": "5"}"#[..], br#"{"user_data": 5}"#] {
        let msg = json_to_message(&desc, body).expect("valid");
        assert_eq!(
            message_to_json(&msg, JsonShape::PROXY),
            json!({"user_data": "5"})
        );
    }
    // A oneof member shows up under its own name; unset members do not.
    let desc = message("octaneapi.StreamCallbackRequest");
    let msg = json_to_message(&desc, br#"{"newImage": {"user_data": 1}}"#).expect("valid");
    assert_eq!(
        message_to_json(&msg, JsonShape::PROXY),
        json!({"newImage": {"user_data": "1"}})
    );
}

/// Each shape's two choices act independently; enums stay names and 64-bit integers strings
/// in all four, and every shape parses back to the same message.
#[test]
fn shapes_choose_names_and_defaults_independently() {
    let desc = message("octaneapi.ApiItem.getValueByIDRequest");
    let msg = json_to_message(
        &desc,
        br#"{"item_ref":{"handle":"18446744073709551615","type":"ApiItem"},"attribute_id":185}"#,
    )
    .expect("valid");
    let item = json!({"handle": "18446744073709551615", "type": "ApiItem"});
    let expected = [
        (
            FieldNames::Proto,
            Defaults::Emit,
            json!({"item_ref": item, "attribute_id": "A_VALUE", "expected_type": "ATTR_ID_UNDEFINED"}),
        ),
        (
            FieldNames::Proto,
            Defaults::Omit,
            json!({"item_ref": item, "attribute_id": "A_VALUE"}),
        ),
        (
            FieldNames::Camel,
            Defaults::Emit,
            json!({"itemRef": item, "attributeId": "A_VALUE", "expectedType": "ATTR_ID_UNDEFINED"}),
        ),
        (
            FieldNames::Camel,
            Defaults::Omit,
            json!({"itemRef": item, "attributeId": "A_VALUE"}),
        ),
    ];
    for (names, defaults, want) in expected {
        let shape = JsonShape { names, defaults };
        let value = message_to_json(&msg, shape);
        assert_eq!(value, want, "{shape:?}");
        let back = json_to_message(&desc, value.to_string().as_bytes()).expect("parses back");
        // (An explicit default and an absent field are the same message.)
        assert_eq!(
            message_to_json(&back, JsonShape::PROXY),
            message_to_json(&msg, JsonShape::PROXY),
            "{shape:?}"
        );
    }
    assert_eq!(JsonShape::PROXY.names, FieldNames::Proto);
    assert_eq!(JsonShape::PROXY.defaults, Defaults::Emit);
    assert_eq!(JsonShape::CANONICAL.names, FieldNames::Camel);
    assert_eq!(JsonShape::CANONICAL.defaults, Defaults::Omit);
}

#[test]
fn shape_spellings_parse_and_errors_name_the_choices() {
    for names in [FieldNames::Proto, FieldNames::Camel] {
        assert_eq!(names.to_string().parse::<FieldNames>(), Ok(names));
    }
    for defaults in [Defaults::Emit, Defaults::Omit] {
        assert_eq!(defaults.to_string().parse::<Defaults>(), Ok(defaults));
    }
    let error = "snake".parse::<FieldNames>().expect_err("not a choice");
    assert_eq!(error.to_string(), r#"must be proto or camel, got "snake""#);
    let error = "Emit".parse::<Defaults>().expect_err("spellings are exact");
    assert_eq!(error.to_string(), r#"must be emit or omit, got "Emit""#);
    // A long value is quoted back shortened.
    let error = "x"
        .repeat(10_000)
        .parse::<Defaults>()
        .expect_err("not a choice");
    assert!(error.to_string().len() < 120, "{error}");
}

#[test]
fn deeply_nested_json_is_an_error_not_a_crash() {
    let mut builder = octaneweb_schema::SchemaBuilder::new();
    builder
        .add_proto_source(
            "deep.proto",
            "syntax = \"proto3\";\npackage d;\nimport \"google/protobuf/struct.proto\";\n\
             message Node { Node child = 1; google.protobuf.Value any = 2; }\n\
             service S { rpc M(Node) returns (Node); }\n",
        )
        .expect("deep");
    let schema = builder.build().expect("builds");
    let node = schema.pool().get_message_by_name("d.Node").expect("Node");
    let depth = 100_000;
    let nested_messages = format!("{}{}", r#"{"child":"#.repeat(depth), "}".repeat(depth));
    assert!(json_to_message(&node, nested_messages.as_bytes()).is_err());
    let nested_values = format!(r#"{{"any":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
    assert!(json_to_message(&node, nested_values.as_bytes()).is_err());
    // Moderate nesting is fine.
    let ok = format!(
        "{}{}",
        r#"{"child":"#.repeat(20),
        "{}".to_owned() + &"}".repeat(20)
    );
    assert!(json_to_message(&node, ok.as_bytes()).is_ok());
}

/// `write_message_json` must write exactly what writing `message_to_json`'s value does: keys
/// sorted, floats widened, maps and well-known types included.
#[test]
fn written_json_reads_back_as_the_value_form() {
    let mut builder = octaneweb_schema::SchemaBuilder::new();
    builder
        .add_proto_source(
            "shapes.proto",
            "syntax = \"proto3\";\npackage s;\n\
             import \"google/protobuf/struct.proto\";\n\
             import \"google/protobuf/timestamp.proto\";\n\
             import \"google/protobuf/wrappers.proto\";\n\
             import \"google/protobuf/any.proto\";\n\
             enum Color { RED = 0; GREEN = 1; }\n\
             message Inner { float z = 1; float a = 2; string quote = 3; }\n\
             message Shapes {\n\
               Inner zeta = 1; double alpha = 2; float f = 3; bytes blob = 4; Color color = 5;\n\
               repeated Inner items = 6; map<string, int64> by_name = 7;\n\
               map<int32, Inner> by_id = 8; map<bool, string> flags = 9;\n\
               google.protobuf.Struct meta = 10; google.protobuf.Timestamp at = 11;\n\
               google.protobuf.FloatValue wrapped = 12; google.protobuf.Any any = 13;\n\
               uint64 big = 14; sint32 neg = 15; repeated Color colors = 16;\n\
               oneof pick { string b_text = 17; Inner a_inner = 18; }\n\
             }\n\
             service S { rpc M(Shapes) returns (Shapes); }\n",
        )
        .expect("shapes");
    let schema = builder.build().expect("builds");
    let shapes = schema
        .pool()
        .get_message_by_name("s.Shapes")
        .expect("Shapes");
    let bodies: [&[u8]; 7] = [
        b"",
        br#"{"zeta":{"z":0.1,"a":-3.4e38,"quote":"a\"b\\c\u0001\u00e9"},"alpha":1e-300,"f":"NaN"}"#,
        br#"{"f":"Infinity","blob":"AAEC/w==","color":"GREEN","big":"18446744073709551615","neg":-5}"#,
        br#"{"items":[{"z":1.5},{},{"a":"-Infinity"}],"colors":["GREEN","RED",7]}"#,
        br#"{"by_name":{"b":1,"a":"2","\"q":3,"\u00e9":4,"A":5},"by_id":{"10":{"z":2},"-1":{},"2":{"a":1}},"flags":{"true":"t","false":"f"}}"#,
        br#"{"meta":{"z":[1,"x",null,true,{"b":{},"a":[]}],"a":0.30000001},"at":"2026-01-02T03:04:05.123Z","wrapped":0.2}"#,
        br#"{"a_inner":{"quote":"</script>"},"any":{"@type":"type.googleapis.com/s.Inner","z":0.5,"a":1}}"#,
    ];
    for body in bodies {
        let msg = json_to_message(&shapes, body)
            .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(body)));
        let mut written = b"prefix:".to_vec();
        write_message_json(&msg, JsonShape::PROXY, &mut written);
        let parsed: serde_json::Value = serde_json::from_slice(&written[b"prefix:".len()..])
            .unwrap_or_else(|e| panic!("written JSON does not parse: {e}"));
        assert_eq!(
            parsed,
            message_to_json(&msg, JsonShape::PROXY),
            "for {}",
            String::from_utf8_lossy(body)
        );
        assert!(written.starts_with(b"prefix:"));
    }
    // Fields in declaration order, a `float` in its shortest form.
    let inner = schema.pool().get_message_by_name("s.Inner").expect("Inner");
    let msg = json_to_message(&inner, br#"{"z":0.1,"a":2}"#).expect("valid");
    let mut written = Vec::new();
    write_message_json(&msg, JsonShape::PROXY, &mut written);
    assert_eq!(
        String::from_utf8_lossy(&written),
        r#"{"z":0.1,"a":2.0,"quote":""}"#
    );
}

#[test]
fn float_fields_print_in_their_shortest_form() {
    let camera = message("livelinkapi.CameraState");
    let msg = json_to_message(
        &camera,
        br#"{"fov": 2.4, "position": {"x": 0.1, "y": -7.8, "z": 1e-3}}"#,
    )
    .expect("valid camera");
    let mut text = Vec::new();
    write_message_json(&msg, JsonShape::PROXY, &mut text);
    let text = String::from_utf8(text).expect("utf-8");
    // Not 2.4000000953674316: a `float` prints as the shortest decimal that reads back as
    // the same f32.
    assert!(
        text.contains(r#""fov":2.4"#) && !text.contains("2.4000"),
        "{text}"
    );
    assert!(
        text.contains(r#""y":-7.8"#) && text.contains(r#""x":0.1"#),
        "{text}"
    );
    let value = message_to_json(&msg, JsonShape::PROXY);
    assert_eq!(value["fov"], json!(2.4));
    assert_eq!(value["position"]["z"], json!(0.001));
}

/// A message with every place a key can repeat: a field (in and out of a oneof), a field with
/// a JSON name of its own, a repeated message and a map.
fn duplicates_probe() -> MessageDescriptor {
    let mut builder = octaneweb_schema::SchemaBuilder::new();
    builder
        .add_proto_source(
            "probe.proto",
            r#"syntax = "proto3";
               package probe;
               message Point { float x = 1; float y = 2; }
               message Probe {
                 oneof pick { int32 first_choice = 1; string second = 2; }
                 Point point = 3;
                 repeated Point points = 4;
                 map<string, Point> named = 5;
                 string label = 6;
               }
               service Probes { rpc Send(Probe) returns (Probe); }"#,
        )
        .expect("probe.proto");
    let schema = builder.build().expect("schema");
    schema
        .pool()
        .get_message_by_name("probe.Probe")
        .expect("probe.Probe")
}

#[test]
fn a_field_given_twice_is_named_wherever_it_is() {
    let probe = duplicates_probe();
    let cases: [(&str, &str, &str); 6] = [
        (
            r#"{"label":"a","label":"b"}"#,
            "label",
            r#"duplicate field "label""#,
        ),
        (
            r#"{"first_choice":1,"first_choice":2}"#,
            "first_choice",
            r#"duplicate field "first_choice""#,
        ),
        (
            r#"{"firstChoice":1,"first_choice":2}"#,
            "first_choice",
            r#"duplicate field "first_choice" (already given as "firstChoice")"#,
        ),
        (
            r#"{"point":{"x":1,"y":2,"x":3}}"#,
            "point.x",
            r#"duplicate field "x""#,
        ),
        (
            r#"{"points":[{"x":1},{"y":1,"y":2}]}"#,
            "points[1].y",
            r#"duplicate field "y""#,
        ),
        (
            r#"{"named":{"a":{"x":1},"b":{},"a":{}}}"#,
            "named.a",
            r#"duplicate map key "a""#,
        ),
    ];
    for (json, path, message) in cases {
        let error = json_to_message(&probe, json.as_bytes()).expect_err(json);
        assert!(
            matches!(error, JsonError::Invalid { .. }),
            "{json}: {error:?}"
        );
        assert_eq!(error.path(), path, "{json}");
        assert_eq!(error.message(), message, "{json}");
    }
    // A duplicate is found even when the conversion fails first on something else.
    let error = json_to_message(&probe, br#"{"label":"a","point":{"x":"no"},"label":"b"}"#)
        .expect_err("duplicate");
    assert!(error.message().starts_with("duplicate field"), "{error}");
}

#[test]
fn a_oneof_conflict_is_still_a_oneof_conflict() {
    let probe = duplicates_probe();
    let error = json_to_message(&probe, br#"{"first_choice":1,"second":"b"}"#)
        .expect_err("two members of a oneof");
    assert!(error.message().contains("oneof 'pick'"), "{error}");
    assert!(!error.message().contains("duplicate"), "{error}");
    // Distinct keys everywhere are fine, also the same key in different objects.
    let message = json_to_message(
        &probe,
        br#"{"point":{"x":1,"y":2},"points":[{"x":1},{"x":2}],"named":{"a":{"x":1},"b":{"x":1}}}"#,
    )
    .expect("no duplicates");
    assert!(message.has_field_by_name("named"));
}
