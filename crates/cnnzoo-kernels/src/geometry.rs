//! The vocabulary every convolution kernel shares: [`ConvGeometry`] (a convolution's shape
//! and hyper-parameters), [`Epilogue`] (what the forward pass applies to each output on its
//! way out) and the length checks each forward path makes before touching its operands.

use std::mem::MaybeUninit;

use crate::simd::{copy_row, map_in_place, map_in_place2, map1, map2};

/// What the forward pass applies to each output value on its way out: a per-channel bias, a
/// residual operand of the output's shape, and a ReLU, in that order (an inference
/// convolution with BatchNorm folded into it, and the last one of a residual block with the
/// block's addition and ReLU), so that no separate pass over the output is needed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// One value per output channel, added to its plane.
    pub bias: Option<&'a [f32]>,
    /// A tensor of the output's shape (`[N, O, OH, OW]`), added element by element.
    pub residual: Option<&'a [f32]>,
    /// `max(v, 0)` last.
    pub relu: bool,
}

impl Epilogue<'_> {
    /// Whether it changes nothing.
    pub fn is_identity(&self) -> bool {
        self.bias.is_none() && self.residual.is_none() && !self.relu
    }

    /// Bias and ReLU of output channel `channel` around a pre-added value.
    fn finish(&self, channel: usize) -> impl Fn(f32) -> f32 + Copy + use<> {
        let (b, relu) = (self.bias.map_or(0.0, |b| b[channel]), self.relu);
        move |v: f32| {
            let v = v + b;
            if relu { v.max(0.0) } else { v }
        }
    }

    /// Writes `src` through the epilogue to `dst`, a run of output channel `channel` that
    /// starts at element `offset` of the whole output.
    pub(crate) fn write(
        &self,
        dst: &mut [MaybeUninit<f32>],
        src: &[f32],
        channel: usize,
        offset: usize,
    ) {
        if self.is_identity() {
            // SAFETY: MaybeUninit<f32> has f32's layout and holds any initialised f32.
            let src = unsafe { &*(&src[..dst.len()] as *const [f32] as *const [MaybeUninit<f32>]) };
            copy_row(dst, src);
            return;
        }
        let f = self.finish(channel);
        match self.residual {
            Some(r) => map2(dst, src, &r[offset..], |v, r| f(v + r)),
            None => map1(dst, src, f),
        }
    }

    /// Applies it in place to `planes` (`[c, plane]`), the planes of output channels
    /// `first..` starting at element `offset` of the whole output.
    pub(crate) fn apply(&self, planes: &mut [f32], plane: usize, first: usize, offset: usize) {
        if self.is_identity() || plane == 0 {
            return;
        }
        for (i, p) in planes.chunks_exact_mut(plane).enumerate() {
            let f = self.finish(first + i);
            match self.residual {
                Some(r) => map_in_place2(p, &r[offset + i * plane..], |v, r| f(v + r)),
                None => map_in_place(p, f),
            }
        }
    }
}

/// Shape and hyper-parameters of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height and width.
    pub in_size: [usize; 2],
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride per spatial axis.
    pub stride: [usize; 2],
    /// Zero padding per spatial axis as `(begin, end)`, as in Burn's `ConvOptions`.
    pub padding: [(usize, usize); 2],
    /// Dilation per spatial axis.
    pub dilation: [usize; 2],
    /// Channel groups (ResNeXt's cardinality).
    pub groups: usize,
}

impl ConvGeometry {
    /// A convolution of an `[N, C, H, W]` input (`x`) into `out_channels` with a `kernel`
    /// window: stride 1, no padding, no dilation, no groups (set others with struct update
    /// syntax, `ConvGeometry { padding, ..ConvGeometry::new(..) }`).
    pub fn new(
        [batch, in_channels, h, w]: [usize; 4],
        out_channels: usize,
        kernel: [usize; 2],
    ) -> Self {
        ConvGeometry {
            batch,
            in_channels,
            in_size: [h, w],
            out_channels,
            kernel,
            stride: [1, 1],
            padding: [(0, 0); 2],
            dilation: [1, 1],
            groups: 1,
        }
    }

    /// Output height and width, or `None` when the kernel does not fit the padded input.
    pub fn out_size(&self) -> Option<[usize; 2]> {
        let mut out = [0; 2];
        for (a, o) in out.iter_mut().enumerate() {
            let span = self.dilation[a] * (self.kernel[a] - 1) + 1;
            let padded = self.in_size[a] + self.padding[a].0 + self.padding[a].1;
            if span > padded || self.stride[a] == 0 {
                return None;
            }
            *o = (padded - span) / self.stride[a] + 1;
        }
        Some(out)
    }

    /// Checks what the kernels rely on; a message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.groups == 0
            || !self.in_channels.is_multiple_of(self.groups)
            || !self.out_channels.is_multiple_of(self.groups)
        {
            return Err(format!(
                "{} input and {} output channels do not split into {} groups",
                self.in_channels, self.out_channels, self.groups
            ));
        }
        if self.kernel.contains(&0) || self.dilation.contains(&0) {
            return Err("kernel size and dilation must be positive".into());
        }
        if self.out_size().is_none() {
            return Err(format!(
                "a {:?} kernel does not fit a {:?} input with padding {:?}",
                self.kernel, self.in_size, self.padding
            ));
        }
        Ok(())
    }

    /// Output height and width of a validated geometry.
    pub(crate) fn out_hw(&self) -> [usize; 2] {
        self.out_size().expect("validated geometry")
    }

    /// Input channels per group.
    pub(crate) fn cin_g(&self) -> usize {
        self.in_channels / self.groups
    }

    /// Output channels per group.
    pub(crate) fn cout_g(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Rows of the im2col matrix per group: input channels x kernel taps.
    pub(crate) fn k(&self) -> usize {
        self.cin_g() * self.kernel[0] * self.kernel[1]
    }

    /// Output positions per image.
    pub(crate) fn p(&self) -> usize {
        let [oh, ow] = self.out_hw();
        oh * ow
    }

    /// The input itself is the im2col matrix: 1x1, stride 1, no padding.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [(0, 0); 2]
    }

    /// Elements of the input tensor.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.in_size[0] * self.in_size[1]
    }

    /// Elements of the weight tensor `[out, in / groups, kh, kw]`.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.k()
    }

    /// Elements of the output tensor.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.p()
    }
}

/// Panics, saying which, unless `x`, `weight` and the epilogue's operands have the lengths
/// `g` gives them: every forward path checks this before touching them.
pub(crate) fn check_forward(g: &ConvGeometry, x: &[f32], weight: &[f32], epilogue: &Epilogue) {
    assert_eq!(weight.len(), g.weight_len(), "weight length");
    check_input(g, x, epilogue);
}

/// [`check_forward`] without the weights (a kernel that takes them transformed checks those).
pub(crate) fn check_input(g: &ConvGeometry, x: &[f32], epilogue: &Epilogue) {
    assert_eq!(x.len(), g.input_len(), "input length");
    if let Some(b) = epilogue.bias {
        assert_eq!(b.len(), g.out_channels, "one bias per output channel");
    }
    if let Some(r) = epilogue.residual {
        assert_eq!(r.len(), g.output_len(), "residual of the output's shape");
    }
}
