//! Which headers are a call's metadata, which belong to one HTTP hop or to a client protocol,
//! and the trailers that carry a status.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use tonic::Status;

/// Headers that describe one HTTP hop, never a call: not forwarded in either direction.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
    "upgrade",
    "te",
    "http2-settings",
];

/// True for headers that belong to one HTTP hop (and `host`, `content-length`, which the
/// next hop sets itself).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    is_hop_by_hop_name(name.as_str())
}

/// [`is_hop_by_hop`] for a lower-case header name given as text (a metadata key).
pub fn is_hop_by_hop_name(name: &str) -> bool {
    name == "host" || name == "content-length" || HOP_BY_HOP.contains(&name)
}

/// Why a caller may not set request metadata `name` (lower case) itself, or `None` when it
/// may: pseudo-headers and hop-by-hop headers belong to HTTP, `content-type` and `te` to the
/// gRPC transport, and gRPC reserves every name starting with `grpc-`.
pub fn reserved_metadata_reason(name: &str) -> Option<&'static str> {
    if name.starts_with(':') {
        Some("it is an HTTP/2 pseudo-header")
    } else if name.starts_with("grpc-") {
        Some("gRPC reserves names starting with grpc- (the deadline is --timeout)")
    } else if name == "content-type" || name == "te" {
        Some("the gRPC transport sets it")
    } else if is_hop_by_hop_name(name) {
        Some("it describes one HTTP connection, not a call")
    } else {
        None
    }
}

/// True for metadata (lower-case name) that carries a credential: its value is never shown
/// to a person (verbose output, logs), only its length.
pub fn is_secret_metadata(name: &str) -> bool {
    matches!(name, "cookie" | "set-cookie")
        || [
            "auth",
            "token",
            "secret",
            "password",
            "passwd",
            "api-key",
            "apikey",
            "credential",
            "session",
        ]
        .iter()
        .any(|part| name.contains(part))
}

/// Headers that carry a call's gRPC status (trailers, or headers of a trailers-only answer).
pub fn is_status_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "grpc-status" | "grpc-message" | "grpc-status-details-bin"
    )
}

/// Trailers carrying `status` alone.
pub fn status_trailers(status: &Status) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    if status.add_header(&mut trailers).is_err() {
        trailers.insert("grpc-status", HeaderValue::from(status.code() as i32));
    }
    trailers
}

/// A request header that belongs to the client's protocol (or to browsers), not to the
/// call's metadata; never forwarded upstream.
pub fn is_protocol_request_header(name: &HeaderName) -> bool {
    is_hop_by_hop(name)
        || matches!(
            name.as_str(),
            "content-type"
                | "accept"
                | "accept-encoding"
                | "content-encoding"
                | "accept-language"
                | "origin"
                | "referer"
                | "cookie"
                | "cache-control"
                | "pragma"
                | "dnt"
                | "priority"
                | "grpc-timeout"
                | "grpc-encoding"
                | "grpc-accept-encoding"
                | "x-grpc-web"
                | "x-user-agent"
                | "x-timeout-ms"
                | "connect-protocol-version"
                | "connect-timeout-ms"
                | "connect-content-encoding"
                | "connect-accept-encoding"
                // The gateway's choice of JSON shape (context::json_shape), not the call's.
                | "x-json-names"
                | "x-json-defaults"
        )
        || name.as_str().starts_with("sec-")
        || name.as_str().starts_with("access-control-")
}

/// The request metadata of `headers`: everything but protocol and hop-by-hop headers.
pub fn request_metadata(headers: &HeaderMap) -> HeaderMap {
    let mut metadata = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !is_protocol_request_header(name) {
            metadata.append(name.clone(), value.clone());
        }
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_excludes_protocol_and_hop_by_hop_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("content-type", "application/grpc-web"),
            ("connection", "keep-alive"),
            ("te", "trailers"),
            ("grpc-timeout", "1S"),
            ("x-grpc-web", "1"),
            ("sec-fetch-mode", "cors"),
            ("authorization", "Bearer t"),
            ("x-custom", "a"),
            ("x-bin-bin", "AAEC"),
            ("x-json-names", "camel"),
            ("x-json-defaults", "omit"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        let metadata = request_metadata(&headers);
        let names: Vec<&str> = metadata.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["authorization", "x-custom", "x-bin-bin"]);
    }

    #[test]
    fn reserved_and_secret_names() {
        for name in [
            ":path",
            "grpc-timeout",
            "grpc-anything",
            "content-type",
            "te",
            "connection",
            "host",
        ] {
            assert!(reserved_metadata_reason(name).is_some(), "{name}");
        }
        for name in ["x-custom", "authorization", "user-agent", "x-grpc"] {
            assert_eq!(reserved_metadata_reason(name), None, "{name}");
        }
        for name in [
            "authorization",
            "proxy-authorization",
            "x-api-key",
            "x-auth-token",
            "cookie",
            "x-session-id",
        ] {
            assert!(is_secret_metadata(name), "{name}");
        }
        assert!(!is_secret_metadata("x-request-id"));
    }

    #[test]
    fn status_trailers_carry_code_and_encoded_message() {
        let trailers = status_trailers(&Status::not_found("no such thing: ü"));
        assert_eq!(trailers["grpc-status"], "5");
        assert_eq!(trailers["grpc-message"], "no%20such%20thing:%20%C3%BC");
    }
}
