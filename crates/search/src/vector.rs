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
            }
        }
    }

    /// Removes a vector (swap with the last).
    pub fn remove(&mut self, id: &str) {
        let Some(p) = self.pos.remove(id) else { return };
        let last = self.ids.len() - 1;
        if p != last {
            self.ids.swap(p, last);
            self.text_hash.swap(p, last);
            let d = self.dim;
            let (a, b) = self.vecs.split_at_mut(last * d);
            a[p * d..(p + 1) * d].copy_from_slice(&b[..d]);
            self.pos.insert(self.ids[p].clone(), p);
        }
        self.ids.pop();
        self.text_hash.pop();
        self.vecs.truncate(last * self.dim);
    }

    /// Keeps only the ids `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self.ids.iter().filter(|i| !keep(i)).cloned().collect();
        for id in gone {
            self.remove(&id);
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
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
            let s: f32 = v.iter().zip(query).map(|(a, b)| a * b).sum();
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
        self.ids.len()
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
