//! Our ResNet34 encoder against torchvision: `benches/torchvision_parity.py` writes a torchvision
//! resnet34 state dict (as safetensors and as a torch.save `.pth`), an input and torchvision's
//! eval-mode features; each state dict goes through `model::weights` (the key map
//! `init = { imagenet = … }` uses) and our encoder's features must match within 1e-4 relative
//! error. `scripts/test.sh` installs torch and writes
//! the files; without them (CINESTREAM_TORCHVISION_PARITY unset) the test says it is skipped,
//! and fails under CINESTREAM_REQUIRE_TOOLS.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use cinestream::model::weights;
use cinestream::model::{ModelConfig, SegModel};
use cinestream::store::StoreOptions;

fn parity_dir(test: &str) -> Option<PathBuf> {
    match std::env::var("CINESTREAM_TORCHVISION_PARITY") {
        Ok(dir) => Some(PathBuf::from(dir)),
        Err(_) if std::env::var("CINESTREAM_REQUIRE_TOOLS").is_ok() => {
            panic!("{test}: CINESTREAM_TORCHVISION_PARITY is not set (scripts/test.sh sets it)")
        }
        Err(_) => {
            eprintln!("SKIPPED {test}: set CINESTREAM_TORCHVISION_PARITY to the folder benches/torchvision_parity.py wrote");
            None
        }
    }
}

/// A float32 tensor of the file and its shape.
fn tensor(file: &safetensors::SafeTensors, name: &str) -> (Vec<f32>, Vec<usize>) {
    let t = file.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
    (t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(), t.shape().to_vec())
}

#[tokio::test]
async fn the_resnet34_encoder_matches_torchvision() {
    let Some(dir) = parity_dir("the_resnet34_encoder_matches_torchvision") else { return };
    let bytes = std::fs::read(dir.join("parity.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let cfg = ModelConfig::default();
    let dev = Default::default();
    for state in ["resnet34.safetensors", "resnet34.pth"] {
        let mut model: SegModel<Flex> = cfg.init(&dev);
        let loaded = weights::load_imagenet(&mut model, &cfg, dir.join(state).to_str().unwrap(), &StoreOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{state}: {e}"));
        // 218 torchvision keys less fc (2) and the 36 BatchNorm num_batches_tracked counters.
        assert_eq!(loaded, 180, "{state}: tensors loaded");
        let (x, s) = tensor(&file, "input");
        let features = model.encoder.forward(Tensor::<Flex, 4>::from_data(TensorData::new(x, [s[0], s[1], s[2], s[3]]), &dev));
        let ours = features.skips.into_iter().chain([features.deepest]);
        for (name, ours) in ["s2", "s4", "s8", "s16", "deepest"].into_iter().zip(ours) {
            let (theirs, shape) = tensor(&file, name);
            assert_eq!(ours.dims().to_vec(), shape, "{state} {name}: shape");
            let ours = ours.into_data().to_vec::<f32>().unwrap();
            let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = ours.iter().zip(&theirs).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            eprintln!("{state} {name} {shape:?}: max |ours − torchvision| / max |torchvision| = {:.2e}", worst / scale);
            assert!(scale > 0.0 && worst / scale < 1e-4, "{state} {name}: relative error {}", worst / scale);
        }
    }
}
