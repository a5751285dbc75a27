//! What a server asks of a model, whatever its kind.

use aisle_models::{ModelConfig, Recommender};
use aisle_seq::SeqModel;

use crate::Model;

/// A model a server can answer with. Item numbers are the model's own (the
/// artifact's `item_ids` order); a history is oldest first.
pub trait Servable: Send + Sync {
    /// Items the model scores.
    fn n_items(&self) -> usize;
    /// A score per item after `history` into `out` (`out.len() == n_items`);
    /// numbers the model does not know are ignored.
    fn score_history(&self, history: &[u32], out: &mut [f32]);
    /// A score per item for how close it is to `item` (its neighbours).
    fn similar(&self, item: u32, out: &mut [f32]) {
        self.score_history(&[item], out);
    }
    /// Work per item scored (the item vectors' width, or the weights read
    /// per item): whether a request is heavy enough to leave the async workers.
    fn width(&self) -> usize;
    /// The history item that weighed most in recommending `item`, with its
    /// weight in [0, 1] (GAT's attention); `None` when the model cannot say.
    fn explain(&self, _history: &[u32], _item: u32) -> Option<(u32, f32)> {
        None
    }
}

impl Servable for SeqModel {
    fn n_items(&self) -> usize {
        self.n_items
    }
    fn score_history(&self, history: &[u32], out: &mut [f32]) {
        SeqModel::score_history(self, history, out);
    }
    /// Cosine between the item vectors.
    fn similar(&self, item: u32, out: &mut [f32]) {
        let d = self.dim();
        let v = self.item_vectors();
        let norm = |r: &[f32]| aisle_core::vector::dot(r, r).sqrt().max(1e-12);
        let Some(me) = v.get(item as usize * d..(item as usize + 1) * d) else {
            out.fill(0.0);
            return;
        };
        let nm = norm(me);
        for (o, r) in out.iter_mut().zip(v.chunks_exact(d)) {
            *o = aisle_core::vector::dot(r, me) / (norm(r) * nm);
        }
    }
    fn width(&self) -> usize {
        self.dim().max(1)
    }
}

/// A classical model with what serving needs to know of it. It scores a
/// history as a user it never saw (the user factors are folded in from the
/// history, or the history's items are the query): a live shopper is rarely
/// one of the training users by number.
pub struct Classical {
    pub model: Box<dyn Recommender>,
    n_items: usize,
    width: usize,
}

impl Classical {
    const UNSEEN_USER: u32 = u32::MAX;

    /// `model` over `n_items` items.
    pub fn new(model: Box<dyn Recommender>, n_items: usize) -> Classical {
        let width = match model.config() {
            ModelConfig::Pop(_) | ModelConfig::Repeat(_) => 1,
            ModelConfig::ItemKnn(c) => c.k,
            // A history's score sums rows of the item-item weights.
            ModelConfig::Ease(_) => n_items,
            ModelConfig::Bpr(c) => c.factors,
            ModelConfig::Als(c) => c.factors,
            ModelConfig::LightGcn(c) => c.factors,
            // A live history is attention over its items, then a dot product per item.
            ModelConfig::Gat(c) => c.factors,
        };
        Classical {
            model,
            n_items,
            width: width.max(1),
        }
    }
}

impl Servable for Classical {
    fn n_items(&self) -> usize {
        self.n_items
    }
    fn score_history(&self, history: &[u32], out: &mut [f32]) {
        let known: Vec<u32> = history
            .iter()
            .copied()
            .filter(|&i| (i as usize) < self.n_items)
            .collect();
        out.fill(0.0);
        self.model.score(Self::UNSEEN_USER, &known, out);
    }
    fn width(&self) -> usize {
        self.width
    }
    fn explain(&self, history: &[u32], item: u32) -> Option<(u32, f32)> {
        self.model.explain(history, item)
    }
}

impl Servable for Model {
    fn n_items(&self) -> usize {
        self.servable().n_items()
    }
    fn score_history(&self, history: &[u32], out: &mut [f32]) {
        self.servable().score_history(history, out)
    }
    fn similar(&self, item: u32, out: &mut [f32]) {
        self.servable().similar(item, out)
    }
    fn width(&self) -> usize {
        self.servable().width()
    }
    fn explain(&self, history: &[u32], item: u32) -> Option<(u32, f32)> {
        self.servable().explain(history, item)
    }
}

impl Model {
    fn servable(&self) -> &dyn Servable {
        match self {
            Model::Classical(m) => m,
            Model::Sequence(m) => m.as_ref(),
        }
    }
}
