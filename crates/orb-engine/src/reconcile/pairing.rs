//! Pairing and onboarding: record-less items of both sides paired into one record, and ORB's own items
//! whose record was lost adopted again (see the parent module's "What is compared").

use super::*;

impl Sweep<'_> {
    /// Pairs new events with new reservations of the same booking and records each pair as one booking:
    /// first by ORB's match id, then by times and organizer.
    pub(super) async fn pair(
        &mut self,
        report: &mut SweepReport,
        options: SweepOptions,
    ) -> Result<(), SyncError> {
        let tenant = self.tenant();
        let mut events: Vec<Option<Observation>> =
            std::mem::take(&mut self.new_events).into_iter().map(Some).collect();
        let mut reservations: Vec<Option<(Observation, Option<String>)>> =
            std::mem::take(&mut self.new_reservations).into_iter().map(Some).collect();
        for by_match_id in [true, false] {
            for slot in &mut events {
                let Some(event) = slot.as_ref() else { continue };
                let partner = reservations.iter().position(|r| {
                    r.as_ref().is_some_and(|(t, _)| {
                        if by_match_id { same_match_id(tenant, event, t) } else { same_times(event, t) }
                    })
                });
                let Some(index) = partner else { continue };
                let (Some(event), Some((reservation, requester))) = (slot.take(), reservations[index].take())
                else {
                    continue;
                };
                let relinked = event.orb_match_id.is_some() || reservation.orb_match_id.is_some();
                if options.dry_run {
                    report.paired += 1;
                    let difference = if relinked { Difference::Relinked } else { Difference::Paired };
                    report.planned.push(PlannedChange::of(difference, &event));
                    continue;
                }
                let id = event
                    .orb_match_id
                    .or(reservation.orb_match_id)
                    .or_else(|| derived_booking_id(tenant, &reservation))
                    .unwrap_or_else(|| BookingId::generate(self.now));
                match self.onboard(&event, &reservation, requester, id).await? {
                    true => report.paired += 1,
                    false => report.skipped += 2,
                }
            }
        }
        self.new_events = events.into_iter().flatten().collect();
        self.new_reservations = reservations.into_iter().flatten().collect();
        Ok(())
    }

    /// Inserts one record `id` linked to both items of a pair (nothing is written to either side). `false`
    /// when the planner would not make a booking of them or a record appeared meanwhile.
    pub(super) async fn onboard(
        &self,
        event: &Observation,
        reservation: &Observation,
        requester: Option<String>,
        id: BookingId,
    ) -> Result<bool, SyncError> {
        let policy = &self.runtime.policy;
        // The items are planned as a new booking of each side (ORB's match id says "made by ORB", which the
        // planner refuses to make a record of: the sweep is doing exactly that).
        let mut event = Observation { orb_match_id: None, ..event.clone() };
        let reservation = Observation { orb_match_id: None, ..reservation.clone() };
        if policy.mode == Mode::Organizer {
            // The room copy's subject is Exchange's rewrite; TOPdesk's is the booking's (unless it is only
            // the neutral room-side text).
            event.subject = match policy.subject {
                SubjectPolicy::HideOnRoom { .. } => None,
                _ => reservation.subject.clone(),
            };
        }
        let persons = PersonDirectory::new(requester.map(|p| (event.organizer.clone(), p)));
        let ctx = PlanContext {
            tenant_id: self.tenant(),
            policy,
            rooms: &self.runtime.rooms,
            persons: &persons,
            now: self.now,
            new_ids: NewIds { booking: id, correlation: self.corr() },
            sweep: None,
        };
        let (RecordChange::Create(mut record), RecordChange::Create(from_topdesk)) =
            (plan(None, &event, &ctx).record, plan(None, &reservation, &ctx).record)
        else {
            tracing::info!("a matching event and reservation the planner would not book; left alone");
            return Ok(false);
        };
        record.topdesk = from_topdesk.topdesk.clone();
        record.topdesk_fingerprint = from_topdesk.topdesk_fingerprint.clone();
        record.exchange_status = SyncStatus::Synced;
        record.topdesk_status = SyncStatus::Synced;
        let entry = NewBookingEvent {
            at: self.now,
            kind: TIMELINE_ONBOARDED.to_owned(),
            side: None,
            detail: json!({
                "detail": "onboarded by the reconciliation sweep: the room's event and the TOPdesk reservation \
                           (same booking by match id, or same room, times and organizer) are one booking; \
                           nothing written",
                "event_id": event.ids.event_id,
                "reservation_id": reservation.ids.reservation_id,
            }),
        };
        self.insert(&record, entry).await
    }

    /// Inserts a record the sweep made; `false` when one appeared meanwhile.
    pub(super) async fn insert(
        &self,
        record: &BookingRecord,
        entry: NewBookingEvent,
    ) -> Result<bool, SyncError> {
        match self.deps.store.insert_booking(record, &[entry], &[], self.now).await {
            Ok(stored) => {
                tracing::info!(booking = %stored.id, "booking recorded by the sweep");
                Ok(true)
            }
            Err(StoreError::AlreadyExists { what } | StoreError::Conflict { what, .. }) => {
                tracing::info!(%what, "a record for the items appeared meanwhile; not recorded");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// ORB's items (carrying a match id) that no record knows and that no item of the other side paired
    /// with: recorded again under their match id, and the other side made again — or, when the other side
    /// shows a cancelled item of the same booking, that cancellation carried over.
    pub(super) async fn adopt_orphans(
        &mut self,
        report: &mut SweepReport,
        options: SweepOptions,
    ) -> Result<(), SyncError> {
        let tenant = self.tenant();
        let (orphan_events, events): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.new_events).into_iter().partition(|o| o.orb_match_id.is_some());
        let (orphan_reservations, reservations): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.new_reservations)
                .into_iter()
                .partition(|(o, _)| o.orb_match_id.is_some());
        self.new_events = events;
        self.new_reservations = reservations;
        let orphans = orphan_events.into_iter().map(|o| (o, None)).chain(orphan_reservations);
        for (orphan, requester) in orphans {
            let Some(id) = orphan.orb_match_id else { continue };
            let partner = self
                .cancelled_items
                .iter()
                .find(|c| {
                    c.side != orphan.side && (same_match_id(tenant, &orphan, c) || same_times(&orphan, c))
                })
                .cloned();
            let (job, kind, difference) = match &partner {
                Some(cancelled) => (cancelled.clone(), Kind::Deleted, Difference::Deleted),
                None => (orphan.clone(), Kind::New, Difference::Recreated),
            };
            if options.dry_run {
                report.recreated += usize::from(partner.is_none());
                report.planned.push(PlannedChange::of(difference, &job));
                self.pending_job(job, None, kind);
                continue;
            }
            let requester = match (orphan.side, requester) {
                (Side::Exchange, _) => self.requester(&orphan.organizer).await?,
                (Side::Topdesk, requester) => requester,
            };
            let Some(record) = self.adopt(&orphan, requester, id, partner.as_ref()) else {
                report.skipped += 1;
                continue;
            };
            let entry = NewBookingEvent {
                at: self.now,
                kind: TIMELINE_ONBOARDED.to_owned(),
                side: Some(orphan.side),
                detail: json!({
                    "detail": if partner.is_some() {
                        "recorded again by the reconciliation sweep: ORB's item carries this match id but no \
                         record knew it (a restored database?); the other side's item is cancelled, so ORB's \
                         is cancelled too"
                    } else {
                        "recorded again by the reconciliation sweep: ORB's item carries this match id but no \
                         record knew it (a restored database?) and the other side's item is gone; it is made \
                         again"
                    },
                    "event_id": orphan.ids.event_id,
                    "reservation_id": orphan.ids.reservation_id,
                }),
            };
            if !self.insert(&record, entry).await? {
                report.skipped += 1;
                continue;
            }
            report.recreated += usize::from(partner.is_none());
            self.pending_job(job, Some(record.correlation_id), kind);
        }
        Ok(())
    }

    /// The TOPdesk person id of `organizer` (`None`: no such person).
    pub(super) async fn requester(&self, organizer: &EmailAddress) -> Result<Option<String>, SyncError> {
        let persons = self.runtime.topdesk.find_persons_by_email(organizer.as_str()).await?;
        Ok(persons.into_iter().find_map(|p| p.id).map(|p| p.to_string()))
    }

    /// The record of ORB's item `orphan` under its match id `id`, built with the planner. Without a
    /// `cancelled` partner the other side is left unwritten (no fingerprint, no ids, pending) and the item's
    /// fingerprint is left out, so the worker plans the booking as new again and creates it there; with one, the partner is linked and
    /// holds the booking as the record does, so its cancellation is a change the worker carries over.
    /// `None` when the planner would not book the item.
    pub(super) fn adopt(
        &self,
        orphan: &Observation,
        requester: Option<String>,
        id: BookingId,
        cancelled: Option<&Observation>,
    ) -> Option<BookingRecord> {
        let plain = Observation { orb_match_id: None, ..orphan.clone() };
        let persons = PersonDirectory::new(requester.map(|p| (orphan.organizer.clone(), p)));
        let ctx = PlanContext {
            tenant_id: self.tenant(),
            policy: &self.runtime.policy,
            rooms: &self.runtime.rooms,
            persons: &persons,
            now: self.now,
            new_ids: NewIds { booking: id, correlation: self.corr() },
            sweep: None,
        };
        let RecordChange::Create(record) = plan(None, &plain, &ctx).record else {
            tracing::info!(booking = %id, "ORB's item without a record is not one the planner books; left alone");
            return None;
        };
        let mut record = *record;
        let other = orphan.side.other();
        match (cancelled, other) {
            // The item's own fingerprint is left out too: the worker must not take its observation for an
            // echo, but plan the booking as new again (the other side never written).
            (None, _) => {
                record.exchange_fingerprint = None;
                record.topdesk_fingerprint = None;
                match other {
                    Side::Exchange => record.exchange_status = SyncStatus::Pending,
                    Side::Topdesk => record.topdesk_status = SyncStatus::Pending,
                }
            }
            (Some(c), Side::Exchange) => {
                record.exchange.room_event_id.clone_from(&c.ids.event_id);
                record.exchange.ical_uid.clone_from(&c.ids.ical_uid);
                record.exchange_status = SyncStatus::Synced;
            }
            (Some(c), Side::Topdesk) => {
                record.topdesk.reservation_id.clone_from(&c.ids.reservation_id);
                record.topdesk.reservation_number.clone_from(&c.ids.reservation_number);
                record.topdesk_status = SyncStatus::Synced;
            }
        }
        Some(record)
    }

    /// Whether TOPdesk can get a requester for a new Exchange booking: the organizer is a TOPdesk person or
    /// the tenant has a fallback person. Without one the planner records nothing and mails a refusal, which
    /// a sweep must not repeat every time.
    pub(super) async fn has_requester(&self, obs: &Observation) -> Result<bool, SyncError> {
        if self.runtime.policy.fallback_person.is_some() {
            return Ok(true);
        }
        if self.requester(&obs.organizer).await?.is_some() {
            return Ok(true);
        }
        tracing::info!(
            "organizer of a new room event is not a TOPdesk person and there is no fallback; skipped"
        );
        Ok(false)
    }
}
