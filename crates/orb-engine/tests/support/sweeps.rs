//! What the sweep tests (`reconcile.rs`, `redrive.rs`) share: running a sweep of the world's room, and
//! acting as people without ORB being told.

use chrono::{DateTime, Duration, Utc};
use orb_core::Clock as _;
use orb_emulators::graph::{Knobs, NotificationKnobs};
use orb_engine::reconcile::{SweepOptions, SweepReport, sweep_room_with};
use orb_store::JobStatus;
use orb_topdesk::ReservationId;
use orb_topdesk::wire::ReservationDto;
use serde_json::{Value, json};

use super::world::{ANNA, World};

impl World {
    /// The sweep window of these tests: a day back, thirty days ahead.
    pub fn sweep_window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let now = self.clock.now();
        (now - Duration::days(1), now + Duration::days(30))
    }

    /// Sweeps the world's room now, with `options`.
    pub async fn sweep_with(&self, options: SweepOptions) -> SweepReport {
        sweep_room_with(
            &self.deps,
            self.tenant.id,
            self.room.id,
            self.sweep_window(),
            self.clock.now(),
            options,
        )
        .await
        .unwrap()
    }

    /// Sweeps the world's room now, as the scheduler does.
    pub async fn sweep(&self) -> SweepReport {
        self.sweep_with(SweepOptions::default()).await
    }

    /// While on, every Graph notification POST (change or lifecycle) is lost; dropping is decided when the
    /// change is made, so switching it off afterwards is safe.
    pub fn drop_notifications(&self, on: bool) {
        let knobs = self.graph_em.knobs();
        self.graph_em.set_knobs(Knobs {
            notifications: NotificationKnobs {
                drop_next: if on { 1_000_000 } else { 0 },
                ..knobs.notifications.clone()
            },
            ..knobs
        });
    }

    /// Anna moves her meeting in Outlook.
    pub async fn retime_in_outlook(&self, event: &Value, start: &str, end: &str) {
        let id = event["id"].as_str().unwrap();
        let resp = self
            .http
            .patch(self.graph_control(&format!("mailboxes/{ANNA}/events/{id}")))
            .json(&json!({
                "start": {"dateTime": start, "timeZone": "UTC"},
                "end": {"dateTime": end, "timeZone": "UTC"}
            }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }

    /// The reservation with `id` as the TOPdesk emulator holds it.
    pub fn reservation_by_id(&self, id: Option<ReservationId>) -> ReservationDto {
        self.reservations().into_iter().find(|r| r.id == id).expect("the reservation")
    }

    /// No job went dead.
    pub async fn no_dead_jobs(&self) {
        let dead = self.jobs(JobStatus::Dead).await;
        assert!(dead.is_empty(), "{dead:?}");
    }
}
