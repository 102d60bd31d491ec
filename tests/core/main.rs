//! The core test area: one test binary (see tests/support for the shared harness).

#[path = "../support/mod.rs"]
mod support;

mod build_steps;
mod build_user;
mod cli;
mod conf_cache;
mod conf_words_3_2_2;
mod depends;
mod depends_rebuild_3_2_2;
mod disk_full;
mod dkms_3_2_2;
mod dkms_tree;
mod failures;
mod fuzz_corpus;
mod kernel_hooks;
mod lock;
mod mkdeb;
mod no_exec;
mod original;
mod progress;
mod seed;
mod signing;
mod status_format;
mod status_record;
mod tarball_hostile;
mod tarball_oracle;
mod upstream_suite;
