//! cargo-fuzz target `graph_models`: see [`orb_fuzz::graph_models`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orb_fuzz::graph_models(data));
