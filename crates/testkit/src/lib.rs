//! Test fixtures shared by every crate's tests: the real reference render server, served on
//! an ephemeral loopback port, in the forms tests need it.
//!
//! - [`RenderServerHandle::start`]: on the test's runtime, stopped when dropped (or by
//!   [`RenderServerHandle::stop`], which waits until the port is free);
//!   [`RenderServerHandle::restart_on`] brings one back on the same address;
//! - [`shared_render_server`]: one server for all the tests of a binary that only read;
//! - [`KillableRenderServer`]: on a runtime of its own, so [`KillableRenderServer::kill`]
//!   drops every connection at once, as when the upstream process dies.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use octaneweb_render_server::{RenderServer, RenderServerConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Bound on waiting for a port to be free again after a stop.
const REBIND_WAIT: Duration = Duration::from_secs(30);

/// A small render server configuration: 64 x 32 pixels renders fast.
pub fn small_config() -> RenderServerConfig {
    RenderServerConfig {
        width: 64,
        height: 32,
        ..Default::default()
    }
}

/// A render server running on the caller's runtime until stopped or dropped.
pub struct RenderServerHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RenderServerHandle {
    /// Start a render server on an ephemeral loopback port.
    pub async fn start(config: RenderServerConfig) -> RenderServerHandle {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        RenderServerHandle::start_on(listener, config)
    }

    /// Start a render server on `listener`.
    pub fn start_on(listener: TcpListener, config: RenderServerConfig) -> RenderServerHandle {
        let addr = listener.local_addr().expect("local addr");
        let server = RenderServer::start(config).expect("render server starts");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await;
        });
        RenderServerHandle {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Start again on `addr` (after a stop), retrying while the port is still held.
    pub async fn restart_on(addr: SocketAddr, config: RenderServerConfig) -> RenderServerHandle {
        let deadline = tokio::time::Instant::now() + REBIND_WAIT;
        loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => return RenderServerHandle::start_on(listener, config),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("rebinding {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot rebind {addr}: {e}"),
            }
        }
    }

    /// Stop the server and wait until it has let go of its port.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(REBIND_WAIT, task).await;
        }
    }
}

impl Drop for RenderServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One render server shared by the tests of a test binary that only read from it, on a
/// runtime thread of its own so it outlives each test's runtime.
pub fn shared_render_server() -> SocketAddr {
    static SHARED: OnceLock<SocketAddr> = OnceLock::new();
    *SHARED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                let server = RenderServer::start(small_config()).expect("render server starts");
                let _ = server.serve(listener, std::future::pending()).await;
            });
        });
        rx.recv().expect("shared render server address")
    })
}

/// A render server on a runtime of its own; [`KillableRenderServer::kill`] drops that runtime
/// and every connection with it, as when the upstream process dies.
pub struct KillableRenderServer {
    /// Where it listens.
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl KillableRenderServer {
    /// Start one with `config` on an ephemeral loopback port.
    pub fn start(config: RenderServerConfig) -> KillableRenderServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            let server = RenderServer::start(config).expect("render server");
            let _ = server.serve(listener, std::future::pending()).await;
        });
        KillableRenderServer {
            addr,
            runtime: Some(runtime),
        }
    }

    /// Drop the server's runtime: every task ends and every socket closes at once.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for KillableRenderServer {
    fn drop(&mut self) {
        self.kill();
    }
}
