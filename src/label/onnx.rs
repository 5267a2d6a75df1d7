//! The ONNX Runtime engine: any ONNX model, through `ort` with the runtime library loaded at run
//! time (`load-dynamic`) — the `libonnxruntime.so.<version>` that `pip install onnxruntime`
//! ships, found from `ORT_DYLIB_PATH` or the installed Python package.
//!
//! ONNX Runtime allows one environment per process (`ort` refuses a second one), so the
//! environment is made once, on first use, and kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType, ValueType};

use super::InferError;
use super::engine::Engine;
use crate::model::contract::Contract;
use crate::model::contract::Layout;
use crate::model::prep::SizePolicy;

/// The ONNX Runtime version whose C API the build expects (`ort` feature `api-31`).
pub const RUNTIME_VERSION: &str = "1.31";

const INSTALL: &str = "pip install onnxruntime==1.31.1 (cinestream then finds it), or set ORT_DYLIB_PATH to its libonnxruntime.so.1.31.1";

static ENVIRONMENT: OnceLock<Result<Environment, Arc<RuntimeError>>> = OnceLock::new();

/// Why ONNX Runtime did not start. Kept for the rest of the process (one environment per
/// process), so it is shared rather than cloned.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No runtime library was found; the message says where we looked and how to install it.
    #[error("{0}")]
    NotFound(String),
    #[error("loading ONNX Runtime from {path}: {source}; this build needs version {RUNTIME_VERSION}: {INSTALL}")]
    Load { path: String, source: ort::LoadDynamicError },
    #[error("starting ONNX Runtime ({path}): {source}")]
    Start { path: String, source: ort::Error },
}

/// The runtime library: `ORT_DYLIB_PATH`, else the `onnxruntime` Python package's
/// `capi/libonnxruntime.so.<version>` (the wheel has no unversioned name).
fn find_runtime() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("ORT_DYLIB_PATH={} is not a file: {INSTALL}", p.display())) };
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))"])
        .output()
        .map_err(|e| format!("ONNX Runtime not found (no ORT_DYLIB_PATH, and python3 could not run: {e}): {INSTALL}"))?;
    if !out.status.success() {
        return Err(format!("ONNX Runtime not found (no ORT_DYLIB_PATH, and no onnxruntime Python package): {INSTALL}"));
    }
    let capi = Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("capi");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
        .map_err(|e| format!("ONNX Runtime: cannot read {}: {e}: {INSTALL}", capi.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so.")))
        .collect();
    found.sort();
    found.pop().ok_or_else(|| format!("ONNX Runtime: no libonnxruntime.so.* in {}: {INSTALL}", capi.display()))
}

/// The process's ONNX Runtime environment, made on first use.
pub fn environment() -> Result<&'static Environment, InferError> {
    let env = ENVIRONMENT.get_or_init(|| {
        let path = find_runtime().map_err(|m| Arc::new(RuntimeError::NotFound(m)))?;
        let shown = path.display().to_string();
        let builder = ort::init_from(&path).map_err(|source| Arc::new(RuntimeError::Load { path: shown.clone(), source }))?;
        builder.with_name("cinestream").build().map_err(|source| Arc::new(RuntimeError::Start { path: shown, source }))
    });
    env.as_ref().map_err(|e| InferError::Runtime(e.clone()))
}

/// An ONNX model in an ONNX Runtime session.
pub struct OnnxEngine {
    session: Session,
    input: String,
    output: String,
}

impl OnnxEngine {
    /// A session for the model (`bytes`, from `url`), checked against its contract: the input
    /// and output names exist, the input is a float tensor of rank 4 whose fixed dimensions
    /// fit the contract's layout, channels and size.
    pub fn new(bytes: &[u8], url: &str, contract: &Contract, threads: usize) -> Result<OnnxEngine, InferError> {
        let env = environment()?;
        let fail = |message: String| InferError::Model { url: url.to_string(), message };
        let cannot = |source: ort::Error| InferError::LoadModel { url: url.to_string(), source };
        let builder = Session::builder(env).map_err(cannot)?;
        // No spinning: the pre- and post-processing threads share the cores with the model's,
        // and a spinning idle worker takes their time.
        let builder = builder.with_intra_threads(threads.max(1)).map_err(|e| cannot(e.into()))?;
        let mut builder = builder.with_intra_op_spinning(false).map_err(|e| cannot(e.into()))?;
        let session = builder.commit_from_memory(bytes).map_err(cannot)?;
        let names = |outlets: &[ort::value::Outlet]| outlets.iter().map(|o| o.name().to_string()).collect::<Vec<_>>();
        let (inputs, outputs) = (names(session.inputs()), names(session.outputs()));
        let Some(input) = session.inputs().iter().find(|o| o.name() == contract.input) else {
            return Err(fail(format!(
                "it has no input `{}` (its inputs: {}); fix `input` in its contract",
                contract.input,
                inputs.join(", ")
            )));
        };
        if !outputs.contains(&contract.output) {
            return Err(fail(format!(
                "it has no output `{}` (its outputs: {}); fix `output` in its contract",
                contract.output,
                outputs.join(", ")
            )));
        }
        check_input(input.dtype(), contract).map_err(|m| fail(format!("input `{}` {m}", contract.input)))?;
        Ok(OnnxEngine { session, input: contract.input.clone(), output: contract.output.clone() })
    }
}

/// Checks the declared input tensor against the contract.
fn check_input(dtype: &ValueType, contract: &Contract) -> Result<(), String> {
    let ValueType::Tensor { ty, shape, .. } = dtype else { return Err(format!("is not a tensor ({dtype:?})")) };
    if *ty != TensorElementType::Float32 {
        return Err(format!("is {ty:?}; cinestream feeds float32"));
    }
    if shape.len() != 4 {
        return Err(format!("has rank {} ({shape:?}); the contract's {:?} layout needs 4", shape.len(), contract.layout));
    }
    let (c, h, w) = match contract.layout {
        Layout::Nchw => (shape[1], shape[2], shape[3]),
        Layout::Nhwc => (shape[3], shape[1], shape[2]),
    };
    if c >= 0 && c as usize != contract.channels {
        return Err(format!("has {c} channels ({shape:?}, {:?}) but the contract gives {}", contract.layout, contract.channels));
    }
    let size = match contract.size {
        SizePolicy::PadResize { size } | SizePolicy::CropResize { size, .. } => Some(size as i64),
        SizePolicy::PadMultiple { .. } => None,
    };
    for (name, d) in [("height", h), ("width", w)] {
        if d >= 0 && size.is_some_and(|s| s != d) {
            return Err(format!("has {name} {d} ({shape:?}) but the contract's size policy makes {}", size.unwrap_or_default()));
        }
    }
    Ok(())
}

impl Engine for OnnxEngine {
    fn run(&mut self, input: Vec<f32>, shape: [usize; 4]) -> Result<Vec<f32>, InferError> {
        let tensor = Tensor::from_array((shape, input)).map_err(|source| InferError::Onnx { what: "making the input tensor", source })?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(|source| InferError::Onnx { what: "running the model", source })?;
        let out = &outputs[self.output.as_str()];
        // Probabilities and logits are float; label outputs are often integers.
        if let Ok((_, v)) = out.try_extract_tensor::<f32>() {
            return Ok(v.to_vec());
        }
        if let Ok((_, v)) = out.try_extract_tensor::<i64>() {
            return Ok(v.iter().map(|x| *x as f32).collect());
        }
        if let Ok((_, v)) = out.try_extract_tensor::<i32>() {
            return Ok(v.iter().map(|x| *x as f32).collect());
        }
        let (_, v) = out
            .try_extract_tensor::<u8>()
            .map_err(|source| InferError::Onnx { what: "reading the output (it must be float, int64, int32 or uint8)", source })?;
        Ok(v.iter().map(|x| f32::from(*x)).collect())
    }
}
