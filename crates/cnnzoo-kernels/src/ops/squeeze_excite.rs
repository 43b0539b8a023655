//! A residual block's end with a standard SE unit, squeeze and excitation included, as one
//! Burn operation ([`se_scale_add_relu`]): on Flex two passes over the branch each way (the
//! kernels of [`crate::squeeze_excite`]) with its own backward; Burn's operations elsewhere.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData};

use super::device::uses_kernels;
use super::flex::{f32s, like, same_f32_shape, shaped, vector};
use super::residual::{ResidualOps, burn_scale_add_relu_backward};
use crate::squeeze_excite::{self, SeShape};

/// A standard SE unit's squeeze and excitation, fused with its block's end.
#[backend_extension(Flex, Autodiff)]
pub trait SqueezeExciteOps: ResidualOps {
    /// Squeeze and excitation of a standard SE unit on the branch `a` `[N, C, H, W]` with fc1
    /// `w1` `[R, C, 1, 1]`, `b1` `[R]` and fc2 `w2` `[C, R, 1, 1]`, `b2` `[C]`: returns the
    /// channel means `[N, C]`, the bottleneck after its ReLU `[N, R]` and the gates
    /// `[N, C, 1, 1]`.
    fn cnnzoo_se_excite(
        a: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_se_excite::<Self>(a, w1, b1, w2, b2)
    }

    /// `relu(a * gates + shortcut)` with the gates of [`Self::cnnzoo_se_excite`]: the end of
    /// a residual block with a standard SE unit, squeeze and excitation included.
    fn cnnzoo_se_scale_add_relu(
        a: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        shortcut: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (_, _, gates) = Self::cnnzoo_se_excite(a.clone(), w1, b1, w2, b2);
        Self::cnnzoo_scale_add_relu(a, gates, shortcut)
    }

    /// Gradients of [`Self::cnnzoo_se_scale_add_relu`] with respect to `a`, `w1`, `b1`, `w2`,
    /// `b2` and the shortcut, from what [`Self::cnnzoo_se_excite`] returned and the output `y`.
    // The macro needs the tuple spelled out (it maps tuples, not aliases, across dispatch).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn cnnzoo_se_backward(
        a: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        squeezed: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        burn_se_backward::<Self>(a, w1, w2, squeezed, hidden, gates, y, grad)
    }
}

/// `[N, C]` or `[R, C]` view of a `[N, C, 1, 1]` / `[R, C, 1, 1]` tensor.
fn matrix<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let d = t.shape();
    B::float_reshape(t, burn::tensor::Shape::new([d[0], d[1]]))
}

/// `[1, K]` view of a bias `[K]`, to broadcast over the rows of an `[N, K]` matrix.
fn row<B: Backend>(b: FloatTensor<B>) -> FloatTensor<B> {
    let k = b.shape()[0];
    B::float_reshape(b, burn::tensor::Shape::new([1, k]))
}

/// [`SqueezeExciteOps::cnnzoo_se_excite`] from Burn's operations.
fn burn_se_excite<B: Backend>(
    a: FloatTensor<B>,
    w1: FloatTensor<B>,
    b1: FloatTensor<B>,
    w2: FloatTensor<B>,
    b2: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let squeezed = matrix::<B>(B::float_mean_dim(B::float_mean_dim(a, 3), 2));
    let z1 = B::float_matmul(squeezed.clone(), B::float_transpose(matrix::<B>(w1)));
    let hidden = B::relu(B::float_add(z1, row::<B>(b1)));
    let z2 = B::float_matmul(hidden.clone(), B::float_transpose(matrix::<B>(w2)));
    let gates = B::sigmoid(B::float_add(z2, row::<B>(b2)));
    let d = gates.shape();
    let gates = B::float_reshape(gates, burn::tensor::Shape::new([d[0], d[1], 1, 1]));
    (squeezed, hidden, gates)
}

/// [`SqueezeExciteOps::cnnzoo_se_backward`] from Burn's operations.
#[allow(clippy::too_many_arguments)]
fn burn_se_backward<B: Backend>(
    a: FloatTensor<B>,
    w1: FloatTensor<B>,
    w2: FloatTensor<B>,
    squeezed: FloatTensor<B>,
    hidden: FloatTensor<B>,
    gates: FloatTensor<B>,
    y: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> SeGradTensors<B> {
    let (w1_shape, w2_shape, a_shape) = (w1.shape(), w2.shape(), a.shape());
    let plane = (a_shape[2] * a_shape[3]).max(1);
    let (da_scaled, dgates, dshortcut) =
        burn_scale_add_relu_backward::<B>(a, gates.clone(), y, grad);
    let g = matrix::<B>(gates);
    let one_minus_g = B::float_add_scalar(B::float_neg(g.clone()), 1.0.into());
    let dz2 = B::float_mul(B::float_mul(matrix::<B>(dgates), g), one_minus_g);
    let db2 = B::float_sum_dim(dz2.clone(), 0);
    let dw2 = B::float_matmul(B::float_transpose(dz2.clone()), hidden.clone());
    let dh = B::relu_backward(hidden, B::float_matmul(dz2, matrix::<B>(w2)));
    let db1 = B::float_sum_dim(dh.clone(), 0);
    let dw1 = B::float_matmul(B::float_transpose(dh.clone()), squeezed);
    let dsq = B::float_matmul(dh, matrix::<B>(w1));
    let d = dsq.shape();
    let dsq = B::float_reshape(dsq, burn::tensor::Shape::new([d[0], d[1], 1, 1]));
    let da = B::float_add(da_scaled, B::float_div_scalar(dsq, (plane as f64).into()));
    let flat = |t: FloatTensor<B>| {
        let n = t.shape().num_elements();
        B::float_reshape(t, burn::tensor::Shape::new([n]))
    };
    (
        da,
        B::float_reshape(dw1, w1_shape),
        flat(db1),
        B::float_reshape(dw2, w2_shape),
        flat(db2),
        dshortcut,
    )
}

/// Gradients of the fused SE block end: branch, fc1 weight and bias, fc2 weight and bias,
/// shortcut.
type SeGradTensors<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
);

/// The sizes of a fused SE block end when `a` is `[N, C, H, W]`, `w1` `[R, C, 1, 1]`, `b1`
/// `[R]`, `w2` `[C, R, 1, 1]`, `b2` `[C]`, all `f32`; `None` sends the call to Burn's
/// operations, which check the shapes and say what is wrong.
fn se_shape(
    a: &FlexTensor,
    w1: &FlexTensor,
    b1: &FlexTensor,
    w2: &FlexTensor,
    b2: &FlexTensor,
) -> Option<SeShape> {
    let tensors = [a, w1, b1, w2, b2];
    if tensors.iter().any(|t| t.dtype() != DType::F32) {
        return None;
    }
    let (sa, s1) = (a.shape(), w1.shape());
    if sa.num_dims() != 4 || s1.num_dims() != 4 {
        return None;
    }
    let (n, c, r) = (sa[0], sa[1], s1[0]);
    let fits = shaped(w1, &[r, c, 1, 1])
        && shaped(b1, &[r])
        && shaped(w2, &[c, r, 1, 1])
        && shaped(b2, &[c]);
    fits.then_some(SeShape {
        batch: n,
        channels: c,
        reduced: r,
        plane: sa[2] * sa[3],
    })
}

impl SqueezeExciteOps for Flex {
    fn cnnzoo_se_excite(
        a: FlexTensor,
        w1: FlexTensor,
        b1: FlexTensor,
        w2: FlexTensor,
        b2: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let Some(shape) = se_shape(&a, &w1, &b1, &w2, &b2) else {
            return burn_se_excite::<Flex>(a, w1, b1, w2, b2);
        };
        let e = squeeze_excite::excite(
            &f32s(&a),
            &f32s(&w1),
            &f32s(&b1),
            &f32s(&w2),
            &f32s(&b2),
            shape,
        );
        let (n, c, r) = (shape.batch, shape.channels, shape.reduced);
        (
            FlexTensor::from_data(TensorData::new(e.squeezed, [n, c])),
            FlexTensor::from_data(TensorData::new(e.hidden, [n, r])),
            FlexTensor::from_data(TensorData::new(e.gates, [n, c, 1, 1])),
        )
    }

    fn cnnzoo_se_backward(
        a: FlexTensor,
        w1: FlexTensor,
        w2: FlexTensor,
        squeezed: FlexTensor,
        hidden: FlexTensor,
        gates: FlexTensor,
        y: FlexTensor,
        grad: FlexTensor,
    ) -> SeGradTensors<Flex> {
        // Everything must be as `cnnzoo_se_excite` left it (else Burn's operations check it).
        let d = a.shape();
        let fits = same_f32_shape(&[&a, &y, &grad])
            && d.num_dims() == 4
            && w1.shape().num_dims() == 4
            && [&w1, &w2, &squeezed, &hidden, &gates]
                .iter()
                .all(|t| t.dtype() == DType::F32);
        let (n, c, r) = if fits {
            (d[0], d[1], w1.shape()[0])
        } else {
            (0, 0, 0)
        };
        let fits = fits
            && shaped(&w1, &[r, c, 1, 1])
            && shaped(&w2, &[c, r, 1, 1])
            && shaped(&squeezed, &[n, c])
            && shaped(&hidden, &[n, r])
            && shaped(&gates, &[n, c, 1, 1]);
        if !fits {
            return burn_se_backward::<Flex>(a, w1, w2, squeezed, hidden, gates, y, grad);
        }
        let shape = SeShape {
            batch: n,
            channels: c,
            reduced: r,
            plane: d[2] * d[3],
        };
        let e = squeeze_excite::Excitation {
            squeezed: f32s(&squeezed).into_owned(),
            hidden: f32s(&hidden).into_owned(),
            gates: f32s(&gates).into_owned(),
        };
        let g = squeeze_excite::backward(
            &f32s(&a),
            &f32s(&w1),
            &f32s(&w2),
            &e,
            &f32s(&y),
            &f32s(&grad),
            shape,
        );
        (
            like(g.a, &a),
            like(g.w1, &w1),
            vector(g.b1),
            like(g.w2, &w2),
            vector(g.b2),
            like(g.shortcut, &a),
        )
    }
}

impl<B: Backend + SqueezeExciteOps, C: CheckpointStrategy> SqueezeExciteOps for Autodiff<B, C> {
    fn cnnzoo_se_scale_add_relu(
        a: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        shortcut: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[allow(clippy::redundant_closure_for_method_calls)] // the method's path is private to Burn
        let nodes = [&a, &w1, &b1, &w2, &b2, &shortcut].map(|t| t.node());
        match SeScaleAddReluBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let a_state = prep.checkpoint(&a);
                let w1_state = prep.checkpoint(&w1);
                let w2_state = prep.checkpoint(&w2);
                let a = a.into_primitive();
                let (squeezed, hidden, gates) = B::cnnzoo_se_excite(
                    a.clone(),
                    w1.into_primitive(),
                    b1.into_primitive(),
                    w2.into_primitive(),
                    b2.into_primitive(),
                );
                let y = B::cnnzoo_scale_add_relu(a, gates.clone(), shortcut.into_primitive());
                let state = (
                    a_state,
                    w1_state,
                    w2_state,
                    squeezed,
                    hidden,
                    gates,
                    y.clone(),
                );
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cnnzoo_se_scale_add_relu(
                a.into_primitive(),
                w1.into_primitive(),
                b1.into_primitive(),
                w2.into_primitive(),
                b2.into_primitive(),
                shortcut.into_primitive(),
            )),
        }
    }
}

/// The backward step of [`SqueezeExciteOps::cnnzoo_se_scale_add_relu`] under autodiff: the branch,
/// both FC weights (checkpointed), what the excitation computed, and the output.
#[derive(Debug)]
struct SeScaleAddReluBackward;

impl<B: Backend + SqueezeExciteOps> Backward<B, 6> for SeScaleAddReluBackward {
    #[allow(clippy::type_complexity)]
    type State = (
        NodeId,
        NodeId,
        NodeId,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 6>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let (a_state, w1_state, w2_state, squeezed, hidden, gates, y) = ops.state;
        let a = checkpointer.retrieve_node_output::<FloatTensor<B>>(a_state);
        let w1 = checkpointer.retrieve_node_output::<FloatTensor<B>>(w1_state);
        let w2 = checkpointer.retrieve_node_output::<FloatTensor<B>>(w2_state);
        let (da, dw1, db1, dw2, db2, ds) =
            B::cnnzoo_se_backward(a, w1, w2, squeezed, hidden, gates, y, grad);
        for (node, g) in ops.parents.into_iter().zip([da, dw1, db1, dw2, db2, ds]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// The end of a residual block with a standard SE unit, squeeze and excitation included:
/// `relu(a * sigmoid(fc2(relu(fc1(mean(a))))) + shortcut)`, with fc1 `w1` `[R, C, 1, 1]`,
/// `b1` `[R]` and fc2 `w2` `[C, R, 1, 1]`, `b2` `[C]` (1x1 convolutions on the channel
/// means). On the CPU (Flex) it is one operation with its own backward (two passes over the
/// branch each way); Burn's operations elsewhere or for other shapes.
pub fn se_scale_add_relu(
    a: Tensor<4>,
    w1: Tensor<4>,
    b1: Tensor<1>,
    w2: Tensor<4>,
    b2: Tensor<1>,
    shortcut: Tensor<4>,
) -> Tensor<4> {
    let [_, c, _, _] = a.dims();
    let [r, ..] = w1.dims();
    let fits = uses_kernels(&a.device())
        && a.dims() == shortcut.dims()
        && w1.dims() == [r, c, 1, 1]
        && b1.dims() == [r]
        && w2.dims() == [c, r, 1, 1]
        && b2.dims() == [c];
    if !fits {
        let squeezed = a.clone().mean_dim(3).mean_dim(2);
        let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        let hidden = burn::tensor::activation::relu(burn::tensor::module::conv2d(
            squeezed,
            w1,
            Some(b1),
            options.clone(),
        ));
        let gates = burn::tensor::activation::sigmoid(burn::tensor::module::conv2d(
            hidden,
            w2,
            Some(b2),
            options,
        ));
        return burn::tensor::activation::relu(a * gates + shortcut);
    }
    Tensor::from_dispatch(<Dispatch as SqueezeExciteOps>::cnnzoo_se_scale_add_relu(
        a.into_dispatch(),
        w1.into_dispatch(),
        b1.into_dispatch(),
        w2.into_dispatch(),
        b2.into_dispatch(),
        shortcut.into_dispatch(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::flex::test_support::{close, tensor};
    use burn::tensor::TensorData;

    /// The SE defaults (Burn's operations, what a GPU backend runs) against the Flex kernels.
    #[test]
    fn se_defaults_match_the_kernels() {
        let (n, c, r, h, w) = (3, 16, 4, 5, 3);
        let a = tensor(&[n, c, h, w], 1, 0.2);
        let (w1, b1) = (tensor(&[r, c, 1, 1], 2, 0.0), tensor(&[r], 3, 0.0));
        let (w2, b2) = (tensor(&[c, r, 1, 1], 4, 0.0), tensor(&[c], 5, 0.0));
        let shortcut = tensor(&[n, c, h, w], 6, 0.0);
        let grad = tensor(&[n, c, h, w], 7, 0.0);
        let ours =
            Flex::cnnzoo_se_excite(a.clone(), w1.clone(), b1.clone(), w2.clone(), b2.clone());
        let burn = burn_se_excite::<Flex>(a.clone(), w1.clone(), b1, w2.clone(), b2);
        close("squeezed", &ours.0, &burn.0);
        close("hidden", &ours.1, &burn.1);
        close("gates", &ours.2, &burn.2);
        assert!(
            f32s(&ours.1).contains(&0.0),
            "the bottleneck's ReLU never clipped"
        );
        let y = Flex::cnnzoo_scale_add_relu(a.clone(), ours.2.clone(), shortcut);
        let (sq, hid, g) = ours;
        let k = Flex::cnnzoo_se_backward(
            a.clone(),
            w1.clone(),
            w2.clone(),
            sq.clone(),
            hid.clone(),
            g.clone(),
            y.clone(),
            grad.clone(),
        );
        let d = burn_se_backward::<Flex>(a, w1, w2, sq, hid, g, y, grad);
        close("dL/da", &k.0, &d.0);
        close("dL/dw1", &k.1, &d.1);
        close("dL/db1", &k.2, &d.2);
        close("dL/dw2", &k.3, &d.3);
        close("dL/db2", &k.4, &d.4);
        close("dL/dshortcut", &k.5, &d.5);
    }

    /// FC weights given as `[R, C]` / `[C, R]` matrices instead of 1x1 kernels: the Flex
    /// operations hand them to Burn's operations (which take them as they are) instead of
    /// reading past their shape.
    #[test]
    fn se_operations_take_other_ranks_through_burn() {
        let (n, c, r, h, w) = (2, 8, 4, 3, 3);
        let a = tensor(&[n, c, h, w], 11, 0.2);
        let (w1, b1) = (tensor(&[r, c, 1, 1], 12, 0.0), tensor(&[r], 13, 0.0));
        let (w2, b2) = (tensor(&[c, r, 1, 1], 14, 0.0), tensor(&[c], 15, 0.0));
        let as_matrix = |t: &FlexTensor| {
            let d = t.shape();
            FlexTensor::from_data(TensorData::new(f32s(t).into_owned(), [d[0], d[1]]))
        };
        let (m1, m2) = (as_matrix(&w1), as_matrix(&w2));
        let e = Flex::cnnzoo_se_excite(a.clone(), w1.clone(), b1.clone(), w2.clone(), b2.clone());
        let m = Flex::cnnzoo_se_excite(a.clone(), m1.clone(), b1, m2.clone(), b2);
        close("gates", &e.2, &m.2);
        let y = Flex::cnnzoo_scale_add_relu(a.clone(), e.2.clone(), tensor(&[n, c, h, w], 16, 0.5));
        let grad = tensor(&[n, c, h, w], 17, 0.0);
        let (sq, hid, g) = e;
        let k = Flex::cnnzoo_se_backward(
            a.clone(),
            w1,
            w2,
            sq.clone(),
            hid.clone(),
            g.clone(),
            y.clone(),
            grad.clone(),
        );
        let b = Flex::cnnzoo_se_backward(a, m1, m2, sq, hid, g, y, grad);
        close("dL/da", &k.0, &b.0);
        close("dL/dw1", &as_matrix(&k.1), &b.1);
        close("dL/db2", &k.4, &b.4);
    }
}
