//! Hyperparameters: `key=value` overrides (from `--set` or a model-config
//! TOML such as config/models.toml) applied to each kind's defaults.

use std::path::Path;

use aisle_models::ModelConfig;
use aisle_rank::RankerConfig;
use aisle_seq::{Arch, SeqConfig};

use crate::kind::{Kind, PurchaseModel};
use crate::{Result, TrainError};

/// Parsed overrides: (model or None for all, key, value).
pub type Overrides = Vec<(Option<String>, String, String)>;

pub(crate) fn bad(message: String) -> TrainError {
    TrainError::BadConfig(message)
}

/// Parses `key=value` or `model.key=value` settings.
pub fn parse_overrides(sets: &[String]) -> Result<Overrides> {
    sets.iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| bad(format!("--set {s:?}: expected key=value")))?;
            let (model, key) = match k.split_once('.') {
                Some((m, k)) => (Some(m.trim().to_string()), k.trim().to_string()),
                None => (None, k.trim().to_string()),
            };
            if key.is_empty() {
                return Err(bad(format!("--set {s:?}: empty key")));
            }
            Ok((model, key, v.trim().to_string()))
        })
        .collect()
}

/// Reads a model-config TOML (`[model] key = value` tables, see
/// config/models.toml) as overrides scoped to each model.
pub fn file_overrides(path: &Path) -> Result<Overrides> {
    let at = |m: String| bad(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| at(format!("cannot read: {e}")))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| at(format!("not valid TOML: {e}")))?;
    let mut out = Vec::new();
    for (model, v) in table {
        match Kind::parse(&model) {
            Some(Kind::TwoStage) => return Err(at("two-stage has no hyperparameters".into())),
            Some(_) => {}
            None => return Err(at(TrainError::UnknownModel(model).to_string())),
        }
        let toml::Value::Table(keys) = v else {
            return Err(at(format!("`{model}` must be a table of hyperparameters")));
        };
        for (k, v) in keys {
            out.push((Some(model.clone()), k, v.to_string()));
        }
    }
    Ok(out)
}

/// The overrides that apply to `model`: those scoped to it, and the
/// unscoped ones `unscoped` accepts (by key).
fn scoped(
    model: &str,
    unscoped: impl Fn(&String) -> bool,
    overrides: &Overrides,
) -> Vec<(String, String)> {
    overrides
        .iter()
        .filter(|(m, k, _)| match m {
            Some(m) => m == model,
            None => unscoped(k),
        })
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The config of each classical model with the overrides that apply to it.
/// A key given without a model prefix applies to every listed model that
/// has it; it is an error if none does.
pub fn model_configs(models: &[String], overrides: &Overrides) -> Result<Vec<ModelConfig>> {
    let mut out = Vec::new();
    for m in models {
        let base = ModelConfig::default_for(m)?;
        let keys = base.keys();
        out.push(base.with_overrides(&scoped(m, |k| keys.contains(k), overrides))?);
    }
    for (om, k, _) in overrides {
        let used = out.iter().any(|c| match om {
            Some(m) => m == c.name(),
            None => c.keys().contains(k),
        });
        if !used {
            return Err(bad(match om {
                Some(m) => format!("--set {m}.{k}: model `{m}` is not in --models"),
                None => format!("--set {k}: no selected model has a hyperparameter `{k}`"),
            }));
        }
    }
    Ok(out)
}

/// The top-level keys of a config's JSON form.
fn keys_of(v: impl serde::Serialize) -> Vec<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The hyperparameter names of the sequence models (one config struct).
pub fn seq_keys() -> Vec<String> {
    keys_of(SeqConfig::default())
}

/// A sequence model's config: its defaults, then the overrides that name it
/// (or keys it has), then `time_budget` (seconds).
pub fn seq_config(
    model: &str,
    overrides: &Overrides,
    time_budget: Option<f64>,
) -> Result<(Arch, SeqConfig)> {
    let arch =
        Arch::parse(model).ok_or_else(|| bad(format!("`{model}` is not a sequence model")))?;
    let keys = seq_keys();
    let mine = scoped(model, |k| keys.contains(k), overrides);
    let mut cfg = aisle_models::apply_overrides(&SeqConfig::for_arch(arch), &mine)
        .map_err(|m| bad(format!("bad hyperparameter for {model}: {m}")))?;
    if let Some(t) = time_budget {
        if !(t.is_finite() && t >= 0.0) {
            return Err(bad("--time-budget must be a number of seconds >= 0".into()));
        }
        cfg.time_budget_s = t;
    }
    Ok((arch, cfg))
}

/// The keys a purchase model accepts.
pub fn ranker_keys() -> Vec<String> {
    keys_of(RankerConfig::default())
}

/// The ranker config of a purchase model with `key=value` overrides.
pub fn ranker_config(model: PurchaseModel, overrides: &[(String, String)]) -> Result<RankerConfig> {
    let cfg: RankerConfig = aisle_models::apply_overrides(&model.defaults(), overrides)
        .map_err(|m| bad(format!("bad hyperparameter for {}: {m}", model.name())))?;
    cfg.validate()?;
    Ok(cfg)
}

/// The ranker config of `model` from overrides scoped to it or naming a
/// ranker key; with `all_unscoped`, every unscoped override applies to it.
pub fn purchase_config(
    model: PurchaseModel,
    overrides: &Overrides,
    all_unscoped: bool,
) -> Result<RankerConfig> {
    let keys = ranker_keys();
    let mine = scoped(
        model.name(),
        |k| all_unscoped || keys.contains(k),
        overrides,
    );
    ranker_config(model, &mine)
}
