//! Live render streaming for octaneweb.
//!
//! - [`hub::FrameHub`] subscribes to the render server's new-image callbacks (both callback
//!   generations), decodes each image, drops duplicates and keeps only the newest frame.
//! - [`encode`] turns a frame into raw RGBA8, PNG or JPEG (HDR tonemapped) once per encoding
//!   and shares the result with every viewer that asked for it.
//! - [`routes`] serves the frames to browsers: a WebSocket with a binary header, single-frame
//!   endpoints with ETag, and the original proxy's SSE endpoints.

pub mod encode;
pub mod frame;
pub mod hub;
pub mod metrics;
pub mod routes;

pub use encode::{EncodingKind, FrameHeader, Tonemap};
pub use frame::Frame;
pub use hub::{FrameHub, FrameHubConfig, HubError, HubEvent, HubEvents, HubStatus, Viewer};
pub use routes::routes;
