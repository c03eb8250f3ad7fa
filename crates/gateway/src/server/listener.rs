//! The server loop: accept, admit within the connection caps, optionally complete TLS, then
//! serve HTTP/1.1 (with upgrades) and HTTP/2 on each connection, closing those that send
//! nothing, idle, or stop reading; graceful shutdown at the end.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::connections::{ConnectionGate, ConnectionLimits, InFlight, InFlightGuard, SendClock};
use super::stall::StallGuard;
use crate::context::{ConnectionSlot, ShutdownSignal};

/// How long shutdown waits for in-flight calls before closing what is left.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How the listening side runs: limits, TLS, and where its counters go.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// Connection caps and timeouts.
    pub limits: ConnectionLimits,
    /// Serve TLS (see [`super::tls::acceptor`]) instead of plain TCP.
    pub tls: Option<TlsAcceptor>,
    /// Counters for `/metrics` (share `GatewayState::connection_stats`).
    pub stats: Arc<crate::metrics::ConnectionStats>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("limits", &self.limits)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Serve `app` on `listener` with default limits and no TLS until `shutdown` resolves; see
/// [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ServeOptions::default(), shutdown).await
}

/// Serve HTTP/1.1 (with upgrades, for WebSockets) and HTTP/2 (h2c, or by ALPN over TLS) on
/// `listener` until `shutdown` resolves; then stop accepting, tell long-lived streams to end
/// ([`ShutdownSignal`]) and wait up to [`DRAIN_TIMEOUT`] for in-flight calls.
///
/// Every request carries `ConnectInfo<SocketAddr>`, [`ShutdownSignal`] and [`ConnectionSlot`]
/// extensions.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let signal = ShutdownSignal::new(shutdown_rx);
    let gate = ConnectionGate::new(options.limits.clone(), Arc::clone(&options.stats));
    let builder = Arc::new(http_builder(&options.limits));
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Typically EMFILE; back off briefly instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Over a cap: closed at once, so it neither waits in the backlog nor holds a slot.
        let Some(admitted) = gate.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            signal: signal.clone(),
            peer,
            slot: ConnectionSlot::new(admitted),
            gate: Arc::clone(&gate),
            builder: Arc::clone(&builder),
        };
        let tls = options.tls.clone();
        tokio::spawn(connection.run(stream, tls));
    }

    drop(listener);
    let _ = shutdown_tx.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, gate.emptied())
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown: calls still running after {} s were cut off",
            DRAIN_TIMEOUT.as_secs()
        );
    }
    Ok(())
}

/// Largest request header block accepted from a client: well above the per-call metadata
/// limit toward the upstream, so an oversized call gets a gRPC status that names the limit
/// (RESOURCE_EXHAUSTED) rather than a bare HTTP 431.
const MAX_HEADER_LIST_BYTES: u32 = 256 * 1024;
/// Streams one client connection may have open at once.
const MAX_STREAMS_PER_CONNECTION: u32 = 1024;

fn http_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // Fixed 1 MiB connection window rather than an adaptive one: h2 ends a connection whose
    // unread small DATA frames exceed half the window (`too_many_data_frames`), and an
    // adaptive window starts at 64 KiB, which a client's burst of a few hundred tiny
    // requests on one connection exceeds.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        .initial_connection_window_size(1024 * 1024)
        .initial_stream_window_size(1024 * 1024);
    builder
}

/// One accepted connection and what serving it needs.
struct Connection {
    app: Router,
    signal: ShutdownSignal,
    peer: SocketAddr,
    slot: ConnectionSlot,
    gate: Arc<ConnectionGate>,
    builder: Arc<auto::Builder<TokioExecutor>>,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let limits = self.gate.limits().clone();
        let stats = Arc::clone(self.gate.stats());
        // A client that connects and says nothing holds a slot for a few seconds at most.
        // (`peek` waits for a byte or the end; readiness alone can be reported early.)
        let mut first = [0u8; 1];
        if tokio::time::timeout(limits.first_byte_timeout, stream.peek(&mut first))
            .await
            .is_err()
        {
            stats.count_first_byte_timeout();
            return;
        }
        let stalled = Arc::new(AtomicBool::new(false));
        match tls {
            None => {
                let io = StallGuard::new(
                    stream,
                    limits.send_stall_timeout,
                    stats,
                    Arc::clone(&stalled),
                );
                self.serve(io, stalled).await;
            }
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(limits.first_byte_timeout, acceptor.accept(stream)).await;
                match handshake {
                    Ok(Ok(tls_stream)) => {
                        let io = StallGuard::new(
                            tls_stream,
                            limits.send_stall_timeout,
                            stats,
                            Arc::clone(&stalled),
                        );
                        self.serve(io, stalled).await;
                    }
                    Ok(Err(error)) => {
                        stats.count_tls_failure();
                        tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
                    }
                    Err(_elapsed) => stats.count_tls_failure(),
                }
            }
        }
    }

    /// Serves HTTP on `io`; sets `stalled` when a response stream stalls, so the socket is
    /// reset as it drops.
    async fn serve<I>(self, io: I, stalled: Arc<AtomicBool>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            app,
            signal,
            peer,
            slot,
            gate,
            builder,
        } = self;
        let in_flight = Arc::new(InFlight::default());
        let requests = Arc::clone(&in_flight);
        let request_signal = signal.clone();
        let service =
            hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(request_signal.clone());
                request.extensions_mut().insert(slot.clone());
                let guard = requests.start();
                let connection = Arc::clone(&requests);
                let app = app.clone();
                async move {
                    let response = match app.oneshot(request.map(Body::new)).await {
                        Ok(response) => response,
                        Err(infallible) => match infallible {},
                    };
                    // The request is in flight until its body has been sent (streams too).
                    let clock = connection.clock();
                    Ok::<_, Infallible>(response.map(|body| {
                        Body::new(Tracked {
                            body,
                            clock,
                            connection,
                            _guard: guard,
                        })
                    }))
                }
            });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        let mut signal = signal;
        let idle_timeout = gate.limits().idle_timeout;
        let stall_timeout = gate.limits().send_stall_timeout;
        let mut stall_check =
            tokio::time::interval((stall_timeout / 4).max(Duration::from_millis(100)));
        stall_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    break;
                }
                _ = stall_check.tick() => {
                    // A stream whose client withholds its window (HTTP/2) or a socket the
                    // client stopped reading: the connection and all it holds are dropped.
                    if in_flight.send_stalled(stall_timeout) {
                        stalled.store(true, std::sync::atomic::Ordering::Relaxed);
                        gate.stats().count_send_stall();
                        tracing::debug!(%peer, "a client stopped reading a response; closing its connection");
                        break;
                    }
                }
                () = signal.wait(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = in_flight.idle_for(idle_timeout), if !closing => {
                    gate.stats().count_idle_close();
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// A response body that keeps its request counted as in flight until it is done, and keeps
/// its send clock: set when a frame goes to the HTTP layer, cleared when the HTTP layer comes
/// back for more (which it does only once the frame is on its way).
struct Tracked {
    body: Body,
    clock: Arc<SendClock>,
    connection: Arc<InFlight>,
    _guard: InFlightGuard,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        this.clock.taken();
        let polled = std::pin::Pin::new(&mut this.body).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled {
            if frame.is_data() {
                this.clock.handed(&this.connection);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
