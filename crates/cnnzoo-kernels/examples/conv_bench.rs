//! Times one convolution's forward + backward (data and weight) with cnnzoo's kernels and
//! with Burn's flex backend, on the ResNet-20 layer shapes at batch 128.

use std::time::Instant;

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use cnnzoo_kernels::conv::{self, ConvGeometry};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let shapes = [
        (16, 16, 32, 1, 3),
        (16, 32, 32, 2, 3),
        (32, 32, 16, 1, 3),
        (64, 64, 8, 1, 3),
        (64, 256, 8, 1, 1),
    ];
    let batch = 128;
    let device = Device::flex();
    for (cin, cout, hw, stride, ks) in shapes {
        let g = ConvGeometry {
            batch,
            in_channels: cin,
            in_size: [hw, hw],
            out_channels: cout,
            kernel: [ks, ks],
            stride: [stride, stride],
            padding: [(ks / 2, ks / 2); 2],
            dilation: [1, 1],
            groups: 1,
        };
        let x: Tensor<4> = Tensor::random([batch, cin, hw, hw], Distribution::Default, &device);
        let w: Tensor<4> = Tensor::random([cout, cin, ks, ks], Distribution::Default, &device);
        let xv = x.to_data().try_to_vec::<f32>().unwrap();
        let wv = w.to_data().try_to_vec::<f32>().unwrap();
        let mut ours = Vec::new();
        let mut burn_t = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let y = conv::conv2d_forward(&g, &xv, &wv);
            let dx = conv::conv2d_backward_data(&g, &y, &wv);
            let dw = conv::conv2d_backward_weight(&g, &xv, &y);
            std::hint::black_box((dx, dw));
            ours.push(t.elapsed().as_secs_f64() * 1e3);

            let ad = device.clone().autodiff();
            let xa = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
            let wa = Tensor::<4>::from_data(w.to_data(), &ad).require_grad();
            let t = Instant::now();
            let y = conv2d(
                xa.clone(),
                wa.clone(),
                None,
                ConvOptions::new([stride, stride], [ks / 2, ks / 2], [1, 1], 1),
            );
            let loss = (y.clone().detach() * y).sum();
            let grads = loss.backward();
            let gx = xa.grad(&grads).unwrap().into_data();
            let gw = wa.grad(&grads).unwrap().into_data();
            std::hint::black_box((gx, gw));
            burn_t.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (o, b) = (median(ours), median(burn_t));
        println!(
            "cin {cin:3} cout {cout:3} {hw:2}x{hw:<2} s{stride} k{ks}: cnnzoo {o:7.1} ms  flex {b:7.1} ms  speed-up {:.2}x",
            b / o
        );
    }
}
