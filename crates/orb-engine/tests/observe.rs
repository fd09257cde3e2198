//! Observations from Graph events and TOPdesk reservations: data-driven tables over wire-shaped JSON, the
//! body-never-read guarantee, deletions, and the round trip through the planner.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use orb_core::canonical::{CanonicalFields, CanonicalRoom};
use orb_core::{
    Action, BookingId, CorrelationId, EmailAddress, Lifecycle, NewIds, NothingReason, Observation,
    ObservationSource, ObservedRoom, PersonDirectory, PlanContext, Policy, RecordChange, RemoteIds, RoomId,
    RoomMailbox, RoomMap, RoomMapping, SeriesId, Side, TenantId, TimeZoneName, TopdeskLocationId, plan,
};
use orb_engine::observe::{
    self, ObserveContext, ObserveError, SeriesKey, from_graph_event, from_graph_event_for_room,
    from_topdesk_reservation,
};
use orb_graph::model::Event;
use orb_topdesk::PersonId;
use orb_topdesk::wire::ReservationDto;

const ROOM1: &str = "room1@contoso.com";
const ROOM2: &str = "room2@contoso.com";
const ROOM3_DISABLED: &str = "room3@contoso.com";
const LOC1: &str = "3fa85f64-5717-4562-b3fc-2c963f66af01";
const LOC2: &str = "3fa85f64-5717-4562-b3fc-2c963f66af02";
const LOC_UNMAPPED: &str = "3fa85f64-5717-4562-b3fc-2c963f66af99";
const R1_ID: &str = "0190f0e4-7d1c-7a3b-9a6f-000000000001";
const SERIES_G: &str = "0190f0e4-7d1c-7a3b-9a6f-00000000005a";
const SERIES_T: &str = "0190f0e4-7d1c-7a3b-9a6f-00000000005b";
const TD_SERIES: &str = "11111111-2222-4333-8444-555555555555";
const BOB_PERSON: &str = "aaaaaaaa-0000-4000-8000-00000000b0b0";
const ANNA_PERSON: &str = "aaaaaaaa-0000-4000-8000-0000000a0a0a";
const MATCH: &str = "0190f0e4-7d1c-7a3b-9a6f-0000000000aa";
const LINK_TYPE: i64 = 7;

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn rooms() -> RoomMap {
    let mapping = |id: &str, mailbox: &str, loc: &str, enabled: bool| RoomMapping {
        id: id.parse().unwrap(),
        mailbox: RoomMailbox::parse(mailbox).unwrap(),
        location: TopdeskLocationId::parse(loc).unwrap(),
        time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
        enabled,
        name: None,
    };
    RoomMap::new(vec![
        mapping(R1_ID, ROOM1, LOC1, true),
        mapping("0190f0e4-7d1c-7a3b-9a6f-000000000002", ROOM2, LOC2, true),
        mapping("0190f0e4-7d1c-7a3b-9a6f-000000000003", ROOM3_DISABLED, "loc-3", false),
    ])
}

fn series(key: &SeriesKey<'_>) -> Option<SeriesId> {
    match key {
        SeriesKey::GraphMaster { master_id: "AAMkMaster1", .. } => SERIES_G.parse().ok(),
        SeriesKey::TopdeskSeries(id) if id.to_string() == TD_SERIES => SERIES_T.parse().ok(),
        _ => None,
    }
}

fn persons(id: &PersonId) -> Option<EmailAddress> {
    match id.to_string().as_str() {
        BOB_PERSON => Some(addr("bob@contoso.com")),
        ANNA_PERSON => Some(addr("anna.bakker@contoso.com")),
        _ => None,
    }
}

/// Shallow merge; `null` removes a key.
fn merge(mut base: Value, overrides: Value) -> Value {
    let obj = base.as_object_mut().unwrap();
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    base
}

fn room_attendee(address: &str, response: &str) -> Value {
    json!({"emailAddress": {"address": address, "name": "Room"}, "type": "resource",
           "status": {"response": response, "time": "2026-08-01T10:00:00Z"}})
}

fn person_attendee(address: &str) -> Value {
    json!({"emailAddress": {"address": address, "name": "Bob Jansen"}, "type": "required",
           "status": {"response": "accepted", "time": "2026-08-01T10:00:00Z"}})
}

/// A meeting in Anna's calendar, room 1 invited and accepted, in Amsterdam's winter/summer zone.
fn graph_event(overrides: Value) -> Value {
    merge(
        json!({
            "@odata.etag": "W/\"ck1\"", "id": "AAMkOrg1", "changeKey": "ck1", "iCalUId": "uid-1",
            "type": "singleInstance", "isCancelled": false, "isOrganizer": true, "isDraft": false,
            "createdDateTime": "2026-07-30T08:00:00Z", "lastModifiedDateTime": "2026-08-01T10:00:00Z",
            "subject": "Project review", "importance": "normal", "sensitivity": "normal", "showAs": "busy",
            "start": {"dateTime": "2026-09-01T09:00:00.0000000", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-09-01T10:00:00.0000000", "timeZone": "W. Europe Standard Time"},
            "originalStartTimeZone": "W. Europe Standard Time", "originalEndTimeZone": "W. Europe Standard Time",
            "organizer": {"emailAddress": {"address": "Anna.Bakker@Contoso.com", "name": "Anna Bakker"}},
            "attendees": [person_attendee("bob@contoso.com"), room_attendee(ROOM1, "accepted")],
            "location": {"displayName": "Room 1", "locationEmailAddress": ROOM1, "locationType": "conferenceRoom"},
            "locations": [{"displayName": "Room 1", "locationEmailAddress": ROOM1, "locationType": "conferenceRoom"}],
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"}
        }),
        overrides,
    )
}

fn topdesk_reservation(overrides: Value) -> Value {
    merge(
        json!({
            "id": "6b0f0c52-1d7e-4a7b-8f0e-1a2b3c4d5e6f", "number": "R 2609 0001", "status": "planned",
            "archived": false, "briefDescription": "Project review", "notes": "Bring the budget sheet",
            "requester": {"id": ANNA_PERSON, "name": "Anna Bakker", "email": "Anna.Bakker@contoso.com",
                          "branch": {"id": "bbbbbbbb-0000-4000-8000-000000000001", "name": "HQ"}},
            "participants": {"persons": [{"id": BOB_PERSON, "number": "P-7", "name": "Bob Jansen"}]},
            "numberOfPersons": 2,
            "plannedStartDate": "2026-09-01T07:00:00.000Z", "plannedEndDate": "2026-09-01T08:00:00.000Z",
            "reservedFacilities": [{
                "id": "cccccccc-0000-4000-8000-000000000001",
                "plannedStartDate": "2026-09-01T07:00:00.000Z", "plannedEndDate": "2026-09-01T08:00:00.000Z",
                "location": {"id": LOC1, "name": "Room 1", "roomNumber": "1.01"}
            }],
            "modificationDate": "2026-08-01T10:05:00.000Z"
        }),
        overrides,
    )
}

fn series_name(id: SeriesId) -> &'static str {
    match id.to_string().as_str() {
        SERIES_G => "G",
        SERIES_T => "T",
        _ => "?",
    }
}

fn short(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%MZ").to_string()
}

/// A one-line summary of everything an observation says (ids and unsynced are checked separately).
fn summary(o: &Observation) -> String {
    let room = match &o.room {
        ObservedRoom::Mailbox(a) => format!("mailbox:{a}"),
        ObservedRoom::Location(l) => format!("location:{l}"),
        ObservedRoom::None => "none".to_owned(),
    };
    let people: Vec<&str> = o.participants.iter().map(EmailAddress::as_str).collect();
    format!(
        "{room} {:?} org={} by={} parts=[{}] subj={} {}..{} tz={} {} series={} match={} {:?} mod={}",
        o.room_response,
        o.organizer,
        o.booked_by.as_ref().map_or("-", EmailAddress::as_str),
        people.join(","),
        o.subject.as_deref().unwrap_or("-"),
        short(o.start),
        short(o.end),
        o.time_zone.as_ref().map_or("-", TimeZoneName::as_str),
        o.appointment_type.as_str(),
        o.series.map_or("-".to_owned(), |s| format!(
            "{}@{}",
            series_name(s.series_id),
            short(s.original_start)
        )),
        o.orb_match_id.map_or("-".to_owned(), |m| m.to_string()),
        o.lifecycle,
        short(o.modified_at),
    )
}

fn check_result(name: &str, got: Result<Observation, ObserveError>, expected: &str) {
    match (got, expected.strip_prefix("error: ")) {
        (Ok(o), None) => assert_eq!(summary(&o), expected, "case {name}"),
        (Err(e), Some(fragment)) => {
            assert!(!e.is_retryable(), "case {name}");
            let msg = e.to_string();
            assert!(msg.contains(fragment), "case {name}: {msg:?} should contain {fragment:?}");
        }
        (Ok(o), Some(_)) => panic!("case {name}: expected an error, got {}", summary(&o)),
        (Err(e), None) => panic!("case {name}: expected {expected:?}, got error {e}"),
    }
}

fn check_graph(name: &str, mailbox: &str, event: Value, expected: &str) {
    let event: Event = serde_json::from_value(event).unwrap_or_else(|e| panic!("case {name}: {e}"));
    let rooms = rooms();
    let mailbox = addr(mailbox);
    let ctx = ObserveContext::new(&rooms, LINK_TYPE, &series, ObservationSource::Notification)
        .with_mailbox(&mailbox);
    check_result(name, from_graph_event(&event, &ctx), expected);
}

fn check_topdesk(name: &str, reservation: Value, expected: &str) {
    let r: ReservationDto =
        serde_json::from_value(reservation).unwrap_or_else(|e| panic!("case {name}: {e}"));
    let rooms = rooms();
    let ctx = ObserveContext::new(&rooms, LINK_TYPE, &series, ObservationSource::Poll).with_persons(&persons);
    check_result(name, from_topdesk_reservation(&r, &ctx), expected);
}

const ANNA: &str = "anna.bakker@contoso.com";

#[test]
fn graph_events_become_observations() {
    let base_tail = "org=anna.bakker@contoso.com by=- parts=[bob@contoso.com] subj=Project review \
                     2026-09-01T07:00Z..2026-09-01T08:00Z tz=Europe/Berlin single series=- match=- Active \
                     mod=2026-08-01T10:00Z";
    let cases: Vec<(&str, &str, Value, String)> = vec![
        ("room accepted", ANNA, graph_event(json!({})), format!("mailbox:{ROOM1} Accepted {base_tail}")),
        (
            "room declined",
            ANNA,
            graph_event(
                json!({"attendees": [person_attendee("bob@contoso.com"), room_attendee(ROOM1, "declined")]}),
            ),
            format!("mailbox:{ROOM1} Declined {base_tail}"),
        ),
        (
            "room not answered yet",
            ANNA,
            graph_event(
                json!({"attendees": [person_attendee("bob@contoso.com"), room_attendee(ROOM1, "none")]}),
            ),
            format!("mailbox:{ROOM1} NotResponded {base_tail}"),
        ),
        (
            "room tentative",
            ANNA,
            graph_event(json!({"attendees": [person_attendee("bob@contoso.com"),
                                             room_attendee(ROOM1, "tentativelyAccepted")]})),
            format!("mailbox:{ROOM1} Tentative {base_tail}"),
        ),
        (
            "room only as location: never invited",
            ANNA,
            graph_event(json!({"attendees": [person_attendee("bob@contoso.com")]})),
            format!("mailbox:{ROOM1} NotResponded {base_tail}"),
        ),
        (
            "the room's own copy: the room is the mailbox, accepted",
            ROOM1,
            graph_event(json!({"id": "AAMkRoom1", "isOrganizer": false, "location": null, "locations": null,
                "attendees": [person_attendee("bob@contoso.com"), room_attendee(ROOM1, "none")],
                "responseStatus": {"response": "accepted", "time": "2026-08-01T10:00:00Z"}})),
            format!("mailbox:{ROOM1} Accepted {base_tail}"),
        ),
        (
            "an unmapped room is still the room",
            ANNA,
            graph_event(
                json!({"location": {"displayName": "Room X", "locationEmailAddress": "RoomX@contoso.com"},
                "locations": null,
                "attendees": [person_attendee("bob@contoso.com"), room_attendee("RoomX@contoso.com", "accepted")]}),
            ),
            format!("mailbox:roomx@contoso.com Accepted {base_tail}"),
        ),
        (
            "a mapped room wins over an unmapped one",
            ANNA,
            graph_event(json!({"attendees": [person_attendee("bob@contoso.com"),
                room_attendee("roomx@contoso.com", "accepted"), room_attendee(ROOM1, "declined")]})),
            format!("mailbox:{ROOM1} Declined {base_tail}"),
        ),
        (
            "a disabled room wins over an unknown resource",
            ANNA,
            graph_event(
                json!({"location": null, "locations": null, "attendees": [person_attendee("bob@contoso.com"),
                room_attendee("projector@contoso.com", "accepted"), room_attendee(ROOM3_DISABLED, "accepted")]}),
            ),
            format!("mailbox:{ROOM3_DISABLED} Accepted {base_tail}"),
        ),
        (
            "no room at all: the room was taken out",
            ANNA,
            graph_event(json!({"location": {"displayName": "Teams"}, "locations": null,
                               "attendees": [person_attendee("bob@contoso.com")]})),
            format!("none NotResponded {base_tail}"),
        ),
        (
            "two mapped rooms are two bookings",
            ANNA,
            graph_event(
                json!({"attendees": [room_attendee(ROOM1, "accepted"), room_attendee(ROOM2, "accepted")]}),
            ),
            format!("error: books 2 mapped rooms ({ROOM1}, {ROOM2})"),
        ),
        (
            "Pacific time across the spring DST change: 5 wall-clock hours are 4 real ones",
            ANNA,
            graph_event(json!({
                "start": {"dateTime": "2026-03-07T23:00:00.0000000", "timeZone": "Pacific Standard Time"},
                "end": {"dateTime": "2026-03-08T04:00:00.0000000", "timeZone": "Pacific Standard Time"},
                "originalStartTimeZone": "Pacific Standard Time"})),
            format!(
                "mailbox:{ROOM1} Accepted org={ANNA} by=- parts=[bob@contoso.com] subj=Project review \
                 2026-03-08T07:00Z..2026-03-08T11:00Z tz=America/Los_Angeles single series=- match=- Active \
                 mod=2026-08-01T10:00Z"
            ),
        ),
        (
            "rendered in UTC (Prefer outlook.timezone) keeps the zone it was made in",
            ANNA,
            graph_event(json!({
                "start": {"dateTime": "2026-09-01T07:00:00.0000000", "timeZone": "UTC"},
                "end": {"dateTime": "2026-09-01T08:00:00.0000000", "timeZone": "UTC"}})),
            format!("mailbox:{ROOM1} Accepted {base_tail}"),
        ),
        (
            "rendered in UTC without originalStartTimeZone: no zone claimed",
            ANNA,
            graph_event(json!({"originalStartTimeZone": null,
                "start": {"dateTime": "2026-09-01T07:00:00.0000000", "timeZone": "UTC"},
                "end": {"dateTime": "2026-09-01T08:00:00.0000000", "timeZone": "UTC"}})),
            format!("mailbox:{ROOM1} Accepted {}", base_tail.replace("tz=Europe/Berlin", "tz=-")),
        ),
        (
            "an unknown Windows zone is an error, never UTC",
            ANNA,
            graph_event(json!({"originalStartTimeZone": null,
                "start": {"dateTime": "2026-09-01T09:00:00.0000000", "timeZone": "Mars Standard Time"}})),
            "error: time zone ORB does not know; update the CLDR zone table or report the event: \
             unknown Windows time zone \"Mars Standard Time\""
                .to_owned(),
        ),
        (
            "an unknown original zone is an error too",
            ANNA,
            graph_event(json!({"originalStartTimeZone": "Atlantis Standard Time"})),
            "error: originalStartTimeZone is in a time zone ORB does not know".to_owned(),
        ),
        (
            "a custom zone marker is not a zone: the start's zone is used",
            ANNA,
            graph_event(json!({"originalStartTimeZone": "tzone://Microsoft/Custom"})),
            format!("mailbox:{ROOM1} Accepted {base_tail}"),
        ),
        (
            "an occurrence: series and original start",
            ANNA,
            graph_event(json!({"type": "occurrence", "seriesMasterId": "AAMkMaster1",
                               "originalStart": "2026-09-01T07:00:00Z"})),
            format!(
                "mailbox:{ROOM1} Accepted {}",
                base_tail.replace("single series=-", "occurrence series=G@2026-09-01T07:00Z")
            ),
        ),
        (
            "an occurrence without originalStart: its start is the pattern's",
            ANNA,
            graph_event(json!({"type": "occurrence", "seriesMasterId": "AAMkMaster1"})),
            format!(
                "mailbox:{ROOM1} Accepted {}",
                base_tail.replace("single series=-", "occurrence series=G@2026-09-01T07:00Z")
            ),
        ),
        (
            "an exception moved by an hour keeps its original start",
            ANNA,
            graph_event(json!({"type": "exception", "seriesMasterId": "AAMkMaster1",
                "originalStart": "2026-09-01T07:00:00Z",
                "start": {"dateTime": "2026-09-01T10:00:00.0000000", "timeZone": "W. Europe Standard Time"},
                "end": {"dateTime": "2026-09-01T11:00:00.0000000", "timeZone": "W. Europe Standard Time"}})),
            format!(
                "mailbox:{ROOM1} Accepted org={ANNA} by=- parts=[bob@contoso.com] subj=Project review \
                 2026-09-01T08:00Z..2026-09-01T09:00Z tz=Europe/Berlin exception series=G@2026-09-01T07:00Z \
                 match=- Active mod=2026-08-01T10:00Z"
            ),
        ),
        (
            "an exception without originalStart",
            ANNA,
            graph_event(json!({"type": "exception", "seriesMasterId": "AAMkMaster1"})),
            "error: has no originalStart".to_owned(),
        ),
        (
            "an occurrence of a series ORB does not know",
            ANNA,
            graph_event(json!({"type": "occurrence", "seriesMasterId": "AAMkOther"})),
            "error: series \"AAMkOther\", which ORB does not know".to_owned(),
        ),
        (
            "a series master is not a booking",
            ANNA,
            graph_event(json!({"type": "seriesMaster", "id": "AAMkMaster1"})),
            "error: \"AAMkMaster1\" is a series master, not a booking".to_owned(),
        ),
        (
            "a cancelled meeting",
            ANNA,
            graph_event(json!({"isCancelled": true, "subject": "Canceled: Project review"})),
            format!(
                "mailbox:{ROOM1} Accepted {}",
                base_tail
                    .replace("Active", "Cancelled")
                    .replace("subj=Project review", "subj=Canceled: Project review")
            ),
        ),
        (
            "a delta @removed item is not a full event",
            ANNA,
            json!({"@odata.type": "#microsoft.graph.event", "id": "AAMkGone", "@removed": {"reason": "deleted"}}),
            "error: \"AAMkGone\" was removed (deleted): observe it with observe::deleted".to_owned(),
        ),
        (
            "an event ORB made: the extended property carries the match id",
            ANNA,
            graph_event(json!({"singleValueExtendedProperties": [
                {"id": orb_graph::ORB_MATCH_PROPERTY_ID, "value": MATCH}]})),
            format!("mailbox:{ROOM1} Accepted {}", base_tail.replace("match=-", &format!("match={MATCH}"))),
        ),
        (
            "without the property, ORB's transactionId still tells",
            ANNA,
            graph_event(json!({"transactionId": MATCH})),
            format!("mailbox:{ROOM1} Accepted {}", base_tail.replace("match=-", &format!("match={MATCH}"))),
        ),
        (
            "someone else's transactionId is not a match id",
            ANNA,
            graph_event(json!({"transactionId": "outlook-web-1234"})),
            format!("mailbox:{ROOM1} Accepted {base_tail}"),
        ),
        (
            "ORB's property with a foreign value",
            ANNA,
            graph_event(json!({"singleValueExtendedProperties": [
                {"id": orb_graph::ORB_MATCH_PROPERTY_ID, "value": "R-1234"}]})),
            "error: carries ORB's extended property with \"R-1234\", which is not an ORB match id".to_owned(),
        ),
        (
            "a secretary's booking: made in her mailbox for her manager",
            "secretary@contoso.com",
            graph_event(json!({})),
            format!("mailbox:{ROOM1} Accepted {}", base_tail.replace("by=-", "by=secretary@contoso.com")),
        ),
        (
            "an attendee's copy is nobody's booking on behalf",
            "bob@contoso.com",
            graph_event(json!({"isOrganizer": false})),
            format!("mailbox:{ROOM1} Accepted {base_tail}"),
        ),
        (
            "attendees without an SMTP address are left out",
            ANNA,
            graph_event(
                json!({"attendees": [person_attendee("bob@contoso.com"), room_attendee(ROOM1, "accepted"),
                {"emailAddress": {"address": "/o=ExchangeLabs/ou=Exchange/cn=Recipients/cn=x", "name": "X"},
                 "type": "optional"},
                {"emailAddress": {"name": "No Address"}, "type": "required"}]}),
            ),
            format!("mailbox:{ROOM1} Accepted {base_tail}"),
        ),
        (
            "a malformed organizer",
            ANNA,
            graph_event(
                json!({"organizer": {"emailAddress": {"address": "anna at contoso", "name": "Anna"}}}),
            ),
            "error: organizer is not a usable e-mail address".to_owned(),
        ),
        ("no organizer", ANNA, graph_event(json!({"organizer": null})), "error: has no organizer".to_owned()),
        ("no start", ANNA, graph_event(json!({"start": null})), "error: has no start".to_owned()),
        (
            "no lastModifiedDateTime (rich notification $select)",
            ANNA,
            graph_event(json!({"lastModifiedDateTime": null})),
            "error: has no lastModifiedDateTime: select it".to_owned(),
        ),
    ];
    for (name, mailbox, event, expected) in cases {
        check_graph(name, mailbox, event, &expected);
    }
}

#[test]
fn graph_ids_and_unsynced_fields() {
    let rooms = rooms();
    let anna = addr(ANNA);
    let ctx = ObserveContext::new(&rooms, LINK_TYPE, &series, ObservationSource::Sweep).with_mailbox(&anna);
    let event: Event =
        serde_json::from_value(graph_event(json!({"importance": "high", "sensitivity": "private",
        "attendees": [person_attendee("bob@contoso.com"), room_attendee(ROOM1, "accepted"),
                      {"emailAddress": {"address": "not-smtp"}, "type": "required"}]})))
        .unwrap();
    let o = from_graph_event(&event, &ctx).unwrap();
    assert_eq!(o.side, Side::Exchange);
    assert_eq!(o.source, ObservationSource::Sweep);
    assert_eq!(
        o.ids,
        RemoteIds {
            event_id: Some("AAMkOrg1".into()),
            ical_uid: Some("uid-1".into()),
            change_key: Some("ck1".into()),
            ..RemoteIds::default()
        }
    );
    assert_eq!(o.location_text.as_deref(), Some("Room 1"));
    let unsynced: Vec<String> = o.unsynced.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        unsynced,
        [
            "calendar=organizer",
            "importance=high",
            "isDraft=false",
            "sensitivity=private",
            "showAs=busy",
            "unreadableAttendees=1"
        ]
    );
}

#[test]
fn the_body_is_never_read_or_kept() {
    const BODY: &str = "Door code 4711, salary review of Carol";
    const PREVIEW: &str = "Door code 4711";
    let rooms = rooms();
    let anna = addr(ANNA);
    let ctx =
        ObserveContext::new(&rooms, LINK_TYPE, &series, ObservationSource::Notification).with_mailbox(&anna);
    let event: Event = serde_json::from_value(graph_event(json!({
        "body": {"contentType": "html", "content": format!("<html><body>{BODY}</body></html>")},
        "bodyPreview": PREVIEW,
    })))
    .unwrap();
    let o = from_graph_event(&event, &ctx).unwrap();
    assert_eq!(o.subject.as_deref(), Some("Project review"), "the subject is passed on as-is");
    assert!(!o.unsynced.contains_key("hasBody"), "the body is not even looked at: {:?}", o.unsynced);
    let debug = format!("{o:?}");
    for secret in [BODY, PREVIEW, "4711", "Carol", "Anna Bakker", "Bob Jansen"] {
        assert!(!debug.contains(secret), "{secret:?} leaked into the observation: {debug}");
    }
    let stored = serde_json::to_string(&o).unwrap();
    assert!(!stored.contains("4711"), "{stored}");

    let reservation: ReservationDto = serde_json::from_value(topdesk_reservation(json!({}))).unwrap();
    let ctx = ctx.with_persons(&persons);
    let t = from_topdesk_reservation(&reservation, &ctx).unwrap();
    assert_eq!(t.unsynced.get("hasNotes").map(String::as_str), Some("true"));
    let debug = format!("{t:?}");
    for secret in ["Bring the budget sheet", "Anna Bakker", "Bob Jansen", "HQ"] {
        assert!(!debug.contains(secret), "{secret:?} leaked into the observation: {debug}");
    }
}

#[test]
fn an_event_with_two_rooms_is_observed_once_per_room() {
    let rooms = rooms();
    let anna = addr(ANNA);
    let ctx =
        ObserveContext::new(&rooms, LINK_TYPE, &series, ObservationSource::Notification).with_mailbox(&anna);
    let event: Event = serde_json::from_value(graph_event(json!({
        "attendees": [room_attendee(ROOM1, "accepted"), room_attendee(ROOM2, "declined")]})))
    .unwrap();
    let found = observe::graph_mapped_rooms(&event, &ctx);
    assert_eq!(found, vec![addr(ROOM1), addr(ROOM2)]);
    let answers: Vec<String> = found
        .iter()
        .map(|room| {
            let o = from_graph_event_for_room(&event, room, &ctx).unwrap();
            format!("{:?} {:?}", o.room, o.room_response)
        })
        .collect();
    assert_eq!(
        answers,
        [
            format!("Mailbox(EmailAddress({ROOM1:?})) Accepted"),
            format!("Mailbox(EmailAddress({ROOM2:?})) Declined")
        ]
    );
}

#[test]
fn topdesk_reservations_become_observations() {
    let tail = |status: &str| {
        format!(
            "location:{LOC1} Accepted org={ANNA} by=- parts=[bob@contoso.com] subj=Project review \
             2026-09-01T07:00Z..2026-09-01T08:00Z tz=Europe/Amsterdam single series=- match=- {status} \
             mod=2026-08-01T10:05Z"
        )
    };
    let cases: Vec<(&str, Value, String)> = vec![
        ("planned", topdesk_reservation(json!({})), tail("Active")),
        ("cancelled", topdesk_reservation(json!({"status": "cancelled"})), tail("Cancelled")),
        ("rejected request", topdesk_reservation(json!({"status": "rejectedRequest"})), tail("Cancelled")),
        (
            "conflicting planned is live",
            topdesk_reservation(json!({"status": "conflictingPlanned"})),
            tail("Active"),
        ),
        ("a request is live", topdesk_reservation(json!({"status": "request"})), tail("Active")),
        ("archived does not end it", topdesk_reservation(json!({"archived": true})), tail("Active")),
        (
            "ORB's external link carries the match id",
            topdesk_reservation(json!({"externalLinks": [
                {"id": "other-system-1", "type": "3", "date": "2026-08-01T10:00:00Z"},
                {"id": MATCH, "type": "7", "date": "2026-08-01T10:00:00Z"}]})),
            tail("Active").replace("match=-", &format!("match={MATCH}")),
        ),
        (
            "another integration's link is not ORB's",
            topdesk_reservation(json!({"externalLinks": [{"id": MATCH, "type": "3"}]})),
            tail("Active"),
        ),
        (
            "ORB's link type with a foreign id",
            topdesk_reservation(json!({"externalLinks": [{"id": "R-1234", "type": "7"}]})),
            "error: carries ORB's external link with \"R-1234\", which is not an ORB match id".to_owned(),
        ),
        (
            "a series occurrence",
            topdesk_reservation(json!({"series": {"id": TD_SERIES}})),
            tail("Active").replace("single series=-", "occurrence series=T@2026-09-01T07:00Z"),
        ),
        (
            "an occurrence of a series ORB does not know",
            topdesk_reservation(json!({"series": {"id": "99999999-2222-4333-8444-555555555555"}})),
            "error: series \"99999999-2222-4333-8444-555555555555\", which ORB does not know".to_owned(),
        ),
        (
            "an unmapped location: no zone, the planner says unmanaged",
            topdesk_reservation(
                json!({"reservedFacilities": [{"location": {"id": LOC_UNMAPPED, "name": "Shed"}}]}),
            ),
            tail("Active").replace(LOC1, LOC_UNMAPPED).replace("tz=Europe/Amsterdam", "tz=-"),
        ),
        (
            "made for someone else: that person is the organizer",
            topdesk_reservation(json!({"reservedForOther": {"id": "aaaaaaaa-0000-4000-8000-00000000c0c0",
                "name": "Carol", "email": "carol@contoso.com"}})),
            tail("Active").replace(&format!("org={ANNA} by=-"), &format!("org=carol@contoso.com by={ANNA}")),
        ),
        (
            "participants TOPdesk cannot name by e-mail are left out",
            topdesk_reservation(json!({"participants": {
                "persons": [{"id": BOB_PERSON}, {"id": "aaaaaaaa-0000-4000-8000-00000000dead"}],
                "visitors": [{"number": "V-1", "name": "Guest"}]}})),
            tail("Active"),
        ),
        (
            "only an asset: not a room booking",
            topdesk_reservation(
                json!({"reservedFacilities": [{"asset": {"id": "beamer-1", "name": "Beamer"}}]}),
            ),
            "error: reservation \"R 2609 0001\" reserves no room".to_owned(),
        ),
        (
            "a requester without e-mail",
            topdesk_reservation(json!({"requester": {"id": ANNA_PERSON, "name": "Anna Bakker"}})),
            "error: has no requester.email: give the requester's person card an e-mail address".to_owned(),
        ),
        (
            "a malformed requester e-mail",
            topdesk_reservation(json!({"requester": {"email": "anna.bakker"}})),
            "error: requester.email is not a usable e-mail address".to_owned(),
        ),
        (
            "no modificationDate in $fields",
            topdesk_reservation(json!({"modificationDate": null})),
            "error: include modificationDate in $fields".to_owned(),
        ),
    ];
    for (name, reservation, expected) in cases {
        check_topdesk(name, reservation, &expected);
    }
}

#[test]
fn topdesk_ids_and_unsynced_fields() {
    let rooms = rooms();
    let ctx = ObserveContext::new(&rooms, LINK_TYPE, &series, ObservationSource::Poll).with_persons(&persons);
    let r: ReservationDto = serde_json::from_value(topdesk_reservation(json!({"archived": true,
        "participants": {"persons": [{"id": BOB_PERSON}, {"id": "aaaaaaaa-0000-4000-8000-00000000dead"}],
                         "visitors": [{"number": "V-1"}]}})))
    .unwrap();
    let o = from_topdesk_reservation(&r, &ctx).unwrap();
    assert_eq!(o.side, Side::Topdesk);
    assert_eq!(o.source, ObservationSource::Poll);
    assert_eq!(o.ids.reservation_id.as_deref(), Some("6b0f0c52-1d7e-4a7b-8f0e-1a2b3c4d5e6f"));
    assert_eq!(o.ids.reservation_number.as_deref(), Some("R 2609 0001"));
    assert_eq!(o.ids.event_id, None);
    assert_eq!(o.location_text.as_deref(), Some("Room 1"));
    let unsynced: Vec<String> = o.unsynced.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        unsynced,
        [
            "archived=true",
            "hasNotes=true",
            "numberOfPersons=2",
            "status=planned",
            "unresolvedParticipantIds=aaaaaaaa-0000-4000-8000-00000000dead",
            "unresolvedParticipants=1",
            "visitors=1"
        ]
    );
}

fn plan_context<'a>(policy: &'a Policy, rooms: &'a RoomMap, people: &'a PersonDirectory) -> PlanContext<'a> {
    PlanContext {
        tenant_id: "0190f0e4-7d1c-7a3b-9a6f-0000000000f0".parse::<TenantId>().unwrap(),
        policy,
        rooms,
        persons: people,
        now: at("2026-08-02T09:00:00Z"),
        new_ids: NewIds {
            booking: MATCH.parse::<BookingId>().unwrap(),
            correlation: "0190f0e4-7d1c-7a3b-9a6f-0000000000cc".parse::<CorrelationId>().unwrap(),
        },
        sweep: None,
    }
}

fn canonical(o: &Observation, rooms: &RoomMap) -> CanonicalFields {
    let room = match &o.room {
        ObservedRoom::Mailbox(a) => rooms.by_mailbox(a).map(|m| CanonicalRoom::Managed(m.id)),
        ObservedRoom::Location(l) => rooms.by_location(l).map(|m| CanonicalRoom::Managed(m.id)),
        ObservedRoom::None => None,
    }
    .unwrap();
    CanonicalFields::new(
        room,
        o.start,
        o.end,
        o.organizer.clone(),
        o.participants.iter().filter(|p| !rooms.is_room_address(p)).cloned(),
        o.subject.clone(),
        o.lifecycle != Lifecycle::Active,
    )
}

/// The same booking read from Exchange (the room's copy) and from TOPdesk (as ORB wrote it) means the
/// same thing: equal canonical fields, and the planner sees the TOPdesk read-back as an echo.
#[test]
fn graph_and_topdesk_views_of_one_booking_round_trip_through_the_planner() {
    let rooms = rooms();
    let room1 = addr(ROOM1);
    let ctx = ObserveContext::new(&rooms, LINK_TYPE, &series, ObservationSource::Notification)
        .with_mailbox(&room1)
        .with_persons(&persons);
    let event: Event = serde_json::from_value(graph_event(json!({"id": "AAMkRoom1", "isOrganizer": false,
        "responseStatus": {"response": "accepted"}, "body": {"contentType": "text", "content": "agenda"}})))
    .unwrap();
    let from_graph = from_graph_event(&event, &ctx).unwrap();

    let policy = Policy::new();
    let people = PersonDirectory::new([
        (addr(ANNA), ANNA_PERSON.to_owned()),
        (addr("bob@contoso.com"), BOB_PERSON.to_owned()),
    ]);
    let pctx = plan_context(&policy, &rooms, &people);
    let created = plan(None, &from_graph, &pctx);
    assert!(
        created.actions.iter().any(|a| matches!(a, Action::CreateReservation { .. })),
        "{:?}",
        created.actions
    );
    let RecordChange::Create(record) = created.record else { panic!("expected a new record: {created:?}") };
    assert_eq!(record.room_id, R1_ID.parse::<RoomId>().unwrap());
    assert_eq!(record.time_zone.as_str(), "Europe/Berlin");

    // TOPdesk as ORB wrote it: ORB's external link, requester Anna, participant Bob.
    let reservation: ReservationDto = serde_json::from_value(topdesk_reservation(json!({
        "externalLinks": [{"id": record.id.to_string(), "type": "7", "date": "2026-08-02T09:00:00Z"}]})))
    .unwrap();
    let from_topdesk = from_topdesk_reservation(&reservation, &ctx).unwrap();
    assert_eq!(from_topdesk.orb_match_id, Some(record.id));

    let g = canonical(&from_graph, &rooms);
    let t = canonical(&from_topdesk, &rooms);
    assert_eq!(g, t);
    assert_eq!(g.fingerprint(), t.fingerprint());
    assert_eq!(record.fingerprint(Side::Exchange), Some(&g.fingerprint()));
    assert_eq!(record.fingerprint(Side::Topdesk), Some(&t.fingerprint()));

    let echo = plan(Some(&record), &from_topdesk, &pctx);
    assert_eq!(echo.nothing_reason(), Some(NothingReason::Echo), "{echo:?}");

    // The same reservation moved by an hour in TOPdesk is not an echo.
    let moved: ReservationDto = serde_json::from_value(topdesk_reservation(json!({
        "plannedStartDate": "2026-09-01T08:00:00.000Z", "plannedEndDate": "2026-09-01T09:00:00.000Z",
        "modificationDate": "2026-08-02T10:00:00.000Z"})))
    .unwrap();
    let moved = from_topdesk_reservation(&moved, &ctx).unwrap();
    assert_ne!(canonical(&moved, &rooms).fingerprint(), g.fingerprint());
    assert_ne!(plan(Some(&record), &moved, &pctx).nothing_reason(), Some(NothingReason::Echo));
}

#[test]
fn a_removed_event_is_a_deletion_of_what_the_record_knows() {
    let rooms = rooms();
    let room1 = addr(ROOM1);
    let ctx = ObserveContext::new(&rooms, LINK_TYPE, &series, ObservationSource::Sweep).with_mailbox(&room1);
    let event: Event =
        serde_json::from_value(graph_event(json!({"id": "AAMkRoom1", "isOrganizer": false}))).unwrap();
    let policy = Policy::new();
    let people = PersonDirectory::new([(addr(ANNA), ANNA_PERSON.to_owned())]);
    let pctx = plan_context(&policy, &rooms, &people);
    let RecordChange::Create(record) = plan(None, &from_graph_event(&event, &ctx).unwrap(), &pctx).record
    else {
        panic!("expected a record");
    };

    let removed: Event = serde_json::from_value(
        json!({"@odata.type": "#microsoft.graph.event", "id": "AAMkRoom1", "@removed": {"reason": "deleted"}}),
    )
    .unwrap();
    assert!(matches!(from_graph_event(&removed, &ctx), Err(ObserveError::Removed { .. })));
    let when = at("2026-08-03T12:00:00Z");
    let gone = observe::deleted(Side::Exchange, observe::graph_removed_ids(&removed), &record, when, &ctx);
    assert_eq!(gone.lifecycle, Lifecycle::Deleted);
    assert_eq!(gone.ids.event_id.as_deref(), Some("AAMkRoom1"));
    assert_eq!(gone.room, ObservedRoom::Mailbox(addr(ROOM1)));
    assert_eq!(gone.source, ObservationSource::Sweep);
    assert_eq!((gone.start, gone.end, gone.modified_at), (record.start, record.end, when));

    let next = plan(Some(&record), &gone, &pctx);
    assert!(
        next.actions.iter().any(|a| matches!(a, Action::CancelReservation { .. })),
        "a deleted meeting cancels its reservation: {:?}",
        next.actions
    );

    let td_gone = observe::deleted(Side::Topdesk, RemoteIds::default(), &record, when, &ctx);
    assert_eq!(td_gone.room, ObservedRoom::Location(TopdeskLocationId::parse(LOC1).unwrap()));
}

#[test]
fn the_context_debug_names_no_closures_and_errors_are_final() {
    let rooms = rooms();
    let ctx = ObserveContext::new(&rooms, LINK_TYPE, &series, ObservationSource::Poll);
    let debug = format!("{ctx:?}");
    assert!(debug.contains("external_link_type: 7") && debug.contains("Poll"), "{debug}");
    // Without a person resolver no TOPdesk participant can be named.
    let r: ReservationDto = serde_json::from_value(topdesk_reservation(json!({}))).unwrap();
    let o = from_topdesk_reservation(&r, &ctx).unwrap();
    assert!(o.participants.is_empty());
    assert_eq!(o.unsynced.get("unresolvedParticipants").map(String::as_str), Some("1"));
}
