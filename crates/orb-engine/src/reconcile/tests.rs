use super::*;
use orb_core::{AppointmentType, NewBooking, RoomMailbox, TimeZoneName, TopdeskLocationId};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

#[test]
fn minute_precision_ignores_seconds() {
    assert_eq!(minute(at("2026-09-03T09:00:59Z")), at("2026-09-03T09:00:00Z"));
    assert_eq!(minute(at("2026-09-03T09:00:00Z")), at("2026-09-03T09:00:00Z"));
}

#[test]
fn jobs_by_kind_totals() {
    let jobs = JobsByKind { new: 1, changed: 2, deleted: 3, redriven: 4 };
    assert_eq!(jobs.total(), 10);
    assert_eq!(JobsByKind::default().total(), 0);
}

#[test]
fn the_lifecycle_window_reaches_the_horizon() {
    let now = at("2026-09-01T06:00:00Z");
    let policy = orb_core::Policy::new();
    assert_eq!(lifecycle_window(&policy, now), (at("2026-08-31T06:00:00Z"), now + policy.horizon));
    assert_eq!(cursor_name(RoomId::generate(now)).split('.').count(), 3);
}

#[test]
fn a_failed_side_is_redriven_with_back_off() {
    let failed = at("2026-09-01T06:00:00Z");
    // (failures so far, re-driven not before)
    let table = [
        (0, "2026-09-01T06:00:00Z"),
        (1, "2026-09-01T06:00:00Z"),
        (3, "2026-09-01T06:00:00Z"),
        (4, "2026-09-01T06:02:00Z"),
        (5, "2026-09-01T06:04:00Z"),
        (6, "2026-09-01T06:08:00Z"),
        (9, "2026-09-01T07:04:00Z"),
        (11, "2026-09-01T10:16:00Z"),
        (12, "2026-09-01T12:00:00Z"),
        (40, "2026-09-01T12:00:00Z"),
        (u32::MAX, "2026-09-01T12:00:00Z"),
    ];
    for (count, expected) in table {
        assert_eq!(redrive_not_before(failed, count), at(expected), "after {count} failure(s)");
    }
}

fn record(now: DateTime<Utc>) -> BookingRecord {
    let mut r = BookingRecord::new(
        NewBooking {
            tenant_id: TenantId::generate(now),
            appointment_type: AppointmentType::Single,
            series_id: None,
            original_start: None,
            organizer: EmailAddress::parse("anna@contoso.com").unwrap(),
            booked_by: None,
            location_text: None,
            room_id: RoomId::generate(now),
            participants: Vec::new(),
            subject: None,
            start: at("2026-09-03T09:00:00Z"),
            end: at("2026-09-03T10:00:00Z"),
            time_zone: TimeZoneName::utc(),
            processor_created: Side::Exchange,
        },
        now,
    );
    r.exchange_status = SyncStatus::Synced;
    r.topdesk_status = SyncStatus::Synced;
    r
}

#[test]
fn which_side_owes_a_booking_by_its_status() {
    use SyncStatus::{Cancelled, Failed, Pending, Synced};
    let created = at("2026-09-01T06:00:00Z");
    let failed_at = at("2026-09-01T07:00:00Z");
    let soon = created + Duration::minutes(PENDING_GRACE_MINUTES - 1);
    let later = created + Duration::minutes(PENDING_GRACE_MINUTES);
    let owed = |ex, td, failed_processor: Option<Side>, now| {
        let mut r = record(created);
        r.exchange_status = ex;
        r.topdesk_status = td;
        if ex == Failed || td == Failed {
            r.failed_at = Some(failed_at);
            r.failed_processor = failed_processor;
        }
        owed_by_status(&r, now)
    };
    // (Exchange, TOPdesk, last failed side, now) → owing side, why, since
    let table = [
        ((Synced, Synced, None, later), None),
        ((Cancelled, Cancelled, None, later), None),
        ((Synced, Failed, Some(Side::Topdesk), soon), Some((Side::Topdesk, Owing::Failed, failed_at))),
        ((Cancelled, Failed, Some(Side::Topdesk), soon), Some((Side::Topdesk, Owing::Failed, failed_at))),
        ((Failed, Synced, Some(Side::Exchange), soon), Some((Side::Exchange, Owing::Failed, failed_at))),
        // Both failed: the good side is the last failed side's other side (else Exchange).
        ((Failed, Failed, Some(Side::Topdesk), soon), Some((Side::Topdesk, Owing::Failed, failed_at))),
        ((Failed, Failed, Some(Side::Exchange), soon), Some((Side::Exchange, Owing::Failed, failed_at))),
        ((Failed, Failed, None, soon), Some((Side::Topdesk, Owing::Failed, failed_at))),
        // Pending: only once the grace is over, and only one side.
        ((Synced, Pending, None, soon), None),
        ((Synced, Pending, None, later), Some((Side::Topdesk, Owing::Stuck, created))),
        ((Pending, Synced, None, later), Some((Side::Exchange, Owing::Stuck, created))),
        ((Pending, Pending, None, later), None),
    ];
    for ((ex, td, processor, now), expected) in table {
        assert_eq!(owed(ex, td, processor, now), expected, "{ex:?} / {td:?} / {processor:?} at {now}");
    }
}

#[test]
fn an_item_disagrees_with_its_record_on_times_room_or_cancellation() {
    let now = at("2026-09-01T06:00:00Z");
    let mut rec = record(now);
    let mailbox = RoomMailbox::parse("room1@contoso.com").unwrap();
    let location = TopdeskLocationId::parse("loc-1").unwrap();
    let rooms = RoomMap::new(vec![RoomMapping {
        id: rec.room_id,
        mailbox: mailbox.clone(),
        location: location.clone(),
        time_zone: TimeZoneName::utc(),
        enabled: true,
        name: None,
    }]);
    let held = Observation {
        side: Side::Topdesk,
        source: ObservationSource::Sweep,
        orb_match_id: None,
        ids: RemoteIds::default(),
        room: ObservedRoom::Location(location),
        start: rec.start + Duration::seconds(30),
        end: rec.end,
        time_zone: None,
        organizer: rec.organizer.clone(),
        booked_by: None,
        participants: Vec::new(),
        subject: Some("anything".into()),
        location_text: None,
        lifecycle: Lifecycle::Active,
        room_response: RoomResponse::Accepted,
        modified_at: now,
        appointment_type: AppointmentType::Single,
        series: None,
        unsynced: BTreeMap::new(),
        counterpart: None,
    };
    let in_room = Observation {
        side: Side::Exchange,
        room: ObservedRoom::Mailbox(mailbox.address().clone()),
        ..held.clone()
    };
    let table: Vec<(&str, Observation, bool)> = vec![
        ("same booking (seconds and subject do not count)", held.clone(), false),
        ("same booking in the room's calendar", in_room, false),
        ("another start", Observation { start: rec.start + Duration::hours(1), ..held.clone() }, true),
        ("another end", Observation { end: rec.end + Duration::minutes(30), ..held.clone() }, true),
        ("no room", Observation { room: ObservedRoom::None, ..held.clone() }, true),
        (
            "an unmapped room",
            Observation {
                room: ObservedRoom::Location(TopdeskLocationId::parse("loc-9").unwrap()),
                ..held.clone()
            },
            true,
        ),
        ("cancelled", Observation { lifecycle: Lifecycle::Cancelled, ..held.clone() }, true),
    ];
    for (name, obs, expected) in &table {
        assert_eq!(disagrees(&rec, obs, &rooms), *expected, "{name}");
    }
    rec.cancelled = true;
    assert!(disagrees(&rec, &held, &rooms), "live while the record is cancelled");
    let cancelled = Observation { lifecycle: Lifecycle::Deleted, ..held };
    assert!(!disagrees(&rec, &cancelled, &rooms), "cancelled like the record");
}
