//! `octaneapi.StreamCallbackService.callbackChannel`, in both callback generations.
//!
//! Every stream follows the engine's newest frame through a `watch` channel: a consumer
//! that reads slowly simply skips frames it had no time for, and never holds back the
//! renderer or other consumers. Streams receive `newImage` even before any
//! `setOnNewImageCallback` (as some Octane builds do); `user_data` is then 0.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use octaneweb_proto::gen1::octaneapi as gen1;
use octaneweb_proto::octaneapi as gen2;
use tokio::time::MissedTickBehavior;
use tonic::{Request, Response, Status};

use super::Shared;
use crate::image::Frame;

/// How often `newStatistics` is sent while the renderer is adding samples.
const STATISTICS_INTERVAL: Duration = Duration::from_secs(1);

/// Something a callback stream reports.
enum CallbackEvent {
    NewImage(Arc<Frame>),
    RenderFailure,
    NewStatistics,
    /// A project was loaded or reset: clients walk the scene again.
    ProjectChanged,
}

/// The events one stream reports, until the server shuts down.
fn callback_events(shared: &Shared) -> impl Stream<Item = CallbackEvent> + Send + 'static {
    let mut frames = shared.engine.subscribe_frames();
    // Report the frame that is already there too, so a new consumer sees an image at once.
    frames.mark_changed();
    let mut status = shared.engine.subscribe_status();
    let mut failures_seen = status.borrow_and_update().failures;
    let mut shutdown = shared.shutdown.clone();
    let mut projects = shared.project_changes.subscribe();
    async_stream::stream! {
        let mut statistics = tokio::time::interval(STATISTICS_INTERVAL);
        statistics.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick completes at once; statistics start one interval in.
        statistics.tick().await;
        loop {
            let event = tokio::select! {
                _ = shutdown.wait_for(|stopping| *stopping) => break,
                changed = frames.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    frames.borrow_and_update().clone().map(CallbackEvent::NewImage)
                }
                changed = status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let failures = status.borrow_and_update().failures;
                    if failures > failures_seen {
                        failures_seen = failures;
                        Some(CallbackEvent::RenderFailure)
                    } else {
                        None
                    }
                }
                changed = projects.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    projects.borrow_and_update();
                    Some(CallbackEvent::ProjectChanged)
                }
                _ = statistics.tick() => {
                    status.borrow().rendering.then_some(CallbackEvent::NewStatistics)
                }
            };
            if let Some(event) = event {
                yield event;
            }
        }
    }
}

/// The stream type both generations return.
pub(crate) type CallbackStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Generation 2: `newImage` is a notification; images come from `grabRenderResult`.
pub(crate) struct Gen2CallbackService {
    shared: Arc<Shared>,
}

impl Gen2CallbackService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Gen2CallbackService { shared }
    }
}

#[tonic::async_trait]
impl gen2::stream_callback_service_server::StreamCallbackService for Gen2CallbackService {
    type callbackChannelStream = CallbackStream<gen2::StreamCallbackRequest>;

    async fn callback_channel(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::callbackChannelStream>, Status> {
        use gen2::stream_callback_request::Payload;
        let shared = Arc::clone(&self.shared);
        let messages = callback_events(&self.shared).map(move |event| {
            let user_data = shared.registration().user_data;
            let payload = match event {
                CallbackEvent::NewImage(_) => Payload::NewImage(gen2::OnNewImageData { user_data }),
                CallbackEvent::RenderFailure => {
                    Payload::RenderFailure(gen2::OnRenderFailureData { user_data })
                }
                CallbackEvent::NewStatistics => {
                    Payload::NewStatistics(gen2::OnStatisticsData { user_data })
                }
                CallbackEvent::ProjectChanged => {
                    Payload::ProjectManagerChanged(gen2::OnProjectManagerData { user_data })
                }
            };
            Ok(gen2::StreamCallbackRequest {
                payload: Some(payload),
            })
        });
        Ok(Response::new(Box::pin(messages)))
    }
}

/// Generation 1: `newImage` carries the render images inline.
pub(crate) struct Gen1CallbackService {
    shared: Arc<Shared>,
}

impl Gen1CallbackService {
    pub fn new(shared: Arc<Shared>) -> Self {
        Gen1CallbackService { shared }
    }
}

#[tonic::async_trait]
impl gen1::stream_callback_service_server::StreamCallbackService for Gen1CallbackService {
    type callbackChannelStream = CallbackStream<gen1::StreamCallbackRequest>;

    async fn callback_channel(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::callbackChannelStream>, Status> {
        use gen1::stream_callback_request::Payload;
        let shared = Arc::clone(&self.shared);
        let messages = callback_events(&self.shared).map(move |event| {
            let registration = shared.registration();
            // The id the server handed out at registration; clients match on it.
            let callback_id = i32::try_from(registration.callback_id).unwrap_or(i32::MAX);
            let basic = || gen1::BasicCallbackRequest {
                callback_source: registration.callback_source.clone(),
                callback_id,
                user_data: registration.user_data,
            };
            let payload = match event {
                CallbackEvent::NewImage(frame) => Payload::NewImage(gen1::OnNewImageRequest {
                    callback_source: registration.callback_source.clone(),
                    callback_id,
                    user_data: registration.user_data,
                    render_images: Some(frame.images_gen1_at(shared.engine.change_level())),
                }),
                CallbackEvent::RenderFailure => Payload::RenderFailure(basic()),
                CallbackEvent::NewStatistics => Payload::NewStatistics(basic()),
                CallbackEvent::ProjectChanged => Payload::ProjectManagerChanged(basic()),
            };
            Ok(gen1::StreamCallbackRequest {
                payload: Some(payload),
            })
        });
        Ok(Response::new(Box::pin(messages)))
    }
}
