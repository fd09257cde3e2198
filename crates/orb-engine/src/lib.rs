//! # orb-engine
//!
//! ORB's sync engine: turning what each side says into planner observations ([`observe`]), carrying out a
//! plan's writes against Graph and TOPdesk ([`execute`]), syncing one observation end to end and running
//! the queue's jobs ([`sync`]), Graph subscriptions and their lifecycle
//! notifications ([`subscriptions`]), TOPdesk change detection by polling ([`poller`]), and the queue worker
//! ([`worker`]); the per-room reconciliation sweep ([`reconcile`]). Schedulers come next.
//!
//! ## Must not depend on
//! orb-web (the intake hands work over through the store only).

pub mod clouds;
pub mod execute;
pub mod keys;
pub mod observe;
pub mod pause;
pub mod poller;
pub mod reconcile;
pub mod retention;
pub mod scheduler;
pub mod settings;
pub mod subscriptions;
pub mod sync;
pub mod worker;
