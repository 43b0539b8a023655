//! Folding BatchNorm into the preceding convolution for inference.
//!
//! In eval mode BatchNorm is the per-channel affine map y = s (x - mean) + beta with
//! s = gamma / sqrt(var + eps), so conv-then-BN equals one convolution with weights
//! w * s (per output channel) and bias beta + (b - mean) * s. Pre-activation units
//! (DenseNet's BN-ReLU-conv) have a non-linearity between the two and stay as they are.

use burn::module::Param;
use burn::tensor::Tensor;

use crate::blocks::conv_bn_act::ConvBnAct;
use crate::blocks::inception::{
    GoogLeNetAux, InceptionA, InceptionAux, InceptionB, InceptionC, InceptionD, InceptionE,
    InceptionModule,
};
use crate::blocks::inception_v4::{
    FourBranch, InceptionResBlock, Mixed3a, Mixed4a, Mixed5a, Mixed7a, Reduction35, ReductionB,
    V4InceptionC,
};
use crate::blocks::residual::ResidualBlock;
use crate::blocks::stem::Stem;
use crate::models::Model;
use crate::models::densenet::DenseNet;
use crate::models::inception::{GoogLeNet, InceptionV3};
use crate::models::inception_v4::{InceptionResNetV2, InceptionV4};
use crate::models::resnet::ResNet;

/// Modules whose conv + BatchNorm pairs can be folded into single convolutions.
pub trait FuseBn: Sized {
    /// The same function in eval mode, with every foldable BatchNorm folded.
    fn fuse_bn(self) -> Self;
}

impl FuseBn for ConvBnAct {
    fn fuse_bn(mut self) -> Self {
        let Some(bn) = self.bn.take() else {
            return self;
        };
        let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
        let mean = bn.running_mean.value();
        let out = scale.dims()[0];
        let weight = self.conv.weight.val() * scale.clone().reshape([out as i32, 1, 1, 1]);
        let bias = match self.conv.bias.take() {
            Some(b) => b.val(),
            None => Tensor::zeros([out], &mean.device()),
        };
        let bias = bn.beta.val() + (bias - mean) * scale;
        self.conv.weight = Param::from_tensor(weight);
        self.conv.bias = Some(Param::from_tensor(bias));
        self
    }
}

fn all<T: FuseBn>(v: Vec<T>) -> Vec<T> {
    v.into_iter().map(FuseBn::fuse_bn).collect()
}

/// Folds the listed fields: `plain` are fusable modules, `vecs` vectors of them, `opts` options.
macro_rules! fuse_fields {
    ($ty:ty { $($plain:ident),* ; $($vec:ident),* ; $($opt:ident),* }) => {
        impl FuseBn for $ty {
            fn fuse_bn(mut self) -> Self {
                $(self.$plain = self.$plain.fuse_bn();)*
                $(self.$vec = all(self.$vec);)*
                $(self.$opt = self.$opt.map(FuseBn::fuse_bn);)*
                self
            }
        }
    };
}

fuse_fields!(Stem { conv ; deep ; });
fuse_fields!(ResidualBlock { conv1, conv2 ; ; conv3, downsample });
fuse_fields!(InceptionModule { branch1, branch4 ; branch2, branch3 ; });
fuse_fields!(InceptionA { branch1x1, branch_pool ; branch5x5, branch3x3dbl ; });
fuse_fields!(InceptionB { branch3x3 ; branch3x3dbl ; });
fuse_fields!(InceptionC { branch1x1, branch_pool ; branch7x7, branch7x7dbl ; });
fuse_fields!(InceptionD { ; branch3x3, branch7x7x3 ; });
fuse_fields!(InceptionE {
    branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b, branch3x3dbl_3a, branch3x3dbl_3b,
    branch_pool ; branch3x3dbl ;
});
fuse_fields!(GoogLeNetAux { conv ; ; });
fuse_fields!(Mixed3a { conv ; ; });
fuse_fields!(Mixed4a { ; branch0, branch1 ; });
fuse_fields!(Mixed5a { conv ; ; });
fuse_fields!(FourBranch { branch0, branch3 ; branch1, branch2 ; });
fuse_fields!(Reduction35 { branch0 ; branch1 ; });
fuse_fields!(ReductionB { ; branch0, branch1 ; });
fuse_fields!(V4InceptionC {
    branch0, branch1_0, branch1_1a, branch1_1b, branch2_0, branch2_1, branch2_2, branch2_3a,
    branch2_3b, branch3 ; ;
});
fuse_fields!(InceptionResBlock { branch0 ; branch1, branch2 ; });
fuse_fields!(Mixed7a { ; branch0, branch1, branch2 ; });
fuse_fields!(InceptionV4 {
    mixed_3a, mixed_4a, mixed_5a, reduction_a, reduction_b ;
    stem, inception_a, inception_b, inception_c ;
});
fuse_fields!(InceptionResNetV2 {
    conv2d_1a, conv2d_2a, conv2d_2b, conv2d_3b, conv2d_4a, mixed_5b, mixed_6a, mixed_7a, block8,
    conv2d_7b ; repeat, repeat_1, repeat_2 ;
});
fuse_fields!(InceptionAux { conv0, conv1 ; ; });
fuse_fields!(DenseNet { stem ; ; });
fuse_fields!(GoogLeNet { conv1, conv2, conv3 ; inception3, inception4, inception5 ; aux1, aux2 });
fuse_fields!(InceptionV3 {
    conv2d_1a_3x3, conv2d_2a_3x3, conv2d_2b_3x3, conv2d_3b_1x1, conv2d_4a_3x3, mixed_6a,
    mixed_7a ; mixed_5, mixed_6, mixed_7 ; aux_logits
});

impl FuseBn for ResNet {
    fn fuse_bn(mut self) -> Self {
        self.stem = self.stem.fuse_bn();
        self.stages = self.stages.into_iter().map(all).collect();
        self
    }
}

impl FuseBn for Model {
    fn fuse_bn(self) -> Self {
        match self {
            Model::ResNet(m) => Model::ResNet(m.fuse_bn()),
            Model::DenseNet(m) => Model::DenseNet(m.fuse_bn()),
            Model::GoogLeNet(m) => Model::GoogLeNet(m.fuse_bn()),
            Model::InceptionV3(m) => Model::InceptionV3(m.fuse_bn()),
            Model::InceptionV4(m) => Model::InceptionV4(m.fuse_bn()),
            Model::InceptionResNetV2(m) => Model::InceptionResNetV2(m.fuse_bn()),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;
    use crate::{ModelOptions, create};

    /// BatchNorm affine parameters and running statistics far from their identity start, so
    /// that folding them is really exercised.
    fn perturb(model: Model, input: [usize; 4], device: &Device) -> Model {
        struct Shift;
        impl burn::module::ModuleMapper for Shift {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                if D != 1 {
                    return param;
                }
                param.map(|t| {
                    let noise =
                        Tensor::random(t.shape(), Distribution::Uniform(0.5, 1.5), &t.device());
                    t + noise
                })
            }
        }
        let model = model.map(&mut Shift).train();
        for _ in 0..3 {
            let x = Tensor::<4>::random(input, Distribution::Normal(0.5, 2.0), device);
            let _ = model.forward(x);
        }
        model.valid()
    }

    #[test]
    fn folded_models_give_the_same_logits() {
        // resnet20 and resnet50 end their blocks in one fused conv + addition + ReLU once
        // folded (zero-padded and projected shortcuts); seresnext50 keeps its SE end.
        for name in [
            "resnet20",
            "resnet50",
            "seresnext50_32x4d",
            "googlenet",
            "densenet121",
        ] {
            let device = Device::flex();
            let opts = ModelOptions::default();
            let spec = crate::spec(name).unwrap();
            let [c, h, w] = spec.input;
            let (h, w) = (h.min(96), w.min(96));
            let model = perturb(
                create(name, opts).unwrap().init(&device),
                [2, c, h, w],
                &device,
            );
            let x = Tensor::<4>::random([2, c, h, w], Distribution::Normal(0.0, 1.0), &device);
            let before: Vec<f32> = model
                .forward(x.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let fused = model.fuse_bn();
            let after: Vec<f32> = fused.forward(x).into_data().try_to_vec::<f32>().unwrap();
            let scale = before.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            let diff = before
                .iter()
                .zip(&after)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff <= 1e-4 * scale, "{name}: {diff} vs scale {scale}");
        }
    }
}
