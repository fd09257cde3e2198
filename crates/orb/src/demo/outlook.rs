//! The Outlook side of the demo — where people book, move and cancel their meetings — on Exchange Online
//! through the Graph emulator ([`super::graph`], the default) or on Exchange Server through the EWS
//! emulator ([`super::ews`], `--exchange ews`). Everything else in the demo (the organisation, the
//! simulation, TOPdesk, the lines) is the same for both.

use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use orb_core::Clock;

use super::ews::EwsOutlook;
use super::graph::GraphOutlook;
use super::org::Org;

/// Which Exchange the demo runs against (`--exchange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExchangeKind {
    /// Exchange Online through Microsoft Graph.
    #[default]
    Graph,
    /// Exchange Server on-premises through Exchange Web Services.
    Ews,
}

/// A meeting a person books in Outlook: in the organizer's calendar, the room invited as a resource,
/// colleagues as attendees.
#[derive(Debug, Clone)]
pub(crate) struct Meeting<'a> {
    /// The organizer's mailbox.
    pub organizer: &'a str,
    /// The room mailbox.
    pub room: &'a str,
    /// The room's display name.
    pub room_name: &'a str,
    /// The colleagues invited (not the organizer; a name may come twice).
    pub attendees: Vec<&'a str>,
    /// Subject.
    pub subject: &'a str,
    /// Start (UTC).
    pub start: DateTime<Utc>,
    /// End (UTC).
    pub end: DateTime<Utc>,
    /// A weekly series of this many meetings.
    pub weekly: Option<u32>,
}

/// The Exchange emulator people book in.
#[derive(Clone)]
pub(crate) enum Outlook {
    /// Exchange Online (Graph).
    Graph(GraphOutlook),
    /// Exchange Server (EWS).
    Ews(EwsOutlook),
}

impl Outlook {
    /// Starts the emulator `kind` names, with ORB's registration in it (Graph: the app and the sender;
    /// EWS: the sender and the `outlook` account; ORB's service account comes with the organisation).
    pub(crate) async fn start(kind: ExchangeKind, clock: Arc<dyn Clock>) -> Result<Self> {
        Ok(match kind {
            ExchangeKind::Graph => Self::Graph(GraphOutlook::start(clock).await?),
            ExchangeKind::Ews => Self::Ews(EwsOutlook::start(clock).await?),
        })
    }

    /// A person's mailbox.
    pub(crate) fn add_person(&self, email: &str, name: &str) {
        match self {
            Self::Graph(g) => g.add_person(email, name),
            Self::Ews(e) => e.add_person(email, name),
        }
    }

    /// A room mailbox.
    pub(crate) fn add_room(&self, mailbox: &str, name: &str, building: &str, floor: Option<i32>, seats: i32) {
        match self {
            Self::Graph(g) => g.add_room(mailbox, name, building, floor, seats),
            Self::Ews(e) => e.add_room(mailbox, name, building),
        }
    }

    /// What comes once the organisation is in (EWS: the room lists and ORB's service account).
    pub(crate) fn organise(&self, org: &Org) {
        if let Self::Ews(e) = self {
            e.organise(org);
        }
    }

    /// How many push subscriptions ORB holds.
    pub(crate) fn subscriptions(&self) -> usize {
        match self {
            Self::Graph(g) => g.em.subscriptions().len(),
            Self::Ews(e) => e.subscriptions(),
        }
    }

    /// The live meetings in a room's calendar between `from` and `to` (series expanded).
    pub(crate) fn room_calendar(
        &self,
        mailbox: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        match self {
            Self::Graph(g) => g.room_calendar(mailbox, from, to),
            Self::Ews(e) => e.room_calendar(mailbox, from, to),
        }
    }

    /// The id of `organizer`'s own single meeting in `room` at `start`–`end`.
    pub(crate) fn event_at(
        &self,
        organizer: &str,
        room: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<String> {
        match self {
            Self::Graph(g) => g.event_at(organizer, room, start, end),
            Self::Ews(e) => e.event_at(organizer, room, start, end),
        }
    }

    /// Books a meeting.
    pub(crate) async fn book(&self, meeting: &Meeting<'_>) -> Result<()> {
        match self {
            Self::Graph(g) => g.book(meeting),
            Self::Ews(e) => e.book(meeting).await,
        }
    }

    /// New times for the organizer's meeting `id`.
    pub(crate) async fn move_meeting(
        &self,
        organizer: &str,
        id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<()> {
        match self {
            Self::Graph(g) => g.move_meeting(organizer, id, start, end),
            Self::Ews(e) => e.move_meeting(organizer, id, start, end).await,
        }
    }

    /// "Cancel meeting" on the organizer's meeting `id`.
    pub(crate) async fn cancel(&self, organizer: &str, id: &str) -> Result<()> {
        match self {
            Self::Graph(g) => g.cancel(organizer, id),
            Self::Ews(e) => e.cancel(organizer, id).await,
        }
    }

    /// The header's first line.
    pub(crate) fn title(&self) -> &'static str {
        match self {
            Self::Graph(_) => "ORB demo: ORB running against the Graph and TOPdesk emulators",
            Self::Ews(_) => "ORB demo: ORB running against the Exchange Server (EWS) and TOPdesk emulators",
        }
    }

    /// ORB's webhook path for this Exchange (`/hooks/graph/demo`, `/hooks/ews/demo`).
    pub(crate) fn hook_path(&self) -> &'static str {
        match self {
            Self::Graph(_) => "/hooks/graph/demo",
            Self::Ews(_) => "/hooks/ews/demo",
        }
    }

    /// The header's line about the emulator.
    pub(crate) fn header_line(&self) -> String {
        match self {
            Self::Graph(g) => {
                let base = &g.served.base_url;
                format!("  Graph          {base}  (control API: {base}/_emulator/)")
            }
            Self::Ews(e) => format!(
                "  Exchange       Exchange Server (EWS emulator) {}  (control API: {}/_emulator/)",
                e.ews_url(),
                e.base_url()
            ),
        }
    }

    /// A summary line of this Exchange's own (EWS: the requests that could have returned an item body).
    pub(crate) fn summary_line(&self) -> Option<String> {
        match self {
            Self::Graph(_) => None,
            Self::Ews(e) => {
                let (asked, all) = e.body_requests();
                Some(format!("EWS requests asking for an item body: {asked} of {all}"))
            }
        }
    }
}
