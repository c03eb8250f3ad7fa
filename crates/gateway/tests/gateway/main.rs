//! The gateway over real sockets: JSON calls, SSE and NDJSON streams, errors, operations,
//! in front of the reference render server (and small purpose-built gRPC servers where a
//! server-side observation is needed).

mod batch;
mod cli_call;
mod codes;
mod common;
mod connect;
mod counting_upstream;
mod duplex;
mod errors;
mod grpc_web;
mod json_calls;
mod json_shape;
mod observe;
mod octane_scene;
mod ops;
mod passthrough;
mod proxy_compat;
mod reflection;
mod resilience;
mod security;
mod streams;
mod ws;
