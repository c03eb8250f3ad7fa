//! [`RenderServer`]: the render loop plus the tonic server around it.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt as _;
use octaneweb_proto::gen1::octaneapi as gen1;
use octaneweb_proto::livelinkapi::live_link_service_server::LiveLinkServiceServer;
use octaneweb_proto::octaneapi as gen2;
use octaneweb_proto::octaneapi::api_change_manager_service_server::ApiChangeManagerServiceServer;
use octaneweb_proto::octaneapi::api_info_service_server::ApiInfoServiceServer;
use octaneweb_proto::octaneapi::api_item_array_service_server::ApiItemArrayServiceServer;
use octaneweb_proto::octaneapi::api_item_service_server::ApiItemServiceServer;
use octaneweb_proto::octaneapi::api_node_array_service_server::ApiNodeArrayServiceServer;
use octaneweb_proto::octaneapi::api_node_graph_service_server::ApiNodeGraphServiceServer;
use octaneweb_proto::octaneapi::api_node_pin_info_ex_service_server::ApiNodePinInfoExServiceServer;
use octaneweb_proto::octaneapi::api_node_service_server::ApiNodeServiceServer;
use octaneweb_proto::octaneapi::api_project_manager_service_server::ApiProjectManagerServiceServer;
use octaneweb_proto::octaneapi::api_render_engine_service_server::ApiRenderEngineServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::engine::{self, Engine};
use crate::files::{FileRoot, WritableRoot};
use crate::services::callbacks::{Gen1CallbackService, Gen2CallbackService};
use crate::services::livelink::LiveLinkServiceImpl;
use crate::services::nodes::NodeServices;
use crate::services::render_engine::RenderEngineService;
use crate::services::Shared;
use crate::{
    CallbackGeneration, RenderServerConfig, RenderServerError, MAX_FILE_BYTES, MAX_MESSAGE_BYTES,
};

/// Streams a client may reset before the server has accepted them, per connection, before
/// the connection is taken for a reset flood: one proxy's connection carries up to a few
/// hundred calls of many clients.
const MAX_PENDING_ACCEPT_RESETS: usize = 1024;

/// A running render loop, ready to be served over gRPC.
///
/// [`RenderServer::start`] starts rendering at once on a dedicated thread;
/// [`RenderServer::serve`] answers gRPC on a listener until its shutdown future completes.
/// Dropping the server (which `serve` does when it returns) ends the render thread after
/// its current sample and closes every callback stream.
pub struct RenderServer {
    engine: Arc<Engine>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for RenderServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderServer")
            .field("config", self.engine.config())
            .finish_non_exhaustive()
    }
}

impl RenderServer {
    /// Validates `config`, builds the scene and starts the render loop thread.
    ///
    /// Fails on an invalid configuration, a `file_root` that is not an existing directory,
    /// or when the thread cannot be spawned.
    pub fn start(config: RenderServerConfig) -> Result<RenderServer, RenderServerError> {
        config.validate()?;
        let files = match &config.file_root {
            Some(path) => Some(FileRoot::new(path, MAX_FILE_BYTES).map_err(|source| {
                RenderServerError::FileRoot {
                    path: path.clone(),
                    source,
                }
            })?),
            None => None,
        };
        let projects = match &config.project_root {
            Some(path) => {
                Some(
                    WritableRoot::new(path).map_err(|source| RenderServerError::FileRoot {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let engine = engine::start(config)?;
        let (shutdown, shutdown_seen) = watch::channel(false);
        let shared = Arc::new(Shared::new(
            Arc::clone(&engine),
            files,
            projects,
            shutdown_seen,
        ));
        Ok(RenderServer {
            engine,
            shared,
            shutdown,
        })
    }

    /// The configuration the server was started with.
    pub fn config(&self) -> &RenderServerConfig {
        self.engine.config()
    }

    /// Every service the server answers (LiveLink, reflection v1 and v1alpha,
    /// `grpc.health.v1`), for hosting them in another tonic server, e.g. behind a layer.
    /// [`RenderServer::serve`] serves exactly these.
    pub async fn routes(&self) -> Result<tonic::service::Routes, RenderServerError> {
        let generation = self.engine.config().callback_generation;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(generation.descriptor_set())
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(generation.descriptor_set())
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let shared = &self.shared;
        let render_engine =
            ApiRenderEngineServiceServer::new(RenderEngineService::new(Arc::clone(shared)))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let livelink = LiveLinkServiceServer::new(LiveLinkServiceImpl::new(Arc::clone(shared)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let nodes = NodeServices::new(Arc::clone(shared));
        let project_manager = ApiProjectManagerServiceServer::new(nodes.clone());
        let node_graph = ApiNodeGraphServiceServer::new(nodes.clone());
        let item_array = ApiItemArrayServiceServer::new(nodes.clone());
        let item = ApiItemServiceServer::new(nodes.clone());
        let node = ApiNodeServiceServer::new(nodes.clone());
        let node_array = ApiNodeArrayServiceServer::new(nodes.clone());
        let pin_info = ApiNodePinInfoExServiceServer::new(nodes.clone());
        let change_manager = ApiChangeManagerServiceServer::new(nodes.clone());
        let info = ApiInfoServiceServer::new(nodes);

        let (health_reporter, health) = tonic_health::server::health_reporter();
        let served_names = [
            <ApiRenderEngineServiceServer<RenderEngineService> as NamedService>::NAME,
            <LiveLinkServiceServer<LiveLinkServiceImpl> as NamedService>::NAME,
            <ApiProjectManagerServiceServer<NodeServices> as NamedService>::NAME,
            <ApiNodeGraphServiceServer<NodeServices> as NamedService>::NAME,
            <ApiItemArrayServiceServer<NodeServices> as NamedService>::NAME,
            <ApiItemServiceServer<NodeServices> as NamedService>::NAME,
            <ApiNodeServiceServer<NodeServices> as NamedService>::NAME,
            <ApiNodeArrayServiceServer<NodeServices> as NamedService>::NAME,
            <ApiNodePinInfoExServiceServer<NodeServices> as NamedService>::NAME,
            <ApiChangeManagerServiceServer<NodeServices> as NamedService>::NAME,
            <ApiInfoServiceServer<NodeServices> as NamedService>::NAME,
            gen2::stream_callback_service_server::SERVICE_NAME,
        ];
        for name in served_names {
            health_reporter
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }

        let routes = tonic::service::Routes::new(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(render_engine)
            .add_service(livelink)
            .add_service(project_manager)
            .add_service(node_graph)
            .add_service(item_array)
            .add_service(item)
            .add_service(node)
            .add_service(node_array)
            .add_service(pin_info)
            .add_service(change_manager)
            .add_service(info);
        Ok(match generation {
            CallbackGeneration::Gen2 => routes.add_service(
                gen2::stream_callback_service_server::StreamCallbackServiceServer::new(
                    Gen2CallbackService::new(Arc::clone(shared)),
                )
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            ),
            CallbackGeneration::Gen1 => routes.add_service(
                gen1::stream_callback_service_server::StreamCallbackServiceServer::new(
                    Gen1CallbackService::new(Arc::clone(shared)),
                )
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            ),
        })
    }

    /// Serves every LiveLink service, gRPC reflection (v1 and v1alpha) and
    /// `grpc.health.v1` on `listener` until `shutdown` completes; then closes the callback
    /// streams, finishes in-flight calls and stops rendering.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RenderServerError> {
        let generation = self.engine.config().callback_generation;
        // A proxy in front (the gateway) multiplexes many clients' calls on one connection;
        // when dozens of them go away at once it resets their streams together, which h2's
        // default allowance for resets of not-yet-accepted streams (20) takes for a reset
        // flood and answers by closing the connection and every call on it.
        let router = Server::builder()
            .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESETS))
            .add_routes(self.routes().await?);

        // Callback streams never end on their own; tell them to, or the graceful shutdown
        // would wait for them forever.
        let stopping = self.shutdown.clone();
        let signal = async move {
            shutdown.await;
            let _ = stopping.send(true);
        };
        let incoming = TcpListenerStream::new(listener).map(|accepted| {
            accepted.inspect(|stream| {
                // Small control calls should not wait for Nagle's algorithm.
                let _ = stream.set_nodelay(true);
            })
        });
        tracing::info!(
            generation = ?generation,
            width = self.engine.config().width,
            height = self.engine.config().height,
            "render server serving"
        );
        router
            .serve_with_incoming_shutdown(incoming, signal)
            .await?;
        Ok(())
    }
}

impl Drop for RenderServer {
    fn drop(&mut self) {
        self.engine.shutdown();
        let _ = self.shutdown.send(true);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use octaneweb_proto::octaneapi::api_render_engine::{
        GrabRenderResultRequest, RestartRenderingRequest,
    };
    use octaneweb_proto::octaneapi::api_render_engine_service_client::ApiRenderEngineServiceClient;
    use octaneweb_proto::octaneapi::stream_callback_request::Payload;
    use octaneweb_proto::octaneapi::stream_callback_service_client::StreamCallbackServiceClient;
    use tonic::transport::Endpoint;

    use super::*;

    const WAIT: Duration = Duration::from_secs(30);

    /// Reads the stream until `wanted` matches a payload.
    async fn wait_for(
        stream: &mut tonic::Streaming<gen2::StreamCallbackRequest>,
        wanted: impl Fn(&Payload) -> bool,
    ) {
        tokio::time::timeout(WAIT, async {
            loop {
                let message = stream.message().await.expect("healthy").expect("open");
                if message.payload.as_ref().is_some_and(&wanted) {
                    return;
                }
            }
        })
        .await
        .expect("callback arrived in time");
    }

    #[tokio::test]
    async fn statistics_flow_and_a_panicking_renderer_reports_render_failure() {
        let server = RenderServer::start(RenderServerConfig {
            width: 64,
            height: 32,
            max_callback_rate: 100.0,
            ..RenderServerConfig::default()
        })
        .expect("start");
        let engine = Arc::clone(&server.engine);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut stream = StreamCallbackServiceClient::new(channel.clone())
            .callback_channel(())
            .await
            .expect("callbackChannel")
            .into_inner();
        wait_for(&mut stream, |p| matches!(p, Payload::NewStatistics(_))).await;

        engine.inject_panic.store(true, Ordering::Release);
        wait_for(&mut stream, |p| matches!(p, Payload::RenderFailure(_))).await;
        assert_eq!(engine.subscribe_status().borrow().failures, 1);

        // The last good frame stays available, and a restart renders again.
        let mut control = ApiRenderEngineServiceClient::new(channel);
        let grabbed = control
            .grab_render_result(GrabRenderResultRequest {})
            .await
            .expect("grab")
            .into_inner();
        assert!(grabbed.result);
        let level = engine.change_level();
        control
            .restart_rendering(RestartRenderingRequest {})
            .await
            .expect("restart");
        tokio::time::timeout(WAIT, async {
            loop {
                wait_for(&mut stream, |p| matches!(p, Payload::NewImage(_))).await;
                let latest = engine.latest_frame().expect("frame");
                if latest.stats.change_level > level {
                    return;
                }
            }
        })
        .await
        .expect("rendering resumed after restart");

        let _ = stop.send(());
        tokio::time::timeout(WAIT, serving)
            .await
            .expect("serve returns")
            .expect("joins")
            .expect("clean shutdown");
    }
}
