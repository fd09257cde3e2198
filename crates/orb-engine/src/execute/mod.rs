//! The **executor**: carries out a plan's writes against Graph and TOPdesk, idempotently, and reports what
//! each action did so the engine can commit the record, its timeline and follow-ups in one transaction.
//!
//! ## What it does
//! [`execute`] walks the plan's actions in order. Writes go to their side (TOPdesk create / update /
//! reschedule / move / cancel, Exchange create / update / cancel), mails are sent through Graph's
//! `sendMail` from the tenant's sender mailbox; `RaiseConflict`, `MassDeletionAlert`, `ScheduleRetry` and
//! `Nothing` are no remote writes and are reported as [`Outcome::NotAWrite`] (the engine records them).
//! Every action gets one [`ActionOutcome`] in the [`ExecutionReport`].
//!
//! ## Invariants
//! - Writes for one booking run in plan order, one at a time. The first failure on a side stops that side:
//!   its later actions are [`Outcome::Skipped`]; the other side carries on. A mail after any failed write
//!   is skipped too (it describes an effect that did not happen; the retry plan decides again).
//! - Nothing here reads the wall clock: the only time used (the external link's sync date) comes from
//!   [`ExecContext::clock`].
//! - Mails carry no meeting subject unless the template names the meeting and the record holds one (the
//!   record's subject is already filtered by the tenant's privacy policy); mail titles never do.
//!
//! ## The idempotency contract
//! Every write may run twice (a crash between the remote write and the engine's commit, a retried job):
//! - **Creates** carry the match id. Exchange: `transactionId` = match id and ORB's single-value extended
//!   property ([`Exchange::create_event`]); before each create the target calendar is
//!   searched for the property ([`Exchange::find_by_match_id`]), so a second run finds the
//!   first event. TOPdesk: the match id is the reservation's external link (tenant's integer type) and
//!   [`orb_topdesk::TopdeskClient::ensure_reservation`] looks the link up before every attempt.
//! - **Updates** set absolute values (times, room, attendee list, description): running one twice gives
//!   the same state. A TOPdesk move that TOPdesk refuses because the reservation already holds the new
//!   room counts as done.
//! - **Writes of an existing event are conditional**: they carry `If-Match` with the version ORB last saw
//!   ([`orb_core::ExchangeLink::change_key`]); when the event changed since, Graph refuses (`412`) and the
//!   action fails with [`ExecError::Changed`], having written nothing (the engine reads the event and plans
//!   again). The delete that ends a room-only event's move to another room is not conditional (its
//!   replacement was made already).
//! - **Cancels**: cancelling something already cancelled, deleting something already gone, or removing a
//!   room that is no longer on the meeting counts as done ([`Done::ReservationCancelled`] /
//!   [`Done::EventCancelled`] with `already = true`).
//!
//! ## The record contract ([`apply_to_record`])
//! The plan already set the record's fingerprints to what ORB is writing. The executor only *learns ids*:
//! [`apply_to_record`] writes the ids, numbers, change keys and modification dates of successful writes
//! into [`ExchangeLink`] / [`TopdeskLink`] and never touches fingerprints or statuses. When a write failed,
//! the engine must **not** commit the plan's record for that side: it keeps the old fingerprint (so the
//! next observation is not mistaken for an echo of a write that never happened) and calls
//! [`orb_core::plan_write_failure`] with [`ExecutionReport::failure`].

mod error;
mod exchange;
mod mail;
mod topdesk;

use crate::exchange::Exchange;
use chrono::{DateTime, Utc};
use orb_core::{
    Action, BookingId, BookingRecord, Clock, CorrelationId, EmailAddress, ExchangeCancel, ExchangeLink,
    RoomMap, Side, TopdeskLink, WriteFailure,
};
use orb_graph::model::ResponseType;
use orb_topdesk::{Reason, TopdeskClient};

pub use error::{ExecError, FailureClass, RemoteError};
pub use mail::{MailFacts, RenderedMail, render_mail, room_name};

/// Everything besides the plan and the record that executing depends on (one tenant).
#[derive(Debug, Clone, Copy)]
pub struct ExecContext<'a> {
    /// The tenant's Exchange (Graph or EWS).
    pub exchange: &'a dyn Exchange,
    /// The tenant's TOPdesk client.
    pub topdesk: &'a TopdeskClient,
    /// The tenant's rooms (room id → mailbox + TOPdesk location).
    pub rooms: &'a RoomMap,
    /// The tenant's TOPdesk external-link type (non-zero integer).
    pub link_type: i64,
    /// The mailbox ORB's mails are sent from.
    pub mail_sender: &'a EmailAddress,
    /// Correlation id of this work (sent as Graph's `client-request-id`).
    pub correlation: CorrelationId,
    /// The portal's base URL, e.g. `https://orb.example.com` (links in mails: `{portal}/bookings/{id}`).
    pub portal_base_url: &'a str,
    /// The reason sent with TOPdesk cancellations ([`Reason::Default`]: TOPdesk's configured default).
    pub cancel_reason: &'a Reason,
    /// The time (external-link sync dates).
    pub clock: &'a dyn Clock,
    /// An earlier run may have made this plan's creates (a retried job or plan, a known record): each
    /// create first looks for ORB's item by its match id. `false` only for a first try at a booking ORB
    /// never recorded, which saves the look-up (one call per create).
    pub may_have_created: bool,
}

/// Ids and versions of a TOPdesk reservation learned from a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationIds {
    /// Reservation id (UUID text).
    pub reservation_id: String,
    /// Human-readable number.
    pub number: Option<String>,
    /// `modificationDate` after the write.
    pub modification_date: Option<DateTime<Utc>>,
}

/// Ids and versions of an Exchange event learned from a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIds {
    /// The mailbox the event was written in.
    pub mailbox: EmailAddress,
    /// Whether that mailbox is the room's (room-only mode).
    pub in_room_calendar: bool,
    /// The event's id in that mailbox.
    pub event_id: String,
    /// `iCalUId` (same in every copy of the meeting).
    pub ical_uid: Option<String>,
    /// The write put the meeting in another room (organizer mode): the old room's copy is not the booking's
    /// any more. The new room's copy is learned from its notification (the planner takes its id).
    pub room_moved: bool,
    /// `changeKey` of the written copy (the event ORB writes: the organizer's copy, or the room's event in
    /// room-only mode), as the write answered: ORB's next `If-Match`.
    pub change_key: Option<String>,
    /// `lastModifiedDateTime` of the written copy.
    pub modified_at: Option<DateTime<Utc>>,
    /// The room's answer as the organizer's copy shows it (organizer mode).
    pub room_response: Option<ResponseType>,
}

/// What a successful action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// A reservation was created (`created = false`: an earlier attempt had) or changed.
    Reservation {
        /// Its ids.
        ids: ReservationIds,
        /// Whether this run created it.
        created: bool,
    },
    /// The reservation is cancelled (`already`: it was before, or there was none to cancel).
    ReservationCancelled {
        /// Its ids, when known.
        ids: Option<ReservationIds>,
        /// Nothing had to be done.
        already: bool,
    },
    /// An event was created (`created = false`: an earlier attempt had) or changed.
    Event {
        /// Its ids.
        ids: EventIds,
        /// Whether this run created it.
        created: bool,
    },
    /// The meeting is cancelled / the room removed / the room event deleted.
    EventCancelled {
        /// How.
        how: ExchangeCancel,
        /// The meeting after the room was removed ([`ExchangeCancel::RemoveRoom`]).
        ids: Option<EventIds>,
        /// Nothing had to be done (already cancelled, gone, or the room was not on the meeting).
        already: bool,
    },
    /// The reservation already carried an external link: nothing was written.
    Linked {
        /// Always `true` (a link that was written is a [`Done::Reservation`]).
        already: bool,
    },
    /// A mail was handed to Graph (`202`).
    MailSent {
        /// The recipient.
        to: EmailAddress,
    },
}

/// What happened to one action.
#[derive(Debug)]
pub enum Outcome {
    /// Carried out.
    Done(Done),
    /// Failed; [`FailureClass`] says whether to retry.
    Failed {
        /// Transient or permanent.
        class: FailureClass,
        /// What went wrong.
        error: ExecError,
    },
    /// Not attempted because action `after` (an index in the plan) failed first.
    Skipped {
        /// The failed action's index.
        after: usize,
    },
    /// Not a remote write (conflict, alert, retry, nothing): the engine records it.
    NotAWrite,
}

/// One action's outcome.
#[derive(Debug)]
pub struct ActionOutcome {
    /// Index of the action in the plan.
    pub index: usize,
    /// The side written to (`None` for mails and non-writes).
    pub side: Option<Side>,
    /// What happened.
    pub outcome: Outcome,
}

/// What executing one plan did.
#[derive(Debug)]
pub struct ExecutionReport {
    /// The booking (match id).
    pub booking: BookingId,
    /// One entry per action, in plan order.
    pub outcomes: Vec<ActionOutcome>,
}

impl ExecutionReport {
    /// The first failed *write* on `side`, as the planner takes it ([`orb_core::plan_write_failure`]).
    /// Failed mails are not write failures; a configuration failure (401 / 403) is not the planner's
    /// ([`ExecutionReport::denied`]).
    pub fn failure(&self, side: Side) -> Option<WriteFailure> {
        self.failed_write(side).and_then(|(_, class)| class.to_write_failure())
    }

    /// The index (in the plan) and class of the first failed write on `side`.
    pub fn failed_write(&self, side: Side) -> Option<(usize, &FailureClass)> {
        self.outcomes.iter().find_map(|o| match &o.outcome {
            Outcome::Failed { class, .. } if o.side == Some(side) => Some((o.index, class)),
            _ => None,
        })
    }

    /// The first side that denied ORB's credentials or rights, with what it said.
    pub fn denied(&self) -> Option<(Side, &str)> {
        self.outcomes.iter().find_map(|o| match (&o.outcome, o.side) {
            (Outcome::Failed { class: FailureClass::Config { reason }, .. }, Some(side)) => {
                Some((side, reason.as_str()))
            }
            _ => None,
        })
    }

    /// The side that refused a write because its item changed since ORB last saw it
    /// ([`ExecError::Changed`]: nothing was written there).
    pub fn changed(&self) -> Option<Side> {
        self.outcomes.iter().find_map(|o| match &o.outcome {
            Outcome::Failed { error, .. } if error.is_changed() => o.side,
            _ => None,
        })
    }

    /// Whether every action was done or is not a write.
    pub fn all_done(&self) -> bool {
        self.outcomes.iter().all(|o| matches!(o.outcome, Outcome::Done(_) | Outcome::NotAWrite))
    }

    /// The successful actions' results, in plan order.
    pub fn done(&self) -> impl Iterator<Item = &Done> {
        self.outcomes.iter().filter_map(|o| match &o.outcome {
            Outcome::Done(d) => Some(d),
            _ => None,
        })
    }
}

/// Carries out `plan` for the booking whose record (after the plan) is `record`.
///
/// `before` is the record as it was before the plan (`None` for a new booking); it is needed to find the old
/// room when a room-only event moves to another room, and to know that a TOPdesk create replaces an
/// earlier (cancelled) reservation of the same booking. See the module docs for order, stopping and
/// idempotency.
pub async fn execute(
    plan: &orb_core::Plan,
    record: &BookingRecord,
    before: Option<&BookingRecord>,
    ctx: &ExecContext<'_>,
) -> ExecutionReport {
    let mut failed: [Option<usize>; 2] = [None, None];
    let slot = |side: Side| usize::from(side == Side::Topdesk);
    let mut outcomes = Vec::with_capacity(plan.actions.len());
    for (index, action) in plan.actions.iter().enumerate() {
        let side = action.target_side();
        let outcome = match (action, side) {
            (_, Some(s)) if failed[slot(s)].is_some() => {
                Outcome::Skipped { after: failed[slot(s)].unwrap_or_default() }
            }
            // A link (like a mail) follows the writes before it: a desk reservation is linked only once
            // its Outlook meeting exists.
            (Action::SendMail { .. } | Action::LinkReservation { .. }, _)
                if failed.iter().any(Option::is_some) =>
            {
                Outcome::Skipped { after: failed.iter().flatten().copied().min().unwrap_or_default() }
            }
            (Action::SendMail { template, to, detail, .. }, _) => {
                finish(mail::send(*template, to, detail.as_deref(), record, before, ctx).await)
            }
            (_, Some(Side::Topdesk)) => finish(topdesk::write(action, record, before, ctx).await),
            (_, Some(Side::Exchange)) => finish(exchange::write(action, record, before, ctx).await),
            (_, None) => Outcome::NotAWrite,
        };
        if let (Outcome::Failed { error, .. }, Some(s)) = (&outcome, side) {
            tracing::warn!(
                booking = %record.id, correlation = %ctx.correlation, side = %s, index, error = %error,
                "write failed"
            );
            failed[slot(s)] = Some(index);
        }
        outcomes.push(ActionOutcome { index, side, outcome });
    }
    ExecutionReport { booking: record.id, outcomes }
}

fn finish(result: Result<Done, ExecError>) -> Outcome {
    match result {
        Ok(done) => Outcome::Done(done),
        Err(error) => Outcome::Failed { class: error.class(), error },
    }
}

/// Writes the ids and versions the report learned into the record's [`ExchangeLink`] / [`TopdeskLink`],
/// in plan order. Fingerprints and statuses are left alone (see the module docs for the contract). A
/// report for another booking changes nothing and returns `false`.
pub fn apply_to_record(record: &mut BookingRecord, report: &ExecutionReport) -> bool {
    if record.id != report.booking {
        tracing::warn!(record = %record.id, report = %report.booking, "report of another booking not applied");
        return false;
    }
    for done in report.done() {
        match done {
            Done::Reservation { ids, .. } | Done::ReservationCancelled { ids: Some(ids), .. } => {
                apply_reservation(&mut record.topdesk, ids)
            }
            Done::Event { ids, .. } | Done::EventCancelled { ids: Some(ids), .. } => {
                apply_event(&mut record.exchange, ids)
            }
            Done::ReservationCancelled { ids: None, .. }
            | Done::EventCancelled { ids: None, .. }
            | Done::Linked { .. }
            | Done::MailSent { .. } => {}
        }
    }
    true
}

fn apply_reservation(link: &mut TopdeskLink, ids: &ReservationIds) {
    link.reservation_id = Some(ids.reservation_id.clone());
    if ids.number.is_some() {
        link.reservation_number.clone_from(&ids.number);
    }
    if ids.modification_date.is_some() {
        link.modification_date = ids.modification_date;
    }
}

fn apply_event(link: &mut ExchangeLink, ids: &EventIds) {
    if ids.in_room_calendar {
        link.room_event_id = Some(ids.event_id.clone());
    } else {
        link.organizer_event_id = Some(ids.event_id.clone());
        if ids.room_moved {
            link.room_event_id = None;
        }
    }
    if ids.ical_uid.is_some() {
        link.ical_uid.clone_from(&ids.ical_uid);
    }
    if ids.change_key.is_some() {
        link.change_key.clone_from(&ids.change_key);
    }
    if ids.modified_at.is_some() {
        link.modified_at = ids.modified_at;
    }
}
