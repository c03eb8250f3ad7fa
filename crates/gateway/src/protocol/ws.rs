//! `GET /ws`: one WebSocket multiplexing many calls of all four RPC kinds.
//!
//! The protocol, frame by frame, is in docs/websocket.md. In short, the client opens a call
//! with a text frame `{"id", "method", "message"?, "metadata"?, "timeout_ms"?, "binary"?}`,
//! streams more `{"id", "message"}` frames to client- and bidi-streaming calls, ends its side
//! with `{"id", "half_close": true}` or the whole call with `{"id", "cancel": true}`. The
//! gateway answers `{"id", "headers"}` once, `{"id", "message"}` per response message and
//! `{"id", "end": {"code", "message", "details", "trailers"}}` last. Frames it cannot use get
//! `{"error": {"code", "message", "id"?}}` and the socket's other calls continue. A binary
//! frame form carries protobuf bytes for clients with their own codecs ([`frame`]).
//!
//! Messages in text frames are written in the call's JSON shape: the open frame's
//! `json_names` / `json_defaults`, else the socket's (`/ws?json_names=camel`, or the
//! `X-Json-*` headers of the upgrade request), else the gateway's, else proto field names
//! with defaults ([`crate::context::json_shape`]).
//!
//! # Flow control and limits ([`WsLimits`](crate::context::WsLimits))
//!
//! - Each call has a bounded inbound queue (messages and bytes). A client that sends faster
//!   than the upstream takes overflows it and that call (only) ends with
//!   `RESOURCE_EXHAUSTED`; the socket keeps being read, so one slow upstream call never
//!   blocks the others.
//! - Each socket has a bounded outbound queue of frames. A call waits for room before it
//!   reads the next upstream message, so a client that reads slowly slows the upstream streams
//!   it reads (the HTTP/2 window then pushes back on the upstream) instead of growing memory.
//! - At most [`WsLimits::max_calls`](crate::context::WsLimits::max_calls) calls run at once per socket; an open past it ends at
//!   once with `RESOURCE_EXHAUSTED`.
//! - The gateway pings every [`WsLimits::ping_interval`](crate::context::WsLimits::ping_interval) and closes a socket from which
//!   nothing (not even a pong) arrived for [`WsLimits::idle_timeout`](crate::context::WsLimits::idle_timeout).
//! - Client frames larger than [`WsLimits::max_frame_bytes`](crate::context::WsLimits::max_frame_bytes) close the socket with 1009 (the
//!   WebSocket layer refuses them); WebSocket protocol violations close it with 1002, a text
//!   frame that is not UTF-8 with 1007, each with a reason naming the problem.

pub mod frame;
mod session;

use std::sync::Arc;
use std::time::Duration;

// Close codes (RFC 6455 §7.4.1), as axum names them.
use axum::extract::ws::close_code::{
    AWAY as CLOSE_GOING_AWAY, INVALID as CLOSE_INVALID_DATA, PROTOCOL as CLOSE_PROTOCOL_ERROR,
    SIZE as CLOSE_TOO_BIG,
};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;

use crate::context::{CallId, ConnectionSlot, GatewayState, ShapeChoice, ShutdownSignal};
use crate::metrics::WsStats;
use crate::wire::trace_context::CallTrace;

/// The route handler: upgrades to a WebSocket and serves it.
pub async fn handle(
    State(state): State<GatewayState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    call_id: Option<Extension<CallId>>,
    trace: Option<Extension<CallTrace>>,
    shutdown: Option<Extension<ShutdownSignal>>,
    slot: Option<Extension<ConnectionSlot>>,
    socket_shape: ShapeChoice,
) -> Response {
    // Pages from origins the CORS policy refuses never get here: browsers open WebSockets
    // to any origin, and the router refuses those before routing.
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let status = rejection.status();
            let body = serde_json::json!({
                "success": false,
                "error": format!("GET /ws must be a WebSocket upgrade: {}", rejection.body_text()),
                "code": "INVALID_ARGUMENT",
            });
            return (status, axum::Json(body)).into_response();
        }
    };
    let limits = state.config.websocket.clone();
    let socket_id = call_id
        .map(|Extension(CallId(id))| id)
        .unwrap_or_else(|| Arc::from("ws"));
    let shutdown = shutdown.map(|Extension(signal)| signal);
    let trace = trace.map(|Extension(trace)| trace);
    upgrade
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| async move {
            // The socket counts against the connection caps until it closes.
            let _slot = slot;
            serve_socket(state, socket, socket_id, socket_shape, trace, shutdown).await;
        })
}

/// What the socket's writer sends.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(bytes::Bytes),
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
    /// Frames written together (a single-response call's whole answer).
    Group(Vec<Outbound>),
}

impl Outbound {
    fn len(&self) -> usize {
        match self {
            Outbound::Text(text) => text.len(),
            Outbound::Binary(bytes) => bytes.len(),
            Outbound::Close(..) => 0,
            Outbound::Group(frames) => frames.iter().map(Outbound::len).sum(),
        }
    }
}

/// The sending side of a socket's bounded outbound queue; counts what it holds.
#[derive(Clone)]
pub(crate) struct Outbox {
    queue: mpsc::Sender<Outbound>,
    state: GatewayState,
}

impl Outbox {
    /// Queue a frame, waiting for room. `false` if the socket is gone.
    pub(crate) async fn send(&self, frame: Outbound) -> bool {
        let len = frame.len();
        let stats = self.state.websocket_stats();
        WsStats::add(&stats.outbound_bytes, len as i64);
        let sent = self.queue.send(frame).await.is_ok();
        if sent {
            self.state
                .metrics
                .add_bytes_out(crate::metrics::Protocol::WebSocket, len as u64);
        } else {
            WsStats::add(&stats.outbound_bytes, -(len as i64));
        }
        sent
    }
}

/// The close frame (code and reason) that answers a failed read, as RFC 6455 asks: 1009 for a
/// frame over the limit, 1002 for a protocol violation, 1007 for a text frame that is not
/// UTF-8. `None` when the client is gone and nothing can be sent.
fn close_for_read_error(error: axum::Error) -> Option<(u16, &'static str)> {
    use tungstenite::error::ProtocolError;
    let error = error.into_inner();
    let error = error.downcast_ref::<tungstenite::Error>()?;
    let violation = |reason| Some((CLOSE_PROTOCOL_ERROR, reason));
    match error {
        tungstenite::Error::Capacity(_) => {
            Some((CLOSE_TOO_BIG, "frame larger than the gateway's limit"))
        }
        tungstenite::Error::Utf8(_) => Some((CLOSE_INVALID_DATA, "text frame is not valid UTF-8")),
        tungstenite::Error::Protocol(protocol) => match protocol {
            ProtocolError::ResetWithoutClosingHandshake => None,
            ProtocolError::UnmaskedFrameFromClient => violation("client frames must be masked"),
            ProtocolError::NonZeroReservedBits => {
                violation("reserved bits set, but no extension was agreed")
            }
            ProtocolError::UnknownDataFrameType(_)
            | ProtocolError::UnknownControlFrameType(_)
            | ProtocolError::InvalidOpcode(_) => violation("reserved opcode"),
            ProtocolError::FragmentedControlFrame => violation("fragmented control frame"),
            ProtocolError::ControlFrameTooBig => violation("control frame longer than 125 bytes"),
            ProtocolError::UnexpectedContinueFrame => {
                violation("continuation frame without a message to continue")
            }
            ProtocolError::ExpectedFragment(_) => {
                violation("new message before the fragmented one ended")
            }
            ProtocolError::InvalidCloseSequence => violation("malformed close frame"),
            _ => violation("WebSocket protocol violation"),
        },
        _ => None,
    }
}

/// How long a closing socket waits for its writer to flush the last frames.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

async fn serve_socket(
    state: GatewayState,
    socket: WebSocket,
    socket_id: Arc<str>,
    socket_shape: ShapeChoice,
    trace: Option<CallTrace>,
    shutdown: Option<ShutdownSignal>,
) {
    let limits = state.config.websocket.clone();
    let _open = OpenSocket::new(&state);
    let (sink, mut incoming) = socket.split();
    let (queue, outgoing) = mpsc::channel(limits.outbound_queue_frames.max(1));
    let mut writer = tokio::spawn(write_frames(
        state.clone(),
        sink,
        outgoing,
        limits.ping_interval,
    ));
    let outbox = Outbox {
        queue,
        state: state.clone(),
    };
    let mut session = session::Session::new(
        state,
        outbox.clone(),
        socket_id,
        socket_shape,
        trace,
        shutdown.clone(),
    );

    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let shutdown_signal = ShutdownSignal::wait_opt(shutdown);
    tokio::pin!(shutdown_signal);
    let mut writer_done = false;
    loop {
        tokio::select! {
            // The writer ends only when the socket cannot take frames any more (the client
            // stopped reading past the send-stall timeout, or went away): so does the socket.
            _ = &mut writer, if !writer_done => {
                writer_done = true;
                break;
            }
            frame = incoming.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(error)) => {
                        if let Some((code, reason)) = close_for_read_error(error) {
                            let _ = outbox.queue.try_send(Outbound::Close(code, reason));
                        }
                        break;
                    }
                    None => break,
                };
                idle.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
                match frame {
                    Message::Text(text) => session.on_text(text.as_str()).await,
                    Message::Binary(bytes) => session.on_binary(bytes).await,
                    Message::Ping(_) | Message::Pong(_) => {}
                    Message::Close(_) => break,
                }
            }
            () = session.reap() => {}
            () = &mut idle => {
                tracing::debug!(socket = %session.socket_id(), "closing an idle WebSocket");
                let _ = outbox.queue.try_send(Outbound::Close(CLOSE_GOING_AWAY, "idle timeout"));
                break;
            }
            () = &mut shutdown_signal => {
                // Calls see the signal too and end with UNAVAILABLE; let their end frames out.
                session.finish_calls(CLOSE_FLUSH_TIMEOUT).await;
                let _ = outbox.send(Outbound::Close(CLOSE_GOING_AWAY, "the gateway is shutting down")).await;
                break;
            }
        }
    }
    // Dropping the session aborts the calls still running, which cancels them upstream.
    session.abort_calls().await;
    drop(session);
    drop(outbox);
    if !writer_done
        && tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
}

/// Counts an open socket in the gauges until dropped.
struct OpenSocket(GatewayState);

impl OpenSocket {
    fn new(state: &GatewayState) -> OpenSocket {
        WsStats::add(&state.websocket_stats().sockets, 1);
        OpenSocket(state.clone())
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        WsStats::add(&self.0.websocket_stats().sockets, -1);
    }
}

/// The WebSocket messages of a queued frame; `last` is set by a close frame.
fn to_messages(frame: Outbound, out: &mut Vec<Message>, last: &mut bool) {
    match frame {
        Outbound::Text(text) => out.push(Message::Text(text.into())),
        Outbound::Binary(bytes) => out.push(Message::Binary(bytes)),
        Outbound::Close(code, reason) => {
            out.push(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })));
            *last = true;
        }
        Outbound::Group(frames) => {
            for frame in frames {
                to_messages(frame, out, last);
            }
        }
    }
}

/// Write queued frames to the socket, and a ping every `ping_interval`. Ends when the queue
/// closes, a close frame was sent, or the socket fails.
async fn write_frames(
    state: GatewayState,
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut outgoing: mpsc::Receiver<Outbound>,
    ping_interval: Duration,
) {
    let stats = state.websocket_stats();
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let frame = tokio::select! {
            frame = outgoing.recv() => frame,
            _ = ping.tick() => {
                if sink.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let Some(frame) = frame else { break };
        let len = frame.len() as i64;
        let mut messages = Vec::new();
        let mut last = false;
        to_messages(frame, &mut messages, &mut last);
        let mut written = Ok(());
        for message in messages {
            written = sink.feed(message).await;
            if written.is_err() {
                break;
            }
        }
        // Many small frames are written together: flush only when nothing else is waiting.
        if written.is_ok() && (last || outgoing.is_empty()) {
            written = sink.flush().await;
        }
        WsStats::add(&stats.outbound_bytes, -len);
        if written.is_err() || last {
            break;
        }
    }
    // Frames still queued are dropped with the receiver; uncount them.
    outgoing.close();
    while let Ok(frame) = outgoing.try_recv() {
        WsStats::add(&stats.outbound_bytes, -(frame.len() as i64));
    }
    let _ = sink.close().await;
}
