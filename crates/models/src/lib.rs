//! `aisle-models`: recommenders behind one [`Recommender`] trait.
//!
//! Classical models: popularity (global or recent window), item-kNN (cosine
//! with shrinkage), EASE (closed-form linear autoencoder), BPR-MF (Hogwild SGD)
//! and implicit ALS (conjugate gradient), plus a repeat-aware baseline for
//! shops where people buy the same things again. Each has a typed config with
//! documented defaults (overridable key by key, see [`ModelConfig::with_overrides`]),
//! trains on a [`TrainData`] of per-user sequences, scores every item for a
//! user state, and hands its tensors to `aisle-train`'s artifact.
//!
//! ```
//! use aisle_models::{fit, ModelConfig, TrainData};
//! let data = TrainData::new(3, vec![vec![0, 1], vec![0, 2], vec![0]]);
//! let model = fit(&ModelConfig::default_for("pop").unwrap(), &data, &|_, _| {}).unwrap();
//! let mut scores = vec![0.0; 3];
//! model.score(0, &[1], &mut scores);
//! assert!(scores[0] > scores[1]);
//! ```

mod ease;
mod gat;
mod knn;
mod lightgcn;
mod linalg;
mod mf;
mod pop;
mod repeat;

use serde::{Deserialize, Serialize};

pub use ease::EaseConfig;
pub use gat::{attention_weights, Gat, GatConfig, Weighed};
pub use knn::ItemKnnConfig;
pub use lightgcn::{bipartite_csr, LightGcnConfig};
pub use mf::{AlsConfig, BprConfig};
pub use pop::PopConfig;
pub use repeat::RepeatConfig;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model `{0}`; this crate's models: {known}", known = MODEL_NAMES.join(", "))]
    UnknownModel(String),
    #[error("bad hyperparameter for {model}: {message}")]
    BadConfig { model: String, message: String },
    #[error("cannot train on empty data (no users or no items)")]
    EmptyData,
    #[error("{model} needs {needed}: {detail}")]
    TooLarge {
        model: String,
        needed: String,
        detail: String,
    },
    #[error("artifact error: {0}")]
    Artifact(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// The names `aisle bench --models` and `aisle train --model` accept.
pub const MODEL_NAMES: &[&str] = &[
    "pop", "itemknn", "ease", "bpr", "als", "lightgcn", "gat", "repeat",
];

/// Training data: each user's items (dense ids, oldest first; repeats kept).
#[derive(Debug, Clone, Default)]
pub struct TrainData {
    pub n_items: usize,
    pub seqs: Vec<Vec<u32>>,
    /// Interaction times aligned with `seqs`, when the data set has real time.
    pub times: Option<Vec<Vec<i64>>>,
}

impl TrainData {
    pub fn new(n_items: usize, seqs: Vec<Vec<u32>>) -> Self {
        TrainData {
            n_items,
            seqs,
            times: None,
        }
    }

    pub fn n_users(&self) -> usize {
        self.seqs.len()
    }

    /// Training interactions per item.
    pub fn item_counts(&self) -> Vec<u32> {
        let mut c = vec![0u32; self.n_items];
        for s in &self.seqs {
            for &i in s {
                c[i as usize] += 1;
            }
        }
        c
    }

    /// Each user's distinct items, sorted (the binary user-item matrix).
    pub fn user_sets(&self) -> Vec<Vec<u32>> {
        self.seqs
            .iter()
            .map(|s| {
                let mut v = s.clone();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect()
    }
}

/// A trained recommender.
pub trait Recommender: aisle_eval::Scorer + Send {
    /// The model name (`pop`, `als`, ...).
    fn kind(&self) -> &'static str;
    /// Whether the benchmark protocol masks seen items for this model
    /// (true for general models; false for sequence and repeat models).
    fn default_masking(&self) -> bool {
        true
    }
    /// The config it was trained with.
    fn config(&self) -> ModelConfig;
    /// The history item that weighed most in recommending `item` after
    /// `history`, with its weight, for models that can say (GAT's attention).
    fn explain(&self, _history: &[u32], _item: u32) -> Option<(u32, f32)> {
        None
    }
    /// Named f32 tensors (name, shape, data) that make up the model.
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)>;
}

/// A model's hyperparameters, tagged by model name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum ModelConfig {
    Pop(PopConfig),
    #[serde(rename = "itemknn")]
    ItemKnn(ItemKnnConfig),
    Ease(EaseConfig),
    Bpr(BprConfig),
    Als(AlsConfig),
    #[serde(rename = "lightgcn")]
    LightGcn(LightGcnConfig),
    /// Trained by `aisle-graph` (burn); scored here.
    Gat(GatConfig),
    Repeat(RepeatConfig),
}

impl ModelConfig {
    /// The documented defaults of a model.
    pub fn default_for(name: &str) -> Result<ModelConfig> {
        Ok(match name {
            "pop" => ModelConfig::Pop(PopConfig::default()),
            "itemknn" => ModelConfig::ItemKnn(ItemKnnConfig::default()),
            "ease" => ModelConfig::Ease(EaseConfig::default()),
            "bpr" => ModelConfig::Bpr(BprConfig::default()),
            "als" => ModelConfig::Als(AlsConfig::default()),
            "lightgcn" => ModelConfig::LightGcn(LightGcnConfig::default()),
            "gat" => ModelConfig::Gat(GatConfig::default()),
            "repeat" => ModelConfig::Repeat(RepeatConfig::default()),
            other => return Err(ModelError::UnknownModel(other.to_string())),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModelConfig::Pop(_) => "pop",
            ModelConfig::ItemKnn(_) => "itemknn",
            ModelConfig::Ease(_) => "ease",
            ModelConfig::Bpr(_) => "bpr",
            ModelConfig::Als(_) => "als",
            ModelConfig::LightGcn(_) => "lightgcn",
            ModelConfig::Gat(_) => "gat",
            ModelConfig::Repeat(_) => "repeat",
        }
    }

    /// The keys this model accepts.
    pub fn keys(&self) -> Vec<String> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => {
                m.keys().filter(|k| *k != "model").cloned().collect()
            }
            _ => Vec::new(),
        }
    }

    /// Applies `key=value` overrides; the value is parsed as TOML (`0.1`,
    /// `true`, `"text"`; a bare word is taken as a string). An unknown key or
    /// a value of the wrong type is an error naming the key.
    pub fn with_overrides(&self, overrides: &[(String, String)]) -> Result<ModelConfig> {
        if overrides.iter().any(|(k, _)| k == "model") {
            return Err(self.bad(format!(
                "unknown key `model` (known: {})",
                self.keys().join(", ")
            )));
        }
        let cfg: ModelConfig = apply_overrides(self, overrides).map_err(|m| self.bad(m))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn bad(&self, message: String) -> ModelError {
        ModelError::BadConfig {
            model: self.name().to_string(),
            message,
        }
    }

    /// Range checks serde cannot express.
    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, msg: &str| {
            if ok {
                Ok(())
            } else {
                Err(self.bad(msg.to_string()))
            }
        };
        match self {
            ModelConfig::Pop(_) => Ok(()),
            ModelConfig::ItemKnn(c) => {
                check(c.k > 0, "k must be positive")?;
                check(c.shrink >= 0.0, "shrink must be >= 0")
            }
            ModelConfig::Ease(c) => check(c.lambda > 0.0, "lambda must be positive"),
            ModelConfig::Bpr(c) => {
                check(c.factors > 0, "factors must be positive")?;
                check(c.lr > 0.0 && c.lr.is_finite(), "lr must be positive")?;
                check(c.reg >= 0.0, "reg must be >= 0")
            }
            ModelConfig::Als(c) => {
                check(c.factors > 0, "factors must be positive")?;
                check(c.reg >= 0.0, "reg must be >= 0")?;
                check(c.alpha >= 0.0, "alpha must be >= 0")?;
                check(c.cg_steps > 0, "cg_steps must be positive")
            }
            ModelConfig::LightGcn(c) => {
                check(c.factors > 0, "factors must be positive")?;
                check(c.batch_size > 0, "batch_size must be positive")?;
                check(c.lr > 0.0 && c.lr.is_finite(), "lr must be positive")?;
                check(c.reg >= 0.0, "reg must be >= 0")?;
                check(c.time_budget_s >= 0.0, "time_budget_s must be >= 0")
            }
            ModelConfig::Gat(c) => {
                c.check().map_err(|m| self.bad(m))?;
                check(c.time_budget_s >= 0.0, "time_budget_s must be >= 0")
            }
            ModelConfig::Repeat(c) => {
                check(c.decay > 0.0 && c.decay <= 1.0, "decay must be in (0, 1]")?;
                check(c.pop_weight >= 0.0, "pop_weight must be >= 0")
            }
        }
    }
}

/// Applies `key=value` overrides to any serde config (a struct serialising to
/// a JSON object). Values are parsed as TOML scalars (`0.1`, `true`, `"x"`; a
/// bare word is a string). An unknown key or a value of the wrong type is an
/// error message naming it.
pub fn apply_overrides<T: Serialize + serde::de::DeserializeOwned>(
    base: &T,
    overrides: &[(String, String)],
) -> std::result::Result<T, String> {
    let mut v = serde_json::to_value(base).map_err(|e| e.to_string())?;
    let obj = v.as_object_mut().ok_or("configs serialize to objects")?;
    for (key, raw) in overrides {
        if !obj.contains_key(key) {
            let known: Vec<&str> = obj
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "model")
                .collect();
            return Err(format!("unknown key `{key}` (known: {})", known.join(", ")));
        }
        let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        obj.insert(
            key.clone(),
            serde_json::to_value(parsed).map_err(|e| e.to_string())?,
        );
    }
    serde_json::from_value(v).map_err(|e| {
        // Name the override that does not fit (serde's message does not).
        let culprit = overrides.iter().find(|(k, raw)| {
            overrides.len() > 1 && apply_overrides(base, &[(k.clone(), raw.clone())]).is_err()
        });
        match culprit {
            Some((k, raw)) => format!("{k}={raw}: {e}"),
            None if overrides.len() == 1 => format!("{}={}: {e}", overrides[0].0, overrides[0].1),
            None => e.to_string(),
        }
    })
}

/// Progress callback: (done, total) in model-specific units.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Trains a model.
pub fn fit(
    cfg: &ModelConfig,
    data: &TrainData,
    progress: Progress<'_>,
) -> Result<Box<dyn Recommender>> {
    cfg.validate()?;
    if data.n_items == 0 || data.seqs.is_empty() {
        return Err(ModelError::EmptyData);
    }
    Ok(match cfg {
        ModelConfig::Pop(c) => Box::new(pop::Pop::fit(c, data)),
        ModelConfig::ItemKnn(c) => Box::new(knn::ItemKnn::fit(c, data, progress)),
        ModelConfig::Ease(c) => Box::new(ease::Ease::fit(c, data, progress)?),
        ModelConfig::Bpr(c) => Box::new(mf::Bpr::fit(c, data, progress)),
        ModelConfig::Als(c) => Box::new(mf::Als::fit(c, data, progress)),
        ModelConfig::LightGcn(c) => Box::new(lightgcn::LightGcn::fit(c, data, progress)),
        ModelConfig::Gat(_) => {
            return Err(ModelError::BadConfig {
                model: "gat".into(),
                message: "gat is trained with burn by aisle-graph (aisle_graph::fit)".into(),
            })
        }
        ModelConfig::Repeat(c) => Box::new(repeat::Repeat::fit(c, data)),
    })
}

/// Rebuilds a model from its config and [`Recommender::tensors`] (what an
/// `aisle-train` artifact stores).
pub fn from_parts(
    cfg: ModelConfig,
    tensors: std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
) -> Result<Box<dyn Recommender>> {
    let mut t = tensors;
    let mut take = |name: &str| {
        t.remove(name)
            .ok_or_else(|| ModelError::Artifact(format!("missing tensor `{name}`")))
    };
    Ok(match cfg {
        ModelConfig::Pop(c) => Box::new(pop::Pop::from_parts(c, take("scores")?)?),
        ModelConfig::ItemKnn(c) => Box::new(knn::ItemKnn::from_parts(
            c,
            take("neighbors")?,
            take("similarities")?,
        )?),
        ModelConfig::Ease(c) => Box::new(ease::Ease::from_parts(c, take("weights")?)?),
        ModelConfig::Bpr(c) => Box::new(mf::Bpr::from_parts(
            c,
            take("user_factors")?,
            take("item_factors")?,
        )?),
        ModelConfig::Als(c) => Box::new(mf::Als::from_parts(
            c,
            take("user_factors")?,
            take("item_factors")?,
        )?),
        ModelConfig::LightGcn(c) => Box::new(lightgcn::LightGcn::from_parts(
            c,
            take("user_factors")?,
            take("item_factors")?,
        )?),
        ModelConfig::Gat(c) => Box::new(gat::Gat::from_parts(
            c,
            take("user_out")?,
            take("item_out")?,
            take("item_z")?,
            take("attention")?,
        )?),
        ModelConfig::Repeat(c) => Box::new(repeat::Repeat::from_parts(c, take("popularity")?)?),
    })
}

pub(crate) fn shape_err(name: &str, want: &str, got: &[usize]) -> ModelError {
    ModelError::Artifact(format!(
        "tensor `{name}` should be {want}, has shape {got:?}"
    ))
}
