//! cargo-fuzz target `graph_notification`: see [`orb_fuzz::graph_notification`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orb_fuzz::graph_notification(data));
