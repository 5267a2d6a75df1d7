//! One of our trained models made ready for the ONNX engine (`cinestream export`): its weights
//! as a PyTorch state dict (`model.safetensors`), its card, and the contract (`model.toml`) of
//! the `model.onnx` that `scripts/export_onnx.py` then writes beside them by loading the state
//! dict into the PyTorch twin of our network (`scripts/torch_unet.py`: the same module tree and
//! parameter names) and calling `torch.onnx.export`. The contract is the one the Burn engine
//! follows ([`Contract::of_card`]), so both engines pre- and post-process alike.
//!
//! Names are our parameter paths (`encoder.layer1.0.conv1.weight`,
//! `decoder.blocks.0.shuf.conv.bias`, …) without enum variants, with BatchNorm's `gamma`/`beta`
//! as PyTorch's `weight`/`bias` (burn-store's PyTorch adapter); running statistics keep their
//! names. Convolution kernels are `[out, in, kh, kw]` in both.

use burn::tensor::backend::Backend;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore, SafetensorsStoreError};
use object_store::ObjectStoreExt;

use super::contract::Contract;
use crate::model::SegModel;
use crate::model::card::{self, CARD_FILE, CardError};
use crate::store::{self, StoreOptions};

/// The files of an export folder.
pub const STATE_DICT_FILE: &str = "model.safetensors";
pub const CONTRACT_FILE: &str = "model.toml";
pub const ONNX_FILE: &str = "model.onnx";

/// The ONNX graph's input and output names (the contract says them; the script reads them).
pub const ONNX_INPUT: &str = "image";
pub const ONNX_OUTPUT: &str = "logits";

/// Errors exporting a model.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Card(#[from] CardError),
    #[error("model `{url}`: writing its weights as safetensors: {source}")]
    Encode { url: String, source: SafetensorsStoreError },
    #[error("export folder `{url}`: {source}")]
    Open { url: String, source: store::StoreError },
    #[error("writing `{url}`: {}", store::explain(source))]
    Write { url: String, source: object_store::Error },
}

/// What [`export`] wrote.
#[derive(Debug)]
pub struct Exported {
    pub card: card::ModelCard,
    /// URLs of what was written.
    pub written: Vec<String>,
    pub tensors: usize,
}

/// The contract of an exported model's `model.onnx`.
pub fn onnx_contract(card: &card::ModelCard) -> Contract {
    Contract { input: ONNX_INPUT.into(), output: ONNX_OUTPUT.into(), ..Contract::of_card(card) }
}

/// Reads one of our models (`…/model`) and writes into `out`: `model.safetensors` (PyTorch
/// names), `model.json` (its card, unchanged) and `model.toml` (the ONNX model's contract).
pub async fn export(model: &str, out: &str, opts: &StoreOptions) -> Result<Exported, ExportError> {
    let (card, weights) = card::read(model, opts).await?;
    let net = card::build::<burn::backend::Flex>(&card, &weights, &Default::default())?;
    let json = card.to_json();
    let bytes = state_dict(&net, &String::from_utf8_lossy(&json)).map_err(|source| ExportError::Encode { url: model.into(), source })?;
    let tensors = safetensors_len(&bytes);
    let loc = store::open(out, opts).map_err(|source| ExportError::Open { url: out.into(), source })?;
    let contract = onnx_contract(&card).to_toml(&format!("Contract of {ONNX_FILE}: `cinestream export --model {model}`, then scripts/export_onnx.py.\nThe Burn engine follows the same rule for the model itself (its card)."));
    let mut written = Vec::new();
    for (name, data) in [(STATE_DICT_FILE, bytes), (CARD_FILE, json), (CONTRACT_FILE, contract.into_bytes())] {
        let path = loc.child(name);
        loc.store.put(&path, data.into()).await.map_err(|source| ExportError::Write { url: loc.object_url(&path), source })?;
        written.push(loc.object_url(&path));
    }
    Ok(Exported { card, written, tensors })
}

/// The number of tensors in a safetensors file (its JSON header, less `__metadata__`).
fn safetensors_len(bytes: &[u8]) -> usize {
    let n = bytes.get(..8).map_or(0, |h| u64::from_le_bytes(h.try_into().expect("8 bytes")) as usize);
    let header: serde_json::Value = bytes.get(8..8 + n).and_then(|h| serde_json::from_slice(h).ok()).unwrap_or_default();
    header.as_object().map_or(0, |o| o.keys().filter(|k| *k != "__metadata__").count())
}

/// The weights of `model` as safetensors bytes with PyTorch names, the card's JSON in the
/// file's metadata (`cinestream_card`).
pub fn state_dict<B: Backend>(model: &SegModel<B>, card_json: &str) -> Result<Vec<u8>, SafetensorsStoreError> {
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .metadata("cinestream_card", card_json);
    model.save_into(&mut store)?;
    store.get_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use crate::model::card::tests::card;
    use burn::backend::Flex;

    #[test]
    fn names_are_pytorchs_and_cover_every_parameter() {
        let cfg = ModelConfig { width: 8, blocks: [1, 2, 1, 1], ..Default::default() };
        let m = cfg.init::<Flex>(&Default::default());
        let bytes = state_dict(&m, "{}").unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let names: std::collections::BTreeSet<String> = st.names().into_iter().map(String::from).collect();
        for n in [
            "encoder.conv1.weight",
            "encoder.bn1.weight",
            "encoder.bn1.running_var",
            "encoder.layer2.0.downsample.conv.weight",
            "encoder.layer2.1.conv2.weight",
            "decoder.middle_bn.bias",
            "decoder.blocks.3.shuf.conv.bias",
            "decoder.final_shuffle.conv.weight",
            "decoder.head.bn.weight",
        ] {
            assert!(names.contains(n), "{n} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("gamma") || n.contains("beta") || n.contains("ResNet")), "{names:?}");
        let values: usize = names.iter().map(|n| st.tensor(n).unwrap().shape().iter().product::<usize>()).sum();
        assert_eq!(values, burn::module::Module::num_params(&m));
        assert_eq!(st.tensor("encoder.conv1.weight").unwrap().shape(), &[8, 3, 7, 7]);
        assert_eq!(safetensors_len(&bytes), names.len());
    }

    #[test]
    fn the_written_contract_reads_back_as_the_burn_engines_rule() {
        let c = card();
        let expected = onnx_contract(&c);
        let text = expected.to_toml("a comment\nof two lines");
        assert!(text.starts_with("# a comment\n# of two lines\n"), "{text}");
        assert_eq!(Contract::parse(&text, "model.toml").unwrap(), expected);
        assert_eq!(Contract { input: "input".into(), output: "output".into(), ..expected }, Contract::of_card(&c));
    }
}
