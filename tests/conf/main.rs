//! The conf test area: one test binary (see tests/support for the shared harness).

#[path = "../support/mod.rs"]
mod support;

mod corpus;
mod fuzz_corpus;
mod hostile_names;
mod no_exec;
mod readers_agree;
mod rules;
