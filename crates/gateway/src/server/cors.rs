//! Which web pages may use the gateway, and the CORS headers that let them read answers.
//!
//! Allowed pages: the gateway's own origin (the page's `Origin` names the request's `Host`,
//! which [`super::host`] has already checked) and the origins listed with `--cors-origin`
//! (`*` = any). Pages on other loopback ports (a development server) are foreign unless
//! listed. A request from a foreign page is refused before routing ([`OriginPolicy::check`]),
//! so the CORS layer itself may answer every origin: preflights succeed and the refusal that
//! follows is readable, which lets a browser show *why* (the flag that would allow it).
//!
//! Browsers also say where a request comes from in `Sec-Fetch-Site`: a cross-site request
//! without an `Origin` (an `<img>`, a `<script>`, a form GET) is refused unless it is a
//! top-level navigation, which only loads a page.

use std::time::Duration;

use http::{HeaderMap, HeaderName, Method};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use crate::context::GatewayConfig;
use crate::error::GatewayError;

/// Response headers scripts on other origins may read.
const EXPOSED: [&str; 17] = [
    "x-call-id",
    "traceparent",
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
    "x-frame-region",
    "x-frame-full-size",
];

/// The origins allowed to use the gateway from a browser. Built once per router.
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
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .collect();
        let any = listed.iter().any(|o| o == "*");
        Self { listed, any }
    }

    /// Whether a page from `origin` may use the gateway, for a request whose `Host` (or
    /// `:authority`) is `host`.
    pub(crate) fn permits(&self, origin: &str, host: Option<&str>) -> bool {
        if self.any {
            return true;
        }
        let origin = origin.trim().to_ascii_lowercase();
        if self.listed.contains(&origin) {
            return true;
        }
        let page_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        matches!((page_host, host), (Some(page), Some(host)) if host.eq_ignore_ascii_case(page))
    }

    /// Refuses requests a browser made for a foreign page: a foreign `Origin`, or a
    /// cross-site `Sec-Fetch-Site` with no allowed `Origin` (other than a navigation).
    pub(crate) fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        host: Option<&str>,
    ) -> Result<(), GatewayError> {
        if let Some(origin) = headers.get(http::header::ORIGIN) {
            let text = String::from_utf8_lossy(origin.as_bytes());
            return if self.permits(&text, host) {
                Ok(())
            } else {
                Err(GatewayError::ForeignOrigin {
                    origin: text.into_owned(),
                })
            };
        }
        let site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !(site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site")) {
            return Ok(());
        }
        let navigation = (method == Method::GET || method == Method::HEAD)
            && headers
                .get("sec-fetch-mode")
                .is_some_and(|mode| mode.as_bytes().eq_ignore_ascii_case(b"navigate"));
        if navigation {
            Ok(())
        } else {
            Err(GatewayError::CrossSite {
                site: site.to_owned(),
            })
        }
    }
}

/// The CORS layer. It answers every origin: [`OriginPolicy::check`] refuses requests from
/// foreign pages before any route runs, and its refusal must be readable to be useful.
pub(crate) fn layer() -> CorsLayer {
    let mut exposed: Vec<HeaderName> = EXPOSED.map(HeaderName::from_static).to_vec();
    exposed.push(HeaderName::from_static(
        crate::protocol::octanewebr::IGNORED_FIELDS_HEADER,
    ));
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(exposed)
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(listed: &[&str]) -> OriginPolicy {
        OriginPolicy::new(&GatewayConfig {
            cors_origins: listed.iter().map(|o| (*o).to_owned()).collect(),
            ..GatewayConfig::default()
        })
    }

    #[test]
    fn own_and_listed_origins_are_allowed_other_loopback_ports_are_not() {
        let p = policy(&["http://localhost:5173", "https://app.example.com/"]);
        let host = Some("127.0.0.1:51023");
        assert!(p.permits("http://127.0.0.1:51023", host));
        assert!(p.permits("http://localhost:5173", host));
        assert!(p.permits("https://APP.example.com", host));
        assert!(!p.permits("http://localhost:3000", host));
        assert!(!p.permits("http://127.0.0.1:8080", host));
        assert!(!p.permits("http://evil.example", host));
        assert!(!p.permits("null", host));
        assert!(policy(&["*"]).permits("http://evil.example", host));
    }

    #[test]
    fn cross_site_requests_without_origin_are_refused_but_navigations_pass() {
        let p = policy(&[]);
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, http::HeaderValue::from_static(v));
            }
            map
        };
        let img = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ]);
        assert!(matches!(
            p.check(&Method::GET, &img, Some("127.0.0.1:1")),
            Err(GatewayError::CrossSite { .. })
        ));
        let link = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
        ]);
        assert!(p.check(&Method::GET, &link, Some("127.0.0.1:1")).is_ok());
        assert!(p.check(&Method::POST, &link, Some("127.0.0.1:1")).is_err());
        let own = headers(&[("sec-fetch-site", "same-origin")]);
        assert!(p.check(&Method::POST, &own, Some("127.0.0.1:1")).is_ok());
        assert!(p.check(&Method::POST, &HeaderMap::new(), None).is_ok());
    }
}
