//! Scene and render-setting changes: materials, sky, object offsets, lens, kernel, regions,
//! previews and cancellation.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use octaneweb_pathtracer::{
    Camera, MaterialKind, PixelRect, RenderSettings, Renderer, Scene, Vec3,
};

const W: u32 = 96;
const H: u32 = 48;

fn render(scene: Scene, settings: RenderSettings, samples: u32) -> Renderer {
    let camera = scene.default_camera();
    let mut renderer = Renderer::new(Arc::new(scene), camera, W, H).expect("renderer");
    renderer.set_settings(settings).expect("settings");
    for _ in 0..samples {
        renderer.render_sample();
    }
    renderer
}

/// The object under each pixel centre (None: sky), with the default camera.
fn object_map(scene: &Scene, camera: Camera) -> Vec<Option<usize>> {
    let mut map = Vec::new();
    for y in 0..H {
        for x in 0..W {
            let ray = camera.ray_through_pixel(x as f32 + 0.5, y as f32 + 0.5, W, H);
            map.push(scene.intersect(&ray, 1e-4, f32::INFINITY).map(|h| h.object));
        }
    }
    map
}

fn object_index(scene: &Scene, name: &str) -> usize {
    scene
        .objects()
        .iter()
        .position(|o| o.name == name)
        .expect("object exists")
}

/// Mean linear RGB over the pixels `select` accepts.
fn mean_rgb(pixels: &[f32], select: impl Fn(usize) -> bool) -> Vec3 {
    let (mut sum, mut n) = (Vec3::ZERO, 0.0f32);
    for (i, px) in pixels.chunks_exact(4).enumerate() {
        if select(i) {
            sum += Vec3::new(px[0], px[1], px[2]);
            n += 1.0;
        }
    }
    assert!(n > 0.0, "no pixel selected");
    sum / n
}

fn unchanged(scene: &Scene) -> (Vec<octaneweb_pathtracer::Material>, Vec<Vec3>) {
    (
        scene.materials().to_vec(),
        vec![Vec3::ZERO; scene.objects().len()],
    )
}

#[test]
fn an_albedo_change_recolours_its_object_and_not_the_sky() {
    let base = Scene::builtin();
    let red = object_index(&base, "Red sphere");
    let map = object_map(&base, base.default_camera());
    let (mut materials, offsets) = unchanged(&base);
    let material = base.objects()[red].material;
    materials[material].albedo = Vec3::new(0.05, 0.8, 0.05);
    let green = base
        .with_changes(&materials, base.environment(), &offsets)
        .expect("valid changes");

    let before = render(base.clone(), RenderSettings::default(), 4)
        .film()
        .to_linear_f32();
    let after = render(green, RenderSettings::default(), 4)
        .film()
        .to_linear_f32();
    let on_sphere = |i: usize| map[i] == Some(red);
    let old = mean_rgb(&before, on_sphere);
    let new = mean_rgb(&after, on_sphere);
    assert!(old.x > 2.0 * old.y, "red before: {old:?}");
    assert!(new.y > 2.0 * new.x, "green after: {new:?}");
    // Camera rays into the sky meet no surface: identical values.
    let sky: Vec<usize> = (0..map.len()).filter(|&i| map[i].is_none()).collect();
    assert!(!sky.is_empty());
    for i in sky {
        assert_eq!(
            before[i * 4..i * 4 + 4],
            after[i * 4..i * 4 + 4],
            "sky pixel {i}"
        );
    }
}

#[test]
fn an_emission_change_dims_the_light_and_its_surroundings() {
    let base = Scene::builtin();
    let glow = object_index(&base, "Glowing sphere");
    let map = object_map(&base, base.default_camera());
    let (mut materials, offsets) = unchanged(&base);
    let material = base.objects()[glow].material;
    assert_eq!(materials[material].kind, MaterialKind::Emissive);
    materials[material].emission = Vec3::splat(0.0);
    let dark = base
        .with_changes(&materials, base.environment(), &offsets)
        .expect("valid changes");
    let before = render(base.clone(), RenderSettings::default(), 4)
        .film()
        .to_linear_f32();
    let after = render(dark, RenderSettings::default(), 4)
        .film()
        .to_linear_f32();
    let on_light = |i: usize| map[i] == Some(glow);
    assert!(mean_rgb(&before, on_light).x > 1.0);
    // Pixels at the rim also see what is behind the sphere.
    assert!(mean_rgb(&after, on_light).x < 0.05 * mean_rgb(&before, on_light).x);
    // Light sampling follows: the whole image gets darker, not only the sphere.
    let elsewhere = |i: usize| map[i].is_some() && map[i] != Some(glow);
    let lit = mean_rgb(&before, elsewhere);
    let unlit = mean_rgb(&after, elsewhere);
    assert!(unlit.x < lit.x, "{unlit:?} vs {lit:?}");
}

#[test]
fn offsets_move_spheres_and_meshes() {
    let base = Scene::builtin();
    let red = object_index(&base, "Red sphere");
    let boxed = object_index(&base, "Blue box");
    let (materials, mut offsets) = unchanged(&base);
    offsets[red] = Vec3::new(0.0, 10.0, 0.0);
    offsets[boxed] = Vec3::new(0.0, 5.0, 0.0);
    let moved = base
        .with_changes(&materials, base.environment(), &offsets)
        .expect("valid changes");

    let through_red =
        octaneweb_pathtracer::Ray::new(Vec3::new(-1.9, 0.8, 10.0), Vec3::new(0.0, 0.0, -1.0));
    let hit = |scene: &Scene, ray| scene.intersect(&ray, 1e-4, f32::INFINITY).map(|h| h.object);
    assert_eq!(hit(&base, through_red), Some(red));
    assert_ne!(hit(&moved, through_red), Some(red));
    let above =
        octaneweb_pathtracer::Ray::new(Vec3::new(-1.9, 10.8, 10.0), Vec3::new(0.0, 0.0, -1.0));
    assert_eq!(
        hit(&moved, above),
        Some(red),
        "the sphere is 10 units higher"
    );

    // Straight down onto the box's centre: the floor now, and the box 5 units higher.
    let down_at =
        |y: f32| octaneweb_pathtracer::Ray::new(Vec3::new(2.7, y, -0.6), Vec3::new(0.0, -1.0, 0.0));
    assert_eq!(hit(&base, down_at(3.0)), Some(boxed));
    assert_ne!(hit(&moved, down_at(3.0)), Some(boxed));
    assert_eq!(hit(&moved, down_at(9.0)), Some(boxed));
    // The exported mesh moved with it.
    let lowest = |scene: &Scene| {
        scene.objects()[boxed]
            .positions
            .iter()
            .map(|p| p.y)
            .fold(f32::INFINITY, f32::min)
    };
    assert!((lowest(&moved) - lowest(&base) - 5.0).abs() < 1e-4);
}

#[test]
fn invalid_changes_are_refused_with_a_reason() {
    let base = Scene::builtin();
    let (materials, offsets) = unchanged(&base);
    let env = base.environment();
    let refused = |materials: &[octaneweb_pathtracer::Material],
                   env: &octaneweb_pathtracer::Environment,
                   offsets: &[Vec3]| {
        base.with_changes(materials, env, offsets)
            .expect_err("refused")
    };
    assert!(refused(&materials[1..], env, &offsets).contains("materials"));
    assert!(refused(&materials, env, &offsets[1..]).contains("offsets"));
    let mut bad = materials.clone();
    bad[1].albedo.x = 1.5;
    assert!(refused(&bad, env, &offsets).contains("albedo"));
    let mut bad = materials.clone();
    bad[2].roughness = -0.1;
    assert!(refused(&bad, env, &offsets).contains("roughness"));
    let mut bad = materials.clone();
    bad[3].emission.y = -1.0;
    assert!(refused(&bad, env, &offsets).contains("emission"));
    let mut bad = materials.clone();
    bad[0].albedo.z = f32::NAN;
    assert!(refused(&bad, env, &offsets).contains("albedo"));
    let mut bad_env = env.clone();
    bad_env.sun_direction = Vec3::ZERO;
    assert!(refused(&materials, &bad_env, &offsets).contains("sun direction"));
    let mut bad_env = env.clone();
    bad_env.zenith.x = f32::INFINITY;
    assert!(refused(&materials, &bad_env, &offsets).contains("zenith"));
    let mut bad_offsets = offsets.clone();
    bad_offsets[4].y = f32::NAN;
    assert!(refused(&materials, env, &bad_offsets).contains("offset"));
}

#[test]
fn an_environment_change_changes_the_sky() {
    let base = Scene::builtin();
    let map = object_map(&base, base.default_camera());
    let (materials, offsets) = unchanged(&base);
    let mut env = base.environment().clone();
    env.zenith = Vec3::new(0.5, 0.0, 0.0);
    env.horizon = Vec3::new(0.5, 0.0, 0.0);
    let red_sky = base
        .with_changes(&materials, &env, &offsets)
        .expect("valid");
    let pixels = render(red_sky, RenderSettings::default(), 1)
        .film()
        .to_linear_f32();
    let sky = mean_rgb(&pixels, |i| map[i].is_none());
    assert!(
        // Pixels at object rims see a little of the objects too.
        (sky.x - 0.5).abs() < 0.01 && sky.y < 0.01 && sky.z < 0.01,
        "{sky:?}"
    );
}

/// Sum of absolute differences between horizontal neighbours of the image averaged over 4x4
/// blocks (which averages the sampling noise away): large for sharp images.
fn edge_energy(pixels: &[f32]) -> f64 {
    const B: usize = 4;
    let (w, h) = (W as usize / B, H as usize / B);
    let mut small = vec![0.0f64; w * h * 3];
    for y in 0..H as usize {
        for x in 0..W as usize {
            for c in 0..3 {
                small[((y / B) * w + x / B) * 3 + c] +=
                    f64::from(pixels[(y * W as usize + x) * 4 + c].min(4.0));
            }
        }
    }
    let mut total = 0.0;
    for y in 0..h {
        for x in 1..w {
            for c in 0..3 {
                total += (small[(y * w + x) * 3 + c] - small[(y * w + x - 1) * 3 + c]).abs();
            }
        }
    }
    total
}

#[test]
fn an_open_aperture_blurs_and_a_closed_one_is_the_pinhole() {
    let pinhole = render(Scene::builtin(), RenderSettings::default(), 32);
    let closed = render(
        Scene::builtin(),
        RenderSettings {
            aperture: 0.0,
            focal_distance: 3.0,
            ..RenderSettings::default()
        },
        32,
    );
    assert_eq!(
        pinhole.film().to_linear_f32(),
        closed.film().to_linear_f32()
    );

    let open = render(
        Scene::builtin(),
        RenderSettings {
            aperture: 0.4,
            focal_distance: 1.0,
            ..RenderSettings::default()
        },
        32,
    );
    let sharp = edge_energy(&pinhole.film().to_linear_f32());
    let blurred = edge_energy(&open.film().to_linear_f32());
    assert!(blurred < 0.8 * sharp, "edge energy {blurred} vs {sharp}");
}

#[test]
fn path_depth_and_clamp_change_the_image() {
    let shallow = render(
        Scene::builtin(),
        RenderSettings {
            max_depth: 1,
            ..RenderSettings::default()
        },
        4,
    );
    let deep = render(
        Scene::builtin(),
        RenderSettings {
            max_depth: 8,
            ..RenderSettings::default()
        },
        4,
    );
    let a = shallow.film().to_linear_f32();
    let b = deep.film().to_linear_f32();
    assert_ne!(a, b);
    let mean = |p: &[f32]| mean_rgb(p, |_| true);
    assert!(mean(&a).y < mean(&b).y, "fewer bounces, less light");

    let unclamped = render(Scene::builtin(), RenderSettings::default(), 2);
    let clamped = render(
        Scene::builtin(),
        RenderSettings {
            clamp: 0.2,
            ..RenderSettings::default()
        },
        2,
    );
    let brightest = |p: &[f32]| {
        p.chunks_exact(4)
            .flat_map(|px| px[..3].to_vec())
            .fold(0.0f32, f32::max)
    };
    assert!(brightest(&unclamped.film().to_linear_f32()) > 0.5);
    assert!(brightest(&clamped.film().to_linear_f32()) <= 0.2 + 1e-6);
}

#[test]
fn invalid_settings_and_sizes_are_refused() {
    let mut renderer = render(Scene::builtin(), RenderSettings::default(), 1);
    for bad in [
        RenderSettings {
            aperture: -1.0,
            ..RenderSettings::default()
        },
        RenderSettings {
            focal_distance: 0.0,
            ..RenderSettings::default()
        },
        RenderSettings {
            max_depth: 0,
            ..RenderSettings::default()
        },
        RenderSettings {
            clamp: f32::NAN,
            ..RenderSettings::default()
        },
    ] {
        assert!(renderer.set_settings(bad).is_err(), "{bad:?}");
    }
    assert_eq!(renderer.film().samples_per_pixel(), 1, "nothing changed");
    assert!(renderer.resize(0, 10).is_err());
    assert!(renderer.resize(10, 9000).is_err());
    renderer.resize(20, 10).expect("valid size");
    assert_eq!(
        (renderer.film().width(), renderer.film().height()),
        (20, 10)
    );
    assert_eq!(renderer.film().samples_per_pixel(), 0);
    renderer.render_sample();
    assert_eq!(renderer.film().to_srgb8().len(), 20 * 10 * 4);
}

#[test]
fn a_region_refines_inside_and_keeps_the_rest() {
    let mut renderer = render(Scene::builtin(), RenderSettings::default(), 2);
    let before = renderer.film().to_linear_f32();
    let region = PixelRect {
        min: [10, 5],
        max: [40, 30],
    };
    for _ in 0..3 {
        assert!(renderer.render_sample_in(Some(region), None));
    }
    let after = renderer.film().to_linear_f32();
    let film = renderer.film();
    assert_eq!(film.samples_per_pixel(), 5);
    let mut inside_changed = 0;
    for y in 0..H {
        for x in 0..W {
            let i = (y * W + x) as usize * 4;
            let inside = (10..40).contains(&x) && (5..30).contains(&y);
            if inside {
                assert_eq!(film.pixel_samples(x, y), 5);
                inside_changed += usize::from(before[i..i + 4] != after[i..i + 4]);
            } else {
                assert_eq!(film.pixel_samples(x, y), 2);
                assert_eq!(
                    before[i..i + 4],
                    after[i..i + 4],
                    "pixel ({x}, {y}) outside"
                );
            }
        }
    }
    assert!(
        inside_changed > 30 * 25 / 2,
        "{inside_changed} pixels refined"
    );
    // A region outside the image adds nothing; the whole image refines again without one.
    assert!(renderer.render_sample_in(
        Some(PixelRect {
            min: [W, 0],
            max: [W + 5, 5]
        }),
        None
    ));
    assert_eq!(renderer.film().to_linear_f32(), after);
    renderer.render_sample();
    assert_eq!(renderer.film().pixel_samples(0, 0), 3);
    assert_eq!(renderer.film().pixel_samples(10, 5), 6);
}

#[test]
fn a_preview_fills_blocks_and_the_first_full_pass_replaces_it() {
    let mut renderer = render(Scene::builtin(), RenderSettings::default(), 0);
    for block in [2u32, 4] {
        renderer.render_preview(block);
        let film = renderer.film();
        assert_eq!((film.samples_per_pixel(), film.subsampled()), (0, block));
        let pixels = film.to_linear_f32();
        let b = block as usize;
        for y in 0..H as usize {
            for x in 0..W as usize {
                let corner = ((y / b * b) * W as usize + x / b * b) * 4;
                let i = (y * W as usize + x) * 4;
                assert_eq!(pixels[i..i + 4], pixels[corner..corner + 4], "({x}, {y})");
            }
        }
        assert!(
            pixels.iter().any(|&v| v > 0.0),
            "the preview shows something"
        );
    }
    renderer.render_sample();
    let fresh = render(Scene::builtin(), RenderSettings::default(), 1);
    assert_eq!(renderer.film().subsampled(), 1);
    assert_eq!(renderer.film().samples_per_pixel(), 1);
    assert_eq!(
        renderer.film().to_linear_f32(),
        fresh.film().to_linear_f32()
    );
}

#[test]
fn a_cancelled_pass_leaves_an_empty_film() {
    let mut renderer = render(Scene::builtin(), RenderSettings::default(), 2);
    let cancel = AtomicBool::new(true);
    assert!(!renderer.render_sample_in(None, Some(&cancel)));
    assert_eq!(renderer.film().samples_per_pixel(), 0);
    cancel.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(renderer.render_sample_in(None, Some(&cancel)));
    assert_eq!(renderer.film().samples_per_pixel(), 1);
}

#[test]
fn set_scene_restarts_accumulation() {
    let mut renderer = render(Scene::builtin(), RenderSettings::default(), 2);
    renderer.set_scene(Arc::new(Scene::builtin()));
    assert_eq!(renderer.film().samples_per_pixel(), 0);
}
