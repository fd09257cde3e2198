//! The crash tests' burst (`serve.rs` for a Graph tenant, `crash_ews.rs` for an EWS one): changes in
//! Outlook and at the service desk, with `orb serve` killed with SIGKILL at a random moment of the work
//! they caused and started again.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use orb_topdesk::{Reason, ReservationId};

use super::ews_site::EwsSite;
use super::{Lcg, Orb, ROOMS, Site, tomorrow};

/// A site whose people book in Outlook, through Graph or through EWS.
#[allow(async_fn_in_trait)]
pub trait Outlook {
    /// The installation (emulators, `orb serve`, the desk's client).
    fn site(&self) -> &Site;
    /// Anna books `room` for an hour at `start`; her meeting's id.
    async fn book_meeting(&self, room: &str, start: DateTime<Utc>, subject: &str) -> String;
    /// Anna moves her meeting `id` to `start`.
    async fn move_meeting(&self, id: &str, start: DateTime<Utc>);
}

impl Outlook for Site {
    fn site(&self) -> &Site {
        self
    }
    async fn book_meeting(&self, room: &str, start: DateTime<Utc>, subject: &str) -> String {
        self.book(room, start, subject).await
    }
    async fn move_meeting(&self, id: &str, start: DateTime<Utc>) {
        self.retime(id, start).await
    }
}

impl Outlook for EwsSite {
    fn site(&self) -> &Site {
        &self.site
    }
    async fn book_meeting(&self, room: &str, start: DateTime<Utc>, subject: &str) -> String {
        self.book(room, start, subject).await
    }
    async fn move_meeting(&self, id: &str, start: DateTime<Utc>) {
        self.retime(id, start).await
    }
}

/// What a burst did.
pub struct Burst {
    /// The `orb serve` started after the last kill (healthy).
    pub orb: Orb,
    /// How many changes people made.
    pub changes: usize,
    /// How long the burst took.
    pub took: StdDuration,
}

/// Makes one to four changes in the first `rooms` rooms (40 % a new meeting, 25 % a new reservation, 20 %
/// a meeting moved, the rest a reservation cancelled), each 20–170 ms apart, then kills `orb` at a random
/// moment within 400 ms and starts it again up to 300 ms later, `kills` times. One booking per hour slot,
/// 08:00–17:00, over the coming days: no two changes collide.
pub async fn with_kills(
    site: &impl Outlook,
    mut orb: Orb,
    rooms: usize,
    kills: usize,
    rng: &mut Lcg,
) -> Burst {
    let started = Instant::now();
    let mut slot = 0_i64;
    let mut next_slot = || {
        slot += 1;
        tomorrow() + Duration::days(slot / 10) + Duration::hours(8 + slot % 10)
    };
    let (mut outlook, mut topdesk): (Vec<String>, Vec<ReservationId>) = (Vec::new(), Vec::new());
    let mut changes = 0;
    for _ in 0..kills {
        for _ in 0..(1 + rng.next(4)) {
            changes += 1;
            let subject = format!("Burst {changes}");
            match rng.next(100) {
                0..40 => {
                    let room = ROOMS[rng.pick(rooms)];
                    outlook.push(site.book_meeting(room, next_slot(), &subject).await);
                }
                40..65 => topdesk.push(site.site().reserve(rng.pick(rooms), next_slot()).await),
                65..85 if !outlook.is_empty() => {
                    let id = outlook[rng.pick(outlook.len())].clone();
                    site.move_meeting(&id, next_slot()).await;
                }
                _ if !topdesk.is_empty() => {
                    let id = topdesk.swap_remove(rng.pick(topdesk.len()));
                    site.site().topdesk.cancel_reservation(id, &Reason::Default).await.unwrap();
                }
                _ => outlook.push(site.book_meeting(ROOMS[0], next_slot(), &subject).await),
            }
            tokio::time::sleep(StdDuration::from_millis(20 + rng.next(150))).await;
        }
        // Kill at a random moment of the work those changes caused, then start again.
        tokio::time::sleep(StdDuration::from_millis(rng.next(400))).await;
        orb.kill().unwrap();
        orb.wait().unwrap();
        tokio::time::sleep(StdDuration::from_millis(rng.next(300))).await;
        orb = site.site().spawn();
    }
    site.site().healthy(&mut orb).await;
    Burst { orb, changes, took: started.elapsed() }
}
