//! Running the built `cnnzoo` binary from the CLI tests.

use std::process::Command;

/// Runs `cnnzoo ARGS`: (success, stdout, stderr).
pub fn cnnzoo(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cnnzoo"))
        .args(args)
        .output()
        .expect("the cnnzoo binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
