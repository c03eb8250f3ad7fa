//! Fan-out under load: 50 viewers, one of them slow. In its own test binary so that the
//! process's memory reflects this test alone.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use octaneweb_render_server::{CallbackGeneration, ImageFormat};
use tokio_tungstenite::tungstenite::Message;

/// 50 viewers at once while one reads a frame a second: the others keep the full rate and the
/// hub's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_viewers_keep_the_rate_while_one_is_slow() {
    let server = Server::start(server_config(CallbackGeneration::Gen2, ImageFormat::Ldr)).await;
    let gateway = Gateway::start(server.addr, CallbackGeneration::Gen2, hub_config()).await;

    // The slow viewer: raw frames, reads one a second.
    let mut slow = gateway.ws().await;
    next_json_of(&mut slow, "hello").await;
    let slow_task = tokio::spawn(async move {
        let mut got = 0u32;
        let end = tokio::time::Instant::now() + Duration::from_secs(3);
        while tokio::time::Instant::now() < end {
            if let Some(Ok(Message::Binary(_))) = slow.next().await {
                got += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        (got, slow)
    });

    let mut fast = Vec::new();
    for _ in 0..49 {
        let mut ws = gateway.ws().await;
        next_json_of(&mut ws, "hello").await;
        fast.push(ws);
    }
    // Warm up: everyone has a frame.
    for ws in &mut fast {
        next_frame(ws).await;
    }
    let rss_before = rss_bytes();
    let published_before = gateway.hub.status().metrics.frames_published;
    let window = Duration::from_secs(3);
    let mut readers = Vec::new();
    for mut ws in fast {
        readers.push(tokio::spawn(async move {
            let end = tokio::time::Instant::now() + window;
            let mut seqs = Vec::new();
            while let Ok(Some(Ok(message))) = tokio::time::timeout_at(end, ws.next()).await {
                if let Message::Binary(data) = message {
                    let (header, _) =
                        octaneweb_octane::FrameHeader::parse(&data).expect("valid header");
                    seqs.push(header.seq);
                }
            }
            (seqs, ws)
        }));
    }
    let mut counts = Vec::new();
    let mut keep = Vec::new();
    for reader in readers {
        let (seqs, ws) = reader.await.expect("reader");
        assert!(seqs.windows(2).all(|w| w[1] > w[0]), "in order");
        counts.push(seqs.len() as u64);
        keep.push(ws);
    }
    let published = gateway.hub.status().metrics.frames_published - published_before;
    let (slow_got, _slow) = slow_task.await.expect("slow reader");
    assert!(
        published >= 20,
        "the upstream kept rendering: {published} frames in 3 s"
    );
    let min = counts.iter().copied().min().unwrap_or(0);
    // Every fast viewer kept (nearly) the full rate despite the slow one.
    assert!(
        min * 10 >= published * 8,
        "slowest fast viewer got {min} of {published} frames: {counts:?}"
    );
    assert!(
        slow_got <= 4,
        "the slow viewer read at its own pace ({slow_got})"
    );
    let status = gateway.hub.status();
    assert_eq!(status.viewers, 50);
    // One encoding shared by all 50 viewers: one encode per frame, one cache entry.
    assert!(status.cached_encodings <= 1, "{}", status.cached_encodings);
    let encodes = status.metrics.encodes["raw"];
    assert!(
        encodes <= status.metrics.frames_published + 1,
        "{encodes} encodes for {} frames",
        status.metrics.frames_published
    );
    let rss_after = rss_bytes();
    eprintln!("RSS {rss_before} -> {rss_after} bytes; {published} frames published; fast viewers got {counts:?}");
    assert!(
        rss_after < rss_before + 64 * 1024 * 1024,
        "memory stays flat: {rss_before} -> {rss_after}"
    );
    drop(keep);
}
