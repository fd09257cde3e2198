//! The sweep's last step: the mass-deletion guard (rule 12) over the jobs the sweep found, the restore of
//! deletions an admin rejected, and the jobs' enqueueing (see the parent module's "The mass-deletion guard"
//! and "Rejecting held deletions").

use super::*;

impl Sweep<'_> {
    /// Applies the guard and enqueues the jobs: deletions first, then re-drives, changes, new items.
    pub(super) async fn finish(
        &mut self,
        report: &mut SweepReport,
        options: SweepOptions,
    ) -> Result<(), SyncError> {
        let future = self.future_bookings();
        report.future_bookings = future.len();
        let mut pending = std::mem::take(&mut self.pending);
        for (id, seen) in std::mem::take(&mut self.seen) {
            let Some(record) = self.by_id.get(&id) else { continue };
            let absent = |side: Side| seen.absent(side);
            let (ex_absent, td_absent) = (absent(Side::Exchange), absent(Side::Topdesk));
            let absent = |side: Side| if side == Side::Exchange { ex_absent } else { td_absent };
            let (main, counterpart) = match (seen.exchange_change, seen.topdesk_change) {
                (Some(ex), Some(td)) => (ex, Some(td)),
                (Some(one), None) | (None, Some(one)) => (one, None),
                (None, None) => continue,
            };
            // A cancellation the side confirmed (listed or read as cancelled) or one inferred from absence.
            let cancelling = |o: &Observation, from_absence: bool| {
                o.lifecycle != Lifecycle::Active && absent(o.side) == from_absence
            };
            let both = |from_absence: bool| {
                cancelling(&main, from_absence)
                    || counterpart.as_ref().is_some_and(|c| cancelling(c, from_absence))
            };
            let (confirmed, inferred) = (both(false), both(true));
            let observation = Observation { counterpart: counterpart.map(Box::new), ..main };
            pending.push(Pending {
                observation,
                correlation: Some(record.correlation_id),
                kind: if confirmed || inferred { Kind::Deleted } else { Kind::Changed },
                cancels: (inferred && !confirmed && future.contains(&id)).then_some(id),
                redrive: None,
                listed: false,
            });
        }
        for obs in std::mem::take(&mut self.new_events) {
            if self.has_requester(&obs).await? {
                pending.push(Pending {
                    observation: obs,
                    correlation: None,
                    kind: Kind::New,
                    cancels: None,
                    redrive: None,
                    listed: false,
                });
            } else {
                report.skipped += 1;
            }
        }
        for (obs, _) in std::mem::take(&mut self.new_reservations) {
            pending.push(Pending {
                observation: obs,
                correlation: None,
                kind: Kind::New,
                cancels: None,
                redrive: None,
                listed: false,
            });
        }

        if options.restore_held_deletions {
            pending = self.restore(pending, report, options).await?;
        }
        let cancelling: BTreeSet<BookingId> = pending.iter().filter_map(|p| p.cancels).collect();
        let stats = SweepStats {
            room: self.mapping.id,
            future_bookings: u32::try_from(future.len()).unwrap_or(u32::MAX),
            cancelling: u32::try_from(cancelling.len()).unwrap_or(u32::MAX),
            approved: options.approve_mass_deletion,
        };
        // An admin who rejected the deletions wants none carried out: one that could not be restored stays
        // held, however few there are.
        let hold = !stats.approved
            && (self.runtime.policy.mass_deletion.trips(stats.cancelling, stats.future_bookings)
                || (options.restore_held_deletions && !cancelling.is_empty()));
        if hold {
            report.held_deletions = pending.iter().filter(|p| p.cancels.is_some()).count();
            if options.dry_run {
                let held = pending.iter().filter(|p| p.cancels.is_some());
                report.planned.extend(held.map(|p| PlannedChange::of(Difference::Held, &p.observation)));
            } else {
                self.audit_held(&stats, report.held_deletions).await?;
            }
            pending.retain(|p| p.cancels.is_none());
        }
        pending.sort_by_key(|p| match p.kind {
            Kind::Deleted => 0,
            Kind::Redrive => 1,
            Kind::Changed => 2,
            Kind::New => 3,
        });
        for p in pending {
            match p.kind {
                Kind::New => report.jobs.new += 1,
                Kind::Changed => report.jobs.changed += 1,
                Kind::Deleted => report.jobs.deleted += 1,
                Kind::Redrive => report.jobs.redriven += 1,
            }
            if options.dry_run {
                let difference = match p.kind {
                    Kind::New => Difference::New,
                    Kind::Changed => Difference::Changed,
                    Kind::Deleted | Kind::Redrive => Difference::Deleted,
                };
                if !p.listed {
                    report.planned.push(PlannedChange::of(difference, &p.observation));
                }
                continue;
            }
            let payload = SyncObservationJob {
                // In organizer mode an Exchange observation of the sweep is the room's copy, whose subject
                // Exchange rewrote (the organizer's name): the worker must not take it for the meeting's.
                room_copy: p.observation.side == Side::Exchange
                    && self.runtime.policy.mode == Mode::Organizer,
                // Under `drop` the subject never reaches the job table.
                observation: scrubbed(&self.runtime.policy, p.observation),
                sweep: Some(stats),
                redrive: p.redrive,
            };
            let lane = Lane::room(self.tenant(), self.mapping.id);
            let job = payload.to_job(lane, Some(p.correlation.unwrap_or_else(|| self.corr())), None);
            self.deps.store.enqueue(&job, self.now).await?;
        }
        Ok(())
    }

    /// Restores the deletions inferred from absence an admin rejected (see "Rejecting held deletions" in the
    /// module docs): for each, the side that still holds the booking is read by id; when its item is live
    /// and did not change since ORB last processed it, the record forgets the vanished side's item and
    /// records that side as owing the booking ([`BookingRecord::forget_item`], one timeline entry), and a
    /// re-drive job with the item's observation (no counterpart) takes the place of the deletion: the
    /// planner creates the booking on the vanished side again and the executor links the new item to the
    /// record. Any other deletion is returned as it was (the caller holds it). Returns the pending jobs.
    pub(super) async fn restore(
        &mut self,
        pending: Vec<Pending>,
        report: &mut SweepReport,
        options: SweepOptions,
    ) -> Result<Vec<Pending>, SyncError> {
        let mut out = Vec::with_capacity(pending.len());
        let mut restores = Vec::new();
        for p in pending {
            // A deletion inferred from absence of one side, the other side not changed (a change there
            // would be carried as the counterpart): a re-drive job of a failed side is not one.
            let restorable = p.kind == Kind::Deleted && p.observation.counterpart.is_none();
            let Some(record) = p.cancels.filter(|_| restorable).and_then(|id| self.by_id.get(&id).cloned())
            else {
                out.push(p);
                continue;
            };
            let vanished = p.observation.side;
            let current = match vanished.other() {
                Side::Exchange => self.exchange_by_id(&record).await?,
                Side::Topdesk => self.topdesk_by_id(&record, None).await?,
            };
            let kept = match current {
                Current::Item { observation, absent: false }
                    if observation.lifecycle == Lifecycle::Active
                        && !match observation.side {
                            Side::Exchange => self.exchange_changed(&record, &observation),
                            Side::Topdesk => Self::is_newer(&record, Side::Topdesk, observation.modified_at),
                        } =>
                {
                    observation
                }
                _ => {
                    tracing::info!(
                        booking = %record.id,
                        "a rejected deletion cannot be restored now (the other side's item changed or is not \
                         readable); held"
                    );
                    out.push(p);
                    continue;
                }
            };
            let observation = Observation { orb_match_id: Some(record.id), counterpart: None, ..kept };
            if options.dry_run {
                report.planned.push(PlannedChange {
                    side: vanished,
                    ..PlannedChange::of(Difference::Restored, &observation)
                });
            } else if !self.forget(&record, vanished).await? {
                continue; // the record changed meanwhile: the next sweep looks again
            }
            report.restored += 1;
            report.restored_to.push((record.id, vanished));
            restores.push(Pending {
                observation,
                correlation: Some(record.correlation_id),
                kind: Kind::Redrive,
                cancels: None,
                redrive: Some(vanished),
                listed: true,
            });
        }
        out.append(&mut restores);
        Ok(out)
    }

    /// Records that the item `side` held of `record` vanished and is to be made again (a rejected
    /// deletion), with a timeline entry. `false` when the record changed meanwhile.
    pub(super) async fn forget(&self, record: &BookingRecord, side: Side) -> Result<bool, SyncError> {
        let mut next = record.clone();
        next.forget_item(side);
        let entry = NewBookingEvent {
            at: self.now,
            kind: "decision".to_owned(),
            side: Some(side),
            detail: json!({
                "detail": format!(
                    "the booking vanished from {} and an admin rejected its deletion: it is written to {} \
                     again from {}",
                    side_name(side),
                    side_name(side),
                    side_name(side.other())
                ),
                "event_id": record.exchange.room_event_id,
                "reservation_id": record.topdesk.reservation_id,
            }),
        };
        match self.deps.store.update_booking(&next, &[entry], &[], self.now).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the [`AUDIT_MASS_DELETION_HELD`] entry naming the room and the counts.
    pub(super) async fn audit_held(&self, stats: &SweepStats, held: usize) -> Result<(), SyncError> {
        let target = format!(
            "room {} ({}): the sweep would cancel {} of {} future bookings; {held} deletion(s) held for an admin",
            self.mailbox(),
            self.mapping.id,
            stats.cancelling,
            stats.future_bookings,
        );
        tracing::warn!(%target, "mass-deletion guard: deletions held");
        self.deps
            .store
            .append_audit(&NewAuditEntry {
                tenant_id: Some(self.tenant()),
                at: self.now,
                actor: AUDIT_ACTOR.to_owned(),
                action: AUDIT_MASS_DELETION_HELD.to_owned(),
                target,
                ip: None,
            })
            .await?;
        Ok(())
    }
}
