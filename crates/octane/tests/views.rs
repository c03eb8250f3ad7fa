//! Frames sized to the viewer: scaled views and crops of a real 4K render, over the WebSocket
//! and the single-frame routes, against the reference render server.

mod common;

use common::*;
use octaneweb_octane::{EncodingKind, FrameHeader, Region};
use octaneweb_render_server::{CallbackGeneration, ImageFormat, RenderServerConfig};
use serde_json::Value;

const FULL: (u32, u32) = (3840, 2160);

/// A 4K render that stops after two samples per pixel, so its last frame stays put and the
/// full frame and its views can be compared pixel for pixel.
async fn finished_4k_render() -> (Server, Gateway) {
    let server = Server::start(RenderServerConfig {
        width: FULL.0,
        height: FULL.1,
        max_samples_per_pixel: Some(2),
        ..server_config(CallbackGeneration::Gen2, ImageFormat::Ldr)
    })
    .await;
    let gateway = Gateway::start(server.addr, CallbackGeneration::Gen2, hub_config()).await;
    (server, gateway)
}

/// Waits on `ws` for the frame with two samples per pixel: the finished render (the
/// sub-sampled previews and the first pass before it count one).
async fn finished_frame(ws: &mut Ws) -> (FrameHeader, Vec<u8>) {
    loop {
        let (header, payload) = next_frame(ws).await;
        if header.samples_per_pixel >= 2.0 {
            return (header, payload);
        }
    }
}

/// GET `path`: status, the `X-Frame-*` headers that matter here, and the body.
async fn get(gateway: &Gateway, path: &str) -> (u16, Option<u64>, Option<String>, Vec<u8>) {
    let response = reqwest::get(gateway.url(path)).await.expect("GET");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seq = header("x-frame-seq").and_then(|s| s.parse().ok());
    let region = header("x-frame-region");
    let body = response.bytes().await.expect("body").to_vec();
    (status, seq, region, body)
}

/// The mean of each `factor`×`factor` block of an RGBA8 image: the area average a scaled
/// view must match.
fn block_average(rgba: &[u8], width: u32, factor: u32, out: (u32, u32)) -> Vec<f64> {
    let mut averages = Vec::with_capacity((out.0 * out.1 * 4) as usize);
    for oy in 0..out.1 {
        for ox in 0..out.0 {
            for c in 0..4 {
                let mut sum = 0u64;
                for y in oy * factor..(oy + 1) * factor {
                    for x in ox * factor..(ox + 1) * factor {
                        sum += u64::from(rgba[((y * width + x) * 4 + c) as usize]);
                    }
                }
                averages.push(sum as f64 / f64::from(factor * factor));
            }
        }
    }
    averages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_viewer_of_a_4k_render_sees_its_area_average_and_a_crop_its_real_pixels() {
    let (_server, gateway) = finished_4k_render().await;
    let mut ws = gateway.ws().await;
    next_json_of(&mut ws, "hello").await;
    send_text(
        &mut ws,
        r#"{"type":"config","encoding":"raw","width":640,"height":360}"#,
    )
    .await;
    let ack = next_json_of(&mut ws, "config").await;
    assert_eq!(
        (ack["width"].clone(), ack["height"].clone()),
        (640.into(), 360.into())
    );
    let (header, small) = finished_frame(&mut ws).await;
    assert_eq!((header.width, header.height), (640, 360));
    assert_eq!(small.len(), 640 * 360 * 4);
    assert_eq!(header.region, Region::whole(FULL.0, FULL.1));
    assert_eq!((header.full_width, header.full_height), FULL);

    // The full frame of the same (finished, so unchanging) render.
    let (status, seq, region, full) = get(&gateway, "/render/frame.raw").await;
    assert_eq!(status, 200);
    assert_eq!(seq, Some(header.seq), "the render is finished: one frame");
    assert_eq!(region.as_deref(), Some("0,0,3840,2160"));
    assert_eq!(full.len(), (FULL.0 * FULL.1 * 4) as usize);
    let expected = block_average(&full, FULL.0, 6, (640, 360));
    let errors: Vec<f64> = small
        .iter()
        .zip(&expected)
        .map(|(got, want)| (f64::from(*got) - want).abs())
        .collect();
    let mean_error = errors.iter().sum::<f64>() / errors.len() as f64;
    let worst = errors.iter().copied().fold(0.0, f64::max);
    assert!(mean_error < 0.6, "mean error {mean_error}");
    assert!(worst <= 2.0, "worst error {worst}");
    // Not trivially equal: the render has detail the average smooths.
    assert!(full.chunks_exact(4).any(|p| p[0] > 32));

    // The same view over HTTP is the same image.
    let (status, later, _, scaled) = get(&gateway, "/render/frame.raw?width=640&height=360").await;
    assert_eq!(status, 200);
    assert_eq!(later, Some(header.seq));
    assert_eq!(scaled.len(), small.len());
    let differing = scaled.iter().zip(&small).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "HTTP and WebSocket views of one frame differ");

    // A crop is exactly the region at full resolution, over HTTP and the WebSocket.
    let crop = Region {
        x: 1001,
        y: 517,
        width: 333,
        height: 211,
    };
    let exact: Vec<u8> = (crop.y..crop.y + crop.height)
        .flat_map(|y| {
            let start = ((y * FULL.0 + crop.x) * 4) as usize;
            full[start..start + (crop.width * 4) as usize].to_vec()
        })
        .collect();
    let (status, _, region, cut) = get(&gateway, "/render/frame.raw?crop=1001,517,333,211").await;
    assert_eq!(status, 200);
    assert_eq!(region.as_deref(), Some("1001,517,333,211"));
    assert!(cut == exact, "the crop is the region's own pixels");
    send_text(
        &mut ws,
        r#"{"type":"config","width":0,"height":0,"crop":[1001,517,333,211]}"#,
    )
    .await;
    let (header, cut) = next_frame(&mut ws).await;
    assert_eq!((header.width, header.height), (333, 211));
    assert_eq!(header.region, crop);
    assert!(
        cut == exact,
        "the WebSocket crop is the region's own pixels"
    );

    // JPEG views are encoded at the view's size.
    let (status, _, _, jpeg) = get(&gateway, "/render/frame.jpg?width=1440&height=810").await;
    assert_eq!(status, 200);
    assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF]);
    let size = jpeg_size(&jpeg).expect("a JPEG frame header");
    assert_eq!(size, (1440, 810));
}

/// Width and height from a JPEG's start-of-frame segment.
fn jpeg_size(jpeg: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    while at + 9 < jpeg.len() {
        if jpeg[at] != 0xFF {
            return None;
        }
        let marker = jpeg[at + 1];
        let length = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        if (0xC0..=0xC2).contains(&marker) {
            let height = u16::from_be_bytes([jpeg[at + 5], jpeg[at + 6]]);
            let width = u16::from_be_bytes([jpeg[at + 7], jpeg[at + 8]]);
            return Some((u32::from(width), u32::from(height)));
        }
        at += 2 + length;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizing_mid_stream_changes_the_next_frame_and_bad_views_are_refused() {
    let server = Server::start(RenderServerConfig {
        width: 960,
        height: 540,
        ..server_config(CallbackGeneration::Gen2, ImageFormat::Ldr)
    })
    .await;
    let gateway = Gateway::start(server.addr, CallbackGeneration::Gen2, hub_config()).await;
    let mut ws = gateway.ws().await;
    let hello = next_json_of(&mut ws, "hello").await;
    assert_eq!(
        (hello["width"].clone(), hello["crop"].clone()),
        (0.into(), Value::Null)
    );
    let (header, _) = next_frame(&mut ws).await;
    assert_eq!((header.width, header.height), (960, 540));

    // Each new size applies from the next frame on (the newest is re-sent at once).
    for (asked, got) in [
        ((320, 180), (320, 180)),
        ((630, 400), (640, 360)),
        ((0, 0), (960, 540)),
    ] {
        send_text(
            &mut ws,
            &format!(
                r#"{{"type":"config","encoding":"jpeg","width":{},"height":{}}}"#,
                asked.0, asked.1
            ),
        )
        .await;
        next_json_of(&mut ws, "config").await;
        let (header, payload) = next_frame(&mut ws).await;
        assert_eq!((header.width, header.height), got, "asked {asked:?}");
        assert_eq!(header.encoding, EncodingKind::Jpeg);
        assert_eq!(jpeg_size(&payload), Some(got));
    }

    // Bad views are refused by name; the settings and the stream carry on.
    let refusals = [
        (
            r#"{"type":"config","width":640}"#,
            "width and height go together",
        ),
        (
            r#"{"type":"config","width":0,"height":360}"#,
            "width 0 must be from 1 to 16384",
        ),
        (
            r#"{"type":"config","width":20000,"height":360}"#,
            "width 20000 must be from 1 to 16384",
        ),
        (
            r#"{"type":"config","crop":[900,0,100,100]}"#,
            "outside the 960×540 frame",
        ),
        (
            r#"{"type":"config","crop":[0,0,100]}"#,
            "must be [x, y, width, height]",
        ),
    ];
    for (message, expected) in refusals {
        send_text(&mut ws, message).await;
        let error = next_json_of(&mut ws, "error").await;
        let text = error["message"].as_str().unwrap_or_default();
        assert!(text.contains(expected), "{message}: {text}");
    }
    send_text(&mut ws, r#"{"type":"config","quality":60}"#).await;
    let ack = next_json_of(&mut ws, "config").await;
    assert_eq!(
        (ack["width"].clone(), ack["crop"].clone()),
        (0.into(), Value::Null)
    );
    let (header, _) = next_frame(&mut ws).await;
    assert_eq!((header.width, header.height), (960, 540));

    for (query, expected) in [
        (
            "width=abc&height=10",
            "width=\"abc\" must be a whole number",
        ),
        ("width=640", "height 0 must be from 1"),
        ("crop=1,2,3", "crop=\"1,2,3\" must be four whole numbers"),
        ("crop=0,0,961,10", "outside the 960×540 frame"),
        ("crop=5,5,0,10", "at least 1"),
    ] {
        let response = reqwest::get(gateway.url(&format!("/render/frame.jpg?{query}")))
            .await
            .expect("GET");
        assert_eq!(response.status().as_u16(), 400, "{query}");
        let body: Value = response.json().await.expect("JSON error");
        let text = body["error"].as_str().unwrap_or_default();
        assert!(text.contains(expected), "{query}: {text}");
    }
    // The viewer was not disturbed by any of it.
    let (header, _) = next_frame(&mut ws).await;
    assert_eq!((header.width, header.height), (960, 540));
}
