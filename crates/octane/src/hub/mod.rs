//! The frame hub: one subscription to the upstream's new-image callbacks, the newest frame,
//! and its fan-out to any number of viewers. Knows nothing of HTTP.
//!
//! - The subscription starts on the first viewer (or at once with
//!   [`FrameHubConfig::autostart`]), registers `setOnNewImageCallback`, opens
//!   `callbackChannel` and, in callback generation 2, grabs and releases each new render
//!   result. If the upstream goes away it re-registers and reopens with exponential backoff.
//!   When the last viewer has been gone for [`FrameHubConfig::idle_grace`] it unsets the
//!   callback (unless [`FrameHubConfig::unset_when_idle`] is off).
//! - Only the newest frame is kept (a `watch` channel). Each viewer takes the newest frame
//!   whenever it is ready for one, so a slow viewer skips frames and never holds anyone up.
//! - Encodings are computed at most once per frame and key and shared (see `cache`).

mod cache;
pub mod plan;
mod subscription;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use octaneweb_gateway::upstream::Upstream;
use octaneweb_schema::Schema;
use serde::Serialize;
use tokio::sync::{broadcast, watch, Notify};

use crate::encode::{
    EncodeError, EncodedFrame, EncodingKey, EncodingKind, Format, Tonemap, ViewRequest,
};
use crate::frame::{Frame, RenderImage};
use crate::metrics::{HubMetrics, MetricsSnapshot};
use cache::EncodeCache;
pub use plan::{CallbackGeneration, PlanError};

/// Settings of a [`FrameHub`].
#[derive(Clone, Debug)]
pub struct FrameHubConfig {
    /// Subscribe at start instead of waiting for the first viewer (default false).
    pub autostart: bool,
    /// Unset the callback and close the stream when no viewer is left (default true).
    pub unset_when_idle: bool,
    /// How long the subscription outlives the last viewer, a frame poll or a
    /// register-callback request (default 10 s).
    pub idle_grace: Duration,
    /// Most different encodings cached for the newest frame (default 16). Viewers asking for
    /// more still get frames, encoded for them alone.
    pub max_cached_encodings: usize,
    /// Encoding of a WebSocket viewer until it asks for another (default JPEG).
    pub default_encoding: EncodingKind,
    /// JPEG quality until a viewer asks for another, 1..=100 (default 85).
    pub default_quality: u8,
    /// Tonemap of HDR frames until a viewer asks for another.
    pub default_tonemap: Tonemap,
    /// Most viewers at once, WebSocket and SSE together (default 1024).
    pub max_viewers: usize,
    /// Interval of the original proxy's SSE `ping` event (default 30 s).
    pub sse_ping_interval: Duration,
    /// Deadline of each unary call to the upstream (register, grab, release; default 10 s).
    pub call_timeout: Duration,
    /// First retry delay after the upstream went away (default 100 ms); doubles per failure.
    pub backoff_min: Duration,
    /// Longest retry delay (default 5 s).
    pub backoff_max: Duration,
    /// How long `POST /render/register-callback` waits for the registration (default 5 s).
    pub register_wait: Duration,
}

impl Default for FrameHubConfig {
    fn default() -> Self {
        FrameHubConfig {
            autostart: false,
            unset_when_idle: true,
            idle_grace: Duration::from_secs(10),
            max_cached_encodings: 16,
            default_encoding: EncodingKind::Jpeg,
            default_quality: 85,
            default_tonemap: Tonemap::default(),
            max_viewers: 1024,
            sse_ping_interval: Duration::from_secs(30),
            call_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            register_wait: Duration::from_secs(5),
        }
    }
}

/// Why a hub request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HubError {
    /// The viewer limit is reached.
    #[error("too many viewers (limit {limit})")]
    TooManyViewers {
        /// [`FrameHubConfig::max_viewers`].
        limit: usize,
    },
    /// The hub has no upstream (a detached hub fed by [`FrameHub::publish_image`]).
    #[error("the frame hub has no upstream")]
    NoUpstream,
    /// The schema lacks the callback interface.
    #[error(transparent)]
    Schema(#[from] PlanError),
    /// Registration did not finish in time.
    #[error("the upstream did not confirm the callback registration within {0:?}")]
    RegistrationTimeout(Duration),
    /// Registration failed.
    #[error("callback registration failed: {0}")]
    Registration(String),
}

/// Callback events relayed to viewers.
#[derive(Clone, Debug, PartialEq)]
pub enum HubEvent {
    /// `newStatistics` from the upstream.
    NewStatistics {
        /// Callback id (generation 1 sends it; generation 2: the registration's id).
        callback_id: i32,
        /// `user_data` as sent.
        user_data: u64,
        /// Arrival, seconds since the Unix epoch.
        timestamp: f64,
    },
    /// `renderFailure` from the upstream.
    RenderFailure {
        /// See [`HubEvent::NewStatistics`].
        callback_id: i32,
        /// `user_data` as sent.
        user_data: u64,
        /// Arrival, seconds since the Unix epoch.
        timestamp: f64,
    },
    /// `projectManagerChanged` from the upstream.
    ProjectManagerChanged {
        /// Arrival, seconds since the Unix epoch.
        timestamp: f64,
    },
    /// The callback stream opened (`true`) or broke (`false`).
    Upstream {
        /// Whether the stream is open now.
        connected: bool,
    },
}

/// State of the callback registration.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Registration {
    Idle,
    Registering,
    Registered(i32),
    Failed(String),
}

/// The newest frame, summarised for status output.
#[derive(Debug, Clone, Serialize)]
pub struct LatestFrame {
    /// Sequence number.
    pub seq: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Tonemapped samples per pixel.
    pub samples_per_pixel: f32,
    /// Whether the source was HDR.
    pub hdr: bool,
    /// Milliseconds since it arrived.
    pub age_ms: u64,
}

/// What the hub is doing; the `status` object of the original proxy's routes.
#[derive(Debug, Clone, Serialize)]
pub struct HubStatus {
    /// The upstream target ("" for a detached hub).
    pub upstream: String,
    /// Callback generation of the schema (1 or 2), if usable.
    pub generation: Option<u8>,
    /// Why the schema cannot drive the render stream, if it cannot.
    pub schema_error: Option<String>,
    /// A callback is registered now.
    pub registered: bool,
    /// The registered callback's id (0 when none).
    pub callback_id: i32,
    /// The callback stream is open now.
    pub connected: bool,
    /// The subscription is wanted now (viewers, a recent poll, autostart).
    pub active: bool,
    /// Viewers connected now.
    pub viewers: u64,
    /// The newest frame, if any.
    pub latest_frame: Option<LatestFrame>,
    /// The last subscription error, if any.
    pub last_error: Option<String>,
    /// Image types seen and not supported.
    pub unsupported_image_types: Vec<i32>,
    /// Encodings of the newest frame held in the cache.
    pub cached_encodings: usize,
    /// Counters.
    pub metrics: MetricsSnapshot,
}

pub(crate) struct Shared {
    pub config: FrameHubConfig,
    pub frames: watch::Sender<Option<Arc<Frame>>>,
    pub events: broadcast::Sender<HubEvent>,
    pub registration: watch::Sender<Registration>,
    pub connected: AtomicBool,
    pub metrics: Arc<HubMetrics>,
    cache: EncodeCache,
    next_seq: AtomicU64,
    publish_lock: Mutex<()>,
    viewers: AtomicU64,
    /// Demand without viewers lasts until this instant.
    lease_until: Mutex<Option<Instant>>,
    pub demand_changed: Notify,
    pub last_error: Mutex<Option<String>>,
    pub unsupported: Mutex<BTreeSet<i32>>,
    upstream: String,
    plan: Result<plan::Plan, PlanError>,
    stop: watch::Sender<bool>,
}

impl Shared {
    /// Whether the subscription should run now.
    pub fn wanted(&self) -> bool {
        if *self.stop.borrow() {
            return false;
        }
        if self.config.autostart || self.viewers.load(Ordering::Acquire) > 0 {
            return true;
        }
        let lease = self
            .lease_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        lease.is_some_and(|until| Instant::now() < until)
    }

    /// Keeps the subscription wanted for the idle grace from now.
    pub fn lease(&self) {
        let until = Instant::now() + self.config.idle_grace;
        {
            let mut lease = self
                .lease_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if lease.is_none_or(|old| old < until) {
                *lease = Some(until);
            }
        }
        self.demand_changed.notify_waiters();
    }

    pub fn set_error(&self, error: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }

    pub fn set_connected(&self, connected: bool) {
        if self.connected.swap(connected, Ordering::AcqRel) != connected {
            // No receivers is fine: nobody is watching.
            let _ = self.events.send(HubEvent::Upstream { connected });
        }
    }

    /// Publishes a decoded image unless it duplicates the newest frame.
    pub fn publish(
        &self,
        image: RenderImage,
        callback_id: i32,
        user_data: u64,
    ) -> Option<Arc<Frame>> {
        let _order = self
            .publish_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.metrics.frames_received.fetch_add(1, Ordering::Relaxed);
        let duplicate = self
            .frames
            .borrow()
            .as_ref()
            .is_some_and(|newest| image.is_duplicate_of(&newest.image));
        if duplicate {
            self.metrics
                .frames_duplicate
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let frame = Arc::new(Frame::new(seq, callback_id, user_data, image));
        self.cache.advance(seq);
        self.frames.send_replace(Some(frame.clone()));
        self.metrics
            .frames_published
            .fetch_add(1, Ordering::Relaxed);
        Some(frame)
    }

    fn viewer_left(&self) {
        let before = self.viewers.fetch_sub(1, Ordering::AcqRel);
        self.metrics.viewers.fetch_sub(1, Ordering::Relaxed);
        if before == 1 {
            self.lease();
        }
    }
}

/// Stops the subscription task when the last [`FrameHub`] handle is dropped.
struct TaskGuard {
    stop: watch::Sender<bool>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// The live render frame hub; cheap to clone.
#[derive(Clone)]
pub struct FrameHub {
    shared: Arc<Shared>,
    _guard: Arc<TaskGuard>,
}

impl std::fmt::Debug for FrameHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameHub")
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

/// The hub's metrics as a collector of the gateway's metrics registry.
pub struct HubCollector(Arc<Shared>);

impl std::fmt::Debug for HubCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubCollector").finish_non_exhaustive()
    }
}

impl octaneweb_gateway::metrics::Collector for HubCollector {
    fn encode(&self, encoder: octaneweb_gateway::metrics::DescriptorEncoder) -> std::fmt::Result {
        self.0.metrics.encode(encoder)
    }
}

impl FrameHub {
    /// Starts a hub that subscribes to `upstream`'s callbacks, with the callback generation
    /// detected from `schema`. Must be called inside a tokio runtime. If the schema lacks the
    /// callback interface the hub still starts; its status and routes report why no frames
    /// come.
    pub fn start(upstream: Upstream, schema: &Schema, config: FrameHubConfig) -> FrameHub {
        let plan = plan::Plan::from_pool(schema.pool());
        if let Err(error) = &plan {
            tracing::warn!(%error, "the render stream is unavailable");
        }
        let hub = FrameHub::build(upstream.target().to_owned(), plan.clone(), config);
        if let Ok(plan) = plan {
            let shared = hub.shared.clone();
            // A connection of its own: no API call (nor any number of them) shares the
            // viewers' subscription's connection, so none can take it down.
            tokio::spawn(subscription::run(shared, upstream.dedicated(), plan));
        }
        hub
    }

    /// A hub without an upstream, fed by [`FrameHub::publish_image`] (benchmarks, embedding
    /// another frame source).
    pub fn detached(config: FrameHubConfig) -> FrameHub {
        FrameHub::build(
            String::new(),
            Err(PlanError::Missing("upstream".into())),
            config,
        )
    }

    fn build(
        upstream: String,
        plan: Result<plan::Plan, PlanError>,
        config: FrameHubConfig,
    ) -> FrameHub {
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            cache: EncodeCache::new(config.max_cached_encodings),
            config,
            frames: watch::channel(None).0,
            events: broadcast::channel(64).0,
            registration: watch::channel(Registration::Idle).0,
            connected: AtomicBool::new(false),
            metrics: Arc::new(HubMetrics::default()),
            next_seq: AtomicU64::new(0),
            publish_lock: Mutex::new(()),
            viewers: AtomicU64::new(0),
            lease_until: Mutex::new(None),
            demand_changed: Notify::new(),
            last_error: Mutex::new(None),
            unsupported: Mutex::new(BTreeSet::new()),
            upstream,
            plan,
            stop: stop.clone(),
        });
        FrameHub {
            shared,
            _guard: Arc::new(TaskGuard { stop }),
        }
    }

    /// The upstream methods the subscription calls (`package.Service/Method`), so the
    /// render routes can be refused when the gateway's method policy refuses any of them.
    pub fn upstream_methods(&self) -> Vec<String> {
        let Ok(plan) = &self.shared.plan else {
            return Vec::new();
        };
        [
            Some(&plan.set_callback),
            Some(&plan.callback_channel),
            plan.grab.as_ref(),
            plan.release.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|m| format!("{}/{}", m.parent_service().full_name(), m.name()))
        .collect()
    }

    /// The configuration.
    pub fn config(&self) -> &FrameHubConfig {
        &self.shared.config
    }

    /// Publishes an image as the newest frame (unless it duplicates the newest); returns the
    /// frame. The subscription calls this for every upstream image.
    pub fn publish_image(
        &self,
        image: RenderImage,
        callback_id: i32,
        user_data: u64,
    ) -> Option<Arc<Frame>> {
        self.shared.publish(image, callback_id, user_data)
    }

    /// The newest frame, if any.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.shared.frames.borrow().clone()
    }

    /// Keeps the subscription running for the idle grace (frame pollers call this).
    pub fn touch(&self) {
        self.shared.lease();
    }

    /// Joins as a viewer: the subscription runs while any viewer is connected.
    pub fn viewer(&self) -> Result<Viewer, HubError> {
        let limit = self.shared.config.max_viewers;
        let joined = self
            .shared
            .viewers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit as u64).then_some(n + 1)
            });
        if joined.is_err() {
            return Err(HubError::TooManyViewers { limit });
        }
        self.shared.metrics.viewers.fetch_add(1, Ordering::Relaxed);
        self.shared.demand_changed.notify_waiters();
        let mut frames = self.shared.frames.subscribe();
        frames.mark_changed();
        Ok(Viewer {
            shared: self.shared.clone(),
            frames,
            last_seq: 0,
        })
    }

    /// Callback events (statistics, failures, project changes, upstream state) from now on.
    pub fn events(&self) -> HubEvents {
        HubEvents(self.shared.events.subscribe())
    }

    /// The encoding of the whole of `frame` as `format` (HDR frames tonemapped with
    /// `tonemap`), computed once per frame and key and shared.
    pub async fn encoded(
        &self,
        frame: &Arc<Frame>,
        format: Format,
        tonemap: Tonemap,
    ) -> Result<Arc<EncodedFrame>, EncodeError> {
        self.encoded_view(frame, format, tonemap, &ViewRequest::FULL)
            .await
    }

    /// The encoding of the view `request` asks for of `frame` (cropped, scaled to the
    /// display size), computed once per frame, view and key and shared by every viewer
    /// whose request resolves to the same view.
    pub async fn encoded_view(
        &self,
        frame: &Arc<Frame>,
        format: Format,
        tonemap: Tonemap,
        request: &ViewRequest,
    ) -> Result<Arc<EncodedFrame>, EncodeError> {
        let key = EncodingKey::new(format, tonemap, frame.is_hdr())
            .with_view(request.resolve(frame.width(), frame.height()));
        self.shared
            .cache
            .get(frame, key, &self.shared.metrics)
            .await
    }

    /// Makes sure the callback is registered (starting the subscription if needed and keeping
    /// it for the idle grace) and returns the callback id.
    pub async fn register(&self) -> Result<i32, HubError> {
        if let Err(error) = &self.shared.plan {
            return Err(if self.shared.upstream.is_empty() {
                HubError::NoUpstream
            } else {
                HubError::Schema(error.clone())
            });
        }
        let mut registration = self.shared.registration.subscribe();
        self.shared.lease();
        if let Registration::Registered(id) = *registration.borrow_and_update() {
            return Ok(id);
        }
        let wait = self.shared.config.register_wait;
        let outcome = tokio::time::timeout(wait, async {
            loop {
                if registration.changed().await.is_err() {
                    return Err(HubError::Registration("the frame hub stopped".into()));
                }
                match &*registration.borrow_and_update() {
                    Registration::Registered(id) => return Ok(*id),
                    Registration::Failed(error) => {
                        return Err(HubError::Registration(error.clone()))
                    }
                    Registration::Idle | Registration::Registering => {}
                }
            }
        })
        .await;
        outcome.unwrap_or(Err(HubError::RegistrationTimeout(wait)))
    }

    /// A snapshot of what the hub is doing.
    pub fn status(&self) -> HubStatus {
        let shared = &self.shared;
        let (registered, callback_id) = match *shared.registration.borrow() {
            Registration::Registered(id) => (true, id),
            _ => (false, 0),
        };
        HubStatus {
            upstream: shared.upstream.clone(),
            generation: shared.plan.as_ref().ok().map(|p| p.generation.number()),
            schema_error: match &shared.plan {
                Err(error) if !shared.upstream.is_empty() => Some(error.to_string()),
                _ => None,
            },
            registered,
            callback_id,
            connected: shared.connected.load(Ordering::Acquire),
            active: shared.wanted(),
            viewers: shared.viewers.load(Ordering::Acquire),
            latest_frame: self.latest().map(|f| LatestFrame {
                seq: f.seq,
                width: f.width(),
                height: f.height(),
                samples_per_pixel: f.image.tonemapped_samples_per_pixel,
                hdr: f.is_hdr(),
                age_ms: u64::try_from(f.arrived.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
            last_error: shared
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            unsupported_image_types: shared
                .unsupported
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .copied()
                .collect(),
            cached_encodings: shared.cache.len(),
            metrics: shared.metrics.snapshot(),
        }
    }

    /// The hub's counters.
    pub fn metrics(&self) -> &HubMetrics {
        &self.shared.metrics
    }

    /// The hub's metrics, for the gateway's registry
    /// ([`octaneweb_gateway::Metrics::add_collector`]).
    pub fn metrics_collector(&self) -> HubCollector {
        HubCollector(self.shared.clone())
    }

    /// Stops the subscription (unsetting the callback) for good. Dropping every handle does
    /// the same.
    pub fn shutdown(&self) {
        self.shared.stop.send_replace(true);
        self.shared.demand_changed.notify_waiters();
    }
}

/// One viewer's view of the frame stream. Dropping it leaves.
pub struct Viewer {
    shared: Arc<Shared>,
    frames: watch::Receiver<Option<Arc<Frame>>>,
    last_seq: u64,
}

/// A subscription to [`HubEvent`]s. Bounded: a receiver that falls behind loses the oldest.
pub struct HubEvents(broadcast::Receiver<HubEvent>);

impl HubEvents {
    /// The next event. Events a slow receiver missed are dropped.
    pub async fn next(&mut self) -> HubEvent {
        loop {
            match self.0.recv().await {
                Ok(event) => return event,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                // The hub's sender is gone: no event will ever come.
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

impl Viewer {
    /// Waits for a frame newer than the last one this viewer took, and takes the newest.
    /// Frames published in between are skipped (and counted).
    pub async fn next_frame(&mut self) -> Arc<Frame> {
        loop {
            // The sender lives in `Shared`, which this viewer holds: it cannot close.
            if self.frames.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            let newest = self.frames.borrow_and_update().clone();
            if let Some(frame) = newest {
                if frame.seq > self.last_seq {
                    if self.last_seq != 0 {
                        let skipped = frame.seq - self.last_seq - 1;
                        self.shared
                            .metrics
                            .frames_skipped
                            .fetch_add(skipped, Ordering::Relaxed);
                    }
                    self.last_seq = frame.seq;
                    return frame;
                }
            }
        }
    }

    /// Makes the next [`Viewer::next_frame`] return the newest frame again at once, without
    /// counting the frames in between as skipped (after a pause or an encoding change).
    pub fn rewind(&mut self) {
        self.last_seq = 0;
        self.frames.mark_changed();
    }

    /// Records that `encoded` was handed to the viewer's socket now.
    pub fn sent(&self, encoded: &EncodedFrame) {
        self.shared.metrics.frame_sent(
            encoded.format,
            encoded.message().len(),
            encoded.frame.arrived.elapsed(),
        );
    }

    /// Whether the callback stream is open now.
    pub fn upstream_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.shared.viewer_left();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Pixels;
    use bytes::Bytes;

    fn image(spp: f32, fill: u8) -> RenderImage {
        RenderImage {
            width: 2,
            height: 2,
            pixels: Pixels::Rgba8(Bytes::from(vec![fill; 16])),
            image_type: 0,
            color_space: 1,
            is_linear: false,
            render_pass_id: 0,
            tonemapped_samples_per_pixel: spp,
            calculated_samples_per_pixel: spp,
            samples_per_second: 0.0,
            render_time: 0.0,
            change_level: 1,
            has_pending_updates: false,
            has_alpha: true,
            fingerprint: u64::from(fill),
        }
    }

    #[tokio::test]
    async fn duplicates_are_dropped_and_slow_viewers_skip_to_the_newest() {
        let hub = FrameHub::detached(FrameHubConfig::default());
        let mut viewer = hub.viewer().unwrap();
        assert_eq!(
            hub.publish_image(image(1.0, 1), 1, 0).map(|f| f.seq),
            Some(1)
        );
        assert!(
            hub.publish_image(image(1.0, 1), 1, 0).is_none(),
            "duplicate"
        );
        assert_eq!(viewer.next_frame().await.seq, 1);
        for spp in 2..=6 {
            hub.publish_image(image(spp as f32, spp as u8), 1, 0);
        }
        let newest = viewer.next_frame().await;
        assert_eq!(newest.seq, 6);
        let metrics = hub.metrics().snapshot();
        assert_eq!(metrics.frames_duplicate, 1);
        assert_eq!(metrics.frames_published, 6);
        assert_eq!(metrics.frames_skipped, 4);
        // Rewinding re-delivers the newest without counting a skip.
        viewer.rewind();
        assert_eq!(viewer.next_frame().await.seq, 6);
        assert_eq!(hub.metrics().snapshot().frames_skipped, 4);
    }

    #[tokio::test]
    async fn the_viewer_limit_holds_and_frees_on_leave() {
        let hub = FrameHub::detached(FrameHubConfig {
            max_viewers: 2,
            ..FrameHubConfig::default()
        });
        let a = hub.viewer().unwrap();
        let _b = hub.viewer().unwrap();
        assert!(matches!(
            hub.viewer(),
            Err(HubError::TooManyViewers { limit: 2 })
        ));
        drop(a);
        assert!(hub.viewer().is_ok());
        assert!(matches!(hub.register().await, Err(HubError::NoUpstream)));
    }
}
