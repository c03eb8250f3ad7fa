//! HTTP-level forwarding of gRPC requests to the upstream: the request's frames, metadata,
//! deadline and trailers pass through the shared channel without being decoded.
//!
//! (Skeleton: implemented by the wire-protocols work.)
