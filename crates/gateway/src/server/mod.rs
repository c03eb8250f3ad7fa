//! HTTP composition, the top layer: the router with every gateway route behind the front
//! door (host, origin, token and rate checks), and the server loop ([`listener`]: HTTP/1.1
//! and HTTP/2, plain or TLS, with connection limits) with graceful shutdown. Routes hand
//! requests to the protocols; the state they share is the call context's
//! ([`crate::context::GatewayState`]).

pub mod auth;
pub mod client_log;
pub mod connections;
pub mod cors;
pub mod host;
pub mod listener;
pub mod ops;
mod stall;
pub mod tls;

pub use listener::{serve, serve_with, ServeOptions, DRAIN_TIMEOUT};

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use tower::ServiceExt as _;

use crate::context::{CallId, GatewayState, X_CALL_ID};
use crate::error::GatewayError;
use crate::protocol;
use crate::wire::trace_context::{random_u64, CallTrace, TRACEPARENT};

pub use connections::ConnectionLimits;

/// Longest client-chosen call id echoed back; longer ones are replaced.
const MAX_CALL_ID_LEN: usize = 128;

/// All gateway routes (JSON calls, SSE, operations, `/schema`, `/schema.binpb`) with CORS, body limit and
/// call ids. `extra` routes (the render routes, the web client) are merged in; the generic
/// `POST /{Service}/{method}` route takes two-segment paths that `extra` does not define, and
/// hands requests other than POST on such paths to `extra` (so a fallback in `extra`, such
/// as static files, still serves `GET /js/app.js`); when `extra` has nothing for them either
/// they get 405.
pub fn router(state: GatewayState, extra: Router) -> Router {
    let front_door = Arc::new(FrontDoor {
        hosts: host::AllowedHosts::new(&state.config.allowed_hosts, state.config.listen),
        origins: cors::OriginPolicy::new(&state.config),
        state: state.clone(),
    });
    let body_limit = state.config.max_body_bytes;
    let extra_for_other_methods = extra.clone();
    let json_route = axum::routing::post(protocol::json::handle)
        .fallback(move |request: Request| other_method(extra_for_other_methods.clone(), request));
    let gateway = Router::new()
        .route("/health", get(ops::health))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/schema", get(ops::schema))
        .route("/schema.binpb", get(ops::schema_descriptor_set))
        .route(
            "/sse/{service}/{method}",
            get(protocol::sse::handle).fallback(|request: Request| async move {
                GatewayError::MethodNotAllowed {
                    method: request.method().to_string(),
                    allowed: "GET",
                }
                .into_response()
            }),
        )
        .route(
            "/ws",
            get(protocol::ws::handle).fallback(|request: Request| async move {
                GatewayError::MethodNotAllowed {
                    method: request.method().to_string(),
                    allowed: "GET",
                }
                .into_response()
            }),
        )
        .route(
            "/batch",
            post(protocol::batch::handle).fallback(|request: Request| async move {
                GatewayError::MethodNotAllowed {
                    method: request.method().to_string(),
                    allowed: "POST",
                }
                .into_response()
            }),
        )
        // The original proxy's client-log posts: named routes, so they pass the front door
        // like every other and win over `/{service}/{method}`.
        .route("/debug/append-log", post_only(client_log::append))
        .route("/debug/clear-log", post_only(client_log::clear))
        .route("/save-debug-logs", post_only(client_log::save))
        .route("/api/log", post_only(client_log::octanewebr))
        .route(
            "/api/grpc/{service}/{method}",
            post_only(protocol::octanewebr::handle),
        )
        .route("/{service}/{method}", json_route)
        .with_state(state.clone());
    // The stack wraps the whole router once, outermost first, so a request passes each layer
    // once before routing (`Router::layer` would wrap every route and run them after the
    // match); wire-protocol requests leave it for their protocol before the router.
    let stack = tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(
            body_limit,
            drain_unread_bodies,
        ))
        .layer(middleware::from_fn(cors_only_with_origin))
        .layer(cors::layer())
        .layer(middleware::from_fn_with_state(
            front_door,
            front_door_checks,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), call_id))
        .layer(middleware::from_fn_with_state(state, wire_protocols))
        .layer(DefaultBodyLimit::max(body_limit))
        .service(extra.merge(gateway));
    Router::new().fallback_service(stack)
}

/// `handler` for POST; other methods get 405 naming POST.
fn post_only<H, T>(handler: H) -> axum::routing::MethodRouter<GatewayState>
where
    H: axum::handler::Handler<T, GatewayState>,
    T: 'static,
{
    post(handler).fallback(|request: Request| async move {
        GatewayError::MethodNotAllowed {
            method: request.method().to_string(),
            allowed: "POST",
        }
        .into_response()
    })
}

/// What every request passes before it reaches a route.
struct FrontDoor {
    hosts: host::AllowedHosts,
    origins: cors::OriginPolicy,
    state: GatewayState,
}

/// The front door, in order: the `Host` must be one the gateway serves (DNS rebinding);
/// a browser request must come from an allowed page (CORS alone only stops a page from
/// *reading* answers: a plain-text POST or a WebSocket would still act); the token, when one
/// is set; the client address's call rate. Refusals answer in the request's own protocol.
/// Preflights are answered by the CORS layer outside this one.
async fn front_door_checks(
    State(door): State<Arc<FrontDoor>>,
    mut request: Request,
    next: Next,
) -> Response {
    // A `Host` that is not text cannot be one the gateway serves.
    let host = match request.headers().get(http::header::HOST) {
        Some(value) => Some(value.to_str().unwrap_or("\u{fffd}")),
        None => request.uri().authority().map(|a| a.as_str()),
    };
    if let Some(host) = host {
        if !door.hosts.permits(host) {
            let error = GatewayError::HostNotAllowed {
                host: host.to_owned(),
            };
            return protocol::refusal(&request, error);
        }
    }
    if let Err(error) = door
        .origins
        .check(request.method(), request.headers(), host)
    {
        return with_request_origin(&request, protocol::refusal(&request, error));
    }
    let config = &door.state.config;
    let mut set_cookie = None;
    if let Some(token) = &config.token {
        match auth::check(token, &mut request) {
            auth::Verdict::Pass => {}
            auth::Verdict::SetCookie => set_cookie = Some(token.set_cookie(config.tls)),
            auth::Verdict::SetCookieAndRedirect { location } => {
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::SEE_OTHER;
                let headers = response.headers_mut();
                if let Ok(location) = HeaderValue::from_str(&location) {
                    headers.insert(http::header::LOCATION, location);
                }
                if let Ok(cookie) = HeaderValue::from_str(&token.set_cookie(config.tls)) {
                    headers.insert(http::header::SET_COOKIE, cookie);
                }
                headers.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                );
                return response;
            }
            auth::Verdict::Refuse => return unauthenticated(&request),
        }
    }
    if let Err(error) = door.state.admit_call(peer_addr(&request)) {
        return protocol::refusal(&request, error);
    }
    let mut response = next.run(request).await;
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response
            .headers_mut()
            .append(http::header::SET_COOKIE, cookie);
    }
    response
}

/// A refusal of a foreign page carries `Access-Control-Allow-Origin` for that page, so the
/// browser lets it read *why* (the flag that would allow it); it reveals nothing else.
fn with_request_origin(request: &Request, mut response: Response) -> Response {
    if let Some(origin) = request.headers().get(http::header::ORIGIN) {
        response
            .headers_mut()
            .insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    response
}

/// 401: a page load gets a short page saying where the token comes from; other clients the
/// refusal in their protocol.
fn unauthenticated(request: &Request) -> Response {
    let wants_page = request.method() == http::Method::GET
        && request
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    if !wants_page {
        return protocol::refusal(request, GatewayError::Unauthenticated);
    }
    let page = "<!doctype html><meta charset=utf-8><title>octaneweb: token needed</title>\
        <body style=\"font:16px system-ui;max-width:38em;margin:4em auto;padding:0 1em\">\
        <h1>This octaneweb needs its token</h1>\
        <p>Open the address octaneweb printed when it started: it ends in \
        <code>?token=…</code>. Your browser then remembers the token for this site.</p>\
        <p>Scripts and gRPC clients send <code>Authorization: Bearer &lt;token&gt;</code>.</p>";
    let mut response = (StatusCode::UNAUTHORIZED, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"octaneweb\""),
    );
    response
}

/// CORS headers answer browsers, which always send `Origin` on cross-origin requests;
/// other clients (a gRPC client, curl) get answers without them.
async fn cors_only_with_origin(request: Request, next: Next) -> Response {
    let has_origin = request.headers().contains_key(http::header::ORIGIN);
    let mut response = next.run(request).await;
    if !has_origin {
        let headers = response.headers_mut();
        let cors: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in cors {
            headers.remove(name);
        }
        // The CORS layer's `Vary` says the answer depends on those request headers; without
        // an Origin it did not.
        let vary: Vec<HeaderValue> = headers
            .get_all(http::header::VARY)
            .iter()
            .filter(|v| {
                !v.as_bytes()
                    .starts_with(b"origin, access-control-request-method")
            })
            .cloned()
            .collect();
        headers.remove(http::header::VARY);
        for value in vary {
            headers.append(http::header::VARY, value);
        }
    }
    response
}

/// gRPC, gRPC-Web and Connect requests go to their protocol before routing: they share
/// paths with the JSON route and are told apart by content type and headers.
///
async fn wire_protocols(
    State(state): State<GatewayState>,
    request: Request,
    next: Next,
) -> Response {
    match protocol::WireProtocol::of(&request) {
        Some(protocol::WireProtocol::Grpc) => protocol::grpc::handle(state, request).await,
        Some(protocol::WireProtocol::GrpcWeb) => protocol::grpc_web::handle(state, request).await,
        Some(protocol::WireProtocol::Connect) => protocol::connect::handle(state, request).await,
        None => next.run(request).await,
    }
}

/// HTTP/1.1 request bodies are wrapped in [`DrainOnDrop`] before anything can answer, so
/// that an answer given before the body was read (a refusal at the front door, an unknown
/// method, a wrong content type) does not cut off a client that is still sending it.
async fn drain_unread_bodies(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let request = if request.version() < http::Version::HTTP_2 {
        request.map(|body| Body::new(DrainOnDrop::new(body, limit)))
    } else {
        request
    };
    next.run(request).await
}

/// Longest time an abandoned request body is read after the answer went out.
const DRAIN_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// A request body that, when a handler drops it before its end, reads and discards the rest
/// in the background (up to the body limit and [`DRAIN_BODY_TIMEOUT`]). On HTTP/1.1 an
/// unread body makes the server close the connection after the answer, and a client still
/// writing its body then fails with a broken pipe instead of reading the answer.
struct DrainOnDrop {
    inner: Option<Body>,
    limit: usize,
    seen: usize,
    ended: bool,
}

impl DrainOnDrop {
    fn new(inner: Body, limit: usize) -> Self {
        Self {
            inner: Some(inner),
            limit,
            seen: 0,
            ended: false,
        }
    }
}

impl http_body::Body for DrainOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let polled = std::pin::Pin::new(inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(None) | std::task::Poll::Ready(Some(Err(_))) => {
                this.ended = true;
            }
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len());
                }
            }
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_default()
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        if self.ended || self.seen > self.limit {
            return;
        }
        let Some(mut body) = self.inner.take() else {
            return;
        };
        if http_body::Body::is_end_stream(&body) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut budget = self.limit - self.seen;
        runtime.spawn(async move {
            let drain = async {
                use http_body_util::BodyExt as _;
                while let Some(Ok(frame)) = body.frame().await {
                    let len = frame.data_ref().map_or(0, |d| d.len());
                    match budget.checked_sub(len) {
                        Some(left) => budget = left,
                        None => break,
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_BODY_TIMEOUT, drain).await;
        });
    }
}

/// A non-POST request on a `/{Service}/{method}` path: `extra` may know it (static files);
/// otherwise it is the wrong HTTP method for a call. A path with a `.` or `..` segment
/// (`/./index.html`, `/%2e%2e/passwd`) names neither a call nor a file: 404.
async fn other_method(extra: Router, request: Request) -> Response {
    if request.uri().path().split('/').any(is_dot_segment) {
        let body = serde_json::json!({
            "success": false,
            "error": format!(
                "no route for {} {}: paths with \".\" or \"..\" segments are not served",
                request.method(),
                request.uri().path()
            ),
            "code": "NOT_FOUND",
        });
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    let method = request.method().to_string();
    let response = match extra.oneshot(request).await {
        Ok(response) => response,
        Err(infallible) => match infallible {},
    };
    if response.status() == StatusCode::NOT_FOUND
        || response.status() == StatusCode::METHOD_NOT_ALLOWED
    {
        GatewayError::MethodNotAllowed {
            method,
            allowed: "POST",
        }
        .into_response()
    } else {
        response
    }
}

/// True for `.` and `..`, also percent-encoded (`%2e`, `.%2E`, ...): browsers resolve such
/// segments before sending, so a request that has one was made by hand.
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// Attach a [`CallId`] and the call's [`CallTrace`] to the request, and echo them on the
/// answer (`X-Call-Id`, and `traceparent` naming the gateway's span).
async fn call_id(State(state): State<GatewayState>, mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(&X_CALL_ID)
        .filter(|v| {
            v.to_str()
                .is_ok_and(|v| !v.is_empty() && v.len() <= MAX_CALL_ID_LEN)
        })
        .cloned();
    // The echoed header reuses the client's value as it came (no copy); a fresh id is
    // formatted on the stack and allocated once.
    let (id, echo): (Arc<str>, Option<HeaderValue>) = match given {
        Some(value) => (Arc::from(value.to_str().unwrap_or_default()), Some(value)),
        None => {
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            let id: &str = fresh_call_id().hyphenated().encode_lower(&mut text);
            (Arc::from(id), HeaderValue::from_str(id).ok())
        }
    };
    request.extensions_mut().insert(CallId(Arc::clone(&id)));
    let trace = CallTrace::from_headers(request.headers(), state.metrics.exports_spans());
    let traceparent = trace.span.to_header();
    request.extensions_mut().insert(trace);
    // Native gRPC answers carry exactly what the upstream sent (the id and the trace are in
    // the log line).
    let native_grpc = protocol::WireProtocol::of(&request) == Some(protocol::WireProtocol::Grpc);
    let mut response = next.run(request).await;
    if !native_grpc {
        if let Some(value) = echo {
            response.headers_mut().insert(X_CALL_ID.clone(), value);
        }
        response
            .headers_mut()
            .insert(TRACEPARENT.clone(), traceparent);
    }
    response
}

/// A random (version 4) UUID for a call that brought no id of its own. Call ids correlate
/// log lines and need not be secret, so the bytes come from the per-thread generator trace ids
/// use ([`random_u64`]) instead of one system call per request.
fn fresh_call_id() -> uuid::Uuid {
    let bytes = (u128::from(random_u64()) << 64 | u128::from(random_u64())).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The peer address of a request served by [`serve`], if known.
fn peer_addr(request: &Request) -> Option<std::net::SocketAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}

#[cfg(test)]
mod tests {
    use super::fresh_call_id;

    #[test]
    fn fresh_call_ids_are_distinct_version_4_uuids() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = fresh_call_id();
            assert_eq!(id.get_version(), Some(uuid::Version::Random));
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert!(seen.insert(id), "repeated id {id}");
        }
        // Other threads start from their own seeds.
        let other = std::thread::spawn(fresh_call_id).join().expect("thread");
        assert!(!seen.contains(&other));
    }
}
