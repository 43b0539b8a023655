//! The register tile that the direct, pointwise and Winograd kernels all run: [`ROWS`] output
//! rows x [`COLS`] columns, summed over input rows with AVX2 + FMA.
//!
//! The tile is written in assembly because LLVM, given the same loop with twelve accumulators,
//! shuffled and spilled registers in the inner loop. Here the accumulators stay in ymm0-11,
//! the three input vectors in ymm12-14 and the broadcast weight in ymm15. Its three
//! sequences (zero the accumulators, multiply-add one input row, store the rows) are written
//! once, as the macros below, and the two loops differ only in how they walk their operands:
//! [`tap_tile`] over input channels and kernel taps (the direct kernels, Winograd's products),
//! [`fused_tile`] over the input rows of a matrix product with the convolution's epilogue (the
//! pointwise kernel).

/// f32 lanes of one AVX register.
pub(crate) const LANES: usize = 8;
/// Output rows of the register tile.
pub(crate) const ROWS: usize = 4;
/// Columns of the register tile: 3 vectors, so 4 x 3 = 12 accumulators, enough to hide the
/// FMA latency on two FMA pipes (8 were measured 10-30% slower), with the 3 inputs and the
/// broadcast weight filling AVX2's 16 registers exactly.
pub(crate) const COLS: usize = 3 * LANES;

/// Whether this CPU runs the register tile (AVX2 and FMA).
pub(crate) fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Zeroes the accumulators ymm0-11.
macro_rules! zero_accumulators {
    () => {
        concat!(
            "vxorps ymm0, ymm0, ymm0\n",
            "vxorps ymm1, ymm1, ymm1\n",
            "vxorps ymm2, ymm2, ymm2\n",
            "vxorps ymm3, ymm3, ymm3\n",
            "vxorps ymm4, ymm4, ymm4\n",
            "vxorps ymm5, ymm5, ymm5\n",
            "vxorps ymm6, ymm6, ymm6\n",
            "vxorps ymm7, ymm7, ymm7\n",
            "vxorps ymm8, ymm8, ymm8\n",
            "vxorps ymm9, ymm9, ymm9\n",
            "vxorps ymm10, ymm10, ymm10\n",
            "vxorps ymm11, ymm11, ymm11\n",
        )
    };
}

/// One input row: its three vectors from address `$x` into ymm12-14, then for each output row
/// `j` the weight at address `$wj` broadcast and multiplied into row `j`'s accumulators.
macro_rules! multiply_add_row {
    ($x:literal, $w0:literal, $w1:literal, $w2:literal, $w3:literal) => {
        concat!(
            "vmovups ymm12, ymmword ptr [",
            $x,
            "]\n",
            "vmovups ymm13, ymmword ptr [",
            $x,
            " + 32]\n",
            "vmovups ymm14, ymmword ptr [",
            $x,
            " + 64]\n",
            "vbroadcastss ymm15, dword ptr [",
            $w0,
            "]\n",
            "vfmadd231ps ymm0, ymm15, ymm12\n",
            "vfmadd231ps ymm1, ymm15, ymm13\n",
            "vfmadd231ps ymm2, ymm15, ymm14\n",
            "vbroadcastss ymm15, dword ptr [",
            $w1,
            "]\n",
            "vfmadd231ps ymm3, ymm15, ymm12\n",
            "vfmadd231ps ymm4, ymm15, ymm13\n",
            "vfmadd231ps ymm5, ymm15, ymm14\n",
            "vbroadcastss ymm15, dword ptr [",
            $w2,
            "]\n",
            "vfmadd231ps ymm6, ymm15, ymm12\n",
            "vfmadd231ps ymm7, ymm15, ymm13\n",
            "vfmadd231ps ymm8, ymm15, ymm14\n",
            "vbroadcastss ymm15, dword ptr [",
            $w3,
            "]\n",
            "vfmadd231ps ymm9, ymm15, ymm12\n",
            "vfmadd231ps ymm10, ymm15, ymm13\n",
            "vfmadd231ps ymm11, ymm15, ymm14\n",
        )
    };
}

/// `$op` (`vmovups` to store, `vaddps` to add) of the four rows at register `$at`, `$row`
/// bytes apart: a store writes the accumulators there, an add reads them into the
/// accumulators. Advances `$at` by three rows.
macro_rules! each_row {
    (store, $at:literal, $row:literal) => {
        concat!(
            "vmovups ymmword ptr [",
            $at,
            "], ymm0\n",
            "vmovups ymmword ptr [",
            $at,
            " + 32], ymm1\n",
            "vmovups ymmword ptr [",
            $at,
            " + 64], ymm2\n",
            "add ",
            $at,
            ", ",
            $row,
            "\n",
            "vmovups ymmword ptr [",
            $at,
            "], ymm3\n",
            "vmovups ymmword ptr [",
            $at,
            " + 32], ymm4\n",
            "vmovups ymmword ptr [",
            $at,
            " + 64], ymm5\n",
            "add ",
            $at,
            ", ",
            $row,
            "\n",
            "vmovups ymmword ptr [",
            $at,
            "], ymm6\n",
            "vmovups ymmword ptr [",
            $at,
            " + 32], ymm7\n",
            "vmovups ymmword ptr [",
            $at,
            " + 64], ymm8\n",
            "add ",
            $at,
            ", ",
            $row,
            "\n",
            "vmovups ymmword ptr [",
            $at,
            "], ymm9\n",
            "vmovups ymmword ptr [",
            $at,
            " + 32], ymm10\n",
            "vmovups ymmword ptr [",
            $at,
            " + 64], ymm11\n",
        )
    };
    (add, $at:literal, $row:literal) => {
        concat!(
            "vaddps ymm0, ymm0, ymmword ptr [",
            $at,
            "]\n",
            "vaddps ymm1, ymm1, ymmword ptr [",
            $at,
            " + 32]\n",
            "vaddps ymm2, ymm2, ymmword ptr [",
            $at,
            " + 64]\n",
            "add ",
            $at,
            ", ",
            $row,
            "\n",
            "vaddps ymm3, ymm3, ymmword ptr [",
            $at,
            "]\n",
            "vaddps ymm4, ymm4, ymmword ptr [",
            $at,
            " + 32]\n",
            "vaddps ymm5, ymm5, ymmword ptr [",
            $at,
            " + 64]\n",
            "add ",
            $at,
            ", ",
            $row,
            "\n",
            "vaddps ymm6, ymm6, ymmword ptr [",
            $at,
            "]\n",
            "vaddps ymm7, ymm7, ymmword ptr [",
            $at,
            " + 32]\n",
            "vaddps ymm8, ymm8, ymmword ptr [",
            $at,
            " + 64]\n",
            "add ",
            $at,
            ", ",
            $row,
            "\n",
            "vaddps ymm9, ymm9, ymmword ptr [",
            $at,
            "]\n",
            "vaddps ymm10, ymm10, ymmword ptr [",
            $at,
            " + 32]\n",
            "vaddps ymm11, ymm11, ymmword ptr [",
            $at,
            " + 64]\n",
        )
    };
}

/// `out[j * out_stride + q] = sum_i w[i * 4 + j] * x[i * x_stride + q]` for the 4 rows `j`
/// and the [`COLS`] columns `q`: one matrix-product tile on [`tap_tile`]'s registers, for
/// operands already laid out for it (Winograd's transformed tiles). Panics without AVX2 +
/// FMA or when a slice is too short.
pub(crate) fn product_tile(
    x: &[f32],
    x_stride: usize,
    rows: usize,
    w: &[f32],
    out: &mut [f32],
    out_stride: usize,
) {
    assert!(simd_available(), "the product tile needs AVX2 and FMA");
    assert!(rows > 0 && x_stride >= COLS && out_stride >= COLS);
    assert!(x.len() >= (rows - 1) * x_stride + COLS && w.len() >= rows * ROWS);
    assert!(out.len() >= (ROWS - 1) * out_stride + COLS);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 and FMA checked; the tile reads x[i * x_stride..][..COLS] for i < rows and
    // w[..rows * 4], and writes out[j * out_stride..][..COLS] for j < 4, all inside the slices
    // by the asserts.
    unsafe {
        tap_tile(
            x.as_ptr(),
            x_stride,
            rows,
            &[0],
            w.as_ptr(),
            out.as_mut_ptr(),
            out_stride,
        );
    };
}

/// One register tile of a convolution: 4 output channels x [`COLS`] positions, summed over
/// `cin` input planes (`plane` elements apart from `xp`) and, in each, over the `taps`
/// offsets; the weights are read front to back, 4 per (channel, tap). Stores to `out` (rows
/// `qr` elements apart).
///
/// # Safety
/// AVX2 and FMA must be available, `cin` and `taps.len()` positive, and every address read or
/// written in bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn tap_tile(
    xp: *const f32,
    plane: usize,
    cin: usize,
    taps: &[usize],
    w: *const f32,
    out: *mut f32,
    qr: usize,
) {
    // SAFETY: the caller guarantees every address read or written is in bounds.
    unsafe {
        std::arch::asm!(
            zero_accumulators!(),
            "2:",
            "mov {tp}, {taps}",
            "mov {tc}, {ntaps}",
            "3:",
            "mov {off}, qword ptr [{tp}]",
            "lea {off}, [{base} + 4*{off}]",
            multiply_add_row!("{off}", "{wk}", "{wk} + 4", "{wk} + 8", "{wk} + 12"),
            "add {wk}, 16",
            "add {tp}, 8",
            "dec {tc}",
            "jnz 3b",
            "add {base}, {plane}",
            "dec {ci}",
            "jnz 2b",
            each_row!(store, "{out}", "{row}"),
            base = inout(reg) xp => _,
            plane = in(reg) plane * 4,
            ci = inout(reg) cin => _,
            taps = in(reg) taps.as_ptr(),
            ntaps = in(reg) taps.len(),
            tp = out(reg) _,
            tc = out(reg) _,
            off = out(reg) _,
            wk = inout(reg) w => _,
            out = inout(reg) out => _,
            row = in(reg) qr * 4,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack),
        );
    }
}

/// The epilogue as the register tile applies it: pointers to the tile's 4 biases and to its
/// residual (rows as far apart as the output's), null for none.
#[derive(Clone, Copy)]
pub(crate) struct Fuse {
    /// The tile's 4 biases, or null.
    pub(crate) bias: *const f32,
    /// The residual at the tile's first output, or null.
    pub(crate) residual: *const f32,
    /// `max(v, 0)` last.
    pub(crate) relu: bool,
}

impl Fuse {
    /// No epilogue.
    pub(crate) const NONE: Fuse = Fuse {
        bias: std::ptr::null(),
        residual: std::ptr::null(),
        relu: false,
    };
}

/// `y[j * stride + q] = e(sum_i w[j * w_row + i * w_col] * x[i * COLS + q])` for the 4 rows
/// `j` and the [`COLS`] columns `q` over `rows` input rows `i`, `e` adding the residual
/// (`fuse.residual[j * stride + q]`), then the bias (`fuse.bias[j]`), then taking the ReLU,
/// each where `fuse` asks for it. Both operands are read front to back.
///
/// # Safety
/// AVX2 and FMA must be available, `rows` positive, and every address read or written in
/// bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn fused_tile(
    x: *const f32,
    w: *const f32,
    w_row: usize,
    w_col: usize,
    rows: usize,
    y: *mut f32,
    stride: usize,
    fuse: Fuse,
) {
    use std::arch::x86_64::{_MM_HINT_ET0, _MM_HINT_T0, _mm_prefetch};
    // The output rows and the residual are far apart in memory and rarely in cache: asking
    // for their lines now lets them arrive while the products run, instead of stalling the
    // stores and the residual's loads at the end.
    for r in 0..ROWS {
        for off in [0, 16, COLS - 1] {
            // SAFETY: a prefetch never faults; the addresses are inside the tile's rows.
            unsafe {
                let at = r * stride + off;
                _mm_prefetch::<_MM_HINT_ET0>(y.add(at).cast::<i8>());
                if !fuse.residual.is_null() {
                    _mm_prefetch::<_MM_HINT_T0>(fuse.residual.add(at).cast::<i8>());
                }
            }
        }
    }
    // SAFETY: the caller guarantees every address read or written is in bounds.
    unsafe {
        std::arch::asm!(
            zero_accumulators!(),
            "2:",
            multiply_add_row!("{x}", "{w}", "{w} + {js}", "{w} + 2*{js}", "{w} + {j3}"),
            "add {x}, 96",
            "add {w}, {ks}",
            "dec {n}",
            "jnz 2b",
            // The residual, row by row.
            "test {res}, {res}",
            "jz 3f",
            each_row!(add, "{res}", "{row}"),
            "3:",
            // One bias per row.
            "test {bias}, {bias}",
            "jz 4f",
            "vbroadcastss ymm15, dword ptr [{bias}]",
            "vaddps ymm0, ymm0, ymm15",
            "vaddps ymm1, ymm1, ymm15",
            "vaddps ymm2, ymm2, ymm15",
            "vbroadcastss ymm15, dword ptr [{bias} + 4]",
            "vaddps ymm3, ymm3, ymm15",
            "vaddps ymm4, ymm4, ymm15",
            "vaddps ymm5, ymm5, ymm15",
            "vbroadcastss ymm15, dword ptr [{bias} + 8]",
            "vaddps ymm6, ymm6, ymm15",
            "vaddps ymm7, ymm7, ymm15",
            "vaddps ymm8, ymm8, ymm15",
            "vbroadcastss ymm15, dword ptr [{bias} + 12]",
            "vaddps ymm9, ymm9, ymm15",
            "vaddps ymm10, ymm10, ymm15",
            "vaddps ymm11, ymm11, ymm15",
            "4:",
            "test {relu}, {relu}",
            "jz 5f",
            "vxorps ymm15, ymm15, ymm15",
            "vmaxps ymm0, ymm0, ymm15",
            "vmaxps ymm1, ymm1, ymm15",
            "vmaxps ymm2, ymm2, ymm15",
            "vmaxps ymm3, ymm3, ymm15",
            "vmaxps ymm4, ymm4, ymm15",
            "vmaxps ymm5, ymm5, ymm15",
            "vmaxps ymm6, ymm6, ymm15",
            "vmaxps ymm7, ymm7, ymm15",
            "vmaxps ymm8, ymm8, ymm15",
            "vmaxps ymm9, ymm9, ymm15",
            "vmaxps ymm10, ymm10, ymm15",
            "vmaxps ymm11, ymm11, ymm15",
            "5:",
            each_row!(store, "{y}", "{row}"),
            x = inout(reg) x => _,
            w = inout(reg) w => _,
            js = in(reg) w_row * 4,
            j3 = in(reg) w_row * 12,
            ks = in(reg) w_col * 4,
            n = inout(reg) rows => _,
            y = inout(reg) y => _,
            row = in(reg) stride * 4,
            res = inout(reg) fuse.residual => _,
            bias = in(reg) fuse.bias,
            relu = in(reg) usize::from(fuse.relu),
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nostack),
        );
    }
}
