//! dkms.conf: read once, resolve for one (kernel, arch), hand a typed [`ModuleConf`] to the rest.
//!
//! dkms 3 sources dkms.conf as bash at every step; here a native reader handles declarative
//! files without spawning anything and hands over to bash (with dkms's own prelude) for files
//! that need the shell.

use std::path::PathBuf;

/// Everything dkms exposes to dkms.conf while reading it for one kernel and architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveContext {
    /// `$kernelver`
    pub kernelver: String,
    /// `$arch`
    pub arch: String,
    /// `$kernel_source_dir`: `/lib/modules/<k>/build` unless given.
    pub kernel_source_dir: PathBuf,
    /// `$dkms_tree`, default `/var/lib/dkms`.
    pub dkms_tree: PathBuf,
    /// `$source_tree`, default `/usr/src`.
    pub source_tree: PathBuf,
    /// `$install_tree`, default `/lib/modules`.
    pub install_tree: PathBuf,
    /// Where `/etc/dkms/<module>*.conf` overrides are looked up.
    pub etc_dir: PathBuf,
}

/// One `BUILT_MODULE_NAME[i]` record, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRecord {
    pub built_name: String,
    pub built_location: String,
    pub dest_name: String,
    /// With Debian's `/updates/dkms` override already applied.
    pub dest_location: String,
    pub strip: bool,
}

/// A dkms.conf resolved for one (kernel, arch), as dkms 3.0.10 would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleConf {
    /// The dkms.conf this was read from.
    pub path: PathBuf,
    pub package_name: String,
    pub package_version: String,
    /// The make command chosen through MAKE/MAKE_MATCH, before dkms adds `-jN KERNELRELEASE=`.
    pub make_command: String,
    pub clean: String,
    pub modules: Vec<ModuleRecord>,
    /// Patch file names under `<source>/patches/`, chosen through PATCH/PATCH_MATCH.
    pub patches: Vec<String>,
    pub pre_build: Option<String>,
    pub post_build: Option<String>,
    pub pre_install: Option<String>,
    pub post_install: Option<String>,
    pub post_add: Option<String>,
    pub post_remove: Option<String>,
    pub autoinstall: bool,
    pub build_depends: Vec<String>,
    /// BUILD_EXCLUSIVE_* says: not for this kernel/arch.
    pub build_exclude: bool,
    pub obsolete_by: Option<String>,
}
