//! The system test area: one test binary (see tests/support for the shared harness).

#[path = "../support/mod.rs"]
mod support;

mod core_qemu;
mod crash;
mod debian_packages;
mod dpkg_roundtrip;
mod fleet;
mod postinst_dpkg;
mod prebuilt_dpkg;
mod qemu_boot;
mod signed_qemu;
mod target_chroot;
