//! Finding meetings again through the client against the EWS emulator over real HTTP: by ORB's match id
//! (FindItem with an `IndexedPageItemView` and a restriction, then GetItem) and by `UID` around a known
//! time (a calendar view, GetItem of what it lists, the master of a series) — the organizer's item
//! found from a room copy's `UID`, a series found as its master, nothing found as `None`.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc, Weekday};
use orb_emulators::ews::{self, EwsEmulator, RoomSettings, Scope, Served};
use orb_ews::model::{CalendarItemType, NewMeeting, Window};
use orb_ews::series::{DayOfWeek, Pattern, Range, Recurrence};
use orb_ews::{EwsClient, EwsConfig, EwsError};

mod support;
use support::{ALICE, ROOM, addr, at, client, start_clock, target};

struct World {
    em: EwsEmulator,
    served: Served,
    orb: EwsClient,
}

async fn world() -> World {
    let em = EwsEmulator::new(Arc::new(start_clock()));
    em.add_user(ALICE, "Alice Example");
    em.add_room(ROOM, "Room 4.12", RoomSettings::default());
    let scope: BTreeSet<String> = [ALICE, ROOM].iter().map(|s| s.to_string()).collect();
    em.add_account("svc-orb", "orb-password", Scope::Mailboxes(scope));
    let served = ews::serve(em.clone()).await.unwrap();
    let orb = client(&served, "svc-orb", "orb-password");
    World { em, served, orb }
}

fn meeting(start: DateTime<Utc>, match_id: &str) -> NewMeeting {
    NewMeeting {
        subject: "Project sync".into(),
        match_id: match_id.into(),
        start,
        end: start + Duration::hours(1),
        location: Some("Room 4.12".into()),
        room: Some(addr(ROOM)),
        attendees: Vec::new(),
        time_zone: Some("W. Europe Standard Time".into()),
        recurrence: None,
    }
}

/// Tuesdays 10:00–11:00 Amsterdam time, four times from 1 September 2026.
fn tuesdays(match_id: &str) -> NewMeeting {
    NewMeeting {
        recurrence: Some(Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![DayOfWeek::Day(Weekday::Tue)],
                first_day_of_week: None,
            },
            range: Range::Numbered { start: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(), count: 4 },
        }),
        ..meeting(at(1, 8), match_id)
    }
}

/// `[from, from + hours)`.
fn around(from: DateTime<Utc>, hours: i64) -> Window {
    Window { start: from, end: from + Duration::hours(hours) }
}

/// The operations the emulator logged after the first `skip` requests.
fn operations(em: &EwsEmulator, skip: usize) -> Vec<String> {
    em.requests().into_iter().skip(skip).map(|r| r.operation).collect()
}

#[tokio::test]
async fn a_meeting_is_found_again_by_its_match_id() {
    let w = world().await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let created = w.orb.create_meeting(target(&alice), &meeting(at(1, 8), "match-1")).await.unwrap();

    // FindItem (restriction on the extended property), then GetItem: ORB's explicit properties.
    let before = w.em.requests().len();
    let found = w.orb.find_by_match_id(target(&alice), "match-1").await.unwrap().expect("found");
    assert_eq!(operations(&w.em, before), ["FindItem", "GetItem"]);
    assert_eq!(found.item_id.id, created.id);
    assert_eq!(found.match_id.as_deref(), Some("match-1"));
    assert_eq!(found.item_type, Some(CalendarItemType::Single));
    assert!(found.uid.is_some() && found.resources[0].mailbox.email.as_deref() == Some(ROOM));
    let fresh = w.orb.get_item(target(&alice), &created).await.unwrap();
    assert_eq!(found, fresh, "what the lookup returns is what GetItem reads");

    // Nothing with that id: one call, `None`. The room's copy carries no match id (U9).
    let before = w.em.requests().len();
    assert_eq!(w.orb.find_by_match_id(target(&alice), "match-2").await.unwrap(), None);
    assert_eq!(operations(&w.em, before), ["FindItem"]);
    assert_eq!(w.orb.find_by_match_id(target(&room), "match-1").await.unwrap(), None);

    // A series is found as its master, never as an occurrence.
    let series = w.orb.create_meeting(target(&alice), &tuesdays("series-1")).await.unwrap();
    let master = w.orb.find_by_match_id(target(&alice), "series-1").await.unwrap().expect("found");
    assert_eq!(master.item_id.id, series.id);
    assert_eq!(master.item_type, Some(CalendarItemType::RecurringMaster));
    assert!(master.recurrence.is_some());

    // A match id with markup in it is sent and compared as it is.
    let odd = r#"m<1> & "2" 'x'"#;
    let made = w.orb.create_meeting(target(&alice), &meeting(at(2, 8), odd)).await.unwrap();
    let found = w.orb.find_by_match_id(target(&alice), odd).await.unwrap().expect("found");
    assert_eq!((found.item_id.id, found.match_id.as_deref()), (made.id, Some(odd)));

    // Bad input is refused before anything is sent.
    let before = w.em.requests().len();
    for bad in ["", "  ", "a\u{1}b"] {
        let e = w.orb.find_by_match_id(target(&alice), bad).await.unwrap_err();
        assert!(matches!(e, EwsError::Invalid { .. }), "{bad:?}: {e:?}");
    }
    assert_eq!(w.em.requests().len(), before);
    assert!(w.em.body_requests().is_empty());
}

#[tokio::test]
async fn the_organizers_item_is_found_from_the_room_copys_uid() {
    let w = world().await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let created = w.orb.create_meeting(target(&alice), &meeting(at(1, 8), "match-1")).await.unwrap();
    w.orb.create_meeting(target(&alice), &meeting(at(1, 10), "match-2")).await.unwrap();
    let view = w.orb.calendar_view(target(&room), around(at(1, 7), 2)).await.unwrap();
    let copy = w.orb.get_item(target(&room), &view.items[0].item_id).await.unwrap();
    let uid = copy.uid.clone().unwrap();
    assert_eq!(copy.match_id, None, "the room's copy has no match id (U9)");

    // Around the known time, in the organizer's mailbox: two calls, the organizer's item.
    let before = w.em.requests().len();
    let found = w.orb.find_by_uid(target(&alice), &uid, around(at(1, 6), 6)).await.unwrap().expect("found");
    assert_eq!(operations(&w.em, before), ["FindItem", "GetItem"]);
    assert_eq!(found.item_id.id, created.id);
    assert_eq!(found.match_id.as_deref(), Some("match-1"));
    assert_eq!(found.uid.as_deref(), Some(uid.as_str()));
    // The room's own copy, by the same UID in the room's mailbox.
    let own = w.orb.find_by_uid(target(&room), &uid, around(at(1, 6), 6)).await.unwrap().expect("found");
    assert_eq!(own.item_id.id, copy.item_id.id);

    // Nothing found: an unknown UID, or a window that misses the meeting (one call when empty).
    let unknown = "040000008200E00074C5B7101A82E008FFFFFFFFFFFFFFFF";
    assert_eq!(w.orb.find_by_uid(target(&alice), unknown, around(at(1, 6), 6)).await.unwrap(), None);
    let before = w.em.requests().len();
    assert_eq!(w.orb.find_by_uid(target(&alice), &uid, around(at(2, 6), 6)).await.unwrap(), None);
    assert_eq!(operations(&w.em, before), ["FindItem"]);

    // A window fuller than the view's limit cannot prove an absence; a match among those listed is
    // still found.
    let served = &w.served;
    let small = EwsConfig { max_entries: 1, ..EwsConfig::new(served.ews_url().parse().unwrap(), basic()) };
    let small = EwsClient::new(EwsConfig { allow_plain_http: true, ..small }).unwrap();
    let e = small.find_by_uid(target(&alice), unknown, around(at(1, 6), 6)).await.unwrap_err();
    let EwsError::Invalid { reason } = &e else { panic!("{e:?}") };
    assert!(reason.contains("narrow the window") && reason.contains("more than 1 items"), "{reason}");
    let first = small.find_by_uid(target(&alice), &uid, around(at(1, 6), 6)).await.unwrap().expect("found");
    assert_eq!(first.item_id.id, created.id);

    let before = w.em.requests().len();
    let e = w.orb.find_by_uid(target(&alice), " ", around(at(1, 6), 6)).await.unwrap_err();
    assert!(matches!(e, EwsError::Invalid { .. }), "{e:?}");
    let backwards = Window { start: at(1, 10), end: at(1, 6) };
    assert!(matches!(
        w.orb.find_by_uid(target(&alice), &uid, backwards).await,
        Err(EwsError::Invalid { .. })
    ));
    assert_eq!(w.em.requests().len(), before, "nothing sent for bad input");
    assert!(w.em.body_requests().is_empty());
}

fn basic() -> orb_ews::Auth {
    orb_ews::Auth::Basic {
        username: "svc-orb".into(),
        password: secrecy::SecretString::from("orb-password".to_owned()),
    }
}

#[tokio::test]
async fn a_series_is_found_as_its_master_from_an_occurrences_uid() {
    let w = world().await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let series = w.orb.create_meeting(target(&alice), &tuesdays("series-1")).await.unwrap();
    // The room's copy of the second occurrence, around 8 September.
    let view = w.orb.calendar_view(target(&room), around(at(8, 0), 24)).await.unwrap();
    assert_eq!(view.items.len(), 1);
    let occurrence = w.orb.get_item(target(&room), &view.items[0].item_id).await.unwrap();
    assert_eq!(occurrence.item_type, Some(CalendarItemType::Occurrence));
    let uid = occurrence.uid.unwrap();

    // The organizer's occurrence is listed and read; its master is read by RecurringMasterItemId.
    let before = w.em.requests().len();
    let found = w.orb.find_by_uid(target(&alice), &uid, around(at(8, 7), 3)).await.unwrap().expect("found");
    assert_eq!(operations(&w.em, before), ["FindItem", "GetItem", "GetItem"]);
    assert_eq!(found.item_id.id, series.id);
    assert_eq!(found.item_type, Some(CalendarItemType::RecurringMaster));
    assert_eq!(found.match_id.as_deref(), Some("series-1"));
    assert_eq!(found.first_occurrence.as_ref().map(|o| o.start), Some(at(1, 8)));

    // An exception leads to its master too; in the room, to the room's master copy.
    let moved =
        orb_ews::model::MeetingChange { start: Some(at(8, 9)), end: Some(at(8, 10)), ..Default::default() };
    let second = orb_ews::series::ItemRef::Occurrence { master: found.item_id.clone(), index: 2 };
    w.orb.update_meeting(target(&alice), second, &moved).await.unwrap();
    let found = w.orb.find_by_uid(target(&alice), &uid, around(at(8, 7), 4)).await.unwrap().expect("found");
    assert_eq!((found.item_id.id.as_str(), found.modified_occurrences.len()), (series.id.as_str(), 1));
    let room_master =
        w.orb.find_by_uid(target(&room), &uid, around(at(8, 7), 4)).await.unwrap().expect("found");
    assert_eq!(room_master.item_type, Some(CalendarItemType::RecurringMaster));
    assert_ne!(room_master.item_id.id, series.id);
    assert_eq!(room_master.match_id, None);
    assert!(w.em.body_requests().is_empty());
}
