//! The HTTP/2 connections to the upstream: as many as the calls in flight need, each carrying
//! a bounded number of streams, behind one cheap-to-clone [`UpstreamChannel`].
//!
//! One connection is not enough for a gateway. A server bounds the streams it serves on one
//! connection, and HTTP/2 servers built on the `h2` crate (as tonic servers are) end the whole
//! connection (`GOAWAY ENHANCE_YOUR_CALM`) when too many small, not-yet-read DATA frames
//! pile up on it: a few hundred concurrent tiny requests on one connection are enough. Every
//! call and stream on that connection then fails, whoever made it. So a connection carries at
//! most [`PoolLimits::streams_per_connection`] streams (100 by default: RFC 9113 asks servers
//! to allow at least that many, and it keeps the unread small frames of one connection within
//! the smallest budget `h2` grants), another connection is opened when all are full, and past
//! [`PoolLimits::max_connections`] calls wait in a bounded queue (their deadline still runs).
//! Connections beyond the first close after a minute without streams.
//!
//! Every request also passes two checks here, so they hold for every protocol: its metadata
//! must fit [`PoolLimits::max_request_header_bytes`] (a request over the limit fails alone with
//! `RESOURCE_EXHAUSTED`, instead of making the upstream tear down a connection shared with
//! other calls), and a response's headers and trailers are trimmed to what a client can take
//! ([`trim_metadata`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue};
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;
use tower::{BoxError, Service, ServiceExt as _};

/// Streams one connection carries by default.
pub const DEFAULT_STREAMS_PER_CONNECTION: usize = 100;
/// Connections opened at most by default (6,400 streams at the default per connection).
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Calls that may wait for a free stream by default once every connection is full.
pub const DEFAULT_MAX_WAITING: usize = 8192;
/// Largest request metadata sent upstream by default, as HTTP/2 counts it (name + value + 32
/// per entry): 16 KiB, what gRPC servers and hyper accept by default.
pub const DEFAULT_MAX_REQUEST_HEADER_BYTES: usize = 16 * 1024;
/// Largest response header block the gateway accepts from the upstream. Far above what it
/// forwards (see [`trim_metadata`]): an upstream error that echoes a long input arrives whole,
/// is trimmed, and fails only its own call, where a smaller limit would make the HTTP/2 layer
/// end the connection and every call on it.
pub const MAX_RESPONSE_HEADER_BYTES: u32 = 8 * 1024 * 1024;
/// Longest `grpc-message` forwarded to clients; longer ones are cut with a note.
const MAX_FORWARDED_MESSAGE_BYTES: usize = 4 * 1024;
/// Largest response metadata forwarded to clients (whose HTTP/2 stacks refuse more than 16 KiB
/// by default and would drop their whole connection).
const MAX_FORWARDED_METADATA_BYTES: usize = 12 * 1024;
/// How long a connection beyond the first stays open without streams.
const IDLE_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Bounds of the upstream connection pool.
#[derive(Clone, Debug)]
pub struct PoolLimits {
    /// Streams one connection carries before another is opened.
    pub streams_per_connection: usize,
    /// Connections opened at most.
    pub max_connections: usize,
    /// Calls waiting for a stream once every connection is full; more fail at once with
    /// `RESOURCE_EXHAUSTED`.
    pub max_waiting: usize,
    /// Largest request metadata, as HTTP/2 counts it.
    pub max_request_header_bytes: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            streams_per_connection: DEFAULT_STREAMS_PER_CONNECTION,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_waiting: DEFAULT_MAX_WAITING,
            max_request_header_bytes: DEFAULT_MAX_REQUEST_HEADER_BYTES,
        }
    }
}

/// One HTTP/2 connection of the pool (a tonic channel to one endpoint is one connection,
/// re-established after a failure).
struct Connection {
    channel: Channel,
    streams: AtomicUsize,
    /// When the last stream ended, in milliseconds since the pool started.
    last_released_ms: AtomicU64,
}

struct Pool {
    endpoint: Endpoint,
    limits: PoolLimits,
    connections: Mutex<Vec<Arc<Connection>>>,
    /// One permit per stream the pool may carry at once.
    streams: Arc<Semaphore>,
    waiting: AtomicUsize,
    opened: AtomicU64,
    started: Instant,
}

/// The connection pool as a tower service of HTTP requests: hands each request to a
/// connection with room for another stream. Its errors are the pool's own refusals (as
/// [`Status`]) and the transport's errors as they come; the layers of
/// [`super::stack`] above it turn them into what clients see. Cheap to clone.
#[derive(Clone)]
pub struct UpstreamChannel {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for UpstreamChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stats = self.stats();
        f.debug_struct("UpstreamChannel")
            .field("connections", &stats.connections)
            .field("streams", &stats.streams)
            .finish()
    }
}

/// What the pool holds right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections (including ones currently re-connecting).
    pub connections: usize,
    /// Streams in flight.
    pub streams: usize,
    /// Calls waiting for a stream.
    pub waiting: usize,
    /// Connections opened since the start.
    pub opened: u64,
}

impl UpstreamChannel {
    /// A pool that connects to `endpoint` lazily, on the first call.
    pub(crate) fn new(endpoint: Endpoint, limits: PoolLimits) -> Self {
        let limits = PoolLimits {
            streams_per_connection: limits.streams_per_connection.max(1),
            max_connections: limits.max_connections.max(1),
            ..limits
        };
        let permits = limits
            .streams_per_connection
            .saturating_mul(limits.max_connections)
            .min(Semaphore::MAX_PERMITS);
        Self {
            pool: Arc::new(Pool {
                endpoint,
                streams: Arc::new(Semaphore::new(permits)),
                limits,
                connections: Mutex::new(Vec::new()),
                waiting: AtomicUsize::new(0),
                opened: AtomicU64::new(0),
                started: Instant::now(),
            }),
        }
    }

    /// The pool's current size.
    pub fn stats(&self) -> PoolStats {
        let connections = self.pool.lock_connections();
        PoolStats {
            connections: connections.len(),
            streams: connections
                .iter()
                .map(|c| c.streams.load(Ordering::Relaxed))
                .sum(),
            waiting: self.pool.waiting.load(Ordering::Relaxed),
            opened: self.pool.opened.load(Ordering::Relaxed),
        }
    }

    /// The pool's limits.
    pub fn limits(&self) -> &PoolLimits {
        &self.pool.limits
    }

    /// Open the first connection now rather than at the first call; nothing happens when one
    /// is open already.
    pub(crate) async fn connect(&self) -> Result<(), tonic::transport::Error> {
        if !self.pool.lock_connections().is_empty() {
            return Ok(());
        }
        let channel = self.pool.endpoint.connect().await?;
        let mut connections = self.pool.lock_connections();
        if connections.is_empty() {
            connections.push(Arc::new(Connection {
                channel,
                streams: AtomicUsize::new(0),
                last_released_ms: AtomicU64::new(self.pool.now_ms()),
            }));
            self.pool.opened.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn send(self, request: http::Request<Body>) -> Result<http::Response<Body>, BoxError> {
        let size = header_list_size(request.headers());
        let limit = self.pool.limits.max_request_header_bytes;
        if size > limit {
            return Err(Status::resource_exhausted(format!(
                "the request metadata is {size} bytes; the upstream accepts at most {limit} \
                 (HTTP/2 header list size: names, values and 32 bytes per entry)"
            ))
            .into());
        }
        let permit = self.pool.stream_permit().await?;
        let connection = self.pool.connection_with_room();
        let lease = StreamLease {
            _permit: permit,
            connection: Arc::clone(&connection),
            pool: Arc::clone(&self.pool),
        };
        let mut channel = connection.channel.clone();
        let ready = channel.ready().await?;
        let response = ready.call(request).await?;
        let (mut parts, body) = response.into_parts();
        trim_metadata(&mut parts.headers);
        Ok(http::Response::from_parts(
            parts,
            Body::new(LeasedBody {
                inner: body,
                _lease: lease,
            }),
        ))
    }
}

impl Pool {
    fn lock_connections(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Connection>>> {
        // A panic while holding the lock leaves a list that is still valid.
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A free stream, waiting in the bounded queue when every connection is full.
    async fn stream_permit(&self) -> Result<OwnedSemaphorePermit, Status> {
        if let Ok(permit) = Arc::clone(&self.streams).try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = self.waiting.fetch_add(1, Ordering::Relaxed);
        let _queued = DecrementOnDrop(&self.waiting);
        if waiting >= self.limits.max_waiting {
            return Err(Status::resource_exhausted(format!(
                "the upstream is busy: {} streams are in flight on {} connections (the most \
                 the gateway opens) and {} calls are already waiting",
                self.limits.streams_per_connection * self.limits.max_connections,
                self.limits.max_connections,
                self.limits.max_waiting
            )));
        }
        Arc::clone(&self.streams)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the upstream connection pool is closed"))
    }

    /// The first connection with room for one more stream (opening one if none has room),
    /// with that stream counted. Holding a permit guarantees there is room.
    fn connection_with_room(&self) -> Arc<Connection> {
        let now = self.now_ms();
        let mut connections = self.lock_connections();
        // Close connections beyond the first that have been idle for a while.
        let idle_ms = u64::try_from(IDLE_CONNECTION_LIFETIME.as_millis()).unwrap_or(u64::MAX);
        let mut index = 0;
        connections.retain(|c| {
            index += 1;
            index == 1
                || c.streams.load(Ordering::Relaxed) > 0
                || now.saturating_sub(c.last_released_ms.load(Ordering::Relaxed)) < idle_ms
        });
        let cap = self.limits.streams_per_connection;
        if let Some(connection) = connections
            .iter()
            .find(|c| c.streams.load(Ordering::Relaxed) < cap)
        {
            connection.streams.fetch_add(1, Ordering::Relaxed);
            return Arc::clone(connection);
        }
        let connection = Arc::new(Connection {
            channel: self.endpoint.connect_lazy(),
            streams: AtomicUsize::new(1),
            last_released_ms: AtomicU64::new(now),
        });
        self.opened.fetch_add(1, Ordering::Relaxed);
        if !connections.is_empty() {
            tracing::debug!(
                connections = connections.len() + 1,
                "opening another upstream connection: every open one carries {cap} streams"
            );
        }
        connections.push(Arc::clone(&connection));
        connection
    }
}

struct DecrementOnDrop<'a>(&'a AtomicUsize);

impl Drop for DecrementOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One stream's place on a connection, given back when the response body is dropped.
struct StreamLease {
    _permit: OwnedSemaphorePermit,
    connection: Arc<Connection>,
    pool: Arc<Pool>,
}

impl Drop for StreamLease {
    fn drop(&mut self) {
        self.connection
            .last_released_ms
            .store(self.pool.now_ms(), Ordering::Relaxed);
        self.connection.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that holds its stream's lease and trims the trailers it carries.
struct LeasedBody {
    inner: Body,
    _lease: StreamLease,
}

impl http_body::Body for LeasedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(match frame.into_trailers() {
                Ok(mut trailers) => {
                    trim_metadata(&mut trailers);
                    Frame::trailers(trailers)
                }
                Err(frame) => frame,
            }))),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Service<http::Request<Body>> for UpstreamChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Capacity is waited for per call (a bounded queue with the call's deadline), so one
        // caller's wait never blocks another clone.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}

/// A header list's size as HTTP/2 counts it (RFC 9113 §6.5.2): name + value + 32 per entry.
pub fn header_list_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

/// Keep response metadata within what clients take: a long `grpc-message` is cut (with a
/// note saying how long it was), and entries past the forwarding budget are dropped, the
/// status headers last. The status code always survives.
pub fn trim_metadata(headers: &mut HeaderMap) {
    if header_list_size(headers) <= MAX_FORWARDED_METADATA_BYTES {
        return;
    }
    if let Some(message) = headers.get("grpc-message") {
        if message.len() > MAX_FORWARDED_MESSAGE_BYTES {
            let cut = cut_percent_encoded(message.as_bytes(), MAX_FORWARDED_MESSAGE_BYTES);
            let note = format!(
                "{}%20%E2%80%A6%20(cut%20from%20{}%20bytes)",
                String::from_utf8_lossy(cut),
                message.len()
            );
            if let Ok(value) = HeaderValue::from_str(&note) {
                headers.insert("grpc-message", value);
            }
        }
    }
    let mut dropped = Vec::new();
    while header_list_size(headers) > MAX_FORWARDED_METADATA_BYTES {
        // Largest entry that is not the status first.
        let largest = headers
            .iter()
            .filter(|(name, _)| name.as_str() != "grpc-status")
            .max_by_key(|(name, value)| name.as_str().len() + value.len())
            .map(|(name, _)| name.clone());
        match largest {
            Some(name) => {
                headers.remove(&name);
                dropped.push(name);
            }
            None => break,
        }
    }
    if !dropped.is_empty() {
        tracing::warn!(
            ?dropped,
            "dropped upstream response metadata over the {MAX_FORWARDED_METADATA_BYTES}-byte forwarding budget"
        );
    }
}

/// The longest prefix of `text` (percent-encoded ASCII) within `max` bytes that does not end
/// inside a `%XX` escape or a multi-byte character's escapes.
fn cut_percent_encoded(text: &[u8], max: usize) -> &[u8] {
    let mut end = max.min(text.len());
    // Step back out of a partial `%XX`.
    for back in 1..=2 {
        if end >= back && text.get(end - back) == Some(&b'%') {
            end -= back;
            break;
        }
    }
    // Step back over escapes of a UTF-8 character's continuation bytes (%80–%BF), and its
    // leading byte, so the cut text decodes.
    let escape_at = |i: usize| -> Option<u8> {
        if text.get(i) != Some(&b'%') {
            return None;
        }
        let hex = std::str::from_utf8(text.get(i + 1..i + 3)?).ok()?;
        u8::from_str_radix(hex, 16).ok()
    };
    while end >= 3 {
        match escape_at(end - 3) {
            Some(byte) if byte & 0xC0 == 0x80 => end -= 3,
            Some(byte) if byte >= 0xC0 => {
                end -= 3;
                break;
            }
            _ => break,
        }
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_list_size_counts_32_bytes_per_entry() {
        let mut headers = HeaderMap::new();
        headers.insert("ab", HeaderValue::from_static("cde"));
        headers.append("ab", HeaderValue::from_static("f"));
        assert_eq!(header_list_size(&headers), 2 + 3 + 32 + 2 + 1 + 32);
    }

    #[test]
    fn a_long_message_is_cut_on_an_escape_boundary_and_says_so() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        let long = "%C3%BC".repeat(10_000);
        headers.insert("grpc-message", HeaderValue::from_str(&long).unwrap());
        trim_metadata(&mut headers);
        let message = headers["grpc-message"].to_str().unwrap();
        assert!(
            message.len() < MAX_FORWARDED_MESSAGE_BYTES + 100,
            "{}",
            message.len()
        );
        assert!(
            message.ends_with("(cut%20from%2060000%20bytes)"),
            "{message}"
        );
        let kept = message.split("%20%E2%80%A6").next().unwrap();
        assert_eq!(kept.len() % 6, 0, "cut inside a character: {}", kept.len());
        assert_eq!(headers["grpc-status"], "5");
    }

    #[test]
    fn oversized_metadata_loses_its_largest_entries_but_never_the_status() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("2"));
        headers.insert("x-small", HeaderValue::from_static("kept"));
        headers.insert("x-big", HeaderValue::from_str(&"a".repeat(20_000)).unwrap());
        trim_metadata(&mut headers);
        assert!(headers.get("x-big").is_none());
        assert_eq!(headers["x-small"], "kept");
        assert_eq!(headers["grpc-status"], "2");
    }

    #[test]
    fn small_metadata_is_untouched() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-message", HeaderValue::from_static("short"));
        let before = headers.clone();
        trim_metadata(&mut headers);
        assert_eq!(headers, before);
    }
}
