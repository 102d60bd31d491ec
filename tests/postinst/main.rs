//! The postinst test area: one test binary (see tests/support for the shared harness).

#[path = "../support/mod.rs"]
mod support;

mod configure;
mod oracle;
