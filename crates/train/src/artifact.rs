//! The one artifact of every model kind: a safetensors file
//! ([`aisle_core::tensors`]) whose metadata holds the format version, the
//! kind, its config (JSON), the item ids in the model's order, when it was
//! created, the range of event times it was trained on and, once judged,
//! its hold-out figures. Anything else a trainer reports (dataset, users,
//! best validation NDCG@10...) is kept as further metadata.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use aisle_models::ModelConfig;
use aisle_seq::{Arch, SeqConfig, SeqModel, SideInfo};
use serde::{Deserialize, Serialize};

use crate::{Classical, Result, TrainError};

/// The layout this build writes: one format for every kind.
pub const ARTIFACT_VERSION: u32 = 4;

/// Layouts from before the shared artifact, still read: 3 (sequence models)
/// and 1 (classical models) wrote the same tensors under the same keys.
pub const LEGACY_VERSIONS: &[(u32, &str)] = &[(3, "sequence"), (1, "classical")];

/// Metadata keys the artifact owns (the rest is the trainer's `extra`).
const VERSION: &str = "aisle_artifact_version";
const KIND: &str = "model";
const CONFIG: &str = "config";
const ITEM_IDS: &str = "item_ids";
const N_ITEMS: &str = "n_items";
const SIDE: &str = "side";
const CREATED_AT: &str = "created_at";
const DATA_FROM: &str = "data_from";
const DATA_TO: &str = "data_to";
const OWN: &[&str] = &[
    VERSION,
    KIND,
    CONFIG,
    ITEM_IDS,
    N_ITEMS,
    SIDE,
    CREATED_AT,
    DATA_FROM,
    DATA_TO,
    aisle_core::tensors::CHECKSUM_KEY,
];

/// A trained model of any kind.
pub enum Model {
    /// pop, itemknn, ease, bpr, als, lightgcn, repeat (aisle-models).
    Classical(Classical),
    /// sasrec, gru4rec, lstm (aisle-seq).
    Sequence(Box<SeqModel>),
}

impl Model {
    /// The model name (`als`, `sasrec`, ...).
    pub fn kind(&self) -> &'static str {
        self.parts().kind()
    }
}

/// What an artifact stores of a model: every kind implements it.
pub trait Parts {
    fn kind(&self) -> &'static str;
    /// Named f32 tensors: name, shape, values.
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)>;
    /// The config as JSON.
    fn config_json(&self) -> serde_json::Result<String>;
    /// A sequence model's item count and side information (JSON).
    fn sequence(&self) -> Option<(usize, serde_json::Result<String>)> {
        None
    }
}

impl Parts for SeqModel {
    fn kind(&self) -> &'static str {
        self.arch.name()
    }
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        SeqModel::tensors(self)
    }
    fn config_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(&self.config)
    }
    fn sequence(&self) -> Option<(usize, serde_json::Result<String>)> {
        Some((self.n_items, serde_json::to_string(&self.side_info())))
    }
}

impl Parts for Classical {
    fn kind(&self) -> &'static str {
        self.model.kind()
    }
    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        self.model.tensors()
    }
    fn config_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(&self.model.config())
    }
}

impl Model {
    fn parts(&self) -> &dyn Parts {
        match self {
            Model::Classical(m) => m,
            Model::Sequence(m) => m.as_ref(),
        }
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Model").field(&self.kind()).finish()
    }
}

/// The first and last event time of the data a model was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRange {
    pub from: i64,
    pub to: i64,
}

/// Everything an artifact says about its model, without the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The layout version it was written with.
    pub version: u32,
    pub kind: String,
    /// The model's config as JSON.
    pub config: String,
    /// Item ids in the model's numbering.
    pub item_ids: Vec<String>,
    pub created_at: Option<i64>,
    pub data: Option<DataRange>,
    /// Further metadata from the trainer (dataset, users, best_valid_ndcg10...).
    pub extra: BTreeMap<String, String>,
}

/// A model with its header: what `aisle train` writes and `aisle serve` loads.
#[derive(Debug)]
pub struct Artifact {
    pub header: Header,
    pub model: Model,
}

impl Header {
    /// The header of a new artifact of `model` over `item_ids`, created now.
    pub fn new(model: &dyn Parts, item_ids: Vec<String>) -> Header {
        Header {
            version: ARTIFACT_VERSION,
            kind: model.kind().to_string(),
            config: model.config_json().unwrap_or_default(),
            item_ids,
            created_at: Some(aisle_core::time::unix_now()),
            data: None,
            extra: BTreeMap::new(),
        }
    }

    /// Writes `model` with this header (write, then rename; weights
    /// checksummed): [`Artifact::save`] for a model the caller keeps.
    pub fn save_with(&self, model: &dyn Parts, path: &Path) -> Result<()> {
        let bad = |message: String| TrainError::Artifact {
            path: path.to_path_buf(),
            message,
        };
        let h = self;
        let mut meta: HashMap<String, String> = h.extra.clone().into_iter().collect();
        let mut put = |k: &str, v: String| meta.insert(k.to_string(), v);
        put(VERSION, ARTIFACT_VERSION.to_string());
        put(KIND, model.kind().to_string());
        put(CONFIG, model.config_json().map_err(|e| bad(e.to_string()))?);
        put(
            ITEM_IDS,
            serde_json::to_string(&h.item_ids).map_err(|e| bad(e.to_string()))?,
        );
        if let Some(t) = h.created_at {
            put(CREATED_AT, t.to_string());
        }
        if let Some(r) = h.data {
            put(DATA_FROM, r.from.to_string());
            put(DATA_TO, r.to.to_string());
        }
        if let Some((n, side)) = model.sequence() {
            put(N_ITEMS, n.to_string());
            put(SIDE, side.map_err(|e| bad(e.to_string()))?);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        aisle_core::tensors::write(path, &model.tensors(), meta).map_err(bad)
    }
}

impl Artifact {
    /// A new artifact of `model` over `item_ids`, created now.
    pub fn new(model: Model, item_ids: Vec<String>) -> Artifact {
        let header = Header::new(model.parts(), item_ids);
        Artifact { header, model }
    }

    /// Writes the artifact (write, then rename; weights checksummed).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.header.save_with(self.model.parts(), path)
    }

    /// Reads an artifact of any kind; a corrupt file, an unknown kind, a
    /// version this build does not read or item ids that do not match the
    /// weights are errors that say so.
    pub fn load(path: &Path) -> Result<Artifact> {
        let bad = |message: String| TrainError::Artifact {
            path: path.to_path_buf(),
            message,
        };
        let (tensors, meta) = aisle_core::tensors::read(path).map_err(&bad)?;
        let header = Header::from_meta(path, &meta)?;
        let n = header.item_ids.len();
        let model = if let Some(arch) = Arch::parse(&header.kind) {
            let config: SeqConfig =
                serde_json::from_str(&header.config).map_err(|e| bad(format!("config: {e}")))?;
            let side: Option<SideInfo> = match meta.get(SIDE) {
                Some(s) => serde_json::from_str(s).map_err(|e| bad(format!("side: {e}")))?,
                None => None,
            };
            let m = SeqModel::from_parts(arch, config, n, side, tensors)
                .map_err(|e| bad(e.to_string()))?;
            Model::Sequence(Box::new(m))
        } else {
            let cfg: ModelConfig =
                serde_json::from_str(&header.config).map_err(|e| bad(format!("config: {e}")))?;
            let rows = classical_items(&tensors).ok_or_else(|| bad("no item tensor".into()))?;
            if rows != n {
                return Err(bad(format!("{n} item ids for a model of {rows} items")));
            }
            let m = aisle_models::from_parts(cfg, tensors).map_err(|e| bad(e.to_string()))?;
            Model::Classical(Classical::new(m, n))
        };
        Ok(Artifact { header, model })
    }

    /// The header alone (the weights are not read): for listing a registry.
    pub fn read_header(path: &Path) -> Result<Header> {
        let meta = aisle_core::tensors::read_meta(path).ok_or_else(|| TrainError::Artifact {
            path: path.to_path_buf(),
            message: "not a safetensors file".into(),
        })?;
        Header::from_meta(path, &meta)
    }
}

/// The number of items of a classical model, from the tensor that has one
/// row per item.
fn classical_items(tensors: &aisle_core::tensors::Tensors) -> Option<usize> {
    [
        "scores",
        "neighbors",
        "weights",
        "item_factors",
        "item_out",
        "popularity",
    ]
    .iter()
    .find_map(|k| tensors.get(*k).and_then(|(s, _)| s.first().copied()))
}

impl Header {
    fn from_meta(path: &Path, meta: &HashMap<String, String>) -> Result<Header> {
        let bad = |message: String| TrainError::Artifact {
            path: path.to_path_buf(),
            message,
        };
        let get = |k: &str| {
            meta.get(k).ok_or_else(|| {
                bad(format!(
                    "metadata `{k}` missing: not an Aisle model artifact"
                ))
            })
        };
        let version: u32 = get(VERSION)?
            .parse()
            .map_err(|_| bad("unreadable artifact version".into()))?;
        let kind = get(KIND)?.clone();
        let sequence = Arch::parse(&kind).is_some();
        if !sequence && !aisle_models::MODEL_NAMES.contains(&kind.as_str()) {
            return Err(bad(format!("unknown model kind {kind:?}")));
        }
        let legacy = LEGACY_VERSIONS
            .iter()
            .any(|&(v, family)| v == version && (family == "sequence") == sequence);
        if version != ARTIFACT_VERSION && !legacy {
            return Err(bad(format!(
                "artifact version {version} of a {kind} model: this build reads version {ARTIFACT_VERSION} and the older {}; retrain it with `aisle train`",
                LEGACY_VERSIONS
                    .iter()
                    .map(|(v, f)| format!("{v} ({f})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let item_ids: Vec<String> =
            serde_json::from_str(get(ITEM_IDS)?).map_err(|e| bad(format!("item_ids: {e}")))?;
        let int = |k: &str| meta.get(k).and_then(|s| s.parse::<i64>().ok());
        let data = int(DATA_FROM)
            .zip(int(DATA_TO))
            .map(|(from, to)| DataRange { from, to });
        Ok(Header {
            version,
            kind,
            config: get(CONFIG)?.clone(),
            item_ids,
            created_at: int(CREATED_AT),
            data,
            extra: meta
                .iter()
                .filter(|(k, _)| !OWN.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}
