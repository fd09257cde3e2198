//! Calendars with Exchange meeting semantics.
//!
//! - An event created in a user's mailbox is a meeting organised by that user. Every room mailbox among
//!   its attendees gets its own copy (different id, same `iCalUId`) made by the room's calendar attendant,
//!   which accepts, or declines when the room is busy (unless `AllowConflicts`) or the meeting starts beyond
//!   the booking window. The organizer's copy records each room's answer in `attendees[].status`.
//! - Processing is synchronous inside the emulator, but the response to the organizer's own request is
//!   rendered *before* the rooms answer, as in Exchange: a `POST`/`PATCH` response shows the rooms'
//!   previous status; a later `GET` shows the answer.
//! - A series is one stored master; occurrences are computed (orb-core's expansion), exceptions and
//!   cancelled occurrences are kept on the master by original start. A room declines a series when any
//!   occurrence in its booking window conflicts (Exchange's default `MaximumConflictInstances` = 0).
//! - An occurrence can have its own attendees (another room for that occurrence only): the series' room
//!   then holds it as a cancelled occurrence, and a room invited to some occurrences only holds a copy of
//!   the series whose instances are just those exceptions (same per-occurrence `iCalUId` as the
//!   organizer's).
//! - Nothing is ever removed: deleted items stay as tombstones so calendarView delta can report `@removed`.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use orb_graph::model::{
    Attendee, DateTimeTimeZone, Event, EventType, FreeBusyStatus, Recipient, Removed, ResponseStatus,
    ResponseType, SingleValueExtendedProperty,
};
use serde::{Deserialize, Serialize};

use super::state::{ExceptionData, Inner, Mailbox, StoredEvent};

/// A failed calendar operation: HTTP status, Graph error code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalError {
    /// HTTP status.
    pub status: u16,
    /// Graph error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

impl CalError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    fn not_found() -> Self {
        Self::new(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "ErrorInvalidRequest", message)
    }
}

/// Which id format to render (`Prefer: IdType="ImmutableId"`). Both formats are accepted on input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdFormat {
    /// Regular REST ids.
    #[default]
    Rest,
    /// Immutable ids.
    Immutable,
}

const REST_PREFIX: &str = "AAMkAD";
const IMMUTABLE_PREFIX: &str = "AAkALg";
const OCC_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// How to render events for one request.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// `Prefer: outlook.timezone`; UTC when absent.
    pub tz: Option<String>,
    /// Id format.
    pub ids: IdFormat,
    /// Extended property ids to include (`$expand=singleValueExtendedProperties($filter=id eq '…')`);
    /// `Some(empty)` includes all.
    pub expand_props: Option<Vec<String>>,
}

impl View {
    fn id(&self, key: &str) -> String {
        let prefix = match self.ids {
            IdFormat::Rest => REST_PREFIX,
            IdFormat::Immutable => IMMUTABLE_PREFIX,
        };
        format!("{prefix}{key}")
    }

    fn dtz(&self, at: DateTime<Utc>) -> DateTimeTimeZone {
        match &self.tz {
            Some(zone) => {
                DateTimeTimeZone::in_zone(at, zone).unwrap_or_else(|_| DateTimeTimeZone::from_utc(at))
            }
            None => DateTimeTimeZone::from_utc(at),
        }
    }
}

/// An id as given in a URL: the stored key, and the original start for an occurrence id.
fn parse_id(id: &str) -> Option<(String, Option<DateTime<Utc>>)> {
    let key = id.strip_prefix(REST_PREFIX).or_else(|| id.strip_prefix(IMMUTABLE_PREFIX))?;
    match key.split_once('_') {
        None => Some((key.to_owned(), None)),
        Some((master, when)) => {
            let at = chrono::NaiveDateTime::parse_from_str(when, OCC_FORMAT).ok()?.and_utc();
            Some((master.to_owned(), Some(at)))
        }
    }
}

fn occurrence_key(key: &str, original_start: DateTime<Utc>) -> String {
    format!("{key}_{}", original_start.format(OCC_FORMAT))
}

/// One occurrence (or the single instance) of an item.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Identity within the series (= start for single items).
    pub original_start: DateTime<Utc>,
    /// Start.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
    /// Set for occurrences of a series.
    pub in_series: bool,
    /// Set for modified occurrences.
    pub exception: Option<ExceptionData>,
}

/// Occurrences of `ev` overlapping `[from, to)` (its single instance for a non-recurring item), without
/// cancelled occurrences, in start order.
pub fn instances(
    ev: &StoredEvent,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Instance>, CalError> {
    let Some(rec) = &ev.recurrence else {
        let single = Instance {
            original_start: ev.start,
            start: ev.start,
            end: ev.end,
            in_series: false,
            exception: None,
        };
        return Ok(if ev.start < to && ev.end > from { vec![single] } else { vec![] });
    };
    let core = rec.to_core().map_err(|e| CalError::invalid(e.to_string()))?;
    let tz =
        orb_core::zones::resolve_graph_zone(&ev.start_zone).map_err(|e| CalError::invalid(e.to_string()))?;
    let local = ev.start.with_timezone(&tz.tz()).time();
    let occurrences = if ev.exceptions_only {
        Vec::new()
    } else {
        orb_core::recurrence::expand(&core, local, ev.end - ev.start, &ev.start_zone, from, to)
            .map_err(|e| CalError::invalid(e.to_string()))?
    };
    let mut out: Vec<Instance> = occurrences
        .into_iter()
        .filter(|o| {
            !ev.cancelled.contains(&o.original_start) && !ev.exceptions.contains_key(&o.original_start)
        })
        .map(|o| Instance {
            original_start: o.original_start,
            start: o.start,
            end: o.end,
            in_series: true,
            exception: None,
        })
        .collect();
    for (orig, ex) in &ev.exceptions {
        if ex.start < to && ex.end > from && !ev.cancelled.contains(orig) {
            out.push(Instance {
                original_start: *orig,
                start: ex.start,
                end: ex.end,
                in_series: true,
                exception: Some(ex.clone()),
            });
        }
    }
    out.sort_by_key(|i| (i.start, i.original_start));
    Ok(out)
}

fn is_occurrence_of(ev: &StoredEvent, original_start: DateTime<Utc>) -> bool {
    if ev.exceptions.contains_key(&original_start) {
        return true;
    }
    if ev.exceptions_only {
        return false;
    }
    let Some(rec) = &ev.recurrence else { return false };
    let Ok(core) = rec.to_core() else { return false };
    let Ok(tz) = orb_core::zones::resolve_graph_zone(&ev.start_zone) else { return false };
    let local = ev.start.with_timezone(&tz.tz()).time();
    orb_core::recurrence::expand(
        &core,
        local,
        ev.end - ev.start,
        &ev.start_zone,
        original_start,
        original_start + Duration::seconds(1),
    )
    .is_ok_and(|occ| occ.iter().any(|o| o.original_start == original_start))
}

fn etag(seq: u64) -> (String, String) {
    let key = URL_SAFE_NO_PAD.encode(format!("CQAAABYAAAD{seq:010}"));
    (format!("W/\"{key}\""), key)
}

fn ext_props(ev: &StoredEvent, view: &View) -> Option<Vec<SingleValueExtendedProperty>> {
    let wanted = view.expand_props.as_ref()?;
    Some(
        ev.extended
            .iter()
            .filter(|p| wanted.is_empty() || wanted.iter().any(|w| w.eq_ignore_ascii_case(&p.id)))
            .cloned()
            .collect(),
    )
}

fn base(ev: &StoredEvent, view: &View) -> Event {
    let (etag, change_key) = etag(ev.seq);
    let location = ev.location.clone();
    Event {
        odata_etag: Some(etag),
        id: Some(view.id(&ev.key)),
        categories: Some(ev.categories.clone()),
        change_key: Some(change_key),
        created_date_time: Some(ev.created),
        last_modified_date_time: Some(ev.modified),
        allow_new_time_proposals: Some(true),
        attendees: Some(ev.attendees.clone()),
        // Graph returns an empty HTML body for an event without one.
        body: Some(ev.body.clone().unwrap_or_else(|| orb_graph::model::ItemBody {
            content_type: Some(orb_graph::model::BodyType::Html),
            content: Some(String::new()),
        })),
        body_preview: Some(ev.body.as_ref().and_then(|b| b.content.clone()).unwrap_or_default()),
        cancelled_occurrences: Some(vec![]),
        has_attachments: Some(false),
        hide_attendees: Some(false),
        ical_uid: Some(ev.ical_uid.clone()),
        importance: Some(orb_graph::model::Importance::Normal),
        is_all_day: Some(false),
        is_cancelled: Some(ev.is_cancelled),
        is_draft: Some(false),
        is_online_meeting: Some(false),
        is_organizer: Some(ev.is_organizer),
        is_reminder_on: Some(true),
        locations: Some(location.iter().cloned().collect()),
        location: Some(location.unwrap_or_default()),
        organizer: Some(ev.organizer.clone()),
        original_end_time_zone: Some(ev.end_zone.clone()),
        original_start_time_zone: Some(ev.start_zone.clone()),
        reminder_minutes_before_start: Some(15),
        response_requested: Some(true),
        response_status: Some(ResponseStatus { response: Some(ev.response), time: None }),
        sensitivity: Some(orb_graph::model::Sensitivity::Normal),
        show_as: Some(ev.show_as),
        subject: Some(ev.subject.clone().unwrap_or_default()),
        transaction_id: ev.transaction_id.clone(),
        web_link: Some(format!("https://outlook.office365.com/owa/?itemid={}", view.id(&ev.key))),
        single_value_extended_properties: ext_props(ev, view),
        start: Some(view.dtz(ev.start)),
        end: Some(view.dtz(ev.end)),
        kind: Some(EventType::SingleInstance),
        ..Event::default()
    }
}

/// Renders a single item or series master.
pub fn render(ev: &StoredEvent, view: &View) -> Event {
    let mut out = base(ev, view);
    if ev.recurrence.is_some() {
        out.kind = Some(EventType::SeriesMaster);
        out.recurrence = ev.recurrence.clone();
        out.cancelled_occurrences =
            Some(ev.cancelled.iter().map(|c| view.id(&occurrence_key(&ev.key, *c))).collect());
    }
    out
}

/// Renders one instance (an occurrence, an exception, or a single item as itself).
pub fn render_instance(ev: &StoredEvent, inst: &Instance, view: &View) -> Event {
    if !inst.in_series {
        return render(ev, view);
    }
    let mut out = base(ev, view);
    out.id = Some(view.id(&occurrence_key(&ev.key, inst.original_start)));
    out.series_master_id = Some(view.id(&ev.key));
    out.original_start = Some(inst.original_start);
    out.ical_uid = Some(format!("{}{}", ev.ical_uid, inst.original_start.format("%Y%m%d%H%M%S")));
    out.start = Some(view.dtz(inst.start));
    out.end = Some(view.dtz(inst.end));
    out.kind = Some(EventType::Occurrence);
    if let Some(ex) = &inst.exception {
        out.kind = Some(EventType::Exception);
        if let Some(subject) = &ex.subject {
            out.subject = Some(subject.clone());
        }
        if let Some(location) = &ex.location {
            out.location = Some(location.clone());
            out.locations = Some(vec![location.clone()]);
        }
        if let Some(attendees) = &ex.attendees {
            out.attendees = Some(attendees.clone());
        }
    }
    out
}

fn mailbox<'a>(inner: &'a Inner, mb: &str) -> Result<&'a Mailbox, CalError> {
    inner.mailboxes.get(mb).ok_or_else(|| {
        CalError::new(404, "ErrorInvalidUser", format!("The requested user '{mb}' is invalid."))
    })
}

/// Finds a live item by URL id: (key, original start if the id names an occurrence).
pub fn find(inner: &Inner, mb: &str, id: &str) -> Result<(String, Option<DateTime<Utc>>), CalError> {
    let (key, occ) =
        parse_id(id).ok_or_else(|| CalError::new(400, "ErrorInvalidIdMalformed", "Id is malformed."))?;
    let ev = mailbox(inner, mb)?.events.get(&key).filter(|e| !e.deleted).ok_or_else(CalError::not_found)?;
    if let Some(at) = occ
        && (ev.cancelled.contains(&at) || !is_occurrence_of(ev, at))
    {
        return Err(CalError::not_found());
    }
    Ok((key, occ))
}

/// Renders the item a URL id names.
pub fn get(inner: &Inner, mb: &str, id: &str, view: &View) -> Result<Event, CalError> {
    let (key, occ) = find(inner, mb, id)?;
    let ev = &mailbox(inner, mb)?.events[&key];
    Ok(match occ {
        None => render(ev, view),
        Some(at) => {
            let ex = ev.exceptions.get(&at).cloned();
            let (start, end) = match &ex {
                Some(e) => (e.start, e.end),
                None => (at, at + (ev.end - ev.start)),
            };
            render_instance(
                ev,
                &Instance { original_start: at, start, end, in_series: true, exception: ex },
                view,
            )
        }
    })
}

/// Start and end instants with the zones they were given in.
type Times = (DateTime<Utc>, DateTime<Utc>, String, String);

fn times(input: &Event) -> Result<Option<Times>, CalError> {
    match (&input.start, &input.end) {
        (None, None) => Ok(None),
        (Some(s), Some(e)) => {
            let start = s.to_utc().map_err(|err| CalError::invalid(err.to_string()))?;
            let end = e.to_utc().map_err(|err| CalError::invalid(err.to_string()))?;
            if end < start {
                return Err(CalError::invalid("The end of the event must not be before its start."));
            }
            let zone = |d: &DateTimeTimeZone| d.time_zone.clone().unwrap_or_else(|| "UTC".to_owned());
            Ok(Some((start, end, zone(s), zone(e))))
        }
        _ => Err(CalError::invalid("start and end must be given together.")),
    }
}

fn fresh_attendees(list: &[Attendee], previous: &[Attendee]) -> Vec<Attendee> {
    list.iter()
        .map(|a| {
            let kept = previous
                .iter()
                .find(|p| {
                    p.address().is_some()
                        && p.address().map(str::to_ascii_lowercase)
                            == a.address().map(str::to_ascii_lowercase)
                })
                .and_then(|p| p.status.clone());
            Attendee {
                status: Some(
                    kept.unwrap_or(ResponseStatus { response: Some(ResponseType::None), time: None }),
                ),
                proposed_new_time: None,
                ..a.clone()
            }
        })
        .collect()
}

/// Creates an item in `mb` as its owner organises it. Returns (key, whether it already existed by
/// `transactionId`). The rooms answer before this returns (see the module docs for what the caller shows).
pub fn create(
    inner: &mut Inner,
    mb: &str,
    input: &Event,
    now: DateTime<Utc>,
) -> Result<(String, bool), CalError> {
    let owner = mailbox(inner, mb)?;
    if let Some(tx) = &input.transaction_id
        && let Some(ev) =
            owner.events.values().find(|e| !e.deleted && e.transaction_id.as_deref() == Some(tx))
    {
        return Ok((ev.key.clone(), true));
    }
    let (start, end, start_zone, end_zone) =
        times(input)?.ok_or_else(|| CalError::invalid("An event needs a start and an end."))?;
    if let Some(rec) = &input.recurrence {
        rec.to_core().map_err(|e| CalError::invalid(e.to_string()))?;
    }
    let organizer = Recipient::new(&owner.address, Some(&owner.display_name));
    let n = inner.fresh_id();
    let key = format!("{n:012x}");
    let seq = inner.bump();
    let location =
        input.location.clone().or_else(|| input.locations.as_ref().and_then(|l| l.first().cloned()));
    let ev = StoredEvent {
        key: key.clone(),
        ical_uid: format!("040000008200E00074C5B7101A82E0080000000{n:016X}"),
        organizer,
        is_organizer: true,
        response: ResponseType::Organizer,
        subject: input.subject.clone(),
        body: input.body.clone(),
        start,
        end,
        start_zone,
        end_zone,
        location,
        attendees: fresh_attendees(input.attendees.as_deref().unwrap_or_default(), &[]),
        recurrence: input.recurrence.clone(),
        exceptions: BTreeMap::new(),
        cancelled: Default::default(),
        exceptions_only: false,
        is_cancelled: false,
        show_as: input.show_as.unwrap_or(FreeBusyStatus::Busy),
        transaction_id: input.transaction_id.clone(),
        extended: input.single_value_extended_properties.clone().unwrap_or_default(),
        categories: input.categories.clone().unwrap_or_default(),
        created: now,
        modified: now,
        seq,
        deleted: false,
    };
    inner.mailboxes.get_mut(mb).ok_or_else(CalError::not_found)?.events.insert(key.clone(), ev);
    Ok((key, false))
}

/// Applies a `PATCH` to the item (or occurrence) a URL id names.
pub fn update(
    inner: &mut Inner,
    mb: &str,
    id: &str,
    input: &Event,
    now: DateTime<Utc>,
) -> Result<String, CalError> {
    let (key, occ) = find(inner, mb, id)?;
    let new_times = times(input)?;
    if let Some(rec) = &input.recurrence {
        rec.to_core().map_err(|e| CalError::invalid(e.to_string()))?;
    }
    let seq = inner.bump();
    let ev =
        inner.mailboxes.get_mut(mb).and_then(|m| m.events.get_mut(&key)).ok_or_else(CalError::not_found)?;
    match occ {
        Some(at) => {
            let current = ev.exceptions.get(&at).cloned().unwrap_or(ExceptionData {
                start: at,
                end: at + (ev.end - ev.start),
                subject: None,
                location: None,
                attendees: None,
            });
            let previous = current.attendees.clone().unwrap_or_else(|| ev.attendees.clone());
            let (start, end) = new_times.map(|(s, e, _, _)| (s, e)).unwrap_or((current.start, current.end));
            ev.exceptions.insert(
                at,
                ExceptionData {
                    start,
                    end,
                    subject: input.subject.clone().or(current.subject),
                    location: input.location.clone().or(current.location),
                    attendees: input
                        .attendees
                        .as_ref()
                        .map(|a| fresh_attendees(a, &previous))
                        .or(current.attendees),
                },
            );
        }
        None => {
            if let Some((start, end, sz, ez)) = new_times {
                (ev.start, ev.end, ev.start_zone, ev.end_zone) = (start, end, sz, ez);
            }
            if let Some(subject) = &input.subject {
                ev.subject = Some(subject.clone());
            }
            if let Some(body) = &input.body {
                ev.body = Some(body.clone());
            }
            if let Some(location) = &input.location {
                ev.location = Some(location.clone());
            } else if let Some(locations) = &input.locations {
                ev.location = locations.first().cloned();
            }
            if let Some(attendees) = &input.attendees {
                ev.attendees = fresh_attendees(attendees, &ev.attendees);
            }
            if let Some(rec) = &input.recurrence {
                ev.recurrence = Some(rec.clone());
            }
            if let Some(show_as) = input.show_as {
                ev.show_as = show_as;
            }
            if let Some(categories) = &input.categories {
                ev.categories = categories.clone();
            }
            for prop in input.single_value_extended_properties.iter().flatten() {
                ev.extended.retain(|p| !p.id.eq_ignore_ascii_case(&prop.id));
                ev.extended.push(prop.clone());
            }
        }
    }
    ev.seq = seq;
    ev.modified = now;
    Ok(key)
}

/// The answer to a conditional write (`If-Match`): `Ok` when there is no condition, when it is `*`, or
/// when one of its entity tags names the item's current version (`@odata.etag`; weak and strong forms
/// compare equal, as Graph's etags are weak). Otherwise `412 Precondition Failed` with Graph's error body:
/// the item changed since the client read it. An item that is gone is `404` (as the write would be).
pub fn check_if_match(inner: &Inner, mb: &str, id: &str, if_match: Option<&str>) -> Result<(), CalError> {
    let Some(wanted) = if_match else { return Ok(()) };
    let current = get(inner, mb, id, &View::default())?;
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let now = current.odata_etag.as_deref().map(opaque);
    if wanted.split(',').any(|tag| tag.trim() == "*" || Some(opaque(tag)) == now) {
        return Ok(());
    }
    Err(CalError::new(
        412,
        "ErrorIrresolvableConflict",
        "The send or update operation could not be performed because the change key passed in the request \
         does not match the current change key for the item.",
    ))
}

/// Deletes (or, with `organizer_only`, cancels) the item or occurrence a URL id names.
pub fn remove(
    inner: &mut Inner,
    mb: &str,
    id: &str,
    organizer_only: bool,
    now: DateTime<Utc>,
) -> Result<String, CalError> {
    let (key, occ) = find(inner, mb, id)?;
    let seq = inner.bump();
    let ev =
        inner.mailboxes.get_mut(mb).and_then(|m| m.events.get_mut(&key)).ok_or_else(CalError::not_found)?;
    if organizer_only && !ev.is_organizer {
        return Err(CalError::invalid("You need to be an organizer to cancel a meeting."));
    }
    match occ {
        Some(at) => {
            ev.exceptions.remove(&at);
            ev.cancelled.insert(at);
        }
        None => ev.deleted = true,
    }
    ev.seq = seq;
    ev.modified = now;
    Ok(key)
}

fn overlaps(a: &[Instance], b: &[Instance]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.start < y.end && y.start < x.end))
}

/// Whether the room's calendar attendant accepts `ev` now.
fn room_accepts(room: &Mailbox, ev: &StoredEvent, now: DateTime<Utc>) -> bool {
    let Some(info) = &room.room else { return false };
    let window_end = now + Duration::days(i64::from(info.settings.booking_window_days));
    if ev.start >= window_end {
        return false;
    }
    if info.settings.allow_conflicts {
        return true;
    }
    let Ok(mine) = instances(ev, ev.start, window_end.max(ev.end)) else { return false };
    let (Some(first), Some(last)) = (mine.iter().map(|i| i.start).min(), mine.iter().map(|i| i.end).max())
    else {
        return true;
    };
    room.events
        .values()
        .filter(|o| {
            !o.deleted && !o.is_cancelled && o.ical_uid != ev.ical_uid && o.show_as != FreeBusyStatus::Free
        })
        .all(|o| instances(o, first, last).map(|theirs| !overlaps(&mine, &theirs)).unwrap_or(true))
}

fn organizer_name(ev: &StoredEvent) -> String {
    let email = ev.organizer.email_address.clone().unwrap_or_default();
    email.name.or(email.address).unwrap_or_default()
}

fn invites(attendees: &[Attendee], room: &str) -> bool {
    attendees.iter().filter_map(|a| a.address()).any(|a| a.eq_ignore_ascii_case(room))
}

/// The part of the organizer's item that concerns `room` (`None`: the room is not invited at all). For a
/// series, an occurrence with its own attendee list (another room for that occurrence) leaves the series'
/// room (a cancelled occurrence in its copy) and joins the other room's calendar; a room invited to some
/// occurrences only holds them as the exceptions of an otherwise empty series (as Exchange delivers a
/// single-occurrence invitation).
fn room_view(ev: &StoredEvent, room: &str) -> Option<StoredEvent> {
    let in_series = invites(&ev.attendees, room);
    if ev.recurrence.is_none() {
        return in_series.then(|| ev.clone());
    }
    let mut view = ev.clone();
    let mut any = in_series;
    for (orig, ex) in &ev.exceptions {
        if ex.attendees.as_deref().map_or(in_series, |a| invites(a, room)) {
            any = true;
        } else {
            view.exceptions.remove(orig);
            if in_series {
                view.cancelled.insert(*orig);
            }
        }
    }
    view.exceptions_only = !in_series;
    any.then_some(view)
}

/// Lets every room mailbox answer the organizer's item `key` in `mb` (after create, update, cancel or
/// delete): makes, updates or cancels the rooms' copies and records their answers on the organizer's copy.
pub fn process_meeting(inner: &mut Inner, mb: &str, key: &str, now: DateTime<Utc>) {
    let Some(owner) = inner.mailboxes.get(mb) else { return };
    let Some(ev) = owner.events.get(key).cloned() else { return };
    if !ev.is_organizer {
        return;
    }
    let tenant = owner.tenant.clone();
    let rooms: Vec<String> = inner
        .mailboxes
        .values()
        .filter(|m| m.room.is_some() && m.tenant == tenant && m.address != mb)
        .map(|m| m.address.clone())
        .collect();
    let live = !ev.deleted && !ev.is_cancelled;
    let mut answers: HashMap<String, ResponseType> = HashMap::new();
    let mut views: HashMap<String, StoredEvent> = HashMap::new();
    for room in &rooms {
        // A room that does not answer by itself (no `AutoAccept`) leaves the request to a delegate.
        let answers_itself = inner.mailboxes[room].room.as_ref().is_some_and(|r| r.settings.auto_accept);
        if let Some(view) = room_view(&ev, room).filter(|_| live && answers_itself) {
            let accepted = room_accepts(&inner.mailboxes[room], &view, now);
            answers
                .insert(room.clone(), if accepted { ResponseType::Accepted } else { ResponseType::Declined });
            views.insert(room.clone(), view);
        }
    }
    // Record the answers on the organizer's copy (a change of answer is a change of the item).
    let mut organizer_copy = ev.clone();
    let mut changed = false;
    let mut record = |attendees: &mut [Attendee]| {
        for attendee in attendees {
            let Some(addr) = attendee.address().map(str::to_ascii_lowercase) else { continue };
            if let Some(answer) = answers.get(&addr)
                && attendee.response() != Some(*answer)
            {
                attendee.status = Some(ResponseStatus { response: Some(*answer), time: Some(now) });
                changed = true;
            }
        }
    };
    record(&mut organizer_copy.attendees);
    for ex in organizer_copy.exceptions.values_mut() {
        if let Some(attendees) = &mut ex.attendees {
            record(attendees);
        }
    }
    if changed && !ev.deleted {
        let seq = inner.bump();
        organizer_copy.seq = seq;
        organizer_copy.modified = now;
        if let Some(m) = inner.mailboxes.get_mut(mb) {
            m.events.insert(key.to_owned(), organizer_copy.clone());
        }
    }
    for room in &rooms {
        let existing = inner.mailboxes[room]
            .events
            .values()
            .find(|e| !e.deleted && e.ical_uid == ev.ical_uid)
            .map(|e| e.key.clone());
        let answer = answers.get(room).copied();
        match (answer, existing) {
            (Some(ResponseType::Accepted), existing) => {
                // The room's part of the organizer's copy, with the answers recorded.
                let view = room_view(&organizer_copy, room).or_else(|| views.remove(room));
                if let Some(view) = view {
                    upsert_room_copy(inner, room, existing, &view, now);
                }
            }
            (Some(_), Some(k)) => tombstone(inner, room, &k, now),
            (None, Some(k)) => cancel_room_copy(inner, room, &k, now),
            _ => {}
        }
    }
}

fn upsert_room_copy(
    inner: &mut Inner,
    room: &str,
    existing: Option<String>,
    ev: &StoredEvent,
    now: DateTime<Utc>,
) {
    let Some(settings) = inner.mailboxes.get(room).and_then(|m| m.room.as_ref()).map(|r| r.settings.clone())
    else {
        return;
    };
    let key = match &existing {
        Some(k) => k.clone(),
        None => format!("{:012x}", inner.fresh_id()),
    };
    let previous = existing.as_ref().and_then(|k| inner.mailboxes[room].events.get(k)).cloned();
    let name = organizer_name(ev);
    let subject_of = |s: Option<&str>| Some(settings.room_subject(s, &name));
    let mut copy = StoredEvent {
        key: key.clone(),
        is_organizer: false,
        response: ResponseType::Accepted,
        subject: subject_of(ev.subject.as_deref()),
        body: None,
        transaction_id: None,
        extended: vec![],
        categories: vec![],
        exceptions: ev
            .exceptions
            .iter()
            .map(|(k, x)| {
                (
                    *k,
                    ExceptionData {
                        subject: x.subject.as_deref().and(subject_of(x.subject.as_deref())),
                        ..x.clone()
                    },
                )
            })
            .collect(),
        created: previous.as_ref().map_or(now, |p| p.created),
        modified: previous.as_ref().map_or(now, |p| p.modified),
        seq: previous.as_ref().map_or(0, |p| p.seq),
        ..ev.clone()
    };
    if previous.as_ref() == Some(&copy) {
        return;
    }
    copy.seq = inner.bump();
    copy.modified = now;
    if let Some(m) = inner.mailboxes.get_mut(room) {
        m.events.insert(key, copy);
    }
}

fn tombstone(inner: &mut Inner, mb: &str, key: &str, now: DateTime<Utc>) {
    let seq = inner.bump();
    if let Some(ev) = inner.mailboxes.get_mut(mb).and_then(|m| m.events.get_mut(key)) {
        ev.deleted = true;
        ev.seq = seq;
        ev.modified = now;
    }
}

fn cancel_room_copy(inner: &mut Inner, room: &str, key: &str, now: DateTime<Utc>) {
    let remove = inner
        .mailboxes
        .get(room)
        .and_then(|m| m.room.as_ref())
        .is_some_and(|r| r.settings.remove_canceled_meetings);
    if remove {
        return tombstone(inner, room, key, now);
    }
    let seq = inner.bump();
    if let Some(ev) = inner.mailboxes.get_mut(room).and_then(|m| m.events.get_mut(key))
        && !ev.is_cancelled
    {
        ev.is_cancelled = true;
        ev.subject = Some(format!("Canceled: {}", ev.subject.clone().unwrap_or_default()));
        ev.seq = seq;
        ev.modified = now;
    }
}

/// Live singles and series masters of a mailbox (what `GET /events` lists).
pub fn list(inner: &Inner, mb: &str, view: &View) -> Result<Vec<Event>, CalError> {
    Ok(mailbox(inner, mb)?.events.values().filter(|e| !e.deleted).map(|e| render(e, view)).collect())
}

/// Instances of live items overlapping `[from, to)` (what `GET /calendarView` lists), in start order.
pub fn calendar_view(
    inner: &Inner,
    mb: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    view: &View,
) -> Result<Vec<Event>, CalError> {
    let mut out = Vec::new();
    for ev in mailbox(inner, mb)?.events.values().filter(|e| !e.deleted) {
        for inst in instances(ev, from, to)? {
            out.push((inst.start, render_instance(ev, &inst, view)));
        }
    }
    out.sort_by_key(|a| a.0);
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

/// Occurrences and exceptions of the series `id` in `[from, to)`.
pub fn series_instances(
    inner: &Inner,
    mb: &str,
    id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    view: &View,
) -> Result<Vec<Event>, CalError> {
    let (key, occ) = find(inner, mb, id)?;
    let ev = &mailbox(inner, mb)?.events[&key];
    if occ.is_some() || ev.recurrence.is_none() {
        return Err(CalError::invalid("The event is not a series master."));
    }
    Ok(instances(ev, from, to)?.iter().map(|i| render_instance(ev, i, view)).collect())
}

/// A delta position: the mailbox, the fixed range, the changes already seen, and (within a round) the
/// round's upper bound and page offset. Sent to the client as an opaque token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaToken {
    /// Mailbox.
    pub mb: String,
    /// Range start.
    pub start: DateTime<Utc>,
    /// Range end.
    pub end: DateTime<Utc>,
    /// Changes up to this sequence number were delivered in earlier rounds.
    pub since: u64,
    /// The mailbox's delta generation when the token was made.
    pub generation: u64,
    /// This round's upper bound (skip tokens only).
    pub upto: Option<u64>,
    /// Items of this round already delivered (skip tokens only).
    pub skip: usize,
}

impl DeltaToken {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses the opaque form.
    pub fn decode(text: &str) -> Option<Self> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).ok()?).ok()
    }
}

/// The items of one delta round (changes in `(since, upto]`), in a stable order.
pub fn delta_items(
    inner: &Inner,
    token: &DeltaToken,
    upto: u64,
    view: &View,
) -> Result<Vec<Event>, CalError> {
    let m = mailbox(inner, &token.mb)?;
    let initial = token.since == 0;
    let removed = |id: String| Event {
        odata_type: Some("#microsoft.graph.event".to_owned()),
        id: Some(id),
        removed: Some(Removed { reason: "deleted".to_owned() }),
        ..Event::default()
    };
    let mut out = Vec::new();
    for ev in m.events.values().filter(|e| e.seq > token.since && e.seq <= upto) {
        if ev.deleted {
            if !initial {
                let gone = instances(ev, token.start, token.end)?;
                if gone.is_empty() || ev.recurrence.is_none() {
                    out.push(removed(view.id(&ev.key)));
                }
                for inst in gone.iter().filter(|i| i.in_series) {
                    out.push(removed(view.id(&occurrence_key(&ev.key, inst.original_start))));
                }
            }
            continue;
        }
        let current = instances(ev, token.start, token.end)?;
        if !initial && current.is_empty() && ev.recurrence.is_none() {
            out.push(removed(view.id(&ev.key)));
        }
        for inst in &current {
            let mut item = render_instance(ev, inst, view);
            item.odata_type = Some("#microsoft.graph.event".to_owned());
            out.push(item);
        }
        if !initial {
            for at in ev.cancelled.iter().filter(|at| **at >= token.start && **at < token.end) {
                out.push(removed(view.id(&occurrence_key(&ev.key, *at))));
            }
        }
    }
    Ok(out)
}
