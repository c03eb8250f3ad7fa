//! Cross-origin access for browser clients served from other origins (dev servers, the
//! original proxy's pages).
//!
//! Allowed: the origins listed in [`GatewayConfig::cors_origins`] (`*` = any), the gateway's
//! own origin (the `Origin` matches the request's `Host`), and loopback origins
//! (`http(s)://localhost`, `127.0.0.1`, `[::1]`, any port). Preflights are answered on every
//! path. Any request header may be sent; the gRPC/Connect status headers and `X-Call-Id` are
//! readable by scripts.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderName, HeaderValue};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use super::GatewayConfig;

/// Response headers scripts on other origins may read.
const EXPOSED: [&str; 14] = [
    "x-call-id",
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
    "grpc-accept-encoding",
    "connect-protocol-version",
    "connect-content-encoding",
    "connect-accept-encoding",
    "content-type",
    "etag",
    "x-frame-width",
    "x-frame-height",
    "x-frame-seq",
];

/// Which pages may use the gateway: the origins listed in the configuration (`*` = any), the
/// gateway's own origin, and loopback pages. Built once; both the CORS layer and the router's
/// refusal of foreign pages ask it.
#[derive(Debug)]
pub(crate) struct OriginPolicy {
    listed: Vec<String>,
    any: bool,
}

impl OriginPolicy {
    pub(crate) fn new(config: &GatewayConfig) -> Self {
        let listed: Vec<String> = config
            .cors_origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .collect();
        let any = listed.iter().any(|o| o == "*");
        Self { listed, any }
    }

    /// Whether a page from `origin` may use the gateway, for a request with `headers` to `uri`.
    pub(crate) fn permits(
        &self,
        origin: &HeaderValue,
        headers: &http::HeaderMap,
        uri: &http::Uri,
    ) -> bool {
        self.any || origin_allowed_for(origin, headers, uri, &self.listed)
    }
}

/// The CORS layer for `policy`.
pub(crate) fn layer(policy: Arc<OriginPolicy>) -> CorsLayer {
    let origin = if policy.any {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::predicate(move |origin: &HeaderValue, parts: &Parts| {
            policy.permits(origin, &parts.headers, &parts.uri)
        })
    };
    let exposed: Vec<HeaderName> = EXPOSED.map(HeaderName::from_static).to_vec();
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(exposed)
        .max_age(Duration::from_secs(600))
}

fn origin_allowed_for(
    origin: &HeaderValue,
    headers: &http::HeaderMap,
    uri: &http::Uri,
    listed: &[String],
) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if listed.iter().any(|o| o == origin) {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let own_host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    if own_host.is_some_and(|host| host.eq_ignore_ascii_case(rest)) {
        return true;
    }
    is_loopback(rest)
}

/// `localhost`, `127.0.0.1` or `[::1]`, with an optional numeric port.
fn is_loopback(authority: &str) -> bool {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok
        && matches!(
            host.to_ascii_lowercase().as_str(),
            "localhost" | "127.0.0.1" | "[::1]"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin_allowed(origin: &HeaderValue, parts: &Parts, listed: &[String]) -> bool {
        origin_allowed_for(origin, &parts.headers, &parts.uri, listed)
    }

    fn parts(host: &str) -> Parts {
        let (parts, ()) = http::Request::builder()
            .header("host", host)
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn loopback_and_own_origins_are_allowed() {
        let p = parts("gateway.lan:51023");
        let allowed = |o: &'static str| origin_allowed(&HeaderValue::from_static(o), &p, &[]);
        assert!(allowed("http://localhost:3000"));
        assert!(allowed("http://127.0.0.1:51023"));
        assert!(allowed("http://[::1]:8080"));
        assert!(allowed("http://localhost"));
        assert!(allowed("http://gateway.lan:51023"));
        assert!(!allowed("http://evil.example"));
        assert!(!allowed("http://localhost.evil.example"));
        assert!(!allowed("http://localhost:80x"));
        assert!(!allowed("null"));
    }

    #[test]
    fn listed_origins_are_allowed() {
        let p = parts("127.0.0.1:1");
        let listed = vec!["https://app.example.com".to_owned()];
        assert!(origin_allowed(
            &HeaderValue::from_static("https://app.example.com"),
            &p,
            &listed
        ));
        assert!(!origin_allowed(
            &HeaderValue::from_static("https://other.example.com"),
            &p,
            &listed
        ));
    }
}
