//! Shared test harness: real tools, real headers, scratch directories.
//!
//! A test that needs a tool or kernel headers asks [`require_tool`] / [`kernels_with_headers`].
//! Outside CI a missing one skips the test with a note on stderr; under `CI=true` it fails it,
//! so CI can never pass by skipping.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// True when running under CI (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skip (outside CI) or fail (under CI) because `what` is missing.
/// Returns false so callers can write `if !require_tool("x") { return; }`.
pub fn missing(what: &str) -> bool {
    if in_ci() {
        panic!("CI=true and {what} is missing: install it in .ci/run");
    }
    eprintln!("skipping: {what} is missing");
    false
}

/// Whether the program `tool` is on PATH (or in /usr/sbin, /sbin).
pub fn have_tool(tool: &str) -> bool {
    find_tool(tool).is_some()
}

/// Full path of `tool` found on PATH, /usr/sbin or /sbin.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// True if `tool` is there; otherwise skip or fail as [`missing`] says.
pub fn require_tool(tool: &str) -> bool {
    have_tool(tool) || missing(&format!("the tool `{tool}`"))
}

/// Kernel releases under /lib/modules whose headers (`build/Makefile`) are installed, sorted.
pub fn kernels_with_headers() -> Vec<String> {
    let mut kernels: Vec<String> = std::fs::read_dir("/lib/modules")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("build/Makefile").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    kernels.sort();
    kernels
}

/// The installed kernels with headers, or skip/fail when there are fewer than `n`.
pub fn require_kernels(n: usize) -> Option<Vec<String>> {
    let kernels = kernels_with_headers();
    if kernels.len() >= n {
        Some(kernels)
    } else {
        missing(&format!(
            "headers for {n} kernel(s) (found {kernels:?}; install linux-headers-amd64 linux-headers-cloud-amd64)"
        ));
        None
    }
}

/// The examples/hello module of this repository.
pub fn hello_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello")
}

/// Run a command, panic with its output if it fails, return its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Booting Debian kernels in qemu with modules loaded from a busybox initramfs.
pub mod qemu;

/// The reference -dkms package built with dh + dh_dkms + dpkg-buildpackage.
pub mod debhelper;
