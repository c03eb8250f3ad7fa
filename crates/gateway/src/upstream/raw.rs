//! Calls whose messages are protobuf bytes the gateway does not decode (a client that brings
//! its own codec), over the shared channel.
//!
//! (Skeleton: implemented by the WebSocket work.)
