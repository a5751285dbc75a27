//! Named f32 tensors in a safetensors file with string metadata: the one
//! on-disk form of every Aisle model (sequence, classical and purchase
//! models alike). Written then renamed, checksummed, finite only.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};

/// Metadata key of the weights' checksum (see [`checksum`]).
pub const CHECKSUM_KEY: &str = "aisle_weights_sha256";

/// SHA-256 over every tensor in name order: name, shape, little-endian
/// bytes. Written at save time and checked at load time, so a file whose
/// header survived but whose weights did not is refused.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [usize], &'a [u8])>) -> String {
    let mut sorted: Vec<_> = tensors.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (name, shape, bytes) in sorted {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((shape.len() as u64).to_le_bytes());
        for d in shape {
            h.update((*d as u64).to_le_bytes());
        }
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Named tensors: name -> (shape, values).
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Writes f32 tensors and string metadata as safetensors (write, then rename).
pub fn write(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    mut meta: HashMap<String, String>,
) -> Result<(), String> {
    if let Some((name, _, _)) = tensors
        .iter()
        .find(|(_, _, d)| d.iter().any(|x| !x.is_finite()))
    {
        return Err(format!(
            "tensor {name} has non-finite values: refusing to save it"
        ));
    }
    let bytes: Vec<(&str, &[usize], Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.as_str(),
                s.as_slice(),
                d.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    meta.insert(
        CHECKSUM_KEY.to_string(),
        checksum(bytes.iter().map(|(n, s, b)| (*n, *s, b.as_slice()))),
    );
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.to_vec(), b)
                .map(|v| (n.to_string(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let data = safetensors::tensor::serialize(views, Some(meta)).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

/// Reads a file written by [`write`]: its tensors (f32 only) and metadata.
/// Refuses weights that do not match the checksum written with them
/// (files saved before checksums existed have none to check) and any
/// non-finite value.
pub fn read(path: &Path) -> Result<(Tensors, HashMap<String, String>), String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    let (_, header) = SafeTensors::read_metadata(&data).map_err(|e| e.to_string())?;
    let meta = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&data).map_err(|e| e.to_string())?;
    let views = st.tensors();
    if let Some(want) = meta.get(CHECKSUM_KEY) {
        let got = checksum(views.iter().map(|(n, v)| (n.as_str(), v.shape(), v.data())));
        if &got != want {
            return Err(format!(
                "the weights do not match their checksum (written {want}, read {got}): the file is corrupt"
            ));
        }
    }
    let mut tensors = HashMap::new();
    for (name, view) in views {
        if view.dtype() != Dtype::F32 {
            return Err(format!("tensor {name} is not f32"));
        }
        let vals: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = vals.iter().position(|x| !x.is_finite()) {
            return Err(format!(
                "tensor {name} holds a non-finite value ({} at index {i}): the weights are corrupt",
                vals[i]
            ));
        }
        tensors.insert(name, (view.shape().to_vec(), vals));
    }
    Ok((tensors, meta))
}

/// The metadata of a safetensors file, read from its header only (a model's
/// weights are not loaded to list it). None for a file that is not one.
pub fn read_meta(path: &Path) -> Option<HashMap<String, String>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return None;
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&buf).ok()?;
    let meta = header.get("__metadata__")?.as_object()?;
    Some(
        meta.iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("m.safetensors");
        let t = vec![
            (
                "a.weight".to_string(),
                vec![2, 2],
                vec![1.0, -2.0, 0.5, 3.0],
            ),
            ("b".to_string(), vec![3], vec![0.0, 1.0, 2.0]),
        ];
        write(&p, &t, HashMap::new()).unwrap();
        p
    }

    #[test]
    fn a_saved_file_reads_back_with_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let (t, meta) = read(&saved(dir.path())).unwrap();
        assert_eq!(t["a.weight"], (vec![2, 2], vec![1.0, -2.0, 0.5, 3.0]));
        assert_eq!(meta[CHECKSUM_KEY].len(), 64);
    }

    #[test]
    fn weights_overwritten_behind_an_intact_header_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = saved(dir.path());
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        // The data section is the file's tail: overwrite the last tensor's
        // bytes with 0xFF (NaN), as a torn or corrupted write would.
        for b in &mut bytes[n - 8..] {
            *b = 0xFF;
        }
        std::fs::write(&p, &bytes).unwrap();
        let err = read(&p).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        // Also finite values that only change the numbers.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[n - 8..].copy_from_slice(&[0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f]);
        std::fs::write(&p, &bytes).unwrap();
        assert!(read(&p).unwrap_err().contains("checksum"));
    }

    #[test]
    fn non_finite_values_are_refused_without_a_checksum_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.safetensors");
        // A file written before checksums: no checksum key, NaN weights.
        let bytes: Vec<u8> = [1.0f32, f32::NAN]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let view = TensorView::new(Dtype::F32, vec![2], &bytes).unwrap();
        let data = safetensors::tensor::serialize(vec![("w".to_string(), view)], None).unwrap();
        std::fs::write(&p, data).unwrap();
        let err = read(&p).unwrap_err();
        assert!(err.contains("non-finite"), "{err}");
        // And nothing non-finite is ever saved.
        let t = vec![("w".to_string(), vec![1], vec![f32::INFINITY])];
        assert!(write(&p, &t, HashMap::new()).is_err());
    }
}
