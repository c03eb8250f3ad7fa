//! The web client, embedded at build time from `web/` and served at `/`.
//!
//! Every file gets its own exact route, so the gateway's generic `/{Service}/{method}` route
//! keeps the rest of the path space.

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use include_dir::{include_dir, Dir, File};

static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../web");

/// Routes for every embedded file; `/` serves `index.html`.
pub fn routes() -> Router {
    let mut router = Router::new();
    let mut files = Vec::new();
    collect(&WEB, &mut files);
    for file in files {
        let Some(path) = file.path().to_str() else {
            continue;
        };
        let route = format!("/{path}");
        if path == "index.html" {
            router = router.route("/", get(move || serve(file)));
        }
        router = router.route(&route, get(move || serve(file)));
    }
    router
}

fn collect(dir: &'static Dir<'static>, out: &mut Vec<&'static File<'static>>) {
    out.extend(dir.files());
    for sub in dir.dirs() {
        collect(sub, out);
    }
}

async fn serve(file: &'static File<'static>) -> impl IntoResponse {
    let content_type = if file.path().extension().is_some_and(|ext| ext == "ts") {
        // TypeScript declarations (rpc.d.ts) are text to read; `.ts` alone is guessed as an
        // MPEG transport stream.
        HeaderValue::from_static("text/plain; charset=utf-8")
    } else {
        let mime = mime_guess::from_path(file.path()).first_or_octet_stream();
        HeaderValue::from_str(mime.essence_str())
            .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The client is tiny and versioned with the binary: always revalidate.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        file.contents(),
    )
}

/// Number of embedded files (for the start-up log line).
pub fn file_count() -> usize {
    let mut files = Vec::new();
    collect(&WEB, &mut files);
    files.len()
}
