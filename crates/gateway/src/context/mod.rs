//! The call context: what every protocol needs to make a call, and nothing of HTTP routing.
//!
//! - [`GatewayState`]: the schema, the upstream, the settings, the metrics, and the one method
//!   cache every protocol resolves names through ([`GatewayState::resolve_method`],
//!   [`GatewayState::resolve_path`]), with the method policy applied there;
//! - the request extensions the server attaches ([`CallId`], [`ShutdownSignal`],
//!   [`ConnectionSlot`]);
//! - [`call`]: deadlines, request bodies, upstream requests and response streams, shared by
//!   the protocols;
//! - [`json_shape`]: which JSON shape an answer is written in (request, gateway, route).
//!
//! Protocols depend on this module; it depends on the upstream, errors, metrics and the
//! wire formats below it, never on protocols or the server.

pub mod call;
mod config;
pub mod json_shape;
pub mod rate_limit;
mod token;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::HeaderName;
use octaneweb_schema::Schema;
use prost_reflect::MethodDescriptor;
use tokio::sync::watch;

use crate::error::GatewayError;
use crate::metrics::{CallTracker, ConnectionStats, Metrics, Protocol, WsStats};
use crate::policy::MethodPolicy;
use crate::upstream::{LocalServices, Upstream};
use crate::wire::trace_context::CallTrace;

pub use config::{GatewayConfig, ReflectionAnswers, WsLimits, DEFAULT_MAX_BODY_BYTES};
pub use json_shape::{JsonRoute, ShapeChoice};
pub use token::{AccessToken, TokenError, MIN_TOKEN_LEN};

/// Most distinct (service, method) spellings remembered by the method cache.
const METHOD_CACHE_LIMIT: usize = 4096;

/// The request and response header carrying a call's id.
pub static X_CALL_ID: HeaderName = HeaderName::from_static("x-call-id");

/// A method resolved from a (lenient) service and method name.
#[derive(Clone, Debug)]
pub struct ResolvedMethod {
    /// The method's descriptor.
    pub descriptor: MethodDescriptor,
    /// `package.Service/Method`, the metrics and log label.
    pub label: Arc<str>,
    /// `/package.Service/Method`, the HTTP/2 path a call to it goes upstream under (whatever
    /// spelling the client used).
    pub path: PathAndQuery,
}

/// Everything a gateway route needs; cheap to clone: one reference count, since routes and
/// middleware clone it several times per request (separate counts for each part were 2% of
/// the gateway's time under load, in cache-line traffic between cores).
#[derive(Clone)]
pub struct GatewayState(Arc<GatewayParts>);

/// What a [`GatewayState`] holds (reached through it by `Deref`).
pub struct GatewayParts {
    /// The schema every call is resolved against.
    pub schema: Schema,
    /// The upstream render server.
    pub upstream: Upstream,
    /// Browser-facing settings.
    pub config: Arc<GatewayConfig>,
    /// Call metrics.
    pub metrics: Arc<Metrics>,
    /// service spelling -> method name -> method; two levels so a lookup needs no allocation.
    methods: RwLock<HashMap<String, HashMap<String, ResolvedMethod>>>,
    cached_methods: std::sync::atomic::AtomicUsize,
    schema_json: OnceLock<Bytes>,
    descriptor_set: OnceLock<Bytes>,
    websocket: Arc<WsStats>,
    connections: Arc<ConnectionStats>,
    rate_limit: Option<rate_limit::CallRateLimit>,
}

impl std::ops::Deref for GatewayState {
    type Target = GatewayParts;

    fn deref(&self) -> &GatewayParts {
        &self.0
    }
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayState")
            .field("upstream", &self.upstream)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GatewayState {
    /// State for a gateway in front of `upstream`, resolving calls against `schema`. Unless
    /// `config.reflection` says the upstream answers reflection, the gateway answers it from
    /// `schema` (see [`crate::upstream::local`]).
    pub fn new(schema: Schema, upstream: Upstream, config: GatewayConfig) -> GatewayState {
        let upstream = match config.reflection {
            ReflectionAnswers::Upstream => upstream,
            ReflectionAnswers::Gateway => {
                match LocalServices::reflection(&schema.file_descriptor_set()) {
                    Ok(local) => upstream.answering(local),
                    // Not expected: the schema's files passed prost-reflect's stricter
                    // checks. The upstream's own reflection is the best answer left.
                    Err(error) => {
                        tracing::error!(%error, "reflection calls go to the upstream");
                        upstream
                    }
                }
            }
        };
        let metrics = Arc::new(Metrics::new());
        let websocket = Arc::new(WsStats::default());
        metrics.add_collector(Arc::clone(&websocket));
        let connections = Arc::new(ConnectionStats::default());
        metrics.add_collector(Arc::clone(&connections));
        metrics.add_collector(crate::metrics::UpstreamCollector(upstream.clone()));
        let rate_limit = config.rate_limit.map(rate_limit::CallRateLimit::new);
        GatewayState(Arc::new(GatewayParts {
            schema,
            upstream,
            config: Arc::new(config),
            metrics,
            methods: RwLock::new(HashMap::new()),
            cached_methods: std::sync::atomic::AtomicUsize::new(0),
            schema_json: OnceLock::new(),
            descriptor_set: OnceLock::new(),
            websocket,
            connections,
            rate_limit,
        }))
    }

    /// Counters of the listening side; pass them to [`crate::serve_with`] so `/metrics` shows them.
    pub fn connection_stats(&self) -> Arc<ConnectionStats> {
        Arc::clone(&self.connections)
    }

    /// Takes one call from `peer`'s allowance under `--rate-limit`.
    pub fn admit_call(&self, peer: Option<SocketAddr>) -> Result<(), GatewayError> {
        match (&self.rate_limit, peer) {
            (Some(limit), Some(peer)) if !limit.admit(peer.ip()) => {
                Err(GatewayError::RateLimited {
                    limit: limit.per_second(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Refuses `method` (`package.Service/Method`) if the method policy does.
    pub fn authorize(&self, method: &str) -> Result<(), GatewayError> {
        if self.config.methods.permits(method) {
            Ok(())
        } else {
            Err(GatewayError::MethodRefused {
                method: method.trim_start_matches('/').to_owned(),
            })
        }
    }

    /// Gauges of the WebSockets served with this state (sockets, calls, queued bytes).
    pub fn websocket_stats(&self) -> &WsStats {
        &self.websocket
    }

    /// Resolve a leniently named method, remembering the answer for the next call; a method
    /// the policy refuses is [`GatewayError::MethodRefused`].
    pub fn resolve_method(
        &self,
        service: &str,
        method: &str,
    ) -> Result<ResolvedMethod, GatewayError> {
        let resolved = self.lookup_method(service, method)?;
        self.authorize(&resolved.label)?;
        Ok(resolved)
    }

    fn lookup_method(&self, service: &str, method: &str) -> Result<ResolvedMethod, GatewayError> {
        use std::sync::atomic::Ordering;
        {
            let cache = self.methods.read().unwrap_or_else(|p| p.into_inner());
            if let Some(found) = cache.get(service).and_then(|m| m.get(method)) {
                return Ok(found.clone());
            }
        }
        let descriptor = self.schema.find_method(service, method)?;
        let label = format!(
            "{}/{}",
            descriptor.parent_service().full_name(),
            descriptor.name()
        );
        let path = PathAndQuery::try_from(format!("/{label}")).map_err(|e| {
            GatewayError::BadRequest(format!("method {label} has no valid HTTP/2 path: {e}"))
        })?;
        let resolved = ResolvedMethod {
            descriptor,
            label: Arc::from(label),
            path,
        };
        // Only successful lookups are cached, and only up to a bound, so odd spellings sent
        // by clients cannot grow the cache without limit.
        if self.cached_methods.load(Ordering::Relaxed) < METHOD_CACHE_LIMIT {
            let mut cache = self.methods.write().unwrap_or_else(|p| p.into_inner());
            let previous = cache
                .entry(service.to_owned())
                .or_default()
                .insert(method.to_owned(), resolved.clone());
            if previous.is_none() {
                self.cached_methods.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(resolved)
    }

    /// The tracker's method label for the gRPC path `path` (`/package.Service/Method`): its
    /// name if the schema knows the method by exactly that path, else `unresolved`, so paths
    /// the schema does not know (forwarded all the same) cannot add metric series.
    pub fn label_of_path(&self, path: &str) -> Arc<str> {
        let name = path.trim_start_matches('/');
        name.split_once('/')
            .and_then(|(service, method)| self.lookup_method(service, method).ok())
            .map(|resolved| resolved.label)
            .filter(|label| &**label == name)
            .unwrap_or_else(call::unresolved_label)
    }

    /// Resolve a method given as one path: `Service/Method`, `pkg.Service/Method`,
    /// `/pkg.Service/Method` or `Service.Method`, through the same cache and policy as
    /// [`GatewayState::resolve_method`].
    pub fn resolve_path(&self, path: &str) -> Result<ResolvedMethod, GatewayError> {
        let trimmed = path.trim();
        let trimmed = trimmed.strip_prefix('/').unwrap_or(trimmed);
        let split = if trimmed.contains('/') {
            trimmed.split_once('/')
        } else {
            trimmed.rsplit_once('.')
        };
        match split {
            Some((service, method))
                if !service.is_empty() && !method.is_empty() && !method.contains(['/', '.']) =>
            {
                self.resolve_method(service, method)
            }
            // Let the schema explain what is wrong with the path.
            _ => {
                let descriptor = self.schema.find_method_path(path)?;
                self.resolve_method(descriptor.parent_service().full_name(), descriptor.name())
            }
        }
    }

    /// `Schema::to_json`, serialized once. Under a method policy every method the policy
    /// refuses carries `"refused": true`, and `"policy"` lists the patterns.
    pub(crate) fn schema_json(&self) -> Bytes {
        self.schema_json
            .get_or_init(|| {
                let mut json = self.schema.to_json();
                let policy = &self.config.methods;
                if !policy.is_open() {
                    mark_refused_methods(&mut json, policy);
                }
                Bytes::from(serde_json::to_vec(&json).unwrap_or_default())
            })
            .clone()
    }

    /// `Schema::file_descriptor_set`, encoded once, for `GET /schema.binpb`.
    pub(crate) fn descriptor_set(&self) -> Bytes {
        self.descriptor_set
            .get_or_init(|| Bytes::from(self.schema.file_descriptor_set()))
            .clone()
    }
}

fn mark_refused_methods(json: &mut serde_json::Value, policy: &MethodPolicy) {
    let services = json
        .get_mut("services")
        .and_then(|s| s.as_array_mut())
        .into_iter()
        .flatten();
    for service in services {
        let methods = service
            .get_mut("methods")
            .and_then(|m| m.as_array_mut())
            .into_iter()
            .flatten();
        for method in methods {
            let path = method.get("path").and_then(|p| p.as_str()).unwrap_or("");
            if !policy.permits(path) {
                method["refused"] = serde_json::Value::Bool(true);
            }
        }
    }
    let (allow, deny) = policy.patterns();
    json["policy"] = serde_json::json!({ "allow": allow, "deny": deny });
}

/// The id of the current call: the client's `X-Call-Id` (if short and printable) or a fresh
/// UUID. Present as a request extension on every request through [`crate::router`].
#[derive(Clone, Debug)]
pub struct CallId(pub Arc<str>);

/// Fires when the server begins shutting down, so long-lived streams can end cleanly.
/// Present as a request extension on requests served by [`crate::serve`].
#[derive(Clone, Debug)]
pub struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    /// A signal that fires when `receiver` sees `true` (or its sender is dropped).
    pub(crate) fn new(receiver: watch::Receiver<bool>) -> Self {
        Self(receiver)
    }

    /// Resolves once shutdown has begun.
    pub async fn wait(&mut self) {
        // An error means the sender is gone: the server is gone too, so treat it as shutdown.
        let _ = self.0.wait_for(|down| *down).await;
    }

    /// [`ShutdownSignal::wait`] as a future of its own (for the upstream layer, which knows
    /// nothing of the server).
    pub fn boxed(mut self) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async move { self.wait().await })
    }

    /// Resolves once shutdown has begun; never if `signal` is `None`.
    pub async fn wait_opt(signal: Option<ShutdownSignal>) {
        match signal {
            Some(mut signal) => signal.wait().await,
            None => std::future::pending().await,
        }
    }
}

/// What every call starts from, taken from its request once: the state, the call's id, and
/// the shutdown signal. Every protocol's handler begins with it (an axum extractor for the
/// routed protocols; [`CallScope::new`] where a middleware hands the request over).
#[derive(Clone, Debug)]
pub struct CallScope {
    /// The gateway's state.
    pub state: GatewayState,
    /// The call's id (the client's `X-Call-Id`, or a fresh one).
    pub id: Arc<str>,
    /// Fires when the server shuts down (absent outside [`crate::serve`]).
    pub shutdown: Option<ShutdownSignal>,
    /// The gateway's span of the call (W3C trace context), continuing the caller's trace.
    pub trace: CallTrace,
}

impl CallScope {
    /// The scope of a request with these extensions.
    pub fn new(state: GatewayState, extensions: &http::Extensions) -> Self {
        // Requests through the router carry their trace; one made up here starts a new one.
        let trace = extensions
            .get::<CallTrace>()
            .cloned()
            .unwrap_or_else(|| CallTrace::continuing(None, None, state.metrics.exports_spans()));
        Self {
            state,
            trace,
            id: extensions
                .get::<CallId>()
                .map(|c| Arc::clone(&c.0))
                .unwrap_or_else(|| Arc::from("")),
            shutdown: extensions.get::<ShutdownSignal>().cloned(),
        }
    }

    /// Start counting the call for `protocol` (its method label set once resolved).
    pub fn track(&self, protocol: Protocol) -> CallTracker {
        let mut tracker =
            self.state
                .metrics
                .start_call(protocol, call::unresolved_label(), Arc::clone(&self.id));
        tracker.set_trace(self.trace.clone());
        tracker
    }
}

impl axum::extract::FromRequestParts<GatewayState> for CallScope {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &GatewayState,
    ) -> Result<Self, Self::Rejection> {
        Ok(CallScope::new(state.clone(), &parts.extensions))
    }
}

/// Keeps a client connection counted against the listener's caps while something outside
/// the connection's task (a WebSocket handler after an upgrade) still serves it. Present as a
/// request extension on requests served by [`crate::serve`].
#[derive(Clone)]
pub struct ConnectionSlot {
    _hold: Arc<dyn std::any::Any + Send + Sync>,
}

impl ConnectionSlot {
    /// A slot held until every clone of it is dropped.
    pub fn new(hold: impl std::any::Any + Send + Sync) -> Self {
        Self {
            _hold: Arc::new(hold),
        }
    }
}

impl std::fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSlot").finish_non_exhaustive()
    }
}
