//! A person's erasure (`Store::erase_person`, what `orb privacy erase` runs) in the running engine: after
//! Anna is erased her address is nowhere in the database (SQLite files incl. the write-ahead log, or every
//! PostgreSQL table), and her booking keeps syncing both ways — a retime in Outlook reaches TOPdesk, a
//! reschedule at the TOPdesk desk reaches her Outlook calendar — because the engine learns her address
//! back from Outlook, the system of record (`sync::restore_erased`).

mod support;

use orb_core::Clock as _;
use orb_core::privacy::pseudonym;
use orb_graph::model::Event;
use orb_store::JobStatus;
use serde_json::json;
use support::world::*;
use support::{eventually, mail};

fn start_of(event: &Event) -> chrono::DateTime<chrono::Utc> {
    event.start.as_ref().unwrap().to_utc().unwrap()
}

impl World {
    async fn erase_anna(&self) -> orb_core::EmailAddress {
        let anna = mail(ANNA);
        let alias = pseudonym(self.tenant.id, &anna);
        let counts =
            self.store.erase_person(self.tenant.id, &anna, &alias, "test", self.clock.now()).await.unwrap();
        assert!(counts.bookings >= 1, "{counts}");
        alias
    }

    /// Fails if Anna's address is anywhere in the database.
    async fn nothing_names_anna(&self, what: &str) {
        let dump = self._store.dump().await.to_ascii_lowercase();
        assert!(!dump.contains(&ANNA.to_ascii_lowercase()), "{what}: Anna's address is still stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erased_persons_booking_keeps_syncing_both_ways() {
    on_every_store(|w| async move {
        let event = w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let id = event["id"].as_str().unwrap().to_owned();
        w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        assert!(w._store.dump().await.to_ascii_lowercase().contains(ANNA), "the dump does see addresses");

        // Erased: the record names her pseudonym, nothing stores her address.
        let alias = w.erase_anna().await;
        let record = w.bookings().await.remove(0);
        assert_eq!((&record.organizer, &record.original_organizer), (&alias, &alias));
        w.nothing_names_anna("after the erasure").await;
        let log = w.store.list_audit(w.tenant.id, 1).await.unwrap();
        assert_eq!(log[0].action, "privacy.erased");

        // Anna retimes her meeting in Outlook: TOPdesk follows, and Outlook's address is back in the record.
        let url = w.graph_control(&format!("mailboxes/{ANNA}/events/{id}"));
        let body = json!({
            "start": {"dateTime": "2026-09-03T13:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-09-03T14:00:00", "timeZone": "UTC"},
        });
        let resp = w.http.patch(url).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        let record =
            w.booking_where("the retime to be synced", |r| r.start == at("2026-09-03T13:00:00Z")).await;
        w.settled().await;
        assert_eq!(w.reservations()[0].planned_start_date, Some(at("2026-09-03T13:00:00Z")));
        assert_eq!(record.organizer, mail(ANNA), "the source system brings her address back");
        assert_eq!(record.original_organizer, alias, "the set-once original organizer stays erased");

        // Erased again; the desk reschedules in TOPdesk: her Outlook meeting follows.
        w.erase_anna().await;
        w.nothing_names_anna("after the second erasure").await;
        let reservation = w.reservations()[0].id.unwrap().to_string();
        let url = format!("{}/_emulator/reservations/{reservation}/reschedule", w.td.base_url);
        let body =
            json!({"plannedStartDate": "2026-09-03T15:00:00Z", "plannedEndDate": "2026-09-03T16:00:00Z"});
        let resp = w.http.post(url).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        let resp = w
            .http
            .post(format!("{}/hooks/topdesk/contoso", w.intake))
            .bearer_auth(PUSH_TOKEN)
            .json(&json!({"reservations": [reservation]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        eventually("Anna's meeting to follow the desk", || async {
            let events = w.graph_em.events(ANNA).unwrap();
            let meeting = events.iter().find(|e| e.id.as_deref() == Some(id.as_str()))?;
            (start_of(meeting) == at("2026-09-03T15:00:00Z")).then_some(())
        })
        .await;
        w.settled().await;
        let record = w.bookings().await.remove(0);
        assert_eq!(record.start, at("2026-09-03T15:00:00Z"));
        assert_eq!(record.organizer, mail(ANNA));
        assert!(w.jobs(JobStatus::Dead).await.is_empty(), "{:?}", w.jobs(JobStatus::Dead).await);
        assert!(w.graph_em.events(ANNA).unwrap().len() == 1, "still one meeting");
    })
    .await;
}
