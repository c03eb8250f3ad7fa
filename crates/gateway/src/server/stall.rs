//! The send-stall timeout: a connection whose writes make no progress for a while is ended.
//!
//! A client that stops reading (a background tab's SSE stream, a stalled `/render/ws`
//! viewer, a script that never drains an NDJSON stream) fills its socket's send buffer, and
//! every write to it waits. This wrapper around the connection's socket fails such a write
//! once it has waited [`ConnectionLimits::send_stall_timeout`](super::connections::ConnectionLimits)
//! with not one byte taken; the HTTP server then closes the connection and every response on
//! it is dropped with what it held. One place covers every streaming response, WebSockets
//! included (an upgraded connection keeps this socket).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::metrics::ConnectionStats;

/// The TCP socket under a connection's stream, so a stalled one can be reset.
pub(crate) trait TcpBacked {
    fn tcp(&self) -> Option<&tokio::net::TcpStream>;
}

impl TcpBacked for tokio::net::TcpStream {
    fn tcp(&self) -> Option<&tokio::net::TcpStream> {
        Some(self)
    }
}

impl TcpBacked for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn tcp(&self) -> Option<&tokio::net::TcpStream> {
        Some(self.get_ref().0)
    }
}

impl TcpBacked for tokio::io::DuplexStream {
    fn tcp(&self) -> Option<&tokio::net::TcpStream> {
        None
    }
}

/// A socket whose writes fail after `limit` without progress. A stalled socket is reset
/// when it is dropped, not closed: a closed socket keeps its unsent data (megabytes, the
/// kernel's send buffer) for as long as the client keeps its end open, and no longer
/// counts against the connection caps.
pub(crate) struct StallGuard<I: TcpBacked> {
    inner: I,
    limit: Duration,
    /// Running while a write waits; reset by any progress.
    waiting: Option<Pin<Box<Sleep>>>,
    stats: Arc<ConnectionStats>,
    counted: bool,
    /// Set by this guard or by the connection (an HTTP/2 stream stall): reset on drop.
    stalled: Arc<AtomicBool>,
}

impl<I: TcpBacked> StallGuard<I> {
    pub(crate) fn new(
        inner: I,
        limit: Duration,
        stats: Arc<ConnectionStats>,
        stalled: Arc<AtomicBool>,
    ) -> Self {
        Self {
            inner,
            limit,
            waiting: None,
            stats,
            counted: false,
            stalled,
        }
    }

    /// Called when the inner write is pending: arms the timer, or reports the stall.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let timer = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if !self.counted {
            self.counted = true;
            self.stalled.store(true, Ordering::Relaxed);
            self.stats.count_send_stall();
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client took nothing for {} s; closing its connection",
                limit.as_secs_f32()
            ),
        )))
    }

    fn progressed<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => self.pending(cx),
            ready => {
                self.waiting = None;
                ready
            }
        }
    }
}

fn stalled() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")
}

impl<I: TcpBacked> Drop for StallGuard<I> {
    fn drop(&mut self) {
        if self.stalled.load(Ordering::Relaxed) {
            if let Some(tcp) = self.inner.tcp() {
                // Linger 0: close with a reset, which frees the unsent data at once.
                let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
            }
        }
    }
}

impl<I: TcpBacked + AsyncRead + Unpin> AsyncRead for StallGuard<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: TcpBacked + AsyncWrite + Unpin> AsyncWrite for StallGuard<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Once stalled, always stalled: a closing handshake must not wait all over again.
        if this.counted {
            return Poll::Ready(Err(stalled()));
        }
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progressed(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Once stalled, always stalled: a closing handshake must not wait all over again.
        if this.counted {
            return Poll::Ready(Err(stalled()));
        }
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Once stalled, always stalled: a closing handshake must not wait all over again.
        if this.counted {
            return Poll::Ready(Err(stalled()));
        }
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.progressed(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Once stalled, always stalled: a closing handshake must not wait all over again.
        if this.counted {
            return Poll::Ready(Err(stalled()));
        }
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progressed(result, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test]
    async fn a_reader_that_stops_ends_the_writer_and_is_counted() {
        let stats = Arc::new(ConnectionStats::default());
        // A pipe with a small buffer: the far end never reads.
        let (near, _far) = tokio::io::duplex(1024);
        let mut guarded = StallGuard::new(
            near,
            Duration::from_millis(200),
            Arc::clone(&stats),
            Arc::default(),
        );
        let chunk = vec![0u8; 4096];
        let started = tokio::time::Instant::now();
        let error = guarded
            .write_all(&chunk)
            .await
            .expect_err("the write stalls");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(stats.send_stalls(), 1);
    }

    #[tokio::test]
    async fn a_slow_but_steady_reader_is_not_cut_off() {
        let stats = Arc::new(ConnectionStats::default());
        let (near, mut far) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut total = 0;
            while total < 8192 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                total += tokio::io::AsyncReadExt::read(&mut far, &mut buf)
                    .await
                    .unwrap_or(0);
            }
        });
        let mut guarded = StallGuard::new(
            near,
            Duration::from_millis(200),
            Arc::clone(&stats),
            Arc::default(),
        );
        guarded
            .write_all(&[1u8; 8192])
            .await
            .expect("steady progress");
        reader.await.expect("reader");
        assert_eq!(stats.send_stalls(), 0);
    }
}
