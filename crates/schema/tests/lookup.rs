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
