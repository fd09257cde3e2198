//! Mails to people: short, plain text, one per [`MailTemplate`], sent through Graph's `sendMail`.
//!
//! Privacy: a mail's title never holds the meeting's subject. The body names the meeting by its subject
//! only for templates about one specific meeting the recipient has to recognise (room declined, refused,
//! overwritten, moved to an unmanaged room) and only when the record holds a subject (the record's subject
//! is already filtered by the tenant's policy: `drop` leaves none). Every mail links to the booking in the
//! portal's booking page once the portal serves one (today: no link, never one to a missing page). Times
//! are shown in the tenant's zone (its rooms' zone), labelled with it, whatever zone Outlook saved the
//! meeting in; rooms are named by their display name, never by their mailbox address.

use orb_core::{BookingRecord, EmailAddress, MailTemplate, Side, TimeZoneName};
use orb_graph::model::{BodyType, ItemBody, Message, Recipient};

use super::{Done, ExecContext, ExecError};

/// A mail ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// The title (never the meeting's subject).
    pub title: String,
    /// Plain-text body.
    pub body: String,
}

fn names_the_meeting(template: MailTemplate) -> bool {
    !matches!(template, MailTemplate::FallbackPersonUsed)
}

/// What a mail says about the booking besides the record: how the room is named, the side's reason for a
/// refusal, and — for a change that was not carried over — the booking as the refusing side still holds it.
#[derive(Debug, Clone, Copy, Default)]
pub struct MailFacts<'a> {
    /// The room as people know it (its display name; never its mailbox address).
    pub room: &'a str,
    /// The side's own words for a refused write.
    pub reason: Option<&'a str>,
    /// The booking before the refused change (time and room still booked), with its room's name.
    pub still_booked: Option<(&'a BookingRecord, &'a str)>,
    /// The zone times are shown in: the tenant's (its rooms'), not the zone Outlook saved the meeting in.
    pub zone: Option<&'a TimeZoneName>,
}

fn side_name(side: Option<Side>) -> &'static str {
    match side {
        Some(Side::Exchange) => "Outlook",
        Some(Side::Topdesk) | None => "TOPdesk",
    }
}

fn when(record: &BookingRecord, zone: Option<&TimeZoneName>) -> String {
    let tz = zone.unwrap_or(&record.time_zone).tz();
    let start = record.start.with_timezone(&tz);
    let end = record.end.with_timezone(&tz);
    format!("{} {}–{} ({})", start.format("%Y-%m-%d"), start.format("%H:%M"), end.format("%H:%M"), tz)
}

/// Renders `template` for the booking `record`; `booking_page` is the link to the booking's page, when
/// something serves one.
pub fn render_mail(
    template: MailTemplate,
    record: &BookingRecord,
    facts: &MailFacts<'_>,
    booking_page: Option<&str>,
) -> RenderedMail {
    let room = facts.room;
    let when = when(record, facts.zone);
    let meeting = match (&record.subject, names_the_meeting(template)) {
        (Some(subject), true) if !subject.trim().is_empty() => format!("your meeting \"{subject}\""),
        _ => "your meeting".to_owned(),
    };
    let because = facts
        .reason
        .map(|r| format!(" {} said: {}.", side_name(record.failed_processor), r.trim_end_matches('.')))
        .unwrap_or_default();
    let (title, text) = match template {
        MailTemplate::FallbackPersonUsed => (
            "Your room reservation was made for the service desk",
            format!(
                "You are not known as a person in TOPdesk, so the reservation of {room} on {when} was made in \
                 the name of the service desk's contact person. The room is booked for {meeting}."
            ),
        ),
        MailTemplate::RoomDeclined => (
            "The room declined your meeting",
            format!(
                "{room} declined {meeting} on {when}, so no room is reserved. Please pick another room or time."
            ),
        ),
        MailTemplate::ConflictOverwritten => (
            "Your room booking change was overwritten",
            format!(
                "{meeting} on {when} in {room} was changed in Outlook and in TOPdesk at the same time. The \
                 other change was kept; please check the booking."
            ),
        ),
        MailTemplate::BookingRefused => (
            "Your room booking could not be made",
            format!(
                "{room} could not be reserved for {meeting} on {when}.{because} Please pick another room or \
                 time."
            ),
        ),
        MailTemplate::ChangeNotCarriedOver => {
            let refused_by = side_name(record.failed_processor);
            let other = side_name(record.failed_processor.map(Side::other));
            let still = match facts.still_booked {
                Some((old, old_room)) => {
                    format!(
                        " The room is still booked as before: {old_room} on {}.",
                        self::when(old, facts.zone)
                    )
                }
                None => " The room is still booked as it was before the change.".to_owned(),
            };
            (
                "Your change to a room booking could not be carried over",
                format!(
                    "{meeting} was changed in {other} to {when} in {room}, but {refused_by} did not take the \
                     change.{because}{still} Please change the meeting back, or pick another time or room."
                ),
            )
        }
        MailTemplate::RoomReleased => (
            "The room for your meeting was released",
            format!(
                "TOPdesk did not accept the booking of {room} for {meeting} on {when}.{because} TOPdesk decides \
                 which rooms are free, so {room} was removed from your meeting in Outlook. Please pick another \
                 room or time."
            ),
        ),
        MailTemplate::MovedToUnmanagedRoom => (
            "Your room reservation was cancelled",
            format!(
                "{meeting} on {when} moved to a room that is not booked through TOPdesk, so the reservation of \
                 {room} was cancelled."
            ),
        ),
    };
    let text = capitalise(&text);
    let details = booking_page.map(|link| format!("\n\nDetails: {link}")).unwrap_or_default();
    RenderedMail {
        title: title.to_owned(),
        body: format!("{text}{details}\n\nThis is an automatic message.\n"),
    }
}

/// How a mail names a room: its display name, else the location text the meeting showed, else "the room"
/// (never the mailbox address).
pub fn room_name(ctx: &ExecContext<'_>, record: &BookingRecord) -> String {
    ctx.rooms
        .by_id(record.room_id)
        .and_then(|m| m.name.clone())
        .filter(|n| !n.trim().is_empty())
        .or_else(|| record.location_text.clone().filter(|t| !t.trim().is_empty()))
        .unwrap_or_else(|| "the room".to_owned())
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

pub(super) async fn send(
    template: MailTemplate,
    to: &EmailAddress,
    detail: Option<&str>,
    record: &BookingRecord,
    before: Option<&BookingRecord>,
    ctx: &ExecContext<'_>,
) -> Result<Done, ExecError> {
    let room = room_name(ctx, record);
    let old_room = before.map(|b| room_name(ctx, b));
    let still_booked = match (template, before, &old_room) {
        (MailTemplate::ChangeNotCarriedOver, Some(b), Some(name)) => Some((b, name.as_str())),
        _ => None,
    };
    let zone = ctx.rooms.by_id(record.room_id).map(|m| &m.time_zone);
    let facts = MailFacts { room: &room, reason: detail, still_booked, zone };
    // No link yet: nothing serves a booking's page until the admin portal does (`portal_base_url` is
    // kept for it), and a mail must not send people to a page that does not exist.
    let mail = render_mail(template, record, &facts, None);
    let message = Message {
        subject: Some(mail.title),
        body: Some(ItemBody { content_type: Some(BodyType::Text), content: Some(mail.body) }),
        to_recipients: Some(vec![Recipient::new(to.as_str(), None)]),
        ..Message::default()
    };
    ctx.exchange
        .send_mail(ctx.mail_sender, &message, ctx.correlation)
        .await
        .map_err(ExecError::exchange("sending a mail"))?;
    metrics::counter!("orb_mails_sent_total", "template" => template.as_str()).increment(1);
    Ok(Done::MailSent { to: to.clone() })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use orb_core::{AppointmentType, NewBooking, RoomId, TenantId, TimeZoneName};

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)).unwrap_or_default()
    }

    fn record(start: &str, end: &str, subject: Option<&str>) -> BookingRecord {
        let now = at("2026-12-01T08:00:00Z");
        let organizer = EmailAddress::parse("anna@contoso.com").unwrap_or_else(|e| panic!("{e}"));
        let mut r = BookingRecord::new(
            NewBooking {
                tenant_id: TenantId::generate(now),
                appointment_type: AppointmentType::Single,
                series_id: None,
                original_start: None,
                organizer,
                booked_by: None,
                location_text: None,
                room_id: RoomId::generate(now),
                participants: vec![],
                subject: subject.map(str::to_owned),
                start: at(start),
                end: at(end),
                // The zone Outlook saved the meeting in (W. Europe Standard Time maps to Berlin): mails
                // show the tenant's zone instead.
                time_zone: TimeZoneName::parse("Europe/Berlin").unwrap_or_else(|e| panic!("{e}")),
                processor_created: Side::Exchange,
            },
            now,
        );
        r.id =
            orb_core::BookingId::from_uuid(uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001));
        r
    }

    /// Every mail a person can get, as they read it (snapshots in `snapshots/`).
    #[test]
    fn every_mail_reads_right() {
        let mut refused = record("2026-12-07T13:00:00Z", "2026-12-07T14:00:00Z", Some("Quarterly budget"));
        refused.record_failure(Side::Topdesk, at("2026-12-01T08:00:00Z"));
        let before = record("2026-12-07T09:00:00Z", "2026-12-07T10:00:00Z", Some("Quarterly budget"));
        let amsterdam = TimeZoneName::parse("Europe/Amsterdam").unwrap_or_else(|e| panic!("{e}"));
        let facts = MailFacts { room: "Room 4.12", reason: None, still_booked: None, zone: Some(&amsterdam) };
        let occupied = Some("Room 4.12 is already reserved from 14:00 to 15:00");
        let cases: Vec<(&str, MailTemplate, MailFacts<'_>)> = vec![
            ("fallback-person-used", MailTemplate::FallbackPersonUsed, facts),
            ("room-declined", MailTemplate::RoomDeclined, facts),
            ("conflict-overwritten", MailTemplate::ConflictOverwritten, facts),
            ("booking-refused", MailTemplate::BookingRefused, MailFacts { reason: occupied, ..facts }),
            (
                "change-not-carried-over",
                MailTemplate::ChangeNotCarriedOver,
                MailFacts { reason: occupied, still_booked: Some((&before, "Room 4.12")), ..facts },
            ),
            (
                "change-not-carried-over-moved",
                MailTemplate::ChangeNotCarriedOver,
                MailFacts {
                    room: "Room 5.01",
                    reason: occupied,
                    still_booked: Some((&before, "Room 4.12")),
                    ..facts
                },
            ),
            ("moved-to-unmanaged-room", MailTemplate::MovedToUnmanagedRoom, facts),
            ("room-released", MailTemplate::RoomReleased, MailFacts { reason: occupied, ..facts }),
        ];
        for (name, template, facts) in cases {
            let mail = render_mail(template, &refused, &facts, None);
            assert!(!mail.title.contains("Quarterly"), "{name}: never the subject in the title");
            assert!(!mail.body.contains("http"), "{name}: no link to a page nothing serves");
            assert!(mail.body.contains("(Europe/Amsterdam)"), "{name}: the tenant's zone, labelled");
            insta::assert_snapshot!(name, format!("{}\n\n{}", mail.title, mail.body));
        }
    }
}
