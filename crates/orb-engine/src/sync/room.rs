//! **A room's calendar**: the room's copy of a meeting, the organizer's copy (which is the meeting), and
//! the observation of one booking as the room's calendar shows it ([`observe_in_room`]).

use std::sync::Arc;

use crate::exchange::ExchangeError;
use chrono::{DateTime, Utc};
use orb_core::{
    BookingRecord, CorrelationId, EmailAddress, Lifecycle, Observation, ObservationSource, RemoteIds, Side,
};
use orb_graph::model::Event;
use orb_store::{BookingKey, StoreError};

use super::cache::{InstanceWindow, JobCache, locked};
use crate::observe::{self, ObserveContext, ObserveError, SeriesKey, scrubbed, series_id_for};
use crate::runtime::{SyncDeps, SyncError, TenantRuntime};

pub(super) fn no_person(_: &orb_topdesk::PersonId) -> Option<EmailAddress> {
    None
}

// The observe context is not `Send`: it is built and dropped inside these synchronous helpers.

fn observe_event(
    tenant: &TenantRuntime,
    mailbox: &EmailAddress,
    event: &Event,
) -> Result<Observation, ObserveError> {
    let series = |k: &SeriesKey<'_>| Some(series_id_for(tenant.tenant_id, k));
    let octx = ObserveContext::new(&tenant.rooms, tenant.link_type, &series, ObservationSource::Notification)
        .with_persons(&no_person)
        .with_mailbox(mailbox);
    match observe::from_graph_event(event, &octx) {
        Err(ObserveError::SeveralRooms { .. }) if tenant.rooms.is_room_address(mailbox) => {
            observe::from_graph_event_for_room(event, mailbox, &octx)
        }
        Err(ObserveError::SeveralRooms { rooms }) => match rooms.first() {
            Some(first) => observe::from_graph_event_for_room(event, first, &octx),
            None => Err(ObserveError::SeveralRooms { rooms }),
        },
        other => other,
    }
}

/// [`observe_event`] for one room of the event.
fn observe_event_for_room(
    tenant: &TenantRuntime,
    mailbox: &EmailAddress,
    event: &Event,
    room: &EmailAddress,
) -> Result<Observation, ObserveError> {
    let series = |k: &SeriesKey<'_>| Some(series_id_for(tenant.tenant_id, k));
    let octx = ObserveContext::new(&tenant.rooms, tenant.link_type, &series, ObservationSource::Notification)
        .with_persons(&no_person)
        .with_mailbox(mailbox);
    observe::from_graph_event_for_room(event, room, &octx)
}

fn observe_deleted(
    tenant: &TenantRuntime,
    mailbox: &EmailAddress,
    event_id: Option<String>,
    record: &BookingRecord,
    now: DateTime<Utc>,
) -> Observation {
    let series = |k: &SeriesKey<'_>| Some(series_id_for(tenant.tenant_id, k));
    let octx = ObserveContext::new(&tenant.rooms, tenant.link_type, &series, ObservationSource::Notification)
        .with_mailbox(mailbox);
    let ids = RemoteIds { event_id, ..RemoteIds::default() };
    observe::deleted(Side::Exchange, ids, record, now, &octx)
}

// ---- a room's calendar: the room's copy, the organizer's copy, series ----

/// Whether `room` is still booked by `event` (a resource attendee or a location with its address).
fn books_room(event: &Event, room: &EmailAddress) -> bool {
    let same = |a: &str| EmailAddress::parse(a).is_ok_and(|a| a == *room);
    event
        .attendees
        .iter()
        .flatten()
        .filter(|a| a.kind == Some(orb_graph::model::AttendeeType::Resource))
        .filter_map(|a| a.address())
        .any(same)
        || event
            .location
            .iter()
            .chain(event.locations.iter().flatten())
            .filter_map(|l| l.location_email_address.as_deref())
            .any(same)
}

impl MeetingRef<'_> {
    /// The spans to search, most likely first.
    fn spans(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut spans = vec![self.span];
        spans.extend(self.record_span.filter(|r| *r != self.span));
        spans
    }
}

/// Which meeting to find in an organizer's calendar.
pub(super) struct MeetingRef<'a> {
    /// The meeting's (or occurrence's) `iCalUId`, the same in every calendar holding it.
    pub(super) ical_uid: &'a str,
    /// The organizer's copy's id, when the record knows it.
    pub(super) known_id: Option<&'a str>,
    /// For an occurrence or exception: its series master's `iCalUId`.
    pub(super) master_ical_uid: Option<&'a str>,
    /// The occurrence's times as the room's copy or the record has them.
    pub(super) span: (DateTime<Utc>, DateTime<Utc>),
    /// Where the record holds the meeting, when that may differ from `span` (a room copy lagging behind).
    pub(super) record_span: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// The organizer's copy of a meeting (`None`: not in the organizer's calendar any more, or the organizer
/// has no mailbox ORB can read). Only that meeting is read, never the organizer's other events: by its id
/// when the record knows it, else by `$filter` on its `iCalUId` (an occurrence: its master by the series'
/// `iCalUId`, then the master's instances around the occurrence).
pub(super) async fn organizer_copy(
    tenant: &TenantRuntime,
    cache: &JobCache,
    organizer: &EmailAddress,
    meeting: &MeetingRef<'_>,
    corr: CorrelationId,
) -> Result<Option<Event>, SyncError> {
    if tenant.rooms.is_room_address(organizer) {
        return Ok(None);
    }
    let unreadable = |e: ExchangeError| -> Result<Option<Event>, SyncError> {
        if e.is_retryable() {
            return Err(e.into());
        }
        // Not a mailbox of this tenant (an external organizer), or not readable: the room's copy is all
        // ORB has.
        tracing::info!(error = %e, "the organizer's calendar cannot be read; using the room's copy");
        Ok(None)
    };
    if let Some(id) = meeting.known_id {
        match tenant.exchange.get_event(organizer, id, corr).await {
            Ok(e) if e.ical_uid.as_deref() == Some(meeting.ical_uid) => return Ok(Some(e)),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return unreadable(e),
        }
    }
    match meeting.master_ical_uid {
        None => {
            match find_meeting(tenant, cache, organizer, meeting.ical_uid, &meeting.spans(), corr).await {
                Ok(found) => Ok(found),
                Err(e) => unreadable(e),
            }
        }
        Some(master) => {
            match organizer_instances(tenant, cache, organizer, master, meeting.span, corr).await {
                Ok(events) => {
                    Ok(events.iter().find(|e| e.ical_uid.as_deref() == Some(meeting.ical_uid)).cloned())
                }
                Err(e) => unreadable(e),
            }
        }
    }
}

/// The single event or series master `ical_uid` in `mailbox`, read once per job.
async fn find_meeting(
    tenant: &TenantRuntime,
    cache: &JobCache,
    mailbox: &EmailAddress,
    ical_uid: &str,
    around: &[(DateTime<Utc>, DateTime<Utc>)],
    corr: CorrelationId,
) -> Result<Option<Event>, ExchangeError> {
    let key = (mailbox.clone(), ical_uid.to_owned());
    if let Some(found) = locked(&cache.meetings).get(&key) {
        return Ok(found.clone());
    }
    let found = tenant.exchange.find_by_ical_uid(mailbox, ical_uid, around, corr).await?;
    locked(&cache.meetings).insert(key, found.clone());
    Ok(found)
}

/// The instances of the series `master_ical_uid` in `mailbox` around `[from, to)` (a day either side, so
/// an occurrence moved a little is still found); one read per series and window per job.
pub(super) async fn organizer_instances(
    tenant: &TenantRuntime,
    cache: &JobCache,
    mailbox: &EmailAddress,
    master_ical_uid: &str,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    corr: CorrelationId,
) -> Result<Arc<Vec<Event>>, ExchangeError> {
    let Some(master_id) =
        find_meeting(tenant, cache, mailbox, master_ical_uid, &[(from, to)], corr).await?.and_then(|m| m.id)
    else {
        return Ok(Arc::new(Vec::new()));
    };
    let from = from - chrono::Duration::days(1);
    let to = to + chrono::Duration::days(1);
    let cached = locked(&cache.instances)
        .iter()
        .find(|w| w.mailbox == *mailbox && w.master_id == master_id && w.from <= from && w.to >= to)
        .map(|w| w.events.clone());
    if let Some(events) = cached {
        return Ok(events);
    }
    let events = match tenant.exchange.instances(mailbox, &master_id, from, to, corr).await {
        Ok(events) => Arc::new(events),
        Err(e) if e.is_not_found() => Arc::new(Vec::new()),
        Err(e) => return Err(e),
    };
    locked(&cache.instances).push(InstanceWindow {
        mailbox: mailbox.clone(),
        master_id,
        from,
        to,
        events: events.clone(),
    });
    Ok(events)
}

/// The `iCalUId` of the series master of an occurrence ORB knows as `series` (its series row, else the
/// room's master read by id), once per job.
pub(super) async fn master_ical_uid(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    cache: &JobCache,
    room: &EmailAddress,
    series: orb_core::SeriesId,
    room_master_id: Option<&str>,
    corr: CorrelationId,
) -> Result<Option<String>, SyncError> {
    if let Some(known) = locked(&cache.masters).get(&series) {
        return Ok(known.clone());
    }
    let mut ical = match deps.store.get_series(tenant.tenant_id, series).await {
        Ok(row) => row.ical_uid,
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if ical.is_none()
        && let Some(id) = room_master_id
    {
        ical = match tenant.exchange.get_event(room, id, corr).await {
            Ok(master) => master.ical_uid,
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
    }
    locked(&cache.masters).insert(series, ical.clone());
    Ok(ical)
}

/// Whether a live room copy can stand for the meeting without the organizer's copy: its subject is not
/// Exchange's rewrite, or the policy keeps no subject. A room mailbox with `DeleteSubject` leaves the copy's
/// subject empty, with `AddOrganizerToSubject` puts the organizer's name first (alone when the subject was
/// deleted): such a copy cannot tell the meeting's subject, nor whether it changed, so the organizer's copy
/// is read (`orb check` names such rooms). A meeting whose own subject starts with its organizer's name
/// costs that read too, never a wrong subject.
pub(super) fn room_copy_answers(policy: &orb_core::SubjectPolicy, room_copy: &Event) -> bool {
    if matches!(policy, orb_core::SubjectPolicy::Drop) {
        return true;
    }
    let subject = room_copy.subject.as_deref().unwrap_or_default().trim();
    if subject.is_empty() {
        return false;
    }
    let name = room_copy
        .organizer
        .as_ref()
        .and_then(|o| o.email_address.as_ref())
        .and_then(|a| a.name.as_deref())
        .map(str::trim)
        .unwrap_or_default();
    name.is_empty() || !subject.to_lowercase().starts_with(&name.to_lowercase())
}

/// Whether the room's copy `room_obs` can stand for the meeting without a read of the organizer's copy.
/// `answers`: the copy is live, accepted and shows the meeting's own subject ([`room_copy_answers`]).
///
/// - A meeting ORB does not know in its organizer's calendar (a person's, never written by ORB): when the
///   copy answers. A cancelled or removed copy is read further (cancelled, moved or declined?).
/// - A meeting ORB writes in its organizer's calendar: only when the copy shows what the record holds —
///   ORB's own write coming back, whose version ORB read back after the write —, or is cancelled where the
///   record is (ORB's own cancel). A copy showing anything else is a person's change: the organizer's copy
///   is read for the version it made, which ORB's next conditional write names.
fn room_copy_stands(record: Option<&BookingRecord>, room_obs: &Observation, answers: bool) -> bool {
    match record.filter(|r| r.exchange.organizer_event_id.is_some()) {
        None => answers,
        Some(record) => shows_record(room_obs, record, answers),
    }
}

/// The record of a room copy's meeting, if ORB has one (by the copy's id, else its `iCalUId`).
async fn record_of_copy(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    room_obs: &Observation,
) -> Result<Option<BookingRecord>, SyncError> {
    let ids = &room_obs.ids;
    let keys = ids.event_id.as_deref().map(BookingKey::ExchangeEvent).into_iter().chain(
        ids.ical_uid.as_deref().map(|ical_uid| BookingKey::ICalUid {
            ical_uid,
            original_start: room_obs.series.map(|s| s.original_start),
        }),
    );
    for key in keys {
        if let Some(found) = deps.store.find_booking(tenant.tenant_id, &key).await? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Whether the room's copy shows exactly what the record holds (at the record's minute precision), or is
/// cancelled where the record is.
fn shows_record(room_obs: &Observation, record: &BookingRecord, answers: bool) -> bool {
    let cancelled = room_obs.lifecycle != Lifecycle::Active;
    if cancelled || record.cancelled {
        return cancelled && record.cancelled;
    }
    let minute = orb_core::canonical::to_minute;
    let people = |p: &[EmailAddress]| p.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    answers
        && minute(room_obs.start) == minute(record.start)
        && minute(room_obs.end) == minute(record.end)
        && room_obs.organizer == record.organizer
        && room_obs.subject == record.subject
        && people(&room_obs.participants) == people(&record.participants)
}

/// Whether [`observe_in_room`] reads the organizer's copy of a live meeting the room's copy answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OrganizerRead {
    /// Only when the room's copy cannot answer ([`room_copy_answers`]): a notification or a sweep.
    WhenNeeded,
    /// Always: the organizer's event's version is what is wanted (Graph refused ORB's conditional write
    /// with `412`, so the record's version is old).
    Always,
}

/// What the room's calendar holds of one booking.
pub(super) enum RoomCopy<'a> {
    /// The room's copy of a meeting (or the room's own event).
    Item(&'a Event),
    /// Gone from the room's calendar (deleted, or an occurrence no longer among the series' instances):
    /// what the record knows.
    Gone {
        /// The id the room's copy had, when the notification named it.
        event_id: Option<String>,
        /// The booking.
        record: &'a BookingRecord,
    },
}

/// One observation of a booking read from a room's calendar, and whether its subject is the room copy's
/// (rewritten by Exchange) rather than the meeting's.
pub(super) struct RoomObservation {
    /// The observation.
    pub(super) observation: Observation,
    /// Whether its subject is the room copy's (Exchange's rewrite).
    pub(super) room_copy_subject: bool,
}

/// Observes one booking in the room `mailbox`'s calendar.
///
/// The room's copy of a meeting someone else organizes is not the meeting: Exchange rewrites its subject
/// (`DeleteSubject`, `AddOrganizerToSubject`) and cancels or removes it when the room is taken off the
/// meeting, whether the meeting was cancelled, moved to another room, or declined by the room. So the
/// organizer's copy (same `iCalUId`) is read too, and it decides:
/// - it still books this room: the organizer's fields, the room copy's ids and the room's answer (the
///   room copy's when it is live; the organizer's copy's when the room's copy is gone, so a room that
///   declined a change is seen as declined, DESIGN rule 8);
/// - it books another room (mapped or not) or none: that is what the booking is now (rule 7: a move, or a
///   move to a room ORB does not manage);
/// - it is gone (or unreadable): the room's copy is all there is (a cancellation when it is cancelled or
///   gone).
pub(super) async fn observe_in_room(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    cache: &JobCache,
    mailbox: &EmailAddress,
    copy: RoomCopy<'_>,
    read: OrganizerRead,
    corr: CorrelationId,
) -> Result<RoomObservation, SyncError> {
    let now = deps.clock.now();
    let mut record_span = None;
    let (room_obs, ical, span, organizer, live, known_id, room_master_id, series) = match &copy {
        RoomCopy::Item(event) => {
            let room_obs = scrubbed(&tenant.policy, observe_event(tenant, mailbox, event)?);
            let organized_here =
                event.is_organizer == Some(true) || tenant.rooms.is_room_address(&room_obs.organizer);
            let Some(ical) = event.ical_uid.clone().filter(|_| !organized_here) else {
                return Ok(RoomObservation { observation: room_obs, room_copy_subject: false });
            };
            let live = room_obs.lifecycle == Lifecycle::Active
                && room_obs.room_response != orb_core::RoomResponse::Declined;
            let answers = room_copy_answers(&tenant.policy.subject, event);
            let cancelled = room_obs.lifecycle != Lifecycle::Active;
            let record = record_of_copy(deps, tenant, &room_obs).await?;
            if read == OrganizerRead::WhenNeeded
                && ((live && answers) || cancelled)
                && room_copy_stands(record.as_ref(), &room_obs, live && answers)
            {
                // The room's copy is the meeting (see `room_copy_stands`). Its change key is the room copy's
                // version, not the organizer's event's that ORB's writes name in `If-Match`, so it is not
                // taken over.
                let mut observation = room_obs;
                observation.ids.change_key = None;
                return Ok(RoomObservation { observation, room_copy_subject: false });
            }
            let span = (room_obs.start, room_obs.end);
            let organizer = room_obs.organizer.clone();
            let series = room_obs.series.map(|s| s.series_id);
            // The organizer's copy ORB knows (by id), and where the record holds the meeting: a room copy
            // may lag behind its organizer's move, and a protocol that finds by time must look there too.
            let known = record.as_ref().and_then(|r| r.exchange.organizer_event_id.clone());
            record_span = record.as_ref().map(|r| (r.start, r.end));
            (room_obs, ical, span, organizer, live, known, event.series_master_id.clone(), series)
        }
        RoomCopy::Gone { event_id, record } => {
            let mut room_obs =
                scrubbed(&tenant.policy, observe_deleted(tenant, mailbox, event_id.clone(), record, now));
            // What identifies the booking when the room's copy has no id any more (an occurrence).
            room_obs.ids.ical_uid.clone_from(&record.exchange.ical_uid);
            let Some(ical) = record.exchange.ical_uid.clone() else {
                return Ok(RoomObservation { observation: room_obs, room_copy_subject: false });
            };
            let span = (record.start, record.end);
            let organizer = record.organizer.clone();
            let known = record.exchange.organizer_event_id.clone();
            (room_obs, ical, span, organizer, false, known, None, record.series_id)
        }
    };
    let room_copy_subject = matches!(copy, RoomCopy::Item(_));
    let master_ical = match series {
        Some(series) => {
            master_ical_uid(deps, tenant, cache, mailbox, series, room_master_id.as_deref(), corr).await?
        }
        None => None,
    };
    let meeting = MeetingRef {
        ical_uid: &ical,
        known_id: known_id.as_deref(),
        master_ical_uid: master_ical.as_deref(),
        span,
        record_span,
    };
    let Some(org) = organizer_copy(tenant, cache, &organizer, &meeting, corr).await? else {
        return Ok(RoomObservation { observation: room_obs, room_copy_subject });
    };
    let still_here = books_room(&org, mailbox);
    let mut obs = if still_here {
        observe_event_for_room(tenant, &organizer, &org, mailbox)?
    } else {
        observe_event(tenant, &organizer, &org)?
    };
    obs = scrubbed(&tenant.policy, obs);
    if still_here {
        if live {
            obs.room_response = room_obs.room_response;
        } else if obs.room_response != orb_core::RoomResponse::Declined {
            // The room's copy is gone although the organizer still books the room (and the room did not
            // decline): the room's calendar decides.
            return Ok(RoomObservation { observation: room_obs, room_copy_subject: false });
        }
    }
    obs.source = room_obs.source;
    obs.ids = RemoteIds {
        event_id: room_obs.ids.event_id.clone().filter(|_| still_here),
        ical_uid: Some(ical),
        // The organizer's copy's version: ORB writes there (`If-Match`).
        change_key: obs.ids.change_key.take(),
        reservation_id: None,
        reservation_number: None,
    };
    obs.series = room_obs.series;
    obs.appointment_type = room_obs.appointment_type;
    obs.booked_by = None;
    obs.modified_at = obs.modified_at.max(room_obs.modified_at);
    Ok(RoomObservation { observation: obs, room_copy_subject: false })
}

#[cfg(test)]
mod tests {
    use orb_core::SubjectPolicy;
    use orb_graph::model::{EmailAddress as GraphAddress, Event, Recipient};

    use super::room_copy_answers;

    fn check(policy: &SubjectPolicy, subject: Option<&str>, organizer_name: Option<&str>, expected: bool) {
        let event = Event {
            subject: subject.map(str::to_owned),
            organizer: Some(Recipient {
                email_address: Some(GraphAddress {
                    address: Some("anna@contoso.com".to_owned()),
                    name: organizer_name.map(str::to_owned),
                }),
            }),
            ..Event::default()
        };
        assert_eq!(
            room_copy_answers(policy, &event),
            expected,
            "{policy:?}, subject {subject:?}, organizer {organizer_name:?}"
        );
    }

    #[test]
    fn a_room_copy_answers_unless_its_subject_may_be_exchanges_rewrite() {
        let keep = SubjectPolicy::Keep;
        let hide = SubjectPolicy::HideOnRoom { text: "Booked".to_owned() };
        // The meeting's own subject on the room's copy.
        check(&keep, Some("Quarterly planning"), Some("Anna Bakker"), true);
        check(&hide, Some("Quarterly planning"), Some("Anna Bakker"), true);
        // `DeleteSubject`: nothing left; with `AddOrganizerToSubject`: the name alone or first.
        check(&keep, None, Some("Anna Bakker"), false);
        check(&keep, Some("  "), Some("Anna Bakker"), false);
        check(&keep, Some("Anna Bakker"), Some("Anna Bakker"), false);
        check(&keep, Some("anna bakker Quarterly planning"), Some("Anna Bakker"), false);
        check(&hide, Some("Anna Bakker"), Some("Anna Bakker"), false);
        // No organizer name to compare with: a subject is taken as the meeting's.
        check(&keep, Some("Quarterly planning"), None, true);
        // Where subjects are dropped the copy always answers.
        check(&SubjectPolicy::Drop, None, Some("Anna Bakker"), true);
        check(&SubjectPolicy::Drop, Some("Anna Bakker"), Some("Anna Bakker"), true);
    }
}
