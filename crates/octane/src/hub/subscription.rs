//! The task that keeps the callback subscription: register, open the stream, turn callbacks
//! into frames and events, reconnect with backoff, unset when idle.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use octaneweb_gateway::upstream::{CallOptions, Upstream};
use prost_reflect::{DynamicMessage, MethodDescriptor, Value};
use tokio::sync::Notify;
use tonic::{Request, Status};

use super::plan::{callback_id_of, payload, CallbackGeneration, Plan};
use super::{HubEvent, Registration, Shared};
use crate::frame::{decode_render_image, pick_image, unix_seconds_now, ImageError, RenderImage};

/// `callbackSource` of our registration.
const CALLBACK_SOURCE: &str = "octaneweb";
/// `callbackId` we ask for; the server's answer is what we report.
const REQUESTED_CALLBACK_ID: i32 = 1;

/// How a session ended.
enum SessionEnd {
    /// Nobody wants frames any more.
    Idle,
    /// The hub is shutting down.
    Stopped,
    /// The upstream failed; `established` says whether the stream had been open.
    Broken { error: String, established: bool },
}

pub(crate) async fn run(shared: Arc<Shared>, upstream: Upstream, plan: Plan) {
    let mut stop = shared.stop.subscribe();
    let mut backoff = shared.config.backoff_min;
    loop {
        // Wait for demand (or stop).
        loop {
            if *stop.borrow() {
                return;
            }
            let notified = shared.demand_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if shared.wanted() {
                break;
            }
            tokio::select! {
                _ = notified => {}
                _ = stop.changed() => {}
                // Leases expire without a notification; re-check now and then.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }

        let end = session(&shared, &upstream, &plan).await;
        shared.set_connected(false);
        match end {
            SessionEnd::Idle => {
                unset_callback(&shared, &upstream, &plan).await;
                shared.registration.send_replace(Registration::Idle);
                backoff = shared.config.backoff_min;
            }
            SessionEnd::Stopped => {
                unset_callback(&shared, &upstream, &plan).await;
                shared.registration.send_replace(Registration::Idle);
                return;
            }
            SessionEnd::Broken { error, established } => {
                shared
                    .metrics
                    .subscription_failures
                    .fetch_add(1, Ordering::Relaxed);
                if established {
                    backoff = shared.config.backoff_min;
                }
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "render callback subscription broke");
                shared.set_error(Some(error.clone()));
                shared
                    .registration
                    .send_replace(Registration::Failed(error));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(shared.config.backoff_max);
            }
        }
    }
}

async fn unary(
    upstream: &Upstream,
    method: &MethodDescriptor,
    message: DynamicMessage,
    timeout: Duration,
) -> Result<DynamicMessage, Status> {
    upstream
        .unary(
            method,
            Request::new(message),
            CallOptions::with_timeout(Some(timeout)),
        )
        .await
        .map(tonic::Response::into_inner)
}

async fn unset_callback(shared: &Shared, upstream: &Upstream, plan: &Plan) {
    if !shared.config.unset_when_idle {
        return;
    }
    let Ok(request) = plan.set_callback_request(None, 0) else {
        return;
    };
    match unary(
        upstream,
        &plan.set_callback,
        request,
        shared.config.call_timeout,
    )
    .await
    {
        Ok(_) => tracing::debug!("render callback unset"),
        Err(status) => tracing::debug!(%status, "could not unset the render callback"),
    }
}

async fn session(shared: &Arc<Shared>, upstream: &Upstream, plan: &Plan) -> SessionEnd {
    let broken = |error: String| SessionEnd::Broken {
        error,
        established: false,
    };
    shared.registration.send_replace(Registration::Registering);
    let request = match plan.set_callback_request(Some((CALLBACK_SOURCE, REQUESTED_CALLBACK_ID)), 0)
    {
        Ok(request) => request,
        Err(error) => return broken(error.to_string()),
    };
    let callback_id = match unary(
        upstream,
        &plan.set_callback,
        request,
        shared.config.call_timeout,
    )
    .await
    {
        Ok(response) => match callback_id_of(&response) {
            0 => REQUESTED_CALLBACK_ID,
            id => id,
        },
        Err(status) => {
            return broken(format!(
                "setOnNewImageCallback on {}: {}",
                upstream.target(),
                status.message()
            ))
        }
    };
    let mut stream = match open_callback_stream(upstream, &plan.callback_channel).await {
        Ok(stream) => stream,
        Err(status) => {
            return broken(format!(
                "callbackChannel on {}: {}",
                upstream.target(),
                status.message()
            ))
        }
    };
    shared
        .registration
        .send_replace(Registration::Registered(callback_id));
    shared.set_error(None);
    shared.set_connected(true);
    shared.metrics.subscriptions.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        upstream = %upstream.target(),
        generation = plan.generation.number(),
        callback_id,
        "render callback subscription open"
    );

    // Grabs run beside the stream so a slow grab never stalls callback reading; the Notify
    // holds at most one permit, so notifications that pile up collapse into one grab.
    let grab_wanted = Arc::new(Notify::new());
    let last_user_data = Arc::new(AtomicU64::new(0));
    let _grabber = plan.grab.clone().map(|grab| {
        // An initial grab shows the current image at once, even if rendering is finished.
        grab_wanted.notify_one();
        let only_once = plan.generation == CallbackGeneration::Gen1;
        AbortOnDrop(tokio::spawn(
            Grabber {
                shared: shared.clone(),
                upstream: upstream.clone(),
                grab,
                release: plan.release.clone(),
                wanted: grab_wanted.clone(),
                user_data: last_user_data.clone(),
                callback_id,
                only_once,
            }
            .run(),
        ))
    });

    let mut stop = shared.stop.subscribe();
    let mut idle_check = tokio::time::interval(idle_check_period(shared.config.idle_grace));
    let mut reported = ReportedErrors::default();
    loop {
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() {
                    return SessionEnd::Stopped;
                }
            }
            _ = idle_check.tick() => {
                if shared.config.unset_when_idle && !shared.wanted() {
                    tracing::info!("no viewers left; closing the render callback subscription");
                    return SessionEnd::Idle;
                }
            }
            item = stream.next() => match item {
                Some(Ok(message)) => {
                    let grab = Grab { wanted: &grab_wanted, user_data: &last_user_data };
                    handle_callback(shared, plan, &message, callback_id, grab, &mut reported).await;
                }
                Some(Err(status)) => {
                    return SessionEnd::Broken {
                        error: format!("callback stream from {}: {}", upstream.target(), status.message()),
                        established: true,
                    };
                }
                None => {
                    return SessionEnd::Broken {
                        error: format!("{} ended the callback stream", upstream.target()),
                        established: true,
                    };
                }
            }
        }
    }
}

/// Opens `callbackChannel` as a lasting call: the stream lives as long as the subscription,
/// so the gateway's default per-call deadline (meant for ordinary calls) does not cut it;
/// only the wait for its response headers is bounded.
async fn open_callback_stream(
    upstream: &Upstream,
    method: &MethodDescriptor,
) -> Result<tonic::Streaming<DynamicMessage>, Status> {
    let request = Request::new(DynamicMessage::new(method.input()));
    let options = CallOptions {
        timeout: None,
        lasting: true,
    };
    let open = upstream.server_streaming(method, request, options);
    tokio::time::timeout(upstream.config().connect_timeout * 4, open)
        .await
        .unwrap_or_else(|_| Err(Status::unavailable("no answer to callbackChannel in time")))
        .map(tonic::Response::into_inner)
}

fn idle_check_period(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Logs each distinct decode problem once per session (bounded).
#[derive(Default)]
struct ReportedErrors(HashSet<String>);

impl ReportedErrors {
    fn report(&mut self, shared: &Shared, error: &ImageError) {
        shared
            .metrics
            .frames_rejected
            .fetch_add(1, Ordering::Relaxed);
        if let ImageError::UnsupportedType { value } = error {
            let mut unsupported = shared
                .unsupported
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if unsupported.len() < 32 && unsupported.insert(*value) {
                tracing::warn!(%error, "render image skipped");
            }
            return;
        }
        let text = error.to_string();
        if self.0.len() < 32 && self.0.insert(text) {
            tracing::warn!(%error, "render image skipped");
        }
    }
}

fn u64_field(message: &DynamicMessage, number: u32) -> u64 {
    message
        .get_field_by_number(number)
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

fn i32_field(message: &DynamicMessage, number: u32) -> i32 {
    message
        .get_field_by_number(number)
        .and_then(|v| v.as_i32())
        .unwrap_or(0)
}

/// The set oneof member of a `StreamCallbackRequest`: its number and payload message.
fn payload_of(message: &DynamicMessage) -> Option<(u32, DynamicMessage)> {
    message.fields().find_map(|(field, value)| {
        let number = field.number();
        match value {
            Value::Message(inner)
                if (payload::NEW_IMAGE..=payload::PROJECT_MANAGER_CHANGED).contains(&number) =>
            {
                Some((number, inner.clone()))
            }
            _ => None,
        }
    })
}

/// How the stream reader asks the grabber for an image (generation 2).
struct Grab<'a> {
    wanted: &'a Notify,
    /// `user_data` of the newest notification, reported with the grabbed frame.
    user_data: &'a AtomicU64,
}

async fn handle_callback(
    shared: &Arc<Shared>,
    plan: &Plan,
    message: &DynamicMessage,
    callback_id: i32,
    grab: Grab<'_>,
    reported: &mut ReportedErrors,
) {
    let Some((number, body)) = payload_of(message) else {
        tracing::debug!("callback message without a known payload ignored");
        return;
    };
    // Generation 1 payloads: callback_id = 2, user_data = 3; generation 2: user_data = 1.
    let (event_callback_id, user_data) = match plan.generation {
        CallbackGeneration::Gen1 => (i32_field(&body, 2), u64_field(&body, 3)),
        CallbackGeneration::Gen2 => (callback_id, u64_field(&body, 1)),
    };
    let timestamp = unix_seconds_now();
    let event = match number {
        payload::NEW_IMAGE => {
            match plan.generation {
                CallbackGeneration::Gen2 => {
                    grab.user_data.store(user_data, Ordering::Relaxed);
                    grab.wanted.notify_one();
                }
                CallbackGeneration::Gen1 => {
                    let images = body
                        .get_field_by_number(4)
                        .and_then(|v| v.as_message().cloned());
                    match images {
                        Some(array) => match decode_blocking(array).await {
                            Ok(image) => {
                                shared.publish(image, event_callback_id, user_data);
                            }
                            Err(error) => reported.report(shared, &error),
                        },
                        None => reported.report(shared, &ImageError::NoImage),
                    }
                }
            }
            return;
        }
        payload::NEW_STATISTICS => HubEvent::NewStatistics {
            callback_id: event_callback_id,
            user_data,
            timestamp,
        },
        payload::RENDER_FAILURE => HubEvent::RenderFailure {
            callback_id: event_callback_id,
            user_data,
            timestamp,
        },
        _ => HubEvent::ProjectManagerChanged { timestamp },
    };
    let _ = shared.events.send(event);
}

/// Picks and decodes the image off the reactor (HDR frames are large).
async fn decode_blocking(array: DynamicMessage) -> Result<RenderImage, ImageError> {
    tokio::task::spawn_blocking(move || pick_image(&array).and_then(|m| decode_render_image(&m)))
        .await
        .unwrap_or(Err(ImageError::NoImage))
}

/// Grabs (and releases) render results whenever `wanted` is notified.
struct Grabber {
    shared: Arc<Shared>,
    upstream: Upstream,
    grab: MethodDescriptor,
    release: Option<MethodDescriptor>,
    wanted: Arc<Notify>,
    /// `user_data` of the newest `newImage` notification.
    user_data: Arc<AtomicU64>,
    callback_id: i32,
    /// Generation 1: one grab at the start only (images come inline afterwards).
    only_once: bool,
}

impl Grabber {
    async fn run(self) {
        let Grabber {
            shared,
            upstream,
            grab,
            release,
            wanted,
            user_data,
            callback_id,
            only_once,
        } = self;
        let mut reported = ReportedErrors::default();
        let timeout = shared.config.call_timeout;
        loop {
            wanted.notified().await;
            let response =
                unary(&upstream, &grab, DynamicMessage::new(grab.input()), timeout).await;
            let response = match response {
                Ok(response) => response,
                Err(status) => {
                    // The stream notices a lost upstream too and restarts the session.
                    tracing::debug!(%status, "grabRenderResult failed");
                    if only_once {
                        return;
                    }
                    continue;
                }
            };
            let has_result = response
                .get_field_by_number(1)
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if has_result {
                // Release at once: the image bytes are already ours.
                if let Some(release) = &release {
                    let request = DynamicMessage::new(release.input());
                    if let Err(status) = unary(&upstream, release, request, timeout).await {
                        tracing::debug!(%status, "releaseRenderResult failed");
                    }
                }
                match response
                    .get_field_by_number(2)
                    .and_then(|v| v.as_message().cloned())
                {
                    Some(array) => match decode_blocking(array).await {
                        Ok(image) => {
                            shared.publish(image, callback_id, user_data.load(Ordering::Relaxed));
                        }
                        Err(error) => reported.report(&shared, &error),
                    },
                    None => reported.report(&shared, &ImageError::NoImage),
                }
            }
            if only_once {
                return;
            }
        }
    }
}
