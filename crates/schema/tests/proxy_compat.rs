//! `JsonOptions::proxy_compat`: the original Python proxy's `objectPtr` alias and 0/1 booleans.

use octaneweb_schema::prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};
use octaneweb_schema::{json_to_message, json_to_message_with, JsonError, JsonOptions};

fn pool() -> DescriptorPool {
    DescriptorPool::decode(octaneweb_proto::DESCRIPTOR_SET).expect("descriptor set")
}

fn message(name: &str) -> MessageDescriptor {
    pool().get_message_by_name(name).expect(name)
}

fn lenient(desc: &MessageDescriptor, json: &str) -> Result<DynamicMessage, JsonError> {
    json_to_message_with(desc, json.as_bytes(), JsonOptions::PROXY_COMPAT)
}

fn handle(msg: &DynamicMessage, field: &str) -> u64 {
    let value = msg.get_field_by_name(field).expect(field);
    let Value::Message(reference) = value.as_ref() else {
        panic!("{field} is not a message: {value:?}");
    };
    reference
        .get_field_by_name("handle")
        .and_then(|h| h.as_u64())
        .expect("handle")
}

fn flag(msg: &DynamicMessage, field: &str) -> bool {
    msg.get_field_by_name(field)
        .and_then(|v| v.as_bool())
        .expect(field)
}

/// A purpose-built schema: messages with several, repeated and no object references, and
/// bools in every position.
fn shapes() -> DescriptorPool {
    let mut builder = octaneweb_schema::SchemaBuilder::new();
    builder
        .add_proto_source(
            "compat.proto",
            "syntax = \"proto3\";\npackage octaneapi;\n\
             import \"google/protobuf/wrappers.proto\";\n\
             message ObjectRef { uint64 handle = 1; }\n\
             message TwoRefs { ObjectRef first = 1; ObjectRef second = 2; }\n\
             message ManyRefs { repeated ObjectRef refs = 1; }\n\
             message Inner { bool deep = 1; int32 count = 2; }\n\
             message Flags {\n\
               bool on = 1; repeated bool many = 2; map<string, bool> named = 3;\n\
               Inner inner = 4; repeated Inner inners = 5; map<string, Inner> by_name = 6;\n\
               google.protobuf.BoolValue wrapped = 7; ObjectRef target = 8; int32 number = 9;\n\
             }\n\
             service S { rpc M(Flags) returns (Flags); }\n",
        )
        .expect("compat.proto");
    builder.build().expect("builds").pool().clone()
}

#[test]
fn object_ptr_names_the_only_object_reference() {
    let request = message("octaneapi.ApiItem.getValueByIDRequest");
    let body =
        r#"{"objectPtr":{"handle":"42","type":"ApiNode"},"attribute_id":185,"expected_type":11}"#;
    let msg = lenient(&request, body).expect("objectPtr stands for item_ref");
    assert_eq!(handle(&msg, "item_ref"), 42);

    let pin_info = message("octaneapi.ApiNodePinInfoEx.GetNodePinInfoRequest");
    let msg = lenient(&pin_info, r#"{"objectPtr":{"handle":7}}"#).expect("nodePinInfoRef");
    assert_eq!(handle(&msg, "nodePinInfoRef"), 7);

    // A message whose field is called objectPtr is unchanged.
    let owned = message("octaneapi.ApiNodeGraph.getOwnedItemsRequest");
    let msg = lenient(&owned, r#"{"objectPtr":{"handle":9}}"#).expect("real objectPtr");
    assert_eq!(handle(&msg, "objectPtr"), 9);

    // Without the option the alias is an unknown field, as the proto3 JSON mapping says.
    let strict = json_to_message(&request, br#"{"objectPtr":{"handle":1}}"#)
        .expect_err("strict refuses objectPtr");
    assert!(strict.to_string().contains("objectPtr"), "{strict}");
}

#[test]
fn object_ptr_and_the_real_field_together_are_refused_naming_both() {
    let request = message("octaneapi.ApiItem.getValueByIDRequest");
    for body in [
        r#"{"objectPtr":{"handle":1},"item_ref":{"handle":2}}"#,
        r#"{"itemRef":{"handle":2},"objectPtr":{"handle":1}}"#,
    ] {
        let error = lenient(&request, body).expect_err(body);
        let text = error.to_string();
        assert!(text.contains("objectPtr"), "{text}");
        assert!(
            text.contains("item_ref") || text.contains("itemRef"),
            "{text}"
        );
    }
    // Twice the alias is a duplicate too (a parsed value would keep only the last).
    let error = lenient(
        &request,
        r#"{"objectPtr":{"handle":1},"objectPtr":{"handle":2}}"#,
    )
    .expect_err("twice");
    assert!(error.to_string().contains("duplicate field"), "{error}");
}

#[test]
fn object_ptr_is_unknown_without_exactly_one_single_reference() {
    let camera = message("livelinkapi.CameraState");
    let error = lenient(&camera, r#"{"objectPtr":{"handle":1}}"#).expect_err("no reference");
    assert!(error.to_string().contains("objectPtr"), "{error}");

    let pool = shapes();
    for name in ["octaneapi.TwoRefs", "octaneapi.ManyRefs"] {
        let desc = pool.get_message_by_name(name).expect(name);
        let error = lenient(&desc, r#"{"objectPtr":{"handle":1}}"#).expect_err(name);
        assert!(error.to_string().contains("objectPtr"), "{name}: {error}");
    }
}

#[test]
fn errors_inside_the_alias_are_reported_under_object_ptr() {
    let request = message("octaneapi.ApiItem.getValueByIDRequest");
    let error = lenient(&request, r#"{"objectPtr":{"handle":true}}"#).expect_err("bad handle");
    assert_eq!(error.path(), "objectPtr.handle", "{error}");
    let error = lenient(&request, r#"{"objectPtr":{"handle":1},"bogus":1}"#).expect_err("unknown");
    assert!(error.to_string().contains("bogus"), "{error}");
}

#[test]
fn zero_and_one_are_booleans_at_any_depth() {
    let pool = shapes();
    let desc = pool.get_message_by_name("octaneapi.Flags").expect("Flags");
    let body = r#"{"on":1,"many":[0,1,true],"named":{"a":1,"b":0},"inner":{"deep":1,"count":1},
        "inners":[{"deep":0},{"deep":1}],"by_name":{"x":{"deep":1}},"wrapped":1,"number":1,
        "objectPtr":{"handle":3}}"#;
    let msg = lenient(&desc, body).expect("lenient booleans");
    assert!(flag(&msg, "on"));
    let many = msg.get_field_by_name("many").expect("many");
    let many: Vec<bool> = many
        .as_list()
        .expect("list")
        .iter()
        .map(|v| v.as_bool().expect("bool"))
        .collect();
    assert_eq!(many, [false, true, true]);
    let inner = msg.get_field_by_name("inner").expect("inner");
    let inner = inner.as_message().expect("message");
    assert!(flag(inner, "deep"));
    // Numbers in number fields stay numbers.
    assert_eq!(
        inner.get_field_by_name("count").and_then(|v| v.as_i32()),
        Some(1)
    );
    assert_eq!(
        msg.get_field_by_name("number").and_then(|v| v.as_i32()),
        Some(1)
    );
    assert_eq!(handle(&msg, "target"), 3);

    // Strictly, numbers are not booleans.
    assert!(json_to_message(&desc, br#"{"on":1}"#).is_err());
    // On the real request the original client sends.
    let connected = message("octaneapi.ApiNode.connectedNodeIxRequest");
    let msg = lenient(
        &connected,
        r#"{"objectPtr":{"handle":1},"pinIx":0,"enterWrapperNode":1}"#,
    )
    .expect("connectedNodeIx");
    assert!(flag(&msg, "enterWrapperNode"));
}

#[test]
fn other_numbers_for_a_bool_stay_errors_naming_the_field() {
    let pool = shapes();
    let desc = pool.get_message_by_name("octaneapi.Flags").expect("Flags");
    for (body, path) in [
        (r#"{"on":2}"#, "on"),
        (r#"{"on":-1}"#, "on"),
        (r#"{"on":1.5}"#, "on"),
        (r#"{"on":"1"}"#, "on"),
        (r#"{"many":[1,2]}"#, "many[1]"),
        (r#"{"inner":{"deep":2}}"#, "inner.deep"),
    ] {
        let error = lenient(&desc, body).expect_err(body);
        assert_eq!(error.path(), path, "{body}: {error}");
    }
}

#[test]
fn lenient_bodies_keep_the_strict_checks() {
    let pool = shapes();
    let desc = pool.get_message_by_name("octaneapi.Flags").expect("Flags");
    // Duplicates are found in the body as sent, before any rewriting.
    let error = lenient(&desc, r#"{"on":1,"on":0}"#).expect_err("duplicate");
    assert!(error.to_string().contains("duplicate field"), "{error}");
    // Malformed JSON is reported with its position.
    let error = lenient(&desc, "{\"on\":1,,}").expect_err("syntax");
    assert!(matches!(error, JsonError::Syntax { .. }), "{error}");
    // Deep nesting is an error, not a stack overflow in the pre-pass.
    let deep = format!("{}{}", r#"{"inner":"#.repeat(10_000), "}".repeat(10_000));
    assert!(lenient(&desc, &deep).is_err());
    // The empty body is the default message.
    assert!(!flag(&lenient(&desc, " ").expect("empty"), "on"));
}
