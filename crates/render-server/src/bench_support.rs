//! Hooks for the crate's benchmarks (not a stable interface): drive the render loop
//! directly, without gRPC, and time how fast changes become images.

use std::sync::Arc;
use std::time::{Duration, Instant};

use octaneweb_pathtracer::Vec3;
use tokio::sync::watch;

use crate::engine::{self, Engine};
use crate::image::Frame;
use crate::{RenderServerConfig, RenderServerError};

/// A running render loop and a reader of its frames.
pub struct LatencyProbe {
    engine: Arc<Engine>,
    frames: watch::Receiver<Option<Arc<Frame>>>,
}

/// The first frame published for a change.
#[derive(Clone, Copy, Debug)]
pub struct FirstFrame {
    /// From the change being applied to the frame being published.
    pub latency: Duration,
    /// Block side of the frame's preview (1: full resolution).
    pub subsampled: u32,
}

impl LatencyProbe {
    /// Starts the render loop; `reduced_first_pass` false renders the first pass after a
    /// change at full resolution (the comparison).
    pub fn start(
        config: RenderServerConfig,
        reduced_first_pass: bool,
    ) -> Result<LatencyProbe, RenderServerError> {
        let engine = engine::start(config)?;
        engine.set_reduced_first_pass(reduced_first_pass);
        let frames = engine.subscribe_frames();
        Ok(LatencyProbe { engine, frames })
    }

    /// Moves the camera sideways by `step` (through [`Engine::apply`], as the node graph
    /// does) and waits for the first frame of that change; `None` after `timeout`.
    pub async fn move_camera(&mut self, step: f32, timeout: Duration) -> Option<FirstFrame> {
        let mut state = self.engine.scene_state();
        state.camera.position += Vec3::new(step, 0.0, 0.0);
        let started = Instant::now();
        self.engine.apply(state).ok()?;
        let level = self.engine.change_level();
        let frames = &mut self.frames;
        let wait = async {
            loop {
                if let Some(frame) = frames.borrow_and_update().as_ref() {
                    if frame.stats.change_level >= level {
                        return Some(frame.stats.subsampled);
                    }
                }
                frames.changed().await.ok()?;
            }
        };
        let subsampled = tokio::time::timeout(timeout, wait).await.ok()??;
        Some(FirstFrame {
            latency: started.elapsed(),
            subsampled,
        })
    }
}

impl Drop for LatencyProbe {
    fn drop(&mut self) {
        self.engine.shutdown();
    }
}
