//! cargo-fuzz target `ews_xml`: see [`orb_fuzz::ews_xml`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orb_fuzz::ews_xml(data));
