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
//! - [`deb`]: .deb writing as dpkg-deb does it (ar, GNU tar, compression, md5sums); knows nothing of dkms.
//! - [`package`]: mkdeb: a module source tree -> `<name>-dkms_<version>_all.deb`.
//! - [`templates`]: minijinja templates for generated package files, embedded, overridable.
//! - [`cli`]: what the binaries share: man pages and completions from clap, one-line errors.

pub mod cli;
pub mod conf;
pub mod deb;
pub mod package;
pub mod templates;
