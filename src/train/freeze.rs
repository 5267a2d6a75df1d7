//! Freezing the encoder as fastai does: its convolutions stop learning (no gradients, no
//! weight decay), its BatchNorm layers keep learning, and the decoder always learns.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::model::SegModel;

struct Freeze {
    /// (field name, container type) of the modules entered.
    stack: Vec<(String, String)>,
    frozen: bool,
}

impl Freeze {
    fn trainable(&self) -> bool {
        let in_encoder = self.stack.first().is_some_and(|(name, _)| name == "encoder");
        let in_batch_norm = self.stack.iter().any(|(_, kind)| kind == "Struct:BatchNorm");
        !(self.frozen && in_encoder && !in_batch_norm)
    }
}

impl<B: Backend> ModuleMapper<B> for Freeze {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push((name.to_string(), container_type.to_string()));
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        // BatchNorm running statistics are buffers: never tracked.
        if self.stack.last().is_some_and(|(name, _)| name == "running_mean" || name == "running_var") {
            return param;
        }
        param.set_require_grad(self.trainable())
    }
}

/// The model with its encoder frozen (BatchNorm excepted) or everything trainable.
pub fn set_frozen<B: Backend>(model: SegModel<B>, frozen: bool) -> SegModel<B> {
    model.map(&mut Freeze { stack: Vec::new(), frozen })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::ModuleVisitor;

    use crate::model::{EncoderKind, ModelConfig};

    type B = Autodiff<Flex>;

    /// (trainable, frozen) parameter counts, and the trainable ones inside the encoder.
    struct Count {
        stack: Vec<String>,
        trainable: usize,
        frozen: usize,
        encoder_trainable_non_bn: usize,
        encoder_bn_trainable: usize,
    }
    impl ModuleVisitor<B> for Count {
        fn enter_module(&mut self, name: &str, kind: &str) {
            self.stack.push(format!("{kind}|{name}"));
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            // BatchNorm running statistics are buffers, never trained.
            if self.stack.last().is_some_and(|s| s.ends_with("|running_mean") || s.ends_with("|running_var")) {
                return;
            }
            let n = p.val().shape().num_elements();
            if p.val().is_require_grad() {
                self.trainable += n;
                let enc = self.stack.first().is_some_and(|s| s.ends_with("|encoder"));
                let bn = self.stack.iter().any(|s| s.starts_with("Struct:BatchNorm|"));
                if enc && !bn {
                    self.encoder_trainable_non_bn += n;
                }
                if enc && bn {
                    self.encoder_bn_trainable += n;
                }
            } else {
                self.frozen += n;
            }
        }
    }

    fn count(m: &SegModel<B>) -> Count {
        let mut c = Count { stack: vec![], trainable: 0, frozen: 0, encoder_trainable_non_bn: 0, encoder_bn_trainable: 0 };
        m.visit(&mut c);
        c
    }

    #[test]
    fn frozen_encoder_keeps_batch_norm_and_decoder_trainable() {
        let cfg = ModelConfig { encoder: EncoderKind::Resnet34, width: 8, blocks: [1, 1, 1, 1], classes: 3 };
        let m = cfg.init::<B>(&Default::default());
        let all = count(&m);
        assert_eq!(all.frozen, 0);
        let m = set_frozen(m, true);
        let f = count(&m);
        assert!(
            f.frozen > 0 && f.encoder_trainable_non_bn == 0,
            "frozen {} / encoder non-BN trainable {}",
            f.frozen,
            f.encoder_trainable_non_bn
        );
        assert_eq!(f.frozen + f.trainable, all.trainable);
        // The encoder's BatchNorm layers (gamma, beta: 2 per channel) stay trainable.
        assert_eq!(f.encoder_bn_trainable, all.encoder_bn_trainable);
        assert!(f.encoder_bn_trainable > 0);
        let m = set_frozen(m, false);
        assert_eq!(count(&m).frozen, 0);
    }
}
