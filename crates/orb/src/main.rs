//! The `orb` binary (being written).
mod config;
fn main() {}
