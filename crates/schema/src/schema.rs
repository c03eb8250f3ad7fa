//! The loaded [`Schema`] and its lenient lookups.

use std::sync::Arc;

use prost_reflect::{DescriptorPool, MethodDescriptor, ServiceDescriptor};

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
}

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
    pub(crate) fn new(pool: DescriptorPool, warnings: Vec<SchemaWarning>) -> Schema {
        let mut services: Vec<ServiceDescriptor> = pool.services().collect();
        services.sort_by(|a, b| a.full_name().cmp(b.full_name()));
        Schema {
            inner: Arc::new(Inner {
                pool,
                services,
                warnings,
            }),
        }
    }

    /// The descriptor pool holding every loaded file.
    pub fn pool(&self) -> &DescriptorPool {
        &self.inner.pool
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
