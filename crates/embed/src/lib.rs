//! `aisle-embed`: the all-MiniLM-L6-v2 sentence encoder in Rust.
//!
//! A BERT encoder written with burn (the engine's one tensor library):
//! word + position + token-type embeddings and LayerNorm, then 6 post-norm
//! layers of 12-head self-attention and a GELU (erf) feed-forward, mean
//! pooling over the attention mask and L2 normalisation — what
//! sentence-transformers computes for this model. Weights come from the
//! model's own `model.safetensors`, tokens from its `tokenizer.json` (the
//! `tokenizers` crate). `scripts/fetch-embedder.sh` installs the files.
//!
//! # Shapes
//! `b` texts in a batch, `l` tokens (the longest in the batch, at most
//! [`MAX_TOKENS`]), `h` = 384 hidden, 12 heads of 32, inner 1536.

use std::path::{Path, PathBuf};

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

/// Tokens per text beyond which it is truncated (sentence-transformers'
/// `max_seq_length` for this model).
pub const MAX_TOKENS: usize = 256;
/// Texts per forward pass.
pub const BATCH: usize = 32;

const HEADS: usize = 12;
const EPS: f32 = 1e-12;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedder not found in {0} (run scripts/fetch-embedder.sh or set AISLE_EMBEDDER_DIR)")]
    Missing(PathBuf),
    #[error("{path}: {message}")]
    Bad { path: PathBuf, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

pub type Result<T, E = EmbedError> = std::result::Result<T, E>;

/// Where the embedder is looked for when the caller names no folder:
/// `models/all-MiniLM-L6-v2` in the working directory or up to three
/// folders above it, else in the repository the running binary was built
/// in (`target/<profile>/..`). The library reads no environment; the
/// binary maps `AISLE_EMBEDDER_DIR` to an explicit folder.
pub fn default_dir() -> PathBuf {
    let rel = Path::new("models").join("all-MiniLM-L6-v2");
    if rel.join("model.safetensors").exists() {
        return rel;
    }
    // From a folder inside the repository (e.g. a crate's, as tests run).
    if let Ok(cwd) = std::env::current_dir() {
        for up in cwd.ancestors().skip(1).take(3) {
            let p = up.join(&rel);
            if p.join("model.safetensors").exists() {
                return p;
            }
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        for up in exe.ancestors().skip(1).take(4) {
            let p = up.join(&rel);
            if p.join("model.safetensors").exists() {
                return p;
            }
        }
    }
    rel
}

struct Linear {
    /// `[in, out]` (transposed once at load from the checkpoint's `[out, in]`).
    w: Tensor<2>,
    /// The same values as half floats, [`pack`]ed for [`few_rows`].
    host: Vec<u16>,
    b: Tensor<1>,
}

/// erf(x) as a rational function on [-4, 4] (±1 beyond, as in f32): the
/// approximation Eigen and XLA vectorise, within a few ulps of libm's erff
/// (tested) but branch-free, so the GELU pass auto-vectorises.
#[inline(always)]
fn erf_fast(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_1e-3;
    p = x2 * p + -1.609_603_3e-2;
    let p = x * p;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

/// Exact (erf) GELU, `x·(1 + erf(x/√2))/2`, in one pass over the data.
fn gelu(x: Tensor<3>) -> Tensor<3> {
    let dims = x.dims();
    let device = x.device();
    let mut v: Vec<f32> = x.into_data().try_into_vec::<f32>().unwrap_or_default();
    for y in v.iter_mut() {
        *y = 0.5 * *y * (1.0 + erf_fast(*y * std::f32::consts::FRAC_1_SQRT_2));
    }
    Tensor::from_data(TensorData::new(v, dims), &device)
}

/// Products with fewer rows than this (one query's tokens) go through
/// [`few_rows`] instead of burn's matmul.
const FEW_ROWS: usize = 16;

impl Linear {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, l, inn] = x.dims();
        let out = self.b.dims()[0];
        if b * l < FEW_ROWS {
            let device = x.device();
            let xs: Vec<f32> = x.into_data().try_into_vec::<f32>().unwrap_or_default();
            let bias: Vec<f32> = self.b.to_data().try_into_vec::<f32>().unwrap_or_default();
            let y = few_rows(&xs, inn, &self.host, &bias);
            return Tensor::from_data(TensorData::new(y, [b, l, out]), &device);
        }
        let x = x.reshape([b * l, inn]);
        let y = x.matmul(self.w.clone()) + self.b.clone().unsqueeze::<2>();
        y.reshape([b, l, out])
    }
}

/// Output columns per panel of [`pack`]ed weights.
const PANEL: usize = 32;

/// `W` (`[inn, out]`, row-major) as panels of [`PANEL`] output columns, each
/// panel `[inn, PANEL]` contiguous (the last one zero-padded): the layout
/// [`few_rows`] streams through, one panel at a time, in address order.
fn pack(w: &[f32], inn: usize, out: usize) -> Vec<u16> {
    let panels = out.div_ceil(PANEL);
    let mut p = vec![0u16; panels * inn * PANEL];
    for (k, row) in w.chunks_exact(out).enumerate().take(inn) {
        for (j, v) in row.iter().enumerate() {
            p[(j / PANEL) * inn * PANEL + k * PANEL + j % PANEL] =
                half::f16::from_f32(*v).to_bits();
        }
    }
    p
}

/// IEEE half bits to f32, branch-free so a panel row converts in a few
/// vector instructions; half subnormals (|w| < 6.1e-5) become 0.
#[inline(always)]
fn f16_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let mag = h & 0x7fff;
    let bits = ((h & 0x8000) << 16) | ((mag << 13) + (112 << 23));
    let bits = if mag < 0x0400 {
        (h & 0x8000) << 16
    } else {
        bits
    };
    f32::from_bits(bits)
}

/// `x·W + b` for a few rows `x` (`[rows, inn]`), `W` [`pack`]ed: a
/// register-blocked kernel (up to 8 rows x 2 vectors of outputs held in
/// registers; `W` read once per 8 rows, sequentially) compiled for the best
/// vector instructions the CPU has (pulp's run-time dispatch: AVX-512,
/// AVX2+FMA, else scalar). `gemm` pads the row side to its block height (64
/// rows with AVX-512), so a 7-token query would waste most of every block.
fn few_rows(x: &[f32], inn: usize, packed: &[u16], bias: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; (x.len() / inn.max(1)) * bias.len()];
    pulp::Arch::new().dispatch(FewRows {
        x,
        inn,
        packed,
        bias,
        y: &mut y,
    });
    y
}

struct FewRows<'a> {
    x: &'a [f32],
    inn: usize,
    packed: &'a [u16],
    bias: &'a [f32],
    y: &'a mut [f32],
}

impl pulp::WithSimd for FewRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let FewRows {
            x,
            inn,
            packed,
            bias,
            y,
        } = self;
        let out = bias.len();
        for (xs, ys) in x.chunks(8 * inn).zip(y.chunks_mut(8 * out)) {
            match xs.len() / inn {
                1 => block::<S, 1>(simd, xs, packed, bias, ys),
                2 => block::<S, 2>(simd, xs, packed, bias, ys),
                3 => block::<S, 3>(simd, xs, packed, bias, ys),
                4 => block::<S, 4>(simd, xs, packed, bias, ys),
                5 => block::<S, 5>(simd, xs, packed, bias, ys),
                6 => block::<S, 6>(simd, xs, packed, bias, ys),
                7 => block::<S, 7>(simd, xs, packed, bias, ys),
                _ => block::<S, 8>(simd, xs, packed, bias, ys),
            }
        }
    }
}

/// `R` rows of `x·W + b` (see [`few_rows`]).
#[inline(always)]
fn block<S: pulp::Simd, const R: usize>(
    simd: S,
    x: &[f32],
    packed: &[u16],
    bias: &[f32],
    y: &mut [f32],
) {
    let lanes = S::F32_LANES;
    let width = 2 * lanes;
    let out = bias.len();
    let inn = x.len() / R;
    let load =
        |s: &[f32]| -> S::f32s { bytemuck::pod_read_unaligned(bytemuck::cast_slice(&s[..lanes])) };
    for (p, panel) in packed.chunks_exact(inn * PANEL).enumerate() {
        // A panel in passes of two vectors (one pass with AVX-512).
        for sub in (0..PANEL).step_by(width) {
            // The last panel's padding columns past `out` (a width that is
            // not a multiple of the panel) have nowhere to go.
            if p * PANEL + sub >= out {
                break;
            }
            let mut acc = [[simd.splat_f32s(0.0); 2]; R];
            for (k, wk) in panel.chunks_exact(PANEL).enumerate() {
                let mut wf = [0f32; PANEL];
                for (d, h) in wf.iter_mut().zip(wk) {
                    *d = f16_to_f32(*h);
                }
                let (w0, w1) = (load(&wf[sub..]), load(&wf[sub + lanes..]));
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = simd.splat_f32s(x[r * inn + k]);
                    a[0] = simd.mul_add_e_f32s(xv, w0, a[0]);
                    a[1] = simd.mul_add_e_f32s(xv, w1, a[1]);
                }
            }
            let j0 = p * PANEL + sub;
            let n = width.min(out.saturating_sub(j0));
            for (r, a) in acc.iter().enumerate() {
                let vals: &[f32] = bytemuck::cast_slice(a.as_slice());
                let dst = &mut y[r * out + j0..r * out + j0 + n];
                for ((d, v), b) in dst.iter_mut().zip(vals).zip(&bias[j0..]) {
                    *d = v + b;
                }
            }
        }
    }
}

struct Norm {
    g: Tensor<1>,
    b: Tensor<1>,
}

impl Norm {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mean = x.clone().mean_dim(2);
        let xc = x - mean;
        let var = xc.clone().powi_scalar(2).mean_dim(2);
        xc / (var + EPS).sqrt() * self.g.clone().unsqueeze::<3>() + self.b.clone().unsqueeze::<3>()
    }
}

struct Layer {
    /// Query, key and value fused: output `[.., 3·hidden]`.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    inner: Linear,
    out: Linear,
    out_norm: Norm,
}

/// The sentence encoder.
pub struct Embedder {
    device: Device,
    word: Tensor<2>,
    position: Tensor<2>,
    token_type: Tensor<2>,
    norm: Norm,
    layers: Vec<Layer>,
    tokenizer: tokenizers::Tokenizer,
    hidden: usize,
    dir: PathBuf,
    /// One worker thread for single short texts (see [`Embedder::embed_one`]).
    single: std::sync::OnceLock<Option<rayon::ThreadPool>>,
    /// See [`Embedder::whole_words`].
    whole_words: std::sync::OnceLock<std::sync::Arc<std::collections::HashSet<String>>>,
}

/// The layer count from `config.json`, after checking it describes
/// all-MiniLM-L6-v2's shape (hidden 384, 12 heads, gelu).
fn n_layers(dir: &Path) -> Result<usize> {
    let cfg_path = dir.join("config.json");
    let bad = |message: String| EmbedError::Bad {
        path: cfg_path.clone(),
        message,
    };
    let cfg: serde_json::Value = std::fs::read(&cfg_path)
        .map_err(|e| bad(e.to_string()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| bad(e.to_string())))?;
    let get = |k: &str| cfg[k].as_u64().map(|v| v as usize);
    let (hidden, layers, heads) = (
        get("hidden_size"),
        get("num_hidden_layers"),
        get("num_attention_heads"),
    );
    if (hidden, heads) != (Some(384), Some(HEADS)) || cfg["hidden_act"] != "gelu" {
        return Err(bad(
            "expected a BERT with hidden_size 384, 12 heads and gelu (all-MiniLM-L6-v2)".into(),
        ));
    }
    layers.ok_or_else(|| bad("no num_hidden_layers".into()))
}

/// The WordPiece tokenizer of `tokenizer.json`, unpadded, truncated at [`MAX_TOKENS`].
fn tokenizer(dir: &Path) -> Result<tokenizers::Tokenizer> {
    let tok_path = dir.join("tokenizer.json");
    let mut tokenizer =
        tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| EmbedError::Bad {
            path: tok_path.clone(),
            message: e.to_string(),
        })?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: MAX_TOKENS,
            ..Default::default()
        }))
        .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}

impl Embedder {
    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Embedder> {
        // The model's config and tokenizer, then its weights (below).
        let model = dir.join("model.safetensors");
        if !model.exists() {
            return Err(EmbedError::Missing(dir.to_path_buf()));
        }
        let bad = |path: &Path, message: String| EmbedError::Bad {
            path: path.to_path_buf(),
            message,
        };
        let n_layers = n_layers(dir)?;
        let bytes = std::fs::read(&model).map_err(|e| bad(&model, e.to_string()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(&model, e.to_string()))?;
        let device = Device::default();
        let load = |name: &str, dims: usize| -> Result<(Vec<f32>, Vec<usize>)> {
            let t = st
                .tensor(name)
                .map_err(|e| bad(&model, format!("{name}: {e}")))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != dims {
                return Err(bad(
                    &model,
                    format!("{name}: expected a {dims}-d f32 tensor"),
                ));
            }
            let data: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Ok((data, t.shape().to_vec()))
        };
        let t2 = |name: &str| -> Result<Tensor<2>> {
            let (d, s) = load(name, 2)?;
            Ok(Tensor::from_data(TensorData::new(d, [s[0], s[1]]), &device))
        };
        let t1 = |name: &str| -> Result<Tensor<1>> {
            let (d, s) = load(name, 1)?;
            Ok(Tensor::from_data(TensorData::new(d, [s[0]]), &device))
        };
        // Weights stored [in, out] and contiguous (a transposed view would
        // be re-laid out by every matmul).
        let contiguous = |t: Tensor<2>| -> Tensor<2> { Tensor::from_data(t.into_data(), &device) };
        let packed = |w: &Tensor<2>| -> Vec<u16> {
            let [inn, out] = w.dims();
            pack(
                &w.to_data().try_into_vec::<f32>().unwrap_or_default(),
                inn,
                out,
            )
        };
        let linear = |p: &str| -> Result<Linear> {
            let w = contiguous(t2(&format!("{p}.weight"))?.transpose());
            Ok(Linear {
                host: packed(&w),
                w,
                b: t1(&format!("{p}.bias"))?,
            })
        };
        // Query, key and value as one [in, 3·out] product.
        let fused = |p: &str| -> Result<Linear> {
            let parts =
                ["query", "key", "value"].map(|n| linear(&format!("{p}.attention.self.{n}")));
            let [q, k, v] = parts;
            let (q, k, v) = (q?, k?, v?);
            let w = contiguous(Tensor::cat(vec![q.w, k.w, v.w], 1));
            Ok(Linear {
                host: packed(&w),
                w,
                b: Tensor::cat(vec![q.b, k.b, v.b], 0),
            })
        };
        let norm = |p: &str| -> Result<Norm> {
            Ok(Norm {
                g: t1(&format!("{p}.weight"))?,
                b: t1(&format!("{p}.bias"))?,
            })
        };
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                qkv: fused(&p)?,
                attn_out: linear(&format!("{p}.attention.output.dense"))?,
                attn_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                inner: linear(&format!("{p}.intermediate.dense"))?,
                out: linear(&format!("{p}.output.dense"))?,
                out_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let tokenizer = tokenizer(dir)?;
        Ok(Embedder {
            word: t2("embeddings.word_embeddings.weight")?,
            position: t2("embeddings.position_embeddings.weight")?,
            token_type: t2("embeddings.token_type_embeddings.weight")?,
            norm: norm("embeddings.LayerNorm")?,
            layers,
            tokenizer,
            hidden: 384,
            dir: dir.to_path_buf(),
            device,
            single: std::sync::OnceLock::new(),
            whole_words: std::sync::OnceLock::new(),
        })
    }

    /// Vector size (384).
    pub fn dim(&self) -> usize {
        self.hidden
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tokenizer's whole words (lower-case letters, 2+ of them; not
    /// word pieces): words the language knows, which spelling correction
    /// leaves alone. Read from the vocabulary once; every caller (each
    /// shop's search) shares the set.
    pub fn whole_words(&self) -> std::sync::Arc<std::collections::HashSet<String>> {
        self.whole_words
            .get_or_init(|| {
                std::sync::Arc::new(
                    self.tokenizer
                        .get_vocab(false)
                        .into_keys()
                        .filter(|w| w.len() >= 2 && w.chars().all(|c| c.is_ascii_lowercase()))
                        .collect(),
                )
            })
            .clone()
    }

    /// Token ids of a text ([CLS] ... [SEP], truncated to [`MAX_TOKENS`]).
    pub fn tokens(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// L2-normalised sentence vectors, one per text, in order. Texts are
    /// batched by length ([`BATCH`] per forward pass).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut tokens: Vec<(usize, Vec<u32>)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| self.tokens(t).map(|ids| (i, ids)))
            .collect::<Result<_>>()?;
        // Similar lengths together: less padding.
        tokens.sort_by_key(|(_, ids)| ids.len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in tokens.chunks(BATCH) {
            let ids: Vec<&[u32]> = chunk.iter().map(|(_, t)| t.as_slice()).collect();
            let vecs = self.forward(&ids);
            for ((i, _), v) in chunk.iter().zip(vecs) {
                out[*i] = v;
            }
        }
        Ok(out)
    }

    /// The vector of one text (a search query), computed on one thread: a
    /// short text makes products of a few rows, bound by reading the weights,
    /// and splitting them over threads costs more than it saves (a 5-word
    /// query: 9.9 ms p50 on one thread, 13.8 ms on two; BENCHMARKS.md §5).
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        let pool = self.single.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "aisle-embed-query".into())
                .build()
                .ok()
        });
        let run = || self.embed(&[text]).map(|mut v| v.pop().unwrap_or_default());
        match pool {
            Some(p) => p.install(run),
            None => run(),
        }
    }

    /// One vector per token sequence (each starts with [CLS], ends with [SEP]).
    fn forward(&self, batch: &[&[u32]]) -> Vec<Vec<f32>> {
        let b = batch.len();
        let l = batch.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let h = self.hidden;
        let mut ids = vec![0i64; b * l];
        let mut mask = vec![0f32; b * l];
        for (r, t) in batch.iter().enumerate() {
            for (c, &id) in t.iter().enumerate() {
                ids[r * l + c] = i64::from(id);
                mask[r * l + c] = 1.0;
            }
        }
        let dev = &self.device;
        let idx = Tensor::<1, Int>::from_data(TensorData::new(ids, [b * l]), dev);
        let pos = self.position.clone().slice([0..l, 0..h]).unsqueeze::<3>();
        let typ = self.token_type.clone().slice([0..1, 0..h]).unsqueeze::<3>();
        let x = self.word.clone().select(0, idx).reshape([b, l, h]) + pos + typ;
        let mut x = self.norm.forward(x);
        let m = Tensor::<2>::from_data(TensorData::new(mask.clone(), [b, l]), dev);
        // Additive mask over keys: 0 for tokens, a large negative for padding.
        let bias = (m.clone() - 1.0).mul_scalar(1e9).reshape([b, 1, 1, l]);
        let hd = h / HEADS;
        let scale = 1.0 / (hd as f32).sqrt();
        for layer in &self.layers {
            let split = |t: Tensor<3>| t.reshape([b, l, HEADS, hd]).swap_dims(1, 2);
            let qkv = layer.qkv.forward(x.clone());
            let q = split(qkv.clone().narrow(2, 0, h));
            let k = split(qkv.clone().narrow(2, h, h));
            let v = split(qkv.narrow(2, 2 * h, h));
            let att = softmax(
                q.matmul(k.swap_dims(2, 3)).mul_scalar(scale) + bias.clone(),
                3,
            );
            let ctx = att.matmul(v).swap_dims(1, 2).reshape([b, l, h]);
            x = layer.attn_norm.forward(x + layer.attn_out.forward(ctx));
            let inner = gelu(layer.inner.forward(x.clone()));
            x = layer.out_norm.forward(x + layer.out.forward(inner));
        }
        // Mean over real tokens, then unit length.
        let m3 = m.reshape([b, l, 1]);
        let summed = (x * m3.clone()).sum_dim(1).reshape([b, h]);
        let counts = m3.sum_dim(1).reshape([b, 1]).clamp_min(1.0);
        let mean = summed / counts;
        let flat: Vec<f32> = mean.into_data().try_to_vec::<f32>().unwrap_or_default();
        flat.chunks_exact(h)
            .map(|v| {
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter().map(|x| x / n).collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn half_bits_convert_like_half() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h);
            if want.is_nan() || want.is_infinite() {
                continue;
            }
            let want = if h & 0x7c00 == 0 { 0.0 } else { want.to_f32() };
            assert_eq!(
                super::f16_to_f32(h).to_bits() & 0x7fff_ffff,
                want.to_bits() & 0x7fff_ffff,
                "{h:#x}"
            );
        }
    }

    /// The few-rows kernel against a plain product (weights rounded to half
    /// as the kernel stores them), for every row count it dispatches on and
    /// an output width that is not a multiple of the panel.
    #[test]
    fn few_rows_matches_a_plain_product() {
        let (inn, out) = (48, 70);
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let w: Vec<f32> = (0..inn * out).map(|_| next()).collect();
        let bias: Vec<f32> = (0..out).map(|_| next()).collect();
        let packed = super::pack(&w, inn, out);
        for rows in 1..super::FEW_ROWS {
            let x: Vec<f32> = (0..rows * inn).map(|_| next()).collect();
            let got = super::few_rows(&x, inn, &packed, &bias);
            for r in 0..rows {
                for j in 0..out {
                    let want: f32 = bias[j]
                        + (0..inn)
                            .map(|k| x[r * inn + k] * half::f16::from_f32(w[k * out + j]).to_f32())
                            .sum::<f32>();
                    let g = got[r * out + j];
                    assert!(
                        (g - want).abs() < 1e-4,
                        "rows {rows} r {r} j {j}: {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn fast_erf_matches_libm() {
        let mut worst = 0f32;
        for k in -60_000..=60_000 {
            let x = k as f32 / 10_000.0;
            let want = libm_erf(x);
            worst = worst.max((super::erf_fast(x) - want).abs());
        }
        assert!(worst < 2e-6, "max |error| {worst}");
    }

    /// erf by its series / continued fraction in f64 (a reference, not fast).
    fn libm_erf(x: f32) -> f32 {
        let x = x as f64;
        // Abramowitz-Stegun 7.1.26 is too coarse for a reference; use the
        // Taylor series near 0 and the complementary continued fraction beyond.
        if x.abs() < 2.5 {
            let (mut term, mut sum, mut n) = (x, x, 0.0f64);
            loop {
                n += 1.0;
                term *= -x * x / n;
                let add = term / (2.0 * n + 1.0);
                sum += add;
                if add.abs() < 1e-17 {
                    break;
                }
            }
            (sum * 2.0 / std::f64::consts::PI.sqrt()) as f32
        } else {
            let a = x.abs();
            // erfc(a) = exp(-a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...))))
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / f;
            (x.signum() * (1.0 - erfc)) as f32
        }
    }
}
