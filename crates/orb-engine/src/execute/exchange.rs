//! Exchange writes: create the meeting (organizer mode) or the room event (room-only mode), update it,
//! cancel it / remove the room / delete the room event.

use chrono::{DateTime, Utc};
use orb_core::{
    Action, BookingId, BookingRecord, EmailAddress, ExchangeCancel, ExchangeChanges, ExchangeTarget,
    RoomMailbox, Side, TimeZoneName,
};
use orb_graph::model::{Attendee, BodyType, DateTimeTimeZone, Event, ItemBody, Location};

use super::{Done, EventIds, ExecContext, ExecError};
use crate::exchange::Failure;

/// Sent to the attendees with a cancellation (no subject, no names).
const CANCEL_COMMENT: &str = "The room booking for this meeting was cancelled.";

pub(super) async fn write(
    action: &Action,
    record: &BookingRecord,
    before: Option<&BookingRecord>,
    ctx: &ExecContext<'_>,
) -> Result<Done, ExecError> {
    match action {
        Action::CreateExchangeEvent {
            booking,
            target,
            room,
            start,
            end,
            time_zone,
            organizer,
            participants,
            subject,
        } => {
            let (mailbox, in_room) = target_mailbox(target);
            let mut event = Event {
                subject: subject.clone(),
                start: Some(when(*start, time_zone)),
                end: Some(when(*end, time_zone)),
                location: Some(Location::room(&room_name(record, room), room.as_str())),
                ..Event::default()
            };
            if in_room {
                event.body = Some(ItemBody {
                    content_type: Some(BodyType::Text),
                    content: Some(format!("Reserved in TOPdesk for {organizer}.")),
                });
            } else {
                event.attendees = Some(attendees(participants, room));
            }
            let (written, created) = ensure_created(mailbox, *booking, &event, ctx).await?;
            // The organizer's copy read back: the room's answer is on it, and so is the version the answer
            // made (ORB's next conditional write names it). The room's copy comes with its notification.
            let written = if in_room { written } else { reread(mailbox, written, ctx).await };
            Ok(Done::Event {
                ids: event_ids(mailbox, in_room, &written, Some(room), Some((*start, *end))),
                created,
            })
        }
        Action::UpdateExchangeEvent { booking, target, event_id, changes } => {
            update(*booking, target, event_id.as_deref(), changes, record, before, ctx).await
        }
        Action::CancelExchangeEvent { booking, target, event_id, how } => {
            cancel(*booking, target, event_id.as_deref(), *how, record, before, ctx).await
        }
        other => Err(ExecError::Invalid {
            side: Side::Exchange,
            action: "executing",
            reason: format!("{other:?} is not an Exchange write"),
        }),
    }
}

fn target_mailbox(target: &ExchangeTarget) -> (&EmailAddress, bool) {
    match target {
        ExchangeTarget::Organizer { mailbox } => (mailbox, false),
        ExchangeTarget::RoomOnly { mailbox } => (mailbox.address(), true),
    }
}

/// An instant in the booking's zone, as the Windows name Graph accepts (UTC if the zone has none).
fn when(at: DateTime<Utc>, zone: &TimeZoneName) -> DateTimeTimeZone {
    orb_core::zones::windows_zone_for(zone)
        .ok()
        .and_then(|windows| DateTimeTimeZone::in_zone(at, windows).ok())
        .unwrap_or_else(|| DateTimeTimeZone::from_utc(at))
}

fn room_name(record: &BookingRecord, room: &RoomMailbox) -> String {
    record.location_text.clone().filter(|t| !t.trim().is_empty()).unwrap_or_else(|| room.as_str().to_owned())
}

fn attendees(people: &[EmailAddress], room: &RoomMailbox) -> Vec<Attendee> {
    people
        .iter()
        .map(|p| Attendee::required(p.as_str(), None))
        .chain([Attendee::resource(room.as_str(), None)])
        .collect()
}

fn record_room(record: &BookingRecord, ctx: &ExecContext<'_>) -> Result<RoomMailbox, ExecError> {
    ctx.rooms
        .by_id(record.room_id)
        .map(|m| m.mailbox.clone())
        .ok_or(ExecError::UnmappedRoom { room: record.room_id })
}

/// Finds ORB's earlier create by match id first; creates (with `transactionId`) only if there is none.
async fn ensure_created(
    mailbox: &EmailAddress,
    booking: BookingId,
    event: &Event,
    ctx: &ExecContext<'_>,
) -> Result<(Event, bool), ExecError> {
    let action = "creating a meeting";
    let match_id = booking.to_string();
    let corr = ctx.correlation;
    // (Graph also returns the first event to a create retried with the same `transactionId`.)
    if ctx.may_have_created
        && let Some(found) = ctx
            .exchange
            .find_by_match_id(mailbox, &match_id, corr)
            .await
            .map_err(ExecError::exchange(action))?
    {
        return Ok((found, false));
    }
    let created = ctx
        .exchange
        .create_event(mailbox, event, &match_id, corr)
        .await
        .map_err(ExecError::exchange(action))?;
    Ok((created, true))
}

/// The organizer's copy read back (the rooms' answers are on it after the write); best effort.
async fn reread(mailbox: &EmailAddress, written: Event, ctx: &ExecContext<'_>) -> Event {
    let Some(id) = written.id.as_deref() else { return written };
    match ctx.exchange.get_event(mailbox, id, ctx.correlation).await {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(error = %e, "could not read a written meeting back");
            written
        }
    }
}

/// The ids and version ORB learns from a write. `as_written`: the times a live write gave the booking
/// (`None` for a cancellation). The version (`changeKey`, `lastModifiedDateTime`) is taken only from an
/// answer that shows exactly what ORB wrote: a read after the write (the organizer's copy read back, the
/// room's copy) may already hold a person's change, and taking its version would hide that change from the
/// next notification (stale by the watermark) and let ORB's next conditional write overwrite it unseen (a
/// lost update). Without it the record keeps the older version: the next notification is processed and
/// ORB's next write is refused (`412`) and replanned.
fn event_ids(
    mailbox: &EmailAddress,
    in_room: bool,
    event: &Event,
    room: Option<&RoomMailbox>,
    as_written: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> EventIds {
    let shows = |e: &Event| {
        as_written.is_none_or(|(start, end)| {
            let at = |t: Option<&orb_graph::model::DateTimeTimeZone>| t.and_then(|t| t.to_utc().ok());
            e.is_cancelled != Some(true)
                && at(e.start.as_ref()).is_some_and(|s| s.timestamp() / 60 == start.timestamp() / 60)
                && at(e.end.as_ref()).is_some_and(|s| s.timestamp() / 60 == end.timestamp() / 60)
        })
    };
    if !shows(event) {
        tracing::info!(
            "Graph's answer holds a change ORB did not write; its version is not taken as the watermark"
        );
    }
    EventIds {
        mailbox: mailbox.clone(),
        in_room_calendar: in_room,
        event_id: event.id.clone().unwrap_or_default(),
        ical_uid: event.ical_uid.clone(),
        room_moved: false,
        change_key: event.change_key.clone().filter(|_| shows(event)),
        modified_at: event.last_modified_date_time.map(orb_core::stored_precision).filter(|_| shows(event)),
        room_response: if in_room { None } else { room.and_then(|r| event.attendee_response(r.as_str())) },
    }
}

/// The version of the booking's event ORB last saw, as `If-Match` names it: ORB's writes of an existing
/// event are conditional, so a change a person made since is not overwritten unseen (Graph answers `412`,
/// [`ExecError::Changed`], and the engine reads the event and plans again). `None` (unconditional) when
/// ORB never saw a version.
fn if_match(record: &BookingRecord) -> Option<&str> {
    record.exchange.change_key.as_deref()
}

/// The id of the booking's event in `mailbox`: the record's id for that calendar (or the action's), else
/// ORB's match property, else the meeting's iCalUId (`$filter`).
async fn locate(
    mailbox: &EmailAddress,
    in_room: bool,
    known: Option<&str>,
    record: &BookingRecord,
    before: Option<&BookingRecord>,
    ctx: &ExecContext<'_>,
) -> Result<String, ExecError> {
    let action = "finding the meeting";
    let link = &record.exchange;
    let candidate = if in_room {
        link.room_event_id.as_deref().or(known)
    } else {
        link.organizer_event_id.as_deref().or(known.filter(|k| Some(*k) != link.room_event_id.as_deref()))
    };
    if let Some(id) = candidate {
        return Ok(id.to_owned());
    }
    let corr = ctx.correlation;
    let by_match = ctx
        .exchange
        .find_by_match_id(mailbox, &record.id.to_string(), corr)
        .await
        .map_err(ExecError::exchange(action))?;
    if let Some(id) = by_match.and_then(|e| e.id) {
        return Ok(id);
    }
    if let Some(ical) = link.ical_uid.as_deref() {
        // Only this meeting is read (`$filter` on its iCalUId), never the mailbox's other events.
        // Where the meeting should be, where it was before this change, and (for a protocol that searches
        // by time) where the room's copy shows it now: the record already holds the new times of a move that
        // has not reached Exchange yet, also on every later try.
        let mut around = vec![(record.start, record.end)];
        if let Some(b) = before {
            around.push((b.start, b.end));
        }
        if ctx.exchange.finds_by_time()
            && !in_room
            && let Some(copy) = room_copy_span(record, before, ctx).await
        {
            around.push(copy);
        }
        let found = ctx
            .exchange
            .find_by_ical_uid(mailbox, ical, &around, corr)
            .await
            .map_err(ExecError::exchange(action))?;
        if let Some(id) = found.and_then(|e| e.id) {
            return Ok(id);
        }
    }
    Err(ExecError::Gone {
        side: Side::Exchange,
        what: format!("the meeting of booking {} in {mailbox}", record.id),
    })
}

/// Where the room's copy of the booking's meeting shows it now (best effort: `None` when unknown or
/// unreadable).
async fn room_copy_span(
    record: &BookingRecord,
    before: Option<&BookingRecord>,
    ctx: &ExecContext<'_>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let id = record.exchange.room_event_id.as_deref()?;
    let room_id = before.map_or(record.room_id, |b| b.room_id);
    let room = ctx.rooms.by_id(room_id)?.mailbox.clone();
    let copy = ctx.exchange.get_event(room.address(), id, ctx.correlation).await.ok()?;
    let at = |t: Option<&DateTimeTimeZone>| t.and_then(|t| t.to_utc().ok());
    Some((at(copy.start.as_ref())?, at(copy.end.as_ref())?))
}

async fn update(
    booking: BookingId,
    target: &ExchangeTarget,
    known: Option<&str>,
    changes: &ExchangeChanges,
    record: &BookingRecord,
    before: Option<&BookingRecord>,
    ctx: &ExecContext<'_>,
) -> Result<Done, ExecError> {
    let action = "updating a meeting";
    let (mailbox, in_room) = target_mailbox(target);
    if in_room && let Some(room) = &changes.room {
        return move_room_event(booking, room, known, changes, record, before, ctx).await;
    }
    let id = locate(mailbox, in_room, known, record, before, ctx).await?;
    let mut patch = Event::default();
    if let Some((start, end)) = changes.times {
        patch.start = Some(when(start, &record.time_zone));
        patch.end = Some(when(end, &record.time_zone));
    }
    if let Some(subject) = &changes.subject {
        patch.subject = Some(subject.clone().unwrap_or_default());
    }
    let room = match &changes.room {
        Some(room) => Some(room.clone()),
        None if in_room => None,
        None => Some(record_room(record, ctx)?),
    };
    if !in_room && (changes.room.is_some() || changes.participants.is_some()) {
        let room = room.as_ref().ok_or(ExecError::UnmappedRoom { room: record.room_id })?;
        patch.attendees =
            Some(attendees(changes.participants.as_deref().unwrap_or(&record.participants), room));
        if changes.room.is_some() {
            patch.location = Some(Location::room(room.as_str(), room.as_str()));
        }
    }
    let corr = ctx.correlation;
    let written = if patch == Event::default() {
        ctx.exchange.get_event(mailbox, &id, corr).await
    } else {
        ctx.exchange.update_event(mailbox, &id, &patch, if_match(record), corr).await
    }
    .map_err(ExecError::exchange(action))?;
    let written = if in_room { written } else { reread(mailbox, written, ctx).await };
    let ids = event_ids(mailbox, in_room, &written, room.as_ref(), Some((record.start, record.end)));
    Ok(Done::Event {
        ids: EventIds { room_moved: !in_room && changes.room.is_some(), ..ids },
        created: false,
    })
}

/// Room-only mode, other room: an event cannot change calendars, so it is made in the new room's calendar
/// (found again by match id on a rerun) and then deleted from the old room's.
async fn move_room_event(
    booking: BookingId,
    room: &RoomMailbox,
    known: Option<&str>,
    changes: &ExchangeChanges,
    record: &BookingRecord,
    before: Option<&BookingRecord>,
    ctx: &ExecContext<'_>,
) -> Result<Done, ExecError> {
    let action = "moving a room event to another room";
    let old_room =
        before.and_then(|b| ctx.rooms.by_id(b.room_id)).map(|m| m.mailbox.clone()).ok_or_else(|| {
            ExecError::Invalid {
                side: Side::Exchange,
                action,
                reason: "the previous record (with the old room) is needed to move a room-only event".into(),
            }
        })?;
    let corr = ctx.correlation;
    let old = match locate(old_room.address(), true, known, record, before, ctx).await {
        Ok(id) => match ctx.exchange.get_event(old_room.address(), &id, corr).await {
            Ok(e) => Some(e),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(ExecError::exchange(action)(e)),
        },
        Err(e) if e.is_gone() => None,
        Err(e) => return Err(e),
    };
    let (start, end) = changes.times.unwrap_or((record.start, record.end));
    let subject = match &changes.subject {
        Some(s) => s.clone(),
        None => old.as_ref().and_then(|o| o.subject.clone()),
    };
    let event = Event {
        subject,
        // ORB's own note, written again: the old event's body is never read.
        body: Some(ItemBody {
            content_type: Some(BodyType::Text),
            content: Some(format!("Reserved in TOPdesk for {}.", record.organizer)),
        }),
        start: Some(when(start, &record.time_zone)),
        end: Some(when(end, &record.time_zone)),
        location: Some(Location::room(room.as_str(), room.as_str())),
        ..Event::default()
    };
    let (written, created) = ensure_created(room.address(), booking, &event, ctx).await?;
    if let Some(old_id) = old.and_then(|o| o.id) {
        match ctx.exchange.delete_event(old_room.address(), &old_id, None, corr).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(ExecError::exchange(action)(e)),
        }
    }
    Ok(Done::Event { ids: event_ids(room.address(), true, &written, None, Some((start, end))), created })
}

async fn cancel(
    _booking: BookingId,
    target: &ExchangeTarget,
    known: Option<&str>,
    how: ExchangeCancel,
    record: &BookingRecord,
    before: Option<&BookingRecord>,
    ctx: &ExecContext<'_>,
) -> Result<Done, ExecError> {
    let (mailbox, in_room) = target_mailbox(target);
    let already = Done::EventCancelled { how, ids: None, already: true };
    let id = match locate(mailbox, in_room, known, record, before, ctx).await {
        Ok(id) => id,
        Err(e) if e.is_gone() => return Ok(already),
        Err(e) => return Err(e),
    };
    let exchange = ctx.exchange;
    let corr = ctx.correlation;
    let if_match = if_match(record);
    match how {
        ExchangeCancel::CancelMeeting => {
            let action = "cancelling a meeting";
            match exchange.cancel_event(mailbox, &id, Some(CANCEL_COMMENT), if_match, corr).await {
                Ok(()) => Ok(Done::EventCancelled { how, ids: None, already: false }),
                Err(e) if e.is_not_found() => Ok(already),
                Err(e) if matches!(e.failure(), Failure::Rejected { .. }) => {
                    match exchange.get_event(mailbox, &id, corr).await {
                        Err(e) if e.is_not_found() => Ok(already),
                        Ok(ev) if ev.is_cancelled == Some(true) => Ok(already),
                        _ => Err(ExecError::exchange(action)(e)),
                    }
                }
                Err(e) => Err(ExecError::exchange(action)(e)),
            }
        }
        ExchangeCancel::DeleteRoomEvent => match exchange.delete_event(mailbox, &id, if_match, corr).await {
            Ok(()) => Ok(Done::EventCancelled { how, ids: None, already: false }),
            Err(e) if e.is_not_found() => Ok(already),
            Err(e) => Err(ExecError::exchange("deleting a room event")(e)),
        },
        ExchangeCancel::RemoveRoom => {
            let action = "removing the room from a meeting";
            let current = match exchange.get_event(mailbox, &id, corr).await {
                Ok(ev) => ev,
                Err(e) if e.is_not_found() => return Ok(already),
                Err(e) => return Err(ExecError::exchange(action)(e)),
            };
            let is_room = |address: Option<&str>| {
                address
                    .and_then(|a| EmailAddress::parse(a).ok())
                    .is_some_and(|a| ctx.rooms.is_room_address(&a))
            };
            let all = current.attendees.clone().unwrap_or_default();
            let kept: Vec<Attendee> = all.iter().filter(|a| !is_room(a.address())).cloned().collect();
            let room_location =
                current.location.as_ref().is_some_and(|l| is_room(l.location_email_address.as_deref()));
            if current.is_cancelled == Some(true) || (kept.len() == all.len() && !room_location) {
                let ids = event_ids(mailbox, in_room, &current, None, None);
                return Ok(Done::EventCancelled { how, ids: Some(ids), already: true });
            }
            let patch = Event {
                attendees: Some(kept),
                location: room_location
                    .then(|| Location { display_name: Some(String::new()), ..Location::default() }),
                ..Event::default()
            };
            let written = exchange
                .update_event(mailbox, &id, &patch, if_match, corr)
                .await
                .map_err(ExecError::exchange(action))?;
            let ids = event_ids(mailbox, in_room, &written, None, None);
            Ok(Done::EventCancelled { how, ids: Some(ids), already: false })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn event(start: &str, end: &str, change_key: &str, modified: &str) -> Event {
        let dt = |t: &str| DateTimeTimeZone { date_time: t.to_owned(), time_zone: Some("UTC".into()) };
        Event {
            id: Some("AAMk1".into()),
            start: Some(dt(start)),
            end: Some(dt(end)),
            change_key: Some(change_key.into()),
            last_modified_date_time: Some(at(modified)),
            ..Event::default()
        }
    }

    /// The lost-update rule on the Exchange side, as `written_ids` on the TOPdesk side.
    #[test]
    fn a_version_is_learned_only_from_an_answer_that_shows_what_orb_wrote() {
        let anna = EmailAddress::parse("anna@contoso.com").unwrap();
        let wrote = Some((at("2026-09-02T09:00:00Z"), at("2026-09-02T10:00:00Z")));
        let as_written =
            event("2026-09-02T09:00:00", "2026-09-02T10:00:00", "ck-orb", "2026-09-01T06:00:00Z");
        let ids = event_ids(&anna, false, &as_written, None, wrote);
        assert_eq!(ids.change_key.as_deref(), Some("ck-orb"));
        assert_eq!(ids.modified_at, Some(at("2026-09-01T06:00:00Z")));

        // Read back after a person moved the meeting: neither its version nor its time is taken.
        let moved = event("2026-09-02T11:00:00", "2026-09-02T12:00:00", "ck-person", "2026-09-01T06:00:05Z");
        let ids = event_ids(&anna, false, &moved, None, wrote);
        assert_eq!((ids.change_key, ids.modified_at), (None, None));

        // A cancelled answer never shows a live write; a cancellation takes the answer as it is.
        let mut cancelled = as_written.clone();
        cancelled.is_cancelled = Some(true);
        assert_eq!(event_ids(&anna, false, &cancelled, None, wrote).change_key, None);
        assert_eq!(event_ids(&anna, false, &cancelled, None, None).change_key.as_deref(), Some("ck-orb"));
    }
}
