//! Semantic retrieval: item vectors (unit length) behind a small trait.
//! [`ExactIndex`] scores every vector (exact; fine for catalogs of tens of
//! thousands of items on one core, see BENCHMARKS.md §5) and persists to a
//! file with each vector's text hash, so only changed items are re-embedded.

use std::collections::HashMap;
use std::path::Path;

use crate::{Result, SearchError};

/// Nearest-neighbour search over unit vectors by inner product.
pub trait VectorIndex: Send + Sync {
    /// The `k` best (id, cosine) for `query` among ids `keep` accepts.
    fn search(&self, query: &[f32], k: usize, keep: &dyn Fn(&str) -> bool) -> Vec<(String, f32)>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Brute-force inner product over every vector.
#[derive(Debug, Clone, Default)]
pub struct ExactIndex {
    dim: usize,
    ids: Vec<String>,
    /// Hash of the text each vector was computed from.
    text_hash: Vec<u64>,
    vecs: Vec<f32>,
    /// False for removed rows (kept until [`ExactIndex::compact`] so row
    /// numbers, which an ANN graph refers to, stay stable).
    alive: Vec<bool>,
    pos: HashMap<String, usize>,
}

const MAGIC: &[u8; 8] = b"AISLEVX1";

impl ExactIndex {
    pub fn new(dim: usize) -> ExactIndex {
        ExactIndex {
            dim,
            ..Default::default()
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The text hash stored for `id`, if any.
    pub fn text_hash(&self, id: &str) -> Option<u64> {
        self.pos.get(id).map(|&p| self.text_hash[p])
    }

    /// Adds or replaces a vector.
    pub fn upsert(&mut self, id: &str, text_hash: u64, v: &[f32]) {
        assert_eq!(v.len(), self.dim, "vector size");
        match self.pos.get(id) {
            Some(&p) => {
                self.vecs[p * self.dim..(p + 1) * self.dim].copy_from_slice(v);
                self.text_hash[p] = text_hash;
            }
            None => {
                self.pos.insert(id.to_string(), self.ids.len());
                self.ids.push(id.to_string());
                self.text_hash.push(text_hash);
                self.vecs.extend_from_slice(v);
                self.alive.push(true);
            }
        }
    }

    /// Removes a vector (its row stays as a tombstone until [`ExactIndex::compact`]).
    pub fn remove(&mut self, id: &str) {
        let Some(p) = self.pos.remove(id) else { return };
        self.alive[p] = false;
    }

    /// Rows including tombstones (row numbers are `0..rows()`).
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    /// Every row's vector, row-major (tombstones included).
    pub fn vectors(&self) -> &[f32] {
        &self.vecs
    }

    /// Drops tombstones (renumbers rows).
    pub fn compact(&mut self) {
        if self.pos.len() == self.ids.len() {
            return;
        }
        let mut out = ExactIndex::new(self.dim);
        for (p, id) in self.ids.iter().enumerate() {
            if self.alive[p] {
                out.upsert(
                    id,
                    self.text_hash[p],
                    &self.vecs[p * self.dim..(p + 1) * self.dim],
                );
            }
        }
        *self = out;
    }

    /// A hash of the live rows in row order (ids and text hashes): an ANN
    /// graph saved for one set of rows is only reused for the same rows.
    pub fn fingerprint(&self) -> u64 {
        let mut s = String::with_capacity(self.ids.len() * 24);
        for (p, id) in self.ids.iter().enumerate() {
            if self.alive[p] {
                s.push_str(id);
                s.push('\u{1f}');
                s.push_str(&self.text_hash[p].to_string());
                s.push('\n');
            }
        }
        crate::text_hash(&s) ^ (self.dim as u64).rotate_left(32)
    }

    /// Keeps only the ids `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self.ids.iter().filter(|i| !keep(i)).cloned().collect();
        for id in gone {
            self.remove(&id);
        }
    }

    /// Writes the live rows (tombstones are not stored).
    pub fn save(&self, path: &Path) -> Result<()> {
        if self.pos.len() != self.ids.len() {
            let mut c = self.clone();
            c.compact();
            return c.save(path);
        }
        let mut b = Vec::with_capacity(16 + self.vecs.len() * 4 + self.ids.len() * 24);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&(self.dim as u64).to_le_bytes());
        b.extend_from_slice(&(self.ids.len() as u64).to_le_bytes());
        for (id, h) in self.ids.iter().zip(&self.text_hash) {
            b.extend_from_slice(&h.to_le_bytes());
            b.extend_from_slice(&(id.len() as u32).to_le_bytes());
            b.extend_from_slice(id.as_bytes());
        }
        for x in &self.vecs {
            b.extend_from_slice(&x.to_le_bytes());
        }
        let tmp = path.with_extension("part");
        std::fs::write(&tmp, &b).map_err(|e| SearchError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| SearchError::io(path, e))
    }

    /// Reads a file written by [`ExactIndex::save`]; None if absent or not
    /// a vector file of `dim` (the caller re-embeds).
    pub fn load(path: &Path, dim: usize) -> Option<ExactIndex> {
        let b = std::fs::read(path).ok()?;
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = b.get(at..at + n)?;
            at += n;
            Some(s)
        };
        if take(8)? != MAGIC {
            return None;
        }
        let u64_ = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        if u64_(take(8)?) as usize != dim {
            return None;
        }
        let n = u64_(take(8)?) as usize;
        let mut idx = ExactIndex::new(dim);
        let mut hashes = Vec::with_capacity(n.min(1 << 24));
        let mut ids = Vec::with_capacity(n.min(1 << 24));
        for _ in 0..n {
            hashes.push(u64_(take(8)?));
            let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
            ids.push(String::from_utf8(take(len)?.to_vec()).ok()?);
        }
        let floats = take(n * dim * 4)?;
        let vecs: Vec<f32> = floats
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        for (i, (id, h)) in ids.iter().zip(hashes).enumerate() {
            idx.upsert(id, h, &vecs[i * dim..(i + 1) * dim]);
        }
        Some(idx)
    }
}

impl VectorIndex for ExactIndex {
    fn search(&self, query: &[f32], k: usize, keep: &dyn Fn(&str) -> bool) -> Vec<(String, f32)> {
        if query.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let mut heap: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
        for (i, v) in self.vecs.chunks_exact(self.dim).enumerate() {
            if !self.alive[i] {
                continue;
            }
            let s = crate::hnsw::dot(v, query);
            if heap.len() == k && s <= heap[k - 1].0 {
                continue;
            }
            if !keep(&self.ids[i]) {
                continue;
            }
            let at = heap.partition_point(|(x, _)| *x >= s);
            heap.insert(at, (s, i));
            heap.truncate(k);
        }
        heap.into_iter()
            .map(|(s, i)| (self.ids[i].clone(), s))
            .collect()
    }

    fn len(&self) -> usize {
        self.pos.len()
    }
}

/// Vectors with an optional HNSW graph over their rows: exact search below
/// the size where a graph pays off, approximate above it. New rows join the
/// graph as they are added; removed rows stay in it as tombstones (skipped
/// in results) until the next compaction, which rebuilds it.
#[derive(Debug, Clone)]
pub struct AnnIndex {
    pub exact: ExactIndex,
    graph: Option<crate::hnsw::Hnsw>,
    /// Beam width of a search (at least k).
    pub ef: usize,
}

const GRAPH_MAGIC: &[u8; 8] = b"AISLEHN1";

impl AnnIndex {
    /// Exact search only (until [`AnnIndex::build_graph`]).
    pub fn exact_only(exact: ExactIndex) -> AnnIndex {
        AnnIndex {
            exact,
            graph: None,
            ef: 128,
        }
    }

    pub fn has_graph(&self) -> bool {
        self.graph.is_some()
    }

    /// Compacts the rows and builds the graph over them.
    pub fn build_graph(&mut self, params: crate::hnsw::HnswParams, progress: &dyn Fn(usize)) {
        self.exact.compact();
        self.graph = Some(crate::hnsw::Hnsw::build(
            self.exact.vectors(),
            self.exact.dim(),
            params,
            progress,
        ));
    }

    /// Saves the graph with the fingerprint of the rows it indexes.
    pub fn save_graph(&self, path: &Path) -> Result<()> {
        let Some(g) = &self.graph else { return Ok(()) };
        let mut b = GRAPH_MAGIC.to_vec();
        b.extend_from_slice(&self.exact.fingerprint().to_le_bytes());
        b.extend_from_slice(&g.to_bytes());
        let tmp = path.with_extension("part");
        std::fs::write(&tmp, &b).map_err(|e| SearchError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| SearchError::io(path, e))
    }

    /// Loads a saved graph if it was built for exactly these (compacted)
    /// rows; false otherwise (build one).
    pub fn load_graph(&mut self, path: &Path) -> bool {
        self.exact.compact();
        let Ok(b) = std::fs::read(path) else {
            return false;
        };
        if b.len() < 16 || &b[..8] != GRAPH_MAGIC {
            return false;
        }
        let fp = u64::from_le_bytes(b[8..16].try_into().unwrap_or([0; 8]));
        if fp != self.exact.fingerprint() {
            return false;
        }
        match crate::hnsw::Hnsw::from_bytes(&b[16..]) {
            Some(g) if g.len() == self.exact.rows() => {
                self.graph = Some(g);
                true
            }
            _ => false,
        }
    }

    /// Adds or replaces a vector; a new row joins the graph.
    pub fn upsert(&mut self, id: &str, text_hash: u64, v: &[f32]) {
        self.exact.upsert(id, text_hash, v);
        if let Some(g) = &mut self.graph {
            while g.len() < self.exact.rows() {
                g.insert(self.exact.vectors(), g.len() as u32);
            }
        }
    }

    pub fn remove(&mut self, id: &str) {
        self.exact.remove(id);
    }
}

impl VectorIndex for AnnIndex {
    fn search(&self, query: &[f32], k: usize, keep: &dyn Fn(&str) -> bool) -> Vec<(String, f32)> {
        let Some(g) = &self.graph else {
            return self.exact.search(query, k, keep);
        };
        if query.len() != self.exact.dim() || k == 0 {
            return Vec::new();
        }
        // Widen the beam while filters or tombstones leave fewer than k.
        let mut ef = self.ef.max(k);
        loop {
            let found = g.search(self.exact.vectors(), query, ef);
            let out: Vec<(String, f32)> = found
                .into_iter()
                .filter(|&(p, _)| self.exact.alive[p as usize])
                .map(|(p, s)| (&self.exact.ids[p as usize], s))
                .filter(|(id, _)| keep(id))
                .take(k)
                .map(|(id, s)| (id.clone(), s))
                .collect();
            if out.len() >= k.min(self.exact.len()) {
                return out;
            }
            if ef >= self.exact.rows() / 4 {
                // A very selective filter: scan.
                return self.exact.search(query, k, keep);
            }
            ef *= 4;
        }
    }

    fn len(&self) -> usize {
        self.exact.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn exact_search_filters_updates_and_round_trips() {
        let mut ix = ExactIndex::new(2);
        ix.upsert("a", 1, &unit(&[1.0, 0.0]));
        ix.upsert("b", 2, &unit(&[1.0, 1.0]));
        ix.upsert("c", 3, &unit(&[0.0, 1.0]));
        let q = unit(&[1.0, 0.2]);
        let got: Vec<String> = ix
            .search(&q, 2, &|_| true)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(got, ["a", "b"]);
        let got: Vec<String> = ix
            .search(&q, 2, &|id| id != "a")
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(got, ["b", "c"]);
        ix.upsert("a", 9, &unit(&[0.0, 1.0]));
        assert_eq!(ix.text_hash("a"), Some(9));
        ix.remove("c");
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.rows(), 3, "a tombstone until compaction");
        assert_eq!(ix.search(&q, 1, &|_| true)[0].0, "b");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.bin");
        ix.save(&p).unwrap();
        let back = ExactIndex::load(&p, 2).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.text_hash("b"), Some(2));
        assert_eq!(back.search(&q, 1, &|_| true), ix.search(&q, 1, &|_| true));
        // Wrong size or a corrupt file: None (the caller re-embeds).
        assert!(ExactIndex::load(&p, 3).is_none());
        std::fs::write(&p, b"AISLEVX1garbage").unwrap();
        assert!(ExactIndex::load(&p, 2).is_none());
    }
}

#[cfg(test)]
mod ann_tests {
    use super::*;
    use crate::hnsw::HnswParams;
    use aisle_core::rng::Rng;

    fn random_unit(r: &mut Rng, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|_| r.normal() as f32).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// The graph agrees with exact search, honours filters and removals,
    /// takes new rows, and is reused from disk only for the same rows.
    #[test]
    fn ann_matches_exact_filters_updates_and_persists() {
        let (dim, mut r) = (16, Rng::seed(3));
        let mut exact = ExactIndex::new(dim);
        for i in 0..2000 {
            exact.upsert(&format!("i{i}"), i, &random_unit(&mut r, dim));
        }
        let mut ann = AnnIndex::exact_only(exact.clone());
        ann.build_graph(HnswParams::default(), &|_| {});
        let q = random_unit(&mut r, dim);
        let top = |ix: &dyn VectorIndex, keep: &dyn Fn(&str) -> bool| -> Vec<String> {
            ix.search(&q, 10, keep).into_iter().map(|x| x.0).collect()
        };
        let truth = top(&exact, &|_| true);
        let got = top(&ann, &|_| true);
        let overlap = truth.iter().filter(|t| got.contains(t)).count();
        assert!(overlap >= 9, "{truth:?} vs {got:?}");
        // A filter that keeps 1% of items still returns k results, all allowed.
        let keep = |id: &str| id.ends_with("00");
        let got = top(&ann, &keep);
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|id| keep(id)));
        // Removed rows never come back; new rows are found.
        ann.remove(&truth[0]);
        assert!(!top(&ann, &|_| true).contains(&truth[0]));
        ann.upsert("new", 1, &q);
        assert_eq!(top(&ann, &|_| true)[0], "new");
        // Persisted graph: reused for the same rows, refused for others.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.bin");
        ann.save_graph(&p).unwrap();
        let mut same = AnnIndex::exact_only(ann.exact.clone());
        same.exact.compact();
        let mut fresh = AnnIndex::exact_only(ann.exact.clone());
        fresh.build_graph(HnswParams::default(), &|_| {});
        fresh.save_graph(&p).unwrap();
        assert!(same.load_graph(&p));
        let mut other = AnnIndex::exact_only(exact);
        assert!(!other.load_graph(&p));
    }
}
