//! Lookups, describe and /schema JSON against octaneweb's own protos.

use octaneweb_schema::{LookupError, Schema, SchemaBuilder};

fn schema() -> Schema {
    let mut builder = SchemaBuilder::new();
    builder
        .add_descriptor_set("octaneweb-proto", octaneweb_proto::DESCRIPTOR_SET)
        .expect("embedded descriptor set decodes");
    builder.build().expect("embedded schema builds")
}

#[test]
fn embedded_descriptor_set_loads_without_warnings() {
    let schema = schema();
    assert!(schema.warnings().is_empty(), "{:?}", schema.warnings());
    let names: Vec<String> = schema
        .services()
        .iter()
        .map(|s| s.full_name().to_owned())
        .collect();
    assert!(
        names.contains(&"octaneapi.ApiItemService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"livelinkapi.LiveLinkService".to_owned()),
        "{names:?}"
    );
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "services are sorted by full name");
}

#[test]
fn lenient_service_names_resolve() {
    let schema = schema();
    for name in [
        "octaneapi.ApiItemService",
        "ApiItemService",
        "ApiItem",
        "octaneapi.ApiItem",
        "apiitem",
    ] {
        let service = schema.find_service(name).expect(name);
        assert_eq!(service.full_name(), "octaneapi.ApiItemService", "{name}");
    }
    assert_eq!(
        schema
            .find_service("LiveLink")
            .map(|s| s.full_name().to_owned()),
        Ok("livelinkapi.LiveLinkService".to_owned())
    );
    assert_eq!(
        schema
            .find_service("ApiRenderEngine")
            .map(|s| s.full_name().to_owned()),
        Ok("octaneapi.ApiRenderEngineService".to_owned())
    );
    assert_eq!(
        schema.find_service("NoSuchThing").err(),
        Some(LookupError::UnknownService {
            name: "NoSuchThing".into()
        })
    );
}

#[test]
fn methods_resolve_by_exact_name_and_path() {
    let schema = schema();
    let method = schema
        .find_method("LiveLink", "GetCamera")
        .expect("GetCamera");
    assert_eq!(method.full_name(), "livelinkapi.LiveLinkService.GetCamera");
    for path in [
        "livelinkapi.LiveLinkService/GetCamera",
        "/livelinkapi.LiveLinkService/GetCamera",
        "LiveLink/GetCamera",
        "LiveLinkService.GetCamera",
        "livelinkapi.LiveLinkService.GetCamera",
    ] {
        let found = schema.find_method_path(path).expect(path);
        assert_eq!(found.full_name(), method.full_name(), "{path}");
    }
    assert_eq!(
        schema.find_method("LiveLink", "getcamera").err(),
        Some(LookupError::UnknownMethod {
            service: "livelinkapi.LiveLinkService".into(),
            method: "getcamera".into()
        })
    );
    for bad in [
        "",
        "/",
        "GetCamera",
        "LiveLink/",
        "/GetCamera",
        "a/b/c",
        "x y/z",
    ] {
        assert!(
            matches!(
                schema.find_method_path(bad),
                Err(LookupError::BadMethodPath { .. })
            ),
            "{bad:?} -> {:?}",
            schema
                .find_method_path(bad)
                .map(|m| m.full_name().to_owned())
        );
    }
}

fn two_packages() -> Schema {
    let mut builder = SchemaBuilder::new();
    builder
        .add_proto_source(
            "b.proto",
            "syntax = \"proto3\";\npackage b;\nmessage M {}\nservice FooService { rpc Go(M) returns (M); }\n",
        )
        .expect("b")
        .add_proto_source(
            "a.proto",
            "syntax = \"proto3\";\npackage a;\nmessage M {}\nservice FooService { rpc Go(M) returns (M); }\n\
             service Foo { rpc Stop(M) returns (M); }\n",
        )
        .expect("a");
    builder.build().expect("builds")
}

#[test]
fn ambiguous_names_list_sorted_candidates() {
    let schema = two_packages();
    assert_eq!(
        schema.find_service("FooService").err(),
        Some(LookupError::AmbiguousService {
            name: "FooService".into(),
            candidates: vec!["a.FooService".into(), "b.FooService".into()],
        })
    );
    // A full name is never ambiguous, and an exact bare name beats the suffix-less form.
    assert_eq!(
        schema
            .find_service("b.FooService")
            .map(|s| s.full_name().to_owned()),
        Ok("b.FooService".to_owned())
    );
    assert_eq!(
        schema.find_service("Foo").map(|s| s.full_name().to_owned()),
        Ok("a.Foo".to_owned())
    );
    let error = schema
        .find_method_path("FooService/Go")
        .expect_err("ambiguous");
    assert!(
        error.to_string().contains("a.FooService, b.FooService"),
        "{error}"
    );
}

#[test]
fn describe_lists_and_describes_like_grpcurl() {
    let schema = schema();
    let list = schema.describe(None).expect("list");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), schema.services().len());
    assert!(lines.contains(&"livelinkapi.LiveLinkService"), "{list}");

    let service = schema.describe(Some("LiveLink")).expect("service");
    assert!(
        service.starts_with("livelinkapi.LiveLinkService is a service:"),
        "{service}"
    );
    assert!(
        service.contains(
            "rpc StreamCamera(stream livelinkapi.CameraState) returns (livelinkapi.StreamStatus);"
        ),
        "{service}"
    );
    let callback = schema
        .describe(Some("octaneapi.StreamCallbackService"))
        .expect("callback service");
    assert!(
        callback.contains(
            "rpc callbackChannel(google.protobuf.Empty) returns (stream octaneapi.StreamCallbackRequest);"
        ),
        "{callback}"
    );

    let method = schema.describe(Some("LiveLink/GetCamera")).expect("method");
    assert!(
        method.contains("rpc GetCamera(livelinkapi.Empty) returns (livelinkapi.CameraState);"),
        "{method}"
    );

    let camera = schema
        .describe(Some("livelinkapi.CameraState"))
        .expect("message");
    assert!(camera.contains("message CameraState {"), "{camera}");
    assert!(
        camera.contains("  oneof pos_set {\n    livelinkapi.Vec3 position = 1;\n  }"),
        "{camera}"
    );

    let object_ref = schema
        .describe(Some("ObjectRef"))
        .expect("bare message name");
    assert!(object_ref.contains("  enum ObjectType {"), "{object_ref}");
    assert!(object_ref.contains("    ApiNode = 17;"), "{object_ref}");
    assert!(object_ref.contains("  uint64 handle = 1;"), "{object_ref}");

    let enumeration = schema
        .describe(Some("octaneapi.NodePinType"))
        .expect("enum");
    assert!(
        enumeration.starts_with("octaneapi.NodePinType is an enum:"),
        "{enumeration}"
    );

    assert!(matches!(
        schema.describe(Some("NoSuchSymbol")),
        Err(LookupError::UnknownService { .. })
    ));
    assert!(matches!(
        schema.describe(Some("LiveLink/NoSuchMethod")),
        Err(LookupError::UnknownMethod { .. })
    ));
}

#[test]
fn describe_writes_maps_and_optional_fields() {
    let mut builder = SchemaBuilder::new();
    builder
        .add_proto_source(
            "m.proto",
            "syntax = \"proto3\";\npackage m;\nmessage Bag {\n  map<string, Item> items = 1;\n  \
             optional int32 count = 2;\n  repeated bytes blobs = 3;\n  message Item { double w = 1; }\n}\n\
             service Bags { rpc Put(Bag) returns (Bag);\n  rpc Peek(Bag) returns (Bag) {\n    \
             option idempotency_level = NO_SIDE_EFFECTS;\n  }\n}\n",
        )
        .expect("m");
    let schema = builder.build().expect("builds");
    let bag = schema.describe(Some("m.Bag")).expect("Bag");
    assert!(
        bag.contains("  map<string, m.Bag.Item> items = 1;"),
        "{bag}"
    );
    assert!(bag.contains("  optional int32 count = 2;"), "{bag}");
    assert!(bag.contains("  repeated bytes blobs = 3;"), "{bag}");
    assert!(
        bag.contains("  message Item {\n    double w = 1;\n  }"),
        "{bag}"
    );
    assert!(
        !bag.contains("ItemsEntry"),
        "map entries are not nested types: {bag}"
    );

    let json = schema.to_json();
    let methods = &json["services"][0]["methods"];
    assert_eq!(methods[0]["name"], "Put");
    assert!(methods[0].get("idempotency_level").is_none(), "{methods}");
    assert_eq!(methods[1]["name"], "Peek");
    assert_eq!(methods[1]["idempotency_level"], "NO_SIDE_EFFECTS");
    let fields = &json["messages"]["m.Bag"]["fields"];
    assert_eq!(fields[0]["kind"], "map");
    assert_eq!(fields[0]["map"]["key_kind"], "string");
    assert_eq!(fields[0]["map"]["value_kind"], "message");
    assert_eq!(fields[0]["map"]["value_type_name"], "m.Bag.Item");
    assert_eq!(fields[1]["proto3_optional"], true);
    assert_eq!(fields[1]["oneof"], "_count");
    assert_eq!(fields[2]["repeated"], true);
    assert_eq!(fields[2]["kind"], "bytes");
    // The map's value type is reachable, so it is described too; the entry is not.
    assert!(json["messages"]["m.Bag.Item"].is_object(), "{json}");
    assert!(json["messages"].get("m.Bag.ItemsEntry").is_none(), "{json}");
}

#[test]
fn schema_json_describes_services_messages_and_enums() {
    let schema = schema();
    let json = schema.to_json();
    let services = json["services"].as_array().expect("services");
    assert_eq!(services.len(), schema.services().len());
    let live_link = services
        .iter()
        .find(|s| s["full_name"] == "livelinkapi.LiveLinkService")
        .expect("LiveLinkService");
    assert_eq!(live_link["package"], "livelinkapi");
    let methods = live_link["methods"].as_array().expect("methods");
    let stream_camera = methods
        .iter()
        .find(|m| m["name"] == "StreamCamera")
        .expect("StreamCamera");
    assert_eq!(
        stream_camera["path"],
        "/livelinkapi.LiveLinkService/StreamCamera"
    );
    assert_eq!(stream_camera["client_streaming"], true);
    assert_eq!(stream_camera["server_streaming"], false);
    assert_eq!(stream_camera["input_type"], "livelinkapi.CameraState");
    assert_eq!(stream_camera["output_type"], "livelinkapi.StreamStatus");

    let camera = &json["messages"]["livelinkapi.CameraState"];
    let position = &camera["fields"][0];
    assert_eq!(position["name"], "position");
    assert_eq!(position["json_name"], "position");
    assert_eq!(position["number"], 1);
    assert_eq!(position["kind"], "message");
    assert_eq!(position["type_name"], "livelinkapi.Vec3");
    assert_eq!(position["oneof"], "pos_set");
    assert_eq!(position["repeated"], false);
    assert!(position.get("proto3_optional").is_none());
    // Reached through CameraState's fields.
    assert_eq!(
        json["messages"]["livelinkapi.Vec3"]["fields"][0]["kind"],
        "float"
    );

    let request = &json["messages"]["octaneapi.ApiItemArray.getRequest"];
    assert_eq!(request["fields"][0]["type_name"], "octaneapi.ObjectRef");
    let object_type = &json["enums"]["octaneapi.ObjectRef.ObjectType"];
    let values = object_type["values"].as_array().expect("values");
    assert!(values.contains(&serde_json::json!({"name": "ApiNode", "number": 17})));
    assert_eq!(json["warnings"], serde_json::json!([]));
}

#[test]
fn schema_is_shareable_and_its_clones_describe_the_same_json() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Schema>();
    let schema = schema();
    assert_eq!(schema.clone().to_json(), schema.to_json());
}

#[test]
fn well_known_imports_are_built_in() {
    let mut builder = SchemaBuilder::new();
    builder
        .add_proto_source(
            "t.proto",
            "syntax = \"proto3\";\npackage t;\nimport \"google/protobuf/timestamp.proto\";\n\
             import \"google/protobuf/struct.proto\";\nimport \"google/protobuf/wrappers.proto\";\n\
             message At { google.protobuf.Timestamp when = 1; google.protobuf.Struct extra = 2;\n\
             google.protobuf.UInt64Value id = 3; }\nservice Clock { rpc Now(At) returns (At); }\n",
        )
        .expect("t");
    let schema = builder.build().expect("builds");
    assert!(schema.warnings().is_empty(), "{:?}", schema.warnings());
    let at = schema.pool().get_message_by_name("t.At").expect("At");
    let msg = octaneweb_schema::json_to_message(
        &at,
        br#"{"when":"2026-01-02T03:04:05Z","extra":{"a":[1,"x"]},"id":"9"}"#,
    )
    .expect("well-known JSON forms parse");
    let back = octaneweb_schema::message_to_json(&msg, octaneweb_schema::JsonShape::PROXY);
    assert_eq!(back["when"], "2026-01-02T03:04:05Z");
    assert_eq!(back["id"], "9");
}

#[test]
fn the_same_file_from_two_sources_is_quietly_deduplicated() {
    let mut builder = SchemaBuilder::new();
    builder
        .add_descriptor_set("first", octaneweb_proto::DESCRIPTOR_SET)
        .expect("first")
        .add_descriptor_set("second", octaneweb_proto::DESCRIPTOR_SET)
        .expect("second");
    let schema = builder.build().expect("builds");
    assert!(schema.warnings().is_empty(), "{:?}", schema.warnings());
}
