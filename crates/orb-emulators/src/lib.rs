//! # orb-emulators
//!
//! Stateful emulators of Microsoft Graph ([`graph`]), Exchange Web Services ([`ews`]) and TOPdesk ([`topdesk`]) as axum apps, held to the
//! vendors' published schemas, and a small OpenID Provider ([`oidc`]) for single sign-on. Used by integration tests, benchmarks and `orb demo`. Each has a test-only
//! control API under `/_emulator/` to act as a person in Outlook or TOPdesk and to inspect state, and all three
//! fail like the real services when a [`faults::FaultPlan`] says so (error statuses with realistic bodies,
//! timeouts, connections reset mid-body, slow bodies; before or after handling; seeded).
//!
//! ## Must not depend on
//! orb-engine, orb-web (the emulators stand in for the outside world; they know nothing of ORB's insides).

pub mod ews;
pub mod faults;
pub mod graph;
pub mod oidc;
pub mod topdesk;
