//! Job kinds and payloads (`orb_store::jobs`): the JSON the queue held before the payloads were typed
//! still parses (jobs queued by a running installation survive the upgrade), the typed writers produce
//! the JSON the old writers did, and an unknown kind or a bad payload is a clear error.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use orb_core::{
    AppointmentType, BookingId, EmailAddress, Lifecycle, Observation, ObservationSource, ObservedRoom,
    RemoteIds, RoomId, RoomResponse, Side, SweepStats, TenantId,
};
use orb_store::jobs::{
    EwsEventItem, EwsEventKind, EwsItemRef, EwsNotificationItem, EwsNotificationJob, GraphLifecycleJob,
    GraphNotificationJob, JobKind, JobPayload, ReconcileSweepJob, SyncObservationJob, SyncRetryJob,
    TopdeskHintJob,
};
use orb_store::{Job, JobId, JobStatus, Lane};
use serde_json::{Value, json};

const ROOM: &str = "0190f0e4-7d1c-7a3b-9a6f-0000000000a1";
const BOOKING: &str = "0190f0e4-7d1c-7a3b-9a6f-0000000000b1";

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-09-01T06:00:00Z").unwrap().with_timezone(&Utc)
}

fn observation() -> Observation {
    Observation {
        side: Side::Exchange,
        source: ObservationSource::Sweep,
        orb_match_id: None,
        ids: RemoteIds { event_id: Some("AAMk1".into()), ..RemoteIds::default() },
        room: ObservedRoom::Mailbox(EmailAddress::parse("room1@contoso.com").unwrap()),
        start: at(),
        end: at() + Duration::hours(1),
        time_zone: None,
        organizer: EmailAddress::parse("anna@contoso.com").unwrap(),
        booked_by: None,
        participants: vec![EmailAddress::parse("bob@contoso.com").unwrap()],
        subject: None,
        location_text: None,
        lifecycle: Lifecycle::Active,
        room_response: RoomResponse::Accepted,
        modified_at: at(),
        appointment_type: AppointmentType::Single,
        series: None,
        unsynced: BTreeMap::new(),
        counterpart: None,
    }
}

fn stats() -> SweepStats {
    SweepStats { room: ROOM.parse().unwrap(), future_bookings: 12, cancelling: 1, approved: false }
}

fn job(kind: &str, payload: Value) -> Job {
    Job {
        id: JobId(1),
        tenant_id: TenantId::from_uuid(uuid::Uuid::from_u128(7)),
        lane: "tenant".into(),
        kind: kind.into(),
        payload,
        correlation_id: None,
        status: JobStatus::Running,
        attempts: 1,
        run_at: at(),
        lease_owner: None,
        lease_expires_at: None,
        last_error: None,
        created_at: at(),
        finished_at: None,
    }
}

/// Parses `stored` as `P`, checks it is `want`, and that writing `want` gives `written` (what the old
/// writer put in the queue before the store added the inbox id).
fn check<P: JobPayload + PartialEq + std::fmt::Debug>(name: &str, stored: Value, want: &P, written: Value) {
    let parsed = P::of(&job(P::KIND.as_str(), stored.clone()))
        .unwrap_or_else(|e| panic!("{name}: today's payload {stored} does not parse: {e}"));
    assert_eq!(&parsed, want, "{name}: parsed");
    let lane = Lane::tenant(TenantId::from_uuid(uuid::Uuid::from_u128(7)));
    let new = want.to_job(lane, None, None);
    assert_eq!(new.kind, P::KIND.as_str(), "{name}: kind");
    assert_eq!(new.payload, written, "{name}: the typed writer writes what the old one did");
}

#[test]
fn todays_payloads_parse_and_are_written_the_same_way() {
    let obs = observation();
    let obs_json = serde_json::to_value(&obs).unwrap();
    let booking: BookingId = BOOKING.parse().unwrap();
    let room: RoomId = ROOM.parse().unwrap();

    // The intake's jobs: it writes the subscription or the hint count, the store adds `inbox_id`.
    check(
        "graph.notification",
        json!({"subscription_id": "sub-1", "inbox_id": 7}),
        &GraphNotificationJob { subscription_id: "sub-1".into(), inbox_id: Some(7) },
        json!({"subscription_id": "sub-1", "inbox_id": 7}),
    );
    check(
        "graph.notification as the intake writes it",
        json!({"subscription_id": "sub-1"}),
        &GraphNotificationJob { subscription_id: "sub-1".into(), inbox_id: None },
        json!({"subscription_id": "sub-1"}),
    );
    check(
        "graph.lifecycle",
        json!({"subscription_id": "sub-1", "inbox_id": 8}),
        &GraphLifecycleJob { subscription_id: Some("sub-1".into()), inbox_id: Some(8) },
        json!({"subscription_id": "sub-1", "inbox_id": 8}),
    );
    check(
        "graph.lifecycle without a subscription",
        json!({"inbox_id": 8}),
        &GraphLifecycleJob { subscription_id: None, inbox_id: Some(8) },
        json!({"inbox_id": 8}),
    );
    check(
        "topdesk.hint",
        json!({"hints": 3, "inbox_id": 9}),
        &TopdeskHintJob { hints: 3, inbox_id: Some(9) },
        json!({"hints": 3, "inbox_id": 9}),
    );
    check(
        "ews.notification",
        json!({"subscription_id": "ews-sub-1", "inbox_id": 10}),
        &EwsNotificationJob { subscription_id: "ews-sub-1".into(), inbox_id: Some(10) },
        json!({"subscription_id": "ews-sub-1", "inbox_id": 10}),
    );
    check(
        "ews.notification as the intake writes it",
        json!({"subscription_id": "ews-sub-1"}),
        &EwsNotificationJob { subscription_id: "ews-sub-1".into(), inbox_id: None },
        json!({"subscription_id": "ews-sub-1"}),
    );
    // The engine's jobs.
    check(
        "sync.retry",
        json!({"booking_id": BOOKING, "side": "topdesk", "observation": obs_json}),
        &SyncRetryJob {
            booking_id: booking,
            side: Side::Topdesk,
            observation: obs.clone(),
            room_copy: false,
        },
        json!({"booking_id": booking, "side": Side::Topdesk, "observation": obs}),
    );
    check(
        "sync.observation from a hint or the poller",
        json!({"observation": obs_json}),
        &SyncObservationJob::new(obs.clone()),
        json!({"observation": obs}),
    );
    check(
        "sync.observation from a sweep, a re-drive",
        json!({"room_copy": true, "observation": obs_json, "sweep": stats(), "redrive": "exchange"}),
        &SyncObservationJob {
            observation: obs.clone(),
            room_copy: true,
            sweep: Some(stats()),
            redrive: Some(Side::Exchange),
        },
        json!({"room_copy": true, "observation": obs, "sweep": stats(), "redrive": "exchange"}),
    );
    // The sweep wrote `"room_copy": false` too; it parses, and is left out now (false is the default).
    check(
        "sync.observation from a sweep, room_copy false",
        json!({"room_copy": false, "observation": obs_json, "sweep": stats()}),
        &SyncObservationJob {
            observation: obs.clone(),
            room_copy: false,
            sweep: Some(stats()),
            redrive: None,
        },
        json!({"observation": obs, "sweep": stats()}),
    );
    check(
        "reconcile.sweep",
        json!({"room": ROOM}),
        &ReconcileSweepJob { room },
        json!({"room": room.to_string()}),
    );
}

#[test]
fn unknown_fields_are_ignored_so_a_newer_writer_does_not_break_an_older_reader() {
    let parsed =
        ReconcileSweepJob::of(&job("reconcile.sweep", json!({"room": ROOM, "later": 1}))).expect("parses");
    assert_eq!(parsed.room, ROOM.parse::<RoomId>().unwrap());
}

#[test]
fn kinds_are_stored_by_name_and_an_unknown_one_is_a_clear_error() {
    let names: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "graph.notification",
            "graph.lifecycle",
            "topdesk.hint",
            "ews.notification",
            "sync.retry",
            "sync.observation",
            "reconcile.sweep"
        ]
    );
    for kind in JobKind::ALL {
        assert_eq!(JobKind::parse(kind.as_str()), Ok(kind));
        assert_eq!(kind.to_string().parse::<JobKind>(), Ok(kind));
        let stored = job(kind.as_str(), Value::Null).kind;
        assert!(stored == kind, "a stored kind compares with its JobKind");
    }
    let unknown = JobKind::parse("graph.mystery").unwrap_err();
    assert_eq!(unknown.kind, "graph.mystery");
    let message = unknown.to_string();
    assert!(message.contains("\"graph.mystery\""), "{message}");
    for kind in JobKind::ALL {
        assert!(message.contains(kind.as_str()), "the message lists {kind}: {message}");
    }
    assert!(JobKind::parse("Graph.Notification").is_err(), "kinds are exact");
}

#[test]
fn a_bad_payload_names_its_kind_and_what_is_wrong() {
    let cases: &[(&str, Value, &str, &str)] = &[
        ("reconcile.sweep", json!({}), "reconcile.sweep", "room"),
        ("reconcile.sweep", json!({"room": "not-a-uuid"}), "reconcile.sweep", "UUID parsing failed"),
        ("reconcile.sweep", json!({"room": 5}), "reconcile.sweep", "integer"),
        ("graph.notification", json!({"inbox_id": 7}), "graph.notification", "subscription_id"),
        ("sync.retry", json!({"observation": {}}), "sync.retry", "missing field"),
        ("sync.observation", json!({"observation": "x"}), "sync.observation", "invalid type"),
        ("topdesk.hint", json!(null), "topdesk.hint", "invalid type"),
        ("ews.notification", json!({"inbox_id": 7}), "ews.notification", "subscription_id"),
    ];
    for (kind, payload, want_kind, want_reason) in cases {
        let stored = job(kind, payload.clone());
        let error = match JobKind::parse(kind).unwrap() {
            JobKind::ReconcileSweep => ReconcileSweepJob::of(&stored).map(|_| ()),
            JobKind::GraphNotification => GraphNotificationJob::of(&stored).map(|_| ()),
            JobKind::SyncRetry => SyncRetryJob::of(&stored).map(|_| ()),
            JobKind::SyncObservation => SyncObservationJob::of(&stored).map(|_| ()),
            JobKind::TopdeskHint => TopdeskHintJob::of(&stored).map(|_| ()),
            JobKind::GraphLifecycle => GraphLifecycleJob::of(&stored).map(|_| ()),
            JobKind::EwsNotification => EwsNotificationJob::of(&stored).map(|_| ()),
        }
        .expect_err(&format!("{kind} {payload} must not parse"));
        assert_eq!(error.kind.as_str(), *want_kind);
        let message = error.to_string();
        assert!(message.starts_with(&format!("{want_kind} job has a bad payload: ")), "{message}");
        assert!(message.contains(want_reason), "{kind} {payload}: {message}");
    }
    // A job without the inbox item the store adds, and a payload read as another kind's.
    let no_inbox =
        GraphNotificationJob::of(&job("graph.notification", json!({"subscription_id": "s"}))).unwrap();
    assert_eq!(
        no_inbox.inbox_id().unwrap_err().to_string(),
        "graph.notification job has a bad payload: no \"inbox_id\""
    );
    let no_inbox = EwsNotificationJob::of(&job("ews.notification", json!({"subscription_id": "s"}))).unwrap();
    assert_eq!(
        no_inbox.inbox_id().unwrap_err().to_string(),
        "ews.notification job has a bad payload: no \"inbox_id\""
    );
    let no_inbox = TopdeskHintJob::of(&job("topdesk.hint", json!({"hints": 1}))).unwrap();
    assert!(no_inbox.inbox_id().is_err());
    let other = ReconcileSweepJob::of(&job("sync.observation", json!({"room": ROOM}))).unwrap_err();
    assert!(other.to_string().contains("it is a \"sync.observation\" job"), "{other}");
}

#[test]
fn an_ews_notification_item_reads_as_documented() {
    // The JSON the intake keeps for one EWS push notification (absent fields left out).
    let stored = json!({
        "subscription_id": "83826921-afdf-48be-b469-628cc02b5f49",
        "previous_watermark": "ygwAAAAAAAA=",
        "more_events": true,
        "events": [
            {"kind": "CreatedEvent", "watermark": "ywwAAAAAAAA=", "timestamp": "2026-08-20T09:12:44Z",
             "item_id": {"id": "AAMkA1", "change_key": "DwAAA1"}, "parent_folder_id": "cal"},
            {"kind": "MovedEvent", "watermark": "zAwAAAAAAAA=", "timestamp": "2026-08-20T09:13:00Z",
             "item_id": {"id": "AAMkA2"}, "parent_folder_id": "deleted",
             "old_item_id": {"id": "AAMkA1", "change_key": "DwAAA1"}, "old_parent_folder_id": "cal"},
            {"kind": "ModifiedEvent", "watermark": "zQwAAAAAAAA=", "timestamp": "2026-08-20T09:13:00Z",
             "folder_id": "cal", "parent_folder_id": "root"},
            {"kind": "StatusEvent", "watermark": "zgwAAAAAAAA="}
        ]
    });
    let item: EwsNotificationItem = serde_json::from_value(stored.clone()).unwrap();
    let event = |kind, watermark: &str| EwsEventItem {
        kind,
        watermark: Some(watermark.into()),
        timestamp: None,
        item_id: None,
        folder_id: None,
        parent_folder_id: None,
        old_item_id: None,
        old_parent_folder_id: None,
    };
    let ts = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
    let r = |id: &str, ck: Option<&str>| Some(EwsItemRef { id: id.into(), change_key: ck.map(Into::into) });
    let want = EwsNotificationItem {
        subscription_id: "83826921-afdf-48be-b469-628cc02b5f49".into(),
        previous_watermark: Some("ygwAAAAAAAA=".into()),
        more_events: true,
        events: vec![
            EwsEventItem {
                timestamp: ts("2026-08-20T09:12:44Z"),
                item_id: r("AAMkA1", Some("DwAAA1")),
                parent_folder_id: Some("cal".into()),
                ..event(EwsEventKind::Created, "ywwAAAAAAAA=")
            },
            EwsEventItem {
                timestamp: ts("2026-08-20T09:13:00Z"),
                item_id: r("AAMkA2", None),
                parent_folder_id: Some("deleted".into()),
                old_item_id: r("AAMkA1", Some("DwAAA1")),
                old_parent_folder_id: Some("cal".into()),
                ..event(EwsEventKind::Moved, "zAwAAAAAAAA=")
            },
            EwsEventItem {
                timestamp: ts("2026-08-20T09:13:00Z"),
                folder_id: Some("cal".into()),
                parent_folder_id: Some("root".into()),
                ..event(EwsEventKind::Modified, "zQwAAAAAAAA=")
            },
            event(EwsEventKind::Status, "zgwAAAAAAAA="),
        ],
    };
    assert_eq!(item, want);
    assert_eq!(item.last_watermark(), Some("zgwAAAAAAAA="));
    assert!(!item.is_status_only());
    // Written back: the same JSON (timestamps in RFC 3339).
    let written = serde_json::to_value(&item).unwrap();
    let back: EwsNotificationItem = serde_json::from_value(written.clone()).unwrap();
    assert_eq!(back, item);
    assert_eq!(written["events"][3], json!({"kind": "StatusEvent", "watermark": "zgwAAAAAAAA="}));
    assert_eq!(written["events"][0]["item_id"], json!({"id": "AAMkA1", "change_key": "DwAAA1"}));

    // A keep-alive alone; a newer writer's unknown fields are ignored.
    let ping: EwsNotificationItem = serde_json::from_value(json!({
        "subscription_id": "s", "events": [{"kind": "StatusEvent", "watermark": "w", "later": 1}], "later": 2
    }))
    .unwrap();
    assert!(ping.is_status_only());
    assert!(!ping.more_events);
    assert_eq!(ping.last_watermark(), Some("w"));
    assert!(
        serde_json::from_value::<EwsNotificationItem>(
            json!({"subscription_id": "s", "events": [{"kind": "Bogus"}]})
        )
        .is_err()
    );
}
