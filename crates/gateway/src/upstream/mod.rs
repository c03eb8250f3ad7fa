//! The upstream render server: a pool of HTTP/2 connections ([`pool`]) and the calls made
//! over it.
//!
//! Every front protocol and the render frame hub call the upstream through [`Upstream`].
//! Connections open lazily on first use and reconnect by themselves after the upstream
//! restarts; a call made while the upstream is down
//! fails fast with `UNAVAILABLE` (bounded by the connect timeout) instead of hanging.
//!
//! # Calls and deadlines
//!
//! Every call goes through one tower stack ([`stack`]: metrics, reachability, error mapping,
//! deadline) over the connection pool. Typed calls take it through [`Upstream::call`]: on the
//! wire the four RPC kinds are all a stream of messages each way, so a unary or
//! client-streaming call is that stream read to its one answer ([`Upstream::unary`],
//! [`Upstream::client_streaming`] and the others are shapes of it); byte-level forwarding
//! takes it through [`forward::send`]. A call's deadline is a `Duration` ([`CallOptions`],
//! capped by [`UpstreamConfig::default_timeout`] unless the call is a subscription meant to
//! last), carried to the stack as [`CallDeadline`]; the stack sends it as `grpc-timeout`
//! and ends the call, or its response stream, with `DEADLINE_EXCEEDED` when it passes.

pub mod codec;
pub mod forward;
pub mod local;
pub mod pool;
pub mod raw;
pub mod stack;

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use http::uri::PathAndQuery;
use prost_reflect::{DynamicMessage, MethodDescriptor};
use tonic::client::Grpc;
use tonic::transport::Endpoint;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::wire::deadline::clamp_grpc_timeout;
pub use codec::DynamicCodec;
pub use local::{LocalServiceError, LocalServices};
pub use pool::{PoolLimits, PoolStats, UpstreamChannel};
use stack::Reachability;
pub use stack::{CallDeadline, UpstreamService, UpstreamStats, UpstreamStatsSnapshot};

/// The upstream a gateway talks to when none is configured: Octane's LiveLink default.
pub const DEFAULT_TARGET: &str = "127.0.0.1:51022";
/// Largest message accepted from or sent to the upstream by default: a 4K float RGBA frame
/// (3840 x 2160 x 16 bytes, about 127 MiB) must fit.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
/// Connect timeout when none is configured; short so that a down upstream answers quickly.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Bound on a readiness probe.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 keep-alive ping interval. gRPC C++ servers (Octane) by default answer pings more
/// frequent than every 5 minutes on a quiet connection with GOAWAY, so this stays at that
/// floor; it only serves to notice a peer that vanished without closing the socket.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(300);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How to reach the upstream render server.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// `host:port` of the upstream (a `http://` or `https://` prefix is accepted too).
    pub target: String,
    /// TLS settings; `None` = plaintext HTTP/2 (h2c), what Octane speaks.
    pub tls: Option<UpstreamTls>,
    /// Bound on establishing the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Per-call deadline when the client gives none; `None` = no deadline.
    pub default_timeout: Option<Duration>,
    /// Largest message sent to or accepted from the upstream, in bytes.
    pub max_message_bytes: usize,
    /// How many connections and streams the gateway opens to the upstream, and the request
    /// metadata limit.
    pub pool: PoolLimits,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            target: DEFAULT_TARGET.to_owned(),
            tls: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            default_timeout: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            pool: PoolLimits::default(),
        }
    }
}

impl UpstreamConfig {
    /// The defaults with another target.
    pub fn with_target(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            ..Self::default()
        }
    }
}

/// TLS to the upstream. Only available when the crate is built with the `tls` feature;
/// otherwise [`Upstream::new`] refuses it with [`UpstreamError::TlsNotBuilt`].
#[derive(Clone, Debug, Default)]
pub struct UpstreamTls {
    /// Name to verify the server certificate against; default: the target's host.
    pub domain: Option<String>,
    /// PEM certificate(s) of a CA to trust in addition to the system roots.
    pub ca_certificate_pem: Option<Vec<u8>>,
    /// A client certificate to present, for upstreams that require one (mutual TLS).
    pub identity: Option<ClientIdentity>,
}

/// A client certificate chain and its private key, both PEM.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate chain, leaf first.
    pub certificate_pem: Vec<u8>,
    /// The certificate's private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in a log line.
        f.debug_struct("ClientIdentity")
            .field("certificate_pem_bytes", &self.certificate_pem.len())
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Why an [`Upstream`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The target is not a usable `host:port`.
    #[error("invalid upstream target {target:?}: {reason}")]
    InvalidTarget {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS was asked for but this build does not include it.
    #[error("TLS to the upstream was requested, but this build has no TLS support (build octaneweb-gateway with the `tls` feature)")]
    TlsNotBuilt,
    /// [`Upstream::new`] was called outside a tokio runtime.
    #[error("the upstream channel must be created inside a tokio runtime")]
    NoRuntime,
    /// The TLS settings were rejected.
    #[error("upstream TLS configuration: {0}")]
    Tls(String),
}

/// How one call is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// The deadline the client asked for; the configured default caps it.
    pub timeout: Option<Duration>,
    /// A subscription meant to last as long as its consumer: the configured default deadline
    /// (meant for ordinary calls) does not apply, only `timeout` if given.
    pub lasting: bool,
}

impl CallOptions {
    /// A call with this deadline (or none).
    pub fn with_timeout(timeout: Option<Duration>) -> Self {
        Self {
            timeout,
            lasting: false,
        }
    }
}

/// The upstream render server: the call stack ([`UpstreamService`]) over a pool of HTTP/2
/// connections ([`UpstreamChannel`]), and the calls made through it; cheap to clone.
///
/// Connections open on first use and reconnect by themselves; [`Upstream::is_connected`]
/// reflects the outcome of the last call or probe.
#[derive(Clone)]
pub struct Upstream {
    config: Arc<UpstreamConfig>,
    endpoint: Endpoint,
    pool: UpstreamChannel,
    service: UpstreamService,
    reachability: Arc<Reachability>,
    stats: Arc<UpstreamStats>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("target", &self.config.target)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Upstream {
    /// Set up the channel without connecting: the first call connects. Must be called from
    /// within a tokio runtime (the channel runs a background task).
    pub fn new(config: UpstreamConfig) -> Result<Upstream, UpstreamError> {
        let endpoint = endpoint(&config)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(UpstreamError::NoRuntime);
        }
        let reachability = Arc::new(Reachability::new(&config.target));
        let stats = Arc::new(UpstreamStats::default());
        let pool = UpstreamChannel::new(shared_windows(endpoint.clone()), config.pool.clone());
        let service = stack::stack(
            pool.clone(),
            Arc::clone(&reachability),
            Arc::clone(&stats),
            Arc::from(config.target.as_str()),
        );
        Ok(Upstream {
            config: Arc::new(config),
            endpoint,
            pool,
            service,
            reachability,
            stats,
        })
    }

    /// The same upstream over a connection of its own: what the render frame hub uses, so no
    /// amount of API traffic (or a call that makes the upstream drop a connection) can end
    /// the viewers' stream. Reachability and statistics are shared with `self`. Its flow-control window grows
    /// with the link (frames can be hundreds of MiB), which is safe because its one reader
    /// never stalls (see `shared_windows`).
    pub fn dedicated(&self) -> Upstream {
        // The hub's own few calls, whatever limits the API traffic is given.
        let limits = PoolLimits {
            max_connections: 1,
            max_request_header_bytes: self.config.pool.max_request_header_bytes,
            ..PoolLimits::default()
        };
        let pool = UpstreamChannel::new(self.endpoint.clone().http2_adaptive_window(true), limits);
        let service = stack::stack(
            pool.clone(),
            Arc::clone(&self.reachability),
            Arc::clone(&self.stats),
            Arc::from(self.config.target.as_str()),
        );
        Upstream {
            config: Arc::clone(&self.config),
            endpoint: self.endpoint.clone(),
            pool,
            service,
            reachability: Arc::clone(&self.reachability),
            stats: Arc::clone(&self.stats),
        }
    }

    /// Open the first connection now instead of at the first call (so that connecting can be
    /// timed and told apart from calling); nothing happens when one is open already. Unlike a
    /// connection opened by a call, the whole of it (TCP, TLS handshake, HTTP/2) is bounded by
    /// [`UpstreamConfig::connect_timeout`]. Fails with `UNAVAILABLE`, as a call would.
    pub async fn connect(&self) -> Result<(), Status> {
        let limit = self.config.connect_timeout;
        match tokio::time::timeout(limit, self.pool.connect()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(stack::failure_status(Box::new(error), &self.config.target)),
            Err(_) => Err(Status::unavailable(format!(
                "upstream {} is unreachable: no connection within the connect timeout of {} ms",
                self.config.target,
                limit.as_millis()
            ))),
        }
    }

    /// The same upstream, with the calls of `local` answered by the gateway itself (see
    /// [`local`]); every other call still goes upstream. The frame hub's connection
    /// ([`Upstream::dedicated`]) keeps going upstream for everything.
    pub fn answering(&self, local: LocalServices) -> Upstream {
        let mut upstream = self.clone();
        upstream.service.local = Some(local);
        upstream
    }

    /// The call stack, as the transport of a typed tonic client (cheap to clone). Put a
    /// [`CallDeadline`] in a request's extensions to give it a deadline.
    pub fn service(&self) -> UpstreamService {
        self.service.clone()
    }

    /// The connection pool's current size.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// How the upstream's answers and failures have gone so far.
    pub fn call_stats(&self) -> UpstreamStatsSnapshot {
        self.stats.snapshot()
    }

    /// The configured `host:port`.
    pub fn target(&self) -> &str {
        &self.config.target
    }

    /// The configuration this upstream was built from.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// True if the last call or probe reached the upstream.
    pub fn is_connected(&self) -> bool {
        self.reachability.is_connected()
    }

    /// How many times the upstream became reachable again after having been unreachable.
    pub fn reconnects(&self) -> u64 {
        self.reachability.reconnects()
    }

    /// Probe readiness with `grpc.health.v1.Health/Check`, bounded by a short timeout. A server
    /// without the health service (it answers `UNIMPLEMENTED`) still counts as ready: it
    /// answered over HTTP/2.
    pub async fn check_ready(&self) -> bool {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

        let mut client = HealthClient::new(self.service());
        let mut request = Request::new(HealthCheckRequest {
            service: String::new(),
        });
        request
            .extensions_mut()
            .insert(CallDeadline(READY_PROBE_TIMEOUT));
        match client.check(request).await {
            Ok(response) => response.get_ref().status == ServingStatus::Serving as i32,
            Err(status) => {
                status.code() != Code::Unavailable && status.code() != Code::DeadlineExceeded
            }
        }
    }

    /// A call's deadline: the one asked for, capped by the configured default unless the call
    /// is lasting.
    pub fn deadline(&self, options: CallOptions) -> Option<Duration> {
        let default = self.config.default_timeout.filter(|_| !options.lasting);
        match (options.timeout, default) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(clamp_grpc_timeout)
    }

    /// The one call path: `request`'s messages go to `method` as a stream, and the answer
    /// is the response stream, once its headers have arrived within the deadline.
    pub async fn call<C, S>(
        &self,
        method: &MethodDescriptor,
        request: Request<S>,
        codec: C,
        options: CallOptions,
    ) -> Result<Response<Streaming<C::Decode>>, Status>
    where
        C: tonic::codec::Codec,
        C::Encode: Send + Sync + 'static,
        C::Decode: Send + Sync + 'static,
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        self.open(method, request, codec, self.deadline(options))
            .await
    }

    async fn open<C, S>(
        &self,
        method: &MethodDescriptor,
        mut request: Request<S>,
        codec: C,
        timeout: Option<Duration>,
    ) -> Result<Response<Streaming<C::Decode>>, Status>
    where
        C: tonic::codec::Codec,
        C::Encode: Send + Sync + 'static,
        C::Decode: Send + Sync + 'static,
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        if let Some(timeout) = timeout {
            request.extensions_mut().insert(CallDeadline(timeout));
        }
        let path = method_path(method)?;
        let limit = self.config.max_message_bytes;
        let mut grpc = Grpc::new(self.service())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        grpc.ready()
            .await
            .map_err(|e| Status::from_error(e.into()))?;
        grpc.streaming(request, path, codec).await
    }

    /// [`Upstream::call`] read to its one answer (the stack's deadline covers the reading).
    async fn call_for_one<C, S>(
        &self,
        method: &MethodDescriptor,
        request: Request<S>,
        codec: C,
        options: CallOptions,
    ) -> Result<Response<C::Decode>, Status>
    where
        C: tonic::codec::Codec,
        C::Encode: Send + Sync + 'static,
        C::Decode: Send + Sync + 'static,
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        let response = self
            .open(method, request, codec, self.deadline(options))
            .await?;
        let (metadata, mut messages, extensions) = response.into_parts();
        let message = messages.message().await?.ok_or_else(|| {
            Status::internal(format!("{} answered with no message", method.full_name()))
        })?;
        // The status comes after the message: read to it.
        let metadata = match messages.trailers().await? {
            Some(trailers) => {
                let mut headers = metadata.into_headers();
                headers.extend(trailers.into_headers());
                tonic::metadata::MetadataMap::from_headers(headers)
            }
            None => metadata,
        };
        Ok(Response::from_parts(metadata, message, extensions))
    }

    /// Call a unary method.
    pub async fn unary(
        &self,
        method: &MethodDescriptor,
        request: Request<DynamicMessage>,
        options: CallOptions,
    ) -> Result<Response<DynamicMessage>, Status> {
        let request = request.map(|message| futures::stream::once(async move { message }));
        self.call_for_one(method, request, DynamicCodec::for_method(method), options)
            .await
    }

    /// Call a server-streaming method.
    pub async fn server_streaming(
        &self,
        method: &MethodDescriptor,
        request: Request<DynamicMessage>,
        options: CallOptions,
    ) -> Result<Response<Streaming<DynamicMessage>>, Status> {
        let request = request.map(|message| futures::stream::once(async move { message }));
        self.call(method, request, DynamicCodec::for_method(method), options)
            .await
    }

    /// Call a client-streaming method with the messages of `request`.
    pub async fn client_streaming<S>(
        &self,
        method: &MethodDescriptor,
        request: Request<S>,
        options: CallOptions,
    ) -> Result<Response<DynamicMessage>, Status>
    where
        S: Stream<Item = DynamicMessage> + Send + 'static,
    {
        self.call_for_one(method, request, DynamicCodec::for_method(method), options)
            .await
    }

    /// Call a bidirectional-streaming method.
    pub async fn streaming<S>(
        &self,
        method: &MethodDescriptor,
        request: Request<S>,
        options: CallOptions,
    ) -> Result<Response<Streaming<DynamicMessage>>, Status>
    where
        S: Stream<Item = DynamicMessage> + Send + 'static,
    {
        self.call(method, request, DynamicCodec::for_method(method), options)
            .await
    }
}

/// `/package.Service/Method`, the HTTP/2 path of a gRPC method.
fn method_path(method: &MethodDescriptor) -> Result<PathAndQuery, Status> {
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    PathAndQuery::try_from(path).map_err(|e| {
        Status::internal(format!(
            "method {} has no valid HTTP/2 path: {e}",
            method.full_name()
        ))
    })
}

/// Flow-control windows for connections shared by many clients' calls.
///
/// The `h2` crate ends a whole connection (`too_many_data_frames`) once the small DATA frames
/// received but not yet read exceed a budget of half the connection window. A browser that
/// stops reading its stream leaves that stream's frames unread in the gateway, so with
/// the usual windows a few stalled streams of small messages end every call on their
/// connection. Here the connection window is the largest HTTP/2 allows (a budget of 1 GiB,
/// only an allowance: memory is bounded by the stream windows), and each stream's window is
/// 256 KiB: at 100 streams per connection, even messages of a few bytes each, all unread,
/// stay within the budget. 256 KiB per round trip is ample on a LAN; the frame hub, whose
/// downloads are large, uses an adaptive window on its own connection instead.
fn shared_windows(endpoint: Endpoint) -> Endpoint {
    endpoint
        .initial_connection_window_size(MAX_WINDOW_BYTES)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
}

/// The largest HTTP/2 flow-control window (2^31 - 1).
const MAX_WINDOW_BYTES: u32 = (1 << 31) - 1;
/// Per-stream window of shared connections.
const STREAM_WINDOW_BYTES: u32 = 256 * 1024;

fn endpoint(config: &UpstreamConfig) -> Result<Endpoint, UpstreamError> {
    let invalid = |reason: String| UpstreamError::InvalidTarget {
        target: config.target.clone(),
        reason,
    };
    let target = config.target.trim();
    if target.is_empty() {
        return Err(invalid("empty".into()));
    }
    let authority = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .unwrap_or(target)
        .trim_end_matches('/');
    let parsed: http::uri::Authority = authority
        .parse()
        .map_err(|e| invalid(format!("expected host:port ({e})")))?;
    if parsed.port_u16().is_none() {
        return Err(invalid("no port (expected host:port)".into()));
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(false)
        .http2_max_header_list_size(pool::MAX_RESPONSE_HEADER_BYTES);
    match &config.tls {
        None => Ok(endpoint),
        Some(tls) => with_tls(endpoint, tls, parsed.host()),
    }
}

#[cfg(not(feature = "tls"))]
fn with_tls(_: Endpoint, _: &UpstreamTls, _: &str) -> Result<Endpoint, UpstreamError> {
    Err(UpstreamError::TlsNotBuilt)
}

#[cfg(feature = "tls")]
fn with_tls(endpoint: Endpoint, tls: &UpstreamTls, host: &str) -> Result<Endpoint, UpstreamError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut config = ClientTlsConfig::new()
        .domain_name(tls.domain.clone().unwrap_or_else(|| host.to_owned()))
        .with_native_roots();
    if let Some(pem) = &tls.ca_certificate_pem {
        config = config.ca_certificate(Certificate::from_pem(pem));
    }
    if let Some(identity) = &tls.identity {
        config = config.identity(Identity::from_pem(
            &identity.certificate_pem,
            &identity.key_pem,
        ));
    }
    endpoint
        .tls_config(config)
        .map_err(|e| UpstreamError::Tls(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_runtime_is_an_error_not_a_panic() {
        let err = Upstream::new(UpstreamConfig::default()).unwrap_err();
        assert!(matches!(err, UpstreamError::NoRuntime));
    }

    #[tokio::test]
    async fn targets_are_validated() {
        assert!(Upstream::new(UpstreamConfig::with_target("127.0.0.1:51022")).is_ok());
        assert!(Upstream::new(UpstreamConfig::with_target("http://localhost:1/")).is_ok());
        for bad in ["", "localhost", "a b:1", "host:notaport"] {
            let err = Upstream::new(UpstreamConfig::with_target(bad)).unwrap_err();
            assert!(
                matches!(err, UpstreamError::InvalidTarget { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[cfg(not(feature = "tls"))]
    #[tokio::test]
    async fn tls_without_the_feature_is_a_clear_error() {
        let config = UpstreamConfig {
            tls: Some(UpstreamTls::default()),
            ..UpstreamConfig::default()
        };
        let err = Upstream::new(config).unwrap_err();
        assert!(matches!(err, UpstreamError::TlsNotBuilt));
        assert!(err.to_string().contains("tls"));
    }

    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn tls_builds_an_https_channel_and_rejects_bad_certificates() {
        let config = UpstreamConfig {
            tls: Some(UpstreamTls {
                domain: Some("render.example".into()),
                ca_certificate_pem: None,
                identity: None,
            }),
            ..UpstreamConfig::with_target("render.example:51022")
        };
        assert!(Upstream::new(config).is_ok());
        let config = UpstreamConfig {
            tls: Some(UpstreamTls {
                domain: None,
                ca_certificate_pem: Some(b"not a certificate".to_vec()),
                identity: None,
            }),
            ..UpstreamConfig::default()
        };
        // Either rejected up front or at the first handshake; never a panic.
        if let Ok(upstream) = Upstream::new(config) {
            assert!(!upstream.check_ready().await);
        }
    }

    #[tokio::test]
    async fn the_deadline_is_the_smaller_one_unless_the_call_is_lasting() {
        let config = UpstreamConfig {
            default_timeout: Some(Duration::from_secs(10)),
            ..UpstreamConfig::default()
        };
        let upstream = Upstream::new(config).unwrap();
        let asked = |ms: u64| CallOptions::with_timeout(Some(Duration::from_millis(ms)));
        assert_eq!(
            upstream.deadline(CallOptions::default()),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            upstream.deadline(asked(250)),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            upstream.deadline(asked(60_000)),
            Some(Duration::from_secs(10))
        );
        let lasting = CallOptions {
            lasting: true,
            ..CallOptions::default()
        };
        assert_eq!(upstream.deadline(lasting), None);
        assert_eq!(
            upstream.deadline(CallOptions {
                lasting: true,
                ..asked(60_000)
            }),
            Some(Duration::from_secs(60))
        );
    }
}
