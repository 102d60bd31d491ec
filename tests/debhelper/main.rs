//! The debhelper test area: one test binary (see tests/support for the shared harness).

#[path = "../support/mod.rs"]
mod support;

mod debian_packages;
mod dh_dkms_rs;
mod dh_dkms_targets;
mod dh_reference;
