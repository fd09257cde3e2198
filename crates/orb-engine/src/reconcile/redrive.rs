//! Re-drives: records whose side owes the booking (failed, cut off or drifted), with back-off (see the
//! parent module's "What is compared").

use super::*;

impl Sweep<'_> {
    /// The side of a record (with both sides synced and live) whose item disagrees with the record although
    /// it did not change since ORB last processed it. A reservation is read in full only when its listed
    /// start disagrees.
    pub(super) async fn drifted(&mut self, record: &BookingRecord) -> Result<Option<Side>, SyncError> {
        if record.cancelled
            || record.exchange_status != SyncStatus::Synced
            || record.topdesk_status != SyncStatus::Synced
        {
            return Ok(None);
        }
        let rooms = &self.runtime.rooms;
        let (exchange, topdesk_now, listed_start_differs) = {
            let Some(seen) = self.seen.get(&record.id) else { return Ok(None) };
            if seen.exchange_change.is_some() || seen.topdesk_change.is_some() {
                return Ok(None); // changes are planned as changes
            }
            let exchange = seen.exchange_now.as_ref().is_some_and(|o| disagrees(record, o, rooms));
            let listed_start_differs = seen
                .topdesk_listed
                .is_some_and(|(_, start)| start.is_some_and(|s| minute(s) != minute(record.start)));
            (exchange, seen.topdesk_now.clone(), listed_start_differs)
        };
        let topdesk = match (topdesk_now, listed_start_differs) {
            (Some(now), _) => disagrees(record, &now, rooms),
            (None, true) => match self.current(record, Side::Topdesk).await? {
                Current::Item { observation, absent: false } => {
                    disagrees(record, &observation, &self.runtime.rooms)
                }
                _ => false,
            },
            (None, false) => false,
        };
        Ok(match (exchange, topdesk) {
            (true, false) => Some(Side::Exchange),
            (false, true) => Some(Side::Topdesk),
            _ => None,
        })
    }

    /// Bookings whose transient failure's own `sync.retry` job is queued (it goes first).
    pub(super) async fn retrying(&self) -> Result<BTreeSet<BookingId>, SyncError> {
        let queued = self.deps.store.list_jobs(self.tenant(), JobStatus::Queued).await?;
        Ok(queued.iter().filter_map(|j| SyncRetryJob::of(j).ok()).map(|j| j.booking_id).collect())
    }

    /// Finds the records a side owes and re-drives them (see the module docs): one job with the good side's
    /// observation and the owing side's current state as its counterpart.
    pub(super) async fn redrive(
        &mut self,
        report: &mut SweepReport,
        options: SweepOptions,
    ) -> Result<(), SyncError> {
        let future = self.future_bookings();
        let mut retrying: Option<BTreeSet<BookingId>> = None;
        for record in self.records.clone() {
            if record.end <= self.now {
                continue; // over: nothing left to put right
            }
            let owed = match owed_by_status(&record, self.now) {
                Some(owed) => Some(owed),
                None => {
                    self.drifted(&record).await?.map(|side| (side, Owing::Drifted, record.last_updated_at))
                }
            };
            let Some((side, owing, since)) = owed else { continue };
            let due = match (owing, record.failed_at) {
                (Owing::Failed, Some(at)) => redrive_not_before(at, record.failed_count),
                _ => self.now,
            };
            let mut entry = OwedBooking {
                booking: record.id,
                side,
                owing,
                since,
                due,
                redriven: false,
                waiting: None,
                start: record.start,
                end: record.end,
            };
            if self.seen.get(&record.id).is_some_and(|s| s.change(side).is_some()) {
                // Someone changed the owing side since: that change is planned as a change.
                entry.waiting = Some(format!("changed in {} since; planned as that change", side_name(side)));
                report.owed.push(entry);
                continue;
            }
            if !options.redrive_now {
                if due > self.now {
                    entry.waiting = Some(format!("back-off after {} failure(s)", record.failed_count));
                    report.owed.push(entry);
                    continue;
                }
                if retrying.is_none() {
                    retrying = Some(self.retrying().await?);
                }
                if retrying.as_ref().is_some_and(|r| r.contains(&record.id)) {
                    entry.waiting = Some("its retry is queued".to_owned());
                    report.owed.push(entry);
                    continue;
                }
            }
            let good = side.other();
            let (main, absent) = match self.current(&record, good).await? {
                Current::Item { observation, absent } => (observation, absent),
                Current::Nothing | Current::Unknown => {
                    entry.waiting = Some(format!("{} shows no item ORB can read", side_name(good)));
                    report.owed.push(entry);
                    continue;
                }
            };
            let counterpart = match self.current(&record, side).await? {
                Current::Item { observation, absent: false } => Some(observation),
                Current::Item { absent: true, .. } | Current::Nothing => None,
                Current::Unknown => {
                    entry.waiting = Some(format!("{}'s item is not one ORB can read", side_name(side)));
                    report.owed.push(entry);
                    continue;
                }
            };
            if owing != Owing::Failed && !options.dry_run && !self.mark_failed(&record, side, owing).await? {
                entry.waiting = Some("the record changed meanwhile".to_owned());
                report.owed.push(entry);
                continue;
            }
            let cancelling = main.lifecycle != Lifecycle::Active;
            let observation =
                Observation { orb_match_id: Some(record.id), counterpart: counterpart.map(Box::new), ..main };
            if options.dry_run {
                report
                    .planned
                    .push(PlannedChange { side, ..PlannedChange::of(Difference::Redrive, &observation) });
            }
            self.pending.push(Pending {
                observation,
                correlation: Some(record.correlation_id),
                kind: Kind::Redrive,
                cancels: (cancelling && absent && future.contains(&record.id)).then_some(record.id),
                redrive: Some(side),
                listed: true,
            });
            // The re-drive carries whatever the comparison found for this record.
            self.seen.remove(&record.id);
            entry.redriven = true;
            report.owed.push(entry);
        }
        Ok(())
    }

    /// Records that `side` of `record` owes the booking although no write failed (a write cut off, an item
    /// that drifted), as a failure of that side with a timeline entry, so the planner re-drives it like any
    /// failed side (and a later sweep with the failure's back-off). `false` when the record changed
    /// meanwhile (the worker got there first).
    pub(super) async fn mark_failed(
        &self,
        record: &BookingRecord,
        side: Side,
        owing: Owing,
    ) -> Result<bool, SyncError> {
        let mut next = record.clone();
        next.record_failure(side, self.now);
        let entry = NewBookingEvent {
            at: self.now,
            kind: "failure".to_owned(),
            side: Some(side),
            detail: json!({
                "detail": format!(
                    "the reconciliation sweep found that {} does not hold the booking as ORB decided ({}); \
                     written again",
                    side_name(side),
                    owing.as_str()
                ),
            }),
        };
        match self.deps.store.update_booking(&next, &[entry], &[], self.now).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
