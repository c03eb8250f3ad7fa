//! The one place where every gateway failure gets its gRPC code, HTTP status and JSON body.
//!
//! Every front protocol reports failures through [`GatewayError`]: the JSON route answers
//! `{"success":false,"error":"<text>","code":"<GRPC_CODE_NAME>"}` with [`GatewayError::http_status`];
//! streaming protocols put [`GatewayError::code`] and the text in their final status.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use octaneweb_schema::{JsonError, LookupError, ShapeValueError};
use tonic::{Code, Status};

use crate::wire::codes::{code_name, http_status_for};
use crate::wire::compression::CompressionError;
use crate::wire::framing::FramingError;

/// Why a call through the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The service or method name does not resolve in the schema.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The request body is not a valid message of the method's input type.
    #[error("invalid request body: {0}")]
    Json(#[from] JsonError),
    /// The request body is larger than the configured limit.
    #[error("request body larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request body could not be read from the client.
    #[error(transparent)]
    BodyRead(#[from] BodyReadError),
    /// The call's deadline is shorter than [`crate::context::call::MIN_DEADLINE`] (`grpc-timeout:
    /// 1n`, a timeout of 0): it is over before the call can start.
    #[error(
        "the call's deadline of {} ns passed before the call started (a deadline under 1 ms cannot be met)",
        timeout.as_nanos()
    )]
    DeadlinePassed {
        /// The deadline the call was given.
        timeout: std::time::Duration,
    },
    /// The method's streaming kind cannot be carried by this protocol.
    #[error("{method} is a {kind} method; {protocol} cannot carry it, use {instead}")]
    UnsupportedStreaming {
        /// Full name of the method.
        method: String,
        /// "client-streaming" or "bidirectional-streaming".
        kind: &'static str,
        /// The protocol that was used.
        protocol: &'static str,
        /// The protocols that can carry it.
        instead: &'static str,
    },
    /// The HTTP method is not allowed on this route.
    #[error("HTTP method {method} is not allowed here; use {allowed}")]
    MethodNotAllowed {
        /// The HTTP method that was used.
        method: String,
        /// The HTTP method(s) to use instead.
        allowed: &'static str,
    },
    /// A request header or query parameter is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A choice of JSON shape (`X-Json-Names`, `json_defaults`, ...) is not one of its values.
    #[error("{place} {error}")]
    JsonShape {
        /// Where the value was given: `header X-Json-Names`, `query parameter json_names`,
        /// `"json_names"`.
        place: String,
        /// What is wrong with it, naming the accepted values.
        error: ShapeValueError,
    },
    /// A browser page from an origin the CORS policy does not allow made the request.
    #[error(
        "requests from pages on {origin} are not allowed; allow the origin with --cors-origin {origin}"
    )]
    ForeignOrigin {
        /// The `Origin` the request came with.
        origin: String,
    },
    /// A browser sent a cross-site request (`Sec-Fetch-Site`) without an allowed `Origin`:
    /// an `<img>` or a link on another site, which must not act on the renderer.
    #[error("cross-site requests from pages that name no allowed origin are refused (Sec-Fetch-Site: {site}); allow a page's origin with --cors-origin ORIGIN")]
    CrossSite {
        /// The `Sec-Fetch-Site` value.
        site: String,
    },
    /// The request names a host the gateway does not answer for (DNS rebinding protection).
    #[error("host {host:?} is not served here: only loopback names and addresses, the listen address and names given with --allowed-host are (this guards against DNS rebinding); add it with --allowed-host {host}")]
    HostNotAllowed {
        /// The `Host` or `:authority` as sent.
        host: String,
    },
    /// The gateway requires a token and the request carried none, or a wrong one.
    #[error("this gateway requires a token: send `Authorization: Bearer <token>`, or open the URL with ?token=... that octaneweb printed at start")]
    Unauthenticated,
    /// The method policy (`--allow` / `--deny`) refuses the method.
    #[error("{method} is refused by this gateway's method policy (--allow / --deny)")]
    MethodRefused {
        /// The method, `package.Service/Method`.
        method: String,
    },
    /// The client's address made more calls per second than `--rate-limit` allows.
    #[error("more than {limit} calls per second from this address (--rate-limit); retry later")]
    RateLimited {
        /// The limit in calls per second.
        limit: u32,
    },
    /// A GET (which any web page can make with an image or a link) for a method that may
    /// change something.
    #[error("GET runs only server-streaming methods and methods marked NO_SIDE_EFFECTS; {method} may change state, so call it with POST")]
    UnsafeGet {
        /// Full name of the method.
        method: String,
    },
    /// The request's message framing is malformed (truncated, oversize, bad flags).
    #[error("malformed request frames: {0}")]
    Framing(#[from] FramingError),
    /// A message could not be decompressed, or its encoding is not supported.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// The request's content type is not one this protocol serves.
    #[error("content type {content_type:?} is not supported here; use one of {supported}")]
    UnsupportedMediaType {
        /// The content type sent.
        content_type: String,
        /// The content types that are served.
        supported: &'static str,
    },
    /// The upstream (or the channel to it) answered with a gRPC status.
    #[error("{}", upstream_message(.0))]
    Upstream(Status),
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    /// The body's framing is broken (an HTTP/1.1 chunk size line that is not hex, ...): the
    /// client sent something that is not HTTP.
    #[error("the request body is malformed and could not be read: {0}")]
    Malformed(String),
    /// The client stopped sending before the body ended (closed the connection, reset the
    /// stream).
    #[error("the request body could not be read: the client stopped sending it ({0})")]
    Interrupted(String),
}

impl BodyReadError {
    /// Classify an error of reading a request body by its causes: hyper reports broken
    /// HTTP/1.1 framing as `InvalidData`/`InvalidInput` I/O errors and a connection that
    /// ends early as `UnexpectedEof`; HTTP/2 resets and everything else are interruptions.
    pub fn from_cause(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut detail = error.to_string();
        let mut malformed = false;
        let mut cause = Some(error);
        // Bounded: error chains are short, but nothing here trusts that.
        for _ in 0..8 {
            let Some(current) = cause else { break };
            if let Some(io) = current.downcast_ref::<std::io::Error>() {
                malformed |= matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
                );
            }
            if let Some(hyper) = current.downcast_ref::<hyper::Error>() {
                malformed |= hyper.is_parse();
            }
            // The innermost cause is the precise one ("Invalid chunk size line: ...").
            detail = current.to_string();
            cause = current.source();
        }
        if malformed {
            BodyReadError::Malformed(detail)
        } else {
            BodyReadError::Interrupted(detail)
        }
    }
}

fn upstream_message(status: &Status) -> String {
    if status.message().is_empty() {
        format!("upstream returned {}", code_name(status.code()))
    } else {
        status.message().to_owned()
    }
}

impl From<crate::wire::compression::MessageError> for GatewayError {
    fn from(error: crate::wire::compression::MessageError) -> Self {
        use crate::wire::compression::MessageError;
        match error {
            MessageError::Framing(error) => GatewayError::Framing(error),
            MessageError::Compression(error) => GatewayError::Compression(error),
        }
    }
}

impl From<Status> for GatewayError {
    fn from(status: Status) -> Self {
        GatewayError::Upstream(status)
    }
}

impl GatewayError {
    /// The gRPC status code that describes this failure.
    pub fn code(&self) -> Code {
        match self {
            GatewayError::Lookup(LookupError::UnknownService { .. })
            | GatewayError::Lookup(LookupError::UnknownMethod { .. }) => Code::NotFound,
            GatewayError::Lookup(_) => Code::InvalidArgument,
            GatewayError::Json(_) => Code::InvalidArgument,
            GatewayError::BodyTooLarge { .. } => Code::ResourceExhausted,
            GatewayError::BodyRead(BodyReadError::Malformed(_)) => Code::InvalidArgument,
            GatewayError::BodyRead(BodyReadError::Interrupted(_)) => Code::Cancelled,
            GatewayError::DeadlinePassed { .. } => Code::DeadlineExceeded,
            GatewayError::UnsupportedStreaming { .. } => Code::InvalidArgument,
            GatewayError::MethodNotAllowed { .. } => Code::Unimplemented,
            GatewayError::BadRequest(_) => Code::InvalidArgument,
            GatewayError::JsonShape { .. } => Code::InvalidArgument,
            GatewayError::ForeignOrigin { .. }
            | GatewayError::CrossSite { .. }
            | GatewayError::HostNotAllowed { .. }
            | GatewayError::MethodRefused { .. } => Code::PermissionDenied,
            GatewayError::Unauthenticated => Code::Unauthenticated,
            GatewayError::RateLimited { .. } => Code::ResourceExhausted,
            GatewayError::UnsafeGet { .. } => Code::Unimplemented,
            GatewayError::Framing(FramingError::TooLarge { .. }) => Code::ResourceExhausted,
            GatewayError::Framing(_) => Code::InvalidArgument,
            GatewayError::Compression(CompressionError::Unsupported { .. }) => Code::Unimplemented,
            GatewayError::Compression(CompressionError::TooLarge { .. }) => Code::ResourceExhausted,
            GatewayError::Compression(CompressionError::Corrupt { .. }) => Code::InvalidArgument,
            GatewayError::UnsupportedMediaType { .. } => Code::Unimplemented,
            GatewayError::Upstream(status) => status.code(),
        }
    }

    /// The HTTP status for this failure: the usual gRPC -> HTTP mapping ([`http_status_for`]),
    /// except where HTTP has a more precise answer (413 for a too-large body, 405 for a
    /// wrong HTTP method, 400 for a body that could not be read).
    pub fn http_status(&self) -> StatusCode {
        match self {
            GatewayError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::MethodNotAllowed { .. } | GatewayError::UnsafeGet { .. } => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            GatewayError::BodyRead(_) => StatusCode::BAD_REQUEST,
            GatewayError::HostNotAllowed { .. } => StatusCode::MISDIRECTED_REQUEST,
            GatewayError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            other => http_status_for(other.code()),
        }
    }

    /// The HTTP status of this failure as a Connect unary error: Connect's table for the
    /// code ([`http_status_for`]), except for refusals of the request's form, which keep
    /// their precise HTTP status (415 for a content type, 405 for an HTTP method).
    pub fn connect_http_status(&self) -> StatusCode {
        match self {
            GatewayError::UnsupportedMediaType { .. } | GatewayError::MethodNotAllowed { .. } => {
                self.http_status()
            }
            other => http_status_for(other.code()),
        }
    }

    /// This failure as a gRPC status (for protocols that carry gRPC statuses).
    pub fn to_status(&self) -> Status {
        match self {
            GatewayError::Upstream(status) => status.clone(),
            other => Status::new(other.code(), other.to_string()),
        }
    }

    /// The original proxy's error body: `{"success":false,"error":...,"code":...}`.
    pub fn json_body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "success": false,
            "error": self.to_string(),
            "code": code_name(self.code()),
        });
        if let GatewayError::Lookup(LookupError::AmbiguousService { candidates, .. }) = self {
            body["candidates"] = serde_json::json!(candidates);
        }
        if let GatewayError::Json(error) = self {
            if !error.path().is_empty() {
                body["field"] = serde_json::json!(error.path());
            }
        }
        body
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let mut response = (self.http_status(), axum::Json(self.json_body())).into_response();
        let headers = response.headers_mut();
        match &self {
            GatewayError::MethodNotAllowed { allowed, .. } => {
                if let Ok(value) = http::HeaderValue::from_str(allowed) {
                    headers.insert(http::header::ALLOW, value);
                }
            }
            GatewayError::UnsafeGet { .. } => {
                headers.insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            }
            GatewayError::Unauthenticated => {
                headers.insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer realm=\"octaneweb\""),
                );
            }
            GatewayError::RateLimited { .. } => {
                headers.insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codes::{connect_code_name, grpc_code_for_http};

    #[test]
    fn every_code_has_a_name_and_status() {
        let table = [
            (Code::InvalidArgument, 400),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::Unauthenticated, 401),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::DataLoss, 500),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Cancelled, 499),
        ];
        for (code, status) in table {
            assert_eq!(http_status_for(code).as_u16(), status, "{code:?}");
            assert_eq!(
                Code::from(code as i32),
                code,
                "{} round trip",
                code_name(code)
            );
        }
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(connect_code_name(Code::Cancelled), "canceled");
        assert_eq!(connect_code_name(Code::NotFound), "not_found");
        assert_eq!(
            grpc_code_for_http(StatusCode::NOT_FOUND),
            Code::Unimplemented
        );
        assert_eq!(
            grpc_code_for_http(StatusCode::BAD_GATEWAY),
            Code::Unavailable
        );
    }

    #[test]
    fn wire_failures_map_to_precise_codes() {
        let oversize = GatewayError::from(FramingError::TooLarge {
            length: 10,
            limit: 5,
        });
        assert_eq!(oversize.code(), Code::ResourceExhausted);
        let truncated = GatewayError::from(FramingError::Truncated { have: 3, need: 5 });
        assert_eq!(truncated.code(), Code::InvalidArgument);
        let unsupported = GatewayError::from(CompressionError::Unsupported {
            header: "grpc-encoding",
            name: "br".into(),
        });
        assert_eq!(unsupported.code(), Code::Unimplemented);
        let media = GatewayError::UnsupportedMediaType {
            content_type: "application/grpc-web+thrift".into(),
            supported: "application/grpc-web",
        };
        assert_eq!(media.http_status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            media.connect_http_status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let too_large = GatewayError::BodyTooLarge { limit: 1 };
        assert_eq!(
            too_large.connect_http_status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[test]
    fn body_read_failures_are_told_apart_by_their_cause() {
        use std::io::{Error, ErrorKind};
        let malformed = Error::new(ErrorKind::InvalidInput, "Invalid chunk size line");
        let error = GatewayError::from(BodyReadError::from_cause(&malformed));
        assert_eq!(error.code(), Code::InvalidArgument);
        assert_eq!(error.http_status(), StatusCode::BAD_REQUEST);
        assert!(error.to_string().contains("malformed"), "{error}");
        assert!(
            error.to_string().contains("Invalid chunk size line"),
            "{error}"
        );
        let cut_off = Error::new(
            ErrorKind::UnexpectedEof,
            "end of file before message length reached",
        );
        let error = GatewayError::from(BodyReadError::from_cause(&cut_off));
        assert_eq!(error.code(), Code::Cancelled);
        assert!(error.to_string().contains("stopped sending"), "{error}");
    }

    #[test]
    fn local_failures_map_to_precise_statuses() {
        let too_large = GatewayError::BodyTooLarge { limit: 10 };
        assert_eq!(too_large.http_status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(too_large.json_body()["code"], "RESOURCE_EXHAUSTED");
        let ambiguous = GatewayError::Lookup(LookupError::AmbiguousService {
            name: "Foo".into(),
            candidates: vec!["a.FooService".into(), "b.FooService".into()],
        });
        assert_eq!(ambiguous.http_status(), StatusCode::BAD_REQUEST);
        assert_eq!(ambiguous.json_body()["candidates"][1], "b.FooService");
        let unknown = GatewayError::Lookup(LookupError::UnknownService { name: "X".into() });
        assert_eq!(unknown.http_status(), StatusCode::NOT_FOUND);
        assert_eq!(unknown.json_body()["success"], false);
        let upstream = GatewayError::from(Status::unavailable(""));
        assert_eq!(upstream.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(upstream.to_string(), "upstream returned UNAVAILABLE");
    }
}
