//! Live render streaming for octaneweb.
//!
//! - [`hub::FrameHub`] subscribes to the render server's new-image callbacks (both callback
//!   generations), decodes each image, drops duplicates and keeps only the newest frame.
//! - [`encode`] turns a frame into raw RGBA8, PNG or JPEG (HDR tonemapped) once per encoding
//!   and shares the result with every viewer that asked for it.
//! - [`routes()`] serves the frames to browsers: a WebSocket with a binary header, single-frame
//!   endpoints with ETag, and the original proxy's SSE endpoints.
//!
//! The wire formats are described in `docs/render-stream.md`.
//!
//! ```no_run
//! # async fn run(schema: octaneweb_schema::Schema) -> Result<(), Box<dyn std::error::Error>> {
//! use octaneweb_gateway::upstream::{Upstream, UpstreamConfig};
//! use octaneweb_octane::{routes, FrameHub, FrameHubConfig};
//!
//! let upstream = Upstream::new(UpstreamConfig::default())?;
//! let hub = FrameHub::start(upstream, &schema, FrameHubConfig::default());
//! let render_routes: axum::Router = routes(hub.clone());
//! // Merge `render_routes` into the gateway's router; add the hub's metrics to /metrics:
//! let metrics = octaneweb_gateway::Metrics::new();
//! metrics.add_collector(hub.metrics_collector());
//! # let _ = render_routes;
//! # Ok(()) }
//! ```

pub mod encode;
pub mod frame;
pub mod hub;
pub mod metrics;
pub mod routes;

pub use encode::{EncodingKind, FrameHeader, Region, Tonemap, View, ViewRequest};
pub use frame::Frame;
pub use hub::{FrameHub, FrameHubConfig, HubError, HubEvent, HubEvents, HubStatus, Viewer};
pub use routes::{octanewebr, routes, routes_with_policy};
