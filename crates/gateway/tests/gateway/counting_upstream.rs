//! A purpose-built callback server that counts its open streams, so tests can see a
//! client's cancellation reach the upstream.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use octaneweb_proto::octaneapi::stream_callback_request::Payload;
use octaneweb_proto::octaneapi::stream_callback_service_server::{
    StreamCallbackService, StreamCallbackServiceServer,
};
use octaneweb_proto::octaneapi::{OnStatisticsData, StreamCallbackRequest};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::common::EXCHANGE_TIMEOUT;

/// A callback server whose streams report how many of them are open.
struct CountingCallbacks {
    open: Arc<watch::Sender<usize>>,
}

/// Decrements the open-stream count when the server drops a stream (the client cancelled).
struct OpenStream(Arc<watch::Sender<usize>>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

#[tonic::async_trait]
impl StreamCallbackService for CountingCallbacks {
    type callbackChannelStream =
        Pin<Box<dyn Stream<Item = Result<StreamCallbackRequest, Status>> + Send>>;

    async fn callback_channel(
        &self,
        _request: Request<()>,
    ) -> Result<Response<Self::callbackChannelStream>, Status> {
        self.open.send_modify(|n| *n += 1);
        let guard = OpenStream(Arc::clone(&self.open));
        let stream = async_stream::stream! {
            let _guard = guard;
            let mut tick = 0u64;
            loop {
                tick += 1;
                yield Ok(StreamCallbackRequest {
                    payload: Some(Payload::NewStatistics(OnStatisticsData { user_data: tick })),
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        // Response metadata, for tests of what the gateway passes on.
        let mut response = Response::new(Box::pin(stream) as Self::callbackChannelStream);
        response
            .metadata_mut()
            .insert("x-stream-kind", "counting".parse().expect("ascii metadata"));
        response.metadata_mut().insert_bin(
            "x-stream-tag-bin",
            tonic::metadata::MetadataValue::from_bytes(&[0, 1, 2]),
        );
        Ok(response)
    }
}

/// Starts the server on an ephemeral port; the receiver follows the open-stream count.
pub async fn start_counting_server() -> (SocketAddr, watch::Receiver<usize>) {
    let (open, watcher) = watch::channel(0usize);
    let service = StreamCallbackServiceServer::new(CountingCallbacks {
        open: Arc::new(open),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, watcher)
}

/// Waits until exactly `count` streams are open.
pub async fn wait_for_open(watcher: &mut watch::Receiver<usize>, count: usize) {
    tokio::time::timeout(EXCHANGE_TIMEOUT, watcher.wait_for(|n| *n == count))
        .await
        .unwrap_or_else(|_| panic!("open upstream streams never became {count}"))
        .expect("server alive");
}
