//! Conflicts are decided when they happen, not at the next sweep (rule 5 between sweeps).
//!
//! Anna moves her meeting in Outlook to 14:00 and, within the same second, the service desk reschedules
//! the reservation in TOPdesk to 15:00. Whichever ORB hears of first, it must not overwrite the other
//! change unseen: Graph writes are conditional (`If-Match`, a `412` makes the engine read the meeting and
//! plan again) and, where the policy lets a TOPdesk change win, an Exchange change is written to TOPdesk
//! only after reading the reservation. The planner's conflict rule then decides as in a sweep: the
//! policy's winner on both sides, one conflict entry in the timeline, the "overwritten" mail. No test
//! waits for a sweep (there is none in this world).
//!
//! Each case is a fresh world (both emulators, the intake, the worker; SQLite, and PostgreSQL when
//! configured); the Graph emulator holds its notifications back while both people edit, so the order in
//! which ORB hears of the two changes is the case's.

mod support;

use chrono::{DateTime, Duration, Utc};
use orb_core::{BookingRecord, Clock as _, ConflictPolicy, Side, SyncStatus};
use orb_emulators::graph::{DeliveryKind, Knobs, NotificationKnobs};
use orb_engine::poller::poll_topdesk;
use orb_graph::model::Event;
use orb_store::JobStatus;
use serde_json::{Value, json};
use support::eventually;
use support::world::*;

const BOOKED: (&str, &str) = ("2026-09-03T09:00:00Z", "2026-09-03T10:00:00Z");
/// Where Anna moves the meeting in Outlook.
const ANNAS: (&str, &str) = ("2026-09-03T14:00:00Z", "2026-09-03T15:00:00Z");
/// Where the service desk moves the reservation in TOPdesk.
const DESKS: (&str, &str) = ("2026-09-03T15:00:00Z", "2026-09-03T16:00:00Z");
/// The title of the "your change was overwritten" mail.
const OVERWRITTEN: &str = "Your room booking change was overwritten";

// ---- acting as people, and waiting for ORB ----

impl World {
    /// Holds Graph's notifications back (`true`) or sends the held ones, in order (`false`).
    fn hold_notifications(&self, hold: bool) {
        let knobs = self.graph_em.knobs();
        let notifications = NotificationKnobs { hold, ..knobs.notifications.clone() };
        self.graph_em.set_knobs(Knobs { notifications, ..knobs });
    }

    /// Anna moves her meeting in Outlook.
    async fn move_in_outlook(&self, id: &str, (start, end): (&str, &str)) {
        let body = json!({
            "start": {"dateTime": start.trim_end_matches('Z'), "timeZone": "UTC"},
            "end": {"dateTime": end.trim_end_matches('Z'), "timeZone": "UTC"},
        });
        let url = self.graph_control(&format!("mailboxes/{ANNA}/events/{id}"));
        let resp = self.http.patch(url).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }

    /// The service desk reschedules the reservation in TOPdesk (TOPdesk's push is sent separately).
    async fn reschedule_at_the_desk(&self, reservation: &str, (start, end): (&str, &str)) {
        let url = format!("{}/_emulator/reservations/{reservation}/reschedule", self.td.base_url);
        let body = json!({"plannedStartDate": start, "plannedEndDate": end});
        let resp = self.http.post(url).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }

    /// TOPdesk's push for a reservation (its action sequence), to the intake.
    async fn push(&self, reservation: &str) {
        let resp = self
            .http
            .post(format!("{}/hooks/topdesk/contoso", self.intake))
            .bearer_auth(PUSH_TOKEN)
            .json(&json!({"reservations": [reservation]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
    }

    /// ORB's near poll of TOPdesk (the scheduler's task, run once).
    async fn poll(&self) {
        let now = self.clock.now();
        let report =
            poll_topdesk(&self.deps, self.tenant.id, (now, now + Duration::days(7)), now).await.unwrap();
        assert_eq!(report.enqueued, 1, "the poll finds the desk's change: {report:?}");
    }

    /// Waits until no job is runnable or running and, unless they are held, every notification Graph
    /// queued was delivered. Read in this order: the notifications (all delivered: their jobs exist, the
    /// intake keeps the job before it answers), then the jobs (none left to run), then the notifications
    /// again (none queued meanwhile by a job that ran in between).
    async fn quiet(&self, notifications_held: bool) {
        let queued_notifications = || self.graph_em.notification_faults().queued;
        let sent = || {
            self.graph_em.deliveries().iter().filter(|d| d.kind != DeliveryKind::Validation).count() as u64
        };
        eventually("ORB to be done with every change", || async {
            let before = queued_notifications();
            let delivered = notifications_held || sent() == before;
            let now = self.clock.now();
            let queued = self.store.list_jobs(self.tenant.id, JobStatus::Queued).await.unwrap();
            let running = self.store.list_jobs(self.tenant.id, JobStatus::Running).await.unwrap();
            let idle = running.is_empty() && queued.iter().all(|j| j.run_at > now);
            (delivered && idle && queued_notifications() == before).then_some(())
        })
        .await;
    }

    fn annas_event(&self, id: &str) -> Event {
        let events = self.graph_em.events(ANNA).unwrap();
        events.into_iter().find(|e| e.id.as_deref() == Some(id)).expect("Anna's meeting")
    }
}

fn utc(event: &Event) -> (DateTime<Utc>, DateTime<Utc>) {
    (event.start.as_ref().unwrap().to_utc().unwrap(), event.end.as_ref().unwrap().to_utc().unwrap())
}

fn times((start, end): (&str, &str)) -> (DateTime<Utc>, DateTime<Utc>) {
    (at(start), at(end))
}

// ---- the cases ----

/// How TOPdesk tells ORB of the desk's change.
#[derive(Debug, Clone, Copy)]
enum Tell {
    Push,
    Poll,
}

/// One race between Anna (Outlook) and the service desk (TOPdesk).
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    policy: ConflictPolicy,
    /// Who edits first (the other half a second later).
    edits_first: Side,
    /// Which change ORB processes first (the other one's notification or push is held back until then).
    processed_first: Side,
    /// How TOPdesk's change reaches ORB.
    tell: Tell,
    /// Whose time both sides hold in the end.
    winner: Side,
    /// Conflict entries in the booking's timeline.
    conflicts: usize,
    /// "Overwritten" mails to Anna (the loser's author, when her change lost: DESIGN rule 5).
    mails: usize,
}

/// The four orders of one policy: (a) Anna first and heard first; (b) the desk first and heard first
/// (its poll), Anna's notification held until after; (c) Anna first, her notification held until after
/// the desk's change was processed (its push); (d) the desk first, Anna heard first.
fn races(policy: ConflictPolicy, winners: [(Side, usize); 4]) -> [Case; 4] {
    let orders = [
        ("(a) Outlook edited and heard first", Side::Exchange, Side::Exchange, Tell::Push),
        ("(b) TOPdesk edited and polled first", Side::Topdesk, Side::Topdesk, Tell::Poll),
        (
            "(c) Outlook edited first, notifications held until TOPdesk's push",
            Side::Exchange,
            Side::Topdesk,
            Tell::Push,
        ),
        ("(d) TOPdesk edited first, Outlook heard first", Side::Topdesk, Side::Exchange, Tell::Push),
    ];
    let mut n = 0;
    orders.map(|(name, edits_first, processed_first, tell)| {
        let (winner, conflicts) = winners[n];
        n += 1;
        // The overwritten mail goes to the loser's author: Anna when her Outlook change lost; a desk change
        // that lost has no author ORB can mail.
        let mails = if winner == Side::Topdesk { conflicts } else { 0 };
        Case { name, policy, edits_first, processed_first, tell, winner, conflicts, mails }
    })
}

async fn check(case: Case) {
    let mut options = WorldOptions::default();
    options.policy.conflict = case.policy;
    on_every_store_with(&options, |w| async move {
        let what = format!("{:?} {}", case.policy, case.name);
        let made = w.book("Quarterly planning", BOOKED.0, BOOKED.1).await;
        let id = made["id"].as_str().unwrap().to_owned();
        let booked = w.booking_where("the booking", |r| r.topdesk.reservation_id.is_some()).await;
        w.quiet(false).await;
        let reservation = booked.topdesk.reservation_id.clone().unwrap();

        // Both edit within one second; ORB hears of neither yet.
        w.clock.advance(Duration::minutes(1));
        w.hold_notifications(true);
        for side in [case.edits_first, case.edits_first.other()] {
            match side {
                Side::Exchange => w.move_in_outlook(&id, ANNAS).await,
                Side::Topdesk => w.reschedule_at_the_desk(&reservation, DESKS).await,
            }
            w.clock.advance(Duration::milliseconds(500));
        }
        w.clock.advance(Duration::seconds(1));

        // ORB hears of them in the case's order.
        let tell_topdesk = || async {
            match case.tell {
                Tell::Push => w.push(&reservation).await,
                Tell::Poll => w.poll().await,
            }
        };
        match case.processed_first {
            Side::Exchange => {
                w.hold_notifications(false);
                w.quiet(false).await;
                tell_topdesk().await;
                w.quiet(false).await;
            }
            Side::Topdesk => {
                tell_topdesk().await;
                w.quiet(true).await;
                w.hold_notifications(false);
                w.quiet(false).await;
            }
        }

        // The policy's winner on both sides.
        let expected = times(if case.winner == Side::Exchange { ANNAS } else { DESKS });
        assert_eq!(utc(&w.annas_event(&id)), expected, "{what}: Anna's meeting");
        let room_copies: Vec<_> = w.graph_em.events(ROOM).unwrap().iter().map(utc).collect();
        assert_eq!(room_copies, [expected], "{what}: the room's calendar");
        let r =
            w.reservations().into_iter().find(|r| r.id.map(|i| i.to_string()) == Some(reservation.clone()));
        let r = r.expect("the reservation");
        assert_eq!((r.planned_start_date.unwrap(), r.planned_end_date.unwrap()), expected, "{what}: TOPdesk");
        let record: BookingRecord = w.store.get_booking(w.tenant.id, booked.id).await.unwrap();
        assert_eq!((record.start, record.end), expected, "{what}: ORB's record");
        assert_eq!(
            (record.exchange_status, record.topdesk_status),
            (SyncStatus::Synced, SyncStatus::Synced),
            "{what}: nothing owed"
        );

        // One conflict entry, naming the policy's winner; the overwritten mail to Anna.
        let timeline = w.store.timeline(w.tenant.id, booked.id).await.unwrap();
        let conflicts: Vec<&Value> =
            timeline.iter().filter(|e| e.kind == "conflict").map(|e| &e.detail).collect();
        assert_eq!(conflicts.len(), case.conflicts, "{what}: conflict entries {conflicts:?}");
        if let Some(entry) = conflicts.first() {
            let text = entry["detail"].as_str().unwrap_or_default();
            let winner = if case.winner == Side::Exchange { "exchange wins" } else { "topdesk wins" };
            assert!(text.contains(winner) && text.contains("start, end"), "{what}: {text}");
        }
        let mails: Vec<_> = w
            .graph_em
            .outbox()
            .into_iter()
            .filter(|m| m.message.subject.as_deref() == Some(OVERWRITTEN))
            .map(|m| {
                m.message
                    .to_recipients
                    .iter()
                    .flatten()
                    .filter_map(|r| r.address().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(mails, vec![vec![ANNA.to_owned()]; case.mails], "{what}: overwritten mails");
        assert_eq!(w.graph_em.outbox().len(), case.mails, "{what}: no other mail");

        let left: Vec<_> = w.jobs(JobStatus::Queued).await;
        assert!(left.is_empty(), "{what}: no retry or other job left: {left:?}");
        assert!(w.jobs(JobStatus::Dead).await.is_empty(), "{what}: no dead job");
    })
    .await;
}

#[tokio::test]
async fn exchange_wins_between_sweeps() {
    // A TOPdesk change is never read before an Exchange change is written over it (it could not win):
    // when ORB hears of Anna's change first, the desk's change is overwritten without a conflict entry.
    let cases = races(
        ConflictPolicy::ExchangeWins,
        [(Side::Exchange, 0), (Side::Exchange, 1), (Side::Exchange, 1), (Side::Exchange, 0)],
    );
    for case in cases {
        check(case).await;
    }
}

#[tokio::test]
async fn topdesk_wins_between_sweeps() {
    let cases = races(
        ConflictPolicy::TopdeskWins,
        [(Side::Topdesk, 1), (Side::Topdesk, 1), (Side::Topdesk, 1), (Side::Topdesk, 1)],
    );
    for case in cases {
        check(case).await;
    }
}

#[tokio::test]
async fn latest_wins_between_sweeps() {
    // The later edit wins, whichever ORB hears of first.
    let cases = races(
        ConflictPolicy::LatestWins,
        [(Side::Topdesk, 1), (Side::Exchange, 1), (Side::Topdesk, 1), (Side::Exchange, 1)],
    );
    for case in cases {
        check(case).await;
    }
}

// ---- what knowing costs ----

/// ORB's calls to each side since `from` (Graph, TOPdesk), by method and path shape.
fn calls_since(w: &World, from: (usize, usize)) -> (Vec<String>, Vec<String>) {
    let shape = |path: &str| {
        let mut after = "";
        let parts: Vec<&str> = path
            .split('/')
            .map(|p| {
                let shown = if matches!(after, "events" | "reservations") { "{id}" } else { p };
                after = p;
                shown
            })
            .collect();
        parts.join("/")
    };
    let graph =
        w.graph_em.requests()[from.0..].iter().map(|r| format!("{} {}", r.method, shape(&r.path))).collect();
    let topdesk = w.td.emulator.request_log()[from.1..]
        .iter()
        .map(|r| format!("{} {}", r.method, shape(&r.path)))
        .collect();
    (graph, topdesk)
}

fn mark(w: &World) -> (usize, usize) {
    (w.graph_em.requests().len(), w.td.emulator.request_log().len())
}

/// What one plain change (no race) costs per policy: an Outlook retime written to TOPdesk, a TOPdesk
/// reschedule written to Outlook. The If-Match costs nothing; the read before overwriting a reservation
/// costs one GET per Outlook change where a TOPdesk change could win (`topdesk-wins`, `latest-wins`).
#[tokio::test]
async fn knowing_before_overwriting_costs_one_read_per_outlook_change_where_topdesk_can_win() {
    let mut table = String::from("calls per change (Graph + TOPdesk), one change at a time:\n");
    let mut costs = Vec::new();
    for policy in [ConflictPolicy::ExchangeWins, ConflictPolicy::TopdeskWins, ConflictPolicy::LatestWins] {
        let mut options = WorldOptions::default();
        options.policy.conflict = policy;
        let store = support::TestStore::sqlite().await;
        let w = World::start_with(store, options).await;
        let made = w.book("Quarterly planning", BOOKED.0, BOOKED.1).await;
        let id = made["id"].as_str().unwrap().to_owned();
        let booked = w.booking_where("the booking", |r| r.topdesk.reservation_id.is_some()).await;
        w.quiet(false).await;
        let reservation = booked.topdesk.reservation_id.clone().unwrap();

        w.clock.advance(Duration::minutes(1));
        let from = mark(&w);
        w.move_in_outlook(&id, ANNAS).await;
        w.booking_where("Anna's change", |r| r.start == at(ANNAS.0)).await;
        w.quiet(false).await;
        let outlook = calls_since(&w, from);

        w.clock.advance(Duration::minutes(1));
        let from = mark(&w);
        w.reschedule_at_the_desk(&reservation, DESKS).await;
        w.push(&reservation).await;
        w.booking_where("the desk's change", |r| r.start == at(DESKS.0)).await;
        w.quiet(false).await;
        let desk = calls_since(&w, from);
        let timeline = w.store.timeline(w.tenant.id, booked.id).await.unwrap();
        assert!(timeline.iter().all(|e| e.kind != "conflict"), "{policy:?}: no race, no conflict");

        for (change, (graph, topdesk)) in [("Outlook retime", &outlook), ("TOPdesk reschedule", &desk)] {
            table += &format!(
                "  {policy:?} {change}: {} + {} = {}   Graph {graph:?} TOPdesk {topdesk:?}\n",
                graph.len(),
                topdesk.len(),
                graph.len() + topdesk.len()
            );
        }
        costs.push((policy, outlook, desk));
    }
    eprint!("{table}");
    let (_, base_outlook, base_desk) = costs[0].clone();
    for (policy, outlook, desk) in &costs[1..] {
        let mut expected = base_outlook.1.clone();
        let write = expected
            .iter()
            .position(|c| c.starts_with("PUT") || c.starts_with("PATCH") || c.starts_with("POST"));
        expected.insert(write.expect("a TOPdesk write"), "GET /tas/api/reservations/{id}".to_owned());
        assert_eq!(outlook.0, base_outlook.0, "{policy:?}: an Outlook change costs Graph the same");
        assert_eq!(outlook.1, expected, "{policy:?}: one read of the reservation before writing to it");
        assert_eq!(desk, &base_desk, "{policy:?}: a TOPdesk change costs the same (If-Match is free)");
    }
}

/// A booking made at the desk whose room copy ORB never heard of (the copy's notification was lost, so the
/// record knows Anna's meeting but not the room's copy). Anna moves the meeting in Outlook (unheard too),
/// then the desk reschedules the reservation: ORB's write to Anna's meeting gets `412` and the meeting is
/// read again. The room's copy is found by its `iCalUId`, not taken for gone because ORB never learned its
/// id (found by the Graph chaos run: the "gone" copy won the conflict as a cancellation, the reservation was
/// cancelled and the meeting stayed live in Exchange for good). Exchange wins: Anna's time on both sides.
#[tokio::test]
async fn a_conflict_on_a_booking_whose_room_copy_orb_never_heard_of_cancels_nothing() {
    on_every_store_with(&WorldOptions::default(), |w| async move {
        w.drop_notifications(true);
        let mut create = orb_topdesk::wire::CreateReservationDto::new(
            w.anna,
            &w.room.topdesk_location_id,
            at(BOOKED.0),
            at(BOOKED.1),
        );
        create.brief_description = Some("Desk booking".into());
        let reservation = w.topdesk.create_reservation(&create).await.unwrap().id.unwrap().to_string();
        w.push(&reservation).await;
        let booked =
            w.booking_where("Anna's meeting made", |r| r.exchange.organizer_event_id.is_some()).await;
        w.quiet(true).await;
        let booked = w.store.get_booking(w.tenant.id, booked.id).await.unwrap();
        assert!(booked.exchange.room_event_id.is_none(), "the copy's notification was lost: {booked:?}");
        let id = booked.exchange.organizer_event_id.clone().unwrap();

        w.clock.advance(Duration::minutes(1));
        w.move_in_outlook(&id, ANNAS).await;
        w.clock.advance(Duration::seconds(1));
        w.reschedule_at_the_desk(&reservation, DESKS).await;
        w.clock.advance(Duration::seconds(1));
        w.push(&reservation).await;
        w.quiet(true).await;

        let expected = times(ANNAS);
        let annas: Vec<_> =
            w.graph_em.events(ANNA).unwrap().iter().map(|e| (e.is_cancelled, utc(e))).collect();
        assert_eq!(annas, [(Some(false), expected)], "Anna's meeting");
        let room_copies: Vec<_> = w.graph_em.events(ROOM).unwrap().iter().map(utc).collect();
        assert_eq!(room_copies, [expected], "the room's calendar");
        let r =
            w.reservations().into_iter().find(|r| r.id.map(|i| i.to_string()) == Some(reservation.clone()));
        let r = r.expect("the reservation");
        assert!(r.status.is_some_and(|s| s.is_active()), "the reservation stays live: {r:?}");
        assert_eq!((r.planned_start_date.unwrap(), r.planned_end_date.unwrap()), expected, "TOPdesk");
        let record: BookingRecord = w.store.get_booking(w.tenant.id, booked.id).await.unwrap();
        assert!(!record.cancelled, "ORB's record stays live: {record:?}");
        assert_eq!((record.start, record.end), expected, "ORB's record");
        assert!(w.jobs(JobStatus::Dead).await.is_empty(), "no dead job");
    })
    .await;
}
