//! [`Exchange`] over EWS (Exchange Server on-premises): every call impersonates the mailbox it is about
//! (the service account's ApplicationImpersonation, scoped to the rooms, the organizers and ORB's sender).
//!
//! ## Mapping to the engine's meeting ([`Event`])
//! - Ids: `ItemId.Id` is the event id, `ItemId.ChangeKey` the change key (the version ORB stores and names
//!   in every write); `UID` is the iCalUId shared by the organizer's item and the room's copy (U9).
//! - Times come in UTC; `StartTimeZone` (a Windows id) is the original start zone.
//! - `Resources` become resource attendees (the rooms), `RequiredAttendees` required ones, each with its
//!   `ResponseType`; `MyResponseType` is the copy's own answer; the organizer's item is the one whose
//!   `Organizer` is the mailbox read.
//! - ORB's match id (the extended property) becomes the same single-value extended property the Graph
//!   client reads ([`orb_graph::ORB_MATCH_PROPERTY_ID`]): one MAPI named property for both protocols.
//! - Occurrences and exceptions carry their master's id (read once per series with
//!   `RecurringMasterItemId`, then remembered), so series keys are the same as Graph's.
//!
//! ## What reads cost (ews.md §3.1/U20: a calendar view cannot be trusted to carry `UID`)
//! A calendar view is a `FindItem` plus one `GetItem` of everything listed; a write is the write plus one
//! `GetItem` of what was written (EWS answers a write with the id and change key only).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use orb_core::{CorrelationId, EmailAddress};
use orb_ews::model::{
    CalendarItem, CalendarItemType, ItemId, MeetingChange, NewMeeting, OutgoingMail, Window,
};
use orb_ews::series::ItemRef;
use orb_ews::{EwsClient, EwsError, Target};
use orb_graph::model::{
    Attendee, AttendeeType, DateTimeTimeZone, EmailAddress as GraphAddress, Event, EventType, Location,
    Message, PatternedRecurrence, Recipient, ResponseStatus, ResponseType, SingleValueExtendedProperty,
};

use super::{DirectoryRoom, Exchange, ExchangeError, ExchangeKind};

/// A tenant's Exchange Server, through its EWS client.
#[derive(Debug)]
pub struct EwsExchange {
    client: EwsClient,
    /// The mailbox directory calls (room lists) act as: ORB's sender mailbox.
    directory_mailbox: EmailAddress,
    /// Series master ids by (mailbox, UID): an occurrence's master is read once.
    masters: Mutex<BTreeMap<(EmailAddress, String), String>>,
    /// Changes arrive over streaming connections ([`crate::ews_stream`]) instead of push.
    streaming: bool,
}

impl EwsExchange {
    /// Over `client`; directory calls act as `directory_mailbox`.
    pub fn new(client: EwsClient, directory_mailbox: EmailAddress) -> Self {
        Self { client, directory_mailbox, masters: Mutex::default(), streaming: false }
    }

    /// Whether changes arrive over streaming connections (`[ews] notifications = "streaming"`) rather
    /// than push.
    #[must_use]
    pub fn streaming(mut self, streaming: bool) -> Self {
        self.streaming = streaming;
        self
    }

    /// Whether the tenant's changes arrive over streaming connections ([`crate::ews_stream`]).
    pub fn streams(&self) -> bool {
        self.streaming
    }

    /// The EWS client (push subscriptions are EWS's own, outside the seam).
    pub fn client(&self) -> &EwsClient {
        &self.client
    }

    fn target<'a>(mailbox: &'a EmailAddress, corr: CorrelationId) -> Target<'a> {
        Target { mailbox, correlation: corr }
    }

    /// The master id of an occurrence or exception, read once per series.
    async fn master_id(
        &self,
        mailbox: &EmailAddress,
        item: &CalendarItem,
        corr: CorrelationId,
    ) -> Option<String> {
        let uid = item.uid.clone()?;
        let key = (mailbox.clone(), uid);
        if let Some(id) = self.masters.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
            return Some(id.clone());
        }
        let occurrence = ItemId { id: item.item_id.id.clone(), change_key: None };
        match self.client.get_item(Self::target(mailbox, corr), ItemRef::MasterOf(occurrence)).await {
            Ok(master) => {
                let id = master.item_id.id.clone();
                let mut masters = self.masters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if masters.len() > 10_000 {
                    masters.clear();
                }
                masters.insert(key, id.clone());
                Some(id)
            }
            Err(e) => {
                tracing::info!(error = %e, "the master of an occurrence could not be read");
                None
            }
        }
    }

    /// `item` as the engine's meeting, with its master's id when it is part of a series.
    async fn event(&self, mailbox: &EmailAddress, item: CalendarItem, corr: CorrelationId) -> Event {
        let master = match item.item_type {
            Some(CalendarItemType::Occurrence | CalendarItemType::Exception) => {
                self.master_id(mailbox, &item, corr).await
            }
            _ => None,
        };
        to_event(mailbox, &item, master)
    }

    async fn read(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        corr: CorrelationId,
    ) -> Result<Event, ExchangeError> {
        let item = self
            .client
            .get_item(Self::target(mailbox, corr), ItemId { id: id.to_owned(), change_key: None })
            .await?;
        Ok(self.event(mailbox, item, corr).await)
    }

    /// Every item of `mailbox` in the window, read in full.
    async fn view(
        &self,
        mailbox: &EmailAddress,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        corr: CorrelationId,
    ) -> Result<Vec<Event>, ExchangeError> {
        let target = Self::target(mailbox, corr);
        let page = self.client.calendar_view(target, Window { start: from, end: to }).await?;
        if !page.includes_last {
            return Err(EwsError::Invalid {
                reason: format!(
                    "the calendar of {mailbox} holds more items between {from} and {to} than one view returns; \
                     shorten the sweep window or raise the view's MaxEntriesReturned"
                ),
            }
            .into());
        }
        let ids: Vec<ItemId> = page.items.into_iter().map(|i| i.item_id).collect();
        let mut events = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            for read in self.client.get_items(target, chunk).await? {
                match read {
                    Ok(item) => events.push(self.event(mailbox, item, corr).await),
                    // Gone between the view and the read: not in the calendar any more.
                    Err(EwsError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(events)
    }

    /// The change key to write with: the one ORB saw, else the item's current one (an unconditional
    /// write, as Graph's without `If-Match`).
    async fn version(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        change_key: Option<&str>,
        corr: CorrelationId,
    ) -> Result<ItemId, ExchangeError> {
        match change_key {
            Some(ck) => Ok(ItemId::new(id, ck)),
            None => {
                let item = self
                    .client
                    .get_item(Self::target(mailbox, corr), ItemId { id: id.to_owned(), change_key: None })
                    .await?;
                Ok(item.item_id)
            }
        }
    }
}

fn address(mailbox: &orb_ews::model::Mailbox) -> GraphAddress {
    GraphAddress { address: mailbox.email.clone(), name: mailbox.name.clone() }
}

fn response(r: orb_ews::model::ResponseType) -> ResponseType {
    use orb_ews::model::ResponseType as R;
    match r {
        R::Organizer => ResponseType::Organizer,
        R::Tentative => ResponseType::TentativelyAccepted,
        R::Accept => ResponseType::Accepted,
        R::Decline => ResponseType::Declined,
        R::NoResponseReceived => ResponseType::NotResponded,
        R::Unknown => ResponseType::None,
    }
}

/// The iCalUId of an item as Graph would give it: EWS shares one `UID` among a series' master and all its
/// occurrences (U9), where Graph gives each occurrence its own; an occurrence or exception is therefore
/// `{UID}#{OriginalStart}`, the same in every mailbox (the room's copy and the organizer's share both parts).
pub fn ical_uid_of(item: &CalendarItem) -> Option<String> {
    let uid = item.uid.clone()?;
    match (item.item_type, item.original_start) {
        (Some(CalendarItemType::Occurrence | CalendarItemType::Exception), Some(original)) => {
            Some(format!("{uid}{OCCURRENCE_MARK}{}", original.format("%Y%m%dT%H%M%SZ")))
        }
        _ => Some(uid),
    }
}

/// Separates an occurrence's original start from its series' `UID` in [`ical_uid_of`].
const OCCURRENCE_MARK: char = '#';

/// The series' `UID` of an iCalUId from [`ical_uid_of`].
fn base_uid(ical_uid: &str) -> &str {
    ical_uid.split_once(OCCURRENCE_MARK).map_or(ical_uid, |(base, _)| base)
}

/// A calendar item as the engine's meeting, as read from `mailbox`.
pub fn to_event(mailbox: &EmailAddress, item: &CalendarItem, master_id: Option<String>) -> Event {
    let attendee = |a: &orb_ews::model::Attendee, kind| Attendee {
        email_address: Some(address(&a.mailbox)),
        kind: Some(kind),
        status: a.response.map(|r| ResponseStatus { response: Some(response(r)), time: None }),
        ..Attendee::default()
    };
    let attendees: Vec<Attendee> = item
        .required_attendees
        .iter()
        .map(|a| attendee(a, AttendeeType::Required))
        .chain(item.resources.iter().map(|a| attendee(a, AttendeeType::Resource)))
        .collect();
    let organizer = item.organizer.as_ref().map(|o| Recipient { email_address: Some(address(o)) });
    let is_organizer = item
        .organizer
        .as_ref()
        .and_then(|o| o.email.as_deref())
        .map(|o| o.eq_ignore_ascii_case(mailbox.as_str()));
    let kind = item.item_type.map(|t| match t {
        CalendarItemType::Single => EventType::SingleInstance,
        CalendarItemType::Occurrence => EventType::Occurrence,
        CalendarItemType::Exception => EventType::Exception,
        CalendarItemType::RecurringMaster => EventType::SeriesMaster,
    });
    let recurrence = item
        .recurrence
        .as_ref()
        .map(|r| PatternedRecurrence::from_core(&r.to_patterned(item.start_time_zone.as_deref())));
    Event {
        id: Some(item.item_id.id.clone()),
        change_key: item.item_id.change_key.clone(),
        last_modified_date_time: item.last_modified,
        ical_uid: ical_uid_of(item),
        subject: item.subject.clone(),
        start: item.start.map(DateTimeTimeZone::from_utc),
        end: item.end.map(DateTimeTimeZone::from_utc),
        original_start_time_zone: item.start_time_zone.clone(),
        original_start: item.original_start,
        location: item
            .location
            .as_ref()
            .map(|l| Location { display_name: Some(l.clone()), ..Location::default() }),
        attendees: Some(attendees),
        organizer,
        is_organizer,
        is_cancelled: item.is_cancelled,
        response_status: item.my_response.map(|r| ResponseStatus { response: Some(response(r)), time: None }),
        kind,
        series_master_id: master_id
            .filter(|_| kind.is_some_and(|k| matches!(k, EventType::Occurrence | EventType::Exception))),
        recurrence,
        single_value_extended_properties: item.match_id.as_ref().map(|m| {
            vec![SingleValueExtendedProperty {
                id: orb_graph::ORB_MATCH_PROPERTY_ID.to_owned(),
                value: Some(m.clone()),
            }]
        }),
        ..Event::default()
    }
}

fn instant(t: Option<&DateTimeTimeZone>, what: &str) -> Result<Option<DateTime<Utc>>, EwsError> {
    t.map(|t| t.to_utc().map_err(|e| EwsError::Invalid { reason: format!("the meeting's {what}: {e}") }))
        .transpose()
}

/// The rooms (resource attendees, else the location's address) and the people of a meeting ORB writes.
fn rooms_and_people(event: &Event) -> (Vec<EmailAddress>, Vec<EmailAddress>) {
    let mut rooms = Vec::new();
    let mut people = Vec::new();
    for a in event.attendees.iter().flatten() {
        let Some(addr) = a.address().and_then(|a| EmailAddress::parse(a).ok()) else { continue };
        if a.kind == Some(AttendeeType::Resource) {
            rooms.push(addr);
        } else {
            people.push(addr);
        }
    }
    if rooms.is_empty()
        && let Some(addr) = event
            .location
            .as_ref()
            .and_then(|l| l.location_email_address.as_deref())
            .and_then(|a| EmailAddress::parse(a).ok())
    {
        rooms.push(addr);
    }
    (rooms, people)
}

/// The meeting ORB creates in `mailbox`: a meeting inviting its room, or (created in a room's own
/// calendar, "room only") a plain appointment.
pub fn to_new_meeting(mailbox: &EmailAddress, event: &Event, match_id: &str) -> Result<NewMeeting, EwsError> {
    let invalid = |reason: &str| EwsError::Invalid { reason: reason.to_owned() };
    let start =
        instant(event.start.as_ref(), "start")?.ok_or_else(|| invalid("a meeting needs its start"))?;
    let end = instant(event.end.as_ref(), "end")?.ok_or_else(|| invalid("a meeting needs its end"))?;
    if event.recurrence.is_some() {
        return Err(invalid("ORB does not create series in Exchange; it writes occurrences one by one"));
    }
    let (rooms, people) = rooms_and_people(event);
    let room = rooms.into_iter().find(|r| r != mailbox);
    let time_zone = event.start.as_ref().and_then(|s| s.time_zone.clone()).and_then(|z| {
        let name = orb_core::zones::resolve_graph_zone(&z).ok()?;
        orb_core::zones::windows_zone_for(&name).ok().map(str::to_owned)
    });
    Ok(NewMeeting {
        subject: event.subject.clone().unwrap_or_default(),
        match_id: match_id.to_owned(),
        start,
        end,
        location: event.location.as_ref().and_then(|l| l.display_name.clone()).filter(|l| !l.is_empty()),
        attendees: if room.is_some() { people } else { Vec::new() },
        room,
        time_zone,
        recurrence: None,
    })
}

/// The fields of `changes` (a Graph-shaped patch: only what is set changes) as one `UpdateItem`.
pub fn to_change(changes: &Event) -> Result<MeetingChange, EwsError> {
    let mut change = MeetingChange {
        subject: changes.subject.clone(),
        start: instant(changes.start.as_ref(), "start")?,
        end: instant(changes.end.as_ref(), "end")?,
        location: changes.location.as_ref().and_then(|l| l.display_name.clone()).filter(|l| !l.is_empty()),
        ..MeetingChange::default()
    };
    if changes.attendees.is_some() {
        let (rooms, people) = rooms_and_people(changes);
        change.attendees = Some(people);
        match rooms.into_iter().next() {
            Some(room) => change.room = Some(room),
            None => change.remove_rooms = true,
        }
    }
    Ok(change)
}

#[async_trait]
impl Exchange for EwsExchange {
    fn kind(&self) -> ExchangeKind {
        ExchangeKind::Ews
    }

    fn as_ews(&self) -> Option<&EwsExchange> {
        Some(self)
    }

    async fn get_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        corr: CorrelationId,
    ) -> Result<Event, ExchangeError> {
        self.read(mailbox, id, corr).await
    }

    async fn find_by_match_id(
        &self,
        mailbox: &EmailAddress,
        match_id: &str,
        corr: CorrelationId,
    ) -> Result<Option<Event>, ExchangeError> {
        match self.client.find_by_match_id(Self::target(mailbox, corr), match_id).await? {
            Some(item) => Ok(Some(self.event(mailbox, item, corr).await)),
            None => Ok(None),
        }
    }

    fn finds_by_time(&self) -> bool {
        true
    }

    fn coarse_versions(&self) -> bool {
        // `LastModifiedTime` has whole seconds.
        true
    }

    async fn find_by_ical_uid(
        &self,
        mailbox: &EmailAddress,
        ical_uid: &str,
        around: &[(DateTime<Utc>, DateTime<Utc>)],
        corr: CorrelationId,
    ) -> Result<Option<Event>, ExchangeError> {
        // EWS cannot look up by UID: the meeting is searched where it may take place (a day either side, so
        // a meeting moved a little is still found), span after span.
        let mut searched: Vec<Window> = Vec::new();
        for &(from, to) in around {
            let window = Window { start: from - Duration::days(1), end: to.max(from) + Duration::days(1) };
            if searched.iter().any(|w| w.start <= window.start && w.end >= window.end) {
                continue;
            }
            searched.push(window);
            if ical_uid.contains(OCCURRENCE_MARK) {
                // One occurrence: the one with this original start among the items around it.
                let events = self.view(mailbox, window.start, window.end, corr).await?;
                if let Some(found) = events.into_iter().find(|e| e.ical_uid.as_deref() == Some(ical_uid)) {
                    return Ok(Some(found));
                }
                continue;
            }
            if let Some(item) = self.client.find_by_uid(Self::target(mailbox, corr), ical_uid, window).await?
            {
                return Ok(Some(self.event(mailbox, item, corr).await));
            }
        }
        Ok(None)
    }

    async fn instances(
        &self,
        mailbox: &EmailAddress,
        series_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        corr: CorrelationId,
    ) -> Result<Vec<Event>, ExchangeError> {
        let master = self
            .client
            .get_item(Self::target(mailbox, corr), ItemId { id: series_id.to_owned(), change_key: None })
            .await?;
        let Some(uid) = master.uid.clone() else { return Ok(Vec::new()) };
        self.masters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((mailbox.clone(), uid.clone()), series_id.to_owned());
        let events = self.view(mailbox, from, to, corr).await?;
        Ok(events
            .into_iter()
            .filter(|e| e.ical_uid.as_deref().map(base_uid) == Some(uid.as_str()))
            .filter(|e| matches!(e.kind, Some(EventType::Occurrence | EventType::Exception)))
            .filter(|e| e.is_cancelled != Some(true))
            .collect())
    }

    async fn calendar_view(
        &self,
        mailbox: &EmailAddress,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        corr: CorrelationId,
    ) -> Result<Vec<Event>, ExchangeError> {
        self.view(mailbox, from, to, corr).await
    }

    async fn create_event(
        &self,
        mailbox: &EmailAddress,
        event: &Event,
        match_id: &str,
        corr: CorrelationId,
    ) -> Result<Event, ExchangeError> {
        let meeting = to_new_meeting(mailbox, event, match_id)?;
        let id = self.client.create_meeting(Self::target(mailbox, corr), &meeting).await?;
        self.read(mailbox, &id.id, corr).await
    }

    async fn update_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        changes: &Event,
        change_key: Option<&str>,
        corr: CorrelationId,
    ) -> Result<Event, ExchangeError> {
        let change = to_change(changes)?;
        let item = self.version(mailbox, id, change_key, corr).await?;
        let written = self.client.update_meeting(Self::target(mailbox, corr), item, &change).await?;
        self.read(mailbox, &written.id, corr).await
    }

    async fn cancel_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        _comment: Option<&str>,
        change_key: Option<&str>,
        corr: CorrelationId,
    ) -> Result<(), ExchangeError> {
        // No comment: ORB writes no bodies into people's mailboxes over EWS (the cancellation itself tells).
        let item = self.version(mailbox, id, change_key, corr).await?;
        Ok(self.client.cancel_meeting(Self::target(mailbox, corr), &item).await?)
    }

    async fn delete_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        change_key: Option<&str>,
        corr: CorrelationId,
    ) -> Result<(), ExchangeError> {
        let item = ItemId { id: id.to_owned(), change_key: change_key.map(str::to_owned) };
        Ok(self.client.delete_item(Self::target(mailbox, corr), item).await?)
    }

    async fn list_rooms(&self, corr: CorrelationId) -> Result<Vec<DirectoryRoom>, ExchangeError> {
        let target = Self::target(&self.directory_mailbox, corr);
        let mut out: Vec<DirectoryRoom> = Vec::new();
        for list in self.client.room_lists(target).await? {
            let Ok(list_address) = EmailAddress::parse(&list.email) else { continue };
            for room in self.client.rooms(target, &list_address).await? {
                if !out.iter().any(|r| r.email.eq_ignore_ascii_case(&room.email)) {
                    out.push(DirectoryRoom { email: room.email, name: room.name });
                }
            }
        }
        Ok(out)
    }

    async fn send_mail(
        &self,
        from: &EmailAddress,
        message: &Message,
        corr: CorrelationId,
    ) -> Result<(), ExchangeError> {
        let to = message
            .to_recipients
            .iter()
            .flatten()
            .filter_map(|r| r.email_address.as_ref()?.address.as_deref())
            .filter_map(|a| EmailAddress::parse(a).ok())
            .collect();
        let mail = OutgoingMail {
            to,
            subject: message.subject.clone().unwrap_or_default(),
            body_text: message.body.as_ref().and_then(|b| b.content.clone()).unwrap_or_default(),
        };
        Ok(self.client.send_mail(Self::target(from, corr), &mail).await?)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use orb_ews::model::{Attendee as EwsAttendee, Mailbox, ResponseType as EwsResponse};

    use super::*;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 9, 3, h, 0, 0).unwrap()
    }

    fn mail(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn item(kind: CalendarItemType) -> CalendarItem {
        let person = |e: &str| Mailbox { name: None, email: Some(e.into()) };
        CalendarItem {
            item_id: ItemId::new("AAMk1", "CK1"),
            subject: Some("Budget".into()),
            match_id: Some("01a0-match".into()),
            last_modified: Some(at(7)),
            uid: Some("040000008200E0".into()),
            start: Some(at(8)),
            end: Some(at(9)),
            location: Some("Room 4.12".into()),
            is_cancelled: Some(false),
            item_type: Some(kind),
            my_response: Some(EwsResponse::Organizer),
            free_busy: None,
            organizer: Some(person("alice@contoso.com")),
            required_attendees: vec![EwsAttendee { mailbox: person("bob@contoso.com"), response: None }],
            resources: vec![EwsAttendee {
                mailbox: person("room@contoso.com"),
                response: Some(EwsResponse::Accept),
            }],
            appointment_state: Some(1),
            original_start: (kind != CalendarItemType::Single).then(|| at(8)),
            recurrence: None,
            first_occurrence: None,
            last_occurrence: None,
            modified_occurrences: Vec::new(),
            deleted_occurrences: Vec::new(),
            start_time_zone: Some("W. Europe Standard Time".into()),
        }
    }

    #[test]
    fn an_item_reads_as_the_engines_meeting() {
        let e = to_event(&mail("alice@contoso.com"), &item(CalendarItemType::Single), None);
        assert_eq!((e.id.as_deref(), e.change_key.as_deref()), (Some("AAMk1"), Some("CK1")));
        assert_eq!(e.ical_uid.as_deref(), Some("040000008200E0"));
        assert_eq!(e.start.as_ref().unwrap().to_utc().unwrap(), at(8));
        assert_eq!(e.is_organizer, Some(true), "read from the organizer's mailbox");
        assert_eq!(e.kind, Some(EventType::SingleInstance));
        assert_eq!(e.original_start_time_zone.as_deref(), Some("W. Europe Standard Time"));
        assert_eq!(e.extended_property(orb_graph::ORB_MATCH_PROPERTY_ID), Some("01a0-match"));
        assert_eq!(e.attendee_response("room@contoso.com"), Some(ResponseType::Accepted));
        let kinds: Vec<_> = e.attendees.iter().flatten().map(|a| a.kind).collect();
        assert_eq!(kinds, [Some(AttendeeType::Required), Some(AttendeeType::Resource)]);
        let in_room = to_event(&mail("room@contoso.com"), &item(CalendarItemType::Single), None);
        assert_eq!(in_room.is_organizer, Some(false), "the room's copy");

        // An occurrence: its own iCalUId (as Graph gives one), its master's id.
        let o =
            to_event(&mail("alice@contoso.com"), &item(CalendarItemType::Occurrence), Some("AAMkM".into()));
        assert_eq!(o.ical_uid.as_deref(), Some("040000008200E0#20260903T080000Z"));
        assert_eq!(base_uid(o.ical_uid.as_deref().unwrap()), "040000008200E0");
        assert_eq!(o.series_master_id.as_deref(), Some("AAMkM"));
        assert_eq!(o.kind, Some(EventType::Occurrence));
        let single =
            to_event(&mail("alice@contoso.com"), &item(CalendarItemType::Single), Some("AAMkM".into()));
        assert_eq!(single.series_master_id, None, "only occurrences name a master");
    }

    #[test]
    fn a_meeting_orb_writes_becomes_the_ews_create_and_update() {
        let alice = mail("alice@contoso.com");
        let event = Event {
            subject: Some("Planning".into()),
            start: Some(DateTimeTimeZone::in_zone(at(8), "W. Europe Standard Time").unwrap()),
            end: Some(DateTimeTimeZone::in_zone(at(9), "W. Europe Standard Time").unwrap()),
            location: Some(Location::room("Room 4.12", "room@contoso.com")),
            attendees: Some(vec![
                Attendee {
                    email_address: Some(GraphAddress { address: Some("bob@contoso.com".into()), name: None }),
                    kind: Some(AttendeeType::Required),
                    ..Attendee::default()
                },
                Attendee {
                    email_address: Some(GraphAddress {
                        address: Some("room@contoso.com".into()),
                        name: None,
                    }),
                    kind: Some(AttendeeType::Resource),
                    ..Attendee::default()
                },
            ]),
            ..Event::default()
        };
        let m = to_new_meeting(&alice, &event, "match-1").unwrap();
        assert_eq!((m.start, m.end), (at(8), at(9)));
        assert_eq!(m.room, Some(mail("room@contoso.com")));
        assert_eq!(m.attendees, [mail("bob@contoso.com")]);
        assert_eq!(m.time_zone.as_deref(), Some("W. Europe Standard Time"));
        assert_eq!(m.match_id, "match-1");
        // Created in the room's own calendar ("room only"): a plain appointment.
        let own = to_new_meeting(&mail("room@contoso.com"), &event, "match-1").unwrap();
        assert_eq!((own.room, own.attendees.len()), (None, 0));
        let bad = Event { start: None, ..event.clone() };
        assert!(to_new_meeting(&alice, &bad, "m").unwrap_err().to_string().contains("start"));

        let retime = Event { start: event.start.clone(), end: event.end.clone(), ..Event::default() };
        let c = to_change(&retime).unwrap();
        assert_eq!((c.start, c.end, c.room.clone(), c.remove_rooms), (Some(at(8)), Some(at(9)), None, false));
        assert_eq!(c.attendees, None, "people untouched");
        let drop_room = Event {
            attendees: Some(event.attendees.clone().unwrap().into_iter().take(1).collect()),
            ..Event::default()
        };
        let c = to_change(&drop_room).unwrap();
        assert!(c.remove_rooms && c.room.is_none(), "{c:?}");
        assert_eq!(c.attendees, Some(vec![mail("bob@contoso.com")]));
    }
}
