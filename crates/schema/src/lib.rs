//! Run-time protobuf schemas for octaneweb.
//!
//! A [`Schema`] is built by a [`SchemaBuilder`] from any mix of encoded descriptor sets,
//! `.proto` files or directories (compiled at run time, each file once) and descriptors
//! fetched by [`reflection::fetch`]. Inconsistent inputs, such as a real Octane SDK
//! `protodef/` directory with duplicate definitions, a non-UTF-8 comment and a file with a
//! syntax error, load as far as they consistently can: each skipped file yields one
//! [`SchemaWarning`].
//!
//! The schema answers lenient service lookups (`ApiItem`, `ApiItemService`,
//! `octaneapi.ApiItemService`), describes itself grpcurl-style ([`Schema::describe`]) and as
//! JSON ([`Schema::to_json`]), and [`json_to_message`] / [`message_to_json`] convert between
//! JSON bodies and dynamic messages ([`json_to_message_with`] and [`JsonOptions`] add the
//! original Python proxy's leniencies, for its JSON route only; [`JsonShape`] is how answers
//! are written: field names and defaults).

mod builder;
mod comments;
mod describe;
mod error;
mod json;
mod proto_loader;
mod proxy_compat;
pub mod reflection;
mod resolve;
mod schema;
pub mod schema_json;

pub use builder::SchemaBuilder;
pub use comments::{Comments, Documented};
pub use error::{JsonError, LookupError, SchemaError, SchemaWarning, ShapeValueError};
pub use json::{
    json_to_message, json_to_message_with, message_to_json, write_message_json, Defaults,
    FieldNames, JsonOptions, JsonShape,
};
pub use proto_loader::{message_to_proto_loader_json, unknown_top_level_fields, without_fields};
pub use schema::{has_no_side_effects, Schema};

// Re-exported so users need not depend on the exact prost-reflect version themselves.
pub use prost_reflect;
