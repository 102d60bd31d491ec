//! `cargo fuzz run native_reader`: see fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dkms_fuzz::conf::native_reader(data));
