//! `cargo fuzz run tarball_extract`: see fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dkms_fuzz::tarball::extract_stays_inside(data));
