//! `GET /render/frame.{png,jpg,raw}`: the newest frame once, with ETag / If-None-Match.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{json_error, unavailable, RenderState};
use crate::encode::{EncodingKind, Format, Region, Tonemap, ViewRequest};

type Params = Query<HashMap<String, String>>;

pub(crate) async fn png(state: State<RenderState>, headers: HeaderMap, query: Params) -> Response {
    serve(state, headers, query, EncodingKind::Png).await
}

pub(crate) async fn jpeg(state: State<RenderState>, headers: HeaderMap, query: Params) -> Response {
    serve(state, headers, query, EncodingKind::Jpeg).await
}

pub(crate) async fn raw(state: State<RenderState>, headers: HeaderMap, query: Params) -> Response {
    serve(state, headers, query, EncodingKind::Raw).await
}

/// `GET /render/frame?encoding=png|jpeg|raw`: the configured default encoding unless asked.
pub(crate) async fn any(state: State<RenderState>, headers: HeaderMap, query: Params) -> Response {
    let kind = match query.get("encoding") {
        None => state.hub.config().default_encoding,
        Some(name) => match EncodingKind::parse(name) {
            Some(kind) => kind,
            None => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!("encoding={name:?} is not one of png, jpeg, raw"),
                )
            }
        },
    };
    serve(state, headers, query, kind).await
}

/// Parses `name` from the query as `T` within `range`, or explains what is wrong.
fn param<T>(
    query: &HashMap<String, String>,
    name: &str,
    range: std::ops::RangeInclusive<T>,
) -> Result<Option<T>, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    match text.parse::<T>() {
        Ok(value) if range.contains(&value) => Ok(Some(value)),
        _ => Err(format!(
            "query parameter {name}={text:?} must be a number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

/// The view asked for with `width`, `height` and `crop=x,y,w,h`, checked against the frame's
/// size when there is a frame (`None`: only the form is checked).
fn view_request(
    query: &HashMap<String, String>,
    frame: Option<(u32, u32)>,
) -> Result<ViewRequest, String> {
    let side = |name: &str| match query.get(name) {
        None => Ok(0),
        Some(text) => text.parse::<u64>().map_err(|_| {
            format!("query parameter {name}={text:?} must be a whole number of pixels")
        }),
    };
    let (width, height) = (side("width")?, side("height")?);
    let fit = ViewRequest::fit_from(width, height, ("width", "height"))
        .map_err(|e| format!("query parameter {e}"))?;
    let crop = match query.get("crop") {
        None => None,
        Some(text) => {
            let numbers: Vec<u64> = text
                .split(',')
                .map(|part| part.trim().parse::<u64>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    format!("query parameter crop={text:?} must be four whole numbers x,y,w,h")
                })?;
            let values: [u64; 4] = numbers.try_into().map_err(|_| {
                format!("query parameter crop={text:?} must be four whole numbers x,y,w,h")
            })?;
            Some(
                ViewRequest::crop_from(values, frame, "crop")
                    .map_err(|e| format!("query parameter {e}"))?,
            )
        }
    };
    Ok(ViewRequest { fit, crop })
}

/// True if `If-None-Match` lists `etag` (or `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

async fn serve(
    State(state): State<RenderState>,
    headers: HeaderMap,
    Query(query): Params,
    kind: EncodingKind,
) -> Response {
    let defaults = state.hub.config();
    let quality = match param(&query, "quality", 1u8..=100) {
        Ok(q) => q.unwrap_or(defaults.default_quality),
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    let mut tonemap = defaults.default_tonemap;
    match param(&query, "exposure", -20f32..=20.0) {
        Ok(Some(exposure)) => tonemap.exposure = exposure,
        Ok(None) => {}
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    }
    match param(&query, "gamma", 0.1f32..=10.0) {
        Ok(Some(gamma)) => tonemap.gamma = gamma,
        Ok(None) => {}
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    }
    if let Err(message) = view_request(&query, None) {
        return json_error(StatusCode::BAD_REQUEST, message);
    }
    // A poll keeps (or starts) the subscription for the idle grace.
    state.hub.touch();
    let Some(frame) = state.hub.latest() else {
        let status = state.hub.status();
        let why = status
            .schema_error
            .or(status.last_error)
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return unavailable(format!(
            "no render frame has arrived yet{why}; retry shortly"
        ));
    };
    let view = match view_request(&query, Some((frame.width(), frame.height()))) {
        Ok(view) => view,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    let etag = format!("\"{}\"", frame.seq);
    if not_modified(&headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(value) = HeaderValue::from_str(&etag) {
            response.headers_mut().insert(header::ETAG, value);
        }
        return response;
    }
    let encoded = match state
        .hub
        .encoded_view(
            &frame,
            Format::image(kind, quality),
            valid_or_default(tonemap),
            &view,
        )
        .await
    {
        Ok(encoded) => encoded,
        Err(error) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    };
    let payload = encoded.payload();
    state
        .hub
        .metrics()
        .frame_sent(encoded.format, payload.len(), frame.arrived.elapsed());
    let mut response = payload.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(kind.content_type()),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let shown = encoded.view;
    let Region {
        x,
        y,
        width,
        height,
    } = shown.region;
    let numbers = [
        (header::ETAG.as_str(), etag),
        ("x-frame-seq", frame.seq.to_string()),
        ("x-frame-width", shown.width.to_string()),
        ("x-frame-height", shown.height.to_string()),
        ("x-frame-region", format!("{x},{y},{width},{height}")),
        (
            "x-frame-full-size",
            format!("{}x{}", shown.full_width, shown.full_height),
        ),
        (
            "x-frame-samples-per-pixel",
            frame.image.tonemapped_samples_per_pixel.to_string(),
        ),
    ];
    for (name, value) in numbers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(name, value);
        }
    }
    response
}

fn valid_or_default(tonemap: Tonemap) -> Tonemap {
    tonemap.validate().unwrap_or_default()
}
