//! Proto comments as data (kept source info, `Schema::comments`, `/schema`'s "comment",
//! describe) and the schema exported as a FileDescriptorSet.

use octaneweb_schema::prost_reflect::DescriptorPool;
use octaneweb_schema::{Schema, SchemaBuilder};
use prost::Message as _;
use prost_types::FileDescriptorSet;

const COMMON: &str = r#"syntax = "proto3";
package notes;

// A point in space.
message Point {
  double x = 1; // across
  // up
  double y = 2;
}
"#;

const NOTES: &str = r#"syntax = "proto3";
package notes;
import "common.proto";

// Detached: about nothing in particular.

// Keeps notes.
// Two lines of them.
service Notes { // and a trailing word
  // Adds one note.
  rpc Add(Note) returns (Note);
  rpc Count(Note) returns (Note);
}

// One note.
message Note {
  string text = 1;
  // Where it was written.
  notes.Point at = 2;
  oneof colour {
    // By name.
    string named = 3;
    uint32 rgb = 4;
  }
  Mood mood = 5;
}

// How it felt.
enum Mood {
  MOOD_UNSPECIFIED = 0;
  // Good.
  MOOD_GOOD = 1; // really
}
"#;

fn notes_schema() -> Schema {
    let mut builder = SchemaBuilder::new();
    builder
        .add_proto_source("notes.proto", NOTES)
        .expect("notes parses")
        .add_proto_source("common.proto", COMMON)
        .expect("common parses");
    builder.build().expect("notes schema builds")
}

#[test]
fn comments_of_every_kind_of_definition() {
    let schema = notes_schema();
    let pool = schema.pool();
    let service = pool.get_service_by_name("notes.Notes").expect("service");
    let comments = schema.comments(&service);
    assert_eq!(
        comments.leading.as_deref(),
        Some("Keeps notes.\nTwo lines of them.")
    );
    assert_eq!(comments.trailing.as_deref(), Some("and a trailing word"));
    assert_eq!(
        comments.text(),
        "Keeps notes.\nTwo lines of them.\nand a trailing word"
    );

    let mut methods = service.methods();
    let add = methods.next().expect("Add");
    assert_eq!(schema.comments(&add).text(), "Adds one note.");
    let count = methods.next().expect("Count");
    assert!(schema.comments(&count).is_empty());

    let note = pool.get_message_by_name("notes.Note").expect("Note");
    assert_eq!(schema.comments(&note).text(), "One note.");
    let at = note.get_field_by_name("at").expect("at");
    assert_eq!(schema.comments(&at).text(), "Where it was written.");
    let named = note.get_field_by_name("named").expect("named");
    assert_eq!(schema.comments(&named).text(), "By name.");
    let text = note.get_field_by_name("text").expect("text");
    assert!(schema.comments(&text).is_empty());

    // A file imported by another: its own comments, by its own paths.
    let point = pool.get_message_by_name("notes.Point").expect("Point");
    assert_eq!(schema.comments(&point).text(), "A point in space.");
    let x = point.get_field_by_name("x").expect("x");
    assert_eq!(schema.comments(&x).trailing.as_deref(), Some("across"));
    let y = point.get_field_by_name("y").expect("y");
    assert_eq!(schema.comments(&y).leading.as_deref(), Some("up"));

    let mood = pool.get_enum_by_name("notes.Mood").expect("Mood");
    assert_eq!(schema.comments(&mood).text(), "How it felt.");
    let good = mood.get_value_by_name("MOOD_GOOD").expect("MOOD_GOOD");
    assert_eq!(schema.comments(&good).text(), "Good.\nreally");
}

#[test]
fn schema_json_carries_comments_and_omits_empty_ones() {
    let json = notes_schema().to_json();
    let service = &json["services"][0];
    assert_eq!(
        service["comment"],
        "Keeps notes.\nTwo lines of them.\nand a trailing word"
    );
    assert_eq!(service["methods"][0]["comment"], "Adds one note.");
    assert!(
        service["methods"][1].get("comment").is_none(),
        "{}",
        service["methods"][1]
    );
    let note = &json["messages"]["notes.Note"];
    assert_eq!(note["comment"], "One note.");
    assert!(note["fields"][0].get("comment").is_none(), "{note}");
    assert_eq!(note["fields"][1]["comment"], "Where it was written.");
    assert_eq!(
        json["messages"]["notes.Point"]["comment"],
        "A point in space."
    );
    let mood = &json["enums"]["notes.Mood"];
    assert_eq!(mood["comment"], "How it felt.");
    assert!(mood["values"][0].get("comment").is_none(), "{mood}");
    assert_eq!(mood["values"][1]["comment"], "Good.\nreally");
}

#[test]
fn describe_prints_comments_where_source_has_them() {
    let schema = notes_schema();
    assert_eq!(
        schema.describe(Some("notes.Notes")).expect("service"),
        "notes.Notes is a service:\n\
         // Keeps notes.\n\
         // Two lines of them.\n\
         service Notes { // and a trailing word\n\
         \x20 // Adds one note.\n\
         \x20 rpc Add(notes.Note) returns (notes.Note);\n\
         \x20 rpc Count(notes.Note) returns (notes.Note);\n\
         }\n"
    );
    assert_eq!(
        schema.describe(Some("Notes/Add")).expect("method"),
        "notes.Notes.Add is a method:\n// Adds one note.\nrpc Add(notes.Note) returns (notes.Note);\n"
    );
    let message = schema.describe(Some("notes.Note")).expect("message");
    assert!(
        message.contains(
            "// One note.\nmessage Note {\n  string text = 1;\n  // Where it was written.\n  notes.Point at = 2;\n  oneof colour {\n    // By name.\n    string named = 3;\n"
        ),
        "{message}"
    );
    let enumeration = schema.describe(Some("Mood")).expect("enum");
    assert!(
        enumeration.contains("  // Good.\n  MOOD_GOOD = 1; // really\n"),
        "{enumeration}"
    );
}

#[test]
fn the_built_in_descriptor_sets_keep_their_comments() {
    for set in [
        octaneweb_proto::DESCRIPTOR_SET,
        octaneweb_proto::DESCRIPTOR_SET_GEN1,
    ] {
        let mut builder = SchemaBuilder::new();
        builder
            .add_descriptor_set("built-in", set)
            .expect("decodes");
        let schema = builder.build().expect("builds");
        let service = schema.find_service("LiveLink").expect("LiveLink");
        assert!(
            schema
                .comments(&service)
                .text()
                .starts_with("Getters are marked NO_SIDE_EFFECTS"),
            "{:?}",
            schema.comments(&service)
        );
    }
}

#[test]
fn the_descriptor_set_has_every_file_after_its_imports_with_source_info() {
    let schema = notes_schema();
    let set = FileDescriptorSet::decode(schema.file_descriptor_set().as_slice()).expect("decodes");
    let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["common.proto", "notes.proto"]);
    assert!(set.file.iter().all(|f| f.source_code_info.is_some()));

    // The built-in schema: dozens of files with google/protobuf imports.
    let mut builder = SchemaBuilder::new();
    builder
        .add_descriptor_set("built-in", octaneweb_proto::DESCRIPTOR_SET)
        .expect("decodes")
        .add_reflection_services()
        .expect("reflection files");
    let schema = builder.build().expect("builds");
    let set = FileDescriptorSet::decode(schema.file_descriptor_set().as_slice()).expect("decodes");
    assert_eq!(set.file.len(), schema.pool().files().len());
    let mut seen = std::collections::HashSet::new();
    for file in &set.file {
        for import in &file.dependency {
            assert!(
                seen.contains(import.as_str()),
                "{} comes before its import {import}",
                file.name()
            );
        }
        seen.insert(file.name());
    }
    // Loads again as it is (protoc's --descriptor_set_in would too), comments included.
    let pool = DescriptorPool::decode(schema.file_descriptor_set().as_slice()).expect("a pool");
    for service in [
        "livelinkapi.LiveLinkService",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(pool.get_service_by_name(service).is_some(), "{service}");
    }
    let mut again = SchemaBuilder::new();
    again
        .add_descriptor_set("exported", &schema.file_descriptor_set())
        .expect("decodes");
    let again = again.build().expect("builds");
    let service = again.find_service("LiveLink").expect("LiveLink");
    assert!(!again.comments(&service).is_empty());
}

#[test]
fn the_descriptor_set_as_json_is_proto3_json() {
    let json = notes_schema()
        .file_descriptor_set_json()
        .expect("serializes");
    let files = json["file"].as_array().expect("file list");
    assert_eq!(files[0]["name"], "common.proto");
    assert_eq!(files[1]["name"], "notes.proto");
    assert_eq!(files[1]["messageType"][0]["name"], "Note");
    let locations = files[1]["sourceCodeInfo"]["location"]
        .as_array()
        .expect("source info");
    assert!(locations
        .iter()
        .any(|l| l["leadingComments"] == " Adds one note.\n"));
}
