//! The Outlook side on Exchange Online: the Graph emulator (`orb demo`, the default). People book in
//! their own calendars through the emulator's state, as Outlook would; ORB reaches it over Graph.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Datelike, Utc, Weekday};
use orb_core::Clock;
use orb_emulators::graph::{GraphEmulator, RoomInfo, Served};
use orb_graph::model::Event;
use serde_json::json;

use super::outlook::Meeting;
use super::{CLIENT_ID, CLIENT_SECRET, ENTRA_TENANT, SENDER};

/// The same zone as Outlook names it.
pub(crate) const WINDOWS_ZONE: &str = "W. Europe Standard Time";

/// The Graph emulator, served.
#[derive(Clone)]
pub(crate) struct GraphOutlook {
    /// The emulator's state.
    pub em: GraphEmulator,
    /// The running server (stops when the last clone goes).
    pub served: Arc<Served>,
}

/// Outlook's `dateTime` text of a UTC instant.
fn utc_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

impl GraphOutlook {
    /// A Graph emulator with ORB's app (client secret) and mail sender, served on a port of its own.
    pub(crate) async fn start(clock: Arc<dyn Clock>) -> Result<Self> {
        let em = GraphEmulator::new(clock);
        register_app(&em);
        let served = orb_emulators::graph::serve(em.clone()).await.context("starting the Graph emulator")?;
        Ok(Self { em, served: Arc::new(served) })
    }

    /// A person's mailbox.
    pub(crate) fn add_person(&self, email: &str, name: &str) {
        self.em.add_user(ENTRA_TENANT, email, name);
    }

    /// A room mailbox with its building, floor and seats.
    pub(crate) fn add_room(&self, mailbox: &str, name: &str, building: &str, floor: Option<i32>, seats: i32) {
        let info = RoomInfo {
            capacity: Some(seats),
            building: Some(building.to_owned()),
            floor_number: floor,
            ..RoomInfo::default()
        };
        self.em.add_room(ENTRA_TENANT, mailbox, name, info);
    }

    /// The live meetings in a room's calendar between `from` and `to` (series expanded).
    pub(crate) fn room_calendar(
        &self,
        mailbox: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.em
            .calendar_view(mailbox, from, to)
            .unwrap_or_default()
            .iter()
            .filter(|e| e.is_cancelled != Some(true))
            .filter_map(|e| Some((e.start.as_ref()?.to_utc().ok()?, e.end.as_ref()?.to_utc().ok()?)))
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
        self.em.events(organizer).ok()?.into_iter().find_map(|e| {
            let live = e.is_cancelled != Some(true) && e.recurrence.is_none();
            let times = e.start.as_ref()?.to_utc().ok()? == start && e.end.as_ref()?.to_utc().ok()? == end;
            let in_room = e
                .attendees
                .iter()
                .flatten()
                .any(|a| a.address().is_some_and(|x| x.eq_ignore_ascii_case(room)));
            (live && times && in_room).then_some(e.id).flatten()
        })
    }

    /// Books the room in the organizer's calendar (the room invited as a resource, colleagues as
    /// attendees; a weekly series when asked).
    pub(crate) fn book(&self, m: &Meeting<'_>) -> Result<()> {
        let mut attendees =
            vec![json!({"type": "resource", "emailAddress": {"address": m.room, "name": m.room_name}})];
        for colleague in &m.attendees {
            attendees.push(json!({"type": "required", "emailAddress": {"address": colleague}}));
        }
        let zone = super::org::ZONE;
        let local = |t: DateTime<Utc>| t.with_timezone(&zone).format("%Y-%m-%dT%H:%M:%S").to_string();
        let mut event = json!({
            "subject": m.subject,
            "start": {"dateTime": local(m.start), "timeZone": WINDOWS_ZONE},
            "end": {"dateTime": local(m.end), "timeZone": WINDOWS_ZONE},
            "location": {"displayName": m.room_name, "locationEmailAddress": m.room, "locationType": "conferenceRoom"},
            "attendees": attendees,
        });
        if let Some(weeks) = m.weekly {
            let local_start = m.start.with_timezone(&zone);
            let day = match local_start.weekday() {
                Weekday::Mon => "monday",
                Weekday::Tue => "tuesday",
                Weekday::Wed => "wednesday",
                Weekday::Thu => "thursday",
                Weekday::Fri => "friday",
                Weekday::Sat => "saturday",
                Weekday::Sun => "sunday",
            };
            event["recurrence"] = json!({
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [day], "firstDayOfWeek": "monday"},
                "range": {"type": "numbered", "startDate": local_start.date_naive().to_string(),
                          "numberOfOccurrences": weeks, "recurrenceTimeZone": WINDOWS_ZONE},
            });
        }
        let event: Event =
            serde_json::from_value(event).context("the demo's meeting is not a Graph event")?;
        self.em
            .create_in(m.organizer, &event, &orb_emulators::graph::calendar::View::default())
            .map_err(|e| anyhow!("booking {} in {}'s calendar failed: {e:?}", m.room_name, m.organizer))?;
        Ok(())
    }

    /// New times for the organizer's meeting `id`.
    pub(crate) fn move_meeting(
        &self,
        organizer: &str,
        id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<()> {
        let event: Event = serde_json::from_value(json!({
            "start": {"dateTime": utc_text(start), "timeZone": "UTC"},
            "end": {"dateTime": utc_text(end), "timeZone": "UTC"},
        }))?;
        self.em
            .update_in(organizer, id, &event, &orb_emulators::graph::calendar::View::default())
            .map_err(|e| anyhow!("moving a meeting in {organizer}'s calendar failed: {e:?}"))?;
        Ok(())
    }

    /// "Cancel meeting" on the organizer's meeting `id`.
    pub(crate) fn cancel(&self, organizer: &str, id: &str) -> Result<()> {
        self.em
            .remove_in(organizer, id, true)
            .map_err(|e| anyhow!("cancelling a meeting in {organizer}'s calendar failed: {e:?}"))
    }
}

/// Registers ORB's app (client secret) and mail sender in the Graph emulator (shared with `orb bench`).
pub(crate) fn register_app(em: &GraphEmulator) {
    em.add_app_secret(ENTRA_TENANT, CLIENT_ID, CLIENT_SECRET);
    em.add_user(ENTRA_TENANT, SENDER, "ORB");
}
