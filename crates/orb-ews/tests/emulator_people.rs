//! The client against the EWS emulator over real HTTP: meetings with people (`RequiredAttendees`),
//! room-only appointments written straight into a room's calendar, and dropping the room from a
//! meeting; bad input refused before anything is sent.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use orb_emulators::ews::{self, EwsEmulator, RoomSettings, Scope, Served};
use orb_ews::model::{MeetingChange, NewMeeting, ResponseType, Window};
use orb_ews::{EwsClient, EwsError};

mod support;
use support::{ALICE, ROOM, addr, at, client, start_clock, target};

const BOB: &str = "bob@contoso.com";
const CAROL: &str = "carol@contoso.com";

struct World {
    em: EwsEmulator,
    _served: Served,
    orb: EwsClient,
}

async fn world() -> World {
    let em = EwsEmulator::new(Arc::new(start_clock()));
    em.add_user(ALICE, "Alice Example");
    em.add_user(BOB, "Bob");
    em.add_user(CAROL, "Carol");
    em.add_room(ROOM, "Room 4.12", RoomSettings::default());
    let scope: BTreeSet<String> = [ALICE, ROOM].iter().map(|s| s.to_string()).collect();
    em.add_account("svc-orb", "orb-password", Scope::Mailboxes(scope));
    let served = ews::serve(em.clone()).await.unwrap();
    let orb = client(&served, "svc-orb", "orb-password");
    World { em, _served: served, orb }
}

fn meeting(start: DateTime<Utc>, people: &[&str]) -> NewMeeting {
    NewMeeting {
        subject: "Project sync".into(),
        match_id: format!("m-{start}"),
        start,
        end: start + Duration::hours(1),
        location: Some("Room 4.12".into()),
        room: Some(addr(ROOM)),
        attendees: people.iter().map(|p| addr(p)).collect(),
        time_zone: Some("W. Europe Standard Time".into()),
        recurrence: None,
    }
}

fn day(d: u32) -> Window {
    Window { start: at(d, 0), end: at(d + 1, 0) }
}

fn emails(list: &[orb_ews::model::Attendee]) -> Vec<&str> {
    list.iter().map(|a| a.mailbox.email.as_deref().unwrap()).collect()
}

#[tokio::test]
async fn a_meeting_with_two_people_is_read_back_with_both_and_they_can_be_replaced() {
    let w = world().await;
    let alice = addr(ALICE);
    let id = w.orb.create_meeting(target(&alice), &meeting(at(1, 8), &[BOB, CAROL])).await.unwrap();
    let item = w.orb.get_item(target(&alice), &id).await.unwrap();
    assert_eq!(emails(&item.required_attendees), [BOB, CAROL]);
    assert_eq!(item.required_attendees[0].mailbox.name.as_deref(), Some("Bob"));
    assert_eq!(emails(&item.resources), [ROOM]);
    assert_eq!(item.resources[0].response, Some(ResponseType::Accept), "the room still answers");
    assert_eq!(item.appointment_state, Some(1));
    let create = w.em.requests().into_iter().find(|r| r.operation == "CreateItem").unwrap();
    assert_eq!(create.response_code, "NoError");

    // Replaced as a whole: Carol out, Erin unknown to the server but invited by address.
    let erin = "erin@fabrikam.example";
    let change = MeetingChange { attendees: Some(vec![addr(BOB), addr(erin)]), ..Default::default() };
    let id = w.orb.update_meeting(target(&alice), &item.item_id, &change).await.unwrap();
    let item = w.orb.get_item(target(&alice), &id).await.unwrap();
    assert_eq!(emails(&item.required_attendees), [BOB, erin]);
    // Everyone removed: the meeting keeps its room.
    let none = MeetingChange { attendees: Some(vec![]), ..Default::default() };
    let id = w.orb.update_meeting(target(&alice), &item.item_id, &none).await.unwrap();
    let item = w.orb.get_item(target(&alice), &id).await.unwrap();
    assert!(item.required_attendees.is_empty());
    assert_eq!(emails(&item.resources), [ROOM]);
    assert_eq!(w.em.items(ROOM).len(), 1);
    assert!(!w.em.items(ROOM)[0].is_cancelled);
}

#[tokio::test]
async fn a_room_only_appointment_is_the_rooms_own_item_and_is_moved_and_deleted() {
    let w = world().await;
    let room = addr(ROOM);
    let appt = NewMeeting { room: None, ..meeting(at(2, 8), &[]) };
    let id = w.orb.create_meeting(target(&room), &appt).await.unwrap();
    let create = w.em.requests().into_iter().find(|r| r.operation == "CreateItem").unwrap();
    assert_eq!(create.mailbox.as_deref(), Some(ROOM), "written as the room, in its own calendar");
    // Only in the room's calendar, as its own item: the subject as given (no attendant rewrote it).
    assert!(w.em.items(ALICE).is_empty());
    let view = w.orb.calendar_view(target(&room), day(2)).await.unwrap();
    assert_eq!(view.items.len(), 1);
    assert_eq!(view.items[0].subject.as_deref(), Some("Project sync"));
    assert_eq!(view.items[0].is_cancelled, Some(false));
    let item = w.orb.get_item(target(&room), &id).await.unwrap();
    assert_eq!(item.match_id.as_deref(), Some(appt.match_id.as_str()));
    assert_eq!(item.organizer.as_ref().unwrap().email.as_deref(), Some(ROOM));
    assert!(item.resources.is_empty() && item.required_attendees.is_empty());
    assert_eq!(item.appointment_state, Some(0), "an appointment, not a meeting");
    assert_eq!(item.start_time_zone.as_deref(), Some("W. Europe Standard Time"));

    // It occupies the room: a meeting request over it is declined.
    let alice = addr(ALICE);
    let req = w.orb.create_meeting(target(&alice), &meeting(at(2, 8), &[])).await.unwrap();
    let req = w.orb.get_item(target(&alice), &req).await.unwrap();
    assert_eq!(req.resources[0].response, Some(ResponseType::Decline));

    // Moved with the change key read, like any item.
    let moved = MeetingChange { start: Some(at(2, 12)), end: Some(at(2, 13)), ..Default::default() };
    let id = w.orb.update_meeting(target(&room), &item.item_id, &moved).await.unwrap();
    let item = w.orb.get_item(target(&room), &id).await.unwrap();
    assert_eq!((item.start, item.end), (Some(at(2, 12)), Some(at(2, 13))));
    let again = w.orb.update_meeting(target(&room), &id, &moved).await;
    assert!(again.is_ok(), "the answer's change key is current: no attendant changed the item after");
    // Deleted: gone from the room's calendar.
    let current = w.orb.get_item(target(&room), &id).await.unwrap();
    w.orb.delete_item(target(&room), &current.item_id).await.unwrap();
    assert!(matches!(w.orb.get_item(target(&room), &id).await, Err(EwsError::NotFound { .. })));
    assert!(w.orb.calendar_view(target(&room), day(2)).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn a_meeting_whose_room_is_dropped_leaves_no_live_copy_and_no_resources() {
    let w = world().await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let id = w.orb.create_meeting(target(&alice), &meeting(at(3, 8), &[BOB])).await.unwrap();
    let item = w.orb.get_item(target(&alice), &id).await.unwrap();
    assert_eq!(w.orb.calendar_view(target(&room), day(3)).await.unwrap().items[0].is_cancelled, Some(false));

    let drop = MeetingChange { remove_rooms: true, ..Default::default() };
    let id = w.orb.update_meeting(target(&alice), &item.item_id, &drop).await.unwrap();
    let item = w.orb.get_item(target(&alice), &id).await.unwrap();
    assert!(item.resources.is_empty(), "{:?}", item.resources);
    assert_eq!(emails(&item.required_attendees), [BOB], "the people stay invited");
    assert_eq!(item.is_cancelled, Some(false), "the meeting itself goes on");
    // The room's calendar keeps the copy only as cancelled (U17), free again.
    let view = w.orb.calendar_view(target(&room), day(3)).await.unwrap();
    assert!(view.items.iter().all(|i| i.is_cancelled == Some(true)), "{:?}", view.items);
    assert!(view.items.iter().all(|i| i.free_busy.as_deref() == Some("Free")));
    // Invited again, the room books its copy again; dropped again, it is cancelled again.
    let back = MeetingChange { room: Some(addr(ROOM)), ..Default::default() };
    let id = w.orb.update_meeting(target(&alice), &item.item_id, &back).await.unwrap();
    let item = w.orb.get_item(target(&alice), &id).await.unwrap();
    assert_eq!(item.resources[0].response, Some(ResponseType::Accept));
    let view = w.orb.calendar_view(target(&room), day(3)).await.unwrap();
    assert_eq!(view.items.iter().map(|i| i.is_cancelled).collect::<Vec<_>>(), [Some(false)]);
    let id = w.orb.update_meeting(target(&alice), &item.item_id, &drop).await.unwrap();
    let item = w.orb.get_item(target(&alice), &id).await.unwrap();
    assert_eq!(w.orb.calendar_view(target(&room), day(3)).await.unwrap().items[0].is_cancelled, Some(true));
    // So the slot can be booked by another meeting.
    let other = w.orb.create_meeting(target(&alice), &meeting(at(3, 8), &[])).await.unwrap();
    let other = w.orb.get_item(target(&alice), &other).await.unwrap();
    assert_eq!(other.resources[0].response, Some(ResponseType::Accept));
    // Dropping again: nothing left to drop, nothing breaks.
    let again = w.orb.update_meeting(target(&alice), &item.item_id, &drop).await.unwrap();
    assert!(w.orb.get_item(target(&alice), &again).await.unwrap().resources.is_empty());
}

#[tokio::test]
async fn bad_people_and_room_changes_are_refused_before_anything_is_sent() {
    let w = world().await;
    let alice = addr(ALICE);
    let invalid = |r: Result<_, EwsError>, says: &str| match r {
        Err(EwsError::Invalid { reason }) => assert!(reason.contains(says), "{reason}"),
        other => panic!("{other:?}"),
    };
    let no_room = NewMeeting { room: None, ..meeting(at(1, 8), &[BOB]) };
    invalid(w.orb.create_meeting(target(&alice), &no_room).await, "room-only appointment");
    invalid(w.orb.create_meeting(target(&alice), &meeting(at(1, 8), &[BOB, BOB])).await, "twice");
    invalid(w.orb.create_meeting(target(&alice), &meeting(at(1, 8), &[ROOM])).await, "the meeting's room");
    let id = orb_ews::model::ItemId::new("AAMkAD1", "ck");
    let both = MeetingChange { room: Some(addr(ROOM)), remove_rooms: true, ..Default::default() };
    invalid(w.orb.update_meeting(target(&alice), &id, &both).await, "not both");
    let twice =
        MeetingChange { attendees: Some(vec![addr(CAROL), addr("Carol@contoso.com")]), ..Default::default() };
    invalid(w.orb.update_meeting(target(&alice), &id, &twice).await, "twice");
    assert!(w.em.requests().is_empty(), "{:?}", w.em.requests());
}
