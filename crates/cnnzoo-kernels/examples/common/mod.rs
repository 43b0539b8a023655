//! Timing in alternating pairs, shared by the `*_bound` examples: on a shared machine whose
//! speed drifts from minute to minute, two paths run back to back compare where separate
//! series of runs do not.

use std::time::Instant;

/// Milliseconds one run of `f` takes.
pub fn ms(f: impl FnOnce() -> Vec<f32>) -> f64 {
    let t = Instant::now();
    std::hint::black_box(f());
    t.elapsed().as_secs_f64() * 1e3
}

/// The middle value (the upper one of an even count).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `a` then `b`, `pairs` times: their median milliseconds and the pairs `b` won.
pub fn alternate(
    pairs: usize,
    a: impl Fn() -> Vec<f32>,
    b: impl Fn() -> Vec<f32>,
) -> (f64, f64, usize) {
    let (mut ta, mut tb, mut wins) = (Vec::new(), Vec::new(), 0);
    for _ in 0..pairs {
        let (x, y) = (ms(&a), ms(&b));
        wins += usize::from(y < x);
        ta.push(x);
        tb.push(y);
    }
    (median(&mut ta), median(&mut tb), wins)
}

/// `PAIRS` from the environment, else `default`.
pub fn pairs(default: usize) -> usize {
    std::env::var("PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
