//! ResNeXt's forms (a), (b) and (c) built from one BatchNorm-folded network compute the same
//! function with the same parameters and multiply-accumulates.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use cnnzoo_models::blocks::squeeze_excite::SeSettings;
use cnnzoo_models::blocks::{BlockKind, StemKind};
use cnnzoo_models::models::resnet::{ResNet, ResNetConfig};
use cnnzoo_models::models::resnext_forms::{Form, FormedBlock, FormedNet};
use cnnzoo_models::{FuseBn, Model, ModelConfig};

fn small_resnext(se: bool) -> ResNet {
    let c = ResNetConfig::new(10, vec![16, 32], vec![2, 1], BlockKind::Bottleneck)
        .with_stem(StemKind::Cifar)
        .with_stem_width(16)
        .with_cardinality(4)
        .with_base_width(16)
        .with_se(se.then(SeSettings::new));
    let device = Device::default();
    let Model::ResNet(net) = ModelConfig::ResNet(c).init(&device).valid().fuse_bn() else {
        unreachable!("a ResNet config builds a ResNet")
    };
    net
}

#[test]
fn the_three_forms_compute_the_same_function() {
    for se in [false, true] {
        let net = small_resnext(se);
        let x = Tensor::<4>::random(
            [2, 3, 12, 12],
            Distribution::Normal(0.0, 1.0),
            &Device::default(),
        );
        let c = FormedNet::new(&net, Form::Grouped)
            .unwrap()
            .forward(x.clone());
        let direct = net.forward(x.clone());
        let scale: f32 = c.clone().abs().max().into_scalar();
        assert!(scale > 1e-3);
        let diff: f32 = (c.clone() - direct).abs().max().into_scalar();
        assert!(diff <= 1e-5 * scale, "(c) vs the net: {diff}");
        for form in [Form::Split, Form::Concat] {
            let f = FormedNet::new(&net, form).unwrap();
            let diff: f32 = (f.forward(x.clone()) - c.clone()).abs().max().into_scalar();
            assert!(
                diff <= 1e-4 * scale,
                "{} se={se}: {diff} vs scale {scale}",
                form.label()
            );
        }
    }
}

#[test]
fn forms_keep_parameters_and_macs_and_refuse_what_they_cannot_rearrange() {
    let net = small_resnext(false);
    let sizes = [(144, 144), (144, 144), (144, 36)];
    let formed: Vec<FormedNet> = Form::ALL
        .iter()
        .map(|f| FormedNet::new(&net, *f).unwrap())
        .collect();
    let costs: Vec<(usize, usize)> = formed.iter().map(|f| f.grouped_part_cost(&sizes)).collect();
    assert_eq!(costs[0], costs[2]);
    assert_eq!(costs[1], costs[2]);
    // Three grouped blocks of 4 paths: (a) 3 convs per path, (b) 2 per path + 1, (c) 3.
    let convs: Vec<usize> = formed.iter().map(FormedNet::convolutions).collect();
    assert_eq!(convs, [36, 27, 9]);
    // Not folded: refused with the reason.
    let c = ResNetConfig::new(10, vec![16], vec![1], BlockKind::Bottleneck)
        .with_cardinality(4)
        .with_base_width(16);
    let Model::ResNet(unfolded) = ModelConfig::ResNet(c).init(&Device::default()) else {
        unreachable!()
    };
    let e = FormedBlock::new(&unfolded.stages[0][0], Form::Split).unwrap_err();
    assert!(e.contains("fuse_bn"), "{e}");
    let plain = ResNetConfig::new(10, vec![16], vec![1], BlockKind::Bottleneck);
    let Model::ResNet(plain) = ModelConfig::ResNet(plain).init(&Device::default()) else {
        unreachable!()
    };
    assert!(
        FormedNet::new(&plain, Form::Split)
            .unwrap_err()
            .contains("ResNeXt")
    );
}
