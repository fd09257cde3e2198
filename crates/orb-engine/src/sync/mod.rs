//! **Sync**: one observation in, one committed booking out (DESIGN §3, "ORB record → planner → executor").
//!
//! [`sync_observation`] finds the booking's ORB record, builds the [`orb_core::PlanContext`] (the tenant's
//! policy and room map from [`crate::runtime::TenantRuntime`], TOPdesk persons looked up by e-mail, ids and time from the injected
//! clock), runs the pure planner, carries out the plan's writes ([`crate::execute`]) and commits the
//! result. The job handlers turn the queue's jobs (`graph.notification`, `topdesk.hint`, `sync.retry`,
//! `sync.observation`) into observations and sync them; [`crate::dispatch::process_job`] routes a job to
//! them by its kind and [`crate::worker::Worker`] runs jobs from the store's queue.
//!
//! ## Layout
//! - `pipeline`: [`sync_observation`] and what it is made of (find the record, the TOPdesk person
//!   directory, plan, execute, commit, replan on conflict or on a side changed since ORB saw it);
//! - `room`: a room's calendar (the room's copy, the organizer's copy, `observe_in_room`);
//! - `handlers`: the sync jobs (`graph.notification`, `topdesk.hint`, `sync.retry` / `sync.observation`)
//!   and a room's series master (one sync per occurrence);
//! - `cache`: the per-job memory of person look-ups and calendar reads.
//!
//! This module uses [`crate::runtime`], [`crate::observe`], [`crate::execute`]; it never uses
//! [`crate::dispatch`], [`crate::reconcile`] or [`crate::subscriptions`] (`tests/modules.rs` checks).
//!
//! ## Invariants
//! - **One commit.** The record change, its timeline (the planner's entries plus one entry per executed
//!   write, mail or failure) and the follow-up jobs (retries) are written in *one* store call
//!   ([`orb_store::Store::insert_booking`] / [`orb_store::Store::update_booking`]): the transactional outbox of DESIGN §3. A crash
//!   before the commit leaves remote writes that the next run finds again by their idempotency keys.
//! - **A write's failure never loses the observation.** When a write fails, the record keeps the *old*
//!   fingerprint of the failed side (the contract in [`crate::execute`]); [`orb_core::plan_write_failure`] records
//!   the failure and, for transient failures, a `sync.retry` job carrying the observation itself is
//!   committed with the record, to run at the planner's back-off. After a transient failure of a known
//!   booking the record stays as it was (only the failure bookkeeping and ids a successful write learned
//!   change), so the retried observation is planned exactly as before (a booking live again after a
//!   cancellation, an occurrence moved room: cancel + create); for a new booking the observed side keeps
//!   no fingerprint, so the retry is not mistaken for an echo. After a permanent refusal the same
//!   observation again is an echo (no second refusal), a changed one is planned again.
//! - **No lost update between sweeps.** Before a plan overwrites a side, ORB knows whether that side
//!   changed since the record's watermark. Exchange: every write of an existing event carries `If-Match`
//!   with the version ORB last saw ([`orb_core::ExchangeLink::change_key`]); when Graph refuses it (`412`),
//!   nothing of the try is committed, the event is read (the room's copy by id, or by the meeting's
//!   `iCalUId` when ORB never learned the copy's id; observed with the organizer's copy, as a
//!   notification would be) and the observation is planned again with it as
//!   [`orb_core::Observation::counterpart`]. TOPdesk has no conditional write: where a TOPdesk change could win
//!   ([`orb_core::ConflictPolicy::can_win`]: `topdesk-wins`, `latest-wins`), a plan that overwrites a
//!   reservation with an Exchange change first reads it (one GET) and, when its `modificationDate` is newer
//!   than the watermark, plans again with it as the counterpart. Under `exchange-wins` no read is made:
//!   the Exchange change wins anyway, and a TOPdesk change made in that second is overwritten without a
//!   conflict entry. Each side is read at most once per try; then the planner's conflict rule (rule 5)
//!   decides, with the same timeline entry and mail as in a sweep. A second `412` is a transient failure.
//! - A side the planner left `Pending` (a create) becomes `Synced` in the commit once its writes succeeded.
//! - **A record whose other side was never written is planned as new again** (same match id and
//!   correlation id) unless the observation is an echo or stale, so a create that failed is retried as a
//!   create, idempotently.
//! - **Optimistic concurrency.** A [`orb_store::StoreError::Conflict`] (someone changed the record since it was read)
//!   reloads and plans again, at most [`crate::runtime::SyncDeps::max_conflict_tries`] times. Writes of an earlier try may
//!   run again: they are idempotent.
//! - **Tracing.** Every sync runs in a `sync` span carrying the booking's match id and correlation id.
//! - Time only from [`crate::runtime::SyncDeps::clock`]; nothing here reads the wall clock.
//! - **A room's copy is not the meeting** (`observe_in_room`): for a meeting someone else organizes, the
//!   organizer's copy (same `iCalUId`; one calendarView per organizer and job) supplies the fields, so
//!   the subject is the meeting's (Exchange rewrites the room copy's), and a room copy that is cancelled
//!   or gone is told apart: the meeting moved to another room (rule 7: a move, or for an unmanaged room a
//!   cancellation and a mail), the room declined a change (rule 8), or the meeting is cancelled (rule 6).
//!   The room's own events (room-only mode) are organized by the room: the record's organizer stands in.
//! - **Series** (`room_series`): a room's series master is kept as a series row (id derived from the
//!   room and the master's id, [`crate::observe::series_id_for`]); its instances within the horizon are synced as one
//!   booking each, and occurrences ORB knows in that room that are no longer among them are observed as
//!   gone (cancelled, moved to another room, declined).
//! - **Privacy first** (rule 13): under `drop` an observation loses its subject as soon as it is made
//!   (`scrubbed`), before it is planned, logged, put in a job or written.
//! - **TOPdesk person look-ups**: only the organizer (the requester) is looked up before planning, once per
//!   job (a series costs one look-up). TOPdesk names participants by id; the ids are resolved against the
//!   record's participants (`resolve_participants`).
//! - **Refused notifications write nothing but an audit entry** (`notification.refused`) and mark their
//!   inbox item processed: a bad `validationToken`, content that does not decrypt or whose signature
//!   does not match, a certificate ORB does not hold.

mod cache;
mod ews;
mod handlers;
mod pipeline;
mod room;

pub(crate) use ews::ews_notification;
pub(crate) use handlers::{graph_notification, sync_retry, topdesk_hint};
pub use pipeline::sync_observation;
