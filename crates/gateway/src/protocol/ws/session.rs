//! One socket's call table and the task that runs each call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use octaneweb_schema::{json_to_message, write_message_json, JsonShape};
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::{Code, Status};

use super::frame::{self, BinaryFrame, CallRef, ClientFrame, OpenFrame};
use super::{Outbound, Outbox, WsStats};
use crate::context::call::{effective_timeout, unresolved_label};
use crate::context::{GatewayState, JsonRoute, ResolvedMethod, ShapeChoice, ShutdownSignal};
use crate::error::GatewayError;
use crate::metrics::Protocol;
use crate::upstream::CallOptions;
use crate::wire::trace_context::{CallTrace, TRACEPARENT};

/// Most metadata bytes (keys and values) an open frame may carry.
const MAX_METADATA_BYTES: usize = 8 * 1024;

/// What the socket reader keeps about a running call.
struct CallEntry {
    /// The id as the open frame gave it, for frames that name the call by its text only.
    echo: Arc<str>,
    /// Request message type, to parse `{"id","message"}` frames.
    input: MessageDescriptor,
    /// Where further request messages go; `None` once the client's side is closed (or the
    /// method takes only the open frame's message).
    inbound: Option<Inbound>,
    /// Ends the call with a status (cancel, overflow); taken when used.
    stop: Option<oneshot::Sender<Status>>,
}

/// The bounded queue of one call's request messages.
struct Inbound {
    queue: mpsc::Sender<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
}

/// Uncounts a call's queued request bytes from the socket gauges when its queue goes away.
struct QueuedGauge {
    state: GatewayState,
    queued: Arc<AtomicUsize>,
}

impl Drop for QueuedGauge {
    fn drop(&mut self) {
        let left = self.queued.swap(0, Ordering::Relaxed);
        WsStats::add(&self.state.websocket_stats().inbound_bytes, -(left as i64));
    }
}

/// Counts a running call in the socket gauges until dropped (also when the call is aborted).
struct RunningGauge(GatewayState);

impl RunningGauge {
    fn new(state: &GatewayState) -> RunningGauge {
        WsStats::add(&state.websocket_stats().calls, 1);
        RunningGauge(state.clone())
    }
}

impl Drop for RunningGauge {
    fn drop(&mut self) {
        WsStats::add(&self.0.websocket_stats().calls, -1);
    }
}

/// What became of a request message.
enum Delivery {
    Queued,
    UnknownCall,
    /// The call takes no more messages.
    Closed,
    /// The call must end with this status.
    Failed(Status),
}

type CallTable = Arc<Mutex<HashMap<Box<str>, CallEntry>>>;

/// The calls of one socket.
pub(super) struct Session {
    state: GatewayState,
    outbox: Outbox,
    socket_id: Arc<str>,
    /// The JSON shape the upgrade request chose for the socket's calls.
    socket_shape: ShapeChoice,
    /// The span of the `/ws` request; each call is a span of its own within it, unless its
    /// open frame's metadata carries a `traceparent`.
    trace: Option<CallTrace>,
    shutdown: Option<ShutdownSignal>,
    table: CallTable,
    calls: JoinSet<()>,
}

impl Session {
    pub(super) fn new(
        state: GatewayState,
        outbox: Outbox,
        socket_id: Arc<str>,
        socket_shape: ShapeChoice,
        trace: Option<CallTrace>,
        shutdown: Option<ShutdownSignal>,
    ) -> Session {
        Session {
            state,
            outbox,
            socket_id,
            socket_shape,
            trace,
            shutdown,
            table: Arc::new(Mutex::new(HashMap::new())),
            calls: JoinSet::new(),
        }
    }

    pub(super) fn socket_id(&self) -> &str {
        &self.socket_id
    }

    /// Wait for a call task to finish (never resolves while none runs). Cancel-safe.
    pub(super) async fn reap(&mut self) {
        if self.calls.is_empty() {
            std::future::pending::<()>().await;
        }
        let _ = self.calls.join_next().await;
    }

    /// Wait up to `limit` for the running calls to end by themselves.
    pub(super) async fn finish_calls(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.calls.join_next().await.is_some() {}
        })
        .await;
    }

    /// Abort the calls still running (their upstream calls are cancelled) and wait for them.
    pub(super) async fn abort_calls(&mut self) {
        self.calls.shutdown().await;
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, CallEntry>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send(&self, frame: String) {
        let _ = self.outbox.send(Outbound::Text(frame)).await;
    }

    async fn send_error(&self, id: Option<&CallRef>, code: Code, message: &str) {
        self.send(frame::error_frame(id, code, message)).await;
    }

    /// A call that ends before it starts: only its end frame.
    async fn refuse(&self, id: &CallRef, error: &GatewayError, label: Option<Arc<str>>) {
        let mut tracker = self.state.metrics.start_call(
            Protocol::WebSocket,
            label.unwrap_or_else(unresolved_label),
            self.call_id(id),
        );
        tracker.set_trace(self.call_trace(None));
        tracker.finish(error.code(), &error.to_string());
        self.send(frame::end_frame(
            id,
            error.code(),
            &error.to_string(),
            serde_json::json!([]),
            &MetadataMap::new(),
        ))
        .await;
    }

    /// The gateway's span of one call: continuing the open frame's `traceparent` if it has
    /// one (an invalid one starts a new trace, as the spec asks), else within the socket's.
    fn call_trace(&self, metadata: Option<&http::HeaderMap>) -> CallTrace {
        let sample_new = self.state.metrics.exports_spans();
        match (metadata, &self.trace) {
            (Some(headers), _) if headers.contains_key(&TRACEPARENT) => {
                CallTrace::from_headers(headers, sample_new)
            }
            (_, Some(socket)) => socket.child(),
            (_, None) => CallTrace::continuing(None, None, sample_new),
        }
    }

    fn call_id(&self, id: &CallRef) -> Arc<str> {
        Arc::from(format!("{}/{}", self.socket_id, id.key))
    }

    /// A text frame from the client.
    pub(super) async fn on_text(&mut self, text: &str) {
        self.state
            .metrics
            .add_bytes_in(Protocol::WebSocket, text.len() as u64);
        match frame::parse_text(text) {
            Err(error) => {
                self.send_error(error.id.as_ref(), Code::InvalidArgument, &error.message)
                    .await
            }
            Ok(ClientFrame::Open(open)) => self.open(open).await,
            Ok(ClientFrame::Message { id, message }) => self.deliver_json(&id, message).await,
            Ok(ClientFrame::HalfClose { id }) => self.half_close(&id).await,
            Ok(ClientFrame::Cancel { id }) => self.cancel(&id).await,
        }
    }

    /// A binary frame from the client.
    pub(super) async fn on_binary(&mut self, bytes: Bytes) {
        self.state
            .metrics
            .add_bytes_in(Protocol::WebSocket, bytes.len() as u64);
        match frame::parse_binary(bytes) {
            Err(message) => {
                self.send_error(
                    None,
                    Code::InvalidArgument,
                    &format!("binary frame: {message}"),
                )
                .await
            }
            Ok(BinaryFrame::Message { key, payload }) => {
                let id = self.known_ref(&key);
                self.deliver(&id, payload).await
            }
            Ok(BinaryFrame::HalfClose { key }) => {
                let id = self.known_ref(&key);
                self.half_close(&id).await
            }
            Ok(BinaryFrame::Cancel { key }) => {
                let id = self.known_ref(&key);
                self.cancel(&id).await
            }
        }
    }

    /// The id of a binary frame as a [`CallRef`]: echoed as the running call's open frame
    /// gave it, or as a JSON string if no call has that id.
    fn known_ref(&self, key: &str) -> CallRef {
        let echo = self.table().get(key).map(|entry| Arc::clone(&entry.echo));
        CallRef {
            key: key.into(),
            echo: echo.unwrap_or_else(|| Arc::from(serde_json::Value::from(key).to_string())),
        }
    }

    async fn open(&mut self, open: OpenFrame<'_>) {
        let id = open.id.clone();
        let limits = &self.state.config.websocket;
        let (duplicate, running) = {
            let table = self.table();
            (table.contains_key(&id.key), table.len())
        };
        if duplicate {
            let message = format!("a call with id {} is already running", id.echo);
            return self
                .send_error(Some(&id), Code::AlreadyExists, &message)
                .await;
        }
        if running >= limits.max_calls {
            let error = GatewayError::Upstream(Status::resource_exhausted(format!(
                "this socket already runs {running} calls, the limit; wait for one to end"
            )));
            return self.refuse(&id, &error, None).await;
        }
        let resolved = match self.state.resolve_path(&open.method) {
            Ok(resolved) => resolved,
            Err(error) => return self.refuse(&id, &error, None).await,
        };
        let label = Some(Arc::clone(&resolved.label));
        let shape =
            match ShapeChoice::of_fields(open.json_names.as_deref(), open.json_defaults.as_deref())
            {
                Ok(choice) => self
                    .state
                    .json_shape(JsonRoute::WebSocket, choice.or(self.socket_shape)),
                Err(error) => return self.refuse(&id, &error, label).await,
            };
        let descriptor = resolved.descriptor.clone();
        let input = descriptor.input();
        let first = match open.message.map(|raw| encode_json(&input, raw)).transpose() {
            Ok(first) => first,
            Err(error) => return self.refuse(&id, &error, label).await,
        };
        let metadata = match build_metadata(&open.metadata) {
            Ok(metadata) => metadata,
            Err(error) => return self.refuse(&id, &error, label).await,
        };
        let requested = open.timeout_ms.map(Duration::from_millis);
        let timeout = match effective_timeout(&self.state.upstream, requested) {
            Ok(timeout) => timeout,
            Err(error) => return self.refuse(&id, &error, label).await,
        };

        let client_streaming = descriptor.is_client_streaming();
        let (requests, inbound) = if client_streaming {
            let (queue, receiver) = mpsc::channel(limits.inbound_queue_messages.max(1));
            let queued_bytes = Arc::new(AtomicUsize::new(0));
            let inbound = Inbound {
                queue,
                queued_bytes: Arc::clone(&queued_bytes),
            };
            // Owned by the request stream: whatever is still queued when the upstream call
            // goes away is uncounted with it.
            let gauge = QueuedGauge {
                state: self.state.clone(),
                queued: queued_bytes,
            };
            let requests =
                tokio_stream::wrappers::ReceiverStream::new(receiver).map(move |message: Bytes| {
                    gauge.queued.fetch_sub(message.len(), Ordering::Relaxed);
                    WsStats::add(
                        &gauge.state.websocket_stats().inbound_bytes,
                        -(message.len() as i64),
                    );
                    message
                });
            (requests.boxed(), Some(inbound))
        } else {
            // Unary and server streaming: exactly one request message, then half-close.
            let message = first.clone().unwrap_or_default();
            (futures::stream::iter([message]).boxed(), None)
        };
        let (stop, stopped) = oneshot::channel();
        let mut entry = CallEntry {
            echo: Arc::clone(&id.echo),
            input,
            inbound,
            stop: Some(stop),
        };
        if let (true, Some(first)) = (client_streaming, first) {
            if let Err(status) = self.enqueue(&mut entry, first) {
                return self
                    .refuse(&id, &GatewayError::Upstream(status), label)
                    .await;
            }
        }

        let mut headers = metadata.into_headers();
        let trace = self.call_trace(Some(&headers));
        trace.write_headers(&mut headers);
        let mut request = tonic::Request::new(requests);
        *request.metadata_mut() = MetadataMap::from_headers(headers);
        let options = CallOptions::with_timeout(timeout);
        let call_id = self.call_id(&id);
        if let Ok(value) = MetadataValue::try_from(&*call_id) {
            request.metadata_mut().insert("x-call-id", value);
        }
        self.table().insert(id.key.clone(), entry);
        let call = Call {
            state: self.state.clone(),
            outbox: self.outbox.clone(),
            table: Arc::clone(&self.table),
            id,
            resolved,
            binary: open.binary,
            shape,
            call_id,
            options,
            trace,
        };
        self.calls
            .spawn(call.run(request, stopped, self.shutdown.clone()));
    }

    /// Put a request message on a call's queue, or say why the call must end.
    fn enqueue(&self, entry: &mut CallEntry, message: Bytes) -> Result<(), Status> {
        let limits = &self.state.config.websocket;
        let Some(inbound) = &entry.inbound else {
            return Ok(());
        };
        let len = message.len();
        let queued = inbound.queued_bytes.load(Ordering::Relaxed);
        let overflow = || {
            Status::resource_exhausted(format!(
                "the call's inbound queue ({} messages, {} bytes) is full: the upstream takes \
                 messages slower than they are sent",
                limits.inbound_queue_messages, limits.inbound_queue_bytes
            ))
        };
        // A message larger than the byte budget still goes through when nothing else waits
        // (frames are bounded by their own limit), so every message that fits a frame can be
        // sent.
        if queued > 0 && queued.saturating_add(len) > limits.inbound_queue_bytes {
            return Err(overflow());
        }
        inbound.queued_bytes.fetch_add(len, Ordering::Relaxed);
        WsStats::add(&self.state.websocket_stats().inbound_bytes, len as i64);
        match inbound.queue.try_send(message) {
            Ok(()) => Ok(()),
            Err(error) => {
                inbound.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                WsStats::add(&self.state.websocket_stats().inbound_bytes, -(len as i64));
                match error {
                    mpsc::error::TrySendError::Full(_) => Err(overflow()),
                    // The upstream stopped reading requests (the call is ending): its end
                    // frame follows; the message has nowhere to go.
                    mpsc::error::TrySendError::Closed(_) => {
                        entry.inbound = None;
                        Ok(())
                    }
                }
            }
        }
    }

    async fn deliver_json(&mut self, id: &CallRef, message: &RawValue) {
        let input = self.table().get(&id.key).map(|entry| entry.input.clone());
        let Some(input) = input else {
            return self.unknown(id).await;
        };
        match encode_json(&input, message) {
            Ok(bytes) => self.deliver(id, bytes).await,
            Err(error) => {
                // A message that does not fit cannot be skipped silently: the stream the
                // upstream sees would not be the one the client sent. End the call.
                self.stop(id, Status::invalid_argument(error.to_string()));
            }
        }
    }

    async fn deliver(&mut self, id: &CallRef, message: Bytes) {
        let outcome = self.try_deliver(id, message);
        match outcome {
            Delivery::Queued => {}
            Delivery::UnknownCall => self.unknown(id).await,
            Delivery::Closed => {
                let message = format!(
                    "call {} takes no more messages (its method is not client-streaming, or the \
                     client half-closed it)",
                    id.echo
                );
                self.send_error(Some(id), Code::FailedPrecondition, &message)
                    .await
            }
            Delivery::Failed(status) => self.stop(id, status),
        }
    }

    fn try_deliver(&self, id: &CallRef, message: Bytes) -> Delivery {
        let mut table = self.table();
        let Some(entry) = table.get_mut(&id.key) else {
            return Delivery::UnknownCall;
        };
        if entry.inbound.is_none() {
            return Delivery::Closed;
        }
        match self.enqueue(entry, message) {
            Ok(()) => Delivery::Queued,
            Err(status) => Delivery::Failed(status),
        }
    }

    async fn half_close(&mut self, id: &CallRef) {
        let known = match self.table().get_mut(&id.key) {
            // Dropping the queue's sender ends the request stream once it is drained.
            Some(entry) => {
                entry.inbound = None;
                true
            }
            None => false,
        };
        if !known {
            self.unknown(id).await;
        }
    }

    async fn cancel(&mut self, id: &CallRef) {
        let known = self.table().contains_key(&id.key);
        if known {
            self.stop(id, Status::cancelled("cancelled by the client"));
        } else {
            self.unknown(id).await;
        }
    }

    /// End a running call with `status` (its task sends the end frame). The request queue
    /// stays open: closing it would half-close the upstream call, which could then end by
    /// itself (OK) before the stop reaches it.
    fn stop(&self, id: &CallRef, status: Status) {
        if let Some(entry) = self.table().get_mut(&id.key) {
            if let Some(stop) = entry.stop.take() {
                let _ = stop.send(status);
            }
        }
    }

    async fn unknown(&self, id: &CallRef) {
        let message = format!(
            "no call with id {} is running (it ended, or was never opened)",
            id.echo
        );
        self.send_error(Some(id), Code::NotFound, &message).await;
    }
}

/// Parse a JSON message of type `input` and encode it as protobuf.
fn encode_json(input: &MessageDescriptor, json: &RawValue) -> Result<Bytes, GatewayError> {
    let message = json_to_message(input, json.get().as_bytes())?;
    Ok(Bytes::from(message.encode_to_vec()))
}

/// Request metadata from an open frame: ASCII values, or base64 for `-bin` keys.
fn build_metadata(pairs: &[(String, String)]) -> Result<MetadataMap, GatewayError> {
    use base64::Engine as _;
    let bad = |message: String| GatewayError::BadRequest(format!("\"metadata\": {message}"));
    let total: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_METADATA_BYTES {
        return Err(bad(format!(
            "{total} bytes; the limit is {MAX_METADATA_BYTES}"
        )));
    }
    let mut metadata = MetadataMap::new();
    for (key, value) in pairs {
        let lower = key.to_ascii_lowercase();
        if lower.starts_with("grpc-")
            || matches!(
                lower.as_str(),
                "content-type" | "te" | "user-agent" | "x-call-id"
            )
            || lower.starts_with(':')
        {
            return Err(bad(format!(
                "{key:?} is reserved (use \"timeout_ms\" for the deadline)"
            )));
        }
        if lower.ends_with("-bin") {
            let key = MetadataKey::from_bytes(lower.as_bytes())
                .map_err(|_| bad(format!("{key:?} is not a valid metadata key")))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(value))
                .map_err(|_| bad(format!("{key:?} is a -bin key; its value must be base64")))?;
            metadata.append_bin(key, MetadataValue::from_bytes(&bytes));
        } else {
            let key = MetadataKey::from_bytes(lower.as_bytes())
                .map_err(|_| bad(format!("{key:?} is not a valid metadata key")))?;
            let not_printable = || bad(format!("the value of {key:?} is not printable ASCII"));
            if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                return Err(not_printable());
            }
            let value = MetadataValue::try_from(value.as_str()).map_err(|_| not_printable())?;
            metadata.append(key, value);
        }
    }
    Ok(metadata)
}

/// One running call.
struct Call {
    state: GatewayState,
    outbox: Outbox,
    table: CallTable,
    id: CallRef,
    resolved: ResolvedMethod,
    binary: bool,
    /// How response messages (and known status details) are written in text frames.
    shape: JsonShape,
    call_id: Arc<str>,
    options: CallOptions,
    trace: CallTrace,
}

/// How a call ended: status and trailers.
struct Ending {
    status: Status,
    trailers: MetadataMap,
}

impl Ending {
    fn from_status(status: Status) -> Ending {
        let trailers = status.metadata().clone();
        Ending { status, trailers }
    }
}

impl Call {
    async fn run(
        self,
        request: tonic::Request<futures::stream::BoxStream<'static, Bytes>>,
        stopped: oneshot::Receiver<Status>,
        shutdown: Option<ShutdownSignal>,
    ) {
        let running = RunningGauge::new(&self.state);
        // A single-response call's headers and message, sent together with its end frame.
        let mut held = Vec::new();
        let mut tracker = self.state.metrics.start_call(
            Protocol::WebSocket,
            Arc::clone(&self.resolved.label),
            Arc::clone(&self.call_id),
        );
        tracker.set_trace(self.trace.clone());
        let ending = tokio::select! {
            // A stop that arrived wins over an answer that completed in the same instant.
            biased;
            stop = stopped => Ending::from_status(
                stop.unwrap_or_else(|_| Status::cancelled("the call was dropped")),
            ),
            () = ShutdownSignal::wait_opt(shutdown) => {
                Ending::from_status(Status::unavailable("the gateway is shutting down"))
            }
            ending = self.drive(request, &mut held) => ending,
        };
        // Leave the table first, so the id is free by the time the client sees the end.
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id.key);
        let status = &ending.status;
        tracker.finish(status.code(), status.message());
        drop(running);
        let details = self.details_json(status);
        let frame = frame::end_frame(
            &self.id,
            status.code(),
            status.message(),
            details,
            &ending.trailers,
        );
        held.push(Outbound::Text(frame));
        let _ = self.outbox.send(Outbound::Group(held)).await;
    }

    /// Make the upstream call and forward its answer; returns how it ended. Dropping this
    /// future drops the upstream call, which cancels it.
    ///
    /// Frames of methods with a single response (unary, client streaming) go to `held`, to
    /// be written together with the end frame: one write for the whole answer.
    async fn drive(
        &self,
        request: tonic::Request<futures::stream::BoxStream<'static, Bytes>>,
        held: &mut Vec<Outbound>,
    ) -> Ending {
        let single_response = !self.resolved.descriptor.is_server_streaming();
        let upstream = &self.state.upstream;
        let response = match upstream
            .raw_streaming(&self.resolved.descriptor, request, self.options)
            .await
        {
            Ok(response) => response,
            Err(status) => return Ending::from_status(status),
        };
        let (headers, mut messages, _) = response.into_parts();
        let headers = Outbound::Text(frame::headers_frame(&self.id, &headers));
        if single_response {
            held.push(headers);
        } else if !self.outbox.send(headers).await {
            return Ending::from_status(Status::cancelled("the socket closed"));
        }
        let output = self.resolved.descriptor.output();
        loop {
            // The upstream stack ends the stream with DEADLINE_EXCEEDED when the deadline passes.
            let next = messages.message().await;
            match next {
                Ok(Some(bytes)) => {
                    let frame = match self.render(&output, &bytes) {
                        Ok(frame) => frame,
                        Err(status) => return Ending::from_status(status),
                    };
                    // An upstream that answers a single-response method more than once
                    // gets its frames forwarded as they come, so `held` stays small.
                    if single_response && held.len() < 2 {
                        held.push(frame);
                        continue;
                    }
                    for early in held.drain(..) {
                        if !self.outbox.send(early).await {
                            return Ending::from_status(Status::cancelled("the socket closed"));
                        }
                    }
                    // Waiting for room here is the flow control: the next upstream message
                    // is not read until the client has taken enough of the previous ones.
                    if !self.outbox.send(frame).await {
                        return Ending::from_status(Status::cancelled("the socket closed"));
                    }
                }
                Ok(None) => {
                    return match messages.trailers().await {
                        Ok(trailers) => Ending {
                            status: Status::new(Code::Ok, ""),
                            trailers: trailers.unwrap_or_default(),
                        },
                        Err(status) => Ending::from_status(status),
                    };
                }
                Err(status) => return Ending::from_status(status),
            }
        }
    }

    /// A response message as the frame the client asked for.
    fn render(&self, output: &MessageDescriptor, bytes: &Bytes) -> Result<Outbound, Status> {
        if self.binary {
            return Ok(Outbound::Binary(frame::binary_message(&self.id.key, bytes)));
        }
        let message = DynamicMessage::decode(output.clone(), bytes.as_ref()).map_err(|e| {
            Status::internal(format!(
                "the upstream's response is not a valid {}: {e}",
                output.full_name()
            ))
        })?;
        let text = frame::message_frame(&self.id, |out| {
            write_message_json(&message, self.shape, out)
        });
        // The frame is JSON written by serde_json and our own ASCII: always UTF-8.
        String::from_utf8(text)
            .map(Outbound::Text)
            .map_err(|_| Status::internal("a response frame was not UTF-8"))
    }

    /// `grpc-status-details-bin` as JSON: each detail as proto3 JSON `Any` when the schema
    /// (or the standard `google.rpc` error details) knows its type, else
    /// `{"@type", "value": <base64>}`.
    fn details_json(&self, status: &Status) -> serde_json::Value {
        serde_json::Value::Array(crate::wire::status_details::readable_details(
            status,
            self.state.schema.pool(),
            self.shape,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn metadata_accepts_ascii_and_base64_binary_values() {
        let metadata = build_metadata(&pairs(&[
            ("X-Tenant", "a b"),
            ("x-tenant", "c"),
            ("trace-bin", "AAE="),
        ]))
        .unwrap();
        let tenants: Vec<_> = metadata
            .get_all("x-tenant")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(tenants, ["a b", "c"]);
        assert_eq!(
            metadata.get_bin("trace-bin").unwrap().to_bytes().unwrap(),
            Bytes::from_static(&[0, 1])
        );
    }

    #[test]
    fn metadata_refuses_reserved_bad_and_oversized_entries() {
        for bad in [
            ("grpc-timeout", "1S"),
            ("content-type", "x"),
            ("x-call-id", "x"),
            (":path", "/x"),
            ("bad key", "x"),
            ("x-ok", "caf\u{e9}"),
            ("x-bin", "not base64!"),
        ] {
            let error = build_metadata(&pairs(&[bad])).unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument, "{bad:?}");
            assert!(error.to_string().contains("metadata"), "{error}");
        }
        let huge = "v".repeat(MAX_METADATA_BYTES);
        assert!(build_metadata(&pairs(&[("x-a", huge.as_str())])).is_err());
    }
}
