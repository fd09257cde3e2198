//! Rule 5: what happens when **both sides changed** a booking since ORB last saw them.
//!
//! [`conflict`] is called by the planner with the observation and the other side's current state
//! (`Observation::counterpart`) when both differ from the fingerprints in the record. Two outcomes:
//! - the sides changed **different fields** of a live booking in a managed room ([`merge_disjoint`]):
//!   nothing is overwritten, each side gets the other's fields and the record takes both;
//! - otherwise the tenant's [`ConflictPolicy`] picks the winner, the winner is propagated over the loser
//!   (`super::propagate`), an `Action::RaiseConflict` names the overwritten fields, and the organizer is
//!   mailed when their Outlook change lost.
//!
//! ## Invariants
//! - Pure, like the whole planner: no clock, no I/O; the same input gives the same plan.
//! - Whenever the plan updates the record, both sides' ids and watermarks go into it, so neither
//!   observation is taken for a change again.
//! - Two sides that made the same change are no conflict to raise: the record takes it, nothing is written.
//! - A merge writes in a fixed order (TOPdesk, then Exchange) whichever side the policy would favour.
//! - This module only calls into its parent (`Planner` and the record helpers); the parent uses it only
//!   through [`conflict`].

use crate::canonical::{CanonicalFields, CanonicalRoom};
use crate::observation::Observation;
use crate::plan::{Action, NothingReason, Plan, RecordChange, TimelineKind};
use crate::policy::MailTemplate;
use crate::{BookingRecord, ConflictPolicy, Side, SyncStatus};

use super::{Planner, absorb_ids, apply_fields, propagate, set_fingerprint, set_status};

/// Decides a conflict between the observations `a` and `b` of the two sides (rule 5); see the module docs.
pub(super) fn conflict(p: Planner<'_, '_>, rec: &BookingRecord, a: &Observation, b: &Observation) -> Plan {
    let ctx = p.ctx;
    let policy = p.policy().conflict;
    let (ex, td) = if a.side == Side::Exchange { (a, b) } else { (b, a) };
    let winner_side = match policy {
        ConflictPolicy::ExchangeWins => Side::Exchange,
        ConflictPolicy::TopdeskWins => Side::Topdesk,
        ConflictPolicy::LatestWins => {
            if td.modified_at > ex.modified_at {
                Side::Topdesk
            } else {
                Side::Exchange
            }
        }
    };
    let (winner, loser) = if winner_side == Side::Exchange { (ex, td) } else { (td, ex) };
    let w = p.interpret(winner, Some(rec));
    let l = p.interpret(loser, Some(rec));
    let mut p = match merge_disjoint(p, rec, (winner, &w), (loser, &l)) {
        Ok(plan) => return plan,
        Err(p) => p,
    };
    if w == l {
        let mut new = rec.clone();
        absorb_ids(&mut new, winner);
        absorb_ids(&mut new, loser);
        set_fingerprint(&mut new, winner.side, &p.as_held(winner));
        set_fingerprint(&mut new, loser.side, &p.as_held(loser));
        if CanonicalFields::from_record(rec) != w {
            apply_fields(&mut new, &w);
            new.complexity_index += 1;
        }
        new.last_updated_at = p.ctx.now;
        new.last_updated_processor = Some(winner.side);
        p.note(TimelineKind::Conflict, None, "both sides made the same change");
        return p.finish(
            vec![Action::Nothing { reason: NothingReason::NoSyncedFieldChanged }],
            RecordChange::Update(Box::new(new)),
        );
    }
    let fields: Vec<String> = l.changed_fields(&w).into_iter().map(str::to_owned).collect();
    p.note(
        TimelineKind::Conflict,
        Some(loser.side),
        format!(
            "both sides changed; {policy:?}: {} wins, {}'s change to {} is overwritten",
            winner.side,
            loser.side,
            fields.join(", ")
        ),
    );
    let mut plan = propagate(p, rec, winner, Some(loser));
    plan.actions.push(Action::RaiseConflict {
        booking: rec.id,
        winner: winner.side,
        loser: loser.side,
        policy,
        fields,
    });
    if let RecordChange::Update(r) = &mut plan.record {
        absorb_ids(r, loser);
    }
    // The loser's author is told: the organizer when their Outlook change lost. A desk change that lost has
    // no author ORB can reach (a reservation names no modifier), and the organizer's own change won.
    if loser.side == Side::Exchange && ctx.policy.mails(MailTemplate::ConflictOverwritten) {
        plan.actions.push(Action::SendMail {
            template: MailTemplate::ConflictOverwritten,
            to: rec.organizer.clone(),
            booking: rec.id,
            detail: None,
        });
    }
    plan
}

/// Both sides changed a live booking in a managed room, but **different fields** (say a subject renamed in
/// Outlook and the times moved at the desk): no change overwrites the other, so there is no loser. Each
/// side gets the other's fields; the record takes both. The planner falls back when the two changed a field in
/// common (or one cancelled, or a room is not managed): the conflict policy decides.
fn merge_disjoint<'a, 'b>(
    mut p: Planner<'a, 'b>,
    rec: &BookingRecord,
    (winner, w): (&Observation, &CanonicalFields),
    (loser, l): (&Observation, &CanonicalFields),
) -> Result<Plan, Planner<'a, 'b>> {
    let base = CanonicalFields::from_record(rec);
    let managed = |c: &CanonicalFields| matches!(c.room, CanonicalRoom::Managed(_));
    if rec.cancelled || w.cancelled || l.cancelled || !managed(w) || !managed(l) {
        return Err(p);
    }
    let by_winner = base.changed_fields(w);
    let by_loser = base.changed_fields(l);
    if by_winner.is_empty() || by_loser.is_empty() || by_winner.iter().any(|f| by_loser.contains(f)) {
        return Err(p);
    }
    let merged = base.clone().with_fields_of(w, &by_winner).with_fields_of(l, &by_loser);
    let mut actions = Vec::new();
    let mut next = rec.clone();
    absorb_ids(&mut next, winner);
    absorb_ids(&mut next, loser);
    apply_fields(&mut next, &merged);
    // The same order whoever "won": TOPdesk, then Exchange.
    for side in [Side::Topdesk, Side::Exchange] {
        let now = if side == winner.side { w } else { l };
        let before = actions.len();
        p.update_on(side, now, &merged, rec, &mut actions);
        let written = actions.len() > before;
        set_fingerprint(&mut next, side, &p.project(&merged, side));
        set_status(&mut next, side, if written { SyncStatus::Pending } else { SyncStatus::Synced });
    }
    next.complexity_index += 1;
    next.last_updated_at = p.ctx.now;
    next.last_updated_processor = Some(winner.side);
    p.note(
        TimelineKind::Conflict,
        None,
        format!(
            "both sides changed, different fields ({}: {}; {}: {}): both changes kept",
            winner.side,
            by_winner.join(", "),
            loser.side,
            by_loser.join(", ")
        ),
    );
    if actions.is_empty() {
        actions.push(Action::Nothing { reason: NothingReason::NoSyncedFieldChanged });
    }
    Ok(p.finish(actions, RecordChange::Update(Box::new(next))))
}
