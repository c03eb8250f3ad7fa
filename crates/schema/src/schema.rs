//! The loaded [`Schema`] and its lenient lookups.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use prost_reflect::{DescriptorPool, FileDescriptor, MethodDescriptor, ServiceDescriptor};

use crate::comments::{CommentIndex, Comments, Documented};
use crate::error::{LookupError, SchemaWarning};

/// A loaded schema: every service, message and enum that loaded consistently.
///
/// Cheap to clone (an `Arc` inside) and immutable once built by
/// [`SchemaBuilder`](crate::SchemaBuilder).
#[derive(Clone)]
pub struct Schema {
    inner: Arc<Inner>,
}

struct Inner {
    pool: DescriptorPool,
    /// Services sorted by full name, so listings and candidate lists are stable.
    services: Vec<ServiceDescriptor>,
    warnings: Vec<SchemaWarning>,
    /// File name -> its `SourceCodeInfo`, encoded: kept beside the pool, which holds the
    /// files without it (decoded it would take ten times the room).
    source_info: HashMap<String, Vec<u8>>,
    /// Built on the first question about comments.
    comments: OnceLock<CommentIndex>,
}

/// What [`Schema::comments`] answers for a definition without comments.
static NO_COMMENTS: Comments = Comments {
    leading: None,
    trailing: None,
};

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("files", &self.inner.pool.files().len())
            .field("services", &self.inner.services.len())
            .field("warnings", &self.inner.warnings.len())
            .finish()
    }
}

impl Schema {
    pub(crate) fn new(
        pool: DescriptorPool,
        source_info: HashMap<String, Vec<u8>>,
        warnings: Vec<SchemaWarning>,
    ) -> Schema {
        let mut services: Vec<ServiceDescriptor> = pool.services().collect();
        services.sort_by(|a, b| a.full_name().cmp(b.full_name()));
        Schema {
            inner: Arc::new(Inner {
                pool,
                services,
                warnings,
                source_info,
                comments: OnceLock::new(),
            }),
        }
    }

    /// The descriptor pool holding every loaded file.
    pub fn pool(&self) -> &DescriptorPool {
        &self.inner.pool
    }

    /// The comments above and after a definition (service, method, message, field, oneof,
    /// enum or enum value) of this schema, from the source info its file was loaded with
    /// (`.proto` files and descriptor sets built with source info have it; reflection
    /// usually not). Empty when there are none.
    pub fn comments(&self, definition: &impl Documented) -> &Comments {
        let index = self
            .inner
            .comments
            .get_or_init(|| CommentIndex::new(&self.inner.source_info));
        index
            .get(definition.file().name(), definition.location_path())
            .unwrap_or(&NO_COMMENTS)
    }

    /// Every file of the schema as an encoded `google.protobuf.FileDescriptorSet`: each file
    /// after the files it imports, with its source info (comments) and options as loaded.
    /// What `protoc --include_imports --include_source_info -o` writes.
    pub fn file_descriptor_set(&self) -> Vec<u8> {
        use prost::encoding::{encode_key, encode_varint, WireType};
        let mut out = Vec::new();
        for file in self.files_in_dependency_order() {
            let mut encoded = file.encode_to_vec();
            if let Some(info) = self.inner.source_info.get(file.name()) {
                // Field 9 of FileDescriptorProto, `source_code_info`; fields may come in any
                // order, so appending it to the file's own bytes is the file with it.
                encode_key(9, WireType::LengthDelimited, &mut encoded);
                encode_varint(info.len() as u64, &mut encoded);
                encoded.extend_from_slice(info);
            }
            // Field 1 of FileDescriptorSet: `repeated FileDescriptorProto file`.
            encode_key(1, WireType::LengthDelimited, &mut out);
            encode_varint(encoded.len() as u64, &mut out);
            out.extend_from_slice(&encoded);
        }
        out
    }

    /// [`Schema::file_descriptor_set`] in the proto3 JSON mapping (camelCase names, defaults
    /// left out). Extension options the schema does not define are left out too.
    pub fn file_descriptor_set_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        use prost::Message as _;
        use prost_reflect::ReflectMessage as _;
        let set = prost_types::FileDescriptorSet {
            file: self
                .files_in_dependency_order()
                .map(|file| {
                    let mut proto = file.file_descriptor_proto().clone();
                    proto.source_code_info =
                        self.inner.source_info.get(file.name()).and_then(|info| {
                            prost_types::SourceCodeInfo::decode(info.as_slice()).ok()
                        });
                    proto
                })
                .collect(),
        };
        serde_json::to_value(set.transcode_to_dynamic())
    }

    /// The pool's files, each after its imports (a depth-first walk; the pool has no cycles).
    fn files_in_dependency_order(&self) -> impl Iterator<Item = FileDescriptor> {
        let mut ordered: Vec<FileDescriptor> = Vec::with_capacity(self.inner.pool.files().len());
        let mut seen: HashSet<String> = HashSet::new();
        for root in self.inner.pool.files() {
            if !seen.insert(root.name().to_owned()) {
                continue;
            }
            // (file, its imports not yet walked)
            let imports_of = |file: &FileDescriptor| file.dependencies().collect::<Vec<_>>();
            let mut stack = vec![(root.clone(), imports_of(&root).into_iter())];
            while let Some((file, imports)) = stack.last_mut() {
                match imports.next() {
                    Some(import) => {
                        if seen.insert(import.name().to_owned()) {
                            let imports = imports_of(&import).into_iter();
                            stack.push((import, imports));
                        }
                    }
                    None => {
                        ordered.push(file.clone());
                        stack.pop();
                    }
                }
            }
        }
        ordered.into_iter()
    }

    /// Every service, sorted by full name.
    pub fn services(&self) -> Vec<ServiceDescriptor> {
        self.inner.services.clone()
    }

    /// Files skipped while loading, with the reason for each.
    pub fn warnings(&self) -> &[SchemaWarning] {
        &self.inner.warnings
    }

    /// Find a service by a lenient name.
    ///
    /// Accepted, in this order of preference: the full name (`octaneapi.ApiItemService`), the
    /// full name without the `Service` suffix (`octaneapi.ApiItem`), the bare name
    /// (`ApiItemService`), the bare name without the suffix (`ApiItem`, `LiveLink`). If no
    /// service matches exactly, the same forms are tried ignoring ASCII case. Several matches
    /// at the same level of preference are an [`LookupError::AmbiguousService`].
    pub fn find_service(&self, name: &str) -> Result<ServiceDescriptor, LookupError> {
        let name = name.trim();
        // A leading dot is protobuf's spelling of an absolute name.
        let name = name.strip_prefix('.').unwrap_or(name);
        let exact = |a: &str, b: &str| a == b;
        let caseless = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        for matches in [
            &exact as &dyn Fn(&str, &str) -> bool,
            &caseless as &dyn Fn(&str, &str) -> bool,
        ] {
            let tiers: [&dyn Fn(&ServiceDescriptor) -> bool; 4] = [
                &|s| matches(s.full_name(), name),
                &|s| strip_service_suffix(s.full_name()).is_some_and(|f| matches(f, name)),
                &|s| matches(s.name(), name),
                &|s| strip_service_suffix(s.name()).is_some_and(|n| matches(n, name)),
            ];
            for tier in tiers {
                let found: Vec<&ServiceDescriptor> =
                    self.inner.services.iter().filter(|s| tier(s)).collect();
                match found.as_slice() {
                    [] => continue,
                    [one] => return Ok((*one).clone()),
                    many => {
                        // `services` is sorted, so the candidates are too.
                        return Err(LookupError::AmbiguousService {
                            name: name.to_owned(),
                            candidates: many.iter().map(|s| s.full_name().to_owned()).collect(),
                        });
                    }
                }
            }
        }
        Err(LookupError::UnknownService {
            name: name.to_owned(),
        })
    }

    /// Find a method of a leniently named service; the method name must match exactly.
    pub fn find_method(
        &self,
        service: &str,
        method: &str,
    ) -> Result<MethodDescriptor, LookupError> {
        let service = self.find_service(service)?;
        let found = service.methods().find(|m| m.name() == method);
        found.ok_or_else(|| LookupError::UnknownMethod {
            service: service.full_name().to_owned(),
            method: method.to_owned(),
        })
    }

    /// Find a method by path: `pkg.Service/Method`, `/pkg.Service/Method`, `Service/Method`
    /// or `Service.Method` (the service part is lenient as in [`Schema::find_service`]).
    pub fn find_method_path(&self, path: &str) -> Result<MethodDescriptor, LookupError> {
        let bad = || LookupError::BadMethodPath {
            path: path.to_owned(),
        };
        let trimmed = path.trim();
        let trimmed = trimmed.strip_prefix('/').unwrap_or(trimmed);
        let (service, method) = if trimmed.contains('/') {
            trimmed.split_once('/').ok_or_else(bad)?
        } else {
            trimmed.rsplit_once('.').ok_or_else(bad)?
        };
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        if !valid(service) || !valid(method) || method.contains('.') {
            return Err(bad());
        }
        self.find_method(service, method)
    }

    /// grpcurl-like description: no name lists every service (one full name per line); a
    /// service, method, message or enum name describes it in proto syntax.
    pub fn describe(&self, name: Option<&str>) -> Result<String, LookupError> {
        crate::describe::describe(self, name)
    }

    /// The schema as JSON for `GET /schema`; see [`crate::schema_json`] for the shape.
    pub fn to_json(&self) -> serde_json::Value {
        crate::schema_json::schema_to_json(self)
    }
}

fn strip_service_suffix(name: &str) -> Option<&str> {
    name.strip_suffix("Service")
        .filter(|rest| !rest.is_empty() && !rest.ends_with('.'))
}

/// True if the method carries `option idempotency_level = NO_SIDE_EFFECTS`: the only methods
/// a GET (which any web page can make) may run.
pub fn has_no_side_effects(method: &prost_reflect::MethodDescriptor) -> bool {
    use prost_types::method_options::IdempotencyLevel;
    method
        .method_descriptor_proto()
        .options
        .as_ref()
        .is_some_and(|o| o.idempotency_level() == IdempotencyLevel::NoSideEffects)
}
