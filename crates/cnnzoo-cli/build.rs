//! Link settings for the `tch` feature (Burn's LibTorch backend).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // PyTorch's pip wheel splits CUDA across wheels: libtorch_cpu.so and libtorch_cuda.so name
    // libcudart, libcudnn and others that the nvidia-* wheels hold. They are found at run time
    // (the libraries' own RUNPATH), so the link must not insist on resolving them now.
    let tch = std::env::var_os("CARGO_FEATURE_TCH").is_some();
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if tch && linux {
        println!("cargo:rustc-link-arg=-Wl,--allow-shlib-undefined");
    }
}
