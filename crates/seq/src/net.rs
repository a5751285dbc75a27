//! The networks: an item table (item embedding, optionally plus category and
//! price-bucket embeddings), and a sequence body (SASRec's causal
//! transformer, or a GRU/LSTM with masked state updates) that turns a
//! left-padded id sequence into one hidden vector per position. Scores are
//! dot products of a hidden vector with the item table (tied weights).

use aisle_core::rng::Rng;
use burn::module::{Module, Param};
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::activation::{relu, sigmoid, softmax, tanh};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::{Arch, SeqConfig};

/// Category and price bucket of every catalog item (index = item id); 0 means
/// unknown in both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SideInfo {
    pub category: Vec<u32>,
    pub n_categories: usize,
    pub price_bucket: Vec<u32>,
    pub n_buckets: usize,
}

impl SideInfo {
    fn ids(v: &[u32]) -> Vec<i64> {
        // Row 0 of the item table is padding.
        std::iter::once(0)
            .chain(v.iter().map(|&c| c as i64))
            .collect()
    }
}

#[derive(Module, Debug)]
pub struct ItemTable {
    pub item: Embedding,
    pub category: Option<Embedding>,
    pub price: Option<Embedding>,
    #[module(skip)]
    pub side: Option<SideInfo>,
}

impl ItemTable {
    /// Every item's vector, `[items + 1, hidden]` (row 0 = padding).
    pub fn table(&self) -> Tensor<2> {
        let mut t = self.item.weight.val();
        if let Some(side) = &self.side {
            let device = t.device();
            let n = side.category.len() + 1;
            if let Some(c) = &self.category {
                let idx = Tensor::<1, Int>::from_data(
                    TensorData::new(SideInfo::ids(&side.category), [n]),
                    &device,
                );
                t = t + c.weight.val().select(0, idx);
            }
            if let Some(p) = &self.price {
                let idx = Tensor::<1, Int>::from_data(
                    TensorData::new(SideInfo::ids(&side.price_bucket), [n]),
                    &device,
                );
                t = t + p.weight.val().select(0, idx);
            }
        }
        t
    }
}

/// Inverted dropout with masks drawn from the model's own seeded generator
/// (a cheap xoshiro draw per element and one multiply; burn's `Dropout`
/// spends more time in its random number generator than in the multiply).
pub struct DropoutRng<'a> {
    pub p: f64,
    pub rng: &'a mut Rng,
}

fn dropout<const D: usize>(x: Tensor<D>, drop: &mut Option<DropoutRng<'_>>) -> Tensor<D> {
    let Some(d) = drop else { return x };
    if d.p <= 0.0 {
        return x;
    }
    let shape = x.dims();
    let n: usize = shape.iter().product();
    let keep = 1.0 - d.p;
    let scale = (1.0 / keep) as f32;
    // 2^64 * keep as a threshold on raw 64-bit draws.
    let threshold = (keep * u64::MAX as f64) as u64;
    let mask: Vec<f32> = (0..n)
        .map(|_| {
            if d.rng.next_u64() < threshold {
                scale
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::<D>::from_data(TensorData::new(mask, shape), &x.device());
    x * mask
}

/// One transformer block: fused QKV projection, causal multi-head
/// attention, ReLU feed-forward (as in the original SASRec), residuals and
/// layer norm before (pre-norm) or after (post-norm) each sub-block.
#[derive(Module, Debug)]
pub struct Block {
    pub qkv: Linear,
    pub out: Linear,
    pub ff1: Linear,
    pub ff2: Linear,
    pub ln1: LayerNorm,
    pub ln2: LayerNorm,
    pub heads: usize,
    pub pre_norm: bool,
}

impl Block {
    fn attention(&self, x: Tensor<3>, mask: &Tensor<4>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        let hd = d / self.heads;
        let qkv = self.qkv.forward(x);
        let split = |i: usize| {
            qkv.clone()
                .narrow(2, i * d, d)
                .reshape([b, l, self.heads, hd])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let scores = q.matmul(k.transpose()).mul_scalar(1.0 / (hd as f64).sqrt()) + mask.clone();
        let ctx = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, l, d]);
        self.out.forward(ctx)
    }

    fn feed_forward(&self, x: Tensor<3>, drop: &mut Option<DropoutRng<'_>>) -> Tensor<3> {
        self.ff2.forward(dropout(relu(self.ff1.forward(x)), drop))
    }

    fn forward(
        &self,
        x: Tensor<3>,
        mask: &Tensor<4>,
        drop: &mut Option<DropoutRng<'_>>,
    ) -> Tensor<3> {
        if self.pre_norm {
            let a = self.attention(self.ln1.forward(x.clone()), mask);
            let x = x + dropout(a, drop);
            let f = self.feed_forward(self.ln2.forward(x.clone()), drop);
            x + dropout(f, drop)
        } else {
            let a = self.attention(x.clone(), mask);
            let x = self.ln1.forward(x + dropout(a, drop));
            let f = self.feed_forward(x.clone(), drop);
            self.ln2.forward(x + dropout(f, drop))
        }
    }
}

#[derive(Module, Debug)]
pub struct SasRecBody {
    pub pos_emb: Embedding,
    pub blocks: Vec<Block>,
    pub norm: LayerNorm,
}

/// Additive attention mask `[batch, 1, len, len]`: 0 where query `i` may
/// attend key `j` (j <= i and `j` is not padding), -1e4 elsewhere (a padding
/// query sees nothing and attends uniformly; its output is zeroed later).
fn attention_mask(ids: &[i64], b: usize, l: usize, device: &Device) -> Tensor<4> {
    let mut m = vec![0f32; b * l * l];
    for r in 0..b {
        for i in 0..l {
            for j in 0..l {
                if j > i || ids[r * l + j] == 0 {
                    m[(r * l + i) * l + j] = -1e4;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(m, [b, 1, l, l]), device)
}

/// One recurrent layer; `lstm` selects 4 gates instead of GRU's 3.
#[derive(Module, Debug)]
pub struct RecurrentLayer {
    pub input: Linear,
    pub state: Linear,
    pub lstm: bool,
    pub hidden: usize,
}

impl RecurrentLayer {
    /// # Shapes
    /// - `x`: `[batch, len, d_in]`, `keep`: `[batch, len, 1]` (0 at padding:
    ///   the state is carried through unchanged)
    /// - returns `[batch, len, hidden]`
    fn forward(&self, x: Tensor<3>, keep: &Tensor<3>) -> Tensor<3> {
        let [b, l, _] = x.dims();
        let d = self.hidden;
        let device = x.device();
        // Input projections of every time step in one matmul.
        let xs = self.input.forward(x);
        let mut h = Tensor::<2>::zeros([b, d], &device);
        let mut c = Tensor::<2>::zeros([b, d], &device);
        let mut outs = Vec::with_capacity(l);
        for t in 0..l {
            let gates_x = xs
                .clone()
                .narrow(1, t, 1)
                .reshape([b, d * if self.lstm { 4 } else { 3 }]);
            let gates_h = self.state.forward(h.clone());
            let k = keep.clone().narrow(1, t, 1).reshape([b, 1]);
            if self.lstm {
                let g = gates_x + gates_h;
                let i = sigmoid(g.clone().narrow(1, 0, d));
                let f = sigmoid(g.clone().narrow(1, d, d));
                let cand = tanh(g.clone().narrow(1, 2 * d, d));
                let o = sigmoid(g.narrow(1, 3 * d, d));
                let c_new = f * c.clone() + i * cand;
                let h_new = o * tanh(c_new.clone());
                c = c.clone() + k.clone() * (c_new - c);
                h = h.clone() + k * (h_new - h);
            } else {
                let r = sigmoid(gates_x.clone().narrow(1, 0, d) + gates_h.clone().narrow(1, 0, d));
                let z = sigmoid(gates_x.clone().narrow(1, d, d) + gates_h.clone().narrow(1, d, d));
                let n = tanh(gates_x.narrow(1, 2 * d, d) + r * gates_h.narrow(1, 2 * d, d));
                // h' = (1 - z) n + z h = n + z (h - n)
                let h_new = n.clone() + z * (h.clone() - n);
                h = h.clone() + k * (h_new - h);
            }
            outs.push(h.clone());
        }
        Tensor::stack(outs, 1)
    }
}

#[derive(Module, Debug)]
pub struct RecurrentBody {
    pub layers: Vec<RecurrentLayer>,
    pub out: Linear,
}

#[derive(Module, Debug)]
pub enum Body {
    SasRec(SasRecBody),
    Recurrent(RecurrentBody),
}

/// The repeat bias is its parameter times this: Adam moves every parameter
/// by about `lr` per step whatever its gradient's size, and the bias has to
/// travel to around ±10 (a penalty that all but removes seen items on
/// MovieLens) while the embeddings stay near 0.1. Scaled, it gets there in an
/// epoch or two instead of tens.
pub const REPEAT_SCALE: f64 = 10.0;

/// A sequence model: item table + body. Item id 0 is padding; catalog item
/// `i` is id `i + 1`.
#[derive(Module, Debug)]
pub struct SeqNet {
    pub items: ItemTable,
    pub body: Body,
    /// Repeat-bias weights, one per recency bucket (`repeat.rs`), when the
    /// config asks for them.
    pub repeat: Option<Param<Tensor<1>>>,
}

impl SeqConfig {
    /// A freshly initialised network for `n_items` catalog items.
    pub fn init(
        &self,
        arch: Arch,
        n_items: usize,
        side: Option<SideInfo>,
        device: &Device,
    ) -> SeqNet {
        let init = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let emb = |n: usize| {
            EmbeddingConfig::new(n, self.hidden)
                .with_initializer(init.clone())
                .init(device)
        };
        let side = side.filter(|_| self.side_info);
        let items = ItemTable {
            item: emb(n_items + 1),
            category: side
                .as_ref()
                .filter(|s| s.n_categories > 0)
                .map(|s| emb(s.n_categories + 1)),
            price: side
                .as_ref()
                .filter(|s| s.n_buckets > 0)
                .map(|s| emb(s.n_buckets + 1)),
            side,
        };
        let body = match arch {
            Arch::Sasrec => Body::SasRec(SasRecBody {
                pos_emb: emb(self.max_len),
                blocks: (0..self.layers)
                    .map(|_| Block {
                        qkv: LinearConfig::new(self.hidden, 3 * self.hidden).init(device),
                        out: LinearConfig::new(self.hidden, self.hidden).init(device),
                        ff1: LinearConfig::new(self.hidden, self.inner).init(device),
                        ff2: LinearConfig::new(self.inner, self.hidden).init(device),
                        ln1: LayerNormConfig::new(self.hidden).init(device),
                        ln2: LayerNormConfig::new(self.hidden).init(device),
                        heads: self.heads,
                        pre_norm: self.pre_norm,
                    })
                    .collect(),
                norm: LayerNormConfig::new(self.hidden).init(device),
            }),
            Arch::Gru4rec | Arch::Lstm => {
                let lstm = arch == Arch::Lstm;
                let gates = if lstm { 4 } else { 3 };
                Body::Recurrent(RecurrentBody {
                    layers: (0..self.layers)
                        .map(|_| RecurrentLayer {
                            input: LinearConfig::new(self.hidden, gates * self.hidden).init(device),
                            state: LinearConfig::new(self.hidden, gates * self.hidden)
                                .with_bias(false)
                                .init(device),
                            lstm,
                            hidden: self.hidden,
                        })
                        .collect(),
                    out: LinearConfig::new(self.hidden, self.hidden).init(device),
                })
            }
        };
        let repeat = self
            .repeat_bias
            .then(|| Param::from_tensor(Tensor::<1>::zeros([crate::REPEAT_BUCKETS], device)));
        SeqNet {
            items,
            body,
            repeat,
        }
    }
}

impl SeqNet {
    /// Hidden states for left-padded item ids, given the item table;
    /// `drop` is `Some` when training (dropout on), `None` for inference.
    ///
    /// # Shapes
    /// - `ids`: `[batch, len]` row-major, 0 = padding; `table`: `[items + 1, hidden]`
    /// - returns `[batch, len, hidden]`
    pub fn hidden(
        &self,
        ids: &[i64],
        [b, l]: [usize; 2],
        table: &Tensor<2>,
        mut drop: Option<DropoutRng<'_>>,
    ) -> Tensor<3> {
        let device = table.device();
        let keep: Vec<f32> = ids.iter().map(|&i| (i != 0) as u8 as f32).collect();
        let keep = Tensor::<3>::from_data(TensorData::new(keep, [b, l, 1]), &device);
        let id_t = Tensor::<1, Int>::from_data(TensorData::new(ids.to_vec(), [b * l]), &device);
        let d = table.dims()[1];
        let x = table.clone().select(0, id_t).reshape([b, l, d]);
        match &self.body {
            Body::SasRec(s) => {
                // Positions count back from the end (the latest item is
                // always position max_len - 1), so a history scores the same
                // whatever the batch's padded length.
                let max_len = s.pos_emb.weight.val().dims()[0];
                let first = max_len.saturating_sub(l) as i64;
                let pos = Tensor::<1, Int>::arange(first..first + l as i64, &device)
                    .reshape([1, l])
                    .repeat_dim(0, b);
                let x = x + s.pos_emb.forward(pos);
                // Padding positions carry zero vectors (as the original SASRec does).
                let mut h = dropout(x, &mut drop) * keep.clone();
                // Causal, and padding is never attended to: a history
                // scores the same alone or in a padded batch.
                let mask = attention_mask(ids, b, l, &device);
                for block in &s.blocks {
                    h = block.forward(h, &mask, &mut drop);
                }
                s.norm.forward(h) * keep
            }
            Body::Recurrent(r) => {
                let mut h = dropout(x, &mut drop);
                for layer in &r.layers {
                    h = layer.forward(h, &keep);
                }
                r.out.forward(dropout(h, &mut drop)) * keep
            }
        }
    }

    /// The repeat-bias weights in the graph: the parameter times
    /// [`REPEAT_SCALE`].
    pub fn repeat_bias(&self) -> Option<Tensor<1>> {
        self.repeat
            .as_ref()
            .map(|w| w.val().mul_scalar(REPEAT_SCALE))
    }

    /// The repeat-bias weights as plain numbers (empty without them).
    pub fn repeat_weights(&self) -> Vec<f32> {
        self.repeat_bias()
            .map(|w| w.into_data().try_to_vec::<f32>().expect("f32 weights"))
            .unwrap_or_default()
    }

    pub fn device(&self) -> Device {
        self.items.item.weight.val().device()
    }
}
