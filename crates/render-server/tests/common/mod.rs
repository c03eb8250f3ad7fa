//! Shared helpers: a real render server on an ephemeral port and real tonic clients.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use octaneweb_proto::gen1::octaneapi as gen1;
use octaneweb_proto::livelinkapi::live_link_service_client::LiveLinkServiceClient;
use octaneweb_proto::octaneapi as gen2;
use octaneweb_proto::octaneapi::api_render_engine::{
    GrabRenderResultRequest, ReleaseRenderResultRequest, SetOnNewImageCallbackRequest,
};
use octaneweb_proto::octaneapi::api_render_engine_service_client::ApiRenderEngineServiceClient;
use octaneweb_proto::octaneapi::{ApiRenderImage, OnNewImageCallbackT};
use octaneweb_render_server::{RenderServer, RenderServerConfig, RenderServerError};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

/// How long any single wait for an event may take before the test fails.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A small, fast configuration for tests.
pub fn test_config() -> RenderServerConfig {
    RenderServerConfig {
        width: 128,
        height: 64,
        max_callback_rate: 100.0,
        ..RenderServerConfig::default()
    }
}

/// A render server serving on 127.0.0.1:0, with a connected channel.
pub struct TestServer {
    pub addr: SocketAddr,
    pub channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), RenderServerError>>,
}

impl TestServer {
    pub async fn start(config: RenderServerConfig) -> TestServer {
        let server = RenderServer::start(config).expect("render server starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        TestServer {
            addr,
            channel,
            stop: Some(stop),
            task,
        }
    }

    pub fn render_engine(&self) -> ApiRenderEngineServiceClient<Channel> {
        ApiRenderEngineServiceClient::new(self.channel.clone())
    }

    pub fn livelink(&self) -> LiveLinkServiceClient<Channel> {
        LiveLinkServiceClient::new(self.channel.clone())
    }

    pub async fn callbacks_gen2(&self) -> Streaming<gen2::StreamCallbackRequest> {
        gen2::stream_callback_service_client::StreamCallbackServiceClient::new(self.channel.clone())
            .callback_channel(())
            .await
            .expect("callbackChannel opens")
            .into_inner()
    }

    pub async fn callbacks_gen1(&self) -> Streaming<gen1::StreamCallbackRequest> {
        gen1::stream_callback_service_client::StreamCallbackServiceClient::new(self.channel.clone())
            .callback_channel(())
            .await
            .expect("callbackChannel opens")
            .into_inner()
    }

    /// Triggers shutdown and waits for `serve` to return.
    pub async fn shutdown(mut self) -> Result<(), RenderServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        within(&mut self.task).await.expect("serve task joins")
    }
}

/// Awaits `future`, failing the test after [`EVENT_TIMEOUT`].
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(EVENT_TIMEOUT, future)
        .await
        .expect("event did not arrive in time")
}

/// Registers a new-image callback and returns the server's callback id.
pub async fn register(client: &mut ApiRenderEngineServiceClient<Channel>, user_data: u64) -> u32 {
    client
        .set_on_new_image_callback(SetOnNewImageCallbackRequest {
            callback: Some(OnNewImageCallbackT {
                callback_source: "octaneweb-test".into(),
                callback_id: 7,
            }),
            user_data,
        })
        .await
        .expect("setOnNewImageCallback")
        .into_inner()
        .callback_id
}

/// Waits for the next generation-2 `newImage` notification; returns its user data.
pub async fn next_notification(stream: &mut Streaming<gen2::StreamCallbackRequest>) -> u64 {
    use gen2::stream_callback_request::Payload;
    loop {
        let message = within(stream.message())
            .await
            .expect("stream stays healthy")
            .expect("stream stays open");
        if let Some(Payload::NewImage(data)) = message.payload {
            return data.user_data;
        }
    }
}

/// Grabs the current render result and releases it; panics when there is none.
pub async fn grab(client: &mut ApiRenderEngineServiceClient<Channel>) -> ApiRenderImage {
    let response = client
        .grab_render_result(GrabRenderResultRequest {})
        .await
        .expect("grabRenderResult")
        .into_inner();
    client
        .release_render_result(ReleaseRenderResultRequest {})
        .await
        .expect("releaseRenderResult");
    assert!(response.result, "grabRenderResult has an image");
    response
        .render_images
        .expect("renderImages present")
        .data
        .into_iter()
        .next()
        .expect("one render image")
}

/// Follows generation-2 notifications (grabbing after each) until an image satisfies
/// `accept`.
pub async fn wait_for_image(
    stream: &mut Streaming<gen2::StreamCallbackRequest>,
    client: &mut ApiRenderEngineServiceClient<Channel>,
    mut accept: impl FnMut(&ApiRenderImage) -> bool,
) -> ApiRenderImage {
    within(async {
        loop {
            next_notification(stream).await;
            let image = grab(client).await;
            if accept(&image) {
                return image;
            }
        }
    })
    .await
}

pub fn change_level(image: &ApiRenderImage) -> u64 {
    image.change_level.map_or(0, |level| level.value)
}

pub fn pixels(image: &ApiRenderImage) -> &[u8] {
    image
        .buffer
        .as_ref()
        .map_or(&[][..], |buffer| buffer.data.as_slice())
}
