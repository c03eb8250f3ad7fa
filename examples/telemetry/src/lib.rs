//! An example gRPC service for octaneweb that has nothing to do with rendering: a simulated
//! model-training job (`telemetry.v1.TrainingService`) that streams its batches and status to
//! dashboards and takes commands back from them.
//!
//! It shows every RPC kind through the gateway: `GetJob` and `RestartJob` are unary,
//! `WatchMetrics` streams from the server, `RecordNotes` streams from the client and
//! `Control` streams both ways (pause, resume, set the learning rate). The server offers gRPC
//! reflection, so the gateway loads the schema from it:
//!
//! ```text
//! telemetry-server --listen 127.0.0.1:50070
//! octaneweb serve --upstream 127.0.0.1:50070 --reflect --builtin-schema none
//! ```
//!
//! In a test, start it on an ephemeral port:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use octaneweb_example_telemetry::{TelemetryConfig, TelemetryServer};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let address = listener.local_addr()?;
//! let server = TelemetryServer::new(TelemetryConfig::default())?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let task = tokio::spawn(server.serve(listener, async { stopped.await.ok(); }));
//! // ... talk to `address` with `proto::training_service_client::TrainingServiceClient` ...
//! # let _ = address;
//! stop.send(()).ok();
//! task.await??;
//! # Ok(())
//! # }
//! ```

mod job;
mod server;

pub use job::{MAX_LEARNING_RATE, MAX_NOTES, MAX_NOTE_CHARS, MAX_TOTAL_STEPS};
pub use server::{
    TelemetryConfig, TelemetryError, TelemetryServer, MAX_OPEN_STREAMS, MAX_STEPS_PER_SECOND,
};

/// Types generated from `proto/telemetry.proto` (package `telemetry.v1`), server and client.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("telemetry.v1");
}

/// The encoded `FileDescriptorSet` of `proto/telemetry.proto`, as served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/telemetry.bin"));
