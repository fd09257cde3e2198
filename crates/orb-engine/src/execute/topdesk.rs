//! TOPdesk writes: create (by external link), PATCH, reschedule, move room, cancel.

use orb_core::{Action, BookingId, BookingRecord, EmailAddress, Requester, Side};
use orb_topdesk::wire::{
    CreateReservationDto, EditParticipantsDto, Lookup, ReservationDto, UpdateReservationDto,
};
use orb_topdesk::{ExternalLink, PersonId, ReservationId};

use super::{Done, ExecContext, ExecError, ReservationIds};

const SIDE: Side = Side::Topdesk;

pub(super) async fn write(
    action: &Action,
    record: &BookingRecord,
    before: Option<&BookingRecord>,
    ctx: &ExecContext<'_>,
) -> Result<Done, ExecError> {
    let td = ctx.topdesk;
    match action {
        Action::CreateReservation {
            booking,
            location,
            start,
            end,
            requester,
            participants,
            brief_description,
            series: _,
        } => {
            let action = "creating a reservation";
            let mut dto =
                CreateReservationDto::new(person(requester_id(requester), action)?, location, *start, *end);
            dto.brief_description.clone_from(brief_description);
            dto.notes = notes(requester);
            let persons = person_ids(participants, requester.email(), ctx).await?;
            if !persons.is_empty() {
                dto.participants = Some(EditParticipantsDto {
                    persons: Some(persons.iter().map(Lookup::id).collect()),
                    visitors: None,
                });
            }
            let link = link(*booking, ctx)?;
            // A booking that had a reservation before may own a cancelled one under the same link.
            let ensured = if before.is_some_and(|b| b.topdesk.reservation_id.is_some()) {
                ensure_live(&dto, &link, ctx).await
            } else {
                td.ensure_reservation_looking(&dto, &link, Some(ctx.clock.now()), ctx.may_have_created).await
            }
            .map_err(ExecError::topdesk(action))?;
            Ok(Done::Reservation {
                ids: written_ids(&ensured.reservation, action, record, true, ctx)?,
                created: ensured.created,
            })
        }
        Action::UpdateReservation { booking, reservation_id, changes } => {
            let action = "updating a reservation";
            let id = resolve(*booking, reservation_id.as_deref(), record, ctx).await?;
            let mut latest = None;
            let mut dto = UpdateReservationDto::default();
            if let Some(requester) = &changes.requester {
                dto.requester = Some(Lookup::id(person(requester_id(requester), action)?));
                dto.notes = notes(requester);
            }
            if let Some(text) = &changes.brief_description {
                dto.brief_description = Some(text.clone().unwrap_or_default());
            }
            if dto != UpdateReservationDto::default() {
                latest =
                    Some(td.update_reservation(id, &dto, None).await.map_err(ExecError::topdesk(action))?);
            }
            if let Some(participants) = &changes.participants {
                let requester = changes.requester.as_ref().map(Requester::email).unwrap_or(&record.organizer);
                let wanted = person_ids(participants, requester, ctx).await?;
                latest = Some(set_participants(id, &wanted, ctx).await?);
            }
            let latest = match latest {
                Some(r) => r,
                None => td.get_reservation(id).await.map_err(ExecError::topdesk(action))?,
            };
            Ok(Done::Reservation { ids: written_ids(&latest, action, record, true, ctx)?, created: false })
        }
        Action::RescheduleReservation { booking, reservation_id, start, end } => {
            let action = "rescheduling a reservation";
            let id = resolve(*booking, reservation_id.as_deref(), record, ctx).await?;
            let r = td.reschedule_reservation(id, *start, *end).await.map_err(ExecError::topdesk(action))?;
            Ok(Done::Reservation { ids: written_ids(&r, action, record, true, ctx)?, created: false })
        }
        Action::MoveReservationRoom { booking, reservation_id, from, to } => {
            let action = "moving a reservation to another room";
            let id = resolve(*booking, reservation_id.as_deref(), record, ctx).await?;
            let r = match td.move_room(id, from, to).await {
                Ok(r) => r,
                Err(e @ orb_topdesk::TopdeskError::Rejected { .. }) => {
                    // A retried move: TOPdesk refuses to move a room the reservation no longer holds.
                    let current = td.get_reservation(id).await.map_err(ExecError::topdesk(action))?;
                    let rooms = current.location_ids();
                    if rooms.contains(to) && !rooms.contains(from) {
                        current
                    } else {
                        return Err(ExecError::topdesk(action)(e));
                    }
                }
                Err(e) => return Err(ExecError::topdesk(action)(e)),
            };
            Ok(Done::Reservation { ids: written_ids(&r, action, record, true, ctx)?, created: false })
        }
        Action::LinkReservation { booking, reservation_id } => {
            let action = "linking a reservation to its Outlook meeting";
            let id = resolve(*booking, reservation_id.as_deref(), record, ctx).await?;
            let link = link(*booking, ctx)?;
            let dto = UpdateReservationDto {
                external_link: Some(link.to_dto(Some(ctx.clock.now()))),
                ..UpdateReservationDto::default()
            };
            let occurrences = record.series_id.map(|_| orb_topdesk::Occurrences::Current);
            match td.update_reservation(id, &dto, occurrences).await {
                Ok(r) => {
                    Ok(Done::Reservation { ids: written_ids(&r, action, record, true, ctx)?, created: false })
                }
                Err(e @ orb_topdesk::TopdeskError::Rejected { .. }) => {
                    // TOPdesk takes one link: a retried link, or one someone else set, stays as it is.
                    tracing::info!(booking = %booking, error = %e, "reservation already carries an external link");
                    Ok(Done::Linked { already: true })
                }
                Err(e) => Err(ExecError::topdesk(action)(e)),
            }
        }
        Action::CancelReservation { booking, reservation_id } => {
            let action = "cancelling a reservation";
            let id = match resolve(*booking, reservation_id.as_deref(), record, ctx).await {
                Ok(id) => id,
                Err(e) if e.is_gone() => return Ok(Done::ReservationCancelled { ids: None, already: true }),
                Err(e) => return Err(e),
            };
            // Cancel first, no read before it: the client reads the reservation only when TOPdesk refuses,
            // to tell "cancelled already" (a rerun, a desk cancel) from a real refusal.
            let already = match td.cancel_reservation(id, ctx.cancel_reason).await {
                Ok(already) => already,
                Err(orb_topdesk::TopdeskError::NotFound { .. }) => {
                    return Ok(Done::ReservationCancelled { ids: None, already: true });
                }
                Err(e) => return Err(ExecError::topdesk(action)(e)),
            };
            // Not read back: the cancel's answer carries no reservation, and the poll's list shows the
            // cancelled reservation with everything an observation needs; the planner takes it as ORB's own
            // cancel coming back (an echo) and moves the watermark then.
            Ok(Done::ReservationCancelled { ids: None, already })
        }
        _ => unreachable_write(action),
    }
}

/// The booking's *live* reservation, created if there is none.
///
/// A booking can own a cancelled reservation and need a new one under the same match id: a booking that
/// is live again after a cancellation, or an occurrence of a series moved to another room (TOPdesk cannot
/// move an occurrence, so the planner cancels it and creates a single reservation). A cancelled or
/// rejected reservation carrying the link therefore does not count as "created already" (which
/// [`orb_topdesk::TopdeskClient::ensure_reservation`] alone would answer); the new one carries the same
/// link. Idempotent like `ensure_reservation`: a rerun finds the live one.
async fn ensure_live(
    dto: &CreateReservationDto,
    link: &ExternalLink,
    ctx: &ExecContext<'_>,
) -> Result<orb_topdesk::Ensured, orb_topdesk::TopdeskError> {
    let td = ctx.topdesk;
    let now = Some(ctx.clock.now());
    let fiql = orb_topdesk::Fiql::eq("externalLinks.type", link.kind().to_string())
        .and(orb_topdesk::Fiql::eq("externalLinks.id", link.id().to_owned()));
    let linked: Vec<ReservationDto> = match td.list_reservations(Some(&fiql), None, Some(50)).await {
        Ok(page) => page.reservations.into_iter().filter(|r| link.is_on(r)).collect(),
        // A server that refuses the field path: the client's own lookup (legacy filters) decides.
        Err(orb_topdesk::TopdeskError::Rejected { .. }) => {
            return td.ensure_reservation(dto, link, now).await;
        }
        Err(e) => return Err(e),
    };
    if let Some(live) = linked.iter().find(|r| r.status.is_some_and(|s| s.is_active())) {
        return Ok(orb_topdesk::Ensured { reservation: live.clone(), created: false });
    }
    if linked.is_empty() {
        return td.ensure_reservation(dto, link, now).await;
    }
    let mut create = dto.clone();
    create.external_link = Some(link.to_dto(now));
    let reservation = td.create_reservation(&create).await?;
    Ok(orb_topdesk::Ensured { reservation, created: true })
}

fn unreachable_write(action: &Action) -> Result<Done, ExecError> {
    Err(ExecError::Invalid {
        side: SIDE,
        action: "executing",
        reason: format!("{action:?} is not a TOPdesk write"),
    })
}

fn requester_id(r: &Requester) -> &str {
    match r {
        Requester::Person { person_id, .. } | Requester::Fallback { person_id, .. } => person_id,
    }
}

/// For the fallback person, who the reservation is really for (the organizer's e-mail, no subject).
fn notes(r: &Requester) -> Option<String> {
    match r {
        Requester::Person { .. } => None,
        Requester::Fallback { organizer, .. } => {
            Some(format!("Booked in Outlook by {organizer} (not a TOPdesk person)."))
        }
    }
}

fn person(id: &str, action: &'static str) -> Result<PersonId, ExecError> {
    id.parse().map_err(|e| ExecError::Invalid {
        side: SIDE,
        action,
        reason: format!("TOPdesk person id {id:?} is not a UUID: {e}"),
    })
}

fn link(booking: BookingId, ctx: &ExecContext<'_>) -> Result<ExternalLink, ExecError> {
    ExternalLink::new(booking.to_string(), ctx.link_type).map_err(ExecError::topdesk("linking a reservation"))
}

fn ids(r: &ReservationDto, action: &'static str) -> Result<ReservationIds, ExecError> {
    let id = r.id.ok_or_else(|| ExecError::Invalid {
        side: SIDE,
        action,
        reason: "TOPdesk answered without a reservation id".into(),
    })?;
    Ok(ReservationIds {
        reservation_id: id.to_string(),
        number: r.number.clone(),
        modification_date: r.modification_date.map(orb_core::stored_precision),
    })
}

/// The ids of `r` as TOPdesk answered a write, keeping its `modificationDate` (ORB's watermark) only when
/// the answer shows exactly what ORB wrote: live or not as intended, and — for a live one — the record's
/// times and room. TOPdesk answers with the reservation's *current* state, which may hold a person's change
/// made between ORB's read and ORB's write; taking that answer's date as the watermark would hide the
/// person's change from the poller and the sweep for good (a lost update). Without the date the next poll
/// reads the reservation again and the planner sees the change.
fn written_ids(
    r: &ReservationDto,
    action: &'static str,
    record: &BookingRecord,
    live: bool,
    ctx: &ExecContext<'_>,
) -> Result<ReservationIds, ExecError> {
    let mut ids = ids(r, action)?;
    let is_live = r.status.is_none_or(|s| s.is_active());
    let as_written = if live {
        let location = ctx.rooms.by_id(record.room_id).map(|m| &m.location);
        is_live
            && r.planned_start_date == Some(record.start)
            && r.planned_end_date == Some(record.end)
            && location.is_some_and(|l| r.location_ids().contains(l))
    } else {
        !is_live
    };
    if !as_written {
        tracing::info!(
            booking = %record.id,
            action,
            "TOPdesk's answer holds a change ORB did not write; its modificationDate is not taken as the watermark"
        );
        ids.modification_date = None;
    }
    Ok(ids)
}

/// The reservation's id: from the action, else the record, else by ORB's external link.
async fn resolve(
    booking: BookingId,
    known: Option<&str>,
    record: &BookingRecord,
    ctx: &ExecContext<'_>,
) -> Result<ReservationId, ExecError> {
    let action = "finding the reservation";
    if let Some(text) = known.or(record.topdesk.reservation_id.as_deref()) {
        return text.parse().map_err(|e| ExecError::Invalid {
            side: SIDE,
            action,
            reason: format!("reservation id {text:?} is not a UUID: {e}"),
        });
    }
    let found =
        ctx.topdesk.find_by_external_link(&link(booking, ctx)?).await.map_err(ExecError::topdesk(action))?;
    found.and_then(|r| r.id).ok_or_else(|| ExecError::Gone {
        side: SIDE,
        what: format!("a reservation linked to booking {booking}"),
    })
}

/// TOPdesk persons for attendees' e-mails (unknown addresses and the requester are left out).
async fn person_ids(
    emails: &[EmailAddress],
    requester: &EmailAddress,
    ctx: &ExecContext<'_>,
) -> Result<Vec<PersonId>, ExecError> {
    let mut out = Vec::new();
    for email in emails.iter().filter(|e| *e != requester) {
        let found = ctx
            .topdesk
            .find_persons_by_email(email.as_str())
            .await
            .map_err(ExecError::topdesk("looking up participants"))?;
        if let Some(id) = found.into_iter().find_map(|p| p.id)
            && !out.contains(&id)
        {
            out.push(id);
        }
    }
    Ok(out)
}

/// Makes the reservation's participating persons exactly `wanted`.
async fn set_participants(
    id: ReservationId,
    wanted: &[PersonId],
    ctx: &ExecContext<'_>,
) -> Result<ReservationDto, ExecError> {
    let action = "changing participants";
    let td = ctx.topdesk;
    let mut current = td.get_reservation(id).await.map_err(ExecError::topdesk(action))?;
    let have: Vec<PersonId> = current
        .participants
        .iter()
        .flat_map(|p| p.persons.iter().flatten())
        .filter_map(|p| p.id.map(PersonId))
        .collect();
    let add: Vec<PersonId> = wanted.iter().filter(|p| !have.contains(p)).copied().collect();
    let remove: Vec<PersonId> = have.iter().filter(|p| !wanted.contains(p)).copied().collect();
    if !add.is_empty() {
        current = td.add_participants(id, &add).await.map_err(ExecError::topdesk(action))?;
    }
    if !remove.is_empty() {
        current = td.remove_participants(id, &remove).await.map_err(ExecError::topdesk(action))?;
    }
    Ok(current)
}
