//! The layers every upstream call passes on its way to the connection pool, one concern each,
//! outermost first:
//!
//! 0. [`LocalAnswers`]: calls the gateway answers itself (reflection from its schema, see
//!    [`super::local`]) stop here; nothing below sees them.
//! 1. [`Observe`]: how long the upstream takes to answer, and the calls that got no answer
//!    by code, for `/metrics` ([`UpstreamStats`]).
//! 2. [`Reachable`]: records whether the upstream is reachable: an answer says it is, an
//!    `UNAVAILABLE` failure (before or during the response) says it is not.
//! 3. [`ErrorMapping`]: the one place a failure below becomes a [`Status`]: a lost or
//!    refused connection is `UNAVAILABLE` naming the upstream, a stream the upstream reset
//!    gets the code gRPC over HTTP/2 gives its reason, the pool's own refusals pass as they are.
//! 4. [`Deadline`]: the call's deadline ([`CallDeadline`], a `Duration` in the request's
//!    extensions) goes upstream as `grpc-timeout` and is enforced by one timer, first on
//!    the answer's headers, then on the response body, which ends with `DEADLINE_EXCEEDED`
//!    when it passes. Consumers of a response need no timer of their own.
//!
//! Typed calls (tonic's client over [`UpstreamService`]) and byte-level forwarding
//! (`forward::send`) both go through this stack; the frame hub's through a stack of its own
//! over a dedicated connection.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::HeaderValue;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use tokio::time::{Instant, Sleep};
use tonic::body::Body;
use tonic::{Code, Status};
use tower::{BoxError, Service};

pub use super::local::LocalAnswers;
use super::pool::UpstreamChannel;
use crate::wire::deadline::{clamp_grpc_timeout, format_grpc_timeout};

/// A call's deadline, from the moment the request enters the stack. Callers put it in the
/// request's extensions; a request without one has no deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallDeadline(pub Duration);

/// The upstream as one service: every layer above over the connection pool. Cheap to clone;
/// use it as the transport of any tonic client.
pub type UpstreamService = LocalAnswers<RemoteService>;

/// The layers below [`LocalAnswers`]: what a call that goes upstream passes.
pub type RemoteService = Observe<Reachable<ErrorMapping<Deadline<UpstreamChannel>>>>;

type HttpRequest = http::Request<Body>;
type HttpResponse = http::Response<Body>;

/// Stack the layers over `pool`, with no local services (see [`super::Upstream::answering`]).
pub(crate) fn stack(
    pool: UpstreamChannel,
    reachability: Arc<Reachability>,
    stats: Arc<UpstreamStats>,
    target: Arc<str>,
) -> UpstreamService {
    tower::ServiceBuilder::new()
        .layer_fn(|inner| LocalAnswers { inner, local: None })
        .layer_fn(|inner| Observe {
            inner,
            stats: Arc::clone(&stats),
        })
        .layer_fn(|inner| Reachable {
            inner,
            reachability: Arc::clone(&reachability),
        })
        .layer_fn(|inner| ErrorMapping {
            inner,
            target: Arc::clone(&target),
        })
        .layer_fn(|inner| Deadline { inner })
        .service(pool)
}

// ---- 1. metrics ----------------------------------------------------------------------------

/// Upper bounds (seconds) of the answer-time histogram's buckets.
pub const ANSWER_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What the upstream's answers and failures look like, counted without locks.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    /// Per bucket of [`ANSWER_BUCKETS`] (not cumulative), then one for larger values.
    answer_buckets: [AtomicU64; ANSWER_BUCKETS.len() + 1],
    answer_micros: AtomicU64,
    answers: AtomicU64,
    /// Calls that got no answer, by gRPC code.
    failures: [AtomicU64; 17],
}

/// A reading of [`UpstreamStats`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpstreamStatsSnapshot {
    /// Cumulative counts per bound of [`ANSWER_BUCKETS`].
    pub answer_buckets: Vec<(f64, u64)>,
    /// Seconds spent waiting for answers, summed.
    pub answer_seconds: f64,
    /// Answers received.
    pub answers: u64,
    /// Calls that got no answer, by code name (only codes seen).
    pub failures: Vec<(&'static str, u64)>,
}

impl UpstreamStats {
    fn answered(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = ANSWER_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(ANSWER_BUCKETS.len());
        if let Some(count) = self.answer_buckets.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.answer_micros.fetch_add(micros, Ordering::Relaxed);
        self.answers.fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self, code: Code) {
        if let Some(count) = self.failures.get(code as usize) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts as they are now.
    pub fn snapshot(&self) -> UpstreamStatsSnapshot {
        let mut cumulative = 0;
        let answer_buckets = ANSWER_BUCKETS
            .iter()
            .zip(&self.answer_buckets)
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        let failures = self
            .failures
            .iter()
            .enumerate()
            .filter_map(|(code, count)| {
                let count = count.load(Ordering::Relaxed);
                let code = i32::try_from(code).ok()?;
                (count > 0).then(|| (crate::wire::codes::code_name(Code::from(code)), count))
            })
            .collect();
        UpstreamStatsSnapshot {
            answer_buckets,
            answer_seconds: self.answer_micros.load(Ordering::Relaxed) as f64 / 1e6,
            answers: self.answers.load(Ordering::Relaxed),
            failures,
        }
    }
}

/// Records each call's time to its answer (headers), or its failure's code.
#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    stats: Arc<UpstreamStats>,
}

impl<S> Service<HttpRequest> for Observe<S>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = Status;
    type Future = BoxFuture<'static, Result<HttpResponse, Status>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let stats = Arc::clone(&self.stats);
        let started = std::time::Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let outcome = answer.await;
            match &outcome {
                Ok(_) => stats.answered(started.elapsed()),
                Err(status) => stats.failed(status.code()),
            }
            outcome
        })
    }
}

// ---- 2. reachability -----------------------------------------------------------------------

/// What is known of the upstream's reachability, recorded by [`Reachable`] alone. Shared by
/// the stacks of one [`super::Upstream`] (the API's and the frame hub's).
#[derive(Debug)]
pub(crate) struct Reachability {
    state: AtomicU8,
    reconnects: AtomicU64,
    target: String,
}

const STATE_UNKNOWN: u8 = 0;
const STATE_CONNECTED: u8 = 1;
const STATE_DISCONNECTED: u8 = 2;

impl Reachability {
    pub(crate) fn new(target: &str) -> Self {
        Self {
            state: AtomicU8::new(STATE_UNKNOWN),
            reconnects: AtomicU64::new(0),
            target: target.to_owned(),
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.state.load(Ordering::Relaxed) == STATE_CONNECTED
    }

    pub(crate) fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Record that the upstream answered (`true`) or that the connection failed.
    pub(crate) fn record(&self, reached: bool) {
        let new = if reached {
            STATE_CONNECTED
        } else {
            STATE_DISCONNECTED
        };
        let old = self.state.swap(new, Ordering::Relaxed);
        if old == STATE_DISCONNECTED && reached {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!(upstream = %self.target, "upstream reachable again");
        } else if old != STATE_DISCONNECTED && !reached {
            tracing::warn!(upstream = %self.target, "upstream unreachable");
        }
    }
}

/// Records reachability from each call's outcome, including failures mid-response.
#[derive(Clone, Debug)]
pub struct Reachable<S> {
    inner: S,
    reachability: Arc<Reachability>,
}

impl<S> Service<HttpRequest> for Reachable<S>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = Status;
    type Future = BoxFuture<'static, Result<HttpResponse, Status>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let reachability = Arc::clone(&self.reachability);
        let answer = self.inner.call(request);
        Box::pin(async move {
            match answer.await {
                Ok(response) => {
                    reachability.record(true);
                    // A failure mid-response says the connection is gone too.
                    Ok(response.map(|inner| {
                        Body::new(inner.map_err(move |status: Status| {
                            if status.code() == Code::Unavailable {
                                reachability.record(false);
                            }
                            status
                        }))
                    }))
                }
                Err(status) => {
                    // A deadline, a refusal or a reset says nothing of reachability.
                    if status.code() == Code::Unavailable {
                        reachability.record(false);
                    }
                    Err(status)
                }
            }
        })
    }
}

// ---- 3. error mapping ----------------------------------------------------------------------

/// Turns every failure from below into the [`Status`] a client should see.
#[derive(Clone, Debug)]
pub struct ErrorMapping<S> {
    inner: S,
    target: Arc<str>,
}

impl<S> Service<HttpRequest> for ErrorMapping<S>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = Status;
    type Future = BoxFuture<'static, Result<HttpResponse, Status>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner
            .poll_ready(cx)
            .map_err(|error| failure_status(error, &self.target))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let target = Arc::clone(&self.target);
        let answer = self.inner.call(request);
        Box::pin(async move {
            match answer.await {
                Ok(response) => Ok(response.map(|inner| {
                    Body::new(inner.map_err(move |status| mid_call_status(status, &target)))
                })),
                Err(error) => Err(failure_status(error, &target)),
            }
        })
    }
}

/// A failure before the upstream answered. Statuses made by the layers below (the pool's
/// refusals, the deadline) pass as they are.
pub(crate) fn failure_status(error: BoxError, target: &str) -> Status {
    let error = match error.downcast::<Status>() {
        Ok(status) => return *status,
        Err(error) => error,
    };
    let mut status = match classify(&*error) {
        Failure::Deadline => expired_status(None),
        Failure::Reset(code, reason) => Status::new(
            code,
            format!("the upstream reset the call's stream: {reason}"),
        ),
        Failure::Lost(chain) => {
            Status::unavailable(format!("upstream {target} is unreachable: {chain}"))
        }
    };
    status.set_source(Arc::from(error));
    status
}

/// A response body error. A status with no transport cause (one the upstream or a layer
/// below sent) passes as it is.
fn mid_call_status(status: Status, target: &str) -> Status {
    let Some(source) = std::error::Error::source(&status) else {
        return status;
    };
    match classify(source) {
        Failure::Deadline => status,
        Failure::Reset(code, reason) => Status::new(
            code,
            format!("the upstream reset the call's stream: {reason}"),
        ),
        Failure::Lost(chain) => Status::unavailable(format!(
            "the connection to upstream {target} was lost mid-call: {chain}"
        )),
    }
}

/// What a transport error says happened to a call.
enum Failure {
    /// tonic's channel enforced the call's `grpc-timeout` before this stack's timer did.
    Deadline,
    /// The upstream reset the call's stream (RST_STREAM): the code for its reason, the
    /// reason as text.
    Reset(Code, String),
    /// The connection failed or went away: its causes as text.
    Lost(String),
}

fn classify(error: &(dyn std::error::Error + 'static)) -> Failure {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    // Bounded: error chains are short, but nothing here trusts that.
    for _ in 0..8 {
        let Some(cause) = next else { break };
        if cause.is::<tonic::TimeoutExpired>() {
            return Failure::Deadline;
        }
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            if let (true, true, Some(reason)) = (h2.is_remote(), h2.is_reset(), h2.reason()) {
                return Failure::Reset(code_for_reset(reason), h2.to_string());
            }
        }
        let text = cause.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    Failure::Lost(parts.join(": "))
}

/// The gRPC code for an RST_STREAM reason, as gRPC over HTTP/2 maps them.
fn code_for_reset(reason: h2::Reason) -> Code {
    match reason {
        h2::Reason::REFUSED_STREAM => Code::Unavailable,
        h2::Reason::CANCEL => Code::Cancelled,
        h2::Reason::ENHANCE_YOUR_CALM => Code::ResourceExhausted,
        h2::Reason::INADEQUATE_SECURITY => Code::PermissionDenied,
        _ => Code::Internal,
    }
}

// ---- 4. deadline ---------------------------------------------------------------------------

/// Sends the call's deadline upstream and enforces it with one timer.
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
}

impl<S> Service<HttpRequest> for Deadline<S>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<HttpResponse, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: HttpRequest) -> Self::Future {
        let timeout = request
            .extensions()
            .get::<CallDeadline>()
            .map(|CallDeadline(timeout)| clamp_grpc_timeout(*timeout));
        let at = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let (Some(timeout), Some(at)) = (timeout, at) else {
            return Box::pin(self.inner.call(request));
        };
        if let Ok(value) = HeaderValue::from_str(&format_grpc_timeout(timeout)) {
            request.headers_mut().insert("grpc-timeout", value);
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut timer = Box::pin(tokio::time::sleep_until(at));
            let outcome = tokio::select! {
                biased;
                outcome = answer => outcome,
                () = &mut timer => return Err(expired_status(Some(timeout)).into()),
            };
            match outcome {
                Ok(response) => Ok(response.map(|inner| {
                    Body::new(DeadlineBody {
                        inner,
                        timer: Some(timer),
                    })
                })),
                // tonic's channel enforces `grpc-timeout` too, and may be first.
                Err(error) if is_timeout_expired(&*error) => {
                    Err(expired_status(Some(timeout)).into())
                }
                Err(error) => Err(error),
            }
        })
    }
}

fn expired_status(timeout: Option<Duration>) -> Status {
    match timeout {
        Some(timeout) => Status::deadline_exceeded(format!(
            "no answer from the upstream within the deadline of {} ms",
            timeout.as_millis()
        )),
        None => Status::deadline_exceeded("no answer from the upstream within the deadline"),
    }
}

fn is_timeout_expired(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(classify(error), Failure::Deadline)
}

/// A response body that ends with `DEADLINE_EXCEEDED` when the call's deadline passes.
struct DeadlineBody {
    inner: Body,
    /// `None` once the deadline has passed (and the body has ended).
    timer: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let Some(timer) = self.timer.as_mut() else {
            return Poll::Ready(None);
        };
        if timer.as_mut().poll(cx).is_ready() {
            self.timer = None;
            return Poll::Ready(Some(Err(Status::deadline_exceeded(
                "the call's deadline passed while streaming",
            ))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.timer.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_resets_get_the_grpc_code_of_their_reason() {
        assert_eq!(
            code_for_reset(h2::Reason::REFUSED_STREAM),
            Code::Unavailable
        );
        assert_eq!(code_for_reset(h2::Reason::CANCEL), Code::Cancelled);
        assert_eq!(
            code_for_reset(h2::Reason::ENHANCE_YOUR_CALM),
            Code::ResourceExhausted
        );
        assert_eq!(code_for_reset(h2::Reason::PROTOCOL_ERROR), Code::Internal);
    }

    #[test]
    fn answer_times_land_in_their_bucket_and_failures_by_code() {
        let stats = UpstreamStats::default();
        stats.answered(Duration::from_micros(300));
        stats.answered(Duration::from_millis(3));
        stats.answered(Duration::from_secs(60));
        stats.failed(Code::Unavailable);
        stats.failed(Code::Unavailable);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.answers, 3);
        assert_eq!(snapshot.answer_buckets[0], (0.0005, 1));
        assert_eq!(snapshot.answer_buckets[3], (0.005, 2));
        assert_eq!(snapshot.answer_buckets.last(), Some(&(10.0, 2)));
        assert_eq!(snapshot.failures, vec![("UNAVAILABLE", 2)]);
        assert!((snapshot.answer_seconds - 60.0033).abs() < 1e-6);
    }
}
