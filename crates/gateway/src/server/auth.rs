//! The access token (`--token`): what lets a gateway leave loopback.
//!
//! Clients prove they hold the token with `Authorization: Bearer <token>`. Browsers cannot
//! set that header on an `EventSource`, a WebSocket or an `<img>`, so a page opened once with
//! `?token=<token>` gets an HttpOnly, SameSite=Strict cookie and is redirected to the same
//! address without the token (out of the address bar and history); the cookie then carries
//! every later request of that site, and no other site's page can make the browser send it.
//!
//! The token is compared in constant time, never logged, and never forwarded: the middleware
//! removes it (header, cookie, query) from the request before anything else sees it.

use crate::context::AccessToken;

/// The query parameter a browser brings the token in.
pub const TOKEN_QUERY: &str = "token";

/// Routes served without the token: liveness and readiness probes reveal nothing.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// What the token check made of a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Carries the token (or needs none); go on.
    Pass,
    /// Brought a valid `?token=` on a page load: set the cookie and send the browser to
    /// `location` (the same address without the token).
    SetCookieAndRedirect { location: String },
    /// Brought a valid `?token=` on another request: set the cookie and go on.
    SetCookie,
    /// No valid token.
    Refuse,
}

/// Checks `request` against `token`, and removes every trace of the token from it
/// (the `Authorization` header, the cookie, the query parameter).
pub(crate) fn check<B>(token: &AccessToken, request: &mut http::Request<B>) -> Verdict {
    let path = request.uri().path();
    if OPEN_PATHS.contains(&path) {
        return Verdict::Pass;
    }
    let headers = request.headers_mut();
    let mut valid = false;
    if let Some(value) = headers.remove(http::header::AUTHORIZATION) {
        let bytes = value.as_bytes();
        if bytes.len() > 7 && bytes[..7].eq_ignore_ascii_case(b"bearer ") {
            valid = token.matches(bytes[7..].trim_ascii());
        }
    }
    valid |= take_cookie(token, headers);
    let (query_token, rest) = split_query_token(request.uri().query());
    let Some(query_token) = query_token else {
        return if valid {
            Verdict::Pass
        } else {
            Verdict::Refuse
        };
    };
    let from_query = token.matches(query_token.as_bytes());
    // The token leaves the address before anything (a route, a log line) reads it.
    let path_and_query = match &rest {
        Some(rest) => format!("{}?{rest}", request.uri().path()),
        None => request.uri().path().to_owned(),
    };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    if !from_query {
        return if valid {
            Verdict::Pass
        } else {
            Verdict::Refuse
        };
    }
    let page_load = request.method() == http::Method::GET
        && (request
            .headers()
            .get("sec-fetch-mode")
            .is_some_and(|m| m.as_bytes() == b"navigate")
            || request
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("text/html")));
    if page_load {
        Verdict::SetCookieAndRedirect {
            location: path_and_query,
        }
    } else {
        Verdict::SetCookie
    }
}

/// Whether the request's cookies include ours with the right value; ours is removed.
fn take_cookie(token: &AccessToken, headers: &mut http::HeaderMap) -> bool {
    let mut found = false;
    let mut kept: Vec<String> = Vec::new();
    let cookies: Vec<http::HeaderValue> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .cloned()
        .collect();
    if cookies.is_empty() {
        return false;
    }
    for value in &cookies {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let pair = pair.trim();
            match pair.split_once('=') {
                Some((name, value)) if name == token.cookie_name => {
                    found |= token.cookie_matches(value);
                }
                _ if !pair.is_empty() => kept.push(pair.to_owned()),
                _ => {}
            }
        }
    }
    headers.remove(http::header::COOKIE);
    if !kept.is_empty() {
        if let Ok(value) = http::HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(http::header::COOKIE, value);
        }
    }
    found
}

/// The `token` parameter's value (percent-decoding is not needed: the token's characters are
/// all unreserved) and the query without it.
fn split_query_token(query: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(query) = query else {
        return (None, None);
    };
    let mut found = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some((TOKEN_QUERY, value)) => {
                found = Some(value.to_owned());
                false
            }
            None if *pair == TOKEN_QUERY => {
                found = Some(String::new());
                false
            }
            _ => true,
        })
        .collect();
    let rest = (!rest.is_empty()).then(|| rest.join("&"));
    (found, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TokenError;

    const TOKEN: &str = "0123456789abcdef-secret";

    fn request(uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::builder().uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn tokens_must_be_long_and_plain() {
        assert!(matches!(
            AccessToken::new("short"),
            Err(TokenError::TooShort { len: 5 })
        ));
        assert!(matches!(
            AccessToken::new("has spaces in the middle!"),
            Err(TokenError::BadCharacters)
        ));
        let token = AccessToken::new(&format!("  {TOKEN}\n")).unwrap();
        assert_eq!(token.reveal(), TOKEN);
        assert!(!format!("{token:?}").contains(TOKEN));
    }

    #[test]
    fn bearer_header_passes_and_is_removed() {
        let token = AccessToken::new(TOKEN).unwrap();
        let mut ok = request(
            "/LiveLink/GetCamera",
            &[("authorization", &format!("Bearer {TOKEN}"))],
        );
        assert_eq!(check(&token, &mut ok), Verdict::Pass);
        assert!(ok.headers().get("authorization").is_none());
        let mut wrong = request(
            "/LiveLink/GetCamera",
            &[("authorization", "Bearer 0123456789abcdef-secreT")],
        );
        assert_eq!(check(&token, &mut wrong), Verdict::Refuse);
        let mut none = request("/LiveLink/GetCamera", &[]);
        assert_eq!(check(&token, &mut none), Verdict::Refuse);
        let mut probe = request("/healthz", &[]);
        assert_eq!(check(&token, &mut probe), Verdict::Pass);
    }

    #[test]
    fn query_token_sets_the_cookie_and_leaves_the_address() {
        let token = AccessToken::new(TOKEN).unwrap();
        let mut page = request(
            &format!("/?token={TOKEN}&server=x"),
            &[("sec-fetch-mode", "navigate")],
        );
        assert_eq!(
            check(&token, &mut page),
            Verdict::SetCookieAndRedirect {
                location: "/?server=x".into()
            }
        );
        let mut stream = request(&format!("/render/stream?token={TOKEN}"), &[]);
        assert_eq!(check(&token, &mut stream), Verdict::SetCookie);
        assert_eq!(stream.uri().to_string(), "/render/stream");
        let cookie = token.set_cookie(false);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains(TOKEN));
        let pair = cookie.split(';').next().unwrap().to_owned();
        let mut later = request("/ws", &[("cookie", &format!("theme=dark; {pair}"))]);
        assert_eq!(check(&token, &mut later), Verdict::Pass);
        assert_eq!(later.headers()["cookie"], "theme=dark");
        let mut bad = request("/?token=nope", &[]);
        assert_eq!(check(&token, &mut bad), Verdict::Refuse);
        assert_eq!(bad.uri().to_string(), "/");
    }
}
