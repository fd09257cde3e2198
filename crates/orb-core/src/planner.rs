//! The planner: `plan(record, observation, context) -> Plan`, a pure function (DESIGN §4).
//!
//! It reads no clock and does no I/O: `now`, the policy, the room map and the TOPdesk person directory
//! come in through [`PlanContext`]. Ids for a new record come in too ([`NewIds`]), so the same input always
//! gives the same plan.
//!
//! ## How a plan is made
//! 1. The observation is normalised: the privacy policy is applied to the subject first (rule 13), the
//!    room is mapped, rooms and the organizer are taken out of the participants.
//! 2. Its fingerprint (of the fields *as that side holds them*) is compared with the fingerprint ORB last
//!    wrote to or saw on that side: equal is an echo (rule 3). An observation older than the last version
//!    ORB processed on that side (its watermark) is stale and changes nothing: a later full observation
//!    heals anything it might have carried.
//! 3. If the observation carries the other side's current state too ([`Observation::counterpart`]) and
//!    both changed, the conflict policy picks the winner (rule 5); otherwise the changed side is propagated
//!    (rule 4), cancelled (rule 6), moved (rule 7) or reopened. A sweep sets the counterpart when it saw
//!    both sides changed; the engine sets it when the side a plan would overwrite changed since ORB last
//!    saw it (Graph refused the conditional write with `412`, or a read of the reservation before writing
//!    to it showed a newer `modificationDate` where [`ConflictPolicy::can_win`] lets TOPdesk win), so a
//!    conflict is decided when it happens, not at the next sweep. An Exchange counterpart's change key
//!    goes into the record either way (ORB's next `If-Match`).
//!
//! Rule 5 itself — a merge when the sides changed different fields, else the policy's winner propagated
//! over the loser with a conflict raised — lives in the child module `conflict` (`planner/conflict.rs`),
//! which this module only calls into.
//!
//! "As the side holds it" matters twice: TOPdesk shows the **fallback person** as requester when the
//! organizer is unknown there, and under `hide-on-room` it shows the neutral text. Those values are hashed
//! as they are (so ORB's own write is recognised as an echo) but never read back into the record: a
//! requester equal to the fallback person means "the record's organizer", and a subject read from the room
//! side means nothing.
//!
//! [`ConflictPolicy::can_win`]: crate::ConflictPolicy::can_win

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::canonical::{CanonicalFields, CanonicalRoom, normalise_subject};
use crate::observation::{Lifecycle, Observation, ObservationSource, ObservedRoom, RoomResponse};
use crate::plan::{
    Action, ExchangeCancel, ExchangeChanges, ExchangeTarget, NothingReason, Plan, RecordChange, Requester,
    ReservationChanges, TimelineEntry, TimelineKind, WriteKind,
};
use crate::policy::{MailTemplate, Mode, PersonDirectory, Policy, RoomMap, SubjectPolicy, TopdeskRefusal};
use crate::{
    BookingId, BookingRecord, CorrelationId, EmailAddress, NewBooking, RoomId, Side, SyncStatus, TenantId,
};

mod conflict;

/// TOPdesk's limit for `briefDescription` on write.
pub const TOPDESK_BRIEF_DESCRIPTION_MAX: usize = 100;

/// Retries of a transient failure before ORB gives up and treats it as permanent.
pub const MAX_RETRIES: u32 = 6;

/// Ids the caller generated for a record the plan may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewIds {
    /// Match id of a new booking.
    pub booking: BookingId,
    /// Correlation id of a new booking.
    pub correlation: CorrelationId,
}

/// What the sweep that produced this observation is doing to the room (rule 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepStats {
    /// The room.
    pub room: RoomId,
    /// The room's future bookings before the sweep.
    pub future_bookings: u32,
    /// How many of them this sweep would cancel.
    pub cancelling: u32,
    /// An admin approved this sweep's cancellations.
    pub approved: bool,
}

/// Everything besides the record and the observation that a plan depends on.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The tenant's policy.
    pub policy: &'a Policy,
    /// The tenant's rooms.
    pub rooms: &'a RoomMap,
    /// TOPdesk persons by e-mail (looked up by the engine).
    pub persons: &'a PersonDirectory,
    /// The time.
    pub now: DateTime<Utc>,
    /// Ids for a record this plan may create.
    pub new_ids: NewIds,
    /// Set when the observation comes from a sweep.
    pub sweep: Option<SweepStats>,
}

/// How a write to a side failed (rule 9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteFailure {
    /// Throttled, 5xx, a timeout: retry later.
    Transient {
        /// The side's `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
    /// Refused for good (e.g. the room is occupied in TOPdesk, a 400).
    Permanent {
        /// Why, as the side said it (shown in the portal; never contains a subject).
        reason: String,
    },
    /// The item the write was for is gone from the side (deleted meanwhile): nothing was refused, the
    /// deletion itself is carried over when it is observed (notification, poll or sweep).
    Gone {
        /// What was looked for.
        what: String,
    },
}

fn is_room_side(side: Side, mode: Mode) -> bool {
    side == Side::Topdesk || mode == Mode::RoomOnly
}

fn truncate_chars(s: String, max: usize) -> String {
    if s.chars().count() <= max { s } else { s.chars().take(max).collect() }
}

struct Planner<'c, 'a> {
    ctx: &'c PlanContext<'a>,
    timeline: Vec<TimelineEntry>,
}

impl Planner<'_, '_> {
    fn policy(&self) -> &Policy {
        self.ctx.policy
    }

    fn note(&mut self, kind: TimelineKind, side: Option<Side>, detail: impl Into<String>) {
        self.timeline.push(TimelineEntry { at: self.ctx.now, kind, side, detail: detail.into() });
    }

    fn finish(self, actions: Vec<Action>, record: RecordChange) -> Plan {
        Plan { actions, record, timeline: self.timeline }
    }

    fn nothing(mut self, reason: NothingReason, side: Side) -> Plan {
        self.note(TimelineKind::Skipped, Some(side), format!("nothing to do: {reason:?}"));
        self.finish(vec![Action::Nothing { reason }], RecordChange::Unchanged)
    }

    fn canonical_room(&self, room: &ObservedRoom) -> CanonicalRoom {
        match room {
            ObservedRoom::Mailbox(addr) => match self.ctx.rooms.by_mailbox(addr) {
                Some(m) => CanonicalRoom::Managed(m.id),
                None => CanonicalRoom::Unmanaged(addr.to_string()),
            },
            ObservedRoom::Location(loc) => match self.ctx.rooms.by_location(loc) {
                Some(m) => CanonicalRoom::Managed(m.id),
                None => CanonicalRoom::Unmanaged(loc.to_string()),
            },
            ObservedRoom::None => CanonicalRoom::None,
        }
    }

    /// The fields as the side holds them (privacy applied first), for the fingerprint.
    fn as_held(&self, obs: &Observation) -> CanonicalFields {
        let subject = match self.policy().subject {
            SubjectPolicy::Drop => None,
            _ => obs.subject.clone(),
        };
        let rooms = self.ctx.rooms;
        CanonicalFields::new(
            self.canonical_room(&obs.room),
            obs.start,
            obs.end,
            obs.organizer.clone(),
            obs.participants.iter().filter(|p| !rooms.is_room_address(p)).cloned(),
            subject,
            obs.lifecycle != Lifecycle::Active,
        )
    }

    /// What the observation means for the booking (fallback requester and room-side subjects resolved).
    fn interpret(&self, obs: &Observation, record: Option<&BookingRecord>) -> CanonicalFields {
        let held = self.as_held(obs);
        let subject = match &self.policy().subject {
            SubjectPolicy::Drop => None,
            SubjectPolicy::HideOnRoom { .. } if is_room_side(obs.side, self.policy().mode) => {
                record.and_then(|r| r.subject.clone())
            }
            _ => held.subject.clone(),
        };
        let organizer = match (&self.policy().fallback_person, record) {
            (Some(fb), Some(rec)) if obs.side == Side::Topdesk && held.organizer == fb.email => {
                rec.organizer.clone()
            }
            _ => held.organizer.clone(),
        };
        CanonicalFields::new(
            held.room,
            held.start,
            held.end,
            organizer,
            held.participants,
            subject,
            held.cancelled,
        )
    }

    fn requester_for(&self, organizer: &EmailAddress) -> Option<Requester> {
        if let Some(id) = self.ctx.persons.person_id(organizer) {
            return Some(Requester::Person { person_id: id.to_owned(), email: organizer.clone() });
        }
        self.policy().fallback_person.as_ref().map(|fb| Requester::Fallback {
            person_id: fb.person_id.clone(),
            email: fb.email.clone(),
            organizer: organizer.clone(),
        })
    }

    /// What ORB writes to `side` for the booking `c`, as that side will hold it.
    fn project(&self, c: &CanonicalFields, side: Side) -> CanonicalFields {
        let policy = self.policy();
        match side {
            Side::Topdesk => {
                let organizer = self
                    .requester_for(&c.organizer)
                    .map_or_else(|| c.organizer.clone(), |r| r.email().clone());
                let subject = match &policy.subject {
                    SubjectPolicy::Keep => c.subject.clone(),
                    SubjectPolicy::HideOnRoom { text } => Some(text.clone()),
                    SubjectPolicy::Drop => None,
                }
                .map(|s| truncate_chars(s, TOPDESK_BRIEF_DESCRIPTION_MAX));
                CanonicalFields::new(
                    c.room.clone(),
                    c.start,
                    c.end,
                    organizer,
                    c.participants.clone(),
                    subject,
                    c.cancelled,
                )
            }
            Side::Exchange => {
                let subject = match &policy.subject {
                    SubjectPolicy::Keep => c.subject.clone(),
                    SubjectPolicy::HideOnRoom { text } if policy.mode == Mode::RoomOnly => Some(text.clone()),
                    SubjectPolicy::HideOnRoom { text } => c.subject.clone().or_else(|| Some(text.clone())),
                    SubjectPolicy::Drop => None,
                };
                CanonicalFields { subject: normalise_subject(subject), ..c.clone() }
            }
        }
    }

    fn stale(&self, record: &BookingRecord, obs: &Observation) -> bool {
        let watermark = match obs.side {
            Side::Topdesk => record.topdesk.modification_date,
            Side::Exchange => record.exchange.modified_at,
        };
        watermark.is_some_and(|w| obs.modified_at < w)
    }

    fn exchange_target(&self, organizer: &EmailAddress, room: RoomId) -> Option<ExchangeTarget> {
        match self.policy().mode {
            Mode::Organizer => Some(ExchangeTarget::Organizer { mailbox: organizer.clone() }),
            Mode::RoomOnly => {
                self.ctx.rooms.by_id(room).map(|m| ExchangeTarget::RoomOnly { mailbox: m.mailbox.clone() })
            }
        }
    }

    fn room_id(c: &CanonicalFields) -> Option<RoomId> {
        match c.room {
            CanonicalRoom::Managed(id) => Some(id),
            _ => None,
        }
    }

    fn mail(
        &mut self,
        actions: &mut Vec<Action>,
        template: MailTemplate,
        to: &EmailAddress,
        booking: BookingId,
    ) {
        self.mail_with(actions, template, to, booking, None);
    }

    fn mail_with(
        &mut self,
        actions: &mut Vec<Action>,
        template: MailTemplate,
        to: &EmailAddress,
        booking: BookingId,
        detail: Option<String>,
    ) {
        if self.policy().mails(template) {
            self.note(TimelineKind::Mail, None, format!("mail {} to the organizer", template.as_str()));
            actions.push(Action::SendMail { template, to: to.clone(), booking, detail });
        }
    }

    /// The action that creates the booking `c` on `side`; `None` when that is impossible (no requester).
    fn create_on(
        &mut self,
        side: Side,
        c: &CanonicalFields,
        rec: &BookingRecord,
        actions: &mut Vec<Action>,
    ) -> bool {
        let Some(room) = Self::room_id(c).and_then(|id| self.ctx.rooms.by_id(id)) else {
            return false;
        };
        match side {
            Side::Topdesk => {
                let Some(requester) = self.requester_for(&c.organizer) else {
                    return false;
                };
                let fallback = matches!(requester, Requester::Fallback { .. });
                let p = self.project(c, Side::Topdesk);
                actions.push(Action::CreateReservation {
                    booking: rec.id,
                    location: room.location.clone(),
                    start: c.start,
                    end: c.end,
                    requester,
                    participants: p.participants.clone(),
                    brief_description: p.subject.clone(),
                    series: rec.series_id,
                });
                if fallback {
                    self.note(
                        TimelineKind::Decision,
                        Some(Side::Topdesk),
                        "organizer unknown in TOPdesk: fallback person",
                    );
                    self.mail(actions, MailTemplate::FallbackPersonUsed, &c.organizer, rec.id);
                }
            }
            Side::Exchange => {
                let Some(target) = self.exchange_target(&c.organizer, room.id) else {
                    return false;
                };
                let p = self.project(c, Side::Exchange);
                actions.push(Action::CreateExchangeEvent {
                    booking: rec.id,
                    target,
                    room: room.mailbox.clone(),
                    start: c.start,
                    end: c.end,
                    time_zone: rec.time_zone.clone(),
                    organizer: c.organizer.clone(),
                    participants: p.participants.clone(),
                    subject: p.subject.clone(),
                });
            }
        }
        true
    }

    /// The actions that cancel the booking on `side`, and the fields the side holds afterwards.
    fn cancel_on(
        &self,
        side: Side,
        held_before: &CanonicalFields,
        rec: &BookingRecord,
        unmanaged_move: bool,
    ) -> (Action, CanonicalFields) {
        match side {
            Side::Topdesk => (
                Action::CancelReservation {
                    booking: rec.id,
                    reservation_id: rec.topdesk.reservation_id.clone(),
                },
                CanonicalFields { cancelled: true, ..held_before.clone() },
            ),
            Side::Exchange => {
                let target = self
                    .exchange_target(&rec.organizer, rec.room_id)
                    .unwrap_or(ExchangeTarget::Organizer { mailbox: rec.organizer.clone() });
                let how = match (self.policy().mode, self.policy().cancellation, unmanaged_move) {
                    (Mode::RoomOnly, _, _) => ExchangeCancel::DeleteRoomEvent,
                    (Mode::Organizer, _, true) => ExchangeCancel::RemoveRoom,
                    (Mode::Organizer, crate::CancellationPolicy::RemoveRoom, false) => {
                        ExchangeCancel::RemoveRoom
                    }
                    (Mode::Organizer, crate::CancellationPolicy::CancelMeeting, false) => {
                        ExchangeCancel::CancelMeeting
                    }
                };
                let after = match how {
                    ExchangeCancel::RemoveRoom => {
                        CanonicalFields { room: CanonicalRoom::None, ..held_before.clone() }
                    }
                    _ => CanonicalFields { cancelled: true, ..held_before.clone() },
                };
                (
                    Action::CancelExchangeEvent {
                        booking: rec.id,
                        target,
                        event_id: rec
                            .exchange
                            .organizer_event_id
                            .clone()
                            .or(rec.exchange.room_event_id.clone()),
                        how,
                    },
                    after,
                )
            }
        }
    }

    /// The actions that turn what `side` holds (`old`, projected) into `new` (projected).
    fn update_on(
        &mut self,
        side: Side,
        old_meaning: &CanonicalFields,
        new_meaning: &CanonicalFields,
        rec: &BookingRecord,
        actions: &mut Vec<Action>,
    ) {
        let old = self.project(old_meaning, side);
        let new = self.project(new_meaning, side);
        if old == new {
            return;
        }
        match side {
            Side::Topdesk => {
                let reservation_id = rec.topdesk.reservation_id.clone();
                if old.room != new.room {
                    let from = Self::room_id(&old)
                        .and_then(|id| self.ctx.rooms.by_id(id))
                        .map(|m| m.location.clone());
                    let to = Self::room_id(&new)
                        .and_then(|id| self.ctx.rooms.by_id(id))
                        .map(|m| m.location.clone());
                    match (rec.series_id, from, to) {
                        (None, Some(from), Some(to)) => {
                            actions.push(Action::MoveReservationRoom {
                                booking: rec.id,
                                reservation_id: reservation_id.clone(),
                                from,
                                to,
                            });
                        }
                        _ => {
                            // TOPdesk refuses facility changes on an occurrence of a series (reference
                            // §3.7): the occurrence is cancelled and a single reservation made in the new
                            // room, which carries every other change too.
                            actions.push(Action::CancelReservation { booking: rec.id, reservation_id });
                            let mut single = rec.clone();
                            single.series_id = None;
                            self.create_on(Side::Topdesk, new_meaning, &single, actions);
                            return;
                        }
                    }
                }
                if (old.start, old.end) != (new.start, new.end) {
                    actions.push(Action::RescheduleReservation {
                        booking: rec.id,
                        reservation_id: reservation_id.clone(),
                        start: new.start,
                        end: new.end,
                    });
                }
                let changes = ReservationChanges {
                    requester: (old.organizer != new.organizer
                        || old_meaning.organizer != new_meaning.organizer)
                        .then(|| self.requester_for(&new_meaning.organizer))
                        .flatten(),
                    participants: (old.participants != new.participants).then(|| new.participants.clone()),
                    brief_description: (old.subject != new.subject).then(|| new.subject.clone()),
                };
                if changes != ReservationChanges::default() {
                    actions.push(Action::UpdateReservation { booking: rec.id, reservation_id, changes });
                }
            }
            Side::Exchange => {
                let event_id = rec.exchange.organizer_event_id.clone().or(rec.exchange.room_event_id.clone());
                if old.organizer != new.organizer && self.policy().mode == Mode::Organizer {
                    // Graph cannot hand a meeting to another organizer: cancel in the old organizer's
                    // calendar, create in the new one's.
                    actions.push(Action::CancelExchangeEvent {
                        booking: rec.id,
                        target: ExchangeTarget::Organizer { mailbox: old.organizer.clone() },
                        event_id,
                        how: ExchangeCancel::CancelMeeting,
                    });
                    self.create_on(Side::Exchange, new_meaning, rec, actions);
                    return;
                }
                let Some(target) =
                    Self::room_id(&new).and_then(|id| self.exchange_target(&new.organizer, id))
                else {
                    return;
                };
                let room = (old.room != new.room)
                    .then(|| {
                        Self::room_id(&new).and_then(|id| self.ctx.rooms.by_id(id)).map(|m| m.mailbox.clone())
                    })
                    .flatten();
                let changes = ExchangeChanges {
                    room,
                    times: ((old.start, old.end) != (new.start, new.end)).then_some((new.start, new.end)),
                    participants: (old.participants != new.participants).then(|| new.participants.clone()),
                    subject: (old.subject != new.subject).then(|| new.subject.clone()),
                };
                actions.push(Action::UpdateExchangeEvent { booking: rec.id, target, event_id, changes });
            }
        }
    }
}

/// The status of a side after ORB cancelled the booking there: a meeting that only lost its room lives on.
fn status_after(after: &CanonicalFields) -> SyncStatus {
    if after.cancelled { SyncStatus::Cancelled } else { SyncStatus::Synced }
}

fn set_status(rec: &mut BookingRecord, side: Side, status: SyncStatus) {
    match side {
        Side::Exchange => rec.exchange_status = status,
        Side::Topdesk => rec.topdesk_status = status,
    }
}

fn set_fingerprint(rec: &mut BookingRecord, side: Side, fields: &CanonicalFields) {
    let fp = Some(fields.fingerprint());
    match side {
        Side::Exchange => rec.exchange_fingerprint = fp,
        Side::Topdesk => rec.topdesk_fingerprint = fp,
    }
}

/// Takes over ids and the side's watermark from an observation into the record's links.
fn absorb_ids(rec: &mut BookingRecord, obs: &Observation) {
    match obs.side {
        Side::Exchange => {
            if obs.ids.event_id.is_some() {
                rec.exchange.room_event_id.clone_from(&obs.ids.event_id);
            }
            if obs.ids.ical_uid.is_some() {
                rec.exchange.ical_uid.clone_from(&obs.ids.ical_uid);
            }
            if obs.ids.change_key.is_some() {
                rec.exchange.change_key.clone_from(&obs.ids.change_key);
            }
            rec.exchange.modified_at = Some(obs.modified_at);
        }
        Side::Topdesk => {
            if obs.ids.reservation_id.is_some() {
                rec.topdesk.reservation_id.clone_from(&obs.ids.reservation_id);
            }
            if obs.ids.reservation_number.is_some() {
                rec.topdesk.reservation_number.clone_from(&obs.ids.reservation_number);
            }
            rec.topdesk.modification_date = Some(obs.modified_at);
        }
    }
}

fn apply_fields(rec: &mut BookingRecord, c: &CanonicalFields) {
    if let CanonicalRoom::Managed(id) = c.room {
        rec.room_id = id;
    }
    rec.start = c.start;
    rec.end = c.end;
    if rec.organizer != c.organizer {
        rec.change_organizer(c.organizer.clone());
    }
    rec.participants.clone_from(&c.participants);
    rec.subject.clone_from(&c.subject);
    rec.cancelled = c.cancelled;
}

/// Decides what must happen for one observation of one booking. See the module docs.
///
/// `record` is the stored ORB record of the booking the observation belongs to (found by the engine by
/// match id, side ids or series + original start), `None` when ORB does not know the booking yet.
pub fn plan(record: Option<&BookingRecord>, observation: &Observation, ctx: &PlanContext<'_>) -> Plan {
    let mut p = Planner { ctx, timeline: Vec::new() };
    p.note(
        TimelineKind::Observed,
        Some(observation.side),
        format!("{:?} from {}", observation.source, observation.side),
    );
    match record {
        None => plan_new(p, observation),
        Some(rec) => {
            let planned = link_if_missing(plan_existing(p, rec, observation), rec, observation);
            keep_counterpart_version(planned, rec, observation)
        }
    }
}

/// An Exchange counterpart is the event as ORB read it just now (a sweep, or the engine after Graph refused
/// a conditional write with `412`): whatever the plan decides, the record takes its change key, so ORB's
/// writes name that version in `If-Match` and a change made after it is still caught. (A counterpart
/// that did not change is no conflict; it only refreshes the version.)
fn keep_counterpart_version(mut plan: Plan, rec: &BookingRecord, obs: &Observation) -> Plan {
    let Some(cp) = obs.counterpart.as_deref().filter(|c| c.side == Side::Exchange && c.side != obs.side)
    else {
        return plan;
    };
    let seen_before = rec.exchange.modified_at.is_some_and(|w| cp.modified_at < w);
    if let (Some(key), false, RecordChange::Update(next)) =
        (&cp.ids.change_key, seen_before, &mut plan.record)
    {
        next.exchange.change_key = Some(key.clone());
    }
    plan
}

/// A live reservation of a booking whose Outlook meeting exists, seen without ORB's external link (made
/// at the desk, onboarded, or its link write did not land): ORB links it, so both sides carry the match
/// id. Once linked, its observations carry the match id and this adds nothing.
fn link_if_missing(mut plan: Plan, rec: &BookingRecord, obs: &Observation) -> Plan {
    let wanted = obs.side == Side::Topdesk
        && obs.orb_match_id.is_none()
        && obs.lifecycle == Lifecycle::Active
        && obs.ids.reservation_id.is_some()
        && holds_item(rec, Side::Exchange)
        && !rec.cancelled
        && !matches!(plan.nothing_reason(), Some(NothingReason::Stale))
        && !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::LinkReservation { .. } | Action::CancelReservation { .. }));
    if !wanted {
        return plan;
    }
    plan.actions.retain(|a| !matches!(a, Action::Nothing { .. }));
    plan.actions
        .push(Action::LinkReservation { booking: rec.id, reservation_id: obs.ids.reservation_id.clone() });
    if matches!(plan.record, RecordChange::Unchanged) {
        plan.record = RecordChange::Update(Box::new(rec.clone()));
    }
    plan
}

fn plan_new(mut p: Planner<'_, '_>, obs: &Observation) -> Plan {
    let ctx = p.ctx;
    let side = obs.side;
    if obs.end <= obs.start {
        return p.nothing(NothingReason::InvalidTimes, side);
    }
    if obs.lifecycle != Lifecycle::Active {
        return p.nothing(NothingReason::NotTracked, side);
    }
    if obs.orb_match_id.is_some() {
        return p.nothing(NothingReason::OrbItemWithoutRecord, side);
    }
    let mapping = match (&obs.room, side) {
        (ObservedRoom::Mailbox(addr), Side::Exchange) => ctx.rooms.by_mailbox(addr),
        (ObservedRoom::Location(loc), Side::Topdesk) => ctx.rooms.by_location(loc),
        _ => None,
    };
    let Some(mapping) = mapping else {
        return p.nothing(NothingReason::UnmanagedRoom, side);
    };
    if obs.end <= ctx.now {
        return p.nothing(NothingReason::InPast, side);
    }
    if obs.start > ctx.now + ctx.policy.horizon {
        return p.nothing(NothingReason::BeyondHorizon, side);
    }
    if side == Side::Exchange {
        match obs.room_response {
            RoomResponse::Accepted => {}
            RoomResponse::Declined => {
                p.note(TimelineKind::Skipped, Some(side), "the room declined the meeting: no reservation");
                let mut actions = vec![Action::Nothing { reason: NothingReason::RoomDeclined }];
                p.mail(&mut actions, MailTemplate::RoomDeclined, &obs.organizer, ctx.new_ids.booking);
                return p.finish(actions, RecordChange::Unchanged);
            }
            RoomResponse::Tentative | RoomResponse::NotResponded => {
                return p.nothing(NothingReason::AwaitingRoomResponse, side);
            }
        }
    }
    let c = p.interpret(obs, None);
    let mut rec = BookingRecord::new(
        NewBooking {
            tenant_id: ctx.tenant_id,
            appointment_type: obs.appointment_type,
            series_id: obs.series.map(|s| s.series_id),
            original_start: obs.series.map(|s| s.original_start),
            organizer: c.organizer.clone(),
            booked_by: obs.booked_by.clone().filter(|b| *b != c.organizer),
            location_text: obs.location_text.clone(),
            room_id: mapping.id,
            participants: c.participants.clone(),
            subject: c.subject.clone(),
            start: c.start,
            end: c.end,
            time_zone: obs.time_zone.clone().unwrap_or_else(|| mapping.time_zone.clone()),
            processor_created: side,
        },
        ctx.now,
    );
    rec.id = ctx.new_ids.booking;
    rec.correlation_id = ctx.new_ids.correlation;
    absorb_ids(&mut rec, obs);
    set_fingerprint(&mut rec, side, &p.as_held(obs));
    set_status(&mut rec, side, SyncStatus::Synced);
    let target = side.other();
    let mut actions = Vec::new();
    if !p.create_on(target, &c, &rec, &mut actions) {
        // The booking is recorded with the other side refused, so the refusal is visible, mailed once and
        // re-driven by the sweeps (a person added to TOPdesk, or a fallback person configured, heals it).
        p.note(TimelineKind::Failure, Some(target), "organizer unknown in TOPdesk and no fallback person");
        rec.record_failure(target, p.ctx.now);
        let mut actions = vec![Action::Nothing { reason: NothingReason::NoRequester }];
        p.mail(&mut actions, MailTemplate::BookingRefused, &c.organizer, rec.id);
        return p.finish(actions, RecordChange::Create(Box::new(rec)));
    }
    set_fingerprint(&mut rec, target, &p.project(&c, target));
    if side == Side::Topdesk && obs.ids.reservation_id.is_some() {
        actions.push(Action::LinkReservation {
            booking: rec.id,
            reservation_id: obs.ids.reservation_id.clone(),
        });
    }
    p.note(TimelineKind::Decision, Some(target), format!("create on {target} (booking made in {side})"));
    p.finish(actions, RecordChange::Create(Box::new(rec)))
}

fn plan_existing(mut p: Planner<'_, '_>, rec: &BookingRecord, obs: &Observation) -> Plan {
    let side = obs.side;
    if p.stale(rec, obs) {
        return p.nothing(NothingReason::Stale, side);
    }
    let changed_here = Some(&p.as_held(obs).fingerprint()) != rec.fingerprint(side);
    let counterpart = obs
        .counterpart
        .as_deref()
        .filter(|c| c.side == side.other() && !p.stale(rec, c))
        .filter(|c| Some(&p.as_held(c).fingerprint()) != rec.fingerprint(c.side));
    let owed = side.other();
    if !changed_here && rec.status(owed) == SyncStatus::Failed {
        return redrive(p, rec, obs);
    }
    match (changed_here, counterpart) {
        (false, None) => {
            p.note(TimelineKind::Skipped, Some(side), "echo of ORB's own write or an unchanged booking");
            // Nothing changes but the side's watermark, so an older observation arriving later is stale, and
            // the event's version (change key), so ORB's next conditional write names the version it saw.
            let watermark = match side {
                Side::Topdesk => rec.topdesk.modification_date,
                Side::Exchange => rec.exchange.modified_at,
            };
            let newer = watermark.is_none_or(|m| m < obs.modified_at);
            let new_version = side == Side::Exchange
                && obs.ids.change_key.is_some()
                && obs.ids.change_key != rec.exchange.change_key;
            // The room's copy of a meeting ORB wrote in the organizer's calendar: its id is learned here,
            // from the copy's notification (the write's answer is the organizer's copy).
            let room_copy_id =
                side == Side::Exchange && obs.ids.event_id.is_some() && rec.exchange.room_event_id.is_none();
            let record = if newer || new_version || room_copy_id {
                let mut next = rec.clone();
                match side {
                    Side::Topdesk => next.topdesk.modification_date = Some(obs.modified_at),
                    Side::Exchange => {
                        next.exchange.modified_at =
                            Some(watermark.map_or(obs.modified_at, |m| m.max(obs.modified_at)));
                        if new_version {
                            next.exchange.change_key.clone_from(&obs.ids.change_key);
                        }
                        if room_copy_id {
                            next.exchange.room_event_id.clone_from(&obs.ids.event_id);
                        }
                    }
                }
                RecordChange::Update(Box::new(next))
            } else {
                RecordChange::Unchanged
            };
            p.finish(vec![Action::Nothing { reason: NothingReason::Echo }], record)
        }
        (true, None) => propagate(p, rec, obs, None),
        (false, Some(other)) => propagate(p, rec, other, None),
        (true, Some(other)) => conflict::conflict(p, rec, obs, other),
    }
}

/// Propagates `src` (the side that changed, or the winner of a conflict) to the other side. `target_now`
/// is the other side's current state when known (a conflict), else the record stands for it.
fn propagate(
    mut p: Planner<'_, '_>,
    rec: &BookingRecord,
    src: &Observation,
    target_now: Option<&Observation>,
) -> Plan {
    let ctx = p.ctx;
    let s = src.side;
    let t = s.other();
    let old = CanonicalFields::from_record(rec);
    let new = p.interpret(src, Some(rec));
    let target_old = target_now.map_or_else(|| old.clone(), |o| p.interpret(o, Some(rec)));
    let mut next = rec.clone();
    absorb_ids(&mut next, src);
    set_fingerprint(&mut next, s, &p.as_held(src));
    next.last_updated_at = ctx.now;
    next.last_updated_processor = Some(s);
    let mut actions = Vec::new();

    // Rule 6: cancelled or deleted on one side.
    if new.cancelled {
        if rec.cancelled && target_old.cancelled {
            set_status(&mut next, s, SyncStatus::Cancelled);
            p.note(TimelineKind::Skipped, Some(s), "already cancelled");
            return p.finish(
                vec![Action::Nothing { reason: NothingReason::AlreadyCancelled }],
                RecordChange::Update(Box::new(next)),
            );
        }
        if src.source == ObservationSource::Sweep
            && let Some(sweep) = ctx.sweep
            && !sweep.approved
            && ctx.policy.mass_deletion.trips(sweep.cancelling, sweep.future_bookings)
        {
            p.note(
                TimelineKind::Alert,
                Some(s),
                format!(
                    "mass-deletion guard: the sweep would cancel {} of {} future bookings; waiting for an admin",
                    sweep.cancelling, sweep.future_bookings
                ),
            );
            return p.finish(
                vec![
                    Action::MassDeletionAlert {
                        room: sweep.room,
                        cancelling: sweep.cancelling,
                        future_bookings: sweep.future_bookings,
                    },
                    Action::Nothing { reason: NothingReason::HeldByMassDeletionGuard },
                ],
                RecordChange::Unchanged,
            );
        }
        let held_t = p.project(&target_old, t);
        let (action, after) = p.cancel_on(t, &held_t, rec, false);
        if !target_old.cancelled {
            actions.push(action);
        }
        set_fingerprint(&mut next, t, &after);
        next.cancelled = true;
        set_status(&mut next, s, SyncStatus::Cancelled);
        set_status(&mut next, t, status_after(&after));
        if !rec.cancelled {
            next.complexity_index += 1;
        }
        p.note(TimelineKind::Decision, Some(t), format!("cancelled in {s}: cancel on {t}"));
        return p.finish(actions, RecordChange::Update(Box::new(next)));
    }

    // Rule 8: the room declined (an existing booking, e.g. after a time change).
    if s == Side::Exchange && src.room_response == RoomResponse::Declined {
        if rec.cancelled {
            return p.finish(
                vec![Action::Nothing { reason: NothingReason::AlreadyCancelled }],
                RecordChange::Update(Box::new(next)),
            );
        }
        let held_t = p.project(&target_old, t);
        let (action, after) = p.cancel_on(t, &held_t, rec, false);
        actions.push(action);
        set_fingerprint(&mut next, t, &after);
        next.cancelled = true;
        next.complexity_index += 1;
        set_status(&mut next, s, SyncStatus::Declined);
        set_status(&mut next, t, status_after(&after));
        p.note(TimelineKind::Decision, Some(t), "the room declined the meeting: cancel the reservation");
        p.mail(&mut actions, MailTemplate::RoomDeclined, &rec.organizer, rec.id);
        return p.finish(actions, RecordChange::Update(Box::new(next)));
    }

    // Rule 7: moved to a room ORB does not manage (or the room was removed).
    if !matches!(new.room, CanonicalRoom::Managed(_)) {
        if rec.cancelled {
            set_status(&mut next, s, SyncStatus::Synced); // alive, in a room ORB does not manage
            return p.finish(
                vec![Action::Nothing { reason: NothingReason::AlreadyCancelled }],
                RecordChange::Update(Box::new(next)),
            );
        }
        let held_t = p.project(&target_old, t);
        let (action, after) = p.cancel_on(t, &held_t, rec, true);
        actions.push(action);
        set_fingerprint(&mut next, t, &after);
        next.cancelled = true;
        next.complexity_index += 1;
        // The item on `s` lives on elsewhere: its status stays synced, which tells a later reopen that it
        // must not make a second one.
        set_status(&mut next, s, SyncStatus::Synced);
        set_status(&mut next, t, status_after(&after));
        p.note(
            TimelineKind::Decision,
            Some(t),
            format!("moved to a room ORB does not manage: cancel on {t}"),
        );
        p.mail(&mut actions, MailTemplate::MovedToUnmanagedRoom, &new.organizer, rec.id);
        return p.finish(actions, RecordChange::Update(Box::new(next)));
    }

    // Reopen: the booking is live again on `s` but cancelled on `t` (or in the record).
    if rec.cancelled || target_old.cancelled {
        // The meeting still exists without the room (remove-room cancellation, or a move to an unmanaged
        // room): give it the room back instead of making a second meeting.
        let roomless = CanonicalFields { room: CanonicalRoom::None, cancelled: false, ..target_old.clone() };
        let held_roomless = target_now.map_or_else(
            || {
                rec.exchange_status != SyncStatus::Cancelled
                    || rec.exchange_fingerprint.as_ref()
                        == Some(&p.project(&roomless, Side::Exchange).fingerprint())
            },
            |o| o.lifecycle == Lifecycle::Active && o.room == ObservedRoom::None,
        );
        if t == Side::Exchange && held_roomless {
            p.update_on(t, &roomless, &new, rec, &mut actions);
            apply_fields(&mut next, &new);
            next.cancelled = false;
            set_fingerprint(&mut next, t, &p.project(&new, t));
            set_status(&mut next, s, SyncStatus::Synced);
            set_status(&mut next, t, SyncStatus::Pending);
            next.complexity_index += 1;
            p.note(TimelineKind::Decision, Some(t), format!("live again in {s}: room added back on {t}"));
            return p.finish(actions, RecordChange::Update(Box::new(next)));
        }
        let reservation_alive = target_now
            .map_or(rec.topdesk_status != SyncStatus::Cancelled, |o| o.lifecycle == Lifecycle::Active);
        if t == Side::Topdesk && reservation_alive {
            // The reservation still exists in a room ORB does not manage: replace it.
            actions.push(Action::CancelReservation {
                booking: rec.id,
                reservation_id: rec.topdesk.reservation_id.clone(),
            });
        }
        apply_fields(&mut next, &new);
        next.cancelled = false;
        if t == Side::Topdesk {
            next.topdesk = crate::TopdeskLink::default();
        } else {
            next.exchange = crate::ExchangeLink::default();
        }
        if !p.create_on(t, &new, &next, &mut actions) {
            return p.nothing(NothingReason::NoRequester, t);
        }
        set_fingerprint(&mut next, t, &p.project(&new, t));
        set_status(&mut next, s, SyncStatus::Synced);
        set_status(&mut next, t, SyncStatus::Pending);
        next.complexity_index += 1;
        p.note(TimelineKind::Decision, Some(t), format!("live again in {s}: create on {t}"));
        return p.finish(actions, RecordChange::Update(Box::new(next)));
    }

    // Rules 4, 7 (managed room), 10, 11: propagate the changed fields.
    if new == old && new == target_old {
        // The observed side holds the booking as the record has it.
        set_status(&mut next, s, SyncStatus::Synced);
        p.note(TimelineKind::Skipped, Some(s), "only fields ORB does not sync changed");
        return p.finish(
            vec![Action::Nothing { reason: NothingReason::NoSyncedFieldChanged }],
            RecordChange::Update(Box::new(next)),
        );
    }
    p.update_on(t, &target_old, &new, rec, &mut actions);
    apply_fields(&mut next, &new);
    if src.booked_by.is_some() {
        next.booked_by = src.booked_by.clone().filter(|b| *b != new.organizer);
    }
    set_fingerprint(&mut next, t, &p.project(&new, t));
    set_status(&mut next, s, SyncStatus::Synced);
    if !actions.is_empty() {
        set_status(&mut next, t, SyncStatus::Pending);
    }
    if actions.iter().any(|a| matches!(a, Action::CreateReservation { .. })) {
        // A series occurrence moved to another room became a single reservation.
        next.topdesk = crate::TopdeskLink::default();
    }
    if new != old {
        next.complexity_index += 1;
    }
    let fields = old.changed_fields(&new).join(", ");
    if actions.is_empty() {
        p.note(TimelineKind::Decision, Some(s), format!("record updated ({fields}); {t} already holds it"));
    } else {
        p.note(TimelineKind::Decision, Some(t), format!("changed in {s} ({fields}): update {t}"));
    }
    p.finish(actions, RecordChange::Update(Box::new(next)))
}

/// Whether ORB ever wrote (or linked) the booking on `side`.
fn holds_item(rec: &BookingRecord, side: Side) -> bool {
    match side {
        Side::Exchange => rec.exchange.organizer_event_id.is_some() || rec.exchange.room_event_id.is_some(),
        Side::Topdesk => rec.topdesk.reservation_id.is_some(),
    }
}

/// A **re-drive**: the observed side `s` holds what the record intends (its observation is an echo), while
/// ORB's last write to the other side `t` failed (`t` is `Failed`). The record's fields are the intended
/// state, `t`'s fingerprint is what `t` still holds. With `t`'s current state as the observation's
/// `counterpart` (a sweep reads both sides), ORB writes to `t` what makes it match; when `t` already
/// matches, `t` is marked synced. When `t` never got the booking, it is created there. Without a
/// counterpart for an item `t` holds, ORB cannot tell what to change and waits for the sweep.
fn redrive(mut p: Planner<'_, '_>, rec: &BookingRecord, obs: &Observation) -> Plan {
    let s = obs.side;
    let t = s.other();
    let target_now = obs.counterpart.as_deref().filter(|c| c.side == t && !p.stale(rec, c));
    p.note(TimelineKind::Decision, Some(t), format!("{t} still owes ORB's last write: re-drive"));
    match target_now {
        Some(cp) => {
            let held = p.as_held(cp);
            let mut plan = propagate(p, rec, obs, Some(cp));
            if plan.writes().next().is_none()
                && let RecordChange::Update(next) = &mut plan.record
            {
                // `t` already holds what the record intends: it is in step again.
                absorb_ids(next, cp);
                set_fingerprint(next, t, &held);
                set_status(next, t, status_after(&held));
            }
            plan
        }
        None if !holds_item(rec, t) && !rec.cancelled => {
            let c = p.interpret(obs, Some(rec));
            let mut next = rec.clone();
            absorb_ids(&mut next, obs);
            let mut actions = Vec::new();
            if !p.create_on(t, &c, &next, &mut actions) {
                // Still no requester: the side stays failed with a growing back-off; nobody is mailed again.
                p.note(
                    TimelineKind::Skipped,
                    Some(t),
                    "organizer still unknown in TOPdesk, no fallback person",
                );
                next.record_failure(t, p.ctx.now);
                let nothing = vec![Action::Nothing { reason: NothingReason::NoRequester }];
                return p.finish(nothing, RecordChange::Update(Box::new(next)));
            }
            set_fingerprint(&mut next, t, &p.project(&c, t));
            set_status(&mut next, t, SyncStatus::Pending);
            p.finish(actions, RecordChange::Update(Box::new(next)))
        }
        None => {
            p.note(TimelineKind::Skipped, Some(t), "waiting for a sweep to read what it holds");
            p.finish(vec![Action::Nothing { reason: NothingReason::Echo }], RecordChange::Unchanged)
        }
    }
}

/// A write that failed, as [`plan_write_failure`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedWrite {
    /// The side that did not take the write.
    pub side: Side,
    /// What the write was to do there.
    pub kind: WriteKind,
    /// How it failed.
    pub failure: WriteFailure,
    /// The write was a re-drive of one that had already failed (a sweep found the sides apart): the
    /// organizer was told the first time and is not told again.
    pub redrive: bool,
}

/// The delay before retry `n` (0-based) of a failed write: 10 s, 20 s, 40 s, then every minute. Short on
/// purpose: a waiting retry holds its room's lane, and after [`MAX_RETRIES`] the sweep takes over.
pub fn retry_backoff(n: u32) -> Duration {
    Duration::seconds(10_i64 << n.min(6)).min(Duration::seconds(60))
}

/// Decides what happens after a write to a side failed (rule 9). The failure fields are set and the side
/// is `Failed`, so the record remembers what is owed (the sweep re-drives failed sides, see [`plan`]).
/// - **Transient** (throttled, 5xx, timeouts): retried after [`retry_backoff`] (or the side's
///   `Retry-After` when longer), at most [`MAX_RETRIES`] times; then left `Failed` for the sweep. Nobody is
///   mailed: nothing was refused.
/// - **Permanent** (the side refused, with its reason):
///   - a create: the organizer is mailed "could not be made", with the side's reason;
///   - a retime, a move or another change: the organizer is mailed that the change could not be carried
///     over and the room is still booked as before;
///   - a cancel is never answered with a mail asking for another room: it is retried like a transient
///     failure and then flagged for the operator (an alert in the timeline).
///
///   A re-drive ([`FailedWrite::redrive`]) that is refused again mails nobody.
pub fn plan_write_failure(record: &BookingRecord, failed: &FailedWrite, ctx: &PlanContext<'_>) -> Plan {
    let mut p = Planner { ctx, timeline: Vec::new() };
    let side = failed.side;
    let kind = failed.kind;
    let mut next = record.clone();
    next.record_failure(side, ctx.now);
    let mut actions = Vec::new();
    let retry = |p: &mut Planner<'_, '_>, next: &mut BookingRecord, actions: &mut Vec<Action>, why: &str| {
        let backoff = retry_backoff(record.retry_count);
        let after = match &failed.failure {
            WriteFailure::Transient { retry_after: Some(r) } => (*r).max(backoff),
            _ => backoff,
        };
        next.retry_count = record.retry_count + 1;
        p.note(
            TimelineKind::Failure,
            Some(side),
            format!("{why}; {} retry {} in {} s", kind.as_str(), next.retry_count, after.num_seconds()),
        );
        actions.push(Action::ScheduleRetry { booking: record.id, side, after });
    };
    let can_retry = record.retry_count < MAX_RETRIES;
    match (&failed.failure, kind) {
        (WriteFailure::Transient { .. }, _) if can_retry => {
            retry(&mut p, &mut next, &mut actions, "transient failure");
        }
        (WriteFailure::Transient { .. }, WriteKind::Cancel)
        | (WriteFailure::Permanent { .. }, WriteKind::Cancel)
            if !can_retry =>
        {
            next.retry_count = 0;
            p.note(
                TimelineKind::Alert,
                Some(side),
                format!(
                    "the cancellation still fails after {MAX_RETRIES} retries; an operator must look at it \
                     (the sweep keeps trying)"
                ),
            );
            actions.push(Action::Nothing { reason: NothingReason::GivenUp });
        }
        (WriteFailure::Transient { .. }, _) => {
            next.retry_count = 0;
            p.note(
                TimelineKind::Failure,
                Some(side),
                format!(
                    "still failing after {MAX_RETRIES} retries; left failed for the reconciliation sweep \
                     to re-drive"
                ),
            );
            actions.push(Action::Nothing { reason: NothingReason::GivenUp });
        }
        (WriteFailure::Gone { what }, _) => {
            next.retry_count = 0;
            p.note(
                TimelineKind::Failure,
                Some(side),
                format!(
                    "{side} no longer holds the booking ({what}); its deletion is carried over when observed"
                ),
            );
            actions.push(Action::Nothing { reason: NothingReason::GivenUp });
        }
        (WriteFailure::Permanent { reason }, WriteKind::Cancel) => {
            retry(&mut p, &mut next, &mut actions, &format!("{side} refused the cancellation: {reason}"));
        }
        (WriteFailure::Permanent { reason }, WriteKind::Create)
            if side == Side::Topdesk && ctx.policy.topdesk_refusal == TopdeskRefusal::ReleaseRoom =>
        {
            // TOPdesk decides room availability: Outlook is made to show the truth.
            next.retry_count = 0;
            let held = p.project(&CanonicalFields::from_record(record), Side::Exchange);
            let (release, after) = p.cancel_on(Side::Exchange, &held, record, true);
            actions.push(release);
            next.cancelled = true;
            set_fingerprint(&mut next, Side::Exchange, &after);
            set_status(&mut next, Side::Exchange, status_after(&after));
            set_status(&mut next, Side::Topdesk, SyncStatus::Cancelled);
            p.note(
                TimelineKind::Decision,
                Some(Side::Exchange),
                format!(
                    "TOPdesk refused the booking ({reason}); TOPdesk decides: the room is released in Outlook"
                ),
            );
            if !failed.redrive {
                p.mail_with(
                    &mut actions,
                    MailTemplate::RoomReleased,
                    &record.organizer,
                    record.id,
                    Some(reason.clone()),
                );
            }
        }
        (WriteFailure::Permanent { reason }, _) => {
            next.retry_count = 0;
            p.note(
                TimelineKind::Failure,
                Some(side),
                format!("{side} refused the {}: {reason}", kind.as_str()),
            );
            actions.push(Action::Nothing { reason: NothingReason::GivenUp });
            if !failed.redrive {
                let template = match kind {
                    WriteKind::Create => MailTemplate::BookingRefused,
                    _ => MailTemplate::ChangeNotCarriedOver,
                };
                p.mail_with(&mut actions, template, &record.organizer, record.id, Some(reason.clone()));
            }
        }
    }
    p.finish(actions, RecordChange::Update(Box::new(next)))
}
