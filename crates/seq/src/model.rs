//! A trained sequence model ready for inference: the network in inference
//! mode, a flat copy of the item vectors for fast scoring, and the training
//! popularity as the fallback for an empty history. Its parts (weights by
//! module path, config) are what an `aisle-train` artifact stores.

use aisle_core::vector::dot_rows;

use aisle_eval::Scorer;
use burn::tensor::{Device, Tensor};

use crate::{params, repeat, Arch, Result, SeqConfig, SeqError, SeqNet, SideInfo};

pub(crate) fn left_padded(seqs: &[&[u32]], len: usize, shift: u32) -> Vec<i64> {
    let mut v = vec![0i64; seqs.len() * len];
    for (r, s) in seqs.iter().enumerate() {
        let s = &s[s.len().saturating_sub(len)..];
        let off = r * len + (len - s.len());
        for (k, &i) in s.iter().enumerate() {
            v[off + k] = (i + shift) as i64;
        }
    }
    v
}

/// Per-user vectors from a sequence model plus the item vectors: scores are
/// dot products, exactly what the model's last position outputs.
pub struct UserVectors<'m> {
    pub dim: usize,
    pub users: Vec<f32>,
    /// The model's item vectors (borrowed, not copied).
    pub items: &'m [f32],
    /// The repeat-bias weights (empty: none): the scorer adds them for the
    /// items of the history it is given.
    pub repeat: &'m [f32],
}

fn dot_all(u: &[f32], items: &[f32], out: &mut [f32]) {
    dot_rows(u, items, out);
}

impl Scorer for UserVectors<'_> {
    fn score(&self, user: u32, history: &[u32], out: &mut [f32]) {
        let d = self.dim;
        dot_all(
            &self.users[user as usize * d..(user as usize + 1) * d],
            self.items,
            out,
        );
        repeat::add_for_history(self.repeat, history, out);
    }
}

/// Top-K for one history, with what the model did with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// (catalog item, score), best first.
    pub items: Vec<(u32, f32)>,
    /// History entries that are not catalog items of this model (ignored).
    pub unknown: usize,
    /// Oldest history entries dropped to fit `max_len`.
    pub truncated: usize,
    /// True when nothing usable was left and popularity answered.
    pub fallback: bool,
}

/// A trained sequence model (inference mode).
pub struct SeqModel {
    pub arch: Arch,
    pub config: SeqConfig,
    pub n_items: usize,
    net: SeqNet,
    /// The item table the network reads (computed once: with side
    /// information it is a sum of embeddings).
    table: Tensor<2>,
    dim: usize,
    /// `[n_items, dim]` item vectors (row i = catalog item i).
    item_vecs: Vec<f32>,
    /// The repeat-bias weights (empty without them).
    repeat: Vec<f32>,
    popularity: Vec<f32>,
}

impl std::fmt::Debug for SeqModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqModel")
            .field("arch", &self.arch)
            .field("n_items", &self.n_items)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl SeqModel {
    pub(crate) fn new(
        arch: Arch,
        config: SeqConfig,
        n_items: usize,
        net: SeqNet,
        popularity: Vec<f32>,
    ) -> SeqModel {
        let table = net.items.table();
        let dim = table.dims()[1];
        let all = table
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 item table");
        SeqModel {
            arch,
            config,
            n_items,
            table,
            dim,
            item_vecs: all[dim..(n_items + 1) * dim].to_vec(),
            repeat: net.repeat_weights(),
            net,
            popularity,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The item vectors, `[n_items, dim]` row-major (what scores are dot
    /// products with; also used for item-to-item similarity).
    pub fn item_vectors(&self) -> &[f32] {
        &self.item_vecs
    }

    /// The learned repeat bias per recency bucket (`floor(log2 d)` for an
    /// item last seen `d` positions back; empty when the model has none).
    pub fn repeat_weights(&self) -> &[f32] {
        &self.repeat
    }

    /// Each item's count in the training part (the empty-history fallback;
    /// 0 = the model never trained on the item).
    pub fn popularity(&self) -> &[f32] {
        &self.popularity
    }

    /// The network (inference mode), e.g. to inspect or export it.
    pub fn net(&self) -> &SeqNet {
        &self.net
    }

    /// An untrained model (seeded random weights): for latency benchmarks
    /// and tests of the serving path.
    pub fn init(arch: Arch, config: SeqConfig, n_items: usize, side: Option<SideInfo>) -> SeqModel {
        let device = Device::default();
        device.seed(config.seed);
        let net = config.init(arch, n_items, side, &device);
        SeqModel::new(arch, config, n_items, net, vec![0.0; n_items])
    }

    /// The network's last-position state for each history, `[n, dim]` flat.
    fn states(&self, histories: &[&[u32]]) -> Vec<f32> {
        let d = self.dim;
        let mut users = Vec::with_capacity(histories.len() * d);
        for chunk in histories.chunks(256) {
            let len = chunk
                .iter()
                .map(|h| h.len())
                .max()
                .unwrap_or(1)
                .clamp(1, self.config.max_len);
            let ids = left_padded(chunk, len, 1);
            let h = self
                .net
                .hidden(&ids, [chunk.len(), len], &self.table, None)
                .narrow(1, len - 1, 1)
                .reshape([chunk.len(), d]);
            users.extend(h.into_data().try_to_vec::<f32>().expect("f32 states"));
        }
        users
    }

    /// The model's vector for each history (its last position), batched.
    /// Histories are truncated to their last `max_len` items.
    pub fn user_vectors(&self, histories: &[&[u32]]) -> UserVectors<'_> {
        UserVectors {
            dim: self.dim,
            users: self.states(histories),
            items: &self.item_vecs,
            repeat: &self.repeat,
        }
    }

    /// Scores of every catalog item after `history` (ids `>= n_items` are
    /// ignored). Returns (unknown, truncated) counts; all zeros if nothing
    /// usable is left, so the caller can fall back.
    pub fn score_history(&self, history: &[u32], out: &mut [f32]) -> (usize, usize, bool) {
        let known: Vec<u32> = history
            .iter()
            .copied()
            .filter(|&i| (i as usize) < self.n_items)
            .collect();
        let unknown = history.len() - known.len();
        let truncated = known.len().saturating_sub(self.config.max_len);
        if known.is_empty() {
            out.copy_from_slice(&self.popularity);
            return (unknown, 0, true);
        }
        let u = self.states(&[&known]);
        dot_all(&u, &self.item_vecs, out);
        // The whole history counts as seen, not only the last max_len.
        repeat::add_for_history(&self.repeat, &known, out);
        (unknown, truncated, false)
    }

    /// Top `k` items after `history`, skipping items for which `exclude` is
    /// true. An empty (or all-unknown) history gets the training popularity.
    pub fn recommend(
        &self,
        history: &[u32],
        k: usize,
        exclude: impl Fn(u32) -> bool,
    ) -> Recommendation {
        let mut scores = vec![0f32; self.n_items];
        let (unknown, truncated, fallback) = self.score_history(history, &mut scores);
        let top = aisle_eval::top_k(&scores, k, |i| exclude(i as u32));
        Recommendation {
            items: top.into_iter().map(|i| (i, scores[i as usize])).collect(),
            unknown,
            truncated,
            fallback,
        }
    }

    /// The model's tensors: the network's parameters by module path and the
    /// training popularity (what an artifact stores).
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut tensors = params::collect(&self.net);
        tensors.push((
            "popularity".into(),
            vec![self.n_items],
            self.popularity.clone(),
        ));
        tensors
    }

    /// The category and price side information the item table was built with.
    pub fn side_info(&self) -> Option<&SideInfo> {
        self.net.items.side.as_ref()
    }

    /// Rebuilds a model from [`SeqModel::tensors`]; a missing tensor, one
    /// left over or a shape that does not match the config is an error.
    pub fn from_parts(
        arch: Arch,
        config: SeqConfig,
        n_items: usize,
        side: Option<SideInfo>,
        mut tensors: params::Tensors,
    ) -> Result<SeqModel> {
        let art = SeqError::Artifact;
        let popularity = match tensors.remove("popularity") {
            Some((s, v)) if s == [n_items] => v,
            _ => return Err(art("popularity missing or of the wrong size".into())),
        };
        let device = Device::default();
        let net = config.init(arch, n_items, side, &device);
        let net = params::restore(net, tensors, &device).map_err(art)?;
        Ok(SeqModel::new(arch, config, n_items, net, popularity))
    }
}

impl Scorer for SeqModel {
    /// Runs the network on `history` (the inference path serving uses).
    fn score(&self, _user: u32, history: &[u32], out: &mut [f32]) {
        self.score_history(history, out);
    }
}
