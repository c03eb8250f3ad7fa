//! The renderer's observable behaviour: geometry, energy, accumulation, determinism.

use std::sync::Arc;

use octaneweb_pathtracer::{encode_png, Camera, Ray, RenderError, Renderer, Scene, Vec3};

fn small_renderer(camera: Option<Camera>) -> Renderer {
    let scene = Arc::new(Scene::builtin());
    let camera = camera.unwrap_or_else(|| scene.default_camera());
    Renderer::new(scene, camera, 64, 32).expect("valid renderer")
}

#[test]
fn a_ray_hits_the_red_sphere_at_the_right_distance() {
    let scene = Scene::builtin();
    // The red sphere: centre (-1.9, 0.8, 0.2), radius 0.8. A ray along -z through its centre
    // from z = 10 enters it at z = 1.0, i.e. t = 9.
    let ray = Ray::new(Vec3::new(-1.9, 0.8, 10.0), Vec3::new(0.0, 0.0, -1.0));
    let hit = scene.intersect(&ray, 1e-4, f32::INFINITY).expect("hit");
    assert!((hit.t - 9.0).abs() < 1e-3, "t = {}", hit.t);
    assert_eq!(scene.objects()[hit.object].name, "Red sphere");
    assert!((hit.normal.z - 1.0).abs() < 1e-3, "normal {:?}", hit.normal);
    assert!((hit.point.z - 1.0).abs() < 1e-3, "point {:?}", hit.point);
    // The same ray cut short before the sphere hits nothing.
    assert!(scene.intersect(&ray, 1e-4, 8.5).is_none());
}

#[test]
fn a_ray_into_the_sky_misses_everything() {
    let scene = Scene::builtin();
    let ray = Ray::new(Vec3::new(0.0, 5.0, 0.0), Vec3::new(0.0, 1.0, 0.0));
    assert!(scene.intersect(&ray, 1e-4, f32::INFINITY).is_none());
}

#[test]
fn energy_stays_bounded_and_finite() {
    let mut renderer = small_renderer(None);
    for _ in 0..8 {
        renderer.render_sample();
    }
    let pixels = renderer.film().to_linear_f32();
    assert_eq!(pixels.len(), 64 * 32 * 4);
    let mut sum = 0.0f64;
    for (i, value) in pixels.iter().enumerate() {
        assert!(
            value.is_finite() && *value >= 0.0,
            "pixel value {i} = {value}"
        );
        if i % 4 != 3 {
            sum += f64::from(*value);
        }
    }
    let mean = sum / (64.0 * 32.0 * 3.0);
    assert!(mean > 0.01, "the image is lit (mean radiance {mean})");
    assert!(mean < 50.0, "mean radiance {mean} is implausibly high");
}

#[test]
fn an_image_of_the_scene_is_not_uniform() {
    let mut renderer = small_renderer(None);
    for _ in 0..4 {
        renderer.render_sample();
    }
    let rgba = renderer.film().to_srgb8();
    assert_eq!(rgba.len(), 64 * 32 * 4);
    let luma: Vec<f64> = rgba
        .chunks_exact(4)
        .map(|p| 0.2126 * f64::from(p[0]) + 0.7152 * f64::from(p[1]) + 0.0722 * f64::from(p[2]))
        .collect();
    let mean = luma.iter().sum::<f64>() / luma.len() as f64;
    let variance = luma.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / luma.len() as f64;
    assert!(
        variance > 100.0,
        "luma variance {variance} (objects, shadows and sky differ)"
    );
    assert!(rgba.chunks_exact(4).all(|p| p[3] == 255), "opaque alpha");
}

#[test]
fn accumulation_grows_by_one_and_resets() {
    let mut renderer = small_renderer(None);
    assert_eq!(renderer.film().samples_per_pixel(), 0);
    renderer.render_sample();
    renderer.render_sample();
    assert_eq!(renderer.film().samples_per_pixel(), 2);
    renderer.reset();
    assert_eq!(renderer.film().samples_per_pixel(), 0);
    renderer.render_sample();
    let mut camera = renderer.camera();
    camera.position += Vec3::new(0.5, 0.0, 0.0);
    renderer.set_camera(camera).expect("valid camera");
    assert_eq!(
        renderer.film().samples_per_pixel(),
        0,
        "a camera change restarts"
    );
    assert_eq!(renderer.camera(), camera);
}

#[test]
fn rendering_is_deterministic_and_depends_on_the_camera() {
    let mut a = small_renderer(None);
    let mut b = small_renderer(None);
    for _ in 0..2 {
        a.render_sample();
        b.render_sample();
    }
    assert_eq!(a.film().to_srgb8(), b.film().to_srgb8());

    let mut moved = a.camera();
    moved.position = Vec3::new(-4.0, 1.5, 5.0);
    let mut c = small_renderer(Some(moved));
    c.render_sample();
    c.render_sample();
    assert_ne!(a.film().to_srgb8(), c.film().to_srgb8());
}

#[test]
fn invalid_cameras_and_sizes_are_rejected() {
    let scene = Arc::new(Scene::builtin());
    let good = scene.default_camera();
    for bad in [
        Camera {
            target: good.position,
            ..good
        },
        Camera {
            fov_degrees: 0.0,
            ..good
        },
        Camera {
            fov_degrees: 180.0,
            ..good
        },
        Camera {
            position: Vec3::new(f32::NAN, 0.0, 0.0),
            ..good
        },
        Camera {
            up: (good.target - good.position),
            ..good
        },
    ] {
        assert!(!bad.is_valid(), "{bad:?}");
        assert!(matches!(
            Renderer::new(Arc::clone(&scene), bad, 8, 8),
            Err(RenderError::InvalidCamera(_))
        ));
    }
    assert!(matches!(
        Renderer::new(Arc::clone(&scene), good, 0, 8),
        Err(RenderError::InvalidSize { .. })
    ));
    assert!(matches!(
        Renderer::new(Arc::clone(&scene), good, 8, 100_000),
        Err(RenderError::InvalidSize { .. })
    ));
    let mut renderer = Renderer::new(scene, good, 8, 8).expect("valid");
    let before = renderer.camera();
    assert!(renderer
        .set_camera(Camera {
            fov_degrees: -1.0,
            ..good
        })
        .is_err());
    assert_eq!(
        renderer.camera(),
        before,
        "a refused camera changes nothing"
    );
}

#[test]
fn png_encoding_round_trips() {
    let mut renderer = small_renderer(None);
    renderer.render_sample();
    let rgba = renderer.film().to_srgb8();
    let png = encode_png(64, 32, &rgba).expect("encode");
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().expect("png header");
    let mut decoded = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut decoded).expect("png frame");
    assert_eq!((info.width, info.height), (64, 32));
    assert_eq!(&decoded[..info.buffer_size()], &rgba[..]);
    assert!(
        encode_png(64, 32, &rgba[..100]).is_err(),
        "short buffers are refused"
    );
}
