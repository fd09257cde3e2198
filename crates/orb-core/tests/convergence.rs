//! Property test: random edit sequences on both sides go through the planner against two in-memory model
//! sides, with observations duplicated, reordered and lost (lost ones healed by a later full observation).
//! Checked: both sides converge to the same bookings, no booking exists twice, an echo never causes a
//! write, and the complexity index counts only real changes.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use orb_core::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use uuid::Uuid;

fn mail(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn room_id(n: u8) -> RoomId {
    RoomId::from_uuid(Uuid::from_u128(0x1000 + u128::from(n)))
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap().with_timezone(&Utc)
}

/// One item on a side (an Exchange event or a TOPdesk reservation).
#[derive(Debug, Clone)]
struct Item {
    room: u8, // 0 = no room, 1..=2 managed, 9 unmanaged
    slot: i64,
    len: i64,
    cancelled: bool,
    modified: DateTime<Utc>,
    orb: Option<BookingId>,
    series: Option<SeriesRef>,
    /// When a user last edited it, and the newest version of it ORB has processed: a write of ORB's onto
    /// an item with an edit ORB has not seen yet produces a merged state, not a pure echo.
    user_edit: Option<DateTime<Utc>>,
    seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct Queued {
    side: Side,
    key: usize,
    obs: Observation,
    echo: bool,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Create(Side, u8, i64),
    Series(u8, i64),
    Retime(Side, usize, i64),
    Move(Side, usize, u8),
    Cancel(Side, usize),
    Deliver(usize),
    Duplicate(usize),
    Lose(usize),
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    let side = prop_oneof![Just(Side::Exchange), Just(Side::Topdesk)];
    let room = prop_oneof![4 => Just(1u8), 4 => Just(2u8), 1 => Just(9u8)];
    prop_oneof![
        2 => (side.clone(), room.clone(), 0i64..40).prop_map(|(s, r, t)| Op::Create(s, r, t)),
        1 => (room.clone(), 0i64..40).prop_map(|(r, t)| Op::Series(r, t)),
        3 => (side.clone(), any::<usize>(), 0i64..40).prop_map(|(s, i, t)| Op::Retime(s, i, t)),
        2 => (side.clone(), any::<usize>(), room).prop_map(|(s, i, r)| Op::Move(s, i, r)),
        1 => (side, any::<usize>()).prop_map(|(s, i)| Op::Cancel(s, i)),
        6 => any::<usize>().prop_map(Op::Deliver),
        2 => any::<usize>().prop_map(Op::Duplicate),
        2 => any::<usize>().prop_map(Op::Lose),
        1 => Just(Op::Sweep),
    ]
}

struct Model {
    policy: Policy,
    rooms: RoomMap,
    persons: PersonDirectory,
    now: DateTime<Utc>,
    sides: [Vec<Item>; 2],
    queue: Vec<Queued>,
    records: BTreeMap<BookingId, BookingRecord>,
    link: HashMap<(usize, usize), BookingId>, // (side index, item key) -> booking
    current: HashMap<(BookingId, usize), usize>, // (booking, side index) -> item key
    user_edits: HashMap<(usize, usize), u32>,
    next_id: u128,
}

fn si(side: Side) -> usize {
    match side {
        Side::Exchange => 0,
        Side::Topdesk => 1,
    }
}

impl Model {
    fn new(conflict: ConflictPolicy, mode: Mode) -> Self {
        let mut policy = Policy::new();
        policy.conflict = conflict;
        policy.mode = mode;
        let rooms = RoomMap::new(
            (1..=2)
                .map(|n| RoomMapping {
                    id: room_id(n),
                    mailbox: RoomMailbox::from(mail(&format!("room-{n}@contoso.com"))),
                    location: TopdeskLocationId::parse(&format!("loc-{n}")).unwrap(),
                    time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
                    enabled: true,
                    name: None,
                })
                .collect(),
        );
        let persons = PersonDirectory::new([(mail("anna@contoso.com"), "p-anna".to_owned())]);
        Self {
            policy,
            rooms,
            persons,
            now: t0(),
            sides: [Vec::new(), Vec::new()],
            queue: Vec::new(),
            records: BTreeMap::new(),
            link: HashMap::new(),
            current: HashMap::new(),
            user_edits: HashMap::new(),
            next_id: 1,
        }
    }

    fn tick(&mut self) {
        self.now += Duration::seconds(30);
    }

    fn at(slot: i64) -> DateTime<Utc> {
        t0() + Duration::days(1) + Duration::hours(slot)
    }

    fn observe(&self, side: Side, key: usize, source: ObservationSource) -> Observation {
        let it = &self.sides[si(side)][key];
        let room = match (side, it.room) {
            (_, 0) => ObservedRoom::None,
            (Side::Exchange, n) => ObservedRoom::Mailbox(mail(&format!("room-{n}@contoso.com"))),
            (Side::Topdesk, n) => {
                ObservedRoom::Location(TopdeskLocationId::parse(&format!("loc-{n}")).unwrap())
            }
        };
        Observation {
            side,
            source,
            orb_match_id: it.orb,
            ids: RemoteIds::default(),
            room,
            start: Self::at(it.slot),
            end: Self::at(it.slot) + Duration::minutes(it.len),
            time_zone: None,
            organizer: mail("anna@contoso.com"),
            booked_by: None,
            participants: vec![],
            subject: Some("Weekly".into()),
            location_text: None,
            lifecycle: if it.cancelled { Lifecycle::Cancelled } else { Lifecycle::Active },
            room_response: RoomResponse::Accepted,
            modified_at: it.modified,
            appointment_type: if it.series.is_some() {
                AppointmentType::Occurrence
            } else {
                AppointmentType::Single
            },
            series: it.series,
            unsynced: Default::default(),
            counterpart: None,
        }
    }

    fn notify(&mut self, side: Side, key: usize, echo: bool) {
        let obs = self.observe(side, key, ObservationSource::Notification);
        self.queue.push(Queued { side, key, obs, echo });
    }

    fn user_create(&mut self, side: Side, room: u8, slot: i64, series: Option<SeriesRef>) {
        let item = Item {
            room,
            slot,
            len: 60,
            cancelled: false,
            modified: self.now,
            orb: None,
            series,
            user_edit: Some(self.now),
            seen: None,
        };
        self.sides[si(side)].push(item);
        let key = self.sides[si(side)].len() - 1;
        self.notify(side, key, false);
    }

    fn user_edit(&mut self, side: Side, idx: usize, f: impl FnOnce(&mut Item)) {
        let n = self.sides[si(side)].len();
        if n == 0 {
            return;
        }
        let key = idx % n;
        let now = self.now;
        let it = &mut self.sides[si(side)][key];
        if it.cancelled {
            return;
        }
        let before = (it.room, it.slot, it.cancelled);
        f(it);
        if (it.room, it.slot, it.cancelled) == before {
            return;
        }
        it.modified = now;
        it.user_edit = Some(now);
        *self.user_edits.entry((si(side), key)).or_default() += 1;
        self.notify(side, key, false);
    }

    fn deliver(&mut self, q: Queued) {
        let Queued { side, key, obs, echo } = q;
        let booking = obs.orb_match_id.or_else(|| self.link.get(&(si(side), key)).copied());
        let record = booking.and_then(|b| self.records.get(&b)).cloned();
        let new_id = BookingId::from_uuid(Uuid::from_u128(self.next_id));
        self.next_id += 1;
        let ctx = PlanContext {
            tenant_id: TenantId::from_uuid(Uuid::from_u128(1)),
            policy: &self.policy,
            rooms: &self.rooms,
            persons: &self.persons,
            now: self.now,
            new_ids: NewIds { booking: new_id, correlation: CorrelationId::from_uuid(Uuid::from_u128(7)) },
            sweep: None,
        };
        let plan = plan(record.as_ref(), &obs, &ctx);
        if std::env::var_os("ORB_TRACE").is_some() {
            let acts: Vec<String> =
                plan.actions.iter().map(|a| format!("{a:?}").chars().take(60).collect()).collect();
            eprintln!(
                "{} deliver {side}#{key} echo={echo} room={:?} start={} cancelled={:?} mod={} wm={:?} -> {acts:?}",
                self.now.format("%H:%M:%S"),
                obs.room,
                obs.start.format("%d %H:%M"),
                obs.lifecycle,
                obs.modified_at.format("%H:%M:%S"),
                record
                    .as_ref()
                    .and_then(|r| r.exchange.modified_at)
                    .map(|w| w.format("%H:%M:%S").to_string()),
            );
        }
        let absorbed = record.is_some() || plan.record.record().is_some();
        if absorbed && plan.nothing_reason() != Some(NothingReason::Stale) {
            // A stale observation is dropped, and one without a record is not remembered: its edit is
            // not yet part of what ORB knows.
            let item = &mut self.sides[si(side)][key];
            item.seen = item.seen.max(Some(obs.modified_at));
        }
        if echo {
            assert_eq!(plan.writes().count(), 0, "an echo caused a write: {obs:#?}\n{plan:#?}");
            if let (Some(before), Some(after)) = (&record, plan.record.record()) {
                assert_eq!(before.complexity_index, after.complexity_index, "an echo counted as a change");
            }
        }
        let Some(mut rec) = plan.record.record().cloned() else { return };
        self.link.insert((si(side), key), rec.id);
        self.current.insert((rec.id, si(side)), key);
        let (mut refused, mut succeeded, mut impure) = ([false; 2], [false; 2], [false; 2]);
        for action in &plan.actions {
            self.tick();
            let now = self.now;
            let target = match action.target_side() {
                Some(t) => t,
                None => continue,
            };
            let ti = si(target);
            let cur = self.current.get(&(rec.id, ti)).copied();
            let written = match action {
                Action::CreateReservation { location, start, end, series, .. } => {
                    let room = location.as_str().trim_start_matches("loc-").parse().unwrap();
                    Some(self.create_item(
                        target,
                        rec.id,
                        room,
                        *start,
                        *end,
                        series.map(|s| SeriesRef {
                            series_id: s,
                            original_start: rec.original_start.unwrap_or(*start),
                        }),
                    ))
                }
                Action::CreateExchangeEvent { room, start, end, .. } => {
                    let room = room.as_str()[5..6].parse().unwrap();
                    Some(self.create_item(target, rec.id, room, *start, *end, None))
                }
                other => cur.and_then(|k| {
                    // Pure echo only if the item held what ORB believed before this write; otherwise the
                    // write merges into an edit ORB has not seen, and its notification is a real change.
                    let believed = record.as_ref().is_some_and(|r| {
                        let it = &self.sides[ti][k];
                        !r.cancelled
                            && !it.cancelled
                            && room_id(it.room) == r.room_id
                            && Self::at(it.slot) == r.start
                            && Self::at(it.slot) + Duration::minutes(it.len) == r.end
                    });
                    if !believed {
                        impure[ti] = true;
                    }
                    let it = &mut self.sides[ti][k];
                    if it.cancelled {
                        return None; // the side refuses writes to a cancelled item
                    }
                    match other {
                        Action::RescheduleReservation { start, end, .. } => {
                            it.slot = (*start - Self::at(0)).num_hours();
                            it.len = (*end - *start).num_minutes();
                        }
                        Action::UpdateExchangeEvent { changes, .. } => {
                            if let Some(r) = &changes.room {
                                it.room = r.as_str()[5..6].parse().unwrap();
                            }
                            if let Some((s, e)) = changes.times {
                                it.slot = (s - Self::at(0)).num_hours();
                                it.len = (e - s).num_minutes();
                            }
                        }
                        Action::MoveReservationRoom { to, .. } => {
                            it.room = to.as_str().trim_start_matches("loc-").parse().unwrap();
                        }
                        Action::CancelReservation { .. } => it.cancelled = true,
                        Action::CancelExchangeEvent { how, .. } => match how {
                            ExchangeCancel::RemoveRoom => it.room = 0,
                            _ => it.cancelled = true,
                        },
                        _ => {}
                    }
                    it.modified = now;
                    Some(k)
                }),
            };
            if written.is_none() {
                refused[ti] = true;
            }
            if let Some(k) = written {
                succeeded[ti] = true;
                let pure = !impure[ti];
                if target == Side::Topdesk {
                    rec.topdesk.modification_date = Some(now);
                } else {
                    rec.exchange.modified_at = Some(now);
                }
                self.notify(target, k, pure);
            }
        }
        for target in [Side::Exchange, Side::Topdesk] {
            if refused[si(target)] && !succeeded[si(target)] {
                // The side refused (the item is cancelled there): the executor keeps the fingerprint of
                // the last write that succeeded, so the side's later observations are judged against it.
                let before = record.as_ref().and_then(|r| r.fingerprint(target).cloned());
                match target {
                    Side::Exchange => rec.exchange_fingerprint = before,
                    Side::Topdesk => rec.topdesk_fingerprint = before,
                }
            }
        }
        self.records.insert(rec.id, rec);
    }

    fn create_item(
        &mut self,
        side: Side,
        id: BookingId,
        room: u8,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        series: Option<SeriesRef>,
    ) -> usize {
        let slot = (start - Self::at(0)).num_hours();
        let item = Item {
            room,
            slot,
            len: (end - start).num_minutes(),
            cancelled: false,
            modified: self.now,
            orb: Some(id),
            series,
            user_edit: None,
            seen: None,
        };
        self.sides[si(side)].push(item);
        let key = self.sides[si(side)].len() - 1;
        self.link.insert((si(side), key), id);
        self.current.insert((id, si(side)), key);
        key
    }

    /// A full observation of both sides (what a reconciliation sweep reads), with counterparts.
    fn sweep(&mut self) {
        for side in [Side::Exchange, Side::Topdesk] {
            for key in 0..self.sides[si(side)].len() {
                let mut obs = self.observe(side, key, ObservationSource::Sweep);
                let booking = obs.orb_match_id.or_else(|| self.link.get(&(si(side), key)).copied());
                if let Some(other) = booking.and_then(|b| self.current.get(&(b, si(side.other()))).copied()) {
                    obs.counterpart =
                        Some(Box::new(self.observe(side.other(), other, ObservationSource::Sweep)));
                }
                self.queue.push(Queued { side, key, obs, echo: false });
            }
        }
    }

    fn drain(&mut self) {
        let mut guard = 0;
        while !self.queue.is_empty() {
            let q = self.queue.remove(0);
            self.tick();
            self.deliver(q);
            guard += 1;
            assert!(guard < 10_000, "the planner does not settle");
        }
    }

    fn run(&mut self, ops: &[Op]) {
        for op in ops {
            self.tick();
            match *op {
                Op::Create(side, room, slot) => self.user_create(side, room, slot, None),
                Op::Series(room, slot) => {
                    let series_id = SeriesId::from_uuid(Uuid::from_u128(0x5000 + self.next_id));
                    self.next_id += 1;
                    for k in 0..3 {
                        let s = slot + 24 * 7 * k;
                        let r = SeriesRef { series_id, original_start: Self::at(s) };
                        self.user_create(Side::Exchange, room, s, Some(r));
                    }
                }
                Op::Retime(side, i, slot) => self.user_edit(side, i, |it| it.slot = slot),
                Op::Move(side, i, room) => self.user_edit(side, i, |it| it.room = room),
                Op::Cancel(side, i) => self.user_edit(side, i, |it| it.cancelled = true),
                Op::Deliver(i) | Op::Duplicate(i) | Op::Lose(i) if self.queue.is_empty() => {
                    let _ = i;
                }
                Op::Deliver(i) => {
                    let q = self.queue.remove(i % self.queue.len());
                    self.deliver(q);
                }
                Op::Duplicate(i) => {
                    let q = self.queue[i % self.queue.len()].clone();
                    self.deliver(q);
                }
                Op::Lose(i) => {
                    self.queue.remove(i % self.queue.len());
                }
                Op::Sweep => self.sweep(),
            }
        }
        // Heal: deliver everything still queued, then full observations until nothing changes.
        self.drain();
        for _ in 0..4 {
            self.sweep();
            self.drain();
        }
    }

    fn check(&self) {
        let managed = |it: &Item| !it.cancelled && (1..=2).contains(&it.room);
        for rec in self.records.values() {
            let ex = self.current.get(&(rec.id, 0)).map(|&k| &self.sides[0][k]);
            let td = self.current.get(&(rec.id, 1)).map(|&k| &self.sides[1][k]);
            if rec.cancelled {
                assert!(
                    ex.is_none_or(|e| !managed(e)),
                    "cancelled booking still live in Exchange: {rec:#?} {ex:?}"
                );
                assert!(
                    td.is_none_or(|t| !managed(t)),
                    "cancelled booking still live in TOPdesk: {rec:#?} {td:?}"
                );
                continue;
            }
            let (ex, td) = (
                ex.expect("live booking without Exchange item"),
                td.expect("live booking without reservation"),
            );
            assert!(managed(ex) && managed(td), "{rec:#?}\n{ex:?}\n{td:?}");
            assert_eq!((ex.room, ex.slot, ex.len), (td.room, td.slot, td.len), "sides differ for {rec:#?}");
            assert_eq!(room_id(ex.room), rec.room_id);
            // Complexity counts only real changes: never more than the users' edits of its items.
            let edits: u32 = self
                .link
                .iter()
                .filter(|(_, b)| **b == rec.id)
                .map(|(k, _)| self.user_edits.get(k).copied().unwrap_or(0))
                .sum();
            assert!(
                rec.complexity_index <= edits,
                "complexity {} > {edits} real edits: {rec:#?}",
                rec.complexity_index
            );
        }
        // No booking exists twice: every live managed item belongs to exactly one live booking, one per side.
        for side in 0..2 {
            let mut seen = HashMap::new();
            for (key, it) in self.sides[side].iter().enumerate() {
                if !managed(it) {
                    continue;
                }
                let b = self.link.get(&(side, key)).copied().or(it.orb).expect("live item ORB never saw");
                let rec = &self.records[&b];
                assert!(!rec.cancelled, "live item of a cancelled booking: {it:?} {rec:#?}");
                assert_eq!(
                    self.current.get(&(b, side)),
                    Some(&key),
                    "a second live item for one booking: {it:?}"
                );
                assert!(seen.insert(b, key).is_none(), "booking exists twice on side {side}");
            }
        }
        let live = |s: usize| self.sides[s].iter().filter(|i| managed(i)).count();
        assert_eq!(live(0), live(1), "both sides hold the same number of bookings");
    }
}

fn seed() -> proptest::test_runner::RngSeed {
    std::env::var("ORB_CONVERGENCE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(proptest::test_runner::RngSeed::Fixed(0x0b0b_2026), proptest::test_runner::RngSeed::Fixed)
}

fn cases() -> u32 {
    std::env::var("ORB_CONVERGENCE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2000,
        // Deterministic by default (CI must not flake); set ORB_CONVERGENCE_SEED to explore other seeds.
        rng_seed: seed(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/convergence.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn both_sides_converge(
        ops in prop::collection::vec(op(), 1..40),
        conflict in prop_oneof![Just(ConflictPolicy::ExchangeWins), Just(ConflictPolicy::TopdeskWins), Just(ConflictPolicy::LatestWins)],
        mode in prop_oneof![Just(Mode::Organizer), Just(Mode::RoomOnly)],
    ) {
        let mut m = Model::new(conflict, mode);
        m.run(&ops);
        m.check();
    }
}
