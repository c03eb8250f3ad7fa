//! Turns the schema flags into a loaded [`Schema`], in precedence order: --proto paths,
//! --descriptor-set files, --reflect, then the built-in reference protos; the reflection
//! services' own files come last in every schema (see [`build`]).

use anyhow::Context as _;
use octaneweb_schema::{Schema, SchemaBuilder};

use crate::cli::{BuiltinSchema, SchemaArgs};

/// Loads the schema the flags ask for. `upstream` is only contacted with --reflect, with
/// `headers` as metadata of the reflection requests.
pub async fn load(
    args: &SchemaArgs,
    upstream: &octaneweb_gateway::upstream::Upstream,
    headers: &[octaneweb_gateway::RequestHeader],
) -> anyhow::Result<Schema> {
    let mut builder = SchemaBuilder::new();
    for path in &args.proto {
        builder
            .add_proto_path(path)
            .with_context(|| format!("loading --proto {}", path.display()))?;
    }
    for path in &args.descriptor_set {
        builder
            .add_descriptor_set_file(path)
            .with_context(|| format!("loading --descriptor-set {}", path.display()))?;
    }
    if args.reflect {
        let transport = octaneweb_gateway::call::service_with_headers(upstream, headers);
        let files = octaneweb_schema::reflection::fetch(transport)
            .await
            .with_context(|| {
                format!("asking {} for its schema by reflection", upstream.target())
            })?;
        builder.add_file_descriptors(&format!("reflection of {}", upstream.target()), files)?;
    }
    let explicit = !args.proto.is_empty() || !args.descriptor_set.is_empty() || args.reflect;
    let builtin = args.builtin_schema.unwrap_or(if explicit {
        BuiltinSchema::None
    } else {
        BuiltinSchema::Gen2
    });
    add_builtin(&mut builder, builtin)?;
    build(builder)
}

/// Builds the schema after adding the reflection services' files, so reflection (answered
/// by the gateway, or by the upstream under --reflect) can be described and called like any
/// other service.
pub fn build(mut builder: SchemaBuilder) -> anyhow::Result<Schema> {
    builder.add_reflection_services()?;
    builder.build().context("building the schema")
}

/// Adds one of the built-in reference schemas.
pub fn add_builtin(builder: &mut SchemaBuilder, which: BuiltinSchema) -> anyhow::Result<()> {
    match which {
        BuiltinSchema::Gen2 => {
            builder
                .add_descriptor_set("built-in reference protos", octaneweb_proto::DESCRIPTOR_SET)?;
        }
        BuiltinSchema::Gen1 => {
            builder.add_descriptor_set(
                "built-in reference protos (callback generation 1)",
                octaneweb_proto::DESCRIPTOR_SET_GEN1,
            )?;
        }
        BuiltinSchema::None => {}
    }
    Ok(())
}
