//! octaneweb's gateway: it lets a web browser call any method of a gRPC schema loaded at run
//! time on one upstream render server.
//!
//! Its modules are layers, each using only those listed after it (`tests/layers.rs` checks):
//!
//! - [`server`]: the router behind the front door (host check against DNS rebinding,
//!   origin and cross-site checks, the token, rate limits), CORS, body limits and call ids,
//!   operations routes (health, readiness, metrics, schema) and the server loop (HTTP/1.1
//!   and HTTP/2, plain or TLS, connection caps, idle and send-stall timeouts).
//! - [`protocol`]: the client-facing protocols: the original proxy's JSON route (with NDJSON
//!   for server streams), Server-Sent Events, the multiplexed WebSocket `/ws` for all four
//!   RPC kinds, `POST /batch`, and the standard wire protocols on the same port: native gRPC
//!   pass-through, gRPC-Web and Connect (see `docs/protocols.md` and `docs/websocket.md`).
//! - [`call`](mod@call): one call from the command line.
//! - [`context`]: what every call needs: the shared state with the method cache, settings,
//!   call ids, shutdown, deadlines, request bodies and the JSON shape of answers.
//! - [`error`]: typed failures and their gRPC codes, HTTP statuses and JSON bodies;
//!   [`metrics`]: one Prometheus registry and the per-call log line; [`policy`]: which
//!   methods may be called (`--allow` / `--deny`).
//! - [`upstream`]: the one call path to the upstream, a tower stack (metrics, reachability,
//!   error mapping, deadline) over a pool of HTTP/2 connections, taken by typed,
//!   schema-driven calls and by byte-level forwarding alike.
//! - [`wire`]: gRPC framing, compression, `grpc-timeout`, codes and metadata rules.
//!
//! ```no_run
//! # async fn run(schema: octaneweb_schema::Schema) -> Result<(), Box<dyn std::error::Error>> {
//! use octaneweb_gateway::{router, serve, GatewayConfig, GatewayState, Upstream, UpstreamConfig};
//! let upstream = Upstream::new(UpstreamConfig::default())?;
//! let state = GatewayState::new(schema, upstream, GatewayConfig::default());
//! let app = router(state, axum::Router::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:51023").await?;
//! serve(listener, app, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod call;
pub mod context;
pub mod error;
pub mod metrics;
pub mod policy;
pub mod protocol;
pub mod server;
pub mod upstream;
pub mod wire;

pub use call::{
    call, call_with, call_with_timeout, CallEnd, CallError, CallSettings, OutputFormat,
    RequestHeader, RequestInput,
};
pub use context::{
    AccessToken, CallId, ConnectionSlot, GatewayConfig, GatewayParts, GatewayState, JsonRoute,
    ReflectionAnswers, ResolvedMethod, ShapeChoice, ShutdownSignal,
};
pub use error::GatewayError;
pub use metrics::ConnectionStats;
pub use metrics::{Metrics, Protocol};
pub use policy::MethodPolicy;
pub use server::{router, serve, serve_with, ConnectionLimits, ServeOptions};
pub use upstream::{ClientIdentity, Upstream, UpstreamConfig, UpstreamError, UpstreamTls};
