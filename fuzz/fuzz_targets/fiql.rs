//! cargo-fuzz target `fiql`: see [`orb_fuzz::fiql`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orb_fuzz::fiql(data));
