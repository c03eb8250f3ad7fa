//! The WebSocket frame stream against the reference render server, over real sockets.

mod common;

use std::collections::HashSet;

use common::*;
use octaneweb_octane::encode::FLAG_SOURCE_HDR;
use octaneweb_octane::EncodingKind;
use octaneweb_render_server::{CallbackGeneration, ImageFormat};
use tokio_tungstenite::tungstenite::Message;

/// Frames arrive in order with growing samples per pixel, at the configured size.
async fn frames_in_order(generation: CallbackGeneration, format: ImageFormat) {
    let server = Server::start(server_config(generation, format)).await;
    let gateway = Gateway::start(server.addr, generation, hub_config()).await;
    let mut ws = gateway.ws().await;
    let hello = next_json_of(&mut ws, "hello").await;
    assert_eq!(hello["encoding"], "raw");
    assert_eq!(hello["header_bytes"], 80);
    assert_eq!(
        hello["generation"],
        match generation {
            CallbackGeneration::Gen1 => 1,
            CallbackGeneration::Gen2 => 2,
        }
    );

    let mut frames = Vec::new();
    while frames.len() < 6 {
        frames.push(next_frame(&mut ws).await);
    }
    for pair in frames.windows(2) {
        let (a, b) = (&pair[0].0, &pair[1].0);
        assert!(b.seq > a.seq, "sequence grows: {} then {}", a.seq, b.seq);
        assert!(
            b.samples_per_pixel >= a.samples_per_pixel,
            "spp does not shrink: {} then {}",
            a.samples_per_pixel,
            b.samples_per_pixel
        );
    }
    let (first, last) = (&frames[0].0, &frames[frames.len() - 1].0);
    assert!(last.samples_per_pixel > first.samples_per_pixel);
    for (header, payload) in &frames {
        assert_eq!((header.width, header.height), (64, 32));
        assert_eq!(header.encoding, EncodingKind::Raw);
        assert_eq!(payload.len(), 64 * 32 * 4);
        let hdr = header.flags & FLAG_SOURCE_HDR != 0;
        assert_eq!(hdr, format == ImageFormat::Hdr);
        assert!(header.arrived_unix_micros > 1_600_000_000_000_000);
    }
    // The image is not blank: the reference scene has visible content.
    let (_, payload) = &frames[frames.len() - 1];
    assert!(payload
        .chunks_exact(4)
        .any(|p| p[0] > 16 || p[1] > 16 || p[2] > 16));
    // Duplicates are never shown (our server sends none; sequence numbers have no repeats).
    let seqs: HashSet<u64> = frames.iter().map(|(h, _)| h.seq).collect();
    assert_eq!(seqs.len(), frames.len());
    let status = gateway.hub.status();
    assert!(status.registered && status.connected);
    assert!(status.metrics.frames_published >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen1_ldr_frames_arrive_in_order() {
    frames_in_order(CallbackGeneration::Gen1, ImageFormat::Ldr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen1_hdr_frames_arrive_in_order() {
    frames_in_order(CallbackGeneration::Gen1, ImageFormat::Hdr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen2_ldr_frames_arrive_in_order() {
    frames_in_order(CallbackGeneration::Gen2, ImageFormat::Ldr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen2_hdr_frames_arrive_in_order() {
    frames_in_order(CallbackGeneration::Gen2, ImageFormat::Hdr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encodings_follow_the_viewers_config() {
    let server = Server::start(server_config(CallbackGeneration::Gen2, ImageFormat::Hdr)).await;
    let gateway = Gateway::start(server.addr, CallbackGeneration::Gen2, hub_config()).await;
    let mut ws = gateway.ws().await;
    next_json_of(&mut ws, "hello").await;

    send_text(&mut ws, r#"{"type":"config","encoding":"png"}"#).await;
    let ack = next_json_of(&mut ws, "config").await;
    assert_eq!(ack["encoding"], "png");
    let (header, payload) = loop {
        let (header, payload) = next_frame(&mut ws).await;
        if header.encoding == EncodingKind::Png {
            break (header, payload);
        }
    };
    assert_eq!(&payload[..8], b"\x89PNG\r\n\x1a\n");
    let mut reader = png::Decoder::new(std::io::Cursor::new(&payload))
        .read_info()
        .expect("valid PNG");
    assert_eq!(
        (reader.info().width, reader.info().height),
        (header.width, header.height)
    );
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    reader.next_frame(&mut pixels).expect("PNG decodes");

    send_text(
        &mut ws,
        r#"{"type":"config","encoding":"jpeg","quality":40,"exposure":1.0,"gamma":2.0}"#,
    )
    .await;
    let ack = next_json_of(&mut ws, "config").await;
    assert_eq!(ack["quality"], 40);
    assert_eq!(ack["exposure"], 1.0);
    loop {
        let (header, payload) = next_frame(&mut ws).await;
        if header.encoding == EncodingKind::Jpeg {
            assert_eq!(&payload[..3], &[0xFF, 0xD8, 0xFF]);
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_control_messages_get_an_error_and_the_stream_continues() {
    let server = Server::start(server_config(CallbackGeneration::Gen2, ImageFormat::Ldr)).await;
    let gateway = Gateway::start(server.addr, CallbackGeneration::Gen2, hub_config()).await;
    let mut ws = gateway.ws().await;
    next_json_of(&mut ws, "hello").await;
    let (before, _) = next_frame(&mut ws).await;

    let garbage = [
        ("this is not json", "not JSON"),
        (r#"{"type":"config","quality":1000}"#, "quality"),
        (r#"{"type":"launch"}"#, "unknown control message type"),
        (r#"{"no":"type"}"#, "\"type\""),
    ];
    for (message, expected) in garbage {
        send_text(&mut ws, message).await;
        let error = next_json_of(&mut ws, "error").await;
        let text = error["message"].as_str().expect("error message is text");
        assert!(text.contains(expected), "{message:?} -> {text}");
    }
    futures::SinkExt::send(&mut ws, Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send binary");
    let error = next_json_of(&mut ws, "error").await;
    assert!(error["message"]
        .as_str()
        .unwrap_or_default()
        .contains("binary"));

    // Frames keep coming after the errors.
    let (after, _) = next_frame(&mut ws).await;
    assert!(after.seq > before.seq);
    let (later, _) = next_frame(&mut ws).await;
    assert!(later.seq > after.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_frames_and_resume_restarts_them() {
    let server = Server::start(server_config(CallbackGeneration::Gen2, ImageFormat::Ldr)).await;
    let gateway = Gateway::start(server.addr, CallbackGeneration::Gen2, hub_config()).await;
    let mut ws = gateway.ws().await;
    next_json_of(&mut ws, "hello").await;
    next_frame(&mut ws).await;
    send_text(&mut ws, r#"{"type":"pause"}"#).await;
    // Frames sent before the pause took effect may still be in flight; drain up to the ack.
    next_json_of(&mut ws, "paused").await;
    let published = gateway.hub.status().metrics.frames_published;
    wait_until("more frames published while paused", || {
        gateway.hub.status().metrics.frames_published >= published + 3
    })
    .await;
    send_text(&mut ws, r#"{"type":"resume"}"#).await;
    // Nothing but text (events, the ack) may arrive before the resume ack.
    loop {
        match next_message(&mut ws).await {
            Message::Binary(_) => panic!("a frame arrived while paused"),
            Message::Text(text) if text.as_str().contains("\"resumed\"") => break,
            _ => {}
        }
    }
    let (header, _) = next_frame(&mut ws).await;
    assert!(header.seq > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_resume_without_reconnecting_after_the_upstream_restarts() {
    let config = server_config(CallbackGeneration::Gen2, ImageFormat::Ldr);
    let server = Server::start(config.clone()).await;
    let addr = server.addr;
    let gateway = Gateway::start(addr, CallbackGeneration::Gen2, hub_config()).await;
    let mut ws = gateway.ws().await;
    next_json_of(&mut ws, "hello").await;
    let (before, _) = next_frame(&mut ws).await;

    server.stop().await;
    let down = next_json_of(&mut ws, "upstream").await;
    assert_eq!(down["connected"], false);

    let _server = Server::restart_on(addr, config).await;
    let up = next_json_of(&mut ws, "upstream").await;
    assert_eq!(up["connected"], true);
    let (after, payload) = next_frame(&mut ws).await;
    assert!(after.seq > before.seq, "{} then {}", before.seq, after.seq);
    assert_eq!(payload.len(), 64 * 32 * 4);
    let (later, _) = next_frame(&mut ws).await;
    assert!(later.seq > after.seq);
    let status = gateway.hub.status();
    assert!(status.metrics.subscriptions >= 2);
    assert!(status.metrics.subscription_failures >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_is_unset_when_the_last_viewer_leaves() {
    let server = Server::start(server_config(CallbackGeneration::Gen1, ImageFormat::Ldr)).await;
    let gateway = Gateway::start(server.addr, CallbackGeneration::Gen1, hub_config()).await;
    assert!(
        !gateway.hub.status().active,
        "nothing runs before a viewer comes"
    );
    let mut ws = gateway.ws().await;
    next_json_of(&mut ws, "hello").await;
    next_frame(&mut ws).await;
    assert!(gateway.hub.status().registered);
    drop(ws);
    wait_until("the subscription to close after the idle grace", || {
        let status = gateway.hub.status();
        !status.registered && !status.connected && status.viewers == 0
    })
    .await;
    // A new viewer starts it again: it sees the last frame at once, then new ones.
    let last_seq = gateway.hub.latest().map_or(0, |f| f.seq);
    let mut ws = gateway.ws().await;
    next_json_of(&mut ws, "hello").await;
    loop {
        let (header, _) = next_frame(&mut ws).await;
        if header.seq > last_seq {
            break;
        }
    }
    assert!(gateway.hub.status().metrics.subscriptions >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_call_deadline_does_not_cut_the_callback_stream() {
    let server = Server::start(server_config(CallbackGeneration::Gen2, ImageFormat::Ldr)).await;
    let upstream = octaneweb_gateway::upstream::UpstreamConfig {
        default_timeout: Some(std::time::Duration::from_millis(300)),
        ..octaneweb_gateway::upstream::UpstreamConfig::with_target(server.addr.to_string())
    };
    let gateway = Gateway::start_with(upstream, CallbackGeneration::Gen2, hub_config()).await;
    let mut ws = gateway.ws().await;
    next_json_of(&mut ws, "hello").await;
    let (first, _) = next_frame(&mut ws).await;
    // Well past the deadline, frames still come over the first subscription.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (later, _) = next_frame(&mut ws).await;
    assert!(later.seq > first.seq);
    let status = gateway.hub.status();
    assert_eq!(status.metrics.subscriptions, 1, "{:?}", status.last_error);
    assert_eq!(status.metrics.subscription_failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_message_over_the_limit_closes_with_1009_and_a_reason() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = Server::start(server_config(CallbackGeneration::Gen2, ImageFormat::Ldr)).await;
    let gateway = Gateway::start(server.addr, CallbackGeneration::Gen2, hub_config()).await;
    let (code, reason) = tokio::time::timeout(WAIT, async {
        let mut stream = tokio::net::TcpStream::connect(gateway.addr)
            .await
            .expect("connect");
        let handshake = format!(
            "GET /render/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            gateway.addr
        );
        stream.write_all(handshake.as_bytes()).await.expect("send");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.expect("handshake answer"));
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        // The head of a masked 17 KiB text message, one KiB over the limit. The server decides
        // on the announced length; sending no payload keeps the close from turning into a
        // reset (a socket closed with unread input is reset).
        let length: u16 = 17 * 1024;
        let [high, low] = length.to_be_bytes();
        stream
            .write_all(&[0x81, 0x80 | 126, high, low])
            .await
            .expect("send");
        // Skip the hello and any frames until the close frame.
        loop {
            let first = stream.read_u8().await.expect("frame header");
            let second = stream.read_u8().await.expect("frame header");
            let length = match second & 0x7f {
                126 => u64::from(stream.read_u16().await.expect("length")),
                127 => stream.read_u64().await.expect("length"),
                short => u64::from(short),
            };
            let mut payload = vec![0u8; usize::try_from(length).expect("length fits")];
            stream.read_exact(&mut payload).await.expect("payload");
            if first & 0x0f == 0x8 {
                assert!(payload.len() >= 2, "close frame without a code");
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                let reason = String::from_utf8(payload[2..].to_vec()).expect("UTF-8 reason");
                return (code, reason);
            }
        }
    })
    .await
    .expect("a close frame in time");
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("larger than 16 KiB"), "{reason}");
}
