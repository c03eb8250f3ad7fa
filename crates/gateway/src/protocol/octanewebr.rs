//! `POST /api/grpc/{service}/{method}`: the call route of octaneWebR's Node.js server, so
//! its React client runs against the gateway unchanged.
//!
//! The call is the JSON route's ([`super::json`]): the same resolution (short names such as
//! `ApiItem` or `ApiItemService` as well as full ones, and the method policy), body limit,
//! deadline headers and the original proxy's leniencies (`objectPtr` for the request's
//! object reference, `0`/`1` booleans, 64-bit values as numbers or strings, enums as names
//! or numbers). Only the envelope differs:
//!
//! - a success is `200` with the response message itself, in the shape that server's
//!   `@grpc/proto-loader` options give ([`message_to_proto_loader_json`]: proto field
//!   names, defaults included, 64-bit values as strings, enums as names, oneof keys);
//! - a failure is `500 {"error": "<our message>", "service", "method", "code": <number>}`
//!   with the numeric gRPC code, whatever went wrong ([`error_response`]).
//!
//! Top-level keys the request message does not have are left out, as protobuf.js left them
//! out for that server (octaneWebR's client sends some, such as `expected_type` to
//! `setValueByAttrID`), and named in the answer's `X-Octaneweb-Ignored-Fields` header.
//! Unknown keys deeper in the body are errors naming them, as on the JSON route.
//!
//! Only unary methods: that server made unary calls only, and streaming methods are refused
//! naming the routes that carry them.

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use octaneweb_schema::{message_to_proto_loader_json, unknown_top_level_fields, without_fields};
use tonic::Code;

use crate::context::call::{
    effective_timeout, read_body, refuse_streaming, requested_timeout, Carries,
};
use crate::context::CallScope;
use crate::error::GatewayError;
use crate::metrics::{CallTracker, Protocol};

/// What the route calls itself in errors that name the protocol.
const ROUTE: &str = "octaneWebR's /api/grpc route";

/// The answer header naming the request's top-level keys that were left out.
pub const IGNORED_FIELDS_HEADER: &str = "x-octaneweb-ignored-fields";

/// A call's answer and the request keys left out of it.
struct Answered {
    json: serde_json::Value,
    ignored: Vec<String>,
}

/// The route handler.
pub async fn handle(
    scope: CallScope,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    let Path((service, method)) = match path {
        Ok(path) => path,
        Err(error) => {
            let error = GatewayError::BadRequest(format!("bad call path: {error}"));
            return error_response(&error, None);
        }
    };
    let mut tracker = scope.track(Protocol::OctaneWebR);
    let answer = async {
        let timeout =
            effective_timeout(&scope.state.upstream, requested_timeout(request.headers())?)?;
        let (parts, body) = request.into_parts();
        let body = read_body(&parts.headers, body, scope.state.config.max_body_bytes).await?;
        unary(&scope, &mut tracker, &service, &method, &body, timeout).await
    }
    .await;
    match answer {
        Ok(Answered { json, ignored }) => {
            let body = json.to_string();
            scope
                .state
                .metrics
                .add_bytes_out(Protocol::OctaneWebR, body.len() as u64);
            tracker.finish(Code::Ok, "");
            let mut response = (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
            // Keys are JSON strings a client sent; one that is no valid header text is
            // left out of the header (the call went through all the same).
            if let Ok(value) = HeaderValue::from_str(&ignored_header(&ignored)) {
                if !ignored.is_empty() {
                    response.headers_mut().insert(IGNORED_FIELDS_HEADER, value);
                }
            }
            response
        }
        Err(error) => {
            tracker.finish(error.code(), &error.to_string());
            error_response(&error, Some((&service, &method)))
        }
    }
}

/// Longest `X-Octaneweb-Ignored-Fields` value: a body may name thousands of keys, and an
/// answer header that long would fail the client rather than inform it.
const MAX_IGNORED_HEADER_BYTES: usize = 1024;

/// The ignored keys as the header's value: comma-separated, cut at
/// [`MAX_IGNORED_HEADER_BYTES`] with a count of the keys left unnamed.
fn ignored_header(ignored: &[String]) -> String {
    let mut value = String::new();
    for (named, key) in ignored.iter().enumerate() {
        if value.len() + key.len() + 2 > MAX_IGNORED_HEADER_BYTES {
            value.push_str(&format!(", and {} more", ignored.len() - named));
            break;
        }
        if named > 0 {
            value.push_str(", ");
        }
        value.push_str(key);
    }
    value
}

/// One unary call made on behalf of one of octaneWebR's other routes (`/api/system/info`
/// and its kin compute their answers from Octane calls): `request` is the input message as
/// JSON, the answer is in octaneWebR's shape. Counted, resolved and refused like a call on
/// `POST /api/grpc/...`.
pub async fn call(
    scope: &CallScope,
    service: &str,
    method: &str,
    request: &serde_json::Value,
) -> Result<serde_json::Value, GatewayError> {
    let mut tracker = scope.track(Protocol::OctaneWebR);
    let body = request.to_string();
    let timeout = effective_timeout(&scope.state.upstream, None)?;
    let answer = unary(
        scope,
        &mut tracker,
        service,
        method,
        body.as_bytes(),
        timeout,
    )
    .await;
    match &answer {
        Ok(_) => tracker.finish(Code::Ok, ""),
        Err(error) => tracker.finish(error.code(), &error.to_string()),
    }
    answer.map(|answered| answered.json)
}

async fn unary(
    scope: &CallScope,
    tracker: &mut CallTracker,
    service: &str,
    method: &str,
    body: &[u8],
    timeout: Option<Duration>,
) -> Result<Answered, GatewayError> {
    let state = &scope.state;
    let resolved = state.resolve_method(service, method)?;
    tracker.set_method(std::sync::Arc::clone(&resolved.label));
    refuse_streaming(&resolved.descriptor, Carries::Unary, ROUTE)?;
    state
        .metrics
        .add_bytes_in(Protocol::OctaneWebR, body.len() as u64);
    let ignored = unknown_top_level_fields(&resolved.descriptor.input(), body);
    let kept;
    let body = if ignored.is_empty() {
        body
    } else {
        tracing::debug!(method = %resolved.label, ?ignored, "octaneWebR call: keys left out");
        kept = without_fields(body, &ignored);
        &kept
    };
    let message = super::json::unary_call(
        state,
        &resolved.descriptor,
        body,
        timeout,
        &scope.id,
        tracker.trace(),
    )
    .await?;
    Ok(Answered {
        json: message_to_proto_loader_json(&message),
        ignored,
    })
}

/// The one renderer of errors in octaneWebR's server's format: status 500 and
/// `{"error": message, "code": <numeric gRPC code>}`, with `"service"` and `"method"` as
/// the request named them when `call` is given (the `/api/grpc` route; its other routes
/// answer without them).
pub fn error_response(error: &GatewayError, call: Option<(&str, &str)>) -> Response {
    let mut body = serde_json::json!({
        "error": error.to_string(),
        "code": error.code() as i32,
    });
    if let Some((service, method)) = call {
        body["service"] = service.into();
        body["method"] = method.into();
    }
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ignored_keys_header_stays_short() {
        let few = vec!["expected_type".to_owned(), "extra".to_owned()];
        assert_eq!(ignored_header(&few), "expected_type, extra");
        let many: Vec<String> = (0..5000).map(|i| format!("key{i}")).collect();
        let value = ignored_header(&many);
        assert!(
            value.len() <= MAX_IGNORED_HEADER_BYTES + 32,
            "{}",
            value.len()
        );
        assert!(value.starts_with("key0, key1, "), "{value}");
        assert!(value.ends_with(" more"), "{value}");
        let named = value.matches(", key").count() + 1;
        assert!(
            value.contains(&format!("and {} more", 5000 - named)),
            "{value}"
        );
    }
}
