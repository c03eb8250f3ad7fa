//! Calls the gateway answers itself: the gRPC reflection services
//! (`grpc.reflection.v1.ServerReflection` and `grpc.reflection.v1alpha.ServerReflection`),
//! answered from the gateway's loaded schema by `tonic-reflection`'s servers.
//!
//! [`LocalAnswers`] is the outermost layer of the upstream stack ([`super::stack`]), the one
//! place that decides whether a call goes upstream. Every front protocol (gRPC pass-through,
//! gRPC-Web, Connect, `/ws`, JSON) calls the upstream through that stack, so each reaches the
//! local services the same way; a local answer skips the layers below it, so the upstream's
//! metrics, its reachability and the connection pool never see it. A local call has no
//! `grpc-timeout` timer: reflection answers at once, and a stream a client keeps open ends
//! when the client, or the gateway's shutdown, ends it.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::Status;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

type HttpRequest = http::Request<Body>;
type HttpResponse = http::Response<Body>;
/// One service the gateway answers, as a tower service of HTTP requests.
type LocalService = BoxCloneSyncService<HttpRequest, HttpResponse, Status>;

/// Why the local services could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LocalServiceError {
    /// `tonic-reflection` refused the schema's descriptor set.
    #[error("cannot serve reflection from the loaded schema: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// The services the gateway answers itself, each under its `/package.Service/` path prefix.
#[derive(Clone)]
pub struct LocalServices {
    routes: Arc<[(String, LocalService)]>,
}

impl std::fmt::Debug for LocalServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(prefix, _)| prefix))
            .finish()
    }
}

impl LocalServices {
    /// Reflection v1 and v1alpha over the files of `descriptor_set` (an encoded
    /// `FileDescriptorSet`, such as `Schema::file_descriptor_set`). Both list every service
    /// of the set, and themselves.
    pub fn reflection(descriptor_set: &[u8]) -> Result<LocalServices, LocalServiceError> {
        let v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(descriptor_set)
            .build_v1()?;
        let v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(descriptor_set)
            .build_v1alpha()?;
        let routes = vec![
            (
                "/grpc.reflection.v1.ServerReflection/".to_owned(),
                BoxCloneSyncService::new(ServiceExt::<HttpRequest>::map_err(v1, never)),
            ),
            (
                "/grpc.reflection.v1alpha.ServerReflection/".to_owned(),
                BoxCloneSyncService::new(ServiceExt::<HttpRequest>::map_err(v1alpha, never)),
            ),
        ];
        Ok(LocalServices {
            routes: routes.into(),
        })
    }

    /// The local service for a request's path, if any.
    fn route(&self, path: &str) -> Option<LocalService> {
        self.routes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, service)| service.clone())
    }
}

fn never(never: std::convert::Infallible) -> Status {
    match never {}
}

/// Answers the calls of [`LocalServices`] itself and hands every other to `inner`.
#[derive(Clone, Debug)]
pub struct LocalAnswers<S> {
    pub(super) inner: S,
    pub(super) local: Option<LocalServices>,
}

impl<S> Service<HttpRequest> for LocalAnswers<S>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = Status;
    type Future = BoxFuture<'static, Result<HttpResponse, Status>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        // The stack below is always ready (the pool waits for capacity per call), so a
        // readiness taken and then not used by a local answer reserves nothing.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let local = self
            .local
            .as_ref()
            .and_then(|local| local.route(request.uri().path()));
        match local {
            Some(service) => Box::pin(service.oneshot(request)),
            None => Box::pin(self.inner.call(request)),
        }
    }
}
