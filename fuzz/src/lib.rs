//! The checks the fuzz targets make, one function per target, shared with the corpus replay
//! tests of the main crate (tests/conf/fuzz_corpus.rs, tests/core/fuzz_corpus.rs include these
//! files), so that CI runs every checked-in input through them without nightly.

pub mod conf;
pub mod tarball;
