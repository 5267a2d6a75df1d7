//! Initial weights: ImageNet weights from a torchvision state dict (`.safetensors`, or a
//! PyTorch `.pth`/`.pt` state dict), loaded into the encoder by an explicit key map. Nothing is
//! downloaded: the user names a file or an object-store URL.
//!
//! The map ([`torchvision_patterns`]) turns torchvision names into ours:
//! `layer1.0.downsample.0.weight` → `encoder.layer1.0.downsample.conv.weight`,
//! `features.3.weight` (VGG) → `encoder.convs.1.weight`, BatchNorm `weight`/`bias` → `gamma`/`beta`
//! (Burn's PyTorch adapter). The classifier (`fc.*`, `classifier.*`) and `num_batches_tracked`
//! are not used. Anything else in the file that does not map, and any encoder parameter the file
//! does not fill, is an error that lists the keys.

use burn::tensor::backend::Backend;
use burn_store::{ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};

use super::encoder::VGG16_STAGES;
use super::{EncoderKind, ModelConfig, SegModel};
use crate::store::{self, StoreOptions};

/// Errors loading weights.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("reading weights `{url}`: {source}")]
    Read { url: String, source: Box<store::ReadError> },
    #[error("loading weights `{url}`: {source}{hint}")]
    Load { url: String, hint: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
    #[error("loading weights `{url}`: staging the file: {source}")]
    Stage { url: String, source: std::io::Error },
    #[error(
        "weights `{url}` are for torchvision's {what}, but the model is width {width} with blocks {blocks:?}: ImageNet weights need width = 64 and the standard blocks"
    )]
    Shape { url: String, what: String, width: usize, blocks: [usize; 4] },
    #[error(
        "weights `{url}` do not fit the {encoder:?} encoder: {missing} encoder parameters missing from the file (first: {first_missing}), {unexpected} file keys that map to nothing (first: {first_unexpected}), {errors}"
    )]
    Keys {
        url: String,
        encoder: EncoderKind,
        missing: usize,
        first_missing: String,
        unexpected: usize,
        first_unexpected: String,
        errors: String,
    },
}

/// Regex → replacement pairs from torchvision names to our parameter paths (applied in order).
pub fn torchvision_patterns(encoder: EncoderKind) -> Vec<(String, String)> {
    match encoder {
        EncoderKind::Resnet34 | EncoderKind::Resnet50 => vec![
            (r"^(layer\d\.\d+)\.downsample\.0\.(.+)$".into(), "encoder.$1.downsample.conv.$2".into()),
            (r"^(layer\d\.\d+)\.downsample\.1\.(.+)$".into(), "encoder.$1.downsample.bn.$2".into()),
            (r"^(conv1|bn1|layer\d\.\d+\.(?:conv|bn)\d)\.(.+)$".into(), "encoder.$1.$2".into()),
        ],
        EncoderKind::Vgg16Bn => {
            // features: per conv k, [conv, bn, relu] at i, i+1, i+2, and a max pool between stages.
            let mut out = Vec::new();
            let (mut i, mut k) = (0, 0);
            for n in VGG16_STAGES {
                for _ in 0..n {
                    out.push((format!(r"^features\.{i}\.(.+)$"), format!("encoder.convs.{k}.$1")));
                    out.push((format!(r"^features\.{}\.(.+)$", i + 1), format!("encoder.bns.{k}.$1")));
                    i += 3;
                    k += 1;
                }
                i += 1;
            }
            out
        }
    }
}

/// Whether a torchvision key is deliberately not loaded.
pub fn ignored(key: &str) -> bool {
    key.starts_with("fc.") || key.starts_with("classifier.") || key.ends_with("num_batches_tracked")
}

/// Loads torchvision ImageNet weights into the encoder of `model`.
pub async fn load_imagenet<B: Backend>(
    model: &mut SegModel<B>,
    cfg: &ModelConfig,
    url: &str,
    opts: &StoreOptions,
) -> Result<usize, WeightsError> {
    let load_err =
        |hint: &'static str, e: Box<dyn std::error::Error + Send + Sync>| WeightsError::Load { url: url.into(), hint, source: e };
    if !cfg.is_torchvision() {
        return Err(WeightsError::Shape { url: url.into(), what: format!("{:?}", cfg.encoder), width: cfg.width, blocks: cfg.blocks });
    }
    let bytes = store::read_object(url, opts).await.map_err(|e| WeightsError::Read { url: url.into(), source: Box::new(e) })?;
    let patterns = torchvision_patterns(cfg.encoder);
    let result = if url.ends_with(".safetensors") {
        let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()))
            .with_from_adapter(PyTorchToBurnAdapter)
            .allow_partial(true)
            .skip_enum_variants(true)
            .map_indices_contiguous(false);
        for (from, to) in &patterns {
            store = store.with_key_remapping(from, to.as_str());
        }
        model.load_from(&mut store).map_err(|e| load_err("", e.into()))?
    } else {
        // The PyTorch reader works on files: stage the bytes in a temporary one.
        let tmp = tempfile_path(&bytes).map_err(|source| WeightsError::Stage { url: url.into(), source })?;
        let mut store = PytorchStore::from_file(tmp.path()).allow_partial(true).skip_enum_variants(true).map_indices_contiguous(false);
        for (from, to) in &patterns {
            store = store.with_key_remapping(from, to.as_str());
        }
        model
            .load_from(&mut store)
            .map_err(|e| load_err(" (a .pth must be a state dict; save with torch.save(model.state_dict(), …))", e.into()))?
    };
    let missing: Vec<String> = result.missing.iter().map(|(path, _)| path.clone()).filter(|p| p.starts_with("encoder.")).collect();
    // burn-store fills a BatchNorm's `gamma`/`beta` from the file's `weight`/`bias` (its PyTorch
    // adapter) but still lists those keys as unused: they were used when the counterpart was.
    let applied: std::collections::HashSet<&str> = result.applied.iter().map(String::as_str).collect();
    let read_as_norm = |key: &str| {
        let burn_name =
            key.strip_suffix(".weight").map(|p| format!("{p}.gamma")).or_else(|| key.strip_suffix(".bias").map(|p| format!("{p}.beta")));
        burn_name.is_some_and(|n| applied.contains(n.as_str()))
    };
    let unexpected: Vec<String> = result.unused.iter().filter(|k| !ignored(k) && !read_as_norm(k)).cloned().collect();
    if !missing.is_empty() || !unexpected.is_empty() || !result.errors.is_empty() {
        return Err(WeightsError::Keys {
            url: url.into(),
            encoder: cfg.encoder,
            missing: missing.len(),
            first_missing: missing.first().cloned().unwrap_or_else(|| "none".into()),
            unexpected: unexpected.len(),
            first_unexpected: unexpected.first().cloned().unwrap_or_else(|| "none".into()),
            errors: if result.errors.is_empty() {
                "no shape errors".into()
            } else {
                format!("errors: {:?}", result.errors.iter().take(3).collect::<Vec<_>>())
            },
        });
    }
    Ok(result.applied.len())
}

struct TempFile(std::path::PathBuf);

impl TempFile {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tempfile_path(bytes: &[u8]) -> std::io::Result<TempFile> {
    let name = format!(
        "cinestream-weights-{}-{}.pth",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, bytes)?;
    Ok(TempFile(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::module::Module;
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Tensor;

    type B = Flex;

    /// Every parameter path of a module (`encoder.layer1.0.conv1.weight`, …), enum variants skipped.
    struct Paths {
        stack: Vec<String>,
        out: Vec<String>,
    }
    impl<Bk: burn::tensor::backend::Backend> ModuleVisitor<Bk> for Paths {
        fn enter_module(&mut self, name: &str, container: &str) {
            if !container.starts_with("Enum:") {
                self.stack.push(name.to_string());
            }
        }
        fn exit_module(&mut self, _name: &str, container: &str) {
            if !container.starts_with("Enum:") {
                self.stack.pop();
            }
        }
        fn visit_float<const D: usize>(&mut self, _p: &Param<Tensor<Bk, D>>) {
            self.out.push(self.stack.join("."));
        }
    }

    fn encoder_paths(cfg: &ModelConfig) -> Vec<String> {
        let m = cfg.init::<B>(&Default::default());
        let mut v = Paths { stack: vec![], out: vec![] };
        m.visit(&mut v);
        v.out.into_iter().filter(|p| p.starts_with("encoder.")).collect()
    }

    /// torchvision name → ours, as the loader maps it (BatchNorm weight/bias → gamma/beta).
    fn map(encoder: EncoderKind, key: &str) -> String {
        let mut k = key.to_string();
        for (from, to) in torchvision_patterns(encoder) {
            let re = regex::Regex::new(&from).unwrap();
            k = re.replace_all(&k, to.as_str()).to_string();
        }
        k
    }

    fn covers_every_parameter(encoder: EncoderKind, keys: &str) {
        let cfg = ModelConfig { encoder, ..ModelConfig::default() };
        let ours = encoder_paths(&cfg);
        let mut mapped = std::collections::BTreeSet::new();
        for key in keys.lines().map(str::trim).filter(|k| !k.is_empty() && !ignored(k)) {
            let m = map(encoder, key);
            // BatchNorm: weight/bias are gamma/beta; the running statistics load too (ImageNet's).
            let m = m.replace(".bn1.weight", ".bn1.gamma").replace(".bn1.bias", ".bn1.beta");
            let is_bn = |s: &str| s.contains(".bn") || s.contains("bns.") || s.contains("downsample.bn");
            let m = if is_bn(&m) { m.replacen(".weight", ".gamma", 1).replacen(".bias", ".beta", 1) } else { m };
            assert!(ours.contains(&m), "{encoder:?}: torchvision key {key} maps to {m}, which the model does not have");
            mapped.insert(m);
        }
        let unmapped: Vec<&String> = ours.iter().filter(|p| !mapped.contains(*p)).collect();
        assert!(unmapped.is_empty(), "{encoder:?}: encoder parameters no torchvision key fills: {unmapped:?}");
    }

    #[test]
    fn torchvision_resnet34_keys_cover_every_encoder_parameter() {
        covers_every_parameter(EncoderKind::Resnet34, include_str!("../../tests/fixtures/torchvision_resnet34_keys.txt"));
    }
}
