//! An HNSW graph (Malkov & Yashunin 2018) over unit vectors, by inner
//! product: the approximate nearest-neighbour index for large catalogs.
//!
//! Nodes are positions in a caller's row-major vector array (the graph holds
//! no vectors). Insertion is incremental (a new catalog item is one
//! insert); neighbours are chosen with the paper's heuristic (a candidate is
//! kept only if it is closer to the new node than to every neighbour kept so
//! far), which keeps clusters connected. Layer 0 keeps up to `2·m` links,
//! upper layers `m`. Search is the usual greedy descent, then a best-first
//! search with a beam of `ef` on layer 0. Deterministic for a seed.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use aisle_core::rng::Rng;

/// Graph parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswParams {
    /// Links per node on upper layers (2·m on layer 0).
    pub m: usize,
    /// Beam width while inserting.
    pub ef_construction: usize,
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 128,
            seed: 42,
        }
    }
}

/// A similarity with a total order (for heaps).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sim(f32, u32);

impl Eq for Sim {}
impl PartialOrd for Sim {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Sim {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

pub(crate) use aisle_core::vector::dot;

/// A visited set over node ids, cleared in O(touched).
struct Visited {
    bits: Vec<u64>,
    touched: Vec<u32>,
}

impl Visited {
    fn new(n: usize) -> Self {
        Visited {
            bits: vec![0; n.div_ceil(64)],
            touched: Vec::new(),
        }
    }
    /// Marks `v`; true if it was not marked yet.
    fn insert(&mut self, v: u32) -> bool {
        let (w, b) = (v as usize / 64, v % 64);
        if w >= self.bits.len() {
            self.bits.resize(w + 1, 0);
        }
        let fresh = self.bits[w] & (1 << b) == 0;
        if fresh {
            self.bits[w] |= 1 << b;
            self.touched.push(v);
        }
        fresh
    }
}

/// The graph.
#[derive(Debug, Clone)]
pub struct Hnsw {
    pub params: HnswParams,
    dim: usize,
    /// `links[node][layer]`: neighbour ids.
    links: Vec<Vec<Vec<u32>>>,
    entry: Option<u32>,
    rng: Rng,
}

impl Hnsw {
    pub fn new(dim: usize, params: HnswParams) -> Hnsw {
        Hnsw {
            params,
            dim,
            links: Vec::new(),
            entry: None,
            rng: Rng::seed(params.seed),
        }
    }

    /// Nodes in the graph (positions `0..len`).
    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Builds over the first `n` rows of `vecs`, calling `progress(done)`
    /// every 1,024 inserts.
    pub fn build(vecs: &[f32], dim: usize, params: HnswParams, progress: &dyn Fn(usize)) -> Hnsw {
        let mut g = Hnsw::new(dim, params);
        let n = vecs.len() / dim;
        for v in 0..n {
            g.insert(vecs, v as u32);
            if v % 1024 == 1023 {
                progress(v + 1);
            }
        }
        progress(n);
        g
    }

    fn row<'a>(&self, vecs: &'a [f32], v: u32) -> &'a [f32] {
        &vecs[v as usize * self.dim..(v as usize + 1) * self.dim]
    }

    fn max_links(&self, layer: usize) -> usize {
        if layer == 0 {
            2 * self.params.m
        } else {
            self.params.m
        }
    }

    /// Best-first search of one layer from `entry`: up to `ef` most similar
    /// nodes, best first.
    fn search_layer(
        &self,
        vecs: &[f32],
        q: &[f32],
        entry: &[Sim],
        ef: usize,
        layer: usize,
        visited: &mut Visited,
    ) -> Vec<Sim> {
        let mut cand: BinaryHeap<Sim> = BinaryHeap::new();
        let mut best: BinaryHeap<Reverse<Sim>> = BinaryHeap::new();
        for &e in entry {
            if visited.insert(e.1) {
                cand.push(e);
                best.push(Reverse(e));
            }
        }
        while best.len() > ef {
            best.pop();
        }
        while let Some(c) = cand.pop() {
            let worst = best.peek().map_or(f32::NEG_INFINITY, |w| w.0 .0);
            if c.0 < worst && best.len() >= ef {
                break;
            }
            let Some(nbrs) = self.links[c.1 as usize].get(layer) else {
                continue;
            };
            for &nb in nbrs {
                if !visited.insert(nb) {
                    continue;
                }
                let s = dot(q, self.row(vecs, nb));
                let worst = best.peek().map_or(f32::NEG_INFINITY, |w| w.0 .0);
                if best.len() < ef || s > worst {
                    cand.push(Sim(s, nb));
                    best.push(Reverse(Sim(s, nb)));
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        let mut out: Vec<Sim> = best.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// The paper's neighbour heuristic over candidates sorted best first.
    fn select(&self, vecs: &[f32], cands: &[Sim], m: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for c in cands {
            if kept.len() >= m {
                break;
            }
            let cv = self.row(vecs, c.1);
            if kept.iter().all(|&r| dot(cv, self.row(vecs, r)) < c.0) {
                kept.push(c.1);
            }
        }
        // Fill with the nearest rejected ones (keeps degree up in tight clusters).
        for c in cands {
            if kept.len() >= m {
                break;
            }
            if !kept.contains(&c.1) {
                kept.push(c.1);
            }
        }
        kept
    }

    /// Inserts row `v` of `vecs` (rows `0..v` must already be in the graph).
    pub fn insert(&mut self, vecs: &[f32], v: u32) {
        assert_eq!(v as usize, self.links.len(), "rows are inserted in order");
        let ml = 1.0 / (self.params.m.max(2) as f64).ln();
        let level = ((-(self.rng.f64().max(1e-12)).ln()) * ml).floor() as usize;
        let level = level.min(16);
        self.links.push(vec![Vec::new(); level + 1]);
        let Some(entry) = self.entry else {
            self.entry = Some(v);
            return;
        };
        let q = self.row(vecs, v).to_vec();
        let top = self.links[entry as usize].len() - 1;
        let mut visited = Visited::new(self.links.len());
        let mut ep = vec![Sim(dot(&q, self.row(vecs, entry)), entry)];
        for layer in (level + 1..=top).rev() {
            visited.touched.clear();
            visited.bits.iter_mut().for_each(|w| *w = 0);
            ep = self.search_layer(vecs, &q, &ep, 1, layer, &mut visited);
        }
        for layer in (0..=level.min(top)).rev() {
            visited.touched.clear();
            visited.bits.iter_mut().for_each(|w| *w = 0);
            let found = self.search_layer(
                vecs,
                &q,
                &ep,
                self.params.ef_construction,
                layer,
                &mut visited,
            );
            let nbrs = self.select(vecs, &found, self.params.m);
            for &nb in &nbrs {
                let max = self.max_links(layer);
                let list = &mut self.links[nb as usize][layer];
                list.push(v);
                if list.len() > max {
                    let nv = self.row(vecs, nb).to_vec();
                    let mut c: Vec<Sim> = self.links[nb as usize][layer]
                        .iter()
                        .map(|&x| Sim(dot(&nv, self.row(vecs, x)), x))
                        .collect();
                    c.sort_by(|a, b| b.cmp(a));
                    let kept = self.select(vecs, &c, max);
                    self.links[nb as usize][layer] = kept;
                }
            }
            self.links[v as usize][layer] = nbrs;
            ep = found;
        }
        if level > top {
            self.entry = Some(v);
        }
    }

    /// Up to `ef` (position, similarity) pairs most similar to `q`, best first.
    pub fn search(&self, vecs: &[f32], q: &[f32], ef: usize) -> Vec<(u32, f32)> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        let mut visited = Visited::new(self.links.len());
        let top = self.links[entry as usize].len() - 1;
        let mut ep = vec![Sim(dot(q, self.row(vecs, entry)), entry)];
        for layer in (1..=top).rev() {
            for v in visited.touched.drain(..) {
                visited.bits[v as usize / 64] = 0;
            }
            ep = self.search_layer(vecs, q, &ep, 1, layer, &mut visited);
        }
        for v in visited.touched.drain(..) {
            visited.bits[v as usize / 64] = 0;
        }
        self.search_layer(vecs, q, &ep, ef.max(1), 0, &mut visited)
            .into_iter()
            .map(|s| (s.1, s.0))
            .collect()
    }

    /// Serialises the links (positions are the caller's rows).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        let p = &self.params;
        for x in [
            self.dim as u64,
            p.m as u64,
            p.ef_construction as u64,
            p.seed,
            self.links.len() as u64,
        ] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.extend_from_slice(&self.entry.map_or(u32::MAX, |e| e).to_le_bytes());
        for node in &self.links {
            b.push(node.len() as u8);
            for l in node {
                b.extend_from_slice(&(l.len() as u32).to_le_bytes());
                for &x in l {
                    b.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        b
    }

    /// Reads [`Hnsw::to_bytes`]; None if malformed.
    pub fn from_bytes(b: &[u8]) -> Option<Hnsw> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = b.get(at..at + n)?;
            at += n;
            Some(s)
        };
        let mut u64s = [0u64; 5];
        for x in &mut u64s {
            *x = u64::from_le_bytes(take(8)?.try_into().ok()?);
        }
        let [dim, m, efc, seed, n] = u64s;
        let entry = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let mut links = Vec::with_capacity((n as usize).min(1 << 26));
        for _ in 0..n {
            let layers = take(1)?[0] as usize;
            let mut node = Vec::with_capacity(layers);
            for _ in 0..layers {
                let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
                let raw = take(len * 4)?;
                let l: Vec<u32> = raw
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                if l.iter().any(|&x| x as u64 >= n) {
                    return None;
                }
                node.push(l);
            }
            links.push(node);
        }
        let params = HnswParams {
            m: m as usize,
            ef_construction: efc as usize,
            seed,
        };
        Some(Hnsw {
            params,
            dim: dim as usize,
            entry: (entry != u32::MAX && (entry as u64) < n).then_some(entry),
            links,
            rng: Rng::seed(seed ^ n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clustered unit vectors (like sentence embeddings: most of the mass in
    /// a few directions).
    pub(crate) fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::seed(seed);
        let centers: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..dim).map(|_| r.normal() as f32).collect())
            .collect();
        let mut v = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let c = &centers[r.below(20) as usize];
            let x: Vec<f32> = c.iter().map(|&a| a + 0.8 * r.normal() as f32).collect();
            let norm = x.iter().map(|a| a * a).sum::<f32>().sqrt();
            v.extend(x.iter().map(|a| a / norm));
        }
        v
    }

    fn exact(vecs: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<u32> {
        let mut s: Vec<(f32, u32)> = vecs
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| (dot(q, v), i as u32))
            .collect();
        s.sort_by(|a, b| b.0.total_cmp(&a.0));
        s.into_iter().take(k).map(|x| x.1).collect()
    }

    #[test]
    fn recall_at_10_against_brute_force_and_round_trip() {
        let (n, dim) = (3000, 32);
        let vecs = clustered(n, dim, 1);
        let g = Hnsw::build(&vecs, dim, HnswParams::default(), &|_| {});
        let queries = clustered(100, dim, 2);
        let mut hits = 0;
        for q in queries.chunks_exact(dim) {
            let truth = exact(&vecs, dim, q, 10);
            let got: Vec<u32> = g
                .search(&vecs, q, 64)
                .into_iter()
                .take(10)
                .map(|x| x.0)
                .collect();
            hits += truth.iter().filter(|t| got.contains(t)).count();
        }
        let recall = hits as f64 / 1000.0;
        assert!(recall >= 0.95, "recall@10 {recall}");
        let back = Hnsw::from_bytes(&g.to_bytes()).unwrap();
        let q = &queries[..dim];
        assert_eq!(back.search(&vecs, q, 64), g.search(&vecs, q, 64));
        assert!(Hnsw::from_bytes(&g.to_bytes()[..100]).is_none());
    }
}
