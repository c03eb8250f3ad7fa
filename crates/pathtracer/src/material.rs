//! Surface scattering: evaluation, importance sampling and pdfs of the material models.

use std::f32::consts::{FRAC_1_PI, PI};

use crate::math::Vec3;
use crate::rng::Rng;
use crate::scene::{Material, MaterialKind};

/// Roughness is clamped to this minimum so the lobe exponent stays finite.
const MIN_ROUGHNESS: f32 = 0.02;

/// An orthonormal basis around a unit normal (Duff et al. 2017, branch-free).
#[derive(Clone, Copy)]
pub(crate) struct Frame {
    t: Vec3,
    b: Vec3,
    n: Vec3,
}

impl Frame {
    pub fn new(n: Vec3) -> Frame {
        let sign = 1.0f32.copysign(n.z);
        let a = -1.0 / (sign + n.z);
        let b = n.x * n.y * a;
        Frame {
            t: Vec3::new(1.0 + sign * n.x * n.x * a, sign * b, -sign * n.x),
            b: Vec3::new(b, sign + n.y * n.y * a, -n.y),
            n,
        }
    }

    pub fn local_to_world(&self, local: Vec3) -> Vec3 {
        self.t * local.x + self.b * local.y + self.n * local.z
    }
}

/// Cosine-weighted direction in the hemisphere around the frame's normal.
pub(crate) fn sample_cosine(frame: &Frame, rng: &mut Rng) -> Vec3 {
    let u1 = rng.next_f32();
    let u2 = rng.next_f32();
    let r = u1.sqrt();
    let phi = 2.0 * PI * u2;
    frame.local_to_world(Vec3::new(
        r * phi.cos(),
        r * phi.sin(),
        (1.0 - u1).max(0.0).sqrt(),
    ))
}

/// Uniform direction in the cone of half-angle acos(`cos_max`) around the frame's normal.
pub(crate) fn sample_cone(frame: &Frame, cos_max: f32, rng: &mut Rng) -> Vec3 {
    let u1 = rng.next_f32();
    let u2 = rng.next_f32();
    let cos_theta = 1.0 - u1 * (1.0 - cos_max);
    let sin_theta = (1.0 - cos_theta * cos_theta).max(0.0).sqrt();
    let phi = 2.0 * PI * u2;
    frame.local_to_world(Vec3::new(
        sin_theta * phi.cos(),
        sin_theta * phi.sin(),
        cos_theta,
    ))
}

/// Direction sampled from a Phong lobe cos^exponent around the frame's normal.
fn sample_phong(frame: &Frame, exponent: f32, rng: &mut Rng) -> Vec3 {
    let u1 = rng.next_f32();
    let u2 = rng.next_f32();
    let cos_alpha = u1.powf(1.0 / (exponent + 1.0));
    let sin_alpha = (1.0 - cos_alpha * cos_alpha).max(0.0).sqrt();
    let phi = 2.0 * PI * u2;
    frame.local_to_world(Vec3::new(
        sin_alpha * phi.cos(),
        sin_alpha * phi.sin(),
        cos_alpha,
    ))
}

/// A material prepared for one shading point.
///
/// Diffuse: Lambert, f = albedo / pi. Glossy: a Schlick-Fresnel-weighted mix (weight F of the
/// view angle, F0 = 0.8) of a normalised Phong lobe around the mirror direction, exponent
/// 2/roughness^2 - 2, and a Lambertian base; both tinted by `albedo`, so reflected energy never
/// exceeds `albedo`.
pub(crate) struct Bsdf {
    kind: MaterialKind,
    albedo: Vec3,
    normal: Vec3,
    /// Mirror direction of the outgoing direction (glossy only).
    reflected: Vec3,
    exponent: f32,
    /// Probability of the glossy lobe (= its weight).
    specular_weight: f32,
}

/// One sampled scattering direction.
pub(crate) struct BsdfSample {
    pub dir: Vec3,
    /// f * cos / pdf.
    pub weight: Vec3,
    pub pdf: f32,
}

/// Schlick's reflectance of a coat with index of refraction `index` seen head-on.
fn reflectance_at_normal(index: f32) -> f32 {
    let n = if index.is_finite() {
        index.max(1.0)
    } else {
        1.0
    };
    let r = (n - 1.0) / (n + 1.0);
    r * r
}

impl Bsdf {
    /// `wo` points from the surface towards the viewer; `normal` faces `wo`'s side.
    pub fn new(material: &Material, normal: Vec3, wo: Vec3) -> Bsdf {
        let albedo = material.albedo.max(Vec3::ZERO).min(Vec3::ONE);
        let cos_o = normal.dot(wo).clamp(0.0, 1.0);
        let (specular_weight, exponent) = match material.kind {
            MaterialKind::Glossy => {
                let roughness = if material.roughness.is_finite() {
                    material.roughness.clamp(MIN_ROUGHNESS, 1.0)
                } else {
                    1.0
                };
                let f0 = reflectance_at_normal(material.index);
                let fresnel = f0 + (1.0 - f0) * (1.0 - cos_o).powi(5);
                (fresnel, (2.0 / (roughness * roughness) - 2.0).max(1.0))
            }
            _ => (0.0, 1.0),
        };
        Bsdf {
            kind: material.kind,
            albedo,
            normal,
            reflected: normal * (2.0 * normal.dot(wo)) - wo,
            exponent,
            specular_weight,
        }
    }

    /// True when next-event estimation is worthwhile (nearly mirror-like lobes gain nothing).
    pub fn wants_light_samples(&self) -> bool {
        self.kind != MaterialKind::Emissive
    }

    /// BSDF value times nothing (no cosine) and the sampling pdf for direction `wi`.
    pub fn eval(&self, wi: Vec3) -> (Vec3, f32) {
        let cos_i = self.normal.dot(wi);
        if cos_i <= 0.0 {
            return (Vec3::ZERO, 0.0);
        }
        match self.kind {
            MaterialKind::Diffuse => (self.albedo * FRAC_1_PI, cos_i * FRAC_1_PI),
            MaterialKind::Glossy => {
                let ks = self.specular_weight;
                let cos_a = self.reflected.dot(wi).max(0.0);
                let lobe = cos_a.powf(self.exponent) * (0.5 * FRAC_1_PI);
                let f = ks * (self.exponent + 2.0) * lobe + (1.0 - ks) * FRAC_1_PI;
                let pdf = ks * (self.exponent + 1.0) * lobe + (1.0 - ks) * cos_i * FRAC_1_PI;
                (self.albedo * f, pdf)
            }
            MaterialKind::Emissive => (Vec3::ZERO, 0.0),
        }
    }

    /// Samples an incoming direction; None when the path is absorbed.
    pub fn sample(&self, rng: &mut Rng) -> Option<BsdfSample> {
        let dir = match self.kind {
            MaterialKind::Diffuse => {
                let dir = sample_cosine(&Frame::new(self.normal), rng);
                let pdf = self.normal.dot(dir).max(0.0) * FRAC_1_PI;
                // f * cos / pdf simplifies to the albedo exactly.
                return (pdf > 0.0).then_some(BsdfSample {
                    dir,
                    weight: self.albedo,
                    pdf,
                });
            }
            MaterialKind::Glossy => {
                if rng.next_f32() < self.specular_weight {
                    sample_phong(&Frame::new(self.reflected), self.exponent, rng)
                } else {
                    sample_cosine(&Frame::new(self.normal), rng)
                }
            }
            MaterialKind::Emissive => return None,
        };
        let (f, pdf) = self.eval(dir);
        if pdf <= 0.0 || !pdf.is_finite() {
            return None;
        }
        let cos_i = self.normal.dot(dir);
        Some(BsdfSample {
            dir,
            weight: f * (cos_i / pdf),
            pdf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mat(kind: MaterialKind, roughness: f32) -> Material {
        Material {
            name: "test".into(),
            kind,
            albedo: Vec3::ONE,
            roughness,
            index: crate::scene::METALLIC_INDEX,
            emission: Vec3::ZERO,
        }
    }

    /// Monte Carlo estimate of directional albedo must not exceed 1 (energy conservation).
    #[test]
    fn the_index_sets_the_head_on_reflectance() {
        assert!((reflectance_at_normal(1.5) - 0.04).abs() < 1e-6);
        assert!((reflectance_at_normal(crate::scene::METALLIC_INDEX) - 0.8).abs() < 0.01);
        assert_eq!(reflectance_at_normal(1.0), 0.0);
        assert_eq!(reflectance_at_normal(f32::NAN), 0.0);
        // A plastic coat reflects less than a metallic one, seen the same way.
        let n = Vec3::new(0.0, 0.0, 1.0);
        let plastic = Material {
            index: 1.5,
            ..mat(MaterialKind::Glossy, 0.2)
        };
        let metal = mat(MaterialKind::Glossy, 0.2);
        let coat = |m: &Material| Bsdf::new(m, n, n).specular_weight;
        assert!(coat(&plastic) < coat(&metal) / 5.0);
    }

    #[test]
    fn materials_do_not_create_energy() {
        let n = Vec3::new(0.0, 1.0, 0.0);
        for (kind, roughness) in [
            (MaterialKind::Diffuse, 1.0),
            (MaterialKind::Glossy, 0.05),
            (MaterialKind::Glossy, 0.3),
            (MaterialKind::Glossy, 1.0),
        ] {
            for wo in [
                Vec3::new(0.0, 1.0, 0.0),
                Vec3::new(0.7, 0.3, 0.0).normalized(),
            ] {
                let bsdf = Bsdf::new(&mat(kind, roughness), n, wo);
                let mut total = 0.0f64;
                let count = 20_000;
                for i in 0..count {
                    let mut rng = Rng::for_pixel(i, 7);
                    if let Some(s) = bsdf.sample(&mut rng) {
                        assert!(s.weight.is_finite());
                        total += f64::from(s.weight.max_component());
                    }
                }
                let albedo = total / f64::from(count);
                assert!(albedo <= 1.02, "{kind:?} r={roughness} wo={wo:?}: {albedo}");
                assert!(albedo > 0.5, "{kind:?} r={roughness} wo={wo:?}: {albedo}");
            }
        }
    }

    #[test]
    fn frame_is_orthonormal() {
        for n in [
            Vec3::new(0.0, 0.0, 1.0),
            Vec3::new(0.0, 0.0, -1.0),
            Vec3::new(0.3, -0.8, 0.1).normalized(),
        ] {
            let f = Frame::new(n);
            assert!((f.t.length() - 1.0).abs() < 1e-5);
            assert!((f.b.length() - 1.0).abs() < 1e-5);
            assert!(f.t.dot(f.b).abs() < 1e-5);
            assert!(f.t.dot(n).abs() < 1e-5);
            assert!(f.b.dot(n).abs() < 1e-5);
        }
    }
}
