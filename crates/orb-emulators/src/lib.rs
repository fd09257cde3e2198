//! # orb-emulators
//!
//! Stateful emulators of Microsoft Graph ([`graph`]) and TOPdesk ([`topdesk`]) as axum apps, held to the
//! vendors' published schemas. Used by integration tests, benchmarks and `orb demo`. Each has a test-only
//! control API under `/_emulator/` to act as a person in Outlook or TOPdesk and to inspect state.
//!
//! ## Must not depend on
//! orb-engine, orb-web (the emulators stand in for the outside world; they know nothing of ORB's insides).

pub mod graph;
pub mod topdesk;
