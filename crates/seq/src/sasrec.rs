//! SASRec (Kang & McAuley 2018) in burn.

use burn::module::Module;
use burn::nn::attention::generate_autoregressive_mask;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig,
};
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

/// SASRec hyperparameters (saved beside every checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SasRecConfig {
    /// Hidden size (item and position embeddings).
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    /// Inner size of the feed-forward blocks.
    pub inner: usize,
    pub dropout: f64,
    /// Longest history the model reads; longer ones keep their last `max_len` items.
    pub max_len: usize,
    /// Layer norm before (true) or after (false) each block.
    pub pre_norm: bool,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Linear learning-rate warm-up over this many steps.
    pub warmup_steps: usize,
    /// Gradient clipping by global norm (0 = off).
    pub clip_norm: f64,
    /// Epochs without a better validation NDCG@10 before stopping.
    pub patience: usize,
    /// Stop after this many seconds of training (0 = no budget).
    pub time_budget_s: f64,
    pub seed: u64,
}

impl Default for SasRecConfig {
    fn default() -> Self {
        SasRecConfig {
            hidden: 64,
            layers: 2,
            heads: 2,
            inner: 256,
            dropout: 0.2,
            max_len: 200,
            pre_norm: true,
            epochs: 200,
            batch_size: 128,
            lr: 1e-3,
            weight_decay: 0.0,
            warmup_steps: 100,
            clip_norm: 1.0,
            patience: 5,
            time_budget_s: 0.0,
            seed: 42,
        }
    }
}

/// The model. Item id 0 is padding; catalog item `i` is id `i + 1`.
#[derive(Module, Debug)]
pub struct SasRec {
    pub item_emb: Embedding,
    pub pos_emb: Embedding,
    pub encoder: TransformerEncoder,
    pub norm: LayerNorm,
    pub dropout: Dropout,
}

impl SasRecConfig {
    pub fn init(&self, n_items: usize, device: &Device) -> SasRec {
        let init = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        SasRec {
            item_emb: EmbeddingConfig::new(n_items + 1, self.hidden)
                .with_initializer(init.clone())
                .init(device),
            pos_emb: EmbeddingConfig::new(self.max_len, self.hidden)
                .with_initializer(init)
                .init(device),
            encoder: TransformerEncoderConfig::new(
                self.hidden,
                self.inner,
                self.heads,
                self.layers,
            )
            .with_dropout(self.dropout)
            .with_norm_first(self.pre_norm)
            .init(device),
            norm: LayerNormConfig::new(self.hidden).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl SasRec {
    /// Hidden states for left-padded item ids.
    ///
    /// # Shapes
    /// - `items`: `[batch, len]`, 0 = padding
    /// - returns `[batch, len, hidden]`
    pub fn hidden(&self, items: Tensor<2, Int>) -> Tensor<3> {
        let [b, l] = items.dims();
        let device = items.device();
        let pos = Tensor::<1, Int>::arange(0..l as i64, &device)
            .reshape([1, l])
            .repeat_dim(0, b);
        let keep = items
            .clone()
            .not_equal_elem(0)
            .float()
            .unsqueeze_dim::<3>(2);
        let x = self.item_emb.forward(items) + self.pos_emb.forward(pos);
        // Padding positions carry zero vectors (as the original SASRec does).
        let x = self.dropout.forward(x) * keep.clone();
        let mask = generate_autoregressive_mask(b, l, &device);
        let h = self
            .encoder
            .forward(TransformerEncoderInput::new(x).mask_attn(mask));
        self.norm.forward(h) * keep
    }

    /// Scores over every id (column 0 = padding).
    ///
    /// # Shapes
    /// - `h`: `[n, hidden]`; returns `[n, items + 1]`
    pub fn logits(&self, h: Tensor<2>) -> Tensor<2> {
        h.matmul(self.item_emb.weight.val().transpose())
    }
}
