//! Versioned model artifacts: one safetensors file holding the tensors, with
//! the format version, model kind and config (JSON) in its metadata.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::{from_parts, ModelConfig, ModelError, Recommender, Result};

/// Bumped whenever the tensors of any model change meaning or layout.
pub const ARTIFACT_VERSION: u32 = 1;

/// Writes a model to `path` (extra metadata, e.g. training data range, is kept).
pub fn save(model: &dyn Recommender, path: &Path, extra: &[(&str, String)]) -> Result<()> {
    let tensors = model.tensors();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, d)| (n, s, d.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| ModelError::Artifact(e.to_string()))
        })
        .collect::<Result<_>>()?;
    let mut meta = HashMap::new();
    meta.insert(
        "aisle_artifact_version".to_string(),
        ARTIFACT_VERSION.to_string(),
    );
    meta.insert("model".to_string(), model.kind().to_string());
    meta.insert(
        "config".to_string(),
        serde_json::to_string(&model.config()).map_err(|e| ModelError::Artifact(e.to_string()))?,
    );
    for (k, v) in extra {
        meta.insert(k.to_string(), v.clone());
    }
    let data = safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| ModelError::Artifact(e.to_string()))?;
    // Write then rename: a crash never leaves a half-written artifact under the final name.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Reads a model written by [`save`]; refuses other versions and corrupt files.
pub fn load(path: &Path) -> Result<(Box<dyn Recommender>, HashMap<String, String>)> {
    let data = std::fs::read(path)?;
    let (_, header) = SafeTensors::read_metadata(&data)
        .map_err(|e| ModelError::Artifact(format!("{}: {e}", path.display())))?;
    let meta = header.metadata().clone().unwrap_or_default();
    match meta.get("aisle_artifact_version").map(String::as_str) {
        Some(v) if v == ARTIFACT_VERSION.to_string() => {}
        Some(v) => {
            return Err(ModelError::Artifact(format!(
                "artifact version {v}, this build reads {ARTIFACT_VERSION}"
            )))
        }
        None => {
            return Err(ModelError::Artifact(
                "not an Aisle model artifact (no version)".into(),
            ))
        }
    }
    let cfg: ModelConfig =
        serde_json::from_str(meta.get("config").map(String::as_str).unwrap_or(""))
            .map_err(|e| ModelError::Artifact(format!("bad config in artifact: {e}")))?;
    let st = SafeTensors::deserialize(&data).map_err(|e| ModelError::Artifact(e.to_string()))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(ModelError::Artifact(format!("tensor {name} is not f32")));
        }
        let vals: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name, (view.shape().to_vec(), vals));
    }
    Ok((from_parts(cfg, tensors)?, meta))
}
