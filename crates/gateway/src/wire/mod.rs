//! Wire formats, the bottom layer: gRPC's length-prefixed framing and compression, the
//! `grpc-timeout` text, status codes as each protocol names them, error details
//! (`grpc-status-details-bin`), which headers are a call's metadata, and W3C trace context
//! (`traceparent`, `tracestate`). Nothing here knows
//! of calls, the upstream or HTTP routing; everything above uses it.

pub mod codes;
pub mod compression;
pub mod deadline;
pub mod framing;
pub mod metadata;
pub mod status_details;
pub mod trace_context;
