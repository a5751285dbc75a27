//! A burn module's parameters as named f32 tensors (by module path), and the
//! safetensors file they are saved in. Shared by every burn model of Aisle.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// Named tensors: name -> (shape, values).
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Every float parameter of `m`, named by its module path (`blocks.0.qkv.weight`).
pub fn collect<M: Module>(m: &M) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut v = Collect::default();
    m.visit(&mut v);
    v.tensors
}

/// Replaces every float parameter of `m` with the tensor of the same path;
/// a missing tensor, a shape mismatch or a tensor left over is an error.
pub fn restore<M: Module>(m: M, tensors: Tensors, device: &Device) -> Result<M, String> {
    let mut loader = Load {
        path: Vec::new(),
        tensors,
        error: None,
        device: device.clone(),
    };
    let m = m.map(&mut loader);
    if let Some(e) = loader.error {
        return Err(e);
    }
    if let Some(extra) = loader.tensors.keys().next() {
        return Err(format!("unexpected tensor {extra}"));
    }
    Ok(m)
}

/// Writes f32 tensors and string metadata as safetensors (write, then rename).
pub fn write(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    meta: HashMap<String, String>,
) -> Result<(), String> {
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
pub fn read(path: &Path) -> Result<(Tensors, HashMap<String, String>), String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    let (_, header) = SafeTensors::read_metadata(&data).map_err(|e| e.to_string())?;
    let meta = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&data).map_err(|e| e.to_string())?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format!("tensor {name} is not f32"));
        }
        let vals: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name, (view.shape().to_vec(), vals));
    }
    Ok((tensors, meta))
}

#[derive(Default)]
struct Collect {
    path: Vec<String>,
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        let data = t.into_data().try_to_vec::<f32>().expect("f32 parameter");
        self.tensors.push((self.path.join("."), shape, data));
    }
}

struct Load {
    path: Vec<String>,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    error: Option<String>,
    device: Device,
}

impl ModuleMapper for Load {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.join(".");
        let want = param.val().dims().to_vec();
        match self.tensors.remove(&name) {
            Some((shape, data)) if shape == want => {
                let id: ParamId = param.id;
                Param::initialized(
                    id,
                    Tensor::from_data(TensorData::new(data, shape), &self.device),
                )
            }
            Some((shape, _)) => {
                self.error.get_or_insert(format!(
                    "tensor {name} has shape {shape:?}, the config expects {want:?}"
                ));
                param
            }
            None => {
                self.error.get_or_insert(format!("tensor {name} missing"));
                param
            }
        }
    }
}
