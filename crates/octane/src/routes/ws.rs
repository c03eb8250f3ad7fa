//! `GET /render/ws`: the WebSocket frame stream. Binary messages carry a frame (80-byte
//! header, then the payload); text messages carry JSON events. The viewer controls encoding,
//! quality, frame rate, exposure, gamma and its view (display size, crop) with JSON text
//! messages. See docs/render-stream.md.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::Extension;
use hyper_util::rt::TokioIo;
use octaneweb_gateway::{ConnectionSlot, ShutdownSignal};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ws_wire::{self, ClientMessage, FrameReader, FrameWriter};
use super::{unavailable, RenderState};
use crate::encode::{
    tonemap, EncodingKind, Format, Tonemap, ViewRequest, HEADER_LEN, HEADER_VERSION,
};
use crate::hub::{HubEvent, Viewer};

/// Largest control message accepted from a viewer.
pub(super) const MAX_CONTROL_BYTES: usize = 16 * 1024;
/// Control messages queued while a frame is being sent.
const CONTROL_QUEUE: usize = 16;
/// A frame send that takes longer than this ends the connection (the viewer stopped reading).
pub(super) const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Highest `max_fps` a viewer can ask for.
const MAX_FPS: u32 = 240;

/// One viewer's stream settings.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Settings {
    encoding: EncodingKind,
    quality: u8,
    /// 0 = unlimited.
    max_fps: u32,
    tonemap: Tonemap,
    /// The display size and crop the viewer asked for.
    view: ViewRequest,
}

impl Settings {
    fn format(&self) -> Format {
        Format::image(self.encoding, self.quality)
    }

    fn min_interval(&self) -> Option<Duration> {
        (self.max_fps > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(self.max_fps)))
    }

    fn to_json(self, kind: &str) -> Value {
        let (width, height) = self.view.fit.unwrap_or((0, 0));
        json!({
            "type": kind,
            "encoding": self.encoding.name(),
            "quality": self.quality,
            "max_fps": self.max_fps,
            "exposure": self.tonemap.exposure,
            "gamma": self.tonemap.gamma,
            "width": width,
            "height": height,
            "crop": self.view.crop.map(|crop| crop.to_array()),
        })
    }
}

/// A parsed viewer control message.
#[derive(Debug, PartialEq)]
enum Control {
    Config(Settings),
    Pause,
    Resume,
}

/// A JSON number within `min..=max`, rounded to the nearest whole number (browsers send
/// sliders' values as floats).
fn whole_number(value: &Value, min: f64, max: f64) -> Option<u64> {
    value
        .as_f64()
        .filter(|v| v.is_finite() && (min..=max).contains(v))
        .map(|v| v.round() as u64)
}

/// A `width` or `height` of a config message: a whole number, or null (= 0, the full frame).
fn side(value: Option<&Value>, name: &str) -> Result<Option<u64>, String> {
    match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(0)),
        Some(value) => whole_number(value, 0.0, f64::from(u32::MAX))
            .map(Some)
            .ok_or_else(|| {
                format!("{name} {value} must be a number of pixels (0 or null for the full frame)")
            }),
    }
}

/// The `crop` of a config message: `[x, y, w, h]` inside the newest frame, or null.
fn crop(value: &Value, frame: Option<(u32, u32)>) -> Result<Option<crate::encode::Region>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let numbers: Option<Vec<u64>> = value.as_array().map(|items| {
        items
            .iter()
            .filter_map(|item| whole_number(item, 0.0, f64::from(u32::MAX)))
            .collect()
    });
    let values: [u64; 4] = numbers
        .filter(|n| value.as_array().map(Vec::len) == Some(n.len()))
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| {
            format!(
                "crop {value} must be [x, y, width, height] in pixels, or null for the whole frame"
            )
        })?;
    ViewRequest::crop_from(values, frame, "crop")
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Parses a control message against the current settings and the newest frame's size (which
/// a crop must fit); the error text goes back to the viewer as
/// `{"type":"error","message":...}`.
fn parse_control(
    text: &str,
    current: Settings,
    frame: Option<(u32, u32)>,
) -> Result<Control, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("control message is not JSON: {e}"))?;
    let Some(object) = value.as_object() else {
        return Err("control message must be a JSON object with a \"type\"".into());
    };
    let kind = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or("control message needs a string \"type\" (config, pause or resume)")?;
    match kind {
        "pause" => return Ok(Control::Pause),
        "resume" => return Ok(Control::Resume),
        "config" => {}
        other => {
            return Err(format!(
                "unknown control message type {other:?} (expected config, pause or resume)"
            ))
        }
    }
    let mut settings = current;
    for (key, value) in object {
        match key.as_str() {
            "type" => {}
            "encoding" => {
                let name = value.as_str().unwrap_or_default();
                settings.encoding = EncodingKind::parse(name).ok_or_else(|| {
                    format!("encoding {value} is not one of \"raw\", \"png\", \"jpeg\"")
                })?;
            }
            "quality" => {
                settings.quality = whole_number(value, 1.0, 100.0)
                    .and_then(|q| u8::try_from(q).ok())
                    .ok_or_else(|| format!("quality {value} must be a number from 1 to 100"))?;
            }
            "max_fps" => {
                settings.max_fps = whole_number(value, 0.0, f64::from(MAX_FPS))
                    .and_then(|f| u32::try_from(f).ok())
                    .ok_or_else(|| {
                        format!("max_fps {value} must be a number from 0 (unlimited) to {MAX_FPS}")
                    })?;
            }
            "exposure" => {
                let exposure = value.as_f64().map(|v| v as f32).unwrap_or(f32::NAN);
                settings.tonemap.exposure = exposure;
            }
            "gamma" => {
                let gamma = value.as_f64().map(|v| v as f32).unwrap_or(f32::NAN);
                settings.tonemap.gamma = gamma;
            }
            // Read together below.
            "width" | "height" => {}
            "crop" => settings.view.crop = crop(value, frame)?,
            other => {
                return Err(format!(
                    "unknown config field {other:?} (expected encoding, quality, max_fps, exposure, gamma, width, height, crop)"
                ))
            }
        }
    }
    match (
        side(object.get("width"), "width")?,
        side(object.get("height"), "height")?,
    ) {
        (None, None) => {}
        (Some(width), Some(height)) => {
            settings.view.fit = ViewRequest::fit_from(width, height, ("width", "height"))
                .map_err(|e| e.to_string())?;
        }
        _ => {
            return Err(
                "width and height go together: send both (0 or null for the full frame)".into(),
            )
        }
    }
    settings.tonemap = settings.tonemap.validate().map_err(|e| match e {
        tonemap::TonemapError::Exposure(_) | tonemap::TonemapError::Gamma(_) => e.to_string(),
    })?;
    Ok(Control::Config(settings))
}

pub(crate) async fn upgrade(
    State(state): State<RenderState>,
    shutdown: Option<Extension<ShutdownSignal>>,
    slot: Option<Extension<ConnectionSlot>>,
    mut request: Request,
) -> Response {
    let (response, on_upgrade) = match ws_wire::accept(&mut request) {
        Ok(accepted) => accepted,
        Err(refusal) => return *refusal,
    };
    let viewer = match state.hub.viewer() {
        Ok(viewer) => viewer,
        Err(error) => return unavailable(error.to_string()),
    };
    tokio::spawn(async move {
        // The socket counts against the connection caps until it closes.
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => {
                serve(
                    TokioIo::new(upgraded),
                    viewer,
                    state,
                    shutdown.map(|Extension(s)| s),
                )
                .await
            }
            Err(error) => tracing::debug!(%error, "render WebSocket upgrade failed"),
        }
    });
    response
}

fn event_json(event: &HubEvent) -> Value {
    match event {
        HubEvent::NewStatistics {
            callback_id,
            user_data,
            timestamp,
        } => {
            json!({"type": "statistics", "callback_id": callback_id, "user_data": user_data, "timestamp": timestamp})
        }
        HubEvent::RenderFailure {
            callback_id,
            user_data,
            timestamp,
        } => {
            json!({"type": "renderFailure", "callback_id": callback_id, "user_data": user_data, "timestamp": timestamp})
        }
        HubEvent::ProjectManagerChanged { timestamp } => {
            json!({"type": "projectManagerChanged", "timestamp": timestamp})
        }
        HubEvent::Upstream { connected } => json!({"type": "upstream", "connected": connected}),
    }
}

/// The newest frame's size, which a requested crop must fit.
fn newest_size(state: &RenderState) -> Option<(u32, u32)> {
    state
        .hub
        .latest()
        .map(|frame| (frame.width(), frame.height()))
}

async fn serve<S>(
    socket: S,
    mut viewer: Viewer,
    state: RenderState,
    shutdown: Option<ShutdownSignal>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (read_half, write_half) = tokio::io::split(socket);
    let mut sink = FrameWriter::new(write_half);
    let (incoming_tx, mut incoming) = mpsc::channel::<ClientMessage>(CONTROL_QUEUE);
    // Reads on its own task so a frame being sent never stops control messages from queueing;
    // when the socket closes the channel closes and the writer loop ends.
    let reader = tokio::spawn(async move {
        let mut frames = FrameReader::new(read_half, MAX_CONTROL_BYTES);
        while let Ok(message) = frames.next().await {
            let last = matches!(message, ClientMessage::Close(_));
            if incoming_tx.send(message).await.is_err() || last {
                break;
            }
        }
    });

    let config = state.hub.config();
    let mut settings = Settings {
        encoding: config.default_encoding,
        quality: config.default_quality.clamp(1, 100),
        max_fps: 0,
        tonemap: config.default_tonemap,
        view: ViewRequest::FULL,
    };
    let status = state.hub.status();
    let mut hello = settings.to_json("hello");
    if let Some(object) = hello.as_object_mut() {
        object.insert("version".into(), json!(HEADER_VERSION));
        object.insert("header_bytes".into(), json!(HEADER_LEN));
        object.insert("connected".into(), json!(viewer.upstream_connected()));
        object.insert("generation".into(), json!(status.generation));
        if let Some(error) = status.schema_error {
            object.insert("error".into(), json!(error));
        }
    }
    let mut events = state.hub.events();
    let mut paused = false;
    let mut next_allowed = Instant::now();

    let shutdown = ShutdownSignal::wait_opt(shutdown);
    tokio::pin!(shutdown);
    let outcome: std::io::Result<()> = async {
        sink.text(&hello.to_string()).await?;
        loop {
            let rate_limited = Instant::now() < next_allowed;
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    return sink.close(ws_wire::CLOSE_GOING_AWAY, "server shutting down").await;
                }
                message = incoming.recv() => {
                    let reply = match message {
                        None => return Ok(()),
                        Some(ClientMessage::Close(code)) => {
                            let (code, reason) = match code {
                                ws_wire::CLOSE_TOO_BIG => (code, "control message larger than 16 KiB"),
                                ws_wire::CLOSE_PROTOCOL_ERROR | ws_wire::CLOSE_INVALID_DATA => (code, "WebSocket protocol violation"),
                                _ => (ws_wire::CLOSE_NORMAL, ""),
                            };
                            return sink.close(code, reason).await;
                        }
                        Some(ClientMessage::Ping(payload)) => {
                            sink.pong(&payload).await?;
                            continue;
                        }
                        Some(ClientMessage::Binary) => json!({
                            "type": "error",
                            "message": "binary messages are not accepted; send JSON text control messages",
                        }),
                        Some(ClientMessage::Text(body)) => match parse_control(&body, settings, newest_size(&state)) {
                            Ok(Control::Pause) => {
                                paused = true;
                                json!({"type": "paused"})
                            }
                            Ok(Control::Resume) => {
                                paused = false;
                                viewer.rewind();
                                json!({"type": "resumed"})
                            }
                            Ok(Control::Config(new)) => {
                                if new.format() != settings.format()
                                    || new.tonemap != settings.tonemap
                                    || new.view != settings.view
                                {
                                    viewer.rewind();
                                }
                                if new.max_fps != settings.max_fps {
                                    next_allowed = Instant::now();
                                }
                                settings = new;
                                settings.to_json("config")
                            }
                            Err(message) => json!({"type": "error", "message": message}),
                        },
                    };
                    sink.text(&reply.to_string()).await?;
                }
                event = events.next() => {
                    sink.text(&event_json(&event).to_string()).await?;
                }
                _ = tokio::time::sleep_until(next_allowed), if !paused && rate_limited => {}
                frame = viewer.next_frame(), if !paused && !rate_limited => {
                    let encoded = match state.hub.encoded_view(&frame, settings.format(), settings.tonemap, &settings.view).await {
                        Ok(encoded) => encoded,
                        Err(error) => {
                            sink.text(&json!({"type": "error", "message": error.to_string()}).to_string()).await?;
                            continue;
                        }
                    };
                    // The shared bytes of the encoded frame go to the socket as they are.
                    match tokio::time::timeout(SEND_TIMEOUT, sink.binary(&encoded.message())).await {
                        Ok(sent) => sent?,
                        Err(_) => {
                            tracing::info!("render viewer stopped reading; closing its WebSocket");
                            return Ok(());
                        }
                    }
                    viewer.sent(&encoded);
                    if let Some(interval) = settings.min_interval() {
                        next_allowed = Instant::now() + interval;
                    }
                }
            }
        }
    }
    .await;
    if let Err(error) = outcome {
        tracing::debug!(%error, "render WebSocket closed");
    }
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings {
            encoding: EncodingKind::Jpeg,
            quality: 85,
            max_fps: 0,
            tonemap: Tonemap::default(),
            view: ViewRequest::FULL,
        }
    }

    #[test]
    fn config_messages_update_only_the_given_fields() {
        let parsed = parse_control(
            r#"{"type":"config","encoding":"png","max_fps":29.97,"exposure":1.5}"#,
            defaults(),
            None,
        )
        .unwrap();
        let Control::Config(s) = parsed else {
            panic!("expected config")
        };
        assert_eq!(s.encoding, EncodingKind::Png);
        assert_eq!(s.quality, 85);
        assert_eq!(s.max_fps, 30);
        assert_eq!(s.tonemap.exposure, 1.5);
        assert_eq!(
            parse_control(r#"{"type":"pause"}"#, defaults(), None),
            Ok(Control::Pause)
        );
        assert_eq!(
            parse_control(r#"{"type":"resume"}"#, defaults(), None),
            Ok(Control::Resume)
        );
    }

    #[test]
    fn config_messages_set_and_clear_the_view() {
        let Ok(Control::Config(s)) = parse_control(
            r#"{"type":"config","width":1440.2,"height":810,"crop":[100,50,1920,1080]}"#,
            defaults(),
            Some((3840, 2160)),
        ) else {
            panic!("expected config")
        };
        assert_eq!(s.view.fit, Some((1440, 810)));
        assert_eq!(
            s.view.crop.map(|c| c.to_array()),
            Some([100, 50, 1920, 1080])
        );
        assert_eq!(s.to_json("config")["crop"], json!([100, 50, 1920, 1080]));
        let Ok(Control::Config(cleared)) = parse_control(
            r#"{"type":"config","width":null,"height":null,"crop":null}"#,
            s,
            None,
        ) else {
            panic!("expected config")
        };
        assert_eq!(cleared.view, ViewRequest::FULL);
        assert_eq!(cleared.to_json("config")["width"], 0);
    }

    #[test]
    fn bad_control_messages_name_the_problem() {
        let cases = [
            ("garbage", "not JSON"),
            ("[1,2]", "JSON object"),
            (r#"{"kind":"config"}"#, "\"type\""),
            (r#"{"type":"explode"}"#, "unknown control message type"),
            (r#"{"type":"config","encoding":"gif"}"#, "encoding"),
            (r#"{"type":"config","quality":0}"#, "quality"),
            (r#"{"type":"config","quality":"high"}"#, "quality"),
            (r#"{"type":"config","max_fps":1000}"#, "max_fps"),
            (r#"{"type":"config","exposure":99}"#, "exposure"),
            (r#"{"type":"config","gamma":0}"#, "gamma"),
            (
                r#"{"type":"config","colour":"red"}"#,
                "unknown config field",
            ),
            (
                r#"{"type":"config","width":640}"#,
                "width and height go together",
            ),
            (
                r#"{"type":"config","width":640,"height":-1}"#,
                "height -1 must be",
            ),
            (
                r#"{"type":"config","width":99999,"height":10}"#,
                "width 99999 must be from 1 to 16384",
            ),
            (
                r#"{"type":"config","crop":[0,0,10]}"#,
                "crop [0,0,10] must be [x, y, width, height]",
            ),
            (
                r#"{"type":"config","crop":"0,0,1,1"}"#,
                "crop \"0,0,1,1\" must be",
            ),
            (
                r#"{"type":"config","crop":[3000,0,1000,10]}"#,
                "outside the 3840×2160 frame",
            ),
            (r#"{"type":"config","crop":[0,0,0,10]}"#, "at least 1"),
        ];
        for (input, expected) in cases {
            let error = parse_control(input, defaults(), Some((3840, 2160))).unwrap_err();
            assert!(error.contains(expected), "{input}: {error}");
        }
    }
}
