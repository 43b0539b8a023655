//! The element-wise loops of BatchNorm and the residual ends, compiled for AVX2 + FMA where
//! the CPU has them (chosen at run time).
//!
//! The crate is built for baseline x86-64 (SSE2), where the compiler vectorises these loops
//! four lanes wide. Each helper here has its body compiled a second time inside a function with
//! AVX2 and FMA enabled (eight lanes), and runs that copy when the CPU supports it. The
//! closures they take are inlined into either copy.

use std::mem::MaybeUninit;

/// Whether this CPU runs the AVX2 + FMA copies.
#[inline]
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `$name` running `$body` compiled with AVX2 + FMA when available, else as is.
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident<$($g:ident: $bound:path),*>($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub(crate) fn $name<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn wide<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if avx2() {
                    // SAFETY: the CPU has AVX2 and FMA (checked by `avx2`).
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

multiversion! {
    /// Sum of `f(v)` over `p` in eight independent lanes (vectorised; a single running sum
    /// must keep its order and stays scalar), which also rounds less.
    fn lane_sum<F: Fn(f32) -> f32>(p: &[f32], f: F) -> f32 {
        let mut acc = [0.0f32; 8];
        let chunks = p.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            for (a, v) in acc.iter_mut().zip(c) {
                *a += f(*v);
            }
        }
        acc.iter().sum::<f32>() + tail.iter().map(|v| f(*v)).sum::<f32>()
    }
}

multiversion! {
    /// Two [`lane_sum`]s at once of the pair `f(a, b)` over two slices of one length: one
    /// pass over the data instead of two.
    fn lane_sums2<F: Fn(f32, f32) -> (f32, f32)>(p: &[f32], q: &[f32], f: F) -> (f32, f32) {
        let (mut acc0, mut acc1) = ([0.0f32; 8], [0.0f32; 8]);
        let (pc, qc) = (p.chunks_exact(8), q.chunks_exact(8));
        let (mut t0, mut t1) = (0.0f32, 0.0f32);
        for (a, b) in pc.remainder().iter().zip(qc.remainder()) {
            let (u, v) = f(*a, *b);
            t0 += u;
            t1 += v;
        }
        for (a8, b8) in pc.zip(qc) {
            for (((s0, s1), a), b) in acc0.iter_mut().zip(acc1.iter_mut()).zip(a8).zip(b8) {
                let (u, v) = f(*a, *b);
                *s0 += u;
                *s1 += v;
            }
        }
        (acc0.iter().sum::<f32>() + t0, acc1.iter().sum::<f32>() + t1)
    }
}

multiversion! {
    /// Writes `out[i] = f(a[i])` for every element of `out` (`a` at least as long).
    fn map1<F: Fn(f32) -> f32>(out: &mut [MaybeUninit<f32>], a: &[f32], f: F) {
        let n = out.len();
        for (o, x) in out.iter_mut().zip(&a[..n]) {
            o.write(f(*x));
        }
    }
}

multiversion! {
    /// Writes `out[i] = f(a[i], b[i])` for every element of `out` (`a`, `b` at least as long).
    fn map2<F: Fn(f32, f32) -> f32>(out: &mut [MaybeUninit<f32>], a: &[f32], b: &[f32], f: F) {
        let n = out.len();
        for ((o, x), y) in out.iter_mut().zip(&a[..n]).zip(&b[..n]) {
            o.write(f(*x, *y));
        }
    }
}

multiversion! {
    /// Replaces every `v` of `p` with `f(v)`.
    fn map_in_place<F: Fn(f32) -> f32>(p: &mut [f32], f: F) {
        for v in p.iter_mut() {
            *v = f(*v);
        }
    }
}

multiversion! {
    /// Replaces every `v` of `p` with `f(v, r)`, `r` the matching element of `q` (at least as
    /// long).
    fn map_in_place2<F: Fn(f32, f32) -> f32>(p: &mut [f32], q: &[f32], f: F) {
        let n = p.len();
        for (v, r) in p.iter_mut().zip(&q[..n]) {
            *v = f(*v, *r);
        }
    }
}

/// Copies `src` into `dst` (of one length): the rows of the direct and Winograd kernels'
/// planes are a few dozen elements, where a call to `memcpy` per row cost more than the copy.
/// Four-byte elements on an AVX2 CPU move in 8-element AVX moves written in assembly, because
/// the compiler turns any plain copy loop (even one of vector loads and stores) into a call
/// to `memcpy`.
#[inline]
pub(crate) fn copy_row<T: Copy>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len(), "row lengths");
    #[cfg(target_arch = "x86_64")]
    if size_of::<T>() == 4 && avx2() {
        // SAFETY: the CPU has AVX2; both slices hold src.len() four-byte elements, and any
        // Copy type of that size is moved correctly as its bytes.
        unsafe {
            copy4_avx2(
                dst.as_mut_ptr().cast::<f32>(),
                src.as_ptr().cast::<f32>(),
                src.len(),
            );
        };
        return;
    }
    dst.copy_from_slice(src);
}

/// `n` four-byte values from `s` to `d`.
///
/// # Safety
/// AVX2 must be available; `s` and `d` valid for `n` reads and writes, not overlapping.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy4_avx2(d: *mut f32, s: *const f32, n: usize) {
    use std::arch::x86_64::{
        _mm256_cmpgt_epi32, _mm256_maskload_ps, _mm256_maskstore_ps, _mm256_set1_epi32,
        _mm256_setr_epi32,
    };
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n: eight values inside both buffers.
        unsafe {
            std::arch::asm!(
                "vmovups {t}, ymmword ptr [{s}]",
                "vmovups ymmword ptr [{d}], {t}",
                s = in(reg) s.add(i),
                d = in(reg) d.add(i),
                t = out(ymm_reg) _,
                options(nostack, preserves_flags),
            );
        }
        i += 8;
    }
    if i < n {
        // The last 1-7 values through masked moves, which touch no memory outside the mask.
        let mask = _mm256_cmpgt_epi32(
            _mm256_set1_epi32((n - i) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        // SAFETY: only the first n - i lanes, inside both buffers, are read and written.
        unsafe { _mm256_maskstore_ps(d.add(i), mask, _mm256_maskload_ps(s.add(i), mask)) };
    }
}

multiversion! {
    /// `dst[i] = src[i * step]` for every `i` of `dst`; `step` must be positive and `src` hold
    /// at least `step * (dst.len() - 1) + 1` values. The strided convolutions' phase split: at
    /// step 2 the loop over pairs compiles to shuffles, eight values at a time.
    fn copy_strided<>(dst: &mut [f32], src: &[f32], step: usize) {
        let Some(last) = dst.len().checked_sub(1) else {
            return;
        };
        let src = &src[..step * last + 1];
        if step == 2 {
            for (d, pair) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = pair[0];
            }
            dst[last] = src[2 * last];
        } else {
            for (d, run) in dst.iter_mut().zip(src.chunks(step)) {
                *d = run[0];
            }
        }
    }
}

/// Asks for the cache lines of `len` values from `at` on (which need not be in any buffer: a
/// prefetch never faults).
#[inline]
pub(crate) fn prefetch(at: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for k in (0..len).step_by(16) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch reads nothing and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(k).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every step the phase split takes, on lengths around the vector width, with the source
    /// cut to exactly the values read.
    #[test]
    fn copy_strided_takes_every_step_th_value() {
        for step in 1..=4 {
            for n in [0usize, 1, 2, 7, 8, 9, 16, 17, 33] {
                let len = n.checked_sub(1).map_or(0, |last| step * last + 1);
                let src: Vec<f32> = (0..len).map(|i| i as f32).collect();
                let mut dst = vec![-1.0; n];
                copy_strided(&mut dst, &src, step);
                let want: Vec<f32> = (0..n).map(|i| (i * step) as f32).collect();
                assert_eq!(dst, want, "step {step}, {n} values");
            }
        }
    }
}
