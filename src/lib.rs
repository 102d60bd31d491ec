//! dkms-rs: DKMS kernel-module packages for Debian, natively.
//!
//! The tour (see `DESIGN.md` of the project for the whole contract):
//!
//! ```text
//! dkms.conf --conf--> ModuleConf (resolved for one kernel/arch)
//!    |                      |
//!    |            build: copy source -> patch -> PRE_BUILD -> make (log) -> strip -> store
//!    |            install: back up original module -> place atomically -> depmod
//!    v
//! source tree + ModuleConf --package--> DebPackage --deb--> .deb (ar + tar + xz)
//!                         templates (minijinja) ^
//! ```
//!
//! Module map:
//! - [`conf`]: dkms.conf, native reader for declarative files, bash evaluation for the rest.
//! - [`framework`]: /etc/dkms/framework.conf(.d): tree roots, jobs, signing keys.
//! - [`kernel`]: kernel releases, headers, module suffix, dkms's version order.
//! - [`tree`]: the dkms tree: paths, states, `status`, the lock.
//! - [`build`]: the build pipeline of one module for one kernel, and make.log.
//! - [`install`]: install / uninstall / depmod.
//! - [`jobs`]: parallel builds bounded by `-j`, in dependency order, readable output.
//! - [`action`]: the dkms actions as the CLI runs them, their errors and exit codes.
//! - [`postinst`]: a -dkms package's maintainer-script logic (common.postinst, natively).
//! - [`tarball`]: mktarball / ldtarball: dkms's tarball of a module version, reproducible, loaded safely.
//! - [`deb`]: .deb writing as dpkg-deb does it (ar, GNU tar, compression, md5sums); knows nothing of dkms.
//! - [`package`]: mkdeb: a module source tree -> `<name>-dkms_<version>_all.deb` (with prebuilt
//!   modules: `_<arch>.deb`); mkbmdeb: built modules -> `<name>-modules-<kernel>_<version>_<arch>.deb`.
//! - [`templates`]: minijinja templates for generated package files, embedded, overridable.
//! - [`debhelper`]: dh_dkms-rs, the debhelper command and `dh` addon for `debian/` packagers.

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
