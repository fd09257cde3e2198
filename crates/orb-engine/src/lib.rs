//! # orb-engine
//!
//! ORB's sync engine. Today: turning what each side says into planner observations ([`observe`]) and
//! carrying out a plan's writes against Graph and TOPdesk ([`execute`]). Workers, schedulers, subscriptions
//! and reconciliation come next.
//!
//! ## Must not depend on
//! orb-web (the intake hands work over through the store only).

pub mod execute;
pub mod observe;
