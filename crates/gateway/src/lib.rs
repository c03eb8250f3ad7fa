//! octaneweb's gateway: it lets a web browser call any method of a gRPC schema loaded at run
//! time on one upstream render server.
//!
//! - [`upstream`]: the single shared HTTP/2 channel to the upstream and dynamic (schema-driven)
//!   unary and streaming calls.

pub mod upstream;

pub use upstream::{Upstream, UpstreamConfig, UpstreamError, UpstreamTls};
