//! # orb-engine
//!
//! ORB's sync engine: reaching a tenant's Exchange through Graph or EWS behind one seam ([`exchange`]),
//! turning what each side says into planner observations ([`observe`]), carrying out a
//! plan's writes against Graph and TOPdesk ([`execute`]), syncing one observation end to end and the sync
//! jobs ([`sync`]), routing the queue's jobs by kind ([`dispatch`]) for the queue worker ([`worker`]),
//! Graph subscriptions and their lifecycle notifications ([`subscriptions`]), TOPdesk change detection by
//! polling ([`poller`]), an EWS tenant's push subscriptions ([`ews_push`]) or streaming connections
//! ([`ews_stream`]), the per-room reconciliation sweep ([`reconcile`]), and the periodic tasks
//! ([`scheduler`]). What they share (tenant runtimes, dependencies, errors, job kinds) is in [`runtime`].
//!
//! ## Import direction
//! The modules use each other without a cycle (`tests/modules.rs` fails on one):
//! `worker → dispatch → {sync, subscriptions, reconcile}`; `subscriptions → reconcile`;
//! `reconcile → {poller, observe}`; `sync → {execute, observe}`; everything → `runtime` → `exchange` (the
//! Exchange seam: Graph or EWS behind one trait, using no other engine module). Nothing but
//! `worker` uses `dispatch`, and `sync` uses neither `reconcile` nor `subscriptions`.
//!
//! ## Must not depend on
//! orb-web (the intake hands work over through the store only).

pub mod clouds;
pub mod dispatch;
pub mod ews_push;
pub mod ews_stream;
pub mod exchange;
pub mod execute;
pub mod keys;
pub mod observe;
pub mod pause;
pub mod poller;
pub mod reconcile;
pub mod retention;
pub mod runtime;
pub mod scheduler;
pub mod settings;
pub mod subscriptions;
pub mod sync;
pub mod worker;
