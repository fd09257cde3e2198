//! cargo-fuzz target `topdesk_models`: see [`orb_fuzz::topdesk_models`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orb_fuzz::topdesk_models(data));
