//! Procedural polygon meshes for the built-in scene and their triangulation for rendering.

use crate::math::Vec3;
use std::f32::consts::PI;

/// A polygon mesh in the same layout as [`crate::SceneObject`].
#[derive(Clone, Debug, Default)]
pub(crate) struct PolyMesh {
    pub positions: Vec<Vec3>,
    pub normals: Vec<Vec3>,
    pub verts_per_poly: Vec<u32>,
    pub poly_vert_indices: Vec<u32>,
    pub poly_normal_indices: Vec<u32>,
}

impl PolyMesh {
    fn add_position(&mut self, p: Vec3) -> u32 {
        self.positions.push(p);
        (self.positions.len() - 1) as u32
    }

    fn add_normal(&mut self, n: Vec3) -> u32 {
        self.normals.push(n.normalized());
        (self.normals.len() - 1) as u32
    }

    /// Adds a polygon given (position index, normal index) pairs.
    fn add_poly(&mut self, corners: &[(u32, u32)]) {
        self.verts_per_poly.push(corners.len() as u32);
        for &(p, n) in corners {
            self.poly_vert_indices.push(p);
            self.poly_normal_indices.push(n);
        }
    }

    /// Adds a flat polygon whose normal is computed from its first three corners.
    fn add_flat_poly(&mut self, corners: &[Vec3]) {
        let normal = match corners {
            [a, b, c, ..] => (*b - *a).cross(*c - *a),
            _ => return,
        };
        let n = self.add_normal(normal);
        let indices: Vec<(u32, u32)> = corners.iter().map(|&p| (self.add_position(p), n)).collect();
        self.add_poly(&indices);
    }
}

/// Rotation about +Y by `angle` radians.
pub(crate) fn rotate_y(v: Vec3, angle: f32) -> Vec3 {
    let (s, c) = angle.sin_cos();
    Vec3::new(c * v.x + s * v.z, v.y, -s * v.x + c * v.z)
}

/// Rotation about +X by `angle` radians.
pub(crate) fn rotate_x(v: Vec3, angle: f32) -> Vec3 {
    let (s, c) = angle.sin_cos();
    Vec3::new(v.x, c * v.y - s * v.z, s * v.y + c * v.z)
}

/// A square in the y = `height` plane, facing up.
pub(crate) fn floor_quad(half_size: f32, height: f32) -> PolyMesh {
    let h = half_size;
    let mut mesh = PolyMesh::default();
    mesh.add_flat_poly(&[
        Vec3::new(-h, height, -h),
        Vec3::new(-h, height, h),
        Vec3::new(h, height, h),
        Vec3::new(h, height, -h),
    ]);
    mesh
}

/// A latitude/longitude tessellation of a sphere with smooth normals (export only).
pub(crate) fn uv_sphere(center: Vec3, radius: f32, segments: u32, rings: u32) -> PolyMesh {
    let mut mesh = PolyMesh::default();
    let segments = segments.max(3);
    let rings = rings.max(2);
    // Vertex grid: ring 0 is the north pole, ring `rings` the south pole; poles are shared.
    let north = mesh.add_position(center + Vec3::new(0.0, radius, 0.0));
    mesh.add_normal(Vec3::new(0.0, 1.0, 0.0));
    for r in 1..rings {
        let theta = PI * r as f32 / rings as f32;
        for s in 0..segments {
            let phi = 2.0 * PI * s as f32 / segments as f32;
            let n = Vec3::new(
                theta.sin() * phi.cos(),
                theta.cos(),
                theta.sin() * phi.sin(),
            );
            mesh.add_position(center + n * radius);
            mesh.add_normal(n);
        }
    }
    let south = mesh.add_position(center - Vec3::new(0.0, radius, 0.0));
    mesh.add_normal(Vec3::new(0.0, -1.0, 0.0));
    let ring_vertex = |r: u32, s: u32| 1 + (r - 1) * segments + (s % segments);
    for s in 0..segments {
        let (a, b) = (ring_vertex(1, s + 1), ring_vertex(1, s));
        mesh.add_poly(&[(north, north), (a, a), (b, b)]);
    }
    for r in 1..rings - 1 {
        for s in 0..segments {
            let quad = [
                ring_vertex(r, s),
                ring_vertex(r, s + 1),
                ring_vertex(r + 1, s + 1),
                ring_vertex(r + 1, s),
            ];
            mesh.add_poly(&quad.map(|i| (i, i)));
        }
    }
    for s in 0..segments {
        let (a, b) = (ring_vertex(rings - 1, s), ring_vertex(rings - 1, s + 1));
        mesh.add_poly(&[(south, south), (a, a), (b, b)]);
    }
    mesh
}

/// An axis-aligned box of the given half extents, turned about +Y by `yaw`, flat shaded.
pub(crate) fn cuboid(center: Vec3, half: Vec3, yaw: f32) -> PolyMesh {
    let corner = |sx: f32, sy: f32, sz: f32| {
        center + rotate_y(Vec3::new(sx * half.x, sy * half.y, sz * half.z), yaw)
    };
    let mut mesh = PolyMesh::default();
    // Each face listed counter-clockwise seen from outside.
    let faces: [[(f32, f32, f32); 4]; 6] = [
        [(1., -1., -1.), (1., 1., -1.), (1., 1., 1.), (1., -1., 1.)],
        [
            (-1., -1., 1.),
            (-1., 1., 1.),
            (-1., 1., -1.),
            (-1., -1., -1.),
        ],
        [(-1., 1., -1.), (-1., 1., 1.), (1., 1., 1.), (1., 1., -1.)],
        [
            (-1., -1., 1.),
            (-1., -1., -1.),
            (1., -1., -1.),
            (1., -1., 1.),
        ],
        [(-1., -1., 1.), (1., -1., 1.), (1., 1., 1.), (-1., 1., 1.)],
        [
            (1., -1., -1.),
            (-1., -1., -1.),
            (-1., 1., -1.),
            (1., 1., -1.),
        ],
    ];
    for face in faces {
        let pts = face.map(|(x, y, z)| corner(x, y, z));
        mesh.add_flat_poly(&pts);
    }
    mesh
}

/// A regular icosahedron (flat shaded) with circumradius `radius`, turned about +Y by `yaw`.
pub(crate) fn icosahedron(center: Vec3, radius: f32, yaw: f32) -> PolyMesh {
    let phi = (1.0 + 5.0f32.sqrt()) * 0.5;
    let raw = [
        (-1.0, phi, 0.0),
        (1.0, phi, 0.0),
        (-1.0, -phi, 0.0),
        (1.0, -phi, 0.0),
        (0.0, -1.0, phi),
        (0.0, 1.0, phi),
        (0.0, -1.0, -phi),
        (0.0, 1.0, -phi),
        (phi, 0.0, -1.0),
        (phi, 0.0, 1.0),
        (-phi, 0.0, -1.0),
        (-phi, 0.0, 1.0),
    ];
    let verts =
        raw.map(|(x, y, z)| center + rotate_y(Vec3::new(x, y, z).normalized() * radius, yaw));
    const FACES: [[usize; 3]; 20] = [
        [0, 11, 5],
        [0, 5, 1],
        [0, 1, 7],
        [0, 7, 10],
        [0, 10, 11],
        [1, 5, 9],
        [5, 11, 4],
        [11, 10, 2],
        [10, 7, 6],
        [7, 1, 8],
        [3, 9, 4],
        [3, 4, 2],
        [3, 2, 6],
        [3, 6, 8],
        [3, 8, 9],
        [4, 9, 5],
        [2, 4, 11],
        [6, 2, 10],
        [8, 6, 7],
        [9, 8, 1],
    ];
    let mut mesh = PolyMesh::default();
    for face in FACES {
        let pts = face.map(|i| verts.get(i).copied().unwrap_or(center));
        // Orient outwards regardless of the table's winding.
        let n = (pts[1] - pts[0]).cross(pts[2] - pts[0]);
        if n.dot(pts[0] - center) < 0.0 {
            mesh.add_flat_poly(&[pts[0], pts[2], pts[1]]);
        } else {
            mesh.add_flat_poly(&pts);
        }
    }
    mesh
}

/// A torus around the local +Y axis with smooth normals, tilted about X then turned about Y.
pub(crate) fn torus(
    center: Vec3,
    major_radius: f32,
    minor_radius: f32,
    (major_segments, minor_segments): (u32, u32),
    (tilt, yaw): (f32, f32),
) -> PolyMesh {
    let major_segments = major_segments.max(3);
    let minor_segments = minor_segments.max(3);
    let place = |v: Vec3| rotate_y(rotate_x(v, tilt), yaw);
    let mut mesh = PolyMesh::default();
    for i in 0..major_segments {
        let u = 2.0 * PI * i as f32 / major_segments as f32;
        let ring_dir = Vec3::new(u.cos(), 0.0, u.sin());
        for j in 0..minor_segments {
            let v = 2.0 * PI * j as f32 / minor_segments as f32;
            let n = ring_dir * v.cos() + Vec3::new(0.0, v.sin(), 0.0);
            let p = ring_dir * major_radius + n * minor_radius;
            mesh.add_position(center + place(p));
            mesh.add_normal(place(n));
        }
    }
    let index = |i: u32, j: u32| (i % major_segments) * minor_segments + (j % minor_segments);
    for i in 0..major_segments {
        for j in 0..minor_segments {
            let quad = [
                index(i, j),
                index(i, j + 1),
                index(i + 1, j + 1),
                index(i + 1, j),
            ];
            mesh.add_poly(&quad.map(|k| (k, k)));
        }
    }
    mesh
}

/// A triangle prepared for intersection, with per-vertex shading normals.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Triangle {
    pub v0: Vec3,
    pub e1: Vec3,
    pub e2: Vec3,
    pub n0: Vec3,
    pub n1: Vec3,
    pub n2: Vec3,
    /// Unit geometric normal (e1 x e2).
    pub ng: Vec3,
    pub object: u32,
}

impl Triangle {
    pub fn min(&self) -> Vec3 {
        self.v0.min(self.v0 + self.e1).min(self.v0 + self.e2)
    }

    pub fn max(&self) -> Vec3 {
        self.v0.max(self.v0 + self.e1).max(self.v0 + self.e2)
    }

    pub fn centroid(&self) -> Vec3 {
        self.v0 + (self.e1 + self.e2) * (1.0 / 3.0)
    }

    /// Möller–Trumbore: distance and barycentrics (u, v) of a hit with `t_min < t < t_max`.
    #[inline]
    pub fn intersect(
        &self,
        origin: Vec3,
        dir: Vec3,
        t_min: f32,
        t_max: f32,
    ) -> Option<(f32, f32, f32)> {
        let p = dir.cross(self.e2);
        let det = self.e1.dot(p);
        if det.abs() < 1e-12 {
            return None;
        }
        let inv_det = 1.0 / det;
        let s = origin - self.v0;
        let u = s.dot(p) * inv_det;
        if !(0.0..=1.0).contains(&u) {
            return None;
        }
        let q = s.cross(self.e1);
        let v = dir.dot(q) * inv_det;
        if v < 0.0 || u + v > 1.0 {
            return None;
        }
        let t = self.e2.dot(q) * inv_det;
        if t > t_min && t < t_max {
            Some((t, u, v))
        } else {
            None
        }
    }

    /// Interpolated shading normal at barycentrics (u, v); falls back to the geometric one.
    pub fn shading_normal(&self, u: f32, v: f32) -> Vec3 {
        let n = (self.n0 * (1.0 - u - v) + self.n1 * u + self.n2 * v).normalized();
        if n == Vec3::ZERO {
            self.ng
        } else {
            n
        }
    }
}

/// Fan-triangulates every polygon of a mesh; polygons with out-of-range indices are skipped.
pub(crate) fn triangulate(
    positions: &[Vec3],
    normals: &[Vec3],
    verts_per_poly: &[u32],
    poly_vert_indices: &[u32],
    poly_normal_indices: &[u32],
    object: u32,
    out: &mut Vec<Triangle>,
) {
    let mut offset = 0usize;
    for &count in verts_per_poly {
        let count = count as usize;
        let start = offset;
        offset = offset.saturating_add(count);
        let (Some(pv), Some(pn)) = (
            poly_vert_indices.get(start..offset),
            poly_normal_indices.get(start..offset),
        ) else {
            return;
        };
        let corner = |k: usize| -> Option<(Vec3, Option<Vec3>)> {
            let p = *positions.get(*pv.get(k)? as usize)?;
            let n = pn.get(k).and_then(|&i| normals.get(i as usize)).copied();
            Some((p, n))
        };
        for k in 1..count.saturating_sub(1) {
            let (Some(a), Some(b), Some(c)) = (corner(0), corner(k), corner(k + 1)) else {
                continue;
            };
            let e1 = b.0 - a.0;
            let e2 = c.0 - a.0;
            let ng = e1.cross(e2).normalized();
            if ng == Vec3::ZERO {
                continue; // degenerate: cannot be hit
            }
            let shading = |n: Option<Vec3>| {
                let n = n.unwrap_or(ng).normalized();
                if n == Vec3::ZERO {
                    ng
                } else {
                    n
                }
            };
            out.push(Triangle {
                v0: a.0,
                e1,
                e2,
                n0: shading(a.1),
                n1: shading(b.1),
                n2: shading(c.1),
                ng,
                object,
            });
        }
    }
}
