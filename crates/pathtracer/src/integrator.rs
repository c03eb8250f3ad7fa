//! The path-tracing integrator: BSDF sampling plus next-event estimation towards the sun and
//! emissive spheres, combined with multiple importance sampling (power heuristic).

use std::f32::consts::PI;

use crate::camera::Ray;
use crate::material::{sample_cone, Bsdf, Frame};
use crate::math::Vec3;
use crate::rng::Rng;
use crate::scene::{MaterialKind, Scene};

/// Longest path by default (camera vertex excluded).
pub(crate) const DEFAULT_MAX_BOUNCES: u32 = 6;
/// Russian roulette starts after this many bounces.
const ROULETTE_AFTER: u32 = 3;
/// Per-sample radiance is clamped to this per channel: rare very bright paths (caustics of the
/// sun through glossy surfaces) would otherwise show as fireflies for a long time.
const MAX_SAMPLE_RADIANCE: f32 = 16.0;
/// Contributions gathered after the first bounce are clamped to this per channel. Paths that
/// reach the sun via a glossy reflection after a diffuse bounce (caustics) are rare but very
/// bright and would speckle the image for hundreds of samples; clamping trades a little of that
/// light for a clean progressive preview.
const MAX_INDIRECT_RADIANCE: f32 = 2.0;
/// Ray origin offset along the geometric normal, against self-intersection.
const SURFACE_EPSILON: f32 = 1e-3;
/// Share of light samples spent on the sun when emissive spheres also exist.
const SUN_SELECTION_PROBABILITY: f32 = 0.6;

fn power_heuristic(a: f32, b: f32) -> f32 {
    let a2 = a * a;
    let b2 = b * b;
    if a2 + b2 > 0.0 && (a2 + b2).is_finite() {
        a2 / (a2 + b2)
    } else if a.is_infinite() {
        1.0
    } else {
        0.0
    }
}

/// Solid-angle pdf of uniform cone sampling with the given cosine of the half-angle.
fn cone_pdf(cos_max: f32, sin2_max: f32) -> f32 {
    // 1 - cos computed as sin^2 / (1 + cos) avoids cancellation for tiny cones.
    let one_minus_cos = sin2_max / (1.0 + cos_max);
    if one_minus_cos > 0.0 {
        1.0 / (2.0 * PI * one_minus_cos)
    } else {
        0.0
    }
}

/// The cone a sphere subtends from `point`: (unit axis, cos, sin^2, distance); None if inside.
fn sphere_cone(point: Vec3, center: Vec3, radius: f32) -> Option<(Vec3, f32, f32, f32)> {
    let to_center = center - point;
    let dist2 = to_center.length_squared();
    let r2 = radius * radius;
    if dist2 <= r2 * 1.0001 {
        return None;
    }
    let dist = dist2.sqrt();
    let sin2 = r2 / dist2;
    let cos = (1.0 - sin2).max(0.0).sqrt();
    Some((to_center * (1.0 / dist), cos, sin2, dist))
}

/// Light selection: probability of the sun and of each emissive sphere.
struct LightChoice {
    sun: f32,
    each_sphere: f32,
}

impl LightChoice {
    fn new(scene: &Scene) -> LightChoice {
        let spheres = scene.sphere_lights().len();
        let has_sun = scene.environment().sun_radiance.max_component() > 0.0;
        match (has_sun, spheres) {
            (true, 0) => LightChoice {
                sun: 1.0,
                each_sphere: 0.0,
            },
            (true, n) => LightChoice {
                sun: SUN_SELECTION_PROBABILITY,
                each_sphere: (1.0 - SUN_SELECTION_PROBABILITY) / n as f32,
            },
            (false, 0) => LightChoice {
                sun: 0.0,
                each_sphere: 0.0,
            },
            (false, n) => LightChoice {
                sun: 0.0,
                each_sphere: 1.0 / n as f32,
            },
        }
    }
}

/// One light sample: direction, radiance arriving, pdf (solid angle, selection included) and
/// the distance to test for occlusion.
struct LightSample {
    dir: Vec3,
    radiance: Vec3,
    pdf: f32,
    max_t: f32,
}

fn sample_light(
    scene: &Scene,
    choice: &LightChoice,
    point: Vec3,
    rng: &mut Rng,
) -> Option<LightSample> {
    let u = rng.next_f32();
    if u < choice.sun {
        let env = scene.environment();
        let cos_max = scene.sun_cos_max();
        let dir = sample_cone(&Frame::new(env.sun_direction), cos_max, rng);
        let sin2 = 1.0 - cos_max * cos_max;
        return Some(LightSample {
            dir,
            radiance: env.sun_radiance,
            pdf: choice.sun * cone_pdf(cos_max, sin2),
            max_t: f32::INFINITY,
        });
    }
    if choice.each_sphere <= 0.0 {
        return None;
    }
    let slot = ((u - choice.sun) / choice.each_sphere) as usize;
    let lights = scene.sphere_lights();
    let sphere_index = *lights.get(slot.min(lights.len().saturating_sub(1)))?;
    let sphere = scene.spheres().get(sphere_index)?;
    let (axis, cos_max, sin2, dist) = sphere_cone(point, sphere.center, sphere.radius)?;
    let dir = sample_cone(&Frame::new(axis), cos_max, rng);
    // Stop the shadow ray just before the light's surface so the light does not occlude itself.
    let t_surface = sphere
        .intersect(point, dir, 0.0, dist + sphere.radius)
        .unwrap_or(dist - sphere.radius);
    Some(LightSample {
        dir,
        radiance: scene.material_of(sphere.object).emission,
        pdf: choice.each_sphere * cone_pdf(cos_max, sin2),
        max_t: t_surface * (1.0 - 1e-4),
    })
}

/// Path length and clamping of one path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PathLimits {
    /// Scattering events at most (the path ends at the surface after the last one).
    pub max_bounces: u32,
    /// Largest value per channel of a path's total (0: only the built-in safety clamp).
    pub clamp: f32,
}

/// Radiance arriving along `ray` (unit direction) estimated with one path.
pub(crate) fn radiance(scene: &Scene, mut ray: Ray, rng: &mut Rng, limits: PathLimits) -> Vec3 {
    let max_bounces = limits.max_bounces;
    let choice = LightChoice::new(scene);
    let env = scene.environment();
    let sun_dir = env.sun_direction;
    let sun_cos_max = scene.sun_cos_max();
    let sun_pdf = choice.sun * cone_pdf(sun_cos_max, 1.0 - sun_cos_max * sun_cos_max);

    let mut total = Vec3::ZERO;
    // Adds one contribution, clamping it once the path has bounced (see MAX_INDIRECT_RADIANCE).
    let add = |total: &mut Vec3, contribution: Vec3, bounce: u32| {
        *total += if bounce == 0 {
            contribution
        } else {
            contribution.min(Vec3::splat(MAX_INDIRECT_RADIANCE))
        };
    };
    let mut throughput = Vec3::ONE;
    // pdf of the BSDF sample that produced `ray`; None for camera rays (count emitters fully).
    let mut last_bsdf_pdf: Option<f32> = None;
    let mut last_point = ray.origin;

    for bounce in 0..=max_bounces {
        let Some(hit) = scene.trace(ray.origin, ray.dir, 0.0, f32::INFINITY) else {
            let mut sky = scene.sky_radiance(ray.dir);
            if ray.dir.dot(sun_dir) >= sun_cos_max {
                let weight = match last_bsdf_pdf {
                    None => 1.0,
                    Some(pdf) => power_heuristic(pdf, sun_pdf),
                };
                sky += env.sun_radiance * weight;
            }
            add(
                &mut total,
                throughput.mul_elem(sky),
                bounce.saturating_sub(1),
            );
            break;
        };
        let material = scene.material_of(hit.object);
        if material.kind == MaterialKind::Emissive {
            let weight = match (last_bsdf_pdf, hit.sphere) {
                (Some(pdf), Some(sphere_index))
                    if scene.sphere_lights().contains(&sphere_index) =>
                {
                    let light_pdf = scene
                        .spheres()
                        .get(sphere_index)
                        .and_then(|s| sphere_cone(last_point, s.center, s.radius))
                        .map_or(0.0, |(_, cos, sin2, _)| {
                            choice.each_sphere * cone_pdf(cos, sin2)
                        });
                    power_heuristic(pdf, light_pdf)
                }
                _ => 1.0,
            };
            add(
                &mut total,
                throughput.mul_elem(material.emission) * weight,
                bounce.saturating_sub(1),
            );
            break; // emitters do not reflect
        }
        if bounce == max_bounces {
            break;
        }

        let wo = -ray.dir;
        let bsdf = Bsdf::new(material, hit.normal, wo);
        let origin = hit.point + hit.geometric_normal * SURFACE_EPSILON;

        // Next-event estimation: one light sample, MIS-weighted against BSDF sampling.
        if bsdf.wants_light_samples() {
            if let Some(light) = sample_light(scene, &choice, origin, rng) {
                if light.pdf > 0.0 && light.dir.dot(hit.geometric_normal) > 0.0 {
                    let (f, bsdf_pdf) = bsdf.eval(light.dir);
                    let cos_i = hit.normal.dot(light.dir);
                    if bsdf_pdf > 0.0
                        && cos_i > 0.0
                        && !scene.occluded(origin, light.dir, 0.0, light.max_t)
                    {
                        let weight = power_heuristic(light.pdf, bsdf_pdf) * cos_i / light.pdf;
                        let contribution = throughput.mul_elem(f).mul_elem(light.radiance) * weight;
                        add(&mut total, contribution, bounce);
                    }
                }
            }
        }

        let Some(sample) = bsdf.sample(rng) else {
            break;
        };
        if sample.dir.dot(hit.geometric_normal) <= 0.0 {
            break; // shading normal pointed the sample into the surface
        }
        throughput = throughput.mul_elem(sample.weight);
        last_bsdf_pdf = Some(sample.pdf);
        last_point = origin;
        ray = Ray::new(origin, sample.dir);

        if bounce >= ROULETTE_AFTER {
            let survive = throughput.max_component().clamp(0.05, 0.95);
            if rng.next_f32() >= survive {
                break;
            }
            throughput = throughput * (1.0 / survive);
        }
    }

    if total.is_finite() {
        let ceiling = if limits.clamp > 0.0 {
            limits.clamp.min(MAX_SAMPLE_RADIANCE)
        } else {
            MAX_SAMPLE_RADIANCE
        };
        total.max(Vec3::ZERO).min(Vec3::splat(ceiling))
    } else {
        Vec3::ZERO
    }
}
