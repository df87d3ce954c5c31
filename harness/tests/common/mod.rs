//! Helpers shared by the integration tests, which drive the real `mqsim` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What one `mqsim` invocation produced.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `mqsim` with `args` in the harness crate directory, so relative paths in tests and in
/// expected output are stable wherever `cargo test` is started from.
pub fn mqsim<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    mqsim_in(manifest_dir(), args)
}

/// Runs `mqsim` with `args` in directory `cwd`.
pub fn mqsim_in<I, S>(cwd: &Path, args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = Command::new(env!("CARGO_BIN_EXE_mqsim"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the mqsim binary should start");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, empty directory for one test, under Cargo's scratch directory for integration tests.
#[allow(
    dead_code,
    reason = "not every test binary that includes this module needs it"
)]
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(test);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("old scratch directory should be removable");
    }
    std::fs::create_dir_all(&dir).expect("scratch directory should be creatable");
    dir
}
