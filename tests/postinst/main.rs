//! The postinst test area: one test binary (see tests/support for the shared harness).

#[path = "../support/mod.rs"]
mod support;

mod build_user;
mod configure;
mod oracle;
