//! A burn module's parameters as named f32 tensors (by module path), for
//! [`aisle_core::tensors`] files. Shared by every burn model of Aisle.

use std::collections::HashMap;

pub use aisle_core::tensors::{read, write, Tensors, CHECKSUM_KEY};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};

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
