//! GoogLeNet (Inception v1 with BatchNorm, torchvision's layout) and Inception-v3, each with
//! optional auxiliary heads and optional SE after every module (SE-Inception).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::blocks::inception::{
    Gated, Gates, GoogLeNetAux, InceptionA, InceptionAux, InceptionB, InceptionC, InceptionD,
    InceptionE, InceptionModule, InceptionOptions,
};
use crate::blocks::squeeze_excite::SeSettings;
use crate::blocks::{Activation, ConvBnAct, Head, HeadKind, Norm, Pool2d};
use crate::error::ModelError;
use crate::graph::{Graph, Trace, Value, trace_all};
use crate::summary::{FeatureShape, ShapeError, Summarize, Summary, join};

/// Configuration shared by [`GoogLeNet`] and [`InceptionV3`].
#[derive(Config, Debug)]
pub struct InceptionConfig {
    /// Output classes.
    pub num_classes: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Build the auxiliary classifier(s), used in training only.
    #[config(default = false)]
    pub aux_logits: bool,
    /// SE after every Inception module (SE-Inception), if any.
    #[config(default = "None")]
    pub se: Option<SeSettings>,
    /// Non-linearity.
    #[config(default = "Activation::Relu")]
    pub act: Activation,
    /// Normalisation.
    #[config(default = "Norm::BatchNorm")]
    pub norm: Norm,
    /// Classifier head.
    #[config(default = "HeadKind::Linear")]
    pub head: HeadKind,
    /// Dropout before the classifier (GoogLeNet 0.2, Inception-v3 0.5).
    #[config(default = 0.5)]
    pub dropout: f64,
}

impl InceptionConfig {
    /// Checks the configuration; the error says what is inconsistent.
    pub fn validate(&self, model: &str) -> Result<(), ModelError> {
        let bad = |reason: &str| {
            Err(ModelError::InvalidConfig {
                model: model.into(),
                reason: reason.into(),
            })
        };
        if self.num_classes == 0 || self.in_channels == 0 {
            return bad("classes and input channels must be positive");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout must be in [0, 1)");
        }
        if let Some(se) = &self.se
            && (se.reduction == 0 || se.divisor == 0)
        {
            return bad("SE reduction and divisor must be positive");
        }
        Ok(())
    }

    pub(crate) fn options(&self) -> InceptionOptions {
        InceptionOptions {
            act: self.act,
            norm: self.norm,
            se: self.se.clone(),
            ..Default::default()
        }
    }

    /// Builds GoogLeNet.
    pub fn init_googlenet(&self, device: &Device) -> GoogLeNet {
        let o = self.options();
        let m = |i, ch| InceptionModule::new(i, ch, &o, device);
        let aux = |i| {
            self.aux_logits
                .then(|| GoogLeNetAux::new(i, self.num_classes, &o, device))
        };
        GoogLeNet {
            conv1: o
                .unit(self.in_channels, 64, [7, 7])
                .with_stride(2)
                .init(device),
            conv2: o.unit(64, 64, [1, 1]).init(device),
            conv3: o.unit(64, 192, [3, 3]).init(device),
            inception3: vec![
                m(192, [64, 96, 128, 16, 32, 32]),
                m(256, [128, 128, 192, 32, 96, 64]),
            ],
            inception4: vec![
                m(480, [192, 96, 208, 16, 48, 64]),
                m(512, [160, 112, 224, 24, 64, 64]),
                m(512, [128, 128, 256, 24, 64, 64]),
                m(512, [112, 144, 288, 32, 64, 64]),
                m(528, [256, 160, 320, 32, 128, 128]),
            ],
            inception5: vec![
                m(832, [256, 160, 320, 32, 128, 128]),
                m(832, [384, 192, 384, 48, 128, 128]),
            ],
            aux1: aux(512),
            aux2: aux(528),
            head: Head::new(self.head, 1024, self.num_classes, self.dropout, device),
        }
    }

    /// Builds Inception-v3.
    pub fn init_inception_v3(&self, device: &Device) -> InceptionV3 {
        let o = self.options();
        InceptionV3 {
            conv2d_1a_3x3: o.valid(self.in_channels, 32, 3, 2).init(device),
            conv2d_2a_3x3: o.valid(32, 32, 3, 1).init(device),
            conv2d_2b_3x3: o.unit(32, 64, [3, 3]).init(device),
            conv2d_3b_1x1: o.unit(64, 80, [1, 1]).init(device),
            conv2d_4a_3x3: o.valid(80, 192, 3, 1).init(device),
            mixed_5: vec![
                InceptionA::new(192, 32, &o, device),
                InceptionA::new(256, 64, &o, device),
                InceptionA::new(288, 64, &o, device),
            ],
            mixed_6a: InceptionB::new(288, &o, device),
            mixed_6: vec![
                InceptionC::new(768, 128, &o, device),
                InceptionC::new(768, 160, &o, device),
                InceptionC::new(768, 160, &o, device),
                InceptionC::new(768, 192, &o, device),
            ],
            aux_logits: self
                .aux_logits
                .then(|| InceptionAux::new(768, self.num_classes, &o, device)),
            mixed_7a: InceptionD::new(768, &o, device),
            mixed_7: vec![
                InceptionE::new(1280, &o, device),
                InceptionE::new(2048, &o, device),
            ],
            head: Head::new(self.head, 2048, self.num_classes, self.dropout, device),
        }
    }
}

fn pool_3x3_s2_ceil() -> Pool2d {
    Pool2d::max(3, 2, 0).ceil()
}

/// GoogLeNet (Inception v1) with BatchNorm, torchvision's layout.
#[derive(Module, Debug)]
pub struct GoogLeNet {
    /// 7x7 / 2 stem convolution.
    pub conv1: ConvBnAct,
    /// 1x1 convolution.
    pub conv2: ConvBnAct,
    /// 3x3 convolution to 192.
    pub conv3: ConvBnAct,
    /// Modules 3a, 3b (28x28).
    pub inception3: Vec<InceptionModule>,
    /// Modules 4a-4e (14x14).
    pub inception4: Vec<InceptionModule>,
    /// Modules 5a, 5b (7x7).
    pub inception5: Vec<InceptionModule>,
    /// Auxiliary head after 4a (training only).
    pub aux1: Option<GoogLeNetAux>,
    /// Auxiliary head after 4d (training only).
    pub aux2: Option<GoogLeNetAux>,
    /// Classifier head.
    pub head: Head,
}

impl GoogLeNet {
    /// Logits and, when built with them, the two auxiliary logits.
    pub fn forward_with_aux(&self, x: Tensor<4>) -> (Tensor<2>, Vec<Tensor<2>>) {
        self.forward_gated(x, &mut Vec::new())
    }

    /// [`forward_with_aux`](Self::forward_with_aux), pushing each module's SE gates to `gates`
    /// (`inception3.0`, ...).
    pub fn forward_gated(&self, x: Tensor<4>, gates: &mut Gates) -> (Tensor<2>, Vec<Tensor<2>>) {
        let x = pool_3x3_s2_ceil().forward(self.conv1.forward(x));
        let x = self.conv3.forward(self.conv2.forward(x));
        let mut x = pool_3x3_s2_ceil().forward(x);
        for (i, m) in self.inception3.iter().enumerate() {
            x = m.forward_gated(x, &format!("inception3.{i}"), gates);
        }
        x = pool_3x3_s2_ceil().forward(x);
        let mut aux = Vec::new();
        for (i, m) in self.inception4.iter().enumerate() {
            x = m.forward_gated(x, &format!("inception4.{i}"), gates);
            let head = match i {
                0 => &self.aux1,
                3 => &self.aux2,
                _ => &None,
            };
            if let Some(a) = head {
                aux.push(a.forward(x.clone()));
            }
        }
        x = Pool2d::max(2, 2, 0).ceil().forward(x);
        for (i, m) in self.inception5.iter().enumerate() {
            x = m.forward_gated(x, &format!("inception5.{i}"), gates);
        }
        (self.head.forward(x), aux)
    }

    /// Logits `[N, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with_aux(x).0
    }
}

impl Trace for GoogLeNet {
    /// The inference pass: the auxiliary heads are left out.
    fn trace(&self, p: &str, x: Value, g: &mut Graph) -> Value {
        let x = self.conv1.trace(&join(p, "conv1"), x, g);
        let x = pool_3x3_s2_ceil().trace(&join(p, "maxpool1"), x, g);
        let x = self.conv2.trace(&join(p, "conv2"), x, g);
        let x = self.conv3.trace(&join(p, "conv3"), x, g);
        let x = pool_3x3_s2_ceil().trace(&join(p, "maxpool2"), x, g);
        let x = trace_all(&self.inception3, &join(p, "inception3"), x, g);
        let x = pool_3x3_s2_ceil().trace(&join(p, "maxpool3"), x, g);
        let x = trace_all(&self.inception4, &join(p, "inception4"), x, g);
        let x = Pool2d::max(2, 2, 0)
            .ceil()
            .trace(&join(p, "maxpool4"), x, g);
        let x = trace_all(&self.inception5, &join(p, "inception5"), x, g);
        self.head.trace(&join(p, "head"), x, g)
    }
}

impl Summarize for GoogLeNet {
    fn summarize(
        &self,
        p: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let x = self.conv1.summarize(&join(p, "conv1"), input, s)?;
        let x = pool_3x3_s2_ceil().summarize(join(p, "maxpool1"), x, s)?;
        let x = self.conv2.summarize(&join(p, "conv2"), x, s)?;
        let x = self.conv3.summarize(&join(p, "conv3"), x, s)?;
        let mut x = pool_3x3_s2_ceil().summarize(join(p, "maxpool2"), x, s)?;
        for (i, m) in self.inception3.iter().enumerate() {
            x = m.summarize(&join(p, &format!("inception3.{i}")), x, s)?;
        }
        x = pool_3x3_s2_ceil().summarize(join(p, "maxpool3"), x, s)?;
        for (i, m) in self.inception4.iter().enumerate() {
            x = m.summarize(&join(p, &format!("inception4.{i}")), x, s)?;
            match (i, &self.aux1, &self.aux2) {
                (0, Some(a), _) => {
                    a.summarize(&join(p, "aux1"), x, s)?;
                }
                (3, _, Some(a)) => {
                    a.summarize(&join(p, "aux2"), x, s)?;
                }
                _ => {}
            }
        }
        x = Pool2d::max(2, 2, 0)
            .ceil()
            .summarize(join(p, "maxpool4"), x, s)?;
        for (i, m) in self.inception5.iter().enumerate() {
            x = m.summarize(&join(p, &format!("inception5.{i}")), x, s)?;
        }
        self.head.summarize(&join(p, "head"), x, s)
    }
}

/// Inception-v3 (torchvision / timm layout).
#[derive(Module, Debug)]
pub struct InceptionV3 {
    /// 3x3 / 2, valid.
    pub conv2d_1a_3x3: ConvBnAct,
    /// 3x3, valid.
    pub conv2d_2a_3x3: ConvBnAct,
    /// 3x3, same.
    pub conv2d_2b_3x3: ConvBnAct,
    /// 1x1 to 80.
    pub conv2d_3b_1x1: ConvBnAct,
    /// 3x3 to 192, valid.
    pub conv2d_4a_3x3: ConvBnAct,
    /// Mixed_5b, 5c, 5d (module A, 35x35).
    pub mixed_5: Vec<InceptionA>,
    /// Mixed_6a (module B, reduction to 17x17).
    pub mixed_6a: InceptionB,
    /// Mixed_6b-6e (module C, 17x17).
    pub mixed_6: Vec<InceptionC>,
    /// Auxiliary head after Mixed_6e (training only).
    pub aux_logits: Option<InceptionAux>,
    /// Mixed_7a (module D, reduction to 8x8).
    pub mixed_7a: InceptionD,
    /// Mixed_7b, 7c (module E, 8x8).
    pub mixed_7: Vec<InceptionE>,
    /// Classifier head.
    pub head: Head,
}

impl InceptionV3 {
    /// Logits and, when built with it, the auxiliary logits.
    pub fn forward_with_aux(&self, x: Tensor<4>) -> (Tensor<2>, Vec<Tensor<2>>) {
        self.forward_gated(x, &mut Vec::new())
    }

    /// [`forward_with_aux`](Self::forward_with_aux), pushing each module's SE gates to `gates`
    /// (`mixed_5.0`, `mixed_6a`, ...).
    pub fn forward_gated(&self, x: Tensor<4>, gates: &mut Gates) -> (Tensor<2>, Vec<Tensor<2>>) {
        let x = self.conv2d_1a_3x3.forward(x);
        let x = self.conv2d_2a_3x3.forward(x);
        let x = self.conv2d_2b_3x3.forward(x);
        let x = Pool2d::max(3, 2, 0).forward(x);
        let x = self.conv2d_3b_1x1.forward(x);
        let x = self.conv2d_4a_3x3.forward(x);
        let mut x = Pool2d::max(3, 2, 0).forward(x);
        for (i, m) in self.mixed_5.iter().enumerate() {
            x = m.forward_gated(x, &format!("mixed_5.{i}"), gates);
        }
        x = self.mixed_6a.forward_gated(x, "mixed_6a", gates);
        for (i, m) in self.mixed_6.iter().enumerate() {
            x = m.forward_gated(x, &format!("mixed_6.{i}"), gates);
        }
        let aux = self
            .aux_logits
            .iter()
            .map(|a| a.forward(x.clone()))
            .collect();
        x = self.mixed_7a.forward_gated(x, "mixed_7a", gates);
        for (i, m) in self.mixed_7.iter().enumerate() {
            x = m.forward_gated(x, &format!("mixed_7.{i}"), gates);
        }
        (self.head.forward(x), aux)
    }

    /// Logits `[N, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with_aux(x).0
    }
}

impl Trace for InceptionV3 {
    /// The inference pass: the auxiliary head is left out.
    fn trace(&self, p: &str, x: Value, g: &mut Graph) -> Value {
        let x = self.conv2d_1a_3x3.trace(&join(p, "conv2d_1a_3x3"), x, g);
        let x = self.conv2d_2a_3x3.trace(&join(p, "conv2d_2a_3x3"), x, g);
        let x = self.conv2d_2b_3x3.trace(&join(p, "conv2d_2b_3x3"), x, g);
        let x = Pool2d::max(3, 2, 0).trace(&join(p, "maxpool1"), x, g);
        let x = self.conv2d_3b_1x1.trace(&join(p, "conv2d_3b_1x1"), x, g);
        let x = self.conv2d_4a_3x3.trace(&join(p, "conv2d_4a_3x3"), x, g);
        let x = Pool2d::max(3, 2, 0).trace(&join(p, "maxpool2"), x, g);
        let x = trace_all(&self.mixed_5, &join(p, "mixed_5"), x, g);
        let x = self.mixed_6a.trace(&join(p, "mixed_6a"), x, g);
        let x = trace_all(&self.mixed_6, &join(p, "mixed_6"), x, g);
        let x = self.mixed_7a.trace(&join(p, "mixed_7a"), x, g);
        let x = trace_all(&self.mixed_7, &join(p, "mixed_7"), x, g);
        self.head.trace(&join(p, "head"), x, g)
    }
}

impl Summarize for InceptionV3 {
    fn summarize(
        &self,
        p: &str,
        input: FeatureShape,
        s: &mut Summary,
    ) -> Result<FeatureShape, ShapeError> {
        let x = self
            .conv2d_1a_3x3
            .summarize(&join(p, "conv2d_1a_3x3"), input, s)?;
        let x = self
            .conv2d_2a_3x3
            .summarize(&join(p, "conv2d_2a_3x3"), x, s)?;
        let x = self
            .conv2d_2b_3x3
            .summarize(&join(p, "conv2d_2b_3x3"), x, s)?;
        let x = Pool2d::max(3, 2, 0).summarize(join(p, "maxpool1"), x, s)?;
        let x = self
            .conv2d_3b_1x1
            .summarize(&join(p, "conv2d_3b_1x1"), x, s)?;
        let x = self
            .conv2d_4a_3x3
            .summarize(&join(p, "conv2d_4a_3x3"), x, s)?;
        let mut x = Pool2d::max(3, 2, 0).summarize(join(p, "maxpool2"), x, s)?;
        for (i, m) in self.mixed_5.iter().enumerate() {
            x = m.summarize(&join(p, &format!("mixed_5.{i}")), x, s)?;
        }
        x = self.mixed_6a.summarize(&join(p, "mixed_6a"), x, s)?;
        for (i, m) in self.mixed_6.iter().enumerate() {
            x = m.summarize(&join(p, &format!("mixed_6.{i}")), x, s)?;
        }
        if let Some(a) = &self.aux_logits {
            a.summarize(&join(p, "aux_logits"), x, s)?;
        }
        x = self.mixed_7a.summarize(&join(p, "mixed_7a"), x, s)?;
        for (i, m) in self.mixed_7.iter().enumerate() {
            x = m.summarize(&join(p, &format!("mixed_7.{i}")), x, s)?;
        }
        self.head.summarize(&join(p, "head"), x, s)
    }
}
