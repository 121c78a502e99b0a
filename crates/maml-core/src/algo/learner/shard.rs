//! One worker's share of a data-parallel meta step: the shard's meta-gradient flattened
//! into one tensor for an all-reduce, and the reduced sum applied.

use burn::optim::lr_scheduler::LrScheduler;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;

use crate::data::batch::MetaBatch;
use crate::model::{Learnable, MetaBackend};

use super::ModelLearner;

/// Flattens gradients (by parameter id, tensors of `B`) in the visit order of `module`
/// into one `[n]` tensor, zeros where a parameter has none.
struct Flatten<'a, B: Backend> {
    grads: &'a GradientsParams,
    parts: Vec<Tensor<B, 1>>,
    device: B::Device,
}

impl<B: Backend> burn::module::ModuleVisitor<MetaBackend<B>> for Flatten<'_, B> {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<Tensor<MetaBackend<B>, D>>,
    ) {
        let n = param.shape().num_elements();
        let part = match self.grads.get::<B, D>(param.id) {
            Some(g) => g.reshape([n]),
            None => Tensor::zeros([n], &self.device),
        };
        self.parts.push(part);
    }
}

/// The inverse of [`Flatten`]: slices a flat `[n]` tensor back into gradients by id.
struct Unflatten<B: Backend> {
    flat: Tensor<B, 1>,
    offset: usize,
    grads: GradientsParams,
}

impl<B: Backend> burn::module::ModuleVisitor<MetaBackend<B>> for Unflatten<B> {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<Tensor<MetaBackend<B>, D>>,
    ) {
        let shape = param.shape();
        let n = shape.num_elements();
        let part = self.flat.clone().slice(self.offset..self.offset + n);
        self.offset += n;
        self.grads.register::<B, D>(param.id, part.reshape(shape));
    }
}

impl<B, M, O, S> ModelLearner<B, M, O, S>
where
    B: Backend,
    M: Learnable<B>,
    O: Optimizer<M::Meta, MetaBackend<B>>,
    S: LrScheduler,
{
    /// One data-parallel meta step on this worker's shard of a meta-batch: the shard's
    /// meta-gradient, scaled by `weight` (the shard's share of the tasks, `n_i / n`),
    /// is flattened into one `[params + 1]` tensor (the scaled meta-loss last) and summed
    /// over all workers by `all_reduce_sum`; every worker then applies the same update.
    /// The sum of the shares is the meta-gradient of the whole meta-batch (the mean
    /// over its tasks), up to the order of floating-point summation. Returns the whole
    /// meta-batch's meta-loss.
    pub fn step_shard<E>(
        &mut self,
        shard: &MetaBatch<B>,
        weight: f64,
        all_reduce_sum: impl FnOnce(Tensor<B, 1>) -> std::result::Result<Tensor<B, 1>, E>,
    ) -> std::result::Result<f64, E> {
        let gradient = self.gradient(shard, false);
        let device = gradient.meta_loss.device();
        let mut flat = Flatten {
            grads: &gradient.grads,
            parts: Vec::new(),
            device: device.clone(),
        };
        self.model.visit(&mut flat);
        let model_len: usize = flat.parts.iter().map(|p| p.dims()[0]).sum();
        let mut parts = flat.parts;
        if let (Some(sizes), Some(grads)) = (&self.step_sizes, &gradient.step_size_grads) {
            let mut flat = Flatten {
                grads,
                parts: Vec::new(),
                device: device.clone(),
            };
            sizes.visit(&mut flat);
            parts.extend(flat.parts);
        }
        let table_len = self
            .step_table
            .as_ref()
            .map_or(0, |t| t.shape().num_elements());
        if let Some(table) = &self.step_table {
            let g = gradient
                .step_size_grads
                .as_ref()
                .and_then(|g| g.get::<B, 2>(table.id))
                .map(|g| g.reshape([table_len]))
                .unwrap_or_else(|| Tensor::zeros([table_len], &device));
            parts.push(g);
        }
        parts.push(gradient.meta_loss);
        let total = all_reduce_sum(Tensor::cat(parts, 0).mul_scalar(weight))?;
        let n = total.dims()[0];
        let meta_loss = crate::model::to_f64(total.clone().slice(n - 1..n))[0];
        let mut model_grads = Unflatten {
            flat: total.clone().slice(0..model_len),
            offset: 0,
            grads: GradientsParams::new(),
        };
        self.model.visit(&mut model_grads);
        let size_grads = self.step_sizes.as_ref().map(|sizes| {
            let mut grads = Unflatten {
                flat: total.clone().slice(model_len..n - 1 - table_len),
                offset: 0,
                grads: GradientsParams::new(),
            };
            sizes.visit(&mut grads);
            grads.grads
        });
        let size_grads = match &self.step_table {
            Some(table) => {
                let mut grads = GradientsParams::new();
                let g = total.slice(n - 1 - table_len..n - 1);
                grads.register::<B, 2>(table.id, g.reshape(table.shape()));
                Some(grads)
            }
            None => size_grads,
        };
        self.update(model_grads.grads, size_grads);
        Ok(meta_loss)
    }
}
