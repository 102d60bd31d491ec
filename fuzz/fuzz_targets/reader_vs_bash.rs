//! `cargo fuzz run reader_vs_bash`: see fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dkms_fuzz::conf::reader_vs_bash(data));
