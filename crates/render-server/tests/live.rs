//! Progressive rendering over the wire: callbacks in both generations, render control,
//! camera changes, several consumers.

mod common;

use std::time::Duration;

use common::*;
use octaneweb_proto::gen1::octaneapi as gen1;
use octaneweb_proto::livelinkapi::camera_state::{FovSet, PosSet, TargetSet, UpSet};
use octaneweb_proto::livelinkapi::{CameraState, Empty, Vec3};
use octaneweb_proto::octaneapi::api_render_engine::{
    ContinueRenderingRequest, GrabRenderResultRequest, PauseRenderingRequest,
    RestartRenderingRequest, SetOnNewImageCallbackRequest, SetRenderPriorityRequest,
    StopRenderingRequest,
};
use octaneweb_proto::octaneapi::{
    ImageType, NamedColorSpace, PremultipliedAlphaType, RenderPassId, SubSampleMode,
};
use octaneweb_render_server::{CallbackGeneration, ImageFormat, RenderServerConfig};
use tonic::Code;

fn vec3(x: f32, y: f32, z: f32) -> Vec3 {
    Vec3 { x, y, z }
}

#[tokio::test]
async fn gen2_notifications_then_grab_show_growing_samples() {
    let server = TestServer::start(test_config()).await;
    let mut engine = server.render_engine();
    let first_id = register(&mut engine, 42).await;
    assert_ne!(first_id, 0, "a registration gets a non-zero id");
    let mut stream = server.callbacks_gen2().await;

    let mut seen_spp = Vec::new();
    within(async {
        while seen_spp.len() < 3 {
            let user_data = next_notification(&mut stream).await;
            assert_eq!(
                user_data, 42,
                "notifications carry the registered user data"
            );
            let image = grab(&mut engine).await;
            let spp = image.tonemapped_samples_per_pixel;
            if seen_spp.last().is_none_or(|&last| spp > last) {
                seen_spp.push(spp);
            }
        }
    })
    .await;
    assert!(seen_spp.windows(2).all(|pair| pair[1] > pair[0]));

    // Every field of the image tells the truth.
    let image = grab(&mut engine).await;
    assert_eq!(image.r#type, ImageType::LdrRgba as i32);
    assert_eq!(image.color_space, NamedColorSpace::Srgb as i32);
    assert!(!image.is_linear);
    let size = image.size.expect("size");
    assert_eq!((size.x, size.y), (128, 64));
    assert_eq!(image.pitch, 128, "pitch is in pixels");
    let buffer = image.buffer.as_ref().expect("buffer");
    assert_eq!(buffer.data.len(), 128 * 64 * 4);
    assert_eq!(buffer.size as usize, buffer.data.len());
    assert!(
        buffer.data.chunks_exact(4).all(|px| px[3] == 255),
        "opaque alpha"
    );
    assert_eq!(image.render_pass_id, RenderPassId::RenderPassBeauty as i32);
    assert!(image.tonemapped_samples_per_pixel >= 1.0);
    assert_eq!(
        image.tonemapped_samples_per_pixel,
        image.calculated_samples_per_pixel
    );
    assert_eq!(
        image.region_samples_per_pixel,
        image.calculated_samples_per_pixel
    );
    assert_eq!(image.max_samples_per_pixel, 65_536.0);
    assert!(image.render_time > 0.0);
    assert!(image.samples_per_second > 0.0);
    assert!(change_level(&image) >= 1);
    assert_eq!(image.sub_sampling, SubSampleMode::SubsamplemodeNone as i32);
    assert!(!image.has_alpha);
    assert_eq!(
        image.premultiplied_alpha_type,
        PremultipliedAlphaType::None as i32
    );

    // A new registration gets a fresh id; unsetting answers 0.
    let second_id = register(&mut engine, 43).await;
    assert_ne!(second_id, first_id);
    let unset = engine
        .set_on_new_image_callback(SetOnNewImageCallbackRequest {
            callback: None,
            user_data: 99,
        })
        .await
        .expect("unset")
        .into_inner();
    assert_eq!(unset.callback_id, 0);
    // After unsetting, notifications continue with user data 0.
    let user_data = within(async {
        loop {
            let user_data = next_notification(&mut stream).await;
            if user_data != 43 && user_data != 42 {
                return user_data;
            }
        }
    })
    .await;
    assert_eq!(user_data, 0);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn gen1_streams_images_inline_with_growing_samples() {
    use gen1::stream_callback_request::Payload;
    let server = TestServer::start(RenderServerConfig {
        callback_generation: CallbackGeneration::Gen1,
        ..test_config()
    })
    .await;
    let mut engine = server.render_engine();
    let callback_id = register(&mut engine, 7).await;
    let mut stream = server.callbacks_gen1().await;

    let mut last_spp = 0.0;
    let mut increases = 0;
    within(async {
        while increases < 3 {
            let message = stream.message().await.expect("healthy").expect("open");
            let Some(Payload::NewImage(new_image)) = message.payload else {
                continue;
            };
            assert_eq!(new_image.user_data, 7);
            assert_eq!(new_image.callback_id as u32, callback_id);
            assert_eq!(new_image.callback_source, "octaneweb-test");
            let images = new_image.render_images.expect("images inline");
            let image = images.data.first().expect("one image");
            assert_eq!(image.r#type, ImageType::LdrRgba as i32);
            let size = image.size.expect("size");
            assert_eq!((size.x, size.y, image.pitch), (128, 64, 128));
            let buffer = image.buffer.as_ref().expect("buffer");
            assert_eq!(buffer.data.len(), 128 * 64 * 4);
            assert_eq!(buffer.size as usize, buffer.data.len());
            if image.tonemapped_samples_per_pixel > last_spp {
                last_spp = image.tonemapped_samples_per_pixel;
                increases += 1;
            }
        }
    })
    .await;
    assert!(last_spp >= 3.0);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn camera_change_resets_accumulation_and_changes_the_image() {
    // Each accumulation ends at FINISHED samples per pixel, so "fewer samples after the
    // change" does not depend on how fast this machine renders.
    const FINISHED: f32 = 48.0;
    let server = TestServer::start(RenderServerConfig {
        max_samples_per_pixel: Some(FINISHED as u32),
        ..test_config()
    })
    .await;
    let mut engine = server.render_engine();
    let mut livelink = server.livelink();
    let mut stream = server.callbacks_gen2().await;

    let before = wait_for_image(&mut stream, &mut engine, |image| {
        image.tonemapped_samples_per_pixel >= FINISHED
    })
    .await;
    let level_before = change_level(&before);

    // Look at the scene from the side.
    livelink
        .set_camera(CameraState {
            pos_set: Some(PosSet::Position(vec3(7.0, 3.0, 1.0))),
            ..CameraState::default()
        })
        .await
        .expect("SetCamera");
    // Until the new camera has a frame, the old frame reports pending updates.
    let stale = grab(&mut engine).await;
    if change_level(&stale) == level_before {
        assert!(
            stale.has_pending_updates,
            "old frame announces pending updates"
        );
    }

    let after = wait_for_image(&mut stream, &mut engine, |image| {
        change_level(image) > level_before
    })
    .await;
    assert!(
        after.tonemapped_samples_per_pixel < before.tonemapped_samples_per_pixel,
        "accumulation restarted: {} then {}",
        before.tonemapped_samples_per_pixel,
        after.tonemapped_samples_per_pixel
    );
    assert!(!after.has_pending_updates);
    assert_ne!(
        pixels(&before),
        pixels(&after),
        "the image shows the new view"
    );

    // Restarting drops accumulation too and bumps the change level again.
    let grown = wait_for_image(&mut stream, &mut engine, |image| {
        change_level(image) == change_level(&after)
            && image.tonemapped_samples_per_pixel >= FINISHED
    })
    .await;
    engine
        .restart_rendering(RestartRenderingRequest {})
        .await
        .expect("restart");
    let restarted = wait_for_image(&mut stream, &mut engine, |image| {
        change_level(image) > change_level(&grown)
    })
    .await;
    assert!(restarted.tonemapped_samples_per_pixel < grown.tonemapped_samples_per_pixel);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn set_camera_is_a_partial_update_and_rejects_invalid_cameras() {
    let server = TestServer::start(test_config()).await;
    let mut livelink = server.livelink();
    let original = livelink
        .get_camera(Empty {})
        .await
        .expect("GetCamera")
        .into_inner();
    assert!(original.pos_set.is_some() && original.target_set.is_some());
    assert!(original.up_set.is_some() && original.fov_set.is_some());

    livelink
        .set_camera(CameraState {
            fov_set: Some(FovSet::Fov(55.0)),
            ..CameraState::default()
        })
        .await
        .expect("SetCamera fov only");
    let updated = livelink
        .get_camera(Empty {})
        .await
        .expect("GetCamera")
        .into_inner();
    assert_eq!(updated.fov_set, Some(FovSet::Fov(55.0)));
    assert_eq!(updated.pos_set, original.pos_set, "position kept");
    assert_eq!(updated.target_set, original.target_set, "target kept");
    assert_eq!(updated.up_set, original.up_set, "up kept");

    let Some(PosSet::Position(position)) = original.pos_set else {
        panic!("position set");
    };
    let invalid = [
        (
            CameraState {
                fov_set: Some(FovSet::Fov(0.0)),
                ..CameraState::default()
            },
            "fov",
        ),
        (
            CameraState {
                fov_set: Some(FovSet::Fov(f32::NAN)),
                ..CameraState::default()
            },
            "fov",
        ),
        (
            CameraState {
                target_set: Some(TargetSet::Target(position)),
                ..CameraState::default()
            },
            "must differ",
        ),
        (
            CameraState {
                up_set: Some(UpSet::Up(vec3(0.0, 0.0, 0.0))),
                ..CameraState::default()
            },
            "up",
        ),
        (
            CameraState {
                pos_set: Some(PosSet::Position(vec3(f32::INFINITY, 0.0, 0.0))),
                ..CameraState::default()
            },
            "finite",
        ),
        (
            // Looking straight down the up vector.
            CameraState {
                pos_set: Some(PosSet::Position(vec3(0.0, 10.0, 0.0))),
                target_set: Some(TargetSet::Target(vec3(0.0, 0.0, 0.0))),
                up_set: Some(UpSet::Up(vec3(0.0, 1.0, 0.0))),
                ..CameraState::default()
            },
            "parallel",
        ),
    ];
    for (state, reason) in invalid {
        let status = livelink
            .set_camera(state)
            .await
            .expect_err("invalid camera is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{state:?}");
        assert!(
            status.message().contains(reason),
            "message {:?} names the reason {reason:?}",
            status.message()
        );
    }
    let unchanged = livelink
        .get_camera(Empty {})
        .await
        .expect("GetCamera")
        .into_inner();
    assert_eq!(unchanged, updated, "refused updates change nothing");
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn stream_camera_applies_each_update_and_replies_once() {
    let server = TestServer::start(test_config()).await;
    let mut livelink = server.livelink();
    let updates: Vec<CameraState> = (0..5)
        .map(|i| CameraState {
            pos_set: Some(PosSet::Position(vec3(i as f32, 2.0, 8.0))),
            ..CameraState::default()
        })
        .collect();
    let status = livelink
        .stream_camera(tokio_stream::iter(updates))
        .await
        .expect("StreamCamera")
        .into_inner();
    assert_eq!(status.message, "applied 5 camera updates");
    let camera = livelink
        .get_camera(Empty {})
        .await
        .expect("GetCamera")
        .into_inner();
    assert_eq!(camera.pos_set, Some(PosSet::Position(vec3(4.0, 2.0, 8.0))));

    // An invalid update in the middle ends the call with INVALID_ARGUMENT naming it; the
    // updates before it stay applied.
    let updates = vec![
        CameraState {
            fov_set: Some(FovSet::Fov(30.0)),
            ..CameraState::default()
        },
        CameraState {
            fov_set: Some(FovSet::Fov(-1.0)),
            ..CameraState::default()
        },
    ];
    let status = livelink
        .stream_camera(tokio_stream::iter(updates))
        .await
        .expect_err("invalid update refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("update 2"),
        "{}",
        status.message()
    );
    let camera = livelink
        .get_camera(Empty {})
        .await
        .expect("GetCamera")
        .into_inner();
    assert_eq!(camera.fov_set, Some(FovSet::Fov(30.0)));
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn pause_stops_refinement_and_continue_resumes_it() {
    let server = TestServer::start(test_config()).await;
    let mut engine = server.render_engine();
    let mut stream = server.callbacks_gen2().await;
    wait_for_image(&mut stream, &mut engine, |image| {
        image.tonemapped_samples_per_pixel >= 2.0
    })
    .await;

    engine
        .pause_rendering(PauseRenderingRequest {})
        .await
        .expect("pause");
    // The sample in flight when pausing may still be published; after that, nothing grows.
    let settle = Duration::from_millis(400);
    let paused_spp = loop {
        let spp = grab(&mut engine).await.tonemapped_samples_per_pixel;
        tokio::time::sleep(settle).await;
        let again = grab(&mut engine).await.tonemapped_samples_per_pixel;
        if again == spp {
            break spp;
        }
    };
    tokio::time::sleep(settle).await;
    assert_eq!(
        grab(&mut engine).await.tonemapped_samples_per_pixel,
        paused_spp,
        "no samples are added while paused"
    );

    engine
        .continue_rendering(ContinueRenderingRequest {})
        .await
        .expect("continue");
    let resumed = wait_for_image(&mut stream, &mut engine, |image| {
        image.tonemapped_samples_per_pixel > paused_spp
    })
    .await;
    assert!(resumed.tonemapped_samples_per_pixel > paused_spp);

    // Stop ends the render; continue after a stop starts a fresh one.
    engine
        .stop_rendering(StopRenderingRequest {})
        .await
        .expect("stop");
    let level = change_level(&grab(&mut engine).await);
    engine
        .continue_rendering(ContinueRenderingRequest {})
        .await
        .expect("continue after stop");
    wait_for_image(&mut stream, &mut engine, |image| {
        change_level(image) > level
    })
    .await;
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn render_priority_is_accepted_and_unknown_values_are_refused() {
    let server = TestServer::start(test_config()).await;
    let mut engine = server.render_engine();
    let mut stream = server.callbacks_gen2().await;
    engine
        .set_render_priority(SetRenderPriorityRequest { priority: 0 })
        .await
        .expect("PRIORITY_LOW");
    // Low priority still renders.
    let first = wait_for_image(&mut stream, &mut engine, |_| true).await;
    wait_for_image(&mut stream, &mut engine, |image| {
        image.tonemapped_samples_per_pixel > first.tonemapped_samples_per_pixel
    })
    .await;
    engine
        .set_render_priority(SetRenderPriorityRequest { priority: 2 })
        .await
        .expect("PRIORITY_HIGH");
    let status = engine
        .set_render_priority(SetRenderPriorityRequest { priority: 9 })
        .await
        .expect_err("unknown priority");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains('9'), "{}", status.message());
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn max_samples_per_pixel_finishes_the_render() {
    let server = TestServer::start(RenderServerConfig {
        max_samples_per_pixel: Some(3),
        ..test_config()
    })
    .await;
    let mut engine = server.render_engine();
    let mut stream = server.callbacks_gen2().await;
    let done = wait_for_image(&mut stream, &mut engine, |image| {
        image.tonemapped_samples_per_pixel >= 3.0
    })
    .await;
    assert_eq!(done.tonemapped_samples_per_pixel, 3.0);
    assert_eq!(done.max_samples_per_pixel, 3.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(grab(&mut engine).await.tonemapped_samples_per_pixel, 3.0);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn hdr_mode_serves_linear_float_images() {
    let server = TestServer::start(RenderServerConfig {
        image_format: ImageFormat::Hdr,
        ..test_config()
    })
    .await;
    let mut engine = server.render_engine();
    let mut stream = server.callbacks_gen2().await;
    let image = wait_for_image(&mut stream, &mut engine, |_| true).await;
    assert_eq!(image.r#type, ImageType::HdrRgba as i32);
    assert_eq!(image.color_space, NamedColorSpace::LinearSrgb as i32);
    assert!(image.is_linear);
    assert_eq!(image.pitch, 128);
    let data = pixels(&image);
    assert_eq!(data.len(), 128 * 64 * 16);
    let floats: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert!(floats.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(floats.chunks_exact(4).all(|px| px[3] == 1.0), "alpha is 1");
    assert!(floats.iter().any(|v| *v > 0.0), "not a black image");
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn slow_consumer_does_not_hold_back_fast_ones() {
    use octaneweb_proto::octaneapi::stream_callback_request::Payload;
    use octaneweb_proto::octaneapi::StreamCallbackRequest;
    let server = TestServer::start(test_config()).await;
    let fast_streams = [server.callbacks_gen2().await, server.callbacks_gen2().await];
    let mut slow = server.callbacks_gen2().await;
    let (slow_done, slow_done_seen) = tokio::sync::watch::channel(false);

    let fast_readers: Vec<_> = fast_streams
        .into_iter()
        .map(|mut stream: tonic::Streaming<StreamCallbackRequest>| {
            let mut done = slow_done_seen.clone();
            tokio::spawn(async move {
                let mut images = 0_u32;
                loop {
                    tokio::select! {
                        _ = done.wait_for(|done| *done) => return images,
                        message = within(stream.message()) => {
                            let message = message.expect("healthy").expect("open");
                            if matches!(message.payload, Some(Payload::NewImage(_))) {
                                images += 1;
                            }
                        }
                    }
                }
            })
        })
        .collect();

    // The slow consumer sleeps between reads; it must still get its images.
    let mut slow_images = 0;
    while slow_images < 4 {
        let message = within(slow.message())
            .await
            .expect("healthy")
            .expect("open");
        if matches!(message.payload, Some(Payload::NewImage(_))) {
            slow_images += 1;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    slow_done.send_replace(true);
    for reader in fast_readers {
        let fast_images = within(reader).await.expect("fast reader joins");
        assert!(
            fast_images >= 8,
            "a fast consumer got only {fast_images} images while the slow one read {slow_images}"
        );
    }
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn grab_answers_without_an_image_and_shutdown_ends_open_streams() {
    let server = TestServer::start(test_config()).await;
    let mut engine = server.render_engine();
    let response = engine
        .grab_render_result(GrabRenderResultRequest {})
        .await
        .expect("grab")
        .into_inner();
    // Either nothing yet (result false, no images) or a real image.
    if response.result {
        assert_eq!(response.render_images.map(|i| i.data.len()), Some(1));
    } else {
        assert!(response.render_images.is_none_or(|i| i.data.is_empty()));
    }
    let mut stream = server.callbacks_gen2().await;
    next_notification(&mut stream).await;
    server
        .shutdown()
        .await
        .expect("serve returns despite an open stream");
    // The stream ends (cleanly or with an error), it does not hang.
    let end = within(async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await;
    let _ = end;
}
