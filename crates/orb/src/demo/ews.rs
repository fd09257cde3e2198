//! The Outlook side on Exchange Server on-premises: the EWS emulator (`orb demo --exchange ews`).
//!
//! The organisation is the Graph demo's: the rooms with their calendar processing and a room list per
//! building, the people as user mailboxes, ORB's sender mailbox, and ORB's service account holding
//! ApplicationImpersonation scoped to exactly those mailboxes (the tenant's `[ews]` settings name it; its
//! password is the sealed secret `ews.password`). People act through a second account, `outlook`, that may
//! act for everyone: each meeting is written over EWS as Outlook writes it — in the organizer's calendar,
//! inviting the room, without ORB's extended property — and the room's booking attendant answers. What
//! the rooms' calendars and the organizers' items hold is read from the emulator's state.
//!
//! The emulator delivers push notifications after each request; a ticker runs what is due on the clock
//! besides (status events, retries), as Exchange does on its own.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc, Weekday};
use orb_core::{Clock, CorrelationId, EmailAddress};
use orb_emulators::ews::state::Kind;
use orb_emulators::ews::{EwsEmulator, Item, RoomSettings, Scope, Served};
use orb_ews::model::{ItemId, MeetingChange, NewMeeting};
use orb_ews::series::{DayOfWeek, Pattern, Range, Recurrence};
use orb_ews::{Auth, EwsClient, EwsConfig, Target};
use secrecy::SecretString;

use super::SENDER;
use super::graph::WINDOWS_ZONE;
use super::org::{DOMAIN, Org};
use super::outlook::Meeting;

/// ORB's service account (the tenant's `ews.username`).
pub(crate) const SERVICE_ACCOUNT: &str = "svc-orb";
/// Its password (the tenant's secret `ews.password`).
pub(crate) const SERVICE_PASSWORD: &str = "demo-ews-service-password";
/// The account people act through, as Outlook would for each of them.
const OUTLOOK_ACCOUNT: &str = "outlook";
const OUTLOOK_PASSWORD: &str = "demo-outlook-password";
/// How often what is due on the emulator's clock is run.
const TICK: StdDuration = StdDuration::from_secs(1);

/// The running server and its ticker (both stop when the last handle goes), and the `outlook` account's
/// client.
struct Running {
    served: Served,
    ticker: tokio::task::JoinHandle<()>,
    outlook: EwsClient,
    clock: Arc<dyn Clock>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

/// The EWS emulator, served, with the `outlook` account's client.
#[derive(Clone)]
pub(crate) struct EwsOutlook {
    /// The emulator's state.
    pub em: EwsEmulator,
    running: Arc<Running>,
    /// Rooms by building, for the room lists.
    buildings: Arc<Mutex<Vec<(String, String)>>>,
}

impl EwsOutlook {
    /// An EWS emulator with ORB's sender mailbox and the `outlook` account, served on a port of its own.
    pub(crate) async fn start(clock: Arc<dyn Clock>) -> Result<Self> {
        let em = EwsEmulator::new(clock.clone());
        em.add_user(SENDER, "ORB");
        em.add_account(OUTLOOK_ACCOUNT, OUTLOOK_PASSWORD, Scope::All);
        let served = orb_emulators::ews::serve(em.clone()).await.context("starting the EWS emulator")?;
        let auth = Auth::Basic {
            username: OUTLOOK_ACCOUNT.into(),
            password: SecretString::from(OUTLOOK_PASSWORD.to_owned()),
        };
        let endpoint = served.ews_url().parse().context("the EWS emulator's URL")?;
        let outlook = EwsClient::new(EwsConfig { allow_plain_http: true, ..EwsConfig::new(endpoint, auth) })?;
        let ticker = {
            let em = em.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(TICK);
                loop {
                    every.tick().await;
                    em.tick().await;
                }
            })
        };
        Ok(Self {
            em,
            running: Arc::new(Running { served, ticker, outlook, clock }),
            buildings: Arc::default(),
        })
    }

    /// `http://127.0.0.1:{port}`.
    pub(crate) fn base_url(&self) -> &str {
        &self.running.served.base_url
    }

    /// The EWS endpoint (`{base}/EWS/Exchange.asmx`).
    pub(crate) fn ews_url(&self) -> String {
        self.running.served.ews_url()
    }

    /// A person's mailbox.
    pub(crate) fn add_person(&self, email: &str, name: &str) {
        self.em.add_user(email, name);
    }

    /// A room mailbox with Exchange's default calendar processing, in its building's room list.
    pub(crate) fn add_room(&self, mailbox: &str, name: &str, building: &str) {
        self.em.add_room(mailbox, name, RoomSettings::default());
        self.buildings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((building.to_owned(), mailbox.to_owned()));
    }

    /// The room lists (one per building) and ORB's service account, its ApplicationImpersonation scoped
    /// to the rooms, the people and the sender.
    pub(crate) fn organise(&self, org: &Org) {
        let rooms = self.buildings.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut buildings: Vec<&str> = rooms.iter().map(|(b, _)| b.as_str()).collect();
        buildings.dedup();
        for building in buildings {
            let members: Vec<&str> =
                rooms.iter().filter(|(b, _)| b == building).map(|(_, m)| m.as_str()).collect();
            let address = format!("{}-rooms@{DOMAIN}", building.to_lowercase());
            self.em.add_room_list(&format!("{building} rooms"), &address, &members);
        }
        let scope: BTreeSet<String> = org
            .rooms
            .iter()
            .map(|r| r.mailbox.clone())
            .chain(org.people.iter().map(|p| p.email.clone()))
            .chain([SENDER.to_owned()])
            .collect();
        self.em.add_account(SERVICE_ACCOUNT, SERVICE_PASSWORD, Scope::Mailboxes(scope));
    }

    /// ORB's push subscriptions.
    pub(crate) fn subscriptions(&self) -> usize {
        self.em.subscriptions().len()
    }

    /// The live meetings in a room's calendar between `from` and `to` (series expanded).
    pub(crate) fn room_calendar(
        &self,
        mailbox: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.em
            .items(mailbox)
            .iter()
            .filter(|i| !i.is_cancelled)
            .flat_map(|i| instances(i, from, to))
            .collect()
    }

    /// The id of `organizer`'s own single meeting in `room` at `start`–`end`.
    pub(crate) fn event_at(
        &self,
        organizer: &str,
        room: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<String> {
        self.em
            .items(organizer)
            .into_iter()
            .find(|i| {
                !i.is_cancelled
                    && i.kind == Kind::Single
                    && i.start == start
                    && i.end == end
                    && i.resources.iter().any(|r| r.email.eq_ignore_ascii_case(room))
            })
            .map(|i| i.id)
    }

    fn target<'a>(&self, mailbox: &'a EmailAddress) -> Target<'a> {
        Target { mailbox, correlation: CorrelationId::generate(self.running.clock.now()) }
    }

    /// Books the room in the organizer's calendar over EWS, as Outlook writes it (no ORB property).
    pub(crate) async fn book(&self, m: &Meeting<'_>) -> Result<()> {
        let organizer = EmailAddress::parse(m.organizer)?;
        let mut attendees: Vec<EmailAddress> = Vec::new();
        for colleague in &m.attendees {
            let address = EmailAddress::parse(colleague)?;
            if !attendees.iter().any(|a| a.as_str().eq_ignore_ascii_case(address.as_str())) {
                attendees.push(address);
            }
        }
        let recurrence = m.weekly.map(|weeks| {
            let local = m.start.with_timezone(&super::org::ZONE);
            Recurrence {
                pattern: Pattern::Weekly {
                    interval: 1,
                    days: vec![DayOfWeek::Day(local.weekday())],
                    first_day_of_week: Some(Weekday::Mon),
                },
                range: Range::Numbered { start: local.date_naive(), count: weeks },
            }
        });
        let meeting = NewMeeting {
            subject: m.subject.to_owned(),
            match_id: "set-by-orb-only".into(),
            start: m.start,
            end: m.end,
            location: Some(m.room_name.to_owned()),
            room: Some(EmailAddress::parse(m.room)?),
            attendees,
            time_zone: Some(WINDOWS_ZONE.into()),
            recurrence,
        };
        // As Outlook writes it: without ORB's extended property.
        let op = orb_emulators::ews::outlook_create_meeting(&meeting);
        let answer = self
            .running
            .outlook
            .call(self.target(&organizer), op)
            .await
            .with_context(|| format!("booking {} in {}'s calendar failed", m.room_name, m.organizer))?;
        orb_ews::response::written_item(&answer, Some(organizer.as_str()))
            .with_context(|| format!("booking {} in {}'s calendar failed", m.room_name, m.organizer))?;
        Ok(())
    }

    /// The organizer's item `id` with its current change key.
    fn current(&self, organizer: &str, id: &str) -> Result<ItemId> {
        let item = self
            .em
            .items(organizer)
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| anyhow!("the meeting is no longer in {organizer}'s calendar"))?;
        Ok(ItemId::new(item.id, item.change_key))
    }

    /// New times for the organizer's meeting `id` (UpdateItem, the room informed).
    pub(crate) async fn move_meeting(
        &self,
        organizer: &str,
        id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<()> {
        let mailbox = EmailAddress::parse(organizer)?;
        let change = MeetingChange { start: Some(start), end: Some(end), ..MeetingChange::default() };
        self.running
            .outlook
            .update_meeting(self.target(&mailbox), self.current(organizer, id)?, &change)
            .await
            .with_context(|| format!("moving a meeting in {organizer}'s calendar failed"))?;
        Ok(())
    }

    /// "Cancel meeting" on the organizer's meeting `id` (CancelCalendarItem).
    pub(crate) async fn cancel(&self, organizer: &str, id: &str) -> Result<()> {
        let mailbox = EmailAddress::parse(organizer)?;
        self.running
            .outlook
            .cancel_meeting(self.target(&mailbox), &self.current(organizer, id)?)
            .await
            .with_context(|| format!("cancelling a meeting in {organizer}'s calendar failed"))
    }

    /// The privacy promise over EWS, for the summary: how many requests could have returned an item
    /// body, of how many.
    pub(crate) fn body_requests(&self) -> (usize, usize) {
        (self.em.body_requests().len(), self.em.requests().len())
    }
}

/// A calendar item's live presence in `[from, to)`: a single item once, a series once per live
/// occurrence (exceptions at their changed times, deleted occurrences left out), expanded as the
/// emulator does (orb-core's expansion in the master's `StartTimeZone`).
fn instances(item: &Item, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let Some(rec) = &item.recurrence else {
        return if item.start < to && item.end > from { vec![(item.start, item.end)] } else { Vec::new() };
    };
    let zone = item.time_zone.as_deref().unwrap_or("UTC");
    let local_start = orb_core::zones::resolve_graph_zone(zone)
        .map_or(item.start.time(), |tz| item.start.with_timezone(&tz.tz()).time());
    let first = rec.range.start().and_time(NaiveTime::MIN).and_utc() - Duration::days(2);
    // Exceptions cannot cross their neighbours: a month past `to` covers every one moved into it.
    let horizon = to + Duration::days(31);
    let patterned = rec.to_patterned(Some(zone));
    orb_core::recurrence::expand(&patterned, local_start, item.end - item.start, zone, first, horizon)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| !item.deleted_occurrences.contains(&o.start))
        .map(|o| item.exceptions.get(&o.start).map_or((o.start, o.end), |ex| (ex.start, ex.end)))
        .filter(|(s, e)| *s < to && *e > from)
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use orb_core::SystemClock;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    const ANNA: &str = "anna@orb-demo.example";
    const ROOM: &str = "utrecht-0.12@rooms.orb-demo.example";

    fn meeting(start: &str, end: &str, weekly: Option<u32>) -> Meeting<'static> {
        Meeting {
            organizer: ANNA,
            room: ROOM,
            room_name: "Utrecht 0.12 (8)",
            attendees: vec!["bram@orb-demo.example", "bram@orb-demo.example", ANNA],
            subject: "Sprint planning",
            start: at(start),
            end: at(end),
            weekly,
        }
    }

    #[tokio::test]
    async fn people_book_move_and_cancel_over_ews_and_the_room_calendar_shows_it() {
        let side = EwsOutlook::start(Arc::new(SystemClock)).await.unwrap();
        side.add_person(ANNA, "Anna de Vries");
        side.add_person("bram@orb-demo.example", "Bram Jansen");
        side.add_room(ROOM, "Utrecht 0.12 (8)", "Utrecht");

        // A weekly series across the change to winter time: 09:00 Amsterdam time every Monday.
        side.book(&meeting("2026-10-19T07:00:00Z", "2026-10-19T08:00:00Z", Some(3))).await.unwrap();
        let weeks = side.room_calendar(ROOM, at("2026-10-18T00:00:00Z"), at("2026-11-30T00:00:00Z"));
        assert_eq!(
            weeks,
            [
                (at("2026-10-19T07:00:00Z"), at("2026-10-19T08:00:00Z")),
                (at("2026-10-26T08:00:00Z"), at("2026-10-26T09:00:00Z")),
                (at("2026-11-02T08:00:00Z"), at("2026-11-02T09:00:00Z")),
            ]
        );
        assert_eq!(side.room_calendar(ROOM, at("2026-10-20T00:00:00Z"), at("2026-10-26T00:00:00Z")), []);

        // A single meeting: found as Anna's own, moved, cancelled.
        let (start, end) = (at("2026-10-20T12:00:00Z"), at("2026-10-20T13:00:00Z"));
        side.book(&meeting("2026-10-20T12:00:00Z", "2026-10-20T13:00:00Z", None)).await.unwrap();
        let id = side.event_at(ANNA, ROOM, start, end).expect("Anna's meeting");
        assert_eq!(side.event_at(ANNA, ROOM, at("2026-10-19T07:00:00Z"), at("2026-10-19T08:00:00Z")), None);
        let (moved_start, moved_end) = (at("2026-10-21T12:00:00Z"), at("2026-10-21T13:00:00Z"));
        side.move_meeting(ANNA, &id, moved_start, moved_end).await.unwrap();
        let day = |d: &str| (at(&format!("{d}T00:00:00Z")), at(&format!("{d}T23:59:00Z")));
        let (from, to) = day("2026-10-21");
        assert_eq!(side.room_calendar(ROOM, from, to), [(moved_start, moved_end)]);
        let (from, to) = day("2026-10-20");
        assert_eq!(side.room_calendar(ROOM, from, to), []);
        side.cancel(ANNA, &id).await.unwrap();
        let (from, to) = day("2026-10-21");
        assert_eq!(side.room_calendar(ROOM, from, to), []);

        // Outlook's requests carried no ORB property and asked for no body.
        assert_eq!(side.body_requests().0, 0);
        assert!(side.em.items(ANNA).iter().all(|i| i.extended.is_empty()));
    }
}
