//! cargo-fuzz target `config`: see [`orb_fuzz::config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orb_fuzz::config(data));
