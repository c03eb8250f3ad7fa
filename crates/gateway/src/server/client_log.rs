//! The original proxy's client-log routes: `POST /debug/append-log`, `POST /debug/clear-log`
//! and `POST /save-debug-logs`, and octaneWebR's `POST /api/log` (its development server's
//! route, which its client's debug logger posts to). The browser clients post their own log lines there;
//! they are accepted (`{"success":true}`) and written to the gateway's log at `debug` level
//! under the target [`TARGET`], so a page that expects them keeps working without filling the
//! operator's log. The gateway keeps no log file of its own for the client.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::GatewayState;
use crate::context::call::read_body;

/// Tracing target of the client's log lines (`RUST_LOG=octaneweb::client_log=debug`).
pub const TARGET: &str = "octaneweb::client_log";

/// Largest body of one log post (or the gateway's body limit when that is smaller): log
/// lines are small, and a page must not be able to make the gateway buffer much.
pub const MAX_LOG_BODY: usize = 64 * 1024;

/// Most characters of one post written to the log; the rest is counted, not written.
const MAX_LOGGED_CHARS: usize = 4096;

/// `POST /debug/append-log`.
pub async fn append(State(state): State<GatewayState>, request: Request) -> Response {
    accept(&state, request, "append-log").await
}

/// `POST /debug/clear-log`.
pub async fn clear(State(state): State<GatewayState>, request: Request) -> Response {
    accept(&state, request, "clear-log").await
}

/// `POST /save-debug-logs`.
pub async fn save(State(state): State<GatewayState>, request: Request) -> Response {
    accept(&state, request, "save-debug-logs").await
}

/// `POST /api/log`, octaneWebR's.
pub async fn octanewebr(State(state): State<GatewayState>, request: Request) -> Response {
    accept(&state, request, "api/log").await
}

async fn accept(state: &GatewayState, request: Request, route: &'static str) -> Response {
    let limit = MAX_LOG_BODY.min(state.config.max_body_bytes);
    let (parts, body) = request.into_parts();
    let body = match read_body(&parts.headers, body, limit).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    // Formatting costs something for a post that nobody reads: only when it is written.
    if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
        let text = single_line(&String::from_utf8_lossy(&body), MAX_LOGGED_CHARS);
        tracing::debug!(target: TARGET, route, bytes = body.len(), "client log: {text}");
    }
    Json(json!({ "success": true })).into_response()
}

/// `text` as one log line of at most `max` characters: control and line-separator characters
/// become `\u{..}` escapes, so that a page cannot start a forged line or move the terminal's
/// cursor; a longer text is cut, saying how much was left out.
fn single_line(text: &str, max: usize) -> String {
    let mut line = String::with_capacity(text.len().min(max) + 32);
    for (written, (index, c)) in text.char_indices().enumerate() {
        if written >= max {
            line.push_str(&format!(" ...({} more bytes)", text.len() - index));
            break;
        }
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}') {
            line.push_str(&c.escape_unicode().to_string());
        } else {
            line.push(c);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::single_line;

    #[test]
    fn log_lines_cannot_forge_lines_or_grow_without_bound() {
        let forged = single_line("ok\nINFO octaneweb: fake\r\x1b[2J\u{2028}end", 100);
        assert!(!forged.chars().any(|c| c.is_control()), "{forged}");
        assert!(forged.starts_with("ok\\u{a}INFO"), "{forged}");
        assert!(forged.contains("\\u{1b}") && forged.contains("\\u{2028}"));
        let long = single_line(&"x".repeat(10_000), 10);
        assert_eq!(long, "xxxxxxxxxx ...(9990 more bytes)");
        assert_eq!(single_line("é", 10), "é");
    }
}
