//! The cases. Each takes a fresh [`Harness`] and must hold on every back-end.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use orb_core::{
    AppointmentType, BookingRecord, EmailAddress, Fingerprint, NewBooking, RoomId, RoomMailbox, SeriesId,
    Side, SyncStatus, TenantId, TenantName, TimeZoneName, TopdeskLocationId,
};
use orb_store::{
    BookingFilter, BookingKey, EncryptionKeyRow, InboxSource, JobOutcome, JobStatus, Lane, NewAuditEntry,
    NewBookingEvent, NewInboxItem, NewJob, NewRoom, QueueStats, RetryPolicy, Room, SealedSecretRow, Series,
    Store, StoreError, SubscriptionRow, Tenant,
};
use serde_json::json;

use super::harness::Harness;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
}

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

async fn tenant(store: &dyn Store, name: &str) -> Tenant {
    store.create_tenant(&TenantName::parse(name).unwrap(), t0()).await.unwrap()
}

async fn room(store: &dyn Store, tenant: &Tenant, mailbox: &str, location: &str) -> Room {
    let new = NewRoom {
        mailbox: RoomMailbox::parse(mailbox).unwrap(),
        topdesk_location_id: TopdeskLocationId::parse(location).unwrap(),
        display_name: Some(format!("Room {location}")),
    };
    store.add_room(tenant.id, &new, t0()).await.unwrap()
}

fn record(tenant: TenantId, room: RoomId, start: DateTime<Utc>) -> BookingRecord {
    BookingRecord::new(
        NewBooking {
            tenant_id: tenant,
            appointment_type: AppointmentType::Single,
            series_id: None,
            original_start: None,
            organizer: email("manager@contoso.com"),
            booked_by: None,
            location_text: Some("Room 4.12".into()),
            room_id: room,
            participants: vec![email("a@contoso.com")],
            subject: Some("Quarterly review".into()),
            start,
            end: start + Duration::hours(1),
            time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
            processor_created: Side::Exchange,
        },
        t0(),
    )
}

fn event(kind: &str) -> NewBookingEvent {
    NewBookingEvent { at: t0(), kind: kind.into(), side: Some(Side::Exchange), detail: json!({"why": kind}) }
}

fn job(lane: &Lane, kind: &str, payload: serde_json::Value) -> NewJob {
    NewJob { lane: lane.clone(), kind: kind.into(), payload, correlation_id: None, run_at: None }
}

fn audit(tenant: Option<TenantId>, action: &str, target: &str) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: tenant,
        at: t0(),
        actor: "cli".into(),
        action: action.into(),
        target: target.into(),
        ip: None,
    }
}

/// A tenant with one room, ready for bookings.
async fn setup(h: &Harness) -> (Tenant, Room) {
    let t = tenant(&*h.store, "contoso").await;
    let r = room(&*h.store, &t, "room-4.12@contoso.com", "loc-412").await;
    (t, r)
}

pub async fn migrations_are_idempotent_and_append_only(h: &Harness) {
    assert_eq!(h.store.backend(), h.kind);
    // Running again, and from a second process at the same time, changes nothing.
    let second = h.second_store().await;
    let (a, b) = tokio::join!(h.store.migrate(), second.migrate());
    a.unwrap();
    b.unwrap();
    assert_eq!(h.store.pending_migrations().await.unwrap(), 0, "a migrated schema is current");
    let raw = h.raw().await;
    raw.execute("UPDATE orb_schema_migrations SET checksum = 'edited' WHERE version = 1").await.unwrap();
    let err = h.store.migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::MigrationChanged { version: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("append-only"), "{err}");
    raw.execute("DELETE FROM orb_schema_migrations WHERE checksum = 'edited'").await.unwrap();
    assert_eq!(h.store.pending_migrations().await.unwrap(), 1, "migration 1 is no longer recorded");
    raw.execute("INSERT INTO orb_schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
        .await
        .unwrap();
    let err = h.store.migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { found: 9999, known: 7 }), "{err:?}");
}

pub async fn tenants_are_unique_and_listed(h: &Harness) {
    let s = &*h.store;
    let b = tenant(s, "fabrikam").await;
    let a = tenant(s, "contoso").await;
    let err = s.create_tenant(&TenantName::parse("contoso").unwrap(), t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(err.to_string(), "tenant \"contoso\" already exists");
    let names: Vec<_> = s.list_tenants().await.unwrap().into_iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["contoso", "fabrikam"]);
    assert_eq!(s.tenant_by_name(&TenantName::parse("contoso").unwrap()).await.unwrap(), a);
    assert_ne!(a.id, b.id);
    let err = s.tenant_by_name(&TenantName::parse("nobody").unwrap()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
}

pub async fn rooms_map_mailboxes_and_can_be_disabled(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let r2 = room(s, &t, "boardroom@contoso.com", "loc-bd").await;
    assert!(r.enabled);
    let listed = s.list_rooms(t.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.mailbox.as_str()).collect::<Vec<_>>(),
        ["boardroom@contoso.com", "room-4.12@contoso.com"]
    );
    let later = t0() + Duration::minutes(5);
    let disabled = s.set_room_enabled(t.id, r2.id, false, later).await.unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.updated_at, later);
    assert!(!s.get_room(t.id, r2.id).await.unwrap().enabled);
    let by_mailbox =
        s.room_by_mailbox(t.id, &RoomMailbox::parse("ROOM-4.12@contoso.com").unwrap()).await.unwrap();
    assert_eq!(by_mailbox, r);
    let err = s.set_room_enabled(t.id, RoomId::generate(t0()), false, later).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
}

pub async fn rooms_reject_duplicate_mailbox_or_location(h: &Harness) {
    let s = &*h.store;
    let (t, _) = setup(h).await;
    for (mailbox, loc) in [("room-4.12@contoso.com", "other"), ("other@contoso.com", "loc-412")] {
        let new = NewRoom {
            mailbox: RoomMailbox::parse(mailbox).unwrap(),
            topdesk_location_id: TopdeskLocationId::parse(loc).unwrap(),
            display_name: None,
        };
        let err = s.add_room(t.id, &new, t0()).await.unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{mailbox}/{loc}: {err:?}");
    }
    assert_eq!(s.list_rooms(t.id).await.unwrap().len(), 1, "nothing half-written");
    // The same mailbox may be mapped by another tenant.
    let other = tenant(s, "fabrikam").await;
    room(s, &other, "room-4.12@contoso.com", "loc-412").await;
}

pub async fn every_booking_field_round_trips(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let series_id = SeriesId::generate(t0());
    s.upsert_series(&Series {
        id: series_id,
        tenant_id: t.id,
        room_id: r.id,
        organizer: email("manager@contoso.com"),
        ical_uid: Some("uid-1".into()),
        exchange_master_event_id: None,
        topdesk_series_id: None,
        pattern: json!({"pattern": {"type": "daily", "interval": 1}}),
        time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
        created_at: t0(),
        updated_at: t0(),
    })
    .await
    .unwrap();
    let mut rec = record(t.id, r.id, t0() + Duration::days(1));
    // Fill every optional field with a distinct value.
    rec.appointment_type = AppointmentType::Exception;
    rec.series_id = Some(series_id);
    rec.original_start = Some(t0() + Duration::days(1) - Duration::hours(2));
    rec.booked_by = Some(email("secretary@contoso.com"));
    rec.participants = vec![email("a@contoso.com"), email("b@fabrikam.com")];
    rec.cancelled = true;
    rec.complexity_index = 7;
    rec.last_updated_processor = Some(Side::Topdesk);
    rec.failed_at = Some(t0() + Duration::seconds(3));
    rec.failed_processor = Some(Side::Topdesk);
    rec.failed_count = 2;
    rec.retry_count = 3;
    rec.exchange_status = SyncStatus::Synced;
    rec.topdesk_status = SyncStatus::Declined;
    rec.exchange.organizer_event_id = Some("AAMk-org".into());
    rec.exchange.room_event_id = Some("AAMk-room".into());
    rec.exchange.ical_uid = Some("uid-1".into());
    rec.exchange.change_key = Some("ck-1".into());
    rec.exchange.modified_at = Some(t0() + Duration::milliseconds(987));
    rec.topdesk.reservation_id = Some("res-1".into());
    rec.topdesk.reservation_number = Some("R 2611 0001".into());
    rec.topdesk.modification_date = Some(t0() + Duration::milliseconds(1234));
    rec.exchange_fingerprint = Some(Fingerprint::from_bytes([1; 32]));
    rec.topdesk_fingerprint = Some(Fingerprint::from_bytes([2; 32]));
    let stored = s.insert_booking(&rec, &[], &[], t0()).await.unwrap();
    assert_eq!(stored.version, 1);
    let read = s.get_booking(t.id, rec.id).await.unwrap();
    assert_eq!(read, BookingRecord { version: 1, ..rec.clone() });
    // And the minimal record (every option empty) too.
    let minimal = BookingRecord {
        subject: None,
        location_text: None,
        participants: vec![],
        ..record(t.id, r.id, t0())
    };
    s.insert_booking(&minimal, &[], &[], t0()).await.unwrap();
    assert_eq!(s.get_booking(t.id, minimal.id).await.unwrap(), BookingRecord { version: 1, ..minimal });
}

pub async fn set_once_fields_survive_updates(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let rec = s.insert_booking(&record(t.id, r.id, t0()), &[], &[], t0()).await.unwrap();
    let mut changed = rec.clone();
    changed.change_organizer(email("deputy@contoso.com"));
    // Try to rewrite history: these must be ignored by the update.
    changed.original_organizer = email("forger@contoso.com");
    changed.created_at = t0() + Duration::days(9);
    changed.processor_created = Side::Topdesk;
    let later = t0() + Duration::minutes(1);
    let updated = s.update_booking(&changed, &[], &[], later).await.unwrap();
    assert_eq!(updated.version, 2);
    let read = s.get_booking(t.id, rec.id).await.unwrap();
    assert_eq!(read.organizer.as_str(), "deputy@contoso.com");
    assert_eq!(read.original_organizer.as_str(), "manager@contoso.com");
    assert_eq!(read.created_at, rec.created_at);
    assert_eq!(read.processor_created, Side::Exchange);
    assert_eq!(read.last_updated_at, later);
    assert_eq!(read.version, 2);
}

pub async fn concurrent_updates_from_one_version_conflict_and_lose_nothing(h: &Harness) {
    let (t, r) = setup(h).await;
    let other = h.second_store().await;
    let rec = h.store.insert_booking(&record(t.id, r.id, t0()), &[], &[], t0()).await.unwrap();
    // Writer A moves the meeting, writer B changes the subject; both read version 1.
    let mut a = rec.clone();
    a.start += Duration::hours(1);
    a.end += Duration::hours(1);
    let mut b = rec.clone();
    b.subject = Some("Renamed".into());
    let (ev_a, ev_b) = ([event("a")], [event("b")]);
    let (ra, rb) = tokio::join!(
        h.store.update_booking(&a, &ev_a, &[], t0()),
        other.update_booking(&b, &ev_b, &[], t0())
    );
    let (winner, loser_err, mut loser) = match (ra, rb) {
        (Ok(w), Err(e)) => (w, e, b),
        (Err(e), Ok(w)) => (w, e, a),
        other => panic!("exactly one writer must win, got {other:?}"),
    };
    assert!(
        matches!(loser_err, StoreError::Conflict { expected: 1, actual: 2, .. }),
        "loser gets Conflict: {loser_err:?}"
    );
    assert!(loser_err.is_retryable());
    assert_eq!(winner.version, 2);
    // The loser's timeline entry was not written (the transaction rolled back as a whole).
    assert_eq!(h.store.timeline(t.id, rec.id).await.unwrap().len(), 1);
    // The loser reloads, re-applies its change and wins on the new version: both changes survive.
    let fresh = h.store.get_booking(t.id, rec.id).await.unwrap();
    if loser.subject.as_deref() == Some("Renamed") {
        loser = BookingRecord { subject: Some("Renamed".into()), ..fresh };
    } else {
        loser = BookingRecord { start: loser.start, end: loser.end, ..fresh };
    }
    h.store.update_booking(&loser, &[], &[], t0()).await.unwrap();
    let end = h.store.get_booking(t.id, rec.id).await.unwrap();
    assert_eq!(end.version, 3);
    assert_eq!(end.subject.as_deref(), Some("Renamed"));
    assert_eq!(end.start, t0() + Duration::hours(1));
}

pub async fn bookings_are_found_by_either_sides_ids(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let mut single = record(t.id, r.id, t0());
    single.exchange.organizer_event_id = Some("org-1".into());
    single.exchange.room_event_id = Some("room-1".into());
    single.exchange.ical_uid = Some("uid-single".into());
    single.topdesk.reservation_id = Some("res-1".into());
    s.insert_booking(&single, &[], &[], t0()).await.unwrap();
    let mut occ = record(t.id, r.id, t0() + Duration::days(7));
    occ.exchange.ical_uid = Some("uid-series".into());
    occ.original_start = Some(t0() + Duration::days(7));
    s.insert_booking(&occ, &[], &[], t0()).await.unwrap();

    let find =
        |key: BookingKey<'static>| async move { s.find_booking(t.id, &key).await.unwrap().map(|b| b.id) };
    assert_eq!(find(BookingKey::TopdeskReservation("res-1")).await, Some(single.id));
    assert_eq!(find(BookingKey::ExchangeEvent("org-1")).await, Some(single.id));
    assert_eq!(find(BookingKey::ExchangeEvent("room-1")).await, Some(single.id));
    assert_eq!(
        find(BookingKey::ICalUid { ical_uid: "uid-single", original_start: None }).await,
        Some(single.id)
    );
    assert_eq!(
        find(BookingKey::ICalUid { ical_uid: "uid-series", original_start: Some(t0() + Duration::days(7)) })
            .await,
        Some(occ.id)
    );
    assert_eq!(find(BookingKey::ICalUid { ical_uid: "uid-series", original_start: Some(t0()) }).await, None);
    assert_eq!(find(BookingKey::TopdeskReservation("res-404")).await, None);
    // One TOPdesk reservation can belong to one booking only.
    let mut dup = record(t.id, r.id, t0());
    dup.topdesk.reservation_id = Some("res-1".into());
    let err = s.insert_booking(&dup, &[event("created")], &[], t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert!(matches!(s.get_booking(t.id, dup.id).await, Err(StoreError::NotFound { .. })));
}

pub async fn bookings_are_listed_by_room_series_and_window(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let r2 = room(s, &t, "boardroom@contoso.com", "loc-bd").await;
    let a = record(t.id, r.id, t0());
    let b = record(t.id, r.id, t0() + Duration::days(1));
    let c = record(t.id, r2.id, t0() + Duration::hours(2));
    let mut cancelled = record(t.id, r.id, t0() + Duration::hours(3));
    cancelled.cancelled = true;
    for rec in [&a, &b, &c, &cancelled] {
        s.insert_booking(rec, &[], &[], t0()).await.unwrap();
    }
    let ids = |v: Vec<BookingRecord>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
    let all = BookingFilter::default();
    assert_eq!(ids(s.list_bookings(t.id, &all).await.unwrap()), [a.id, c.id, b.id]);
    let with_cancelled = BookingFilter { include_cancelled: true, ..all.clone() };
    assert_eq!(ids(s.list_bookings(t.id, &with_cancelled).await.unwrap()), [a.id, c.id, cancelled.id, b.id]);
    let room_one = BookingFilter { room: Some(r.id), ..all.clone() };
    assert_eq!(ids(s.list_bookings(t.id, &room_one).await.unwrap()), [a.id, b.id]);
    // Window [t0+30m, t0+1d): a (ends t0+1h) overlaps, c overlaps, b starts at the window's end: excluded.
    let window = BookingFilter {
        from: Some(t0() + Duration::minutes(30)),
        to: Some(t0() + Duration::days(1)),
        ..all.clone()
    };
    assert_eq!(ids(s.list_bookings(t.id, &window).await.unwrap()), [a.id, c.id]);
    let no_series = BookingFilter { series: Some(SeriesId::generate(t0())), ..all };
    assert!(s.list_bookings(t.id, &no_series).await.unwrap().is_empty());
}

pub async fn booking_change_timeline_and_jobs_commit_together(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let lane = Lane::room(t.id, r.id);
    let rec = record(t.id, r.id, t0());
    let stored = s
        .insert_booking(
            &rec,
            &[event("observed"), event("planned")],
            &[job(&lane, "topdesk.create", json!({"b": 1}))],
            t0(),
        )
        .await
        .unwrap();
    let timeline = s.timeline(t.id, rec.id).await.unwrap();
    assert_eq!(timeline.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["observed", "planned"]);
    assert!(timeline.iter().all(|e| e.correlation_id == rec.correlation_id && e.booking_id == rec.id));
    assert_eq!(timeline[0].detail, json!({"why": "observed"}));
    assert_eq!(timeline[0].side, Some(Side::Exchange));
    let queued = s.list_jobs(t.id, JobStatus::Queued).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].kind, "topdesk.create");
    assert_eq!(queued[0].lane, format!("room:{}", r.id));

    // A stale update writes neither its timeline entry nor its job.
    let stale = BookingRecord { version: 7, ..stored.clone() };
    let err =
        s.update_booking(&stale, &[event("lost")], &[job(&lane, "lost", json!({}))], t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { expected: 7, actual: 1, .. }), "{err:?}");
    assert_eq!(s.timeline(t.id, rec.id).await.unwrap().len(), 2);
    assert_eq!(s.list_jobs(t.id, JobStatus::Queued).await.unwrap().len(), 1);

    // A job for a tenant that does not exist fails the whole insert: no booking without its follow-up.
    let ghost_lane = Lane::room(TenantId::generate(t0()), r.id);
    let rec2 = record(t.id, r.id, t0());
    assert!(
        s.insert_booking(&rec2, &[event("observed")], &[job(&ghost_lane, "x", json!({}))], t0())
            .await
            .is_err()
    );
    assert!(matches!(s.get_booking(t.id, rec2.id).await, Err(StoreError::NotFound { .. })));
    assert!(s.timeline(t.id, rec2.id).await.unwrap().is_empty());

    // A good update writes all three.
    let moved = BookingRecord { start: t0() + Duration::hours(1), end: t0() + Duration::hours(2), ..stored };
    s.update_booking(&moved, &[event("moved")], &[job(&lane, "topdesk.update", json!({}))], t0())
        .await
        .unwrap();
    assert_eq!(s.timeline(t.id, rec.id).await.unwrap().len(), 3);
    assert_eq!(s.list_jobs(t.id, JobStatus::Queued).await.unwrap().len(), 2);
}

pub async fn timeline_and_audit_log_are_append_only(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let rec = record(t.id, r.id, t0());
    s.insert_booking(&rec, &[event("observed")], &[], t0()).await.unwrap();
    s.append_audit(&audit(Some(t.id), "room.add", "room-4.12@contoso.com")).await.unwrap();
    let raw = h.raw().await;
    for sql in [
        "UPDATE audit_log SET actor = 'forger'",
        "DELETE FROM audit_log",
        "UPDATE booking_events SET kind = 'x'",
        "DELETE FROM booking_events",
    ] {
        let err = raw.execute(sql).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(s.list_audit(t.id, 10).await.unwrap()[0].actor, "cli");
    assert_eq!(s.timeline(t.id, rec.id).await.unwrap()[0].kind, "observed");
}

pub async fn series_upsert_and_read(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let mut series = Series {
        id: SeriesId::generate(t0()),
        tenant_id: t.id,
        room_id: r.id,
        organizer: email("manager@contoso.com"),
        ical_uid: Some("uid-s".into()),
        exchange_master_event_id: Some("master-1".into()),
        topdesk_series_id: None,
        pattern: json!({"pattern": {"type": "weekly", "daysOfWeek": ["monday"]}}),
        time_zone: TimeZoneName::parse("America/New_York").unwrap(),
        created_at: t0(),
        updated_at: t0(),
    };
    s.upsert_series(&series).await.unwrap();
    assert_eq!(s.get_series(t.id, series.id).await.unwrap(), series);
    series.topdesk_series_id = Some("td-series-9".into());
    series.updated_at = t0() + Duration::hours(1);
    s.upsert_series(&series).await.unwrap();
    assert_eq!(s.get_series(t.id, series.id).await.unwrap(), series);
    let other = tenant(s, "fabrikam").await;
    assert!(matches!(s.get_series(other.id, series.id).await, Err(StoreError::NotFound { .. })));
    // Another tenant's upsert with the same id writes nothing and says so.
    let taken = Series { tenant_id: other.id, organizer: email("mallory@fabrikam.com"), ..series.clone() };
    assert!(matches!(s.upsert_series(&taken).await, Err(StoreError::AlreadyExists { .. })));
    assert_eq!(s.get_series(t.id, series.id).await.unwrap(), series);
}

pub async fn cursors_are_per_tenant(h: &Harness) {
    let s = &*h.store;
    let (t, _) = setup(h).await;
    let other = tenant(s, "fabrikam").await;
    assert_eq!(s.get_cursor(t.id, "graph.delta.room-4.12").await.unwrap(), None);
    s.set_cursor(t.id, "graph.delta.room-4.12", "link-1", t0()).await.unwrap();
    s.set_cursor(t.id, "graph.delta.room-4.12", "link-2", t0()).await.unwrap();
    s.set_cursor(other.id, "graph.delta.room-4.12", "theirs", t0()).await.unwrap();
    assert_eq!(s.get_cursor(t.id, "graph.delta.room-4.12").await.unwrap().as_deref(), Some("link-2"));
    assert_eq!(s.get_cursor(other.id, "graph.delta.room-4.12").await.unwrap().as_deref(), Some("theirs"));
}

pub async fn audit_log_is_per_tenant_newest_first(h: &Harness) {
    let s = &*h.store;
    let (t, _) = setup(h).await;
    let other = tenant(s, "fabrikam").await;
    for i in 0..3 {
        s.append_audit(&audit(Some(t.id), &format!("action.{i}"), "x")).await.unwrap();
    }
    s.append_audit(&audit(Some(other.id), "theirs", "y")).await.unwrap();
    let operator = s.append_audit(&audit(None, "keys.rotate", "all")).await.unwrap();
    assert_eq!(operator.tenant_id, None);
    let log = s.list_audit(t.id, 2).await.unwrap();
    assert_eq!(log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["action.2", "action.1"]);
    assert!(log[0].id > log[1].id);
    assert_eq!(s.list_audit(other.id, 10).await.unwrap().len(), 1);
}

pub async fn secrets_store_ciphertext_per_tenant_and_rotate_atomically(h: &Harness) {
    let s = &*h.store;
    let (t, _) = setup(h).await;
    let other = tenant(s, "fabrikam").await;
    let row = |tenant: TenantId, name: &str, key: &str, ct: &[u8]| SealedSecretRow {
        tenant_id: tenant,
        name: name.into(),
        key_id: key.into(),
        nonce: vec![7; 12],
        ciphertext: ct.to_vec(),
        updated_at: t0(),
    };
    s.put_secret(
        &row(t.id, "graph.client_secret", "k-old", b"ct-1"),
        &audit(Some(t.id), "secret.set", "graph.client_secret"),
    )
    .await
    .unwrap();
    s.put_secret(
        &row(t.id, "topdesk.app_password", "k-old", b"ct-2"),
        &audit(Some(t.id), "secret.set", "topdesk"),
    )
    .await
    .unwrap();
    s.put_secret(
        &row(other.id, "graph.client_secret", "k-old", b"ct-3"),
        &audit(Some(other.id), "secret.set", "g"),
    )
    .await
    .unwrap();
    // Replacing keeps one row.
    s.put_secret(&row(t.id, "graph.client_secret", "k-old", b"ct-1b"), &audit(Some(t.id), "secret.set", "g"))
        .await
        .unwrap();
    assert_eq!(s.get_secret(t.id, "graph.client_secret").await.unwrap().ciphertext, b"ct-1b");
    assert_eq!(s.get_secret(other.id, "graph.client_secret").await.unwrap().ciphertext, b"ct-3");
    let names: Vec<_> = s.list_secrets(t.id).await.unwrap().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["graph.client_secret", "topdesk.app_password"]);
    assert_eq!(s.list_audit(t.id, 10).await.unwrap().len(), 3, "each put is audited");
    assert!(
        format!("{:?}", s.get_secret(t.id, "graph.client_secret").await.unwrap()).contains("ciphertext_len")
    );

    let all = s.all_secrets_for_rotation().await.unwrap();
    assert_eq!(all.len(), 3);
    // A rotation where one row changed meanwhile writes nothing at all.
    let mut batch: Vec<_> = all
        .iter()
        .map(|r| (SealedSecretRow { key_id: "k-new".into(), ..r.clone() }, "k-old".into()))
        .collect();
    batch[2].1 = "k-stale".into();
    let err = s.rotate_secrets(&batch, &audit(None, "keys.rotate", "all")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert!(s.all_secrets_for_rotation().await.unwrap().iter().all(|r| r.key_id == "k-old"));
    batch[2].1 = "k-old".into();
    s.rotate_secrets(&batch, &audit(None, "keys.rotate", "all")).await.unwrap();
    assert!(s.all_secrets_for_rotation().await.unwrap().iter().all(|r| r.key_id == "k-new"));
}

pub async fn every_read_is_scoped_by_tenant(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let intruder = tenant(s, "fabrikam").await;
    let mut rec = record(t.id, r.id, t0());
    rec.topdesk.reservation_id = Some("res-9".into());
    let lane = Lane::room(t.id, r.id);
    s.insert_booking(&rec, &[event("observed")], &[job(&lane, "k", json!({}))], t0()).await.unwrap();
    s.put_secret(
        &SealedSecretRow {
            tenant_id: t.id,
            name: "n".into(),
            key_id: "k".into(),
            nonce: vec![0; 12],
            ciphertext: vec![1],
            updated_at: t0(),
        },
        &audit(Some(t.id), "secret.set", "n"),
    )
    .await
    .unwrap();
    s.put_tenant_settings(
        t.id,
        r#"{"policy":"theirs"}"#,
        Some(0),
        t0(),
        &audit(Some(t.id), "settings.put", "x"),
    )
    .await
    .unwrap();
    let job_id = s.list_jobs(t.id, JobStatus::Queued).await.unwrap()[0].id;
    let i = intruder.id;
    assert_eq!(s.get_tenant_settings(i).await.unwrap(), None);
    assert!(matches!(s.get_booking(i, rec.id).await, Err(StoreError::NotFound { .. })));
    assert!(s.find_booking(i, &BookingKey::TopdeskReservation("res-9")).await.unwrap().is_none());
    assert!(
        s.list_bookings(i, &BookingFilter { include_cancelled: true, ..Default::default() })
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.timeline(i, rec.id).await.unwrap().is_empty());
    assert!(s.list_rooms(i).await.unwrap().is_empty());
    assert!(matches!(s.get_room(i, r.id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(s.room_by_mailbox(i, &r.mailbox).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(s.set_room_enabled(i, r.id, false, t0()).await, Err(StoreError::NotFound { .. })));
    assert!(s.get_room(t.id, r.id).await.unwrap().enabled, "the intruder could not disable it");
    assert!(matches!(s.get_secret(i, "n").await, Err(StoreError::NotFound { .. })));
    assert!(s.list_secrets(i).await.unwrap().is_empty());
    assert!(s.list_audit(i, 10).await.unwrap().is_empty());
    assert!(matches!(s.get_job(i, job_id).await, Err(StoreError::NotFound { .. })));
    assert!(s.list_jobs(i, JobStatus::Queued).await.unwrap().is_empty());
    // An update that names the booking under the wrong tenant finds nothing to update.
    let forged = BookingRecord { tenant_id: i, ..s.get_booking(t.id, rec.id).await.unwrap() };
    assert!(matches!(s.update_booking(&forged, &[], &[], t0()).await, Err(StoreError::NotFound { .. })));
}

/// Runs `workers` workers (spread over `stores`) until `total` jobs are done; checks that no two jobs of
/// one lane ever run at once and that each lane's jobs run in enqueue order.
async fn run_workers(stores: Vec<Arc<dyn Store>>, workers: usize, lanes: &[Lane], per_lane: usize) {
    let total = lanes.len() * per_lane;
    let running: Arc<HashMap<String, AtomicBool>> =
        Arc::new(lanes.iter().map(|l| (l.key.clone(), AtomicBool::new(false))).collect());
    let seen: Arc<std::sync::Mutex<HashMap<String, Vec<u64>>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..workers {
        let store = stores[w % stores.len()].clone();
        let (running, seen, done) = (running.clone(), seen.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            let name = format!("worker-{w}");
            let mut idle = 0;
            while done.load(Ordering::SeqCst) < total {
                let Some(claimed) = store.claim_job(&name, t0(), Duration::minutes(5)).await.unwrap() else {
                    idle += 1;
                    assert!(idle < 20_000, "workers starved");
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    continue;
                };
                let lane = claimed.job.lane.clone();
                assert!(!running[&lane].swap(true, Ordering::SeqCst), "two jobs of lane {lane} ran at once");
                let seq = claimed.job.payload["seq"].as_u64().unwrap();
                seen.lock().unwrap().entry(lane.clone()).or_default().push(seq);
                tokio::task::yield_now().await;
                running[&lane].store(false, Ordering::SeqCst);
                store.complete_job(&claimed.lease, t0()).await.unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    for lane in lanes {
        let order = &seen[&lane.key];
        let expected: Vec<u64> = (0..per_lane as u64).collect();
        assert_eq!(order, &expected, "lane {} ran out of order or twice", lane.key);
    }
}

async fn enqueue_lanes(store: &dyn Store, tenant: &Tenant, rooms: &[Room], per_lane: usize) -> Vec<Lane> {
    let lanes: Vec<Lane> = rooms.iter().map(|r| Lane::room(tenant.id, r.id)).collect();
    // Interleave the lanes so a naive "oldest first" claim would hand out neighbours of one lane.
    for seq in 0..per_lane {
        for lane in &lanes {
            store.enqueue(&job(lane, "sync", json!({"seq": seq})), t0()).await.unwrap();
        }
    }
    lanes
}

async fn three_rooms(h: &Harness) -> (Tenant, Vec<Room>) {
    let (t, r) = setup(h).await;
    let r2 = room(&*h.store, &t, "b@contoso.com", "loc-b").await;
    let r3 = room(&*h.store, &t, "c@contoso.com", "loc-c").await;
    (t, vec![r, r2, r3])
}

pub async fn queue_keeps_lane_order_without_overlap_under_8_workers(h: &Harness) {
    let (t, rooms) = three_rooms(h).await;
    let lanes = enqueue_lanes(&*h.store, &t, &rooms, 200).await;
    run_workers(vec![h.store.clone()], 8, &lanes, 200).await;
    assert_eq!(h.store.list_jobs(t.id, JobStatus::Done).await.unwrap().len(), 600);
    assert!(h.store.list_jobs(t.id, JobStatus::Queued).await.unwrap().is_empty());
}

pub async fn queue_lane_order_holds_across_two_pools(h: &Harness) {
    let (t, rooms) = three_rooms(h).await;
    let lanes = enqueue_lanes(&*h.store, &t, &rooms, 200).await;
    let second = h.second_store().await;
    run_workers(vec![h.store.clone(), second], 8, &lanes, 200).await;
    assert_eq!(h.store.list_jobs(t.id, JobStatus::Done).await.unwrap().len(), 600);
}

pub async fn a_restarted_instance_releases_its_own_jobs_only(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let (a, b) = (Lane::room(t.id, r.id), Lane::tenant(t.id));
    let mine = s.enqueue(&job(&a, "sync", json!({})), t0()).await.unwrap();
    let theirs = s.enqueue(&job(&b, "sync", json!({})), t0()).await.unwrap();
    let first = s.claim_job("orb-1/g0/w0", t0(), Duration::minutes(5)).await.unwrap().unwrap();
    let second = s.claim_job("orb-10/g0/w0", t0(), Duration::minutes(5)).await.unwrap().unwrap();
    assert_eq!((first.job.id, second.job.id), (mine, theirs));
    assert!(matches!(s.release_jobs_of("", t0()).await, Err(StoreError::InvalidArgument { .. })));
    // "orb-1/" must not match "orb-10/...".
    assert_eq!(s.release_jobs_of("orb-1/", t0() + Duration::seconds(1)).await.unwrap(), 1);
    let released = s.get_job(t.id, mine).await.unwrap();
    assert_eq!(released.status, JobStatus::Queued);
    assert_eq!(released.attempts, 1, "attempts are kept");
    assert_eq!(s.get_job(t.id, theirs).await.unwrap().status, JobStatus::Running);
    // The old holder's lease is gone; the job runs again at once, before its lease would have expired.
    assert!(matches!(
        s.complete_job(&first.lease, t0() + Duration::seconds(2)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let again = s.claim_job("orb-1/g0/w1", t0() + Duration::seconds(2), Duration::minutes(5)).await.unwrap();
    assert_eq!(again.unwrap().job.id, mine);
    assert_eq!(s.release_jobs_of("nobody/", t0()).await.unwrap(), 0);
}

pub async fn expired_lease_is_run_again_and_old_holder_is_refused(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let lane = Lane::room(t.id, r.id);
    let id = s.enqueue(&job(&lane, "sync", json!({})), t0()).await.unwrap();
    let first = s.claim_job("w1", t0(), Duration::seconds(30)).await.unwrap().unwrap();
    assert_eq!(first.job.id, id);
    assert_eq!(first.job.attempts, 1);
    assert_eq!(first.job.lease_owner.as_deref(), Some("w1"));
    assert!(s.claim_job("w2", t0(), Duration::seconds(30)).await.unwrap().is_none(), "lane is busy");
    assert_eq!(s.requeue_expired(t0() + Duration::seconds(29), 5).await.unwrap(), 0, "lease still valid");
    assert_eq!(s.requeue_expired(t0() + Duration::seconds(31), 5).await.unwrap(), 1);
    let requeued = s.get_job(t.id, id).await.unwrap();
    assert_eq!(requeued.status, JobStatus::Queued);
    assert!(requeued.last_error.as_deref().unwrap().contains("lease expired"));
    let second =
        s.claim_job("w2", t0() + Duration::seconds(32), Duration::seconds(30)).await.unwrap().unwrap();
    assert_eq!(second.job.id, id);
    assert_eq!(second.job.attempts, 2);
    // The first worker wakes up: its lease is gone, whatever it tries.
    let later = t0() + Duration::seconds(33);
    assert!(matches!(s.complete_job(&first.lease, later).await, Err(StoreError::LeaseLost { .. })));
    assert!(matches!(
        s.heartbeat(&first.lease, later, Duration::seconds(30)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(s.fail_job(&first.lease, "x", None, later).await, Err(StoreError::LeaseLost { .. })));
    s.complete_job(&second.lease, later).await.unwrap();
    let finished = s.get_job(t.id, id).await.unwrap();
    assert_eq!(finished.status, JobStatus::Done);
    assert_eq!(finished.finished_at, Some(later));
    // A job whose worker keeps dying is dead after max_attempts.
    let id2 = s.enqueue(&job(&lane, "sync", json!({})), later).await.unwrap();
    let mut now = later;
    for attempt in 1..=2 {
        let c = s.claim_job("w", now, Duration::seconds(10)).await.unwrap().unwrap();
        assert_eq!(c.job.attempts, attempt);
        now += Duration::seconds(11);
        s.requeue_expired(now, 2).await.unwrap();
    }
    let dead = s.get_job(t.id, id2).await.unwrap();
    assert_eq!(dead.status, JobStatus::Dead);
    assert!(dead.last_error.unwrap().contains("last allowed attempt"));
}

pub async fn failing_job_backs_off_then_dies_and_blocks_its_lane_meanwhile(h: &Harness) {
    let s = &*h.store;
    let (t, rooms) = three_rooms(h).await;
    let lane = Lane::room(t.id, rooms[0].id);
    let other_lane = Lane::room(t.id, rooms[1].id);
    let id = s.enqueue(&job(&lane, "flaky", json!({})), t0()).await.unwrap();
    let next_in_lane = s.enqueue(&job(&lane, "after", json!({})), t0()).await.unwrap();
    let other = s.enqueue(&job(&other_lane, "other", json!({})), t0()).await.unwrap();
    let policy =
        RetryPolicy { base: Duration::seconds(2), max_delay: Duration::minutes(10), max_attempts: 4 };
    let mut now = t0();
    let mut delays = Vec::new();
    let mut saw_other = false;
    loop {
        let claimed = s.claim_job("w", now, Duration::minutes(1)).await.unwrap().expect("a job is due");
        if claimed.job.id == other {
            saw_other = true;
            s.complete_job(&claimed.lease, now).await.unwrap();
            continue;
        }
        assert_eq!(claimed.job.id, id, "the lane's head runs first, the next job of its lane waits");
        let retry_at = policy.next_run(claimed.job.attempts, now, 0.5);
        let outcome = s.fail_job(&claimed.lease, "TOPdesk answered 503", retry_at, now).await.unwrap();
        match outcome {
            JobOutcome::RetryAt(at) => {
                delays.push(at - now);
                // While the head waits for its retry, its lane stays blocked: only other lanes run.
                while let Some(c) =
                    s.claim_job("w", at - Duration::milliseconds(1), Duration::minutes(1)).await.unwrap()
                {
                    assert_ne!(c.job.id, next_in_lane, "a later job overtook a retrying one in its lane");
                    assert_eq!(c.job.id, other);
                    saw_other = true;
                    s.complete_job(&c.lease, now).await.unwrap();
                }
                let waiting = s.get_job(t.id, id).await.unwrap();
                assert_eq!(waiting.status, JobStatus::Queued);
                assert_eq!(waiting.run_at, at);
                now = at;
            }
            JobOutcome::Dead => break,
        }
    }
    assert!(saw_other);
    assert_eq!(delays.len(), 3, "attempts 1..3 retried, the 4th is the last");
    assert!(delays.windows(2).all(|w| w[1] > w[0]), "delays grow: {delays:?}");
    let dead = s.get_job(t.id, id).await.unwrap();
    assert_eq!(dead.status, JobStatus::Dead);
    assert_eq!(dead.attempts, 4);
    assert_eq!(dead.last_error.as_deref(), Some("TOPdesk answered 503"));
    assert_eq!(s.list_jobs(t.id, JobStatus::Dead).await.unwrap().len(), 1);
    // With the head dead, the lane moves on.
    let next = s.claim_job("w", now, Duration::minutes(1)).await.unwrap().unwrap();
    assert_eq!(next.job.id, next_in_lane);
}

pub async fn queue_stats_count_every_tenants_jobs_by_status_and_date_the_oldest_due_one(h: &Harness) {
    let s = &*h.store;
    let (t, rooms) = three_rooms(h).await;
    let other = tenant(s, "fabrikam").await;
    assert_eq!(s.queue_stats(t0()).await.unwrap(), QueueStats::default(), "an empty queue");
    let lane = |i: usize| Lane::room(t.id, rooms[i].id);
    // Due at t0 - 5 min (enqueued then), due at t0, not due before t0 + 1 h, and another tenant's job.
    let early = s.enqueue(&job(&lane(0), "early", json!({})), t0() - Duration::minutes(5)).await.unwrap();
    s.enqueue(&job(&lane(1), "now", json!({})), t0()).await.unwrap();
    let mut later = job(&lane(2), "later", json!({}));
    later.run_at = Some(t0() + Duration::hours(1));
    s.enqueue(&later, t0()).await.unwrap();
    s.enqueue(&job(&Lane::tenant(other.id), "theirs", json!({})), t0()).await.unwrap();
    let stats = s.queue_stats(t0()).await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (4, 0, 0));
    assert_eq!(stats.oldest_due, Some(t0() - Duration::minutes(5)));
    // Before anything was due, nothing is the oldest due job; the counts do not depend on `now`.
    let before = s.queue_stats(t0() - Duration::hours(1)).await.unwrap();
    assert_eq!((before.queued, before.oldest_due), (4, None));

    // The oldest is claimed (running), then dies: the next due one is the oldest.
    let claimed = s.claim_job("w", t0(), Duration::minutes(1)).await.unwrap().unwrap();
    assert_eq!(claimed.job.id, early);
    let stats = s.queue_stats(t0()).await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (3, 1, 0));
    assert_eq!(stats.oldest_due, Some(t0()));
    s.fail_job(&claimed.lease, "gave up", None, t0()).await.unwrap();
    let stats = s.queue_stats(t0()).await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (3, 0, 1));
    // Done jobs are not counted; the job waiting for its run_at becomes due in time.
    while let Some(c) = s.claim_job("w", t0(), Duration::minutes(1)).await.unwrap() {
        s.complete_job(&c.lease, t0()).await.unwrap();
    }
    let stats = s.queue_stats(t0() + Duration::hours(2)).await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (1, 0, 1));
    assert_eq!(stats.oldest_due, Some(t0() + Duration::hours(1)));
}

pub async fn jobs_wait_for_run_at_and_heartbeat_extends_the_lease(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let lane = Lane::tenant(t.id);
    let mut later = job(&lane, "subscriptions.renew", json!({"room": r.id.to_string()}));
    later.run_at = Some(t0() + Duration::minutes(10));
    let id = s.enqueue(&later, t0()).await.unwrap();
    assert!(s.claim_job("w", t0(), Duration::seconds(30)).await.unwrap().is_none(), "not due yet");
    let c = s.claim_job("w", t0() + Duration::minutes(10), Duration::seconds(30)).await.unwrap().unwrap();
    assert_eq!(c.job.id, id);
    assert_eq!(c.job.payload["room"], json!(r.id.to_string()));
    let t1 = t0() + Duration::minutes(10) + Duration::seconds(25);
    s.heartbeat(&c.lease, t1, Duration::seconds(30)).await.unwrap();
    assert_eq!(s.get_job(t.id, id).await.unwrap().lease_expires_at, Some(t1 + Duration::seconds(30)));
    // Past the first lease's end but inside the extended one: not requeued.
    assert_eq!(s.requeue_expired(t1 + Duration::seconds(10), 5).await.unwrap(), 0);
    s.complete_job(&c.lease, t1 + Duration::seconds(20)).await.unwrap();
    assert!(matches!(s.complete_job(&c.lease, t1).await, Err(StoreError::LeaseLost { .. })), "done twice");
}

fn subscription(t: &Tenant, r: &Room, id: &str, expires: DateTime<Utc>) -> SubscriptionRow {
    SubscriptionRow {
        id: id.into(),
        tenant_id: t.id,
        room_id: r.id,
        resource: format!("users/{}/events", r.mailbox),
        client_state_hash: vec![0xab; 32],
        rich: true,
        encryption_certificate_id: Some("enc-20261123-ABCDEF01".into()),
        expires_at: expires,
        created_at: t0(),
        updated_at: t0(),
        watermark: None,
    }
}

pub async fn subscriptions_round_trip_renew_and_delete(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let other = tenant(s, "fabrikam").await;
    let a = subscription(&t, &r, "sub-a", t0() + Duration::days(3));
    let b = subscription(&t, &r, "sub-b", t0() + Duration::days(1));
    s.upsert_subscription(&a).await.unwrap();
    s.upsert_subscription(&b).await.unwrap();
    assert_eq!(s.get_subscription(t.id, "sub-a").await.unwrap(), a);
    let ids: Vec<_> = s.list_subscriptions(t.id).await.unwrap().into_iter().map(|x| x.id).collect();
    assert_eq!(ids, ["sub-b", "sub-a"], "listed by expiry");
    // Renewal and a certificate switch replace the row.
    let renewed = SubscriptionRow {
        expires_at: t0() + Duration::days(6),
        encryption_certificate_id: Some("enc-20261201-12345678".into()),
        updated_at: t0() + Duration::hours(1),
        ..a.clone()
    };
    s.upsert_subscription(&renewed).await.unwrap();
    assert_eq!(s.get_subscription(t.id, "sub-a").await.unwrap(), renewed);
    // (The hash is 32 bytes of 171; a UUID in the row may contain "171" by chance, a run of them not.)
    assert!(!format!("{renewed:?}").contains("171, 171"), "Debug shows no clientState hash bytes");
    // Another tenant neither sees nor can take over the row.
    assert!(matches!(s.get_subscription(other.id, "sub-a").await, Err(StoreError::NotFound { .. })));
    assert!(matches!(s.delete_subscription(other.id, "sub-a").await, Err(StoreError::NotFound { .. })));
    let taken = SubscriptionRow {
        tenant_id: other.id,
        resource: "users/x@fabrikam.com/events".into(),
        ..renewed.clone()
    };
    assert!(matches!(s.upsert_subscription(&taken).await, Err(StoreError::AlreadyExists { .. })));
    assert_eq!(
        s.get_subscription(t.id, "sub-a").await.unwrap(),
        renewed,
        "the other tenant's upsert wrote nothing"
    );
    s.delete_subscription(t.id, "sub-a").await.unwrap();
    assert!(matches!(s.get_subscription(t.id, "sub-a").await, Err(StoreError::NotFound { .. })));
    assert_eq!(s.list_subscriptions(t.id).await.unwrap().len(), 1);
}

pub async fn ews_subscription_watermark_round_trips_and_is_updated_by_an_upsert(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    // An EWS push subscription: no certificate, no watermark before the first notification.
    let ews = SubscriptionRow {
        resource: format!("ews:{}/calendar", r.mailbox),
        rich: false,
        encryption_certificate_id: None,
        ..subscription(&t, &r, "AAMkADI5ZjY0-ews", t0() + Duration::days(30))
    };
    s.upsert_subscription(&ews).await.unwrap();
    assert_eq!(s.get_subscription(t.id, &ews.id).await.unwrap().watermark, None);
    let heard = SubscriptionRow {
        watermark: Some("AQAAAOpvG0LURVdOhQkPOWZLPcI8EgAAAAAAAAE=".into()),
        updated_at: t0() + Duration::minutes(5),
        ..ews.clone()
    };
    s.upsert_subscription(&heard).await.unwrap();
    assert_eq!(s.get_subscription(t.id, &ews.id).await.unwrap(), heard, "the watermark round-trips");
    let later = SubscriptionRow {
        watermark: Some("ywwAAAAAAAA=".into()),
        updated_at: t0() + Duration::minutes(10),
        ..heard.clone()
    };
    s.upsert_subscription(&later).await.unwrap();
    assert_eq!(s.get_subscription(t.id, &ews.id).await.unwrap(), later, "an upsert replaces the watermark");
    // Listed with it; a Graph row beside it keeps `None`.
    let graph = subscription(&t, &r, "graph-sub", t0() + Duration::days(1));
    s.upsert_subscription(&graph).await.unwrap();
    let listed = s.list_subscriptions(t.id).await.unwrap();
    assert_eq!(listed, [graph, later.clone()]);
    // An upsert back to `None` (a fresh subscription replacing a lost one) clears it.
    let fresh = SubscriptionRow { watermark: None, ..later };
    s.upsert_subscription(&fresh).await.unwrap();
    assert_eq!(s.get_subscription(t.id, &ews.id).await.unwrap().watermark, None);
}

pub async fn an_ews_inbox_item_and_its_job_are_accepted(h: &Harness) {
    use orb_store::jobs::{EwsNotificationItem, EwsNotificationJob, JobPayload as _};
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let lane = Lane::room(t.id, r.id);
    let payload = json!({
        "subscription_id": "ews-sub",
        "previous_watermark": "w0",
        "more_events": false,
        "events": [{"kind": "StatusEvent", "watermark": "w1"}]
    });
    let item = NewInboxItem {
        tenant_id: t.id,
        source: InboxSource::Ews,
        received_at: t0(),
        remote_ip: Some("10.1.2.3".into()),
        payload: payload.clone(),
    };
    let job =
        EwsNotificationJob { subscription_id: "ews-sub".into(), inbox_id: None }.to_job(lane, None, None);
    assert_eq!(job.kind, "ews.notification");
    let (inbox_id, job_id) = s.accept_inbox(&item, &job, t0()).await.unwrap();
    let stored = s.get_inbox(t.id, inbox_id).await.unwrap();
    assert_eq!(stored.source, InboxSource::Ews);
    assert_eq!(stored.payload, payload);
    let kept: EwsNotificationItem = serde_json::from_value(stored.payload).unwrap();
    assert_eq!(kept.last_watermark(), Some("w1"));
    let queued = s.get_job(t.id, job_id).await.unwrap();
    assert_eq!(queued.kind, "ews.notification");
    let parsed = EwsNotificationJob::of(&queued).unwrap();
    assert_eq!(parsed.subscription_id, "ews-sub");
    assert_eq!(parsed.inbox_id(), Ok(inbox_id), "the store points the job at its inbox item");
    // The same notification delivered again is kept again: the store does not deduplicate.
    let (again, _) = s.accept_inbox(&item, &job, t0()).await.unwrap();
    assert!(again > inbox_id);
    // The database still refuses a source it does not know.
    let raw = h.raw().await;
    let err = raw
        .execute("UPDATE inbox SET source = 'carrier-pigeon' WHERE id = (SELECT MIN(id) FROM inbox)")
        .await;
    assert!(err.is_err(), "the CHECK constraint still holds: {err:?}");
}

pub async fn inbox_item_and_its_job_commit_together(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let lane = Lane::room(t.id, r.id);
    let item = NewInboxItem {
        tenant_id: t.id,
        source: InboxSource::Graph,
        received_at: t0(),
        remote_ip: Some("127.0.0.1".into()),
        payload: json!({"subscriptionId": "sub-a", "changeType": "updated"}),
    };
    let (inbox_id, job_id) =
        s.accept_inbox(&item, &job(&lane, "graph.notification", json!({"k": 1})), t0()).await.unwrap();
    let stored = s.get_inbox(t.id, inbox_id).await.unwrap();
    assert_eq!(stored.payload, item.payload);
    assert_eq!(stored.source, InboxSource::Graph);
    assert_eq!(stored.remote_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(stored.processed_at, None);
    let queued = s.get_job(t.id, job_id).await.unwrap();
    assert_eq!(queued.payload, json!({"k": 1, "inbox_id": inbox_id}), "the job points at its inbox item");
    s.mark_inbox_processed(t.id, inbox_id, t0() + Duration::seconds(2)).await.unwrap();
    assert_eq!(s.get_inbox(t.id, inbox_id).await.unwrap().processed_at, Some(t0() + Duration::seconds(2)));
    // A job for a tenant that does not exist fails the whole intake write: no item without its job.
    let ghost = Lane::room(TenantId::generate(t0()), r.id);
    let err = s.accept_inbox(&item, &job(&ghost, "x", json!({})), t0()).await;
    assert!(err.is_err());
    assert!(matches!(s.get_inbox(t.id, inbox_id + 1).await, Err(StoreError::NotFound { .. })));
    // Tenant scoping.
    let other = tenant(s, "fabrikam").await;
    assert!(matches!(s.get_inbox(other.id, inbox_id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(
        s.mark_inbox_processed(other.id, inbox_id, t0()).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn push_token_hash_is_per_tenant_and_audited(h: &Harness) {
    let s = &*h.store;
    let (t, _) = setup(h).await;
    let other = tenant(s, "fabrikam").await;
    assert_eq!(s.push_token_hash(t.id).await.unwrap(), None);
    s.set_push_token_hash(t.id, &[1; 32], &audit(Some(t.id), "push_token.set", "topdesk")).await.unwrap();
    s.set_push_token_hash(t.id, &[2; 32], &audit(Some(t.id), "push_token.set", "topdesk")).await.unwrap();
    assert_eq!(s.push_token_hash(t.id).await.unwrap(), Some(vec![2; 32]));
    assert_eq!(s.push_token_hash(other.id).await.unwrap(), None);
    assert_eq!(s.list_audit(t.id, 10).await.unwrap().len(), 2);
}

pub async fn push_token_revoke_forgets_only_that_tenants_token_with_audit(h: &Harness) {
    let s = &*h.store;
    let (t, _) = setup(h).await;
    let other = tenant(s, "fabrikam").await;
    s.set_push_token_hash(t.id, &[1; 32], &audit(Some(t.id), "push_token.create", "topdesk")).await.unwrap();
    s.set_push_token_hash(other.id, &[2; 32], &audit(Some(other.id), "push_token.create", "topdesk"))
        .await
        .unwrap();
    s.delete_push_token(t.id, &audit(Some(t.id), "push_token.revoke", "topdesk")).await.unwrap();
    assert_eq!(s.push_token_hash(t.id).await.unwrap(), None);
    assert_eq!(s.push_token_hash(other.id).await.unwrap(), Some(vec![2; 32]), "another tenant's stays");
    assert_eq!(s.list_audit(t.id, 10).await.unwrap()[0].action, "push_token.revoke");
    // Nothing left to revoke: refused, and no audit entry.
    let again = s.delete_push_token(t.id, &audit(Some(t.id), "push_token.revoke", "topdesk")).await;
    assert!(matches!(again, Err(StoreError::NotFound { .. })), "{again:?}");
    assert_eq!(s.list_audit(t.id, 10).await.unwrap().len(), 2);
}

/// Claims the only runnable job (which must be `id`).
async fn claim_only(s: &dyn Store, id: orb_store::JobId) -> orb_store::ClaimedJob {
    let claimed = s.claim_job("w", t0(), Duration::minutes(1)).await.unwrap().expect("a runnable job");
    assert_eq!(claimed.job.id, id);
    claimed
}

/// Enqueues a job and makes it dead (claimed once, failed without a retry).
async fn dead_job(s: &dyn Store, lane: &Lane, kind: &str) -> orb_store::JobId {
    let id = s.enqueue(&job(lane, kind, json!({"person": "anna@contoso.com"})), t0()).await.unwrap();
    let claimed = claim_only(s, id).await;
    s.fail_job(&claimed.lease, "TOPdesk answered 500", None, t0()).await.unwrap();
    id
}

pub async fn only_dead_jobs_are_retried_or_dismissed_and_unknown_ids_are_refused(h: &Harness) {
    let s = &*h.store;
    let (t, rooms) = three_rooms(h).await;
    let other = tenant(s, "fabrikam").await;
    let lanes: Vec<Lane> = rooms.iter().map(|r| Lane::room(t.id, r.id)).collect();
    let first_dead = dead_job(s, &lanes[0], "a").await;
    let second_dead = dead_job(s, &lanes[1], "b").await;
    let foreign_dead = dead_job(s, &Lane::tenant(other.id), "c").await;
    let done = s.enqueue(&job(&lanes[2], "done", json!({})), t0()).await.unwrap();
    let claimed = claim_only(s, done).await;
    s.complete_job(&claimed.lease, t0()).await.unwrap();
    let running = s.enqueue(&job(&lanes[2], "running", json!({})), t0()).await.unwrap();
    claim_only(s, running).await;
    let later = NewJob { run_at: Some(t0() + Duration::hours(1)), ..job(&lanes[1], "queued", json!({})) };
    let queued = s.enqueue(&later, t0()).await.unwrap();
    let audits = |tenant: TenantId| async move { s.list_audit(tenant, 100).await.unwrap().len() };
    let action = |tenant: &Tenant, what: &str| audit(Some(tenant.id), what, "job");

    // Refusals: unknown (or another tenant's) → NotFound; not dead → NotDead with its state. Nothing changes.
    let refusals: &[(orb_store::JobId, Option<&str>)] = &[
        (queued, Some("queued")),
        (running, Some("running")),
        (done, Some("done")),
        (foreign_dead, None),
        (orb_store::JobId(987_654), None),
    ];
    for &(id, state) in refusals {
        let before = s.get_job(t.id, id).await.ok();
        let retried = s.retry_dead_jobs(t.id, Some(id), t0(), &action(&t, "jobs.retry")).await;
        let dismissed = s.dismiss_dead_job(t.id, id, &action(&t, "jobs.dismiss")).await;
        for result in [retried.map(|_| ()), dismissed] {
            match (state, result) {
                (Some(state), Err(StoreError::NotDead { job, status })) => {
                    assert_eq!((job, status), (id.0, state));
                }
                (None, Err(e @ StoreError::NotFound { .. })) => {
                    assert!(e.to_string().contains(&format!("job {id}")), "{e}");
                }
                (_, other) => panic!("job {id} ({state:?}): {other:?}"),
            }
        }
        assert_eq!(s.get_job(t.id, id).await.ok(), before, "a refusal changes nothing");
    }
    assert_eq!(audits(t.id).await, 0, "no audit entry for a refusal");
    assert_eq!(s.get_job(other.id, foreign_dead).await.unwrap().status, JobStatus::Dead);

    // One dead job back in the queue: attempts reset, due now, its last error kept until it runs again.
    let now = t0() + Duration::minutes(5);
    assert_eq!(s.retry_dead_jobs(t.id, Some(first_dead), now, &action(&t, "jobs.retry")).await.unwrap(), 1);
    let retried = s.get_job(t.id, first_dead).await.unwrap();
    assert_eq!((retried.status, retried.attempts, retried.run_at), (JobStatus::Queued, 0, now));
    assert_eq!(retried.finished_at, None);
    assert_eq!(retried.last_error.as_deref(), Some("TOPdesk answered 500"));
    assert_eq!(retried.payload, json!({"person": "anna@contoso.com"}), "the payload is untouched");
    // Every dead job of the tenant: only the other one is still dead; another tenant's stays dead.
    assert_eq!(s.retry_dead_jobs(t.id, None, now, &action(&t, "jobs.retry")).await.unwrap(), 1);
    assert!(s.list_jobs(t.id, JobStatus::Dead).await.unwrap().is_empty());
    assert_eq!(s.get_job(t.id, second_dead).await.unwrap().status, JobStatus::Queued);
    assert_eq!(s.get_job(other.id, foreign_dead).await.unwrap().status, JobStatus::Dead);
    assert_eq!(audits(t.id).await, 2);
    // No dead job left: 0, and nothing written.
    assert_eq!(s.retry_dead_jobs(t.id, None, now, &action(&t, "jobs.retry")).await.unwrap(), 0);
    assert_eq!(audits(t.id).await, 2);
    // A retried job runs again as its lane's head.
    let again = s.claim_job("w", now, Duration::minutes(1)).await.unwrap().expect("the retried job is due");
    assert_eq!((again.job.id, again.job.attempts), (first_dead, 1));

    // Dismissed: gone from the dead jobs, with an audit entry of its own tenant.
    s.dismiss_dead_job(other.id, foreign_dead, &action(&other, "jobs.dismiss")).await.unwrap();
    assert!(s.list_jobs(other.id, JobStatus::Dead).await.unwrap().is_empty());
    assert!(matches!(s.get_job(other.id, foreign_dead).await, Err(StoreError::NotFound { .. })));
    assert_eq!(s.list_audit(other.id, 10).await.unwrap()[0].action, "jobs.dismiss");
    let twice = s.dismiss_dead_job(other.id, foreign_dead, &action(&other, "jobs.dismiss")).await;
    assert!(matches!(twice, Err(StoreError::NotFound { .. })), "{twice:?}");
    assert_eq!(audits(other.id).await, 1);
}

// ---- tenant settings ----

/// Not normalised JSON on purpose: key order, whitespace, escapes and non-ASCII must come back byte-exact.
const SETTINGS_V1: &str =
    "{\"zeta\": 1,\n  \"alpha\": \"Kantoor \u{e9}\u{e9}n \u{2713}\",\t\"esc\": \"\\u00e9\\n\" }\n";
const SETTINGS_V2: &str = r#"{"policy":{"privacy":"neutral-subject"},"rooms":[]}"#;

pub async fn tenant_settings_are_versioned_per_tenant_and_audited(h: &Harness) {
    let s = &*h.store;
    let (t, _) = setup(h).await;
    let other = tenant(s, "fabrikam").await;
    assert_eq!(s.get_tenant_settings(t.id).await.unwrap(), None, "no settings before the first put");

    let put = |doc: &'static str, expected: Option<i64>, at: DateTime<Utc>| async move {
        s.put_tenant_settings(t.id, doc, expected, at, &audit(Some(t.id), "settings.put", "contoso")).await
    };
    let first = put(SETTINGS_V1, None, t0()).await.unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.tenant_id, t.id);
    assert_eq!(first.updated_at, t0());
    assert_eq!(first.document, SETTINGS_V1);
    let read = s.get_tenant_settings(t.id).await.unwrap().unwrap();
    assert_eq!(read, first);
    assert_eq!(read.document.as_bytes(), SETTINGS_V1.as_bytes(), "document round-trips byte-exact");

    let later = t0() + Duration::minutes(3);
    let second = put(SETTINGS_V2, None, later).await.unwrap();
    assert_eq!((second.version, second.updated_at, second.document.as_str()), (2, later, SETTINGS_V2));
    assert_eq!(s.get_tenant_settings(t.id).await.unwrap().unwrap(), second);
    let third = put(SETTINGS_V1, Some(2), later + Duration::seconds(1)).await.unwrap();
    assert_eq!(third.version, 3, "an optimistic put at the stored version bumps it too");
    assert_eq!(s.get_tenant_settings(t.id).await.unwrap().unwrap().document, SETTINGS_V1);

    // Every put is audited with it.
    let log = s.list_audit(t.id, 10).await.unwrap();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|e| e.action == "settings.put" && e.target == "contoso"));

    // Tenant isolation: the other tenant sees nothing, and its own settings start at version 1.
    assert_eq!(s.get_tenant_settings(other.id).await.unwrap(), None);
    assert!(s.list_audit(other.id, 10).await.unwrap().is_empty());
    let theirs = s
        .put_tenant_settings(other.id, "{}", Some(0), t0(), &audit(Some(other.id), "settings.put", "f"))
        .await
        .unwrap();
    assert_eq!((theirs.version, theirs.tenant_id), (1, other.id));
    assert_eq!(s.get_tenant_settings(t.id).await.unwrap().unwrap(), third, "A untouched by B's put");

    // A tenant that does not exist has no settings to write, whatever the form.
    let ghost = TenantId::generate(t0());
    for expected in [None, Some(0), Some(4)] {
        let err = s
            .put_tenant_settings(ghost, "{}", expected, t0(), &audit(None, "settings.put", "ghost"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{expected:?}: {err:?}");
    }
    assert_eq!(s.get_tenant_settings(ghost).await.unwrap(), None);
}

pub async fn tenant_settings_optimistic_put_conflicts_and_changes_nothing(h: &Harness) {
    let s = &*h.store;
    let (t, _) = setup(h).await;
    let raw = h.raw().await;
    let audit_rows = || raw.scalar("SELECT COUNT(*) FROM audit_log");
    let put = |doc: &'static str, expected: Option<i64>| async move {
        s.put_tenant_settings(
            t.id,
            doc,
            expected,
            t0() + Duration::hours(1),
            &audit(Some(t.id), "settings.put", "c"),
        )
        .await
    };

    // Nothing stored yet: only None or Some(0) can write; Some(v > 0) expects a row that is not there.
    let err = put(SETTINGS_V2, Some(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { expected: 1, actual: 0, .. }), "{err:?}");
    assert_eq!(s.get_tenant_settings(t.id).await.unwrap(), None);
    assert_eq!(audit_rows().await, 0, "a refused put writes no audit entry");

    let v1 = s
        .put_tenant_settings(t.id, SETTINGS_V1, Some(0), t0(), &audit(Some(t.id), "settings.put", "c"))
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(audit_rows().await, 1);

    // "Must not exist yet" on an existing row, and a stale version: Conflict, and nothing changes.
    for (expected, stale) in [(Some(0), 0), (Some(5), 5), (Some(-1), -1)] {
        let err = put(SETTINGS_V2, expected).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { expected: e, actual: 1, .. } if e == stale),
            "{expected:?}: {err:?}"
        );
        assert!(err.is_retryable());
        assert_eq!(s.get_tenant_settings(t.id).await.unwrap().unwrap(), v1, "{expected:?} changed the row");
        assert_eq!(audit_rows().await, 1, "{expected:?} wrote an audit entry");
    }
    // The right version writes.
    let v2 = put(SETTINGS_V2, Some(1)).await.unwrap();
    assert_eq!((v2.version, v2.document.as_str()), (2, SETTINGS_V2));
    assert_eq!(audit_rows().await, 2);
    // The version a writer read before is stale now.
    let err = put(SETTINGS_V1, Some(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { expected: 1, actual: 2, .. }), "{err:?}");
    assert_eq!(s.get_tenant_settings(t.id).await.unwrap().unwrap(), v2);
}

pub async fn concurrent_settings_puts_from_one_version_have_one_winner(h: &Harness) {
    let (t, _) = setup(h).await;
    h.store
        .put_tenant_settings(t.id, "{}", None, t0(), &audit(Some(t.id), "settings.put", "c"))
        .await
        .unwrap();
    let second = h.second_store().await;
    let stores = [h.store.clone(), second, h.store.clone(), h.store.clone()];
    let barrier = Arc::new(tokio::sync::Barrier::new(stores.len()));
    let mut handles = Vec::new();
    for (n, store) in stores.into_iter().enumerate() {
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            let doc = format!("{{\"writer\":{n}}}");
            barrier.wait().await;
            let got = store
                .put_tenant_settings(t.id, &doc, Some(1), t0(), &audit(Some(t.id), "settings.put", "c"))
                .await;
            (doc, got)
        }));
    }
    let mut winners = Vec::new();
    for handle in handles {
        match handle.await.unwrap() {
            (doc, Ok(row)) => winners.push((doc, row)),
            (_, Err(StoreError::Conflict { expected: 1, actual: 2, .. })) => {}
            (_, Err(err)) => panic!("unexpected {err:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    let stored = h.store.get_tenant_settings(t.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.document, winners[0].0, "the stored document is the winner's");
    assert_eq!(h.store.list_audit(t.id, 10).await.unwrap().len(), 2, "losers wrote no audit entry");
}

// ---- encryption keys ----

fn key(id: &str, not_before: DateTime<Utc>, key_id: &str, sealed: &[u8]) -> EncryptionKeyRow {
    EncryptionKeyRow {
        id: id.into(),
        certificate_der: vec![0x30, 0x82, 0x01, 0x0a, id.len() as u8],
        thumbprint: format!("thumb-{id}"),
        not_before,
        not_after: not_before + Duration::days(30),
        key_id: key_id.into(),
        sealed_private_key: sealed.to_vec(),
        created_at: t0(),
    }
}

async fn operator_audit_rows(h: &Harness) -> i64 {
    h.raw().await.scalar("SELECT COUNT(*) FROM audit_log WHERE tenant_id IS NULL").await
}

pub async fn encryption_keys_are_listed_by_not_before_and_deleted_with_audit(h: &Harness) {
    let s = &*h.store;
    assert!(s.list_encryption_keys().await.unwrap().is_empty());
    // Inserted out of order; listed oldest not_before first.
    let mid = key("enc-b", t0() + Duration::days(10), "k-1", b"sealed-b");
    let new = key("enc-c", t0() + Duration::days(20), "k-1", b"sealed-c");
    let old = key("enc-a", t0(), "k-1", b"sealed-a");
    for k in [&mid, &new, &old] {
        s.insert_encryption_key(k, &audit(None, "encryption_key.add", &k.id)).await.unwrap();
    }
    assert_eq!(operator_audit_rows(h).await, 3, "each insert is audited");
    let listed = s.list_encryption_keys().await.unwrap();
    assert_eq!(listed, [old.clone(), mid.clone(), new.clone()], "every field round-trips, by not_before");

    // A duplicate id is refused and leaves the stored row (and the audit log) as it was.
    let dup = key("enc-b", t0() + Duration::days(1), "k-2", b"other");
    let err = s.insert_encryption_key(&dup, &audit(None, "encryption_key.add", "enc-b")).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(s.list_encryption_keys().await.unwrap(), [old.clone(), mid.clone(), new.clone()]);
    assert_eq!(operator_audit_rows(h).await, 3);

    s.delete_encryption_key("enc-b", &audit(None, "encryption_key.delete", "enc-b")).await.unwrap();
    assert_eq!(s.list_encryption_keys().await.unwrap(), [old.clone(), new.clone()]);
    assert_eq!(operator_audit_rows(h).await, 4);
    let raw = h.raw().await;
    assert_eq!(
        raw.scalar("SELECT COUNT(*) FROM encryption_keys WHERE id = 'enc-b'").await,
        0,
        "the sealed private key is gone from the table"
    );
    for id in ["enc-b", "nope"] {
        let err = s.delete_encryption_key(id, &audit(None, "encryption_key.delete", id)).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{id}: {err:?}");
    }
    assert_eq!(operator_audit_rows(h).await, 4, "a failed delete writes no audit entry");

    // Debug never prints the sealed private key, only its length.
    let secret = b"PRIVATE-KEY-ENVELOPE";
    let row = key("enc-x", t0(), "k-1", secret);
    let shown = format!("{row:?}");
    assert!(!shown.contains(&format!("{:?}", secret.to_vec())), "{shown}");
    let first_bytes = secret[..4].iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
    assert!(!shown.contains(&first_bytes), "not even in part: {shown}");
    assert!(!shown.contains("PRIVATE-KEY"), "nor as text: {shown}");
    assert!(shown.contains(&format!("sealed_private_key_len: {}", secret.len())), "{shown}");
    assert!(shown.contains("enc-x") && shown.contains("k-1"), "{shown}");
}

pub async fn encryption_keys_reseal_is_all_or_nothing(h: &Harness) {
    let s = &*h.store;
    let keys = [
        key("enc-a", t0(), "k-old", b"a-old"),
        key("enc-b", t0() + Duration::days(1), "k-old", b"b-old"),
        key("enc-c", t0() + Duration::days(2), "k-old", b"c-old"),
    ];
    for k in &keys {
        s.insert_encryption_key(k, &audit(None, "encryption_key.add", &k.id)).await.unwrap();
    }
    let reseal = |id: &str, key_id: &str, sealed: &[u8]| (id.to_owned(), key_id.to_owned(), sealed.to_vec());

    s.reseal_encryption_keys(
        &[reseal("enc-a", "k-new", b"a-new"), reseal("enc-b", "k-new", b"b-new")],
        &audit(None, "keys.rotate", "encryption_keys"),
    )
    .await
    .unwrap();
    let after = s.list_encryption_keys().await.unwrap();
    assert_eq!(
        after.iter().map(|k| (k.key_id.as_str(), k.sealed_private_key.as_slice())).collect::<Vec<_>>(),
        [("k-new", &b"a-new"[..]), ("k-new", &b"b-new"[..]), ("k-old", &b"c-old"[..])],
        "the listed keys are resealed, the others untouched"
    );
    for (stored, original) in after.iter().zip(&keys) {
        // Only key_id and the sealed bytes change.
        let expected = EncryptionKeyRow {
            key_id: stored.key_id.clone(),
            sealed_private_key: stored.sealed_private_key.clone(),
            ..original.clone()
        };
        assert_eq!(stored, &expected);
    }
    assert_eq!(operator_audit_rows(h).await, 4);

    // One unknown id (listed last, after ones that would succeed) fails the whole call and changes nothing.
    let err = s
        .reseal_encryption_keys(
            &[
                reseal("enc-a", "k-newer", b"a-newer"),
                reseal("enc-c", "k-newer", b"c-newer"),
                reseal("enc-gone", "k-newer", b"x"),
            ],
            &audit(None, "keys.rotate", "encryption_keys"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(s.list_encryption_keys().await.unwrap(), after, "nothing changed");
    assert_eq!(operator_audit_rows(h).await, 4, "no audit entry for the refused rotation");
}

// ---- leases ----

pub async fn leases_have_one_holder_renew_expire_and_release(h: &Harness) {
    let s = &*h.store;
    let ttl = Duration::seconds(30);
    let at = |secs: i64| t0() + Duration::seconds(secs);
    assert!(s.try_lease("sweep", "a", at(0), ttl).await.unwrap(), "a free lease is taken");
    assert!(!s.try_lease("sweep", "b", at(10), ttl).await.unwrap(), "held and unexpired: refused");
    assert!(s.try_lease("sweep", "a", at(20), ttl).await.unwrap(), "the holder renews");
    // Had the renewal not moved the expiry (a's first lease ended at 30 s), b would get it at 40 s.
    assert!(!s.try_lease("sweep", "b", at(40), ttl).await.unwrap(), "renewal moved the expiry to 50 s");
    assert!(!s.try_lease("sweep", "b", at(49), ttl).await.unwrap());
    assert!(s.try_lease("sweep", "b", at(50), ttl).await.unwrap(), "expired (expires_at <= now): taken over");
    assert!(!s.try_lease("sweep", "a", at(55), ttl).await.unwrap(), "the old holder lost it");
    // Names are independent.
    assert!(s.try_lease("renew-subscriptions", "a", at(55), ttl).await.unwrap());

    // Release by someone who does not hold it does nothing.
    s.release_lease("sweep", "a").await.unwrap();
    s.release_lease("never-taken", "a").await.unwrap();
    assert!(!s.try_lease("sweep", "a", at(60), ttl).await.unwrap(), "b still holds it");
    // Release by the holder frees it at once, long before its expiry.
    s.release_lease("sweep", "b").await.unwrap();
    assert!(s.try_lease("sweep", "a", at(61), ttl).await.unwrap(), "released: free for anyone");
    assert!(!s.try_lease("sweep", "b", at(62), ttl).await.unwrap());
    // The other lease was not touched by any of this.
    assert!(!s.try_lease("renew-subscriptions", "b", at(62), ttl).await.unwrap());
}

pub async fn lease_race_has_exactly_one_winner_across_two_pools(h: &Harness) {
    let second = h.second_store().await;
    let stores = [h.store.clone(), second];
    let ttl = Duration::minutes(1);
    for round in 0..5 {
        let name = format!("task-{round}");
        // Round 0 races for a lease nobody has held; the others for one that expired exactly now.
        let now = t0() + Duration::minutes(2 * round);
        if round > 0 {
            assert!(h.store.try_lease(&name, "previous", now - ttl, ttl).await.unwrap());
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut handles = Vec::new();
        for n in 0..8 {
            let (store, barrier, name) = (stores[n % 2].clone(), barrier.clone(), name.clone());
            handles.push(tokio::spawn(async move {
                let holder = format!("instance-{n}");
                barrier.wait().await;
                let got = store.try_lease(&name, &holder, now, ttl).await.unwrap();
                (holder, got)
            }));
        }
        let mut winners = Vec::new();
        for handle in handles {
            let (holder, got) = handle.await.unwrap();
            if got {
                winners.push(holder);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        // The winner really holds it: it renews, everyone else is still refused.
        let later = now + Duration::seconds(1);
        assert!(h.store.try_lease(&name, &winners[0], later, ttl).await.unwrap());
        for n in 0..8 {
            let holder = format!("instance-{n}");
            if holder != winners[0] {
                assert!(!h.store.try_lease(&name, &holder, later, ttl).await.unwrap(), "round {round}");
            }
        }
    }
}

// ---- retention and privacy ----

/// A booking of `organizer` with `participants`, starting at `start`, with one timeline entry (`detail`).
async fn booking_of(
    s: &dyn Store,
    t: TenantId,
    r: RoomId,
    start: DateTime<Utc>,
    organizer: &str,
    participants: &[&str],
    detail: serde_json::Value,
) -> BookingRecord {
    let mut rec = record(t, r, start);
    rec.organizer = email(organizer);
    rec.original_organizer = email(organizer);
    rec.participants = participants.iter().map(|p| email(p)).collect();
    let ev = NewBookingEvent { at: start, kind: "observed".into(), side: Some(Side::Exchange), detail };
    s.insert_booking(&rec, &[ev], &[], start).await.unwrap()
}

/// Enqueues a job at `at`, claims it and finishes it then: `done` or, with `dead`, dead.
async fn finished_job(s: &dyn Store, lane: &Lane, at: DateTime<Utc>, dead: bool) -> orb_store::JobId {
    let id = s.enqueue(&job(lane, "sync.observation", json!({"n": 1})), at).await.unwrap();
    let claimed = s.claim_job("w", at, Duration::minutes(1)).await.unwrap().expect("the job just enqueued");
    assert_eq!(claimed.job.id, id);
    if dead {
        s.fail_job(&claimed.lease, "refused", None, at).await.unwrap();
    } else {
        s.complete_job(&claimed.lease, at).await.unwrap();
    }
    id
}

fn series_row(t: TenantId, r: RoomId, organizer: &str, updated_at: DateTime<Utc>) -> Series {
    Series {
        id: SeriesId::generate(updated_at),
        tenant_id: t,
        room_id: r,
        organizer: email(organizer),
        ical_uid: None,
        exchange_master_event_id: None,
        topdesk_series_id: None,
        pattern: json!({"pattern": {"type": "daily"}}),
        time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
        created_at: updated_at,
        updated_at,
    }
}

/// Row counts of every table a purge touches, for "nothing changed" checks.
async fn table_counts(h: &Harness) -> Vec<i64> {
    let raw = h.raw().await;
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM inbox",
        "SELECT COUNT(*) FROM jobs",
        "SELECT COUNT(*) FROM bookings",
        "SELECT COUNT(*) FROM booking_events",
        "SELECT COUNT(*) FROM series",
        "SELECT COUNT(*) FROM audit_log",
    ] {
        out.push(raw.scalar(sql).await);
    }
    out
}

pub async fn purge_deletes_exactly_the_expired_rows_and_audits_the_counts(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let other = tenant(s, "fabrikam").await;
    let other_room = room(s, &other, "room-1@fabrikam.com", "loc-f1").await;
    let now = t0() + Duration::days(500);
    let cutoffs = orb_core::Retention::default().cutoffs(now);
    assert_eq!(cutoffs.bookings, now - Duration::days(90));

    // Series: one used by an expiring booking only, one by a kept booking, one unused and old, one
    // unused and recent.
    let s_expiring = series_row(t.id, r.id, "manager@contoso.com", now - Duration::days(200));
    let s_live = series_row(t.id, r.id, "manager@contoso.com", now - Duration::days(201));
    let s_unused_old = series_row(t.id, r.id, "manager@contoso.com", now - Duration::days(91));
    let s_unused_new = series_row(t.id, r.id, "manager@contoso.com", now - Duration::days(89));
    for series in [&s_expiring, &s_live, &s_unused_old, &s_unused_new] {
        s.upsert_series(series).await.unwrap();
    }
    // Bookings: ended 100 days ago (expired), ended exactly at the cutoff (kept), ended 80 days ago.
    let mut expired = record(t.id, r.id, now - Duration::days(100));
    expired.series_id = Some(s_expiring.id);
    let expired = s.insert_booking(&expired, &[event("observed"), event("written")], &[], now).await.unwrap();
    let at_cutoff = record(t.id, r.id, cutoffs.bookings - Duration::hours(1));
    s.insert_booking(&at_cutoff, &[event("observed")], &[], now).await.unwrap();
    let mut kept = record(t.id, r.id, now - Duration::days(80));
    kept.series_id = Some(s_live.id);
    s.insert_booking(&kept, &[event("observed")], &[], now).await.unwrap();
    let foreign = record(other.id, other_room.id, now - Duration::days(300));
    s.insert_booking(&foreign, &[event("observed")], &[], now).await.unwrap();

    // Jobs: done 2 days ago (expired) and 1 hour ago; dead 100 days ago (expired) and 10 days ago.
    let lane = Lane::room(t.id, r.id);
    let done_old = finished_job(s, &lane, now - Duration::days(2), false).await;
    let done_new = finished_job(s, &lane, now - Duration::hours(1), false).await;
    let dead_old = finished_job(s, &lane, now - Duration::days(100), true).await;
    let dead_new = finished_job(s, &lane, now - Duration::days(10), true).await;
    let foreign_done = finished_job(s, &Lane::tenant(other.id), now - Duration::days(30), false).await;

    // Inbox: processed 2 days ago (expired) and 1 hour ago; one never processed (its job still queued).
    let item = |at| NewInboxItem {
        tenant_id: t.id,
        source: InboxSource::Topdesk,
        received_at: at,
        remote_ip: None,
        payload: json!({"reservation": "r-1"}),
    };
    let hint = job(&Lane::tenant(t.id), "topdesk.hint", json!({}));
    let (inbox_old, _) =
        s.accept_inbox(&item(now - Duration::days(3)), &hint, now - Duration::days(3)).await.unwrap();
    s.mark_inbox_processed(t.id, inbox_old, now - Duration::days(2)).await.unwrap();
    let (inbox_new, _) = s.accept_inbox(&item(now - Duration::hours(2)), &hint, now).await.unwrap();
    s.mark_inbox_processed(t.id, inbox_new, now - Duration::hours(1)).await.unwrap();
    let (inbox_open, open_job) =
        s.accept_inbox(&item(now - Duration::days(30)), &hint, now - Duration::days(30)).await.unwrap();

    // Audit: 500 days old (expired), 300 days old; and another tenant's 500-day-old row.
    let mut old_audit = audit(Some(t.id), "room.add", "old");
    old_audit.at = now - Duration::days(500);
    s.append_audit(&old_audit).await.unwrap();
    let mut recent_audit = audit(Some(t.id), "room.add", "recent");
    recent_audit.at = now - Duration::days(300);
    s.append_audit(&recent_audit).await.unwrap();
    let mut foreign_audit = audit(Some(other.id), "room.add", "foreign");
    foreign_audit.at = now - Duration::days(500);
    s.append_audit(&foreign_audit).await.unwrap();

    let expected = orb_store::PurgeCounts {
        inbox: 1,
        done_jobs: 1,
        dead_jobs: 1,
        bookings: 1,
        booking_events: 2,
        series: 2,
        audit: 1,
    };
    // A dry run counts exactly and changes nothing.
    let before = table_counts(h).await;
    assert_eq!(s.purge_expired(t.id, &cutoffs, "cli", now, true).await.unwrap(), expected);
    assert_eq!(table_counts(h).await, before, "a dry run changes nothing");

    assert_eq!(s.purge_expired(t.id, &cutoffs, "system", now, false).await.unwrap(), expected);

    // Exactly the expired rows are gone.
    let all = BookingFilter { include_cancelled: true, ..BookingFilter::default() };
    let left: Vec<_> = s.list_bookings(t.id, &all).await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(left, [at_cutoff.id, kept.id]);
    assert!(s.timeline(t.id, expired.id).await.unwrap().is_empty());
    assert_eq!(s.timeline(t.id, kept.id).await.unwrap().len(), 1);
    assert_eq!(s.timeline(t.id, at_cutoff.id).await.unwrap().len(), 1);
    for gone in [s_expiring.id, s_unused_old.id] {
        assert!(matches!(s.get_series(t.id, gone).await, Err(StoreError::NotFound { .. })));
    }
    for series in [&s_live, &s_unused_new] {
        assert_eq!(s.get_series(t.id, series.id).await.unwrap().id, series.id);
    }
    for gone in [done_old, dead_old] {
        assert!(matches!(s.get_job(t.id, gone).await, Err(StoreError::NotFound { .. })));
    }
    assert_eq!(s.get_job(t.id, done_new).await.unwrap().status, JobStatus::Done);
    assert_eq!(s.get_job(t.id, dead_new).await.unwrap().status, JobStatus::Dead);
    assert_eq!(s.get_job(t.id, open_job).await.unwrap().status, JobStatus::Queued, "queued work is kept");
    assert!(matches!(s.get_inbox(t.id, inbox_old).await, Err(StoreError::NotFound { .. })));
    assert!(s.get_inbox(t.id, inbox_new).await.unwrap().processed_at.is_some());
    assert_eq!(s.get_inbox(t.id, inbox_open).await.unwrap().processed_at, None, "unprocessed items are kept");
    let log = s.list_audit(t.id, 10).await.unwrap();
    let targets: Vec<_> = log.iter().map(|a| a.target.as_str()).collect();
    assert_eq!(log[0].action, "retention.purged");
    assert_eq!(log[0].actor, "system");
    assert_eq!(targets[0], expected.to_string());
    assert_eq!(&targets[1..], ["recent"]);
    // The other tenant is untouched.
    assert_eq!(s.list_bookings(other.id, &all).await.unwrap().len(), 1);
    assert_eq!(s.timeline(other.id, foreign.id).await.unwrap().len(), 1);
    assert_eq!(s.get_job(other.id, foreign_done).await.unwrap().status, JobStatus::Done);
    assert_eq!(s.list_audit(other.id, 10).await.unwrap()[0].target, "foreign");

    // Nothing left to purge: zero counts and no audit entry.
    assert_eq!(s.purge_expired(t.id, &cutoffs, "system", now, false).await.unwrap(), Default::default());
    assert_eq!(s.list_audit(t.id, 10).await.unwrap().len(), 2);
    // The gate is shut again: plain deletes of the append-only tables still fail.
    let raw = h.raw().await;
    for sql in ["DELETE FROM audit_log", "DELETE FROM booking_events", "UPDATE audit_log SET actor = 'x'"] {
        let err = raw.execute(sql).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // An unknown tenant is refused and changes nothing.
    let before = table_counts(h).await;
    let err = s.purge_expired(TenantId::generate(now), &cutoffs, "cli", now, false).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(table_counts(h).await, before);
}

pub async fn a_persons_data_is_exported_and_erased_everywhere_and_nothing_else(h: &Harness) {
    let s = &*h.store;
    let (t, r) = setup(h).await;
    let other = tenant(s, "fabrikam").await;
    let other_room = room(s, &other, "room-1@fabrikam.com", "loc-f1").await;
    let anna = email("anna@contoso.com");
    let start = t0() + Duration::days(3);
    // Anna organizes A; is a participant of B (beside jimanna, another person); C only names jimanna.
    let a = booking_of(
        s,
        t.id,
        r.id,
        start,
        "anna@contoso.com",
        &["bob@contoso.com"],
        json!({"organizer": "anna@contoso.com"}),
    )
    .await;
    let b = booking_of(
        s,
        t.id,
        r.id,
        start + Duration::hours(2),
        "manager@contoso.com",
        &["anna@contoso.com", "jimanna@contoso.com"],
        json!({"k": 1}),
    )
    .await;
    let c = booking_of(
        s,
        t.id,
        r.id,
        start + Duration::hours(4),
        "carl@contoso.com",
        &["jimanna@contoso.com"],
        json!({"note": "Anna@Contoso.com asked to move it"}),
    )
    .await;
    let d = booking_of(
        s,
        t.id,
        r.id,
        start + Duration::hours(6),
        "carl@contoso.com",
        &[],
        json!({"note": "jimanna@contoso.com"}),
    )
    .await;
    let foreign = booking_of(
        s,
        other.id,
        other_room.id,
        start,
        "anna@contoso.com",
        &[],
        json!({"organizer": "anna@contoso.com"}),
    )
    .await;
    let series = series_row(t.id, r.id, "anna@contoso.com", t0());
    s.upsert_series(&series).await.unwrap();
    let named =
        s.append_audit(&audit(Some(t.id), "booking.refused", "mail to ANNA@contoso.com")).await.unwrap();
    s.append_audit(&audit(Some(t.id), "booking.refused", "mail to jimanna@contoso.com")).await.unwrap();
    let lane = Lane::room(t.id, r.id);
    let queued = s
        .enqueue(&job(&lane, "sync.observation", json!({"organizer": "Anna@contoso.com"})), t0())
        .await
        .unwrap();
    s.enqueue(&job(&lane, "sync.observation", json!({"organizer": "jimanna@contoso.com"})), t0())
        .await
        .unwrap();
    let item = NewInboxItem {
        tenant_id: t.id,
        source: InboxSource::Topdesk,
        received_at: t0(),
        remote_ip: None,
        payload: json!({"requester": "anna@contoso.com"}),
    };
    let (inbox, _) =
        s.accept_inbox(&item, &job(&Lane::tenant(t.id), "topdesk.hint", json!({})), t0()).await.unwrap();

    // The export holds everything about Anna, and nothing about anyone else.
    let data = s.person_data(t.id, &anna).await.unwrap();
    assert_eq!(data.bookings.iter().map(|b| b.id).collect::<Vec<_>>(), [a.id, b.id]);
    let timeline: Vec<_> = data.booking_events.iter().map(|e| e.booking_id).collect();
    assert_eq!(timeline, [a.id, b.id, c.id], "the two records' timelines and the entry naming her");
    assert_eq!(data.series.iter().map(|s| s.id).collect::<Vec<_>>(), [series.id]);
    assert_eq!(data.audit.iter().map(|a| a.id).collect::<Vec<_>>(), [named.id]);
    assert_eq!(data.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [queued]);
    assert_eq!(data.inbox.iter().map(|i| i.id).collect::<Vec<_>>(), [inbox]);
    assert!(
        !serde_json::to_string(&data).unwrap().contains(&foreign.id.to_string()),
        "another tenant's data"
    );
    assert!(!data.booking_events.iter().any(|e| e.booking_id == d.id));

    // Bad input changes nothing.
    let before = table_counts(h).await;
    let pseudonym = orb_core::privacy::pseudonym(t.id, &anna);
    let err = s.erase_person(TenantId::generate(t0()), &anna, &pseudonym, "cli", t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = s.erase_person(t.id, &anna, &anna, "cli", t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err:?}");
    assert_eq!(table_counts(h).await, before);
    assert_eq!(s.person_data(t.id, &anna).await.unwrap(), data);

    // The erasure replaces her everywhere, in one go, and audits it without her address.
    let counts = s.erase_person(t.id, &anna, &pseudonym, "cli", t0()).await.unwrap();
    assert_eq!(
        counts,
        orb_store::ErasureCounts { bookings: 2, series: 1, booking_events: 2, audit: 1, jobs: 1, inbox: 1 }
    );
    assert_eq!(s.person_data(t.id, &anna).await.unwrap(), orb_store::PersonData::default());
    let after = s.person_data(t.id, &pseudonym).await.unwrap();
    assert_eq!(after.bookings.len(), 2);
    let a2 = s.get_booking(t.id, a.id).await.unwrap();
    assert_eq!((&a2.organizer, &a2.original_organizer), (&pseudonym, &pseudonym));
    assert_eq!(a2.version, a.version + 1, "a sync holding the record conflicts and replans");
    assert_eq!(a2.start, a.start);
    let b2 = s.get_booking(t.id, b.id).await.unwrap();
    assert_eq!(b2.participants, [pseudonym.clone(), email("jimanna@contoso.com")]);
    assert_eq!(b2.organizer, email("manager@contoso.com"));
    assert_eq!(s.get_booking(t.id, c.id).await.unwrap(), c, "a record that only names jimanna is untouched");
    assert_eq!(
        s.timeline(t.id, c.id).await.unwrap()[0].detail,
        json!({"note": format!("{pseudonym} asked to move it")})
    );
    assert_eq!(s.timeline(t.id, d.id).await.unwrap()[0].detail, json!({"note": "jimanna@contoso.com"}));
    assert_eq!(s.get_series(t.id, series.id).await.unwrap().organizer, pseudonym);
    assert_eq!(s.get_job(t.id, queued).await.unwrap().payload, json!({"organizer": pseudonym.as_str()}));
    assert_eq!(s.get_inbox(t.id, inbox).await.unwrap().payload, json!({"requester": pseudonym.as_str()}));
    let log = s.list_audit(t.id, 10).await.unwrap();
    assert_eq!(log[0].action, "privacy.erased");
    assert!(log[0].target.starts_with(pseudonym.as_str()), "{}", log[0].target);
    assert!(log.iter().all(|a| !orb_core::privacy::mentions(&a.target, &anna)), "{log:?}");
    assert!(log.iter().any(|a| a.target == "mail to jimanna@contoso.com"));
    // The stale record cannot be written back over the erasure.
    let err = s.update_booking(&a, &[], &[], t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    // Another tenant's data about her is untouched.
    assert_eq!(s.get_booking(other.id, foreign.id).await.unwrap(), foreign);
    assert_eq!(s.person_data(other.id, &anna).await.unwrap().bookings.len(), 1);
    // The append-only tables are still closed to plain updates.
    let raw = h.raw().await;
    let err = raw.execute("UPDATE booking_events SET detail = '{}'").await.expect_err("append-only");
    assert!(err.to_string().contains("append-only"), "{err}");
    // Erasing again finds nothing more, and is audited again.
    assert_eq!(s.erase_person(t.id, &anna, &pseudonym, "cli", t0()).await.unwrap().total(), 0);
}
