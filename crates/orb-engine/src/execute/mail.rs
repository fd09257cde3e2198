//! Mails to people: short, plain text, one per [`MailTemplate`], sent through Graph's `sendMail`.
//!
//! Privacy: a mail's title never holds the meeting's subject. The body names the meeting by its subject
//! only for templates about one specific meeting the recipient has to recognise (room declined, refused,
//! overwritten, moved to an unmanaged room) and only when the record holds a subject (the record's subject
//! is already filtered by the tenant's policy: `drop` leaves none). Every mail links to the booking in the
//! portal: `{portal}/bookings/{match id}`.

use orb_core::{BookingRecord, EmailAddress, MailTemplate};
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

/// Renders `template` for the booking `record`; `room` is how the room is named (its mailbox).
pub fn render_mail(template: MailTemplate, record: &BookingRecord, room: &str, portal: &str) -> RenderedMail {
    let tz = record.time_zone.tz();
    let start = record.start.with_timezone(&tz);
    let end = record.end.with_timezone(&tz);
    let when =
        format!("{} {}–{} ({})", start.format("%Y-%m-%d"), start.format("%H:%M"), end.format("%H:%M"), tz);
    let meeting = match (&record.subject, names_the_meeting(template)) {
        (Some(subject), true) if !subject.trim().is_empty() => format!("your meeting \"{subject}\""),
        _ => "your meeting".to_owned(),
    };
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
                "{room} could not be reserved for {meeting} on {when}. Please pick another room or time."
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
    let link = format!("{}/bookings/{}", portal.trim_end_matches('/'), record.id);
    let text = capitalise(&text);
    RenderedMail {
        title: title.to_owned(),
        body: format!("{text}\n\nDetails: {link}\n\nThis is an automatic message.\n"),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

pub(super) async fn send(
    template: MailTemplate,
    to: &EmailAddress,
    record: &BookingRecord,
    ctx: &ExecContext<'_>,
) -> Result<Done, ExecError> {
    let room = ctx
        .rooms
        .by_id(record.room_id)
        .map(|m| m.mailbox.as_str().to_owned())
        .or_else(|| record.location_text.clone())
        .unwrap_or_else(|| "the room".to_owned());
    let mail = render_mail(template, record, &room, ctx.portal_base_url);
    let message = Message {
        subject: Some(mail.title),
        body: Some(ItemBody { content_type: Some(BodyType::Text), content: Some(mail.body) }),
        to_recipients: Some(vec![Recipient::new(to.as_str(), None)]),
        ..Message::default()
    };
    ctx.graph
        .send_mail(ctx.mail_sender, &message, false, ctx.correlation)
        .await
        .map_err(ExecError::graph("sending a mail"))?;
    Ok(Done::MailSent { to: to.clone() })
}
