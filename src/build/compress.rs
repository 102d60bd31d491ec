//! Module compression as the kernel's own modules are compressed (dkms's `set_module_suffix`
//! and its `compress_module`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::kernel::ModuleCompression;

/// Compress `module` in place as `compression` says; returns the file to store and the
/// extension it got (`.xz`, ...). A compressor that is missing or fails leaves the module
/// uncompressed, as in dkms (which ignores the compressor's status).
pub fn compress(module: &Path, compression: ModuleCompression) -> (PathBuf, &'static str) {
    let Some(cmd) = compression.command() else {
        return (module.to_path_buf(), "");
    };
    let ok = Command::new(cmd[0])
        .args(&cmd[1..])
        .arg(module)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return (module.to_path_buf(), "");
    }
    let ext = compression.extension();
    (PathBuf::from(format!("{}{ext}", module.display())), ext)
}
