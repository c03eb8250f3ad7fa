//! A bounding volume hierarchy over triangles (binned SAH build, stackless-allocation traversal).

use crate::geometry::Triangle;
use crate::math::Vec3;

/// Leaves hold at most this many triangles unless splitting is impossible.
const MAX_LEAF_TRIANGLES: usize = 4;
/// Build depth limit; keeps the fixed traversal stack below from ever overflowing.
const MAX_DEPTH: usize = 48;
/// Traversal stack size; each level pushes at most one node, so MAX_DEPTH + 1 suffices.
const STACK_SIZE: usize = 64;
const SAH_BINS: usize = 12;

#[derive(Clone, Copy, Debug)]
struct Node {
    min: Vec3,
    max: Vec3,
    /// Leaf: first triangle; interior: index of the left child (right child follows it).
    first: u32,
    /// Leaf: number of triangles (> 0); interior: 0.
    count: u32,
    /// Interior only: axis the children were split on (for front-to-back order).
    axis: u8,
}

#[derive(Clone, Copy)]
struct Bounds {
    min: Vec3,
    max: Vec3,
}

impl Bounds {
    const EMPTY: Bounds = Bounds {
        min: Vec3::splat(f32::INFINITY),
        max: Vec3::splat(f32::NEG_INFINITY),
    };

    fn grow(&mut self, min: Vec3, max: Vec3) {
        self.min = self.min.min(min);
        self.max = self.max.max(max);
    }

    fn area(&self) -> f32 {
        let d = self.max - self.min;
        if d.x < 0.0 || d.y < 0.0 || d.z < 0.0 {
            return 0.0;
        }
        2.0 * (d.x * d.y + d.y * d.z + d.z * d.x)
    }
}

fn axis_value(v: Vec3, axis: usize) -> f32 {
    match axis {
        0 => v.x,
        1 => v.y,
        _ => v.z,
    }
}

/// The hierarchy; owns its (reordered) triangles.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bvh {
    nodes: Vec<Node>,
    triangles: Vec<Triangle>,
}

/// Closest triangle hit: distance, triangle, barycentrics.
pub(crate) struct TriangleHit<'a> {
    pub t: f32,
    pub triangle: &'a Triangle,
    pub u: f32,
    pub v: f32,
}

impl Bvh {
    pub fn build(mut triangles: Vec<Triangle>) -> Bvh {
        if triangles.is_empty() {
            return Bvh::default();
        }
        let mut nodes = Vec::with_capacity(triangles.len() * 2);
        nodes.push(Node {
            min: Vec3::ZERO,
            max: Vec3::ZERO,
            first: 0,
            count: 0,
            axis: 0,
        });
        let len = triangles.len();
        build_node(&mut nodes, &mut triangles, 0, 0, len, 0);
        Bvh { nodes, triangles }
    }

    /// Ray/box slab test returning the entry distance.
    #[inline]
    fn hit_box(node: &Node, origin: Vec3, inv_dir: Vec3, t_min: f32, t_max: f32) -> Option<f32> {
        // Plain comparisons instead of f32::min/max: NaN handling is not needed (a NaN slab
        // just fails the final test) and the branch-free form is much cheaper.
        #[inline(always)]
        fn lo(a: f32, b: f32) -> f32 {
            if a < b {
                a
            } else {
                b
            }
        }
        #[inline(always)]
        fn hi(a: f32, b: f32) -> f32 {
            if a > b {
                a
            } else {
                b
            }
        }
        let t0 = (node.min - origin).mul_elem(inv_dir);
        let t1 = (node.max - origin).mul_elem(inv_dir);
        let enter = hi(
            hi(lo(t0.x, t1.x), lo(t0.y, t1.y)),
            hi(lo(t0.z, t1.z), t_min),
        );
        let exit = lo(
            lo(hi(t0.x, t1.x), hi(t0.y, t1.y)),
            lo(hi(t0.z, t1.z), t_max),
        );
        if enter <= exit {
            Some(enter)
        } else {
            None
        }
    }

    /// The closest hit with `t_min < t < t_max`.
    /// `inv_dir` is the component-wise reciprocal of `dir`.
    pub fn intersect(
        &self,
        origin: Vec3,
        dir: Vec3,
        inv_dir: Vec3,
        t_min: f32,
        mut t_max: f32,
    ) -> Option<TriangleHit<'_>> {
        let root = self.nodes.first()?;
        Self::hit_box(root, origin, inv_dir, t_min, t_max)?;
        let negative = [dir.x < 0.0, dir.y < 0.0, dir.z < 0.0];
        let mut best: Option<TriangleHit<'_>> = None;
        let mut stack = [0u32; STACK_SIZE];
        let mut top = 1usize;
        while top > 0 {
            top -= 1;
            let Some(node) = stack.get(top).and_then(|&i| self.nodes.get(i as usize)) else {
                break;
            };
            if Self::hit_box(node, origin, inv_dir, t_min, t_max).is_none() {
                continue;
            }
            if node.count > 0 {
                let start = node.first as usize;
                let end = start + node.count as usize;
                for tri in self.triangles.get(start..end).unwrap_or(&[]) {
                    if let Some((t, u, v)) = tri.intersect(origin, dir, t_min, t_max) {
                        t_max = t;
                        best = Some(TriangleHit {
                            t,
                            triangle: tri,
                            u,
                            v,
                        });
                    }
                }
            } else {
                // Push the far child first so the near one is visited first.
                let left = node.first;
                let (near, far) = if negative.get(node.axis as usize).copied().unwrap_or(false) {
                    (left + 1, left)
                } else {
                    (left, left + 1)
                };
                if top + 2 > STACK_SIZE {
                    break; // cannot happen: the build depth is bounded
                }
                if let Some(slot) = stack.get_mut(top) {
                    *slot = far;
                }
                if let Some(slot) = stack.get_mut(top + 1) {
                    *slot = near;
                }
                top += 2;
            }
        }
        best
    }

    /// True when any triangle is hit with `t_min < t < t_max`.
    pub fn occluded(&self, origin: Vec3, dir: Vec3, inv_dir: Vec3, t_min: f32, t_max: f32) -> bool {
        let Some(root) = self.nodes.first() else {
            return false;
        };
        if Self::hit_box(root, origin, inv_dir, t_min, t_max).is_none() {
            return false;
        }
        let mut stack = [0u32; STACK_SIZE];
        let mut top = 1usize;
        while top > 0 {
            top -= 1;
            let Some(node) = stack.get(top).and_then(|&i| self.nodes.get(i as usize)) else {
                break;
            };
            if Self::hit_box(node, origin, inv_dir, t_min, t_max).is_none() {
                continue;
            }
            if node.count > 0 {
                let start = node.first as usize;
                let end = start + node.count as usize;
                for tri in self.triangles.get(start..end).unwrap_or(&[]) {
                    if tri.intersect(origin, dir, t_min, t_max).is_some() {
                        return true;
                    }
                }
            } else {
                if top + 2 > STACK_SIZE {
                    break;
                }
                if let Some(slot) = stack.get_mut(top) {
                    *slot = node.first;
                }
                if let Some(slot) = stack.get_mut(top + 1) {
                    *slot = node.first + 1;
                }
                top += 2;
            }
        }
        false
    }
}

/// Fills `nodes[index]` for triangles `start..end`, recursing into children.
fn build_node(
    nodes: &mut Vec<Node>,
    triangles: &mut [Triangle],
    index: usize,
    start: usize,
    end: usize,
    depth: usize,
) {
    let tris = triangles.get(start..end).unwrap_or(&[]);
    let mut bounds = Bounds::EMPTY;
    let mut centroid_bounds = Bounds::EMPTY;
    for t in tris {
        bounds.grow(t.min(), t.max());
        let c = t.centroid();
        centroid_bounds.grow(c, c);
    }
    let make_leaf = |nodes: &mut Vec<Node>| {
        if let Some(node) = nodes.get_mut(index) {
            *node = Node {
                min: bounds.min,
                max: bounds.max,
                first: start as u32,
                count: (end - start) as u32,
                axis: 0,
            };
        }
    };
    let count = end - start;
    if count <= MAX_LEAF_TRIANGLES || depth >= MAX_DEPTH {
        make_leaf(nodes);
        return;
    }

    // Binned SAH over the centroid extent of the widest useful axis set.
    let mut best: Option<(usize, usize, f32)> = None; // (axis, split bin, cost)
    for axis in 0..3 {
        let lo = axis_value(centroid_bounds.min, axis);
        let hi = axis_value(centroid_bounds.max, axis);
        let extent = hi - lo;
        // Also skips NaN extents from degenerate input.
        if extent.is_nan() || extent <= 1e-9 {
            continue;
        }
        let scale = SAH_BINS as f32 / extent;
        let bin_of = |t: &Triangle| {
            (((axis_value(t.centroid(), axis) - lo) * scale) as usize).min(SAH_BINS - 1)
        };
        let mut bins = [(Bounds::EMPTY, 0usize); SAH_BINS];
        for t in tris {
            if let Some(bin) = bins.get_mut(bin_of(t)) {
                bin.0.grow(t.min(), t.max());
                bin.1 += 1;
            }
        }
        for split in 1..SAH_BINS {
            let (mut lb, mut lc, mut rb, mut rc) = (Bounds::EMPTY, 0usize, Bounds::EMPTY, 0usize);
            for (i, (b, c)) in bins.iter().enumerate() {
                if i < split {
                    lb.grow(b.min, b.max);
                    lc += c;
                } else {
                    rb.grow(b.min, b.max);
                    rc += c;
                }
            }
            if lc == 0 || rc == 0 {
                continue;
            }
            let cost = lb.area() * lc as f32 + rb.area() * rc as f32;
            if best.is_none_or(|(_, _, c)| cost < c) {
                best = Some((axis, split, cost));
            }
        }
    }

    let leaf_cost = bounds.area() * count as f32;
    let mid = match best {
        // A leaf is cheaper (traversal cost ~1 triangle test) when the split does not help.
        Some((axis, split, cost)) if cost + bounds.area() < leaf_cost => {
            let lo = axis_value(centroid_bounds.min, axis);
            let scale = SAH_BINS as f32 / (axis_value(centroid_bounds.max, axis) - lo);
            let slice = triangles.get_mut(start..end).unwrap_or(&mut []);
            let mut left = 0usize;
            for i in 0..slice.len() {
                let c = axis_value(slice.get(i).map(|t| t.centroid()).unwrap_or_default(), axis);
                let bin = (((c - lo) * scale) as usize).min(SAH_BINS - 1);
                if bin < split {
                    slice.swap(i, left);
                    left += 1;
                }
            }
            (start + left, axis)
        }
        _ if count > MAX_LEAF_TRIANGLES * 4 => {
            // No useful SAH split but too many triangles: fall back to a median split.
            let axis = {
                let d = centroid_bounds.max - centroid_bounds.min;
                if d.x >= d.y && d.x >= d.z {
                    0
                } else if d.y >= d.z {
                    1
                } else {
                    2
                }
            };
            let slice = triangles.get_mut(start..end).unwrap_or(&mut []);
            slice.sort_by(|a, b| {
                axis_value(a.centroid(), axis).total_cmp(&axis_value(b.centroid(), axis))
            });
            (start + count / 2, axis)
        }
        _ => {
            make_leaf(nodes);
            return;
        }
    };
    let (mid, axis) = mid;
    if mid <= start || mid >= end {
        make_leaf(nodes);
        return;
    }

    let left = nodes.len();
    let blank = Node {
        min: Vec3::ZERO,
        max: Vec3::ZERO,
        first: 0,
        count: 0,
        axis: 0,
    };
    nodes.push(blank);
    nodes.push(blank);
    if let Some(node) = nodes.get_mut(index) {
        *node = Node {
            min: bounds.min,
            max: bounds.max,
            first: left as u32,
            count: 0,
            axis: axis as u8,
        };
    }
    build_node(nodes, triangles, left, start, mid, depth + 1);
    build_node(nodes, triangles, left + 1, mid, end, depth + 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{torus, triangulate};
    use crate::rng::Rng;

    fn torus_triangles() -> Vec<Triangle> {
        let mesh = torus(Vec3::new(0.5, 0.2, -0.3), 1.0, 0.3, (40, 16), (0.7, 0.2));
        let mut tris = Vec::new();
        triangulate(
            &mesh.positions,
            &mesh.normals,
            &mesh.verts_per_poly,
            &mesh.poly_vert_indices,
            &mesh.poly_normal_indices,
            0,
            &mut tris,
        );
        tris
    }

    /// The hierarchy must find exactly what testing every triangle finds.
    #[test]
    fn closest_hit_and_occlusion_match_brute_force() {
        let tris = torus_triangles();
        assert_eq!(tris.len(), 40 * 16 * 2);
        let bvh = Bvh::build(tris.clone());
        let mut rng = Rng::for_pixel(1, 1);
        let mut hits = 0;
        for _ in 0..3000 {
            let origin = Vec3::new(
                rng.next_f32() * 6.0 - 3.0,
                rng.next_f32() * 6.0 - 3.0,
                rng.next_f32() * 6.0 - 3.0,
            );
            let aim = Vec3::new(
                rng.next_f32() - 0.5,
                rng.next_f32() - 0.5,
                rng.next_f32() - 0.5,
            );
            let dir = (Vec3::new(0.5, 0.2, -0.3) + aim * 2.0 - origin).normalized();
            let inv = Vec3::new(1.0 / dir.x, 1.0 / dir.y, 1.0 / dir.z);
            let brute = tris
                .iter()
                .filter_map(|t| t.intersect(origin, dir, 1e-4, f32::INFINITY))
                .map(|(t, _, _)| t)
                .fold(f32::INFINITY, f32::min);
            let found = bvh
                .intersect(origin, dir, inv, 1e-4, f32::INFINITY)
                .map(|h| h.t);
            match found {
                Some(t) => {
                    hits += 1;
                    assert!((t - brute).abs() < 1e-5, "bvh {t} vs brute {brute}");
                }
                None => assert!(brute.is_infinite(), "bvh missed a hit at {brute}"),
            }
            assert_eq!(
                bvh.occluded(origin, dir, inv, 1e-4, f32::INFINITY),
                brute.is_finite()
            );
        }
        assert!(
            hits > 300,
            "only {hits} rays hit the torus: the test aims badly"
        );
    }

    #[test]
    fn empty_hierarchy_hits_nothing() {
        let bvh = Bvh::build(Vec::new());
        let dir = Vec3::new(0.0, 0.0, 1.0);
        let inv = Vec3::new(f32::INFINITY, f32::INFINITY, 1.0);
        assert!(bvh
            .intersect(Vec3::ZERO, dir, inv, 0.0, f32::INFINITY)
            .is_none());
        assert!(!bvh.occluded(Vec3::ZERO, dir, inv, 0.0, f32::INFINITY));
    }
}
