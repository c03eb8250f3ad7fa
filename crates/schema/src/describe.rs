//! grpcurl-like `list` / `describe` text, with each definition's proto comments where
//! protoc-style source has them: the leading comment on the lines above, a one-line trailing
//! comment at the end of the definition's line (a longer one on the lines below it).

use std::fmt::Write as _;

use prost_reflect::{
    Cardinality, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
    ServiceDescriptor,
};

use crate::comments::Comments;
use crate::error::LookupError;
use crate::schema::Schema;

pub(crate) fn describe(schema: &Schema, name: Option<&str>) -> Result<String, LookupError> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        let mut out = String::new();
        for service in schema.services() {
            out.push_str(service.full_name());
            out.push('\n');
        }
        return Ok(out);
    };
    let pool = schema.pool();
    let bare = name.strip_prefix('.').unwrap_or(name);
    if let Some(message) = pool.get_message_by_name(bare) {
        return Ok(describe_message_top(schema, &message));
    }
    if let Some(enumeration) = pool.get_enum_by_name(bare) {
        return Ok(describe_enum_top(schema, &enumeration));
    }
    match schema.find_service(bare) {
        Ok(service) => return Ok(describe_service(schema, &service)),
        Err(error @ LookupError::AmbiguousService { .. }) => return Err(error),
        Err(_) => {}
    }
    if bare.contains('/') || bare.contains('.') {
        match schema.find_method_path(bare) {
            Ok(method) => return Ok(describe_method_top(schema, &method)),
            Err(error @ LookupError::AmbiguousService { .. }) => return Err(error),
            Err(error @ LookupError::UnknownMethod { .. }) if bare.contains('/') => {
                return Err(error)
            }
            Err(_) => {}
        }
    }
    // A bare message or enum name ("ApiNodePinInfoEx") when exactly one package defines it.
    let messages: Vec<MessageDescriptor> =
        pool.all_messages().filter(|m| m.name() == bare).collect();
    let enums: Vec<EnumDescriptor> = pool.all_enums().filter(|e| e.name() == bare).collect();
    match (messages.as_slice(), enums.as_slice()) {
        ([message], []) => Ok(describe_message_top(schema, message)),
        ([], [enumeration]) => Ok(describe_enum_top(schema, enumeration)),
        ([], []) => Err(LookupError::UnknownService {
            name: name.to_owned(),
        }),
        _ => {
            let mut candidates: Vec<String> = messages
                .iter()
                .map(|m| m.full_name().to_owned())
                .chain(enums.iter().map(|e| e.full_name().to_owned()))
                .collect();
            candidates.sort();
            Err(LookupError::AmbiguousService {
                name: name.to_owned(),
                candidates,
            })
        }
    }
}

fn describe_service(schema: &Schema, service: &ServiceDescriptor) -> String {
    let mut out = format!("{} is a service:\n", service.full_name());
    let comments = schema.comments(service);
    write_leading(&mut out, comments, 0);
    write_line(
        &mut out,
        0,
        &format!("service {} {{", service.name()),
        comments,
    );
    for method in service.methods() {
        let comments = schema.comments(&method);
        write_leading(&mut out, comments, 1);
        write_line(&mut out, 1, &method_signature(&method), comments);
    }
    out.push_str("}\n");
    out
}

fn describe_method_top(schema: &Schema, method: &MethodDescriptor) -> String {
    let mut out = format!(
        "{}.{} is a method:\n",
        method.parent_service().full_name(),
        method.name(),
    );
    let comments = schema.comments(method);
    write_leading(&mut out, comments, 0);
    write_line(&mut out, 0, &method_signature(method), comments);
    out
}

/// The leading comment as `//` lines at `depth`.
fn write_leading(out: &mut String, comments: &Comments, depth: usize) {
    if let Some(text) = &comments.leading {
        write_comment_lines(out, text, depth);
    }
}

/// `line` at `depth`, then its trailing comment: on the same line if it is one line long,
/// else on the lines below.
fn write_line(out: &mut String, depth: usize, line: &str, comments: &Comments) {
    indent(out, depth);
    out.push_str(line);
    match &comments.trailing {
        Some(text) if !text.contains('\n') => {
            let _ = writeln!(out, " // {text}");
        }
        Some(text) => {
            out.push('\n');
            write_comment_lines(out, text, depth);
        }
        None => out.push('\n'),
    }
}

fn write_comment_lines(out: &mut String, text: &str, depth: usize) {
    for line in text.lines() {
        indent(out, depth);
        if line.is_empty() {
            out.push_str("//\n");
        } else {
            let _ = writeln!(out, "// {line}");
        }
    }
}

/// `rpc name(pkg.In) returns (stream pkg.Out);`
pub(crate) fn method_signature(method: &MethodDescriptor) -> String {
    format!(
        "rpc {}({}{}) returns ({}{});",
        method.name(),
        if method.is_client_streaming() {
            "stream "
        } else {
            ""
        },
        method.input().full_name(),
        if method.is_server_streaming() {
            "stream "
        } else {
            ""
        },
        method.output().full_name(),
    )
}

fn describe_message_top(schema: &Schema, message: &MessageDescriptor) -> String {
    let mut out = format!("{} is a message:\n", message.full_name());
    write_message(schema, &mut out, message, 0);
    out
}

fn describe_enum_top(schema: &Schema, enumeration: &EnumDescriptor) -> String {
    let mut out = format!("{} is an enum:\n", enumeration.full_name());
    write_enum(schema, &mut out, enumeration, 0);
    out
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_message(schema: &Schema, out: &mut String, message: &MessageDescriptor, depth: usize) {
    let comments = schema.comments(message);
    write_leading(out, comments, depth);
    write_line(
        out,
        depth,
        &format!("message {} {{", message.name()),
        comments,
    );
    let mut written_oneofs = Vec::new();
    for field in message.fields() {
        match field.containing_oneof() {
            Some(oneof) if !oneof.is_synthetic() => {
                if written_oneofs.contains(&oneof.name().to_owned()) {
                    continue;
                }
                written_oneofs.push(oneof.name().to_owned());
                let comments = schema.comments(&oneof);
                write_leading(out, comments, depth + 1);
                write_line(
                    out,
                    depth + 1,
                    &format!("oneof {} {{", oneof.name()),
                    comments,
                );
                for member in oneof.fields() {
                    let comments = schema.comments(&member);
                    write_leading(out, comments, depth + 2);
                    write_line(out, depth + 2, &field_line(&member), comments);
                }
                indent(out, depth + 1);
                out.push_str("}\n");
            }
            _ => {
                let comments = schema.comments(&field);
                write_leading(out, comments, depth + 1);
                write_line(out, depth + 1, &field_line(&field), comments);
            }
        }
    }
    for child in message.child_messages().filter(|m| !m.is_map_entry()) {
        write_message(schema, out, &child, depth + 1);
    }
    for child in message.child_enums() {
        write_enum(schema, out, &child, depth + 1);
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn write_enum(schema: &Schema, out: &mut String, enumeration: &EnumDescriptor, depth: usize) {
    let comments = schema.comments(enumeration);
    write_leading(out, comments, depth);
    write_line(
        out,
        depth,
        &format!("enum {} {{", enumeration.name()),
        comments,
    );
    for value in enumeration.values() {
        let comments = schema.comments(&value);
        write_leading(out, comments, depth + 1);
        write_line(
            out,
            depth + 1,
            &format!("{} = {};", value.name(), value.number()),
            comments,
        );
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn field_line(field: &FieldDescriptor) -> String {
    let type_text = if field.is_map() {
        match field.kind() {
            Kind::Message(entry) => format!(
                "map<{}, {}>",
                type_name(&entry.map_entry_key_field().kind()),
                type_name(&entry.map_entry_value_field().kind())
            ),
            other => type_name(&other),
        }
    } else {
        let label = match field.cardinality() {
            Cardinality::Repeated => "repeated ",
            Cardinality::Required => "required ",
            Cardinality::Optional if field.supports_presence() && is_proto3_optional(field) => {
                "optional "
            }
            Cardinality::Optional => "",
        };
        format!("{label}{}", type_name(&field.kind()))
    };
    format!("{type_text} {} = {};", field.name(), field.number())
}

fn is_proto3_optional(field: &FieldDescriptor) -> bool {
    field.field_descriptor_proto().proto3_optional()
}

/// The proto spelling of a field type (full names for messages and enums).
pub(crate) fn type_name(kind: &Kind) -> String {
    match kind {
        Kind::Message(message) => message.full_name().to_owned(),
        Kind::Enum(enumeration) => enumeration.full_name().to_owned(),
        scalar => kind_name(scalar).to_owned(),
    }
}

/// The protobuf keyword of a kind: "double", "int64", ..., "message", "enum".
pub(crate) fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Double => "double",
        Kind::Float => "float",
        Kind::Int64 => "int64",
        Kind::Uint64 => "uint64",
        Kind::Int32 => "int32",
        Kind::Fixed64 => "fixed64",
        Kind::Fixed32 => "fixed32",
        Kind::Bool => "bool",
        Kind::String => "string",
        Kind::Bytes => "bytes",
        Kind::Uint32 => "uint32",
        Kind::Sfixed32 => "sfixed32",
        Kind::Sfixed64 => "sfixed64",
        Kind::Sint32 => "sint32",
        Kind::Sint64 => "sint64",
        Kind::Message(_) => "message",
        Kind::Enum(_) => "enum",
    }
}
