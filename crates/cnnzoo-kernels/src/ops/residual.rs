//! The end of a residual block as a Burn operation: [`add_relu`], `relu(branch + shortcut)`,
//! and [`scale_add_relu`], `relu(branch * gates + shortcut)` with an SE unit's gates (the
//! channel-wise axpy), each in one pass on Flex (the kernels of [`crate::residual`]) with its
//! own backward; Burn's operations elsewhere.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Tensor};

use super::device::uses_kernels;
use super::flex::{f32s, like, same_f32_shape};
use crate::residual;

/// A residual block's end, `relu(a + b)` or `relu(a * gates + b)`, with its backward.
#[backend_extension(Flex, Autodiff)]
pub trait ResidualOps: Backend {
    /// `relu(a + b)`: the end of a residual block.
    fn cnnzoo_add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        burn_add_relu::<Self>(a, b)
    }

    /// Gradient through a ReLU from its output `y`: `grad` where `y > 0`, else 0.
    fn cnnzoo_relu_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        burn_relu_backward::<Self>(y, grad)
    }

    /// `relu(a * gates + b)` with `gates` `[N, C, 1, 1]`: the end of a residual block with a
    /// standard SE unit (its channel-wise axpy).
    fn cnnzoo_scale_add_relu(
        a: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        burn_scale_add_relu::<Self>(a, gates, b)
    }

    /// Gradients of [`Self::cnnzoo_scale_add_relu`] with respect to `a`, `gates` and `b`,
    /// from its output `y`.
    fn cnnzoo_scale_add_relu_backward(
        a: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_scale_add_relu_backward::<Self>(a, gates, y, grad)
    }
}

/// [`ResidualOps::cnnzoo_add_relu`] from Burn's operations.
fn burn_add_relu<B: Backend>(a: FloatTensor<B>, b: FloatTensor<B>) -> FloatTensor<B> {
    B::relu(B::float_add(a, b))
}

/// [`ResidualOps::cnnzoo_relu_backward`] from Burn's operations.
fn burn_relu_backward<B: Backend>(y: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    B::relu_backward(y, grad)
}

/// [`ResidualOps::cnnzoo_scale_add_relu`] from Burn's operations.
fn burn_scale_add_relu<B: Backend>(
    a: FloatTensor<B>,
    gates: FloatTensor<B>,
    b: FloatTensor<B>,
) -> FloatTensor<B> {
    B::relu(B::float_add(B::float_mul(a, gates), b))
}

/// [`ResidualOps::cnnzoo_scale_add_relu_backward`] from Burn's operations.
pub(crate) fn burn_scale_add_relu_backward<B: Backend>(
    a: FloatTensor<B>,
    gates: FloatTensor<B>,
    y: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let db = B::relu_backward(y, grad);
    let da = B::float_mul(db.clone(), gates);
    let dgates = B::float_sum_dim(B::float_sum_dim(B::float_mul(db.clone(), a), 3), 2);
    (da, dgates, db)
}

/// Elements per gate when `a` and `b` are `[N, C, H, W]` `f32` of one shape and `gates` is
/// `[N, C, 1, 1]`.
fn gate_plane(a: &FlexTensor, gates: &FlexTensor, b: &FlexTensor) -> Option<usize> {
    let (sa, sg) = (a.shape(), gates.shape());
    let fits = same_f32_shape(&[a, b])
        && gates.dtype() == DType::F32
        && sa.num_dims() == 4
        && sg.num_dims() == 4
        && sg[0] == sa[0]
        && sg[1] == sa[1]
        && sg[2] == 1
        && sg[3] == 1;
    fits.then(|| sa[2] * sa[3])
}

impl ResidualOps for Flex {
    fn cnnzoo_add_relu(a: FlexTensor, b: FlexTensor) -> FlexTensor {
        if !same_f32_shape(&[&a, &b]) {
            return burn_add_relu::<Flex>(a, b);
        }
        like(residual::add_relu(&f32s(&a), &f32s(&b)), &a)
    }

    fn cnnzoo_relu_backward(y: FlexTensor, grad: FlexTensor) -> FlexTensor {
        if !same_f32_shape(&[&y, &grad]) {
            return burn_relu_backward::<Flex>(y, grad);
        }
        like(residual::relu_backward(&f32s(&y), &f32s(&grad)), &y)
    }

    fn cnnzoo_scale_add_relu(a: FlexTensor, gates: FlexTensor, b: FlexTensor) -> FlexTensor {
        let Some(plane) = gate_plane(&a, &gates, &b) else {
            return burn_scale_add_relu::<Flex>(a, gates, b);
        };
        let y = residual::scale_add_relu(&f32s(&a), &f32s(&gates), &f32s(&b), plane);
        like(y, &a)
    }

    fn cnnzoo_scale_add_relu_backward(
        a: FlexTensor,
        gates: FlexTensor,
        y: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let plane = gate_plane(&a, &gates, &y).filter(|_| same_f32_shape(&[&y, &grad]));
        let Some(plane) = plane else {
            return burn_scale_add_relu_backward::<Flex>(a, gates, y, grad);
        };
        let (da, dgates, db) = residual::scale_add_relu_backward(
            &f32s(&a),
            &f32s(&gates),
            &f32s(&y),
            &f32s(&grad),
            plane,
        );
        (like(da, &a), like(dgates, &gates), like(db, &a))
    }
}

impl<B: Backend + ResidualOps, C: CheckpointStrategy> ResidualOps for Autodiff<B, C> {
    fn cnnzoo_add_relu(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        match AddReluBackward
            .prepare::<C>([a.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::cnnzoo_add_relu(a.into_primitive(), b.into_primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::cnnzoo_add_relu(a.into_primitive(), b.into_primitive()))
            }
        }
    }

    fn cnnzoo_scale_add_relu(
        a: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match ScaleAddReluBackward
            .prepare::<C>([a.node(), gates.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let a_state = prep.checkpoint(&a);
                let gates_state = prep.checkpoint(&gates);
                let y = B::cnnzoo_scale_add_relu(
                    a.into_primitive(),
                    gates.into_primitive(),
                    b.into_primitive(),
                );
                prep.finish((a_state, gates_state, y.clone()), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cnnzoo_scale_add_relu(
                a.into_primitive(),
                gates.into_primitive(),
                b.into_primitive(),
            )),
        }
    }
}

/// The backward step of [`ResidualOps::cnnzoo_add_relu`] under autodiff: both operands get the
/// output gradient masked by the output's sign.
#[derive(Debug)]
struct AddReluBackward;

impl<B: Backend + ResidualOps> Backward<B, 2> for AddReluBackward {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_a, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let masked = B::cnnzoo_relu_backward(ops.state, grad);
        if let Some(node) = node_a {
            grads.register::<B>(node.id, masked.clone());
        }
        if let Some(node) = node_b {
            grads.register::<B>(node.id, masked);
        }
    }
}

/// The backward step of [`ResidualOps::cnnzoo_scale_add_relu`] under autodiff.
#[derive(Debug)]
struct ScaleAddReluBackward;

impl<B: Backend + ResidualOps> Backward<B, 3> for ScaleAddReluBackward {
    type State = (NodeId, NodeId, FloatTensor<B>);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_a, node_gates, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (a_state, gates_state, y) = ops.state;
        let a = checkpointer.retrieve_node_output::<FloatTensor<B>>(a_state);
        let gates = checkpointer.retrieve_node_output::<FloatTensor<B>>(gates_state);
        let (da, dgates, db) = B::cnnzoo_scale_add_relu_backward(a, gates, y, grad);
        for (node, g) in [(node_a, da), (node_gates, dgates), (node_b, db)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// `relu(a + b)`, the end of a residual block, in one pass on the CPU (Flex) with its own
/// backward; Burn's `relu(a + b)` elsewhere or when the shapes differ (Burn broadcasts them).
pub fn add_relu(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    if !uses_kernels(&a.device()) || a.dims() != b.dims() {
        return burn::tensor::activation::relu(a + b);
    }
    Tensor::from_dispatch(<Dispatch as ResidualOps>::cnnzoo_add_relu(
        a.into_dispatch(),
        b.into_dispatch(),
    ))
}

/// `relu(a * gates + b)` with `gates` `[N, C, 1, 1]`: the end of a residual block with a
/// standard SE unit (the channel-wise axpy, then the ReLU), in one pass on the CPU (Flex) with
/// its own backward; Burn's operations elsewhere or for other shapes.
pub fn scale_add_relu(a: Tensor<4>, gates: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let [n, c, _, _] = a.dims();
    if !uses_kernels(&a.device()) || a.dims() != b.dims() || gates.dims() != [n, c, 1, 1] {
        return burn::tensor::activation::relu(a * gates + b);
    }
    Tensor::from_dispatch(<Dispatch as ResidualOps>::cnnzoo_scale_add_relu(
        a.into_dispatch(),
        gates.into_dispatch(),
        b.into_dispatch(),
    ))
}
