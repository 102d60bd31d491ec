//! The package test area: one test binary (see tests/support for the shared harness).

#[path = "../support/mod.rs"]
mod support;

mod deb_format;
mod debian_sources;
mod declared;
mod hostile_source;
mod man;
mod mkdeb;
mod mkdsc;
mod prebuilt_package;
