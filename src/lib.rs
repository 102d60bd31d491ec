//! dkms-rs: DKMS kernel-module packages for Debian, natively.
//!
//! The library behind four thin binaries (`src/bin/`: parse the command line, call here, map
//! the error to dkms's exit code): `dkms-rs` (the dkms verbs on a tree), `dkms-postinst` (a
//! -dkms package's maintainer scripts), `dkms-mkdeb` and `dh_dkms-rs` (packages).
//!
//! # Data flow
//!
//! ```text
//! dkms.conf --ConfFile (read once)--> ModuleConf per (kernel, arch)
//!    |                                   |
//!    |        build: copy source -> patch -> PRE_BUILD -> make (make.log) -> strip -> sign
//!    |               -> compress -> store `<m>/<v>/<k>/<a>/module/` (appears by rename)
//!    |        install: keep the original module -> place by rename -> depmod
//!    v
//! source tree + ModuleConf + prebuilt modules --package--> DataTree --deb--> .deb (ar+tar+xz)
//!                                  templates (minijinja) ^
//! ```
//!
//! # Layers
//!
//! Each module uses only modules of the layers above it in this list (`.ci/check-layers`
//! fails otherwise, and when the library uses clap: command lines are the binaries').
//!
//! | layer | modules | job |
//! |---|---|---|
//! | L0 | [`console`], [`atomic`], [`kernel`], [`framework`], [`templates`], [`deb`] | what the user sees; files appear by rename; kernels, arch, module compression; framework.conf; package templates; .deb and tar streams (knows nothing of dkms) |
//! | L1 | [`conf`] | dkms.conf -> [`conf::ModuleConf`], read once ([`conf::ConfFile`]), resolved per kernel |
//! | L2 | [`tree`] | the dkms tree: paths, states, `status`, the lock, the tree from framework.conf |
//! | L3 | [`tarball`] | dkms's tarball format: collect, write, extract safely |
//! | L4 | [`error`] | [`error::ActionError`] and dkms's exit codes |
//! | L5 | [`build`], [`jobs`], [`install`] | the steps: make, signing, compression; the parallel scheduler; placing modules, depmod |
//! | L6 | [`action`] | the dkms verbs on resolved values: [`action::Session`] = tree + console + settings + flags |
//! | L7 | [`package`], [`postinst`] | packages (-dkms, -modules, prebuilt); maintainer-script logic |
//! | L8 | [`debhelper`] | dh_dkms-rs, working in a given source package root |
//!
//! Within L0 the order is the list's (deb writes through atomic); within L5, install uses
//! build's script runner. Values travel typed: a [`build::BuildCommand`] gets its build
//! directory when the build runs, [`conf::ModuleRecord::dest_dir`] places a module, scripts
//! are [`build::ScriptKind`]s, errors carry their data and are worded once, where printed.

pub mod action;
pub mod atomic;
pub mod build;
pub mod conf;
pub mod console;
pub mod deb;
pub mod debhelper;
pub mod error;
pub mod framework;
pub mod install;
pub mod jobs;
pub mod kernel;
pub mod package;
pub mod postinst;
pub mod tarball;
pub mod templates;
pub mod tree;
