//! The world of `orb serve` tests for a tenant on Exchange Server on-premises: the EWS emulator (the three
//! rooms, Anna, ORB's sender, a service account with ApplicationImpersonation over them) and the TOPdesk
//! emulator in the test process, and the [`Site`]'s ORB installation with its tenant switched to EWS
//! through the CLI (`[exchange] kind = "ews"`, `ews.password` with `orb secret set`, `[ews] allow_http`
//! for the plain-http emulator). ORB's public URL is its child's listener, so Exchange's push
//! notifications reach `/hooks/ews/contoso`. The emulator's clock is the wall clock; a ticker runs its due
//! work (status pings, retries, held-back notifications) every 200 ms.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use orb_core::{CorrelationId, EmailAddress, SystemClock};
use orb_emulators::ews::{EwsEmulator, Item, RoomSettings, Scope, Served};
use orb_ews::model::{ItemId, MeetingChange, NewMeeting};
use orb_ews::{Auth, EwsClient, EwsConfig, Target};
use orb_store::{BookingKey, Store};
use orb_testkit::{Convergence, Slot};
use secrecy::SecretString;

use super::{ANNA, Db, ROOMS, Site};

/// ORB's service account (down-level logon name, as an operator types it).
pub const SERVICE: &str = "CONTOSO\\svc-orb";
pub const SERVICE_PASSWORD: &str = "ews-serve-test-password";
/// The account the test acts with as people in Outlook (it may act for everyone).
const OUTLOOK: &str = "outlook";
const OUTLOOK_PASSWORD: &str = "outlook-password";

/// A [`Site`] whose tenant reaches Exchange through EWS.
pub struct EwsSite {
    pub site: Site,
    pub em: EwsEmulator,
    pub served: Served,
    /// People in Outlook.
    pub outlook: EwsClient,
    /// The `client-request-id`s of the requests people made in Outlook (to tell ORB's requests apart in
    /// the emulator's log, also where a fault answered before the account was known).
    outlook_requests: std::sync::Mutex<BTreeSet<String>>,
    ticker: tokio::task::JoinHandle<()>,
}

impl std::ops::Deref for EwsSite {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.site
    }
}

impl std::ops::DerefMut for EwsSite {
    fn deref_mut(&mut self) -> &mut Site {
        &mut self.site
    }
}

impl Drop for EwsSite {
    fn drop(&mut self) {
        self.ticker.abort();
        // The privacy promise over EWS: no request ORB made could have returned a meeting's body.
        if !std::thread::panicking() {
            let asked = self.em.body_requests();
            assert!(asked.is_empty(), "EWS requests asked for a body: {asked:?}");
        }
    }
}

/// A person's Outlook action, tried again while Exchange fails it. A fault may strike after Exchange made
/// the change (its answer lost): before trying again the person looks whether it happened (`done`), as
/// one does in Outlook, so a retry never repeats a change.
async fn retried<T, F, Fut>(what: &str, mut action: F, done: impl Fn() -> Option<T>) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, orb_ews::EwsError>>,
{
    let mut last = None;
    for _ in 0..30 {
        match action().await {
            Ok(v) => return v,
            Err(e) => last = Some(e),
        }
        if let Some(v) = done() {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what}: 30 failures in a row, the last: {last:?}");
}

fn mail(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

impl EwsSite {
    /// The site with every room of [`ROOMS`] mapped, its tenant on EWS.
    pub async fn new(db: &Db, instance: &str) -> Self {
        let mut site = Site::new(db, instance).await;
        let em = EwsEmulator::new(Arc::new(SystemClock));
        em.add_user(ANNA, "Anna Bakker");
        em.add_user("orb@contoso.com", "ORB");
        for (i, room) in ROOMS.iter().enumerate() {
            em.add_room(room, &format!("Room {}", i + 1), RoomSettings::default());
        }
        em.add_room_list("Contoso rooms", "rooms@contoso.com", ROOMS);
        let mut scope: BTreeSet<String> = ROOMS.iter().map(|r| (*r).to_owned()).collect();
        scope.extend([ANNA.to_owned(), "orb@contoso.com".to_owned()]);
        em.add_account(SERVICE, SERVICE_PASSWORD, Scope::Mailboxes(scope));
        em.add_account(OUTLOOK, OUTLOOK_PASSWORD, Scope::All);
        let served = orb_emulators::ews::serve(em.clone()).await.unwrap();
        let auth = Auth::Basic {
            username: OUTLOOK.into(),
            password: SecretString::from(OUTLOOK_PASSWORD.to_owned()),
        };
        let mut config = EwsConfig::new(served.ews_url().parse().unwrap(), auth);
        config.allow_plain_http = true;
        let outlook = EwsClient::new(config).unwrap();

        // The emulator speaks plain http: this installation allows exactly that.
        site.set_var("ORB__EWS__ALLOW_HTTP", "true");
        let file = site.dir.path().join("contoso-ews.toml");
        std::fs::write(
            &file,
            format!(
                "[exchange]\nkind = \"ews\"\n\n[ews]\nurl = \"{}\"\nusername = '{SERVICE}'\nmail_sender = \
                 \"orb@contoso.com\"\n\n[topdesk]\nurl = \"{}\"\nusername = \"{}\"\nlink_type = 7\n",
                served.ews_url(),
                site.td.base_url,
                super::TD_LOGIN
            ),
        )
        .unwrap();
        let out =
            site.ok(&["tenant", "settings", "--tenant", "contoso", "--file", file.to_str().unwrap()], None);
        assert!(out.contains("still needed: the secret ews.password"), "{out}");
        site.ok(&["secret", "set", "--tenant", "contoso", "ews.password"], Some(SERVICE_PASSWORD));
        site.map_all_rooms();

        let ticking = em.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                ticking.tick().await;
            }
        });
        Self { site, em, served, outlook, outlook_requests: std::sync::Mutex::default(), ticker }
    }

    /// Whether Exchange holds a push subscription of ORB's for `room`.
    pub fn subscribed(&self, room: &str) -> bool {
        self.em.subscriptions().iter().any(|s| s.mailbox.eq_ignore_ascii_case(room))
    }

    /// Waits until every room has its push subscription.
    pub async fn all_subscribed(&self) {
        self.eventually("the push subscriptions", 30, || {
            ROOMS.iter().all(|r| self.subscribed(r)).then_some(())
        })
        .await;
    }

    fn anna<'a>(&self, mailbox: &'a EmailAddress) -> Target<'a> {
        let correlation = CorrelationId::generate(Utc::now());
        self.outlook_requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(correlation.to_string());
        Target { mailbox, correlation }
    }

    /// Whether a request in the emulator's log is ORB's (not a person's in Outlook).
    pub fn by_orb(&self, request: &orb_emulators::ews::RequestRecord) -> bool {
        let people = self.outlook_requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        !request.client_request_id.as_ref().is_some_and(|id| people.contains(id))
    }

    /// Anna books `room` in Outlook (a meeting inviting the room, without ORB's extended property, as
    /// Outlook writes it); returns her item's id. Retried while EWS is busy (a person tries again).
    pub async fn book(&self, room: &str, start: DateTime<Utc>, subject: &str) -> String {
        let meeting = NewMeeting {
            subject: subject.into(),
            match_id: "stripped-below".into(),
            start,
            end: start + Duration::hours(1),
            location: None,
            room: Some(mail(room)),
            attendees: Vec::new(),
            time_zone: Some("W. Europe Standard Time".into()),
            recurrence: None,
        };
        // As Outlook writes it: without ORB's extended property.
        let op = orb_emulators::ews::outlook_create_meeting(&meeting);
        let anna = mail(ANNA);
        let made = || {
            self.em.items(ANNA).into_iter().find(|i| i.subject == subject && i.start == start).map(|i| i.id)
        };
        let call = || async {
            let answer = self.outlook.call(self.anna(&anna), op.clone()).await?;
            Ok(orb_ews::response::written_item(&answer, Some(ANNA)).unwrap().id)
        };
        retried("booking in Outlook", call, made).await
    }

    /// Anna moves her meeting `id` to `start` (one hour) in Outlook.
    pub async fn retime(&self, id: &str, start: DateTime<Utc>) {
        let anna = mail(ANNA);
        let change = MeetingChange {
            start: Some(start),
            end: Some(start + Duration::hours(1)),
            ..MeetingChange::default()
        };
        retried(
            "moving a meeting in Outlook",
            || async {
                let id = ItemId { id: id.into(), change_key: None };
                let current = self.outlook.get_item(self.anna(&anna), id).await?;
                self.outlook.update_meeting(self.anna(&anna), current.item_id, &change).await.map(|_| ())
            },
            || None,
        )
        .await;
    }

    /// Anna cancels her meeting `id` in Outlook (the rooms are told).
    pub async fn cancel_meeting(&self, id: &str) {
        let anna = mail(ANNA);
        retried(
            "cancelling a meeting in Outlook",
            || async {
                let id = ItemId { id: id.into(), change_key: None };
                let current = self.outlook.get_item(self.anna(&anna), id).await?;
                self.outlook.cancel_meeting(self.anna(&anna), &current.item_id).await
            },
            || (!self.em.items(ANNA).iter().any(|i| i.id == id)).then_some(()),
        )
        .await;
    }

    /// Anna's live meetings in `room` starting at `start`, with ORB's or Outlook's items alike.
    pub fn meetings_at(&self, room: &str, start: DateTime<Utc>) -> Vec<Item> {
        self.em
            .items(ANNA)
            .into_iter()
            .filter(|i| !i.is_cancelled && i.start == start)
            .filter(|i| i.resources.iter().any(|r| r.email.eq_ignore_ascii_case(room)))
            .collect()
    }

    /// Anna's meeting in `room` at `start` whose booking ORB has linked on both sides (a live record with
    /// the meeting's UID and a reservation): its id.
    pub async fn synced_meeting(
        &self,
        store: &dyn Store,
        room: usize,
        start: DateTime<Utc>,
    ) -> Option<String> {
        let tenant = self.tenant_id(store).await;
        for item in self.meetings_at(ROOMS[room], start) {
            let key = BookingKey::ICalUid { ical_uid: &item.uid, original_start: None };
            if let Ok(Some(record)) = store.find_booking(tenant, &key).await
                && !record.cancelled
                && record.topdesk.reservation_id.is_some()
            {
                return Some(item.id);
            }
        }
        None
    }

    pub async fn tenant_id(&self, store: &dyn Store) -> orb_core::TenantId {
        store.tenant_by_name(&orb_core::TenantName::parse("contoso").unwrap()).await.unwrap().id
    }

    /// The live bookings in the room calendars (the rooms' accepted, not cancelled copies and items)
    /// overlapping `window`, each slot with the number of times it is held.
    pub fn exchange_slots(&self, window: (DateTime<Utc>, DateTime<Utc>)) -> BTreeMap<Slot, usize> {
        let mut out = BTreeMap::new();
        for room in ROOMS {
            for item in self.em.items(room).into_iter().filter(|i| !i.is_cancelled) {
                let slot = Slot { room: (*room).to_owned(), start: item.start, end: item.end };
                if slot.end > window.0 && slot.start < window.1 {
                    *out.entry(slot).or_default() += 1;
                }
            }
        }
        out
    }

    /// Both sides compared (the convergence checker of the Graph site, over the EWS room calendars).
    pub fn converged(&self) -> Convergence {
        let now = Utc::now();
        let window = (now - Duration::days(1), now + Duration::days(120));
        let exchange = self.exchange_slots(window);
        let reservations = self.topdesk_slots(window);
        let mut out =
            Convergence { exchange: exchange.len(), topdesk: reservations.len(), ..Convergence::default() };
        for (slot, n) in &exchange {
            if !reservations.contains_key(slot) {
                out.missing_in_topdesk.push(slot.clone());
            }
            if *n > 1 {
                out.duplicates.push(("Exchange", slot.clone(), *n));
            }
        }
        for (slot, n) in &reservations {
            if !exchange.contains_key(slot) {
                out.missing_in_exchange.push(slot.clone());
            }
            if *n > 1 {
                out.duplicates.push(("TOPdesk", slot.clone(), *n));
            }
        }
        out
    }

    /// Both sides equal to each other and to `model` (the live bookings the test's edits left), nothing
    /// doubled: what is wrong, empty when converged.
    pub fn off_model(&self, model: &BTreeSet<Slot>) -> Vec<String> {
        let now = Utc::now();
        let window = (now - Duration::days(1), now + Duration::days(120));
        let mut wrong = Vec::new();
        for (side, slots) in
            [("Exchange", self.exchange_slots(window)), ("TOPdesk", self.topdesk_slots(window))]
        {
            for s in model.iter().filter(|s| !slots.contains_key(*s)) {
                wrong.push(format!("missing in {side}: {s}"));
            }
            for (s, n) in &slots {
                if !model.contains(s) {
                    wrong.push(format!("extra in {side}: {s}"));
                } else if *n > 1 {
                    wrong.push(format!("{n}× in {side}: {s}"));
                }
            }
        }
        wrong
    }
}

impl super::chaos::ChaosSite for EwsSite {
    fn site(&self) -> &Site {
        &self.site
    }

    async fn book(&self, room: usize, start: DateTime<Utc>, subject: &str) {
        EwsSite::book(self, ROOMS[room], start, subject).await;
    }

    async fn retime(&self, id: &str, start: DateTime<Utc>) {
        EwsSite::retime(self, id, start).await;
    }

    async fn cancel_meeting(&self, id: &str) {
        EwsSite::cancel_meeting(self, id).await;
    }

    async fn synced_meeting(
        &self,
        store: &dyn Store,
        _tenant: orb_core::TenantId,
        room: usize,
        start: DateTime<Utc>,
    ) -> Option<String> {
        EwsSite::synced_meeting(self, store, room, start).await
    }

    fn exchange_slots(&self, window: (DateTime<Utc>, DateTime<Utc>)) -> BTreeMap<Slot, usize> {
        EwsSite::exchange_slots(self, window)
    }
}
